/* A real cluster on loopback: shards + coordinator as processes, the CLI
 * for ingest, results checked against an independent brute force. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/npy.h"
#include "tests/brute.h"
#include "tests/cluster.h"
#include "tests/daemon.h"
#include "tests/harness.h"
#include "tests/synthetic.h"

#define DIM 32
#define ROWS 8

static void make_corpus(corpus_t *cp, int n, uint64_t seed) {
    me_synth_t p = me_synth_default(DIM, ROWS, seed);
    cp->ndocs = n;
    cp->dim = DIM;
    cp->rows = ROWS;
    cp->vecs = malloc((size_t)n * ROWS * DIM * sizeof(float));
    cp->alive = calloc((size_t)n, sizeof(int));
    for (int i = 0; i < n; i++) {
        me_synth_doc(&p, (uint64_t)i, cp->vecs + (size_t)i * ROWS * DIM);
        cp->alive[i] = 1;
    }
}

static void free_corpus(corpus_t *cp) {
    free(cp->vecs);
    free(cp->alive);
}

static void upsert_corpus(me_client_t *cli, const corpus_t *cp) {
    enum { B = 500 };
    me_doc_t docs[B];
    char ids[B][32];
    for (int off = 0; off < cp->ndocs; off += B) {
        int m = cp->ndocs - off < B ? cp->ndocs - off : B;
        for (int i = 0; i < m; i++) {
            snprintf(ids[i], sizeof ids[i], "doc-%05d", off + i);
            docs[i] = (me_doc_t){ .id = ids[i], .vectors = cp->vecs + (size_t)(off + i) * ROWS * DIM, .rows = ROWS };
        }
        me_status_t st;
        int rc = me_client_upsert(cli, "c", docs, (size_t)m, DIM, &st);
        if (rc) fprintf(stderr, "    upsert: %s\n", st.message);
        ASSERT_EQ(rc, 0);
    }
}

/* What the tests here start from: a G×R cluster, a client on its
 * coordinator with collection "c", and a corpus of n synthetic documents
 * from `seed`. With near >= 0 the corpus is also upserted and q is a query
 * near document `near` (from the same seed); the first test leaves the
 * writing to the CLI. */
typedef struct {
    cluster_t c;
    me_client_t *cli;
    corpus_t cp;
    float q[4 * DIM];
} fixture_t;

static void fixture_start(fixture_t *f, int groups, int replicas, int n, uint64_t seed, int near) {
    ASSERT_OK(cluster_start(&f->c, groups, replicas, NULL));
    f->cli = cluster_client(&f->c, DIM, ROWS);
    ASSERT_TRUE(f->cli != NULL);
    make_corpus(&f->cp, n, seed);
    if (near < 0) return;
    upsert_corpus(f->cli, &f->cp);
    me_synth_t p = me_synth_default(DIM, ROWS, seed);
    me_synth_query(&p, (uint64_t)near, 1, 4, f->q);
}

static void fixture_stop(fixture_t *f) {
    me_client_close(f->cli);
    free_corpus(&f->cp);
    cluster_stop(&f->c);
}

/* After a fault is cleared: searches (5 s timeout) until an answer is
 * complete again, for up to 10 s; 1 when one was. */
static int complete_again(me_client_t *cli, const float *q, const me_search_opts_t *o) {
    me_client_set_timeout(cli, 5000);
    me_results_t res;
    me_status_t st;
    int complete = 0;
    for (int i = 0; i < 100 && !complete; i++) {
        ASSERT_OK(me_client_search(cli, "c", q, 4, DIM, o, &res, &st));
        complete = !res.partial;
        me_results_free(&res);
        if (!complete) usleep(100000);
    }
    return complete;
}

/* Exact and cascade(candidates = N) through the coordinator equal brute force. */
static void check_searches(me_client_t *cli, const corpus_t *cp, uint64_t seed, int nq) {
    me_synth_t p = me_synth_default(DIM, ROWS, seed);
    float q[4 * DIM];
    double *scores = malloc((size_t)cp->ndocs * sizeof *scores);
    static const int budgets[][2] = { { 1, 1 }, { 2, 4 }, { 4, 8 } };
    uint64_t alive = 0;
    for (int i = 0; i < cp->ndocs; i++) alive += cp->alive[i] != 0;
    for (int qi = 0; qi < nq; qi++) {
        me_synth_query(&p, (uint64_t)(qi * 7919) % (uint64_t)cp->ndocs, (uint64_t)qi, 4, q);
        for (int b = 0; b < 3; b++) {
            brute(cp, q, budgets[b][0], budgets[b][1], scores);
            for (int mode = 0; mode < 2; mode++) {
                me_search_opts_t o = { .r_q = budgets[b][0], .r_c = budgets[b][1], .k = 10, .exact = mode == 0,
                                       .candidates = mode == 1 ? (uint32_t)cp->ndocs : 0,
                                       .refine_candidates = mode == 1 ? (uint32_t)cp->ndocs : 0 };
                me_results_t res;
                me_status_t st;
                int rc = me_client_search(cli, "c", q, 4, DIM, &o, &res, &st);
                if (rc) fprintf(stderr, "    search: %s\n", st.message);
                ASSERT_EQ(rc, 0);
                ASSERT_EQ(res.partial, 0);
                ASSERT_EQ(res.documents, alive);
                check_against_brute(&res, scores, cp->ndocs, 10, "doc");
                me_results_free(&res);
            }
        }
    }
    free(scores);
}

TEST(cluster_3_groups_cli_ingest_30k_matches_brute_force) {
    enum { N = 30000 };
    fixture_t f;
    fixture_start(&f, 3, 1, N, 11, -1);

    /* The CLI ingests a .npy and an ids file written here. */
    char npy[700], ids[700], out[700], err[700];
    snprintf(npy, sizeof npy, "%s/emb.npy", f.c.dir);
    snprintf(ids, sizeof ids, "%s/ids.txt", f.c.dir);
    snprintf(out, sizeof out, "%s/ingest.out", f.c.dir);
    snprintf(err, sizeof err, "%s/ingest.err", f.c.dir);
    uint64_t shape[3] = { N, ROWS, DIM };
    char msg[256];
    ASSERT_OK(me_npy_write(npy, ME_DTYPE_F32, shape, 3, f.cp.vecs, 1, msg, sizeof msg));
    FILE *fi = fopen(ids, "w");
    for (int i = 0; i < N; i++) fprintf(fi, "doc-%05d\n", i);
    fclose(fi);
    char bin[512];
    char *argv[] = { (char *)me_test_bin("metaembed", bin, sizeof bin), "--addr", f.c.coord.endpoint, "ingest",
                     "--collection", "c", "--vectors", npy, "--ids", ids, NULL };
    int code = me_test_run(argv, out, err);
    if (code != 0) {
        char *e = me_test_slurp(err);
        fprintf(stderr, "    metaembed ingest exit %d: %s\n", code, e ? e : "");
        free(e);
    }
    ASSERT_EQ(code, 0);

    /* Every document landed exactly once, spread over the three groups. */
    me_stats_t stats;
    me_status_t st;
    ASSERT_OK(me_client_stats(f.cli, NULL, &stats, &st));
    ASSERT_STREQ(stats.role, "coordinator");
    ASSERT_EQ(stats.n_groups, 3);
    ASSERT_EQ(stats.n_collections, 1);
    ASSERT_EQ(stats.collections[0].documents, N);
    me_stats_free(&stats);
    uint64_t total = 0;
    for (int g = 0; g < 3; g++) {
        me_client_t *sc = me_daemon_client(&f.c.shards[g]);
        ASSERT_TRUE(sc != NULL);
        me_collection_info_t *info;
        size_t n;
        ASSERT_OK(me_client_list_collections(sc, &info, &n, &st));
        ASSERT_EQ(n, 1);
        ASSERT_TRUE(info[0].documents > N / 5);  /* placement spreads them */
        total += info[0].documents;
        free(info);
        me_client_close(sc);
    }
    ASSERT_EQ(total, N);

    check_searches(f.cli, &f.cp, 11, 4);

    /* Get returns what was written, in request order, across groups. */
    const char *want[5] = { "doc-00007", "doc-29999", "nope", "doc-12345", "doc-00000" };
    me_record_t *recs;
    size_t nrec;
    ASSERT_OK(me_client_get(f.cli, "c", want, 5, 1, &recs, &nrec, &st));
    ASSERT_EQ(nrec, 4);
    int idx[4] = { 7, 29999, 12345, 0 };
    for (int i = 0; i < 4; i++) {
        ASSERT_STREQ(recs[i].id, want[i < 2 ? i : i + 1]);
        ASSERT_TRUE(memcmp(recs[i].vectors, f.cp.vecs + (size_t)idx[i] * ROWS * DIM, ROWS * DIM * 4) == 0);
    }
    me_records_free(recs, nrec);

    /* Delete is reflected in searches. */
    const char *del[50];
    char delids[50][16];
    for (int i = 0; i < 50; i++) {
        snprintf(delids[i], sizeof delids[i], "doc-%05d", i * 597);
        del[i] = delids[i];
        f.cp.alive[i * 597] = 0;
    }
    uint32_t deleted;
    ASSERT_OK(me_client_delete(f.cli, "c", del, 50, &deleted, &st));
    ASSERT_EQ(deleted, 50);
    f.cp.ndocs = N;
    check_searches(f.cli, &f.cp, 11, 2);
    fixture_stop(&f);
}

TEST(cluster_dead_shard_gives_partial_then_recovers) {
    fixture_t f;
    fixture_start(&f, 3, 1, 3000, 5, 10);
    me_search_opts_t o = { .k = 10 };
    me_results_t res;
    me_status_t st;

    me_daemon_stop(&f.c.shards[1], 1);  /* g1 dies */
    me_client_set_timeout(f.cli, 1500);
    for (int i = 0; i < 10; i++) {
        double t0 = me_test_now_ms();
        ASSERT_OK(me_client_search(f.cli, "c", f.q, 4, DIM, &o, &res, &st));
        double ms = me_test_now_ms() - t0;
        ASSERT_TRUE(ms < 1500);                  /* within the deadline */
        ASSERT_EQ(res.partial, 1);
        ASSERT_EQ(res.n_missing, 1);
        ASSERT_STREQ(res.missing_groups[0], "g1");
        ASSERT_EQ(res.n, 10);
        me_results_free(&res);
        usleep(50000);
    }
    /* Once heartbeats mark it down, it is skipped without waiting. */
    double t0 = me_test_now_ms();
    ASSERT_OK(me_client_search(f.cli, "c", f.q, 4, DIM, &o, &res, &st));
    ASSERT_TRUE(me_test_now_ms() - t0 < 200);
    me_results_free(&res);
    me_search_opts_t strict = { .k = 10, .all_or_nothing = 1 };
    int rc = me_client_search(f.cli, "c", f.q, 4, DIM, &strict, &res, &st);
    ASSERT_EQ(rc, ME_CODE_UNAVAILABLE);
    ASSERT_TRUE(strstr(st.message, "g1") != NULL);

    /* Back on the same port and data: complete again. */
    ASSERT_OK(me_daemon_restart(&f.c.shards[1]));
    ASSERT_TRUE(complete_again(f.cli, f.q, &o));
    check_searches(f.cli, &f.cp, 5, 2);
    fixture_stop(&f);
}

TEST(cluster_replication_2_survives_a_replica_per_group) {
    fixture_t f;
    fixture_start(&f, 2, 2, 2000, 9, 77);
    me_search_opts_t o = { .r_q = 4, .r_c = 8, .k = 20 };
    me_results_t before, after;
    me_status_t st;
    ASSERT_OK(me_client_search(f.cli, "c", f.q, 4, DIM, &o, &before, &st));

    /* One replica of every group dies: answers stay complete and equal. */
    me_daemon_stop(&f.c.shards[0], 1);
    me_daemon_stop(&f.c.shards[3], 1);
    me_client_set_timeout(f.cli, 3000);
    for (int i = 0; i < 5; i++) {
        ASSERT_OK(me_client_search(f.cli, "c", f.q, 4, DIM, &o, &after, &st));
        ASSERT_EQ(after.partial, 0);
        ASSERT_EQ(after.n, before.n);
        for (size_t h = 0; h < after.n; h++) {
            ASSERT_STREQ(after.hits[h].id, before.hits[h].id);
            ASSERT_TRUE(after.hits[h].score == before.hits[h].score);
        }
        me_results_free(&after);
    }
    me_results_free(&before);

    /* Writes: the default quorum is every replica, so a write now fails and
     * says so; a coordinator with --write-quorum=1 accepts it. */
    float v[ROWS * DIM];
    memcpy(v, f.cp.vecs, sizeof v);
    me_doc_t d = { .id = "during-outage", .vectors = v, .rows = ROWS };
    int rc = me_client_upsert(f.cli, "c", &d, 1, DIM, &st);
    ASSERT_EQ(rc, ME_CODE_UNAVAILABLE);
    ASSERT_TRUE(strstr(st.message, "quorum") != NULL);
    me_daemon_t q1 = { .no_data_dir = 1, .extra = { NULL, "--heartbeat-ms=100", "--write-quorum=1" }, .nextra = 3 };
    char cluster_arg[700];
    snprintf(cluster_arg, sizeof cluster_arg, "--cluster=%s", f.c.map);
    q1.extra[0] = cluster_arg;
    ASSERT_OK(me_daemon_start(&q1, "metaembed-coordinator", "coordq1"));
    me_client_t *cli1 = me_daemon_client(&q1);
    ASSERT_TRUE(cli1 != NULL);
    me_client_set_timeout(cli1, 3000);
    ASSERT_OK(me_client_upsert(cli1, "c", &d, 1, DIM, &st));
    const char *id = "during-outage";
    ASSERT_EQ(me_test_count_ids(cli1, "c", &id, 1), 1);
    me_client_close(cli1);
    me_daemon_free(&q1);
    fixture_stop(&f);
}

TEST(cluster_bad_input_through_coordinator_loses_nothing) {
    fixture_t f;
    fixture_start(&f, 2, 1, 500, 3, 0);
    me_client_t *cli = f.cli;
    me_status_t st;
    float v[(ROWS + 1) * DIM];
    memcpy(v, f.cp.vecs, ROWS * DIM * sizeof(float));
    memcpy(v + ROWS * DIM, f.cp.vecs, DIM * sizeof(float));
    /* A batch whose documents land on both groups, one of them bad: nothing
     * is written anywhere. */
    me_doc_t docs[8];
    char ids[8][16];
    for (int i = 0; i < 8; i++) {
        snprintf(ids[i], sizeof ids[i], "new-%d", i);
        docs[i] = (me_doc_t){ .id = ids[i], .vectors = v, .rows = ROWS };
    }
    docs[5].rows = ROWS + 1;
    int rc = me_client_upsert(cli, "c", docs, 8, DIM, &st);
    ASSERT_EQ(rc, ME_CODE_INVALID_ARGUMENT);
    ASSERT_TRUE(strstr(st.message, "9 vectors, must be 1..8") != NULL);
    docs[5].rows = ROWS;
    rc = me_client_upsert(cli, "c", docs, 8, DIM - 1, &st);
    ASSERT_EQ(rc, ME_CODE_INVALID_ARGUMENT);
    ASSERT_TRUE(strstr(st.message, "does not match the collection's dim") != NULL);
    float bad[ROWS * DIM];
    memcpy(bad, v, sizeof bad);
    bad[3] = NAN;
    docs[6].vectors = bad;
    rc = me_client_upsert(cli, "c", docs, 8, DIM, &st);
    ASSERT_EQ(rc, ME_CODE_INVALID_ARGUMENT);
    ASSERT_TRUE(strstr(st.message, "NaN") != NULL);
    rc = me_client_upsert(cli, "nope", docs, 1, DIM, &st);
    ASSERT_EQ(rc, ME_CODE_NOT_FOUND);
    float q[4 * (DIM + 1)];  /* room for the wrong-dim query below */
    memcpy(q, f.cp.vecs, sizeof q);
    me_results_t res;
    rc = me_client_search(cli, "c", q, 4, DIM, &(me_search_opts_t){ .k = 0 }, &res, &st);
    ASSERT_EQ(rc, ME_CODE_INVALID_ARGUMENT);
    rc = me_client_search(cli, "c", q, 4, DIM, &(me_search_opts_t){ .k = 100000 }, &res, &st);
    ASSERT_EQ(rc, ME_CODE_INVALID_ARGUMENT);
    rc = me_client_search(cli, "nope", q, 4, DIM, &(me_search_opts_t){ .k = 5 }, &res, &st);
    ASSERT_EQ(rc, ME_CODE_NOT_FOUND);
    rc = me_client_search(cli, "c", q, 4, DIM + 1, &(me_search_opts_t){ .k = 5 }, &res, &st);
    ASSERT_EQ(rc, ME_CODE_INVALID_ARGUMENT);
    me_stats_t stats;
    ASSERT_OK(me_client_stats(cli, "c", &stats, &st));
    ASSERT_EQ(stats.collections[0].documents, 500);
    me_stats_free(&stats);
    check_searches(cli, &f.cp, 3, 1);
    fixture_stop(&f);
}

/* deploy/local: one command starts a coordinator and S×R shards, ready when
 * it returns; the other stops them all cleanly. */
TEST(local_cluster_launcher_starts_and_stops) {
    char *dir = me_test_tmpdir("launcher");
    char bindir[512], port[16], out[600], err[600];
    me_test_bin("", bindir, sizeof bindir);
    bindir[strlen(bindir) - 1] = 0;  /* drop the trailing '/' */
    /* The launcher takes P (coordinator), P+1.. (shards) and P+1400.. (metrics). */
    snprintf(port, sizeof port, "%d", me_test_free_port_block(6, 1400));
    snprintf(out, sizeof out, "%s/start.out", dir);
    snprintf(err, sizeof err, "%s/start.err", dir);
    char cdir[600];
    snprintf(cdir, sizeof cdir, "%s/c", dir);
    char *start[] = { "deploy/local/start-cluster.sh", "--shards", "2", "--replicas", "2", "--dir", cdir, "--port", port,
                      "--bin", bindir, NULL };
    int code = me_test_run(start, out, err);
    if (code) {
        char *e = me_test_slurp(err);
        fprintf(stderr, "    start-cluster: %s\n", e ? e : "");
        free(e);
    }
    ASSERT_EQ(code, 0);
    /* The banner names the dashboard and the HTTP API on the port it started. */
    char *banner = me_test_slurp(out), want[128];
    ASSERT_TRUE(banner != NULL);
    snprintf(want, sizeof want, "dashboard:      http://127.0.0.1:%d/ ", atoi(port) + 1400);
    ASSERT_TRUE(strstr(banner, want) != NULL);
    snprintf(want, sizeof want, "HTTP API:       http://127.0.0.1:%d/v1/", atoi(port) + 1400);
    ASSERT_TRUE(strstr(banner, want) != NULL);
    free(banner);
    /* --help is the header comment, nothing after it. */
    char *help[] = { "deploy/local/start-cluster.sh", "--help", NULL };
    ASSERT_EQ(me_test_run(help, out, NULL), 0);
    banner = me_test_slurp(out);
    ASSERT_TRUE(banner && strstr(banner, "stop-cluster.sh --dir DIR.\n") && !strstr(banner, "set -euo"));
    free(banner);
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%s", port);
    me_status_t st;
    me_client_t *cli = me_client_connect(ep, 5000, &st);
    ASSERT_TRUE(cli != NULL);
    me_stats_t stats;
    ASSERT_OK(me_client_stats(cli, NULL, &stats, &st));
    ASSERT_EQ(stats.n_groups, 2);
    ASSERT_EQ(stats.groups[1].n_replicas, 2);
    me_stats_free(&stats);
    me_client_close(cli);
    char *stop[] = { "deploy/local/stop-cluster.sh", "--dir", cdir, NULL };
    ASSERT_EQ(me_test_run(stop, NULL, NULL), 0);
    /* Every shard shut down cleanly. */
    char log[700];
    snprintf(log, sizeof log, "%s/g1-r1.log", cdir);
    char *text = me_test_slurp(log);
    ASSERT_TRUE(text && strstr(text, "stopped cleanly"));
    free(text);
    me_test_rmdir(dir);
    free(dir);
}

#include <signal.h>

/* A hung shard (SIGSTOP: connections stay open, nothing answers): every
 * search still answers within its deadline, partial and naming the group;
 * after SIGCONT the answers are complete again. */
TEST(cluster_hung_shard_answers_within_deadline) {
    fixture_t f;
    fixture_start(&f, 2, 1, 1000, 21, 3);
    kill(f.c.shards[1].pid, SIGSTOP);
    me_client_set_timeout(f.cli, 1000);
    me_search_opts_t o = { .k = 10 };
    me_results_t res;
    me_status_t st;
    for (int i = 0; i < 8; i++) {
        double t0 = me_test_now_ms();
        ASSERT_OK(me_client_search(f.cli, "c", f.q, 4, DIM, &o, &res, &st));
        ASSERT_TRUE(me_test_now_ms() - t0 < 1000);
        ASSERT_EQ(res.partial, 1);
        ASSERT_STREQ(res.missing_groups[0], "g1");
        me_results_free(&res);
    }
    kill(f.c.shards[1].pid, SIGCONT);
    ASSERT_TRUE(complete_again(f.cli, f.q, &o));
    check_searches(f.cli, &f.cp, 21, 1);
    fixture_stop(&f);
}
