#include <stdlib.h>
#include <string.h>

#include "common/topk.h"
#include "tests/harness.h"

static const float *g_scores;
static int ref_cmp(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    if (g_scores[x] != g_scores[y]) return g_scores[x] > g_scores[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* Top-k equals a full sort (score desc, index asc) for many k, with heavy
 * ties, whatever the push order. */
TEST(topk_matches_full_sort_with_ties) {
    me_rng_t r = { 1 };
    enum { N = 2000 };
    float *scores = malloc(N * sizeof *scores);
    uint32_t *ref = malloc(N * sizeof *ref);
    for (int trial = 0; trial < 20; trial++) {
        for (int i = 0; i < N; i++) scores[i] = (float)(me_rng_next(&r) % 50);  /* many ties */
        for (int i = 0; i < N; i++) ref[i] = (uint32_t)i;
        g_scores = scores;
        qsort(ref, N, sizeof *ref, ref_cmp);
        size_t ks[] = { 1, 7, 10, 100, 1999, 2000, 5000 };
        for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
            me_topk_t t;
            ASSERT_OK(me_topk_init(&t, ks[ki], NULL, NULL));
            if (trial % 2) me_topk_push_n(&t, scores, NULL, N);
            else for (int i = N - 1; i >= 0; i--) me_topk_push(&t, scores[i], (uint32_t)i);
            size_t n = me_topk_finish(&t);
            ASSERT_EQ(n, ks[ki] < N ? ks[ki] : N);
            for (size_t i = 0; i < n; i++) {
                ASSERT_EQ(t.items[i].idx, ref[i]);
                ASSERT_TRUE(t.items[i].score == scores[ref[i]]);
            }
            me_topk_free(&t);
        }
    }
    free(scores);
    free(ref);
}

static int reverse_tie(uint32_t a, uint32_t b, void *ctx) {
    (void)ctx;
    return a > b ? -1 : a < b;
}

TEST(topk_custom_tie_break_and_k0) {
    me_topk_t t;
    ASSERT_OK(me_topk_init(&t, 2, reverse_tie, NULL));
    for (uint32_t i = 0; i < 5; i++) me_topk_push(&t, 1.0f, i);
    ASSERT_EQ(me_topk_finish(&t), 2);
    ASSERT_EQ(t.items[0].idx, 4);
    ASSERT_EQ(t.items[1].idx, 3);
    me_topk_free(&t);
    ASSERT_OK(me_topk_init(&t, 0, NULL, NULL));
    me_topk_push(&t, 1.0f, 1);
    ASSERT_EQ(me_topk_finish(&t), 0);
    me_topk_free(&t);
}
