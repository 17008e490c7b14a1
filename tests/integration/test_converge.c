/* Replica convergence (issue 18): versioned writes, tombstones and the
 * coordinator's repair pass, over real processes.
 *
 * The probe's cases, each of which failed before: a replica killed while
 * documents were written, overwritten and deleted (and collections created
 * and dropped) comes back, is not read from until repaired, and ends
 * byte-identical to its sibling; writes that failed half-way under the
 * default quorum end applied everywhere; a quorum-1 write does not wait
 * for a stopped replica. Then the fault loop: 2 groups x 3 replicas at
 * write quorum 2, random SIGKILL / SIGSTOP / restarts while a writer and a
 * reader run, and a checker at the end (ME_SOAK_FAULTS raises the count:
 * make soak). */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/wire.h"
#include "tests/cluster.h"
#include "tests/harness.h"

#define DIM 8
#define ROWS 2

/* The vectors of op n on an id: a function of both, so a stale copy differs. */
static void op_vectors(const char *id, long n, float *v) {
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = id; *p; p++) h = (h ^ (uint8_t)*p) * 1099511628211ULL;
    me_rng_t r = { h ^ (uint64_t)(n * 7919 + 1) };
    me_rng_unit_rows(&r, v, ROWS, DIM);
}

static int put(me_client_t *c, const char *coll, const char *const *ids, size_t n, long op, me_status_t *st) {
    me_doc_t docs[64];
    float v[64][ROWS * DIM];
    char meta[64][48];
    for (size_t i = 0; i < n; i++) {
        op_vectors(ids[i], op, v[i]);
        int len = snprintf(meta[i], sizeof meta[i], "{\"n\":%ld}", op);
        docs[i] = (me_doc_t){ .id = ids[i], .vectors = v[i], .rows = ROWS, .metadata = meta[i], .metadata_len = (size_t)len };
    }
    return me_client_upsert(c, coll, docs, n, DIM, st);
}

/* Everything one replica holds in a collection, as one canonical byte
 * string (ids in order, each with its metadata and vectors); NULL when
 * the collection is missing. *count = documents. */
static char *snapshot(me_client_t *c, const char *coll, size_t *len, size_t *count) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap), *after = NULL;
    *count = 0;
    me_status_t st;
    for (;;) {
        char **ids = NULL, *next = NULL;
        size_t nids = 0;
        if (me_client_list_ids(c, coll, after, 200, &ids, &nids, &next, &st) != 0) {
            free(after);
            free(buf);
            return NULL;
        }
        me_record_t *recs = NULL;
        size_t nrec = 0;
        if (nids && me_client_get(c, coll, (const char *const *)ids, nids, 1, &recs, &nrec, &st) != 0) nrec = 0;
        for (size_t i = 0; i < nrec; i++) {
            size_t need = strlen(recs[i].id) + recs[i].metadata_len + (size_t)recs[i].rows * recs[i].dim * 4 + 16;
            while (n + need > cap) buf = realloc(buf, cap *= 2);
            n += (size_t)sprintf(buf + n, "%s|", recs[i].id);
            memcpy(buf + n, recs[i].metadata, recs[i].metadata_len);
            n += recs[i].metadata_len;
            memcpy(buf + n, recs[i].vectors, (size_t)recs[i].rows * recs[i].dim * 4);
            n += (size_t)recs[i].rows * recs[i].dim * 4;
            buf[n++] = '\n';
        }
        *count += nrec;
        me_records_free(recs, nrec);
        me_ids_free(ids, nids);
        free(after);
        after = next;
        if (!after) break;
    }
    *len = n;
    return buf;
}

/* The op number a document's metadata holds ({"n":N}), -1 if none. */
static long meta_op(const me_record_t *r) {
    char tmp[48];
    size_t l = r->metadata_len < sizeof tmp - 1 ? r->metadata_len : sizeof tmp - 1;
    memcpy(tmp, r->metadata, l);
    tmp[l] = 0;
    long n = -1;
    return sscanf(tmp, "{\"n\":%ld}", &n) == 1 ? n : -1;
}

static int has_collection(me_client_t *c, const char *name) {
    me_collection_info_t *infos = NULL;
    size_t n = 0;
    me_status_t st;
    if (me_client_list_collections(c, &infos, &n, &st) != 0) return -1;
    int found = 0;
    for (size_t i = 0; i < n; i++) found |= strcmp(infos[i].name, name) == 0;
    free(infos);
    return found;
}

/* The sum of a metric's samples on a daemon's /metrics (-1: no answer). */
static long metric_value(int port, const char *name) {
    char *body = NULL;
    if (me_test_http_get(port, "/metrics", &body) != 200) { free(body); return -1; }
    long total = 0;
    size_t nl = strlen(name);
    for (char *p = body; (p = strstr(p, name)) != NULL; p += nl) {
        if (p != body && p[-1] != '\n') continue;
        char *sp = strchr(p, ' ');
        if (sp && (p[nl] == '{' || p[nl] == ' ')) total += strtol(sp + 1, NULL, 10);
    }
    free(body);
    return total;
}

/* Waits until a repair pass has run and the coordinator reports no stale
 * replica twice in a row; the time it took in ms, or -1 after limit_ms. */
static long wait_converged(cluster_t *c, long limit_ms) {
    double t0 = me_test_now_ms();
    int clean = 0;
    while (me_test_now_ms() - t0 < limit_ms) {
        long stale = metric_value(c->coord.metrics_port, "metaembed_replica_stale");
        long passes = metric_value(c->coord.metrics_port, "metaembed_repair_passes_total");
        clean = stale == 0 && passes >= 1 ? clean + 1 : 0;
        if (clean == 2) return (long)(me_test_now_ms() - t0);
        usleep(200000);
    }
    return -1;
}

/* Every replica of every group holds byte-identical data in coll (or all
 * lack it); returns the groups that differ. */
static int divergent_groups(cluster_t *c, const char *coll, size_t *docs_total) {
    int bad = 0;
    *docs_total = 0;
    for (int g = 0; g < c->groups; g++) {
        char *first = NULL;
        size_t first_len = 0, first_n = 0;
        for (int k = 0; k < c->replicas; k++) {
            me_client_t *sc = me_daemon_client(&c->shards[g * c->replicas + k]);
            size_t len = 0, n = 0;
            char *s = sc ? snapshot(sc, coll, &len, &n) : NULL;
            me_client_close(sc);
            if (k == 0) {
                first = s;
                first_len = len;
                first_n = n;
                *docs_total += n;
                continue;
            }
            int same = (!s && !first) || (s && first && len == first_len && memcmp(s, first, len) == 0);
            if (!same) {
                fprintf(stderr, "    group %d: replica %d holds %zu documents (%zu bytes), replica 0 %zu (%zu bytes)\n",
                        g, k, n, len, first_n, first_len);
                bad++;
            }
            free(s);
        }
        free(first);
    }
    return bad;
}

TEST(converge_replica_killed_during_writes_catches_up_and_is_not_read_stale) {
    cluster_t c;
    memset(&c, 0, sizeof c);
    const char *extra[] = { "--write-quorum=1", "--repair-ms=60000", NULL };
    ASSERT_OK(cluster_start(&c, 2, 2, extra));
    me_client_t *cli = cluster_client(&c, DIM, ROWS);
    ASSERT_TRUE(cli != NULL);
    me_client_set_timeout(cli, 5000);
    me_status_t st;
    enum { N = 600 };
    static char idbuf[N + 300][16];
    const char *ids[N + 300];
    long op[N + 300];  /* the last acknowledged op per id; -1 deleted */
    for (int i = 0; i < N + 300; i++) {
        snprintf(idbuf[i], sizeof idbuf[i], "d%04d", i);
        ids[i] = idbuf[i];
        op[i] = -2;  /* never written */
    }
    for (int i = 0; i < N; i += 50) ASSERT_OK(put(cli, "c", ids + i, 50, 1, &st));
    for (int i = 0; i < N; i++) op[i] = 1;
    me_collection_spec_t old = { .name = "old", .dim = DIM, .max_doc_vectors = ROWS, .dtype = "f32" };
    ASSERT_OK(me_client_create_collection(cli, &old, &st));

    /* Group 0's first replica dies; writes go on at quorum 1: new ids,
     * overwrites, deletes, a collection created and one dropped. */
    me_daemon_stop(&c.shards[0], 1);
    for (int i = N; i < N + 300; i += 50) ASSERT_OK(put(cli, "c", ids + i, 50, 2, &st));
    for (int i = N; i < N + 300; i++) op[i] = 2;
    for (int i = 0; i < 200; i += 50) ASSERT_OK(put(cli, "c", ids + i, 50, 3, &st));
    for (int i = 0; i < 200; i++) op[i] = 3;
    ASSERT_OK(me_client_delete(cli, "c", ids + 200, 100, NULL, &st));
    for (int i = 200; i < 300; i++) op[i] = -1;
    me_collection_spec_t born = { .name = "born", .dim = DIM, .max_doc_vectors = ROWS, .dtype = "f32" };
    int rc = me_client_create_collection(cli, &born, &st);
    ASSERT_EQ(rc, ME_CODE_UNAVAILABLE);  /* applied on 3 of 4, and said so */
    ASSERT_EQ(me_client_drop_collection(cli, "old", &st), ME_CODE_UNAVAILABLE);

    /* It comes back. Reads through the coordinator never see its stale
     * copy, from the first moment (the repair pass waits: --repair-ms is
     * long and the first pass after it rejoins has not run yet or runs now;
     * either way every read must be right). */
    ASSERT_OK(me_daemon_restart(&c.shards[0]));
    int wrong = 0;
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < N + 300; i += 100) {
            me_record_t *recs = NULL;
            size_t n = 0;
            ASSERT_OK(me_client_get(cli, "c", ids + i, 100, 0, &recs, &n, &st));
            size_t at = 0;
            for (int j = i; j < i + 100; j++) {
                if (at < n && strcmp(recs[at].id, ids[j]) == 0) {
                    wrong += op[j] < 0 || meta_op(&recs[at]) != op[j];
                    at++;
                } else wrong += op[j] >= 0;
            }
            me_records_free(recs, n);
        }
    fprintf(stderr, "    wrong Gets right after the restart: %d of %d\n", wrong, 3 * (N + 300));
    ASSERT_EQ(wrong, 0);

    long ms = wait_converged(&c, 20000);
    ASSERT_TRUE(ms >= 0);
    size_t total = 0;
    ASSERT_EQ(divergent_groups(&c, "c", &total), 0);
    ASSERT_EQ(total, N + 300 - 100);
    /* DDL converged the same way. */
    for (int i = 0; i < 4; i++) {
        me_client_t *sc = me_daemon_client(&c.shards[i]);
        ASSERT_TRUE(sc != NULL);
        ASSERT_EQ(has_collection(sc, "born"), 1);
        ASSERT_EQ(has_collection(sc, "old"), 0);
        me_client_close(sc);
    }
    long repaired = metric_value(c.coord.metrics_port, "metaembed_repaired_documents_total");
    fprintf(stderr, "    converged %ld ms after the restart; %ld document versions copied\n", ms, repaired);
    /* Group 0's share (about half) of 300 new, 200 overwritten, 100 deleted. */
    ASSERT_TRUE(repaired >= 250);
    /* A dropped collection stays dropped after a restart of everything. */
    me_daemon_stop(&c.shards[1], 0);
    ASSERT_OK(me_daemon_restart(&c.shards[1]));
    me_client_t *sc = me_daemon_client(&c.shards[1]);
    ASSERT_EQ(has_collection(sc, "old"), 0);
    me_client_close(sc);
    me_client_close(cli);
    cluster_stop(&c);
}

TEST(converge_failed_writes_end_applied_everywhere) {
    cluster_t c;
    memset(&c, 0, sizeof c);
    const char *extra[] = { "--repair-ms=500", NULL };  /* the default quorum: every replica */
    ASSERT_OK(cluster_start(&c, 1, 2, extra));
    me_client_t *cli = cluster_client(&c, DIM, ROWS);
    ASSERT_TRUE(cli != NULL);
    me_client_set_timeout(cli, 5000);
    me_status_t st;
    static char idbuf[200][16];
    const char *ids[200];
    for (int i = 0; i < 200; i++) {
        snprintf(idbuf[i], sizeof idbuf[i], "f%03d", i);
        ids[i] = idbuf[i];
    }
    ASSERT_OK(put(cli, "c", ids, 50, 1, &st));
    /* One replica dies: every write now fails and says so, but reaches
     * the other replica. */
    me_daemon_stop(&c.shards[1], 1);
    int failed = 0;
    for (int i = 50; i < 200; i += 50) failed += put(cli, "c", ids + i, 50, 1, &st) == ME_CODE_UNAVAILABLE;
    ASSERT_EQ(failed, 3);
    ASSERT_TRUE(strstr(st.message, "quorum") != NULL);
    ASSERT_OK(me_daemon_restart(&c.shards[1]));
    ASSERT_TRUE(wait_converged(&c, 20000) >= 0);
    size_t total = 0;
    ASSERT_EQ(divergent_groups(&c, "c", &total), 0);
    ASSERT_EQ(total, 200);  /* applied everywhere, not half-applied */
    /* Repeated Gets agree (they alternated found/missing before). */
    for (int round = 0; round < 10; round++) ASSERT_EQ(me_test_count_ids(cli, "c", ids + 150, 50), 50);
    me_client_close(cli);
    cluster_stop(&c);
}

TEST(converge_quorum_write_does_not_wait_for_a_stopped_replica) {
    cluster_t c;
    memset(&c, 0, sizeof c);
    const char *extra[] = { "--write-quorum=1", NULL };
    ASSERT_OK(cluster_start(&c, 1, 2, extra));
    me_client_t *cli = cluster_client(&c, DIM, ROWS);
    ASSERT_TRUE(cli != NULL);
    me_client_set_timeout(cli, 5000);
    me_status_t st;
    const char *id = "q1";
    ASSERT_OK(put(cli, "c", &id, 1, 1, &st));
    /* Hung, not yet known down: the write answers at quorum. */
    kill(c.shards[1].pid, SIGSTOP);
    double t0 = me_test_now_ms();
    ASSERT_OK(put(cli, "c", &id, 1, 2, &st));
    double first = me_test_now_ms() - t0;
    t0 = me_test_now_ms();
    for (int i = 0; i < 5; i++) ASSERT_OK(put(cli, "c", &id, 1, 3 + i, &st));
    double next5 = me_test_now_ms() - t0;
    fprintf(stderr, "    quorum-1 write with a stopped replica: first %.1f ms, next five %.1f ms in all\n", first, next5);
    /* Before: 4.5 s (half the 5 s deadline waited for the dead replica). */
    ASSERT_TRUE(first < 2000);
    kill(c.shards[1].pid, SIGCONT);
    ASSERT_TRUE(wait_converged(&c, 20000) >= 0);
    size_t total = 0;
    ASSERT_EQ(divergent_groups(&c, "c", &total), 0);
    me_client_close(cli);
    cluster_stop(&c);
}

/* ---- the fault loop ---- */

#define POOL 240
#define MAX_OPS 4096

typedef struct {
    const char *endpoint;
    cluster_t *c;
    atomic_int stop;
    /* Per id: ops in order (n = index + 1): 1 upsert, 2 delete; status:
     * 0 in flight or failed, 1 acknowledged. */
    uint8_t kind[POOL][MAX_OPS];
    atomic_uchar acked[POOL][MAX_OPS];
    atomic_int nops[POOL];
    atomic_int last_acked[POOL];  /* op number of the last acknowledged op; 0 none */
    long attempts, acks, reads, stale_reads, late_reads, read_errors;
    pthread_mutex_t lock;
} loop_t;

static char pool_id[POOL][16];

static void *writer(void *arg) {
    loop_t *L = arg;
    me_status_t st;
    me_client_t *c = NULL;
    me_rng_t r = { 42 };
    while (!atomic_load(&L->stop)) {
        if (!c && !(c = me_client_connect(L->endpoint, 1000, &st))) { usleep(20000); continue; }
        me_client_set_timeout(c, 3000);
        /* A batch of 8 distinct ids, all upserts or all deletes. */
        int base = (int)(me_rng_next(&r) % POOL), del = me_rng_uniform(&r) < 0.2;
        const char *ids[8];
        int which[8], n = 0, opn[8];
        for (int k = 0; k < 8; k++) {
            int i = (base + k * 29) % POOL;
            int o = atomic_load(&L->nops[i]);
            if (o >= MAX_OPS) continue;
            which[n] = i;
            ids[n] = pool_id[i];
            L->kind[i][o] = (uint8_t)(del ? 2 : 1);
            opn[n] = o + 1;
            atomic_store(&L->nops[i], o + 1);
            n++;
        }
        if (!n) break;
        /* Upserts carry the op number: every id of the batch gets its own. */
        int rc = 0;
        L->attempts++;
        if (del) rc = me_client_delete(c, "c", ids, (size_t)n, NULL, &st);
        else {
            me_doc_t docs[8];
            float v[8][ROWS * DIM];
            char meta[8][32];
            for (int k = 0; k < n; k++) {
                op_vectors(ids[k], opn[k], v[k]);
                int len = snprintf(meta[k], sizeof meta[k], "{\"n\":%d}", opn[k]);
                docs[k] = (me_doc_t){ .id = ids[k], .vectors = v[k], .rows = ROWS, .metadata = meta[k],
                                      .metadata_len = (size_t)len };
            }
            rc = me_client_upsert(c, "c", docs, (size_t)n, DIM, &st);
        }
        if (rc == 0) {
            L->acks++;
            for (int k = 0; k < n; k++) {
                atomic_store(&L->acked[which[k]][opn[k] - 1], 1);
                atomic_store(&L->last_acked[which[k]], opn[k]);
            }
        } else if (rc == ME_CODE_UNAVAILABLE || rc == ME_CODE_DEADLINE_EXCEEDED || rc < 0) {
            me_client_close(c);
            c = NULL;
        }
    }
    me_client_close(c);
    return NULL;
}

/* Reads ids through the coordinator: a read must never be older than the
 * last write acknowledged before it began. Found with op m: valid when m
 * is that op or a later upsert. Missing: valid when that op is a delete
 * (or none), or a later delete exists. */
static void *reader(void *arg) {
    loop_t *L = arg;
    me_status_t st;
    me_client_t *c = NULL;
    me_rng_t r = { 7 };
    while (!atomic_load(&L->stop)) {
        if (!c && !(c = me_client_connect(L->endpoint, 1000, &st))) { usleep(20000); continue; }
        me_client_set_timeout(c, 2000);
        int i = (int)(me_rng_next(&r) % POOL);
        int before = atomic_load(&L->last_acked[i]);
        me_record_t *recs = NULL;
        size_t n = 0;
        const char *id = pool_id[i];
        double t0 = me_test_now_ms();
        int rc = me_client_get(c, "c", &id, 1, 0, &recs, &n, &st);
        double took = me_test_now_ms() - t0;
        if (rc != 0) {
            L->read_errors++;
            me_client_close(c);
            c = NULL;
            continue;
        }
        L->reads++;
        if (took > 2000) L->late_reads++;
        int nops = atomic_load(&L->nops[i]), ok;
        if (n == 1) {
            long m = meta_op(&recs[0]);
            ok = m >= before && m >= 1 && m <= nops && L->kind[i][m - 1] == 1;
        } else {
            ok = before == 0 || L->kind[i][before - 1] == 2;
            for (int o = before + 1; o <= nops && !ok; o++) ok = L->kind[i][o - 1] == 2;
        }
        if (!ok && getenv("ME_DEBUG_STALE")) {
            for (int sh = 0; sh < 6; sh++) {
                me_client_t *sc = me_daemon_client(&L->c->shards[sh]);
                me_record_t *rr = NULL;
                size_t nn = 0;
                me_status_t st2;
                if (sc && me_client_get(sc, "c", &id, 1, 0, &rr, &nn, &st2) == 0)
                    fprintf(stderr, "      shard %d: %s op %ld\n", sh, nn ? "found" : "missing", nn ? meta_op(&rr[0]) : 0L);
                me_records_free(rr, nn);
                me_client_close(sc);
            }
            char *body = NULL;
            me_test_http_get(L->c->coord.metrics_port, "/metrics", &body);
            for (char *p = body; p && (p = strstr(p, "\nmetaembed_replica_stale{")); p++) {
                char *e = strchr(p + 1, '\n');
                fprintf(stderr, "      %.*s\n", e ? (int)(e - p - 1) : 80, p + 1);
            }
            free(body);
        }
        if (!ok) {
            if (L->stale_reads < 5)
                fprintf(stderr, "    stale read of %s: %s (op %ld), last acknowledged before the read: op %d (%s)\n", id,
                        n ? "found" : "missing", n ? meta_op(&recs[0]) : 0L, before,
                        before ? (L->kind[i][before - 1] == 1 ? "upsert" : "delete") : "none");
            L->stale_reads++;
        }
        me_records_free(recs, n);
        usleep(2000);
    }
    me_client_close(c);
    return NULL;
}

/* The loop at write quorum `quorum` (of 3). Faults, one at a time:
 * SIGKILL + restart, SIGSTOP + SIGCONT, or a partition between the
 * coordinator and the shard (its relay cut), 100-500 ms each. At quorum 2
 * every read must be fresh (R + W > N); at quorum 1 a write acknowledged by
 * one replica is not readable while that replica is away, so stale reads
 * are counted, not failed. */
static void fault_loop(int quorum) {
    const char *env = getenv("ME_SOAK_FAULTS");
    int faults = env ? atoi(env) : 16;
    if (faults < 1) faults = 1;
    static cluster_t c;
    memset(&c, 0, sizeof c);
    c.relayed = 1;
    char wq[32];
    snprintf(wq, sizeof wq, "--write-quorum=%d", quorum);
    const char *extra[] = { wq, "--repair-ms=1000", "--deadline-ms=2000", NULL };
    ASSERT_OK(cluster_start_with(&c, 2, 3, extra, NULL));
    me_client_t *cli = cluster_client(&c, DIM, ROWS);
    ASSERT_TRUE(cli != NULL);
    me_client_close(cli);
    for (int i = 0; i < POOL; i++) snprintf(pool_id[i], sizeof pool_id[i], "p%03d", i);
    loop_t *L = calloc(1, sizeof *L);
    L->endpoint = c.coord.endpoint;
    L->c = &c;
    pthread_t wt, rt;
    pthread_create(&wt, NULL, writer, L);
    pthread_create(&rt, NULL, reader, L);
    /* Faults: one replica per group at a time at most (quorum 2 of 3 stays
     * reachable), SIGKILL + restart or SIGSTOP + SIGCONT, 100-500 ms each. */
    me_rng_t r = { 99 + (uint64_t)quorum };
    int kills = 0, stops = 0, cuts = 0;
    double t0 = me_test_now_ms();
    for (int f = 0; f < faults; f++) {
        int g = (int)(me_rng_next(&r) % 2), k = (int)(me_rng_next(&r) % 3);
        me_daemon_t *d = &c.shards[g * 3 + k];
        int hold = 100 + (int)(me_rng_next(&r) % 400);
        double kind = me_rng_uniform(&r);
        if (kind < 0.4) {
            me_daemon_stop(d, 1);
            usleep((useconds_t)hold * 1000);
            ASSERT_OK(me_daemon_restart(d));
            kills++;
        } else if (kind < 0.7) {
            relay_cut(&c.relays[g * 3 + k], 1);
            usleep((useconds_t)hold * 1000);
            relay_cut(&c.relays[g * 3 + k], 0);
            cuts++;
        } else {
            kill(d->pid, SIGSTOP);
            usleep((useconds_t)hold * 1000);
            kill(d->pid, SIGCONT);
            stops++;
        }
        usleep((useconds_t)(100 + me_rng_next(&r) % 300) * 1000);
    }
    double run_ms = me_test_now_ms() - t0;
    atomic_store(&L->stop, 1);
    pthread_join(wt, NULL);
    pthread_join(rt, NULL);

    /* The checker: faults stopped, repair done, every replica of a group
     * byte-identical, every acknowledged write there. */
    long conv_ms = wait_converged(&c, 30000);
    size_t total = 0;
    int divergent = divergent_groups(&c, "c", &total);
    cli = me_daemon_client(&c.coord);
    ASSERT_TRUE(cli != NULL);
    me_client_set_timeout(cli, 5000);
    long lost = 0, resurrected = 0, checked = 0;
    for (int i = 0; i < POOL; i++) {
        int last = atomic_load(&L->last_acked[i]), nops = atomic_load(&L->nops[i]);
        if (!last) continue;
        checked++;
        me_record_t *recs = NULL;
        size_t n = 0;
        me_status_t st;
        const char *id = pool_id[i];
        ASSERT_OK(me_client_get(cli, "c", &id, 1, 0, &recs, &n, &st));
        /* What may be there: the last acknowledged op or any later one
         * (unacknowledged writes may have landed). */
        int ok;
        if (n == 1) {
            long m = meta_op(&recs[0]);
            ok = m >= last && m <= nops && L->kind[i][m - 1] == 1;
            if (!ok && L->kind[i][last - 1] == 2) resurrected++;
        } else {
            ok = L->kind[i][last - 1] == 2;
            for (int o = last + 1; o <= nops && !ok; o++) ok = L->kind[i][o - 1] == 2;
        }
        if (!ok && n == 0) lost++;
        if (!ok && n == 1 && L->kind[i][last - 1] == 1) lost++;  /* an older version */
        me_records_free(recs, n);
    }
    me_client_close(cli);
    fprintf(stderr,
            "    fault table, write quorum %d of 3: %d faults (%d SIGKILL + restart, %d partitions, %d SIGSTOP + "
            "SIGCONT) in %.1f s; %ld write batches "
            "tried, %ld acknowledged; %ld ids checked: %ld lost, %ld deleted documents served; %d divergent groups "
            "after repair (converged %ld ms after the faults); %ld reads: %ld stale, %ld late (> 2 s), %ld failed; "
            "%zu documents stored\n",
            quorum, faults, kills, cuts, stops, run_ms / 1e3, L->attempts, L->acks, checked, lost, resurrected, divergent, conv_ms,
            L->reads, L->stale_reads, L->late_reads, L->read_errors, total);
    ASSERT_TRUE(conv_ms >= 0);
    ASSERT_EQ(divergent, 0);
    ASSERT_EQ(lost, 0);
    ASSERT_EQ(resurrected, 0);
    if (quorum >= 2) ASSERT_EQ(L->stale_reads, 0);
    ASSERT_TRUE(L->acks > 0);
    free(L);
    cluster_stop(&c);
}

TEST(converge_fault_loop_2x3_quorum_2_no_loss_no_divergence_no_stale_read) { fault_loop(2); }
TEST(converge_fault_loop_2x3_quorum_1_no_loss_no_divergence) { fault_loop(1); }
TEST(converge_fault_loop_2x3_quorum_all_no_loss_no_divergence_no_stale_read) { fault_loop(3); }



/* ---- deadlines and hedging ---- */

/* An exact top-10 search of collection "c" for q (ROWS x DIM f32), as a
 * request message built here (for raw sends: no client-side timeout). t
 * and shape hold the tensor the message points at. */
static void exact_search_request(const float *q, uint32_t shape[2], Metaembed__Tensor *t, Metaembed__SearchRequest *s) {
    shape[0] = ROWS;
    shape[1] = DIM;
    metaembed__tensor__init(t);
    t->dtype = METAEMBED__DTYPE__DTYPE_F32;
    t->shape = shape;
    t->n_shape = 2;
    t->data.data = (uint8_t *)q;
    t->data.len = (size_t)ROWS * DIM * sizeof *q;
    metaembed__search_request__init(s);
    s->collection = "c";
    s->query = t;
    s->k = 10;
    s->exact = 1;
}



static double median(double *v, int n) {
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return v[n / 2];
}

TEST(hedge_reads_beat_a_hung_replica_and_a_slow_search_fits_its_deadline) {
    cluster_t c;
    memset(&c, 0, sizeof c);
    static const char *const slow[] = { "--slowdown=300", NULL };
    c.shard_extra = slow;
    /* Slow heartbeats: the stopped replicas below stay "up" (not yet known
     * down) for the few seconds this takes, as in the probe. */
    const char *coord_extra[] = { "--heartbeat-ms=2000", NULL };
    ASSERT_OK(cluster_start_with(&c, 1, 2, coord_extra, NULL));
    me_client_t *cli = cluster_client(&c, DIM, ROWS);
    ASSERT_TRUE(cli != NULL);
    me_client_set_timeout(cli, 10000);
    me_status_t st;
    static char idbuf[3000][16];
    const char *ids[3000];
    for (int i = 0; i < 3000; i++) {
        snprintf(idbuf[i], sizeof idbuf[i], "h%04d", i);
        ids[i] = idbuf[i];
    }
    for (int i = 0; i < 3000; i += 50) ASSERT_OK(put(cli, "c", ids + i, 50, 1, &st));
    float q[ROWS * DIM];
    op_vectors("query", 1, q);
    me_search_opts_t o = { .k = 10, .exact = 1 };
    me_results_t res;
    /* The search's own time, both replicas warm. */
    double t[7];
    for (int i = 0; i < 7; i++) {
        double t0 = me_test_now_ms();
        ASSERT_OK(me_client_search(cli, "c", q, ROWS, DIM, &o, &res, &st));
        t[i] = me_test_now_ms() - t0;
        me_results_free(&res);
    }
    double need = median(t, 7);
    /* A deadline of twice that: the first replica used to get half of it
     * (then UNAVAILABLE after both replicas did the work); now the whole
     * time, with a hedge to the other replica if it is slow. */
    long deadline = (long)(2 * need) + 5;
    me_client_set_timeout(cli, (int)deadline);
    int ok = 0;
    for (int i = 0; i < 10; i++) {
        int rc = me_client_search(cli, "c", q, ROWS, DIM, &o, &res, &st);
        if (rc == 0 && !res.partial) ok++;
        if (rc == 0) me_results_free(&res);
    }
    fprintf(stderr, "    exact search %.1f ms (median of 7); with a %ld ms deadline: %d of 10 complete\n", need,
            deadline, ok);
    ASSERT_TRUE(ok >= 8);
    /* A hung replica (not yet known down): the hedge answers, complete,
     * long before half the deadline (where the old retry began). */
    me_client_set_timeout(cli, 10000);
    kill(c.shards[0].pid, SIGSTOP);
    double worst = 0;
    int complete = 0;
    for (int i = 0; i < 10; i++) {
        double t0 = me_test_now_ms();
        int rc = me_client_search(cli, "c", q, ROWS, DIM, &o, &res, &st);
        double took = me_test_now_ms() - t0;
        if (took > worst) worst = took;
        if (rc == 0 && !res.partial) complete++;
        if (rc == 0) me_results_free(&res);
    }
    kill(c.shards[0].pid, SIGCONT);
    fprintf(stderr, "    one replica stopped: %d of 10 complete, slowest %.1f ms (deadline 10000 ms; the search "
            "itself %.1f ms)\n", complete, worst, need);
    ASSERT_EQ(complete, 10);
    /* The hedge waits 2 x p95 of the search, then the search runs again:
     * about 3 x its time; the old retry came after 5,000 ms. */
    ASSERT_TRUE(worst < 3 * need + 1500);
    /* Both stopped: the time runs out, and the answer says so
     * (DEADLINE_EXCEEDED, not UNAVAILABLE: a replica was asked). */
    kill(c.shards[0].pid, SIGSTOP);
    kill(c.shards[1].pid, SIGSTOP);
    me_client_set_timeout(cli, 400);
    me_search_opts_t strict = o;
    strict.all_or_nothing = 1;
    int rc = me_client_search(cli, "c", q, ROWS, DIM, &strict, &res, &st);
    if (rc == 0) me_results_free(&res);
    const char *one = "h0001";
    me_record_t *recs = NULL;
    size_t nrec = 0;
    int grc = me_client_get(cli, "c", &one, 1, 0, &recs, &nrec, &st);
    me_records_free(recs, nrec);
    kill(c.shards[0].pid, SIGCONT);
    kill(c.shards[1].pid, SIGCONT);
    fprintf(stderr, "    both stopped: search %d, get %d (%s)\n", rc, grc, st.message);
    ASSERT_EQ(rc, ME_CODE_DEADLINE_EXCEEDED);
    ASSERT_EQ(grc, ME_CODE_DEADLINE_EXCEEDED);
    me_client_close(cli);
    cluster_stop(&c);
}

/* The shard checks its deadline by time, not every 4,096 documents: a
 * search that needs far more than its deadline answers DEADLINE_EXCEEDED
 * soon after it (before: after its first 4,096 documents, 1.83 s for a
 * 200 ms deadline in the probe). */
TEST(deadline_shard_stops_a_long_scan_soon_after_its_deadline) {
    me_daemon_t d = { .extra = { "--slowdown=300" }, .nextra = 1 };
    ASSERT_OK(me_daemon_start(&d, "metaembed-shard", "dlshard"));
    me_client_t *cli = me_daemon_client(&d);
    ASSERT_TRUE(cli != NULL);
    me_status_t st;
    me_collection_spec_t spec = { .name = "c", .dim = DIM, .max_doc_vectors = ROWS, .dtype = "f32" };
    ASSERT_OK(me_client_create_collection(cli, &spec, &st));
    static char idbuf[4000][16];
    const char *ids[4000];
    for (int i = 0; i < 4000; i++) {
        snprintf(idbuf[i], sizeof idbuf[i], "s%04d", i);
        ids[i] = idbuf[i];
    }
    for (int i = 0; i < 4000; i += 50) ASSERT_OK(put(cli, "c", ids + i, 50, 1, &st));
    float q[ROWS * DIM];
    op_vectors("query", 1, q);
    me_search_opts_t o = { .k = 10, .exact = 1 };
    me_results_t res;
    double t0 = me_test_now_ms();
    ASSERT_OK(me_client_search(cli, "c", q, ROWS, DIM, &o, &res, &st));
    double full = me_test_now_ms() - t0;
    me_results_free(&res);
    me_client_close(cli);
    /* The same search with a deadline of a tenth of that, sent raw so the
     * client does not give up first: the reply's time is the shard's. */
    uint32_t shape[2];
    Metaembed__Tensor t;
    Metaembed__SearchRequest s;
    exact_search_request(q, shape, &t, &s);
    void *zctx = me_wire_context();
    void *sock = me_wire_connect(zctx, d.endpoint, NULL);
    ASSERT_TRUE(sock != NULL);
    uint32_t deadline = (uint32_t)(full / 10 > 5 ? full / 10 : 5);
    me_reply_t rep;
    me_reply_init(&rep);
    t0 = me_test_now_ms();
    ASSERT_OK(me_wire_call(sock, 1, METAEMBED__METHOD__METHOD_SEARCH, deadline, &s.base, 10000, &rep));
    double took = me_test_now_ms() - t0;
    fprintf(stderr, "    full exact scan %.0f ms; with a %u ms deadline: status %d after %.1f ms\n", full, deadline,
            rep.status, took);
    ASSERT_EQ(rep.status, ME_CODE_DEADLINE_EXCEEDED);
    ASSERT_TRUE(took < full / 2);
    me_reply_clear(&rep);
    me_wire_close(sock);
    me_wire_context_end(zctx);
    me_daemon_free(&d);
}

/* ---- overload ---- */

typedef struct {
    const char *endpoint;
    atomic_int stop;
    atomic_int done;
} searcher_t;

static void *long_searches(void *arg) {
    searcher_t *s = arg;
    me_status_t st;
    me_client_t *c = me_client_connect(s->endpoint, 2000, &st);
    float q[ROWS * DIM];
    op_vectors("query", 2, q);
    me_search_opts_t o = { .k = 10, .exact = 1 };
    while (c && !atomic_load(&s->stop)) {
        me_results_t res;
        me_client_set_timeout(c, 30000);
        if (me_client_search(c, "c", q, ROWS, DIM, &o, &res, &st) == 0) me_results_free(&res);
        atomic_fetch_add(&s->done, 1);
    }
    me_client_close(c);
    return NULL;
}

TEST(overload_long_searches_starve_neither_lookups_nor_heartbeats_and_a_flood_is_shed) {
    cluster_t c;
    memset(&c, 0, sizeof c);
    static const char *const slow[] = { "--slowdown=2000", "--max-queue=8", NULL };
    c.shard_extra = slow;
    ASSERT_OK(cluster_start_with(&c, 1, 1, NULL, NULL));
    me_client_t *cli = cluster_client(&c, DIM, ROWS);
    ASSERT_TRUE(cli != NULL);
    me_status_t st;
    static char idbuf[3000][16];
    const char *ids[3000];
    for (int i = 0; i < 3000; i++) {
        snprintf(idbuf[i], sizeof idbuf[i], "o%04d", i);
        ids[i] = idbuf[i];
    }
    me_client_set_timeout(cli, 10000);
    for (int i = 0; i < 3000; i += 50) ASSERT_OK(put(cli, "c", ids + i, 50, 1, &st));
    me_client_close(cli);
    /* Four long searches at a time, straight to the shard (2 workers). */
    searcher_t s = { .endpoint = c.shards[0].endpoint };
    pthread_t th[4];
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, long_searches, &s);
    usleep(300000);
    me_client_t *sc = me_daemon_client(&c.shards[0]);
    ASSERT_TRUE(sc != NULL);
    me_client_set_timeout(sc, 3000);
    int answered = 0, down_seen = 0;
    double slowest = 0;
    for (int i = 0; i < 21; i++) {
        me_record_t *recs = NULL;
        size_t n = 0;
        double t0 = me_test_now_ms();
        if (me_client_get(sc, "c", ids + i * 10, 10, 0, &recs, &n, &st) == 0 && n == 10) answered++;
        double took = me_test_now_ms() - t0;
        if (took > slowest) slowest = took;
        me_records_free(recs, n);
        if (metric_value(c.coord.metrics_port, "metaembed_replica_up") == 0) down_seen++;
        usleep(100000);
    }
    fprintf(stderr, "    under 4 long searches (%d finished): %d of 21 lookups answered, slowest %.1f ms; shard seen "
            "down %d times\n", atomic_load(&s.done), answered, slowest, down_seen);
    me_client_close(sc);
    ASSERT_EQ(answered, 21);
    ASSERT_EQ(down_seen, 0);
    atomic_store(&s.stop, 1);
    /* A flood: 40 searches at once on one socket. The heavy lane holds 8
     * and 2 run; the rest are refused at once, not left to time out. */
    void *zctx = me_wire_context();
    void *sock = me_wire_connect(zctx, c.shards[0].endpoint, NULL);
    ASSERT_TRUE(sock != NULL);
    float q[ROWS * DIM];
    op_vectors("query", 3, q);
    uint32_t shape[2];
    Metaembed__Tensor t;
    Metaembed__SearchRequest sr;
    exact_search_request(q, shape, &t, &sr);
    size_t plen;
    uint8_t *payload = me_wire_pack(&sr.base, &plen);
    double t0 = me_test_now_ms();
    for (int i = 0; i < 40; i++)
        ASSERT_OK(me_wire_send_request(sock, (uint64_t)(i + 1), METAEMBED__METHOD__METHOD_SEARCH, 60000, payload, plen, 0));
    free(payload);
    int shed = 0, got = 0, ok = 0;
    double last_shed = 0;
    while (got < 40 && me_test_now_ms() - t0 < 120000) {
        zmq_pollitem_t it = { sock, 0, ZMQ_POLLIN, 0 };
        if (zmq_poll(&it, 1, 1000) <= 0) continue;
        zmq_msg_t m;
        int more = 1;
        while (more) {
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, sock, 0) < 0) { zmq_msg_close(&m); break; }
            more = zmq_msg_more(&m);
            if (!more) {
                Metaembed__Reply *rep = metaembed__reply__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
                int code = rep && rep->status ? (int)rep->status->code : 0;
                if (code == ME_CODE_RESOURCE_EXHAUSTED) { shed++; last_shed = me_test_now_ms() - t0; }
                if (code == ME_CODE_OK) ok++;
                if (rep) metaembed__reply__free_unpacked(rep, NULL);
                got++;
            }
            zmq_msg_close(&m);
        }
    }
    long shed_metric = metric_value(c.shards[0].metrics_port, "metaembed_requests_shed_total");
    fprintf(stderr, "    a flood of 40 searches: %d refused (RESOURCE_EXHAUSTED, the last %.0f ms after sending), %d "
            "answered OK, of %d replies; shed counter %ld\n", shed, last_shed, ok, got, shed_metric);
    ASSERT_EQ(got, 40);
    ASSERT_TRUE(shed >= 40 - 8 - 2 - 4);  /* all but the lane, the running ones, and the four long searches' share */
    ASSERT_TRUE(last_shed < 1000);
    ASSERT_TRUE(shed_metric >= shed);
    me_wire_close(sock);
    me_wire_context_end(zctx);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    cluster_stop(&c);
}

/* Many collections: the coordinator's List merges them in O(n log n) and
 * its upserts read the collection's config from its cache, not every
 * group's full list; a shard refuses collections past --max-collections. */
TEST(metadata_many_collections_list_once_each_and_upserts_stay_cheap) {
    cluster_t c;
    memset(&c, 0, sizeof c);
    static const char *const lim[] = { "--max-collections=1501", NULL };
    c.shard_extra = lim;
    ASSERT_OK(cluster_start_with(&c, 2, 1, NULL, NULL));
    me_client_t *cli = cluster_client(&c, DIM, ROWS);  /* "c": the first collection */
    ASSERT_TRUE(cli != NULL);
    me_client_set_timeout(cli, 10000);
    me_status_t st;
    const char *id = "one";
    double t[21];
    for (int i = 0; i < 21; i++) {
        double t0 = me_test_now_ms();
        ASSERT_OK(put(cli, "c", &id, 1, i + 1, &st));
        t[i] = me_test_now_ms() - t0;
    }
    double p50_one = median(t, 21);
    for (int i = 0; i < 1500; i++) {
        char name[32];
        snprintf(name, sizeof name, "m%04d", 1499 - i);  /* created in reverse order */
        me_collection_spec_t spec = { .name = name, .dim = DIM, .max_doc_vectors = ROWS, .dtype = "f32" };
        ASSERT_OK(me_client_create_collection(cli, &spec, &st));
    }
    me_collection_spec_t over = { .name = "over", .dim = DIM, .max_doc_vectors = ROWS, .dtype = "f32" };
    ASSERT_EQ(me_client_create_collection(cli, &over, &st), ME_CODE_RESOURCE_EXHAUSTED);
    ASSERT_TRUE(strstr(st.message, "--max-collections") != NULL);
    for (int i = 0; i < 21; i++) {
        double t0 = me_test_now_ms();
        ASSERT_OK(put(cli, "c", &id, 1, 100 + i, &st));
        t[i] = me_test_now_ms() - t0;
    }
    double p50_many = median(t, 21);
    double t0 = me_test_now_ms();
    me_collection_info_t *infos = NULL;
    size_t n = 0;
    ASSERT_OK(me_client_list_collections(cli, &infos, &n, &st));
    double list_ms = me_test_now_ms() - t0;
    ASSERT_EQ(n, 1501);
    for (size_t i = 1; i < n; i++) ASSERT_TRUE(strcmp(infos[i - 1].name, infos[i].name) < 0);  /* once each, by name */
    free(infos);
    fprintf(stderr, "    single-document upsert p50: %.2f ms with 1 collection, %.2f ms with 1,501; List of 1,501: %.1f ms\n",
            p50_one, p50_many, list_ms);
    me_client_close(cli);
    cluster_stop(&c);
}

/* SyncState, as an attacker would send it: decoded fields changed. */
TEST(sync_state_refuses_bad_buckets_and_unknown_collections_and_coordinators_do_not_serve_it) {
    cluster_t c;
    memset(&c, 0, sizeof c);
    ASSERT_OK(cluster_start(&c, 1, 1, NULL));
    me_client_t *cli = cluster_client(&c, DIM, ROWS);
    ASSERT_TRUE(cli != NULL);
    me_status_t st;
    const char *ids[2] = { "a", "b" };
    ASSERT_OK(put(cli, "c", ids, 2, 1, &st));
    me_client_close(cli);
    void *zctx = me_wire_context();
    void *sock = me_wire_connect(zctx, c.shards[0].endpoint, NULL);
    void *csock = me_wire_connect(zctx, c.coord.endpoint, NULL);
    ASSERT_TRUE(sock && csock);
    Metaembed__SyncStateRequest q = METAEMBED__SYNC_STATE_REQUEST__INIT;
    q.collection = "c";
    me_reply_t rep;
    me_reply_init(&rep);
    uint64_t rid = 1;
    ASSERT_OK(me_wire_call(sock, rid++, METAEMBED__METHOD__METHOD_SYNC_STATE, 2000, &q.base, 5000, &rep));
    ASSERT_EQ(rep.status, ME_CODE_OK);
    Metaembed__SyncStateReply *s = metaembed__sync_state_reply__unpack(NULL, rep.payload_len, rep.payload);
    ASSERT_TRUE(s != NULL);
    ASSERT_EQ(s->n_digests, 256);
    int nonzero = 0;
    for (size_t i = 0; i < s->n_digests; i++) nonzero += s->digests[i] != 0;
    ASSERT_TRUE(nonzero >= 1 && nonzero <= 2);  /* two ids: one or two buckets */
    metaembed__sync_state_reply__free_unpacked(s, NULL);
    uint32_t bad[3] = { 0, 256, 4294967295u };
    q.list_buckets = bad;
    q.n_list_buckets = 3;
    ASSERT_OK(me_wire_call(sock, rid++, METAEMBED__METHOD__METHOD_SYNC_STATE, 2000, &q.base, 5000, &rep));
    ASSERT_EQ(rep.status, ME_CODE_INVALID_ARGUMENT);
    ASSERT_TRUE(strstr(rep.message, "out of range") != NULL);
    q.n_list_buckets = 1;  /* bucket 0: a valid list */
    ASSERT_OK(me_wire_call(sock, rid++, METAEMBED__METHOD__METHOD_SYNC_STATE, 2000, &q.base, 5000, &rep));
    ASSERT_EQ(rep.status, ME_CODE_OK);
    q.collection = "nope";
    ASSERT_OK(me_wire_call(sock, rid++, METAEMBED__METHOD__METHOD_SYNC_STATE, 2000, &q.base, 5000, &rep));
    ASSERT_EQ(rep.status, ME_CODE_NOT_FOUND);
    q.collection = "c\xff";
    ASSERT_OK(me_wire_call(sock, rid++, METAEMBED__METHOD__METHOD_SYNC_STATE, 2000, &q.base, 5000, &rep));
    ASSERT_EQ(rep.status, ME_CODE_INVALID_ARGUMENT);
    q.collection = "c";
    ASSERT_OK(me_wire_call(csock, rid++, METAEMBED__METHOD__METHOD_SYNC_STATE, 2000, &q.base, 5000, &rep));
    ASSERT_TRUE(rep.status == ME_CODE_UNIMPLEMENTED || rep.status == ME_CODE_INVALID_ARGUMENT);
    me_reply_clear(&rep);
    me_wire_close(sock);
    me_wire_close(csock);
    me_wire_context_end(zctx);
    cluster_stop(&c);
}
