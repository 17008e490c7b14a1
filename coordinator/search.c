/* Search through the coordinator: a text query encoded by an encoder node,
 * the query fanned out to one live replica per group, the groups' hits
 * merged into the global top k (partial when a group is missing). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fusion.h"
#include "common/budget.h"
#include "common/log.h"
#include "coordinator/handlers.h"

/* Stage timings kept from a shard's reply (it reports at most 4 today). */
#define STAGES_MAX 8

/* The groups' stage timings merged by stage name, in the order first seen:
 * candidates summed over groups (the cluster's totals), micros the slowest
 * group's (what the client waited for). */
typedef struct {
    Metaembed__StageTiming st[STAGES_MAX];
    size_t n;
} stages_t;

static void stages_add(stages_t *m, const Metaembed__SearchReply *part) {
    for (size_t s = 0; s < part->n_stages; s++) {
        const Metaembed__StageTiming *in = part->stages[s];
        size_t i = 0;
        while (i < m->n && strcmp(m->st[i].stage, in->stage) != 0) i++;
        if (i == m->n) {
            if (m->n == STAGES_MAX) continue;
            metaembed__stage_timing__init(&m->st[m->n]);
            m->st[i].stage = in->stage;  /* the part outlives the reply */
            m->st[i].r_q = in->r_q;
            m->st[i].r_c = in->r_c;
            m->n++;
        }
        m->st[i].candidates_in += in->candidates_in;
        m->st[i].candidates_out += in->candidates_out;
        if (in->micros > m->st[i].micros) m->st[i].micros = in->micros;
    }
}

typedef struct {
    Metaembed__Hit *hit;
} hitref_t;

static int hit_cmp(const void *a, const void *b) {
    const Metaembed__Hit *x = ((const hitref_t *)a)->hit, *y = ((const hitref_t *)b)->hit;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return strcmp(x->id, y->id);
}

/* Sends payload to one live encoder (round-robin, failing over) and keeps
 * its answer in *call (caller clears it). 0, or the reply status set. */
static int ask_encoders(req_t *r, const uint8_t *payload, size_t len, me_call_t *call) {
    int eg = COORD(r)->cluster.encoder_group;
    if (eg < 0)
        return me_reply_error(r->reply, ME_CODE_FAILED_PRECONDITION,
                              "no encoders in the cluster map: add a line 'encoders tcp://HOST:PORT ...' "
                              "or send query vectors instead of text");
    *call = (me_call_t){ .group = eg, .replica = -1, .method = METAEMBED__METHOD__METHOD_ENCODE, .payload = payload, .len = len };
    uint64_t retries = 0;
    me_fanout_run(FANOUT(r), call, 1, me_coord_fanout_deadline(r), &retries);
    atomic_fetch_add(&COORD(r)->retries, retries);
    if (!call->answered) {
        int st = me_coord_down_status(call, 1);
        return me_reply_error(r->reply, st, "no encoder answered within the deadline; retry later%s", DEADLINE_HINT(st));
    }
    if (call->reply.status != ME_CODE_OK)
        return me_reply_error(r->reply, call->reply.status, "encoder: %s", call->reply.message);
    return 0;
}

/* Turns the request's text, image, or both into query vectors (the
 * encoder's query side): *query views the encoder's [1, R, D] tensor as
 * [R, D] (the data stays enc's). */
static int encode_query(req_t *r, const Metaembed__SearchRequest *m, me_call_t *call,
                             Metaembed__EncodeReply **enc, Metaembed__Tensor *query, uint32_t shape[2]) {
    char *texts[1] = { m->text };
    Metaembed__EncodeRequest er = METAEMBED__ENCODE_REQUEST__INIT;
    er.texts = texts;
    er.n_texts = 1;
    er.query_side = 1;
    ProtobufCBinaryData image = m->image;
    if (image.len) {
        er.images = &image;
        er.n_images = 1;
    }
    size_t len;
    uint8_t *buf = me_wire_pack(&er.base, &len);
    if (!buf) return OOM(r);
    int rc = ask_encoders(r, buf, len, call);
    free(buf);
    if (rc) return rc;
    *enc = metaembed__encode_reply__unpack(NULL, call->reply.payload_len, call->reply.payload);
    Metaembed__Tensor *t = *enc ? (*enc)->vectors : NULL;
    if (!t || t->n_shape != 3 || t->shape[0] != 1)
        return me_reply_error(r->reply, ME_CODE_INTERNAL, "malformed Encode reply from an encoder");
    *query = *t;
    shape[0] = t->shape[1];
    shape[1] = t->shape[2];
    query->shape = shape;
    query->n_shape = 2;
    return 0;
}

/* A request error from the shards is the reply; with an offset they were
 * asked for k + offset hits, which their --max-k refusal would not say. */
static int search_request_error(req_t *r, const Metaembed__SearchRequest *m, me_call_t *calls, int ng) {
    for (int g = 0; g < ng; g++) {
        const me_reply_t *rep = &calls[g].reply;
        if (!calls[g].answered || rep->status == ME_CODE_OK || me_fanout_retryable(rep->status)) continue;
        if (!m->offset || !strstr(rep->message, "--max-k")) return me_reply_error(r->reply, rep->status, "%s", rep->message);
        return me_reply_error(r->reply, rep->status, "k=%u + offset=%u: each shard ranks k + offset = %u hits: %s",
                              m->k, m->offset, m->k + m->offset, rep->message);
    }
    return 0;
}

/* Hybrid: the shards sent every fused candidate with both component
 * scores; the fusion is redone over the cluster's union (RRF needs global
 * ranks; min-max needs global ranges), each hit's score the fused one. The
 * BM25 scores stay each shard's own (its IDF and avgdl). */
static int fuse_over_union(const Metaembed__SearchRequest *m, hitref_t *all, size_t n) {
    me_fuse_item_t *items = malloc((n ? n : 1) * sizeof *items);
    if (!items) return ME_ENOMEM;
    for (size_t i = 0; i < n; i++)
        items[i] = (me_fuse_item_t){ .id = all[i].hit->id, .dense = all[i].hit->dense_score,
                                     .lexical = all[i].hit->lexical_score, .ref = i };
    int rc = me_fuse(items, n, m->fusion == METAEMBED__FUSION__FUSION_WEIGHTED,
                     m->n_alpha ? m->alpha[0] : ME_FUSION_ALPHA, (int)m->rrf_k);
    for (size_t i = 0; rc == 0 && i < n; i++) all[items[i].ref].hit->score = items[i].fused;
    free(items);
    return rc;
}

/* Budget "auto": the ladder levels [*lo, *hi] a query may use, from its
 * ceiling (r_q, r_c; 0 = unbounded) and min_budget. */
static int auto_range(req_t *r, const Metaembed__SearchRequest *m, int *lo, int *hi) {
    *hi = -1;
    for (int l = 0; l < ME_BUDGET_LADDER_N; l++)
        if ((!m->r_q || (uint32_t)me_budget_ladder[l].r_q <= m->r_q) && (!m->r_c || (uint32_t)me_budget_ladder[l].r_c <= m->r_c))
            *hi = l;
    if (*hi < 0) return BAD(r, "target_ms: no trained budget fits under the ceiling r_q=%u, r_c=%u", m->r_q, m->r_c);
    *lo = 0;
    if (m->n_min_budget) {
        *lo = -1;
        for (int l = ME_BUDGET_LADDER_N - 1; l >= 0; l--)
            if ((uint32_t)me_budget_ladder[l].r_q >= m->min_budget[0] && (uint32_t)me_budget_ladder[l].r_c >= m->min_budget[1])
                *lo = l;
        if (*lo < 0 || *lo > *hi)
            return BAD(r, "min_budget (%u,%u) is above the ceiling (%d,%d): lower it or raise r_q, r_c",
                       m->min_budget[0], m->min_budget[1], me_budget_ladder[*hi].r_q, me_budget_ladder[*hi].r_c);
    }
    return 0;
}

/* Parts answered at different budgets (a group cut short by its deadline)
 * hold MaxSim sums over different numbers of query vectors: each part's
 * scores are put on the smallest part's scale (× r_q_min / r_q) so the
 * merge compares like with like. Returns the smallest r_q. */
static uint32_t common_scale(Metaembed__SearchReply **parts, int ng) {
    uint32_t min_rq = 0;
    for (int g = 0; g < ng; g++)
        if (parts[g] && parts[g]->r_q && (!min_rq || parts[g]->r_q < min_rq)) min_rq = parts[g]->r_q;
    for (int g = 0; g < ng; g++)
        if (parts[g] && parts[g]->r_q > min_rq && min_rq)
            for (size_t i = 0; i < parts[g]->n_hits; i++)
                parts[g]->hits[i]->score *= (float)min_rq / (float)parts[g]->r_q;
    return min_rq;
}

int me_coord_search(req_t *r) {
    Metaembed__SearchRequest *m = (void *)r->msg;
    int ng = me_coord_read_groups(r), rc = 0;
    uint64_t encode_us = 0;
    me_call_t *calls = NULL, enc_call = { 0 };
    Metaembed__EncodeReply *enc = NULL;
    uint8_t *fwd = NULL;
    const uint8_t *payload = r->payload->data;
    size_t payload_len = r->payload->len;
    Metaembed__SearchReply **parts = calloc((size_t)ng, sizeof *parts);
    char **missing = calloc((size_t)ng, sizeof *missing);
    hitref_t *all = NULL;
    Metaembed__Hit **hits = NULL;
    if (!parts || !missing) { rc = OOM(r); goto out; }
    char perr[256];
    if (me_search_check_page(m->k, m->offset, 0, perr, sizeof perr) != 0) { rc = BAD(r, "%s", perr); goto out; }
    if (me_search_check_mode(m, 1, perr, sizeof perr) != 0) { rc = BAD(r, "%s", perr); goto out; }
    if (me_search_check_auto(m, perr, sizeof perr) != 0) { rc = BAD(r, "%s", perr); goto out; }
    /* From the request's arrival: time queued for a coordinator worker counts. */
    uint64_t t_start = me_server_arrival_us() ? me_server_arrival_us() : me_now_us();
    int lexical = m->mode == METAEMBED__SEARCH_MODE__SEARCH_MODE_LEXICAL;
    int hybrid = m->mode == METAEMBED__SEARCH_MODE__SEARCH_MODE_HYBRID;
    /* Shards get a copy of the request with the vectors (not the text), and
     * rank the first k + offset hits: the page is cut from the merge. */
    Metaembed__SearchRequest shard_req = *m;
    Metaembed__Tensor query;
    uint32_t shape[2];
    shard_req.k = m->k + m->offset;
    shard_req.offset = 0;
    /* The shards rank BM25 by lexical_text; a text query is its own. */
    if (!m->lexical_text[0] && (lexical || hybrid)) shard_req.lexical_text = m->text;
    shard_req.all_candidates = hybrid;
    if (lexical) {
        shard_req.text = "";  /* BM25 needs no vectors: nothing to encode */
        shard_req.image.len = 0;
        shard_req.image.data = NULL;
    } else if (!m->query && ((m->text && m->text[0]) || m->image.len)) {
        uint64_t te = me_now_us();
        if ((rc = encode_query(r, m, &enc_call, &enc, &query, shape)) != 0) goto out;
        shard_req.query = &query;
        shard_req.text = "";
        shard_req.image.len = 0;
        shard_req.image.data = NULL;
        encode_us = me_now_us() - te;
    } else if (!m->query) {
        rc = BAD(r, "give query vectors, a query text or a query image");
        goto out;
    }
    /* Budget "auto": picked now, with the time encoding took off the target. */
    int auto_level = -1, lo = 0, hi = 0;
    double predicted_ms = 0;
    char reason[200] = "";
    if (m->target_ms) {
        if ((rc = auto_range(r, m, &lo, &hi)) != 0) goto out;
        double left_ms = (double)m->target_ms - (double)(me_now_us() - t_start) / 1000.0;
        me_autobudget_pick(&COORD(r)->autobudget, left_ms > 1 ? left_ms : 1, lo, hi, &auto_level, &predicted_ms, reason,
                           sizeof reason);
        shard_req.r_q = (uint32_t)me_budget_ladder[auto_level].r_q;
        shard_req.r_c = (uint32_t)me_budget_ladder[auto_level].r_c;
        /* The answer comes by the target, anytime: a shard cuts its cascade
         * to end by it rather than be late (its first stage always
         * finishes, so a shard too slow even for that answers late rather
         * than not at all: the fan-out keeps the request's deadline). With
         * a minimum budget the minimum is the guarantee and the target a
         * goal: no cut below it. */
        shard_req.anytime = !m->n_min_budget;
        shard_req.anytime_ms = shard_req.anytime ? (uint32_t)(left_ms > 1 ? left_ms : 1) : 0;
    }
    if (encode_us || m->offset || lexical || hybrid || m->target_ms) {
        if (!(fwd = me_wire_pack(&shard_req.base, &payload_len))) { rc = OOM(r); goto out; }
        payload = fwd;
    }
    /* The "fanout" stage starts here: encoding the text has its own. */
    uint64_t t_fan = me_now_us();
    calls = me_coord_read_calls(r, METAEMBED__METHOD__METHOD_SEARCH, payload, payload_len);
    if (!calls) { rc = OOM(r); goto out; }
    if ((rc = search_request_error(r, m, calls, ng)) != 0) goto out;
    size_t nmissing = 0, total = 0;
    for (int g = 0; g < ng; g++) {
        if (me_coord_group_ok(&calls[g]))
            parts[g] = metaembed__search_reply__unpack(NULL, calls[g].reply.payload_len, calls[g].reply.payload);
        if (!parts[g]) missing[nmissing++] = (char *)me_coord_group_name(r, g);
        else total += parts[g]->n_hits;
    }
    if (nmissing == (size_t)ng) {
        int st = me_coord_down_status(calls, ng);
        rc = me_reply_error(r->reply, st, "no shard group answered within the deadline (%s%s)%s",
                            missing[0], ng > 1 ? ", ..." : "", DEADLINE_HINT(st));
        goto out;
    }
    if (nmissing && m->all_or_nothing) {
        char names[512] = "";
        for (size_t i = 0; i < nmissing; i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "", missing[i]);
        rc = me_reply_error(r->reply, ME_CODE_UNAVAILABLE,
                            "groups unavailable: %s (the request asked for all or nothing)", names);
        goto out;
    }
    /* Scores from different shards are comparable (same formula, same
     * query), so the global top k is the top k of the union. */
    all = calloc(total ? total : 1, sizeof *all);
    hits = calloc(total ? total : 1, sizeof *hits);
    if (!all || !hits) { rc = OOM(r); goto out; }
    size_t n = 0;
    uint64_t docs = 0;
    Metaembed__SearchReply rep = METAEMBED__SEARCH_REPLY__INIT;
    Metaembed__StageTiming *stp[STAGES_MAX + 2];  /* + encode, fanout */
    size_t nst = 0;
    stages_t merged = { .n = 0 };
    uint32_t min_rq = common_scale(parts, ng);
    for (int g = 0; g < ng; g++) {
        if (!parts[g]) continue;
        for (size_t i = 0; i < parts[g]->n_hits; i++) all[n++].hit = parts[g]->hits[i];
        docs += parts[g]->documents;
        /* The budget reported: the smallest any group answered at. */
        if (parts[g]->r_q == min_rq && (!rep.r_c || parts[g]->r_c < rep.r_c)) {
            rep.r_q = min_rq;
            rep.r_c = parts[g]->r_c;
        }
        rep.degraded |= parts[g]->degraded;
        stages_add(&merged, parts[g]);
    }
    if (hybrid && fuse_over_union(m, all, n) != 0) { rc = OOM(r); goto out; }
    qsort(all, n, sizeof *all, hit_cmp);
    /* The page [offset, offset + k) of the global ranking. */
    size_t skip = n < m->offset ? n : m->offset, k = n - skip < m->k ? n - skip : m->k;
    for (size_t i = 0; i < k; i++) hits[i] = all[skip + i].hit;
    Metaembed__StageTiming encst = METAEMBED__STAGE_TIMING__INIT;
    if (encode_us) {
        encst.stage = "encode";
        encst.micros = encode_us;
        stp[nst++] = &encst;
    }
    for (size_t s = 0; s < merged.n; s++) stp[nst++] = &merged.st[s];
    Metaembed__StageTiming fan = METAEMBED__STAGE_TIMING__INIT;
    fan.stage = "fanout";
    fan.r_q = rep.r_q;
    fan.r_c = rep.r_c;
    fan.candidates_in = n;
    fan.candidates_out = k;
    fan.micros = me_now_us() - t_fan;
    stp[nst++] = &fan;
    rep.hits = hits;
    rep.n_hits = k;
    rep.stages = stp;
    rep.n_stages = nst;
    rep.documents = docs;
    rep.partial = nmissing > 0;
    rep.missing_groups = missing;
    rep.n_missing_groups = nmissing;
    if (nmissing) atomic_fetch_add(&COORD(r)->partial_replies, 1);
    if (m->target_ms) {
        me_coord_t *co = COORD(r);
        double took_us = (double)(me_now_us() - t_start);  /* what the client waited, queueing included */
        me_autobudget_observe(&co->autobudget, auto_level, took_us, (double)m->target_ms);
        if (rep.degraded) atomic_fetch_add(&co->autobudget.degraded, 1);
        me_hist_observe(&co->auto_predicted, (uint64_t)(predicted_ms * 1000.0));
        me_hist_observe(&co->auto_observed, me_now_us() - t_start);
        rep.predicted_ms = predicted_ms;
        rep.budget_reason = reason;
    }
    me_budget_hist_observe(&COORD(r)->search_by_budget, (int)rep.r_q, (int)rep.r_c,
                           me_now_us() - t_fan + encode_us);
    rc = me_reply_ok(r->reply, &rep.base);
out:
    if (parts)
        for (int g = 0; g < ng; g++)
            if (parts[g]) metaembed__search_reply__free_unpacked(parts[g], NULL);
    if (calls) me_calls_clear(calls, ng);
    free(calls);
    free(parts);
    free(missing);
    free(all);
    free(hits);
    free(fwd);
    if (enc) metaembed__encode_reply__free_unpacked(enc, NULL);
    me_calls_clear(&enc_call, 1);
    return rc;
}

/* Encode through the coordinator: forwarded to a live encoder. */
int me_coord_encode(req_t *r) {
    me_call_t call = { 0 };
    int rc = ask_encoders(r, r->payload->data, r->payload->len, &call);
    if (rc == 0) {
        r->reply->status = ME_CODE_OK;
        r->reply->payload = call.reply.payload;  /* the encoder's reply is ours */
        r->reply->payload_len = call.reply.payload_len;
        call.reply.payload = NULL;
    }
    me_calls_clear(&call, 1);
    return rc;
}

