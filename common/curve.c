#include "common/curve.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "common/error.h"
#include "common/log.h"

static int valid_key(const char *z85) {
    uint8_t bin[32];
    return strlen(z85) == ME_CURVE_KEY_LEN && zmq_z85_decode(bin, z85) != NULL;
}

/* Reads "public = K" / "secret = K" from a key file; secret may be NULL. */
static int read_key_file(const char *path, char *pub, char *sec, char *err, size_t errcap) {
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errcap, "cannot read %s: %s (make keys with: metaembed keygen --dir DIR)", path,
                 strerror(errno));
        return ME_EIO;
    }
    char line[256], name[16], val[128];
    pub[0] = 0;
    if (sec) sec[0] = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || sscanf(line, " %15[a-z] = %127s", name, val) != 2) continue;
        if (strlen(val) != ME_CURVE_KEY_LEN) val[0] = 0;  /* wrong length: invalid below */
        if (!strcmp(name, "public")) snprintf(pub, ME_CURVE_KEY_LEN + 1, "%.40s", val);
        else if (!strcmp(name, "secret") && sec) snprintf(sec, ME_CURVE_KEY_LEN + 1, "%.40s", val);
    }
    fclose(f);
    if (!valid_key(pub) || (sec && !valid_key(sec))) {
        snprintf(err, errcap, "%s holds no valid %s key (40 Z85 characters)", path, sec ? "public/secret" : "public");
        if (sec) memset(sec, 0, ME_CURVE_KEY_LEN + 1);
        return ME_EINVAL;
    }
    return 0;
}

static int read_allowlist(const char *path, me_curve_t *c, char *err, size_t errcap) {
    FILE *f = fopen(path, "r");
    if (!f) return errno == ENOENT ? 0 : (snprintf(err, errcap, "cannot read %s: %s", path, strerror(errno)), ME_EIO);
    char line[256];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        char key[128];
        if (sscanf(line, " %127s", key) != 1) continue;
        /* Z85 has '#' in its alphabet: a 40-character first token is a key
         * even when it starts with one; other '#' lines are comments. */
        if (key[0] == '#' && !valid_key(key)) continue;
        if (!valid_key(key)) {
            snprintf(err, errcap, "%s:%d: not a Z85 public key", path, lineno);
            rc = ME_EINVAL;
            break;
        }
        void *grown = realloc(c->allowed, (c->nallowed + 1) * sizeof *c->allowed);
        if (!grown) { rc = ME_ENOMEM; break; }
        c->allowed = grown;
        snprintf(c->allowed[c->nallowed++], ME_CURVE_KEY_LEN + 1, "%.40s", key);
    }
    fclose(f);
    return rc;
}

int me_curve_load(const char *dir, const char *client, me_curve_t *c, char *err, size_t errcap) {
    memset(c, 0, sizeof *c);
    if (!dir || !dir[0]) return 0;
    if (!zmq_has("curve")) {
        snprintf(err, errcap, "this libzmq was built without CURVE support (install Debian's libzmq5)");
        return ME_EINVAL;
    }
    char path[4096], dummy[ME_CURVE_KEY_LEN + 1];
    snprintf(path, sizeof path, "%s/server.pub", dir);
    int rc = read_key_file(path, c->server_public, NULL, err, errcap);
    if (rc == 0) {
        snprintf(path, sizeof path, "%s/%s.key", dir, client && client[0] ? client : "client");
        rc = read_key_file(path, c->client_public, c->client_secret, err, errcap);
    }
    if (rc == 0) {
        snprintf(path, sizeof path, "%s/server.key", dir);
        char sub[256];
        if (access(path, F_OK) == 0) {
            rc = read_key_file(path, dummy, c->server_secret, sub, sizeof sub);
            if (rc) snprintf(err, errcap, "%s", sub);
            else if (strcmp(dummy, c->server_public) != 0) {
                snprintf(err, errcap, "%s/server.key and server.pub are not one key pair", dir);
                rc = ME_EINVAL;
            } else {
                c->can_serve = 1;
            }
        }
    }
    if (rc == 0) {
        snprintf(path, sizeof path, "%s/allowed_clients", dir);
        rc = read_allowlist(path, c, err, errcap);
    }
    if (rc) { me_curve_free(c); return rc; }
    c->on = 1;
    return 0;
}

void me_curve_free(me_curve_t *c) {
    free(c->allowed);
    /* Secrets do not outlive their use in freed or reused memory. */
    memset(c, 0, sizeof *c);
}

int me_curve_server(void *sock, const me_curve_t *c) {
    if (!c || !c->on) return 0;
    int one = 1;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, c->server_secret, ME_CURVE_KEY_LEN) != 0 ||
        zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, "metaembed", 9) != 0)
        return ME_EIO;
    return 0;
}

int me_curve_client(void *sock, const me_curve_t *c) {
    if (!c || !c->on) return 0;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, c->server_public, ME_CURVE_KEY_LEN) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, c->client_public, ME_CURVE_KEY_LEN) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, c->client_secret, ME_CURVE_KEY_LEN) != 0)
        return ME_EIO;
    return 0;
}

/* ---- ZAP ---- */

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"

struct me_zap {
    pthread_t thread;
    void *sock;
    const me_curve_t *curve;
};

static int allowed(const me_curve_t *c, const uint8_t *key32) {
    char z85[ME_CURVE_KEY_LEN + 1];
    if (!zmq_z85_encode(z85, key32, 32)) return 0;
    for (size_t i = 0; i < c->nallowed; i++)
        if (!memcmp(c->allowed[i], z85, ME_CURVE_KEY_LEN)) return 1;
    return 0;
}

/* Receives one request's frames (at most 8 kept); 0, or -1 on ETERM. */
static int zap_recv(void *sock, zmq_msg_t *frames, int *n) {
    *n = 0;
    int more = 1;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, sock, 0) < 0) {
            zmq_msg_close(&m);
            for (int i = 0; i < *n; i++) zmq_msg_close(&frames[i]);
            *n = 0;
            if (errno == EINTR) return 0;
            return -1;
        }
        more = zmq_msg_more(&m);
        if (*n < 8) frames[(*n)++] = m;
        else zmq_msg_close(&m);
    }
    return 0;
}

static void *zap_main(void *arg) {
    me_zap_t *z = arg;
    for (;;) {
        zmq_msg_t f[8];
        int n;
        if (zap_recv(z->sock, f, &n) != 0) break;
        if (n == 0) continue;
        /* version, request id, domain, address, identity, mechanism, credentials */
        int ok = n >= 7 && zmq_msg_size(&f[5]) == 5 && !memcmp(zmq_msg_data(&f[5]), "CURVE", 5) &&
                 zmq_msg_size(&f[6]) == 32 && allowed(z->curve, zmq_msg_data(&f[6]));
        if (!ok && n >= 4)
            me_warn("refused a connection from %.*s: %s", (int)zmq_msg_size(&f[3]), (char *)zmq_msg_data(&f[3]),
                    n >= 7 && zmq_msg_size(&f[6]) == 32 ? "its public key is not in allowed_clients"
                                                        : "it did not use CURVE");
        const char *code = ok ? "200" : "400", *text = ok ? "OK" : "client key not allowed";
        zmq_send(z->sock, "1.0", 3, ZMQ_SNDMORE);
        if (n >= 2) zmq_send(z->sock, zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), ZMQ_SNDMORE);
        else zmq_send(z->sock, "", 0, ZMQ_SNDMORE);
        zmq_send(z->sock, code, 3, ZMQ_SNDMORE);
        zmq_send(z->sock, text, strlen(text), ZMQ_SNDMORE);
        zmq_send(z->sock, "", 0, ZMQ_SNDMORE);  /* user id */
        zmq_send(z->sock, "", 0, 0);            /* metadata */
        for (int i = 0; i < n; i++) zmq_msg_close(&f[i]);
    }
    zmq_close(z->sock);
    return NULL;
}

me_zap_t *me_curve_zap_start(void *zctx, const me_curve_t *c, char *err, size_t errcap) {
    if (!c || !c->on) return NULL;
    me_zap_t *z = calloc(1, sizeof *z);
    if (!z) { snprintf(err, errcap, "out of memory"); return NULL; }
    z->curve = c;
    z->sock = zmq_socket(zctx, ZMQ_REP);
    int linger = 0;
    if (!z->sock || zmq_setsockopt(z->sock, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_bind(z->sock, ZAP_ENDPOINT) != 0) {
        snprintf(err, errcap, "cannot start the ZAP handler: %s", zmq_strerror(errno));
        if (z->sock) zmq_close(z->sock);
        free(z);
        return NULL;
    }
    if (pthread_create(&z->thread, NULL, zap_main, z) != 0) {
        snprintf(err, errcap, "cannot start the ZAP thread");
        zmq_close(z->sock);
        free(z);
        return NULL;
    }
    return z;
}

void me_curve_zap_join(me_zap_t *z) {
    if (!z) return;
    pthread_join(z->thread, NULL);
    free(z);
}

/* ---- key files ---- */

int me_curve_keygen(const char *dir, const char *name, char public_out[ME_CURVE_KEY_LEN + 1], char *err,
                    size_t errcap) {
    char pub[ME_CURVE_KEY_LEN + 1], sec[ME_CURVE_KEY_LEN + 1], path[4096];
    if (zmq_curve_keypair(pub, sec) != 0) {
        snprintf(err, errcap, "cannot make a key pair: %s (libzmq without CURVE?)", zmq_strerror(errno));
        return ME_EIO;
    }
    snprintf(path, sizeof path, "%s/%s.key", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        snprintf(err, errcap, "cannot create %s: %s%s", path, strerror(errno),
                 errno == EEXIST ? " (keys are never overwritten; remove it first or pick another name)" : "");
        memset(sec, 0, sizeof sec);
        return ME_EIO;
    }
    FILE *f = fdopen(fd, "w");
    fprintf(f, "# metaembed CurveZMQ key pair '%s': keep this file secret\npublic = %s\nsecret = %s\n", name, pub,
            sec);
    memset(sec, 0, sizeof sec);
    if (fclose(f) != 0) { snprintf(err, errcap, "cannot write %s", path); return ME_EIO; }
    snprintf(path, sizeof path, "%s/%s.pub", dir, name);
    f = fopen(path, "w");
    if (!f) { snprintf(err, errcap, "cannot create %s: %s", path, strerror(errno)); return ME_EIO; }
    fprintf(f, "# metaembed CurveZMQ public key '%s'\npublic = %s\n", name, pub);
    if (fclose(f) != 0) { snprintf(err, errcap, "cannot write %s", path); return ME_EIO; }
    if (public_out) memcpy(public_out, pub, sizeof pub);
    return 0;
}

int me_curve_allow(const char *dir, const char *name, const char *public_key, char *err, size_t errcap) {
    char path[4096];
    snprintf(path, sizeof path, "%s/allowed_clients", dir);
    FILE *f = fopen(path, "a");
    if (!f) { snprintf(err, errcap, "cannot open %s: %s", path, strerror(errno)); return ME_EIO; }
    fprintf(f, "# %s\n%s\n", name, public_key);
    if (fclose(f) != 0) { snprintf(err, errcap, "cannot write %s", path); return ME_EIO; }
    return 0;
}

int me_endpoint_is_local(const char *e) {
    if (!strncmp(e, "ipc://", 6) || !strncmp(e, "inproc://", 9)) return 1;
    if (strncmp(e, "tcp://", 6) != 0) return 0;
    e += 6;
    return !strncmp(e, "127.", 4) || !strncmp(e, "localhost:", 10) || !strncmp(e, "[::1]:", 6);
}
