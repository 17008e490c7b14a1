/* The cascade at a million documents a shard: the flat coarse scan against
 * the IVF coarse index (shard/ivf.h), end to end per budget, with recall of
 * exact mode's top 10; the index's build time, RAM and upkeep; and the
 * coarse stage alone next to FAISS's IndexIVFFlat at equal recall, in the
 * same run. One thread, one query at a time. Figures only; never fails on
 * time.
 *
 *   bench_scale [--docs N] [--dim D] [--rows R] [--queries Q] [--exact E] [--family F] [--json] [--help]
 *
 * Ours is the real code path: a shard collection (shard/collection.h) with
 * coarse_index ivf, filled with me_coll_put, its index built by the
 * indexer's own code (me_indexer_build_now: the k-means and fill the
 * background thread runs), searched with me_search_run; "flat" is the same
 * collection with its index switched off. Data: tests/synthetic.h's nested
 * generator (documents in topics, in families of F near-duplicates unless
 * --family 0, first vectors near a summary, later ones drifting; queries
 * are noisy copies of a target document), f16, all
 * vectors in RAM. FAISS runs in tests/bench/faiss_ivf.py on .npy copies of
 * the first vectors (f32) when python3-faiss is installed. */
#include <cblas.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/budget.h"
#include "common/dtype.h"
#include "common/json.h"
#include "common/npy.h"
#include "shard/collection.h"
#include "shard/indexer.h"
#include "shard/ivf.h"
#include "shard/search.h"
#include "tests/harness.h"
#include "tests/synthetic.h"

#define GEN_BLOCK 4096
/* Documents put and removed again to time the index's upkeep. */
#define UPKEEP_DOCS 20000
#define TOPK 10
#define COARSE_K 1000

static void doc_id(char *buf, size_t cap, size_t d) { snprintf(buf, cap, "d%zu", d); }

/* Puts documents first..first+n of the generator; returns the seconds the
 * puts took (generation excluded). */
static double put_docs(me_coll_t *c, const me_synth_t *sp, size_t first, size_t n, uint16_t *buf) {
    size_t per = (size_t)sp->rows * sp->dim;
    double put_ms = 0;
    for (size_t off = 0; off < n; off += GEN_BLOCK) {
        size_t m = n - off < GEN_BLOCK ? n - off : GEN_BLOCK;
        me_synth_docs_f16(sp, first + off, m, buf, 2);
        double t0 = me_test_now_ms();
        for (size_t i = 0; i < m; i++) {
            char id[32];
            doc_id(id, sizeof id, first + off + i);
            if (me_coll_put(c, id, strlen(id), sp->rows, buf + i * per, NULL) < 0) {
                fprintf(stderr, "bench_scale: out of memory at document %zu\n", first + off + i);
                exit(1);
            }
        }
        put_ms += me_test_now_ms() - t0;
        if ((first + off) % (GEN_BLOCK * 32) == 0)
            fprintf(stderr, "\r  %zu / %zu documents", first + off + m - first, n);
    }
    fprintf(stderr, "\n");
    return put_ms / 1e3;
}

static double remove_docs(me_coll_t *c, size_t first, size_t n) {
    double t0 = me_test_now_ms();
    for (size_t d = first; d < first + n; d++) {
        char id[32];
        doc_id(id, sizeof id, d);
        me_coll_remove(c, id, strlen(id));
    }
    return (me_test_now_ms() - t0) / 1e3;
}

typedef struct {
    const char *name;
    int ivf, probe;
    size_t n1, n2;        /* stage-1 and stage-2 survivors; 0 = the defaults */
    int bits;             /* stage 1 over sign bits (binary_coarse) */
} setting_t;

typedef struct {
    double med_ms, coarse_ms, scanned, recall;
    double found;  /* share of queries whose target document (the one the query was made from) is in the top 10 */
} figure_t;

static size_t stage_of(const me_search_result_t *r, const char *name, double *ms) {
    for (int i = 0; i < r->nstages; i++)
        if (!strcmp(r->stages[i].name, name)) {
            if (ms) *ms = r->stages[i].micros / 1e3;
            return r->stages[i].in;
        }
    return 0;
}

/* The dense flat-scan setting with the same survivors as settings[s] (the row a speed-up is against). */
static int flat_of(const setting_t *settings, int s) {
    for (int i = s; i >= 0; i--)
        if (!settings[i].ivf && !settings[i].bits && settings[i].n1 == settings[s].n1 && settings[i].n2 == settings[s].n2) return i;
    return 0;
}

/* One search into *res; its milliseconds. A failure ends the bench. */
static double timed_search(me_coll_t *c, const me_search_params_t *p, me_search_result_t *res) {
    char err[256];
    double t0 = me_test_now_ms();
    if (me_search_run(c, NULL, p, res, err, sizeof err) != 0) {
        fprintf(stderr, "bench_scale: search failed: %s\n", err);
        exit(1);
    }
    return me_test_now_ms() - t0;
}

/* Runs the queries at (r_q, r_c) under one setting; recall against
 * exact_ids (the first ne queries, TOPK each). ids: the top-k of each
 * query when non-NULL (k = TOPK, or COARSE_K for the coarse-only runs). */
static figure_t run_setting(me_coll_t *c, const setting_t *s, const float *queries, const uint32_t *targets, int nq,
                            int r_q, int r_c, size_t k, const uint32_t *exact_ids, int ne, int32_t *ids) {
    double *ms = me_bench_alloc((size_t)nq * sizeof *ms), *cms = me_bench_alloc((size_t)nq * sizeof *cms);
    figure_t f = { 0 };
    size_t qstride = (size_t)16 * c->cfg.dim;
    int saved = c->cfg.coarse_index;
    c->cfg.coarse_index = s->ivf;
    double hit = 0;
    for (int qi = 0; qi < nq; qi++) {
        me_search_params_t p = { .query = queries + qi * qstride, .r_q = r_q, .r_c = r_c, .k = k,
                                 .candidates = s->n1, .refine_candidates = s->n2, .probe = s->probe };
        me_search_result_t res;
        ms[qi] = timed_search(c, &p, &res);
        cms[qi] = 0;
        f.scanned += (double)stage_of(&res, "coarse", &cms[qi]);
        if (qi < ne)
            for (size_t i = 0; i < res.nhits && i < TOPK; i++)
                for (size_t j = 0; j < TOPK; j++)
                    if (exact_ids[(size_t)qi * TOPK + j] == res.hits[i].idx) hit += 1;
        for (size_t i = 0; i < res.nhits && i < TOPK; i++)
            if (res.hits[i].idx == targets[qi]) f.found += 1.0 / nq;
        if (ids)
            for (size_t i = 0; i < k; i++) ids[(size_t)qi * k + i] = i < res.nhits ? (int32_t)res.hits[i].idx : -1;
        me_search_result_free(&res);
    }
    c->cfg.coarse_index = saved;
    f.med_ms = me_percentile(ms, nq, 50);
    f.coarse_ms = me_percentile(cms, nq, 50);
    f.scanned /= nq;
    f.recall = ne ? hit / ((double)ne * TOPK) : 0;
    free(ms);
    free(cms);
    return f;
}

/* Exact mode's top 10 at (r_q, r_c) for the first ne queries. */
static void exact_top(me_coll_t *c, const float *queries, int ne, int r_q, int r_c, uint32_t *out, double *med_ms) {
    double *ms = me_bench_alloc((size_t)(ne ? ne : 1) * sizeof *ms);
    for (int qi = 0; qi < ne; qi++) {
        me_search_params_t p = { .query = queries + (size_t)qi * 16 * c->cfg.dim, .r_q = r_q, .r_c = r_c,
                                 .k = TOPK, .exact = 1 };
        me_search_result_t res;
        ms[qi] = timed_search(c, &p, &res);
        for (size_t i = 0; i < TOPK; i++) out[(size_t)qi * TOPK + i] = i < res.nhits ? res.hits[i].idx : UINT32_MAX;
        me_search_result_free(&res);
    }
    *med_ms = ne ? me_percentile(ms, ne, 50) : 0;
    free(ms);
}

/* ---- FAISS ---- */

#define MAX_PROBES 8
typedef struct {
    int ran;
    char why[256], version[32];
    double train_s, add_s, flat_ms;
    int n;
    int nprobe[MAX_PROBES];
    double ms[MAX_PROBES], recall[MAX_PROBES], ours_recall[MAX_PROBES + 1];
} faiss_t;

static void run_faiss(faiss_t *fz, const char *dir, const me_coll_t *c, const float *queries, int nq,
                      const int *probes, int np, int32_t *const *our_ids, int nours) {
    char script_buf[PATH_MAX + 64], base[700], qpath[700], err[256];
    const char *py = me_bench_python();
    const char *script = me_bench_faiss_script("faiss_ivf.py", script_buf, sizeof script_buf, fz->why, sizeof fz->why);
    if (!script) return;
    int dim = c->cfg.dim;
    float *first = me_bench_alloc(c->n * (size_t)dim * sizeof *first), *q1 = me_bench_alloc((size_t)nq * dim * sizeof *q1);
    for (size_t s = 0; s < c->n; s++) me_coll_first_vector(c, s, first + s * dim);
    for (int qi = 0; qi < nq; qi++) memcpy(q1 + (size_t)qi * dim, queries + (size_t)qi * 16 * dim, dim * sizeof *q1);
    snprintf(base, sizeof base, "%s/base.npy", dir);
    snprintf(qpath, sizeof qpath, "%s/queries.npy", dir);
    uint64_t sb[2] = { c->n, (uint64_t)dim }, sq[2] = { (uint64_t)nq, (uint64_t)dim };
    int bad = me_npy_write(base, ME_DTYPE_F32, sb, 2, first, 1, err, sizeof err) != 0 ||
              me_npy_write(qpath, ME_DTYPE_F32, sq, 2, q1, 1, err, sizeof err) != 0;
    free(first);
    free(q1);
    char paths[MAX_PROBES + 1][700];
    for (int i = 0; i < nours && !bad; i++) {
        snprintf(paths[i], sizeof paths[i], "%s/ours%d.npy", dir, i);
        bad = me_bench_write_npy_i32(paths[i], our_ids[i], (size_t)nq, COARSE_K) != 0;
    }
    if (bad) {
        snprintf(fz->why, sizeof fz->why, "cannot write the .npy inputs in %s; FAISS rows skipped", dir);
        return;
    }
    char kbuf[16], lbuf[16], pbuf[128] = "";
    snprintf(kbuf, sizeof kbuf, "%d", COARSE_K);
    snprintf(lbuf, sizeof lbuf, "%d", c->ivf->nlist);
    for (int i = 0; i < np; i++)
        snprintf(pbuf + strlen(pbuf), sizeof pbuf - strlen(pbuf), "%s%d", i ? "," : "", probes[i]);
    char *argv[8 + MAX_PROBES + 1] = { (char *)py, (char *)script, base, qpath, kbuf, lbuf, pbuf };
    for (int i = 0; i < nours; i++) argv[7 + i] = paths[i];
    argv[7 + nours] = NULL;
    fprintf(stderr, "running %s (FAISS IndexIVFFlat, %s lists, 1 thread)...\n", script, lbuf);
    char *out = NULL, *errtxt = NULL;
    int code = me_test_run_capture(argv, dir, "faiss", &out, &errtxt);
    me_json_doc_t *doc = NULL;
    if (code == 0 && out && me_json_parse(out, strlen(out), &doc, NULL) == 0) {
        const me_json_t *r = me_json_root(doc);
        fz->ran = me_json_num(me_json_get(r, "train_s"), &fz->train_s) == 0;
        me_json_num(me_json_get(r, "add_s"), &fz->add_s);
        me_json_num(me_json_get(r, "flat_ms"), &fz->flat_ms);
        const me_json_t *rows = me_json_get(r, "ivf"), *ours = me_json_get(r, "ours_recall");
        for (int i = 0; i < np && i < MAX_PROBES; i++) {
            const me_json_t *row = me_json_at(rows, (size_t)i);
            double v = 0;
            me_json_num(me_json_get(row, "nprobe"), &v);
            fz->nprobe[i] = (int)v;
            me_json_num(me_json_get(row, "ms"), &fz->ms[i]);
            me_json_num(me_json_get(row, "recall"), &fz->recall[i]);
            fz->n = i + 1;
        }
        for (int i = 0; i < nours; i++) me_json_num(me_json_at(ours, (size_t)i), &fz->ours_recall[i]);
        const char *v = me_json_str(me_json_get(r, "faiss_version"));
        snprintf(fz->version, sizeof fz->version, "%s", v ? v : "?");
    }
    if (!fz->ran)
        snprintf(fz->why, sizeof fz->why, "faiss_ivf.py failed (exit %d): %.120s; FAISS rows skipped", code,
                 errtxt ? errtxt : "");
    me_json_free(doc);
    free(out);
    free(errtxt);
}

int main(int argc, char **argv) {
    int ndocs = 200000, dim = 128, rows = 64, nq = 30, ne = 10, family = 10, json = 0;
    const me_opt_t opts[] = { { "--docs", ME_OPT_INT, &ndocs },  { "--dim", ME_OPT_INT, &dim },
                              { "--rows", ME_OPT_INT, &rows },   { "--queries", ME_OPT_INT, &nq },
                              { "--exact", ME_OPT_INT, &ne },    { "--family", ME_OPT_INT, &family },
                              { "--json", ME_OPT_FLAG, &json },  { NULL, 0, NULL } };
    int code = me_bench_options(argc, argv, opts,
                                "usage: bench_scale [--docs N (200000)] [--dim D (128)] [--rows R (64)]\n"
                                "                   [--queries Q (30)] [--exact E (10)] [--family F (10)] [--json]\n"
                                "The (r_q, r_c) cascade over N synthetic nested documents (R vectors of D, f16,\n"
                                "in RAM) with the flat coarse scan and with the IVF coarse index: median latency,\n"
                                "coarse-stage time, documents scanned, recall of exact mode's top 10 (over the\n"
                                "first E queries); the index's build time, RAM and upkeep; the coarse stage alone\n"
                                "(top 1000) next to FAISS IndexIVFFlat (tests/bench/faiss_ivf.py). One thread.\n"
                                "Documents come in families of F near-duplicates (0: none, every topic's\n"
                                "documents equally far apart, so exact's ranks 2-10 are near-ties).\n"
                                "Needs about N x R x D x 2 bytes of RAM. Figures only.\n");
    if (code >= 0) return code;
    if (ndocs < 4 * ME_IVF_MIN_DOCS || dim < 1 || dim > 4096 || rows < 16 || rows > 1024 || nq < 1 || ne < 0 ||
        ne > nq || family < 0 || family > 1000) {
        fprintf(stderr, "bench_scale: need --docs >= %d, 1 <= --dim <= 4096, 16 <= --rows, 0 <= --exact <= --queries, "
                        "0 <= --family <= 1000\n",
                4 * ME_IVF_MIN_DOCS);
        return 2;
    }
    size_t n = (size_t)ndocs;
    openblas_set_num_threads(1);  /* as in the shard (shard/indexer.c): one thread, like the searches */
    me_coll_config_t cfg = { .dim = dim, .max_doc_vectors = rows, .dtype = ME_DTYPE_F16, .coarse_index = 1 };
    snprintf(cfg.name, sizeof cfg.name, "scale");
    char err[256];
    if (me_coll_config_check(&cfg, err, sizeof err) != 0) {
        fprintf(stderr, "bench_scale: %s\n", err);
        return 2;
    }
    me_coll_t *c = me_coll_new(&cfg, 1);
    me_synth_t sp = me_synth_default(dim, rows, 2026);
    sp.family = family;
    uint16_t *buf = me_bench_alloc((size_t)GEN_BLOCK * rows * dim * sizeof *buf);
    fprintf(stderr, "generating and inserting %zu documents (%d x %d, f16)...\n", n, rows, dim);
    double put_s = put_docs(c, &sp, 0, n, buf);

    fprintf(stderr, "building the IVF index (k-means, then every document into its list)...\n");
    double t0 = me_test_now_ms();
    if (me_indexer_build_now(c, 1) != 0) {
        fprintf(stderr, "bench_scale: out of memory building the index\n");
        return 1;
    }
    double build_s = (me_test_now_ms() - t0) / 1e3, train_s = c->ivf->train_seconds;
    int nlist = c->ivf->nlist;

    fprintf(stderr, "timing upkeep: %d puts and deletes without, then with the index...\n", UPKEEP_DOCS);
    me_ivf_t *kept = c->ivf;
    c->ivf = NULL;
    /* Once first, untimed: the arena pages past N are touched (faulted in)
     * before either timed pass, so neither pays for them. */
    put_docs(c, &sp, n, UPKEEP_DOCS, buf);
    remove_docs(c, n, UPKEEP_DOCS);
    double put_plain = put_docs(c, &sp, n, UPKEEP_DOCS, buf), del_plain = remove_docs(c, n, UPKEEP_DOCS);
    c->ivf = kept;
    double put_ivf = put_docs(c, &sp, n, UPKEEP_DOCS, buf), del_ivf = remove_docs(c, n, UPKEEP_DOCS);
    free(buf);

    float *queries = me_bench_alloc((size_t)nq * 16 * dim * sizeof *queries);
    uint32_t *targets = me_bench_alloc((size_t)nq * sizeof *targets);
    for (int qi = 0; qi < nq; qi++) {
        size_t t = (size_t)qi * 7919u * 13u % n;
        me_synth_query(&sp, t, (uint64_t)qi + 1, 16, queries + (size_t)qi * 16 * dim);
        char id[32];
        doc_id(id, sizeof id, t);
        targets[qi] = (uint32_t)me_coll_find(c, id, strlen(id));
    }

    /* The coarse stage alone, top 1000 at (1, 1): our flat and IVF at several
     * probes, FAISS's IVF at the same (before the collection turns binary). */
    static const int probes[] = { 4, 8, 16, 32, 64, 128 };
    enum { NP = sizeof probes / sizeof probes[0] };
    int32_t *ids[NP + 1];
    figure_t cfig[NP + 1];
    for (int i = 0; i <= NP; i++) {
        ids[i] = me_bench_alloc((size_t)nq * COARSE_K * sizeof *ids[i]);
        setting_t s = { "", i < NP, i < NP ? probes[i] : 0, COARSE_K, 0, 0 };
        cfig[i] = run_setting(c, &s, queries, targets, nq, 1, 1, COARSE_K, NULL, 0, ids[i]);
    }
    faiss_t fz = { 0 };
    char *dir = me_test_tmpdir("bench_scale");
    if (!dir) snprintf(fz.why, sizeof fz.why, "cannot make a temp dir; FAISS rows skipped");
    else run_faiss(&fz, dir, c, queries, nq, probes, NP, ids, NP + 1);
    if (dir) me_test_rmdir(dir);
    free(dir);

    /* The cascade per budget: exact first, then every setting; the binary
     * settings come last (the collection switches to bits for them, one way). */
    static const setting_t settings[] = {
        { "flat, n1 1000 n2 400", 0, 0, 1000, 400, 0 },     { "ivf adaptive, n1 1000 n2 400", 1, 0, 1000, 400, 0 },
        { "ivf probe 32, n1 1000 n2 400", 1, 32, 1000, 400, 0 },
        { "flat, n1 4000 n2 1000", 0, 0, 4000, 1000, 0 },   { "ivf adaptive, n1 4000 n2 1000", 1, 0, 4000, 1000, 0 },
        { "ivf probe 64, n1 4000 n2 1000", 1, 64, 4000, 1000, 0 },
        { "flat, n1 10000 n2 2500", 0, 0, 10000, 2500, 0 }, { "ivf adaptive, n1 10000 n2 2500", 1, 0, 10000, 2500, 0 },
        { "flat, n1 200 n2 50", 0, 0, 200, 50, 0 },         { "ivf adaptive, n1 200 n2 50", 1, 0, 200, 50, 0 },
        { "ivf probe 8, n1 200 n2 50", 1, 8, 200, 50, 0 },
        { "flat, n1 500 n2 50", 0, 0, 500, 50, 0 },         { "ivf adaptive, n1 500 n2 50", 1, 0, 500, 50, 0 },
        { "ivf probe 16, n1 500 n2 50", 1, 16, 500, 50, 0 },
        { "flat, n1 1000 n2 50", 0, 0, 1000, 50, 0 },       { "ivf probe 32, n1 1000 n2 50", 1, 32, 1000, 50, 0 },
        { "bits, n1 1000 n2 400", 0, 0, 1000, 400, 1 },     { "bits, n1 4000 n2 1000", 0, 0, 4000, 1000, 1 },
        { "bits, n1 10000 n2 2500", 0, 0, 10000, 2500, 1 }, { "ivf + bits adaptive, n1 4000 n2 1000", 1, 0, 4000, 1000, 1 },
    };
    enum { NS = sizeof settings / sizeof settings[0] };
    static const int budgets[][2] = { { 1, 1 }, { 4, 8 }, { 16, 64 } };
    enum { NB = 3 };
    figure_t fig[NB][NS];
    double exact_ms[NB], exact_found[NB];
    uint32_t *exact_ids[NB];
    for (int b = 0; b < NB; b++) {
        int rq = budgets[b][0], rc = budgets[b][1] <= rows ? budgets[b][1] : rows;
        fprintf(stderr, "budget (%d,%d): exact over %d queries...\n", rq, rc, ne);
        exact_ids[b] = me_bench_alloc((size_t)(ne ? ne : 1) * TOPK * sizeof *exact_ids[b]);
        exact_top(c, queries, ne, rq, rc, exact_ids[b], &exact_ms[b]);
        exact_found[b] = 0;
        for (int qi = 0; qi < ne; qi++)
            for (int i = 0; i < TOPK; i++)
                if (exact_ids[b][(size_t)qi * TOPK + i] == targets[qi]) exact_found[b] += 1.0 / ne;
    }
    double ram = (double)me_coll_ram_bytes(c) / n, ram_bits = 0;
    for (int s = 0; s < NS; s++) {
        if (settings[s].bits && !c->cfg.binary_coarse) {
            fprintf(stderr, "switching stage 1 to sign bits...\n");
            if (me_coll_use_binary_coarse(c) != 0) {
                fprintf(stderr, "bench_scale: out of memory for the bits\n");
                return 1;
            }
            ram_bits = (double)me_coll_ram_bytes(c) / n;
        }
        for (int b = 0; b < NB; b++) {
            int rq = budgets[b][0], rc = budgets[b][1] <= rows ? budgets[b][1] : rows;
            fig[b][s] = run_setting(c, &settings[s], queries, targets, nq, rq, rc, TOPK, exact_ids[b], ne, NULL);
        }
    }
    for (int b = 0; b < NB; b++) free(exact_ids[b]);

    double ivf_bytes = (double)me_ivf_bytes(c->ivf, c->n) / n;
    double stored = (double)me_coll_index_bytes(c) / n;
    if (json) {
        me_json_writer_t w;
        me_json_writer_init_file(&w, stdout);
        me_json_obj_begin(&w, NULL);
        me_json_put_u64(&w, "docs", n);
        me_json_put_int(&w, "dim", dim);
        me_json_put_int(&w, "rows", rows);
        me_json_put_int(&w, "queries", nq);
        me_json_put_int(&w, "exact_queries", ne);
        me_json_put_int(&w, "family", family);
        me_json_put_int(&w, "lists", nlist);
        me_json_put_num(&w, "build_s", build_s);
        me_json_put_num(&w, "train_s", train_s);
        me_json_put_num(&w, "put_docs_per_s", n / put_s);
        me_json_put_num(&w, "upkeep_put_per_s_without", UPKEEP_DOCS / put_plain);
        me_json_put_num(&w, "upkeep_put_per_s_with", UPKEEP_DOCS / put_ivf);
        me_json_put_num(&w, "ram_bytes_per_doc", ram);
        me_json_put_num(&w, "ram_bytes_per_doc_bits", ram_bits);
        me_json_put_num(&w, "ivf_bytes_per_doc", ivf_bytes);
        me_json_put_num(&w, "stored_bytes_per_doc", stored);
        me_json_arr_begin(&w, "cascade");
        for (int b = 0; b < NB; b++)
            for (int s = 0; s < NS; s++) {
                me_json_obj_begin(&w, NULL);
                me_json_put_int(&w, "r_q", budgets[b][0]);
                me_json_put_int(&w, "r_c", budgets[b][1]);
                me_json_put_str(&w, "setting", settings[s].name);
                me_json_put_num(&w, "median_ms", fig[b][s].med_ms);
                me_json_put_num(&w, "coarse_ms", fig[b][s].coarse_ms);
                me_json_put_num(&w, "scanned", fig[b][s].scanned);
                me_json_put_num(&w, "recall_at_10", fig[b][s].recall);
                me_json_put_num(&w, "target_in_top_10", fig[b][s].found);
                me_json_put_num(&w, "exact_median_ms", exact_ms[b]);
                me_json_obj_end(&w);
            }
        me_json_arr_end(&w);
        me_json_arr_begin(&w, "coarse");
        for (int i = 0; i <= NP; i++) {
            me_json_obj_begin(&w, NULL);
            me_json_put_int(&w, "probe", i < NP ? probes[i] : 0);
            me_json_put_str(&w, "index", i < NP ? "ivf" : "flat");
            me_json_put_num(&w, "median_ms", cfig[i].med_ms);
            if (fz.ran) me_json_put_num(&w, "recall_at_1000", fz.ours_recall[i]);
            if (fz.ran && i < fz.n) {
                me_json_put_num(&w, "faiss_median_ms", fz.ms[i]);
                me_json_put_num(&w, "faiss_recall_at_1000", fz.recall[i]);
            }
            me_json_obj_end(&w);
        }
        me_json_arr_end(&w);
        if (!fz.ran) me_json_put_str(&w, "faiss_skipped", fz.why);
        me_json_obj_end(&w);
        me_json_writer_free(&w);
        printf("\n");
    } else {
        char gen[64] = "no families";
        if (family > 1) snprintf(gen, sizeof gen, "families of %d", family);
        printf("scale bench: %zu docs, D=%d, R_c=%d, f16 in RAM, synthetic nested data (%s), %d queries of 16 vectors "
               "(exact over the first %d), k=%d, one thread, SIMD %s\n",
               n, dim, rows, gen, nq, ne, TOPK, me_maxsim_simd_name());
        printf("inserts (me_coll_put, RAM only): %.0f docs/s\n", n / put_s);
        printf("IVF index: %d lists, built in %.1f s (k-means on %d points a list, %d rounds: %.1f s; fill %.1f s)\n",
               nlist, build_s, ME_IVF_SAMPLE_PER_LIST, ME_IVF_ITERS, train_s, build_s - train_s);
        printf("upkeep: %d puts %.0f/s without the index, %.0f/s with it; deletes %.0f/s and %.0f/s\n", UPKEEP_DOCS,
               UPKEEP_DOCS / put_plain, UPKEEP_DOCS / put_ivf, UPKEEP_DOCS / del_plain, UPKEEP_DOCS / del_ivf);
        printf("bytes per document: RAM %.0f (vectors: all 64 in f16 + the f16 stage-1 copy), %.0f with the bits tier "
               "(the stage-1 copy replaced by %zu bytes of bits), + %.1f (IVF index); stored vectors %.0f\n\n",
               ram, ram_bits, me_bits_words(dim) * 8, ivf_bytes, stored);
        printf("| budget | coarse stage, survivors | scanned | coarse ms | median ms | recall@10 vs exact | target in top 10 | speed-up vs the flat row above |\n");
        printf("|---|---|---:|---:|---:|---:|---:|---:|\n");
        for (int b = 0; b < NB; b++) {
            printf("| (%d,%d) | exact | %zu | - | %.2f | 1.000 | %.3f | - |\n", budgets[b][0], budgets[b][1], n,
                   exact_ms[b], exact_found[b]);
            for (int s = 0; s < NS; s++)
                printf("| (%d,%d) | %s | %.0f | %.2f | %.2f | %.3f | %.3f | %.1fx |\n", budgets[b][0], budgets[b][1],
                       settings[s].name, fig[b][s].scanned, fig[b][s].coarse_ms, fig[b][s].med_ms, fig[b][s].recall,
                       fig[b][s].found,
                       fig[b][flat_of(settings, s)].med_ms / fig[b][s].med_ms);
        }
        printf("\ncoarse stage alone: top %d at (1,1) of the first vectors, recall against FAISS IndexFlatIP's exact "
               "top %d (f32)\n", COARSE_K, COARSE_K);
        if (!fz.ran) printf("%s\n", fz.why);
        else
            printf("FAISS %s IndexIVFFlat, %d lists: trained in %.1f s, add %.1f s (ours: k-means %.1f s, fill %.1f s); "
                   "FAISS IndexFlatIP %.2f ms/query\n",
                   fz.version, nlist, fz.train_s, fz.add_s, train_s, build_s - train_s, fz.flat_ms);
        printf("\n| probe (lists) | ours ms | ours recall@1000 | FAISS IVFFlat ms | FAISS recall@1000 |\n");
        printf("|---:|---:|---:|---:|---:|\n");
        for (int i = 0; i <= NP; i++) {
            if (i == NP) {
                printf("| flat (all) | %.2f | %s | - | - |\n", cfig[i].med_ms, fz.ran ? "" : "n/a");
                continue;
            }
            char orec[16] = "n/a", fms[16] = "n/a", frec[16] = "n/a";
            if (fz.ran) snprintf(orec, sizeof orec, "%.4f", fz.ours_recall[i]);
            if (fz.ran && i < fz.n) {
                snprintf(fms, sizeof fms, "%.2f", fz.ms[i]);
                snprintf(frec, sizeof frec, "%.4f", fz.recall[i]);
            }
            printf("| %d | %.2f | %s | %s | %s |\n", probes[i], cfig[i].med_ms, orec, fms, frec);
        }
    }
    for (int i = 0; i <= NP; i++) free(ids[i]);
    free(queries);
    free(targets);
    me_coll_free(c);
    return 0;
}
