#include "coordinator/fanout.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"

struct me_fanout {
    me_cluster_t *cluster;
    void *zctx;
    void **socks;             /* [n_replicas] DEALER */
    uint64_t next_rid;
    uint64_t placement;       /* the request's routing placement, sent with each call */
};

void me_fanout_set_placement(me_fanout_t *f, uint64_t placement) { f->placement = placement; }
uint64_t me_fanout_placement(const me_fanout_t *f) { return f->placement; }

static void *open_sock(me_fanout_t *f, int r) { return me_cluster_connect(f->cluster, f->zctx, r); }

me_fanout_t *me_fanout_new(me_cluster_t *c, void *zctx) {
    me_fanout_t *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->cluster = c;
    f->zctx = zctx;
    f->socks = calloc((size_t)c->n_replicas, sizeof *f->socks);
    if (!f->socks) { free(f); return NULL; }
    for (int r = 0; r < c->n_replicas; r++) f->socks[r] = open_sock(f, r);
    return f;
}

void me_fanout_free(me_fanout_t *f) {
    if (!f) return;
    for (int r = 0; r < f->cluster->n_replicas; r++) me_wire_close(f->socks[r]);
    free(f->socks);
    free(f);
}

void me_calls_clear(me_call_t *calls, int n) {
    for (int i = 0; i < n; i++) me_reply_clear(&calls[i].reply);
}

static void reset_sock(me_fanout_t *f, int r) {
    me_wire_close(f->socks[r]);
    f->socks[r] = open_sock(f, r);
}

/* The next replica to try for a read call: live and untried, starting at
 * the group's round-robin position; -1 when none is left. */
static int next_replica(me_fanout_t *f, me_call_t *c) {
    me_group_t *g = &f->cluster->groups[c->group];
    unsigned start = atomic_fetch_add(&g->next, 1);
    /* Replicas that may be missing writes only when no other is live (and
     * never for a hedge: that one is only about speed). */
    for (int pass = 0; pass < (c->fresh_only ? 1 : 2); pass++)
        for (int i = 0; i < g->n_replicas; i++) {
            int k = (int)((start + (unsigned)i) % (unsigned)g->n_replicas);
            const me_replica_t *rep = &f->cluster->replicas[g->first_replica + k];
            if (c->tried & (1ULL << k)) continue;
            if (!atomic_load(&rep->up) || (pass == 0 && atomic_load(&rep->stale))) continue;
            return k;
        }
    return -1;
}

/* Untried replicas of the call's group that are up and not stale. */
static int untried_fresh(me_fanout_t *f, const me_call_t *c) {
    me_group_t *g = &f->cluster->groups[c->group];
    int n = 0;
    for (int k = 0; k < g->n_replicas; k++) {
        const me_replica_t *rep = &f->cluster->replicas[g->first_replica + k];
        if (!(c->tried & (1ULL << k)) && atomic_load(&rep->up) && !atomic_load(&rep->stale)) n++;
    }
    return n;
}

/* The time to wait on replica r before asking another one too. */
static uint64_t hedge_delay_us(me_fanout_t *f, int r) {
    uint64_t p95 = me_cluster_read_p95_us(f->cluster, r), d = 2 * p95;
    return d > ME_HEDGE_MIN_MS * 1000u ? d : ME_HEDGE_MIN_MS * 1000u;
}

/* Sends the call as attempt `slot` to its next replica (its own, for a
 * write); 0 when nothing is left to try. */
static int start(me_fanout_t *f, me_call_t *c, int slot, uint64_t deadline_us) {
    me_group_t *g = &f->cluster->groups[c->group];
    int r;
    for (;;) {
        uint64_t now = me_now_us();
        if (now >= deadline_us) { c->timed_out = 1; return 0; }
        if (c->replica >= 0) {
            if (c->attempts > 0 || !atomic_load(&f->cluster->replicas[c->replica].up)) return 0;
            r = c->replica;
        } else {
            int k = next_replica(f, c);
            if (k < 0) return 0;
            c->tried |= 1ULL << k;
            r = g->first_replica + k;
        }
        c->attempts++;
        uint64_t rid = ++f->next_rid;
        uint64_t left_ms = (deadline_us - now) / 1000u;
        uint32_t deadline_ms = (uint32_t)(left_ms > 0 ? left_ms : 1);
        int rc = me_wire_send_routed(f->socks[r], rid, c->method, deadline_ms, c->payload, c->len, 1,
                                     c->group < f->cluster->n_groups ? f->placement : 0, c->group);
        if (rc == ME_ENOMEM) return 0;
        if (rc) {
            reset_sock(f, r);
            if (c->replica >= 0) return 0;
            continue;
        }
        c->att[slot] = (me_attempt_t){ .replica = r, .rid = rid, .sent_us = now, .active = 1 };
        c->pending = 1;
        /* A read may be hedged on another live replica if this one is slow. */
        c->hedge_at_us = c->replica < 0 && untried_fresh(f, c) > 0 ? now + hedge_delay_us(f, r) : 0;
        return 1;
    }
}

int me_fanout_retryable(int status) {
    return status == ME_CODE_UNAVAILABLE || status == ME_CODE_INTERNAL || status == ME_CODE_DEADLINE_EXCEEDED;
}

/* Every group has its quorum of OK answers. */
static int quorum_met(const me_call_t *calls, int n, const int *need, int ngroups, int *acks) {
    memset(acks, 0, (size_t)ngroups * sizeof *acks);
    for (int i = 0; i < n; i++)
        if (calls[i].answered && calls[i].reply.status == ME_CODE_OK) acks[calls[i].group]++;
    for (int g = 0; g < ngroups; g++)
        if (acks[g] < need[g]) return 0;
    return 1;
}

static void run(me_fanout_t *f, me_call_t *calls, int n, uint64_t deadline_us, uint64_t *retries, const int *need,
                int reads);

void me_fanout_run(me_fanout_t *f, me_call_t *calls, int n, uint64_t deadline_us, uint64_t *retries) {
    run(f, calls, n, deadline_us, retries, NULL, 0);
}

void me_fanout_run_quorum(me_fanout_t *f, me_call_t *calls, int n, uint64_t deadline_us, const int *need) {
    run(f, calls, n, deadline_us, NULL, need, 0);
    for (int i = 0; i < n; i++)
        if (calls[i].replica >= 0 &&
            !(calls[i].answered && (calls[i].reply.status == ME_CODE_OK || !me_fanout_retryable(calls[i].reply.status))))
            me_cluster_mark_stale(f->cluster, calls[i].replica);
}

void me_fanout_run_reads(me_fanout_t *f, me_call_t *calls, int n, uint64_t deadline_us, const int *need,
                         int lenient) {
    run(f, calls, n, deadline_us, NULL, need, lenient);
}

/* Every group has at least one OK answer. */
static int each_group_answered(const me_call_t *calls, int n, const int *need, int ngroups, int *acks) {
    memset(acks, 0, (size_t)ngroups * sizeof *acks);
    for (int i = 0; i < n; i++)
        if (calls[i].answered && calls[i].reply.status == ME_CODE_OK) acks[calls[i].group]++;
    for (int g = 0; g < ngroups; g++)
        if (need[g] > 0 && acks[g] == 0) return 0;
    return 1;
}

/* reads: quorum reads stop also when every group has an answer and as
 * long again as that took (at least ME_HEDGE_MIN_MS) has passed, so a
 * replica that cannot answer (partitioned, stopped) costs that much, not
 * the deadline. */
static void run(me_fanout_t *f, me_call_t *calls, int n, uint64_t deadline_us, uint64_t *retries, const int *need,
                int reads) {
    int ngroups = f->cluster->n_groups;  /* writes go to shard groups only */
    int *acks = need ? calloc((size_t)ngroups, sizeof *acks) : NULL;
    if (need && !acks) return;
    uint64_t t0 = me_now_us(), grace_us = 0;
    void **socks = calloc((size_t)(2 * n + 1), sizeof *socks);
    int *who = calloc((size_t)(2 * n + 1), sizeof *who), *ready = calloc((size_t)(2 * n + 1), sizeof *ready);
    if (!socks || !who || !ready) { free(socks); free(who); free(ready); free(acks); return; }
    for (int i = 0; i < n; i++) {
        me_reply_init(&calls[i].reply);
        calls[i].answered = calls[i].attempts = calls[i].pending = calls[i].timed_out = 0;
        calls[i].tried = 0;
        calls[i].replica_used = -1;
        calls[i].att[0].active = calls[i].att[1].active = 0;
        calls[i].hedge_at_us = 0;
        start(f, &calls[i], 0, deadline_us);
    }
    for (;;) {
        uint64_t now = me_now_us();
        if (need && !grace_us && quorum_met(calls, n, need, ngroups, acks)) {
            uint64_t took = now - t0 > 1000 ? now - t0 : 1000;
            grace_us = now + took < deadline_us ? now + took : deadline_us;
        }
        if (reads && !grace_us && each_group_answered(calls, n, need, ngroups, acks)) {
            uint64_t took = now - t0 > ME_HEDGE_MIN_MS * 1000u ? now - t0 : ME_HEDGE_MIN_MS * 1000u;
            grace_us = now + took < deadline_us ? now + took : deadline_us;
        }
        if (grace_us && now >= grace_us) break;
        if (now >= deadline_us) break;
        int np = 0;
        uint64_t wake = grace_us ? grace_us : deadline_us;
        for (int i = 0; i < n; i++) {
            me_call_t *c = &calls[i];
            if (!c->pending) continue;
            /* Slow: ask the next fresh replica too; the first answer wins. */
            if (c->hedge_at_us && now >= c->hedge_at_us) {
                c->hedge_at_us = 0;
                int slot = c->att[0].active ? 1 : 0;
                c->fresh_only = 1;
                if (!c->att[slot].active && start(f, c, slot, deadline_us) && retries) (*retries)++;
                c->fresh_only = 0;
                c->hedge_at_us = 0;  /* one hedge per call */
            }
            if (c->hedge_at_us && c->hedge_at_us < wake) wake = c->hedge_at_us;
            for (int a = 0; a < 2; a++)
                if (c->att[a].active) {
                    socks[np] = f->socks[c->att[a].replica];
                    who[np++] = 2 * i + a;
                }
        }
        if (np == 0) break;
        long wait_ms = wake > now ? (long)((wake - now + 999) / 1000) : 0;
        if (me_wire_wait(socks, np, wait_ms, ready) < 0) break;
        for (int p = 0; p < np; p++) {
            if (!ready[p]) continue;
            me_call_t *c = &calls[who[p] / 2];
            me_attempt_t *at = &c->att[who[p] % 2];
            if (!at->active) continue;  /* the call was settled by its other attempt this round */
            me_reply_t rep;
            me_reply_init(&rep);
            if (me_wire_take_reply(socks[p], at->rid, &rep) != 1) continue;  /* stale or not a reply */
            uint64_t took = me_now_us() - at->sent_us;
            me_cluster_ok(f->cluster, at->replica, took);
            me_cluster_adopt_placement(f->cluster, rep.placement);
            at->active = 0;
            int other = c->att[0].active || c->att[1].active;
            if (me_fanout_retryable(rep.status) && c->replica < 0) {
                /* This replica failed: wait for the hedge, or try the next. */
                if (other || start(f, c, who[p] % 2, deadline_us)) {
                    if (!other && retries) (*retries)++;
                    me_reply_clear(&rep);
                    continue;
                }
            }
            if (c->replica < 0 && rep.status == ME_CODE_OK) me_cluster_read_latency(f->cluster, at->replica, took);
            /* Settled: the other attempt, if any, is ignored (its reply is
             * dropped as stale whenever it comes). */
            c->att[0].active = c->att[1].active = 0;
            c->pending = 0;
            c->hedge_at_us = 0;
            c->answered = 1;
            c->timed_out = 0;
            c->replica_used = at->replica;
            me_reply_clear(&c->reply);
            c->reply = rep;  /* the call owns the payload now */
        }
    }
    /* Anything still in flight has run out of time (or the write quorum
     * was met without it): drop its socket, so a queued request goes too. */
    for (int i = 0; i < n; i++) {
        if (!calls[i].pending) continue;
        for (int a = 0; a < 2; a++)
            if (calls[i].att[a].active) {
                reset_sock(f, calls[i].att[a].replica);
                if (calls[i].replica_used < 0) calls[i].replica_used = calls[i].att[a].replica;
                calls[i].att[a].active = 0;
            }
        calls[i].pending = 0;
        calls[i].timed_out = 1;
    }
    free(socks);
    free(who);
    free(ready);
    free(acks);
}
