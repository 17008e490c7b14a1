/* Byte-level BPE: word iteration, training, encoding, decoding and the
 * text serialisation. See tokenizer.h for the contract. */
#include "encoder/tokenizer.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/hash.h"

struct me_tok {
    int nmerges;
    int32_t *merges;            /* (nmerges, 2): left, right */
    /* pair → rank, open addressing; key 0 never occurs (left >= 2). */
    uint64_t *hkeys;            /* (hcap) */
    int32_t *hrank;             /* (hcap) */
    size_t hmask;
    /* Each id's bytes for decoding: pool[poff[id] .. + plen[id]), and
     * whether it begins with the word-start symbol. */
    uint32_t *poff;             /* (vocab) */
    uint32_t *plen;             /* (vocab) */
    uint8_t *pws;               /* (vocab) */
    char *pool;
};

static inline uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t)(uint32_t)a << 32 | (uint32_t)b; }


/* ---- words ---- */

static inline int is_word_byte(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

static inline int is_space(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

typedef struct {
    const unsigned char *p, *e;
    int in_run;                 /* inside a long run cut into pieces */
} witer_t;

/* The next word (or piece) lower-cased into buf (>= ME_TOK_MAX_WORD bytes);
 * *ws says whether it starts a word. Returns its length, 0 at the end. */
static size_t witer_next(witer_t *it, unsigned char *buf, int *ws) {
    const unsigned char *p = it->p, *e = it->e;
    if (!it->in_run) {
        while (p < e && is_space(*p)) p++;
        if (p >= e) { it->p = p; return 0; }
        *ws = 1;
        if (!is_word_byte(*p)) {
            buf[0] = *p;
            it->p = p + 1;
            return 1;
        }
    } else {
        *ws = 0;
    }
    const unsigned char *s = p;
    while (p < e && p - s < ME_TOK_MAX_WORD && is_word_byte(*p)) p++;
    if (p < e && is_word_byte(*p)) {
        /* Cut before a UTF-8 continuation byte rather than inside a character. */
        const unsigned char *q = p;
        while (q > s + 1 && q > p - 3 && (*q & 0xc0) == 0x80) q--;
        if ((*q & 0xc0) != 0x80) p = q;
        it->in_run = 1;
    } else {
        it->in_run = 0;
    }
    size_t n = (size_t)(p - s);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        buf[i] = c >= 'A' && c <= 'Z' ? (unsigned char)(c | 0x20) : c;
    }
    it->p = p;
    return n;
}

size_t me_tok_normalize(const char *text, size_t len, char *out, size_t cap) {
    if (!text) text = "", len = 0;
    witer_t it = { (const unsigned char *)text, (const unsigned char *)text + len, 0 };
    unsigned char w[ME_TOK_MAX_WORD];
    size_t n = 0, wl;
    int ws;
    while ((wl = witer_next(&it, w, &ws)) > 0) {
        if (ws && n > 0) {
            if (n + 1 < cap) out[n] = ' ';
            n++;
        }
        for (size_t i = 0; i < wl; i++, n++)
            if (n + 1 < cap) out[n] = (char)w[i];
    }
    if (cap) out[n < cap ? n : cap - 1] = 0;
    return n;
}

/* ---- building a tokenizer from its merges ---- */

static int32_t rank_of(const me_tok_t *t, int32_t a, int32_t b) {
    uint64_t k = pair_key(a, b);
    for (size_t i = me_fmix64(k) & t->hmask;; i = (i + 1) & t->hmask) {
        if (t->hkeys[i] == k) return t->hrank[i];
        if (t->hkeys[i] == 0) return -1;
    }
}

/* Takes ownership of merges (nmerges pairs). Checks them as untrusted: a
 * loaded file goes through here too. */
static int tok_build(int32_t *merges, int nmerges, me_tok_t **out, char *err, size_t errcap) {
    *out = NULL;
    me_tok_t *t = calloc(1, sizeof *t);
    if (!t) { free(merges); return ME_ENOMEM; }
    t->merges = merges;
    t->nmerges = nmerges;
    size_t vocab = (size_t)ME_TOK_BASE_VOCAB + (size_t)nmerges, hcap = 16;
    while (hcap < 2 * (size_t)nmerges + 2) hcap *= 2;
    t->hkeys = calloc(hcap, sizeof *t->hkeys);
    t->hrank = calloc(hcap, sizeof *t->hrank);
    t->hmask = hcap - 1;
    t->poff = calloc(vocab, sizeof *t->poff);
    t->plen = calloc(vocab, sizeof *t->plen);
    t->pws = calloc(vocab, sizeof *t->pws);
    if (!t->hkeys || !t->hrank || !t->poff || !t->plen || !t->pws) goto nomem;

    /* Piece lengths first, to size the pool; lengths are bounded by the
     * longest word (ME_TOK_MAX_WORD bytes) for any merge that can apply,
     * but a crafted file could nest deeper, so cap the total. */
    uint64_t total = 256;
    t->pws[ME_TOK_WORD_START] = 1;
    for (int b = 0; b < 256; b++) t->plen[ME_TOK_BYTE0 + b] = 1;
    for (int i = 0; i < nmerges; i++) {
        int32_t a = merges[2 * i], b = merges[2 * i + 1], id = ME_TOK_BASE_VOCAB + i;
        if (a < ME_TOK_WORD_START || a >= id || b < ME_TOK_WORD_START || b >= id) {
            me_set_err(err, errcap, "merge %d (%d, %d) uses an id outside [2, %d)", i, a, b, id);
            goto corrupt;
        }
        if (t->pws[b]) {
            me_set_err(err, errcap, "merge %d (%d, %d): the word-start symbol can only begin a token", i, a, b);
            goto corrupt;
        }
        t->pws[id] = t->pws[a];
        t->plen[id] = t->plen[a] + t->plen[b];
        if (t->plen[id] > ME_TOK_MAX_WORD) {
            me_set_err(err, errcap, "merge %d (%d, %d) makes a token of %u bytes, more than a word holds", i, a, b,
                    t->plen[id]);
            goto corrupt;
        }
        total += t->plen[id];
        uint64_t k = pair_key(a, b);
        size_t h = me_fmix64(k) & t->hmask;
        while (t->hkeys[h] && t->hkeys[h] != k) h = (h + 1) & t->hmask;
        if (t->hkeys[h] == k) {
            me_set_err(err, errcap, "merge %d (%d, %d) repeats merge %d", i, a, b, t->hrank[h]);
            goto corrupt;
        }
        t->hkeys[h] = k;
        t->hrank[h] = i;
    }
    t->pool = malloc((size_t)total);
    if (!t->pool) goto nomem;
    uint32_t off = 0;
    for (int b = 0; b < 256; b++) {
        t->poff[ME_TOK_BYTE0 + b] = off;
        t->pool[off++] = (char)b;
    }
    for (int i = 0; i < nmerges; i++) {
        int32_t a = merges[2 * i], b = merges[2 * i + 1], id = ME_TOK_BASE_VOCAB + i;
        t->poff[id] = off;
        memcpy(t->pool + off, t->pool + t->poff[a], t->plen[a]);
        memcpy(t->pool + off + t->plen[a], t->pool + t->poff[b], t->plen[b]);
        off += t->plen[id];
    }
    *out = t;
    return 0;
nomem:
    me_tok_free(t);
    me_set_err(err, errcap, "out of memory");
    return ME_ENOMEM;
corrupt:
    me_tok_free(t);
    return ME_ECORRUPT;
}

void me_tok_free(me_tok_t *t) {
    if (!t) return;
    free(t->merges);
    free(t->hkeys);
    free(t->hrank);
    free(t->poff);
    free(t->plen);
    free(t->pws);
    free(t->pool);
    free(t);
}

int me_tok_vocab_size(const me_tok_t *t) { return ME_TOK_BASE_VOCAB + t->nmerges; }
int me_tok_num_merges(const me_tok_t *t) { return t->nmerges; }

void me_tok_merge(const me_tok_t *t, int i, int32_t *left, int32_t *right) {
    *left = t->merges[2 * i];
    *right = t->merges[2 * i + 1];
}

/* ---- encoding ---- */

/* Applies merges to sym[0..n) by rank: repeatedly merge the lowest-ranked
 * adjacent pair, leftmost first. That equals applying each merge to all its
 * occurrences left to right in rank order, as training did, because every
 * pair a merge creates holds the new id and so ranks after it. Words are at
 * most ME_TOK_MAX_WORD + 1 symbols, so the quadratic scan stays small. */
static int merge_word(const me_tok_t *t, int32_t *sym, int n) {
    int32_t rank[ME_TOK_MAX_WORD + 1];
    for (int i = 0; i + 1 < n; i++) rank[i] = rank_of(t, sym[i], sym[i + 1]);
    while (n > 1) {
        int best = -1;
        for (int i = 0; i + 1 < n; i++)
            if (rank[i] >= 0 && (best < 0 || rank[i] < rank[best])) best = i;
        if (best < 0) break;
        sym[best] = ME_TOK_BASE_VOCAB + rank[best];
        memmove(sym + best + 1, sym + best + 2, (size_t)(n - best - 2) * sizeof *sym);
        memmove(rank + best, rank + best + 1, (size_t)(n - best - 2) * sizeof *rank);
        n--;
        if (best > 0) rank[best - 1] = rank_of(t, sym[best - 1], sym[best]);
        if (best + 1 < n) rank[best] = rank_of(t, sym[best], sym[best + 1]);
    }
    return n;
}

int me_tok_encode(const me_tok_t *t, const char *text, size_t len, int32_t *ids, int max_ids) {
    if (!text) text = "", len = 0;
    witer_t it = { (const unsigned char *)text, (const unsigned char *)text + len, 0 };
    unsigned char w[ME_TOK_MAX_WORD];
    int32_t sym[ME_TOK_MAX_WORD + 1];
    int n = 0, ws;
    size_t wl;
    while (n < max_ids && (wl = witer_next(&it, w, &ws)) > 0) {
        int k = 0;
        if (ws) sym[k++] = ME_TOK_WORD_START;
        for (size_t i = 0; i < wl; i++) sym[k++] = ME_TOK_BYTE0 + w[i];
        k = merge_word(t, sym, k);
        for (int i = 0; i < k && n < max_ids; i++) ids[n++] = sym[i];
    }
    return n;
}

size_t me_tok_decode(const me_tok_t *t, const int32_t *ids, int n, char *out, size_t cap) {
    size_t len = 0;
    int vocab = me_tok_vocab_size(t);
    for (int i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < ME_TOK_WORD_START || id >= vocab) continue;
        if (t->pws[id] && len > 0) {
            if (len + 1 < cap) out[len] = ' ';
            len++;
        }
        const char *p = t->pool + t->poff[id];
        for (uint32_t j = 0; j < t->plen[id]; j++, len++)
            if (len + 1 < cap) out[len] = p[j];
    }
    if (cap) out[len < cap ? len : cap - 1] = 0;
    return len;
}

/* ---- training ----
 *
 * Complexity. Counting words is one pass over the text, O(bytes). Merges
 * then work on distinct words (W of them, total length L symbols) weighted
 * by their counts, never on the corpus again. Each pair keeps its count and
 * the list of words it has occurred in; a max-heap keyed by (count, smallest
 * pair) with lazy deletion picks the next merge in O(log P). A merge visits
 * only the words on its pair's list and, in each, adjusts only the pairs
 * that hold its two ids or the new one: O(len(word)) hash updates per
 * affected word. Total O(bytes + L + sum over merges of the affected words'
 * lengths + heap pushes * log P); on the real training set (about 3.5M word
 * occurrences, 150k distinct words) 8k merges take a couple of seconds. */

typedef struct {
    uint64_t key;
    int64_t count;
    int32_t *where;             /* words the pair has occurred in (may be stale) */
    int32_t nwhere, capwhere;
    int32_t last_word;          /* last word appended to where, to skip repeats */
    int32_t touched;            /* last merge that increased it */
} pair_t;

typedef struct {
    pair_t *v;
    size_t n, cap;
    int32_t *slot;              /* open addressing: index into v, -1 empty */
    size_t mask;
} pairs_t;

typedef struct { int64_t count; uint64_t key; } heap_ent_t;

typedef struct {
    heap_ent_t *v;
    size_t n, cap;
} heap_t;

typedef struct {
    pairs_t pairs;
    heap_t heap;
    int32_t *sym;               /* all words' symbols */
    size_t *off;                /* word i: sym[off[i] .. off[i] + len[i]) */
    int32_t *len;
    int64_t *count;
    int32_t *mark;              /* last merge that visited the word */
    size_t nwords;
    int32_t *touched;           /* pairs increased by the current merge */
    size_t ntouched, captouched;
} trainer_t;

static int pairs_grow(pairs_t *ps) {
    size_t cap = ps->mask ? (ps->mask + 1) * 2 : 1024;
    int32_t *slot = malloc(cap * sizeof *slot);
    if (!slot) return ME_ENOMEM;
    memset(slot, 0xff, cap * sizeof *slot);
    for (size_t i = 0; i < ps->n; i++) {
        size_t h = me_fmix64(ps->v[i].key) & (cap - 1);
        while (slot[h] >= 0) h = (h + 1) & (cap - 1);
        slot[h] = (int32_t)i;
    }
    free(ps->slot);
    ps->slot = slot;
    ps->mask = cap - 1;
    return 0;
}

/* The index of pair key, created with count 0 when absent; -1 on ENOMEM. */
static int32_t pairs_get(pairs_t *ps, uint64_t key) {
    if (ps->mask == 0 || 2 * (ps->n + 1) > ps->mask + 1)
        if (pairs_grow(ps) != 0) return -1;
    size_t h = me_fmix64(key) & ps->mask;
    while (ps->slot[h] >= 0) {
        if (ps->v[ps->slot[h]].key == key) return ps->slot[h];
        h = (h + 1) & ps->mask;
    }
    if (ps->n == ps->cap) {
        size_t cap = ps->cap ? ps->cap * 2 : 4096;
        pair_t *nv = realloc(ps->v, cap * sizeof *nv);
        if (!nv) return -1;
        ps->v = nv;
        ps->cap = cap;
    }
    pair_t *p = &ps->v[ps->n];
    memset(p, 0, sizeof *p);
    p->key = key;
    p->last_word = -1;
    p->touched = -1;
    ps->slot[h] = (int32_t)ps->n;
    return (int32_t)ps->n++;
}

static int where_add(pair_t *p, int32_t w) {
    if (p->last_word == w) return 0;
    if (p->nwhere == p->capwhere) {
        int32_t cap = p->capwhere ? p->capwhere * 2 : 4;
        int32_t *nw = realloc(p->where, (size_t)cap * sizeof *nw);
        if (!nw) return ME_ENOMEM;
        p->where = nw;
        p->capwhere = cap;
    }
    p->where[p->nwhere++] = w;
    p->last_word = w;
    return 0;
}

/* Heap order: higher count first, then the smaller (left, right). */
static inline int heap_before(const heap_ent_t *a, const heap_ent_t *b) {
    return a->count > b->count || (a->count == b->count && a->key < b->key);
}

static int heap_push(heap_t *h, int64_t count, uint64_t key) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 4096;
        heap_ent_t *nv = realloc(h->v, cap * sizeof *nv);
        if (!nv) return ME_ENOMEM;
        h->v = nv;
        h->cap = cap;
    }
    size_t i = h->n++;
    heap_ent_t e = { count, key };
    while (i > 0 && heap_before(&e, &h->v[(i - 1) / 2])) {
        h->v[i] = h->v[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->v[i] = e;
    return 0;
}

static heap_ent_t heap_pop(heap_t *h) {
    heap_ent_t top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && heap_before(&h->v[c + 1], &h->v[c])) c++;
        if (!heap_before(&h->v[c], &last)) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n) h->v[i] = last;
    return top;
}

/* Adds delta to pair (a, b); when it grows through merge m, remembers the
 * word and the pair so the heap hears of its new count. */
static int pair_add(trainer_t *tr, int32_t a, int32_t b, int64_t delta, int32_t w, int32_t m) {
    int32_t pi = pairs_get(&tr->pairs, pair_key(a, b));
    if (pi < 0) return ME_ENOMEM;
    pair_t *p = &tr->pairs.v[pi];
    p->count += delta;
    if (delta > 0) {
        if (where_add(p, w) != 0) return ME_ENOMEM;
        if (m >= 0 && p->touched != m) {
            p->touched = m;
            if (tr->ntouched == tr->captouched) {
                size_t cap = tr->captouched ? tr->captouched * 2 : 256;
                int32_t *nt = realloc(tr->touched, cap * sizeof *nt);
                if (!nt) return ME_ENOMEM;
                tr->touched = nt;
                tr->captouched = cap;
            }
            tr->touched[tr->ntouched++] = pi;
        }
    }
    return 0;
}

/* Merges (a, b) into z in word w, adjusting the counts of the pairs that
 * change: those holding a or b before, and those holding a, b or z after
 * (every other pair is untouched by the merge). */
static int merge_in_word(trainer_t *tr, int32_t w, int32_t a, int32_t b, int32_t z, int32_t m) {
    int32_t *s = tr->sym + tr->off[w];
    int32_t n = tr->len[w], i, j;
    int64_t c = tr->count[w];
    for (i = 0; i + 1 < n; i++)
        if (s[i] == a && s[i + 1] == b) break;
    if (i + 1 >= n) return 0;      /* stale entry: the pair left this word earlier */
    for (i = 0; i + 1 < n; i++)
        if (s[i] == a || s[i] == b || s[i + 1] == a || s[i + 1] == b)
            if (pair_add(tr, s[i], s[i + 1], -c, w, m) != 0) return ME_ENOMEM;
    for (i = 0, j = 0; i < n; j++) {
        if (i + 1 < n && s[i] == a && s[i + 1] == b) { s[j] = z; i += 2; }
        else s[j] = s[i++];
    }
    n = tr->len[w] = j;
    for (i = 0; i + 1 < n; i++) {
        int32_t x = s[i], y = s[i + 1];
        if (x == a || x == b || x == z || y == a || y == b || y == z)
            if (pair_add(tr, x, y, c, w, m) != 0) return ME_ENOMEM;
    }
    return 0;
}

/* Distinct words with counts: open addressing over keys "ws flag + bytes". */
typedef struct {
    unsigned char *pool;
    size_t npool, cappool;
    size_t *koff;               /* word i: pool[koff[i] .. + klen[i]) */
    uint8_t *klen;
    int64_t *count;
    size_t n, cap;
    int32_t *slot;
    size_t mask;
} wordmap_t;

static int wordmap_grow(wordmap_t *wm) {
    size_t cap = wm->mask ? (wm->mask + 1) * 2 : 1 << 14;
    int32_t *slot = malloc(cap * sizeof *slot);
    if (!slot) return ME_ENOMEM;
    memset(slot, 0xff, cap * sizeof *slot);
    for (size_t i = 0; i < wm->n; i++) {
        size_t h = me_hash64(wm->pool + wm->koff[i], wm->klen[i]) & (cap - 1);
        while (slot[h] >= 0) h = (h + 1) & (cap - 1);
        slot[h] = (int32_t)i;
    }
    free(wm->slot);
    wm->slot = slot;
    wm->mask = cap - 1;
    return 0;
}

static int wordmap_add(wordmap_t *wm, const unsigned char *k, size_t kl) {
    if (wm->mask == 0 || 2 * (wm->n + 1) > wm->mask + 1)
        if (wordmap_grow(wm) != 0) return ME_ENOMEM;
    size_t h = me_hash64(k, kl) & wm->mask;
    while (wm->slot[h] >= 0) {
        int32_t i = wm->slot[h];
        if (wm->klen[i] == kl && memcmp(wm->pool + wm->koff[i], k, kl) == 0) {
            wm->count[i]++;
            return 0;
        }
        h = (h + 1) & wm->mask;
    }
    if (wm->n >= INT32_MAX - 1) return ME_ETOOBIG;
    if (wm->n == wm->cap) {
        size_t cap = wm->cap ? wm->cap * 2 : 1 << 13;
        size_t *ko = realloc(wm->koff, cap * sizeof *ko);
        if (ko) wm->koff = ko;
        uint8_t *kln = realloc(wm->klen, cap * sizeof *kln);
        if (kln) wm->klen = kln;
        int64_t *cn = realloc(wm->count, cap * sizeof *cn);
        if (cn) wm->count = cn;
        if (!ko || !kln || !cn) return ME_ENOMEM;
        wm->cap = cap;
    }
    if (wm->cappool - wm->npool < kl) {
        size_t cap = wm->cappool ? wm->cappool * 2 : 1 << 20;
        unsigned char *np = realloc(wm->pool, cap);
        if (!np) return ME_ENOMEM;
        wm->pool = np;
        wm->cappool = cap;
    }
    memcpy(wm->pool + wm->npool, k, kl);
    wm->koff[wm->n] = wm->npool;
    wm->klen[wm->n] = (uint8_t)kl;
    wm->count[wm->n] = 1;
    wm->npool += kl;
    wm->slot[h] = (int32_t)wm->n++;
    return 0;
}

static void wordmap_free(wordmap_t *wm) {
    free(wm->pool);
    free(wm->koff);
    free(wm->klen);
    free(wm->count);
    free(wm->slot);
}

static void trainer_free(trainer_t *tr) {
    for (size_t i = 0; i < tr->pairs.n; i++) free(tr->pairs.v[i].where);
    free(tr->pairs.v);
    free(tr->pairs.slot);
    free(tr->heap.v);
    free(tr->sym);
    free(tr->off);
    free(tr->len);
    free(tr->count);
    free(tr->mark);
    free(tr->touched);
}

int me_tok_train(const char *const *texts, const size_t *lens, size_t n, int vocab_size, me_tok_t **out,
                 char *err, size_t errcap) {
    *out = NULL;
    if (vocab_size <= ME_TOK_BASE_VOCAB || vocab_size > ME_TOK_MAX_VOCAB) {
        me_set_err(err, errcap, "vocabulary size %d is outside %d..%d", vocab_size, ME_TOK_BASE_VOCAB + 1,
                ME_TOK_MAX_VOCAB);
        return ME_EINVAL;
    }
    int target = vocab_size - ME_TOK_BASE_VOCAB, nm = 0, rc = ME_ENOMEM;
    wordmap_t wm = { 0 };
    trainer_t tr = { 0 };
    int32_t *merges = malloc((size_t)target * 2 * sizeof *merges);
    if (!merges) goto fail;

    /* 1. Distinct words and their counts, in order of first appearance. */
    unsigned char key[ME_TOK_MAX_WORD + 1];
    for (size_t d = 0; d < n; d++) {
        if (!texts[d]) continue;
        size_t len = lens ? lens[d] : strlen(texts[d]);
        witer_t it = { (const unsigned char *)texts[d], (const unsigned char *)texts[d] + len, 0 };
        size_t wl;
        int ws;
        while ((wl = witer_next(&it, key + 1, &ws)) > 0) {
            key[0] = (unsigned char)ws;
            if ((rc = wordmap_add(&wm, key, wl + 1)) != 0) goto fail;
        }
    }

    /* 2. Each word as symbols: [word-start] then its bytes. */
    tr.nwords = wm.n;
    size_t total = wm.npool;    /* flag byte → word-start or nothing: never longer */
    tr.sym = malloc((total + 1) * sizeof *tr.sym);
    tr.off = malloc((wm.n + 1) * sizeof *tr.off);
    tr.len = malloc((wm.n + 1) * sizeof *tr.len);
    tr.count = malloc((wm.n + 1) * sizeof *tr.count);
    tr.mark = malloc((wm.n + 1) * sizeof *tr.mark);
    rc = ME_ENOMEM;
    if (!tr.sym || !tr.off || !tr.len || !tr.count || !tr.mark) goto fail;
    size_t pos = 0;
    for (size_t i = 0; i < wm.n; i++) {
        const unsigned char *k = wm.pool + wm.koff[i];
        tr.off[i] = pos;
        if (k[0]) tr.sym[pos++] = ME_TOK_WORD_START;
        for (size_t j = 1; j < wm.klen[i]; j++) tr.sym[pos++] = ME_TOK_BYTE0 + k[j];
        tr.len[i] = (int32_t)(pos - tr.off[i]);
        tr.count[i] = wm.count[i];
        tr.mark[i] = -1;
    }
    wordmap_free(&wm);
    memset(&wm, 0, sizeof wm);

    /* 3. Initial pair counts and where-lists, then the heap. */
    for (size_t i = 0; i < tr.nwords; i++) {
        const int32_t *s = tr.sym + tr.off[i];
        for (int32_t j = 0; j + 1 < tr.len[i]; j++)
            if (pair_add(&tr, s[j], s[j + 1], tr.count[i], (int32_t)i, -2) != 0) goto fail;
    }
    for (size_t i = 0; i < tr.pairs.n; i++)
        if (heap_push(&tr.heap, tr.pairs.v[i].count, tr.pairs.v[i].key) != 0) goto fail;

    /* 4. Merge the most frequent pair until the vocabulary is full. Heap
     * entries may be stale (counts only fall, except for pairs holding the
     * newest id, which are pushed afresh): an entry is used only when its
     * count is the pair's current one. */
    while (nm < target && tr.heap.n > 0) {
        heap_ent_t top = heap_pop(&tr.heap);
        int32_t pi = pairs_get(&tr.pairs, top.key);
        if (pi < 0) goto fail;
        int64_t cur = tr.pairs.v[pi].count;
        if (cur != top.count) {
            if (cur > 0 && cur < top.count && heap_push(&tr.heap, cur, top.key) != 0) goto fail;
            continue;
        }
        if (cur < 2) break;        /* a pair seen once is not worth an id */
        int32_t a = (int32_t)(top.key >> 32), b = (int32_t)(top.key & 0xffffffffu);
        int32_t z = ME_TOK_BASE_VOCAB + nm;
        merges[2 * nm] = a;
        merges[2 * nm + 1] = b;
        tr.ntouched = 0;
        /* Take the list: where_add never appends to (a, b) during its own
         * merge (new pairs hold z), but pairs_get may move the pair table. */
        int32_t *where = tr.pairs.v[pi].where, nwhere = tr.pairs.v[pi].nwhere;
        tr.pairs.v[pi].where = NULL;
        tr.pairs.v[pi].nwhere = tr.pairs.v[pi].capwhere = 0;
        tr.pairs.v[pi].last_word = -1;
        for (int32_t k = 0; k < nwhere; k++) {
            int32_t w = where[k];
            if (tr.mark[w] == nm) continue;
            tr.mark[w] = nm;
            if (merge_in_word(&tr, w, a, b, z, nm) != 0) { free(where); goto fail; }
        }
        free(where);
        nm++;
        for (size_t k = 0; k < tr.ntouched; k++) {
            const pair_t *p = &tr.pairs.v[tr.touched[k]];
            if (p->count > 0 && heap_push(&tr.heap, p->count, p->key) != 0) goto fail;
        }
    }
    trainer_free(&tr);
    return tok_build(merges, nm, out, err, errcap);
fail:
    if (rc == 0) rc = ME_ENOMEM;
    me_set_err(err, errcap, "tokenizer training: %s", me_strerror(rc));
    free(merges);
    wordmap_free(&wm);
    trainer_free(&tr);
    return rc;
}

/* ---- serialisation ---- */

#define TOK_MAGIC "mebpe1"

int me_tok_save(const me_tok_t *t, char **out, size_t *len) {
    size_t cap = 64 + (size_t)t->nmerges * 12;
    char *s = malloc(cap);
    if (!s) return ME_ENOMEM;
    size_t n = (size_t)snprintf(s, cap, TOK_MAGIC " norm=%d vocab=%d merges=%d", ME_TOK_NORM_VERSION,
                                me_tok_vocab_size(t), t->nmerges);
    for (int i = 0; i < t->nmerges; i++)
        n += (size_t)snprintf(s + n, cap - n, " %d %d", (int)t->merges[2 * i], (int)t->merges[2 * i + 1]);
    *out = s;
    if (len) *len = n;
    return 0;
}

/* Reads a decimal integer in [0, max] at *p (no sign, no leading zeros). */
static int read_uint(const char **p, const char *e, long max, long *out) {
    const char *s = *p;
    long v = 0;
    if (s >= e || *s < '0' || *s > '9') return -1;
    if (*s == '0' && s + 1 < e && s[1] >= '0' && s[1] <= '9') return -1;
    while (s < e && *s >= '0' && *s <= '9') {
        v = v * 10 + (*s - '0');
        if (v > max) return -1;
        s++;
    }
    *p = s;
    *out = v;
    return 0;
}

static int expect(const char **p, const char *e, const char *lit) {
    size_t n = strlen(lit);
    if ((size_t)(e - *p) < n || memcmp(*p, lit, n) != 0) return -1;
    *p += n;
    return 0;
}

int me_tok_load(const char *s, size_t len, me_tok_t **out, char *err, size_t errcap) {
    *out = NULL;
    const char *p = s ? s : "", *e = p + (s ? len : 0);
    long norm, vocab, nm;
    if (expect(&p, e, TOK_MAGIC " norm=") != 0) {
        me_set_err(err, errcap, "tokenizer: not a serialised tokenizer (expected \"" TOK_MAGIC " norm=...\")");
        return ME_ECORRUPT;
    }
    if (read_uint(&p, e, 1000, &norm) != 0) {
        me_set_err(err, errcap, "tokenizer: bad normalisation version at byte %zu", (size_t)(p - s));
        return ME_ECORRUPT;
    }
    if (norm != ME_TOK_NORM_VERSION) {
        me_set_err(err, errcap, "tokenizer: normalisation version %ld, this build knows %d", norm, ME_TOK_NORM_VERSION);
        return ME_EUNIMPL;
    }
    if (expect(&p, e, " vocab=") != 0 || read_uint(&p, e, ME_TOK_MAX_VOCAB, &vocab) != 0 ||
        expect(&p, e, " merges=") != 0 || read_uint(&p, e, ME_TOK_MAX_VOCAB, &nm) != 0) {
        me_set_err(err, errcap, "tokenizer: bad header at byte %zu", (size_t)(p - s));
        return ME_ECORRUPT;
    }
    if (vocab != ME_TOK_BASE_VOCAB + nm) {
        me_set_err(err, errcap, "tokenizer: vocab=%ld does not match %d + merges=%ld", vocab, ME_TOK_BASE_VOCAB, nm);
        return ME_ECORRUPT;
    }
    int32_t *merges = malloc(((size_t)nm + 1) * 2 * sizeof *merges);
    if (!merges) return ME_ENOMEM;
    for (long i = 0; i < 2 * nm; i++) {
        long v;
        if (p >= e) {
            me_set_err(err, errcap, "tokenizer: truncated after %ld of %ld merges", i / 2, nm);
            free(merges);
            return ME_ECORRUPT;
        }
        if (expect(&p, e, " ") != 0 || read_uint(&p, e, ME_TOK_MAX_VOCAB, &v) != 0) {
            me_set_err(err, errcap, "tokenizer: bad merge %ld at byte %zu", i / 2, (size_t)(p - s));
            free(merges);
            return ME_ECORRUPT;
        }
        merges[i] = (int32_t)v;
    }
    if (p != e) {
        me_set_err(err, errcap, "tokenizer: %zu unexpected bytes after %ld merges", (size_t)(e - p), nm);
        free(merges);
        return ME_ECORRUPT;
    }
    char why[160] = "";
    int rc = tok_build(merges, (int)nm, out, why, sizeof why);
    if (rc != 0) me_set_err(err, errcap, "tokenizer: %s", why);
    return rc;
}
