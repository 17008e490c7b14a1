/* CurveZMQ end to end: keys from `metaembed keygen`, a shard and a
 * coordinator with --curve-dir, clients with and without an allowed key,
 * and a man-in-the-middle TCP relay that records every byte on the wire:
 * with keys no stored id or text is seen; without them (the control) it is,
 * so the check can fail. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/daemon.h"
#include "tests/harness.h"
#include "tests/relay.h"

#define MARK_ID "plaintext-id-7f3a9c"
#define MARK_META "plaintext-metadata-51be02"

/* ---- helpers ---- */

static int keygen(const char *dir, const char *client) {
    char bin[512];
    me_test_bin("metaembed", bin, sizeof bin);
    char *argv[] = { bin, "keygen", "--dir", (char *)dir, client ? "--client" : NULL, (char *)client, NULL };
    return me_test_run(argv, NULL, NULL);
}

/* Creates a collection and stores one document with the markers at
 * endpoint (the relay's, in these tests); then searches for it. */
static void store_and_find(const char *endpoint, const char *curve_dir) {
    me_status_t st;
    me_client_t *c = me_client_connect_secure(endpoint, 5000, curve_dir, NULL, &st);
    if (!c) fprintf(stderr, "    connect: %s\n", st.message);
    ASSERT_TRUE(c != NULL);
    me_collection_spec_t spec = { .name = "sec", .dim = 4, .max_doc_vectors = 2, .max_query_vectors = 2 };
    ASSERT_OK(me_client_create_collection(c, &spec, &st));
    float v[8] = { 1, 0, 0, 0, 0, 1, 0, 0 };
    const char *meta = "{\"text\":\"" MARK_META "\"}";
    me_doc_t d = { .id = MARK_ID, .vectors = v, .rows = 2, .metadata = meta, .metadata_len = strlen(meta) };
    ASSERT_OK(me_client_upsert(c, "sec", &d, 1, 4, &st));
    me_search_opts_t o = { .k = 1, .with_metadata = 1 };
    me_results_t res;
    ASSERT_OK(me_client_search(c, "sec", v, 2, 4, &o, &res, &st));
    ASSERT_EQ(res.n, 1);
    ASSERT_TRUE(!strcmp(res.hits[0].id, MARK_ID));
    me_results_free(&res);
    me_client_close(c);
}

static void start_shard(me_daemon_t *d, const char *curve_dir) {
    memset(d, 0, sizeof *d);
    if (curve_dir) {
        d->extra[d->nextra++] = "--curve-dir";
        d->extra[d->nextra++] = curve_dir;
    }
    ASSERT_OK(me_daemon_start(d, "metaembed-shard", curve_dir ? "shard-curve" : "shard-plain"));
}

TEST(curve_encrypts_the_wire_and_refuses_unknown_clients) {
    char *dir = me_test_tmpdir("curve"), keys[600], other[600];
    snprintf(keys, sizeof keys, "%s/keys", dir);
    snprintf(other, sizeof other, "%s/other", dir);
    ASSERT_EQ(keygen(keys, NULL), 0);
    ASSERT_EQ(keygen(keys, "alice"), 0);
    ASSERT_TRUE(keygen(keys, NULL) != 0);  /* never overwrites */
    /* A stranger: a valid key pair of its own and the right server.pub,
     * but not in the shard's allowed_clients. */
    ASSERT_EQ(keygen(other, NULL), 0);
    char cmd[2000];
    snprintf(cmd, sizeof cmd, "cp '%s/server.pub' '%s/server.pub' && rm '%s/server.key'", keys, other, other);
    ASSERT_EQ(system(cmd), 0);

    me_daemon_t shard;
    start_shard(&shard, keys);
    relay_t relay;
    ASSERT_OK(relay_start(&relay, shard.port, 1));
    char via[64];
    snprintf(via, sizeof via, "tcp://127.0.0.1:%d", relay.port);

    /* The allowed client works, and the wire shows none of what it sent. */
    store_and_find(via, keys);
    me_status_t st;
    me_client_t *alice = me_client_connect_secure(shard.endpoint, 5000, keys, "alice", &st);
    ASSERT_TRUE(alice != NULL);
    me_client_close(alice);
    ASSERT_TRUE(relay.nseen > 500);
    ASSERT_TRUE(memmem(relay.seen, relay.nseen, MARK_ID, strlen(MARK_ID)) == NULL);
    ASSERT_TRUE(memmem(relay.seen, relay.nseen, MARK_META, strlen(MARK_META)) == NULL);
    ASSERT_TRUE(memmem(relay.seen, relay.nseen, "CURVE", 5) != NULL);  /* the ZMTP greeting names it */
    printf("    %zu bytes on the wire, markers absent\n", relay.nseen);

    /* No key: refused, and told why rather than left to time out. */
    me_client_t *plain = me_client_connect(shard.endpoint, 2000, &st);
    ASSERT_TRUE(plain == NULL);
    ASSERT_TRUE(strstr(st.message, "handshake") != NULL || strstr(st.message, "no reply") != NULL);
    printf("    no key: %s\n", st.message);
    /* A key the shard does not allow: refused by ZAP. */
    me_client_t *stranger = me_client_connect_secure(shard.endpoint, 2000, other, NULL, &st);
    ASSERT_TRUE(stranger == NULL);
    ASSERT_TRUE(strstr(st.message, "refused this client's key") != NULL);
    printf("    unknown key: %s\n", st.message);
    relay_stop(&relay);
    free(relay.seen);
    char *log = me_test_slurp(shard.log);
    ASSERT_TRUE(log && strstr(log, "not in allowed_clients"));
    /* Logs never print keys. */
    char *secret = NULL;
    snprintf(cmd, sizeof cmd, "%s/server.key", keys);
    char *keyfile = me_test_slurp(cmd);
    ASSERT_TRUE(keyfile && (secret = strstr(keyfile, "secret = ")));
    secret += 9;
    secret[40] = 0;
    ASSERT_TRUE(strstr(log, secret) == NULL);
    free(keyfile);
    free(log);
    me_daemon_free(&shard);

    /* The control: the same relay on a plain shard sees the markers, so the
     * check above can fail. */
    start_shard(&shard, NULL);
    ASSERT_OK(relay_start(&relay, shard.port, 1));
    snprintf(via, sizeof via, "tcp://127.0.0.1:%d", relay.port);
    store_and_find(via, NULL);
    relay_stop(&relay);
    ASSERT_TRUE(memmem(relay.seen, relay.nseen, MARK_ID, strlen(MARK_ID)) != NULL);
    ASSERT_TRUE(memmem(relay.seen, relay.nseen, MARK_META, strlen(MARK_META)) != NULL);
    free(relay.seen);
    me_daemon_free(&shard);
    me_test_rmdir(dir);
    free(dir);
}

TEST(curve_cluster_coordinator_to_shard_and_plain_refused_off_loopback) {
    char *dir = me_test_tmpdir("curve-cluster"), keys[600], map[700];
    snprintf(keys, sizeof keys, "%s/keys", dir);
    ASSERT_EQ(keygen(keys, NULL), 0);
    me_daemon_t shard, coord;
    start_shard(&shard, keys);
    snprintf(map, sizeof map, "%s/cluster.conf", dir);
    FILE *f = fopen(map, "w");
    ASSERT_TRUE(f != NULL);
    fprintf(f, "group g0 %s\n", shard.endpoint);
    fclose(f);
    memset(&coord, 0, sizeof coord);
    coord.no_data_dir = 1;
    const char *args[] = { "--cluster", map, "--curve-dir", keys, "--heartbeat-ms", "100" };
    for (size_t i = 0; i < 6; i++) coord.extra[coord.nextra++] = args[i];
    ASSERT_OK(me_daemon_start(&coord, "metaembed-coordinator", "coord-curve"));
    /* Through the coordinator: its calls to the shard are curve clients too. */
    store_and_find(coord.endpoint, keys);
    me_daemon_free(&coord);
    me_daemon_free(&shard);

    /* Plain on a non-loopback address is refused before binding anything. */
    char bin[512], log[700], listen[64];
    me_test_bin("metaembed-shard", bin, sizeof bin);
    snprintf(log, sizeof log, "%s/open.log", dir);
    snprintf(listen, sizeof listen, "tcp://0.0.0.0:%d", me_test_free_port());
    char datadir[700];
    snprintf(datadir, sizeof datadir, "%s/open-data", dir);
    char *argv[] = { bin, "--listen", listen, "--data-dir", datadir, "--metrics-addr", "", NULL };
    ASSERT_EQ(me_test_run(argv, NULL, log), 1);
    char *text = me_test_slurp(log);
    ASSERT_TRUE(text && strstr(text, "without encryption") && strstr(text, "--curve-dir"));
    free(text);
    me_test_rmdir(dir);
    free(dir);
}
