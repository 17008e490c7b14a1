/* An inverted-file (IVF) index over a collection's first document vectors:
 * the cascade's optional sub-linear coarse stage (collection option
 * coarse_index = ivf).
 *
 *   - nlist centroids, trained by spherical k-means on a sample of the
 *     first vectors (the scores are inner products of unit vectors);
 *   - one list per centroid: the slots whose first vector is nearest to it;
 *   - a search scores the query's first vector against the centroids and
 *     scans only the members of the best lists ("probing"), then the
 *     cascade's later stages run exactly as after the flat scan.
 *
 * Why our own and not FAISS's IndexIVFFlat (libfaiss-dev): the lists must
 * follow the collection's slots (a delete moves the last slot into the
 * hole) and its dtypes (f16, int8 with scales) without a second copy of the
 * vectors, filters must be tested per member with the shard's bitmaps, and
 * the scan must use the same kernel as the flat stage so both give the same
 * score to a document. FAISS keeps its own copy of every vector, in f32 or
 * its own codes, keyed by its own ids. tests/bench/bench_scale.c measures
 * both on the same vectors.
 *
 * This module is the data structure only. The caller serialises access: the
 * collection's write lock for changes, its read lock for probing
 * (shard/collection.c keeps the lists in step with every put and remove;
 * shard/indexer.c trains and fills a new index in the background). */
#ifndef ME_IVF_H
#define ME_IVF_H

#include <stddef.h>
#include <stdint.h>

/* Collections smaller than this stay on the flat scan (it is as fast). */
#define ME_IVF_MIN_DOCS 2048
#define ME_IVF_MAX_LISTS 65536
/* k-means: training points per centroid (at most) and iterations. */
#define ME_IVF_SAMPLE_PER_LIST 40
#define ME_IVF_ITERS 8
/* A trained index is retrained once the collection has grown this many
 * times over the size it was trained at. */
#define ME_IVF_RETRAIN_GROWTH 4
/* Adaptive probing (probe = 0): lists are scanned nearest first until this
 * many documents per stage-1 survivor have been scanned. */
#define ME_IVF_SCAN_FACTOR 8

typedef struct {
    int dim, nlist;
    float *centroids;      /* [nlist, dim], unit length */
    uint32_t **members;    /* per list: slots */
    uint32_t *len, *cap;   /* per list */
    int32_t *list_of;      /* [slot_cap]: the slot's list, -1 = not assigned */
    uint32_t *pos_of;      /* [slot_cap]: its position in that list */
    size_t slot_cap;
    size_t assigned;       /* slots with a list */
    size_t trained_n;      /* collection size when trained */
    size_t cursor;         /* background fill: next slot to look at */
    double train_seconds;  /* k-means time */
} me_ivf_t;

/* The list count for a collection of n documents when none is configured:
 * 4·√n, in [16, ME_IVF_MAX_LISTS] and at most n / 8. */
int me_ivf_auto_lists(size_t n);

/* Trains nlist centroids on sample[n, dim] (f32; normalised here) with
 * spherical k-means, ME_IVF_ITERS rounds of OpenBLAS sgemm; empty lists are
 * re-seeded from sample points. The lists start empty with room for
 * slot_cap slots. NULL on allocation failure or n < nlist. */
me_ivf_t *me_ivf_train(const float *sample, size_t n, int dim, int nlist, size_t slot_cap, uint64_t seed);
void me_ivf_free(me_ivf_t *ix);

/* The nearest centroid of v (f32, dim; need not be unit length). */
int me_ivf_nearest(const me_ivf_t *ix, const float *v);
/* The nearest centroid of each of vecs[n, dim] into out[n] (sgemm in
 * blocks: the background fill's way of assigning many at once). 0 or
 * ME_ENOMEM. */
int me_ivf_nearest_n(const me_ivf_t *ix, const float *vecs, size_t n, int32_t *out);

/* Puts slot in list (moving it from the one it was in). 0 or ME_ENOMEM. */
int me_ivf_set(me_ivf_t *ix, uint32_t slot, int list);
/* The collection removed `slot` and moved slot `last` into it (slot ==
 * last: it removed the last slot). */
void me_ivf_remove_slot(me_ivf_t *ix, uint32_t slot, uint32_t last);

/* The lists in order of their centroid's inner product with q (f32, dim),
 * best first: up to `want` of them into lists[], their count returned; -1
 * on allocation failure. */
int me_ivf_rank_lists(const me_ivf_t *ix, const float *q, int want, int *lists);

/* Bytes the index adds to a collection of n documents: centroids, list
 * entries and the per-slot maps. */
uint64_t me_ivf_bytes(const me_ivf_t *ix, size_t n);

#endif
