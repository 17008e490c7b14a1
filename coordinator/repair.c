/* The repair thread (see repair.h). */
#include "coordinator/repair.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "common/log.h"
#include "common/sync.h"
#include "common/wire.h"
#include "coordinator/copier.h"

#define CALL_MS 1500      /* one repair request's time */
#define LIST_BUCKETS 16   /* buckets listed per request */
#define COPY_BATCH 32     /* documents read and written per request */

typedef struct {
    me_coord_t *co;
    me_cluster_t *cl;
    me_copier_t cp;
} repairer_t;

static int call(repairer_t *rp, int r, int method, const ProtobufCMessage *req, me_reply_t *out) {
    return me_copier_call(&rp->cp, r, method, req, out);
}

/* ---- collections ---- */

typedef struct {
    int n;                                   /* live replicas compared */
    int rep[64];                             /* their replica indices */
    Metaembed__ListCollectionsReply *list[64];
} catalogs_t;

static const Metaembed__CollectionConfig *find_live(const Metaembed__ListCollectionsReply *l, const char *name) {
    for (size_t i = 0; i < l->n_collections; i++)
        if (l->collections[i]->config && strcmp(l->collections[i]->config->name, name) == 0)
            return l->collections[i]->config;
    return NULL;
}

static uint64_t find_dropped(const Metaembed__ListCollectionsReply *l, const char *name) {
    for (size_t i = 0; i < l->n_dropped; i++)
        if (strcmp(l->dropped[i]->name, name) == 0) return l->dropped[i]->version;
    return 0;
}

static int has_field(const Metaembed__CollectionConfig *c, const char *name) {
    for (size_t i = 0; i < c->n_fields; i++)
        if (strcmp(c->fields[i]->name, name) == 0) return 1;
    return 0;
}

/* Converges one name across the replicas; *live set when it should exist. */
static int converge_name(repairer_t *rp, catalogs_t *cs, const char *name, int *live, uint64_t *fixed) {
    const Metaembed__CollectionConfig *best = NULL;
    uint64_t dropped = 0;
    for (int k = 0; k < cs->n; k++) {
        const Metaembed__CollectionConfig *c = find_live(cs->list[k], name);
        if (c && (!best || c->version > best->version)) best = c;
        uint64_t d = find_dropped(cs->list[k], name);
        if (d > dropped) dropped = d;
    }
    int rc = 0;
    me_reply_t rep;
    *live = best && best->version > dropped;
    for (int k = 0; k < cs->n; k++) {
        const Metaembed__CollectionConfig *c = find_live(cs->list[k], name);
        int e = 0;
        if (!*live && c) {
            Metaembed__DropCollectionRequest d = METAEMBED__DROP_COLLECTION_REQUEST__INIT;
            d.name = (char *)name;
            d.version = dropped;
            e = call(rp, cs->rep[k], METAEMBED__METHOD__METHOD_DROP_COLLECTION, &d.base, &rep);
            if (e == 0) me_info("repair: dropped collection %s on %s", name, rp->cl->replicas[cs->rep[k]].endpoint);
        } else if (*live && !c) {
            Metaembed__CreateCollectionRequest cr = METAEMBED__CREATE_COLLECTION_REQUEST__INIT;
            cr.config = (Metaembed__CollectionConfig *)best;
            e = call(rp, cs->rep[k], METAEMBED__METHOD__METHOD_CREATE_COLLECTION, &cr.base, &rep);
            if (e == 0) me_info("repair: created collection %s on %s", name, rp->cl->replicas[cs->rep[k]].endpoint);
        } else if (*live) {
            /* Fields indexed on some replica and not on this one. */
            Metaembed__FieldSpec *missing[64];
            size_t nm = 0;
            for (int j = 0; j < cs->n; j++) {
                const Metaembed__CollectionConfig *o = find_live(cs->list[j], name);
                for (size_t f = 0; o && f < o->n_fields && nm < 64; f++) {
                    int dup = has_field(c, o->fields[f]->name);
                    for (size_t q = 0; q < nm && !dup; q++) dup = strcmp(missing[q]->name, o->fields[f]->name) == 0;
                    if (!dup) missing[nm++] = o->fields[f];
                }
            }
            if (nm) {
                Metaembed__IndexFieldsRequest ix = METAEMBED__INDEX_FIELDS_REQUEST__INIT;
                ix.collection = (char *)name;
                ix.fields = missing;
                ix.n_fields = nm;
                e = call(rp, cs->rep[k], METAEMBED__METHOD__METHOD_INDEX_FIELDS, &ix.base, &rep);
                if (e == 0) me_info("repair: indexed %zu fields of %s on %s", nm, name, rp->cl->replicas[cs->rep[k]].endpoint);
            }
        } else continue;
        me_reply_clear(&rep);
        if (e == ME_ESTALE || e == ME_ENOTFOUND) e = 0;  /* newer there, or gone already */
        if (e) rc = e;
        else if (!(*live && c)) (*fixed)++;
    }
    return rc;
}

/* ---- documents ---- */

/* Pending work for one replica: ids to copy from a source, or tombstones. */
typedef struct {
    char *ids[COPY_BATCH];
    size_t n;
    int src;           /* copy: the replica read from; delete: -1 */
    uint64_t version;  /* delete: the tombstones' version */
} batch_t;

static int flush(repairer_t *rp, const char *coll, int dst, batch_t *b) {
    if (!b->n) return 0;
    int rc = b->src >= 0 ? me_copier_copy(&rp->cp, coll, b->src, &dst, 1, b->ids, b->n, NULL)
                         : me_copier_delete(&rp->cp, coll, dst, b->ids, b->n, b->version);
    b->n = 0;
    return rc;
}

/* Brings each compared replica up to the newest version of every entry. */
static int fix_entries(repairer_t *rp, const catalogs_t *cs, const char *coll, me_copy_entry_t *e, size_t n, uint64_t *fixed) {
    batch_t *b = calloc((size_t)cs->n, sizeof *b);
    if (!b) return ME_ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0;) {
        size_t j = i + 1;
        while (j < n && strcmp(e[j].id, e[i].id) == 0) j++;
        const me_copy_entry_t *best = &e[i];
        for (int k = 0; k < cs->n && rc == 0; k++) {
            int has = 0;
            for (size_t q = i; q < j && !has; q++) has = e[q].k == k && e[q].version == best->version;
            if (has) continue;
            int src = best->deleted ? -1 : cs->rep[best->k];
            if (b[k].n && (b[k].src != src || (src < 0 && b[k].version != best->version)))
                rc = flush(rp, coll, cs->rep[k], &b[k]);
            b[k].src = src;
            b[k].version = best->version;
            b[k].ids[b[k].n++] = best->id;
            (*fixed)++;
            if (rc == 0 && b[k].n == COPY_BATCH) rc = flush(rp, coll, cs->rep[k], &b[k]);
        }
        i = j;
    }
    for (int k = 0; k < cs->n; k++) {
        int e2 = flush(rp, coll, cs->rep[k], &b[k]);
        if (rc == 0) rc = e2;
    }
    free(b);
    return rc;
}

static int sync_collection(repairer_t *rp, const catalogs_t *cs, const char *coll, uint64_t *fixed) {
    uint64_t (*dig)[ME_SYNC_BUCKETS] = calloc((size_t)cs->n, sizeof *dig);
    if (!dig) return ME_ENOMEM;
    int rc = 0;
    for (int k = 0; k < cs->n && rc == 0; k++) {
        Metaembed__SyncStateRequest q = METAEMBED__SYNC_STATE_REQUEST__INIT;
        q.collection = (char *)coll;
        me_reply_t rep;
        if ((rc = call(rp, cs->rep[k], METAEMBED__METHOD__METHOD_SYNC_STATE, &q.base, &rep)) != 0) break;
        Metaembed__SyncStateReply *s = metaembed__sync_state_reply__unpack(NULL, rep.payload_len, rep.payload);
        me_reply_clear(&rep);
        if (!s || s->n_digests != ME_SYNC_BUCKETS) rc = ME_EPROTO;
        else memcpy(dig[k], s->digests, sizeof dig[k]);
        if (s) metaembed__sync_state_reply__free_unpacked(s, NULL);
    }
    uint32_t diff[ME_SYNC_BUCKETS];
    size_t nd = 0;
    for (unsigned b = 0; rc == 0 && b < ME_SYNC_BUCKETS; b++)
        for (int k = 1; k < cs->n; k++)
            if (dig[k][b] != dig[0][b]) { diff[nd++] = b; break; }
    free(dig);
    for (size_t at = 0; rc == 0 && at < nd; at += LIST_BUCKETS) {
        me_copy_entry_t *e = NULL;
        size_t ne = 0;
        rc = me_copier_list(&rp->cp, cs->rep, cs->n, coll, diff + at, nd - at < LIST_BUCKETS ? nd - at : LIST_BUCKETS,
                            &e, &ne);
        if (rc == 0) rc = fix_entries(rp, cs, coll, e, ne, fixed);
        me_copy_entries_free(e, ne);
    }
    return rc;
}

/* One pass over group g; 0 when its live replicas now agree. */
static int repair_group(repairer_t *rp, int g, uint64_t *docs_fixed, uint64_t *colls_fixed) {
    const me_group_t *grp = &rp->cl->groups[g];
    catalogs_t cs = { 0 };
    unsigned gen[64];
    int rc = 0, all_up = 1;
    for (int k = 0; k < grp->n_replicas && cs.n < 64; k++) {
        int r = grp->first_replica + k;
        if (!atomic_load(&rp->cl->replicas[r].up)) { all_up = 0; continue; }
        gen[cs.n] = atomic_load(&rp->cl->replicas[r].stale_gen);
        cs.rep[cs.n++] = r;
    }
    if (cs.n < 2) return 0;
    for (int k = 0; k < cs.n && rc == 0; k++) {
        Metaembed__ListCollectionsRequest q = METAEMBED__LIST_COLLECTIONS_REQUEST__INIT;
        q.with_dropped = 1;
        me_reply_t rep;
        if ((rc = call(rp, cs.rep[k], METAEMBED__METHOD__METHOD_LIST_COLLECTIONS, &q.base, &rep)) != 0) break;
        cs.list[k] = metaembed__list_collections_reply__unpack(NULL, rep.payload_len, rep.payload);
        me_reply_clear(&rep);
        if (!cs.list[k]) rc = ME_EPROTO;
    }
    /* Every name any replica knows, live or dropped, once. */
    for (int k = 0; k < cs.n && rc == 0; k++) {
        const Metaembed__ListCollectionsReply *l = cs.list[k];
        size_t nnames = l->n_collections + l->n_dropped;
        for (size_t i = 0; i < nnames; i++) {
            const char *name = i < l->n_collections ? l->collections[i]->config->name
                                                    : l->dropped[i - l->n_collections]->name;
            int seen = 0;
            for (int j = 0; j < k && !seen; j++) seen = find_live(cs.list[j], name) || find_dropped(cs.list[j], name);
            for (size_t i2 = 0; i2 < i && !seen; i2++)
                seen = strcmp(name, i2 < l->n_collections ? l->collections[i2]->config->name
                                                          : l->dropped[i2 - l->n_collections]->name) == 0;
            if (seen) continue;
            int live = 0;
            int e = converge_name(rp, &cs, name, &live, colls_fixed);
            if (e == 0 && live) e = sync_collection(rp, &cs, name, docs_fixed);
            if (e) rc = e;
        }
    }
    for (int k = 0; k < cs.n; k++)
        if (cs.list[k]) metaembed__list_collections_reply__free_unpacked(cs.list[k], NULL);
    if (rc) return rc;
    /* Clean: every live replica holds what any of them held. A replica
     * marked again since the pass began stays stale. */
    for (int k = 0; k < cs.n; k++) {
        me_replica_t *r = &rp->cl->replicas[cs.rep[k]];
        if (atomic_load(&r->stale_gen) == gen[k] && atomic_exchange(&r->stale, 0))
            me_info("replica %s is in sync with %s", r->endpoint, all_up ? "its group" : "its live siblings");
    }
    return 0;
}

static void sleep_ms(int ms) {
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

void me_repair_loop(me_coord_t *co, void *zctx, int interval_ms, const atomic_int *stop) {
    repairer_t rp = { .co = co, .cl = &co->cluster };
    if (me_copier_init(&rp.cp, &co->cluster, zctx, CALL_MS) != 0) return;
    uint64_t last = me_now_ms();
    /* A first pass soon after start: the coordinator cannot know what
     * happened while it was away. */
    atomic_store(&co->cluster.repair_wanted, 1);
    while (!atomic_load(stop)) {
        sleep_ms(100);
        uint64_t now = me_now_ms();
        int wanted = atomic_exchange(&co->cluster.repair_wanted, 0);
        if (!wanted && !(interval_ms > 0 && now - last >= (uint64_t)interval_ms)) continue;
        last = now;
        int failed = 0;
        for (int g = 0; g < co->cluster.n_groups && !atomic_load(stop); g++) {
            if (co->cluster.groups[g].n_replicas < 2) continue;
            uint64_t docs = 0, colls = 0;
            int rc = repair_group(&rp, g, &docs, &colls);
            atomic_fetch_add(&co->repaired_documents, docs);
            atomic_fetch_add(&co->repaired_collections, colls);
            if (docs || colls)
                me_info("repair: group %s: %llu documents and %llu collections brought up to date%s",
                        co->cluster.groups[g].name, (unsigned long long)docs, (unsigned long long)colls,
                        rc ? " (pass incomplete)" : "");
            if (rc) failed = 1;
        }
        atomic_fetch_add(&co->repair_passes, 1);
        /* A stale replica left after an incomplete pass: try again soon. */
        for (int r = 0; r < co->cluster.n_replicas && !failed; r++)
            if (atomic_load(&co->cluster.replicas[r].stale) && atomic_load(&co->cluster.replicas[r].up)) failed = 1;
        if (failed) {
            sleep_ms(400);
            atomic_store(&co->cluster.repair_wanted, 1);
        }
    }
    me_copier_free(&rp.cp);
}
