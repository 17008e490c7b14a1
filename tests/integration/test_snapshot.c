/* Snapshots (issue 20, part 2): a snapshot taken through the coordinator
 * while a writer keeps writing holds exactly the batches acknowledged
 * before it began (and of those in flight, each all or nothing), none that
 * began after it returned; restoring every shard from it brings back that
 * state byte for byte, whatever was written or deleted since. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/cluster.h"
#include "tests/harness.h"

#define DIM 8
#define ROWS 2
#define BATCH 10
#define MAX_BATCHES 4000

static void vectors(long b, int i, float *v) {
    me_rng_t r = { (uint64_t)(b * 131 + i + 7) };
    me_rng_unit_rows(&r, v, ROWS, DIM);
}

typedef struct {
    const char *endpoint;
    atomic_int stop;
    atomic_long next;
    double started[MAX_BATCHES], acked_at[MAX_BATCHES];  /* ms; acked_at 0 = not acknowledged */
} writer_t;

static void *writer_main(void *arg) {
    writer_t *w = arg;
    me_status_t st;
    me_client_t *c = me_client_connect(w->endpoint, 2000, &st);
    while (c && !atomic_load(&w->stop)) {
        long b = atomic_fetch_add(&w->next, 1);
        if (b >= MAX_BATCHES) break;
        me_doc_t docs[BATCH];
        float v[BATCH][ROWS * DIM];
        char ids[BATCH][48], meta[BATCH][32];
        for (int i = 0; i < BATCH; i++) {
            snprintf(ids[i], sizeof ids[i], "b%04ld-%d", b, i);
            vectors(b, i, v[i]);
            int len = snprintf(meta[i], sizeof meta[i], "{\"b\":%ld}", b);
            docs[i] = (me_doc_t){ .id = ids[i], .vectors = v[i], .rows = ROWS, .metadata = meta[i], .metadata_len = (size_t)len };
        }
        w->started[b] = me_test_now_ms();
        if (me_client_upsert(c, "c", docs, BATCH, DIM, &st) == 0) w->acked_at[b] = me_test_now_ms();
    }
    me_client_close(c);
    return NULL;
}

/* How many of batch b's documents the cluster holds, each checked byte
 * for byte against what was written. -1 when one differs. */
static int batch_present(me_client_t *c, long b) {
    char idbuf[BATCH][48];
    const char *ids[BATCH];
    for (int i = 0; i < BATCH; i++) {
        snprintf(idbuf[i], sizeof idbuf[i], "b%04ld-%d", b, i);
        ids[i] = idbuf[i];
    }
    me_record_t *recs = NULL;
    size_t n = 0;
    me_status_t st;
    if (me_client_get(c, "c", ids, BATCH, 1, &recs, &n, &st) != 0) return -1;
    int bad = 0;
    for (size_t k = 0; k < n; k++) {
        int i = atoi(strchr(recs[k].id, '-') + 1);
        float v[ROWS * DIM];
        vectors(b, i, v);
        char meta[32];
        int len = snprintf(meta, sizeof meta, "{\"b\":%ld}", b);
        if (recs[k].rows != ROWS || memcmp(recs[k].vectors, v, sizeof v) != 0 || recs[k].metadata_len != (size_t)len ||
            memcmp(recs[k].metadata, meta, (size_t)len) != 0)
            bad++;
    }
    me_records_free(recs, n);
    return bad ? -1 : (int)n;
}

TEST(snapshot_under_ingest_restores_exactly_the_writes_acknowledged_before_it) {
    cluster_t c;
    memset(&c, 0, sizeof c);
    ASSERT_OK(cluster_start(&c, 2, 2, NULL));
    me_client_t *cli = cluster_client(&c, DIM, ROWS);
    ASSERT_TRUE(cli != NULL);
    me_client_set_timeout(cli, 20000);
    writer_t *w = calloc(1, sizeof *w);
    w->endpoint = c.coord.endpoint;
    pthread_t wt;
    pthread_create(&wt, NULL, writer_main, w);
    while (atomic_load(&w->next) < 200) usleep(10000);
    /* The snapshot, mid-ingest. */
    me_status_t st;
    me_snapshot_info_t snap;
    double t_begin = me_test_now_ms();
    ASSERT_OK(me_client_snapshot_create(cli, "s1", &snap, &st));
    double t_end = me_test_now_ms();
    while (atomic_load(&w->next) < 320) usleep(10000);
    atomic_store(&w->stop, 1);
    pthread_join(wt, NULL);
    long nb = atomic_load(&w->next);
    if (nb > MAX_BATCHES) nb = MAX_BATCHES;
    fprintf(stderr, "    snapshot %s: %llu documents on %u replicas, %llu bytes, taken in %.1f ms under ingest\n", snap.id,
            (unsigned long long)snap.documents, snap.replicas, (unsigned long long)snap.bytes, t_end - t_begin);
    ASSERT_STREQ(snap.id, "s1");
    ASSERT_EQ(snap.replicas, 4);
    /* Since the snapshot: a deletion of an early batch, and bad requests. */
    char early[BATCH][48];
    const char *eids[BATCH];
    for (int i = 0; i < BATCH; i++) {
        snprintf(early[i], sizeof early[i], "b%04d-%d", 3, i);
        eids[i] = early[i];
    }
    ASSERT_OK(me_client_delete(cli, "c", eids, BATCH, NULL, &st));
    ASSERT_EQ(me_client_snapshot_create(cli, "s1", &snap, &st), ME_CODE_ALREADY_EXISTS);
    ASSERT_EQ(me_client_snapshot_create(cli, "../etc", &snap, &st), ME_CODE_INVALID_ARGUMENT);
    ASSERT_EQ(me_client_snapshot_create(cli, "nul\xff", &snap, &st), ME_CODE_INVALID_ARGUMENT);
    ASSERT_EQ(me_client_snapshot_delete(cli, "nope", &st), 0);  /* absent everywhere: nothing to do */
    /* No id: the coordinator names it (it once freed a stack buffer here:
     * tests/fuzz/regressions/coordinator_request). */
    me_snapshot_info_t named;
    ASSERT_OK(me_client_snapshot_create(cli, NULL, &named, &st));
    ASSERT_TRUE(strncmp(named.id, "snap-", 5) == 0);
    ASSERT_OK(me_client_snapshot_delete(cli, named.id, &st));
    me_snapshot_info_t *list = NULL;
    size_t n = 0;
    ASSERT_OK(me_client_snapshot_list(cli, &list, &n, &st));
    ASSERT_EQ(n, 1);
    ASSERT_STREQ(list[0].id, "s1");
    ASSERT_EQ(list[0].replicas, 4);
    free(list);
    me_client_close(cli);

    /* Restore: every shard stopped and started from the snapshot. */
    for (int i = 0; i < 4; i++) {
        me_daemon_stop(&c.shards[i], 0);
        c.shards[i].extra[c.shards[i].nextra++] = "--restore-snapshot=s1";
        ASSERT_OK(me_daemon_restart(&c.shards[i]));
        c.shards[i].nextra--;
    }
    cli = me_daemon_client(&c.coord);
    ASSERT_TRUE(cli != NULL);
    me_client_set_timeout(cli, 20000);
    usleep(500000);  /* the coordinator sees them back */
    long before = 0, after = 0, inflight = 0, torn = 0, wrong = 0, missing_before = 0, present_after = 0;
    for (long b = 0; b < nb; b++) {
        if (!w->started[b]) continue;
        int k = -1;
        for (int tries = 0; tries < 20 && k < 0; tries++) {
            k = batch_present(cli, b);
            if (k < 0) usleep(100000);
        }
        if (k < 0) { wrong++; continue; }
        if (w->acked_at[b] && w->acked_at[b] < t_begin) {
            before++;
            if (k != BATCH) missing_before++;
        } else if (w->started[b] > t_end) {
            after++;
            if (k != 0) present_after++;
        } else {
            inflight++;
            if (k != 0 && k != BATCH) torn++;
        }
    }
    fprintf(stderr, "    restored: %ld batches acknowledged before the snapshot (%ld incomplete), %ld begun after it "
            "(%ld present), %ld in flight (%ld torn), %ld with a wrong byte\n",
            before, missing_before, after, present_after, inflight, torn, wrong);
    ASSERT_TRUE(before >= 150);
    ASSERT_TRUE(after >= 50);
    ASSERT_EQ(missing_before, 0);  /* batch 3, deleted since, is back too */
    ASSERT_EQ(present_after, 0);
    ASSERT_EQ(torn, 0);
    ASSERT_EQ(wrong, 0);
    /* Off-site: export shard 1's copy, import it elsewhere, start a shard
     * from it; a flipped byte or a cut archive is refused on import. */
    char bin[512], ddir[700], archive[700], fresh[700], bad[700];
    me_test_bin("metaembed-shard", bin, sizeof bin);
    snprintf(ddir, sizeof ddir, "--data-dir=%s/data", c.shards[1].dir);
    snprintf(archive, sizeof archive, "--archive=%s/s1.tar", c.dir);
    char *exp_argv[] = { bin, ddir, "--export-snapshot=s1", archive, NULL };
    ASSERT_EQ(me_test_run(exp_argv, NULL, NULL), 0);
    char *cdir = me_test_tmpdir("snapcopy");
    snprintf(fresh, sizeof fresh, "--data-dir=%s/data", cdir);
    char imp[800];
    snprintf(imp, sizeof imp, "--import-snapshot=%s/s1.tar", c.dir);
    char *imp_argv[] = { bin, fresh, imp, NULL };
    ASSERT_EQ(me_test_run(imp_argv, NULL, NULL), 0);
    /* A byte flipped in the middle of the archive. */
    char tarpath[700], badpath[700];
    snprintf(tarpath, sizeof tarpath, "%s/s1.tar", c.dir);
    snprintf(badpath, sizeof badpath, "%s/s1-bad.tar", c.dir);
    char *tar = NULL;
    FILE *tf = fopen(tarpath, "rb");
    ASSERT_TRUE(tf != NULL);
    fseek(tf, 0, SEEK_END);
    long tlen = ftell(tf);
    fseek(tf, 0, SEEK_SET);
    tar = malloc((size_t)tlen);
    ASSERT_EQ((long)fread(tar, 1, (size_t)tlen, tf), tlen);
    fclose(tf);
    int refused = 0;
    long offsets[] = { tlen / 2, tlen / 3, 700 };
    for (int k = 0; k < 3; k++) {
        tar[offsets[k]] ^= 0x20;
        FILE *bf = fopen(badpath, "wb");
        fwrite(tar, 1, (size_t)tlen, bf);
        fclose(bf);
        tar[offsets[k]] ^= 0x20;
        char *bdir = me_test_tmpdir("snapbad");
        snprintf(bad, sizeof bad, "--data-dir=%s/data", bdir);
        snprintf(imp, sizeof imp, "--import-snapshot=%s", badpath);
        char *bad_argv[] = { bin, bad, imp, NULL };
        char probe2[800];
        snprintf(probe2, sizeof probe2, "%s/data.snapshots/s1", bdir);
        struct stat sb2;
        if (me_test_run(bad_argv, NULL, NULL) != 0 && stat(probe2, &sb2) != 0) refused++;
        me_test_rmdir(bdir);
        free(bdir);
    }
    /* Cut short. */
    FILE *bf = fopen(badpath, "wb");
    fwrite(tar, 1, (size_t)tlen * 2 / 3, bf);
    fclose(bf);
    char *bdir = me_test_tmpdir("snapcut");
    snprintf(bad, sizeof bad, "--data-dir=%s/data", bdir);
    char *cut_argv[] = { bin, bad, imp, NULL };
    if (me_test_run(cut_argv, NULL, NULL) != 0) refused++;
    me_test_rmdir(bdir);
    free(bdir);
    free(tar);
    fprintf(stderr, "    exported s1 (%ld bytes); damaged copies refused on import: %d of 4\n", tlen, refused);
    ASSERT_EQ(refused, 4);
    /* A shard started on the imported data serves what shard 1 does. */
    me_client_t *a = me_daemon_client(&c.shards[1]), *b = NULL;
    uint64_t na = 0, nb2 = 0;
    ASSERT_OK(me_client_count(a, "c", NULL, &na, &st));
    me_daemon_t copy2 = { .extra = { fresh, "--restore-snapshot=s1" }, .nextra = 2, .no_data_dir = 1 };
    ASSERT_OK(me_daemon_start(&copy2, "metaembed-shard", "snapcopy2"));
    b = me_daemon_client(&copy2);
    ASSERT_TRUE(b != NULL);
    ASSERT_OK(me_client_count(b, "c", NULL, &nb2, &st));
    me_client_close(a);
    me_client_close(b);
    me_daemon_free(&copy2);
    me_test_rmdir(cdir);
    free(cdir);
    fprintf(stderr, "    a shard started from the imported archive holds %llu documents (shard 1: %llu)\n",
            (unsigned long long)nb2, (unsigned long long)na);
    ASSERT_EQ(nb2, na);
    /* The data before the restore is kept beside it, not deleted. */
    char probe[700];
    snprintf(probe, sizeof probe, "%s/data.snapshots/s1", c.shards[0].dir);
    struct stat sb;
    ASSERT_EQ(stat(probe, &sb), 0);
    ASSERT_OK(me_client_snapshot_delete(cli, "s1", &st));
    ASSERT_TRUE(stat(probe, &sb) != 0);
    me_client_close(cli);
    /* An unknown snapshot: the shard refuses to start, and says why. */
    me_daemon_stop(&c.shards[0], 0);
    c.shards[0].extra[c.shards[0].nextra++] = "--restore-snapshot=nope";
    ASSERT_TRUE(me_daemon_restart(&c.shards[0]) != 0);
    c.shards[0].nextra--;
    char *log = me_test_slurp(c.shards[0].log);
    ASSERT_TRUE(log != NULL && strstr(log, "no snapshot 'nope'") != NULL);
    free(log);
    free(w);
    cluster_stop(&c);
}

/* Durability per collection (issue 20, part 3): every policy keeps what it
 * acknowledged through kill -9; group commit shares fsyncs among
 * concurrent writers; a bad policy name is refused. */
typedef struct {
    const me_daemon_t *d;
    const char *coll;
    int who, acked;
} dwriter_t;

static void *dwriter(void *arg) {
    dwriter_t *w = arg;
    me_client_t *c = me_daemon_client(w->d);
    me_status_t st;
    for (int i = 0; c && i < 100; i++) {
        char id[32];
        snprintf(id, sizeof id, "w%d-%d", w->who, i);
        float v[ROWS * DIM];
        vectors(w->who, i, v);
        me_doc_t doc = { .id = id, .vectors = v, .rows = ROWS };
        if (me_client_upsert(c, w->coll, &doc, 1, DIM, &st) == 0) w->acked++;
    }
    me_client_close(c);
    return NULL;
}

TEST(durability_policies_keep_acknowledged_writes_and_group_commit_shares_fsyncs) {
    me_daemon_t d = { .extra = { "--threads=4" }, .nextra = 1 };
    ASSERT_OK(me_daemon_start(&d, "metaembed-shard", "durable"));
    me_client_t *c = me_daemon_client(&d);
    ASSERT_TRUE(c != NULL);
    me_status_t st;
    static const char *const policies[] = { "none", "group", "every_write" };
    for (int p = 0; p < 3; p++) {
        me_collection_spec_t spec = { .name = policies[p], .dim = DIM, .max_doc_vectors = ROWS, .dtype = "f32",
                                      .durability = policies[p] };
        ASSERT_OK(me_client_create_collection(c, &spec, &st));
    }
    me_collection_spec_t bad = { .name = "bad", .dim = DIM, .durability = "sometimes" };
    ASSERT_EQ(me_client_create_collection(c, &bad, &st), ME_CODE_INVALID_ARGUMENT);
    ASSERT_TRUE(strstr(st.message, "none|group|every_write") != NULL);
    me_client_close(c);
    int acked[3] = { 0 };
    for (int p = 0; p < 3; p++) {
        pthread_t th[4];
        dwriter_t w[4];
        for (int k = 0; k < 4; k++) {
            w[k] = (dwriter_t){ &d, policies[p], k, 0 };
            pthread_create(&th[k], NULL, dwriter, &w[k]);
        }
        for (int k = 0; k < 4; k++) {
            pthread_join(th[k], NULL);
            acked[p] += w[k].acked;
        }
    }
    char *body = NULL;
    ASSERT_EQ(me_test_http_get(d.metrics_port, "/metrics", &body), 200);
    char *fs = strstr(body, "\nmetaembed_group_commit_fsyncs_total "), *ws = strstr(body, "\nmetaembed_group_commit_writes_total ");
    ASSERT_TRUE(fs && ws);
    long fsyncs = strtol(strchr(fs + 1, ' ') + 1, NULL, 10), gwrites = strtol(strchr(ws + 1, ' ') + 1, NULL, 10);
    free(body);
    fprintf(stderr, "    group commit: %ld fsyncs for %ld writes from 4 writers\n", fsyncs, gwrites);
    ASSERT_EQ(gwrites, 400);
    ASSERT_TRUE(fsyncs >= 1 && fsyncs <= gwrites);
    /* kill -9: everything acknowledged is there, whatever the policy. */
    me_daemon_stop(&d, 1);
    ASSERT_OK(me_daemon_restart(&d));
    c = me_daemon_client(&d);
    for (int p = 0; p < 3; p++) {
        uint64_t n = 0;
        ASSERT_OK(me_client_count(c, policies[p], NULL, &n, &st));
        ASSERT_EQ((long)n, acked[p]);
        ASSERT_EQ(acked[p], 400);
    }
    me_collection_info_t *infos = NULL;
    size_t ni = 0;
    ASSERT_OK(me_client_list_collections(c, &infos, &ni, &st));
    ASSERT_EQ(ni, 3);
    free(infos);
    me_client_close(c);
    me_daemon_free(&d);
}
