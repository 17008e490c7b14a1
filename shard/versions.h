/* Each id's write version in a collection (common/sync.h): a record in
 * the VER column family (8-byte version, then 1 for a tombstone), written
 * in the same batch as the document, and the collection's anti-entropy
 * digests in RAM, updated once a batch is durable. A write applies to an
 * id only when its version is above the stored one, a delete included, so
 * replicas that see the same writes in any order converge. */
#ifndef ME_SHARD_VERSIONS_H
#define ME_SHARD_VERSIONS_H

#include <stddef.h>
#include <stdint.h>

#include "shard/collection.h"
#include "shard/storage.h"

typedef struct {
    uint64_t version;  /* 0: the id was never versioned here */
    int deleted;       /* a tombstone */
} me_ver_t;

/* The stored version of id (zeroes when none); 0 or ME_EIO/ME_ECORRUPT. */
int me_versions_get(me_storage_t *st, const me_coll_t *c, const char *id, me_ver_t *out);
/* The stored versions of n ids in one round trip. */
int me_versions_get_many(me_storage_t *st, const me_coll_t *c, char *const *ids, size_t n, me_ver_t *out);
/* Adds id's new version record to the batch. */
void me_versions_put(me_wbatch_t *b, const me_coll_t *c, const char *id, me_ver_t v);
/* Adds the removal of id's version record to the batch (no tombstone:
 * for ids that live on in another group after a move). */
void me_versions_delete(me_wbatch_t *b, const me_coll_t *c, const char *id);
/* Once the batch is durable: the digest of id's bucket moves from old to
 * new (call with the write lock held). */
int me_versions_digest_update(me_coll_t *c, const char *id, me_ver_t old, me_ver_t now);
/* At start-up: the digests from the stored records. */
int me_versions_load(me_storage_t *st, me_coll_t *c, char *err, size_t errcap);

/* Calls fn for every stored version whose id falls in a bucket with
 * want[bucket] set (ME_SYNC_BUCKETS flags); fn returning non-zero stops
 * and is returned. */
typedef int (*me_versions_fn)(void *ctx, const char *id, size_t idlen, me_ver_t v);
int me_versions_scan(me_storage_t *st, const me_coll_t *c, const uint8_t *want, me_versions_fn fn, void *ctx);



/* Marks in earlier[i] each id that appears again later in ids[0..n) (the
 * last of equal ids is the one a batch applies); 0 or ME_ENOMEM. */
int me_versions_mark_earlier(char *const *ids, size_t n, uint8_t *earlier);

#endif
