/* Training and encoding speed of the encoder against the machine's own
 * matrix-multiply rate, measured in the same run: the step time of
 * `metaembed train` (forward and backward of queries and documents, the
 * MMR loss, AdamW) at the default model's shape, its achieved GFLOP/s
 * (the transformer's matrix products and attention, counted analytically),
 * and OpenBLAS sgemm single-thread at the shape the model's biggest
 * products have and at 1024^3. Synthetic tokens: speed does not depend on
 * their values. Figures only; never fails on time.
 *
 *   bench_train [--steps N] [--threads N] [--help]
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "encoder/model.h"
#include "encoder/ops.h"
#include "encoder/train.h"
#include "tests/harness.h"

static void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size);
    if (!p) {
        fprintf(stderr, "bench_train: out of memory\n");
        exit(1);
    }
    return p;
}


/* Forward FLOPs of one item of T positions (M of them meta). */
static double item_flops(const me_model_config_t *c, int T, int M) {
    double C = c->width;
    return c->layers * (24.0 * T * C * C + 4.0 * T * T * C) + 2.0 * M * C * c->dim;
}

int main(int argc, char **argv) {
    int steps = 12, threads = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: bench_train [--steps N] [--threads N]\n\n"
                   "  Times training steps of the default model's shape (median of N, after one warm-up)\n"
                   "  and encoding passes, and prints them beside OpenBLAS sgemm single-thread measured\n"
                   "  in the same run: at the model's largest product and at 1024^3.\n");
            return 0;
        }
        if (!strcmp(argv[i], "--version")) { printf("bench_train (metaembed)\n"); return 0; }
        if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else { fprintf(stderr, "bench_train: unknown argument %s (try --help)\n", argv[i]); return 2; }
    }
    if (steps < 3) steps = 3;
    if (steps > 64) steps = 64;
    if (threads < 1) threads = 1;
    me_ops_set_threads(threads);

    /* The default model: vocab 8192, width 192, 3 layers, D 128, documents
     * of 96 tokens, queries of 32 (train.c's shapes). */
    me_model_config_t cfg = { .vocab = 8192, .max_text = 96, .layers = 3, .width = 192, .heads = 4,
                              .dim = 128, .meta_q = 16, .meta_c = 64 };
    me_model_t *m = me_model_new(&cfg);
    if (!m) { fprintf(stderr, "bench_train: out of memory for the model\n"); return 1; }
    me_model_init(m, 1);
    int n = 256, Wq = 32, Wd = 96, B = 32;
    int32_t *qt = xcalloc((size_t)n * Wq, sizeof *qt), *dt = xcalloc((size_t)n * Wd, sizeof *dt);
    int *ql = xcalloc(n, sizeof *ql), *dl = xcalloc(n, sizeof *dl), *hard = xcalloc(n, sizeof *hard);
    me_rng_t rng = { 5 };
    for (int i = 0; i < n; i++) {
        ql[i] = 8 + (int)(me_rng_next(&rng) % 16);   /* synopses: a few words */
        dl[i] = Wd;                                   /* descriptions fill the window */
        for (int k = 0; k < Wq; k++) qt[(size_t)i * Wq + k] = 260 + (int32_t)(me_rng_next(&rng) % 7000);
        for (int k = 0; k < Wd; k++) dt[(size_t)i * Wd + k] = 260 + (int32_t)(me_rng_next(&rng) % 7000);
        hard[i] = (i + 1) % n;
    }
    me_train_data_t data = { n, Wq, Wd, qt, ql, dt, dl, hard, NULL, NULL, NULL, NULL };
    me_train_opts_t o;
    me_train_defaults(&o);
    o.batch = B;
    o.steps = 1000;
    o.threads = threads;
    char err[256];
    me_trainer_t *tr = me_trainer_new(m, &data, &o, err, sizeof err);
    if (!tr) { fprintf(stderr, "bench_train: %s\n", err); return 1; }
    double t[64];
    me_trainer_step(tr, NULL);   /* warm-up: scratch, caches */
    for (int s = 0; s < steps; s++) {
        double t0 = me_test_now_ms();
        me_trainer_step(tr, NULL);
        t[s] = (me_test_now_ms() - t0) / 1e3;
    }
    double step_s = me_percentile(t, steps, 50);
    double qlen = 0;
    for (int i = 0; i < n; i++) qlen += ql[i];
    qlen /= n;
    /* Padding is masked but still computed: every item costs its full row. */
    double fwd = B * item_flops(&cfg, Wq + cfg.meta_q, cfg.meta_q) + 2 * B * item_flops(&cfg, Wd + cfg.meta_c, cfg.meta_c);
    double step_flops = 3.0 * fwd;   /* backward ≈ twice the forward */
    me_trainer_free(tr);

    /* Encoding: document passes of 32 at a time, as the embedder batches. */
    me_acts_t *a = me_acts_new(m, ME_SIDE_DOC, B, Wd);
    float *out = xcalloc((size_t)B * cfg.meta_c * cfg.dim, sizeof *out);
    double te[64];
    me_model_forward(m, a, dt, dl, B, out);
    for (int s = 0; s < steps; s++) {
        double t0 = me_test_now_ms();
        me_model_forward(m, a, dt, dl, B, out);
        te[s] = (me_test_now_ms() - t0) / 1e3;
    }
    double enc_s = me_percentile(te, steps, 50), enc_flops = B * item_flops(&cfg, Wd + cfg.meta_c, cfg.meta_c);
    me_acts_free(a);

    openblas_set_num_threads(1);
    int T = Wd + cfg.meta_c;
    double g_shape = me_bench_sgemm_gflops(B * T, 4 * cfg.width, cfg.width, 7);
    double g_peak = me_bench_sgemm_gflops(1024, 1024, 1024, 5);
    printf("train bench: width %d, %d layers, D %d, batch %d (+%d hard negatives), documents %d tokens + %d meta, "
           "queries %d (%.0f used) + %d meta; %d thread(s); median of %d\n",
           cfg.width, cfg.layers, cfg.dim, B, B, Wd, cfg.meta_c, Wq, qlen, cfg.meta_q, threads, steps);
    printf("| what                         | time/step | items/s | GFLOP/s | of sgemm (shape) | of sgemm 1024^3 |\n");
    printf("|------------------------------|-----------|---------|---------|------------------|-----------------|\n");
    printf("| training step (fwd+bwd+Adam) | %7.1f ms | %7.1f | %7.2f | %15.2f | %15.2f |\n", step_s * 1e3,
           B / step_s, step_flops / step_s * 1e-9, step_flops / step_s * 1e-9 / g_shape,
           step_flops / step_s * 1e-9 / g_peak);
    printf("| encoding 32 documents        | %7.1f ms | %7.1f | %7.2f | %15.2f | %15.2f |\n", enc_s * 1e3,
           B / enc_s, enc_flops / enc_s * 1e-9, enc_flops / enc_s * 1e-9 / g_shape, enc_flops / enc_s * 1e-9 / g_peak);
    printf("| sgemm %5d x %4d x %4d     |           |         | %7.2f |             1.00 |                 |\n", B * T,
           4 * cfg.width, cfg.width, g_shape);
    printf("| sgemm 1024^3                 |           |         | %7.2f |                  |            1.00 |\n", g_peak);
    printf("(items/s: training queries per second, each with a positive and a hard negative; documents per second "
           "for encoding; single-thread sgemm is the reference whatever --threads)\n");
    free(out);
    free(qt);
    free(dt);
    free(ql);
    free(dl);
    free(hard);
    me_model_free(m);
    return 0;
}
