/* Online resharding (issue 20, part 1), on real processes: a live cluster
 * grows from 2 to 3 shard groups and shrinks back while a client keeps
 * writing, deleting and searching; every exact search during the move
 * equals a brute force over the documents acknowledged so far (none
 * missing, none twice), and afterwards every document lives on exactly
 * its placement group. The client may go through another coordinator than
 * the one driving the move. A move whose coordinator is killed mid-copy
 * stays where it was (dual writes go on) and is resumed by the restarted
 * one. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/placement.h"
#include "common/wire.h"
#include "tests/cluster.h"
#include "tests/harness.h"

#define DIM 8
#define ROWS 2
#define QROWS 2
#define MAXDOCS 20000
#define K 10

typedef struct {
    me_client_t *cli;
    unsigned char live[MAXDOCS];
    int next;                 /* the next new document */
    me_rng_t rng;
    /* counters */
    int write_errors, searches, searches_moving, mismatches;
    char last_error[600];
} model_t;

static void doc_id(int i, char *out, size_t cap) { snprintf(out, cap, "d%05d", i); }

static void doc_vectors(int i, float *v) {
    me_rng_t r = { (uint64_t)i * 7919u + 17u };
    me_rng_unit_rows(&r, v, ROWS, DIM);
}

static int add_docs(model_t *m, int n) {
    me_doc_t docs[64] = { 0 };
    float v[64][ROWS * DIM];
    char ids[64][16];
    if (n > 64) n = 64;
    if (n < 1 || m->next + n > MAXDOCS) return -1;
    for (int k = 0; k < n; k++) {
        doc_id(m->next + k, ids[k], sizeof ids[k]);
        doc_vectors(m->next + k, v[k]);
        docs[k] = (me_doc_t){ .id = ids[k], .vectors = v[k], .rows = ROWS };
    }
    me_status_t st;
    if (me_client_upsert(m->cli, "c", docs, (size_t)n, DIM, &st) != 0) {
        m->write_errors++;
        snprintf(m->last_error, sizeof m->last_error, "upsert: %s", st.message);
        return -1;
    }
    for (int k = 0; k < n; k++) m->live[m->next + k] = 1;
    m->next += n;
    return 0;
}

static void delete_one(model_t *m) {
    if (!m->next) return;
    int i = (int)(me_rng_next(&m->rng) % (uint64_t)m->next);
    char id[16];
    doc_id(i, id, sizeof id);
    const char *ids[1] = { id };
    me_status_t st;
    if (me_client_delete(m->cli, "c", ids, 1, NULL, &st) != 0) {
        m->write_errors++;
        snprintf(m->last_error, sizeof m->last_error, "delete: %s", st.message);
        return;
    }
    m->live[i] = 0;
}

static double maxsim(const float *q, const float *d) {
    double s = 0;
    for (int a = 0; a < QROWS; a++) {
        double best = -1e30;
        for (int b = 0; b < ROWS; b++) {
            double dot = 0;
            for (int x = 0; x < DIM; x++) dot += (double)q[a * DIM + x] * d[b * DIM + x];
            if (dot > best) best = dot;
        }
        s += best;
    }
    return s;
}

/* One exact search against a brute force over the live documents. */
static void search_once(model_t *m, int moving) {
    float q[QROWS * DIM];
    me_rng_unit_rows(&m->rng, q, QROWS, DIM);
    int best[K];
    double bs[K];
    int nb = 0;
    for (int i = 0; i < m->next; i++) {
        if (!m->live[i]) continue;
        float d[ROWS * DIM];
        doc_vectors(i, d);
        double s = maxsim(q, d);
        int at = nb < K ? nb++ : K;
        if (at == K && s <= bs[K - 1]) continue;
        if (at == K) at = K - 1;
        while (at > 0 && bs[at - 1] < s) { bs[at] = bs[at - 1]; best[at] = best[at - 1]; at--; }
        bs[at] = s;
        best[at] = i;
    }
    me_search_opts_t o = { .k = K, .exact = 1 };
    me_results_t res;
    me_status_t st;
    m->searches++;
    if (moving) m->searches_moving++;
    if (me_client_search(m->cli, "c", q, QROWS, DIM, &o, &res, &st) != 0) {
        m->mismatches++;
        snprintf(m->last_error, sizeof m->last_error, "search: %s", st.message);
        return;
    }
    int bad = (int)res.n != nb;
    for (size_t k = 0; !bad && k < res.n; k++) {
        char id[16];
        doc_id(best[k], id, sizeof id);
        if (strcmp(res.hits[k].id, id) != 0 || fabs(res.hits[k].score - bs[k]) > 1e-3) bad = 1;
    }
    if (bad) {
        m->mismatches++;
        snprintf(m->last_error, sizeof m->last_error, "search: %zu hits (brute force %d), first %s vs d%05d",
                 res.n, nb, res.n ? res.hits[0].id : "-", nb ? best[0] : -1);
    }
    me_results_free(&res);
}

typedef struct {
    model_t *m;
    atomic_int stop, moving;
} load_t;

static void *load_main(void *arg) {
    load_t *l = arg;
    while (!atomic_load(&l->stop)) {
        add_docs(l->m, 8);
        delete_one(l->m);
        search_once(l->m, atomic_load(&l->moving));
    }
    return NULL;
}

/* Waits until the coordinator says the placement is stable at `groups`. */
static int wait_stable(me_client_t *cli, int groups, me_reshard_info_t *out) {
    double t0 = me_test_now_ms();
    me_status_t st;
    while (me_test_now_ms() - t0 < 90000) {
        if (me_client_reshard_status(cli, out, &st) == 0 && !strcmp(out->phase, "stable") &&
            (int)out->to_groups == groups && !out->running)
            return 0;
        if (out->error[0] && !out->running) {
            fprintf(stderr, "    move stopped: %s\n", out->error);
            return -1;
        }
        usleep(50000);
    }
    fprintf(stderr, "    move not done after 90 s: phase %s, waiting '%s'\n", out->phase, out->waiting);
    return -1;
}

/* Every live document on exactly its group under `groups`, nothing else
 * anywhere (each shard asked directly, so nothing is filtered). */
static int check_holdings(cluster_t *c, model_t *m, int groups) {
    int wrong = 0;
    for (int g = 0; g < c->groups; g++) {
        me_client_t *sc = me_daemon_client(&c->shards[g]);
        if (!sc) return -1;
        unsigned char *held = calloc(MAXDOCS, 1);
        char *after = NULL;
        for (;;) {
            char **ids = NULL, *next = NULL;
            size_t n = 0;
            me_status_t st;
            if (me_client_list_ids(sc, "c", after ? after : "", 1000, &ids, &n, &next, &st) != 0) {
                if (g >= groups && st.code == ME_CODE_NOT_FOUND) break;  /* a standby group that never held any */
                fprintf(stderr, "    listing group %d: %s\n", g, st.message);
                wrong++;
                break;
            }
            for (size_t k = 0; k < n; k++) {
                int i = atoi(ids[k] + 1);
                if (i >= 0 && i < MAXDOCS) held[i] = 1;
            }
            me_ids_free(ids, n);
            free(after);
            after = next;
            if (!next || !next[0]) break;
        }
        free(after);
        int missing = 0, extra = 0;
        for (int i = 0; i < m->next; i++) {
            char id[16];
            doc_id(i, id, sizeof id);
            int want = m->live[i] && g < groups && me_place(id, strlen(id), groups) == g;
            if (want && !held[i]) missing++;
            if (!want && held[i]) extra++;
        }
        if (missing || extra) fprintf(stderr, "    group %d: %d missing, %d it should not hold\n", g, missing, extra);
        wrong += missing + extra;
        free(held);
        me_client_close(sc);
    }
    return wrong;
}

static int live_count(const model_t *m) {
    int n = 0;
    for (int i = 0; i < m->next; i++) n += m->live[i];
    return n;
}

/* `metaembed reshard --groups N --json` against the coordinator, a real
 * CLI process following the move to its end: its exit status, and its
 * stdout in *out (malloc'd). */
static int cli_reshard(cluster_t *c, int groups, char **out) {
    char bin[512], addr[100], g[32];
    me_test_bin("metaembed", bin, sizeof bin);
    snprintf(addr, sizeof addr, "--addr=%s", c->coord.endpoint);
    snprintf(g, sizeof g, "--groups=%d", groups);
    char *argv[] = { bin, addr, "--json", "reshard", g, NULL };
    char *err = NULL;
    int rc = me_test_run_capture(argv, c->dir, "reshard", out, &err);
    free(err);
    return rc;
}

/* Moves to `groups` under load and checks everything; with_cli: the move
 * is started and followed by the CLI. */
static void move_under_load(cluster_t *c, model_t *m, int groups, uint32_t max_rate, int with_cli) {
    load_t l = { .m = m };
    pthread_t t;
    me_client_t *admin = me_daemon_client(&c->coord);
    ASSERT_TRUE(admin != NULL);
    int before = m->searches;
    pthread_create(&t, NULL, load_main, &l);
    usleep(200000);
    atomic_store(&l.moving, 1);
    me_reshard_info_t info;
    me_status_t st;
    double t0 = me_test_now_ms();
    if (with_cli) {
        char *out = NULL;
        ASSERT_EQ(cli_reshard(c, groups, &out), 0);
        ASSERT_TRUE(out && strstr(out, "\"phase\":\"stable\"") != NULL);
        free(out);
    } else ASSERT_OK(me_client_reshard_start(admin, (uint32_t)groups, max_rate, &info, &st));
    int done = wait_stable(admin, groups, &info);
    double took = me_test_now_ms() - t0;
    atomic_store(&l.moving, 0);
    usleep(200000);
    atomic_store(&l.stop, 1);
    pthread_join(t, NULL);
    fprintf(stderr, "    to %d groups: %llu moved, %llu purged in %.0f ms (epoch %llu); %d searches during the move, "
            "%d in all\n", groups, (unsigned long long)info.moved, (unsigned long long)info.purged, took,
            (unsigned long long)info.epoch, m->searches_moving, m->searches - before);
    ASSERT_OK(done);
    if (m->write_errors || m->mismatches) fprintf(stderr, "    last error: %s\n", m->last_error);
    ASSERT_EQ(m->write_errors, 0);
    ASSERT_EQ(m->mismatches, 0);
    ASSERT_TRUE(m->searches_moving > 0);
    ASSERT_TRUE(info.moved > 0);
    ASSERT_EQ(check_holdings(c, m, groups), 0);
    uint64_t count = 0;
    ASSERT_OK(me_client_count(admin, "c", NULL, &count, &st));
    ASSERT_EQ((long)count, (long)live_count(m));
    me_client_close(admin);
    m->searches_moving = 0;
}

TEST(reshard_grows_and_shrinks_a_live_cluster_exactly_and_resumes_after_a_coordinator_kill) {
    cluster_t c;
    memset(&c, 0, sizeof c);
    c.standby = 1;
    ASSERT_OK(cluster_start_with(&c, 3, 1, NULL, NULL));
    model_t *m = calloc(1, sizeof *m);
    m->rng.s = 99;
    m->cli = cluster_client(&c, DIM, ROWS);
    ASSERT_TRUE(m->cli != NULL);
    me_client_set_timeout(m->cli, 20000);
    for (int b = 0; b < 24; b++) {
        if (add_docs(m, 50) != 0) fprintf(stderr, "    preload: %s\n", m->last_error);
        ASSERT_EQ(m->write_errors, 0);
    }
    /* Placed by the map's two groups: the standby one holds nothing. */
    ASSERT_EQ(check_holdings(&c, m, 2), 0);
    for (int i = 0; i < 5; i++) search_once(m, 0);
    ASSERT_EQ(m->mismatches, 0);

    /* Grow, then shrink, under writes, deletes and searches. */
    move_under_load(&c, m, 3, 3000, 0);
    /* A collection made at 3 groups and dropped at 2 (so the group that
     * left still has it): the next grow drops it there too. */
    me_collection_spec_t gone = { .name = "gone", .dim = DIM, .max_doc_vectors = ROWS };
    me_status_t gst;
    ASSERT_OK(me_client_create_collection(m->cli, &gone, &gst));
    /* A second coordinator on the same map serves the client while the
     * first drives the shrink: it follows the move from the shards. */
    me_daemon_t c2 = { .no_data_dir = 1, .extra = { c.cluster_arg, "--heartbeat-ms=100" }, .nextra = 2 };
    ASSERT_OK(me_daemon_start(&c2, "metaembed-coordinator", "coord2"));
    me_client_t *via_first = m->cli;
    m->cli = me_daemon_client(&c2);
    ASSERT_TRUE(m->cli != NULL);
    me_client_set_timeout(m->cli, 20000);
    move_under_load(&c, m, 2, 3000, 0);
    me_client_close(m->cli);
    m->cli = via_first;
    me_daemon_free(&c2);
    ASSERT_OK(me_client_drop_collection(m->cli, "gone", &gst));

    /* Grow again, slowly, and kill the coordinator mid-copy. */
    me_client_t *admin = me_daemon_client(&c.coord);
    ASSERT_TRUE(admin != NULL);
    me_reshard_info_t info;
    me_status_t st;
    ASSERT_OK(me_client_reshard_start(admin, 3, 300, &info, &st));
    ASSERT_EQ(me_client_reshard_start(admin, 2, 0, &info, &st), ME_CODE_FAILED_PRECONDITION);
    ASSERT_EQ(me_client_reshard_start(admin, 9, 0, &info, &st), ME_CODE_INVALID_ARGUMENT);
    double t0 = me_test_now_ms();
    while (me_test_now_ms() - t0 < 20000) {
        if (me_client_reshard_status(admin, &info, &st) == 0 && info.moved >= 60) break;
        usleep(20000);
    }
    ASSERT_TRUE(info.moved >= 60);
    ASSERT_STREQ(info.phase, "copy");
    me_client_close(admin);
    me_daemon_stop(&c.coord, 1);
    ASSERT_OK(me_daemon_restart(&c.coord));
    me_client_close(m->cli);
    m->cli = me_daemon_client(&c.coord);
    ASSERT_TRUE(m->cli != NULL);
    me_client_set_timeout(m->cli, 20000);
    admin = me_daemon_client(&c.coord);
    ASSERT_TRUE(admin != NULL);
    /* The restarted coordinator learns the move from the shards; nothing
     * drives it, and dual writes keep both sides whole meanwhile. */
    usleep(400000);
    ASSERT_OK(me_client_reshard_status(admin, &info, &st));
    ASSERT_STREQ(info.phase, "copy");
    ASSERT_EQ(info.running, 0);
    for (int i = 0; i < 20; i++) {
        add_docs(m, 8);
        delete_one(m);
        search_once(m, 1);
    }
    ASSERT_EQ(m->write_errors, 0);
    ASSERT_EQ(m->mismatches, 0);
    me_client_close(admin);
    m->searches_moving = 0;
    move_under_load(&c, m, 3, 0, 1);
    fprintf(stderr, "    resumed: %d documents live\n", live_count(m));
    me_client_t *g2 = me_daemon_client(&c.shards[2]);
    ASSERT_TRUE(g2 != NULL);
    me_collection_info_t *colls = NULL;
    size_t ncolls = 0;
    ASSERT_OK(me_client_list_collections(g2, &colls, &ncolls, &gst));
    ASSERT_EQ(ncolls, 1);
    ASSERT_STREQ(colls[0].name, "c");
    free(colls);
    me_client_close(g2);
    /* The move in the metrics: placement and the last run's figures. */
    char *metrics = NULL;
    ASSERT_EQ(me_test_http_get(c.coord.metrics_port, "/metrics", &metrics), 200);
    ASSERT_TRUE(strstr(metrics, "metaembed_placement_read_groups 3") != NULL);
    ASSERT_TRUE(strstr(metrics, "metaembed_placement_phase 0") != NULL);
    ASSERT_TRUE(strstr(metrics, "metaembed_reshard_moved_documents ") != NULL);
    free(metrics);
    ASSERT_EQ(me_test_http_get(c.shards[2].metrics_port, "/metrics", &metrics), 200);
    ASSERT_TRUE(strstr(metrics, "metaembed_placement_epoch 12") != NULL);
    free(metrics);
    me_client_close(m->cli);
    free(m);
    cluster_stop(&c);
}

TEST(reshard_refuses_bad_requests_and_shards_fence_outdated_placements) {
    cluster_t c;
    memset(&c, 0, sizeof c);
    ASSERT_OK(cluster_start(&c, 2, 1, NULL));
    me_client_t *cli = cluster_client(&c, DIM, ROWS);
    ASSERT_TRUE(cli != NULL);
    me_reshard_info_t info;
    me_status_t st;
    ASSERT_OK(me_client_reshard_status(cli, &info, &st));
    ASSERT_STREQ(info.phase, "stable");
    ASSERT_EQ(info.to_groups, 2);
    ASSERT_EQ(me_client_reshard_start(cli, 0, 0, &info, &st), ME_CODE_INVALID_ARGUMENT);
    ASSERT_EQ(me_client_reshard_start(cli, 3, 0, &info, &st), ME_CODE_INVALID_ARGUMENT);
    ASSERT_TRUE(strstr(st.message, "standby") != NULL);
    /* Already there: nothing to do, and done. */
    ASSERT_OK(me_client_reshard_start(cli, 2, 0, &info, &st));
    ASSERT_OK(wait_stable(cli, 2, &info));
    /* A shard does not purge for a coordinator's client, nor take nonsense. */
    me_client_t *sc = me_daemon_client(&c.shards[0]);
    ASSERT_TRUE(sc != NULL);
    ASSERT_EQ(me_client_reshard_start(sc, 2, 0, &info, &st), ME_CODE_UNIMPLEMENTED);
    me_client_close(sc);
    me_client_close(cli);
    cluster_stop(&c);
}

/* A Count routed with `placement` straight to a shard: its status, and the
 * placement its reply carries. */
static int routed_count(void *sock, uint64_t placement, uint64_t *held) {
    Metaembed__CountRequest q = METAEMBED__COUNT_REQUEST__INIT;
    q.collection = "c";
    size_t len = metaembed__count_request__get_packed_size(&q);
    uint8_t buf[64];
    metaembed__count_request__pack(&q, buf);
    static uint64_t rid = 100;
    if (me_wire_send_routed(sock, ++rid, METAEMBED__METHOD__METHOD_COUNT, 5000, buf, len, 0, placement, 0) != 0) return -1;
    me_reply_t rep;
    me_reply_init(&rep);
    double t0 = me_test_now_ms();
    while (me_test_now_ms() - t0 < 5000) {
        int ready;
        if (me_wire_wait(&sock, 1, 100, &ready) > 0 && me_wire_take_reply(sock, rid, &rep) == 1) {
            *held = rep.placement;
            int code = rep.status;
            me_reply_clear(&rep);
            return code;
        }
    }
    return -1;
}

TEST(reshard_shards_fence_requests_routed_with_an_outdated_or_conflicting_placement) {
    cluster_t c;
    memset(&c, 0, sizeof c);
    ASSERT_OK(cluster_start(&c, 2, 1, NULL));
    me_client_t *cli = cluster_client(&c, DIM, ROWS);
    ASSERT_TRUE(cli != NULL);
    void *zctx = me_wire_context();
    void *sock = me_wire_connect(zctx, c.shards[1].endpoint, NULL);
    ASSERT_TRUE(sock != NULL);
    uint64_t held = 0;
    uint64_t p5 = me_placement_pack((me_placement_t){ 5, ME_PHASE_STABLE, 2, 2 });
    uint64_t p3 = me_placement_pack((me_placement_t){ 3, ME_PHASE_STABLE, 2, 2 });
    uint64_t p5b = me_placement_pack((me_placement_t){ 5, ME_PHASE_STABLE, 1, 1 });
    /* Newer: adopted. Older or conflicting: refused, the reply saying the shard's. */
    ASSERT_EQ(routed_count(sock, p5, &held), ME_CODE_OK);
    ASSERT_EQ(held, p5);
    ASSERT_EQ(routed_count(sock, p3, &held), ME_CODE_ABORTED);
    ASSERT_EQ(held, p5);
    ASSERT_EQ(routed_count(sock, p5b, &held), ME_CODE_ABORTED);
    /* Not a placement at all (low byte set; a stable one with two counts). */
    ASSERT_EQ(routed_count(sock, p5 | 1, &held), ME_CODE_INVALID_ARGUMENT);
    ASSERT_EQ(routed_count(sock, me_placement_pack((me_placement_t){ 9, ME_PHASE_STABLE, 2, 3 }), &held),
              ME_CODE_INVALID_ARGUMENT);
    /* Unrouted requests (tools, repair) pass. */
    ASSERT_EQ(routed_count(sock, 0, &held), ME_CODE_OK);
    me_wire_close(sock);
    me_wire_context_end(zctx);
    /* The coordinator learns epoch 5 from that shard and goes on serving:
     * its first request to the other shard carries it there too. */
    me_reshard_info_t info;
    me_status_t st;
    double t0 = me_test_now_ms();
    while (me_test_now_ms() - t0 < 5000) {
        ASSERT_OK(me_client_reshard_status(cli, &info, &st));
        if (info.epoch == 5) break;
        usleep(50000);
    }
    ASSERT_EQ(info.epoch, 5);
    uint64_t count = 0;
    ASSERT_OK(me_client_count(cli, "c", NULL, &count, &st));
    me_client_close(cli);
    cluster_stop(&c);
}
