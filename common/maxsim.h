/* MaxSim (late interaction) over a prefix budget (r_q, r_c):
 *
 *     s(q, d) = Σ_{a < r_q} max_{b < min(r_c, rows(d))} <q_a, d_b>
 *
 * Queries are f32; documents are stored f32, f16 or int8 (per-vector scale).
 * Three implementations share one entry point, me_maxsim_score():
 *   NAIVE  the reference: plain loops, f32 accumulation in row order;
 *   FUSED  SIMD (AVX2+FMA+F16C, or AVX-512 where present): documents are
 *          converted to f32 in a small scratch block and scored against all
 *          query vectors with a running max per query vector;
 *   BLAS   gathers a batch of documents to f32 and calls OpenBLAS sgemm.
 * AUTO picks the fastest available for the shape (see me_maxsim_pick). All
 * agree within float rounding; each is deterministic for a given input, so
 * the same impl on the same data gives bit-identical scores. */
#ifndef ME_MAXSIM_H
#define ME_MAXSIM_H

#include <stddef.h>
#include <stdint.h>

#include "common/dtype.h"

typedef enum {
    ME_MAXSIM_AUTO = 0,
    ME_MAXSIM_NAIVE = 1,
    ME_MAXSIM_FUSED = 2,
    ME_MAXSIM_BLAS = 3,
} me_maxsim_impl_t;

/* One document as the kernels see it: `rows` vectors of `dim` elements of
 * the collection's dtype, row-major and contiguous; for int8, one scale per
 * row in `scales`. Rows past r_c are ignored; a doc with fewer rows than r_c
 * uses the rows it has. */
typedef struct {
    const void *data;
    const float *scales;
    int rows;
} me_docref_t;

/* A query prepared for scoring: a private copy of its first r_q rows in the
 * layouts the kernels want, plus scratch space. Not thread-safe: use one per
 * thread. */
typedef struct me_mquery me_mquery_t;

/* Copies q (rows × dim, f32, row-major). NULL on bad sizes or no memory. */
me_mquery_t *me_mquery_new(const float *q, int rows, int dim);
void me_mquery_free(me_mquery_t *q);
int me_mquery_rows(const me_mquery_t *q);
int me_mquery_dim(const me_mquery_t *q);

/* scores[i] = s(q, docs[i]) at budget (rows(q), r_c); r_c ≥ 1. */
void me_maxsim_score(me_mquery_t *q, me_dtype_t dtype, int r_c,
                     const me_docref_t *docs, size_t n, float *scores,
                     me_maxsim_impl_t impl);

/* The stage-1 scan's shape: scores[i] = s(q, doc i) at r_c = 1 for n
 * documents whose first rows lie `stride` elements apart from `rows` (a
 * dense copy: stride = rows kept per document × dim; int8: doc i's scale
 * at scales[i · stride / dim]). The same scores as me_maxsim_score AUTO
 * at r_c = 1, bit for bit, without a document reference or call per
 * document. */
void me_maxsim_score_rows1(me_mquery_t *q, me_dtype_t dtype, const void *rows, const float *scales, size_t stride,
                           size_t n, float *scores);
/* The same over the documents idx[0..n) of that layout (idx NULL: 0..n):
 * scores[i] = s(q, doc idx[i]); a filter's or an IVF probe's documents. */
void me_maxsim_score_rows1_at(me_mquery_t *q, me_dtype_t dtype, const void *rows, const float *scales, size_t stride,
                              const uint32_t *idx, size_t n, float *scores);

/* The implementation AUTO uses for this shape (never AUTO). */
me_maxsim_impl_t me_maxsim_pick(int r_q, int r_c, int dim, me_dtype_t dtype);
const char *me_maxsim_impl_name(me_maxsim_impl_t impl);
/* The SIMD level FUSED runs at on this CPU: "avx512", "avx2" or "scalar". */
const char *me_maxsim_simd_name(void);
/* 2 · r_q · r_c · dim: the multiply-adds of one document, as flops. */
double me_maxsim_flops(int r_q, int r_c, int dim);

#endif
