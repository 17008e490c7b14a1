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

/* The HTTP route for the page's API (me_endpoints_t.route); ctx is the
 * me_coord_t. 0 for a path that is not /api/... */
int me_coord_web_route(void *ctx, const me_http_request_t *req, me_buf_t *body, const char **content_type);
/* Closes the page's client (call after the HTTP thread stopped). */
void me_coord_web_close(void);

#endif
