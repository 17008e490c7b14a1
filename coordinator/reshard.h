/* Online resharding driven by a coordinator (see reshard.c for the mover,
 * common/placement.h for the phases, docs/cluster.md for the operator's
 * view). */
#ifndef ME_RESHARD_H
#define ME_RESHARD_H

#include <stdint.h>

#include "common/placement.h"
#include "coordinator/coordinator.h"

typedef struct me_reshard me_reshard_t;

typedef struct {
    me_placement_t placement;   /* in force at this coordinator */
    int running;                /* this coordinator drives a move now */
    uint64_t moved, estimate, purged, elapsed_ms, eta_ms;
    double progress, docs_per_s;
    char error[256], waiting[256];
} me_reshard_status_t;

/* Where this coordinator's move stands (zeroes but the placement when it
 * never ran one). */
void me_reshard_status(me_coord_t *co, me_reshard_status_t *out);
/* Stops the mover (it resumes from the shards' placement next time). */
void me_reshard_shutdown(me_coord_t *co);

#endif
