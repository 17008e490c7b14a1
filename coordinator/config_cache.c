#include "coordinator/config_cache.h"

#include <stdlib.h>
#include <string.h>

#include "common/hash.h"

static unsigned slot(const char *name) { return (unsigned)(me_hash64(name, strlen(name)) % ME_CONFIG_CACHE_BUCKETS); }

void me_config_cache_init(me_config_cache_t *c) {
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->lock, NULL);
}

static void entry_free(me_cached_config_t *e) {
    metaembed__collection_config__free_unpacked(e->cfg, NULL);
    free(e);
}

void me_config_cache_free(me_config_cache_t *c) {
    for (int b = 0; b < ME_CONFIG_CACHE_BUCKETS; b++)
        for (me_cached_config_t *e = c->bucket[b], *n; e; e = n) {
            n = e->next;
            entry_free(e);
        }
    pthread_mutex_destroy(&c->lock);
}

/* Unlinks and frees name's entry; caller holds the lock. */
static void unlink_name(me_config_cache_t *c, const char *name) {
    for (me_cached_config_t **p = &c->bucket[slot(name)]; *p; p = &(*p)->next)
        if (strcmp((*p)->cfg->name, name) == 0) {
            me_cached_config_t *e = *p;
            *p = e->next;
            entry_free(e);
            return;
        }
}

int me_config_cache_with(me_config_cache_t *c, const char *name,
                         void (*fn)(void *ctx, const Metaembed__CollectionConfig *cfg), void *ctx) {
    uint64_t now = me_now_ms();
    int found = 0;
    pthread_mutex_lock(&c->lock);
    for (me_cached_config_t *e = c->bucket[slot(name)]; e; e = e->next)
        if (strcmp(e->cfg->name, name) == 0) {
            if (now - e->at_ms < ME_CONFIG_CACHE_TTL_MS) {
                fn(ctx, e->cfg);
                found = 1;
            } else unlink_name(c, name);
            break;
        }
    pthread_mutex_unlock(&c->lock);
    return found;
}

void me_config_cache_put(me_config_cache_t *c, const Metaembed__CollectionConfig *cfg) {
    if (!cfg->name) return;
    size_t len;
    uint8_t *buf = me_wire_pack(&cfg->base, &len);
    Metaembed__CollectionConfig *copy = buf ? metaembed__collection_config__unpack(NULL, len, buf) : NULL;
    free(buf);
    me_cached_config_t *e = copy ? malloc(sizeof *e) : NULL;
    if (!e) {
        if (copy) metaembed__collection_config__free_unpacked(copy, NULL);
        return;  /* no memory: simply not cached */
    }
    e->cfg = copy;
    e->at_ms = me_now_ms();
    pthread_mutex_lock(&c->lock);
    unlink_name(c, cfg->name);
    unsigned b = slot(cfg->name);
    e->next = c->bucket[b];
    c->bucket[b] = e;
    pthread_mutex_unlock(&c->lock);
}

void me_config_cache_drop(me_config_cache_t *c, const char *name) {
    if (!name) return;
    pthread_mutex_lock(&c->lock);
    unlink_name(c, name);
    pthread_mutex_unlock(&c->lock);
}
