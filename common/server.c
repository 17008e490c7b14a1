#include "common/server.h"

#include <errno.h>
#include <stdarg.h>
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
    int index;  /* worker number; -1: the health worker */
} thread_arg_t;

/* When the request the worker thread is serving reached the ROUTER. */
static _Thread_local uint64_t t_arrival_us;

uint64_t me_server_arrival_us(void) { return t_arrival_us; }

static void *worker_main(void *arg) {
    thread_arg_t *a = arg;
    const me_server_t *srv = a->srv;
    void *sock = zmq_socket(a->zctx, ZMQ_DEALER);
    me_wire_socket_defaults(sock, 0);
    /* Its name at the broker: "w" and its index (the health worker: "h"). */
    char name[16];
    int nlen = a->index < 0 ? snprintf(name, sizeof name, "h") : snprintf(name, sizeof name, "w%d", a->index);
    zmq_setsockopt(sock, ZMQ_ROUTING_ID, name, (size_t)nlen);
    if (zmq_connect(sock, BACKEND) != 0) {
        me_error("worker cannot connect: %s", zmq_strerror(errno));
        zmq_close(sock);
        return NULL;
    }
    void *wstate = srv->worker_init ? srv->worker_init(srv->ctx, a->zctx) : NULL;
    zmq_send(sock, "READY", 5, 0);
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

/* ---- the broker: the ROUTER in front, the workers behind ----
 *
 * The ZeroMQ guide's load-balancing broker: a request goes to a worker
 * that is idle (not round-robin into a busy one's queue), stamped with its
 * arrival so its deadline counts the time it waited. Waiting requests sit
 * in three bounded queues ("lanes"):
 *
 *   health  Health: served by a worker of its own, so no search or write,
 *           however long, can hold up a heartbeat;
 *   cheap   lookups and DDL (Get, Stats, ListCollections, ...): any worker;
 *   heavy   searches, writes, scans: at most `threads` workers at once;
 *           one more worker is kept for the cheap lane, so lookups never
 *           wait behind long searches.
 *
 * Cheap requests go first. A lane that is full answers RESOURCE_EXHAUSTED
 * at once (overload sheds instead of queueing without end), and a request
 * whose deadline passed while it waited is answered DEADLINE_EXCEEDED
 * without running. */

enum { LANE_HEALTH, LANE_CHEAP, LANE_HEAVY, LANES };
static const char *const lane_names[LANES] = { "health", "cheap", "heavy" };

typedef struct pending {
    struct pending *next;
    zmq_msg_t *frames;     /* as received: route frames, then the request */
    int nframes;
    uint64_t arrival_us, deadline_us, request_id;
} pending_t;

typedef struct {
    pending_t *head, *tail;
    int n;
} lane_t;

typedef struct {
    void *front, *back;
    int nworkers, max_heavy, max_queue;
    int *idle;             /* worker index -> 1 when idle; [nworkers] the health worker */
    int *heavy;            /* worker index -> serving a heavy request */
    int heavy_busy;
    lane_t lanes[LANES];
    long long default_deadline_ms;
} broker_t;

static atomic_uint_fast64_t g_shed[LANES], g_expired[LANES];

uint64_t me_server_shed(int lane) { return lane >= 0 && lane < LANES ? atomic_load(&g_shed[lane]) : 0; }
uint64_t me_server_expired(int lane) { return lane >= 0 && lane < LANES ? atomic_load(&g_expired[lane]) : 0; }
const char *me_server_lane_name(int lane) { return lane >= 0 && lane < LANES ? lane_names[lane] : "?"; }

void me_server_render_metrics(me_buf_t *out) {
    me_metric_head(out, "metaembed_requests_shed_total", "counter",
                   "Requests refused (RESOURCE_EXHAUSTED) because their lane's queue was full, by lane.");
    for (int l = 0; l < LANES; l++)
        me_buf_printf(out, "metaembed_requests_shed_total{lane=\"%s\"} %llu\n", lane_names[l],
                      (unsigned long long)atomic_load(&g_shed[l]));
    me_metric_head(out, "metaembed_requests_expired_waiting_total", "counter",
                   "Requests answered DEADLINE_EXCEEDED without running: their deadline passed while they waited.");
    for (int l = 0; l < LANES; l++)
        me_buf_printf(out, "metaembed_requests_expired_waiting_total{lane=\"%s\"} %llu\n", lane_names[l],
                      (unsigned long long)atomic_load(&g_expired[l]));
}

static int lane_of(int method) {
    switch (method) {
    case METAEMBED__METHOD__METHOD_HEALTH: return LANE_HEALTH;
    case METAEMBED__METHOD__METHOD_SEARCH:
    case METAEMBED__METHOD__METHOD_UPSERT:
    case METAEMBED__METHOD__METHOD_DELETE:
    case METAEMBED__METHOD__METHOD_ENCODE:
    case METAEMBED__METHOD__METHOD_COUNT:
    case METAEMBED__METHOD__METHOD_LIST_IDS:
    case METAEMBED__METHOD__METHOD_INDEX_FIELDS:
    case METAEMBED__METHOD__METHOD_SYNC_STATE:
    case METAEMBED__METHOD__METHOD_SNAPSHOT:
    case METAEMBED__METHOD__METHOD_RESHARD: return LANE_HEAVY;
    default: return LANE_CHEAP;
    }
}

static void pending_free(pending_t *p) {
    for (int i = 0; i < p->nframes; i++) zmq_msg_close(&p->frames[i]);
    free(p->frames);
    free(p);
}

/* Reads one multipart message into a new pending_t (NULL on failure). */
static pending_t *recv_all(void *sock) {
    pending_t *p = calloc(1, sizeof *p);
    int cap = 4;
    if (!p || !(p->frames = malloc((size_t)cap * sizeof *p->frames))) { free(p); return NULL; }
    for (;;) {
        if (p->nframes == cap) {
            zmq_msg_t *nf = realloc(p->frames, (size_t)(cap *= 2) * sizeof *nf);
            if (!nf) { pending_free(p); return NULL; }
            p->frames = nf;
        }
        zmq_msg_t *m = &p->frames[p->nframes];
        zmq_msg_init(m);
        if (zmq_msg_recv(m, sock, 0) < 0) { zmq_msg_close(m); pending_free(p); return NULL; }
        p->nframes++;
        if (!zmq_msg_more(m)) return p;
    }
}

/* Answers a waiting request from the broker itself (refused or expired). */
static void answer(broker_t *b, pending_t *p, int status, const char *fmt, ...) {
    me_reply_t r;
    me_reply_init(&r);
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    me_reply_error(&r, status, "%s", msg);
    me_route_t route;
    route.n = 0;
    for (int i = 0; i + 1 < p->nframes && route.n < ME_WIRE_MAX_ROUTE; i++) {
        zmq_msg_init(&route.frames[route.n]);
        zmq_msg_move(&route.frames[route.n++], &p->frames[i]);
    }
    me_wire_send_reply(b->front, &route, p->request_id, &r);
    me_reply_clear(&r);
    pending_free(p);
}

/* Hands p to worker w: [w][arrival][route...][request]. */
static int send_to_worker(broker_t *b, int w, pending_t *p) {
    char name[16];
    int nlen = w == b->nworkers ? snprintf(name, sizeof name, "h") : snprintf(name, sizeof name, "w%d", w);
    int rc = zmq_send(b->back, name, (size_t)nlen, ZMQ_SNDMORE) < 0 ||
             zmq_send(b->back, &p->arrival_us, sizeof p->arrival_us, ZMQ_SNDMORE) < 0;
    for (int i = 0; i < p->nframes && !rc; i++)
        rc = zmq_msg_send(&p->frames[i], b->back, i + 1 < p->nframes ? ZMQ_SNDMORE : 0) < 0;
    pending_free(p);
    return rc ? -1 : 0;
}

static pending_t *lane_pop(lane_t *l) {
    pending_t *p = l->head;
    if (p) {
        l->head = p->next;
        if (!l->head) l->tail = NULL;
        l->n--;
    }
    return p;
}

/* Gives waiting requests to idle workers: health to its own, then cheap
 * before heavy, heavy within its share. */
static void dispatch(broker_t *b) {
    uint64_t now = me_now_us();
    for (int lane = 0; lane < LANES; lane++) {
        lane_t *l = &b->lanes[lane];
        while (l->head) {
            int w = -1;
            if (lane == LANE_HEALTH) {
                if (b->idle[b->nworkers]) w = b->nworkers;
            } else if (lane == LANE_CHEAP || b->heavy_busy < b->max_heavy) {
                for (int i = 0; i < b->nworkers && w < 0; i++)
                    if (b->idle[i]) w = i;
            }
            if (w < 0) break;
            pending_t *p = lane_pop(l);
            if (p->deadline_us && now >= p->deadline_us) {
                atomic_fetch_add(&g_expired[lane], 1);
                answer(b, p, ME_CODE_DEADLINE_EXCEEDED,
                       "the deadline passed while the request waited for a worker (%s lane); the server is busy: "
                       "retry with backoff, or allow more time (deadline_ms)", lane_names[lane]);
                continue;
            }
            b->idle[w] = 0;
            if (lane == LANE_HEAVY) { b->heavy[w] = 1; b->heavy_busy++; }
            if (send_to_worker(b, w, p) != 0) me_warn("could not hand a request to a worker: %s", zmq_strerror(errno));
        }
    }
}

/* A request from a client: into its lane, or refused when the lane is full. */
static void from_client(broker_t *b) {
    pending_t *p = recv_all(b->front);
    if (!p) return;
    p->arrival_us = me_now_us();
    int lane = LANE_CHEAP;
    zmq_msg_t *body = &p->frames[p->nframes - 1];
    Metaembed__Envelope *env = p->nframes >= 2 && zmq_msg_size(body) <= (1u << 30)
                                   ? metaembed__envelope__unpack(NULL, zmq_msg_size(body), zmq_msg_data(body)) : NULL;
    if (env) {
        lane = lane_of(env->method);
        p->request_id = env->request_id;
        uint64_t ms = env->deadline_ms ? env->deadline_ms : (uint64_t)(b->default_deadline_ms > 0 ? b->default_deadline_ms : 0);
        p->deadline_us = ms ? p->arrival_us + ms * 1000u : 0;
        metaembed__envelope__free_unpacked(env, NULL);
    }
    /* Malformed ones go to a worker as they are: it says what is wrong. */
    lane_t *l = &b->lanes[lane];
    if (l->n >= b->max_queue) {
        atomic_fetch_add(&g_shed[lane], 1);
        answer(b, p, ME_CODE_RESOURCE_EXHAUSTED,
               "server busy: %d requests already wait in the %s lane (the limit); retry with backoff", l->n,
               lane_names[lane]);
        return;
    }
    if (l->tail) l->tail->next = p;
    else l->head = p;
    l->tail = p;
    l->n++;
}

/* A message from a worker: READY, or a reply to pass on. */
static void from_worker(broker_t *b) {
    pending_t *p = recv_all(b->back);
    if (!p) return;
    const char *name = zmq_msg_data(&p->frames[0]);
    size_t nlen = zmq_msg_size(&p->frames[0]);
    int w = nlen == 1 && name[0] == 'h' ? b->nworkers : -1;
    if (nlen > 1 && nlen < 16 && name[0] == 'w') {
        char tmp[16];
        memcpy(tmp, name + 1, nlen - 1);
        tmp[nlen - 1] = 0;
        w = atoi(tmp);
    }
    if (w < 0 || w > b->nworkers) { pending_free(p); return; }
    b->idle[w] = 1;
    if (b->heavy[w]) { b->heavy[w] = 0; b->heavy_busy--; }
    if (p->nframes >= 3)  /* [w][route...][reply]: pass on without [w] */
        for (int i = 1; i < p->nframes; i++)
            if (zmq_msg_send(&p->frames[i], b->front, i + 1 < p->nframes ? ZMQ_SNDMORE : 0) < 0) break;
    pending_free(p);
}

/* Runs until the control socket says TERMINATE. */
static void broker(broker_t *b, void *ctl) {
    for (;;) {
        zmq_pollitem_t it[3] = { { b->back, 0, ZMQ_POLLIN, 0 }, { ctl, 0, ZMQ_POLLIN, 0 }, { b->front, 0, ZMQ_POLLIN, 0 } };
        if (zmq_poll(it, 3, -1) < 0) {
            if (errno == EINTR) continue;
            me_error("request broker stopped: %s", zmq_strerror(errno));
            return;
        }
        if (it[1].revents & ZMQ_POLLIN) {
            char cmd[16];
            zmq_recv(ctl, cmd, sizeof cmd, 0);
            return;
        }
        if (it[0].revents & ZMQ_POLLIN) from_worker(b);
        if (it[2].revents & ZMQ_POLLIN) from_client(b);
        dispatch(b);
    }
}

static void broker_free(broker_t *b) {
    for (int l = 0; l < LANES; l++)
        for (pending_t *p; (p = lane_pop(&b->lanes[l])) != NULL;) pending_free(p);
    free(b->idle);
    free(b->heavy);
}

int me_server_run(const me_server_t *srv) {
    void *zctx = zmq_ctx_new();
    void *front = zmq_socket(zctx, ZMQ_ROUTER);
    void *back = zmq_socket(zctx, ZMQ_ROUTER);
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
        thread_arg_t arg = { srv, zctx, 0 };
        pthread_t sig_thread, bg_thread;
        pthread_create(&sig_thread, NULL, signal_main, zctx);
        if (srv->background) pthread_create(&bg_thread, NULL, background_main, &arg);
        int heavy = srv->threads > 0 ? srv->threads : 1, n = heavy + 1;
        pthread_t *workers = calloc((size_t)n + 1, sizeof *workers);
        thread_arg_t *args = calloc((size_t)n + 1, sizeof *args);
        broker_t b = { .front = front, .back = back, .nworkers = n, .max_heavy = heavy,
                       .max_queue = srv->max_queue > 0 ? srv->max_queue : 64 * n,
                       .default_deadline_ms = srv->default_deadline_ms };
        b.idle = calloc((size_t)n + 1, sizeof *b.idle);
        b.heavy = calloc((size_t)n + 1, sizeof *b.heavy);
        if (!workers || !args || !b.idle || !b.heavy) {
            me_error("out of memory starting %d workers", n);
            exit(1);
        }
        /* The workers, and one more for Health only. */
        for (int i = 0; i <= n; i++) {
            args[i] = (thread_arg_t){ srv, zctx, i < n ? i : -1 };
            pthread_create(&workers[i], NULL, worker_main, &args[i]);
        }
        me_info("serving on %s with %d workers for searches and writes, +1 for lookups, +1 for health (up to %d "
                "requests wait per lane)%s",
                srv->listen, b.max_heavy, b.max_queue, curve ? ", CurveZMQ on (clients in allowed_clients only)" : "");
        broker(&b, ctl);
        atomic_store(&g_stop, 1);
        for (int i = 0; i <= n; i++) pthread_join(workers[i], NULL);
        broker_free(&b);
        free(workers);
        free(args);
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
                       .deadline_us = t0 + budget_ms * 1000u, .reply = reply,
                       .placement = env->placement, .group = (int)(env->group > 255 ? 255 : env->group) };
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
