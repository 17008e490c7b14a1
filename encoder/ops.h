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
 * Two kernels have a fast path that differs from the plain loops, and each
 * keeps its naive reference beside it (tests compare them):
 *   matmul     OpenBLAS sgemm;
 *   attention  threads over (b, h), dot products in 8 independent lanes.
 * GELU is threaded too, but every element is computed by the same scalar
 * formula, so it is bit-identical to a single-threaded loop.
 *
 * Threads: one setting, me_ops_set_threads(), for the ops' own threads and
 * for OpenBLAS. Every op is deterministic: work is split so that no sum
 * depends on the thread count, so two runs give bit-identical results. */
#ifndef ME_OPS_H
#define ME_OPS_H

#include <stddef.h>
#include <stdint.h>

/* n ≤ 0: the number of online CPUs. Also sets OpenBLAS's thread count (the
 * only place the encoder does so). Default 1. Not thread-safe: call before
 * running the model. Note: common/maxsim.c sets OpenBLAS to 1 thread the
 * first time its BLAS path runs; call this again after scoring. */
void me_ops_set_threads(int n);
int me_ops_threads(void);

/* ---- embedding ------------------------------------------------------------- */

/* out[b,t,:] = wte[inp[b,t],:] + wpe[t,:]. Meta tokens are ordinary ids at
 * the end of the vocabulary; ids must lie in [0, V) and T ≤ maxT. */
void embedding_forward(float *out,           /* (B, T, C) */
                       const int32_t *inp,   /* (B, T) token ids */
                       const float *wte,     /* (V, C) */
                       const float *wpe,     /* (maxT, C) */
                       int B, int T, int C);
void embedding_backward(float *dwte,         /* (V, C) */
                        float *dwpe,         /* (maxT, C), may be NULL */
                        const float *dout,   /* (B, T, C) */
                        const int32_t *inp,  /* (B, T) */
                        int B, int T, int C);

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

/* The most positions attention accepts (per-row scratch lives on the stack). */
#define ME_ATTN_MAX_T 2048

/* Bidirectional multi-head self-attention. inp holds q, k, v side by side
 * (inp[b,t, 0:C] = q, [C:2C] = k, [2C:3C] = v), heads of C/NH channels;
 * scores are scaled by 1/sqrt(C/NH). mask[b,t] = 1 marks a real or meta
 * token, 0 padding; mask NULL means all real. A padding position neither
 * attends nor is attended: its keys get weight 0 and its own output row and
 * att row are 0, so nothing is NaN and no gradient reaches it. att keeps the
 * softmax probabilities for the backward (0 at masked entries).
 * C % NH == 0, T ≤ ME_ATTN_MAX_T. */
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

/* GELU, tanh approximation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
void gelu_forward(float *out,                /* (N) */
                  const float *inp,          /* (N) */
                  size_t N);
void gelu_backward(float *dinp,              /* (N) */
                   const float *dout,        /* (N) */
                   const float *inp,         /* (N) */
                   size_t N);

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
