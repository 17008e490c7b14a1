#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common/error.h"
#include "common/jsonl.h"
#include "tests/harness.h"

/* Plain and gzipped files read the same; blank lines are skipped; a bad
 * line is reported with its number and the reader carries on. */
TEST(jsonl_plain_gzip_bad_lines) {
    char *dir = me_test_tmpdir("jsonl");
    const char *text = "{\"id\":\"a\",\"n\":1}\n\n   \n{\"id\":\"b\"}\nnot json\n[1]\n{\"id\":\"c\"}";
    char plain[600], gz[600], err[300];
    snprintf(plain, sizeof plain, "%s/x.jsonl", dir);
    snprintf(gz, sizeof gz, "%s/x.jsonl.gz", dir);
    FILE *f = fopen(plain, "w");
    fputs(text, f);
    fclose(f);
    gzFile g = gzopen(gz, "wb");
    gzwrite(g, text, (unsigned)strlen(text));
    gzclose(g);
    const char *paths[2] = { plain, gz };
    for (int k = 0; k < 2; k++) {
        me_jsonl_t *r;
        ASSERT_OK(me_jsonl_open(paths[k], &r, err, sizeof err));
        const me_json_t *o;
        long line;
        ASSERT_EQ(me_jsonl_next(r, &o, &line, err, sizeof err), 1);
        ASSERT_STREQ(me_json_str(me_json_get(o, "id")), "a");
        ASSERT_EQ(line, 1);
        ASSERT_EQ(me_jsonl_next(r, &o, &line, err, sizeof err), 1);
        ASSERT_STREQ(me_json_str(me_json_get(o, "id")), "b");
        ASSERT_EQ(line, 4);
        ASSERT_EQ(me_jsonl_next(r, &o, &line, err, sizeof err), ME_EINVAL);
        ASSERT_TRUE(strstr(err, ":5: not JSON") != NULL);
        ASSERT_EQ(me_jsonl_next(r, &o, &line, err, sizeof err), ME_EINVAL);
        ASSERT_TRUE(strstr(err, ":6: expected a JSON object") != NULL);
        ASSERT_EQ(me_jsonl_next(r, &o, &line, err, sizeof err), 1);  /* no trailing newline */
        ASSERT_STREQ(me_json_str(me_json_get(o, "id")), "c");
        ASSERT_EQ(me_jsonl_next(r, &o, &line, err, sizeof err), 0);
        me_jsonl_close(r);
    }
    /* A line longer than the initial buffer. */
    f = fopen(plain, "w");
    fputs("{\"t\":\"", f);
    for (int i = 0; i < 200000; i++) fputc('x', f);
    fputs("\"}\n", f);
    fclose(f);
    me_jsonl_t *r;
    ASSERT_OK(me_jsonl_open(plain, &r, err, sizeof err));
    const me_json_t *o;
    long line;
    ASSERT_EQ(me_jsonl_next(r, &o, &line, err, sizeof err), 1);
    ASSERT_EQ(me_json_get(o, "t")->len, 200000);
    me_jsonl_close(r);
    snprintf(plain, sizeof plain, "%s/missing.jsonl", dir);
    ASSERT_EQ(me_jsonl_open(plain, &r, err, sizeof err), ME_EIO);
    me_test_rmdir(dir);
    free(dir);
}
