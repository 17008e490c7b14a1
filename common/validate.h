/* What a request may hold, checked the same way by every daemon (shard,
 * coordinator, encoder) and the text-ingest stream: the protocol's string
 * rule, names, ids, metadata sizes, tensor shapes and values. Each limit is
 * defined here once; docs/protocol.md lists them.
 *
 * Strings are checked on the packed bytes, before protobuf-c unpacks them:
 * protobuf-c NUL-terminates a string and so would silently cut one at an
 * embedded NUL ("a\0b" would become "a"), and proto3 requires UTF-8, which
 * strict clients (Python, Go, Java) enforce when they parse our replies. */
#ifndef ME_VALIDATE_H
#define ME_VALIDATE_H

#include <stddef.h>
#include <stdint.h>

#include "common/dtype.h"
#include "common/wire.h"

#define ME_COLL_NAME_MAX 64         /* bytes of a collection name */
#define ME_DOC_ID_MAX 256           /* bytes of a document id */
#define ME_DIM_MAX 4096             /* D */
#define ME_ROWS_MAX 1024            /* vectors per document or query */
#define ME_METADATA_MAX (64 << 10)  /* metadata bytes per document */
#define ME_MESSAGE_DEPTH_MAX 16     /* nesting of messages in a request */
#define ME_LIST_IDS_DEFAULT 1000    /* ids per ListIds page when limit is 0 */
#define ME_LIST_IDS_MAX 10000       /* ids per ListIds page at most */
#define ME_HYBRID_CANDIDATES_DEFAULT 100  /* hybrid: n per list per shard when 0 */
#define ME_HYBRID_CANDIDATES_MAX 10000
#define ME_RRF_K_MAX 100000
/* Indexed payload fields and filters (common/payload.h, common/filter_parse.h). */
#define ME_FIELDS_MAX 32            /* indexed fields per collection */
#define ME_FIELD_NAME_MAX 64        /* bytes of a field name */
#define ME_KEYWORD_MAX 256          /* bytes of one keyword value */
#define ME_KEYWORD_ARRAY_MAX 256    /* values in one document's keyword array */
#define ME_FILTER_DEPTH_MAX 6       /* filters nested in a filter, the outermost counted */
#define ME_FILTER_CONDITIONS_MAX 256 /* conditions in a filter, at every depth */
#define ME_FILTER_VALUES_MAX 4096   /* match values in a filter, over all its conditions */
#define ME_FILTER_TEXT_MAX (64 << 10) /* bytes of a filter written as text or JSON */

/* 1 when s[0..n) is well-formed UTF-8 (no overlong forms, surrogates or
 * code points past U+10FFFF). */
int me_utf8_valid(const uint8_t *s, size_t n);
/* Cuts the NUL-terminated s at the end of its longest valid UTF-8 prefix
 * (an error message cut mid-character by snprintf, say). */
void me_utf8_clip(char *s);

/* Every string field of the packed `desc` message, at any depth, must be
 * NUL-free UTF-8. Returns 0; ME_EINVAL with err naming the field (never
 * echoing its bytes); or ME_EPROTO when the bytes are not a message. */
int me_check_strings(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len,
                     char *err, size_t cap);

/* 1..ME_COLL_NAME_MAX bytes of [A-Za-z0-9_.-], and not "." or "..". */
int me_check_collection_name(const char *name, char *err, size_t cap);
/* A collection's durability (the wire's Durability) by name: "default",
 * "none", "group", "every_write"; -1 when none of them. */
#define ME_DURABILITY_CHOICES "default|none|group|every_write"
int me_durability_from_name(const char *name);
const char *me_durability_name(int durability);
/* A collection's coarse index (the wire's CoarseIndex) by name: "flat",
 * "ivf"; -1 when neither. */
#define ME_COARSE_INDEX_CHOICES "flat|ivf"
int me_coarse_index_from_name(const char *name);
const char *me_coarse_index_name(int coarse_index);
/* A snapshot id: the same rule (it names a directory). */
int me_check_snapshot_id(const char *id, char *err, size_t cap);
/* A payload field name: 1..ME_FIELD_NAME_MAX bytes of [A-Za-z0-9_.-], not
 * starting or ending with '.' and without ".." ("a.b" names member b of
 * object a). */
int me_check_field_name(const char *name, size_t len, char *err, size_t cap);
/* Item i's id: 1..ME_DOC_ID_MAX bytes. */
int me_check_id(const char *id, size_t i, char *err, size_t cap);

/* A validated tensor: data holds exactly rows × dim elements of dtype. */
typedef struct {
    me_dtype_t dtype;  /* f32 or f16 */
    int rows, dim;
    const uint8_t *data;
} me_tensor_view_t;

/* Accepts [rows, dim] (or [dim] as one row), f32 or f16, rows 1..max_rows,
 * dim equal to `dim` (0: any in 1..ME_DIM_MAX), with exactly the bytes the
 * shape needs (sizes computed without overflow). `what` names the tensor
 * in err ("query", "document 3 ('x')"). */
int me_tensor_view(const Metaembed__Tensor *t, const char *what, int max_rows, int dim,
                   me_tensor_view_t *v, char *err, size_t cap);
/* Converts the first `rows` rows of v to `dtype` storage form into out (and
 * int8 scales), or only checks them when out is NULL: every value finite
 * and representable in dtype, every vector of non-zero norm. */
int me_tensor_convert(const me_tensor_view_t *v, int rows, me_dtype_t dtype, void *out, float *scales,
                      const char *what, char *err, size_t cap);

/* Document i of an upsert into a collection of this shape: its id, its
 * metadata size and its vectors' shape (values: me_tensor_convert). Fills v;
 * `what` (ME_WHAT_MAX bytes) gets the document's name for later messages. */
#define ME_WHAT_MAX (48 + ME_DOC_ID_MAX)
int me_document_check(const Metaembed__Document *d, size_t i, int max_rows, int dim, me_tensor_view_t *v,
                      char *what, char *err, size_t cap);

/* A search's page: k >= 1 hits after skipping `offset`; each shard ranks
 * k + offset, so its --max-k (max_k; 0 where unknown, at a coordinator)
 * bounds the sum, which must also fit the wire's uint32. */
int me_search_check_page(uint32_t k, uint32_t offset, long long max_k, char *err, size_t cap);
/* A search's mode fields: mode and fusion known; in lexical and hybrid
 * mode a lexical text (or, at a coordinator, `text`, when text_fallback)
 * with at least one word; alpha at most one value in [0, 1] (NaN is not);
 * hybrid_candidates up to ME_HYBRID_CANDIDATES_MAX; rrf_k up to
 * ME_RRF_K_MAX. */
int me_search_check_mode(const Metaembed__SearchRequest *m, int text_fallback, char *err, size_t cap);
/* Budget "auto": target_ms at most ME_TARGET_MS_MAX, min_budget none or
 * [r_q, r_c] (both >= 1) and only with a target; not in lexical mode (BM25
 * has no budget). */
#define ME_TARGET_MS_MAX 3600000
int me_search_check_auto(const Metaembed__SearchRequest *m, char *err, size_t cap);
/* A ListIds page size from a client that gave one: 1..ME_LIST_IDS_MAX. */
int me_list_ids_check_limit(long long limit, char *err, size_t cap);
/* A ListIds request: the cursor `after` ("" or an id's length) and the
 * limit (0 on the wire: ME_LIST_IDS_DEFAULT), put in *limit. */
int me_list_ids_check(const char *after, uint32_t wire_limit, uint32_t *limit, char *err, size_t cap);

/* Drops repeated strings from ids[0..n), keeping first occurrences in
 * order; returns the new count (ME_ENOMEM when it could not allocate). */
long me_ids_dedupe(char **ids, size_t n);

#endif
