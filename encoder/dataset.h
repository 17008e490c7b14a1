/* The training data: JSON lines {"id", "split", "query", "text"} (see
 * /work/shared/data/README.md), plain or gzip-compressed (zlib reads both
 * through the same calls), loaded whole into memory; plus the hard
 * negatives contrastive training pairs with each train record. */
#ifndef ME_DATASET_H
#define ME_DATASET_H

#include <stddef.h>
#include <stdint.h>

#define ME_DATASET_FILE "debian-descriptions.jsonl.gz"

typedef enum { ME_SPLIT_TRAIN, ME_SPLIT_DEV, ME_SPLIT_TEST, ME_SPLIT_COUNT } me_split_t;

typedef struct {
    /* Decoded UTF-8, NUL-terminated; the lengths count bytes (a \u0000
     * escape would put a NUL inside). */
    const char *id, *query, *text;
    uint32_t id_len, query_len, text_len;
    me_split_t split;
    uint32_t line;              /* 1-based line in the file, for messages */
} me_datarec_t;

typedef struct me_dataset me_dataset_t;

struct me_dataset {
    me_datarec_t *recs;          /* (n) in file order */
    size_t n;
    size_t n_split[ME_SPLIT_COUNT];
    size_t skipped;             /* malformed lines skipped (skip_malformed only) */
    size_t duplicate_ids;       /* records whose id an earlier record has */
    char first_skip[200];       /* the first skipped line's problem, "" when none */
    /* private */
    char *pool_;
    int32_t *slots_;            /* id → record, open addressing */
    size_t mask_;
};

/* Loads path (.jsonl or .jsonl.gz). Every record needs a non-empty string
 * "id", "split" one of "train", "dev", "test", and
 * string "query" and "text"; other members are ignored, empty lines too.
 * A malformed line fails the load with ME_EINVAL and "path:LINE: problem"
 * in err, unless skip_malformed, which skips it and counts it in
 * ds->skipped. ME_EIO / ME_ECORRUPT when the file cannot be read or the
 * gzip stream is damaged. */
int me_dataset_load(const char *path, int skip_malformed, me_dataset_t **out, char *err, size_t errcap);
void me_dataset_free(me_dataset_t *ds);

/* The first record with this id, or -1. Ids are not quite unique: the
 * frozen file has 13 ids on 55 records (all train, e.g. default-jdk nine
 * times, one per architecture); they count in ds->duplicate_ids. */
long me_dataset_find(const me_dataset_t *ds, const char *id);

const char *me_split_name(me_split_t s);

/* Where the data file is: $METAEMBED_DATA when set; else
 * ../shared/data/debian-descriptions.jsonl.gz beside the repository root
 * (found by walking up from the working directory and from the running
 * binary to the folder holding Makefile and encoder/); else fallback (may be
 * NULL). Writes the choice into out; returns 0 when that file exists,
 * ME_ENOTFOUND when it does not (out still names the best candidate). */
int me_dataset_locate(const char *fallback, char *out, size_t cap);

/* How a hard negative was chosen. */
typedef enum {
    ME_HARDNEG_NONE,            /* not a train record (or the only one) */
    ME_HARDNEG_PARAGRAPH,       /* shares its first paragraph */
    ME_HARDNEG_STEM,            /* shares its name stem */
    ME_HARDNEG_RANDOM,          /* a seeded random train record */
    ME_HARDNEG_BM25,            /* ranked high by BM25 for the record's query */
} me_hardneg_kind_t;

/* For every train record i, neg[i] = another train record that is hard to
 * tell apart from it: one sharing its first paragraph (text up to the first
 * "\n\n", the whole text when there is none) if any, else one sharing its
 * name stem (the id up to the first '-' or digit; up to the first '-' when
 * the id starts with a digit), else a random one. Within a group the pick
 * is a hash of (seed, i): the same data and seed give the same negatives.
 * Dev and test records get -1 and are never chosen. kind may be NULL. */
int me_dataset_hard_negatives(const me_dataset_t *ds, uint64_t seed, int32_t *neg, uint8_t *kind);

/* BM25-mined negatives: for every train record i, neg[i] = one of the
 * `depth` train texts BM25 (common/bm25.c) ranks highest for i's query,
 * picked by a hash of (seed, i), never i itself nor a record with i's id
 * or i's text (a duplicate would be a second positive). A record whose
 * query ranks no such text keeps the pick of me_dataset_hard_negatives.
 * Dev and test records get -1 and are never chosen. kind may be NULL.
 * ME_EINVAL when depth is not in 1..64, ME_ENOMEM. */
#define ME_DATASET_BM25_DEPTH 10
int me_dataset_bm25_negatives(const me_dataset_t *ds, uint64_t seed, int depth, int32_t *neg, uint8_t *kind);

/* The name stem as defined above: its length in id. */
size_t me_dataset_stem(const char *id, size_t len);

#endif
