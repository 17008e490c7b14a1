#include "common/filter_parse.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/validate.h"

/* Parentheses and NOTs nested in an expression. This bounds the parser's
 * recursion; redundant ones add no depth to the tree, so a few more than
 * the tree's own limit are allowed. */
#define FP_NEST_MAX (4 * ME_FILTER_DEPTH_MAX)

/* ---- the tree ---- */

static void str_free(char *s) {
    if (s && s != protobuf_c_empty_string) free(s);
}

static void match_free(Metaembed__Match *m) {
    if (!m) return;
    str_free(m->field);
    for (size_t i = 0; i < m->n_keywords; i++) str_free(m->keywords[i]);
    free(m->keywords);
    free(m->integers);
    free(m->booleans);
    free(m);
}

static void range_free(Metaembed__Range *r) {
    if (!r) return;
    str_free(r->field);
    free(r->gt);
    free(r->gte);
    free(r->lt);
    free(r->lte);
    free(r);
}

static void cond_free(Metaembed__Condition *c) {
    if (!c) return;
    switch (c->condition_case) {
    case METAEMBED__CONDITION__CONDITION_MATCH: match_free(c->match); break;
    case METAEMBED__CONDITION__CONDITION_RANGE: range_free(c->range); break;
    case METAEMBED__CONDITION__CONDITION_EXISTS: str_free(c->exists); break;
    case METAEMBED__CONDITION__CONDITION_FILTER: me_filter_free(c->filter); break;
    default: break;
    }
    free(c);
}

static void conds_free(Metaembed__Condition **v, size_t n) {
    for (size_t i = 0; i < n; i++) cond_free(v[i]);
    free(v);
}

/* Recursion is bounded: every tree built here is at most
 * ME_FILTER_DEPTH_MAX + 1 deep, even one abandoned half way. */
void me_filter_free(Metaembed__Filter *f) {
    if (!f) return;
    conds_free(f->must, f->n_must);
    conds_free(f->should, f->n_should);
    conds_free(f->must_not, f->n_must_not);
    free(f);
}

/* The array v holding n elements of size sz, with room for one more:
 * capacities are powers of two, so it grows when n is 0 or one. NULL when
 * out of memory (v is then untouched). */
static void *grow(void *v, size_t n, size_t sz) {
    if (n & (n - 1)) return v;
    return realloc(v, (n ? 2 * n : 1) * sz);
}

static int push_cond(Metaembed__Condition ***v, size_t *n, Metaembed__Condition *c) {
    Metaembed__Condition **p = grow(*v, *n, sizeof *p);
    if (!p) return ME_ENOMEM;
    *v = p;
    p[(*n)++] = c;
    return 0;
}

static char *dupn(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

static Metaembed__Filter *filter_new(void) {
    Metaembed__Filter *f = malloc(sizeof *f);
    if (f) metaembed__filter__init(f);
    return f;
}

/* ---- parser state and errors, for both forms ---- */

typedef enum { T_END, T_LP, T_RP, T_COMMA, T_OP, T_WORD, T_QUOTED } tok_kind_t;
typedef enum { OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE } op_t;

typedef struct {
    tok_kind_t kind;
    size_t at, len;  /* the token's bytes: s[at..at+len) */
    op_t op;
} tok_t;

typedef struct {
    int json;              /* which form: errors say where differently */
    const char *s;         /* expression: the text */
    size_t n, pos;         /* its length, and where the lexer stands */
    tok_t t;               /* the current token */
    int nest;              /* parentheses and NOTs open around it */
    char path[256];        /* JSON: where we are ("must[2].range") */
    size_t conds, values;  /* counted against the limits */
    char *err;
    size_t cap;
} fp_t;

__attribute__((format(printf, 3, 4)))
static int fail(fp_t *p, size_t at, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!p->json) me_set_err(p->err, p->cap, "filter: at byte %zu: %s", at, msg);
    else if (p->path[0]) me_set_err(p->err, p->cap, "filter: %s (at %s)", msg, p->path);
    else me_set_err(p->err, p->cap, "filter: %s", msg);
    if (p->err && p->cap) me_utf8_clip(p->err);
    return ME_EINVAL;
}

static int nomem(fp_t *p) {
    me_set_err(p->err, p->cap, "filter: out of memory");
    return ME_ENOMEM;
}

/* s[0..n) quoted for an error message, never echoing raw bytes: printable
 * ASCII as is, anything else as \xNN, at most 32 bytes of it. */
#define SNIP_MAX 32
typedef struct { char s[SNIP_MAX * 4 + 8]; } snip_t;
static const char *snip(snip_t *b, const char *s, size_t n) {
    size_t o = 0;
    b->s[o++] = '\'';
    for (size_t i = 0; i < n && i < SNIP_MAX; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\') b->s[o++] = (char)c;
        else o += (size_t)snprintf(b->s + o, sizeof b->s - o, "\\x%02x", c);
    }
    b->s[o++] = '\'';
    if (n > SNIP_MAX) { memcpy(b->s + o, "...", 3); o += 3; }
    b->s[o] = 0;
    return b->s;
}

static Metaembed__Condition *cond_new(fp_t *p, size_t at, int *rc) {
    if (p->conds >= ME_FILTER_CONDITIONS_MAX) {
        *rc = fail(p, at, "more than %d conditions", ME_FILTER_CONDITIONS_MAX);
        return NULL;
    }
    Metaembed__Condition *c = malloc(sizeof *c);
    if (!c) { *rc = nomem(p); return NULL; }
    metaembed__condition__init(c);
    p->conds++;
    return c;
}

/* Condition{filter: f}; takes f, freeing it on failure. */
static int cond_of_filter(fp_t *p, size_t at, Metaembed__Filter *f, Metaembed__Condition **out) {
    int rc;
    Metaembed__Condition *c = cond_new(p, at, &rc);
    if (!c) { me_filter_free(f); return rc; }
    c->condition_case = METAEMBED__CONDITION__CONDITION_FILTER;
    c->filter = f;
    *out = c;
    return 0;
}

static int too_deep(fp_t *p, size_t at) {
    return fail(p, at, "nested deeper than %d levels", ME_FILTER_DEPTH_MAX);
}

/* ---- values and matches, for both forms ---- */

typedef enum { V_KEYWORD, V_INT, V_BIGINT, V_NUM, V_BOOL } vkind_t;

typedef struct {
    vkind_t kind;
    size_t at;          /* expression: where it was written */
    const char *raw;    /* its text as written (integers and numbers) */
    size_t raw_len;
    char *str;          /* V_KEYWORD: malloc'd, NUL-terminated */
    int64_t i;          /* V_INT */
    double d;           /* V_INT, V_BIGINT, V_NUM */
    int b;              /* V_BOOL */
} value_t;

static const char *vkind_name(vkind_t k) {
    switch (k) {
    case V_KEYWORD: return "a keyword";
    case V_INT: return "an integer";
    case V_BOOL: return "a boolean";
    default: return "a number";
    }
}

static int keyword_check(fp_t *p, size_t at, size_t n) {
    if (n > ME_KEYWORD_MAX)
        return fail(p, at, "a keyword longer than %d bytes (%zu)", ME_KEYWORD_MAX, n);
    return 0;
}

/* Appends v (whose string it takes) to m's one list of values. */
static int match_add(fp_t *p, Metaembed__Match *m, value_t *v) {
    snip_t sn;
    if (v->kind == V_NUM) {
        /* A number's text is all [0-9.eE+-], safe to echo. */
        int n = (int)(v->raw_len < SNIP_MAX ? v->raw_len : SNIP_MAX);
        if (p->json)
            return fail(p, v->at, "use a range for non-integer numbers: {\"field\": \"%s\", \"range\": "
                        "{\"gte\": %.*s, \"lte\": %.*s}}", m->field, n, v->raw, n, v->raw);
        return fail(p, v->at, "use a range for non-integer numbers: %s>=%.*s AND %s<=%.*s", m->field, n, v->raw,
                    m->field, n, v->raw);
    }
    if (v->kind == V_BIGINT)
        return fail(p, v->at, "%s is not a 64-bit integer (use a range for other numbers%s)",
                    snip(&sn, v->raw, v->raw_len), p->json ? "" : ", or quote it for a keyword");
    int have = m->n_keywords ? V_KEYWORD : m->n_integers ? V_INT : m->n_booleans ? V_BOOL : -1;
    if (have >= 0 && have != (int)v->kind)
        return fail(p, v->at, "mixed value types: %s and %s (a match lists values of one type)",
                    vkind_name((vkind_t)have), vkind_name(v->kind));
    if (p->values >= ME_FILTER_VALUES_MAX)
        return fail(p, v->at, "more than %d values", ME_FILTER_VALUES_MAX);
    if (v->kind == V_KEYWORD) {
        char **a = grow(m->keywords, m->n_keywords, sizeof *a);
        if (!a) return nomem(p);
        m->keywords = a;
        a[m->n_keywords++] = v->str;
        v->str = NULL;
    } else if (v->kind == V_INT) {
        int64_t *a = grow(m->integers, m->n_integers, sizeof *a);
        if (!a) return nomem(p);
        m->integers = a;
        a[m->n_integers++] = v->i;
    } else {
        protobuf_c_boolean *a = grow(m->booleans, m->n_booleans, sizeof *a);
        if (!a) return nomem(p);
        m->booleans = a;
        a[m->n_booleans++] = v->b;
    }
    p->values++;
    return 0;
}

static Metaembed__Match *match_new(const char *field, size_t n) {
    Metaembed__Match *m = malloc(sizeof *m);
    if (!m) return NULL;
    metaembed__match__init(m);
    if (!(m->field = dupn(field, n))) { free(m); return NULL; }
    return m;
}

static Metaembed__Range *range_new(const char *field, size_t n) {
    Metaembed__Range *r = malloc(sizeof *r);
    if (!r) return NULL;
    metaembed__range__init(r);
    if (!(r->field = dupn(field, n))) { free(r); return NULL; }
    return r;
}

/* Sets one bound (an optional, on the wire a repeated of at most one). */
static int range_set(Metaembed__Range *r, op_t op, double d) {
    double *b = malloc(sizeof *b);
    if (!b) return ME_ENOMEM;
    *b = d;
    switch (op) {
    case OP_GT: free(r->gt); r->gt = b; r->n_gt = 1; break;
    case OP_GE: free(r->gte); r->gte = b; r->n_gte = 1; break;
    case OP_LT: free(r->lt); r->lt = b; r->n_lt = 1; break;
    default: free(r->lte); r->lte = b; r->n_lte = 1; break;
    }
    return 0;
}

/* ---- the expression form: lexer ---- */

static int is_blank(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static int is_word(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '_' || c == '.' ||
           c == ':' || c == '/' || c == '@' || c == '+' || c == '-';
}

static int lex(fp_t *p) {
    const char *s = p->s;
    size_t i = p->pos, n = p->n, len = 1;
    while (i < n && is_blank((unsigned char)s[i])) i++;
    tok_t *t = &p->t;
    t->at = i;
    if (i == n) {
        t->kind = T_END;
        t->len = 0;
        p->pos = i;
        return 0;
    }
    unsigned char c = (unsigned char)s[i], next = i + 1 < n ? (unsigned char)s[i + 1] : 0;
    snip_t sn;
    switch (c) {
    case '(': t->kind = T_LP; break;
    case ')': t->kind = T_RP; break;
    case ',': t->kind = T_COMMA; break;
    case '=':
        t->kind = T_OP, t->op = OP_EQ;
        if (next == '=') len = 2;
        break;
    case '!':
        if (next != '=') return fail(p, i, "'!' alone is not an operator (use '!=' or NOT)");
        t->kind = T_OP, t->op = OP_NE, len = 2;
        break;
    case '<':
    case '>':
        t->kind = T_OP;
        if (next == '=') len = 2;
        t->op = c == '<' ? (len == 2 ? OP_LE : OP_LT) : (len == 2 ? OP_GE : OP_GT);
        break;
    case '\'':
    case '"': {
        size_t j = i + 1;
        for (; j < n && (unsigned char)s[j] != c; j++) {
            if (s[j] == 0) return fail(p, j, "a NUL byte in a quoted value");
            if (s[j] != '\\') continue;
            if (j + 1 >= n) { j = n; break; }
            unsigned char e = (unsigned char)s[j + 1];
            if (e != '\\' && e != '\'' && e != '"')
                return fail(p, j, "unknown escape %s in a quoted value (only \\\\, \\' and \\\" are escapes)",
                            snip(&sn, s + j, 2));
            j++;
        }
        if (j >= n) return fail(p, i, "a quoted value without its closing %c", c);
        if (!me_utf8_valid((const uint8_t *)s + i + 1, j - i - 1))
            return fail(p, i, "a quoted value that is not valid UTF-8");
        t->kind = T_QUOTED;
        len = j + 1 - i;
        break;
    }
    default:
        if (!is_word(c)) return fail(p, i, "unexpected character %s", snip(&sn, s + i, 1));
        while (i + len < n && is_word((unsigned char)s[i + len])) len++;
        t->kind = T_WORD;
        break;
    }
    t->len = len;
    p->pos = i + len;
    return 0;
}

static int word_is(const fp_t *p, const tok_t *t, const char *kw) {
    size_t n = strlen(kw);
    if (t->kind != T_WORD || t->len != n) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = p->s[t->at + i];
        if (c >= 'a' && c <= 'z') c = (char)(c - 'a' + 'A');
        if (c != kw[i]) return 0;
    }
    return 1;
}

static int kw(const fp_t *p, const char *k) { return word_is(p, &p->t, k); }

static int reserved(const fp_t *p, const tok_t *t) {
    static const char *const words[] = { "AND", "OR", "NOT", "IN", "EXISTS", "TRUE", "FALSE" };
    for (size_t i = 0; i < sizeof words / sizeof *words; i++)
        if (word_is(p, t, words[i])) return 1;
    return 0;
}

/* ", found 'x'" or ", found the end", for messages about the current token. */
typedef struct { char s[sizeof(snip_t) + 16]; } found_t;
static const char *found(const fp_t *p, found_t *b) {
    snip_t sn;
    if (p->t.kind == T_END) snprintf(b->s, sizeof b->s, ", found the end");
    else snprintf(b->s, sizeof b->s, ", found %s", snip(&sn, p->s + p->t.at, p->t.len));
    return b->s;
}

static const char *op_name(op_t op) {
    static const char *const names[] = { "=", "!=", "<", "<=", ">", ">=" };
    return names[op];
}

/* The decoded bytes of a quoted token (the lexer checked its escapes). */
static char *unquote(const char *s, size_t len, size_t *out_len) {
    char *d = malloc(len);
    if (!d) return NULL;
    size_t o = 0;
    for (size_t i = 1; i + 1 < len; i++) {
        if (s[i] == '\\') i++;
        d[o++] = s[i];
    }
    d[o] = 0;
    *out_len = o;
    return d;
}

/* 1: an integer, -?(0|[1-9][0-9]*); 2: a number, the same with a fraction
 * or an exponent; 0: neither. */
static int numeric_kind(const char *s, size_t n) {
    size_t i = 0;
    int kind = 1;
    if (i < n && s[i] == '-') i++;
    if (i == n || !is_digit((unsigned char)s[i])) return 0;
    if (s[i] == '0') i++;
    else while (i < n && is_digit((unsigned char)s[i])) i++;
    if (i < n && s[i] == '.') {
        if (++i == n || !is_digit((unsigned char)s[i])) return 0;
        while (i < n && is_digit((unsigned char)s[i])) i++;
        kind = 2;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        if (++i < n && (s[i] == '+' || s[i] == '-')) i++;
        if (i == n || !is_digit((unsigned char)s[i])) return 0;
        while (i < n && is_digit((unsigned char)s[i])) i++;
        kind = 2;
    }
    return i == n ? kind : 0;
}

/* The value at the current token (after `after`, for messages); advances. */
static int parse_value(fp_t *p, value_t *v, const char *after) {
    tok_t t = p->t;
    const char *s = p->s + t.at;
    found_t fb;
    memset(v, 0, sizeof *v);
    v->at = t.at;
    v->raw = s;
    v->raw_len = t.len;
    if (t.kind == T_QUOTED) {
        size_t n;
        if (!(v->str = unquote(s, t.len, &n))) return nomem(p);
        v->kind = V_KEYWORD;
        int rc = keyword_check(p, t.at, n);
        if (rc) { free(v->str); v->str = NULL; return rc; }
    } else if (t.kind != T_WORD) {
        return fail(p, t.at, "expected a value after %s%s", after, found(p, &fb));
    } else if (word_is(p, &t, "TRUE") || word_is(p, &t, "FALSE")) {
        v->kind = V_BOOL;
        v->b = word_is(p, &t, "TRUE");
    } else if (reserved(p, &t)) {
        return fail(p, t.at, "expected a value after %s%s (quote a keyword value that is a reserved word)",
                    after, found(p, &fb));
    } else {
        int k = numeric_kind(s, t.len);
        if (k == 0) {
            int rc = keyword_check(p, t.at, t.len);
            if (rc) return rc;
            if (!(v->str = dupn(s, t.len))) return nomem(p);
            v->kind = V_KEYWORD;
        } else {
            char *num = dupn(s, t.len);  /* strtod needs the NUL */
            if (!num) return nomem(p);
            v->d = strtod(num, NULL);
            free(num);
            v->kind = k == 1 ? V_INT : V_NUM;
            if (k == 1) {
                /* Exact, with overflow caught digit by digit. */
                int neg = s[0] == '-';
                uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, acc = 0;
                for (size_t i = (size_t)neg; i < t.len && v->kind == V_INT; i++) {
                    unsigned d = (unsigned)(s[i] - '0');
                    if (acc > (limit - d) / 10) v->kind = V_BIGINT;
                    else acc = acc * 10 + d;
                }
                if (v->kind == V_INT)
                    v->i = neg ? (acc == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)acc) : (int64_t)acc;
            }
        }
    }
    int rc = lex(p);
    if (rc) { free(v->str); v->str = NULL; }
    return rc;
}

/* ---- the expression form: parser ----
 * A parsed operand is a leaf (one condition, maybe negated) or a group (an
 * AND or OR filter of two or more operands). Operands join their parent's
 * filter: a leaf into must / should (negated: must_not, or inside an OR a
 * nested {must_not: [c]}), a group of the same operator flattened into it,
 * one of the other operator as a nested filter. */

typedef enum { N_LEAF, N_AND, N_OR } node_kind_t;

typedef struct {
    node_kind_t kind;
    int neg;                  /* a leaf: its condition negated */
    int depth;                /* a leaf: its nested filter's depth (0: none); a group: its filter's */
    Metaembed__Condition *c;  /* a leaf */
    Metaembed__Filter *f;     /* a group */
} node_t;

static void node_free(node_t *x) {
    cond_free(x->c);
    me_filter_free(x->f);
    memset(x, 0, sizeof *x);
}

/* Moves every condition of list `from` onto `to`. */
static int move_conds(Metaembed__Condition ***to, size_t *nto, Metaembed__Condition **from, size_t nfrom) {
    for (size_t i = 0; i < nfrom; i++) {
        if (push_cond(to, nto, from[i])) return ME_ENOMEM;
        from[i] = NULL;
    }
    return 0;
}

/* Adds operand x (taken, always) to group g (its kind N_AND or N_OR). */
static int group_add(fp_t *p, node_t *g, node_t *x, size_t at) {
    Metaembed__Filter *f = g->f;
    int is_and = g->kind == N_AND, rc = 0, d;
    Metaembed__Condition ***list = is_and ? &f->must : &f->should;
    size_t *nlist = is_and ? &f->n_must : &f->n_should;
    if (x->kind == g->kind) {
        Metaembed__Filter *s = x->f;
        if (move_conds(&f->must, &f->n_must, s->must, s->n_must) ||
            move_conds(&f->should, &f->n_should, s->should, s->n_should) ||
            move_conds(&f->must_not, &f->n_must_not, s->must_not, s->n_must_not))
            rc = nomem(p);
        d = x->depth;
    } else if (x->kind == N_LEAF && (!x->neg || is_and)) {
        if (x->neg ? push_cond(&f->must_not, &f->n_must_not, x->c) : push_cond(list, nlist, x->c)) rc = nomem(p);
        else x->c = NULL;
        d = 1 + x->depth;
    } else {
        Metaembed__Filter *w;
        int wd;
        if (x->kind == N_LEAF) {
            if (!(w = filter_new())) { node_free(x); return nomem(p); }
            if (push_cond(&w->must_not, &w->n_must_not, x->c)) { free(w); node_free(x); return nomem(p); }
            x->c = NULL;
            wd = 1 + x->depth;
        } else {
            w = x->f;
            x->f = NULL;
            wd = x->depth;
        }
        d = 1 + wd;
        if (d > ME_FILTER_DEPTH_MAX) {
            me_filter_free(w);
            node_free(x);
            return too_deep(p, at);
        }
        Metaembed__Condition *c = NULL;
        if (!(rc = cond_of_filter(p, at, w, &c)) && push_cond(list, nlist, c)) {
            cond_free(c);
            rc = nomem(p);
        }
    }
    node_free(x);
    if (d > g->depth) g->depth = d;
    if (!rc && g->depth > ME_FILTER_DEPTH_MAX) rc = too_deep(p, at);
    return rc;
}

static int parse_or(fp_t *p, node_t *out);

/* The condition at the current token, as a leaf. */
static int parse_cond(fp_t *p, node_t *out) {
    tok_t ft = p->t;
    const char *field = p->s + ft.at;
    found_t fb;
    char nerr[256];
    int rc;
    if (ft.kind != T_WORD || reserved(p, &ft))
        return fail(p, ft.at, "expected a condition (FIELD op value, FIELD IN (...), FIELD EXISTS), NOT or '('%s",
                    found(p, &fb));
    if (me_check_field_name(field, ft.len, nerr, sizeof nerr)) return fail(p, ft.at, "%s", nerr);
    if ((rc = lex(p))) return rc;

    Metaembed__Condition *c = NULL;
    Metaembed__Match *m = NULL;
    Metaembed__Range *r = NULL;
    value_t v = { 0 };
    int neg = 0;
    if (p->t.kind == T_OP) {
        op_t op = p->t.op;
        char after[8];
        snprintf(after, sizeof after, "'%.*s'", (int)p->t.len, p->s + p->t.at);
        if ((rc = lex(p)) || (rc = parse_value(p, &v, after))) return rc;
        if (op == OP_EQ || op == OP_NE) {
            neg = op == OP_NE;
            if (!(m = match_new(field, ft.len))) { rc = nomem(p); goto done; }
            if ((rc = match_add(p, m, &v))) goto done;
        } else {
            if (v.kind == V_KEYWORD || v.kind == V_BOOL) {
                rc = fail(p, v.at, "expected a number after '%s' (a range bounds an integer or float field)",
                          op_name(op));
                goto done;
            }
            if (!isfinite(v.d)) {
                rc = fail(p, v.at, "a range bound must be finite");
                goto done;
            }
            if (!(r = range_new(field, ft.len)) || range_set(r, op, v.d)) { rc = nomem(p); goto done; }
        }
    } else if (kw(p, "IN") || kw(p, "NOT")) {
        if (kw(p, "NOT")) {
            neg = 1;
            if ((rc = lex(p))) return rc;
            if (!kw(p, "IN")) return fail(p, p->t.at, "expected IN after NOT%s", found(p, &fb));
        }
        if ((rc = lex(p))) return rc;
        if (p->t.kind != T_LP) return fail(p, p->t.at, "expected '(' after IN%s", found(p, &fb));
        if (!(m = match_new(field, ft.len))) return nomem(p);
        const char *after = "'('";
        do {
            if ((rc = lex(p)) || (rc = parse_value(p, &v, after)) || (rc = match_add(p, m, &v))) goto done;
            free(v.str);
            v.str = NULL;
            after = "','";
        } while (p->t.kind == T_COMMA);
        if (p->t.kind != T_RP) {
            rc = fail(p, p->t.at, "expected ',' or ')' in the IN list%s", found(p, &fb));
            goto done;
        }
        if ((rc = lex(p))) goto done;
    } else if (kw(p, "EXISTS")) {
        if ((rc = lex(p))) return rc;
        if (!(c = cond_new(p, ft.at, &rc))) return rc;
        if (!(c->exists = dupn(field, ft.len))) { free(c); return nomem(p); }
        c->condition_case = METAEMBED__CONDITION__CONDITION_EXISTS;
        *out = (node_t){ .kind = N_LEAF, .c = c };
        return 0;
    } else {
        return fail(p, p->t.at, "expected an operator (= == != < <= > >=), IN, NOT IN or EXISTS after the field "
                    "'%.*s'%s", (int)ft.len, field, found(p, &fb));
    }
    if (!(c = cond_new(p, ft.at, &rc))) goto done;
    if (m) {
        c->condition_case = METAEMBED__CONDITION__CONDITION_MATCH;
        c->match = m;
    } else {
        c->condition_case = METAEMBED__CONDITION__CONDITION_RANGE;
        c->range = r;
    }
    *out = (node_t){ .kind = N_LEAF, .neg = neg, .c = c };
    free(v.str);
    return 0;
done:
    free(v.str);
    match_free(m);
    range_free(r);
    return rc;
}

/* NOT x: a leaf flips; a group becomes a negated leaf of its filter. */
static int negate(fp_t *p, node_t *x, size_t at) {
    if (x->kind == N_LEAF) {
        x->neg = !x->neg;
        return 0;
    }
    Metaembed__Condition *c = NULL;
    int d = x->depth;
    Metaembed__Filter *f = x->f;
    x->f = NULL;
    int rc = cond_of_filter(p, at, f, &c);
    if (rc) return rc;
    *x = (node_t){ .kind = N_LEAF, .neg = 1, .depth = d, .c = c };
    return 0;
}

static int parse_unary(fp_t *p, node_t *out) {
    if (p->t.kind != T_LP && !kw(p, "NOT")) return parse_cond(p, out);
    size_t at = p->t.at;
    int rc, paren = p->t.kind == T_LP;
    found_t fb;
    /* Checked before going deeper, so no input recurses past the bound. */
    if (p->nest >= FP_NEST_MAX)
        return fail(p, at, "parentheses and NOTs nested deeper than %d levels (a filter nests at most %d)",
                    FP_NEST_MAX, ME_FILTER_DEPTH_MAX);
    p->nest++;
    if ((rc = lex(p))) goto out;
    if (!paren) {
        if (!(rc = parse_unary(p, out)) && (rc = negate(p, out, at))) node_free(out);
        goto out;
    }
    if ((rc = parse_or(p, out))) goto out;
    if (p->t.kind != T_RP)
        rc = fail(p, p->t.at, "expected ')' to close the '(' at byte %zu%s", at, found(p, &fb));
    else
        rc = lex(p);
    if (rc) node_free(out);
out:
    p->nest--;
    return rc;
}

/* One chain of operands joined by `op` (AND or OR), each parsed by sub. */
static int parse_chain(fp_t *p, node_t *out, const char *op, node_kind_t kind, int (*sub)(fp_t *, node_t *)) {
    node_t x = { 0 };
    int rc = sub(p, &x);
    if (rc) return rc;
    if (!kw(p, op)) {
        *out = x;
        return 0;
    }
    node_t g = { .kind = kind, .depth = 1 };
    if (!(g.f = filter_new())) {
        node_free(&x);
        return nomem(p);
    }
    size_t at = p->t.at;
    rc = group_add(p, &g, &x, at);
    while (!rc && kw(p, op)) {
        at = p->t.at;
        if (!(rc = lex(p)) && !(rc = sub(p, &x))) rc = group_add(p, &g, &x, at);
    }
    if (rc) {
        node_free(&g);
        return rc;
    }
    *out = g;
    return 0;
}

static int parse_and(fp_t *p, node_t *out) { return parse_chain(p, out, "AND", N_AND, parse_unary); }
static int parse_or(fp_t *p, node_t *out) { return parse_chain(p, out, "OR", N_OR, parse_and); }

static int parse_expression(const char *text, size_t len, Metaembed__Filter **out, char *err, size_t cap) {
    fp_t p = { .s = text, .n = len, .err = err, .cap = cap };
    node_t x = { 0 };
    found_t fb;
    int rc = lex(&p);
    if (!rc) rc = parse_or(&p, &x);
    if (!rc && p.t.kind != T_END) {
        if (p.t.kind == T_RP) rc = fail(&p, p.t.at, "a ')' without its '('");
        else rc = fail(&p, p.t.at, "expected AND, OR or the end%s", found(&p, &fb));
        node_free(&x);
    }
    if (rc) return rc;
    /* The top: a group is the filter; a leaf goes into a new AND filter. */
    node_t g = { .kind = N_AND, .depth = 1, .f = x.kind == N_LEAF ? NULL : x.f };
    if (x.kind == N_LEAF) {
        if (!(g.f = filter_new())) {
            node_free(&x);
            return nomem(&p);
        }
        if ((rc = group_add(&p, &g, &x, 0))) {
            node_free(&g);
            return rc;
        }
    }
    *out = g.f;
    return 0;
}

/* ---- the JSON form ---- */

static const char *jtype(const me_json_t *v) {
    switch (v->type) {
    case ME_JSON_NULL: return "null";
    case ME_JSON_FALSE:
    case ME_JSON_TRUE: return "a boolean";
    case ME_JSON_NUMBER: return "a number";
    case ME_JSON_STRING: return "a string";
    case ME_JSON_ARRAY: return "an array";
    default: return "an object";
    }
}

static int key_is(const me_json_member_t *m, const char *name) {
    return m->key_len == strlen(name) && memcmp(m->key, name, m->key_len) == 0;
}

/* Appends ".name" or "[i]" (i >= 0) to the path; returns what to cut back to. */
static size_t path_push(fp_t *p, const char *name, long i) {
    size_t old = strlen(p->path);
    if (name) snprintf(p->path + old, sizeof p->path - old, "%s%s", old ? "." : "", name);
    size_t mid = strlen(p->path);
    if (i >= 0) snprintf(p->path + mid, sizeof p->path - mid, "[%ld]", i);
    return old;
}

static void path_pop(fp_t *p, size_t old) { p->path[old] = 0; }

static int j_field(fp_t *p, const me_json_t *v, const char *what, char **out, size_t *out_len) {
    char nerr[256];
    if (v->type != ME_JSON_STRING) return fail(p, 0, "'%s' must be a string (a field name); got %s", what, jtype(v));
    if (me_check_field_name(v->u.str, v->len, nerr, sizeof nerr)) return fail(p, 0, "'%s': %s", what, nerr);
    if (!(*out = dupn(v->u.str, v->len))) return nomem(p);
    if (out_len) *out_len = v->len;
    return 0;
}

/* A match value: a string, an integer or a boolean. */
static int j_value(fp_t *p, const me_json_t *v, value_t *out, const char *what) {
    memset(out, 0, sizeof *out);
    int rc;
    switch (v->type) {
    case ME_JSON_STRING:
        if (strlen(v->u.str) != v->len) return fail(p, 0, "a keyword holds a NUL byte (\\u0000)");
        if (!me_utf8_valid((const uint8_t *)v->u.str, v->len)) return fail(p, 0, "a keyword is not valid UTF-8");
        if ((rc = keyword_check(p, 0, v->len))) return rc;
        if (!(out->str = dupn(v->u.str, v->len))) return nomem(p);
        out->kind = V_KEYWORD;
        return 0;
    case ME_JSON_NUMBER:
        out->raw = v->u.str;
        out->raw_len = strlen(v->u.str);
        rc = me_json_int64(v, &out->i);
        out->kind = rc == 0 ? V_INT : rc == ME_EINVAL ? V_NUM : V_BIGINT;
        return 0;
    case ME_JSON_TRUE:
    case ME_JSON_FALSE:
        out->kind = V_BOOL;
        out->b = v->type == ME_JSON_TRUE;
        return 0;
    default:
        return fail(p, 0, "'%s' takes a string, an integer, true or false; got %s%s", what, jtype(v),
                    v->type == ME_JSON_ARRAY && !strcmp(what, "match") ? " (use 'any' for a list)" : "");
    }
}

static int j_range(fp_t *p, const me_json_t *v, Metaembed__Range *r) {
    static const char *const names[] = { "gt", "gte", "lt", "lte" };
    static const op_t ops[] = { OP_GT, OP_GE, OP_LT, OP_LE };
    snip_t sn;
    int seen = 0;
    if (v->type != ME_JSON_OBJECT)
        return fail(p, 0, "'range' must be an object of bounds (gt, gte, lt, lte); got %s", jtype(v));
    for (size_t i = 0; i < v->len; i++) {
        const me_json_member_t *m = &v->u.members[i];
        int k = -1;
        for (int j = 0; j < 4 && k < 0; j++)
            if (key_is(m, names[j])) k = j;
        if (k < 0)
            return fail(p, 0, "unknown member %s in a range (a range takes gt, gte, lt, lte)",
                        snip(&sn, m->key, m->key_len));
        if (seen & (1 << k)) return fail(p, 0, "'%s' given twice in a range", names[k]);
        seen |= 1 << k;
        double d;
        int rc = me_json_num(&m->value, &d);
        if (rc == ME_EINVAL) return fail(p, 0, "range bound '%s' must be a number; got %s", names[k], jtype(&m->value));
        if (rc) return fail(p, 0, "range bound '%s' must be finite", names[k]);
        if (range_set(r, ops[k], d)) return nomem(p);
    }
    if (!seen) return fail(p, 0, "a range needs at least one of gt, gte, lt, lte");
    return 0;
}

static int j_filter(fp_t *p, const me_json_t *v, int depth, Metaembed__Filter **out);

enum { M_FIELD, M_MATCH, M_ANY, M_RANGE, M_EXISTS, M_MUST, M_SHOULD, M_MUST_NOT, M_COUNT };
static const char *const cond_members[M_COUNT] = { "field", "match", "any", "range", "exists",
                                                   "must", "should", "must_not" };

/* A condition object, in a filter `depth` deep. */
static int j_cond(fp_t *p, const me_json_t *v, int depth, Metaembed__Condition **out) {
    const me_json_t *mv[M_COUNT] = { 0 };
    snip_t sn;
    int rc;
    if (v->type != ME_JSON_OBJECT) return fail(p, 0, "a condition must be an object; got %s", jtype(v));
    for (size_t i = 0; i < v->len; i++) {
        const me_json_member_t *m = &v->u.members[i];
        int k = -1;
        for (int j = 0; j < M_COUNT && k < 0; j++)
            if (key_is(m, cond_members[j])) k = j;
        if (k < 0) return fail(p, 0, "unknown member %s in a condition", snip(&sn, m->key, m->key_len));
        if (mv[k]) return fail(p, 0, "'%s' given twice in a condition", cond_members[k]);
        mv[k] = &m->value;
    }
    int nested = mv[M_MUST] || mv[M_SHOULD] || mv[M_MUST_NOT];
    int kinds = !!mv[M_MATCH] + !!mv[M_ANY] + !!mv[M_RANGE];
    if (nested) {
        for (int k = M_FIELD; k <= M_EXISTS; k++)
            if (mv[k])
                return fail(p, 0, "a condition is either a nested filter (must, should, must_not) or one "
                            "condition; got '%s' with them", cond_members[k]);
    } else if (mv[M_EXISTS]) {
        for (int k = M_FIELD; k <= M_RANGE; k++)
            if (mv[k]) return fail(p, 0, "'exists' stands alone in its condition; got '%s' too", cond_members[k]);
    } else if (!mv[M_FIELD]) {
        if (kinds) {
            int k = mv[M_MATCH] ? M_MATCH : mv[M_ANY] ? M_ANY : M_RANGE;
            return fail(p, 0, "'%s' needs a 'field'", cond_members[k]);
        }
        return fail(p, 0, "an empty condition (expected 'field' with 'match', 'any' or 'range'; 'exists'; or "
                    "a nested filter's 'must', 'should', 'must_not')");
    } else if (kinds != 1) {
        return fail(p, 0, kinds ? "a condition takes one of 'match', 'any' and 'range', not several"
                                : "a condition with 'field' needs 'match', 'any' or 'range'");
    }

    Metaembed__Condition *c = cond_new(p, 0, &rc);
    if (!c) return rc;
    if (nested) {
        /* Checked before going deeper, so recursion stays bounded. */
        Metaembed__Filter *f = NULL;
        if (depth + 1 > ME_FILTER_DEPTH_MAX) rc = too_deep(p, 0);
        else rc = j_filter(p, v, depth + 1, &f);
        if (rc) { free(c); return rc; }
        c->condition_case = METAEMBED__CONDITION__CONDITION_FILTER;
        c->filter = f;
        *out = c;
        return 0;
    }
    if (mv[M_EXISTS]) {
        size_t old = path_push(p, "exists", -1);
        rc = j_field(p, mv[M_EXISTS], "exists", &c->exists, NULL);
        path_pop(p, old);
        if (rc) { free(c); return rc; }
        c->condition_case = METAEMBED__CONDITION__CONDITION_EXISTS;
        *out = c;
        return 0;
    }
    char *field = NULL;
    size_t flen = 0;
    size_t old = path_push(p, "field", -1);
    rc = j_field(p, mv[M_FIELD], "field", &field, &flen);
    path_pop(p, old);
    if (rc) { free(c); return rc; }
    if (mv[M_RANGE]) {
        Metaembed__Range *r = range_new(field, flen);
        free(field);
        if (!r) { free(c); return nomem(p); }
        old = path_push(p, "range", -1);
        rc = j_range(p, mv[M_RANGE], r);
        path_pop(p, old);
        if (rc) { range_free(r); free(c); return rc; }
        c->condition_case = METAEMBED__CONDITION__CONDITION_RANGE;
        c->range = r;
        *out = c;
        return 0;
    }
    Metaembed__Match *m = match_new(field, flen);
    free(field);
    if (!m) { free(c); return nomem(p); }
    value_t val;
    if (mv[M_MATCH]) {
        old = path_push(p, "match", -1);
        if (!(rc = j_value(p, mv[M_MATCH], &val, "match"))) rc = match_add(p, m, &val);
        free(val.str);
        path_pop(p, old);
    } else {
        const me_json_t *a = mv[M_ANY];
        old = path_push(p, "any", -1);
        if (a->type != ME_JSON_ARRAY) rc = fail(p, 0, "'any' must be an array of values; got %s", jtype(a));
        else if (a->len == 0) rc = fail(p, 0, "'any' needs at least one value");
        path_pop(p, old);
        for (size_t i = 0; !rc && i < a->len; i++) {
            old = path_push(p, "any", (long)i);
            if (!(rc = j_value(p, &a->u.items[i], &val, "any"))) rc = match_add(p, m, &val);
            free(val.str);
            path_pop(p, old);
        }
    }
    if (rc) { match_free(m); free(c); return rc; }
    c->condition_case = METAEMBED__CONDITION__CONDITION_MATCH;
    c->match = m;
    *out = c;
    return 0;
}

/* A filter object `depth` deep (the outermost is 1). */
static int j_filter(fp_t *p, const me_json_t *v, int depth, Metaembed__Filter **out) {
    static const char *const names[] = { "must", "should", "must_not" };
    snip_t sn;
    int seen = 0, rc = 0;
    if (depth > ME_FILTER_DEPTH_MAX) return too_deep(p, 0);
    Metaembed__Filter *f = filter_new();
    if (!f) return nomem(p);
    for (size_t i = 0; !rc && i < v->len; i++) {
        const me_json_member_t *m = &v->u.members[i];
        int k = key_is(m, "must") ? 0 : key_is(m, "should") ? 1 : key_is(m, "must_not") ? 2 : -1;
        if (k < 0) {
            rc = fail(p, 0, "unknown member %s in a filter (a filter holds must, should and must_not)",
                      snip(&sn, m->key, m->key_len));
            break;
        }
        if (seen & (1 << k)) {
            rc = fail(p, 0, "'%s' given twice in a filter", names[k]);
            break;
        }
        seen |= 1 << k;
        Metaembed__Condition ***list = k == 0 ? &f->must : k == 1 ? &f->should : &f->must_not;
        size_t *nlist = k == 0 ? &f->n_must : k == 1 ? &f->n_should : &f->n_must_not;
        const me_json_t *a = &m->value;
        int one = a->type == ME_JSON_OBJECT;  /* one condition alone: a one-element list */
        if (!one && a->type != ME_JSON_ARRAY) {
            size_t old = path_push(p, names[k], -1);
            rc = fail(p, 0, "'%s' must be an array of conditions (or one condition object); got %s", names[k],
                      jtype(a));
            path_pop(p, old);
            break;
        }
        size_t n = one ? 1 : a->len;
        for (size_t j = 0; !rc && j < n; j++) {
            size_t old = path_push(p, names[k], one ? -1 : (long)j);
            Metaembed__Condition *c = NULL;
            if (!(rc = j_cond(p, one ? a : &a->u.items[j], depth, &c)) && push_cond(list, nlist, c)) {
                cond_free(c);
                rc = nomem(p);
            }
            path_pop(p, old);
        }
    }
    if (rc) {
        me_filter_free(f);
        return rc;
    }
    *out = f;
    return 0;
}

int me_filter_from_json(const me_json_t *v, Metaembed__Filter **out, char *err, size_t cap) {
    fp_t p = { .json = 1, .err = err, .cap = cap };
    if (!out) return fail(&p, 0, "no place for the result");
    *out = NULL;
    if (!v) return fail(&p, 0, "no filter");
    if (v->type != ME_JSON_OBJECT) return fail(&p, 0, "expected an object (a filter or a condition); got %s", jtype(v));
    int is_filter = v->len == 0;
    for (size_t i = 0; i < v->len; i++) {
        const me_json_member_t *m = &v->u.members[i];
        if (key_is(m, "must") || key_is(m, "should") || key_is(m, "must_not")) is_filter = 1;
    }
    if (is_filter) return j_filter(&p, v, 1, out);
    Metaembed__Condition *c = NULL;
    int rc = j_cond(&p, v, 1, &c);
    if (rc) return rc;
    Metaembed__Filter *f = filter_new();
    if (!f || push_cond(&f->must, &f->n_must, c)) {
        free(f);
        cond_free(c);
        return nomem(&p);
    }
    *out = f;
    return 0;
}

int me_filter_parse(const char *text, size_t len, Metaembed__Filter **out, char *err, size_t cap) {
    if (!out || (!text && len)) {
        me_set_err(err, cap, "filter: no text or no place for the result");
        return ME_EINVAL;
    }
    *out = NULL;
    if (len > ME_FILTER_TEXT_MAX) {
        me_set_err(err, cap, "filter: longer than %d bytes (%zu)", ME_FILTER_TEXT_MAX, len);
        return ME_EINVAL;
    }
    size_t i = 0;
    while (i < len && is_blank((unsigned char)text[i])) i++;
    if (i == len) {
        me_set_err(err, cap, "filter: empty filter");
        return ME_EINVAL;
    }
    if (text[i] != '{') return parse_expression(text, len, out, err, cap);
    me_json_doc_t *doc = NULL;
    me_json_error_t je;
    int rc = me_json_parse(text, len, &doc, &je);
    if (rc == ME_ENOMEM) {
        me_set_err(err, cap, "filter: out of memory");
        return ME_ENOMEM;
    }
    if (rc) {
        me_set_err(err, cap, "filter: not valid JSON: %s", je.msg);
        if (err && cap) me_utf8_clip(err);
        return ME_EINVAL;
    }
    rc = me_filter_from_json(me_json_root(doc), out, err, cap);
    me_json_free(doc);
    return rc;
}
