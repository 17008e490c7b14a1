#include "common/validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bm25.h"
#include "common/error.h"
#include "common/hash.h"

int me_utf8_valid(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) { i++; continue; }
        size_t len;
        uint32_t cp, min;
        if ((c & 0xe0) == 0xc0) { len = 2; cp = c & 0x1f; min = 0x80; }
        else if ((c & 0xf0) == 0xe0) { len = 3; cp = c & 0x0f; min = 0x800; }
        else if ((c & 0xf8) == 0xf0) { len = 4; cp = c & 0x07; min = 0x10000; }
        else return 0;
        if (n - i < len) return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return 0;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
        i += len;
    }
    return 1;
}

void me_utf8_clip(char *s) {
    size_t n = strlen(s);
    /* Drop bytes from the end until what is left is valid: at most a
     * partial character (3 bytes) when the prefix was valid before the cut. */
    while (n > 0 && !me_utf8_valid((const uint8_t *)s, n)) n--;
    s[n] = 0;
}

/* ---- strings in packed messages ---- */

static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*p >= end) return -1;
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) { *out = v; return 0; }
    }
    return -1;
}

static int walk(const ProtobufCMessageDescriptor *desc, const uint8_t *p, const uint8_t *end, int depth,
                char *err, size_t cap) {
    if (depth > ME_MESSAGE_DEPTH_MAX) {
        me_set_err(err, cap, "messages nested deeper than %d levels", ME_MESSAGE_DEPTH_MAX);
        return ME_EINVAL;
    }
    while (p < end) {
        uint64_t tag, len;
        if (read_varint(&p, end, &tag) != 0) return ME_EPROTO;
        uint32_t field = (uint32_t)(tag >> 3);
        if (field == 0) return ME_EPROTO;
        switch (tag & 7) {
        case 0: if (read_varint(&p, end, &len) != 0) return ME_EPROTO; break;
        case 1: if (end - p < 8) return ME_EPROTO; p += 8; break;
        case 5: if (end - p < 4) return ME_EPROTO; p += 4; break;
        case 2: {
            if (read_varint(&p, end, &len) != 0 || len > (uint64_t)(end - p)) return ME_EPROTO;
            const ProtobufCFieldDescriptor *fd = protobuf_c_message_descriptor_get_field(desc, field);
            if (fd && fd->type == PROTOBUF_C_TYPE_STRING) {
                const uint8_t *nul = memchr(p, 0, (size_t)len);
                if (nul) {
                    me_set_err(err, cap, "%s.%s holds a NUL byte (at byte %zu): names, ids and texts must be "
                               "UTF-8 without NUL", desc->short_name, fd->name, (size_t)(nul - p));
                    return ME_EINVAL;
                }
                if (!me_utf8_valid(p, (size_t)len)) {
                    me_set_err(err, cap, "%s.%s is not valid UTF-8: names, ids and texts must be UTF-8 "
                               "(send binary data as metadata bytes)", desc->short_name, fd->name);
                    return ME_EINVAL;
                }
            } else if (fd && fd->type == PROTOBUF_C_TYPE_MESSAGE) {
                int rc = walk(fd->descriptor, p, p + len, depth + 1, err, cap);
                if (rc) return rc;
            }
            p += len;
            break;
        }
        default: return ME_EPROTO;  /* groups (3, 4) are not proto3; 6, 7 do not exist */
        }
    }
    return 0;
}

int me_check_strings(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len,
                     char *err, size_t cap) {
    if (!len) return 0;  /* an empty message (data may be NULL) */
    int rc = walk(desc, data, data + len, 0, err, cap);
    if (rc == ME_EPROTO) me_set_err(err, cap, "malformed %s (protobuf parse failed)", desc->short_name);
    return rc;
}

/* ---- names and ids ---- */

/* A name that is also a file name: 1..ME_COLL_NAME_MAX of [A-Za-z0-9_.-],
 * not "." or "..". */
static int check_file_name(const char *what, const char *name, char *err, size_t cap) {
    size_t n = name ? strlen(name) : 0;
    int ok = n >= 1 && n <= ME_COLL_NAME_MAX && strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
    for (size_t i = 0; ok && i < n; i++) {
        char ch = name[i];
        ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
             ch == '-' || ch == '.';
    }
    if (ok) return 0;
    me_set_err(err, cap, "%s must be 1..%d characters of A-Z a-z 0-9 _ . - (not '.' or '..'); got %zu bytes", what,
               ME_COLL_NAME_MAX, n);
    return ME_EINVAL;
}

int me_check_collection_name(const char *name, char *err, size_t cap) {
    return check_file_name("collection name", name, err, cap);
}

int me_check_snapshot_id(const char *id, char *err, size_t cap) { return check_file_name("snapshot id", id, err, cap); }

int me_check_field_name(const char *name, size_t n, char *err, size_t cap) {
    int ok = name && n >= 1 && n <= ME_FIELD_NAME_MAX && name[0] != '.' && name[n - 1] != '.';
    for (size_t i = 0; ok && i < n; i++) {
        char ch = name[i];
        ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
             ch == '-' || (ch == '.' && name[i + 1] != '.');
    }
    if (ok) return 0;
    me_set_err(err, cap, "a field name must be 1..%d characters of A-Z a-z 0-9 _ - and '.' between members "
               "(\"a.b\"); got %zu bytes", ME_FIELD_NAME_MAX, name ? n : 0);
    return ME_EINVAL;
}

int me_check_id(const char *id, size_t i, char *err, size_t cap) {
    size_t n = id ? strlen(id) : 0;
    if (n == 0) { me_set_err(err, cap, "document %zu: empty id", i); return ME_EINVAL; }
    if (n > ME_DOC_ID_MAX) {
        me_set_err(err, cap, "document %zu: id of %zu bytes is longer than %d bytes", i, n, ME_DOC_ID_MAX);
        return ME_EINVAL;
    }
    return 0;
}

/* ---- paging ---- */

int me_search_check_page(uint32_t k, uint32_t offset, long long max_k, char *err, size_t cap) {
    unsigned long long ranked = (unsigned long long)k + offset;
    if (k == 0) { me_set_err(err, cap, "k must be at least 1"); return ME_EINVAL; }
    if (ranked > UINT32_MAX) {
        me_set_err(err, cap, "k=%u + offset=%u = %llu is too large", k, offset, ranked);
        return ME_EINVAL;
    }
    if (max_k > 0 && ranked > (unsigned long long)max_k) {
        if (offset)
            me_set_err(err, cap, "k=%u + offset=%u = %llu exceeds the limit of %lld (the shard's --max-k bounds "
                       "k + offset)", k, offset, ranked, max_k);
        else me_set_err(err, cap, "k=%u exceeds the limit of %lld (the shard's --max-k)", k, max_k);
        return ME_EINVAL;
    }
    return 0;
}

/* 1 when text has a word BM25 can match. */
static int has_token(const char *text) {
    char w[ME_BM25_TOKEN_MAX];
    size_t pos = 0;
    return text && me_bm25_token(text, strlen(text), &pos, w) > 0;
}

int me_search_check_mode(const Metaembed__SearchRequest *m, int text_fallback, char *err, size_t cap) {
    if (m->mode != METAEMBED__SEARCH_MODE__SEARCH_MODE_DENSE && m->mode != METAEMBED__SEARCH_MODE__SEARCH_MODE_LEXICAL &&
        m->mode != METAEMBED__SEARCH_MODE__SEARCH_MODE_HYBRID) {
        me_set_err(err, cap, "mode %d is unknown: use dense (0), lexical (1) or hybrid (2)", (int)m->mode);
        return ME_EINVAL;
    }
    if (m->fusion != METAEMBED__FUSION__FUSION_RRF && m->fusion != METAEMBED__FUSION__FUSION_WEIGHTED) {
        me_set_err(err, cap, "fusion %d is unknown: use rrf (0) or weighted (1)", (int)m->fusion);
        return ME_EINVAL;
    }
    if (m->n_alpha > 1) { me_set_err(err, cap, "give at most one alpha, got %zu", m->n_alpha); return ME_EINVAL; }
    /* Written so NaN fails too. */
    if (m->n_alpha && !(m->alpha[0] >= 0.0f && m->alpha[0] <= 1.0f)) {
        me_set_err(err, cap, "alpha=%g must be in [0, 1] (the weight of the dense score)", (double)m->alpha[0]);
        return ME_EINVAL;
    }
    if (m->hybrid_candidates > ME_HYBRID_CANDIDATES_MAX) {
        me_set_err(err, cap, "hybrid_candidates=%u exceeds the limit of %d", m->hybrid_candidates,
                   ME_HYBRID_CANDIDATES_MAX);
        return ME_EINVAL;
    }
    if (m->rrf_k > ME_RRF_K_MAX) {
        me_set_err(err, cap, "rrf_k=%u exceeds the limit of %d", m->rrf_k, ME_RRF_K_MAX);
        return ME_EINVAL;
    }
    if (m->mode == METAEMBED__SEARCH_MODE__SEARCH_MODE_DENSE) return 0;
    const char *text = m->lexical_text && m->lexical_text[0] ? m->lexical_text : text_fallback ? m->text : NULL;
    if (!text || !text[0]) {
        me_set_err(err, cap, "%s search needs the query's text: lexical_text is empty",
                   m->mode == METAEMBED__SEARCH_MODE__SEARCH_MODE_LEXICAL ? "lexical" : "hybrid");
        return ME_EINVAL;
    }
    if (!has_token(text)) {
        me_set_err(err, cap, "lexical text has no word to match (BM25 words are ASCII letters and digits)");
        return ME_EINVAL;
    }
    return 0;
}

int me_search_check_auto(const Metaembed__SearchRequest *m, char *err, size_t cap) {
    if (m->target_ms > ME_TARGET_MS_MAX) {
        me_set_err(err, cap, "target_ms=%u: at most %d", m->target_ms, ME_TARGET_MS_MAX);
        return ME_EINVAL;
    }
    if (m->n_min_budget && !m->target_ms) {
        me_set_err(err, cap, "min_budget goes with target_ms (budget auto)");
        return ME_EINVAL;
    }
    if (m->n_min_budget && (m->n_min_budget != 2 || !m->min_budget[0] || !m->min_budget[1])) {
        me_set_err(err, cap, "min_budget is [r_q, r_c], two counts >= 1 (got %zu values)", m->n_min_budget);
        return ME_EINVAL;
    }
    if (m->target_ms && m->mode == METAEMBED__SEARCH_MODE__SEARCH_MODE_LEXICAL) {
        me_set_err(err, cap, "target_ms picks a budget for dense or hybrid search; lexical search has none");
        return ME_EINVAL;
    }
    return 0;
}

int me_list_ids_check_limit(long long limit, char *err, size_t cap) {
    if (limit >= 1 && limit <= ME_LIST_IDS_MAX) return 0;
    me_set_err(err, cap, "limit=%lld: ids per page must be 1..%d", limit, ME_LIST_IDS_MAX);
    return ME_EINVAL;
}

int me_list_ids_check(const char *after, uint32_t wire_limit, uint32_t *limit, char *err, size_t cap) {
    size_t n = after ? strlen(after) : 0;
    if (n > ME_DOC_ID_MAX) {
        me_set_err(err, cap, "after: a cursor of %zu bytes is longer than any id (%d bytes)", n, ME_DOC_ID_MAX);
        return ME_EINVAL;
    }
    *limit = wire_limit ? wire_limit : ME_LIST_IDS_DEFAULT;
    return me_list_ids_check_limit(*limit, err, cap);
}

/* ---- tensors and documents ---- */

int me_tensor_view(const Metaembed__Tensor *t, const char *what, int max_rows, int dim,
                   me_tensor_view_t *v, char *err, size_t cap) {
    if (!t) { me_set_err(err, cap, "%s: no vectors given", what); return ME_EINVAL; }
    if (t->dtype != METAEMBED__DTYPE__DTYPE_F32 && t->dtype != METAEMBED__DTYPE__DTYPE_F16) {
        me_set_err(err, cap, "%s: dtype must be f32 or f16", what);
        return ME_EINVAL;
    }
    uint64_t rows, d;
    if (t->n_shape == 2) { rows = t->shape[0]; d = t->shape[1]; }
    else if (t->n_shape == 1) { rows = 1; d = t->shape[0]; }
    else {
        me_set_err(err, cap, "%s: shape must be [rows, dim], got %zu dimensions", what, t->n_shape);
        return ME_EINVAL;
    }
    if (dim > 0 && d != (uint64_t)dim) {
        me_set_err(err, cap, "%s: dim %llu does not match the collection's dim %d", what, (unsigned long long)d, dim);
        return ME_EINVAL;
    }
    if (d < 1 || d > ME_DIM_MAX) {
        me_set_err(err, cap, "%s: dim %llu, must be 1..%d", what, (unsigned long long)d, ME_DIM_MAX);
        return ME_EINVAL;
    }
    if (rows < 1 || rows > (uint64_t)max_rows) {
        me_set_err(err, cap, "%s: %llu vectors, must be 1..%d", what, (unsigned long long)rows, max_rows);
        return ME_EINVAL;
    }
    /* Both factors are bounded above, but the rule is: no size from the
     * wire is multiplied unchecked. */
    uint64_t esz = t->dtype == METAEMBED__DTYPE__DTYPE_F32 ? 4 : 2, want;
    if (__builtin_mul_overflow(rows, d, &want) || __builtin_mul_overflow(want, esz, &want) || t->data.len != want) {
        me_set_err(err, cap, "%s: %zu data bytes do not match shape [%llu, %llu] of %s", what, t->data.len,
                   (unsigned long long)rows, (unsigned long long)d, esz == 4 ? "f32" : "f16");
        return ME_EINVAL;
    }
    v->dtype = esz == 4 ? ME_DTYPE_F32 : ME_DTYPE_F16;
    v->rows = (int)rows;
    v->dim = (int)d;
    v->data = t->data.data;
    return 0;
}

int me_tensor_convert(const me_tensor_view_t *v, int rows, me_dtype_t dtype, void *out, float *scales,
                      const char *what, char *err, size_t cap) {
    int bad_row = 0, bad_kind = 0;
    int rc = me_rows_to_storage(dtype, v->dim, rows, v->data, v->dtype, out, scales, &bad_row, &bad_kind);
    if (rc == ME_ENOMEM) me_set_err(err, cap, "out of memory");
    else if (rc)
        me_set_err(err, cap, "%s: vector %d %s", what, bad_row,
                   bad_kind == ME_BAD_ZERO_NORM ? "has zero norm"
                                                : "holds NaN or Inf (or a value beyond the storage dtype's range)");
    return rc;
}

int me_document_check(const Metaembed__Document *d, size_t i, int max_rows, int dim, me_tensor_view_t *v,
                      char *what, char *err, size_t cap) {
    int rc = me_check_id(d->id, i, err, cap);
    if (rc) return rc;
    snprintf(what, ME_WHAT_MAX, "document %zu ('%s')", i, d->id);
    if (d->metadata.len > ME_METADATA_MAX) {
        me_set_err(err, cap, "%s: %zu metadata bytes exceed the limit of %d; store large payloads elsewhere "
                   "and keep a reference", what, d->metadata.len, ME_METADATA_MAX);
        return ME_ETOOBIG;
    }
    return me_tensor_view(d->vectors, what, max_rows, dim, v, err, cap);
}

/* ---- duplicates ---- */

long me_ids_dedupe(char **ids, size_t n) {
    if (n < 2) return (long)n;
    size_t cap = 1;
    while (cap < 2 * n) cap <<= 1;
    size_t *table = malloc(cap * sizeof *table);  /* index + 1; 0 = empty */
    if (!table) return ME_ENOMEM;
    memset(table, 0, cap * sizeof *table);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(ids[i]), h = (size_t)me_hash64(ids[i], len) & (cap - 1);
        int dup = 0;
        for (; table[h]; h = (h + 1) & (cap - 1))
            if (strcmp(ids[table[h] - 1], ids[i]) == 0) { dup = 1; break; }
        if (dup) continue;
        ids[kept] = ids[i];
        table[h] = ++kept;
    }
    free(table);
    return (long)kept;
}

/* A protocol enum's value from its name, and back: names[i] is value i. */
static int enum_from_name(const char *const *names, int n, const char *name) {
    for (int i = 0; name && i < n; i++)
        if (!strcmp(name, names[i])) return i;
    return -1;
}

static const char *enum_name(const char *const *names, int n, int v) { return v >= 0 && v < n ? names[v] : "?"; }

static const char *const durability_names[] = { "default", "none", "group", "every_write" };
static const char *const coarse_index_names[] = { "flat", "ivf" };
#define NAMES_N(a) ((int)(sizeof a / sizeof a[0]))

int me_durability_from_name(const char *name) {
    return enum_from_name(durability_names, NAMES_N(durability_names), name);
}
const char *me_durability_name(int d) { return enum_name(durability_names, NAMES_N(durability_names), d); }
int me_coarse_index_from_name(const char *name) {
    return enum_from_name(coarse_index_names, NAMES_N(coarse_index_names), name);
}
const char *me_coarse_index_name(int c) { return enum_name(coarse_index_names, NAMES_N(coarse_index_names), c); }
