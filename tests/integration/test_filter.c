/* Filtered search through a real shard process: 10,000 documents with
 * keyword, keyword-array, integer, float and bool payload fields; filters
 * of every clause kind at selectivities from 100% down to 0.01% (one
 * document) and 0%; exact and cascade results equal a brute force computed
 * here over the matching documents only (ids and order, k results when k
 * match); Count and filtered ListIds equal the brute-force sets; payload
 * updates, deletes and delete-by-filter are reflected; a restart and a
 * kill -9 keep the indexes consistent with the data; fields indexed later
 * cover the stored documents; bad filters and badly typed payloads get
 * INVALID_ARGUMENT and the shard keeps serving. Then the same through a
 * 2-group cluster (count summed, ids merged, delete by filter everywhere). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/wire.h"
#include "tests/brute.h"
#include "tests/cluster.h"
#include "tests/daemon.h"
#include "tests/harness.h"

#define N 10000
#define DIM 32
#define ROWS 8
#define QROWS 4
#define NQ 3
#define FIELDS "cat:keyword,tags:keyword,year:integer,price:float,flag:bool,code:keyword"

/* One document's payload as the test knows it (tags: bit 0 "a", 1 "b", 2 "c"). */
typedef struct {
    int has_meta, cat, tags, has_year, year, has_flag, flag, code;
    double price;
} pay_t;

typedef struct {
    corpus_t cp;   /* vectors and alive flags (tests/brute.h) */
    pay_t pay[N];
    float queries[NQ][QROWS * DIM];
} world_t;

static void doc_id(char *out, size_t cap, int i) { snprintf(out, cap, "f-%05d", i); }

static pay_t pay_of(int i) {
    pay_t p = { .has_meta = 1, .cat = i % 10, .has_year = i % 13 != 0, .year = 1990 + i % 40,
                .price = (double)(i % 1000) / 10.0, .has_flag = i % 17 != 0, .flag = i % 2 == 0, .code = i };
    p.tags = (i % 3 == 0) | (i % 7 == 0) << 1 | (i % 11 == 0) << 2;
    return p;
}

/* The metadata JSON of a payload (malloc'd; NULL for none). */
static char *meta_json(const pay_t *p, size_t *len) {
    if (!p->has_meta) { *len = 0; return NULL; }
    me_json_writer_t w;
    me_json_writer_init_buf(&w);
    me_json_obj_begin(&w, NULL);
    char s[32];
    snprintf(s, sizeof s, "c%d", p->cat);
    me_json_put_str(&w, "cat", s);
    me_json_arr_begin(&w, "tags");
    if (p->tags & 1) me_json_put_str(&w, NULL, "a");
    if (p->tags & 2) me_json_put_str(&w, NULL, "b");
    if (p->tags & 4) me_json_put_str(&w, NULL, "c");
    me_json_arr_end(&w);
    if (p->has_year) me_json_put_int(&w, "year", p->year);
    me_json_put_num(&w, "price", p->price);
    if (p->has_flag) me_json_put_bool(&w, "flag", p->flag);
    snprintf(s, sizeof s, "k%d", p->code);
    me_json_put_str(&w, "code", s);
    me_json_put_str(&w, "text", "not indexed as a field");
    me_json_obj_end(&w);
    char *out = me_json_writer_take(&w, len);
    me_json_writer_free(&w);
    return out;
}

/* The filters, each as the expression the shard gets and the same
 * predicate in C. */
typedef struct {
    const char *text;
    int (*pred)(const pay_t *p);
} filt_t;

static int f_all(const pay_t *p) { (void)p; return 1; }
static int f_flag(const pay_t *p) { return p->has_meta && p->has_flag && p->flag; }
static int f_cat_year(const pay_t *p) {
    return p->has_meta && (p->cat == 1 || p->cat == 2) && p->has_year && p->year >= 2010;
}
static int f_cat3(const pay_t *p) { return p->has_meta && p->cat == 3; }
static int f_b_notflag(const pay_t *p) { return p->has_meta && (p->tags & 2) && !(p->has_flag && p->flag); }
static int f_or(const pay_t *p) {
    return p->has_meta && ((p->has_year && p->year >= 2000 && p->year < 2002) || p->price < 1.5);
}
static int f_tag_price(const pay_t *p) { return p->has_meta && (p->tags & 4) && p->price >= 50 && p->price <= 60; }
static int f_codes(const pay_t *p) { return p->has_meta && (p->code == 17 || p->code == 4242 || p->code == 9999); }
static int f_code1(const pay_t *p) { return p->has_meta && p->code == 4242; }
static int f_noyear(const pay_t *p) { return !(p->has_meta && p->has_year) && !(p->has_meta && p->cat == 0); }
static int f_json(const pay_t *p) {
    return p->has_meta && p->has_flag && !p->flag && ((p->tags & 5) || (p->has_year && p->year < 1995));
}
static int f_none(const pay_t *p) { (void)p; return 0; }

static const filt_t filters[] = {
    { NULL, f_all },
    { "flag=true", f_flag },
    { "cat IN (c1, c2) AND year>=2010", f_cat_year },
    { "cat=c3", f_cat3 },
    { "tags=b AND NOT flag=true", f_b_notflag },
    { "year>=2000 AND year<2002 OR price<1.5", f_or },
    { "tags IN (c) AND price>=50 AND price<=60", f_tag_price },
    { "code IN (k17, k4242, 'k9999')", f_codes },
    { "code=k4242", f_code1 },
    { "NOT year EXISTS AND cat!=c0", f_noyear },
    { "{\"must\": [{\"field\": \"flag\", \"match\": false}], \"should\": [{\"field\": \"tags\", \"any\": [\"a\", \"c\"]},"
      " {\"must\": [{\"field\": \"year\", \"range\": {\"lt\": 1995}}]}]}", f_json },
    { "cat=nope", f_none },
};
#define NFILTERS (int)(sizeof filters / sizeof filters[0])

static void upsert_docs(me_client_t *c, world_t *w, const int *which, int n) {
    me_doc_t docs[500];
    char ids[500][16], *metas[500];
    for (int at = 0; at < n; at += 500) {
        int m = n - at < 500 ? n - at : 500;
        for (int k = 0; k < m; k++) {
            int i = which[at + k];
            size_t len;
            doc_id(ids[k], sizeof ids[k], i);
            metas[k] = meta_json(&w->pay[i], &len);
            docs[k] = (me_doc_t){ .id = ids[k], .vectors = w->cp.vecs + (size_t)i * ROWS * DIM, .rows = ROWS,
                                  .metadata = metas[k], .metadata_len = len };
            w->cp.alive[i] = 1;
        }
        me_status_t st;
        int rc = me_client_upsert(c, "f", docs, (size_t)m, DIM, &st);
        if (rc) fprintf(stderr, "    upsert: %s\n", st.message);
        ASSERT_EQ(rc, 0);
        for (int k = 0; k < m; k++) free(metas[k]);
    }
}

static void world_init(world_t *w) {
    w->cp = (corpus_t){ .ndocs = N, .dim = DIM, .rows = ROWS };
    w->cp.vecs = malloc((size_t)N * ROWS * DIM * sizeof *w->cp.vecs);
    w->cp.alive = calloc(N, sizeof *w->cp.alive);
    me_rng_t rng = { 77 };
    for (size_t j = 0; j < (size_t)N * ROWS * DIM; j++) w->cp.vecs[j] = (float)me_rng_normal(&rng);
    for (int q = 0; q < NQ; q++)
        for (int j = 0; j < QROWS * DIM; j++) w->queries[q][j] = (float)me_rng_normal(&rng);
    for (int i = 0; i < N; i++) w->pay[i] = pay_of(i);
}

static int matching(const world_t *w, const filt_t *f, int *alive) {
    int n = 0;
    for (int i = 0; i < N; i++) {
        alive[i] = w->cp.alive[i] && f->pred(&w->pay[i]);
        n += alive[i];
    }
    return n;
}

/* Exact search, and the cascade with every matching document surviving
 * (n1 = n2 = N), and the default cascade where the matches fit its
 * survivors: each equals brute force over the matching documents. */
static void check_search(me_client_t *c, world_t *w, const filt_t *f, uint32_t k) {
    int *alive = malloc(N * sizeof *alive), *saved = w->cp.alive;
    int nmatch = matching(w, f, alive);
    double *scores = malloc(N * sizeof *scores);
    corpus_t view = w->cp;
    view.alive = alive;
    for (int q = 0; q < NQ; q++) {
        brute(&view, w->queries[q], QROWS, ROWS, scores);
        for (int mode = 0; mode < 3; mode++) {
            if (mode == 2 && nmatch > 400) continue;
            me_search_opts_t o = { .k = k, .exact = mode == 0, .filter = f->text };
            if (mode == 1) o.candidates = o.refine_candidates = N;
            me_results_t res;
            me_status_t st;
            int rc = me_client_search(c, "f", w->queries[q], QROWS, DIM, &o, &res, &st);
            if (rc) fprintf(stderr, "    search [%s]: %s\n", f->text ? f->text : "-", st.message);
            ASSERT_EQ(rc, 0);
            check_against_brute(&res, scores, N, (int)k, "f");
            /* The filter is a stage of its own, counting what it let through. */
            if (f->text) {
                ASSERT_STREQ(res.stages[0].stage, "filter");
                ASSERT_EQ(res.stages[0].out, (uint64_t)nmatch);
            }
            me_results_free(&res);
        }
    }
    w->cp.alive = saved;
    free(alive);
    free(scores);
}

static void check_count(me_client_t *c, world_t *w, const filt_t *f) {
    int *alive = malloc(N * sizeof *alive);
    int nmatch = matching(w, f, alive);
    uint64_t n = 0;
    me_status_t st;
    int rc = me_client_count(c, "f", f->text, &n, &st);
    if (rc) fprintf(stderr, "    count [%s]: %s\n", f->text ? f->text : "-", st.message);
    ASSERT_EQ(rc, 0);
    ASSERT_EQ(n, (uint64_t)nmatch);
    free(alive);
}

/* Every matching id, in order, through a scroll of pages of 700. */
static void check_ids(me_client_t *c, world_t *w, const filt_t *f) {
    int *alive = malloc(N * sizeof *alive);
    matching(w, f, alive);
    char *cursor = NULL, want[16];
    int next = 0;
    for (;;) {
        char **ids, *after;
        size_t n;
        me_status_t st;
        ASSERT_OK(me_client_list_ids_where(c, "f", f->text, cursor, 700, &ids, &n, &after, &st));
        for (size_t k = 0; k < n; k++) {
            while (next < N && !alive[next]) next++;
            ASSERT_TRUE(next < N);
            doc_id(want, sizeof want, next++);
            ASSERT_STREQ(ids[k], want);
        }
        me_ids_free(ids, n);
        free(cursor);
        cursor = after;
        if (!cursor) break;
    }
    while (next < N && !alive[next]) next++;
    ASSERT_EQ(next, N);
    free(alive);
}

static void check_all(me_client_t *c, world_t *w, int with_ids) {
    for (int f = 0; f < NFILTERS; f++) {
        check_count(c, w, &filters[f]);
        check_search(c, w, &filters[f], f == 7 ? 50 : 10);
        if (with_ids && (f == 3 || f == 7 || f == 8 || f == 11)) check_ids(c, w, &filters[f]);
    }
}

static void expect_invalid(me_client_t *c, const char *filter, const char *needle) {
    me_search_opts_t o = { .k = 5, .filter = filter };
    float q[DIM] = { 1 };
    me_results_t res;
    me_status_t st;
    int rc = me_client_search(c, "f", q, 1, DIM, &o, &res, &st);
    if (rc != ME_CODE_INVALID_ARGUMENT || !strstr(st.message, needle))
        fprintf(stderr, "    filter %s: got %d '%s', wanted INVALID_ARGUMENT with '%s'\n", filter, rc, st.message, needle);
    ASSERT_EQ(rc, ME_CODE_INVALID_ARGUMENT);
    ASSERT_TRUE(strstr(st.message, needle) != NULL);
}

/* A SearchRequest with the given filter, packed by hand as an attacker
 * would (no client-side parser in the way): its status. */
static int raw_search(me_client_t *c, Metaembed__Filter *f, char *msg, size_t cap) {
    float q[DIM] = { 1 };
    uint32_t shape[2] = { 1, DIM };
    Metaembed__Tensor t = METAEMBED__TENSOR__INIT;
    t.dtype = METAEMBED__DTYPE__DTYPE_F32;
    t.shape = shape;
    t.n_shape = 2;
    t.data.data = (uint8_t *)q;
    t.data.len = sizeof q;
    Metaembed__SearchRequest req = METAEMBED__SEARCH_REQUEST__INIT;
    req.collection = "f";
    req.query = &t;
    req.k = 3;
    req.filter = f;
    size_t len = metaembed__search_request__get_packed_size(&req);
    uint8_t *buf = malloc(len);
    metaembed__search_request__pack(&req, buf);
    void *rep = NULL;
    size_t rlen = 0;
    me_status_t st;
    int rc = me_client_call(c, METAEMBED__METHOD__METHOD_SEARCH, buf, len, &rep, &rlen, &st);
    snprintf(msg, cap, "%s", st.message);
    free(buf);
    free(rep);
    return rc;
}

static void bad_input(me_client_t *c, world_t *w) {
    expect_invalid(c, "colour=red", "not indexed");
    expect_invalid(c, "cat>=3", "range on 'cat'");
    expect_invalid(c, "year='nineteen'", "integer field");
    expect_invalid(c, "flag=1", "bool field");
    expect_invalid(c, "price=3", "use a range");
    expect_invalid(c, "cat=c1 AND (year>1", "filter");
    expect_invalid(c, "((((((((cat=c1 OR flag=true) AND year>2) OR flag=false) AND year>3) OR flag=true) AND year>4) OR "
                      "flag=false) AND year>5)", "deeper");
    char big[8192] = "cat=c0";
    for (int i = 0; i < 300; i++) strcat(big, " OR cat=c1");
    expect_invalid(c, big, "conditions");
    /* Hand-made messages the parser would never write. */
    char msg[512];
    Metaembed__Condition empty = METAEMBED__CONDITION__INIT, *ep = &empty;
    Metaembed__Filter f = METAEMBED__FILTER__INIT;
    f.must = &ep;
    f.n_must = 1;
    ASSERT_EQ(raw_search(c, &f, msg, sizeof msg), ME_CODE_INVALID_ARGUMENT);
    ASSERT_TRUE(strstr(msg, "empty condition") != NULL);
    double b[2] = { 1, 2 }, nan = NAN;
    Metaembed__Range r = METAEMBED__RANGE__INIT;
    r.field = "year";
    r.gte = b;
    r.n_gte = 2;
    Metaembed__Condition rc_ = METAEMBED__CONDITION__INIT, *rp = &rc_;
    rc_.condition_case = METAEMBED__CONDITION__CONDITION_RANGE;
    rc_.range = &r;
    f.must = &rp;
    ASSERT_EQ(raw_search(c, &f, msg, sizeof msg), ME_CODE_INVALID_ARGUMENT);
    ASSERT_TRUE(strstr(msg, "at most once") != NULL);
    r.n_gte = 1;
    r.gte = &nan;
    ASSERT_EQ(raw_search(c, &f, msg, sizeof msg), ME_CODE_INVALID_ARGUMENT);
    ASSERT_TRUE(strstr(msg, "finite") != NULL);
    Metaembed__Match m = METAEMBED__MATCH__INIT;
    char *kw[1] = { "c1" };
    int64_t ints[1] = { 3 };
    m.field = "cat";
    m.keywords = kw;
    m.n_keywords = 1;
    m.integers = ints;
    m.n_integers = 1;
    Metaembed__Condition mc = METAEMBED__CONDITION__INIT, *mp = &mc;
    mc.condition_case = METAEMBED__CONDITION__CONDITION_MATCH;
    mc.match = &m;
    f.must = &mp;
    ASSERT_EQ(raw_search(c, &f, msg, sizeof msg), ME_CODE_INVALID_ARGUMENT);
    ASSERT_TRUE(strstr(msg, "one type") != NULL);
    /* Nested 7 deep by hand. */
    Metaembed__Filter lv[8];
    Metaembed__Condition lc[8], *lcp[8];
    for (int i = 0; i < 8; i++) {
        metaembed__filter__init(&lv[i]);
        metaembed__condition__init(&lc[i]);
        lcp[i] = &lc[i];
    }
    for (int i = 0; i < 7; i++) {
        lc[i].condition_case = METAEMBED__CONDITION__CONDITION_FILTER;
        lc[i].filter = &lv[i + 1];
        lv[i].must = &lcp[i];
        lv[i].n_must = 1;
    }
    lc[7].condition_case = METAEMBED__CONDITION__CONDITION_EXISTS;
    lc[7].exists = "cat";
    lv[7].must = &lcp[7];
    lv[7].n_must = 1;
    ASSERT_EQ(raw_search(c, &lv[0], msg, sizeof msg), ME_CODE_INVALID_ARGUMENT);
    ASSERT_TRUE(strstr(msg, "deeper") != NULL);
    /* A payload of the wrong type: the batch is refused, naming both. */
    me_doc_t d = { .id = "bad", .vectors = w->cp.vecs, .rows = ROWS, .metadata = "{\"year\": \"nineteen\"}",
                   .metadata_len = strlen("{\"year\": \"nineteen\"}") };
    me_status_t st;
    ASSERT_EQ(me_client_upsert(c, "f", &d, 1, DIM, &st), ME_CODE_INVALID_ARGUMENT);
    ASSERT_TRUE(strstr(st.message, "'bad'") && strstr(st.message, "'year'"));
    d.metadata = "{\"tags\": [\"a\", 3]}";
    d.metadata_len = strlen(d.metadata);
    ASSERT_EQ(me_client_upsert(c, "f", &d, 1, DIM, &st), ME_CODE_INVALID_ARGUMENT);
    ASSERT_TRUE(strstr(st.message, "'tags'") != NULL);
    uint64_t n;
    ASSERT_OK(me_client_count(c, "f", NULL, &n, &st));  /* still serving, nothing written */
    uint32_t del;
    ASSERT_EQ(me_client_delete_where(c, "f", "year>=", &del, &st), ME_CODE_INVALID_ARGUMENT);
}

/* Changes some payloads, removes one, deletes some documents and then
 * every document a filter matches; the test's model follows. */
static void mutate(me_client_t *c, world_t *w) {
    int changed[3] = { 3, 13, 4242 };
    w->pay[3].cat = 9;           /* leaves cat=c3 */
    w->pay[13].has_meta = 0;     /* no payload at all now */
    w->pay[4242].code = 1;       /* the one-document filter now matches nothing */
    upsert_docs(c, w, changed, 3);
    const char *gone[2] = { "f-00017", "f-09999" };
    uint32_t deleted = 0;
    me_status_t st;
    ASSERT_OK(me_client_delete(c, "f", gone, 2, &deleted, &st));
    ASSERT_EQ(deleted, 2);
    w->cp.alive[17] = w->cp.alive[9999] = 0;
    int expect = 0;
    for (int i = 0; i < N; i++) {
        const pay_t *p = &w->pay[i];
        if (w->cp.alive[i] && p->has_meta && p->cat == 7 && p->has_year && p->year < 2000) {
            w->cp.alive[i] = 0;
            expect++;
        }
    }
    ASSERT_OK(me_client_delete_where(c, "f", "cat=c7 AND year<2000", &deleted, &st));
    ASSERT_EQ(deleted, (uint32_t)expect);
    uint64_t n;
    ASSERT_OK(me_client_count(c, "f", "cat=c7 AND year<2000", &n, &st));
    ASSERT_EQ(n, 0);
}

TEST(filter_exact_at_every_selectivity_through_updates_restart_and_kill9) {
    me_daemon_t d = { 0 };
    ASSERT_OK(me_daemon_start(&d, "metaembed-shard", "filter"));
    me_collection_spec_t spec = { .name = "f", .dim = DIM, .max_doc_vectors = ROWS, .max_query_vectors = QROWS,
                                  .dtype = "f32", .fields = FIELDS };
    me_client_t *c = me_daemon_client_with(&d, &spec);
    ASSERT_TRUE(c != NULL);
    world_t *w = calloc(1, sizeof *w);
    world_init(w);
    int *all = malloc(N * sizeof *all);
    for (int i = 0; i < N; i++) all[i] = i;
    upsert_docs(c, w, all, N);
    check_all(c, w, 1);
    bad_input(c, w);
    mutate(c, w);
    check_all(c, w, 1);

    /* Restart: the indexes come back from the fld records. */
    me_client_close(c);
    ASSERT_EQ(me_daemon_stop(&d, 0), 0);
    ASSERT_OK(me_daemon_restart(&d));
    ASSERT_TRUE((c = me_daemon_client(&d)) != NULL);
    check_all(c, w, 0);

    /* kill -9 right after acknowledged payload changes. */
    int changed[2] = { 6, 4000 };
    w->pay[6].flag = 0;
    w->pay[4000].tags = 2;
    upsert_docs(c, w, changed, 2);
    me_client_close(c);
    me_daemon_stop(&d, 1);
    ASSERT_OK(me_daemon_restart(&d));
    ASSERT_TRUE((c = me_daemon_client(&d)) != NULL);
    check_all(c, w, 0);
    me_client_close(c);
    me_daemon_free(&d);
    free(all);
    free(w->cp.vecs);
    free(w->cp.alive);
    free(w);
}

/* Fields indexed after the documents are stored cover them; a stored
 * document whose value has another type stops it with nothing changed. */
TEST(filter_fields_indexed_later_cover_stored_documents) {
    me_daemon_t d = { 0 };
    ASSERT_OK(me_daemon_start(&d, "metaembed-shard", "filter-later"));
    me_collection_spec_t spec = { .name = "f", .dim = DIM, .max_doc_vectors = ROWS, .dtype = "f32" };
    me_client_t *c = me_daemon_client_with(&d, &spec);
    ASSERT_TRUE(c != NULL);
    world_t *w = calloc(1, sizeof *w);
    world_init(w);
    int some[600];
    for (int i = 0; i < 600; i++) some[i] = i;
    upsert_docs(c, w, some, 600);
    me_status_t st;
    uint64_t n, indexed = 0;
    ASSERT_EQ(me_client_count(c, "f", "cat=c3", &n, &st), ME_CODE_INVALID_ARGUMENT);
    ASSERT_TRUE(strstr(st.message, "not indexed") != NULL);
    /* A stored year of another type: refused, naming the document. */
    me_doc_t bad = { .id = "odd", .vectors = w->cp.vecs, .rows = ROWS, .metadata = "{\"year\": \"MMXX\"}",
                     .metadata_len = strlen("{\"year\": \"MMXX\"}") };
    ASSERT_OK(me_client_upsert(c, "f", &bad, 1, DIM, &st));
    ASSERT_EQ(me_client_index_fields(c, "f", "cat:keyword,year:integer", &indexed, &st), ME_CODE_INVALID_ARGUMENT);
    ASSERT_TRUE(strstr(st.message, "'odd'") != NULL);
    ASSERT_EQ(me_client_count(c, "f", "cat=c3", &n, &st), ME_CODE_INVALID_ARGUMENT);  /* nothing changed */
    const char *odd[1] = { "odd" };
    ASSERT_OK(me_client_delete(c, "f", odd, 1, NULL, &st));
    ASSERT_OK(me_client_index_fields(c, "f", "cat:keyword,year:integer", &indexed, &st));
    ASSERT_EQ(indexed, 600);  /* every document has a cat */
    /* The same again is no change; another type for a field is refused. */
    ASSERT_OK(me_client_index_fields(c, "f", "cat:keyword", &indexed, &st));
    ASSERT_EQ(me_client_index_fields(c, "f", "cat:integer", &indexed, &st), ME_CODE_INVALID_ARGUMENT);
    int want = 0;
    for (int i = 0; i < 600; i++) want += f_cat_year(&w->pay[i]);
    ASSERT_OK(me_client_count(c, "f", "cat IN (c1, c2) AND year>=2010", &n, &st));
    ASSERT_EQ(n, (uint64_t)want);
    /* New documents are indexed too, and all of it survives a restart. */
    int more[100];
    for (int i = 0; i < 100; i++) more[i] = 600 + i;
    upsert_docs(c, w, more, 100);
    want = 0;
    for (int i = 0; i < 700; i++) want += f_cat_year(&w->pay[i]);
    me_client_close(c);
    ASSERT_EQ(me_daemon_stop(&d, 0), 0);
    ASSERT_OK(me_daemon_restart(&d));
    ASSERT_TRUE((c = me_daemon_client(&d)) != NULL);
    ASSERT_OK(me_client_count(c, "f", "cat IN (c1, c2) AND year>=2010", &n, &st));
    ASSERT_EQ(n, (uint64_t)want);
    me_collection_info_t *cs;
    size_t nc;
    ASSERT_OK(me_client_list_collections(c, &cs, &nc, &st));
    ASSERT_EQ(nc, 1);
    ASSERT_STREQ(cs[0].fields, "cat:keyword,year:integer");
    free(cs);
    /* /metrics: searches by mode and filtered, and the selectivity histogram. */
    me_search_opts_t o = { .k = 3, .filter = "cat=c3" };
    me_results_t res;
    float q[QROWS * DIM];
    memcpy(q, w->queries[0], sizeof q);
    ASSERT_OK(me_client_search(c, "f", q, QROWS, DIM, &o, &res, &st));  /* 70 of 700: 10% */
    me_results_free(&res);
    o.filter = NULL;
    ASSERT_OK(me_client_search(c, "f", q, QROWS, DIM, &o, &res, &st));
    me_results_free(&res);
    char *body = NULL;
    ASSERT_EQ(me_test_http_get(d.metrics_port, "/metrics", &body), 200);
    ASSERT_TRUE(strstr(body, "metaembed_searches_total{mode=\"dense\",filtered=\"true\"} 1\n") != NULL);
    ASSERT_TRUE(strstr(body, "metaembed_searches_total{mode=\"dense\",filtered=\"false\"} 1\n") != NULL);
    ASSERT_TRUE(strstr(body, "metaembed_filter_selectivity_bucket{le=\"0.01\"} 0\n") != NULL);
    ASSERT_TRUE(strstr(body, "metaembed_filter_selectivity_bucket{le=\"0.1\"} 1\n") != NULL);
    ASSERT_TRUE(strstr(body, "metaembed_filter_selectivity_count 1\n") != NULL);
    ASSERT_TRUE(strstr(body, "metaembed_search_stage_seconds_count{stage=\"filter\"} 1\n") != NULL);
    const char *fb = strstr(body, "metaembed_collection_field_bytes{collection=\"f\"} ");
    ASSERT_TRUE(fb != NULL);
    ASSERT_TRUE(strtoull(fb + strlen("metaembed_collection_field_bytes{collection=\"f\"} "), NULL, 10) > 700 * 8);
    free(body);
    me_client_close(c);
    me_daemon_free(&d);
    free(w->cp.vecs);
    free(w->cp.alive);
    free(w);
}

/* Through a coordinator over two groups: the same answers as brute force
 * over the union, counts summed, ids merged in order, delete by filter on
 * every group. */
TEST(filter_through_a_two_group_cluster) {
    cluster_t cl;
    memset(&cl, 0, sizeof cl);
    ASSERT_OK(cluster_start(&cl, 2, 1, NULL));
    me_status_t st;
    me_client_t *c = me_daemon_client(&cl.coord);
    ASSERT_TRUE(c != NULL);
    me_collection_spec_t spec = { .name = "f", .dim = DIM, .max_doc_vectors = ROWS, .max_query_vectors = QROWS,
                                  .dtype = "f32", .fields = FIELDS };
    ASSERT_OK(me_client_create_collection(c, &spec, &st));
    world_t *w = calloc(1, sizeof *w);
    world_init(w);
    int some[2000];
    for (int i = 0; i < 2000; i++) some[i] = i;
    upsert_docs(c, w, some, 2000);
    for (int i = 2000; i < N; i++) w->cp.alive[i] = 0;
    static const int picks[] = { 0, 2, 3, 5, 7, 10, 11 };
    for (size_t p = 0; p < sizeof picks / sizeof picks[0]; p++) {
        check_count(c, w, &filters[picks[p]]);
        check_search(c, w, &filters[picks[p]], 10);
    }
    check_ids(c, w, &filters[3]);
    /* A badly typed payload is refused at the coordinator, before any group. */
    me_doc_t bad = { .id = "bad", .vectors = w->cp.vecs, .rows = ROWS, .metadata = "{\"flag\": \"yes\"}",
                     .metadata_len = strlen("{\"flag\": \"yes\"}") };
    ASSERT_EQ(me_client_upsert(c, "f", &bad, 1, DIM, &st), ME_CODE_INVALID_ARGUMENT);
    ASSERT_TRUE(strstr(st.message, "'flag'") != NULL);
    uint32_t deleted = 0;
    int expect = 0;
    for (int i = 0; i < 2000; i++)
        if (f_cat3(&w->pay[i])) { expect++; w->cp.alive[i] = 0; }
    ASSERT_OK(me_client_delete_where(c, "f", "cat=c3", &deleted, &st));
    ASSERT_EQ(deleted, (uint32_t)expect);
    check_count(c, w, &filters[0]);
    check_count(c, w, &filters[3]);
    uint64_t indexed = 0;
    ASSERT_OK(me_client_index_fields(c, "f", "text:keyword", &indexed, &st));
    ASSERT_EQ(indexed, (uint64_t)(2000 - expect));
    me_client_close(c);
    cluster_stop(&cl);
    free(w->cp.vecs);
    free(w->cp.alive);
    free(w);
}
