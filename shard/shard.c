#include "shard/shard.h"
#include "shard/reshard.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/curve.h"
#include "common/error.h"
#include "common/server.h"
#include "common/log.h"
#include "shard/catalog.h"
#include "shard/indexer.h"

const char *const me_shard_stage_names[ME_SHARD_STAGES] = { "filter", "coarse", "refine", "rerank", "lexical",
                                                                    "fusion", "exact" };
const double me_shard_selectivity_bounds[ME_SHARD_SELECTIVITY_BUCKETS] = { 0.0001, 0.001, 0.01, 0.1, 0.5, 1.0 };

#define OPT(name, type, field, def, lo, hi, choices, help) \
    { name, type, offsetof(me_shard_opts_t, field), def, lo, hi, choices, help }

const me_cfg_opt_t me_shard_options[] = {
    OPT("listen", ME_CFG_STRING, listen, "tcp://127.0.0.1:7600", 0, 0, NULL,
        "ZeroMQ endpoint to bind (ROUTER), e.g. tcp://0.0.0.0:7600"),
    OPT("data-dir", ME_CFG_STRING, data_dir, "./metaembed-data/shard", 0, 0, NULL,
        "RocksDB directory (created if missing)"),
    ME_CFG_LOG_LEVEL_OPTION(me_shard_opts_t),
    OPT("threads", ME_CFG_INT, threads, "2", 1, 256, NULL, "request worker threads"),
    OPT("sync", ME_CFG_BOOL, sync, "false", 0, 1, NULL,
        "fsync the WAL on every write (survives power loss, not just kill -9)"),
    ME_CFG_MAX_MESSAGE_OPTION(me_shard_opts_t, "64M"),
    OPT("max-batch", ME_CFG_INT, max_batch, "4096", 1, 1000000, NULL,
        "most documents or ids in one Upsert/Delete/Get"),
    ME_CFG_MAX_K_OPTION(me_shard_opts_t),
    OPT("max-candidates", ME_CFG_INT, max_candidates, "1000000", 1, 100000000, NULL,
        "largest stage-1 candidate count a search may ask for"),
    ME_CFG_DEADLINE_OPTION(me_shard_opts_t, "30000"),
    ME_CFG_MAX_QUEUE_OPTION(me_shard_opts_t),
    OPT("restore-snapshot", ME_CFG_STRING, restore_snapshot, "", 0, 0, NULL,
        "at start, make snapshot ID (in DATA-DIR.snapshots) the data directory; the current one is kept as "
        "DATA-DIR.before-ID-TIME"),
    OPT("export-snapshot", ME_CFG_STRING, export_snapshot, "", 0, 0, NULL,
        "write snapshot ID (of DATA-DIR) to the --archive file (tar, with a CRC-32 of every file), then exit; "
        "the shard need not be running"),
    OPT("archive", ME_CFG_STRING, archive, "", 0, 0, NULL, "with --export-snapshot: the archive to write"),
    OPT("import-snapshot", ME_CFG_STRING, import_snapshot, "", 0, 0, NULL,
        "check every byte of this archive (from --export-snapshot) and add its snapshot to DATA-DIR.snapshots, "
        "then exit (a damaged archive is refused, nothing kept); restore it with --restore-snapshot"),
    OPT("max-collections", ME_CFG_INT, max_collections, "10000", 1, 1000000, NULL,
        "most collections this shard holds; a create beyond it is refused (RESOURCE_EXHAUSTED)"),
    OPT("block-cache", ME_CFG_SIZE, block_cache, "256M", 1 << 20, 1LL << 40, NULL,
        "RocksDB block cache for vectors read from disk"),
    OPT("slowdown", ME_CFG_INT, slowdown, "1", 1, 100000, NULL,
        "do each search stage's scoring N times: the latency of a machine N times slower, for tests and "
        "load experiments (answers are unchanged)"),
    ME_METRICS_CFG_OPTIONS(me_shard_opts_t, "127.0.0.1:9100"),
    ME_CURVE_CFG_OPTIONS(me_shard_opts_t),
    { NULL, 0, 0, NULL, 0, 0, NULL, NULL },
};

/* s starts zeroed with its metrics initialised (the endpoint may already
 * be reading them). */
int me_shard_open(me_shard_t *s, const me_shard_opts_t *opts, char *err, size_t errcap) {
    s->opts = *opts;
    s->start_ms = me_now_ms();
    pthread_rwlock_init(&s->lock, NULL);
    me_storage_opts_t so = { .sync = opts->sync, .block_cache = opts->block_cache };
    s->storage = me_storage_open(opts->data_dir, &so, err, errcap);
    if (!s->storage) return ME_EIO;
    uint64_t t0 = me_now_ms();
    int rc = me_catalog_load(s, err, errcap);
    if (rc == 0) rc = me_reshard_load(s, err, errcap);
    if (rc) {
        me_shard_close(s);
        return rc;
    }
    size_t docs = 0;
    for (size_t i = 0; i < s->ncolls; i++) docs += s->colls[i]->n;
    me_info("loaded %zu collections, %zu documents from %s in %llu ms", s->ncolls, docs,
            opts->data_dir, (unsigned long long)(me_now_ms() - t0));
    atomic_store(&s->documents, docs);
    if (me_indexer_start(s) != 0) {
        snprintf(err, errcap, "cannot start the indexer thread");
        me_shard_close(s);
        return ME_ENOMEM;
    }
    atomic_store(&s->ready, 1);
    return 0;
}

int me_shard_ready(void *shard, char *why, size_t cap) {
    me_shard_t *s = shard;
    if (atomic_load(&s->ready)) return 1;
    snprintf(why, cap, "not ready: opening storage and loading collections");
    return 0;
}

/* The IVF coarse indexes (collections with coarse_index ivf), one family
 * per figure. Caller holds s->lock (read). */
static void render_coarse_index(me_shard_t *s, me_buf_t *out) {
    static const char *const names[4] = { "metaembed_coarse_index_lists", "metaembed_coarse_index_bytes",
                                          "metaembed_coarse_index_building", "metaembed_coarse_index_builds_total" };
    static const char *const types[4] = { "gauge", "gauge", "gauge", "counter" };
    static const char *const helps[4] = {
        "Lists of the IVF coarse index searches use (0: not built yet, the flat scan answers).",
        "RAM the IVF coarse index adds (centroids, list entries, slot maps).",
        "1 while an IVF coarse index is being trained or filled in the background.",
        "IVF coarse indexes completed (the first, and rebuilds as the collection grows)." };
    for (int f = 0; f < 4; f++) {
        me_metric_head(out, names[f], types[f], helps[f]);
        for (size_t i = 0; i < s->ncolls; i++) {
            me_coll_t *c = s->colls[i];
            if (c->cfg.coarse_index != 1) continue;
            pthread_rwlock_rdlock(&c->lock);
            uint64_t v = f == 0   ? (uint64_t)(c->ivf ? c->ivf->nlist : 0)
                         : f == 1 ? (c->ivf ? me_ivf_bytes(c->ivf, c->n) : 0)
                         : f == 2 ? (uint64_t)(c->ivf_next != NULL)
                                  : c->ivf_builds;
            pthread_rwlock_unlock(&c->lock);
            me_buf_printf(out, "%s{collection=\"%s\"} %llu\n", names[f], c->cfg.name, (unsigned long long)v);
        }
    }
}

void me_shard_render_metrics(void *shard, me_buf_t *out) {
    me_shard_t *s = shard;
    me_server_render_metrics(out);
    if (!atomic_load(&s->ready)) return;
    pthread_rwlock_rdlock(&s->lock);
    me_metric_head(out, "metaembed_collection_documents", "gauge", "Documents per collection.");
    for (size_t i = 0; i < s->ncolls; i++)
        me_buf_printf(out, "metaembed_collection_documents{collection=\"%s\"} %zu\n", s->colls[i]->cfg.name, s->colls[i]->n);
    me_metric_head(out, "metaembed_collection_ram_bytes", "gauge", "Vector bytes held in RAM per collection.");
    for (size_t i = 0; i < s->ncolls; i++)
        me_buf_printf(out, "metaembed_collection_ram_bytes{collection=\"%s\"} %llu\n", s->colls[i]->cfg.name,
                      (unsigned long long)me_coll_ram_bytes(s->colls[i]));
    me_metric_head(out, "metaembed_collection_field_bytes", "gauge",
                   "RAM held by the indexed payload fields' columns and dictionaries per collection.");
    for (size_t i = 0; i < s->ncolls; i++) {
        /* Under the collection's read lock: it walks the keyword arrays a writer may free. */
        pthread_rwlock_rdlock(&s->colls[i]->lock);
        uint64_t fb = me_fields_ram_bytes(s->colls[i]->fields);
        pthread_rwlock_unlock(&s->colls[i]->lock);
        me_buf_printf(out, "metaembed_collection_field_bytes{collection=\"%s\"} %llu\n", s->colls[i]->cfg.name,
                      (unsigned long long)fb);
    }
    render_coarse_index(s, out);
    me_metric_head(out, "metaembed_collection_index_bytes", "gauge", "Stored vector bytes per collection.");
    for (size_t i = 0; i < s->ncolls; i++)
        me_buf_printf(out, "metaembed_collection_index_bytes{collection=\"%s\"} %llu\n", s->colls[i]->cfg.name,
                      (unsigned long long)me_coll_index_bytes(s->colls[i]));
    pthread_rwlock_unlock(&s->lock);
    char labels[64];
    me_budget_hist_render(&s->search_by_budget, "shard", "in the shard", out);
    me_metric_head(out, "metaembed_search_stage_seconds", "histogram", "Time per search stage.");
    for (int i = 0; i < ME_SHARD_STAGES; i++) {
        snprintf(labels, sizeof labels, "stage=\"%s\"", me_shard_stage_names[i]);
        me_hist_render(&s->search_by_stage[i], "metaembed_search_stage_seconds", labels, out);
    }
    static const char *const modes[3] = { "dense", "lexical", "hybrid" };
    me_metric_head(out, "metaembed_searches_total", "counter", "Searches answered, by mode and whether a filter applied.");
    for (int m = 0; m < 3; m++)
        for (int f = 0; f < 2; f++)
            me_buf_printf(out, "metaembed_searches_total{mode=\"%s\",filtered=\"%s\"} %llu\n", modes[m],
                          f ? "true" : "false", (unsigned long long)atomic_load(&s->searches[m][f]));
    me_metric_head(out, "metaembed_filter_selectivity", "histogram",
                   "Filtered searches by the fraction of the collection's documents the filter matched.");
    uint64_t cum = 0, nsel = 0;
    for (int b = 0; b <= ME_SHARD_SELECTIVITY_BUCKETS; b++) nsel += atomic_load(&s->selectivity[b]);
    for (int b = 0; b <= ME_SHARD_SELECTIVITY_BUCKETS; b++) {
        cum += atomic_load(&s->selectivity[b]);
        if (b < ME_SHARD_SELECTIVITY_BUCKETS)
            me_buf_printf(out, "metaembed_filter_selectivity_bucket{le=\"%g\"} %llu\n", me_shard_selectivity_bounds[b],
                          (unsigned long long)cum);
        else
            me_buf_printf(out, "metaembed_filter_selectivity_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    }
    me_buf_printf(out, "metaembed_filter_selectivity_sum %.6f\n", (double)atomic_load(&s->selectivity_sum_ppm) / 1e6);
    me_buf_printf(out, "metaembed_filter_selectivity_count %llu\n", (unsigned long long)nsel);
    me_metric_u64(out, "metaembed_placement_epoch", "gauge",
                  "Epoch of the cluster placement this shard holds (0: none; docs/cluster.md, Resharding).",
                  (unsigned long long)(atomic_load(&s->placement) >> 32));
    me_metric_u64(out, "metaembed_placement_refused_total", "counter",
                  "Requests refused because a coordinator routed them with an outdated placement.",
                  (unsigned long long)atomic_load(&s->placement_refused));
    me_metric_u64(out, "metaembed_reshard_purged_total", "counter",
                  "Documents and tombstones removed because this shard's group no longer owns them after a move.",
                  (unsigned long long)atomic_load(&s->purged));
    me_metric_u64(out, "metaembed_search_degraded_total", "counter",
                  "Anytime searches answered by an earlier stage's ranking because the deadline would pass.",
                  (unsigned long long)atomic_load(&s->degraded));
    uint64_t gsyncs, gwrites;
    me_storage_sync_stats(s->storage, &gsyncs, &gwrites);
    me_metric_u64(out, "metaembed_group_commit_fsyncs_total", "counter",
                  "WAL fsyncs made for collections with durability group.", (unsigned long long)gsyncs);
    me_metric_u64(out, "metaembed_group_commit_writes_total", "counter",
                  "Writes to collections with durability group (fsyncs_total / writes_total: fsyncs per write).",
                  (unsigned long long)gwrites);
    me_metric_u64(out, "metaembed_rocksdb_live_bytes", "gauge", "RocksDB SST and memtable bytes.",
                  (unsigned long long)me_storage_disk_bytes(s->storage));
    me_metric_u64(out, "metaembed_rocksdb_memtable_bytes", "gauge",
                  "RocksDB memtables (writes not yet flushed to SST files; in RAM, up to the write buffer size per "
                  "column family).",
                  (unsigned long long)me_storage_property(s->storage, "rocksdb.cur-size-all-mem-tables"));
    me_metric_u64(out, "metaembed_rocksdb_pending_compaction_bytes", "gauge", "Estimated bytes awaiting compaction.",
                  (unsigned long long)me_storage_property(s->storage, "rocksdb.estimate-pending-compaction-bytes"));
    uint64_t hits, misses;
    me_storage_cache_stats(s->storage, &hits, &misses);
    me_metric_u64(out, "metaembed_rocksdb_block_cache_hits_total", "counter",
                  "Block cache lookups that hit (vectors read from disk for a rerank, documents' metadata).",
                  (unsigned long long)hits);
    me_metric_u64(out, "metaembed_rocksdb_block_cache_misses_total", "counter",
                  "Block cache lookups that went to disk.", (unsigned long long)misses);
}

void me_shard_close(me_shard_t *s) {
    me_indexer_stop(s);
    for (size_t i = 0; i < s->ncolls; i++) me_coll_free(s->colls[i]);
    free(s->colls);
    s->colls = NULL;
    s->ncolls = 0;
    me_storage_close(s->storage);
    s->storage = NULL;
    pthread_rwlock_destroy(&s->lock);
}
