/* The synthetic generator's families (tests/synthetic.h): a document's
 * family mates are nearer than its other topic mates, and --family 0 keeps
 * the old generator's documents bit for bit. */
#include <string.h>

#include "tests/harness.h"
#include "tests/synthetic.h"

enum { DIM = 64, ROWS = 16 };

static float first_cos(const me_synth_t *p, uint64_t a, uint64_t b) {
    float da[ROWS * DIM], db[ROWS * DIM], s = 0;
    me_synth_doc(p, a, da);
    me_synth_doc(p, b, db);
    for (int i = 0; i < DIM; i++) s += da[i] * db[i];  /* first vectors, unit length */
    return s;
}

TEST(synth_family_mates_are_nearer_than_topic_mates) {
    me_synth_t p = me_synth_default(DIM, ROWS, 3);
    p.family = 10;
    int T = p.topics;
    double mates = 0, others = 0;
    for (uint64_t d = 0; d < 20; d++) {
        uint64_t base = d * (uint64_t)T * 10;  /* the first of a family; its mates are base + k·T, k < 10 */
        for (uint64_t k = 1; k < 10; k++) mates += first_cos(&p, base, base + k * (uint64_t)T) / 9;
        /* Same topic, next family. */
        for (uint64_t k = 10; k < 19; k++) others += first_cos(&p, base, base + k * (uint64_t)T) / 9;
    }
    mates /= 20;
    others /= 20;
    ASSERT_TRUE(mates > others + 0.1);
}

TEST(synth_family_zero_and_one_are_the_old_generator) {
    me_synth_t a = me_synth_default(DIM, ROWS, 5), b = a;
    b.family = 1;
    float da[ROWS * DIM], db[ROWS * DIM];
    for (uint64_t d = 0; d < 50; d += 7) {
        me_synth_doc(&a, d, da);
        me_synth_doc(&b, d, db);
        ASSERT_TRUE(memcmp(da, db, sizeof da) == 0);
    }
    b.family = 10;
    me_synth_doc(&b, 7, db);
    me_synth_doc(&a, 7, da);
    ASSERT_TRUE(memcmp(da, db, sizeof da) != 0);
}
