/* The encoder node's ingest loop: pulls IngestBatch messages from the text
 * stream (a ZeroMQ PULL connected to the sender's PUSH; several encoders
 * share one stream and ZeroMQ deals batches round-robin), encodes the texts
 * on the document side, upserts them through the coordinator, and only then
 * acknowledges the batch to its sender. A batch lost with a dead encoder is
 * never acknowledged, so the sender sends it again (to a live encoder). */
#ifndef ME_INGEST_H
#define ME_INGEST_H

#include <stdatomic.h>

#include "common/curve.h"
#include "encoder/embedder.h"

typedef struct {
    const char *stream;          /* endpoint to PULL from */
    const char *coordinator;     /* where documents are upserted */
    const char *name;            /* this encoder, for acks and logs */
    me_embedder_t *embedder;     /* this loop's own */
    atomic_uint_fast64_t *docs;  /* documents stored, for stats (may be NULL) */
    const char *curve_dir;       /* CurveZMQ keys for the stream, acks and coordinator; "" = plain */
    const me_curve_t *curve;     /* the same, loaded */
    long long max_message;       /* largest batch message taken (bytes) */
    long long max_batch;         /* most items in one batch */
} me_ingest_opts_t;

/* Runs until *stop is set. */
void me_ingest_run(const me_ingest_opts_t *o, void *zctx, const atomic_int *stop);

#endif
