/* The shard's request handlers: one function per method, each validating
 * everything before touching state, so a bad request changes nothing. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/placement.h"
#include "common/sync.h"
#include "common/fusion.h"
#include "common/log.h"
#include "shard/catalog.h"
#include "shard/record.h"
#include "shard/reshard.h"
#include "shard/search.h"
#include "shard/snapshot.h"
#include "shard/versions.h"
#include "common/server.h"
#include "shard/shard.h"

typedef me_request_t req_t;
#define SHARD(r) ((me_shard_t *)(r)->ctx)

#define BAD ME_BAD
/* A data request routed with an outdated placement is refused (ABORTED:
 * the coordinator re-routes it); a newer one is adopted. */
#define FENCE(r)                                                         \
    do {                                                                 \
        if (me_reshard_fence(SHARD(r), (r), 1) != 0) return (r)->reply->status; \
    } while (0)

/* Looks up the collection under the registry lock the caller holds. */
static me_coll_t *need_coll(req_t *r, const char *name) {
    me_coll_t *c = me_catalog_find(SHARD(r), name ? name : "");
    if (!c)
        me_reply_error(r->reply, ME_CODE_NOT_FOUND,
                       ME_NO_COLLECTION ME_NO_COLLECTION_HINT, name ? name : "");
    return c;
}

/* A handler's hold on one collection: the shard's read lock keeps it in
 * the catalog (a drop waits); the collection's own lock is taken only once
 * the request is validated, so a bad request never waits on a writer. */
typedef struct {
    me_shard_t *s;
    me_coll_t *c;
    int locked;
} hold_t;

/* Takes the shard's read lock and finds the collection (NULL: NOT_FOUND
 * set); hold_close releases whatever was taken. */
static me_coll_t *hold_open(req_t *r, hold_t *h, const char *name) {
    h->s = SHARD(r);
    h->locked = 0;
    pthread_rwlock_rdlock(&h->s->lock);
    return h->c = need_coll(r, name);
}

static void hold_lock(hold_t *h, int write) {
    if (write) pthread_rwlock_wrlock(&h->c->lock);
    else pthread_rwlock_rdlock(&h->c->lock);
    h->locked = 1;
}

/* Lets go of the collection's lock early (the shard's stays), e.g. to wait
 * for a group fsync without holding other writers back. */
static void hold_unlock(hold_t *h) {
    if (h->locked) pthread_rwlock_unlock(&h->c->lock);
    h->locked = 0;
}

/* Group commit: after the collection's lock is let go, the fsync that
 * makes this write durable (shared with the writes waiting with it). */
static int group_durable(req_t *r, hold_t *h) {
    if (h->c->cfg.durability != ME_DURABLE_GROUP) return 0;
    hold_unlock(h);
    char err[256];
    return me_storage_group_sync(SHARD(r)->storage, err, sizeof err) != 0
               ? me_reply_error(r->reply, ME_CODE_INTERNAL, "%s (the write may not survive a power loss; retry it)", err)
               : 0;
}

static void hold_close(hold_t *h) {
    if (h->locked) pthread_rwlock_unlock(&h->c->lock);
    pthread_rwlock_unlock(&h->s->lock);
}

static int status_of(int err) { return me_error_status(err); }

/* ---- collections ---- */

static void coll_info(Metaembed__CollectionInfo *info, me_config_proto_t *pc, const me_coll_t *c) {
    metaembed__collection_info__init(info);
    info->config = me_config_to_proto(pc, &c->cfg);
    info->documents = c->n;
    info->ram_bytes = me_coll_ram_bytes(c);
    info->index_bytes = me_coll_index_bytes(c);
}

static int h_create(req_t *r) {
    FENCE(r);
    Metaembed__CreateCollectionRequest *m = (void *)r->msg;
    char err[256];
    int rc;
    me_coll_config_t cfg;
    if (!m->config) { rc = BAD(r, "CreateCollection needs a config (name, dim, ...)"); goto out; }
    if (me_check_collection_name(m->config->name, err, sizeof err) != 0) { rc = BAD(r, "%s", err); goto out; }
    me_config_from_proto(&cfg, m->config);
    if (me_coll_config_check(&cfg, err, sizeof err) != 0) { rc = BAD(r, "%s", err); goto out; }
    pthread_rwlock_wrlock(&SHARD(r)->lock);
    rc = me_catalog_create(SHARD(r), &cfg, err, sizeof err);
    if (rc == 0) cfg = me_catalog_find(SHARD(r), cfg.name)->cfg;  /* with its version */
    pthread_rwlock_unlock(&SHARD(r)->lock);
    if (rc) { rc = me_reply_error(r->reply, status_of(rc), "%s", err); goto out; }
    char fields[ME_FIELDS_MAX * (ME_FIELD_NAME_MAX + 10) + 1];
    me_field_specs_format(cfg.fields, cfg.nfields, fields, sizeof fields);
    me_info("created collection %s (dim %d, R_c %d, R_q %d, %s, ram %d, coarse %d%s%s)", cfg.name, cfg.dim,
            cfg.max_doc_vectors, cfg.max_query_vectors, me_dtype_name(cfg.dtype), cfg.ram_vectors,
            cfg.coarse_vectors, cfg.nfields ? ", fields " : "", fields);
    Metaembed__CreateCollectionReply rep = METAEMBED__CREATE_COLLECTION_REPLY__INIT;
    me_config_proto_t pc;
    rep.config = me_config_to_proto(&pc, &cfg);
    rc = me_reply_ok(r->reply, &rep.base);
out:
    return rc;
}

static int h_drop(req_t *r) {
    FENCE(r);
    Metaembed__DropCollectionRequest *m = (void *)r->msg;
    char err[256];
    pthread_rwlock_wrlock(&SHARD(r)->lock);
    int rc = me_catalog_drop(SHARD(r), m->name, m->version, err, sizeof err);
    pthread_rwlock_unlock(&SHARD(r)->lock);
    if (rc) rc = me_reply_error(r->reply, status_of(rc), "%s", err);
    else {
        me_info("dropped collection %s", m->name);
        Metaembed__DropCollectionReply rep = METAEMBED__DROP_COLLECTION_REPLY__INIT;
        rc = me_reply_ok(r->reply, &rep.base);
    }
    return rc;
}

/* The drop tombstones, for ListCollections with_dropped. */
typedef struct {
    Metaembed__DroppedCollection *d;
    Metaembed__DroppedCollection **p;
    size_t n, cap;
    int oom;
} dropped_t;

static void add_dropped(void *ctx, const char *name, size_t len, uint64_t version) {
    dropped_t *dl = ctx;
    if (dl->oom) return;
    if (dl->n == dl->cap) {
        size_t cap = dl->cap ? 2 * dl->cap : 16;
        Metaembed__DroppedCollection *nd = realloc(dl->d, cap * sizeof *nd);
        if (!nd) { dl->oom = 1; return; }
        dl->d = nd;
        dl->cap = cap;
    }
    Metaembed__DroppedCollection *d = &dl->d[dl->n];
    metaembed__dropped_collection__init(d);
    if (!(d->name = strndup(name, len))) { dl->oom = 1; return; }
    d->version = version;
    dl->n++;
}

static void dropped_free(dropped_t *dl) {
    for (size_t i = 0; i < dl->n; i++) free(dl->d[i].name);
    free(dl->d);
    free(dl->p);
}

static int list_infos(req_t *r, const char *only, Metaembed__StatsReply *stats, int with_dropped) {
    me_shard_t *s = SHARD(r);
    pthread_rwlock_rdlock(&s->lock);
    size_t n = s->ncolls;
    Metaembed__CollectionInfo *infos = calloc(n ? n : 1, sizeof *infos);
    Metaembed__CollectionInfo **ptrs = calloc(n ? n : 1, sizeof *ptrs);
    me_config_proto_t *pcs = calloc(n ? n : 1, sizeof *pcs);
    int rc = 0;
    if (!infos || !ptrs || !pcs) { rc = ME_OOM(r); goto out; }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        me_coll_t *c = s->colls[i];
        if (only && *only && strcmp(only, c->cfg.name) != 0) continue;
        pthread_rwlock_rdlock(&c->lock);
        coll_info(&infos[k], &pcs[k], c);
        pthread_rwlock_unlock(&c->lock);
        ptrs[k] = &infos[k];
        k++;
    }
    if (only && *only && k == 0) {
        rc = me_reply_error(r->reply, ME_CODE_NOT_FOUND, ME_NO_COLLECTION ME_NO_COLLECTION_HINT, only);
        goto out;
    }
    if (stats) {
        stats->collections = ptrs;
        stats->n_collections = k;
        stats->uptime_ms = me_now_ms() - s->start_ms;
        stats->requests = atomic_load(&s->requests);
        stats->errors = atomic_load(&s->errors);
        stats->disk_bytes = me_storage_disk_bytes(s->storage);
        stats->role = "shard";
        rc = me_reply_ok(r->reply, &stats->base);
    } else {
        Metaembed__ListCollectionsReply rep = METAEMBED__LIST_COLLECTIONS_REPLY__INIT;
        rep.collections = ptrs;
        rep.n_collections = k;
        dropped_t dl = { 0 };
        if (with_dropped) {
            me_catalog_dropped(s, add_dropped, &dl);
            dl.p = malloc((dl.n ? dl.n : 1) * sizeof *dl.p);
            if (!dl.p) dl.oom = 1;
            for (size_t i = 0; !dl.oom && i < dl.n; i++) dl.p[i] = &dl.d[i];
            rep.dropped = dl.p;
            rep.n_dropped = dl.n;
        }
        rc = dl.oom ? ME_OOM(r) : me_reply_ok(r->reply, &rep.base);
        dropped_free(&dl);
    }
out:
    pthread_rwlock_unlock(&s->lock);
    free(infos);
    free(ptrs);
    free(pcs);
    return rc;
}

static int h_list(req_t *r) {
    FENCE(r);
    Metaembed__ListCollectionsRequest *m = (void *)r->msg;
    return list_infos(r, NULL, NULL, m->with_dropped);
}

static int h_stats(req_t *r) {
    me_reshard_fence(SHARD(r), r, 0);  /* heartbeats carry the placement: adopt, never refuse */
    Metaembed__StatsRequest *m = (void *)r->msg;
    Metaembed__StatsReply rep = METAEMBED__STATS_REPLY__INIT;
    int rc = list_infos(r, m->collection, &rep, 0);
    return rc;
}

static int h_health(req_t *r) {
    me_reshard_fence(SHARD(r), r, 0);  /* heartbeats carry the placement: adopt, never refuse */
    return me_reply_health(r, "shard", SHARD(r)->start_ms, atomic_load(&SHARD(r)->documents));
}

/* ---- filters ---- */

/* The request's filter against c's indexed fields (read under the
 * collection's lock: IndexFields changes them): 0 or INVALID_ARGUMENT set. */
static int check_filter(req_t *r, const me_coll_t *c, const Metaembed__Filter *f) {
    char err[512];
    return me_filter_check(f, c->cfg.fields, c->cfg.nfields, err, sizeof err) ? BAD(r, "%s", err) : 0;
}

/* The bitmap of the slots f matches (malloc'd), or NULL with the reply set.
 * Caller holds the collection's lock. */
static uint64_t *filter_bits(req_t *r, const me_coll_t *c, const Metaembed__Filter *f) {
    if (check_filter(r, c, f) != 0) return NULL;
    size_t words = me_bitmap_words(c->n);
    uint64_t *bits = calloc(words ? words : 1, sizeof *bits);
    if (!bits || me_fields_eval(c->fields, f, bits) != 0) {
        free(bits);
        ME_OOM(r);
        return NULL;
    }
    return bits;
}

/* While a move is under way a group may hold copies it does not own:
 * reads count only the owned ones (*bits: NULL = all, narrowed or made;
 * common/placement.h). 0, or the error set. */
static int restrict_to_owned(req_t *r, const me_coll_t *c, uint64_t **bits) {
    int oom = 0;
    uint64_t *owned = me_reshard_owned_bits(SHARD(r), r, c, &oom);
    if (oom) return ME_OOM(r);
    if (!owned) return 0;
    if (!*bits) { *bits = owned; return 0; }
    for (size_t w = 0; w < me_bitmap_words(c->n); w++) (*bits)[w] &= owned[w];
    free(owned);
    return 0;
}

static size_t bits_count(const uint64_t *bits, size_t n) {
    size_t k = 0;
    for (size_t w = 0; w < me_bitmap_words(n); w++) k += (size_t)__builtin_popcountll(bits[w]);
    return k;
}

/* ---- documents ---- */

static int check_id(req_t *r, const char *id, size_t i) {
    char err[128];
    return me_check_id(id, i, err, sizeof err) ? BAD(r, "%s", err) : 0;
}


typedef struct {
    int rows;
    uint8_t *data;   /* rows × dim storage elements */
    float *scales;   /* int8 */
    uint8_t *bag;    /* the text's term counts (me_record_text_bag) */
    size_t bag_len;
    uint8_t *fields; /* the indexed fields' values (me_payload_record) */
    size_t fields_len;
} conv_doc_t;

static int h_upsert(req_t *r) {
    FENCE(r);
    Metaembed__UpsertRequest *m = (void *)r->msg;
    me_shard_t *s = SHARD(r);
    conv_doc_t *docs = NULL;
    me_wbatch_t *b = NULL;
    uint8_t *rec = NULL, *skip = NULL;
    char **ids = NULL;
    me_ver_t *old = NULL;
    int rc, e;
    hold_t h;
    me_coll_t *c = hold_open(r, &h, m->collection);
    if (!c) { rc = r->reply->status; goto out; }
    if ((rc = me_request_check_batch(r, m->n_documents, SHARD(r)->opts.max_batch, "document")) != 0) goto out;
    const me_coll_config_t *cfg = &c->cfg;
    size_t rb = me_coll_row_bytes(c);
    docs = calloc(m->n_documents, sizeof *docs);
    if (!docs) { rc = ME_OOM(r); goto out; }
    /* Validate and convert everything first: a bad document rejects the
     * whole batch and nothing is written. */
    for (size_t i = 0; i < m->n_documents; i++) {
        Metaembed__Document *d = m->documents[i];
        me_tensor_view_t v;
        char what[ME_WHAT_MAX], err[ME_WHAT_MAX + 256];
        if ((e = me_document_check(d, i, cfg->max_doc_vectors, cfg->dim, &v, what, err, sizeof err)) != 0) {
            rc = me_reply_error(r->reply, status_of(e), "%s", err);
            goto out;
        }
        docs[i].rows = v.rows;
        docs[i].data = malloc((size_t)v.rows * rb);
        docs[i].scales = malloc((size_t)v.rows * sizeof(float));
        if (!docs[i].data || !docs[i].scales) {
            rc = ME_OOM(r);
            goto out;
        }
        if ((e = me_tensor_convert(&v, v.rows, cfg->dtype, docs[i].data, docs[i].scales, what, err, sizeof err))) {
            rc = me_reply_error(r->reply, status_of(e), "%s", err);
            goto out;
        }
        char ferr[256];
        if ((e = me_record_derive(d->metadata.data, d->metadata.len, cfg->fields, cfg->nfields, &docs[i].bag,
                                  &docs[i].bag_len, &docs[i].fields, &docs[i].fields_len, ferr, sizeof ferr)) != 0) {
            rc = e == ME_ENOMEM ? ME_OOM(r) : me_reply_error(r->reply, status_of(e), "%s: %s", what, ferr);
            goto out;
        }
    }
    b = me_wbatch_new(s->storage);
    rec = malloc(me_record_size(cfg->dtype, cfg->dim, cfg->max_doc_vectors));
    ids = malloc(m->n_documents * sizeof *ids);
    old = malloc(m->n_documents * sizeof *old);
    skip = malloc(m->n_documents);
    if (!b || !rec || !ids || !old || !skip) { rc = ME_OOM(r); goto out; }
    for (size_t i = 0; i < m->n_documents; i++) ids[i] = m->documents[i]->id;
    /* A document without a version (a client writing to the shard
     * directly) gets this write's. */
    uint64_t stamp = me_version_next();
    char err[256];
    hold_lock(&h, 1);
    /* Under the write lock, so no other write moves a version between the
     * check and the write: an id is written only over an older version
     * (a retry or a repair of the same version changes nothing), and of
     * duplicates in the batch the last one is. */
    if ((e = me_versions_mark_earlier(ids, m->n_documents, skip)) != 0 ||
        (e = me_versions_get_many(s->storage, c, ids, m->n_documents, old)) != 0) {
        rc = me_reply_error(r->reply, status_of(e), "reading versions: %s", me_strerror(e));
        goto out;
    }
    for (size_t i = 0; i < m->n_documents; i++) {
        Metaembed__Document *d = m->documents[i];
        uint64_t v = d->version ? d->version : stamp;
        if (old[i].version >= v) skip[i] = 1;
        if (skip[i]) continue;
        me_record_put_doc(b, c, d->id, docs[i].rows, docs[i].data, docs[i].scales, d->metadata.data, d->metadata.len,
                          docs[i].bag, docs[i].bag_len, docs[i].fields, docs[i].fields_len, rec);
        me_versions_put(b, c, d->id, (me_ver_t){ v, 0 });
    }
    if ((rc = me_storage_write_durable(s->storage, b, c->cfg.durability, err, sizeof err)) != 0) {
        rc = me_reply_error(r->reply, ME_CODE_INTERNAL, "%s", err);
        goto out;
    }
    /* Durable now; mirror into RAM. */
    size_t before = c->n;
    for (size_t i = 0; i < m->n_documents; i++) {
        if (skip[i]) continue;
        Metaembed__Document *d = m->documents[i];
        uint64_t v = d->version ? d->version : stamp;
        long slot = me_coll_put(c, d->id, strlen(d->id), docs[i].rows, docs[i].data, docs[i].scales);
        if (slot >= 0 && me_versions_digest_update(c, d->id, old[i], (me_ver_t){ v, 0 }) != 0) slot = -1;
        if (slot < 0 || me_coll_set_terms(c, (size_t)slot, docs[i].bag, docs[i].bag_len) != 0 ||
            me_coll_set_fields(c, (size_t)slot, docs[i].fields, docs[i].fields_len) != 0) {
            /* RAM is now behind disk for this doc; a restart reloads it. */
            me_error("out of memory adding %s to RAM; restart the shard to reload", d->id);
            me_coll_ivf_flush(c);
            rc = ME_OOM(r);
            goto out;
        }
    }
    me_coll_ivf_flush(c);  /* the batch into the IVF lists, before the lock goes */
    atomic_fetch_add(&s->documents, c->n - before);
    if ((rc = group_durable(r, &h)) != 0) goto out;
    Metaembed__UpsertReply rep = METAEMBED__UPSERT_REPLY__INIT;
    rep.upserted = (uint32_t)m->n_documents;
    rc = me_reply_ok(r->reply, &rep.base);
out:
    hold_close(&h);
    if (docs)
        for (size_t i = 0; i < m->n_documents; i++) {
            free(docs[i].data);
            free(docs[i].scales);
            free(docs[i].bag);
            free(docs[i].fields);
        }
    free(docs);
    free(rec);
    free(ids);
    free(old);
    free(skip);
    me_wbatch_free(b);
    return rc;
}

static int h_delete(req_t *r) {
    FENCE(r);
    Metaembed__DeleteRequest *m = (void *)r->msg;
    me_shard_t *s = SHARD(r);
    me_wbatch_t *b = NULL;
    char **matched = NULL;
    me_ver_t *old = NULL;
    uint8_t *skip = NULL;
    int rc;
    hold_t h;
    char **ids = m->ids;
    size_t nids = m->n_ids;
    me_coll_t *c = hold_open(r, &h, m->collection);
    if (!c) { rc = r->reply->status; goto out; }
    if (m->filter && nids) { rc = BAD(r, "give ids or a filter to delete by, not both"); goto out; }
    if (!m->filter && (rc = me_request_check_batch(r, m->n_ids, SHARD(r)->opts.max_batch, "id")) != 0) goto out;
    for (size_t i = 0; i < m->n_ids; i++)
        if ((rc = check_id(r, m->ids[i], i)) != 0) goto out;
    b = me_wbatch_new(s->storage);
    if (!b) { rc = ME_OOM(r); goto out; }
    hold_lock(&h, 1);
    if (m->filter) {
        /* Every matching document, by id: removal moves slots, ids do not. */
        uint64_t *bits = filter_bits(r, c, m->filter);
        if (!bits) { rc = r->reply->status; goto out; }
        nids = bits_count(bits, c->n);
        matched = malloc((nids ? nids : 1) * sizeof *matched);
        if (!matched) { free(bits); rc = ME_OOM(r); goto out; }
        for (size_t slot = 0, k = 0; slot < c->n; slot++)
            if (me_bitmap_get(bits, slot)) matched[k++] = c->ids[slot];
        free(bits);
        ids = matched;
    }
    /* A tombstone of the delete's version for every id older than it
     * (absent ones too: a late upsert of an older version must not bring
     * the document back), under the write lock like upserts. */
    uint64_t v = m->version ? m->version : me_version_next();
    old = malloc((nids ? nids : 1) * sizeof *old);
    skip = malloc(nids ? nids : 1);
    int e = old && skip ? 0 : ME_ENOMEM;
    if (e == 0) e = me_versions_mark_earlier(ids, nids, skip);
    if (e == 0) e = me_versions_get_many(s->storage, c, ids, nids, old);
    if (e) { rc = me_reply_error(r->reply, status_of(e), "reading versions: %s", me_strerror(e)); goto out; }
    for (size_t i = 0; i < nids; i++) {
        if (old[i].version >= v) skip[i] = 1;
        if (skip[i]) continue;
        me_record_delete_doc(b, c, ids[i]);
        me_versions_put(b, c, ids[i], (me_ver_t){ v, 1 });
    }
    char err[256];
    if ((rc = me_storage_write_durable(s->storage, b, c->cfg.durability, err, sizeof err)) != 0) {
        rc = me_reply_error(r->reply, ME_CODE_INTERNAL, "%s", err);
        goto out;
    }
    uint32_t deleted = 0;
    /* By id, from copies: a removal frees the id string matched[] points to. */
    for (size_t i = 0; i < nids; i++) {
        if (skip[i]) continue;
        char key[ME_DOC_ID_MAX + 1];
        snprintf(key, sizeof key, "%s", ids[i]);
        if (me_versions_digest_update(c, key, old[i], (me_ver_t){ v, 1 }) != 0) {
            me_error("out of memory updating the digest of %s; restart the shard to reload", key);
        }
        deleted += (uint32_t)me_coll_remove(c, key, strlen(key));
    }
    atomic_fetch_sub(&s->documents, deleted);
    if ((rc = group_durable(r, &h)) != 0) goto out;
    Metaembed__DeleteReply rep = METAEMBED__DELETE_REPLY__INIT;
    rep.deleted = deleted;
    rc = me_reply_ok(r->reply, &rep.base);
out:
    hold_close(&h);
    me_wbatch_free(b);
    free(matched);
    free(old);
    free(skip);
    return rc;
}

/* All of a document's vectors (me_record_load) as a Tensor, f32 for int8
 * collections (dequantized), else at the storage dtype. */
static int read_vectors(me_shard_t *s, me_coll_t *c, size_t slot, Metaembed__Tensor *t, uint32_t *shape) {
    const me_coll_config_t *cfg = &c->cfg;
    int rows = c->rows[slot], got = 0, int8 = cfg->dtype == ME_DTYPE_INT8;
    size_t rb = me_coll_row_bytes(c), out_esz = int8 ? 4 : me_dtype_size(cfg->dtype);
    uint8_t *stored = malloc((size_t)rows * rb);
    float *scales = malloc((size_t)rows * sizeof(float));
    uint8_t *out = int8 ? malloc((size_t)rows * cfg->dim * out_esz) : stored;
    uint32_t s32 = (uint32_t)slot;
    char err[256];
    int rc = stored && scales && out ? me_record_load(s->storage, c, &s32, 1, rows, stored, scales, &got, err, sizeof err)
                                     : ME_ENOMEM;
    if (rc == 0 && int8)
        for (int i = 0; i < got; i++)
            me_int8_dequantize((float *)(void *)out + (size_t)i * cfg->dim, (const int8_t *)stored + (size_t)i * cfg->dim,
                               scales[i], (size_t)cfg->dim);
    if (rc == 0) {
        metaembed__tensor__init(t);
        t->dtype = int8 ? METAEMBED__DTYPE__DTYPE_F32 : (Metaembed__DType)cfg->dtype;
        shape[0] = (uint32_t)got;
        shape[1] = (uint32_t)cfg->dim;
        t->shape = shape;
        t->n_shape = 2;
        t->data.data = out;
        t->data.len = (size_t)got * cfg->dim * out_esz;
    }
    if (rc != 0 && out != stored) free(out);
    if (rc != 0 || int8) free(stored);
    free(scales);
    return rc;
}

static int h_get(req_t *r) {
    FENCE(r);
    Metaembed__GetRequest *m = (void *)r->msg;
    me_shard_t *s = SHARD(r);
    Metaembed__Document *docs = NULL, **dptrs = NULL;
    Metaembed__Tensor *tensors = NULL;
    uint32_t *shapes = NULL;
    char **missing = NULL, **metas = NULL, **ids = NULL;
    me_ver_t *vers = NULL;
    uint64_t *mvers = NULL;
    size_t n = 0, nfound = 0, nmissing = 0;
    int rc;
    hold_t h;
    me_coll_t *c = hold_open(r, &h, m->collection);
    if (!c) { rc = r->reply->status; goto out; }
    if ((rc = me_request_check_batch(r, m->n_ids, SHARD(r)->opts.max_batch, "id")) != 0) goto out;
    for (size_t i = 0; i < m->n_ids; i++)
        if ((rc = check_id(r, m->ids[i], i)) != 0) goto out;
    /* Each id is answered once, however often it is asked for. */
    ids = malloc(m->n_ids * sizeof *ids);
    long nu = ids ? (memcpy(ids, m->ids, m->n_ids * sizeof *ids), me_ids_dedupe(ids, m->n_ids)) : ME_ENOMEM;
    if (nu < 0) { rc = ME_OOM(r); goto out; }
    n = (size_t)nu;
    /* The reply is built within the message limit, not refused after. */
    unsigned long long reply_bytes = 0;
    docs = calloc(n, sizeof *docs);
    dptrs = calloc(n, sizeof *dptrs);
    tensors = calloc(n, sizeof *tensors);
    shapes = calloc(2 * n, sizeof *shapes);
    missing = calloc(n, sizeof *missing);
    metas = calloc(n, sizeof *metas);
    vers = calloc(n, sizeof *vers);
    mvers = calloc(n, sizeof *mvers);
    if (!docs || !dptrs || !tensors || !shapes || !missing || !metas || !vers || !mvers) {
        rc = ME_OOM(r);
        goto out;
    }
    hold_lock(&h, 0);
    /* Each id's version: a document's, or a missing one's tombstone (so a
     * coordinator reading several replicas can tell deleted from stale). */
    int ve = me_versions_get_many(s->storage, c, ids, n, vers);
    if (ve) { rc = me_reply_error(r->reply, status_of(ve), "reading versions: %s", me_strerror(ve)); goto out; }
    for (size_t i = 0; i < n; i++) {
        const char *id = ids[i];
        long slot = me_coll_find(c, id, strlen(id));
        if (slot < 0) {
            mvers[nmissing] = vers[i].deleted ? vers[i].version : 0;
            missing[nmissing++] = (char *)id;
            reply_bytes += strlen(id) + 14;
            continue;
        }
        Metaembed__Document *d = &docs[nfound];
        metaembed__document__init(d);
        d->id = (char *)id;
        d->version = vers[i].deleted ? 0 : vers[i].version;
        if (m->with_vectors) {
            int e = read_vectors(s, c, (size_t)slot, &tensors[nfound], &shapes[2 * nfound]);
            if (e) { rc = me_reply_error(r->reply, status_of(e), "reading document '%s': %s", id, me_strerror(e)); goto out; }
            d->vectors = &tensors[nfound];
        }
        size_t vlen = 0;
        if (me_record_metadata(s->storage, c, id, &metas[nfound], &vlen) == 0) {
            d->metadata.data = (uint8_t *)metas[nfound];
            d->metadata.len = vlen;
        }
        reply_bytes += strlen(id) + vlen + (d->vectors ? d->vectors->data.len : 0) + 32;
        if ((long long)reply_bytes > s->opts.max_message) {
            rc = me_reply_over_limit(r->reply, reply_bytes, s->opts.max_message, i + 1, n);
            goto out;
        }
        dptrs[nfound++] = d;
    }
    rc = me_reply_get(r, dptrs, nfound, missing, nmissing, mvers);
out:
    hold_close(&h);
    if (tensors)
        for (size_t i = 0; i < n; i++) free(tensors[i].data.data);
    if (metas)
        for (size_t i = 0; i < n; i++) me_storage_free(metas[i]);
    free(docs);
    free(dptrs);
    free(tensors);
    free(shapes);
    free(missing);
    free(metas);
    free(ids);
    free(vers);
    free(mvers);
    return rc;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The first `limit` ids (copies) after `after` in byte order among the
 * documents f matches, from RAM. */
static int list_matching_ids(req_t *r, const me_coll_t *c, const Metaembed__Filter *f, const char *after, size_t limit,
                             char **ids, size_t *n, int *more) {
    uint64_t *bits = filter_bits(r, c, f);
    if (!bits) return r->reply->status;
    size_t m = 0;
    char **cand = malloc((bits_count(bits, c->n) + 1) * sizeof *cand);
    if (!cand) { free(bits); return ME_OOM(r); }
    for (size_t slot = 0; slot < c->n; slot++)
        if (me_bitmap_get(bits, slot) && (!after || !after[0] || strcmp(c->ids[slot], after) > 0)) cand[m++] = c->ids[slot];
    free(bits);
    qsort(cand, m, sizeof *cand, cmp_str);
    *n = 0;
    *more = m > limit;
    for (size_t i = 0; i < m && i < limit; i++) {
        if (!(ids[i] = strdup(cand[i]))) { free(cand); return ME_OOM(r); }
        (*n)++;
    }
    free(cand);
    return 0;
}

/* A page of ids in byte order after the cursor, read from storage under
 * the collection's read lock (a scroll: the next page starts after the
 * last id of this one). */
static int h_list_ids(req_t *r) {
    FENCE(r);
    Metaembed__ListIdsRequest *m = (void *)r->msg;
    char **ids = NULL, err[256];
    size_t n = 0;
    uint32_t limit;
    int rc, more = 0;
    hold_t h;
    me_coll_t *c = hold_open(r, &h, m->collection);
    if (!c) { rc = r->reply->status; goto out; }
    if (me_list_ids_check(m->after, m->limit, &limit, err, sizeof err) != 0) { rc = BAD(r, "%s", err); goto out; }
    if (!(ids = calloc(limit, sizeof *ids))) { rc = ME_OOM(r); goto out; }
    hold_lock(&h, 0);
    if (m->filter) {
        rc = list_matching_ids(r, c, m->filter, m->after, limit, ids, &n, &more);
        if (rc) goto out;
    }
    int e = m->filter ? 0 : me_record_list_ids(SHARD(r)->storage, c, m->after, limit, ids, &n, &more);
    if (e) { rc = me_reply_error(r->reply, status_of(e), "listing ids: %s", me_strerror(e)); goto out; }
    Metaembed__ListIdsReply rep = METAEMBED__LIST_IDS_REPLY__INIT;
    rep.ids = ids;
    rep.n_ids = n;
    rep.next_after = more ? ids[n - 1] : "";
    rc = me_reply_ok(r->reply, &rep.base);
out:
    hold_close(&h);
    for (size_t i = 0; i < n; i++) free(ids[i]);
    free(ids);
    return rc;
}

/* ---- search ---- */

static int h_search(req_t *r) {
    FENCE(r);
    Metaembed__SearchRequest *m = (void *)r->msg;
    me_shard_t *s = SHARD(r);
    float *q = NULL;
    me_search_result_t res = { 0 };
    uint64_t *allow = NULL;
    Metaembed__Hit *hits = NULL, **hptrs = NULL;
    char **metas = NULL;
    size_t nhits = 0;  /* the page's hits */
    int rc;
    hold_t h;
    me_coll_t *c = hold_open(r, &h, m->collection);
    if (!c) { rc = r->reply->status; goto out; }
    const me_coll_config_t *cfg = &c->cfg;
    me_tensor_view_t v = { 0 };
    char verr[256];
    if (me_search_check_mode(m, 0, verr, sizeof verr) != 0) { rc = BAD(r, "%s", verr); goto out; }
    /* Lexical search needs no vectors: a one-row stand-in passes the budget checks. */
    int lexical = m->mode == METAEMBED__SEARCH_MODE__SEARCH_MODE_LEXICAL;
    if (lexical && !m->query) v.rows = 1;
    else if (me_tensor_view(m->query, "query", cfg->max_query_vectors, cfg->dim, &v, verr, sizeof verr) != 0) {
        rc = BAD(r, "%s", verr);
        goto out;
    }
    if (lexical) v.rows = 1;
    int r_q = lexical ? 1 : m->r_q ? (int)(m->r_q > 100000 ? 100000 : m->r_q) : v.rows;
    int r_c = lexical ? 1 : m->r_c ? (int)(m->r_c > 100000 ? 100000 : m->r_c) : cfg->max_doc_vectors;
    /* A budget the coordinator chose for a latency target fits this collection's shape. */
    if (m->target_ms && r_q > v.rows) r_q = v.rows;
    if (m->target_ms && r_c > cfg->max_doc_vectors) r_c = cfg->max_doc_vectors;
    if (r_q > v.rows) { rc = BAD(r, "budget r_q=%d exceeds the %d query vectors sent", r_q, v.rows); goto out; }
    if (r_c > cfg->max_doc_vectors) {
        rc = BAD(r, "budget r_c=%d exceeds the collection's max_doc_vectors=%d", r_c, cfg->max_doc_vectors);
        goto out;
    }
    if (me_search_check_page(m->k, m->offset, s->opts.max_k, verr, sizeof verr) != 0) { rc = BAD(r, "%s", verr); goto out; }
    /* The page [offset, offset + k) of the ranking: rank k + offset. */
    uint32_t ranked = m->k + m->offset;
    if (m->n_candidates > 2) {
        rc = BAD(r, "give at most two candidate counts (stage-1 and stage-2 survivors), got %zu", m->n_candidates);
        goto out;
    }
    size_t ncand[2] = { 0, 0 };  /* 0 = the default */
    for (size_t i = 0; i < m->n_candidates; i++) {
        ncand[i] = m->candidates[i];
        if (ncand[i] && ncand[i] < ranked) {
            rc = BAD(r, "candidates=%zu must be at least k + offset = %u", ncand[i], ranked);
            goto out;
        }
        if ((long long)ncand[i] > s->opts.max_candidates) {
            rc = BAD(r, "candidates=%zu exceeds the limit of %lld", ncand[i], s->opts.max_candidates);
            goto out;
        }
    }
    if (m->probe > ME_IVF_MAX_LISTS) {
        rc = BAD(r, "probe=%u exceeds the limit of %d lists", m->probe, ME_IVF_MAX_LISTS);
        goto out;
    }
    if (m->hybrid_candidates && (long long)m->hybrid_candidates > s->opts.max_candidates) {
        rc = BAD(r, "hybrid_candidates=%u exceeds the limit of %lld", m->hybrid_candidates, s->opts.max_candidates);
        goto out;
    }
    if (!lexical) {
        q = malloc((size_t)r_q * cfg->dim * sizeof *q);
        if (!q) { rc = ME_OOM(r); goto out; }
        int ce = me_tensor_convert(&v, r_q, ME_DTYPE_F32, q, NULL, "query", verr, sizeof verr);
        if (ce) { rc = me_reply_error(r->reply, status_of(ce), "%s", verr); goto out; }
    }
    hold_lock(&h, 0);
    /* anytime_ms counts from the request's arrival, time queued for a worker included. */
    uint64_t arrival = me_server_arrival_us() ? me_server_arrival_us() : me_now_us();
    if (m->filter && !(allow = filter_bits(r, c, m->filter))) { rc = r->reply->status; goto out; }
    if ((rc = restrict_to_owned(r, c, &allow)) != 0) goto out;
    if (allow && m->filter) {
        double frac = c->n ? (double)bits_count(allow, c->n) / (double)c->n : 0;
        int b = 0;
        while (b < ME_SHARD_SELECTIVITY_BUCKETS && frac > me_shard_selectivity_bounds[b]) b++;
        atomic_fetch_add(&s->selectivity[b], 1);
        atomic_fetch_add(&s->selectivity_sum_ppm, (uint64_t)(frac * 1e6 + 0.5));
    }
    atomic_fetch_add(&s->searches[m->mode <= 2 ? m->mode : 0][m->filter != NULL], 1);
    me_search_params_t p = { .query = q, .r_q = r_q, .r_c = r_c, .k = ranked, .candidates = ncand[0],
                             .refine_candidates = ncand[1],
                             .exact = m->exact, .deadline_us = r->deadline_us, .mode = (int)m->mode,
                             .text = m->lexical_text, .hybrid_n = m->hybrid_candidates,
                             .weighted = m->fusion == METAEMBED__FUSION__FUSION_WEIGHTED,
                             .alpha = m->n_alpha ? m->alpha[0] : ME_FUSION_ALPHA, .rrf_k = (int)m->rrf_k,
                             .all_candidates = m->all_candidates, .allow = allow,
                             .anytime = m->anytime, .slowdown = (int)s->opts.slowdown, .probe = (int)m->probe,
                             .anytime_us = m->anytime && m->anytime_ms ? arrival + (uint64_t)m->anytime_ms * 1000u : 0 };
    char err[256] = "";
    uint64_t t_search = me_now_us();
    int e = me_search_run(c, s->storage, &p, &res, err, sizeof err);
    if (e == 0) {
        /* BM25 has no budget: lexical searches stay out of the per-budget latencies. */
        if (!lexical)
            me_budget_hist_observe(&s->search_by_budget, res.degraded ? res.r_q : r_q, res.degraded ? res.r_c : r_c,
                                   me_now_us() - t_search);
        if (res.degraded) atomic_fetch_add(&s->degraded, 1);
        for (int i = 0; i < res.nstages; i++) {
            const char *n = res.stages[i].name;
            int si = 0;
            while (si < ME_SHARD_STAGES - 1 && strcmp(n, me_shard_stage_names[si]) != 0) si++;
            me_hist_observe(&s->search_by_stage[si], res.stages[i].micros);
        }
    }
    if (e) { rc = me_reply_error(r->reply, status_of(e), "%s", err[0] ? err : me_strerror(e)); goto out; }

    size_t skip = m->offset < res.nhits ? m->offset : res.nhits;
    nhits = res.nhits - skip;
    hits = calloc(nhits ? nhits : 1, sizeof *hits);
    hptrs = calloc(nhits ? nhits : 1, sizeof *hptrs);
    metas = calloc(nhits ? nhits : 1, sizeof *metas);
    if (!hits || !hptrs || !metas) { rc = ME_OOM(r); goto out; }
    for (size_t i = 0; i < nhits; i++) {
        metaembed__hit__init(&hits[i]);
        hits[i].id = c->ids[res.hits[skip + i].idx];
        hits[i].score = res.hits[skip + i].score;
        if (res.dense) hits[i].dense_score = res.dense[skip + i];
        if (res.lexical) hits[i].lexical_score = res.lexical[skip + i];
        if (m->with_metadata) {
            size_t vlen = 0;
            if (me_record_metadata(s->storage, c, hits[i].id, &metas[i], &vlen) == 0) {
                hits[i].metadata.data = (uint8_t *)metas[i];
                hits[i].metadata.len = vlen;
            }
        }
        hptrs[i] = &hits[i];
    }
    Metaembed__StageTiming st[ME_SEARCH_MAX_STAGES], *stp[ME_SEARCH_MAX_STAGES];
    for (int i = 0; i < res.nstages; i++) {
        metaembed__stage_timing__init(&st[i]);
        st[i].stage = (char *)res.stages[i].name;
        st[i].r_q = (uint32_t)res.stages[i].r_q;
        st[i].r_c = (uint32_t)res.stages[i].r_c;
        st[i].candidates_in = res.stages[i].in;
        st[i].candidates_out = res.stages[i].out;
        st[i].micros = res.stages[i].micros;
        stp[i] = &st[i];
    }
    Metaembed__SearchReply rep = METAEMBED__SEARCH_REPLY__INIT;
    rep.hits = hptrs;
    rep.n_hits = nhits;
    rep.r_q = lexical ? 0 : (uint32_t)(res.degraded ? res.r_q : r_q);  /* lexical: no vectors were used */
    rep.r_c = lexical ? 0 : (uint32_t)(res.degraded ? res.r_c : r_c);
    rep.degraded = res.degraded;
    rep.stages = stp;
    rep.n_stages = (size_t)res.nstages;
    rep.documents = c->n;
    rc = me_reply_ok(r->reply, &rep.base);
out:
    hold_close(&h);
    if (metas)
        for (size_t i = 0; i < nhits; i++) me_storage_free(metas[i]);
    free(metas);
    free(hits);
    free(hptrs);
    me_search_result_free(&res);
    free(q);
    free(allow);
    return rc;
}

/* ---- count and indexed fields ---- */

static int h_count(req_t *r) {
    FENCE(r);
    Metaembed__CountRequest *m = (void *)r->msg;
    uint64_t *bits = NULL;
    int rc;
    hold_t h;
    me_coll_t *c = hold_open(r, &h, m->collection);
    if (!c) { rc = r->reply->status; goto out; }
    hold_lock(&h, 0);
    if (m->filter && !(bits = filter_bits(r, c, m->filter))) { rc = r->reply->status; goto out; }
    if ((rc = restrict_to_owned(r, c, &bits)) != 0) goto out;
    Metaembed__CountReply rep = METAEMBED__COUNT_REPLY__INIT;
    rep.count = bits ? bits_count(bits, c->n) : c->n;
    rc = me_reply_ok(r->reply, &rep.base);
out:
    hold_close(&h);
    free(bits);
    return rc;
}

static int h_index_fields(req_t *r) {
    FENCE(r);
    Metaembed__IndexFieldsRequest *m = (void *)r->msg;
    me_field_spec_t want[ME_FIELDS_MAX], add[ME_FIELDS_MAX];
    int nwant, nadd = 0, rc;
    char err[512];
    uint64_t indexed = 0;
    hold_t h;
    me_coll_t *c = hold_open(r, &h, m->collection);
    if (!c) { rc = r->reply->status; goto out; }
    if (m->n_fields == 0) { rc = BAD(r, "IndexFields needs at least one field (NAME:TYPE)"); goto out; }
    me_field_specs_from_proto(want, &nwant, m->fields, m->n_fields);
    if (me_field_specs_check(want, nwant, err, sizeof err) != 0) { rc = BAD(r, "%s", err); goto out; }
    hold_lock(&h, 1);
    /* A field indexed already with the same type is no change (so a retry
     * is harmless); with another type it is refused. */
    for (int i = 0; i < nwant; i++) {
        int at = me_field_find(c->cfg.fields, c->cfg.nfields, want[i].name, strlen(want[i].name));
        if (at < 0) { add[nadd++] = want[i]; continue; }
        if (c->cfg.fields[at].type != want[i].type) {
            rc = BAD(r, "field '%s' is indexed already as %s (not %s)", want[i].name,
                     me_field_type_name(c->cfg.fields[at].type), me_field_type_name(want[i].type));
            goto out;
        }
    }
    if (c->cfg.nfields + nadd > ME_FIELDS_MAX) {
        rc = BAD(r, "at most %d indexed fields per collection: %s has %d, this adds %d", ME_FIELDS_MAX, c->cfg.name,
                 c->cfg.nfields, nadd);
        goto out;
    }
    if (nadd) {
        int e = me_catalog_index_fields(SHARD(r), c, add, nadd, &indexed, err, sizeof err);
        if (e) { rc = me_reply_error(r->reply, status_of(e), "%s", err[0] ? err : me_strerror(e)); goto out; }
        char names[ME_FIELDS_MAX * (ME_FIELD_NAME_MAX + 10) + 1];
        me_field_specs_format(add, nadd, names, sizeof names);
        me_info("collection %s: indexed fields %s (%llu documents with a value)", c->cfg.name, names,
                (unsigned long long)indexed);
    }
    Metaembed__IndexFieldsReply rep = METAEMBED__INDEX_FIELDS_REPLY__INIT;
    me_config_proto_t pc;
    rep.config = me_config_to_proto(&pc, &c->cfg);
    rep.indexed = indexed;
    rc = me_reply_ok(r->reply, &rep.base);
out:
    hold_close(&h);
    return rc;
}

/* ---- dispatch ---- */

static int h_encode(req_t *r) {
    return me_reply_error(r->reply, ME_CODE_UNIMPLEMENTED, "shards do not encode text; send Encode to an encoder");
}

/* ---- anti-entropy ---- */

typedef struct {
    Metaembed__SyncEntry *e;
    Metaembed__SyncEntry **p;
    size_t n, cap;
    unsigned long long bytes, limit;
} sync_list_t;

static int add_entry(void *ctx, const char *id, size_t idlen, me_ver_t v) {
    sync_list_t *l = ctx;
    if ((l->bytes += idlen + 16) > l->limit) return ME_ETOOBIG;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 256;
        Metaembed__SyncEntry *ne = realloc(l->e, cap * sizeof *ne);
        if (!ne) return ME_ENOMEM;
        l->e = ne;
        l->cap = cap;
    }
    Metaembed__SyncEntry *e = &l->e[l->n];
    metaembed__sync_entry__init(e);
    if (!(e->id = strndup(id, idlen))) return ME_ENOMEM;
    e->version = v.version;
    e->deleted = v.deleted != 0;
    l->n++;
    return 0;
}

/* The collection's digests, or the versions in the buckets asked for. */
static int h_sync_state(req_t *r) {
    Metaembed__SyncStateRequest *m = (void *)r->msg;
    uint64_t digests[ME_SYNC_BUCKETS];
    uint8_t want[ME_SYNC_BUCKETS] = { 0 };
    sync_list_t l = { .limit = (unsigned long long)SHARD(r)->opts.max_message / 2 };
    int rc;
    hold_t h;
    me_coll_t *c = hold_open(r, &h, m->collection);
    if (!c) { rc = r->reply->status; goto out; }
    for (size_t i = 0; i < m->n_list_buckets; i++) {
        if (m->list_buckets[i] >= ME_SYNC_BUCKETS) {
            rc = BAD(r, "bucket %u is out of range (there are %d)", m->list_buckets[i], ME_SYNC_BUCKETS);
            goto out;
        }
        want[m->list_buckets[i]] = 1;
    }
    Metaembed__SyncStateReply rep = METAEMBED__SYNC_STATE_REPLY__INIT;
    hold_lock(&h, 0);
    rep.version = c->cfg.version;
    if (!m->n_list_buckets) {
        if (c->digest) memcpy(digests, c->digest, sizeof digests);
        else memset(digests, 0, sizeof digests);
        rep.digests = digests;
        rep.n_digests = ME_SYNC_BUCKETS;
    } else {
        int e = me_versions_scan(SHARD(r)->storage, c, want, add_entry, &l);
        if (e == ME_ETOOBIG) {
            rc = me_reply_error(r->reply, ME_CODE_RESOURCE_EXHAUSTED,
                                "the versions of %zu buckets exceed half the message limit; ask for fewer buckets",
                                m->n_list_buckets);
            goto out;
        }
        if (e) { rc = me_reply_error(r->reply, status_of(e), "reading versions: %s", me_strerror(e)); goto out; }
        if (!(l.p = malloc((l.n ? l.n : 1) * sizeof *l.p))) { rc = ME_OOM(r); goto out; }
        for (size_t i = 0; i < l.n; i++) l.p[i] = &l.e[i];
        rep.entries = l.p;
        rep.n_entries = l.n;
    }
    rc = me_reply_ok(r->reply, &rep.base);
out:
    hold_close(&h);
    for (size_t i = 0; i < l.n; i++) free(l.e[i].id);
    free(l.e);
    free(l.p);
    return rc;
}

/* ---- snapshots ---- */

static void info_to_proto(Metaembed__SnapshotInfo *p, const me_shard_snapshot_t *i) {
    metaembed__snapshot_info__init(p);
    p->id = (char *)i->id;
    p->created_ms = i->created_ms;
    p->bytes = i->bytes;
    p->documents = i->documents;
    p->replicas = 1;
}

static int h_snapshot(req_t *r) {
    FENCE(r);
    Metaembed__SnapshotRequest *m = (void *)r->msg;
    me_shard_t *s = SHARD(r);
    char err[512];
    Metaembed__SnapshotReply rep = METAEMBED__SNAPSHOT_REPLY__INIT;
    int e;
    if (m->op == METAEMBED__SNAPSHOT_OP__SNAPSHOT_CREATE) {
        me_shard_snapshot_t info;
        Metaembed__SnapshotInfo p, *pp = &p;
        if ((e = me_snapshot_create(s, m->id, &info, err, sizeof err)) != 0)
            return me_reply_error(r->reply, status_of(e), "%s", err);
        info_to_proto(&p, &info);
        rep.snapshots = &pp;
        rep.n_snapshots = 1;
        return me_reply_ok(r->reply, &rep.base);
    }
    if (m->op == METAEMBED__SNAPSHOT_OP__SNAPSHOT_DELETE) {
        if ((e = me_snapshot_delete(s->opts.data_dir, m->id, err, sizeof err)) != 0)
            return me_reply_error(r->reply, status_of(e), "%s", err);
        return me_reply_ok(r->reply, &rep.base);
    }
    if (m->op != METAEMBED__SNAPSHOT_OP__SNAPSHOT_LIST) return BAD(r, "unknown snapshot op %d", (int)m->op);
    me_shard_snapshot_t *list = NULL;
    size_t n = 0;
    if ((e = me_snapshot_list(s->opts.data_dir, &list, &n, err, sizeof err)) != 0)
        return me_reply_error(r->reply, status_of(e), "%s", err);
    Metaembed__SnapshotInfo *ps = calloc(n ? n : 1, sizeof *ps), **pp = calloc(n ? n : 1, sizeof *pp);
    int rc;
    if (!ps || !pp) rc = ME_OOM(r);
    else {
        for (size_t i = 0; i < n; i++) {
            info_to_proto(&ps[i], &list[i]);
            pp[i] = &ps[i];
        }
        rep.snapshots = pp;
        rep.n_snapshots = n;
        rc = me_reply_ok(r->reply, &rep.base);
    }
    free(ps);
    free(pp);
    free(list);
    return rc;
}

/* ---- resharding ---- */

static int h_reshard(req_t *r) {
    Metaembed__ReshardRequest *m = (void *)r->msg;
    if (m->op != METAEMBED__RESHARD_OP__RESHARD_PURGE)
        return me_reply_error(r->reply, ME_CODE_UNIMPLEMENTED,
                              "a shard only purges; start or watch a move at a coordinator (metaembed cluster reshard)");
    /* A group at or past of_groups left the placement: it owns nothing. */
    if (m->of_groups < 1 || m->of_groups > ME_PLACEMENT_MAX_GROUPS || m->group >= ME_PLACEMENT_MAX_GROUPS)
        return BAD(r, "purge needs 1 <= of_groups <= %d and group < %d (got group %u of %u)", ME_PLACEMENT_MAX_GROUPS,
                   ME_PLACEMENT_MAX_GROUPS, m->group, m->of_groups);
    hold_t h;
    me_coll_t *c = hold_open(r, &h, m->collection);
    int rc;
    if (!c) rc = r->reply->status;
    else {
        uint64_t purged = 0;
        char err[256] = "";
        if (me_reshard_purge(SHARD(r), c, (int)m->group, (int)m->of_groups, &purged, err, sizeof err) != 0)
            rc = me_reply_error(r->reply, ME_CODE_INTERNAL, "%s", err);
        else {
            if (purged) me_info("purged %llu ids of %s that group %u of %u does not own", (unsigned long long)purged,
                                c->cfg.name, m->group, m->of_groups);
            Metaembed__ReshardReply rep = METAEMBED__RESHARD_REPLY__INIT;
            rep.purged = purged;
            rc = me_reply_ok(r->reply, &rep.base);
        }
    }
    hold_close(&h);
    return rc;
}

static const me_method_t handlers[] = {
    { METAEMBED__METHOD__METHOD_CREATE_COLLECTION, h_create },
    { METAEMBED__METHOD__METHOD_DROP_COLLECTION, h_drop },
    { METAEMBED__METHOD__METHOD_LIST_COLLECTIONS, h_list },
    { METAEMBED__METHOD__METHOD_UPSERT, h_upsert },
    { METAEMBED__METHOD__METHOD_DELETE, h_delete },
    { METAEMBED__METHOD__METHOD_GET, h_get },
    { METAEMBED__METHOD__METHOD_SEARCH, h_search },
    { METAEMBED__METHOD__METHOD_ENCODE, h_encode },
    { METAEMBED__METHOD__METHOD_STATS, h_stats },
    { METAEMBED__METHOD__METHOD_HEALTH, h_health },
    { METAEMBED__METHOD__METHOD_LIST_IDS, h_list_ids },
    { METAEMBED__METHOD__METHOD_COUNT, h_count },
    { METAEMBED__METHOD__METHOD_INDEX_FIELDS, h_index_fields },
    { METAEMBED__METHOD__METHOD_SYNC_STATE, h_sync_state },
    { METAEMBED__METHOD__METHOD_SNAPSHOT, h_snapshot },
    { METAEMBED__METHOD__METHOD_RESHARD, h_reshard },
};

void me_shard_handle(me_shard_t *s, const uint8_t *frame, size_t len, uint64_t *request_id, me_reply_t *reply) {
    me_dispatch(handlers, sizeof handlers / sizeof handlers[0], s, NULL, frame, len, s->opts.max_message,
                s->opts.default_deadline_ms, &s->requests, &s->errors, &s->metrics, request_id, reply);
    reply->placement = atomic_load(&s->placement);  /* every reply: coordinators learn a newer one */
}
