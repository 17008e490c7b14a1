/* Transformer encoder layers, forward and backward (see ops.h). */
#include "encoder/ops.h"

#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

/* ---- threads ----------------------------------------------------------------- */

#define MAX_THREADS 64

static int g_threads = 1;

void me_ops_set_threads(int n) {
    if (n <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (int)c : 1;
    }
    if (n > MAX_THREADS) n = MAX_THREADS;
    g_threads = n;
    openblas_set_num_threads(n);
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

/* ---- small kernels ------------------------------------------------------------ */

/* <a, b> in 8 independent lanes summed in a fixed order: the compiler can
 * keep the lanes in vector registers without reassociating anything, so it
 * vectorises without fast-math and stays deterministic. */
static inline float dot8(const float *restrict a, const float *restrict b, int n) {
    float acc[8] = { 0 };
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += a[i + k] * b[i + k];
    float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

/* y += alpha · x */
static inline void axpy(float *restrict y, float alpha, const float *restrict x, int n) {
    for (int i = 0; i < n; i++) y[i] += alpha * x[i];
}

/* ---- embedding ---------------------------------------------------------------- */

void embedding_forward(float *out, const int32_t *inp, const float *wte, const float *wpe,
                       int B, int T, int C) {
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            float *o = out + ((size_t)b * T + t) * C;
            const float *we = wte + (size_t)inp[(size_t)b * T + t] * C;
            const float *pe = wpe + (size_t)t * C;
            for (int i = 0; i < C; i++) o[i] = we[i] + pe[i];
        }
    }
}

void embedding_backward(float *dwte, float *dwpe, const float *dout, const int32_t *inp,
                        int B, int T, int C) {
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            const float *d = dout + ((size_t)b * T + t) * C;
            float *dwe = dwte + (size_t)inp[(size_t)b * T + t] * C;
            for (int i = 0; i < C; i++) dwe[i] += d[i];
            if (dwpe) {
                float *dpe = dwpe + (size_t)t * C;
                for (int i = 0; i < C; i++) dpe[i] += d[i];
            }
        }
    }
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
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, OC, C, 1.0f, inp, C, weight, C,
                beta, out, OC);
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
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, C, OC, 1.0f, dout, OC,
                        weight, C, 1.0f, dinp, C);
        /* dweight (OC, C) += doutᵀ (OC, rows) · inp (rows, C) */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, rows, 1.0f, dout, OC, inp, C,
                    1.0f, dweight, C);
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

void attention_forward_naive(float *out, float *att, const float *inp, const uint8_t *mask,
                             int B, int T, int C, int NH) {
    int C3 = 3 * C, hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            for (int h = 0; h < NH; h++) {
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
    }
}

void attention_backward_naive(float *dinp, const float *dout, const float *inp,
                              const float *att, const uint8_t *mask,
                              int B, int T, int C, int NH) {
    int C3 = 3 * C, hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            if (!key_valid(mask, b, T, t)) continue;
            for (int h = 0; h < NH; h++) {
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
    }
}

typedef struct {
    float *out, *att, *dinp;
    const float *inp, *dout, *catt;
    const uint8_t *mask;
    int B, T, C, NH;
} attn_ctx_t;

/* The valid key positions of sequence b, in order; returns their count. */
static int valid_keys(int *keys, const uint8_t *mask, int b, int T) {
    int n = 0;
    for (int t = 0; t < T; t++)
        if (key_valid(mask, b, T, t)) keys[n++] = t;
    return n;
}

/* One task per (b, h): it alone writes out[b, :, h] and att[b, h], so the
 * tasks need no locks and the split cannot change a result. */
static void attn_forward_range(void *p, size_t begin, size_t end) {
    const attn_ctx_t *c = p;
    int T = c->T, C = c->C, NH = c->NH, C3 = 3 * C, hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    int keys[ME_ATTN_MAX_T];
    for (size_t bh = begin; bh < end; bh++) {
        int b = (int)(bh / (size_t)NH), h = (int)(bh % (size_t)NH);
        int nk = valid_keys(keys, c->mask, b, T);
        const float *base = c->inp + (size_t)b * T * C3 + (size_t)h * hs;
        for (int t = 0; t < T; t++) {
            float *att_row = c->att + (((size_t)b * NH + h) * T + t) * T;
            float *o = c->out + ((size_t)b * T + t) * C + (size_t)h * hs;
            memset(att_row, 0, (size_t)T * sizeof *att_row);
            memset(o, 0, (size_t)hs * sizeof *o);
            if (!key_valid(c->mask, b, T, t) || nk == 0) continue;
            const float *q = base + (size_t)t * C3;
            float maxval = -INFINITY;
            for (int j = 0; j < nk; j++) {
                float v = dot8(q, base + (size_t)keys[j] * C3 + C, hs) * scale;
                att_row[keys[j]] = v;
                if (v > maxval) maxval = v;
            }
            float sum = 0.0f;
            for (int j = 0; j < nk; j++) {
                float e = expf(att_row[keys[j]] - maxval);
                att_row[keys[j]] = e;
                sum += e;
            }
            float inv = 1.0f / sum;
            for (int j = 0; j < nk; j++) {
                float a = att_row[keys[j]] * inv;
                att_row[keys[j]] = a;
                axpy(o, a, base + (size_t)keys[j] * C3 + 2 * C, hs);
            }
        }
    }
}

static void attn_backward_range(void *p, size_t begin, size_t end) {
    const attn_ctx_t *c = p;
    int T = c->T, C = c->C, NH = c->NH, C3 = 3 * C, hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    int keys[ME_ATTN_MAX_T];
    float datt[ME_ATTN_MAX_T]; /* indexed like keys */
    for (size_t bh = begin; bh < end; bh++) {
        int b = (int)(bh / (size_t)NH), h = (int)(bh % (size_t)NH);
        int nk = valid_keys(keys, c->mask, b, T);
        const float *base = c->inp + (size_t)b * T * C3 + (size_t)h * hs;
        float *dbase = c->dinp + (size_t)b * T * C3 + (size_t)h * hs;
        for (int t = 0; t < T; t++) {
            if (!key_valid(c->mask, b, T, t)) continue;
            const float *att_row = c->catt + (((size_t)b * NH + h) * T + t) * T;
            const float *d = c->dout + ((size_t)b * T + t) * C + (size_t)h * hs;
            const float *q = base + (size_t)t * C3;
            float *dq = dbase + (size_t)t * C3;
            float s = 0.0f;
            for (int j = 0; j < nk; j++) {
                size_t off = (size_t)keys[j] * C3;
                float a = att_row[keys[j]];
                datt[j] = dot8(d, base + off + 2 * C, hs);
                s += a * datt[j];
                axpy(dbase + off + 2 * C, a, d, hs);
            }
            for (int j = 0; j < nk; j++) {
                size_t off = (size_t)keys[j] * C3;
                float dpre = att_row[keys[j]] * (datt[j] - s) * scale;
                axpy(dq, dpre, base + off + C, hs);
                axpy(dbase + off + C, dpre, q, hs);
            }
        }
    }
}

void attention_forward(float *out, float *att, const float *inp, const uint8_t *mask,
                       int B, int T, int C, int NH) {
    assert(T <= ME_ATTN_MAX_T && NH > 0 && C % NH == 0);
    attn_ctx_t c = { .out = out, .att = att, .inp = inp, .mask = mask,
                     .B = B, .T = T, .C = C, .NH = NH };
    parallel_for((size_t)B * NH, 1, attn_forward_range, &c);
}

void attention_backward(float *dinp, const float *dout, const float *inp, const float *att,
                        const uint8_t *mask, int B, int T, int C, int NH) {
    assert(T <= ME_ATTN_MAX_T && NH > 0 && C % NH == 0);
    attn_ctx_t c = { .dinp = dinp, .dout = dout, .inp = inp, .catt = att, .mask = mask,
                     .B = B, .T = T, .C = C, .NH = NH };
    parallel_for((size_t)B * NH, 1, attn_backward_range, &c);
}

/* ---- GELU ----------------------------------------------------------------------- */

#define GELU_SCALE 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_CUBE 0.044715f
/* Below this many elements a thread costs more than it saves. */
#define GELU_MIN_PER_THREAD 16384

typedef struct {
    float *out;
    const float *inp, *dout;
} gelu_ctx_t;

static void gelu_forward_range(void *p, size_t begin, size_t end) {
    const gelu_ctx_t *c = p;
    for (size_t i = begin; i < end; i++) {
        float x = c->inp[i];
        float cube = GELU_CUBE * x * x * x;
        c->out[i] = 0.5f * x * (1.0f + tanhf(GELU_SCALE * (x + cube)));
    }
}

static void gelu_backward_range(void *p, size_t begin, size_t end) {
    const gelu_ctx_t *c = p;
    for (size_t i = begin; i < end; i++) {
        float x = c->inp[i];
        float cube = GELU_CUBE * x * x * x;
        float th = tanhf(GELU_SCALE * (x + cube));
        float sech2 = 1.0f - th * th; /* sech² = 1 - tanh²: no coshf overflow */
        float local = 0.5f * (1.0f + th) +
                      x * 0.5f * sech2 * GELU_SCALE * (1.0f + 3.0f * GELU_CUBE * x * x);
        c->out[i] += local * c->dout[i];
    }
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
