/* The coordinator's view of the cluster: shard groups and their replicas
 * from the cluster map file, document placement, and replica liveness kept
 * up to date by heartbeats.
 *
 * Cluster map file (one group per line, order matters: it is the placement
 * index; '#' starts a comment):
 *
 *     group g0 tcp://10.0.0.1:7600 tcp://10.0.0.2:7600
 *     group g1 tcp://10.0.0.3:7600
 *     encoders tcp://10.0.0.5:7800 tcp://10.0.0.6:7800
 *
 * The optional `encoders` line lists encoder nodes: they are kept as one
 * more group (index n_groups, outside placement) so heartbeats, load
 * balancing and failover treat them like shard replicas.
 *
 *     group g2 standby tcp://10.0.0.4:7600
 *
 * Placement (common/placement.h): group = jump_consistent_hash(me_hash64(doc
 * id), n) over the first n groups. A new map places by its groups that are
 * not `standby` (they come last): a standby group is known, heartbeaten and
 * repaired, but holds nothing until a reshard (coordinator/reshard.c) moves
 * documents to it. The placement in force is versioned (an epoch) and kept
 * by the shards: a coordinator adopts any newer one a shard reports, so
 * every coordinator follows a move, and a shard refuses requests routed
 * with an older one. */
#ifndef ME_CLUSTER_H
#define ME_CLUSTER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "common/curve.h"
#include "common/placement.h"

#define ME_GROUP_NAME_MAX 63
#define ME_ENDPOINT_MAX 127

typedef struct {
    char endpoint[ME_ENDPOINT_MAX + 1];
    int group;
    /* Written by the heartbeat thread, read by workers. */
    atomic_int up;
    atomic_int liveness;
    _Atomic uint64_t documents;
    _Atomic uint64_t latency_us;
    /* May be missing writes (a write to it failed or was not answered in
     * time, or it came back after being down): reads go to its siblings
     * until the repairer (coordinator/repair.c) has compared and fixed
     * it. stale_gen counts the markings, so a repair pass that began
     * before a new one does not clear it. */
    atomic_int stale;
    atomic_uint stale_gen;
    /* The last ME_LATENCY_RING read latencies (µs), for hedging. */
    _Atomic uint32_t read_us[32];
    atomic_uint read_at;
} me_replica_t;

typedef struct {
    char name[ME_GROUP_NAME_MAX + 1];
    int first_replica, n_replicas;   /* indices into replicas[] */
    atomic_uint next;                /* round-robin start for reads */
    int standby;                     /* outside the map's initial placement */
} me_group_t;

typedef struct {
    me_group_t *groups;        /* n_groups shard groups, then the encoders' group when present */
    int n_groups;
    int n_placed;              /* the map's groups that are not standby */
    int encoder_group;         /* index of the encoders' group, or -1 */
    me_replica_t *replicas;
    int n_replicas;
    int liveness_max;                /* heartbeats missed before "down" */
    const me_curve_t *curve;         /* CurveZMQ client keys for every replica; NULL = plain */
    atomic_int repair_wanted;        /* set with a stale mark: the repairer runs soon */
    _Atomic uint64_t placement;      /* the placement word in force (common/placement.h) */
} me_cluster_t;

/* Parses the map; 0 or ME_EINVAL/ME_EIO with a line-numbered message. */
int me_cluster_load(me_cluster_t *c, const char *path, int liveness_max, char *err, size_t errcap);
void me_cluster_free(me_cluster_t *c);

/* A DEALER connected to replica r (with CurveZMQ when the cluster has
 * keys): the one way coordinator sockets to shards and encoders are made. */
void *me_cluster_connect(const me_cluster_t *c, void *zctx, int r);

/* The placement in force, and the group that owns a doc id for reads. */
me_placement_t me_cluster_placement(const me_cluster_t *c);
int me_cluster_place(const me_cluster_t *c, const char *id, size_t len);
/* Takes word as the placement when its epoch is newer (and it fits the
 * map); 1 when it did. Called with every shard reply. */
int me_cluster_adopt_placement(me_cluster_t *c, uint64_t word);

/* Records the outcome of a request or heartbeat to replica r. A shard
 * replica with siblings that comes back up is marked stale. */
void me_cluster_ok(me_cluster_t *c, int r, uint64_t latency_us);
void me_cluster_miss(me_cluster_t *c, int r);
/* Records a read's latency at replica r; the p95 of the recent ones
 * (0 while fewer than 8 are known). */
void me_cluster_read_latency(me_cluster_t *c, int r, uint64_t us);
uint64_t me_cluster_read_p95_us(const me_cluster_t *c, int r);
/* Marks replica r as possibly missing writes (see me_replica_t.stale). */
void me_cluster_mark_stale(me_cluster_t *c, int r);

/* Heartbeat loop (run on its own thread): a Stats request to every replica
 * every interval_ms; a replica that misses liveness_max in a row is marked
 * down and then pinged with capped exponential back-off (up to
 * max_backoff_ms) until it answers. Returns when *stop is set. */
void me_cluster_heartbeat(me_cluster_t *c, void *zctx, int interval_ms, int max_backoff_ms,
                          const atomic_int *stop);

#endif
