/* Shard storage: one RocksDB database with a column family per kind of
 * record. The only module that includes rocksdb/c.h.
 *
 *   meta  collection name → collection id + config
 *   head  (coll id, doc id) → first ram_vectors vectors (the RAM copy is
 *         rebuilt from this family alone at start-up)
 *   tail  (coll id, doc id) → the remaining vectors, read on demand
 *   doc   (coll id, doc id) → opaque metadata
 *   lex   (coll id, doc id) → the term counts of the metadata's "text"
 *         (a me_bm25_bag; absent without text), rebuilt into the RAM
 *         BM25 index at start-up
 *   fld   (coll id, doc id) → the indexed payload fields' values (a
 *         payload record, common/payload.h; absent without values),
 *         read into the RAM field columns at start-up
 *
 * The WAL is always on; a write returns only once it is in the WAL, so an
 * acknowledged write survives kill -9. With sync on, it also survives power
 * loss (an fsync per write batch). */
#ifndef ME_STORAGE_H
#define ME_STORAGE_H

#include <stddef.h>
#include <stdint.h>

/* Column families. A document's records are HEAD..FLD (ME_CF_DOC_LAST);
 * VER holds each id's write version, and a delete's tombstone (kept when
 * the document's records go). */
typedef enum { ME_CF_META = 0, ME_CF_HEAD, ME_CF_TAIL, ME_CF_DOC, ME_CF_LEX, ME_CF_FLD, ME_CF_VER, ME_CF_COUNT } me_cf_t;
#define ME_CF_DOC_LAST ME_CF_FLD

typedef struct me_storage me_storage_t;
typedef struct me_wbatch me_wbatch_t;
typedef struct me_iter me_iter_t;

typedef struct {
    int sync;                  /* fsync every write batch */
    long long block_cache;     /* bytes */
} me_storage_opts_t;

me_storage_t *me_storage_open(const char *dir, const me_storage_opts_t *opts, char *err, size_t errcap);
/* Flushes memtables and closes. NULL is fine. */
void me_storage_close(me_storage_t *s);

/* A write batch for this database; applied atomically by me_storage_write. */
me_wbatch_t *me_wbatch_new(me_storage_t *s);
void me_wbatch_free(me_wbatch_t *b);
void me_wbatch_put(me_wbatch_t *b, me_cf_t cf, const void *key, size_t klen, const void *val, size_t vlen);
void me_wbatch_delete(me_wbatch_t *b, me_cf_t cf, const void *key, size_t klen);
/* Deletes keys in [start, end). */
void me_wbatch_delete_range(me_wbatch_t *b, me_cf_t cf, const void *start, size_t slen,
                            const void *end, size_t elen);
int me_storage_write(me_storage_t *s, me_wbatch_t *b, char *err, size_t errcap);
/* The same, durable as asked: ME_DURABLE_NONE (in the WAL, not fsynced),
 * ME_DURABLE_EVERY (fsynced by itself), ME_DURABLE_DEFAULT (the store's
 * own setting, --sync); ME_DURABLE_GROUP writes without an fsync: the
 * caller then calls me_storage_group_sync, after releasing its locks, so
 * writers waiting at the same time share one fsync (group commit). */
enum { ME_DURABLE_DEFAULT = 0, ME_DURABLE_NONE = 1, ME_DURABLE_GROUP = 2, ME_DURABLE_EVERY = 3 };
int me_storage_write_durable(me_storage_t *s, me_wbatch_t *b, int durability, char *err, size_t errcap);
/* fsyncs counted, for /metrics (group commits: how many writers shared). */
void me_storage_sync_stats(me_storage_t *s, uint64_t *group_syncs, uint64_t *group_writes);
/* Returns once an fsync of the WAL that began after the call is done (one
 * caller does it for everyone waiting). 0 or ME_EIO. */
int me_storage_group_sync(me_storage_t *s, char *err, size_t errcap);

/* *val is malloc'd (free with me_storage_free); ME_ENOTFOUND when absent. */
int me_storage_get(me_storage_t *s, me_cf_t cf, const void *key, size_t klen,
                   char **val, size_t *vlen);
/* One round trip for n keys; vals[i] NULL when absent. Returns ME_EIO if
 * any key failed to read (values read so far are still returned). */
int me_storage_multi_get(me_storage_t *s, me_cf_t cf, size_t n, const char *const *keys,
                         const size_t *klens, char **vals, size_t *vlens);
void me_storage_free(void *p);

/* Iterates keys starting with prefix, in key order. */
me_iter_t *me_storage_iter(me_storage_t *s, me_cf_t cf, const void *prefix, size_t plen);
/* The same from the first key >= from (which starts with prefix): a
 * scroll resumes at its cursor without reading the keys before it. */
me_iter_t *me_storage_iter_from(me_storage_t *s, me_cf_t cf, const void *prefix, size_t plen, const void *from,
                                size_t flen);
/* 1 and the current record, or 0 at the end. */
int me_iter_next(me_iter_t *it, const char **key, size_t *klen, const char **val, size_t *vlen);
void me_iter_free(me_iter_t *it);

/* An integer RocksDB property summed over all families (0 when unknown). */
uint64_t me_storage_property(me_storage_t *s, const char *name);
/* Block cache lookups that hit and missed since the database opened (as of
 * at most a second ago). */
void me_storage_cache_stats(me_storage_t *s, uint64_t *hits, uint64_t *misses);
/* Live SST + memtable bytes over all families. */
uint64_t me_storage_disk_bytes(me_storage_t *s);
/* A consistent point-in-time copy of the whole store in dir (which must
 * not exist): a RocksDB checkpoint, hard links to the immutable files
 * after a flush. 0 or ME_EIO with err. */
int me_storage_checkpoint(me_storage_t *s, const char *dir, char *err, size_t errcap);

#endif
