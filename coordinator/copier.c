/* Replica-to-replica copying (see copier.h). */
#include "coordinator/copier.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"

int me_copier_init(me_copier_t *cp, me_cluster_t *cl, void *zctx, int call_ms) {
    memset(cp, 0, sizeof *cp);
    cp->cl = cl;
    cp->zctx = zctx;
    cp->call_ms = call_ms;
    cp->socks = calloc((size_t)(cl->n_replicas ? cl->n_replicas : 1), sizeof *cp->socks);
    return cp->socks ? 0 : ME_ENOMEM;
}

void me_copier_free(me_copier_t *cp) {
    for (int r = 0; cp->socks && r < cp->cl->n_replicas; r++) me_wire_close(cp->socks[r]);
    free(cp->socks);
    cp->socks = NULL;
}

int me_copier_call(me_copier_t *cp, int r, int method, const ProtobufCMessage *req, me_reply_t *out) {
    me_reply_init(out);
    if (!cp->socks[r] && !(cp->socks[r] = me_cluster_connect(cp->cl, cp->zctx, r))) return ME_EIO;
    int rc = me_wire_call(cp->socks[r], ++cp->rid, method, (uint32_t)cp->call_ms, req, cp->call_ms, out);
    if (rc) {
        /* Lazy Pirate: a late reply goes with the old socket. */
        me_wire_close(cp->socks[r]);
        cp->socks[r] = NULL;
        me_reply_clear(out);
        return rc;
    }
    me_cluster_adopt_placement(cp->cl, out->placement);
    if (out->status != ME_CODE_OK) {
        me_debug("copier: %s answered %d: %s", cp->cl->replicas[r].endpoint, out->status, out->message);
        int st = out->status;
        me_reply_clear(out);
        return st == ME_CODE_NOT_FOUND ? ME_ENOTFOUND : st == ME_CODE_FAILED_PRECONDITION ? ME_ESTALE : ME_EUNAVAIL;
    }
    return 0;
}

static int cmp_entry(const void *a, const void *b) {
    const me_copy_entry_t *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    if (c) return c;
    return (x->version < y->version) - (x->version > y->version);  /* newest first */
}

void me_copy_entries_free(me_copy_entry_t *e, size_t n) {
    for (size_t i = 0; i < n; i++) free(e[i].id);
    free(e);
}

int me_copier_list(me_copier_t *cp, const int *reps, int nrep, const char *coll, const uint32_t *buckets,
                   size_t nb, me_copy_entry_t **out, size_t *nout) {
    me_copy_entry_t *all = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    for (int k = 0; k < nrep && rc == 0; k++) {
        Metaembed__SyncStateRequest q = METAEMBED__SYNC_STATE_REQUEST__INIT;
        q.collection = (char *)coll;
        q.list_buckets = (uint32_t *)buckets;
        q.n_list_buckets = nb;
        me_reply_t rep;
        if ((rc = me_copier_call(cp, reps[k], METAEMBED__METHOD__METHOD_SYNC_STATE, &q.base, &rep)) != 0) break;
        Metaembed__SyncStateReply *s = metaembed__sync_state_reply__unpack(NULL, rep.payload_len, rep.payload);
        me_reply_clear(&rep);
        if (!s) { rc = ME_EPROTO; break; }
        for (size_t i = 0; i < s->n_entries && rc == 0; i++) {
            if (n == cap) {
                size_t nc = cap ? 2 * cap : 256;
                me_copy_entry_t *na = realloc(all, nc * sizeof *na);
                if (!na) { rc = ME_ENOMEM; break; }
                all = na;
                cap = nc;
            }
            if (!(all[n].id = strdup(s->entries[i]->id))) { rc = ME_ENOMEM; break; }
            all[n].version = s->entries[i]->version;
            all[n].deleted = s->entries[i]->deleted;
            all[n++].k = k;
        }
        metaembed__sync_state_reply__free_unpacked(s, NULL);
    }
    if (n) qsort(all, n, sizeof *all, cmp_entry);
    *out = all;
    *nout = n;
    return rc;
}

int me_copier_copy(me_copier_t *cp, const char *coll, int src, const int *dsts, int ndst, char **ids, size_t n,
                   int *ok) {
    Metaembed__GetRequest g = METAEMBED__GET_REQUEST__INIT;
    g.collection = (char *)coll;
    g.ids = ids;
    g.n_ids = n;
    g.with_vectors = 1;
    me_reply_t rep;
    int rc = me_copier_call(cp, src, METAEMBED__METHOD__METHOD_GET, &g.base, &rep);
    if (rc) return rc;
    Metaembed__GetReply *got = metaembed__get_reply__unpack(NULL, rep.payload_len, rep.payload);
    me_reply_clear(&rep);
    if (!got) return ME_EPROTO;
    for (int d = 0; d < ndst; d++) {
        int e = 0;
        if (got->n_documents) {
            Metaembed__UpsertRequest u = METAEMBED__UPSERT_REQUEST__INIT;
            u.collection = (char *)coll;
            u.documents = got->documents;
            u.n_documents = got->n_documents;
            e = me_copier_call(cp, dsts[d], METAEMBED__METHOD__METHOD_UPSERT, &u.base, &rep);
            me_reply_clear(&rep);
        }
        if (ok) ok[d] = e == 0;
        if (e && !rc) rc = e;
    }
    metaembed__get_reply__free_unpacked(got, NULL);
    return rc;
}

int me_copier_delete(me_copier_t *cp, const char *coll, int dst, char **ids, size_t n, uint64_t version) {
    Metaembed__DeleteRequest d = METAEMBED__DELETE_REQUEST__INIT;
    d.collection = (char *)coll;
    d.ids = ids;
    d.n_ids = n;
    d.version = version;
    me_reply_t rep;
    int rc = me_copier_call(cp, dst, METAEMBED__METHOD__METHOD_DELETE, &d.base, &rep);
    me_reply_clear(&rep);
    return rc;
}

int me_copier_announce(me_copier_t *cp, int r, uint64_t placement, uint64_t *held) {
    if (!cp->socks[r] && !(cp->socks[r] = me_cluster_connect(cp->cl, cp->zctx, r))) return ME_EIO;
    uint64_t rid = ++cp->rid;
    int g = cp->cl->replicas[r].group;
    int rc = me_wire_send_routed(cp->socks[r], rid, METAEMBED__METHOD__METHOD_HEALTH, (uint32_t)cp->call_ms, NULL, 0,
                                 0, placement, g);
    uint64_t deadline = me_now_ms() + (uint64_t)cp->call_ms;
    me_reply_t rep;
    me_reply_init(&rep);
    while (rc == 0) {
        uint64_t now = me_now_ms();
        int ready;
        rc = me_wire_wait(&cp->socks[r], 1, now >= deadline ? 0 : (long)(deadline - now), &ready);
        if (rc == 0) { rc = ME_ETIMEDOUT; break; }
        if (rc < 0) break;
        rc = me_wire_take_reply(cp->socks[r], rid, &rep);
        if (rc == 1) { rc = 0; break; }
    }
    if (rc) {
        me_wire_close(cp->socks[r]);
        cp->socks[r] = NULL;
        return rc;
    }
    *held = rep.placement;
    me_cluster_adopt_placement(cp->cl, rep.placement);
    me_reply_clear(&rep);
    return 0;
}
