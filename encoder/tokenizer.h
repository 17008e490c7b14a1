/* A deterministic byte-level BPE tokenizer for the encoder.
 *
 * Normalisation (version 1): ASCII letters are lower-cased; the text is cut
 * into words, each a maximal run of [a-z0-9] and bytes >= 0x80 (so UTF-8
 * stays together) or a single other non-space byte; ASCII whitespace
 * (space \t \n \v \f \r) only separates words. A run longer than
 * ME_TOK_MAX_WORD bytes is cut into pieces of at most that many bytes (at a
 * UTF-8 boundary where possible); only the first piece starts a word. This
 * bounds the per-word merge work on hostile input.
 *
 * Ids: 0 [PAD], 1 [UNK] (reserved, never produced), 2 the word-start
 * symbol (like SentencePiece's U+2581) that begins every word, 3..258 the
 * 256 bytes (so any input, invalid UTF-8 and NULs included, is
 * representable), then one id per learned merge in the order learned.
 *
 * A tokenizer is immutable once built: encode and decode may run on many
 * threads at once with no locking (there is no shared cache: encoding
 * without one is fast enough, see tests). */
#ifndef ME_TOKENIZER_H
#define ME_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

enum {
    ME_TOK_PAD = 0,
    ME_TOK_UNK = 1,
    ME_TOK_WORD_START = 2,
    ME_TOK_BYTE0 = 3,           /* id of byte b is ME_TOK_BYTE0 + b */
    ME_TOK_BASE_VOCAB = 259,    /* ids below this are fixed; merges follow */
};

#define ME_TOK_NORM_VERSION 1
#define ME_TOK_MAX_WORD 64
#define ME_TOK_DEFAULT_VOCAB 8192
#define ME_TOK_MAX_VOCAB 65536

typedef struct me_tok me_tok_t;

/* Learns merges from texts[0..n) (lens NULL: NUL-terminated; the caller
 * passes training text only, never dev/test) until the vocabulary holds
 * vocab_size ids or no pair occurs twice, whichever comes first (so a small
 * corpus gives a smaller vocabulary; see me_tok_vocab_size). vocab_size:
 * ME_TOK_BASE_VOCAB+1 .. ME_TOK_MAX_VOCAB; 8k-32k are the sizes meant for
 * the model. Same input, same merges, on every machine. */
int me_tok_train(const char *const *texts, const size_t *lens, size_t n, int vocab_size, me_tok_t **out,
                 char *err, size_t errcap);
void me_tok_free(me_tok_t *t);

int me_tok_vocab_size(const me_tok_t *t);
int me_tok_num_merges(const me_tok_t *t);
/* Merge i as (left id, right id); its id is ME_TOK_BASE_VOCAB + i. */
void me_tok_merge(const me_tok_t *t, int i, int32_t *left, int32_t *right);

/* Writes at most max_ids ids for text[0..len) and returns how many were
 * written. Long texts are truncated: ids past max_ids are dropped (pass a
 * larger max_ids to find the full length). Never fails; thread-safe. */
int me_tok_encode(const me_tok_t *t, const char *text, size_t len, int32_t *ids, int max_ids);

/* The text of ids[0..n): bytes as they are, word-start as a space except at
 * the very start; PAD, UNK and unknown ids are skipped. Writes at most cap-1
 * bytes plus a NUL (when cap > 0) and returns the full length, like
 * snprintf. decode(encode(x)) == me_tok_normalize(x) when not truncated. */
size_t me_tok_decode(const me_tok_t *t, const int32_t *ids, int n, char *out, size_t cap);

/* The normalised form of text: its words (and word pieces) lower-cased,
 * joined by single spaces (pieces of a cut long word are not separated).
 * Same return convention as me_tok_decode. */
size_t me_tok_normalize(const char *text, size_t len, char *out, size_t cap);

/* A compact, JSON-string-safe (digits, letters, '=', spaces) serialisation:
 *   "mebpe1 norm=1 vocab=V merges=M l0 r0 l1 r1 ..."
 * *out is malloc'd and NUL-terminated; the caller frees it. */
int me_tok_save(const me_tok_t *t, char **out, size_t *len);
/* Rebuilds a tokenizer from me_tok_save's text. ME_ECORRUPT with the reason
 * in err for anything truncated, malformed or inconsistent (ids out of
 * range, a merge using a later id, duplicates, wrong counts); ME_EUNIMPL for
 * another normalisation version. */
int me_tok_load(const char *s, size_t len, me_tok_t **out, char *err, size_t errcap);

#endif
