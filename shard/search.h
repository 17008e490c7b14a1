/* The shard's search cascade over one collection, coarse to fine along the
 * MMR ladder (every prefix budget is a trained embedding):
 *
 *   stage 1 "coarse": MaxSim at (1, min(r_c, coarse_vectors)): the first
 *            query vector against the dense RAM copy of every document's
 *            first vectors (the (1,1) budget MMR trains) → top n1;
 *   stage 2 "refine": MaxSim at a middle budget, the largest trained one
 *            within (r_q/4, r_c/4) — (4,8) for (16,64), (2,4) for (8,16) —
 *            over the n1 survivors → top n2; skipped for smaller budgets,
 *            where it would not pay, or when n2 ≥ n1;
 *   stage 3 "rerank": MaxSim at (r_q, r_c) over the survivors → top k,
 *            from the RAM arena, or with the tail vectors fetched from
 *            RocksDB when r_c > ram_vectors.
 *   exact:   MaxSim at (r_q, r_c) over every document.
 *
 * The last stage and exact score a document with the same kernel on the
 * same bytes, so with n1, n2 ≥ N the cascade returns exactly what exact
 * returns. Ties rank by doc id ascending.
 *
 * Lexical mode ranks by BM25 of the query text over the collection's
 * index ("lexical" stage; documents sharing no word are not hits). Hybrid
 * mode takes the union of BM25's top n ("lexical") and the coarse stage's
 * top n ("coarse"), scores every candidate with MaxSim at (r_q, r_c)
 * ("rerank") and with BM25, and fuses the two (common/fusion.h, "fusion").
 * BM25's IDF and avgdl are this shard's own statistics.
 *
 * Coarse index (collection option coarse_index = ivf, shard/ivf.h): once
 * the collection's IVF index is built, stage 1 scores only the members of
 * the lists nearest the query's first vector ("probing": `probe` lists, or
 * nearest first until ME_IVF_SCAN_FACTOR documents per survivor), with the
 * same kernel and bytes as the flat scan; the stages after it are
 * unchanged. Exact mode never uses the index. With a filter, only members
 * it allows count; when the filter allows fewer documents than the probe
 * would scan, stage 1 scans those documents instead (exact for them).
 *
 * Binary tier (collection option binary_coarse, common/bits.h): stage 1
 * scores the first vectors' sign bits against the 4-bit-quantized query
 * (popcounts; D/8 bytes a document) instead of the dense copy, over every
 * document or what the IVF index probes; at budget (1,1) the n1 it keeps
 * are then scored with the stored first vectors ("rerank"), so every
 * answer's score is the model's.
 *
 * A filter (its bitmap in `allow`) first becomes the list of the slots it
 * allows ("filter" stage), and every stage above scans only those: the
 * coarse stage keeps its n1 among the matching documents, so whenever k
 * documents match, k come back, at any selectivity. At low selectivity
 * the scans shrink with it. The caller holds the collection's
 * read lock for the whole call and while reading the hit slots. */
#ifndef ME_SEARCH_H
#define ME_SEARCH_H

#include <stddef.h>
#include <stdint.h>

#include "common/topk.h"
#include "shard/collection.h"
#include "shard/storage.h"

/* Survivors of stages 1 and 2 when the request does not say, per shard:
 * measured on the real embeddings of the Debian corpus (docs/benchmarks.md,
 * "cascade vs exact"). */
#define ME_SEARCH_DEFAULT_CANDIDATES 1000
#define ME_SEARCH_DEFAULT_REFINE_CANDIDATES 400
#define ME_SEARCH_MAX_STAGES 6
/* Query vectors stage 1 uses (the coarsest trained budget). */
#define ME_SEARCH_COARSE_QUERY_VECTORS 1

typedef struct {
    const float *query;   /* [r_q, dim] f32 */
    int r_q, r_c;
    size_t k;
    size_t candidates;    /* n1, stage-1 survivors; 0 = default */
    size_t refine_candidates; /* n2, stage-2 survivors; 0 = default */
    int exact;
    uint64_t deadline_us; /* monotonic; 0 = none */
    int mode;             /* METAEMBED__SEARCH_MODE__*: 0 dense, 1 lexical, 2 hybrid */
    const char *text;     /* lexical, hybrid: the query's text */
    size_t hybrid_n;      /* hybrid: candidates per list; 0 = default */
    int weighted;         /* hybrid: weighted sum instead of RRF */
    float alpha;          /* weighted: the dense score's weight */
    int rrf_k;            /* RRF: 0 = ME_FUSION_RRF_K */
    int all_candidates;   /* hybrid: every fused candidate, not only k */
    const uint64_t *allow;/* a filter's bitmap over the slots (me_fields_eval); NULL: all */
    int anytime;          /* a deadline that would pass mid-cascade: the last finished stage's ranking
                           * (the first stage always finishes, past the deadline if need be) */
    uint64_t anytime_us;  /* anytime: the stages' own deadline (monotonic); 0 = deadline_us */
    int slowdown;         /* each stage's scoring done this many times (--slowdown); 0 = 1 */
    int probe;            /* IVF collections: lists the coarse stage scans; 0 = the collection's ivf_probe */
} me_search_params_t;

typedef struct {
    const char *name;
    int r_q, r_c;
    uint64_t in, out, micros;
} me_stage_t;

typedef struct {
    me_scored_t *hits;    /* best first; idx = slot */
    size_t nhits;
    float *dense, *lexical; /* [nhits] the component scores (lexical, hybrid; else NULL) */
    me_stage_t stages[ME_SEARCH_MAX_STAGES];
    int nstages;
    int degraded;         /* anytime: the ranking of an earlier stage, at budget (r_q, r_c) */
    int r_q, r_c;         /* the budget of the ranking returned */
} me_search_result_t;

/* Returns 0, ME_ETIMEDOUT past the deadline, ME_ENOMEM, ME_EIO/ME_ECORRUPT
 * when stored vectors cannot be read. err gets the detail. */
int me_search_run(me_coll_t *c, me_storage_t *st, const me_search_params_t *p,
                  me_search_result_t *out, char *err, size_t errcap);
void me_search_result_free(me_search_result_t *r);

#endif
