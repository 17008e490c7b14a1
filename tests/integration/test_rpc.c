/* A late or stale reply is never taken for the next request, on every
 * client path: the library's typed calls, its raw me_client_call, the
 * coordinator's fan-out and its heartbeats. The server here is a trickster
 * (a thread with a real ROUTER on loopback): before every true reply it
 * sends one that answers another request id, and on demand it answers
 * only after the client has given up. True replies carry the request id
 * they answer (in uptime_ms), so a test can tell whose reply it got. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "common/wire.h"
#include "tests/cluster.h"
#include "tests/harness.h"

typedef struct {
    char endpoint[64];
    atomic_int stop, delay_next_ms, requests;
    pthread_t thread;
} trickster_t;

static void send_reply(void *sock, zmq_msg_t *id, uint64_t rid, const ProtobufCMessage *msg) {
    me_reply_t r;
    me_reply_init(&r);
    me_reply_ok(&r, msg);
    me_route_t route = { .n = 1 };
    zmq_msg_init(&route.frames[0]);
    zmq_msg_copy(&route.frames[0], id);
    me_wire_send_reply(sock, &route, rid, &r);
    me_reply_clear(&r);
}

/* The reply a method gets; `truth` picks the true one or the decoy. */
static void answer(void *sock, zmq_msg_t *id, uint64_t rid, int method, int truth) {
    uint64_t as = truth ? rid : rid + 1000;  /* the decoy answers a request that was never sent */
    if (method == METAEMBED__METHOD__METHOD_SEARCH) {
        Metaembed__Hit hit = METAEMBED__HIT__INIT, *hp = &hit;
        hit.id = truth ? "right" : "decoy";
        hit.score = truth ? 1.0f : 9.0f;
        Metaembed__SearchReply rep = METAEMBED__SEARCH_REPLY__INIT;
        rep.hits = &hp;
        rep.n_hits = 1;
        rep.documents = rid;
        send_reply(sock, id, as, &rep.base);
    } else if (method == METAEMBED__METHOD__METHOD_LIST_COLLECTIONS) {
        Metaembed__ListCollectionsReply rep = METAEMBED__LIST_COLLECTIONS_REPLY__INIT;
        send_reply(sock, id, as, &rep.base);
    } else if (method == METAEMBED__METHOD__METHOD_STATS) {
        Metaembed__StatsReply rep = METAEMBED__STATS_REPLY__INIT;
        rep.role = truth ? "right" : "decoy";
        rep.uptime_ms = rid;
        send_reply(sock, id, as, &rep.base);
    } else {
        Metaembed__HealthReply rep = METAEMBED__HEALTH_REPLY__INIT;
        rep.serving = 1;
        rep.role = truth ? "right" : "decoy";
        rep.uptime_ms = rid;
        rep.documents = truth ? 42 : 666;
        send_reply(sock, id, as, &rep.base);
    }
}

static void *trickster_main(void *arg) {
    trickster_t *t = arg;
    void *ctx = zmq_ctx_new();
    void *sock = zmq_socket(ctx, ZMQ_ROUTER);
    me_wire_socket_defaults(sock, 0);
    zmq_bind(sock, t->endpoint);
    while (!atomic_load(&t->stop)) {
        zmq_pollitem_t it = { sock, 0, ZMQ_POLLIN, 0 };
        if (zmq_poll(&it, 1, 50) <= 0) continue;
        me_route_t route;
        zmq_msg_t body;
        if (me_wire_recv(sock, &route, &body) != 0) continue;
        Metaembed__Envelope *env = metaembed__envelope__unpack(NULL, zmq_msg_size(&body), zmq_msg_data(&body));
        zmq_msg_close(&body);
        if (env && route.n == 1) {
            atomic_fetch_add(&t->requests, 1);
            int delay = atomic_exchange(&t->delay_next_ms, 0);
            if (delay) usleep((useconds_t)delay * 1000);
            answer(sock, &route.frames[0], env->request_id, (int)env->method, 0);
            answer(sock, &route.frames[0], env->request_id, (int)env->method, 1);
        }
        if (env) metaembed__envelope__free_unpacked(env, NULL);
        me_route_close(&route);
    }
    zmq_close(sock);
    zmq_ctx_term(ctx);
    return NULL;
}

static void trickster_start(trickster_t *t) {
    memset(t, 0, sizeof *t);
    snprintf(t->endpoint, sizeof t->endpoint, "tcp://127.0.0.1:%d", me_test_free_port());
    pthread_create(&t->thread, NULL, trickster_main, t);
    usleep(100000);
}

static void trickster_stop(trickster_t *t) {
    atomic_store(&t->stop, 1);
    pthread_join(t->thread, NULL);
}

/* The request id a Health reply answers (0: none or malformed). */
static uint64_t raw_health(me_client_t *c, int *code) {
    void *rep = NULL;
    size_t len = 0;
    me_status_t st;
    *code = me_client_call(c, METAEMBED__METHOD__METHOD_HEALTH, NULL, 0, &rep, &len, &st);
    Metaembed__HealthReply *h = rep ? metaembed__health_reply__unpack(NULL, len, rep) : NULL;
    uint64_t rid = h && strcmp(h->role, "right") == 0 ? h->uptime_ms : 0;
    if (h) metaembed__health_reply__free_unpacked(h, NULL);
    free(rep);
    return rid;
}

TEST(rpc_client_never_takes_a_stale_or_late_reply) {
    trickster_t t;
    trickster_start(&t);
    me_status_t st;
    me_client_t *c = me_client_connect(t.endpoint, 2000, &st);
    ASSERT_TRUE(c != NULL);

    /* Typed calls: the decoy (another request id, role "decoy") comes first. */
    for (int i = 0; i < 5; i++) {
        me_stats_t s;
        ASSERT_OK(me_client_stats(c, NULL, &s, &st));
        ASSERT_STREQ(s.role, "right");
        me_stats_free(&s);
    }
    /* The raw path, consecutive request ids. */
    int code;
    uint64_t r0 = raw_health(c, &code);
    ASSERT_EQ(code, 0);
    ASSERT_TRUE(r0 > 0);
    ASSERT_EQ(raw_health(c, &code), r0 + 1);

    /* A reply that comes after the client gave up is not the next one's. */
    me_client_set_timeout(c, 150);
    atomic_store(&t.delay_next_ms, 400);
    uint64_t late = raw_health(c, &code);
    ASSERT_EQ(code, ME_CODE_DEADLINE_EXCEEDED);
    ASSERT_EQ(late, 0);
    me_client_set_timeout(c, 2000);
    usleep(300000);  /* the late answers to r0 + 2 are on their way by now */
    ASSERT_EQ(raw_health(c, &code), r0 + 3);
    ASSERT_EQ(code, 0);
    atomic_store(&t.delay_next_ms, 400);
    me_client_set_timeout(c, 150);
    me_stats_t s;
    ASSERT_EQ(me_client_stats(c, NULL, &s, &st), ME_CODE_DEADLINE_EXCEEDED);
    me_client_set_timeout(c, 2000);
    usleep(300000);
    ASSERT_OK(me_client_stats(c, NULL, &s, &st));
    ASSERT_STREQ(s.role, "right");
    ASSERT_EQ(s.uptime_ms, r0 + 5);  /* its own request id, not r0 + 4's */
    me_stats_free(&s);
    me_client_close(c);
    trickster_stop(&t);
}

TEST(rpc_coordinator_fanout_and_heartbeats_never_take_a_stale_reply) {
    trickster_t t;
    trickster_start(&t);
    /* A coordinator whose only shard group is the trickster. */
    char *dir = me_test_tmpdir("rpc");
    char map[600], arg[700];
    snprintf(map, sizeof map, "%s/cluster.conf", dir);
    FILE *f = fopen(map, "w");
    fprintf(f, "group g0 %s\n", t.endpoint);
    fclose(f);
    snprintf(arg, sizeof arg, "--cluster=%s", map);
    me_daemon_t co = { .no_data_dir = 1, .extra = { arg, "--heartbeat-ms=50" }, .nextra = 2 };
    ASSERT_OK(me_daemon_start(&co, "metaembed-coordinator", "rpc-coord"));
    me_client_t *c = me_daemon_client(&co);
    ASSERT_TRUE(c != NULL);
    usleep(400000);  /* several heartbeats, each followed by its decoy */

    /* Heartbeats took their own answers: 42 documents, never the decoy's 666. */
    for (int i = 0; i < 5; i++) {
        me_stats_t s;
        me_status_t st;
        ASSERT_OK(me_client_stats(c, NULL, &s, &st));
        ASSERT_EQ(s.n_groups, 1);
        ASSERT_EQ(s.groups[0].replicas[0].up, 1);
        ASSERT_EQ(s.groups[0].replicas[0].documents, 42);
        me_stats_free(&s);
        usleep(60000);
    }
    /* The fan-out took its own answer: hit "right", not the higher-scoring decoy. */
    float q[4] = { 1, 0, 0, 0 };
    me_search_opts_t o = { .k = 5 };
    for (int i = 0; i < 5; i++) {
        me_results_t res;
        me_status_t st;
        ASSERT_OK(me_client_search(c, "any", q, 1, 4, &o, &res, &st));
        ASSERT_EQ(res.n, 1);
        ASSERT_STREQ(res.hits[0].id, "right");
        me_results_free(&res);
    }
    ASSERT_TRUE(atomic_load(&t.requests) > 10);
    me_client_close(c);
    me_daemon_free(&co);
    trickster_stop(&t);
    me_test_rmdir(dir);
    free(dir);
}
