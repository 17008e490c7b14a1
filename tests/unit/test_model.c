/* The whole encoder: gradients against finite differences, unit-norm and
 * deterministic outputs, padding that changes nothing. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "encoder/model.h"
#include "encoder/ops.h"
#include "tests/harness.h"

static me_model_config_t tiny(void) {
    me_model_config_t c = { .vocab = 300, .max_text = 5, .layers = 2, .width = 8, .heads = 2, .dim = 4,
                            .meta_q = 3, .meta_c = 4 };
    return c;
}

/* loss = Σ w·out in double, for a side's batch. */
static double loss_of(me_model_t *m, me_acts_t *a, const int32_t *tok, const int *lens, int B, const float *w,
                      float *out, int n) {
    me_model_forward(m, a, tok, lens, B, out);
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)w[i] * out[i];
    return s;
}

/* Checks ∂loss/∂θ for a few entries of every parameter tensor. Float32
 * forward passes with a central difference of h = 1e-2 leave an error of
 * about 1e-4 in these sums (rounding ~1e-7 relative / h, plus O(h²) terms):
 * the bound below is 20x that plus 3% of the gradient. */
static void grad_check(me_side_t side) {
    me_model_config_t c = tiny();
    char err[128];
    ASSERT_OK(me_model_config_check(&c, err, sizeof err));
    me_model_t *m = me_model_new(&c);
    ASSERT_TRUE(m != NULL);
    me_model_init(m, 7);
    /* Larger weights than the init, so every path carries gradient. */
    size_t n;
    float *theta = me_model_param_data(m, &n);
    me_rng_t r = { 3 };
    for (size_t i = 0; i < n; i++) theta[i] += 0.2f * (float)me_rng_normal(&r);
    enum { B = 3 };
    int M = side == ME_SIDE_QUERY ? c.meta_q : c.meta_c;
    me_acts_t *a = me_acts_new(m, side, B);
    int32_t tok[B * 5] = { 4, 9, 299, 17, 0, 5, 5, 6, 0, 0, 7, 8, 9, 10, 11 };
    int lens[B] = { 4, 3, 5 };
    int nout = B * M * c.dim;
    float *out = malloc((size_t)nout * sizeof *out), *w = malloc((size_t)nout * sizeof *w);
    for (int i = 0; i < nout; i++) w[i] = (float)me_rng_normal(&r);
    me_model_zero_grad(m);
    loss_of(m, a, tok, lens, B, w, out, nout);
    me_model_backward(m, a, w);
    float *grad = me_model_grad_data(m, &n);
    float *g = malloc(n * sizeof *g);
    memcpy(g, grad, n * sizeof *g);
    size_t sizes[ME_MODEL_NUM_PARAMS];
    me_model_param_sizes(&c, sizes, NULL);
    size_t off = 0;
    int checked = 0;
    for (int t = 0; t < ME_MODEL_NUM_PARAMS; t++) {
        for (int k = 0; k < 6; k++) {
            size_t i = off + (size_t)(me_rng_next(&r) % sizes[t]);
            /* The other side's meta tokens get no gradient from this side. */
            if (t == 0 && k < 3) i = off + (size_t)tok[k] * c.width + (size_t)k;  /* rows that are used */
            float save = theta[i];
            double h = 1e-2;
            theta[i] = save + (float)h;
            double lp = loss_of(m, a, tok, lens, B, w, out, nout);
            theta[i] = save - (float)h;
            double lm = loss_of(m, a, tok, lens, B, w, out, nout);
            theta[i] = save;
            double num = (lp - lm) / (2 * h);
            double tol = 2e-3 + 0.03 * fabs(num);
            if (fabs(num - g[i]) > tol)
                fprintf(stderr, "    %s[%zu]: numeric %.6g analytic %.6g\n", me_model_param_names[t], i - off, num, g[i]);
            ASSERT_NEAR(g[i], num, tol);
            checked++;
        }
        off += sizes[t];
    }
    ASSERT_EQ(checked, 6 * ME_MODEL_NUM_PARAMS);
    free(out);
    free(w);
    free(g);
    me_acts_free(a);
    me_model_free(m);
}

TEST(model_gradients_match_finite_differences_query_side) { grad_check(ME_SIDE_QUERY); }
TEST(model_gradients_match_finite_differences_doc_side) { grad_check(ME_SIDE_DOC); }

TEST(model_outputs_unit_norm_deterministic_padding_ignored) {
    me_model_config_t c = tiny();
    me_model_t *m = me_model_new(&c);
    me_model_init(m, 1);
    me_acts_t *a = me_acts_new(m, ME_SIDE_DOC, 2);
    int32_t tok[10] = { 4, 9, 10, 0, 0, 4, 9, 10, 77, 123 };  /* same real tokens, different padding */
    int lens[2] = { 3, 3 };
    float out1[2 * 4 * 4], out2[2 * 4 * 4];
    me_model_forward(m, a, tok, lens, 2, out1);
    me_model_forward(m, a, tok, lens, 2, out2);
    ASSERT_TRUE(memcmp(out1, out2, sizeof out1) == 0);
    for (int v = 0; v < 8; v++) {
        double s = 0;
        for (int i = 0; i < 4; i++) s += (double)out1[v * 4 + i] * out1[v * 4 + i];
        ASSERT_NEAR(s, 1.0, 1e-5);
    }
    /* Rows 0 and 1 hold the same text: padding tokens change nothing. */
    for (int i = 0; i < 16; i++) ASSERT_NEAR(out1[i], out1[16 + i], 1e-6);
    me_acts_free(a);
    me_model_free(m);
}
