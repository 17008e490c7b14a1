/* The MMR loss (see mmr.h). */
#include "encoder/mmr.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/budget.h"
#include "common/error.h"
#include "encoder/ops.h"

struct me_mmr {
    me_mmr_group_t groups[ME_MMR_MAX_GROUPS];
    int ngroups;
    float tau;
    int score_mean;    /* logits s_g / (τ r_q) instead of s_g / τ */
    int Rq, Rc, D;
    me_mmr_impl_t impl;
    int B, N;          /* of the last forward; 0 before one */
    float *sim;        /* (B·Rq, N·Rc) pairwise products; dS in the backward */
    float *scores;     /* (ngroups, B, N) MaxSim scores */
    float *dz;         /* (ngroups, B, N) p_ij - [i == j], p the softmax */
    int32_t *argmax;   /* per group (B, N, rq): the b each max picked */
    size_t cap_sim, cap_scores, cap_dz, cap_arg;
};

int me_mmr_default_groups(me_mmr_group_t *out) {
    for (int i = 0; i < ME_BUDGET_LADDER_N; i++)
        out[i] = (me_mmr_group_t){ me_budget_ladder[i].r_q, me_budget_ladder[i].r_c, 1.0f };
    return ME_BUDGET_LADDER_N;
}

me_mmr_t *me_mmr_new(const me_mmr_group_t *groups, int ngroups, float tau,
                     int Rq, int Rc, int D, me_mmr_impl_t impl) {
    if (!groups || ngroups < 1 || ngroups > ME_MMR_MAX_GROUPS || !(tau > 0.0f) || Rq < 1 ||
        Rc < 1 || D < 1 || (impl != ME_MMR_BLAS && impl != ME_MMR_NAIVE))
        return NULL;
    for (int g = 0; g < ngroups; g++)
        if (groups[g].rq < 1 || groups[g].rq > Rq || groups[g].rc < 1 || groups[g].rc > Rc)
            return NULL;
    me_mmr_t *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    memcpy(m->groups, groups, (size_t)ngroups * sizeof *groups);
    m->ngroups = ngroups;
    m->tau = tau;
    m->Rq = Rq;
    m->Rc = Rc;
    m->D = D;
    m->impl = impl;
    return m;
}

void me_mmr_set_score_mean(me_mmr_t *m, int on) { m->score_mean = on != 0; }

/* Group g's logit scale: 1/τ, or 1/(τ r_q) with mean scores, so every
 * group's softmax is as sharp as the (1,1) group's. */
static double group_inv_tau(const me_mmr_t *m, int g) {
    return 1.0 / ((double)m->tau * (m->score_mean ? m->groups[g].rq : 1));
}

void me_mmr_free(me_mmr_t *m) {
    if (!m) return;
    free(m->sim);
    free(m->scores);
    free(m->dz);
    free(m->argmax);
    free(m);
}

/* Grows *p to hold n elements of size es; 0 or ME_ENOMEM (*p kept). */
static int grow(void **p, size_t *cap, size_t n, size_t es) {
    if (*cap >= n) return 0;
    void *q = realloc(*p, n * es);
    if (!q) return ME_ENOMEM;
    *p = q;
    *cap = n;
    return 0;
}

static int reserve(me_mmr_t *m, int B, int N) {
    size_t pair = (size_t)m->ngroups * B * N, arg = 0;
    for (int g = 0; g < m->ngroups; g++) arg += (size_t)B * N * m->groups[g].rq;
    int rc = grow((void **)&m->sim, &m->cap_sim, (size_t)B * m->Rq * N * m->Rc, sizeof(float));
    if (!rc) rc = grow((void **)&m->scores, &m->cap_scores, pair, sizeof(float));
    if (!rc) rc = grow((void **)&m->dz, &m->cap_dz, pair, sizeof(float));
    if (!rc) rc = grow((void **)&m->argmax, &m->cap_arg, arg, sizeof(int32_t));
    return rc;
}

/* sim (B·Rq, N·Rc) = Q (B·Rq, D) · Cᵀ (D, N·Rc) */
static void pairwise(const me_mmr_t *m, const float *Q, const float *C, int B, int N) {
    int rows = B * m->Rq, cols = N * m->Rc, D = m->D;
    if (m->impl == ME_MMR_BLAS) {
        me_ops_sgemm(0, 1, rows, cols, D, 1.0f, Q, D, C, D, 0.0f, m->sim, cols);
        return;
    }
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            const float *q = Q + (size_t)r * D, *d = C + (size_t)c * D;
            float v = 0.0f;
            for (int k = 0; k < D; k++) v += q[k] * d[k];
            m->sim[(size_t)r * cols + c] = v;
        }
}

int me_mmr_forward(me_mmr_t *m, float *loss, float *group_loss, float *group_acc,
                   const float *Q, const float *C, int B, int N) {
    if (!m || !loss || !Q || !C || B < 1 || N < B) return ME_EINVAL;
    m->B = 0;
    int rc = reserve(m, B, N);
    if (rc) return rc;
    pairwise(m, Q, C, B, N);

    int Rq = m->Rq, Rc = m->Rc;
    size_t cols = (size_t)N * Rc;
    double total = 0.0;
    int32_t *arg = m->argmax;
    for (int g = 0; g < m->ngroups; g++) {
        int rq = m->groups[g].rq, rcg = m->groups[g].rc;
        float *sc = m->scores + (size_t)g * B * N;
        float *dz = m->dz + (size_t)g * B * N;
        for (int i = 0; i < B; i++)
            for (int j = 0; j < N; j++) {
                float s = 0.0f;
                for (int a = 0; a < rq; a++) {
                    const float *row = m->sim + ((size_t)i * Rq + a) * cols + (size_t)j * Rc;
                    float best = row[0];
                    int32_t bi = 0;
                    for (int b = 1; b < rcg; b++)
                        if (row[b] > best) { best = row[b]; bi = b; }
                    s += best;
                    arg[((size_t)i * N + j) * rq + a] = bi;
                }
                sc[(size_t)i * N + j] = s;
            }
        arg += (size_t)B * N * rq;

        /* log-softmax over the N candidates of each query, in double,
         * shifted by the row max. The max's own term is kept out of the
         * sum (log1p) and p_ii - 1 comes from expm1, so a confident query
         * keeps its small loss and gradient instead of rounding them to 0. */
        double lsum = 0.0;
        int correct = 0;
        double inv_tau = group_inv_tau(m, g);
        for (int i = 0; i < B; i++) {
            const float *srow = sc + (size_t)i * N;
            int jbest = 0;
            for (int j = 1; j < N; j++)
                if (srow[j] > srow[jbest]) jbest = j;
            double zmax = srow[jbest] * inv_tau, others = 0.0;
            for (int j = 0; j < N; j++)
                if (j != jbest) others += exp(srow[j] * inv_tau - zmax);
            double l1p = log1p(others);
            for (int j = 0; j < N; j++) {
                double lp = (srow[j] * inv_tau - zmax) - l1p; /* log p_ij */
                dz[(size_t)i * N + j] = (float)(j == i ? expm1(lp) : exp(lp));
                if (j == i) lsum -= lp;
            }
            correct += jbest == i;
        }
        double gl = lsum / B;
        if (group_loss) group_loss[g] = (float)gl;
        if (group_acc) group_acc[g] = (float)correct / (float)B;
        total += m->groups[g].weight * gl;
    }
    *loss = (float)total;
    m->B = B;
    m->N = N;
    return 0;
}

int me_mmr_backward(me_mmr_t *m, float *dQ, float *dC, const float *Q, const float *C,
                    float dloss) {
    if (!m || !m->B || !dQ || !dC || !Q || !C) return ME_EINVAL;
    int B = m->B, N = m->N, Rq = m->Rq, Rc = m->Rc, D = m->D;
    int rows = B * Rq, cols = N * Rc;
    /* The products are not needed any more (argmax and dz are kept), so
     * their buffer holds dS; the backward may run again. */
    float *dS = m->sim;
    memset(dS, 0, (size_t)rows * cols * sizeof *dS);

    /* d loss / d s_g(i,j) = w_g / (B τ_g) · (p_ij - [i == j]), routed to the
     * argmax of each of the rq maxima. */
    const int32_t *arg = m->argmax;
    for (int g = 0; g < m->ngroups; g++) {
        int rq = m->groups[g].rq;
        const float *dz = m->dz + (size_t)g * B * N;
        float coef = (float)(dloss * m->groups[g].weight * group_inv_tau(m, g) / B);
        for (int i = 0; i < B; i++)
            for (int j = 0; j < N; j++) {
                float d = coef * dz[(size_t)i * N + j];
                const int32_t *aij = arg + ((size_t)i * N + j) * rq;
                for (int a = 0; a < rq; a++)
                    dS[((size_t)i * Rq + a) * cols + (size_t)j * Rc + aij[a]] += d;
            }
        arg += (size_t)B * N * rq;
    }

    if (m->impl == ME_MMR_BLAS) {
        /* dQ (B·Rq, D) += dS (B·Rq, N·Rc) · C (N·Rc, D) */
        me_ops_sgemm(0, 0, rows, D, cols, 1.0f, dS, cols, C, D, 1.0f, dQ, D);
        /* dC (N·Rc, D) += dSᵀ (N·Rc, B·Rq) · Q (B·Rq, D) */
        me_ops_sgemm(1, 0, cols, D, rows, 1.0f, dS, cols, Q, D, 1.0f, dC, D);
    } else {
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) {
                float d = dS[(size_t)r * cols + c];
                if (d == 0.0f) continue;
                for (int k = 0; k < D; k++) {
                    dQ[(size_t)r * D + k] += d * C[(size_t)c * D + k];
                    dC[(size_t)c * D + k] += d * Q[(size_t)r * D + k];
                }
            }
    }
    return 0;
}

const float *me_mmr_scores(const me_mmr_t *m, int g) {
    if (!m || !m->B || g < 0 || g >= m->ngroups) return NULL;
    return m->scores + (size_t)g * m->B * m->N;
}
