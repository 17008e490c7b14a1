/* The shard's flat coarse scan ("stage 1": every document's first vector
 * against the query's first, top n kept) next to FAISS's flat indexes and
 * this machine's single-thread read bandwidth, measured in the same run.
 * One thread, one query at a time. Prints figures only; never fails on time.
 *
 *   bench_flat [--docs N] [--dim D] [--queries Q] [--k K] [--bw-mib M] [--json] [--help]
 *
 * Ours is the real code path: a shard collection (shard/collection.h) built
 * with me_coll_put, so its dense coarse copy c->coarse is laid out as in the
 * daemon, searched with me_search_run at budget (1, 1), which is the case
 * dense_run serves with one score_into pass over c->coarse, the loop the
 * coarse stage runs (same chunking, me_maxsim_score AUTO, me_topk_push_n,
 * ties by id). FAISS runs in tests/bench/faiss_flat.py on .npy copies of the
 * same f32 vectors and queries, when python3-faiss is installed. */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define BENCH_X86 1
#endif

#include "common/dtype.h"
#include "common/json.h"
#include "common/maxsim.h"
#include "common/npy.h"
#include "shard/collection.h"
#include "shard/search.h"
#include "tests/harness.h"

/* Passes over the bandwidth buffer; the median is reported. */
#define BW_PASSES 7
/* Documents generated and inserted per block (bounds the f32 scratch). */
#define GEN_BLOCK 4096

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- read bandwidth ---- */

/* Sums of 64-bit lanes with four independent accumulators, so the adds never
 * wait on each other and only the loads (memory) set the pace. n is a
 * multiple of 256 bytes. */
#ifdef BENCH_X86
__attribute__((target("avx512f"))) static uint64_t sum_avx512(const void *buf, size_t n) {
    const __m512i *p = buf;
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i < n / 64; i += 4) {
        a0 = _mm512_add_epi64(a0, _mm512_load_si512(p + i));
        a1 = _mm512_add_epi64(a1, _mm512_load_si512(p + i + 1));
        a2 = _mm512_add_epi64(a2, _mm512_load_si512(p + i + 2));
        a3 = _mm512_add_epi64(a3, _mm512_load_si512(p + i + 3));
    }
    return (uint64_t)_mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3)));
}

__attribute__((target("avx2"))) static uint64_t sum_avx2(const void *buf, size_t n) {
    const __m256i *p = buf;
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i < n / 32; i += 4) {
        a0 = _mm256_add_epi64(a0, _mm256_load_si256(p + i));
        a1 = _mm256_add_epi64(a1, _mm256_load_si256(p + i + 1));
        a2 = _mm256_add_epi64(a2, _mm256_load_si256(p + i + 2));
        a3 = _mm256_add_epi64(a3, _mm256_load_si256(p + i + 3));
    }
    __m256i s = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
    uint64_t l[4];
    _mm256_storeu_si256((__m256i *)l, s);
    return l[0] + l[1] + l[2] + l[3];
}
#endif

static uint64_t sum_scalar(const void *buf, size_t n) {
    const uint64_t *p = buf;
    uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (size_t i = 0; i < n / 8; i += 4) {
        a0 += p[i];
        a1 += p[i + 1];
        a2 += p[i + 2];
        a3 += p[i + 3];
    }
    return a0 + a1 + a2 + a3;
}

/* Where the sums go, so the loads are not dead code. */
static volatile uint64_t g_sink;

/* Median GB/s of summing `bytes` (rounded down to 256) at `simd`, the level
 * the maxsim kernels run at, so both sides use the same vector width. Keep
 * bytes well above L3. */
static double read_bandwidth(size_t bytes, const char *simd) {
    bytes &= ~(size_t)255;
    void *buf = NULL;
    if (posix_memalign(&buf, 64, bytes) != 0) {
        fprintf(stderr, "bench_flat: out of memory (%zu bytes)\n", bytes);
        exit(1);
    }
    memset(buf, 1, bytes);  /* every page faulted in before timing */
    uint64_t (*sum)(const void *, size_t) = sum_scalar;
#ifdef BENCH_X86
    if (strcmp(simd, "avx512") == 0) sum = sum_avx512;
    else if (strcmp(simd, "avx2") == 0) sum = sum_avx2;
#else
    (void)simd;
#endif
    double t[BW_PASSES];
    g_sink += sum(buf, bytes);  /* warm-up: TLB */
    for (int r = 0; r < BW_PASSES; r++) {
        double t0 = now_s();
        g_sink += sum(buf, bytes);
        t[r] = now_s() - t0;
    }
    free(buf);
    return (double)bytes / me_percentile(t, BW_PASSES, 50) * 1e-9;
}

/* ---- the collections and our scan ---- */

static me_coll_t *coll_new(me_dtype_t dt, int dim) {
    me_coll_config_t cfg = { 0 };
    snprintf(cfg.name, sizeof cfg.name, "flat_%s", me_dtype_name(dt));
    cfg.dim = dim;
    cfg.max_doc_vectors = 1;
    cfg.max_query_vectors = 1;
    cfg.dtype = dt;
    /* One vector per doc: the head arena holds the same rows as the coarse
     * copy instead of R_c of them, which the coarse scan never reads. */
    cfg.ram_vectors = 1;
    cfg.coarse_vectors = 1;
    char err[256];
    if (me_coll_config_check(&cfg, err, sizeof err) != 0) {
        fprintf(stderr, "bench_flat: collection config: %s\n", err);
        exit(1);
    }
    me_coll_t *c = me_coll_new(&cfg, 1);
    if (!c) {
        fprintf(stderr, "bench_flat: me_coll_new failed\n");
        exit(1);
    }
    return c;
}

static void coll_put(me_coll_t *c, size_t i, const void *row) {
    char id[24];
    int len = snprintf(id, sizeof id, "d%08zu", i);  /* ids sort as slots do */
    if (me_coll_put(c, id, (size_t)len, 1, row, NULL) < 0) {
        fprintf(stderr, "bench_flat: me_coll_put failed at doc %zu\n", i);
        exit(1);
    }
}

typedef struct {
    double med_ms, gbs, frac;
    double stage_ms;  /* the stage's own timer (me_stage_t.micros), median */
} figure_t;

/* Times the coarse scan of each query; ids[qi * k ..] gets its top k slots. */
static figure_t time_ours(me_coll_t *c, const float *queries, int nq, int dim, size_t k, double bw_gbs,
                          int32_t *ids) {
    double *ms = me_bench_alloc((size_t)nq * sizeof *ms), *stage = me_bench_alloc((size_t)nq * sizeof *stage);
    char err[256];
    for (int qi = -1; qi < nq; qi++) {  /* -1: warm-up (scratch, page tables) */
        me_search_params_t p = { 0 };
        p.query = queries + (size_t)(qi < 0 ? 0 : qi) * dim;
        p.r_q = 1;
        p.r_c = 1;
        p.k = k;
        me_search_result_t res;
        pthread_rwlock_rdlock(&c->lock);
        double t0 = now_s();
        int rc = me_search_run(c, NULL, &p, &res, err, sizeof err);
        double t1 = now_s();
        pthread_rwlock_unlock(&c->lock);
        if (rc != 0) {
            fprintf(stderr, "bench_flat: me_search_run: %s\n", err);
            exit(1);
        }
        if (qi >= 0) {
            ms[qi] = (t1 - t0) * 1e3;
            stage[qi] = res.nstages ? res.stages[0].micros * 1e-3 : 0;
            for (size_t j = 0; j < k; j++) ids[(size_t)qi * k + j] = j < res.nhits ? (int32_t)res.hits[j].idx : -1;
        }
        me_search_result_free(&res);
    }
    figure_t f;
    f.med_ms = me_percentile(ms, nq, 50);
    f.stage_ms = me_percentile(stage, nq, 50);
    double bytes = (double)c->n * dim * me_dtype_size(c->cfg.dtype);
    f.gbs = f.med_ms > 0 ? bytes / (f.med_ms * 1e-3) * 1e-9 : 0;
    f.frac = bw_gbs > 0 ? f.gbs / bw_gbs : 0;
    free(ms);
    free(stage);
    return f;
}

/* ---- FAISS, through tests/bench/faiss_flat.py ---- */

typedef struct {
    int ran;            /* 1: figures below are valid */
    char why[256];      /* when not: the reason, for the output */
    char version[32];
    double flat_ms, sq_ms;
    double recall_ours_f32, recall_ours_f16, recall_sq;
} faiss_t;

static void run_faiss(faiss_t *fz, const char *dir, const me_coll_t *c32, const float *queries, int nq, int dim,
                      size_t k, const int32_t *ids32, const int32_t *ids16) {
    char script_buf[PATH_MAX + 64], path[4][700], err[256];
    const char *py = me_bench_python();
    const char *script = me_bench_faiss_script("faiss_flat.py", script_buf, sizeof script_buf, fz->why, sizeof fz->why);
    if (!script) return;
    snprintf(path[0], sizeof path[0], "%s/base.npy", dir);
    snprintf(path[1], sizeof path[1], "%s/queries.npy", dir);
    snprintf(path[2], sizeof path[2], "%s/ours_f32.npy", dir);
    snprintf(path[3], sizeof path[3], "%s/ours_f16.npy", dir);
    /* c->coarse holds the first c->n rows of [cap, 1, dim] f32: the base as is. */
    uint64_t shape_b[2] = { c32->n, (uint64_t)dim }, shape_q[2] = { (uint64_t)nq, (uint64_t)dim };
    if (me_npy_write(path[0], ME_DTYPE_F32, shape_b, 2, c32->coarse, 1, err, sizeof err) != 0 ||
        me_npy_write(path[1], ME_DTYPE_F32, shape_q, 2, queries, 1, err, sizeof err) != 0 ||
        me_bench_write_npy_i32(path[2], ids32, (size_t)nq, k) != 0 || me_bench_write_npy_i32(path[3], ids16, (size_t)nq, k) != 0) {
        snprintf(fz->why, sizeof fz->why, "cannot write the .npy inputs in %s; FAISS rows skipped", dir);
        return;
    }
    char kbuf[24];
    snprintf(kbuf, sizeof kbuf, "%zu", k);
    char *argv[] = { (char *)py, (char *)script, path[0], path[1], kbuf, path[2], path[3], NULL };
    fprintf(stderr, "running %s (FAISS, 1 thread)...\n", script);
    char *out = NULL, *errtxt = NULL;
    int code = me_test_run_capture(argv, dir, "faiss", &out, &errtxt);
    me_json_doc_t *doc = NULL;
    if (code == 0 && out && me_json_parse(out, strlen(out), &doc, NULL) == 0) {
        const me_json_t *r = me_json_root(doc);
        fz->ran = me_json_num(me_json_get(r, "flat_f32_ms"), &fz->flat_ms) == 0 &&
                  me_json_num(me_json_get(r, "sq_fp16_ms"), &fz->sq_ms) == 0;
        me_json_num(me_json_get(r, "recall_ours_f32"), &fz->recall_ours_f32);
        me_json_num(me_json_get(r, "recall_ours_f16"), &fz->recall_ours_f16);
        me_json_num(me_json_get(r, "recall_sq_fp16"), &fz->recall_sq);
        const char *v = me_json_str(me_json_get(r, "faiss_version"));
        snprintf(fz->version, sizeof fz->version, "%s", v ? v : "?");
    }
    if (!fz->ran) snprintf(fz->why, sizeof fz->why, "faiss_flat.py failed (exit %d); FAISS rows skipped", code);
    me_json_free(doc);
    free(out);
    free(errtxt);
}

/* ---- output ---- */

static void row_md(const char *impl, const char *dt, double ms, double gbs, double bw, double faiss_ms) {
    char vs[32] = "n/a";
    if (faiss_ms > 0 && ms > 0) snprintf(vs, sizeof vs, "%.2fx", faiss_ms / ms);
    printf("| %s | %s | %.2f | %.2f | %.2f | %s |\n", impl, dt, ms, gbs, bw > 0 ? gbs / bw : 0, vs);
}

int main(int argc, char **argv) {
    int ndocs = 1000000, dim = 128, nq = 20, k = 1000, bw_mib = 1024, json = 0;
    const me_opt_t opts[] = { { "--docs", ME_OPT_INT, &ndocs },    { "--dim", ME_OPT_INT, &dim },
                              { "--queries", ME_OPT_INT, &nq },    { "--k", ME_OPT_INT, &k },
                              { "--bw-mib", ME_OPT_INT, &bw_mib }, { "--json", ME_OPT_FLAG, &json },
                              { NULL, 0, NULL } };
    int code = me_bench_options(argc, argv, opts,
                                "usage: bench_flat [--docs N (1000000)] [--dim D (128)] [--queries Q (20)]\n"
                                "                  [--k K (1000)] [--bw-mib M (1024)] [--json]\n"
                                "The shard's coarse scan (me_search_run at budget (1,1)) over N unit random\n"
                                "vectors in f16 and f32, one thread, one query at a time, top K; next to\n"
                                "single-thread read bandwidth (summing M MiB) and, when python3-faiss is\n"
                                "installed, FAISS IndexFlatIP and IndexScalarQuantizer fp16 on the same data\n"
                                "(tests/bench/faiss_flat.py; $ME_BENCH_SCRIPTS, $ME_PYTHON override). Figures only.\n");
    if (code >= 0) return code;
    if (ndocs < 1 || dim < 1 || dim > 4096 || nq < 1 || k < 1 || k > ndocs || bw_mib < 1) {
        fprintf(stderr, "bench_flat: need --docs >= --k >= 1, --queries >= 1, 1 <= --dim <= 4096, --bw-mib >= 1\n");
        return 2;
    }
    size_t n = (size_t)ndocs, kk = (size_t)k;
    const char *simd = me_maxsim_simd_name();

    fprintf(stderr, "generating %zu unit vectors (dim %d) into f32 and f16 collections...\n", n, dim);
    me_coll_t *c32 = coll_new(ME_DTYPE_F32, dim), *c16 = coll_new(ME_DTYPE_F16, dim);
    me_rng_t rng = { 2026 };
    float *block = me_bench_alloc((size_t)GEN_BLOCK * dim * sizeof *block);
    uint16_t *half = me_bench_alloc((size_t)dim * sizeof *half);
    for (size_t off = 0; off < n; off += GEN_BLOCK) {
        int m = n - off < GEN_BLOCK ? (int)(n - off) : GEN_BLOCK;
        me_rng_unit_rows(&rng, block, m, dim);
        for (int i = 0; i < m; i++) {
            const float *row = block + (size_t)i * dim;
            coll_put(c32, off + i, row);
            me_f32_to_f16_n(half, row, (size_t)dim);
            coll_put(c16, off + i, half);
        }
    }
    free(block);
    free(half);
    float *queries = me_bench_alloc((size_t)nq * dim * sizeof *queries);
    me_rng_unit_rows(&rng, queries, nq, dim);

    fprintf(stderr, "measuring read bandwidth (%d MiB, %s)...\n", bw_mib, simd);
    double bw = read_bandwidth((size_t)bw_mib << 20, simd);

    fprintf(stderr, "timing our coarse scan...\n");
    int32_t *ids32 = me_bench_alloc((size_t)nq * kk * sizeof *ids32), *ids16 = me_bench_alloc((size_t)nq * kk * sizeof *ids16);
    figure_t f16 = time_ours(c16, queries, nq, dim, kk, bw, ids16);
    figure_t f32 = time_ours(c32, queries, nq, dim, kk, bw, ids32);
    /* Our f16 top-k against our f32 top-k: what storing f16 costs in recall. */
    double rec_16_32 = 0;
    for (int qi = 0; qi < nq; qi++) {
        size_t hit = 0;
        for (size_t a = 0; a < kk; a++)
            for (size_t b = 0; b < kk; b++)
                if (ids16[qi * kk + a] == ids32[qi * kk + b]) { hit++; break; }
        rec_16_32 += (double)hit / kk;
    }
    rec_16_32 /= nq;

    /* The f16 copy is not needed by FAISS; free it before python loads its own. */
    me_coll_free(c16);
    faiss_t fz = { 0 };
    char *dir = me_test_tmpdir("bench_flat");
    if (!dir) snprintf(fz.why, sizeof fz.why, "cannot make a temp dir; FAISS rows skipped");
    else run_faiss(&fz, dir, c32, queries, nq, dim, kk, ids32, ids16);
    if (dir) me_test_rmdir(dir);
    free(dir);

    double b32 = (double)n * dim * 4, b16 = (double)n * dim * 2;
    double flat_gbs = fz.ran && fz.flat_ms > 0 ? b32 / (fz.flat_ms * 1e-3) * 1e-9 : 0;
    double sq_gbs = fz.ran && fz.sq_ms > 0 ? b16 / (fz.sq_ms * 1e-3) * 1e-9 : 0;
    if (json) {
        printf("{\"docs\":%zu,\"dim\":%d,\"queries\":%d,\"k\":%d,\"simd\":\"%s\",\"read_bw_gbs\":%.3f,"
               "\"bw_bytes\":%zu,\"ours\":{\"f16\":{\"ms\":%.4f,\"stage_ms\":%.4f,\"gbs\":%.3f,\"x_bw\":%.4f},"
               "\"f32\":{\"ms\":%.4f,\"stage_ms\":%.4f,\"gbs\":%.3f,\"x_bw\":%.4f}},\"recall_ours_f16_vs_f32\":%.4f,"
               "\"faiss\":",
               n, dim, nq, k, simd, bw, (size_t)bw_mib << 20, f16.med_ms, f16.stage_ms, f16.gbs, f16.frac,
               f32.med_ms, f32.stage_ms, f32.gbs, f32.frac, rec_16_32);
        if (fz.ran)
            printf("{\"version\":\"%s\",\"flat_ip_f32\":{\"ms\":%.4f,\"gbs\":%.3f,\"x_bw\":%.4f},"
                   "\"sq_fp16\":{\"ms\":%.4f,\"gbs\":%.3f,\"x_bw\":%.4f},\"recall_ours_f32\":%.4f,"
                   "\"recall_ours_f16\":%.4f,\"recall_sq_fp16\":%.4f}}\n",
                   fz.version, fz.flat_ms, flat_gbs, flat_gbs / bw, fz.sq_ms, sq_gbs, sq_gbs / bw,
                   fz.recall_ours_f32, fz.recall_ours_f16, fz.recall_sq);
        else {
            me_json_writer_t w;
            me_json_writer_init_file(&w, stdout);
            me_json_obj_begin(&w, NULL);
            me_json_put_str(&w, "skipped", fz.why);
            me_json_obj_end(&w);
            me_json_writer_free(&w);
            printf("}\n");
        }
    } else {
        printf("flat scan bench: %zu docs, dim %d, top %d, %d queries one at a time, 1 thread, SIMD %s\n", n, dim,
               k, nq, simd);
        printf("read bandwidth (1 thread, sum of %d MiB, median of %d): %.2f GB/s\n", bw_mib, BW_PASSES, bw);
        if (!fz.ran) printf("%s\n", fz.why);
        else printf("FAISS %s (omp 1 thread, one query per search call)\n", fz.version);
        printf("\n| implementation | dtype | median ms/query | GB/s | x of read bandwidth | vs FAISS IndexFlatIP f32 |\n");
        printf("|---|---|---:|---:|---:|---:|\n");
        double ref = fz.ran ? fz.flat_ms : 0;
        row_md("metaembed coarse scan", "f16", f16.med_ms, f16.gbs, bw, ref);
        row_md("metaembed coarse scan", "f32", f32.med_ms, f32.gbs, bw, ref);
        if (fz.ran) {
            row_md("FAISS IndexFlatIP", "f32", fz.flat_ms, flat_gbs, bw, ref);
            row_md("FAISS IndexScalarQuantizer QT_fp16", "f16", fz.sq_ms, sq_gbs, bw, ref);
        }
        printf("\nGB/s = vector bytes streamed per query (N x D x dtype size) / median time; "
               "vs FAISS = its ms / ours (> 1: we are faster).\n");
        printf("our stage timer (me_stage_t.micros), median: f16 %.2f ms, f32 %.2f ms\n", f16.stage_ms,
               f32.stage_ms);
        printf("recall@%d of our f16 top-k vs our f32 top-k: %.4f\n", k, rec_16_32);
        if (fz.ran)
            printf("recall@%d vs FAISS IndexFlatIP f32 top-k: ours f32 %.4f, ours f16 %.4f, FAISS fp16 %.4f\n", k,
                   fz.recall_ours_f32, fz.recall_ours_f16, fz.recall_sq);
    }
    me_coll_free(c32);
    free(queries);
    free(ids32);
    free(ids16);
    return 0;
}
