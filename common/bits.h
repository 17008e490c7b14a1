/* 1-bit vectors: the sign of each component, packed 64 to a word, and the
 * stage-1 score over them (the binary coarse tier, collection option
 * binary_coarse): s(q, d) = Σ_i sign(q_i)·sign(d_i) = D − 2·popcount(q ⊕ d),
 * the ±1 inner product, as a float so it ranks with the topk module.
 * D = 128 is two words: 16 bytes a document instead of 256 in f16. */
#ifndef ME_BITS_H
#define ME_BITS_H

#include <stddef.h>
#include <stdint.h>

static inline size_t me_bits_words(int dim) { return ((size_t)dim + 63) / 64; }

/* out[0..me_bits_words(dim)): bit i set when v[i] > 0 (padding bits 0). */
void me_bits_from_f32(uint64_t *out, const float *v, int dim);

/* scores[i] = dim − 2·popcount(q ⊕ docs[idx[i]]) over documents laid out
 * `words` words apart (idx NULL: documents 0..n). */
void me_bits_score(const uint64_t *q, const uint64_t *docs, size_t words, int dim, const uint32_t *idx, size_t n,
                   float *scores);

#endif
