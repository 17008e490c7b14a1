#include "shard/search.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bits.h"
#include "common/budget.h"
#include "common/error.h"
#include "common/fusion.h"
#include "common/validate.h"
#include "common/wire.h"
#include "shard/record.h"

/* Documents scored per kernel call, at most: bounds scratch memory. */
#define CHUNK 4096
/* The deadline is checked between chunks sized to take about this long
 * (the cost of a document varies 1000-fold with the budget and with rows
 * read from disk), so a scan overruns its deadline by about this much, not
 * by a fixed number of documents. */
#define CHECK_EVERY_US 2000

static int tie_by_id(uint32_t a, uint32_t b, void *ctx) {
    const me_coll_t *c = ctx;
    return strcmp(c->ids[a], c->ids[b]);
}

/* Stage 1 over bits: ties by a hash of the id (a function of the id, so
 * every replica cuts alike), then by id. */
static int tie_by_key(uint32_t a, uint32_t b, void *ctx) {
    const me_coll_t *c = ctx;
    if (c->idkey[a] != c->idkey[b]) return c->idkey[a] < c->idkey[b] ? -1 : 1;
    return strcmp(c->ids[a], c->ids[b]);
}

static int past(uint64_t deadline_us) { return deadline_us && me_now_us() > deadline_us; }

/* Scratch for documents assembled from RAM head rows + fetched tail rows. */
typedef struct {
    uint8_t *data;
    float *scales;
    int *got;                 /* rows assembled per document */
    size_t cap_docs;
} fetch_buf_t;

/* Fills refs[i] for slots[i] at budget r_c, fetching tail rows from storage
 * when r_c > ram_vectors. */
static int load_refs(me_coll_t *c, me_storage_t *st, int r_c, const uint32_t *slots, size_t n,
                     me_docref_t *refs, fetch_buf_t *fb, char *err, size_t errcap) {
    const me_coll_config_t *cfg = &c->cfg;
    if (r_c <= cfg->coarse_vectors) {
        for (size_t i = 0; i < n; i++) refs[i] = me_coll_coarse_ref(c, slots[i]);
        return 0;
    }
    if (r_c <= cfg->ram_vectors) {
        for (size_t i = 0; i < n; i++) refs[i] = me_coll_head_ref(c, slots[i]);
        return 0;
    }
    /* Assemble [head rows | tail rows] per doc in the fetch buffer. */
    size_t rb = me_coll_row_bytes(c);
    int int8 = cfg->dtype == ME_DTYPE_INT8;
    if (fb->cap_docs < n) {
        free(fb->data);
        free(fb->scales);
        free(fb->got);
        fb->data = malloc(n * (size_t)r_c * rb);
        fb->scales = int8 ? malloc(n * (size_t)r_c * sizeof(float)) : NULL;
        fb->got = malloc(n * sizeof *fb->got);
        fb->cap_docs = n;
        if (!fb->data || !fb->got || (int8 && !fb->scales)) { fb->cap_docs = 0; return ME_ENOMEM; }
    }
    int rc = me_record_load(st, c, slots, n, r_c, fb->data, fb->scales, fb->got, err, errcap);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        refs[i].data = fb->data + i * (size_t)r_c * rb;
        refs[i].scales = int8 ? fb->scales + i * (size_t)r_c : NULL;
        refs[i].rows = fb->got[i];
    }
    return rc;
}

/* Scores slots (or every doc when slots is NULL) at (r_q, r_c) into topk;
 * `reps` times over (--slowdown: the same scores, the work of a slower
 * machine). */
static int score_into(me_coll_t *c, me_storage_t *st, me_mquery_t *q, int r_c,
                      const uint32_t *slots, size_t n, me_topk_t *topk, uint64_t deadline_us, int reps,
                      char *err, size_t errcap) {
    uint32_t *idx = malloc(CHUNK * sizeof *idx);
    me_docref_t *refs = malloc(CHUNK * sizeof *refs);
    float *scores = malloc(CHUNK * sizeof *scores);
    fetch_buf_t fb = { 0 };
    int rc = 0;
    if (!idx || !refs || !scores) { rc = ME_ENOMEM; goto done; }
    size_t step = 256;  /* then sized from the time the last chunk took */
    for (size_t off = 0, m; off < n && rc == 0; off += m) {
        if (past(deadline_us)) { rc = ME_ETIMEDOUT; break; }
        uint64_t t0 = me_now_us();
        m = n - off < step ? n - off : step;
        for (size_t i = 0; i < m; i++) idx[i] = slots ? slots[off + i] : (uint32_t)(off + i);
        /* The coarse scan at r_c = 1 (every document, a filter's or an
         * IVF probe's): straight over the dense coarse copy's first rows,
         * no document references (the same scores). */
        int flat = r_c == 1;
        if (!flat) rc = load_refs(c, st, r_c, idx, m, refs, &fb, err, errcap);
        if (rc) break;
        size_t stride;
        const float *first_scales;
        const uint8_t *first = me_coll_first_rows(c, &first_scales, &stride);
        for (int rep = 0; rep < (reps > 1 ? reps : 1) && rc == 0; rep++) {
            if (flat && !slots)
                me_maxsim_score_rows1(q, c->cfg.dtype, first + off * stride * me_dtype_size(c->cfg.dtype),
                                      first_scales ? first_scales + off * (stride / (size_t)c->cfg.dim) : NULL,
                                      stride, m, scores);
            else if (flat)
                me_maxsim_score_rows1_at(q, c->cfg.dtype, first, first_scales, stride, idx, m, scores);
            else me_maxsim_score(q, c->cfg.dtype, r_c, refs, m, scores, ME_MAXSIM_AUTO);
            if (rep % 16 == 15 && past(deadline_us)) rc = ME_ETIMEDOUT;
        }
        if (rc) break;
        me_topk_push_n(topk, scores, idx, m);
        uint64_t took = me_now_us() - t0;
        double per_doc = (double)(took ? took : 1) / (double)m;
        double next = CHECK_EVERY_US / per_doc;
        step = next >= CHUNK ? CHUNK : next < 16 ? 16 : (size_t)next;
    }
done:
    free(idx);
    free(refs);
    free(scores);
    free(fb.data);
    free(fb.scales);
    free(fb.got);
    return rc;
}

/* Stage 1 over sign bits (binary_coarse): the query's first vector (4-bit
 * quantized) against each document's signs (common/bits.h), over slots
 * (NULL: every document), into topk. */
static int score_bits_into(me_coll_t *c, const float *query, const uint32_t *slots, size_t n, me_topk_t *topk,
                           uint64_t deadline_us) {
    me_bits_query_t qb;
    me_bits_query_init(&qb, query, c->cfg.dim);
    float *scores = malloc(CHUNK * sizeof *scores);
    uint32_t *idx = malloc(CHUNK * sizeof *idx);
    int rc = scores && idx ? 0 : ME_ENOMEM;
    for (size_t off = 0, m; off < n && rc == 0; off += m) {
        if (past(deadline_us)) { rc = ME_ETIMEDOUT; break; }
        m = n - off < CHUNK ? n - off : CHUNK;
        for (size_t i = 0; i < m; i++) idx[i] = slots ? slots[off + i] : (uint32_t)(off + i);
        me_bits_score(&qb, c->bits, idx, m, scores);
        me_topk_push_n(topk, scores, idx, m);
    }
    free(scores);
    free(idx);
    return rc;
}

static void stage_done(me_search_result_t *out, const char *name, int r_q, int r_c,
                       uint64_t in, uint64_t nout, uint64_t t0) {
    if (out->nstages == ME_SEARCH_MAX_STAGES) return;
    me_stage_t *s = &out->stages[out->nstages++];
    s->name = name;
    s->r_q = r_q;
    s->r_c = r_c;
    s->in = in;
    s->out = nout;
    s->micros = me_now_us() - t0;
}

/* The middle budget of a three-stage cascade: the largest trained budget
 * within a quarter of the request's query and document vectors, so it is a
 * good embedding in its own right and costs a 16th or less per document:
 * (4,8) for (16,64), (2,4) for (8,16). 0 when only (1,1), which stage 1
 * already scored, fits. */
static int refine_budget(int r_q, int r_c, int coarse_rq, int coarse_rc, int *rq_m, int *rc_m) {
    int found = 0;
    for (int i = 0; i < ME_BUDGET_LADDER_N; i++) {
        int q = me_budget_ladder[i].r_q, d = me_budget_ladder[i].r_c;
        if (q * 4 > r_q || d * 4 > r_c) break;
        if (q * d > coarse_rq * coarse_rc) {
            *rq_m = q;
            *rc_m = d;
            found = 1;
        }
    }
    return found;
}

/* One narrowing stage: scores `in` (NULL: every document) at (rq, rc), or
 * over the sign bits with `bits` (stage 1 of a binary_coarse collection), and
 * keeps the best `keep` slots in *out (malloc'd, *nout of them); with
 * `ranked`, also their scores, best first (malloc'd): the stage's own
 * ranking, an anytime answer at its budget. */
static int narrow(me_coll_t *c, me_storage_t *st, const me_search_params_t *p, const char *name, int bits,
                  int rq, int rc_, const uint32_t *in, size_t n_in, size_t keep, uint32_t **out,
                  size_t *nout, me_scored_t **ranked, uint64_t deadline_us, me_search_result_t *res, char *err,
                  size_t errcap) {
    uint64_t t0 = me_now_us();
    me_topk_t best;
    int rc = me_topk_init(&best, keep, bits ? tie_by_key : tie_by_id, c);
    if (rc) return rc;
    me_mquery_t *q = bits ? NULL : me_mquery_new(p->query, rq, c->cfg.dim);
    if (!bits && !q) rc = ME_ENOMEM;
    if (rc == 0 && bits) rc = score_bits_into(c, p->query, in, n_in, &best, deadline_us);
    else if (rc == 0) rc = score_into(c, st, q, rc_, in, n_in, &best, deadline_us, p->slowdown, err, errcap);
    me_mquery_free(q);
    if (rc == 0 && ranked) me_topk_finish(&best);
    if (rc == 0) {
        *nout = best.n;
        *out = malloc((best.n ? best.n : 1) * sizeof **out);
        if (!*out) rc = ME_ENOMEM;
        else
            for (size_t i = 0; i < best.n; i++) (*out)[i] = best.items[i].idx;
        if (rc == 0) stage_done(res, name, rq, rc_, n_in, best.n, t0);
        if (rc == 0 && ranked) {
            *ranked = best.items;  /* ownership moves to the caller */
            best.items = NULL;
        }
    }
    me_topk_free(&best);
    return rc;
}

/* Anytime's cost model: each finished stage teaches the collection its
 * time per document at the stage's budget (a moving average); a stage is
 * predicted from that, or, at a budget not seen yet, from the stage just
 * run scaled by r_q·r_c (which overestimates: per-document overheads do
 * not scale). */
static void stage_learn(me_coll_t *c, const me_search_result_t *out) {
    const me_stage_t *s = &out->stages[out->nstages - 1];
    int l = me_budget_index(s->r_q, s->r_c);
    if (l < 0 || !s->in) return;
    uint64_t ps = s->micros * 1000000u / s->in, old = atomic_load_explicit(&c->stage_ps[l], memory_order_relaxed);
    atomic_store_explicit(&c->stage_ps[l], old ? (old * 3 + ps) / 4 : ps, memory_order_relaxed);
}

/* The deadline the stages after the first are cut to (anytime). */
static uint64_t soft_deadline(const me_search_params_t *p) {
    if (!p->anytime || !p->anytime_us) return p->deadline_us;
    return p->deadline_us && p->deadline_us < p->anytime_us ? p->deadline_us : p->anytime_us;
}

/* Whether a stage scoring n documents at (rq, rc) should still end before
 * the (soft) deadline, with a margin of half again. */
static int stage_fits(me_coll_t *c, const me_search_params_t *p, const me_search_result_t *out, size_t n, int rq,
                      int rc) {
    uint64_t deadline = soft_deadline(p);
    if (!p->anytime || !deadline) return 1;
    int l = me_budget_index(rq, rc);
    uint64_t ps = l >= 0 ? atomic_load_explicit(&c->stage_ps[l], memory_order_relaxed) : 0;
    double per_doc_us;
    if (ps) per_doc_us = (double)ps / 1e6;
    else {
        const me_stage_t *s = &out->stages[out->nstages - 1];
        double work = (double)s->in * s->r_q * s->r_c;
        per_doc_us = work > 0 ? (double)s->micros / work * rq * rc : 0;
    }
    return (double)me_now_us() + 1.5 * per_doc_us * (double)n < (double)deadline;
}

/* Whether stage 1 probes the collection's IVF index. */
static int ivf_usable(const me_coll_t *c, const me_search_params_t *p) {
    return c->ivf && c->cfg.coarse_index == 1 && !p->exact && c->n > 0;
}

/* Stage 1's documents from the IVF index: the members of the lists nearest
 * the query's first vector that the filter allows, nearest list first,
 * until `probe` lists are scanned (0: until ME_IVF_SCAN_FACTOR · keep
 * documents are) and at least `keep` documents are found, or every list
 * is. *out: malloc'd slots (NULL with *nout = (size_t)-1 when the filter's
 * universe of nu documents is smaller than that: scan it instead). */
static int ivf_universe(const me_coll_t *c, const me_search_params_t *p, size_t keep, size_t nu, uint32_t **out,
                        size_t *nout) {
    const me_ivf_t *ix = c->ivf;
    int probe = p->probe ? p->probe : c->cfg.ivf_probe;
    if (probe > ix->nlist) probe = ix->nlist;
    double avg = (double)c->n / ix->nlist;
    size_t target = probe ? (size_t)(probe * avg) : keep * ME_IVF_SCAN_FACTOR;
    *out = NULL;
    if (p->allow && nu <= target) {
        *nout = (size_t)-1;
        return 0;
    }
    int want = probe ? probe : (int)((double)target / (avg > 0 ? avg : 1) * 1.5) + 8;
    if (want > ix->nlist) want = ix->nlist;
    int *lists = malloc((size_t)ix->nlist * sizeof *lists);
    size_t cap = target + keep + 64, n = 0;
    uint32_t *slots = malloc(cap * sizeof *slots);
    int got = lists ? me_ivf_rank_lists(ix, p->query, want, lists) : -1;
    if (!lists || !slots || got < 0) {
        free(lists);
        free(slots);
        return ME_ENOMEM;
    }
    for (int i = 0;; i++) {
        if ((probe ? i >= probe : n >= target) && n >= keep) break;
        if (i == got) {
            /* The nearest `want` lists did not hold enough: rank them all. */
            if (got == ix->nlist) break;
            got = me_ivf_rank_lists(ix, p->query, ix->nlist, lists);
            if (got < 0) { free(lists); free(slots); return ME_ENOMEM; }
        }
        int l = lists[i];
        if (n + ix->len[l] > cap) {
            size_t ncap = (n + ix->len[l]) * 2;
            uint32_t *ns = realloc(slots, ncap * sizeof *ns);
            if (!ns) { free(lists); free(slots); return ME_ENOMEM; }
            slots = ns;
            cap = ncap;
        }
        const uint32_t *m = ix->members[l];
        if (p->allow) {
            for (uint32_t j = 0; j < ix->len[l]; j++)
                if (me_bitmap_get(p->allow, m[j])) slots[n++] = m[j];
        } else {
            memcpy(slots + n, m, ix->len[l] * sizeof *m);
            n += ix->len[l];
        }
    }
    free(lists);
    /* Documents queued for the lists (a writer flushes before it lets go
     * of the lock, so normally none): every one is scanned. */
    if (c->npending) {
        uint32_t *ns = realloc(slots, (n + c->npending) * sizeof *ns);
        if (!ns) { free(slots); return ME_ENOMEM; }
        slots = ns;
        for (size_t i = 0; i < c->npending; i++)
            if (!p->allow || me_bitmap_get(p->allow, c->ivf_pending[i])) slots[n++] = c->ivf_pending[i];
    }
    *out = slots;
    *nout = n;
    return 0;
}

/* Stage 1 ("coarse"): `narrow` over the filter's universe, or over what
 * the IVF index probes when the collection has one. */
static int coarse_narrow(me_coll_t *c, me_storage_t *st, const me_search_params_t *p, int rq, int rc_,
                         const uint32_t *uni, size_t n_uni, size_t keep, uint32_t **out, size_t *nout,
                         me_scored_t **ranked, uint64_t deadline_us, me_search_result_t *res, char *err,
                         size_t errcap) {
    /* The binary tier scores stage 1 at (1,1) over its bits. */
    int bits = c->cfg.binary_coarse && c->bits && !p->exact && rq == 1 && rc_ == 1;
    if (!ivf_usable(c, p))
        return narrow(c, st, p, "coarse", bits, rq, rc_, uni, n_uni, keep, out, nout, ranked, deadline_us, res, err,
                      errcap);
    uint64_t t0 = me_now_us();
    uint32_t *probed = NULL;
    size_t np = 0;
    int rc = ivf_universe(c, p, keep, n_uni, &probed, &np);
    if (rc) return rc;
    if (np == (size_t)-1)  /* a filter narrower than the probe: its documents */
        return narrow(c, st, p, "coarse", bits, rq, rc_, uni, n_uni, keep, out, nout, ranked, deadline_us, res, err,
                      errcap);
    uint64_t probe_us = me_now_us() - t0;
    rc = narrow(c, st, p, "coarse", bits, rq, rc_, probed, np, keep, out, nout, ranked, deadline_us, res, err,
                errcap);
    free(probed);
    if (rc == 0 && res->nstages) res->stages[res->nstages - 1].micros += probe_us;
    return rc;
}

/* The documents a search may return: `uni` (NULL: every slot), n of them. */
static int dense_run(me_coll_t *c, me_storage_t *st, const me_search_params_t *p, const uint32_t *uni, size_t n,
                     me_search_result_t *out, char *err, size_t errcap) {
    me_mquery_t *q = me_mquery_new(p->query, p->r_q, c->cfg.dim);
    if (!q) { snprintf(err, errcap, "out of memory"); return ME_ENOMEM; }
    me_topk_t final_k;
    int rc = me_topk_init(&final_k, p->k, tie_by_id, c);
    if (rc) { me_mquery_free(q); return rc; }
    int coarse_rc = p->r_c < c->cfg.coarse_vectors ? p->r_c : c->cfg.coarse_vectors;
    /* Stage 1 scores the coarsest budget the model was trained for: the
     * first query vector against the first document vector(s). Summing
     * every query vector against d_0 instead is no budget the MMR loss
     * trains, and on real embeddings it loses most answers. */
    int coarse_rq = p->r_q < ME_SEARCH_COARSE_QUERY_VECTORS ? p->r_q : ME_SEARCH_COARSE_QUERY_VECTORS;
    size_t n1 = p->candidates ? p->candidates : ME_SEARCH_DEFAULT_CANDIDATES;
    size_t n2 = p->refine_candidates ? p->refine_candidates : ME_SEARCH_DEFAULT_REFINE_CANDIDATES;
    if (n1 < p->k) n1 = p->k;
    if (n2 < p->k) n2 = p->k;

    uint64_t t0 = me_now_us();
    /* The last finished stage's ranking (anytime), and its budget. */
    me_scored_t *last = NULL;
    size_t nlast = 0;
    int last_rq = p->r_q, last_rc = p->r_c, degraded = 0;
    if (p->exact || (coarse_rc == p->r_c && coarse_rq == p->r_q)) {
        /* One pass at the full budget (exact mode, or a budget the coarse
         * stage already is: over what the IVF index probes, if any). */
        /* Anytime: the only stage is the first, which always finishes. */
        uint32_t *probed = NULL;
        size_t np = (size_t)-1;
        if (!p->exact && c->cfg.binary_coarse) {
            /* Bits first (n1 of them), then the stored first vectors score those. */
            rc = coarse_narrow(c, st, p, p->r_q, p->r_c, uni, n, n1, &probed, &np, NULL,
                               p->anytime ? 0 : p->deadline_us, out, err, errcap);
            uint64_t t1 = me_now_us();
            if (rc == 0)
                rc = score_into(c, st, q, p->r_c, probed, np, &final_k, p->anytime ? 0 : p->deadline_us, p->slowdown,
                                err, errcap);
            if (rc == 0) stage_done(out, "rerank", p->r_q, p->r_c, np, final_k.n, t1);
        } else {
            if (ivf_usable(c, p)) rc = ivf_universe(c, p, n1, n, &probed, &np);
            if (rc == 0)
                rc = score_into(c, st, q, p->r_c, np == (size_t)-1 ? uni : probed, np == (size_t)-1 ? n : np,
                                &final_k, p->anytime ? 0 : p->deadline_us, p->slowdown, err, errcap);
            if (rc == 0)
                stage_done(out, p->exact ? "exact" : "coarse", p->r_q, p->r_c, np == (size_t)-1 ? n : np, final_k.n,
                           t0);
        }
        free(probed);
    } else {
        uint32_t *surv = NULL, *surv2 = NULL;
        me_scored_t *ranked2 = NULL;
        size_t ns = 0, ns2 = 0;
        int rq_m, rc_m;
        /* Anytime: the first stage always finishes (it is the coarsest answer). */
        rc = coarse_narrow(c, st, p, coarse_rq, coarse_rc, uni, n, n1, &surv, &ns, p->anytime ? &last : NULL,
                           p->anytime ? 0 : p->deadline_us, out, err, errcap);
        nlast = ns;
        last_rq = coarse_rq;
        last_rc = coarse_rc;
        if (rc == 0) stage_learn(c, out);
        /* Stage 2 only when it narrows: a middle budget over the coarse
         * survivors, so the full budget scores a few hundred documents. */
        if (rc == 0 && n2 < ns && refine_budget(p->r_q, p->r_c, coarse_rq, coarse_rc, &rq_m, &rc_m)) {
            if (!stage_fits(c, p, out, ns, rq_m, rc_m)) degraded = 1;
            else rc = narrow(c, st, p, "refine", 0, rq_m, rc_m, surv, ns, n2, &surv2, &ns2,
                             p->anytime ? &ranked2 : NULL,
                             soft_deadline(p), out, err, errcap);
            if (rc == ME_ETIMEDOUT && p->anytime) { rc = 0; degraded = 1; }
            if (rc == 0 && !degraded) {
                stage_learn(c, out);
                free(surv);
                surv = surv2;
                ns = ns2;
                free(last);
                last = ranked2;
                nlast = ns2;
                last_rq = rq_m;
                last_rc = rc_m;
            }
        }
        if (rc == 0 && !degraded) {
            uint64_t t1 = me_now_us();
            if (!stage_fits(c, p, out, ns, p->r_q, p->r_c)) degraded = 1;
            else rc = score_into(c, st, q, p->r_c, surv, ns, &final_k, soft_deadline(p), p->slowdown, err, errcap);
            if (rc == ME_ETIMEDOUT && p->anytime) { rc = 0; degraded = 1; }
            if (rc == 0 && !degraded) {
                stage_done(out, "rerank", p->r_q, p->r_c, ns, final_k.n, t1);
                stage_learn(c, out);
            }
        }
        free(surv);
    }
    me_mquery_free(q);
    if (rc == ME_ETIMEDOUT) snprintf(err, errcap, "deadline exceeded during search");
    if (rc) { me_topk_free(&final_k); free(last); return rc; }
    out->r_q = p->r_q;
    out->r_c = p->r_c;
    if (degraded) {
        /* The last finished stage's best k, at its budget: its own ranking. */
        me_topk_free(&final_k);
        out->nhits = nlast < p->k ? nlast : p->k;
        out->hits = last;  /* best first, ties by id; ownership moves to the result */
        out->degraded = 1;
        out->r_q = last_rq;
        out->r_c = last_rc;
        return 0;
    }
    free(last);
    out->nhits = me_topk_finish(&final_k);
    out->hits = final_k.items;  /* ownership moves to the result */
    return 0;
}

/* ---- lexical and hybrid ---- */

/* BM25 of the query text against every slot (malloc'd, c->n of them), in
 * the "lexical" stage keeping `keep` of them: the best `keep` slots with a
 * score into *top (malloc'd, best first, *ntop of them). */
static int lexical_top(me_coll_t *c, const me_search_params_t *p, size_t keep, float **scores,
                       me_scored_t **top, size_t *ntop, me_search_result_t *out) {
    uint64_t t0 = me_now_us();
    *scores = malloc((c->n ? c->n : 1) * sizeof **scores);
    if (!*scores) return ME_ENOMEM;
    size_t matched = me_bm25_index_score(c->lex, p->text, strlen(p->text), *scores);
    me_topk_t best;
    if (me_topk_init(&best, keep ? keep : 1, tie_by_id, c) != 0) return ME_ENOMEM;
    /* Only documents sharing a word (a BM25 of 0 is no match) and passing the filter. */
    for (size_t i = 0; i < c->n; i++)
        if ((*scores)[i] > 0 && (!p->allow || me_bitmap_get(p->allow, i))) me_topk_push(&best, (*scores)[i], (uint32_t)i);
    *ntop = me_topk_finish(&best);
    *top = best.items;
    stage_done(out, "lexical", 0, 0, matched, *ntop, t0);
    return 0;
}

static int lexical_run(me_coll_t *c, const me_search_params_t *p, me_search_result_t *out) {
    float *scores = NULL;
    int rc = lexical_top(c, p, p->k, &scores, &out->hits, &out->nhits, out);
    free(scores);
    if (rc) return rc;
    out->dense = calloc(out->nhits ? out->nhits : 1, sizeof *out->dense);
    out->lexical = malloc((out->nhits ? out->nhits : 1) * sizeof *out->lexical);
    if (!out->dense || !out->lexical) return ME_ENOMEM;
    for (size_t i = 0; i < out->nhits; i++) out->lexical[i] = out->hits[i].score;
    return 0;
}

/* The union of BM25's top n and the coarse stage's top n, as slots. */
static int hybrid_candidates(me_coll_t *c, me_storage_t *st, const me_search_params_t *p, const uint32_t *uni,
                             size_t nu, size_t hn, const me_scored_t *lex, size_t nlex, uint32_t **cand,
                             size_t *ncand, me_search_result_t *out, char *err, size_t errcap) {
    int coarse_rc = p->r_c < c->cfg.coarse_vectors ? p->r_c : c->cfg.coarse_vectors;
    int coarse_rq = p->r_q < ME_SEARCH_COARSE_QUERY_VECTORS ? p->r_q : ME_SEARCH_COARSE_QUERY_VECTORS;
    uint32_t *dense = NULL;
    size_t nd = 0;
    int rc = coarse_narrow(c, st, p, coarse_rq, coarse_rc, uni, nu, hn, &dense, &nd, NULL, p->deadline_us, out, err,
                           errcap);
    if (rc) return rc;
    uint8_t *seen = calloc(c->n ? c->n : 1, 1);
    *cand = malloc((nd + nlex + 1) * sizeof **cand);
    if (!seen || !*cand) { free(seen); free(dense); return ME_ENOMEM; }
    *ncand = 0;
    for (size_t i = 0; i < nlex; i++) { seen[lex[i].idx] = 1; (*cand)[(*ncand)++] = lex[i].idx; }
    for (size_t i = 0; i < nd; i++)
        if (!seen[dense[i]]) { seen[dense[i]] = 1; (*cand)[(*ncand)++] = dense[i]; }
    free(seen);
    free(dense);
    return 0;
}

/* Fuses the scored candidates and keeps the best k (every one when the
 * coordinator will redo the fusion over the cluster's union). */
static int fuse_into(me_coll_t *c, const me_search_params_t *p, const me_scored_t *dense, size_t n,
                     const float *lex_scores, me_search_result_t *out) {
    uint64_t t0 = me_now_us();
    me_fuse_item_t *items = malloc((n ? n : 1) * sizeof *items);
    if (!items) return ME_ENOMEM;
    for (size_t i = 0; i < n; i++)
        items[i] = (me_fuse_item_t){ .id = c->ids[dense[i].idx], .dense = dense[i].score,
                                     .lexical = lex_scores[dense[i].idx], .ref = dense[i].idx };
    if (me_fuse(items, n, p->weighted, p->alpha, p->rrf_k) != 0) { free(items); return ME_ENOMEM; }
    size_t keep = p->all_candidates || n < p->k ? n : p->k;
    out->hits = malloc((keep ? keep : 1) * sizeof *out->hits);
    out->dense = malloc((keep ? keep : 1) * sizeof *out->dense);
    out->lexical = malloc((keep ? keep : 1) * sizeof *out->lexical);
    if (!out->hits || !out->dense || !out->lexical) { free(items); return ME_ENOMEM; }
    for (size_t i = 0; i < keep; i++) {
        out->hits[i] = (me_scored_t){ .score = items[i].fused, .idx = (uint32_t)items[i].ref };
        out->dense[i] = items[i].dense;
        out->lexical[i] = items[i].lexical;
    }
    out->nhits = keep;
    free(items);
    stage_done(out, "fusion", 0, 0, n, keep, t0);
    return 0;
}

static int hybrid_run(me_coll_t *c, me_storage_t *st, const me_search_params_t *p, const uint32_t *uni, size_t nu,
                      me_search_result_t *out, char *err, size_t errcap) {
    size_t hn = p->hybrid_n ? p->hybrid_n : ME_HYBRID_CANDIDATES_DEFAULT;
    if (hn < p->k) hn = p->k;  /* so k hits can come back when that many documents exist */
    float *lex_scores = NULL;
    me_scored_t *lex = NULL;
    uint32_t *cand = NULL;
    size_t nlex = 0, ncand = 0;
    me_topk_t scored = { 0 };
    me_mquery_t *q = NULL;
    int rc = lexical_top(c, p, hn, &lex_scores, &lex, &nlex, out);
    if (rc == 0) rc = hybrid_candidates(c, st, p, uni, nu, hn, lex, nlex, &cand, &ncand, out, err, errcap);
    /* Every candidate's MaxSim at the full budget (kept, not cut). */
    uint64_t t0 = me_now_us();
    if (rc == 0) rc = me_topk_init(&scored, ncand ? ncand : 1, tie_by_id, c);
    if (rc == 0 && !(q = me_mquery_new(p->query, p->r_q, c->cfg.dim))) rc = ME_ENOMEM;
    if (rc == 0) rc = score_into(c, st, q, p->r_c, cand, ncand, &scored, p->deadline_us, p->slowdown, err, errcap);
    if (rc == 0) {
        size_t ns = me_topk_finish(&scored);
        stage_done(out, "rerank", p->r_q, p->r_c, ncand, ns, t0);
        rc = fuse_into(c, p, scored.items, ns, lex_scores, out);
    }
    me_mquery_free(q);
    me_topk_free(&scored);
    free(lex_scores);
    free(lex);
    free(cand);
    return rc;
}

/* The "filter" stage: the slots the filter's bitmap allows, in slot order. */
static int filter_universe(me_coll_t *c, const me_search_params_t *p, uint32_t **uni, size_t *nu,
                           me_search_result_t *out) {
    uint64_t t0 = me_now_us();
    size_t words = me_bitmap_words(c->n), n = 0;
    for (size_t w = 0; w < words; w++) n += (size_t)__builtin_popcountll(p->allow[w]);
    if (!(*uni = malloc((n ? n : 1) * sizeof **uni))) return ME_ENOMEM;
    size_t k = 0;
    for (size_t w = 0; w < words; w++)
        for (uint64_t b = p->allow[w]; b; b &= b - 1) (*uni)[k++] = (uint32_t)(w * 64 + (size_t)__builtin_ctzll(b));
    *nu = n;
    /* Every document matches: the unfiltered scans, without the index list. */
    if (n == c->n) {
        free(*uni);
        *uni = NULL;
    }
    stage_done(out, "filter", 0, 0, c->n, n, t0);
    return 0;
}

int me_search_run(me_coll_t *c, me_storage_t *st, const me_search_params_t *p,
                  me_search_result_t *out, char *err, size_t errcap) {
    memset(out, 0, sizeof *out);
    uint32_t *uni = NULL;
    size_t nu = c->n;
    int rc = p->allow ? filter_universe(c, p, &uni, &nu, out) : 0;
    if (rc == 0)
        rc = p->mode == METAEMBED__SEARCH_MODE__SEARCH_MODE_DENSE     ? dense_run(c, st, p, uni, nu, out, err, errcap)
             : p->mode == METAEMBED__SEARCH_MODE__SEARCH_MODE_LEXICAL ? lexical_run(c, p, out)
                                                                      : hybrid_run(c, st, p, uni, nu, out, err, errcap);
    free(uni);
    if (rc == ME_ETIMEDOUT) snprintf(err, errcap, "deadline exceeded during search");
    if (rc) me_search_result_free(out);
    return rc;
}

void me_search_result_free(me_search_result_t *r) {
    free(r->dense);
    free(r->lexical);
    r->dense = r->lexical = NULL;
    free(r->hits);
    r->hits = NULL;
    r->nhits = 0;
}
