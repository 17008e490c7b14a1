/* common/fusion.c against the two formulas written out on a small set:
 * RRF by ranks (ties by id, no lexical term at BM25 0) and the weighted
 * min-max sum, including a flat score range. */
#include <string.h>

#include "common/fusion.h"
#include "tests/harness.h"

TEST(fusion_rrf_ranks_and_ties_by_id) {
    /* dense ranks: b 1, a 2 (tie with c, a first by id), c 3; lexical: c 1, a 2, b none. */
    me_fuse_item_t it[] = { { .id = "a", .dense = 0.5f, .lexical = 1.0f },
                            { .id = "b", .dense = 0.9f, .lexical = 0.0f },
                            { .id = "c", .dense = 0.5f, .lexical = 3.0f } };
    ASSERT_OK(me_fuse(it, 3, 0, 0, 0));
    float a = 1.0f / 62 + 1.0f / 62, b = 1.0f / 61, c = 1.0f / 63 + 1.0f / 61;
    ASSERT_STREQ(it[0].id, "c");
    ASSERT_NEAR(it[0].fused, c, 1e-7);
    ASSERT_STREQ(it[1].id, "a");
    ASSERT_NEAR(it[1].fused, a, 1e-7);
    ASSERT_STREQ(it[2].id, "b");
    ASSERT_NEAR(it[2].fused, b, 1e-7);
}

TEST(fusion_weighted_minmax_and_flat_ranges) {
    me_fuse_item_t it[] = { { .id = "a", .dense = 1.0f, .lexical = 0.0f },
                            { .id = "b", .dense = 3.0f, .lexical = 2.0f },
                            { .id = "c", .dense = 2.0f, .lexical = 4.0f } };
    ASSERT_OK(me_fuse(it, 3, 1, 0.25f, 0));
    /* a: 0.25·0 + 0.75·0; b: 0.25·1 + 0.75·0.5; c: 0.25·0.5 + 0.75·1 */
    ASSERT_STREQ(it[0].id, "c");
    ASSERT_NEAR(it[0].fused, 0.875f, 1e-6);
    ASSERT_STREQ(it[1].id, "b");
    ASSERT_NEAR(it[1].fused, 0.625f, 1e-6);
    ASSERT_NEAR(it[2].fused, 0.0f, 1e-6);
    me_fuse_item_t flat[] = { { .id = "y", .dense = 1.0f, .lexical = 2.0f }, { .id = "x", .dense = 1.0f, .lexical = 2.0f } };
    ASSERT_OK(me_fuse(flat, 2, 1, 0.5f, 0));
    ASSERT_STREQ(flat[0].id, "x");
    ASSERT_NEAR(flat[0].fused, 0.0f, 1e-9);
    ASSERT_OK(me_fuse(NULL, 0, 0, 0, 0));
}
