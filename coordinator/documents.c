/* Documents by id through the coordinator: each id is placed on its owning
 * group; writes (upsert, delete) go to every replica and are acknowledged
 * at the write quorum, a Get asks one live replica per group and answers in
 * request order. Documents are validated here as the shards would
 * (common/validate.c), so none is written to some groups and refused by
 * others. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "common/payload.h"
#include "common/sync.h"
#include "coordinator/handlers.h"

/* A request split by placement: group g's packed part, when used[g]. */
typedef struct {
    int n;                 /* shard groups */
    uint8_t **payload;     /* owned */
    size_t *len;
    int *used;
} parts_t;

static int parts_init(parts_t *p, int ngroups) {
    p->n = ngroups;
    p->payload = calloc((size_t)ngroups, sizeof *p->payload);
    p->len = calloc((size_t)ngroups, sizeof *p->len);
    p->used = calloc((size_t)ngroups, sizeof *p->used);
    return p->payload && p->len && p->used ? 0 : -1;
}

static void parts_free(parts_t *p) {
    if (p->payload)
        for (int g = 0; g < p->n; g++) free(p->payload[g]);
    free(p->payload);
    free(p->len);
    free(p->used);
    memset(p, 0, sizeof *p);
}

/* Checks the write quorum per group; sets UNAVAILABLE naming the groups
 * that fell short. Returns 0 when every group met it. */
static int check_quorum(req_t *r, me_call_t *calls, int n, const int *groups) {
    me_cluster_t *cl = &COORD(r)->cluster;
    char names[512] = "";
    int short_groups = 0;
    for (int g = 0; g < me_coord_span_groups(r); g++) {
        if (groups && !groups[g]) continue;
        int acks = 0;
        for (int i = 0; i < n; i++)
            if (calls[i].group == g && me_coord_group_ok(&calls[i])) acks++;
        int need = me_coord_write_need(r, g);
        if (acks < need) {
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s (%d of %d acknowledged)",
                     short_groups ? ", " : "", cl->groups[g].name, acks, need);
            short_groups++;
        }
    }
    if (!short_groups) return 0;
    return me_reply_error(r->reply, ME_CODE_UNAVAILABLE,
                          "write quorum not met for group %s; the write may be applied on some replicas: "
                          "retry it (upserts and deletes are idempotent)", names);
}

/* The shard's own checks (common/validate.c) against the collection's
 * shape and dtype, so a bad document cannot be written to some groups and
 * refused by others. */
static int check_document(req_t *r, const Metaembed__Document *d, size_t i, const Metaembed__CollectionConfig *cfg,
                          const me_field_spec_t *fields, int nfields) {
    me_tensor_view_t v;
    char what[ME_WHAT_MAX], err[ME_WHAT_MAX + 256];
    int e = me_document_check(d, i, (int)cfg->max_doc_vectors, (int)cfg->dim, &v, what, err, sizeof err);
    if (e == 0) e = me_tensor_convert(&v, v.rows, (me_dtype_t)cfg->dtype, NULL, NULL, what, err, sizeof err);
    if (e) return me_reply_error(r->reply, me_error_status(e), "%s", err);
    /* The indexed fields' types, as the shard checks them. */
    uint8_t *rec = NULL;
    size_t rlen = 0;
    char ferr[256];
    e = me_payload_record(fields, nfields, d->metadata.data, d->metadata.len, &rec, &rlen, ferr, sizeof ferr);
    free(rec);
    return e ? me_reply_error(r->reply, me_error_status(e), "%s: %s", what, ferr) : 0;
}

typedef struct {
    Metaembed__CollectionConfig *out;
    me_field_spec_t *fields;
    int *nfields;
} shape_t;

/* A config's shape and fields into the caller's copies (no strings kept). */
static void take_shape(void *ctx, const Metaembed__CollectionConfig *c) {
    shape_t *s = ctx;
    *s->out = *c;
    s->out->name = NULL;
    me_field_specs_from_proto(s->fields, s->nfields, c->fields, c->n_fields);
    if (*s->nfields > ME_FIELDS_MAX) *s->nfields = ME_FIELDS_MAX;
    s->out->fields = NULL;
    s->out->n_fields = 0;
}

/* The collection's config, from the cache or asked of the groups (any one
 * that knows it), so documents are checked against it before anything is
 * sent. */
static int collection_shape(req_t *r, const char *name, Metaembed__CollectionConfig *out, me_field_spec_t *fields,
                            int *nfields) {
    shape_t shape = { out, fields, nfields };
    if (me_config_cache_with(&COORD(r)->configs, name, take_shape, &shape)) return 0;
    Metaembed__ListCollectionsRequest lreq = METAEMBED__LIST_COLLECTIONS_REQUEST__INIT;
    uint8_t buf[8];
    size_t len = metaembed__list_collections_request__pack(&lreq, buf);
    int ng = me_coord_read_groups(r), found = 0, answered = 0;
    me_call_t *calls = me_coord_read_calls(r, METAEMBED__METHOD__METHOD_LIST_COLLECTIONS, buf, len);
    if (!calls) return OOM(r);
    for (int g = 0; g < ng && !found; g++) {
        if (!me_coord_group_ok(&calls[g])) continue;
        answered++;
        Metaembed__ListCollectionsReply *l =
            metaembed__list_collections_reply__unpack(NULL, calls[g].reply.payload_len, calls[g].reply.payload);
        for (size_t i = 0; l && i < l->n_collections && !found; i++) {
            const Metaembed__CollectionConfig *c = l->collections[i]->config;
            if (c && strcmp(c->name, name) == 0) {
                take_shape(&shape, c);
                me_config_cache_put(&COORD(r)->configs, c);
                found = 1;
            }
        }
        if (l) metaembed__list_collections_reply__free_unpacked(l, NULL);
    }
    int st = me_coord_down_status(calls, ng);
    me_calls_clear(calls, ng);
    free(calls);
    if (found) return 0;
    if (!answered)
        return me_reply_error(r->reply, st, "no shard group answered; retry later%s", DEADLINE_HINT(st));
    return me_reply_error(r->reply, ME_CODE_NOT_FOUND,
                          ME_NO_COLLECTION ME_NO_COLLECTION_HINT, name);
}

/* The groups each id goes to under the request's placement: owner[2i],
 * and owner[2i + 1] when a move's dual writes send a write to a second
 * group (else -1). Reads go to the owner under the read placement only. */
static int *place(req_t *r, char **ids, size_t n, int write) {
    int *owner = malloc((n ? 2 * n : 1) * sizeof *owner);
    if (!owner) return NULL;
    me_placement_t p = me_coord_placement(r);
    int reads = me_placement_read_groups(p);
    for (size_t i = 0; i < n; i++) {
        int t[2] = { -1, -1 };
        if (write) me_placement_write_targets(p, ids[i], strlen(ids[i]), t);
        else t[0] = me_place(ids[i], strlen(ids[i]), reads);
        owner[2 * i] = t[0];
        owner[2 * i + 1] = t[1];
    }
    return owner;
}

static int goes_to(const int *owner, size_t i, int g) { return owner[2 * i] == g || owner[2 * i + 1] == g; }


int me_coord_upsert(req_t *r) {
    Metaembed__UpsertRequest *m = (void *)r->msg;
    int ng = me_coord_span_groups(r), rc, ncalls = 0;
    me_call_t *calls = NULL;
    parts_t parts;
    int parts_ok = parts_init(&parts, ng) == 0;
    char **ids = calloc(m->n_documents ? m->n_documents : 1, sizeof *ids);
    Metaembed__Document **sub = calloc(m->n_documents ? m->n_documents : 1, sizeof *sub);
    int *owner = NULL;
    if (!parts_ok || !ids || !sub) { rc = OOM(r); goto out; }
    if ((rc = me_request_check_batch(r, m->n_documents, COORD(r)->opts.max_batch, "document")) != 0) goto out;
    Metaembed__CollectionConfig cfg = METAEMBED__COLLECTION_CONFIG__INIT;
    me_field_spec_t fields[ME_FIELDS_MAX];
    int nfields = 0;
    if ((rc = collection_shape(r, m->collection, &cfg, fields, &nfields)) != 0) goto out;
    /* One version for the whole write, the coordinator's (a client's own
     * is replaced: versions order this cluster's writes). */
    uint64_t version = me_version_next();
    for (size_t i = 0; i < m->n_documents; i++) {
        if ((rc = check_document(r, m->documents[i], i, &cfg, fields, nfields)) != 0) goto out;
        ids[i] = m->documents[i]->id;
        m->documents[i]->version = version;
    }
    if (!(owner = place(r, ids, m->n_documents, 1))) { rc = OOM(r); goto out; }
    for (int g = 0; g < ng; g++) {
        size_t k = 0;
        for (size_t i = 0; i < m->n_documents; i++)
            if (goes_to(owner, i, g)) sub[k++] = m->documents[i];
        if (!k) continue;
        Metaembed__UpsertRequest part = METAEMBED__UPSERT_REQUEST__INIT;
        part.collection = m->collection;
        part.documents = sub;
        part.n_documents = k;
        if (!(parts.payload[g] = me_wire_pack(&part.base, &parts.len[g]))) { rc = OOM(r); goto out; }
        parts.used[g] = 1;
    }
    pthread_rwlock_rdlock(&COORD(r)->write_gate);
    calls = me_coord_write_calls(r, parts.payload, parts.len, parts.used, &ncalls);
    pthread_rwlock_unlock(&COORD(r)->write_gate);
    if (!calls) { rc = OOM(r); goto out; }
    if ((rc = me_coord_first_request_error(r, calls, ncalls)) != 0) goto out;
    if ((rc = check_quorum(r, calls, ncalls, parts.used)) != 0) goto out;
    Metaembed__UpsertReply rep = METAEMBED__UPSERT_REPLY__INIT;
    rep.upserted = (uint32_t)m->n_documents;
    rc = me_reply_ok(r->reply, &rep.base);
out:
    if (calls) me_calls_clear(calls, ncalls);
    free(calls);
    parts_free(&parts);
    free(ids);
    free(sub);
    free(owner);
    return rc;
}

/* Splits a list of ids by group into per-group packed requests built by
 * `pack_ids` (Delete or Get). */
typedef size_t (*pack_ids_fn)(const void *proto, char **ids, size_t n, uint8_t **out);

static size_t pack_delete(const void *proto, char **ids, size_t n, uint8_t **out) {
    Metaembed__DeleteRequest part = *(const Metaembed__DeleteRequest *)proto;
    part.ids = ids;
    part.n_ids = n;
    size_t len;
    *out = me_wire_pack(&part.base, &len);
    return len;
}

static size_t pack_get(const void *proto, char **ids, size_t n, uint8_t **out) {
    Metaembed__GetRequest part = *(const Metaembed__GetRequest *)proto;
    part.ids = ids;
    part.n_ids = n;
    size_t len;
    *out = me_wire_pack(&part.base, &len);
    return len;
}

/* Fills the parts per group; returns owner[] (caller frees) or NULL. */
static int *split_ids(req_t *r, const void *proto, char **ids, size_t n, pack_ids_fn pack, parts_t *parts, int write) {
    int *owner = place(r, ids, n, write);
    char **sub = calloc(n ? n : 1, sizeof *sub);
    if (!owner || !sub) { free(owner); free(sub); return NULL; }
    for (int g = 0; g < parts->n; g++) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (goes_to(owner, i, g)) sub[k++] = ids[i];
        if (!k) continue;
        parts->len[g] = pack(proto, sub, k, &parts->payload[g]);
        if (!parts->payload[g]) { free(owner); free(sub); return NULL; }
        parts->used[g] = 1;
    }
    free(sub);
    return owner;
}

static int check_ids(req_t *r, char **ids, size_t n) {
    int rc = me_request_check_batch(r, n, COORD(r)->opts.max_batch, "id");
    char err[128];
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (me_check_id(ids[i], i, err, sizeof err) != 0) rc = BAD(r, "%s", err);
    return rc;
}

int me_coord_delete(req_t *r) {
    Metaembed__DeleteRequest *m = (void *)r->msg;
    int ng = me_coord_span_groups(r), rc, ncalls = 0;
    me_call_t *calls = NULL;
    parts_t parts;
    int *owner = NULL;
    if (parts_init(&parts, ng) != 0) { rc = OOM(r); goto out; }
    if (m->filter && m->n_ids) { rc = BAD(r, "give ids or a filter to delete by, not both"); goto out; }
    if (!m->filter && (rc = check_ids(r, m->ids, m->n_ids)) != 0) goto out;
    m->version = me_version_next();  /* the tombstones' version */
    /* By filter: every group holds documents it may match. */
    if (m->filter) {
        for (int g = 0; g < ng; g++) {
            if (!(parts.payload[g] = me_wire_pack(&m->base, &parts.len[g]))) { rc = OOM(r); goto out; }
            parts.used[g] = 1;
        }
    } else if (!(owner = split_ids(r, m, m->ids, m->n_ids, pack_delete, &parts, 1))) { rc = OOM(r); goto out; }
    pthread_rwlock_rdlock(&COORD(r)->write_gate);
    calls = me_coord_write_calls(r, parts.payload, parts.len, parts.used, &ncalls);
    pthread_rwlock_unlock(&COORD(r)->write_gate);
    if (!calls) { rc = OOM(r); goto out; }
    if ((rc = me_coord_first_request_error(r, calls, ncalls)) != 0) goto out;
    if ((rc = check_quorum(r, calls, ncalls, m->filter ? NULL : parts.used)) != 0) goto out;
    /* Per group, the most any replica deleted (replicas agree when in sync). */
    uint32_t deleted = 0;
    for (int g = 0; g < ng; g++) {
        uint32_t best = 0;
        for (int i = 0; i < ncalls; i++) {
            if (calls[i].group != g || !me_coord_group_ok(&calls[i])) continue;
            Metaembed__DeleteReply *d = metaembed__delete_reply__unpack(NULL, calls[i].reply.payload_len, calls[i].reply.payload);
            if (d) {
                if (d->deleted > best) best = d->deleted;
                metaembed__delete_reply__free_unpacked(d, NULL);
            }
        }
        deleted += best;
    }
    Metaembed__DeleteReply rep = METAEMBED__DELETE_REPLY__INIT;
    rep.deleted = deleted;
    rc = me_reply_ok(r->reply, &rep.base);
out:
    if (calls) me_calls_clear(calls, ncalls);
    free(calls);
    parts_free(&parts);
    free(owner);
    return rc;
}

static int missing_groups_error(req_t *r, me_call_t *calls, int n, const int *used) {
    char names[512] = "";
    int k = 0;
    for (int i = 0; i < n; i++)
        if ((!used || used[calls[i].group]) && !me_coord_group_ok(&calls[i]))
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", k++ ? ", " : "",
                     me_coord_group_name(r, calls[i].group));
    if (!k) return 0;
    int st = me_coord_down_status(calls, n);
    return me_reply_error(r->reply, st, "no live replica answered for group %s; retry later%s", names, DEADLINE_HINT(st));
}

/* A Get reads R = N - W + 1 replicas of each group (N replicas, W the
 * write quorum), so the replicas read overlap those of every acknowledged
 * write, and answers each id's newest version among them (a document, or
 * a tombstone's "missing"). A replica found behind is marked stale, so the
 * repair thread fixes it (read repair). */
typedef struct {
    Metaembed__GetReply *rep;
    int replica;
    size_t doc_at, miss_at;   /* cursors: both lists are in request order */
} get_part_t;

int me_coord_get(req_t *r) {
    Metaembed__GetRequest *m = (void *)r->msg;
    me_cluster_t *cl = &COORD(r)->cluster;
    int ng = me_coord_read_groups(r), rc, ncalls = 0, nparts = 0;
    me_call_t *calls = calloc((size_t)cl->n_replicas, sizeof *calls);
    get_part_t *parts = calloc((size_t)cl->n_replicas, sizeof *parts);
    int *need = calloc((size_t)ng, sizeof *need);
    parts_t req_parts;
    int parts_ok = parts_init(&req_parts, ng) == 0, *owner = NULL;
    Metaembed__Document **docs = calloc(m->n_ids ? m->n_ids : 1, sizeof *docs);
    char **missing = calloc(m->n_ids ? m->n_ids : 1, sizeof *missing);
    char **ids = calloc(m->n_ids ? m->n_ids : 1, sizeof *ids);
    if (!calls || !parts || !need || !parts_ok || !docs || !missing || !ids) { rc = OOM(r); goto out; }
    if ((rc = check_ids(r, m->ids, m->n_ids)) != 0) goto out;
    /* Each id is asked for and answered once, however often it was sent. */
    memcpy(ids, m->ids, m->n_ids * sizeof *ids);
    long nu = me_ids_dedupe(ids, m->n_ids);
    if (nu < 0) { rc = OOM(r); goto out; }
    size_t n = (size_t)nu;
    if (!(owner = split_ids(r, m, ids, n, pack_get, &req_parts, 0))) { rc = OOM(r); goto out; }
    for (int g = 0; g < ng; g++) {
        if (!req_parts.used[g]) continue;
        const me_group_t *grp = &cl->groups[g];
        need[g] = grp->n_replicas - me_coord_write_need(r, g) + 1;
        int live = 0;
        for (int k = 0; k < grp->n_replicas; k++) live += atomic_load(&cl->replicas[grp->first_replica + k].up);
        if (need[g] > live) need[g] = live > 0 ? live : 1;  /* fewer answer: the newest of those that do */
        for (int k = 0; k < grp->n_replicas; k++)
            calls[ncalls++] = (me_call_t){ .group = g, .replica = grp->first_replica + k, .method = r->method,
                                           .payload = req_parts.payload[g], .len = req_parts.len[g] };
    }
    /* Reading every replica (W = 1): one that cannot answer costs a grace,
     * not the deadline; freshness then holds only while every replica
     * holding the newest write answers (docs/cluster.md). */
    int lenient = 1;
    for (int g = 0; g < ng; g++)
        if (req_parts.used[g] && need[g] < cl->groups[g].n_replicas) lenient = 0;
    me_fanout_run_reads(FANOUT(r), calls, ncalls, me_coord_fanout_deadline(r), need, lenient);
    if ((rc = me_coord_first_request_error(r, calls, ncalls)) != 0) goto out;
    for (int g = 0; g < ng; g++) {
        if (!req_parts.used[g]) continue;
        int answered = 0;
        for (int i = 0; i < ncalls; i++) answered += calls[i].group == g && me_coord_group_ok(&calls[i]);
        if (!answered) {
            int st = me_coord_down_status(calls, ncalls);
            rc = me_reply_error(r->reply, st, "no live replica answered for group %s; retry later%s",
                                me_coord_group_name(r, g), DEADLINE_HINT(st));
            goto out;
        }
    }
    for (int i = 0; i < ncalls; i++) {
        if (!me_coord_group_ok(&calls[i])) continue;
        Metaembed__GetReply *gr = metaembed__get_reply__unpack(NULL, calls[i].reply.payload_len, calls[i].reply.payload);
        if (!gr) { rc = me_reply_error(r->reply, ME_CODE_INTERNAL, "malformed Get reply from a shard"); goto out; }
        parts[nparts++] = (get_part_t){ gr, calls[i].replica, 0, 0 };
    }
    size_t nd = 0, nm = 0;
    for (size_t i = 0; i < n; i++) {
        Metaembed__Document *best = NULL;
        uint64_t best_v = 0;
        int have_best = 0;
        uint64_t seen_v[64];
        int seen_p[64], ns = 0;
        for (int p = 0; p < nparts; p++) {
            get_part_t *gp = &parts[p];
            if (cl->replicas[gp->replica].group != owner[2 * i]) continue;
            Metaembed__GetReply *gr = gp->rep;
            Metaembed__Document *d = NULL;
            uint64_t v = 0;
            if (gp->doc_at < gr->n_documents && strcmp(gr->documents[gp->doc_at]->id, ids[i]) == 0) {
                d = gr->documents[gp->doc_at++];
                v = d->version;
            } else if (gp->miss_at < gr->n_missing && strcmp(gr->missing[gp->miss_at], ids[i]) == 0) {
                v = gp->miss_at < gr->n_missing_versions ? gr->missing_versions[gp->miss_at] : 0;
                gp->miss_at++;
            }
            if (!have_best || v > best_v) { best = d; best_v = v; have_best = 1; }
            if (ns < 64) { seen_v[ns] = v; seen_p[ns++] = p; }
        }
        for (int k = 0; k < ns; k++)
            if (seen_v[k] < best_v) me_cluster_mark_stale(cl, parts[seen_p[k]].replica);  /* read repair */
        if (best) docs[nd++] = best;
        else missing[nm++] = ids[i];
    }
    rc = me_reply_get(r, docs, nd, missing, nm, NULL);
out:
    if (calls) me_calls_clear(calls, ncalls);
    if (parts)
        for (int p = 0; p < nparts; p++) metaembed__get_reply__free_unpacked(parts[p].rep, NULL);
    free(calls);
    free(parts);
    free(need);
    parts_free(&req_parts);
    free(owner);
    free(docs);
    free(missing);
    free(ids);
    return rc;
}

/* Count: every group's count of the matching documents, summed; every
 * group must answer (a total missing a group would look right). */
int me_coord_count(req_t *r) {
    int ng = me_coord_read_groups(r), rc;
    me_call_t *calls = me_coord_read_calls(r, r->method, r->payload->data, r->payload->len);
    if (!calls) return OOM(r);
    uint64_t total = 0;
    if ((rc = me_coord_first_request_error(r, calls, ng)) != 0) goto out;
    if ((rc = missing_groups_error(r, calls, ng, NULL)) != 0) goto out;
    for (int g = 0; g < ng; g++) {
        Metaembed__CountReply *c = metaembed__count_reply__unpack(NULL, calls[g].reply.payload_len, calls[g].reply.payload);
        if (!c) { rc = me_reply_error(r->reply, ME_CODE_INTERNAL, "malformed Count reply from a shard"); goto out; }
        total += c->count;
        metaembed__count_reply__free_unpacked(c, NULL);
    }
    Metaembed__CountReply rep = METAEMBED__COUNT_REPLY__INIT;
    rep.count = total;
    rc = me_reply_ok(r->reply, &rep.base);
out:
    me_calls_clear(calls, ng);
    free(calls);
    return rc;
}

/* The next id of the k-way merge: the smallest head among the groups'
 * sorted lists (-1 when all are used up). */
static int smallest_head(Metaembed__ListIdsReply **parts, const size_t *cursor, int ng) {
    int best = -1;
    for (int g = 0; g < ng; g++)
        if (parts[g] && cursor[g] < parts[g]->n_ids &&
            (best < 0 || strcmp(parts[g]->ids[cursor[g]], parts[best]->ids[cursor[best]]) < 0))
            best = g;
    return best;
}

/* ListIds: every group lists its ids after the cursor, sorted, so the first
 * `limit` of their merge are the cluster's. Every group must answer: a
 * scroll that silently skipped a group's ids would look complete. */
int me_coord_list_ids(req_t *r) {
    Metaembed__ListIdsRequest *m = (void *)r->msg;
    int ng = me_coord_read_groups(r), rc;
    me_call_t *calls = NULL;
    Metaembed__ListIdsReply **parts = calloc((size_t)ng, sizeof *parts);
    size_t *cursor = calloc((size_t)ng, sizeof *cursor);
    char **ids = NULL, err[256];
    uint32_t limit;
    if (!parts || !cursor) { rc = OOM(r); goto out; }
    if (me_list_ids_check(m->after, m->limit, &limit, err, sizeof err) != 0) { rc = BAD(r, "%s", err); goto out; }
    if (!(ids = calloc(limit, sizeof *ids))) { rc = OOM(r); goto out; }
    calls = me_coord_read_calls(r, r->method, r->payload->data, r->payload->len);
    if (!calls) { rc = OOM(r); goto out; }
    if ((rc = me_coord_first_request_error(r, calls, ng)) != 0) goto out;
    if ((rc = missing_groups_error(r, calls, ng, NULL)) != 0) goto out;
    int more = 0;
    for (int g = 0; g < ng; g++) {
        parts[g] = metaembed__list_ids_reply__unpack(NULL, calls[g].reply.payload_len, calls[g].reply.payload);
        if (!parts[g]) { rc = me_reply_error(r->reply, ME_CODE_INTERNAL, "malformed ListIds reply from a shard"); goto out; }
        more |= parts[g]->next_after[0] != 0;
    }
    size_t n = 0;
    for (int g; n < limit && (g = smallest_head(parts, cursor, ng)) >= 0;) {
        char *id = parts[g]->ids[cursor[g]++];
        if (!n || strcmp(ids[n - 1], id) != 0) ids[n++] = id;  /* an id on two groups (mid-move) once */
    }
    /* More remain when a group had more than it sent or sent more than was taken. */
    more |= smallest_head(parts, cursor, ng) >= 0;
    Metaembed__ListIdsReply rep = METAEMBED__LIST_IDS_REPLY__INIT;
    rep.ids = ids;
    rep.n_ids = n;
    rep.next_after = more && n ? ids[n - 1] : "";
    rc = me_reply_ok(r->reply, &rep.base);
out:
    if (calls) me_calls_clear(calls, ng);
    if (parts)
        for (int g = 0; g < ng; g++)
            if (parts[g]) metaembed__list_ids_reply__free_unpacked(parts[g], NULL);
    free(calls);
    free(parts);
    free(cursor);
    free(ids);
    return rc;
}
