/* MaxSim scoring: a naive reference, runtime-dispatched SIMD kernels
 * (common/maxsim_simd.inc, instantiated below for AVX2 and AVX-512) and an
 * OpenBLAS sgemm path. See maxsim.h for the definition of the score.
 *
 * Determinism: NAIVE and FUSED reduce in an order fixed by the shape alone
 * (r_q, the doc's min(r_c, rows), dim, dtype, CPU), never by a document's
 * position in the batch, so a doc scores bit-identically in a full scan and
 * in a rerank of a few survivors. BLAS is deterministic for a given batch
 * (sgemm always gets the same N for a given r_c, short batches padded with
 * zeros) but not across batches: see me_maxsim_pick. */
#include "common/maxsim.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#define ME_MAXSIM_X86 1
#endif

/* Query rows and lanes are padded to this, the widest vector (16 floats):
 * every kernel can then load whole vectors from the prepared copies. */
#define PAD 16
/* BLAS: columns (docs × r_c) per sgemm call; fixed per r_c so that a batch
 * rescored gives the same bits. */
#define BLAS_COLS 256

struct me_mquery {
    int rows, dim;
    int dimp;        /* dim rounded up to PAD */
    int ldq;         /* rows rounded up to PAD */
    float *q;        /* (rows, dimp) the query, rows zero-padded */
    float *qt;       /* (dim, ldq) transposed, lanes past rows zero */
    float *qsum;     /* (dimp) Σ_a q_a, for docs scored on one row */
    float *mx;       /* (ldq) running max per query vector */
    float *rowbuf;   /* (LANE_BMAX, dim) one block of doc rows as f32 */
    float *gather;   /* (cap_gather) BLAS: a batch of doc rows as f32 */
    float *cout;     /* (cap_cout) BLAS: sgemm output */
    size_t cap_gather, cap_cout;
};

static void *alloc_floats(size_t n) {
    void *p = NULL;
    if (n == 0) n = 1;
    if (posix_memalign(&p, 64, n * sizeof(float)) != 0) return NULL;
    return p;
}

static size_t round_up(size_t x, size_t m) { return (x + m - 1) / m * m; }

/* ---- SIMD dispatch --------------------------------------------------------- */

#define LANE_BMAX 12  /* most candidates a lane kernel takes at once */
#define DOT_B 4       /* candidates per dot-form block */
#define DOT_MAX_RQ 3  /* dot form up to this r_q; lanes would be mostly padding */

typedef void lane_fn(float *mx, const float *qt, int ldq, const float *d, int dim);
typedef void dot_fn(float *best, const float *q, int qs, const me_docref_t *doc, int j0,
                    int nb, int dim);
typedef float dot1_fn(const float *qsum, const me_docref_t *doc, int dim);
typedef void dot1_run_fn(const float *qsum, const void *rows, const float *scales, size_t stride, const uint32_t *idx,
                         size_t n, int dim,
                         float *out);
typedef void conv_fn(float *dst, const me_docref_t *doc, me_dtype_t dt, int j0, int nb,
                     int dim);

typedef struct {
    const char *name;
    int lanes;              /* floats per vector */
    int lane_b1, lane_b2;   /* candidate block for one / two query vectors */
    lane_fn *const *lane1;  /* [1..lane_b1] */
    lane_fn *const *lane2;  /* [1..lane_b2] */
    conv_fn *conv_rows;
    dot_fn *const (*dot)[DOT_MAX_RQ + 1];
    dot1_fn *dot1[4];       /* [dtype] */
    dot1_run_fn *dot1_run[4];  /* [dtype]: dot1 over consecutive one-row documents */
} simd_ops_t;

enum { SIMD_SCALAR = 0, SIMD_AVX2 = 1, SIMD_AVX512 = 2 };

#ifdef ME_MAXSIM_X86
#define ME_STR_(x) #x
#define ME_STR(x) ME_STR_(x)

/* AVX2 + FMA + F16C, 8 lanes. */
__attribute__((target("avx2,fma,f16c")))
static inline float hsum_avx2(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

#define ME_SFX avx2
#define ME_TGT __attribute__((target("avx2,fma,f16c")))
#define VF __m256
#define VL 8
#define V_ZERO() _mm256_setzero_ps()
#define V_LOAD(p) _mm256_loadu_ps(p)
#define V_STORE(p, v) _mm256_storeu_ps(p, v)
#define V_BCAST(p) _mm256_broadcast_ss(p)
#define V_SET1(x) _mm256_set1_ps(x)
#define V_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define V_MUL(a, b) _mm256_mul_ps(a, b)
#define V_ADD(a, b) _mm256_add_ps(a, b)
#define V_MAX(a, b) _mm256_max_ps(a, b)
#define V_LD_F16(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
#define V_LD_I8(p) \
    _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(p))))
#define V_HSUM(v) hsum_avx2(v)
#define LANE_B1 12
#define LANE_B2 6
#include "common/maxsim_simd.inc"

/* AVX-512F, 16 lanes. Zen 4 runs it double-pumped, so it is not assumed
 * faster: see default_level(). */
__attribute__((target("avx512f,avx2,fma,f16c")))
static inline float hsum_avx512(__m512 v) {
    __m256 lo = _mm512_castps512_ps256(v);
    __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
    return hsum_avx2(_mm256_add_ps(lo, hi));
}

#define ME_SFX avx512
#define ME_TGT __attribute__((target("avx512f,avx2,fma,f16c")))
#define VF __m512
#define VL 16
#define V_ZERO() _mm512_setzero_ps()
#define V_LOAD(p) _mm512_loadu_ps(p)
#define V_STORE(p, v) _mm512_storeu_ps(p, v)
#define V_BCAST(p) _mm512_set1_ps(*(p))
#define V_SET1(x) _mm512_set1_ps(x)
#define V_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define V_MUL(a, b) _mm512_mul_ps(a, b)
#define V_ADD(a, b) _mm512_add_ps(a, b)
#define V_MAX(a, b) _mm512_max_ps(a, b)
#define V_LD_F16(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p)))
#define V_LD_I8(p) \
    _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p))))
#define V_HSUM(v) hsum_avx512(v)
#define LANE_B1 12
#define LANE_B2 12
#include "common/maxsim_simd.inc"

static int detect_level(void) {
    /* F16C from CPUID (leaf 1, ECX) since not every compiler's
     * __builtin_cpu_supports knows it; AVX2 implies OS support for YMM. */
    unsigned a, b, c, d;
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma") ||
        !__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_F16C))
        return SIMD_SCALAR;
    if (__builtin_cpu_supports("avx512f")) return SIMD_AVX512;
    return SIMD_AVX2;
}
#else
static int detect_level(void) { return SIMD_SCALAR; }
#endif

/* The CPU's best level, and the level in use (lowered only by the test
 * hook below). Both are set once; reads are relaxed atomics. */
static pthread_once_t g_level_once = PTHREAD_ONCE_INIT;
static int g_level_cpu, g_level;

static void level_init(void) {
    g_level_cpu = detect_level();
    __atomic_store_n(&g_level, g_level_cpu, __ATOMIC_RELAXED);
}

static int simd_level(void) {
    pthread_once(&g_level_once, level_init);
    return __atomic_load_n(&g_level, __ATOMIC_RELAXED);
}

/* Tests and benches only (not in maxsim.h): run FUSED at a lower level than
 * the CPU's ("scalar", "avx2", "avx512"; NULL = the CPU's), so every kernel
 * is checked on one machine. ME_EINVAL when the CPU lacks it. Not for use
 * while other threads score. */
int me_maxsim__set_simd(const char *name);
int me_maxsim__set_simd(const char *name) {
    pthread_once(&g_level_once, level_init);
    int want = g_level_cpu;
    if (name) {
        if (strcmp(name, "scalar") == 0) want = SIMD_SCALAR;
        else if (strcmp(name, "avx2") == 0) want = SIMD_AVX2;
        else if (strcmp(name, "avx512") == 0) want = SIMD_AVX512;
        else return ME_EINVAL;
        if (want > g_level_cpu) return ME_EINVAL;
    }
    __atomic_store_n(&g_level, want, __ATOMIC_RELAXED);
    return 0;
}

const char *me_maxsim_simd_name(void) {
    switch (simd_level()) {
    case SIMD_AVX512: return "avx512";
    case SIMD_AVX2: return "avx2";
    }
    return "scalar";
}

/* ---- query ---------------------------------------------------------------- */

me_mquery_t *me_mquery_new(const float *q, int rows, int dim) {
    if (!q || rows < 1 || dim < 1) return NULL;
    me_mquery_t *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->rows = rows;
    m->dim = dim;
    m->dimp = (int)round_up((size_t)dim, PAD);
    m->ldq = (int)round_up((size_t)rows, PAD);
    m->q = alloc_floats((size_t)rows * m->dimp);
    m->qt = alloc_floats((size_t)dim * m->ldq);
    m->qsum = alloc_floats((size_t)m->dimp);
    m->mx = alloc_floats((size_t)m->ldq);
    m->rowbuf = alloc_floats((size_t)16 * dim);
    if (!m->q || !m->qt || !m->qsum || !m->mx || !m->rowbuf) goto fail;
    memset(m->q, 0, (size_t)rows * m->dimp * sizeof(float));
    memset(m->qt, 0, (size_t)dim * m->ldq * sizeof(float));
    memset(m->qsum, 0, (size_t)m->dimp * sizeof(float));
    for (int a = 0; a < rows; a++)
        for (int k = 0; k < dim; k++) {
            float x = q[(size_t)a * dim + k];
            m->q[(size_t)a * m->dimp + k] = x;
            m->qt[(size_t)k * m->ldq + a] = x;
        }
    /* Summed in row order; the r_c = 1 identity rounds differently from
     * the per-row sum, within the tolerance every impl is held to. */
    for (int a = 0; a < rows; a++)
        for (int k = 0; k < dim; k++) m->qsum[k] += m->q[(size_t)a * m->dimp + k];
    return m;
fail:
    me_mquery_free(m);
    return NULL;
}

void me_mquery_free(me_mquery_t *q) {
    if (!q) return;
    free(q->q);
    free(q->qt);
    free(q->qsum);
    free(q->mx);
    free(q->rowbuf);
    free(q->gather);
    free(q->cout);
    free(q);
}

int me_mquery_rows(const me_mquery_t *q) { return q->rows; }
int me_mquery_dim(const me_mquery_t *q) { return q->dim; }

static int doc_rows(const me_docref_t *d, int r_c) {
    int n = d->rows < r_c ? d->rows : r_c;
    return n > 0 ? n : 0;
}

static const void *doc_row(const me_docref_t *d, me_dtype_t dt, int j, int dim) {
    return (const char *)d->data + (size_t)j * dim * me_dtype_size(dt);
}

static float doc_scale(const me_docref_t *d, me_dtype_t dt, int j) {
    return dt == ME_DTYPE_INT8 ? d->scales[j] : 1.0f;
}

/* ---- NAIVE ----------------------------------------------------------------- */

/* The reference. Rows are converted one at a time (the scratch is one row);
 * each best[a] still sees the candidates in row order. A doc with no rows
 * scores -Inf, the max over an empty set, so it ranks last. */
static float naive_one(me_mquery_t *q, me_dtype_t dt, int r_c, const me_docref_t *doc) {
    int n = doc_rows(doc, r_c), dim = q->dim;
    if (n == 0) return -INFINITY;
    float *best = q->mx, *row = q->rowbuf;
    for (int a = 0; a < q->rows; a++) best[a] = -INFINITY;
    for (int j = 0; j < n; j++) {
        me_row_to_f32(row, doc_row(doc, dt, j, dim), dt, doc_scale(doc, dt, j), (size_t)dim);
        for (int a = 0; a < q->rows; a++) {
            const float *qa = q->q + (size_t)a * q->dimp;
            float s = 0.0f;
            for (int k = 0; k < dim; k++) s += qa[k] * row[k];
            if (s > best[a]) best[a] = s;
        }
    }
    float total = 0.0f;
    for (int a = 0; a < q->rows; a++) total += best[a];
    return total;
}

/* ---- FUSED ----------------------------------------------------------------- */

#ifdef ME_MAXSIM_X86
static const simd_ops_t *simd_ops(int level) {
    return level == SIMD_AVX512 ? &ops_avx512 : &ops_avx2;
}

static float fused_one(me_mquery_t *q, const simd_ops_t *ops, me_dtype_t dt, int r_c,
                       const me_docref_t *doc) {
    int n = doc_rows(doc, r_c), dim = q->dim, rq = q->rows;
    if (n == 0) return -INFINITY;
    if (n == 1) return ops->dot1[dt](q->qsum, doc, dim);

    if (rq <= DOT_MAX_RQ) {
        float best[DOT_MAX_RQ] = { -INFINITY, -INFINITY, -INFINITY };
        dot_fn *f = ops->dot[dt][rq];
        for (int j0 = 0; j0 < n; j0 += DOT_B)
            f(best, q->q, q->dimp, doc, j0, n - j0 < DOT_B ? n - j0 : DOT_B, dim);
        float total = 0.0f;
        for (int a = 0; a < rq; a++) total += best[a];
        return total;
    }

    float *mx = q->mx;
    for (int a = 0; a < q->ldq; a++) mx[a] = -INFINITY;
    /* One block of rows is converted (f16/int8) and then scored against
     * every group of query lanes while it is in L1. */
    const int cb = LANE_BMAX;
    for (int j0 = 0; j0 < n; j0 += cb) {
        int nbc = n - j0 < cb ? n - j0 : cb;
        const float *d;
        if (dt == ME_DTYPE_F32) {
            d = (const float *)doc->data + (size_t)j0 * dim;
        } else {
            ops->conv_rows(q->rowbuf, doc, dt, j0, nbc, dim);
            d = q->rowbuf;
        }
        for (int g0 = 0; g0 < rq;) {
            int rem = rq - g0, width, b;
            lane_fn *const *tab;
            if (rem > ops->lanes) {
                tab = ops->lane2, b = ops->lane_b2, width = 2 * ops->lanes;
            } else if (rem <= 8) {
                /* Eight lanes or fewer: 256-bit vectors waste less (AVX-512
                 * machines run the AVX2 kernels too). */
                tab = ops_avx2.lane1, b = ops_avx2.lane_b1, width = 8;
            } else {
                tab = ops->lane1, b = ops->lane_b1, width = ops->lanes;
            }
            for (int jj = 0; jj < nbc; jj += b)
                tab[nbc - jj < b ? nbc - jj : b](mx + g0, q->qt + g0, q->ldq,
                                                 d + (size_t)jj * dim, dim);
            g0 += width;
        }
    }
    float total = 0.0f;
    for (int a = 0; a < rq; a++) total += mx[a];
    return total;
}
#endif

/* ---- BLAS ------------------------------------------------------------------ */

static pthread_once_t g_blas_once = PTHREAD_ONCE_INIT;

/* The daemon scores from several worker threads; OpenBLAS's own threads on
 * top would oversubscribe the cores. */
static void blas_init(void) { openblas_set_num_threads(1); }

/* Returns ME_ENOMEM when the batch buffers cannot grow. */
static int blas_score(me_mquery_t *q, me_dtype_t dt, int r_c, const me_docref_t *docs,
                      size_t n, float *scores) {
    pthread_once(&g_blas_once, blas_init);
    int dim = q->dim, rq = q->rows;
    int nd = BLAS_COLS / r_c > 0 ? BLAS_COLS / r_c : 1;
    size_t cols = (size_t)nd * r_c;
    size_t need_g = cols * dim, need_c = (size_t)rq * cols;
    if (q->cap_gather < need_g) {
        free(q->gather);
        q->gather = alloc_floats(need_g);
        q->cap_gather = q->gather ? need_g : 0;
    }
    if (q->cap_cout < need_c) {
        free(q->cout);
        q->cout = alloc_floats(need_c);
        q->cap_cout = q->cout ? need_c : 0;
    }
    if (!q->gather || !q->cout) return ME_ENOMEM;

    for (size_t i0 = 0; i0 < n; i0 += (size_t)nd) {
        size_t m = n - i0 < (size_t)nd ? n - i0 : (size_t)nd;
        for (int t = 0; t < nd; t++) {
            int rows = (size_t)t < m ? doc_rows(&docs[i0 + t], r_c) : 0;
            float *g = q->gather + (size_t)t * r_c * dim;
            for (int j = 0; j < rows; j++)
                me_row_to_f32(g + (size_t)j * dim, doc_row(&docs[i0 + t], dt, j, dim), dt,
                              doc_scale(&docs[i0 + t], dt, j), (size_t)dim);
            /* Padding columns are computed but never read; zeros keep them
             * finite and the call's input fully defined. */
            memset(g + (size_t)rows * dim, 0, (size_t)(r_c - rows) * dim * sizeof(float));
        }
        /* cout (rq, cols) = Q (rq, dim) · Gᵀ */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rq, (int)cols, dim, 1.0f, q->q,
                    q->dimp, q->gather, dim, 0.0f, q->cout, (int)cols);
        for (size_t t = 0; t < m; t++) {
            int rows = doc_rows(&docs[i0 + t], r_c);
            if (rows == 0) { scores[i0 + t] = -INFINITY; continue; }
            float total = 0.0f;
            for (int a = 0; a < rq; a++) {
                const float *c = q->cout + (size_t)a * cols + t * (size_t)r_c;
                float best = -INFINITY;
                for (int j = 0; j < rows; j++)
                    if (c[j] > best) best = c[j];
                total += best;
            }
            scores[i0 + t] = total;
        }
    }
    return 0;
}

/* ---- entry points ---------------------------------------------------------- */

void me_maxsim_score(me_mquery_t *q, me_dtype_t dtype, int r_c, const me_docref_t *docs,
                     size_t n, float *scores, me_maxsim_impl_t impl) {
    if (n == 0) return;
    if (r_c < 1) {
        for (size_t i = 0; i < n; i++) scores[i] = -INFINITY;
        return;
    }
    if (impl == ME_MAXSIM_AUTO) impl = me_maxsim_pick(q->rows, r_c, q->dim, dtype);
    if (impl == ME_MAXSIM_BLAS) {
        if (blas_score(q, dtype, r_c, docs, n, scores) == 0) return;
        impl = ME_MAXSIM_NAIVE;  /* out of memory: the scratch-free path */
    }
#ifdef ME_MAXSIM_X86
    int level = simd_level();
    if (impl == ME_MAXSIM_FUSED && level != SIMD_SCALAR) {
        const simd_ops_t *ops = simd_ops(level);
        /* Documents are scattered in RAM (survivors of an earlier stage):
         * the next one's rows are fetched while this one is scored, up to
         * 4 KiB of them (the start of a long document; the hardware
         * prefetcher follows from there). */
        size_t row = (size_t)q->dim * me_dtype_size(dtype);
        for (size_t i = 0; i < n; i++) {
            if (i + 1 < n) {
                int rows = docs[i + 1].rows < r_c ? docs[i + 1].rows : r_c;
                size_t bytes = (size_t)rows * row;
                if (bytes > 4096) bytes = 4096;
                for (size_t b = 0; b < bytes; b += 64) __builtin_prefetch((const char *)docs[i + 1].data + b);
            }
            scores[i] = fused_one(q, ops, dtype, r_c, &docs[i]);
        }
        return;
    }
#endif
    /* NAIVE, or FUSED on a CPU without the SIMD it needs. */
    for (size_t i = 0; i < n; i++) scores[i] = naive_one(q, dtype, r_c, &docs[i]);
}

/* BLAS is never picked: OpenBLAS rounds some columns of a product
 * differently from others (on this Haswell kernel, the first 8), so a doc's
 * BLAS score depends on where it sits in the batch, and the shard needs a
 * scan and a rerank to agree bit for bit. FUSED beat it at every shape
 * measured anyway (bench_maxsim); without SIMD, NAIVE is the fallback. */
void me_maxsim_score_rows1_at(me_mquery_t *q, me_dtype_t dtype, const void *rows, const float *scales, size_t stride,
                              const uint32_t *idx, size_t n, float *scores) {
    if (n == 0) return;
    size_t es = me_dtype_size(dtype);
#ifdef ME_MAXSIM_X86
    int level = simd_level();
    if (level != SIMD_SCALAR) {
        simd_ops(level)->dot1_run[dtype](q->qsum, rows, scales, stride, idx, n, q->dim, scores);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++) {
        size_t at = idx ? idx[i] : i;
        me_docref_t d = { (const char *)rows + at * stride * es,
                          dtype == ME_DTYPE_INT8 ? scales + at * (stride / (size_t)q->dim) : NULL, 1 };
        scores[i] = naive_one(q, dtype, 1, &d);
    }
}

void me_maxsim_score_rows1(me_mquery_t *q, me_dtype_t dtype, const void *rows, const float *scales, size_t stride,
                           size_t n, float *scores) {
    me_maxsim_score_rows1_at(q, dtype, rows, scales, stride, NULL, n, scores);
}

me_maxsim_impl_t me_maxsim_pick(int r_q, int r_c, int dim, me_dtype_t dtype) {
    (void)r_q, (void)r_c, (void)dim, (void)dtype;
    return simd_level() != SIMD_SCALAR ? ME_MAXSIM_FUSED : ME_MAXSIM_NAIVE;
}

const char *me_maxsim_impl_name(me_maxsim_impl_t impl) {
    switch (impl) {
    case ME_MAXSIM_AUTO: return "auto";
    case ME_MAXSIM_NAIVE: return "naive";
    case ME_MAXSIM_FUSED: return "fused";
    case ME_MAXSIM_BLAS: return "blas";
    }
    return "?";
}

double me_maxsim_flops(int r_q, int r_c, int dim) { return 2.0 * r_q * r_c * dim; }
