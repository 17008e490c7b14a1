/* The wire: protobuf-c envelopes over ZeroMQ (see proto/metaembed.proto).
 *
 * Servers bind a ROUTER; each request arrives as [route frames...][body]
 * where body is a packed Envelope, and the reply goes back as
 * [same route frames...][packed Reply]. Clients use a DEALER and match
 * replies to requests by request_id, dropping stale ones (Lazy Pirate).
 *
 * With common/server.c (its server half) this is the RPC layer: the only
 * code that packs or unpacks an Envelope or calls zmq_ (besides curve.c and
 * the PUSH/PULL text-ingest stream). Everything else includes zmq.h and the
 * generated protobuf-c header through here, and reads the generated
 * request and reply types. */
#ifndef ME_WIRE_H
#define ME_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "common/curve.h"
#include "proto/metaembed.pb-c.h"

#define ME_WIRE_MAX_ROUTE 8
#define ME_WIRE_MAX_ROUTE_FRAME 255
/* Default cap on one message; daemons make it configurable. */
#define ME_WIRE_DEFAULT_MAX_MESSAGE (64LL << 20)

/* One method of the protocol: its name and its request and reply messages. */
typedef struct {
    int method;  /* METAEMBED__METHOD__METHOD_* */
    const char *name;
    const ProtobufCMessageDescriptor *request, *reply;
} me_method_info_t;
/* The method's entry, or NULL for a number the protocol does not have. */
const me_method_info_t *me_method_info(int method);

/* A reply being built by a server handler, or received by a client. */
typedef struct {
    int status;            /* ME_CODE_* (gRPC code) */
    char message[512];
    uint8_t *payload;      /* packed reply message, malloc'd */
    size_t payload_len;
    uint64_t placement;    /* Reply.placement: a shard's placement word (0: none) */
} me_reply_t;

void me_reply_init(me_reply_t *r);
void me_reply_clear(me_reply_t *r);
/* Sets an error status and message; returns the status. */
int me_reply_error(me_reply_t *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* RESOURCE_EXHAUSTED for a reply that would pass the message limit after
 * `done` of `total` items (0, 0: unknown); says what to ask for instead. */
int me_reply_over_limit(me_reply_t *r, unsigned long long bytes, long long limit, size_t done, size_t total);
/* Packs msg as the OK payload. Returns 0 or ME_ENOMEM. */
int me_reply_ok(me_reply_t *r, const ProtobufCMessage *msg);

/* The route frames a request came with (ROUTER identities, delimiters). */
typedef struct {
    zmq_msg_t frames[ME_WIRE_MAX_ROUTE];
    int n;
} me_route_t;

/* Receives one multipart message: all frames but the last into route, the
 * last into body (initialised by the call). Returns 0; ME_ETOOBIG for a
 * message past the route limits (more than ME_WIRE_MAX_ROUTE route frames,
 * or one over ME_WIRE_MAX_ROUTE_FRAME bytes: ZeroMQ routing ids are at most
 * 255 bytes), drained, with only its first route frame kept so the sender
 * can be told; or ME_EIO (errno set, e.g. EAGAIN on timeout, ETERM on
 * shutdown). */
int me_wire_recv(void *sock, me_route_t *route, zmq_msg_t *body);
void me_route_close(me_route_t *route);
/* Sends [route][Reply{request_id, status, payload}]. */
int me_wire_send_reply(void *sock, me_route_t *route, uint64_t request_id, const me_reply_t *r);

/* ---- the client side: the library, the coordinator's fan-out and
 * heartbeats, and tests all call through these ---- */

/* A process's ZeroMQ context (every socket of a daemon or client lives in
 * one), and its end, after every socket in it is closed. */
void *me_wire_context(void);
void me_wire_context_end(void *zctx);
/* The last ZeroMQ error, in words (errno as zmq_strerror reads it). */
const char *me_wire_strerror(void);
/* Watches sock's security handshake; NULL when no watch could start.
 * me_wire_handshake_end stops it and says what went wrong, in words a user
 * can act on, or NULL when the watch saw no failure. */
void *me_wire_handshake_watch(void *zctx, void *sock);
const char *me_wire_handshake_end(void *sock, void *watch);

/* A DEALER connected to endpoint, with the socket defaults and CurveZMQ
 * when curve is on (curve may be NULL); NULL when the endpoint is bad. */
void *me_wire_connect(void *zctx, const char *endpoint, const me_curve_t *curve);
void me_wire_close(void *sock);
/* Packs Envelope{rid, method, deadline_ms, payload} and sends it (without
 * blocking when dontwait). 0, ME_ENOMEM or ME_EIO. */
int me_wire_send_request(void *sock, uint64_t rid, int method, uint32_t deadline_ms, const void *payload,
                         size_t len, int dontwait);
/* The same with Envelope.placement and .group set: a request the
 * coordinator routed with that placement to that group. */
int me_wire_send_routed(void *sock, uint64_t rid, int method, uint32_t deadline_ms, const void *payload,
                        size_t len, int dontwait, uint64_t placement, int group);
/* Takes one message off sock without blocking: 1 and *out filled when it
 * is the Reply to rid; 0 when there was none, or it was not a Reply, or it
 * answered another request (dropped: a late reply is never taken for this
 * one); ME_EIO. */
int me_wire_take_reply(void *sock, uint64_t rid, me_reply_t *out);
/* Waits up to timeout_ms for any of socks[0..n) to have a message;
 * ready[i] says which. Returns how many (0: timed out), or ME_EIO. */
int me_wire_wait(void *const *socks, int n, long timeout_ms, int *ready);
/* Sends a request and waits up to timeout_ms for its reply. 0 when it came
 * (its status in out->status), ME_ETIMEDOUT, or ME_EIO. After a timeout the
 * caller replaces the socket (me_wire_close, me_wire_connect), so the late
 * reply and anything queued go with the old one (Lazy Pirate). */
int me_wire_call_raw(void *sock, uint64_t rid, int method, uint32_t deadline_ms, const void *payload,
                     size_t len, int timeout_ms, me_reply_t *out);
/* The same with req packed as the payload. */
int me_wire_call(void *sock, uint64_t rid, int method, uint32_t deadline_ms,
                 const ProtobufCMessage *req, int timeout_ms, me_reply_t *out);

/* msg packed into a new buffer (the caller frees it), its size in *len;
 * NULL when out of memory. */
uint8_t *me_wire_pack(const ProtobufCMessage *msg, size_t *len);

/* Sets the socket options every metaembed socket uses (linger, max message
 * size as a hard cap above the checked limit). */
void me_wire_socket_defaults(void *sock, long long max_message);

/* Monotonic milliseconds. */
uint64_t me_now_ms(void);
uint64_t me_now_us(void);

#endif
