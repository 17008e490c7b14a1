#include "tests/daemon.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/harness.h"

/* The --curve-dir the daemon was given, or NULL: health checks and test
 * clients connect the same way it serves. */
const char *me_daemon_curve_dir(const me_daemon_t *d) {
    for (int i = 0; i + 1 < d->nextra; i++)
        if (!strcmp(d->extra[i], "--curve-dir")) return d->extra[i + 1];
    return NULL;
}

static int launch(me_daemon_t *d) {
    char *argv[24];
    char listen[80];
    int n = 0;
    snprintf(listen, sizeof listen, "--listen=%s", d->endpoint);
    char datadir[600];
    snprintf(datadir, sizeof datadir, "--data-dir=%s/data", d->dir);
    char metrics[64];
    snprintf(metrics, sizeof metrics, "--metrics-addr=127.0.0.1:%d", d->metrics_port);
    argv[n++] = d->bin;
    argv[n++] = listen;
    argv[n++] = metrics;
    if (!d->no_data_dir) argv[n++] = datadir;
    for (int i = 0; i < d->nextra && n < 22; i++) argv[n++] = (char *)d->extra[i];
    argv[n] = NULL;
    d->pid = me_test_spawn(argv, d->log);
    if (d->pid <= 0) return -1;
    double t0 = me_test_now_ms();
    while (me_test_now_ms() - t0 < 30000) {
        /* Exited already (a refused flag, a bad data dir): say so now. */
        int status;
        if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
            fprintf(stderr, "    daemon %s exited at start (status %d); log: %s\n", d->bin,
                    WIFEXITED(status) ? WEXITSTATUS(status) : -1, d->log);
            d->pid = 0;
            return -1;
        }
        me_status_t st;
        me_client_t *c = me_client_connect_secure(d->endpoint, 500, me_daemon_curve_dir(d), NULL, &st);
        if (c) { me_client_close(c); return 0; }
        usleep(50000);
    }
    fprintf(stderr, "    daemon %s did not become healthy; log: %s\n", d->bin, d->log);
    return -1;
}

int me_daemon_start(me_daemon_t *d, const char *binary, const char *tag) {
    me_test_bin(binary, d->bin, sizeof d->bin);
    char *dir = me_test_tmpdir(tag);
    if (!dir) return -1;
    snprintf(d->dir, sizeof d->dir, "%s", dir);
    free(dir);
    snprintf(d->log, sizeof d->log, "%s/daemon.log", d->dir);
    if (!d->port_fixed) d->port = me_test_free_port();
    d->metrics_port = me_test_free_port();
    snprintf(d->endpoint, sizeof d->endpoint, "tcp://127.0.0.1:%d", d->port);
    return launch(d);
}

int me_daemon_restart(me_daemon_t *d) { return launch(d); }

int me_daemon_stop(me_daemon_t *d, int kill9) {
    int st = me_test_stop(d->pid, kill9);
    d->pid = 0;
    return st;
}

void me_daemon_free(me_daemon_t *d) {
    if (d->pid > 0) me_daemon_stop(d, 0);
    if (d->dir[0] && !getenv("ME_KEEP_TMP")) me_test_rmdir(d->dir);
    d->dir[0] = 0;
}

me_client_t *me_daemon_client(const me_daemon_t *d) {
    me_status_t st;
    me_client_t *c = me_client_connect_secure(d->endpoint, 10000, me_daemon_curve_dir(d), NULL, &st);
    if (!c) fprintf(stderr, "    connect %s: %s\n", d->endpoint, st.message);
    return c;
}

me_client_t *me_daemon_client_with(const me_daemon_t *d, const me_collection_spec_t *spec) {
    me_client_t *c = me_daemon_client(d);
    if (!c) return NULL;
    me_status_t st;
    if (me_client_create_collection(c, spec, &st) != 0) {
        fprintf(stderr, "    create %s: %s\n", spec->name, st.message);
        me_client_close(c);
        return NULL;
    }
    return c;
}

long me_test_count_ids(me_client_t *c, const char *coll, const char *const *ids, size_t n) {
    me_record_t *recs;
    size_t got;
    me_status_t st;
    if (me_client_get(c, coll, ids, n, 0, &recs, &got, &st) != 0) {
        fprintf(stderr, "    get from %s: %s\n", coll, st.message);
        return -1;
    }
    me_records_free(recs, got);
    return (long)got;
}
