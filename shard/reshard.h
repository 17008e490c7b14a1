/* The shard's part in online resharding (common/placement.h): it keeps the
 * cluster's placement word, persisted in its meta family so it survives a
 * restart, fences requests routed with an older one, answers reads over
 * the documents its group owns while a move is under way, and purges what
 * its group no longer owns once a move is done. */
#ifndef ME_SHARD_RESHARD_H
#define ME_SHARD_RESHARD_H

#include <stdint.h>

#include "common/server.h"
#include "shard/shard.h"

/* At start-up: the stored placement (none: 0). 0 or ME_ECORRUPT/ME_EIO. */
int me_reshard_load(me_shard_t *s, char *err, size_t errcap);

/* Checks the request's routing placement (r->placement) against the
 * shard's. A newer one is adopted (and persisted); with `refuse`, an older
 * or conflicting one is refused with ABORTED (the reply then carries the
 * shard's, me_shard_handle sets it). 0 when the request may go on. */
int me_reshard_fence(me_shard_t *s, me_request_t *r, int refuse);

/* Reads while a move is under way: the bitmap (malloc'd, c->n slots) of
 * the documents group r->group owns under the read placement, or NULL
 * when the placement is stable or the request was not routed (everything
 * counts). *oom set when it could not be made. Caller holds c's lock. */
uint64_t *me_reshard_owned_bits(const me_shard_t *s, const me_request_t *r, const me_coll_t *c, int *oom);

/* Removes from c every document and version record whose id group `group`
 * does not own among `of_groups` groups, without tombstones (the ids live
 * on elsewhere). *purged gets how many ids went. */
int me_reshard_purge(me_shard_t *s, me_coll_t *c, int group, int of_groups, uint64_t *purged, char *err, size_t errcap);

#endif
