/* .npy reader/writer: round trips through files for every version, dtype
 * and rank we write, headers in the styles other numpy versions write, and
 * each malformed file rejected with a message naming the problem. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/dtype.h"
#include "common/error.h"
#include "common/npy.h"
#include "tests/harness.h"

#define ASSERT_HAS(s, sub)                                                     \
    do { if (!strstr((s), (sub))) me_test_fail(__FILE__, __LINE__, "\"%s\" lacks \"%s\"", (s), (sub)); } while (0)

/* A .npy image: magic, version, length field, dict padded with spaces and a
 * newline to `align`, then data_len bytes of data. Caller frees. */
static unsigned char *make_npy(int major, const char *dict, size_t align, const void *data, size_t data_len,
                               size_t *len) {
    size_t prefix = major == 1 ? 10 : 12;
    size_t dl = strlen(dict);
    size_t total = (prefix + dl + 1 + align - 1) / align * align;
    size_t hlen = total - prefix;
    unsigned char *b = malloc(total + data_len + 1);
    memcpy(b, "\x93NUMPY", 6);
    b[6] = (unsigned char)major;
    b[7] = 0;
    for (size_t i = 0; i < prefix - 8; i++) b[8 + i] = (unsigned char)(hlen >> (8 * i));
    memcpy(b + prefix, dict, dl);
    memset(b + prefix + dl, ' ', hlen - dl - 1);
    b[total - 1] = '\n';
    if (data_len) memcpy(b + total, data, data_len);
    *len = total + data_len;
    return b;
}

static void write_file(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    ASSERT_TRUE(f != NULL);
    ASSERT_EQ(fwrite(b, 1, n, f), n);
    fclose(f);
}

/* Parses an in-memory image; returns the code, message in err. */
static int parse_img(const char *dict, int major, size_t data_len, char *err, size_t cap) {
    size_t len;
    unsigned char *zeros = calloc(data_len + 1, 1);
    unsigned char *b = make_npy(major, dict, 64, zeros, data_len, &len);
    me_npy_t a;
    int rc = me_npy_parse(&a, b, len, err, cap);
    free(b);
    free(zeros);
    return rc;
}

TEST(npy_roundtrip_versions_dtypes_ranks) {
    char *dir = me_test_tmpdir("npy");
    char path[600], err[512];
    snprintf(path, sizeof path, "%s/a.npy", dir);
    /* f32 [3, 4, 5] at each version */
    float f[60];
    for (int i = 0; i < 60; i++) f[i] = (float)i * 0.25f - 3.0f;
    for (int v = 1; v <= 3; v++) {
        uint64_t shape[3] = { 3, 4, 5 };
        ASSERT_OK(me_npy_write(path, ME_DTYPE_F32, shape, 3, f, v, err, sizeof err));
        me_npy_t a;
        ASSERT_OK(me_npy_open(&a, path, err, sizeof err));
        ASSERT_EQ(a.version, v);
        ASSERT_EQ(a.dtype, ME_DTYPE_F32);
        ASSERT_EQ(a.ndim, 3);
        ASSERT_EQ(a.shape[0], 3);
        ASSERT_EQ(a.shape[1], 4);
        ASSERT_EQ(a.shape[2], 5);
        ASSERT_EQ(a.count, 60);
        ASSERT_EQ(a.data_bytes, 240);
        ASSERT_EQ(a.data_offset % 64, 0);
        ASSERT_TRUE(memcmp(a.data, f, sizeof f) == 0);
        float back[60];
        me_npy_read_f32(&a, 0, 60, back);
        ASSERT_TRUE(memcmp(back, f, sizeof f) == 0);
        me_npy_close(&a);
    }
    /* f16 [7, 2]; read back widened */
    uint16_t h[14];
    for (int i = 0; i < 14; i++) h[i] = me_f32_to_f16((float)i - 6.5f);
    uint64_t s2[2] = { 7, 2 };
    ASSERT_OK(me_npy_write(path, ME_DTYPE_F16, s2, 2, h, 2, err, sizeof err));
    me_npy_t a;
    ASSERT_OK(me_npy_open(&a, path, err, sizeof err));
    ASSERT_EQ(a.dtype, ME_DTYPE_F16);
    ASSERT_EQ(a.version, 2);
    ASSERT_EQ(a.data_bytes, 28);
    float w[4];
    me_npy_read_f32(&a, 10, 4, w);
    for (int i = 0; i < 4; i++) ASSERT_NEAR(w[i], (float)(10 + i) - 6.5f, 0);
    char shp[64];
    ASSERT_STREQ(me_npy_shape_str(&a, shp, sizeof shp), "(7, 2)");
    me_npy_close(&a);
    /* rank 1, rank 0 and an empty dimension */
    uint64_t s1[1] = { 5 };
    ASSERT_OK(me_npy_write(path, ME_DTYPE_F32, s1, 1, f, 0, err, sizeof err));
    ASSERT_OK(me_npy_open(&a, path, err, sizeof err));
    ASSERT_EQ(a.version, 1);
    ASSERT_EQ(a.ndim, 1);
    ASSERT_STREQ(me_npy_shape_str(&a, shp, sizeof shp), "(5,)");
    me_npy_close(&a);
    ASSERT_OK(me_npy_write(path, ME_DTYPE_F32, NULL, 0, f, 1, err, sizeof err));
    ASSERT_OK(me_npy_open(&a, path, err, sizeof err));
    ASSERT_EQ(a.ndim, 0);
    ASSERT_EQ(a.count, 1);
    ASSERT_NEAR(*(const float *)a.data, f[0], 0);
    me_npy_close(&a);
    uint64_t s0[3] = { 0, 8, 16 };
    ASSERT_OK(me_npy_write(path, ME_DTYPE_F16, s0, 3, NULL, 1, err, sizeof err));
    ASSERT_OK(me_npy_open(&a, path, err, sizeof err));
    ASSERT_EQ(a.count, 0);
    ASSERT_EQ(a.data_bytes, 0);
    me_npy_close(&a);
    me_npy_close(NULL);
    me_test_rmdir(dir);
    free(dir);
}

TEST(npy_header_matches_numpy) {
    /* np.save of np.zeros((2, 3), np.float32) with numpy >= 1.x: 128-byte header. */
    char buf[256];
    uint64_t shape[2] = { 2, 3 };
    size_t n = me_npy_format_header(buf, sizeof buf, ME_DTYPE_F32, shape, 2, 0);
    ASSERT_EQ(n, 128);
    const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    ASSERT_TRUE(memcmp(buf, "\x93NUMPY\x01\x00", 8) == 0);
    ASSERT_EQ((unsigned char)buf[8] | (unsigned char)buf[9] << 8, 118);
    ASSERT_TRUE(memcmp(buf + 10, dict, strlen(dict)) == 0);
    ASSERT_EQ(buf[127], '\n');
    ASSERT_EQ(buf[126], ' ');
    ASSERT_EQ(me_npy_format_header(buf, 10, ME_DTYPE_F32, shape, 2, 0), 0);  /* too small */
    ASSERT_EQ(me_npy_format_header(buf, sizeof buf, ME_DTYPE_INT8, shape, 2, 0), 0);
    ASSERT_EQ(me_npy_format_header(buf, sizeof buf, ME_DTYPE_F32, shape, 2, 4), 0);
}

TEST(npy_reads_other_header_styles) {
    char err[512];
    float data[6] = { 1, 2, 3, 4, 5, 6 };
    /* old numpy: 16-byte alignment, Python 2 longs; keys reordered, double quotes, no trailing comma;
     * no alignment at all (data at an odd offset) */
    const char *dicts[] = {
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 3L), }",
        "{\"shape\": (2, 3), \"fortran_order\": False, \"descr\": \"<f4\"}",
        "{'fortran_order':False,'shape':(2,3,),'descr':'<f4'}",
    };
    for (size_t i = 0; i < 3; i++) {
        size_t len;
        unsigned char *b = make_npy(1, dicts[i], i == 2 ? 1 : 16, data, sizeof data, &len);
        me_npy_t a;
        int rc = me_npy_parse(&a, b, len, err, sizeof err);
        if (rc) fprintf(stderr, "    %s: %s\n", dicts[i], err);
        ASSERT_OK(rc);
        ASSERT_EQ(a.ndim, 2);
        ASSERT_EQ(a.shape[1], 3);
        float v;
        me_npy_read_f32(&a, 5, 1, &v);  /* data may be unaligned here */
        ASSERT_NEAR(v, 6, 0);
        free(b);
    }
}

TEST(npy_rejects_bad_dtype_order_shape) {
    /* Each header dict (format version, data bytes after it): the code and
     * what the message must name (`also`: a second thing, when not NULL). */
    static const struct {
        const char *dict;
        int major;
        size_t data_len;
        int code;
        const char *says, *also;
    } cases[] = {
        { "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", 1, 16,
          ME_EINVAL, "unsupported dtype '<f8'", NULL },
        { "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", 1, 8,
          ME_EINVAL, "big-endian", NULL },
        { "{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }", 1, 2,
          ME_EINVAL, "'|u1'", NULL },
        { "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", 1, 8,
          ME_EINVAL, "structured", NULL },
        { "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", 1, 16,
          ME_EINVAL, "fortran_order is True", NULL },
        { "{'descr': '<f4', 'shape': (2,), }", 1, 8,
          ME_EINVAL, "'fortran_order'", NULL },
        { "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", 1, 8,
          ME_EINVAL, "shape", NULL },
        { "{'descr': '<f4', 'fortran_order': False, 'shape': 2, }", 1, 8,
          ME_EINVAL, "'shape' is not a tuple", NULL },
        { "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", 1, 8,
          ME_EINVAL, "overflows", NULL },
        { "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 16), }", 1, 8,
          ME_EINVAL, "too large", NULL },
        { "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", 1, 8,
          ME_EINVAL, "unexpected key 'x'", NULL },
        { "'descr': '<f4'", 1, 8,
          ME_EINVAL, "'{'", NULL },
        { "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} junk", 1, 8,
          ME_EINVAL, "after the closing", NULL },
        /* shape vs length: one element too many and one too few */
        { "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 1, 28,
          ME_ECORRUPT, "does not match the header", "(2, 3)" },
        { "{'descr': '<f2', 'fortran_order': False, 'shape': (2, 3), }", 2, 10,
          ME_ECORRUPT, "truncated", "needs 12 data bytes, but only 10" },
    };
    char err[512];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = parse_img(cases[i].dict, cases[i].major, cases[i].data_len, err, sizeof err);
        if (rc != cases[i].code || !strstr(err, cases[i].says) || (cases[i].also && !strstr(err, cases[i].also)))
            me_test_fail(__FILE__, __LINE__, "%s: rc %d \"%s\" (want %d naming \"%s\"%s%s)", cases[i].dict, rc,
                         err, cases[i].code, cases[i].says, cases[i].also ? " and " : "",
                         cases[i].also ? cases[i].also : "");
    }
}

TEST(npy_rejects_bad_magic_version_and_lengths) {
    char err[512];
    me_npy_t a;
    size_t len;
    float data[2] = { 1, 2 };
    unsigned char *b = make_npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 64, data, 8, &len);
    /* bad magic */
    b[1] = 'X';
    ASSERT_EQ(me_npy_parse(&a, b, len, err, sizeof err), ME_EINVAL);
    ASSERT_HAS(err, "bad magic");
    ASSERT_EQ(me_npy_parse(&a, "PK\x03\x04", 4, err, sizeof err), ME_EINVAL);  /* an .npz is a zip */
    ASSERT_HAS(err, "bad magic");
    b[1] = 'N';
    /* unsupported versions */
    b[6] = 4;
    ASSERT_EQ(me_npy_parse(&a, b, len, err, sizeof err), ME_EINVAL);
    ASSERT_HAS(err, "version 4.0");
    b[6] = 1;
    b[7] = 1;
    ASSERT_EQ(me_npy_parse(&a, b, len, err, sizeof err), ME_EINVAL);
    ASSERT_HAS(err, "version 1.1");
    b[7] = 0;
    ASSERT_OK(me_npy_parse(&a, b, len, err, sizeof err));
    /* truncated: inside the prefix, inside the header, inside the data */
    ASSERT_EQ(me_npy_parse(&a, b, 7, err, sizeof err), ME_ECORRUPT);
    ASSERT_HAS(err, "truncated");
    ASSERT_EQ(me_npy_parse(&a, b, 40, err, sizeof err), ME_ECORRUPT);
    ASSERT_HAS(err, "the header says it is 118 bytes");
    ASSERT_EQ(me_npy_parse(&a, b, len - 1, err, sizeof err), ME_ECORRUPT);
    ASSERT_HAS(err, "truncated");
    /* header length field beyond the file, and beyond any sane header */
    b[8] = 0xff;
    b[9] = 0xff;
    ASSERT_EQ(me_npy_parse(&a, b, len, err, sizeof err), ME_ECORRUPT);
    ASSERT_HAS(err, "header says it is 65535 bytes");
    free(b);
    b = make_npy(2, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 64, data, 8, &len);
    b[8] = b[9] = b[10] = b[11] = 0xff;
    ASSERT_EQ(me_npy_parse(&a, b, len, err, sizeof err), ME_EINVAL);
    ASSERT_HAS(err, "too long");
    free(b);
}

TEST(npy_open_errors_name_the_file) {
    char *dir = me_test_tmpdir("npy");
    char path[600], err[1024];
    me_npy_t a;
    snprintf(path, sizeof path, "%s/missing.npy", dir);
    ASSERT_EQ(me_npy_open(&a, path, err, sizeof err), ME_EIO);
    ASSERT_HAS(err, "missing.npy");
    snprintf(path, sizeof path, "%s/empty.npy", dir);
    write_file(path, "", 0);
    ASSERT_EQ(me_npy_open(&a, path, err, sizeof err), ME_ECORRUPT);
    ASSERT_HAS(err, "empty");
    ASSERT_EQ(me_npy_open(&a, dir, err, sizeof err), ME_EIO);
    ASSERT_HAS(err, "not a regular file");
    /* a truncated file written by our own writer */
    snprintf(path, sizeof path, "%s/t.npy", dir);
    float f[32] = { 0 };
    uint64_t shape[2] = { 4, 8 };
    ASSERT_OK(me_npy_write(path, ME_DTYPE_F32, shape, 2, f, 1, err, sizeof err));
    ASSERT_OK(truncate(path, 64 + 100));
    ASSERT_EQ(me_npy_open(&a, path, err, sizeof err), ME_ECORRUPT);
    ASSERT_HAS(err, "t.npy");
    ASSERT_HAS(err, "truncated");
    ASSERT_HAS(err, "(4, 8)");
    ASSERT_TRUE(a.data == NULL);
    me_npy_close(&a);
    snprintf(path, sizeof path, "%s/no/such/dir/x.npy", dir);
    ASSERT_EQ(me_npy_write(path, ME_DTYPE_F32, shape, 2, f, 1, err, sizeof err), ME_EIO);
    me_test_rmdir(dir);
    free(dir);
}
