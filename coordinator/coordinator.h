/* The coordinator: the cluster's front door. Routes writes to the owning
 * shard group (every replica, acknowledged at the write quorum), fans reads
 * and searches out to one live replica per group, merges, and answers
 * partial results when a group is missing. Stateless: several can run
 * behind a load balancer with the same cluster map. */
#ifndef ME_COORDINATOR_H
#define ME_COORDINATOR_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "common/config.h"
#include "common/metrics.h"
#include "common/wire.h"
#include "coordinator/autobudget.h"
#include "coordinator/cluster.h"
#include "coordinator/config_cache.h"
#include "coordinator/fanout.h"

typedef struct {
    char listen[ME_CFG_STR_MAX];
    char cluster[ME_CFG_STR_MAX];
    char log_level[ME_CFG_STR_MAX];
    long long threads;
    long long max_queue;         /* admission: requests waiting per lane; 0 = 64 per worker */
    long long write_quorum;      /* 0 = every replica */
    long long heartbeat_ms;
    long long repair_ms;         /* anti-entropy pass interval; 0 = only after a stale mark */
    long long liveness;
    long long max_backoff_ms;
    long long default_deadline_ms;
    long long max_message;
    long long max_batch;
    char metrics_addr[ME_CFG_STR_MAX];
    int metrics_public;
    char curve_dir[ME_CFG_STR_MAX];
    int insecure;
    char api_key[ME_CFG_STR_MAX];       /* the HTTP API's key (--api-key) */
    char api_key_file[ME_CFG_STR_MAX];  /* or a file holding it (--api-key-file) */
} me_coord_opts_t;

extern const me_cfg_opt_t me_coord_options[];

typedef struct me_coord {
    me_coord_opts_t opts;
    me_cluster_t cluster;
    me_curve_t curve;            /* serves clients and calls replicas with it */
    uint64_t start_ms;
    atomic_uint_fast64_t requests, errors, retries, partial_replies;
    /* coordinator/repair.c: passes run, documents and collections fixed */
    atomic_uint_fast64_t repair_passes, repaired_documents, repaired_collections;
    /* requests run again because a shard held a newer placement */
    atomic_uint_fast64_t placement_retries;
    struct me_reshard *reshard;         /* coordinator/reshard.c: the move this coordinator drives */
    me_metrics_t metrics;
    me_budget_hist_t search_by_budget;  /* whole searches, encoding included */
    me_autobudget_t autobudget;         /* budget "auto": the latency model and its level */
    me_config_cache_t configs;          /* collection configs for writes' checks */
    /* Writes (upsert, delete) hold it shared; a snapshot holds it alone,
     * so a snapshot is a cut between this coordinator's writes. */
    pthread_rwlock_t write_gate;
    me_hist_t auto_predicted, auto_observed;  /* auto searches: predicted vs observed latency */
    /* The HTTP API's key (from --api-key or --api-key-file; "" = none) and
     * whether its endpoint listens off loopback (--metrics-public). */
    char api_key[ME_CFG_STR_MAX];
    int http_public;
} me_coord_t;

/* Replica up/down, retries, partial replies; ready when every group has a
 * live replica. */
void me_coord_render_metrics(void *co, me_buf_t *out);
int me_coord_ready(void *co, char *why, size_t cap);

/* Handles one request frame with this worker's connections. */
void me_coord_handle(me_coord_t *co, me_fanout_t *f, const uint8_t *frame, size_t len,
                     uint64_t *request_id, me_reply_t *reply);

#endif
