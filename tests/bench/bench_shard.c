/* Shard search benchmark: a real metaembed-shard process on loopback,
 * N documents of synthetic nested data (tests/synthetic.h), D=128, R_c=64,
 * f16. Prints, per budget: exact and cascade latency (median, p99, measured
 * by the client over loopback), the cascade's recall@10 against exact at the
 * same budget for several candidate counts, index bytes per document, and
 * ingest documents/s. Figures only; never fails on time.
 *
 *   bench_shard [--docs N] [--queries Q] [--json] [--help]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/dtype.h"
#include "common/maxsim.h"
#include "tests/daemon.h"
#include "tests/harness.h"
#include "tests/synthetic.h"

#define D 128
#define RC 64
#define RQ 16
#define K 10

static const int budgets[][2] = { { 1, 1 }, { 2, 4 }, { 4, 8 }, { 8, 16 }, { 16, 64 } };
/* Survivors of stage 1 (n1) and of the refine stage (n2; n2 = n1: no
 * refine stage, the two-stage cascade). */
static const struct { uint32_t n1, n2; } cand_counts[] = {
    { 100, 100 }, { 250, 250 }, { 500, 500 }, { 1000, 1000 }, { 2500, 2500 }, { 5000, 5000 },
    { 1000, 100 }, { 1000, 200 }, { 1000, 400 }, { 2500, 250 }, { 2500, 500 }, { 5000, 500 },
};
#define NB (int)(sizeof budgets / sizeof budgets[0])
#define NC (int)(sizeof cand_counts / sizeof cand_counts[0])

static void die(const char *what, const me_status_t *st) {
    fprintf(stderr, "bench_shard: %s: %s\n", what, st ? st->message : "");
    exit(1);
}

typedef struct {
    double med_ms, p99_ms;
    double recall;
    double stage1_us, stage2_us;
} figure_t;

int main(int argc, char **argv) {
    int ndocs = 100000, nq = 50, json = 0;
    const me_opt_t opts[] = { { "--docs", ME_OPT_INT, &ndocs }, { "--queries", ME_OPT_INT, &nq },
                              { "--json", ME_OPT_FLAG, &json }, { NULL, 0, NULL } };
    int code = me_bench_options(argc, argv, opts,
                                "usage: bench_shard [--docs N (100000)] [--queries Q (50)] [--json]\n"
                                "Starts metaembed-shard from $ME_BIN (or next to this binary) on a free\n"
                                "loopback port and measures ingest and search; prints figures only.\n");
    if (code >= 0) return code;
    if (ndocs < 100 || nq < 1) { fprintf(stderr, "bench_shard: need --docs >= 100 and --queries >= 1\n"); return 2; }

    me_synth_t p = me_synth_default(D, RC, 2026);
    fprintf(stderr, "generating %d synthetic nested documents...\n", ndocs);
    uint16_t *vecs = malloc((size_t)ndocs * RC * D * sizeof *vecs);
    if (!vecs) { fprintf(stderr, "bench_shard: out of memory\n"); return 1; }
    me_synth_docs_f16(&p, 0, (size_t)ndocs, vecs, 2);

    me_daemon_t d = { 0 };
    if (me_daemon_start(&d, "metaembed-shard", "bench") != 0) die("cannot start metaembed-shard", NULL);
    me_client_t *c = me_daemon_client(&d);
    if (!c) die("cannot connect", NULL);
    me_client_set_timeout(c, 600000);
    me_status_t st;
    me_collection_spec_t spec = { .name = "bench", .dim = D, .max_doc_vectors = RC, .max_query_vectors = RQ };
    if (me_client_create_collection(c, &spec, &st)) die("create", &st);

    /* Ingest in batches of 256 (4 MiB of f16 per request). */
    fprintf(stderr, "ingesting...\n");
    enum { BATCH = 256 };
    me_doc_t docs[BATCH];
    char (*ids)[16] = malloc((size_t)ndocs * sizeof *ids);
    double t0 = me_test_now_ms();
    for (int off = 0; off < ndocs; off += BATCH) {
        int m = ndocs - off < BATCH ? ndocs - off : BATCH;
        for (int i = 0; i < m; i++) {
            snprintf(ids[off + i], sizeof ids[0], "d%07d", off + i);
            docs[i] = (me_doc_t){ .id = ids[off + i], .vectors = vecs + (size_t)(off + i) * RC * D, .rows = RC, .f16 = 1 };
        }
        if (me_client_upsert(c, "bench", docs, (size_t)m, D, &st)) die("upsert", &st);
    }
    double ingest_s = (me_test_now_ms() - t0) / 1000.0;
    me_collection_info_t *info;
    size_t ninfo;
    if (me_client_list_collections(c, &info, &ninfo, &st) || ninfo != 1) die("list", &st);
    double ram_per_doc = (double)info[0].ram_bytes / ndocs;
    free(info);

    float *queries = malloc((size_t)nq * RQ * D * sizeof *queries);
    me_rng_t rng = { 77 };
    for (int i = 0; i < nq; i++)
        me_synth_query(&p, me_rng_next(&rng) % (uint64_t)ndocs, (uint64_t)i, RQ, queries + (size_t)i * RQ * D);

    figure_t exact[NB], casc[NB][NC];
    double *lat = malloc((size_t)nq * sizeof *lat);
    double *s1 = malloc((size_t)nq * sizeof *s1), *s2 = malloc((size_t)nq * sizeof *s2);
    char (*truth)[K][16] = malloc((size_t)nq * sizeof *truth);
    for (int b = 0; b < NB; b++) {
        int r_q = budgets[b][0], r_c = budgets[b][1];
        fprintf(stderr, "budget (%d,%d)...\n", r_q, r_c);
        for (int qi = 0; qi < nq; qi++) {
            me_results_t res;
            me_search_opts_t o = { .r_q = r_q, .r_c = r_c, .k = K, .exact = 1 };
            double q0 = me_test_now_ms();
            if (me_client_search(c, "bench", queries + (size_t)qi * RQ * D, RQ, D, &o, &res, &st)) die("search", &st);
            lat[qi] = me_test_now_ms() - q0;
            s1[qi] = res.n_stages > 0 ? (double)res.stages[0].micros : 0;
            for (int h = 0; h < K; h++) snprintf(truth[qi][h], 16, "%s", h < (int)res.n ? res.hits[h].id : "");
            me_results_free(&res);
        }
        exact[b].med_ms = me_percentile(lat, nq, 50);
        exact[b].p99_ms = me_percentile(lat, nq, 99);
        exact[b].recall = 1.0;
        exact[b].stage1_us = me_percentile(s1, nq, 50);
        exact[b].stage2_us = 0;
        for (int ci = 0; ci < NC; ci++) {
            double hits = 0;
            for (int qi = 0; qi < nq; qi++) {
                me_results_t res;
                me_search_opts_t o = { .r_q = r_q, .r_c = r_c, .k = K, .candidates = cand_counts[ci].n1,
                                       .refine_candidates = cand_counts[ci].n2 };
                double q0 = me_test_now_ms();
                if (me_client_search(c, "bench", queries + (size_t)qi * RQ * D, RQ, D, &o, &res, &st)) die("search", &st);
                lat[qi] = me_test_now_ms() - q0;
                s1[qi] = res.n_stages > 0 ? (double)res.stages[0].micros : 0;
                s2[qi] = 0;  /* every stage after the first: refine + rerank */
                for (int si = 1; si < res.n_stages; si++) s2[qi] += (double)res.stages[si].micros;
                for (size_t h = 0; h < res.n; h++)
                    for (int t = 0; t < K; t++)
                        if (!strcmp(res.hits[h].id, truth[qi][t])) { hits++; break; }
                me_results_free(&res);
            }
            casc[b][ci].med_ms = me_percentile(lat, nq, 50);
            casc[b][ci].p99_ms = me_percentile(lat, nq, 99);
            casc[b][ci].recall = hits / (nq * (double)K);
            casc[b][ci].stage1_us = me_percentile(s1, nq, 50);
            casc[b][ci].stage2_us = me_percentile(s2, nq, 50);
        }
    }

    if (json) {
        printf("{\"docs\":%d,\"dim\":%d,\"r_c\":%d,\"dtype\":\"f16\",\"queries\":%d,\"ingest_docs_per_s\":%.1f,"
               "\"ram_bytes_per_doc\":%.1f,\"simd\":\"%s\",\"budgets\":[",
               ndocs, D, RC, nq, ndocs / ingest_s, ram_per_doc, me_maxsim_simd_name());
        for (int b = 0; b < NB; b++) {
            printf("%s{\"r_q\":%d,\"r_c\":%d,\"index_bytes_per_doc\":%d,\"exact\":{\"median_ms\":%.3f,\"p99_ms\":%.3f},\"cascade\":[",
                   b ? "," : "", budgets[b][0], budgets[b][1], budgets[b][1] * D * 2, exact[b].med_ms, exact[b].p99_ms);
            for (int ci = 0; ci < NC; ci++)
                printf("%s{\"candidates\":%u,\"refine_candidates\":%u,\"median_ms\":%.3f,\"p99_ms\":%.3f,\"recall_at_10\":%.4f,\"speedup\":%.1f}",
                       ci ? "," : "", cand_counts[ci].n1, cand_counts[ci].n2, casc[b][ci].med_ms, casc[b][ci].p99_ms, casc[b][ci].recall,
                       exact[b].med_ms / casc[b][ci].med_ms);
            printf("]}");
        }
        printf("]}\n");
    } else {
        printf("shard search: %d docs, D=%d, R_c=%d, f16, synthetic nested data, %d queries, k=%d, kernel %s\n",
               ndocs, D, RC, nq, K, me_maxsim_simd_name());
        printf("ingest: %.0f docs/s (%.1f s); RAM %.0f bytes/doc (all 64 vectors + coarse copy)\n\n",
               ndocs / ingest_s, ingest_s, ram_per_doc);
        printf("| budget  | index B/doc | mode    | n1    | n2    | median ms | p99 ms | stage1 ms | later ms | recall@10 | speedup |\n");
        printf("|---------|-------------|---------|-------|-------|-----------|--------|-----------|----------|-----------|---------|\n");
        for (int b = 0; b < NB; b++) {
            char bud[16];
            snprintf(bud, sizeof bud, "(%d,%d)", budgets[b][0], budgets[b][1]);
            printf("| %-7s | %11d | exact   |     - |     - | %9.2f | %6.2f | %9.2f |        - |    1.0000 |    1.0x |\n", bud,
                   budgets[b][1] * D * 2, exact[b].med_ms, exact[b].p99_ms, exact[b].stage1_us / 1000);
            for (int ci = 0; ci < NC; ci++) {
                char n2s[16] = "-";
                if (cand_counts[ci].n2 < cand_counts[ci].n1) snprintf(n2s, sizeof n2s, "%u", cand_counts[ci].n2);
                printf("| %-7s | %11d | cascade | %5u | %5s | %9.2f | %6.2f | %9.2f | %8.2f |    %.4f | %6.1fx |\n", bud,
                       budgets[b][1] * D * 2, cand_counts[ci].n1, n2s, casc[b][ci].med_ms, casc[b][ci].p99_ms,
                       casc[b][ci].stage1_us / 1000, casc[b][ci].stage2_us / 1000, casc[b][ci].recall,
                       exact[b].med_ms / casc[b][ci].med_ms);
            }
        }
        printf("\nrecall@10: share of exact mode's top 10 (same budget) that the cascade returns.\n"
               "At budgets (1,1) the coarse copy already holds the budget: one pass, no rerank.\n"
               "n2: survivors of the refine stage (at (4,8) for (16,64), (2,4) for (8,16)); '-': no refine stage\n"
               "(budgets below (8,16) never have one). later ms: refine + rerank.\n");
    }
    me_client_close(c);
    me_daemon_free(&d);
    free(vecs);
    free(ids);
    free(queries);
    free(lat);
    free(s1);
    free(s2);
    free(truth);
    return 0;
}
