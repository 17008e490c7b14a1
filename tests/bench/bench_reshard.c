/* Online resharding benchmark: a real cluster of 3 shard groups (1 replica
 * each), the third standby, N documents (D=128, R_c=8, f16, synthetic
 * nested data) on the first two; then a move 2 -> 3 groups with no rate
 * limit. Prints search latency (default cascade, k=10, 4 query rows, one
 * client in a closed loop) before, during and after the move, and the
 * move's time, documents moved (docs/s) and purged. Figures only; fails
 * only when the move stops with an error (or a search fails), never on time.
 *
 *   bench_reshard [--docs N] [--searches S] [--json] [--help]
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/cluster.h"
#include "tests/harness.h"
#include "tests/synthetic.h"

#define D 128
#define RC 8
#define RQ 4
#define NQ 64
#define K 10
#define FROM 2
#define TO 3

static float g_queries[NQ * RQ * D];

static void die(const char *what, const me_status_t *st) {
    fprintf(stderr, "bench_reshard: %s%s%s\n", what, st ? ": " : "", st ? st->message : "");
    exit(1);
}

/* Latencies (ms) of one phase. */
typedef struct {
    double *lat;
    int n, cap;
    int errors;
    char last_error[600];
    double median, p95;
} phase_t;

static void phase_add(phase_t *p, double ms) {
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 1024;
        p->lat = realloc(p->lat, (size_t)p->cap * sizeof *p->lat);
        if (!p->lat) die("out of memory", NULL);
    }
    p->lat[p->n++] = ms;
}

static void phase_finish(phase_t *p) {
    p->median = me_percentile(p->lat, p->n, 50);
    p->p95 = me_percentile(p->lat, p->n, 95);
}

/* One default-cascade search (exact=0, full budget), k=10; its latency
 * goes into p, or its failure into p->errors. */
static void search_once(me_client_t *c, unsigned qi, phase_t *p) {
    me_search_opts_t o = { .k = K };
    me_results_t res;
    me_status_t st;
    double t0 = me_test_now_ms();
    int rc = me_client_search(c, "c", g_queries + (size_t)(qi % NQ) * RQ * D, RQ, D, &o, &res, &st);
    double ms = me_test_now_ms() - t0;
    if (rc) {
        p->errors++;
        snprintf(p->last_error, sizeof p->last_error, "%s", st.message);
        return;
    }
    me_results_free(&res);
    phase_add(p, ms);
}

/* n sequential searches after a short unrecorded warm-up. */
static void closed_loop(const char *endpoint, int n, phase_t *p) {
    me_status_t st;
    me_client_t *c = me_client_connect(endpoint, 5000, &st);
    if (!c) die("connect", &st);
    phase_t warm = { 0 };
    for (int i = 0; i < 10; i++) search_once(c, (unsigned)i, &warm);
    free(warm.lat);
    for (int i = 0; i < n; i++) search_once(c, (unsigned)i, p);
    me_client_close(c);
    if (p->errors) {
        fprintf(stderr, "bench_reshard: %d searches failed, the last: %s\n", p->errors, p->last_error);
        exit(1);
    }
    phase_finish(p);
}

typedef struct {
    const char *endpoint;
    atomic_int stop;
    phase_t p;
} load_t;

/* Searches in a closed loop until told to stop: the load during the move. */
static void *load_main(void *arg) {
    load_t *l = arg;
    me_status_t st;
    me_client_t *c = me_client_connect(l->endpoint, 5000, &st);
    if (!c) {
        l->p.errors++;
        snprintf(l->p.last_error, sizeof l->p.last_error, "connect: %s", st.message);
        return NULL;
    }
    for (unsigned qi = 0; !atomic_load(&l->stop); qi++) search_once(c, qi, &l->p);
    me_client_close(c);
    return NULL;
}

static double ingest(me_client_t *c, const uint16_t *vecs, int ndocs) {
    enum { B = 256 };
    me_doc_t docs[B];
    char ids[B][16];
    me_status_t st;
    double t0 = me_test_now_ms();
    for (int off = 0; off < ndocs; off += B) {
        int m = ndocs - off < B ? ndocs - off : B;
        for (int i = 0; i < m; i++) {
            snprintf(ids[i], sizeof ids[i], "d%07d", off + i);
            docs[i] = (me_doc_t){ .id = ids[i], .vectors = vecs + (size_t)(off + i) * RC * D, .rows = RC, .f16 = 1 };
        }
        if (me_client_upsert(c, "c", docs, (size_t)m, D, &st)) die("upsert", &st);
    }
    return (me_test_now_ms() - t0) / 1000;
}

int main(int argc, char **argv) {
    int ndocs = 100000, nsearch = 300, json = 0;
    const me_opt_t opts[] = { { "--docs", ME_OPT_INT, &ndocs }, { "--searches", ME_OPT_INT, &nsearch },
                              { "--json", ME_OPT_FLAG, &json }, { NULL, 0, NULL } };
    int code = me_bench_options(argc, argv, opts,
                                "usage: bench_reshard [--docs N (100000)] [--searches S before and after (300)] [--json]\n"
                                "Starts 3 shard groups (the third standby) and a coordinator from $ME_BIN on\n"
                                "loopback, moves 2 -> 3 groups under search load; prints figures only.\n");
    if (code >= 0) return code;
    if (ndocs < 1000) die("need --docs >= 1000", NULL);
    if (nsearch < 10) die("need --searches >= 10", NULL);

    me_synth_t sp = me_synth_default(D, RC, 2026);
    fprintf(stderr, "generating %d documents...\n", ndocs);
    uint16_t *vecs = malloc((size_t)ndocs * RC * D * sizeof *vecs);
    if (!vecs) die("out of memory", NULL);
    me_synth_docs_f16(&sp, 0, (size_t)ndocs, vecs, 2);
    me_rng_t rng = { 5 };
    for (int i = 0; i < NQ; i++)
        me_synth_query(&sp, me_rng_next(&rng) % (uint64_t)ndocs, (uint64_t)i, RQ, g_queries + (size_t)i * RQ * D);

    cluster_t c;
    memset(&c, 0, sizeof c);
    c.standby = TO - FROM;
    fprintf(stderr, "starting %d groups (%d standby)...\n", TO, TO - FROM);
    if (cluster_start_with(&c, TO, 1, NULL, NULL)) die("cannot start the cluster", NULL);
    me_status_t st;
    me_client_t *admin = me_client_connect(c.coord.endpoint, 5000, &st);
    if (!admin) die("connect", &st);
    me_client_set_timeout(admin, 120000);
    me_collection_spec_t spec = { .name = "c", .dim = D, .max_doc_vectors = RC, .max_query_vectors = RQ,
                                  .dtype = "f16" };
    if (me_client_create_collection(admin, &spec, &st)) die("create", &st);
    fprintf(stderr, "ingesting...\n");
    double ingest_s = ingest(admin, vecs, ndocs);
    free(vecs);
    me_client_set_timeout(admin, 30000);
    me_reshard_info_t info;
    if (me_client_reshard_status(admin, &info, &st)) die("reshard status", &st);
    if (strcmp(info.phase, "stable") || (int)info.to_groups != FROM) {
        fprintf(stderr, "bench_reshard: before the move: phase %s, %u groups (want stable, %d)\n", info.phase,
                info.to_groups, FROM);
        return 1;
    }

    fprintf(stderr, "searching before the move...\n");
    phase_t before = { 0 };
    closed_loop(c.coord.endpoint, nsearch, &before);

    fprintf(stderr, "moving %d -> %d groups...\n", FROM, TO);
    load_t l = { .endpoint = c.coord.endpoint };
    pthread_t th;
    pthread_create(&th, NULL, load_main, &l);
    usleep(100000);  /* the load is running before the move starts */
    double t0 = me_test_now_ms();
    if (me_client_reshard_start(admin, TO, 0, &info, &st)) die("reshard start", &st);
    /* Generous: only a move that is stuck ends here, never a slow one. */
    double limit_ms = 1000.0 * (ndocs / 100 > 300 ? ndocs / 100 : 300);
    int failed = 0, status_errors = 0;
    double last_report = t0;
    for (;;) {
        usleep(200000);
        double now = me_test_now_ms();
        if (me_client_reshard_status(admin, &info, &st)) {
            status_errors++;
            if (now - t0 > limit_ms) { failed = 1; break; }
            continue;
        }
        if (!strcmp(info.phase, "stable") && (int)info.to_groups == TO && !info.running) break;
        if (info.error[0] && !info.running) {
            fprintf(stderr, "bench_reshard: the move stopped: %s\n", info.error);
            failed = 1;
            break;
        }
        if (now - t0 > limit_ms) {
            fprintf(stderr, "bench_reshard: the move is not done after %.0f s: phase %s, waiting '%s'\n",
                    limit_ms / 1000, info.phase, info.waiting);
            failed = 1;
            break;
        }
        if (now - last_report >= 5000) {
            fprintf(stderr, "  %.0f s: phase %s, %llu/%llu moved (%.0f%%), %.0f docs/s, eta %.0f s\n",
                    (now - t0) / 1000, info.phase, (unsigned long long)info.moved,
                    (unsigned long long)info.estimate, 100 * info.progress, info.docs_per_s, info.eta_ms / 1000.0);
            last_report = now;
        }
    }
    double move_s = (me_test_now_ms() - t0) / 1000;
    atomic_store(&l.stop, 1);
    pthread_join(th, NULL);
    phase_t *during = &l.p;
    phase_finish(during);
    if (failed) {
        cluster_stop(&c);
        return 1;
    }

    fprintf(stderr, "searching after the move...\n");
    phase_t after = { 0 };
    closed_loop(c.coord.endpoint, nsearch, &after);
    uint64_t count = 0;
    if (me_client_count(admin, "c", NULL, &count, &st)) die("count", &st);
    me_client_close(admin);
    cluster_stop(&c);

    double rate = move_s > 0 ? (double)info.moved / move_s : 0;
    const char *names[] = { "before move", "during move", "after move (3 groups)" };
    const char *keys[] = { "before", "during", "after" };
    phase_t *ph[] = { &before, during, &after };
    if (json) {
        printf("{\"docs\":%d,\"dim\":%d,\"r_c\":%d,\"r_q\":%d,\"k\":%d,\"dtype\":\"f16\",\"from_groups\":%d,"
               "\"to_groups\":%d,\"ingest_s\":%.3f,\"ingest_docs_per_s\":%.0f,\"move_s\":%.3f,\"moved\":%llu,"
               "\"moved_docs_per_s\":%.1f,\"coordinator_docs_per_s\":%.1f,\"coordinator_elapsed_ms\":%llu,\"purged\":%llu,\"epoch\":%llu,"
               "\"count_after\":%llu,\"status_errors\":%d",
               ndocs, D, RC, RQ, K, FROM, TO, ingest_s, ndocs / ingest_s, move_s, (unsigned long long)info.moved,
               rate, info.docs_per_s, (unsigned long long)info.elapsed_ms, (unsigned long long)info.purged, (unsigned long long)info.epoch,
               (unsigned long long)count, status_errors);
        for (int i = 0; i < 3; i++)
            printf(",\"%s\":{\"searches\":%d,\"errors\":%d,\"median_ms\":%.4f,\"p95_ms\":%.4f,\"median_vs_before\":%.3f}",
                   keys[i], ph[i]->n, ph[i]->errors, ph[i]->median, ph[i]->p95,
                   before.median > 0 ? ph[i]->median / before.median : 0);
        printf("}\n");
    } else {
        printf("reshard bench: %d docs, D=%d, R_c=%d, f16, default cascade, k=10, %d query rows, 1 client in a closed "
               "loop, 1 replica per group, all processes on this machine\n\n",
               ndocs, D, RC, RQ);
        printf("ingested %d documents into %d groups in %.1f s (%.0f docs/s)\n\n", ndocs, FROM, ingest_s,
               ndocs / ingest_s);
        printf("| phase                 | searches | errors | median ms | p95 ms | vs before |\n");
        printf("|-----------------------|----------|--------|-----------|--------|-----------|\n");
        for (int i = 0; i < 3; i++)
            printf("| %-21s | %8d | %6d | %9.2f | %6.2f | %8.2fx |\n", names[i], ph[i]->n, ph[i]->errors,
                   ph[i]->median, ph[i]->p95, before.median > 0 ? ph[i]->median / before.median : 0);
        printf("\nresharded %d documents %d -> %d groups in %.1f s: %llu moved (%.0f docs/s), %llu purged\n", ndocs,
               FROM, TO, move_s, (unsigned long long)info.moved, rate, (unsigned long long)info.purged);
        printf("(docs/s over the whole move, start call to done, polled every 200 ms; the coordinator's own copy "
               "rate %.0f docs/s, elapsed %.1f s)\n", info.docs_per_s, info.elapsed_ms / 1000.0);
        printf("(vs before: each median over the before-move median measured in this run; %llu documents counted "
               "after the move)\n", (unsigned long long)count);
    }
    free(before.lat);
    free(during->lat);
    free(after.lat);
    int bad = 0;
    if ((int)count != ndocs) {
        fprintf(stderr, "bench_reshard: %llu documents after the move, %d ingested\n", (unsigned long long)count, ndocs);
        bad = 1;
    }
    if (during->errors) {
        fprintf(stderr, "bench_reshard: %d searches failed during the move, the last: %s\n", during->errors,
                during->last_error);
        bad = 1;
    }
    return bad;
}
