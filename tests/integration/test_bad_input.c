/* Every kind of bad request gets its documented status, the shard keeps
 * serving, and nothing stored changes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/wire.h"
#include "tests/daemon.h"
#include "tests/harness.h"

#define DIM 16

static me_client_t *g_c;

static void vec(float *v, int rows, int seed) {
    me_rng_t r = { (uint64_t)seed };
    for (int i = 0; i < rows * DIM; i++) v[i] = (float)me_rng_normal(&r);
}

/* A valid search must still work, and the stored count is unchanged. */
static void still_serving(uint64_t docs) {
    float q[2 * DIM];
    vec(q, 2, 99);
    me_search_opts_t o = { .k = 5 };
    me_results_t res;
    me_status_t st;
    ASSERT_OK(me_client_search(g_c, "c", q, 2, DIM, &o, &res, &st));
    ASSERT_EQ(res.n, 5);
    ASSERT_EQ(res.documents, docs);
    me_results_free(&res);
}

static void expect(int rc, const me_status_t *st, int code, const char *needle) {
    if (rc != code || !strstr(st->message, needle))
        fprintf(stderr, "    got %d '%s', want %d containing '%s'\n", rc, st->message, code, needle);
    ASSERT_EQ(rc, code);
    ASSERT_TRUE(strstr(st->message, needle) != NULL);
}

static int upsert1(const char *coll, const char *id, const float *v, int rows, int dim, me_status_t *st) {
    me_doc_t d = { .id = id, .vectors = v, .rows = rows };
    return me_client_upsert(g_c, coll, &d, 1, dim, st);
}

static int search1(const float *q, int rows, int dim, me_search_opts_t o, me_status_t *st) {
    me_results_t res;
    int rc = me_client_search(g_c, "c", q, rows, dim, &o, &res, st);
    if (rc == 0) me_results_free(&res);
    return rc;
}

/* Sends raw frames on a fresh DEALER; returns the reply status, or -1 when
 * no reply came within 1 s. */
static int raw(const char *endpoint, const void *const *frames, const size_t *lens, int n, uint64_t *rid) {
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    me_wire_socket_defaults(s, 0);
    zmq_connect(s, endpoint);
    for (int i = 0; i < n; i++) zmq_send(s, frames[i], lens[i], i + 1 < n ? ZMQ_SNDMORE : 0);
    int code = -1;
    zmq_pollitem_t it = { s, 0, ZMQ_POLLIN, 0 };
    if (zmq_poll(&it, 1, 1000) == 1) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        zmq_msg_recv(&m, s, 0);
        Metaembed__Reply *r = metaembed__reply__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
        if (r) {
            code = r->status ? (int)r->status->code : 0;
            *rid = r->request_id;
            metaembed__reply__free_unpacked(r, NULL);
        }
        zmq_msg_close(&m);
    }
    zmq_close(s);
    zmq_ctx_term(ctx);
    return code;
}

TEST(shard_bad_input_gets_clear_status_and_loses_nothing) {
    me_daemon_t d = { .extra = { "--max-message=1M", "--max-batch=100", "--max-k=1000" }, .nextra = 3 };
    ASSERT_OK(me_daemon_start(&d, "metaembed-shard", "badinput"));
    g_c = me_daemon_client(&d);
    ASSERT_TRUE(g_c != NULL);
    me_status_t st;
    int rc;

    /* Collection DDL. */
    me_collection_spec_t spec = { .name = "c", .dim = DIM, .max_doc_vectors = 8, .max_query_vectors = 4 };
    ASSERT_OK(me_client_create_collection(g_c, &spec, &st));
    rc = me_client_create_collection(g_c, &spec, &st);
    expect(rc, &st, ME_CODE_ALREADY_EXISTS, "already exists");
    rc = me_client_create_collection(g_c, &(me_collection_spec_t){ .name = "z", .dim = 0 }, &st);
    expect(rc, &st, ME_CODE_INVALID_ARGUMENT, "dim");
    rc = me_client_create_collection(g_c, &(me_collection_spec_t){ .name = "a b", .dim = 4 }, &st);
    expect(rc, &st, ME_CODE_INVALID_ARGUMENT, "name");
    rc = me_client_create_collection(g_c, &(me_collection_spec_t){ .name = "z", .dim = 4, .max_doc_vectors = 8, .ram_vectors = 9 }, &st);
    expect(rc, &st, ME_CODE_INVALID_ARGUMENT, "ram_vectors");
    rc = me_client_create_collection(g_c, &(me_collection_spec_t){ .name = "z", .dim = 4, .dtype = "bf16" }, &st);
    expect(rc, &st, ME_CODE_INVALID_ARGUMENT, "dtype");
    rc = me_client_drop_collection(g_c, "nope", &st);
    expect(rc, &st, ME_CODE_NOT_FOUND, "does not exist");

    /* Ten good documents. */
    float v[9 * DIM];
    for (int i = 0; i < 10; i++) {
        char id[16];
        snprintf(id, sizeof id, "d%d", i);
        vec(v, 8, i + 1);
        ASSERT_OK(upsert1("c", id, v, 8, DIM, &st));
    }
    still_serving(10);

    /* Upserts. */
    vec(v, 9, 5);
    expect(upsert1("c", "x", v, 8, DIM - 1, &st), &st, ME_CODE_INVALID_ARGUMENT, "dim 15 does not match");
    expect(upsert1("c", "x", v, 9, DIM, &st), &st, ME_CODE_INVALID_ARGUMENT, "9 vectors, must be 1..8");
    expect(upsert1("nope", "x", v, 8, DIM, &st), &st, ME_CODE_NOT_FOUND, "collection 'nope' does not exist");
    expect(upsert1("c", "", v, 8, DIM, &st), &st, ME_CODE_INVALID_ARGUMENT, "empty id");
    char longid[300];
    memset(longid, 'a', sizeof longid - 1);
    longid[sizeof longid - 1] = 0;
    expect(upsert1("c", longid, v, 8, DIM, &st), &st, ME_CODE_INVALID_ARGUMENT, "longer than 256");
    v[3] = NAN;
    expect(upsert1("c", "x", v, 8, DIM, &st), &st, ME_CODE_INVALID_ARGUMENT, "NaN or Inf");
    v[3] = INFINITY;
    expect(upsert1("c", "x", v, 8, DIM, &st), &st, ME_CODE_INVALID_ARGUMENT, "NaN or Inf");
    v[3] = 1e6f;  /* finite in f32, beyond f16 */
    expect(upsert1("c", "x", v, 8, DIM, &st), &st, ME_CODE_INVALID_ARGUMENT, "range");
    vec(v, 8, 5);
    memset(v + 2 * DIM, 0, DIM * sizeof(float));
    expect(upsert1("c", "x", v, 8, DIM, &st), &st, ME_CODE_INVALID_ARGUMENT, "vector 2 has zero norm");
    expect(me_client_upsert(g_c, "c", NULL, 0, DIM, &st), &st, ME_CODE_INVALID_ARGUMENT, "empty batch");
    {
        /* 101 docs > --max-batch=100. */
        me_doc_t docs[101];
        vec(v, 8, 6);
        for (int i = 0; i < 101; i++) docs[i] = (me_doc_t){ .id = "y", .vectors = v, .rows = 8 };
        expect(me_client_upsert(g_c, "c", docs, 101, DIM, &st), &st, ME_CODE_RESOURCE_EXHAUSTED, "limit of 100");
        /* One bad doc rejects the batch: the good one before it is not written. */
        float bad[8 * DIM];
        vec(bad, 8, 7);
        bad[0] = NAN;
        docs[0] = (me_doc_t){ .id = "good", .vectors = v, .rows = 8 };
        docs[1] = (me_doc_t){ .id = "bad", .vectors = bad, .rows = 8 };
        expect(me_client_upsert(g_c, "c", docs, 2, DIM, &st), &st, ME_CODE_INVALID_ARGUMENT, "document 1 ('bad')");
        const char *g = "good";
        ASSERT_EQ(me_test_count_ids(g_c, "c", &g, 1), 0);
        /* Duplicate ids in one batch: the last wins. */
        float v2[8 * DIM];
        vec(v2, 8, 8);
        docs[0] = (me_doc_t){ .id = "dup", .vectors = v, .rows = 8 };
        docs[1] = (me_doc_t){ .id = "dup", .vectors = v2, .rows = 8, .metadata = "{\"n\":2}", .metadata_len = 7 };
        ASSERT_OK(me_client_upsert(g_c, "c", docs, 2, DIM, &st));
        const char *dup = "dup";
        me_record_t *recs;
        size_t n;
        ASSERT_OK(me_client_get(g_c, "c", &dup, 1, 1, &recs, &n, &st));
        ASSERT_EQ(n, 1);
        ASSERT_EQ(recs[0].metadata_len, 7);
        /* f16 storage: compare at f16 precision. */
        for (int i = 0; i < 8 * DIM; i++) ASSERT_NEAR(recs[0].vectors[i], v2[i], fabs(v2[i]) * 1e-3 + 1e-4);
        me_records_free(recs, n);
    }
    still_serving(11);

    /* Searches. */
    float q[5 * DIM];
    vec(q, 5, 3);
    expect(search1(q, 5, DIM, (me_search_opts_t){ .k = 5 }, &st), &st, ME_CODE_INVALID_ARGUMENT, "5 vectors, must be 1..4");
    expect(search1(q, 2, DIM + 1, (me_search_opts_t){ .k = 5 }, &st), &st, ME_CODE_INVALID_ARGUMENT, "dim 17 does not match");
    expect(search1(q, 2, DIM, (me_search_opts_t){ .k = 0 }, &st), &st, ME_CODE_INVALID_ARGUMENT, "k must be at least 1");
    expect(search1(q, 2, DIM, (me_search_opts_t){ .k = 1001 }, &st), &st, ME_CODE_INVALID_ARGUMENT, "limit of 1000");
    expect(search1(q, 2, DIM, (me_search_opts_t){ .k = 5, .r_c = 9 }, &st), &st, ME_CODE_INVALID_ARGUMENT, "r_c=9 exceeds");
    expect(search1(q, 2, DIM, (me_search_opts_t){ .k = 5, .r_q = 3 }, &st), &st, ME_CODE_INVALID_ARGUMENT, "r_q=3 exceeds the 2");
    expect(search1(q, 2, DIM, (me_search_opts_t){ .k = 5, .candidates = 2 }, &st), &st, ME_CODE_INVALID_ARGUMENT, "at least k");
    q[1] = NAN;
    expect(search1(q, 2, DIM, (me_search_opts_t){ .k = 5 }, &st), &st, ME_CODE_INVALID_ARGUMENT, "NaN or Inf");
    memset(q, 0, DIM * sizeof(float));
    expect(search1(q, 2, DIM, (me_search_opts_t){ .k = 5 }, &st), &st, ME_CODE_INVALID_ARGUMENT, "zero norm");
    {
        me_results_t res;
        vec(q, 2, 3);
        rc = me_client_search(g_c, "nope", q, 2, DIM, &(me_search_opts_t){ .k = 5 }, &res, &st);
        expect(rc, &st, ME_CODE_NOT_FOUND, "does not exist");
        /* k above the document count: every document, best first. */
        ASSERT_OK(me_client_search(g_c, "c", q, 2, DIM, &(me_search_opts_t){ .k = 1000 }, &res, &st));
        ASSERT_EQ(res.n, 11);
        for (size_t i = 1; i < res.n; i++) ASSERT_TRUE(res.hits[i - 1].score >= res.hits[i].score);
        me_results_free(&res);
    }
    still_serving(11);

    /* Get/Delete. */
    {
        const char *ids[] = { "d1", "missing" };
        me_record_t *recs;
        size_t n;
        ASSERT_OK(me_client_get(g_c, "c", ids, 2, 0, &recs, &n, &st));
        ASSERT_EQ(n, 1);
        ASSERT_STREQ(recs[0].id, "d1");
        me_records_free(recs, n);
        expect(me_client_get(g_c, "nope", ids, 2, 0, &recs, &n, &st), &st, ME_CODE_NOT_FOUND, "does not exist");
        expect(me_client_get(g_c, "c", ids, 0, 0, &recs, &n, &st), &st, ME_CODE_INVALID_ARGUMENT, "empty batch");
        expect(me_client_delete(g_c, "c", ids, 0, NULL, &st), &st, ME_CODE_INVALID_ARGUMENT, "empty batch");
        expect(me_client_delete(g_c, "nope", ids, 1, NULL, &st), &st, ME_CODE_NOT_FOUND, "does not exist");
    }

    /* The wire itself. */
    {
        void *reply;
        size_t rlen;
        rc = me_client_call(g_c, 99, "", 0, &reply, &rlen, &st);
        expect(rc, &st, ME_CODE_UNIMPLEMENTED, "unknown method 99");
        rc = me_client_call(g_c, METAEMBED__METHOD__METHOD_ENCODE, "", 0, &reply, &rlen, &st);
        expect(rc, &st, ME_CODE_UNIMPLEMENTED, "encoder");
        /* A payload that is not a SearchRequest (field 1 claims 127 bytes). */
        rc = me_client_call(g_c, METAEMBED__METHOD__METHOD_SEARCH, "\x0a\x7f" "ab", 4, &reply, &rlen, &st);
        expect(rc, &st, ME_CODE_INVALID_ARGUMENT, "malformed SearchRequest");
        /* int8 is a storage dtype, not an input dtype. */
        uint32_t shape[2] = { 1, DIM };
        int8_t bytes[DIM] = { 1 };
        Metaembed__Tensor t = METAEMBED__TENSOR__INIT;
        t.dtype = METAEMBED__DTYPE__DTYPE_INT8;
        t.shape = shape;
        t.n_shape = 2;
        t.data.data = (uint8_t *)bytes;
        t.data.len = DIM;
        Metaembed__SearchRequest sr = METAEMBED__SEARCH_REQUEST__INIT;
        sr.collection = "c";
        sr.query = &t;
        sr.k = 3;
        uint8_t buf[256];
        size_t len = metaembed__search_request__pack(&sr, buf);
        rc = me_client_call(g_c, METAEMBED__METHOD__METHOD_SEARCH, buf, len, &reply, &rlen, &st);
        expect(rc, &st, ME_CODE_INVALID_ARGUMENT, "dtype must be f32 or f16");
        t.dtype = METAEMBED__DTYPE__DTYPE_F32;  /* 16 bytes for 64 expected */
        len = metaembed__search_request__pack(&sr, buf);
        rc = me_client_call(g_c, METAEMBED__METHOD__METHOD_SEARCH, buf, len, &reply, &rlen, &st);
        expect(rc, &st, ME_CODE_INVALID_ARGUMENT, "data bytes");
        uint32_t shape3[3] = { 1, 1, DIM };
        t.shape = shape3;
        t.n_shape = 3;
        len = metaembed__search_request__pack(&sr, buf);
        rc = me_client_call(g_c, METAEMBED__METHOD__METHOD_SEARCH, buf, len, &reply, &rlen, &st);
        expect(rc, &st, ME_CODE_INVALID_ARGUMENT, "shape must be");
    }
    {
        uint64_t rid = 77;
        const void *f[1] = { "hello, not protobuf" };
        size_t l[1] = { 19 };
        ASSERT_EQ(raw(d.endpoint, f, l, 1, &rid), ME_CODE_INVALID_ARGUMENT);
        ASSERT_EQ(rid, 0);
        /* A valid envelope cut short. */
        Metaembed__Envelope env = METAEMBED__ENVELOPE__INIT;
        env.request_id = 5;
        env.method = METAEMBED__METHOD__METHOD_HEALTH;
        env.payload.data = (uint8_t *)"0123456789";
        env.payload.len = 10;
        uint8_t buf[64];
        size_t len = metaembed__envelope__pack(&env, buf);
        f[0] = buf;
        l[0] = len - 4;
        ASSERT_EQ(raw(d.endpoint, f, l, 1, &rid), ME_CODE_INVALID_ARGUMENT);
        /* Too many frames: refused without echoing them (test_probe has more). */
        const void *many[12];
        size_t ml[12];
        for (int i = 0; i < 12; i++) { many[i] = "x"; ml[i] = 1; }
        ASSERT_EQ(raw(d.endpoint, many, ml, 12, &rid), ME_CODE_RESOURCE_EXHAUSTED);
        /* Above --max-message (1 MiB) but under the socket's hard cap. */
        size_t big = 1536 * 1024;
        uint8_t *huge = calloc(1, big);
        f[0] = huge;
        l[0] = big;
        ASSERT_EQ(raw(d.endpoint, f, l, 1, &rid), ME_CODE_RESOURCE_EXHAUSTED);
        free(huge);
    }
    still_serving(11);

    me_client_close(g_c);
    /* Still a clean shutdown after all that. */
    ASSERT_EQ(me_daemon_stop(&d, 0), 0);
    me_daemon_free(&d);
}
