/* metaembed-shard: one partition of the index, served over ZeroMQ.
 *
 * Threads: main runs a ROUTER→DEALER proxy; `--threads` workers take
 * requests from the inproc DEALER and call me_shard_handle; a signal thread
 * turns SIGTERM/SIGINT into a TERMINATE on the proxy's control socket, after
 * which workers finish their request, RocksDB is flushed and closed. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "common/wire.h"
#include "shard/shard.h"

#define BACKEND "inproc://shard-workers"
#define CONTROL "inproc://shard-control"

static atomic_int g_stop;

typedef struct {
    void *zctx;
    me_shard_t *shard;
} worker_arg_t;

static void *worker_main(void *arg) {
    worker_arg_t *w = arg;
    void *sock = zmq_socket(w->zctx, ZMQ_DEALER);
    me_wire_socket_defaults(sock, 0);
    if (zmq_connect(sock, BACKEND) != 0) {
        me_error("worker cannot connect: %s", zmq_strerror(errno));
        zmq_close(sock);
        return NULL;
    }
    while (!atomic_load(&g_stop)) {
        zmq_pollitem_t it = { sock, 0, ZMQ_POLLIN, 0 };
        if (zmq_poll(&it, 1, 200) <= 0) continue;
        me_route_t route;
        zmq_msg_t body;
        int rc = me_wire_recv(sock, &route, &body);
        if (rc == ME_EPROTO) continue;
        if (rc) break;
        uint64_t rid;
        me_reply_t reply;
        me_shard_handle(w->shard, zmq_msg_data(&body), zmq_msg_size(&body), &rid, &reply);
        zmq_msg_close(&body);
        if (me_wire_send_reply(sock, &route, rid, &reply) != 0)
            me_warn("could not send a reply: %s", zmq_strerror(errno));
        me_reply_clear(&reply);
    }
    zmq_close(sock);
    return NULL;
}

/* Self-pipe: the handler may run on any thread (libraries start threads of
 * their own before main, so blocking signals cannot steer them), and only
 * writes one byte; the signal thread does the rest. */
static int g_sigpipe[2] = { -1, -1 };

static void on_signal(int sig) {
    unsigned char b = (unsigned char)sig;
    ssize_t w = write(g_sigpipe[1], &b, 1);
    (void)w;
}

static void *signal_main(void *arg) {
    void *zctx = arg;
    unsigned char sig = 0;
    while (read(g_sigpipe[0], &sig, 1) < 0 && errno == EINTR) {}
    me_info("received %s, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    void *ctl = zmq_socket(zctx, ZMQ_PAIR);
    zmq_connect(ctl, CONTROL);
    zmq_send(ctl, "TERMINATE", 9, 0);
    zmq_close(ctl);
    return NULL;
}

int main(int argc, char **argv) {
    me_shard_opts_t opts;
    char err[512];
    const char *summary =
        "metaembed-shard: stores nested multi-vector embeddings in RocksDB and answers\n"
        "MaxSim searches at any budget (r_q, r_c) with a coarse scan + rerank cascade.\n\n"
        "usage: metaembed-shard [--listen tcp://127.0.0.1:7600] [--data-dir DIR] [options]";
    me_log_set_role("shard");
    if (me_config_defaults(me_shard_options, &opts, err, sizeof err) != 0) {
        fprintf(stderr, "metaembed-shard: %s\n", err);
        return 2;
    }
    int rc = me_config_parse(me_shard_options, &opts, argc, argv, "metaembed-shard", summary,
                             NULL, 0, NULL, err, sizeof err);
    if (rc == 1) return 0;
    if (rc) {
        fprintf(stderr, "metaembed-shard: %s\n", err);
        return 2;
    }
    me_log_level = me_log_level_from_name(opts.log_level);

    if (pipe(g_sigpipe) != 0) {
        perror("metaembed-shard: pipe");
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    static me_shard_t shard;
    if (me_shard_open(&shard, &opts, err, sizeof err) != 0) {
        me_error("cannot open shard: %s", err);
        return 1;
    }

    void *zctx = zmq_ctx_new();
    void *front = zmq_socket(zctx, ZMQ_ROUTER);
    void *back = zmq_socket(zctx, ZMQ_DEALER);
    void *ctl = zmq_socket(zctx, ZMQ_PAIR);
    me_wire_socket_defaults(front, opts.max_message);
    me_wire_socket_defaults(back, 0);
    int exit_code = 0;
    if (zmq_bind(front, opts.listen) != 0) {
        me_error("cannot listen on %s: %s (is another process using it? pick another --listen)",
                 opts.listen, zmq_strerror(errno));
        exit_code = 1;
    } else if (zmq_bind(back, BACKEND) != 0 || zmq_bind(ctl, CONTROL) != 0) {
        me_error("cannot bind inproc sockets: %s", zmq_strerror(errno));
        exit_code = 1;
    }
    if (exit_code == 0) {
        pthread_t sig_thread;
        pthread_create(&sig_thread, NULL, signal_main, zctx);
        int nthreads = (int)opts.threads;
        pthread_t *workers = calloc((size_t)nthreads, sizeof *workers);
        worker_arg_t warg = { zctx, &shard };
        for (int i = 0; i < nthreads; i++) pthread_create(&workers[i], NULL, worker_main, &warg);
        me_info("serving on %s with %d workers (data %s, sync %s)", opts.listen, nthreads,
                opts.data_dir, opts.sync ? "on" : "off");
        zmq_proxy_steerable(front, back, NULL, ctl);
        atomic_store(&g_stop, 1);
        for (int i = 0; i < nthreads; i++) pthread_join(workers[i], NULL);
        free(workers);
        pthread_join(sig_thread, NULL);
    }
    zmq_close(front);
    zmq_close(back);
    zmq_close(ctl);
    zmq_ctx_term(zctx);
    me_shard_close(&shard);
    me_info("stopped cleanly");
    return exit_code;
}
