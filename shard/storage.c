#include "shard/storage.h"

#include <pthread.h>
#include <rocksdb/c.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "common/wire.h"

static const char *cf_names[ME_CF_COUNT + 1] = { "meta", "head", "tail", "doc", "lex", "fld", "ver", "default" };

struct me_storage {
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_options_t *cf_opts[ME_CF_COUNT + 1];
    rocksdb_block_based_table_options_t *table;
    rocksdb_cache_t *cache;
    rocksdb_column_family_handle_t *cf[ME_CF_COUNT + 1];
    rocksdb_writeoptions_t *wopts, *wopts_nosync, *wopts_sync;
    /* Group commit: writers wait for an fsync of the WAL that began after
     * their write; one of them (the leader) does it for all. */
    pthread_mutex_t gc_lock;
    pthread_cond_t gc_cond;
    uint64_t gc_requested, gc_done, gc_syncs, gc_writes;
    int gc_leader, gc_error;
    rocksdb_readoptions_t *ropts;
    /* RocksDB formats every ticker and histogram to report one: read them
     * at most once a second, however many scrapers ask. */
    pthread_mutex_t stats_lock;
    uint64_t stats_at_ms, cache_hits, cache_misses;
};

struct me_wbatch {
    rocksdb_writebatch_t *wb;
    me_storage_t *s;  /* the batch names column families of this database */
};

struct me_iter {
    rocksdb_iterator_t *it;
    rocksdb_readoptions_t *ropts;
    char *upper;
    int started;
};

static void take_err(char *rerr, char *err, size_t errcap, const char *what) {
    if (err && errcap) snprintf(err, errcap, "%s: %s", what, rerr);
    rocksdb_free(rerr);
}

me_storage_t *me_storage_open(const char *dir, const me_storage_opts_t *o, char *err, size_t errcap) {
    me_storage_t *s = calloc(1, sizeof *s);
    if (!s) { snprintf(err, errcap, "out of memory"); return NULL; }
    pthread_mutex_init(&s->stats_lock, NULL);
    s->opts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(s->opts, 1);
    rocksdb_options_set_create_missing_column_families(s->opts, 1);
    rocksdb_options_increase_parallelism(s->opts, 2);
    rocksdb_options_set_max_background_jobs(s->opts, 2);
    /* Tickers for /metrics (block cache hits and misses); RocksDB's own
     * measure of the cost is a few percent at this level. */
    rocksdb_options_enable_statistics(s->opts);

    s->cache = rocksdb_cache_create_lru(o->block_cache > 0 ? (size_t)o->block_cache : (64u << 20));
    s->table = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_block_cache(s->table, s->cache);
    rocksdb_block_based_options_set_block_size(s->table, 16 * 1024);

    for (int i = 0; i <= ME_CF_COUNT; i++) {
        s->cf_opts[i] = rocksdb_options_create_copy(s->opts);
        rocksdb_options_set_block_based_table_factory(s->cf_opts[i], s->table);
        /* Vectors are high-entropy floats: compression costs CPU, saves little. */
        if (i == ME_CF_HEAD || i == ME_CF_TAIL)
            rocksdb_options_set_compression(s->cf_opts[i], rocksdb_no_compression);
        if (i == ME_CF_HEAD || i == ME_CF_TAIL)
            rocksdb_options_set_write_buffer_size(s->cf_opts[i], 64u << 20);
    }
    char *rerr = NULL;
    s->db = rocksdb_open_column_families(s->opts, dir, ME_CF_COUNT + 1, cf_names,
                                         (const rocksdb_options_t *const *)s->cf_opts, s->cf, &rerr);
    if (rerr) {
        take_err(rerr, err, errcap, "cannot open RocksDB");
        me_storage_close(s);
        return NULL;
    }
    s->wopts = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(s->wopts, o->sync ? 1 : 0);
    rocksdb_writeoptions_disable_WAL(s->wopts, 0);
    s->wopts_nosync = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(s->wopts_nosync, 0);
    s->wopts_sync = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(s->wopts_sync, 1);
    pthread_mutex_init(&s->gc_lock, NULL);
    pthread_cond_init(&s->gc_cond, NULL);
    s->ropts = rocksdb_readoptions_create();
    return s;
}

void me_storage_close(me_storage_t *s) {
    if (!s) return;
    if (s->db) {
        rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
        rocksdb_flushoptions_set_wait(fo, 1);
        for (int i = 0; i < ME_CF_COUNT; i++) {
            char *rerr = NULL;
            rocksdb_flush_cf(s->db, fo, s->cf[i], &rerr);
            if (rerr) rocksdb_free(rerr);
        }
        rocksdb_flushoptions_destroy(fo);
        for (int i = 0; i <= ME_CF_COUNT; i++)
            if (s->cf[i]) rocksdb_column_family_handle_destroy(s->cf[i]);
        rocksdb_close(s->db);
    }
    if (s->wopts) rocksdb_writeoptions_destroy(s->wopts);
    if (s->wopts_nosync) rocksdb_writeoptions_destroy(s->wopts_nosync);
    if (s->wopts_sync) rocksdb_writeoptions_destroy(s->wopts_sync);
    if (s->ropts) rocksdb_readoptions_destroy(s->ropts);
    for (int i = 0; i <= ME_CF_COUNT; i++)
        if (s->cf_opts[i]) rocksdb_options_destroy(s->cf_opts[i]);
    if (s->table) rocksdb_block_based_options_destroy(s->table);
    if (s->cache) rocksdb_cache_destroy(s->cache);
    if (s->opts) rocksdb_options_destroy(s->opts);
    free(s);
}

me_wbatch_t *me_wbatch_new(me_storage_t *s) {
    me_wbatch_t *b = malloc(sizeof *b);
    if (!b) return NULL;
    b->wb = rocksdb_writebatch_create();
    b->s = s;
    return b;
}

void me_wbatch_free(me_wbatch_t *b) {
    if (!b) return;
    rocksdb_writebatch_destroy(b->wb);
    free(b);
}

void me_wbatch_put(me_wbatch_t *b, me_cf_t cf, const void *key, size_t klen, const void *val, size_t vlen) {
    rocksdb_writebatch_put_cf(b->wb, b->s->cf[cf], key, klen, val, vlen);
}

void me_wbatch_delete(me_wbatch_t *b, me_cf_t cf, const void *key, size_t klen) {
    rocksdb_writebatch_delete_cf(b->wb, b->s->cf[cf], key, klen);
}

void me_wbatch_delete_range(me_wbatch_t *b, me_cf_t cf, const void *start, size_t slen,
                            const void *end, size_t elen) {
    rocksdb_writebatch_delete_range_cf(b->wb, b->s->cf[cf], start, slen, end, elen);
}

int me_storage_write(me_storage_t *s, me_wbatch_t *b, char *err, size_t errcap) {
    char *rerr = NULL;
    rocksdb_write(s->db, s->wopts, b->wb, &rerr);
    if (rerr) { take_err(rerr, err, errcap, "RocksDB write failed"); return ME_EIO; }
    return 0;
}

int me_storage_group_sync(me_storage_t *s, char *err, size_t errcap) {
    pthread_mutex_lock(&s->gc_lock);
    uint64_t want = ++s->gc_requested;
    s->gc_writes++;
    int rc = 0;
    while (s->gc_done < want && rc == 0) {
        if (s->gc_leader) { pthread_cond_wait(&s->gc_cond, &s->gc_lock); continue; }
        /* Lead: one fsync for every writer that asked so far. */
        s->gc_leader = 1;
        uint64_t upto = s->gc_requested;
        pthread_mutex_unlock(&s->gc_lock);
        char *rerr = NULL;
        rocksdb_flush_wal(s->db, 1, &rerr);
        pthread_mutex_lock(&s->gc_lock);
        s->gc_leader = 0;
        s->gc_syncs++;
        if (rerr) {
            take_err(rerr, err, errcap, "fsync of the WAL failed");
            rc = ME_EIO;
        } else s->gc_done = upto;
        pthread_cond_broadcast(&s->gc_cond);
    }
    pthread_mutex_unlock(&s->gc_lock);
    return rc;
}

int me_storage_write_durable(me_storage_t *s, me_wbatch_t *b, int durability, char *err, size_t errcap) {
    rocksdb_writeoptions_t *wo = durability == ME_DURABLE_NONE || durability == ME_DURABLE_GROUP ? s->wopts_nosync
                                 : durability == ME_DURABLE_EVERY                              ? s->wopts_sync
                                                                                               : s->wopts;
    char *rerr = NULL;
    rocksdb_write(s->db, wo, b->wb, &rerr);
    if (rerr) { take_err(rerr, err, errcap, "RocksDB write failed"); return ME_EIO; }
    return 0;
}

void me_storage_sync_stats(me_storage_t *s, uint64_t *group_syncs, uint64_t *group_writes) {
    pthread_mutex_lock(&s->gc_lock);
    *group_syncs = s->gc_syncs;
    *group_writes = s->gc_writes;
    pthread_mutex_unlock(&s->gc_lock);
}

int me_storage_get(me_storage_t *s, me_cf_t cf, const void *key, size_t klen, char **val, size_t *vlen) {
    char *rerr = NULL;
    *val = rocksdb_get_cf(s->db, s->ropts, s->cf[cf], key, klen, vlen, &rerr);
    if (rerr) { rocksdb_free(rerr); return ME_EIO; }
    return *val ? 0 : ME_ENOTFOUND;
}

int me_storage_multi_get(me_storage_t *s, me_cf_t cf, size_t n, const char *const *keys,
                         const size_t *klens, char **vals, size_t *vlens) {
    if (n == 0) return 0;
    const rocksdb_column_family_handle_t **cfs = malloc(n * sizeof *cfs);
    char **errs = calloc(n, sizeof *errs);
    if (!cfs || !errs) { free(cfs); free(errs); return ME_ENOMEM; }
    for (size_t i = 0; i < n; i++) cfs[i] = s->cf[cf];
    rocksdb_multi_get_cf(s->db, s->ropts, cfs, n, keys, klens, vals, vlens, errs);
    int rc = 0;
    for (size_t i = 0; i < n; i++)
        if (errs[i]) { rocksdb_free(errs[i]); rc = ME_EIO; }
    free(cfs);
    free(errs);
    return rc;
}

void me_storage_free(void *p) { if (p) rocksdb_free(p); }

me_iter_t *me_storage_iter(me_storage_t *s, me_cf_t cf, const void *prefix, size_t plen) {
    return me_storage_iter_from(s, cf, prefix, plen, prefix, plen);
}

me_iter_t *me_storage_iter_from(me_storage_t *s, me_cf_t cf, const void *prefix, size_t plen, const void *from,
                                size_t flen) {
    me_iter_t *it = calloc(1, sizeof *it);
    if (!it) return NULL;
    it->ropts = rocksdb_readoptions_create();
    /* Upper bound = prefix with its last byte incremented (carrying). */
    it->upper = malloc(plen ? plen : 1);
    size_t ulen = plen;
    memcpy(it->upper, prefix, plen);
    while (ulen > 0 && (unsigned char)it->upper[ulen - 1] == 0xff) ulen--;
    if (ulen > 0) {
        it->upper[ulen - 1]++;
        rocksdb_readoptions_set_iterate_upper_bound(it->ropts, it->upper, ulen);
    }
    rocksdb_readoptions_set_fill_cache(it->ropts, 0);
    it->it = rocksdb_create_iterator_cf(s->db, it->ropts, s->cf[cf]);
    rocksdb_iter_seek(it->it, from, flen);
    return it;
}

int me_iter_next(me_iter_t *it, const char **key, size_t *klen, const char **val, size_t *vlen) {
    if (it->started) rocksdb_iter_next(it->it);
    it->started = 1;
    if (!rocksdb_iter_valid(it->it)) return 0;
    *key = rocksdb_iter_key(it->it, klen);
    *val = rocksdb_iter_value(it->it, vlen);
    return 1;
}

void me_iter_free(me_iter_t *it) {
    if (!it) return;
    rocksdb_iter_destroy(it->it);
    rocksdb_readoptions_destroy(it->ropts);
    free(it->upper);
    free(it);
}

uint64_t me_storage_disk_bytes(me_storage_t *s) {
    uint64_t total = 0;
    for (int i = 0; i < ME_CF_COUNT; i++) {
        uint64_t v = 0;
        if (rocksdb_property_int_cf(s->db, s->cf[i], "rocksdb.total-sst-files-size", &v) == 0) total += v;
        if (rocksdb_property_int_cf(s->db, s->cf[i], "rocksdb.cur-size-all-mem-tables", &v) == 0) total += v;
    }
    return total;
}

/* Reads "NAME COUNT : N" from RocksDB's statistics dump. */
static uint64_t ticker(const char *dump, const char *name) {
    size_t len = strlen(name);
    for (const char *p = dump; (p = strstr(p, name)) != NULL; p += len) {
        unsigned long long v;
        if ((p == dump || p[-1] == '\n') && sscanf(p + len, " COUNT : %llu", &v) == 1) return v;
    }
    return 0;
}

void me_storage_cache_stats(me_storage_t *s, uint64_t *hits, uint64_t *misses) {
    pthread_mutex_lock(&s->stats_lock);
    uint64_t now = me_now_ms();
    if (!s->stats_at_ms || now - s->stats_at_ms >= 1000) {
        char *dump = rocksdb_options_statistics_get_string(s->opts);
        if (dump) {
            s->cache_hits = ticker(dump, "rocksdb.block.cache.hit");
            s->cache_misses = ticker(dump, "rocksdb.block.cache.miss");
        }
        rocksdb_free(dump);
        s->stats_at_ms = now;
    }
    *hits = s->cache_hits;
    *misses = s->cache_misses;
    pthread_mutex_unlock(&s->stats_lock);
}

uint64_t me_storage_property(me_storage_t *s, const char *name) {
    uint64_t total = 0;
    for (int i = 0; i < ME_CF_COUNT; i++) {
        uint64_t v = 0;
        if (rocksdb_property_int_cf(s->db, s->cf[i], name, &v) == 0) total += v;
    }
    return total;
}

int me_storage_checkpoint(me_storage_t *s, const char *dir, char *err, size_t errcap) {
    char *rerr = NULL;
    rocksdb_checkpoint_t *cp = rocksdb_checkpoint_object_create(s->db, &rerr);
    if (rerr) {
        take_err(rerr, err, errcap, "cannot start a checkpoint");
        return ME_EIO;
    }
    /* log_size_for_flush 0: flush first, so the copy needs no WAL replay. */
    rocksdb_checkpoint_create(cp, dir, 0, &rerr);
    rocksdb_checkpoint_object_destroy(cp);
    if (rerr) {
        take_err(rerr, err, errcap, "cannot write the checkpoint");
        return ME_EIO;
    }
    return 0;
}
