#include "common/wire.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "common/validate.h"

uint64_t me_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t me_now_ms(void) { return me_now_us() / 1000u; }

#define METHOD(NUM, NAME, MSG) \
    { METAEMBED__METHOD__METHOD_##NUM, #NAME, &metaembed__##MSG##_request__descriptor, &metaembed__##MSG##_reply__descriptor }
static const me_method_info_t methods[] = {
    METHOD(CREATE_COLLECTION, CreateCollection, create_collection),
    METHOD(DROP_COLLECTION, DropCollection, drop_collection),
    METHOD(LIST_COLLECTIONS, ListCollections, list_collections),
    METHOD(UPSERT, Upsert, upsert),
    METHOD(DELETE, Delete, delete),
    METHOD(GET, Get, get),
    METHOD(SEARCH, Search, search),
    METHOD(ENCODE, Encode, encode),
    METHOD(STATS, Stats, stats),
    METHOD(HEALTH, Health, health),
    METHOD(LIST_IDS, ListIds, list_ids),
    METHOD(COUNT, Count, count),
    METHOD(INDEX_FIELDS, IndexFields, index_fields),
    METHOD(SYNC_STATE, SyncState, sync_state),
    METHOD(SNAPSHOT, Snapshot, snapshot),
    METHOD(RESHARD, Reshard, reshard),
};
#undef METHOD

const me_method_info_t *me_method_info(int method) {
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (methods[i].method == method) return &methods[i];
    return NULL;
}

void me_reply_init(me_reply_t *r) { memset(r, 0, sizeof *r); }

void me_reply_clear(me_reply_t *r) {
    free(r->payload);
    me_reply_init(r);
}

int me_reply_error(me_reply_t *r, int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->message, sizeof r->message, fmt, ap);
    va_end(ap);
    /* A message cut at its buffer's end must stay valid UTF-8 (proto3). */
    me_utf8_clip(r->message);
    r->status = status;
    free(r->payload);
    r->payload = NULL;
    r->payload_len = 0;
    return status;
}

int me_reply_over_limit(me_reply_t *r, unsigned long long bytes, long long limit, size_t done, size_t total) {
    if (total)
        return me_reply_error(r, ME_CODE_RESOURCE_EXHAUSTED,
                              "the reply would exceed the %lld-byte message limit (--max-message) after %zu of %zu "
                              "items: ask for fewer per request, or leave out vectors or metadata", limit, done, total);
    return me_reply_error(r, ME_CODE_RESOURCE_EXHAUSTED,
                          "the reply of %llu bytes exceeds the %lld-byte message limit (--max-message): ask for fewer "
                          "items per request, or leave out vectors or metadata", bytes, limit);
}

int me_reply_ok(me_reply_t *r, const ProtobufCMessage *msg) {
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) {
        me_reply_error(r, ME_CODE_RESOURCE_EXHAUSTED, "out of memory packing reply");
        return ME_ENOMEM;
    }
    protobuf_c_message_pack(msg, buf);
    free(r->payload);
    r->payload = buf;
    r->payload_len = len;
    r->status = ME_CODE_OK;
    r->message[0] = 0;
    return 0;
}

int me_wire_recv(void *sock, me_route_t *route, zmq_msg_t *body) {
    route->n = 0;
    zmq_msg_init(body);
    int over = 0;  /* past the limits: drain the rest, keep only the first route frame */
    for (;;) {
        /* zmq_msg_recv releases what body held before. */
        if (zmq_msg_recv(body, sock, 0) < 0) {
            zmq_msg_close(body);
            me_route_close(route);
            return ME_EIO;
        }
        if (!zmq_msg_more(body)) {
            if (!over) return 0;
            zmq_msg_close(body);
            while (route->n > 1) zmq_msg_close(&route->frames[--route->n]);
            return ME_ETOOBIG;
        }
        if (over) continue;
        if (route->n == ME_WIRE_MAX_ROUTE || zmq_msg_size(body) > ME_WIRE_MAX_ROUTE_FRAME) {
            over = 1;
            continue;
        }
        zmq_msg_init(&route->frames[route->n]);
        zmq_msg_move(&route->frames[route->n], body);
        route->n++;
    }
}

void me_route_close(me_route_t *route) {
    for (int i = 0; i < route->n; i++) zmq_msg_close(&route->frames[i]);
    route->n = 0;
}

int me_wire_send_reply(void *sock, me_route_t *route, uint64_t request_id, const me_reply_t *r) {
    Metaembed__Status st = METAEMBED__STATUS__INIT;
    st.code = (Metaembed__StatusCode)r->status;
    st.message = (char *)r->message;
    Metaembed__Reply rep = METAEMBED__REPLY__INIT;
    rep.request_id = request_id;
    rep.status = &st;
    rep.payload.data = r->payload;
    rep.payload.len = r->payload ? r->payload_len : 0;
    rep.placement = r->placement;
    size_t len = metaembed__reply__get_packed_size(&rep);
    zmq_msg_t out;
    if (zmq_msg_init_size(&out, len) != 0) return ME_ENOMEM;
    metaembed__reply__pack(&rep, zmq_msg_data(&out));
    int rc = 0;
    for (int i = 0; i < route->n && rc == 0; i++)
        if (zmq_msg_send(&route->frames[i], sock, ZMQ_SNDMORE) < 0) rc = ME_EIO;
    if (rc == 0 && zmq_msg_send(&out, sock, 0) < 0) rc = ME_EIO;
    if (rc) zmq_msg_close(&out);
    /* zmq_msg_send leaves sent frames empty; closing them is still required. */
    me_route_close(route);
    return rc;
}

void *me_wire_connect(void *zctx, const char *endpoint, const me_curve_t *curve) {
    void *s = zmq_socket(zctx, ZMQ_DEALER);
    if (!s) return NULL;
    me_wire_socket_defaults(s, 0);
    if ((curve && me_curve_client(s, curve) != 0) || zmq_connect(s, endpoint) != 0) {
        int e = errno;
        zmq_close(s);
        errno = e;
        return NULL;
    }
    return s;
}

void *me_wire_context(void) { return zmq_ctx_new(); }

void me_wire_context_end(void *zctx) {
    if (zctx) zmq_ctx_term(zctx);
}

const char *me_wire_strerror(void) { return zmq_strerror(errno); }

void *me_wire_handshake_watch(void *zctx, void *sock) {
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://me-handshake-%p", sock);
    if (zmq_socket_monitor(sock, ep, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                         ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) != 0)
        return NULL;
    void *watch = zmq_socket(zctx, ZMQ_PAIR);
    if (watch && zmq_connect(watch, ep) != 0) {
        zmq_close(watch);
        watch = NULL;
    }
    if (!watch) zmq_socket_monitor(sock, NULL, 0);
    return watch;
}

/* A refusal explains a silent timeout far better than "no reply". */
const char *me_wire_handshake_end(void *sock, void *watch) {
    const char *why = NULL;
    if (!watch) return NULL;
    for (;;) {  /* each event: [event id, value][endpoint] */
        zmq_msg_t ev, addr;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, watch, ZMQ_DONTWAIT) < 0) { zmq_msg_close(&ev); break; }
        uint16_t event = 0;
        if (zmq_msg_size(&ev) >= 2) memcpy(&event, zmq_msg_data(&ev), 2);
        zmq_msg_close(&ev);
        zmq_msg_init(&addr);
        zmq_msg_recv(&addr, watch, 0);
        zmq_msg_close(&addr);
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
            why = "the server refused this client's key (add its public key to the server's allowed_clients)";
        else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL || event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)
            why = "the security handshake failed (one side uses CurveZMQ and the other does not, or server.pub "
                  "is not the server's key: check --curve-dir on both)";
    }
    zmq_socket_monitor(sock, NULL, 0);
    zmq_close(watch);
    return why;
}

void me_wire_close(void *sock) {
    if (sock) zmq_close(sock);
}

int me_wire_send_request(void *sock, uint64_t rid, int method, uint32_t deadline_ms, const void *payload,
                         size_t len, int dontwait) {
    return me_wire_send_routed(sock, rid, method, deadline_ms, payload, len, dontwait, 0, 0);
}

int me_wire_send_routed(void *sock, uint64_t rid, int method, uint32_t deadline_ms, const void *payload,
                        size_t len, int dontwait, uint64_t placement, int group) {
    Metaembed__Envelope env = METAEMBED__ENVELOPE__INIT;
    env.placement = placement;
    env.group = group > 0 ? (uint32_t)group : 0;
    env.request_id = rid;
    env.method = (Metaembed__Method)method;
    env.deadline_ms = deadline_ms;
    env.payload.data = (uint8_t *)payload;
    env.payload.len = len;
    zmq_msg_t msg;
    if (zmq_msg_init_size(&msg, metaembed__envelope__get_packed_size(&env)) != 0) return ME_ENOMEM;
    metaembed__envelope__pack(&env, zmq_msg_data(&msg));
    if (zmq_msg_send(&msg, sock, dontwait ? ZMQ_DONTWAIT : 0) < 0) {
        zmq_msg_close(&msg);
        return ME_EIO;
    }
    return 0;
}

int me_wire_take_reply(void *sock, uint64_t rid, me_reply_t *out) {
    me_route_t route;
    zmq_msg_t body;
    zmq_pollitem_t item = { sock, 0, ZMQ_POLLIN, 0 };
    if (zmq_poll(&item, 1, 0) <= 0) return 0;
    int rc = me_wire_recv(sock, &route, &body);
    me_route_close(&route);
    if (rc == ME_ETOOBIG) return 0;  /* not a reply of ours */
    if (rc) return rc;
    Metaembed__Reply *rep = metaembed__reply__unpack(NULL, zmq_msg_size(&body), zmq_msg_data(&body));
    zmq_msg_close(&body);
    if (!rep) return 0;
    if (rep->request_id != rid) {  /* a late reply to an older request */
        metaembed__reply__free_unpacked(rep, NULL);
        return 0;
    }
    me_reply_clear(out);
    out->status = rep->status ? (int)rep->status->code : ME_CODE_OK;
    out->placement = rep->placement;
    if (rep->status && rep->status->message) {
        snprintf(out->message, sizeof out->message, "%s", rep->status->message);
        me_utf8_clip(out->message);
    }
    if (rep->payload.len) {
        out->payload = malloc(rep->payload.len);
        if (!out->payload) {
            metaembed__reply__free_unpacked(rep, NULL);
            me_reply_error(out, ME_CODE_RESOURCE_EXHAUSTED, "out of memory reading a reply");
            return 1;
        }
        memcpy(out->payload, rep->payload.data, rep->payload.len);
        out->payload_len = rep->payload.len;
    }
    metaembed__reply__free_unpacked(rep, NULL);
    return 1;
}

int me_wire_wait(void *const *socks, int n, long timeout_ms, int *ready) {
    zmq_pollitem_t stack[16], *items = n <= 16 ? stack : calloc((size_t)n, sizeof *items);
    if (!items) return ME_ENOMEM;
    for (int i = 0; i < n; i++) items[i] = (zmq_pollitem_t){ socks[i], 0, ZMQ_POLLIN, 0 };
    int rc;
    do rc = zmq_poll(items, n, timeout_ms);
    while (rc < 0 && errno == EINTR);
    for (int i = 0; i < n; i++) ready[i] = rc > 0 && (items[i].revents & ZMQ_POLLIN);
    if (items != stack) free(items);
    return rc < 0 ? ME_EIO : rc;
}

int me_wire_call_raw(void *sock, uint64_t rid, int method, uint32_t deadline_ms, const void *payload,
                     size_t len, int timeout_ms, me_reply_t *out) {
    me_reply_clear(out);
    int rc = me_wire_send_request(sock, rid, method, deadline_ms, payload, len, 0);
    if (rc) return rc;
    uint64_t deadline = me_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        uint64_t now = me_now_ms();
        int ready;
        rc = me_wire_wait(&sock, 1, now >= deadline ? 0 : (long)(deadline - now), &ready);
        if (rc < 0) return rc;
        if (rc == 0) return ME_ETIMEDOUT;
        rc = me_wire_take_reply(sock, rid, out);
        if (rc != 0) return rc < 0 ? rc : 0;
    }
}

int me_wire_call(void *sock, uint64_t rid, int method, uint32_t deadline_ms,
                 const ProtobufCMessage *req, int timeout_ms, me_reply_t *out) {
    size_t plen = protobuf_c_message_get_packed_size(req);
    uint8_t *pbuf = malloc(plen ? plen : 1);
    if (!pbuf) return ME_ENOMEM;
    protobuf_c_message_pack(req, pbuf);
    int rc = me_wire_call_raw(sock, rid, method, deadline_ms, pbuf, plen, timeout_ms, out);
    free(pbuf);
    return rc;
}

uint8_t *me_wire_pack(const ProtobufCMessage *msg, size_t *len) {
    *len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(*len ? *len : 1);
    if (buf) protobuf_c_message_pack(msg, buf);
    return buf;
}

void me_wire_socket_defaults(void *sock, long long max_message) {
    int linger = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    if (max_message > 0) {
        /* The hard cap disconnects a peer; keep it above the checked limit so
         * a slightly oversized request gets a clear RESOURCE_EXHAUSTED. */
        int64_t cap = max_message * 2 + (1 << 20);
        zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &cap, sizeof cap);
    }
}
