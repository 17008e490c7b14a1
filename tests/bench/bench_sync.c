/* The cost of --sync: median and p99 latency of single-document upserts
 * (D=128, 64 vectors, f16) to a real shard with the WAL fsynced per write
 * and without. Figures only; never fails on time.
 *
 *   bench_sync [--writes N] [--help]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/dtype.h"
#include "tests/daemon.h"
#include "tests/harness.h"

static void run(int sync, int writes, double *med, double *p99) {
    me_daemon_t d = { .extra = { sync ? "--sync" : "--no-sync" }, .nextra = 1 };
    if (me_daemon_start(&d, "metaembed-shard", "sync") != 0) { fprintf(stderr, "bench_sync: cannot start a shard\n"); exit(1); }
    me_client_t *c = me_daemon_client(&d);
    me_status_t st;
    me_collection_spec_t spec = { .name = "s", .dim = 128 };
    if (!c || me_client_create_collection(c, &spec, &st)) { fprintf(stderr, "bench_sync: setup failed\n"); exit(1); }
    uint16_t v[64 * 128];
    me_rng_t r = { 5 };
    for (int i = 0; i < 64 * 128; i++) v[i] = me_f32_to_f16((float)me_rng_normal(&r));
    double *lat = malloc((size_t)writes * sizeof *lat);
    char id[32];
    for (int i = 0; i < writes; i++) {
        snprintf(id, sizeof id, "d%d", i);
        me_doc_t doc = { .id = id, .vectors = v, .rows = 64, .f16 = 1 };
        double t0 = me_test_now_ms();
        if (me_client_upsert(c, "s", &doc, 1, 128, &st)) { fprintf(stderr, "bench_sync: %s\n", st.message); exit(1); }
        lat[i] = me_test_now_ms() - t0;
    }
    *med = me_percentile(lat, writes, 50);
    *p99 = me_percentile(lat, writes, 99);
    free(lat);
    me_client_close(c);
    me_daemon_free(&d);
}

int main(int argc, char **argv) {
    int writes = 300;
    const me_opt_t opts[] = { { "--writes", ME_OPT_INT, &writes }, { NULL, 0, NULL } };
    int code = me_bench_options(argc, argv, opts, "usage: bench_sync [--writes N (300)]\n");
    if (code >= 0) return code;
    double m0, p0, m1, p1;
    run(0, writes, &m0, &p0);
    run(1, writes, &m1, &p1);
    printf("single-document upserts (16 KiB of f16 vectors), %d each, through loopback:\n", writes);
    printf("| WAL policy        | median ms | p99 ms |\n|-------------------|-----------|--------|\n");
    printf("| no fsync (default) | %9.3f | %6.3f |\n| --sync (fsync)     | %9.3f | %6.3f |\n", m0, p0, m1, p1);
    printf("--sync costs %.2fx the median write latency here\n", m0 > 0 ? m1 / m0 : 0);
    return 0;
}
