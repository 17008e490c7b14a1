/* The HTTP/JSON API (coordinator/http_api.h): JSON in, the protocol's
 * request through the coordinator's own endpoint, JSON out. */
#include "coordinator/http_api.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/dtype.h"
#include "common/error.h"
#include "common/filter_parse.h"
#include "common/json.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/payload.h"
#include "common/validate.h"
#include "common/wire.h"
#include "coordinator/coordinator.h"
#include "coordinator/web.h"
#include "include/metaembed.h"

/* docs/openapi.json, embedded at build time (coordinator/openapi.c). */
extern const char me_openapi_json[];
extern const char me_openapi_json_end[];

/* X-Timeout-Ms and timeout_ms take what --deadline-ms takes. */
#define TIMEOUT_MAX_MS 3600000

int me_coord_http_status(int code) {
    switch (code) {
    case ME_CODE_OK: return 200;
    case ME_CODE_CANCELLED: return 499;
    case ME_CODE_INVALID_ARGUMENT: return 400;
    case ME_CODE_FAILED_PRECONDITION: return 400;
    case ME_CODE_OUT_OF_RANGE: return 400;
    case ME_CODE_DEADLINE_EXCEEDED: return 504;
    case ME_CODE_NOT_FOUND: return 404;
    case ME_CODE_ALREADY_EXISTS: return 409;
    case ME_CODE_ABORTED: return 409;
    case ME_CODE_PERMISSION_DENIED: return 403;
    case ME_CODE_UNAUTHENTICATED: return 401;
    case ME_CODE_RESOURCE_EXHAUSTED: return 413;
    case ME_CODE_UNIMPLEMENTED: return 501;
    case ME_CODE_UNAVAILABLE: return 503;
    default: return 500;  /* UNKNOWN, INTERNAL, DATA_LOSS */
    }
}

/* ---- one request ---- */

typedef struct {
    me_coord_t *co;
    const me_http_request_t *req;
    me_buf_t *body;
    const char **ctype;
    char *coll;               /* the path's {name} or {id} (malloc'd), or NULL */
    me_json_doc_t *doc;       /* the parsed request body */
    const me_json_t *in;      /* its root object (NULL when no body) */
    me_client_t *c;
    int timeout_ms;
} api_t;

static int reply(api_t *a, me_json_writer_t *w, int status) {
    size_t len;
    char *s = me_json_writer_take(w, &len);
    me_json_writer_free(w);
    *a->ctype = "application/json";
    if (!s) {
        me_buf_printf(a->body, "{\"code\":\"RESOURCE_EXHAUSTED\",\"message\":\"out of memory writing the reply\"}\n");
        return 500;
    }
    me_buf_printf(a->body, "%s\n", s);
    free(s);
    return status;
}

static int fail(api_t *a, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(api_t *a, int code, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    me_utf8_clip(msg);
    me_json_writer_t w;
    me_json_writer_init_buf(&w);
    me_json_obj_begin(&w, NULL);
    me_json_put_str(&w, "code", me_status_name(code));
    me_json_put_str(&w, "message", msg);
    me_json_obj_end(&w);
    return reply(a, &w, me_coord_http_status(code));
}

/* A call's status as the error reply; the client prefixes its message
 * with the code's name, which the "code" member already says. */
static int fail_status(api_t *a, const me_status_t *st) {
    const char *msg = st->message, *name = me_status_name(st->code);
    size_t n = strlen(name);
    if (!strncmp(msg, name, n) && !strncmp(msg + n, ": ", 2)) msg += n + 2;
    return fail(a, st->code ? st->code : ME_CODE_INTERNAL, "%s", msg);
}

#define BAD(a, ...) fail((a), ME_CODE_INVALID_ARGUMENT, __VA_ARGS__)

/* ---- reading the request's JSON: only what JSON cannot say ---- */

/* Refuses members the route does not know (a misspelt "budegt" would
 * otherwise be ignored without a word). allowed: NULL-terminated. */
static int check_members(api_t *a, const me_json_t *obj, const char *what, const char *const *allowed) {
    for (size_t i = 0; obj && i < obj->len; i++) {
        const char *key = obj->u.members[i].key;
        int ok = 0;
        for (int k = 0; allowed[k] && !ok; k++) ok = !strcmp(key, allowed[k]);
        if (!ok) {
            char list[512] = "";
            for (int k = 0; allowed[k]; k++)
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", k ? ", " : "", allowed[k]);
            return BAD(a, "%s has no member '%.64s' (it takes: %s)", what, key, list);
        }
    }
    return 0;
}

/* A string member as a C string: 0 (and *out NULL when absent and not
 * required), or the error reply. protobuf-c sends a string up to its first
 * NUL, so a NUL inside would silently cut it: refused here. */
static int get_str(api_t *a, const me_json_t *obj, const char *key, int required, const char **out) {
    const me_json_t *v = me_json_get(obj, key);
    *out = NULL;
    if (!v || v->type == ME_JSON_NULL) return required ? BAD(a, "give \"%s\" (a string)", key) : 0;
    if (v->type != ME_JSON_STRING) return BAD(a, "\"%s\" must be a string", key);
    if (strlen(v->u.str) != v->len) return BAD(a, "\"%s\" holds a NUL character (\\u0000)", key);
    *out = v->u.str;
    return 0;
}

/* An integer member that fits the wire's uint32 field (its limits are the
 * server's). *out keeps its default when absent. */
static int get_u32(api_t *a, const me_json_t *obj, const char *key, uint32_t *out) {
    const me_json_t *v = me_json_get(obj, key);
    if (!v || v->type == ME_JSON_NULL) return 0;
    int64_t x;
    if (me_json_int64(v, &x) != 0 || x < 0 || x > UINT32_MAX)
        return BAD(a, "\"%s\" must be a whole number from 0 to %u", key, UINT32_MAX);
    *out = (uint32_t)x;
    return 0;
}

static int get_bool(api_t *a, const me_json_t *obj, const char *key, int *out) {
    const me_json_t *v = me_json_get(obj, key);
    if (!v || v->type == ME_JSON_NULL) return 0;
    if (me_json_bool(v, out) != 0) return BAD(a, "\"%s\" must be true or false", key);
    return 0;
}

/* An array of id strings (ids[i] point into the document). */
static int get_ids(api_t *a, const me_json_t *obj, char ***ids, size_t *n) {
    const me_json_t *v = me_json_get(obj, "ids");
    *ids = NULL;
    *n = 0;
    if (!v || v->type != ME_JSON_ARRAY) return BAD(a, "give \"ids\": an array of document ids (strings)");
    *ids = calloc(v->len ? v->len : 1, sizeof **ids);
    if (!*ids) return fail(a, ME_CODE_RESOURCE_EXHAUSTED, "out of memory");
    for (size_t i = 0; i < v->len; i++) {
        const me_json_t *s = &v->u.items[i];
        if (s->type != ME_JSON_STRING) return BAD(a, "ids[%zu] must be a string", i);
        if (strlen(s->u.str) != s->len) return BAD(a, "ids[%zu] holds a NUL character (\\u0000)", i);
        (*ids)[i] = (char *)s->u.str;
    }
    *n = v->len;
    return 0;
}

/* "filter": a JSON filter object, or an expression string (the CLI's
 * --filter). *f NULL when absent; free with me_filter_free. */
static int get_filter(api_t *a, const me_json_t *obj, Metaembed__Filter **f) {
    const me_json_t *v = me_json_get(obj, "filter");
    *f = NULL;
    if (!v || v->type == ME_JSON_NULL) return 0;
    char err[512];
    int rc;
    if (v->type == ME_JSON_STRING) {
        if (strlen(v->u.str) != v->len) return BAD(a, "\"filter\" holds a NUL character (\\u0000)");
        rc = me_filter_parse(v->u.str, v->len, f, err, sizeof err);
    } else if (v->type == ME_JSON_OBJECT) {
        rc = me_filter_from_json(v, f, err, sizeof err);
    } else {
        return BAD(a, "\"filter\" is an object ({\"must\": [...]}) or an expression string (\"year>=2020\")");
    }
    if (rc == ME_ENOMEM) return fail(a, ME_CODE_RESOURCE_EXHAUSTED, "out of memory");
    return rc ? BAD(a, "%s", err) : 0;
}

/* "fields": {"NAME": "TYPE", ...} as specs (the text form's one parser). */
static int get_fields(api_t *a, const me_json_t *obj, me_field_spec_t *f, int *n) {
    const me_json_t *v = me_json_get(obj, "fields");
    *n = 0;
    if (!v || v->type == ME_JSON_NULL) return 0;
    if (v->type != ME_JSON_OBJECT)
        return BAD(a, "\"fields\" is an object of NAME: TYPE (keyword, integer, float or bool), "
                      "e.g. {\"section\": \"keyword\", \"year\": \"integer\"}");
    char text[ME_FIELDS_MAX * (ME_FIELD_NAME_MAX + 12) + 64] = "", err[256];
    if (v->len > ME_FIELDS_MAX) return BAD(a, "\"fields\": at most %d indexed fields per collection", ME_FIELDS_MAX);
    for (size_t i = 0; i < v->len; i++) {
        const me_json_member_t *m = &v->u.members[i];
        if (m->value.type != ME_JSON_STRING || m->value.len > 10 || m->key_len > ME_FIELD_NAME_MAX ||
            strchr(m->key, ',') || strchr(m->key, ':') || strlen(m->key) != m->key_len)
            return BAD(a, "\"fields\".%.64s: give a field name (A-Z a-z 0-9 _ - .) and its type as a string "
                          "(keyword, integer, float or bool)", m->key);
        snprintf(text + strlen(text), sizeof text - strlen(text), "%s%s:%s", i ? "," : "", m->key, m->value.u.str);
    }
    if (me_field_specs_parse(text, f, n, err, sizeof err) != 0) return BAD(a, "\"fields\": %s", err);
    return 0;
}

/* RFC 4648 base64 (standard alphabet, padding optional) into a new buffer.
 * 0, or -1 when it is not base64 (or out of memory: *out NULL, *len 1). */
static int base64_decode(const char *s, size_t n, uint8_t **out, size_t *len) {
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    *out = NULL;
    *len = 0;
    while (n && s[n - 1] == '=') n--;
    if (n % 4 == 1) return -1;
    uint8_t *o = malloc(n / 4 * 3 + 3);
    if (!o) { *len = 1; return -1; }
    uint32_t acc = 0;
    size_t k = 0, bits = 0;
    for (size_t i = 0; i < n; i++) {
        const char *p = s[i] ? strchr(alphabet, s[i]) : NULL;
        if (!p) { free(o); return -1; }
        acc = acc << 6 | (uint32_t)(p - alphabet);
        if ((bits += 6) >= 8) {
            bits -= 8;
            o[k++] = (uint8_t)(acc >> bits);
        }
    }
    *out = o;
    *len = k;
    return 0;
}

/* The bytes of a base64 member (an image): *out malloc'd (NULL when absent). */
static int get_b64(api_t *a, const me_json_t *obj, const char *key, uint8_t **out, size_t *len) {
    const me_json_t *v = me_json_get(obj, key);
    *out = NULL;
    *len = 0;
    if (!v || v->type == ME_JSON_NULL) return 0;
    if (v->type != ME_JSON_STRING) return BAD(a, "\"%s\" must be a base64 string", key);
    if (base64_decode(v->u.str, v->len, out, len) != 0)
        return *len ? fail(a, ME_CODE_RESOURCE_EXHAUSTED, "out of memory")
                    : BAD(a, "\"%s\" is not base64 (RFC 4648, standard alphabet)", key);
    return 0;
}

/* A tensor being built from JSON: the message plus the storage it points at. */
typedef struct {
    Metaembed__Tensor t;
    uint32_t shape[2];
    uint8_t *data;            /* owned */
} tensor_t;

/* A JSON number as a float; beyond float's range it is ±Inf (converting
 * such a double is undefined behaviour), which the server refuses by name. */
static float to_f32(double x) {
    if (x > FLT_MAX) return INFINITY;
    if (x < -FLT_MAX) return -INFINITY;
    return (float)x;
}

/* "vectors" as nested arrays ([R][D] numbers, or [D] for one row) or as
 * {"dtype": "f32"|"f16", "shape": [R, D], "data": base64 little-endian}.
 * Only the JSON's own shape is checked (a ragged array is no tensor); rows,
 * dims, byte counts and values are the server's to check. */
static int get_tensor(api_t *a, const me_json_t *v, const char *what, tensor_t *out) {
    memset(out, 0, sizeof *out);
    metaembed__tensor__init(&out->t);
    out->t.shape = out->shape;
    out->t.n_shape = 2;
    if (!v) return BAD(a, "give %s: an array of vectors [[x, ...], ...] or {\"dtype\", \"shape\", \"data\"}", what);
    if (v->type == ME_JSON_OBJECT) {
        static const char *const keys[] = { "dtype", "shape", "data", NULL };
        int rc;
        if ((rc = check_members(a, v, what, keys)) != 0) return rc;
        const char *dt = me_json_str(me_json_get(v, "dtype"));
        me_dtype_t d = dt ? me_dtype_from_name(dt) : ME_DTYPE_F32;
        if (!d || d == ME_DTYPE_INT8) return BAD(a, "%s: dtype is \"f32\" or \"f16\"", what);
        const me_json_t *sh = me_json_get(v, "shape"), *data = me_json_get(v, "data");
        if (!sh || sh->type != ME_JSON_ARRAY || sh->len != 2) return BAD(a, "%s: shape is [rows, dim]", what);
        for (int i = 0; i < 2; i++) {
            int64_t x;
            if (me_json_int64(&sh->u.items[i], &x) != 0 || x < 0 || x > UINT32_MAX)
                return BAD(a, "%s: shape is [rows, dim] (whole numbers)", what);
            out->shape[i] = (uint32_t)x;
        }
        if (!data || data->type != ME_JSON_STRING) return BAD(a, "%s: data is a base64 string", what);
        size_t len;
        if (base64_decode(data->u.str, data->len, &out->data, &len) != 0)
            return len ? fail(a, ME_CODE_RESOURCE_EXHAUSTED, "out of memory") : BAD(a, "%s: data is not base64", what);
        out->t.dtype = (Metaembed__DType)d;
        out->t.data.data = out->data;
        out->t.data.len = len;
        return 0;
    }
    if (v->type != ME_JSON_ARRAY) return BAD(a, "%s must be an array of vectors or a {dtype, shape, data} object", what);
    /* [D] is one row; [[...], ...] is R rows of the same length. */
    int flat = v->len && v->u.items[0].type != ME_JSON_ARRAY;
    size_t rows = flat ? 1 : v->len, dim = flat ? v->len : (v->len ? v->u.items[0].len : 0);
    if (rows > UINT32_MAX || dim > UINT32_MAX) return BAD(a, "%s has too many numbers", what);
    out->data = malloc(rows * dim * 4 + 1);  /* bounded: the body is at most ME_HTTP_MAX_BODY */
    if (!out->data) return fail(a, ME_CODE_RESOURCE_EXHAUSTED, "out of memory");
    float *f = (float *)(void *)out->data;
    for (size_t r = 0; r < rows; r++) {
        const me_json_t *row = flat ? v : &v->u.items[r];
        if (row->type != ME_JSON_ARRAY) return BAD(a, "%s[%zu] must be an array of numbers", what, r);
        if (row->len != dim) return BAD(a, "%s: row %zu has %zu numbers, row 0 has %zu", what, r, row->len, dim);
        for (size_t j = 0; j < dim; j++) {
            double x;
            if (me_json_num(&row->u.items[j], &x) == ME_EINVAL)
                return BAD(a, "%s: row %zu, element %zu is not a number", what, r, j);
            f[r * dim + j] = to_f32(x);
        }
    }
    out->shape[0] = (uint32_t)rows;
    out->shape[1] = (uint32_t)dim;
    out->t.dtype = METAEMBED__DTYPE__DTYPE_F32;
    out->t.data.data = out->data;
    out->t.data.len = rows * dim * 4;
    return 0;
}

/* 1 when a key anywhere in v holds a NUL (the writer takes keys as C
 * strings, so it would cut them). */
static int nul_key(const me_json_t *v) {
    if (v->type == ME_JSON_ARRAY)
        for (size_t i = 0; i < v->len; i++)
            if (nul_key(&v->u.items[i])) return 1;
    if (v->type == ME_JSON_OBJECT)
        for (size_t i = 0; i < v->len; i++)
            if (strlen(v->u.members[i].key) != v->u.members[i].key_len || nul_key(&v->u.members[i].value)) return 1;
    return 0;
}

/* "metadata": an object, stored as its JSON text (*out malloc'd). */
static int get_metadata(api_t *a, const me_json_t *obj, const char *what, char **out, size_t *len) {
    const me_json_t *v = me_json_get(obj, "metadata");
    *out = NULL;
    *len = 0;
    if (!v || v->type == ME_JSON_NULL) return 0;
    if (v->type != ME_JSON_OBJECT) return BAD(a, "%s: metadata must be a JSON object", what);
    if (nul_key(v)) return BAD(a, "%s: a metadata key holds a NUL character (\\u0000)", what);
    me_json_writer_t w;
    me_json_writer_init_buf(&w);
    me_json_put_value(&w, NULL, v);  /* from the DOM: a \u0000 stays escaped */
    *out = me_json_writer_take(&w, len);
    me_json_writer_free(&w);
    return *out ? 0 : fail(a, ME_CODE_RESOURCE_EXHAUSTED, "out of memory");
}

/* ---- calls through the coordinator's own endpoint ---- */

/* Sends msg as `method`; *rep (malloc'd) gets the reply payload. 0, or
 * the error reply already written (its HTTP status in *status). */
static int call(api_t *a, int method, const ProtobufCMessage *msg, void **rep, size_t *rep_len, int *status) {
    size_t len;
    uint8_t *buf = me_wire_pack(msg, &len);
    me_status_t st;
    if (!buf) { *status = fail(a, ME_CODE_RESOURCE_EXHAUSTED, "out of memory"); return -1; }
    int rc = me_client_call(a->c, method, buf, len, rep, rep_len, &st);
    free(buf);
    if (rc) {
        free(*rep);
        *rep = NULL;
        *status = fail_status(a, &st);
        return -1;
    }
    return 0;
}

/* ---- writing replies ---- */

static void put_config(me_json_writer_t *w, const Metaembed__CollectionConfig *c) {
    me_json_put_str(w, "name", c->name);
    me_json_put_u64(w, "dim", c->dim);
    me_json_put_u64(w, "r_c", c->max_doc_vectors);
    me_json_put_u64(w, "r_q", c->max_query_vectors);
    me_json_put_str(w, "dtype", me_dtype_name((me_dtype_t)c->dtype));
    me_json_put_u64(w, "ram_vectors", c->ram_vectors);
    me_json_put_u64(w, "coarse_vectors", c->coarse_vectors);
    me_json_put_str(w, "durability", me_durability_name((int)c->durability));
    me_json_put_str(w, "coarse_index", me_coarse_index_name((int)c->coarse_index));
    me_json_put_u64(w, "ivf_lists", c->ivf_lists);
    me_json_put_u64(w, "ivf_probe", c->ivf_probe);
    me_json_put_bool(w, "binary_coarse", c->binary_coarse);
    me_json_obj_begin(w, "fields");
    for (size_t i = 0; i < c->n_fields; i++) me_json_put_str(w, c->fields[i]->name, me_field_type_name(c->fields[i]->type));
    me_json_obj_end(w);
}

/* A collection info's "NAME:TYPE,..." as the object {"NAME": "TYPE"}. */
static void put_fields_text(me_json_writer_t *w, const char *text) {
    me_field_spec_t f[ME_FIELDS_MAX];
    int n = 0;
    char err[128];
    if (me_field_specs_parse(text, f, &n, err, sizeof err) != 0) n = 0;
    me_json_obj_begin(w, "fields");
    for (int i = 0; i < n; i++) me_json_put_str(w, f[i].name, me_field_type_name(f[i].type));
    me_json_obj_end(w);
}

static void put_info(me_json_writer_t *w, const me_collection_info_t *ci) {
    me_json_obj_begin(w, NULL);
    me_json_put_str(w, "name", ci->name);
    me_json_put_int(w, "dim", ci->dim);
    me_json_put_int(w, "r_c", ci->max_doc_vectors);
    me_json_put_int(w, "r_q", ci->max_query_vectors);
    me_json_put_str(w, "dtype", ci->dtype);
    me_json_put_int(w, "ram_vectors", ci->ram_vectors);
    me_json_put_int(w, "coarse_vectors", ci->coarse_vectors);
    me_json_put_str(w, "coarse_index", ci->coarse_index);
    me_json_put_int(w, "ivf_lists", ci->ivf_lists);
    me_json_put_int(w, "ivf_probe", ci->ivf_probe);
    me_json_put_bool(w, "binary_coarse", ci->binary_coarse);
    me_json_put_u64(w, "documents", ci->documents);
    me_json_put_u64(w, "ram_bytes", ci->ram_bytes);
    me_json_put_u64(w, "index_bytes", ci->index_bytes);
    put_fields_text(w, ci->fields);
    me_json_obj_end(w);
}

/* Stored metadata is JSON by convention: passed through when it is, else
 * as a string (invalid UTF-8 shown as U+FFFD by the writer). */
static void put_metadata(me_json_writer_t *w, const ProtobufCBinaryData *m) {
    if (!m->len) return;
    if (me_json_valid((const char *)m->data, m->len)) me_json_put_raw(w, "metadata", (const char *)m->data, m->len);
    else me_json_put_strn(w, "metadata", (const char *)m->data, m->len);
}

/* A stored tensor as nested arrays of numbers (%.9g reads back as the same float). */
static void put_vectors(me_json_writer_t *w, const Metaembed__Tensor *t) {
    me_tensor_view_t v;
    char err[256];
    if (!t || t->n_shape != 2 || me_tensor_view(t, "reply", ME_ROWS_MAX, 0, &v, err, sizeof err) != 0) return;
    float *row = malloc((size_t)v.dim * sizeof *row);
    if (!row) return;
    size_t bytes = (size_t)v.dim * me_dtype_size(v.dtype);
    me_json_arr_begin(w, "vectors");
    for (int r = 0; r < v.rows; r++) {
        me_row_to_f32(row, v.data + (size_t)r * bytes, v.dtype, 1.0f, (size_t)v.dim);
        me_json_arr_begin(w, NULL);
        for (int j = 0; j < v.dim; j++) me_json_put_num_prec(w, NULL, row[j], 9);
        me_json_arr_end(w);
    }
    me_json_arr_end(w);
    free(row);
}

/* ---- the routes ---- */

static int r_health(api_t *a) {
    me_status_t st;
    int rc = me_client_health(a->c, &st);
    if (rc) return fail_status(a, &st);
    char why[256] = "";
    int ready = me_coord_ready(a->co, why, sizeof why);
    me_json_writer_t w;
    me_json_writer_init_buf(&w);
    me_json_obj_begin(&w, NULL);
    me_json_put_bool(&w, "serving", 1);
    me_json_put_bool(&w, "ready", ready);
    if (!ready) me_json_put_str(&w, "reason", why);
    me_json_put_str(&w, "role", "coordinator");
    me_json_put_str(&w, "version", ME_VERSION);
    me_json_put_u64(&w, "uptime_ms", me_now_ms() - a->co->start_ms);
    me_json_obj_end(&w);
    return reply(a, &w, 200);
}

static int r_status(api_t *a) {
    me_stats_t s;
    me_status_t st;
    if (me_client_stats(a->c, NULL, &s, &st) != 0) return fail_status(a, &st);
    char why[256] = "";
    int ready = me_coord_ready(a->co, why, sizeof why);
    me_json_writer_t w;
    me_json_writer_init_buf(&w);
    me_json_obj_begin(&w, NULL);
    me_json_put_str(&w, "role", s.role);
    me_json_put_str(&w, "version", ME_VERSION);
    me_json_put_bool(&w, "ready", ready);
    if (!ready) me_json_put_str(&w, "reason", why);
    me_json_put_u64(&w, "uptime_ms", s.uptime_ms);
    me_json_put_u64(&w, "requests", s.requests);
    me_json_put_u64(&w, "errors", s.errors);
    me_json_arr_begin(&w, "groups");
    for (size_t g = 0; g < s.n_groups; g++) {
        me_json_obj_begin(&w, NULL);
        me_json_put_str(&w, "name", s.groups[g].name);
        me_json_arr_begin(&w, "replicas");
        for (size_t r = 0; r < s.groups[g].n_replicas; r++) {
            const me_replica_info_t *ri = &s.groups[g].replicas[r];
            me_json_obj_begin(&w, NULL);
            me_json_put_str(&w, "endpoint", ri->endpoint);
            me_json_put_bool(&w, "up", ri->up);
            me_json_put_u64(&w, "documents", ri->documents);
            me_json_put_num_prec(&w, "latency_ms", ri->latency_ms, 4);
            me_json_put_int(&w, "liveness", ri->liveness);
            me_json_obj_end(&w);
        }
        me_json_arr_end(&w);
        me_json_obj_end(&w);
    }
    me_json_arr_end(&w);
    me_json_arr_begin(&w, "collections");
    for (size_t i = 0; i < s.n_collections; i++) put_info(&w, &s.collections[i]);
    me_json_arr_end(&w);
    me_json_obj_end(&w);
    me_stats_free(&s);
    return reply(a, &w, 200);
}

static int r_list(api_t *a) {
    me_collection_info_t *ci = NULL;
    size_t n = 0;
    me_status_t st;
    if (me_client_list_collections(a->c, &ci, &n, &st) != 0) return fail_status(a, &st);
    me_json_writer_t w;
    me_json_writer_init_buf(&w);
    me_json_obj_begin(&w, NULL);
    me_json_arr_begin(&w, "collections");
    for (size_t i = 0; i < n; i++) put_info(&w, &ci[i]);
    me_json_arr_end(&w);
    me_json_obj_end(&w);
    free(ci);
    return reply(a, &w, 200);
}

/* The encoders' shape, D, R_c (document side) and R_q (query side), from
 * one Encode each way: the default for a collection made for text ingest. */
static int encoder_shape(api_t *a, uint32_t *dim, uint32_t *r_c, uint32_t *r_q) {
    const char *texts[1] = { "shape" };
    for (int side = 0; side < 2; side++) {
        float *v = NULL;
        int rows = 0, d = 0;
        me_status_t st;
        if (me_client_encode(a->c, texts, 1, side, &v, &rows, &d, &st) != 0) {
            char msg[600];
            snprintf(msg, sizeof msg, "%s", st.message);
            snprintf(st.message, sizeof st.message,
                     "no \"dim\" given and the encoders' shape is unknown (%.400s); give dim, r_c and r_q", msg);
            return fail_status(a, &st);
        }
        free(v);
        *dim = (uint32_t)d;
        *(side ? r_q : r_c) = (uint32_t)rows;
    }
    return 0;
}

static int r_create(api_t *a) {
    static const char *const keys[] = { "name", "dim", "r_c", "r_q", "dtype", "ram_vectors", "coarse_vectors",
                                        "fields", "durability", "coarse_index", "ivf_lists", "ivf_probe",
                                        "binary_coarse", NULL };
    Metaembed__CollectionConfig cfg = METAEMBED__COLLECTION_CONFIG__INIT;
    const char *name, *dtype, *durability, *coarse_index;
    me_field_spec_t fields[ME_FIELDS_MAX];
    Metaembed__FieldSpec fs[ME_FIELDS_MAX], *fsp[ME_FIELDS_MAX];
    int rc, nfields = 0, binary_coarse = 0;
    if ((rc = check_members(a, a->in, "the collection", keys)) != 0 ||
        (rc = get_str(a, a->in, "name", 1, &name)) != 0 || (rc = get_str(a, a->in, "dtype", 0, &dtype)) != 0 ||
        (rc = get_str(a, a->in, "durability", 0, &durability)) != 0 ||
        (rc = get_str(a, a->in, "coarse_index", 0, &coarse_index)) != 0 ||
        (rc = get_u32(a, a->in, "ivf_lists", &cfg.ivf_lists)) != 0 ||
        (rc = get_u32(a, a->in, "ivf_probe", &cfg.ivf_probe)) != 0 ||
        (rc = get_bool(a, a->in, "binary_coarse", &binary_coarse)) != 0 ||
        (rc = get_u32(a, a->in, "dim", &cfg.dim)) != 0 || (rc = get_u32(a, a->in, "r_c", &cfg.max_doc_vectors)) != 0 ||
        (rc = get_u32(a, a->in, "r_q", &cfg.max_query_vectors)) != 0 ||
        (rc = get_u32(a, a->in, "ram_vectors", &cfg.ram_vectors)) != 0 ||
        (rc = get_u32(a, a->in, "coarse_vectors", &cfg.coarse_vectors)) != 0 ||
        (rc = get_fields(a, a->in, fields, &nfields)) != 0)
        return rc;
    cfg.name = (char *)name;
    cfg.binary_coarse = binary_coarse != 0;
    me_field_specs_to_proto(fields, nfields, fs, fsp);
    cfg.fields = fsp;
    cfg.n_fields = (size_t)nfields;
    if (dtype) {
        me_dtype_t dt = me_dtype_from_name(dtype);
        if (!dt) return BAD(a, "dtype '%.32s' is not f32, f16 or int8", dtype);
        cfg.dtype = (Metaembed__DType)dt;
    }
    if (durability) {
        int d = me_durability_from_name(durability);
        if (d < 0) return BAD(a, "durability '%.32s' is not one of " ME_DURABILITY_CHOICES, durability);
        cfg.durability = (Metaembed__Durability)d;
    }
    if (coarse_index) {
        int ci = me_coarse_index_from_name(coarse_index);
        if (ci < 0) return BAD(a, "coarse_index '%.32s' is not one of " ME_COARSE_INDEX_CHOICES, coarse_index);
        cfg.coarse_index = (Metaembed__CoarseIndex)ci;
    }
    /* No dim: the collection is for the cluster's encoders (text ingest). */
    if (!me_json_get(a->in, "dim") && a->co->cluster.encoder_group >= 0) {
        uint32_t d = 0, rcv = 0, rqv = 0;
        if ((rc = encoder_shape(a, &d, &rcv, &rqv)) != 0) return rc;
        cfg.dim = d;
        if (!me_json_get(a->in, "r_c")) cfg.max_doc_vectors = rcv;
        if (!me_json_get(a->in, "r_q")) cfg.max_query_vectors = rqv;
    }
    Metaembed__CreateCollectionRequest req = METAEMBED__CREATE_COLLECTION_REQUEST__INIT;
    req.config = &cfg;
    void *rep = NULL;
    size_t len = 0;
    int status;
    if (call(a, METAEMBED__METHOD__METHOD_CREATE_COLLECTION, &req.base, &rep, &len, &status) != 0) return status;
    Metaembed__CreateCollectionReply *m = metaembed__create_collection_reply__unpack(NULL, len, rep);
    free(rep);
    if (!m || !m->config) {
        if (m) metaembed__create_collection_reply__free_unpacked(m, NULL);
        return fail(a, ME_CODE_INTERNAL, "malformed CreateCollection reply");
    }
    me_json_writer_t w;
    me_json_writer_init_buf(&w);
    me_json_obj_begin(&w, NULL);
    put_config(&w, m->config);
    me_json_obj_end(&w);
    metaembed__create_collection_reply__free_unpacked(m, NULL);
    return reply(a, &w, 201);
}

static int r_info(api_t *a) {
    me_stats_t s;
    me_status_t st;
    if (me_client_stats(a->c, a->coll, &s, &st) != 0) return fail_status(a, &st);
    me_json_writer_t w;
    me_json_writer_init_buf(&w);
    int found = 0;
    for (size_t i = 0; i < s.n_collections && !found; i++)
        if (!strcmp(s.collections[i].name, a->coll)) {
            put_info(&w, &s.collections[i]);
            found = 1;
        }
    me_stats_free(&s);
    if (!found) {
        me_json_writer_free(&w);
        return fail(a, ME_CODE_NOT_FOUND, ME_NO_COLLECTION " (GET /v1/collections lists them)", a->coll);
    }
    return reply(a, &w, 200);
}

static int r_drop(api_t *a) {
    me_status_t st;
    if (me_client_drop_collection(a->c, a->coll, &st) != 0) return fail_status(a, &st);
    me_json_writer_t w;
    me_json_writer_init_buf(&w);
    me_json_obj_begin(&w, NULL);
    me_json_put_str(&w, "dropped", a->coll);
    me_json_obj_end(&w);
    return reply(a, &w, 200);
}

/* The documents array of an upsert or ingest body, with its size. */
static int get_documents(api_t *a, const me_json_t **docs) {
    *docs = me_json_get(a->in, "documents");
    if (!*docs || (*docs)->type != ME_JSON_ARRAY)
        return BAD(a, "give \"documents\": an array of {\"id\", ...} objects");
    for (size_t i = 0; i < (*docs)->len; i++)
        if ((*docs)->u.items[i].type != ME_JSON_OBJECT) return BAD(a, "documents[%zu] must be an object", i);
    return 0;
}

/* Upserts n documents (msg pointers into caller storage) and replies. */
static int upsert_reply(api_t *a, Metaembed__Document **dp, size_t n) {
    Metaembed__UpsertRequest req = METAEMBED__UPSERT_REQUEST__INIT;
    req.collection = a->coll;
    req.documents = dp;
    req.n_documents = n;
    void *rep = NULL;
    size_t len = 0;
    int status;
    if (call(a, METAEMBED__METHOD__METHOD_UPSERT, &req.base, &rep, &len, &status) != 0) return status;
    Metaembed__UpsertReply *m = metaembed__upsert_reply__unpack(NULL, len, rep);
    free(rep);
    me_json_writer_t w;
    me_json_writer_init_buf(&w);
    me_json_obj_begin(&w, NULL);
    me_json_put_u64(&w, "upserted", m ? m->upserted : n);
    me_json_obj_end(&w);
    if (m) metaembed__upsert_reply__free_unpacked(m, NULL);
    return reply(a, &w, 200);
}

static int r_upsert(api_t *a) {
    static const char *const top[] = { "documents", "timeout_ms", NULL };
    static const char *const keys[] = { "id", "vectors", "metadata", NULL };
    const me_json_t *docs;
    int rc;
    if ((rc = check_members(a, a->in, "the upsert", top)) != 0 || (rc = get_documents(a, &docs)) != 0) return rc;
    size_t n = docs->len;
    Metaembed__Document *d = calloc(n ? n : 1, sizeof *d);
    Metaembed__Document **dp = calloc(n ? n : 1, sizeof *dp);
    tensor_t *t = calloc(n ? n : 1, sizeof *t);
    char **meta = calloc(n ? n : 1, sizeof *meta);
    if (!d || !dp || !t || !meta) { rc = fail(a, ME_CODE_RESOURCE_EXHAUSTED, "out of memory"); goto out; }
    for (size_t i = 0; i < n; i++) {
        const me_json_t *o = &docs->u.items[i];
        char what[48];
        snprintf(what, sizeof what, "documents[%zu]", i);
        const char *id;
        size_t mlen;
        metaembed__document__init(&d[i]);
        if ((rc = check_members(a, o, what, keys)) != 0 || (rc = get_str(a, o, "id", 1, &id)) != 0 ||
            (rc = get_tensor(a, me_json_get(o, "vectors"), what, &t[i])) != 0 ||
            (rc = get_metadata(a, o, what, &meta[i], &mlen)) != 0)
            goto out;
        d[i].id = (char *)id;
        d[i].vectors = &t[i].t;
        d[i].metadata.data = (uint8_t *)meta[i];
        d[i].metadata.len = mlen;
        dp[i] = &d[i];
    }
    rc = upsert_reply(a, dp, n);
out:
    for (size_t i = 0; t && meta && i < n; i++) { free(t[i].data); free(meta[i]); }
    free(d);
    free(dp);
    free(t);
    free(meta);
    return rc;
}

/* Texts and images embedded on the document side by the cluster's
 * encoders (Encode through the coordinator), then upserted: the encoders'
 * ingest (encoder/ingest.c) done for a small batch in one request. */
static int r_ingest(api_t *a) {
    static const char *const top[] = { "documents", "timeout_ms", NULL };
    static const char *const keys[] = { "id", "text", "image", "metadata", NULL };
    const me_json_t *docs;
    int rc;
    if ((rc = check_members(a, a->in, "the ingest", top)) != 0 || (rc = get_documents(a, &docs)) != 0) return rc;
    size_t n = docs->len, nimg = 0;
    char **texts = calloc(n ? n : 1, sizeof *texts);
    ProtobufCBinaryData *images = calloc(n ? n : 1, sizeof *images);
    char **meta = calloc(n ? n : 1, sizeof *meta);
    size_t *mlen = calloc(n ? n : 1, sizeof *mlen);
    const char **ids = calloc(n ? n : 1, sizeof *ids);
    Metaembed__Document *d = calloc(n ? n : 1, sizeof *d);
    Metaembed__Document **dp = calloc(n ? n : 1, sizeof *dp);
    Metaembed__Tensor *t = calloc(n ? n : 1, sizeof *t);
    Metaembed__EncodeReply *enc = NULL;
    void *rep = NULL;
    if (!texts || !images || !meta || !mlen || !ids || !d || !dp || !t) {
        rc = fail(a, ME_CODE_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const me_json_t *o = &docs->u.items[i];
        char what[48];
        snprintf(what, sizeof what, "documents[%zu]", i);
        const char *text;
        if ((rc = check_members(a, o, what, keys)) != 0 || (rc = get_str(a, o, "id", 1, &ids[i])) != 0 ||
            (rc = get_str(a, o, "text", 0, &text)) != 0 ||
            (rc = get_b64(a, o, "image", &images[i].data, &images[i].len)) != 0 ||
            (rc = get_metadata(a, o, what, &meta[i], &mlen[i])) != 0)
            goto out;
        if (!text && !images[i].len) { rc = BAD(a, "%s: give \"text\" or \"image\" (base64 PNG or JPEG)", what); goto out; }
        texts[i] = (char *)(text ? text : "");
        nimg += images[i].len > 0;
        if (!meta[i] && text) {
            /* As the encoders' ingest does: keep the text with the document. */
            me_json_writer_t w;
            me_json_writer_init_buf(&w);
            me_json_obj_begin(&w, NULL);
            me_json_put_str(&w, "text", text);
            me_json_obj_end(&w);
            meta[i] = me_json_writer_take(&w, &mlen[i]);
            me_json_writer_free(&w);
        }
    }
    Metaembed__EncodeRequest er = METAEMBED__ENCODE_REQUEST__INIT;
    er.texts = texts;
    er.n_texts = n;
    if (nimg) { er.images = images; er.n_images = n; }
    size_t len = 0;
    if (call(a, METAEMBED__METHOD__METHOD_ENCODE, &er.base, &rep, &len, &rc) != 0) goto out;
    enc = metaembed__encode_reply__unpack(NULL, len, rep);
    const Metaembed__Tensor *v = enc ? enc->vectors : NULL;
    size_t esz = v ? me_dtype_size((me_dtype_t)v->dtype) : 0;
    if (!v || v->n_shape != 3 || v->shape[0] != n || !esz ||
        v->data.len != (size_t)v->shape[0] * v->shape[1] * v->shape[2] * esz) {
        rc = fail(a, ME_CODE_INTERNAL, "malformed Encode reply from an encoder");
        goto out;
    }
    size_t per = (size_t)v->shape[1] * v->shape[2] * esz;
    for (size_t i = 0; i < n; i++) {
        metaembed__document__init(&d[i]);
        metaembed__tensor__init(&t[i]);
        t[i].dtype = v->dtype;
        t[i].shape = v->shape + 1;  /* [R, D] of the reply's [n, R, D] */
        t[i].n_shape = 2;
        t[i].data.data = v->data.data + i * per;
        t[i].data.len = per;
        d[i].id = (char *)ids[i];
        d[i].vectors = &t[i];
        d[i].metadata.data = (uint8_t *)meta[i];
        d[i].metadata.len = meta[i] ? mlen[i] : 0;
        dp[i] = &d[i];
    }
    rc = upsert_reply(a, dp, n);
out:
    for (size_t i = 0; images && meta && i < n; i++) { free(images[i].data); free(meta[i]); }
    if (enc) metaembed__encode_reply__free_unpacked(enc, NULL);
    free(rep);
    free(texts);
    free(images);
    free(meta);
    free(mlen);
    free(ids);
    free(d);
    free(dp);
    free(t);
    return rc;
}

/* A Get by filter: the ids of the first `limit` matching documents, in id
 * order (a ListIds with the filter); *page owns them (free_unpacked). */
static int ids_where(api_t *a, Metaembed__Filter *filter, uint32_t limit, Metaembed__ListIdsReply **page) {
    Metaembed__ListIdsRequest req = METAEMBED__LIST_IDS_REQUEST__INIT;
    req.collection = a->coll;
    req.limit = limit;
    req.filter = filter;
    void *rep = NULL;
    size_t len = 0;
    int status;
    if (call(a, METAEMBED__METHOD__METHOD_LIST_IDS, &req.base, &rep, &len, &status) != 0) return status;
    *page = metaembed__list_ids_reply__unpack(NULL, len, rep);
    free(rep);
    return *page ? 0 : fail(a, ME_CODE_INTERNAL, "malformed ListIds reply");
}

static int r_get(api_t *a) {
    static const char *const top[] = { "ids", "with_vectors", "filter", "limit", "timeout_ms", NULL };
    char **ids = NULL;
    size_t n = 0;
    int with_vectors = 0, rc, status;
    uint32_t limit = 100;
    Metaembed__Filter *filter = NULL;
    Metaembed__ListIdsReply *page = NULL;
    if ((rc = check_members(a, a->in, "the get", top)) != 0 || (rc = get_filter(a, a->in, &filter)) != 0) return rc;
    if (filter && me_json_get(a->in, "ids")) rc = BAD(a, "give \"ids\" or \"filter\", not both");
    if (rc == 0 && (rc = get_bool(a, a->in, "with_vectors", &with_vectors)) == 0 &&
        (rc = get_u32(a, a->in, "limit", &limit)) == 0) {
        char lerr[128];
        if (filter && me_list_ids_check_limit(limit, lerr, sizeof lerr) != 0) rc = BAD(a, "%s", lerr);
        else if (filter && (rc = ids_where(a, filter, limit, &page)) == 0) {
            ids = page->ids;
            n = page->n_ids;
        } else if (!filter) rc = get_ids(a, a->in, &ids, &n);
    }
    me_filter_free(filter);
    if (rc) {
        if (page) metaembed__list_ids_reply__free_unpacked(page, NULL);
        else free(ids);
        return rc;
    }
    Metaembed__GetRequest req = METAEMBED__GET_REQUEST__INIT;
    req.collection = a->coll;
    req.ids = ids;
    req.n_ids = n;
    req.with_vectors = with_vectors;
    void *rep = NULL;
    size_t len = 0;
    rc = n ? call(a, METAEMBED__METHOD__METHOD_GET, &req.base, &rep, &len, &status) : 0;
    if (page) metaembed__list_ids_reply__free_unpacked(page, NULL);
    else free(ids);
    if (rc) return status;
    Metaembed__GetReply *m = metaembed__get_reply__unpack(NULL, len, rep);
    free(rep);
    if (!m) return fail(a, ME_CODE_INTERNAL, "malformed Get reply");
    me_json_writer_t w;
    me_json_writer_init_buf(&w);
    me_json_obj_begin(&w, NULL);
    me_json_arr_begin(&w, "documents");
    for (size_t i = 0; i < m->n_documents; i++) {
        me_json_obj_begin(&w, NULL);
        me_json_put_str(&w, "id", m->documents[i]->id);
        put_metadata(&w, &m->documents[i]->metadata);
        if (with_vectors) put_vectors(&w, m->documents[i]->vectors);
        me_json_obj_end(&w);
    }
    me_json_arr_end(&w);
    me_json_arr_begin(&w, "missing");
    for (size_t i = 0; i < m->n_missing; i++) me_json_put_str(&w, NULL, m->missing[i]);
    me_json_arr_end(&w);
    me_json_obj_end(&w);
    metaembed__get_reply__free_unpacked(m, NULL);
    return reply(a, &w, 200);
}

static int r_delete(api_t *a) {
    static const char *const top[] = { "ids", "filter", "timeout_ms", NULL };
    char **ids = NULL;
    size_t n = 0;
    int rc;
    Metaembed__Filter *filter = NULL;
    if ((rc = check_members(a, a->in, "the delete", top)) != 0 || (rc = get_filter(a, a->in, &filter)) != 0) return rc;
    if (filter && me_json_get(a->in, "ids")) {
        me_filter_free(filter);
        return BAD(a, "give \"ids\" or \"filter\" to delete by, not both");
    }
    if (!filter && (rc = get_ids(a, a->in, &ids, &n)) != 0) {
        free(ids);
        return rc;
    }
    uint32_t deleted = 0;
    Metaembed__DeleteRequest req = METAEMBED__DELETE_REQUEST__INIT;
    req.collection = a->coll;
    req.ids = ids;
    req.n_ids = n;
    req.filter = filter;
    void *rep = NULL;
    size_t len = 0;
    int status;
    rc = call(a, METAEMBED__METHOD__METHOD_DELETE, &req.base, &rep, &len, &status);
    free(ids);
    me_filter_free(filter);
    if (rc) return status;
    Metaembed__DeleteReply *dr = metaembed__delete_reply__unpack(NULL, len, rep);
    free(rep);
    if (!dr) return fail(a, ME_CODE_INTERNAL, "malformed Delete reply");
    deleted = dr->deleted;
    metaembed__delete_reply__free_unpacked(dr, NULL);
    me_json_writer_t w;
    me_json_writer_init_buf(&w);
    me_json_obj_begin(&w, NULL);
    me_json_put_u64(&w, "deleted", deleted);
    me_json_obj_end(&w);
    return reply(a, &w, 200);
}

/* One of the names in `names` (NULL-terminated) as its index, into *out;
 * absent or null leaves *out. */
static int get_choice(api_t *a, const char *key, const char *const *names, int *out) {
    const char *s = NULL;
    int rc = get_str(a, a->in, key, 0, &s);
    if (rc || !s) return rc;
    char list[128] = "";
    for (int i = 0; names[i]; i++) {
        if (!strcmp(s, names[i])) { *out = i; return 0; }
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s\"%s\"", i ? ", " : "", names[i]);
    }
    return BAD(a, "\"%s\" must be one of %s", key, list);
}

/* The lexical and hybrid fields of a search body: "mode", "fusion",
 * "alpha", "lexical_text", "hybrid_candidates" (ranges are checked by the
 * coordinator, in one place). */
static int get_mode_fields(api_t *a, Metaembed__SearchRequest *req, float *alpha) {
    static const char *const modes[] = { "dense", "lexical", "hybrid", NULL }, *const fusions[] = { "rrf", "weighted", NULL };
    int mode = 0, fusion = 0, rc;
    const char *lt = NULL;
    if ((rc = get_choice(a, "mode", modes, &mode)) != 0 || (rc = get_choice(a, "fusion", fusions, &fusion)) != 0 ||
        (rc = get_str(a, a->in, "lexical_text", 0, &lt)) != 0 ||
        (rc = get_u32(a, a->in, "hybrid_candidates", &req->hybrid_candidates)) != 0)
        return rc;
    req->mode = (Metaembed__SearchMode)mode;
    req->fusion = (Metaembed__Fusion)fusion;
    if (lt) req->lexical_text = (char *)lt;
    const me_json_t *al = me_json_get(a->in, "alpha");
    if (al && al->type != ME_JSON_NULL) {
        double x;
        if (me_json_num(al, &x) != 0) return BAD(a, "\"alpha\" is a number in [0, 1]");
        *alpha = (float)x;
        req->alpha = alpha;
        req->n_alpha = 1;
    }
    return 0;
}

static int r_search(api_t *a) {
    static const char *const top[] = { "text", "image", "vectors", "budget", "r_q", "r_c", "k", "offset", "exact",
                                       "candidates", "with_metadata", "all_or_nothing", "timeout_ms", "mode",
                                       "fusion", "alpha", "lexical_text", "hybrid_candidates", "filter", "target_ms",
                                       "min_budget", "anytime", "probe", NULL };
    Metaembed__SearchRequest req = METAEMBED__SEARCH_REQUEST__INIT;
    tensor_t q = { 0 };
    uint8_t *image = NULL;
    size_t image_len = 0;
    uint32_t cand[8];
    const char *text = NULL;
    int exact = 0, with_metadata = 1, aon = 0, anytime = 0, rc;
    float alpha;
    req.k = 10;
    if ((rc = check_members(a, a->in, "the search", top)) != 0 || (rc = get_str(a, a->in, "text", 0, &text)) != 0 ||
        (rc = get_b64(a, a->in, "image", &image, &image_len)) != 0 ||
        (rc = get_u32(a, a->in, "k", &req.k)) != 0 || (rc = get_u32(a, a->in, "offset", &req.offset)) != 0 ||
        (rc = get_u32(a, a->in, "r_q", &req.r_q)) != 0 ||
        (rc = get_u32(a, a->in, "r_c", &req.r_c)) != 0 || (rc = get_bool(a, a->in, "exact", &exact)) != 0 ||
        (rc = get_bool(a, a->in, "with_metadata", &with_metadata)) != 0 ||
        (rc = get_bool(a, a->in, "all_or_nothing", &aon)) != 0 || (rc = get_mode_fields(a, &req, &alpha)) != 0 ||
        (rc = get_filter(a, a->in, &req.filter)) != 0 || (rc = get_u32(a, a->in, "target_ms", &req.target_ms)) != 0 ||
        (rc = get_bool(a, a->in, "anytime", &anytime)) != 0 || (rc = get_u32(a, a->in, "probe", &req.probe)) != 0)
        goto out;
    req.anytime = anytime;
    const me_json_t *mb = me_json_get(a->in, "min_budget");
    uint32_t minb[2];
    if (mb && mb->type != ME_JSON_NULL) {
        int64_t x, y;
        if (mb->type != ME_JSON_ARRAY || mb->len != 2 || me_json_int64(&mb->u.items[0], &x) != 0 ||
            me_json_int64(&mb->u.items[1], &y) != 0 || x < 1 || y < 1 || x > UINT32_MAX || y > UINT32_MAX) {
            rc = BAD(a, "\"min_budget\" is [r_q, r_c], e.g. [2, 4] (each at least 1)");
            goto out;
        }
        minb[0] = (uint32_t)x;
        minb[1] = (uint32_t)y;
        req.min_budget = minb;
        req.n_min_budget = 2;
    }
    const me_json_t *budget = me_json_get(a->in, "budget");
    if (budget && budget->type != ME_JSON_NULL) {
        int64_t x, y;
        if (budget->type != ME_JSON_ARRAY || budget->len != 2 || me_json_int64(&budget->u.items[0], &x) != 0 ||
            me_json_int64(&budget->u.items[1], &y) != 0 || x < 0 || y < 0 || x > UINT32_MAX || y > UINT32_MAX) {
            rc = BAD(a, "\"budget\" is [r_q, r_c], e.g. [4, 8] (0 = all)");
            goto out;
        }
        req.r_q = (uint32_t)x;
        req.r_c = (uint32_t)y;
    }
    /* Survivors per stage: one number (stage 1) or one per stage. */
    const me_json_t *cv = me_json_get(a->in, "candidates");
    if (cv && cv->type != ME_JSON_NULL) {
        const me_json_t *items = cv->type == ME_JSON_ARRAY ? cv->u.items : cv;
        size_t nc = cv->type == ME_JSON_ARRAY ? cv->len : 1;
        if (nc > sizeof cand / sizeof cand[0]) { rc = BAD(a, "\"candidates\": at most 8 stages"); goto out; }
        for (size_t i = 0; i < nc; i++) {
            int64_t x;
            if (me_json_int64(&items[i], &x) != 0 || x < 0 || x > UINT32_MAX) {
                rc = BAD(a, "\"candidates\" is a whole number or an array of them, one per stage");
                goto out;
            }
            cand[i] = (uint32_t)x;
        }
        req.candidates = cand;
        req.n_candidates = nc;
    }
    const me_json_t *vec = me_json_get(a->in, "vectors");
    if (vec && vec->type != ME_JSON_NULL) {
        if ((rc = get_tensor(a, vec, "vectors", &q)) != 0) goto out;
        req.query = &q.t;
    }
    req.collection = a->coll;
    req.text = (char *)(text ? text : "");
    req.image.data = image;
    req.image.len = image_len;
    req.exact = exact;
    req.with_metadata = with_metadata;
    req.all_or_nothing = aon;
    void *rep = NULL;
    size_t len = 0;
    if (call(a, METAEMBED__METHOD__METHOD_SEARCH, &req.base, &rep, &len, &rc) != 0) goto out;
    Metaembed__SearchReply *m = metaembed__search_reply__unpack(NULL, len, rep);
    free(rep);
    if (!m) { rc = fail(a, ME_CODE_INTERNAL, "malformed Search reply"); goto out; }
    me_json_writer_t w;
    me_json_writer_init_buf(&w);
    me_json_obj_begin(&w, NULL);
    me_json_arr_begin(&w, "hits");
    for (size_t i = 0; i < m->n_hits; i++) {
        me_json_obj_begin(&w, NULL);
        me_json_put_str(&w, "id", m->hits[i]->id);
        /* %.9g: the same float as the wire's. */
        me_json_put_num_prec(&w, "score", m->hits[i]->score, 9);
        if (req.mode != METAEMBED__SEARCH_MODE__SEARCH_MODE_DENSE) {
            me_json_put_num_prec(&w, "dense_score", m->hits[i]->dense_score, 9);
            me_json_put_num_prec(&w, "lexical_score", m->hits[i]->lexical_score, 9);
        }
        put_metadata(&w, &m->hits[i]->metadata);
        me_json_obj_end(&w);
    }
    me_json_arr_end(&w);
    me_json_put_u64(&w, "r_q", m->r_q);
    me_json_put_u64(&w, "r_c", m->r_c);
    me_json_put_u64(&w, "documents", m->documents);
    me_json_put_bool(&w, "partial", m->partial);
    me_json_put_bool(&w, "degraded", m->degraded);
    if (req.target_ms) {
        me_json_put_num_prec(&w, "predicted_ms", m->predicted_ms, 4);
        me_json_put_str(&w, "budget_reason", m->budget_reason);
    }
    me_json_arr_begin(&w, "missing_groups");
    for (size_t i = 0; i < m->n_missing_groups; i++) me_json_put_str(&w, NULL, m->missing_groups[i]);
    me_json_arr_end(&w);
    me_json_arr_begin(&w, "stages");
    for (size_t i = 0; i < m->n_stages; i++) {
        const Metaembed__StageTiming *s = m->stages[i];
        me_json_obj_begin(&w, NULL);
        me_json_put_str(&w, "stage", s->stage);
        me_json_put_u64(&w, "r_q", s->r_q);
        me_json_put_u64(&w, "r_c", s->r_c);
        me_json_put_u64(&w, "candidates_in", s->candidates_in);
        me_json_put_u64(&w, "candidates_out", s->candidates_out);
        me_json_put_num_prec(&w, "ms", (double)s->micros / 1e3, 6);
        me_json_obj_end(&w);
    }
    me_json_arr_end(&w);
    me_json_obj_end(&w);
    metaembed__search_reply__free_unpacked(m, NULL);
    rc = reply(a, &w, 200);
out:
    free(q.data);
    free(image);
    me_filter_free(req.filter);
    return rc;
}

/* POST /count {"filter": ...}: how many documents match (all without one). */
static int r_count(api_t *a) {
    static const char *const top[] = { "filter", "timeout_ms", NULL };
    Metaembed__CountRequest req = METAEMBED__COUNT_REQUEST__INIT;
    int rc, status;
    if ((rc = check_members(a, a->in, "the count", top)) != 0 || (rc = get_filter(a, a->in, &req.filter)) != 0) return rc;
    req.collection = a->coll;
    void *rep = NULL;
    size_t len = 0;
    rc = call(a, METAEMBED__METHOD__METHOD_COUNT, &req.base, &rep, &len, &status);
    me_filter_free(req.filter);
    if (rc) return status;
    Metaembed__CountReply *m = metaembed__count_reply__unpack(NULL, len, rep);
    free(rep);
    if (!m) return fail(a, ME_CODE_INTERNAL, "malformed Count reply");
    me_json_writer_t w;
    me_json_writer_init_buf(&w);
    me_json_obj_begin(&w, NULL);
    me_json_put_u64(&w, "count", m->count);
    me_json_obj_end(&w);
    metaembed__count_reply__free_unpacked(m, NULL);
    return reply(a, &w, 200);
}

/* POST /fields {"fields": {"NAME": "TYPE"}}: index more payload fields. */
static int r_index_fields(api_t *a) {
    static const char *const top[] = { "fields", "timeout_ms", NULL };
    me_field_spec_t f[ME_FIELDS_MAX];
    Metaembed__FieldSpec fs[ME_FIELDS_MAX], *fsp[ME_FIELDS_MAX];
    int n = 0, rc, status;
    if ((rc = check_members(a, a->in, "the index request", top)) != 0 || (rc = get_fields(a, a->in, f, &n)) != 0) return rc;
    if (!n) return BAD(a, "give \"fields\": {\"NAME\": \"TYPE\", ...} with at least one field");
    me_field_specs_to_proto(f, n, fs, fsp);
    Metaembed__IndexFieldsRequest req = METAEMBED__INDEX_FIELDS_REQUEST__INIT;
    req.collection = a->coll;
    req.fields = fsp;
    req.n_fields = (size_t)n;
    void *rep = NULL;
    size_t len = 0;
    if (call(a, METAEMBED__METHOD__METHOD_INDEX_FIELDS, &req.base, &rep, &len, &status) != 0) return status;
    Metaembed__IndexFieldsReply *m = metaembed__index_fields_reply__unpack(NULL, len, rep);
    free(rep);
    if (!m || !m->config) {
        if (m) metaembed__index_fields_reply__free_unpacked(m, NULL);
        return fail(a, ME_CODE_INTERNAL, "malformed IndexFields reply");
    }
    me_json_writer_t w;
    me_json_writer_init_buf(&w);
    me_json_obj_begin(&w, NULL);
    put_config(&w, m->config);
    me_json_put_u64(&w, "indexed", m->indexed);
    me_json_obj_end(&w);
    metaembed__index_fields_reply__free_unpacked(m, NULL);
    return reply(a, &w, 200);
}

/* A page of ids: ?after=ID (the previous page's next_after) &limit=N. The
 * query is decoded by the HTTP layer; a %00 in it would cut the cursor
 * short without a word, so it is refused. */
static int r_ids(api_t *a) {
    char after[ME_DOC_ID_MAX + 2], lim[32], err[256];
    long long limit = ME_LIST_IDS_DEFAULT;
    if (strstr(a->req->query, "%00")) return BAD(a, "the query string holds a NUL character (%%00)");
    me_http_query_get(a->req->query, "after", after, sizeof after);
    if (me_http_query_get(a->req->query, "limit", lim, sizeof lim)) {
        char *end;
        errno = 0;
        limit = strtoll(lim, &end, 10);
        if (errno || end == lim || *end) return BAD(a, "limit=%.20s is not a whole number", lim);
    }
    if (me_list_ids_check_limit(limit, err, sizeof err) != 0) return BAD(a, "%s", err);
    Metaembed__ListIdsRequest req = METAEMBED__LIST_IDS_REQUEST__INIT;
    req.collection = a->coll;
    req.after = after;
    req.limit = (uint32_t)limit;
    /* ?filter=EXPR (URL-encoded): only the ids of documents it matches. */
    /* One byte past the limit: a longer value is cut to a length the parser refuses. */
    char *ftext = malloc(ME_FILTER_TEXT_MAX + 2);
    if (!ftext) return fail(a, ME_CODE_RESOURCE_EXHAUSTED, "out of memory");
    if (me_http_query_get(a->req->query, "filter", ftext, ME_FILTER_TEXT_MAX + 2) && ftext[0]) {
        char ferr[512];
        int frc = me_filter_parse(ftext, strlen(ftext), &req.filter, ferr, sizeof ferr);
        if (frc) { free(ftext); return frc == ME_ENOMEM ? fail(a, ME_CODE_RESOURCE_EXHAUSTED, "out of memory") : BAD(a, "%s", ferr); }
    }
    free(ftext);
    void *rep = NULL;
    size_t len = 0;
    int status;
    int crc = call(a, METAEMBED__METHOD__METHOD_LIST_IDS, &req.base, &rep, &len, &status);
    me_filter_free(req.filter);
    if (crc != 0) return status;
    Metaembed__ListIdsReply *m = metaembed__list_ids_reply__unpack(NULL, len, rep);
    free(rep);
    if (!m) return fail(a, ME_CODE_INTERNAL, "malformed ListIds reply");
    me_json_writer_t w;
    me_json_writer_init_buf(&w);
    me_json_obj_begin(&w, NULL);
    me_json_arr_begin(&w, "ids");
    for (size_t i = 0; i < m->n_ids; i++) me_json_put_str(&w, NULL, m->ids[i]);
    me_json_arr_end(&w);
    if (m->next_after[0]) me_json_put_str(&w, "next_after", m->next_after);
    else me_json_put_null(&w, "next_after");
    me_json_obj_end(&w);
    metaembed__list_ids_reply__free_unpacked(m, NULL);
    return reply(a, &w, 200);
}

/* ---- snapshots and resharding ---- */

static void put_snapshot(me_json_writer_t *w, const char *key, const me_snapshot_info_t *s) {
    me_json_obj_begin(w, key);
    me_json_put_str(w, "id", s->id);
    me_json_put_u64(w, "created_ms", s->created_ms);
    me_json_put_u64(w, "bytes", s->bytes);
    me_json_put_u64(w, "documents", s->documents);
    me_json_put_u64(w, "replicas", s->replicas);
    me_json_obj_end(w);
}

static int r_snapshots(api_t *a) {
    me_snapshot_info_t *s = NULL;
    size_t n = 0;
    me_status_t st;
    if (me_client_snapshot_list(a->c, &s, &n, &st) != 0) return fail_status(a, &st);
    me_json_writer_t w;
    me_json_writer_init_buf(&w);
    me_json_obj_begin(&w, NULL);
    me_json_arr_begin(&w, "snapshots");
    for (size_t i = 0; i < n; i++) put_snapshot(&w, NULL, &s[i]);
    me_json_arr_end(&w);
    me_json_obj_end(&w);
    free(s);
    return reply(a, &w, 200);
}

/* POST /v1/snapshots {"id": ...}: without an id the coordinator names it
 * (snap-YYYYMMDD-HHMMSS); the id's rules are the coordinator's. */
static int r_snapshot_create(api_t *a) {
    static const char *const top[] = { "id", "timeout_ms", NULL };
    const char *id;
    int rc;
    if ((rc = check_members(a, a->in, "the snapshot", top)) != 0 || (rc = get_str(a, a->in, "id", 0, &id)) != 0)
        return rc;
    me_snapshot_info_t s;
    me_status_t st;
    if (me_client_snapshot_create(a->c, id, &s, &st) != 0) return fail_status(a, &st);
    me_json_writer_t w;
    me_json_writer_init_buf(&w);
    me_json_obj_begin(&w, NULL);
    put_snapshot(&w, "snapshot", &s);
    me_json_obj_end(&w);
    return reply(a, &w, 200);
}

static int r_snapshot_delete(api_t *a) {
    me_status_t st;
    if (me_client_snapshot_delete(a->c, a->coll, &st) != 0) return fail_status(a, &st);
    me_json_writer_t w;
    me_json_writer_init_buf(&w);
    me_json_obj_begin(&w, NULL);
    me_json_put_str(&w, "deleted", a->coll);
    me_json_obj_end(&w);
    return reply(a, &w, 200);
}

/* Every field of the status, named as `metaembed reshard --status --json` names them. */
static int reshard_reply(api_t *a, const me_reshard_info_t *s) {
    me_json_writer_t w;
    me_json_writer_init_buf(&w);
    me_json_obj_begin(&w, NULL);
    me_json_put_str(&w, "phase", s->phase);
    me_json_put_u64(&w, "from_groups", s->from_groups);
    me_json_put_u64(&w, "to_groups", s->to_groups);
    me_json_put_u64(&w, "epoch", s->epoch);
    me_json_put_bool(&w, "running", s->running);
    me_json_put_u64(&w, "moved", s->moved);
    me_json_put_u64(&w, "estimate", s->estimate);
    me_json_put_u64(&w, "purged", s->purged);
    me_json_put_num_prec(&w, "progress", s->progress, 6);
    me_json_put_num_prec(&w, "docs_per_s", s->docs_per_s, 6);
    me_json_put_u64(&w, "eta_ms", s->eta_ms);
    me_json_put_u64(&w, "elapsed_ms", s->elapsed_ms);
    me_json_put_str(&w, "error", s->error);
    me_json_put_str(&w, "waiting", s->waiting);
    me_json_obj_end(&w);
    return reply(a, &w, 200);
}

static int r_reshard_status(api_t *a) {
    me_reshard_info_t s;
    me_status_t st;
    if (me_client_reshard_status(a->c, &s, &st) != 0) return fail_status(a, &st);
    return reshard_reply(a, &s);
}

/* POST /v1/reshard {"groups": N, "max_rate": R}: starts (or resumes) the
 * move and answers at once; the mover runs on at the coordinator. */
static int r_reshard_start(api_t *a) {
    static const char *const top[] = { "groups", "max_rate", "timeout_ms", NULL };
    uint32_t groups = 0, max_rate = 0;
    int rc;
    if ((rc = check_members(a, a->in, "the reshard", top)) != 0) return rc;
    const me_json_t *g = me_json_get(a->in, "groups");
    if (!g || g->type == ME_JSON_NULL) return BAD(a, "give \"groups\": the number of shard groups to move to");
    if ((rc = get_u32(a, a->in, "groups", &groups)) != 0 || (rc = get_u32(a, a->in, "max_rate", &max_rate)) != 0)
        return rc;
    me_reshard_info_t s;
    me_status_t st;
    if (me_client_reshard_start(a->c, groups, max_rate, &s, &st) != 0) return fail_status(a, &st);
    return reshard_reply(a, &s);
}

static int r_openapi(api_t *a) {
    *a->ctype = "application/json";
    size_t n = (size_t)(me_openapi_json_end - me_openapi_json);
    me_buf_printf(a->body, "%.*s", (int)n, me_openapi_json);
    return 200;
}

/* ---- the router ---- */

enum { OPEN = 1, BODY = 2, CLIENT = 4 };  /* no key needed; a JSON body; a client */

/* docs/openapi.json documents each of these (tests/openapi-check.py reads
 * this table: keep one ROUTE a line). */
#define ROUTE(method, path, fn, flags) { method, path, fn, flags }
static const struct route {
    const char *method, *path;
    int (*fn)(api_t *);
    int flags;
} routes[] = {
    ROUTE("GET", "/v1/health", r_health, OPEN | CLIENT),
    ROUTE("GET", "/v1/status", r_status, CLIENT),
    ROUTE("GET", "/v1/collections", r_list, CLIENT),
    ROUTE("POST", "/v1/collections", r_create, BODY | CLIENT),
    ROUTE("GET", "/v1/collections/{name}", r_info, CLIENT),
    ROUTE("DELETE", "/v1/collections/{name}", r_drop, CLIENT),
    ROUTE("POST", "/v1/collections/{name}/upsert", r_upsert, BODY | CLIENT),
    ROUTE("POST", "/v1/collections/{name}/ingest", r_ingest, BODY | CLIENT),
    ROUTE("POST", "/v1/collections/{name}/get", r_get, BODY | CLIENT),
    ROUTE("GET", "/v1/collections/{name}/ids", r_ids, CLIENT),
    ROUTE("POST", "/v1/collections/{name}/delete", r_delete, BODY | CLIENT),
    ROUTE("POST", "/v1/collections/{name}/search", r_search, BODY | CLIENT),
    ROUTE("POST", "/v1/collections/{name}/count", r_count, BODY | CLIENT),
    ROUTE("POST", "/v1/collections/{name}/fields", r_index_fields, BODY | CLIENT),
    ROUTE("GET", "/v1/snapshots", r_snapshots, CLIENT),
    ROUTE("POST", "/v1/snapshots", r_snapshot_create, BODY | CLIENT),
    ROUTE("DELETE", "/v1/snapshots/{id}", r_snapshot_delete, CLIENT),
    ROUTE("GET", "/v1/reshard", r_reshard_status, CLIENT),
    ROUTE("POST", "/v1/reshard", r_reshard_start, BODY | CLIENT),
    ROUTE("GET", "/openapi.json", r_openapi, OPEN),
};
#define NROUTES (sizeof routes / sizeof routes[0])

/* path against a template whose "{name}" takes one non-empty segment;
 * *name gets that segment (malloc'd) on a match. */
static int match(const char *tmpl, const char *path, char **name) {
    const char *brace = strchr(tmpl, '{');
    if (!brace) return !strcmp(tmpl, path);
    size_t pre = (size_t)(brace - tmpl);
    if (strncmp(tmpl, path, pre) != 0) return 0;
    const char *seg = path + pre, *end = strchr(seg, '/');
    size_t seglen = end ? (size_t)(end - seg) : strlen(seg);
    const char *rest = strchr(brace, '}') + 1;
    if (!seglen || strcmp(seg + seglen, rest) != 0) return 0;
    if (name && !(*name = strndup(seg, seglen))) return 0;
    return 1;
}

/* Compares in time that depends only on the key's length, so a caller
 * cannot find the key byte by byte from response times. */
static int key_equal(const char *given, const char *key) {
    size_t klen = strlen(key), glen = strlen(given);
    unsigned diff = glen != klen;
    for (size_t i = 0; i < klen; i++) diff |= (unsigned)(unsigned char)key[i] ^ (unsigned char)(i < glen ? given[i] : 0);
    return diff == 0;
}

static int authorize(api_t *a) {
    const char *key = a->co->api_key;
    if (!key[0]) {
        if (!a->co->http_public) return 0;
        return fail(a, ME_CODE_PERMISSION_DENIED,
                    "this endpoint listens off loopback (--metrics-public) and the coordinator has no API key, so "
                    "the API is off: start it with --api-key-file FILE and send 'Authorization: Bearer KEY'");
    }
    const char *h = me_http_header(a->req, "authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return fail(a, ME_CODE_UNAUTHENTICATED, "send the API key as 'Authorization: Bearer KEY'");
    h += 7;
    while (*h == ' ') h++;
    if (!key_equal(h, key)) return fail(a, ME_CODE_UNAUTHENTICATED, "wrong API key");
    return 0;
}

/* The deadline: X-Timeout-Ms, else the body's timeout_ms, else the
 * coordinator's --deadline-ms. */
static int deadline(api_t *a) {
    const char *h = me_http_header(a->req, "x-timeout-ms");
    long long ms = a->co->opts.default_deadline_ms;
    if (h) {
        char *end;
        errno = 0;
        ms = strtoll(h, &end, 10);
        if (errno || end == h || *end || ms < 1 || ms > TIMEOUT_MAX_MS)
            return BAD(a, "X-Timeout-Ms is a whole number of milliseconds from 1 to %d", TIMEOUT_MAX_MS);
    } else if (me_json_get(a->in, "timeout_ms")) {
        int64_t x;
        if (me_json_int64(me_json_get(a->in, "timeout_ms"), &x) != 0 || x < 1 || x > TIMEOUT_MAX_MS)
            return BAD(a, "\"timeout_ms\" is a whole number of milliseconds from 1 to %d", TIMEOUT_MAX_MS);
        ms = x;
    }
    a->timeout_ms = (int)ms;
    return 0;
}

static int dispatch(api_t *a) {
    const struct route *r = NULL;
    char allowed[64] = "";
    for (size_t i = 0; i < NROUTES && !r; i++) {
        if (!match(routes[i].path, a->req->path, NULL)) continue;
        int head = !strcmp(a->req->method, "HEAD") && !strcmp(routes[i].method, "GET");
        if (!strcmp(a->req->method, routes[i].method) || head) {
            if (!match(routes[i].path, a->req->path, &a->coll) && strchr(routes[i].path, '{'))
                return fail(a, ME_CODE_RESOURCE_EXHAUSTED, "out of memory");
            r = &routes[i];
        } else
            snprintf(allowed + strlen(allowed), sizeof allowed - strlen(allowed), "%s%s", allowed[0] ? ", " : "",
                     routes[i].method);
    }
    if (!r) {
        if (allowed[0]) {
            *a->ctype = "application/json";
            fail(a, ME_CODE_INVALID_ARGUMENT, "%s %.200s: this path takes %s", a->req->method, a->req->path, allowed);
            return 405;
        }
        return fail(a, ME_CODE_NOT_FOUND, "no route %.200s: GET /openapi.json lists them", a->req->path);
    }
    int rc;
    if (!(r->flags & OPEN) && (rc = authorize(a)) != 0) return rc;
    if (r->flags & BODY) {
        me_json_error_t jerr;
        if (!a->req->body_len) return BAD(a, "send a JSON object as the body (Content-Type: application/json)");
        if (me_json_parse((const char *)a->req->body, a->req->body_len, &a->doc, &jerr) != 0)
            return jerr.kind == ME_JSON_ERR_NOMEM ? fail(a, ME_CODE_RESOURCE_EXHAUSTED, "out of memory")
                                                  : BAD(a, "the body is not JSON: %s", jerr.msg);
        a->in = me_json_root(a->doc);
        if (a->in->type != ME_JSON_OBJECT) return BAD(a, "the body must be a JSON object");
    }
    if ((rc = deadline(a)) != 0) return rc;
    if (r->flags & CLIENT) {
        me_status_t st;
        if (!(a->c = me_coord_web_client(a->co, &st))) {
            st.code = ME_CODE_UNAVAILABLE;
            return fail_status(a, &st);
        }
        me_client_set_timeout(a->c, a->timeout_ms);
    }
    return r->fn(a);
}

int me_coord_api_route(me_coord_t *co, const me_http_request_t *req, me_buf_t *body, const char **content_type) {
    if (strncmp(req->path, "/v1/", 4) != 0 && strcmp(req->path, "/v1") != 0 && strcmp(req->path, "/openapi.json") != 0)
        return 0;
    api_t a = { .co = co, .req = req, .body = body, .ctype = content_type };
    int status = dispatch(&a);
    me_coord_web_client_done(a.c);
    me_json_free(a.doc);
    free(a.coll);
    return status;
}

int me_coord_api_init(me_coord_t *co, char *err, size_t cap) {
    const me_coord_opts_t *o = &co->opts;
    co->api_key[0] = 0;
    if (o->api_key[0] && o->api_key_file[0]) {
        me_set_err(err, cap, "give --api-key or --api-key-file, not both");
        return ME_EINVAL;
    }
    if (o->api_key_file[0]) {
        FILE *f = fopen(o->api_key_file, "r");
        if (!f) {
            me_set_err(err, cap, "--api-key-file %s: %s", o->api_key_file, strerror(errno));
            return ME_EINVAL;
        }
        char line[ME_CFG_STR_MAX];
        if (!fgets(line, sizeof line, f)) line[0] = 0;
        fclose(f);
        snprintf(co->api_key, sizeof co->api_key, "%s", line);
    } else {
        snprintf(co->api_key, sizeof co->api_key, "%s", o->api_key);
    }
    /* Surrounding white space (a file's newline) is not part of the key. */
    char *k = co->api_key;
    size_t n = strlen(k), lead = strspn(k, " \t\r\n");
    while (n > lead && strchr(" \t\r\n", k[n - 1])) n--;
    memmove(k, k + lead, n - lead);
    k[n - lead] = 0;
    if ((o->api_key[0] || o->api_key_file[0]) && !k[0]) {
        me_set_err(err, cap, "the API key is empty: put one line in %s (e.g. from 'openssl rand -hex 32')",
                   o->api_key_file[0] ? o->api_key_file : "--api-key");
        return ME_EINVAL;
    }
    char why[512];
    co->http_public = o->metrics_addr[0] && me_metrics_addr_check(o->metrics_addr, 0, why, sizeof why) != 0;
    if (co->http_public && !k[0])
        me_warn("the HTTP API on %s is off: it listens off loopback without an API key (give --api-key-file FILE)",
                o->metrics_addr);
    return 0;
}
