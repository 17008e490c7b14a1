/* 1-bit document vectors and the stage-1 score over them (the binary
 * coarse tier, collection option binary_coarse).
 *
 * A document vector d is kept as its signs (bit i set when d_i > 0), 64 to
 * a word: D = 128 is 16 bytes a document instead of 256 in f16. The query
 * keeps more: its first vector q is quantized to 4 bits a component,
 * q_i ≈ lo + Δ·u_i with u_i in 0..15, held as four bit planes. The score is
 * the asymmetric inner product of that query with the document's signs,
 *
 *   s(q, d) = Σ_i q_i·(2 b_i − 1) = 2·(lo·|b| + Δ·Σ_p 2^p·|plane_p ∧ b|) − Σ_i q_i,
 *
 * ten popcounts a document at D = 128. Unlike the symmetric Hamming score
 * (129 distinct values at D = 128, so thousands of ties at a stage-1 cut),
 * it keeps the query's magnitudes and almost never ties. */
#ifndef ME_BITS_H
#define ME_BITS_H

#include <stddef.h>
#include <stdint.h>

#include "common/validate.h"

#define ME_BITS_QUERY_PLANES 4

static inline size_t me_bits_words(int dim) { return ((size_t)dim + 63) / 64; }

/* out[0..me_bits_words(dim)): bit i set when v[i] > 0 (padding bits 0). */
void me_bits_from_f32(uint64_t *out, const float *v, int dim);

typedef struct {
    int dim;
    size_t words;
    float lo, delta, sum;  /* q_i ≈ lo + delta·u_i; sum = Σ_i (lo + delta·u_i) */
    uint64_t planes[ME_BITS_QUERY_PLANES][(ME_DIM_MAX + 63) / 64];
} me_bits_query_t;

/* The query side: v (f32, dim) quantized to ME_BITS_QUERY_PLANES bits. */
void me_bits_query_init(me_bits_query_t *q, const float *v, int dim);

/* scores[i] = s(q, docs[idx[i]]) over documents laid out q->words words
 * apart (idx NULL: documents 0..n). */
void me_bits_score(const me_bits_query_t *q, const uint64_t *docs, const uint32_t *idx, size_t n, float *scores);

#endif
