#include "tests/brute.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/harness.h"

void brute(const corpus_t *cp, const float *q, int r_q, int r_c, double *scores) {
    for (int d = 0; d < cp->ndocs; d++) {
        if (!cp->alive[d]) { scores[d] = -INFINITY; continue; }
        const float *dv = cp->vecs + (size_t)d * cp->rows * cp->dim;
        double total = 0;
        for (int a = 0; a < r_q; a++) {
            double best = -INFINITY;
            for (int b = 0; b < r_c && b < cp->rows; b++) {
                double s = 0;
                for (int i = 0; i < cp->dim; i++) s += (double)q[a * cp->dim + i] * dv[b * cp->dim + i];
                if (s > best) best = s;
            }
            total += best;
        }
        scores[d] = total;
    }
}

static const double *g_sort_scores;
static int by_score_desc(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    if (g_sort_scores[x] != g_sort_scores[y]) return g_sort_scores[x] > g_sort_scores[y] ? -1 : 1;
    return x - y;  /* ids are zero-padded: index order = id order */
}

void check_against_brute(const me_results_t *res, const double *scores, int ndocs, int k, const char *prefix) {
    int *order = malloc(ndocs * sizeof *order);
    int alive = 0;
    for (int i = 0; i < ndocs; i++)
        if (scores[i] > -INFINITY) order[alive++] = i;
    g_sort_scores = scores;
    qsort(order, alive, sizeof *order, by_score_desc);
    int want = k < alive ? k : alive;
    ASSERT_EQ(res->n, want);
    for (int i = 0; i < want; i++) {
        int idx = -1;
        char pfx[32];
        ASSERT_TRUE(sscanf(res->hits[i].id, "%31[^-]-%d", pfx, &idx) == 2);
        ASSERT_TRUE(strcmp(pfx, prefix) == 0);
        ASSERT_TRUE(idx >= 0 && idx < ndocs && scores[idx] > -INFINITY);
        ASSERT_NEAR(res->hits[i].score, scores[idx], TOL);
        if (idx != order[i]) ASSERT_NEAR(scores[idx], scores[order[i]], 2 * TOL);
    }
    free(order);
}

