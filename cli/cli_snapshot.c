/* metaembed snapshot create|list|delete: point-in-time copies of every
 * shard under one id (restore: docs/cluster.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"

static const cli_cmd_t create_cmd = {
    "snapshot create", "[ID]",
    "Takes a snapshot of every shard replica under one id (named snap-YYYYMMDD-HHMMSS when not given):\n"
    "a RocksDB checkpoint each, cheap (hard links). Writes through this coordinator wait while it is taken,\n"
    "so it holds exactly the writes acknowledged before it. Restore: docs/cluster.md (--restore-snapshot).",
    NULL, 1, 0,
};
static const cli_cmd_t list_cmd = {
    "snapshot list", "", "Lists the snapshots: id, when, documents, replicas holding it, bytes.", NULL, 0, 0,
};
static const cli_cmd_t delete_cmd = {
    "snapshot delete", "ID", "Deletes a snapshot on every replica.", NULL, 1, 0,
};

static void when(uint64_t ms, char *out, size_t cap) {
    time_t t = (time_t)(ms / 1000);
    struct tm tmv;
    gmtime_r(&t, &tmv);
    strftime(out, cap, "%Y-%m-%d %H:%M:%S UTC", &tmv);
}

static void json_snapshot(me_json_writer_t *j, const char *key, const me_snapshot_info_t *s) {
    me_json_obj_begin(j, key);
    me_json_put_str(j, "id", s->id);
    me_json_put_u64(j, "created_ms", s->created_ms);
    me_json_put_u64(j, "documents", s->documents);
    me_json_put_u64(j, "replicas", s->replicas);
    me_json_put_u64(j, "bytes", s->bytes);
    me_json_obj_end(j);
}

static int snap_create(cli_t *c, int argc, char **argv) {
    char *pos[1];
    int npos = 0;
    int rc = cli_parse(c, &create_cmd, NULL, argc, argv, pos, &npos);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if (!cli_connect(c)) return CLI_FAIL;
    me_snapshot_info_t s;
    me_status_t st;
    if (me_client_snapshot_create(c->client, npos ? pos[0] : NULL, &s, &st) != 0)
        return cli_status_error(c, &st, "snapshot failed");
    if (c->g.json) {
        me_json_writer_t j;
        cli_json_begin(&j, stdout);
        json_snapshot(&j, "snapshot", &s);
        cli_json_end(&j);
    } else {
        printf("snapshot %s: %llu documents on %u replicas (%llu bytes)\n", s.id, (unsigned long long)s.documents,
               s.replicas, (unsigned long long)s.bytes);
    }
    return CLI_OK;
}

static int snap_list(cli_t *c, int argc, char **argv) {
    int rc = cli_parse(c, &list_cmd, NULL, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if (!cli_connect(c)) return CLI_FAIL;
    me_snapshot_info_t *list = NULL;
    size_t n = 0;
    me_status_t st;
    if (me_client_snapshot_list(c->client, &list, &n, &st) != 0) return cli_status_error(c, &st, "cannot list snapshots");
    if (c->g.json) {
        me_json_writer_t j;
        cli_json_begin(&j, stdout);
        me_json_arr_begin(&j, "snapshots");
        for (size_t i = 0; i < n; i++) json_snapshot(&j, NULL, &list[i]);
        me_json_arr_end(&j);
        cli_json_end(&j);
    } else if (!n) {
        printf("no snapshots (take one with 'metaembed snapshot create')\n");
    } else {
        static const char *const header[] = { "id", "taken", "documents", "replicas", "bytes" };
        cli_table_t t;
        tbl_init(&t, 5, header, 0x1c);
        for (size_t i = 0; i < n; i++) {
            char w[40], d[24], r[16], b[24];
            when(list[i].created_ms, w, sizeof w);
            snprintf(d, sizeof d, "%llu", (unsigned long long)list[i].documents);
            snprintf(r, sizeof r, "%u", list[i].replicas);
            snprintf(b, sizeof b, "%llu", (unsigned long long)list[i].bytes);
            const char *row[] = { list[i].id, w, d, r, b };
            tbl_row(&t, row);
        }
        tbl_print(&t, stdout, "");
        tbl_free(&t);
    }
    free(list);
    return CLI_OK;
}

static int snap_delete(cli_t *c, int argc, char **argv) {
    char *pos[1];
    int npos = 0;
    int rc = cli_parse(c, &delete_cmd, NULL, argc, argv, pos, &npos);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if (npos != 1) return cli_usage_error(c, "needs the snapshot ID");
    if (!cli_connect(c)) return CLI_FAIL;
    me_status_t st;
    if (me_client_snapshot_delete(c->client, pos[0], &st) != 0) return cli_status_error(c, &st, "cannot delete the snapshot");
    if (c->g.json) {
        me_json_writer_t j;
        cli_json_begin(&j, stdout);
        me_json_put_str(&j, "deleted", pos[0]);
        cli_json_end(&j);
    } else {
        printf("deleted snapshot %s\n", pos[0]);
    }
    return CLI_OK;
}

static void snapshot_usage(FILE *out) {
    fprintf(out,
            "usage: metaembed [--addr tcp://HOST:PORT] [--json] snapshot SUBCOMMAND ...\n"
            "\n"
            "subcommands:\n"
            "  create [ID]     snapshot every shard replica under one id\n"
            "  list            the snapshots, with documents and replicas holding each\n"
            "  delete ID       delete a snapshot everywhere\n"
            "\n"
            "Restore: stop a shard, start it with --restore-snapshot ID (docs/cluster.md).\n");
}

int cli_cmd_snapshot(cli_t *c, int argc, char **argv) {
    if (argc == 0) {
        snapshot_usage(stderr);
        return cli_usage_error(c, "needs a subcommand: create, list or delete");
    }
    const char *sub = argv[0];
    if (!strcmp(sub, "-h") || !strcmp(sub, "--help") || !strcmp(sub, "help")) {
        snapshot_usage(stdout);
        return CLI_OK;
    }
    if (!strcmp(sub, "create")) { c->cmd = create_cmd.name; return snap_create(c, argc - 1, argv + 1); }
    if (!strcmp(sub, "list")) { c->cmd = list_cmd.name; return snap_list(c, argc - 1, argv + 1); }
    if (!strcmp(sub, "delete")) { c->cmd = delete_cmd.name; return snap_delete(c, argc - 1, argv + 1); }
    return cli_usage_error(c, "unknown subcommand '%s' (expected create, list or delete)", sub);
}
