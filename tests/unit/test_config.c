#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/error.h"
#include "tests/harness.h"

typedef struct {
    char name[ME_CFG_STR_MAX];
    char mode[ME_CFG_STR_MAX];
    long long n, bytes;
    int flag;
} opts_t;

static const me_cfg_opt_t table[] = {
    { "name", ME_CFG_STRING, offsetof(opts_t, name), "x", 0, 0, NULL, "a name" },
    { "mode", ME_CFG_ENUM, offsetof(opts_t, mode), "fast", 0, 0, "fast|slow", "a mode" },
    { "n", ME_CFG_INT, offsetof(opts_t, n), "3", 1, 10, NULL, "a count" },
    { "bytes", ME_CFG_SIZE, offsetof(opts_t, bytes), "1K", 0, 1LL << 40, NULL, "a size" },
    { "flag", ME_CFG_BOOL, offsetof(opts_t, flag), "false", 0, 1, NULL, "a switch" },
    { NULL, 0, 0, NULL, 0, 0, NULL, NULL },
};

TEST(config_defaults_args_and_file) {
    opts_t o;
    char err[256];
    ASSERT_OK(me_config_defaults(table, &o, err, sizeof err));
    ASSERT_STREQ(o.name, "x");
    ASSERT_EQ(o.n, 3);
    ASSERT_EQ(o.bytes, 1024);
    ASSERT_EQ(o.flag, 0);

    char *dir = me_test_tmpdir("cfg");
    char path[512];
    snprintf(path, sizeof path, "%s/test.conf", dir);
    FILE *f = fopen(path, "w");
    fputs("# comment\nname = fromfile\nn 7\nbytes=2M  # trailing\n", f);
    fclose(f);
    char cfgarg[600];
    snprintf(cfgarg, sizeof cfgarg, "--config=%s", path);
    char *argv[] = { "prog", "--n", "9", cfgarg, "--flag", "--mode=slow", NULL };
    ASSERT_OK(me_config_parse(table, &o, 6, argv, "prog", "s", NULL, 0, NULL, err, sizeof err));
    ASSERT_STREQ(o.name, "fromfile");    /* file */
    ASSERT_EQ(o.n, 9);                   /* command line beats file */
    ASSERT_EQ(o.bytes, 2 << 20);
    ASSERT_EQ(o.flag, 1);
    ASSERT_STREQ(o.mode, "slow");
    char *argv2[] = { "prog", "--no-flag", NULL };
    ASSERT_OK(me_config_parse(table, &o, 2, argv2, "prog", "s", NULL, 0, NULL, err, sizeof err));
    ASSERT_EQ(o.flag, 0);

    f = fopen(path, "w");
    fputs("n 70\n", f);
    fclose(f);
    ASSERT_EQ(me_config_load_file(table, &o, path, err, sizeof err), ME_EINVAL);
    ASSERT_TRUE(strstr(err, ":1:") && strstr(err, "out of range"));
    me_test_rmdir(dir);
    free(dir);
}

TEST(config_rejects_bad_values_clearly) {
    opts_t o;
    char err[256];
    me_config_defaults(table, &o, err, sizeof err);
    struct { const char *arg, *needle; } bad[] = {
        { "--n=0", "out of range" },       { "--n=abc", "not an integer" },
        { "--bytes=12Q", "not a size" },   { "--mode=medium", "not one of" },
        { "--flag=maybe", "not a boolean" }, { "--what=1", "unknown option" },
        { "stray", "unexpected argument" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *argv[] = { "prog", (char *)bad[i].arg, NULL };
        ASSERT_EQ(me_config_parse(table, &o, 2, argv, "prog", "s", NULL, 0, NULL, err, sizeof err), ME_EINVAL);
        ASSERT_TRUE(strstr(err, bad[i].needle) != NULL);
    }
    char *argv[] = { "prog", "--n", NULL };
    ASSERT_EQ(me_config_parse(table, &o, 2, argv, "prog", "s", NULL, 0, NULL, err, sizeof err), ME_EINVAL);
    ASSERT_TRUE(strstr(err, "needs a value") != NULL);
    long long v;
    ASSERT_OK(me_parse_size("1.5G", &v));
    ASSERT_EQ(v, 1610612736LL);
    ASSERT_OK(me_parse_size("64KiB", &v));
    ASSERT_EQ(v, 65536);
}

/* Help lines keep their descriptions in one column even when an option's
 * left part (--log-level debug|info|warn|error) is wider than it. */
TEST(config_help_keeps_descriptions_aligned) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ASSERT_TRUE(f != NULL);
    me_config_help_left(f, "--threads N", 12);
    fputs("x\n", f);
    me_config_help_left(f, "--log-level debug|info", 12);
    fputs("y\n", f);
    fclose(f);
    ASSERT_STREQ(buf, "  --threads N  x\n  --log-level debug|info\n               y\n");
    free(buf);
}
