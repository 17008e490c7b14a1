#include "encoder/eval.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/bm25.h"
#include "common/dtype.h"
#include "common/error.h"
#include "common/maxsim.h"
#include "common/topk.h"
#include "encoder/ops.h"

void me_eval_defaults(me_eval_opts_t *o) {
    memset(o, 0, sizeof *o);
    o->split = ME_SPLIT_TEST;
    o->threads = 2;
    o->nbudgets = me_mmr_default_groups(o->budgets);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct {
    const uint16_t *docs;      /* (ndocs, Rc, D) f16 */
    const float *queries;      /* (nq, Rq, D) */
    const size_t *doc_group;   /* doc → its group */
    const size_t *q_group;     /* query → the group of its relevant docs */
    size_t ndocs, nq;
    int Rq, Rc, D;
    int r_q, r_c;
    size_t q_from, q_to;
    double r1, mrr, r10;       /* sums over this thread's queries */
    size_t done;
} job_t;

/* Exact MaxSim of each query against every doc; rank of the first relevant
 * doc within the top 10 (ties broken by doc index, as the shard breaks by
 * id). */
static void *score_main(void *arg) {
    job_t *j = arg;
    size_t per_doc = (size_t)j->Rc * j->D;
    me_docref_t *refs = malloc(j->ndocs * sizeof *refs);
    float *scores = malloc(j->ndocs * sizeof *scores);
    for (size_t d = 0; refs && d < j->ndocs; d++) refs[d] = (me_docref_t){ j->docs + d * per_doc, NULL, j->Rc };
    for (size_t q = j->q_from; refs && scores && q < j->q_to; q++) {
        me_mquery_t *mq = me_mquery_new(j->queries + q * (size_t)j->Rq * j->D, j->r_q, j->D);
        if (!mq) break;
        me_maxsim_score(mq, ME_DTYPE_F16, j->r_c, refs, j->ndocs, scores, ME_MAXSIM_AUTO);
        me_mquery_free(mq);
        me_topk_t top;
        if (me_topk_init(&top, 10, NULL, NULL) != 0) break;
        me_topk_push_n(&top, scores, NULL, j->ndocs);
        size_t n = me_topk_finish(&top);
        for (size_t r = 0; r < n; r++)
            if (j->doc_group[top.items[r].idx] == j->q_group[q]) {
                if (r == 0) j->r1 += 1;
                j->mrr += 1.0 / (double)(r + 1);
                j->r10 += 1;
                break;
            }
        me_topk_free(&top);
        j->done++;
    }
    free(refs);
    free(scores);
    return NULL;
}

int me_eval_score(const uint16_t *docs, const size_t *doc_group, size_t ndocs, const float *queries,
                  const size_t *q_group, size_t nq, int Rq, int Rc, int D, const me_eval_opts_t *o,
                  me_eval_result_t *out) {
    out->nrows = 0;
    int nt = o->threads > 0 ? (o->threads > 16 ? 16 : o->threads) : 1;
    for (int g = 0; g < o->nbudgets; g++) {
        /* A budget beyond the model's vectors does not exist for it. */
        if (o->budgets[g].rq > Rq || o->budgets[g].rc > Rc) continue;
        job_t jobs[16];
        pthread_t th[16];
        for (int t = 0; t < nt; t++) {
            jobs[t] = (job_t){ docs, queries, doc_group, q_group, ndocs, nq, Rq, Rc, D, o->budgets[g].rq, o->budgets[g].rc,
                               nq * (size_t)t / (size_t)nt, nq * (size_t)(t + 1) / (size_t)nt, 0, 0, 0, 0 };
            pthread_create(&th[t], NULL, score_main, &jobs[t]);
        }
        me_eval_row_t *row = &out->rows[out->nrows++];
        memset(row, 0, sizeof *row);
        row->r_q = o->budgets[g].rq;
        row->r_c = o->budgets[g].rc;
        row->index_bytes_per_doc = (uint64_t)row->r_c * D * 2;
        for (int t = 0; t < nt; t++) {
            pthread_join(th[t], NULL);
            row->recall1 += jobs[t].r1;
            row->mrr10 += jobs[t].mrr;
            row->recall10 += jobs[t].r10;
        }
        if (nq) { row->recall1 /= (double)nq; row->mrr10 /= (double)nq; row->recall10 /= (double)nq; }
        if (o->progress) o->progress(o->progress_ctx, "score budgets", (size_t)g + 1, (size_t)o->nbudgets);
    }
    return 0;
}

/* The budgets again over the documents' signs: each element becomes
 * ±1/√D (stored as f16, exactly: the same kernels score it), which ranks
 * as the f32 query against the packed bits would. */
static int score_binary(uint16_t *docs, const size_t *doc_group, size_t ndocs, const float *queries,
                        const size_t *q_group, size_t nq, int Rq, int Rc, int D, const me_eval_opts_t *o,
                        me_eval_result_t *out) {
    size_t n = ndocs * (size_t)Rc * D;
    uint16_t *bin = malloc((n ? n : 1) * sizeof *bin);
    if (!bin) return ME_ENOMEM;
    uint16_t plus = me_f32_to_f16(1.0f / sqrtf((float)D)), minus = me_f32_to_f16(-1.0f / sqrtf((float)D));
    for (size_t i = 0; i < n; i++) bin[i] = me_f16_to_f32(docs[i]) < 0 ? minus : plus;
    me_eval_result_t tmp;
    int rc = me_eval_score(bin, doc_group, ndocs, queries, q_group, nq, Rq, Rc, D, o, &tmp);
    free(bin);
    if (rc) return rc;
    out->nbinary = tmp.nrows;
    for (int i = 0; i < tmp.nrows; i++) {
        out->binary[i] = tmp.rows[i];
        out->binary[i].index_bytes_per_doc = (uint64_t)tmp.rows[i].r_c * (uint64_t)((D + 7) / 8);
    }
    return 0;
}

/* BM25 over the same corpus (docrec order) for the same queries: top 10 by
 * score, ties by document position as the exact scorer breaks them. */
static int bm25_row(const me_dataset_t *ds, const size_t *docrec, size_t ndocs, const size_t *qrec, size_t nq,
                    const size_t *doc_of, me_eval_row_t *row) {
    const char **texts = malloc((ndocs ? ndocs : 1) * sizeof *texts);
    size_t *lens = malloc((ndocs ? ndocs : 1) * sizeof *lens);
    float *scores = malloc((ndocs ? ndocs : 1) * sizeof *scores);
    me_bm25_t *bm = NULL;
    int rc = texts && lens && scores ? 0 : ME_ENOMEM;
    for (size_t d = 0; !rc && d < ndocs; d++) {
        texts[d] = ds->recs[docrec[d]].text;
        lens[d] = ds->recs[docrec[d]].text_len;
    }
    if (!rc && !(bm = me_bm25_build(texts, lens, ndocs, ME_BM25_K1, ME_BM25_B))) rc = ME_ENOMEM;
    memset(row, 0, sizeof *row);
    for (size_t q = 0; !rc && q < nq; q++) {
        const me_datarec_t *r = &ds->recs[qrec[q]];
        me_bm25_score(bm, r->query, r->query_len, scores);
        me_topk_t top;
        if (me_topk_init(&top, 10, NULL, NULL) != 0) { rc = ME_ENOMEM; break; }
        me_topk_push_n(&top, scores, NULL, ndocs);
        size_t n = me_topk_finish(&top);
        for (size_t k = 0; k < n; k++)
            if (top.items[k].idx == doc_of[q] && top.items[k].score > 0) {
                if (k == 0) row->recall1 += 1;
                row->mrr10 += 1.0 / (double)(k + 1);
                row->recall10 += 1;
                break;
            }
        me_topk_free(&top);
    }
    if (nq) { row->recall1 /= (double)nq; row->mrr10 /= (double)nq; row->recall10 /= (double)nq; }
    me_bm25_free(bm);
    free(texts);
    free(lens);
    free(scores);
    return rc;
}

int me_eval_run(me_embedder_t *e, const me_dataset_t *ds, const me_eval_opts_t *o, me_eval_result_t *out,
                char *err, size_t errcap) {
    memset(out, 0, sizeof *out);
    double t_start = now_s();
    const me_model_config_t *c = me_embedder_config(e);
    int Rq = c->meta_q, Rc = c->meta_c, D = c->dim;
    /* Queries of the split, and the corpus: all records (or a prefix of the
     * corpus that still holds every chosen query's document). */
    size_t nq = 0, *qrec = malloc(ds->n * sizeof *qrec);
    if (!qrec) return ME_ENOMEM;
    for (size_t i = 0; i < ds->n; i++)
        if (ds->recs[i].split == o->split && (!o->max_queries || nq < o->max_queries)) qrec[nq++] = i;
    size_t ndocs = ds->n;
    size_t *docrec = malloc(ds->n * sizeof *docrec), *doc_of = malloc((nq ? nq : 1) * sizeof *doc_of);
    char *used = calloc(ds->n, 1);
    if (!docrec || !doc_of || !used) { free(qrec); free(docrec); free(doc_of); free(used); return ME_ENOMEM; }
    if (o->max_docs && o->max_docs < ds->n) {
        ndocs = 0;
        for (size_t q = 0; q < nq; q++) { used[qrec[q]] = 1; docrec[ndocs++] = qrec[q]; }
        for (size_t i = 0; i < ds->n && ndocs < o->max_docs; i++)
            if (!used[i]) { used[i] = 1; docrec[ndocs++] = i; }
    } else {
        for (size_t i = 0; i < ds->n; i++) docrec[i] = i;
    }
    /* Position of each query's document in the corpus order. */
    long *pos = malloc(ds->n * sizeof *pos);
    for (size_t i = 0; pos && i < ds->n; i++) pos[i] = -1;
    for (size_t d = 0; pos && d < ndocs; d++) pos[docrec[d]] = (long)d;
    for (size_t q = 0; pos && q < nq; q++) doc_of[q] = (size_t)pos[qrec[q]];
    free(pos);
    free(used);

    int rc = 0;
    uint16_t *docs = malloc(ndocs * (size_t)Rc * D * sizeof *docs);
    float *queries = malloc((nq ? nq : 1) * (size_t)Rq * D * sizeof *queries);
    float *buf = malloc((size_t)ME_EMBED_BATCH * Rc * D * sizeof *buf);
    const char **texts = malloc(ME_EMBED_BATCH * sizeof *texts);
    size_t *lens = malloc(ME_EMBED_BATCH * sizeof *lens);
    if (!docs || !queries || !buf || !texts || !lens) { rc = ME_ENOMEM; snprintf(err, errcap, "out of memory"); goto out; }
    me_ops_set_threads(o->threads);
    double t0 = now_s();
    for (size_t off = 0; off < ndocs && rc == 0; off += ME_EMBED_BATCH) {
        int b = (int)(ndocs - off < ME_EMBED_BATCH ? ndocs - off : ME_EMBED_BATCH);
        for (int i = 0; i < b; i++) {
            texts[i] = ds->recs[docrec[off + i]].text;
            lens[i] = ds->recs[docrec[off + i]].text_len;
        }
        rc = me_embedder_encode(e, ME_SIDE_DOC, texts, lens, b, buf);
        me_f32_to_f16_n(docs + off * (size_t)Rc * D, buf, (size_t)b * Rc * D);
        if (o->progress) o->progress(o->progress_ctx, "encode documents", off + (size_t)b, ndocs);
    }
    out->encode_docs_per_s = (double)ndocs / (now_s() - t0);
    t0 = now_s();
    for (size_t off = 0; off < nq && rc == 0; off += ME_EMBED_BATCH) {
        int b = (int)(nq - off < ME_EMBED_BATCH ? nq - off : ME_EMBED_BATCH);
        for (int i = 0; i < b; i++) {
            texts[i] = ds->recs[qrec[off + i]].query;
            lens[i] = ds->recs[qrec[off + i]].query_len;
        }
        rc = me_embedder_encode(e, ME_SIDE_QUERY, texts, lens, b, queries + off * (size_t)Rq * D);
    }
    out->encode_queries_per_s = (double)nq / (now_s() - t0);
    if (rc) { snprintf(err, errcap, "encoding failed: %s", me_strerror(rc)); goto out; }

    size_t *doc_group = malloc(ndocs * sizeof *doc_group);
    if (!doc_group) { rc = ME_ENOMEM; goto out; }
    for (size_t d = 0; d < ndocs; d++) doc_group[d] = d;
    rc = me_eval_score(docs, doc_group, ndocs, queries, doc_of, nq, Rq, Rc, D, o, out);
    if (rc == 0 && o->binary) rc = score_binary(docs, doc_group, ndocs, queries, doc_of, nq, Rq, Rc, D, o, out);
    free(doc_group);
    if (rc) goto out;
    if (o->progress) o->progress(o->progress_ctx, "BM25", 0, 1);
    if ((rc = bm25_row(ds, docrec, ndocs, qrec, nq, doc_of, &out->bm25)) != 0) goto out;
    out->has_bm25 = 1;
    if (o->progress) o->progress(o->progress_ctx, "BM25", 1, 1);
    out->docs = ndocs;
    out->queries = nq;
    out->seconds = now_s() - t_start;
out:
    free(qrec);
    free(docrec);
    free(doc_of);
    free(docs);
    free(queries);
    free(buf);
    free(texts);
    free(lens);
    return rc;
}
