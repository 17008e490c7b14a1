/* The coordinator's HTTP/JSON API, served on --metrics-addr beside
 * /metrics and the page (docs/http-api.md, docs/openapi.json):
 *
 *   GET    /v1/health                      serving, ready, version
 *   GET    /v1/status                      the cluster: groups, replicas, counters
 *   GET    /v1/collections                 every collection
 *   POST   /v1/collections                 create (the encoder's shape by default)
 *   GET    /v1/collections/{name}          one collection's figures
 *   DELETE /v1/collections/{name}          drop
 *   POST   /v1/collections/{name}/upsert   documents with their vectors
 *   POST   /v1/collections/{name}/ingest   texts and images, embedded by the encoders
 *   POST   /v1/collections/{name}/get      documents by id
 *   POST   /v1/collections/{name}/delete   documents by id
 *   POST   /v1/collections/{name}/search   text, image or vectors at a budget
 *   GET    /openapi.json                   the OpenAPI document (docs/openapi.json)
 *
 * Every route turns its JSON into the protocol's request message and sends
 * it through a client of the coordinator's own endpoint, so each rule
 * (names, ids, shapes, k, batch sizes, message size) is checked where it is
 * for every client, once. Only what JSON itself cannot say (a NUL inside a
 * C string, a ragged vector array, a number out of a field's wire width)
 * is refused here. Errors are {"code": "INVALID_ARGUMENT", "message": ...}
 * with the matching HTTP status (me_coord_http_status). */
#ifndef ME_COORD_HTTP_API_H
#define ME_COORD_HTTP_API_H

#include <stddef.h>

#include "common/http.h"

typedef struct me_coord me_coord_t;

/* Loads the API key (--api-key or --api-key-file) into co->api_key and
 * notes whether the endpoint is off loopback. 0, or ME_EINVAL with err
 * saying what to fix. */
int me_coord_api_init(me_coord_t *co, char *err, size_t cap);

/* The routes above (me_endpoints_t.route, through me_coord_web_route):
 * the HTTP status, or 0 for a path that is not the API's. */
int me_coord_api_route(me_coord_t *co, const me_http_request_t *req, me_buf_t *body, const char **content_type);

/* A gRPC status code as its HTTP status (Google's mapping, except
 * RESOURCE_EXHAUSTED: 413, since here it means a request over a limit). */
int me_coord_http_status(int code);

#endif
