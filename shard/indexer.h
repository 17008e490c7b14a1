/* The shard's background indexer: one thread that builds the IVF coarse
 * index (shard/ivf.h) of every collection with coarse_index = ivf.
 *
 * A build has two parts, neither holding a lock for long:
 *   1. train: copy a sample of first vectors under the read locks, run
 *      k-means with no lock held, install the result as c->ivf_next (from
 *      then on every put and remove keeps it in step);
 *   2. fill: under the collection's write lock, ME_INDEXER_FILL_BLOCK slots
 *      at a time, put each slot not yet in a list into its nearest one; when
 *      every slot is in one, ivf_next replaces c->ivf and searches use it.
 * Until the first index is complete the flat scan answers; while a rebuild
 * runs (the collection grew ME_IVF_RETRAIN_GROWTH-fold) the old index does.
 * Nothing is persisted: at start every index is built again this way. */
#ifndef ME_INDEXER_H
#define ME_INDEXER_H

#include "shard/collection.h"
#include "shard/shard.h"

#define ME_INDEXER_FILL_BLOCK 2048

/* Starts the thread (OpenBLAS limited to one thread: requests keep the
 * other cores). 0 or ME_ENOMEM. */
int me_indexer_start(me_shard_t *s);
/* Stops it and waits (before collections are freed). */
void me_indexer_stop(me_shard_t *s);

/* Part 2 for up to `most` slots of c->ivf_next (non-NULL), scratch
 * allocated here: 0 while there is more to do, 1 once it replaced c->ivf,
 * -1 when it was given up (out of memory; c->ivf_next is then NULL).
 * Caller holds c->lock (write). */
int me_indexer_fill(me_coll_t *c, size_t most);

/* Builds c's index now in the calling thread, with no locking (the caller
 * keeps every other user out): tests and benchmarks. 0 or ME_ENOMEM. */
int me_indexer_build_now(me_coll_t *c, uint64_t seed);

#endif
