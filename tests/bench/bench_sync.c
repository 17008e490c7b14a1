/* The cost of durability: single-document upserts (D=128, 64 vectors,
 * f16) to a real shard, one collection per policy (none: WAL written, not
 * fsynced; group: fsynced, concurrent writers sharing one fsync;
 * every_write: each write fsynced by itself), with 1 and with 8 writers at
 * once: median and p99 latency, writes/s, and fsyncs per write for group
 * commit (from the shard's /metrics). The reference is the same run's
 * "none". Figures only; never fails on time.
 *
 *   bench_sync [--writes N] [--help]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/dtype.h"
#include "tests/daemon.h"
#include "tests/harness.h"

typedef struct {
    const me_daemon_t *d;
    const char *coll;
    int writes, who;
    double *lat;
} writer_t;

static uint16_t g_vec[64 * 128];

static void *writer(void *arg) {
    writer_t *w = arg;
    me_client_t *c = me_daemon_client(w->d);
    me_status_t st;
    char id[48];
    for (int i = 0; c && i < w->writes; i++) {
        snprintf(id, sizeof id, "w%d-d%d", w->who, i);
        me_doc_t doc = { .id = id, .vectors = g_vec, .rows = 64, .f16 = 1 };
        double t0 = me_test_now_ms();
        if (me_client_upsert(c, w->coll, &doc, 1, 128, &st)) { fprintf(stderr, "bench_sync: %s\n", st.message); exit(1); }
        w->lat[i] = me_test_now_ms() - t0;
    }
    me_client_close(c);
    return NULL;
}

/* The value of a metric line "NAME VALUE" on the shard's /metrics. */
static double metric(const me_daemon_t *d, const char *name) {
    char *body = NULL;
    double v = 0;
    if (me_test_http_get(d->metrics_port, "/metrics", &body) == 200) {
        char *p = strstr(body, name);
        while (p && p != body && p[-1] != '\n') p = strstr(p + 1, name);
        if (p) v = strtod(p + strlen(name), NULL);
    }
    free(body);
    return v;
}

static void run(const me_daemon_t *d, const char *coll, int nw, int writes, double *med, double *p99, double *rate) {
    pthread_t th[8];
    writer_t w[8];
    double *lat = malloc((size_t)(nw * writes) * sizeof *lat);
    double t0 = me_test_now_ms();
    for (int i = 0; i < nw; i++) {
        w[i] = (writer_t){ d, coll, writes, i, lat + (size_t)i * writes };
        pthread_create(&th[i], NULL, writer, &w[i]);
    }
    for (int i = 0; i < nw; i++) pthread_join(th[i], NULL);
    double el = me_test_now_ms() - t0;
    *med = me_percentile(lat, nw * writes, 50);
    *p99 = me_percentile(lat, nw * writes, 99);
    *rate = el > 0 ? nw * writes / (el / 1e3) : 0;
    free(lat);
}

int main(int argc, char **argv) {
    int writes = 300;
    const me_opt_t opts[] = { { "--writes", ME_OPT_INT, &writes }, { NULL, 0, NULL } };
    int code = me_bench_options(argc, argv, opts, "usage: bench_sync [--writes N (300)]\n");
    if (code >= 0) return code;
    me_rng_t r = { 5 };
    for (int i = 0; i < 64 * 128; i++) g_vec[i] = me_f32_to_f16((float)me_rng_normal(&r));
    me_daemon_t d = { .extra = { "--threads=8" }, .nextra = 1 };
    if (me_daemon_start(&d, "metaembed-shard", "sync") != 0) { fprintf(stderr, "bench_sync: cannot start a shard\n"); return 1; }
    me_client_t *c = me_daemon_client(&d);
    me_status_t st;
    static const char *const policies[] = { "none", "group", "every_write" };
    for (int p = 0; p < 3; p++) {
        me_collection_spec_t spec = { .name = policies[p], .dim = 128, .durability = policies[p] };
        if (!c || me_client_create_collection(c, &spec, &st)) { fprintf(stderr, "bench_sync: setup failed\n"); return 1; }
    }
    me_client_close(c);
    printf("single-document upserts (16 KiB of f16 vectors) through loopback, %d per writer:\n\n", writes);
    printf("| durability  | writers | median ms | p99 ms | writes/s | vs none (writes/s) | fsyncs per write |\n");
    printf("|-------------|---------|-----------|--------|----------|--------------------|------------------|\n");
    for (int nw = 1; nw <= 8; nw *= 8) {
        double base = 0;
        for (int p = 0; p < 3; p++) {
            double s0 = metric(&d, "metaembed_group_commit_fsyncs_total "), g0 = metric(&d, "metaembed_group_commit_writes_total ");
            double med, p99, rate;
            run(&d, policies[p], nw, writes, &med, &p99, &rate);
            double s1 = metric(&d, "metaembed_group_commit_fsyncs_total "), g1 = metric(&d, "metaembed_group_commit_writes_total ");
            if (p == 0) base = rate;
            char per[32] = "–";
            if (p == 1 && g1 > g0) snprintf(per, sizeof per, "%.2f", (s1 - s0) / (g1 - g0));
            else if (p == 2) snprintf(per, sizeof per, "1");
            else if (p == 0) snprintf(per, sizeof per, "0");
            printf("| %-11s | %7d | %9.3f | %6.3f | %8.0f | %17.2fx | %16s |\n", policies[p], nw, med, p99, rate,
                   base > 0 ? rate / base : 0, per);
        }
    }
    me_daemon_free(&d);
    return 0;
}
