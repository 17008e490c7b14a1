/* A real cluster for tests and benches: G shard groups × R replicas and a
 * coordinator, each a process on its own loopback port and data dir. */
#ifndef ME_TESTS_CLUSTER_H
#define ME_TESTS_CLUSTER_H

#include "tests/daemon.h"
#include "tests/relay.h"

typedef struct {
    int groups, replicas;
    me_daemon_t shards[16];
    me_daemon_t coord;
    const char *const *shard_extra;  /* further shard flags (NULL-terminated), for cluster_start_with */
    /* cluster_start_with: the coordinator reaches each shard through a
     * relay of its own (relays[i] for shards[i]), so a test can cut the
     * link between the two (a partition) while other clients still reach
     * the shard directly. */
    int relayed;
    relay_t relays[16];
    /* cluster_start_with: the last `standby` groups are standby in the map
     * (outside the placement until a reshard moves documents to them). */
    int standby;
    char dir[512];
    char map[600];
    char cluster_arg[700];
} cluster_t;

/* extra: further coordinator flags (NULL-terminated, may be NULL).
 * Returns 0 when every process answers. */
int cluster_start(cluster_t *c, int groups, int replicas, const char *const *extra);
/* The same with one more line for the cluster map (e.g. "encoders ..."),
 * the coordinator's port taken from c->coord when c->coord.port_fixed, and
 * c->shard_extra given to every shard (so c must be initialised). */
int cluster_start_with(cluster_t *c, int groups, int replicas, const char *const *extra, const char *map_line);
void cluster_stop(cluster_t *c);
/* A text or image pipeline: `groups` shard groups, two encoders running
 * `model` and pulling from a fresh ingest stream (its endpoint in
 * stream, STREAM_MAX bytes), and the coordinator whose map names them.
 * 0, or -1 (said on stderr). Stop with cluster_stop and me_daemon_free. */
#define CLUSTER_STREAM_MAX 64
int cluster_start_pipeline(cluster_t *c, int groups, const char *model, me_daemon_t enc[2], char *stream);
/* A client on the coordinator with the collection the cluster tests share
 * created: "c", f32, `dim` wide, up to `rows` vectors a document and 4 a
 * query. NULL on failure (said on stderr; the test should fail). */
me_client_t *cluster_client(cluster_t *c, int dim, int rows);

#endif
