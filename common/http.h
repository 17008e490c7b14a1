/* A small HTTP/1.1 server on its own thread and libuv loop, for the
 * metrics and health endpoints every daemon serves and the coordinator's
 * page and JSON API. Requests are parsed by Debian's http-parser (nodejs's),
 * query strings by uriparser; a handler gets the method, path, decoded
 * query, headers and body (at most ME_HTTP_MAX_BODY bytes) and renders the
 * reply; one request per connection (Connection: close). Handlers run on
 * libuv's thread pool (UV_THREADPOOL_SIZE, 4 by default), so they must be
 * thread-safe and a slow one (a search) does not hold up the others.
 * Metrics handlers read atomics only, so scraping cannot slow a search. */
#ifndef ME_HTTP_H
#define ME_HTTP_H

#include <stddef.h>

typedef struct me_http me_http_t;

/* A growable response body. */
typedef struct {
    char *data;
    size_t len, cap;
} me_buf_t;

void me_buf_printf(me_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void me_buf_free(me_buf_t *b);

/* Largest request body accepted (an image upload); more gets 413. */
#define ME_HTTP_MAX_BODY (9u << 20)

typedef struct {
    const char *method;        /* "GET", "HEAD", "POST", ... */
    const char *path;          /* the URL's path, without the query */
    const char *query;         /* the raw query string ("" when none) */
    const unsigned char *body; /* POST data (NULL when none) */
    size_t body_len;
    const char *content_type;  /* the request's Content-Type, "" when none */
    const char *headers;       /* every header: me_http_header reads them */
    size_t headers_len;
} me_http_request_t;

/* The value of the request's header `name` (any case), or NULL. */
const char *me_http_header(const me_http_request_t *req, const char *name);

/* Fills body and returns the HTTP status (200, 404, 503...); *content_type
 * may be set (default text/plain; charset=utf-8). Runs on a thread-pool
 * thread, several at once. A 401 gets "WWW-Authenticate: Bearer". */
typedef int (*me_http_handler_fn)(void *ctx, const me_http_request_t *req, me_buf_t *body, const char **content_type);

/* The decoded value of query parameter `name` ("a+b%20c" → "a b c") into
 * out: 1 when present (cut to cap - 1 bytes), 0 when absent or out of
 * memory. */
int me_http_query_get(const char *query, const char *name, char *out, size_t cap);

/* addr: "HOST:PORT" (IPv4). Returns NULL with a reason in err when it cannot
 * bind. The bound port (useful with port 0) is in *port when port != NULL. */
me_http_t *me_http_start(const char *addr, me_http_handler_fn fn, void *ctx, int *port, char *err, size_t errcap);
/* Stops the loop, closes every connection and joins the thread. NULL is fine. */
void me_http_stop(me_http_t *h);

#endif
