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
/* Caller holds s->lock for writing. A create or drop carries a version
 * (cfg->version; 0 = stamped here): a drop leaves a tombstone of its
 * version in meta (key "!" NAME), and neither applies over a newer one
 * (ME_ESTALE), so a late repair cannot bring back what was dropped. */
int me_catalog_create(me_shard_t *s, const me_coll_config_t *cfg, char *err, size_t errcap);
int me_catalog_drop(me_shard_t *s, const char *name, uint64_t version, char *err, size_t errcap);
/* The drop tombstones: fn(ctx, name, version) for each. */
int me_catalog_dropped(me_shard_t *s, void (*fn)(void *ctx, const char *name, size_t len, uint64_t version), void *ctx);
/* Caller holds s->lock (read or write). NULL when absent. */
me_coll_t *me_catalog_find(me_shard_t *s, const char *name);

/* Adds the indexed fields f[0..n) to collection c (they are checked and new
 * to it), indexing every document it holds from its stored metadata: the
 * payload records and the new config go in one write batch, then RAM.
 * Caller holds c->lock for writing. *indexed = documents with a value of a
 * new field. ME_EINVAL (nothing changed) when a document's metadata gives
 * a new field a value of another type; err names the document. */
int me_catalog_index_fields(me_shard_t *s, me_coll_t *c, const me_field_spec_t *f, int n, uint64_t *indexed,
                            char *err, size_t errcap);

#include "common/wire.h"
/* Proto ↔ config. The proto form (pc inside a me_config_proto_t) borrows
 * cfg's strings. */
typedef struct {
    Metaembed__CollectionConfig pc;
    Metaembed__FieldSpec fs[ME_FIELDS_MAX];
    Metaembed__FieldSpec *fsp[ME_FIELDS_MAX];
} me_config_proto_t;
void me_config_from_proto(me_coll_config_t *cfg, const Metaembed__CollectionConfig *pc);
Metaembed__CollectionConfig *me_config_to_proto(me_config_proto_t *out, const me_coll_config_t *cfg);

#endif
