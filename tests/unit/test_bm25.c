/* BM25 against an independent computation: the same formula written out
 * naively in double (its own tokenizer, a fresh count of every df and tf
 * per query), on texts with repeats, case, punctuation and a query term
 * that is nowhere. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bm25.h"
#include "common/error.h"
#include "tests/harness.h"

static const char *docs[] = {
    "The quick brown fox jumps over the lazy dog",
    "A text editor for programmers: syntax highlighting, macros, and more macros",
    "JSON parser library for C; parses JSON quickly",
    "Real-time strategy game of ancient warfare",
    "fox fox FOX -- the fox den",
    "",
    "library of fonts; a font library",
    "editor EDITOR Editor",
};
enum { N = sizeof docs / sizeof docs[0] };

/* Token i of s as lower-cased ASCII alphanumerics (the reference). */
static int ref_tokens(const char *s, char out[][64], int max) {
    int n = 0;
    for (size_t i = 0; s[i] && n < max;) {
        while (s[i] && !(isascii((unsigned char)s[i]) && isalnum((unsigned char)s[i]))) i++;
        size_t k = 0;
        while (s[i] && isascii((unsigned char)s[i]) && isalnum((unsigned char)s[i])) {
            if (k < 63) out[n][k++] = (char)tolower((unsigned char)s[i]);
            i++;
        }
        out[n][k] = 0;
        if (k) n++;
    }
    return n;
}

static double ref_score(const char *q, int d, double k1, double b) {
    static char tok[N][64][64];
    int len[N];
    double total = 0;
    for (int i = 0; i < N; i++) { len[i] = ref_tokens(docs[i], tok[i], 64); total += len[i]; }
    double avgdl = total / N;
    char qt[32][64];
    int nq = ref_tokens(q, qt, 32);
    double s = 0;
    for (int t = 0; t < nq; t++) {
        int df = 0, tf = 0;
        for (int i = 0; i < N; i++) {
            int has = 0;
            for (int k = 0; k < len[i]; k++)
                if (!strcmp(tok[i][k], qt[t])) { has = 1; if (i == d) tf++; }
            df += has;
        }
        if (!df || !tf) continue;
        double idf = log(1 + (N - df + 0.5) / (df + 0.5));
        s += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len[d] / avgdl));
    }
    return s;
}

TEST(bm25_scores_equal_an_independent_computation) {
    me_bm25_t *bm = me_bm25_build(docs, NULL, N, ME_BM25_K1, ME_BM25_B);
    ASSERT_TRUE(bm != NULL);
    ASSERT_EQ(me_bm25_docs(bm), N);
    const char *queries[] = { "fox", "JSON parser", "the Fox, the FOX!", "editor macros", "zebra",
                              "font library game", "" };
    float scores[N];
    for (size_t q = 0; q < sizeof queries / sizeof queries[0]; q++) {
        me_bm25_score(bm, queries[q], strlen(queries[q]), scores);
        for (int d = 0; d < N; d++) {
            double want = ref_score(queries[q], d, ME_BM25_K1, ME_BM25_B);
            ASSERT_NEAR(scores[d], want, 1e-5 * (1 + want));
        }
    }
    /* The ranking that follows: document 4 (five foxes, short) first. */
    me_bm25_score(bm, "fox", 3, scores);
    ASSERT_TRUE(scores[4] > scores[0] && scores[0] > 0 && scores[1] == 0);
    me_bm25_free(bm);
}

TEST(bm25_tokens_are_lowercased_ascii_alphanumerics) {
    const char *t = "Hello, WORLD-42 caf\xc3\xa9 x";
    size_t pos = 0, n;
    char w[ME_BM25_TOKEN_MAX];
    const char *want[] = { "hello", "world", "42", "caf", "x" };
    for (int i = 0; i < 5; i++) {
        n = me_bm25_token(t, strlen(t), &pos, w);
        ASSERT_TRUE(n > 0);
        ASSERT_STREQ(w, want[i]);
    }
    ASSERT_EQ(me_bm25_token(t, strlen(t), &pos, w), 0);
    /* A token longer than the limit is cut, never overrun. */
    char longw[200];
    memset(longw, 'a', sizeof longw - 1);
    longw[sizeof longw - 1] = 0;
    pos = 0;
    ASSERT_EQ(me_bm25_token(longw, strlen(longw), &pos, w), ME_BM25_TOKEN_MAX - 1);
}

/* A random text of up to 12 words over a small vocabulary (so terms are
 * shared), sometimes empty, with case and punctuation the tokenizer drops. */
static void random_text(me_rng_t *r, char *out, size_t cap) {
    static const char *words[] = { "Fox", "dog", "EDITOR", "json", "parser", "game", "library", "font",
                                   "the", "a", "macro", "c99", "x", "warfare", "quick" };
    size_t nw = me_rng_next(r) % 13, at = 0;
    out[0] = 0;
    for (size_t i = 0; i < nw && at + 16 < cap; i++)
        at += (size_t)snprintf(out + at, cap - at, "%s%s", words[me_rng_next(r) % 15], i % 3 ? " " : ", ");
}

/* Sets slot doc of ix to text (through its bag, as the shard does). */
static void index_set(me_bm25_index_t *ix, uint32_t doc, const char *text) {
    uint8_t *bag;
    size_t len;
    ASSERT_OK(me_bm25_bag(text, strlen(text), &bag, &len));
    ASSERT_OK(me_bm25_index_set(ix, doc, bag, len));
    free(bag);
}

/* The incremental index against me_bm25_build over the same live texts,
 * through appends, replacements and swap-removes. */
TEST(bm25_index_matches_build_after_replacements_and_deletes) {
    enum { OPS = 3000, CAP = 200, TL = 256 };
    static char texts[CAP][TL];
    const char *ptrs[CAP];
    static const char *queries[] = { "fox", "the quick fox", "JSON parser library", "nowhere", "c99 c99 x" };
    me_bm25_index_t *ix = me_bm25_index_new(ME_BM25_K1, ME_BM25_B);
    ASSERT_TRUE(ix != NULL);
    me_rng_t r = { 11 };
    size_t n = 0;
    float *got = malloc(CAP * sizeof *got), *want = malloc(CAP * sizeof *want);
    for (int op = 0; op < OPS; op++) {
        uint64_t kind = me_rng_next(&r) % 10;
        if (n < CAP && (n == 0 || kind < 4)) {          /* append */
            random_text(&r, texts[n], TL);
            ASSERT_OK(me_bm25_index_add(ix));
            index_set(ix, (uint32_t)n, texts[n]);
            n++;
        } else if (kind < 7) {                          /* replace */
            size_t d = me_rng_next(&r) % n;
            random_text(&r, texts[d], TL);
            index_set(ix, (uint32_t)d, texts[d]);
        } else {                                        /* remove: the last moves in */
            size_t d = me_rng_next(&r) % n;
            me_bm25_index_remove(ix, (uint32_t)d);
            memcpy(texts[d], texts[n - 1], TL);
            n--;
        }
        ASSERT_EQ(me_bm25_index_docs(ix), n);
        if (op % 50 != 0 || n == 0) continue;
        for (size_t i = 0; i < n; i++) ptrs[i] = texts[i];
        me_bm25_t *bm = me_bm25_build(ptrs, NULL, n, ME_BM25_K1, ME_BM25_B);
        ASSERT_TRUE(bm != NULL);
        for (size_t q = 0; q < sizeof queries / sizeof *queries; q++) {
            me_bm25_score(bm, queries[q], strlen(queries[q]), want);
            me_bm25_index_score(ix, queries[q], strlen(queries[q]), got);
            for (size_t i = 0; i < n; i++) ASSERT_NEAR(got[i], want[i], 1e-5);
        }
        me_bm25_free(bm);
    }
    free(got);
    free(want);
    me_bm25_index_free(ix);
}

TEST(bm25_bag_counts_distinct_terms_and_rejects_garbage) {
    uint8_t *bag;
    size_t len;
    ASSERT_OK(me_bm25_bag("Fox fox, dog", 12, &bag, &len));
    ASSERT_EQ(len, 4 + (1 + 3 + 4) * 2);
    ASSERT_EQ(bag[0], 2);
    me_bm25_index_t *ix = me_bm25_index_new(ME_BM25_K1, ME_BM25_B);
    ASSERT_OK(me_bm25_index_add(ix));
    ASSERT_EQ(me_bm25_index_set(ix, 0, bag, len - 1), ME_ECORRUPT);
    ASSERT_OK(me_bm25_index_set(ix, 0, bag, len));
    float s;
    ASSERT_EQ(me_bm25_index_score(ix, "FOX", 3, &s), 1);
    ASSERT_TRUE(s > 0);
    free(bag);
    ASSERT_OK(me_bm25_bag(" -- ", 4, &bag, &len));
    ASSERT_TRUE(bag == NULL && len == 0);
    me_bm25_index_free(ix);
}
