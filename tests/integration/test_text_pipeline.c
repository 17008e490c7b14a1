/* Text in, text out: a cluster (coordinator, 2 shards, 2 encoders pulling
 * one ingest stream) takes JSON lines through `metaembed ingest
 * corpus.jsonl`, survives an encoder killed mid-ingest, stores every
 * document once, resumes without redoing work, and answers text searches. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/json.h"
#include "encoder/dataset.h"
#include "tests/cluster.h"
#include "tests/harness.h"

enum { NDOCS = 2000 };

#define run_cli me_test_run_capture

TEST(text_pipeline_ingest_kill_encoder_resume_search) {
    char data[1024], msg[256];
    if (me_dataset_locate(NULL, data, sizeof data) != 0) {
        fprintf(stderr, "    real data not found: skipped (set METAEMBED_DATA)\n");
        return;
    }
    me_dataset_t *ds;
    ASSERT_OK(me_dataset_load(data, 0, &ds, msg, sizeof msg));
    char *dir = me_test_tmpdir("textpipe");
    char corpus[600], slice[600], model[600], bin[512], badfile[600];
    snprintf(corpus, sizeof corpus, "%s/corpus.jsonl", dir);
    snprintf(badfile, sizeof badfile, "%s/bad.jsonl", dir);
    snprintf(slice, sizeof slice, "%s/train.jsonl", dir);
    snprintf(model, sizeof model, "%s/tiny.safetensors", dir);
    /* The corpus: NDOCS records with unique ids (real splits, so its test
     * synopses serve as queries); bad.jsonl: two malformed lines and one good. */
    FILE *f = fopen(corpus, "w"), *fs = fopen(slice, "w");
    me_json_writer_t w, ws;
    me_json_writer_init_file(&w, f);
    me_json_writer_init_file(&ws, fs);
    size_t written = 0;
    for (size_t i = 0; i < ds->n && written < NDOCS; i++) {
        const me_datarec_t *r = &ds->recs[i];
        if (me_dataset_find(ds, r->id) != (long)i) continue;  /* the first of a duplicated id only */
        me_json_obj_begin(&w, NULL);
        me_json_put_strn(&w, "id", r->id, r->id_len);
        me_json_put_strn(&w, "text", r->text, r->text_len);
        me_json_put_str(&w, "split", me_split_name(r->split));
        me_json_put_strn(&w, "query", r->query, r->query_len);
        me_json_obj_end(&w);
        me_json_write_bytes(&w, "\n", 1);
        me_json_obj_begin(&ws, NULL);
        me_json_put_strn(&ws, "id", r->id, r->id_len);
        me_json_put_str(&ws, "split", "train");
        me_json_put_strn(&ws, "query", r->query, r->query_len);
        me_json_put_strn(&ws, "text", r->text, r->text_len);
        me_json_obj_end(&ws);
        me_json_write_bytes(&ws, "\n", 1);
        written++;
    }
    me_json_writer_free(&w);
    me_json_writer_free(&ws);
    fclose(f);
    fclose(fs);
    me_dataset_free(ds);
    f = fopen(badfile, "w");
    fputs("{\"id\": 3, \"text\": \"x\"}\nnot json at all\n{\"id\": \"extra-doc\", \"text\": \"\"}\n", f);
    fclose(f);
    me_test_bin("metaembed", bin, sizeof bin);
    char *out, *err;
    char *train[] = { bin, "train", "--data", slice, "--out", model, "--steps", "150", "--batch", "16", "--layers", "1",
                      "--width", "48", "--heads", "2", "--dim", "32", "--max-text", "48", "--meta-q", "4", "--meta-c", "8",
                      "--groups", "1x1,2x4,4x8", "--vocab", "2000", "--tau", "0.05", "--lr", "3e-3", "--warmup", "20",
                      "--threads", "2", NULL };
    ASSERT_EQ(run_cli(train, dir, "train", &out, &err), 0);
    free(out);
    free(err);

    /* Shards, then encoders pulling from the stream, then the coordinator
     * whose map names the encoders. */
    cluster_t c = { 0 };
    char stream[CLUSTER_STREAM_MAX];
    me_daemon_t enc[2] = { 0 };
    ASSERT_OK(cluster_start_pipeline(&c, 2, model, enc, stream));
    /* --for-model takes D, R_c, R_q from the model file (32, 8, 4 here). */
    char *create[] = { bin, "--addr", c.coord.endpoint, "collection", "create", "deb", "--for-model", "--model", model,
                       NULL };
    ASSERT_EQ(run_cli(create, dir, "create", &out, &err), 0);
    ASSERT_TRUE(strstr(out, "dim 32, max-doc-vectors 8, max-query-vectors 4") != NULL);
    free(out);
    free(err);
    char *badcreate[] = { bin, "--addr", c.coord.endpoint, "collection", "create", "x", "--for-model", "--model",
                          model, "--dim", "16", NULL };
    ASSERT_EQ(run_cli(badcreate, dir, "badcreate", &out, &err), 2);
    ASSERT_TRUE(strstr(err, "disagrees with") != NULL);
    free(out);
    free(err);
    /* A collection of another dim: the encoder's refusal names the create command that fits. */
    char *wrong[] = { bin, "--addr", c.coord.endpoint, "collection", "create", "wrongdim", "--dim", "16", NULL };
    ASSERT_EQ(run_cli(wrong, dir, "wrong", &out, &err), 0);
    free(out);
    free(err);
    char *wrongi[] = { bin, "--addr", c.coord.endpoint, "ingest", badfile, "--collection", "wrongdim",
                       "--stream", stream, "--wait-s", "20", NULL };
    ASSERT_EQ(run_cli(wrongi, dir, "wrongi", &out, &err), 1);
    ASSERT_TRUE(strstr(err, "does not match the collection's dim 16") != NULL);
    ASSERT_TRUE(strstr(err, "'metaembed collection create NAME --for-model' (or '--dim 32 --max-doc-vectors 8 "
                            "--max-query-vectors 4')") != NULL);
    free(out);
    free(err);

    /* Ingest, killing encoder 0 once part of the corpus is stored. */
    char *ingest[] = { bin, "--addr", c.coord.endpoint, "--json", "ingest", "deb_placeholder", "--collection", "deb",
                       "--stream", stream, "--resend-s", "3", NULL };
    ingest[5] = corpus;
    char log[700];
    snprintf(log, sizeof log, "%s/ingest.log", dir);
    pid_t pid = me_test_spawn(ingest, log);
    me_client_t *cli = me_daemon_client(&c.coord);
    ASSERT_TRUE(cli != NULL);
    me_status_t st;
    me_stats_t stats;
    for (int i = 0; i < 600; i++) {
        ASSERT_OK(me_client_stats(cli, "deb", &stats, &st));
        uint64_t docs = stats.collections[0].documents;
        me_stats_free(&stats);
        if (docs >= NDOCS / 4) break;
        usleep(50000);
    }
    me_daemon_stop(&enc[0], 1);
    int status = me_test_wait(pid);
    char *text = me_test_slurp(log);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) fprintf(stderr, "    ingest: %s\n", text);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    free(text);
    ASSERT_OK(me_client_stats(cli, "deb", &stats, &st));
    ASSERT_EQ(stats.collections[0].documents, NDOCS);  /* every document, once */
    me_stats_free(&stats);

    /* Running it again resumes: nothing left to do. */
    ASSERT_EQ(run_cli(ingest, dir, "again", &out, &err), 0);
    me_json_doc_t *doc;
    ASSERT_OK(me_json_parse(out, strlen(out), &doc, NULL));
    int64_t stored, already;
    ASSERT_OK(me_json_int64(me_json_get(me_json_root(doc), "stored"), &stored));
    ASSERT_OK(me_json_int64(me_json_get(me_json_root(doc), "already_stored"), &already));
    ASSERT_EQ(stored, 0);
    ASSERT_EQ(already, NDOCS);
    me_json_free(doc);
    free(out);
    free(err);

    /* The same ranking as the offline evaluation of the same documents:
     * exact search through the cluster vs `metaembed eval` on the file. */
    char *ceval[] = { bin, "--addr", c.coord.endpoint, "--json", "eval", "--cluster", "--exact", "--collection", "deb",
                      "--data", corpus, "--split", "test", NULL };
    char *oeval[] = { bin, "--json", "eval", "--model", model, "--data", corpus, "--split", "test", NULL };
    char *cout, *oout;
    ASSERT_EQ(run_cli(ceval, dir, "ceval", &cout, &err), 0);
    free(err);
    ASSERT_EQ(run_cli(oeval, dir, "oeval", &oout, &err), 0);
    free(err);
    me_json_doc_t *cd, *od;
    ASSERT_OK(me_json_parse(cout, strlen(cout), &cd, NULL));
    ASSERT_OK(me_json_parse(oout, strlen(oout), &od, NULL));
    const me_json_t *cb = me_json_get(me_json_root(cd), "budgets"), *ob = me_json_get(me_json_root(od), "budgets");
    int64_t nq;
    ASSERT_OK(me_json_int64(me_json_get(me_json_root(cd), "queries"), &nq));
    ASSERT_TRUE(nq >= 50);
    ASSERT_EQ(me_json_len(cb), 3);
    ASSERT_EQ(me_json_len(ob), 3);
    for (size_t b = 0; b < 3; b++) {
        double cr, orr, cm, om;
        ASSERT_OK(me_json_num(me_json_get(me_json_at(cb, b), "recall_at_10"), &cr));
        ASSERT_OK(me_json_num(me_json_get(me_json_at(ob, b), "recall_at_10"), &orr));
        ASSERT_OK(me_json_num(me_json_get(me_json_at(cb, b), "mrr_at_10"), &cm));
        ASSERT_OK(me_json_num(me_json_get(me_json_at(ob, b), "mrr_at_10"), &om));
        fprintf(stderr, "    budget %zu: recall@10 cluster %.4f offline %.4f (chance %.4f)\n", b, cr, orr, 10.0 / NDOCS);
        ASSERT_TRUE(cr > 20 * 10.0 / NDOCS);
        /* Ties may break differently (by id vs by position): allow one query. */
        ASSERT_NEAR(cr, orr, 1.0 / (double)nq + 1e-9);
        ASSERT_NEAR(cm, om, 1.0 / (double)nq + 1e-9);
    }
    me_json_free(cd);
    me_json_free(od);
    free(cout);
    free(oout);

    /* eval --cluster --mode lexical (one row: BM25 has no budget) and
     * hybrid (every budget) rank the answers far above chance. */
    const char *modes[] = { "lexical", "hybrid" };
    for (int mi = 0; mi < 2; mi++) {
        char *meval[] = { bin, "--addr", c.coord.endpoint, "--json", "eval", "--cluster", "--mode", (char *)modes[mi],
                          "--collection", "deb", "--data", corpus, "--split", "test", NULL };
        ASSERT_EQ(run_cli(meval, dir, modes[mi], &cout, &err), 0);
        free(err);
        ASSERT_OK(me_json_parse(cout, strlen(cout), &cd, NULL));
        cb = me_json_get(me_json_root(cd), "budgets");
        ASSERT_STREQ(me_json_str(me_json_get(me_json_root(cd), "mode")), modes[mi]);
        ASSERT_EQ(me_json_len(cb), mi ? 3 : 1);
        int64_t rq;
        ASSERT_OK(me_json_int64(me_json_get(me_json_at(cb, 0), "r_q"), &rq));
        ASSERT_EQ(rq, mi ? 1 : 0);  /* lexical: no budget */
        double cm;
        ASSERT_OK(me_json_num(me_json_get(me_json_at(cb, 0), "mrr_at_10"), &cm));
        fprintf(stderr, "    %s: MRR@10 %.4f through the cluster\n", modes[mi], cm);
        ASSERT_TRUE(cm > 20 * 10.0 / NDOCS);
        me_json_free(cd);
        free(cout);
    }

    /* With --strict a malformed line stops the run before anything is sent:
     * exit 1, the line named, nothing stored (not even the good line). */
    char *stricti[] = { bin, "--addr", c.coord.endpoint, "ingest", badfile, "--collection", "deb", "--stream", stream,
                        "--strict", NULL };
    ASSERT_EQ(run_cli(stricti, dir, "strict", &out, &err), 1);
    ASSERT_TRUE(strstr(err, "bad.jsonl:1: needs a non-empty string \"id\"") != NULL);
    ASSERT_TRUE(strstr(err, "--strict: nothing was sent") != NULL);
    free(out);
    free(err);
    ASSERT_OK(me_client_stats(cli, "deb", &stats, &st));
    ASSERT_EQ(stats.collections[0].documents, NDOCS);
    me_stats_free(&stats);

    /* Without it malformed lines are reported with their numbers and
     * skipped, the rest is stored, and the exit status (3) says so. */
    char *badi[] = { bin, "--addr", c.coord.endpoint, "ingest", badfile, "--collection", "deb", "--stream", stream, NULL };
    ASSERT_EQ(run_cli(badi, dir, "bad", &out, &err), 3);
    ASSERT_TRUE(strstr(err, "bad.jsonl:1: needs a non-empty string \"id\"") != NULL);
    ASSERT_TRUE(strstr(err, "bad.jsonl:2: not JSON") != NULL);
    ASSERT_TRUE(strstr(err, "2 malformed lines were skipped") != NULL);
    free(out);
    free(err);
    ASSERT_OK(me_client_stats(cli, "deb", &stats, &st));
    ASSERT_EQ(stats.collections[0].documents, NDOCS + 1);
    me_stats_free(&stats);

    /* A repeated id: the last line wins and the summary counts distinct ids;
     * metadata keeps arrays and nested objects as they were written. */
    char dupfile[600];
    snprintf(dupfile, sizeof dupfile, "%s/dup.jsonl", dir);
    f = fopen(dupfile, "w");
    fputs("{\"id\": \"dup-a\", \"text\": \"first\", \"tags\": [\"old\"]}\n"
          "{\"id\": \"dup-b\", \"text\": \"other\"}\n"
          "{\"id\": \"dup-a\", \"text\": \"second\", \"tags\": [\"x\", 2], \"src\": {\"deep\": [1, {\"z\": null}]}}\n", f);
    fclose(f);
    char *dupi[] = { bin, "--addr", c.coord.endpoint, "--json", "ingest", dupfile, "--collection", "deb",
                     "--stream", stream, NULL };
    ASSERT_EQ(run_cli(dupi, dir, "dup", &out, &err), 0);
    ASSERT_OK(me_json_parse(out, strlen(out), &doc, NULL));
    int64_t good, distinct, repeated;
    ASSERT_OK(me_json_int64(me_json_get(me_json_root(doc), "good_lines"), &good));
    ASSERT_OK(me_json_int64(me_json_get(me_json_root(doc), "distinct_ids"), &distinct));
    ASSERT_OK(me_json_int64(me_json_get(me_json_root(doc), "repeated_ids"), &repeated));
    ASSERT_OK(me_json_int64(me_json_get(me_json_root(doc), "stored"), &stored));
    ASSERT_EQ(good, 3);
    ASSERT_EQ(distinct, 2);
    ASSERT_EQ(repeated, 1);
    ASSERT_EQ(stored, 2);
    me_json_free(doc);
    free(out);
    free(err);
    char *geti[] = { bin, "--addr", c.coord.endpoint, "--json", "get", "--collection", "deb", "dup-a", NULL };
    ASSERT_EQ(run_cli(geti, dir, "get", &out, &err), 0);
    ASSERT_TRUE(strstr(out, "second") != NULL && strstr(out, "first") == NULL);
    /* Metadata is embedded as JSON (cli_json_meta), so it reads back as written, compactly. */
    ASSERT_TRUE(strstr(out, "\"tags\":[\"x\",2]") != NULL);
    ASSERT_TRUE(strstr(out, "\"src\":{\"deep\":[1,{\"z\":null}]}") != NULL);
    free(out);
    free(err);

    /* A text too long for the metadata limit (64 KiB): stored with its text
     * cut at a character boundary and flagged, not refused forever. */
    char bigfile[600];
    snprintf(bigfile, sizeof bigfile, "%s/big.jsonl", dir);
    f = fopen(bigfile, "w");
    fputs("{\"id\": \"big-doc\", \"text\": \"", f);
    for (int i = 0; i < 40000; i++) fputs("\xc3\xa9", f);  /* é: two bytes, so a blind cut could split one */
    fputs("\"}\n", f);
    fclose(f);
    char *bigi[] = { bin, "--addr", c.coord.endpoint, "ingest", bigfile, "--collection", "deb", "--stream", stream, NULL };
    ASSERT_EQ(run_cli(bigi, dir, "big", &out, &err), 0);
    ASSERT_TRUE(strstr(err, "big.jsonl:1: metadata of ") != NULL && strstr(err, "stored cut to") != NULL);
    free(out);
    free(err);
    char *getbig[] = { bin, "--addr", c.coord.endpoint, "--json", "get", "--collection", "deb", "big-doc", NULL };
    ASSERT_EQ(run_cli(getbig, dir, "getbig", &out, &err), 0);
    ASSERT_TRUE(strstr(out, "\"text_truncated\":true") != NULL);
    free(out);
    free(err);

    /* status: the coordinator's line counts the cluster's documents (it has
     * no disk of its own) and encoders show no document count. */
    char *stat[] = { bin, "--addr", c.coord.endpoint, "status", NULL };
    ASSERT_EQ(run_cli(stat, dir, "status", &out, &err), 0);
    ASSERT_TRUE(strstr(out, "on disk") == NULL);
    ASSERT_TRUE(strstr(out, " documents\n") != NULL);
    ASSERT_TRUE(strstr(out, "encoders") != NULL);
    {
        /* Every encoder row reads "-" in the DOCUMENTS column. */
        int rows = 0;
        for (const char *l = out; (l = strstr(l, "\nencoders")) != NULL; l++) {
            const char *eol = strchr(l + 1, '\n');
            char row[256];
            snprintf(row, sizeof row, "%.*s", (int)(eol ? eol - l - 1 : (long)strlen(l + 1)), l + 1);
            ASSERT_TRUE(strstr(row, " - ") != NULL);
            rows++;
        }
        ASSERT_TRUE(rows >= 1);
    }
    free(out);
    free(err);
    char *statj[] = { bin, "--addr", c.coord.endpoint, "--json", "status", NULL };
    ASSERT_EQ(run_cli(statj, dir, "statusj", &out, &err), 0);
    ASSERT_TRUE(strstr(out, "\"kind\":\"encoders\"") != NULL && strstr(out, "\"kind\":\"shards\"") != NULL);
    free(out);
    free(err);

    /* Text search through the coordinator and the surviving encoder. */
    char *search[] = { bin, "--addr", c.coord.endpoint, "--json", "search", "--collection", "deb",
                       "Real-time strategy game of ancient warfare", "-k", "5", NULL };
    ASSERT_EQ(run_cli(search, dir, "search", &out, &err), 0);
    ASSERT_OK(me_json_parse(out, strlen(out), &doc, NULL));
    const me_json_t *hits = me_json_get(me_json_at(me_json_get(me_json_root(doc), "queries"), 0), "hits");
    ASSERT_EQ(me_json_len(hits), 5);
    ASSERT_TRUE(me_json_str(me_json_get(me_json_get(me_json_at(hits, 0), "metadata"), "text")) != NULL);
    /* The coarse stage read every document of both groups. */
    const me_json_t *q0 = me_json_at(me_json_get(me_json_root(doc), "queries"), 0);
    int64_t docs_searched, coarse_in;
    ASSERT_OK(me_json_int64(me_json_get(q0, "documents"), &docs_searched));
    const me_json_t *coarse = me_json_at(me_json_get(q0, "stages"), 1);  /* after "encode" */
    ASSERT_STREQ(me_json_str(me_json_get(coarse, "stage")), "coarse");
    ASSERT_OK(me_json_int64(me_json_get(coarse, "in"), &coarse_in));
    ASSERT_EQ(coarse_in, docs_searched);
    me_json_free(doc);
    free(out);
    free(err);
    /* Text output: scores to 4 decimals and the stage line every query kind prints. */
    char *tsearch[] = { bin, "--addr", c.coord.endpoint, "search", "--collection", "deb",
                        "Real-time strategy game of ancient warfare", "-k", "3", NULL };
    ASSERT_EQ(run_cli(tsearch, dir, "tsearch", &out, &err), 0);
    const char *row1 = strstr(out, "\n     1  "), *stages = strstr(out, "  stages: encode in ");
    ASSERT_TRUE(row1 && stages);
    char id[300];
    double score;
    int decimals = 0;
    ASSERT_EQ(sscanf(row1, " 1 %299s %lf", id, &score), 2);
    const char *dot = strchr(strstr(row1, id) + strlen(id), '.');
    while (dot && dot[1 + decimals] >= '0' && dot[1 + decimals] <= '9') decimals++;
    ASSERT_EQ(decimals, 4);
    unsigned long long in = 0;
    const char *cs = strstr(stages, "; coarse (r_q=1 r_c=1) ");
    ASSERT_TRUE(cs && sscanf(cs, "; coarse (r_q=1 r_c=1) %llu -> ", &in) == 1);
    ASSERT_EQ(in, docs_searched);
    free(out);
    free(err);

    me_client_close(cli);
    cluster_stop(&c);
    me_daemon_free(&enc[0]);
    me_daemon_free(&enc[1]);
    me_test_rmdir(dir);
    free(dir);
}
