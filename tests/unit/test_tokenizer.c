/* encoder/tokenizer: normalisation, training against a naive reference
 * trainer, determinism, byte fallback over all 256 bytes, decode(encode)
 * = normalise, truncation, serialisation round trips and every corrupt
 * serialisation rejected; training speed is reported, never asserted. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "encoder/tokenizer.h"
#include "tests/harness.h"

#define ASSERT_HAS(s, sub)                                                     \
    do { if (!strstr((s), (sub))) me_test_fail(__FILE__, __LINE__, "\"%s\" lacks \"%s\"", (s), (sub)); } while (0)

/* A corpus of made-up words from syllables, Zipf-ish so pairs have
 * distinct counts and also ties; with punctuation, digits and capitals. */
static char *make_text(me_rng_t *rng, int nwords) {
    static const char *syl[] = { "lib", "gtk", "py", "thon", "dev", "doc", "data", "com", "mon", "ker",
                                 "nel", "x", "qt", "5", "3", "net", "ssl", "perl", "java", "caf\xc3\xa9" };
    size_t cap = (size_t)nwords * 24 + 1, n = 0;
    char *s = malloc(cap);
    for (int w = 0; w < nwords; w++) {
        int k = 1 + (int)(me_rng_next(rng) % 3);
        for (int i = 0; i < k; i++) {
            double u = me_rng_uniform(rng);
            int j = (int)(u * u * 20);
            const char *p = syl[j];
            if (me_rng_next(rng) % 17 == 0) { s[n++] = (char)(p[0] & ~0x20); p++; }
            size_t l = strlen(p);
            memcpy(s + n, p, l);
            n += l;
        }
        uint64_t r = me_rng_next(rng) % 10;
        s[n++] = r == 0 ? ',' : r == 1 ? '-' : ' ';
        if (r == 0) s[n++] = ' ';
    }
    s[n] = 0;
    return s;
}

/* The textbook trainer: count every pair over every word each round. */
static int naive_train(const char *text, int nmerges_max, int32_t *merges) {
    size_t n = strlen(text), cap = n + 1;
    int32_t *sym = malloc(cap * 2 * sizeof *sym);
    int32_t *wstart = malloc(cap * sizeof *wstart), *wlen = malloc(cap * sizeof *wlen);
    int nw = 0, pos = 0;
    char *norm = malloc(n * 2 + 2);
    me_tok_normalize(text, n, norm, n * 2 + 2);
    /* Normalised text: words separated by single spaces; no long words here. */
    for (char *p = norm; *p;) {
        char *e = strchr(p, ' ');
        if (!e) e = p + strlen(p);
        wstart[nw] = pos;
        sym[pos++] = ME_TOK_WORD_START;
        for (char *q = p; q < e; q++) sym[pos++] = ME_TOK_BYTE0 + (unsigned char)*q;
        wlen[nw] = pos - wstart[nw];
        nw++;
        p = *e ? e + 1 : e;
    }
    int nm = 0;
    size_t V = ME_TOK_BASE_VOCAB + (size_t)nmerges_max;
    long long *cnt = calloc(V * V, sizeof *cnt);
    while (nm < nmerges_max) {
        memset(cnt, 0, V * V * sizeof *cnt);
        for (int w = 0; w < nw; w++)
            for (int i = 0; i + 1 < wlen[w]; i++) cnt[(size_t)sym[wstart[w] + i] * V + (size_t)sym[wstart[w] + i + 1]]++;
        size_t best = 0;
        for (size_t k = 1; k < V * V; k++)
            if (cnt[k] > cnt[best]) best = k;
        if (cnt[best] < 2) break;
        int32_t a = (int32_t)(best / V), b = (int32_t)(best % V), z = ME_TOK_BASE_VOCAB + nm;
        merges[2 * nm] = a;
        merges[2 * nm + 1] = b;
        nm++;
        for (int w = 0; w < nw; w++) {
            int32_t *s = sym + wstart[w];
            int j = 0;
            for (int i = 0; i < wlen[w];) {
                if (i + 1 < wlen[w] && s[i] == a && s[i + 1] == b) { s[j++] = z; i += 2; }
                else s[j++] = s[i++];
            }
            wlen[w] = j;
        }
    }
    free(cnt);
    free(sym);
    free(wstart);
    free(wlen);
    free(norm);
    return nm;
}

static me_tok_t *train_one(const char *text, int vocab) {
    me_tok_t *t = NULL;
    char err[256];
    const char *texts[1] = { text };
    int rc = me_tok_train(texts, NULL, 1, vocab, &t, err, sizeof err);
    if (rc != 0) me_test_fail(__FILE__, __LINE__, "train: %s", err);
    return t;
}

/* What most tests start from: a made-up text (make_text from `seed`) and a
 * tokenizer trained on it. */
typedef struct {
    char *text;
    me_tok_t *t;
} trained_t;

static trained_t trained(uint64_t seed, int nwords, int vocab) {
    me_rng_t rng = { seed };
    trained_t x = { make_text(&rng, nwords), NULL };
    x.t = train_one(x.text, vocab);
    return x;
}

static void trained_free(trained_t *x) {
    me_tok_free(x->t);
    free(x->text);
}

static char *save(const me_tok_t *t, size_t *len) {
    char *s = NULL;
    ASSERT_OK(me_tok_save(t, &s, len));
    return s;
}

TEST(tokenizer_normalize) {
    char out[256];
    const char *in = "  Hello,  World!\tFOO_bar\n\nx86-64 caf\xc3\xa9\xff 3.14 ";
    size_t n = me_tok_normalize(in, strlen(in), out, sizeof out);
    ASSERT_STREQ(out, "hello , world ! foo _ bar x86 - 64 caf\xc3\xa9\xff 3 . 14");
    ASSERT_EQ(n, strlen(out));
    /* snprintf convention: the full length even when cut. */
    ASSERT_EQ(me_tok_normalize(in, strlen(in), out, 6), n);
    ASSERT_STREQ(out, "hello");
    ASSERT_EQ(me_tok_normalize("", 0, out, sizeof out), 0);
    ASSERT_STREQ(out, "");
    ASSERT_EQ(me_tok_normalize(" \t\r\n\v\f", 6, out, sizeof out), 0);
}

TEST(tokenizer_matches_naive_trainer) {
    enum { WANT = 400 };
    trained_t x = trained(7, 3000, ME_TOK_BASE_VOCAB + WANT);
    int32_t *ref = malloc((size_t)WANT * 2 * sizeof *ref);
    int nref = naive_train(x.text, WANT, ref);
    ASSERT_EQ(me_tok_num_merges(x.t), nref);
    for (int i = 0; i < nref; i++) {
        int32_t a, b;
        me_tok_merge(x.t, i, &a, &b);
        if (a != ref[2 * i] || b != ref[2 * i + 1])
            me_test_fail(__FILE__, __LINE__, "merge %d: (%d, %d), reference (%d, %d)", i, a, b, ref[2 * i], ref[2 * i + 1]);
    }
    /* The corpus runs out of pairs seen twice before 400 merges? Then the
     * vocabulary is smaller, as documented; either way it matched. */
    ASSERT_EQ(me_tok_vocab_size(x.t), ME_TOK_BASE_VOCAB + nref);
    free(ref);
    trained_free(&x);
}

TEST(tokenizer_deterministic) {
    trained_t x = trained(11, 20000, 1000);
    /* The same text split into many documents trains the same merges. */
    const char *docs[4];
    size_t lens[4], n = strlen(x.text), cut = 0;
    for (int i = 0; i < 4; i++) {
        size_t end = i == 3 ? n : (size_t)(i + 1) * n / 4;
        while (end < n && x.text[end] != ' ') end++;
        docs[i] = x.text + cut;
        lens[i] = end - cut;
        cut = end;
    }
    me_tok_t *b = NULL;
    char err[256];
    ASSERT_OK(me_tok_train(docs, lens, 4, 1000, &b, err, sizeof err));
    size_t la, lb;
    char *sa = save(x.t, &la), *sb = save(b, &lb);
    ASSERT_STREQ(sa, sb);
    ASSERT_EQ(la, lb);
    ASSERT_TRUE(me_tok_num_merges(x.t) > 100);
    free(sa);
    free(sb);
    me_tok_free(b);
    trained_free(&x);
}

TEST(tokenizer_byte_fallback_all_bytes) {
    trained_t x = trained(3, 2000, 600);
    char all[256];
    for (int i = 0; i < 256; i++) all[i] = (char)i;
    int32_t ids[1024];
    int n = me_tok_encode(x.t, all, 256, ids, 1024);
    ASSERT_TRUE(n > 0);
    for (int i = 0; i < n; i++) {
        ASSERT_TRUE(ids[i] >= ME_TOK_WORD_START);
        ASSERT_TRUE(ids[i] < me_tok_vocab_size(x.t));
    }
    char dec[1024], norm[1024];
    size_t dl = me_tok_decode(x.t, ids, n, dec, sizeof dec);
    size_t nl = me_tok_normalize(all, 256, norm, sizeof norm);
    ASSERT_EQ(dl, nl);
    ASSERT_TRUE(memcmp(dec, norm, nl) == 0);   /* holds NULs: compare bytes */
    /* Every byte alone is a word start plus its byte id (or one merge of
     * them); a tokenizer without merges shows the raw ids. */
    const char *none[1] = { "" };
    me_tok_t *bare = NULL;
    char err[128];
    ASSERT_OK(me_tok_train(none, NULL, 1, 8192, &bare, err, sizeof err));
    ASSERT_EQ(me_tok_vocab_size(bare), ME_TOK_BASE_VOCAB);
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        n = me_tok_encode(bare, &c, 1, ids, 4);
        int space = c == ' ' || (c >= '\t' && c <= '\r');
        ASSERT_EQ(n, space ? 0 : 2);
        if (!space) {
            ASSERT_EQ(ids[0], ME_TOK_WORD_START);
            ASSERT_EQ(ids[1], ME_TOK_BYTE0 + (b >= 'A' && b <= 'Z' ? b | 0x20 : b));
        }
    }
    me_tok_free(bare);
    trained_free(&x);
}

TEST(tokenizer_decode_encode_is_normalize) {
    trained_t x = trained(5, 5000, 2000);
    char longw[300];
    /* 150 x "é": a run past ME_TOK_MAX_WORD, cut between characters. */
    for (int i = 0; i < 150; i++) { longw[2 * i] = (char)0xc3; longw[2 * i + 1] = (char)0xa9; }
    longw[299] = 0;
    const char *cases[] = {
        x.text, "", "   ", "Hello,  World!", "libgtk-3-dev python3-pytest data\n\ncommon",
        "x\0y", longw, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "\xff\xfe\xc3(\xe2\x82 libdata", "UPPER lower MiXeD 0123456789 !@#$%^&*()",
    };
    size_t lens[sizeof cases / sizeof cases[0]];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) lens[c] = strlen(cases[c]);
    lens[5] = 3;        /* "x\0y" */
    size_t cap = strlen(x.text) * 2 + 1024;
    int32_t *ids = malloc(cap * sizeof *ids);
    char *dec = malloc(cap), *norm = malloc(cap);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int n = me_tok_encode(x.t, cases[c], lens[c], ids, (int)cap);
        size_t dl = me_tok_decode(x.t, ids, n, dec, cap);
        size_t nl = me_tok_normalize(cases[c], lens[c], norm, cap);
        if (dl != nl || memcmp(dec, norm, nl) != 0)
            me_test_fail(__FILE__, __LINE__, "case %zu: decode \"%.60s\" vs normalise \"%.60s\"", c, dec, norm);
    }
    /* Merges do their job: the training text takes far fewer ids than bytes. */
    int n = me_tok_encode(x.t, x.text, strlen(x.text), ids, (int)cap);
    ASSERT_TRUE((size_t)n * 3 < strlen(x.text));
    /* Padding and unknown ids are skipped by decode. */
    int32_t odd[] = { ME_TOK_PAD, ME_TOK_WORD_START, ME_TOK_BYTE0 + 'h', ME_TOK_UNK, -5, 1 << 30,
                      ME_TOK_BYTE0 + 'i', ME_TOK_WORD_START, ME_TOK_BYTE0 + '!' };
    me_tok_decode(x.t, odd, 9, dec, cap);
    ASSERT_STREQ(dec, "hi !");
    free(ids);
    free(dec);
    free(norm);
    trained_free(&x);
}

TEST(tokenizer_truncation) {
    trained_t x = trained(9, 3000, 800);
    size_t len = strlen(x.text);
    int32_t *full = malloc(len * 2 * sizeof *full), part[64];
    int n = me_tok_encode(x.t, x.text, len, full, (int)len * 2);
    ASSERT_TRUE(n > 64);
    for (int max = 0; max <= 64; max += 7) {
        int m = me_tok_encode(x.t, x.text, len, part, max);
        ASSERT_EQ(m, max);
        ASSERT_TRUE(memcmp(part, full, (size_t)m * sizeof *part) == 0);
    }
    ASSERT_EQ(me_tok_encode(x.t, x.text, len, part, -1), 0);
    free(full);
    trained_free(&x);
}

TEST(tokenizer_save_load_roundtrip) {
    trained_t x = trained(13, 8000, 1500);
    me_tok_t *u = NULL;
    size_t len, len2;
    char *s = save(x.t, &len), err[256];
    ASSERT_EQ(len, strlen(s));
    ASSERT_TRUE(strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789= ") == len);   /* JSON-string safe */
    ASSERT_OK(me_tok_load(s, len, &u, err, sizeof err));
    ASSERT_EQ(me_tok_vocab_size(u), me_tok_vocab_size(x.t));
    char *s2 = save(u, &len2);
    ASSERT_STREQ(s2, s);
    size_t n = strlen(x.text);
    int32_t *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    int na = me_tok_encode(x.t, x.text, n, a, (int)n), nb = me_tok_encode(u, x.text, n, b, (int)n);
    ASSERT_EQ(na, nb);
    ASSERT_TRUE(memcmp(a, b, (size_t)na * sizeof *a) == 0);
    free(a);
    free(b);
    free(s);
    free(s2);
    me_tok_free(u);
    trained_free(&x);
}

static void expect_corrupt(const char *s, int code, const char *sub) {
    me_tok_t *t = (me_tok_t *)1;
    char err[256] = "";
    int rc = me_tok_load(s, strlen(s), &t, err, sizeof err);
    if (rc != code || t != NULL || !strstr(err, sub))
        me_test_fail(__FILE__, __LINE__, "load \"%.60s\": rc %d err \"%s\" (want %d, \"%s\")", s, rc, err, code, sub);
}

TEST(tokenizer_corrupt_serialisations) {
    expect_corrupt("", ME_ECORRUPT, "not a serialised tokenizer");
    expect_corrupt("{\"merges\":[]}", ME_ECORRUPT, "not a serialised tokenizer");
    expect_corrupt("mebpe1 norm=2 vocab=259 merges=0", ME_EUNIMPL, "normalisation version 2");
    expect_corrupt("mebpe1 norm=x", ME_ECORRUPT, "normalisation version");
    expect_corrupt("mebpe1 norm=1 vocab=260 merges=0", ME_ECORRUPT, "does not match");
    expect_corrupt("mebpe1 norm=1 vocab=99999999999 merges=0", ME_ECORRUPT, "bad header");
    expect_corrupt("mebpe1 norm=1 vocab=261 merges=2 2 104", ME_ECORRUPT, "truncated after 1 of 2");
    expect_corrupt("mebpe1 norm=1 vocab=261 merges=2 2 104 ", ME_ECORRUPT, "bad merge 1");
    expect_corrupt("mebpe1 norm=1 vocab=260 merges=1 2 104 7", ME_ECORRUPT, "unexpected bytes");
    expect_corrupt("mebpe1 norm=1 vocab=260 merges=1 2 0104", ME_ECORRUPT, "bad merge 0");
    expect_corrupt("mebpe1 norm=1 vocab=260 merges=1 2 -1", ME_ECORRUPT, "bad merge 0");
    expect_corrupt("mebpe1 norm=1 vocab=260 merges=1 2 259", ME_ECORRUPT, "outside [2, 259)");   /* itself */
    expect_corrupt("mebpe1 norm=1 vocab=260 merges=1 1 104", ME_ECORRUPT, "outside");            /* UNK */
    expect_corrupt("mebpe1 norm=1 vocab=260 merges=1 104 2", ME_ECORRUPT, "word-start");
    expect_corrupt("mebpe1 norm=1 vocab=261 merges=2 2 104 2 104", ME_ECORRUPT, "repeats merge 0");
    expect_corrupt("mebpe1 norm=1 vocab=261 merges=2 2 104 104 259", ME_ECORRUPT, "word-start");
    expect_corrupt("mebpe1 norm=1 vocab=260 merges=1  2 104", ME_ECORRUPT, "bad merge 0");
    /* Every truncation and every single-byte change of a real one: loads or
     * fails cleanly, never crashes (ASan watches). */
    trained_t x = trained(17, 1000, 400);
    me_tok_t *u;
    size_t len;
    char *s = save(x.t, &len), err[256];
    for (size_t cut = 0; cut < len; cut++) {
        int rc = me_tok_load(s, cut, &u, err, sizeof err);
        /* Cutting inside the last number can leave a valid, different file. */
        if (rc == 0) { ASSERT_TRUE(cut > len - 5); me_tok_free(u); }
        else ASSERT_TRUE(err[0] != 0);
    }
    char *m = malloc(len);
    static const char subst[] = { '0', '9', ' ', 'x', '\0', '-' };
    for (size_t i = 0; i < len; i += 3)
        for (size_t k = 0; k < sizeof subst; k++) {
            memcpy(m, s, len);
            m[i] = subst[k];
            if (me_tok_load(m, len, &u, err, sizeof err) == 0) me_tok_free(u);
        }
    free(m);
    free(s);
    trained_free(&x);
}

TEST(tokenizer_training_speed) {
    /* About the real training set's shape: millions of word occurrences. */
    me_rng_t rng = { 23 };
    char *text = make_text(&rng, 1000000);
    double t0 = me_test_now_ms();
    me_tok_t *t = train_one(text, ME_TOK_DEFAULT_VOCAB);
    double train_ms = me_test_now_ms() - t0;
    size_t n = strlen(text);
    int32_t *ids = malloc(n * sizeof *ids);
    t0 = me_test_now_ms();
    int nid = me_tok_encode(t, text, n, ids, (int)n);
    double enc_ms = me_test_now_ms() - t0;
    printf("    tokenizer: %.1f MB synthetic text, %d merges trained in %.0f ms; encoded at %.1f MB/s "
           "(%.2f bytes per id)\n", n / 1e6, me_tok_num_merges(t), train_ms, n / 1e3 / (enc_ms > 0 ? enc_ms : 1e-3),
           (double)n / (nid ? nid : 1));
    free(ids);
    me_tok_free(t);
    free(text);
}

TEST(tokenizer_bad_vocab_size) {
    const char *texts[1] = { "a b" };
    me_tok_t *t = (me_tok_t *)1;
    char err[128];
    ASSERT_EQ(me_tok_train(texts, NULL, 1, ME_TOK_BASE_VOCAB, &t, err, sizeof err), ME_EINVAL);
    ASSERT_TRUE(t == NULL);
    ASSERT_HAS(err, "vocabulary size");
    ASSERT_EQ(me_tok_train(texts, NULL, 1, ME_TOK_MAX_VOCAB + 1, &t, err, sizeof err), ME_EINVAL);
}
