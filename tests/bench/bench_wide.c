/* Paper-scale dimensions (issue 19): one real metaembed-shard on loopback,
 * D=3584 (the MetaEmbed paper's widest model), R_c=64, R_q=16, f16, N
 * documents of synthetic nested data (tests/synthetic.h) in two
 * collections: every vector in RAM (ram_vectors 64) and only the first
 * (ram_vectors 1: the rest read from RocksDB at rerank). Prints ingest
 * docs/s and MB/s, RAM and stored bytes per document, search latency
 * (median, p95) at three budgets in cascade and exact mode, the cascade's
 * recall@10 against exact at the same budget, and beside exact mode the
 * lower bound of exhaustive scoring at this machine's single-thread sgemm
 * rate (measured in the same run), with the paper's figure as a citation.
 * Figures only; never fails on time.
 *
 *   bench_wide [--docs N] [--queries Q] [--json] [--help]
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/maxsim.h"
#include "tests/daemon.h"
#include "tests/harness.h"
#include "tests/synthetic.h"

#define D 3584
#define RC 64
#define RQ 16
#define K 10
/* One document is 0.9 MiB as f32, 0.45 MiB as f16: 8 per Upsert keeps a
 * request at 3.7 MiB, far under the shard's --max-message (64 MiB). */
#define BATCH 8
/* Cited from the paper, not measured: exhaustive (16,64) scoring. */
#define PAPER_MS 6.25
#define PAPER_DOCS 100000
/* The reference sgemm's shape: (M x K) * (K x N). */
#define SG_M 512
#define SG_N 512
#define SG_K D

static const int budgets[][2] = { { 1, 1 }, { 4, 8 }, { 16, 64 } };
#define NB (int)(sizeof budgets / sizeof budgets[0])

static const struct {
    const char *name;
    int ram_vectors;
} colls[] = { { "wide_ram64", RC }, { "wide_ram1", 1 } };
#define NCOLL (int)(sizeof colls / sizeof colls[0])

enum { EXACT = 0, CASCADE = 1 };

typedef struct {
    double med_ms, p95_ms, recall;
} figure_t;

static void die(const char *what, const me_status_t *st) {
    fprintf(stderr, "bench_wide: %s: %s\n", what, st ? st->message : "");
    exit(1);
}


/* A query aimed at `doc`: noisy copies of its first RQ vectors (noise
 * p->qnoise relative to a unit vector), normalised. out: RQ x D f32. */
static void make_query(const me_synth_t *p, uint64_t doc, me_rng_t *rng, float *docbuf, float *out) {
    me_synth_doc(p, doc, docbuf);
    float k = p->qnoise / sqrtf((float)D);
    for (int i = 0; i < RQ; i++) {
        float *q = out + (size_t)i * D;
        double s = 0;
        for (int j = 0; j < D; j++) {
            q[j] = docbuf[(size_t)i * D + j] + k * (float)me_rng_normal(rng);
            s += (double)q[j] * q[j];
        }
        float inv = (float)(1.0 / sqrt(s > 0 ? s : 1));
        for (int j = 0; j < D; j++) q[j] *= inv;
    }
}

/* Lower bound of exhaustive scoring at budget (r_q, r_c) over n documents
 * at `gflops`: 2 r_q r_c D n FLOPs. */
static double bound_ms(int r_q, int r_c, int n, double gflops) {
    return 2.0 * r_q * r_c * (double)D * n / (gflops * 1e9) * 1e3;
}

int main(int argc, char **argv) {
    int ndocs = 2000, nq = 20, json = 0;
    const me_opt_t opts[] = { { "--docs", ME_OPT_INT, &ndocs }, { "--queries", ME_OPT_INT, &nq },
                              { "--json", ME_OPT_FLAG, &json }, { NULL, 0, NULL } };
    int code = me_bench_options(argc, argv, opts,
                                "usage: bench_wide [--docs N (2000)] [--queries Q (20)] [--json]\n"
                                "Starts metaembed-shard from $ME_BIN (or next to this binary) on a free\n"
                                "loopback port; D=3584, R_c=64, R_q=16, f16, one collection with every\n"
                                "vector in RAM and one with only the first; measures ingest and search\n"
                                "beside single-thread sgemm; prints figures only.\n");
    if (code >= 0) return code;
    if (ndocs < K || nq < 1) {
        fprintf(stderr, "bench_wide: need --docs >= %d and --queries >= 1\n", K);
        return 2;
    }

    /* The reference first, before the shard takes a core. */
    fprintf(stderr, "sgemm %dx%dx%d single-thread...\n", SG_M, SG_N, SG_K);
    double gflops = me_bench_sgemm_gflops(SG_M, SG_N, SG_K, 7);

    me_daemon_t d = { 0 };
    if (me_daemon_start(&d, "metaembed-shard", "bench-wide") != 0) die("cannot start metaembed-shard", NULL);
    me_client_t *c = me_daemon_client(&d);
    if (!c) die("cannot connect", NULL);
    me_client_set_timeout(c, 600000);
    me_status_t st;
    for (int ci = 0; ci < NCOLL; ci++) {
        me_collection_spec_t spec = { .name = colls[ci].name, .dim = D, .max_doc_vectors = RC,
                                      .max_query_vectors = RQ, .dtype = "f16",
                                      .ram_vectors = colls[ci].ram_vectors };
        if (me_client_create_collection(c, &spec, &st)) die("create", &st);
    }

    /* Generate a batch, then write it to each collection in turn; only the
     * Upsert calls are timed, per collection. Vectors go as f16. */
    me_synth_t p = me_synth_default(D, RC, 2026);
    size_t per_doc = (size_t)RC * D;
    uint16_t *vecs = me_bench_alloc(BATCH * per_doc * sizeof *vecs);
    char ids[BATCH][16];
    me_doc_t docs[BATCH];
    double ingest_ms[NCOLL] = { 0 };
    fprintf(stderr, "ingesting %d documents into %d collections...\n", ndocs, NCOLL);
    for (int off = 0; off < ndocs; off += BATCH) {
        int m = ndocs - off < BATCH ? ndocs - off : BATCH;
        me_synth_docs_f16(&p, (uint64_t)off, (size_t)m, vecs, 2);
        for (int i = 0; i < m; i++) {
            snprintf(ids[i], sizeof ids[i], "d%07d", off + i);
            docs[i] = (me_doc_t){ .id = ids[i], .vectors = vecs + (size_t)i * per_doc, .rows = RC, .f16 = 1 };
        }
        for (int ci = 0; ci < NCOLL; ci++) {
            double t0 = me_test_now_ms();
            if (me_client_upsert(c, colls[ci].name, docs, (size_t)m, D, &st)) die("upsert", &st);
            ingest_ms[ci] += me_test_now_ms() - t0;
        }
    }
    free(vecs);

    uint64_t ram_bytes[NCOLL] = { 0 }, index_bytes[NCOLL] = { 0 }, stored_docs[NCOLL] = { 0 };
    me_collection_info_t *info;
    size_t ninfo;
    if (me_client_list_collections(c, &info, &ninfo, &st)) die("list", &st);
    for (size_t i = 0; i < ninfo; i++)
        for (int ci = 0; ci < NCOLL; ci++)
            if (!strcmp(info[i].name, colls[ci].name)) {
                ram_bytes[ci] = info[i].ram_bytes;
                index_bytes[ci] = info[i].index_bytes;
                stored_docs[ci] = info[i].documents;
            }
    free(info);
    for (int ci = 0; ci < NCOLL; ci++)
        if (stored_docs[ci] != (uint64_t)ndocs) {
            fprintf(stderr, "bench_wide: %s holds %llu documents, expected %d\n", colls[ci].name,
                    (unsigned long long)stored_docs[ci], ndocs);
            return 1;
        }
    me_stats_t stats;
    if (me_client_stats(c, NULL, &stats, &st)) die("stats", &st);
    uint64_t disk_bytes = stats.disk_bytes;
    me_stats_free(&stats);

    float *queries = me_bench_alloc((size_t)nq * RQ * D * sizeof *queries);
    float *docbuf = me_bench_alloc(per_doc * sizeof *docbuf);
    me_rng_t rng = { 77 };
    for (int i = 0; i < nq; i++)
        make_query(&p, me_rng_next(&rng) % (uint64_t)ndocs, &rng, docbuf, queries + (size_t)i * RQ * D);
    free(docbuf);

    figure_t fig[NCOLL][NB][2];
    double *lat = me_bench_alloc((size_t)nq * sizeof *lat);
    char (*truth)[K][16] = me_bench_alloc((size_t)nq * sizeof *truth);
    for (int ci = 0; ci < NCOLL; ci++) {
        /* One untimed search: first touches of the tiers and the cache. */
        me_results_t res;
        me_search_opts_t o0 = { .r_q = 1, .r_c = 1, .k = K };
        if (me_client_search(c, colls[ci].name, queries, RQ, D, &o0, &res, &st)) die("search", &st);
        me_results_free(&res);
        for (int b = 0; b < NB; b++) {
            for (int mode = EXACT; mode <= CASCADE; mode++) {
                fprintf(stderr, "%s (%d,%d) %s...\n", colls[ci].name, budgets[b][0], budgets[b][1],
                        mode == EXACT ? "exact" : "cascade");
                double hits = 0;
                for (int qi = 0; qi < nq; qi++) {
                    me_search_opts_t o = { .r_q = budgets[b][0], .r_c = budgets[b][1], .k = K,
                                           .exact = mode == EXACT };
                    double q0 = me_test_now_ms();
                    if (me_client_search(c, colls[ci].name, queries + (size_t)qi * RQ * D, RQ, D, &o, &res, &st))
                        die("search", &st);
                    lat[qi] = me_test_now_ms() - q0;
                    if (mode == EXACT) {
                        for (int h = 0; h < K; h++) snprintf(truth[qi][h], 16, "%s", h < (int)res.n ? res.hits[h].id : "");
                    } else {
                        for (size_t h = 0; h < res.n; h++)
                            for (int t = 0; t < K; t++)
                                if (!strcmp(res.hits[h].id, truth[qi][t])) { hits++; break; }
                    }
                    me_results_free(&res);
                }
                fig[ci][b][mode].med_ms = me_percentile(lat, nq, 50);
                fig[ci][b][mode].p95_ms = me_percentile(lat, nq, 95);
                fig[ci][b][mode].recall = mode == EXACT ? 1.0 : hits / (nq * (double)K);
            }
        }
    }

    double doc_mb = (double)per_doc * 2 / 1e6;  /* f16 vector payload per document */
    if (json) {
        printf("{\"docs\":%d,\"dim\":%d,\"r_c\":%d,\"r_q\":%d,\"dtype\":\"f16\",\"queries\":%d,\"k\":%d,"
               "\"simd\":\"%s\",\"sgemm\":{\"m\":%d,\"n\":%d,\"k\":%d,\"threads\":1,\"gflops\":%.2f},"
               "\"shard_disk_bytes\":%llu,\"paper\":{\"ms\":%.2f,\"docs\":%d,\"hardware\":\"A100, bf16\","
               "\"cited\":true},\"collections\":[",
               ndocs, D, RC, RQ, nq, K, me_maxsim_simd_name(), SG_M, SG_N, SG_K, gflops,
               (unsigned long long)disk_bytes, PAPER_MS, PAPER_DOCS);
        for (int ci = 0; ci < NCOLL; ci++) {
            double s = ingest_ms[ci] / 1e3;
            printf("%s{\"name\":\"%s\",\"ram_vectors\":%d,\"ingest_docs_per_s\":%.1f,\"ingest_mb_per_s\":%.1f,"
                   "\"ram_bytes_per_doc\":%.1f,\"index_bytes_per_doc\":%.1f,\"budgets\":[",
                   ci ? "," : "", colls[ci].name, colls[ci].ram_vectors, ndocs / s, ndocs * doc_mb / s,
                   (double)ram_bytes[ci] / ndocs, (double)index_bytes[ci] / ndocs);
            for (int b = 0; b < NB; b++) {
                const figure_t *e = &fig[ci][b][EXACT], *k = &fig[ci][b][CASCADE];
                printf("%s{\"r_q\":%d,\"r_c\":%d,\"sgemm_bound_ms\":%.3f,"
                       "\"exact\":{\"median_ms\":%.3f,\"p95_ms\":%.3f,\"extrapolated_100k_ms\":%.1f},"
                       "\"cascade\":{\"median_ms\":%.3f,\"p95_ms\":%.3f,\"recall_at_10\":%.4f}}",
                       b ? "," : "", budgets[b][0], budgets[b][1],
                       bound_ms(budgets[b][0], budgets[b][1], ndocs, gflops), e->med_ms, e->p95_ms,
                       e->med_ms * PAPER_DOCS / ndocs, k->med_ms, k->p95_ms, k->recall);
            }
            printf("]}");
        }
        printf("]}\n");
    } else {
        printf("paper-scale shard: %d docs, D=%d, R_c=%d, R_q=%d, f16, synthetic nested data, %d queries, k=%d, "
               "kernel %s\n",
               ndocs, D, RC, RQ, nq, K, me_maxsim_simd_name());
        printf("reference: OpenBLAS sgemm %dx%dx%d single-thread %.1f GFLOP/s (measured in this run)\n\n", SG_M,
               SG_N, SG_K, gflops);
        printf("| collection | ram_vectors | ingest docs/s | ingest MB/s | RAM B/doc | stored B/doc |\n");
        printf("|------------|-------------|---------------|-------------|-----------|--------------|\n");
        for (int ci = 0; ci < NCOLL; ci++) {
            double s = ingest_ms[ci] / 1e3;
            printf("| %-10s | %11d | %13.1f | %11.1f | %9.0f | %12.0f |\n", colls[ci].name, colls[ci].ram_vectors,
                   ndocs / s, ndocs * doc_mb / s, (double)ram_bytes[ci] / ndocs, (double)index_bytes[ci] / ndocs);
        }
        printf("\nMB/s: f16 vector payload (%.3f MB/doc), %d documents per Upsert. RocksDB on disk (SST +\n"
               "memtables, both collections): %.0f bytes/doc.\n\n",
               doc_mb, BATCH, (double)disk_bytes / (NCOLL * (double)ndocs));
        printf("| collection | budget  | mode    | median ms |  p95 ms | recall@10 | sgemm bound ms | x100k/N ms (extrap.) |\n");
        printf("|------------|---------|---------|-----------|---------|-----------|----------------|----------------------|\n");
        for (int ci = 0; ci < NCOLL; ci++)
            for (int b = 0; b < NB; b++) {
                char bud[16];
                snprintf(bud, sizeof bud, "(%d,%d)", budgets[b][0], budgets[b][1]);
                const figure_t *e = &fig[ci][b][EXACT], *k = &fig[ci][b][CASCADE];
                printf("| %-10s | %-7s | exact   | %9.2f | %7.2f |         - | %14.3f | %20.1f |\n", colls[ci].name,
                       bud, e->med_ms, e->p95_ms, bound_ms(budgets[b][0], budgets[b][1], ndocs, gflops),
                       e->med_ms * PAPER_DOCS / ndocs);
                printf("| %-10s | %-7s | cascade | %9.2f | %7.2f |    %.4f |              - |                    - |\n",
                       colls[ci].name, bud, k->med_ms, k->p95_ms, k->recall);
            }
        printf("\n(16,64) exhaustive over %d documents:\n", ndocs);
        for (int ci = 0; ci < NCOLL; ci++)
            printf("  exact, %-10s measured %9.2f ms; extrapolated to %d docs (x %d/%d): %.0f ms\n", colls[ci].name,
                   fig[ci][NB - 1][EXACT].med_ms, PAPER_DOCS, PAPER_DOCS, ndocs,
                   fig[ci][NB - 1][EXACT].med_ms * PAPER_DOCS / ndocs);
        printf("  sgemm lower bound (2*16*64*%d*N FLOPs at %.1f GFLOP/s): %.2f ms; at %d docs %.0f ms\n", D, gflops,
               bound_ms(16, 64, ndocs, gflops), PAPER_DOCS, bound_ms(16, 64, PAPER_DOCS, gflops));
        printf("  paper (A100, bf16, exhaustive over 100k documents): %.2f ms  [cited, not measured here]\n",
               PAPER_MS);
        printf("\nrecall@10: share of exact mode's top 10 (same budget) that the cascade returns.\n"
               "sgemm bound: 2*r_q*r_c*D*N FLOPs at the single-thread sgemm rate, a lower bound for exact mode.\n"
               "x100k/N: exact median x 100000/N, a linear extrapolation, not a measurement.\n");
    }
    me_client_close(c);
    me_daemon_free(&d);
    free(queries);
    free(lat);
    free(truth);
    return 0;
}
