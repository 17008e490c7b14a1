/* `metaembed train`, `eval` and `encode` on a slice of the real data: a
 * tiny model's every group loss falls, it retrieves far above chance on
 * held-out (dev) queries, and its embeddings go into a real shard through
 * `metaembed ingest`. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/npy.h"
#include "encoder/dataset.h"
#include "tests/daemon.h"
#include "tests/harness.h"

enum { SLICE = 3000 };

/* Writes the first SLICE records of the real data as JSON lines. */
static int write_slice(const char *path) {
    char data[1024], err[256];
    if (me_dataset_locate(NULL, data, sizeof data) != 0) return -1;
    me_dataset_t *ds;
    if (me_dataset_load(data, 0, &ds, err, sizeof err) != 0) return -1;
    FILE *f = fopen(path, "w");
    me_json_writer_t w;
    me_json_writer_init_file(&w, f);
    for (size_t i = 0; i < ds->n && i < SLICE; i++) {
        const me_datarec_t *r = &ds->recs[i];
        me_json_obj_begin(&w, NULL);
        me_json_put_strn(&w, "id", r->id, r->id_len);
        me_json_put_str(&w, "split", me_split_name(r->split));
        me_json_put_strn(&w, "query", r->query, r->query_len);
        me_json_put_strn(&w, "text", r->text, r->text_len);
        me_json_obj_end(&w);
        me_json_write_bytes(&w, "\n", 1);
    }
    int rc = me_json_writer_error(&w);
    me_json_writer_free(&w);
    fclose(f);
    me_dataset_free(ds);
    return rc;
}

/* The (r_q, r_c) losses on a "step N/M ..." log line. */
static int parse_losses(const char *line, double *loss, int max) {
    int n = 0;
    const char *p = strstr(line, "loss");
    while (p && n < max && (p = strchr(p, ')')) != NULL) {
        loss[n++] = atof(p + 1);
        p++;
    }
    return n;
}

#define run me_test_run_capture

/* Every test here: a scratch dir holding the real-data slice, and the
 * metaembed binary's path. */
typedef struct {
    char *dir;
    char slice[600], bin[512];
} setup_t;

/* 0, or -1 after saying so when the real data is not there (the test is
 * then skipped, as without METAEMBED_DATA it cannot run). */
static int setup(setup_t *s, const char *tag) {
    s->dir = me_test_tmpdir(tag);
    snprintf(s->slice, sizeof s->slice, "%s/slice.jsonl", s->dir);
    me_test_bin("metaembed", s->bin, sizeof s->bin);
    if (write_slice(s->slice) == 0) return 0;
    fprintf(stderr, "    real data not found: skipped (set METAEMBED_DATA)\n");
    me_test_rmdir(s->dir);
    free(s->dir);
    return -1;
}

static void teardown(setup_t *s) {
    me_test_rmdir(s->dir);
    free(s->dir);
}

/* `metaembed train` of a tiny model (1 layer, width 32, dim 16, 2 query
 * and 4 document vectors) from setup `su`'s slice into `out`, then further
 * flags. */
#define TINY_TRAIN(su, out, steps, ...)                                                                       \
    { (su).bin, "train", "--data", (su).slice, "--out", out, "--steps", steps, "--batch", "8", "--layers", "1", \
      "--width", "32", "--heads", "2", "--dim", "16", "--max-text", "32", "--meta-q", "2", "--meta-c", "4",   \
      "--groups", "1x1,2x4", "--vocab", "1000", __VA_ARGS__, NULL }

TEST(model_cli_train_eval_encode_ingest_on_real_slice) {
    setup_t fx;
    if (setup(&fx, "modelcli") != 0) return;
    char *dir = fx.dir, *slice = fx.slice, *bin = fx.bin;
    char model[600], npy[600], ids[600];
    snprintf(model, sizeof model, "%s/tiny.safetensors", dir);
    snprintf(npy, sizeof npy, "%s/emb.npy", dir);
    snprintf(ids, sizeof ids, "%s/ids.txt", dir);
    char *out, *err;
    char *train[] = { bin, "train", "--data", slice, "--out", model, "--steps", "300", "--batch", "16",
                      "--layers", "1", "--width", "64", "--heads", "2", "--dim", "32", "--max-text", "48",
                      "--meta-q", "4", "--meta-c", "8", "--groups", "1x1,2x4,4x8", "--vocab", "2000",
                      "--tau", "0.05", "--lr", "3e-3", "--warmup", "20", "--threads", "2", NULL };
    ASSERT_EQ(run(train, dir, "train", &out, &err), 0);
    /* Every group's loss falls from the first logged window to the last. */
    double first[3], last[3];
    char *l1 = strstr(err, "step 50/300"), *l2 = strstr(err, "step 300/300");
    ASSERT_TRUE(l1 && l2);
    ASSERT_EQ(parse_losses(l1, first, 3), 3);
    ASSERT_EQ(parse_losses(l2, last, 3), 3);
    for (int g = 0; g < 3; g++) {
        fprintf(stderr, "    group %d loss %.3f -> %.3f\n", g, first[g], last[g]);
        ASSERT_TRUE(last[g] < 0.8 * first[g]);
    }
    free(out);
    free(err);

    /* Held-out queries (dev) against the slice's texts: far above chance. */
    char *eval[] = { bin, "--json", "eval", "--model", model, "--data", slice, "--split", "dev", "--threads", "2",
                     "--binary", NULL };
    ASSERT_EQ(run(eval, dir, "eval", &out, &err), 0);
    me_json_doc_t *doc;
    me_json_error_t jerr;
    ASSERT_OK(me_json_parse(out, strlen(out), &doc, &jerr));
    const me_json_t *root = me_json_root(doc), *budgets = me_json_get(root, "budgets");
    int64_t ndocs, nq;
    ASSERT_OK(me_json_int64(me_json_get(root, "documents"), &ndocs));
    ASSERT_OK(me_json_int64(me_json_get(root, "queries"), &nq));
    ASSERT_EQ(ndocs, SLICE);
    ASSERT_TRUE(nq >= 30);
    ASSERT_EQ(me_json_len(budgets), 3);  /* (16,64) and (8,16) exceed this model's 4 and 8 vectors */
    for (size_t b = 0; b < me_json_len(budgets); b++) {
        double r10;
        ASSERT_OK(me_json_num(me_json_get(me_json_at(budgets, b), "recall_at_10"), &r10));
        fprintf(stderr, "    budget %zu: recall@10 %.3f (chance %.4f)\n", b, r10, 10.0 / SLICE);
        ASSERT_TRUE(r10 > 20 * 10.0 / SLICE);
    }
    /* --binary: the same budgets over 1-bit documents, r_c x D / 8 bytes each, still above chance. */
    const me_json_t *bin_rows = me_json_get(root, "binary_budgets");
    ASSERT_EQ(me_json_len(bin_rows), 3);
    static const int64_t rcs[3] = { 1, 4, 8 };
    for (size_t b = 0; b < me_json_len(bin_rows); b++) {
        double r10;
        int64_t bytes;
        ASSERT_OK(me_json_num(me_json_get(me_json_at(bin_rows, b), "recall_at_10"), &r10));
        ASSERT_OK(me_json_int64(me_json_get(me_json_at(bin_rows, b), "index_bytes_per_doc"), &bytes));
        fprintf(stderr, "    1-bit budget %zu: recall@10 %.3f, %lld bytes/doc\n", b, r10, (long long)bytes);
        ASSERT_EQ(bytes, rcs[b] * 32 / 8);
        ASSERT_TRUE(r10 > 3 * 10.0 / SLICE);  /* 32 bits a vector on a tiny model: above chance, far below f16 */
    }
    me_json_free(doc);
    free(out);
    free(err);

    /* encode → .npy [N, 8, 32] f16 + ids → ingest into a real shard. */
    char *enc[] = { bin, "encode", "--model", model, "--input", slice, "--out", npy, "--ids", ids, NULL };
    ASSERT_EQ(run(enc, dir, "encode", &out, &err), 0);
    free(out);
    free(err);
    me_npy_t a;
    char msg[256];
    ASSERT_OK(me_npy_open(&a, npy, msg, sizeof msg));
    ASSERT_EQ(a.ndim, 3);
    ASSERT_EQ(a.shape[0], SLICE);
    ASSERT_EQ(a.shape[1], 8);
    ASSERT_EQ(a.shape[2], 32);
    me_npy_close(&a);
    me_daemon_t d = { 0 };
    ASSERT_OK(me_daemon_start(&d, "metaembed-shard", "modelshard"));
    char *create[] = { bin, "--addr", d.endpoint, "collection", "create", "deb", "--dim", "32", "--max-doc-vectors",
                       "8", "--max-query-vectors", "4", NULL };
    ASSERT_EQ(run(create, dir, "create", &out, &err), 0);
    free(out);
    free(err);
    char *ingest[] = { bin, "--addr", d.endpoint, "ingest", "--collection", "deb", "--vectors", npy, "--ids", ids, NULL };
    ASSERT_EQ(run(ingest, dir, "ingest", &out, &err), 0);
    free(out);
    free(err);
    me_client_t *c = me_daemon_client(&d);
    ASSERT_TRUE(c != NULL);
    me_collection_info_t *info;
    size_t n;
    me_status_t st;
    ASSERT_OK(me_client_list_collections(c, &info, &n, &st));
    /* The data has a few duplicate ids (see encoder/dataset.h): upserts keep one each. */
    ASSERT_TRUE(info[0].documents > SLICE - 50 && info[0].documents <= SLICE);
    free(info);
    me_client_close(c);
    me_daemon_free(&d);
    teardown(&fx);
}

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "encoder/weights.h"

/* Kill -9 a training run after its first checkpoint, resume it, and get
 * bit for bit the model an uninterrupted run gives. */
TEST(model_cli_train_resumes_exactly_after_kill9) {
    setup_t fx;
    if (setup(&fx, "resume") != 0) return;
    char a[600], b[600], ckpt[700], log[700];
    snprintf(a, sizeof a, "%s/a.safetensors", fx.dir);
    snprintf(b, sizeof b, "%s/b.safetensors", fx.dir);
    snprintf(ckpt, sizeof ckpt, "%s.ckpt", b);
    snprintf(log, sizeof log, "%s/part.log", fx.dir);
#define TRAIN_ARGS(out, ...) TINY_TRAIN(fx, out, "60", "--checkpoint-every", "5", "--threads", "2", __VA_ARGS__)
    char *full[] = TRAIN_ARGS(a, "--seed=7");
    char *out, *err;
    ASSERT_EQ(run(full, fx.dir, "full", &out, &err), 0);
    free(out);
    free(err);
    char *part[] = TRAIN_ARGS(b, "--seed=7");
    pid_t pid = me_test_spawn(part, log);
    struct stat stt;
    double t0 = me_test_now_ms();
    while (stat(ckpt, &stt) != 0 && me_test_now_ms() - t0 < 60000) usleep(20000);
    me_test_stop(pid, 1);
    ASSERT_TRUE(stat(ckpt, &stt) == 0);
    ASSERT_TRUE(stat(b, &stt) != 0);  /* it died before finishing */
    /* The resumed run gets the same flags (the seed too) plus --resume. */
    char *resume2[] = TRAIN_ARGS(b, "--seed=7", "--resume");
    ASSERT_EQ(run(resume2, fx.dir, "resume", &out, &err), 0);
    ASSERT_TRUE(strstr(err, "resuming from") != NULL);
    free(out);
    free(err);
    me_model_t *ma, *mb;
    char msg[300];
    ASSERT_OK(me_weights_load(a, 0, &ma, NULL, NULL, NULL, 0, msg, sizeof msg));
    ASSERT_OK(me_weights_load(b, 0, &mb, NULL, NULL, NULL, 0, msg, sizeof msg));
    size_t na, nb;
    float *pa = me_model_param_data(ma, &na), *pb = me_model_param_data(mb, &nb);
    ASSERT_EQ(na, nb);
    ASSERT_TRUE(memcmp(pa, pb, na * sizeof *pa) == 0);
    me_model_free(ma);
    me_model_free(mb);
    teardown(&fx);
#undef TRAIN_ARGS
}

/* --init continues from a model file: its tokenizer and shape (the shape
 * flags are ignored), new weights after the steps; with BM25-mined
 * negatives and mean scores. A missing --init file is a usage error. */
TEST(model_cli_train_init_continues_from_a_model) {
    setup_t fx;
    if (setup(&fx, "init") != 0) return;
    char a[600], b[600];
    snprintf(a, sizeof a, "%s/a.safetensors", fx.dir);
    snprintf(b, sizeof b, "%s/b.safetensors", fx.dir);
    char *first[] = TINY_TRAIN(fx, a, "20", "--threads", "1");
    char *out, *err;
    ASSERT_EQ(run(first, fx.dir, "first", &out, &err), 0);
    free(out);
    free(err);
    char *more[] = { fx.bin, "train", "--data", fx.slice, "--out", b, "--steps", "10", "--batch", "8",
                     "--init", a, "--negatives", "bm25", "--score", "mean", "--width", "64", "--threads", "1",
                     "--groups", "1x1,2x4", NULL };
    ASSERT_EQ(run(more, fx.dir, "more", &out, &err), 0);
    ASSERT_TRUE(strstr(err, "starting from") != NULL);
    ASSERT_TRUE(strstr(err, "mined with BM25") != NULL);
    ASSERT_TRUE(strstr(err, "width 32") != NULL);   /* the model's shape, not --width 64 */
    free(out);
    free(err);
    me_model_t *ma, *mb;
    char *ta, *tb, msg[300];
    ASSERT_OK(me_weights_load(a, 0, &ma, &ta, NULL, NULL, 0, msg, sizeof msg));
    ASSERT_OK(me_weights_load(b, 0, &mb, &tb, NULL, NULL, 0, msg, sizeof msg));
    ASSERT_STREQ(ta, tb);
    size_t na, nb;
    float *pa = me_model_param_data(ma, &na), *pb = me_model_param_data(mb, &nb);
    ASSERT_EQ(na, nb);
    ASSERT_TRUE(memcmp(pa, pb, na * sizeof *pa) != 0);
    me_model_free(mb);
    free(tb);
    /* With a learning rate of ~0 the weights stay A's: they were loaded,
     * not drawn afresh. */
    char *still[] = { fx.bin, "train", "--data", fx.slice, "--out", b, "--steps", "2", "--batch", "8", "--init", a,
                      "--lr", "1e-12", "--groups", "1x1,2x4", "--threads", "1", NULL };
    ASSERT_EQ(run(still, fx.dir, "still", &out, &err), 0);
    free(out);
    free(err);
    ASSERT_OK(me_weights_load(b, 0, &mb, &tb, NULL, NULL, 0, msg, sizeof msg));
    pb = me_model_param_data(mb, &nb);
    double maxdiff = 0;
    for (size_t i = 0; i < na; i++) maxdiff = fmax(maxdiff, fabs((double)pa[i] - pb[i]));
    ASSERT_TRUE(maxdiff < 1e-6);
    me_model_free(ma);
    me_model_free(mb);
    free(ta);
    free(tb);
    char missing[700];
    snprintf(missing, sizeof missing, "%s/none.safetensors", fx.dir);
    char *bad[] = { fx.bin, "train", "--data", fx.slice, "--out", b, "--init", missing, NULL };
    ASSERT_EQ(run(bad, fx.dir, "bad", &out, &err), 2);
    ASSERT_TRUE(strstr(err, "--init") != NULL);
    free(out);
    free(err);
    /* The default groups need 16 and 64 meta tokens; this model has 2 and 4. */
    char *wide[] = { fx.bin, "train", "--data", fx.slice, "--out", b, "--init", a, "--steps", "1", NULL };
    ASSERT_EQ(run(wide, fx.dir, "wide", &out, &err), 1);
    ASSERT_TRUE(strstr(err, "exceeds the model's meta tokens (2 query, 4 document)") != NULL);
    free(out);
    free(err);
    teardown(&fx);
}

#include <math.h>

#include "common/wire.h"

/* metaembed-encoder serves Encode: shapes, unit norms, the same vectors as
 * `metaembed encode`, determinism, long texts truncated, bad requests
 * refused with a clear status while it keeps serving. */
TEST(encoder_daemon_encode_matches_cli_and_refuses_bad_input) {
    setup_t fx;
    if (setup(&fx, "encd") != 0) return;
    char *dir = fx.dir, *bin = fx.bin;
    char model[600], npy[600], input[600];
    snprintf(model, sizeof model, "%s/tiny.safetensors", dir);
    snprintf(npy, sizeof npy, "%s/q.npy", dir);
    snprintf(input, sizeof input, "%s/in.jsonl", dir);
    char *train[] = TINY_TRAIN(fx, model, "20", "--threads", "2");
    char *out, *err;
    ASSERT_EQ(run(train, dir, "train", &out, &err), 0);
    free(out);
    free(err);
    const char *texts[3] = { "Real-time strategy game of ancient warfare", "", "cross-distribution packaging system" };
    FILE *f = fopen(input, "w");
    for (int i = 0; i < 3; i++) fprintf(f, "{\"query\":\"%s\"}\n", texts[i]);
    fclose(f);
    char *enc[] = { bin, "encode", "--model", model, "--input", input, "--side", "query", "--f32", "--out", npy, NULL };
    ASSERT_EQ(run(enc, dir, "encode", &out, &err), 0);
    free(out);
    free(err);

    char model_arg[700];
    snprintf(model_arg, sizeof model_arg, "--model=%s", model);
    me_daemon_t d = { .no_data_dir = 1, .extra = { model_arg, "--max-batch=4" }, .nextra = 2 };
    ASSERT_OK(me_daemon_start(&d, "metaembed-encoder", "encoder"));
    me_client_t *c = me_daemon_client(&d);
    ASSERT_TRUE(c != NULL);
    me_status_t st;
    float *v, *v2;
    int rows, dim;
    ASSERT_OK(me_client_encode(c, texts, 3, 1, &v, &rows, &dim, &st));
    ASSERT_EQ(rows, 2);
    ASSERT_EQ(dim, 16);
    me_npy_t a;
    char msg[256];
    ASSERT_OK(me_npy_open(&a, npy, msg, sizeof msg));
    ASSERT_EQ(a.shape[0], 3);
    float *cli = malloc(3 * 2 * 16 * sizeof *cli);
    me_npy_read_f32(&a, 0, 3 * 2 * 16, cli);
    me_npy_close(&a);
    for (int i = 0; i < 3 * 2 * 16; i++) ASSERT_NEAR(v[i], cli[i], 1e-5);
    for (int r = 0; r < 6; r++) {
        double s = 0;
        for (int k = 0; k < 16; k++) s += (double)v[r * 16 + k] * v[r * 16 + k];
        ASSERT_NEAR(s, 1.0, 1e-4);
    }
    ASSERT_OK(me_client_encode(c, texts, 3, 1, &v2, &rows, &dim, &st));
    ASSERT_TRUE(memcmp(v, v2, 3 * 2 * 16 * sizeof *v) == 0);
    free(v);
    free(v2);
    free(cli);
    /* Document side: 4 vectors; a 1 MB text is truncated, not refused. */
    char *huge = malloc(1 << 20);
    for (int i = 0; i < (1 << 20) - 1; i++) huge[i] = (char)('a' + i % 26 - (i % 7 == 0 ? 'a' - ' ' : 0));
    huge[(1 << 20) - 1] = 0;
    const char *one[1] = { huge };
    ASSERT_OK(me_client_encode(c, one, 1, 0, &v, &rows, &dim, &st));
    ASSERT_EQ(rows, 4);
    free(v);
    free(huge);
    /* Refusals. */
    ASSERT_EQ(me_client_encode(c, texts, 0, 1, &v, &rows, &dim, &st), ME_CODE_INVALID_ARGUMENT);
    ASSERT_TRUE(strstr(st.message, "empty batch") != NULL);
    const char *five[5] = { "a", "b", "c", "d", "e" };
    ASSERT_EQ(me_client_encode(c, five, 5, 1, &v, &rows, &dim, &st), ME_CODE_RESOURCE_EXHAUSTED);
    void *rep;
    size_t rlen;
    ASSERT_EQ(me_client_call(c, METAEMBED__METHOD__METHOD_ENCODE, "\x0a\x7f", 2, &rep, &rlen, &st), ME_CODE_INVALID_ARGUMENT);
    ASSERT_EQ(me_client_call(c, METAEMBED__METHOD__METHOD_SEARCH, "", 0, &rep, &rlen, &st), ME_CODE_UNIMPLEMENTED);
    ASSERT_OK(me_client_encode(c, texts, 1, 0, &v, &rows, &dim, &st));
    free(v);
    me_client_close(c);
    ASSERT_EQ(me_daemon_stop(&d, 0), 0);
    me_daemon_free(&d);
    teardown(&fx);
}
