/* Budget "auto": the coordinator picks each query's (r_q, r_c) from the MMR
 * ladder to meet a latency target, from what the cluster shows now.
 *
 * Model: per ladder budget, the latency of recent searches at it through
 * the fan-out (what a client waited for: the slowest group, queueing in
 * the shards included), as an exponentially weighted mean and variance;
 * the predicted tail is mean + 2 standard deviations. A query gets the
 * largest budget, between its minimum and its ceiling, at or below the
 * current level whose predicted tail fits the target. The level is the
 * damping: it falls at once when the tail at it passes the target (load
 * rose: brownout, one step per observation), and rises one step only after
 * 250 ms with the tail under 60% of the target (hysteresis, so it does not
 * oscillate). A budget with no observation in the last 2 s is predicted
 * from the nearest observed one, scaled by the budgets' r_q·r_c work of
 * the rerank on top of the shared coarse stage. One state per coordinator
 * (the groups answer every query together). Thread-safe. */
#ifndef ME_AUTOBUDGET_H
#define ME_AUTOBUDGET_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "common/budget.h"

typedef struct {
    pthread_mutex_t lock;
    double mean_us[ME_BUDGET_LADDER_N], var_us[ME_BUDGET_LADDER_N];
    uint64_t seen_us[ME_BUDGET_LADDER_N];  /* when last observed (0: never) */
    int level;                              /* the damped ceiling, a ladder index */
    uint64_t level_since_us;                /* when it last changed */
    /* metrics */
    atomic_uint_fast64_t chosen[ME_BUDGET_LADDER_N];
    atomic_uint_fast64_t below_ceiling;     /* queries answered under their requested ceiling */
    atomic_uint_fast64_t degraded;          /* answers a shard cut short (anytime) */
    atomic_uint_fast64_t within_target, over_target;
} me_autobudget_t;

void me_autobudget_init(me_autobudget_t *a);
void me_autobudget_destroy(me_autobudget_t *a);

/* The budget for a query with target_ms, between the ladder levels lo and
 * hi (inclusive): the level (into *level) and its predicted latency (ms);
 * reason (cap bytes) says why. */
void me_autobudget_pick(me_autobudget_t *a, double target_ms, int lo, int hi, int *level, double *predicted_ms,
                        char *reason, size_t cap);
/* A search answered at ladder level `level` after `us` microseconds. */
void me_autobudget_observe(me_autobudget_t *a, int level, double us, double target_ms);

#endif
