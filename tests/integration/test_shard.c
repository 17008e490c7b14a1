/* The shard as a real process on a loopback port: ingest, exact and
 * cascade search against an independent brute force, delete/re-upsert,
 * restart, and kill -9 after acknowledged writes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/dtype.h"
#include "tests/daemon.h"
#include "tests/harness.h"
#include "tests/brute.h"
#include "tests/synthetic.h"

#define D 128
#define RC 64
#define NDOCS 20000
#define BATCH 500

static void doc_id(char *out, size_t cap, const char *prefix, int i) { snprintf(out, cap, "%s-%05d", prefix, i); }

/* Generates doc i, rounds it to f16 as the shard stores it; returns the f16 bits. */
static void make_doc(const me_synth_t *p, int i, uint16_t *h, float *stored) {
    float *f = malloc((size_t)p->rows * p->dim * sizeof *f);
    me_synth_doc(p, (uint64_t)i, f);
    for (int j = 0; j < p->rows * p->dim; j++) {
        h[j] = me_f32_to_f16(f[j]);
        stored[j] = me_f16_to_f32(h[j]);
    }
    free(f);
}

static void ingest(me_client_t *c, const char *coll, const me_synth_t *p, corpus_t *cp, int first, int n,
                   const char *prefix) {
    size_t per = (size_t)p->rows * p->dim;
    uint16_t *h = malloc(BATCH * per * sizeof *h);
    me_doc_t *docs = calloc(BATCH, sizeof *docs);
    char (*ids)[32] = calloc(BATCH, sizeof *ids);
    for (int off = first; off < first + n; off += BATCH) {
        int m = first + n - off < BATCH ? first + n - off : BATCH;
        for (int i = 0; i < m; i++) {
            doc_id(ids[i], sizeof ids[i], prefix, off + i);
            make_doc(p, off + i, h + i * per, cp->vecs + (size_t)(off + i) * per);
            cp->alive[off + i] = 1;
            docs[i] = (me_doc_t){ .id = ids[i], .vectors = h + i * per, .rows = p->rows, .f16 = 1 };
        }
        me_status_t st;
        int rc = me_client_upsert(c, coll, docs, (size_t)m, p->dim, &st);
        if (rc) fprintf(stderr, "    upsert: %s\n", st.message);
        ASSERT_EQ(rc, 0);
    }
    free(h);
    free(docs);
    free(ids);
}

static void search(me_client_t *c, const char *coll, const float *q, int qrows, int dim,
                   me_search_opts_t o, me_results_t *res) {
    me_status_t st;
    int rc = me_client_search(c, coll, q, qrows, dim, &o, res, &st);
    if (rc) fprintf(stderr, "    search: %s\n", st.message);
    ASSERT_EQ(rc, 0);
}

static void assert_same_results(const me_results_t *a, const me_results_t *b) {
    ASSERT_EQ(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        ASSERT_STREQ(a->hits[i].id, b->hits[i].id);
        ASSERT_TRUE(a->hits[i].score == b->hits[i].score);  /* bit-identical */
    }
}

static const int budgets[][2] = { { 1, 1 }, { 2, 4 }, { 4, 8 }, { 8, 16 }, { 16, 64 } };

static int cmp_desc(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

/* The three-stage cascade with every document past stage 1 and M past the
 * refine stage: the refine stage runs at the ladder's middle budget (mid_q,
 * mid_c) and keeps M, and the hits are the best by the full budget among
 * brute force's top M by the middle budget (up to near-ties at the M-th). */
static void check_refine(me_client_t *c, const char *coll, const float *q, const corpus_t *cp, const char *prefix,
                         int r_q, int r_c, int mid_q, int mid_c, int k, int M) {
    double *full = malloc(cp->ndocs * sizeof *full), *mid = malloc(cp->ndocs * sizeof *mid);
    double *sorted = malloc(cp->ndocs * sizeof *sorted);
    brute(cp, q, r_q, r_c, full);
    brute(cp, q, mid_q, mid_c, mid);
    memcpy(sorted, mid, cp->ndocs * sizeof *sorted);
    qsort(sorted, (size_t)cp->ndocs, sizeof *sorted, cmp_desc);
    double cut = sorted[M - 1];
    me_results_t res;
    search(c, coll, q, 16, cp->dim,
           (me_search_opts_t){ .r_q = r_q, .r_c = r_c, .k = (uint32_t)k, .candidates = (uint32_t)cp->ndocs,
                              .refine_candidates = (uint32_t)M }, &res);
    ASSERT_EQ(res.n_stages >= 3, 1);
    ASSERT_STREQ(res.stages[1].stage, "refine");
    ASSERT_EQ(res.stages[1].r_q, mid_q);
    ASSERT_EQ(res.stages[1].r_c, mid_c);
    ASSERT_EQ(res.stages[1].out, (uint64_t)M);
    ASSERT_STREQ(res.stages[2].stage, "rerank");
    ASSERT_EQ(res.stages[2].in, (uint64_t)M);
    ASSERT_EQ(res.n, (size_t)k);
    size_t plen = strlen(prefix);
    for (size_t h = 0; h < res.n; h++) {
        int d = atoi(res.hits[h].id + plen + 1);
        ASSERT_TRUE(mid[d] >= cut - TOL);                       /* survived the refine stage */
        ASSERT_NEAR(res.hits[h].score, full[d], TOL);           /* scored at the full budget */
    }
    /* Nothing clearly inside the M survivors beats the last hit and is missing. */
    double last = full[atoi(res.hits[res.n - 1].id + plen + 1)];
    for (int d = 0; d < cp->ndocs; d++) {
        if (!(mid[d] > cut + TOL && full[d] > last + TOL)) continue;
        int found = 0;
        for (size_t h = 0; h < res.n && !found; h++) found = atoi(res.hits[h].id + plen + 1) == d;
        ASSERT_TRUE(found);
    }
    me_results_free(&res);
    free(full);
    free(mid);
    free(sorted);
}

/* Exact and cascade(candidates = N) at each budget equal brute force and
 * each other; queries aim at doc `target`. */
static void check_budgets(me_client_t *c, const char *coll, const me_synth_t *p, const corpus_t *cp,
                          const char *prefix, int target, int k) {
    float *q = malloc(16 * (size_t)p->dim * sizeof *q);
    double *scores = malloc(cp->ndocs * sizeof *scores);
    me_synth_query(p, (uint64_t)target, 7, 16, q);
    for (size_t b = 0; b < sizeof budgets / sizeof budgets[0]; b++) {
        int r_q = budgets[b][0], r_c = budgets[b][1];
        brute(cp, q, r_q, r_c, scores);
        me_results_t ex, ca;
        search(c, coll, q, 16, p->dim, (me_search_opts_t){ .r_q = r_q, .r_c = r_c, .k = (uint32_t)k, .exact = 1 }, &ex);
        search(c, coll, q, 16, p->dim,
               (me_search_opts_t){ .r_q = r_q, .r_c = r_c, .k = (uint32_t)k, .candidates = (uint32_t)cp->ndocs,
                                  .refine_candidates = (uint32_t)cp->ndocs }, &ca);
        ASSERT_EQ(ex.r_q, r_q);
        ASSERT_EQ(ex.r_c, r_c);
        check_against_brute(&ex, scores, cp->ndocs, k, prefix);
        assert_same_results(&ex, &ca);
        me_results_free(&ex);
        me_results_free(&ca);
    }
    check_refine(c, coll, q, cp, prefix, 16, 64, 4, 8, k, 300);
    check_refine(c, coll, q, cp, prefix, 8, 16, 2, 4, k, 50);
    free(q);
    free(scores);
}

TEST(shard_20k_exact_cascade_delete_restart_kill9) {
    me_daemon_t d = { 0 };
    ASSERT_OK(me_daemon_start(&d, "metaembed-shard", "shard"));
    me_client_t *c = me_daemon_client(&d);
    ASSERT_TRUE(c != NULL);
    me_status_t st;
    me_collection_spec_t spec = { .name = "docs", .dim = D, .max_doc_vectors = RC };
    ASSERT_OK(me_client_create_collection(c, &spec, &st));

    me_synth_t p = me_synth_default(D, RC, 42);
    corpus_t cp = { NDOCS, D, RC, malloc((size_t)NDOCS * RC * D * sizeof(float)), calloc(NDOCS, sizeof(int)) };
    ingest(c, "docs", &p, &cp, 0, NDOCS, "doc");

    me_collection_info_t *info;
    size_t ninfo;
    ASSERT_OK(me_client_list_collections(c, &info, &ninfo, &st));
    ASSERT_EQ(ninfo, 1);
    ASSERT_EQ(info[0].documents, NDOCS);
    ASSERT_STREQ(info[0].dtype, "f16");
    ASSERT_EQ(info[0].index_bytes, (uint64_t)NDOCS * RC * D * 2);
    free(info);

    check_budgets(c, "docs", &p, &cp, "doc", 123, 10);

    /* Delete 100 docs and re-upsert 50 of them with other vectors. */
    char ids[100][32];
    const char *idp[100];
    for (int i = 0; i < 100; i++) {
        doc_id(ids[i], sizeof ids[i], "doc", i * 37);
        idp[i] = ids[i];
        cp.alive[i * 37] = 0;
    }
    uint32_t deleted = 0;
    ASSERT_OK(me_client_delete(c, "docs", idp, 100, &deleted, &st));
    ASSERT_EQ(deleted, 100);
    ASSERT_OK(me_client_delete(c, "docs", idp, 10, &deleted, &st));
    ASSERT_EQ(deleted, 0);  /* already gone */
    me_synth_t p2 = me_synth_default(D, RC, 4242);
    {
        size_t per = (size_t)RC * D;
        uint16_t *h = malloc(50 * per * sizeof *h);
        me_doc_t docs[50];
        for (int i = 0; i < 50; i++) {
            int idx = i * 2 * 37;
            make_doc(&p2, idx, h + i * per, cp.vecs + (size_t)idx * per);
            cp.alive[idx] = 1;
            docs[i] = (me_doc_t){ .id = ids[i * 2], .vectors = h + i * per, .rows = RC, .f16 = 1 };
        }
        ASSERT_OK(me_client_upsert(c, "docs", docs, 50, D, &st));
        free(h);
    }
    /* Every deleted doc is gone, every replaced doc has its new vectors. */
    me_record_t *recs;
    size_t nrec;
    ASSERT_OK(me_client_get(c, "docs", idp, 100, 1, &recs, &nrec, &st));
    ASSERT_EQ(nrec, 50);
    for (size_t i = 0; i < nrec; i++) {
        int idx;
        ASSERT_TRUE(sscanf(recs[i].id, "doc-%d", &idx) == 1);
        ASSERT_TRUE(cp.alive[idx]);
        ASSERT_EQ(recs[i].rows, RC);
        ASSERT_TRUE(memcmp(recs[i].vectors, cp.vecs + (size_t)idx * RC * D, (size_t)RC * D * 4) == 0);
    }
    me_records_free(recs, nrec);
    /* A query aimed at a replaced doc, and one at a deleted doc. */
    check_budgets(c, "docs", &p, &cp, "doc", 37, 10);
    check_budgets(c, "docs", &p2, &cp, "doc", 0, 10);

    /* Restart: same answers from the reloaded RAM copy. */
    float q[16 * D];
    me_synth_query(&p, 555, 1, 16, q);
    me_results_t before, after;
    search(c, "docs", q, 16, D, (me_search_opts_t){ .r_q = 8, .r_c = 16, .k = 20 }, &before);
    me_client_close(c);
    ASSERT_EQ(me_daemon_stop(&d, 0), 0);  /* clean exit on SIGTERM */
    ASSERT_OK(me_daemon_restart(&d));
    c = me_daemon_client(&d);
    ASSERT_TRUE(c != NULL);
    search(c, "docs", q, 16, D, (me_search_opts_t){ .r_q = 8, .r_c = 16, .k = 20 }, &after);
    assert_same_results(&before, &after);
    me_results_free(&before);
    me_results_free(&after);

    /* kill -9 right after acknowledged upserts loses none of them. */
    me_synth_t p3 = me_synth_default(D, RC, 999);
    corpus_t k9 = { 1000, D, RC, malloc((size_t)1000 * RC * D * sizeof(float)), calloc(1000, sizeof(int)) };
    ingest(c, "docs", &p3, &k9, 0, 1000, "kill");
    me_client_close(c);
    me_daemon_stop(&d, 1);
    ASSERT_OK(me_daemon_restart(&d));
    c = me_daemon_client(&d);
    ASSERT_TRUE(c != NULL);
    char kids[1000][32];
    const char *kp[1000];
    for (int i = 0; i < 1000; i++) { doc_id(kids[i], sizeof kids[i], "kill", i); kp[i] = kids[i]; }
    for (int off = 0; off < 1000; off += 250) {
        ASSERT_OK(me_client_get(c, "docs", kp + off, 250, 1, &recs, &nrec, &st));
        ASSERT_EQ(nrec, 250);
        for (size_t i = 0; i < nrec; i++)
            ASSERT_TRUE(memcmp(recs[i].vectors, k9.vecs + (size_t)(off + i) * RC * D, (size_t)RC * D * 4) == 0);
        me_records_free(recs, nrec);
    }
    ASSERT_OK(me_client_list_collections(c, &info, &ninfo, &st));
    ASSERT_EQ(info[0].documents, NDOCS - 50 + 1000);
    free(info);

    me_client_close(c);
    me_daemon_free(&d);
    free(cp.vecs);
    free(cp.alive);
    free(k9.vecs);
    free(k9.alive);
}

/* Other storage layouts: only the first 8 vectors in RAM (the rest fetched
 * from RocksDB for reranks), 2 coarse vectors, and f32 / int8 storage. */
static void small_collection(me_client_t *c, const char *name, const char *dtype, int ram, int coarse, int ndocs) {
    me_status_t st;
    me_collection_spec_t spec = { .name = name, .dim = 100, .max_doc_vectors = 64, .dtype = dtype,
                                  .ram_vectors = ram, .coarse_vectors = coarse };
    ASSERT_OK(me_client_create_collection(c, &spec, &st));
    me_synth_t p = me_synth_default(100, 64, 7);
    corpus_t cp = { ndocs, 100, 64, malloc((size_t)ndocs * 64 * 100 * sizeof(float)), calloc(ndocs, sizeof(int)) };
    float *f = malloc((size_t)64 * 100 * sizeof *f);
    for (int i = 0; i < ndocs; i++) {
        char id[32];
        doc_id(id, sizeof id, "x", i);
        me_synth_doc(&p, (uint64_t)i, f);
        me_doc_t doc = { .id = id, .vectors = f, .rows = 64 };
        ASSERT_OK(me_client_upsert(c, name, &doc, 1, 100, &st));
        cp.alive[i] = 1;
    }
    /* The stored values, as Get returns them, are what brute force scores. */
    for (int i = 0; i < ndocs; i++) {
        char id[32];
        doc_id(id, sizeof id, "x", i);
        const char *idp = id;
        me_record_t *r;
        size_t n;
        ASSERT_OK(me_client_get(c, name, &idp, 1, 1, &r, &n, &st));
        ASSERT_EQ(n, 1);
        ASSERT_EQ(r[0].rows, 64);
        memcpy(cp.vecs + (size_t)i * 64 * 100, r[0].vectors, (size_t)64 * 100 * 4);
        me_records_free(r, n);
    }
    check_budgets(c, name, &p, &cp, "x", 5, 10);
    free(f);
    free(cp.vecs);
    free(cp.alive);
}

TEST(shard_storage_layouts_f32_int8_disk_rerank) {
    me_daemon_t d = { 0 };
    ASSERT_OK(me_daemon_start(&d, "metaembed-shard", "layouts"));
    me_client_t *c = me_daemon_client(&d);
    ASSERT_TRUE(c != NULL);
    small_collection(c, "f16_disk", "f16", 8, 2, 600);
    small_collection(c, "f32_ram", "f32", 0, 0, 600);
    small_collection(c, "int8_disk", "int8", 4, 1, 600);
    /* The disk-backed collection survives a restart too. */
    me_client_close(c);
    ASSERT_EQ(me_daemon_stop(&d, 0), 0);
    ASSERT_OK(me_daemon_restart(&d));
    c = me_daemon_client(&d);
    ASSERT_TRUE(c != NULL);
    me_collection_info_t *info;
    size_t n;
    me_status_t st;
    ASSERT_OK(me_client_list_collections(c, &info, &n, &st));
    ASSERT_EQ(n, 3);
    for (size_t i = 0; i < n; i++) ASSERT_EQ(info[i].documents, 600);
    free(info);
    me_client_close(c);
    me_daemon_free(&d);
}
