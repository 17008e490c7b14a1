/* libmetaembed: the C client of a metaembed node (a coordinator, or a shard
 * directly: both speak the same protocol).
 *
 * Every call returns a gRPC-style status code (0 = OK) and, when `st` is
 * not NULL, fills it with the code and a readable message. Transport
 * failures read as UNAVAILABLE (14) or DEADLINE_EXCEEDED (4).
 *
 * Thread safety: a me_client_t owns one ZeroMQ socket and is NOT
 * thread-safe; use one client per thread (connecting is cheap). Results
 * returned by a call are owned by the caller and freed with the matching
 * _free function. */
#ifndef ME_CLIENT_METAEMBED_H
#define ME_CLIENT_METAEMBED_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The release: every binary's --version, Health's version. */
#define ME_VERSION "0.1.0"

typedef struct me_client me_client_t;

typedef struct {
    int code;            /* 0 OK, else a gRPC status code */
    char message[512];
} me_status_t;

/* Status codes: gRPC's numbers, the same as the wire's StatusCode. The one
 * vocabulary of the whole project (the daemons use these names too). */
enum {
    ME_CODE_OK = 0, ME_CODE_CANCELLED = 1, ME_CODE_UNKNOWN = 2, ME_CODE_INVALID_ARGUMENT = 3,
    ME_CODE_DEADLINE_EXCEEDED = 4, ME_CODE_NOT_FOUND = 5, ME_CODE_ALREADY_EXISTS = 6,
    ME_CODE_PERMISSION_DENIED = 7, ME_CODE_RESOURCE_EXHAUSTED = 8, ME_CODE_FAILED_PRECONDITION = 9,
    ME_CODE_ABORTED = 10, ME_CODE_OUT_OF_RANGE = 11, ME_CODE_UNIMPLEMENTED = 12, ME_CODE_INTERNAL = 13,
    ME_CODE_UNAVAILABLE = 14, ME_CODE_DATA_LOSS = 15, ME_CODE_UNAUTHENTICATED = 16,
};

/* Connects to endpoint (e.g. "tcp://127.0.0.1:7600") and checks it answers
 * Health within timeout_ms. NULL on failure, with st saying why. */
me_client_t *me_client_connect(const char *endpoint, int timeout_ms, me_status_t *st);
/* The same over CurveZMQ (encrypted, authenticated), with the keys in
 * curve_dir as `metaembed keygen` makes them: the server's public key
 * server.pub and this client's key pair KEY_NAME.key (NULL: "client").
 * curve_dir NULL or "": a plain connection. A server that refuses the key
 * is reported as such, not as a timeout. */
me_client_t *me_client_connect_secure(const char *endpoint, int timeout_ms, const char *curve_dir,
                                      const char *key_name, me_status_t *st);
void me_client_close(me_client_t *c);
/* Per-call timeout (default 30 s); also sent as the request's deadline. */
void me_client_set_timeout(me_client_t *c, int timeout_ms);

typedef struct {
    const char *name;
    int dim;
    int max_doc_vectors;    /* 0 = 64 */
    int max_query_vectors;  /* 0 = 16 */
    const char *dtype;      /* "f32" | "f16" | "int8"; NULL = "f16" */
    int ram_vectors;        /* 0 = max_doc_vectors */
    int coarse_vectors;     /* 0 = 1 */
    const char *durability; /* when a write is acknowledged: "none" (WAL, not fsynced), "group"
                             * (fsynced, concurrent writes share one fsync), "every_write"; NULL:
                             * the shard's --sync (docs/cluster.md, "Durability") */
    const char *coarse_index; /* the cascade's stage 1: "flat" (every document's first vector) or "ivf"
                             * (k-means lists, trained in the background once a shard holds 2,048
                             * documents; flat until then; exact mode never uses it); NULL = "flat" */
    int ivf_lists;          /* ivf: lists (k-means centroids); 0 = 4·√N at each (re)training */
    int ivf_probe;          /* ivf: lists a search scans; 0 = adaptive */
    int binary_coarse;      /* stage 1 scans the first vectors' sign bits (D/8 bytes a document in RAM)
                             * instead of a dense f16 copy (2·D); later stages rescore with the stored
                             * vectors; needs coarse_vectors 1; 0 = off */
    const char *fields;     /* indexed payload fields for filters, NAME:TYPE,...
                             * ("section:keyword,year:integer,price:float,free:bool";
                             * a keyword field also takes arrays of strings); NULL: none */
} me_collection_spec_t;

/* Room for a collection's indexed fields in text form. */
#define ME_FIELDS_TEXT_MAX 2400

typedef struct {
    char name[65];
    int dim, max_doc_vectors, max_query_vectors, ram_vectors, coarse_vectors;
    char dtype[8];
    char coarse_index[8];   /* "flat" or "ivf" */
    int ivf_lists, ivf_probe; /* ivf: as created (0 = automatic, adaptive) */
    int binary_coarse;      /* 1: stage 1 scans sign bits (me_collection_spec_t) */
    uint64_t documents, ram_bytes, index_bytes;
    char fields[ME_FIELDS_TEXT_MAX];  /* indexed fields, NAME:TYPE,... ("" for none) */
} me_collection_info_t;

int me_client_create_collection(me_client_t *c, const me_collection_spec_t *spec, me_status_t *st);
int me_client_drop_collection(me_client_t *c, const char *name, me_status_t *st);
/* *out is malloc'd (free()); *n entries. */
int me_client_list_collections(me_client_t *c, me_collection_info_t **out, size_t *n, me_status_t *st);

/* Snapshots (point-in-time copies of every shard, one id across the
 * cluster; restore: docs/cluster.md). */
typedef struct {
    char id[65];
    uint64_t created_ms;     /* wall clock, ms since the epoch */
    uint64_t bytes;          /* over every replica */
    uint64_t documents;      /* over the groups */
    uint32_t replicas;       /* replicas holding it */
} me_snapshot_info_t;
/* id NULL or "": the coordinator names it; *out (may be NULL) gets it. */
int me_client_snapshot_create(me_client_t *c, const char *id, me_snapshot_info_t *out, me_status_t *st);
/* *out is malloc'd (free()); *n entries, by id. */
int me_client_snapshot_list(me_client_t *c, me_snapshot_info_t **out, size_t *n, me_status_t *st);
int me_client_snapshot_delete(me_client_t *c, const char *id, me_status_t *st);

/* Online resharding (docs/cluster.md, "Resharding"): where a move stands
 * at the coordinator asked. */
typedef struct {
    char phase[16];          /* stable, copy, switched, clean */
    uint32_t from_groups, to_groups;
    uint64_t epoch;          /* the placement's version */
    int running;             /* this coordinator drives a move now */
    uint64_t moved;          /* documents copied by this run */
    uint64_t estimate;       /* documents the copy moves (estimate) */
    uint64_t purged;         /* removed from groups that no longer own them */
    double progress;         /* 0..1 of the copy */
    double docs_per_s;
    uint64_t eta_ms, elapsed_ms;
    char error[256];         /* why the last run stopped, if it failed */
    char waiting[256];       /* what it waits for now, if anything */
} me_reshard_info_t;
/* Starts (or resumes) a move of the placement to `groups` shard groups, at
 * most max_rate documents/s (0: no limit); returns at once with *out. */
int me_client_reshard_start(me_client_t *c, uint32_t groups, uint32_t max_rate, me_reshard_info_t *out,
                            me_status_t *st);
int me_client_reshard_status(me_client_t *c, me_reshard_info_t *out, me_status_t *st);

typedef struct {
    const char *id;
    const void *vectors;    /* rows × dim, row-major */
    int rows;
    int f16;                /* vectors are IEEE f16 (uint16) instead of f32 */
    const void *metadata;   /* optional opaque bytes */
    size_t metadata_len;
} me_doc_t;

/* Writes a batch atomically (all or nothing). Duplicate ids: last wins. */
int me_client_upsert(me_client_t *c, const char *collection, const me_doc_t *docs, size_t n,
                     int dim, me_status_t *st);
int me_client_delete(me_client_t *c, const char *collection, const char *const *ids, size_t n,
                     uint32_t *deleted, me_status_t *st);

/* Filters: which documents may answer, written as an expression
 *     section=games AND (year>=2020 OR tags IN (new, hot)) AND NOT free=true
 * (operators = != < <= > >= IN, NOT IN, EXISTS; AND binds tighter than OR;
 * quote keywords with blanks: title='big fish') or as JSON
 *     {"must": [{"field": "section", "match": "games"},
 *               {"field": "year", "range": {"gte": 2020}}]}
 * over the collection's indexed fields (docs/protocol.md). A filter that
 * does not parse is INVALID_ARGUMENT before anything is sent. */

/* Deletes every document the filter matches. */
int me_client_delete_where(me_client_t *c, const char *collection, const char *filter, uint32_t *deleted,
                           me_status_t *st);
/* How many documents the filter matches (NULL or "": all of them). */
int me_client_count(me_client_t *c, const char *collection, const char *filter, uint64_t *count, me_status_t *st);
/* Adds indexed fields ("NAME:TYPE,...") to a collection, indexing the
 * documents it holds; *indexed (may be NULL) = documents with a value. */
int me_client_index_fields(me_client_t *c, const char *collection, const char *fields, uint64_t *indexed,
                           me_status_t *st);

typedef struct {
    char *id;
    float *vectors;         /* rows × dim f32 (NULL unless asked) */
    int rows, dim;
    void *metadata;
    size_t metadata_len;
} me_record_t;

/* Found documents in request order; missing ids are left out (*n < n_ids). */
int me_client_get(me_client_t *c, const char *collection, const char *const *ids, size_t n_ids,
                  int with_vectors, me_record_t **out, size_t *n, me_status_t *st);
void me_records_free(me_record_t *r, size_t n);

/* A page of document ids in ascending byte order, strictly after `after`
 * (NULL or "": from the first), at most `limit` (0: 1000; at most 10000):
 * *ids (me_ids_free) holds *n of them, *next_after (malloc'd, free()) the
 * cursor for the next page, NULL when the end was reached. */
int me_client_list_ids(me_client_t *c, const char *collection, const char *after, uint32_t limit, char ***ids,
                       size_t *n, char **next_after, me_status_t *st);
/* The same over the documents a filter matches (NULL or "": all). */
int me_client_list_ids_where(me_client_t *c, const char *collection, const char *filter, const char *after,
                             uint32_t limit, char ***ids, size_t *n, char **next_after, me_status_t *st);
void me_ids_free(char **ids, size_t n);

typedef struct {
    int r_q, r_c;            /* budget; 0 = all query rows / R_c */
    uint32_t k;
    uint32_t candidates;     /* stage-1 survivors per shard; 0 = server default */
    uint32_t refine_candidates; /* stage-2 survivors per shard; 0 = server default */
    int exact;               /* score every document at the budget */
    int with_metadata;
    int all_or_nothing;      /* fail instead of a partial answer */
    uint32_t offset;         /* skip the first offset hits (paging); shards bound k + offset */
    int mode;                /* ME_MODE_DENSE (0), ME_MODE_LEXICAL (BM25), ME_MODE_HYBRID */
    const char *lexical_text;/* BM25's query text; NULL: the text query's own */
    uint32_t hybrid_candidates; /* hybrid: n from BM25 and n from the coarse stage; 0 = 100 */
    uint32_t probe;          /* ivf collections: lists the coarse stage scans; 0 = the collection's ivf_probe */
    int fusion;              /* hybrid: ME_FUSION_RRF (0) or ME_FUSION_WEIGHTED */
    int has_alpha;           /* alpha given (else 0.5) */
    float alpha;             /* weighted: the dense score's weight, [0, 1] */
    uint32_t rrf_k;          /* RRF's k; 0 = 60 */
    const char *filter;      /* only documents it matches (see Filters above); NULL: all */
    uint32_t target_ms;      /* budget "auto" (coordinator): the largest trained budget predicted to
                              * answer within this many ms, r_q/r_c (when given) its ceiling */
    int min_r_q, min_r_c;    /* with target_ms: never below this budget; 0 = (1,1) */
    int anytime;             /* a deadline that would pass mid-cascade gets the last finished stage's
                              * ranking (degraded) instead of DEADLINE_EXCEEDED; on with target_ms */
} me_search_opts_t;

/* Search modes and fusions (the wire's numbers). */
#define ME_MODE_DENSE 0
#define ME_MODE_LEXICAL 1
#define ME_MODE_HYBRID 2
#define ME_FUSION_RRF 0
#define ME_FUSION_WEIGHTED 1

typedef struct {
    char *id;
    float score;             /* hybrid: the fused score */
    float dense_score;       /* hybrid: MaxSim at the budget */
    float lexical_score;     /* lexical, hybrid: BM25 (the shard's statistics) */
    void *metadata;
    size_t metadata_len;
} me_hit_t;

typedef struct {
    char stage[16];
    int r_q, r_c;
    uint64_t in, out, micros;
} me_stage_info_t;

typedef struct {
    me_hit_t *hits;
    size_t n;
    int r_q, r_c;            /* budget used */
    uint64_t documents;      /* documents searched */
    int partial;
    char **missing_groups;
    size_t n_missing;
    me_stage_info_t stages[8];
    int n_stages;
    int degraded;            /* anytime: an earlier stage's ranking, at the budget in r_q, r_c */
    double predicted_ms;     /* target_ms: the latency predicted for the budget chosen */
    char budget_reason[200]; /* target_ms: why this budget */
} me_results_t;

/* query: rows × dim f32 (NULL in lexical mode: BM25 needs no vectors). */
int me_client_search(me_client_t *c, const char *collection, const float *query, int rows, int dim,
                     const me_search_opts_t *opts, me_results_t *out, me_status_t *st);
/* A text query, turned into query vectors by one of the cluster's encoder
 * nodes (coordinator only). */
int me_client_search_text(me_client_t *c, const char *collection, const char *text, const me_search_opts_t *opts,
                          me_results_t *out, me_status_t *st);
/* An image query (PNG or JPEG bytes, with an optional text after it),
 * encoded by one of the cluster's encoders running an image model
 * (coordinator only). */
int me_client_search_image(me_client_t *c, const char *collection, const void *image, size_t len, const char *text,
                           const me_search_opts_t *o, me_results_t *out, me_status_t *st);
void me_results_free(me_results_t *r);

int me_client_health(me_client_t *c, me_status_t *st);

/* Asks an encoder for the embeddings of n texts: *vectors (malloc'd,
 * n × *rows × *dim f32) on the query side (16 rows) or document side (64). */
int me_client_encode(me_client_t *c, const char *const *texts, size_t n, int query_side, float **vectors,
                     int *rows, int *dim, me_status_t *st);

typedef struct {
    char endpoint[128];
    int up;
    uint64_t documents;
    double latency_ms;
    int liveness;
} me_replica_info_t;

typedef struct {
    char name[64];
    me_replica_info_t *replicas;
    size_t n_replicas;
} me_group_info_t;

typedef struct {
    char role[16];                    /* "shard" or "coordinator" */
    uint64_t uptime_ms, requests, errors, disk_bytes;
    me_collection_info_t *collections;
    size_t n_collections;
    me_group_info_t *groups;          /* coordinator only */
    size_t n_groups;
} me_stats_t;

/* collection NULL or "" = all. Free with me_stats_free. */
int me_client_stats(me_client_t *c, const char *collection, me_stats_t *out, me_status_t *st);
void me_stats_free(me_stats_t *s);

/* Sends a raw payload under `method` (proto Method number) and returns the
 * reply status; for tools and tests that speak the protocol directly. The
 * reply payload (if any) is returned malloc'd in *reply. */
int me_client_call(me_client_t *c, int method, const void *payload, size_t len,
                   void **reply, size_t *reply_len, me_status_t *st);

const char *me_code_name(int code);

#ifdef __cplusplus
}
#endif
#endif
