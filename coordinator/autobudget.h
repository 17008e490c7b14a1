/* Budget "auto": the coordinator picks each query's (r_q, r_c) from the MMR
 * ladder to meet a latency target, from what the cluster shows now.
 *
 * Model: per ladder budget, the latencies of the last 64 searches at it,
 * from their arrival at the coordinator to the answer (what a client
 * waited: queueing and the slowest group included); the predicted tail is their 95th
 * percentile, robust to a lone spike. A query gets the largest budget,
 * between its minimum and its ceiling, at or below the current level whose
 * predicted tail fits 80% of the target (room for the 99th percentile).
 * The level is the damping: it falls one step when the tail at it, over
 * at least 16 searches since the last change, passes that (load rose:
 * brownout), and rises one step only after 250 ms with the tail under half
 * the target and the level above not known to be too slow (hysteresis, so
 * it does not oscillate). A budget with no search in the last 2 s is
 * predicted from the nearest one seen, scaled: half the time taken as the
 * coarse stage every budget shares, half as the r_q·r_c rerank. One state
 * per coordinator (the groups answer every query together). Thread-safe. */
#ifndef ME_AUTOBUDGET_H
#define ME_AUTOBUDGET_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "common/budget.h"

#define ME_AUTOBUDGET_WINDOW 64

typedef struct {
    pthread_mutex_t lock;
    float lat_us[ME_BUDGET_LADDER_N][ME_AUTOBUDGET_WINDOW];  /* rings of recent latencies */
    int nlat[ME_BUDGET_LADDER_N], head[ME_BUDGET_LADDER_N];
    uint64_t seen_us[ME_BUDGET_LADDER_N];  /* when last observed (0: never) */
    int level;                              /* the damped ceiling, a ladder index */
    uint64_t level_since_us;                /* when it last changed */
    int since_change;                       /* searches at the level since it changed */
    /* metrics */
    atomic_uint_fast64_t chosen[ME_BUDGET_LADDER_N];
    atomic_uint_fast64_t below_ceiling;     /* queries answered under their requested ceiling */
    atomic_uint_fast64_t degraded;          /* answers a shard cut short (anytime) */
    atomic_uint_fast64_t within_target, over_target;
} me_autobudget_t;

void me_autobudget_init(me_autobudget_t *a);

/* The budget for a query with target_ms, between the ladder levels lo and
 * hi (inclusive): the level (into *level) and its predicted latency (ms);
 * reason (cap bytes) says why. */
void me_autobudget_pick(me_autobudget_t *a, double target_ms, int lo, int hi, int *level, double *predicted_ms,
                        char *reason, size_t cap);
/* A search answered at ladder level `level` after `us` microseconds. */
void me_autobudget_observe(me_autobudget_t *a, int level, double us, double target_ms);

#endif
