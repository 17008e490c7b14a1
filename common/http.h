/* A small HTTP/1.1 server on its own thread and libuv loop, for the
 * metrics and health endpoints every daemon serves. It answers GET (and
 * HEAD) with whatever the handler renders; one request per connection
 * (Connection: close). It never touches the request path's locks or
 * sockets, so scraping cannot slow a search: the handler reads atomics. */
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

/* Fills body and returns the HTTP status (200, 404, 503...); *content_type
 * may be set (default text/plain; charset=utf-8). Runs on the HTTP thread. */
typedef int (*me_http_handler_fn)(void *ctx, const char *path, me_buf_t *body, const char **content_type);

/* addr: "HOST:PORT" (IPv4). Returns NULL with a reason in err when it cannot
 * bind. The bound port (useful with port 0) is in *port when port != NULL. */
me_http_t *me_http_start(const char *addr, me_http_handler_fn fn, void *ctx, int *port, char *err, size_t errcap);
/* Stops the loop, closes every connection and joins the thread. NULL is fine. */
void me_http_stop(me_http_t *h);

#endif
