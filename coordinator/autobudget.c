#include "coordinator/autobudget.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/wire.h"

#define EWMA 0.2            /* weight of the newest observation */
#define STALE_US 2000000    /* older observations are not trusted */
#define RISE_AFTER_US 250000
#define RISE_BELOW 0.6      /* of the target */

void me_autobudget_init(me_autobudget_t *a) {
    memset(a, 0, sizeof *a);
    pthread_mutex_init(&a->lock, NULL);
    a->level = ME_BUDGET_LADDER_N - 1;  /* start at the finest: lowered by what is seen */
}

void me_autobudget_destroy(me_autobudget_t *a) { pthread_mutex_destroy(&a->lock); }

static double work(int level) { return (double)me_budget_ladder[level].r_q * me_budget_ladder[level].r_c; }

/* The predicted tail at a level (us), or -1 without any observation. */
static double tail(const me_autobudget_t *a, int level, uint64_t now) {
    if (a->seen_us[level] && now - a->seen_us[level] < STALE_US)
        return a->mean_us[level] + 2 * sqrt(a->var_us[level] > 0 ? a->var_us[level] : 0);
    /* The nearest observed level, scaled: half the time is taken as the
     * coarse stage every budget shares, half as the r_q·r_c rerank. */
    int best = -1;
    for (int d = 1; d < ME_BUDGET_LADDER_N && best < 0; d++) {
        if (level - d >= 0 && a->seen_us[level - d] && now - a->seen_us[level - d] < STALE_US) best = level - d;
        else if (level + d < ME_BUDGET_LADDER_N && a->seen_us[level + d] && now - a->seen_us[level + d] < STALE_US)
            best = level + d;
    }
    if (best < 0) return -1;
    double t = a->mean_us[best] + 2 * sqrt(a->var_us[best] > 0 ? a->var_us[best] : 0);
    return t * (0.5 + 0.5 * work(level) / work(best));
}

void me_autobudget_pick(me_autobudget_t *a, double target_ms, int lo, int hi, int *level, double *predicted_ms,
                        char *reason, size_t cap) {
    double target_us = target_ms * 1000.0;
    uint64_t now = me_now_us();
    pthread_mutex_lock(&a->lock);
    /* Rise one step after a while with room to spare at the current level. */
    if (a->level < ME_BUDGET_LADDER_N - 1 && now - a->level_since_us > RISE_AFTER_US) {
        double t = tail(a, a->level, now), up = tail(a, a->level + 1, now);
        if (t >= 0 && t < RISE_BELOW * target_us && (up < 0 || up < target_us)) {
            a->level++;
            a->level_since_us = now;
        }
    }
    int l = a->level < hi ? a->level : hi;
    /* The largest level at or below it whose tail fits (unknown: tried). */
    while (l > lo) {
        double t = tail(a, l, now);
        if (t < 0 || t <= target_us) break;
        l--;
    }
    if (l < lo) l = lo;
    double t = tail(a, l, now);
    pthread_mutex_unlock(&a->lock);
    *level = l;
    *predicted_ms = t < 0 ? 0 : t / 1000.0;
    const me_budget_t *b = &me_budget_ladder[l];
    if (t < 0)
        snprintf(reason, cap, "(%d,%d): no recent latency seen at it yet; trying it", b->r_q, b->r_c);
    else if (t <= target_us && l == hi)
        snprintf(reason, cap, "(%d,%d): the ceiling; predicted %.1f ms fits %.0f ms", b->r_q, b->r_c, t / 1000.0, target_ms);
    else if (t <= target_us)
        snprintf(reason, cap, "(%d,%d): the largest predicted to fit %.0f ms (%.1f ms)", b->r_q, b->r_c, target_ms,
                 t / 1000.0);
    else
        snprintf(reason, cap, "(%d,%d): the minimum budget; predicted %.1f ms is over %.0f ms", b->r_q, b->r_c,
                 t / 1000.0, target_ms);
    atomic_fetch_add(&a->chosen[l], 1);
    if (l < hi) atomic_fetch_add(&a->below_ceiling, 1);
}

void me_autobudget_observe(me_autobudget_t *a, int level, double us, double target_ms) {
    if (level < 0 || level >= ME_BUDGET_LADDER_N) return;
    uint64_t now = me_now_us();
    pthread_mutex_lock(&a->lock);
    if (!a->seen_us[level] || now - a->seen_us[level] >= STALE_US) {
        a->mean_us[level] = us;
        a->var_us[level] = 0;
    } else {
        double d = us - a->mean_us[level];
        a->mean_us[level] += EWMA * d;
        a->var_us[level] = (1 - EWMA) * (a->var_us[level] + EWMA * d * d);
    }
    a->seen_us[level] = now;
    /* Brownout: the tail at the current level passed the target. */
    double t = a->mean_us[level] + 2 * sqrt(a->var_us[level]);
    if (level == a->level && t > target_ms * 1000.0 && a->level > 0) {
        a->level--;
        a->level_since_us = now;
    }
    pthread_mutex_unlock(&a->lock);
    atomic_fetch_add(us <= target_ms * 1000.0 ? &a->within_target : &a->over_target, 1);
}
