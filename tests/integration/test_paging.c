/* Paging through the wire, on a 2-group cluster and on one shard directly:
 * a search's offset cuts pages from one ranking (offset 10, k 10 equals
 * hits 10..19 of k 20, cascade and exact); the shards' --max-k bounds
 * k + offset and the refusal names both; ListIds scrolls every id once in
 * byte order with a small limit, and refuses hostile cursors and limits;
 * the coordinator's merged stage timings count the candidates of every
 * group (the coarse stage's input is every document). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/wire.h"
#include "tests/cluster.h"
#include "tests/harness.h"

#define DIM 16
#define ROWS 4
#define NDOCS 53

/* NDOCS documents with ids numbered so their byte order is not their
 * insertion order ("d-7" sorts after "d-52"). */
static void upsert_docs(me_client_t *cli) {
    static float v[NDOCS][ROWS * DIM];
    me_doc_t docs[NDOCS];
    char ids[NDOCS][16];
    me_rng_t rng = { 11 };
    for (int i = 0; i < NDOCS; i++) {
        for (int j = 0; j < ROWS * DIM; j++) v[i][j] = (float)me_rng_normal(&rng);
        snprintf(ids[i], sizeof ids[i], "d-%d", (i * 17) % NDOCS);
        docs[i] = (me_doc_t){ .id = ids[i], .vectors = v[i], .rows = ROWS };
    }
    me_status_t st;
    ASSERT_OK(me_client_upsert(cli, "c", docs, NDOCS, DIM, &st));
}

static void query(float *q, uint64_t seed) {
    me_rng_t rng = { seed };
    for (int j = 0; j < 4 * DIM; j++) q[j] = (float)me_rng_normal(&rng);
}

/* (offset 0, k 20)[10:20] == (offset 10, k 10), ids and scores, and an
 * offset past the end is an empty page. */
static void check_pages(me_client_t *cli, int exact) {
    float q[4 * DIM];
    query(q, 5);
    me_search_opts_t whole = { .k = 20, .exact = exact }, page = { .k = 10, .offset = 10, .exact = exact };
    me_results_t a, b;
    me_status_t st;
    ASSERT_OK(me_client_search(cli, "c", q, 4, DIM, &whole, &a, &st));
    ASSERT_OK(me_client_search(cli, "c", q, 4, DIM, &page, &b, &st));
    ASSERT_EQ(a.n, 20);
    ASSERT_EQ(b.n, 10);
    for (size_t i = 0; i < 10; i++) {
        ASSERT_STREQ(b.hits[i].id, a.hits[10 + i].id);
        ASSERT_TRUE(b.hits[i].score == a.hits[10 + i].score);
    }
    me_results_free(&a);
    me_results_free(&b);
    me_search_opts_t past = { .k = 10, .offset = 1000, .exact = exact };
    ASSERT_OK(me_client_search(cli, "c", q, 4, DIM, &past, &a, &st));
    ASSERT_EQ(a.n, 0);
    me_results_free(&a);
}

/* k + offset over the shards' --max-k (10000) is refused naming both. */
static void check_max_k(me_client_t *cli) {
    float q[4 * DIM];
    query(q, 6);
    me_search_opts_t o = { .k = 6000, .offset = 5000 };
    me_results_t res;
    me_status_t st;
    ASSERT_EQ(me_client_search(cli, "c", q, 4, DIM, &o, &res, &st), ME_CODE_INVALID_ARGUMENT);
    ASSERT_TRUE(strstr(st.message, "k=6000") && strstr(st.message, "offset=5000") && strstr(st.message, "--max-k"));
    o = (me_search_opts_t){ .k = 0, .offset = 5 };
    ASSERT_EQ(me_client_search(cli, "c", q, 4, DIM, &o, &res, &st), ME_CODE_INVALID_ARGUMENT);
    ASSERT_TRUE(strstr(st.message, "k must be at least 1") != NULL);
    o = (me_search_opts_t){ .k = 10, .offset = 4294967295u };
    ASSERT_EQ(me_client_search(cli, "c", q, 4, DIM, &o, &res, &st), ME_CODE_INVALID_ARGUMENT);
}

TEST(search_offset_pages_one_ranking_cluster_and_shard) {
    cluster_t c;
    ASSERT_OK(cluster_start(&c, 2, 1, NULL));
    me_client_t *cli = cluster_client(&c, DIM, ROWS);
    ASSERT_TRUE(cli != NULL);
    upsert_docs(cli);
    check_pages(cli, 0);
    check_pages(cli, 1);
    check_max_k(cli);
    /* The same on one shard alone (it holds part of the documents). */
    me_status_t st;
    me_client_t *shard = me_client_connect(c.shards[0].endpoint, 5000, &st);
    ASSERT_TRUE(shard != NULL);
    check_pages(shard, 0);
    check_pages(shard, 1);
    check_max_k(shard);
    me_client_close(shard);
    me_client_close(cli);
    cluster_stop(&c);
}

/* Every id once, in byte order, a page of `limit` at a time. */
static void scroll(me_client_t *cli, uint32_t limit, size_t want) {
    char *after = NULL, *prev = NULL;
    size_t total = 0, pages = 0;
    for (;;) {
        char **ids, *next;
        size_t n;
        me_status_t st;
        ASSERT_OK(me_client_list_ids(cli, "c", after, limit, &ids, &n, &next, &st));
        ASSERT_TRUE(n <= limit);
        for (size_t i = 0; i < n; i++) {
            if (prev) ASSERT_TRUE(strcmp(prev, ids[i]) < 0);  /* ascending, so no id twice */
            free(prev);
            prev = strdup(ids[i]);
        }
        total += n;
        pages++;
        if (next) ASSERT_STREQ(next, ids[n - 1]);
        me_ids_free(ids, n);
        free(after);
        after = next;
        if (!after) break;
    }
    free(prev);
    ASSERT_EQ(total, want);
    ASSERT_EQ(pages, (want + limit - 1) / limit);  /* the last full page already says it is the end */
}

/* A ListIds request packed by hand, so its cursor can hold a NUL. */
static int raw_list_ids(me_client_t *cli, const char *after, size_t alen, me_status_t *st) {
    uint8_t buf[600];
    size_t n = 0;
    buf[n++] = 0x0a;  /* field 1, collection */
    buf[n++] = 1;
    buf[n++] = 'c';
    buf[n++] = 0x12;  /* field 2, after */
    buf[n++] = (uint8_t)alen;
    memcpy(buf + n, after, alen);
    n += alen;
    void *rep = NULL;
    size_t len = 0;
    int rc = me_client_call(cli, METAEMBED__METHOD__METHOD_LIST_IDS, buf, n, &rep, &len, st);
    free(rep);
    return rc;
}

static void check_hostile_list_ids(me_client_t *cli) {
    char **ids, *next;
    size_t n;
    me_status_t st;
    ASSERT_EQ(me_client_list_ids(cli, "c", NULL, 10001, &ids, &n, &next, &st), ME_CODE_INVALID_ARGUMENT);
    ASSERT_TRUE(strstr(st.message, "limit=10001") && strstr(st.message, "1..10000"));
    ASSERT_EQ(me_client_list_ids(cli, "c", NULL, 4294967295u, &ids, &n, &next, &st), ME_CODE_INVALID_ARGUMENT);
    ASSERT_EQ(me_client_list_ids(cli, "nope", NULL, 10, &ids, &n, &next, &st), ME_CODE_NOT_FOUND);
    ASSERT_TRUE(strstr(st.message, "nope") != NULL);
    char long_id[300];
    memset(long_id, 'x', 257);
    long_id[257] = 0;
    ASSERT_EQ(me_client_list_ids(cli, "c", long_id, 10, &ids, &n, &next, &st), ME_CODE_INVALID_ARGUMENT);
    ASSERT_TRUE(strstr(st.message, "after") != NULL);
    ASSERT_EQ(raw_list_ids(cli, "d-\0z", 4, &st), ME_CODE_INVALID_ARGUMENT);
    ASSERT_TRUE(strstr(st.message, "ListIdsRequest.after holds a NUL") != NULL);
    ASSERT_EQ(raw_list_ids(cli, "\xff", 1, &st), ME_CODE_INVALID_ARGUMENT);
    /* limit 0 on the wire is the default page (1000); the HTTP and CLI front ends refuse 0. */
    ASSERT_OK(me_client_list_ids(cli, "c", NULL, 0, &ids, &n, &next, &st));
    ASSERT_EQ(n, NDOCS);
    ASSERT_TRUE(next == NULL);
    me_ids_free(ids, n);
    /* A cursor that is no stored id still means "after it". */
    ASSERT_OK(me_client_list_ids(cli, "c", "d-50x", 1000, &ids, &n, &next, &st));
    ASSERT_TRUE(n > 0 && strcmp(ids[0], "d-50x") > 0);
    ASSERT_STREQ(ids[0], "d-51");
    me_ids_free(ids, n);
}

TEST(list_ids_scrolls_every_id_once_in_byte_order) {
    cluster_t c;
    ASSERT_OK(cluster_start(&c, 2, 1, NULL));
    me_client_t *cli = cluster_client(&c, DIM, ROWS);
    ASSERT_TRUE(cli != NULL);
    upsert_docs(cli);
    scroll(cli, 7, NDOCS);
    scroll(cli, 1, NDOCS);
    scroll(cli, NDOCS, NDOCS);
    scroll(cli, 1000, NDOCS);
    check_hostile_list_ids(cli);
    /* One shard alone lists its own share, in order too. */
    me_status_t st;
    me_client_t *shard = me_client_connect(c.shards[0].endpoint, 5000, &st);
    ASSERT_TRUE(shard != NULL);
    me_collection_info_t *ci;
    size_t nc;
    ASSERT_OK(me_client_list_collections(shard, &ci, &nc, &st));
    ASSERT_EQ(nc, 1);
    scroll(shard, 5, ci[0].documents);
    free(ci);
    me_client_close(shard);
    /* Deleted ids leave the listing. */
    const char *gone[] = { "d-0", "d-1" };
    uint32_t deleted;
    ASSERT_OK(me_client_delete(cli, "c", gone, 2, &deleted, &st));
    scroll(cli, 7, NDOCS - 2);
    me_client_close(cli);
    cluster_stop(&c);
}

/* The coordinator's stages are summed over the groups: the coarse stage
 * read every document of the cluster, not one group's share. */
TEST(search_stages_sum_candidates_over_groups) {
    cluster_t c;
    ASSERT_OK(cluster_start(&c, 2, 1, NULL));
    me_client_t *cli = cluster_client(&c, DIM, ROWS);
    ASSERT_TRUE(cli != NULL);
    upsert_docs(cli);
    float q[4 * DIM];
    query(q, 8);
    me_search_opts_t cascade = { .k = 5, .candidates = 10 }, exact = { .k = 5, .exact = 1 };
    const me_search_opts_t *opts[] = { &cascade, &exact };
    const char *first[] = { "coarse", "exact" };
    for (int o = 0; o < 2; o++) {
        me_results_t res;
        me_status_t st;
        ASSERT_OK(me_client_search(cli, "c", q, 4, DIM, opts[o], &res, &st));
        ASSERT_EQ(res.documents, NDOCS);
        ASSERT_TRUE(res.n_stages >= 2);
        ASSERT_STREQ(res.stages[0].stage, first[o]);
        ASSERT_EQ(res.stages[0].in, NDOCS);
        /* each group keeps its own survivors: the sum is over both */
        if (o == 0) ASSERT_EQ(res.stages[0].out, 20);
        ASSERT_STREQ(res.stages[res.n_stages - 1].stage, "fanout");
        me_results_free(&res);
    }
    me_client_close(cli);
    cluster_stop(&c);
}
