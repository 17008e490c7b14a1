#include "common/bm25.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/hash.h"

struct me_bm25 {
    size_t ndocs, nterms;
    float k1, b;
    /* The vocabulary: an open-addressing table of term ids over one string
     * arena (each term NUL-terminated at term_off[id]). */
    uint32_t *table;          /* slot → id + 1, 0 = empty */
    size_t table_cap;         /* a power of two */
    char *arena;
    size_t arena_len, arena_cap;
    size_t *term_off;
    size_t term_cap;
    /* Postings in compressed rows: term t's documents are
     * doc[post_off[t] .. post_off[t + 1]) with their tf. */
    size_t *post_off;
    uint32_t *doc, *tf;
    float *idf;               /* per term */
    float *norm;              /* per document: k1 · (1 − b + b · |d| / avgdl) */
};

size_t me_bm25_token(const char *text, size_t len, size_t *pos, char out[ME_BM25_TOKEN_MAX]) {
    size_t i = *pos, n = 0;
    while (i < len && !((text[i] >= 'a' && text[i] <= 'z') || (text[i] >= 'A' && text[i] <= 'Z') ||
                        (text[i] >= '0' && text[i] <= '9')))
        i++;
    while (i < len && ((text[i] >= 'a' && text[i] <= 'z') || (text[i] >= 'A' && text[i] <= 'Z') ||
                       (text[i] >= '0' && text[i] <= '9'))) {
        char ch = text[i++];
        if (ch >= 'A' && ch <= 'Z') ch = (char)(ch - 'A' + 'a');
        if (n + 1 < ME_BM25_TOKEN_MAX) out[n++] = ch;
    }
    out[n] = 0;
    *pos = i;
    return n;
}

/* The id of term w (inserting it when `add`), or -1. */
static long term_id(me_bm25_t *bm, const char *w, size_t n, int add) {
    size_t mask = bm->table_cap - 1, slot = (size_t)me_hash64(w, n) & mask;
    for (;; slot = (slot + 1) & mask) {
        uint32_t e = bm->table[slot];
        if (!e) break;
        const char *t = bm->arena + bm->term_off[e - 1];
        if (!strncmp(t, w, n) && t[n] == 0) return (long)e - 1;
    }
    if (!add) return -1;
    if (bm->nterms == bm->term_cap) {
        size_t cap = bm->term_cap ? 2 * bm->term_cap : 4096;
        size_t *p = realloc(bm->term_off, cap * sizeof *p);
        if (!p) return -2;
        bm->term_off = p;
        bm->term_cap = cap;
    }
    if (bm->arena_len + n + 1 > bm->arena_cap) {
        size_t cap = bm->arena_cap ? 2 * bm->arena_cap : 65536;
        while (cap < bm->arena_len + n + 1) cap *= 2;
        char *a = realloc(bm->arena, cap);
        if (!a) return -2;
        bm->arena = a;
        bm->arena_cap = cap;
    }
    memcpy(bm->arena + bm->arena_len, w, n);
    bm->arena[bm->arena_len + n] = 0;
    bm->term_off[bm->nterms] = bm->arena_len;
    bm->arena_len += n + 1;
    bm->table[slot] = (uint32_t)++bm->nterms;
    /* Keep the table at most half full. */
    if (2 * bm->nterms > bm->table_cap) {
        size_t cap = 2 * bm->table_cap;
        uint32_t *t = calloc(cap, sizeof *t);
        if (!t) return -2;
        for (size_t id = 0; id < bm->nterms; id++) {
            const char *s = bm->arena + bm->term_off[id];
            size_t k = (size_t)me_hash64(s, strlen(s)) & (cap - 1);
            while (t[k]) k = (k + 1) & (cap - 1);
            t[k] = (uint32_t)id + 1;
        }
        free(bm->table);
        bm->table = t;
        bm->table_cap = cap;
    }
    return (long)bm->nterms - 1;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

me_bm25_t *me_bm25_build(const char *const *texts, const size_t *lens, size_t n, float k1, float b) {
    me_bm25_t *bm = calloc(1, sizeof *bm);
    if (!bm) return NULL;
    bm->ndocs = n;
    bm->k1 = k1;
    bm->b = b;
    bm->table_cap = 1 << 14;
    bm->table = calloc(bm->table_cap, sizeof *bm->table);
    /* Each document's distinct terms and their counts, all documents in
     * one run: (term, tf) pairs from doc_start[d]. */
    size_t cap = 1 << 16, npairs = 0;
    uint32_t *pt = malloc(cap * sizeof *pt), *pf = malloc(cap * sizeof *pf), *toks = NULL;
    size_t *doc_start = malloc((n + 1) * sizeof *doc_start), tcap = 0;
    float *dl = malloc((n ? n : 1) * sizeof *dl);
    int ok = bm->table && pt && pf && doc_start && dl;
    double total = 0;
    for (size_t d = 0; ok && d < n; d++) {
        const char *t = texts[d] ? texts[d] : "";
        size_t len = lens ? lens[d] : strlen(t), pos = 0, nt = 0;
        char w[ME_BM25_TOKEN_MAX];
        size_t wl;
        while (ok && (wl = me_bm25_token(t, len, &pos, w)) > 0) {
            long id = term_id(bm, w, wl, 1);
            if (id < 0) { ok = 0; break; }
            if (nt == tcap) {
                size_t c2 = tcap ? 2 * tcap : 256;
                uint32_t *p = realloc(toks, c2 * sizeof *p);
                if (!p) { ok = 0; break; }
                toks = p;
                tcap = c2;
            }
            toks[nt++] = (uint32_t)id;
        }
        dl[d] = (float)nt;
        total += (double)nt;
        doc_start[d] = npairs;
        if (!ok || !nt) continue;
        qsort(toks, nt, sizeof *toks, cmp_u32);
        for (size_t i = 0; i < nt && ok;) {
            size_t j = i;
            while (j < nt && toks[j] == toks[i]) j++;
            if (npairs == cap) {
                cap *= 2;
                uint32_t *a = realloc(pt, cap * sizeof *a), *c = a ? realloc(pf, cap * sizeof *c) : NULL;
                if (a) pt = a;
                if (c) pf = c;
                if (!a || !c) { ok = 0; break; }
            }
            pt[npairs] = toks[i];
            pf[npairs++] = (uint32_t)(j - i);
            i = j;
        }
    }
    if (ok) doc_start[n] = npairs;
    free(toks);
    /* Compressed rows by term, documents in increasing order. */
    if (ok) {
        bm->post_off = calloc(bm->nterms + 1, sizeof *bm->post_off);
        bm->doc = malloc((npairs ? npairs : 1) * sizeof *bm->doc);
        bm->tf = malloc((npairs ? npairs : 1) * sizeof *bm->tf);
        bm->idf = malloc((bm->nterms ? bm->nterms : 1) * sizeof *bm->idf);
        bm->norm = malloc((n ? n : 1) * sizeof *bm->norm);
        ok = bm->post_off && bm->doc && bm->tf && bm->idf && bm->norm;
    }
    if (ok) {
        for (size_t i = 0; i < npairs; i++) bm->post_off[pt[i] + 1]++;
        for (size_t t = 0; t < bm->nterms; t++) bm->post_off[t + 1] += bm->post_off[t];
        size_t *fill = malloc((bm->nterms ? bm->nterms : 1) * sizeof *fill);
        if (!fill) ok = 0;
        for (size_t t = 0; fill && t < bm->nterms; t++) fill[t] = bm->post_off[t];
        for (size_t d = 0; fill && d < n; d++)
            for (size_t i = doc_start[d]; i < doc_start[d + 1]; i++) {
                size_t at = fill[pt[i]]++;
                bm->doc[at] = (uint32_t)d;
                bm->tf[at] = pf[i];
            }
        free(fill);
        double N = (double)n, avgdl = n ? total / N : 1;
        for (size_t t = 0; ok && t < bm->nterms; t++) {
            double df = (double)(bm->post_off[t + 1] - bm->post_off[t]);
            bm->idf[t] = (float)log(1.0 + (N - df + 0.5) / (df + 0.5));
        }
        for (size_t d = 0; ok && d < n; d++)
            bm->norm[d] = k1 * (float)(1.0 - b + b * (avgdl > 0 ? dl[d] / avgdl : 0));
    }
    free(pt);
    free(pf);
    free(doc_start);
    free(dl);
    if (!ok) {
        me_bm25_free(bm);
        return NULL;
    }
    return bm;
}

void me_bm25_free(me_bm25_t *bm) {
    if (!bm) return;
    free(bm->table);
    free(bm->arena);
    free(bm->term_off);
    free(bm->post_off);
    free(bm->doc);
    free(bm->tf);
    free(bm->idf);
    free(bm->norm);
    free(bm);
}

size_t me_bm25_docs(const me_bm25_t *bm) { return bm->ndocs; }
size_t me_bm25_terms(const me_bm25_t *bm) { return bm->nterms; }

void me_bm25_score(const me_bm25_t *bm, const char *query, size_t len, float *scores) {
    memset(scores, 0, bm->ndocs * sizeof *scores);
    size_t pos = 0, wl;
    char w[ME_BM25_TOKEN_MAX];
    while ((wl = me_bm25_token(query, len, &pos, w)) > 0) {
        long t = term_id((me_bm25_t *)bm, w, wl, 0);
        if (t < 0) continue;
        float idf = bm->idf[t], k1p1 = bm->k1 + 1.0f;
        for (size_t i = bm->post_off[t]; i < bm->post_off[t + 1]; i++) {
            float tf = (float)bm->tf[i];
            scores[bm->doc[i]] += idf * tf * k1p1 / (tf + bm->norm[bm->doc[i]]);
        }
    }
}

/* ---- incremental index ---- */


/* k: the posting's place in its document's term list, so moving a posting
 * can repoint the document's `at` in O(1). */
typedef struct { uint32_t doc, k, tf; } posting_t;
typedef struct { posting_t *p; uint32_t n, cap; } plist_t;
/* A document's terms: term[k] and where its posting sits (at[k]). */
typedef struct { uint32_t *term, *at; uint32_t n; uint32_t len; } dterms_t;

struct me_bm25_index {
    me_bm25_t *vocab;         /* term ids only; terms are never forgotten */
    plist_t *plists;          /* [plists_cap] by term id */
    size_t plists_cap;
    dterms_t *docs;           /* [docs_cap] by slot */
    size_t ndocs, docs_cap;
    uint64_t total_len;       /* Σ document lengths, for avgdl */
    float k1, b;
};

static void put_u32le(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static uint32_t get_u32le(const uint8_t *p) {
    return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int cmp_tok(const void *a, const void *b) { return strcmp(a, b); }

int me_bm25_bag(const char *text, size_t len, uint8_t **out, size_t *outlen) {
    *out = NULL;
    *outlen = 0;
    /* Tokens cut to ME_BM25_TOKEN_MAX, sorted so equal ones are adjacent. */
    size_t cap = 64, n = 0, pos = 0, wl;
    char (*toks)[ME_BM25_TOKEN_MAX] = malloc(cap * sizeof *toks), w[ME_BM25_TOKEN_MAX];
    if (!toks) return ME_ENOMEM;
    while ((wl = me_bm25_token(text, len, &pos, w)) > 0) {
        if (n == cap) {
            void *p = realloc(toks, 2 * cap * sizeof *toks);
            if (!p) { free(toks); return ME_ENOMEM; }
            toks = p;
            cap *= 2;
        }
        memcpy(toks[n++], w, wl + 1);
    }
    if (n == 0) { free(toks); return 0; }
    qsort(toks, n, sizeof *toks, cmp_tok);
    /* At most 4 + n · (1 + 63 + 4) bytes. */
    uint8_t *b = malloc(4 + n * (1 + ME_BM25_TOKEN_MAX + 4)), *p = b + 4;
    if (!b) { free(toks); return ME_ENOMEM; }
    uint32_t distinct = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i, tl = strlen(toks[i]);
        while (j < n && !strcmp(toks[j], toks[i])) j++;
        *p++ = (uint8_t)tl;
        memcpy(p, toks[i], tl);
        p += tl;
        put_u32le(p, (uint32_t)(j - i));
        p += 4;
        distinct++;
        i = j;
    }
    put_u32le(b, distinct);
    free(toks);
    *out = b;
    *outlen = (size_t)(p - b);
    return 0;
}

me_bm25_index_t *me_bm25_index_new(float k1, float b) {
    me_bm25_index_t *ix = calloc(1, sizeof *ix);
    if (!ix) return NULL;
    ix->k1 = k1;
    ix->b = b;
    /* The vocabulary is a corpus of no documents that only interns terms. */
    ix->vocab = me_bm25_build(NULL, NULL, 0, k1, b);
    if (!ix->vocab) { free(ix); return NULL; }
    return ix;
}

void me_bm25_index_free(me_bm25_index_t *ix) {
    if (!ix) return;
    for (size_t t = 0; t < ix->plists_cap; t++) free(ix->plists[t].p);
    for (size_t d = 0; d < ix->ndocs; d++) { free(ix->docs[d].term); free(ix->docs[d].at); }
    free(ix->plists);
    free(ix->docs);
    me_bm25_free(ix->vocab);
    free(ix);
}

size_t me_bm25_index_docs(const me_bm25_index_t *ix) { return ix->ndocs; }

int me_bm25_index_add(me_bm25_index_t *ix) {
    if (ix->ndocs == ix->docs_cap) {
        size_t cap = ix->docs_cap ? 2 * ix->docs_cap : 64;
        dterms_t *d = realloc(ix->docs, cap * sizeof *d);
        if (!d) return ME_ENOMEM;
        ix->docs = d;
        ix->docs_cap = cap;
    }
    memset(&ix->docs[ix->ndocs++], 0, sizeof(dterms_t));
    return 0;
}

/* Drops the posting at place p of term t, moving the list's last into it. */
static void plist_drop(me_bm25_index_t *ix, uint32_t t, uint32_t p) {
    plist_t *pl = &ix->plists[t];
    uint32_t last = --pl->n;
    if (p == last) return;
    pl->p[p] = pl->p[last];
    ix->docs[pl->p[p].doc].at[pl->p[p].k] = p;
}

/* Removes every posting of doc (it keeps its slot, with no terms). */
static void doc_clear(me_bm25_index_t *ix, uint32_t doc) {
    dterms_t *d = &ix->docs[doc];
    for (uint32_t k = 0; k < d->n; k++) plist_drop(ix, d->term[k], d->at[k]);
    ix->total_len -= d->len;
    free(d->term);
    free(d->at);
    memset(d, 0, sizeof *d);
}

/* Distinct terms of a well-formed bag, or -1. */
static long bag_check(const uint8_t *bag, size_t len) {
    if (len < 4) return -1;
    uint32_t n = get_u32le(bag);
    size_t at = 4;
    for (uint32_t i = 0; i < n; i++) {
        if (at >= len || bag[at] == 0 || bag[at] >= ME_BM25_TOKEN_MAX) return -1;
        at += 1 + bag[at];
        if (at + 4 > len || get_u32le(bag + at) == 0) return -1;
        at += 4;
    }
    return at == len ? (long)n : -1;
}

/* Makes room for term t's list and one more posting in it. */
static int plist_reserve(me_bm25_index_t *ix, uint32_t t) {
    if (t >= ix->plists_cap) {
        size_t cap = ix->plists_cap ? 2 * ix->plists_cap : 4096;
        while (cap <= t) cap *= 2;
        plist_t *p = realloc(ix->plists, cap * sizeof *p);
        if (!p) return ME_ENOMEM;
        memset(p + ix->plists_cap, 0, (cap - ix->plists_cap) * sizeof *p);
        ix->plists = p;
        ix->plists_cap = cap;
    }
    plist_t *pl = &ix->plists[t];
    if (pl->n == pl->cap) {
        uint32_t cap = pl->cap ? 2 * pl->cap : 4;
        posting_t *p = realloc(pl->p, cap * sizeof *p);
        if (!p) return ME_ENOMEM;
        pl->p = p;
        pl->cap = cap;
    }
    return 0;
}

int me_bm25_index_set(me_bm25_index_t *ix, uint32_t doc, const uint8_t *bag, size_t len) {
    doc_clear(ix, doc);
    if (len == 0) return 0;
    long n = bag_check(bag, len);
    if (n < 0) return ME_ECORRUPT;
    if (n == 0) return 0;  /* the empty bag: a document without text */
    dterms_t *d = &ix->docs[doc];
    d->term = malloc((n ? (size_t)n : 1) * sizeof *d->term);
    d->at = malloc((n ? (size_t)n : 1) * sizeof *d->at);
    if (!d->term || !d->at) { doc_clear(ix, doc); return ME_ENOMEM; }
    size_t at = 4;
    for (long i = 0; i < n; i++) {
        size_t tl = bag[at];
        long t = term_id(ix->vocab, (const char *)bag + at + 1, tl, 1);
        uint32_t tf = get_u32le(bag + at + 1 + tl);
        at += 1 + tl + 4;
        if (t < 0 || plist_reserve(ix, (uint32_t)t) != 0) { doc_clear(ix, doc); return ME_ENOMEM; }
        plist_t *pl = &ix->plists[t];
        pl->p[pl->n] = (posting_t){ doc, d->n, tf };
        d->term[d->n] = (uint32_t)t;
        d->at[d->n++] = pl->n++;
        d->len += tf;
        ix->total_len += tf;
    }
    return 0;
}

void me_bm25_index_remove(me_bm25_index_t *ix, uint32_t doc) {
    doc_clear(ix, doc);
    uint32_t last = (uint32_t)--ix->ndocs;
    if (doc == last) return;
    ix->docs[doc] = ix->docs[last];
    dterms_t *d = &ix->docs[doc];
    for (uint32_t k = 0; k < d->n; k++) ix->plists[d->term[k]].p[d->at[k]].doc = doc;
}

size_t me_bm25_index_score(const me_bm25_index_t *ix, const char *query, size_t len, float *scores) {
    memset(scores, 0, ix->ndocs * sizeof *scores);
    double N = (double)ix->ndocs, avgdl = ix->ndocs ? (double)ix->total_len / N : 1;
    float k1p1 = ix->k1 + 1.0f;
    size_t pos = 0, wl, touched = 0;
    char w[ME_BM25_TOKEN_MAX];
    while ((wl = me_bm25_token(query, len, &pos, w)) > 0) {
        long t = term_id(ix->vocab, w, wl, 0);
        if (t < 0 || (size_t)t >= ix->plists_cap || ix->plists[t].n == 0) continue;
        const plist_t *pl = &ix->plists[t];
        double df = (double)pl->n;
        float idf = (float)log(1.0 + (N - df + 0.5) / (df + 0.5));
        for (uint32_t i = 0; i < pl->n; i++) {
            const posting_t *p = &pl->p[i];
            /* The norm as me_bm25_build computes it, so scores agree. */
            float dl = (float)ix->docs[p->doc].len, tf = (float)p->tf;
            float norm = ix->k1 * (float)(1.0 - ix->b + ix->b * (avgdl > 0 ? dl / avgdl : 0));
            if (scores[p->doc] == 0) touched++;
            scores[p->doc] += idf * tf * k1p1 / (tf + norm);
        }
    }
    return touched;
}
