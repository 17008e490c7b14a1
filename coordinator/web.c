#include "coordinator/web.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "coordinator/coordinator.h"
#include "coordinator/http_api.h"
#include "include/metaembed.h"

/* Clients of the coordinator's own endpoint, for the HTTP handlers (which
 * run on several thread-pool threads at once: a client is not
 * thread-safe, so each request takes one and gives it back). */
#define POOL_MAX 16
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static me_client_t *g_pool[POOL_MAX];
static int g_npool;

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

me_client_t *me_coord_web_client(me_coord_t *co, me_status_t *st) {
    pthread_mutex_lock(&g_lock);
    me_client_t *c = g_npool ? g_pool[--g_npool] : NULL;
    pthread_mutex_unlock(&g_lock);
    if (c) return c;
    char ep[512];
    own_endpoint(co->opts.listen, ep, sizeof ep);
    c = me_client_connect_secure(ep, 10000, co->opts.curve_dir[0] ? co->opts.curve_dir : NULL, NULL, st);
    if (!c && st) {
        /* The message is for an HTTP caller, who did not pick this endpoint. */
        char why[sizeof st->message];
        snprintf(why, sizeof why, "%s", st->message);
        snprintf(st->message, sizeof st->message, "the coordinator cannot reach its own endpoint: %.400s", why);
    }
    return c;
}

void me_coord_web_client_done(me_client_t *c) {
    if (!c) return;
    pthread_mutex_lock(&g_lock);
    if (g_npool < POOL_MAX) { g_pool[g_npool++] = c; c = NULL; }
    pthread_mutex_unlock(&g_lock);
    me_client_close(c);
}

void me_coord_web_close(void) {
    pthread_mutex_lock(&g_lock);
    while (g_npool) me_client_close(g_pool[--g_npool]);
    pthread_mutex_unlock(&g_lock);
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

static int collections(me_coord_t *co, me_buf_t *body, const char **ctype) {
    me_status_t st;
    me_client_t *c = me_coord_web_client(co, &st);
    me_collection_info_t *ci = NULL;
    size_t n = 0;
    int rc = c ? me_client_list_collections(c, &ci, &n, &st) : -1;
    me_coord_web_client_done(c);
    if (rc != 0) return error_json(body, ctype, 502, st.message);
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
    char coll[128], text[2048], budget[32], kbuf[16], mode[16], filter[4096];
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
    /* ?mode=dense|lexical|hybrid (RRF) and ?filter=EXPR, as the CLI's --mode and --filter. */
    if (me_http_query_get(req->query, "mode", mode, sizeof mode) && mode[0]) {
        if (!strcmp(mode, "lexical")) so.mode = ME_MODE_LEXICAL;
        else if (!strcmp(mode, "hybrid")) so.mode = ME_MODE_HYBRID;
        else if (strcmp(mode, "dense")) return error_json(body, ctype, 400, "mode is dense, lexical or hybrid");
    }
    if (me_http_query_get(req->query, "filter", filter, sizeof filter) && filter[0]) {
        if (strlen(filter) == sizeof filter - 1) return error_json(body, ctype, 400, "filter is too long for this page");
        so.filter = filter;
    }
    int image = !strcmp(req->method, "POST");
    /* An uploaded image is decoded where it is embedded: the encoder's
     * refusal names the problem and comes back as a 400. */
    if (!image && !text[0]) {
        return error_json(body, ctype, 400, "give ?q=TEXT, or POST an image");
    }
    me_status_t st;
    me_client_t *c = me_coord_web_client(co, &st);
    if (!c) return error_json(body, ctype, 502, st.message);
    me_results_t res;
    uint64_t t0 = me_now_us();
    int rc = image ? me_client_search_image(c, coll, req->body, req->body_len, text, &so, &res, &st)
                   : me_client_search_text(c, coll, text, &so, &res, &st);
    me_coord_web_client_done(c);
    if (rc) return error_json(body, ctype, me_coord_http_status(rc), st.message);
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
    /* The JSON API (/v1/..., /openapi.json) has its own router. */
    int status = me_coord_api_route(co, req, body, content_type);
    if (status) return status;
    if (strncmp(req->path, "/api/", 5) != 0) return 0;
    int get = !strcmp(req->method, "GET"), post = !strcmp(req->method, "POST");
    if (!strcmp(req->path, "/api/collections") && get) return collections(co, body, content_type);
    if (!strcmp(req->path, "/api/search") && (get || post)) return search(co, req, body, content_type);
    return error_json(body, content_type, 404, "try GET /api/collections, GET or POST /api/search");
}
