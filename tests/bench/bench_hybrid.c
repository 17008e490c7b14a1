/* Search-mode latency benchmark: a real metaembed-shard process on loopback
 * holding N real Debian documents (the data file's first N distinct ids, via
 * me_dataset_locate) whose metadata carries the real "text", so the shard's
 * BM25 index has real postings; their vectors are synthetic random unit
 * vectors (D=128, 16 rows per document, f16). Queries: Q of the loaded
 * documents' real "query" texts as lexical_text, with random unit query
 * vectors (16 rows). Measures, per mode and budget, the client's latency
 * over loopback (median, p99) and the ratio to dense at the same budget,
 * measured in the same run. Figures only; never fails on time.
 *
 *   bench_hybrid [--docs N] [--queries Q] [--help]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/dtype.h"
#include "common/json.h"
#include "encoder/dataset.h"
#include "tests/daemon.h"
#include "tests/harness.h"

#define D 128
#define RC 16
#define RQ 16
#define K 10
#define TEXT_CAP 16000 /* bytes of text kept per document (metadata limit 64 KiB) */

static const int budgets[][2] = { { 1, 1 }, { 4, 8 }, { 16, 16 } };
#define NB (int)(sizeof budgets / sizeof budgets[0])

static void die(const char *what, const me_status_t *st) {
    fprintf(stderr, "bench_hybrid: %s: %s\n", what, st ? st->message : "");
    exit(1);
}

/* Runs every query once with o; fills median and p99 (ms). */
static void measure(me_client_t *c, const float *qv, char **qtext, int nq, me_search_opts_t o, double *lat,
                    double *med, double *p99) {
    me_status_t st;
    for (int qi = 0; qi < nq; qi++) {
        me_results_t res;
        o.lexical_text = qtext[qi];
        const float *q = o.mode == ME_MODE_LEXICAL ? NULL : qv + (size_t)qi * RQ * D;
        double t0 = me_test_now_ms();
        if (me_client_search(c, "bench", q, q ? RQ : 0, D, &o, &res, &st)) die("search", &st);
        lat[qi] = me_test_now_ms() - t0;
        me_results_free(&res);
    }
    *med = me_percentile(lat, nq, 50);
    *p99 = me_percentile(lat, nq, 99);
}

int main(int argc, char **argv) {
    int ndocs = 20000, nq = 200;
    const me_opt_t opts[] = { { "--docs", ME_OPT_INT, &ndocs }, { "--queries", ME_OPT_INT, &nq }, { NULL, 0, NULL } };
    int code = me_bench_options(argc, argv, opts,
                                "usage: bench_hybrid [--docs N (20000)] [--queries Q (200)]\n"
                                "Starts metaembed-shard from $ME_BIN (or next to this binary), loads N Debian\n"
                                "documents (real text, synthetic vectors) and measures dense, lexical and\n"
                                "hybrid search latency; prints figures only.\n");
    if (code >= 0) return code;
    if (ndocs < 100 || nq < 1 || nq > ndocs) {
        fprintf(stderr, "bench_hybrid: need --docs >= 100 and 1 <= --queries <= docs\n");
        return 2;
    }

    char path[1024], err[256];
    if (me_dataset_locate(NULL, path, sizeof path) != 0) {
        printf("bench_hybrid: skipped, data file not found (%s); set METAEMBED_DATA\n", path);
        return 0; /* `make bench` goes on with the others */
    }
    me_dataset_t *ds;
    fprintf(stderr, "loading %s...\n", path);
    if (me_dataset_load(path, 1, &ds, err, sizeof err) != 0) {
        fprintf(stderr, "bench_hybrid: %s\n", err);
        return 1;
    }
    /* The first ndocs records with distinct ids, in file order. */
    size_t *pick = malloc((size_t)ndocs * sizeof *pick);
    int n = 0;
    for (size_t i = 0; i < ds->n && n < ndocs; i++)
        if (me_dataset_find(ds, ds->recs[i].id) == (long)i) pick[n++] = i;
    if (n < ndocs) {
        fprintf(stderr, "bench_hybrid: only %d distinct documents\n", n);
        ndocs = n;
    }

    me_daemon_t d = { 0 };
    if (me_daemon_start(&d, "metaembed-shard", "bench-hybrid") != 0) die("cannot start metaembed-shard", NULL);
    me_client_t *c = me_daemon_client(&d);
    if (!c) die("cannot connect", NULL);
    me_client_set_timeout(c, 600000);
    me_status_t st;
    me_collection_spec_t spec = { .name = "bench", .dim = D, .max_doc_vectors = RC, .max_query_vectors = RQ };
    if (me_client_create_collection(c, &spec, &st)) die("create", &st);

    fprintf(stderr, "ingesting %d documents...\n", ndocs);
    enum { BATCH = 256 };
    me_doc_t docs[BATCH];
    char *meta[BATCH];
    float *f32 = malloc((size_t)RC * D * sizeof *f32);
    uint16_t *vecs = malloc((size_t)BATCH * RC * D * sizeof *vecs);
    me_rng_t rng = { 2026 };
    size_t text_bytes = 0;
    int cut = 0;
    double t0 = me_test_now_ms();
    for (int off = 0; off < ndocs; off += BATCH) {
        int m = ndocs - off < BATCH ? ndocs - off : BATCH;
        for (int i = 0; i < m; i++) {
            const me_datarec_t *r = &ds->recs[pick[off + i]];
            size_t tl = r->text_len;
            if (tl > TEXT_CAP) {
                tl = TEXT_CAP;
                while (tl > 0 && ((unsigned char)r->text[tl] & 0xC0) == 0x80) tl--; /* character boundary */
                cut++;
            }
            text_bytes += tl;
            me_json_writer_t w;
            me_json_writer_init_buf(&w);
            me_json_obj_begin(&w, NULL);
            me_json_put_strn(&w, "text", r->text, tl);
            me_json_obj_end(&w);
            size_t len;
            meta[i] = me_json_writer_take(&w, &len);
            if (!meta[i]) die("metadata", NULL);
            me_rng_unit_rows(&rng, f32, RC, D);
            me_f32_to_f16_n(vecs + (size_t)i * RC * D, f32, (size_t)RC * D);
            docs[i] = (me_doc_t){ .id = r->id, .vectors = vecs + (size_t)i * RC * D, .rows = RC, .f16 = 1,
                                  .metadata = meta[i], .metadata_len = len };
        }
        if (me_client_upsert(c, "bench", docs, (size_t)m, D, &st)) die("upsert", &st);
        for (int i = 0; i < m; i++) free(meta[i]);
    }
    double ingest_s = (me_test_now_ms() - t0) / 1000.0;

    /* Queries: nq of the loaded documents' query texts, evenly spaced. */
    float *qv = malloc((size_t)nq * RQ * D * sizeof *qv);
    char **qtext = malloc((size_t)nq * sizeof *qtext);
    for (int i = 0; i < nq; i++) {
        qtext[i] = (char *)ds->recs[pick[(size_t)i * (size_t)ndocs / (size_t)nq]].query;
        me_rng_unit_rows(&rng, qv + (size_t)i * RQ * D, RQ, D);
    }
    double *lat = malloc((size_t)nq * sizeof *lat);

    /* Warm-up: one pass of each mode, not counted. */
    {
        double a, b;
        me_search_opts_t w = { .r_q = 4, .r_c = 8, .k = K };
        measure(c, qv, qtext, nq < 20 ? nq : 20, w, lat, &a, &b);
        w.mode = ME_MODE_LEXICAL;
        measure(c, qv, qtext, nq < 20 ? nq : 20, w, lat, &a, &b);
        w.mode = ME_MODE_HYBRID;
        measure(c, qv, qtext, nq < 20 ? nq : 20, w, lat, &a, &b);
    }

    double dense_med[NB], dense_p99[NB], rrf_med[NB], rrf_p99[NB], wt_med[NB], wt_p99[NB], lex_med, lex_p99;
    fprintf(stderr, "lexical...\n");
    measure(c, qv, qtext, nq, (me_search_opts_t){ .k = K, .mode = ME_MODE_LEXICAL }, lat, &lex_med, &lex_p99);
    for (int b = 0; b < NB; b++) {
        int r_q = budgets[b][0], r_c = budgets[b][1];
        fprintf(stderr, "budget (%d,%d)...\n", r_q, r_c);
        measure(c, qv, qtext, nq, (me_search_opts_t){ .r_q = r_q, .r_c = r_c, .k = K }, lat, &dense_med[b], &dense_p99[b]);
        measure(c, qv, qtext, nq,
                (me_search_opts_t){ .r_q = r_q, .r_c = r_c, .k = K, .mode = ME_MODE_HYBRID, .fusion = ME_FUSION_RRF },
                lat, &rrf_med[b], &rrf_p99[b]);
        measure(c, qv, qtext, nq,
                (me_search_opts_t){ .r_q = r_q, .r_c = r_c, .k = K, .mode = ME_MODE_HYBRID,
                                    .fusion = ME_FUSION_WEIGHTED, .has_alpha = 1, .alpha = 0.5f },
                lat, &wt_med[b], &wt_p99[b]);
    }

    printf("search modes: %d Debian docs (real text, %.0f bytes/doc avg, %d cut at %d B), D=%d, R_c=%d, f16,\n"
           "synthetic unit vectors; %d queries (real query texts, random unit vectors, %d rows), k=%d,\n"
           "default cascade, hybrid_candidates 100 (default); ingest %.0f docs/s (%.1f s)\n\n",
           ndocs, (double)text_bytes / ndocs, cut, TEXT_CAP, D, RC, nq, RQ, K, ndocs / ingest_s, ingest_s);
    printf("| mode             | budget  | median ms | p99 ms | vs dense |\n");
    printf("|------------------|---------|-----------|--------|----------|\n");
    printf("| lexical (BM25)   | -       | %9.2f | %6.2f |        - |\n", lex_med, lex_p99);
    for (int b = 0; b < NB; b++) {
        char bud[16];
        snprintf(bud, sizeof bud, "(%d,%d)", budgets[b][0], budgets[b][1]);
        printf("| dense            | %-7s | %9.2f | %6.2f |    1.00x |\n", bud, dense_med[b], dense_p99[b]);
        printf("| hybrid RRF       | %-7s | %9.2f | %6.2f | %7.2fx |\n", bud, rrf_med[b], rrf_p99[b],
               rrf_med[b] / dense_med[b]);
        printf("| hybrid weighted  | %-7s | %9.2f | %6.2f | %7.2fx |\n", bud, wt_med[b], wt_p99[b],
               wt_med[b] / dense_med[b]);
    }
    printf("\nvs dense: median over dense's median at the same budget. Lexical has no budget; its median\n"
           "over dense's:");
    for (int b = 0; b < NB; b++) printf("%s(%d,%d) %.2fx", b ? ", " : " ", budgets[b][0], budgets[b][1], lex_med / dense_med[b]);
    printf(".\nLatency measured by the client over loopback.\n");

    me_client_close(c);
    me_daemon_free(&d);
    me_dataset_free(ds);
    free(pick);
    free(f32);
    free(vecs);
    free(qv);
    free(qtext);
    free(lat);
    return 0;
}
