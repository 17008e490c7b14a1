/* Hybrid search's fusion of a dense (MaxSim) and a lexical (BM25) score
 * over one candidate set, shared by the shard (its own candidates) and the
 * coordinator (the union of every shard's), so both fuse the same way:
 *
 *   RRF:      1/(rrf_k + rank_dense) + 1/(rrf_k + rank_lexical), ranks from
 *             1 within the set (ties by id); a candidate with BM25 0 shares
 *             no query word and gets no lexical term;
 *   WEIGHTED: alpha · minmax(dense) + (1 − alpha) · minmax(lexical), min and
 *             max over the set (a score range of 0 normalizes to 0). */
#ifndef ME_FUSION_H
#define ME_FUSION_H

#include <stddef.h>

#define ME_FUSION_RRF_K 60
#define ME_FUSION_ALPHA 0.5f

typedef struct {
    const char *id;       /* breaks ties */
    float dense, lexical;
    float fused;          /* out */
    size_t ref;           /* the caller's: slot or hit */
} me_fuse_item_t;

/* Sets items[i].fused and sorts items best first (ties by id). 0 or
 * ME_ENOMEM. */
int me_fuse(me_fuse_item_t *items, size_t n, int weighted, float alpha, int rrf_k);

#endif
