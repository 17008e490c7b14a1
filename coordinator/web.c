#include "coordinator/web.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "coordinator/coordinator.h"
#include "include/metaembed.h"

/* One client for the HTTP thread (the only thread that calls here). */
static me_client_t *g_client;

/* The coordinator's own endpoint, reachable from this machine: a bind to
 * every interface (0.0.0.0, *) is reached on loopback. */
static void own_endpoint(const char *listen, char *out, size_t cap) {
    const char *host = strstr(listen, "://");
    host = host ? host + 3 : listen;
    const char *port = strrchr(host, ':');
    if (!strncmp(host, "0.0.0.0:", 8) || !strncmp(host, "*:", 2))
        snprintf(out, cap, "tcp://127.0.0.1%s", port ? port : "");
    else snprintf(out, cap, "%s", listen);
}

static me_client_t *client(me_coord_t *co, me_status_t *st) {
    if (g_client) return g_client;
    char ep[512];
    own_endpoint(co->opts.listen, ep, sizeof ep);
    g_client = me_client_connect_secure(ep, 10000, co->opts.curve_dir[0] ? co->opts.curve_dir : NULL, NULL, st);
    return g_client;
}

void me_coord_web_close(void) {
    me_client_close(g_client);
    g_client = NULL;
}

static int reply_json(me_buf_t *body, const char **ctype, me_json_writer_t *w, int status) {
    size_t len;
    char *s = me_json_writer_take(w, &len);
    me_json_writer_free(w);
    *ctype = "application/json";
    if (!s) { me_buf_printf(body, "{\"error\":\"out of memory\"}"); return 500; }
    me_buf_printf(body, "%s", s);
    free(s);
    return status;
}

static int error_json(me_buf_t *body, const char **ctype, int status, const char *msg) {
    me_json_writer_t w;
    me_json_writer_init_buf(&w);
    me_json_obj_begin(&w, NULL);
    me_json_put_str(&w, "error", msg);
    me_json_obj_end(&w);
    return reply_json(body, ctype, &w, status);
}

/* A gRPC-style status as the HTTP one a page (or script) expects. */
static int http_status(int code) {
    switch (code) {
    case ME_CODE_INVALID_ARGUMENT: return 400;
    case ME_CODE_NOT_FOUND: return 404;
    case ME_CODE_RESOURCE_EXHAUSTED: return 413;
    case ME_CODE_DEADLINE_EXCEEDED: return 504;
    default: return 502;
    }
}

static int collections(me_coord_t *co, me_buf_t *body, const char **ctype) {
    me_status_t st;
    me_client_t *c = client(co, &st);
    me_collection_info_t *ci = NULL;
    size_t n = 0;
    if (!c || me_client_list_collections(c, &ci, &n, &st) != 0) return error_json(body, ctype, 502, st.message);
    me_json_writer_t w;
    me_json_writer_init_buf(&w);
    me_json_obj_begin(&w, NULL);
    me_json_arr_begin(&w, "collections");
    for (size_t i = 0; i < n; i++) {
        me_json_obj_begin(&w, NULL);
        me_json_put_str(&w, "name", ci[i].name);
        me_json_put_u64(&w, "documents", ci[i].documents);
        me_json_put_int(&w, "dim", ci[i].dim);
        me_json_put_int(&w, "max_doc_vectors", ci[i].max_doc_vectors);
        me_json_put_int(&w, "max_query_vectors", ci[i].max_query_vectors);
        me_json_obj_end(&w);
    }
    me_json_arr_end(&w);
    me_json_obj_end(&w);
    free(ci);
    return reply_json(body, ctype, &w, 200);
}

static int search(me_coord_t *co, const me_http_request_t *req, me_buf_t *body, const char **ctype) {
    char coll[128], text[2048], budget[32], kbuf[16];
    if (!me_http_query_get(req->query, "collection", coll, sizeof coll) || !coll[0])
        return error_json(body, ctype, 400, "give ?collection=NAME");
    me_http_query_get(req->query, "q", text, sizeof text);
    me_search_opts_t so = { .k = 10, .with_metadata = 1 };
    if (me_http_query_get(req->query, "budget", budget, sizeof budget) && budget[0] &&
        (sscanf(budget, "%dx%d", &so.r_q, &so.r_c) != 2 || so.r_q < 0 || so.r_c < 0))
        return error_json(body, ctype, 400, "budget is RQxRC, e.g. 16x64");
    if (me_http_query_get(req->query, "k", kbuf, sizeof kbuf) && kbuf[0]) {
        long k = strtol(kbuf, NULL, 10);
        if (k < 1 || k > 1000) return error_json(body, ctype, 400, "k is 1..1000");
        so.k = (uint32_t)k;
    }
    int image = !strcmp(req->method, "POST");
    /* An uploaded image is decoded where it is embedded: the encoder's
     * refusal names the problem and comes back as a 400. */
    if (!image && !text[0]) {
        return error_json(body, ctype, 400, "give ?q=TEXT, or POST an image");
    }
    me_status_t st;
    me_client_t *c = client(co, &st);
    if (!c) return error_json(body, ctype, 502, st.message);
    me_results_t res;
    uint64_t t0 = me_now_us();
    int rc = image ? me_client_search_image(c, coll, req->body, req->body_len, text, &so, &res, &st)
                   : me_client_search_text(c, coll, text, &so, &res, &st);
    if (rc) return error_json(body, ctype, http_status(rc), st.message);
    me_json_writer_t w;
    me_json_writer_init_buf(&w);
    me_json_obj_begin(&w, NULL);
    me_json_put_str(&w, "collection", coll);
    me_json_put_int(&w, "r_q", res.r_q);
    me_json_put_int(&w, "r_c", res.r_c);
    me_json_put_u64(&w, "documents", res.documents);
    me_json_put_bool(&w, "partial", res.partial);
    me_json_put_num_prec(&w, "ms", (double)(me_now_us() - t0) / 1e3, 4);
    me_json_arr_begin(&w, "stages");
    for (int i = 0; i < res.n_stages; i++) {
        me_json_obj_begin(&w, NULL);
        me_json_put_str(&w, "stage", res.stages[i].stage);
        me_json_put_num_prec(&w, "ms", (double)res.stages[i].micros / 1e3, 4);
        me_json_obj_end(&w);
    }
    me_json_arr_end(&w);
    me_json_arr_begin(&w, "hits");
    for (size_t i = 0; i < res.n; i++) {
        me_json_obj_begin(&w, NULL);
        me_json_put_str(&w, "id", res.hits[i].id);
        me_json_put_num_prec(&w, "score", res.hits[i].score, 6);
        /* Metadata is JSON by convention: passed through when it is. */
        if (res.hits[i].metadata_len && me_json_valid(res.hits[i].metadata, res.hits[i].metadata_len))
            me_json_put_raw(&w, "metadata", res.hits[i].metadata, res.hits[i].metadata_len);
        me_json_obj_end(&w);
    }
    me_json_arr_end(&w);
    me_json_obj_end(&w);
    me_results_free(&res);
    return reply_json(body, ctype, &w, 200);
}

int me_coord_web_route(void *ctx, const me_http_request_t *req, me_buf_t *body, const char **content_type) {
    me_coord_t *co = ctx;
    if (strncmp(req->path, "/api/", 5) != 0) return 0;
    int get = !strcmp(req->method, "GET"), post = !strcmp(req->method, "POST");
    if (!strcmp(req->path, "/api/collections") && get) return collections(co, body, content_type);
    if (!strcmp(req->path, "/api/search") && (get || post)) return search(co, req, body, content_type);
    return error_json(body, content_type, 404, "try GET /api/collections, GET or POST /api/search");
}
