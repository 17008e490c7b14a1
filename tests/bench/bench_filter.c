/* Filtered search latency against selectivity: a real metaembed-shard
 * process on loopback with N documents (synthetic unit vectors, D=128,
 * R_c=8, f16) whose metadata carries an integer "bucket" = i mod 10000 and a
 * keyword "tag" (t<i mod 100>), both indexed. A filter bucket<X keeps X in
 * 10,000 documents: 100%, 10%, 1%, 0.1% and 0.01%; tag=t7 keeps 1% through
 * the keyword path. Each is measured as the cascade and as exact search, next
 * to the unfiltered search in the same run (the reference), with the
 * shard's own "filter" stage time (evaluating the filter into the list of
 * matching slots). Figures only; never fails on time.
 *
 *   bench_filter [--docs N] [--queries Q] [--help]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/dtype.h"
#include "tests/daemon.h"
#include "tests/harness.h"

#define D 128
#define RC 8
#define RQ 16
#define K 10

static void die(const char *what, const me_status_t *st) {
    fprintf(stderr, "bench_filter: %s: %s\n", what, st ? st->message : "");
    exit(1);
}

typedef struct {
    double med, p99, filter_us, hits;
} fig_t;

/* Runs every query with o: client latency (median, p99), the median
 * "filter" stage and the mean hits per query. */
static fig_t measure(me_client_t *c, const float *qv, int nq, me_search_opts_t o, double *lat, double *flt) {
    me_status_t st;
    double hits = 0;
    for (int qi = 0; qi < nq; qi++) {
        me_results_t res;
        double t0 = me_test_now_ms();
        if (me_client_search(c, "bench", qv + (size_t)qi * RQ * D, RQ, D, &o, &res, &st)) die("search", &st);
        lat[qi] = me_test_now_ms() - t0;
        flt[qi] = 0;
        for (int s = 0; s < res.n_stages; s++)
            if (!strcmp(res.stages[s].stage, "filter")) flt[qi] = (double)res.stages[s].micros;
        hits += (double)res.n;
        me_results_free(&res);
    }
    return (fig_t){ me_percentile(lat, nq, 50), me_percentile(lat, nq, 99), me_percentile(flt, nq, 50), hits / nq };
}

int main(int argc, char **argv) {
    int ndocs = 100000, nq = 100;
    const me_opt_t opts[] = { { "--docs", ME_OPT_INT, &ndocs }, { "--queries", ME_OPT_INT, &nq }, { NULL, 0, NULL } };
    int code = me_bench_options(argc, argv, opts,
                                "usage: bench_filter [--docs N (100000)] [--queries Q (100)]\n"
                                "Starts metaembed-shard from $ME_BIN (or next to this binary), loads N documents\n"
                                "with indexed payload fields and measures filtered search latency at\n"
                                "selectivities 100% .. 0.01% beside unfiltered search; prints figures only.\n");
    if (code >= 0) return code;
    if (ndocs < 10000 || nq < 1) {
        fprintf(stderr, "bench_filter: need --docs >= 10000 (0.01%% is one in 10,000) and --queries >= 1\n");
        return 2;
    }
    me_daemon_t d = { 0 };
    if (me_daemon_start(&d, "metaembed-shard", "bench-filter") != 0) die("cannot start metaembed-shard", NULL);
    me_client_t *c = me_daemon_client(&d);
    if (!c) die("cannot connect", NULL);
    me_client_set_timeout(c, 600000);
    me_status_t st;
    me_collection_spec_t spec = { .name = "bench", .dim = D, .max_doc_vectors = RC, .max_query_vectors = RQ,
                                  .fields = "bucket:integer,tag:keyword" };
    if (me_client_create_collection(c, &spec, &st)) die("create", &st);

    fprintf(stderr, "ingesting %d documents...\n", ndocs);
    enum { BATCH = 500 };
    me_doc_t docs[BATCH];
    char ids[BATCH][16], meta[BATCH][64];
    float *f32 = malloc((size_t)RC * D * sizeof *f32);
    uint16_t *vecs = malloc((size_t)BATCH * RC * D * sizeof *vecs);
    me_rng_t rng = { 2026 };
    double t0 = me_test_now_ms();
    for (int off = 0; off < ndocs; off += BATCH) {
        int m = ndocs - off < BATCH ? ndocs - off : BATCH;
        for (int i = 0; i < m; i++) {
            int doc = off + i;
            snprintf(ids[i], sizeof ids[i], "d%07d", doc);
            int len = snprintf(meta[i], sizeof meta[i], "{\"bucket\": %d, \"tag\": \"t%d\"}", doc % 10000, doc % 100);
            me_rng_unit_rows(&rng, f32, RC, D);
            me_f32_to_f16_n(vecs + (size_t)i * RC * D, f32, (size_t)RC * D);
            docs[i] = (me_doc_t){ .id = ids[i], .vectors = vecs + (size_t)i * RC * D, .rows = RC, .f16 = 1,
                                  .metadata = meta[i], .metadata_len = (size_t)len };
        }
        if (me_client_upsert(c, "bench", docs, (size_t)m, D, &st)) die("upsert", &st);
    }
    double ingest_s = (me_test_now_ms() - t0) / 1000.0;

    float *qv = malloc((size_t)nq * RQ * D * sizeof *qv);
    for (int i = 0; i < nq; i++) me_rng_unit_rows(&rng, qv + (size_t)i * RQ * D, RQ, D);
    double *lat = malloc((size_t)nq * sizeof *lat), *flt = malloc((size_t)nq * sizeof *flt);

    static const struct { const char *filter, *label; } rows[] = {
        { "bucket<10000", "100%" }, { "bucket<1000", "10%" }, { "bucket<100", "1%" },
        { "tag=t7", "1% (keyword)" }, { "bucket<10", "0.1%" }, { "bucket<1", "0.01%" },
    };
    enum { NR = sizeof rows / sizeof rows[0] };
    me_search_opts_t base = { .k = K }, exact = { .k = K, .exact = 1 };
    measure(c, qv, nq < 10 ? nq : 10, base, lat, flt); /* warm-up */
    /* Each filtered run right after an unfiltered one of the same kind, so
     * drift on a noisy machine lands in both sides of the ratio. */
    fig_t fc[NR], fx[NR], uc[NR], ux[NR];
    uint64_t nmatch[NR];
    double ucm[NR], uxm[NR], ucp[NR];
    for (int r = 0; r < NR; r++) {
        fprintf(stderr, "filter %s...\n", rows[r].filter);
        if (me_client_count(c, "bench", rows[r].filter, &nmatch[r], &st)) die("count", &st);
        me_search_opts_t o = base, x = exact;
        o.filter = x.filter = rows[r].filter;
        uc[r] = measure(c, qv, nq, base, lat, flt);
        fc[r] = measure(c, qv, nq, o, lat, flt);
        ux[r] = measure(c, qv, nq, exact, lat, flt);
        fx[r] = measure(c, qv, nq, x, lat, flt);
        ucm[r] = uc[r].med;
        ucp[r] = uc[r].p99;
        uxm[r] = ux[r].med;
    }
    fig_t un = uc[0], unx = ux[0];
    un.med = me_percentile(ucm, NR, 50);
    un.p99 = me_percentile(ucp, NR, 50);
    unx.med = me_percentile(uxm, NR, 50);

    printf("filtered search: %d docs, D=%d, R_c=%d, f16, synthetic unit vectors; %d queries of %d rows,\n"
           "budget (16,8), k=%d, default cascade (n1 1000, n2 400); ingest %.0f docs/s (%.1f s)\n\n",
           ndocs, D, RC, nq, RQ, K, ndocs / ingest_s, ingest_s);
    printf("| filter          | selectivity   | matching | hits/q | filter stage us | cascade median ms | p99 ms | vs unfiltered | exact median ms | vs unfiltered exact |\n");
    printf("|-----------------|---------------|----------|--------|-----------------|-------------------|--------|---------------|-----------------|---------------------|\n");
    printf("| (none)          | -             | %8d | %6.1f |               - | %17.2f | %6.2f |         1.00x | %15.2f |               1.00x |\n",
           ndocs, un.hits, un.med, un.p99, unx.med);
    for (int r = 0; r < NR; r++)
        printf("| %-15s | %-13s | %8llu | %6.1f | %15.0f | %17.2f | %6.2f | %12.2fx | %15.2f | %18.2fx |\n", rows[r].filter,
               rows[r].label, (unsigned long long)nmatch[r], fc[r].hits, fc[r].filter_us, fc[r].med, fc[r].p99,
               fc[r].med / uc[r].med, fx[r].med, fx[r].med / ux[r].med);
    printf("\nLatency measured by the client over loopback. 'vs unfiltered': the filtered median over the\n"
           "unfiltered median of the same search kind measured just before it in this run (the (none) row:\n"
           "the median of those unfiltered medians and p99s). 'matching' is the shard's Count; the filter stage is\n"
           "its own time to turn the filter into the matching slots (median).\n");

    me_client_close(c);
    me_daemon_free(&d);
    free(f32);
    free(vecs);
    free(qv);
    free(lat);
    free(flt);
    return 0;
}
