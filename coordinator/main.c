/* metaembed-coordinator: the cluster's front door (see coordinator.h).
 * Threads: common/server.c's workers, each with its own sockets to every
 * replica (coordinator/fanout.c), plus a heartbeat thread and a repair
 * thread (coordinator/repair.c). */
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/curve.h"
#include "common/error.h"
#include "common/log.h"
#include "common/server.h"
#include "coordinator/coordinator.h"
#include "coordinator/dashboard.h"
#include "coordinator/http_api.h"
#include "coordinator/repair.h"
#include "coordinator/reshard.h"
#include "coordinator/web.h"

static void *worker_init(void *ctx, void *zctx) {
    me_coord_t *co = ctx;
    return me_fanout_new(&co->cluster, zctx);
}

static void worker_free(void *ctx, void *wstate) {
    (void)ctx;
    me_fanout_free(wstate);
}

static void handle(void *ctx, void *wstate, const uint8_t *frame, size_t len, uint64_t *rid, me_reply_t *reply) {
    if (!wstate) {
        me_reply_init(reply);
        me_reply_error(reply, ME_CODE_RESOURCE_EXHAUSTED, "coordinator worker has no connections (out of memory)");
        return;
    }
    me_coord_handle(ctx, wstate, frame, len, rid, reply);
}

typedef struct {
    me_coord_t *co;
    void *zctx;
    const atomic_int *stop;
} repair_args_t;

static void *repair_thread(void *arg) {
    repair_args_t *a = arg;
    me_repair_loop(a->co, a->zctx, (int)a->co->opts.repair_ms, a->stop);
    return NULL;
}

/* The background threads: heartbeats here, and the repairer beside them. */
static void heartbeat(void *ctx, void *zctx, const atomic_int *stop) {
    me_coord_t *co = ctx;
    repair_args_t ra = { co, zctx, stop };
    pthread_t rt;
    int repairing = pthread_create(&rt, NULL, repair_thread, &ra) == 0;
    if (!repairing) me_warn("cannot start the repair thread: replicas will not converge by themselves");
    me_cluster_heartbeat(&co->cluster, zctx, (int)co->opts.heartbeat_ms, (int)co->opts.max_backoff_ms, stop);
    if (repairing) pthread_join(rt, NULL);
}

int main(int argc, char **argv) {
    static me_coord_t co;
    char err[512];
    const char *summary =
        "metaembed-coordinator: one endpoint for a cluster of metaembed shards. Routes writes\n"
        "to the owning shard group, fans searches out to one live replica per group, merges\n"
        "the results, and answers partial results (naming the missing groups) when a group is down.\n\n"
        "usage: metaembed-coordinator --cluster cluster.conf [--listen tcp://127.0.0.1:7700] [options]";
    me_log_set_role("coordinator");
    if (me_config_defaults(me_coord_options, &co.opts, err, sizeof err) != 0) {
        fprintf(stderr, "metaembed-coordinator: %s\n", err);
        return 2;
    }
    int rc = me_config_parse(me_coord_options, &co.opts, argc, argv, "metaembed-coordinator", summary, NULL, 0,
                             NULL, err, sizeof err);
    if (rc == 1) return 0;
    if (rc) {
        fprintf(stderr, "metaembed-coordinator: %s\n", err);
        return 2;
    }
    if (!co.opts.cluster[0]) {
        fprintf(stderr, "metaembed-coordinator: --cluster FILE is required (see --help)\n");
        return 2;
    }
    me_log_level = me_log_level_from_name(co.opts.log_level);
    if (me_metrics_addr_check(co.opts.metrics_addr, co.opts.metrics_public, err, sizeof err) != 0) {
        fprintf(stderr, "metaembed-coordinator: %s\n", err);
        return 2;
    }
    if (me_coord_api_init(&co, err, sizeof err) != 0) {
        fprintf(stderr, "metaembed-coordinator: %s\n", err);
        return 2;
    }
    if (me_cluster_load(&co.cluster, co.opts.cluster, (int)co.opts.liveness, err, sizeof err) != 0) {
        fprintf(stderr, "metaembed-coordinator: %s\n", err);
        return 2;
    }
    if (me_curve_load(co.opts.curve_dir, NULL, &co.curve, err, sizeof err) != 0) {
        fprintf(stderr, "metaembed-coordinator: --curve-dir: %s\n", err);
        return 2;
    }
    co.cluster.curve = &co.curve;
    if (me_server_signals() != 0) {
        perror("metaembed-coordinator: signals");
        return 1;
    }
    co.start_ms = me_now_ms();
    me_autobudget_init(&co.autobudget);
    me_config_cache_init(&co.configs);
    pthread_rwlock_init(&co.write_gate, NULL);
    me_metrics_init(&co.metrics);
    me_endpoints_t ep = { .role = "coordinator", .metrics = &co.metrics, .ctx = &co, .render = me_coord_render_metrics,
                          .route = me_coord_web_route, .ready = me_coord_ready, .index_html = me_dashboard_html };
    me_http_t *http = me_endpoints_start(co.opts.metrics_addr, &ep);
    me_info("cluster map %s: %d groups, %d replicas, write quorum %s", co.opts.cluster, co.cluster.n_groups,
            co.cluster.n_replicas, co.opts.write_quorum ? "explicit" : "all");
    me_server_t srv = { .role = "coordinator", .listen = co.opts.listen, .threads = (int)co.opts.threads,
                        .default_deadline_ms = co.opts.default_deadline_ms, .max_queue = (int)co.opts.max_queue,
                        .max_message = co.opts.max_message, .curve = &co.curve, .insecure = co.opts.insecure,
                        .ctx = &co, .worker_init = worker_init,
                        .worker_free = worker_free, .handle = handle, .background = heartbeat };
    int exit_code = me_server_run(&srv);
    me_reshard_shutdown(&co);
    me_http_stop(http);
    me_coord_web_close();
    me_cluster_free(&co.cluster);
    me_config_cache_free(&co.configs);
    me_curve_free(&co.curve);
    me_info("stopped cleanly");
    return exit_code;
}
