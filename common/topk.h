/* Top-k selection: a bounded min-heap that keeps the k best (score, index)
 * pairs seen. Ties on score are broken by a caller-supplied order (the
 * shard uses the doc id), so results are the same whatever order documents
 * are visited in. */
#ifndef ME_TOPK_H
#define ME_TOPK_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    float score;
    uint32_t idx;
} me_scored_t;

/* < 0 when a ranks before b (at equal score). */
typedef int (*me_tie_fn)(uint32_t a, uint32_t b, void *ctx);

typedef struct {
    me_scored_t *items;  /* heap: items[0] is the worst kept */
    size_t k, n;
    me_tie_fn tie;
    void *tie_ctx;
} me_topk_t;

/* tie may be NULL (then the smaller index ranks first). */
int me_topk_init(me_topk_t *t, size_t k, me_tie_fn tie, void *tie_ctx);
void me_topk_free(me_topk_t *t);
void me_topk_push(me_topk_t *t, float score, uint32_t idx);
/* Push n scores for indices idx[i] (or i when idx is NULL). */
void me_topk_push_n(me_topk_t *t, const float *scores, const uint32_t *idx, size_t n);
/* Sorts the kept items best first, in place; returns the count. The heap
 * is spent afterwards (call me_topk_free). */
size_t me_topk_finish(me_topk_t *t);

#endif
