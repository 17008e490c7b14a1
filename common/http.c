#include "common/http.h"

#include <http_parser.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uriparser/Uri.h>
#include <uv.h>

/* The request line and headers may take this much; the body its own. */
#define MAX_HEAD 16384

struct me_http {
    uv_loop_t loop;
    uv_tcp_t server;
    uv_async_t stop;
    pthread_t thread;
    me_http_handler_fn fn;
    void *ctx;
};

typedef struct {
    uv_tcp_t tcp;
    me_http_t *h;
    http_parser parser;
    char readbuf[65536];
    char url[MAX_HEAD], ctype[256], field[64];
    size_t url_len, head_len;
    int in_value;              /* the parser is inside a header value */
    /* Every header as "name\0value\0" pairs, names lower-cased; a header
     * repeated is kept once per line (me_http_header returns the first). */
    char headers[MAX_HEAD];
    size_t headers_len;
    me_buf_t body;
    int too_big, complete, bad;
    int responded;
    /* The handler runs on libuv's thread pool, so a slow route (a search
     * through the cluster) never stalls /healthz or /metrics on the loop.
     * While it runs the connection must outlive a close. */
    uv_work_t work;
    int working, closed;
    me_http_request_t req;
    int status;
    const char *resp_ctype;
    me_buf_t resp;
    uv_write_t wr;
    me_buf_t out;
} conn_t;

void me_buf_printf(me_buf_t *b, const char *fmt, ...) {
    va_list ap;
    for (;;) {
        size_t room = b->cap - b->len;
        va_start(ap, fmt);
        int n = b->data ? vsnprintf(b->data + b->len, room, fmt, ap) : -1;
        va_end(ap);
        if (n >= 0 && (size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t need = b->len + (n > 0 ? (size_t)n : 0) + 1;
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < need) cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) return;  /* out of memory: the body is cut short */
        b->data = d;
        b->cap = cap;
    }
}

void me_buf_free(me_buf_t *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

static void on_close(uv_handle_t *h) {
    conn_t *c = h->data;
    if (c->working) { c->closed = 1; return; }  /* after_work frees it */
    me_buf_free(&c->resp);
    me_buf_free(&c->out);
    me_buf_free(&c->body);
    free(c);
}

/* ---- http-parser callbacks: collect the URL, Content-Type and body ---- */

static int on_url(http_parser *p, const char *at, size_t n) {
    conn_t *c = p->data;
    if (c->url_len + n >= sizeof c->url) return 1;
    memcpy(c->url + c->url_len, at, n);
    c->url[c->url_len += n] = 0;
    return 0;
}

/* Appends n bytes to the header list (its total is bounded by MAX_HEAD
 * through head_len, and every byte counted there is stored at most once
 * plus two NULs a header). */
static int headers_put(conn_t *c, const char *at, size_t n, int lower) {
    if (c->headers_len + n + 2 > sizeof c->headers) return 1;
    for (size_t i = 0; i < n; i++) {
        char ch = at[i];
        /* A NUL inside a value would cut it short: refuse the request. */
        if (!ch) return 1;
        c->headers[c->headers_len++] = lower && ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch;
    }
    return 0;
}

/* A header's name may arrive in pieces; the first piece after a value
 * starts a new one. Content-Type is kept apart; every header goes into the
 * list that me_http_header reads. */
static int on_header_field(http_parser *p, const char *at, size_t n) {
    conn_t *c = p->data;
    if ((c->head_len += n) > MAX_HEAD) return 1;
    if (c->in_value || !c->headers_len) {
        if (c->headers_len) c->headers[c->headers_len++] = 0;  /* ends the value */
        c->field[0] = 0;
    }
    c->in_value = 0;
    if (headers_put(c, at, n, 1)) return 1;
    size_t have = strlen(c->field), k = n < sizeof c->field - 1 - have ? n : sizeof c->field - 1 - have;
    memcpy(c->field + have, at, k);
    c->field[have + k] = 0;
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n) {
    conn_t *c = p->data;
    if ((c->head_len += n) > MAX_HEAD) return 1;
    if (!c->in_value) c->headers[c->headers_len++] = 0;  /* ends the name */
    c->in_value = 1;
    if (headers_put(c, at, n, 0)) return 1;
    if (!strcasecmp(c->field, "content-type")) {
        size_t have = strlen(c->ctype), k = n < sizeof c->ctype - 1 - have ? n : sizeof c->ctype - 1 - have;
        memcpy(c->ctype + have, at, k);
        c->ctype[have + k] = 0;
    }
    return 0;
}

static int on_headers_complete(http_parser *p) {
    conn_t *c = p->data;
    c->field[0] = 0;
    if (c->headers_len) {
        /* A last name with no value gets an empty one. */
        if (!c->in_value) c->headers[c->headers_len++] = 0;
        c->headers[c->headers_len++] = 0;
    }
    if (p->content_length != ULLONG_MAX && p->content_length > ME_HTTP_MAX_BODY) {
        c->too_big = 1;
        return 1;
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n) {
    conn_t *c = p->data;
    if (c->body.len + n > ME_HTTP_MAX_BODY) { c->too_big = 1; return 1; }
    if (c->body.len + n + 1 > c->body.cap) {
        size_t cap = c->body.cap ? c->body.cap : 65536;
        while (cap < c->body.len + n + 1) cap *= 2;
        char *d = realloc(c->body.data, cap);
        if (!d) { c->too_big = 1; return 1; }
        c->body.data = d;
        c->body.cap = cap;
    }
    memcpy(c->body.data + c->body.len, at, n);
    c->body.len += n;
    return 0;
}

static int on_message_complete(http_parser *p) {
    ((conn_t *)p->data)->complete = 1;
    return 1;  /* one request per connection: stop here */
}

static const http_parser_settings parser_settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

const char *me_http_header(const me_http_request_t *req, const char *name) {
    const char *p = req->headers, *end = p ? p + req->headers_len : NULL;
    while (p && p < end) {
        const char *value = p + strlen(p) + 1;
        if (value >= end) break;
        if (!strcasecmp(p, name)) return value;
        p = value + strlen(value) + 1;
    }
    return NULL;
}

int me_http_query_get(const char *query, const char *name, char *out, size_t cap) {
    if (cap) out[0] = 0;
    if (!query || !query[0]) return 0;
    UriQueryListA *list = NULL;
    int count = 0, found = 0;
    if (uriDissectQueryMallocA(&list, &count, query, query + strlen(query)) != URI_SUCCESS) return 0;
    for (UriQueryListA *q = list; q && !found; q = q->next)
        if (q->key && !strcmp(q->key, name)) {
            snprintf(out, cap, "%s", q->value ? q->value : "");
            found = 1;
        }
    uriFreeQueryListA(list);
    return found;
}

static void on_written(uv_write_t *w, int status) {
    (void)status;
    conn_t *c = w->data;
    /* On shutdown the handle may already be closing (the write was cancelled). */
    if (!uv_is_closing((uv_handle_t *)&c->tcp)) uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)suggested;
    conn_t *c = h->data;
    buf->base = c->readbuf;
    buf->len = sizeof c->readbuf;
}

static const char *reason(int status) {
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 499: return "Client Closed Request";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Error";
    }
}

/* Writes the status line, headers and body, then closes (on the loop). */
static void send_reply(conn_t *c, int status, const char *ctype, const me_buf_t *body, int head) {
    /* 401 names the one scheme this server knows (RFC 9110 wants it). */
    me_buf_printf(&c->out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%sConnection: close\r\n\r\n",
                  status, reason(status), ctype, body->len, status == 401 ? "WWW-Authenticate: Bearer\r\n" : "");
    if (!head && body->len) {
        /* Append the body (it may hold NULs in principle: copy bytes). */
        size_t need = c->out.len + body->len;
        if (need > c->out.cap) {
            char *d = realloc(c->out.data, need);
            if (d) { c->out.data = d; c->out.cap = need; }
        }
        if (need <= c->out.cap) {
            memcpy(c->out.data + c->out.len, body->data, body->len);
            c->out.len = need;
        }
    }
    uv_buf_t buf = uv_buf_init(c->out.data, (unsigned)c->out.len);
    c->wr.data = c;
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &buf, 1, on_written) != 0)
        uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void work_run(uv_work_t *w) {
    conn_t *c = w->data;
    c->status = c->h->fn(c->h->ctx, &c->req, &c->resp, &c->resp_ctype);
}

static void work_done(uv_work_t *w, int status) {
    conn_t *c = w->data;
    c->working = 0;
    if (c->closed) {  /* closed while the handler ran (shutdown) */
        c->tcp.data = c;
        on_close((uv_handle_t *)&c->tcp);
        return;
    }
    if (status == UV_ECANCELED) {
        uv_close((uv_handle_t *)&c->tcp, on_close);
        return;
    }
    send_reply(c, c->status, c->resp_ctype, &c->resp, c->parser.method == HTTP_HEAD);
}

static void respond(conn_t *c) {
    c->responded = 1;
    uv_read_stop((uv_stream_t *)&c->tcp);
    me_buf_t body = { 0 };
    if (c->too_big || c->bad || !c->complete) {
        int status = 400;
        if (c->too_big) {
            status = 413;
            me_buf_printf(&body, "request body over %u bytes\n", ME_HTTP_MAX_BODY);
        } else {
            me_buf_printf(&body, "malformed request\n");
        }
        send_reply(c, status, "text/plain; charset=utf-8", &body, 0);
        me_buf_free(&body);
        return;
    }
    char *q = strchr(c->url, '?');
    if (q) *q++ = 0;
    c->req = (me_http_request_t){ http_method_str((enum http_method)c->parser.method), c->url, q ? q : "",
                                  (const unsigned char *)c->body.data, c->body.len, c->ctype,
                                  c->headers_len ? c->headers : NULL, c->headers_len };
    c->resp_ctype = "text/plain; charset=utf-8";
    c->work.data = c;
    c->working = 1;
    if (uv_queue_work(&c->h->loop, &c->work, work_run, work_done) != 0) {
        c->working = 0;
        me_buf_printf(&body, "cannot run the request\n");
        send_reply(c, 503, "text/plain; charset=utf-8", &body, 0);
        me_buf_free(&body);
    }
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    conn_t *c = s->data;
    if (c->responded) return;
    if (n < 0) {
        uv_close((uv_handle_t *)s, on_close);
        return;
    }
    if (n == 0) return;
    size_t used = http_parser_execute(&c->parser, &parser_settings, buf->base, (size_t)n);
    if (c->complete || c->too_big) respond(c);
    else if (used != (size_t)n || HTTP_PARSER_ERRNO(&c->parser) != HPE_OK) { c->bad = 1; respond(c); }
}

static void on_connection(uv_stream_t *server, int status) {
    if (status < 0) return;
    me_http_t *h = server->data;
    conn_t *c = calloc(1, sizeof *c);
    if (!c) return;
    c->h = h;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    uv_tcp_init(&h->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, on_close);
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read);
}

static void close_walk(uv_handle_t *handle, void *arg) {
    (void)arg;
    if (!uv_is_closing(handle)) uv_close(handle, handle->type == UV_TCP && handle->data && handle->data != arg ? on_close : NULL);
}

static void on_stop(uv_async_t *a) {
    me_http_t *h = a->data;
    uv_close((uv_handle_t *)&h->server, NULL);
    uv_close((uv_handle_t *)&h->stop, NULL);
    uv_walk(&h->loop, close_walk, h);
}

static void *loop_main(void *arg) {
    me_http_t *h = arg;
    uv_run(&h->loop, UV_RUN_DEFAULT);
    return NULL;
}

me_http_t *me_http_start(const char *addr, me_http_handler_fn fn, void *ctx, int *port, char *err, size_t errcap) {
    char host[256];
    int p = -1;
    const char *colon = strrchr(addr, ':');
    if (!colon || (size_t)(colon - addr) >= sizeof host || sscanf(colon + 1, "%d", &p) != 1 || p < 0 || p > 65535) {
        snprintf(err, errcap, "'%s' is not HOST:PORT (e.g. 127.0.0.1:9100)", addr);
        return NULL;
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = 0;
    me_http_t *h = calloc(1, sizeof *h);
    if (!h) { snprintf(err, errcap, "out of memory"); return NULL; }
    h->fn = fn;
    h->ctx = ctx;
    uv_loop_init(&h->loop);
    uv_tcp_init(&h->loop, &h->server);
    h->server.data = h;
    struct sockaddr_in sa;
    int rc = uv_ip4_addr(host, p, &sa);
    if (rc == 0) rc = uv_tcp_bind(&h->server, (const struct sockaddr *)&sa, 0);
    /* Room for a burst of scrapers at once: a full backlog drops SYNs, and
     * the kernel retries them only after a second. */
    if (rc == 0) rc = uv_listen((uv_stream_t *)&h->server, 1024, on_connection);
    if (rc != 0) {
        snprintf(err, errcap, "cannot listen on %s: %s", addr, uv_strerror(rc));
        uv_close((uv_handle_t *)&h->server, NULL);
        uv_run(&h->loop, UV_RUN_DEFAULT);
        uv_loop_close(&h->loop);
        free(h);
        return NULL;
    }
    if (port) {
        struct sockaddr_storage ss;
        int len = sizeof ss;
        uv_tcp_getsockname(&h->server, (struct sockaddr *)&ss, &len);
        *port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    uv_async_init(&h->loop, &h->stop, on_stop);
    h->stop.data = h;
    if (pthread_create(&h->thread, NULL, loop_main, h) != 0) {
        snprintf(err, errcap, "cannot start the HTTP thread");
        uv_close((uv_handle_t *)&h->server, NULL);
        uv_close((uv_handle_t *)&h->stop, NULL);
        uv_run(&h->loop, UV_RUN_DEFAULT);
        uv_loop_close(&h->loop);
        free(h);
        return NULL;
    }
    return h;
}

void me_http_stop(me_http_t *h) {
    if (!h) return;
    uv_async_send(&h->stop);
    pthread_join(h->thread, NULL);
    uv_loop_close(&h->loop);
    free(h);
}
