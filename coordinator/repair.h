/* Anti-entropy: the coordinator's repair thread makes the replicas of each
 * shard group converge.
 *
 * Every write carries a version (common/sync.h) and a replica keeps the
 * highest version of each id, deletes as tombstones, so replicas that saw
 * the same writes hold the same state whatever the order. A replica that
 * missed writes (down, restarted, slow past the write quorum, or a write
 * that failed half-way) is marked stale by the coordinator: reads skip it.
 * A repair pass, per group, compares what the live replicas hold and copies
 * the newest version of everything to the others:
 *
 *   1. collections: ListCollections with drop tombstones from each; a name
 *      dropped after its newest create is dropped everywhere, a live one is
 *      created where it is missing (same config and version), and indexed
 *      fields one replica has are indexed on the others;
 *   2. documents, per collection: the ME_SYNC_BUCKETS digests from each
 *      replica (one small request: O(1) to keep, O(buckets) to compare);
 *      for the buckets that differ, each replica's (id, version, deleted)
 *      list; each id's newest version is read from a replica holding it and
 *      upserted (or its tombstone deleted) on the replicas without it.
 *
 * When a pass over a group ends with nothing left to fix on any live
 * replica, its stale marks are cleared (unless a newer write failed on it
 * meanwhile). Passes run every --repair-ms, and within 100 ms of a replica
 * being marked stale. So a write that reached any replica is, once that
 * replica is live, eventually applied on all of them (hinted hand-off by
 * comparison rather than by a hint log); one that reached none is lost,
 * and its client was told (UNAVAILABLE). */
#ifndef ME_REPAIR_H
#define ME_REPAIR_H

#include <stdatomic.h>

#include "coordinator/coordinator.h"

/* Runs until *stop is set (its own thread). interval_ms 0: only when a
 * replica is marked stale. */
void me_repair_loop(me_coord_t *co, void *zctx, int interval_ms, const atomic_int *stop);

#endif
