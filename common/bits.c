#include "common/bits.h"

#include <string.h>

void me_bits_from_f32(uint64_t *out, const float *v, int dim) {
    memset(out, 0, me_bits_words(dim) * sizeof *out);
    for (int i = 0; i < dim; i++)
        if (v[i] > 0) out[i / 64] |= 1ull << (i % 64);
}

/* The loop body once per popcount flavour: with the POPCNT instruction
 * where the CPU has it (x86-64 since 2008; VPOPCNTDQ does not pay at two
 * words a document), else the portable builtin. */
#define SCORE_BODY                                                                  \
    for (size_t i = 0; i < n; i++) {                                                \
        const uint64_t *d = docs + (idx ? idx[i] : i) * words;                      \
        unsigned diff = 0;                                                          \
        for (size_t w = 0; w < words; w++) diff += (unsigned)__builtin_popcountll(q[w] ^ d[w]); \
        scores[i] = (float)(dim - 2 * (int)diff);                                   \
    }

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("popcnt"))) static void score_popcnt(const uint64_t *q, const uint64_t *docs, size_t words,
                                                           int dim, const uint32_t *idx, size_t n, float *scores) {
    SCORE_BODY
}
#endif

static void score_portable(const uint64_t *q, const uint64_t *docs, size_t words, int dim, const uint32_t *idx,
                           size_t n, float *scores) {
    SCORE_BODY
}

void me_bits_score(const uint64_t *q, const uint64_t *docs, size_t words, int dim, const uint32_t *idx, size_t n,
                   float *scores) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("popcnt")) {
        score_popcnt(q, docs, words, dim, idx, n, scores);
        return;
    }
#endif
    score_portable(q, docs, words, dim, idx, n, scores);
}
