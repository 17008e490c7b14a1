/* Dynamic batching for the encoder node: Encode requests that arrive
 * together share forward passes. Each worker thread that serves an Encode
 * queues its texts here; while fewer than `lanes` forward passes run, a
 * waiting worker becomes the leader of the next batch — every queued job of
 * the oldest job's side, up to max_texts texts — encodes it with its own
 * embedder and hands each job its rows. A lone request runs at once (no
 * waiting window), so batching only adds what a request would have waited
 * for a core anyway. More worker threads than lanes let requests queue here
 * rather than in the socket, where they could not be combined. */
#ifndef ME_ENCODER_BATCHER_H
#define ME_ENCODER_BATCHER_H

#include <stdint.h>

#include "encoder/embedder.h"

typedef struct me_batcher me_batcher_t;

/* lanes: forward passes at a time (one core each); max_texts: texts per
 * combined pass (a single larger request still runs whole). */
me_batcher_t *me_batcher_new(int lanes, int max_texts);
void me_batcher_free(me_batcher_t *b);

/* Encodes n NUL-terminated texts on `side` into out (n × rows × dim), in a
 * pass of its own or combined with others; w is the caller's embedder, used
 * if the caller leads a batch. Returns 0 or ME_ENOMEM. */
int me_batcher_encode(me_batcher_t *b, me_embedder_t *w, me_side_t side, const char *const *texts, int n,
                      float *out);

typedef struct {
    uint64_t queued;    /* requests waiting for a lane now */
    uint64_t running;   /* forward passes running now */
    uint64_t batches;   /* passes run so far */
    uint64_t requests;  /* requests served by them */
    uint64_t texts;     /* texts encoded by them */
} me_batcher_stats_t;

void me_batcher_stats(me_batcher_t *b, me_batcher_stats_t *out);

#endif
