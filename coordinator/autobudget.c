#include "coordinator/autobudget.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/wire.h"

#define STALE_US 2000000     /* older windows are not trusted */
#define RISE_AFTER_US 250000
#define RISE_BELOW 0.5       /* of the target */
#define FIT 0.8              /* of the target: the predicted 95th percentile's room */
#define JUDGE_AFTER 16       /* searches at a level before its tail may lower it */

void me_autobudget_init(me_autobudget_t *a) {
    memset(a, 0, sizeof *a);
    pthread_mutex_init(&a->lock, NULL);
    a->level = ME_BUDGET_LADDER_N - 1;  /* start at the finest: lowered by what is seen */
}

static double work(int level) { return (double)me_budget_ladder[level].r_q * me_budget_ladder[level].r_c; }

static int cmp_float(const void *x, const void *y) {
    float a = *(const float *)x, b = *(const float *)y;
    return (a > b) - (a < b);
}

static int fresh(const me_autobudget_t *a, int level, uint64_t now) {
    return a->nlat[level] && now - a->seen_us[level] < STALE_US;
}

/* The 95th percentile of a level's window (us). */
static double p95(const me_autobudget_t *a, int level) {
    float v[ME_AUTOBUDGET_WINDOW];
    int n = a->nlat[level];
    memcpy(v, a->lat_us[level], (size_t)n * sizeof *v);
    qsort(v, (size_t)n, sizeof *v, cmp_float);
    int i = (int)(0.95 * (n - 1) + 0.5);
    return v[i];
}

/* The predicted tail at a level (us), or -1 without any recent search. */
static double tail(const me_autobudget_t *a, int level, uint64_t now) {
    if (fresh(a, level, now)) return p95(a, level);
    int best = -1;
    for (int d = 1; d < ME_BUDGET_LADDER_N && best < 0; d++) {
        if (level - d >= 0 && fresh(a, level - d, now)) best = level - d;
        else if (level + d < ME_BUDGET_LADDER_N && fresh(a, level + d, now)) best = level + d;
    }
    if (best < 0) return -1;
    return p95(a, best) * (0.5 + 0.5 * work(level) / work(best));
}

void me_autobudget_pick(me_autobudget_t *a, double target_ms, int lo, int hi, int *level, double *predicted_ms,
                        char *reason, size_t cap) {
    double target_us = target_ms * 1000.0, fit_us = FIT * target_us;
    uint64_t now = me_now_us();
    pthread_mutex_lock(&a->lock);
    /* Rise one step after a while with room to spare at the current level. */
    if (a->level < ME_BUDGET_LADDER_N - 1 && now - a->level_since_us > RISE_AFTER_US) {
        double t = tail(a, a->level, now), up = fresh(a, a->level + 1, now) ? p95(a, a->level + 1) : -1;
        if (t >= 0 && t < RISE_BELOW * target_us && (up < 0 || up <= fit_us)) {
            a->level++;
            a->level_since_us = now;
            a->since_change = 0;
        }
    }
    int l = a->level < hi ? a->level : hi;
    /* The largest level at or below it whose tail fits (unknown: tried). */
    while (l > lo) {
        double t = tail(a, l, now);
        if (t < 0 || t <= fit_us) break;
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
    else if (t <= fit_us && l == hi)
        snprintf(reason, cap, "(%d,%d): the ceiling; predicted p95 %.1f ms fits %.0f ms", b->r_q, b->r_c, t / 1000.0,
                 target_ms);
    else if (t <= fit_us)
        snprintf(reason, cap, "(%d,%d): the largest predicted to fit %.0f ms (p95 %.1f ms; load or a slow group "
                 "keeps it below the ceiling)", b->r_q, b->r_c, target_ms, t / 1000.0);
    else
        snprintf(reason, cap, "(%d,%d): the minimum budget; predicted p95 %.1f ms is over %.0f ms", b->r_q, b->r_c,
                 t / 1000.0, target_ms);
    atomic_fetch_add(&a->chosen[l], 1);
    if (l < hi) atomic_fetch_add(&a->below_ceiling, 1);
}

void me_autobudget_observe(me_autobudget_t *a, int level, double us, double target_ms) {
    if (level < 0 || level >= ME_BUDGET_LADDER_N) return;
    uint64_t now = me_now_us();
    pthread_mutex_lock(&a->lock);
    if (!fresh(a, level, now)) a->nlat[level] = a->head[level] = 0;  /* an old window says nothing of now */
    a->lat_us[level][a->head[level]] = (float)us;
    a->head[level] = (a->head[level] + 1) % ME_AUTOBUDGET_WINDOW;
    if (a->nlat[level] < ME_AUTOBUDGET_WINDOW) a->nlat[level]++;
    a->seen_us[level] = now;
    /* Brownout: the tail at the current level passed its room. */
    if (level == a->level && ++a->since_change >= JUDGE_AFTER && a->level > 0 &&
        p95(a, level) > FIT * target_ms * 1000.0) {
        a->level--;
        a->level_since_us = now;
        a->since_change = 0;
    }
    pthread_mutex_unlock(&a->lock);
    atomic_fetch_add(us <= target_ms * 1000.0 ? &a->within_target : &a->over_target, 1);
}
