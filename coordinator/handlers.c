/* The coordinator's dispatch table and the helpers its handlers share
 * (coordinator/handlers.h); the handlers live in search.c, documents.c and
 * admin.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "coordinator/handlers.h"

const char *me_coord_group_name(req_t *r, int g) { return COORD(r)->cluster.groups[g].name; }

/* The fan-out stops a tenth of the time left (at least 2 ms) before the
 * request's deadline, keeping that to merge and answer, so a partial reply
 * reaches the client before its own deadline runs out. */
uint64_t me_coord_fanout_deadline(const req_t *r) {
    uint64_t now = me_now_us();
    if (r->deadline_us <= now) return now;
    uint64_t left = r->deadline_us - now, margin = left / 10 > 2000 ? left / 10 : 2000;
    return margin < left ? r->deadline_us - margin : now + left / 2;
}

me_placement_t me_coord_placement(const req_t *r) {
    me_placement_t p = { 0, ME_PHASE_STABLE, 1, 1 };
    me_placement_unpack(me_fanout_placement(FANOUT(r)), &p);
    return p;
}

int me_coord_read_groups(const req_t *r) { return me_placement_read_groups(me_coord_placement(r)); }

int me_coord_span_groups(const req_t *r) { return me_placement_span(me_coord_placement(r)); }

/* One read call per group of the read placement with the same payload. */
me_call_t *me_coord_read_calls(req_t *r, int method, const uint8_t *payload, size_t len) {
    int n = me_coord_read_groups(r);
    me_call_t *calls = calloc((size_t)n, sizeof *calls);
    if (!calls) return NULL;
    for (int g = 0; g < n; g++)
        calls[g] = (me_call_t){ .group = g, .replica = -1, .method = method, .payload = payload, .len = len };
    uint64_t retries = 0;
    me_fanout_run(FANOUT(r), calls, n, me_coord_fanout_deadline(r), &retries);
    atomic_fetch_add(&COORD(r)->retries, retries);
    return calls;
}

/* The first answer that is a request error (not an availability problem):
 * every group would say the same, so it is the reply. */
int me_coord_first_request_error(req_t *r, me_call_t *calls, int n) {
    for (int i = 0; i < n; i++)
        if (calls[i].answered && calls[i].reply.status != ME_CODE_OK && !me_fanout_retryable(calls[i].reply.status))
            return me_reply_error(r->reply, calls[i].reply.status, "%s", calls[i].reply.message);
    return 0;
}

int me_coord_group_ok(const me_call_t *c) { return c->answered && c->reply.status == ME_CODE_OK; }

/* Why reads went unanswered: DEADLINE_EXCEEDED when a replica was asked but
 * the request's time ran out (or the replica said so), UNAVAILABLE when no
 * live replica could be asked. */
int me_coord_down_status(const me_call_t *calls, int n) {
    for (int i = 0; i < n; i++)
        if (!me_coord_group_ok(&calls[i]) && (calls[i].timed_out || (calls[i].answered &&
                                                            calls[i].reply.status == ME_CODE_DEADLINE_EXCEEDED)))
            return ME_CODE_DEADLINE_EXCEEDED;
    return ME_CODE_UNAVAILABLE;
}

static const me_method_t handlers[] = {
    { METAEMBED__METHOD__METHOD_CREATE_COLLECTION, me_coord_ddl },
    { METAEMBED__METHOD__METHOD_DROP_COLLECTION, me_coord_ddl },
    { METAEMBED__METHOD__METHOD_LIST_COLLECTIONS, me_coord_list },
    { METAEMBED__METHOD__METHOD_UPSERT, me_coord_upsert },
    { METAEMBED__METHOD__METHOD_DELETE, me_coord_delete },
    { METAEMBED__METHOD__METHOD_GET, me_coord_get },
    { METAEMBED__METHOD__METHOD_SEARCH, me_coord_search },
    { METAEMBED__METHOD__METHOD_ENCODE, me_coord_encode },
    { METAEMBED__METHOD__METHOD_STATS, me_coord_stats },
    { METAEMBED__METHOD__METHOD_HEALTH, me_coord_health },
    { METAEMBED__METHOD__METHOD_LIST_IDS, me_coord_list_ids },
    { METAEMBED__METHOD__METHOD_COUNT, me_coord_count },
    { METAEMBED__METHOD__METHOD_INDEX_FIELDS, me_coord_ddl },
    { METAEMBED__METHOD__METHOD_SNAPSHOT, me_coord_snapshot },
    { METAEMBED__METHOD__METHOD_RESHARD, me_coord_reshard },
};

/* A request is routed with the placement in force when it starts. A shard
 * that holds a newer one refuses it (ABORTED) and its reply carries the
 * newer one, which the fan-out adopts: the request is then run again,
 * routed anew (writes are idempotent: versions). */
#define PLACEMENT_RETRIES 3

void me_coord_handle(me_coord_t *co, me_fanout_t *f, const uint8_t *frame, size_t len,
                     uint64_t *request_id, me_reply_t *reply) {
    for (int attempt = 0;; attempt++) {
        uint64_t placement = atomic_load(&co->cluster.placement);
        me_fanout_set_placement(f, placement);
        me_dispatch(handlers, sizeof handlers / sizeof handlers[0], co, f, frame, len, co->opts.max_message,
                    co->opts.default_deadline_ms, &co->requests, &co->errors, &co->metrics, request_id, reply);
        if (reply->status != ME_CODE_ABORTED || attempt == PLACEMENT_RETRIES ||
            atomic_load(&co->cluster.placement) == placement)
            return;
        atomic_fetch_add(&co->placement_retries, 1);
        me_reply_clear(reply);
    }
}

/* The OK answers a write needs per group: the write quorum (0 = all). */
int me_coord_write_need(const req_t *r, int g) {
    const me_cluster_t *cl = &COORD(r)->cluster;
    int need = COORD(r)->opts.write_quorum > 0 ? (int)COORD(r)->opts.write_quorum : cl->groups[g].n_replicas;
    return need > cl->groups[g].n_replicas ? cl->groups[g].n_replicas : need;
}

me_call_t *me_coord_write_calls(req_t *r, uint8_t *const *payload, const size_t *len, const int *used, int *ncalls) {
    me_cluster_t *cl = &COORD(r)->cluster;
    me_call_t *calls = calloc((size_t)cl->n_replicas, sizeof *calls);
    int *need = calloc((size_t)cl->n_groups, sizeof *need);
    if (!calls || !need) { free(calls); free(need); return NULL; }
    /* payload, len and used cover the groups the placement spans. */
    int n = 0, span = me_coord_span_groups(r);
    for (int g = 0; g < span; g++) need[g] = used && !used[g] ? 0 : me_coord_write_need(r, g);
    for (int rep = 0; rep < cl->n_replicas; rep++) {
        int g = cl->replicas[rep].group;
        if (g >= span) continue;  /* groups outside the placement (and encoders) store nothing */
        if (used && !used[g]) continue;
        calls[n++] = (me_call_t){ .group = g, .replica = rep, .method = r->method,
                                  .payload = payload ? payload[g] : r->payload->data,
                                  .len = payload ? len[g] : r->payload->len };
    }
    /* DDL waits for every replica: its reply says which ones missed it. */
    int ddl = r->method != METAEMBED__METHOD__METHOD_UPSERT && r->method != METAEMBED__METHOD__METHOD_DELETE;
    if (ddl) me_fanout_run(FANOUT(r), calls, n, me_coord_fanout_deadline(r), NULL);
    else me_fanout_run_quorum(FANOUT(r), calls, n, me_coord_fanout_deadline(r), need);
    free(need);
    *ncalls = n;
    return calls;
}
