/* Unit tests for encoder/ops: each fast kernel against its naive reference,
 * every forward against a float64 reference written here, every backward
 * against central finite differences of that float64 reference, masks and
 * padding, determinism across runs and thread counts.
 *
 * Gradient checks. For an op y = f(x) and a random G we take the scalar
 * L(x) = Σ G·f(x), evaluated in double on the same inputs as the float op,
 * and compare the float backward (dout = G) with
 *     (L(x + h e_k) - L(x - h e_k)) / 2h,   h = 1e-6.
 * In double that difference is exact to ~1e-9 relative: truncation is
 * h²/6·|L'''| ≈ 1e-13·|L'''| and cancellation eps_d·|L|/h ≈ 1e-10·|L|.
 * So the error measured is the float backward's own rounding. Each gradient
 * element is a sum of at most K ≈ 100 float products (u = 6e-8), through a
 * few softmax/normalisation stages, so its error is at most ~K·u·Σ|terms|,
 * i.e. ~1e-5 of the gradient's scale. We require
 *     max_k |g_k - fd_k| ≤ tol · max_k |fd_k|,  tol = 1e-4,
 * ten times that bound (measured errors are 1e-7..1e-6; ME_TEST_VERBOSE=1
 * prints them); a wrong index, sign or missing term moves a gradient by a
 * whole term, i.e. O(1) of the scale. The same tolerance serves the
 * forward checks against the double references, whose sums are shorter.
 *
 * Fast vs naive: matmul is compared element by element with the worst-case
 * bound (C + 2)·u·(Σ_i |x_i w_i| + |b|) per output (any summation order is
 * within it); attention with 1e-5 of the output scale (measured ~1e-7). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "encoder/ops.h"
#include "tests/harness.h"
#include "tests/unit/grad_check.h"

#define U32 (1.0 / 16777216.0) /* float unit roundoff, 2^-24 */

/* ---- helpers -------------------------------------------------------------------- */

static float *randf(size_t n, me_rng_t *r, double scale) {
    float *x = malloc((n ? n : 1) * sizeof *x);
    if (!x) abort();
    for (size_t i = 0; i < n; i++) x[i] = (float)(scale * me_rng_normal(r));
    return x;
}

static double dotd(const double *out, const double *G, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += out[i] * G[i];
    return s;
}

/* ---- float64 references ------------------------------------------------------- */

static void layernorm_d(double *out, const double *inp, const double *w, const double *bias,
                        int N, int C) {
    for (int n = 0; n < N; n++) {
        const double *x = inp + (size_t)n * C;
        double m = 0.0, v = 0.0;
        for (int i = 0; i < C; i++) m += x[i];
        m /= C;
        for (int i = 0; i < C; i++) v += (x[i] - m) * (x[i] - m);
        v /= C;
        double s = 1.0 / sqrt(v + (double)ME_LAYERNORM_EPS);
        for (int i = 0; i < C; i++) out[(size_t)n * C + i] = (x[i] - m) * s * w[i] + bias[i];
    }
}

static void matmul_d(double *out, const double *inp, const double *w, const double *bias,
                     int N, int C, int OC) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double v = bias ? bias[o] : 0.0;
            for (int i = 0; i < C; i++) v += inp[(size_t)n * C + i] * w[(size_t)o * C + i];
            out[(size_t)n * OC + o] = v;
        }
}

/* Padding rows output 0 and padding keys get no weight (see ops.h). */
static void attention_d(double *out, const double *inp, const uint8_t *mask,
                        int B, int T, int C, int NH) {
    int hs = C / NH;
    double scale = 1.0 / sqrt((double)hs);
    double *w = zerosd((size_t)T);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < NH; h++) {
                double *o = out + ((size_t)b * T + t) * C + (size_t)h * hs;
                for (int i = 0; i < hs; i++) o[i] = 0.0;
                if (mask && !mask[b * T + t]) continue;
                const double *q = inp + ((size_t)b * T + t) * 3 * C + (size_t)h * hs;
                double mx = -INFINITY, sum = 0.0;
                for (int t2 = 0; t2 < T; t2++) {
                    if (mask && !mask[b * T + t2]) continue;
                    const double *k = inp + ((size_t)b * T + t2) * 3 * C + C + (size_t)h * hs;
                    double s = 0.0;
                    for (int i = 0; i < hs; i++) s += q[i] * k[i];
                    w[t2] = s * scale;
                    if (w[t2] > mx) mx = w[t2];
                }
                if (mx == -INFINITY) continue;
                for (int t2 = 0; t2 < T; t2++) {
                    if (mask && !mask[b * T + t2]) continue;
                    w[t2] = exp(w[t2] - mx);
                    sum += w[t2];
                }
                for (int t2 = 0; t2 < T; t2++) {
                    if (mask && !mask[b * T + t2]) continue;
                    const double *v = inp + ((size_t)b * T + t2) * 3 * C + 2 * C + (size_t)h * hs;
                    for (int i = 0; i < hs; i++) o[i] += w[t2] / sum * v[i];
                }
            }
    free(w);
}

static double gelu_d(double x) {
    return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

static void l2norm_d(double *out, const double *inp, int N, int C) {
    for (int n = 0; n < N; n++) {
        double ss = 0.0;
        for (int i = 0; i < C; i++) ss += inp[(size_t)n * C + i] * inp[(size_t)n * C + i];
        double nr = sqrt(ss + (double)ME_L2NORM_EPS);
        for (int i = 0; i < C; i++) out[(size_t)n * C + i] = inp[(size_t)n * C + i] / nr;
    }
}

/* ---- layernorm -------------------------------------------------------------------- */

typedef struct {
    int N, C;
    double *x, *w, *b, *out, *G;
} ln_ctx_t;

static double ln_loss(void *p) {
    ln_ctx_t *c = p;
    layernorm_d(c->out, c->x, c->w, c->b, c->N, c->C);
    return dotd(c->out, c->G, (size_t)c->N * c->C);
}

TEST(ops_layernorm) {
    me_rng_t r = { 12 };
    enum { B = 3, T = 4, C = 19 };
    size_t n = (size_t)B * T * C;
    float *x = randf(n, &r, 2.0), *w = randf(C, &r, 1.0), *b = randf(C, &r, 0.5);
    for (size_t i = 0; i < n; i++) x[i] += 1.5f; /* a non-zero mean */
    float *out = zerosf(n), *mean = zerosf(B * T), *rstd = zerosf(B * T), *G = randf(n, &r, 1.0);
    float *dx = zerosf(n), *dw = zerosf(C), *db = zerosf(C);
    ln_ctx_t c = { B * T, C, tod(x, n), tod(w, C), tod(b, C), zerosd(n), tod(G, n) };

    layernorm_forward(out, mean, rstd, x, w, b, B, T, C);
    ln_loss(&c);
    CHECK_GRAD("layernorm fwd", out, c.out, n, GRAD_TOL);

    /* backward adds: start from a non-zero gradient and subtract it again */
    for (size_t i = 0; i < n; i++) dx[i] = 1.0f;
    layernorm_backward(dx, dw, db, G, x, w, mean, rstd, B, T, C);
    for (size_t i = 0; i < n; i++) dx[i] -= 1.0f;
    double *g = zerosd(n);
    fd_grad(g, c.x, n, ln_loss, &c);
    CHECK_GRAD("layernorm dinp", dx, g, n, GRAD_TOL);
    fd_grad(g, c.w, C, ln_loss, &c);
    CHECK_GRAD("layernorm dweight", dw, g, C, GRAD_TOL);
    fd_grad(g, c.b, C, ln_loss, &c);
    CHECK_GRAD("layernorm dbias", db, g, C, GRAD_TOL);

    free(g); free(x); free(w); free(b); free(out); free(mean); free(rstd); free(G);
    free(dx); free(dw); free(db);
    free(c.x); free(c.w); free(c.b); free(c.out); free(c.G);
}

/* ---- matmul ------------------------------------------------------------------------ */

typedef struct {
    int N, C, OC;
    double *x, *w, *b, *out, *G;
} mm_ctx_t;

static double mm_loss(void *p) {
    mm_ctx_t *c = p;
    matmul_d(c->out, c->x, c->w, c->b, c->N, c->C, c->OC);
    return dotd(c->out, c->G, (size_t)c->N * c->OC);
}

/* Each output within (C + 2)·u·(Σ|x w| + |b|) of the exact value. */
static void check_matmul_bound(const float *out, const float *x, const float *w, const float *b,
                               int N, int C, int OC) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double exact = b ? b[o] : 0.0, mag = b ? fabs(b[o]) : 0.0;
            for (int i = 0; i < C; i++) {
                double t = (double)x[(size_t)n * C + i] * w[(size_t)o * C + i];
                exact += t;
                mag += fabs(t);
            }
            ASSERT_NEAR(out[(size_t)n * OC + o], exact, (C + 2) * U32 * mag);
        }
}

TEST(ops_matmul) {
    me_rng_t r = { 13 };
    me_ops_set_threads(2);
    /* fast vs naive vs exact, with and without bias, at odd sizes */
    {
        enum { B = 4, T = 37, C = 96, OC = 200 };
        size_t N = (size_t)B * T;
        float *x = randf(N * C, &r, 1.0), *w = randf((size_t)OC * C, &r, 0.2);
        float *b = randf(OC, &r, 1.0);
        float *o1 = zerosf(N * OC), *o2 = zerosf(N * OC);
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            const float *bb = with_bias ? b : NULL;
            matmul_forward(o1, x, w, bb, B, T, C, OC);
            matmul_forward_naive(o2, x, w, bb, B, T, C, OC);
            check_matmul_bound(o1, x, w, bb, (int)N, C, OC);
            check_matmul_bound(o2, x, w, bb, (int)N, C, OC);
        }
        /* backward fast vs naive: both add into the same non-zero start */
        float *G = randf(N * OC, &r, 1.0);
        float *dx1 = randf(N * C, &r, 1.0), *dw1 = randf((size_t)OC * C, &r, 1.0);
        float *db1 = randf(OC, &r, 1.0);
        float *dx2 = malloc(N * C * sizeof *dx2), *dw2 = malloc((size_t)OC * C * sizeof *dw2);
        float *db2 = malloc(OC * sizeof *db2);
        if (!dx2 || !dw2 || !db2) abort();
        memcpy(dx2, dx1, N * C * sizeof *dx2);
        memcpy(dw2, dw1, (size_t)OC * C * sizeof *dw2);
        memcpy(db2, db1, OC * sizeof *db2);
        matmul_backward(dx1, dw1, db1, G, x, w, B, T, C, OC);
        matmul_backward_naive(dx2, dw2, db2, G, x, w, B, T, C, OC);
        double *d2 = tod(dx2, N * C);
        CHECK_GRAD("matmul dinp fast~naive", dx1, d2, N * C, 1e-5);
        free(d2);
        d2 = tod(dw2, (size_t)OC * C);
        CHECK_GRAD("matmul dweight fast~naive", dw1, d2, (size_t)OC * C, 1e-5);
        free(d2);
        d2 = tod(db2, OC);
        CHECK_GRAD("matmul dbias fast~naive", db1, d2, OC, 1e-5);
        free(d2);
        free(x); free(w); free(b); free(o1); free(o2); free(G);
        free(dx1); free(dw1); free(db1); free(dx2); free(dw2); free(db2);
    }
    /* backward (fast and naive) against finite differences */
    {
        enum { B = 2, T = 3, C = 13, OC = 11 };
        size_t N = (size_t)B * T;
        float *x = randf(N * C, &r, 1.0), *w = randf((size_t)OC * C, &r, 0.3);
        float *b = randf(OC, &r, 1.0), *G = randf(N * OC, &r, 1.0);
        mm_ctx_t c = { (int)N, C, OC, tod(x, N * C), tod(w, (size_t)OC * C), tod(b, OC),
                       zerosd(N * OC), tod(G, N * OC) };
        double *gx = zerosd(N * C), *gw = zerosd((size_t)OC * C), *gb = zerosd(OC);
        fd_grad(gx, c.x, N * C, mm_loss, &c);
        fd_grad(gw, c.w, (size_t)OC * C, mm_loss, &c);
        fd_grad(gb, c.b, OC, mm_loss, &c);
        for (int naive = 0; naive < 2; naive++) {
            float *dx = zerosf(N * C), *dw = zerosf((size_t)OC * C), *db = zerosf(OC);
            if (naive) matmul_backward_naive(dx, dw, db, G, x, w, B, T, C, OC);
            else matmul_backward(dx, dw, db, G, x, w, B, T, C, OC);
            CHECK_GRAD("matmul dinp", dx, gx, N * C, GRAD_TOL);
            CHECK_GRAD("matmul dweight", dw, gw, (size_t)OC * C, GRAD_TOL);
            CHECK_GRAD("matmul dbias", db, gb, OC, GRAD_TOL);
            /* NULL dinp / dbias are skipped */
            float *dw2 = zerosf((size_t)OC * C);
            if (naive) matmul_backward_naive(NULL, dw2, NULL, G, x, w, B, T, C, OC);
            else matmul_backward(NULL, dw2, NULL, G, x, w, B, T, C, OC);
            CHECK_GRAD("matmul dweight (NULLs)", dw2, gw, (size_t)OC * C, GRAD_TOL);
            free(dx); free(dw); free(db); free(dw2);
        }
        free(gx); free(gw); free(gb); free(x); free(w); free(b); free(G);
        free(c.x); free(c.w); free(c.b); free(c.out); free(c.G);
    }
    me_ops_set_threads(1);
}

/* me_ops_sgemm in every transpose combination, with padded leading
 * dimensions and beta ≠ 0, split over 2 threads (with a short last block)
 * and run on 1: within the rounding bound of the exact value, and the same
 * bits either way. */
TEST(ops_sgemm) {
    me_rng_t r = { 21 };
    enum { M = 101, N = 150, K = 140, PAD = 3 };
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            int lda = (ta ? M : K) + PAD, ldb = (tb ? K : N) + PAD, ldc = N + PAD;
            size_t na = (size_t)(ta ? K : M) * lda, nb = (size_t)(tb ? N : K) * ldb;
            size_t nc = (size_t)M * ldc;
            float *A = randf(na, &r, 1.0), *Bm = randf(nb, &r, 1.0), *C0 = randf(nc, &r, 1.0);
            float *C1 = malloc(nc * sizeof *C1), *C2 = malloc(nc * sizeof *C2);
            if (!C1 || !C2) abort();
            memcpy(C1, C0, nc * sizeof *C1);
            memcpy(C2, C0, nc * sizeof *C2);
            me_ops_set_threads(2);
            me_ops_sgemm(ta, tb, M, N, K, 0.5f, A, lda, Bm, ldb, 2.0f, C1, ldc);
            me_ops_set_threads(1);
            me_ops_sgemm(ta, tb, M, N, K, 0.5f, A, lda, Bm, ldb, 2.0f, C2, ldc);
            ASSERT_TRUE(memcmp(C1, C2, nc * sizeof *C1) == 0);
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) {
                    double exact = 0.0, mag = 0.0;
                    for (int k = 0; k < K; k++) {
                        double a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                        double b = tb ? Bm[(size_t)j * ldb + k] : Bm[(size_t)k * ldb + j];
                        exact += 0.5 * a * b;
                        mag += fabs(0.5 * a * b);
                    }
                    double c0 = C0[(size_t)i * ldc + j];
                    exact += 2.0 * c0;
                    mag += fabs(2.0 * c0);
                    ASSERT_NEAR(C1[(size_t)i * ldc + j], exact, (K + 3) * U32 * mag);
                }
            /* the padding between rows is untouched */
            for (int i = 0; i < M; i++)
                for (int j = N; j < ldc; j++)
                    ASSERT_TRUE(C1[(size_t)i * ldc + j] == C0[(size_t)i * ldc + j]);
            free(A); free(Bm); free(C0); free(C1); free(C2);
        }
}

/* ---- attention ---------------------------------------------------------------------- */

typedef struct {
    int B, T, C, NH;
    const uint8_t *mask;
    double *x, *out, *G;
} att_ctx_t;

static double att_loss(void *p) {
    att_ctx_t *c = p;
    attention_d(c->out, c->x, c->mask, c->B, c->T, c->C, c->NH);
    return dotd(c->out, c->G, (size_t)c->B * c->T * c->C);
}

static int all_finite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

/* B = 3 sequences: all real; padding inside and at the end; all padding. */
static void attention_case(int T, int C, int NH, me_rng_t *r, int fd) {
    enum { B = 3 };
    uint8_t *mask = malloc((size_t)B * T);
    if (!mask) abort();
    for (int t = 0; t < T; t++) {
        mask[t] = 1;
        mask[T + t] = !(t == 1 || t >= T - 2);
        mask[2 * T + t] = 0;
    }
    size_t nin = (size_t)B * T * 3 * C, nout = (size_t)B * T * C, natt = (size_t)B * NH * T * T;
    float *x = randf(nin, r, 1.0), *G = randf(nout, r, 1.0);
    float *o1 = zerosf(nout), *o2 = zerosf(nout), *a1 = zerosf(natt), *a2 = zerosf(natt);
    att_ctx_t c = { B, T, C, NH, mask, tod(x, nin), zerosd(nout), tod(G, nout) };

    attention_forward(o1, a1, x, mask, B, T, C, NH);
    attention_forward_naive(o2, a2, x, mask, B, T, C, NH);
    ASSERT_TRUE(all_finite(o1, nout) && all_finite(a1, natt));
    att_loss(&c);
    CHECK_GRAD("attention fwd", o1, c.out, nout, GRAD_TOL);
    CHECK_GRAD("attention naive fwd", o2, c.out, nout, GRAD_TOL);
    double *d = tod(o2, nout);
    CHECK_GRAD("attention fast~naive out", o1, d, nout, 1e-5);
    free(d);
    d = tod(a2, natt);
    CHECK_GRAD("attention fast~naive att", a1, d, natt, 1e-5);
    free(d);
    /* padding: its att rows and columns and its outputs are exactly 0 */
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++)
                for (int t2 = 0; t2 < T; t2++)
                    if (!mask[b * T + t] || !mask[b * T + t2])
                        ASSERT_TRUE(a1[(((size_t)b * NH + h) * T + t) * T + t2] == 0.0f);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < C; i++) ASSERT_TRUE(o1[((size_t)2 * T + t) * C + i] == 0.0f);

    float *dx1 = zerosf(nin), *dx2 = zerosf(nin);
    attention_backward(dx1, G, x, a1, mask, B, T, C, NH);
    attention_backward_naive(dx2, G, x, a2, mask, B, T, C, NH);
    ASSERT_TRUE(all_finite(dx1, nin));
    d = tod(dx2, nin);
    CHECK_GRAD("attention fast~naive dinp", dx1, d, nin, 1e-5);
    free(d);
    if (fd) {
        double *g = zerosd(nin);
        fd_grad(g, c.x, nin, att_loss, &c);
        CHECK_GRAD("attention dinp", dx1, g, nin, GRAD_TOL);
        CHECK_GRAD("attention naive dinp", dx2, g, nin, GRAD_TOL);
        free(g);
    }
    /* no gradient reaches padding */
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            if (!mask[b * T + t])
                for (int i = 0; i < 3 * C; i++)
                    ASSERT_TRUE(dx1[((size_t)b * T + t) * 3 * C + i] == 0.0f);

    free(mask); free(x); free(G); free(o1); free(o2); free(a1); free(a2); free(dx1); free(dx2);
    free(c.x); free(c.out); free(c.G);
}

TEST(ops_attention) {
    me_rng_t r = { 14 };
    me_ops_set_threads(2);
    attention_case(7, 20, 2, &r, 1);  /* hs = 10: 8 lanes + tail */
    attention_case(6, 12, 3, &r, 1);  /* hs = 4: tail only */
    attention_case(33, 96, 4, &r, 0); /* hs = 24, fast vs naive at a larger size */
    me_ops_set_threads(1);
}

/* No mask at all equals an all-ones mask. */
TEST(ops_attention_nomask) {
    me_rng_t r = { 15 };
    enum { B = 2, T = 9, C = 16, NH = 2 };
    size_t nin = (size_t)B * T * 3 * C, nout = (size_t)B * T * C, natt = (size_t)B * NH * T * T;
    uint8_t ones[B * T];
    memset(ones, 1, sizeof ones);
    float *x = randf(nin, &r, 1.0), *G = randf(nout, &r, 1.0);
    float *o1 = zerosf(nout), *o2 = zerosf(nout), *a1 = zerosf(natt), *a2 = zerosf(natt);
    float *d1 = zerosf(nin), *d2 = zerosf(nin);
    attention_forward(o1, a1, x, NULL, B, T, C, NH);
    attention_forward(o2, a2, x, ones, B, T, C, NH);
    attention_backward(d1, G, x, a1, NULL, B, T, C, NH);
    attention_backward(d2, G, x, a2, ones, B, T, C, NH);
    ASSERT_TRUE(memcmp(o1, o2, nout * sizeof *o1) == 0);
    ASSERT_TRUE(memcmp(d1, d2, nin * sizeof *d1) == 0);
    free(x); free(G); free(o1); free(o2); free(a1); free(a2); free(d1); free(d2);
}

/* ---- GELU, residual, L2 norm, gather ----------------------------------------------- */

TEST(ops_gelu) {
    me_rng_t r = { 16 };
    me_ops_set_threads(2);
    /* 40003 elements: split over two threads, with a scalar tail */
    size_t n = 40003;
    float *x = randf(n, &r, 2.5), *G = randf(n, &r, 1.0);
    x[0] = 0.0f; x[1] = 12.0f; x[2] = -12.0f; x[3] = 1e-20f; x[4] = 7.9f; x[5] = -8.0f;
    float *out = zerosf(n), *dx = zerosf(n), *outn = zerosf(n), *dxn = zerosf(n);
    double *xd = tod(x, n), *Gd = tod(G, n);
    double *ref = zerosd(n);
    for (size_t i = 0; i < n; i++) ref[i] = gelu_d(xd[i]);
    gelu_forward(out, x, n);
    gelu_forward_naive(outn, x, n);
    CHECK_GRAD("gelu fwd", out, ref, n, GRAD_TOL);
    CHECK_GRAD("gelu naive fwd", outn, ref, n, GRAD_TOL);
    gelu_backward(dx, G, x, n);
    gelu_backward_naive(dxn, G, x, n);
    /* L is a sum of independent terms, so each partial derivative needs
     * only its own term: a per-element difference, O(n) not O(n²). */
    for (size_t i = 0; i < n; i++)
        ref[i] = (gelu_d(xd[i] + FD_H) - gelu_d(xd[i] - FD_H)) / (2.0 * FD_H) * Gd[i];
    CHECK_GRAD("gelu dinp", dx, ref, n, GRAD_TOL);
    CHECK_GRAD("gelu naive dinp", dxn, ref, n, GRAD_TOL);
    /* the vector blocks and the scalar tail give the same bits (N = 1 runs
     * only the tail), and so do 1 and 2 threads */
    for (size_t i = 0; i < n; i += 7) {
        float o1, d1 = 0.0f;
        gelu_forward(&o1, x + i, 1);
        gelu_backward(&d1, G + i, x + i, 1);
        ASSERT_TRUE(memcmp(&o1, out + i, sizeof o1) == 0);
        ASSERT_TRUE(memcmp(&d1, dx + i, sizeof d1) == 0);
    }
    float *out1 = zerosf(n), *dx1 = zerosf(n);
    me_ops_set_threads(1);
    gelu_forward(out1, x, n);
    gelu_backward(dx1, G, x, n);
    ASSERT_TRUE(memcmp(out, out1, n * sizeof *out) == 0);
    ASSERT_TRUE(memcmp(dx, dx1, n * sizeof *dx) == 0);
    free(x); free(G); free(out); free(dx); free(outn); free(dxn); free(out1); free(dx1);
    free(ref); free(xd); free(Gd);
}

TEST(ops_residual) {
    me_rng_t r = { 17 };
    size_t n = 101;
    float *a = randf(n, &r, 1.0), *b = randf(n, &r, 1.0), *G = randf(n, &r, 1.0);
    float *out = zerosf(n), *da = randf(n, &r, 1.0), *db = zerosf(n);
    float *da0 = malloc(n * sizeof *da0);
    if (!da0) abort();
    memcpy(da0, da, n * sizeof *da);
    residual_forward(out, a, b, n);
    residual_backward(da, db, G, n);
    for (size_t i = 0; i < n; i++) {
        ASSERT_TRUE(out[i] == a[i] + b[i]);
        ASSERT_TRUE(da[i] == da0[i] + G[i]); /* adds */
        ASSERT_TRUE(db[i] == G[i]);
    }
    free(a); free(b); free(G); free(out); free(da); free(db); free(da0);
}

typedef struct {
    int N, C;
    double *x, *out, *G;
} l2_ctx_t;

static double l2_loss(void *p) {
    l2_ctx_t *c = p;
    l2norm_d(c->out, c->x, c->N, c->C);
    return dotd(c->out, c->G, (size_t)c->N * c->C);
}

TEST(ops_l2norm) {
    me_rng_t r = { 18 };
    enum { N = 6, C = 5 };
    size_t n = (size_t)N * C;
    float *x = randf(n, &r, 1.0), *G = randf(n, &r, 1.0);
    for (int i = 0; i < C; i++) x[C + i] *= 1e-3f; /* a short row */
    float *out = zerosf(n), *nr = zerosf(N), *dx = zerosf(n);
    l2_ctx_t c = { N, C, tod(x, n), zerosd(n), tod(G, n) };
    l2norm_forward(out, nr, x, N, C);
    l2_loss(&c);
    CHECK_GRAD("l2norm fwd", out, c.out, n, GRAD_TOL);
    for (int k = 0; k < N; k++) {
        double s = 0.0;
        for (int i = 0; i < C; i++) s += (double)out[k * C + i] * out[k * C + i];
        ASSERT_NEAR(s, 1.0, 1e-6);
    }
    l2norm_backward(dx, G, out, nr, N, C);
    double *g = zerosd(n);
    fd_grad(g, c.x, n, l2_loss, &c);
    /* rows differ in scale by 1/‖x‖: check row by row */
    for (int k = 0; k < N; k++) CHECK_GRAD("l2norm dinp row", dx + k * C, g + k * C, C, GRAD_TOL);

    /* a zero row stays zero, and its gradient is finite */
    float z[C] = { 0 }, zo[C], zn, zd[C] = { 0 };
    l2norm_forward(zo, &zn, z, 1, C);
    l2norm_backward(zd, G, zo, &zn, 1, C);
    for (int i = 0; i < C; i++) ASSERT_TRUE(zo[i] == 0.0f && isfinite(zd[i]));

    free(x); free(G); free(out); free(nr); free(dx); free(g); free(c.x); free(c.out); free(c.G);
}

TEST(ops_gather) {
    me_rng_t r = { 19 };
    enum { B = 2, T = 6, M = 3, C = 4 };
    int32_t idx[B * M] = { 3, 4, 5, 0, 0, 2 }; /* a repeat: scatter-add */
    float *x = randf((size_t)B * T * C, &r, 1.0), *G = randf((size_t)B * M * C, &r, 1.0);
    float *out = zerosf((size_t)B * M * C), *dx = zerosf((size_t)B * T * C);
    gather_forward(out, x, idx, B, T, M, C);
    gather_backward(dx, G, idx, B, T, M, C);
    for (int b = 0; b < B; b++)
        for (int m = 0; m < M; m++)
            for (int i = 0; i < C; i++)
                ASSERT_TRUE(out[(b * M + m) * C + i] == x[(b * T + idx[b * M + m]) * C + i]);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int i = 0; i < C; i++) {
                double want = 0.0;
                for (int m = 0; m < M; m++)
                    if (idx[b * M + m] == t) want += G[(b * M + m) * C + i];
                ASSERT_NEAR(dx[(b * T + t) * C + i], want, 1e-6);
            }
    free(x); free(G); free(out); free(dx);
}

TEST(ops_adamw) {
    float p[3] = { 1.0f, -2.0f, 0.5f }, m[3] = { 0 }, v[3] = { 0 };
    const float g[3] = { 0.1f, -0.3f, 0.0f };
    double pd[3] = { 1.0, -2.0, 0.5 }, md[3] = { 0 }, vd[3] = { 0 };
    for (int t = 1; t <= 3; t++) {
        adamw_update(p, m, v, g, 3, 1e-2f, 0.9f, 0.999f, 1e-8f, 0.1f, t);
        for (int i = 0; i < 3; i++) {
            md[i] = 0.9 * md[i] + 0.1 * g[i];
            vd[i] = 0.999 * vd[i] + 0.001 * (double)g[i] * g[i];
            double mh = md[i] / (1 - pow(0.9, t)), vh = vd[i] / (1 - pow(0.999, t));
            pd[i] -= 1e-2 * (mh / (sqrt(vh) + 1e-8) + 0.1 * pd[i]);
        }
    }
    for (int i = 0; i < 3; i++) ASSERT_NEAR(p[i], pd[i], 1e-6);
    ASSERT_NEAR(grad_norm(g, 3), sqrt(0.1 * 0.1 + 0.3 * 0.3), 1e-6);
}

/* ---- determinism --------------------------------------------------------------------- */

/* Two runs give the same bits, and so do 1 and 2 threads: attention and
 * GELU run each (b, h) or element the same way on any thread, and sgemm
 * splits rows of its output into blocks that OpenBLAS computes as it
 * would the whole. */
TEST(ops_determinism) {
    me_rng_t r = { 20 };
    enum { B = 4, T = 50, C = 64, NH = 4, OC = 3 * C };
    size_t nin = (size_t)B * T * C, nqkv = (size_t)B * T * OC, natt = (size_t)B * NH * T * T;
    uint8_t mask[B * T];
    for (int i = 0; i < B * T; i++) mask[i] = (i % T) < T - 7 * (i / T);
    float *x = randf(nin, &r, 1.0), *w = randf((size_t)OC * C, &r, 0.1), *bias = randf(OC, &r, 0.1);
    float *G = randf(nin, &r, 1.0), *qkv0 = randf(nqkv, &r, 1.0);
    enum { NT = 5 };
    size_t sizes[NT] = { nqkv, nin, (size_t)OC * C, nin, nqkv };
    float *res[3][NT];
    int threads[3] = { 2, 2, 1 };
    for (int run = 0; run < 3; run++) {
        me_ops_set_threads(threads[run]);
        for (int k = 0; k < NT; k++) res[run][k] = zerosf(sizes[k]);
        float *att = zerosf(natt);
        matmul_forward(res[run][0], x, w, bias, B, T, C, OC);
        matmul_backward(res[run][1], res[run][2], NULL, qkv0, x, w, B, T, C, OC);
        attention_forward(res[run][3], att, qkv0, mask, B, T, C, NH);
        attention_backward(res[run][4], G, qkv0, att, mask, B, T, C, NH);
        free(att);
    }
    for (int k = 0; k < NT; k++)
        ASSERT_TRUE(memcmp(res[0][k], res[1][k], sizes[k] * sizeof(float)) == 0);
    for (int k = 0; k < NT; k++) /* 1 thread = 2 threads */
        ASSERT_TRUE(memcmp(res[0][k], res[2][k], sizes[k] * sizeof(float)) == 0);
    for (int run = 0; run < 3; run++)
        for (int k = 0; k < NT; k++) free(res[run][k]);
    free(x); free(w); free(bias); free(G); free(qkv0);
    me_ops_set_threads(1);
}
