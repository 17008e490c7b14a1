#include "common/fusion.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"

static int by_fused(const void *a, const void *b) {
    const me_fuse_item_t *x = a, *y = b;
    if (x->fused != y->fused) return x->fused > y->fused ? -1 : 1;
    return strcmp(x->id, y->id);
}

static int by_dense(const void *a, const void *b) {
    const me_fuse_item_t *x = *(me_fuse_item_t *const *)a, *y = *(me_fuse_item_t *const *)b;
    if (x->dense != y->dense) return x->dense > y->dense ? -1 : 1;
    return strcmp(x->id, y->id);
}

static int by_lexical(const void *a, const void *b) {
    const me_fuse_item_t *x = *(me_fuse_item_t *const *)a, *y = *(me_fuse_item_t *const *)b;
    if (x->lexical != y->lexical) return x->lexical > y->lexical ? -1 : 1;
    return strcmp(x->id, y->id);
}

/* Adds 1/(k + rank) by each ranking; the lexical one stops at BM25 0. */
static int rrf(me_fuse_item_t *items, size_t n, int k) {
    me_fuse_item_t **order = malloc((n ? n : 1) * sizeof *order);
    if (!order) return ME_ENOMEM;
    for (size_t i = 0; i < n; i++) { items[i].fused = 0; order[i] = &items[i]; }
    qsort(order, n, sizeof *order, by_dense);
    for (size_t r = 0; r < n; r++) order[r]->fused += 1.0f / (float)(k + (int)r + 1);
    qsort(order, n, sizeof *order, by_lexical);
    for (size_t r = 0; r < n && order[r]->lexical > 0; r++) order[r]->fused += 1.0f / (float)(k + (int)r + 1);
    free(order);
    return 0;
}

static void weighted_sum(me_fuse_item_t *items, size_t n, float alpha) {
    float dmin = 0, dmax = 0, lmin = 0, lmax = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || items[i].dense < dmin) dmin = items[i].dense;
        if (i == 0 || items[i].dense > dmax) dmax = items[i].dense;
        if (i == 0 || items[i].lexical < lmin) lmin = items[i].lexical;
        if (i == 0 || items[i].lexical > lmax) lmax = items[i].lexical;
    }
    for (size_t i = 0; i < n; i++) {
        float d = dmax > dmin ? (items[i].dense - dmin) / (dmax - dmin) : 0;
        float l = lmax > lmin ? (items[i].lexical - lmin) / (lmax - lmin) : 0;
        items[i].fused = alpha * d + (1 - alpha) * l;
    }
}

int me_fuse(me_fuse_item_t *items, size_t n, int weighted, float alpha, int rrf_k) {
    if (n == 0) return 0;
    if (weighted) weighted_sum(items, n, alpha);
    else if (rrf(items, n, rrf_k > 0 ? rrf_k : ME_FUSION_RRF_K) != 0) return ME_ENOMEM;
    qsort(items, n, sizeof *items, by_fused);
    return 0;
}
