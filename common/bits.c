#include "common/bits.h"

#include <math.h>
#include <string.h>

void me_bits_from_f32(uint64_t *out, const float *v, int dim) {
    memset(out, 0, me_bits_words(dim) * sizeof *out);
    for (int i = 0; i < dim; i++)
        if (v[i] > 0) out[i / 64] |= 1ull << (i % 64);
}

void me_bits_query_init(me_bits_query_t *q, const float *v, int dim) {
    memset(q, 0, sizeof *q);
    q->dim = dim;
    q->words = me_bits_words(dim);
    float lo = v[0], hi = v[0];
    for (int i = 1; i < dim; i++) {
        if (v[i] < lo) lo = v[i];
        if (v[i] > hi) hi = v[i];
    }
    const int levels = (1 << ME_BITS_QUERY_PLANES) - 1;
    q->lo = lo;
    q->delta = hi > lo ? (hi - lo) / (float)levels : 0.0f;
    double sum = 0;
    for (int i = 0; i < dim; i++) {
        int u = q->delta > 0 ? (int)lrintf((v[i] - lo) / q->delta) : 0;
        if (u < 0) u = 0;
        if (u > levels) u = levels;
        for (int p = 0; p < ME_BITS_QUERY_PLANES; p++)
            if (u >> p & 1) q->planes[p][i / 64] |= 1ull << (i % 64);
        sum += lo + (double)q->delta * u;
    }
    q->sum = (float)sum;
}

/* The loop body once per popcount flavour: with the POPCNT instruction
 * where the CPU has it (x86-64 since 2008), else the portable builtin. */
_Static_assert(ME_BITS_QUERY_PLANES == 4, "the D <= 128 path below unrolls four planes");
#define PC(x) ((unsigned)__builtin_popcountll(x))
#define SCORE_BODY                                                                         \
    size_t words = q->words;                                                               \
    if (words == 2) {                                                                      \
        /* D in 65..128 (the common D = 128): the planes in registers, unrolled. */       \
        const uint64_t a0 = q->planes[0][0], a1 = q->planes[0][1], b0 = q->planes[1][0],   \
                       b1 = q->planes[1][1], c0 = q->planes[2][0], c1 = q->planes[2][1],   \
                       e0 = q->planes[3][0], e1 = q->planes[3][1];                         \
        const float lo2 = 2.0f * q->lo, de2 = 2.0f * q->delta;                             \
        for (size_t i = 0; i < n; i++) {                                                   \
            const uint64_t *d = docs + (idx ? idx[i] : i) * 2;                             \
            uint64_t d0 = d[0], d1 = d[1];                                                 \
            unsigned ones = PC(d0) + PC(d1);                                               \
            unsigned weighted = PC(a0 & d0) + PC(a1 & d1) + ((PC(b0 & d0) + PC(b1 & d1)) << 1) + \
                                ((PC(c0 & d0) + PC(c1 & d1)) << 2) + ((PC(e0 & d0) + PC(e1 & d1)) << 3); \
            scores[i] = lo2 * (float)ones + de2 * (float)weighted - q->sum;               \
        }                                                                                  \
        return;                                                                            \
    }                                                                                      \
    for (size_t i = 0; i < n; i++) {                                                       \
        const uint64_t *d = docs + (idx ? idx[i] : i) * words;                             \
        unsigned ones = 0, weighted = 0;                                                   \
        for (size_t w = 0; w < words; w++) {                                               \
            ones += (unsigned)__builtin_popcountll(d[w]);                                  \
            for (int p = 0; p < ME_BITS_QUERY_PLANES; p++)                                 \
                weighted += (unsigned)__builtin_popcountll(q->planes[p][w] & d[w]) << p;   \
        }                                                                                  \
        scores[i] = 2.0f * (q->lo * (float)ones + q->delta * (float)weighted) - q->sum;    \
    }

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("popcnt"))) static void score_popcnt(const me_bits_query_t *q, const uint64_t *docs,
                                                           const uint32_t *idx, size_t n, float *scores) {
    SCORE_BODY
}
#endif

static void score_portable(const me_bits_query_t *q, const uint64_t *docs, const uint32_t *idx, size_t n,
                           float *scores) {
    SCORE_BODY
}

void me_bits_score(const me_bits_query_t *q, const uint64_t *docs, const uint32_t *idx, size_t n, float *scores) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("popcnt")) {
        score_popcnt(q, docs, idx, n, scores);
        return;
    }
#endif
    score_portable(q, docs, idx, n, scores);
}
