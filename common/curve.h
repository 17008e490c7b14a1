/* CurveZMQ for every metaembed connection: encryption, and authentication
 * of clients by an allowlist of public keys checked over ZAP (RFC 27).
 *
 * One setting turns it on: a key directory (`--curve-dir DIR` on every
 * daemon and the CLI), made by `metaembed keygen --dir DIR`:
 *
 *   server.key       the cluster's server key pair: every daemon (and the
 *                    CLI's text-ingest stream) serves with it (secret)
 *   server.pub       its public half: what clients need to connect
 *   client.key       the cluster's own client key pair: coordinator →
 *                    shards/encoders, encoders → coordinator (secret)
 *   client.pub
 *   NAME.key / .pub  further clients (`metaembed keygen --dir DIR --client NAME`)
 *   allowed_clients  public keys (Z85, one per line, # comments) that
 *                    servers accept; keygen appends each client it makes
 *
 * Key files are text: "public = <Z85>" and, in .key files, "secret =
 * <Z85>". Secret keys never reach a log line. */
#ifndef ME_CURVE_H
#define ME_CURVE_H

#include <stddef.h>

#define ME_CURVE_KEY_LEN 40  /* Z85 characters of a 32-byte key */

typedef struct {
    int on;
    int can_serve;                              /* server.key was readable */
    char server_public[ME_CURVE_KEY_LEN + 1];
    char server_secret[ME_CURVE_KEY_LEN + 1];
    char client_public[ME_CURVE_KEY_LEN + 1];
    char client_secret[ME_CURVE_KEY_LEN + 1];
    char (*allowed)[ME_CURVE_KEY_LEN + 1];      /* allowed client public keys */
    size_t nallowed;
} me_curve_t;

/* Loads DIR's keys: server.pub always, client key pair CLIENT.key (NULL:
 * "client"), and, when present, server.key and allowed_clients (a server
 * needs both; check can_serve). dir NULL or "": curve off, returns 0. */
int me_curve_load(const char *dir, const char *client, me_curve_t *out, char *err, size_t errcap);
void me_curve_free(me_curve_t *c);

/* Socket options, before bind / connect. No-ops when curve is off.
 * Return 0 or ME_EIO (errno from libzmq). */
int me_curve_server(void *sock, const me_curve_t *c);
int me_curve_client(void *sock, const me_curve_t *c);

/* The ZAP handler: a thread answering libzmq's authentication requests in
 * zctx, accepting CURVE clients whose key is allowed and refusing all else.
 * Start it before binding a curve server socket; it ends when zctx is
 * terminated (join it with me_curve_zap_join after zmq_ctx_term). */
typedef struct me_zap me_zap_t;
me_zap_t *me_curve_zap_start(void *zctx, const me_curve_t *c, char *err, size_t errcap);
void me_curve_zap_join(me_zap_t *z);

/* Makes a key pair file pair DIR/NAME.key (mode 0600) and DIR/NAME.pub;
 * refuses to overwrite. Writes the public key to public_out. */
int me_curve_keygen(const char *dir, const char *name, char public_out[ME_CURVE_KEY_LEN + 1], char *err,
                    size_t errcap);
/* Appends a public key to DIR/allowed_clients (with a comment naming it). */
int me_curve_allow(const char *dir, const char *name, const char *public_key, char *err, size_t errcap);

/* The two daemon flags, for a config table (common/config.h) over a struct
 * with `char curve_dir[ME_CFG_STR_MAX]` and `int insecure`. */
#define ME_CURVE_CFG_OPTIONS(type)                                                                    \
    { "curve-dir", ME_CFG_STRING, offsetof(type, curve_dir), "", 0, 0, NULL,                          \
      "CurveZMQ key directory (metaembed keygen --dir DIR): encrypt and authenticate every "          \
      "connection; empty = plain, allowed on loopback only" },                                        \
    { "insecure", ME_CFG_BOOL, offsetof(type, insecure), "false", 0, 1, NULL,                         \
      "allow plain (unencrypted) connections on a non-loopback address" }

/* Whether a ZeroMQ endpoint stays on this machine (tcp://127.x, localhost,
 * [::1], ipc://, inproc://): only those may run without curve. */
int me_endpoint_is_local(const char *endpoint);

#endif
