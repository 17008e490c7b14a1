/* A collection's indexed payload fields in RAM: one column per field, in
 * the collection's slot order (appended, replaced, and removed by moving
 * the last slot into the hole, in step with the vectors), each with a
 * presence bitmap:
 *
 *   keyword  the value's id in the field's dictionary (an interned string
 *            table), and for a keyword array the ids of the other values;
 *   integer  int64;  float  double;  bool  one byte.
 *
 * A filter (common/payload.h checks it first) evaluates to a bitmap of the
 * matching slots with word-wide AND/OR/NOT over per-condition bitmaps, each
 * a scan of one compact column: ~N/10^9 s per condition, small beside the
 * coarse stage's MaxSim over the same N documents. Dictionaries only grow
 * (a value no document holds any more keeps its id until restart). */
#ifndef ME_FIELDS_H
#define ME_FIELDS_H

#include <stddef.h>
#include <stdint.h>

#include "common/payload.h"

typedef struct me_fields me_fields_t;

me_fields_t *me_fields_new(void);
void me_fields_free(me_fields_t *fx);
/* A new column for spec, without values for the existing slots. */
int me_fields_add_field(me_fields_t *fx, const me_field_spec_t *spec);
/* Appends an empty slot. 0 or ME_ENOMEM. */
int me_fields_append(me_fields_t *fx);
/* Replaces slot's values with those of payload record rec[0..len) (len 0:
 * none). ME_ECORRUPT (the slot then has no values) for a malformed record
 * or a value of a field not indexed or of another type; ME_ENOMEM. */
int me_fields_set(me_fields_t *fx, size_t slot, const uint8_t *rec, size_t len);
/* Removes slot; the last slot moves into it. */
void me_fields_remove(me_fields_t *fx, size_t slot);
/* RAM held by the columns and dictionaries. */
uint64_t me_fields_ram_bytes(const me_fields_t *fx);

/* Words of a bitmap over n slots. */
static inline size_t me_bitmap_words(size_t n) { return (n + 63) / 64; }
static inline int me_bitmap_get(const uint64_t *b, size_t i) { return (int)(b[i >> 6] >> (i & 63) & 1); }

/* out[0..me_bitmap_words(slots)) = the slots filter (checked) matches.
 * 0 or ME_ENOMEM. */
int me_fields_eval(const me_fields_t *fx, const Metaembed__Filter *filter, uint64_t *out);

#endif
