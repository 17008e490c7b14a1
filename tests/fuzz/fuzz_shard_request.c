/* libFuzzer, structure-aware (tests/fuzz/proto_mutator.h: hostile field
 * values in well-formed requests, and byte mutation): a request frame to a real shard (RocksDB in a
 * temporary directory, one collection with documents): every handler is
 * reachable through the envelope. The reply must always carry a status, and
 * a valid search right after must still succeed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "shard/shard.h"
#include "tests/fuzz/proto_mutator.h"

static me_shard_t g_shard;
static uint8_t g_search[512];
static size_t g_search_len;

static void shard_handle(const uint8_t *frame, size_t n, me_reply_t *rep) {
    uint64_t rid;
    me_shard_handle(&g_shard, frame, n, &rid, rep);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    fuzz_init_seeds(argc, argv);
    const char *dir = fuzz_tmpdir("fuzz");
    me_shard_opts_t o;
    char err[256];
    me_config_defaults(me_shard_options, &o, err, sizeof err);
    snprintf(o.data_dir, sizeof o.data_dir, "%s", dir);
    o.max_message = 1 << 20;
    o.max_batch = 64;
    o.max_k = 100;
    me_metrics_init(&g_shard.metrics);
    if (me_shard_open(&g_shard, &o, err, sizeof err) != 0) abort();
    /* Collection "c" with one document, through the handler. */
    uint8_t frame[512];
    fuzz_call(shard_handle, frame, fuzz_frame_create(frame));
    fuzz_call(shard_handle, frame, fuzz_frame_upsert(frame));
    g_search_len = fuzz_frame_search(g_search);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_input(shard_handle, data, size);
    /* Drop and re-create "c" when the input did (so later inputs still reach it). */
    fuzz_call(shard_handle, g_search, g_search_len);
    return 0;
}
