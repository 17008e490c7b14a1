/* The coordinator's HTTP/JSON API through a real cluster: every route's
 * status and body, search results equal to the wire's for the same
 * request, the limits (body size, batch, k, deadline), hostile input (bad
 * JSON, NUL and invalid UTF-8, wrong and ragged dims, Inf, unknown
 * members, bad base64), the API key on and off, the API off on a public
 * address without a key, text ingest through the encoders, and
 * /openapi.json equal to docs/openapi.json. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/json.h"
#include "tests/cluster.h"
#include "tests/harness.h"

/* One request: the status, and the reply parsed (it must be JSON) in *out
 * when out != NULL (free with me_json_free). */
static int api(int port, const char *method, const char *path, const char *headers, const char *json,
               me_json_doc_t **out) {
    char *body = NULL;
    int status = me_test_http_with(port, method, path, headers, json, json ? strlen(json) : 0, "application/json",
                                   &body);
    me_json_doc_t *doc = NULL;
    if (body && me_json_parse(body, strlen(body), &doc, NULL) != 0) {
        fprintf(stderr, "    %s %s: the reply is not JSON: %.300s\n", method, path, body);
        status = -2;
    }
    free(body);
    if (out) *out = doc;
    else me_json_free(doc);
    return status;
}

/* The request fails with this HTTP status and code, and says why. */
static int expect_error(int port, const char *method, const char *path, const char *headers, const char *json,
                        int status, const char *code) {
    me_json_doc_t *doc;
    int got = api(port, method, path, headers, json, &doc);
    const me_json_t *root = doc ? me_json_root(doc) : NULL;
    const char *c = me_json_str(me_json_get(root, "code")), *m = me_json_str(me_json_get(root, "message"));
    int ok = got == status && c && !strcmp(c, code) && m && m[0];
    if (!ok)
        fprintf(stderr, "    %s %s %.80s: want %d %s, got %d %s (%s)\n", method, path, json ? json : "", status, code,
                got, c ? c : "-", m ? m : "-");
    me_json_free(doc);
    return ok;
}

static const char *str_at(const me_json_t *v, const char *key) { return me_json_str(me_json_get(v, key)); }

static double num_at(const me_json_t *v, const char *key) {
    double x = NAN;
    me_json_num(me_json_get(v, key), &x);
    return x;
}

/* HTTP's hits equal the wire's: same ids in the same order, the same
 * float scores (written with %.9g, so they read back exactly). */
static int same_hits(const me_json_t *root, const me_results_t *res) {
    const me_json_t *hits = me_json_get(root, "hits");
    if (me_json_len(hits) != res->n) {
        fprintf(stderr, "    %zu hits over HTTP, %zu over the wire\n", me_json_len(hits), res->n);
        return 0;
    }
    for (size_t i = 0; i < res->n; i++) {
        const me_json_t *h = me_json_at(hits, i);
        const char *id = str_at(h, "id");
        if (!id || strcmp(id, res->hits[i].id) || (float)num_at(h, "score") != res->hits[i].score) {
            fprintf(stderr, "    hit %zu: %s %.9g over HTTP, %s %.9g over the wire\n", i, id ? id : "-",
                    num_at(h, "score"), res->hits[i].id, res->hits[i].score);
            return 0;
        }
    }
    return (int)num_at(root, "r_q") == res->r_q && (int)num_at(root, "r_c") == res->r_c;
}

#define D 8
#define R 4
#define NDOCS 40

/* Document i's vectors: R unit-ish rows from a fixed seed. */
static void doc_vectors(int i, float *v) {
    me_rng_t rng = { (uint64_t)i * 7919 + 1 };
    for (int j = 0; j < R * D; j++) v[j] = (float)me_rng_normal(&rng);
}

/* The upsert body of documents [lo, hi) as JSON arrays (%.9g: exact floats). */
static char *upsert_body(int lo, int hi) {
    me_json_writer_t w;
    me_json_writer_init_buf(&w);
    me_json_obj_begin(&w, NULL);
    me_json_arr_begin(&w, "documents");
    for (int i = lo; i < hi; i++) {
        float v[R * D];
        doc_vectors(i, v);
        char id[32];
        snprintf(id, sizeof id, "doc-%d", i);
        me_json_obj_begin(&w, NULL);
        me_json_put_str(&w, "id", id);
        me_json_arr_begin(&w, "vectors");
        for (int r = 0; r < R; r++) {
            me_json_arr_begin(&w, NULL);
            for (int j = 0; j < D; j++) me_json_put_num_prec(&w, NULL, v[r * D + j], 9);
            me_json_arr_end(&w);
        }
        me_json_arr_end(&w);
        me_json_obj_begin(&w, "metadata");
        me_json_put_int(&w, "n", i);
        me_json_put_str(&w, "tag", i % 2 ? "odd" : "even");
        me_json_obj_end(&w);
        me_json_obj_end(&w);
    }
    me_json_arr_end(&w);
    me_json_obj_end(&w);
    char *s = me_json_writer_take(&w, NULL);
    me_json_writer_free(&w);
    return s;
}

TEST(http_api_routes_match_the_wire) {
    cluster_t c;
    const char *extra[] = { "--max-batch=64", NULL };
    ASSERT_OK(cluster_start(&c, 2, 1, extra));
    int port = c.coord.metrics_port;
    me_json_doc_t *doc;
    ASSERT_EQ(api(port, "GET", "/v1/health", NULL, NULL, &doc), 200);
    int b = 0;
    ASSERT_OK(me_json_bool(me_json_get(me_json_root(doc), "serving"), &b));
    ASSERT_TRUE(b);
    ASSERT_STREQ(str_at(me_json_root(doc), "version"), ME_VERSION);
    me_json_free(doc);

    /* Create: defaults filled in by the server; again: 409. */
    ASSERT_EQ(api(port, "POST", "/v1/collections", NULL, "{\"name\": \"h\", \"dim\": 8, \"r_c\": 4, \"r_q\": 2, \"dtype\": \"f32\"}",
                  &doc), 201);
    ASSERT_STREQ(str_at(me_json_root(doc), "name"), "h");
    ASSERT_EQ(num_at(me_json_root(doc), "r_c"), 4);
    ASSERT_EQ(num_at(me_json_root(doc), "ram_vectors"), 4);
    ASSERT_STREQ(str_at(me_json_root(doc), "dtype"), "f32");
    me_json_free(doc);
    ASSERT_TRUE(expect_error(port, "POST", "/v1/collections", NULL, "{\"name\": \"h\", \"dim\": 8}", 409, "ALREADY_EXISTS"));
    /* No dim and no encoders: the server's refusal. */
    ASSERT_TRUE(expect_error(port, "POST", "/v1/collections", NULL, "{\"name\": \"nodim\"}", 400, "INVALID_ARGUMENT"));

    /* Upsert as JSON arrays, then one document as a base64 f32 tensor. */
    char *body = upsert_body(0, NDOCS);
    ASSERT_EQ(api(port, "POST", "/v1/collections/h/upsert", NULL, body, &doc), 200);
    free(body);
    ASSERT_EQ(num_at(me_json_root(doc), "upserted"), NDOCS);
    me_json_free(doc);
    /* [1, 0, ..., 0] and [0, 1, 0, ...] as little-endian f32, base64. */
    const char *b64doc = "{\"documents\": [{\"id\": \"b64\", \"vectors\": {\"dtype\": \"f32\", \"shape\": [2, 8], "
                         "\"data\": \"AACAPwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAACAPwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\"}}]}";
    ASSERT_EQ(api(port, "POST", "/v1/collections/h/upsert", NULL, b64doc, NULL), 200);

    ASSERT_EQ(api(port, "GET", "/v1/collections", NULL, NULL, &doc), 200);
    ASSERT_EQ(me_json_len(me_json_get(me_json_root(doc), "collections")), 1);
    ASSERT_EQ(num_at(me_json_at(me_json_get(me_json_root(doc), "collections"), 0), "documents"), NDOCS + 1);
    me_json_free(doc);
    ASSERT_EQ(api(port, "GET", "/v1/collections/h", NULL, NULL, &doc), 200);
    ASSERT_EQ(num_at(me_json_root(doc), "documents"), NDOCS + 1);
    ASSERT_EQ(num_at(me_json_root(doc), "dim"), D);
    me_json_free(doc);
    ASSERT_EQ(api(port, "GET", "/v1/status", NULL, NULL, &doc), 200);
    ASSERT_EQ(me_json_len(me_json_get(me_json_root(doc), "groups")), 2);
    ASSERT_STREQ(str_at(me_json_root(doc), "role"), "coordinator");
    me_json_free(doc);

    /* Get: the stored vectors exactly (f32 collection), metadata as JSON,
     * missing ids named. */
    ASSERT_EQ(api(port, "POST", "/v1/collections/h/get", NULL,
                  "{\"ids\": [\"doc-3\", \"nope\", \"b64\"], \"with_vectors\": true}", &doc), 200);
    const me_json_t *docs = me_json_get(me_json_root(doc), "documents");
    ASSERT_EQ(me_json_len(docs), 2);
    ASSERT_STREQ(str_at(me_json_at(docs, 0), "id"), "doc-3");
    ASSERT_EQ(num_at(me_json_get(me_json_at(docs, 0), "metadata"), "n"), 3);
    float v[R * D];
    doc_vectors(3, v);
    const me_json_t *vec = me_json_get(me_json_at(docs, 0), "vectors");
    ASSERT_EQ(me_json_len(vec), R);
    for (int r = 0; r < R; r++)
        for (int j = 0; j < D; j++) {
            double x;
            ASSERT_OK(me_json_num(me_json_at(me_json_at(vec, (size_t)r), (size_t)j), &x));
            ASSERT_TRUE((float)x == v[r * D + j]);
        }
    double one;
    ASSERT_OK(me_json_num(me_json_at(me_json_at(me_json_get(me_json_at(docs, 1), "vectors"), 1), 1), &one));
    ASSERT_EQ(one, 1);
    ASSERT_STREQ(me_json_str(me_json_at(me_json_get(me_json_root(doc), "missing"), 0)), "nope");
    me_json_free(doc);

    /* Search: the same request over HTTP and over the wire, cascade and
     * exact, at two budgets. */
    me_client_t *cl = me_daemon_client(&c.coord);
    ASSERT_TRUE(cl != NULL);
    float q[R * D];  /* the first 2 rows are the query */
    doc_vectors(1000, q);
    for (int mode = 0; mode < 4; mode++) {
        int exact = mode & 1, rq = mode & 2 ? 2 : 1, rc = mode & 2 ? 4 : 2;
        me_json_writer_t w;
        me_json_writer_init_buf(&w);
        me_json_obj_begin(&w, NULL);
        me_json_arr_begin(&w, "vectors");
        for (int r = 0; r < 2; r++) {
            me_json_arr_begin(&w, NULL);
            for (int j = 0; j < D; j++) me_json_put_num_prec(&w, NULL, q[r * D + j], 9);
            me_json_arr_end(&w);
        }
        me_json_arr_end(&w);
        me_json_arr_begin(&w, "budget");
        me_json_put_int(&w, NULL, rq);
        me_json_put_int(&w, NULL, rc);
        me_json_arr_end(&w);
        me_json_put_int(&w, "k", 7);
        me_json_put_bool(&w, "exact", exact);
        me_json_obj_end(&w);
        char *sb = me_json_writer_take(&w, NULL);
        me_json_writer_free(&w);
        ASSERT_EQ(api(port, "POST", "/v1/collections/h/search", NULL, sb, &doc), 200);
        free(sb);
        me_search_opts_t o = { .r_q = rq, .r_c = rc, .k = 7, .exact = exact, .with_metadata = 1 };
        me_results_t res;
        me_status_t st;
        ASSERT_OK(me_client_search(cl, "h", q, 2, D, &o, &res, &st));
        ASSERT_TRUE(same_hits(me_json_root(doc), &res));
        ASSERT_EQ(res.n, 7);
        /* Metadata comes back as the object stored. */
        const char *tag = str_at(me_json_get(me_json_at(me_json_get(me_json_root(doc), "hits"), 0), "metadata"), "tag");
        ASSERT_TRUE(tag && (!strcmp(tag, "odd") || !strcmp(tag, "even")));
        ASSERT_TRUE(me_json_len(me_json_get(me_json_root(doc), "stages")) >= 2);
        me_results_free(&res);
        me_json_free(doc);
    }
    /* A flat array is one query vector; candidates per stage as an array. */
    ASSERT_EQ(api(port, "POST", "/v1/collections/h/search", NULL,
                  "{\"vectors\": [1, 0, 0, 0, 0, 0, 0, 0], \"k\": 3, \"with_metadata\": false, \"candidates\": [50, 10]}",
                  &doc), 200);
    {
        float e0[D] = { 1 };
        me_search_opts_t o = { .k = 3, .candidates = 50, .refine_candidates = 10 };
        me_results_t res;
        me_status_t st;
        ASSERT_OK(me_client_search(cl, "h", e0, 1, D, &o, &res, &st));
        ASSERT_TRUE(same_hits(me_json_root(doc), &res));
        ASSERT_TRUE(me_json_get(me_json_at(me_json_get(me_json_root(doc), "hits"), 0), "metadata") == NULL);
        me_results_free(&res);
    }
    me_json_free(doc);
    /* A text query needs encoders; this cluster has none. */
    ASSERT_TRUE(expect_error(port, "POST", "/v1/collections/h/search", NULL, "{\"text\": \"hello\"}", 400,
                             "FAILED_PRECONDITION"));

    /* Delete, then get: gone. */
    ASSERT_EQ(api(port, "POST", "/v1/collections/h/delete", NULL, "{\"ids\": [\"doc-1\", \"doc-2\", \"never\"]}", &doc), 200);
    ASSERT_EQ(num_at(me_json_root(doc), "deleted"), 2);
    me_json_free(doc);
    ASSERT_EQ(me_test_count_ids(cl, "h", (const char *const[]){ "doc-1", "doc-2", "doc-3" }, 3), 1);

    /* Routes and methods that do not exist. */
    ASSERT_TRUE(expect_error(port, "GET", "/v1/nothing", NULL, NULL, 404, "NOT_FOUND"));
    ASSERT_TRUE(expect_error(port, "PUT", "/v1/collections/h", NULL, NULL, 405, "INVALID_ARGUMENT"));
    ASSERT_TRUE(expect_error(port, "GET", "/v1/collections/h/search", NULL, NULL, 405, "INVALID_ARGUMENT"));

    /* /openapi.json is docs/openapi.json, byte for byte. */
    char *served = NULL, *file = me_test_slurp("docs/openapi.json");
    ASSERT_EQ(me_test_http_get(port, "/openapi.json", &served), 200);
    ASSERT_TRUE(file && served && !strcmp(file, served));
    ASSERT_TRUE(me_json_valid(served, strlen(served)));
    free(served);
    free(file);
    /* The page's API still answers. */
    ASSERT_EQ(me_test_http_get(port, "/api/collections", &served), 200);
    ASSERT_TRUE(strstr(served, "\"h\"") != NULL);
    free(served);

    ASSERT_EQ(api(port, "DELETE", "/v1/collections/h", NULL, NULL, &doc), 200);
    ASSERT_STREQ(str_at(me_json_root(doc), "dropped"), "h");
    me_json_free(doc);
    ASSERT_TRUE(expect_error(port, "DELETE", "/v1/collections/h", NULL, NULL, 404, "NOT_FOUND"));
    ASSERT_TRUE(expect_error(port, "GET", "/v1/collections/h", NULL, NULL, 404, "NOT_FOUND"));
    me_client_close(cl);
    cluster_stop(&c);
}

TEST(http_api_refuses_hostile_input) {
    cluster_t c;
    const char *extra[] = { "--max-batch=4", NULL };
    ASSERT_OK(cluster_start(&c, 1, 1, extra));
    int port = c.coord.metrics_port;
    ASSERT_EQ(api(port, "POST", "/v1/collections", NULL, "{\"name\": \"x\", \"dim\": 4, \"r_c\": 2, \"r_q\": 2}", NULL), 201);
    const char *up = "/v1/collections/x/upsert", *se = "/v1/collections/x/search";
    struct { const char *path, *body; int status; const char *code; } cases[] = {
        /* Not JSON, not an object, nothing. */
        { se, "{\"k\": 1,}", 400, "INVALID_ARGUMENT" },
        { se, "[1, 2]", 400, "INVALID_ARGUMENT" },
        { se, "", 400, "INVALID_ARGUMENT" },
        { se, "{\"text\": \"\xff\xfe\"}", 400, "INVALID_ARGUMENT" },       /* invalid UTF-8 */
        { se, "{\"text\": \"\\ud800\"}", 400, "INVALID_ARGUMENT" },        /* a lone surrogate */
        { se, "{\"text\": \"a\\u0000b\"}", 400, "INVALID_ARGUMENT" },      /* a NUL */
        { se, "{\"vectors\": [[1, 0, 0, 0]], \"budegt\": [1, 1]}", 400, "INVALID_ARGUMENT" },
        /* k: zero, past the server's limit, negative, past 32 bits, not a number. */
        { se, "{\"vectors\": [[1, 0, 0, 0]], \"k\": 0}", 400, "INVALID_ARGUMENT" },
        { se, "{\"vectors\": [[1, 0, 0, 0]], \"k\": 1000000}", 400, "INVALID_ARGUMENT" },
        { se, "{\"vectors\": [[1, 0, 0, 0]], \"k\": -1}", 400, "INVALID_ARGUMENT" },
        { se, "{\"vectors\": [[1, 0, 0, 0]], \"k\": 1099511627776}", 400, "INVALID_ARGUMENT" },
        { se, "{\"vectors\": [[1, 0, 0, 0]], \"k\": \"10\"}", 400, "INVALID_ARGUMENT" },
        { se, "{\"vectors\": [[1, 0, 0, 0]], \"budget\": [1]}", 400, "INVALID_ARGUMENT" },
        /* Wrong dims, ragged rows, too many rows, Inf, not numbers, nothing to search with. */
        { se, "{\"vectors\": [[1, 0, 0]]}", 400, "INVALID_ARGUMENT" },
        { se, "{\"vectors\": [[1, 0, 0, 0], [1, 0]]}", 400, "INVALID_ARGUMENT" },
        { se, "{\"vectors\": [[1,0,0,0],[1,0,0,0],[1,0,0,0]]}", 400, "INVALID_ARGUMENT" },
        { se, "{\"vectors\": [[1e999, 0, 0, 0]]}", 400, "INVALID_ARGUMENT" },
        { se, "{\"vectors\": [[\"a\", 0, 0, 0]]}", 400, "INVALID_ARGUMENT" },
        { se, "{\"vectors\": {\"dtype\": \"f32\", \"shape\": [1, 4], \"data\": \"!!!!\"}}", 400, "INVALID_ARGUMENT" },
        { se, "{\"vectors\": {\"dtype\": \"f32\", \"shape\": [1, 4], \"data\": \"AAAA\"}}", 400, "INVALID_ARGUMENT" },
        { se, "{\"vectors\": {\"dtype\": \"int8\", \"shape\": [1, 4], \"data\": \"\"}}", 400, "INVALID_ARGUMENT" },
        { se, "{\"k\": 3}", 400, "INVALID_ARGUMENT" },
        { se, "{\"image\": \"not base64!\"}", 400, "INVALID_ARGUMENT" },
        { "/v1/collections/nope/search", "{\"vectors\": [[1, 0, 0, 0]]}", 404, "NOT_FOUND" },
        /* The path's name goes to the server as it is (no decoding here). */
        { "/v1/collections/..%2f/search", "{\"vectors\": [[1, 0, 0, 0]]}", 404, "NOT_FOUND" },
        /* Upserts: wrong dims, a NUL in an id, an empty id, metadata that is not an object, too many documents. */
        { up, "{\"documents\": [{\"id\": \"a\", \"vectors\": [[1, 0, 0]]}]}", 400, "INVALID_ARGUMENT" },
        { up, "{\"documents\": [{\"id\": \"a\\u0000b\", \"vectors\": [[1, 0, 0, 0]]}]}", 400, "INVALID_ARGUMENT" },
        { up, "{\"documents\": [{\"id\": \"\", \"vectors\": [[1, 0, 0, 0]]}]}", 400, "INVALID_ARGUMENT" },
        { up, "{\"documents\": [{\"id\": \"a\", \"vectors\": [[1, 0, 0, 0]], \"metadata\": [1]}]}", 400, "INVALID_ARGUMENT" },
        { up, "{\"documents\": [{\"id\": \"a\", \"vectors\": [[1, 0, 0, 0]], \"metadata\": {\"k\\u0000\": 1}}]}", 400,
          "INVALID_ARGUMENT" },
        { up, "{\"documents\": [{\"id\": \"a\", \"vectors\": [[0, 0, 0, 0]]}]}", 400, "INVALID_ARGUMENT" },
        { up, "{\"documents\": []}", 400, "INVALID_ARGUMENT" },
        { up, "{\"documents\": [1]}", 400, "INVALID_ARGUMENT" },
        { up, "{\"documents\": [{\"id\":\"1\",\"vectors\":[1,0,0,0]},{\"id\":\"2\",\"vectors\":[1,0,0,0]},"
              "{\"id\":\"3\",\"vectors\":[1,0,0,0]},{\"id\":\"4\",\"vectors\":[1,0,0,0]},{\"id\":\"5\",\"vectors\":[1,0,0,0]}]}",
          413, "RESOURCE_EXHAUSTED" },
        { "/v1/collections/nope/upsert", "{\"documents\": [{\"id\": \"a\", \"vectors\": [[1, 0, 0, 0]]}]}", 404, "NOT_FOUND" },
        { "/v1/collections/x/get", "{\"ids\": [1]}", 400, "INVALID_ARGUMENT" },
        { "/v1/collections/x/get", "{\"ids\": \"a\"}", 400, "INVALID_ARGUMENT" },
        { "/v1/collections/x/delete", "{}", 400, "INVALID_ARGUMENT" },
        { "/v1/collections/x/search", "{\"vectors\": [[1, 0, 0, 0]], \"timeout_ms\": 0}", 400, "INVALID_ARGUMENT" },
        { "/v1/collections", "{\"name\": \"bad/name\", \"dim\": 4}", 400, "INVALID_ARGUMENT" },
        { "/v1/collections", "{\"name\": \"y\", \"dim\": 99999}", 400, "INVALID_ARGUMENT" },
        { "/v1/collections", "{\"name\": \"y\", \"dim\": 4, \"dtype\": \"f64\"}", 400, "INVALID_ARGUMENT" },
        { "/v1/collections", "{\"name\": 5, \"dim\": 4}", 400, "INVALID_ARGUMENT" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (!expect_error(port, "POST", cases[i].path, NULL, cases[i].body, cases[i].status, cases[i].code))
            me_test_fail(__FILE__, __LINE__, "case %zu", i);
    }
    /* A bad X-Timeout-Ms; a good one. */
    ASSERT_TRUE(expect_error(port, "GET", "/v1/collections", "X-Timeout-Ms: soon\r\n", NULL, 400, "INVALID_ARGUMENT"));
    ASSERT_EQ(api(port, "GET", "/v1/collections", "X-Timeout-Ms: 2000\r\n", NULL, NULL), 200);
    /* A body over the server's limit: 413 before it is read. */
    size_t big = (9u << 20) + 16;
    char *huge = malloc(big + 1);
    ASSERT_TRUE(huge != NULL);
    memset(huge, ' ', big);
    huge[big] = 0;
    ASSERT_EQ(me_test_http(port, "POST", up, huge, big, "application/json", NULL), 413);
    free(huge);
    /* Still serving, nothing stored. */
    me_json_doc_t *doc;
    ASSERT_EQ(api(port, "GET", "/v1/collections/x", NULL, NULL, &doc), 200);
    ASSERT_EQ(num_at(me_json_root(doc), "documents"), 0);
    me_json_free(doc);
    cluster_stop(&c);
}

TEST(http_api_key_required_when_given_and_off_loopback) {
    char *dir = me_test_tmpdir("apikey");
    char keyfile[600], keyarg[700];
    snprintf(keyfile, sizeof keyfile, "%s/key", dir);
    FILE *f = fopen(keyfile, "w");
    ASSERT_TRUE(f != NULL);
    fputs("s3cret-key\n", f);
    fclose(f);
    snprintf(keyarg, sizeof keyarg, "--api-key-file=%s", keyfile);
    cluster_t c;
    const char *extra[] = { keyarg, NULL };
    ASSERT_OK(cluster_start(&c, 1, 1, extra));
    int port = c.coord.metrics_port;
    ASSERT_TRUE(expect_error(port, "GET", "/v1/collections", NULL, NULL, 401, "UNAUTHENTICATED"));
    ASSERT_TRUE(expect_error(port, "POST", "/v1/collections", NULL, "{\"name\": \"k\", \"dim\": 4}", 401, "UNAUTHENTICATED"));
    ASSERT_TRUE(expect_error(port, "GET", "/v1/collections", "Authorization: Bearer s3cret-kez\r\n", NULL, 401,
                             "UNAUTHENTICATED"));
    ASSERT_TRUE(expect_error(port, "GET", "/v1/collections", "Authorization: Bearer s3cret-key-longer\r\n", NULL, 401,
                             "UNAUTHENTICATED"));
    ASSERT_TRUE(expect_error(port, "GET", "/v1/collections", "Authorization: Basic czNjcmV0LWtleQ==\r\n", NULL, 401,
                             "UNAUTHENTICATED"));
    ASSERT_EQ(api(port, "POST", "/v1/collections", "Authorization: Bearer s3cret-key\r\n", "{\"name\": \"k\", \"dim\": 4}",
                  NULL), 201);
    ASSERT_EQ(api(port, "GET", "/v1/collections", "authorization: bearer s3cret-key\r\n", NULL, NULL), 200);
    /* Health and the document need no key (probes, tools). */
    ASSERT_EQ(api(port, "GET", "/v1/health", NULL, NULL, NULL), 200);
    ASSERT_EQ(me_test_http_get(port, "/openapi.json", NULL), 200);
    /* The key never reaches the log. */
    char *log = me_test_slurp(c.coord.log);
    ASSERT_TRUE(log && !strstr(log, "s3cret"));
    free(log);
    cluster_stop(&c);

    /* An empty key file, or a key given twice, is refused at start with
     * what to do (the coordinator exits before it reads its map). */
    f = fopen(keyfile, "w");
    fputs("\n", f);
    fclose(f);
    char bin[512], *out = NULL, *err = NULL;
    me_test_bin("metaembed-coordinator", bin, sizeof bin);
    char *empty[] = { bin, "--cluster=/nonexistent", keyarg, NULL };
    ASSERT_EQ(me_test_run_capture(empty, dir, "empty", &out, &err), 2);
    ASSERT_TRUE(err && strstr(err, "API key is empty"));
    free(out);
    free(err);
    char *both[] = { bin, "--cluster=/nonexistent", keyarg, "--api-key=abc", NULL };
    ASSERT_EQ(me_test_run_capture(both, dir, "both", &out, &err), 2);
    ASSERT_TRUE(err && strstr(err, "not both"));
    free(out);
    free(err);

    /* A public address without a key: the API is off, health answers. */
    int mport = me_test_free_port();
    char maddr[64];
    snprintf(maddr, sizeof maddr, "--metrics-addr=0.0.0.0:%d", mport);
    const char *pub[] = { maddr, "--metrics-public", NULL };
    ASSERT_OK(cluster_start(&c, 1, 1, pub));
    ASSERT_TRUE(expect_error(mport, "POST", "/v1/collections", NULL, "{\"name\": \"k\", \"dim\": 4}", 403, "PERMISSION_DENIED"));
    ASSERT_TRUE(expect_error(mport, "GET", "/v1/collections", NULL, NULL, 403, "PERMISSION_DENIED"));
    ASSERT_EQ(api(mport, "GET", "/v1/health", NULL, NULL, NULL), 200);
    cluster_stop(&c);
    me_test_rmdir(dir);
    free(dir);
}

/* The ids of a search reply, in order, as one string "a,b,c". */
static void hit_ids(const me_json_t *root, char *out, size_t cap) {
    const me_json_t *hits = me_json_get(root, "hits");
    out[0] = 0;
    for (size_t i = 0; i < me_json_len(hits); i++)
        snprintf(out + strlen(out), cap - strlen(out), "%s%s", i ? "," : "", str_at(me_json_at(hits, i), "id"));
}

/* GET /v1/collections/{name}/ids pages every id once in byte order; search
 * with "offset" cuts the same pages as the wire; hostile paging input is
 * refused with the API's errors. */
TEST(http_api_ids_and_search_offset) {
    cluster_t c;
    ASSERT_OK(cluster_start(&c, 2, 1, NULL));
    int port = c.coord.metrics_port;
    ASSERT_EQ(api(port, "POST", "/v1/collections", NULL, "{\"name\": \"h\", \"dim\": 8, \"r_c\": 4, \"r_q\": 2, \"dtype\": \"f32\"}",
                  NULL), 201);
    char *body = upsert_body(0, NDOCS);
    ASSERT_EQ(api(port, "POST", "/v1/collections/h/upsert", NULL, body, NULL), 200);
    free(body);

    /* Scroll with limit 7: doc-0, doc-1, doc-10, ... each once, ascending. */
    char path[400], after[64] = "", prev[64] = "";
    size_t total = 0;
    for (int pages = 0; pages < 100; pages++) {
        me_json_doc_t *doc;
        snprintf(path, sizeof path, "/v1/collections/h/ids?limit=7%s%s", after[0] ? "&after=" : "", after);
        ASSERT_EQ(api(port, "GET", path, NULL, NULL, &doc), 200);
        const me_json_t *ids = me_json_get(me_json_root(doc), "ids"), *next = me_json_get(me_json_root(doc), "next_after");
        ASSERT_TRUE(me_json_len(ids) <= 7);
        for (size_t i = 0; i < me_json_len(ids); i++) {
            const char *id = me_json_str(me_json_at(ids, i));
            ASSERT_TRUE(id && strcmp(prev, id) < 0);
            snprintf(prev, sizeof prev, "%s", id);
            total++;
        }
        ASSERT_TRUE(next != NULL);
        int end = next->type == ME_JSON_NULL;
        if (!end) {
            ASSERT_STREQ(me_json_str(next), prev);
            snprintf(after, sizeof after, "%s", prev);
        }
        me_json_free(doc);
        if (end) break;
    }
    ASSERT_EQ(total, NDOCS);
    ASSERT_STREQ(prev, "doc-9");

    /* Search pages: (offset 0, k 20)[10:20] == (offset 10, k 10). */
    float v[R * D];
    doc_vectors(3, v);
    char rows[4096] = "[", req[4096 + 128], whole[1024], page[1024];  /* the query: document 3's first 2 rows */
    for (int r = 0; r < 2; r++) {
        strcat(rows, r ? ",[" : "[");
        for (int j = 0; j < D; j++) snprintf(rows + strlen(rows), sizeof rows - strlen(rows), "%s%.9g", j ? "," : "", v[r * D + j]);
        strcat(rows, "]");
    }
    strcat(rows, "]");
    for (int exact = 0; exact < 2; exact++) {
        me_json_doc_t *doc;
        snprintf(req, sizeof req, "{\"vectors\": %s, \"k\": 20, \"exact\": %s}", rows, exact ? "true" : "false");
        ASSERT_EQ(api(port, "POST", "/v1/collections/h/search", NULL, req, &doc), 200);
        hit_ids(me_json_root(doc), whole, sizeof whole);
        ASSERT_EQ(me_json_len(me_json_get(me_json_root(doc), "hits")), 20);
        me_json_free(doc);
        snprintf(req, sizeof req, "{\"vectors\": %s, \"k\": 10, \"offset\": 10, \"exact\": %s}", rows,
                 exact ? "true" : "false");
        ASSERT_EQ(api(port, "POST", "/v1/collections/h/search", NULL, req, &doc), 200);
        hit_ids(me_json_root(doc), page, sizeof page);
        me_json_free(doc);
        const char *tail = whole;
        for (int i = 0; i < 10; i++) tail = strchr(tail, ',') + 1;
        ASSERT_STREQ(page, tail);
    }

    ASSERT_TRUE(expect_error(port, "GET", "/v1/collections/h/ids?limit=0", NULL, NULL, 400, "INVALID_ARGUMENT"));
    ASSERT_TRUE(expect_error(port, "GET", "/v1/collections/h/ids?limit=10001", NULL, NULL, 400, "INVALID_ARGUMENT"));
    ASSERT_TRUE(expect_error(port, "GET", "/v1/collections/h/ids?limit=99999999999999999999", NULL, NULL, 400,
                             "INVALID_ARGUMENT"));
    ASSERT_TRUE(expect_error(port, "GET", "/v1/collections/h/ids?limit=7x", NULL, NULL, 400, "INVALID_ARGUMENT"));
    ASSERT_TRUE(expect_error(port, "GET", "/v1/collections/h/ids?after=doc%00x", NULL, NULL, 400, "INVALID_ARGUMENT"));
    ASSERT_TRUE(expect_error(port, "GET", "/v1/collections/h/ids?after=%FF", NULL, NULL, 400, "INVALID_ARGUMENT"));
    ASSERT_TRUE(expect_error(port, "GET", "/v1/collections/nope/ids", NULL, NULL, 404, "NOT_FOUND"));
    ASSERT_TRUE(expect_error(port, "POST", "/v1/collections/h/ids", NULL, "{}", 405, "INVALID_ARGUMENT"));
    ASSERT_TRUE(expect_error(port, "POST", "/v1/collections/h/search", NULL,
                             "{\"vectors\": [[1,0,0,0,0,0,0,0]], \"k\": 6000, \"offset\": 5000}", 400, "INVALID_ARGUMENT"));
    ASSERT_TRUE(expect_error(port, "POST", "/v1/collections/h/search", NULL,
                             "{\"vectors\": [[1,0,0,0,0,0,0,0]], \"offset\": -1}", 400, "INVALID_ARGUMENT"));

    /* Lexical and hybrid: BM25 over the metadata's "text"; both scores per hit. */
    ASSERT_EQ(api(port, "POST", "/v1/collections/h/upsert", NULL,
                  "{\"documents\": [{\"id\": \"txt-1\", \"vectors\": [[1,0,0,0,0,0,0,0]], "
                  "\"metadata\": {\"text\": \"Zebra crossing\"}}]}", NULL), 200);
    me_json_doc_t *doc;
    ASSERT_EQ(api(port, "POST", "/v1/collections/h/search", NULL, "{\"mode\": \"lexical\", \"lexical_text\": \"zebra\"}",
                  &doc), 200);
    const me_json_t *hits = me_json_get(me_json_root(doc), "hits");
    ASSERT_EQ(me_json_len(hits), 1);
    ASSERT_STREQ(me_json_str(me_json_get(me_json_at(hits, 0), "id")), "txt-1");
    ASSERT_TRUE(num_at(me_json_at(hits, 0), "lexical_score") > 0);
    me_json_free(doc);
    ASSERT_EQ(api(port, "POST", "/v1/collections/h/search", NULL,
                  "{\"vectors\": [[1,0,0,0,0,0,0,0]], \"mode\": \"hybrid\", \"lexical_text\": \"zebra\", "
                  "\"fusion\": \"weighted\", \"alpha\": 0.5, \"k\": 3}", &doc), 200);
    hits = me_json_get(me_json_root(doc), "hits");
    ASSERT_STREQ(me_json_str(me_json_get(me_json_at(hits, 0), "id")), "txt-1");
    ASSERT_TRUE(me_json_get(me_json_at(hits, 0), "dense_score") != NULL);
    me_json_free(doc);
    const char *bad[] = { "{\"mode\": \"bm25\", \"lexical_text\": \"zebra\"}",
                          "{\"mode\": \"lexical\"}",
                          "{\"mode\": \"lexical\", \"lexical_text\": \"\"}",
                          "{\"vectors\": [[1,0,0,0,0,0,0,0]], \"mode\": \"hybrid\", \"lexical_text\": \"z\", \"alpha\": 2}",
                          "{\"vectors\": [[1,0,0,0,0,0,0,0]], \"mode\": \"hybrid\", \"lexical_text\": \"z\", \"alpha\": \"x\"}",
                          "{\"vectors\": [[1,0,0,0,0,0,0,0]], \"mode\": \"hybrid\", \"lexical_text\": \"z\", \"fusion\": \"max\"}" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ASSERT_TRUE(expect_error(port, "POST", "/v1/collections/h/search", NULL, bad[i], 400, "INVALID_ARGUMENT"));
    cluster_stop(&c);
}

#define EMOJI_MODEL "models/metaembed-emoji.safetensors"

TEST(http_api_text_ingest_through_the_encoders) {
    char cwd[512], model[700], stream[CLUSTER_STREAM_MAX];
    if (!getcwd(cwd, sizeof cwd)) cwd[0] = 0;
    snprintf(model, sizeof model, "%s/%s", cwd, EMOJI_MODEL);
    if (access(model, R_OK) != 0) {
        fprintf(stderr, "    %s not found: skipped\n", EMOJI_MODEL);
        return;
    }
    cluster_t c = { 0 };
    me_daemon_t enc[2] = { 0 };
    ASSERT_OK(cluster_start_pipeline(&c, 2, model, enc, stream));
    int port = c.coord.metrics_port;
    me_json_doc_t *doc;
    /* No dim: the encoders' shape. */
    ASSERT_EQ(api(port, "POST", "/v1/collections", NULL, "{\"name\": \"t\"}", &doc), 201);
    int dim = (int)num_at(me_json_root(doc), "dim");
    ASSERT_TRUE(dim > 0);
    ASSERT_TRUE(num_at(me_json_root(doc), "r_c") > 0 && num_at(me_json_root(doc), "r_q") > 0);
    me_json_free(doc);
    ASSERT_EQ(api(port, "POST", "/v1/collections/t/ingest", NULL,
                  "{\"documents\": [{\"id\": \"cat\", \"text\": \"grinning cat face\"},"
                  "{\"id\": \"dog\", \"text\": \"dog face\", \"metadata\": {\"kind\": \"animal\"}},"
                  "{\"id\": \"car\", \"text\": \"red racing car\"}]}", &doc), 200);
    ASSERT_EQ(num_at(me_json_root(doc), "upserted"), 3);
    me_json_free(doc);
    ASSERT_TRUE(expect_error(port, "POST", "/v1/collections/t/ingest", NULL,
                             "{\"documents\": [{\"id\": \"x\", \"image\": \"bm90IGFuIGltYWdl\"}]}", 400, "INVALID_ARGUMENT"));
    ASSERT_TRUE(expect_error(port, "POST", "/v1/collections/t/ingest", NULL, "{\"documents\": [{\"id\": \"x\"}]}", 400,
                             "INVALID_ARGUMENT"));
    /* Text search over HTTP equals the wire's; the stored text comes back. */
    ASSERT_EQ(api(port, "POST", "/v1/collections/t/search", NULL, "{\"text\": \"cat\", \"k\": 3, \"budget\": [4, 8]}", &doc),
              200);
    me_client_t *cl = me_daemon_client(&c.coord);
    ASSERT_TRUE(cl != NULL);
    me_search_opts_t o = { .r_q = 4, .r_c = 8, .k = 3, .with_metadata = 1 };
    me_results_t res;
    me_status_t st;
    ASSERT_OK(me_client_search_text(cl, "t", "cat", &o, &res, &st));
    ASSERT_TRUE(same_hits(me_json_root(doc), &res));
    ASSERT_EQ(res.n, 3);
    const me_json_t *hits = me_json_get(me_json_root(doc), "hits");
    for (size_t i = 0; i < 3; i++) {
        const me_json_t *h = me_json_at(hits, i);
        if (!strcmp(str_at(h, "id"), "dog")) ASSERT_STREQ(str_at(me_json_get(h, "metadata"), "kind"), "animal");
        if (!strcmp(str_at(h, "id"), "car")) ASSERT_STREQ(str_at(me_json_get(h, "metadata"), "text"), "red racing car");
    }
    me_results_free(&res);
    me_json_free(doc);
    me_client_close(cl);
    cluster_stop(&c);
    me_daemon_free(&enc[0]);
    me_daemon_free(&enc[1]);
}
