/* Independent brute-force MaxSim for integration tests: scores every
 * document in f64 from the vectors as stored, and checks a search reply
 * against it. */
#ifndef ME_TESTS_BRUTE_H
#define ME_TESTS_BRUTE_H

#include "include/metaembed.h"

/* Scores are sums of up to 16 dot products of unit vectors computed in f32
 * by the shard and in f64 here: 1e-4 is ~100x the f32 rounding we expect. */
#define TOL 1e-4

typedef struct {
    int ndocs, dim, rows;
    float *vecs;      /* [ndocs, rows, dim] as stored (after f16 rounding) */
    int *alive;       /* deleted docs are 0 */
} corpus_t;

/* scores[d] at budget (r_q, r_c); deleted docs get -INFINITY. */
void brute(const corpus_t *cp, const float *q, int r_q, int r_c, double *scores);
/* The hits must be brute force's top k (ids "PREFIX-%05d" → index): same
 * ids in the same order, except where brute-force scores are within 2·TOL. */
void check_against_brute(const me_results_t *res, const double *scores, int ndocs, int k, const char *prefix);

#endif
