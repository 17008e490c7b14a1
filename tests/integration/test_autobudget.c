/* Budget "auto" and anytime answers through real processes. A shard made
 * slow with --slowdown (each stage's scoring done N times: the latency of
 * a slower machine, the same answers):
 *   - anytime: a deadline the full cascade cannot fit gets the last
 *     finished stage's ranking, marked degraded, equal to brute force at
 *     that stage's budget over its candidates (every document here);
 *     without anytime the same request is DEADLINE_EXCEEDED;
 *   - auto through a coordinator: smaller budgets on the slow shard, every
 *     reply OK and within its target's reach; back to the largest budget
 *     once the shard is fast again; a minimum budget never undercut; an
 *     explicit budget never changed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/budget.h"
#include "common/wire.h"
#include "tests/brute.h"
#include "tests/cluster.h"
#include "tests/daemon.h"
#include "tests/harness.h"

#define N 3000
#define DIM 32
#define ROWS 16
#define QROWS 16

static void load(me_client_t *c, corpus_t *cp, float *q) {
    *cp = (corpus_t){ .ndocs = N, .dim = DIM, .rows = ROWS };
    cp->vecs = malloc((size_t)N * ROWS * DIM * sizeof *cp->vecs);
    cp->alive = malloc(N * sizeof *cp->alive);
    me_rng_t rng = { 5 };
    for (size_t j = 0; j < (size_t)N * ROWS * DIM; j++) cp->vecs[j] = (float)me_rng_normal(&rng);
    for (int j = 0; j < QROWS * DIM; j++) q[j] = (float)me_rng_normal(&rng);
    me_status_t st;
    me_collection_spec_t spec = { .name = "a", .dim = DIM, .max_doc_vectors = ROWS, .max_query_vectors = QROWS,
                                  .dtype = "f32" };
    ASSERT_OK(me_client_create_collection(c, &spec, &st));
    me_doc_t docs[500];
    char ids[500][16];
    for (int at = 0; at < N; at += 500) {
        for (int k = 0; k < 500; k++) {
            snprintf(ids[k], sizeof ids[k], "a-%05d", at + k);
            docs[k] = (me_doc_t){ .id = ids[k], .vectors = cp->vecs + (size_t)(at + k) * ROWS * DIM, .rows = ROWS };
            cp->alive[at + k] = 1;
        }
        ASSERT_OK(me_client_upsert(c, "a", docs, 500, DIM, &st));
    }
}

TEST(anytime_answer_is_the_last_finished_stage_ranking) {
    me_daemon_t d = { 0 };
    d.extra[d.nextra++] = "--slowdown=2000";
    ASSERT_OK(me_daemon_start(&d, "metaembed-shard", "anytime"));
    me_client_t *c = me_daemon_client(&d);
    ASSERT_TRUE(c != NULL);
    corpus_t cp;
    float q[QROWS * DIM];
    load(c, &cp, q);
    /* Every document survives the coarse stage, so each stage's ranking is
     * brute force at its budget over the whole collection. The full
     * cascade's time first; then a deadline of 40% of it: the coarse and
     * refine stages fit (a fifth of the work), the rerank does not. */
    me_search_opts_t o = { .k = 10, .candidates = N, .refine_candidates = 400, .anytime = 1 };
    me_client_set_timeout(c, 120000);
    me_results_t res;
    me_status_t st;
    double t0 = me_test_now_ms();
    ASSERT_OK(me_client_search(c, "a", q, QROWS, DIM, &o, &res, &st));
    double full = me_test_now_ms() - t0;
    ASSERT_TRUE(!res.degraded);
    ASSERT_EQ(res.r_q, QROWS);
    ASSERT_EQ(res.r_c, ROWS);
    me_results_free(&res);
    int deadline = (int)(full * 0.4);
    me_client_set_timeout(c, deadline);
    t0 = me_test_now_ms();
    int rc = me_client_search(c, "a", q, QROWS, DIM, &o, &res, &st);
    double took = me_test_now_ms() - t0;
    if (rc) fprintf(stderr, "    anytime search: %s\n", st.message);
    ASSERT_EQ(rc, 0);
    fprintf(stderr, "    anytime: full cascade %.0f ms; deadline %d ms: degraded=%d at (%d,%d) in %.0f ms\n", full,
            deadline, res.degraded, res.r_q, res.r_c, took);
    ASSERT_TRUE(res.degraded);
    ASSERT_TRUE(res.r_q < QROWS);
    ASSERT_TRUE(me_budget_index(res.r_q, res.r_c) >= 0);  /* a trained budget */
    ASSERT_TRUE(took < deadline);
    double *scores = malloc(N * sizeof *scores);
    brute(&cp, q, res.r_q, res.r_c, scores);
    check_against_brute(&res, scores, N, 10, "a");
    me_results_free(&res);
    /* The same without anytime runs out of time. */
    o.anytime = 0;
    ASSERT_EQ(me_client_search(c, "a", q, QROWS, DIM, &o, &res, &st), ME_CODE_DEADLINE_EXCEEDED);
    me_client_set_timeout(c, 120000);
    char *body = NULL;
    ASSERT_EQ(me_test_http_get(d.metrics_port, "/metrics", &body), 200);
    ASSERT_TRUE(strstr(body, "metaembed_search_degraded_total 1\n") != NULL);
    free(body);
    free(scores);
    free(cp.vecs);
    free(cp.alive);
    me_client_close(c);
    me_daemon_free(&d);
}

/* n auto searches; the budgets answered at into levels[] (ladder index of
 * the request's chosen budget as the reply names it), the worst latency. */
static double auto_round(me_client_t *c, const float *q, me_search_opts_t o, int n, int *levels) {
    double worst = 0;
    for (int i = 0; i < n; i++) {
        me_results_t res;
        me_status_t st;
        double t0 = me_test_now_ms();
        int rc = me_client_search(c, "a", q, QROWS, DIM, &o, &res, &st);
        double took = me_test_now_ms() - t0;
        if (rc) fprintf(stderr, "    auto search %d: %s\n", i, st.message);
        ASSERT_EQ(rc, 0);
        ASSERT_EQ(res.n, (size_t)o.k);
        if (o.target_ms) ASSERT_TRUE(res.budget_reason[0] != 0);
        /* The shard clamps (16,64) to its R_c = 16. */
        int l = me_budget_index(res.r_q, res.r_c == ROWS && res.r_q == QROWS ? 64 : res.r_c);
        levels[i] = l;
        if (took > worst) worst = took;
        me_results_free(&res);
    }
    return worst;
}

TEST(auto_budget_falls_on_a_slow_shard_and_recovers) {
    cluster_t cl;
    memset(&cl, 0, sizeof cl);
    static const char *const slow[] = { "--slowdown=400", NULL };
    cl.shard_extra = slow;
    ASSERT_OK(cluster_start_with(&cl, 1, 1, NULL, NULL));
    me_client_t *c = me_daemon_client(&cl.coord);
    ASSERT_TRUE(c != NULL);
    corpus_t cp;
    float q[QROWS * DIM];
    load(c, &cp, q);
    int levels[200];
    /* An explicit budget is never changed, however slow. */
    me_search_opts_t fixed = { .k = 5, .r_q = 8, .r_c = 16 };
    auto_round(c, q, fixed, 3, levels);
    for (int i = 0; i < 3; i++) ASSERT_EQ(levels[i], 3);
    /* The coarsest budget's own time here (under a sanitizer it may pass
     * the target by itself: anytime then answers late rather than never). */
    me_search_opts_t coarse = { .k = 5, .r_q = 1, .r_c = 1 };
    double t11 = auto_round(c, q, coarse, 3, levels);
    /* Slow: auto falls below the largest budget and every answer comes
     * back OK, near its target (the cascade is cut at the deadline). */
    me_search_opts_t o = { .k = 5, .target_ms = 40 };
    double worst = auto_round(c, q, o, 40, levels);
    int low = 0;
    for (int i = 20; i < 40; i++) low += levels[i] < ME_BUDGET_LADDER_N - 1;
    fprintf(stderr, "    slow shard: %d of the last 20 below (16,64), worst %.0f ms ((1,1) alone: %.0f ms)\n", low,
            worst, t11);
    ASSERT_TRUE(low >= 15);
    ASSERT_TRUE(worst < 40 * 4 + 3 * t11);
    /* A minimum budget is never undercut. */
    me_search_opts_t floor = o;
    floor.min_r_q = 4;
    floor.min_r_c = 8;
    auto_round(c, q, floor, 20, levels);
    for (int i = 0; i < 20; i++) ASSERT_TRUE(levels[i] >= 2);
    /* Fast again: back to the largest budget within a few seconds. */
    me_client_close(c);
    me_daemon_t *s = &cl.shards[0];
    s->nextra = 0;
    ASSERT_EQ(me_daemon_stop(s, 0), 0);
    ASSERT_OK(me_daemon_restart(s));
    ASSERT_TRUE((c = me_daemon_client(&cl.coord)) != NULL);
    int top = 0;
    double t0 = me_test_now_ms();
    while (!top && me_test_now_ms() - t0 < 15000) {
        me_results_t res;
        me_status_t st;
        if (me_client_search(c, "a", q, QROWS, DIM, &o, &res, &st) == 0) {
            top = res.r_q == QROWS && res.r_c == ROWS && !res.degraded;
            me_results_free(&res);
        }
    }
    fprintf(stderr, "    fast shard: back at (16,64) after %.0f ms\n", me_test_now_ms() - t0);
    ASSERT_TRUE(top);
    char *body = NULL;
    ASSERT_EQ(me_test_http_get(cl.coord.metrics_port, "/metrics", &body), 200);
    ASSERT_TRUE(strstr(body, "metaembed_auto_budget_chosen_total{budget=\"1x1\"}") != NULL);
    ASSERT_TRUE(strstr(body, "metaembed_auto_budget_latency_seconds_count{kind=\"observed\"}") != NULL);
    free(body);
    /* Bad auto requests. */
    me_results_t res;
    me_status_t st;
    me_search_opts_t bad = { .k = 5, .target_ms = 10, .r_q = 2, .r_c = 4, .min_r_q = 8, .min_r_c = 16 };
    ASSERT_EQ(me_client_search(c, "a", q, QROWS, DIM, &bad, &res, &st), ME_CODE_INVALID_ARGUMENT);
    ASSERT_TRUE(strstr(st.message, "above the ceiling") != NULL);
    me_search_opts_t nomin = { .k = 5, .min_r_q = 2, .min_r_c = 4 };
    ASSERT_EQ(me_client_search(c, "a", q, QROWS, DIM, &nomin, &res, &st), ME_CODE_INVALID_ARGUMENT);
    me_client_close(c);
    cluster_stop(&cl);
    free(cp.vecs);
    free(cp.alive);
}
