/* metaembed-shard: one partition of the index, served over ZeroMQ
 * (common/server.c: ROUTER → worker threads → me_shard_handle). */
#include <stdio.h>

#include "common/log.h"
#include "common/server.h"
#include "shard/shard.h"
#include "shard/snapshot.h"

static void handle(void *ctx, void *wstate, const uint8_t *frame, size_t len, uint64_t *rid, me_reply_t *reply) {
    (void)wstate;
    me_shard_handle(ctx, frame, len, rid, reply);
}

int main(int argc, char **argv) {
    me_shard_opts_t opts;
    char err[512];
    const char *summary =
        "metaembed-shard: stores nested multi-vector embeddings in RocksDB and answers\n"
        "MaxSim searches at any budget (r_q, r_c) with a coarse scan + rerank cascade.\n\n"
        "usage: metaembed-shard [--listen tcp://127.0.0.1:7600] [--data-dir DIR] [options]";
    me_log_set_role("shard");
    if (me_config_defaults(me_shard_options, &opts, err, sizeof err) != 0) {
        fprintf(stderr, "metaembed-shard: %s\n", err);
        return 2;
    }
    int rc = me_config_parse(me_shard_options, &opts, argc, argv, "metaembed-shard", summary,
                             NULL, 0, NULL, err, sizeof err);
    if (rc == 1) return 0;
    if (rc) {
        fprintf(stderr, "metaembed-shard: %s\n", err);
        return 2;
    }
    me_log_level = me_log_level_from_name(opts.log_level);
    if (me_metrics_addr_check(opts.metrics_addr, opts.metrics_public, err, sizeof err) != 0) {
        fprintf(stderr, "metaembed-shard: %s\n", err);
        return 2;
    }
    me_curve_t curve;
    if (me_curve_load(opts.curve_dir, NULL, &curve, err, sizeof err) != 0) {
        fprintf(stderr, "metaembed-shard: --curve-dir: %s\n", err);
        return 2;
    }
    if (me_server_signals() != 0) {
        perror("metaembed-shard: signals");
        return 1;
    }
    /* The offline snapshot tools: do it and exit. */
    if (opts.export_snapshot[0]) {
        if (!opts.archive[0]) {
            fprintf(stderr, "metaembed-shard: --export-snapshot needs --archive FILE\n");
            return 2;
        }
        if (me_snapshot_export(opts.data_dir, opts.export_snapshot, opts.archive, err, sizeof err) != 0) {
            fprintf(stderr, "metaembed-shard: --export-snapshot: %s\n", err);
            return 1;
        }
        printf("exported snapshot %s to %s\n", opts.export_snapshot, opts.archive);
        return 0;
    }
    if (opts.import_snapshot[0]) {
        char id[65];
        if (me_snapshot_import(opts.data_dir, opts.import_snapshot, id, sizeof id, err, sizeof err) != 0) {
            fprintf(stderr, "metaembed-shard: --import-snapshot: %s\n", err);
            return 1;
        }
        printf("imported snapshot %s into %s.snapshots; start with --restore-snapshot %s to use it\n", id,
               opts.data_dir, id);
        return 0;
    }
    if (opts.restore_snapshot[0] && me_snapshot_restore(opts.data_dir, opts.restore_snapshot, err, sizeof err) != 0) {
        fprintf(stderr, "metaembed-shard: --restore-snapshot: %s\n", err);
        return 1;
    }
    static me_shard_t shard;
    me_metrics_init(&shard.metrics);
    /* Up before storage opens, so /readyz can say "not yet" during a long load. */
    me_endpoints_t ep = { .role = "shard", .metrics = &shard.metrics, .ctx = &shard,
                          .render = me_shard_render_metrics, .ready = me_shard_ready };
    me_http_t *http = me_endpoints_start(opts.metrics_addr, &ep);
    if (me_shard_open(&shard, &opts, err, sizeof err) != 0) {
        me_error("cannot open shard: %s", err);
        me_http_stop(http);
        return 1;
    }
    me_info("data %s, sync %s", opts.data_dir, opts.sync ? "on" : "off");
    me_server_t srv = { .role = "shard", .listen = opts.listen, .threads = (int)opts.threads,
                        .default_deadline_ms = opts.default_deadline_ms, .max_queue = (int)opts.max_queue,
                        .max_message = opts.max_message, .curve = &curve, .insecure = opts.insecure,
                        .ctx = &shard, .handle = handle };
    int exit_code = me_server_run(&srv);
    me_curve_free(&curve);
    me_http_stop(http);
    me_shard_close(&shard);
    me_info("stopped cleanly");
    return exit_code;
}
