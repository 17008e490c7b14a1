/* The IVF coarse index in a real shard (issue 19): the background indexer
 * builds it once the collection holds ME_IVF_MIN_DOCS documents (the
 * /metrics gauge says when); probing every list answers exactly what
 * exact mode answers, adaptive probing returns k hits, deleted documents
 * never come back, documents written after the build are found, and a
 * restarted shard builds the index again from what it stored. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shard/ivf.h"
#include "tests/daemon.h"
#include "tests/harness.h"
#include "tests/synthetic.h"

#define DIM 16
#define ROWS 4
#define DOCS 3000
#define BATCH 500

/* The shard's metaembed_coarse_index_lists for collection "v", or -1. */
static long index_lists(const me_daemon_t *d) {
    char *body = NULL;
    long lists = -1;
    if (me_test_http_get(d->metrics_port, "/metrics", &body) == 200 && body) {
        const char *p = strstr(body, "metaembed_coarse_index_lists{collection=\"v\"} ");
        if (p) lists = atol(p + strlen("metaembed_coarse_index_lists{collection=\"v\"} "));
    }
    free(body);
    return lists;
}

static long wait_for_index(const me_daemon_t *d) {
    for (int i = 0; i < 300; i++) {
        long l = index_lists(d);
        if (l > 0) return l;
        usleep(100 * 1000);
    }
    return 0;
}

static int upsert_range(me_client_t *c, const me_synth_t *sp, int first, int n) {
    me_doc_t docs[BATCH];
    static float v[BATCH][ROWS * DIM];
    char ids[BATCH][24];
    me_status_t st;
    for (int off = 0; off < n; off += BATCH) {
        int m = n - off < BATCH ? n - off : BATCH;
        for (int i = 0; i < m; i++) {
            snprintf(ids[i], sizeof ids[i], "d%d", first + off + i);
            me_synth_doc(sp, (uint64_t)(first + off + i), v[i]);
            docs[i] = (me_doc_t){ .id = ids[i], .vectors = v[i], .rows = ROWS };
        }
        if (me_client_upsert(c, "v", docs, (size_t)m, DIM, &st) != 0) {
            fprintf(stderr, "    upsert: %s\n", st.message);
            return -1;
        }
    }
    return 0;
}

/* Searches query q (2 rows) at (2, ROWS); 0 or -1. */
static int search(me_client_t *c, const float *q, const me_search_opts_t *o, me_results_t *r) {
    me_status_t st;
    if (me_client_search(c, "v", q, 2, DIM, o, r, &st) != 0) {
        fprintf(stderr, "    search: %s\n", st.message);
        return -1;
    }
    return 0;
}

static int same_ranking(const me_results_t *a, const me_results_t *b) {
    if (a->n != b->n) return 0;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->hits[i].id, b->hits[i].id) || a->hits[i].score != b->hits[i].score) return 0;
    return 1;
}

static uint64_t coarse_in(const me_results_t *r) {
    for (int i = 0; i < r->n_stages; i++)
        if (!strcmp(r->stages[i].stage, "coarse")) return r->stages[i].in;
    return 0;
}

TEST(coarse_index_built_in_background_searches_exact_and_survives_restart) {
    me_daemon_t d = { 0 };
    ASSERT_OK(me_daemon_start(&d, "metaembed-shard", "ivf"));
    me_collection_spec_t spec = { .name = "v", .dim = DIM, .max_doc_vectors = ROWS, .max_query_vectors = 2,
                                  .dtype = "f32", .coarse_index = "ivf" };
    me_client_t *c = me_daemon_client_with(&d, &spec);
    ASSERT_TRUE(c != NULL);
    me_synth_t sp = me_synth_default(DIM, ROWS, 42);
    /* Below the threshold: no index; the flat scan answers. */
    ASSERT_OK(upsert_range(c, &sp, 0, ME_IVF_MIN_DOCS - 100));
    usleep(400 * 1000);
    ASSERT_EQ(index_lists(&d), 0);
    ASSERT_OK(upsert_range(c, &sp, ME_IVF_MIN_DOCS - 100, DOCS - (ME_IVF_MIN_DOCS - 100)));
    long lists = wait_for_index(&d);
    ASSERT_TRUE(lists >= 16 && lists <= DOCS / 8);  /* 4·√N lists, at most N / 8 */

    /* Deletes and late upserts after the build. */
    const char *gone[3] = { "d7", "d1500", "d2999" };
    me_status_t st;
    uint32_t deleted = 0;
    ASSERT_OK(me_client_delete(c, "v", gone, 3, &deleted, &st));
    ASSERT_EQ(deleted, 3);
    ASSERT_OK(upsert_range(c, &sp, DOCS, 200));

    for (int pass = 0; pass < 2; pass++) {
        for (int qi = 0; qi < 8; qi++) {
            uint64_t target = (uint64_t)(qi * 397 + 5) % (DOCS + 200);
            if (qi == 0) target = 7;  /* a deleted document's own query */
            if (qi == 1) target = DOCS + 50;  /* a document written after the build */
            float q[2 * DIM];
            me_synth_query(&sp, target, (uint64_t)qi, 2, q);
            me_search_opts_t ex = { .r_q = 2, .r_c = ROWS, .k = 10, .exact = 1 };
            me_search_opts_t all = { .r_q = 2, .r_c = ROWS, .k = 10, .candidates = DOCS + 200,
                                     .refine_candidates = DOCS + 200, .probe = ME_IVF_MAX_LISTS };
            me_search_opts_t ad = { .r_q = 2, .r_c = ROWS, .k = 10, .candidates = 100 };  /* scans ~800 */
            me_results_t re, ra, rd;
            ASSERT_OK(search(c, q, &ex, &re));
            ASSERT_OK(search(c, q, &all, &ra));
            ASSERT_OK(search(c, q, &ad, &rd));
            /* Every list probed and every survivor kept: exact's answer. */
            ASSERT_TRUE(same_ranking(&re, &ra));
            ASSERT_EQ(coarse_in(&ra), DOCS + 200 - 3);
            /* Adaptive: k hits from a part of the collection. */
            ASSERT_EQ(rd.n, 10);
            ASSERT_TRUE(coarse_in(&rd) < DOCS + 200 - 3);
            for (size_t i = 0; i < rd.n; i++)
                for (int g = 0; g < 3; g++) ASSERT_TRUE(strcmp(rd.hits[i].id, gone[g]) != 0);
            /* A late document's own query finds it first. */
            if (target >= DOCS) ASSERT_EQ(atoi(rd.hits[0].id + 1), (int)target);
            me_results_free(&re);
            me_results_free(&ra);
            me_results_free(&rd);
        }
        if (pass == 0) {
            /* Restart: the index is not persisted; the shard builds it again. */
            me_client_close(c);
            me_daemon_stop(&d, 0);
            ASSERT_OK(me_daemon_restart(&d));
            ASSERT_TRUE(wait_for_index(&d) >= 16);
            c = me_daemon_client(&d);
            ASSERT_TRUE(c != NULL);
        }
    }
    /* A probe beyond the limit is refused with the reason. */
    float q[2 * DIM];
    me_synth_query(&sp, 1, 1, 2, q);
    me_search_opts_t bad = { .r_q = 2, .r_c = ROWS, .k = 10, .probe = ME_IVF_MAX_LISTS + 1 };
    me_results_t rb;
    ASSERT_TRUE(me_client_search(c, "v", q, 2, DIM, &bad, &rb, &st) != 0);
    ASSERT_TRUE(strstr(st.message, "probe") != NULL);
    me_client_close(c);
    me_daemon_free(&d);
}
