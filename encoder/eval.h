/* Retrieval evaluation with the protocol of shared/data/README.md: the
 * corpus is every record's text (all splits), the queries are the chosen
 * split's synopses, and a query's one relevant document is the record with
 * its id. For each budget (r_q, r_c): Recall@1, MRR@10, Recall@10, the
 * index bytes per document (r_c · D · 2, f16 as the shard stores them), and
 * the documents/s of encoding. Scores are exact MaxSim (common/maxsim.c) over
 * the f16 document vectors, the same arithmetic as a shard's exact mode. */
#ifndef ME_EVAL_H
#define ME_EVAL_H

#include <stdint.h>

#include "encoder/dataset.h"
#include "encoder/embedder.h"
#include "encoder/mmr.h"

typedef struct {
    int r_q, r_c;
    double recall1, mrr10, recall10;
    uint64_t index_bytes_per_doc;
} me_eval_row_t;

typedef struct {
    int nrows;
    me_eval_row_t rows[ME_MMR_MAX_GROUPS];
    size_t docs, queries;
    double encode_docs_per_s, encode_queries_per_s;
    double seconds;
    /* BM25 (k1 0.9, b 0.4) on the same corpus and queries, computed in the
     * same run (me_eval_run; not me_eval_score). */
    me_eval_row_t bm25;
    int has_bm25;
    /* With opts.binary: the same budgets over 1-bit document vectors (the
     * sign of each dimension; scored asymmetrically, the f32 query against
     * ±1/√D), index bytes r_c · D / 8: what a binary tier would cost in
     * quality. */
    int nbinary;
    me_eval_row_t binary[ME_MMR_MAX_GROUPS];
} me_eval_result_t;

typedef struct {
    me_split_t split;            /* whose queries (default: test) */
    size_t max_docs;             /* 0 = the whole corpus; else a prefix that keeps every query's answer */
    size_t max_queries;          /* 0 = all */
    int threads;
    me_mmr_group_t budgets[ME_MMR_MAX_GROUPS];
    int nbudgets;
    int binary;                  /* also score 1-bit document vectors (me_eval_result_t.binary) */
    /* Progress callback (may be NULL): phase name, done, total. */
    void (*progress)(void *ctx, const char *phase, size_t done, size_t total);
    void *progress_ctx;
} me_eval_opts_t;

void me_eval_defaults(me_eval_opts_t *o);
/* Exact MaxSim of every query (nq, Rq, D) against every f16 document
 * (ndocs, Rc, D) at each budget of o: a document is relevant to a query
 * when doc_group[d] == q_group[q]; MRR@10 counts the first relevant hit,
 * Recall@10 any. Fills out->rows and out->nrows. */
int me_eval_score(const uint16_t *docs, const size_t *doc_group, size_t ndocs, const float *queries,
                  const size_t *q_group, size_t nq, int Rq, int Rc, int D, const me_eval_opts_t *o,
                  me_eval_result_t *out);
int me_eval_run(me_embedder_t *e, const me_dataset_t *ds, const me_eval_opts_t *o, me_eval_result_t *out,
                char *err, size_t errcap);

#endif
