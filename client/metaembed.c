#include "include/metaembed.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/curve.h"
#include "common/dtype.h"
#include "common/error.h"
#include "common/filter_parse.h"
#include "common/payload.h"
#include "common/validate.h"
#include "common/wire.h"

struct me_client {
    void *zctx;
    void *sock;
    char endpoint[256];
    int timeout_ms;
    uint64_t next_rid;
    me_curve_t curve;         /* off unless connected with a key directory */
};

/* A fresh DEALER to the endpoint, with CurveZMQ when the client has keys. */
static int open_socket(me_client_t *c) {
    c->sock = me_wire_connect(c->zctx, c->endpoint, &c->curve);
    return c->sock ? 0 : -1;
}

static int set_status(me_status_t *st, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int set_status(me_status_t *st, int code, const char *fmt, ...) {
    if (st) {
        st->code = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(st->message, sizeof st->message, fmt, ap);
        va_end(ap);
    }
    return code;
}

const char *me_code_name(int code) { return me_status_name(code); }

/* The one exchange every call makes: sends the payload, waits for the
 * reply with the same request id (stale ones are dropped), and replaces the
 * socket on a timeout, so a late reply cannot be taken for the next request
 * (Lazy Pirate). A non-OK status is returned with its message in st. */
static int exchange(me_client_t *c, int method, const void *payload, size_t len, me_reply_t *rep, me_status_t *st) {
    me_reply_init(rep);
    uint64_t rid = ++c->next_rid;
    int rc = me_wire_call_raw(c->sock, rid, method, (uint32_t)c->timeout_ms, payload, len, c->timeout_ms, rep);
    if (rc == ME_ETIMEDOUT) {
        me_wire_close(c->sock);
        open_socket(c);
        return set_status(st, ME_CODE_DEADLINE_EXCEEDED, "no reply from %s within %d ms", c->endpoint,
                          c->timeout_ms);
    }
    if (rc) return set_status(st, ME_CODE_UNAVAILABLE, "cannot talk to %s: %s", c->endpoint, me_strerror(rc));
    if (rep->status != ME_CODE_OK) return set_status(st, rep->status, "%s: %s", me_status_name(rep->status), rep->message);
    return set_status(st, 0, "OK");
}

/* Packs req and exchanges it; a failed call leaves nothing in rep. */
static int call(me_client_t *c, int method, const ProtobufCMessage *req, me_reply_t *rep, me_status_t *st) {
    size_t len;
    uint8_t *buf = me_wire_pack(req, &len);
    if (!buf) { me_reply_init(rep); return set_status(st, ME_CODE_RESOURCE_EXHAUSTED, "out of memory"); }
    int rc = exchange(c, method, buf, len, rep, st);
    free(buf);
    if (rc) me_reply_clear(rep);
    return rc;
}

me_client_t *me_client_connect(const char *endpoint, int timeout_ms, me_status_t *st) {
    return me_client_connect_secure(endpoint, timeout_ms, NULL, NULL, st);
}

me_client_t *me_client_connect_secure(const char *endpoint, int timeout_ms, const char *curve_dir,
                                      const char *key_name, me_status_t *st) {
    me_client_t *c = calloc(1, sizeof *c);
    if (!c) { set_status(st, ME_CODE_RESOURCE_EXHAUSTED, "out of memory"); return NULL; }
    snprintf(c->endpoint, sizeof c->endpoint, "%s", endpoint);
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : 30000;
    char err[512];
    if (me_curve_load(curve_dir, key_name, &c->curve, err, sizeof err) != 0) {
        set_status(st, ME_CODE_INVALID_ARGUMENT, "%s", err);
        free(c);
        return NULL;
    }
    c->zctx = me_wire_context();
    if (open_socket(c) != 0) {
        set_status(st, ME_CODE_INVALID_ARGUMENT, "bad endpoint '%s': %s (expected e.g. tcp://127.0.0.1:7600)",
                   endpoint, me_wire_strerror());
        me_client_close(c);
        return NULL;
    }
    void *watch = me_wire_handshake_watch(c->zctx, c->sock);
    int rc = me_client_health(c, st);
    /* After a timeout the health call has replaced the socket; the watch
     * still holds what the old one saw of its handshake. */
    const char *why = me_wire_handshake_end(c->sock, watch);
    if (rc == ME_CODE_DEADLINE_EXCEEDED && why) set_status(st, ME_CODE_UNAVAILABLE, "cannot talk to %s: %s", endpoint, why);
    if (rc != 0) {
        me_client_close(c);
        return NULL;
    }
    c->timeout_ms = 30000;
    return c;
}

void me_client_close(me_client_t *c) {
    if (!c) return;
    if (c->sock) me_wire_close(c->sock);
    me_wire_context_end(c->zctx);
    me_curve_free(&c->curve);
    free(c);
}

void me_client_set_timeout(me_client_t *c, int timeout_ms) { c->timeout_ms = timeout_ms > 0 ? timeout_ms : 1; }

int me_client_health(me_client_t *c, me_status_t *st) {
    Metaembed__HealthRequest req = METAEMBED__HEALTH_REQUEST__INIT;
    me_reply_t rep;
    int rc = call(c, METAEMBED__METHOD__METHOD_HEALTH, &req.base, &rep, st);
    me_reply_clear(&rep);
    return rc;
}

int me_client_create_collection(me_client_t *c, const me_collection_spec_t *spec, me_status_t *st) {
    Metaembed__CollectionConfig pc = METAEMBED__COLLECTION_CONFIG__INIT;
    pc.name = (char *)(spec->name ? spec->name : "");
    pc.dim = (uint32_t)spec->dim;
    pc.max_doc_vectors = (uint32_t)spec->max_doc_vectors;
    pc.max_query_vectors = (uint32_t)spec->max_query_vectors;
    pc.ram_vectors = (uint32_t)spec->ram_vectors;
    pc.coarse_vectors = (uint32_t)spec->coarse_vectors;
    if (spec->durability) {
        int d = me_durability_from_name(spec->durability);
        if (d < 0) return set_status(st, ME_CODE_INVALID_ARGUMENT, "durability '%s' is not one of " ME_DURABILITY_CHOICES,
                                     spec->durability);
        pc.durability = (Metaembed__Durability)d;
    }
    if (spec->coarse_index) {
        int ci = me_coarse_index_from_name(spec->coarse_index);
        if (ci < 0) return set_status(st, ME_CODE_INVALID_ARGUMENT, "coarse_index '%s' is not one of " ME_COARSE_INDEX_CHOICES,
                                      spec->coarse_index);
        pc.coarse_index = (Metaembed__CoarseIndex)ci;
    }
    if (spec->ivf_lists < 0 || spec->ivf_probe < 0)
        return set_status(st, ME_CODE_INVALID_ARGUMENT, "ivf_lists and ivf_probe must be >= 0, got %d and %d",
                          spec->ivf_lists, spec->ivf_probe);
    pc.ivf_lists = (uint32_t)spec->ivf_lists;
    pc.ivf_probe = (uint32_t)spec->ivf_probe;
    pc.binary_coarse = spec->binary_coarse != 0;
    if (spec->dtype) {
        me_dtype_t dt = me_dtype_from_name(spec->dtype);
        if (!dt) return set_status(st, ME_CODE_INVALID_ARGUMENT, "dtype '%s' is not f32, f16 or int8", spec->dtype);
        pc.dtype = (Metaembed__DType)dt;
    }
    me_field_spec_t fields[ME_FIELDS_MAX];
    Metaembed__FieldSpec fs[ME_FIELDS_MAX], *fsp[ME_FIELDS_MAX];
    int nf = 0;
    char err[256];
    if (spec->fields && me_field_specs_parse(spec->fields, fields, &nf, err, sizeof err) != 0)
        return set_status(st, ME_CODE_INVALID_ARGUMENT, "fields: %s", err);
    me_field_specs_to_proto(fields, nf, fs, fsp);
    pc.fields = fsp;
    pc.n_fields = (size_t)nf;
    Metaembed__CreateCollectionRequest req = METAEMBED__CREATE_COLLECTION_REQUEST__INIT;
    req.config = &pc;
    me_reply_t rep;
    int rc = call(c, METAEMBED__METHOD__METHOD_CREATE_COLLECTION, &req.base, &rep, st);
    me_reply_clear(&rep);
    return rc;
}

int me_client_drop_collection(me_client_t *c, const char *name, me_status_t *st) {
    Metaembed__DropCollectionRequest req = METAEMBED__DROP_COLLECTION_REQUEST__INIT;
    req.name = (char *)name;
    me_reply_t rep;
    int rc = call(c, METAEMBED__METHOD__METHOD_DROP_COLLECTION, &req.base, &rep, st);
    me_reply_clear(&rep);
    return rc;
}

static void collection_info(me_collection_info_t *o, const Metaembed__CollectionInfo *ci) {
    memset(o, 0, sizeof *o);
    if (ci->config) {
        snprintf(o->name, sizeof o->name, "%s", ci->config->name);
        o->dim = (int)ci->config->dim;
        o->max_doc_vectors = (int)ci->config->max_doc_vectors;
        o->max_query_vectors = (int)ci->config->max_query_vectors;
        o->ram_vectors = (int)ci->config->ram_vectors;
        o->coarse_vectors = (int)ci->config->coarse_vectors;
        snprintf(o->dtype, sizeof o->dtype, "%s", me_dtype_name((me_dtype_t)ci->config->dtype));
        snprintf(o->coarse_index, sizeof o->coarse_index, "%s", me_coarse_index_name((int)ci->config->coarse_index));
        o->ivf_lists = (int)ci->config->ivf_lists;
        o->ivf_probe = (int)ci->config->ivf_probe;
        o->binary_coarse = ci->config->binary_coarse ? 1 : 0;
        me_field_spec_t f[ME_FIELDS_MAX];
        int nf;
        me_field_specs_from_proto(f, &nf, ci->config->fields, ci->config->n_fields);
        me_field_specs_format(f, nf > ME_FIELDS_MAX ? ME_FIELDS_MAX : nf, o->fields, sizeof o->fields);
    }
    o->documents = ci->documents;
    o->ram_bytes = ci->ram_bytes;
    o->index_bytes = ci->index_bytes;
}

int me_client_list_collections(me_client_t *c, me_collection_info_t **out, size_t *n, me_status_t *st) {
    *out = NULL;
    *n = 0;
    Metaembed__ListCollectionsRequest req = METAEMBED__LIST_COLLECTIONS_REQUEST__INIT;
    me_reply_t rep;
    int rc = call(c, METAEMBED__METHOD__METHOD_LIST_COLLECTIONS, &req.base, &rep, st);
    if (rc) return rc;
    Metaembed__ListCollectionsReply *m = metaembed__list_collections_reply__unpack(NULL, rep.payload_len, rep.payload);
    me_reply_clear(&rep);
    if (!m) return set_status(st, ME_CODE_INTERNAL, "malformed ListCollections reply");
    *out = calloc(m->n_collections ? m->n_collections : 1, sizeof **out);
    if (!*out) { metaembed__list_collections_reply__free_unpacked(m, NULL); return set_status(st, ME_CODE_RESOURCE_EXHAUSTED, "out of memory"); }
    for (size_t i = 0; i < m->n_collections; i++) collection_info(&(*out)[i], m->collections[i]);
    *n = m->n_collections;
    metaembed__list_collections_reply__free_unpacked(m, NULL);
    return 0;
}

int me_client_upsert(me_client_t *c, const char *collection, const me_doc_t *docs, size_t n, int dim,
                     me_status_t *st) {
    Metaembed__Document *d = calloc(n ? n : 1, sizeof *d);
    Metaembed__Document **dp = calloc(n ? n : 1, sizeof *dp);
    Metaembed__Tensor *t = calloc(n ? n : 1, sizeof *t);
    uint32_t *shapes = calloc(2 * (n ? n : 1), sizeof *shapes);
    int rc;
    if (!d || !dp || !t || !shapes) { rc = set_status(st, ME_CODE_RESOURCE_EXHAUSTED, "out of memory"); goto out; }
    for (size_t i = 0; i < n; i++) {
        metaembed__document__init(&d[i]);
        metaembed__tensor__init(&t[i]);
        d[i].id = (char *)(docs[i].id ? docs[i].id : "");
        shapes[2 * i] = (uint32_t)docs[i].rows;
        shapes[2 * i + 1] = (uint32_t)dim;
        t[i].dtype = docs[i].f16 ? METAEMBED__DTYPE__DTYPE_F16 : METAEMBED__DTYPE__DTYPE_F32;
        t[i].shape = &shapes[2 * i];
        t[i].n_shape = 2;
        t[i].data.data = (uint8_t *)docs[i].vectors;
        t[i].data.len = docs[i].vectors ? (size_t)docs[i].rows * dim * (docs[i].f16 ? 2 : 4) : 0;
        d[i].vectors = &t[i];
        d[i].metadata.data = (uint8_t *)docs[i].metadata;
        d[i].metadata.len = docs[i].metadata ? docs[i].metadata_len : 0;
        dp[i] = &d[i];
    }
    Metaembed__UpsertRequest req = METAEMBED__UPSERT_REQUEST__INIT;
    req.collection = (char *)collection;
    req.documents = dp;
    req.n_documents = n;
    me_reply_t rep;
    rc = call(c, METAEMBED__METHOD__METHOD_UPSERT, &req.base, &rep, st);
    me_reply_clear(&rep);
out:
    free(d);
    free(dp);
    free(t);
    free(shapes);
    return rc;
}

int me_client_delete(me_client_t *c, const char *collection, const char *const *ids, size_t n,
                     uint32_t *deleted, me_status_t *st) {
    Metaembed__DeleteRequest req = METAEMBED__DELETE_REQUEST__INIT;
    req.collection = (char *)collection;
    req.ids = (char **)ids;
    req.n_ids = n;
    me_reply_t rep;
    int rc = call(c, METAEMBED__METHOD__METHOD_DELETE, &req.base, &rep, st);
    if (rc == 0 && deleted) {
        Metaembed__DeleteReply *m = metaembed__delete_reply__unpack(NULL, rep.payload_len, rep.payload);
        *deleted = m ? m->deleted : 0;
        if (m) metaembed__delete_reply__free_unpacked(m, NULL);
    }
    me_reply_clear(&rep);
    return rc;
}

/* The filter text parsed into *f (NULL for NULL or ""): 0, or
 * INVALID_ARGUMENT in st. */
static int parse_filter(const char *text, Metaembed__Filter **f, me_status_t *st) {
    *f = NULL;
    if (!text || !text[0]) return 0;
    char err[512];
    int rc = me_filter_parse(text, strlen(text), f, err, sizeof err);
    if (rc == ME_ENOMEM) return set_status(st, ME_CODE_RESOURCE_EXHAUSTED, "out of memory");
    return rc ? set_status(st, ME_CODE_INVALID_ARGUMENT, "%s", err) : 0;
}

int me_client_delete_where(me_client_t *c, const char *collection, const char *filter, uint32_t *deleted,
                           me_status_t *st) {
    Metaembed__DeleteRequest req = METAEMBED__DELETE_REQUEST__INIT;
    req.collection = (char *)collection;
    int rc = parse_filter(filter, &req.filter, st);
    if (rc) return rc;
    if (!req.filter) return set_status(st, ME_CODE_INVALID_ARGUMENT, "give a filter to delete by (drop the collection to delete everything)");
    me_reply_t rep;
    rc = call(c, METAEMBED__METHOD__METHOD_DELETE, &req.base, &rep, st);
    if (rc == 0 && deleted) {
        Metaembed__DeleteReply *m = metaembed__delete_reply__unpack(NULL, rep.payload_len, rep.payload);
        *deleted = m ? m->deleted : 0;
        if (m) metaembed__delete_reply__free_unpacked(m, NULL);
    }
    me_reply_clear(&rep);
    me_filter_free(req.filter);
    return rc;
}

int me_client_count(me_client_t *c, const char *collection, const char *filter, uint64_t *count, me_status_t *st) {
    *count = 0;
    Metaembed__CountRequest req = METAEMBED__COUNT_REQUEST__INIT;
    req.collection = (char *)collection;
    int rc = parse_filter(filter, &req.filter, st);
    if (rc) return rc;
    me_reply_t rep;
    rc = call(c, METAEMBED__METHOD__METHOD_COUNT, &req.base, &rep, st);
    me_filter_free(req.filter);
    if (rc) return rc;
    Metaembed__CountReply *m = metaembed__count_reply__unpack(NULL, rep.payload_len, rep.payload);
    me_reply_clear(&rep);
    if (!m) return set_status(st, ME_CODE_INTERNAL, "malformed Count reply");
    *count = m->count;
    metaembed__count_reply__free_unpacked(m, NULL);
    return 0;
}

int me_client_index_fields(me_client_t *c, const char *collection, const char *fields, uint64_t *indexed,
                           me_status_t *st) {
    me_field_spec_t f[ME_FIELDS_MAX];
    Metaembed__FieldSpec fs[ME_FIELDS_MAX], *fsp[ME_FIELDS_MAX];
    int nf = 0;
    char err[256];
    if (me_field_specs_parse(fields, f, &nf, err, sizeof err) != 0)
        return set_status(st, ME_CODE_INVALID_ARGUMENT, "fields: %s", err);
    if (!nf) return set_status(st, ME_CODE_INVALID_ARGUMENT, "give at least one field to index (NAME:TYPE)");
    me_field_specs_to_proto(f, nf, fs, fsp);
    Metaembed__IndexFieldsRequest req = METAEMBED__INDEX_FIELDS_REQUEST__INIT;
    req.collection = (char *)collection;
    req.fields = fsp;
    req.n_fields = (size_t)nf;
    me_reply_t rep;
    int rc = call(c, METAEMBED__METHOD__METHOD_INDEX_FIELDS, &req.base, &rep, st);
    if (rc == 0 && indexed) {
        Metaembed__IndexFieldsReply *m = metaembed__index_fields_reply__unpack(NULL, rep.payload_len, rep.payload);
        *indexed = m ? m->indexed : 0;
        if (m) metaembed__index_fields_reply__free_unpacked(m, NULL);
    }
    me_reply_clear(&rep);
    return rc;
}

/* Tensor → newly allocated f32 rows × dim (a reply's shape is checked like
 * a request's: me_tensor_view, sizes without overflow). */
static float *tensor_to_f32(const Metaembed__Tensor *t, int *rows, int *dim) {
    me_tensor_view_t v;
    char err[256];
    if (!t || t->n_shape != 2 || me_tensor_view(t, "reply", ME_ROWS_MAX, 0, &v, err, sizeof err) != 0) return NULL;
    size_t n = (size_t)v.rows * (size_t)v.dim;
    float *out = malloc(n * sizeof *out);
    if (!out) return NULL;
    size_t row_bytes = (size_t)v.dim * me_dtype_size(v.dtype);
    for (int i = 0; i < v.rows; i++)
        me_row_to_f32(out + (size_t)i * v.dim, v.data + (size_t)i * row_bytes, v.dtype, 1.0f, (size_t)v.dim);
    *rows = v.rows;
    *dim = v.dim;
    return out;
}

static void *dup_bytes(const ProtobufCBinaryData *b, size_t *len) {
    *len = b->len;
    if (!b->len) return NULL;
    void *p = malloc(b->len);
    if (p) memcpy(p, b->data, b->len);
    return p;
}

int me_client_get(me_client_t *c, const char *collection, const char *const *ids, size_t n_ids,
                  int with_vectors, me_record_t **out, size_t *n, me_status_t *st) {
    *out = NULL;
    *n = 0;
    Metaembed__GetRequest req = METAEMBED__GET_REQUEST__INIT;
    req.collection = (char *)collection;
    req.ids = (char **)ids;
    req.n_ids = n_ids;
    req.with_vectors = with_vectors;
    me_reply_t rep;
    int rc = call(c, METAEMBED__METHOD__METHOD_GET, &req.base, &rep, st);
    if (rc) return rc;
    Metaembed__GetReply *m = metaembed__get_reply__unpack(NULL, rep.payload_len, rep.payload);
    me_reply_clear(&rep);
    if (!m) return set_status(st, ME_CODE_INTERNAL, "malformed Get reply");
    *out = calloc(m->n_documents ? m->n_documents : 1, sizeof **out);
    if (!*out) { metaembed__get_reply__free_unpacked(m, NULL); return set_status(st, ME_CODE_RESOURCE_EXHAUSTED, "out of memory"); }
    for (size_t i = 0; i < m->n_documents; i++) {
        const Metaembed__Document *d = m->documents[i];
        me_record_t *r = &(*out)[i];
        r->id = strdup(d->id);
        if (d->vectors) r->vectors = tensor_to_f32(d->vectors, &r->rows, &r->dim);
        r->metadata = dup_bytes(&d->metadata, &r->metadata_len);
    }
    *n = m->n_documents;
    metaembed__get_reply__free_unpacked(m, NULL);
    return 0;
}

void me_records_free(me_record_t *r, size_t n) {
    if (!r) return;
    for (size_t i = 0; i < n; i++) {
        free(r[i].id);
        free(r[i].vectors);
        free(r[i].metadata);
    }
    free(r);
}

int me_client_list_ids(me_client_t *c, const char *collection, const char *after, uint32_t limit, char ***ids,
                       size_t *n, char **next_after, me_status_t *st) {
    return me_client_list_ids_where(c, collection, NULL, after, limit, ids, n, next_after, st);
}

int me_client_list_ids_where(me_client_t *c, const char *collection, const char *filter, const char *after,
                             uint32_t limit, char ***ids, size_t *n, char **next_after, me_status_t *st) {
    *ids = NULL;
    *n = 0;
    *next_after = NULL;
    Metaembed__ListIdsRequest req = METAEMBED__LIST_IDS_REQUEST__INIT;
    req.collection = (char *)collection;
    req.after = (char *)(after ? after : "");
    req.limit = limit;
    int rc = parse_filter(filter, &req.filter, st);
    if (rc) return rc;
    me_reply_t rep;
    rc = call(c, METAEMBED__METHOD__METHOD_LIST_IDS, &req.base, &rep, st);
    me_filter_free(req.filter);
    if (rc) return rc;
    Metaembed__ListIdsReply *m = metaembed__list_ids_reply__unpack(NULL, rep.payload_len, rep.payload);
    me_reply_clear(&rep);
    if (!m) return set_status(st, ME_CODE_INTERNAL, "malformed ListIds reply");
    *ids = calloc(m->n_ids ? m->n_ids : 1, sizeof **ids);
    int oom = !*ids;
    for (size_t i = 0; !oom && i < m->n_ids; i++) oom = !((*ids)[i] = strdup(m->ids[i]));
    if (!oom && m->next_after[0]) oom = !(*next_after = strdup(m->next_after));
    *n = *ids ? m->n_ids : 0;
    metaembed__list_ids_reply__free_unpacked(m, NULL);
    if (oom) {
        me_ids_free(*ids, *n);
        free(*next_after);
        *ids = NULL;
        *n = 0;
        *next_after = NULL;
        return set_status(st, ME_CODE_RESOURCE_EXHAUSTED, "out of memory");
    }
    return 0;
}

void me_ids_free(char **ids, size_t n) {
    if (!ids) return;
    for (size_t i = 0; i < n; i++) free(ids[i]);
    free(ids);
}

/* Sends a search whose query is either vectors (t) or text. */
/* One Search: vectors t, or a text and/or an image for the coordinator's
 * encoders. */
static int search_call(me_client_t *c, const char *collection, Metaembed__Tensor *t, const char *text,
                       const void *image, size_t image_len, const me_search_opts_t *o, me_results_t *out,
                       me_status_t *st) {
    memset(out, 0, sizeof *out);
    Metaembed__SearchRequest req = METAEMBED__SEARCH_REQUEST__INIT;
    req.collection = (char *)collection;
    req.query = t;
    if (text) req.text = (char *)text;
    req.image.data = (uint8_t *)image;
    req.image.len = image ? image_len : 0;
    req.r_q = (uint32_t)o->r_q;
    req.r_c = (uint32_t)o->r_c;
    req.k = o->k;
    req.offset = o->offset;
    uint32_t cand[2] = { o->candidates, o->refine_candidates };
    if (cand[0] || cand[1]) { req.candidates = cand; req.n_candidates = cand[1] ? 2 : 1; }
    req.exact = o->exact;
    req.with_metadata = o->with_metadata;
    req.all_or_nothing = o->all_or_nothing;
    req.mode = (Metaembed__SearchMode)o->mode;
    if (o->lexical_text) req.lexical_text = (char *)o->lexical_text;
    req.hybrid_candidates = o->hybrid_candidates;
    req.probe = o->probe;
    req.fusion = (Metaembed__Fusion)o->fusion;
    float alpha = o->alpha;
    if (o->has_alpha) { req.alpha = &alpha; req.n_alpha = 1; }
    req.rrf_k = o->rrf_k;
    req.target_ms = o->target_ms;
    uint32_t minb[2] = { (uint32_t)o->min_r_q, (uint32_t)o->min_r_c };
    if (o->min_r_q || o->min_r_c) { req.min_budget = minb; req.n_min_budget = 2; }
    req.anytime = o->anytime;
    int rc = parse_filter(o->filter, &req.filter, st);
    if (rc) return rc;
    me_reply_t rep;
    rc = call(c, METAEMBED__METHOD__METHOD_SEARCH, &req.base, &rep, st);
    me_filter_free(req.filter);
    if (rc) return rc;
    Metaembed__SearchReply *m = metaembed__search_reply__unpack(NULL, rep.payload_len, rep.payload);
    me_reply_clear(&rep);
    if (!m) return set_status(st, ME_CODE_INTERNAL, "malformed Search reply");
    out->hits = calloc(m->n_hits ? m->n_hits : 1, sizeof *out->hits);
    out->missing_groups = calloc(m->n_missing_groups ? m->n_missing_groups : 1, sizeof *out->missing_groups);
    if (!out->hits || !out->missing_groups) {
        metaembed__search_reply__free_unpacked(m, NULL);
        me_results_free(out);
        return set_status(st, ME_CODE_RESOURCE_EXHAUSTED, "out of memory");
    }
    for (size_t i = 0; i < m->n_hits; i++) {
        out->hits[i].id = strdup(m->hits[i]->id);
        out->hits[i].score = m->hits[i]->score;
        out->hits[i].dense_score = m->hits[i]->dense_score;
        out->hits[i].lexical_score = m->hits[i]->lexical_score;
        out->hits[i].metadata = dup_bytes(&m->hits[i]->metadata, &out->hits[i].metadata_len);
    }
    out->n = m->n_hits;
    out->r_q = (int)m->r_q;
    out->r_c = (int)m->r_c;
    out->documents = m->documents;
    out->partial = m->partial;
    out->degraded = m->degraded;
    out->predicted_ms = m->predicted_ms;
    snprintf(out->budget_reason, sizeof out->budget_reason, "%s", m->budget_reason);
    for (size_t i = 0; i < m->n_missing_groups; i++) out->missing_groups[i] = strdup(m->missing_groups[i]);
    out->n_missing = m->n_missing_groups;
    for (size_t i = 0; i < m->n_stages && i < 8; i++) {
        me_stage_info_t *s = &out->stages[i];
        snprintf(s->stage, sizeof s->stage, "%s", m->stages[i]->stage);
        s->r_q = (int)m->stages[i]->r_q;
        s->r_c = (int)m->stages[i]->r_c;
        s->in = m->stages[i]->candidates_in;
        s->out = m->stages[i]->candidates_out;
        s->micros = m->stages[i]->micros;
        out->n_stages = (int)i + 1;
    }
    metaembed__search_reply__free_unpacked(m, NULL);
    return 0;
}

int me_client_search(me_client_t *c, const char *collection, const float *query, int rows, int dim,
                     const me_search_opts_t *o, me_results_t *out, me_status_t *st) {
    uint32_t shape[2] = { (uint32_t)rows, (uint32_t)dim };
    Metaembed__Tensor t = METAEMBED__TENSOR__INIT;
    t.dtype = METAEMBED__DTYPE__DTYPE_F32;
    t.shape = shape;
    t.n_shape = 2;
    t.data.data = (uint8_t *)query;
    t.data.len = query ? (size_t)rows * dim * 4 : 0;
    return search_call(c, collection, query ? &t : NULL, NULL, NULL, 0, o, out, st);
}

int me_client_search_text(me_client_t *c, const char *collection, const char *text, const me_search_opts_t *o,
                          me_results_t *out, me_status_t *st) {
    return search_call(c, collection, NULL, text ? text : "", NULL, 0, o, out, st);
}

int me_client_search_image(me_client_t *c, const char *collection, const void *image, size_t len, const char *text,
                           const me_search_opts_t *o, me_results_t *out, me_status_t *st) {
    if (!image || !len) return set_status(st, ME_CODE_INVALID_ARGUMENT, "empty image: give PNG or JPEG bytes");
    return search_call(c, collection, NULL, text ? text : "", image, len, o, out, st);
}

int me_client_stats(me_client_t *c, const char *collection, me_stats_t *out, me_status_t *st) {
    memset(out, 0, sizeof *out);
    Metaembed__StatsRequest req = METAEMBED__STATS_REQUEST__INIT;
    req.collection = (char *)(collection ? collection : "");
    me_reply_t rep;
    int rc = call(c, METAEMBED__METHOD__METHOD_STATS, &req.base, &rep, st);
    if (rc) return rc;
    Metaembed__StatsReply *m = metaembed__stats_reply__unpack(NULL, rep.payload_len, rep.payload);
    me_reply_clear(&rep);
    if (!m) return set_status(st, ME_CODE_INTERNAL, "malformed Stats reply");
    snprintf(out->role, sizeof out->role, "%s", m->role);
    out->uptime_ms = m->uptime_ms;
    out->requests = m->requests;
    out->errors = m->errors;
    out->disk_bytes = m->disk_bytes;
    out->collections = calloc(m->n_collections ? m->n_collections : 1, sizeof *out->collections);
    out->groups = calloc(m->n_groups ? m->n_groups : 1, sizeof *out->groups);
    if (!out->collections || !out->groups) goto oom;
    for (size_t i = 0; i < m->n_collections; i++) collection_info(&out->collections[i], m->collections[i]);
    out->n_collections = m->n_collections;
    for (size_t g = 0; g < m->n_groups; g++) {
        const Metaembed__GroupStatus *gs = m->groups[g];
        me_group_info_t *o = &out->groups[g];
        snprintf(o->name, sizeof o->name, "%s", gs->name);
        o->replicas = calloc(gs->n_replicas ? gs->n_replicas : 1, sizeof *o->replicas);
        if (!o->replicas) goto oom;
        out->n_groups = g + 1;
        for (size_t r = 0; r < gs->n_replicas; r++) {
            me_replica_info_t *ri = &o->replicas[r];
            snprintf(ri->endpoint, sizeof ri->endpoint, "%s", gs->replicas[r]->endpoint);
            ri->up = gs->replicas[r]->up;
            ri->documents = gs->replicas[r]->documents;
            ri->latency_ms = gs->replicas[r]->latency_ms;
            ri->liveness = (int)gs->replicas[r]->liveness;
        }
        o->n_replicas = gs->n_replicas;
    }
    metaembed__stats_reply__free_unpacked(m, NULL);
    return 0;
oom:
    metaembed__stats_reply__free_unpacked(m, NULL);
    me_stats_free(out);
    return set_status(st, ME_CODE_RESOURCE_EXHAUSTED, "out of memory");
}

void me_stats_free(me_stats_t *s) {
    if (s->groups)
        for (size_t g = 0; g < s->n_groups; g++) free(s->groups[g].replicas);
    free(s->groups);
    free(s->collections);
    memset(s, 0, sizeof *s);
}

int me_client_encode(me_client_t *c, const char *const *texts, size_t n, int query_side, float **vectors,
                     int *rows, int *dim, me_status_t *st) {
    *vectors = NULL;
    Metaembed__EncodeRequest req = METAEMBED__ENCODE_REQUEST__INIT;
    req.texts = (char **)texts;
    req.n_texts = n;
    req.query_side = query_side;
    me_reply_t rep;
    int rc = call(c, METAEMBED__METHOD__METHOD_ENCODE, &req.base, &rep, st);
    if (rc) return rc;
    Metaembed__EncodeReply *m = metaembed__encode_reply__unpack(NULL, rep.payload_len, rep.payload);
    me_reply_clear(&rep);
    const Metaembed__Tensor *t = m ? m->vectors : NULL;
    size_t want = 0;
    if (!t || t->n_shape != 3 || t->dtype != METAEMBED__DTYPE__DTYPE_F32 || t->shape[0] != n ||
        t->shape[1] < 1 || t->shape[1] > ME_ROWS_MAX || t->shape[2] < 1 || t->shape[2] > ME_DIM_MAX ||
        __builtin_mul_overflow((size_t)t->shape[0], (size_t)t->shape[1] * t->shape[2] * 4, &want) ||
        t->data.len != want) {
        if (m) metaembed__encode_reply__free_unpacked(m, NULL);
        return set_status(st, ME_CODE_INTERNAL, "malformed Encode reply");
    }
    *vectors = malloc(t->data.len ? t->data.len : 1);
    if (*vectors) memcpy(*vectors, t->data.data, t->data.len);
    *rows = (int)t->shape[1];
    *dim = (int)t->shape[2];
    metaembed__encode_reply__free_unpacked(m, NULL);
    return *vectors ? 0 : set_status(st, ME_CODE_RESOURCE_EXHAUSTED, "out of memory");
}

void me_results_free(me_results_t *r) {
    if (r->hits)
        for (size_t i = 0; i < r->n; i++) { free(r->hits[i].id); free(r->hits[i].metadata); }
    if (r->missing_groups)
        for (size_t i = 0; i < r->n_missing; i++) free(r->missing_groups[i]);
    free(r->hits);
    free(r->missing_groups);
    memset(r, 0, sizeof *r);
}

/* Any protobuf payload: wrap the bytes as an opaque message for packing. */
int me_client_call(me_client_t *c, int method, const void *payload, size_t len,
                   void **reply, size_t *reply_len, me_status_t *st) {
    /* The payload goes as given, so tools and tests can send malformed ones. */
    me_reply_t rep;
    int code = exchange(c, method, payload, len, &rep, st);
    if (reply) *reply = dup_bytes(&(ProtobufCBinaryData){ .len = rep.payload_len, .data = rep.payload }, reply_len);
    me_reply_clear(&rep);
    return code;
}

/* ---- snapshots ---- */

static void snapshot_from_proto(me_snapshot_info_t *o, const Metaembed__SnapshotInfo *p) {
    memset(o, 0, sizeof *o);
    snprintf(o->id, sizeof o->id, "%.64s", p->id ? p->id : "");
    o->created_ms = p->created_ms;
    o->bytes = p->bytes;
    o->documents = p->documents;
    o->replicas = p->replicas;
}

static int snapshot_call(me_client_t *c, int op, const char *id, Metaembed__SnapshotReply **out, me_status_t *st) {
    Metaembed__SnapshotRequest req = METAEMBED__SNAPSHOT_REQUEST__INIT;
    req.op = (Metaembed__SnapshotOp)op;
    req.id = (char *)(id ? id : "");
    me_reply_t rep;
    *out = NULL;
    int rc = call(c, METAEMBED__METHOD__METHOD_SNAPSHOT, &req.base, &rep, st);
    if (rc == 0) {
        *out = metaembed__snapshot_reply__unpack(NULL, rep.payload_len, rep.payload);
        if (!*out) rc = set_status(st, ME_CODE_INTERNAL, "malformed Snapshot reply");
    }
    me_reply_clear(&rep);
    return rc;
}

int me_client_snapshot_create(me_client_t *c, const char *id, me_snapshot_info_t *out, me_status_t *st) {
    Metaembed__SnapshotReply *r;
    int rc = snapshot_call(c, METAEMBED__SNAPSHOT_OP__SNAPSHOT_CREATE, id, &r, st);
    if (rc == 0 && out) {
        if (r->n_snapshots) snapshot_from_proto(out, r->snapshots[0]);
        else memset(out, 0, sizeof *out);
    }
    if (r) metaembed__snapshot_reply__free_unpacked(r, NULL);
    return rc;
}

int me_client_snapshot_list(me_client_t *c, me_snapshot_info_t **out, size_t *n, me_status_t *st) {
    Metaembed__SnapshotReply *r;
    *out = NULL;
    *n = 0;
    int rc = snapshot_call(c, METAEMBED__SNAPSHOT_OP__SNAPSHOT_LIST, NULL, &r, st);
    if (rc == 0) {
        *out = calloc(r->n_snapshots ? r->n_snapshots : 1, sizeof **out);
        if (!*out) rc = set_status(st, ME_CODE_RESOURCE_EXHAUSTED, "out of memory");
        for (size_t i = 0; rc == 0 && i < r->n_snapshots; i++) snapshot_from_proto(&(*out)[i], r->snapshots[i]);
        if (rc == 0) *n = r->n_snapshots;
    }
    if (r) metaembed__snapshot_reply__free_unpacked(r, NULL);
    return rc;
}

int me_client_snapshot_delete(me_client_t *c, const char *id, me_status_t *st) {
    Metaembed__SnapshotReply *r;
    int rc = snapshot_call(c, METAEMBED__SNAPSHOT_OP__SNAPSHOT_DELETE, id, &r, st);
    if (r) metaembed__snapshot_reply__free_unpacked(r, NULL);
    return rc;
}

/* ---- resharding ---- */

static int reshard_call(me_client_t *c, int op, uint32_t groups, uint32_t max_rate, me_reshard_info_t *out,
                        me_status_t *st) {
    Metaembed__ReshardRequest req = METAEMBED__RESHARD_REQUEST__INIT;
    req.op = (Metaembed__ReshardOp)op;
    req.groups = groups;
    req.max_rate = max_rate;
    me_reply_t rep;
    int rc = call(c, METAEMBED__METHOD__METHOD_RESHARD, &req.base, &rep, st);
    Metaembed__ReshardReply *r = NULL;
    if (rc == 0 && !(r = metaembed__reshard_reply__unpack(NULL, rep.payload_len, rep.payload)))
        rc = set_status(st, ME_CODE_INTERNAL, "malformed Reshard reply");
    me_reply_clear(&rep);
    if (rc == 0 && out) {
        memset(out, 0, sizeof *out);
        snprintf(out->phase, sizeof out->phase, "%s", r->phase);
        out->from_groups = r->from_groups;
        out->to_groups = r->to_groups;
        out->epoch = r->epoch;
        out->running = r->running;
        out->moved = r->moved;
        out->estimate = r->estimate;
        out->purged = r->purged;
        out->progress = r->progress;
        out->docs_per_s = r->docs_per_s;
        out->eta_ms = r->eta_ms;
        out->elapsed_ms = r->elapsed_ms;
        snprintf(out->error, sizeof out->error, "%s", r->error);
        snprintf(out->waiting, sizeof out->waiting, "%s", r->waiting);
    }
    if (r) metaembed__reshard_reply__free_unpacked(r, NULL);
    return rc;
}

int me_client_reshard_start(me_client_t *c, uint32_t groups, uint32_t max_rate, me_reshard_info_t *out,
                            me_status_t *st) {
    return reshard_call(c, METAEMBED__RESHARD_OP__RESHARD_START, groups, max_rate, out, st);
}

int me_client_reshard_status(me_client_t *c, me_reshard_info_t *out, me_status_t *st) {
    return reshard_call(c, METAEMBED__RESHARD_OP__RESHARD_STATUS, 0, 0, out, st);
}
