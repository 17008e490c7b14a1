#include "common/topk.h"

#include <stdlib.h>

#include "common/error.h"

/* 1 when a ranks strictly before (is better than) b. */
static int better(const me_topk_t *t, const me_scored_t *a, const me_scored_t *b) {
    if (a->score != b->score) return a->score > b->score;
    if (t->tie) return t->tie(a->idx, b->idx, t->tie_ctx) < 0;
    return a->idx < b->idx;
}

int me_topk_init(me_topk_t *t, size_t k, me_tie_fn tie, void *tie_ctx) {
    t->k = k;
    t->n = 0;
    t->tie = tie;
    t->tie_ctx = tie_ctx;
    t->items = malloc((k ? k : 1) * sizeof *t->items);
    return t->items ? 0 : ME_ENOMEM;
}

void me_topk_free(me_topk_t *t) {
    free(t->items);
    t->items = NULL;
    t->n = t->k = 0;
}

static void sift_down(me_topk_t *t, size_t i) {
    me_scored_t *h = t->items;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < t->n && better(t, &h[w], &h[l])) w = l;
        if (r < t->n && better(t, &h[w], &h[r])) w = r;
        if (w == i) return;
        me_scored_t tmp = h[i]; h[i] = h[w]; h[w] = tmp;
        i = w;
    }
}

void me_topk_push(me_topk_t *t, float score, uint32_t idx) {
    me_scored_t it = { score, idx };
    me_scored_t *h = t->items;
    if (t->k == 0) return;
    if (t->n < t->k) {
        size_t i = t->n++;
        h[i] = it;
        while (i > 0) {  /* sift up: the worst stays at the root */
            size_t p = (i - 1) / 2;
            if (!better(t, &h[p], &h[i])) break;
            me_scored_t tmp = h[i]; h[i] = h[p]; h[p] = tmp;
            i = p;
        }
        return;
    }
    if (!better(t, &it, &h[0])) return;
    h[0] = it;
    sift_down(t, 0);
}

void me_topk_push_n(me_topk_t *t, const float *scores, const uint32_t *idx, size_t n) {
    for (size_t i = 0; i < n; i++) {
        /* Fast reject: most candidates lose to the current worst. */
        if (t->n == t->k && scores[i] < t->items[0].score) continue;
        me_topk_push(t, scores[i], idx ? idx[i] : (uint32_t)i);
    }
}

size_t me_topk_finish(me_topk_t *t) {
    /* Heap sort: repeatedly move the worst to the end. */
    size_t n = t->n;
    while (t->n > 1) {
        me_scored_t tmp = t->items[0];
        t->items[0] = t->items[t->n - 1];
        t->items[t->n - 1] = tmp;
        t->n--;
        sift_down(t, 0);
    }
    t->n = n;
    return n;
}
