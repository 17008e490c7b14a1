/* Bulk ingest into one real metaembed-shard at scale, with the coarse index
 * being maintained: N synthetic nested documents (tests/synthetic.h, D=128,
 * R_c=64, f16) upserted in batches of 256 over loopback, generated while
 * the previous batch is in flight (two threads: generation is the slow
 * part here). Prints documents/s per tenth of the run (the shard's RAM and
 * RocksDB grow as it goes), the overall rate, and, for --coarse-index ivf,
 * when the background indexer had each index ready (it retrains as the
 * collection grows 4-fold) and how long after the last write the final one
 * was. Figures only; never fails on time.
 *
 *   bench_ingest [--docs N] [--coarse-index flat|ivf] [--binary-coarse] [--json] [--help]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/json.h"
#include "tests/daemon.h"
#include "tests/harness.h"
#include "tests/synthetic.h"

#define D 128
#define RC 64
#define BATCH 256
#define TENTHS 10

static void die(const char *what, const me_status_t *st) {
    fprintf(stderr, "bench_ingest: %s: %s\n", what, st ? st->message : "");
    exit(1);
}

/* The shard's gauge for collection "bench", or -1. */
static long metric(const me_daemon_t *d, const char *name) {
    char *body = NULL, key[128];
    long v = -1;
    snprintf(key, sizeof key, "%s{collection=\"bench\"} ", name);
    if (me_test_http_get(d->metrics_port, "/metrics", &body) == 200 && body) {
        const char *p = strstr(body, key);
        if (p) v = atol(p + strlen(key));
    }
    free(body);
    return v;
}

typedef struct {
    const me_daemon_t *d;
    volatile int stop;
    double t0;
    long builds;                 /* indexes completed so far */
    double ready_ms[16];         /* when each completed, ms after t0 */
    long lists[16];
} watch_t;

/* Polls /metrics every 100 ms for completed index builds. */
static void *watch_main(void *arg) {
    watch_t *w = arg;
    while (!w->stop) {
        long b = metric(w->d, "metaembed_coarse_index_builds_total");
        if (b > w->builds && w->builds < 16) {
            w->ready_ms[w->builds] = me_test_now_ms() - w->t0;
            w->lists[w->builds] = metric(w->d, "metaembed_coarse_index_lists");
            w->builds++;
        }
        usleep(100 * 1000);
    }
    return NULL;
}

int main(int argc, char **argv) {
    int ndocs = 200000, json = 0, bits = 0;
    const char *coarse = "ivf";
    const me_opt_t opts[] = { { "--docs", ME_OPT_INT, &ndocs },
                              { "--coarse-index", ME_OPT_STR, &coarse },
                              { "--binary-coarse", ME_OPT_FLAG, &bits },
                              { "--json", ME_OPT_FLAG, &json },
                              { NULL, 0, NULL } };
    int code = me_bench_options(argc, argv, opts,
                                "usage: bench_ingest [--docs N (200000)] [--coarse-index flat|ivf (ivf)] [--binary-coarse]\n"
                                "                    [--json]\n"
                                "Starts metaembed-shard from $ME_BIN (or next to this binary) and upserts N synthetic\n"
                                "documents (64 x 128, f16) in batches of 256: documents/s per tenth of the run, and\n"
                                "when the IVF index was ready. Needs about N x 16.6 KB of RAM in the shard and as\n"
                                "much disk. Figures only.\n");
    if (code >= 0) return code;
    if (ndocs < BATCH * TENTHS || (strcmp(coarse, "flat") && strcmp(coarse, "ivf"))) {
        fprintf(stderr, "bench_ingest: need --docs >= %d and --coarse-index flat or ivf\n", BATCH * TENTHS);
        return 2;
    }
    me_synth_t p = me_synth_default(D, RC, 2026);
    me_daemon_t d = { 0 };
    if (me_daemon_start(&d, "metaembed-shard", "ingest") != 0) die("cannot start metaembed-shard", NULL);
    me_client_t *c = me_daemon_client(&d);
    if (!c) die("cannot connect", NULL);
    me_client_set_timeout(c, 600000);
    me_status_t st;
    me_collection_spec_t spec = { .name = "bench", .dim = D, .max_doc_vectors = RC, .max_query_vectors = 16,
                                  .coarse_index = coarse, .binary_coarse = bits };
    if (me_client_create_collection(c, &spec, &st)) die("create", &st);

    uint16_t *buf[2];
    for (int i = 0; i < 2; i++)
        if (!(buf[i] = malloc((size_t)BATCH * RC * D * sizeof *buf[i]))) die("out of memory", NULL);
    watch_t w = { .d = &d, .t0 = me_test_now_ms() };
    pthread_t wt;
    pthread_create(&wt, NULL, watch_main, &w);
    double tenth_ms[TENTHS], gen_ms = 0, t_last = w.t0;
    int tenth = 0;
    me_doc_t docs[BATCH];
    char ids[BATCH][16];
    me_synth_docs_f16(&p, 0, BATCH, buf[0], 2);
    for (int off = 0, cur = 0; off < ndocs; off += BATCH, cur ^= 1) {
        int m = ndocs - off < BATCH ? ndocs - off : BATCH;
        for (int i = 0; i < m; i++) {
            snprintf(ids[i], sizeof ids[i], "d%07d", off + i);
            docs[i] = (me_doc_t){ .id = ids[i], .vectors = buf[cur] + (size_t)i * RC * D, .rows = RC, .f16 = 1 };
        }
        if (me_client_upsert(c, "bench", docs, (size_t)m, D, &st)) die("upsert", &st);
        /* The next batch (the shard has already stored this one: upserts are synchronous). */
        double g0 = me_test_now_ms();
        if (off + BATCH < ndocs) {
            int next = ndocs - off - BATCH < BATCH ? ndocs - off - BATCH : BATCH;
            me_synth_docs_f16(&p, (uint64_t)(off + BATCH), (size_t)next, buf[cur ^ 1], 2);
        }
        gen_ms += me_test_now_ms() - g0;
        if (off + m >= (long long)ndocs * (tenth + 1) / TENTHS && tenth < TENTHS) {
            double now = me_test_now_ms();
            tenth_ms[tenth++] = now - t_last;
            t_last = now;
            fprintf(stderr, "\r  %d / %d documents", off + m, ndocs);
        }
    }
    double end = me_test_now_ms(), total_ms = end - w.t0;
    fprintf(stderr, "\n");
    /* The final index (ivf): wait for the indexer to finish with what is stored. */
    double final_after = 0;
    int final_ok = 0;
    if (!strcmp(coarse, "ivf"))
        for (int i = 0; i < 6000; i++) {
            if (metric(&d, "metaembed_coarse_index_building") == 0 && w.builds > 0 &&
                metric(&d, "metaembed_coarse_index_builds_total") == w.builds) {
                final_after = (w.ready_ms[w.builds - 1] + w.t0 - end) / 1e3;
                if (final_after < 0) final_after = 0;  /* ready before the last write */
                final_ok = 1;
                break;
            }
            usleep(100 * 1000);
        }
    w.stop = 1;
    pthread_join(wt, NULL);
    me_collection_info_t *info;
    size_t ninfo;
    if (me_client_list_collections(c, &info, &ninfo, &st) || ninfo != 1) die("list", &st);
    double ram = (double)info[0].ram_bytes / ndocs;
    long docs_held = (long)info[0].documents;
    free(info);
    /* Time spent generating is the client's; the shard's rate excludes it. */
    double shard_rate = ndocs / ((total_ms - gen_ms) / 1e3);
    if (json) {
        me_json_writer_t jw;
        me_json_writer_init_file(&jw, stdout);
        me_json_obj_begin(&jw, NULL);
        me_json_put_int(&jw, "docs", ndocs);
        me_json_put_str(&jw, "coarse_index", coarse);
        me_json_put_bool(&jw, "binary_coarse", bits);
        me_json_put_num(&jw, "seconds", total_ms / 1e3);
        me_json_put_num(&jw, "docs_per_s", ndocs / (total_ms / 1e3));
        me_json_put_num(&jw, "shard_docs_per_s", shard_rate);
        me_json_put_num(&jw, "ram_bytes_per_doc", ram);
        me_json_arr_begin(&jw, "tenths_docs_per_s");
        for (int i = 0; i < tenth; i++) me_json_put_num(&jw, NULL, (double)ndocs / TENTHS / (tenth_ms[i] / 1e3));
        me_json_arr_end(&jw);
        me_json_arr_begin(&jw, "index_ready");
        for (long i = 0; i < w.builds; i++) {
            me_json_obj_begin(&jw, NULL);
            me_json_put_num(&jw, "seconds", w.ready_ms[i] / 1e3);
            me_json_put_int(&jw, "lists", (int)w.lists[i]);
            me_json_obj_end(&jw);
        }
        me_json_arr_end(&jw);
        if (final_ok) me_json_put_num(&jw, "final_index_after_last_write_s", final_after);
        me_json_obj_end(&jw);
        me_json_writer_free(&jw);
        printf("\n");
    } else {
        printf("bulk ingest: %d docs (%ld held), D=%d, R_c=%d, f16, batches of %d, one shard (%s coarse index%s), "
               "loopback\n", ndocs, docs_held, D, RC, BATCH, coarse, bits ? ", sign bits" : "");
        printf("overall %.0f docs/s (%.1f s); the shard's share, client-side generation excluded: %.0f docs/s; "
               "RAM %.0f bytes/doc\n\n", ndocs / (total_ms / 1e3), total_ms / 1e3, shard_rate, ram);
        printf("| documents stored | docs/s over that tenth (generation included) |\n|---:|---:|\n");
        for (int i = 0; i < tenth; i++)
            printf("| %lld | %.0f |\n", (long long)ndocs * (i + 1) / TENTHS, (double)ndocs / TENTHS / (tenth_ms[i] / 1e3));
        if (!strcmp(coarse, "ivf")) {
            printf("\nIVF indexes completed (background, while ingesting):\n");
            for (long i = 0; i < w.builds; i++)
                printf("  %ld: %ld lists, ready %.1f s after the first write\n", i + 1, w.lists[i], w.ready_ms[i] / 1e3);
            if (final_ok) printf("the last was ready %.1f s after the last write\n", final_after);
            else printf("the index for the final size was not ready within 10 minutes of the last write\n");
        }
    }
    me_client_close(c);
    me_daemon_free(&d);
    free(buf[0]);
    free(buf[1]);
    return 0;
}
