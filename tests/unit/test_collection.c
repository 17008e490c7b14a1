#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "shard/collection.h"
#include "shard/record.h"
#include "tests/harness.h"

static me_coll_t *mk(me_dtype_t dt, int dim, int rc, int ram, int coarse) {
    me_coll_config_t cfg = { .dim = dim, .max_doc_vectors = rc, .dtype = dt, .ram_vectors = ram,
                             .coarse_vectors = coarse };
    strcpy(cfg.name, "t");
    char err[128];
    if (me_coll_config_check(&cfg, err, sizeof err) != 0) return NULL;
    return me_coll_new(&cfg, 1);
}

/* Random inserts, replaces and removes against a plain reference array:
 * the id table and the swap-on-delete slots stay consistent. */
TEST(collection_table_matches_reference) {
    enum { IDS = 3000, OPS = 30000, DIM = 3 };
    me_coll_t *c = mk(ME_DTYPE_F32, DIM, 4, 2, 1);
    ASSERT_TRUE(c != NULL);
    int *present = calloc(IDS, sizeof *present);
    float *val = calloc(IDS, sizeof *val);
    me_rng_t r = { 3 };
    size_t live = 0;
    for (int op = 0; op < OPS; op++) {
        int i = (int)(me_rng_next(&r) % IDS);
        char id[16];
        snprintf(id, sizeof id, "id%d", i);
        if (me_rng_next(&r) % 3) {
            float rows[2 * DIM];
            for (int k = 0; k < 2 * DIM; k++) rows[k] = (float)op;
            ASSERT_TRUE(me_coll_put(c, id, strlen(id), 2, rows, NULL) >= 0);
            if (!present[i]) live++;
            present[i] = 1;
            val[i] = (float)op;
        } else {
            ASSERT_EQ(me_coll_remove(c, id, strlen(id)), present[i]);
            if (present[i]) live--;
            present[i] = 0;
        }
    }
    ASSERT_EQ(c->n, live);
    for (int i = 0; i < IDS; i++) {
        char id[16];
        snprintf(id, sizeof id, "id%d", i);
        long s = me_coll_find(c, id, strlen(id));
        ASSERT_EQ(s >= 0, present[i]);
        if (s >= 0) {
            ASSERT_STREQ(c->ids[s], id);
            me_docref_t h = me_coll_head_ref(c, (size_t)s);
            ASSERT_EQ(h.rows, 2);
            ASSERT_TRUE(((const float *)h.data)[DIM] == val[i]);
            me_docref_t co = me_coll_coarse_ref(c, (size_t)s);
            ASSERT_EQ(co.rows, 1);
            ASSERT_TRUE(((const float *)co.data)[0] == val[i]);
        }
    }
    ASSERT_EQ(me_coll_index_bytes(c), live * 2 * DIM * 4);
    free(present);
    free(val);
    me_coll_free(c);
}

TEST(collection_short_docs_and_int8_scales) {
    me_coll_t *c = mk(ME_DTYPE_INT8, 4, 8, 4, 2);
    int8_t rows[4 * 4] = { 1, 2, 3, 4 };
    float scales[4] = { 0.5f, 0, 0, 0 };
    ASSERT_TRUE(me_coll_put(c, "a", 1, 1, rows, scales) >= 0);  /* one row only */
    me_docref_t h = me_coll_head_ref(c, 0), co = me_coll_coarse_ref(c, 0);
    ASSERT_EQ(h.rows, 1);
    ASSERT_EQ(co.rows, 1);
    ASSERT_TRUE(h.scales[0] == 0.5f && co.scales[0] == 0.5f);
    ASSERT_EQ(me_coll_ram_bytes(c), (4 + 2) * 4 + (4 + 2) * 4);
    me_coll_free(c);
}

TEST(collection_config_defaults_and_bounds) {
    me_coll_config_t cfg = { .dim = 128 };
    strcpy(cfg.name, "ok.name-1");
    char err[128];
    ASSERT_OK(me_coll_config_check(&cfg, err, sizeof err));
    ASSERT_EQ(cfg.max_doc_vectors, 64);
    ASSERT_EQ(cfg.max_query_vectors, 16);
    ASSERT_EQ(cfg.dtype, ME_DTYPE_F16);
    ASSERT_EQ(cfg.ram_vectors, 64);
    ASSERT_EQ(cfg.coarse_vectors, 1);
    me_coll_config_t bad = cfg;
    bad.coarse_vectors = 65;
    ASSERT_EQ(me_coll_config_check(&bad, err, sizeof err), ME_EINVAL);
    bad = cfg;
    strcpy(bad.name, "bad/name");
    ASSERT_EQ(me_coll_config_check(&bad, err, sizeof err), ME_EINVAL);
    bad = cfg;
    bad.dim = ME_DIM_MAX + 1;
    ASSERT_EQ(me_coll_config_check(&bad, err, sizeof err), ME_EINVAL);
}

TEST(record_round_trip_and_corruption) {
    float scales[3] = { 1, 2, 3 };
    int8_t data[3 * 5];
    for (int i = 0; i < 15; i++) data[i] = (int8_t)(i - 7);
    size_t len = me_record_size(ME_DTYPE_INT8, 5, 3);
    uint8_t *buf = malloc(len);
    me_record_write(buf, ME_DTYPE_INT8, 5, 10, 3, scales, data);
    int total, nrows;
    const float *sc;
    const void *d;
    ASSERT_OK(me_record_parse(buf, len, ME_DTYPE_INT8, 5, &total, &nrows, &sc, &d));
    ASSERT_EQ(total, 10);
    ASSERT_EQ(nrows, 3);
    ASSERT_TRUE(memcmp(sc, scales, sizeof scales) == 0);
    ASSERT_TRUE(memcmp(d, data, sizeof data) == 0);
    ASSERT_EQ(me_record_parse(buf, len - 1, ME_DTYPE_INT8, 5, &total, &nrows, &sc, &d), ME_ECORRUPT);
    ASSERT_EQ(me_record_parse(buf, len, ME_DTYPE_F16, 5, &total, &nrows, &sc, &d), ME_ECORRUPT);
    ASSERT_EQ(me_record_parse(buf, len, ME_DTYPE_INT8, 6, &total, &nrows, &sc, &d), ME_ECORRUPT);
    buf[0] = 9;
    ASSERT_EQ(me_record_parse(buf, len, ME_DTYPE_INT8, 5, &total, &nrows, &sc, &d), ME_ECORRUPT);
    free(buf);
    char key[4 + 8];
    ASSERT_EQ(me_doc_key(key, 0x01020304, "abc", 3), 7);
    ASSERT_TRUE(memcmp(key, "\x01\x02\x03\x04" "abc", 7) == 0);
}

TEST(rows_to_storage_rejects_nonfinite_and_zero) {
    float in[2 * 3] = { 1, 2, 3, 0, 0, 0 };
    uint16_t out[6];
    int row = -1, kind = 0;
    ASSERT_EQ(me_rows_to_storage(ME_DTYPE_F16, 3, 2, in, ME_DTYPE_F32, out, NULL, &row, &kind), ME_EINVAL);
    ASSERT_EQ(row, 1);
    ASSERT_EQ(kind, ME_BAD_ZERO_NORM);
    in[4] = 1;
    ASSERT_OK(me_rows_to_storage(ME_DTYPE_F16, 3, 2, in, ME_DTYPE_F32, out, NULL, &row, &kind));
    ASSERT_EQ(out[0], me_f32_to_f16(1.0f));
}
