/* libFuzzer: any bytes as a request frame to a real shard (RocksDB in a
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
    /* Collection "c" (dim 4, R_c 4, R_q 2) with one document, through the handler. */
    Metaembed__CollectionConfig cfg = METAEMBED__COLLECTION_CONFIG__INIT;
    cfg.name = "c";
    cfg.dim = 4;
    cfg.max_doc_vectors = 4;
    cfg.max_query_vectors = 2;
    Metaembed__CreateCollectionRequest cr = METAEMBED__CREATE_COLLECTION_REQUEST__INIT;
    cr.config = &cfg;
    uint8_t payload[256], frame[512];
    Metaembed__Envelope env = METAEMBED__ENVELOPE__INIT;
    env.method = METAEMBED__METHOD__METHOD_CREATE_COLLECTION;
    env.payload.data = payload;
    env.payload.len = metaembed__create_collection_request__pack(&cr, payload);
    size_t n = metaembed__envelope__pack(&env, frame);
    uint64_t rid;
    me_reply_t rep;
    me_shard_handle(&g_shard, frame, n, &rid, &rep);
    me_reply_clear(&rep);
    float v[4] = { 1, 0.5f, 0, 0 };
    uint32_t shape[2] = { 1, 4 };
    Metaembed__Tensor t = METAEMBED__TENSOR__INIT;
    t.dtype = METAEMBED__DTYPE__DTYPE_F32;
    t.shape = shape;
    t.n_shape = 2;
    t.data.data = (uint8_t *)v;
    t.data.len = sizeof v;
    Metaembed__Document d = METAEMBED__DOCUMENT__INIT, *dp = &d;
    d.id = "doc";
    d.vectors = &t;
    Metaembed__UpsertRequest ur = METAEMBED__UPSERT_REQUEST__INIT;
    ur.collection = "c";
    ur.documents = &dp;
    ur.n_documents = 1;
    env.method = METAEMBED__METHOD__METHOD_UPSERT;
    env.payload.len = metaembed__upsert_request__pack(&ur, payload);
    n = metaembed__envelope__pack(&env, frame);
    me_shard_handle(&g_shard, frame, n, &rid, &rep);
    me_reply_clear(&rep);
    Metaembed__SearchRequest sr = METAEMBED__SEARCH_REQUEST__INIT;
    sr.collection = "c";
    sr.query = &t;
    sr.k = 1;
    env.method = METAEMBED__METHOD__METHOD_SEARCH;
    env.payload.len = metaembed__search_request__pack(&sr, payload);
    g_search_len = metaembed__envelope__pack(&env, g_search);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint64_t rid;
    me_reply_t rep;
    me_shard_handle(&g_shard, data, size, &rid, &rep);
    if (rep.status < 0 || rep.status > 16) abort();
    me_reply_clear(&rep);
    /* Drop and re-create "c" when the input did (so later inputs still reach it). */
    me_shard_handle(&g_shard, g_search, g_search_len, &rid, &rep);
    me_reply_clear(&rep);
    return 0;
}
