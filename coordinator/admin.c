/* Collections, stats and health through the coordinator, and what its
 * HTTP endpoint shows: readiness and metrics. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "common/sync.h"
#include "coordinator/handlers.h"
#include "coordinator/reshard.h"

/* Create/Drop go to every replica. A replica that already has (create) or
 * already lacks (drop) the collection counts as done, so a DDL that failed
 * half-way can simply be repeated. */
/* IndexFields' reply: a replica's config, and the documents indexed
 * summed over groups (the most any replica of a group reports). */
static int index_fields_reply(req_t *r, me_call_t *calls, int ncalls, int ok_idx) {
    int ng = me_coord_span_groups(r);
    uint64_t total = 0;
    for (int g = 0; g < ng; g++) {
        uint64_t best = 0;
        for (int i = 0; i < ncalls; i++) {
            if (calls[i].group != g || !me_coord_group_ok(&calls[i])) continue;
            Metaembed__IndexFieldsReply *x =
                metaembed__index_fields_reply__unpack(NULL, calls[i].reply.payload_len, calls[i].reply.payload);
            if (x && x->indexed > best) best = x->indexed;
            if (x) metaembed__index_fields_reply__free_unpacked(x, NULL);
        }
        total += best;
    }
    Metaembed__IndexFieldsReply *rep =
        metaembed__index_fields_reply__unpack(NULL, calls[ok_idx].reply.payload_len, calls[ok_idx].reply.payload);
    if (!rep) return me_reply_error(r->reply, ME_CODE_INTERNAL, "malformed IndexFields reply from a shard");
    rep->indexed = total;
    int rc = me_reply_ok(r->reply, &rep->base);
    metaembed__index_fields_reply__free_unpacked(rep, NULL);
    return rc;
}

int me_coord_ddl(req_t *r) {
    int ncalls = 0, rc, ng = me_coord_span_groups(r);
    /* A create or drop carries the coordinator's version, so replicas
     * that missed it converge on the newest (coordinator/repair.c). */
    uint8_t *packed = NULL, **payloads = calloc((size_t)ng, sizeof *payloads);
    size_t plen = 0, *lens = calloc((size_t)ng, sizeof *lens);
    if (!payloads || !lens) { free(payloads); free(lens); return OOM(r); }
    /* The cached config of the name goes, whatever the outcome. */
    if (r->method == METAEMBED__METHOD__METHOD_CREATE_COLLECTION) {
        Metaembed__CreateCollectionRequest *m = (void *)r->msg;
        if (m->config) {
            m->config->version = me_version_next();
            me_config_cache_drop(&COORD(r)->configs, m->config->name);
        }
        packed = me_wire_pack(r->msg, &plen);
    } else if (r->method == METAEMBED__METHOD__METHOD_DROP_COLLECTION) {
        Metaembed__DropCollectionRequest *m = (void *)r->msg;
        m->version = me_version_next();
        me_config_cache_drop(&COORD(r)->configs, m->name);
        packed = me_wire_pack(r->msg, &plen);
    } else {
        me_config_cache_drop(&COORD(r)->configs, ((Metaembed__IndexFieldsRequest *)(void *)r->msg)->collection);
        packed = me_wire_pack(r->msg, &plen);
    }
    for (int g = 0; g < ng; g++) { payloads[g] = packed; lens[g] = plen; }
    me_call_t *calls = packed ? me_coord_write_calls(r, payloads, lens, NULL, &ncalls) : NULL;
    free(payloads);
    free(lens);
    if (!calls) { free(packed); return OOM(r); }
    /* A replica that has it already (create) or has it gone (drop) is done;
     * IndexFields is idempotent on the shards, so any refusal is real. */
    int benign = r->method == METAEMBED__METHOD__METHOD_CREATE_COLLECTION ? ME_CODE_ALREADY_EXISTS
                 : r->method == METAEMBED__METHOD__METHOD_DROP_COLLECTION   ? ME_CODE_NOT_FOUND
                                                                            : -1;
    int done = 0, fresh = 0, ok_idx = -1;
    char down[512] = "";
    rc = 0;
    for (int i = 0; i < ncalls; i++) {
        if (me_coord_group_ok(&calls[i])) { done++; fresh++; ok_idx = i; }
        else if (calls[i].answered && calls[i].reply.status == benign) done++;
        else if (calls[i].answered && !me_fanout_retryable(calls[i].reply.status)) {
            rc = me_reply_error(r->reply, calls[i].reply.status, "%s", calls[i].reply.message);
            break;
        } else
            snprintf(down + strlen(down), sizeof down - strlen(down), "%s%s", down[0] ? ", " : "",
                     COORD(r)->cluster.replicas[calls[i].replica].endpoint);
    }
    if (rc == 0) {
        if (done < ncalls)
            rc = me_reply_error(r->reply, ME_CODE_UNAVAILABLE,
                                "applied on %d of %d replicas; unreachable: %s. Repeat the request when they are back",
                                done, ncalls, down);
        else if (fresh == 0)
            rc = me_reply_error(r->reply, calls[0].reply.status, "%s", calls[0].reply.message);
        else if (r->method == METAEMBED__METHOD__METHOD_INDEX_FIELDS)
            rc = index_fields_reply(r, calls, ncalls, ok_idx);
        else {
            r->reply->status = ME_CODE_OK;
            r->reply->payload = calls[ok_idx].reply.payload;  /* take the shard's reply as ours */
            r->reply->payload_len = calls[ok_idx].reply.payload_len;
            calls[ok_idx].reply.payload = NULL;
        }
    }
    me_calls_clear(calls, ncalls);
    free(calls);
    free(packed);
    /* And again after: a write that read the old config meanwhile must not
     * have cached it. */
    if (r->method == METAEMBED__METHOD__METHOD_DROP_COLLECTION)
        me_config_cache_drop(&COORD(r)->configs, ((Metaembed__DropCollectionRequest *)(void *)r->msg)->name);
    else if (r->method == METAEMBED__METHOD__METHOD_CREATE_COLLECTION &&
             ((Metaembed__CreateCollectionRequest *)(void *)r->msg)->config)
        me_config_cache_drop(&COORD(r)->configs, ((Metaembed__CreateCollectionRequest *)(void *)r->msg)->config->name);
    else if (r->method == METAEMBED__METHOD__METHOD_INDEX_FIELDS)
        me_config_cache_drop(&COORD(r)->configs, ((Metaembed__IndexFieldsRequest *)(void *)r->msg)->collection);
    return rc;
}

static int cmp_info_name(const void *a, const void *b) {
    const Metaembed__CollectionInfo *x = *(Metaembed__CollectionInfo *const *)a, *y = *(Metaembed__CollectionInfo *const *)b;
    return strcmp(x->config->name, y->config->name);
}

/* Sums per-collection figures over groups (one replica each). */
static int h_list_or_stats(req_t *r, int stats) {
    me_coord_t *co = COORD(r);
    int ng = me_coord_read_groups(r), rc = 0;
    Metaembed__ListCollectionsRequest lreq = METAEMBED__LIST_COLLECTIONS_REQUEST__INIT;
    uint8_t buf[8];
    size_t len = metaembed__list_collections_request__pack(&lreq, buf);
    me_call_t *calls = me_coord_read_calls(r, METAEMBED__METHOD__METHOD_LIST_COLLECTIONS, buf, len);
    if (!calls) return OOM(r);
    Metaembed__ListCollectionsReply **parts = calloc((size_t)ng, sizeof *parts);
    Metaembed__CollectionInfo *infos = NULL, **iptrs = NULL, **all = NULL;
    size_t ninfo = 0, cap = 0;
    Metaembed__GroupStatus *gs = NULL, **gptrs = NULL;
    Metaembed__ReplicaStatus *rs = NULL, **rptrs = NULL;
    Metaembed__StatsRequest *sreq = NULL;
    if (!parts) { rc = OOM(r); goto out; }
    if (stats) {
        sreq = (void *)r->msg;
    }
    for (int g = 0; g < ng; g++) {
        if (me_coord_group_ok(&calls[g]))
            parts[g] = metaembed__list_collections_reply__unpack(NULL, calls[g].reply.payload_len, calls[g].reply.payload);
        if (parts[g]) cap += parts[g]->n_collections;
    }
    infos = calloc(cap ? cap : 1, sizeof *infos);
    iptrs = calloc(cap ? cap : 1, sizeof *iptrs);
    all = calloc(cap ? cap : 1, sizeof *all);
    if (!infos || !iptrs || !all) { rc = OOM(r); goto out; }
    /* Every group's collections sorted by name, then each name's figures
     * summed: O(n log n) in collections (a pairwise merge took 466 ms at
     * 10,000). The answer lists them by name. */
    size_t nall = 0;
    for (int g = 0; g < ng; g++) {
        if (!parts[g]) continue;
        for (size_t i = 0; i < parts[g]->n_collections; i++) {
            Metaembed__CollectionInfo *ci = parts[g]->collections[i];
            if (!ci->config) continue;
            if (sreq && sreq->collection[0] && strcmp(sreq->collection, ci->config->name) != 0) continue;
            all[nall++] = ci;
        }
    }
    if (nall) qsort(all, nall, sizeof *all, cmp_info_name);
    for (size_t i = 0; i < nall; i++) {
        Metaembed__CollectionInfo *ci = all[i];
        if (!ninfo || strcmp(infos[ninfo - 1].config->name, ci->config->name) != 0) {
            metaembed__collection_info__init(&infos[ninfo]);
            infos[ninfo].config = ci->config;
            iptrs[ninfo] = &infos[ninfo];
            ninfo++;
        }
        infos[ninfo - 1].documents += ci->documents;
        infos[ninfo - 1].ram_bytes += ci->ram_bytes;
        infos[ninfo - 1].index_bytes += ci->index_bytes;
    }
    if (!stats) {
        Metaembed__ListCollectionsReply rep = METAEMBED__LIST_COLLECTIONS_REPLY__INIT;
        rep.collections = iptrs;
        rep.n_collections = ninfo;
        rc = me_reply_ok(r->reply, &rep.base);
        goto out;
    }
    if (sreq->collection[0] && ninfo == 0) {
        rc = me_reply_error(r->reply, ME_CODE_NOT_FOUND, ME_NO_COLLECTION ME_NO_COLLECTION_HINT, sreq->collection);
        goto out;
    }
    me_cluster_t *cl = &co->cluster;
    /* Every group of the map, standby ones too; the encoders show as one more. */
    int ngs = cl->n_groups + (cl->encoder_group >= 0);
    gs = calloc((size_t)ngs, sizeof *gs);
    gptrs = calloc((size_t)ngs, sizeof *gptrs);
    rs = calloc((size_t)cl->n_replicas, sizeof *rs);
    rptrs = calloc((size_t)cl->n_replicas, sizeof *rptrs);
    if (!gs || !gptrs || !rs || !rptrs) { rc = OOM(r); goto out; }
    for (int rep = 0; rep < cl->n_replicas; rep++) {
        metaembed__replica_status__init(&rs[rep]);
        rs[rep].endpoint = cl->replicas[rep].endpoint;
        rs[rep].up = atomic_load(&cl->replicas[rep].up);
        rs[rep].documents = atomic_load(&cl->replicas[rep].documents);
        rs[rep].latency_ms = atomic_load(&cl->replicas[rep].latency_us) / 1000.0;
        rs[rep].liveness = (uint32_t)atomic_load(&cl->replicas[rep].liveness);
        rptrs[rep] = &rs[rep];
    }
    for (int g = 0; g < ngs; g++) {
        metaembed__group_status__init(&gs[g]);
        gs[g].name = cl->groups[g].name;
        gs[g].replicas = rptrs + cl->groups[g].first_replica;
        gs[g].n_replicas = (size_t)cl->groups[g].n_replicas;
        gptrs[g] = &gs[g];
    }
    Metaembed__StatsReply rep = METAEMBED__STATS_REPLY__INIT;
    rep.collections = iptrs;
    rep.n_collections = ninfo;
    rep.uptime_ms = me_now_ms() - co->start_ms;
    rep.requests = atomic_load(&co->requests);
    rep.errors = atomic_load(&co->errors);
    rep.groups = gptrs;
    rep.n_groups = (size_t)ngs;
    rep.role = "coordinator";
    rc = me_reply_ok(r->reply, &rep.base);
out:
    if (parts)
        for (int g = 0; g < ng; g++)
            if (parts[g]) metaembed__list_collections_reply__free_unpacked(parts[g], NULL);
    me_calls_clear(calls, ng);
    free(calls);
    free(parts);
    free(infos);
    free(iptrs);
    free(all);
    free(gs);
    free(gptrs);
    free(rs);
    free(rptrs);
    return rc;
}

int me_coord_list(req_t *r) { return h_list_or_stats(r, 0); }
int me_coord_stats(req_t *r) { return h_list_or_stats(r, 1); }

int me_coord_health(req_t *r) { return me_reply_health(r, "coordinator", COORD(r)->start_ms, 0); }

int me_coord_ready(void *ctx, char *why, size_t cap) {
    me_coord_t *co = ctx;
    me_cluster_t *cl = &co->cluster;
    int placed = me_placement_span(me_cluster_placement(cl));
    for (int g = 0; g < placed; g++) {
        int up = 0;
        for (int r = 0; r < cl->groups[g].n_replicas; r++) up |= atomic_load(&cl->replicas[cl->groups[g].first_replica + r].up);
        if (!up) {
            snprintf(why, cap, "not ready: no live replica in group %s", cl->groups[g].name);
            return 0;
        }
    }
    return 1;
}

void me_coord_render_metrics(void *ctx, me_buf_t *out) {
    me_coord_t *co = ctx;
    me_cluster_t *cl = &co->cluster;
    me_server_render_metrics(out);
    /* Per replica: {group, endpoint} labels, one family at a time. */
#define REPLICA_LABELS(r) cl->groups[cl->replicas[r].group].name, cl->replicas[r].endpoint
    me_metric_head(out, "metaembed_replica_up", "gauge", "1 when the replica answers heartbeats.");
    for (int r = 0; r < cl->n_replicas; r++)
        me_buf_printf(out, "metaembed_replica_up{group=\"%s\",endpoint=\"%s\"} %d\n", REPLICA_LABELS(r),
                      atomic_load(&cl->replicas[r].up));
    me_metric_head(out, "metaembed_replica_documents", "gauge", "Documents a replica reported at its last heartbeat.");
    for (int r = 0; r < cl->n_replicas; r++)
        me_buf_printf(out, "metaembed_replica_documents{group=\"%s\",endpoint=\"%s\"} %llu\n", REPLICA_LABELS(r),
                      (unsigned long long)atomic_load(&cl->replicas[r].documents));
    me_metric_head(out, "metaembed_replica_heartbeat_seconds", "gauge", "Last heartbeat round trip.");
    for (int r = 0; r < cl->n_replicas; r++)
        me_buf_printf(out, "metaembed_replica_heartbeat_seconds{group=\"%s\",endpoint=\"%s\"} %.6f\n",
                      REPLICA_LABELS(r), (double)atomic_load(&cl->replicas[r].latency_us) / 1e6);
    me_metric_head(out, "metaembed_replica_stale", "gauge",
                   "1 while the replica may be missing writes (reads go to its siblings until repaired).");
    for (int r = 0; r < cl->n_replicas; r++)
        me_buf_printf(out, "metaembed_replica_stale{group=\"%s\",endpoint=\"%s\"} %d\n", REPLICA_LABELS(r),
                      atomic_load(&cl->replicas[r].stale));
#undef REPLICA_LABELS
    me_metric_u64(out, "metaembed_repair_passes_total", "counter", "Anti-entropy passes over the shard groups.",
                  (unsigned long long)atomic_load(&co->repair_passes));
    me_metric_u64(out, "metaembed_repaired_documents_total", "counter",
                  "Document versions (upserts or tombstones) copied to replicas that lacked them.",
                  (unsigned long long)atomic_load(&co->repaired_documents));
    me_metric_u64(out, "metaembed_repaired_collections_total", "counter",
                  "Collection creates, drops and field indexes applied to replicas that lacked them.",
                  (unsigned long long)atomic_load(&co->repaired_collections));
    me_metric_u64(out, "metaembed_retries_total", "counter", "Calls retried on another replica.",
                  (unsigned long long)atomic_load(&co->retries));
    me_metric_u64(out, "metaembed_partial_replies_total", "counter", "Searches answered without every group.",
                  (unsigned long long)atomic_load(&co->partial_replies));
    /* Placement and the move this coordinator drives (docs/cluster.md, "Resharding"). */
    me_reshard_status_t rs;
    me_reshard_status(co, &rs);
    me_metric_u64(out, "metaembed_placement_epoch", "gauge", "Version of the placement in force here.",
                  (unsigned long long)rs.placement.epoch);
    me_metric_u64(out, "metaembed_placement_read_groups", "gauge", "Shard groups reads are placed by.",
                  (unsigned long long)me_placement_read_groups(rs.placement));
    me_metric_u64(out, "metaembed_placement_phase", "gauge",
                  "Phase of the placement: 0 stable, 1 copy, 2 switched, 3 clean.",
                  (unsigned long long)rs.placement.phase);
    me_metric_u64(out, "metaembed_placement_retries_total", "counter",
                  "Requests run again because a shard held a newer placement.",
                  (unsigned long long)atomic_load(&co->placement_retries));
    me_metric_u64(out, "metaembed_reshard_running", "gauge", "1 while this coordinator drives a move.",
                  (unsigned long long)rs.running);
    me_metric_u64(out, "metaembed_reshard_moved_documents", "gauge", "Documents copied by the last or current move.",
                  (unsigned long long)rs.moved);
    me_metric_u64(out, "metaembed_reshard_estimate_documents", "gauge",
                  "Documents the last or current move copies (estimate).", (unsigned long long)rs.estimate);
    me_metric_u64(out, "metaembed_reshard_purged_documents", "gauge",
                  "Documents the last or current move removed from groups that no longer own them.",
                  (unsigned long long)rs.purged);
    me_metric_head(out, "metaembed_reshard_progress_ratio", "gauge", "Part of the move's copy done, 0 to 1.");
    me_buf_printf(out, "metaembed_reshard_progress_ratio %.6f\n", rs.progress);
    me_metric_head(out, "metaembed_reshard_eta_seconds", "gauge", "Estimated time left in the move's copy (0: none).");
    me_buf_printf(out, "metaembed_reshard_eta_seconds %.3f\n", (double)rs.eta_ms / 1000.0);
    me_budget_hist_render(&co->search_by_budget, "coordinator", "through the coordinator (encoding a text query included)", out);
    me_autobudget_t *ab = &co->autobudget;
    me_metric_head(out, "metaembed_auto_budget_chosen_total", "counter",
                   "Searches with a latency target (budget auto), by the budget chosen.");
    for (int l = 0; l < ME_BUDGET_LADDER_N; l++)
        me_buf_printf(out, "metaembed_auto_budget_chosen_total{budget=\"%dx%d\"} %llu\n", me_budget_ladder[l].r_q,
                      me_budget_ladder[l].r_c, (unsigned long long)atomic_load(&ab->chosen[l]));
    me_metric_u64(out, "metaembed_auto_budget_below_ceiling_total", "counter",
                  "Auto searches served below their requested ceiling budget.",
                  (unsigned long long)atomic_load(&ab->below_ceiling));
    me_metric_u64(out, "metaembed_auto_budget_degraded_total", "counter",
                  "Auto searches a shard answered with an earlier stage's ranking (anytime).",
                  (unsigned long long)atomic_load(&ab->degraded));
    me_metric_head(out, "metaembed_auto_budget_target_total", "counter", "Auto searches within and over their target.");
    me_buf_printf(out, "metaembed_auto_budget_target_total{result=\"within\"} %llu\n",
                  (unsigned long long)atomic_load(&ab->within_target));
    me_buf_printf(out, "metaembed_auto_budget_target_total{result=\"over\"} %llu\n",
                  (unsigned long long)atomic_load(&ab->over_target));
    me_metric_head(out, "metaembed_auto_budget_latency_seconds", "histogram",
                   "Auto searches: the latency predicted for the budget chosen, and the latency observed.");
    me_hist_render(&co->auto_predicted, "metaembed_auto_budget_latency_seconds", "kind=\"predicted\"", out);
    me_hist_render(&co->auto_observed, "metaembed_auto_budget_latency_seconds", "kind=\"observed\"", out);
}
