/* The search behind the coordinator's page (served on --metrics-addr):
 *
 *   GET  /api/collections                       the collections, as JSON
 *   GET  /api/search?collection=C&q=TEXT&budget=RQxRC&k=K
 *   POST /api/search?collection=C&q=TEXT&budget=RQxRC&k=K   body: a PNG or JPEG
 *
 * Each runs through a client of the coordinator's own endpoint, the same
 * path (and checks) as any client's request, so the page shows what users
 * get. Replies are JSON: the hits with their metadata (a thumbnail for
 * image documents), the budget and the stage timings, or {"error": ...}. */
#ifndef ME_COORD_WEB_H
#define ME_COORD_WEB_H

#include "common/http.h"
#include "include/metaembed.h"

/* The HTTP route for the page's API (me_endpoints_t.route); ctx is the
 * me_coord_t. 0 for a path that is not /api/... */
int me_coord_web_route(void *ctx, const me_http_request_t *req, me_buf_t *body, const char **content_type);
/* Closes the clients below (call after the HTTP thread stopped). */
void me_coord_web_close(void);

typedef struct me_coord me_coord_t;
/* A client of the coordinator's own endpoint for one HTTP request, so the
 * page and the JSON API take the path (and the checks) of any client's
 * request: NULL with st saying why. Give it back with
 * me_coord_web_client_done (NULL is fine). Thread-safe. */
me_client_t *me_coord_web_client(me_coord_t *co, me_status_t *st);
void me_coord_web_client_done(me_client_t *c);

#endif
