/* JSON (RFC 8259): a strict parser into a read-only DOM, and a writer into
 * a growable buffer or a FILE.
 *
 * The parser takes pointer + length (no NUL needed), accepts exactly one
 * value with whitespace around it, and rejects everything the RFC does not
 * allow: trailing commas, control characters and bad escapes in strings,
 * lone surrogates, invalid UTF-8 (overlongs, surrogates, > U+10FFFF), leading
 * zeros, nesting deeper than ME_JSON_MAX_DEPTH and trailing garbage. The
 * whole DOM lives in one arena owned by the document: one free releases it.
 * Any input, however hostile, gives a value or an error, never a crash. */
#ifndef ME_JSON_H
#define ME_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Arrays and objects nested deeper than this are refused, so recursion
 * (parser) and the per-level state (writer) stay bounded. */
#define ME_JSON_MAX_DEPTH 256

typedef enum {
    ME_JSON_NULL,
    ME_JSON_FALSE,
    ME_JSON_TRUE,
    ME_JSON_NUMBER,
    ME_JSON_STRING,
    ME_JSON_ARRAY,
    ME_JSON_OBJECT,
} me_json_type_t;

typedef struct me_json_member me_json_member_t;

/* One value. Read the fields directly or through the helpers below. */
typedef struct me_json {
    me_json_type_t type;
    /* STRING: bytes of the decoded UTF-8 (may hold NULs from \u0000);
     * NUMBER: bytes of the raw text; ARRAY/OBJECT: number of elements. */
    size_t len;
    union {
        const char *str;            /* STRING: decoded, NUL-terminated; NUMBER: raw text as written */
        struct me_json *items;      /* ARRAY: len values */
        me_json_member_t *members;  /* OBJECT: len members, in document order */
    } u;
    double num;                     /* NUMBER: strtod of the raw text (±HUGE_VAL when out of range) */
} me_json_t;

struct me_json_member {
    const char *key;                /* decoded, NUL-terminated */
    size_t key_len;
    me_json_t value;
};

/* What went wrong, for callers (and tests) that branch on it. */
typedef enum {
    ME_JSON_ERR_NONE,
    ME_JSON_ERR_EOF,            /* input ended inside a value */
    ME_JSON_ERR_SYNTAX,         /* unexpected character */
    ME_JSON_ERR_TRAILING_COMMA, /* ",]" or ",}" */
    ME_JSON_ERR_NUMBER,         /* malformed number: "01", "1.", "-", "1e" */
    ME_JSON_ERR_CONTROL,        /* raw control character (< 0x20) in a string */
    ME_JSON_ERR_ESCAPE,         /* unknown escape or bad \u hex digits */
    ME_JSON_ERR_SURROGATE,      /* \uD800-\uDFFF not forming a pair */
    ME_JSON_ERR_UTF8,           /* invalid UTF-8 in a string */
    ME_JSON_ERR_DEPTH,          /* nested deeper than ME_JSON_MAX_DEPTH */
    ME_JSON_ERR_TRAILING,       /* something after the value */
    ME_JSON_ERR_NOMEM,
} me_json_errkind_t;

typedef struct {
    me_json_errkind_t kind;
    size_t offset;              /* byte offset of the offending byte in the input */
    char msg[160];              /* "offset 12: trailing comma before ']'" */
} me_json_error_t;

typedef struct me_json_doc me_json_doc_t;

/* Parses text[0..len) into a new document (*out; free with me_json_free).
 * Errors: ME_EINVAL (malformed), ME_ETOOBIG (too deep), ME_ENOMEM; *out is
 * then NULL and err (may be NULL) says what and where. */
int me_json_parse(const char *text, size_t len, me_json_doc_t **out, me_json_error_t *err);
void me_json_free(me_json_doc_t *doc);
const me_json_t *me_json_root(const me_json_doc_t *doc);

/* 1 when text[0..len) is exactly one valid JSON value; allocates nothing. */
int me_json_valid(const char *text, size_t len);

/* ---- lookups: NULL-tolerant, so chains like
 *      me_json_str(me_json_get(me_json_at(root, 0), "id")) are safe ---- */

/* The first member named key of an object, or NULL (not an object / absent). */
const me_json_t *me_json_get(const me_json_t *obj, const char *key);
/* Element i of an array, or NULL. */
const me_json_t *me_json_at(const me_json_t *arr, size_t i);
/* Elements of an array or object, 0 for anything else. */
size_t me_json_len(const me_json_t *v);
/* The string, or NULL when v is not a string. */
const char *me_json_str(const me_json_t *v);

/* Typed getters: 0, ME_ENOTFOUND when v is NULL, ME_EINVAL when v has
 * another type, ME_ERANGE when the number does not fit. */
int me_json_num(const me_json_t *v, double *out);
/* Integers exactly from the raw text ("9007199254740993" stays exact);
 * "1e3" and "2.0" are accepted when integral and below 2^53. */
int me_json_int64(const me_json_t *v, int64_t *out);
int me_json_bool(const me_json_t *v, int *out);

/* ---- writer ----
 * Values are written with a key inside objects and key NULL inside arrays
 * and at the top level; commas are handled here. Strings are escaped so the
 * output is always valid JSON on one line: '"' '\\' \n \r \t as two-character
 * escapes, other control bytes as \u00XX, and invalid UTF-8 as \ufffd. */
typedef struct {
    FILE *f;                    /* output when not NULL, else buf */
    char *buf;                  /* NUL-terminated */
    size_t len, cap;
    int depth;
    int err;                    /* first error (ME_ENOMEM, ME_EIO, ME_ETOOBIG), sticky */
    unsigned char first[ME_JSON_MAX_DEPTH + 1];
} me_json_writer_t;

void me_json_writer_init_file(me_json_writer_t *w, FILE *f);
void me_json_writer_init_buf(me_json_writer_t *w);
/* 0, or the first error met while writing. */
int me_json_writer_error(const me_json_writer_t *w);
/* Hands over the buffer (malloc'd, NUL-terminated; the caller frees it) and
 * resets w; NULL after an error. */
char *me_json_writer_take(me_json_writer_t *w, size_t *len);
void me_json_writer_free(me_json_writer_t *w);

void me_json_obj_begin(me_json_writer_t *w, const char *key);
void me_json_obj_end(me_json_writer_t *w);
void me_json_arr_begin(me_json_writer_t *w, const char *key);
void me_json_arr_end(me_json_writer_t *w);
void me_json_put_str(me_json_writer_t *w, const char *key, const char *s);
void me_json_put_strn(me_json_writer_t *w, const char *key, const char *s, size_t n);
void me_json_put_int(me_json_writer_t *w, const char *key, long long v);
void me_json_put_u64(me_json_writer_t *w, const char *key, uint64_t v);
/* The shortest of %.15g / %.17g that reads back as v; NaN/Inf → null. */
void me_json_put_num(me_json_writer_t *w, const char *key, double v);
/* %.<digits>g (9 round-trips a float); NaN/Inf → null. */
void me_json_put_num_prec(me_json_writer_t *w, const char *key, double v, int digits);
void me_json_put_bool(me_json_writer_t *w, const char *key, int v);
void me_json_put_null(me_json_writer_t *w, const char *key);
/* Text the caller vouches is one valid JSON value, written as is. */
void me_json_put_raw(me_json_writer_t *w, const char *key, const char *json, size_t n);
/* A parsed value written back, compactly and recursively (its depth is
 * already bounded by the parser's ME_JSON_MAX_DEPTH). */
void me_json_put_value(me_json_writer_t *w, const char *key, const me_json_t *v);
/* Raw bytes outside any value (e.g. "\n" between JSON lines). */
void me_json_write_bytes(me_json_writer_t *w, const char *s, size_t n);

#endif
