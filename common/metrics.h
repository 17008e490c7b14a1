/* Request metrics every daemon keeps, rendered in the Prometheus text
 * exposition format: requests by method and status code, and a latency
 * histogram by method. Updates are relaxed atomic adds on the request path;
 * rendering only reads them, so a scrape never waits on a request. */
#ifndef ME_METRICS_H
#define ME_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "common/budget.h"
#include "common/http.h"

#define ME_METRICS_METHODS 16    /* proto Method numbers 0..15 */
#define ME_METRICS_CODES 17      /* gRPC codes 0..16 */
#define ME_METRICS_BUCKETS 16

typedef struct {
    atomic_uint_fast64_t requests[ME_METRICS_METHODS][ME_METRICS_CODES];
    atomic_uint_fast64_t buckets[ME_METRICS_METHODS][ME_METRICS_BUCKETS + 1];  /* last: +Inf */
    atomic_uint_fast64_t sum_us[ME_METRICS_METHODS];
    uint64_t start_ms;
} me_metrics_t;

/* A latency histogram with the same buckets, for a daemon's own figures. */
typedef struct {
    atomic_uint_fast64_t buckets[ME_METRICS_BUCKETS + 1];
    atomic_uint_fast64_t sum_us;
} me_hist_t;

/* A metric family's HELP and TYPE lines (type "counter", "gauge" or
 * "histogram"); its samples follow. */
void me_metric_head(me_buf_t *out, const char *name, const char *type, const char *help);
/* A family of one unlabelled integer sample, with its HELP and TYPE. */
void me_metric_u64(me_buf_t *out, const char *name, const char *type, const char *help, unsigned long long v);

void me_hist_observe(me_hist_t *h, uint64_t micros);
/* Writes name_bucket/_sum/_count samples with `labels` (e.g. "stage=\"coarse\"");
 * the caller writes the family's HELP and TYPE lines once. Skips an empty one. */
void me_hist_render(const me_hist_t *h, const char *name, const char *labels, me_buf_t *out);

/* Search latency by budget: the five MMR budgets (1x1 2x4 4x8 8x16 16x64)
 * and "other", as metaembed_search_duration_seconds{budget="..."}. */
#define ME_BUDGET_SLOTS (ME_BUDGET_LADDER_N + 1)  /* the ladder, then "other" */
typedef struct {
    me_hist_t by_budget[ME_BUDGET_SLOTS];
} me_budget_hist_t;

void me_budget_hist_observe(me_budget_hist_t *b, int r_q, int r_c, uint64_t micros);
/* Writes the family with its HELP line (`where`: "in the shard", ...),
 * each sample labelled with the daemon's role and the budget. */
void me_budget_hist_render(const me_budget_hist_t *b, const char *role, const char *where, me_buf_t *out);

void me_metrics_init(me_metrics_t *m);
/* Records one request (method and code outside the tables count as 0). */
void me_metrics_observe(me_metrics_t *m, int method, int code, uint64_t micros);

/* Writes metaembed_requests_total, metaembed_request_duration_seconds and
 * the process figures (metaembed_process_resident_memory_bytes,
 * metaembed_process_open_fds, metaembed_uptime_seconds) with a `role` label. */
void me_metrics_render(const me_metrics_t *m, const char *role, me_buf_t *out);

/* The endpoints a daemon serves on --metrics-addr:
 *   /metrics  the request metrics above, then the daemon's own (render);
 *   /healthz  200 while the process runs;
 *   /readyz   200 when ready(ctx) says so, else 503 with the reason. */
typedef struct {
    const char *role;
    me_metrics_t *metrics;
    void *ctx;
    void (*render)(void *ctx, me_buf_t *out);          /* may be NULL */
    /* Optional: the daemon's own routes, tried first; returns the HTTP
     * status, or 0 when the path is not one of its own. */
    int (*route)(void *ctx, const me_http_request_t *req, me_buf_t *body, const char **content_type);
    int (*ready)(void *ctx, char *why, size_t cap);    /* 1 = ready; NULL = always */
    const char *index_html;                            /* served at / (may be NULL) */
} me_endpoints_t;

/* The options every daemon has for its endpoints (type: its options
 * struct, with metrics_addr and metrics_public fields). */
#define ME_METRICS_CFG_OPTIONS(type, default_addr)                                                    \
    { "metrics-addr", ME_CFG_STRING, offsetof(type, metrics_addr), default_addr, 0, 0, NULL,           \
      "HTTP /metrics, /healthz, /readyz (HOST:PORT; empty = off; loopback unless --metrics-public)" }, \
    { "metrics-public", ME_CFG_BOOL, offsetof(type, metrics_public), "false", 0, 1, NULL,              \
      "allow --metrics-addr on a non-loopback address (the pages need no login and show collection "    \
      "names, document counts, endpoints)" }

/* 0 when addr may be served: empty, a loopback host (127.x, localhost,
 * [::1]), or public_ok. Else ME_EINVAL and err says what to do. */
int me_metrics_addr_check(const char *addr, int public_ok, char *err, size_t cap);

/* Starts the HTTP thread; NULL (and a warning in the log) when addr is
 * empty or cannot be bound: the daemon still serves requests. ep must
 * outlive the server. */
me_http_t *me_endpoints_start(const char *addr, me_endpoints_t *ep);

/* The upper bounds of the latency buckets, in seconds. */
extern const double me_metrics_bucket_bounds[ME_METRICS_BUCKETS];

#endif
