/* libFuzzer, structure-aware (tests/fuzz/proto_mutator.h: hostile field
 * values in well-formed requests, and byte mutation): a request frame to the coordinator, in front of a
 * real shard served on a loopback port by a thread of this process (RocksDB
 * in a temporary directory, collection "c" with a document): every
 * coordinator handler — routing, fan-out, merge, the text path without an
 * encoder — is reachable through the envelope. The reply must carry a
 * status, and a valid search right after must still succeed. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "common/server.h"
#include "coordinator/coordinator.h"
#include "shard/shard.h"
#include "tests/fuzz/proto_mutator.h"

static me_shard_t g_shard;
static me_coord_t g_co;
static me_fanout_t *g_fan;
static void *g_zctx;
static char g_listen[64];
static uint8_t g_search[512];
static size_t g_search_len;

static void shard_handle(void *ctx, void *w, const uint8_t *frame, size_t len, uint64_t *rid, me_reply_t *reply) {
    (void)w;
    me_shard_handle(ctx, frame, len, rid, reply);
}

static void *shard_main(void *arg) {
    (void)arg;
    me_server_t srv = { .role = "shard", .listen = g_listen, .threads = 1, .max_message = 1 << 20,
                        .ctx = &g_shard, .handle = shard_handle };
    me_server_run(&srv);
    return NULL;
}

/* One request frame through the coordinator. */
static void coord_handle(const uint8_t *frame, size_t n, me_reply_t *rep) {
    uint64_t rid;
    me_coord_handle(&g_co, g_fan, frame, n, &rid, rep);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    fuzz_init_seeds(argc, argv);
    const char *dir = fuzz_tmpdir("fuzzco");
    char err[256];
    me_shard_opts_t so;
    me_config_defaults(me_shard_options, &so, err, sizeof err);
    snprintf(so.data_dir, sizeof so.data_dir, "%s/shard", dir);
    so.max_batch = 64;
    so.max_k = 100;
    me_metrics_init(&g_shard.metrics);
    if (me_shard_open(&g_shard, &so, err, sizeof err) != 0) abort();
    /* A loopback port the kernel says is free, then served by the shard thread. */
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = 0;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0 };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &alen) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    if (!port) abort();
    snprintf(g_listen, sizeof g_listen, "tcp://127.0.0.1:%d", port);
    pthread_t th;
    pthread_create(&th, NULL, shard_main, NULL);
    pthread_detach(th);

    char map[128];
    snprintf(map, sizeof map, "%s/cluster.conf", dir);
    FILE *f = fopen(map, "w");
    if (!f) abort();
    fprintf(f, "group g0 %s\n", g_listen);
    fclose(f);
    me_config_defaults(me_coord_options, &g_co.opts, err, sizeof err);
    g_co.opts.max_batch = 64;
    g_co.opts.default_deadline_ms = 2000;
    if (me_cluster_load(&g_co.cluster, map, 3, err, sizeof err) != 0) abort();
    me_metrics_init(&g_co.metrics);
    me_autobudget_init(&g_co.autobudget);
    me_config_cache_init(&g_co.configs);
    pthread_rwlock_init(&g_co.write_gate, NULL);
    g_zctx = zmq_ctx_new();
    g_fan = me_fanout_new(&g_co.cluster, g_zctx);

    /* The shard thread may still be binding: retry until it answers. */
    uint8_t frame[512];
    size_t n = fuzz_frame_create(frame);
    int st = -1;
    for (int i = 0; i < 50 && st != 0 && st != ME_CODE_ALREADY_EXISTS; i++) {
        st = fuzz_call(coord_handle, frame, n);
        if (st != 0) usleep(100000);
    }
    if (st != 0) abort();
    if (fuzz_call(coord_handle, frame, fuzz_frame_upsert(frame)) != 0) abort();
    g_search_len = fuzz_frame_search(g_search);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_input(coord_handle, data, size);
    /* The cluster still answers (the input may have dropped or remade "c",
     * so any status will do; a crash or a hang would not). */
    int st = fuzz_call(coord_handle, g_search, g_search_len);
    if (st < 0 || st > 16) abort();
    return 0;
}
