#include "common/metrics.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "common/wire.h"

const double me_metrics_bucket_bounds[ME_METRICS_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

static const char *method_names[ME_METRICS_METHODS] = {
    "unspecified", "CreateCollection", "DropCollection", "ListCollections", "Upsert", "Delete", "Get",
    "Search", "Encode", "Stats", "Health", "ListIds",
};

void me_metrics_init(me_metrics_t *m) {
    memset(m, 0, sizeof *m);
    m->start_ms = me_now_ms();
}

void me_metrics_observe(me_metrics_t *m, int method, int code, uint64_t micros) {
    if (method < 0 || method >= ME_METRICS_METHODS) method = 0;
    if (code < 0 || code >= ME_METRICS_CODES) code = ME_CODE_INTERNAL;
    atomic_fetch_add_explicit(&m->requests[method][code], 1, memory_order_relaxed);
    double s = (double)micros / 1e6;
    int b = 0;
    while (b < ME_METRICS_BUCKETS && s > me_metrics_bucket_bounds[b]) b++;
    atomic_fetch_add_explicit(&m->buckets[method][b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->sum_us[method], micros, memory_order_relaxed);
}

void me_metric_head(me_buf_t *out, const char *name, const char *type, const char *help) {
    me_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void me_metric_u64(me_buf_t *out, const char *name, const char *type, const char *help, unsigned long long v) {
    me_metric_head(out, name, type, help);
    me_buf_printf(out, "%s %llu\n", name, v);
}

void me_hist_observe(me_hist_t *h, uint64_t micros) {
    double s = (double)micros / 1e6;
    int b = 0;
    while (b < ME_METRICS_BUCKETS && s > me_metrics_bucket_bounds[b]) b++;
    atomic_fetch_add_explicit(&h->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, micros, memory_order_relaxed);
}

void me_hist_render(const me_hist_t *h, const char *name, const char *labels, me_buf_t *out) {
    uint64_t counts[ME_METRICS_BUCKETS + 1], total = 0, cum = 0;
    for (int b = 0; b <= ME_METRICS_BUCKETS; b++) total += counts[b] = atomic_load_explicit(&h->buckets[b], memory_order_relaxed);
    if (!total) return;
    for (int b = 0; b < ME_METRICS_BUCKETS; b++) {
        cum += counts[b];
        me_buf_printf(out, "%s_bucket{%s,le=\"%g\"} %llu\n", name, labels, me_metrics_bucket_bounds[b], (unsigned long long)cum);
    }
    me_buf_printf(out, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, labels, (unsigned long long)total);
    me_buf_printf(out, "%s_sum{%s} %.6f\n", name, labels, (double)atomic_load_explicit(&h->sum_us, memory_order_relaxed) / 1e6);
    me_buf_printf(out, "%s_count{%s} %llu\n", name, labels, (unsigned long long)total);
}

void me_budget_hist_observe(me_budget_hist_t *b, int r_q, int r_c, uint64_t micros) {
    int slot = me_budget_index(r_q, r_c);
    me_hist_observe(&b->by_budget[slot < 0 ? ME_BUDGET_SLOTS - 1 : slot], micros);
}

void me_budget_hist_render(const me_budget_hist_t *b, const char *role, const char *where, me_buf_t *out) {
    me_buf_printf(out, "# HELP metaembed_search_duration_seconds Search time %s, by budget (r_q x r_c).\n"
                       "# TYPE metaembed_search_duration_seconds histogram\n", where);
    char labels[96];
    for (int i = 0; i < ME_BUDGET_SLOTS; i++) {
        if (i < ME_BUDGET_LADDER_N)
            snprintf(labels, sizeof labels, "role=\"%s\",budget=\"%dx%d\"", role, me_budget_ladder[i].r_q,
                     me_budget_ladder[i].r_c);
        else
            snprintf(labels, sizeof labels, "role=\"%s\",budget=\"other\"", role);
        me_hist_render(&b->by_budget[i], "metaembed_search_duration_seconds", labels, out);
    }
}

static long open_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - 1;  /* the directory's own descriptor */
}

static long long rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long long pages = 0, resident = 0;
    if (!f) return -1;
    if (fscanf(f, "%lld %lld", &pages, &resident) != 2) resident = -1;
    fclose(f);
    return resident < 0 ? -1 : resident * sysconf(_SC_PAGESIZE);
}

void me_metrics_render(const me_metrics_t *m, const char *role, me_buf_t *out) {
    me_buf_printf(out, "# HELP metaembed_requests_total Requests handled, by method and gRPC status code.\n"
                       "# TYPE metaembed_requests_total counter\n");
    for (int i = 0; i < ME_METRICS_METHODS; i++)
        for (int c = 0; c < ME_METRICS_CODES; c++) {
            uint64_t v = atomic_load_explicit(&m->requests[i][c], memory_order_relaxed);
            if (v && method_names[i])
                me_buf_printf(out, "metaembed_requests_total{role=\"%s\",method=\"%s\",code=\"%s\"} %llu\n", role,
                              method_names[i], me_status_name(c), (unsigned long long)v);
        }
    me_buf_printf(out, "# HELP metaembed_request_duration_seconds Time from receiving a request to its reply, by method.\n"
                       "# TYPE metaembed_request_duration_seconds histogram\n");
    for (int i = 0; i < ME_METRICS_METHODS; i++) {
        if (!method_names[i]) continue;
        uint64_t cum = 0, counts[ME_METRICS_BUCKETS + 1];
        for (int b = 0; b <= ME_METRICS_BUCKETS; b++) counts[b] = atomic_load_explicit(&m->buckets[i][b], memory_order_relaxed);
        uint64_t total = 0;
        for (int b = 0; b <= ME_METRICS_BUCKETS; b++) total += counts[b];
        if (!total) continue;
        for (int b = 0; b < ME_METRICS_BUCKETS; b++) {
            cum += counts[b];
            me_buf_printf(out, "metaembed_request_duration_seconds_bucket{role=\"%s\",method=\"%s\",le=\"%g\"} %llu\n",
                          role, method_names[i], me_metrics_bucket_bounds[b], (unsigned long long)cum);
        }
        me_buf_printf(out, "metaembed_request_duration_seconds_bucket{role=\"%s\",method=\"%s\",le=\"+Inf\"} %llu\n",
                      role, method_names[i], (unsigned long long)total);
        me_buf_printf(out, "metaembed_request_duration_seconds_sum{role=\"%s\",method=\"%s\"} %.6f\n", role,
                      method_names[i], (double)atomic_load_explicit(&m->sum_us[i], memory_order_relaxed) / 1e6);
        me_buf_printf(out, "metaembed_request_duration_seconds_count{role=\"%s\",method=\"%s\"} %llu\n", role,
                      method_names[i], (unsigned long long)total);
    }
    me_buf_printf(out, "# HELP metaembed_process_resident_memory_bytes Resident memory of the process.\n"
                       "# TYPE metaembed_process_resident_memory_bytes gauge\n"
                       "metaembed_process_resident_memory_bytes{role=\"%s\"} %lld\n", role, rss_bytes());
    me_buf_printf(out, "# HELP metaembed_process_open_fds Open file descriptors.\n"
                       "# TYPE metaembed_process_open_fds gauge\n"
                       "metaembed_process_open_fds{role=\"%s\"} %ld\n", role, open_fds());
    me_buf_printf(out, "# HELP metaembed_uptime_seconds Seconds since the process started serving.\n"
                       "# TYPE metaembed_uptime_seconds gauge\n"
                       "metaembed_uptime_seconds{role=\"%s\"} %.3f\n", role, (double)(me_now_ms() - m->start_ms) / 1e3);
}

static int endpoints_handle(void *ctx, const me_http_request_t *req, me_buf_t *body, const char **content_type) {
    me_endpoints_t *ep = ctx;
    const char *path = req->path;
    /* The daemon's own routes (the coordinator's search API) first. */
    if (ep->route) {
        int status = ep->route(ep->ctx, req, body, content_type);
        if (status) return status;
    }
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        me_buf_printf(body, "only GET and HEAD here\n");
        return 405;
    }
    if (!strcmp(path, "/metrics")) {
        *content_type = "text/plain; version=0.0.4; charset=utf-8";
        me_metrics_render(ep->metrics, ep->role, body);
        if (ep->render) ep->render(ep->ctx, body);
        return 200;
    }
    if (!strcmp(path, "/healthz")) {
        me_buf_printf(body, "ok\n");
        return 200;
    }
    if (!strcmp(path, "/readyz")) {
        char why[256] = "not ready";
        if (!ep->ready || ep->ready(ep->ctx, why, sizeof why)) {
            me_buf_printf(body, "ready\n");
            return 200;
        }
        me_buf_printf(body, "%s\n", why);
        return 503;
    }
    if (!strcmp(path, "/") && ep->index_html) {
        *content_type = "text/html; charset=utf-8";
        me_buf_printf(body, "%s", ep->index_html);
        return 200;
    }
    me_buf_printf(body, "not found: try /metrics, /healthz or /readyz\n");
    return 404;
}

int me_metrics_addr_check(const char *addr, int public_ok, char *err, size_t cap) {
    if (!addr || !*addr || public_ok) return 0;
    if (!strncmp(addr, "127.", 4) || !strncmp(addr, "localhost:", 10) || !strncmp(addr, "[::1]:", 6)) return 0;
    me_set_err(err, cap, "--metrics-addr %s is not a loopback address, and its pages need no login: /metrics and "
               "the dashboard show collection names, document counts and cluster endpoints. Bind it to 127.0.0.1 "
               "and scrape through an authenticating proxy, or pass --metrics-public to serve it as it is", addr);
    return ME_EINVAL;
}

me_http_t *me_endpoints_start(const char *addr, me_endpoints_t *ep) {
    if (!addr || !*addr) return NULL;
    char err[256];
    me_http_t *h = me_http_start(addr, endpoints_handle, ep, NULL, err, sizeof err);
    if (!h) me_warn("metrics endpoint off: %s (pick another --metrics-addr)", err);
    else me_info("metrics on http://%s/metrics", addr);
    return h;
}
