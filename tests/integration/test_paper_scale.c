/* Paper-scale dimensions (issue 19, part 3): a D = 3584 collection (the
 * width of the paper's 7B model) with 64 vectors a document and 16 a
 * query works end to end through a real coordinator and two shards:
 * batched upserts of ~0.9 MiB documents (f32 on the wire, f16 stored), Get
 * with vectors, exact and cascade searches at (16,64) and smaller budgets
 * against a brute force over the f16-rounded vectors; and the width limit
 * refuses D = 4097 with a clear message. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/dtype.h"
#include "tests/cluster.h"
#include "tests/harness.h"

#define D 3584
#define RC 64
#define RQ 16
#define NDOCS 48
#define BATCH 8

static void doc_vectors(int i, float *v) {
    me_rng_t r = { (uint64_t)i * 104729u + 3u };
    me_rng_unit_rows(&r, v, RC, D);
}

/* The stored vectors: f16, back to f32. */
static void rounded(float *v, size_t n) {
    for (size_t i = 0; i < n; i++) v[i] = me_f16_to_f32(me_f32_to_f16(v[i]));
}

static double maxsim(const float *q, int rq, const float *d, int rc) {
    double s = 0;
    for (int a = 0; a < rq; a++) {
        double best = -1e30;
        for (int b = 0; b < rc; b++) {
            double dot = 0;
            for (int x = 0; x < D; x++) dot += (double)q[(size_t)a * D + x] * d[(size_t)b * D + x];
            if (dot > best) best = dot;
        }
        s += best;
    }
    return s;
}

TEST(paper_scale_d3584_collections_work_end_to_end) {
    cluster_t c;
    memset(&c, 0, sizeof c);
    ASSERT_OK(cluster_start(&c, 2, 1, NULL));
    me_collection_spec_t spec = { .name = "wide", .dim = D, .max_doc_vectors = RC, .max_query_vectors = RQ };
    me_client_t *cli = me_daemon_client_with(&c.coord, &spec);
    ASSERT_TRUE(cli != NULL);
    me_client_set_timeout(cli, 60000);
    me_status_t st;
    /* Ingest: 8 documents (7.3 MB of f32) a request. */
    float *v = malloc((size_t)BATCH * RC * D * sizeof *v);
    float *all = malloc((size_t)NDOCS * RC * D * sizeof *all);
    ASSERT_TRUE(v && all);
    double t0 = me_test_now_ms();
    for (int b = 0; b < NDOCS; b += BATCH) {
        me_doc_t docs[BATCH];
        char ids[BATCH][16];
        for (int k = 0; k < BATCH; k++) {
            snprintf(ids[k], sizeof ids[k], "w%03d", b + k);
            doc_vectors(b + k, v + (size_t)k * RC * D);
            memcpy(all + (size_t)(b + k) * RC * D, v + (size_t)k * RC * D, (size_t)RC * D * sizeof *v);
            docs[k] = (me_doc_t){ .id = ids[k], .vectors = v + (size_t)k * RC * D, .rows = RC };
        }
        ASSERT_OK(me_client_upsert(cli, "wide", docs, BATCH, D, &st));
    }
    double ingest_ms = me_test_now_ms() - t0;
    rounded(all, (size_t)NDOCS * RC * D);
    /* Get with vectors: every row back, as stored (f16). */
    const char *one[1] = { "w007" };
    me_record_t *recs = NULL;
    size_t n = 0;
    ASSERT_OK(me_client_get(cli, "wide", one, 1, 1, &recs, &n, &st));
    ASSERT_EQ(n, 1);
    ASSERT_EQ(recs[0].rows, RC);
    ASSERT_EQ(recs[0].dim, D);
    ASSERT_TRUE(memcmp(recs[0].vectors, all + (size_t)7 * RC * D, (size_t)RC * D * sizeof(float)) == 0);
    me_records_free(recs, n);
    /* Searches: a query near document 11 (its vectors plus noise). */
    float *q = malloc((size_t)RQ * D * sizeof *q);
    me_rng_t r = { 5 };
    for (int a = 0; a < RQ; a++)
        for (int x = 0; x < D; x++)
            q[(size_t)a * D + x] = all[(size_t)11 * RC * D + (size_t)a * D + x] + 0.02f * (float)me_rng_normal(&r);
    static const int budgets[][2] = { { 1, 1 }, { 4, 8 }, { 16, 64 } };
    for (size_t bi = 0; bi < 3; bi++) {
        int rq = budgets[bi][0], rc = budgets[bi][1];
        double scores[NDOCS];
        for (int i = 0; i < NDOCS; i++) scores[i] = maxsim(q, rq, all + (size_t)i * RC * D, rc);
        int order[NDOCS];
        for (int i = 0; i < NDOCS; i++) order[i] = i;
        for (int i = 0; i < NDOCS; i++)
            for (int j = i + 1; j < NDOCS; j++)
                if (scores[order[j]] > scores[order[i]]) { int t = order[i]; order[i] = order[j]; order[j] = t; }
        for (int exact = 0; exact < 2; exact++) {
            me_search_opts_t o = { .k = 10, .r_q = rq, .r_c = rc, .exact = exact };
            me_results_t res;
            double ts = me_test_now_ms();
            ASSERT_OK(me_client_search(cli, "wide", q, RQ, D, &o, &res, &st));
            double ms = me_test_now_ms() - ts;
            ASSERT_EQ(res.n, 10);
            int same = 0;
            for (size_t k = 0; k < res.n; k++) {
                char id[16];
                snprintf(id, sizeof id, "w%03d", order[k]);
                same += strcmp(res.hits[k].id, id) == 0;
            }
            fprintf(stderr, "    D=%d (%d,%d) %s: %.1f ms, top %s, %d of 10 in brute-force order, score %.4f vs %.4f\n", D,
                    rq, rc, exact ? "exact  " : "cascade", ms, res.hits[0].id, same, res.hits[0].score, scores[order[0]]);
            ASSERT_STREQ(res.hits[0].id, "w011");
            if (exact) {
                ASSERT_EQ(same, 10);
                for (size_t k = 0; k < res.n; k++) ASSERT_TRUE(fabs(res.hits[k].score - scores[order[k]]) < 1e-2);
            }
            me_results_free(&res);
        }
    }
    fprintf(stderr, "    ingested %d documents of %d x %d (%.2f MiB each in f16) in %.0f ms\n", NDOCS, RC, D,
            (double)RC * D * 2 / 1048576.0, ingest_ms);
    /* The width limit: a clear refusal. */
    me_collection_spec_t too_wide = { .name = "wider", .dim = 4097 };
    ASSERT_EQ(me_client_create_collection(cli, &too_wide, &st), ME_CODE_INVALID_ARGUMENT);
    ASSERT_TRUE(strstr(st.message, "4096") != NULL);
    free(q);
    free(v);
    free(all);
    me_client_close(cli);
    cluster_stop(&c);
}
