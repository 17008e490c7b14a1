/* The shard's catalog of collections: create, drop, look up, and load
 * everything back from storage at start-up. Collection configs live in the
 * meta column family as (name → 4-byte id + packed CollectionConfig). */
#ifndef ME_CATALOG_H
#define ME_CATALOG_H

#include <stddef.h>

#include "shard/shard.h"

/* Loads configs and rebuilds every collection's RAM arrays from the head
 * column family. Caller: single-threaded start-up. */
int me_catalog_load(me_shard_t *s, char *err, size_t errcap);
/* Caller holds s->lock for writing. */
int me_catalog_create(me_shard_t *s, const me_coll_config_t *cfg, char *err, size_t errcap);
int me_catalog_drop(me_shard_t *s, const char *name, char *err, size_t errcap);
/* Caller holds s->lock (read or write). NULL when absent. */
me_coll_t *me_catalog_find(me_shard_t *s, const char *name);

#include "common/wire.h"
/* Proto ↔ config. The proto form borrows cfg->name. */
void me_config_from_proto(me_coll_config_t *cfg, const Metaembed__CollectionConfig *pc);
void me_config_to_proto(Metaembed__CollectionConfig *pc, const me_coll_config_t *cfg);

#endif
