/* Transformer encoder layers, forward and backward (see ops.h). */
#include "encoder/ops.h"

#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- threads ----------------------------------------------------------------- */

#define MAX_THREADS 64

static int g_threads = 1;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

/* OpenBLAS's pool threads spin after each call and would compete with ours
 * for the cores, so it runs single-threaded, inside our threads. */
static void blas_single(void) { openblas_set_num_threads(1); }
static void ops_init(void) { pthread_once(&g_once, blas_single); }

void me_ops_set_threads(int n) {
    if (n <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (int)c : 1;
    }
    if (n > MAX_THREADS) n = MAX_THREADS;
    g_threads = n;
    ops_init();
}

int me_ops_threads(void) { return g_threads; }

typedef void (*range_fn)(void *ctx, size_t begin, size_t end);

typedef struct {
    range_fn fn;
    void *ctx;
    size_t begin, end;
} range_task_t;

static void *range_task_run(void *p) {
    range_task_t *t = p;
    t->fn(t->ctx, t->begin, t->end);
    return NULL;
}

/* Runs fn over [0, n) in g_threads contiguous slices, the first on the
 * calling thread. Each index is processed the same way whichever thread
 * gets it, so results never depend on the split. A thread that cannot be
 * started has its slice run inline: slower, never wrong. Threads are made
 * per call; at the sizes here that costs ~0.1 ms against tens of ms of work. */
static void parallel_for(size_t n, size_t min_per_thread, range_fn fn, void *ctx) {
    size_t nt = (size_t)g_threads;
    if (min_per_thread == 0) min_per_thread = 1;
    if (nt > n / min_per_thread) nt = n / min_per_thread;
    if (nt <= 1) {
        if (n > 0) fn(ctx, 0, n);
        return;
    }
    pthread_t th[MAX_THREADS];
    range_task_t task[MAX_THREADS];
    int started[MAX_THREADS];
    for (size_t i = 0; i < nt; i++)
        task[i] = (range_task_t){ fn, ctx, n * i / nt, n * (i + 1) / nt };
    for (size_t i = 1; i < nt; i++)
        started[i] = pthread_create(&th[i], NULL, range_task_run, &task[i]) == 0;
    range_task_run(&task[0]);
    for (size_t i = 1; i < nt; i++) {
        if (started[i]) pthread_join(th[i], NULL);
        else range_task_run(&task[i]);
    }
}

/* ---- sgemm over our threads ------------------------------------------------------ */

/* Row blocks are multiples of this (OpenBLAS's widest M unroll), so that a
 * block goes through the same kernels as the whole: every output element
 * is one K-long sum whichever thread computes it (ops_determinism checks
 * 1 vs 2 threads bit for bit). */
#define SGEMM_ROW_ALIGN 16
/* Below twice this many multiply-adds one thread does it all. */
#define SGEMM_MIN_WORK (1L << 20)

typedef struct {
    int ta, tb, M, N, K;
    float alpha, beta;
    const float *A, *B;
    float *C;
    int lda, ldb, ldc;
} sgemm_ctx_t;

static void sgemm_range(void *p, size_t begin, size_t end) {
    const sgemm_ctx_t *c = p;
    int m0 = (int)begin * SGEMM_ROW_ALIGN, m1 = (int)end * SGEMM_ROW_ALIGN;
    if (m1 > c->M) m1 = c->M;
    if (m0 >= m1) return;
    /* rows m0..m1 of op(A): rows of A, or columns when A is transposed */
    const float *A = c->A + (c->ta ? (size_t)m0 : (size_t)m0 * c->lda);
    cblas_sgemm(CblasRowMajor, c->ta ? CblasTrans : CblasNoTrans, c->tb ? CblasTrans : CblasNoTrans,
                m1 - m0, c->N, c->K, c->alpha, A, c->lda, c->B, c->ldb, c->beta,
                c->C + (size_t)m0 * c->ldc, c->ldc);
}

void me_ops_sgemm(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                  int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0 || K <= 0) return;
    ops_init();
    sgemm_ctx_t c = { transA, transB, M, N, K, alpha, beta, A, B, C, lda, ldb, ldc };
    size_t blocks = ((size_t)M + SGEMM_ROW_ALIGN - 1) / SGEMM_ROW_ALIGN;
    double work = (double)M * N * K;
    size_t per = work < 2.0 * SGEMM_MIN_WORK ? blocks : 1;
    parallel_for(blocks, per, sgemm_range, &c);
}

/* ---- layernorm ---------------------------------------------------------------- */

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *weight, const float *bias, int B, int T, int C) {
    size_t rows = (size_t)B * T;
    for (size_t r = 0; r < rows; r++) {
        const float *x = inp + r * C;
        float m = 0.0f;
        for (int i = 0; i < C; i++) m += x[i];
        m /= (float)C;
        float v = 0.0f;
        for (int i = 0; i < C; i++) {
            float xm = x[i] - m;
            v += xm * xm;
        }
        v /= (float)C;
        float s = 1.0f / sqrtf(v + ME_LAYERNORM_EPS);
        float *o = out + r * C;
        for (int i = 0; i < C; i++) o[i] = (s * (x[i] - m)) * weight[i] + bias[i];
        mean[r] = m;
        rstd[r] = s;
    }
}

void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const float *mean,
                        const float *rstd, int B, int T, int C) {
    size_t rows = (size_t)B * T;
    for (size_t r = 0; r < rows; r++) {
        const float *d = dout + r * C;
        const float *x = inp + r * C;
        float *dx = dinp + r * C;
        float m = mean[r], s = rstd[r];
        /* Two reductions first: the mean of dnorm and of dnorm · norm. */
        float dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
        for (int i = 0; i < C; i++) {
            float norm = (x[i] - m) * s;
            float dnorm = weight[i] * d[i];
            dnorm_mean += dnorm;
            dnorm_norm_mean += dnorm * norm;
        }
        dnorm_mean /= (float)C;
        dnorm_norm_mean /= (float)C;
        for (int i = 0; i < C; i++) {
            float norm = (x[i] - m) * s;
            float dnorm = weight[i] * d[i];
            dbias[i] += d[i];
            dweight[i] += norm * d[i];
            dx[i] += (dnorm - dnorm_mean - norm * dnorm_norm_mean) * s;
        }
    }
}

/* ---- matmul ------------------------------------------------------------------- */

void matmul_forward_naive(float *out, const float *inp, const float *weight, const float *bias,
                          int B, int T, int C, int OC) {
    size_t rows = (size_t)B * T;
    for (size_t r = 0; r < rows; r++) {
        const float *x = inp + r * C;
        float *o = out + r * OC;
        for (int oc = 0; oc < OC; oc++) {
            const float *w = weight + (size_t)oc * C;
            float v = bias ? bias[oc] : 0.0f;
            for (int i = 0; i < C; i++) v += x[i] * w[i];
            o[oc] = v;
        }
    }
}

void matmul_forward(float *out, const float *inp, const float *weight, const float *bias,
                    int B, int T, int C, int OC) {
    int rows = B * T;
    if (rows == 0 || OC == 0) return;
    float beta = 0.0f;
    if (bias) {
        for (int r = 0; r < rows; r++) memcpy(out + (size_t)r * OC, bias, (size_t)OC * sizeof *out);
        beta = 1.0f;
    }
    if (C == 0) {
        if (!bias) memset(out, 0, (size_t)rows * OC * sizeof *out);
        return;
    }
    /* out (rows, OC) = inp (rows, C) · weightᵀ (C, OC) + beta · out */
    me_ops_sgemm(0, 1, rows, OC, C, 1.0f, inp, C, weight, C, beta, out, OC);
}

void matmul_backward_naive(float *dinp, float *dweight, float *dbias, const float *dout,
                           const float *inp, const float *weight, int B, int T, int C, int OC) {
    size_t rows = (size_t)B * T;
    for (size_t r = 0; r < rows; r++) {
        const float *d = dout + r * OC;
        const float *x = inp + r * C;
        for (int oc = 0; oc < OC; oc++) {
            const float *w = weight + (size_t)oc * C;
            float *dw = dweight + (size_t)oc * C;
            for (int i = 0; i < C; i++) {
                if (dinp) dinp[r * C + i] += w[i] * d[oc];
                dw[i] += x[i] * d[oc];
            }
            if (dbias) dbias[oc] += d[oc];
        }
    }
}

void matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                     const float *inp, const float *weight, int B, int T, int C, int OC) {
    int rows = B * T;
    if (rows == 0 || OC == 0) return;
    if (C > 0) {
        /* dinp (rows, C) += dout (rows, OC) · weight (OC, C) */
        if (dinp)
            me_ops_sgemm(0, 0, rows, C, OC, 1.0f, dout, OC, weight, C, 1.0f, dinp, C);
        /* dweight (OC, C) += doutᵀ (OC, rows) · inp (rows, C) */
        me_ops_sgemm(1, 0, OC, C, rows, 1.0f, dout, OC, inp, C, 1.0f, dweight, C);
    }
    if (dbias)
        for (int r = 0; r < rows; r++) {
            const float *d = dout + (size_t)r * OC;
            for (int oc = 0; oc < OC; oc++) dbias[oc] += d[oc];
        }
}

/* ---- attention ---------------------------------------------------------------- */

static int key_valid(const uint8_t *mask, int b, int T, int t) {
    return !mask || mask[(size_t)b * T + t];
}

/* The references work one (b, h) at a time, as llm.c's loops would with b
 * and h outermost: every (b, h) reads and writes only its own slices. */
static void attn_forward_bh_naive(float *out, float *att, const float *inp, const uint8_t *mask,
                                  int b, int h, int T, int C, int NH) {
    int C3 = 3 * C, hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    for (int t = 0; t < T; t++) {
        float *att_row = att + (((size_t)b * NH + h) * T + t) * T;
        float *o = out + ((size_t)b * T + t) * C + (size_t)h * hs;
        const float *q = inp + ((size_t)b * T + t) * C3 + (size_t)h * hs;
        for (int t2 = 0; t2 < T; t2++) att_row[t2] = 0.0f;
        for (int i = 0; i < hs; i++) o[i] = 0.0f;
        if (!key_valid(mask, b, T, t)) continue;

        float maxval = -INFINITY;
        for (int t2 = 0; t2 < T; t2++) {
            if (!key_valid(mask, b, T, t2)) continue;
            const float *k = inp + ((size_t)b * T + t2) * C3 + C + (size_t)h * hs;
            float v = 0.0f;
            for (int i = 0; i < hs; i++) v += q[i] * k[i];
            v *= scale;
            att_row[t2] = v;
            if (v > maxval) maxval = v;
        }
        if (maxval == -INFINITY) continue; /* no valid key: all zero */
        float sum = 0.0f;
        for (int t2 = 0; t2 < T; t2++) {
            if (!key_valid(mask, b, T, t2)) continue;
            float e = expf(att_row[t2] - maxval);
            att_row[t2] = e;
            sum += e;
        }
        float inv = 1.0f / sum;
        for (int t2 = 0; t2 < T; t2++) att_row[t2] *= inv;
        for (int t2 = 0; t2 < T; t2++) {
            if (!key_valid(mask, b, T, t2)) continue;
            const float *v = inp + ((size_t)b * T + t2) * C3 + 2 * C + (size_t)h * hs;
            for (int i = 0; i < hs; i++) o[i] += att_row[t2] * v[i];
        }
    }
}

static void attn_backward_bh_naive(float *dinp, const float *dout, const float *inp,
                                   const float *att, const uint8_t *mask,
                                   int b, int h, int T, int C, int NH) {
    int C3 = 3 * C, hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    for (int t = 0; t < T; t++) {
        if (!key_valid(mask, b, T, t)) continue;
        const float *att_row = att + (((size_t)b * NH + h) * T + t) * T;
        const float *d = dout + ((size_t)b * T + t) * C + (size_t)h * hs;
        const float *q = inp + ((size_t)b * T + t) * C3 + (size_t)h * hs;
        float *dq = dinp + ((size_t)b * T + t) * C3 + (size_t)h * hs;
        /* softmax backward: dpre[t2] = att[t2] · (datt[t2] - Σ_k att[k] datt[k]),
         * datt[t2] = <dout_t, v_t2>; datt is recomputed rather than stored. */
        float s = 0.0f;
        for (int t2 = 0; t2 < T; t2++) {
            if (!key_valid(mask, b, T, t2)) continue;
            const float *v = inp + ((size_t)b * T + t2) * C3 + 2 * C + (size_t)h * hs;
            float datt = 0.0f;
            for (int i = 0; i < hs; i++) datt += d[i] * v[i];
            s += att_row[t2] * datt;
        }
        for (int t2 = 0; t2 < T; t2++) {
            if (!key_valid(mask, b, T, t2)) continue;
            const float *k = inp + ((size_t)b * T + t2) * C3 + C + (size_t)h * hs;
            const float *v = k + C;
            float *dk = dinp + ((size_t)b * T + t2) * C3 + C + (size_t)h * hs;
            float *dv = dk + C;
            float datt = 0.0f;
            for (int i = 0; i < hs; i++) datt += d[i] * v[i];
            float dpre = att_row[t2] * (datt - s) * scale;
            for (int i = 0; i < hs; i++) {
                dv[i] += att_row[t2] * d[i];
                dq[i] += dpre * k[i];
                dk[i] += dpre * q[i];
            }
        }
    }
}

void attention_forward_naive(float *out, float *att, const float *inp, const uint8_t *mask,
                             int B, int T, int C, int NH) {
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) attn_forward_bh_naive(out, att, inp, mask, b, h, T, C, NH);
}

void attention_backward_naive(float *dinp, const float *dout, const float *inp,
                              const float *att, const uint8_t *mask,
                              int B, int T, int C, int NH) {
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            attn_backward_bh_naive(dinp, dout, inp, att, mask, b, h, T, C, NH);
}

typedef struct {
    float *out, *att, *dinp;
    const float *inp, *dout, *catt;
    const uint8_t *mask;
    int B, T, C, NH;
} attn_ctx_t;

/* Fast path: per (b, h), the products as sgemms on strided views of q, k,
 * v (leading dimension 3C) with the masked softmax between them; OpenBLAS
 * runs single-threaded inside our threads. One task per (b, h): it alone
 * writes out[b, :, h], att[b, h] and dinp[b, :, h], so tasks need no locks
 * and the split changes no result. */
static void attn_forward_range(void *p, size_t begin, size_t end) {
    const attn_ctx_t *c = p;
    int T = c->T, C = c->C, NH = c->NH, C3 = 3 * C, hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    for (size_t bh = begin; bh < end; bh++) {
        int b = (int)(bh / (size_t)NH), h = (int)(bh % (size_t)NH);
        const float *q = c->inp + (size_t)b * T * C3 + (size_t)h * hs;
        const float *k = q + C, *v = q + 2 * C;
        float *att = c->att + bh * T * T;
        float *o = c->out + (size_t)b * T * C + (size_t)h * hs;
        /* att (T, T) = scale · q (T, hs) · kᵀ (hs, T) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, scale, q, C3, k, C3,
                    0.0f, att, T);
        const uint8_t *mk = c->mask ? c->mask + (size_t)b * T : NULL;
        for (int t = 0; t < T; t++) {
            float *row = att + (size_t)t * T;
            float maxval = -INFINITY;
            if (!mk || mk[t]) {
                if (mk) {
                    for (int t2 = 0; t2 < T; t2++)
                        if (mk[t2] && row[t2] > maxval) maxval = row[t2];
                } else {
                    for (int t2 = 0; t2 < T; t2++)
                        if (row[t2] > maxval) maxval = row[t2];
                }
            }
            if (maxval == -INFINITY) { /* a padding query, or no valid key */
                memset(row, 0, (size_t)T * sizeof *row);
                continue;
            }
            float sum = 0.0f;
            for (int t2 = 0; t2 < T; t2++) {
                float e = !mk || mk[t2] ? expf(row[t2] - maxval) : 0.0f;
                row[t2] = e;
                sum += e;
            }
            float inv = 1.0f / sum;
            for (int t2 = 0; t2 < T; t2++) row[t2] *= inv;
        }
        /* out (T, hs) = att (T, T) · v (T, hs) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, 1.0f, att, T, v, C3,
                    0.0f, o, C);
    }
}

static void attn_backward_range(void *p, size_t begin, size_t end) {
    const attn_ctx_t *c = p;
    int T = c->T, C = c->C, NH = c->NH, C3 = 3 * C, hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    float *dpre = malloc((size_t)T * T * sizeof *dpre);
    for (size_t bh = begin; bh < end; bh++) {
        int b = (int)(bh / (size_t)NH), h = (int)(bh % (size_t)NH);
        if (!dpre) { /* no scratch: the reference needs none */
            attn_backward_bh_naive(c->dinp, c->dout, c->inp, c->catt, c->mask, b, h, T, C, NH);
            continue;
        }
        const float *q = c->inp + (size_t)b * T * C3 + (size_t)h * hs;
        const float *k = q + C, *v = q + 2 * C;
        float *dq = c->dinp + (size_t)b * T * C3 + (size_t)h * hs;
        float *dk = dq + C, *dv = dq + 2 * C;
        const float *att = c->catt + bh * T * T;
        const float *d = c->dout + (size_t)b * T * C + (size_t)h * hs;
        /* datt (T, T) = dout (T, hs) · vᵀ (hs, T), into dpre */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, 1.0f, d, C, v, C3, 0.0f,
                    dpre, T);
        /* dv (T, hs) += attᵀ (T, T) · dout (T, hs) */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, 1.0f, att, T, d, C, 1.0f,
                    dv, C3);
        /* softmax backward, scale folded in; att = 0 at masked entries and
         * in padding rows makes their dpre 0 too */
        for (int t = 0; t < T; t++) {
            const float *a = att + (size_t)t * T;
            float *row = dpre + (size_t)t * T;
            float s = 0.0f;
            for (int t2 = 0; t2 < T; t2++) s += a[t2] * row[t2];
            for (int t2 = 0; t2 < T; t2++) row[t2] = a[t2] * (row[t2] - s) * scale;
        }
        /* dq (T, hs) += dpre (T, T) · k (T, hs);  dk (T, hs) += dpreᵀ · q */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, 1.0f, dpre, T, k, C3,
                    1.0f, dq, C3);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, 1.0f, dpre, T, q, C3,
                    1.0f, dk, C3);
    }
    free(dpre);
}

static void attn_run(range_fn fn, attn_ctx_t *c) {
    ops_init();
    parallel_for((size_t)c->B * c->NH, 1, fn, c);
}

void attention_forward(float *out, float *att, const float *inp, const uint8_t *mask,
                       int B, int T, int C, int NH) {
    assert(NH > 0 && C % NH == 0);
    if (B == 0 || T == 0 || C == 0) return;
    attn_ctx_t c = { .out = out, .att = att, .inp = inp, .mask = mask,
                     .B = B, .T = T, .C = C, .NH = NH };
    attn_run(attn_forward_range, &c);
}

void attention_backward(float *dinp, const float *dout, const float *inp, const float *att,
                        const uint8_t *mask, int B, int T, int C, int NH) {
    assert(NH > 0 && C % NH == 0);
    if (B == 0 || T == 0 || C == 0) return;
    attn_ctx_t c = { .dinp = dinp, .dout = dout, .inp = inp, .catt = att, .mask = mask,
                     .B = B, .T = T, .C = C, .NH = NH };
    attn_run(attn_backward_range, &c);
}

/* ---- GELU ----------------------------------------------------------------------- */

#define GELU_SCALE 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_CUBE 0.044715f
#define GELU_CUBE3 0.134145f           /* 3 · GELU_CUBE */
/* Below this many elements a thread costs more than it saves. */
#define GELU_MIN_PER_THREAD 16384
#define TANH_LIM 7.90531110763549805f

/* tanh as Eigen's fast float tanh: an odd degree-13 over even degree-6
 * rational on [-7.905, 7.905] (beyond, tanh rounds to ±1 in float), within
 * 4e-7 of tanh. No libm call, so it vectorises: the vector version below
 * performs the same IEEE operations in the same order, so both give the
 * same bits (no FMA contraction under -std=c11). */
#define TANH_RATIONAL(x, x2, p, q)                                             \
    x2 = x * x;                                                                \
    p = x2 * -2.76076847742355e-16f + 2.00018790482477e-13f;                   \
    p = p * x2 + -8.60467152213735e-11f;                                       \
    p = p * x2 + 5.12229709037114e-08f;                                        \
    p = p * x2 + 1.48572235717979e-05f;                                        \
    p = p * x2 + 6.37261928875436e-04f;                                        \
    p = p * x2 + 4.89352455891786e-03f;                                        \
    q = x2 * 1.19825839466702e-06f + 1.18534705686654e-04f;                    \
    q = q * x2 + 2.26843463243900e-03f;                                        \
    q = q * x2 + 4.89352518554385e-03f;

static inline float tanh_rational(float x) {
    float x2, p, q;
    x = x > TANH_LIM ? TANH_LIM : x;
    x = x < -TANH_LIM ? -TANH_LIM : x;
    TANH_RATIONAL(x, x2, p, q)
    return p * x / q;
}

static inline float gelu_arg(float x) { return GELU_SCALE * (x + GELU_CUBE * x * x * x); }

static inline float gelu_fwd1(float x, float th) { return 0.5f * x * (1.0f + th); }

/* d gelu / dx; sech² = 1 - tanh² avoids coshf (and its overflow). */
static inline float gelu_grad1(float x, float th) {
    float sech2 = 1.0f - th * th;
    return 0.5f * (1.0f + th) + x * 0.5f * sech2 * GELU_SCALE * (1.0f + GELU_CUBE3 * x * x);
}

/* The references: tanhf from libm. */
void gelu_forward_naive(float *out, const float *inp, size_t N) {
    for (size_t i = 0; i < N; i++) out[i] = gelu_fwd1(inp[i], tanhf(gelu_arg(inp[i])));
}

void gelu_backward_naive(float *dinp, const float *dout, const float *inp, size_t N) {
    for (size_t i = 0; i < N; i++)
        dinp[i] += gelu_grad1(inp[i], tanhf(gelu_arg(inp[i]))) * dout[i];
}

/* 16 floats as a GCC generic vector; target_clones lowers it to one
 * AVX-512 register, two AVX2 or four SSE registers, chosen at load time. */
typedef float vf16_t __attribute__((vector_size(64)));
typedef int32_t vi16_t __attribute__((vector_size(64)));
#define VF16 16
/* ThreadSanitizer cannot run an ifunc resolver before it is initialised
 * (the binary dies at load), so a TSan build keeps the default clone. */
#if defined(__SANITIZE_THREAD__)
#define GELU_CLONES
#else
#define GELU_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif

/* Macros rather than functions: a 64-byte vector argument would change
 * the calling convention between clones (-Wpsabi). */
#define VSEL(m, a, b) ((vf16_t)(((m) & (vi16_t)(a)) | (~(m) & (vi16_t)(b)))) /* m ? a : b */
#define GELU_ARG16(x) (GELU_SCALE * ((x) + GELU_CUBE * (x) * (x) * (x)))
#define TANH_RATIONAL16(th, y)                                                 \
    do {                                                                       \
        vf16_t x_ = (y), x2_, p_, q_, lim_ = { 0 }, nlim_;                     \
        lim_ += TANH_LIM;                                                      \
        nlim_ = -lim_;                                                         \
        x_ = VSEL(x_ > lim_, lim_, x_);                                        \
        x_ = VSEL(x_ < nlim_, nlim_, x_);                                      \
        TANH_RATIONAL(x_, x2_, p_, q_)                                         \
        (th) = p_ * x_ / q_;                                                   \
    } while (0)

typedef struct {
    float *out;
    const float *inp, *dout;
} gelu_ctx_t;

GELU_CLONES
static void gelu_forward_range(void *ctx, size_t begin, size_t end) {
    const gelu_ctx_t *c = ctx;
    size_t i = begin;
    for (; i + VF16 <= end; i += VF16) {
        vf16_t x, th, y;
        memcpy(&x, c->inp + i, sizeof x);
        TANH_RATIONAL16(th, GELU_ARG16(x));
        y = 0.5f * x * (1.0f + th);
        memcpy(c->out + i, &y, sizeof y);
    }
    for (; i < end; i++) c->out[i] = gelu_fwd1(c->inp[i], tanh_rational(gelu_arg(c->inp[i])));
}

GELU_CLONES
static void gelu_backward_range(void *ctx, size_t begin, size_t end) {
    const gelu_ctx_t *c = ctx;
    size_t i = begin;
    for (; i + VF16 <= end; i += VF16) {
        vf16_t x, d, g, th, sech2;
        memcpy(&x, c->inp + i, sizeof x);
        memcpy(&d, c->dout + i, sizeof d);
        memcpy(&g, c->out + i, sizeof g);
        TANH_RATIONAL16(th, GELU_ARG16(x));
        sech2 = 1.0f - th * th;
        g += (0.5f * (1.0f + th) + x * 0.5f * sech2 * GELU_SCALE * (1.0f + GELU_CUBE3 * x * x)) * d;
        memcpy(c->out + i, &g, sizeof g);
    }
    for (; i < end; i++)
        c->out[i] += gelu_grad1(c->inp[i], tanh_rational(gelu_arg(c->inp[i]))) * c->dout[i];
}

void gelu_forward(float *out, const float *inp, size_t N) {
    gelu_ctx_t c = { .out = out, .inp = inp };
    parallel_for(N, GELU_MIN_PER_THREAD, gelu_forward_range, &c);
}

void gelu_backward(float *dinp, const float *dout, const float *inp, size_t N) {
    gelu_ctx_t c = { .out = dinp, .inp = inp, .dout = dout };
    parallel_for(N, GELU_MIN_PER_THREAD, gelu_backward_range, &c);
}

/* ---- residual ------------------------------------------------------------------- */

void residual_forward(float *out, const float *inp1, const float *inp2, size_t N) {
    for (size_t i = 0; i < N; i++) out[i] = inp1[i] + inp2[i];
}

void residual_backward(float *dinp1, float *dinp2, const float *dout, size_t N) {
    for (size_t i = 0; i < N; i++) {
        dinp1[i] += dout[i];
        dinp2[i] += dout[i];
    }
}

/* ---- L2 normalisation ----------------------------------------------------------- */

void l2norm_forward(float *out, float *norm, const float *inp, int N, int C) {
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *o = out + (size_t)n * C;
        float ss = 0.0f;
        for (int i = 0; i < C; i++) ss += x[i] * x[i];
        float nr = sqrtf(ss + ME_L2NORM_EPS);
        float inv = 1.0f / nr;
        for (int i = 0; i < C; i++) o[i] = x[i] * inv;
        norm[n] = nr;
    }
}

void l2norm_backward(float *dinp, const float *dout, const float *out, const float *norm,
                     int N, int C) {
    /* d out_i / d x_j = (δ_ij - out_i out_j) / norm, exactly, eps included. */
    for (int n = 0; n < N; n++) {
        const float *d = dout + (size_t)n * C;
        const float *o = out + (size_t)n * C;
        float *dx = dinp + (size_t)n * C;
        float od = 0.0f;
        for (int i = 0; i < C; i++) od += o[i] * d[i];
        float inv = 1.0f / norm[n];
        for (int i = 0; i < C; i++) dx[i] += (d[i] - o[i] * od) * inv;
    }
}

/* ---- gather --------------------------------------------------------------------- */

void gather_forward(float *out, const float *inp, const int32_t *idx, int B, int T, int M, int C) {
    for (int b = 0; b < B; b++)
        for (int m = 0; m < M; m++)
            memcpy(out + ((size_t)b * M + m) * C,
                   inp + ((size_t)b * T + idx[(size_t)b * M + m]) * C, (size_t)C * sizeof *out);
}

void gather_backward(float *dinp, const float *dout, const int32_t *idx, int B, int T, int M,
                     int C) {
    for (int b = 0; b < B; b++)
        for (int m = 0; m < M; m++) {
            float *dx = dinp + ((size_t)b * T + idx[(size_t)b * M + m]) * C;
            const float *d = dout + ((size_t)b * M + m) * C;
            for (int i = 0; i < C; i++) dx[i] += d[i];
        }
}

/* ---- optimiser ------------------------------------------------------------------ */

void adamw_update(float *params, float *m, float *v, const float *grads, size_t n, float lr,
                  float beta1, float beta2, float eps, float weight_decay, int t) {
    float c1 = 1.0f - powf(beta1, (float)t);
    float c2 = 1.0f - powf(beta2, (float)t);
    for (size_t i = 0; i < n; i++) {
        float g = grads[i];
        float mi = beta1 * m[i] + (1.0f - beta1) * g;
        float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        float mhat = mi / c1, vhat = vi / c2;
        params[i] -= lr * (mhat / (sqrtf(vhat) + eps) + weight_decay * params[i]);
    }
}

float grad_norm(const float *g, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)g[i] * g[i];
    return (float)sqrt(s);
}
