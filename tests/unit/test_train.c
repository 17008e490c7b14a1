/* Training end to end on a small synthetic retrieval task: every group's
 * loss falls and retrieval beats chance by a wide margin; a resumed run
 * continues bit-identically. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "encoder/model.h"
#include "encoder/train.h"
#include "tests/harness.h"

enum { N = 256, WQ = 4, WD = 12, V = 300 };

typedef struct {
    int32_t q[N * WQ], d[N * WD];
    int ql[N], dl[N], hard[N];
} toy_t;

/* Documents are 8-12 random tokens; a query is 3-4 of its document's tokens;
 * the hard negative shares half its document's tokens. */
static void make_toy(toy_t *t) {
    me_rng_t r = { 42 };
    for (int i = 0; i < N; i++) {
        t->dl[i] = 8 + (int)(me_rng_next(&r) % 5);
        for (int k = 0; k < WD; k++) t->d[i * WD + k] = k < t->dl[i] ? 3 + (int)(me_rng_next(&r) % (V - 3)) : 0;
        t->ql[i] = 3 + (int)(me_rng_next(&r) % 2);
        for (int k = 0; k < WQ; k++) t->q[i * WQ + k] = k < t->ql[i] ? t->d[i * WD + (int)(me_rng_next(&r) % t->dl[i])] : 0;
        t->hard[i] = (i + 1) % N;
    }
    for (int i = 0; i < N; i += 2)  /* pairs share the first half of their tokens */
        memcpy(&t->d[(i + 1) * WD], &t->d[i * WD], 4 * sizeof(int32_t));
}

static me_model_config_t toy_cfg(void) {
    me_model_config_t c = { .vocab = V, .max_text = WD, .layers = 1, .width = 32, .heads = 2, .dim = 16,
                            .meta_q = 4, .meta_c = 8 };
    return c;
}

static void toy_opts(me_train_opts_t *o, long steps) {
    me_train_defaults(o);
    o->batch = 16;
    o->steps = steps;
    o->warmup = 10;
    o->lr = 3e-3f;
    o->threads = 1;
    o->tau = 0.1f;
    me_mmr_group_t g[3] = { { 1, 1, 1 }, { 2, 4, 1 }, { 4, 8, 1 } };
    memcpy(o->groups, g, sizeof g);
    o->ngroups = 3;
}

TEST(train_toy_losses_fall_and_retrieval_beats_chance) {
    static toy_t toy;
    make_toy(&toy);
    me_train_data_t data = { N, WQ, WD, toy.q, toy.ql, toy.d, toy.dl, toy.hard, NULL, NULL, NULL, NULL };
    me_model_config_t c = toy_cfg();
    me_model_t *m = me_model_new(&c);
    me_model_init(m, 1);
    me_train_opts_t o;
    toy_opts(&o, 300);
    char err[256];
    me_trainer_t *t = me_trainer_new(m, &data, &o, err, sizeof err);
    ASSERT_TRUE(t != NULL);
    me_train_stats_t st;
    float first[3] = { 0 }, last[3] = { 0 }, acc[3] = { 0 };
    for (long s = 0; s < o.steps; s++) {
        ASSERT_OK(me_trainer_step(t, &st));
        for (int g = 0; g < 3; g++) {
            if (s < 20) first[g] += st.group_loss[g] / 20;
            if (s >= o.steps - 20) { last[g] += st.group_loss[g] / 20; acc[g] += st.group_acc[g] / 20; }
        }
    }
    for (int g = 0; g < 3; g++) {
        fprintf(stderr, "    group %d: loss %.3f -> %.3f, in-batch accuracy %.2f (chance %.2f)\n", g, first[g],
                last[g], acc[g], 1.0 / (2 * o.batch));
        ASSERT_TRUE(last[g] < 0.6 * first[g]);
        ASSERT_TRUE(acc[g] > 0.5);  /* chance is 1/32 */
    }
    me_trainer_free(t);
    me_model_free(m);
}

/* Steps 0..9 in one go, or 0..4, save, 5..9 from the saved state: the same
 * parameters bit for bit (order, negatives and AdamW state all resume). */
TEST(train_resume_is_exact) {
    static toy_t toy;
    make_toy(&toy);
    me_train_data_t data = { N, WQ, WD, toy.q, toy.ql, toy.d, toy.dl, toy.hard, NULL, NULL, NULL, NULL };
    me_model_config_t c = toy_cfg();
    me_train_opts_t o;
    toy_opts(&o, 40);
    char err[256];
    me_model_t *a = me_model_new(&c), *b = me_model_new(&c), *b2 = me_model_new(&c);
    me_model_init(a, 3);
    me_model_init(b, 3);
    me_trainer_t *ta = me_trainer_new(a, &data, &o, err, sizeof err);
    for (int s = 0; s < 30; s++) ASSERT_OK(me_trainer_step(ta, NULL));  /* crosses an epoch (16 steps) */
    me_trainer_t *tb = me_trainer_new(b, &data, &o, err, sizeof err);
    for (int s = 0; s < 13; s++) ASSERT_OK(me_trainer_step(tb, NULL));
    /* "Checkpoint": copy parameters and AdamW moments into a fresh model. */
    size_t n;
    float *pb = me_model_param_data(b, &n), *pb2 = me_model_param_data(b2, &n);
    memcpy(pb2, pb, n * sizeof *pb);
    float *m1, *m2, *n1, *n2;
    me_model_opt_state(b, &m1, &m2, &n);
    me_model_opt_state(b2, &n1, &n2, &n);
    memcpy(n1, m1, n * sizeof *m1);
    memcpy(n2, m2, n * sizeof *m2);
    me_trainer_t *tb2 = me_trainer_new(b2, &data, &o, err, sizeof err);
    me_trainer_resume_at(tb2, me_trainer_steps_done(tb));
    for (int s = 13; s < 30; s++) ASSERT_OK(me_trainer_step(tb2, NULL));
    float *pa = me_model_param_data(a, &n);
    pb2 = me_model_param_data(b2, &n);
    ASSERT_TRUE(memcmp(pa, pb2, n * sizeof *pa) == 0);
    me_trainer_free(ta);
    me_trainer_free(tb);
    me_trainer_free(tb2);
    me_model_free(a);
    me_model_free(b);
    me_model_free(b2);
}
