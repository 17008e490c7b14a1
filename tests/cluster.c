#include "tests/cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/harness.h"

static void write_map(cluster_t *c) {
    FILE *f = fopen(c->map, "w");
    fprintf(f, "# test cluster\n");
    for (int g = 0; g < c->groups; g++) {
        fprintf(f, "group g%d%s", g, g >= c->groups - c->standby ? " standby" : "");
        for (int r = 0; r < c->replicas; r++) {
            int i = g * c->replicas + r;
            if (c->relayed) fprintf(f, " tcp://127.0.0.1:%d", c->relays[i].port);
            else fprintf(f, " %s", c->shards[i].endpoint);
        }
        fprintf(f, "\n");
    }
    fclose(f);
}

int cluster_start(cluster_t *c, int groups, int replicas, const char *const *extra) {
    memset(c, 0, sizeof *c);
    return cluster_start_with(c, groups, replicas, extra, NULL);
}

int cluster_start_with(cluster_t *c, int groups, int replicas, const char *const *extra, const char *map_line) {
    if (groups * replicas > (int)(sizeof c->shards / sizeof c->shards[0])) return -1;
    int port = c->coord.port, fixed = c->coord.port_fixed;
    const char *const *shard_extra = c->shard_extra;
    int relayed = c->relayed, standby = c->standby;
    memset(c, 0, sizeof *c);
    c->standby = standby;
    c->coord.port = port;
    c->coord.port_fixed = fixed;
    c->shard_extra = shard_extra;
    c->relayed = relayed;
    c->groups = groups;
    c->replicas = replicas;
    char *dir = me_test_tmpdir("cluster");
    snprintf(c->dir, sizeof c->dir, "%s", dir);
    free(dir);
    snprintf(c->map, sizeof c->map, "%s/cluster.conf", c->dir);
    for (int i = 0; i < groups * replicas; i++) {
        for (int k = 0; shard_extra && shard_extra[k]; k++) c->shards[i].extra[c->shards[i].nextra++] = shard_extra[k];
        if (me_daemon_start(&c->shards[i], "metaembed-shard", "cshard") != 0) return -1;
        if (c->relayed && relay_start(&c->relays[i], c->shards[i].port, 0) != 0) return -1;
    }
    write_map(c);
    if (map_line) {
        FILE *f = fopen(c->map, "a");
        fprintf(f, "%s\n", map_line);
        fclose(f);
    }
    snprintf(c->cluster_arg, sizeof c->cluster_arg, "--cluster=%s", c->map);
    c->coord.no_data_dir = 1;
    c->coord.extra[c->coord.nextra++] = c->cluster_arg;
    c->coord.extra[c->coord.nextra++] = "--heartbeat-ms=100";
    for (int i = 0; extra && extra[i]; i++) c->coord.extra[c->coord.nextra++] = extra[i];
    return me_daemon_start(&c->coord, "metaembed-coordinator", "coord");
}

void cluster_stop(cluster_t *c) {
    me_daemon_free(&c->coord);
    for (int i = 0; c->relayed && i < c->groups * c->replicas; i++) relay_stop(&c->relays[i]);
    for (int i = 0; i < c->groups * c->replicas; i++) me_daemon_free(&c->shards[i]);
    me_test_rmdir(c->dir);
}

me_client_t *cluster_client(cluster_t *c, int dim, int rows) {
    me_collection_spec_t spec = { .name = "c", .dim = dim, .max_doc_vectors = rows, .max_query_vectors = 4,
                                  .dtype = "f32" };
    return me_daemon_client_with(&c->coord, &spec);
}

int cluster_start_pipeline(cluster_t *c, int groups, const char *model, me_daemon_t enc[2], char *stream) {
    /* Encoders first (the coordinator's map names them), pulling from the
     * stream and upserting through the coordinator's fixed port. */
    /* Static: each daemon keeps pointers to its arguments, for restarts. */
    static char model_arg[1300], stream_arg[100], coord_arg[100];
    snprintf(stream, CLUSTER_STREAM_MAX, "tcp://127.0.0.1:%d", me_test_free_port());
    snprintf(model_arg, sizeof model_arg, "--model=%s", model);
    snprintf(stream_arg, sizeof stream_arg, "--ingest-from=%s", stream);
    int coord_port = me_test_free_port();
    snprintf(coord_arg, sizeof coord_arg, "--coordinator=tcp://127.0.0.1:%d", coord_port);
    for (int i = 0; i < 2; i++) {
        enc[i] = (me_daemon_t){ .no_data_dir = 1, .extra = { model_arg, stream_arg, coord_arg }, .nextra = 3 };
        if (me_daemon_start(&enc[i], "metaembed-encoder", "enc") != 0) {
            fprintf(stderr, "    encoder %d did not start\n", i);
            return -1;
        }
    }
    char encoders_line[200];
    snprintf(encoders_line, sizeof encoders_line, "encoders %s %s", enc[0].endpoint, enc[1].endpoint);
    const char *extra[] = { NULL };
    c->coord.port = coord_port;
    c->coord.port_fixed = 1;
    return cluster_start_with(c, groups, 1, extra, encoders_line);
}
