/* Unit tests for common/maxsim: every implementation (and FUSED at every
 * SIMD level the CPU has) against a double-precision reference and against
 * NAIVE, at odd sizes, for f32/f16/int8; determinism and batch invariance.
 *
 * Tolerance. All impls score the same stored values (f16 widened exactly,
 * int8 times its scale), so they differ from the exact score only by float
 * rounding. With u = 2^-24 and M = Σ_a max_b Σ_k |q_ak|·|d_bk|:
 *   - a dot product of dim terms, in any order: ≤ dim·u·Σ_k|q_ak d_bk|
 *     (+1 u for the int8 scale product);
 *   - the max picks one of the perturbed values, so its error is at most
 *     the largest bound among the candidates;
 *   - the sum over r_q maxima, and at r_c = 1 the query sum Σ_a q_a that
 *     FUSED folds in first: ≤ r_q·u·M each.
 * So |impl - exact| ≤ (dim + 2·r_q + 2)·u·M (first order). We allow twice
 * that. It is a worst-case bound, so the tests cannot flake, yet it is
 * ~1e-5·M at dim 128: a wrong row, lane or candidate moves a score by a
 * whole term, orders of magnitude more. */
#include <math.h>
#include <stdlib.h>

#include "common/dtype.h"
#include "common/maxsim.h"
#include "tests/harness.h"

/* Internal hook in common/maxsim.c (tests and benches only). */
int me_maxsim__set_simd(const char *name);

static const me_dtype_t k_dtypes[] = { ME_DTYPE_F32, ME_DTYPE_F16, ME_DTYPE_INT8 };

/* A batch of random documents stored in one dtype; each doc is its own
 * allocation, placed one element past an aligned start so that no kernel
 * can rely on alignment. */
typedef struct {
    me_dtype_t dt;
    int dim, n;
    me_docref_t *refs;
    void **blocks;    /* [n] allocations */
    float **scales;   /* [n] per-row scales */
    double **vals;    /* [n] (rows, dim) the stored values, exactly */
} docs_t;

static void docs_make(docs_t *d, me_dtype_t dt, int dim, int n, const int *rows, me_rng_t *rng) {
    size_t es = me_dtype_size(dt);
    d->dt = dt;
    d->dim = dim;
    d->n = n;
    d->refs = calloc((size_t)n + 1, sizeof *d->refs);
    d->blocks = calloc((size_t)n + 1, sizeof *d->blocks);
    d->scales = calloc((size_t)n + 1, sizeof *d->scales);
    d->vals = calloc((size_t)n + 1, sizeof *d->vals);
    float *row = malloc((size_t)dim * sizeof *row);
    if (!d->refs || !d->blocks || !d->scales || !d->vals || !row) abort();
    for (int i = 0; i < n; i++) {
        int r = rows[i];
        d->blocks[i] = malloc((size_t)(r ? r : 1) * dim * es + es);
        d->scales[i] = malloc((size_t)(r ? r : 1) * sizeof(float));
        d->vals[i] = malloc((size_t)(r ? r : 1) * dim * sizeof(double));
        if (!d->blocks[i] || !d->scales[i] || !d->vals[i]) abort();
        char *base = (char *)d->blocks[i] + es;
        for (int j = 0; j < r; j++) {
            for (int k = 0; k < dim; k++) row[k] = (float)me_rng_normal(rng);
            void *dst = base + (size_t)j * dim * es;
            double *v = d->vals[i] + (size_t)j * dim;
            d->scales[i][j] = 1.0f;
            if (dt == ME_DTYPE_F32) {
                memcpy(dst, row, (size_t)dim * sizeof(float));
                for (int k = 0; k < dim; k++) v[k] = row[k];
            } else if (dt == ME_DTYPE_F16) {
                me_f32_to_f16_n(dst, row, (size_t)dim);
                for (int k = 0; k < dim; k++) v[k] = me_f16_to_f32(((uint16_t *)dst)[k]);
            } else {
                me_int8_quantize(dst, &d->scales[i][j], row, (size_t)dim);
                for (int k = 0; k < dim; k++) v[k] = ((int8_t *)dst)[k] * (double)d->scales[i][j];
            }
        }
        d->refs[i].data = base;
        d->refs[i].scales = d->scales[i];
        d->refs[i].rows = r;
    }
    free(row);
}

static void docs_free(docs_t *d) {
    for (int i = 0; i < d->n; i++) {
        free(d->blocks[i]);
        free(d->scales[i]);
        free(d->vals[i]);
    }
    free(d->refs);
    free(d->blocks);
    free(d->scales);
    free(d->vals);
}

/* Exact score (double) of doc i, and the tolerance derived above. */
static double ref_score(const float *q, int r_q, int r_c, const docs_t *d, int i, double *tol) {
    int n = d->refs[i].rows < r_c ? d->refs[i].rows : r_c;
    if (n <= 0) { *tol = 0; return -INFINITY; }
    double total = 0, mag = 0;
    for (int a = 0; a < r_q; a++) {
        double best = -INFINITY, bestmag = 0;
        for (int j = 0; j < n; j++) {
            double s = 0, m = 0;
            for (int k = 0; k < d->dim; k++) {
                double p = (double)q[(size_t)a * d->dim + k] * d->vals[i][(size_t)j * d->dim + k];
                s += p;
                m += fabs(p);
            }
            if (s > best) best = s;
            if (m > bestmag) bestmag = m;
        }
        total += best;
        mag += bestmag;
    }
    *tol = 2.0 * (d->dim + 2.0 * r_q + 2.0) * ldexp(1.0, -24) * mag;
    return total;
}

static float *rand_query(int r_q, int dim, me_rng_t *rng) {
    float *q = malloc((size_t)r_q * dim * sizeof *q);
    if (!q) abort();
    for (int i = 0; i < r_q * dim; i++) q[i] = (float)me_rng_normal(rng);
    return q;
}

/* The FUSED variants this CPU can run, and the other impls, as one list. */
typedef struct {
    me_maxsim_impl_t impl;
    const char *simd;  /* FUSED only: the level forced; NULL = default */
    const char *label;
} variant_t;

static int variants(variant_t *v) {
    int n = 0;
    v[n++] = (variant_t){ ME_MAXSIM_NAIVE, NULL, "naive" };
    v[n++] = (variant_t){ ME_MAXSIM_BLAS, NULL, "blas" };
    v[n++] = (variant_t){ ME_MAXSIM_AUTO, NULL, "auto" };
    v[n++] = (variant_t){ ME_MAXSIM_FUSED, NULL, "fused" };
    static const char *levels[] = { "scalar", "avx2", "avx512" };
    for (int l = 0; l < 3; l++)
        if (me_maxsim__set_simd(levels[l]) == 0)
            v[n++] = (variant_t){ ME_MAXSIM_FUSED, levels[l], levels[l] };
    me_maxsim__set_simd(NULL);
    return n;
}

static void score_with(const variant_t *v, me_mquery_t *q, me_dtype_t dt, int r_c,
                       const me_docref_t *refs, size_t n, float *out) {
    if (v->simd) me_maxsim__set_simd(v->simd);
    me_maxsim_score(q, dt, r_c, refs, n, out, v->impl);
    if (v->simd) me_maxsim__set_simd(NULL);
}

/* Checks one shape: every variant within tol of the exact score, within
 * 2·tol of NAIVE, and bit-identical when run twice. */
static void check_shape(me_dtype_t dt, int dim, int r_q, int r_c, me_rng_t *rng) {
    enum { NDOCS = 6 };
    int rows[NDOCS];
    for (int i = 0; i < NDOCS; i++) {
        /* Some docs shorter than r_c, some longer (rows past r_c ignored). */
        rows[i] = 1 + (int)(me_rng_next(rng) % (uint64_t)(r_c + 2));
    }
    rows[0] = r_c;
    docs_t d;
    docs_make(&d, dt, dim, NDOCS, rows, rng);
    float *qv = rand_query(r_q, dim, rng);
    me_mquery_t *q = me_mquery_new(qv, r_q, dim);
    ASSERT_TRUE(q != NULL);
    double ref[NDOCS], tol[NDOCS];
    for (int i = 0; i < NDOCS; i++) ref[i] = ref_score(qv, r_q, r_c, &d, i, &tol[i]);
    float naive[NDOCS], got[NDOCS], again[NDOCS];
    me_maxsim_score(q, dt, r_c, d.refs, NDOCS, naive, ME_MAXSIM_NAIVE);
    variant_t v[8];
    int nv = variants(v);
    for (int t = 0; t < nv; t++) {
        score_with(&v[t], q, dt, r_c, d.refs, NDOCS, got);
        score_with(&v[t], q, dt, r_c, d.refs, NDOCS, again);
        for (int i = 0; i < NDOCS; i++) {
            if (fabs(got[i] - ref[i]) > tol[i] || fabs(got[i] - naive[i]) > 2 * tol[i] ||
                memcmp(&got[i], &again[i], sizeof(float)) != 0) {
                me_test_fail(__FILE__, __LINE__,
                             "%s %s dim %d r_q %d r_c %d doc %d (rows %d): got %.9g again %.9g "
                             "naive %.9g exact %.9g tol %.3g",
                             v[t].label, me_dtype_name(dt), dim, r_q, r_c, i, rows[i],
                             (double)got[i], (double)again[i], (double)naive[i], ref[i], tol[i]);
            }
        }
    }
    me_mquery_free(q);
    free(qv);
    docs_free(&d);
}

/* check_shape over every dtype × dim × r_q × r_c (each list ended by 0),
 * in that order, from one rng seeded with `seed`. */
static void check_grid(const int *dims, const int *rqs, const int *rcs, uint64_t seed) {
    me_rng_t rng = { seed };
    for (size_t di = 0; di < 3; di++)
        for (const int *dim = dims; *dim; dim++)
            for (const int *r_q = rqs; *r_q; r_q++)
                for (const int *r_c = rcs; *r_c; r_c++) check_shape(k_dtypes[di], *dim, *r_q, *r_c, &rng);
}

TEST(maxsim_impls_match_reference_small) {
    check_grid((const int[]){ 1, 3, 8, 17, 100, 130, 0 }, (const int[]){ 1, 2, 3, 4, 5, 8, 9, 16, 0 },
               (const int[]){ 1, 2, 7, 64, 0 }, 1);
}

/* Query counts that need two vectors of lanes, several groups, or a last
 * group narrower than the rest. */
TEST(maxsim_impls_match_reference_wide) {
    check_grid((const int[]){ 7, 33, 128, 0 }, (const int[]){ 17, 24, 31, 33, 40, 64, 0 },
               (const int[]){ 1, 5, 13, 64, 0 }, 2);
}

/* r_c = 1 takes FUSED's <Σ_a q_a, d_0> shortcut. */
TEST(maxsim_fused_rc1_matches_naive) {
    me_rng_t rng = { 3 };
    for (int r_q = 1; r_q <= 16; r_q++)
        for (size_t di = 0; di < 3; di++) check_shape(k_dtypes[di], 37 + r_q, r_q, 1, &rng);
}

/* A doc must score the same, bit for bit, alone or anywhere in a batch: the
 * shard's exact scan and its rerank see different batches. BLAS is exempt
 * (OpenBLAS rounds by column position), which is why AUTO never picks it. */
TEST(maxsim_batch_invariant) {
    enum { NDOCS = 300 };
    me_rng_t rng = { 4 };
    static const int shapes[][3] = { { 1, 1, 128 }, { 4, 8, 100 }, { 16, 64, 128 }, { 3, 5, 17 } };
    int rows[NDOCS];
    variant_t v[8];
    int nv = variants(v);
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        int r_q = shapes[s][0], r_c = shapes[s][1], dim = shapes[s][2];
        for (size_t di = 0; di < 3; di++) {
            for (int i = 0; i < NDOCS; i++) rows[i] = 1 + (int)(me_rng_next(&rng) % (uint64_t)r_c);
            docs_t d;
            docs_make(&d, k_dtypes[di], dim, NDOCS, rows, &rng);
            float *qv = rand_query(r_q, dim, &rng);
            me_mquery_t *q = me_mquery_new(qv, r_q, dim);
            ASSERT_TRUE(q != NULL);
            float *all = malloc(NDOCS * sizeof *all);
            ASSERT_TRUE(all != NULL);
            for (int t = 0; t < nv; t++) {
                if (v[t].impl == ME_MAXSIM_BLAS) continue;
                score_with(&v[t], q, k_dtypes[di], r_c, d.refs, NDOCS, all);
                for (int i = 0; i < NDOCS; i += 7) {
                    float one, tail[3];
                    score_with(&v[t], q, k_dtypes[di], r_c, &d.refs[i], 1, &one);
                    size_t m = NDOCS - (size_t)i < 3 ? NDOCS - (size_t)i : 3;
                    score_with(&v[t], q, k_dtypes[di], r_c, &d.refs[i], m, tail);
                    if (memcmp(&one, &all[i], sizeof one) || memcmp(&tail[0], &all[i], sizeof one))
                        me_test_fail(__FILE__, __LINE__,
                                     "%s %s (%d,%d) doc %d: batch %.9g alone %.9g",
                                     v[t].label, me_dtype_name(k_dtypes[di]), r_q, r_c, i,
                                     (double)all[i], (double)one);
                }
            }
            free(all);
            me_mquery_free(q);
            free(qv);
            docs_free(&d);
        }
    }
}

/* Larger magnitudes and a long dim, at the shape the shard uses most. */
TEST(maxsim_impls_match_reference_long_dim) {
    me_rng_t rng = { 6 };
    for (size_t di = 0; di < 3; di++) {
        check_shape(k_dtypes[di], 1000, 3, 5, &rng);
        check_shape(k_dtypes[di], 1001, 16, 9, &rng);
        check_shape(k_dtypes[di], 128, 16, 64, &rng);
    }
}

TEST(maxsim_empty_inputs) {
    float qv[6] = { 1, 2, 3, 4, 5, 6 };
    me_mquery_t *q = me_mquery_new(qv, 2, 3);
    ASSERT_TRUE(q != NULL);
    ASSERT_EQ(me_mquery_rows(q), 2);
    ASSERT_EQ(me_mquery_dim(q), 3);
    float doc[3] = { 1, 0, 0 };
    me_docref_t refs[2] = { { doc, NULL, 0 }, { doc, NULL, 1 } };
    variant_t v[8];
    int nv = variants(v);
    for (int t = 0; t < nv; t++) {
        float s[2] = { 42.0f, 42.0f };
        score_with(&v[t], q, ME_DTYPE_F32, 4, refs, 0, s);  /* n = 0 writes nothing */
        ASSERT_TRUE(s[0] == 42.0f);
        score_with(&v[t], q, ME_DTYPE_F32, 4, refs, 2, s);
        ASSERT_TRUE(isinf(s[0]) && s[0] < 0);  /* no rows: max over nothing */
        ASSERT_NEAR(s[1], 5.0, 0);              /* 1·1 + 4·1 */
    }
    me_mquery_free(q);
    me_mquery_free(NULL);
    ASSERT_TRUE(me_mquery_new(NULL, 1, 1) == NULL);
    ASSERT_TRUE(me_mquery_new(qv, 0, 3) == NULL);
    ASSERT_TRUE(me_mquery_new(qv, 2, 0) == NULL);
}

TEST(maxsim_pick_and_names) {
    static const int shapes[][3] = { { 1, 1, 128 }, { 4, 8, 128 }, { 16, 64, 128 }, { 64, 64, 3 } };
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (size_t di = 0; di < 3; di++) {
            me_maxsim_impl_t p = me_maxsim_pick(shapes[s][0], shapes[s][1], shapes[s][2], k_dtypes[di]);
            /* Never BLAS: its scores depend on batch position (see above). */
            ASSERT_TRUE(p == ME_MAXSIM_NAIVE || p == ME_MAXSIM_FUSED);
            ASSERT_EQ(p, me_maxsim_pick(shapes[s][0], shapes[s][1], shapes[s][2], k_dtypes[di]));
        }
    ASSERT_STREQ(me_maxsim_impl_name(ME_MAXSIM_AUTO), "auto");
    ASSERT_STREQ(me_maxsim_impl_name(ME_MAXSIM_NAIVE), "naive");
    ASSERT_STREQ(me_maxsim_impl_name(ME_MAXSIM_FUSED), "fused");
    ASSERT_STREQ(me_maxsim_impl_name(ME_MAXSIM_BLAS), "blas");
    const char *simd = me_maxsim_simd_name();
    ASSERT_TRUE(!strcmp(simd, "avx512") || !strcmp(simd, "avx2") || !strcmp(simd, "scalar"));
    ASSERT_NEAR(me_maxsim_flops(16, 64, 128), 262144.0, 0);
    ASSERT_TRUE(me_maxsim__set_simd("sse9") != 0);
}

/* The stage-1 scan's entry point (me_maxsim_score_rows1): documents laid
 * out densely, 2 rows apart as in a coarse copy of coarse_vectors = 2,
 * score bit for bit what me_maxsim_score gives them at r_c = 1, at every
 * SIMD level, for every dtype, at odd dims and counts (tails of the
 * unrolled loop). */
TEST(maxsim_rows1_scan_matches_score_bit_for_bit) {
    me_rng_t rng = { 11 };
    static const char *levels[] = { NULL, "scalar", "avx2", "avx512" };
    static const int dims[] = { 7, 128, 131 };
    for (size_t di = 0; di < 3; di++)
        for (size_t ds = 0; ds < 3; ds++) {
            me_dtype_t dt = k_dtypes[di];
            int dim = dims[ds], per = 2;
            size_t n = 103, es = me_dtype_size(dt), stride = (size_t)per * dim;
            uint8_t *rows = malloc(n * stride * es);
            float *scales = malloc(n * per * sizeof *scales), *row = malloc((size_t)dim * sizeof *row);
            me_docref_t *refs = malloc(n * sizeof *refs);
            ASSERT_TRUE(rows && scales && row && refs);
            for (size_t i = 0; i < n * per; i++) {
                me_rng_unit_rows(&rng, row, 1, dim);
                if (dt == ME_DTYPE_F32) memcpy(rows + i * dim * es, row, (size_t)dim * es);
                else if (dt == ME_DTYPE_F16) me_f32_to_f16_n((uint16_t *)(void *)(rows + i * dim * es), row, (size_t)dim);
                else me_int8_quantize((int8_t *)(rows + i * dim * es), &scales[i], row, (size_t)dim);
            }
            for (size_t i = 0; i < n; i++)
                refs[i] = (me_docref_t){ rows + i * stride * es, dt == ME_DTYPE_INT8 ? scales + i * per : NULL, per };
            for (int r_q = 1; r_q <= 16; r_q += 5) {
                float *qv = rand_query(r_q, dim, &rng);
                me_mquery_t *q = me_mquery_new(qv, r_q, dim);
                ASSERT_TRUE(q != NULL);
                float a[103], b[103];
                for (size_t l = 0; l < 4; l++) {
                    if (levels[l] && me_maxsim__set_simd(levels[l]) != 0) continue;
                    me_maxsim_score(q, dt, 1, refs, n, a, ME_MAXSIM_AUTO);
                    me_maxsim_score_rows1(q, dt, rows, dt == ME_DTYPE_INT8 ? scales : NULL, stride, n, b);
                    /* The gathered form over a scattered subset, backwards. */
                    uint32_t idx[52];
                    float g[52];
                    for (size_t i = 0; i < 52; i++) idx[i] = (uint32_t)(n - 1 - 2 * i);
                    me_maxsim_score_rows1_at(q, dt, rows, dt == ME_DTYPE_INT8 ? scales : NULL, stride, idx, 52, g);
                    me_maxsim__set_simd(NULL);
                    for (size_t i = 0; i < n; i++)
                        if (memcmp(&a[i], &b[i], sizeof a[i]) != 0)
                            me_test_fail(__FILE__, __LINE__, "%s %s dim %d r_q %d doc %zu: %.9g vs %.9g",
                                         levels[l] ? levels[l] : "auto", me_dtype_name(dt), dim, r_q, i, (double)a[i],
                                         (double)b[i]);
                    for (size_t i = 0; i < 52; i++)
                        if (memcmp(&a[idx[i]], &g[i], sizeof g[i]) != 0)
                            me_test_fail(__FILE__, __LINE__, "gathered %s %s dim %d r_q %d doc %u: %.9g vs %.9g",
                                         levels[l] ? levels[l] : "auto", me_dtype_name(dt), dim, r_q, idx[i],
                                         (double)a[idx[i]], (double)g[i]);
                }
                me_mquery_free(q);
                free(qv);
            }
            free(rows);
            free(scales);
            free(row);
            free(refs);
        }
}
