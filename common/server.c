#include "common/server.h"

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
#include "common/validate.h"

#define BACKEND "inproc://me-workers"
#define CONTROL "inproc://me-control"

/* Self-pipe: the handler may run on any thread (libraries such as OpenBLAS
 * start threads before main, so blocking signals cannot steer them); it only
 * writes one byte, and the signal thread does the rest. */
static int g_sigpipe[2] = { -1, -1 };
static atomic_int g_stop;

static void on_signal(int sig) {
    unsigned char b = (unsigned char)sig;
    ssize_t w = write(g_sigpipe[1], &b, 1);
    (void)w;
}

int me_server_signals(void) {
    if (pipe(g_sigpipe) != 0) return ME_EIO;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

typedef struct {
    const me_server_t *srv;
    void *zctx;
} thread_arg_t;

/* When the request the worker thread is serving reached the ROUTER. */
static _Thread_local uint64_t t_arrival_us;

uint64_t me_server_arrival_us(void) { return t_arrival_us; }

static void *worker_main(void *arg) {
    thread_arg_t *a = arg;
    const me_server_t *srv = a->srv;
    void *sock = zmq_socket(a->zctx, ZMQ_DEALER);
    me_wire_socket_defaults(sock, 0);
    if (zmq_connect(sock, BACKEND) != 0) {
        me_error("worker cannot connect: %s", zmq_strerror(errno));
        zmq_close(sock);
        return NULL;
    }
    void *wstate = srv->worker_init ? srv->worker_init(srv->ctx, a->zctx) : NULL;
    while (!atomic_load(&g_stop)) {
        zmq_pollitem_t it = { sock, 0, ZMQ_POLLIN, 0 };
        if (zmq_poll(&it, 1, 200) <= 0) continue;
        /* The proxy's first frame: when the request arrived (the rest is
         * the ROUTER's message, as a client sent it). */
        zmq_msg_t stamp;
        zmq_msg_init(&stamp);
        if (zmq_msg_recv(&stamp, sock, 0) < 0) { zmq_msg_close(&stamp); break; }
        t_arrival_us = 0;
        if (zmq_msg_size(&stamp) == sizeof t_arrival_us) memcpy(&t_arrival_us, zmq_msg_data(&stamp), sizeof t_arrival_us);
        int stamped = zmq_msg_more(&stamp);
        zmq_msg_close(&stamp);
        if (!stamped) continue;
        me_route_t route;
        zmq_msg_t body;
        int rc = me_wire_recv(sock, &route, &body);
        if (rc == ME_ETOOBIG) {
            /* Answer the sender (route[0], the identity the ROUTER added)
             * without echoing the frames it sent. */
            me_reply_t too_big;
            me_reply_init(&too_big);
            me_reply_error(&too_big, ME_CODE_RESOURCE_EXHAUSTED,
                           "a request is one frame (a packed Envelope), after at most %d routing frames of at most "
                           "%d bytes; this message had more", ME_WIRE_MAX_ROUTE - 1, ME_WIRE_MAX_ROUTE_FRAME);
            if (route.n == 1) me_wire_send_reply(sock, &route, 0, &too_big);
            me_route_close(&route);
            continue;
        }
        if (rc) break;
        uint64_t rid;
        me_reply_t reply;
        srv->handle(srv->ctx, wstate, zmq_msg_data(&body), zmq_msg_size(&body), &rid, &reply);
        zmq_msg_close(&body);
        if (me_wire_send_reply(sock, &route, rid, &reply) != 0)
            me_warn("could not send a reply: %s", zmq_strerror(errno));
        me_reply_clear(&reply);
    }
    if (srv->worker_free) srv->worker_free(srv->ctx, wstate);
    zmq_close(sock);
    return NULL;
}

static void *background_main(void *arg) {
    thread_arg_t *a = arg;
    a->srv->background(a->srv->ctx, a->zctx, &g_stop);
    return NULL;
}

static void *signal_main(void *arg) {
    void *zctx = arg;
    unsigned char sig = 0;
    while (read(g_sigpipe[0], &sig, 1) < 0 && errno == EINTR) {}
    if (sig == 0) return NULL;  /* woken by me_server_run's own exit */
    me_info("received %s, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    void *ctl = zmq_socket(zctx, ZMQ_PAIR);
    zmq_connect(ctl, CONTROL);
    zmq_send(ctl, "TERMINATE", 9, 0);
    zmq_close(ctl);
    return NULL;
}

/* Moves one multipart message from `from` to `to`; with `stamp`, first a
 * frame holding the time it arrived. 0, or -1 when a socket failed. */
static int forward(void *from, void *to, int stamp) {
    if (stamp) {
        uint64_t now = me_now_us();
        if (zmq_send(to, &now, sizeof now, ZMQ_SNDMORE) < 0) return -1;
    }
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, from, 0) < 0) { zmq_msg_close(&m); return -1; }
        int more = zmq_msg_more(&m);
        if (zmq_msg_send(&m, to, more ? ZMQ_SNDMORE : 0) < 0) { zmq_msg_close(&m); return -1; }
        if (!more) return 0;
    }
}

/* The ROUTER ↔ workers proxy (zmq_proxy_steerable's job), stamping each
 * request with its arrival, so a deadline counts the time it waited for a
 * worker; it ends on the control socket's TERMINATE. */
static void proxy(void *front, void *back, void *ctl) {
    for (;;) {
        zmq_pollitem_t it[3] = { { front, 0, ZMQ_POLLIN, 0 }, { back, 0, ZMQ_POLLIN, 0 }, { ctl, 0, ZMQ_POLLIN, 0 } };
        if (zmq_poll(it, 3, -1) < 0) {
            if (errno == EINTR) continue;
            me_error("request proxy stopped: %s", zmq_strerror(errno));
            return;
        }
        if (it[2].revents & ZMQ_POLLIN) {
            char cmd[16];
            zmq_recv(ctl, cmd, sizeof cmd, 0);
            return;
        }
        if ((it[1].revents & ZMQ_POLLIN) && forward(back, front, 0) != 0 && errno == ETERM) return;
        if ((it[0].revents & ZMQ_POLLIN) && forward(front, back, 1) != 0 && errno == ETERM) return;
    }
}

int me_server_run(const me_server_t *srv) {
    void *zctx = zmq_ctx_new();
    void *front = zmq_socket(zctx, ZMQ_ROUTER);
    void *back = zmq_socket(zctx, ZMQ_DEALER);
    void *ctl = zmq_socket(zctx, ZMQ_PAIR);
    me_wire_socket_defaults(front, srv->max_message);
    me_wire_socket_defaults(back, 0);
    int exit_code = 0, curve = srv->curve && srv->curve->on;
    me_zap_t *zap = NULL;
    char err[512];
    if (!curve && !srv->insecure && !me_endpoint_is_local(srv->listen)) {
        me_error("refusing to listen on %s without encryption: it is not a loopback address. Pass --curve-dir DIR "
                 "(keys from 'metaembed keygen --dir DIR'), or --insecure on a network you trust",
                 srv->listen);
        exit_code = 1;
    } else if (curve && !srv->curve->can_serve) {
        me_error("--curve-dir has no server.key: a server needs the cluster's server key pair (metaembed keygen)");
        exit_code = 1;
    } else if (curve && (!(zap = me_curve_zap_start(zctx, srv->curve, err, sizeof err)) ||
                         me_curve_server(front, srv->curve) != 0)) {
        me_error("cannot enable CurveZMQ: %s", zap ? zmq_strerror(errno) : err);
        exit_code = 1;
    } else if (zmq_bind(front, srv->listen) != 0) {
        me_error("cannot listen on %s: %s (is another process using it? pick another --listen)",
                 srv->listen, zmq_strerror(errno));
        exit_code = 1;
    } else if (zmq_bind(back, BACKEND) != 0 || zmq_bind(ctl, CONTROL) != 0) {
        me_error("cannot bind inproc sockets: %s", zmq_strerror(errno));
        exit_code = 1;
    }
    if (exit_code == 0) {
        thread_arg_t arg = { srv, zctx };
        pthread_t sig_thread, bg_thread;
        pthread_create(&sig_thread, NULL, signal_main, zctx);
        if (srv->background) pthread_create(&bg_thread, NULL, background_main, &arg);
        int n = srv->threads > 0 ? srv->threads : 1;
        pthread_t *workers = calloc((size_t)n, sizeof *workers);
        for (int i = 0; i < n; i++) pthread_create(&workers[i], NULL, worker_main, &arg);
        me_info("serving on %s with %d workers%s", srv->listen, n,
                curve ? ", CurveZMQ on (clients in allowed_clients only)" : "");
        proxy(front, back, ctl);
        atomic_store(&g_stop, 1);
        for (int i = 0; i < n; i++) pthread_join(workers[i], NULL);
        free(workers);
        if (srv->background) pthread_join(bg_thread, NULL);
        pthread_join(sig_thread, NULL);
    }
    zmq_close(front);
    zmq_close(back);
    zmq_close(ctl);
    zmq_ctx_term(zctx);
    me_curve_zap_join(zap);
    return exit_code;
}

int me_reply_health(me_request_t *r, const char *role, uint64_t start_ms, uint64_t documents) {
    Metaembed__HealthReply rep = METAEMBED__HEALTH_REPLY__INIT;
    rep.serving = 1;
    rep.role = (char *)role;
    rep.version = ME_VERSION;
    rep.uptime_ms = me_now_ms() - start_ms;
    rep.documents = documents;
    return me_reply_ok(r->reply, &rep.base);
}

int me_request_check_batch(me_request_t *r, size_t n, long long max, const char *what) {
    if (n == 0) return ME_BAD(r, "empty batch: send at least one %s", what);
    if ((long long)n > max)
        return me_reply_error(r->reply, ME_CODE_RESOURCE_EXHAUSTED, "batch of %zu %ss exceeds the limit of %lld; split it",
                              n, what, max);
    return 0;
}

int me_reply_get(me_request_t *r, Metaembed__Document **docs, size_t n_docs, char **missing, size_t n_missing,
                 uint64_t *missing_versions) {
    Metaembed__GetReply rep = METAEMBED__GET_REPLY__INIT;
    rep.documents = docs;
    rep.n_documents = n_docs;
    rep.missing = missing;
    rep.n_missing = n_missing;
    if (missing_versions) {
        rep.missing_versions = missing_versions;
        rep.n_missing_versions = n_missing;
    }
    return me_reply_ok(r->reply, &rep.base);
}

void me_dispatch(const me_method_t *methods, size_t n, void *ctx, void *wstate, const uint8_t *frame,
                 size_t len, long long max_message, long long default_deadline_ms,
                 atomic_uint_fast64_t *requests, atomic_uint_fast64_t *errors, me_metrics_t *metrics,
                 uint64_t *request_id, me_reply_t *reply) {
    /* From the request's arrival at the ROUTER (when a worker thread serves
     * it): time queued for a worker counts against its deadline. */
    uint64_t now = me_now_us(), arrival = me_server_arrival_us();
    uint64_t t0 = arrival && arrival <= now ? arrival : now;
    me_reply_init(reply);
    *request_id = 0;
    atomic_fetch_add(requests, 1);
    if ((long long)len > max_message) {
        me_reply_error(reply, ME_CODE_RESOURCE_EXHAUSTED,
                       "request of %zu bytes exceeds the %lld-byte limit (--max-message); send smaller batches",
                       len, max_message);
        atomic_fetch_add(errors, 1);
        if (metrics) me_metrics_observe(metrics, 0, reply->status, me_now_us() - t0);
        return;
    }
    Metaembed__Envelope *env = metaembed__envelope__unpack(NULL, len, frame);
    if (!env) {
        me_reply_error(reply, ME_CODE_INVALID_ARGUMENT,
                       "request is not a metaembed Envelope (protobuf parse failed); see proto/metaembed.proto");
        atomic_fetch_add(errors, 1);
        if (metrics) me_metrics_observe(metrics, 0, reply->status, me_now_us() - t0);
        return;
    }
    *request_id = env->request_id;
    uint64_t budget_ms = env->deadline_ms ? env->deadline_ms : (uint64_t)default_deadline_ms;
    me_request_t r = { .ctx = ctx, .wstate = wstate, .method = (int)env->method, .payload = &env->payload,
                       .deadline_us = t0 + budget_ms * 1000u, .reply = reply };
    const char *name = "unknown";
    size_t i;
    for (i = 0; i < n; i++)
        if (methods[i].method == (int)env->method) break;
    char err[256];
    if (i < n) {
        const me_method_info_t *info = me_method_info(methods[i].method);
        name = info ? info->name : "unknown";
        /* The string rule, for every method, on the packed bytes (protobuf-c
         * cuts a string at a NUL), then the one unpack the handler reads. */
        ProtobufCMessage *msg = NULL;
        if (info && me_check_strings(info->request, env->payload.data, env->payload.len, err, sizeof err) != 0)
            me_reply_error(reply, ME_CODE_INVALID_ARGUMENT, "%s", err);
        else if (!info || !(msg = protobuf_c_message_unpack(info->request, NULL, env->payload.len, env->payload.data)))
            me_reply_error(reply, ME_CODE_INVALID_ARGUMENT, "malformed %s (protobuf parse failed)",
                           info ? info->request->short_name : "request");
        else {
            r.msg = msg;
            methods[i].fn(&r);
        }
        if (msg) protobuf_c_message_free_unpacked(msg, NULL);
    } else {
        const me_method_info_t *info = me_method_info((int)env->method);
        if (info) me_reply_error(reply, ME_CODE_UNIMPLEMENTED, "%s is not served here", info->name);
        else me_reply_error(reply, ME_CODE_UNIMPLEMENTED, "unknown method %d", (int)env->method);
    }
    /* Every reply, whatever built it, stays within the message limit. */
    if (reply->status == ME_CODE_OK && (long long)reply->payload_len > max_message)
        me_reply_over_limit(reply, reply->payload_len, max_message, 0, 0);
    if (reply->status != ME_CODE_OK) {
        atomic_fetch_add(errors, 1);
        me_debug("%s rid=%llu -> %s: %s", name, (unsigned long long)env->request_id,
                 me_status_name(reply->status), reply->message);
    }
    if (metrics) me_metrics_observe(metrics, i < n ? methods[i].method : 0, reply->status, me_now_us() - t0);
    metaembed__envelope__free_unpacked(env, NULL);
}
