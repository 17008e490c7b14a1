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
