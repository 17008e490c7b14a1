/* A bounded load soak on loopback (issue 7): a coordinator and 2 shard
 * groups take mixed traffic at a fixed rate — a writer upserting 10
 * documents every 50 ms over a fixed set of 2,000 ids (so the data stops
 * growing after the first pass), and 2 searchers at 100 searches/s each
 * over every budget — for ME_SOAK_SECONDS (20 in make check, 300 in make
 * soak). Per window: operations, errors, search p50/p99, and each
 * process's RSS (for shards also less RocksDB's memtables, which fill with
 * every write until a flush). Asserts no errors, every id stored, and RSS
 * at half time vs at the end within noise. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/cluster.h"
#include "tests/daemon.h"
#include "tests/harness.h"
#include "tests/synthetic.h"

#define DIM 32
#define ROWS 8
#define IDS 2000
#define WBATCH 10
#define MAXW 64

typedef struct {
    const char *endpoint;
    atomic_int *stop;
    int writer, seed;
    double start_ms, window_ms;
    /* per window */
    long ops[MAXW], errors[MAXW];
    double *lat[MAXW];
    int nlat[MAXW], cap;
} worker_t;

static void *worker_main(void *arg) {
    worker_t *w = arg;
    me_status_t st;
    me_client_t *c = me_client_connect(w->endpoint, 5000, &st);
    if (!c) { w->errors[0]++; return NULL; }
    me_client_set_timeout(c, 2000);
    me_synth_t p = me_synth_default(DIM, ROWS, 9);
    float q[4 * DIM];
    float *v = malloc((size_t)WBATCH * ROWS * DIM * sizeof *v);
    char ids[WBATCH][24];
    me_doc_t docs[WBATCH];
    static const int budgets[][2] = { { 1, 1 }, { 2, 4 }, { 4, 8 }, { 4, 8 } };
    double period = w->writer ? 50.0 : 10.0, next = me_test_now_ms();
    long n = 0;
    while (!atomic_load(w->stop)) {
        /* Fixed rate: sleep to the next tick; a late tick runs at once. */
        double now = me_test_now_ms();
        if (now < next) { usleep((useconds_t)((next - now) * 1000)); continue; }
        next += period;
        int win = (int)((now - w->start_ms) / w->window_ms);
        if (win >= MAXW) win = MAXW - 1;
        int rc;
        double t0 = me_test_now_ms();
        if (w->writer) {
            for (int i = 0; i < WBATCH; i++) {
                int id = (int)((n * WBATCH + i) % IDS);
                me_synth_doc(&p, (uint64_t)(id + n / (IDS / WBATCH) * 7919), v + (size_t)i * ROWS * DIM);
                snprintf(ids[i], sizeof ids[i], "doc-%05d", id);
                docs[i] = (me_doc_t){ .id = ids[i], .vectors = v + (size_t)i * ROWS * DIM, .rows = ROWS };
            }
            rc = me_client_upsert(c, "c", docs, WBATCH, DIM, &st);
        } else {
            me_synth_query(&p, (uint64_t)((n * 31 + w->seed) % IDS), (uint64_t)n, 4, q);
            const int *b = budgets[n % 4];
            me_search_opts_t o = { .r_q = b[0], .r_c = b[1], .k = 10 };
            me_results_t res;
            rc = me_client_search(c, "c", q, 4, DIM, &o, &res, &st);
            if (rc == 0) {
                if (res.partial) rc = -1;
                me_results_free(&res);
            }
        }
        double ms = me_test_now_ms() - t0;
        n++;
        w->ops[win]++;
        if (rc) {
            w->errors[win]++;
            fprintf(stderr, "    %s error: %s\n", w->writer ? "upsert" : "search", rc < 0 ? "partial" : st.message);
        } else if (!w->writer && w->nlat[win] < w->cap) {
            w->lat[win][w->nlat[win]++] = ms;
        }
    }
    free(v);
    me_client_close(c);
    return NULL;
}

/* RocksDB's memtables in a shard, MB, from its /metrics. */
static double memtable_mb(int metrics_port) {
    char *body = NULL;
    double v = 0;
    if (me_test_http_get(metrics_port, "/metrics", &body) == 200 && body) {
        const char *p = strstr(body, "\nmetaembed_rocksdb_memtable_bytes ");
        if (p) v = strtod(p + strlen("\nmetaembed_rocksdb_memtable_bytes "), NULL) / (1 << 20);
    }
    free(body);
    return v;
}

static double rss_mb(pid_t pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
    FILE *f = fopen(path, "r");
    long long pages = 0, resident = 0;
    if (!f) return -1;
    if (fscanf(f, "%lld %lld", &pages, &resident) != 2) resident = 0;
    fclose(f);
    return (double)resident * (double)sysconf(_SC_PAGESIZE) / (1 << 20);
}

TEST(load_soak_fixed_rate_mixed_traffic_no_errors_flat_rss) {
    int seconds = getenv("ME_SOAK_SECONDS") ? atoi(getenv("ME_SOAK_SECONDS")) : 20;
    if (seconds < 10) seconds = 10;
    /* ASan keeps freed memory in quarantine (256 MiB by default), which
     * would read as growth: a small one for the daemons started here. */
    setenv("ASAN_OPTIONS", "quarantine_size_mb=8:detect_leaks=0", 1);
    cluster_t c;
    ASSERT_OK(cluster_start(&c, 2, 1, NULL));
    me_client_t *cli = cluster_client(&c, DIM, ROWS);
    ASSERT_TRUE(cli != NULL);
    me_status_t st;

    int windows = 10;
    double window_ms = seconds * 1000.0 / windows;
    atomic_int stop = 0;
    worker_t ws[3];
    pthread_t th[3];
    double start = me_test_now_ms();
    for (int i = 0; i < 3; i++) {
        memset(&ws[i], 0, sizeof ws[i]);
        ws[i] = (worker_t){ .endpoint = c.coord.endpoint, .stop = &stop, .writer = i == 0, .seed = i * 101,
                            .start_ms = start, .window_ms = window_ms, .cap = 100000 };
        for (int k = 0; k < MAXW; k++) ws[i].lat[k] = malloc((size_t)ws[i].cap * sizeof(double));
        pthread_create(&th[i], NULL, worker_main, &ws[i]);
    }
    /* rss[k][p]; for the shards also RSS less RocksDB's memtables, which
     * grow with every write until a flush (64 MiB per column family) and
     * are not a leak. */
    double rss[MAXW][3], own[MAXW][3];
    pid_t pids[3] = { c.coord.pid, c.shards[0].pid, c.shards[1].pid };
    int mports[3] = { 0, c.shards[0].metrics_port, c.shards[1].metrics_port };
    for (int k = 0; k < windows; k++) {
        double until = start + (k + 1) * window_ms;
        while (me_test_now_ms() < until) usleep(20000);
        for (int p = 0; p < 3; p++) {
            rss[k][p] = rss_mb(pids[p]);
            own[k][p] = rss[k][p] - (p ? memtable_mb(mports[p]) : 0);
        }
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
    unsetenv("ASAN_OPTIONS");

    printf("    %d s, %d windows: writer 200 docs/s over %d ids, 2 searchers at 100/s each\n", seconds, windows, IDS);
    printf("    | window | upserts | searches | errors | p50 ms | p99 ms | RSS coord MB | RSS g0 MB (less memtables) | RSS g1 MB (less memtables) |\n");
    long total_errors = 0, total_ops = 0;
    for (int k = 0; k < windows; k++) {
        double *all = malloc(200000 * sizeof *all);
        int n = 0;
        long errors = 0, searches = 0;
        for (int i = 0; i < 3; i++) {
            errors += ws[i].errors[k];
            total_ops += ws[i].ops[k];
            if (!ws[i].writer) {
                searches += ws[i].ops[k];
                memcpy(all + n, ws[i].lat[k], (size_t)ws[i].nlat[k] * sizeof *all);
                n += ws[i].nlat[k];
            }
        }
        total_errors += errors;
        printf("    | %6d | %7ld | %8ld | %6ld | %6.2f | %6.2f | %12.1f | %12.1f (%5.1f) | %12.1f (%5.1f) |\n", k + 1,
               ws[0].ops[k], searches, errors, me_percentile(all, n, 50), me_percentile(all, n, 99), rss[k][0],
               rss[k][1], own[k][1], rss[k][2], own[k][2]);
        free(all);
    }
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < MAXW; k++) free(ws[i].lat[k]);
    ASSERT_EQ(total_errors, 0);
    /* The fixed rate was held (within 10%: a slow CI box may skip ticks). */
    ASSERT_TRUE(total_ops > (long)(seconds * 220 * 0.9));
    /* RSS at half time (warm: every thread's allocator arena and the
     * sockets' buffers are in use by then) vs at the end: a leak grows
     * steadily and shows in the second half too. */
    int mid = windows / 2 - 1, end = windows - 1;
    printf("    RSS half time -> end: coordinator %.1f -> %.1f MB; shards less memtables %.1f -> %.1f and "
           "%.1f -> %.1f MB\n", rss[mid][0], rss[end][0], own[mid][1], own[end][1], own[mid][2], own[end][2]);
    for (int p = 0; p < 3; p++) ASSERT_TRUE(own[end][p] <= own[mid][p] * 1.10 + 4);

    /* Every id the writer reached is stored, once. */
    me_collection_info_t *info;
    size_t ninfo;
    ASSERT_OK(me_client_list_collections(cli, &info, &ninfo, &st));
    ASSERT_EQ(ninfo, 1);
    long written = ws[0].ops[0];
    for (int k = 1; k < MAXW; k++) written += ws[0].ops[k];
    uint64_t expect = (uint64_t)(written * WBATCH < IDS ? written * WBATCH : IDS);
    ASSERT_EQ(info[0].documents, expect);
    free(info);
    me_client_close(cli);
    cluster_stop(&c);
}
