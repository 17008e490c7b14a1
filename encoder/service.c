#include "encoder/service.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/curve.h"
#include "common/error.h"
#include "common/log.h"
#include "common/server.h"
#include "encoder/ops.h"

#define OPT(name, type, field, def, lo, hi, choices, help) \
    { name, type, offsetof(me_encoder_opts_t, field), def, lo, hi, choices, help }

const me_cfg_opt_t me_encoder_options[] = {
    OPT("listen", ME_CFG_STRING, listen, "tcp://127.0.0.1:7800", 0, 0, NULL, "ZeroMQ endpoint to bind (ROUTER)"),
    OPT("model", ME_CFG_STRING, model, ME_DEFAULT_MODEL, 0, 0, NULL, "model file"),
    ME_CFG_LOG_LEVEL_OPTION(me_encoder_opts_t),
    OPT("threads", ME_CFG_INT, threads, "0", 0, 256, NULL,
        "worker threads, one request each at a time (0 = one per core; with --batching give more than --lanes, "
        "so requests can wait to be combined); each holds its own activation buffers"),
    OPT("lanes", ME_CFG_INT, lanes, "0", 0, 256, NULL, "forward passes at a time, one core each (0 = every core)"),
    OPT("batching", ME_CFG_BOOL, batching, "false", 0, 1, NULL,
        "combine Encode requests that arrive together into shared forward passes (off by default: with the "
        "default model a pass costs the same per text at any batch size on a CPU, so combining only adds "
        "hand-offs; see docs/benchmarks.md, encoder)"),
    ME_CFG_MAX_MESSAGE_OPTION(me_encoder_opts_t, "16M"),
    OPT("max-batch", ME_CFG_INT, max_batch, "512", 1, 100000, NULL, "most texts in one Encode"),
    ME_CFG_DEADLINE_OPTION(me_encoder_opts_t, "30000"),
    OPT("ingest-from", ME_CFG_STRING, ingest_from, "", 0, 0, NULL,
        "text stream to pull documents from (the endpoint 'metaembed ingest corpus.jsonl --stream' binds); empty = off"),
    OPT("coordinator", ME_CFG_STRING, coordinator, "tcp://127.0.0.1:7700", 0, 0, NULL,
        "coordinator that ingested documents are upserted through"),
    ME_METRICS_CFG_OPTIONS(me_encoder_opts_t, "127.0.0.1:9300"),
    ME_CURVE_CFG_OPTIONS(me_encoder_opts_t),
    { NULL, 0, 0, NULL, 0, 0, NULL, NULL },
};

int me_encoder_open(me_encoder_t *e, const me_encoder_opts_t *opts, char *err, size_t errcap) {
    e->opts = *opts;
    e->start_ms = me_now_ms();
    int rc = me_embedder_load(opts->model, &e->base, err, errcap);
    /* Workers run concurrently, so each forward pass stays on its own thread. */
    me_ops_set_threads(1);
    if (rc == 0 && opts->batching) {
        long lanes = opts->lanes ? opts->lanes : sysconf(_SC_NPROCESSORS_ONLN);
        /* Combined passes stop at one forward chunk: a larger one would keep
         * one lane busy while the others idle (tests/bench/bench_encode). */
        e->batcher = me_batcher_new(lanes > 0 ? (int)lanes : 1, ME_EMBED_BATCH);
        if (!e->batcher) {
            snprintf(err, errcap, "out of memory");
            rc = ME_ENOMEM;
        }
    }
    if (rc == 0) atomic_store(&e->ready, 1);
    return rc;
}

int me_encoder_ready(void *ctx, char *why, size_t cap) {
    me_encoder_t *e = ctx;
    if (atomic_load(&e->ready)) return 1;
    snprintf(why, cap, "not ready: loading the model");
    return 0;
}

void me_encoder_render_metrics(void *ctx, me_buf_t *out) {
    me_encoder_t *e = ctx;
    me_metric_u64(out, "metaembed_encoded_texts_total", "counter", "Texts encoded for Encode requests.",
                  (unsigned long long)atomic_load(&e->texts));
    me_metric_u64(out, "metaembed_ingested_documents_total", "counter",
                  "Documents encoded and stored from the ingest stream.", (unsigned long long)atomic_load(&e->ingested));
    me_metric_u64(out, "metaembed_encode_requests_in_flight", "gauge",
                  "Encode requests a worker is serving now (encoding, or waiting for a pass with --batching); at "
                  "--threads, new ones queue.", (unsigned long long)atomic_load(&e->in_flight));
    if (e->batcher) {
        me_batcher_stats_t bs;
        me_batcher_stats(e->batcher, &bs);
        me_metric_u64(out, "metaembed_encode_queue_depth", "gauge", "Encode requests waiting for a forward pass.",
                      (unsigned long long)bs.queued);
        me_metric_u64(out, "metaembed_encode_passes_running", "gauge", "Forward passes running now (at most --lanes).",
                      (unsigned long long)bs.running);
        me_metric_u64(out, "metaembed_encode_batches_total", "counter", "Forward passes run for Encode requests.",
                      (unsigned long long)bs.batches);
        me_metric_u64(out, "metaembed_encode_batched_requests_total", "counter",
                      "Encode requests served by those passes (divided by the passes: requests per batch).",
                      (unsigned long long)bs.requests);
    }
}

void me_encoder_close(me_encoder_t *e) {
    me_batcher_free(e->batcher);
    e->batcher = NULL;
    me_embedder_free(e->base);
    e->base = NULL;
}

me_embedder_t *me_encoder_worker(me_encoder_t *e) {
    return me_embedder_share(e->base);
}

typedef me_request_t req_t;
#define ENC(r) ((me_encoder_t *)(r)->ctx)

static int h_encode(req_t *r) {
    Metaembed__EncodeRequest *m = (void *)r->msg;
    me_encoder_t *e = ENC(r);
    me_embedder_t *w = r->wstate;
    int rc;
    float *out = NULL;
    size_t n = m->n_images ? m->n_images : m->n_texts;
    if (n == 0) { rc = ME_BAD(r, "empty batch: send at least one text or image"); goto done; }
    if (m->n_images && m->n_texts && m->n_texts != m->n_images) {
        rc = ME_BAD(r, "%zu images and %zu texts: give one text per image (empty for none), or no texts",
                    m->n_images, m->n_texts);
        goto done;
    }
    if ((rc = me_request_check_batch(r, n, e->opts.max_batch, "item")) != 0) goto done;
    me_side_t side = m->query_side ? ME_SIDE_QUERY : ME_SIDE_DOC;
    int R = me_embedder_rows(w, side), D = me_embedder_config(w)->dim;
    out = malloc(n * (size_t)R * D * sizeof *out);
    if (!out) { rc = ME_OOM(r); goto done; }
    /* Texts are truncated to the model's length (documented), never refused. */
    const char *const *texts = m->n_texts ? (const char *const *)m->texts : NULL;
    atomic_fetch_add(&e->in_flight, 1);
    int erc;
    char why[512] = "out of memory encoding";
    if (m->n_images) {
        const uint8_t **bytes = malloc(n * sizeof *bytes);
        size_t *lens = malloc(n * sizeof *lens);
        erc = bytes && lens ? 0 : ME_ENOMEM;
        for (size_t i = 0; !erc && i < n; i++) {
            bytes[i] = m->images[i].data;
            lens[i] = m->images[i].len;
        }
        if (!erc) erc = me_embedder_encode_image_bytes(w, side, bytes, lens, texts, (int)n, out, why, sizeof why);
        free(bytes);
        free(lens);
    } else {
        erc = e->batcher ? me_batcher_encode(e->batcher, w, side, texts, (int)n, out)
                         : me_embedder_encode(w, side, texts, NULL, (int)n, out);
    }
    atomic_fetch_sub(&e->in_flight, 1);
    if (erc != 0) {
        rc = me_reply_error(r->reply, me_error_status(erc), "%s", why);
        goto done;
    }
    atomic_fetch_add(&e->texts, n);
    uint32_t shape[3] = { (uint32_t)n, (uint32_t)R, (uint32_t)D };
    Metaembed__Tensor t = METAEMBED__TENSOR__INIT;
    t.dtype = METAEMBED__DTYPE__DTYPE_F32;
    t.shape = shape;
    t.n_shape = 3;
    t.data.data = (uint8_t *)out;
    t.data.len = n * (size_t)R * D * sizeof *out;
    Metaembed__EncodeReply rep = METAEMBED__ENCODE_REPLY__INIT;
    rep.vectors = &t;
    rc = me_reply_ok(r->reply, &rep.base);
done:
    free(out);
    return rc;
}

static int h_health(req_t *r) { return me_reply_health(r, "encoder", ENC(r)->start_ms, 0); }

static int h_stats(req_t *r) {
    me_encoder_t *e = ENC(r);
    Metaembed__StatsReply rep = METAEMBED__STATS_REPLY__INIT;
    rep.role = "encoder";
    rep.uptime_ms = me_now_ms() - e->start_ms;
    rep.requests = atomic_load(&e->requests);
    rep.errors = atomic_load(&e->errors);
    return me_reply_ok(r->reply, &rep.base);
}

static const me_method_t methods[] = {
    { METAEMBED__METHOD__METHOD_ENCODE, h_encode },
    { METAEMBED__METHOD__METHOD_HEALTH, h_health },
    { METAEMBED__METHOD__METHOD_STATS, h_stats },
};

void me_encoder_handle(me_encoder_t *e, me_embedder_t *w, const uint8_t *frame, size_t len, uint64_t *rid,
                       me_reply_t *reply) {
    me_dispatch(methods, sizeof methods / sizeof methods[0], e, w, frame, len, e->opts.max_message,
                e->opts.default_deadline_ms, &e->requests, &e->errors, &e->metrics, rid, reply);
}
