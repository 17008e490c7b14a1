/* metaembed keygen: the CurveZMQ key directory that --curve-dir points
 * every daemon and client at (layout in common/curve.h). */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/curve.h"

typedef struct {
    char dir[ME_CFG_STR_MAX], client[ME_CFG_STR_MAX];
} keygen_opts_t;

static const me_cfg_opt_t keygen_table[] = {
    { "dir", ME_CFG_STRING, offsetof(keygen_opts_t, dir), "", 0, 0, NULL, "key directory (required; created if missing)" },
    { "client", ME_CFG_STRING, offsetof(keygen_opts_t, client), "", 0, 0, NULL,
      "add a client key pair NAME.key to an existing directory and allow it (else: make the cluster's keys)" },
    { NULL, 0, 0, NULL, 0, 0, NULL, NULL },
};

static const cli_cmd_t keygen_cmd = {
    "keygen", "--dir DIR [--client NAME]",
    "Makes CurveZMQ keys for an encrypted, authenticated cluster. Without --client: the cluster's server key pair "
    "(server.key, server.pub) and its own client key pair (client.key, client.pub, allowed), for every daemon's "
    "--curve-dir. With --client NAME: one more client (NAME.key for that client's --curve-key NAME, with server.pub), "
    "added to allowed_clients; restart the daemons to accept it. Keys are never overwritten.",
    keygen_table, 0, 1,
};

static int valid_name(const char *s) {
    if (!*s || strlen(s) > 64) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '-' ||
              *s == '_'))
            return 0;
    return 1;
}

int cli_cmd_keygen(cli_t *c, int argc, char **argv) {
    keygen_opts_t o;
    char err[512];
    me_config_defaults(keygen_table, &o, err, sizeof err);
    int rc = cli_parse(c, &keygen_cmd, &o, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if (!o.dir[0]) return cli_usage_error(c, "needs --dir DIR");
    char pub[ME_CURVE_KEY_LEN + 1], path[4096];
    if (o.client[0]) {
        if (!valid_name(o.client) || !strcmp(o.client, "server"))
            return cli_usage_error(c, "--client '%s': use letters, digits, - and _ (and not 'server')", o.client);
        snprintf(path, sizeof path, "%s/server.pub", o.dir);
        if (access(path, R_OK) != 0)
            return cli_error(c, CLI_FAIL, "%s not found: make the cluster's keys first (metaembed keygen --dir %s)",
                             path, o.dir);
        if (me_curve_keygen(o.dir, o.client, pub, err, sizeof err) != 0 ||
            me_curve_allow(o.dir, o.client, pub, err, sizeof err) != 0)
            return cli_error(c, CLI_FAIL, "%s", err);
    } else {
        if (mkdir(o.dir, 0700) != 0 && errno != EEXIST)
            return cli_error(c, CLI_FAIL, "cannot create %s: %s", o.dir, strerror(errno));
        if (me_curve_keygen(o.dir, "server", NULL, err, sizeof err) != 0 ||
            me_curve_keygen(o.dir, "client", pub, err, sizeof err) != 0 ||
            me_curve_allow(o.dir, "client (the cluster's own nodes)", pub, err, sizeof err) != 0)
            return cli_error(c, CLI_FAIL, "%s", err);
    }
    if (c->g.json) {
        me_json_writer_t j;
        cli_json_begin(&j, stdout);
        me_json_put_str(&j, "dir", o.dir);
        me_json_put_str(&j, "client", o.client[0] ? o.client : "client");
        me_json_put_str(&j, "public_key", pub);
        cli_json_end(&j);
    } else if (o.client[0]) {
        printf("client key pair %s/%s.key made and allowed (public key %s).\n"
               "Give that client %s.key and server.pub; it connects with --curve-dir DIR --curve-key %s.\n"
               "Restart the daemons to load the new allowed_clients.\n",
               o.dir, o.client, pub, o.client, o.client);
    } else {
        printf("cluster keys made in %s: server.key/.pub, client.key/.pub, allowed_clients.\n"
               "Start every daemon and client with --curve-dir %s (the CLI also reads $METAEMBED_CURVE_DIR).\n"
               "Keep the .key files secret; add clients with: metaembed keygen --dir %s --client NAME\n",
               o.dir, o.dir, o.dir);
    }
    return CLI_OK;
}
