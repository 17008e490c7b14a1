/* BM25 over an in-memory corpus: the lexical baseline every evaluation
 * prints beside the model (and the scorer hybrid search and BM25-mined hard
 * negatives build on). Tokens are lower-cased runs of ASCII letters and
 * digits (the data README's rule); everything else separates them.
 *
 *   score(q, d) = Σ_{t in q} idf(t) · tf(t,d) · (k1 + 1) /
 *                 (tf(t,d) + k1 · (1 − b + b · |d| / avgdl))
 *   idf(t)      = ln(1 + (N − df(t) + 0.5) / (df(t) + 0.5))
 *
 * (Lucene's form; a term repeated in the query counts each time, as in a
 * Lucene query of its tokens.) Postings are one compressed-row array, so a
 * 57,687-document corpus takes a few MB. */
#ifndef ME_BM25_H
#define ME_BM25_H

#include <stddef.h>
#include <stdint.h>

#define ME_BM25_K1 0.9f
#define ME_BM25_B 0.4f
/* Tokens longer than this are cut (they still match each other). */
#define ME_BM25_TOKEN_MAX 64

typedef struct me_bm25 me_bm25_t;

/* The next token of text[0..len) from *pos (lower-cased into out, cut to
 * ME_BM25_TOKEN_MAX - 1 bytes); its length, or 0 at the end. */
size_t me_bm25_token(const char *text, size_t len, size_t *pos, char out[ME_BM25_TOKEN_MAX]);

/* Indexes n texts (lens NULL: NUL-terminated). NULL when out of memory. */
me_bm25_t *me_bm25_build(const char *const *texts, const size_t *lens, size_t n, float k1, float b);
void me_bm25_free(me_bm25_t *bm);
size_t me_bm25_docs(const me_bm25_t *bm);
size_t me_bm25_terms(const me_bm25_t *bm);
/* scores[0..docs) = BM25 of the query against every document (0 for
 * documents sharing no term). */
void me_bm25_score(const me_bm25_t *bm, const char *query, size_t len, float *scores);

/* ---- incremental index ----
 * The same formula over a corpus that changes: documents are dense slots
 * 0..docs) that are appended, replaced, and removed by moving the last slot
 * into the hole (a shard collection's slot discipline), so the two stay in
 * step. N counts every slot (a document without text has length 0, as in
 * me_bm25_build with an empty text); df, N and avgdl are read at query
 * time, so scores equal me_bm25_build's over the same texts. A document's
 * terms travel as a "bag": its distinct tokens with their counts, encoded
 * (me_bm25_bag) once for storage and RAM alike. */
typedef struct me_bm25_index me_bm25_index_t;

/* The bag of text[0..len): u32 distinct terms, then per term u8 length,
 * the bytes, u32 tf (little-endian). *out is malloc'd (NULL and *outlen 0
 * for a text without tokens). 0 or ME_ENOMEM. */
int me_bm25_bag(const char *text, size_t len, uint8_t **out, size_t *outlen);

me_bm25_index_t *me_bm25_index_new(float k1, float b);
void me_bm25_index_free(me_bm25_index_t *ix);
size_t me_bm25_index_docs(const me_bm25_index_t *ix);
/* Appends an empty document as slot docs(). 0 or ME_ENOMEM. */
int me_bm25_index_add(me_bm25_index_t *ix);
/* Replaces slot doc's terms with bag[0..len) (len 0 or a bag of 0 terms:
 * no text). 0,
 * ME_ENOMEM, or ME_ECORRUPT for a malformed bag (doc then has no terms). */
int me_bm25_index_set(me_bm25_index_t *ix, uint32_t doc, const uint8_t *bag, size_t len);
/* Removes slot doc; the last slot moves into it. */
void me_bm25_index_remove(me_bm25_index_t *ix, uint32_t doc);
/* scores[0..docs) as me_bm25_score; returns how many documents share a
 * query term (the rest score 0). */
size_t me_bm25_index_score(const me_bm25_index_t *ix, const char *query, size_t len, float *scores);

#endif
