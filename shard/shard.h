/* A shard: its options, its storage, its collections, and the handler that
 * turns one request frame into one reply. The daemon (shard/main.c) owns
 * the sockets and threads; me_shard_handle is safe to call from several
 * worker threads at once. */
#ifndef ME_SHARD_H
#define ME_SHARD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/metrics.h"
#include "common/wire.h"
#include "shard/collection.h"
#include "shard/storage.h"

/* Search stages timed in /metrics (shard/search.h names them); the last,
 * "exact", also takes any name not listed. */
#define ME_SHARD_STAGES 7
extern const char *const me_shard_stage_names[ME_SHARD_STAGES];
#define ME_SHARD_SELECTIVITY_BUCKETS 6
extern const double me_shard_selectivity_bounds[ME_SHARD_SELECTIVITY_BUCKETS];

typedef struct {
    char listen[ME_CFG_STR_MAX];
    char data_dir[ME_CFG_STR_MAX];
    char log_level[ME_CFG_STR_MAX];
    long long threads;
    long long max_queue;       /* admission: requests waiting per lane; 0 = 64 per worker */
    long long max_collections;
    char restore_snapshot[ME_CFG_STR_MAX];  /* at start: this snapshot becomes the data dir */
    char export_snapshot[ME_CFG_STR_MAX];   /* write this snapshot to --archive, then exit */
    char import_snapshot[ME_CFG_STR_MAX];   /* check and unpack this archive into the snapshots, then exit */
    char archive[ME_CFG_STR_MAX];
    long long max_message;     /* bytes */
    long long max_batch;       /* documents per Upsert/Delete/Get */
    long long max_k;
    long long max_candidates;
    long long default_deadline_ms;
    long long block_cache;     /* bytes */
    int sync;
    char metrics_addr[ME_CFG_STR_MAX];
    int metrics_public;
    char curve_dir[ME_CFG_STR_MAX];
    int insecure;
    long long slowdown;        /* search scoring done this many times (tests, load experiments) */
} me_shard_opts_t;

extern const me_cfg_opt_t me_shard_options[];

typedef struct {
    me_shard_opts_t opts;
    me_storage_t *storage;
    pthread_rwlock_t lock;     /* the collection list; write for DDL */
    me_coll_t **colls;
    size_t ncolls;
    uint32_t next_coll_id;
    uint64_t start_ms;
    atomic_uint_fast64_t requests, errors;
    atomic_uint_fast64_t documents;  /* over all collections: Health reads it without collection locks */
    me_metrics_t metrics;
    me_budget_hist_t search_by_budget;
    me_hist_t search_by_stage[ME_SHARD_STAGES];  /* by me_shard_stage_names */
    atomic_int ready;          /* storage open and collections loaded */
    atomic_uint_fast64_t searches[3][2];  /* by mode (dense, lexical, hybrid), filtered or not */
    /* Filtered searches by the fraction of documents the filter matched,
     * cumulative over me_shard_selectivity_bounds (the last: all). */
    atomic_uint_fast64_t selectivity[ME_SHARD_SELECTIVITY_BUCKETS + 1];
    atomic_uint_fast64_t selectivity_sum_ppm;  /* Σ matched fraction, in millionths */
    atomic_uint_fast64_t degraded;  /* anytime searches answered by an earlier stage */
    /* The cluster placement this shard holds (common/placement.h; 0 =
     * none yet), persisted in meta; shard/reshard.c. */
    _Atomic uint64_t placement;
    pthread_mutex_t placement_lock;  /* serialises adopting a new one */
    atomic_uint_fast64_t placement_refused;  /* requests routed with an outdated placement */
    atomic_uint_fast64_t purged;             /* documents purged after a move */
    /* The background IVF indexer (shard/indexer.h). */
    pthread_t indexer_thread;
    int indexer_started;
    atomic_int indexer_stop;
} me_shard_t;

/* The shard's own /metrics lines (collections, storage) and readiness. */
void me_shard_render_metrics(void *shard, me_buf_t *out);
int me_shard_ready(void *shard, char *why, size_t cap);

/* Opens storage and loads every collection into RAM; s must be zeroed
 * (metrics may be initialised first). */
int me_shard_open(me_shard_t *s, const me_shard_opts_t *opts, char *err, size_t errcap);
void me_shard_close(me_shard_t *s);

/* Handles one request frame (a packed Envelope) of `len` bytes. Always
 * fills reply (an error status for bad input) and *request_id (0 when the
 * envelope could not be read). */
void me_shard_handle(me_shard_t *s, const uint8_t *frame, size_t len,
                     uint64_t *request_id, me_reply_t *reply);

#endif
