/* The protocol probe: hostile requests, built the way an attacker would
 * (a valid request packed with protobuf-c, then its fields changed, bytes
 * patched in place), sent over raw ZeroMQ to a real coordinator and a real
 * shard. Each case must get its documented status and message, leave every
 * stored document as it was, and be followed by a valid search that works;
 * memory stays bounded over the whole run. One row per case: adding a case
 * is one line in `cases` (and a builder when none fits). The table it
 * prints is the one in docs/reliability.md. */
#include <signal.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "common/validate.h"
#include "common/wire.h"
#include "tests/cluster.h"
#include "tests/harness.h"

#define DIM 16
#define NDOCS 10    /* plain documents d0..d9 */
#define NMETA 40    /* m0..m39, each with META_BYTES of metadata: 2.4 MB, over 1 MB on either shard */
#define META_BYTES 60000
#define MAX_MESSAGE (1 << 20)

enum { COORD, SHARD };

typedef struct {
    uint8_t *data;
    size_t len;
} buf_t;

static cluster_t g_cl;
static me_client_t *g_cli;
static int g_shard;   /* the shard that holds "m0": shard cases go there */
static float g_vec[2 * DIM];

/* ---- building requests ---- */

static buf_t envelope(int method, const ProtobufCMessage *req, uint32_t deadline_ms) {
    size_t plen = req ? protobuf_c_message_get_packed_size(req) : 0;
    uint8_t *payload = malloc(plen + 1);
    if (req) protobuf_c_message_pack(req, payload);
    Metaembed__Envelope env = METAEMBED__ENVELOPE__INIT;
    env.request_id = 4242;
    env.method = (Metaembed__Method)method;
    env.deadline_ms = deadline_ms;
    env.payload.data = payload;
    env.payload.len = plen;
    buf_t b = { malloc(metaembed__envelope__get_packed_size(&env) + 1), 0 };
    b.len = metaembed__envelope__pack(&env, b.data);
    free(payload);
    return b;
}

/* Replaces every `from` inside each occurrence of `marker` in the packed
 * bytes (lengths stay valid): how NUL bytes get into strings that
 * protobuf-c would otherwise pack only up to their first NUL. */
static void patch(buf_t *b, const char *marker, char from, char to) {
    size_t m = strlen(marker);
    for (size_t i = 0; i + m <= b->len; i++)
        if (memcmp(b->data + i, marker, m) == 0)
            for (size_t k = 0; k < m; k++)
                if (b->data[i + k] == (uint8_t)from) b->data[i + k] = (uint8_t)to;
}

static Metaembed__Tensor tensor(uint32_t *shape, size_t nshape, int dtype, const void *data, size_t len) {
    Metaembed__Tensor t = METAEMBED__TENSOR__INIT;
    t.dtype = (Metaembed__DType)dtype;
    t.shape = shape;
    t.n_shape = nshape;
    t.data.data = (uint8_t *)data;
    t.data.len = len;
    return t;
}

/* An Upsert of `n` documents named ids[i] with tensor t and `meta` bytes of metadata. */
static buf_t upsert(const char *coll, const char *const *ids, size_t n, Metaembed__Tensor *t, size_t meta) {
    Metaembed__Document d[4], *dp[4];
    uint8_t *m = meta ? calloc(1, meta) : NULL;
    for (size_t i = 0; i < n; i++) {
        metaembed__document__init(&d[i]);
        d[i].id = (char *)ids[i];
        d[i].vectors = t;
        d[i].metadata.data = m;
        d[i].metadata.len = meta;
        dp[i] = &d[i];
    }
    Metaembed__UpsertRequest u = METAEMBED__UPSERT_REQUEST__INIT;
    u.collection = (char *)coll;
    u.documents = dp;
    u.n_documents = n;
    buf_t b = envelope(METAEMBED__METHOD__METHOD_UPSERT, &u.base, 0);
    free(m);
    return b;
}

static buf_t upsert_shape(uint32_t rows, uint32_t dim, int dtype, size_t data_len) {
    uint32_t shape[2] = { rows, dim };
    static uint8_t data[4 * 2 * DIM];
    Metaembed__Tensor t = tensor(shape, 2, dtype, data_len ? (memcpy(data, g_vec, sizeof data), data) : NULL,
                                 data_len);
    const char *id = "shape-probe";
    return upsert("c", &id, 1, &t, 0);
}

static buf_t one_doc(const char *id, size_t meta) {
    uint32_t shape[2] = { 1, DIM };
    Metaembed__Tensor t = tensor(shape, 2, METAEMBED__DTYPE__DTYPE_F32, g_vec, DIM * 4);
    return upsert("c", &id, 1, &t, meta);
}

static buf_t get(const char *coll, const char *const *ids, size_t n) {
    Metaembed__GetRequest g = METAEMBED__GET_REQUEST__INIT;
    g.collection = (char *)coll;
    g.ids = (char **)ids;
    g.n_ids = n;
    return envelope(METAEMBED__METHOD__METHOD_GET, &g.base, 0);
}

static buf_t search(const char *coll, uint32_t k, uint32_t r_q, const uint32_t *cand, size_t ncand,
                    uint32_t deadline_ms) {
    uint32_t shape[2] = { 2, DIM };
    Metaembed__Tensor t = tensor(shape, 2, METAEMBED__DTYPE__DTYPE_F32, g_vec, sizeof g_vec);
    Metaembed__SearchRequest s = METAEMBED__SEARCH_REQUEST__INIT;
    s.collection = (char *)coll;
    s.query = &t;
    s.k = k;
    s.r_q = r_q;
    s.candidates = (uint32_t *)cand;
    s.n_candidates = ncand;
    return envelope(METAEMBED__METHOD__METHOD_SEARCH, &s.base, deadline_ms);
}

static buf_t create(const char *name) {
    Metaembed__CollectionConfig cfg = METAEMBED__COLLECTION_CONFIG__INIT;
    cfg.name = (char *)name;
    cfg.dim = 4;
    Metaembed__CreateCollectionRequest c = METAEMBED__CREATE_COLLECTION_REQUEST__INIT;
    c.config = &cfg;
    return envelope(METAEMBED__METHOD__METHOD_CREATE_COLLECTION, &c.base, 0);
}

/* ---- the builders the table names ---- */

static buf_t b_shape_2g_2g(void) { return upsert_shape(1u << 31, 1u << 31, METAEMBED__DTYPE__DTYPE_F32, 0); }
static buf_t b_shape_f16_2g(void) { return upsert_shape(1u << 31, DIM, METAEMBED__DTYPE__DTYPE_F16, 0); }
static buf_t b_shape_max(void) { return upsert_shape(UINT32_MAX, UINT32_MAX, METAEMBED__DTYPE__DTYPE_F32, 64); }
static buf_t b_rows_zero(void) { return upsert_shape(0, DIM, METAEMBED__DTYPE__DTYPE_F32, 0); }
static buf_t b_dtype_99(void) { return upsert_shape(1, DIM, 99, DIM * 4); }
static buf_t b_shape_3d(void) {
    uint32_t shape[3] = { 1, 1, DIM };
    Metaembed__Tensor t = tensor(shape, 3, METAEMBED__DTYPE__DTYPE_F32, g_vec, DIM * 4);
    const char *id = "x";
    return upsert("c", &id, 1, &t, 0);
}
static buf_t b_nan(void) {
    float v[DIM];
    memcpy(v, g_vec, sizeof v);
    v[3] = 0.0f / 0.0f;
    uint32_t shape[2] = { 1, DIM };
    Metaembed__Tensor t = tensor(shape, 2, METAEMBED__DTYPE__DTYPE_F32, v, sizeof v);
    const char *id = "nan";
    return upsert("c", &id, 1, &t, 0);
}
static buf_t b_nul_ids(void) {
    const char *ids[2] = { "nul~a", "nul~b" };
    uint32_t shape[2] = { 1, DIM };
    Metaembed__Tensor t = tensor(shape, 2, METAEMBED__DTYPE__DTYPE_F32, g_vec, DIM * 4);
    buf_t b = upsert("c", ids, 2, &t, 0);
    patch(&b, "nul~", '~', 0);
    return b;
}
static buf_t b_get_nul(void) {
    const char *id = "nul~zzz";
    buf_t b = get("c", &id, 1);
    patch(&b, "nul~", '~', 0);
    return b;
}
static buf_t b_delete_nul(void) {
    const char *id = "nul~zzz";
    Metaembed__DeleteRequest d = METAEMBED__DELETE_REQUEST__INIT;
    d.collection = "c";
    d.ids = (char **)&id;
    d.n_ids = 1;
    buf_t b = envelope(METAEMBED__METHOD__METHOD_DELETE, &d.base, 0);
    patch(&b, "nul~", '~', 0);
    return b;
}
static buf_t b_create_nul(void) {
    buf_t b = create("a~b");
    patch(&b, "a~b", '~', 0);
    return b;
}
static buf_t b_search_nul(void) {
    buf_t b = search("c~x", 5, 0, NULL, 0, 0);
    patch(&b, "c~x", '~', 0);
    return b;
}
static buf_t b_name_65(void) {
    return create("n123456789012345678901234567890123456789012345678901234567890123x");
}
static buf_t b_name_dot(void) { return create("."); }
static buf_t b_name_dotdot(void) { return create(".."); }
static buf_t b_name_slash(void) { return create("../etc"); }
static buf_t b_id_ff(void) { return one_doc("bad\xff\xfe", 0); }
static buf_t b_id_overlong(void) { return one_doc("slash\xc0\xaf", 0); }
static buf_t b_id_surrogate(void) { return one_doc("half\xed\xa0\x80", 0); }
static buf_t b_id_long(void) {
    static char id[ME_DOC_ID_MAX + 2];
    memset(id, 'i', ME_DOC_ID_MAX + 1);
    return one_doc(id, 0);
}
static buf_t b_text_ff(void) {
    Metaembed__SearchRequest s = METAEMBED__SEARCH_REQUEST__INIT;
    s.collection = "c";
    s.text = "caf\xe9";  /* Latin-1, not UTF-8 */
    s.k = 5;
    return envelope(METAEMBED__METHOD__METHOD_SEARCH, &s.base, 0);
}
static buf_t encode(char *text) {
    char *texts[1] = { text };
    Metaembed__EncodeRequest e = METAEMBED__ENCODE_REQUEST__INIT;
    e.texts = texts;
    e.n_texts = 1;
    return envelope(METAEMBED__METHOD__METHOD_ENCODE, &e.base, 0);
}
static buf_t b_encode_ff(void) { return encode("\xff"); }
static buf_t b_encode(void) { return encode("a text"); }
static buf_t b_meta_128k(void) { return one_doc("meta-128k", 128 << 10); }
/* A Get of one id n times over. */
static buf_t get_repeated(const char *id, int n) {
    const char **ids = malloc((size_t)n * sizeof *ids);
    for (int i = 0; i < n; i++) ids[i] = id;
    buf_t b = get("c", ids, (size_t)n);
    free(ids);
    return b;
}
static buf_t b_get_same_4096(void) { return get_repeated("m0", 4096); }
static buf_t b_get_all_meta(void) {
    static char names[NMETA][16];
    const char *ids[NMETA];
    for (int i = 0; i < NMETA; i++) { snprintf(names[i], sizeof names[i], "m%d", i); ids[i] = names[i]; }
    return get("c", ids, NMETA);
}
static buf_t b_get_5000(void) { return get_repeated("d0", 5000); }
static buf_t b_k0(void) { return search("c", 0, 0, NULL, 0, 0); }
static buf_t b_k_huge(void) { return search("c", UINT32_MAX, 0, NULL, 0, 0); }
static buf_t b_cand_huge(void) {
    uint32_t cand[1] = { UINT32_MAX };
    return search("c", 5, 0, cand, 1, 0);
}
static buf_t b_cand_three(void) {
    uint32_t cand[3] = { 10, 10, 10 };
    return search("c", 5, 0, cand, 3, 0);
}
static buf_t b_rq_over(void) { return search("c", 5, 9, NULL, 0, 0); }
static buf_t b_unknown_coll(void) { return search("nope", 5, 0, NULL, 0, 0); }
static buf_t b_deadline_1ms(void) { return search("c", 5, 0, NULL, 0, 1); }
static buf_t b_health(void) { return envelope(METAEMBED__METHOD__METHOD_HEALTH, NULL, 0); }
static buf_t b_method_99(void) { return envelope(99, NULL, 0); }
static buf_t b_not_envelope(void) {
    buf_t b = { malloc(8), 8 };
    memcpy(b.data, "\xff\xff\xff\xff\xff\xff\xff\xff", 8);
    return b;
}
static buf_t b_frame_1536k(void) {
    buf_t b = { calloc(1, 1536 << 10), 1536 << 10 };
    return b;
}
static buf_t b_frame_4m(void) {
    buf_t b = { calloc(1, 4 << 20), 4 << 20 };
    return b;
}

/* ---- hooks around cases ---- */

static void stop_shards(void) {
    for (int i = 0; i < g_cl.groups * g_cl.replicas; i++) kill(g_cl.shards[i].pid, SIGSTOP);
}
static void cont_shards(void) {
    for (int i = 0; i < g_cl.groups * g_cl.replicas; i++) kill(g_cl.shards[i].pid, SIGCONT);
}

/* Stored under the cut-short names, the probe's ids would show up here. */
static void nothing_under_nul(void) {
    const char *ids[1] = { "nul" };
    me_record_t *recs = NULL;
    size_t n = 0;
    me_status_t st;
    ASSERT_OK(me_client_get(g_cli, "c", ids, 1, 0, &recs, &n, &st));
    ASSERT_EQ(n, 1);           /* the real "nul" from the setup, unchanged */
    ASSERT_EQ(recs[0].metadata_len, 3);
    me_records_free(recs, n);
}
static void no_new_collections(void) {
    me_collection_info_t *infos = NULL;
    size_t n = 0;
    me_status_t st;
    ASSERT_OK(me_client_list_collections(g_cli, &infos, &n, &st));
    ASSERT_EQ(n, 1);
    ASSERT_STREQ(infos[0].name, "c");
    free(infos);
}

/* ---- the table ---- */

typedef struct {
    const char *what;       /* the hostile request */
    int target;             /* COORD or SHARD */
    buf_t (*build)(void);
    int extra_frames;       /* routing frames sent before it */
    size_t extra_bytes;     /* bytes of each */
    int want;               /* status; -1: no reply (the transport drops it) */
    const char *needle;     /* in the reply's message */
    void (*before)(void), (*after)(void);
} probe_t;

#define ST(x) ME_CODE_##x
static const probe_t cases[] = {
    { "Upsert, f32 shape [2^31, 2^31], no data", COORD, b_shape_2g_2g, 0, 0, ST(INVALID_ARGUMENT), "dim 2147483648", NULL, NULL },
    { "Upsert, f32 shape [2^31, 2^31], no data", SHARD, b_shape_2g_2g, 0, 0, ST(INVALID_ARGUMENT), "dim 2147483648", NULL, NULL },
    { "Upsert, f16 shape [2^31, D], no data", COORD, b_shape_f16_2g, 0, 0, ST(INVALID_ARGUMENT), "vectors, must be 1..8", NULL, NULL },
    { "Upsert, shape [2^32-1, 2^32-1], 64 bytes", SHARD, b_shape_max, 0, 0, ST(INVALID_ARGUMENT), "does not match", NULL, NULL },
    { "Upsert, shape [0, D]", COORD, b_rows_zero, 0, 0, ST(INVALID_ARGUMENT), "0 vectors", NULL, NULL },
    { "Upsert, dtype 99", COORD, b_dtype_99, 0, 0, ST(INVALID_ARGUMENT), "dtype must be", NULL, NULL },
    { "Upsert, 3-d tensor", COORD, b_shape_3d, 0, 0, ST(INVALID_ARGUMENT), "3 dimensions", NULL, NULL },
    { "Upsert, NaN in a vector", COORD, b_nan, 0, 0, ST(INVALID_ARGUMENT), "NaN", NULL, NULL },
    { "Upsert, ids \"nul\\0a\" and \"nul\\0b\"", COORD, b_nul_ids, 0, 0, ST(INVALID_ARGUMENT), "Document.id holds a NUL", NULL, nothing_under_nul },
    { "Upsert, ids \"nul\\0a\" and \"nul\\0b\"", SHARD, b_nul_ids, 0, 0, ST(INVALID_ARGUMENT), "Document.id holds a NUL", NULL, nothing_under_nul },
    { "Get \"nul\\0zzz\"", COORD, b_get_nul, 0, 0, ST(INVALID_ARGUMENT), "GetRequest.ids holds a NUL", NULL, NULL },
    { "Delete \"nul\\0zzz\"", COORD, b_delete_nul, 0, 0, ST(INVALID_ARGUMENT), "DeleteRequest.ids holds a NUL", NULL, nothing_under_nul },
    { "CreateCollection \"a\\0b\"", COORD, b_create_nul, 0, 0, ST(INVALID_ARGUMENT), "CollectionConfig.name holds a NUL", NULL, no_new_collections },
    { "Search collection \"c\\0x\"", COORD, b_search_nul, 0, 0, ST(INVALID_ARGUMENT), "SearchRequest.collection holds a NUL", NULL, NULL },
    { "CreateCollection, 65-byte name", COORD, b_name_65, 0, 0, ST(INVALID_ARGUMENT), "1..64 characters", NULL, no_new_collections },
    { "CreateCollection \".\"", COORD, b_name_dot, 0, 0, ST(INVALID_ARGUMENT), "not '.' or '..'", NULL, no_new_collections },
    { "CreateCollection \"..\"", SHARD, b_name_dotdot, 0, 0, ST(INVALID_ARGUMENT), "not '.' or '..'", NULL, no_new_collections },
    { "CreateCollection \"../etc\"", COORD, b_name_slash, 0, 0, ST(INVALID_ARGUMENT), "A-Z a-z 0-9 _ . -", NULL, no_new_collections },
    { "Upsert, id \"bad\\xff\\xfe\"", COORD, b_id_ff, 0, 0, ST(INVALID_ARGUMENT), "Document.id is not valid UTF-8", NULL, NULL },
    { "Upsert, id with an overlong '/'", SHARD, b_id_overlong, 0, 0, ST(INVALID_ARGUMENT), "not valid UTF-8", NULL, NULL },
    { "Upsert, id with a lone surrogate", COORD, b_id_surrogate, 0, 0, ST(INVALID_ARGUMENT), "not valid UTF-8", NULL, NULL },
    { "Upsert, 257-byte id", COORD, b_id_long, 0, 0, ST(INVALID_ARGUMENT), "longer than 256 bytes", NULL, NULL },
    { "Search, Latin-1 text", COORD, b_text_ff, 0, 0, ST(INVALID_ARGUMENT), "SearchRequest.text is not valid UTF-8", NULL, NULL },
    { "Encode, text \"\\xff\"", COORD, b_encode_ff, 0, 0, ST(INVALID_ARGUMENT), "EncodeRequest.texts", NULL, NULL },
    { "Encode without encoders", COORD, b_encode, 0, 0, ST(FAILED_PRECONDITION), "no encoders", NULL, NULL },
    { "Upsert, 128 KiB of metadata", COORD, b_meta_128k, 0, 0, ST(RESOURCE_EXHAUSTED), "limit of 65536", NULL, NULL },
    { "Upsert, 128 KiB of metadata", SHARD, b_meta_128k, 0, 0, ST(RESOURCE_EXHAUSTED), "limit of 65536", NULL, NULL },
    { "Get one id 4,096 times (60 KB metadata)", COORD, b_get_same_4096, 0, 0, ST(OK), "", NULL, NULL },
    { "Get one id 4,096 times (60 KB metadata)", SHARD, b_get_same_4096, 0, 0, ST(OK), "", NULL, NULL },
    { "Get 40 ids, 2.4 MB of metadata", COORD, b_get_all_meta, 0, 0, ST(RESOURCE_EXHAUSTED), "message limit", NULL, NULL },
    { "Get 40 ids, 2.4 MB of metadata", SHARD, b_get_all_meta, 0, 0, ST(RESOURCE_EXHAUSTED), "message limit", NULL, NULL },
    { "Get 5,000 ids", COORD, b_get_5000, 0, 0, ST(RESOURCE_EXHAUSTED), "limit of 4096", NULL, NULL },
    { "Health after seven 1 MiB routing frames", COORD, b_health, 7, 1 << 20, ST(RESOURCE_EXHAUSTED), "routing frames", NULL, NULL },
    { "Health after seven 1 MiB routing frames", SHARD, b_health, 7, 1 << 20, ST(RESOURCE_EXHAUSTED), "routing frames", NULL, NULL },
    { "Health after nine 1-byte routing frames", COORD, b_health, 9, 1, ST(RESOURCE_EXHAUSTED), "routing frames", NULL, NULL },
    { "Health after one 256-byte routing frame", SHARD, b_health, 1, 256, ST(RESOURCE_EXHAUSTED), "routing frames", NULL, NULL },
    { "a 1.5 MiB frame (limit 1 MiB)", COORD, b_frame_1536k, 0, 0, ST(RESOURCE_EXHAUSTED), "--max-message", NULL, NULL },
    { "a 4 MiB frame (past the transport cap)", SHARD, b_frame_4m, 0, 0, -1, "", NULL, NULL },
    { "Search, 1 ms deadline, shards stopped", COORD, b_deadline_1ms, 0, 0, ST(DEADLINE_EXCEEDED), "deadline", stop_shards, cont_shards },
    { "Search, k = 0", COORD, b_k0, 0, 0, ST(INVALID_ARGUMENT), "k must be at least 1", NULL, NULL },
    { "Search, k = 2^32-1", COORD, b_k_huge, 0, 0, ST(INVALID_ARGUMENT), "exceeds the limit", NULL, NULL },
    { "Search, candidates = 2^32-1", SHARD, b_cand_huge, 0, 0, ST(INVALID_ARGUMENT), "exceeds the limit", NULL, NULL },
    { "Search, three candidate counts", COORD, b_cand_three, 0, 0, ST(INVALID_ARGUMENT), "at most two", NULL, NULL },
    { "Search, r_q beyond the query's rows", COORD, b_rq_over, 0, 0, ST(INVALID_ARGUMENT), "exceeds the 2 query vectors", NULL, NULL },
    { "Search an unknown collection", COORD, b_unknown_coll, 0, 0, ST(NOT_FOUND), "does not exist", NULL, NULL },
    { "method 99", COORD, b_method_99, 0, 0, ST(UNIMPLEMENTED), "unknown method", NULL, NULL },
    { "8 bytes that are not an Envelope", SHARD, b_not_envelope, 0, 0, ST(INVALID_ARGUMENT), "not a metaembed Envelope", NULL, NULL },
};

/* ---- sending ---- */

typedef struct {
    int status;             /* -1: no reply within the wait */
    char message[600];
    uint8_t *payload;
    size_t payload_len, bytes;  /* bytes: all frames of the reply */
    int frames;
} raw_reply_t;

static void raw_call(const char *endpoint, const probe_t *p, const buf_t *req, raw_reply_t *out) {
    memset(out, 0, sizeof *out);
    out->status = -1;
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    me_wire_socket_defaults(s, 0);
    zmq_connect(s, endpoint);
    uint8_t *filler = p->extra_frames ? calloc(1, p->extra_bytes) : NULL;
    for (int i = 0; i < p->extra_frames; i++) zmq_send(s, filler, p->extra_bytes, ZMQ_SNDMORE);
    zmq_send(s, req->data, req->len, 0);
    free(filler);
    zmq_pollitem_t it = { s, 0, ZMQ_POLLIN, 0 };
    if (zmq_poll(&it, 1, 2000) == 1) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        int more = 1;
        while (more && zmq_msg_recv(&m, s, 0) >= 0) {
            out->frames++;
            out->bytes += zmq_msg_size(&m);
            more = zmq_msg_more(&m);
        }
        Metaembed__Reply *r = metaembed__reply__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
        if (r) {
            out->status = r->status ? (int)r->status->code : 0;
            if (r->status && r->status->message) {
                /* Messages must be valid UTF-8 themselves (proto3). */
                ASSERT_TRUE(me_utf8_valid((const uint8_t *)r->status->message, strlen(r->status->message)));
                snprintf(out->message, sizeof out->message, "%s", r->status->message);
            }
            if (r->payload.len) {
                out->payload = malloc(r->payload.len);
                memcpy(out->payload, r->payload.data, r->payload.len);
                out->payload_len = r->payload.len;
            }
            metaembed__reply__free_unpacked(r, NULL);
        }
        zmq_msg_close(&m);
    }
    zmq_close(s);
    zmq_ctx_term(ctx);
}

static long peak_rss_kb(pid_t pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld", &kb) == 1) break;
    if (f) fclose(f);
    return kb;
}

/* ME_PROBE_BEFORE=1 runs the table against older daemons (ME_BIN) to see
 * what each case did before a fix: a daemon that died is restarted, and
 * nothing is asserted. Returns the names of the daemons that died. */
static const char *restart_dead(char *out, size_t cap) {
    out[0] = 0;
    me_daemon_t *all[3] = { &g_cl.coord, &g_cl.shards[0], &g_cl.shards[1] };
    for (int i = 0; i < 3; i++) {
        int wst;
        if (waitpid(all[i]->pid, &wst, WNOHANG) != all[i]->pid) continue;
        snprintf(out + strlen(out), cap - strlen(out), "%s%s died (%s)", out[0] ? ", " : "", i ? "shard" : "coordinator",
                 WIFSIGNALED(wst) ? strsignal(WTERMSIG(wst)) : "exited");
        me_daemon_restart(all[i]);
    }
    return out;
}

static uint64_t stored_documents(void) {
    me_stats_t stats;
    me_status_t st;
    ASSERT_OK(me_client_stats(g_cli, "c", &stats, &st));
    uint64_t n = stats.n_collections ? stats.collections[0].documents : 0;
    me_stats_free(&stats);
    return n;
}

static void valid_search_works(void) {
    me_search_opts_t o = { .k = 5 };
    me_results_t res;
    me_status_t st;
    ASSERT_OK(me_client_search(g_cli, "c", g_vec, 2, DIM, &o, &res, &st));
    ASSERT_EQ(res.n, 5);
    me_results_free(&res);
}

static void setup(void) {
    me_rng_t rng = { 5 };
    for (int i = 0; i < 2 * DIM; i++) g_vec[i] = (float)me_rng_normal(&rng);
    me_status_t st;
    me_collection_spec_t spec = { .name = "c", .dim = DIM, .max_doc_vectors = 8, .max_query_vectors = 4 };
    ASSERT_OK(me_client_create_collection(g_cli, &spec, &st));
    float v[DIM];
    char *meta = malloc(META_BYTES);
    memset(meta, 'x', META_BYTES);
    for (int i = 0; i < NDOCS + NMETA + 1; i++) {
        char id[16];
        if (i < NDOCS) snprintf(id, sizeof id, "d%d", i);
        else if (i < NDOCS + NMETA) snprintf(id, sizeof id, "m%d", i - NDOCS);
        else snprintf(id, sizeof id, "nul");
        for (int k = 0; k < DIM; k++) v[k] = (float)me_rng_normal(&rng);
        me_doc_t d = { .id = id, .vectors = v, .rows = 1 };
        if (i >= NDOCS && i < NDOCS + NMETA) { d.metadata = meta; d.metadata_len = META_BYTES; }
        if (i == NDOCS + NMETA) { d.metadata = "abc"; d.metadata_len = 3; }
        ASSERT_OK(me_client_upsert(g_cli, "c", &d, 1, DIM, &st));
    }
    free(meta);
    const char *m0 = "m0";
    for (int i = 0; i < g_cl.groups; i++) {
        me_client_t *sc = me_daemon_client(&g_cl.shards[i]);
        me_record_t *recs = NULL;
        size_t n = 0;
        ASSERT_OK(me_client_get(sc, "c", &m0, 1, 0, &recs, &n, &st));
        if (n == 1) g_shard = i;
        me_records_free(recs, n);
        me_client_close(sc);
    }
}

TEST(probe_hostile_requests_get_their_status_and_change_nothing) {
    static const char *const shard_flags[] = { "--max-message=1M", NULL };
    static const char *const coord_flags[] = { "--max-message=1M", NULL };
    memset(&g_cl, 0, sizeof g_cl);
    g_cl.shard_extra = shard_flags;
    ASSERT_OK(cluster_start_with(&g_cl, 2, 1, coord_flags, NULL));
    g_cli = me_daemon_client(&g_cl.coord);
    ASSERT_TRUE(g_cli != NULL);
    me_client_set_timeout(g_cli, 5000);
    setup();
    uint64_t docs = stored_documents();
    ASSERT_EQ(docs, NDOCS + NMETA + 1);
    valid_search_works();

    int failed = 0, before = getenv("ME_PROBE_BEFORE") != NULL;
    printf("    | request | sent to | status | reply bytes | ms |\n    |---|---|---|---|---|\n");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const probe_t *p = &cases[i];
        const char *endpoint = p->target == COORD ? g_cl.coord.endpoint : g_cl.shards[g_shard].endpoint;
        buf_t req = p->build();
        if (p->before) p->before();
        raw_reply_t rep;
        double t0 = me_test_now_ms();
        raw_call(endpoint, p, &req, &rep);
        double ms = me_test_now_ms() - t0;
        if (p->after && !before) p->after();
        if (p->before) cont_shards();
        free(req.data);
        printf("    | %s | %s | %s | %zu | %.1f |\n", p->what, p->target == COORD ? "coordinator" : "shard",
               rep.status < 0 ? "no reply (connection dropped)" : me_status_name(rep.status), rep.bytes, ms);
        if (before) {
            char died[256];
            usleep(200000);
            if (*restart_dead(died, sizeof died)) printf("    |   %s |\n", died);
            free(rep.payload);
            continue;
        }
        int ok = rep.status == p->want && strstr(rep.message, p->needle) != NULL;
        /* Nothing is echoed: a refusal is a small reply of one frame. */
        if (rep.status > 0 && (rep.frames != 1 || rep.bytes > 1024)) ok = 0;
        if (!ok) {
            fprintf(stderr, "    FAIL: %s: got %d '%s' (%d frames, %zu bytes), want %d containing '%s'\n", p->what,
                    rep.status, rep.message, rep.frames, rep.bytes, p->want, p->needle);
            failed++;
        }
        if (p->build == b_get_same_4096 && rep.status == 0) {
            Metaembed__GetReply *g = metaembed__get_reply__unpack(NULL, rep.payload_len, rep.payload);
            ASSERT_TRUE(g != NULL);
            ASSERT_EQ(g->n_documents, 1);  /* answered once */
            ASSERT_EQ(g->documents[0]->metadata.len, META_BYTES);
            ASSERT_EQ(g->n_missing, 0);
            metaembed__get_reply__free_unpacked(g, NULL);
        }
        free(rep.payload);
        ASSERT_EQ(stored_documents(), docs);
        valid_search_works();
    }
    ASSERT_EQ(failed, 0);
    if (before) { me_client_close(g_cli); cluster_stop(&g_cl); return; }

    /* Memory stayed bounded: the largest thing any process held is a few
     * messages (1 MiB each here), not what a request asked for. */
    long coord_kb = peak_rss_kb(g_cl.coord.pid), shard_kb = peak_rss_kb(g_cl.shards[g_shard].pid);
    printf("    peak RSS: coordinator %ld MB, shard %ld MB\n", coord_kb / 1024, shard_kb / 1024);
    ASSERT_TRUE(coord_kb > 0 && coord_kb < 400 * 1024);
    ASSERT_TRUE(shard_kb > 0 && shard_kb < 400 * 1024);
    me_client_close(g_cli);
    cluster_stop(&g_cl);
}

/* The metrics page needs no login, so it stays on loopback unless asked. */
TEST(probe_metrics_refuses_a_public_address_without_the_flag) {
    char bin[512], addr[64], listen[64];
    char *dir = me_test_tmpdir("metrics-public");
    snprintf(addr, sizeof addr, "--metrics-addr=0.0.0.0:%d", me_test_free_port());
    snprintf(listen, sizeof listen, "--listen=tcp://127.0.0.1:%d", me_test_free_port());
    char data[600];
    snprintf(data, sizeof data, "--data-dir=%s/data", dir);
    char *argv[] = { (char *)me_test_bin("metaembed-shard", bin, sizeof bin), listen, data, addr, NULL };
    char *out = NULL, *err = NULL;
    ASSERT_EQ(me_test_run_capture(argv, dir, "refused", &out, &err), 2);
    ASSERT_TRUE(strstr(err, "not a loopback address") != NULL);
    ASSERT_TRUE(strstr(err, "--metrics-public") != NULL);
    free(out);
    free(err);
    /* With the flag it starts (and answers Health). */
    me_daemon_t d = { .extra = { addr, "--metrics-public" }, .nextra = 2 };
    ASSERT_OK(me_daemon_start(&d, "metaembed-shard", "public"));
    me_daemon_free(&d);
    me_test_rmdir(dir);
    free(dir);
}
