/* Encoder node throughput for query encoding (what every text search
 * costs): C clients each send one-text Encode requests (query side) to a
 * real metaembed-encoder process with the default model and 8 worker
 * threads, with dynamic batching on and off; queries/s and p50/p99 latency. Reference measured in
 * the same run: the embedder in this process on one core, one query per
 * pass and 32 per pass. Figures only; never fails on time.
 *
 *   bench_encode [--model FILE] [--seconds S] [--help]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "encoder/embedder.h"
#include "encoder/ops.h"
#include "tests/daemon.h"
#include "tests/harness.h"

static const char *g_queries[] = {
    "text editor for programmers", "real-time strategy game of ancient warfare", "library for parsing JSON",
    "tool to convert images between formats", "python bindings for the GTK toolkit",
    "documentation for the rust compiler", "mail client with a terminal interface", "fonts for CJK languages",
};
#define NQ (int)(sizeof g_queries / sizeof g_queries[0])

typedef struct {
    const char *endpoint;
    double seconds;
    double *lat;
    int nlat, cap, errors, seed;
} load_t;

static void *load_main(void *arg) {
    load_t *l = arg;
    me_status_t st;
    me_client_t *c = me_client_connect(l->endpoint, 10000, &st);
    if (!c) { l->errors++; return NULL; }
    double end = me_test_now_ms() + l->seconds * 1000;
    int qi = l->seed;
    while (me_test_now_ms() < end && l->nlat < l->cap) {
        const char *t = g_queries[qi++ % NQ];
        float *v = NULL;
        int rows, dim;
        double t0 = me_test_now_ms();
        int rc = me_client_encode(c, &t, 1, 1, &v, &rows, &dim, &st);
        double ms = me_test_now_ms() - t0;
        free(v);
        if (rc) { l->errors++; continue; }
        l->lat[l->nlat++] = ms;
    }
    me_client_close(c);
    return NULL;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Runs `nclients` closed-loop clients; prints one table row. */
static void run_load(const char *endpoint, const char *mode, int nclients, double seconds) {
    load_t *ls = calloc((size_t)nclients, sizeof *ls);
    pthread_t *th = calloc((size_t)nclients, sizeof *th);
    for (int i = 0; i < nclients; i++) {
        ls[i] = (load_t){ endpoint, seconds, NULL, 0, 200000, 0, i };
        ls[i].lat = malloc((size_t)ls[i].cap * sizeof(double));
        pthread_create(&th[i], NULL, load_main, &ls[i]);
    }
    int total = 0, errors = 0;
    for (int i = 0; i < nclients; i++) {
        pthread_join(th[i], NULL);
        total += ls[i].nlat;
        errors += ls[i].errors;
    }
    double *all = malloc((size_t)(total ? total : 1) * sizeof *all);
    int at = 0;
    for (int i = 0; i < nclients; i++) {
        memcpy(all + at, ls[i].lat, (size_t)ls[i].nlat * sizeof *all);
        at += ls[i].nlat;
        free(ls[i].lat);
    }
    qsort(all, (size_t)total, sizeof *all, cmp_d);
    double p50 = total ? all[total / 2] : 0, p99 = total ? all[(size_t)(total * 0.99)] : 0;
    printf("| %-8s | %7d | %9.1f | %7.2f | %7.2f | %6d |\n", mode, nclients, total / seconds, p50, p99, errors);
    fflush(stdout);
    free(all);
    free(ls);
    free(th);
}

/* Queries/s of the embedder in this process, one thread, `per` queries per pass. */
static double in_process(me_embedder_t *e, int per, double seconds) {
    const char *texts[32];
    for (int i = 0; i < per; i++) texts[i] = g_queries[i % NQ];
    int R = me_embedder_rows(e, ME_SIDE_QUERY), D = me_embedder_config(e)->dim;
    float *out = malloc((size_t)per * R * D * sizeof *out);
    long n = 0;
    double t0 = me_test_now_ms(), end = t0 + seconds * 1000;
    while (me_test_now_ms() < end) {
        me_embedder_encode(e, ME_SIDE_QUERY, texts, NULL, per, out);
        n += per;
    }
    free(out);
    return n / ((me_test_now_ms() - t0) / 1000);
}

int main(int argc, char **argv) {
    const char *model = "models/metaembed-default.safetensors";
    double seconds = 4;
    const me_opt_t opts[] = { { "--model", ME_OPT_STR, &model }, { "--seconds", ME_OPT_DOUBLE, &seconds },
                              { NULL, 0, NULL } };
    int code = me_bench_options(argc, argv, opts,
                                "usage: bench_encode [--model FILE] [--seconds S]\n"
                                "Query-side Encode throughput of a metaembed-encoder process, dynamic batching on "
                                "and off,\nagainst the in-process embedder on one core.\n");
    if (code >= 0) return code;
    me_embedder_t *e;
    char err[256];
    if (me_embedder_load(model, &e, err, sizeof err) != 0) {
        fprintf(stderr, "bench_encode: %s (run from the repository root, or pass --model)\n", err);
        return 1;
    }
    me_ops_set_threads(1);
    double solo1 = in_process(e, 1, seconds / 2), solo32 = in_process(e, 32, seconds / 2);
    me_embedder_free(e);
    printf("encode bench: model %s, query side, one text per request, %.0f s per row\n", model, seconds);
    printf("reference, in process on one core: %.1f queries/s one per pass, %.1f queries/s 32 per pass\n\n",
           solo1, solo32);
    printf("| batching | clients | queries/s | p50 ms  | p99 ms  | errors |\n");
    printf("|----------|---------|-----------|---------|---------|--------|\n");
    static const int clients[] = { 1, 4, 16, 64 };
    for (int mode = 0; mode < 2; mode++) {
        me_daemon_t d = { 0 };
        d.extra[d.nextra++] = "--model";
        d.extra[d.nextra++] = model;
        d.extra[d.nextra++] = mode ? "--batching=true" : "--batching=false";
        d.extra[d.nextra++] = "--threads=8";  /* room for requests to wait together */
        d.no_data_dir = 1;
        if (me_daemon_start(&d, "metaembed-encoder", mode ? "enc-batch" : "enc-solo") != 0) {
            fprintf(stderr, "bench_encode: encoder did not start (see %s)\n", d.log);
            return 1;
        }
        for (size_t c = 0; c < sizeof clients / sizeof clients[0]; c++)
            run_load(d.endpoint, mode ? "on" : "off", clients[c], seconds);
        me_daemon_stop(&d, 0);
        me_daemon_free(&d);
    }
    return 0;
}
