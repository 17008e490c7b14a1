/* metaembed-encoder: serves Encode (texts → nested multi-vector
 * embeddings) with the model file it loads; common/server.c's workers each
 * run their own forward passes over the one shared model. */
#include <stdio.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "common/server.h"
#include "encoder/ingest.h"
#include "encoder/service.h"

static void *worker_init(void *ctx, void *zctx) {
    (void)zctx;
    return me_encoder_worker(ctx);
}

static void worker_free(void *ctx, void *w) {
    (void)ctx;
    me_embedder_free(w);
}

static void handle(void *ctx, void *w, const uint8_t *frame, size_t len, uint64_t *rid, me_reply_t *reply) {
    if (!w) {
        me_reply_init(reply);
        me_reply_error(reply, ME_CODE_RESOURCE_EXHAUSTED, "encoder worker has no buffers (out of memory)");
        return;
    }
    me_encoder_handle(ctx, w, frame, len, rid, reply);
}

static void ingest_loop(void *ctx, void *zctx, const atomic_int *stop) {
    me_encoder_t *enc = ctx;
    me_embedder_t *e = me_encoder_worker(enc);
    if (!e) return;
    me_ingest_opts_t o = { enc->opts.ingest_from, enc->opts.coordinator, enc->opts.listen, e, &enc->ingested,
                           enc->opts.curve_dir, &enc->curve, enc->opts.max_message, enc->opts.max_batch };
    me_ingest_run(&o, zctx, stop);
    me_embedder_free(e);
}

int main(int argc, char **argv) {
    static me_encoder_t enc;
    me_encoder_opts_t opts;
    char err[512];
    const char *summary =
        "metaembed-encoder: turns texts into MetaEmbed's nested multi-vector embeddings\n"
        "(16 vectors per query, 64 per document) with a model trained by 'metaembed train'.\n\n"
        "usage: metaembed-encoder [--model FILE] [--listen tcp://127.0.0.1:7800] [options]";
    me_log_set_role("encoder");
    me_config_defaults(me_encoder_options, &opts, err, sizeof err);
    int rc = me_config_parse(me_encoder_options, &opts, argc, argv, "metaembed-encoder", summary, NULL, 0, NULL,
                             err, sizeof err);
    if (rc == 1) return 0;
    if (rc) {
        fprintf(stderr, "metaembed-encoder: %s\n", err);
        return 2;
    }
    me_log_level = me_log_level_from_name(opts.log_level);
    if (me_metrics_addr_check(opts.metrics_addr, opts.metrics_public, err, sizeof err) != 0) {
        fprintf(stderr, "metaembed-encoder: %s\n", err);
        return 2;
    }
    if (me_server_signals() != 0) {
        perror("metaembed-encoder: signals");
        return 1;
    }
    me_metrics_init(&enc.metrics);
    me_endpoints_t ep = { .role = "encoder", .metrics = &enc.metrics, .ctx = &enc,
                          .render = me_encoder_render_metrics, .ready = me_encoder_ready };
    me_http_t *http = me_endpoints_start(opts.metrics_addr, &ep);
    if (me_encoder_open(&enc, &opts, err, sizeof err) != 0) {
        me_error("cannot load the model: %s (train one with 'metaembed train', or pass --model FILE)", err);
        me_http_stop(http);
        return 1;
    }
    me_info("model %s loaded", opts.model);
    if (me_curve_load(opts.curve_dir, NULL, &enc.curve, err, sizeof err) != 0) {
        me_error("--curve-dir: %s", err);
        me_http_stop(http);
        me_encoder_close(&enc);
        return 2;
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int threads = opts.threads ? (int)opts.threads : (cores > 0 ? (int)cores : 1);
    me_server_t srv = { .role = "encoder", .listen = opts.listen, .threads = threads,
                        .max_message = opts.max_message, .curve = &enc.curve, .insecure = opts.insecure,
                        .ctx = &enc, .worker_init = worker_init,
                        .worker_free = worker_free, .handle = handle,
                        .background = opts.ingest_from[0] ? ingest_loop : NULL };
    int code = me_server_run(&srv);
    me_http_stop(http);
    me_encoder_close(&enc);
    me_curve_free(&enc.curve);
    me_info("stopped cleanly");
    return code;
}
