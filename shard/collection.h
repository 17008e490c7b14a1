/* One collection in a shard's RAM: documents in dense slots, the first
 * ram_vectors vectors of each in one arena, a dense copy of the first
 * coarse_vectors for the stage-1 scan, and an id → slot hash table.
 * Deletion moves the last slot into the hole, so arenas stay dense.
 * (Keys and the on-disk format: shard/record.h.) Callers hold `lock` (read for lookups and
 * search, write for changes). */
#ifndef ME_COLLECTION_H
#define ME_COLLECTION_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "common/bits.h"
#include "common/bm25.h"
#include "common/budget.h"
#include "common/dtype.h"
#include "common/maxsim.h"
#include "common/payload.h"
#include "common/validate.h"
#include "shard/fields.h"
#include "shard/ivf.h"


typedef struct {
    char name[ME_COLL_NAME_MAX + 1];
    int dim;              /* D */
    int max_doc_vectors;  /* R_c */
    int max_query_vectors;/* R_q */
    me_dtype_t dtype;     /* storage dtype */
    int ram_vectors;      /* leading vectors per doc held in RAM (1..R_c) */
    int coarse_vectors;   /* vectors per doc in the stage-1 scan (1..ram_vectors) */
    int nfields;          /* indexed payload fields */
    me_field_spec_t fields[ME_FIELDS_MAX];
    uint64_t version;     /* the create's write version (common/sync.h) */
    int durability;       /* Metaembed__Durability: when writes are acknowledged */
    int coarse_index;     /* Metaembed__CoarseIndex: 0 flat, 1 IVF (shard/ivf.h) */
    int ivf_lists;        /* IVF: lists; 0 = me_ivf_auto_lists at each training */
    int ivf_probe;        /* IVF: lists a search scans; 0 = adaptive */
    int binary_coarse;    /* stage 1 scans sign bits of the first vectors (common/bits.h) instead of a
                           * dense copy; needs coarse_vectors 1 */
} me_coll_config_t;

typedef struct {
    me_coll_config_t cfg;
    uint32_t id;              /* key prefix in storage; never reused */
    pthread_rwlock_t lock;

    size_t n, cap;            /* documents; slots allocated */
    char **ids;               /* [cap] owned strings */
    uint16_t *rows;           /* [cap] vectors stored for the doc (RAM + disk) */
    uint8_t *head;            /* [cap, ram_vectors, dim] dtype elements */
    float *head_scales;       /* [cap, ram_vectors] int8 only */
    uint8_t *coarse;          /* [cap, coarse_vectors, dim] dense stage-1 copy (NULL with binary_coarse) */
    uint64_t *bits;           /* [cap, me_bits_words(dim)] binary_coarse: the first vectors' sign bits */
    uint32_t *idkey;          /* [cap] binary_coarse: a hash of each id, stage 1's cheap tie order
                               * (bit scores tie by the thousand at a cut; strcmp on each costs
                               * two cache misses) */
    float *coarse_scales;     /* [cap, coarse_vectors] int8 only */
    uint32_t *table;          /* open addressing: slot + 1, 0 = empty */
    size_t table_cap;         /* power of two */
    uint64_t stored_rows;     /* Σ rows, for index size */
    me_bm25_index_t *lex;     /* BM25 over each slot's text, slots in step */
    me_fields_t *fields;      /* the indexed payload fields' columns, slots in step */
    /* Anti-entropy digests (shard/versions.h), ME_SYNC_BUCKETS of them,
     * kept under the write lock; NULL until the first versioned write. */
    uint64_t *digest;
    /* Anytime's cost model: recent search-stage time per document at each
     * ladder budget, in picoseconds (0: not seen yet); updated without the
     * write lock, so relaxed atomics. */
    atomic_uint_fast64_t stage_ps[ME_BUDGET_LADDER_N];
    /* coarse_index IVF: the index searches use (complete: every slot in a
     * list; NULL until the first is built) and the one being built in the
     * background (shard/indexer.c), both kept in step with every put and
     * remove. */
    me_ivf_t *ivf, *ivf_next;
    uint64_t ivf_builds;      /* indexes completed */
    /* Slots put since the last me_coll_ivf_flush, not yet in those indexes'
     * lists: assigning a batch at once reads the centroids once (sgemm)
     * instead of once a document (sgemv). */
    uint32_t *ivf_pending;
    size_t npending, cap_pending;
} me_coll_t;

/* Validates and fills defaults (R_c 64, R_q 16, f16, ram = R_c, coarse 1, flat;
 * fields: me_field_specs_check).
 * Returns 0 or ME_EINVAL with a reason in err. */
int me_coll_config_check(me_coll_config_t *cfg, char *err, size_t errcap);

me_coll_t *me_coll_new(const me_coll_config_t *cfg, uint32_t id);
void me_coll_free(me_coll_t *c);

/* Slot of the doc, or -1. */
long me_coll_find(const me_coll_t *c, const char *id, size_t idlen);
/* Inserts or replaces the RAM copy: `total_rows` vectors exist; `head` has
 * the first min(total_rows, ram_vectors) rows in storage form (scales for
 * int8). Returns the slot, or ME_ENOMEM. */
long me_coll_put(me_coll_t *c, const char *id, size_t idlen, int total_rows,
                 const void *head, const float *head_scales);
/* Queues slot for the lists of c->ivf and c->ivf_next (by its first
 * vector), flushing every ME_COLL_IVF_BATCH. */
void me_coll_ivf_index_slot(me_coll_t *c, size_t slot);
/* Puts the queued slots into their nearest lists. Writers call it before
 * letting go of the write lock (deletes and the indexer do it first); an
 * index that cannot take a slot (out of memory) is dropped, so searches
 * never miss a document (the indexer builds it again). Searches also scan
 * whatever is still queued. */
void me_coll_ivf_flush(me_coll_t *c);
#define ME_COLL_IVF_BATCH 1024
/* The first vector of slot as f32 (dim floats). */
void me_coll_first_vector(const me_coll_t *c, size_t slot, float *out);
/* Where stage 1 reads one-row scores from: the dense coarse copy, or the
 * head arena's first rows with binary_coarse (no copy). *stride: elements
 * from one document's first row to the next; *scales: int8's (stride/dim
 * apart) or NULL. */
const uint8_t *me_coll_first_rows(const me_coll_t *c, const float **scales, size_t *stride);
/* Switches c to binary_coarse (sign bits from every first vector, the
 * dense copy freed): benchmarks compare both tiers on one collection.
 * 0, ME_ENOMEM, or ME_EINVAL when coarse_vectors is not 1. */
int me_coll_use_binary_coarse(me_coll_t *c);
/* Returns 1 when the doc existed. */
int me_coll_remove(me_coll_t *c, const char *id, size_t idlen);
/* Replaces the lexical terms of slot with bag[0..len) (me_bm25_bag; len 0:
 * none). 0, ME_ENOMEM or ME_ECORRUPT (the slot then has no terms). */
int me_coll_set_terms(me_coll_t *c, size_t slot, const uint8_t *bag, size_t len);

/* Replaces the indexed field values of slot with payload record rec[0..len)
 * (me_payload_record; len 0: none). 0, ME_ENOMEM or ME_ECORRUPT. */
int me_coll_set_fields(me_coll_t *c, size_t slot, const uint8_t *rec, size_t len);
/* Adds indexed fields to the config and their (empty) columns. */
int me_coll_add_fields(me_coll_t *c, const me_field_spec_t *f, int n);

size_t me_coll_row_bytes(const me_coll_t *c);
me_docref_t me_coll_head_ref(const me_coll_t *c, size_t slot);
me_docref_t me_coll_coarse_ref(const me_coll_t *c, size_t slot);
/* Bytes of vectors held in RAM (head + coarse arenas, used slots). */
uint64_t me_coll_ram_bytes(const me_coll_t *c);
/* Bytes of all stored vectors at the storage dtype (the index size). */
uint64_t me_coll_index_bytes(const me_coll_t *c);

#endif
