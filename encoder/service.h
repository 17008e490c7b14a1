/* The encoder node's request handling: Encode (texts → nested vectors on
 * the query or document side), Health and Stats. Each worker thread has its
 * own embedder (activation buffers) over one shared, read-only model.
 * With --batching, Encodes that arrive together are combined into shared
 * forward passes (encoder/batcher.h), at most one per core at a time. */
#ifndef ME_ENCODER_SERVICE_H
#define ME_ENCODER_SERVICE_H

#include <stdatomic.h>
#include <stdint.h>

#include "common/config.h"
#include "common/curve.h"
#include "common/metrics.h"
#include "common/wire.h"
#include "encoder/batcher.h"
#include "encoder/embedder.h"

typedef struct {
    char listen[ME_CFG_STR_MAX];
    char model[ME_CFG_STR_MAX];
    char log_level[ME_CFG_STR_MAX];
    long long threads;
    long long lanes;             /* forward passes at a time; 0 = every core */
    int batching;                /* combine Encodes that arrive together */
    long long max_message;
    long long max_batch;         /* texts per Encode */
    long long default_deadline_ms;
    char ingest_from[ME_CFG_STR_MAX];  /* text stream to pull; "" = no ingest */
    char coordinator[ME_CFG_STR_MAX];  /* where ingested documents go */
    char metrics_addr[ME_CFG_STR_MAX];
    int metrics_public;
    char curve_dir[ME_CFG_STR_MAX];
    int insecure;
} me_encoder_opts_t;

extern const me_cfg_opt_t me_encoder_options[];

typedef struct {
    me_encoder_opts_t opts;
    me_embedder_t *base;         /* owns the model and tokenizer */
    me_batcher_t *batcher;       /* NULL: each request runs its own pass */
    me_curve_t curve;            /* CurveZMQ keys (off unless --curve-dir) */
    uint64_t start_ms;
    atomic_uint_fast64_t requests, errors, texts, ingested;
    atomic_int in_flight;        /* Encodes being served now */
    me_metrics_t metrics;
    atomic_int ready;            /* model loaded */
} me_encoder_t;

void me_encoder_render_metrics(void *enc, me_buf_t *out);
int me_encoder_ready(void *enc, char *why, size_t cap);

/* e starts zeroed (its metrics may be initialised first). */
int me_encoder_open(me_encoder_t *e, const me_encoder_opts_t *opts, char *err, size_t errcap);
void me_encoder_close(me_encoder_t *e);
/* Per-worker embedder sharing e's model. */
me_embedder_t *me_encoder_worker(me_encoder_t *e);
void me_encoder_handle(me_encoder_t *e, me_embedder_t *w, const uint8_t *frame, size_t len, uint64_t *rid,
                       me_reply_t *reply);

#endif
