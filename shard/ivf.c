#include "shard/ivf.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/topk.h"

/* Rows scored per sgemm call: bounds the [rows, nlist] score scratch. */
#define BLOCK 1024

int me_ivf_auto_lists(size_t n) {
    double l = 4.0 * sqrt((double)n);
    if (l > (double)n / 8) l = (double)n / 8;
    if (l < 16) l = 16;
    if (l > ME_IVF_MAX_LISTS) l = ME_IVF_MAX_LISTS;
    return (int)l;
}

static uint64_t next_rand(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void normalise(float *v, int dim) {
    double ss = 0;
    for (int i = 0; i < dim; i++) ss += (double)v[i] * v[i];
    if (ss <= 0) return;
    float inv = (float)(1.0 / sqrt(ss));
    for (int i = 0; i < dim; i++) v[i] *= inv;
}

/* argmax over each row of scores[m, nlist]. */
static void argmax_rows(const float *scores, size_t m, int nlist, int32_t *out) {
    for (size_t r = 0; r < m; r++) {
        const float *s = scores + r * (size_t)nlist;
        int best = 0;
        float bv = s[0];
        for (int l = 1; l < nlist; l++)
            if (s[l] > bv) {
                bv = s[l];
                best = l;
            }
        out[r] = best;
    }
}

int me_ivf_nearest_n(const me_ivf_t *ix, const float *vecs, size_t n, int32_t *out) {
    size_t block = n < BLOCK ? n : BLOCK;
    float *scores = malloc((block ? block : 1) * (size_t)ix->nlist * sizeof *scores);
    if (!scores) return ME_ENOMEM;
    for (size_t off = 0; off < n; off += block) {
        size_t m = n - off < block ? n - off : block;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, ix->nlist, ix->dim, 1.0f,
                    vecs + off * (size_t)ix->dim, ix->dim, ix->centroids, ix->dim, 0.0f, scores, ix->nlist);
        argmax_rows(scores, m, ix->nlist, out + off);
    }
    free(scores);
    return 0;
}

int me_ivf_nearest(const me_ivf_t *ix, const float *v) {
    float stack[4096];
    float *scores = ix->nlist <= 4096 ? stack : malloc((size_t)ix->nlist * sizeof *scores);
    if (!scores) return 0;  /* out of memory: any list keeps the document findable */
    cblas_sgemv(CblasRowMajor, CblasNoTrans, ix->nlist, ix->dim, 1.0f, ix->centroids, ix->dim, v, 1, 0.0f, scores, 1);
    int32_t best;
    argmax_rows(scores, 1, ix->nlist, &best);
    if (scores != stack) free(scores);
    return best;
}

static int grow_slots(me_ivf_t *ix, size_t need) {
    if (need <= ix->slot_cap) return 0;
    size_t ncap = ix->slot_cap ? ix->slot_cap : 1024;
    while (ncap < need) ncap *= 2;
    int32_t *lo = realloc(ix->list_of, ncap * sizeof *lo);
    if (!lo) return ME_ENOMEM;
    ix->list_of = lo;
    uint32_t *po = realloc(ix->pos_of, ncap * sizeof *po);
    if (!po) return ME_ENOMEM;
    ix->pos_of = po;
    for (size_t i = ix->slot_cap; i < ncap; i++) lo[i] = -1;
    ix->slot_cap = ncap;
    return 0;
}

me_ivf_t *me_ivf_train(const float *sample, size_t n, int dim, int nlist, size_t slot_cap, uint64_t seed) {
    if (nlist < 1 || n < (size_t)nlist || dim < 1) return NULL;
    me_ivf_t *ix = calloc(1, sizeof *ix);
    float *x = malloc(n * (size_t)dim * sizeof *x);
    float *sums = calloc((size_t)nlist * dim, sizeof *sums);
    int32_t *assign = malloc(n * sizeof *assign);
    size_t *count = calloc((size_t)nlist, sizeof *count);
    if (ix) {
        ix->dim = dim;
        ix->nlist = nlist;
        ix->centroids = malloc((size_t)nlist * dim * sizeof *ix->centroids);
        ix->members = calloc((size_t)nlist, sizeof *ix->members);
        ix->len = calloc((size_t)nlist, sizeof *ix->len);
        ix->cap = calloc((size_t)nlist, sizeof *ix->cap);
    }
    if (!ix || !x || !sums || !assign || !count || !ix->centroids || !ix->members || !ix->len || !ix->cap ||
        grow_slots(ix, slot_cap) != 0)
        goto fail;
    memcpy(x, sample, n * (size_t)dim * sizeof *x);
    for (size_t i = 0; i < n; i++) normalise(x + i * dim, dim);
    uint64_t rs = seed * 0x9e3779b97f4a7c15ULL + 1;
    /* Initial centroids: distinct sample points (a partial Fisher-Yates
     * over the sample's indices). */
    size_t *order = malloc(n * sizeof *order);
    if (!order) goto fail;
    for (size_t i = 0; i < n; i++) order[i] = i;
    for (int l = 0; l < nlist; l++) {
        size_t j = (size_t)l + (size_t)(next_rand(&rs) % (n - (size_t)l));
        size_t t = order[l];
        order[l] = order[j];
        order[j] = t;
        memcpy(ix->centroids + (size_t)l * dim, x + order[l] * dim, (size_t)dim * sizeof(float));
    }
    free(order);
    for (int it = 0; it < ME_IVF_ITERS; it++) {
        if (me_ivf_nearest_n(ix, x, n, assign) != 0) goto fail;
        memset(sums, 0, (size_t)nlist * dim * sizeof *sums);
        memset(count, 0, (size_t)nlist * sizeof *count);
        for (size_t i = 0; i < n; i++) {
            float *s = sums + (size_t)assign[i] * dim;
            const float *v = x + i * dim;
            for (int d = 0; d < dim; d++) s[d] += v[d];
            count[assign[i]]++;
        }
        for (int l = 0; l < nlist; l++) {
            float *cen = ix->centroids + (size_t)l * dim;
            if (count[l]) memcpy(cen, sums + (size_t)l * dim, (size_t)dim * sizeof(float));
            else memcpy(cen, x + (size_t)(next_rand(&rs) % n) * dim, (size_t)dim * sizeof(float));
            normalise(cen, dim);
        }
    }
    free(x);
    free(sums);
    free(assign);
    free(count);
    return ix;
fail:
    free(x);
    free(sums);
    free(assign);
    free(count);
    me_ivf_free(ix);
    return NULL;
}

void me_ivf_free(me_ivf_t *ix) {
    if (!ix) return;
    if (ix->members)
        for (int l = 0; l < ix->nlist; l++) free(ix->members[l]);
    free(ix->members);
    free(ix->len);
    free(ix->cap);
    free(ix->centroids);
    free(ix->list_of);
    free(ix->pos_of);
    free(ix);
}

/* Takes slot out of its list (the list's last member fills the gap). */
static void unlink_slot(me_ivf_t *ix, uint32_t slot) {
    int l = ix->list_of[slot];
    if (l < 0) return;
    uint32_t p = ix->pos_of[slot], end = --ix->len[l];
    if (p != end) {
        uint32_t moved = ix->members[l][end];
        ix->members[l][p] = moved;
        ix->pos_of[moved] = p;
    }
    ix->list_of[slot] = -1;
    ix->assigned--;
}

int me_ivf_set(me_ivf_t *ix, uint32_t slot, int list) {
    if (grow_slots(ix, (size_t)slot + 1) != 0) return ME_ENOMEM;
    if (ix->list_of[slot] == list) return 0;
    if (ix->len[list] == ix->cap[list]) {
        uint32_t ncap = ix->cap[list] ? ix->cap[list] * 2 : 16;
        uint32_t *m = realloc(ix->members[list], (size_t)ncap * sizeof *m);
        if (!m) return ME_ENOMEM;
        ix->members[list] = m;
        ix->cap[list] = ncap;
    }
    unlink_slot(ix, slot);
    ix->pos_of[slot] = ix->len[list];
    ix->members[list][ix->len[list]++] = slot;
    ix->list_of[slot] = list;
    ix->assigned++;
    return 0;
}

void me_ivf_remove_slot(me_ivf_t *ix, uint32_t slot, uint32_t last) {
    if (slot >= ix->slot_cap) return;
    unlink_slot(ix, slot);
    if (slot == last || last >= ix->slot_cap) return;
    int l = ix->list_of[last];
    if (l >= 0) {
        ix->members[l][ix->pos_of[last]] = slot;
        ix->list_of[slot] = l;
        ix->pos_of[slot] = ix->pos_of[last];
        ix->list_of[last] = -1;
    }
}

int me_ivf_rank_lists(const me_ivf_t *ix, const float *q, int want, int *lists) {
    if (want > ix->nlist) want = ix->nlist;
    if (want <= 0) return 0;
    float *scores = malloc((size_t)ix->nlist * sizeof *scores);
    me_topk_t best;
    if (!scores || me_topk_init(&best, (size_t)want, NULL, NULL) != 0) {
        free(scores);
        return -1;
    }
    cblas_sgemv(CblasRowMajor, CblasNoTrans, ix->nlist, ix->dim, 1.0f, ix->centroids, ix->dim, q, 1, 0.0f, scores, 1);
    me_topk_push_n(&best, scores, NULL, (size_t)ix->nlist);
    size_t got = me_topk_finish(&best);
    for (size_t i = 0; i < got; i++) lists[i] = (int)best.items[i].idx;
    me_topk_free(&best);
    free(scores);
    return (int)got;
}

uint64_t me_ivf_bytes(const me_ivf_t *ix, size_t n) {
    return (uint64_t)ix->nlist * ix->dim * sizeof(float) + (uint64_t)n * (sizeof(uint32_t) * 2 + sizeof(int32_t));
}
