/* Real daemons for integration tests and benches: start one on a free
 * loopback port with its own data dir, wait until it answers Health, stop
 * it with SIGTERM or SIGKILL, start it again on the same port and data. */
#ifndef ME_TESTS_DAEMON_H
#define ME_TESTS_DAEMON_H

#include <sys/types.h>

#include "include/metaembed.h"

typedef struct {
    char bin[512];
    char dir[512];            /* data dir (removed by me_daemon_free) */
    char log[600];
    char endpoint[64];
    int port;
    pid_t pid;
    const char *extra[16];    /* extra command-line arguments */
    int nextra;
    int no_data_dir;          /* do not pass --data-dir (the coordinator has none) */
    int metrics_port;         /* its HTTP endpoint (a free port, chosen at start) */
    int port_fixed;           /* use .port as given instead of a free one */
} me_daemon_t;

/* Starts `binary` (e.g. "metaembed-shard") with --listen/--data-dir and the
 * extra args; waits up to 30 s for Health. Returns 0 or -1. */
int me_daemon_start(me_daemon_t *d, const char *binary, const char *tag);
/* Starts again with the same port and data dir. */
int me_daemon_restart(me_daemon_t *d);
/* SIGTERM and wait (kill9: SIGKILL). Returns the wait status. */
int me_daemon_stop(me_daemon_t *d, int kill9);
/* Stops if running and removes the data dir. */
void me_daemon_free(me_daemon_t *d);
/* The --curve-dir among its extra arguments, or NULL. */
const char *me_daemon_curve_dir(const me_daemon_t *d);
/* A connected client (over CurveZMQ when the daemon has keys), or NULL
 * (the test should fail). */
me_client_t *me_daemon_client(const me_daemon_t *d);
/* me_daemon_client, then `spec` created through it: the client, or NULL
 * with the failure said on stderr (the test should fail). */
me_client_t *me_daemon_client_with(const me_daemon_t *d, const me_collection_spec_t *spec);
/* How many of ids[0..n) collection `coll` holds (a Get without vectors),
 * or -1 when the Get fails (its status said on stderr): for tests that
 * only ask whether documents were stored. */
long me_test_count_ids(me_client_t *c, const char *coll, const char *const *ids, size_t n);

#endif
