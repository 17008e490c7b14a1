/* JSON-lines dataset loader (plain or gzip through zlib) and hard negatives. */
#include "encoder/dataset.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "common/bm25.h"
#include "common/error.h"
#include "common/hash.h"
#include "common/json.h"
#include "common/paths.h"
#include "common/topk.h"

const char *me_split_name(me_split_t s) {
    switch (s) {
    case ME_SPLIT_TRAIN: return "train";
    case ME_SPLIT_DEV: return "dev";
    case ME_SPLIT_TEST: return "test";
    default: return "?";
    }
}

/* ---- loading ---- */

/* Records keep offsets into the pool while it grows; pointers are set at
 * the end, once the pool stops moving. */
typedef struct {
    me_dataset_t *ds;
    size_t cap_recs;
    size_t npool, cap_pool;
} loader_t;

static int pool_put(loader_t *ld, const char *s, size_t n, size_t *off) {
    if (ld->cap_pool - ld->npool < n + 1) {
        size_t cap = ld->cap_pool ? ld->cap_pool : 1 << 20;
        while (cap - ld->npool < n + 1) cap *= 2;
        char *np = realloc(ld->ds->pool_, cap);
        if (!np) return ME_ENOMEM;
        ld->ds->pool_ = np;
        ld->cap_pool = cap;
    }
    memcpy(ld->ds->pool_ + ld->npool, s, n);
    ld->ds->pool_[ld->npool + n] = 0;
    *off = ld->npool;
    ld->npool += n + 1;
    return 0;
}

static const char *rec_id(const me_dataset_t *ds, const me_datarec_t *r, int resolved) {
    return resolved ? r->id : ds->pool_ + (size_t)(uintptr_t)r->id;
}

/* Finds id in the table; returns the slot (empty or holding it). */
static size_t id_slot(const me_dataset_t *ds, const char *id, size_t len, int resolved) {
    size_t h = me_hash64(id, len) & ds->mask_;
    while (ds->slots_[h] >= 0) {
        const me_datarec_t *r = &ds->recs[ds->slots_[h]];
        if (r->id_len == len && memcmp(rec_id(ds, r, resolved), id, len) == 0) break;
        h = (h + 1) & ds->mask_;
    }
    return h;
}

static int id_table_grow(me_dataset_t *ds) {
    size_t cap = ds->mask_ ? (ds->mask_ + 1) * 2 : 1 << 12;
    int32_t *old = ds->slots_;
    size_t oldcap = ds->mask_ ? ds->mask_ + 1 : 0;
    ds->slots_ = malloc(cap * sizeof *ds->slots_);
    if (!ds->slots_) { ds->slots_ = old; return ME_ENOMEM; }
    memset(ds->slots_, 0xff, cap * sizeof *ds->slots_);
    ds->mask_ = cap - 1;
    for (size_t i = 0; i < oldcap; i++) {
        if (old[i] < 0) continue;
        const me_datarec_t *r = &ds->recs[old[i]];
        ds->slots_[id_slot(ds, rec_id(ds, r, 0), r->id_len, 0)] = old[i];
    }
    free(old);
    return 0;
}

/* Parses one line into a new record. Returns 0, ME_ENOMEM, or ME_EINVAL
 * with the problem in why. */
static int add_line(loader_t *ld, const char *line, size_t len, uint32_t lineno, char *why, size_t whycap) {
    me_dataset_t *ds = ld->ds;
    me_json_doc_t *doc = NULL;
    me_json_error_t je;
    int rc = me_json_parse(line, len, &doc, &je);
    if (rc == ME_ENOMEM) return rc;
    if (rc != 0) { me_set_err(why, whycap, "invalid JSON: %s", je.msg); return ME_EINVAL; }
    const me_json_t *root = me_json_root(doc);
    static const char *const names[] = { "id", "split", "query", "text" };
    const me_json_t *f[4];
    rc = ME_EINVAL;
    if (root->type != ME_JSON_OBJECT) { me_set_err(why, whycap, "not a JSON object"); goto out; }
    for (int i = 0; i < 4; i++) {
        f[i] = me_json_get(root, names[i]);
        if (!f[i]) { me_set_err(why, whycap, "no \"%s\" member", names[i]); goto out; }
        if (f[i]->type != ME_JSON_STRING) { me_set_err(why, whycap, "\"%s\" is not a string", names[i]); goto out; }
        if (f[i]->len > UINT32_MAX - 1) { me_set_err(why, whycap, "\"%s\" is too long", names[i]); goto out; }
    }
    if (f[0]->len == 0) { me_set_err(why, whycap, "empty \"id\""); goto out; }
    me_split_t split;
    const char *sp = f[1]->u.str;
    if (!strcmp(sp, "train")) split = ME_SPLIT_TRAIN;
    else if (!strcmp(sp, "dev")) split = ME_SPLIT_DEV;
    else if (!strcmp(sp, "test")) split = ME_SPLIT_TEST;
    else { me_set_err(why, whycap, "\"split\" is \"%.40s\", not train, dev or test", sp); goto out; }

    if (ds->mask_ == 0 || 2 * (ds->n + 1) > ds->mask_ + 1)
        if ((rc = id_table_grow(ds)) != 0) goto out;
    size_t slot = id_slot(ds, f[0]->u.str, f[0]->len, 0);
    int dup = ds->slots_[slot] >= 0;
    if (ds->n == ld->cap_recs) {
        size_t cap = ld->cap_recs ? ld->cap_recs * 2 : 1024;
        me_datarec_t *nr = realloc(ds->recs, cap * sizeof *nr);
        if (!nr) { rc = ME_ENOMEM; goto out; }
        ds->recs = nr;
        ld->cap_recs = cap;
    }
    size_t off[3];
    for (int i = 0; i < 3; i++) {
        const me_json_t *v = f[i == 0 ? 0 : i + 1];
        if ((rc = pool_put(ld, v->u.str, v->len, &off[i])) != 0) goto out;
    }
    me_datarec_t *r = &ds->recs[ds->n];
    r->id = (const char *)(uintptr_t)off[0];
    r->query = (const char *)(uintptr_t)off[1];
    r->text = (const char *)(uintptr_t)off[2];
    r->id_len = (uint32_t)f[0]->len;
    r->query_len = (uint32_t)f[2]->len;
    r->text_len = (uint32_t)f[3]->len;
    r->split = split;
    r->line = lineno;
    if (dup) ds->duplicate_ids++;
    else ds->slots_[slot] = (int32_t)ds->n;
    ds->n_split[split]++;
    ds->n++;
    rc = 0;
out:
    me_json_free(doc);
    return rc;
}

/* Handles one complete line (without its '\n'). */
static int take_line(loader_t *ld, const char *path, char *line, size_t len, uint32_t lineno, int skip,
                     char *err, size_t errcap) {
    if (len > 0 && line[len - 1] == '\r') len--;
    if (len == 0) return 0;
    char why[180];
    int rc = add_line(ld, line, len, lineno, why, sizeof why);
    if (rc == ME_ENOMEM) { me_set_err(err, errcap, "%s:%u: out of memory", path, lineno); return rc; }
    if (rc != 0) {
        if (!skip) { me_set_err(err, errcap, "%s:%u: %s", path, lineno, why); return rc; }
        if (ld->ds->skipped++ == 0)
            snprintf(ld->ds->first_skip, sizeof ld->ds->first_skip, "line %u: %s", lineno, why);
    }
    return 0;
}

int me_dataset_load(const char *path, int skip_malformed, me_dataset_t **out, char *err, size_t errcap) {
    *out = NULL;
    me_dataset_t *ds = calloc(1, sizeof *ds);
    loader_t ld = { .ds = ds };
    char *buf = NULL, *line = NULL;
    size_t nline = 0, capline = 0;
    uint32_t lineno = 0;
    int rc = ME_ENOMEM;
    gzFile gz = NULL;
    if (!ds) { me_set_err(err, errcap, "out of memory"); return ME_ENOMEM; }
    gz = gzopen(path, "rb");
    if (!gz) { me_set_err(err, errcap, "cannot open %s", path); rc = ME_EIO; goto fail; }
    gzbuffer(gz, 1 << 17);
    enum { BLOCK = 1 << 20 };
    buf = malloc(BLOCK);
    if (!buf) { me_set_err(err, errcap, "out of memory"); goto fail; }
    for (;;) {
        int got = gzread(gz, buf, BLOCK);
        if (got < 0) {
            int zerr;
            const char *msg = gzerror(gz, &zerr);
            me_set_err(err, errcap, "%s: near line %u: %s", path, lineno + 1, msg);
            rc = zerr == Z_ERRNO ? ME_EIO : ME_ECORRUPT;
            goto fail;
        }
        if (got == 0) break;
        const char *p = buf, *e = buf + got;
        while (p < e) {
            const char *nl = memchr(p, '\n', (size_t)(e - p));
            size_t n = (size_t)((nl ? nl : e) - p);
            if (capline - nline < n + 1) {
                size_t cap = capline ? capline : 4096;
                while (cap - nline < n + 1) cap *= 2;
                char *nlbuf = realloc(line, cap);
                if (!nlbuf) { me_set_err(err, errcap, "out of memory"); goto fail; }
                line = nlbuf;
                capline = cap;
            }
            memcpy(line + nline, p, n);
            nline += n;
            p += n;
            if (!nl) break;
            p++;
            if (lineno == UINT32_MAX) { me_set_err(err, errcap, "%s: too many lines", path); rc = ME_ETOOBIG; goto fail; }
            if ((rc = take_line(&ld, path, line, nline, ++lineno, skip_malformed, err, errcap)) != 0) goto fail;
            nline = 0;
        }
    }
    /* gzread reports a stream cut short only through gzerror at the end. */
    int zerr = Z_OK;
    const char *zmsg = gzerror(gz, &zerr);
    if (zerr != Z_OK && zerr != Z_STREAM_END) {
        me_set_err(err, errcap, "%s: after line %u: %s", path, lineno, zmsg);
        rc = ME_ECORRUPT;
        goto fail;
    }
    if (nline > 0 && (rc = take_line(&ld, path, line, nline, ++lineno, skip_malformed, err, errcap)) != 0)
        goto fail;
    gzclose(gz);
    gz = NULL;
    free(buf);
    free(line);
    for (size_t i = 0; i < ds->n; i++) {
        me_datarec_t *r = &ds->recs[i];
        r->id = ds->pool_ + (size_t)(uintptr_t)r->id;
        r->query = ds->pool_ + (size_t)(uintptr_t)r->query;
        r->text = ds->pool_ + (size_t)(uintptr_t)r->text;
    }
    *out = ds;
    return 0;
fail:
    if (gz) gzclose(gz);
    free(buf);
    free(line);
    me_dataset_free(ds);
    return rc ? rc : ME_ENOMEM;
}

void me_dataset_free(me_dataset_t *ds) {
    if (!ds) return;
    free(ds->recs);
    free(ds->pool_);
    free(ds->slots_);
    free(ds);
}

long me_dataset_find(const me_dataset_t *ds, const char *id) {
    if (!ds || !id || ds->mask_ == 0) return -1;
    int32_t i = ds->slots_[id_slot(ds, id, strlen(id), 1)];
    return i;
}

/* ---- locating the file ---- */

int me_dataset_locate(const char *fallback, char *out, size_t cap) {
    const char *env = getenv("METAEMBED_DATA");
    if (env && *env) {
        snprintf(out, cap, "%s", env);
        return me_path_is_file(env) ? 0 : ME_ENOTFOUND;
    }
    /* ../shared/data beside the repository (found from here or from the binary). */
    if (me_find_shipped("../shared/data/" ME_DATASET_FILE, out, cap) == 0) return 0;
    snprintf(out, cap, "%s", fallback ? fallback : "../shared/data/" ME_DATASET_FILE);
    return fallback && me_path_is_file(fallback) ? 0 : ME_ENOTFOUND;
}

/* ---- hard negatives ---- */

size_t me_dataset_stem(const char *id, size_t len) {
    size_t i = 0;
    while (i < len && id[i] != '-' && !(id[i] >= '0' && id[i] <= '9')) i++;
    if (i > 0) return i;
    /* "0ad-data": a leading digit would leave nothing; keep up to the '-'. */
    while (i < len && id[i] != '-') i++;
    return i;
}

typedef struct {
    uint64_t hash;
    const char *key;
    size_t len;
    int32_t rec;
} gkey_t;

static int gkey_cmp(const void *pa, const void *pb) {
    const gkey_t *a = pa, *b = pb;
    if (a->hash != b->hash) return a->hash < b->hash ? -1 : 1;
    if (a->len != b->len) return a->len < b->len ? -1 : 1;
    int c = memcmp(a->key, b->key, a->len);
    if (c) return c;
    return a->rec < b->rec ? -1 : a->rec > b->rec;
}

static uint64_t mix(uint64_t seed, uint64_t i, uint64_t salt) {
    return me_splitmix64_mix(seed ^ (i * 0x9e3779b97f4a7c15ULL) ^ (salt << 56));
}

/* Sorts keys into groups of equal text and, for each record still without
 * a negative in a group of two or more, picks another member. */
static void pick_in_groups(gkey_t *g, size_t n, uint64_t seed, uint64_t salt, int32_t *neg, uint8_t *kind,
                           uint8_t k) {
    qsort(g, n, sizeof *g, gkey_cmp);
    for (size_t s = 0, e; s < n; s = e) {
        e = s + 1;
        while (e < n && g[e].hash == g[s].hash && g[e].len == g[s].len && !memcmp(g[e].key, g[s].key, g[s].len))
            e++;
        size_t size = e - s;
        if (size < 2 || g[s].len == 0) continue;    /* an empty key is no kinship */
        for (size_t i = s; i < e; i++) {
            int32_t r = g[i].rec;
            if (neg[r] >= 0) continue;
            size_t step = 1 + (size_t)(mix(seed, (uint64_t)r, salt) % (size - 1));
            neg[r] = g[s + (i - s + step) % size].rec;
            if (kind) kind[r] = k;
        }
    }
}

int me_dataset_hard_negatives(const me_dataset_t *ds, uint64_t seed, int32_t *neg, uint8_t *kind) {
    size_t ntrain = ds->n_split[ME_SPLIT_TRAIN];
    gkey_t *g = malloc((ntrain + 1) * sizeof *g);
    int32_t *train = malloc((ntrain + 1) * sizeof *train);
    if (!g || !train) { free(g); free(train); return ME_ENOMEM; }
    size_t m = 0;
    for (size_t i = 0; i < ds->n; i++) {
        neg[i] = -1;
        if (kind) kind[i] = ME_HARDNEG_NONE;
        if (ds->recs[i].split == ME_SPLIT_TRAIN) train[m++] = (int32_t)i;
    }
    /* 1. Same first paragraph. */
    for (size_t j = 0; j < m; j++) {
        const me_datarec_t *r = &ds->recs[train[j]];
        const char *br = NULL;
        for (const char *p = r->text; p + 1 < r->text + r->text_len; p++)
            if (p[0] == '\n' && p[1] == '\n') { br = p; break; }
        size_t len = br ? (size_t)(br - r->text) : r->text_len;
        g[j] = (gkey_t){ me_hash64(r->text, len), r->text, len, train[j] };
    }
    pick_in_groups(g, m, seed, 1, neg, kind, ME_HARDNEG_PARAGRAPH);
    /* 2. Same name stem, for those still without one. */
    for (size_t j = 0; j < m; j++) {
        const me_datarec_t *r = &ds->recs[train[j]];
        size_t len = me_dataset_stem(r->id, r->id_len);
        g[j] = (gkey_t){ me_hash64(r->id, len), r->id, len, train[j] };
    }
    pick_in_groups(g, m, seed, 2, neg, kind, ME_HARDNEG_STEM);
    /* 3. Anyone else in the train split. */
    for (size_t j = 0; j < m && m >= 2; j++) {
        int32_t r = train[j];
        if (neg[r] >= 0) continue;
        size_t pick = (size_t)(mix(seed, (uint64_t)r, 3) % (m - 1));
        if (pick >= j) pick++;
        neg[r] = train[pick];
        if (kind) kind[r] = ME_HARDNEG_RANDOM;
    }
    free(g);
    free(train);
    return 0;
}

int me_dataset_bm25_negatives(const me_dataset_t *ds, uint64_t seed, int depth, int32_t *neg, uint8_t *kind) {
    if (depth < 1 || depth > 64) return ME_EINVAL;
    int rc = me_dataset_hard_negatives(ds, seed, neg, kind);
    if (rc) return rc;
    size_t m = 0, ntrain = ds->n_split[ME_SPLIT_TRAIN];
    int32_t *train = malloc((ntrain + 1) * sizeof *train);
    const char **texts = malloc((ntrain + 1) * sizeof *texts);
    size_t *lens = malloc((ntrain + 1) * sizeof *lens);
    float *scores = malloc((ntrain + 1) * sizeof *scores);
    me_bm25_t *bm = NULL;
    me_topk_t top = { 0 };
    int ok = train && texts && lens && scores;
    for (size_t i = 0; ok && i < ds->n; i++)
        if (ds->recs[i].split == ME_SPLIT_TRAIN) {
            texts[m] = ds->recs[i].text;
            lens[m] = ds->recs[i].text_len;
            train[m++] = (int32_t)i;
        }
    if (ok) ok = (bm = me_bm25_build(texts, lens, m, ME_BM25_K1, ME_BM25_B)) != NULL;
    /* depth picks plus room for i itself and its duplicates. */
    size_t keep = (size_t)depth + 8;
    for (size_t j = 0; ok && j < m; j++) {
        const me_datarec_t *r = &ds->recs[train[j]];
        me_bm25_score(bm, r->query, r->query_len, scores);
        if (me_topk_init(&top, keep, NULL, NULL) != 0) { ok = 0; break; }
        me_topk_push_n(&top, scores, NULL, m);
        size_t got = me_topk_finish(&top), nc = 0;
        uint32_t cand[64];   /* depth ≤ 64 */
        for (size_t k = 0; k < got && nc < (size_t)depth; k++) {
            if (top.items[k].score <= 0.0f) break;
            const me_datarec_t *o = &ds->recs[train[top.items[k].idx]];
            if (o == r || (o->id_len == r->id_len && !memcmp(o->id, r->id, r->id_len)) ||
                (o->text_len == r->text_len && !memcmp(o->text, r->text, r->text_len)))
                continue;
            cand[nc++] = top.items[k].idx;
        }
        me_topk_free(&top);
        if (!nc) continue;
        neg[train[j]] = train[cand[mix(seed, (uint64_t)train[j], 4) % nc]];
        if (kind) kind[train[j]] = ME_HARDNEG_BM25;
    }
    me_bm25_free(bm);
    free(train);
    free(texts);
    free(lens);
    free(scores);
    return ok ? 0 : ME_ENOMEM;
}
