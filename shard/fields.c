#include "shard/fields.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/hash.h"

enum { KW = METAEMBED__FIELD_TYPE__FIELD_TYPE_KEYWORD, INT = METAEMBED__FIELD_TYPE__FIELD_TYPE_INTEGER,
       FLT = METAEMBED__FIELD_TYPE__FIELD_TYPE_FLOAT, BOOL = METAEMBED__FIELD_TYPE__FIELD_TYPE_BOOL };

typedef struct {
    me_field_spec_t spec;
    uint64_t *has;       /* [words(cap)] the slot has a value */
    int64_t *i64;        /* integer */
    double *f64;         /* float */
    uint8_t *b;          /* bool */
    uint32_t *kw;        /* keyword: the first value's id */
    uint32_t **more;     /* keyword: NULL, or [count, ids...] of the values after the first */
    /* keyword dictionary: id → string, and an open-addressing table of id + 1 */
    char **terms;
    uint32_t nterms, terms_cap;
    uint32_t *table;
    size_t table_cap;
    uint64_t term_bytes;
} col_t;

struct me_fields {
    int n;
    col_t *cols[ME_FIELDS_MAX];
    size_t slots, cap;
};

me_fields_t *me_fields_new(void) { return calloc(1, sizeof(me_fields_t)); }

static void col_free(col_t *c) {
    if (!c) return;
    free(c->has);
    free(c->i64);
    free(c->f64);
    free(c->b);
    free(c->kw);
    free(c->more);  /* the caller freed the arrays it points to */
    for (uint32_t i = 0; i < c->nterms; i++) free(c->terms[i]);
    free(c->terms);
    free(c->table);
    free(c);
}

void me_fields_free(me_fields_t *fx) {
    if (!fx) return;
    for (int f = 0; f < fx->n; f++) {
        col_t *c = fx->cols[f];
        if (c->more)
            for (size_t s = 0; s < fx->slots; s++) free(c->more[s]);
        col_free(c);
    }
    free(fx);
}


/* Resizes one column's arrays to cap slots (new slots zeroed). */
static int col_resize(col_t *c, size_t old_cap, size_t cap) {
    size_t ow = me_bitmap_words(old_cap), nw = me_bitmap_words(cap);
    uint64_t *has = realloc(c->has, (nw ? nw : 1) * sizeof *has);
    if (!has) return ME_ENOMEM;
    memset(has + ow, 0, (nw - ow) * sizeof *has);
    c->has = has;
#define GROW(arr)                                                                 \
    do {                                                                          \
        void *p = realloc(c->arr, (cap ? cap : 1) * sizeof *c->arr);              \
        if (!p) return ME_ENOMEM;                                                 \
        c->arr = p;                                                               \
        memset(c->arr + old_cap, 0, (cap - old_cap) * sizeof *c->arr);            \
    } while (0)
    switch (c->spec.type) {
    case KW: GROW(kw); GROW(more); break;
    case INT: GROW(i64); break;
    case FLT: GROW(f64); break;
    default: GROW(b); break;
    }
#undef GROW
    return 0;
}

int me_fields_add_field(me_fields_t *fx, const me_field_spec_t *spec) {
    if (fx->n == ME_FIELDS_MAX) return ME_EINVAL;
    col_t *c = calloc(1, sizeof *c);
    if (!c) return ME_ENOMEM;
    c->spec = *spec;
    if (col_resize(c, 0, fx->cap) != 0) { col_free(c); return ME_ENOMEM; }
    fx->cols[fx->n++] = c;
    return 0;
}

int me_fields_append(me_fields_t *fx) {
    if (fx->slots == fx->cap) {
        size_t ncap = fx->cap ? fx->cap * 2 : 64;
        for (int f = 0; f < fx->n; f++)
            /* A column grown before a failure keeps its larger arrays: harmless. */
            if (col_resize(fx->cols[f], fx->cap, ncap) != 0) return ME_ENOMEM;
        fx->cap = ncap;
    }
    fx->slots++;  /* new slots are zeroed: no values */
    return 0;
}

/* ---- keyword dictionary ---- */

static long dict_find(const col_t *c, const char *s, size_t len) {
    if (!c->table_cap) return -1;
    size_t mask = c->table_cap - 1;
    for (size_t i = (size_t)me_hash64(s, len) & mask;; i = (i + 1) & mask) {
        uint32_t v = c->table[i];
        if (!v) return -1;
        const char *t = c->terms[v - 1];
        if (strlen(t) == len && memcmp(t, s, len) == 0) return (long)(v - 1);
    }
}

static void dict_place(col_t *c, uint32_t id) {
    const char *t = c->terms[id];
    size_t mask = c->table_cap - 1;
    size_t i = (size_t)me_hash64(t, strlen(t)) & mask;
    while (c->table[i]) i = (i + 1) & mask;
    c->table[i] = id + 1;
}

static long dict_intern(col_t *c, const char *s, size_t len) {
    long id = dict_find(c, s, len);
    if (id >= 0) return id;
    if ((size_t)(c->nterms + 1) * 4 > c->table_cap * 3) {
        size_t ncap = c->table_cap ? c->table_cap * 2 : 64;
        uint32_t *nt = calloc(ncap, sizeof *nt);
        if (!nt) return ME_ENOMEM;
        free(c->table);
        c->table = nt;
        c->table_cap = ncap;
        for (uint32_t i = 0; i < c->nterms; i++) dict_place(c, i);
    }
    if (c->nterms == c->terms_cap) {
        uint32_t ncap = c->terms_cap ? c->terms_cap * 2 : 64;
        char **nt = realloc(c->terms, ncap * sizeof *nt);
        if (!nt) return ME_ENOMEM;
        c->terms = nt;
        c->terms_cap = ncap;
    }
    char *copy = malloc(len + 1);
    if (!copy) return ME_ENOMEM;
    memcpy(copy, s, len);
    copy[len] = 0;
    c->terms[c->nterms] = copy;
    c->term_bytes += len + 1;
    dict_place(c, c->nterms);
    return c->nterms++;
}

/* ---- slots ---- */

static void bit_set(uint64_t *b, size_t i, int v) {
    if (v) b[i >> 6] |= 1ull << (i & 63);
    else b[i >> 6] &= ~(1ull << (i & 63));
}

static void clear_slot(col_t *c, size_t slot) {
    bit_set(c->has, slot, 0);
    if (c->spec.type == KW) {
        free(c->more[slot]);
        c->more[slot] = NULL;
        c->kw[slot] = 0;
    }
}

static col_t *col_named(const me_fields_t *fx, const char *name, size_t len) {
    for (int f = 0; f < fx->n; f++)
        if (strlen(fx->cols[f]->spec.name) == len && memcmp(fx->cols[f]->spec.name, name, len) == 0) return fx->cols[f];
    return NULL;
}

static int set_value(col_t *c, size_t slot, const me_payload_value_t *v) {
    switch (c->spec.type) {
    case INT: c->i64[slot] = v->i; break;
    case FLT: c->f64[slot] = v->f; break;
    case BOOL: c->b[slot] = (uint8_t)v->b; break;
    default: {
        const uint8_t *p = v->kw;
        uint32_t *more = v->nkw > 1 ? malloc(v->nkw * sizeof *more) : NULL;
        if (v->nkw > 1 && !more) return ME_ENOMEM;
        for (size_t k = 0; k < v->nkw; k++) {
            const char *s;
            size_t len;
            me_payload_keyword_next(&p, &s, &len);
            long id = dict_intern(c, s, len);
            if (id < 0) { free(more); return ME_ENOMEM; }
            if (k == 0) c->kw[slot] = (uint32_t)id;
            else more[k] = (uint32_t)id;
        }
        if (more) more[0] = (uint32_t)(v->nkw - 1);
        c->more[slot] = more;
    }
    }
    bit_set(c->has, slot, 1);
    return 0;
}

int me_fields_set(me_fields_t *fx, size_t slot, const uint8_t *rec, size_t len) {
    for (int f = 0; f < fx->n; f++) clear_slot(fx->cols[f], slot);
    me_payload_iter_t it;
    me_payload_value_t v;
    int rc = me_payload_iter_init(&it, rec, len);
    while (rc == 0 && (rc = me_payload_next(&it, &v)) == 1) {
        col_t *c = col_named(fx, v.name, v.name_len);
        rc = !c || c->spec.type != v.type ? ME_ECORRUPT : set_value(c, slot, &v);
    }
    if (rc < 0)
        for (int f = 0; f < fx->n; f++) clear_slot(fx->cols[f], slot);
    return rc < 0 ? rc : 0;
}

void me_fields_remove(me_fields_t *fx, size_t slot) {
    size_t last = fx->slots - 1;
    for (int f = 0; f < fx->n; f++) {
        col_t *c = fx->cols[f];
        clear_slot(c, slot);
        if (slot == last) continue;
        bit_set(c->has, slot, me_bitmap_get(c->has, last));
        switch (c->spec.type) {
        case INT: c->i64[slot] = c->i64[last]; break;
        case FLT: c->f64[slot] = c->f64[last]; break;
        case BOOL: c->b[slot] = c->b[last]; break;
        default:
            c->kw[slot] = c->kw[last];
            c->more[slot] = c->more[last];
            c->more[last] = NULL;
        }
        bit_set(c->has, last, 0);
    }
    fx->slots--;
}

uint64_t me_fields_ram_bytes(const me_fields_t *fx) {
    uint64_t total = 0;
    for (int f = 0; f < fx->n; f++) {
        const col_t *c = fx->cols[f];
        total += me_bitmap_words(fx->cap) * 8;
        switch (c->spec.type) {
        case INT: total += fx->cap * 8; break;
        case FLT: total += fx->cap * 8; break;
        case BOOL: total += fx->cap; break;
        default:
            total += fx->cap * (4 + sizeof(uint32_t *)) + c->term_bytes + c->terms_cap * sizeof(char *) +
                     c->table_cap * 4;
            for (size_t s = 0; s < fx->slots; s++)
                if (c->more[s]) total += (c->more[s][0] + 1) * 4;
        }
    }
    return total;
}

/* ---- evaluation ---- */

typedef struct {
    const me_fields_t *fx;
    size_t words;
} ev_t;

/* Calls body for every slot s with a value (the set bits of has). */
#define EACH_WITH_VALUE(c, words, s, body)                              \
    for (size_t w_ = 0; w_ < (words); w_++)                             \
        for (uint64_t b_ = (c)->has[w_]; b_; b_ &= b_ - 1) {            \
            size_t s = w_ * 64 + (size_t)__builtin_ctzll(b_);           \
            body;                                                       \
        }

static int match_keyword(const ev_t *e, const col_t *c, const Metaembed__Match *m, uint64_t *out) {
    /* The dictionary ids asked for (values no document holds have none). */
    size_t nwant = m->n_keywords + m->n_integers, nids = 0;
    uint32_t *ids = malloc((nwant ? nwant : 1) * sizeof *ids);
    if (!ids) return ME_ENOMEM;
    for (size_t i = 0; i < nwant; i++) {
        char num[24];
        const char *s = i < m->n_keywords ? m->keywords[i] : num;
        if (i >= m->n_keywords) snprintf(num, sizeof num, "%lld", (long long)m->integers[i - m->n_keywords]);
        long id = dict_find(c, s, strlen(s));
        if (id >= 0) ids[nids++] = (uint32_t)id;
    }
    uint8_t *want = NULL;
    if (nids > 4) {
        if (!(want = calloc(c->nterms, 1))) { free(ids); return ME_ENOMEM; }
        for (size_t i = 0; i < nids; i++) want[ids[i]] = 1;
    }
#define WANTED(id) (want ? want[id] : ((nids > 0 && ids[0] == (id)) || (nids > 1 && ids[1] == (id)) || \
                                       (nids > 2 && ids[2] == (id)) || (nids > 3 && ids[3] == (id))))
    if (nids)
        EACH_WITH_VALUE(c, e->words, s, {
            int hit = WANTED(c->kw[s]);
            const uint32_t *more = c->more[s];
            for (uint32_t k = 1; !hit && more && k <= more[0]; k++) hit = WANTED(more[k]);
            if (hit) out[s >> 6] |= 1ull << (s & 63);
        });
#undef WANTED
    free(want);
    free(ids);
    return 0;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int match_integer(const ev_t *e, const col_t *c, const Metaembed__Match *m, uint64_t *out) {
    size_t n = m->n_integers;
    int64_t *v = malloc((n ? n : 1) * sizeof *v);
    if (!v) return ME_ENOMEM;
    memcpy(v, m->integers, n * sizeof *v);
    qsort(v, n, sizeof *v, cmp_i64);
    EACH_WITH_VALUE(c, e->words, s, {
        int64_t x = c->i64[s];
        if (bsearch(&x, v, n, sizeof *v, cmp_i64)) out[s >> 6] |= 1ull << (s & 63);
    });
    free(v);
    return 0;
}

/* 2^63 as a double: int64 values are below it. */
#define TWO63 9223372036854775808.0

/* Inclusive int64 bounds [*lo, *hi] of a range's double bounds; 0 when no
 * integer satisfies them. Exact for any int64 (no value is rounded). */
static int int_bounds(const Metaembed__Range *r, int64_t *lo, int64_t *hi) {
    *lo = INT64_MIN;
    *hi = INT64_MAX;
    if (r->n_gte) {
        double x = r->gte[0];
        if (x >= TWO63) return 0;
        if (x > -TWO63) { int64_t b = (int64_t)ceil(x); if (b > *lo) *lo = b; }
    }
    if (r->n_gt) {
        double x = r->gt[0];
        if (x >= TWO63) return 0;
        if (x >= -TWO63) { int64_t b = (int64_t)floor(x) + 1; if (b > *lo) *lo = b; }
    }
    if (r->n_lte) {
        double x = r->lte[0];
        if (x < -TWO63) return 0;
        if (x < TWO63) { int64_t b = (int64_t)floor(x); if (b < *hi) *hi = b; }
    }
    if (r->n_lt) {
        double x = r->lt[0];
        if (x <= -TWO63) return 0;
        if (x < TWO63) { int64_t b = (int64_t)ceil(x) - 1; if (b < *hi) *hi = b; }
    }
    return *lo <= *hi;
}

static void range_eval(const ev_t *e, const col_t *c, const Metaembed__Range *r, uint64_t *out) {
    if (c->spec.type == INT) {
        int64_t lo, hi;
        if (!int_bounds(r, &lo, &hi)) return;
        EACH_WITH_VALUE(c, e->words, s, {
            int64_t x = c->i64[s];
            if (x >= lo && x <= hi) out[s >> 6] |= 1ull << (s & 63);
        });
        return;
    }
    int has_gt = r->n_gt > 0, has_gte = r->n_gte > 0, has_lt = r->n_lt > 0, has_lte = r->n_lte > 0;
    double gt = has_gt ? r->gt[0] : 0, gte = has_gte ? r->gte[0] : 0, lt = has_lt ? r->lt[0] : 0,
           lte = has_lte ? r->lte[0] : 0;
    EACH_WITH_VALUE(c, e->words, s, {
        double x = c->f64[s];
        if ((!has_gt || x > gt) && (!has_gte || x >= gte) && (!has_lt || x < lt) && (!has_lte || x <= lte))
            out[s >> 6] |= 1ull << (s & 63);
    });
}

static int eval_filter(const ev_t *e, const Metaembed__Filter *f, uint64_t *out);

/* out = the slots condition k matches. */
static int eval_condition(const ev_t *e, const Metaembed__Condition *k, uint64_t *out) {
    memset(out, 0, e->words * sizeof *out);
    const char *name = k->condition_case == METAEMBED__CONDITION__CONDITION_MATCH  ? k->match->field
                       : k->condition_case == METAEMBED__CONDITION__CONDITION_RANGE ? k->range->field
                       : k->condition_case == METAEMBED__CONDITION__CONDITION_EXISTS ? k->exists
                                                                                     : NULL;
    if (k->condition_case == METAEMBED__CONDITION__CONDITION_FILTER) return eval_filter(e, k->filter, out);
    const col_t *c = name ? col_named(e->fx, name, strlen(name)) : NULL;
    if (!c) return 0;  /* me_filter_check refuses these; nothing matches */
    switch (k->condition_case) {
    case METAEMBED__CONDITION__CONDITION_EXISTS:
        memcpy(out, c->has, e->words * sizeof *out);
        return 0;
    case METAEMBED__CONDITION__CONDITION_RANGE:
        if (c->spec.type == INT || c->spec.type == FLT) range_eval(e, c, k->range, out);
        return 0;
    default: {
        const Metaembed__Match *m = k->match;
        if (c->spec.type == KW) return match_keyword(e, c, m, out);
        if (c->spec.type == INT) return match_integer(e, c, m, out);
        if (c->spec.type == BOOL) {
            int want[2] = { 0, 0 };
            for (size_t i = 0; i < m->n_booleans; i++) want[m->booleans[i] ? 1 : 0] = 1;
            EACH_WITH_VALUE(c, e->words, s, {
                if (want[c->b[s]]) out[s >> 6] |= 1ull << (s & 63);
            });
        }
        return 0;
    }
    }
}

static int eval_filter(const ev_t *e, const Metaembed__Filter *f, uint64_t *out) {
    size_t W = e->words, n = e->fx->slots;
    for (size_t w = 0; w < W; w++) out[w] = ~0ull;
    if (n % 64) out[W - 1] = (1ull << (n % 64)) - 1;
    uint64_t *tmp = malloc((W ? W : 1) * sizeof *tmp);
    uint64_t *any = f->n_should ? calloc(W ? W : 1, sizeof *any) : NULL;
    int rc = tmp && (any || !f->n_should) ? 0 : ME_ENOMEM;
    for (size_t i = 0; rc == 0 && i < f->n_must; i++)
        if ((rc = eval_condition(e, f->must[i], tmp)) == 0)
            for (size_t w = 0; w < W; w++) out[w] &= tmp[w];
    for (size_t i = 0; rc == 0 && i < f->n_should; i++)
        if ((rc = eval_condition(e, f->should[i], tmp)) == 0)
            for (size_t w = 0; w < W; w++) any[w] |= tmp[w];
    if (rc == 0 && any)
        for (size_t w = 0; w < W; w++) out[w] &= any[w];
    for (size_t i = 0; rc == 0 && i < f->n_must_not; i++)
        if ((rc = eval_condition(e, f->must_not[i], tmp)) == 0)
            for (size_t w = 0; w < W; w++) out[w] &= ~tmp[w];
    free(tmp);
    free(any);
    return rc;
}

int me_fields_eval(const me_fields_t *fx, const Metaembed__Filter *filter, uint64_t *out) {
    ev_t e = { .fx = fx, .words = me_bitmap_words(fx->slots) };
    if (!e.words) return 0;
    return eval_filter(&e, filter, out);
}
