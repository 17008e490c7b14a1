/* encoder/dataset: .jsonl and .jsonl.gz load the same records, malformed
 * lines are named by number (or skipped and counted), damaged gzip is an
 * error, hard negatives follow paragraph → stem → random and never touch
 * dev/test, and the real file (when present) has the README's counts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common/error.h"
#include "encoder/dataset.h"
#include "tests/harness.h"

#define ASSERT_HAS(s, sub)                                                     \
    do { if (!strstr((s), (sub))) me_test_fail(__FILE__, __LINE__, "\"%s\" lacks \"%s\"", (s), (sub)); } while (0)

static void write_file(const char *path, const char *data, size_t n, int gz) {
    if (gz) {
        gzFile f = gzopen(path, "wb");
        ASSERT_TRUE(f != NULL);
        ASSERT_EQ(gzwrite(f, data, (unsigned)n), (int)n);
        ASSERT_EQ(gzclose(f), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        ASSERT_TRUE(f != NULL);
        ASSERT_EQ(fwrite(data, 1, n, f), n);
        fclose(f);
    }
}

static const char *GOOD =
    "{\"id\": \"0ad\", \"split\": \"train\", \"query\": \"Real-time strategy game\", \"text\": \"0 A.D. is a game.\\n\\nIt is free.\"}\n"
    "{\"id\":\"caf\\u00e9\",\"split\":\"dev\",\"query\":\"q2\",\"text\":\"t2 \\\"quoted\\\"\",\"extra\":[1,2]}\r\n"
    "\n"
    "{\"split\":\"test\",\"text\":\"t3\",\"query\":\"\",\"id\":\"zz-3\"}\n"
    "{\"id\":\"nul\",\"split\":\"train\",\"query\":\"a\\u0000b\",\"text\":\"x\"}";     /* no final newline */

static void check_good(const me_dataset_t *ds) {
    ASSERT_EQ(ds->n, 4);
    ASSERT_EQ(ds->n_split[ME_SPLIT_TRAIN], 2);
    ASSERT_EQ(ds->n_split[ME_SPLIT_DEV], 1);
    ASSERT_EQ(ds->n_split[ME_SPLIT_TEST], 1);
    ASSERT_EQ(ds->skipped, 0);
    const me_datarec_t *r = ds->recs;
    ASSERT_STREQ(r[0].id, "0ad");
    ASSERT_EQ(r[0].split, ME_SPLIT_TRAIN);
    ASSERT_STREQ(r[0].query, "Real-time strategy game");
    ASSERT_STREQ(r[0].text, "0 A.D. is a game.\n\nIt is free.");
    ASSERT_EQ(r[0].text_len, strlen(r[0].text));
    ASSERT_EQ(r[0].line, 1);
    ASSERT_STREQ(r[1].id, "caf\xc3\xa9");
    ASSERT_EQ(r[1].id_len, 5);
    ASSERT_EQ(r[1].split, ME_SPLIT_DEV);
    ASSERT_STREQ(r[1].text, "t2 \"quoted\"");
    ASSERT_STREQ(r[2].id, "zz-3");
    ASSERT_EQ(r[2].split, ME_SPLIT_TEST);
    ASSERT_STREQ(r[2].query, "");
    ASSERT_EQ(r[2].line, 4);             /* the empty line 3 is skipped, not renumbered */
    ASSERT_EQ(r[3].query_len, 3);
    ASSERT_TRUE(memcmp(r[3].query, "a\0b", 4) == 0);
    ASSERT_EQ(me_dataset_find(ds, "zz-3"), 2);
    ASSERT_EQ(me_dataset_find(ds, "caf\xc3\xa9"), 1);
    ASSERT_EQ(me_dataset_find(ds, "nope"), -1);
    ASSERT_STREQ(me_split_name(ME_SPLIT_DEV), "dev");
}

TEST(dataset_load_plain_and_gz) {
    char *dir = me_test_tmpdir("dataset");
    char path[600], err[512];
    for (int gz = 0; gz < 2; gz++) {
        snprintf(path, sizeof path, "%s/d.jsonl%s", dir, gz ? ".gz" : "");
        write_file(path, GOOD, strlen(GOOD), gz);
        me_dataset_t *ds = NULL;
        ASSERT_OK(me_dataset_load(path, 0, &ds, err, sizeof err));
        check_good(ds);
        me_dataset_free(ds);
    }
    /* An empty file is an empty dataset. */
    snprintf(path, sizeof path, "%s/empty.jsonl", dir);
    write_file(path, "", 0, 0);
    me_dataset_t *ds = NULL;
    ASSERT_OK(me_dataset_load(path, 0, &ds, err, sizeof err));
    ASSERT_EQ(ds->n, 0);
    ASSERT_EQ(me_dataset_find(ds, "x"), -1);
    me_dataset_free(ds);
    me_dataset_free(NULL);
    me_test_rmdir(dir);
    free(dir);
}

TEST(dataset_malformed_lines_named) {
    static const struct { const char *line, *why; } bad[] = {
        { "{\"id\":\"a\",\"split\":\"train\",\"query\":\"q\",\"text\":\"t\",}", "trailing comma" },
        { "{\"id\":\"a\",\"split\":\"train\",\"query\":\"q\"}", "no \"text\" member" },
        { "{\"id\":5,\"split\":\"train\",\"query\":\"q\",\"text\":\"t\"}", "\"id\" is not a string" },
        { "{\"id\":\"\",\"split\":\"train\",\"query\":\"q\",\"text\":\"t\"}", "empty \"id\"" },
        { "{\"id\":\"a\",\"split\":\"validation\",\"query\":\"q\",\"text\":\"t\"}", "not train, dev or test" },
        { "[\"a\",\"train\",\"q\",\"t\"]", "not a JSON object" },
        { "{\"id\":\"a\",\"split\":\"train\",\"query\":\"q\",\"text\":\"t\"} x", "after the value" },
        { "{\"id\":\"a\xff\",\"split\":\"train\",\"query\":\"q\",\"text\":\"t\"}", "invalid UTF-8" },
    };
    char *dir = me_test_tmpdir("dataset");
    char path[600], err[512];
    const char *ok = "{\"id\":\"ok\",\"split\":\"train\",\"query\":\"q\",\"text\":\"t\"}\n";
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        /* Two good lines, then the bad one on line 3, then a good one. */
        char buf[1024];
        snprintf(buf, sizeof buf, "%s%s%s\n%s", ok, "{\"id\":\"ok2\",\"split\":\"dev\",\"query\":\"q\",\"text\":\"t\"}\n",
                 bad[i].line, "{\"id\":\"ok3\",\"split\":\"test\",\"query\":\"q\",\"text\":\"t\"}\n");
        snprintf(path, sizeof path, "%s/bad%zu.jsonl.gz", dir, i);
        write_file(path, buf, strlen(buf), 1);
        me_dataset_t *ds = (me_dataset_t *)1;
        ASSERT_EQ(me_dataset_load(path, 0, &ds, err, sizeof err), ME_EINVAL);
        ASSERT_TRUE(ds == NULL);
        char want[700];
        snprintf(want, sizeof want, "%s:3: ", path);
        ASSERT_HAS(err, want);
        ASSERT_HAS(err, bad[i].why);
        /* Skipping: the other three load, one skip counted and described. */
        ASSERT_OK(me_dataset_load(path, 1, &ds, err, sizeof err));
        ASSERT_EQ(ds->n, 3);
        ASSERT_EQ(ds->skipped, 1);
        ASSERT_HAS(ds->first_skip, "line 3: ");
        ASSERT_HAS(ds->first_skip, bad[i].why);
        ASSERT_STREQ(ds->recs[2].id, "ok3");
        me_dataset_free(ds);
    }
    me_test_rmdir(dir);
    free(dir);
}

TEST(dataset_io_errors) {
    char *dir = me_test_tmpdir("dataset");
    char path[600], err[512];
    me_dataset_t *ds = NULL;
    snprintf(path, sizeof path, "%s/missing.jsonl.gz", dir);
    ASSERT_EQ(me_dataset_load(path, 0, &ds, err, sizeof err), ME_EIO);
    ASSERT_HAS(err, "cannot open");
    /* A gzip file cut in half: a damaged stream, not a short dataset. */
    size_t cap = 200000, n = 0;
    char *big = malloc(cap);
    me_rng_t rng = { 1 };
    for (int i = 0; n + 200 < cap; i++)
        n += (size_t)snprintf(big + n, cap - n, "{\"id\":\"p%d\",\"split\":\"train\",\"query\":\"q%llu\",\"text\":\"t%llu\"}\n",
                              i, (unsigned long long)me_rng_next(&rng), (unsigned long long)me_rng_next(&rng));
    snprintf(path, sizeof path, "%s/cut.jsonl.gz", dir);
    write_file(path, big, n, 1);
    char *gzdata = NULL;
    FILE *f = fopen(path, "rb");
    ASSERT_TRUE(f != NULL);
    fseek(f, 0, SEEK_END);
    long gzlen = ftell(f);
    fseek(f, 0, SEEK_SET);
    gzdata = malloc((size_t)gzlen);
    ASSERT_EQ(fread(gzdata, 1, (size_t)gzlen, f), (size_t)gzlen);
    fclose(f);
    ASSERT_OK(me_dataset_load(path, 0, &ds, err, sizeof err));
    size_t full = ds->n;
    me_dataset_free(ds);
    write_file(path, gzdata, (size_t)gzlen / 2, 0);
    int rc = me_dataset_load(path, 0, &ds, err, sizeof err);
    ASSERT_TRUE(rc == ME_ECORRUPT || rc == ME_EINVAL);
    ASSERT_TRUE(ds == NULL);
    ASSERT_HAS(err, path);
    /* Flipped bytes in the middle of the stream. */
    memset(gzdata + gzlen / 2, 0x55, 64);
    write_file(path, gzdata, (size_t)gzlen, 0);
    rc = me_dataset_load(path, 0, &ds, err, sizeof err);
    ASSERT_TRUE(rc == ME_ECORRUPT || rc == ME_EINVAL);
    ASSERT_TRUE(full > 1000);
    free(gzdata);
    free(big);
    me_test_rmdir(dir);
    free(dir);
}

TEST(dataset_stem) {
    static const struct { const char *id, *stem; } cases[] = {
        { "libfoo1", "libfoo" }, { "libfoo-dev", "libfoo" }, { "foo-doc", "foo" }, { "foo", "foo" },
        { "0ad-data", "0ad" }, { "0ad", "0ad" }, { "python3.11", "python" }, { "g++-12", "g++" }, { "", "" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = me_dataset_stem(cases[i].id, strlen(cases[i].id));
        char got[64];
        snprintf(got, sizeof got, "%.*s", (int)n, cases[i].id);
        ASSERT_STREQ(got, cases[i].stem);
    }
}

#define REC(id, split, text) "{\"id\":\"" id "\",\"split\":\"" split "\",\"query\":\"q\",\"text\":\"" text "\"}\n"

TEST(dataset_hard_negatives) {
    const char *data =
        REC("0ad", "train", "A strategy game.\\n\\nThe engine.")             /* 0: paragraph group */
        REC("0ad-data", "train", "A strategy game.\\n\\nThe data.")          /* 1 */
        REC("0ad-data-common", "train", "A strategy game.\\n\\nCommon.")     /* 2 */
        REC("libfoo1", "train", "Foo library.\\n\\nRuntime.")                /* 3: stem libfoo */
        REC("libfoo-dev", "train", "Foo library, headers.")                  /* 4 */
        REC("foo-doc", "train", "Docs for foo.")                             /* 5: alone: random */
        REC("foo", "dev", "Docs for foo.\\n\\nMore.")                         /* 6: dev, never used */
        REC("0ad-tools", "test", "A strategy game.\\n\\nTools.")             /* 7: test, never used */
        REC("bar", "train", "A strategy game.")                              /* 8: whole text = the paragraph */
        REC("libfoo-bin", "dev", "Foo library.\\n\\nBinaries.");             /* 9: dev */
    char *dir = me_test_tmpdir("dataset");
    char path[600], err[512];
    snprintf(path, sizeof path, "%s/h.jsonl", dir);
    write_file(path, data, strlen(data), 0);
    me_dataset_t *ds = NULL;
    ASSERT_OK(me_dataset_load(path, 0, &ds, err, sizeof err));
    ASSERT_EQ(ds->n, 10);
    int32_t neg[10], neg2[10];
    uint8_t kind[10];
    for (uint64_t seed = 0; seed < 50; seed++) {
        ASSERT_OK(me_dataset_hard_negatives(ds, seed, neg, kind));
        ASSERT_OK(me_dataset_hard_negatives(ds, seed, neg2, NULL));
        ASSERT_TRUE(memcmp(neg, neg2, sizeof neg) == 0);     /* deterministic */
        for (int i = 0; i < 10; i++) {
            if (ds->recs[i].split != ME_SPLIT_TRAIN) {
                ASSERT_EQ(neg[i], -1);
                ASSERT_EQ(kind[i], ME_HARDNEG_NONE);
                continue;
            }
            ASSERT_TRUE(neg[i] >= 0 && neg[i] != i);
            ASSERT_EQ(ds->recs[neg[i]].split, ME_SPLIT_TRAIN);
        }
        for (int i = 0; i < 3; i++) {
            ASSERT_EQ(kind[i], ME_HARDNEG_PARAGRAPH);
            ASSERT_TRUE(neg[i] == 0 || neg[i] == 1 || neg[i] == 2 || neg[i] == 8);
        }
        ASSERT_EQ(kind[8], ME_HARDNEG_PARAGRAPH);
        ASSERT_TRUE(neg[8] <= 2);
        ASSERT_EQ(kind[3], ME_HARDNEG_STEM);
        ASSERT_EQ(neg[3], 4);
        ASSERT_EQ(kind[4], ME_HARDNEG_STEM);
        ASSERT_EQ(neg[4], 3);
        ASSERT_EQ(kind[5], ME_HARDNEG_RANDOM);
    }
    /* The seed changes the picks in big groups. */
    int differs = 0;
    ASSERT_OK(me_dataset_hard_negatives(ds, 1, neg, NULL));
    for (uint64_t seed = 2; seed < 20; seed++) {
        ASSERT_OK(me_dataset_hard_negatives(ds, seed, neg2, NULL));
        differs |= memcmp(neg, neg2, sizeof neg) != 0;
    }
    ASSERT_TRUE(differs);
    me_dataset_free(ds);

    /* A lone train record has no negative. */
    const char *one = REC("solo", "train", "x") REC("other", "dev", "x");
    write_file(path, one, strlen(one), 0);
    ASSERT_OK(me_dataset_load(path, 0, &ds, err, sizeof err));
    ASSERT_OK(me_dataset_hard_negatives(ds, 7, neg, kind));
    ASSERT_EQ(neg[0], -1);
    ASSERT_EQ(kind[0], ME_HARDNEG_NONE);
    ASSERT_EQ(neg[1], -1);
    me_dataset_free(ds);
    me_test_rmdir(dir);
    free(dir);
}

#define QREC(id, split, query, text) \
    "{\"id\":\"" id "\",\"split\":\"" split "\",\"query\":\"" query "\",\"text\":\"" text "\"}\n"

TEST(dataset_bm25_negatives) {
    const char *data =
        QREC("zstd", "train", "fast lossless compression", "Zstandard is a fast lossless compression tool.")  /* 0 */
        QREC("lz4", "train", "very fast compression", "LZ4 is a very fast lossless compression algorithm.")    /* 1 */
        QREC("lz4-dup", "train", "lz4 fast compression again", "LZ4 is a very fast lossless compression algorithm.")           /* 2: 1's text */
        QREC("gzip", "train", "gnu compression utility", "The GNU compression utility, gzip.")               /* 3 */
        QREC("vim", "train", "vi improved editor", "Vim is a text editor.")                                  /* 4 */
        QREC("nano", "train", "small text editor", "Nano is a small text editor.")                           /* 5 */
        QREC("xyzzy", "train", "qqqq", "Nothing shared.")                                                    /* 6 */
        QREC("brotli", "dev", "compression", "Brotli fast lossless compression.")                            /* 7: dev */
        QREC("emacs", "test", "text editor", "Emacs text editor.");                                          /* 8: test */
    char *dir = me_test_tmpdir("dataset");
    char path[600], err[512];
    snprintf(path, sizeof path, "%s/b.jsonl", dir);
    write_file(path, data, strlen(data), 0);
    me_dataset_t *ds = NULL;
    ASSERT_OK(me_dataset_load(path, 0, &ds, err, sizeof err));
    int32_t neg[9], neg2[9], heur[9];
    uint8_t kind[9];
    ASSERT_EQ(me_dataset_bm25_negatives(ds, 1, 0, neg, kind), ME_EINVAL);
    ASSERT_EQ(me_dataset_bm25_negatives(ds, 1, 65, neg, kind), ME_EINVAL);
    for (uint64_t seed = 0; seed < 20; seed++) {
        ASSERT_OK(me_dataset_bm25_negatives(ds, seed, 3, neg, kind));
        ASSERT_OK(me_dataset_bm25_negatives(ds, seed, 3, neg2, NULL));
        ASSERT_TRUE(memcmp(neg, neg2, sizeof neg) == 0);   /* deterministic */
        ASSERT_OK(me_dataset_hard_negatives(ds, seed, heur, NULL));
        for (int i = 0; i < 9; i++) {
            if (ds->recs[i].split != ME_SPLIT_TRAIN) {
                ASSERT_EQ(neg[i], -1);
                continue;
            }
            ASSERT_TRUE(neg[i] >= 0 && neg[i] != i);
            ASSERT_EQ(ds->recs[neg[i]].split, ME_SPLIT_TRAIN);   /* dev's brotli never */
        }
        /* The compression queries get another compressor's text, never the
         * duplicate of their own (lz4-dup for lz4) nor an editor. */
        ASSERT_EQ(kind[0], ME_HARDNEG_BM25);
        ASSERT_TRUE(neg[0] == 1 || neg[0] == 2 || neg[0] == 3);
        ASSERT_EQ(kind[1], ME_HARDNEG_BM25);
        ASSERT_TRUE(neg[1] == 0 || neg[1] == 3);
        ASSERT_TRUE(neg[2] == 0 || neg[2] == 3);   /* zstd or gzip, never lz4 (its own text) */
        ASSERT_TRUE(neg[5] == 4);                  /* "small text editor": vim, the other editor */
        /* A query sharing no word keeps the heuristic pick. */
        ASSERT_TRUE(kind[6] != ME_HARDNEG_BM25);
        ASSERT_EQ(neg[6], heur[6]);
    }
    me_dataset_free(ds);
    me_test_rmdir(dir);
    free(dir);
}

TEST(dataset_locate) {
    char *dir = me_test_tmpdir("dataset");
    char path[600], out[4096];
    const char *prev = getenv("METAEMBED_DATA");
    char *saved = prev ? strdup(prev) : NULL;
    snprintf(path, sizeof path, "%s/x.jsonl", dir);
    write_file(path, "", 0, 0);
    setenv("METAEMBED_DATA", path, 1);
    ASSERT_OK(me_dataset_locate("/nonexistent", out, sizeof out));
    ASSERT_STREQ(out, path);
    setenv("METAEMBED_DATA", "/nonexistent/data.jsonl.gz", 1);
    ASSERT_EQ(me_dataset_locate(path, out, sizeof out), ME_ENOTFOUND);
    ASSERT_STREQ(out, "/nonexistent/data.jsonl.gz");   /* explicit wins, even when absent */
    unsetenv("METAEMBED_DATA");
    /* Without it: the repository's ../shared/data when there, else the fallback. */
    int rc = me_dataset_locate(path, out, sizeof out);
    ASSERT_OK(rc);
    ASSERT_TRUE(strstr(out, "shared/data/" ME_DATASET_FILE) != NULL || strcmp(out, path) == 0);
    if (saved) setenv("METAEMBED_DATA", saved, 1);
    free(saved);
    me_test_rmdir(dir);
    free(dir);
}

TEST(dataset_real_file_counts) {
    char path[4096], err[512];
    if (me_dataset_locate(NULL, path, sizeof path) != 0) {
        printf("    note: %s not found; skipping the real-data check (set METAEMBED_DATA)\n", path);
        return;
    }
    me_dataset_t *ds = NULL;
    double t0 = me_test_now_ms();
    ASSERT_OK(me_dataset_load(path, 0, &ds, err, sizeof err));
    double ms = me_test_now_ms() - t0;
    ASSERT_EQ(ds->n, 57687);
    ASSERT_EQ(ds->n_split[ME_SPLIT_TRAIN], 54207);
    ASSERT_EQ(ds->n_split[ME_SPLIT_DEV], 1145);
    ASSERT_EQ(ds->n_split[ME_SPLIT_TEST], 2335);
    ASSERT_EQ(ds->skipped, 0);
    long i = me_dataset_find(ds, "0ad-data-common");
    ASSERT_TRUE(i >= 0);
    int32_t *neg = malloc(ds->n * sizeof *neg);
    uint8_t *kind = malloc(ds->n);
    ASSERT_OK(me_dataset_hard_negatives(ds, 42, neg, kind));
    size_t count[4] = { 0 };
    for (size_t k = 0; k < ds->n; k++) {
        count[kind[k]]++;
        if (neg[k] >= 0) ASSERT_EQ(ds->recs[neg[k]].split, ME_SPLIT_TRAIN);
    }
    ASSERT_EQ(count[ME_HARDNEG_NONE], 1145 + 2335);
    printf("    %s: %zu records in %.0f ms (%zu repeated ids); hard negatives: %zu paragraph, %zu stem, %zu random\n",
           path, ds->n, ms, ds->duplicate_ids, count[ME_HARDNEG_PARAGRAPH], count[ME_HARDNEG_STEM],
           count[ME_HARDNEG_RANDOM]);
    free(neg);
    free(kind);
    me_dataset_free(ds);
}
