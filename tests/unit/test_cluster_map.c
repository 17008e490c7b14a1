#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/hash.h"
#include "coordinator/cluster.h"
#include "tests/harness.h"

static int load_text(const char *text, me_cluster_t *c, char *err, size_t cap) {
    char *dir = me_test_tmpdir("map");
    char path[600];
    snprintf(path, sizeof path, "%s/cluster.conf", dir);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    int rc = me_cluster_load(c, path, 3, err, cap);
    me_test_rmdir(dir);
    free(dir);
    return rc;
}

TEST(cluster_map_groups_replicas_encoders) {
    me_cluster_t c;
    char err[300];
    ASSERT_OK(load_text("# comment\nencoders tcp://e:1 tcp://e:2\ngroup g0 tcp://a:1 tcp://a:2\n\ngroup g1 tcp://b:1 # x\n",
                        &c, err, sizeof err));
    ASSERT_EQ(c.n_groups, 2);
    ASSERT_EQ(c.encoder_group, 2);
    ASSERT_EQ(c.n_replicas, 5);
    ASSERT_STREQ(c.groups[0].name, "g0");
    ASSERT_EQ(c.groups[0].n_replicas, 2);
    ASSERT_EQ(c.groups[1].first_replica, 2);
    ASSERT_STREQ(c.replicas[3].endpoint, "tcp://e:1");  /* encoders after every shard replica */
    ASSERT_EQ(c.replicas[4].group, 2);
    me_cluster_free(&c);
    struct { const char *text, *needle; } bad[] = {
        { "group g0\n", "no endpoints" },
        { "group g0 tcp://a:1\ngroup g0 tcp://b:1\n", "appears twice" },
        { "shard g0 tcp://a:1\n", "expected 'group" },
        { "group g0 localhost:1\n", "not an endpoint" },
        { "encoders tcp://e:1\n", "no groups" },
        { "group g0 tcp://a:1\nencoders tcp://e:1\nencoders tcp://e:2\n", "only one 'encoders' line" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ASSERT_EQ(load_text(bad[i].text, &c, err, sizeof err), ME_EINVAL);
        if (!strstr(err, bad[i].needle)) fprintf(stderr, "    case %zu: %s\n", i, err);
        ASSERT_TRUE(strstr(err, bad[i].needle) != NULL);
    }
}

/* Placement is part of the on-disk contract: these values must never change. */
TEST(cluster_placement_is_stable) {
    ASSERT_EQ(me_jump_hash(0, 1), 0);
    ASSERT_EQ(me_jump_hash(1, 10), 6);
    ASSERT_EQ(me_jump_hash(0xdeadbeefULL, 100), 87);
    ASSERT_EQ(me_hash64("doc-00001", 9) % 1000003, 871049);
    /* And it spreads: 30k ids over 3 groups within 2% of a third each. */
    int counts[3] = { 0 };
    char id[32];
    for (int i = 0; i < 30000; i++) {
        snprintf(id, sizeof id, "doc-%05d", i);
        counts[me_jump_hash(me_hash64(id, 9), 3)]++;
    }
    for (int g = 0; g < 3; g++) ASSERT_TRUE(counts[g] > 9800 && counts[g] < 10200);
}

TEST(cluster_map_standby_groups_come_last_and_set_the_first_placement) {
    me_cluster_t c;
    char err[300];
    ASSERT_OK(load_text("group g0 tcp://a:1\ngroup g1 tcp://b:1\ngroup g2 standby tcp://c:1 tcp://c:2\n", &c, err,
                        sizeof err));
    ASSERT_EQ(c.n_groups, 3);
    ASSERT_EQ(c.n_placed, 2);
    ASSERT_EQ(c.groups[2].standby, 1);
    ASSERT_EQ(c.groups[2].n_replicas, 2);  /* "standby" is not an endpoint */
    me_placement_t p = me_cluster_placement(&c);
    ASSERT_EQ(p.epoch, 0);
    ASSERT_EQ(p.phase, ME_PHASE_STABLE);
    ASSERT_EQ(p.to, 2);
    /* A newer placement is adopted, an older one or one past the map is not. */
    ASSERT_EQ(me_cluster_adopt_placement(&c, me_placement_pack((me_placement_t){ 3, ME_PHASE_COPY, 2, 3 })), 1);
    ASSERT_EQ(me_cluster_adopt_placement(&c, me_placement_pack((me_placement_t){ 2, ME_PHASE_STABLE, 3, 3 })), 0);
    ASSERT_EQ(me_cluster_adopt_placement(&c, me_placement_pack((me_placement_t){ 9, ME_PHASE_STABLE, 4, 4 })), 0);
    ASSERT_EQ(me_cluster_adopt_placement(&c, 12345), 0);
    ASSERT_EQ(me_cluster_placement(&c).phase, ME_PHASE_COPY);
    me_cluster_free(&c);
    ASSERT_EQ(load_text("group g0 standby tcp://a:1\ngroup g1 tcp://b:1\n", &c, err, sizeof err), ME_EINVAL);
    ASSERT_TRUE(strstr(err, "standby groups come last") != NULL);
    ASSERT_EQ(load_text("group g0 standby tcp://a:1\n", &c, err, sizeof err), ME_EINVAL);
    ASSERT_TRUE(strstr(err, "every group is standby") != NULL);
}

/* The phases' routing (common/placement.h) over many ids. */
TEST(placement_words_and_the_phases_routing) {
    me_placement_t p = { 7, ME_PHASE_SWITCHED, 2, 3 }, q;
    ASSERT_OK(me_placement_unpack(me_placement_pack(p), &q));
    ASSERT_EQ(q.epoch, 7);
    ASSERT_EQ(q.phase, ME_PHASE_SWITCHED);
    ASSERT_EQ(q.from, 2);
    ASSERT_EQ(q.to, 3);
    /* Not placements: zero, a low byte, counts of 0, stable with two counts, a move to the same count. */
    ASSERT_EQ(me_placement_unpack(0, &q), ME_EINVAL);
    ASSERT_EQ(me_placement_unpack(me_placement_pack(p) | 1, &q), ME_EINVAL);
    ASSERT_EQ(me_placement_unpack(me_placement_pack((me_placement_t){ 1, ME_PHASE_COPY, 0, 3 }), &q), ME_EINVAL);
    ASSERT_EQ(me_placement_unpack(me_placement_pack((me_placement_t){ 1, ME_PHASE_STABLE, 2, 3 }), &q), ME_EINVAL);
    ASSERT_EQ(me_placement_unpack(me_placement_pack((me_placement_t){ 1, ME_PHASE_CLEAN, 3, 3 }), &q), ME_EINVAL);
    ASSERT_EQ(me_placement_unpack((uint64_t)9 << 24 | 2 << 16 | 2 << 8, &q), ME_EINVAL);  /* phase 9 */
    int moved = 0, dual = 0;
    char id[32];
    for (int i = 0; i < 30000; i++) {
        int n = snprintf(id, sizeof id, "doc-%05d", i);
        int from = me_place(id, (size_t)n, 2), to = me_place(id, (size_t)n, 3), t[2];
        /* Growing moves ids only to the new group. */
        if (from != to) { moved++; ASSERT_EQ(to, 2); }
        for (int ph = ME_PHASE_STABLE; ph <= ME_PHASE_CLEAN; ph++) {
            me_placement_t x = ph == ME_PHASE_STABLE ? (me_placement_t){ 1, ph, 2, 2 } : (me_placement_t){ 1, ph, 2, 3 };
            int nt = me_placement_write_targets(x, id, (size_t)n, t);
            int reads = me_placement_read_groups(x), owner = me_place(id, (size_t)n, reads);
            /* The read owner always takes the writes; dual writes only in copy and switched. */
            ASSERT_TRUE(t[0] == owner || (nt == 2 && t[1] == owner));
            if (ph == ME_PHASE_COPY || ph == ME_PHASE_SWITCHED) ASSERT_EQ(nt, from != to ? 2 : 1);
            else ASSERT_EQ(nt, 1);
            if (ph == ME_PHASE_COPY && nt == 2) dual++;
            /* Exactly one group of the read placement owns it. */
            int owners = 0;
            for (int g = 0; g < 3; g++) owners += g < reads && me_placement_owns(x, g, id, (size_t)n);
            ASSERT_EQ(owners, ph == ME_PHASE_STABLE ? reads : 1);
        }
    }
    /* About a third moves (jump hashing's 1/(n+1)). */
    ASSERT_TRUE(moved > 9500 && moved < 10500);
    ASSERT_EQ(dual, moved);
    char buf[96];
    ASSERT_STREQ(me_placement_describe(me_placement_pack(p), buf, sizeof buf), "epoch 7, switched 2 -> 3 groups");
}
