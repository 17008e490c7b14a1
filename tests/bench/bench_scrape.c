/* Does watching a shard slow it down? A real metaembed-shard with N
 * synthetic documents serves a closed-loop search load (one client, budget
 * (16,64), k = 10); in alternating rounds, 100 concurrent scrapes GET its
 * /metrics at every whole second (all at the same moment: the worst case
 * for 100 Prometheus servers). Reference measured in the same
 * run: the rounds without scrapers. Search p50/p99 per kind of round and
 * their ratio; figures only, never fails on time.
 *
 *   bench_scrape [--docs N] [--rounds R] [--seconds S] [--help]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/daemon.h"
#include "tests/harness.h"
#include "tests/synthetic.h"

#define D 128
#define RC 64
#define RQ 16
#define SCRAPERS 100

/* The scrapers: one thread that opens SCRAPERS connections at each whole
 * second and sends them all a GET /metrics at once, then reads every
 * answer (non-blocking sockets, poll), so the load generator itself costs
 * the 2 shared cores as little as possible. */
typedef struct {
    int port;
    atomic_int *stop;
    long scrapes, failures;
    double worst_ms;
} scraper_t;

static void scrape_burst(scraper_t *s) {
    int fd[SCRAPERS];
    struct pollfd pf[SCRAPERS];
    size_t got[SCRAPERS];
    double t0 = me_test_now_ms();
    static const char req[] = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    for (int i = 0; i < SCRAPERS; i++) {
        fd[i] = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)s->port) };
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        got[i] = 0;
        if (fd[i] < 0 || connect(fd[i], (struct sockaddr *)&a, sizeof a) != 0 ||
            write(fd[i], req, sizeof req - 1) != (ssize_t)(sizeof req - 1)) {
            if (fd[i] >= 0) close(fd[i]);
            fd[i] = -1;
            s->failures++;
        }
        fcntl(fd[i], F_SETFL, O_NONBLOCK);
        pf[i] = (struct pollfd){ fd[i], POLLIN, 0 };
    }
    char buf[65536];
    int open_n = 0;
    for (int i = 0; i < SCRAPERS; i++) open_n += fd[i] >= 0;
    while (open_n > 0 && me_test_now_ms() - t0 < 5000) {
        if (poll(pf, SCRAPERS, 100) <= 0) continue;
        for (int i = 0; i < SCRAPERS; i++) {
            if (fd[i] < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t n = read(fd[i], buf, sizeof buf);
            if (n > 0) { got[i] += (size_t)n; continue; }
            if (n < 0 && errno == EAGAIN) continue;
            /* closed: one answer complete */
            if (got[i] > 200) s->scrapes++;
            else s->failures++;
            close(fd[i]);
            fd[i] = -1;
            pf[i].fd = -1;
            open_n--;
        }
    }
    for (int i = 0; i < SCRAPERS; i++)
        if (fd[i] >= 0) { close(fd[i]); s->failures++; }
    double ms = me_test_now_ms() - t0;
    if (ms > s->worst_ms) s->worst_ms = ms;
}

static void *scraper_main(void *arg) {
    scraper_t *s = arg;
    while (!atomic_load(s->stop)) {
        double now = me_test_now_ms();
        double next = ((long long)(now / 1000) + 1) * 1000.0;
        while (me_test_now_ms() < next && !atomic_load(s->stop)) usleep(2000);
        if (!atomic_load(s->stop)) scrape_burst(s);
    }
    return NULL;
}

/* Closed-loop searches for `seconds`; latencies (ms) appended to lat. */
static int search_load(me_client_t *c, const float *queries, int nq, double seconds, double *lat, int cap) {
    me_search_opts_t o = { .r_q = RQ, .r_c = RC, .k = 10 };
    me_status_t st;
    int n = 0;
    double end = me_test_now_ms() + seconds * 1000;
    while (me_test_now_ms() < end && n < cap) {
        me_results_t res;
        double t0 = me_test_now_ms();
        if (me_client_search(c, "bench", queries + (size_t)(n % nq) * RQ * D, RQ, D, &o, &res, &st) != 0) {
            fprintf(stderr, "bench_scrape: search: %s\n", st.message);
            exit(1);
        }
        lat[n++] = me_test_now_ms() - t0;
        me_results_free(&res);
    }
    return n;
}

int main(int argc, char **argv) {
    int ndocs = 20000, rounds = 6;
    double seconds = 5;
    const me_opt_t opts[] = { { "--docs", ME_OPT_INT, &ndocs }, { "--rounds", ME_OPT_INT, &rounds },
                              { "--seconds", ME_OPT_DOUBLE, &seconds }, { NULL, 0, NULL } };
    char usage[256];
    snprintf(usage, sizeof usage,
             "usage: bench_scrape [--docs N] [--rounds R] [--seconds S]\n"
             "Search p50/p99 of a shard with and without %d concurrent /metrics scrapers (alternating rounds).\n",
             SCRAPERS);
    int code = me_bench_options(argc, argv, opts, usage);
    if (code >= 0) return code;
    me_synth_t p = me_synth_default(D, RC, 2026);
    uint16_t *vecs = malloc((size_t)ndocs * RC * D * sizeof *vecs);
    me_synth_docs_f16(&p, 0, (size_t)ndocs, vecs, 2);
    me_daemon_t d = { 0 };
    if (me_daemon_start(&d, "metaembed-shard", "scrape") != 0) { fprintf(stderr, "cannot start the shard\n"); return 1; }
    me_client_t *c = me_daemon_client(&d);
    me_status_t st;
    me_collection_spec_t spec = { .name = "bench", .dim = D, .max_doc_vectors = RC, .max_query_vectors = RQ };
    if (!c || me_client_create_collection(c, &spec, &st)) { fprintf(stderr, "setup failed\n"); return 1; }
    enum { BATCH = 256 };
    me_doc_t docs[BATCH];
    char (*ids)[16] = malloc((size_t)ndocs * sizeof *ids);
    for (int off = 0; off < ndocs; off += BATCH) {
        int m = ndocs - off < BATCH ? ndocs - off : BATCH;
        for (int i = 0; i < m; i++) {
            snprintf(ids[off + i], sizeof ids[0], "d%07d", off + i);
            docs[i] = (me_doc_t){ .id = ids[off + i], .vectors = vecs + (size_t)(off + i) * RC * D, .rows = RC, .f16 = 1 };
        }
        if (me_client_upsert(c, "bench", docs, (size_t)m, D, &st)) { fprintf(stderr, "upsert: %s\n", st.message); return 1; }
    }
    enum { NQ = 32 };
    float *queries = malloc((size_t)NQ * RQ * D * sizeof *queries);
    for (int i = 0; i < NQ; i++) me_synth_query(&p, (uint64_t)(i * 613) % (uint64_t)ndocs, (uint64_t)i, RQ, queries + (size_t)i * RQ * D);

    int cap = 200000;
    double *lat[2] = { malloc((size_t)cap * sizeof(double)), malloc((size_t)cap * sizeof(double)) };
    int nlat[2] = { 0, 0 };
    long scrapes = 0, failures = 0;
    double worst_scrape = 0;
    search_load(c, queries, NQ, 1, lat[0], cap);  /* warm-up, discarded */
    for (int r = 0; r < 2 * rounds; r++) {
        int with = r % 2;
        atomic_int stop = 0;
        scraper_t sc = { d.metrics_port, &stop, 0, 0, 0 };
        pthread_t th;
        if (with) pthread_create(&th, NULL, scraper_main, &sc);
        nlat[with] += search_load(c, queries, NQ, seconds, lat[with] + nlat[with], cap - nlat[with]);
        if (with) {
            atomic_store(&stop, 1);
            pthread_join(th, NULL);
            scrapes += sc.scrapes;
            failures += sc.failures;
            if (sc.worst_ms > worst_scrape) worst_scrape = sc.worst_ms;
        }
    }
    char *body = NULL;
    me_test_http_get(d.metrics_port, "/metrics", &body);
    size_t body_len = body ? strlen(body) : 0;
    free(body);
    double p50[2], p99[2];
    for (int k = 0; k < 2; k++) {
        p50[k] = me_percentile(lat[k], nlat[k], 50);
        p99[k] = me_percentile(lat[k], nlat[k], 99);
    }
    printf("scrape bench: shard with %d docs, D=%d, R_c=%d, f16; one closed-loop search client at (16,64), k=10;\n"
           "%d rounds of %.0f s each way, alternating; %d scrapers each GET /metrics (%zu bytes) once a second, together\n\n",
           ndocs, D, RC, rounds, seconds, SCRAPERS, body_len);
    printf("| scrapers | searches | p50 ms | p99 ms |\n|----------|----------|--------|--------|\n");
    printf("| %8d | %8d | %6.2f | %6.2f |\n", 0, nlat[0], p50[0], p99[0]);
    printf("| %8d | %8d | %6.2f | %6.2f |\n", SCRAPERS, nlat[1], p50[1], p99[1]);
    printf("\nwith / without: p50 %.3fx, p99 %.3fx; %ld scrapes answered, %ld failed, slowest burst of %d %.1f ms\n",
           p50[1] / p50[0], p99[1] / p99[0], scrapes, failures, SCRAPERS, worst_scrape);
    me_client_close(c);
    me_daemon_free(&d);
    free(vecs);
    free(ids);
    free(queries);
    free(lat[0]);
    free(lat[1]);
    return 0;
}
