/* Online resharding: the mover, run by the coordinator that was asked to
 * start a move (Reshard START), on its own thread.
 *
 * It walks the placement through its phases (common/placement.h), each
 * announced to every replica of every group involved and waited for
 * before the next begins:
 *
 *   COPY      the new groups get the collections; then, per collection,
 *             per source group, 16 sync buckets at a time, the versions
 *             every live replica of the source holds are listed (newest
 *             wins) and each id whose group changes, and that its new
 *             group lacks at that version, is read and upserted there at
 *             its version (tombstones too), on every replica. Dual writes
 *             keep what is written meanwhile on both sides, and versions
 *             make a copy that races a newer write harmless.
 *   SWITCHED  reads now go by the new placement.
 *   CLEAN     writes go to the new placement only; each replica purges
 *             what its group no longer owns.
 *   STABLE    at the new group count.
 *
 * The phase lives on the shards, so a move whose coordinator died stays
 * where it was (dual writes go on: safe for as long as it takes), and
 * START with the same group count, at any coordinator, resumes it: the
 * copy skips what the new groups already hold, so a resumed copy costs
 * listings, not transfers. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "common/log.h"
#include "common/sync.h"
#include "coordinator/copier.h"
#include "coordinator/handlers.h"
#include "coordinator/reshard.h"

#define CALL_MS 3000
#define LIST_BUCKETS 16      /* buckets listed per request */
#define MOVE_BATCH 256       /* documents read and written per request */
#define RETRY_MS 300         /* after a failed step: try again */

struct me_reshard {
    me_coord_t *co;
    pthread_mutex_t lock;    /* guards everything below */
    pthread_t thread;
    int running, joinable;
    int target;
    uint32_t max_rate;
    uint64_t start_ms, end_ms;
    uint64_t moved, estimate, purged;
    double progress;
    char error[256], waiting[256];
    atomic_int stop;
};

static void sleep_ms(int ms) {
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static void set_waiting(me_reshard_t *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_waiting(me_reshard_t *m, const char *fmt, ...) {
    va_list ap;
    pthread_mutex_lock(&m->lock);
    va_start(ap, fmt);
    vsnprintf(m->waiting, sizeof m->waiting, fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&m->lock);
}

typedef struct {
    me_reshard_t *m;
    me_cluster_t *cl;
    me_copier_t cp;
    me_placement_t p;        /* the move's current placement */
    uint64_t list_us, copy_us;  /* where the copy's time went (logged) */
} mover_t;

static int stopping(const mover_t *mv) { return atomic_load(&mv->m->stop); }

/* The live replicas of group g (at most cap). */
static int live_replicas(const me_cluster_t *cl, int g, int *out, int cap) {
    int n = 0;
    for (int k = 0; k < cl->groups[g].n_replicas && n < cap; k++) {
        int r = cl->groups[g].first_replica + k;
        if (atomic_load(&cl->replicas[r].up)) out[n++] = r;
    }
    return n;
}

/* Makes p the placement, on this coordinator and then on every replica of
 * the groups it spans, waiting for each (a replica that is down holds the
 * move until it is back). ME_ESTALE when another move holds a newer or
 * conflicting placement. */
static int announce(mover_t *mv, me_placement_t p) {
    uint64_t word = me_placement_pack(p);
    me_cluster_adopt_placement(mv->cl, word);
    int span = me_placement_span(p);
    char desc[96];
    me_placement_describe(word, desc, sizeof desc);
    for (int r = 0; r < mv->cl->n_replicas && !stopping(mv); r++) {
        if (mv->cl->replicas[r].group >= span) continue;
        for (;;) {
            uint64_t held = 0;
            int rc = me_copier_announce(&mv->cp, r, word, &held);
            if (rc == 0 && held == word) break;
            if (rc == 0 && (uint32_t)(held >> 32) >= p.epoch) {
                char other[96];
                pthread_mutex_lock(&mv->m->lock);
                snprintf(mv->m->error, sizeof mv->m->error, "another move holds the placement: %s (wanted %s)",
                         me_placement_describe(held, other, sizeof other), desc);
                pthread_mutex_unlock(&mv->m->lock);
                return ME_ESTALE;
            }
            set_waiting(mv->m, "announcing %s to %s: %s", desc, mv->cl->replicas[r].endpoint,
                        rc ? me_strerror(rc) : "not taken yet");
            if (stopping(mv)) return ME_EIO;
            sleep_ms(RETRY_MS);
        }
    }
    set_waiting(mv->m, "%s", "");
    mv->p = p;
    me_info("reshard: placement %s is on every replica", desc);
    return stopping(mv) ? ME_EIO : 0;
}

/* ---- COPY ---- */

/* The collections of group 0 (one live replica), drop tombstones included. */
static Metaembed__ListCollectionsReply *catalog(mover_t *mv, int g) {
    int reps[8];
    int n = live_replicas(mv->cl, g, reps, 8);
    for (int i = 0; i < n; i++) {
        Metaembed__ListCollectionsRequest q = METAEMBED__LIST_COLLECTIONS_REQUEST__INIT;
        q.with_dropped = 1;
        me_reply_t rep;
        if (me_copier_call(&mv->cp, reps[i], METAEMBED__METHOD__METHOD_LIST_COLLECTIONS, &q.base, &rep) != 0) continue;
        Metaembed__ListCollectionsReply *l = metaembed__list_collections_reply__unpack(NULL, rep.payload_len, rep.payload);
        me_reply_clear(&rep);
        if (l) return l;
    }
    return NULL;
}

static int has_live(const Metaembed__ListCollectionsReply *l, const char *name) {
    for (size_t i = 0; i < l->n_collections; i++)
        if (l->collections[i]->config && strcmp(l->collections[i]->config->name, name) == 0) return 1;
    return 0;
}

/* Every replica of every group takes group 0's collections: a group that
 * joins gets them created (same config and version), and one that comes
 * back after an earlier move loses those group 0 has dropped since (at the
 * drop's version). */
static int sync_catalog(mover_t *mv, const Metaembed__ListCollectionsReply *src) {
    int span = me_placement_span(mv->p);
    for (int r = mv->cl->groups[0].n_replicas; r < mv->cl->n_replicas; r++) {
        if (mv->cl->replicas[r].group >= span) continue;
        Metaembed__ListCollectionsRequest q = METAEMBED__LIST_COLLECTIONS_REQUEST__INIT;
        me_reply_t rep;
        int rc = me_copier_call(&mv->cp, r, METAEMBED__METHOD__METHOD_LIST_COLLECTIONS, &q.base, &rep);
        if (rc) return rc;
        Metaembed__ListCollectionsReply *have = metaembed__list_collections_reply__unpack(NULL, rep.payload_len, rep.payload);
        me_reply_clear(&rep);
        if (!have) return ME_EPROTO;
        for (size_t i = 0; rc == 0 && i < src->n_collections; i++) {
            Metaembed__CollectionConfig *cfg = src->collections[i]->config;
            if (!cfg || has_live(have, cfg->name)) continue;
            Metaembed__CreateCollectionRequest cr = METAEMBED__CREATE_COLLECTION_REQUEST__INIT;
            cr.config = cfg;
            rc = me_copier_call(&mv->cp, r, METAEMBED__METHOD__METHOD_CREATE_COLLECTION, &cr.base, &rep);
            me_reply_clear(&rep);
            if (rc == 0) me_info("reshard: created collection %s on %s", cfg->name, mv->cl->replicas[r].endpoint);
            if (rc == ME_ESTALE) rc = 0;  /* dropped there after this create: repair's business */
        }
        for (size_t i = 0; rc == 0 && i < have->n_collections; i++) {
            const Metaembed__CollectionConfig *hc = have->collections[i]->config;
            if (!hc || has_live(src, hc->name)) continue;
            /* Only a drop group 0 knows of, newer than this create: a name
             * group 0 lacks altogether may have been created since it was
             * listed. */
            uint64_t dropped = 0;
            for (size_t k = 0; k < src->n_dropped; k++)
                if (strcmp(src->dropped[k]->name, hc->name) == 0 && src->dropped[k]->version > dropped)
                    dropped = src->dropped[k]->version;
            if (dropped <= hc->version) continue;
            const char *name = hc->name;
            Metaembed__DropCollectionRequest d = METAEMBED__DROP_COLLECTION_REQUEST__INIT;
            d.name = (char *)name;
            d.version = dropped;
            rc = me_copier_call(&mv->cp, r, METAEMBED__METHOD__METHOD_DROP_COLLECTION, &d.base, &rep);
            me_reply_clear(&rep);
            if (rc == 0) me_info("reshard: dropped collection %s on %s (gone from the cluster)", name,
                                 mv->cl->replicas[r].endpoint);
            if (rc == ME_ENOTFOUND || rc == ME_ESTALE) rc = 0;
        }
        metaembed__list_collections_reply__free_unpacked(have, NULL);
        if (rc) return rc;
    }
    return 0;
}

/* Has the destination (its first live replica's listing) id at >= version? */
static int dest_has(const me_copy_entry_t *d, size_t nd, const char *id, uint64_t version) {
    size_t lo = 0, hi = nd;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(d[mid].id, id);
        if (c == 0) return d[mid].version >= version;  /* one replica's listing: each id once */
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return 0;
}

static void pace(mover_t *mv, uint64_t moved_now) {
    uint32_t rate;
    uint64_t start;
    pthread_mutex_lock(&mv->m->lock);
    rate = mv->m->max_rate;
    start = mv->m->start_ms;
    pthread_mutex_unlock(&mv->m->lock);
    if (!rate) return;
    uint64_t due_ms = start + moved_now * 1000u / rate, now = me_now_ms();
    if (due_ms > now) sleep_ms((int)(due_ms - now > 1000 ? 1000 : due_ms - now));
}

/* Moves the entries of one chunk of buckets of coll from group g. */
static int move_chunk(mover_t *mv, const char *coll, int g, const uint32_t *buckets, size_t nb) {
    int src[8], nsrc = live_replicas(mv->cl, g, src, 8);
    if (nsrc == 0) return ME_EUNAVAIL;
    me_copy_entry_t *e = NULL;
    size_t ne = 0;
    uint64_t t0 = me_now_us();
    int rc = me_copier_list(&mv->cp, src, nsrc, coll, buckets, nb, &e, &ne);
    mv->list_us += me_now_us() - t0;
    int to = mv->p.to, from = mv->p.from;
    /* Each destination group's listing of the same buckets (its first live
     * replica), so what it already holds is not sent again. */
    me_copy_entry_t *dl[ME_PLACEMENT_MAX_GROUPS + 1] = { 0 };
    size_t dn[ME_PLACEMENT_MAX_GROUPS + 1] = { 0 };
    for (size_t i = 0; rc == 0 && i < ne;) {
        size_t j = i + 1;
        while (j < ne && strcmp(e[j].id, e[i].id) == 0) j++;
        const me_copy_entry_t *best = &e[i];
        size_t len = strlen(best->id);
        int d = me_place(best->id, len, to);
        i = j;
        if (me_place(best->id, len, from) != g || d == g) continue;
        if (!dl[d]) {
            int dr[8];
            if (live_replicas(mv->cl, d, dr, 8) == 0) { rc = ME_EUNAVAIL; break; }
            t0 = me_now_us();
            rc = me_copier_list(&mv->cp, dr, 1, coll, buckets, nb, &dl[d], &dn[d]);
            mv->list_us += me_now_us() - t0;
            if (rc) break;
            if (!dl[d]) dl[d] = calloc(1, sizeof *dl[d]);  /* listed, empty */
            if (!dl[d]) { rc = ME_ENOMEM; break; }
        }
        if (dest_has(dl[d], dn[d], best->id, best->version)) continue;
        /* One id at a time would be slow: gather this destination's run. */
        char *ids[MOVE_BATCH];
        int nids = 0, srck = best->k, deleted = best->deleted;
        uint64_t version = best->version;
        ids[nids++] = best->id;
        while (i < ne && nids < MOVE_BATCH) {
            size_t j2 = i + 1;
            while (j2 < ne && strcmp(e[j2].id, e[i].id) == 0) j2++;
            const me_copy_entry_t *b2 = &e[i];
            size_t l2 = strlen(b2->id);
            int d2 = me_place(b2->id, l2, to);
            if (me_place(b2->id, l2, from) != g || d2 == g) { i = j2; continue; }  /* not moving from here */
            if (d2 != d || b2->k != srck || b2->deleted != deleted ||
                (deleted && b2->version != version))
                break;
            if (!dest_has(dl[d], dn[d], b2->id, b2->version)) ids[nids++] = b2->id;
            i = j2;
        }
        t0 = me_now_us();
        int dst[8], ndst = 0;
        for (int k = 0; k < mv->cl->groups[d].n_replicas && ndst < 8; k++) dst[ndst++] = mv->cl->groups[d].first_replica + k;
        if (deleted) {
            for (int k = 0; k < ndst && rc == 0; k++) rc = me_copier_delete(&mv->cp, coll, dst[k], ids, (size_t)nids, version);
        } else {
            int ok[8];
            rc = me_copier_copy(&mv->cp, coll, src[srck], dst, ndst, ids, (size_t)nids, ok);
            /* A destination replica that is down is repaired later; the move
             * needs the group's live ones. */
            if (rc) {
                int any = 0, missed_live = 0;
                for (int k = 0; k < ndst; k++) {
                    any |= ok[k];
                    if (!ok[k] && atomic_load(&mv->cl->replicas[dst[k]].up)) missed_live = 1;
                    if (!ok[k]) me_cluster_mark_stale(mv->cl, dst[k]);
                }
                if (any && !missed_live) rc = 0;
            }
        }
        mv->copy_us += me_now_us() - t0;
        if (rc == 0) {
            pthread_mutex_lock(&mv->m->lock);
            mv->m->moved += (uint64_t)nids;
            uint64_t moved = mv->m->moved;
            pthread_mutex_unlock(&mv->m->lock);
            pace(mv, moved);
        }
    }
    for (int d = 0; d <= ME_PLACEMENT_MAX_GROUPS; d++) me_copy_entries_free(dl[d], dn[d]);
    me_copy_entries_free(e, ne);
    return rc;
}

static int copy_all(mover_t *mv, const Metaembed__ListCollectionsReply *cat) {
    int span = me_placement_span(mv->p);
    size_t chunks = (ME_SYNC_BUCKETS + LIST_BUCKETS - 1) / LIST_BUCKETS;
    size_t total = cat->n_collections * (size_t)span * chunks, done = 0;
    for (size_t c = 0; c < cat->n_collections; c++) {
        const char *coll = cat->collections[c]->config ? cat->collections[c]->config->name : "";
        for (int g = 0; g < span; g++) {
            /* Growing, only the old groups hold what moves; shrinking, only the leaving ones. */
            int source = mv->p.to > mv->p.from ? g < mv->p.from : g >= mv->p.to;
            for (size_t ch = 0; ch < chunks; ch++) {
                uint32_t b[LIST_BUCKETS];
                size_t nb = 0;
                for (size_t k = ch * LIST_BUCKETS; k < (ch + 1) * LIST_BUCKETS && k < ME_SYNC_BUCKETS; k++)
                    b[nb++] = (uint32_t)k;
                int rc;
                while (source && (rc = move_chunk(mv, coll, g, b, nb)) != 0) {
                    if (rc == ME_ENOTFOUND) break;  /* dropped meanwhile */
                    set_waiting(mv->m, "copying %s from group %s: %s; retrying", coll, mv->cl->groups[g].name,
                                me_strerror(rc));
                    if (stopping(mv)) return ME_EIO;
                    sleep_ms(RETRY_MS);
                }
                set_waiting(mv->m, "%s", "");
                done++;
                pthread_mutex_lock(&mv->m->lock);
                mv->m->progress = total ? (double)done / (double)total : 1.0;
                pthread_mutex_unlock(&mv->m->lock);
                if (stopping(mv)) return ME_EIO;
            }
        }
    }
    return 0;
}

/* ---- CLEAN ---- */

static int purge_all(mover_t *mv, const Metaembed__ListCollectionsReply *cat) {
    int span = me_placement_span(mv->p);
    for (size_t c = 0; c < cat->n_collections; c++) {
        const char *coll = cat->collections[c]->config ? cat->collections[c]->config->name : "";
        for (int r = 0; r < mv->cl->n_replicas; r++) {
            int g = mv->cl->replicas[r].group;
            if (g >= span) continue;
            for (;;) {
                Metaembed__ReshardRequest q = METAEMBED__RESHARD_REQUEST__INIT;
                q.op = METAEMBED__RESHARD_OP__RESHARD_PURGE;
                q.collection = (char *)coll;
                q.group = (uint32_t)g;
                q.of_groups = (uint32_t)mv->p.to;
                me_reply_t rep;
                int rc = me_copier_call(&mv->cp, r, METAEMBED__METHOD__METHOD_RESHARD, &q.base, &rep);
                if (rc == 0) {
                    Metaembed__ReshardReply *x = metaembed__reshard_reply__unpack(NULL, rep.payload_len, rep.payload);
                    if (x) {
                        pthread_mutex_lock(&mv->m->lock);
                        mv->m->purged += x->purged;
                        pthread_mutex_unlock(&mv->m->lock);
                        metaembed__reshard_reply__free_unpacked(x, NULL);
                    }
                }
                me_reply_clear(&rep);
                if (rc == 0 || rc == ME_ENOTFOUND) break;
                set_waiting(mv->m, "purging %s on %s: %s; retrying", coll, mv->cl->replicas[r].endpoint, me_strerror(rc));
                if (stopping(mv)) return ME_EIO;
                sleep_ms(RETRY_MS);
            }
        }
    }
    set_waiting(mv->m, "%s", "");
    return 0;
}

/* ---- the move ---- */

static uint64_t estimate_moves(const me_cluster_t *cl, me_placement_t p) {
    double total = 0;
    for (int g = 0; g < me_placement_span(p); g++) {
        uint64_t docs = atomic_load(&cl->replicas[cl->groups[g].first_replica].documents);
        if (p.to > p.from && g < p.from) total += (double)docs * (double)(p.to - p.from) / (double)p.to;
        else if (p.to < p.from && g >= p.to) total += (double)docs;
    }
    return (uint64_t)(total + 0.5);
}

static int run_move(mover_t *mv) {
    me_placement_t p = me_cluster_placement(mv->cl);
    int target = mv->m->target, rc = 0;
    if (p.phase == ME_PHASE_STABLE && p.to == target) return 0;
    me_placement_t next = p.phase == ME_PHASE_STABLE ? (me_placement_t){ p.epoch + 1, ME_PHASE_COPY, p.to, target } : p;
    /* The new groups get the collections before dual writes reach them,
     * and again once they do (a create in between). */
    Metaembed__ListCollectionsReply *cat = NULL;
    mv->p = next;
    for (int pass = 0; pass < 2 && rc == 0; pass++) {
        if (cat) metaembed__list_collections_reply__free_unpacked(cat, NULL);
        while (!(cat = catalog(mv, 0))) {
            set_waiting(mv->m, "listing the collections of group %s", mv->cl->groups[0].name);
            if (stopping(mv)) return ME_EIO;
            sleep_ms(RETRY_MS);
        }
        while ((rc = sync_catalog(mv, cat)) != 0 && !stopping(mv)) {
            set_waiting(mv->m, "creating the collections on the new groups: %s; retrying", me_strerror(rc));
            sleep_ms(RETRY_MS);
        }
        if (rc == 0 && pass == 0) rc = announce(mv, next);  /* resume: make sure every replica holds it */
    }
    if (rc) {
        if (cat) metaembed__list_collections_reply__free_unpacked(cat, NULL);
        return rc;
    }
    pthread_mutex_lock(&mv->m->lock);
    mv->m->estimate = estimate_moves(mv->cl, mv->p);
    pthread_mutex_unlock(&mv->m->lock);
    while (rc == 0 && !stopping(mv)) {
        me_placement_t cur = mv->p;
        if (cur.phase == ME_PHASE_COPY) {
            rc = copy_all(mv, cat);
            me_info("reshard: the copy took %.1f s listing versions and %.1f s reading and writing documents",
                    (double)mv->list_us / 1e6, (double)mv->copy_us / 1e6);
            if (rc == 0) rc = announce(mv, (me_placement_t){ cur.epoch + 1, ME_PHASE_SWITCHED, cur.from, cur.to });
        } else if (cur.phase == ME_PHASE_SWITCHED) {
            rc = announce(mv, (me_placement_t){ cur.epoch + 1, ME_PHASE_CLEAN, cur.from, cur.to });
        } else if (cur.phase == ME_PHASE_CLEAN) {
            pthread_mutex_lock(&mv->m->lock);
            mv->m->progress = 1.0;
            pthread_mutex_unlock(&mv->m->lock);
            rc = purge_all(mv, cat);
            if (rc == 0) rc = announce(mv, (me_placement_t){ cur.epoch + 1, ME_PHASE_STABLE, cur.to, cur.to });
        } else break;  /* stable: done */
    }
    metaembed__list_collections_reply__free_unpacked(cat, NULL);
    return rc;
}

static void *mover_thread(void *arg) {
    me_reshard_t *m = arg;
    mover_t mv = { .m = m, .cl = &m->co->cluster };
    void *zctx = me_wire_context();
    int rc = zctx ? me_copier_init(&mv.cp, mv.cl, zctx, CALL_MS) : ME_ENOMEM;
    if (rc == 0) {
        rc = run_move(&mv);
        me_copier_free(&mv.cp);
    }
    if (zctx) me_wire_context_end(zctx);
    pthread_mutex_lock(&m->lock);
    m->running = 0;
    m->end_ms = me_now_ms();
    if (rc && !m->error[0])
        snprintf(m->error, sizeof m->error, "%s", atomic_load(&m->stop) ? "stopped" : me_strerror(rc));
    if (rc == 0)
        me_info("reshard: done, %llu documents moved, %llu purged in %.1f s", (unsigned long long)m->moved,
                (unsigned long long)m->purged, (double)(m->end_ms - m->start_ms) / 1000.0);
    else me_warn("reshard: stopped: %s", m->error);
    pthread_mutex_unlock(&m->lock);
    return NULL;
}

/* ---- the RPC ---- */

static me_reshard_t *state(me_coord_t *co) {
    static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&init_lock);
    if (!co->reshard && (co->reshard = calloc(1, sizeof *co->reshard)) != NULL) {
        co->reshard->co = co;
        pthread_mutex_init(&co->reshard->lock, NULL);
    }
    pthread_mutex_unlock(&init_lock);
    return co->reshard;
}

void me_reshard_status(me_coord_t *co, me_reshard_status_t *out) {
    memset(out, 0, sizeof *out);
    out->placement = me_cluster_placement(&co->cluster);
    me_reshard_t *m = co->reshard;
    if (!m) return;
    pthread_mutex_lock(&m->lock);
    out->running = m->running;
    out->moved = m->moved;
    out->estimate = m->estimate;
    out->purged = m->purged;
    out->progress = m->progress;
    out->elapsed_ms = m->start_ms ? (m->running ? me_now_ms() : m->end_ms) - m->start_ms : 0;
    out->docs_per_s = out->elapsed_ms ? (double)m->moved * 1000.0 / (double)out->elapsed_ms : 0;
    if (m->running && m->progress > 0 && m->progress < 1)
        out->eta_ms = (uint64_t)((double)out->elapsed_ms * (1 - m->progress) / m->progress);
    snprintf(out->error, sizeof out->error, "%s", m->error);
    snprintf(out->waiting, sizeof out->waiting, "%s", m->waiting);
    pthread_mutex_unlock(&m->lock);
}

static int reply_status(req_t *r) {
    me_reshard_status_t st;
    me_reshard_status(COORD(r), &st);
    Metaembed__ReshardReply rep = METAEMBED__RESHARD_REPLY__INIT;
    rep.phase = (char *)me_placement_phase_name(st.placement.phase);
    rep.from_groups = (uint32_t)st.placement.from;
    rep.to_groups = (uint32_t)st.placement.to;
    rep.epoch = st.placement.epoch;
    rep.running = st.running;
    rep.moved = st.moved;
    rep.estimate = st.estimate;
    rep.purged = st.purged;
    rep.progress = st.progress;
    rep.elapsed_ms = st.elapsed_ms;
    rep.docs_per_s = st.docs_per_s;
    rep.eta_ms = st.eta_ms;
    rep.error = st.error;
    rep.waiting = st.waiting;
    return me_reply_ok(r->reply, &rep.base);
}

int me_coord_reshard(req_t *r) {
    const Metaembed__ReshardRequest *q = (const void *)r->msg;
    me_coord_t *co = COORD(r);
    if (q->op == METAEMBED__RESHARD_OP__RESHARD_STATUS) return reply_status(r);
    if (q->op != METAEMBED__RESHARD_OP__RESHARD_START)
        return BAD(r, "a coordinator starts (START) or reports (STATUS) a move; PURGE is for shards");
    int n = co->cluster.n_groups;
    if (q->groups < 1 || (int)q->groups > n)
        return BAD(r, "groups=%u: the cluster map has %d shard groups; give 1..%d (add a 'standby' group to the map "
                   "of every coordinator to grow beyond)", q->groups, n, n);
    me_reshard_t *m = state(co);
    if (!m) return OOM(r);
    me_placement_t p = me_cluster_placement(&co->cluster);
    pthread_mutex_lock(&m->lock);
    if (m->running) {
        int target = m->target;
        pthread_mutex_unlock(&m->lock);
        if (target != (int)q->groups)
            return me_reply_error(r->reply, ME_CODE_FAILED_PRECONDITION,
                                  "a move to %d groups is under way here; wait for it (metaembed reshard --status)",
                                  target);
        return reply_status(r);
    }
    if (p.phase != ME_PHASE_STABLE && p.to != (int)q->groups) {
        pthread_mutex_unlock(&m->lock);
        return me_reply_error(r->reply, ME_CODE_FAILED_PRECONDITION,
                              "a move from %d to %d groups is under way (phase %s); finish it first: metaembed "
                              "reshard --groups %d", p.from, p.to, me_placement_phase_name(p.phase), p.to);
    }
    if (m->joinable) pthread_join(m->thread, NULL);
    m->joinable = 0;
    m->target = (int)q->groups;
    m->max_rate = q->max_rate;
    m->start_ms = me_now_ms();
    m->end_ms = 0;
    m->moved = m->estimate = m->purged = 0;
    m->progress = 0;
    m->error[0] = m->waiting[0] = 0;
    atomic_store(&m->stop, 0);
    m->running = 1;
    if (pthread_create(&m->thread, NULL, mover_thread, m) != 0) {
        m->running = 0;
        pthread_mutex_unlock(&m->lock);
        return me_reply_error(r->reply, ME_CODE_RESOURCE_EXHAUSTED, "cannot start the mover thread");
    }
    m->joinable = 1;
    me_info("reshard: moving from %d to %d groups (requested)", p.to, (int)q->groups);
    pthread_mutex_unlock(&m->lock);
    return reply_status(r);
}

void me_reshard_shutdown(me_coord_t *co) {
    me_reshard_t *m = co->reshard;
    if (!m) return;
    atomic_store(&m->stop, 1);
    if (m->joinable) pthread_join(m->thread, NULL);
    pthread_mutex_destroy(&m->lock);
    free(m);
    co->reshard = NULL;
}
