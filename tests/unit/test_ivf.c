/* Stage 1's sub-linear index and cheap tier: the IVF coarse index
 * (shard/ivf.h), whose lists follow the collection's slots through puts,
 * replacements and the swap-on-delete (probing every list gives exactly the
 * flat scan's answers, probing a few keeps most of exact's top 10 on nested
 * data while scanning a fraction, filters hold); and the binary coarse tier
 * (common/bits.h), alone and under IVF. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bits.h"
#include "common/dtype.h"
#include "common/error.h"
#include "shard/collection.h"
#include "shard/indexer.h"
#include "shard/ivf.h"
#include "shard/search.h"
#include "tests/harness.h"
#include "tests/synthetic.h"

enum { DIM = 32, ROWS = 8 };

static me_coll_t *mk(int coarse_index, int lists) {
    me_coll_config_t cfg = { .dim = DIM, .max_doc_vectors = ROWS, .dtype = ME_DTYPE_F16,
                             .coarse_index = coarse_index, .ivf_lists = lists };
    strcpy(cfg.name, "t");
    char err[128];
    if (me_coll_config_check(&cfg, err, sizeof err) != 0) return NULL;
    return me_coll_new(&cfg, 1);
}

static void put_doc(me_coll_t *c, const me_synth_t *sp, uint64_t d, uint64_t as) {
    float f[ROWS * DIM];
    uint16_t h[ROWS * DIM];
    me_synth_doc(sp, d, f);
    for (int i = 0; i < ROWS * DIM; i++) h[i] = me_f32_to_f16(f[i]);
    char id[24];
    snprintf(id, sizeof id, "d%llu", (unsigned long long)as);
    me_coll_put(c, id, strlen(id), ROWS, h, NULL);
}

/* Every slot is in exactly one list, at the position the maps say, and in
 * the list of its nearest centroid. */
static int lists_consistent(me_coll_t *c, const me_ivf_t *ix) {
    me_coll_ivf_flush(c);  /* what a writer does before it lets go of the lock */
    if (ix->assigned != c->n) return 0;
    size_t total = 0;
    for (int l = 0; l < ix->nlist; l++) {
        total += ix->len[l];
        for (uint32_t j = 0; j < ix->len[l]; j++) {
            uint32_t s = ix->members[l][j];
            if (s >= c->n || ix->list_of[s] != l || ix->pos_of[s] != j) return 0;
        }
    }
    if (total != c->n) return 0;
    float v[DIM];
    for (size_t s = 0; s < c->n; s++) {
        me_coll_first_vector(c, s, v);
        if (ix->list_of[s] != me_ivf_nearest(ix, v)) return 0;
    }
    return 1;
}

TEST(ivf_lists_follow_puts_replacements_and_deletes) {
    me_synth_t sp = me_synth_default(DIM, ROWS, 7);
    me_coll_t *c = mk(1, 0);
    ASSERT_TRUE(c != NULL);
    for (uint64_t d = 0; d < 3000; d++) put_doc(c, &sp, d, d);
    ASSERT_OK(me_indexer_build_now(c, 1));
    ASSERT_TRUE(c->ivf != NULL && c->ivf_next == NULL);
    ASSERT_EQ(c->ivf->nlist, me_ivf_auto_lists(3000));
    ASSERT_TRUE(lists_consistent(c, c->ivf));
    me_rng_t r = { 11 };
    for (int op = 0; op < 6000; op++) {
        uint64_t which = me_rng_next(&r) % 4000;
        char id[24];
        snprintf(id, sizeof id, "d%llu", (unsigned long long)which);
        if (me_rng_next(&r) % 3 == 0) me_coll_remove(c, id, strlen(id));
        else put_doc(c, &sp, me_rng_next(&r) % 100000, which);  /* new, or new vectors for an old id */
    }
    ASSERT_TRUE(lists_consistent(c, c->ivf));
    /* Remove everything: the lists empty with the collection. */
    while (c->n) {
        char id[64];
        snprintf(id, sizeof id, "%s", c->ids[c->n / 2]);
        ASSERT_EQ(me_coll_remove(c, id, strlen(id)), 1);
    }
    ASSERT_EQ(c->ivf->assigned, 0);
    me_coll_free(c);
}

/* The index being built is kept in step too: slots put or removed between
 * training and the end of the fill end up exactly once in it. */
TEST(ivf_next_index_kept_in_step_while_filling) {
    me_synth_t sp = me_synth_default(DIM, ROWS, 8);
    me_coll_t *c = mk(1, 64);
    for (uint64_t d = 0; d < 4000; d++) put_doc(c, &sp, d, d);
    float *x = malloc(4000 * DIM * sizeof *x);
    for (size_t s = 0; s < 4000; s++) me_coll_first_vector(c, s, x + s * DIM);
    c->ivf_next = me_ivf_train(x, 4000, DIM, 64, c->n, 3);
    free(x);
    ASSERT_TRUE(c->ivf_next != NULL);
    /* Fill in blocks the way the indexer does, with writes in between:
     * removes from the front (the last, unassigned slot moves below the
     * fill's cursor), new documents and new vectors for old ids. */
    me_rng_t r = { 5 };
    int done = 0, rounds = 0;
    while (!done) {
        for (int i = 0; i < 200; i++) {
            char id[24];
            uint64_t which = me_rng_next(&r) % 6000;
            snprintf(id, sizeof id, "d%llu", (unsigned long long)which);
            if (i % 2) me_coll_remove(c, id, strlen(id));
            else put_doc(c, &sp, 10000 + me_rng_next(&r) % 5000, which);
        }
        done = me_indexer_fill(c, 700);
        ASSERT_TRUE(done >= 0);
        rounds++;
    }
    ASSERT_TRUE(rounds > 3);
    ASSERT_TRUE(c->ivf != NULL && c->ivf_next == NULL);
    ASSERT_EQ(c->ivf_builds, 1);
    ASSERT_TRUE(lists_consistent(c, c->ivf));
    me_coll_free(c);
}

static int same_hits(const me_search_result_t *a, const me_search_result_t *b) {
    if (a->nhits != b->nhits) return 0;
    for (size_t i = 0; i < a->nhits; i++)
        if (a->hits[i].idx != b->hits[i].idx || a->hits[i].score != b->hits[i].score) return 0;
    return 1;
}

static size_t stage_in(const me_search_result_t *r, const char *name) {
    for (int i = 0; i < r->nstages; i++)
        if (!strcmp(r->stages[i].name, name)) return r->stages[i].in;
    return 0;
}

TEST(ivf_probing_every_list_equals_flat_and_few_lists_keep_top10) {
    enum { N = 20000, Q = 20 };
    me_synth_t sp = me_synth_default(DIM, ROWS, 9);
    me_coll_t *flat = mk(0, 0), *ivf = mk(1, 0);
    for (uint64_t d = 0; d < N; d++) {
        put_doc(flat, &sp, d, d);
        put_doc(ivf, &sp, d, d);
    }
    ASSERT_OK(me_indexer_build_now(ivf, 5));
    int nlist = ivf->ivf->nlist;
    size_t words = me_bitmap_words(N);
    uint64_t *allow = calloc(words, sizeof *allow);
    for (size_t s = 0; s < N; s++)
        if (s % 7 == 0) allow[s / 64] |= 1ull << (s % 64);
    double kept = 0;
    size_t scanned = 0;
    char err[128];
    for (int qi = 0; qi < Q; qi++) {
        float q[ROWS * DIM];
        me_synth_query(&sp, (uint64_t)qi * 997 % N, (uint64_t)qi, 4, q);
        for (int filtered = 0; filtered < 2; filtered++) {
            me_search_params_t p = { .query = q, .r_q = 4, .r_c = ROWS, .k = 10, .candidates = 200,
                                     .allow = filtered ? allow : NULL };
            me_search_result_t a, b, e;
            ASSERT_OK(me_search_run(flat, NULL, &p, &a, err, sizeof err));
            p.probe = nlist;  /* every list: the same documents as the flat scan */
            ASSERT_OK(me_search_run(ivf, NULL, &p, &b, err, sizeof err));
            ASSERT_TRUE(same_hits(&a, &b));
            for (size_t i = 0; filtered && i < b.nhits; i++) ASSERT_EQ(b.hits[i].idx % 7, 0);
            p.probe = 0;  /* adaptive: a few lists */
            me_search_result_t f;
            ASSERT_OK(me_search_run(ivf, NULL, &p, &f, err, sizeof err));
            p.exact = 1;
            ASSERT_OK(me_search_run(ivf, NULL, &p, &e, err, sizeof err));
            ASSERT_EQ(f.nhits, 10);
            for (size_t i = 0; i < f.nhits; i++) {
                if (filtered) ASSERT_EQ(f.hits[i].idx % 7, 0);
                for (size_t j = 0; j < e.nhits; j++)
                    if (e.hits[j].idx == f.hits[i].idx) kept += 1;
            }
            if (!filtered) scanned += stage_in(&f, "coarse");
            me_search_result_free(&a);
            me_search_result_free(&b);
            me_search_result_free(&e);
            me_search_result_free(&f);
        }
    }
    /* Adaptive probing scans 8 documents per survivor (200): a tenth of
     * the collection, and keeps nearly all of exact's top 10. */
    double mean_scanned = (double)scanned / Q;
    printf("    ivf: %d lists, adaptive probe scanned %.0f of %d, kept %.3f of exact's top 10\n", nlist, mean_scanned,
           N, kept / (Q * 2 * 10));
    ASSERT_TRUE(mean_scanned < N / 4.0);
    ASSERT_TRUE(kept / (Q * 2 * 10) >= 0.85);
    free(allow);
    me_coll_free(flat);
    me_coll_free(ivf);
}

/* A filter allowing fewer documents than the probe would scan: stage 1
 * scans exactly those (every allowed document is a candidate). */
TEST(ivf_narrow_filter_scans_the_filter_not_the_lists) {
    me_synth_t sp = me_synth_default(DIM, ROWS, 10);
    me_coll_t *ivf = mk(1, 0), *flat = mk(0, 0);
    for (uint64_t d = 0; d < 5000; d++) {
        put_doc(ivf, &sp, d, d);
        put_doc(flat, &sp, d, d);
    }
    ASSERT_OK(me_indexer_build_now(ivf, 5));
    uint64_t *allow = calloc(me_bitmap_words(5000), sizeof *allow);
    for (size_t s = 3; s < 5000; s += 100) allow[s / 64] |= 1ull << (s % 64);
    float q[ROWS * DIM];
    me_synth_query(&sp, 17, 1, 1, q);
    me_search_params_t p = { .query = q, .r_q = 1, .r_c = ROWS, .k = 60, .candidates = 60, .allow = allow };
    me_search_result_t a, b;
    char err[128];
    ASSERT_OK(me_search_run(ivf, NULL, &p, &a, err, sizeof err));
    ASSERT_OK(me_search_run(flat, NULL, &p, &b, err, sizeof err));
    ASSERT_EQ(a.nhits, 50);  /* every allowed document comes back */
    ASSERT_TRUE(same_hits(&a, &b));
    me_search_result_free(&a);
    me_search_result_free(&b);
    free(allow);
    me_coll_free(ivf);
    me_coll_free(flat);
}

TEST(ivf_config_checked) {
    me_coll_config_t cfg = { .dim = 8, .coarse_index = 2 };
    strcpy(cfg.name, "t");
    char err[128];
    ASSERT_EQ(me_coll_config_check(&cfg, err, sizeof err), ME_EINVAL);
    ASSERT_TRUE(strstr(err, "coarse_index") != NULL);
    cfg.coarse_index = 0;
    cfg.ivf_lists = 10;
    ASSERT_EQ(me_coll_config_check(&cfg, err, sizeof err), ME_EINVAL);
    ASSERT_TRUE(strstr(err, "need coarse_index ivf") != NULL);
    cfg.coarse_index = 1;
    cfg.ivf_lists = ME_IVF_MAX_LISTS + 1;
    ASSERT_EQ(me_coll_config_check(&cfg, err, sizeof err), ME_EINVAL);
    cfg.ivf_lists = 10;
    ASSERT_OK(me_coll_config_check(&cfg, err, sizeof err));
    /* Too few points for the lists: no index, not a crash. */
    ASSERT_TRUE(me_ivf_train((float[8]){ 1 }, 1, 8, 4, 1, 1) == NULL);
}

/* ---- the binary coarse tier (common/bits.h, binary_coarse) ---- */

TEST(bits_score_is_the_quantized_query_against_the_signs) {
    me_rng_t r = { 21 };
    for (int dim = 1; dim <= 200; dim += 37) {
        float a[200], b[4][200];
        me_rng_unit_rows(&r, a, 1, dim);
        me_rng_unit_rows(&r, &b[0][0], 4, 200);
        size_t w = me_bits_words(dim);
        uint64_t db[4 * 4];
        for (int d = 0; d < 4; d++) me_bits_from_f32(db + d * w, b[d], dim);
        me_bits_query_t q;
        me_bits_query_init(&q, a, dim);
        uint32_t idx[3] = { 3, 0, 2 };
        float got[3];
        me_bits_score(&q, db, idx, 3, got);
        for (int i = 0; i < 3; i++) {
            /* Σ q̃_k · sign(d_k), q̃ the 4-bit value, and the f32 q within the quantization error. */
            double want = 0, exact = 0;
            for (int k = 0; k < dim; k++) {
                double u = q.delta > 0 ? floor((a[k] - q.lo) / q.delta + 0.5) : 0;
                double sgn = b[idx[i]][k] > 0 ? 1 : -1;
                want += (q.lo + q.delta * u) * sgn;
                exact += a[k] * sgn;
            }
            ASSERT_NEAR(got[i], want, 1e-4);
            ASSERT_TRUE(fabs(got[i] - exact) <= q.delta / 2 * dim + 1e-4);
        }
    }
}

static me_coll_t *mk_bits(int coarse_index) {
    me_coll_config_t cfg = { .dim = DIM, .max_doc_vectors = ROWS, .dtype = ME_DTYPE_F16,
                             .coarse_index = coarse_index, .binary_coarse = 1 };
    strcpy(cfg.name, "b");
    char err[128];
    if (me_coll_config_check(&cfg, err, sizeof err) != 0) return NULL;
    return me_coll_new(&cfg, 2);
}

/* Bits follow puts, replacements and deletes; keeping every document
 * through stage 1 gives exact's answer at every budget; a few hundred
 * survivors keep most of it; the RAM copy is D/8 bytes, not 2·D. */
TEST(binary_coarse_cascade_matches_exact_and_saves_ram) {
    enum { N = 6000, Q = 12 };
    me_synth_t sp = me_synth_default(DIM, ROWS, 12);
    me_coll_t *bin = mk_bits(0), *flat = mk(0, 0), *both = mk_bits(1);
    ASSERT_TRUE(bin && flat && both);
    me_rng_t r = { 4 };
    for (uint64_t d = 0; d < N; d++) {
        put_doc(bin, &sp, d, d);
        put_doc(flat, &sp, d, d);
        put_doc(both, &sp, d, d);
    }
    for (int i = 0; i < 1500; i++) {  /* the same deletes and replacements in all three */
        uint64_t which = me_rng_next(&r) % N, v = me_rng_next(&r) % 50000;
        char id[24];
        snprintf(id, sizeof id, "d%llu", (unsigned long long)which);
        me_coll_t *cs[3] = { bin, flat, both };
        for (int k = 0; k < 3; k++) {
            if (i % 2) me_coll_remove(cs[k], id, strlen(id));
            else put_doc(cs[k], &sp, v, which);
        }
    }
    ASSERT_OK(me_indexer_build_now(both, 3));
    /* Every slot's bits are its first vector's signs. */
    size_t w = me_bits_words(DIM);
    for (size_t s = 0; s < bin->n; s++) {
        float v[DIM];
        uint64_t want[1];
        me_coll_first_vector(bin, s, v);
        me_bits_from_f32(want, v, DIM);
        ASSERT_TRUE(memcmp(want, bin->bits + s * w, w * sizeof *want) == 0);
    }
    ASSERT_TRUE(bin->coarse == NULL);
    ASSERT_EQ(me_coll_ram_bytes(bin), bin->n * (ROWS * DIM * 2 + w * 8 + 4));
    ASSERT_EQ(me_coll_ram_bytes(flat), flat->n * ((ROWS + 1) * DIM * 2));
    static const int budgets[3][2] = { { 1, 1 }, { 2, 4 }, { 4, 8 } };
    char err[128];
    double kept = 0;
    for (int qi = 0; qi < Q; qi++) {
        float q[4 * DIM];
        me_synth_query(&sp, (uint64_t)qi * 331 % N, (uint64_t)qi, 4, q);
        for (int b = 0; b < 3; b++) {
            me_search_params_t p = { .query = q, .r_q = budgets[b][0], .r_c = budgets[b][1], .k = 10,
                                     .candidates = N, .refine_candidates = N };
            me_search_result_t e, x, y, z;
            p.exact = 1;
            ASSERT_OK(me_search_run(flat, NULL, &p, &e, err, sizeof err));
            p.exact = 0;
            ASSERT_OK(me_search_run(bin, NULL, &p, &x, err, sizeof err));
            ASSERT_TRUE(same_hits(&e, &x));  /* every document survives the bits: exact */
            me_search_result_t all;
            p.probe = ME_IVF_MAX_LISTS;  /* IVF + bits, every list probed: exact too */
            ASSERT_OK(me_search_run(both, NULL, &p, &all, err, sizeof err));
            ASSERT_TRUE(same_hits(&e, &all));
            me_search_result_free(&all);
            p.probe = 0;
            p.candidates = 300;
            p.refine_candidates = 100;
            ASSERT_OK(me_search_run(bin, NULL, &p, &y, err, sizeof err));
            ASSERT_OK(me_search_run(both, NULL, &p, &z, err, sizeof err));
            ASSERT_EQ(y.nhits, 10);
            ASSERT_EQ(z.nhits, 10);
            for (size_t i = 0; i < y.nhits; i++)
                for (size_t j = 0; j < e.nhits; j++)
                    if (e.hits[j].idx == y.hits[i].idx) kept += 1;
            me_search_result_free(&e);
            me_search_result_free(&x);
            me_search_result_free(&y);
            me_search_result_free(&z);
        }
    }
    printf("    binary coarse, 300 survivors of %zu: kept %.3f of exact's top 10\n", bin->n, kept / (Q * 3 * 10));
    ASSERT_TRUE(kept / (Q * 3 * 10) >= 0.8);
    /* Switching a dense collection to bits answers as one created with them. */
    ASSERT_OK(me_coll_use_binary_coarse(flat));
    float q[4 * DIM];
    me_synth_query(&sp, 77, 9, 4, q);
    me_search_params_t p = { .query = q, .r_q = 4, .r_c = 8, .k = 10, .candidates = 200 };
    me_search_result_t a, bres;
    ASSERT_OK(me_search_run(flat, NULL, &p, &a, err, sizeof err));
    ASSERT_OK(me_search_run(bin, NULL, &p, &bres, err, sizeof err));
    ASSERT_TRUE(same_hits(&a, &bres));
    me_search_result_free(&a);
    me_search_result_free(&bres);
    me_coll_free(bin);
    me_coll_free(flat);
    me_coll_free(both);
}

TEST(binary_coarse_needs_one_coarse_vector) {
    me_coll_config_t cfg = { .dim = 8, .max_doc_vectors = 4, .coarse_vectors = 2, .binary_coarse = 1 };
    strcpy(cfg.name, "t");
    char err[128];
    ASSERT_EQ(me_coll_config_check(&cfg, err, sizeof err), ME_EINVAL);
    ASSERT_TRUE(strstr(err, "coarse_vectors 1") != NULL);
}

/* Puts queue for the lists (assigned a batch at a time); until a flush,
 * searches scan the queue too, so a document is found from its put on. */
TEST(ivf_queued_puts_are_found_before_the_flush) {
    me_synth_t sp = me_synth_default(DIM, ROWS, 13);
    me_coll_t *c = mk(1, 0);
    for (uint64_t d = 0; d < 3000; d++) put_doc(c, &sp, d, d);
    ASSERT_OK(me_indexer_build_now(c, 2));
    for (uint64_t d = 3000; d < 3010; d++) put_doc(c, &sp, d, d);
    ASSERT_EQ(c->npending, 10);
    char err[128];
    for (uint64_t d = 3000; d < 3010; d++) {
        /* Its own first vector, at (1,1): it is its own best match. */
        char id[24];
        snprintf(id, sizeof id, "d%llu", (unsigned long long)d);
        float q[DIM];
        me_coll_first_vector(c, (size_t)me_coll_find(c, id, strlen(id)), q);
        me_search_params_t p = { .query = q, .r_q = 1, .r_c = 1, .k = 1, .candidates = 10, .probe = 1 };
        me_search_result_t r;
        ASSERT_OK(me_search_run(c, NULL, &p, &r, err, sizeof err));
        ASSERT_EQ(r.nhits, 1);
        char want[24];
        snprintf(want, sizeof want, "d%llu", (unsigned long long)d);
        ASSERT_STREQ(c->ids[r.hits[0].idx], want);
        me_search_result_free(&r);
    }
    ASSERT_TRUE(lists_consistent(c, c->ivf));
    ASSERT_EQ(c->npending, 0);
    me_coll_free(c);
}
