/* Lexical and hybrid search through real processes, on real documents
 * (the Debian descriptions): BM25 through a shard equals common/bm25 over
 * the same texts, through a replaced text, a delete, a restart and a
 * kill -9; hybrid through a 2-shard cluster equals the fusion recomputed
 * here from the cluster's own dense and lexical rankings; bad mode
 * arguments get INVALID_ARGUMENT and the shard keeps serving. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bm25.h"
#include "common/json.h"
#include "encoder/dataset.h"
#include "tests/cluster.h"
#include "tests/harness.h"

#define DIM 16
#define ROWS 4
#define NDOCS 300
#define NQ 6

typedef struct {
    char *ids[NDOCS], *texts[NDOCS], *queries[NQ];
    size_t n;
    float vecs[NDOCS][ROWS * DIM];
} corpus_t;

/* NDOCS real documents with distinct ids (every 10th without text: it
 * counts in N with length 0) and NQ real queries. 0, or -1 without data. */
static int corpus_load(corpus_t *cp) {
    char data[1024], msg[256];
    if (me_dataset_locate(NULL, data, sizeof data) != 0) return -1;
    me_dataset_t *ds;
    ASSERT_OK(me_dataset_load(data, 0, &ds, msg, sizeof msg));
    me_rng_t rng = { 21 };
    cp->n = 0;
    for (size_t i = 0; i < ds->n && cp->n < NDOCS; i++) {
        const me_datarec_t *r = &ds->recs[i];
        if (me_dataset_find(ds, r->id) != (long)i) continue;
        cp->ids[cp->n] = strndup(r->id, r->id_len);
        cp->texts[cp->n] = cp->n % 10 == 9 ? strdup("") : strndup(r->text, r->text_len);
        if (cp->n < NQ) cp->queries[cp->n] = strndup(r->query, r->query_len);
        for (int j = 0; j < ROWS * DIM; j++) cp->vecs[cp->n][j] = (float)me_rng_normal(&rng);
        cp->n++;
    }
    me_dataset_free(ds);
    ASSERT_EQ(cp->n, NDOCS);
    return 0;
}

static void corpus_free(corpus_t *cp) {
    for (size_t i = 0; i < cp->n; i++) { free(cp->ids[i]); free(cp->texts[i]); }
    for (int q = 0; q < NQ; q++) free(cp->queries[q]);
}

/* Upserts documents [from, to) with {"text": ...} metadata (none for an
 * empty text), in batches of 100. */
static void upsert(me_client_t *cli, corpus_t *cp, size_t from, size_t to) {
    me_doc_t docs[100];
    char *metas[100];
    for (size_t at = from; at < to; at += 100) {
        size_t m = to - at < 100 ? to - at : 100;
        for (size_t i = 0; i < m; i++) {
            size_t d = at + i;
            me_json_writer_t w;
            me_json_writer_init_buf(&w);
            me_json_obj_begin(&w, NULL);
            me_json_put_str(&w, "text", cp->texts[d]);
            me_json_obj_end(&w);
            size_t len;
            metas[i] = me_json_writer_take(&w, &len);
            me_json_writer_free(&w);
            docs[i] = (me_doc_t){ .id = cp->ids[d], .vectors = cp->vecs[d], .rows = ROWS,
                                  .metadata = cp->texts[d][0] ? metas[i] : NULL,
                                  .metadata_len = cp->texts[d][0] ? len : 0 };
        }
        me_status_t st;
        ASSERT_OK(me_client_upsert(cli, "c", docs, m, DIM, &st));
        for (size_t i = 0; i < m; i++) free(metas[i]);
    }
}

/* The BM25 score of every document (common/bm25 over the same texts). */
static void offline_bm25(const corpus_t *cp, const char *q, float *scores) {
    me_bm25_t *bm = me_bm25_build((const char *const *)cp->texts, NULL, cp->n, ME_BM25_K1, ME_BM25_B);
    ASSERT_TRUE(bm != NULL);
    me_bm25_score(bm, q, strlen(q), scores);
    me_bm25_free(bm);
}

static long find_id(const corpus_t *cp, const char *id) {
    for (size_t i = 0; i < cp->n; i++)
        if (!strcmp(cp->ids[i], id)) return (long)i;
    return -1;
}

static int cmp_desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* Lexical top 20 from the shard against the offline scores: every hit's
 * score is its document's, ranks follow the offline order (compared by
 * score, so ties at the cut do not matter), no matching document left out. */
static void check_lexical(me_client_t *cli, const corpus_t *cp, const char *q) {
    float *want = malloc(cp->n * sizeof *want), *sorted = malloc(cp->n * sizeof *sorted);
    offline_bm25(cp, q, want);
    memcpy(sorted, want, cp->n * sizeof *sorted);
    qsort(sorted, cp->n, sizeof *sorted, cmp_desc);
    size_t matched = 0;
    while (matched < cp->n && sorted[matched] > 0) matched++;
    me_search_opts_t o = { .k = 20, .mode = ME_MODE_LEXICAL, .lexical_text = q };
    me_results_t res;
    me_status_t st;
    ASSERT_OK(me_client_search(cli, "c", NULL, 0, DIM, &o, &res, &st));
    ASSERT_EQ(res.n, matched < 20 ? matched : 20);
    for (size_t i = 0; i < res.n; i++) {
        long d = find_id(cp, res.hits[i].id);
        ASSERT_TRUE(d >= 0);
        ASSERT_NEAR(res.hits[i].score, want[d], 1e-5);
        ASSERT_NEAR(res.hits[i].lexical_score, want[d], 1e-5);
        ASSERT_NEAR(res.hits[i].score, sorted[i], 1e-5);
    }
    ASSERT_STREQ(res.stages[0].stage, "lexical");
    me_results_free(&res);
    free(want);
    free(sorted);
}

static void check_all_queries(me_client_t *cli, const corpus_t *cp) {
    for (int q = 0; q < NQ; q++) check_lexical(cli, cp, cp->queries[q]);
    check_lexical(cli, cp, "zzyzx editor");
}

/* Empty text in lexical mode, alpha 2 and NaN: INVALID_ARGUMENT naming
 * the problem; a good search still answers. */
static void check_bad_input(me_client_t *cli) {
    float q[ROWS * DIM] = { 1 };
    me_results_t res;
    me_status_t st;
    me_search_opts_t o = { .k = 5, .mode = ME_MODE_LEXICAL, .lexical_text = "" };
    ASSERT_EQ(me_client_search(cli, "c", NULL, 0, DIM, &o, &res, &st), ME_CODE_INVALID_ARGUMENT);
    ASSERT_TRUE(strstr(st.message, "lexical_text is empty") != NULL);
    o.lexical_text = " -- !";
    ASSERT_EQ(me_client_search(cli, "c", NULL, 0, DIM, &o, &res, &st), ME_CODE_INVALID_ARGUMENT);
    ASSERT_TRUE(strstr(st.message, "no word") != NULL);
    o = (me_search_opts_t){ .k = 5, .mode = ME_MODE_HYBRID, .lexical_text = "editor",
                            .fusion = ME_FUSION_WEIGHTED, .has_alpha = 1, .alpha = 2 };
    ASSERT_EQ(me_client_search(cli, "c", q, ROWS, DIM, &o, &res, &st), ME_CODE_INVALID_ARGUMENT);
    ASSERT_TRUE(strstr(st.message, "alpha=2") != NULL);
    o.alpha = NAN;
    ASSERT_EQ(me_client_search(cli, "c", q, ROWS, DIM, &o, &res, &st), ME_CODE_INVALID_ARGUMENT);
    ASSERT_TRUE(strstr(st.message, "alpha") != NULL);
    o = (me_search_opts_t){ .k = 5, .mode = ME_MODE_HYBRID, .lexical_text = "editor", .hybrid_candidates = 20000 };
    ASSERT_EQ(me_client_search(cli, "c", q, ROWS, DIM, &o, &res, &st), ME_CODE_INVALID_ARGUMENT);
    ASSERT_TRUE(strstr(st.message, "hybrid_candidates") != NULL);
    o = (me_search_opts_t){ .k = 5, .mode = ME_MODE_LEXICAL, .lexical_text = "editor" };
    ASSERT_OK(me_client_search(cli, "c", NULL, 0, DIM, &o, &res, &st));
    ASSERT_TRUE(res.n > 0);
    me_results_free(&res);
}

/* Hybrid candidates below k still give k hits (each list takes at least
 * k + offset), and a lexical reply names no budget. */
static void check_hybrid_k(me_client_t *cli) {
    float q[ROWS * DIM];
    me_rng_t rng = { 9 };
    for (int j = 0; j < ROWS * DIM; j++) q[j] = (float)me_rng_normal(&rng);
    me_search_opts_t o = { .k = 40, .offset = 10, .mode = ME_MODE_HYBRID, .lexical_text = "library",
                           .hybrid_candidates = 5 };
    me_results_t res;
    me_status_t st;
    ASSERT_OK(me_client_search(cli, "c", q, ROWS, DIM, &o, &res, &st));
    ASSERT_EQ(res.n, 40);
    me_results_free(&res);
    o = (me_search_opts_t){ .k = 3, .r_q = 2, .r_c = 2, .mode = ME_MODE_LEXICAL, .lexical_text = "library" };
    ASSERT_OK(me_client_search(cli, "c", NULL, 0, DIM, &o, &res, &st));
    ASSERT_TRUE(res.r_q == 0 && res.r_c == 0);
    me_results_free(&res);
}

TEST(lexical_bm25_through_shard_equals_offline_replace_delete_restart) {
    static corpus_t cp;
    if (corpus_load(&cp) != 0) {
        fprintf(stderr, "    real data not found: skipped (set METAEMBED_DATA)\n");
        return;
    }
    cluster_t c;
    ASSERT_OK(cluster_start(&c, 1, 1, NULL));
    me_client_t *coord = cluster_client(&c, DIM, ROWS);
    ASSERT_TRUE(coord != NULL);
    me_client_close(coord);
    me_status_t st;
    me_client_t *cli = me_client_connect(c.shards[0].endpoint, 5000, &st);
    ASSERT_TRUE(cli != NULL);
    upsert(cli, &cp, 0, cp.n);
    check_all_queries(cli, &cp);
    /* Replacing a text replaces its postings: the old words no longer find it. */
    char *old = cp.texts[0];
    cp.texts[0] = strdup("zzyzx zzyzx");
    upsert(cli, &cp, 0, 1);
    check_all_queries(cli, &cp);
    me_search_opts_t o = { .k = 300, .mode = ME_MODE_LEXICAL, .lexical_text = old };
    me_results_t res;
    ASSERT_OK(me_client_search(cli, "c", NULL, 0, DIM, &o, &res, &st));
    for (size_t i = 0; i < res.n; i++) ASSERT_TRUE(strcmp(res.hits[i].id, cp.ids[0]) != 0);
    me_results_free(&res);
    free(old);
    /* A delete leaves N and the postings (the last slot moved into its hole). */
    const char *gone[] = { cp.ids[5] };
    uint32_t deleted;
    ASSERT_OK(me_client_delete(cli, "c", gone, 1, &deleted, &st));
    ASSERT_EQ(deleted, 1);
    free(cp.ids[5]);
    free(cp.texts[5]);
    cp.ids[5] = cp.ids[cp.n - 1];
    cp.texts[5] = cp.texts[cp.n - 1];
    cp.n--;
    check_all_queries(cli, &cp);
    check_bad_input(cli);
    check_hybrid_k(cli);
    me_client_close(cli);
    /* The index is rebuilt from RocksDB: after a clean stop and a kill -9. */
    for (int kill9 = 0; kill9 < 2; kill9++) {
        me_daemon_stop(&c.shards[0], kill9);
        ASSERT_OK(me_daemon_restart(&c.shards[0]));
        cli = me_client_connect(c.shards[0].endpoint, 5000, &st);
        ASSERT_TRUE(cli != NULL);
        check_all_queries(cli, &cp);
        me_client_close(cli);
    }
    cluster_stop(&c);
    corpus_free(&cp);
}

/* ---- hybrid through a cluster ---- */

typedef struct {
    const char *id;
    float dense, lexical, fused;
} fused_t;

static int by_fused(const void *a, const void *b) {
    const fused_t *x = a, *y = b;
    if (x->fused != y->fused) return x->fused > y->fused ? -1 : 1;
    return strcmp(x->id, y->id);
}

/* The position of id in a ranking (ids best first), from 1; 0 when absent. */
static size_t rank_of(const me_results_t *r, const char *id) {
    for (size_t i = 0; i < r->n; i++)
        if (!strcmp(r->hits[i].id, id)) return i + 1;
    return 0;
}

/* RRF (k 60) or the weighted sum, written out from the cluster's exact
 * dense ranking and lexical ranking of every document. */
static void offline_fusion(const corpus_t *cp, const me_results_t *dense, const me_results_t *lex, int weighted,
                           float alpha, fused_t *out) {
    float dmin = dense->hits[dense->n - 1].score, dmax = dense->hits[0].score;
    float lmax = lex->n ? lex->hits[0].score : 0;
    for (size_t i = 0; i < cp->n; i++) {
        size_t rd = rank_of(dense, cp->ids[i]), rl = rank_of(lex, cp->ids[i]);
        out[i].id = cp->ids[i];
        out[i].dense = dense->hits[rd - 1].score;
        out[i].lexical = rl ? lex->hits[rl - 1].score : 0;
        if (weighted)
            out[i].fused = alpha * ((out[i].dense - dmin) / (dmax - dmin)) + (1 - alpha) * (out[i].lexical / lmax);
        else
            out[i].fused = 1.0f / (float)(60 + rd) + (rl ? 1.0f / (float)(60 + rl) : 0.0f);
    }
    qsort(out, cp->n, sizeof *out, by_fused);
}

static void check_hybrid(me_client_t *cli, const corpus_t *cp, const float *q, const char *text, int weighted) {
    me_search_opts_t od = { .k = (uint32_t)cp->n, .exact = 1 };
    me_search_opts_t ol = { .k = (uint32_t)cp->n, .mode = ME_MODE_LEXICAL, .lexical_text = text };
    /* Candidates past the corpus size: every document is in both lists. */
    me_search_opts_t oh = { .k = 10, .mode = ME_MODE_HYBRID, .lexical_text = text, .hybrid_candidates = 1000,
                            .fusion = weighted, .has_alpha = weighted, .alpha = 0.3f };
    me_results_t d, l, h;
    me_status_t st;
    ASSERT_OK(me_client_search(cli, "c", q, ROWS, DIM, &od, &d, &st));
    ASSERT_OK(me_client_search(cli, "c", NULL, 0, DIM, &ol, &l, &st));
    ASSERT_OK(me_client_search(cli, "c", q, ROWS, DIM, &oh, &h, &st));
    ASSERT_EQ(d.n, cp->n);
    ASSERT_TRUE(l.n > 0);
    fused_t *want = malloc(cp->n * sizeof *want);
    offline_fusion(cp, &d, &l, weighted, 0.3f, want);
    ASSERT_EQ(h.n, 10);
    for (size_t i = 0; i < h.n; i++) {
        ASSERT_STREQ(h.hits[i].id, want[i].id);
        ASSERT_NEAR(h.hits[i].score, want[i].fused, 1e-5);
        ASSERT_NEAR(h.hits[i].dense_score, want[i].dense, 1e-5);
        ASSERT_NEAR(h.hits[i].lexical_score, want[i].lexical, 1e-5);
    }
    int saw_lexical = 0;
    for (int s = 0; s < h.n_stages; s++) saw_lexical |= !strcmp(h.stages[s].stage, "lexical");
    ASSERT_TRUE(saw_lexical);
    free(want);
    me_results_free(&d);
    me_results_free(&l);
    me_results_free(&h);
}

/* The CLI's --mode: a lexical text search needs no encoder (BM25 of the
 * text itself); a bad --alpha is the cluster's INVALID_ARGUMENT. */
static void check_cli(cluster_t *c, const corpus_t *cp) {
    char bin[512], *out, *err;
    me_test_bin("metaembed", bin, sizeof bin);
    char *dir = me_test_tmpdir("lexcli");
    char *lex[] = { bin, "--addr", c->coord.endpoint, "--json", "search", "--collection", "c", "--mode", "lexical",
                    cp->queries[0], NULL };
    ASSERT_EQ(me_test_run_capture(lex, dir, "lex", &out, &err), 0);
    ASSERT_TRUE(strstr(out, "\"lexical_score\"") != NULL && strstr(out, "\"lexical\"") != NULL);
    free(out);
    free(err);
    char *bad[] = { bin, "--addr", c->coord.endpoint, "search", "--collection", "c", "--mode", "hybrid", "--fusion",
                    "weighted", "--alpha", "2", "editor", NULL };
    ASSERT_TRUE(me_test_run_capture(bad, dir, "bad", &out, &err) != 0);
    ASSERT_TRUE(strstr(err, "alpha=2") != NULL);
    free(out);
    free(err);
    me_test_rmdir(dir);
    free(dir);
}

TEST(hybrid_two_shard_cluster_equals_offline_fusion) {
    static corpus_t cp;
    if (corpus_load(&cp) != 0) {
        fprintf(stderr, "    real data not found: skipped (set METAEMBED_DATA)\n");
        return;
    }
    cluster_t c;
    ASSERT_OK(cluster_start(&c, 2, 1, NULL));
    me_client_t *cli = cluster_client(&c, DIM, ROWS);
    ASSERT_TRUE(cli != NULL);
    upsert(cli, &cp, 0, cp.n);
    me_rng_t rng = { 5 };
    float q[ROWS * DIM];
    for (int t = 0; t < NQ; t++) {
        for (int j = 0; j < ROWS * DIM; j++) q[j] = (float)me_rng_normal(&rng);
        check_hybrid(cli, &cp, q, cp.queries[t], t % 2);
    }
    check_bad_input(cli);
    check_hybrid_k(cli);
    check_cli(&c, &cp);
    me_client_close(cli);
    cluster_stop(&c);
    corpus_free(&cp);
}
