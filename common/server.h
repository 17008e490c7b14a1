/* The request-serving skeleton every daemon shares: a ROUTER bound where
 * told, a proxy to N worker threads over inproc (stamping each request
 * with its arrival), and a clean stop on
 * SIGTERM/SIGINT (the proxy ends, workers finish their current request,
 * me_server_run returns and the caller closes its state). */
#ifndef ME_SERVER_H
#define ME_SERVER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "common/curve.h"
#include "common/metrics.h"
#include "common/wire.h"

typedef struct {
    const char *role;            /* for logs: "shard", "coordinator" */
    const char *listen;          /* e.g. tcp://127.0.0.1:7600 */
    int threads;
    long long max_message;
    /* CurveZMQ on the listening socket (NULL or off: plain). Plain is only
     * allowed on a loopback endpoint unless insecure is set. */
    const me_curve_t *curve;
    int insecure;
    void *ctx;                   /* the daemon's state, passed to every call */
    /* Optional per-worker state (e.g. the worker's own sockets): made on the
     * worker's thread before it serves, freed when it stops. */
    void *(*worker_init)(void *ctx, void *zctx);
    void (*worker_free)(void *ctx, void *wstate);
    /* Turns one request frame into one reply; must always fill reply. */
    void (*handle)(void *ctx, void *wstate, const uint8_t *frame, size_t len,
                   uint64_t *request_id, me_reply_t *reply);
    /* Optional: run on its own thread while serving (e.g. heartbeats); must
     * return soon after *stop becomes non-zero. */
    void (*background)(void *ctx, void *zctx, const atomic_int *stop);
    /* Admission (the broker in server.c): requests waiting per lane before
     * RESOURCE_EXHAUSTED (0: 64 per worker), and the deadline of requests
     * that carry none, so one that expired while waiting is not run. */
    int max_queue;
    long long default_deadline_ms;
} me_server_t;

/* Requests refused because their lane was full, and those whose deadline
 * passed while they waited, per lane (0 health, 1 cheap, 2 heavy). */
#define ME_SERVER_LANES 3
uint64_t me_server_shed(int lane);
uint64_t me_server_expired(int lane);
const char *me_server_lane_name(int lane);
/* Those counters as Prometheus families (every daemon's /metrics). */
void me_server_render_metrics(me_buf_t *out);

/* A decoded request as a method handler sees it. */
typedef struct {
    void *ctx;                          /* the daemon's state */
    void *wstate;                       /* the worker's state (may be NULL) */
    int method;
    const ProtobufCBinaryData *payload; /* the method's packed request */
    /* The same, unpacked as the method's request message (me_method_info),
     * its strings checked; me_dispatch owns it, handlers only read it. */
    const ProtobufCMessage *msg;
    uint64_t deadline_us;               /* monotonic */
    me_reply_t *reply;                  /* always filled by the handler */
    /* Envelope.placement and .group: how a coordinator routed it (0: not routed). */
    uint64_t placement;
    int group;
} me_request_t;

typedef int (*me_method_fn)(me_request_t *r);

/* The Health reply every daemon gives: serving, its role, ME_VERSION, the
 * uptime since start_ms and the documents it holds (0 where none). */
int me_reply_health(me_request_t *r, const char *role, uint64_t start_ms, uint64_t documents);
/* The batch rule every daemon applies: INVALID_ARGUMENT for none,
 * RESOURCE_EXHAUSTED past max (its --max-batch); 0 when n is fine. */
int me_request_check_batch(me_request_t *r, size_t n, long long max, const char *what);
/* The Get reply every daemon gives: the documents found, in the order
 * asked, and the ids not found. */
int me_reply_get(me_request_t *r, Metaembed__Document **docs, size_t n_docs, char **missing, size_t n_missing,
                 uint64_t *missing_versions);
/* Sets INVALID_ARGUMENT (and returns it): the reply to a bad request. */
#define ME_BAD(r, ...) me_reply_error((r)->reply, ME_CODE_INVALID_ARGUMENT, __VA_ARGS__)
#define ME_OOM(r) me_reply_error((r)->reply, ME_CODE_RESOURCE_EXHAUSTED, "out of memory")
/* A daemon's handler for one method (names and messages: me_method_info). */
typedef struct {
    int method;
    me_method_fn fn;
} me_method_t;

/* Decodes one request frame and runs the handler for its method. The size
 * limit, malformed envelopes, unknown methods, the deadline (deadline_ms
 * from the envelope, else default_deadline_ms, counted from the request's
 * arrival, me_server_arrival_us, or from now) and the
 * request/error counters are handled here, the same for every daemon. */
void me_dispatch(const me_method_t *methods, size_t n, void *ctx, void *wstate, const uint8_t *frame,
                 size_t len, long long max_message, long long default_deadline_ms,
                 atomic_uint_fast64_t *requests, atomic_uint_fast64_t *errors, me_metrics_t *metrics,
                 uint64_t *request_id, me_reply_t *reply);

/* On a worker thread of me_server_run: when the request it serves reached
 * the ROUTER (monotonic us); 0 elsewhere. me_dispatch counts deadlines and
 * latencies from it, so time queued for a worker is counted. */
uint64_t me_server_arrival_us(void);

/* Installs the signal handlers; call once, early in main. */
int me_server_signals(void);
/* Serves until SIGTERM/SIGINT. Returns 0, or 1 when it could not bind. */
int me_server_run(const me_server_t *srv);

#endif
