/* common/json: parse → DOM → write round trips, every error class with its
 * offset, unicode escapes and surrogate pairs, nesting at and past the
 * limit, numbers (exponents, -0, integers too big for a double keep their
 * text), and a crude mutation sweep that must never crash. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/json.h"
#include "tests/harness.h"

#define ASSERT_HAS(s, sub)                                                     \
    do { if (!strstr((s), (sub))) me_test_fail(__FILE__, __LINE__, "\"%s\" lacks \"%s\"", (s), (sub)); } while (0)

static me_json_doc_t *parse_ok(const char *s) {
    me_json_doc_t *d = NULL;
    me_json_error_t e;
    int rc = me_json_parse(s, strlen(s), &d, &e);
    if (rc != 0) me_test_fail(__FILE__, __LINE__, "parse of %s failed: %s", s, e.msg);
    return d;
}

static char *reserialise(const char *s) {
    me_json_doc_t *d = parse_ok(s);
    me_json_writer_t w;
    me_json_writer_init_buf(&w);
    me_json_put_value(&w, NULL, me_json_root(d));
    me_json_free(d);
    return me_json_writer_take(&w, NULL);
}

TEST(json_roundtrip_compact) {
    const char *cases[] = {
        "{}", "[]", "null", "true", "false", "0", "-0", "1.5e-7", "\"\"",
        "{\"a\":1,\"b\":[true,false,null],\"c\":{\"d\":\"e\\\"\\\\\\n\\r\\t\"}}",
        "[[[[]]],{},[{}],\"x\\u0001y\"]",
        "{\"k\":12345678901234567890123,\"m\":-1E+300}",
        "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = reserialise(cases[i]);
        ASSERT_STREQ(out, cases[i]);
        free(out);
    }
    /* Whitespace is dropped and escapes normalised, then it is a fixed point. */
    char *a = reserialise(" { \"a\" : [ 1 , 2 ] ,\n\t\"\\/\\b\\f\" : \"\\u00e9\" } ");
    ASSERT_STREQ(a, "{\"a\":[1,2],\"/\\u0008\\u000c\":\"\xc3\xa9\"}");
    char *b = reserialise(a);
    ASSERT_STREQ(b, a);
    free(a);
    free(b);
}

TEST(json_dom_lookups) {
    me_json_doc_t *d = parse_ok("{\"id\":\"0ad\",\"n\":42,\"f\":2.5,\"ok\":true,\"list\":[10,\"x\",null],"
                                "\"dup\":1,\"dup\":2,\"o\":{\"deep\":[{\"k\":\"v\"}]}}");
    const me_json_t *r = me_json_root(d);
    ASSERT_EQ(r->type, ME_JSON_OBJECT);
    ASSERT_EQ(me_json_len(r), 8);
    ASSERT_STREQ(me_json_str(me_json_get(r, "id")), "0ad");
    int64_t n;
    double f;
    int b;
    ASSERT_OK(me_json_int64(me_json_get(r, "n"), &n));
    ASSERT_EQ(n, 42);
    ASSERT_OK(me_json_num(me_json_get(r, "f"), &f));
    ASSERT_NEAR(f, 2.5, 0);
    ASSERT_EQ(me_json_int64(me_json_get(r, "f"), &n), ME_EINVAL);
    ASSERT_OK(me_json_bool(me_json_get(r, "ok"), &b));
    ASSERT_EQ(b, 1);
    ASSERT_EQ(me_json_bool(me_json_get(r, "n"), &b), ME_EINVAL);
    ASSERT_EQ(me_json_bool(me_json_get(r, "missing"), &b), ME_ENOTFOUND);
    const me_json_t *l = me_json_get(r, "list");
    ASSERT_EQ(me_json_len(l), 3);
    ASSERT_OK(me_json_int64(me_json_at(l, 0), &n));
    ASSERT_EQ(n, 10);
    ASSERT_STREQ(me_json_str(me_json_at(l, 1)), "x");
    ASSERT_EQ(me_json_at(l, 2)->type, ME_JSON_NULL);
    ASSERT_TRUE(me_json_at(l, 3) == NULL);
    ASSERT_TRUE(me_json_at(r, 0) == NULL);          /* not an array */
    ASSERT_TRUE(me_json_get(l, "id") == NULL);      /* not an object */
    ASSERT_TRUE(me_json_str(me_json_get(r, "n")) == NULL);
    ASSERT_OK(me_json_int64(me_json_get(r, "dup"), &n));
    ASSERT_EQ(n, 1);                                /* the first of duplicate keys */
    ASSERT_STREQ(me_json_str(me_json_get(me_json_at(me_json_get(me_json_get(r, "o"), "deep"), 0), "k")), "v");
    ASSERT_TRUE(me_json_str(me_json_get(me_json_at(me_json_get(r, "nope"), 5), "k")) == NULL);
    me_json_free(d);
    me_json_free(NULL);
}

TEST(json_numbers) {
    me_json_doc_t *d = parse_ok("[0,-0,1e3,1E+3,2.5e-3,-12.75,9007199254740993,-9223372036854775808,"
                                "9223372036854775808,123456789012345678901234567890,1e400,2.0,0.1]");
    const me_json_t *r = me_json_root(d);
    double v;
    int64_t i;
    ASSERT_OK(me_json_int64(me_json_at(r, 0), &i));
    ASSERT_EQ(i, 0);
    ASSERT_OK(me_json_num(me_json_at(r, 1), &v));
    ASSERT_TRUE(v == 0 && signbit(v));                 /* -0 keeps its sign */
    ASSERT_STREQ(me_json_at(r, 1)->u.str, "-0");
    ASSERT_OK(me_json_int64(me_json_at(r, 2), &i));
    ASSERT_EQ(i, 1000);
    ASSERT_OK(me_json_num(me_json_at(r, 3), &v));
    ASSERT_NEAR(v, 1000, 0);
    ASSERT_OK(me_json_num(me_json_at(r, 4), &v));
    ASSERT_NEAR(v, 0.0025, 1e-18);
    ASSERT_OK(me_json_num(me_json_at(r, 5), &v));
    ASSERT_NEAR(v, -12.75, 0);
    /* 2^53 + 1 is not a double, but the integer getter reads the text. */
    ASSERT_OK(me_json_int64(me_json_at(r, 6), &i));
    ASSERT_TRUE(i == 9007199254740993LL);
    ASSERT_OK(me_json_int64(me_json_at(r, 7), &i));
    ASSERT_TRUE(i == INT64_MIN);
    ASSERT_EQ(me_json_int64(me_json_at(r, 8), &i), ME_ERANGE);
    ASSERT_EQ(me_json_int64(me_json_at(r, 9), &i), ME_ERANGE);
    ASSERT_STREQ(me_json_at(r, 9)->u.str, "123456789012345678901234567890");
    ASSERT_EQ(me_json_at(r, 9)->len, 30);
    ASSERT_EQ(me_json_num(me_json_at(r, 10), &v), ME_ERANGE);
    ASSERT_STREQ(me_json_at(r, 10)->u.str, "1e400");
    ASSERT_OK(me_json_int64(me_json_at(r, 11), &i));
    ASSERT_EQ(i, 2);
    me_json_free(d);

    /* The writer's numbers read back exactly. */
    me_json_writer_t w;
    me_json_writer_init_buf(&w);
    me_json_arr_begin(&w, NULL);
    me_json_put_num(&w, NULL, 0.1);
    me_json_put_num(&w, NULL, 1.0 / 3);
    me_json_put_num(&w, NULL, -0.0);
    me_json_put_num(&w, NULL, NAN);
    me_json_put_num(&w, NULL, INFINITY);
    me_json_put_num_prec(&w, NULL, (float)0.1, 9);
    me_json_put_int(&w, NULL, -5);
    me_json_put_u64(&w, NULL, UINT64_MAX);
    me_json_arr_end(&w);
    char *s = me_json_writer_take(&w, NULL);
    ASSERT_STREQ(s, "[0.1,0.33333333333333331,-0,null,null,0.100000001,-5,18446744073709551615]");
    d = parse_ok(s);
    ASSERT_OK(me_json_num(me_json_at(me_json_root(d), 1), &v));
    ASSERT_TRUE(v == 1.0 / 3);
    me_json_free(d);
    free(s);
}

TEST(json_unicode_and_surrogates) {
    me_json_doc_t *d = parse_ok("[\"\\u0041\\u00e9\\u20ac\\ud83d\\ude00\",\"a\\u0000b\",\"\\uD834\\uDD1E\"]");
    const me_json_t *r = me_json_root(d);
    ASSERT_STREQ(me_json_str(me_json_at(r, 0)), "A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    ASSERT_EQ(me_json_at(r, 0)->len, 10);
    ASSERT_EQ(me_json_at(r, 1)->len, 3);           /* embedded NUL kept, length says so */
    ASSERT_TRUE(memcmp(me_json_at(r, 1)->u.str, "a\0b", 3) == 0);
    ASSERT_STREQ(me_json_str(me_json_at(r, 2)), "\xf0\x9d\x84\x9e");   /* U+1D11E */
    me_json_free(d);

    /* The writer escapes control bytes and replaces invalid UTF-8. */
    me_json_writer_t w;
    me_json_writer_init_buf(&w);
    me_json_put_strn(&w, NULL, "a\0\x1f\"\\\xff\xc3\xa9\xed\xa0\x80", 11);
    size_t n;
    char *s = me_json_writer_take(&w, &n);
    ASSERT_STREQ(s, "\"a\\u0000\\u001f\\\"\\\\\\ufffd\xc3\xa9\\ufffd\\ufffd\\ufffd\"");
    ASSERT_EQ(n, strlen(s));
    ASSERT_TRUE(me_json_valid(s, n));
    free(s);
}

/* Expects parsing to fail with kind at offset, message containing sub. */
static void expect_err(const char *s, size_t len, me_json_errkind_t kind, size_t offset, int code, const char *sub) {
    me_json_doc_t *d = (me_json_doc_t *)1;
    me_json_error_t e;
    int rc = me_json_parse(s, len, &d, &e);
    if (rc != code || e.kind != kind || e.offset != offset || d != NULL || !strstr(e.msg, sub))
        me_test_fail(__FILE__, __LINE__, "input %.40s: rc %d kind %d offset %zu msg \"%s\" (want rc %d kind %d offset %zu \"%s\")",
                     s, rc, (int)e.kind, e.offset, e.msg, code, (int)kind, offset, sub);
    ASSERT_TRUE(!me_json_valid(s, len));
}
#define EXPECT_ERR(s, kind, off, sub) expect_err((s), sizeof(s) - 1, (kind), (off), ME_EINVAL, (sub))

TEST(json_error_classes) {
    EXPECT_ERR("", ME_JSON_ERR_EOF, 0, "end of input");
    EXPECT_ERR("   ", ME_JSON_ERR_EOF, 3, "end of input");
    EXPECT_ERR("[1,2", ME_JSON_ERR_EOF, 4, "unterminated array");
    EXPECT_ERR("{\"a\":1", ME_JSON_ERR_EOF, 6, "unterminated object");
    EXPECT_ERR("\"abc", ME_JSON_ERR_EOF, 4, "unterminated string");
    EXPECT_ERR("tru", ME_JSON_ERR_EOF, 3, "inside 'true'");
    EXPECT_ERR("[1,]", ME_JSON_ERR_TRAILING_COMMA, 2, "trailing comma before ']'");
    EXPECT_ERR("{\"a\":1 , }", ME_JSON_ERR_TRAILING_COMMA, 7, "trailing comma before '}'");
    EXPECT_ERR("[1 2]", ME_JSON_ERR_SYNTAX, 3, "expected ',' or ']'");
    EXPECT_ERR("{1:2}", ME_JSON_ERR_SYNTAX, 1, "string key");
    EXPECT_ERR("{\"a\" 1}", ME_JSON_ERR_SYNTAX, 5, "expected ':'");
    EXPECT_ERR("[,1]", ME_JSON_ERR_SYNTAX, 1, "expected a value");
    EXPECT_ERR("nul!", ME_JSON_ERR_SYNTAX, 0, "expected 'null'");
    EXPECT_ERR("'a'", ME_JSON_ERR_SYNTAX, 0, "'''");
    EXPECT_ERR("\xef\xbb\xbf{}", ME_JSON_ERR_SYNTAX, 0, "byte 0xef");
    EXPECT_ERR("+1", ME_JSON_ERR_SYNTAX, 0, "expected a value");
    EXPECT_ERR("01", ME_JSON_ERR_NUMBER, 1, "leading zero");
    EXPECT_ERR("-", ME_JSON_ERR_NUMBER, 1, "expected a digit");
    EXPECT_ERR("-a", ME_JSON_ERR_NUMBER, 1, "expected a digit");
    EXPECT_ERR("1.", ME_JSON_ERR_NUMBER, 2, "after '.'");
    EXPECT_ERR("1.e5", ME_JSON_ERR_NUMBER, 2, "after '.'");
    EXPECT_ERR("1e", ME_JSON_ERR_NUMBER, 2, "exponent");
    EXPECT_ERR("1e+", ME_JSON_ERR_NUMBER, 3, "exponent");
    EXPECT_ERR("\"a\tb\"", ME_JSON_ERR_CONTROL, 2, "control character 0x09");
    EXPECT_ERR("\"a\nb\"", ME_JSON_ERR_CONTROL, 2, "control character 0x0a");
    EXPECT_ERR("\"\\x\"", ME_JSON_ERR_ESCAPE, 1, "bad escape");
    EXPECT_ERR("\"\\u12G4\"", ME_JSON_ERR_ESCAPE, 1, "four hex digits");
    EXPECT_ERR("\"\\u12\"", ME_JSON_ERR_ESCAPE, 1, "four hex digits");
    EXPECT_ERR("\"\\", ME_JSON_ERR_EOF, 2, "unterminated escape");
    EXPECT_ERR("\"\\ud800\"", ME_JSON_ERR_SURROGATE, 1, "high surrogate");
    EXPECT_ERR("\"\\ud800\\u0041\"", ME_JSON_ERR_SURROGATE, 1, "high surrogate");
    EXPECT_ERR("\"\\ud800\\ud800\"", ME_JSON_ERR_SURROGATE, 1, "high surrogate");
    EXPECT_ERR("\"x\\udc00\"", ME_JSON_ERR_SURROGATE, 2, "lone low surrogate");
    EXPECT_ERR("\"\xff\"", ME_JSON_ERR_UTF8, 1, "invalid UTF-8");
    EXPECT_ERR("\"\xc0\xaf\"", ME_JSON_ERR_UTF8, 1, "invalid UTF-8");          /* overlong '/' */
    EXPECT_ERR("\"\xed\xa0\x80\"", ME_JSON_ERR_UTF8, 1, "invalid UTF-8");      /* encoded surrogate */
    EXPECT_ERR("\"\xf4\x90\x80\x80\"", ME_JSON_ERR_UTF8, 1, "invalid UTF-8");  /* > U+10FFFF */
    EXPECT_ERR("\"\xe2\x82\"", ME_JSON_ERR_UTF8, 1, "invalid UTF-8");          /* truncated */
    EXPECT_ERR("{} {}", ME_JSON_ERR_TRAILING, 3, "after the value");
    EXPECT_ERR("1 x", ME_JSON_ERR_TRAILING, 2, "after the value");
    EXPECT_ERR("[1]]", ME_JSON_ERR_TRAILING, 3, "']'");
    /* A NUL is just a bad byte, not the end of the input. */
    expect_err("[1]\0", 4, ME_JSON_ERR_TRAILING, 3, ME_EINVAL, "byte 0x00");
    expect_err("\"a\0\"", 4, ME_JSON_ERR_CONTROL, 2, ME_EINVAL, "0x00");
    /* NULL output error struct is fine. */
    me_json_doc_t *d;
    ASSERT_EQ(me_json_parse("[", 1, &d, NULL), ME_EINVAL);
    ASSERT_TRUE(d == NULL);
}

TEST(json_deep_nesting) {
    size_t n = ME_JSON_MAX_DEPTH;
    char *s = malloc(2 * n + 3);
    for (size_t i = 0; i < n; i++) { s[i] = '['; s[2 * n - 1 - i] = ']'; }
    me_json_doc_t *d = NULL;
    me_json_error_t e;
    ASSERT_OK(me_json_parse(s, 2 * n, &d, &e));
    const me_json_t *v = me_json_root(d);
    size_t depth = 0;
    while (v && v->type == ME_JSON_ARRAY) { depth++; v = me_json_at(v, 0); }
    ASSERT_EQ(depth, n);
    me_json_free(d);
    /* One more level is refused, at the offending bracket. */
    memmove(s + 1, s, 2 * n);
    s[0] = '[';
    s[2 * n + 1] = ']';
    expect_err(s, 2 * n + 2, ME_JSON_ERR_DEPTH, n, ME_ETOOBIG, "deeper than 256");
    free(s);
    /* A million open brackets: no stack overflow, a depth error. */
    size_t big = 1000000;
    s = malloc(big);
    for (size_t i = 0; i < big; i++) s[i] = i % 2 ? '[' : ' ';
    expect_err(s, big, ME_JSON_ERR_DEPTH, 2 * ME_JSON_MAX_DEPTH + 1, ME_ETOOBIG, "deeper");
    memset(s, '{', big);
    expect_err(s, big, ME_JSON_ERR_SYNTAX, 1, ME_EINVAL, "string key");
    free(s);
}

TEST(json_large_document) {
    /* Enough values to need several arena blocks and a grown child stack. */
    me_json_writer_t w;
    me_json_writer_init_buf(&w);
    me_json_obj_begin(&w, NULL);
    me_json_arr_begin(&w, "rows");
    for (int i = 0; i < 20000; i++) {
        me_json_obj_begin(&w, NULL);
        me_json_put_int(&w, "i", i);
        me_json_put_str(&w, "s", "some text here");
        me_json_obj_end(&w);
    }
    me_json_arr_end(&w);
    me_json_obj_end(&w);
    ASSERT_OK(me_json_writer_error(&w));
    size_t len;
    char *s = me_json_writer_take(&w, &len);
    me_json_doc_t *d = NULL;
    ASSERT_OK(me_json_parse(s, len, &d, NULL));
    const me_json_t *rows = me_json_get(me_json_root(d), "rows");
    ASSERT_EQ(me_json_len(rows), 20000);
    int64_t v;
    ASSERT_OK(me_json_int64(me_json_get(me_json_at(rows, 19999), "i"), &v));
    ASSERT_EQ(v, 19999);
    me_json_free(d);
    free(s);
}

TEST(json_writer_file_and_keys) {
    char *dir = me_test_tmpdir("json");
    char path[600];
    snprintf(path, sizeof path, "%s/out.json", dir);
    FILE *f = fopen(path, "w");
    ASSERT_TRUE(f != NULL);
    me_json_writer_t w;
    me_json_writer_init_file(&w, f);
    me_json_obj_begin(&w, NULL);
    me_json_put_str(&w, "k\"ey\n", "v");
    me_json_put_str(&w, "nul", NULL);
    me_json_arr_begin(&w, "a");
    me_json_obj_begin(&w, NULL);
    me_json_obj_end(&w);
    me_json_arr_begin(&w, NULL);
    me_json_arr_end(&w);
    me_json_put_bool(&w, NULL, 0);
    me_json_arr_end(&w);
    me_json_put_raw(&w, "raw", "{\"x\":[1]}", 9);
    me_json_obj_end(&w);
    me_json_write_bytes(&w, "\n", 1);
    ASSERT_OK(me_json_writer_error(&w));
    fclose(f);
    char *s = me_test_slurp(path);
    ASSERT_STREQ(s, "{\"k\\\"ey\\n\":\"v\",\"nul\":null,\"a\":[{},[],false],\"raw\":{\"x\":[1]}}\n");
    ASSERT_TRUE(me_json_valid(s, strlen(s)));
    free(s);
    me_test_rmdir(dir);
    free(dir);
    /* An empty buffer writer hands back "". */
    me_json_writer_init_buf(&w);
    s = me_json_writer_take(&w, NULL);
    ASSERT_STREQ(s, "");
    free(s);
}

/* Not a fuzzer, but cheap insurance until one exists: every single-byte
 * mutation and every truncation of a rich document parses or fails cleanly
 * (ASan watches), and parse and validate always agree. */
TEST(json_mutations_never_crash) {
    const char *base = "{\"a\":[1,-2.5e+3,true,false,null,\"x\\u00e9\\ud83d\\ude00\\n\"],\"b\":{\"c\":\"\xc3\xa9\"}}";
    size_t n = strlen(base);
    static const unsigned char bytes[] = { 0, '"', '\\', '[', ']', '{', '}', ',', ':', 'u', 'e', '-', '0', '.',
                                           ' ', 0x80, 0xc3, 0xed, 0xff, 'n', 't' };
    char *buf = malloc(n + 1);
    for (size_t cut = 0; cut <= n; cut++) {
        me_json_doc_t *d = NULL;
        int rc = me_json_parse(base, cut, &d, NULL);
        ASSERT_EQ(rc == 0, me_json_valid(base, cut));
        me_json_free(d);
    }
    for (size_t i = 0; i < n; i++)
        for (size_t b = 0; b < sizeof bytes; b++) {
            memcpy(buf, base, n);
            buf[i] = (char)bytes[b];
            me_json_doc_t *d = NULL;
            me_json_error_t e;
            int rc = me_json_parse(buf, n, &d, &e);
            ASSERT_EQ(rc == 0, me_json_valid(buf, n));
            if (rc != 0) ASSERT_TRUE(e.offset <= n && e.msg[0]);
            me_json_free(d);
        }
    free(buf);
}
