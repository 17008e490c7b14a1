/* The encoder's dynamic batching: concurrent requests get the same vectors
 * they would get alone, and requests that wait together share passes. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "encoder/batcher.h"
#include "encoder/embedder.h"
#include "encoder/model.h"
#include "encoder/ops.h"
#include "tests/harness.h"

#define THREADS 6
#define PER_THREAD 12

typedef struct {
    me_batcher_t *b;
    me_embedder_t *w;
    int id;
    me_side_t side;
    const char *texts[3];
    int n;
    float *out;
    int rc;
} caller_t;

static void *call(void *arg) {
    caller_t *c = arg;
    c->rc = 0;
    for (int i = 0; i < PER_THREAD && c->rc == 0; i++)
        c->rc = me_batcher_encode(c->b, c->w, c->side, c->texts, c->n, c->out);
    return NULL;
}

TEST(batcher_concurrent_requests_match_solo_and_share_passes) {
    me_model_config_t cfg = { .vocab = 300, .max_text = 12, .layers = 2, .width = 16, .heads = 2, .dim = 8,
                              .meta_q = 3, .meta_c = 5 };
    me_model_t *m = me_model_new(&cfg);
    ASSERT_TRUE(m != NULL);
    me_model_init(m, 11);
    me_tok_t *tok;
    char err[128];
    const char *corpus[] = { "a text editor for programmers", "real-time strategy game", "json parsing library" };
    ASSERT_OK(me_tok_train(corpus, NULL, 3, 300, &tok, err, sizeof err));
    me_ops_set_threads(1);
    me_embedder_t *solo = me_embedder_wrap(m, tok);
    me_batcher_t *b = me_batcher_new(1, 64);  /* one lane: others must queue */
    ASSERT_TRUE(solo && b);

    caller_t cs[THREADS];
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++) {
        caller_t *c = &cs[t];
        memset(c, 0, sizeof *c);
        c->b = b;
        c->w = me_embedder_wrap(m, tok);
        c->side = t % 2 ? ME_SIDE_QUERY : ME_SIDE_DOC;  /* both sides in the queue at once */
        c->n = 1 + t % 3;
        for (int i = 0; i < c->n; i++) c->texts[i] = corpus[(t + i) % 3];
        int rows = c->side == ME_SIDE_QUERY ? cfg.meta_q : cfg.meta_c;
        c->out = malloc((size_t)c->n * rows * cfg.dim * sizeof(float));
        ASSERT_TRUE(c->w && c->out);
    }
    for (int t = 0; t < THREADS; t++) ASSERT_EQ(pthread_create(&th[t], NULL, call, &cs[t]), 0);
    for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);

    for (int t = 0; t < THREADS; t++) {
        caller_t *c = &cs[t];
        ASSERT_OK(c->rc);
        int rows = c->side == ME_SIDE_QUERY ? cfg.meta_q : cfg.meta_c;
        size_t nf = (size_t)c->n * rows * cfg.dim;
        float *want = malloc(nf * sizeof *want);
        ASSERT_TRUE(want != NULL);
        ASSERT_OK(me_embedder_encode(solo, c->side, c->texts, NULL, c->n, want));
        /* A text's rows do not depend on its batch-mates; only the summation
         * order inside sgemm may differ with the batch size. */
        for (size_t i = 0; i < nf; i++) ASSERT_NEAR(c->out[i], want[i], 1e-5);
        free(want);
    }
    me_batcher_stats_t st;
    me_batcher_stats(b, &st);
    ASSERT_EQ(st.requests, (uint64_t)THREADS * PER_THREAD);
    ASSERT_EQ(st.queued, 0);
    ASSERT_EQ(st.running, 0);
    uint64_t texts = 0;
    for (int t = 0; t < THREADS; t++) texts += (uint64_t)cs[t].n * PER_THREAD;
    ASSERT_EQ(st.texts, texts);
    ASSERT_TRUE(st.batches >= 1 && st.batches <= st.requests);
    printf("    %llu requests in %llu passes\n", (unsigned long long)st.requests, (unsigned long long)st.batches);

    for (int t = 0; t < THREADS; t++) {
        me_embedder_free(cs[t].w);
        free(cs[t].out);
    }
    me_batcher_free(b);
    me_embedder_free(solo);
    me_tok_free(tok);
    me_model_free(m);
}
