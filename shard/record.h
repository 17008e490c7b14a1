/* A document on disk: its key (collection id + document id), its records
 * in the column families (head: the first ram_vectors vectors, tail: the
 * rest, doc: the metadata, lex: the text's term counts), and the one loader that assembles a document's
 * vectors from the RAM head and the stored tail, used by Get and search.
 * Handlers write and delete documents through here, never picking column
 * families themselves. */
#ifndef ME_RECORD_H
#define ME_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "shard/collection.h"
#include "shard/storage.h"

/* Longest key: 4 bytes of collection id and the longest document id. */
#define ME_DOC_KEY_MAX (4 + ME_DOC_ID_MAX)

/* key = coll id (4 bytes big-endian) + doc id. Returns the length. */
size_t me_doc_key(char *out, uint32_t coll_id, const char *id, size_t idlen);
/* Record: u8 version, u8 dtype, u16 total_rows, u16 nrows, u16 dim, then
 * nrows f32 scales (int8 only), then nrows × dim elements. Little-endian. */
size_t me_record_size(me_dtype_t dt, int dim, int nrows);
void me_record_write(uint8_t *out, me_dtype_t dt, int dim, int total_rows, int nrows,
                     const float *scales, const void *data);
/* Points into buf; ME_ECORRUPT when it does not match the collection. */
int me_record_parse(const uint8_t *buf, size_t len, me_dtype_t dt, int dim,
                    int *total_rows, int *nrows, const float **scales, const void **data);

/* Adds document id's records to b: head, tail (or the tail's deletion when
 * every row fits in RAM), metadata (or its deletion when there is none),
 * the text's bag (the empty bag without text), the payload record of the
 * indexed fields (or its deletion without values: fields_len 0).
 * data and scales hold rows × dim storage elements; rec is scratch of
 * me_record_size(dtype, dim, R_c) bytes. */
void me_record_put_doc(me_wbatch_t *b, const me_coll_t *c, const char *id, int rows, const uint8_t *data,
                       const float *scales, const void *meta, size_t meta_len, const uint8_t *bag,
                       size_t bag_len, const uint8_t *fields, size_t fields_len, uint8_t *rec);
/* Adds id's payload record alone to b (len 0: its deletion): indexing
 * fields added to a collection that holds documents. */
void me_record_put_fields(me_wbatch_t *b, const me_coll_t *c, const char *id, const uint8_t *rec, size_t len);
/* Adds id's lex record alone to b (bag_len 0: the empty bag): start-up's
 * backfill of documents stored before the BM25 index. */
void me_record_put_terms(me_wbatch_t *b, const me_coll_t *c, const char *id, const uint8_t *bag, size_t bag_len);
/* The BM25 bag (me_bm25_bag) of the metadata's "text" member: *bag NULL
 * and *bag_len 0 when the metadata is not a JSON object with a string
 * "text". 0 or ME_ENOMEM. */
int me_record_text_bag(const void *meta, size_t meta_len, uint8_t **bag, size_t *bag_len);
/* Both of what a document's metadata gives its records, from one parse:
 * the text's bag (as me_record_text_bag) and the payload record of the
 * indexed fields (me_payload_record_json). 0, ME_ENOMEM, or ME_EINVAL for
 * a value of the wrong type (err says which); nothing is returned then. */
int me_record_derive(const void *meta, size_t meta_len, const me_field_spec_t *fields, int nfields, uint8_t **bag,
                     size_t *bag_len, uint8_t **rec, size_t *rec_len, char *err, size_t errcap);
/* Adds the deletion of every record of id to b. */
void me_record_delete_doc(me_wbatch_t *b, const me_coll_t *c, const char *id);
/* The metadata of id: 0 with *val (me_storage_free) and *len, or an error
 * (ME_ENOTFOUND when there is none). */
int me_record_metadata(me_storage_t *st, const me_coll_t *c, const char *id, char **val, size_t *len);

/* Up to `limit` ids of c's documents in ascending byte order, strictly
 * after `after` ("" or NULL: from the first), into ids[] (malloc'd
 * strings, *n of them; the caller frees them even on an error); *more = 1
 * when further ids follow. Caller holds the collection's lock, so storage
 * and RAM agree. */
int me_record_list_ids(me_storage_t *st, const me_coll_t *c, const char *after, size_t limit, char **ids,
                       size_t *n, int *more);

/* Assembles the first `want` vectors (fewer when a document has fewer) of
 * the documents in slots[0..n) into dst (n blocks of want rows) and, for
 * int8, dsc (n blocks of want scales), from the RAM head and, when want
 * passes ram_vectors, the stored tail (one multi-get). got[i] = rows put.
 * Caller holds the collection's lock. ME_ECORRUPT when a tail is missing. */
int me_record_load(me_storage_t *st, const me_coll_t *c, const uint32_t *slots, size_t n, int want,
                   uint8_t *dst, float *dsc, int *got, char *err, size_t errcap);

#endif
