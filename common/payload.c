#include "common/payload.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/json.h"

#define RECORD_VERSION 1

static const char *const type_names[] = { "?", "keyword", "integer", "float", "bool" };

const char *me_field_type_name(int type) {
    return type >= METAEMBED__FIELD_TYPE__FIELD_TYPE_KEYWORD && type <= METAEMBED__FIELD_TYPE__FIELD_TYPE_BOOL
               ? type_names[type] : type_names[0];
}

int me_field_find(const me_field_spec_t *f, int n, const char *name, size_t len) {
    for (int i = 0; i < n; i++)
        if (strlen(f[i].name) == len && memcmp(f[i].name, name, len) == 0) return i;
    return -1;
}

int me_field_specs_check(const me_field_spec_t *f, int n, char *err, size_t cap) {
    if (n < 0 || n > ME_FIELDS_MAX) {
        me_set_err(err, cap, "at most %d indexed fields per collection, got %d", ME_FIELDS_MAX, n);
        return ME_EINVAL;
    }
    for (int i = 0; i < n; i++) {
        char sub[200];
        if (me_check_field_name(f[i].name, strlen(f[i].name), sub, sizeof sub) != 0) {
            me_set_err(err, cap, "field %d: %s", i, sub);
            return ME_EINVAL;
        }
        if (me_field_type_name(f[i].type) == type_names[0]) {
            me_set_err(err, cap, "field '%s': give a type: keyword, integer, float or bool", f[i].name);
            return ME_EINVAL;
        }
        if (me_field_find(f, i, f[i].name, strlen(f[i].name)) >= 0) {
            me_set_err(err, cap, "field '%s' is given twice", f[i].name);
            return ME_EINVAL;
        }
    }
    return 0;
}

int me_field_specs_parse(const char *text, me_field_spec_t *out, int *n, char *err, size_t cap) {
    *n = 0;
    const char *p = text ? text : "";
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',') p++;
        if (!*p) break;
        const char *item = p;
        while (*p && *p != ',') p++;
        const char *end = p;
        while (end > item && (end[-1] == ' ' || end[-1] == '\t')) end--;
        const char *colon = memchr(item, ':', (size_t)(end - item));
        if (*n == ME_FIELDS_MAX) {
            me_set_err(err, cap, "at most %d indexed fields per collection", ME_FIELDS_MAX);
            return ME_EINVAL;
        }
        if (!colon) {
            me_set_err(err, cap, "field '%.*s': write NAME:TYPE (TYPE keyword, integer, float or bool)",
                       (int)(end - item > 64 ? 64 : end - item), item);
            return ME_EINVAL;
        }
        me_field_spec_t *s = &out[*n];
        memset(s, 0, sizeof *s);
        size_t nl = (size_t)(colon - item);
        char sub[200];
        if (me_check_field_name(item, nl, sub, sizeof sub) != 0) {
            me_set_err(err, cap, "field '%.*s': %s", (int)(nl > 64 ? 64 : nl), item, sub);
            return ME_EINVAL;
        }
        memcpy(s->name, item, nl);
        const char *t = colon + 1;
        size_t tl = (size_t)(end - t);
        for (int ty = METAEMBED__FIELD_TYPE__FIELD_TYPE_KEYWORD; ty <= METAEMBED__FIELD_TYPE__FIELD_TYPE_BOOL; ty++)
            if (strlen(type_names[ty]) == tl && strncmp(t, type_names[ty], tl) == 0) s->type = ty;
        if (!s->type) {
            me_set_err(err, cap, "field '%s': unknown type '%.*s' (keyword, integer, float or bool)", s->name,
                       (int)(tl > 32 ? 32 : tl), t);
            return ME_EINVAL;
        }
        (*n)++;
    }
    return me_field_specs_check(out, *n, err, cap);
}

size_t me_field_specs_format(const me_field_spec_t *f, int n, char *out, size_t cap) {
    size_t len = 0;
    if (cap) out[0] = 0;
    for (int i = 0; i < n && len + 1 < cap; i++) {
        int w = snprintf(out + len, cap - len, "%s%s:%s", i ? "," : "", f[i].name, me_field_type_name(f[i].type));
        len = w < 0 ? len : len + (size_t)w >= cap ? cap - 1 : len + (size_t)w;
    }
    return len;
}

void me_field_specs_from_proto(me_field_spec_t *out, int *n, Metaembed__FieldSpec *const *in, size_t nin) {
    /* More than the limit keeps the count, so the check refuses it. */
    *n = nin > ME_FIELDS_MAX ? ME_FIELDS_MAX + 1 : (int)nin;
    for (size_t i = 0; i < nin && i < ME_FIELDS_MAX; i++) {
        memset(&out[i], 0, sizeof out[i]);
        if (in[i]->name && strlen(in[i]->name) <= ME_FIELD_NAME_MAX) strcpy(out[i].name, in[i]->name);
        out[i].type = (int)in[i]->type;
    }
}

void me_field_specs_to_proto(const me_field_spec_t *f, int n, Metaembed__FieldSpec *fs, Metaembed__FieldSpec **ptrs) {
    for (int i = 0; i < n; i++) {
        metaembed__field_spec__init(&fs[i]);
        fs[i].name = (char *)f[i].name;
        fs[i].type = (Metaembed__FieldType)f[i].type;
        ptrs[i] = &fs[i];
    }
}

/* ---- values from metadata ---- */

/* The member at a dotted path ("a.b": member b of object a). */
static const me_json_t *lookup(const me_json_t *root, const char *path) {
    const me_json_t *v = root;
    char part[ME_FIELD_NAME_MAX + 1];
    while (v && *path) {
        const char *dot = strchr(path, '.');
        size_t l = dot ? (size_t)(dot - path) : strlen(path);
        memcpy(part, path, l);
        part[l] = 0;
        v = me_json_get(v, part);
        path += l + (dot ? 1 : 0);
    }
    return v;
}

typedef struct {
    uint8_t *buf;
    size_t len, cap;
} out_t;

static int put(out_t *o, const void *p, size_t n) {
    if (o->len + n > o->cap) {
        size_t nc = o->cap ? o->cap * 2 : 256;
        while (nc < o->len + n) nc *= 2;
        uint8_t *nb = realloc(o->buf, nc);
        if (!nb) return ME_ENOMEM;
        o->buf = nb;
        o->cap = nc;
    }
    memcpy(o->buf + o->len, p, n);
    o->len += n;
    return 0;
}

static int put_u16(out_t *o, unsigned v) {
    uint8_t b[2] = { (uint8_t)v, (uint8_t)(v >> 8) };
    return put(o, b, 2);
}

static int put_u64(out_t *o, uint64_t v) {
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
    return put(o, b, 8);
}

static int check_keyword(const me_json_t *s, const char *field, char *err, size_t cap) {
    if (s->len > ME_KEYWORD_MAX) {
        me_set_err(err, cap, "field '%s': a keyword of %zu bytes is longer than %d bytes", field, s->len, ME_KEYWORD_MAX);
        return ME_EINVAL;
    }
    if (memchr(s->u.str, 0, s->len)) {
        me_set_err(err, cap, "field '%s': a keyword holds a NUL character", field);
        return ME_EINVAL;
    }
    return 0;
}

static const char *json_kind(const me_json_t *v) {
    switch (v->type) {
    case ME_JSON_FALSE: case ME_JSON_TRUE: return "a bool";
    case ME_JSON_NUMBER: return "a number";
    case ME_JSON_STRING: return "a string";
    case ME_JSON_ARRAY: return "an array";
    case ME_JSON_OBJECT: return "an object";
    default: return "null";
    }
}

/* Appends one field's entry; a wrong type is ME_EINVAL. */
static int put_value(out_t *o, const me_field_spec_t *f, const me_json_t *v, char *err, size_t cap) {
    int ty = f->type, rc = 0;
    uint8_t head[2 + ME_FIELD_NAME_MAX];
    size_t nl = strlen(f->name);
    head[0] = (uint8_t)nl;
    memcpy(head + 1, f->name, nl);
    head[1 + nl] = (uint8_t)ty;
    if (ty == METAEMBED__FIELD_TYPE__FIELD_TYPE_KEYWORD) {
        size_t n = v->type == ME_JSON_ARRAY ? v->len : 1;
        if (v->type != ME_JSON_STRING && v->type != ME_JSON_ARRAY) goto wrong;
        if (n > ME_KEYWORD_ARRAY_MAX) {
            me_set_err(err, cap, "field '%s': an array of %zu keywords is longer than %d", f->name, n, ME_KEYWORD_ARRAY_MAX);
            return ME_EINVAL;
        }
        if (n == 0) return 0;  /* the empty array: no value */
        for (size_t i = 0; i < n; i++) {
            const me_json_t *s = v->type == ME_JSON_ARRAY ? &v->u.items[i] : v;
            if (s->type != ME_JSON_STRING) {
                me_set_err(err, cap, "field '%s' is a keyword field: its array holds %s (give strings)", f->name,
                           json_kind(s));
                return ME_EINVAL;
            }
            if ((rc = check_keyword(s, f->name, err, cap)) != 0) return rc;
        }
        if ((rc = put(o, head, 2 + nl)) || (rc = put_u16(o, (unsigned)n))) return rc;
        for (size_t i = 0; i < n && rc == 0; i++) {
            const me_json_t *s = v->type == ME_JSON_ARRAY ? &v->u.items[i] : v;
            if ((rc = put_u16(o, (unsigned)s->len)) == 0) rc = put(o, s->u.str, s->len);
        }
        return rc;
    }
    if (ty == METAEMBED__FIELD_TYPE__FIELD_TYPE_INTEGER) {
        int64_t x;
        if (v->type != ME_JSON_NUMBER) goto wrong;
        if (me_json_int64(v, &x) != 0) {
            me_set_err(err, cap, "field '%s' is an integer field: %.40s is not an integer within ±2^63", f->name, v->u.str);
            return ME_EINVAL;
        }
        if ((rc = put(o, head, 2 + nl)) == 0) rc = put_u64(o, (uint64_t)x);
        return rc;
    }
    if (ty == METAEMBED__FIELD_TYPE__FIELD_TYPE_FLOAT) {
        if (v->type != ME_JSON_NUMBER) goto wrong;
        if (!isfinite(v->num)) {
            me_set_err(err, cap, "field '%s': %.40s is out of a double's range", f->name, v->u.str);
            return ME_EINVAL;
        }
        uint64_t bits;
        memcpy(&bits, &v->num, 8);
        if ((rc = put(o, head, 2 + nl)) == 0) rc = put_u64(o, bits);
        return rc;
    }
    /* bool */
    if (v->type != ME_JSON_TRUE && v->type != ME_JSON_FALSE) goto wrong;
    uint8_t b = v->type == ME_JSON_TRUE;
    if ((rc = put(o, head, 2 + nl)) == 0) rc = put(o, &b, 1);
    return rc;
wrong:
    me_set_err(err, cap, "field '%s' is a%s %s field, the metadata gives it %s", f->name,
               ty == METAEMBED__FIELD_TYPE__FIELD_TYPE_INTEGER ? "n" : "", me_field_type_name(ty), json_kind(v));
    return ME_EINVAL;
}

int me_payload_record_json(const me_field_spec_t *f, int n, const me_json_t *root, uint8_t **rec, size_t *rlen,
                           char *err, size_t cap) {
    *rec = NULL;
    *rlen = 0;
    if (n == 0 || !root || root->type != ME_JSON_OBJECT) return 0;
    out_t o = { 0 };
    uint8_t version = RECORD_VERSION;
    int rc = put(&o, &version, 1), any = 0;
    for (int i = 0; rc == 0 && i < n; i++) {
        const me_json_t *v = lookup(root, f[i].name);
        if (!v || v->type == ME_JSON_NULL) continue;
        size_t before = o.len;
        rc = put_value(&o, &f[i], v, err, cap);
        any |= o.len > before;
    }
    if (rc || !any) { free(o.buf); return rc; }
    *rec = o.buf;
    *rlen = o.len;
    return 0;
}

int me_payload_record(const me_field_spec_t *f, int n, const void *meta, size_t len, uint8_t **rec, size_t *rlen,
                      char *err, size_t cap) {
    *rec = NULL;
    *rlen = 0;
    if (n == 0 || !meta || len == 0) return 0;
    me_json_doc_t *doc = NULL;
    if (me_json_parse(meta, len, &doc, NULL) != 0) return 0;  /* opaque metadata: no values */
    int rc = me_payload_record_json(f, n, me_json_root(doc), rec, rlen, err, cap);
    me_json_free(doc);
    return rc;
}

/* ---- reading records ---- */

int me_payload_iter_init(me_payload_iter_t *it, const uint8_t *rec, size_t len) {
    it->p = it->end = rec;  /* rec may be NULL with len 0: no arithmetic on it then */
    if (len == 0) return 0;
    it->end = rec + len;
    if (rec[0] != RECORD_VERSION) return ME_ECORRUPT;
    it->p++;
    return 0;
}

static uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

int me_payload_next(me_payload_iter_t *it, me_payload_value_t *v) {
    const uint8_t *p = it->p, *end = it->end;
    if (p == end) return 0;
    memset(v, 0, sizeof *v);
    size_t nl = *p++;
    if (nl == 0 || nl > ME_FIELD_NAME_MAX || (size_t)(end - p) < nl + 1) return ME_ECORRUPT;
    v->name = (const char *)p;
    v->name_len = nl;
    p += nl;
    v->type = *p++;
    switch (v->type) {
    case METAEMBED__FIELD_TYPE__FIELD_TYPE_KEYWORD:
        if (end - p < 2) return ME_ECORRUPT;
        v->nkw = (size_t)p[0] | (size_t)p[1] << 8;
        p += 2;
        v->kw = p;
        if (v->nkw == 0 || v->nkw > ME_KEYWORD_ARRAY_MAX) return ME_ECORRUPT;
        for (size_t i = 0; i < v->nkw; i++) {
            if (end - p < 2) return ME_ECORRUPT;
            size_t l = (size_t)p[0] | (size_t)p[1] << 8;
            if (l > ME_KEYWORD_MAX || (size_t)(end - p - 2) < l) return ME_ECORRUPT;
            p += 2 + l;
        }
        break;
    case METAEMBED__FIELD_TYPE__FIELD_TYPE_INTEGER:
    case METAEMBED__FIELD_TYPE__FIELD_TYPE_FLOAT: {
        if (end - p < 8) return ME_ECORRUPT;
        uint64_t bits = get_u64(p);
        p += 8;
        if (v->type == METAEMBED__FIELD_TYPE__FIELD_TYPE_INTEGER) v->i = (int64_t)bits;
        else memcpy(&v->f, &bits, 8);
        if (v->type == METAEMBED__FIELD_TYPE__FIELD_TYPE_FLOAT && !isfinite(v->f)) return ME_ECORRUPT;
        break;
    }
    case METAEMBED__FIELD_TYPE__FIELD_TYPE_BOOL:
        if (end - p < 1 || *p > 1) return ME_ECORRUPT;
        v->b = *p++;
        break;
    default:
        return ME_ECORRUPT;
    }
    it->p = p;
    return 1;
}

void me_payload_keyword_next(const uint8_t **p, const char **s, size_t *len) {
    *len = (size_t)(*p)[0] | (size_t)(*p)[1] << 8;
    *s = (const char *)*p + 2;
    *p += 2 + *len;
}

/* ---- filters against the schema ---- */

typedef struct {
    const me_field_spec_t *f;
    int n;
    size_t conditions, values;
    char *err;
    size_t cap;
} fcheck_t;

static int field_of(fcheck_t *c, const char *name, const char *what) {
    int i = name ? me_field_find(c->f, c->n, name, strlen(name)) : -1;
    if (i >= 0) return i;
    char have[ME_FIELDS_MAX * (ME_FIELD_NAME_MAX + 10) + 1];
    me_field_specs_format(c->f, c->n, have, sizeof have);
    me_set_err(c->err, c->cap, "filter: %s on field '%.64s', which is not indexed in this collection (%s%s); "
               "index it first (metaembed index-fields COLLECTION NAME:TYPE)",
               what, name ? name : "", c->n ? "indexed: " : "no indexed fields", have);
    return -1;
}

static int check_match(fcheck_t *c, const Metaembed__Match *m) {
    int i = field_of(c, m->field, "a match");
    if (i < 0) return ME_EINVAL;
    int ty = c->f[i].type;
    int lists = (m->n_keywords > 0) + (m->n_integers > 0) + (m->n_booleans > 0);
    size_t nv = m->n_keywords + m->n_integers + m->n_booleans;
    if (lists != 1) {
        me_set_err(c->err, c->cap, "filter: a match on '%s' needs values of one type (%s)", m->field,
                   lists ? "it mixes types" : "it has none");
        return ME_EINVAL;
    }
    c->values += nv;
    if (c->values > ME_FILTER_VALUES_MAX) {
        me_set_err(c->err, c->cap, "filter: more than %d match values", ME_FILTER_VALUES_MAX);
        return ME_EINVAL;
    }
    const char *got = m->n_keywords ? "keywords" : m->n_integers ? "integers" : "booleans";
    int ok = ty == METAEMBED__FIELD_TYPE__FIELD_TYPE_KEYWORD   ? m->n_booleans == 0
             : ty == METAEMBED__FIELD_TYPE__FIELD_TYPE_INTEGER ? m->n_integers > 0
             : ty == METAEMBED__FIELD_TYPE__FIELD_TYPE_BOOL    ? m->n_booleans > 0
                                                               : 0;
    if (!ok && ty == METAEMBED__FIELD_TYPE__FIELD_TYPE_FLOAT) {
        me_set_err(c->err, c->cap, "filter: '%s' is a float field: use a range (gte/lte) instead of a match", m->field);
        return ME_EINVAL;
    }
    if (!ok) {
        me_set_err(c->err, c->cap, "filter: '%s' is a%s %s field, the match gives %s", m->field,
                   ty == METAEMBED__FIELD_TYPE__FIELD_TYPE_INTEGER ? "n" : "", me_field_type_name(ty), got);
        return ME_EINVAL;
    }
    for (size_t k = 0; k < m->n_keywords; k++)
        if (strlen(m->keywords[k]) > ME_KEYWORD_MAX) {
            me_set_err(c->err, c->cap, "filter: a keyword for '%s' is longer than %d bytes", m->field, ME_KEYWORD_MAX);
            return ME_EINVAL;
        }
    return 0;
}

static int check_range(fcheck_t *c, const Metaembed__Range *r) {
    int i = field_of(c, r->field, "a range");
    if (i < 0) return ME_EINVAL;
    int ty = c->f[i].type;
    if (ty != METAEMBED__FIELD_TYPE__FIELD_TYPE_INTEGER && ty != METAEMBED__FIELD_TYPE__FIELD_TYPE_FLOAT) {
        me_set_err(c->err, c->cap, "filter: a range on '%s', a %s field (ranges take integer and float fields)",
                   r->field, me_field_type_name(ty));
        return ME_EINVAL;
    }
    const size_t counts[4] = { r->n_gt, r->n_gte, r->n_lt, r->n_lte };
    const double *vals[4] = { r->gt, r->gte, r->lt, r->lte };
    static const char *const names[4] = { "gt", "gte", "lt", "lte" };
    size_t given = 0;
    for (int b = 0; b < 4; b++) {
        if (counts[b] > 1) {
            me_set_err(c->err, c->cap, "filter: range on '%s' gives %s %zu times (at most once)", r->field, names[b],
                       counts[b]);
            return ME_EINVAL;
        }
        if (counts[b] && !isfinite(vals[b][0])) {
            me_set_err(c->err, c->cap, "filter: range on '%s': %s must be a finite number", r->field, names[b]);
            return ME_EINVAL;
        }
        given += counts[b];
    }
    if (!given) {
        me_set_err(c->err, c->cap, "filter: range on '%s' has no bound (give gt, gte, lt or lte)", r->field);
        return ME_EINVAL;
    }
    return 0;
}

static int check_filter(fcheck_t *c, const Metaembed__Filter *flt, int depth);

static int check_conditions(fcheck_t *c, Metaembed__Condition *const *conds, size_t n, int depth) {
    for (size_t i = 0; i < n; i++) {
        const Metaembed__Condition *k = conds[i];
        if (++c->conditions > ME_FILTER_CONDITIONS_MAX) {
            me_set_err(c->err, c->cap, "filter: more than %d conditions", ME_FILTER_CONDITIONS_MAX);
            return ME_EINVAL;
        }
        int rc = 0;
        switch (k->condition_case) {
        case METAEMBED__CONDITION__CONDITION_MATCH: rc = check_match(c, k->match); break;
        case METAEMBED__CONDITION__CONDITION_RANGE: rc = check_range(c, k->range); break;
        case METAEMBED__CONDITION__CONDITION_EXISTS: rc = field_of(c, k->exists, "exists") < 0 ? ME_EINVAL : 0; break;
        case METAEMBED__CONDITION__CONDITION_FILTER: rc = check_filter(c, k->filter, depth + 1); break;
        default:
            me_set_err(c->err, c->cap, "filter: an empty condition (give a match, range, exists or filter)");
            rc = ME_EINVAL;
        }
        if (rc) return rc;
    }
    return 0;
}

static int check_filter(fcheck_t *c, const Metaembed__Filter *flt, int depth) {
    if (depth > ME_FILTER_DEPTH_MAX) {
        me_set_err(c->err, c->cap, "filter: nested deeper than %d levels", ME_FILTER_DEPTH_MAX);
        return ME_EINVAL;
    }
    int rc = check_conditions(c, flt->must, flt->n_must, depth);
    if (rc == 0) rc = check_conditions(c, flt->should, flt->n_should, depth);
    if (rc == 0) rc = check_conditions(c, flt->must_not, flt->n_must_not, depth);
    return rc;
}

int me_filter_check(const Metaembed__Filter *flt, const me_field_spec_t *f, int n, char *err, size_t cap) {
    fcheck_t c = { .f = f, .n = n, .err = err, .cap = cap };
    return check_filter(&c, flt, 1);
}
