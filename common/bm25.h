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

#endif
