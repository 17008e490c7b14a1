/* Quality under load: budget auto with a latency target against fixed
 * budgets. The Debian test split (its long descriptions as documents, its
 * synopses as queries, the relevant document the query's own) embedded with the
 * shipped model (models/metaembed-default: documents on the document side,
 * queries on the query side, once, here: the load is on the search tier,
 * so encoding is left out of the timed path), stored in a real cluster of
 * 2 shard groups and a coordinator on loopback. An open-loop generator
 * sends queries at Poisson arrivals of rate λ from 32 client threads; a
 * query's latency counts from its scheduled arrival, so a saturated tier
 * shows its queue. Per rate: fixed (16,64), fixed (1,1) and auto with the
 * target: p50, p99, the budgets the answers came at, MRR@10 of those
 * answers, and the share degraded (cut short at the deadline). Figures
 * only; never fails on time.
 *
 *   bench_autobudget [--target-ms 25] [--seconds 4] [--rates 40,80,160,320] [--help]
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/budget.h"
#include "common/dtype.h"
#include "common/paths.h"
#include "encoder/dataset.h"
#include "encoder/embedder.h"
#include "tests/cluster.h"
#include "tests/harness.h"

#define THREADS 32
#define MAXREQ 20000

static void die(const char *what, const char *why) {
    fprintf(stderr, "bench_autobudget: %s: %s\n", what, why ? why : "");
    exit(1);
}

typedef struct {
    double sched_ms, lat_ms;
    int rank, level, degraded, ok, partial;
} req_rec_t;

typedef struct {
    const char *endpoint;
    const float *qv;
    char **qid;
    int nq, rows, dim;
    me_search_opts_t o;
    double start_ms;
    double *arrivals;   /* scheduled offsets (ms) */
    int n;
    atomic_int next;
    req_rec_t *recs;
} run_t;

static void *worker(void *arg) {
    run_t *r = arg;
    me_status_t st;
    me_client_t *c = me_client_connect(r->endpoint, 5000, &st);
    if (!c) return NULL;
    me_client_set_timeout(c, 5000);
    for (;;) {
        int i = atomic_fetch_add(&r->next, 1);
        if (i >= r->n) break;
        double at = r->start_ms + r->arrivals[i], now = me_test_now_ms();
        if (at > now) {
            double wait = at - now;
            struct timespec ts = { (time_t)(wait / 1000), (long)(fmod(wait, 1000.0) * 1e6) };
            nanosleep(&ts, NULL);
        }
        int q = i % r->nq;
        me_results_t res;
        int rc = me_client_search(c, "debian", r->qv + (size_t)q * r->rows * r->dim, r->rows, r->dim, &r->o, &res, &st);
        req_rec_t *rec = &r->recs[i];
        rec->lat_ms = me_test_now_ms() - at;
        rec->ok = rc == 0;
        rec->rank = 0;
        if (rc == 0) {
            for (size_t h = 0; h < res.n && h < 10; h++)
                if (!strcmp(res.hits[h].id, r->qid[q])) { rec->rank = (int)h + 1; break; }
            rec->level = me_budget_index(res.r_q, res.r_c);
            rec->degraded = res.degraded;
            rec->partial = res.partial;
            me_results_free(&res);
        }
    }
    me_client_close(c);
    return NULL;
}

typedef struct {
    double p50, p99, mrr, qps, degraded, partial, errors;
    double mix[ME_BUDGET_LADDER_N + 1];
} fig_t;

static fig_t run_rate(const char *endpoint, const float *qv, char **qid, int nq, int rows, int dim, me_search_opts_t o,
                      double rate, double seconds, uint64_t seed) {
    run_t r = { .endpoint = endpoint, .qv = qv, .qid = qid, .nq = nq, .rows = rows, .dim = dim, .o = o };
    r.n = (int)(rate * seconds);
    if (r.n > MAXREQ) r.n = MAXREQ;
    r.arrivals = malloc((size_t)r.n * sizeof *r.arrivals);
    r.recs = calloc((size_t)r.n, sizeof *r.recs);
    me_rng_t rng = { seed };
    double t = 0;
    for (int i = 0; i < r.n; i++) {
        /* Exponential gaps: a Poisson process; the same stream for every config at a rate. */
        t += -log(1 - me_rng_uniform(&rng)) * 1000.0 / rate;
        r.arrivals[i] = t;
    }
    atomic_store(&r.next, 0);
    pthread_t th[THREADS];
    r.start_ms = me_test_now_ms() + 50;
    for (int i = 0; i < THREADS; i++) pthread_create(&th[i], NULL, worker, &r);
    for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
    double span = me_test_now_ms() - r.start_ms;
    fig_t f = { 0 };
    double *lat = malloc((size_t)r.n * sizeof *lat);
    int nok = 0;
    for (int i = 0; i < r.n; i++) {
        lat[i] = r.recs[i].lat_ms;
        if (!r.recs[i].ok) { f.errors++; continue; }
        nok++;
        if (r.recs[i].rank) f.mrr += 1.0 / r.recs[i].rank;
        f.degraded += r.recs[i].degraded;
        f.partial += r.recs[i].partial;
        int l = r.recs[i].level;
        f.mix[l >= 0 ? l : ME_BUDGET_LADDER_N] += 1;
    }
    f.p50 = me_percentile(lat, r.n, 50);
    f.p99 = me_percentile(lat, r.n, 99);
    f.mrr = nok ? f.mrr / nok : 0;
    f.qps = span > 0 ? r.n / (span / 1000.0) : 0;
    for (int l = 0; l <= ME_BUDGET_LADDER_N; l++) f.mix[l] = nok ? 100.0 * f.mix[l] / nok : 0;
    f.degraded = nok ? 100.0 * f.degraded / nok : 0;
    f.partial = nok ? 100.0 * f.partial / nok : 0;
    free(lat);
    free(r.arrivals);
    free(r.recs);
    return f;
}

int main(int argc, char **argv) {
    int target = 25;
    double seconds = 4;
    char rates_s[128] = "40,80,160,320";
    char *rates_p = rates_s;
    const me_opt_t opts[] = { { "--target-ms", ME_OPT_INT, &target }, { "--seconds", ME_OPT_DOUBLE, &seconds },
                              { "--rates", ME_OPT_STR, &rates_p }, { NULL, 0, NULL } };
    int code = me_bench_options(argc, argv, opts,
                                "usage: bench_autobudget [--target-ms 25] [--seconds 4] [--rates 40,80,160,320]\n"
                                "Embeds the Debian test split with the shipped model, serves it from 2 shard groups\n"
                                "and a coordinator, and drives Poisson arrivals at each rate against fixed (16,64),\n"
                                "fixed (1,1) and budget auto with the target; prints latency, budget mix and MRR@10.\n");
    if (code >= 0) return code;
    double rates[16];
    int nr = 0;
    for (char *tok = strtok(rates_p, ","); tok && nr < 16; tok = strtok(NULL, ",")) rates[nr++] = atof(tok);
    if (!nr || target < 1 || seconds <= 0) die("bad options", "see --help");

    char path[1024], err[1024], model[1024];
    if (me_dataset_locate(NULL, path, sizeof path) != 0) {
        printf("bench_autobudget: skipped, data file not found (%s); set METAEMBED_DATA\n", path);
        return 0;
    }
    if (me_resolve_model(ME_DEFAULT_MODEL, model, sizeof model, err, sizeof err) != 0) die("model", err);
    me_dataset_t *ds;
    if (me_dataset_load(path, 1, &ds, err, sizeof err) != 0) die("data", err);
    me_embedder_t *e;
    if (me_embedder_load(model, &e, err, sizeof err) != 0) die("model", err);
    int dim = me_embedder_config(e)->dim, rc_ = me_embedder_rows(e, ME_SIDE_DOC), rq = me_embedder_rows(e, ME_SIDE_QUERY);
    size_t n = 0;
    for (size_t i = 0; i < ds->n; i++) n += ds->recs[i].split == ME_SPLIT_TEST && me_dataset_find(ds, ds->recs[i].id) == (long)i;
    const char **texts = malloc(n * sizeof *texts), **queries = malloc(n * sizeof *queries);
    char **ids = malloc(n * sizeof *ids);
    size_t k = 0;
    for (size_t i = 0; i < ds->n; i++) {
        const me_datarec_t *r = &ds->recs[i];
        if (r->split != ME_SPLIT_TEST || me_dataset_find(ds, r->id) != (long)i) continue;
        texts[k] = r->text;
        queries[k] = r->query;
        ids[k] = (char *)r->id;
        k++;
    }
    fprintf(stderr, "embedding %zu documents and queries with %s...\n", n, model);
    float *dv = malloc(n * (size_t)rc_ * dim * sizeof *dv), *qv = malloc(n * (size_t)rq * dim * sizeof *qv);
    double t0 = me_test_now_ms();
    for (size_t at = 0; at < n; at += 64) {
        int m = n - at < 64 ? (int)(n - at) : 64;
        if (me_embedder_encode(e, ME_SIDE_DOC, texts + at, NULL, m, dv + at * (size_t)rc_ * dim) != 0) die("encode", "doc");
        if (me_embedder_encode(e, ME_SIDE_QUERY, queries + at, NULL, m, qv + at * (size_t)rq * dim) != 0) die("encode", "query");
    }
    double embed_s = (me_test_now_ms() - t0) / 1000;

    cluster_t cl;
    memset(&cl, 0, sizeof cl);
    if (cluster_start(&cl, 2, 1, NULL) != 0) die("cluster", "cannot start");
    me_status_t st;
    me_client_t *c = me_client_connect(cl.coord.endpoint, 5000, &st);
    if (!c) die("connect", st.message);
    me_collection_spec_t spec = { .name = "debian", .dim = dim, .max_doc_vectors = rc_, .max_query_vectors = rq };
    if (me_client_create_collection(c, &spec, &st)) die("create", st.message);
    me_doc_t docs[256];
    for (size_t at = 0; at < n; at += 256) {
        size_t m = n - at < 256 ? n - at : 256;
        for (size_t i = 0; i < m; i++)
            docs[i] = (me_doc_t){ .id = ids[at + i], .vectors = dv + (at + i) * (size_t)rc_ * dim, .rows = rc_ };
        if (me_client_upsert(c, "debian", docs, m, dim, &st)) die("upsert", st.message);
    }
    me_client_close(c);

    static const char *const names[3] = { "fixed (16,64)", "fixed (1,1)", "auto" };
    me_search_opts_t cfg[3] = { { .k = 10, .r_q = 16, .r_c = 64 }, { .k = 10, .r_q = 1, .r_c = 1 },
                                { .k = 10, .target_ms = (uint32_t)target } };
    fig_t figs[16][3];
    /* Warm-up, not counted (also teaches auto the idle latencies). */
    run_rate(cl.coord.endpoint, qv, ids, (int)n, rq, dim, cfg[2], 50, 1, 1);
    for (int ri = 0; ri < nr; ri++)
        for (int ci = 0; ci < 3; ci++) {
            fprintf(stderr, "%s at %.0f/s...\n", names[ci], rates[ri]);
            figs[ri][ci] = run_rate(cl.coord.endpoint, qv, ids, (int)n, rq, dim, cfg[ci], rates[ri], seconds, 7 + (uint64_t)ri);
        }

    printf("quality under load: Debian test split, %zu documents (long descriptions) and %zu queries (synopses), embedded by %s\n"
           "(D=%d, R_c=%d, R_q=%d; %.1f s, outside the timed path); 2 shard groups + coordinator on loopback,\n"
           "default cascade, k=10; open-loop Poisson arrivals from %d client threads, %.0f s per rate; latency from\n"
           "each query's scheduled arrival; auto: --target-ms %d\n\n",
           n, n, model, dim, rc_, rq, embed_s, THREADS, seconds, target);
    printf("| rate /s | config        | done /s | p50 ms | p99 ms | MRR@10 | budgets (1x1 2x4 4x8 8x16 16x64 %%) | degraded %% | partial %% | errors |\n");
    printf("|---------|---------------|---------|--------|--------|--------|-------------------------------------|------------|-----------|--------|\n");
    for (int ri = 0; ri < nr; ri++)
        for (int ci = 0; ci < 3; ci++) {
            const fig_t *f = &figs[ri][ci];
            char mix[96];
            snprintf(mix, sizeof mix, "%3.0f %3.0f %3.0f %3.0f %3.0f", f->mix[0], f->mix[1], f->mix[2], f->mix[3], f->mix[4]);
            printf("| %7.0f | %-13s | %7.0f | %6.1f | %6.1f | %6.4f | %-35s | %10.1f | %9.1f | %6.0f |\n", rates[ri], names[ci],
                   f->qps, f->p50, f->p99, f->mrr, mix, f->degraded, f->partial, f->errors);
        }
    printf("\nMRR@10 over the answered queries at the budget each came back at. 'done /s': queries completed per\n"
           "second of the run. degraded: a shard answered with an earlier stage (anytime); partial: a group\n"
           "missed the target and the answer came without it. A fixed budget's p99 above twice the target is\n"
           "where auto has to step down.\n");
    cluster_stop(&cl);
    me_embedder_free(e);
    me_dataset_free(ds);
    free(texts);
    free(queries);
    free(ids);
    free(dv);
    free(qv);
    return 0;
}
