/* A TCP relay for tests: 127.0.0.1:port → 127.0.0.1:target, on a thread.
 * It can keep every byte it forwards (to look for plaintext on the wire)
 * and it can cut the link (a network partition between two chosen
 * processes: open connections are dropped and new ones refused until it is
 * healed). */
#ifndef ME_TESTS_RELAY_H
#define ME_TESTS_RELAY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

typedef struct {
    int listen_fd, port, target;
    int record;               /* keep what passes in seen */
    atomic_int stop;
    atomic_int cut;           /* partitioned: drop and refuse connections */
    pthread_t thread;
    char *seen;
    size_t nseen, cap;
} relay_t;

/* 0, or -1 (nothing started). */
int relay_start(relay_t *r, int target, int record);
void relay_stop(relay_t *r);
/* Cuts (1) or heals (0) the link. */
void relay_cut(relay_t *r, int cut);

#endif
