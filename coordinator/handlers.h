/* What the coordinator's request handlers share: the request as they see
 * it, the fan-out helpers, and the handlers themselves, one file per job:
 * search.c (fan-out, merge, text queries), documents.c (placement: upsert,
 * delete, get; write quorum), admin.c (collections, stats, health,
 * readiness, metrics); handlers.c dispatches. Internal to coordinator/. */
#ifndef ME_COORD_HANDLERS_H
#define ME_COORD_HANDLERS_H

#include <stddef.h>
#include <stdint.h>

#include "common/server.h"
#include "common/validate.h"
#include "coordinator/coordinator.h"

typedef me_request_t req_t;
#define COORD(r) ((me_coord_t *)(r)->ctx)
#define FANOUT(r) ((me_fanout_t *)(r)->wstate)
#define BAD ME_BAD
#define OOM ME_OOM
/* Appended to an error that DEADLINE_EXCEEDED explains. */
#define DEADLINE_HINT(st) ((st) == ME_CODE_DEADLINE_EXCEEDED ? "; allow the request more time (deadline_ms)" : "")

const char *me_coord_group_name(req_t *r, int g);
/* The placement this request is routed with (fixed for the whole request;
 * me_coord_handle runs it again if a shard had a newer one), and from it:
 * the groups reads go to (searches, Gets, counts, lists: 0..n-1), and the
 * groups writes and DDL go to (0..span-1). */
me_placement_t me_coord_placement(const req_t *r);
int me_coord_read_groups(const req_t *r);
int me_coord_span_groups(const req_t *r);
/* The fan-out stops a tenth of the time left (at least 2 ms) before the
 * request's deadline, so a partial reply reaches the client in time. */
uint64_t me_coord_fanout_deadline(const req_t *r);
/* One read call of `method` per group with the same payload, run; NULL on no memory. */
me_call_t *me_coord_read_calls(req_t *r, int method, const uint8_t *payload, size_t len);
/* The first answer that is a request error (not an availability problem)
 * becomes the reply (every group would say the same); 0 when none. */
int me_coord_first_request_error(req_t *r, me_call_t *calls, int n);
int me_coord_group_ok(const me_call_t *c);
/* Calls for every replica of the groups with used[g] (NULL: every group),
 * each with payload[g] (NULL: the request as received), run to the
 * deadline; *ncalls gets how many. NULL on no memory. */
me_call_t *me_coord_write_calls(req_t *r, uint8_t *const *payload, const size_t *len, const int *used, int *ncalls);
/* The OK answers a write needs from group g (--write-quorum; 0 = all). */
int me_coord_write_need(const req_t *r, int g);
/* DEADLINE_EXCEEDED when a replica was asked but the time ran out (or it
 * said so), UNAVAILABLE when no live replica could be asked. */
int me_coord_down_status(const me_call_t *calls, int n);

int me_coord_search(req_t *r);
int me_coord_encode(req_t *r);
int me_coord_upsert(req_t *r);
int me_coord_delete(req_t *r);
int me_coord_get(req_t *r);
int me_coord_list_ids(req_t *r);
int me_coord_count(req_t *r);
int me_coord_ddl(req_t *r);
int me_coord_list(req_t *r);
int me_coord_stats(req_t *r);
int me_coord_health(req_t *r);
int me_coord_snapshot(req_t *r);
int me_coord_reshard(req_t *r);

#endif
