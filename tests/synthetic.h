/* Synthetic nested multi-vector data with the coarse-to-fine structure
 * MetaEmbed's MMR training gives real embeddings, so cascade recall on it
 * means something (random vectors have no such structure).
 *
 * Generator (all vectors L2-normalised, g = fresh standard normal vectors):
 *   topic centre  t_k                      (k = doc % topics)
 *   summary       s_d = norm(t_k + spread · g)
 *   or, with families of F > 1 documents (docs d of one topic with the
 *   same (d / topics) / F: near-duplicates, as a real corpus's package
 *   families or an emoji's styles are):
 *   family centre f = norm(t_k + spread · g_family)
 *   summary       s_d = norm(f + fspread · g)
 *   doc vector j  c_{d,j} = norm(s_d + sigma_j · g),
 *                 sigma_j = sigma0 + (sigma1 - sigma0) · j / (rows - 1)
 *   i.e. the first vector follows the summary closely, later ones add detail.
 *   query of doc d, vector i: q_i = norm(c_{d, j_i} + qnoise · g) with j_i
 *   spread evenly over the doc's rows (coarse first).
 * Every document and query is a pure function of (params, index), so tests
 * regenerate data instead of storing it. */
#ifndef ME_TESTS_SYNTHETIC_H
#define ME_TESTS_SYNTHETIC_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int dim, rows;           /* D, R_c */
    int topics;
    float spread;            /* summary (or family centre) around its topic */
    int family;              /* documents a family; 0 or 1: none (the summary is the topic's) */
    float fspread;           /* summary around its family centre */
    float sigma0, sigma1;    /* detail noise of the first / last vector */
    float qnoise;
    uint64_t seed;
} me_synth_t;

/* Defaults used by the benchmark (documented in docs/benchmarks.md). */
me_synth_t me_synth_default(int dim, int rows, uint64_t seed);
/* out: rows × dim f32. */
void me_synth_doc(const me_synth_t *p, uint64_t doc, float *out);
/* out: qrows × dim f32, the query whose answer is `doc`. */
void me_synth_query(const me_synth_t *p, uint64_t doc, uint64_t qseed, int qrows, float *out);

/* Documents first..first+n as f16 into out ([n, rows, dim]), on `threads`
 * threads (generation is the slow part of big benchmarks). */
void me_synth_docs_f16(const me_synth_t *p, uint64_t first, size_t n, uint16_t *out, int threads);

#endif
