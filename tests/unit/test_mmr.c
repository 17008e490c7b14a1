/* Unit tests for encoder/mmr: MaxSim scores, group losses and accuracies
 * against a float64 reference; dQ, dC against central finite differences of
 * that reference (both the BLAS and the naive implementation) at odd sizes;
 * argmax routing on ties; determinism; BLAS vs naive at the paper's shape.
 *
 * Tolerances. Inputs are unit vectors, so every product |<q, c>| ≤ 1 and
 * Σ_k |q_k c_k| ≤ 1. A float score is a sum over r_q maxima of D-term dot
 * products: |s - s_exact| ≤ (D + r_q)·u (u = 2^-24) whatever the summation
 * order, and the max picks one perturbed candidate, so we allow
 * 2·(D + r_q + 2)·u. The loss is computed in double from the float scores,
 * so it moves by at most 2·max|Δs|/τ per group: we allow that, weighted.
 * Gradients: as in test_ops.c, h = 1e-6 in double makes the difference
 * exact to ~1e-9 relative (|L'''| grows like 1/τ³ ≈ 4e4, still ×1e-12),
 * the float backward is a sum of ≤ N·Rc ≈ 24 terms per element, so we
 * require max|g - fd| ≤ 1e-4·max|fd|. The max is not smooth: the test
 * asserts that in its data every max leads the runner-up by ≥ 1e-4 ≫ h,
 * so no difference crosses a kink. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "encoder/mmr.h"
#include "encoder/ops.h"
#include "tests/harness.h"
#include "tests/unit/grad_check.h"

#define U32 (1.0 / 16777216.0)

typedef struct {
    const me_mmr_group_t *groups;
    int ng, B, N, Rq, Rc, D;
    double tau;
    double *Q, *C;
    double *scores;     /* (ng, B, N) */
    double *group_loss; /* (ng) */
    double *group_acc;  /* (ng) */
    double min_gap;     /* smallest lead of a max over its runner-up */
    int mean;           /* me_mmr_set_score_mean: group g's temperature is tau * r_q */
} ref_t;

/* The loss in double, straight from the definition. */
static double mmr_ref(ref_t *r) {
    double total = 0.0;
    r->min_gap = INFINITY;
    for (int g = 0; g < r->ng; g++) {
        int rq = r->groups[g].rq, rc = r->groups[g].rc;
        double *sc = r->scores + (size_t)g * r->B * r->N;
        for (int i = 0; i < r->B; i++)
            for (int j = 0; j < r->N; j++) {
                double s = 0.0;
                for (int a = 0; a < rq; a++) {
                    double best = -INFINITY, second = -INFINITY;
                    for (int b = 0; b < rc; b++) {
                        const double *q = r->Q + ((size_t)i * r->Rq + a) * r->D;
                        const double *c = r->C + ((size_t)j * r->Rc + b) * r->D;
                        double v = 0.0;
                        for (int k = 0; k < r->D; k++) v += q[k] * c[k];
                        if (v > best) { second = best; best = v; }
                        else if (v > second) second = v;
                    }
                    if (rc > 1 && best - second < r->min_gap) r->min_gap = best - second;
                    s += best;
                }
                sc[(size_t)i * r->N + j] = s;
            }
        double sum = 0.0, tau = r->tau * (r->mean ? rq : 1);
        int correct = 0;
        for (int i = 0; i < r->B; i++) {
            const double *row = sc + (size_t)i * r->N;
            double mx = -INFINITY;
            int jb = 0;
            for (int j = 0; j < r->N; j++)
                if (row[j] / tau > mx) { mx = row[j] / tau; jb = j; }
            double se = 0.0;
            for (int j = 0; j < r->N; j++) se += exp(row[j] / tau - mx);
            sum += mx + log(se) - row[i] / tau;
            correct += jb == i;
        }
        r->group_loss[g] = sum / r->B;
        r->group_acc[g] = (double)correct / r->B;
        total += r->groups[g].weight * r->group_loss[g];
    }
    return total;
}

static double ref_loss(void *p) { return mmr_ref(p); }

/* Unit vectors: normal draws, normalised in float as the encoder does. */
static float *rand_unit(size_t rows, int D, me_rng_t *rng) {
    float *x = malloc(rows * D * sizeof *x), *o = malloc(rows * D * sizeof *o);
    float *nr = malloc(rows * sizeof *nr);
    if (!x || !o || !nr) abort();
    for (size_t i = 0; i < rows * D; i++) x[i] = (float)me_rng_normal(rng);
    l2norm_forward(o, nr, x, (int)rows, D);
    free(x);
    free(nr);
    return o;
}

/* Scores, losses, accuracies and (when fd) gradients of both impls against
 * the reference. */
static void check_case_mode(const me_mmr_group_t *groups, int ng, float tau, int B, int N, int Rq,
                            int Rc, int D, uint64_t seed, int fd, int mean) {
    me_rng_t rng = { seed };
    size_t nq = (size_t)B * Rq * D, nc = (size_t)N * Rc * D;
    float *Q = rand_unit((size_t)B * Rq, D, &rng), *C = rand_unit((size_t)N * Rc, D, &rng);
    ref_t r = { groups, ng, B, N, Rq, Rc, D, tau, tod(Q, nq), tod(C, nc),
                calloc((size_t)ng * B * N, sizeof(double)), calloc(ng, sizeof(double)),
                calloc(ng, sizeof(double)), 0, mean };
    if (!r.scores || !r.group_loss || !r.group_acc) abort();
    double want = mmr_ref(&r);
    double *gq = NULL, *gc = NULL;
    if (fd) {
        ASSERT_TRUE(r.min_gap >= 1e-4);
        gq = calloc(nq, sizeof *gq);
        gc = calloc(nc, sizeof *gc);
        if (!gq || !gc) abort();
        fd_grad(gq, r.Q, nq, ref_loss, &r);
        fd_grad(gc, r.C, nc, ref_loss, &r);
        mmr_ref(&r); /* restore the saved results */
    }

    for (int impl = 0; impl < 2; impl++) {
        me_mmr_t *m = me_mmr_new(groups, ng, tau, Rq, Rc, D, (me_mmr_impl_t)impl);
        ASSERT_TRUE(m != NULL);
        me_mmr_set_score_mean(m, mean);
        float loss = 0.0f, gl[ME_MMR_MAX_GROUPS], ga[ME_MMR_MAX_GROUPS];
        ASSERT_OK(me_mmr_forward(m, &loss, gl, ga, Q, C, B, N));
        double loss_tol = 0.0;
        for (int g = 0; g < ng; g++) {
            int rq = groups[g].rq;
            double stol = 2.0 * (D + rq + 2) * U32;
            const float *s = me_mmr_scores(m, g);
            ASSERT_TRUE(s != NULL);
            for (size_t k = 0; k < (size_t)B * N; k++)
                ASSERT_NEAR(s[k], r.scores[(size_t)g * B * N + k], stol);
            double gtol = 2.0 * stol / tau + 1e-6 * fabs(r.group_loss[g]);
            ASSERT_NEAR(gl[g], r.group_loss[g], gtol);
            ASSERT_NEAR(ga[g], r.group_acc[g], 1e-6);
            loss_tol += fabs(groups[g].weight) * gtol;
        }
        ASSERT_NEAR(loss, want, loss_tol);
        if (fd) {
            /* backward adds: start from a non-zero gradient */
            float *dQ = zerosf(nq), *dC = zerosf(nc);
            for (size_t k = 0; k < nq; k++) dQ[k] = 0.5f;
            ASSERT_OK(me_mmr_backward(m, dQ, dC, Q, C, 1.0f));
            for (size_t k = 0; k < nq; k++) dQ[k] -= 0.5f;
            double eq = rel_err(dQ, gq, nq), ec = rel_err(dC, gc, nc);
            if (grad_verbose())
                fprintf(stderr, "    mmr impl %d tau %.2f: dQ rel err %.3g, dC rel err %.3g\n",
                        impl, tau, eq, ec);
            ASSERT_NEAR(eq, 0.0, GRAD_TOL);
            ASSERT_NEAR(ec, 0.0, GRAD_TOL);
            /* dloss scales, and a second backward gives the same again */
            float *dQ2 = zerosf(nq), *dC2 = zerosf(nc);
            ASSERT_OK(me_mmr_backward(m, dQ2, dC2, Q, C, 2.0f));
            for (size_t k = 0; k < nq; k++) ASSERT_NEAR(dQ2[k], 2.0f * dQ[k], 1e-6 + 1e-5 * fabs(dQ[k]));
            for (size_t k = 0; k < nc; k++) ASSERT_NEAR(dC2[k], 2.0f * dC[k], 1e-6 + 1e-5 * fabs(dC[k]));
            free(dQ); free(dC); free(dQ2); free(dC2);
        }
        me_mmr_free(m);
    }
    free(gq); free(gc); free(Q); free(C);
    free(r.Q); free(r.C); free(r.scores); free(r.group_loss); free(r.group_acc);
}

static void check_case(const me_mmr_group_t *groups, int ng, float tau, int B, int N, int Rq,
                       int Rc, int D, uint64_t seed, int fd) {
    check_case_mode(groups, ng, tau, B, N, Rq, Rc, D, seed, fd, 0);
}

/* Mean scores: every group's softmax at tau * r_q, gradients included. */
TEST(mmr_score_mean_fd) {
    static const me_mmr_group_t groups[] = {
        { 1, 1, 1.0f }, { 2, 3, 0.5f }, { 3, 4, 0.25f },
    };
    check_case_mode(groups, 3, 0.03f, 3, 6, 3, 4, 5, 111, 1, 1);
    check_case_mode(groups, 3, 0.2f, 2, 7, 3, 4, 5, 112, 1, 1);
    /* One group (3,4) in mean mode at tau is the sum mode at 3 tau. */
    me_rng_t rng = { 113 };
    float *Q = rand_unit(3 * 3, 5, &rng), *C = rand_unit(6 * 4, 5, &rng), lm, ls;
    me_mmr_t *mm = me_mmr_new(groups + 2, 1, 0.05f, 3, 4, 5, ME_MMR_BLAS);
    me_mmr_t *ms = me_mmr_new(groups + 2, 1, 0.15f, 3, 4, 5, ME_MMR_BLAS);
    ASSERT_TRUE(mm && ms);
    me_mmr_set_score_mean(mm, 1);
    ASSERT_OK(me_mmr_forward(mm, &lm, NULL, NULL, Q, C, 3, 6));
    ASSERT_OK(me_mmr_forward(ms, &ls, NULL, NULL, Q, C, 3, 6));
    ASSERT_NEAR(lm, ls, 1e-5 * fabs(ls));
    me_mmr_free(mm);
    me_mmr_free(ms);
    free(Q);
    free(C);
}

TEST(mmr_odd_sizes_fd) {
    static const me_mmr_group_t groups[] = {
        { 1, 1, 1.0f }, { 2, 3, 0.5f }, { 3, 4, 0.25f }, { 3, 2, 2.0f },
    };
    /* D=5, Rq=3, Rc=4, B=3, N=6 (positives then hard negatives) */
    check_case(groups, 4, 0.03f, 3, 6, 3, 4, 5, 101, 1);
    check_case(groups, 4, 0.2f, 3, 6, 3, 4, 5, 102, 1);
    /* N > 2B, one group */
    check_case(groups + 2, 1, 0.1f, 2, 7, 3, 4, 5, 103, 1);
}

TEST(mmr_paper_shape) {
    me_mmr_group_t groups[ME_MMR_MAX_GROUPS];
    int ng = me_mmr_default_groups(groups);
    ASSERT_EQ(ng, 5);
    me_ops_set_threads(2);
    check_case(groups, ng, ME_MMR_DEFAULT_TAU, 8, 16, 16, 64, 32, 104, 0);
    me_ops_set_threads(1);
}

/* A confident batch (each query equals its positive's vectors): the loss and
 * gradient are tiny but not rounded to zero. */
TEST(mmr_confident) {
    enum { B = 2, N = 4, R = 2, D = 3 };
    static const me_mmr_group_t groups[] = { { R, R, 1.0f } };
    float Q[B * R * D] = { 1, 0, 0, 0, 1, 0, 0, 0, 1, 0.6f, 0.8f, 0 };
    float C[N * R * D] = { 1, 0, 0, 0, 1, 0, 0, 0, 1, 0.6f, 0.8f, 0,
                           -1, 0, 0, 0, -1, 0, 0, 0, -1, 0, 0, -1 };
    me_mmr_t *m = me_mmr_new(groups, 1, 0.03f, R, R, D, ME_MMR_BLAS);
    ASSERT_TRUE(m != NULL);
    float loss, acc;
    ASSERT_OK(me_mmr_forward(m, &loss, NULL, &acc, Q, C, B, N));
    ASSERT_TRUE(loss > 0.0f && loss < 1e-6f);
    ASSERT_NEAR(acc, 1.0, 0.0);
    float dQ[B * R * D] = { 0 }, dC[N * R * D] = { 0 };
    ASSERT_OK(me_mmr_backward(m, dQ, dC, Q, C, 1.0f));
    float mx = 0.0f;
    for (int k = 0; k < B * R * D; k++) mx = fmaxf(mx, fabsf(dQ[k]));
    ASSERT_TRUE(mx > 0.0f);
    me_mmr_free(m);
}

/* Equal candidates: the max routes its gradient to the lowest index. */
TEST(mmr_ties) {
    enum { B = 2, N = 4, Rq = 2, Rc = 3, D = 4 };
    me_rng_t rng = { 105 };
    float *Q = rand_unit(B * Rq, D, &rng), *C = rand_unit(N * Rc, D, &rng);
    for (int j = 0; j < N; j++) memcpy(C + (j * Rc + 1) * D, C + j * Rc * D, D * sizeof *C);
    static const me_mmr_group_t groups[] = { { Rq, 2, 1.0f } };
    for (int impl = 0; impl < 2; impl++) {
        me_mmr_t *m = me_mmr_new(groups, 1, 0.1f, Rq, Rc, D, (me_mmr_impl_t)impl);
        ASSERT_TRUE(m != NULL);
        float loss, dQ[B * Rq * D] = { 0 }, dC[N * Rc * D] = { 0 };
        ASSERT_OK(me_mmr_forward(m, &loss, NULL, NULL, Q, C, B, N));
        ASSERT_OK(me_mmr_backward(m, dQ, dC, Q, C, 1.0f));
        float nz = 0.0f;
        for (int j = 0; j < N; j++)
            for (int k = 0; k < D; k++) {
                ASSERT_TRUE(dC[(j * Rc + 1) * D + k] == 0.0f); /* the tied twin */
                ASSERT_TRUE(dC[(j * Rc + 2) * D + k] == 0.0f); /* outside the budget */
                nz = fmaxf(nz, fabsf(dC[j * Rc * D + k]));
            }
        ASSERT_TRUE(nz > 0.0f);
        me_mmr_free(m);
    }
    free(Q);
    free(C);
}

TEST(mmr_determinism) {
    me_mmr_group_t groups[ME_MMR_MAX_GROUPS];
    int ng = me_mmr_default_groups(groups);
    enum { B = 6, N = 12, Rq = 16, Rc = 64, D = 24 };
    me_rng_t rng = { 106 };
    float *Q = rand_unit(B * Rq, D, &rng), *C = rand_unit(N * Rc, D, &rng);
    me_ops_set_threads(2);
    float loss[2], gl[2][ME_MMR_MAX_GROUPS], *dQ[2], *dC[2];
    me_mmr_t *m = me_mmr_new(groups, ng, ME_MMR_DEFAULT_TAU, Rq, Rc, D, ME_MMR_BLAS);
    ASSERT_TRUE(m != NULL);
    for (int run = 0; run < 2; run++) {
        dQ[run] = zerosf(B * Rq * D);
        dC[run] = zerosf(N * Rc * D);
        ASSERT_OK(me_mmr_forward(m, &loss[run], gl[run], NULL, Q, C, B, N));
        ASSERT_OK(me_mmr_backward(m, dQ[run], dC[run], Q, C, 1.0f));
    }
    ASSERT_TRUE(memcmp(&loss[0], &loss[1], sizeof loss[0]) == 0);
    ASSERT_TRUE(memcmp(gl[0], gl[1], ng * sizeof gl[0][0]) == 0);
    ASSERT_TRUE(memcmp(dQ[0], dQ[1], B * Rq * D * sizeof(float)) == 0);
    ASSERT_TRUE(memcmp(dC[0], dC[1], N * Rc * D * sizeof(float)) == 0);
    me_mmr_free(m);
    for (int run = 0; run < 2; run++) { free(dQ[run]); free(dC[run]); }
    free(Q);
    free(C);
    me_ops_set_threads(1);
}

TEST(mmr_invalid) {
    me_mmr_group_t ok[] = { { 2, 4, 1.0f } }, bad[] = { { 3, 4, 1.0f } }, zero[] = { { 0, 1, 1.0f } };
    ASSERT_TRUE(me_mmr_new(bad, 1, 0.03f, 2, 4, 8, ME_MMR_BLAS) == NULL);
    ASSERT_TRUE(me_mmr_new(zero, 1, 0.03f, 2, 4, 8, ME_MMR_BLAS) == NULL);
    ASSERT_TRUE(me_mmr_new(ok, 0, 0.03f, 2, 4, 8, ME_MMR_BLAS) == NULL);
    ASSERT_TRUE(me_mmr_new(ok, 1, 0.0f, 2, 4, 8, ME_MMR_BLAS) == NULL);
    me_mmr_t *m = me_mmr_new(ok, 1, 0.03f, 2, 4, 8, ME_MMR_BLAS);
    ASSERT_TRUE(m != NULL);
    float Q[2 * 2 * 8] = { 0 }, C[3 * 4 * 8] = { 0 }, loss;
    ASSERT_EQ(me_mmr_backward(m, Q, C, Q, C, 1.0f), ME_EINVAL); /* no forward yet */
    ASSERT_TRUE(me_mmr_scores(m, 0) == NULL);
    ASSERT_EQ(me_mmr_forward(m, &loss, NULL, NULL, Q, C, 2, 1), ME_EINVAL); /* N < B */
    ASSERT_OK(me_mmr_forward(m, &loss, NULL, NULL, Q, C, 2, 3));
    ASSERT_NEAR(loss, log(3.0), 1e-6); /* all scores equal */
    ASSERT_TRUE(me_mmr_scores(m, 1) == NULL);
    me_mmr_free(m);
    me_mmr_free(NULL);
}
