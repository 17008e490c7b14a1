#include "shard/versions.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/sync.h"
#include "shard/record.h"

#define VER_LEN 9

static void encode(uint8_t out[VER_LEN], me_ver_t v) {
    for (int i = 0; i < 8; i++) out[i] = (uint8_t)(v.version >> (8 * i));
    out[8] = (uint8_t)(v.deleted != 0);
}

static int decode(const char *val, size_t len, me_ver_t *v) {
    if (len != VER_LEN || (uint8_t)val[8] > 1) return ME_ECORRUPT;
    v->version = 0;
    for (int i = 0; i < 8; i++) v->version |= (uint64_t)(uint8_t)val[i] << (8 * i);
    v->deleted = (uint8_t)val[8];
    return 0;
}

int me_versions_get(me_storage_t *st, const me_coll_t *c, const char *id, me_ver_t *out) {
    char *ids[1] = { (char *)id };
    return me_versions_get_many(st, c, ids, 1, out);
}

int me_versions_get_many(me_storage_t *st, const me_coll_t *c, char *const *ids, size_t n, me_ver_t *out) {
    memset(out, 0, n * sizeof *out);
    if (!n) return 0;
    char (*keys)[ME_DOC_KEY_MAX] = malloc(n * sizeof *keys);
    const char **kp = calloc(n, sizeof *kp);
    size_t *kl = calloc(n, sizeof *kl), *vl = calloc(n, sizeof *vl);
    char **vals = calloc(n, sizeof *vals);
    int rc = keys && kp && kl && vl && vals ? 0 : ME_ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        kl[i] = me_doc_key(keys[i], c->id, ids[i], strlen(ids[i]));
        kp[i] = keys[i];
    }
    if (rc == 0) rc = me_storage_multi_get(st, ME_CF_VER, n, kp, kl, vals, vl);
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (vals[i]) rc = decode(vals[i], vl[i], &out[i]);
    if (vals)
        for (size_t i = 0; i < n; i++) me_storage_free(vals[i]);
    free(keys);
    free(kp);
    free(kl);
    free(vl);
    free(vals);
    return rc;
}

void me_versions_put(me_wbatch_t *b, const me_coll_t *c, const char *id, me_ver_t v) {
    char key[ME_DOC_KEY_MAX];
    size_t klen = me_doc_key(key, c->id, id, strlen(id));
    uint8_t val[VER_LEN];
    encode(val, v);
    me_wbatch_put(b, ME_CF_VER, key, klen, val, sizeof val);
}

void me_versions_delete(me_wbatch_t *b, const me_coll_t *c, const char *id) {
    char key[ME_DOC_KEY_MAX];
    size_t klen = me_doc_key(key, c->id, id, strlen(id));
    me_wbatch_delete(b, ME_CF_VER, key, klen);
}

int me_versions_digest_update(me_coll_t *c, const char *id, me_ver_t old, me_ver_t now) {
    if (!c->digest && !(c->digest = calloc(ME_SYNC_BUCKETS, sizeof *c->digest))) return ME_ENOMEM;
    size_t len = strlen(id);
    uint64_t *d = &c->digest[me_sync_bucket(id, len)];
    if (old.version) *d ^= me_sync_entry_hash(id, len, old.version, old.deleted);
    if (now.version) *d ^= me_sync_entry_hash(id, len, now.version, now.deleted);
    return 0;
}

int me_versions_scan(me_storage_t *st, const me_coll_t *c, const uint8_t *want, me_versions_fn fn, void *ctx) {
    char prefix[4];
    me_doc_key(prefix, c->id, "", 0);
    me_iter_t *it = me_storage_iter(st, ME_CF_VER, prefix, 4);
    if (!it) return ME_ENOMEM;
    const char *k, *v;
    size_t kl, vl;
    int rc = 0;
    while (rc == 0 && me_iter_next(it, &k, &kl, &v, &vl)) {
        me_ver_t ver;
        if (kl <= 4 || kl > ME_DOC_KEY_MAX || decode(v, vl, &ver) != 0) { rc = ME_ECORRUPT; break; }
        if (want && !want[me_sync_bucket(k + 4, kl - 4)]) continue;
        rc = fn(ctx, k + 4, kl - 4, ver);
    }
    me_iter_free(it);
    return rc;
}

static int add_to_digest(void *ctx, const char *id, size_t idlen, me_ver_t v) {
    me_coll_t *c = ctx;
    if (!c->digest && !(c->digest = calloc(ME_SYNC_BUCKETS, sizeof *c->digest))) return ME_ENOMEM;
    c->digest[me_sync_bucket(id, idlen)] ^= me_sync_entry_hash(id, idlen, v.version, v.deleted);
    return 0;
}

int me_versions_load(me_storage_t *st, me_coll_t *c, char *err, size_t errcap) {
    int rc = me_versions_scan(st, c, NULL, add_to_digest, c);
    if (rc == ME_ECORRUPT) snprintf(err, errcap, "collection %s: corrupt version record", c->cfg.name);
    return rc;
}

typedef struct {
    const char *id;
    size_t i;
} id_at_t;

static int cmp_id_at(const void *a, const void *b) {
    const id_at_t *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    return c ? c : (x->i > y->i) - (x->i < y->i);
}

int me_versions_mark_earlier(char *const *ids, size_t n, uint8_t *earlier) {
    memset(earlier, 0, n);
    if (n < 2) return 0;
    id_at_t *v = malloc(n * sizeof *v);
    if (!v) return ME_ENOMEM;
    for (size_t i = 0; i < n; i++) v[i] = (id_at_t){ ids[i], i };
    qsort(v, n, sizeof *v, cmp_id_at);
    for (size_t k = 0; k + 1 < n; k++)
        if (strcmp(v[k].id, v[k + 1].id) == 0) earlier[v[k].i] = 1;
    free(v);
    return 0;
}
