/* MaxSim throughput: GFLOP/s of each implementation at a few budgets and
 * dtypes, next to OpenBLAS single-thread sgemm measured in the same run.
 * Prints figures only; never fails on time.
 *
 *   bench_maxsim [--json] [--docs N] [--reps N] [--dim D] [--help]
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/dtype.h"
#include "common/maxsim.h"
#include "tests/harness.h"

/* Internal hook in common/maxsim.c (tests and benches only). */
int me_maxsim__set_simd(const char *name);

/* A collection bigger than L3 (and capped, so NAIVE stays quick). */
#define DATA_BYTES (96u << 20)
/* The in-cache figure: a few docs scored over and over, about 512 KiB. */
#define HOT_BYTES (512u << 10)

typedef struct {
    int r_q, r_c;
} budget_t;

static const budget_t g_budgets[] = { { 1, 1 }, { 4, 8 }, { 16, 64 }, { 32, 32 }, { 64, 64 } };
static const me_dtype_t g_dtypes[] = { ME_DTYPE_F32, ME_DTYPE_F16, ME_DTYPE_INT8 };

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Median seconds of single-thread sgemm m=n=k=size. */
static double sgemm_gflops(int size, int reps) {
    openblas_set_num_threads(1);
    size_t nn = (size_t)size * size;
    float *a = me_bench_alloc(nn * sizeof(float)), *b = me_bench_alloc(nn * sizeof(float)),
          *c = me_bench_alloc(nn * sizeof(float));
    me_rng_t rng = { 7 };
    for (size_t i = 0; i < nn; i++) {
        a[i] = (float)me_rng_normal(&rng);
        b[i] = (float)me_rng_normal(&rng);
    }
    double t[16];
    if (reps > 16) reps = 16;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, size, size, size, 1.0f, a, size, b,
                size, 0.0f, c, size);  /* warm-up */
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, size, size, size, 1.0f, a, size,
                    b, size, 0.0f, c, size);
        t[r] = now_s() - t0;
    }
    free(a);
    free(b);
    free(c);
    return 2.0 * size * size * (double)size / me_percentile(t, reps, 50) * 1e-9;
}

/* A collection: ndocs docs of r_c rows each, stored in dtype. */
typedef struct {
    void *data;
    float *scales;
    me_docref_t *refs;
    size_t ndocs;
} coll_t;

static void coll_make(coll_t *c, size_t ndocs, int r_c, int dim, me_dtype_t dt, me_rng_t *rng) {
    size_t rows = ndocs * (size_t)r_c, es = me_dtype_size(dt);
    c->ndocs = ndocs;
    c->data = me_bench_alloc(rows * dim * es);
    c->scales = me_bench_alloc(rows * sizeof(float));
    c->refs = me_bench_alloc(ndocs * sizeof *c->refs);
    float *row = me_bench_alloc((size_t)dim * sizeof(float));
    for (size_t r = 0; r < rows; r++) {
        for (int k = 0; k < dim; k++) row[k] = (float)me_rng_normal(rng);
        void *dst = (char *)c->data + r * dim * es;
        c->scales[r] = 1.0f;
        if (dt == ME_DTYPE_F32) memcpy(dst, row, (size_t)dim * sizeof(float));
        else if (dt == ME_DTYPE_F16) me_f32_to_f16_n(dst, row, (size_t)dim);
        else me_int8_quantize(dst, &c->scales[r], row, (size_t)dim);
    }
    for (size_t i = 0; i < ndocs; i++) {
        c->refs[i].data = (char *)c->data + i * r_c * dim * es;
        c->refs[i].scales = c->scales + i * r_c;
        c->refs[i].rows = r_c;
    }
    free(row);
}

static void coll_free(coll_t *c) {
    free(c->data);
    free(c->scales);
    free(c->refs);
}

/* GFLOP/s, median over reps, of scoring `n` docs; each rep repeats the
 * batch until it lasts about 20 ms, so short batches are not timer noise. */
static double time_impl(me_mquery_t *q, me_dtype_t dt, int r_c, const me_docref_t *refs,
                        size_t n, int reps, me_maxsim_impl_t impl, float *scores) {
    double t[16];
    if (reps > 16) reps = 16;
    double t0 = now_s();
    me_maxsim_score(q, dt, r_c, refs, n, scores, impl);  /* warm-up: caches, TLB, scratch */
    double once = now_s() - t0;
    int inner = once > 0 ? (int)(0.02 / once) : 1000;
    if (inner < 1) inner = 1;
    if (inner > 1000) inner = 1000;
    for (int r = 0; r < reps; r++) {
        t0 = now_s();
        for (int i = 0; i < inner; i++) me_maxsim_score(q, dt, r_c, refs, n, scores, impl);
        t[r] = now_s() - t0;
    }
    double flops = me_maxsim_flops(me_mquery_rows(q), r_c, me_mquery_dim(q)) * n * inner;
    return flops / me_percentile(t, reps, 50) * 1e-9;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: bench_maxsim [--json] [--docs N] [--reps N] [--dim D]\n"
            "  Scores a collection larger than L3 (at most N docs, default 20000) at\n"
            "  budgets (r_q, r_c) and prints GFLOP/s of NAIVE, FUSED (per SIMD level\n"
            "  when the CPU has several) and BLAS, the in-cache FUSED figure, and\n"
            "  OpenBLAS single-thread sgemm (1024^3) as the peak. Median of --reps\n"
            "  repetitions (default 5). Exit status is 0 whatever the figures.\n");
}

int main(int argc, char **argv) {
    int json = 0, reps = 5, dim = 128;
    size_t max_docs = 20000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) json = 1;
        else if (strcmp(argv[i], "--docs") == 0 && i + 1 < argc) max_docs = strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--dim") == 0 && i + 1 < argc) dim = atoi(argv[++i]);
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (reps < 1) reps = 1;
    if (dim < 1) dim = 128;
    if (max_docs < 1) max_docs = 1;

    const char *cpu_simd = me_maxsim_simd_name();
    /* FUSED at each level the CPU has, best first (the default is first). */
    const char *levels[2];
    int nlevels = 0;
    if (strcmp(cpu_simd, "avx512") == 0) {
        levels[nlevels++] = "avx512";
        levels[nlevels++] = "avx2";
    } else {
        levels[nlevels++] = cpu_simd;
    }
    double peak = sgemm_gflops(1024, reps);

    if (json)
        printf("{\"simd\":\"%s\",\"dim\":%d,\"sgemm_1t_gflops\":%.2f,\"rows\":[", cpu_simd, dim,
               peak);
    else {
        printf("maxsim bench: dim %d, SIMD %s, OpenBLAS sgemm 1024^3 single-thread %.1f GFLOP/s\n",
               dim, cpu_simd, peak);
        printf("GFLOP/s, median of %d; collections out of cache unless marked; "
               "ratio = fused / sgemm\n", reps);
        printf("%-9s %-5s %6s %8s", "budget", "dtype", "docs", "naive");
        for (int l = 0; l < nlevels; l++) {
            char h[32];
            snprintf(h, sizeof h, "fused.%s", levels[l]);
            printf(" %13s", h);
        }
        printf(" %8s %9s %6s  %s\n", "blas", "fused-L2", "ratio", "auto");
    }

    me_rng_t rng = { 42 };
    int first = 1;
    for (size_t bi = 0; bi < sizeof g_budgets / sizeof g_budgets[0]; bi++) {
        budget_t bu = g_budgets[bi];
        float *qv = me_bench_alloc((size_t)bu.r_q * dim * sizeof(float));
        for (size_t i = 0; i < (size_t)bu.r_q * dim; i++) qv[i] = (float)me_rng_normal(&rng);
        me_mquery_t *q = me_mquery_new(qv, bu.r_q, dim);
        if (!q) {
            fprintf(stderr, "bench_maxsim: me_mquery_new failed\n");
            return 1;
        }
        for (size_t di = 0; di < sizeof g_dtypes / sizeof g_dtypes[0]; di++) {
            me_dtype_t dt = g_dtypes[di];
            size_t doc_bytes = (size_t)bu.r_c * dim * me_dtype_size(dt);
            size_t ndocs = DATA_BYTES / doc_bytes;
            if (ndocs > max_docs) ndocs = max_docs;
            if (ndocs < 1) ndocs = 1;
            size_t nhot = HOT_BYTES / doc_bytes;
            if (nhot < 1) nhot = 1;
            if (nhot > ndocs) nhot = ndocs;
            coll_t c;
            coll_make(&c, ndocs, bu.r_c, dim, dt, &rng);
            float *scores = me_bench_alloc(ndocs * sizeof(float));

            /* NAIVE is slow: fewer docs, same GFLOP/s definition. */
            size_t nnaive = ndocs < 2000 ? ndocs : 2000;
            double g_naive = time_impl(q, dt, bu.r_c, c.refs, nnaive, reps < 3 ? reps : 3,
                                       ME_MAXSIM_NAIVE, scores);
            double g_fused[2];
            for (int l = 0; l < nlevels; l++) {
                me_maxsim__set_simd(levels[l]);
                g_fused[l] = time_impl(q, dt, bu.r_c, c.refs, ndocs, reps, ME_MAXSIM_FUSED,
                                       scores);
            }
            me_maxsim__set_simd(NULL);
            double g_blas = time_impl(q, dt, bu.r_c, c.refs, ndocs, reps, ME_MAXSIM_BLAS,
                                      scores);
            double g_hot = time_impl(q, dt, bu.r_c, c.refs, nhot, reps, ME_MAXSIM_FUSED, scores);
            me_maxsim_impl_t pick = me_maxsim_pick(bu.r_q, bu.r_c, dim, dt);
            double ratio = g_fused[0] / peak;

            if (json) {
                printf("%s{\"r_q\":%d,\"r_c\":%d,\"dtype\":\"%s\",\"docs\":%zu,"
                       "\"naive\":%.3f,\"blas\":%.3f,\"fused_l2\":%.3f,\"ratio\":%.3f,"
                       "\"auto\":\"%s\",\"fused\":{",
                       first ? "" : ",", bu.r_q, bu.r_c, me_dtype_name(dt), ndocs, g_naive,
                       g_blas, g_hot, ratio, me_maxsim_impl_name(pick));
                for (int l = 0; l < nlevels; l++)
                    printf("%s\"%s\":%.3f", l ? "," : "", levels[l], g_fused[l]);
                printf("}}");
            } else {
                char b[32];
                snprintf(b, sizeof b, "(%d,%d)", bu.r_q, bu.r_c);
                printf("%-9s %-5s %6zu %8.2f", b, me_dtype_name(dt), ndocs, g_naive);
                for (int l = 0; l < nlevels; l++) printf(" %13.2f", g_fused[l]);
                printf(" %8.2f %9.2f %5.0f%%  %s\n", g_blas, g_hot, 100.0 * ratio,
                       me_maxsim_impl_name(pick));
            }
            first = 0;
            free(scores);
            coll_free(&c);
        }
        me_mquery_free(q);
        free(qv);
    }
    if (json) printf("]}\n");
    return 0;
}
