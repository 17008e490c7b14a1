/* The coordinator's request handlers: routing, fan-out and merging. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/dtype.h"
#include "common/error.h"
#include "common/log.h"
#include "common/server.h"
#include "common/validate.h"
#include "coordinator/coordinator.h"

#define ME_VERSION "0.1.0"

typedef me_request_t req_t;
#define COORD(r) ((me_coord_t *)(r)->ctx)
#define FANOUT(r) ((me_fanout_t *)(r)->wstate)

#define BAD ME_BAD
#define OOM ME_OOM
#define unpack me_request_unpack

static const char *group_name(req_t *r, int g) { return COORD(r)->cluster.groups[g].name; }

/* The fan-out stops a tenth of the time left (at least 2 ms) before the
 * request's deadline, keeping that to merge and answer, so a partial reply
 * reaches the client before its own deadline runs out. */
static uint64_t fanout_deadline(const req_t *r) {
    uint64_t now = me_now_us();
    if (r->deadline_us <= now) return now;
    uint64_t left = r->deadline_us - now, margin = left / 10 > 2000 ? left / 10 : 2000;
    return margin < left ? r->deadline_us - margin : now + left / 2;
}

static int retryable(int status) {
    return status == ME_STATUS_UNAVAILABLE || status == ME_STATUS_INTERNAL || status == ME_STATUS_DEADLINE_EXCEEDED;
}

/* One read call per group with the same payload. */
static me_call_t *read_calls(req_t *r, const uint8_t *payload, size_t len) {
    int n = COORD(r)->cluster.n_groups;
    me_call_t *calls = calloc((size_t)n, sizeof *calls);
    if (!calls) return NULL;
    for (int g = 0; g < n; g++)
        calls[g] = (me_call_t){ .group = g, .replica = -1, .method = r->method, .payload = payload, .len = len };
    uint64_t retries = 0;
    me_fanout_run(FANOUT(r), calls, n, fanout_deadline(r), &retries);
    atomic_fetch_add(&COORD(r)->retries, retries);
    return calls;
}

/* The first answer that is a request error (not an availability problem):
 * every group would say the same, so it is the reply. */
static int first_request_error(req_t *r, me_call_t *calls, int n) {
    for (int i = 0; i < n; i++)
        if (calls[i].answered && calls[i].reply.status != ME_STATUS_OK && !retryable(calls[i].reply.status))
            return me_reply_error(r->reply, calls[i].reply.status, "%s", calls[i].reply.message);
    return 0;
}

static int group_ok(const me_call_t *c) { return c->answered && c->reply.status == ME_STATUS_OK; }

/* Why reads went unanswered: DEADLINE_EXCEEDED when a replica was asked but
 * the request's time ran out (or the replica said so), UNAVAILABLE when no
 * live replica could be asked. */
static int down_status(const me_call_t *calls, int n) {
    for (int i = 0; i < n; i++)
        if (!group_ok(&calls[i]) && (calls[i].timed_out || (calls[i].answered &&
                                                            calls[i].reply.status == ME_STATUS_DEADLINE_EXCEEDED)))
            return ME_STATUS_DEADLINE_EXCEEDED;
    return ME_STATUS_UNAVAILABLE;
}
#define DEADLINE_HINT(st) ((st) == ME_STATUS_DEADLINE_EXCEEDED ? "; allow the request more time (deadline_ms)" : "")

/* ---- search ---- */

typedef struct {
    Metaembed__Hit *hit;
} hitref_t;

static int hit_cmp(const void *a, const void *b) {
    const Metaembed__Hit *x = ((const hitref_t *)a)->hit, *y = ((const hitref_t *)b)->hit;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return strcmp(x->id, y->id);
}

/* Sends payload to one live encoder (round-robin, failing over) and keeps
 * its answer in *call (caller clears it). 0, or the reply status set. */
static int ask_encoders(req_t *r, const uint8_t *payload, size_t len, me_call_t *call) {
    int eg = COORD(r)->cluster.encoder_group;
    if (eg < 0)
        return me_reply_error(r->reply, ME_STATUS_FAILED_PRECONDITION,
                              "no encoders in the cluster map: add a line 'encoders tcp://HOST:PORT ...' "
                              "or send query vectors instead of text");
    *call = (me_call_t){ .group = eg, .replica = -1, .method = METAEMBED__METHOD__METHOD_ENCODE, .payload = payload, .len = len };
    uint64_t retries = 0;
    me_fanout_run(FANOUT(r), call, 1, fanout_deadline(r), &retries);
    atomic_fetch_add(&COORD(r)->retries, retries);
    if (!call->answered) {
        int st = down_status(call, 1);
        return me_reply_error(r->reply, st, "no encoder answered within the deadline; retry later%s", DEADLINE_HINT(st));
    }
    if (call->reply.status != ME_STATUS_OK)
        return me_reply_error(r->reply, call->reply.status, "encoder: %s", call->reply.message);
    return 0;
}

/* Turns the request's text into query vectors (the encoder's query side). */
static int encode_text_query(req_t *r, Metaembed__SearchRequest *m, me_call_t *call, Metaembed__EncodeReply **enc) {
    char *texts[1] = { m->text };
    Metaembed__EncodeRequest er = METAEMBED__ENCODE_REQUEST__INIT;
    er.texts = texts;
    er.n_texts = 1;
    er.query_side = 1;
    uint8_t *buf = malloc(metaembed__encode_request__get_packed_size(&er) + 1);
    if (!buf) return OOM(r);
    size_t len = metaembed__encode_request__pack(&er, buf);
    int rc = ask_encoders(r, buf, len, call);
    free(buf);
    if (rc) return rc;
    *enc = metaembed__encode_reply__unpack(NULL, call->reply.payload_len, call->reply.payload);
    Metaembed__Tensor *t = *enc ? (*enc)->vectors : NULL;
    if (!t || t->n_shape != 3 || t->shape[0] != 1)
        return me_reply_error(r->reply, ME_STATUS_INTERNAL, "malformed Encode reply from an encoder");
    /* [1, R, D] → the query [R, D]. */
    t->shape[0] = t->shape[1];
    t->shape[1] = t->shape[2];
    t->n_shape = 2;
    m->query = t;
    return 0;
}

static int h_search(req_t *r) {
    Metaembed__SearchRequest *m = (void *)unpack(r, &metaembed__search_request__descriptor);
    if (!m) return r->reply->status;
    int ng = COORD(r)->cluster.n_groups, rc = 0;
    uint64_t encode_us = 0;
    me_call_t *calls = NULL, enc_call = { 0 };
    Metaembed__EncodeReply *enc = NULL;
    Metaembed__Tensor *own_query = m->query;
    uint8_t *fwd = NULL;
    const uint8_t *payload = r->payload->data;
    size_t payload_len = r->payload->len;
    Metaembed__SearchReply **parts = calloc((size_t)ng, sizeof *parts);
    char **missing = calloc((size_t)ng, sizeof *missing);
    hitref_t *all = NULL;
    Metaembed__Hit **hits = NULL;
    if (!parts || !missing) { rc = OOM(r); goto out; }
    if (m->k == 0) { rc = BAD(r, "k must be at least 1"); goto out; }
    if (!m->query && m->text && m->text[0]) {
        uint64_t te = me_now_us();
        if ((rc = encode_text_query(r, m, &enc_call, &enc)) != 0) goto out;
        /* Shards get the vectors, not the text. */
        char *text = m->text;
        m->text = "";
        fwd = malloc(metaembed__search_request__get_packed_size(m) + 1);
        if (!fwd) { m->text = text; rc = OOM(r); goto out; }
        payload_len = metaembed__search_request__pack(m, fwd);
        payload = fwd;
        m->text = text;
        encode_us = me_now_us() - te;
    } else if (!m->query) {
        rc = BAD(r, "give query vectors or a query text");
        goto out;
    }
    /* The "fanout" stage starts here: encoding the text has its own. */
    uint64_t t_fan = me_now_us();
    calls = read_calls(r, payload, payload_len);
    if (!calls) { rc = OOM(r); goto out; }
    if ((rc = first_request_error(r, calls, ng)) != 0) goto out;
    size_t nmissing = 0, total = 0;
    for (int g = 0; g < ng; g++) {
        if (group_ok(&calls[g]))
            parts[g] = metaembed__search_reply__unpack(NULL, calls[g].reply.payload_len, calls[g].reply.payload);
        if (!parts[g]) missing[nmissing++] = (char *)group_name(r, g);
        else total += parts[g]->n_hits;
    }
    if (nmissing == (size_t)ng) {
        int st = down_status(calls, ng);
        rc = me_reply_error(r->reply, st, "no shard group answered within the deadline (%s%s)%s",
                            missing[0], ng > 1 ? ", ..." : "", DEADLINE_HINT(st));
        goto out;
    }
    if (nmissing && m->all_or_nothing) {
        char names[512] = "";
        for (size_t i = 0; i < nmissing; i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "", missing[i]);
        rc = me_reply_error(r->reply, ME_STATUS_UNAVAILABLE,
                            "groups unavailable: %s (the request asked for all or nothing)", names);
        goto out;
    }
    /* Scores from different shards are comparable (same formula, same
     * query), so the global top k is the top k of the union. */
    all = calloc(total ? total : 1, sizeof *all);
    hits = calloc(total ? total : 1, sizeof *hits);
    if (!all || !hits) { rc = OOM(r); goto out; }
    size_t n = 0;
    uint64_t docs = 0;
    Metaembed__SearchReply rep = METAEMBED__SEARCH_REPLY__INIT;
    Metaembed__StageTiming *slowest[9] = { 0 };
    size_t nst = 0;
    for (int g = 0; g < ng; g++) {
        if (!parts[g]) continue;
        for (size_t i = 0; i < parts[g]->n_hits; i++) all[n++].hit = parts[g]->hits[i];
        docs += parts[g]->documents;
        rep.r_q = parts[g]->r_q;
        rep.r_c = parts[g]->r_c;
        /* Per stage, the slowest group's figure: that is what the client waited for. */
        for (size_t s = 0; s < parts[g]->n_stages && s < 7; s++) {
            if (s >= nst) { slowest[s] = parts[g]->stages[s]; nst = s + 1; }
            else if (parts[g]->stages[s]->micros > slowest[s]->micros) slowest[s] = parts[g]->stages[s];
        }
    }
    qsort(all, n, sizeof *all, hit_cmp);
    size_t k = n < m->k ? n : m->k;
    for (size_t i = 0; i < k; i++) hits[i] = all[i].hit;
    Metaembed__StageTiming encst = METAEMBED__STAGE_TIMING__INIT;
    if (encode_us) {
        encst.stage = "encode";
        encst.micros = encode_us;
        memmove(slowest + 1, slowest, nst * sizeof *slowest);
        slowest[0] = &encst;
        nst++;
    }
    Metaembed__StageTiming fan = METAEMBED__STAGE_TIMING__INIT;
    fan.stage = "fanout";
    fan.r_q = rep.r_q;
    fan.r_c = rep.r_c;
    fan.candidates_in = n;
    fan.candidates_out = k;
    fan.micros = me_now_us() - t_fan;
    slowest[nst++] = &fan;
    rep.hits = hits;
    rep.n_hits = k;
    rep.stages = slowest;
    rep.n_stages = nst;
    rep.documents = docs;
    rep.partial = nmissing > 0;
    rep.missing_groups = missing;
    rep.n_missing_groups = nmissing;
    if (nmissing) atomic_fetch_add(&COORD(r)->partial_replies, 1);
    me_budget_hist_observe(&COORD(r)->search_by_budget, (int)rep.r_q, (int)rep.r_c,
                           me_now_us() - t_fan + encode_us);
    rc = me_reply_ok(r->reply, &rep.base);
out:
    if (parts)
        for (int g = 0; g < ng; g++)
            if (parts[g]) metaembed__search_reply__free_unpacked(parts[g], NULL);
    if (calls) me_calls_clear(calls, ng);
    free(calls);
    free(parts);
    free(missing);
    free(all);
    free(hits);
    free(fwd);
    m->query = own_query;  /* the encoded query belongs to enc */
    if (enc) metaembed__encode_reply__free_unpacked(enc, NULL);
    me_calls_clear(&enc_call, 1);
    protobuf_c_message_free_unpacked(&m->base, NULL);
    return rc;
}

/* Encode through the coordinator: forwarded to a live encoder. */
static int h_encode(req_t *r) {
    me_call_t call = { 0 };
    int rc = ask_encoders(r, r->payload->data, r->payload->len, &call);
    if (rc == 0) {
        r->reply->status = ME_STATUS_OK;
        r->reply->payload = call.reply.payload;  /* the encoder's reply is ours */
        r->reply->payload_len = call.reply.payload_len;
        call.reply.payload = NULL;
    }
    me_calls_clear(&call, 1);
    return rc;
}

/* ---- writes ---- */

/* A request split by placement: group g's packed part, when used[g]. */
typedef struct {
    int n;                 /* shard groups */
    uint8_t **payload;     /* owned, unless shared */
    size_t *len;
    int *used;
    int shared;            /* every group sends the request as received */
} parts_t;

static int parts_init(parts_t *p, int ngroups) {
    p->n = ngroups;
    p->shared = 0;
    p->payload = calloc((size_t)ngroups, sizeof *p->payload);
    p->len = calloc((size_t)ngroups, sizeof *p->len);
    p->used = calloc((size_t)ngroups, sizeof *p->used);
    return p->payload && p->len && p->used ? 0 : -1;
}

static void parts_free(parts_t *p) {
    if (p->payload && !p->shared)
        for (int g = 0; g < p->n; g++) free(p->payload[g]);
    free(p->payload);
    free(p->len);
    free(p->used);
    memset(p, 0, sizeof *p);
}

/* Calls for every replica of every used group, with that group's part. */
static me_call_t *write_calls(req_t *r, const parts_t *parts, int *ncalls) {
    me_cluster_t *cl = &COORD(r)->cluster;
    me_call_t *calls = calloc((size_t)cl->n_replicas, sizeof *calls);
    if (!calls) return NULL;
    int n = 0;
    for (int rep = 0; rep < cl->n_replicas; rep++) {
        int g = cl->replicas[rep].group;
        if (g >= cl->n_groups) continue;  /* encoders store nothing */
        if (!parts->used[g]) continue;
        calls[n++] = (me_call_t){ .group = g, .replica = rep, .method = r->method, .payload = parts->payload[g],
                                  .len = parts->len[g] };
    }
    me_fanout_run(FANOUT(r), calls, n, fanout_deadline(r), NULL);
    *ncalls = n;
    return calls;
}

/* Checks the write quorum per group; sets UNAVAILABLE naming the groups
 * that fell short. Returns 0 when every group met it. */
static int check_quorum(req_t *r, me_call_t *calls, int n, const int *groups) {
    me_cluster_t *cl = &COORD(r)->cluster;
    char names[512] = "";
    int short_groups = 0;
    for (int g = 0; g < cl->n_groups; g++) {
        if (groups && !groups[g]) continue;
        int acks = 0;
        for (int i = 0; i < n; i++)
            if (calls[i].group == g && group_ok(&calls[i])) acks++;
        int need = COORD(r)->opts.write_quorum > 0 ? (int)COORD(r)->opts.write_quorum : cl->groups[g].n_replicas;
        if (need > cl->groups[g].n_replicas) need = cl->groups[g].n_replicas;
        if (acks < need) {
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s (%d of %d acknowledged)",
                     short_groups ? ", " : "", cl->groups[g].name, acks, need);
            short_groups++;
        }
    }
    if (!short_groups) return 0;
    return me_reply_error(r->reply, ME_STATUS_UNAVAILABLE,
                          "write quorum not met for group %s; the write may be applied on some replicas: "
                          "retry it (upserts and deletes are idempotent)", names);
}

/* The shard's own checks (common/validate.c) against the collection's
 * shape and dtype, so a bad document cannot be written to some groups and
 * refused by others. */
static int check_document(req_t *r, const Metaembed__Document *d, size_t i, const Metaembed__CollectionConfig *cfg) {
    me_tensor_view_t v;
    char what[ME_WHAT_MAX], err[ME_WHAT_MAX + 256];
    int e = me_document_check(d, i, (int)cfg->max_doc_vectors, (int)cfg->dim, &v, what, err, sizeof err);
    if (e == 0) e = me_tensor_convert(&v, v.rows, (me_dtype_t)cfg->dtype, NULL, NULL, what, err, sizeof err);
    return e ? me_reply_error(r->reply, me_error_status(e), "%s", err) : 0;
}

/* The collection's config, asked of the groups (any one that knows it),
 * so documents are checked against it before anything is sent. */
static int collection_shape(req_t *r, const char *name, Metaembed__CollectionConfig *out) {
    Metaembed__ListCollectionsRequest lreq = METAEMBED__LIST_COLLECTIONS_REQUEST__INIT;
    uint8_t buf[8];
    size_t len = metaembed__list_collections_request__pack(&lreq, buf);
    int saved = r->method, ng = COORD(r)->cluster.n_groups, found = 0, answered = 0;
    r->method = METAEMBED__METHOD__METHOD_LIST_COLLECTIONS;
    me_call_t *calls = read_calls(r, buf, len);
    r->method = saved;
    if (!calls) return OOM(r);
    for (int g = 0; g < ng && !found; g++) {
        if (!group_ok(&calls[g])) continue;
        answered++;
        Metaembed__ListCollectionsReply *l =
            metaembed__list_collections_reply__unpack(NULL, calls[g].reply.payload_len, calls[g].reply.payload);
        for (size_t i = 0; l && i < l->n_collections && !found; i++) {
            const Metaembed__CollectionConfig *c = l->collections[i]->config;
            if (c && strcmp(c->name, name) == 0) {
                *out = *c;
                out->name = NULL;  /* owned by the reply freed below */
                found = 1;
            }
        }
        if (l) metaembed__list_collections_reply__free_unpacked(l, NULL);
    }
    int st = down_status(calls, ng);
    me_calls_clear(calls, ng);
    free(calls);
    if (found) return 0;
    if (!answered)
        return me_reply_error(r->reply, st, "no shard group answered; retry later%s", DEADLINE_HINT(st));
    return me_reply_error(r->reply, ME_STATUS_NOT_FOUND,
                          "collection '%s' not found (create it first, or check the name)", name);
}

/* Groups the request's ids/documents by owning group: owner[i]. */
static int *place(req_t *r, char **ids, size_t n) {
    int *owner = malloc((n ? n : 1) * sizeof *owner);
    if (!owner) return NULL;
    for (size_t i = 0; i < n; i++) owner[i] = me_cluster_place(&COORD(r)->cluster, ids[i], strlen(ids[i]));
    return owner;
}

static int check_batch(req_t *r, size_t n, const char *what) {
    if (n == 0) return BAD(r, "empty batch: send at least one %s", what);
    if ((long long)n > COORD(r)->opts.max_batch)
        return me_reply_error(r->reply, ME_STATUS_RESOURCE_EXHAUSTED, "batch of %zu %ss exceeds the limit of %lld; split it",
                              n, what, COORD(r)->opts.max_batch);
    return 0;
}

static int h_upsert(req_t *r) {
    Metaembed__UpsertRequest *m = (void *)unpack(r, &metaembed__upsert_request__descriptor);
    if (!m) return r->reply->status;
    int ng = COORD(r)->cluster.n_groups, rc, ncalls = 0;
    me_call_t *calls = NULL;
    parts_t parts;
    int parts_ok = parts_init(&parts, ng) == 0;
    char **ids = calloc(m->n_documents ? m->n_documents : 1, sizeof *ids);
    Metaembed__Document **sub = calloc(m->n_documents ? m->n_documents : 1, sizeof *sub);
    int *owner = NULL;
    if (!parts_ok || !ids || !sub) { rc = OOM(r); goto out; }
    if ((rc = check_batch(r, m->n_documents, "document")) != 0) goto out;
    Metaembed__CollectionConfig cfg = METAEMBED__COLLECTION_CONFIG__INIT;
    if ((rc = collection_shape(r, m->collection, &cfg)) != 0) goto out;
    for (size_t i = 0; i < m->n_documents; i++) {
        if ((rc = check_document(r, m->documents[i], i, &cfg)) != 0) goto out;
        ids[i] = m->documents[i]->id;
    }
    if (!(owner = place(r, ids, m->n_documents))) { rc = OOM(r); goto out; }
    for (int g = 0; g < ng; g++) {
        size_t k = 0;
        for (size_t i = 0; i < m->n_documents; i++)
            if (owner[i] == g) sub[k++] = m->documents[i];
        if (!k) continue;
        Metaembed__UpsertRequest part = METAEMBED__UPSERT_REQUEST__INIT;
        part.collection = m->collection;
        part.documents = sub;
        part.n_documents = k;
        parts.len[g] = metaembed__upsert_request__get_packed_size(&part);
        parts.payload[g] = malloc(parts.len[g] ? parts.len[g] : 1);
        if (!parts.payload[g]) { rc = OOM(r); goto out; }
        metaembed__upsert_request__pack(&part, parts.payload[g]);
        parts.used[g] = 1;
    }
    calls = write_calls(r, &parts, &ncalls);
    if (!calls) { rc = OOM(r); goto out; }
    if ((rc = first_request_error(r, calls, ncalls)) != 0) goto out;
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
    protobuf_c_message_free_unpacked(&m->base, NULL);
    return rc;
}

/* Splits a list of ids by group into per-group packed requests built by
 * `pack_ids` (Delete or Get). */
typedef size_t (*pack_ids_fn)(const void *proto, char **ids, size_t n, uint8_t **out);

static size_t pack_delete(const void *proto, char **ids, size_t n, uint8_t **out) {
    Metaembed__DeleteRequest part = *(const Metaembed__DeleteRequest *)proto;
    part.ids = ids;
    part.n_ids = n;
    size_t len = metaembed__delete_request__get_packed_size(&part);
    *out = malloc(len ? len : 1);
    if (*out) metaembed__delete_request__pack(&part, *out);
    return len;
}

static size_t pack_get(const void *proto, char **ids, size_t n, uint8_t **out) {
    Metaembed__GetRequest part = *(const Metaembed__GetRequest *)proto;
    part.ids = ids;
    part.n_ids = n;
    size_t len = metaembed__get_request__get_packed_size(&part);
    *out = malloc(len ? len : 1);
    if (*out) metaembed__get_request__pack(&part, *out);
    return len;
}

/* Fills the parts per group; returns owner[] (caller frees) or NULL. */
static int *split_ids(req_t *r, const void *proto, char **ids, size_t n, pack_ids_fn pack, parts_t *parts) {
    int *owner = place(r, ids, n);
    char **sub = calloc(n ? n : 1, sizeof *sub);
    if (!owner || !sub) { free(owner); free(sub); return NULL; }
    for (int g = 0; g < parts->n; g++) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (owner[i] == g) sub[k++] = ids[i];
        if (!k) continue;
        parts->len[g] = pack(proto, sub, k, &parts->payload[g]);
        if (!parts->payload[g]) { free(owner); free(sub); return NULL; }
        parts->used[g] = 1;
    }
    free(sub);
    return owner;
}

static int check_ids(req_t *r, char **ids, size_t n) {
    int rc = check_batch(r, n, "id");
    char err[128];
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (me_check_id(ids[i], i, err, sizeof err) != 0) rc = BAD(r, "%s", err);
    return rc;
}

static int h_delete(req_t *r) {
    Metaembed__DeleteRequest *m = (void *)unpack(r, &metaembed__delete_request__descriptor);
    if (!m) return r->reply->status;
    int ng = COORD(r)->cluster.n_groups, rc, ncalls = 0;
    me_call_t *calls = NULL;
    parts_t parts;
    int *owner = NULL;
    if (parts_init(&parts, ng) != 0) { rc = OOM(r); goto out; }
    if ((rc = check_ids(r, m->ids, m->n_ids)) != 0) goto out;
    if (!(owner = split_ids(r, m, m->ids, m->n_ids, pack_delete, &parts))) { rc = OOM(r); goto out; }
    calls = write_calls(r, &parts, &ncalls);
    if (!calls) { rc = OOM(r); goto out; }
    if ((rc = first_request_error(r, calls, ncalls)) != 0) goto out;
    if ((rc = check_quorum(r, calls, ncalls, parts.used)) != 0) goto out;
    /* Per group, the most any replica deleted (replicas agree when in sync). */
    uint32_t deleted = 0;
    for (int g = 0; g < ng; g++) {
        uint32_t best = 0;
        for (int i = 0; i < ncalls; i++) {
            if (calls[i].group != g || !group_ok(&calls[i])) continue;
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
    protobuf_c_message_free_unpacked(&m->base, NULL);
    return rc;
}

static int missing_groups_error(req_t *r, me_call_t *calls, int n, const int *used) {
    char names[512] = "";
    int k = 0;
    for (int i = 0; i < n; i++)
        if ((!used || used[calls[i].group]) && !group_ok(&calls[i]))
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", k++ ? ", " : "",
                     group_name(r, calls[i].group));
    if (!k) return 0;
    int st = down_status(calls, n);
    return me_reply_error(r->reply, st, "no live replica answered for group %s; retry later%s", names, DEADLINE_HINT(st));
}

static int h_get(req_t *r) {
    Metaembed__GetRequest *m = (void *)unpack(r, &metaembed__get_request__descriptor);
    if (!m) return r->reply->status;
    int ng = COORD(r)->cluster.n_groups, rc;
    me_call_t *calls = calloc((size_t)ng, sizeof *calls);
    parts_t req_parts;
    int parts_ok = parts_init(&req_parts, ng) == 0, *owner = NULL;
    Metaembed__GetReply **parts = calloc((size_t)ng, sizeof *parts);
    size_t *cursor = calloc((size_t)ng, sizeof *cursor);
    Metaembed__Document **docs = calloc(m->n_ids ? m->n_ids : 1, sizeof *docs);
    char **missing = calloc(m->n_ids ? m->n_ids : 1, sizeof *missing);
    char **ids = calloc(m->n_ids ? m->n_ids : 1, sizeof *ids);
    int ncalls = 0;
    if (!calls || !parts_ok || !parts || !cursor || !docs || !missing || !ids) { rc = OOM(r); goto out; }
    if ((rc = check_ids(r, m->ids, m->n_ids)) != 0) goto out;
    /* Each id is asked for and answered once, however often it was sent. */
    memcpy(ids, m->ids, m->n_ids * sizeof *ids);
    long nu = me_ids_dedupe(ids, m->n_ids);
    if (nu < 0) { rc = OOM(r); goto out; }
    size_t n = (size_t)nu;
    if (!(owner = split_ids(r, m, ids, n, pack_get, &req_parts))) { rc = OOM(r); goto out; }
    for (int g = 0; g < ng; g++)
        if (req_parts.used[g])
            calls[ncalls++] = (me_call_t){ .group = g, .replica = -1, .method = r->method,
                                           .payload = req_parts.payload[g], .len = req_parts.len[g] };
    uint64_t retries = 0;
    me_fanout_run(FANOUT(r), calls, ncalls, fanout_deadline(r), &retries);
    atomic_fetch_add(&COORD(r)->retries, retries);
    if ((rc = first_request_error(r, calls, ncalls)) != 0) goto out;
    if ((rc = missing_groups_error(r, calls, ncalls, NULL)) != 0) goto out;
    for (int i = 0; i < ncalls; i++) {
        parts[calls[i].group] = metaembed__get_reply__unpack(NULL, calls[i].reply.payload_len, calls[i].reply.payload);
        if (!parts[calls[i].group]) { rc = me_reply_error(r->reply, ME_STATUS_INTERNAL, "malformed Get reply from a shard"); goto out; }
    }
    /* Each group answers its ids in request order, found ones only. */
    size_t nd = 0, nm = 0;
    for (size_t i = 0; i < n; i++) {
        Metaembed__GetReply *p = parts[owner[i]];
        size_t *c = &cursor[owner[i]];
        if (*c < p->n_documents && strcmp(p->documents[*c]->id, ids[i]) == 0) docs[nd++] = p->documents[(*c)++];
        else missing[nm++] = ids[i];
    }
    Metaembed__GetReply rep = METAEMBED__GET_REPLY__INIT;
    rep.documents = docs;
    rep.n_documents = nd;
    rep.missing = missing;
    rep.n_missing = nm;
    rc = me_reply_ok(r->reply, &rep.base);
out:
    if (calls) me_calls_clear(calls, ncalls);
    if (parts)
        for (int g = 0; g < ng; g++)
            if (parts[g]) metaembed__get_reply__free_unpacked(parts[g], NULL);
    free(calls);
    parts_free(&req_parts);
    free(owner);
    free(parts);
    free(cursor);
    free(docs);
    free(missing);
    free(ids);
    protobuf_c_message_free_unpacked(&m->base, NULL);
    return rc;
}

/* ---- collections, stats, health ---- */

/* Create/Drop go to every replica. A replica that already has (create) or
 * already lacks (drop) the collection counts as done, so a DDL that failed
 * half-way can simply be repeated. */
static int h_ddl(req_t *r) {
    int ng = COORD(r)->cluster.n_groups, ncalls = 0, rc;
    parts_t all;
    if (parts_init(&all, ng) != 0) { parts_free(&all); return OOM(r); }
    all.shared = 1;  /* every group gets the request as received */
    for (int g = 0; g < ng; g++) {
        all.payload[g] = r->payload->data;
        all.len[g] = r->payload->len;
        all.used[g] = 1;
    }
    me_call_t *calls = write_calls(r, &all, &ncalls);
    parts_free(&all);
    if (!calls) return OOM(r);
    int benign = r->method == METAEMBED__METHOD__METHOD_CREATE_COLLECTION ? ME_STATUS_ALREADY_EXISTS : ME_STATUS_NOT_FOUND;
    int done = 0, fresh = 0, ok_idx = -1;
    char down[512] = "";
    rc = 0;
    for (int i = 0; i < ncalls; i++) {
        if (group_ok(&calls[i])) { done++; fresh++; ok_idx = i; }
        else if (calls[i].answered && calls[i].reply.status == benign) done++;
        else if (calls[i].answered && !retryable(calls[i].reply.status)) {
            rc = me_reply_error(r->reply, calls[i].reply.status, "%s", calls[i].reply.message);
            break;
        } else
            snprintf(down + strlen(down), sizeof down - strlen(down), "%s%s", down[0] ? ", " : "",
                     COORD(r)->cluster.replicas[calls[i].replica].endpoint);
    }
    if (rc == 0) {
        if (done < ncalls)
            rc = me_reply_error(r->reply, ME_STATUS_UNAVAILABLE,
                                "applied on %d of %d replicas; unreachable: %s. Repeat the request when they are back",
                                done, ncalls, down);
        else if (fresh == 0)
            rc = me_reply_error(r->reply, calls[0].reply.status, "%s", calls[0].reply.message);
        else {
            r->reply->status = ME_STATUS_OK;
            r->reply->payload = calls[ok_idx].reply.payload;  /* take the shard's reply as ours */
            r->reply->payload_len = calls[ok_idx].reply.payload_len;
            calls[ok_idx].reply.payload = NULL;
        }
    }
    me_calls_clear(calls, ncalls);
    free(calls);
    return rc;
}

/* Sums per-collection figures over groups (one replica each). */
static int h_list_or_stats(req_t *r, int stats) {
    me_coord_t *co = COORD(r);
    int ng = co->cluster.n_groups, rc = 0;
    Metaembed__ListCollectionsRequest lreq = METAEMBED__LIST_COLLECTIONS_REQUEST__INIT;
    uint8_t buf[8];
    size_t len = metaembed__list_collections_request__pack(&lreq, buf);
    int saved = r->method;
    r->method = METAEMBED__METHOD__METHOD_LIST_COLLECTIONS;
    me_call_t *calls = read_calls(r, buf, len);
    r->method = saved;
    if (!calls) return OOM(r);
    Metaembed__ListCollectionsReply **parts = calloc((size_t)ng, sizeof *parts);
    Metaembed__CollectionInfo *infos = NULL, **iptrs = NULL;
    size_t ninfo = 0, cap = 0;
    Metaembed__GroupStatus *gs = NULL, **gptrs = NULL;
    Metaembed__ReplicaStatus *rs = NULL, **rptrs = NULL;
    Metaembed__StatsRequest *sreq = NULL;
    if (!parts) { rc = OOM(r); goto out; }
    if (stats) {
        sreq = (void *)unpack(r, &metaembed__stats_request__descriptor);
        if (!sreq) { rc = r->reply->status; goto out; }
    }
    for (int g = 0; g < ng; g++) {
        if (group_ok(&calls[g]))
            parts[g] = metaembed__list_collections_reply__unpack(NULL, calls[g].reply.payload_len, calls[g].reply.payload);
        if (parts[g]) cap += parts[g]->n_collections;
    }
    infos = calloc(cap ? cap : 1, sizeof *infos);
    iptrs = calloc(cap ? cap : 1, sizeof *iptrs);
    if (!infos || !iptrs) { rc = OOM(r); goto out; }
    for (int g = 0; g < ng; g++) {
        if (!parts[g]) continue;
        for (size_t i = 0; i < parts[g]->n_collections; i++) {
            Metaembed__CollectionInfo *ci = parts[g]->collections[i];
            if (!ci->config) continue;
            if (sreq && sreq->collection[0] && strcmp(sreq->collection, ci->config->name) != 0) continue;
            size_t j;
            for (j = 0; j < ninfo; j++)
                if (strcmp(infos[j].config->name, ci->config->name) == 0) break;
            if (j == ninfo) {
                metaembed__collection_info__init(&infos[j]);
                infos[j].config = ci->config;
                iptrs[j] = &infos[j];
                ninfo++;
            }
            infos[j].documents += ci->documents;
            infos[j].ram_bytes += ci->ram_bytes;
            infos[j].index_bytes += ci->index_bytes;
        }
    }
    if (!stats) {
        Metaembed__ListCollectionsReply rep = METAEMBED__LIST_COLLECTIONS_REPLY__INIT;
        rep.collections = iptrs;
        rep.n_collections = ninfo;
        rc = me_reply_ok(r->reply, &rep.base);
        goto out;
    }
    if (sreq->collection[0] && ninfo == 0) {
        rc = me_reply_error(r->reply, ME_STATUS_NOT_FOUND, "collection '%s' not found", sreq->collection);
        goto out;
    }
    me_cluster_t *cl = &co->cluster;
    int ngs = ng + (cl->encoder_group >= 0);  /* the encoders show as one more group */
    gs = calloc((size_t)ngs, sizeof *gs);
    gptrs = calloc((size_t)ngs, sizeof *gptrs);
    rs = calloc((size_t)cl->n_replicas, sizeof *rs);
    rptrs = calloc((size_t)cl->n_replicas, sizeof *rptrs);
    if (!gs || !gptrs || !rs || !rptrs) { rc = OOM(r); goto out; }
    for (int rep = 0; rep < cl->n_replicas; rep++) {
        metaembed__replica_status__init(&rs[rep]);
        rs[rep].endpoint = cl->replicas[rep].endpoint;
        rs[rep].up = atomic_load(&cl->replicas[rep].up);
        rs[rep].documents = atomic_load(&cl->replicas[rep].documents);
        rs[rep].latency_ms = atomic_load(&cl->replicas[rep].latency_us) / 1000.0;
        rs[rep].liveness = (uint32_t)atomic_load(&cl->replicas[rep].liveness);
        rptrs[rep] = &rs[rep];
    }
    for (int g = 0; g < ngs; g++) {
        metaembed__group_status__init(&gs[g]);
        gs[g].name = cl->groups[g].name;
        gs[g].replicas = rptrs + cl->groups[g].first_replica;
        gs[g].n_replicas = (size_t)cl->groups[g].n_replicas;
        gptrs[g] = &gs[g];
    }
    Metaembed__StatsReply rep = METAEMBED__STATS_REPLY__INIT;
    rep.collections = iptrs;
    rep.n_collections = ninfo;
    rep.uptime_ms = me_now_ms() - co->start_ms;
    rep.requests = atomic_load(&co->requests);
    rep.errors = atomic_load(&co->errors);
    rep.groups = gptrs;
    rep.n_groups = (size_t)ngs;
    rep.role = "coordinator";
    rc = me_reply_ok(r->reply, &rep.base);
out:
    if (parts)
        for (int g = 0; g < ng; g++)
            if (parts[g]) metaembed__list_collections_reply__free_unpacked(parts[g], NULL);
    if (sreq) protobuf_c_message_free_unpacked(&sreq->base, NULL);
    me_calls_clear(calls, ng);
    free(calls);
    free(parts);
    free(infos);
    free(iptrs);
    free(gs);
    free(gptrs);
    free(rs);
    free(rptrs);
    return rc;
}

static int h_list(req_t *r) { return h_list_or_stats(r, 0); }
static int h_stats(req_t *r) { return h_list_or_stats(r, 1); }

static int h_health(req_t *r) {
    Metaembed__HealthReply rep = METAEMBED__HEALTH_REPLY__INIT;
    rep.serving = 1;
    rep.role = "coordinator";
    rep.version = ME_VERSION;
    rep.uptime_ms = me_now_ms() - COORD(r)->start_ms;
    return me_reply_ok(r->reply, &rep.base);
}

static const me_method_t handlers[] = {
    { METAEMBED__METHOD__METHOD_CREATE_COLLECTION, h_ddl },
    { METAEMBED__METHOD__METHOD_DROP_COLLECTION, h_ddl },
    { METAEMBED__METHOD__METHOD_LIST_COLLECTIONS, h_list },
    { METAEMBED__METHOD__METHOD_UPSERT, h_upsert },
    { METAEMBED__METHOD__METHOD_DELETE, h_delete },
    { METAEMBED__METHOD__METHOD_GET, h_get },
    { METAEMBED__METHOD__METHOD_SEARCH, h_search },
    { METAEMBED__METHOD__METHOD_ENCODE, h_encode },
    { METAEMBED__METHOD__METHOD_STATS, h_stats },
    { METAEMBED__METHOD__METHOD_HEALTH, h_health },
};

void me_coord_handle(me_coord_t *co, me_fanout_t *f, const uint8_t *frame, size_t len,
                     uint64_t *request_id, me_reply_t *reply) {
    me_dispatch(handlers, sizeof handlers / sizeof handlers[0], co, f, frame, len, co->opts.max_message,
                co->opts.default_deadline_ms, &co->requests, &co->errors, &co->metrics, request_id, reply);
}

int me_coord_ready(void *ctx, char *why, size_t cap) {
    me_coord_t *co = ctx;
    me_cluster_t *cl = &co->cluster;
    for (int g = 0; g < cl->n_groups; g++) {
        int up = 0;
        for (int r = 0; r < cl->groups[g].n_replicas; r++) up |= atomic_load(&cl->replicas[cl->groups[g].first_replica + r].up);
        if (!up) {
            snprintf(why, cap, "not ready: no live replica in group %s", cl->groups[g].name);
            return 0;
        }
    }
    return 1;
}

void me_coord_render_metrics(void *ctx, me_buf_t *out) {
    me_coord_t *co = ctx;
    me_cluster_t *cl = &co->cluster;
    me_buf_printf(out, "# HELP metaembed_replica_up 1 when the replica answers heartbeats.\n"
                       "# TYPE metaembed_replica_up gauge\n");
    for (int r = 0; r < cl->n_replicas; r++)
        me_buf_printf(out, "metaembed_replica_up{group=\"%s\",endpoint=\"%s\"} %d\n", cl->groups[cl->replicas[r].group].name,
                      cl->replicas[r].endpoint, atomic_load(&cl->replicas[r].up));
    me_buf_printf(out, "# HELP metaembed_replica_documents Documents a replica reported at its last heartbeat.\n"
                       "# TYPE metaembed_replica_documents gauge\n");
    for (int r = 0; r < cl->n_replicas; r++)
        me_buf_printf(out, "metaembed_replica_documents{group=\"%s\",endpoint=\"%s\"} %llu\n",
                      cl->groups[cl->replicas[r].group].name, cl->replicas[r].endpoint,
                      (unsigned long long)atomic_load(&cl->replicas[r].documents));
    me_buf_printf(out, "# HELP metaembed_replica_heartbeat_seconds Last heartbeat round trip.\n"
                       "# TYPE metaembed_replica_heartbeat_seconds gauge\n");
    for (int r = 0; r < cl->n_replicas; r++)
        me_buf_printf(out, "metaembed_replica_heartbeat_seconds{group=\"%s\",endpoint=\"%s\"} %.6f\n",
                      cl->groups[cl->replicas[r].group].name, cl->replicas[r].endpoint,
                      (double)atomic_load(&cl->replicas[r].latency_us) / 1e6);
    me_buf_printf(out, "# HELP metaembed_retries_total Calls retried on another replica.\n"
                       "# TYPE metaembed_retries_total counter\n"
                       "metaembed_retries_total %llu\n", (unsigned long long)atomic_load(&co->retries));
    me_buf_printf(out, "# HELP metaembed_partial_replies_total Searches answered without every group.\n"
                       "# TYPE metaembed_partial_replies_total counter\n"
                       "metaembed_partial_replies_total %llu\n", (unsigned long long)atomic_load(&co->partial_replies));
    me_budget_hist_render(&co->search_by_budget, "coordinator", "through the coordinator (encoding a text query included)", out);
}
