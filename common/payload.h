/* Indexed payload fields: a collection's schema of typed metadata members
 * (keyword, keyword array, integer, float, bool), the values one
 * document's metadata gives them, and the check of a filter against the
 * schema. One module for the rules the shard enforces and the coordinator
 * and the clients check ahead of it (limits: common/validate.h).
 *
 * A document's values travel as a "payload record" (stored in the shard's
 * `fld` family and read into its RAM columns, shard/fields.h):
 *
 *   u8 version (1), then per field with a value:
 *   u8 name length, the name, u8 type (METAEMBED__FIELD_TYPE__*), then
 *     keyword: u16 count, count × (u16 length, bytes)
 *     integer: i64      float: f64      bool: u8 (0 or 1)
 *   little-endian. A document without values has no record. */
#ifndef ME_PAYLOAD_H
#define ME_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "common/json.h"
#include "common/validate.h"
#include "common/wire.h"

typedef struct {
    char name[ME_FIELD_NAME_MAX + 1];
    int type;  /* METAEMBED__FIELD_TYPE__FIELD_TYPE_* */
} me_field_spec_t;

/* "keyword", "integer", "float", "bool" (or "?"). */
const char *me_field_type_name(int type);

/* Names unique and well-formed, types known, at most ME_FIELDS_MAX. */
int me_field_specs_check(const me_field_spec_t *f, int n, char *err, size_t cap);
/* "section:keyword,year:integer,tags:keyword" (blanks around items are
 * fine) into out[0..*n) (at most ME_FIELDS_MAX), checked. */
int me_field_specs_parse(const char *text, me_field_spec_t *out, int *n, char *err, size_t cap);
/* The same text form; "" for none. Returns the length (cut to cap - 1). */
size_t me_field_specs_format(const me_field_spec_t *f, int n, char *out, size_t cap);
/* Protocol ↔ specs: a name too long to hold stays empty, so it fails the check. */
void me_field_specs_from_proto(me_field_spec_t *out, int *n, Metaembed__FieldSpec *const *in, size_t nin);
/* fs[i], ptrs[i] (room for n) filled and pointing into f. */
void me_field_specs_to_proto(const me_field_spec_t *f, int n, Metaembed__FieldSpec *fs, Metaembed__FieldSpec **ptrs);
/* Index of the field named name[0..len), or -1. */
int me_field_find(const me_field_spec_t *f, int n, const char *name, size_t len);

/* The payload record of metadata meta[0..len) for the n fields: *rec
 * malloc'd (NULL, *rlen 0 when no field has a value, or the metadata is
 * not a JSON object). ME_EINVAL when a value has another type than its
 * field or passes a limit (err names the field and says what it got);
 * ME_ENOMEM. */
int me_payload_record(const me_field_spec_t *f, int n, const void *meta, size_t len, uint8_t **rec, size_t *rlen,
                      char *err, size_t cap);
/* The same from metadata already parsed (root: its value, NULL for none). */
int me_payload_record_json(const me_field_spec_t *f, int n, const me_json_t *root, uint8_t **rec, size_t *rlen,
                           char *err, size_t cap);

/* One field's value in a record. Keywords: nkw of them, read in order with
 * me_payload_keyword_next from kw. */
typedef struct {
    const char *name;
    size_t name_len;
    int type;
    int64_t i;
    double f;
    int b;
    size_t nkw;
    const uint8_t *kw;
} me_payload_value_t;

typedef struct {
    const uint8_t *p, *end;
} me_payload_iter_t;

/* ME_ECORRUPT for a record of another version. */
int me_payload_iter_init(me_payload_iter_t *it, const uint8_t *rec, size_t len);
/* 1 and the next value, 0 at the end, ME_ECORRUPT for a malformed record. */
int me_payload_next(me_payload_iter_t *it, me_payload_value_t *v);
/* The keyword at *p (advanced past it); the record was checked by me_payload_next. */
void me_payload_keyword_next(const uint8_t **p, const char **s, size_t *len);

/* A filter against the collection's fields: within the limits (depth,
 * conditions, values), every condition set, every field indexed, each
 * clause of its field's type (match: keywords or integers on a keyword
 * field, integers on an integer field, booleans on a bool field, not on a
 * float field; range: integer and float fields, bounds finite, each at
 * most once). 0 or ME_EINVAL with err naming the problem. */
int me_filter_check(const Metaembed__Filter *flt, const me_field_spec_t *f, int n, char *err, size_t cap);

#endif
