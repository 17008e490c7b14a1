/* The coordinator's cache of collection configs, so a write checks its
 * documents against the collection's shape without asking every group for
 * the whole collection list each time (25 ms an upsert at 10,000
 * collections). An entry lives ME_CONFIG_CACHE_TTL_MS and is dropped at
 * once by DDL through this coordinator; DDL through another coordinator
 * is seen within the TTL (the shards check every document themselves, so
 * a stale entry can only refuse a write late, never store a bad one).
 * Missing collections are not cached. Thread-safe. */
#ifndef ME_CONFIG_CACHE_H
#define ME_CONFIG_CACHE_H

#include <pthread.h>
#include <stdint.h>

#include "common/wire.h"

#define ME_CONFIG_CACHE_TTL_MS 1000
#define ME_CONFIG_CACHE_BUCKETS 256

typedef struct me_cached_config {
    struct me_cached_config *next;
    Metaembed__CollectionConfig *cfg;  /* unpacked copy, owned */
    uint64_t at_ms;
} me_cached_config_t;

typedef struct {
    pthread_mutex_t lock;
    me_cached_config_t *bucket[ME_CONFIG_CACHE_BUCKETS];
} me_config_cache_t;

void me_config_cache_init(me_config_cache_t *c);
void me_config_cache_free(me_config_cache_t *c);
/* Calls fn(ctx, cfg) with the cached config of name under the cache's
 * lock and returns 1, or 0 when none is fresh. */
int me_config_cache_with(me_config_cache_t *c, const char *name,
                         void (*fn)(void *ctx, const Metaembed__CollectionConfig *cfg), void *ctx);
void me_config_cache_put(me_config_cache_t *c, const Metaembed__CollectionConfig *cfg);
void me_config_cache_drop(me_config_cache_t *c, const char *name);

#endif
