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
};

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
    /* Replicas that may be missing writes only when no other is live. */
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < g->n_replicas; i++) {
            int k = (int)((start + (unsigned)i) % (unsigned)g->n_replicas);
            const me_replica_t *rep = &f->cluster->replicas[g->first_replica + k];
            if (c->tried & (1ULL << k)) continue;
            if (!atomic_load(&rep->up) || (pass == 0 && atomic_load(&rep->stale))) continue;
            return k;
        }
    return -1;
}

static int untried_live(me_fanout_t *f, const me_call_t *c) {
    me_group_t *g = &f->cluster->groups[c->group];
    int n = 0;
    for (int k = 0; k < g->n_replicas; k++)
        if (!(c->tried & (1ULL << k)) && atomic_load(&f->cluster->replicas[g->first_replica + k].up)) n++;
    return n;
}

/* Sends the call to its next replica; 0 when nothing is left to try. */
static int start(me_fanout_t *f, me_call_t *c, uint64_t deadline_us) {
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
        uint64_t left = deadline_us - now;
        /* Leave time for a retry when another replica could take it. */
        uint64_t share = c->replica < 0 && untried_live(f, c) > 0 ? left / 2 : left;
        c->rid = ++f->next_rid;
        uint32_t deadline_ms = (uint32_t)(share / 1000u > 0 ? share / 1000u : 1);
        int rc = me_wire_send_request(f->socks[r], c->rid, c->method, deadline_ms, c->payload, c->len, 1);
        if (rc == ME_ENOMEM) return 0;
        if (rc) {
            reset_sock(f, r);
            if (c->replica >= 0) return 0;
            continue;
        }
        c->replica_used = r;
        c->sent_us = now;
        c->attempt_deadline_us = now + share;
        c->pending = 1;
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

static void run(me_fanout_t *f, me_call_t *calls, int n, uint64_t deadline_us, uint64_t *retries, const int *need);

void me_fanout_run(me_fanout_t *f, me_call_t *calls, int n, uint64_t deadline_us, uint64_t *retries) {
    run(f, calls, n, deadline_us, retries, NULL);
}

void me_fanout_run_quorum(me_fanout_t *f, me_call_t *calls, int n, uint64_t deadline_us, const int *need) {
    run(f, calls, n, deadline_us, NULL, need);
    for (int i = 0; i < n; i++)
        if (calls[i].replica >= 0 &&
            !(calls[i].answered && (calls[i].reply.status == ME_CODE_OK || !me_fanout_retryable(calls[i].reply.status))))
            me_cluster_mark_stale(f->cluster, calls[i].replica);
}

static void run(me_fanout_t *f, me_call_t *calls, int n, uint64_t deadline_us, uint64_t *retries, const int *need) {
    int ngroups = f->cluster->n_groups;  /* writes go to shard groups only */
    int *acks = need ? calloc((size_t)ngroups, sizeof *acks) : NULL;
    if (need && !acks) return;
    uint64_t t0 = me_now_us(), grace_us = 0;
    void **socks = calloc((size_t)(n ? n : 1), sizeof *socks);
    int *who = calloc((size_t)(n ? n : 1), sizeof *who), *ready = calloc((size_t)(n ? n : 1), sizeof *ready);
    if (!socks || !who || !ready) { free(socks); free(who); free(ready); free(acks); return; }
    for (int i = 0; i < n; i++) {
        me_reply_init(&calls[i].reply);
        calls[i].answered = calls[i].attempts = calls[i].pending = calls[i].timed_out = 0;
        calls[i].tried = 0;
        calls[i].replica_used = -1;
        start(f, &calls[i], deadline_us);
    }
    for (;;) {
        uint64_t now = me_now_us();
        if (need && !grace_us && quorum_met(calls, n, need, ngroups, acks)) {
            uint64_t took = now - t0 > 1000 ? now - t0 : 1000;
            grace_us = now + took < deadline_us ? now + took : deadline_us;
        }
        if (grace_us && now >= grace_us) break;
        int np = 0;
        uint64_t wake = grace_us ? grace_us : deadline_us;
        for (int i = 0; i < n; i++) {
            me_call_t *c = &calls[i];
            if (!c->pending) continue;
            if (now >= c->attempt_deadline_us) {
                /* No answer in its share of the time: drop the socket and
                 * try the next replica if there is one and time is left. */
                c->pending = 0;
                c->timed_out = 1;
                reset_sock(f, c->replica_used);
                if (start(f, c, deadline_us) && retries) (*retries)++;
                if (!c->pending) continue;
            }
            if (c->attempt_deadline_us < wake) wake = c->attempt_deadline_us;
            socks[np] = f->socks[c->replica_used];
            who[np++] = i;
        }
        if (np == 0) break;
        long wait_ms = wake > now ? (long)((wake - now + 999) / 1000) : 0;
        if (me_wire_wait(socks, np, wait_ms, ready) < 0) break;
        for (int p = 0; p < np; p++) {
            if (!ready[p]) continue;
            me_call_t *c = &calls[who[p]];
            me_reply_t rep;
            me_reply_init(&rep);
            if (me_wire_take_reply(socks[p], c->rid, &rep) != 1) continue;  /* stale or not a reply */
            me_cluster_ok(f->cluster, c->replica_used, me_now_us() - c->sent_us);
            c->pending = 0;
            if (me_fanout_retryable(rep.status) && c->replica < 0 && start(f, c, deadline_us)) {
                if (retries) (*retries)++;
                me_reply_clear(&rep);
                continue;
            }
            c->answered = 1;
            c->timed_out = 0;
            me_reply_clear(&c->reply);
            c->reply = rep;  /* the call owns the payload now */
        }
    }
    /* Anything still pending has run out of time: drop its socket. */
    for (int i = 0; i < n; i++)
        if (calls[i].pending) {
            reset_sock(f, calls[i].replica_used);
            calls[i].pending = 0;
            calls[i].timed_out = 1;
        }
    free(socks);
    free(who);
    free(ready);
    free(acks);
}
