#include "shard/catalog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "common/sync.h"
#include "shard/record.h"
#include "shard/versions.h"

void me_config_from_proto(me_coll_config_t *cfg, const Metaembed__CollectionConfig *pc) {
    memset(cfg, 0, sizeof *cfg);
    /* A name too long to hold stays empty, so it fails the check instead of
     * being cut to a shorter, different name. */
    if (pc->name && strlen(pc->name) < sizeof cfg->name) snprintf(cfg->name, sizeof cfg->name, "%s", pc->name);
    /* Clamp before the int conversion so huge values still fail the range check. */
#define CLAMP(v) ((v) > 1000000u ? 1000000 : (int)(v))
    cfg->dim = CLAMP(pc->dim);
    cfg->max_doc_vectors = CLAMP(pc->max_doc_vectors);
    cfg->max_query_vectors = CLAMP(pc->max_query_vectors);
    cfg->dtype = (me_dtype_t)pc->dtype;
    cfg->ram_vectors = CLAMP(pc->ram_vectors);
    cfg->coarse_vectors = CLAMP(pc->coarse_vectors);
    cfg->ivf_lists = CLAMP(pc->ivf_lists);
    cfg->ivf_probe = CLAMP(pc->ivf_probe);
#undef CLAMP
    cfg->version = pc->version;
    cfg->durability = (int)pc->durability;
    cfg->coarse_index = (int)pc->coarse_index;
    cfg->binary_coarse = pc->binary_coarse;
    me_field_specs_from_proto(cfg->fields, &cfg->nfields, pc->fields, pc->n_fields);
}

Metaembed__CollectionConfig *me_config_to_proto(me_config_proto_t *out, const me_coll_config_t *cfg) {
    Metaembed__CollectionConfig *pc = &out->pc;
    metaembed__collection_config__init(pc);
    pc->name = (char *)cfg->name;
    pc->dim = (uint32_t)cfg->dim;
    pc->max_doc_vectors = (uint32_t)cfg->max_doc_vectors;
    pc->max_query_vectors = (uint32_t)cfg->max_query_vectors;
    pc->dtype = (Metaembed__DType)cfg->dtype;
    pc->ram_vectors = (uint32_t)cfg->ram_vectors;
    pc->coarse_vectors = (uint32_t)cfg->coarse_vectors;
    pc->version = cfg->version;
    pc->durability = (Metaembed__Durability)cfg->durability;
    pc->coarse_index = (Metaembed__CoarseIndex)cfg->coarse_index;
    pc->ivf_lists = (uint32_t)cfg->ivf_lists;
    pc->ivf_probe = (uint32_t)cfg->ivf_probe;
    pc->binary_coarse = cfg->binary_coarse != 0;
    int nf = cfg->nfields > ME_FIELDS_MAX ? ME_FIELDS_MAX : cfg->nfields;
    me_field_specs_to_proto(cfg->fields, nf, out->fs, out->fsp);
    pc->fields = out->fsp;
    pc->n_fields = (size_t)nf;
    return pc;
}

me_coll_t *me_catalog_find(me_shard_t *s, const char *name) {
    for (size_t i = 0; i < s->ncolls; i++)
        if (strcmp(s->colls[i]->cfg.name, name) == 0) return s->colls[i];
    return NULL;
}

static int add_coll(me_shard_t *s, me_coll_t *c) {
    me_coll_t **nc = realloc(s->colls, (s->ncolls + 1) * sizeof *nc);
    if (!nc) return ME_ENOMEM;
    s->colls = nc;
    s->colls[s->ncolls++] = c;
    if (c->id >= s->next_coll_id) s->next_coll_id = c->id + 1;
    return 0;
}

/* Meta keys of drop tombstones start with this (never in a collection name). */
#define TOMB_PREFIX '!'

static void id_prefix(char out[4], uint32_t id) {
    me_doc_key(out, id, "", 0);
}

/* Rebuilds one collection's RAM arrays from its head records. */
static int load_docs(me_shard_t *s, me_coll_t *c, char *err, size_t errcap) {
    char prefix[4];
    id_prefix(prefix, c->id);
    me_iter_t *it = me_storage_iter(s->storage, ME_CF_HEAD, prefix, 4);
    if (!it) return ME_ENOMEM;
    const char *k, *v;
    size_t kl, vl;
    size_t rb = me_coll_row_bytes(c);
    int ram = c->cfg.ram_vectors;
    /* Aligned copies: iterator values carry no alignment guarantee. */
    uint8_t *rows = malloc((size_t)ram * rb);
    float *scales = malloc((size_t)ram * sizeof *scales);
    int rc = rows && scales ? 0 : ME_ENOMEM;
    while (rc == 0 && me_iter_next(it, &k, &kl, &v, &vl)) {
        int total, nrows;
        const float *sc;
        const void *data;
        if (kl <= 4 || kl > 4 + ME_DOC_ID_MAX ||
            me_record_parse((const uint8_t *)v, vl, c->cfg.dtype, c->cfg.dim, &total, &nrows, &sc, &data) != 0 ||
            nrows > ram) {
            snprintf(err, errcap, "collection %s: corrupt head record (key length %zu)", c->cfg.name, kl);
            rc = ME_ECORRUPT;
            break;
        }
        memcpy(rows, data, (size_t)nrows * rb);
        if (sc) memcpy(scales, sc, nrows * sizeof(float));
        if (me_coll_put(c, k + 4, kl - 4, total, rows, scales) < 0) rc = ME_ENOMEM;
    }
    free(rows);
    free(scales);
    me_iter_free(it);
    return rc;
}

/* Documents without a lex record (stored before the BM25 index existed):
 * their terms from the metadata's "text", into RAM and, in one batch, into
 * storage, so the next start-up reads them like any other. */
static int backfill_terms(me_shard_t *s, me_coll_t *c, const uint8_t *seen, char *err, size_t errcap) {
    me_wbatch_t *b = me_wbatch_new(s->storage);
    if (!b) return ME_ENOMEM;
    size_t filled = 0;
    int rc = 0;
    for (size_t slot = 0; rc == 0 && slot < c->n; slot++) {
        if (seen[slot]) continue;
        char *meta = NULL;
        size_t mlen = 0;
        uint8_t *bag = NULL;
        size_t blen = 0;
        int e = me_record_metadata(s->storage, c, c->ids[slot], &meta, &mlen);
        if (e != 0 && e != ME_ENOTFOUND) rc = e;
        if (rc == 0 && e == 0) rc = me_record_text_bag(meta, mlen, &bag, &blen);
        if (rc == 0) rc = me_coll_set_terms(c, slot, bag, blen);
        if (rc == 0) me_record_put_terms(b, c, c->ids[slot], bag, blen);
        me_storage_free(meta);
        free(bag);
        filled++;
    }
    if (rc == 0 && filled) rc = me_storage_write(s->storage, b, err, errcap);
    if (rc == 0 && filled)
        me_info("collection %s: lexical terms of %zu documents stored before the BM25 index filled in", c->cfg.name,
                filled);
    me_wbatch_free(b);
    return rc;
}

/* Reads one collection's records of family cf (lex: term bags, fld:
 * payload records) into RAM with set(), after the heads, so every document
 * already has its slot; seen (may be NULL) marks the slots that had one.
 * Written in the same batch as the head, so a record without a document,
 * or one that does not parse, is corruption. */
static int load_slot_records(me_shard_t *s, me_coll_t *c, me_cf_t cf, const char *what,
                             int (*set)(me_coll_t *, size_t, const uint8_t *, size_t), uint8_t *seen, char *err,
                             size_t errcap) {
    char prefix[4];
    id_prefix(prefix, c->id);
    me_iter_t *it = me_storage_iter(s->storage, cf, prefix, 4);
    if (!it) return ME_ENOMEM;
    const char *k, *v;
    size_t kl, vl;
    int rc = 0;
    while (rc == 0 && me_iter_next(it, &k, &kl, &v, &vl)) {
        long slot = kl > 4 ? me_coll_find(c, k + 4, kl - 4) : -1;
        if (slot >= 0 && seen) seen[slot] = 1;
        if (slot < 0 || (rc = set(c, (size_t)slot, (const uint8_t *)v, vl)) == ME_ECORRUPT) {
            snprintf(err, errcap, "collection %s: corrupt %s record (key length %zu)", c->cfg.name, what, kl);
            rc = ME_ECORRUPT;
        }
    }
    me_iter_free(it);
    return rc;
}

/* The BM25 index from the lex records, then the terms of documents stored
 * before it existed. */
static int load_terms(me_shard_t *s, me_coll_t *c, char *err, size_t errcap) {
    uint8_t *seen = calloc(c->n ? c->n : 1, 1);
    int rc = seen ? load_slot_records(s, c, ME_CF_LEX, "lex", me_coll_set_terms, seen, err, errcap) : ME_ENOMEM;
    if (rc == 0) rc = backfill_terms(s, c, seen, err, errcap);
    free(seen);
    return rc;
}

/* The meta record of a collection (4-byte id + packed config) into b. */
static int put_config(me_wbatch_t *b, uint32_t id, const me_coll_config_t *cfg) {
    me_config_proto_t cp;
    Metaembed__CollectionConfig *pc = me_config_to_proto(&cp, cfg);
    size_t len = metaembed__collection_config__get_packed_size(pc);
    uint8_t *val = malloc(4 + len);
    if (!val) return ME_ENOMEM;
    id_prefix((char *)val, id);
    metaembed__collection_config__pack(pc, val + 4);
    me_wbatch_put(b, ME_CF_META, cfg->name, strlen(cfg->name), val, 4 + len);
    free(val);
    return 0;
}

int me_catalog_index_fields(me_shard_t *s, me_coll_t *c, const me_field_spec_t *f, int n, uint64_t *indexed,
                            char *err, size_t errcap) {
    me_coll_config_t next = c->cfg;
    for (int i = 0; i < n; i++) next.fields[next.nfields++] = f[i];
    me_wbatch_t *b = me_wbatch_new(s->storage);
    uint8_t **recs = calloc(c->n ? c->n : 1, sizeof *recs);
    size_t *lens = calloc(c->n ? c->n : 1, sizeof *lens);
    int rc = b && recs && lens ? 0 : ME_ENOMEM;
    *indexed = 0;
    /* Every document's record over all fields, old and new, from its
     * stored metadata: the first one with a wrongly typed value stops it. */
    for (size_t slot = 0; rc == 0 && slot < c->n; slot++) {
        char *meta = NULL, sub[256];
        size_t mlen = 0;
        int e = me_record_metadata(s->storage, c, c->ids[slot], &meta, &mlen);
        if (e != 0 && e != ME_ENOTFOUND) rc = e;
        if (rc == 0 && e == 0 &&
            (rc = me_payload_record(next.fields, next.nfields, meta, mlen, &recs[slot], &lens[slot], sub, sizeof sub)) ==
                ME_EINVAL)
            snprintf(err, errcap, "document '%s': %s; fix or delete it, then index again", c->ids[slot], sub);
        me_storage_free(meta);
        if (rc == 0) me_record_put_fields(b, c, c->ids[slot], recs[slot], lens[slot]);
    }
    if (rc == 0) rc = put_config(b, c->id, &next);
    if (rc == 0) rc = me_storage_write(s->storage, b, err, errcap);
    /* Durable: the columns, then every slot's values. */
    if (rc == 0) rc = me_coll_add_fields(c, f, n);
    for (size_t slot = 0; rc == 0 && slot < c->n; slot++) {
        rc = me_coll_set_fields(c, slot, recs[slot], lens[slot]);
        me_payload_iter_t it;
        me_payload_value_t v;
        if (rc == 0 && me_payload_iter_init(&it, recs[slot], lens[slot]) == 0) {
            int has_new = 0;
            while (me_payload_next(&it, &v) == 1)
                if (me_field_find(f, n, v.name, v.name_len) >= 0) has_new = 1;
            *indexed += (uint64_t)has_new;
        }
    }
    if (recs)
        for (size_t slot = 0; slot < c->n; slot++) free(recs[slot]);
    free(recs);
    free(lens);
    me_wbatch_free(b);
    return rc;
}

int me_catalog_load(me_shard_t *s, char *err, size_t errcap) {
    me_iter_t *it = me_storage_iter(s->storage, ME_CF_META, "", 0);
    if (!it) return ME_ENOMEM;
    const char *k, *v;
    size_t kl, vl;
    int rc = 0;
    s->next_coll_id = 1;
    while (rc == 0 && me_iter_next(it, &k, &kl, &v, &vl)) {
        if (kl && k[0] == TOMB_PREFIX) continue;  /* a drop's tombstone */
        if (kl && k[0] == '#') continue;          /* the placement (shard/reshard.c) */
        Metaembed__CollectionConfig *pc = vl > 4 ?
            metaembed__collection_config__unpack(NULL, vl - 4, (const uint8_t *)v + 4) : NULL;
        if (!pc) {
            snprintf(err, errcap, "corrupt collection record '%.*s' in meta", (int)kl, k);
            rc = ME_ECORRUPT;
            break;
        }
        me_coll_config_t cfg;
        me_config_from_proto(&cfg, pc);
        metaembed__collection_config__free_unpacked(pc, NULL);
        char sub[256];
        if (me_coll_config_check(&cfg, sub, sizeof sub) != 0) {
            snprintf(err, errcap, "stored collection '%.*s' has a bad config: %s", (int)kl, k, sub);
            rc = ME_ECORRUPT;
            break;
        }
        const uint8_t *u = (const uint8_t *)v;
        uint32_t id = (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
        me_coll_t *c = me_coll_new(&cfg, id);
        if (!c) { rc = ME_ENOMEM; break; }
        if ((rc = add_coll(s, c)) != 0) { me_coll_free(c); break; }
    }
    me_iter_free(it);
    for (size_t i = 0; rc == 0 && i < s->ncolls; i++) {
        rc = load_docs(s, s->colls[i], err, errcap);
        if (rc == 0) rc = load_terms(s, s->colls[i], err, errcap);
        if (rc == 0) rc = load_slot_records(s, s->colls[i], ME_CF_FLD, "field", me_coll_set_fields, NULL, err, errcap);
        if (rc == 0) rc = me_versions_load(s->storage, s->colls[i], err, errcap);
    }
    return rc;
}

/* The drop tombstone of a name: 0 and its version (0 when none). */
static int tombstone(me_shard_t *s, const char *name, uint64_t *version) {
    char key[1 + ME_COLL_NAME_MAX + 1], *val = NULL;
    size_t vlen = 0;
    *version = 0;
    int klen = snprintf(key, sizeof key, "%c%s", TOMB_PREFIX, name);
    int rc = me_storage_get(s->storage, ME_CF_META, key, (size_t)klen, &val, &vlen);
    if (rc == ME_ENOTFOUND) return 0;
    if (rc == 0 && vlen == 8)
        for (int i = 0; i < 8; i++) *version |= (uint64_t)(uint8_t)val[i] << (8 * i);
    else if (rc == 0) rc = ME_ECORRUPT;
    me_storage_free(val);
    return rc;
}

int me_catalog_create(me_shard_t *s, const me_coll_config_t *cfg_in, char *err, size_t errcap) {
    if (me_catalog_find(s, cfg_in->name)) {
        snprintf(err, errcap, "collection '%s' already exists", cfg_in->name);
        return ME_EEXIST;
    }
    if (s->opts.max_collections > 0 && (long long)s->ncolls >= s->opts.max_collections) {
        snprintf(err, errcap, "this shard holds %zu collections, its limit (--max-collections); drop some first",
                 s->ncolls);
        return ME_ETOOBIG;
    }
    me_coll_config_t stamped = *cfg_in;
    const me_coll_config_t *cfg = &stamped;
    if (!stamped.version) stamped.version = me_version_next();
    uint64_t dropped_at;
    int trc = tombstone(s, cfg->name, &dropped_at);
    if (trc) return trc;
    if (dropped_at >= cfg->version) {
        snprintf(err, errcap, "collection '%s' was dropped after this create (version %llu >= %llu)", cfg->name,
                 (unsigned long long)dropped_at, (unsigned long long)cfg->version);
        return ME_ESTALE;
    }
    uint32_t id = s->next_coll_id;
    me_coll_t *c = me_coll_new(cfg, id);
    if (!c) return ME_ENOMEM;
    me_wbatch_t *b = me_wbatch_new(s->storage);
    int rc = b ? put_config(b, id, cfg) : ME_ENOMEM;
    if (rc == 0) rc = me_storage_write(s->storage, b, err, errcap);
    if (rc == 0) rc = add_coll(s, c);
    if (rc) me_coll_free(c);
    me_wbatch_free(b);
    return rc;
}

/* Writes the tombstone of a drop at `version` into b. */
static void put_tombstone(me_wbatch_t *b, const char *name, uint64_t version) {
    char key[1 + ME_COLL_NAME_MAX + 1];
    uint8_t val[8];
    int klen = snprintf(key, sizeof key, "%c%s", TOMB_PREFIX, name);
    for (int i = 0; i < 8; i++) val[i] = (uint8_t)(version >> (8 * i));
    me_wbatch_put(b, ME_CF_META, key, (size_t)klen, val, sizeof val);
}

int me_catalog_drop(me_shard_t *s, const char *name, uint64_t version, char *err, size_t errcap) {
    if (!version) version = me_version_next();
    size_t i;
    for (i = 0; i < s->ncolls; i++)
        if (strcmp(s->colls[i]->cfg.name, name) == 0) break;
    if (i == s->ncolls) {
        /* Remembered all the same: a create that comes late (a repair of
         * this replica) must not bring the collection back. */
        uint64_t at;
        me_wbatch_t *b = strlen(name) <= ME_COLL_NAME_MAX && tombstone(s, name, &at) == 0 && at < version
                             ? me_wbatch_new(s->storage) : NULL;
        if (b) {
            put_tombstone(b, name, version);
            char sub[64];
            me_storage_write(s->storage, b, sub, sizeof sub);
            me_wbatch_free(b);
        }
        snprintf(err, errcap, ME_NO_COLLECTION, name);
        return ME_ENOTFOUND;
    }
    me_coll_t *c = s->colls[i];
    if (c->cfg.version > version) {
        snprintf(err, errcap, "collection '%s' was created after this drop (version %llu > %llu)", name,
                 (unsigned long long)c->cfg.version, (unsigned long long)version);
        return ME_ESTALE;
    }
    char lo[4], hi[4];
    id_prefix(lo, c->id);
    id_prefix(hi, c->id + 1);
    me_wbatch_t *b = me_wbatch_new(s->storage);
    if (!b) return ME_ENOMEM;
    /* One atomic batch: the config, every record of the collection and
     * the tombstone. */
    me_wbatch_delete(b, ME_CF_META, name, strlen(name));
    put_tombstone(b, name, version);
    for (int cf = ME_CF_HEAD; cf < ME_CF_COUNT; cf++)
        me_wbatch_delete_range(b, (me_cf_t)cf, lo, 4, hi, 4);
    int rc = me_storage_write(s->storage, b, err, errcap);
    me_wbatch_free(b);
    if (rc) return rc;
    atomic_fetch_sub(&s->documents, c->n);
    me_coll_free(c);
    s->colls[i] = s->colls[--s->ncolls];
    return 0;
}

int me_catalog_dropped(me_shard_t *s, void (*fn)(void *ctx, const char *name, size_t len, uint64_t version), void *ctx) {
    char prefix[1] = { TOMB_PREFIX };
    me_iter_t *it = me_storage_iter(s->storage, ME_CF_META, prefix, 1);
    if (!it) return ME_ENOMEM;
    const char *k, *v;
    size_t kl, vl;
    while (me_iter_next(it, &k, &kl, &v, &vl)) {
        if (vl != 8 || kl < 2) continue;
        uint64_t version = 0;
        for (int i = 0; i < 8; i++) version |= (uint64_t)(uint8_t)v[i] << (8 * i);
        fn(ctx, k + 1, kl - 1, version);
    }
    me_iter_free(it);
    return 0;
}
