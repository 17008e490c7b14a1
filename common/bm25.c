#include "common/bm25.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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
