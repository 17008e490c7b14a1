/* The `metaembed` CLI as a subprocess against a real shard: collections,
 * ingest of .npy files (f32 and f16) checked through libmetaembed, search,
 * get, delete, and bad input that must fail clearly and change nothing. */
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/dtype.h"
#include "common/json.h"
#include "common/npy.h"
#include "common/wire.h"
#include "tests/cluster.h"
#include "tests/harness.h"

#define NDOCS 300
#define R 8
#define D 16

typedef struct {
    int code;       /* exit status, or 128 + signal */
    char *out, *err;
} run_t;

static char g_tmp[512];  /* the current test's scratch dir */

static char *slurp(const char *path) {
    char *s = me_test_slurp(path);
    return s ? s : strdup("");
}

static void run_free(run_t *r) {
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

/* Runs `metaembed --addr ADDR args...`, capturing stdout and stderr in
 * files under g_tmp. Fails the test on a sanitizer report. */
static int run_cli(run_t *r, const char *addr, const char *const *args) {
    char bin[512], outp[600], errp[600];
    me_test_bin("metaembed", bin, sizeof bin);
    snprintf(outp, sizeof outp, "%s/cli.out", g_tmp);
    snprintf(errp, sizeof errp, "%s/cli.err", g_tmp);
    const char *argv[64];
    int n = 0;
    argv[n++] = bin;
    if (addr) { argv[n++] = "--addr"; argv[n++] = addr; }
    for (int i = 0; args[i] && n < 63; i++) argv[n++] = args[i];
    argv[n] = NULL;
    r->code = me_test_run((char *const *)argv, outp, errp);
    r->out = slurp(outp);
    r->err = slurp(errp);
    if (strstr(r->err, "Sanitizer")) {
        fprintf(stderr, "%s", r->err);
        me_test_fail(__FILE__, __LINE__, "sanitizer report from metaembed %s", args[0]);
    }
    if (r->code == 127) me_test_fail(__FILE__, __LINE__, "cannot exec %s (built?)", bin);
    return r->code;
}

#define CLI(r, addr, ...) run_cli((r), (addr), (const char *const[]){ __VA_ARGS__, NULL })

#define ASSERT_HAS(s, sub)                                                     \
    do { if (!strstr((s), (sub))) me_test_fail(__FILE__, __LINE__, "output lacks \"%s\":\n%s", (sub), (s)); } while (0)

/* Every one of the strings is on r's stdout; then r is freed for the next run. */
#define ASSERT_OUT(r, ...)                                                     \
    do {                                                                       \
        const char *const want_[] = { __VA_ARGS__ };                           \
        for (size_t w_ = 0; w_ < sizeof want_ / sizeof want_[0]; w_++)         \
            ASSERT_HAS((r)->out, want_[w_]);                                   \
        run_free(r);                                                           \
    } while (0)

/* Exits with `code`, says "metaembed: ..." naming `sub` on stderr, prints nothing on stdout. */
#define ASSERT_FAILS(r, want, sub)                                             \
    do {                                                                       \
        if ((r)->code != (want))                                               \
            me_test_fail(__FILE__, __LINE__, "exit %d, expected %d; stderr:\n%s", (r)->code, (want), (r)->err); \
        ASSERT_HAS((r)->err, "metaembed: ");                                   \
        ASSERT_HAS((r)->err, sub);                                             \
        ASSERT_STREQ((r)->out, "");                                            \
    } while (0)

static void setup(const char *tag) {
    char *dir = me_test_tmpdir(tag);
    ASSERT_TRUE(dir != NULL);
    snprintf(g_tmp, sizeof g_tmp, "%s", dir);
    free(dir);
}

static const char *tmp_path(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s", g_tmp, name);
    return buf;
}

static void write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "w");
    ASSERT_TRUE(f != NULL);
    fputs(s, f);
    fclose(f);
}

/* Unit vectors, so a document's own rows score exactly 1 against a query
 * copied from it and it is the top hit. Documents i % 10 == 3 have only 5
 * rows: the other 3 are zero padding. */
static void make_docs(float *v, uint64_t seed) {
    me_rng_t rng = { seed };
    for (int i = 0; i < NDOCS; i++)
        for (int j = 0; j < R; j++) {
            float *row = v + ((size_t)i * R + j) * D;
            if (i % 10 == 3 && j >= 5) { memset(row, 0, D * sizeof *row); continue; }
            double norm = 0;
            for (int k = 0; k < D; k++) { row[k] = (float)me_rng_normal(&rng); norm += (double)row[k] * row[k]; }
            for (int k = 0; k < D; k++) row[k] = (float)(row[k] / sqrt(norm));
        }
}

static void write_ids_meta(const char *ids_path, const char *meta_path, int n) {
    FILE *fi = fopen(ids_path, "w"), *fm = meta_path ? fopen(meta_path, "w") : NULL;
    ASSERT_TRUE(fi != NULL);
    for (int i = 0; i < n; i++) {
        fprintf(fi, "doc-%04d\n", i);
        if (fm) fprintf(fm, "{\"i\": %d, \"title\": \"doc \\\"%d\\\"\\ttab\"}\n", i, i);
    }
    fclose(fi);
    if (fm) fclose(fm);
}

/* NDOCS documents made with `seed` ingested into collection coll as
 * doc-0000..; q (a path in the scratch dir) gets doc-0042's rows as a
 * 4-row query, which finds doc-0042 first. */
static void ingest_docs_and_own_query(const char *addr, const char *coll, uint64_t seed, char *q, size_t qcap) {
    char npy[600], ids[600], err[256];
    tmp_path(npy, sizeof npy, "emb.npy");
    tmp_path(ids, sizeof ids, "ids.txt");
    tmp_path(q, qcap, "q.npy");
    float *v = malloc((size_t)NDOCS * R * D * sizeof *v);
    ASSERT_TRUE(v != NULL);
    make_docs(v, seed);
    uint64_t shape[3] = { NDOCS, R, D }, qshape[2] = { 4, D };
    ASSERT_OK(me_npy_write(npy, ME_DTYPE_F32, shape, 3, v, 1, err, sizeof err));
    ASSERT_OK(me_npy_write(q, ME_DTYPE_F32, qshape, 2, v + (size_t)42 * R * D, 1, err, sizeof err));
    free(v);
    write_ids_meta(ids, NULL, NDOCS);
    run_t r = { 0 };
    ASSERT_EQ(CLI(&r, addr, "ingest", "--collection", coll, "--vectors", npy, "--ids", ids), 0);
    run_free(&r);
}

static uint64_t doc_count(me_client_t *c, const char *coll) {
    me_collection_info_t *cs = NULL;
    size_t n = 0;
    me_status_t st;
    ASSERT_OK(me_client_list_collections(c, &cs, &n, &st));
    uint64_t docs = UINT64_MAX;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(cs[i].name, coll)) docs = cs[i].documents;
    free(cs);
    return docs;
}

/* Runs `metaembed --addr ADDR collection drop NAME` on a pseudo-terminal,
 * answers its question with `answer`, and returns its exit status; the
 * prompt must have named the collection and --yes. */
static int drop_on_tty(const char *addr, const char *name, const char *answer) {
    char bin[512];
    me_test_bin("metaembed", bin, sizeof bin);
    int master;
    pid_t pid = forkpty(&master, NULL, NULL, NULL);
    ASSERT_TRUE(pid >= 0);
    if (pid == 0) {
        execl(bin, bin, "--addr", addr, "collection", "drop", name, (char *)NULL);
        _exit(127);
    }
    char seen[4096];
    size_t len = 0;
    int answered = 0;
    for (;;) {
        struct pollfd p = { master, POLLIN, 0 };
        if (poll(&p, 1, 20000) <= 0) break;  /* a hang fails below */
        ssize_t k = read(master, seen + len, sizeof seen - 1 - len);
        if (k <= 0) break;  /* EIO: the child closed the terminal */
        len += (size_t)k;
        seen[len] = 0;
        if (!answered && strstr(seen, "type the name to confirm")) {
            ASSERT_TRUE(write(master, answer, strlen(answer)) == (ssize_t)strlen(answer));
            answered = 1;
        }
    }
    close(master);
    int status = me_test_wait(pid);
    if (!answered) me_test_fail(__FILE__, __LINE__, "no confirmation prompt; the terminal showed:\n%s", seen);
    ASSERT_HAS(seen, name);
    ASSERT_HAS(seen, "--yes");
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

TEST(cli_help_and_collections) {
    setup("cli");
    me_daemon_t d = { 0 };
    ASSERT_OK(me_daemon_start(&d, "metaembed-shard", "cli"));
    run_t r = { 0 };

    ASSERT_EQ(CLI(&r, NULL, "--help"), 0);
    ASSERT_OUT(&r, "collection create", "METAEMBED_ADDR");
    ASSERT_EQ(CLI(&r, NULL, "search", "--help"), 0);
    ASSERT_OUT(&r, "--budget RQ,RC", "-k N");
    ASSERT_EQ(CLI(&r, NULL, "collection", "--help"), 0);
    ASSERT_OUT(&r, "drop NAME");
    ASSERT_EQ(CLI(&r, NULL, "collection", "create", "--help"), 0);
    ASSERT_OUT(&r, "--max-doc-vectors");
    CLI(&r, NULL, "frobnicate");
    ASSERT_FAILS(&r, 2, "unknown command 'frobnicate'");
    run_free(&r);
    CLI(&r, d.endpoint, "collection", "create", "x");
    ASSERT_FAILS(&r, 2, "--dim");
    run_free(&r);
    CLI(&r, d.endpoint, "collection", "create", "x", "--dim", "16", "--dtype", "f64");
    ASSERT_FAILS(&r, 2, "'f64' is not one of f16|f32|int8");
    run_free(&r);
    CLI(&r, d.endpoint, "collection", "list", "--bogus");
    ASSERT_FAILS(&r, 2, "unknown option '--bogus'");
    run_free(&r);

    /* nothing listening: fails fast with a hint */
    char dead[64];
    snprintf(dead, sizeof dead, "tcp://127.0.0.1:%d", me_test_free_port());
    CLI(&r, dead, "--timeout", "300", "collection", "list");
    ASSERT_FAILS(&r, 1, "cannot reach");
    run_free(&r);

    ASSERT_EQ(CLI(&r, d.endpoint, "collection", "create", "alpha", "--dim", "16", "--max-doc-vectors", "8"), 0);
    ASSERT_OUT(&r, "created collection 'alpha'");
    ASSERT_EQ(CLI(&r, d.endpoint, "--json", "collection", "create", "beta", "--dim", "32", "--dtype", "f32"), 0);
    ASSERT_OUT(&r, "{\"created\":{\"name\":\"beta\",\"dim\":32,\"max_doc_vectors\":64,", "\"dtype\":\"f32\"");
    CLI(&r, d.endpoint, "collection", "create", "alpha", "--dim", "16");
    ASSERT_FAILS(&r, 1, "ALREADY_EXISTS");
    run_free(&r);

    /* the address from the environment */
    setenv("METAEMBED_ADDR", d.endpoint, 1);
    ASSERT_EQ(CLI(&r, NULL, "collection", "list"), 0);
    unsetenv("METAEMBED_ADDR");
    ASSERT_OUT(&r, "NAME", "alpha", "beta");
    ASSERT_EQ(CLI(&r, d.endpoint, "collection", "list", "--json"), 0);
    ASSERT_HAS(r.out, "{\"collections\":[");
    ASSERT_HAS(r.out, "\"name\":\"alpha\",\"dim\":16,\"max_doc_vectors\":8");
    ASSERT_EQ(r.out[strlen(r.out) - 1], '\n');
    ASSERT_TRUE(strchr(r.out, '\n') == r.out + strlen(r.out) - 1);  /* one line */
    run_free(&r);

    ASSERT_EQ(CLI(&r, d.endpoint, "status"), 0);
    ASSERT_OUT(&r, "shard", d.endpoint, " up ", "alpha");
    ASSERT_EQ(CLI(&r, d.endpoint, "status", "--json"), 0);
    ASSERT_OUT(&r, "\"role\":\"shard\"", "\"replicas\":[{\"endpoint\":\"", "\"up\":true");

    /* On a terminal, drop asks for the name: a wrong answer keeps it. */
    me_client_t *mc = me_daemon_client(&d);
    ASSERT_TRUE(mc != NULL);
    ASSERT_EQ(drop_on_tty(d.endpoint, "alpha", "alpah\n"), 1);
    ASSERT_EQ(doc_count(mc, "alpha"), 0);
    ASSERT_EQ(drop_on_tty(d.endpoint, "alpha", "alpha\n"), 0);
    ASSERT_EQ(doc_count(mc, "alpha"), UINT64_MAX);
    me_client_close(mc);
    /* From a script (stdin not a terminal) it drops at once. */
    ASSERT_EQ(CLI(&r, d.endpoint, "collection", "create", "alpha", "--dim", "16"), 0);
    run_free(&r);
    ASSERT_EQ(CLI(&r, d.endpoint, "collection", "drop", "alpha"), 0);
    ASSERT_OUT(&r, "dropped collection 'alpha'");
    ASSERT_EQ(CLI(&r, d.endpoint, "--json", "collection", "drop", "beta"), 0);
    ASSERT_STREQ(r.out, "{\"dropped\":\"beta\"}\n");
    run_free(&r);
    CLI(&r, d.endpoint, "collection", "drop", "beta");
    ASSERT_FAILS(&r, 1, "beta");
    run_free(&r);
    ASSERT_EQ(CLI(&r, d.endpoint, "collection", "list", "--json"), 0);
    ASSERT_STREQ(r.out, "{\"collections\":[]}\n");
    run_free(&r);

    me_daemon_free(&d);
    me_test_rmdir(g_tmp);
}

/* --coarse-index flat|ivf with --ivf-lists and --ivf-probe: bad values fail
 * before anything is sent, ivf round-trips through create, list and --json,
 * and a search takes --probe (the index is not trained below 2,048
 * documents a shard, so the flat scan answers it). */
TEST(cli_coarse_index_options) {
    setup("cli");
    me_daemon_t d = { 0 };
    ASSERT_OK(me_daemon_start(&d, "metaembed-shard", "cli"));
    run_t r = { 0 };

    ASSERT_EQ(CLI(&r, NULL, "collection", "create", "--help"), 0);
    ASSERT_OUT(&r, "--coarse-index", "flat|ivf", "2,048 documents", "--ivf-lists", "--ivf-probe");
    ASSERT_EQ(CLI(&r, NULL, "search", "--help"), 0);
    ASSERT_OUT(&r, "--probe");
    CLI(&r, d.endpoint, "collection", "create", "x", "--dim", "16", "--coarse-index", "bogus");
    ASSERT_FAILS(&r, 2, "--coarse-index: 'bogus' is not one of flat|ivf");
    run_free(&r);
    CLI(&r, d.endpoint, "collection", "create", "x", "--dim", "16", "--ivf-lists", "8");
    ASSERT_FAILS(&r, 2, "--ivf-lists and --ivf-probe need --coarse-index ivf");
    run_free(&r);
    CLI(&r, d.endpoint, "collection", "create", "x", "--dim", "16", "--coarse-index", "ivf", "--ivf-probe", "70000");
    ASSERT_FAILS(&r, 2, "--ivf-probe");
    run_free(&r);
    me_client_t *mc = me_daemon_client(&d);
    ASSERT_TRUE(mc != NULL);
    me_collection_spec_t bad = { .name = "x", .dim = D, .coarse_index = "hnsw" };
    me_status_t st;
    ASSERT_EQ(me_client_create_collection(mc, &bad, &st), ME_CODE_INVALID_ARGUMENT);
    ASSERT_HAS(st.message, "coarse_index 'hnsw' is not one of flat|ivf");
    ASSERT_EQ(doc_count(mc, "x"), UINT64_MAX);  /* nothing was created */

    ASSERT_EQ(CLI(&r, d.endpoint, "collection", "create", "flatc", "--dim", "16"), 0);
    ASSERT_OUT(&r, "coarse-index flat");
    ASSERT_EQ(CLI(&r, d.endpoint, "collection", "create", "ivfc", "--dim", "16", "--max-doc-vectors", "8",
                  "--max-query-vectors", "8", "--dtype", "f32", "--coarse-index", "ivf", "--ivf-lists", "32",
                  "--ivf-probe", "4"), 0);
    ASSERT_OUT(&r, "created collection 'ivfc'", "coarse-index ivf lists=32 probe=4");
    ASSERT_EQ(CLI(&r, d.endpoint, "--json", "collection", "create", "ivf2", "--dim", "16", "--coarse-index", "ivf"), 0);
    ASSERT_OUT(&r, "{\"created\":{\"name\":\"ivf2\",", "\"coarse_index\":\"ivf\",\"ivf_lists\":0,\"ivf_probe\":0,");
    ASSERT_EQ(CLI(&r, d.endpoint, "collection", "list"), 0);
    ASSERT_OUT(&r, "COARSE_INDEX", "ivf lists=32 probe=4", "ivf lists=auto probe=adaptive", " flat ");
    ASSERT_EQ(CLI(&r, d.endpoint, "collection", "list", "--json"), 0);
    ASSERT_OUT(&r, "\"name\":\"flatc\",", "\"coarse_index\":\"flat\",\"ivf_lists\":0,\"ivf_probe\":0,",
               "\"coarse_index\":\"ivf\",\"ivf_lists\":32,\"ivf_probe\":4,");

    /* a search with --probe: a document's own rows find it first */
    char q[600];
    ingest_docs_and_own_query(d.endpoint, "ivfc", 11, q, sizeof q);
    ASSERT_EQ(CLI(&r, d.endpoint, "search", "--collection", "ivfc", "--vectors", q, "--probe", "1", "-k", "3"), 0);
    ASSERT_OUT(&r, "3 hits from 300 documents", "   1  doc-0042  ");
    CLI(&r, d.endpoint, "search", "--collection", "ivfc", "--vectors", q, "--probe", "-1");
    ASSERT_FAILS(&r, 2, "--probe");
    run_free(&r);

    me_client_close(mc);
    me_daemon_free(&d);
    me_test_rmdir(g_tmp);
}

/* --binary-coarse: needs --coarse-vectors 1 (checked before anything is
 * sent, and by the shard), round-trips through create, list, --json and
 * libmetaembed as "+bits" on the coarse index, and its sign-bit stage 1
 * still lets a document's own rows find it first (the stages after it
 * rescore with the stored vectors). */
TEST(cli_coarse_binary_option) {
    setup("cli");
    me_daemon_t d = { 0 };
    ASSERT_OK(me_daemon_start(&d, "metaembed-shard", "cli"));
    run_t r = { 0 };

    ASSERT_EQ(CLI(&r, NULL, "collection", "create", "--help"), 0);
    ASSERT_OUT(&r, "--binary-coarse", "sign bits", "D/8 bytes", "needs --coarse-vectors 1");
    ASSERT_EQ(CLI(&r, NULL, "collection", "--help"), 0);
    ASSERT_OUT(&r, "[--binary-coarse]");
    CLI(&r, d.endpoint, "collection", "create", "x", "--dim", "16", "--coarse-vectors", "2", "--binary-coarse");
    ASSERT_FAILS(&r, 2, "--binary-coarse needs --coarse-vectors 1");
    run_free(&r);
    me_client_t *mc = me_daemon_client(&d);
    ASSERT_TRUE(mc != NULL);
    me_collection_spec_t bad = { .name = "x", .dim = D, .max_doc_vectors = R, .coarse_vectors = 2,
                                 .binary_coarse = 1 };
    me_status_t st;
    ASSERT_EQ(me_client_create_collection(mc, &bad, &st), ME_CODE_INVALID_ARGUMENT);
    ASSERT_HAS(st.message, "binary_coarse needs coarse_vectors 1");
    ASSERT_EQ(doc_count(mc, "x"), UINT64_MAX);  /* nothing was created */

    ASSERT_EQ(CLI(&r, d.endpoint, "collection", "create", "bitsc", "--dim", "16", "--max-doc-vectors", "8",
                  "--max-query-vectors", "8", "--dtype", "f32", "--binary-coarse"), 0);
    ASSERT_OUT(&r, "created collection 'bitsc'", "coarse-vectors 1, coarse-index flat+bits");
    ASSERT_EQ(CLI(&r, d.endpoint, "--json", "collection", "create", "bits2", "--dim", "16", "--coarse-index", "ivf",
                  "--ivf-probe", "4", "--binary-coarse"), 0);
    ASSERT_OUT(&r, "{\"created\":{\"name\":\"bits2\",",
               "\"coarse_index\":\"ivf\",\"ivf_lists\":0,\"ivf_probe\":4,\"binary_coarse\":true,");
    ASSERT_EQ(CLI(&r, d.endpoint, "collection", "create", "plain", "--dim", "16"), 0);
    ASSERT_OUT(&r, "coarse-index flat");
    ASSERT_EQ(CLI(&r, d.endpoint, "collection", "list"), 0);
    ASSERT_OUT(&r, "COARSE_INDEX", " flat+bits ", "ivf+bits lists=auto probe=4", " flat ");
    ASSERT_EQ(CLI(&r, d.endpoint, "collection", "list", "--json"), 0);
    ASSERT_OUT(&r, "\"name\":\"bitsc\",",
               "\"coarse_index\":\"flat\",\"ivf_lists\":0,\"ivf_probe\":0,\"binary_coarse\":true,",
               "\"coarse_index\":\"ivf\",\"ivf_lists\":0,\"ivf_probe\":4,\"binary_coarse\":true,",
               "\"coarse_index\":\"flat\",\"ivf_lists\":0,\"ivf_probe\":0,\"binary_coarse\":false,");
    me_collection_info_t *cs = NULL;
    size_t n = 0;
    ASSERT_OK(me_client_list_collections(mc, &cs, &n, &st));
    int seen = 0;
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(cs[i].name, "plain")) ASSERT_EQ(cs[i].binary_coarse, 0);
        else ASSERT_EQ(cs[i].binary_coarse, 1);
        seen++;
    }
    ASSERT_EQ(seen, 3);
    free(cs);

    /* a search: a document's own rows find it first, through the cascade and
     * at budget 1,1 (bits, then the stored first vectors) */
    char q[600];
    ingest_docs_and_own_query(d.endpoint, "bitsc", 13, q, sizeof q);
    ASSERT_EQ(CLI(&r, d.endpoint, "search", "--collection", "bitsc", "--vectors", q, "-k", "3"), 0);
    ASSERT_OUT(&r, "3 hits from 300 documents", "   1  doc-0042  ");
    ASSERT_EQ(CLI(&r, d.endpoint, "search", "--collection", "bitsc", "--vectors", q, "--budget", "1,1", "-k", "3"), 0);
    ASSERT_OUT(&r, "3 hits from 300 documents", "   1  doc-0042  ");
    run_free(&r);

    me_client_close(mc);
    me_daemon_free(&d);
    me_test_rmdir(g_tmp);
}

/* Ingests [NDOCS, R, D] into a collection of dtype `dtype` from a file of
 * `file_dtype`, checks what was stored, then searches, gets and deletes. */
static void ingest_search_roundtrip(const char *dtype, me_dtype_t file_dtype) {
    setup("cli");
    me_daemon_t d = { 0 };
    ASSERT_OK(me_daemon_start(&d, "metaembed-shard", "cli"));
    me_client_t *c = me_daemon_client(&d);
    ASSERT_TRUE(c != NULL);
    run_t r = { 0 };
    char npy[600], ids[600], meta[600], q[600], err[512];
    tmp_path(npy, sizeof npy, "emb.npy");
    tmp_path(ids, sizeof ids, "ids.txt");
    tmp_path(meta, sizeof meta, "meta.jsonl");
    tmp_path(q, sizeof q, "q.npy");

    float *v = malloc((size_t)NDOCS * R * D * sizeof *v);
    uint16_t *h = malloc((size_t)NDOCS * R * D * sizeof *h);
    make_docs(v, 7);
    uint64_t shape[3] = { NDOCS, R, D };
    if (file_dtype == ME_DTYPE_F16) {
        me_f32_to_f16_n(h, v, (size_t)NDOCS * R * D);
        me_f16_to_f32_n(v, h, (size_t)NDOCS * R * D);  /* what the shard will hold */
        ASSERT_OK(me_npy_write(npy, ME_DTYPE_F16, shape, 3, h, 2, err, sizeof err));
    } else {
        ASSERT_OK(me_npy_write(npy, ME_DTYPE_F32, shape, 3, v, 1, err, sizeof err));
    }
    write_ids_meta(ids, meta, NDOCS);

    ASSERT_EQ(CLI(&r, d.endpoint, "collection", "create", "docs", "--dim", "16", "--max-doc-vectors", "8",
                  "--max-query-vectors", "8", "--dtype", dtype), 0);
    run_free(&r);
    ASSERT_EQ(CLI(&r, d.endpoint, "ingest", "--collection", "docs", "--vectors", npy, "--ids", ids, "--meta", meta,
                  "--batch", "64"), 0);
    ASSERT_HAS(r.out, "ingested 300 documents into 'docs'");
    ASSERT_HAS(r.out, "docs/s");
    ASSERT_HAS(r.out, "5 batches");
    ASSERT_STREQ(r.err, "");  /* no progress bar off a terminal */
    run_free(&r);
    ASSERT_EQ(doc_count(c, "docs"), NDOCS);

    /* stored vectors and metadata, through the library */
    const char *want[] = { "doc-0000", "doc-0003", "doc-0150", "doc-0299" };
    const int idx[] = { 0, 3, 150, 299 };
    me_record_t *recs = NULL;
    size_t n = 0;
    me_status_t st;
    ASSERT_OK(me_client_get(c, "docs", want, 4, 1, &recs, &n, &st));
    ASSERT_EQ(n, 4);
    for (size_t i = 0; i < n; i++) {
        int di = idx[i];
        ASSERT_STREQ(recs[i].id, want[i]);
        ASSERT_EQ(recs[i].rows, di % 10 == 3 ? 5 : R);  /* zero padding was not sent */
        ASSERT_EQ(recs[i].dim, D);
        for (int k = 0; k < recs[i].rows * D; k++) {
            float expect = v[(size_t)di * R * D + k];
            if (!strcmp(dtype, "f16")) expect = me_f16_to_f32(me_f32_to_f16(expect));
            ASSERT_NEAR(recs[i].vectors[k], expect, 0);
        }
        char m[128];
        snprintf(m, sizeof m, "{\"i\": %d, \"title\": \"doc \\\"%d\\\"\\ttab\"}", di, di);
        ASSERT_EQ(recs[i].metadata_len, strlen(m));
        ASSERT_TRUE(memcmp(recs[i].metadata, m, strlen(m)) == 0);
    }
    me_records_free(recs, n);

    /* search: queries copied from documents 42, 77 and 123 (first 4 rows) */
    const int qd[3] = { 42, 77, 123 };
    float qv[3 * 4 * D];
    for (int i = 0; i < 3; i++) memcpy(qv + i * 4 * D, v + (size_t)qd[i] * R * D, 4 * D * sizeof *qv);
    uint64_t qshape[3] = { 3, 4, D };
    ASSERT_OK(me_npy_write(q, ME_DTYPE_F32, qshape, 3, qv, 1, err, sizeof err));
    ASSERT_EQ(CLI(&r, d.endpoint, "search", "--collection", "docs", "--vectors", q, "-k", "5", "--json",
                  "--metadata"), 0);
    ASSERT_HAS(r.out, "{\"collection\":\"docs\",\"queries\":[{\"query\":0,\"r_q\":4,\"r_c\":8,\"documents\":300,"
                      "\"partial\":false,\"missing_groups\":[],\"hits\":[{\"rank\":1,\"id\":\"doc-0042\",\"score\":");
    ASSERT_HAS(r.out, "{\"query\":1,");
    ASSERT_HAS(r.out, "\"hits\":[{\"rank\":1,\"id\":\"doc-0077\"");
    ASSERT_HAS(r.out, "\"hits\":[{\"rank\":1,\"id\":\"doc-0123\"");
    ASSERT_HAS(r.out, "\"metadata\":{\"i\": 42, \"title\": \"doc \\\"42\\\"\\ttab\"}");
    ASSERT_HAS(r.out, "\"stages\":[{\"stage\":");
    ASSERT_HAS(r.out, "{\"rank\":5,");
    ASSERT_TRUE(!strstr(r.out, "{\"rank\":6,"));
    run_free(&r);
    /* one query [R, D] in f16, text output, a budget, exact */
    uint16_t qh[4 * D];
    me_f32_to_f16_n(qh, qv + 4 * D, 4 * D);
    uint64_t qshape2[2] = { 4, D };
    ASSERT_OK(me_npy_write(q, ME_DTYPE_F16, qshape2, 2, qh, 1, err, sizeof err));
    ASSERT_EQ(CLI(&r, d.endpoint, "search", "--collection", "docs", "--vectors", q, "--budget", "2,8", "--exact"), 0);
    ASSERT_OUT(&r, "query 0: 10 hits from 300 documents, budget r_q=2 r_c=8", "RANK  ID", "   1  doc-0077  ",
               "stages: exact");
    /* --row picks one query of [N, R, D] */
    ASSERT_OK(me_npy_write(q, ME_DTYPE_F32, qshape, 3, qv, 3, err, sizeof err));
    ASSERT_EQ(CLI(&r, d.endpoint, "--json", "search", "--collection", "docs", "--vectors", q, "--row", "2", "-k",
                  "1"), 0);
    ASSERT_HAS(r.out, "\"queries\":[{\"query\":2,");
    ASSERT_HAS(r.out, "\"id\":\"doc-0123\"");
    ASSERT_TRUE(!strstr(r.out, "doc-0042"));
    run_free(&r);

    /* get through the CLI */
    ASSERT_EQ(CLI(&r, d.endpoint, "get", "--collection", "docs", "doc-0005", "doc-0006", "--json"), 0);
    ASSERT_OUT(&r, "{\"collection\":\"docs\",\"documents\":[{\"id\":\"doc-0005\",\"metadata\":{\"i\": 5,",
               "\"missing\":[]}");
    ASSERT_EQ(CLI(&r, d.endpoint, "get", "--collection", "docs", "doc-0013", "--vectors"), 0);
    ASSERT_HAS(r.out, "doc-0013  5 x 16  {\"i\": 13,");
    ASSERT_HAS(r.out, "  [4] ");
    ASSERT_TRUE(!strstr(r.out, "  [5] "));
    run_free(&r);
    /* get --out: the stored vectors as .npy [N, R, D], shorter documents
     * padded with zero rows, and --ids-out their ids (issue 15). */
    char outnpy[600], outids[600];
    tmp_path(outnpy, sizeof outnpy, "export.npy");
    tmp_path(outids, sizeof outids, "export.ids");
    ASSERT_EQ(CLI(&r, d.endpoint, "get", "--collection", "docs", "doc-0013", "doc-0014", "nope", "--out", outnpy,
                  "--ids-out", outids), 1);  /* one id missing: exit 1, the rest exported */
    ASSERT_HAS(r.err, "wrote 2 x 8 x 16 vectors to");
    run_free(&r);
    me_npy_t ex;
    ASSERT_OK(me_npy_open(&ex, outnpy, err, sizeof err));
    ASSERT_EQ(ex.ndim, 3);
    ASSERT_EQ(ex.shape[0], 2);
    ASSERT_EQ(ex.shape[1], R);
    ASSERT_EQ(ex.shape[2], D);
    float *got = malloc(2 * R * D * sizeof *got);
    me_npy_read_f32(&ex, 0, 2 * R * D, got);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < R * D; j++) {
            float expect_v = (i == 0 && j >= 5 * D) ? 0.0f : v[(size_t)(13 + i) * R * D + j];
            ASSERT_NEAR(got[i * R * D + j], expect_v, 2e-3);
        }
    free(got);
    me_npy_close(&ex);
    char *idtext = slurp(outids);
    ASSERT_STREQ(idtext, "doc-0013\ndoc-0014\n");
    free(idtext);
    CLI(&r, d.endpoint, "get", "--collection", "docs", "doc-0013", "--ids-out", outids);
    ASSERT_FAILS(&r, 2, "--ids-out goes with --out");
    run_free(&r);
    CLI(&r, d.endpoint, "get", "--collection", "docs", "doc-0001", "nope");
    ASSERT_EQ(r.code, 1);
    ASSERT_HAS(r.out, "doc-0001");
    ASSERT_HAS(r.err, "not found in 'docs': nope");
    run_free(&r);

    /* delete through the CLI */
    ASSERT_EQ(CLI(&r, d.endpoint, "--json", "delete", "--collection", "docs", "doc-0001", "doc-0002", "nope"), 0);
    ASSERT_STREQ(r.out, "{\"collection\":\"docs\",\"requested\":3,\"deleted\":2}\n");
    run_free(&r);
    ASSERT_EQ(doc_count(c, "docs"), NDOCS - 2);
    ASSERT_EQ(CLI(&r, d.endpoint, "delete", "--collection", "docs", "doc-0003"), 0);
    ASSERT_OUT(&r, "deleted 1 of 1 documents from 'docs'");
    ASSERT_EQ(doc_count(c, "docs"), NDOCS - 3);

    /* re-ingesting replaces by id: the count comes back to NDOCS */
    ASSERT_EQ(CLI(&r, d.endpoint, "--json", "ingest", "--collection", "docs", "--vectors", npy, "--ids", ids), 0);
    ASSERT_OUT(&r, "{\"collection\":\"docs\",\"documents\":300,\"batches\":2,");
    ASSERT_EQ(doc_count(c, "docs"), NDOCS);
    /* An id given twice: the summary counts distinct ids (issue 15). */
    char dupids[600];
    tmp_path(dupids, sizeof dupids, "dup-ids.txt");
    write_ids_meta(dupids, NULL, NDOCS);
    {
        char *t = slurp(dupids);
        memcpy(strstr(t, "doc-0001"), "doc-0000", 8);
        write_text(dupids, t);
        free(t);
    }
    ASSERT_EQ(CLI(&r, d.endpoint, "ingest", "--collection", "docs", "--vectors", npy, "--ids", dupids), 0);
    ASSERT_OUT(&r, "ingested 300 documents", "299 distinct ids: 1 line of ");
    ASSERT_EQ(CLI(&r, d.endpoint, "--json", "ingest", "--collection", "docs", "--vectors", npy, "--ids", dupids), 0);
    ASSERT_OUT(&r, "\"distinct_ids\":299,\"repeated_ids\":1}");

    free(v);
    free(h);
    me_client_close(c);
    me_daemon_free(&d);
    me_test_rmdir(g_tmp);
}

/* Rough edges a new user hit (issue 15): an address without tcp://, --json
 * errors as JSON on stdout, k bounded by the shard's own limit (which its
 * refusal names), local commands' help without server options, the top
 * help naming text search and JSONL ingest, --dim with no fake default. */
TEST(cli_rough_edges) {
    setup("cli-edges");
    me_daemon_t d = { 0 };
    ASSERT_OK(me_daemon_start(&d, "metaembed-shard", "cli-edges"));
    run_t r = { 0 };
    const char *hostport = strstr(d.endpoint, "://") + 3;
    ASSERT_EQ(CLI(&r, hostport, "collection", "create", "edges", "--dim", "16"), 0);
    ASSERT_OUT(&r, "created collection 'edges'");

    CLI(&r, hostport, "--json", "collection", "create", "edges", "--dim", "16");
    ASSERT_EQ(r.code, 1);
    ASSERT_HAS(r.out, "{\"error\":{\"command\":\"collection create\",\"message\":\"");
    ASSERT_HAS(r.out, "ALREADY_EXISTS");
    ASSERT_HAS(r.out, "\"exit\":1}}\n");
    ASSERT_HAS(r.err, "metaembed: collection create: ");   /* still said on stderr */
    run_free(&r);
    CLI(&r, NULL, "--json", "collection", "create", "x");
    ASSERT_EQ(r.code, 2);
    ASSERT_HAS(r.out, "\"exit\":2}}");
    run_free(&r);

    char q[600];
    tmp_path(q, sizeof q, "q.npy");
    float qv[2 * 16] = { 1 };
    uint64_t shape[2] = { 2, 16 };
    char err[256];
    ASSERT_OK(me_npy_write(q, ME_DTYPE_F32, shape, 2, qv, 1, err, sizeof err));
    CLI(&r, d.endpoint, "search", "--collection", "edges", "--vectors", q, "-k", "20000");
    ASSERT_FAILS(&r, 1, "exceeds the limit of 10000 (the shard's --max-k)");
    run_free(&r);

    ASSERT_EQ(CLI(&r, NULL, "train", "--help"), 0);
    ASSERT_TRUE(strstr(r.out, "--addr") == NULL && strstr(r.out, "--curve-dir") == NULL);
    ASSERT_OUT(&r, "--json");
    ASSERT_EQ(CLI(&r, NULL, "keygen", "--help"), 0);
    ASSERT_TRUE(strstr(r.out, "--timeout") == NULL);
    run_free(&r);
    ASSERT_EQ(CLI(&r, NULL, "--help"), 0);
    ASSERT_OUT(&r, "corpus.jsonl", "\"free text\"", "--image q.png", "local commands");
    ASSERT_EQ(CLI(&r, NULL, "collection", "create", "--help"), 0);
    ASSERT_TRUE(strstr(r.out, "(required) [default") == NULL);
    run_free(&r);

    /* The default model is found from any working directory (the
     * repository beside the binary), and a missing one names --model. */
    {
        char bin[512], abs_bin[4096], cwd[4096], in[600], outp[600], errp[600], npy[600];
        me_test_bin("metaembed", bin, sizeof bin);
        ASSERT_TRUE(realpath(bin, abs_bin) != NULL && getcwd(cwd, sizeof cwd) != NULL);
        tmp_path(in, sizeof in, "one.jsonl");
        tmp_path(npy, sizeof npy, "one.npy");
        tmp_path(outp, sizeof outp, "enc.out");
        tmp_path(errp, sizeof errp, "enc.err");
        write_text(in, "{\"id\": \"a\", \"text\": \"a text editor\"}\n");
        char *enc[] = { abs_bin, "encode", "--input", in, "--out", npy, NULL };
        char *nomodel[] = { abs_bin, "encode", "--model", "models/none.safetensors", "--input", in, "--out", npy, NULL };
        ASSERT_EQ(chdir(g_tmp), 0);
        int rc_enc = me_test_run(enc, outp, errp);
        char *enc_err = slurp(errp);
        int rc_none = me_test_run(nomodel, outp, errp);
        char *none_err = slurp(errp);
        ASSERT_EQ(chdir(cwd), 0);
        if (rc_enc != 0) fprintf(stderr, "%s", enc_err);
        ASSERT_EQ(rc_enc, 0);
        ASSERT_EQ(rc_none, 1);
        ASSERT_HAS(none_err, "cannot open models/none.safetensors: not found in");
        ASSERT_HAS(none_err, "give --model PATH");
        free(enc_err);
        free(none_err);
    }

    /* Text ingest with no encoder on the stream: it says it waits, then
     * gives up after --wait-s rather than hanging; a missing collection is
     * reported before anything about the file's lines. */
    char corpus[600], stream[64];
    tmp_path(corpus, sizeof corpus, "corpus.jsonl");
    write_text(corpus, "{\"id\": \"a\", \"text\": \"hello\"}\nnot json\n");
    snprintf(stream, sizeof stream, "tcp://127.0.0.1:%d", me_test_free_port());
    uint64_t t0 = me_now_ms();
    CLI(&r, hostport, "ingest", corpus, "--collection", "edges", "--stream", stream, "--wait-s", "2");
    ASSERT_FAILS(&r, 1, "no encoder connected to tcp://127.0.0.1:");
    ASSERT_HAS(r.err, "waiting for an encoder to connect");
    ASSERT_HAS(r.err, "nothing was stored");
    ASSERT_TRUE(me_now_ms() - t0 < 30000);
    run_free(&r);
    CLI(&r, hostport, "ingest", corpus, "--collection", "nosuch", "--stream", stream, "--wait-s", "2");
    ASSERT_FAILS(&r, 1, "nosuch");
    ASSERT_TRUE(strstr(r.err, "not JSON") == NULL);
    run_free(&r);

    me_daemon_free(&d);
    me_test_rmdir(g_tmp);
}

TEST(cli_ingest_f32_search_get_delete) { ingest_search_roundtrip("f32", ME_DTYPE_F32); }
TEST(cli_ingest_f16_search_get_delete) { ingest_search_roundtrip("f16", ME_DTYPE_F16); }

TEST(cli_bad_input_fails_clearly_and_keeps_data) {
    setup("cli");
    me_daemon_t d = { 0 };
    d.extra[d.nextra++] = "--max-batch=200";  /* so a --batch 256 ingest is refused by the server */
    ASSERT_OK(me_daemon_start(&d, "metaembed-shard", "cli"));
    me_client_t *c = me_daemon_client(&d);
    ASSERT_TRUE(c != NULL);
    run_t r = { 0 };
    char npy[600], ids[600], meta[600], bad[600], q[600], err[512];
    tmp_path(npy, sizeof npy, "emb.npy");
    tmp_path(ids, sizeof ids, "ids.txt");
    tmp_path(meta, sizeof meta, "meta.jsonl");
    tmp_path(bad, sizeof bad, "bad.npy");
    tmp_path(q, sizeof q, "q.npy");
    float *v = malloc((size_t)NDOCS * R * D * sizeof *v);
    make_docs(v, 11);
    uint64_t shape[3] = { NDOCS, R, D };
    ASSERT_OK(me_npy_write(npy, ME_DTYPE_F32, shape, 3, v, 1, err, sizeof err));
    write_ids_meta(ids, meta, NDOCS);
    ASSERT_EQ(CLI(&r, d.endpoint, "collection", "create", "docs", "--dim", "16", "--max-doc-vectors", "8"), 0);
    run_free(&r);
    ASSERT_EQ(CLI(&r, d.endpoint, "ingest", "--collection", "docs", "--vectors", npy, "--ids", ids, "--meta", meta,
                  "--batch", "100"), 0);
    run_free(&r);
    ASSERT_EQ(doc_count(c, "docs"), NDOCS);

    /* a different id set, so a wrongly accepted ingest would change the count */
    char ids2[600], meta2[600];
    tmp_path(ids2, sizeof ids2, "ids2.txt");
    tmp_path(meta2, sizeof meta2, "meta2.jsonl");
    FILE *f = fopen(ids2, "w");
    for (int i = 0; i < NDOCS; i++) fprintf(f, "new-%04d\n", i);
    fclose(f);

    /* truncated .npy */
    ASSERT_OK(me_npy_write(bad, ME_DTYPE_F32, shape, 3, v, 1, err, sizeof err));
    ASSERT_OK(truncate(bad, 64 + 1000));
    CLI(&r, d.endpoint, "ingest", "--collection", "docs", "--vectors", bad, "--ids", ids2);
    ASSERT_FAILS(&r, 1, "truncated");
    ASSERT_HAS(r.err, "bad.npy");
    run_free(&r);
    /* wrong dtype: '<f8' */
    {
        char hdr[256];
        size_t hn = me_npy_format_header(hdr, sizeof hdr, ME_DTYPE_F32, shape, 3, 1);
        char *p = memmem(hdr, hn, "<f4", 3);
        ASSERT_TRUE(p != NULL);
        p[2] = '8';
        FILE *fb = fopen(bad, "wb");
        fwrite(hdr, 1, hn, fb);
        for (int i = 0; i < NDOCS * R * D; i++) { double x = v[i]; fwrite(&x, sizeof x, 1, fb); }
        fclose(fb);
    }
    CLI(&r, d.endpoint, "ingest", "--collection", "docs", "--vectors", bad, "--ids", ids2);
    ASSERT_FAILS(&r, 1, "unsupported dtype '<f8'");
    run_free(&r);
    /* bad magic */
    write_text(bad, "this is not a numpy file at all");
    CLI(&r, d.endpoint, "ingest", "--collection", "docs", "--vectors", bad, "--ids", ids2);
    ASSERT_FAILS(&r, 1, "bad magic");
    run_free(&r);
    /* ids count mismatch */
    char ids_short[600];
    tmp_path(ids_short, sizeof ids_short, "short.txt");
    write_ids_meta(ids_short, NULL, NDOCS - 1);
    CLI(&r, d.endpoint, "ingest", "--collection", "docs", "--vectors", npy, "--ids", ids_short);
    ASSERT_FAILS(&r, 1, "has 299 lines but");
    ASSERT_HAS(r.err, "300 documents");
    run_free(&r);
    /* an empty id line */
    write_text(ids_short, "a\n\nc\n");
    uint64_t s3[3] = { 3, R, D };
    ASSERT_OK(me_npy_write(bad, ME_DTYPE_F32, s3, 3, v, 1, err, sizeof err));
    CLI(&r, d.endpoint, "ingest", "--collection", "docs", "--vectors", bad, "--ids", ids_short);
    ASSERT_FAILS(&r, 1, "line 2 is empty");
    run_free(&r);
    /* metadata: a line that is not an object, and a line that is not JSON */
    static const struct { int at; const char *line, *says; } bad_meta[] = {
        { 17, "[1, 2]\n", "line 18 is not a JSON object" },
        { 40, "{\"i\": 40\n", "line 41 is not valid JSON" },
    };
    for (size_t m = 0; m < sizeof bad_meta / sizeof bad_meta[0]; m++) {
        f = fopen(meta2, "w");
        for (int i = 0; i < NDOCS; i++) {
            if (i == bad_meta[m].at) fputs(bad_meta[m].line, f);
            else fprintf(f, "{\"i\": %d}\n", i);
        }
        fclose(f);
        CLI(&r, d.endpoint, "ingest", "--collection", "docs", "--vectors", npy, "--ids", ids2, "--meta", meta2);
        ASSERT_FAILS(&r, 1, bad_meta[m].says);
        run_free(&r);
    }
    /* wrong dimension, too many vectors per document, wrong rank */
    uint64_t s12[3] = { NDOCS, R, 12 };
    ASSERT_OK(me_npy_write(bad, ME_DTYPE_F32, s12, 3, v, 1, err, sizeof err));
    CLI(&r, d.endpoint, "ingest", "--collection", "docs", "--vectors", bad, "--ids", ids2);
    ASSERT_FAILS(&r, 1, "dimension D=12");
    ASSERT_HAS(r.err, "has dim 16");
    run_free(&r);
    uint64_t s9[3] = { NDOCS / 2, 9, D };
    ASSERT_OK(me_npy_write(bad, ME_DTYPE_F32, s9, 3, v, 1, err, sizeof err));
    write_ids_meta(ids_short, NULL, NDOCS / 2);
    CLI(&r, d.endpoint, "ingest", "--collection", "docs", "--vectors", bad, "--ids", ids_short);
    ASSERT_FAILS(&r, 1, "max-doc-vectors");
    run_free(&r);
    uint64_t s2[2] = { NDOCS, R * D };
    ASSERT_OK(me_npy_write(bad, ME_DTYPE_F32, s2, 2, v, 1, err, sizeof err));
    CLI(&r, d.endpoint, "ingest", "--collection", "docs", "--vectors", bad, "--ids", ids2);
    ASSERT_FAILS(&r, 1, "expected [N, R, D]");
    run_free(&r);
    /* a NaN in the last document: caught before anything is sent */
    float keep = v[(size_t)NDOCS * R * D - 3];
    v[(size_t)NDOCS * R * D - 3] = NAN;
    ASSERT_OK(me_npy_write(bad, ME_DTYPE_F32, shape, 3, v, 1, err, sizeof err));
    v[(size_t)NDOCS * R * D - 3] = keep;
    CLI(&r, d.endpoint, "ingest", "--collection", "docs", "--vectors", bad, "--ids", ids2, "--batch", "16");
    ASSERT_FAILS(&r, 1, "document 299 (id 'new-0299') vector 7 holds NaN");
    run_free(&r);
    /* a batch the server refuses: reported with what was and was not stored */
    CLI(&r, d.endpoint, "ingest", "--collection", "docs", "--vectors", npy, "--ids", ids2, "--batch", "256");
    ASSERT_FAILS(&r, 1, "upsert of documents 0..255 (ids 'new-0000'..'new-0255') failed (the 0 documents before");
    ASSERT_HAS(r.err, "RESOURCE_EXHAUSTED");
    ASSERT_HAS(r.err, "re-running the ingest is safe");
    run_free(&r);
    /* an all-zero vector before a non-zero one is not padding */
    float *row = v + ((size_t)10 * R + 2) * D;
    float saved[D];
    memcpy(saved, row, sizeof saved);
    memset(row, 0, sizeof saved);
    ASSERT_OK(me_npy_write(bad, ME_DTYPE_F32, shape, 3, v, 1, err, sizeof err));
    memcpy(row, saved, sizeof saved);
    CLI(&r, d.endpoint, "ingest", "--collection", "docs", "--vectors", bad, "--ids", ids2);
    ASSERT_FAILS(&r, 1, "document 10 (id 'new-0010') vector 2 is all zeros");
    ASSERT_HAS(r.err, "nothing was written");
    run_free(&r);
    /* unknown collection */
    CLI(&r, d.endpoint, "ingest", "--collection", "nope", "--vectors", npy, "--ids", ids2);
    ASSERT_FAILS(&r, 1, "collection 'nope' does not exist");
    run_free(&r);
    /* missing required options */
    CLI(&r, d.endpoint, "ingest", "--collection", "docs", "--vectors", npy);
    ASSERT_FAILS(&r, 2, "needs --ids");
    run_free(&r);
    ASSERT_EQ(doc_count(c, "docs"), NDOCS);
    ASSERT_EQ(doc_count(c, "nope"), UINT64_MAX);

    /* search: k out of range, bad budget, wrong dims, unknown collection,
     * a bad --row, and a request the server refuses */
    uint64_t qs[2] = { 4, D };
    ASSERT_OK(me_npy_write(q, ME_DTYPE_F32, qs, 2, v, 1, err, sizeof err));
    CLI(&r, d.endpoint, "search", "--collection", "docs", "--vectors", q, "-k", "0");
    ASSERT_FAILS(&r, 2, "-k: 0 is out of range");
    run_free(&r);
    CLI(&r, d.endpoint, "search", "--collection", "docs", "--vectors", q, "--budget", "4");
    ASSERT_FAILS(&r, 2, "--budget '4' is not RQ,RC");
    run_free(&r);
    CLI(&r, d.endpoint, "search", "--collection", "docs", "--vectors", q, "--row", "3");
    ASSERT_FAILS(&r, 2, "--row 3 is out of range");
    run_free(&r);
    CLI(&r, d.endpoint, "search", "--collection", "nope", "--vectors", q);
    ASSERT_FAILS(&r, 1, "collection 'nope' does not exist");
    run_free(&r);
    CLI(&r, d.endpoint, "search", "--collection", "docs", "--vectors", q, "-k", "20", "--candidates", "5");
    ASSERT_FAILS(&r, 1, "INVALID_ARGUMENT");
    run_free(&r);
    CLI(&r, d.endpoint, "search", "--collection", "docs", "--vectors", q, "--budget", "4,9");
    ASSERT_FAILS(&r, 1, "INVALID_ARGUMENT");
    run_free(&r);
    uint64_t qs12[2] = { 4, 12 };
    ASSERT_OK(me_npy_write(q, ME_DTYPE_F32, qs12, 2, v, 1, err, sizeof err));
    CLI(&r, d.endpoint, "search", "--collection", "docs", "--vectors", q);
    ASSERT_FAILS(&r, 1, "dimension D=12");
    run_free(&r);
    ASSERT_OK(me_npy_write(q, ME_DTYPE_F32, qs, 2, v, 1, err, sizeof err));
    ASSERT_OK(truncate(q, 100));
    CLI(&r, d.endpoint, "search", "--collection", "docs", "--vectors", q);
    ASSERT_FAILS(&r, 1, "truncated");
    run_free(&r);
    /* get/delete on an unknown collection */
    CLI(&r, d.endpoint, "get", "--collection", "nope", "doc-0001");
    ASSERT_FAILS(&r, 1, "NOT_FOUND");
    run_free(&r);
    CLI(&r, d.endpoint, "delete", "--collection", "docs");
    ASSERT_FAILS(&r, 2, "needs at least one document ID");
    run_free(&r);

    ASSERT_EQ(doc_count(c, "docs"), NDOCS);
    me_record_t *recs = NULL;
    size_t n = 0;
    me_status_t st;
    const char *one[] = { "doc-0299" };
    ASSERT_OK(me_client_get(c, "docs", one, 1, 0, &recs, &n, &st));
    ASSERT_EQ(n, 1);
    me_records_free(recs, n);
    free(v);
    me_client_close(c);
    me_daemon_free(&d);
    me_test_rmdir(g_tmp);
}

/* The ids of a `search --json` reply's first query, and the first stage's
 * "in", checked against the page wanted. */
static void json_hits(const char *out, char ids[][16], size_t *n, uint64_t *first_rank, uint64_t *coarse_in) {
    me_json_doc_t *doc;
    ASSERT_OK(me_json_parse(out, strlen(out), &doc, NULL));
    const me_json_t *q = me_json_at(me_json_get(me_json_root(doc), "queries"), 0);
    const me_json_t *hits = me_json_get(q, "hits");
    *n = me_json_len(hits);
    for (size_t i = 0; i < *n; i++) snprintf(ids[i], 16, "%s", me_json_str(me_json_get(me_json_at(hits, i), "id")));
    int64_t rank = 0, in = 0;
    if (*n) ASSERT_OK(me_json_int64(me_json_get(me_json_at(hits, 0), "rank"), &rank));
    const me_json_t *st0 = me_json_at(me_json_get(q, "stages"), 0);
    ASSERT_STREQ(me_json_str(me_json_get(st0, "stage")), "coarse");
    ASSERT_OK(me_json_int64(me_json_get(st0, "in"), &in));
    *first_rank = (uint64_t)rank;
    *coarse_in = (uint64_t)in;
    me_json_free(doc);
}

/* Through a 2-group cluster: search --offset pages (ranks continue), the
 * coarse stage's "in" is every document of the cluster, scores print with
 * 4 decimals and the stage line in its one form; ids pages in byte order
 * with "next: --after" on stderr, --all, --json, and bad input. */
TEST(cli_search_offset_ids_and_stage_totals) {
    setup("cli-pages");
    cluster_t cl;
    ASSERT_OK(cluster_start(&cl, 2, 1, NULL));
    const char *addr = cl.coord.endpoint;
    run_t r = { 0 };
    char npy[600], ids[600], q[600], err[512];
    float *v = malloc((size_t)NDOCS * R * D * sizeof *v);
    make_docs(v, 9);
    uint64_t shape[3] = { NDOCS, R, D }, qshape[2] = { 4, D };
    ASSERT_OK(me_npy_write(tmp_path(npy, sizeof npy, "emb.npy"), ME_DTYPE_F32, shape, 3, v, 1, err, sizeof err));
    ASSERT_OK(me_npy_write(tmp_path(q, sizeof q, "q.npy"), ME_DTYPE_F32, qshape, 2, v + 42 * R * D, 1, err, sizeof err));
    write_ids_meta(tmp_path(ids, sizeof ids, "ids.txt"), NULL, NDOCS);
    ASSERT_EQ(CLI(&r, addr, "collection", "create", "docs", "--dim", "16", "--max-doc-vectors", "8",
                  "--max-query-vectors", "8", "--dtype", "f32"), 0);
    run_free(&r);
    ASSERT_EQ(CLI(&r, addr, "ingest", "--collection", "docs", "--vectors", npy, "--ids", ids), 0);
    run_free(&r);

    char whole[20][16], page[20][16];
    size_t nw, np;
    uint64_t rank, in;
    ASSERT_EQ(CLI(&r, addr, "--json", "search", "--collection", "docs", "--vectors", q, "-k", "20"), 0);
    json_hits(r.out, whole, &nw, &rank, &in);
    run_free(&r);
    ASSERT_EQ(nw, 20);
    ASSERT_EQ(rank, 1);
    ASSERT_EQ(in, NDOCS);  /* summed over both groups */
    ASSERT_STREQ(whole[0], "doc-0042");
    ASSERT_EQ(CLI(&r, addr, "--json", "search", "--collection", "docs", "--vectors", q, "-k", "10", "--offset", "10"), 0);
    json_hits(r.out, page, &np, &rank, &in);
    run_free(&r);
    ASSERT_EQ(np, 10);
    ASSERT_EQ(rank, 11);
    for (size_t i = 0; i < np; i++) ASSERT_STREQ(page[i], whole[10 + i]);
    /* Text: the copied document scores 4 (4 unit query rows), printed to 4 decimals. */
    ASSERT_EQ(CLI(&r, addr, "search", "--collection", "docs", "--vectors", q, "-k", "3"), 0);
    ASSERT_HAS(r.out, "   1  doc-0042  4.0000\n");
    ASSERT_TRUE(strstr(r.out, "4.000000") == NULL);
    ASSERT_HAS(r.out, "stages: coarse (r_q=1 r_c=1) 300 -> ");
    ASSERT_HAS(r.out, "; fanout (r_q=4 r_c=8) ");
    run_free(&r);
    CLI(&r, addr, "search", "--collection", "docs", "--vectors", q, "-k", "6000", "--offset", "5000");
    ASSERT_FAILS(&r, 1, "offset=5000");
    ASSERT_HAS(r.err, "--max-k");
    run_free(&r);

    /* ids: a page, the cursor on stderr, the next page from it */
    ASSERT_EQ(CLI(&r, addr, "ids", "--collection", "docs", "--limit", "7"), 0);
    ASSERT_STREQ(r.out, "doc-0000\ndoc-0001\ndoc-0002\ndoc-0003\ndoc-0004\ndoc-0005\ndoc-0006\n");
    ASSERT_STREQ(r.err, "next: --after doc-0006\n");
    run_free(&r);
    ASSERT_EQ(CLI(&r, addr, "ids", "--collection", "docs", "--limit", "2", "--after", "doc-0006"), 0);
    ASSERT_STREQ(r.out, "doc-0007\ndoc-0008\n");
    run_free(&r);
    ASSERT_EQ(CLI(&r, addr, "ids", "--collection", "docs", "--limit", "7", "--all"), 0);
    size_t lines = 0;
    for (const char *p = r.out; *p; p++) lines += *p == '\n';
    ASSERT_EQ(lines, NDOCS);
    ASSERT_HAS(r.out, "doc-0298\ndoc-0299\n");
    ASSERT_STREQ(r.err, "");
    run_free(&r);
    ASSERT_EQ(CLI(&r, addr, "--json", "ids", "--collection", "docs", "--after", "doc-0297"), 0);
    ASSERT_STREQ(r.out, "{\"ids\":[\"doc-0298\",\"doc-0299\"],\"next_after\":null}\n");
    run_free(&r);
    ASSERT_EQ(CLI(&r, addr, "--json", "ids", "--collection", "docs", "--limit", "2"), 0);
    ASSERT_STREQ(r.out, "{\"ids\":[\"doc-0000\",\"doc-0001\"],\"next_after\":\"doc-0001\"}\n");
    run_free(&r);
    CLI(&r, addr, "ids", "--collection", "docs", "--limit", "0");
    ASSERT_FAILS(&r, 2, "limit");
    run_free(&r);
    CLI(&r, addr, "ids", "--collection", "docs", "--limit", "10001");
    ASSERT_FAILS(&r, 2, "limit");
    run_free(&r);
    CLI(&r, addr, "ids", "--collection", "nope");
    ASSERT_FAILS(&r, 1, "nope");
    run_free(&r);
    CLI(&r, addr, "ids");
    ASSERT_FAILS(&r, 2, "--collection");
    run_free(&r);

    free(v);
    cluster_stop(&cl);
    me_test_rmdir(g_tmp);
}

/* Filters from the command line: create --fields, ingest with metadata,
 * search/count/ids/get --filter (expression, JSON and @FILE), collection
 * index for a field added later, delete --filter, and bad filters that
 * fail with the reason and change nothing. */
TEST(cli_filters) {
    setup("cli-filter");
    me_daemon_t d = { 0 };
    ASSERT_OK(me_daemon_start(&d, "metaembed-shard", "cli-filter"));
    const char *addr = d.endpoint;
    run_t r = { 0 };
    char npy[600], ids[600], meta[600], q[600], jf[600], err[512];
    float *v = malloc((size_t)NDOCS * R * D * sizeof *v);
    make_docs(v, 11);
    uint64_t shape[3] = { NDOCS, R, D }, qshape[2] = { 4, D };
    ASSERT_OK(me_npy_write(tmp_path(npy, sizeof npy, "emb.npy"), ME_DTYPE_F32, shape, 3, v, 1, err, sizeof err));
    ASSERT_OK(me_npy_write(tmp_path(q, sizeof q, "q.npy"), ME_DTYPE_F32, qshape, 2, v + 40 * R * D, 1, err, sizeof err));
    FILE *fi = fopen(tmp_path(ids, sizeof ids, "ids.txt"), "w"), *fm = fopen(tmp_path(meta, sizeof meta, "meta.jsonl"), "w");
    ASSERT_TRUE(fi && fm);
    for (int i = 0; i < NDOCS; i++) {
        fprintf(fi, "doc-%04d\n", i);
        fprintf(fm, "{\"cat\":\"c%d\",\"year\":%d,\"tags\":[%s],\"even\":%s}\n", i % 5, 2000 + i % 30,
                i % 4 == 0 ? "\"x\",\"y\"" : "\"y\"", i % 2 ? "false" : "true");
    }
    fclose(fi);
    fclose(fm);
    ASSERT_EQ(CLI(&r, addr, "collection", "create", "docs", "--dim", "16", "--max-doc-vectors", "8",
                  "--max-query-vectors", "8", "--dtype", "f32", "--fields", "cat:keyword,tags:keyword,year:integer"), 0);
    ASSERT_OUT(&r, "fields cat:keyword,tags:keyword,year:integer");
    ASSERT_EQ(CLI(&r, addr, "ingest", "--collection", "docs", "--vectors", npy, "--ids", ids, "--meta", meta), 0);
    run_free(&r);
    ASSERT_EQ(CLI(&r, addr, "collection", "list"), 0);
    ASSERT_OUT(&r, "FIELDS", "cat:keyword,tags:keyword,year:integer");

    /* doc-0040: cat c0, year 2010, tags x y. Its own query finds it first
     * under a filter it passes; every hit passes the filter. */
    ASSERT_EQ(CLI(&r, addr, "--json", "search", "--collection", "docs", "--vectors", q, "-k", "50", "--metadata",
                  "--filter", "cat=c0 AND year>=2010"), 0);
    ASSERT_HAS(r.out, "\"id\":\"doc-0040\"");
    size_t hits = 0;
    for (const char *p = r.out; (p = strstr(p, "\"cat\":\"c0\"")); p++) hits++;
    ASSERT_TRUE(strstr(r.out, "\"cat\":\"c1\"") == NULL && strstr(r.out, "\"year\":2009") == NULL);
    run_free(&r);
    /* cat c0 and year >= 2010: i % 5 == 0 and i % 30 >= 10 -> 40 of 300. */
    ASSERT_EQ(hits, 40);
    ASSERT_EQ(CLI(&r, addr, "count", "--collection", "docs", "--filter", "cat=c0 AND year>=2010"), 0);
    ASSERT_OUT(&r, "40\n");
    ASSERT_EQ(CLI(&r, addr, "--json", "count", "--collection", "docs"), 0);
    ASSERT_OUT(&r, "\"count\":300");
    /* The same filter as JSON, from a file. */
    write_text(tmp_path(jf, sizeof jf, "f.json"),
               "{\"must\": [{\"field\": \"cat\", \"match\": \"c0\"}, {\"field\": \"year\", \"range\": {\"gte\": 2010}}]}");
    char at[610];
    snprintf(at, sizeof at, "@%s", jf);
    ASSERT_EQ(CLI(&r, addr, "count", "--collection", "docs", "--filter", at), 0);
    ASSERT_OUT(&r, "40\n");
    ASSERT_EQ(CLI(&r, addr, "ids", "--collection", "docs", "--filter", "tags=x AND year<2003"), 0);
    /* i % 4 == 0 and i % 30 < 3 */
    ASSERT_STREQ(r.out, "doc-0000\ndoc-0032\ndoc-0060\ndoc-0092\ndoc-0120\ndoc-0152\ndoc-0180\ndoc-0212\ndoc-0240\n"
                        "doc-0272\n");
    run_free(&r);
    ASSERT_EQ(CLI(&r, addr, "get", "--collection", "docs", "--filter", "tags=x AND year<2003", "--limit", "2"), 0);
    ASSERT_HAS(r.out, "doc-0000  {");
    ASSERT_HAS(r.out, "doc-0032  {");
    ASSERT_TRUE(strstr(r.out, "doc-0060") == NULL);
    ASSERT_HAS(r.err, "--limit");
    run_free(&r);

    /* A field added later covers the stored documents. */
    CLI(&r, addr, "count", "--collection", "docs", "--filter", "even=true");
    ASSERT_FAILS(&r, 1, "not indexed");
    run_free(&r);
    ASSERT_EQ(CLI(&r, addr, "collection", "index", "docs", "even:bool"), 0);
    ASSERT_OUT(&r, "300 of 300 documents");
    ASSERT_EQ(CLI(&r, addr, "count", "--collection", "docs", "--filter", "even=true AND NOT cat IN (c1, c3)"), 0);
    ASSERT_OUT(&r, "90\n");

    /* Bad filters: the reason, exit 1, nothing changed. */
    CLI(&r, addr, "search", "--collection", "docs", "--vectors", q, "--filter", "year>=");
    ASSERT_FAILS(&r, 1, "expected a value");
    run_free(&r);
    CLI(&r, addr, "search", "--collection", "docs", "--vectors", q, "--filter", "cat>c1");
    ASSERT_FAILS(&r, 1, "expected a number");
    run_free(&r);
    CLI(&r, addr, "delete", "--collection", "docs", "--filter", "colour=red", "--yes");
    ASSERT_FAILS(&r, 1, "not indexed");
    run_free(&r);
    CLI(&r, addr, "delete", "--collection", "docs", "doc-0001", "--filter", "cat=c1");
    ASSERT_FAILS(&r, 2, "not both");
    run_free(&r);
    CLI(&r, addr, "count", "--collection", "docs", "--filter", "@/nonexistent/f.json");
    ASSERT_FAILS(&r, 1, "cannot read");
    run_free(&r);

    ASSERT_EQ(CLI(&r, addr, "delete", "--collection", "docs", "--filter", "cat=c4", "--yes"), 0);
    ASSERT_OUT(&r, "deleted 60 documents");
    ASSERT_EQ(CLI(&r, addr, "count", "--collection", "docs"), 0);
    ASSERT_OUT(&r, "240\n");
    free(v);
    me_daemon_free(&d);
    me_test_rmdir(g_tmp);
}
