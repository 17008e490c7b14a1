/* Document placement and its changes (online resharding).
 *
 * A document's group is jump_consistent_hash(me_hash64(id), n) over the
 * first n groups of the cluster map (Lamping & Veach 2014): growing n to
 * n + 1 moves about 1/(n + 1) of the ids, all to the new group; shrinking
 * moves only the last group's ids.
 *
 * The placement in force is one 64-bit word, so it is read and compared
 * atomically, sent in every routed request's envelope and in every shard
 * reply (proto/metaembed.proto, Envelope.placement):
 *
 *   bits 63..32  epoch: +1 for every change; the newer placement wins
 *   bits 31..24  phase (below)
 *   bits 23..16  from: the group count documents are placed by before the move
 *   bits 15..8   to:   the group count after it (from == to when stable)
 *
 * A move from n to m groups goes through the phases in order; each starts
 * only once every replica of every involved group holds it, and a shard
 * refuses a data request routed with an older epoch, so no coordinator
 * acts on a placement two phases behind:
 *
 *   STABLE   writes to place_n, reads by place_n
 *   COPY     writes to place_n and place_m (dual writes); reads by place_n;
 *            the mover copies every document whose group changes
 *   SWITCHED writes to both; reads by place_m
 *   CLEAN    writes to place_m only; reads by place_m; the mover purges
 *            what groups no longer own; then STABLE at m
 *
 * During a move a group can hold documents it does not own (copies), so
 * searches, counts and id lists are answered by each shard over the
 * documents its group owns under the read placement only: complete, and
 * none counted twice. */
#ifndef ME_PLACEMENT_H
#define ME_PLACEMENT_H

#include <stddef.h>
#include <stdint.h>

#define ME_PLACEMENT_MAX_GROUPS 255

enum { ME_PHASE_STABLE = 0, ME_PHASE_COPY = 1, ME_PHASE_SWITCHED = 2, ME_PHASE_CLEAN = 3 };

typedef struct {
    uint32_t epoch;
    int phase;
    int from, to;  /* group counts, 1..ME_PLACEMENT_MAX_GROUPS */
} me_placement_t;

uint64_t me_placement_pack(me_placement_t p);
/* 0 or ME_EINVAL for a word that is not a placement (0 included). */
int me_placement_unpack(uint64_t word, me_placement_t *out);
/* "stable", "copy", "switched", "clean" ("?" for another number). */
const char *me_placement_phase_name(int phase);
/* "epoch 3, copy 2 -> 3 groups" into buf. */
const char *me_placement_describe(uint64_t word, char *buf, size_t cap);

/* Jump consistent hash (Lamping & Veach 2014): a bucket in [0, buckets). */
int me_jump_hash(uint64_t key, int buckets);
/* The group of id among the first n groups. */
int me_place(const char *id, size_t len, int n);

/* The group count reads (searches, Gets, counts) are placed by. */
int me_placement_read_groups(me_placement_t p);
/* The groups that take writes and DDL: max(from, to). */
int me_placement_span(me_placement_t p);
/* The groups a write of id goes to: out[0], and out[1] when the move's
 * dual writes send it to a second one; returns 1 or 2. */
int me_placement_write_targets(me_placement_t p, const char *id, size_t len, int out[2]);
/* Whether a shard of group g answers reads for id (it owns it under the
 * read placement). Stable placements own everything a group holds. */
int me_placement_owns(me_placement_t p, int g, const char *id, size_t len);

#endif
