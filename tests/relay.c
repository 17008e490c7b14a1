#include "tests/relay.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void keep(relay_t *r, const char *b, size_t n) {
    if (r->nseen + n + 1 > r->cap) {
        r->cap = (r->nseen + n + 1) * 2;
        r->seen = realloc(r->seen, r->cap);
    }
    memcpy(r->seen + r->nseen, b, n);
    r->nseen += n;
    r->seen[r->nseen] = 0;
}

static int dial(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) { close(fd); return -1; }
    return fd;
}

static void *relay_main(void *arg) {
    relay_t *r = arg;
    enum { MAXC = 16 };
    int a[MAXC], b[MAXC], n = 0;  /* pairs: client side, server side */
    char buf[65536];
    while (!atomic_load(&r->stop)) {
        if (atomic_load(&r->cut)) {
            /* Partitioned: drop every connection, refuse new ones. */
            for (int i = 0; i < n; i++) { close(a[i]); close(b[i]); }
            n = 0;
            struct pollfd lp = { r->listen_fd, POLLIN, 0 };
            if (poll(&lp, 1, 20) > 0) {
                int c = accept(r->listen_fd, NULL, NULL);
                if (c >= 0) close(c);
            }
            continue;
        }
        struct pollfd p[1 + 2 * MAXC];
        p[0] = (struct pollfd){ r->listen_fd, POLLIN, 0 };
        for (int i = 0; i < n; i++) {
            p[1 + 2 * i] = (struct pollfd){ a[i], POLLIN, 0 };
            p[2 + 2 * i] = (struct pollfd){ b[i], POLLIN, 0 };
        }
        if (poll(p, (nfds_t)(1 + 2 * n), 50) <= 0) continue;
        if ((p[0].revents & POLLIN) && n < MAXC) {
            int c = accept(r->listen_fd, NULL, NULL), s = c >= 0 ? dial(r->target) : -1;
            if (c >= 0 && s >= 0) { a[n] = c; b[n] = s; n++; }
            else { if (c >= 0) close(c); if (s >= 0) close(s); }
        }
        for (int i = 0; i < n; i++) {
            for (int dir = 0; dir < 2; dir++) {
                short ev = p[1 + 2 * i + dir].revents;
                if (!(ev & (POLLIN | POLLHUP | POLLERR))) continue;
                int from = dir ? b[i] : a[i], to = dir ? a[i] : b[i];
                ssize_t got = read(from, buf, sizeof buf);
                if (got <= 0) {  /* one side closed: drop the pair */
                    close(a[i]);
                    close(b[i]);
                    a[i] = a[n - 1];
                    b[i] = b[n - 1];
                    n--;
                    i = n;  /* revents no longer match; re-poll */
                    break;
                }
                if (r->record) keep(r, buf, (size_t)got);
                for (ssize_t off = 0; off < got;) {
                    ssize_t w = write(to, buf + off, (size_t)(got - off));
                    if (w <= 0) break;
                    off += w;
                }
            }
        }
    }
    for (int i = 0; i < n; i++) { close(a[i]); close(b[i]); }
    return NULL;
}

int relay_start(relay_t *r, int target, int record) {
    memset(r, 0, sizeof r[0]);
    r->target = target;
    r->record = record;
    r->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(r->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0 };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(r->listen_fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(r->listen_fd, 16) != 0 ||
        getsockname(r->listen_fd, (struct sockaddr *)&a, &len) != 0)
        return -1;
    r->port = ntohs(a.sin_port);
    return pthread_create(&r->thread, NULL, relay_main, r);
}

void relay_cut(relay_t *r, int cut) { atomic_store(&r->cut, cut); }

void relay_stop(relay_t *r) {
    atomic_store(&r->stop, 1);
    pthread_join(r->thread, NULL);
    close(r->listen_fd);
}
