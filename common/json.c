/* JSON parser (strict RFC 8259, DOM in one arena) and writer. */
#include "common/json.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

/* ---- arena: chained blocks, so pointers into it stay valid as it grows ---- */

typedef struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    max_align_t data[];
} arena_block_t;

struct me_json_doc {
    arena_block_t *blocks;
    me_json_t root;
};

#define ARENA_BLOCK (64 * 1024)

static void *arena_alloc(me_json_doc_t *d, size_t n) {
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    arena_block_t *b = d->blocks;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > ARENA_BLOCK ? n : ARENA_BLOCK;
        b = malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->cap = cap;
        b->used = 0;
        /* A big one-off block goes behind the current one, so the current
         * block's free space is not abandoned. */
        if (d->blocks && cap > ARENA_BLOCK) {
            b->next = d->blocks->next;
            d->blocks->next = b;
        } else {
            b->next = d->blocks;
            d->blocks = b;
        }
    }
    void *p = (char *)b->data + b->used;
    b->used += n;
    return p;
}

/* ---- parser ---- */

typedef struct {
    const unsigned char *s, *p, *e;
    me_json_doc_t *doc;             /* NULL: validate only */
    me_json_member_t *stack;        /* children of the open containers */
    size_t nstack, capstack;
    me_json_error_t *err;
    int depth;
} parser_t;

static int fail(parser_t *ps, const unsigned char *at, me_json_errkind_t kind, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(parser_t *ps, const unsigned char *at, me_json_errkind_t kind, const char *fmt, ...) {
    if (ps->err) {
        va_list ap;
        size_t off = (size_t)(at - ps->s);
        ps->err->kind = kind;
        ps->err->offset = off;
        int n = snprintf(ps->err->msg, sizeof ps->err->msg, "offset %zu: ", off);
        va_start(ap, fmt);
        if (n > 0 && (size_t)n < sizeof ps->err->msg) vsnprintf(ps->err->msg + n, sizeof ps->err->msg - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return kind == ME_JSON_ERR_NOMEM ? ME_ENOMEM : kind == ME_JSON_ERR_DEPTH ? ME_ETOOBIG : ME_EINVAL;
}

/* A printable description of the byte at p, for messages. */
static const char *show(const unsigned char *p, const unsigned char *e, char *buf, size_t cap) {
    if (p >= e) snprintf(buf, cap, "end of input");
    else if (*p >= 0x20 && *p < 0x7f) snprintf(buf, cap, "'%c'", *p);
    else snprintf(buf, cap, "byte 0x%02x", *p);
    return buf;
}

static void skip_ws(parser_t *ps) {
    while (ps->p < ps->e && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) ps->p++;
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0. */
static size_t utf8_len(const unsigned char *p, const unsigned char *e) {
    unsigned char b = p[0];
    size_t n;
    unsigned min;
    if (b < 0x80) return 1;
    if (b >= 0xc2 && b <= 0xdf) { n = 2; min = 0x80; }
    else if (b >= 0xe0 && b <= 0xef) { n = 3; min = 0x800; }
    else if (b >= 0xf0 && b <= 0xf4) { n = 4; min = 0x10000; }
    else return 0;
    if ((size_t)(e - p) < n) return 0;
    unsigned cp = b & (0x7f >> n);
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return n;
}

static int hex4(const unsigned char *p, const unsigned char *e, unsigned *out) {
    unsigned v = 0;
    if (e - p < 4) return 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = p[i];
        unsigned d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return 0;
        v = v << 4 | d;
    }
    *out = v;
    return 1;
}

static size_t put_utf8(char *o, unsigned cp) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xc0 | cp >> 6); o[1] = (char)(0x80 | (cp & 0x3f)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* ps->p at the opening quote. Validates, and when building decodes into the
 * arena (decoded text is never longer than the source, so one allocation of
 * the source length suffices). Leaves ps->p after the closing quote. */
static int parse_string(parser_t *ps, const char **out, size_t *out_len) {
    const unsigned char *start = ++ps->p, *p = start, *e = ps->e;
    char buf[32];
    /* Pass 1: validate and find the end. */
    for (;;) {
        if (p >= e) return fail(ps, p, ME_JSON_ERR_EOF, "unterminated string");
        unsigned char c = *p;
        if (c == '"') break;
        if (c < 0x20) return fail(ps, p, ME_JSON_ERR_CONTROL, "control character 0x%02x in string (escape it)", c);
        if (c == '\\') {
            if (p + 1 >= e) return fail(ps, p + 1, ME_JSON_ERR_EOF, "unterminated escape");
            c = p[1];
            if (c == 'u') {
                unsigned cp;
                if (!hex4(p + 2, e, &cp)) return fail(ps, p, ME_JSON_ERR_ESCAPE, "\\u needs four hex digits");
                if (cp >= 0xdc00 && cp <= 0xdfff)
                    return fail(ps, p, ME_JSON_ERR_SURROGATE, "lone low surrogate \\u%04x", cp);
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    unsigned lo;
                    if (e - p < 12 || p[6] != '\\' || p[7] != 'u' || !hex4(p + 8, e, &lo) || lo < 0xdc00 || lo > 0xdfff)
                        return fail(ps, p, ME_JSON_ERR_SURROGATE, "high surrogate \\u%04x not followed by a low one", cp);
                    p += 12;
                } else {
                    p += 6;
                }
            } else if (c && strchr("\"\\/bfnrt", c)) {
                p += 2;
            } else {
                return fail(ps, p, ME_JSON_ERR_ESCAPE, "bad escape '\\%s'", show(p + 1, e, buf, sizeof buf));
            }
            continue;
        }
        size_t n = utf8_len(p, e);
        if (!n) return fail(ps, p, ME_JSON_ERR_UTF8, "invalid UTF-8 (byte 0x%02x) in string", c);
        p += n;
    }
    const unsigned char *end = p;
    ps->p = end + 1;
    if (!ps->doc) return 0;

    /* Pass 2: decode the validated text. */
    char *o = arena_alloc(ps->doc, (size_t)(end - start) + 1);
    if (!o) return fail(ps, start, ME_JSON_ERR_NOMEM, "out of memory");
    size_t n = 0;
    for (p = start; p < end;) {
        if (*p != '\\') { o[n++] = (char)*p++; continue; }
        unsigned char c = p[1];
        if (c == 'u') {
            unsigned cp, lo;
            hex4(p + 2, end, &cp);
            p += 6;
            if (cp >= 0xd800 && cp <= 0xdbff) {
                hex4(p + 2, end, &lo);
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                p += 6;
            }
            n += put_utf8(o + n, cp);
            continue;
        }
        switch (c) {
        case 'b': o[n++] = '\b'; break;
        case 'f': o[n++] = '\f'; break;
        case 'n': o[n++] = '\n'; break;
        case 'r': o[n++] = '\r'; break;
        case 't': o[n++] = '\t'; break;
        default: o[n++] = (char)c; break;   /* " \ / */
        }
        p += 2;
    }
    o[n] = 0;
    *out = o;
    *out_len = n;
    return 0;
}

static int parse_number(parser_t *ps, me_json_t *v) {
    const unsigned char *start = ps->p, *p = start, *e = ps->e;
    char buf[32];
    if (p < e && *p == '-') p++;
    if (p >= e || *p < '0' || *p > '9')
        return fail(ps, p, ME_JSON_ERR_NUMBER, "expected a digit, found %s",
                    show(p, e, buf, sizeof buf));
    if (*p == '0') {
        p++;
        if (p < e && *p >= '0' && *p <= '9') return fail(ps, p, ME_JSON_ERR_NUMBER, "leading zero in number");
    } else {
        while (p < e && *p >= '0' && *p <= '9') p++;
    }
    if (p < e && *p == '.') {
        p++;
        if (p >= e || *p < '0' || *p > '9')
            return fail(ps, p, ME_JSON_ERR_NUMBER, "expected a digit after '.', found %s", show(p, e, buf, sizeof buf));
        while (p < e && *p >= '0' && *p <= '9') p++;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < e && (*p == '+' || *p == '-')) p++;
        if (p >= e || *p < '0' || *p > '9')
            return fail(ps, p, ME_JSON_ERR_NUMBER, "expected a digit in the exponent, found %s",
                        show(p, e, buf, sizeof buf));
        while (p < e && *p >= '0' && *p <= '9') p++;
    }
    ps->p = p;
    if (!ps->doc) return 0;
    size_t n = (size_t)(p - start);
    char *raw = arena_alloc(ps->doc, n + 1);
    if (!raw) return fail(ps, start, ME_JSON_ERR_NOMEM, "out of memory");
    memcpy(raw, start, n);
    raw[n] = 0;
    v->type = ME_JSON_NUMBER;
    v->u.str = raw;
    v->len = n;
    v->num = strtod(raw, NULL);
    return 0;
}

static int push(parser_t *ps, const me_json_member_t *m) {
    if (ps->nstack == ps->capstack) {
        size_t cap = ps->capstack ? ps->capstack * 2 : 64;
        me_json_member_t *ns = realloc(ps->stack, cap * sizeof *ns);
        if (!ns) return fail(ps, ps->p, ME_JSON_ERR_NOMEM, "out of memory");
        ps->stack = ns;
        ps->capstack = cap;
    }
    ps->stack[ps->nstack++] = *m;
    return 0;
}

static int parse_value(parser_t *ps, me_json_t *v);

/* ps->p at '[' or '{'. Children are parsed onto the shared stack, then moved
 * into the arena in one piece when the container closes. */
static int parse_container(parser_t *ps, me_json_t *v) {
    const unsigned char *open = ps->p;
    int obj = *open == '{';
    unsigned char close = obj ? '}' : ']';
    char buf[32];
    if (++ps->depth > ME_JSON_MAX_DEPTH)
        return fail(ps, open, ME_JSON_ERR_DEPTH, "nested deeper than %d levels", ME_JSON_MAX_DEPTH);
    size_t base = ps->nstack;
    int rc;
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->e && *ps->p == close) {
        ps->p++;
    } else {
        for (;;) {
            me_json_member_t m = { 0 };
            skip_ws(ps);
            if (obj) {
                if (ps->p >= ps->e) return fail(ps, ps->p, ME_JSON_ERR_EOF, "unterminated object");
                if (*ps->p != '"')
                    return fail(ps, ps->p, ME_JSON_ERR_SYNTAX, "expected a string key, found %s",
                                show(ps->p, ps->e, buf, sizeof buf));
                if ((rc = parse_string(ps, &m.key, &m.key_len)) != 0) return rc;
                skip_ws(ps);
                if (ps->p >= ps->e) return fail(ps, ps->p, ME_JSON_ERR_EOF, "unterminated object");
                if (*ps->p != ':')
                    return fail(ps, ps->p, ME_JSON_ERR_SYNTAX, "expected ':' after key, found %s",
                                show(ps->p, ps->e, buf, sizeof buf));
                ps->p++;
            }
            if ((rc = parse_value(ps, &m.value)) != 0) return rc;
            if (ps->doc && (rc = push(ps, &m)) != 0) return rc;
            skip_ws(ps);
            if (ps->p >= ps->e) return fail(ps, ps->p, ME_JSON_ERR_EOF, obj ? "unterminated object" : "unterminated array");
            if (*ps->p == close) { ps->p++; break; }
            if (*ps->p != ',')
                return fail(ps, ps->p, ME_JSON_ERR_SYNTAX, "expected ',' or '%c', found %s", close,
                            show(ps->p, ps->e, buf, sizeof buf));
            const unsigned char *comma = ps->p++;
            skip_ws(ps);
            if (ps->p < ps->e && *ps->p == close)
                return fail(ps, comma, ME_JSON_ERR_TRAILING_COMMA, "trailing comma before '%c'", close);
        }
    }
    ps->depth--;
    if (!ps->doc) return 0;
    size_t n = ps->nstack - base;
    v->type = obj ? ME_JSON_OBJECT : ME_JSON_ARRAY;
    v->len = n;
    v->u.items = NULL;
    if (n == 0) return 0;
    if (obj) {
        me_json_member_t *ms = arena_alloc(ps->doc, n * sizeof *ms);
        if (!ms) return fail(ps, open, ME_JSON_ERR_NOMEM, "out of memory");
        memcpy(ms, ps->stack + base, n * sizeof *ms);
        v->u.members = ms;
    } else {
        me_json_t *items = arena_alloc(ps->doc, n * sizeof *items);
        if (!items) return fail(ps, open, ME_JSON_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) items[i] = ps->stack[base + i].value;
        v->u.items = items;
    }
    ps->nstack = base;
    return 0;
}

static int literal(parser_t *ps, const char *word, me_json_type_t type, me_json_t *v) {
    size_t n = strlen(word);
    const unsigned char *p = ps->p;
    for (size_t i = 0; i < n; i++) {
        if (p + i >= ps->e) return fail(ps, p + i, ME_JSON_ERR_EOF, "input ends inside '%s'", word);
        if (p[i] != (unsigned char)word[i]) return fail(ps, p, ME_JSON_ERR_SYNTAX, "expected '%s'", word);
    }
    ps->p += n;
    v->type = type;
    return 0;
}

static int parse_value(parser_t *ps, me_json_t *v) {
    char buf[32];
    skip_ws(ps);
    if (ps->p >= ps->e) return fail(ps, ps->p, ME_JSON_ERR_EOF, "expected a value, found end of input");
    memset(v, 0, sizeof *v);
    switch (*ps->p) {
    case '{':
    case '[': return parse_container(ps, v);
    case '"': {
        const char *s = NULL;
        size_t n = 0;
        int rc = parse_string(ps, &s, &n);
        v->type = ME_JSON_STRING;
        v->u.str = s;
        v->len = n;
        return rc;
    }
    case 't': return literal(ps, "true", ME_JSON_TRUE, v);
    case 'f': return literal(ps, "false", ME_JSON_FALSE, v);
    case 'n': return literal(ps, "null", ME_JSON_NULL, v);
    default:
        if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9')) return parse_number(ps, v);
        return fail(ps, ps->p, ME_JSON_ERR_SYNTAX, "expected a value, found %s", show(ps->p, ps->e, buf, sizeof buf));
    }
}

static int run(parser_t *ps, me_json_t *root) {
    char buf[32];
    int rc = parse_value(ps, root);
    if (rc != 0) return rc;
    skip_ws(ps);
    if (ps->p < ps->e)
        return fail(ps, ps->p, ME_JSON_ERR_TRAILING, "unexpected %s after the value", show(ps->p, ps->e, buf, sizeof buf));
    return 0;
}

int me_json_parse(const char *text, size_t len, me_json_doc_t **out, me_json_error_t *err) {
    *out = NULL;
    if (err) memset(err, 0, sizeof *err);
    me_json_doc_t *d = calloc(1, sizeof *d);
    parser_t ps = { 0 };
    ps.s = ps.p = (const unsigned char *)(text ? text : "");
    ps.e = ps.s + (text ? len : 0);
    ps.err = err;
    if (!d) return fail(&ps, ps.p, ME_JSON_ERR_NOMEM, "out of memory");
    ps.doc = d;
    int rc = run(&ps, &d->root);
    free(ps.stack);
    if (rc != 0) {
        me_json_free(d);
        return rc;
    }
    *out = d;
    return 0;
}

int me_json_valid(const char *text, size_t len) {
    if (!text) return 0;
    parser_t ps = { 0 };
    me_json_t root;
    ps.s = ps.p = (const unsigned char *)text;
    ps.e = ps.s + len;
    return run(&ps, &root) == 0;
}

void me_json_free(me_json_doc_t *doc) {
    if (!doc) return;
    for (arena_block_t *b = doc->blocks, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    free(doc);
}

const me_json_t *me_json_root(const me_json_doc_t *doc) { return doc ? &doc->root : NULL; }

/* ---- lookups ---- */

const me_json_t *me_json_get(const me_json_t *obj, const char *key) {
    if (!obj || obj->type != ME_JSON_OBJECT || !key) return NULL;
    size_t kl = strlen(key);
    for (size_t i = 0; i < obj->len; i++) {
        const me_json_member_t *m = &obj->u.members[i];
        if (m->key_len == kl && memcmp(m->key, key, kl) == 0) return &m->value;
    }
    return NULL;
}

const me_json_t *me_json_at(const me_json_t *arr, size_t i) {
    if (!arr || arr->type != ME_JSON_ARRAY || i >= arr->len) return NULL;
    return &arr->u.items[i];
}

size_t me_json_len(const me_json_t *v) {
    return v && (v->type == ME_JSON_ARRAY || v->type == ME_JSON_OBJECT) ? v->len : 0;
}

const char *me_json_str(const me_json_t *v) { return v && v->type == ME_JSON_STRING ? v->u.str : NULL; }

int me_json_num(const me_json_t *v, double *out) {
    if (!v) return ME_ENOTFOUND;
    if (v->type != ME_JSON_NUMBER) return ME_EINVAL;
    if (!isfinite(v->num)) return ME_ERANGE;
    *out = v->num;
    return 0;
}

int me_json_int64(const me_json_t *v, int64_t *out) {
    if (!v) return ME_ENOTFOUND;
    if (v->type != ME_JSON_NUMBER) return ME_EINVAL;
    const char *s = v->u.str;
    if (!strpbrk(s, ".eE")) {
        /* Plain integer text: exact, with overflow detected digit by digit. */
        int neg = *s == '-';
        uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, acc = 0;
        for (const char *p = s + neg; *p; p++) {
            unsigned d = (unsigned)(*p - '0');
            if (acc > (limit - d) / 10) return ME_ERANGE;
            acc = acc * 10 + d;
        }
        *out = neg ? (acc == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)acc) : (int64_t)acc;
        return 0;
    }
    double d = v->num;
    if (!isfinite(d) || fabs(d) >= 9007199254740992.0) return ME_ERANGE;
    if (d != floor(d)) return ME_EINVAL;
    *out = (int64_t)d;
    return 0;
}

int me_json_bool(const me_json_t *v, int *out) {
    if (!v) return ME_ENOTFOUND;
    if (v->type != ME_JSON_TRUE && v->type != ME_JSON_FALSE) return ME_EINVAL;
    *out = v->type == ME_JSON_TRUE;
    return 0;
}

/* ---- writer ---- */

static void w_write(me_json_writer_t *w, const char *s, size_t n) {
    if (w->err || n == 0) return;
    if (w->f) {
        if (fwrite(s, 1, n, w->f) != n) w->err = ME_EIO;
        return;
    }
    if (w->cap - w->len < n + 1) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap - w->len < n + 1) {
            if (cap > SIZE_MAX / 2) { w->err = ME_ENOMEM; return; }
            cap *= 2;
        }
        char *nb = realloc(w->buf, cap);
        if (!nb) { w->err = ME_ENOMEM; return; }
        w->buf = nb;
        w->cap = cap;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = 0;
}

static void w_puts(me_json_writer_t *w, const char *s) { w_write(w, s, strlen(s)); }

static void w_string(me_json_writer_t *w, const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s, *e = p + n, *run_start;
    w_write(w, "\"", 1);
    while (p < e) {
        /* Copy runs of bytes that need no escaping in one write. */
        run_start = p;
        while (p < e && *p >= 0x20 && *p != '"' && *p != '\\' && *p < 0x80) p++;
        w_write(w, (const char *)run_start, (size_t)(p - run_start));
        if (p >= e) break;
        unsigned char ch = *p;
        char esc[8];
        if (ch == '"' || ch == '\\') { esc[0] = '\\'; esc[1] = (char)ch; w_write(w, esc, 2); p++; }
        else if (ch == '\n') { w_write(w, "\\n", 2); p++; }
        else if (ch == '\r') { w_write(w, "\\r", 2); p++; }
        else if (ch == '\t') { w_write(w, "\\t", 2); p++; }
        else if (ch < 0x20) { snprintf(esc, sizeof esc, "\\u%04x", ch); w_write(w, esc, 6); p++; }
        else {
            size_t len = utf8_len(p, e);
            if (len == 0) { w_write(w, "\\ufffd", 6); p++; }  /* not UTF-8: keep the output valid JSON */
            else { w_write(w, (const char *)p, len); p += len; }
        }
    }
    w_write(w, "\"", 1);
}

static void w_sep(me_json_writer_t *w, const char *key) {
    if (w->depth > 0 && !w->first[w->depth]) w_write(w, ",", 1);
    w->first[w->depth] = 0;
    if (key && w->depth > 0) {
        w_string(w, key, strlen(key));
        w_write(w, ":", 1);
    }
}

void me_json_writer_init_file(me_json_writer_t *w, FILE *f) {
    memset(w, 0, sizeof *w);
    w->f = f;
}

void me_json_writer_init_buf(me_json_writer_t *w) { memset(w, 0, sizeof *w); }

int me_json_writer_error(const me_json_writer_t *w) { return w->err; }

char *me_json_writer_take(me_json_writer_t *w, size_t *len) {
    char *b = w->buf;
    size_t n = w->len;
    if (w->err) { free(b); b = NULL; n = 0; }
    else if (!b) b = calloc(1, 1);   /* nothing written yet: "" */
    if (len) *len = b ? n : 0;
    memset(w, 0, sizeof *w);
    return b;
}

void me_json_writer_free(me_json_writer_t *w) {
    free(w->buf);
    memset(w, 0, sizeof *w);
}

static void w_open(me_json_writer_t *w, const char *key, char ch) {
    w_sep(w, key);
    w_write(w, &ch, 1);
    if (w->depth < ME_JSON_MAX_DEPTH) w->depth++;
    else if (!w->err) w->err = ME_ETOOBIG;
    w->first[w->depth] = 1;
}

static void w_close(me_json_writer_t *w, char ch) {
    w_write(w, &ch, 1);
    if (w->depth) w->depth--;
}

void me_json_obj_begin(me_json_writer_t *w, const char *key) { w_open(w, key, '{'); }
void me_json_arr_begin(me_json_writer_t *w, const char *key) { w_open(w, key, '['); }
void me_json_obj_end(me_json_writer_t *w) { w_close(w, '}'); }
void me_json_arr_end(me_json_writer_t *w) { w_close(w, ']'); }

void me_json_put_str(me_json_writer_t *w, const char *key, const char *s) {
    if (!s) { me_json_put_null(w, key); return; }
    me_json_put_strn(w, key, s, strlen(s));
}

void me_json_put_strn(me_json_writer_t *w, const char *key, const char *s, size_t n) {
    w_sep(w, key);
    w_string(w, s, n);
}

void me_json_put_int(me_json_writer_t *w, const char *key, long long v) {
    char b[32];
    w_sep(w, key);
    snprintf(b, sizeof b, "%lld", v);
    w_puts(w, b);
}

void me_json_put_u64(me_json_writer_t *w, const char *key, uint64_t v) {
    char b[32];
    w_sep(w, key);
    snprintf(b, sizeof b, "%llu", (unsigned long long)v);
    w_puts(w, b);
}

void me_json_put_num_prec(me_json_writer_t *w, const char *key, double v, int digits) {
    char b[64];
    w_sep(w, key);
    if (!isfinite(v)) { w_puts(w, "null"); return; }
    if (digits < 1 || digits > 17) digits = 17;
    snprintf(b, sizeof b, "%.*g", digits, v);
    w_puts(w, b);
}

void me_json_put_num(me_json_writer_t *w, const char *key, double v) {
    char b[64];
    w_sep(w, key);
    if (!isfinite(v)) { w_puts(w, "null"); return; }
    snprintf(b, sizeof b, "%.15g", v);
    if (strtod(b, NULL) != v) snprintf(b, sizeof b, "%.17g", v);
    w_puts(w, b);
}

void me_json_put_bool(me_json_writer_t *w, const char *key, int v) { w_sep(w, key); w_puts(w, v ? "true" : "false"); }
void me_json_put_null(me_json_writer_t *w, const char *key) { w_sep(w, key); w_puts(w, "null"); }

void me_json_put_raw(me_json_writer_t *w, const char *key, const char *json, size_t n) {
    w_sep(w, key);
    w_write(w, json, n);
}

void me_json_put_value(me_json_writer_t *w, const char *key, const me_json_t *v) {
    switch (v->type) {
    case ME_JSON_NULL: me_json_put_null(w, key); break;
    case ME_JSON_FALSE:
    case ME_JSON_TRUE: me_json_put_bool(w, key, v->type == ME_JSON_TRUE); break;
    case ME_JSON_NUMBER: me_json_put_raw(w, key, v->u.str, v->len); break;
    case ME_JSON_STRING: me_json_put_strn(w, key, v->u.str, v->len); break;
    case ME_JSON_ARRAY:
        me_json_arr_begin(w, key);
        for (size_t i = 0; i < v->len; i++) me_json_put_value(w, NULL, &v->u.items[i]);
        me_json_arr_end(w);
        break;
    case ME_JSON_OBJECT:
        me_json_obj_begin(w, key);
        for (size_t i = 0; i < v->len; i++) me_json_put_value(w, v->u.members[i].key, &v->u.members[i].value);
        me_json_obj_end(w);
        break;
    }
}

void me_json_write_bytes(me_json_writer_t *w, const char *s, size_t n) { w_write(w, s, n); }
