/* BM25 against an independent computation: the same formula written out
 * naively in double (its own tokenizer, a fresh count of every df and tf
 * per query), on texts with repeats, case, punctuation and a query term
 * that is nowhere. */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/bm25.h"
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
