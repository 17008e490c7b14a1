/* `metaembed train`, `encode` and `eval`: the encoder model from the
 * command line (encoder/trainjob.c, embedder.c, eval.c do the work). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/dtype.h"
#include "common/error.h"
#include "common/jsonl.h"
#include "common/npy.h"
#include "common/progress.h"
#include "common/validate.h"
#include "common/wire.h"
#include "encoder/dataset.h"
#include "encoder/embedder.h"
#include "encoder/eval.h"
#include "encoder/ops.h"
#include "common/image.h"
#include "encoder/eval_images.h"
#include "encoder/imageset.h"
#include "encoder/trainjob.h"

#define DEFAULT_MODEL ME_DEFAULT_MODEL

/* ---- train ---- */

typedef struct {
    char data[ME_CFG_STR_MAX], out[ME_CFG_STR_MAX], groups[ME_CFG_STR_MAX], init[ME_CFG_STR_MAX];
    long long steps, batch, vocab, layers, width, heads, dim, max_text, meta_q, meta_c, warmup, threads, seed;
    long long checkpoint_every, max_examples, image_size, patch, image_shift;
    char lr[ME_CFG_STR_MAX], tau[ME_CFG_STR_MAX], score[ME_CFG_STR_MAX], negatives[ME_CFG_STR_MAX];
    int resume, random_negatives;
} train_opts_t;

#define T_OPT(name, type, field, def, lo, hi, help) \
    { name, type, offsetof(train_opts_t, field), def, lo, hi, NULL, help }
#define T_ENUM(name, field, def, choices, help) \
    { name, ME_CFG_ENUM, offsetof(train_opts_t, field), def, 0, 0, choices, help }

static const me_cfg_opt_t train_table[] = {
    T_OPT("data", ME_CFG_STRING, data, "", 0, 0,
          "training data: text pairs (.jsonl[.gz]), or an image-text set (a folder with emoji.jsonl, or a .jsonl "
          "of id, split, label/text, images/image); default: the shared Debian data"),
    T_OPT("out", ME_CFG_STRING, out, DEFAULT_MODEL, 0, 0, "model file to write"),
    T_OPT("steps", ME_CFG_INT, steps, "5500", 1, 100000000, "optimiser steps"),
    T_OPT("batch", ME_CFG_INT, batch, "32", 2, 4096, "queries per step (each with a positive and a hard negative)"),
    T_OPT("lr", ME_CFG_STRING, lr, "1e-3", 0, 0, "peak learning rate (warm-up, then cosine decay to a tenth)"),
    T_OPT("warmup", ME_CFG_INT, warmup, "100", 1, 1000000, "warm-up steps"),
    T_OPT("tau", ME_CFG_STRING, tau, "0.03", 0, 0, "InfoNCE temperature"),
    T_ENUM("score", score, "sum", "sum|mean",
           "a group's logit: its MaxSim sum over the r_q query vectors / tau, or their mean / tau (one "
           "temperature for every budget; rankings are the same)"),
    T_OPT("groups", ME_CFG_STRING, groups, "1x1,2x4,4x8,8x16,16x64", 0, 0,
          "MMR groups RQxRC[:WEIGHT],... (e.g. 16x64 alone for the no-MMR baseline)"),
    T_OPT("vocab", ME_CFG_INT, vocab, "8192", 260, 65536, "tokenizer vocabulary"),
    T_OPT("layers", ME_CFG_INT, layers, "3", 1, 64, "transformer layers"),
    T_OPT("width", ME_CFG_INT, width, "192", 8, 8192, "model width C"),
    T_OPT("heads", ME_CFG_INT, heads, "4", 1, 256, "attention heads"),
    T_OPT("dim", ME_CFG_INT, dim, "128", 1, 8192, "embedding dimension D"),
    T_OPT("max-text", ME_CFG_INT, max_text, "96", 8, 4096, "tokens kept per document (longer ones are truncated)"),
    T_OPT("meta-q", ME_CFG_INT, meta_q, "16", 1, 1024, "query meta tokens R_q"),
    T_OPT("meta-c", ME_CFG_INT, meta_c, "64", 1, 1024, "candidate meta tokens R_c"),
    T_OPT("image-size", ME_CFG_INT, image_size, "0", 0, 512,
          "side S images are resized to (S x S RGB); 0 = text only, or 32 when --data holds images"),
    T_OPT("patch", ME_CFG_INT, patch, "8", 1, 64, "patch side P (S % P == 0): (S/P)^2 image tokens"),
    T_OPT("image-shift", ME_CFG_INT, image_shift, "2", 0, 64,
          "augmentation: shift each training image by up to this many pixels (0 = off)"),
    T_ENUM("negatives", negatives, "heuristic", "heuristic|bm25",
           "text pairs: each query's hard negative shares the positive's first paragraph or name stem, or is "
           "one of the texts BM25 ranks highest for the query"),
    T_OPT("random-negatives", ME_CFG_BOOL, random_negatives, "false", 0, 1,
          "each query's extra negative is a random train example instead of a hard one"),
    T_OPT("threads", ME_CFG_INT, threads, "0", 0, 256, "threads (0 = every core)"),
    T_OPT("seed", ME_CFG_INT, seed, "1234", 0, 1LL << 62, "seed for init, data order and negatives"),
    T_OPT("checkpoint-every", ME_CFG_INT, checkpoint_every, "250", 0, 100000000, "steps between checkpoints (OUT.ckpt)"),
    T_OPT("init", ME_CFG_STRING, init, "", 0, 0,
          "start from this model file (its weights, tokenizer and shape; the shape options are then ignored) "
          "instead of a new model"),
    T_OPT("resume", ME_CFG_BOOL, resume, "false", 0, 1, "continue from OUT.ckpt when it exists"),
    T_OPT("max-examples", ME_CFG_INT, max_examples, "0", 0, 100000000, "use only the first N train records (0 = all)"),
    { NULL, 0, 0, NULL, 0, 0, NULL, NULL },
};

static const cli_cmd_t train_cmd = {
    "train", "[--data FILE] [--out MODEL] [--steps N] [options]",
    "Trains the MetaEmbed encoder with the Matryoshka Multi-Vector (MMR) loss on the train split "
    "(never on dev or test): learns the tokenizer, then runs AdamW over (query, description, hard "
    "negative) triples, printing each group's loss, examples/s and the ETA, checkpointing to OUT.ckpt.",
    train_table, 0, 1,
};

/* "1x1,2x4:0.5,..." → groups. */
static int parse_groups(const char *s, me_mmr_group_t *g, int *n) {
    *n = 0;
    while (*s) {
        int rq, rc, used = 0;
        float w = 1;
        if (sscanf(s, "%dx%d%n", &rq, &rc, &used) != 2) return ME_EINVAL;
        s += used;
        if (*s == ':') {
            char *end;
            w = strtof(s + 1, &end);
            if (end == s + 1) return ME_EINVAL;
            s = end;
        }
        if (*n == ME_MMR_MAX_GROUPS || rq < 1 || rc < 1 || !(w > 0)) return ME_EINVAL;
        g[(*n)++] = (me_mmr_group_t){ rq, rc, w };
        if (*s == ',') s++;
        else if (*s) return ME_EINVAL;
    }
    return *n ? 0 : ME_EINVAL;
}

static int locate_data(cli_t *c, const char *given, char *out, size_t cap) {
    if (given[0]) {
        snprintf(out, cap, "%s", given);
        return 0;
    }
    if (me_dataset_locate(NULL, out, cap) != 0)
        return cli_error(c, CLI_FAIL, "no training data found at %s; pass --data FILE or set METAEMBED_DATA", out);
    return 0;
}

int cli_cmd_train(cli_t *c, int argc, char **argv) {
    train_opts_t o;
    char err[512];
    me_config_defaults(train_table, &o, err, sizeof err);
    int rc = cli_parse(c, &train_cmd, &o, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? CLI_OK : rc;
    me_trainjob_t j;
    me_trainjob_defaults(&j);
    if (locate_data(c, o.data, j.data, sizeof j.data)) return CLI_FAIL;
    snprintf(j.out, sizeof j.out, "%s", o.out);
    j.resume = o.resume;
    snprintf(j.init, sizeof j.init, "%s", o.init);
    if (o.init[0] && access(o.init, R_OK) != 0)
        return cli_error(c, CLI_USAGE, "--init %s: cannot read it (%s)", o.init, strerror(errno));
    j.checkpoint_every = o.checkpoint_every;
    j.vocab = (int)o.vocab;
    j.max_examples = o.max_examples;
    j.model = (me_model_config_t){ 0, (int)o.max_text, (int)o.layers, (int)o.width, (int)o.heads, (int)o.dim,
                                   (int)o.meta_q, (int)o.meta_c, 0, 0 };
    if (me_imageset_is(j.data)) {
        j.model.image_size = o.image_size ? (int)o.image_size : 32;
        j.model.patch = (int)o.patch;
        j.train.image_shift = (int)o.image_shift;
    } else if (o.image_size) {
        return cli_error(c, CLI_USAGE, "--image-size needs an image-text set in --data (%s holds text pairs)", j.data);
    }
    j.train.steps = o.steps;
    j.train.batch = (int)o.batch;
    j.train.warmup = (int)o.warmup;
    j.train.threads = (int)o.threads;
    j.train.seed = (uint64_t)o.seed;
    char *end;
    j.train.lr = strtof(o.lr, &end);
    if (*end || !(j.train.lr > 0)) return cli_usage_error(c, "--lr '%s' is not a positive number", o.lr);
    j.train.lr_floor = j.train.lr / 10;
    j.train.tau = strtof(o.tau, &end);
    if (*end || !(j.train.tau > 0)) return cli_usage_error(c, "--tau '%s' is not a positive number", o.tau);
    j.train.score_mean = strcmp(o.score, "mean") == 0;
    j.train.random_negatives = o.random_negatives;
    j.bm25_negatives = strcmp(o.negatives, "bm25") == 0;
    if (parse_groups(o.groups, j.train.groups, &j.train.ngroups) != 0)
        return cli_usage_error(c, "--groups '%s': expected RQxRC[:WEIGHT],... with positive values", o.groups);
    for (int g = 0; g < j.train.ngroups; g++)
        if (!o.init[0] && (j.train.groups[g].rq > o.meta_q || j.train.groups[g].rc > o.meta_c))
            return cli_usage_error(c, "--groups: %dx%d exceeds the meta tokens (%lld, %lld)", j.train.groups[g].rq,
                                   j.train.groups[g].rc, o.meta_q, o.meta_c);
    j.log = stderr;
    j.progress_bar = 0;  /* the log lines already carry the progress */
    if ((rc = me_trainjob_run(&j, err, sizeof err)) != 0) return cli_error(c, CLI_FAIL, "%s", err);
    if (c->g.json) {
        me_json_writer_t w;
        cli_json_begin(&w, stdout);
        me_json_put_str(&w, "model", j.out);
        me_json_put_int(&w, "steps", j.train.steps);
        cli_json_end(&w);
    } else {
        printf("trained %s\n", j.out);
    }
    return CLI_OK;
}

/* ---- encode ---- */

typedef struct {
    char model[ME_CFG_STR_MAX], input[ME_CFG_STR_MAX], out[ME_CFG_STR_MAX], side[ME_CFG_STR_MAX];
    char field[ME_CFG_STR_MAX], ids[ME_CFG_STR_MAX];
    long long threads;
    int f32;
} encode_opts_t;

#define E_OPT(name, type, field, def, lo, hi, choices, help) \
    { name, type, offsetof(encode_opts_t, field), def, lo, hi, choices, help }

static const me_cfg_opt_t encode_table[] = {
    E_OPT("model", ME_CFG_STRING, model, DEFAULT_MODEL, 0, 0, NULL, "model file"),
    E_OPT("input", ME_CFG_STRING, input, "", 0, 0, NULL, "JSON lines (.jsonl or .jsonl.gz), one object per line"),
    E_OPT("field", ME_CFG_STRING, field, "", 0, 0, NULL, "the member holding the text (default: text, or query with --side query)"),
    E_OPT("side", ME_CFG_ENUM, side, "doc", 0, 0, "doc|query", "candidate (64 vectors) or query (16) side"),
    E_OPT("out", ME_CFG_STRING, out, "", 0, 0, NULL, "output .npy [N, R, D] (float16 unless --f32)"),
    E_OPT("ids", ME_CFG_STRING, ids, "", 0, 0, NULL, "also write the ids (member \"id\"), one per line"),
    E_OPT("f32", ME_CFG_BOOL, f32, "false", 0, 1, NULL, "write float32 instead of float16"),
    E_OPT("threads", ME_CFG_INT, threads, "0", 0, 256, NULL, "threads (0 = every core)"),
    { NULL, 0, 0, NULL, 0, 0, NULL, NULL },
};

static const cli_cmd_t encode_cmd = {
    "encode", "--input items.jsonl --out emb.npy [--side doc|query] [--ids ids.txt]",
    "Encodes texts with the model into nested multi-vector embeddings, written as a NumPy array "
    "[N, R, D] that 'metaembed ingest --vectors' accepts (with --ids for its --ids).",
    encode_table, 0, 1,
};

int cli_cmd_encode(cli_t *c, int argc, char **argv) {
    encode_opts_t o;
    char err[512];
    me_config_defaults(encode_table, &o, err, sizeof err);
    int rc = cli_parse(c, &encode_cmd, &o, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if (!o.input[0] || !o.out[0]) return cli_usage_error(c, "needs --input FILE and --out FILE.npy");
    me_side_t side = !strcmp(o.side, "query") ? ME_SIDE_QUERY : ME_SIDE_DOC;
    const char *field = o.field[0] ? o.field : side == ME_SIDE_QUERY ? "query" : "text";
    me_embedder_t *e;
    if (me_embedder_load(o.model, &e, err, sizeof err) != 0) return cli_error(c, CLI_FAIL, "%s", err);
    me_ops_set_threads((int)o.threads);
    /* Reads the lines with the dataset loader's gzip-aware reader. */
    FILE *ids_out = NULL;
    float *vec = NULL;
    uint16_t *half = NULL;
    char **texts = NULL;
    size_t *lens = NULL;
    size_t n = 0, cap = 0;
    rc = CLI_OK;
    me_jsonl_t *in = NULL;
    if (me_jsonl_open(o.input, &in, err, sizeof err) != 0) { rc = cli_error(c, CLI_FAIL, "%s", err); goto out; }
    if (o.ids[0] && !(ids_out = fopen(o.ids, "w"))) { rc = cli_error(c, CLI_FAIL, "cannot write %s", o.ids); goto out; }
    const me_json_t *obj;
    long line;
    while ((rc = me_jsonl_next(in, &obj, &line, err, sizeof err)) == 1) {
        const char *text = me_json_str(me_json_get(obj, field));
        if (!text) { rc = cli_error(c, CLI_FAIL, "%s:%ld: no string member \"%s\"", o.input, line, field); goto out; }
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            texts = realloc(texts, cap * sizeof *texts);
            lens = realloc(lens, cap * sizeof *lens);
        }
        lens[n] = me_json_get(obj, field)->len;
        texts[n] = malloc(lens[n] + 1);
        memcpy(texts[n], text, lens[n] + 1);
        n++;
        if (ids_out) {
            const char *id = me_json_str(me_json_get(obj, "id"));
            if (!id) { rc = cli_error(c, CLI_FAIL, "%s:%ld: no string member \"id\" (needed for --ids)", o.input, line); goto out; }
            fprintf(ids_out, "%s\n", id);
        }
    }
    if (rc < 0) { rc = cli_error(c, CLI_FAIL, "%s", err); goto out; }
    int R = me_embedder_rows(e, side), D = me_embedder_config(e)->dim;
    vec = malloc((n ? n : 1) * (size_t)R * D * sizeof *vec);
    if (!vec) { rc = cli_error(c, CLI_FAIL, "out of memory for %zu embeddings", n); goto out; }
    me_progress_t bar;
    me_progress_init(&bar, "encode", "texts", n, -1);
    for (size_t off = 0; off < n; off += 256) {
        int b = (int)(n - off < 256 ? n - off : 256);
        me_embedder_encode(e, side, (const char *const *)texts + off, lens + off, b, vec + off * (size_t)R * D);
        me_progress_update(&bar, off + (size_t)b);
    }
    me_progress_finish(&bar);
    uint64_t shape[3] = { n, (uint64_t)R, (uint64_t)D };
    if (o.f32) rc = me_npy_write(o.out, ME_DTYPE_F32, shape, 3, vec, 1, err, sizeof err);
    else {
        half = malloc((n ? n : 1) * (size_t)R * D * sizeof *half);
        me_f32_to_f16_n(half, vec, n * (size_t)R * D);
        rc = me_npy_write(o.out, ME_DTYPE_F16, shape, 3, half, 1, err, sizeof err);
    }
    if (rc) { rc = cli_error(c, CLI_FAIL, "%s", err); goto out; }
    if (c->g.json) {
        me_json_writer_t w;
        cli_json_begin(&w, stdout);
        me_json_put_str(&w, "out", o.out);
        me_json_put_u64(&w, "texts", n);
        me_json_put_int(&w, "rows", R);
        me_json_put_int(&w, "dim", D);
        me_json_put_num(&w, "texts_per_s", n / (me_progress_elapsed(&bar) > 0 ? me_progress_elapsed(&bar) : 1));
        cli_json_end(&w);
    } else {
        printf("wrote %s: %zu texts x %d vectors x %d (%s)\n", o.out, n, R, D, o.f32 ? "float32" : "float16");
        me_progress_summary(&bar, stdout, "encoded");
    }
    rc = CLI_OK;
out:
    if (ids_out) fclose(ids_out);
    me_jsonl_close(in);
    for (size_t i = 0; i < n; i++) free(texts[i]);
    free(texts);
    free(lens);
    free(vec);
    free(half);
    me_embedder_free(e);
    return rc;
}

/* ---- eval ---- */

typedef struct {
    char model[ME_CFG_STR_MAX], data[ME_CFG_STR_MAX], split[ME_CFG_STR_MAX], plot[ME_CFG_STR_MAX];
    char collection[ME_CFG_STR_MAX], text_collection[ME_CFG_STR_MAX];
    char mode[ME_CFG_STR_MAX], fusion[ME_CFG_STR_MAX], alpha[ME_CFG_STR_MAX], coarse_index[ME_CFG_STR_MAX];
    long long max_docs, max_queries, threads, candidates, refine_candidates, hybrid_candidates, probe;
    int cluster, exact, compare_exact, binary;
} eval_opts_t;

#define V_OPT(name, type, field, def, lo, hi, choices, help) \
    { name, type, offsetof(eval_opts_t, field), def, lo, hi, choices, help }

static const me_cfg_opt_t eval_table[] = {
    V_OPT("model", ME_CFG_STRING, model, DEFAULT_MODEL, 0, 0, NULL, "model file"),
    V_OPT("data", ME_CFG_STRING, data, "", 0, 0, NULL, "evaluation data; default: the shared Debian data"),
    V_OPT("split", ME_CFG_ENUM, split, "test", 0, 0, "test|dev|train", "whose synopses are the queries"),
    V_OPT("max-docs", ME_CFG_INT, max_docs, "0", 0, 100000000, NULL, "corpus size cap (0 = every text; the answers always stay in)"),
    V_OPT("max-queries", ME_CFG_INT, max_queries, "0", 0, 100000000, NULL, "query cap (0 = all of the split)"),
    V_OPT("plot", ME_CFG_STRING, plot, "", 0, 0, NULL, "also write an SVG plot of quality against budget"),
    V_OPT("threads", ME_CFG_INT, threads, "0", 0, 256, NULL, "threads (0 = every core)"),
    V_OPT("binary", ME_CFG_BOOL, binary, "false", 0, 1, NULL,
          "also score 1-bit document vectors (each dimension's sign; the f32 query against them) at every budget: "
          "the quality a binary tier would keep, at r_c x D / 8 bytes a document"),
    V_OPT("cluster", ME_CFG_BOOL, cluster, "false", 0, 1, NULL,
          "measure through the running cluster at --addr instead: text searches of the split's queries "
          "against --collection (ingested from the same data), with latency per budget"),
    V_OPT("collection", ME_CFG_STRING, collection, "debian", 0, 0, NULL, "with --cluster: the collection"),
    V_OPT("text-collection", ME_CFG_STRING, text_collection, "emoji-text", 0, 0, NULL,
          "with --cluster on an image-text set: the collection of concept texts (ids = concept ids) that image "
          "queries search; --collection then holds the images (ids ID-STYLE)"),
    V_OPT("exact", ME_CFG_BOOL, exact, "false", 0, 1, NULL, "with --cluster: exact search instead of the cascade"),
    V_OPT("candidates", ME_CFG_INT, candidates, "0", 0, 100000000, NULL, "with --cluster: stage-1 candidates per shard (0 = default)"),
    V_OPT("refine-candidates", ME_CFG_INT, refine_candidates, "0", 0, 100000000, NULL,
          "with --cluster: stage-2 candidates per shard (0 = default)"),
    V_OPT("coarse-index", ME_CFG_ENUM, coarse_index, "any", 0, 0, "any|" ME_COARSE_INDEX_CHOICES,
          "with --cluster: the coarse index the collection must have (made by 'collection create --coarse-index'; "
          "ivf is trained once a shard holds 2,048 documents, flat scan until then); any: whichever it has"),
    V_OPT("probe", ME_CFG_INT, probe, "0", 0, 65536, NULL,
          "with --cluster on an ivf collection: lists the coarse stage scans per search (0 = the collection's "
          "ivf_probe)"),
    V_OPT("compare-exact", ME_CFG_BOOL, compare_exact, "false", 0, 1, NULL,
          "with --cluster: also run every query in exact mode and report the share of exact's top 10 the "
          "cascade returns and the search-time speedup (the fan-out stage, encoding excluded)"),
    V_OPT("mode", ME_CFG_ENUM, mode, "dense", 0, 0, "dense|lexical|hybrid",
          "with --cluster: dense (MaxSim), lexical (the shards' BM25 of the query text; one row, no budget) or "
          "hybrid (both, fused)"),
    V_OPT("fusion", ME_CFG_ENUM, fusion, "rrf", 0, 0, "rrf|weighted", "with --cluster --mode hybrid: the fusion"),
    V_OPT("alpha", ME_CFG_STRING, alpha, "", 0, 0, NULL,
          "with --cluster --mode hybrid --fusion weighted: the dense score's weight in [0, 1] [default: 0.5]"),
    V_OPT("hybrid-candidates", ME_CFG_INT, hybrid_candidates, "0", 0, 10000, NULL,
          "with --cluster --mode hybrid: n from BM25 and n from the coarse stage per shard (0 = 100)"),
    { NULL, 0, 0, NULL, 0, 0, NULL, NULL },
};

static const cli_cmd_t eval_cmd = {
    "eval", "[--model MODEL] [--split test] [--plot quality.svg]",
    "Evaluates the model with the data's protocol: the corpus is every text (all splits), the queries "
    "the split's synopses. Prints Recall@1, MRR@10, Recall@10 and index bytes per document at every "
    "MMR budget, and the encoder's documents/s.",
    eval_table, 0, 0,
};

static void eval_progress(void *ctx, const char *phase, size_t done, size_t total) {
    me_progress_t *bar = ctx;
    if (bar->label != phase) {
        me_progress_finish(bar);
        me_progress_init(bar, phase, "items", total, -1);
    }
    me_progress_update(bar, done);
}

/* A small SVG: MRR@10 and Recall@10 against the budget, BM25 as a line. */
static int write_plot(const char *path, const me_eval_result_t *r) {
    FILE *f = fopen(path, "w");
    if (!f) return ME_EIO;
    int W = 640, H = 400, L = 60, R = 20, T = 40, B = 60;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" "
               "font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n", W, H);
    fprintf(f, "<text x=\"%d\" y=\"22\" font-size=\"15\">metaembed: quality against budget (r_q, r_c)</text>\n", L);
    for (int k = 0; k <= 5; k++) {
        double y = T + (H - T - B) * (1 - k / 5.0);
        fprintf(f, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                   "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.1f</text>\n", L, W - R, y, y, L - 6, y + 4, k / 5.0);
    }
    int n = r->nrows;
    double step = n > 1 ? (double)(W - L - R - 40) / (n - 1) : 0;
    const char *colors[2] = { "#1f77b4", "#d62728" };
    const char *names[2] = { "MRR@10", "Recall@10" };
    for (int s = 0; s < 2; s++) {
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", colors[s]);
        for (int i = 0; i < n; i++) {
            double v = s == 0 ? r->rows[i].mrr10 : r->rows[i].recall10;
            fprintf(f, "%.1f,%.1f ", L + 20 + i * step, T + (H - T - B) * (1 - v));
        }
        fprintf(f, "\"/>\n<text x=\"%d\" y=\"%d\" fill=\"%s\">%s</text>\n", W - R - 160, T + 16 + 16 * s, colors[s], names[s]);
    }
    if (r->has_bm25) {
        double ybm = T + (H - T - B) * (1 - r->bm25.mrr10);
        fprintf(f, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#888\" stroke-dasharray=\"6 4\"/>"
                   "<text x=\"%d\" y=\"%.1f\" fill=\"#888\">BM25 MRR@10 %.3f (same run)</text>\n", L, W - R, ybm, ybm,
                L + 4, ybm - 4, r->bm25.mrr10);
    }
    for (int i = 0; i < n; i++)
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">(%d,%d)</text>\n", L + 20 + i * step, H - B + 18,
                r->rows[i].r_q, r->rows[i].r_c);
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">budget (query vectors, document vectors)</text>\n</svg>\n",
            (L + W - R) / 2, H - 16);
    return fclose(f) == 0 ? 0 : ME_EIO;
}

/* The image set's plot: MRR@10 against the budget, one line a direction,
 * the linear baseline dashed. */
static int write_plot_images(const char *path, const me_eval_images_t *r) {
    FILE *f = fopen(path, "w");
    if (!f) return ME_EIO;
    int W = 640, H = 400, L = 60, R = 20, T = 40, B = 60;
    double top = 0.5;
    for (int d = 0; d < 2; d++)
        for (int i = 0; i < r->dir[d].nrows; i++)
            if (r->dir[d].rows[i].mrr10 > top) top = r->dir[d].rows[i].mrr10 > 0.9 ? 1.0 : r->dir[d].rows[i].mrr10 + 0.1;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" "
               "font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n", W, H);
    fprintf(f, "<text x=\"%d\" y=\"22\" font-size=\"15\">metaembed images: MRR@10 against budget (r_q, r_c)</text>\n", L);
    for (int k = 0; k <= 5; k++) {
        double y = T + (H - T - B) * (1 - k / 5.0);
        fprintf(f, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                   "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.2f</text>\n", L, W - R, y, y, L - 6, y + 4, top * k / 5.0);
    }
    int n = r->dir[0].nrows;
    double step = n > 1 ? (double)(W - L - R - 40) / (n - 1) : 0;
    const char *colors[2] = { "#1f77b4", "#d62728" }, *names[2] = { "text → image", "image → text" };
    for (int d = 0; d < 2; d++) {
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", colors[d]);
        for (int i = 0; i < r->dir[d].nrows; i++)
            fprintf(f, "%.1f,%.1f ", L + 20 + i * step, T + (H - T - B) * (1 - r->dir[d].rows[i].mrr10 / top));
        double yb = T + (H - T - B) * (1 - r->ridge[d].mrr10 / top);
        fprintf(f, "\"/>\n<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-dasharray=\"6 4\"/>\n",
                L, W - R, yb, yb, colors[d]);
        fprintf(f, "<text x=\"%d\" y=\"%d\" fill=\"%s\">%s (dashed: linear baseline %.3f)</text>\n", W - R - 300,
                T + 16 + 16 * d, colors[d], names[d], r->ridge[d].mrr10);
    }
    for (int i = 0; i < n; i++)
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">(%d,%d)</text>\n", L + 20 + i * step, H - B + 18,
                r->dir[0].rows[i].r_q, r->dir[0].rows[i].r_c);
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">budget (query vectors, document vectors)</text>\n</svg>\n",
            (L + W - R) / 2, H - 16);
    return fclose(f) == 0 ? 0 : ME_EIO;
}

static void put_row_json(me_json_writer_t *w, const char *key, const me_eval_row_t *r) {
    me_json_obj_begin(w, key);
    if (r->r_q) {
        me_json_put_int(w, "r_q", r->r_q);
        me_json_put_int(w, "r_c", r->r_c);
    }
    me_json_put_num_prec(w, "recall_at_1", r->recall1, 6);
    me_json_put_num_prec(w, "mrr_at_10", r->mrr10, 6);
    me_json_put_num_prec(w, "recall_at_10", r->recall10, 6);
    if (r->index_bytes_per_doc) me_json_put_u64(w, "index_bytes_per_doc", r->index_bytes_per_doc);
    me_json_obj_end(w);
}

/* `metaembed eval` on an image-text set: both directions' tables, the
 * baselines and the styles. */
static int eval_images(cli_t *c, const eval_opts_t *o, const char *path, me_split_t split) {
    char err[1024];
    me_embedder_t *e;
    if (me_embedder_load(o->model, &e, err, sizeof err) != 0) return cli_error(c, CLI_FAIL, "%s", err);
    int S = me_embedder_image_size(e);
    if (!S) {
        me_embedder_free(e);
        return cli_error(c, CLI_FAIL, "%s reads text only; %s holds images: give an image model "
                         "(e.g. models/metaembed-emoji.safetensors)", o->model, path);
    }
    me_imageset_t *s;
    if (me_imageset_load(path, S, &s, err, sizeof err) != 0) {
        me_embedder_free(e);
        return cli_error(c, CLI_FAIL, "%s", err);
    }
    me_eval_opts_t eo;
    me_eval_defaults(&eo);
    eo.split = split;
    eo.threads = o->threads > 0 ? (int)o->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    me_eval_images_t r;
    int rc = me_eval_images_run(e, s, &eo, &r, err, sizeof err);
    if (rc) {
        me_imageset_free(s);
        me_embedder_free(e);
        return cli_error(c, CLI_FAIL, "%s", err);
    }
    if (o->plot[0] && write_plot_images(o->plot, &r) != 0) fprintf(stderr, "metaembed: eval: cannot write %s\n", o->plot);
    static const char *dir_name[2] = { "text → image", "image → text" }, *dir_key[2] = { "text_to_image", "image_to_text" };
    if (c->g.json) {
        me_json_writer_t w;
        cli_json_begin(&w, stdout);
        me_json_put_str(&w, "model", o->model);
        me_json_put_str(&w, "split", o->split);
        me_json_put_num_prec(&w, "encode_images_per_s", r.images_per_s, 6);
        for (int d = 0; d < 2; d++) {
            me_json_obj_begin(&w, dir_key[d]);
            me_json_put_u64(&w, "queries", r.queries[d]);
            me_json_put_u64(&w, "documents", r.docs[d]);
            me_json_arr_begin(&w, "budgets");
            for (int i = 0; i < r.dir[d].nrows; i++) put_row_json(&w, NULL, &r.dir[d].rows[i]);
            me_json_arr_end(&w);
            put_row_json(&w, "chance", &r.chance[d]);
            put_row_json(&w, "linear_baseline", &r.ridge[d]);
            me_json_put_num_prec(&w, "linear_baseline_lambda", r.ridge_lambda[d], 4);
            me_json_obj_begin(&w, "styles");
            for (int st = 0; st < s->nstyles; st++) put_row_json(&w, s->styles[st], &r.style[d][st]);
            me_json_obj_end(&w);
            me_json_obj_end(&w);
        }
        cli_json_end(&w);
    } else {
        printf("%s on %s (%s split): %zu concepts, %zu images in %d styles; encoding %.1f images/s\n", o->model, path,
               o->split, s->n, s->nimages, s->nstyles, r.images_per_s);
        for (int d = 0; d < 2; d++) {
            printf("\n%s: %zu queries, %zu documents\n\n", dir_name[d], r.queries[d], r.docs[d]);
            printf("| budget  | Recall@1 | MRR@10 | Recall@10 | index bytes/doc |\n");
            printf("|---------|----------|--------|-----------|-----------------|\n");
            for (int i = 0; i < r.dir[d].nrows; i++) {
                const me_eval_row_t *x = &r.dir[d].rows[i];
                char b[16];
                snprintf(b, sizeof b, "(%d,%d)", x->r_q, x->r_c);
                printf("| %-7s |   %.4f | %.4f |    %.4f | %15llu |\n", b, x->recall1, x->mrr10, x->recall10,
                       (unsigned long long)x->index_bytes_per_doc);
            }
            char lam[32];
            snprintf(lam, sizeof lam, "ridge, lambda %g", r.ridge_lambda[d]);
            printf("| linear  |   %.4f | %.4f |    %.4f | %-15s |\n", r.ridge[d].recall1, r.ridge[d].mrr10,
                   r.ridge[d].recall10, lam);
            printf("| chance  |   %.4f | %.4f |    %.4f |                 |\n", r.chance[d].recall1, r.chance[d].mrr10,
                   r.chance[d].recall10);
            printf("\nby style at (%d,%d):", r.dir[d].rows[r.dir[d].nrows - 1].r_q, r.dir[d].rows[r.dir[d].nrows - 1].r_c);
            for (int st = 0; st < s->nstyles; st++) printf("  %s MRR@10 %.4f", s->styles[st], r.style[d][st].mrr10);
            printf("\n");
        }
        if (o->plot[0]) printf("\nplot: %s\n", o->plot);
    }
    me_imageset_free(s);
    me_embedder_free(e);
    return CLI_OK;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* --coarse-index flat|ivf: eval measures the collection as it was created
 * (it creates none), so a collection of the other kind is an error, not a
 * table that silently measures the wrong stage 1. */
static int check_coarse_index(cli_t *c, const eval_opts_t *o, const me_collection_info_t *ci) {
    if (!strcmp(o->coarse_index, "any") || !strcmp(o->coarse_index, ci->coarse_index)) return CLI_OK;
    return cli_error(c, CLI_FAIL, "collection '%s' has coarse index %s, not %s: create it with 'metaembed collection "
                                  "create %s --for-model --coarse-index %s' and ingest the corpus again", ci->name,
                     ci->coarse_index, o->coarse_index, ci->name, o->coarse_index);
}

/* The coarse index measured, as the header line says it: "flat", or "ivf"
 * with the probe the searches ask for (--probe, else the collection's). */
static void format_coarse_index(char *out, size_t cap, const me_collection_info_t *ci, const eval_opts_t *o) {
    int probe = o->probe ? (int)o->probe : ci->ivf_probe;
    const char *bits = ci->binary_coarse ? " over sign bits" : "";
    if (o->exact) snprintf(out, cap, "unused (exact)");
    else if (strcmp(ci->coarse_index, "ivf")) snprintf(out, cap, "%s%s", ci->coarse_index, bits);
    else if (probe) snprintf(out, cap, "ivf (probe %d)%s", probe, bits);
    else snprintf(out, cap, "ivf (probe adaptive)%s", bits);
}

static void put_coarse_index(me_json_writer_t *w, const me_collection_info_t *ci, const eval_opts_t *o) {
    me_json_put_str(w, "coarse_index", ci->coarse_index);
    me_json_put_int(w, "probe", o->probe ? (int)o->probe : ci->ivf_probe);
    me_json_put_bool(w, "binary_coarse", ci->binary_coarse != 0);
}

/* One direction through the cluster at every budget: t2i (the split's
 * labels as text searches of the image collection; a hit is relevant when
 * its id is CONCEPT-STYLE) or i2t (the split's images as image searches of
 * the text collection; relevant: the concept's id). */
static int eval_cluster_images_dir(cli_t *c, const eval_opts_t *o, const me_imageset_t *s, me_split_t split, int i2t,
                                   me_json_writer_t *w) {
    const char *coll = i2t ? o->text_collection : o->collection;
    me_collection_info_t ci;
    int rc = cli_find_collection(c, coll, &ci);
    if (rc != CLI_OK) return rc;
    if ((rc = check_coarse_index(c, o, &ci)) != CLI_OK) return rc;
    size_t nq = 0;
    for (size_t i = 0; i < (i2t ? s->nimages : s->n); i++)
        if (s->c[i2t ? (size_t)s->img_concept[i] : i].split == split) nq++;
    if (o->max_queries && nq > (size_t)o->max_queries) nq = (size_t)o->max_queries;
    double *lat = malloc((nq ? nq : 1) * sizeof *lat);
    if (!lat) return cli_error(c, CLI_FAIL, "out of memory");
    if (w) {
        me_json_obj_begin(w, i2t ? "image_to_text" : "text_to_image");
        me_json_put_str(w, "collection", coll);
        me_json_put_u64(w, "documents", ci.documents);
        me_json_put_u64(w, "queries", nq);
        put_coarse_index(w, &ci, o);
        me_json_arr_begin(w, "budgets");
    } else {
        char coarse[64];
        format_coarse_index(coarse, sizeof coarse, &ci, o);
        printf("\n%s through the cluster: collection '%s', %llu documents, %zu %s queries, %s, coarse index %s\n\n",
               i2t ? "image → text" : "text → image", coll, (unsigned long long)ci.documents, nq, o->split,
               o->exact ? "exact search" : "cascade", coarse);
        printf("| budget  | Recall@1 | MRR@10 | Recall@10 | median ms | p99 ms | index bytes/doc |\n");
        printf("|---------|----------|--------|-----------|-----------|--------|-----------------|\n");
    }
    me_mmr_group_t budgets[ME_MMR_MAX_GROUPS];
    int nb = me_mmr_default_groups(budgets);
    for (int b = 0; b < nb && rc == CLI_OK; b++) {
        if (budgets[b].rq > ci.max_query_vectors || budgets[b].rc > ci.max_doc_vectors) continue;
        me_search_opts_t so = { .r_q = budgets[b].rq, .r_c = budgets[b].rc, .k = 10, .exact = o->exact,
                                .candidates = (uint32_t)o->candidates,
                                .refine_candidates = (uint32_t)o->refine_candidates, .probe = (uint32_t)o->probe };
        double r1 = 0, mrr = 0, r10 = 0;
        size_t q = 0;
        me_progress_t bar;
        me_progress_init(&bar, i2t ? "image queries" : "text queries", "queries", nq, -1);
        for (size_t i = 0; i < (i2t ? s->nimages : s->n) && q < nq && rc == CLI_OK; i++) {
            size_t concept = i2t ? (size_t)s->img_concept[i] : i;
            if (s->c[concept].split != split) continue;
            me_results_t res;
            me_status_t st;
            uint64_t t0 = me_now_us();
            int src;
            if (i2t) {
                char path[4200], err[512];
                uint8_t *img;
                size_t len;
                snprintf(path, sizeof path, "%s/%s", s->dir, s->img_path[i]);
                if (me_image_read_file(path, &img, &len, err, sizeof err) != 0) { rc = cli_error(c, CLI_FAIL, "%s", err); break; }
                src = me_client_search_image(c->client, coll, img, len, NULL, &so, &res, &st);
                free(img);
            } else {
                src = me_client_search_text(c->client, coll, s->c[concept].label, &so, &res, &st);
            }
            lat[q] = (double)(me_now_us() - t0) / 1000.0;
            if (src != 0) { rc = cli_status_error(c, &st, "search"); break; }
            const char *cid = s->c[concept].id;
            size_t cl = strlen(cid);
            for (size_t r = 0; r < res.n; r++) {
                const char *id = res.hits[r].id;
                int rel = i2t ? !strcmp(id, cid) : !strncmp(id, cid, cl) && id[cl] == '-';
                if (!rel) continue;
                if (r == 0) r1 += 1;
                mrr += 1.0 / (double)(r + 1);
                r10 += 1;
                break;
            }
            me_results_free(&res);
            q++;
            me_progress_update(&bar, q);
        }
        me_progress_finish(&bar);
        if (rc != CLI_OK) break;
        qsort(lat, q, sizeof *lat, cmp_double);
        double med = q ? lat[q / 2] : 0, p99 = q ? lat[(size_t)((q - 1) * 0.99)] : 0;
        unsigned long long bytes = (unsigned long long)so.r_c * ci.dim * 2;
        if (w) {
            me_json_obj_begin(w, NULL);
            me_json_put_int(w, "r_q", so.r_q);
            me_json_put_int(w, "r_c", so.r_c);
            me_json_put_num_prec(w, "recall_at_1", q ? r1 / q : 0, 6);
            me_json_put_num_prec(w, "mrr_at_10", q ? mrr / q : 0, 6);
            me_json_put_num_prec(w, "recall_at_10", q ? r10 / q : 0, 6);
            me_json_put_num_prec(w, "median_ms", med, 6);
            me_json_put_num_prec(w, "p99_ms", p99, 6);
            me_json_obj_end(w);
        } else {
            char bud[16];
            snprintf(bud, sizeof bud, "(%d,%d)", so.r_q, so.r_c);
            printf("| %-7s |   %.4f | %.4f |    %.4f | %9.2f | %6.2f | %15llu |\n", bud, q ? r1 / q : 0, q ? mrr / q : 0,
                   q ? r10 / q : 0, med, p99, bytes);
        }
    }
    if (w) {
        me_json_arr_end(w);
        me_json_obj_end(w);
    }
    free(lat);
    return rc;
}

static int eval_cluster_images(cli_t *c, const eval_opts_t *o, const char *path, me_split_t split) {
    if (!cli_connect(c)) return CLI_FAIL;
    me_imageset_t *s;
    char err[1024];
    if (me_imageset_load(path, 0, &s, err, sizeof err) != 0) return cli_error(c, CLI_FAIL, "%s", err);
    me_json_writer_t w;
    if (c->g.json) cli_json_begin(&w, stdout);
    int rc = eval_cluster_images_dir(c, o, s, split, 0, c->g.json ? &w : NULL);
    if (rc == CLI_OK) rc = eval_cluster_images_dir(c, o, s, split, 1, c->g.json ? &w : NULL);
    if (c->g.json) cli_json_end(&w);
    me_imageset_free(s);
    return rc;
}

/* The efficiency table measured end to end: every query of the split as a
 * text search through the coordinator (its encoders make the query vectors),
 * at every budget. */
/* --mode, --fusion, --alpha, --hybrid-candidates into so (ranges: the
 * cluster's checks). CLI_OK or a usage error. */
static int eval_mode_opts(cli_t *c, const eval_opts_t *o, me_search_opts_t *so) {
    so->mode = !strcmp(o->mode, "lexical") ? ME_MODE_LEXICAL : !strcmp(o->mode, "hybrid") ? ME_MODE_HYBRID
                                                                                          : ME_MODE_DENSE;
    so->fusion = !strcmp(o->fusion, "weighted") ? ME_FUSION_WEIGHTED : ME_FUSION_RRF;
    so->hybrid_candidates = (uint32_t)o->hybrid_candidates;
    if (o->alpha[0]) {
        char *end;
        so->alpha = strtof(o->alpha, &end);
        if (*end || end == o->alpha) return cli_usage_error(c, "--alpha '%s' is not a number in [0, 1]", o->alpha);
        so->has_alpha = 1;
    }
    return CLI_OK;
}

static int eval_cluster(cli_t *c, const eval_opts_t *o, const me_dataset_t *ds, me_split_t split) {
    me_search_opts_t mode_so = { 0 };
    int mrc = eval_mode_opts(c, o, &mode_so);
    if (mrc != CLI_OK) return mrc;
    if (!cli_connect(c)) return CLI_FAIL;
    me_collection_info_t ci;
    int rc = cli_find_collection(c, o->collection, &ci);
    if (rc != CLI_OK) return rc;
    if ((rc = check_coarse_index(c, o, &ci)) != CLI_OK) return rc;
    me_mmr_group_t budgets[ME_MMR_MAX_GROUPS];
    int nb = me_mmr_default_groups(budgets);
    size_t nq = 0;
    for (size_t i = 0; i < ds->n; i++)
        if (ds->recs[i].split == split && (!o->max_queries || nq < (size_t)o->max_queries)) nq++;
    double *lat = malloc((nq ? nq : 1) * sizeof *lat);
    if (!lat) return cli_error(c, CLI_FAIL, "out of memory");
    me_json_writer_t w;
    if (c->g.json) {
        cli_json_begin(&w, stdout);
        me_json_put_str(&w, "collection", o->collection);
        me_json_put_u64(&w, "documents", ci.documents);
        me_json_put_u64(&w, "queries", nq);
        me_json_put_str(&w, "mode", o->mode);
        put_coarse_index(&w, &ci, o);
        me_json_arr_begin(&w, "budgets");
    } else {
        char coarse[64];
        format_coarse_index(coarse, sizeof coarse, &ci, o);
        printf("through the cluster at %s: collection '%s', %llu documents, %zu %s queries as text, %s, %s%s%s, "
               "coarse index %s\n\n", c->g.addr, o->collection, (unsigned long long)ci.documents, nq, o->split,
               o->exact ? "exact search" : "cascade", o->mode,
               mode_so.mode == ME_MODE_HYBRID ? " " : "", mode_so.mode == ME_MODE_HYBRID ? o->fusion : "", coarse);
        printf("| budget  | Recall@1 | MRR@10 | Recall@10 | median ms | p99 ms | index bytes/doc |\n");
        printf("|---------|----------|--------|-----------|-----------|--------|-----------------|\n");
    }
    me_progress_t bar;
    int cmp_rows[ME_MMR_MAX_GROUPS][2], ncmp = 0;
    double cmp_vals[ME_MMR_MAX_GROUPS][3];
    for (int b = 0; b < nb; b++) {
        if (budgets[b].rq > ci.max_query_vectors || budgets[b].rc > ci.max_doc_vectors) continue;
        me_search_opts_t so = mode_so;
        so.r_q = budgets[b].rq;
        so.r_c = budgets[b].rc;
        so.k = 10;
        so.exact = o->exact;
        so.candidates = (uint32_t)o->candidates;
        so.refine_candidates = (uint32_t)o->refine_candidates;
        so.probe = (uint32_t)o->probe;
        double r1 = 0, mrr = 0, r10 = 0, overlap = 0;
        double *fan_c = o->compare_exact ? malloc((nq ? nq : 1) * sizeof *fan_c) : NULL;
        double *fan_e = o->compare_exact ? malloc((nq ? nq : 1) * sizeof *fan_e) : NULL;
        size_t q = 0;
        me_progress_init(&bar, "search", "queries", nq, -1);
        for (size_t i = 0; i < ds->n && q < nq; i++) {
            const me_datarec_t *r = &ds->recs[i];
            if (r->split != split) continue;
            me_results_t res;
            me_status_t st;
            uint64_t t0 = me_now_us();
            if (me_client_search_text(c->client, o->collection, r->query, &so, &res, &st) != 0) {
                free(lat);
                return cli_status_error(c, &st, "text search");
            }
            lat[q] = (double)(me_now_us() - t0) / 1000.0;
            for (size_t h = 0; h < res.n; h++)
                if (!strcmp(res.hits[h].id, r->id)) {
                    if (h == 0) r1 += 1;
                    mrr += 1.0 / (double)(h + 1);
                    r10 += 1;
                    break;
                }
            if (fan_c && fan_e) {
                me_search_opts_t eo = so;
                eo.exact = 1;
                me_results_t ex;
                if (me_client_search_text(c->client, o->collection, r->query, &eo, &ex, &st) != 0) {
                    me_results_free(&res);
                    free(lat); free(fan_c); free(fan_e);
                    return cli_status_error(c, &st, "exact text search");
                }
                size_t same = 0;
                for (size_t a = 0; a < ex.n; a++)
                    for (size_t h = 0; h < res.n; h++)
                        if (!strcmp(ex.hits[a].id, res.hits[h].id)) { same++; break; }
                overlap += ex.n ? (double)same / (double)ex.n : 1.0;
                fan_c[q] = fan_e[q] = 0;
                for (int k = 0; k < res.n_stages; k++)
                    if (!strcmp(res.stages[k].stage, "fanout")) fan_c[q] = res.stages[k].micros / 1000.0;
                for (int k = 0; k < ex.n_stages; k++)
                    if (!strcmp(ex.stages[k].stage, "fanout")) fan_e[q] = ex.stages[k].micros / 1000.0;
                me_results_free(&ex);
            }
            q++;
            me_results_free(&res);
            me_progress_update(&bar, q);
        }
        me_progress_finish(&bar);
        if (fan_c && fan_e && q) {
            qsort(fan_c, q, sizeof *fan_c, cmp_double);
            qsort(fan_e, q, sizeof *fan_e, cmp_double);
            double mc = fan_c[q / 2], me_ = fan_e[q / 2];
            if (c->g.json) {
                me_json_obj_begin(&w, NULL);
                me_json_put_str(&w, "compare", "cascade_vs_exact");
                me_json_put_int(&w, "r_q", budgets[b].rq);
                me_json_put_int(&w, "r_c", budgets[b].rc);
                me_json_put_num_prec(&w, "overlap_at_10", overlap / q, 6);
                me_json_put_num_prec(&w, "cascade_search_ms", mc, 6);
                me_json_put_num_prec(&w, "exact_search_ms", me_, 6);
                me_json_obj_end(&w);
            } else {
                cmp_rows[ncmp][0] = budgets[b].rq;
                cmp_rows[ncmp][1] = budgets[b].rc;
                cmp_vals[ncmp][0] = overlap / q;
                cmp_vals[ncmp][1] = mc;
                cmp_vals[ncmp][2] = me_;
                ncmp++;
            }
        }
        free(fan_c);
        free(fan_e);
        qsort(lat, q, sizeof *lat, cmp_double);
        double med = q ? lat[q / 2] : 0, p99 = q ? lat[(size_t)((q - 1) * 0.99)] : 0;
        uint64_t bytes = (uint64_t)budgets[b].rc * ci.dim * 2;
        if (c->g.json) {
            me_json_obj_begin(&w, NULL);
            /* Lexical rows have no budget: r_q, r_c and index bytes 0. */
            int lex = mode_so.mode == ME_MODE_LEXICAL;
            me_json_put_int(&w, "r_q", lex ? 0 : budgets[b].rq);
            me_json_put_int(&w, "r_c", lex ? 0 : budgets[b].rc);
            me_json_put_num_prec(&w, "recall_at_1", q ? r1 / q : 0, 6);
            me_json_put_num_prec(&w, "mrr_at_10", q ? mrr / q : 0, 6);
            me_json_put_num_prec(&w, "recall_at_10", q ? r10 / q : 0, 6);
            me_json_put_num_prec(&w, "median_ms", med, 6);
            me_json_put_num_prec(&w, "p99_ms", p99, 6);
            me_json_put_u64(&w, "index_bytes_per_doc", lex ? 0 : bytes);
            me_json_obj_end(&w);
        } else {
            char bud[16];
            char nbytes[24] = "-";
            if (mode_so.mode == ME_MODE_LEXICAL) snprintf(bud, sizeof bud, "lexical");
            else {
                snprintf(bud, sizeof bud, "(%d,%d)", budgets[b].rq, budgets[b].rc);
                snprintf(nbytes, sizeof nbytes, "%llu", (unsigned long long)bytes);
            }
            printf("| %-7s |   %.4f | %.4f |    %.4f | %9.2f | %6.2f | %15s |\n", bud, q ? r1 / q : 0,
                   q ? mrr / q : 0, q ? r10 / q : 0, med, p99, nbytes);
            fflush(stdout);
        }
        /* BM25 ranks the same at every budget: one row says it. */
        if (mode_so.mode == ME_MODE_LEXICAL) break;
    }
    if (c->g.json) {
        me_json_arr_end(&w);
        cli_json_end(&w);
    } else {
        printf("| BM25    |   0.5379 | 0.6239 |    0.7897 |         - |      - | (data README)   |\n");
        if (ncmp) {
            printf("\ncascade vs exact (share of exact's top 10 the cascade returns; median search time, the\n"
                   "fan-out stage, encoding excluded):\n\n");
            printf("| budget  | top-10 overlap | cascade ms | exact ms | speedup |\n");
            printf("|---------|----------------|------------|----------|---------|\n");
            for (int i = 0; i < ncmp; i++) {
                char bud[16];
                snprintf(bud, sizeof bud, "(%d,%d)", cmp_rows[i][0], cmp_rows[i][1]);
                printf("| %-7s |         %.4f | %10.2f | %8.2f | %6.1fx |\n", bud, cmp_vals[i][0], cmp_vals[i][1],
                       cmp_vals[i][2], cmp_vals[i][1] > 0 ? cmp_vals[i][2] / cmp_vals[i][1] : 0);
            }
        }
    }
    free(lat);
    return CLI_OK;
}

int cli_cmd_eval(cli_t *c, int argc, char **argv) {
    eval_opts_t o;
    char err[512], path[1024];
    me_config_defaults(eval_table, &o, err, sizeof err);
    int rc = cli_parse(c, &eval_cmd, &o, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if (locate_data(c, o.data, path, sizeof path)) return CLI_FAIL;
    me_split_t split = !strcmp(o.split, "dev") ? ME_SPLIT_DEV : !strcmp(o.split, "train") ? ME_SPLIT_TRAIN : ME_SPLIT_TEST;
    if (me_imageset_is(path)) {
        if (o.cluster && !strcmp(o.collection, "debian")) snprintf(o.collection, sizeof o.collection, "emoji");
        return o.cluster ? eval_cluster_images(c, &o, path, split) : eval_images(c, &o, path, split);
    }
    if (o.cluster) {
        me_dataset_t *cds;
        if (me_dataset_load(path, 0, &cds, err, sizeof err) != 0) return cli_error(c, CLI_FAIL, "%s", err);
        rc = eval_cluster(c, &o, cds, split);
        me_dataset_free(cds);
        return rc;
    }
    me_embedder_t *e;
    if (me_embedder_load(o.model, &e, err, sizeof err) != 0) return cli_error(c, CLI_FAIL, "%s", err);
    me_dataset_t *ds;
    if (me_dataset_load(path, 0, &ds, err, sizeof err) != 0) {
        me_embedder_free(e);
        return cli_error(c, CLI_FAIL, "%s", err);
    }
    me_eval_opts_t eo;
    me_eval_defaults(&eo);
    eo.split = split;
    eo.max_docs = (size_t)o.max_docs;
    eo.max_queries = (size_t)o.max_queries;
    eo.threads = o.threads > 0 ? (int)o.threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    eo.binary = o.binary;
    me_progress_t bar = { 0 };
    eo.progress = eval_progress;
    eo.progress_ctx = &bar;
    me_eval_result_t r;
    rc = me_eval_run(e, ds, &eo, &r, err, sizeof err);
    me_progress_finish(&bar);
    if (rc) {
        me_dataset_free(ds);
        me_embedder_free(e);
        return cli_error(c, CLI_FAIL, "%s", err);
    }
    if (o.plot[0] && write_plot(o.plot, &r) != 0) fprintf(stderr, "metaembed: eval: cannot write %s\n", o.plot);
    if (c->g.json) {
        me_json_writer_t w;
        cli_json_begin(&w, stdout);
        me_json_put_str(&w, "model", o.model);
        me_json_put_str(&w, "split", o.split);
        me_json_put_u64(&w, "documents", r.docs);
        me_json_put_u64(&w, "queries", r.queries);
        me_json_put_num_prec(&w, "encode_docs_per_s", r.encode_docs_per_s, 6);
        me_json_arr_begin(&w, "budgets");
        for (int i = 0; i < r.nrows; i++) {
            me_json_obj_begin(&w, NULL);
            me_json_put_int(&w, "r_q", r.rows[i].r_q);
            me_json_put_int(&w, "r_c", r.rows[i].r_c);
            me_json_put_num_prec(&w, "recall_at_1", r.rows[i].recall1, 6);
            me_json_put_num_prec(&w, "mrr_at_10", r.rows[i].mrr10, 6);
            me_json_put_num_prec(&w, "recall_at_10", r.rows[i].recall10, 6);
            me_json_put_u64(&w, "index_bytes_per_doc", r.rows[i].index_bytes_per_doc);
            me_json_obj_end(&w);
        }
        me_json_arr_end(&w);
        if (r.has_bm25) put_row_json(&w, "bm25", &r.bm25);
        if (r.nbinary) {
            me_json_arr_begin(&w, "binary_budgets");
            for (int i = 0; i < r.nbinary; i++) put_row_json(&w, NULL, &r.binary[i]);
            me_json_arr_end(&w);
        }
        cli_json_end(&w);
    } else {
        printf("%s on %s: %zu documents, %zu %s queries; encoding %.1f documents/s\n\n", o.model, path, r.docs,
               r.queries, o.split, r.encode_docs_per_s);
        printf("| budget  | Recall@1 | MRR@10 | Recall@10 | index bytes/doc |\n");
        printf("|---------|----------|--------|-----------|-----------------|\n");
        for (int i = 0; i < r.nrows; i++) {
            char b[16];
            snprintf(b, sizeof b, "(%d,%d)", r.rows[i].r_q, r.rows[i].r_c);
            printf("| %-7s |   %.4f | %.4f |    %.4f | %15llu |\n", b, r.rows[i].recall1, r.rows[i].mrr10,
                   r.rows[i].recall10, (unsigned long long)r.rows[i].index_bytes_per_doc);
        }
        if (r.has_bm25)
            printf("| BM25    |   %.4f | %.4f |    %.4f | (k1 0.9, b 0.4) |\n", r.bm25.recall1, r.bm25.mrr10,
                   r.bm25.recall10);
        if (r.nbinary) {
            printf("\n1-bit documents (the sign of each dimension; the f32 query scores them):\n\n");
            printf("| budget  | Recall@1 | MRR@10 | Recall@10 | index bytes/doc | MRR@10 vs f16 |\n");
            printf("|---------|----------|--------|-----------|-----------------|---------------|\n");
            for (int i = 0; i < r.nbinary; i++) {
                char b[16];
                snprintf(b, sizeof b, "(%d,%d)", r.binary[i].r_q, r.binary[i].r_c);
                double f16 = i < r.nrows ? r.rows[i].mrr10 : 0;
                printf("| %-7s |   %.4f | %.4f |    %.4f | %15llu | %12.1f%% |\n", b, r.binary[i].recall1,
                       r.binary[i].mrr10, r.binary[i].recall10, (unsigned long long)r.binary[i].index_bytes_per_doc,
                       f16 > 0 ? 100.0 * (r.binary[i].mrr10 - f16) / f16 : 0.0);
            }
        }
        if (o.plot[0]) printf("\nplot: %s\n", o.plot);
    }
    me_dataset_free(ds);
    me_embedder_free(e);
    return CLI_OK;
}
