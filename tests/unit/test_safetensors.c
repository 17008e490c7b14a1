#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/safetensors.h"
#include "tests/harness.h"

static char *write_sample(const char *dir, float *a, float *b) {
    static char path[600];
    snprintf(path, sizeof path, "%s/w.safetensors", dir);
    for (int i = 0; i < 6; i++) a[i] = (float)i * 0.5f - 1;
    for (int i = 0; i < 4; i++) b[i] = (float)(i * i) + 0.25f;
    me_st_tensor_t t[2] = { { "alpha", 2, { 2, 3 }, a }, { "beta", 1, { 4 }, b } };
    const char *k[2] = { "config", "note" }, *v[2] = { "{\"width\":3}", "line\nwith \"quotes\"" };
    char err[256];
    if (me_st_write(path, k, v, 2, t, 2, err, sizeof err) != 0) return NULL;
    return path;
}

TEST(safetensors_round_trip_is_bit_exact) {
    char *dir = me_test_tmpdir("st");
    float a[6], b[4];
    const char *path = write_sample(dir, a, b);
    ASSERT_TRUE(path != NULL);
    me_st_file_t *f;
    char err[256];
    ASSERT_OK(me_st_open(path, &f, err, sizeof err));
    ASSERT_EQ(me_st_count(f), 2);
    ASSERT_STREQ(me_st_meta(f, "config"), "{\"width\":3}");
    ASSERT_STREQ(me_st_meta(f, "note"), "line\nwith \"quotes\"");
    ASSERT_TRUE(me_st_meta(f, "absent") == NULL);
    me_st_tensor_t t;
    ASSERT_OK(me_st_get(f, "alpha", &t));
    ASSERT_EQ(t.ndim, 2);
    ASSERT_EQ(t.shape[0], 2);
    ASSERT_EQ(t.shape[1], 3);
    ASSERT_TRUE(memcmp(t.data, a, sizeof a) == 0);
    ASSERT_OK(me_st_get(f, "beta", &t));
    ASSERT_TRUE(memcmp(t.data, b, sizeof b) == 0);
    ASSERT_EQ(me_st_get(f, "gamma", &t), ME_ENOTFOUND);
    me_st_close(f);
    me_test_rmdir(dir);
    free(dir);
}

/* Parses buf (copied to an 8-aligned buffer) and returns the status. */
static int parse_copy(const uint8_t *buf, size_t len, char *err, size_t errcap) {
    uint64_t *aligned = malloc(len / 8 * 8 + 8);
    memcpy(aligned, buf, len);
    me_st_file_t *f = NULL;
    int rc = me_st_parse(aligned, len, &f, err, errcap);
    if (rc == 0) {
        /* Everything handed out must lie inside the buffer. */
        me_st_tensor_t t;
        if (me_st_get(f, "alpha", &t) == 0) {
            volatile float sink = 0;
            for (uint64_t i = 0; i < t.shape[0] * (t.ndim > 1 ? t.shape[1] : 1); i++) sink += t.data[i];
            (void)sink;
        }
        me_st_close(f);
    }
    free(aligned);
    return rc;
}

static uint8_t *make_file(const char *header, const void *data, size_t dlen, size_t *len) {
    size_t h = strlen(header), pad = (h + 7) & ~(size_t)7;
    uint8_t *buf = calloc(1, 8 + pad + dlen);
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)pad >> (8 * i));
    memcpy(buf + 8, header, h);
    memset(buf + 8 + h, ' ', pad - h);
    memcpy(buf + 8 + pad, data, dlen);
    *len = 8 + pad + dlen;
    return buf;
}

TEST(safetensors_rejects_corrupt_files) {
    float data[4] = { 1, 2, 3, 4 };
    struct { const char *header; const char *needle; } bad[] = {
        { "{\"alpha\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,16]}}", "not F32" },
        { "{\"alpha\":{\"dtype\":\"F32\",\"shape\":[5],\"data_offsets\":[0,16]}}", "does not match shape" },
        { "{\"alpha\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,20]}}", "out of range" },
        { "{\"alpha\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
          "\"beta\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", "overlap" },
        { "{\"alpha\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", "does not match the tensors" },
        { "{\"alpha\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}", "bad shape" },
        { "{\"alpha\":{\"shape\":[4],\"data_offsets\":[0,16]}}", "missing dtype" },
        { "{\"alpha\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},", "not JSON" },
        { "[1,2]", "not an object" },
        { "{\"__metadata__\":{\"a\":1},\"alpha\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", "not a string" },
    };
    char err[256];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t len;
        uint8_t *buf = make_file(bad[i].header, data, sizeof data, &len);
        int rc = parse_copy(buf, len, err, sizeof err);
        if (rc != ME_ECORRUPT || !strstr(err, bad[i].needle)) fprintf(stderr, "    case %zu: rc %d '%s'\n", i, rc, err);
        ASSERT_EQ(rc, ME_ECORRUPT);
        ASSERT_TRUE(strstr(err, bad[i].needle) != NULL);
        free(buf);
    }
    /* Huge or truncated header length. */
    uint8_t tiny[16] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f };
    ASSERT_EQ(parse_copy(tiny, sizeof tiny, err, sizeof err), ME_ECORRUPT);
    ASSERT_EQ(parse_copy(tiny, 5, err, sizeof err), ME_ECORRUPT);
    char *dir = me_test_tmpdir("st");
    char path[600];
    snprintf(path, sizeof path, "%s/missing", dir);
    me_st_file_t *f;
    ASSERT_EQ(me_st_open(path, &f, err, sizeof err), ME_EIO);
    me_test_rmdir(dir);
    free(dir);
}

/* Every truncation and thousands of random byte flips of a valid file are
 * either accepted or rejected cleanly (ASan would catch a stray read). */
TEST(safetensors_survives_truncation_and_bit_flips) {
    char *dir = me_test_tmpdir("st");
    float a[6], b[4];
    const char *path = write_sample(dir, a, b);
    ASSERT_TRUE(path != NULL);
    FILE *fp = fopen(path, "rb");
    uint8_t file[4096];
    size_t len = fread(file, 1, sizeof file, fp);
    fclose(fp);
    char err[256];
    ASSERT_OK(parse_copy(file, len, err, sizeof err));
    for (size_t cut = 0; cut < len; cut++) ASSERT_EQ(parse_copy(file, cut, err, sizeof err), ME_ECORRUPT);
    me_rng_t r = { 9 };
    uint8_t copy[4096];
    for (int trial = 0; trial < 3000; trial++) {
        memcpy(copy, file, len);
        int flips = 1 + (int)(me_rng_next(&r) % 4);
        for (int k = 0; k < flips; k++) copy[me_rng_next(&r) % len] ^= (uint8_t)(1u << (me_rng_next(&r) % 8));
        int rc = parse_copy(copy, len, err, sizeof err);
        ASSERT_TRUE(rc == 0 || rc == ME_ECORRUPT);
    }
    me_test_rmdir(dir);
    free(dir);
}
