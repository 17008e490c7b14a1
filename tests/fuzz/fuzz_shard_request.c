/* libFuzzer, structure-aware (tests/fuzz/proto_mutator.h: hostile field
 * values in well-formed requests, and byte mutation): a request frame to a real shard (RocksDB in a
 * temporary directory, one collection with documents): every handler is
 * reachable through the envelope. The reply must always carry a status, and
 * a valid search right after must still succeed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <unistd.h>

#include "common/error.h"
#include "shard/shard.h"
#include "tests/fuzz/proto_mutator.h"

static me_shard_t g_shard;
static char g_dir[64];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

/* At exit only the directory goes: RocksDB's own statics may already be
 * destroyed, so closing the database here would crash. */
static void cleanup(void) {
    nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}
static uint8_t g_search[512];
static size_t g_search_len;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    if (getenv("ME_FUZZ_WRITE_SEEDS")) {
        fuzz_write_seeds(getenv("ME_FUZZ_WRITE_SEEDS"));
        exit(0);
    }
    snprintf(g_dir, sizeof g_dir, "/tmp/metaembed-fuzz-XXXXXX");
    char *dir = mkdtemp(g_dir);
    if (!dir) abort();
    atexit(cleanup);
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
    uint64_t rid;
    me_reply_t rep;
    me_shard_handle(&g_shard, frame, fuzz_frame_create(frame), &rid, &rep);
    me_reply_clear(&rep);
    me_shard_handle(&g_shard, frame, fuzz_frame_upsert(frame), &rid, &rep);
    me_reply_clear(&rep);
    g_search_len = fuzz_frame_search(g_search);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint64_t rid;
    me_reply_t rep;
    me_shard_handle(&g_shard, data, size, &rid, &rep);
    fuzz_check_reply(data, size, &rep);
    me_reply_clear(&rep);
    /* Drop and re-create "c" when the input did (so later inputs still reach it). */
    me_shard_handle(&g_shard, g_search, g_search_len, &rid, &rep);
    me_reply_clear(&rep);
    return 0;
}
