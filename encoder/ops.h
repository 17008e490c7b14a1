/* The layers of a pre-LN transformer encoder in float32, forward and
 * backward, in the manner of llm.c: free functions
 *     <op>_forward(out, ..., inp, weight, ..., sizes)
 *     <op>_backward(dinp, dweight, ..., dout, inp, weight, ..., sizes)
 * Outputs come first, then inputs and weights, then sizes. Forward functions
 * overwrite their outputs; backward functions ADD into every d-prefixed
 * gradient (zero them once per step), so a tensor read by two layers
 * collects both contributions. A gradient marked "may be NULL" is skipped
 * when NULL.
 *
 * Three kernels have a fast path that differs from the plain loops, and
 * each keeps its naive reference beside it (tests compare them):
 *   matmul     OpenBLAS sgemm;
 *   attention  threads over (b, h), each running single-threaded sgemms;
 *   gelu       a vectorised rational tanh, threaded.
 * The other ops are the plain loops themselves.
 *
 * Threads: one setting, me_ops_set_threads(), for all the ops (sgemms
 * included, see me_ops_sgemm). Every op is deterministic: two runs give
 * bit-identical results. Work is split so that no sum depends on the
 * thread count (sgemm splits rows of the output), so 1 and 2 threads give
 * the same bits too, as far as OpenBLAS runs the same kernel on a row
 * block as on the whole (the tests check it at the sizes they use). */
#ifndef ME_OPS_H
#define ME_OPS_H

#include <stddef.h>
#include <stdint.h>

/* The number of threads the ops use; n ≤ 0: the online CPUs. Default 1.
 * OpenBLAS itself is set to one thread (here and on the first op; its pool
 * threads spin after each call and would compete with ours): the ops split
 * their sgemms over their own threads. Not thread-safe: set it before
 * running the model, and with n > 1 run the ops from one thread at a time. */
void me_ops_set_threads(int n);
int me_ops_threads(void);

/* C (M, N) = alpha · op(A) · op(B) + beta · C, row-major, op(X) = Xᵀ when
 * transX; the rows of C split over the ops' threads (in blocks of 16), each
 * block one single-threaded OpenBLAS call. K ≥ 1. */
void me_ops_sgemm(int transA, int transB, int M, int N, int K, float alpha,
                  const float *A,            /* op(A): (M, K), leading dim lda */
                  int lda,
                  const float *B,            /* op(B): (K, N), leading dim ldb */
                  int ldb, float beta,
                  float *C,                  /* (M, N), leading dim ldc */
                  int ldc);

/* ---- layernorm ------------------------------------------------------------- */

#define ME_LAYERNORM_EPS 1e-5f

/* out = (inp - mean) * rstd * weight + bias over the last axis; saves mean
 * and rstd for the backward. */
void layernorm_forward(float *out,           /* (B, T, C) */
                       float *mean,          /* (B, T) */
                       float *rstd,          /* (B, T) */
                       const float *inp,     /* (B, T, C) */
                       const float *weight,  /* (C) */
                       const float *bias,    /* (C) */
                       int B, int T, int C);
void layernorm_backward(float *dinp,         /* (B, T, C) */
                        float *dweight,      /* (C) */
                        float *dbias,        /* (C) */
                        const float *dout,   /* (B, T, C) */
                        const float *inp,    /* (B, T, C) */
                        const float *weight, /* (C) */
                        const float *mean,   /* (B, T) */
                        const float *rstd,   /* (B, T) */
                        int B, int T, int C);

/* ---- matmul with bias -------------------------------------------------------- */

/* out = inp · weightᵀ + bias, rows = B·T. bias may be NULL. */
void matmul_forward(float *out,              /* (B, T, OC) */
                    const float *inp,        /* (B, T, C) */
                    const float *weight,     /* (OC, C) */
                    const float *bias,       /* (OC) or NULL */
                    int B, int T, int C, int OC);
void matmul_backward(float *dinp,            /* (B, T, C), may be NULL */
                     float *dweight,         /* (OC, C) */
                     float *dbias,           /* (OC), may be NULL */
                     const float *dout,      /* (B, T, OC) */
                     const float *inp,       /* (B, T, C) */
                     const float *weight,    /* (OC, C) */
                     int B, int T, int C, int OC);
/* The references: plain loops, float accumulation in index order. */
void matmul_forward_naive(float *out, const float *inp, const float *weight,
                          const float *bias, int B, int T, int C, int OC);
void matmul_backward_naive(float *dinp, float *dweight, float *dbias, const float *dout,
                           const float *inp, const float *weight, int B, int T, int C, int OC);

/* ---- attention ----------------------------------------------------------------- */

/* Bidirectional multi-head self-attention. inp holds q, k, v side by side
 * (inp[b,t, 0:C] = q, [C:2C] = k, [2C:3C] = v), heads of C/NH channels;
 * scores are scaled by 1/sqrt(C/NH). mask[b,t] = 1 marks a real or meta
 * token, 0 padding; mask NULL means all real. A padding position neither
 * attends nor is attended: its keys get weight 0 and its own output row and
 * att row are 0, so nothing is NaN and no gradient reaches it. att keeps the
 * softmax probabilities for the backward (0 at masked entries).
 * C % NH == 0. */
void attention_forward(float *out,           /* (B, T, C) */
                       float *att,           /* (B, NH, T, T) */
                       const float *inp,     /* (B, T, 3C) */
                       const uint8_t *mask,  /* (B, T) or NULL */
                       int B, int T, int C, int NH);
void attention_backward(float *dinp,         /* (B, T, 3C) */
                        const float *dout,   /* (B, T, C) */
                        const float *inp,    /* (B, T, 3C) */
                        const float *att,    /* (B, NH, T, T) */
                        const uint8_t *mask, /* (B, T) or NULL */
                        int B, int T, int C, int NH);
/* The references: llm.c's loops, one thread. */
void attention_forward_naive(float *out, float *att, const float *inp, const uint8_t *mask,
                             int B, int T, int C, int NH);
void attention_backward_naive(float *dinp, const float *dout, const float *inp,
                              const float *att, const uint8_t *mask,
                              int B, int T, int C, int NH);

/* ---- pointwise ----------------------------------------------------------------- */

/* GELU, tanh approximation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
 * The fast path computes tanh by a rational function (within 4e-7 of it),
 * 16 lanes at a time (AVX-512 / AVX2 / SSE picked at load time), threaded;
 * every lane and the scalar tail give the same bits. */
void gelu_forward(float *out,                /* (N) */
                  const float *inp,          /* (N) */
                  size_t N);
void gelu_backward(float *dinp,              /* (N) */
                   const float *dout,        /* (N) */
                   const float *inp,         /* (N) */
                   size_t N);
/* The references: libm tanhf, one thread. */
void gelu_forward_naive(float *out, const float *inp, size_t N);
void gelu_backward_naive(float *dinp, const float *dout, const float *inp, size_t N);

/* out = inp1 + inp2 (the residual stream). */
void residual_forward(float *out,            /* (N) */
                      const float *inp1,     /* (N) */
                      const float *inp2,     /* (N) */
                      size_t N);
void residual_backward(float *dinp1,         /* (N) */
                       float *dinp2,         /* (N) */
                       const float *dout,    /* (N) */
                       size_t N);

/* ---- row-wise L2 normalisation ------------------------------------------------ */

#define ME_L2NORM_EPS 1e-12f

/* out[n,:] = inp[n,:] / norm[n], norm[n] = sqrt(‖inp[n,:]‖² + ME_L2NORM_EPS):
 * smooth everywhere, and a zero row stays zero. */
void l2norm_forward(float *out,              /* (N, C) */
                    float *norm,             /* (N) */
                    const float *inp,        /* (N, C) */
                    int N, int C);
/* dinp += (dout - out·⟨out, dout⟩) / norm. */
void l2norm_backward(float *dinp,            /* (N, C) */
                     const float *dout,      /* (N, C) */
                     const float *out,       /* (N, C) */
                     const float *norm,      /* (N) */
                     int N, int C);

/* ---- row gather (e.g. the meta positions) ------------------------------------- */

/* out[b,m,:] = inp[b, idx[b,m], :], idx in [0, T). */
void gather_forward(float *out,              /* (B, M, C) */
                    const float *inp,        /* (B, T, C) */
                    const int32_t *idx,      /* (B, M) */
                    int B, int T, int M, int C);
void gather_backward(float *dinp,            /* (B, T, C) */
                     const float *dout,      /* (B, M, C) */
                     const int32_t *idx,     /* (B, M) */
                     int B, int T, int M, int C);

/* ---- optimiser ------------------------------------------------------------------ */

/* One AdamW step (as llm.c's gpt2_update) on n parameters; t counts steps
 * from 1. Decoupled weight decay: call once per parameter range with its
 * own weight_decay (e.g. 0 for biases and layernorm). */
void adamw_update(float *params,             /* (n) */
                  float *m,                  /* (n) first moment */
                  float *v,                  /* (n) second moment */
                  const float *grads,        /* (n) */
                  size_t n, float lr, float beta1, float beta2, float eps,
                  float weight_decay, int t);

/* sqrt(Σ g²), accumulated in double, for gradient clipping. */
float grad_norm(const float *g,              /* (n) */
                size_t n);

#endif
