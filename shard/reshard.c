/* Placement fencing, owned-document reads and purges (see reshard.h). */
#include "shard/reshard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "common/placement.h"
#include "shard/record.h"
#include "shard/versions.h"

/* In meta, beside collection names ([A-Za-z0-9_.-]) and drop tombstones
 * ('!'): '#' keeps it apart from both. */
#define PLACEMENT_KEY "#placement"

int me_reshard_load(me_shard_t *s, char *err, size_t errcap) {
    pthread_mutex_init(&s->placement_lock, NULL);
    char *val = NULL;
    size_t len = 0;
    int rc = me_storage_get(s->storage, ME_CF_META, PLACEMENT_KEY, strlen(PLACEMENT_KEY), &val, &len);
    if (rc == ME_ENOTFOUND) return 0;
    if (rc) {
        snprintf(err, errcap, "reading the stored placement: %s", me_strerror(rc));
        return rc;
    }
    uint64_t word = 0;
    me_placement_t p;
    if (len == 8)
        for (int i = 0; i < 8; i++) word |= (uint64_t)(uint8_t)val[i] << (8 * i);
    me_storage_free(val);
    if (len != 8 || me_placement_unpack(word, &p) != 0) {
        snprintf(err, errcap, "corrupt placement record in meta (%zu bytes)", len);
        return ME_ECORRUPT;
    }
    atomic_store(&s->placement, word);
    char buf[96];
    me_info("cluster placement: %s", me_placement_describe(word, buf, sizeof buf));
    return 0;
}

/* Stores word as the placement (the caller holds placement_lock). */
static int persist(me_shard_t *s, uint64_t word, char *err, size_t errcap) {
    uint8_t val[8];
    for (int i = 0; i < 8; i++) val[i] = (uint8_t)(word >> (8 * i));
    me_wbatch_t *b = me_wbatch_new(s->storage);
    if (!b) return ME_ENOMEM;
    me_wbatch_put(b, ME_CF_META, PLACEMENT_KEY, strlen(PLACEMENT_KEY), val, sizeof val);
    /* Fsynced: a placement once acknowledged must not roll back at a power loss. */
    int rc = me_storage_write_durable(s->storage, b, ME_DURABLE_EVERY, err, errcap);
    me_wbatch_free(b);
    return rc;
}

int me_reshard_fence(me_shard_t *s, me_request_t *r, int refuse) {
    uint64_t want = r->placement, have = atomic_load(&s->placement);
    if (want == 0 || want == have) return 0;
    me_placement_t p;
    if (me_placement_unpack(want, &p) != 0)
        return me_reply_error(r->reply, ME_CODE_INVALID_ARGUMENT,
                              "envelope placement 0x%016llx is not a placement (common/placement.h)",
                              (unsigned long long)want);
    pthread_mutex_lock(&s->placement_lock);
    have = atomic_load(&s->placement);
    int rc = 0;
    char a[96], b[96];
    if (have == 0 || (uint32_t)(want >> 32) > (uint32_t)(have >> 32)) {
        char err[256];
        if ((rc = persist(s, want, err, sizeof err)) != 0)
            rc = me_reply_error(r->reply, ME_CODE_UNAVAILABLE, "storing the new placement: %s; retry", err);
        else {
            atomic_store(&s->placement, want);
            me_info("placement is now %s (was %s)", me_placement_describe(want, a, sizeof a),
                    me_placement_describe(have, b, sizeof b));
        }
    } else if (want != have && refuse) {
        atomic_fetch_add(&s->placement_refused, 1);
        rc = me_reply_error(r->reply, ME_CODE_ABORTED,
                            (uint32_t)(want >> 32) == (uint32_t)(have >> 32)
                                ? "placement conflict: routed with %s, this shard holds %s (do the coordinators' "
                                  "cluster maps list the same groups?)"
                                : "routed with an outdated placement (%s); this shard holds %s: retry",
                            me_placement_describe(want, a, sizeof a), me_placement_describe(have, b, sizeof b));
    }
    pthread_mutex_unlock(&s->placement_lock);
    return rc;
}

uint64_t *me_reshard_owned_bits(const me_shard_t *s, const me_request_t *r, const me_coll_t *c, int *oom) {
    (void)s;
    *oom = 0;
    me_placement_t p;
    /* The request's placement is the shard's (the fence let it in) or older
     * but equal in what reads see; it says what this group owns. */
    if (r->placement == 0 || me_placement_unpack(r->placement, &p) != 0 || p.phase == ME_PHASE_STABLE) return NULL;
    size_t words = me_bitmap_words(c->n);
    uint64_t *bits = calloc(words ? words : 1, sizeof *bits);
    if (!bits) { *oom = 1; return NULL; }
    for (size_t i = 0; i < c->n; i++)
        if (me_placement_owns(p, r->group, c->ids[i], strlen(c->ids[i]))) bits[i >> 6] |= 1ULL << (i & 63);
    return bits;
}

typedef struct {
    int group, of;
    char **ids;
    size_t n, cap;
} foreign_t;

static int add_foreign(foreign_t *f, const char *id, size_t len) {
    if (me_place(id, len, f->of) == f->group) return 0;
    if (f->n == f->cap) {
        size_t nc = f->cap ? 2 * f->cap : 256;
        char **ni = realloc(f->ids, nc * sizeof *ni);
        if (!ni) return ME_ENOMEM;
        f->ids = ni;
        f->cap = nc;
    }
    if (!(f->ids[f->n] = strndup(id, len))) return ME_ENOMEM;
    f->n++;
    return 0;
}

static int version_foreign(void *ctx, const char *id, size_t idlen, me_ver_t v) {
    (void)v;
    return add_foreign(ctx, id, idlen);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

#define PURGE_CHUNK 512  /* ids removed per write batch (and write-lock hold) */

int me_reshard_purge(me_shard_t *s, me_coll_t *c, int group, int of_groups, uint64_t *purged, char *err,
                     size_t errcap) {
    *purged = 0;
    foreign_t f = { group, of_groups, NULL, 0, 0 };
    /* Every id with a version record (tombstones included), and every
     * document slot (one written before versions existed has none). */
    pthread_rwlock_rdlock(&c->lock);
    int rc = me_versions_scan(s->storage, c, NULL, version_foreign, &f);
    for (size_t i = 0; rc == 0 && i < c->n; i++) rc = add_foreign(&f, c->ids[i], strlen(c->ids[i]));
    pthread_rwlock_unlock(&c->lock);
    if (rc == 0 && f.n) {
        qsort(f.ids, f.n, sizeof *f.ids, cmp_str);
        size_t k = 0;
        for (size_t i = 0; i < f.n; i++) {
            if (k && strcmp(f.ids[k - 1], f.ids[i]) == 0) { free(f.ids[i]); continue; }
            f.ids[k++] = f.ids[i];
        }
        f.n = k;
    }
    me_ver_t *old = rc == 0 ? malloc(PURGE_CHUNK * sizeof *old) : NULL;
    if (rc == 0 && !old) rc = ME_ENOMEM;
    for (size_t at = 0; rc == 0 && at < f.n; at += PURGE_CHUNK) {
        size_t n = f.n - at < PURGE_CHUNK ? f.n - at : PURGE_CHUNK;
        char **ids = f.ids + at;
        me_wbatch_t *b = me_wbatch_new(s->storage);
        if (!b) { rc = ME_ENOMEM; break; }
        pthread_rwlock_wrlock(&c->lock);
        rc = me_versions_get_many(s->storage, c, ids, n, old);
        for (size_t i = 0; rc == 0 && i < n; i++) {
            me_record_delete_doc(b, c, ids[i]);
            me_versions_delete(b, c, ids[i]);
        }
        if (rc == 0) rc = me_storage_write(s->storage, b, err, errcap);
        size_t removed = 0;
        for (size_t i = 0; rc == 0 && i < n; i++) {
            if (me_versions_digest_update(c, ids[i], old[i], (me_ver_t){ 0, 0 }) != 0)
                me_error("out of memory updating the digest of %s; restart the shard to reload", ids[i]);
            removed += (size_t)me_coll_remove(c, ids[i], strlen(ids[i]));
        }
        pthread_rwlock_unlock(&c->lock);
        me_wbatch_free(b);
        atomic_fetch_sub(&s->documents, removed);
        *purged += n;
    }
    if (rc && !err[0]) snprintf(err, errcap, "purging %s: %s", c->cfg.name, me_strerror(rc));
    free(old);
    for (size_t i = 0; i < f.n; i++) free(f.ids[i]);
    free(f.ids);
    atomic_fetch_add(&s->purged, *purged);
    return rc;
}
