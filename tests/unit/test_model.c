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

/* The same with 4 x 4 images cut into 2 x 2 patches (4 patches). */
static me_model_config_t tiny_images(void) {
    me_model_config_t c = tiny();
    c.image_size = 4;
    c.patch = 2;
    return c;
}

/* An item's images for the checks: (B, 4, 4, 3) pixels, and which have one. */
typedef struct {
    const float *pixels;
    const uint8_t *has;
} images_t;

/* loss = Σ w·out in double, for a side's batch. */
static double loss_of(me_model_t *m, me_acts_t *a, const int32_t *tok, const int *lens, const images_t *im, int B,
                      const float *w, float *out, int n) {
    if (im) me_model_forward_images(m, a, tok, lens, im->pixels, im->has, B, out);
    else me_model_forward(m, a, tok, lens, B, out);
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)w[i] * out[i];
    return s;
}

/* Checks ∂loss/∂θ for a few entries of every parameter tensor. Float32
 * forward passes with a central difference of h = 1e-2 leave an error of
 * about 1e-4 in these sums (rounding ~1e-7 relative / h, plus O(h²) terms):
 * the bound below is 20x that plus 3% of the gradient. */
static void grad_check(me_side_t side, int images) {
    me_model_config_t c = images ? tiny_images() : tiny();
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
    me_acts_t *a = images ? me_acts_new_images(m, side, B, c.max_text) : me_acts_new(m, side, B, c.max_text);
    ASSERT_TRUE(a != NULL);
    int32_t tok[B * 5] = { 4, 9, 299, 17, 0, 5, 5, 6, 0, 0, 7, 8, 9, 10, 11 };
    /* With images: item 0 is image + text, item 1 text only, item 2 image only. */
    int lens[B] = { 4, 3, images ? 0 : 5 };
    float pixels[B * 4 * 4 * 3];
    for (size_t i = 0; i < sizeof pixels / sizeof pixels[0]; i++) pixels[i] = (float)(2 * me_rng_uniform(&r) - 1);
    const uint8_t has[B] = { 1, 0, 1 };
    images_t im = { pixels, has }, *imp = images ? &im : NULL;
    int nout = B * M * c.dim;
    float *out = malloc((size_t)nout * sizeof *out), *w = malloc((size_t)nout * sizeof *w);
    for (int i = 0; i < nout; i++) w[i] = (float)me_rng_normal(&r);
    me_model_zero_grad(m);
    loss_of(m, a, tok, lens, imp, B, w, out, nout);
    me_model_backward(m, a, w);
    float *grad = me_model_grad_data(m, &n);
    float *g = malloc(n * sizeof *g);
    memcpy(g, grad, n * sizeof *g);
    size_t sizes[ME_MODEL_NUM_PARAMS];
    me_model_param_sizes(&c, sizes, NULL);
    size_t off = 0;
    int checked = 0;
    int tensors = 0;
    for (int t = 0; t < ME_MODEL_NUM_PARAMS; t++) {
        tensors += sizes[t] > 0;
        for (int k = 0; k < 6 && sizes[t]; k++) {
            size_t i = off + (size_t)(me_rng_next(&r) % sizes[t]);
            /* The other side's meta tokens get no gradient from this side. */
            if (t == 0 && k < 3) i = off + (size_t)tok[k] * c.width + (size_t)k;  /* rows that are used */
            float save = theta[i];
            double h = 1e-2;
            theta[i] = save + (float)h;
            double lp = loss_of(m, a, tok, lens, imp, B, w, out, nout);
            theta[i] = save - (float)h;
            double lm = loss_of(m, a, tok, lens, imp, B, w, out, nout);
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
    ASSERT_EQ(tensors, images ? ME_MODEL_NUM_PARAMS : ME_MODEL_NUM_PARAMS - 3);
    ASSERT_EQ(checked, 6 * tensors);
    free(out);
    free(w);
    free(g);
    me_acts_free(a);
    me_model_free(m);
}

TEST(model_gradients_match_finite_differences_query_side) { grad_check(ME_SIDE_QUERY, 0); }
TEST(model_gradients_match_finite_differences_doc_side) { grad_check(ME_SIDE_DOC, 0); }
/* The patch embedding and its positions, in one sequence with text and
 * meta tokens, for image + text, text-only and image-only items. */
TEST(model_gradients_match_finite_differences_with_images_query_side) { grad_check(ME_SIDE_QUERY, 1); }
TEST(model_gradients_match_finite_differences_with_images_doc_side) { grad_check(ME_SIDE_DOC, 1); }

TEST(model_outputs_unit_norm_deterministic_padding_ignored) {
    me_model_config_t c = tiny();
    me_model_t *m = me_model_new(&c);
    me_model_init(m, 1);
    me_acts_t *a = me_acts_new(m, ME_SIDE_DOC, 2, c.max_text);
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

#include "encoder/weights.h"

/* Save → load is bit-exact (parameters, AdamW moments, metadata); a file
 * whose config and tensors disagree, or that is not a model, is refused. */
TEST(model_weights_round_trip_and_rejects) {
    me_model_config_t c = tiny();
    me_model_t *m = me_model_new(&c);
    me_model_init(m, 5);
    size_t n;
    float *m1, *m2;
    me_model_opt_state(m, &m1, &m2, &n);
    for (size_t i = 0; i < n; i++) { m1[i] = (float)i * 1e-3f; m2[i] = (float)i * 1e-6f; }
    char *dir = me_test_tmpdir("weights");
    char path[600], err[300];
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    const char *k[1] = { "step" }, *v[1] = { "123" };
    ASSERT_OK(me_weights_save(m, path, "TOKENIZER-BLOB", 1, k, v, 1, err, sizeof err));
    me_model_t *l;
    char *tok, *vals[2];
    const char *keys[2] = { "step", "absent" };
    ASSERT_OK(me_weights_load(path, 1, &l, &tok, keys, vals, 2, err, sizeof err));
    ASSERT_STREQ(tok, "TOKENIZER-BLOB");
    ASSERT_STREQ(vals[0], "123");
    ASSERT_TRUE(vals[1] == NULL);
    size_t n2;
    float *a = me_model_param_data(m, &n), *b = me_model_param_data(l, &n2);
    ASSERT_EQ(n, n2);
    ASSERT_TRUE(memcmp(a, b, n * sizeof *a) == 0);
    float *l1, *l2;
    me_model_opt_state(l, &l1, &l2, &n2);
    ASSERT_TRUE(memcmp(m1, l1, n * sizeof *m1) == 0 && memcmp(m2, l2, n * sizeof *m2) == 0);
    ASSERT_EQ(memcmp(me_model_config(l), &c, sizeof c), 0);
    free(tok);
    free(vals[0]);
    me_model_free(l);

    /* Weights only: loading the optimiser state is refused clearly. */
    ASSERT_OK(me_weights_save(m, path, NULL, 0, NULL, NULL, 0, err, sizeof err));
    ASSERT_EQ(me_weights_load(path, 1, &l, NULL, NULL, NULL, 0, err, sizeof err), ME_ENOTFOUND);
    ASSERT_TRUE(strstr(err, "checkpoint") != NULL);
    ASSERT_OK(me_weights_load(path, 0, &l, NULL, NULL, NULL, 0, err, sizeof err));
    me_model_free(l);

    /* Truncated at every 97th byte: always a clean error. */
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)size);
    ASSERT_EQ(fread(buf, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    char cut[600];
    snprintf(cut, sizeof cut, "%s/cut.safetensors", dir);
    for (long len = 0; len < size; len += 97) {
        f = fopen(cut, "wb");
        fwrite(buf, 1, (size_t)len, f);
        fclose(f);
        int rc = me_weights_load(cut, 0, &l, NULL, NULL, NULL, 0, err, sizeof err);
        ASSERT_TRUE(rc == ME_ECORRUPT);
    }
    /* A config that disagrees with the tensors. */
    char *cfgpos = memmem(buf, (size_t)size, "\\\"dim\\\":4", 9);
    ASSERT_TRUE(cfgpos != NULL);
    cfgpos[8] = '6';  /* dim 6 → the projection has the wrong shape */
    f = fopen(cut, "wb");
    fwrite(buf, 1, (size_t)size, f);
    fclose(f);
    ASSERT_EQ(me_weights_load(cut, 0, &l, NULL, NULL, NULL, 0, err, sizeof err), ME_ECORRUPT);
    if (!strstr(err, "wrong shape")) fprintf(stderr, "    err: %s\n", err);
    ASSERT_TRUE(strstr(err, "wrong shape") != NULL);
    free(buf);
    me_model_free(m);
    me_test_rmdir(dir);
    free(dir);
}

/* A text + image item gets the same vectors alone or in a batch, on one
 * thread or two; and an image model's file round-trips. */
TEST(model_images_batch_and_thread_invariant_and_saved) {
    me_model_config_t c = tiny_images();
    me_model_t *m = me_model_new(&c);
    ASSERT_TRUE(m != NULL);
    me_model_init(m, 5);
    me_rng_t r = { 9 };
    enum { B = 3, PIX = 4 * 4 * 3 };
    float pixels[B * PIX];
    for (int i = 0; i < B * PIX; i++) pixels[i] = (float)(2 * me_rng_uniform(&r) - 1);
    int32_t tok[B * 5] = { 4, 9, 10, 0, 0, 7, 8, 9, 10, 11, 12, 13, 0, 0, 0 };
    int lens[B] = { 3, 5, 2 };
    uint8_t has[B] = { 1, 1, 0 };
    int per = c.meta_c * c.dim;
    float all[B * 16], one[16];
    me_acts_t *a3 = me_acts_new_images(m, ME_SIDE_DOC, B, c.max_text), *a1 = me_acts_new_images(m, ME_SIDE_DOC, 1, c.max_text);
    me_ops_set_threads(2);
    me_model_forward_images(m, a3, tok, lens, pixels, has, B, all);
    me_ops_set_threads(1);
    me_model_forward_images(m, a1, tok + 5, lens + 1, pixels + PIX, has + 1, 1, one);
    for (int i = 0; i < per; i++) ASSERT_NEAR(one[i], all[per + i], 1e-6);
    /* The image changes the vectors (it is read), and the text does too. */
    float other[16];
    float pix2[PIX];
    for (int i = 0; i < PIX; i++) pix2[i] = -pixels[PIX + i];
    me_model_forward_images(m, a1, tok + 5, lens + 1, pix2, has + 1, 1, other);
    double diff = 0;
    for (int i = 0; i < per; i++) diff += fabs(other[i] - one[i]);
    ASSERT_TRUE(diff > 1e-3);
    /* Save and load: the same vectors from the loaded model. */
    char *dir = me_test_tmpdir("model-images"), path[512];
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    char err[256];
    ASSERT_OK(me_weights_save(m, path, NULL, 0, NULL, NULL, 0, err, sizeof err));
    me_model_t *back = NULL;
    ASSERT_OK(me_weights_load(path, 0, &back, NULL, NULL, NULL, 0, err, sizeof err));
    ASSERT_EQ(me_model_config(back)->image_size, 4);
    ASSERT_EQ(me_model_config(back)->patch, 2);
    me_acts_t *b1 = me_acts_new_images(back, ME_SIDE_DOC, 1, c.max_text);
    me_model_forward_images(back, b1, tok + 5, lens + 1, pixels + PIX, has + 1, 1, other);
    ASSERT_TRUE(memcmp(other, one, (size_t)per * sizeof *one) == 0);
    me_acts_free(b1);
    me_model_free(back);
    me_test_rmdir(dir);
    free(dir);
    me_acts_free(a3);
    me_acts_free(a1);
    me_model_free(m);
}
