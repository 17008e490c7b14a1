/* One coordinator worker's connections to every replica, and the engine
 * that runs a set of calls to shard groups in parallel within a deadline.
 *
 * A read call names a group: it goes to one live replica (round-robin, a
 * stale one only when no other is live). If that replica fails
 * (UNAVAILABLE, INTERNAL, DEADLINE_EXCEEDED) the call is retried on the
 * group's next live replica; if it is slower than twice its recent p95
 * (at least ME_HEDGE_MIN_MS), the next live replica is asked too (a hedge)
 * and the first answer wins, the other ignored. Each attempt has the whole
 * time left. A write call names one replica and is not retried elsewhere.
 * Replicas the heartbeats mark down are skipped at once, so a dead shard
 * costs nothing per query. After a timeout the socket to that replica is
 * replaced, so a request still queued for it is dropped and a late reply
 * cannot be taken for another one. */
#ifndef ME_FANOUT_H
#define ME_FANOUT_H

#include <stddef.h>
#include <stdint.h>

#include "common/wire.h"
#include "coordinator/cluster.h"

typedef struct me_fanout me_fanout_t;

#define ME_HEDGE_MIN_MS 10

typedef struct {
    int replica;              /* index into the cluster's replicas */
    uint64_t rid, sent_us;
    int active;
} me_attempt_t;

typedef struct {
    int group;                /* target group */
    int replica;              /* a replica index for writes, -1 for reads */
    int method;
    const uint8_t *payload;   /* packed request message */
    size_t len;
    /* results */
    int answered;             /* reply holds the replica's answer */
    int timed_out;            /* a replica was asked but the time ran out (vs none live) */
    me_reply_t reply;
    int replica_used;
    int attempts;
    /* engine state: up to two attempts in flight (the first and a hedge) */
    me_attempt_t att[2];
    uint64_t hedge_at_us;     /* when to ask a second replica; 0 = never */
    uint64_t tried;           /* bit i: the group's i-th replica was tried */
    int pending;              /* an attempt is in flight */
    int fresh_only;           /* choosing a hedge: stale replicas are not asked */
} me_call_t;

me_fanout_t *me_fanout_new(me_cluster_t *c, void *zctx);
/* The placement word the current request is routed with: every call to a
 * shard group carries it (Envelope.placement), so a shard can refuse a
 * request routed with an outdated one. Replies with a newer placement
 * update the cluster's (me_cluster_adopt_placement). */
void me_fanout_set_placement(me_fanout_t *f, uint64_t placement);
uint64_t me_fanout_placement(const me_fanout_t *f);
void me_fanout_free(me_fanout_t *f);

/* Runs the calls until each is answered or deadline_us (monotonic) passes.
 * Adds the number of retries and hedges on another replica to *retries. */
void me_fanout_run(me_fanout_t *f, me_call_t *calls, int n, uint64_t deadline_us, uint64_t *retries);
/* Writes: the same, but once every group g has need[g] OK answers (its
 * quorum) it waits only as long again (at least 1 ms) for the others,
 * then stops: a write answers at quorum, not at the slowest replica. The
 * replicas that did not answer OK are marked stale, to be repaired. */
void me_fanout_run_quorum(me_fanout_t *f, me_call_t *calls, int n, uint64_t deadline_us, const int *need);
/* Reads of chosen replicas (calls name them), stopping the same way once
 * each group has need[g] OK answers; with lenient, also once each group
 * has one and as long again (at least ME_HEDGE_MIN_MS) has passed (for
 * reads of every replica, which one that cannot answer would otherwise
 * hold to the deadline). Nothing is marked. */
void me_fanout_run_reads(me_fanout_t *f, me_call_t *calls, int n, uint64_t deadline_us, const int *need,
                         int lenient);
/* The statuses a read is retried on another replica for (UNAVAILABLE,
 * INTERNAL, DEADLINE_EXCEEDED): about the replica, not the request. */
int me_fanout_retryable(int status);
/* Frees the calls' reply payloads. */
void me_calls_clear(me_call_t *calls, int n);

#endif
