/* End-to-end benchmark through the coordinator: N documents (D=128,
 * R_c=64, f16, synthetic nested data) over 1, 2 and 4 shard groups on this
 * machine; QPS and p50/p99 per budget at 1, 4 and 16 concurrent clients;
 * and the coordinator's added latency against asking the shard directly
 * (1 group, budget (1,1), k=10). Figures only; never fails on time.
 *
 *   bench_cluster [--docs N] [--seconds S] [--json] [--help]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/dtype.h"
#include "tests/cluster.h"
#include "tests/harness.h"
#include "tests/synthetic.h"

#define D 128
#define RC 64
#define RQ 16
#define NQ 64

static const int budgets[][2] = { { 1, 1 }, { 4, 8 }, { 16, 64 } };
static const int clients[] = { 1, 4, 16 };
static const int shard_counts[] = { 2, 4 };
#define NB 3
#define NCL 3
#define NS 2

static float g_queries[NQ * RQ * D];

typedef struct {
    const char *endpoint;
    int r_q, r_c;
    double seconds;
    double *lat;        /* per-thread latencies (ms) */
    int nlat, cap;
    int errors;
} load_t;

static void *load_main(void *arg) {
    load_t *l = arg;
    me_status_t st;
    me_client_t *c = me_client_connect(l->endpoint, 5000, &st);
    if (!c) { l->errors++; return NULL; }
    me_search_opts_t o = { .r_q = l->r_q, .r_c = l->r_c, .k = 10 };
    double end = me_test_now_ms() + l->seconds * 1000;
    unsigned qi = (unsigned)(size_t)l % NQ;
    while (me_test_now_ms() < end && l->nlat < l->cap) {
        me_results_t res;
        double t0 = me_test_now_ms();
        int rc = me_client_search(c, "bench", g_queries + (size_t)(qi++ % NQ) * RQ * D, RQ, D, &o, &res, &st);
        double ms = me_test_now_ms() - t0;
        if (rc) { l->errors++; continue; }
        me_results_free(&res);
        l->lat[l->nlat++] = ms;
    }
    me_client_close(c);
    return NULL;
}

typedef struct { double qps, p50, p99; int errors; } point_t;

static point_t run_load(const char *endpoint, int r_q, int r_c, int nthreads, double seconds) {
    load_t l[16];
    pthread_t th[16];
    for (int t = 0; t < nthreads; t++) {
        l[t] = (load_t){ endpoint, r_q, r_c, seconds, malloc(200000 * sizeof(double)), 0, 200000, 0 };
        pthread_create(&th[t], NULL, load_main, &l[t]);
    }
    double *all = NULL;
    int n = 0, errors = 0;
    for (int t = 0; t < nthreads; t++) {
        pthread_join(th[t], NULL);
        all = realloc(all, (size_t)(n + l[t].nlat + 1) * sizeof *all);
        memcpy(all + n, l[t].lat, (size_t)l[t].nlat * sizeof *all);
        n += l[t].nlat;
        errors += l[t].errors;
        free(l[t].lat);
    }
    point_t p = { n / seconds, me_percentile(all, n, 50), me_percentile(all, n, 99), errors };
    free(all);
    return p;
}

static void die(const char *what, const me_status_t *st) {
    fprintf(stderr, "bench_cluster: %s%s%s\n", what, st ? ": " : "", st ? st->message : "");
    exit(1);
}

static double ingest(const char *endpoint, const uint16_t *vecs, int ndocs) {
    me_status_t st;
    me_client_t *c = me_client_connect(endpoint, 5000, &st);
    if (!c) die("connect", &st);
    me_client_set_timeout(c, 120000);
    me_collection_spec_t spec = { .name = "bench", .dim = D, .max_doc_vectors = RC, .max_query_vectors = RQ };
    if (me_client_create_collection(c, &spec, &st)) die("create", &st);
    enum { B = 256 };
    me_doc_t docs[B];
    char ids[B][16];
    double t0 = me_test_now_ms();
    for (int off = 0; off < ndocs; off += B) {
        int m = ndocs - off < B ? ndocs - off : B;
        for (int i = 0; i < m; i++) {
            snprintf(ids[i], sizeof ids[i], "d%07d", off + i);
            docs[i] = (me_doc_t){ .id = ids[i], .vectors = vecs + (size_t)(off + i) * RC * D, .rows = RC, .f16 = 1 };
        }
        if (me_client_upsert(c, "bench", docs, (size_t)m, D, &st)) die("upsert", &st);
    }
    double s = (me_test_now_ms() - t0) / 1000;
    me_client_close(c);
    return ndocs / s;
}

/* Median latency of n sequential (1,1) k=10 searches. */
static double median_latency(const char *endpoint, int n) {
    me_status_t st;
    me_client_t *c = me_client_connect(endpoint, 5000, &st);
    if (!c) die("connect", &st);
    double *lat = malloc((size_t)n * sizeof *lat);
    me_search_opts_t o = { .r_q = 1, .r_c = 1, .k = 10 };
    for (int i = 0; i < n; i++) {
        me_results_t res;
        double t0 = me_test_now_ms();
        if (me_client_search(c, "bench", g_queries + (size_t)(i % NQ) * RQ * D, RQ, D, &o, &res, &st)) die("search", &st);
        lat[i] = me_test_now_ms() - t0;
        me_results_free(&res);
    }
    double m = me_percentile(lat, n, 50);
    free(lat);
    me_client_close(c);
    return m;
}

int main(int argc, char **argv) {
    int ndocs = 100000, json = 0;
    double seconds = 3;
    const me_opt_t opts[] = { { "--docs", ME_OPT_INT, &ndocs }, { "--seconds", ME_OPT_DOUBLE, &seconds },
                              { "--json", ME_OPT_FLAG, &json }, { NULL, 0, NULL } };
    int code = me_bench_options(argc, argv, opts,
                                "usage: bench_cluster [--docs N (100000)] [--seconds S per point (3)] [--json]\n"
                                "Starts shards and a coordinator from $ME_BIN on loopback; prints figures only.\n");
    if (code >= 0) return code;
    if (ndocs < 1000) die("need --docs >= 1000", NULL);
    me_synth_t p = me_synth_default(D, RC, 2026);
    fprintf(stderr, "generating %d documents...\n", ndocs);
    uint16_t *vecs = malloc((size_t)ndocs * RC * D * sizeof *vecs);
    if (!vecs) die("out of memory", NULL);
    me_synth_docs_f16(&p, 0, (size_t)ndocs, vecs, 2);
    me_rng_t rng = { 5 };
    for (int i = 0; i < NQ; i++)
        me_synth_query(&p, me_rng_next(&rng) % (uint64_t)ndocs, (uint64_t)i, RQ, g_queries + (size_t)i * RQ * D);

    /* Coordinator overhead: one group, the same shard asked both ways. */
    cluster_t c;
    fprintf(stderr, "1 group: coordinator overhead...\n");
    if (cluster_start(&c, 1, 1, NULL)) die("cannot start the cluster", NULL);
    double ingest1 = ingest(c.coord.endpoint, vecs, ndocs);
    double direct = median_latency(c.shards[0].endpoint, 500);
    double via = median_latency(c.coord.endpoint, 500);
    cluster_stop(&c);

    point_t pts[NS][NB][NCL];
    double ingest_rate[NS];
    for (int s = 0; s < NS; s++) {
        fprintf(stderr, "%d groups: ingest...\n", shard_counts[s]);
        if (cluster_start(&c, shard_counts[s], 1, NULL)) die("cannot start the cluster", NULL);
        ingest_rate[s] = ingest(c.coord.endpoint, vecs, ndocs);
        for (int b = 0; b < NB; b++)
            for (int k = 0; k < NCL; k++) {
                fprintf(stderr, "  budget (%d,%d), %d clients...\n", budgets[b][0], budgets[b][1], clients[k]);
                pts[s][b][k] = run_load(c.coord.endpoint, budgets[b][0], budgets[b][1], clients[k], seconds);
            }
        cluster_stop(&c);
    }

    if (json) {
        printf("{\"docs\":%d,\"dim\":%d,\"r_c\":%d,\"dtype\":\"f16\",\"seconds_per_point\":%.1f,"
               "\"direct_shard_median_ms\":%.4f,\"via_coordinator_median_ms\":%.4f,\"added_ms\":%.4f,"
               "\"ingest_docs_per_s_1_group\":%.0f,\"clusters\":[",
               ndocs, D, RC, seconds, direct, via, via - direct, ingest1);
        for (int s = 0; s < NS; s++) {
            printf("%s{\"groups\":%d,\"ingest_docs_per_s\":%.0f,\"points\":[", s ? "," : "", shard_counts[s], ingest_rate[s]);
            for (int b = 0; b < NB; b++)
                for (int k = 0; k < NCL; k++)
                    printf("%s{\"r_q\":%d,\"r_c\":%d,\"clients\":%d,\"qps\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"errors\":%d}",
                           b || k ? "," : "", budgets[b][0], budgets[b][1], clients[k], pts[s][b][k].qps,
                           pts[s][b][k].p50, pts[s][b][k].p99, pts[s][b][k].errors);
            printf("]}");
        }
        printf("]}\n");
    } else {
        printf("cluster bench: %d docs, D=%d, R_c=%d, f16, default cascade, k=10, all processes on this 2-core machine\n\n",
               ndocs, D, RC);
        printf("coordinator overhead (1 group, (1,1), k=10, median of 500): direct shard %.3f ms, via coordinator %.3f ms, added %.3f ms\n\n",
               direct, via, via - direct);
        printf("| groups | ingest docs/s | budget  | clients |     QPS | p50 ms | p99 ms | errors |\n");
        printf("|--------|---------------|---------|---------|---------|--------|--------|--------|\n");
        for (int s = 0; s < NS; s++)
            for (int b = 0; b < NB; b++)
                for (int k = 0; k < NCL; k++) {
                    char bud[16];
                    snprintf(bud, sizeof bud, "(%d,%d)", budgets[b][0], budgets[b][1]);
                    printf("| %6d | %13.0f | %-7s | %7d | %7.1f | %6.2f | %6.2f | %6d |\n", shard_counts[s], ingest_rate[s],
                           bud, clients[k], pts[s][b][k].qps, pts[s][b][k].p50, pts[s][b][k].p99, pts[s][b][k].errors);
                }
    }
    free(vecs);
    return 0;
}
