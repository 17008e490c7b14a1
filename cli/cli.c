/* metaembed: the command-line tool for a metaembed coordinator or shard.
 *
 *   metaembed [--addr tcp://HOST:PORT] [--json] [--timeout MS] COMMAND ...
 *
 * This file: main, dispatch, and the small commands (collection, get,
 * delete, status). ingest and search live in cli_data.c. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/npy.h"
#include "common/validate.h"
#include "encoder/embedder.h"

static void main_usage(FILE *out) {
    fprintf(out,
            "usage: metaembed [--addr tcp://HOST:PORT] [--json] [--timeout MS] COMMAND ...\n"
            "\n"
            "Talks to a metaembed coordinator or shard.\n"
            "\n"
            "commands:\n"
            "  collection create NAME --dim D    create a collection\n"
            "  collection list                   list collections with document counts\n"
            "  collection drop NAME              drop a collection and all its documents\n"
            "  collection index NAME FIELD:TYPE...\n"
            "                                    index payload fields for filters (keyword|integer|float|bool)\n"
            "  ingest --collection NAME corpus.jsonl\n"
            "                                    embed and store texts (and images) through the encoders\n"
            "  ingest --collection NAME --vectors emb.npy --ids ids.txt [--meta meta.jsonl]\n"
            "                                    upsert documents ([N, R, D] float32/float16)\n"
            "  search --collection NAME \"free text\" [-k 10] [--budget RQ,RC]\n"
            "                                    text search (the encoders embed the query)\n"
            "  search --collection NAME --image q.png | --vectors q.npy\n"
            "                                    image query, or query vectors [R, D] / [N, R, D]\n"
            "  get --collection NAME ID... | --filter F\n"
            "                                    fetch documents (metadata; --vectors, --out FILE.npy)\n"
            "  ids --collection NAME [--after ID] [--limit N] [--all]\n"
            "                                    list document ids in byte order, a page at a time\n"
            "  delete --collection NAME ID... | --filter F\n"
            "                                    delete documents\n"
            "  count --collection NAME [--filter F]\n"
            "                                    count the documents (a filter matches)\n"
            "  status                            groups, replicas, health, documents, latency\n"
            "  snapshot create [ID] | list | delete ID\n"
            "                                    point-in-time copies of every shard (restore: --restore-snapshot)\n"
            "  reshard --groups N [--max-rate R] | --status\n"
            "                                    move documents to a new number of shard groups, live\n"
            "local commands (no server needed):\n"
            "  train [--steps N] [--out MODEL]   train the encoder (MMR loss) on text pairs or an image-text set\n"
            "  encode --input X.jsonl --out E.npy [--side doc|query]\n"
            "                                    embed texts into [N, R, D] for ingest\n"
            "  eval [--model MODEL] [--plot F.svg]\n"
            "                                    quality at every budget on the held-out split, beside BM25\n"
            "  keygen --dir DIR [--client NAME]  CurveZMQ keys for an encrypted cluster (--curve-dir)\n"
            "\n"
            "global options (accepted before or after the command):\n"
            "  --addr tcp://HOST:PORT        server address (else $METAEMBED_ADDR, else " CLI_DEFAULT_ADDR ")\n"
            "  --json                        print one JSON object on stdout instead of text\n"
            "  --timeout MS                  per-request timeout [default: 30000]\n"
            "  --curve-dir DIR               CurveZMQ keys (else $METAEMBED_CURVE_DIR; empty = plain)\n"
            "  --curve-key NAME              with --curve-dir: this client's key pair NAME.key [default: client]\n"
            "  -h, --help                    show this help; 'metaembed COMMAND --help' for a command\n"
            "  --version                     print the version and exit\n"
            "\n"
            "Errors go to stderr; exit status 0 on success, 1 on failure, 2 on a usage error.\n");
}

/* ---- shared rendering of a collection ---- */

static void json_collection(me_json_writer_t *j, const char *key, const me_collection_info_t *ci) {
    me_json_obj_begin(j, key);
    me_json_put_str(j, "name", ci->name);
    me_json_put_int(j, "dim", ci->dim);
    me_json_put_int(j, "max_doc_vectors", ci->max_doc_vectors);
    me_json_put_int(j, "max_query_vectors", ci->max_query_vectors);
    me_json_put_str(j, "dtype", ci->dtype);
    me_json_put_int(j, "ram_vectors", ci->ram_vectors);
    me_json_put_int(j, "coarse_vectors", ci->coarse_vectors);
    me_json_put_str(j, "coarse_index", ci->coarse_index);
    me_json_put_int(j, "ivf_lists", ci->ivf_lists);
    me_json_put_int(j, "ivf_probe", ci->ivf_probe);
    me_json_put_bool(j, "binary_coarse", ci->binary_coarse);
    me_json_put_u64(j, "documents", ci->documents);
    me_json_put_u64(j, "ram_bytes", ci->ram_bytes);
    me_json_put_u64(j, "index_bytes", ci->index_bytes);
    me_json_put_str(j, "fields", ci->fields);
    me_json_obj_end(j);
}

/* A collection's coarse index in words: "flat", or "ivf" with its lists
 * and probe ("auto" and "adaptive" for 0); "+bits" when stage 1 scans sign
 * bits (binary_coarse): "flat+bits", "ivf+bits lists=... probe=...". */
static void format_coarse_index(char *out, size_t cap, const me_collection_info_t *ci) {
    const char *bits = ci->binary_coarse ? "+bits" : "";
    if (strcmp(ci->coarse_index, "ivf")) {
        snprintf(out, cap, "%s%s", ci->coarse_index, bits);
        return;
    }
    char lists[16] = "auto", probe[16] = "adaptive";
    if (ci->ivf_lists) snprintf(lists, sizeof lists, "%d", ci->ivf_lists);
    if (ci->ivf_probe) snprintf(probe, sizeof probe, "%d", ci->ivf_probe);
    snprintf(out, cap, "ivf%s lists=%s probe=%s", bits, lists, probe);
}

static void print_collections(FILE *out, const me_collection_info_t *cs, size_t n, const char *indent) {
    static const char *const head[] = { "NAME", "DIM", "R_C", "R_Q", "DTYPE", "RAM_VECTORS", "COARSE",
                                        "COARSE_INDEX", "DOCUMENTS", "RAM", "INDEX", "FIELDS" };
    cli_table_t t;
    tbl_init(&t, 12, head, 0x76e);  /* numbers right-aligned */
    for (size_t i = 0; i < n; i++) {
        char c[11][48];
        snprintf(c[0], sizeof c[0], "%s", cs[i].name);
        snprintf(c[1], sizeof c[1], "%d", cs[i].dim);
        snprintf(c[2], sizeof c[2], "%d", cs[i].max_doc_vectors);
        snprintf(c[3], sizeof c[3], "%d", cs[i].max_query_vectors);
        snprintf(c[4], sizeof c[4], "%s", cs[i].dtype);
        snprintf(c[5], sizeof c[5], "%d", cs[i].ram_vectors);
        snprintf(c[6], sizeof c[6], "%d", cs[i].coarse_vectors);
        format_coarse_index(c[7], sizeof c[7], &cs[i]);
        snprintf(c[8], sizeof c[8], "%llu", (unsigned long long)cs[i].documents);
        cli_bytes(c[9], sizeof c[9], cs[i].ram_bytes);
        cli_bytes(c[10], sizeof c[10], cs[i].index_bytes);
        const char *row[12];
        for (int k = 0; k < 11; k++) row[k] = c[k];
        row[11] = cs[i].fields[0] ? cs[i].fields : "-";
        tbl_row(&t, row);
    }
    tbl_print(&t, out, indent);
    tbl_free(&t);
}

/* ---- collection create | list | drop ---- */

typedef struct {
    long long dim, max_doc, max_query, ram, coarse;
    char dtype[ME_CFG_STR_MAX], fields[ME_CFG_STR_MAX], durability[ME_CFG_STR_MAX];
    char coarse_index[ME_CFG_STR_MAX];
    long long ivf_lists, ivf_probe;
    int binary_coarse;
    int for_model;
    char model[ME_CFG_STR_MAX];
} create_opts_t;

static const me_cfg_opt_t create_table[] = {
    { "dim", ME_CFG_INT, offsetof(create_opts_t, dim), "", 0, 1 << 20, NULL,
      "vector dimension D (required unless --for-model)" },
    { "for-model", ME_CFG_BOOL, offsetof(create_opts_t, for_model), "false", 0, 1, NULL,
      "take D, R_c and R_q from the model (--model) the encoders run, for text and image ingest" },
    { "model", ME_CFG_STRING, offsetof(create_opts_t, model), ME_DEFAULT_MODEL, 0, 0, NULL,
      "with --for-model: the model file" },
    { "max-doc-vectors", ME_CFG_INT, offsetof(create_opts_t, max_doc), "64", 1, 1 << 16, NULL,
      "R_c: most vectors per document" },
    { "max-query-vectors", ME_CFG_INT, offsetof(create_opts_t, max_query), "16", 1, 1 << 16, NULL,
      "R_q: most vectors per query" },
    { "dtype", ME_CFG_ENUM, offsetof(create_opts_t, dtype), "f16", 0, 0, "f16|f32|int8",
      "storage type of document vectors" },
    { "ram-vectors", ME_CFG_INT, offsetof(create_opts_t, ram), "0", 0, 1 << 16, NULL,
      "leading vectors per document kept in RAM (0 = max-doc-vectors)" },
    { "coarse-vectors", ME_CFG_INT, offsetof(create_opts_t, coarse), "0", 0, 1 << 16, NULL,
      "vectors per document in the stage-1 coarse index (0 = 1)" },
    { "fields", ME_CFG_STRING, offsetof(create_opts_t, fields), "", 0, 0, NULL,
      "metadata members to index for --filter, NAME:TYPE,... with TYPE keyword (a string or an array of "
      "strings), integer, float or bool, e.g. section:keyword,year:integer" },
    { "durability", ME_CFG_ENUM, offsetof(create_opts_t, durability), "default", 0, 0, ME_DURABILITY_CHOICES,
      "when a write is acknowledged: none (in the WAL: survives kill -9, not power loss), group or every_write "
      "(fsynced: survive power loss; group shares one fsync among concurrent writes); default: the shards' --sync" },
    { "coarse-index", ME_CFG_ENUM, offsetof(create_opts_t, coarse_index), "flat", 0, 0, ME_COARSE_INDEX_CHOICES,
      "stage 1: flat (scan every document's first vector) or ivf (k-means lists, trained in the background once a "
      "shard holds 2,048 documents; flat scan until then; exact mode never uses it)" },
    { "ivf-lists", ME_CFG_INT, offsetof(create_opts_t, ivf_lists), "0", 0, 65536, NULL,
      "with --coarse-index ivf: lists (k-means centroids) per shard (0 = 4·√N at each (re)training)" },
    { "ivf-probe", ME_CFG_INT, offsetof(create_opts_t, ivf_probe), "0", 0, 65536, NULL,
      "with --coarse-index ivf: lists a search scans, nearest first (0 = adaptive; search --probe overrides it)" },
    { "binary-coarse", ME_CFG_BOOL, offsetof(create_opts_t, binary_coarse), "false", 0, 1, NULL,
      "stage 1 scans the first vectors' sign bits, D/8 bytes a document in RAM instead of the 2·D-byte f16 copy; "
      "later stages rescore with the stored vectors; needs --coarse-vectors 1" },
    { NULL, 0, 0, NULL, 0, 0, NULL, NULL },
};

static const cli_cmd_t create_cmd = {
    "collection create", "NAME (--dim D | --for-model [--model FILE]) [options]",
    "Creates a collection of documents of up to R_c vectors of dimension D each.\n"
    "--for-model reads D, R_c and R_q from a model file, so text ingest through its encoders fits.",
    create_table, 1, 0,
};
static const cli_cmd_t list_cmd = {
    "collection list", "", "Lists collections with their settings and document counts.", NULL, 0, 0,
};
typedef struct { int yes; } drop_opts_t;
static const me_cfg_opt_t drop_table[] = {
    { "yes", ME_CFG_BOOL, offsetof(drop_opts_t, yes), "false", 0, 1, NULL,
      "drop without asking (on a terminal the command asks you to type the name)" },
    { NULL, 0, 0, NULL, 0, 0, NULL, NULL },
};
static const cli_cmd_t drop_cmd = {
    "collection drop", "NAME [--yes]",
    "Drops a collection and every document in it. On a terminal it first asks for the name (--yes skips that);\n"
    "from a script (stdin not a terminal) it drops at once.", drop_table, 1, 0,
};

static const cli_cmd_t index_cmd = {
    "collection index", "NAME FIELD:TYPE...",
    "Indexes metadata members of a collection's documents for --filter (TYPE keyword, integer, float or\n"
    "bool; a keyword field also takes arrays of strings), including the documents stored already. A\n"
    "document whose value has another type stops it, naming the document, with nothing changed.",
    NULL, ME_FIELDS_MAX + 1, 0,
};

static int collection_index(cli_t *c, int argc, char **argv) {
    char *pos[ME_FIELDS_MAX + 1];
    int npos = 0;
    int rc = cli_parse(c, &index_cmd, NULL, argc, argv, pos, &npos);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if (npos < 2) return cli_usage_error(c, "needs the collection NAME and at least one FIELD:TYPE");
    char fields[ME_FIELDS_MAX * (ME_CFG_STR_MAX + 1)] = "";
    for (int i = 1; i < npos; i++)
        snprintf(fields + strlen(fields), sizeof fields - strlen(fields), "%s%s", i > 1 ? "," : "", pos[i]);
    if (!cli_connect(c)) return CLI_FAIL;
    uint64_t indexed = 0;
    me_status_t st;
    if (me_client_index_fields(c->client, pos[0], fields, &indexed, &st) != 0) {
        char what[128];
        snprintf(what, sizeof what, "cannot index fields of '%s'", pos[0]);
        return cli_status_error(c, &st, what);
    }
    me_collection_info_t ci;
    if (cli_find_collection(c, pos[0], &ci) != CLI_OK) return CLI_FAIL;
    if (c->g.json) {
        me_json_writer_t j;
        cli_json_begin(&j, stdout);
        me_json_put_str(&j, "collection", ci.name);
        me_json_put_str(&j, "fields", ci.fields);
        me_json_put_u64(&j, "indexed", indexed);
        cli_json_end(&j);
    } else {
        printf("collection '%s' indexes %s; %llu of %llu documents have a value of the fields just added\n", ci.name,
               ci.fields, (unsigned long long)indexed, (unsigned long long)ci.documents);
    }
    return CLI_OK;
}

static void collection_usage(FILE *out) {
    fprintf(out,
            "usage: metaembed [--addr tcp://HOST:PORT] [--json] collection SUBCOMMAND ...\n"
            "\n"
            "subcommands:\n"
            "  create NAME (--dim D | --for-model [--model FILE]) [--max-doc-vectors 64] [--max-query-vectors 16] [--dtype f16|f32|int8]\n"
            "         [--ram-vectors N] [--coarse-vectors N] [--fields NAME:TYPE,...]\n"
            "         [--coarse-index " ME_COARSE_INDEX_CHOICES "] [--ivf-lists N] [--ivf-probe N] [--binary-coarse]\n"
            "  list\n"
            "  drop NAME [--yes]\n"
            "  index NAME FIELD:TYPE...\n"
            "\n"
            "'metaembed collection SUBCOMMAND --help' describes each.\n");
}

/* --for-model: D, R_c, R_q are the model's (a --dim that disagrees is an
 * error rather than a collection no encoder can fill). */
static int shape_from_model(cli_t *c, create_opts_t *o) {
    char err[1024];
    me_embedder_t *e;
    if (me_embedder_load(o->model, &e, err, sizeof err) != 0) return cli_error(c, CLI_FAIL, "%s", err);
    const me_model_config_t *m = me_embedder_config(e);
    int dim = m->dim, rc_ = me_embedder_rows(e, ME_SIDE_DOC), rq = me_embedder_rows(e, ME_SIDE_QUERY);
    me_embedder_free(e);
    if (o->dim > 0 && o->dim != dim)
        return cli_usage_error(c, "--dim %lld disagrees with %s, whose vectors have D=%d (drop --dim)", o->dim,
                               o->model, dim);
    o->dim = dim;
    o->max_doc = rc_;
    o->max_query = rq;
    return CLI_OK;
}

static int collection_create(cli_t *c, int argc, char **argv) {
    create_opts_t o;
    char err[256];
    me_config_defaults(create_table, &o, err, sizeof err);
    char *pos[1];
    int npos = 0;
    int rc = cli_parse(c, &create_cmd, &o, argc, argv, pos, &npos);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if (npos != 1) return cli_usage_error(c, "needs the collection NAME");
    if (o.for_model && (rc = shape_from_model(c, &o)) != CLI_OK) return rc;
    if (o.dim <= 0) return cli_usage_error(c, "needs --dim D (the vector dimension, > 0), or --for-model to take it "
                                              "from the model the encoders run");
    if (strcmp(o.coarse_index, "ivf") && (o.ivf_lists || o.ivf_probe))
        return cli_usage_error(c, "--ivf-lists and --ivf-probe need --coarse-index ivf");
    if (o.binary_coarse && o.coarse > 1)
        return cli_usage_error(c, "--binary-coarse needs --coarse-vectors 1 (its bits are the first vector's), "
                                  "got %lld", o.coarse);
    if (!cli_connect(c)) return CLI_FAIL;
    me_collection_spec_t spec = {
        .name = pos[0], .dim = (int)o.dim, .max_doc_vectors = (int)o.max_doc,
        .max_query_vectors = (int)o.max_query, .dtype = o.dtype, .ram_vectors = (int)o.ram,
        .coarse_vectors = (int)o.coarse, .fields = o.fields[0] ? o.fields : NULL,
        .durability = strcmp(o.durability, "default") ? o.durability : NULL,
        .coarse_index = o.coarse_index, .ivf_lists = (int)o.ivf_lists, .ivf_probe = (int)o.ivf_probe,
        .binary_coarse = o.binary_coarse,
    };
    me_status_t st;
    if (me_client_create_collection(c->client, &spec, &st) != 0) {
        char what[128];
        snprintf(what, sizeof what, "cannot create collection '%s'", pos[0]);
        return cli_status_error(c, &st, what);
    }
    me_collection_info_t ci;
    if (cli_find_collection(c, pos[0], &ci) != CLI_OK) return CLI_FAIL;
    if (c->g.json) {
        me_json_writer_t j;
        cli_json_begin(&j, stdout);
        json_collection(&j, "created", &ci);
        cli_json_end(&j);
    } else {
        char coarse[64];
        format_coarse_index(coarse, sizeof coarse, &ci);
        printf("created collection '%s': dim %d, max-doc-vectors %d, max-query-vectors %d, dtype %s, "
               "ram-vectors %d, coarse-vectors %d, coarse-index %s%s%s\n", ci.name, ci.dim, ci.max_doc_vectors,
               ci.max_query_vectors, ci.dtype, ci.ram_vectors, ci.coarse_vectors, coarse,
               ci.fields[0] ? ", fields " : "", ci.fields);
    }
    return CLI_OK;
}

static int collection_list(cli_t *c, int argc, char **argv) {
    int rc = cli_parse(c, &list_cmd, NULL, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if (!cli_connect(c)) return CLI_FAIL;
    me_collection_info_t *cs = NULL;
    size_t n = 0;
    me_status_t st;
    if (me_client_list_collections(c->client, &cs, &n, &st) != 0)
        return cli_status_error(c, &st, "cannot list collections");
    if (c->g.json) {
        me_json_writer_t j;
        cli_json_begin(&j, stdout);
        me_json_arr_begin(&j, "collections");
        for (size_t i = 0; i < n; i++) json_collection(&j, NULL, &cs[i]);
        me_json_arr_end(&j);
        cli_json_end(&j);
    } else if (n == 0) {
        printf("no collections (create one with 'metaembed collection create NAME --dim D')\n");
    } else {
        print_collections(stdout, cs, n, "");
    }
    free(cs);
    return CLI_OK;
}

/* On a terminal a drop is confirmed by typing the collection's name, as a
 * mistyped command would otherwise lose every document at once. */
static int confirm_drop(cli_t *c, const char *name) {
    me_collection_info_t ci;
    int rc = cli_find_collection(c, name, &ci);
    if (rc != CLI_OK) return rc;
    fprintf(stderr, "drop collection '%s' and its %llu documents? This cannot be undone.\n"
                    "type the name to confirm (or run with --yes): ", name, (unsigned long long)ci.documents);
    fflush(stderr);
    char line[ME_CFG_STR_MAX + 2];
    if (!fgets(line, sizeof line, stdin)) line[0] = 0;
    line[strcspn(line, "\r\n")] = 0;
    if (strcmp(line, name) != 0)
        return cli_error(c, CLI_FAIL, "not dropped: the answer was not '%s' (nothing changed)", name);
    return CLI_OK;
}

static int collection_drop(cli_t *c, int argc, char **argv) {
    drop_opts_t o;
    char err[256];
    me_config_defaults(drop_table, &o, err, sizeof err);
    char *pos[1];
    int npos = 0;
    int rc = cli_parse(c, &drop_cmd, &o, argc, argv, pos, &npos);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if (npos != 1) return cli_usage_error(c, "needs the collection NAME");
    if (!cli_connect(c)) return CLI_FAIL;
    if (!o.yes && isatty(STDIN_FILENO) && isatty(STDERR_FILENO) && (rc = confirm_drop(c, pos[0])) != CLI_OK)
        return rc;
    me_status_t st;
    if (me_client_drop_collection(c->client, pos[0], &st) != 0) {
        char what[128];
        snprintf(what, sizeof what, "cannot drop collection '%s'", pos[0]);
        return cli_status_error(c, &st, what);
    }
    if (c->g.json) {
        me_json_writer_t j;
        cli_json_begin(&j, stdout);
        me_json_put_str(&j, "dropped", pos[0]);
        cli_json_end(&j);
    } else {
        printf("dropped collection '%s'\n", pos[0]);
    }
    return CLI_OK;
}

int cli_cmd_collection(cli_t *c, int argc, char **argv) {
    if (argc == 0) {
        c->cmd = "collection";
        collection_usage(stderr);
        return cli_usage_error(c, "needs a subcommand: create, list, drop or index");
    }
    const char *sub = argv[0];
    if (!strcmp(sub, "-h") || !strcmp(sub, "--help") || !strcmp(sub, "help")) {
        collection_usage(stdout);
        return CLI_OK;
    }
    if (!strcmp(sub, "create")) { c->cmd = create_cmd.name; return collection_create(c, argc - 1, argv + 1); }
    if (!strcmp(sub, "list")) { c->cmd = list_cmd.name; return collection_list(c, argc - 1, argv + 1); }
    if (!strcmp(sub, "drop")) { c->cmd = drop_cmd.name; return collection_drop(c, argc - 1, argv + 1); }
    if (!strcmp(sub, "index")) { c->cmd = index_cmd.name; return collection_index(c, argc - 1, argv + 1); }
    c->cmd = "collection";
    return cli_usage_error(c, "unknown subcommand '%s' (expected create, list, drop or index)", sub);
}

/* ---- get ---- */

typedef struct {
    char collection[ME_CFG_STR_MAX];
    int vectors;
    char out[ME_CFG_STR_MAX], ids_out[ME_CFG_STR_MAX], filter[ME_CFG_STR_MAX];
    long long limit;
} get_opts_t;

static const me_cfg_opt_t get_table[] = {
    { "collection", ME_CFG_STRING, offsetof(get_opts_t, collection), "", 0, 0, NULL, "collection to read (required)" },
    { "vectors", ME_CFG_BOOL, offsetof(get_opts_t, vectors), "false", 0, 1, NULL,
      "also print each document's vectors (f32)" },
    { "out", ME_CFG_STRING, offsetof(get_opts_t, out), "", 0, 0, NULL,
      "write the found documents' vectors to FILE.npy, f32 [N, R, D] with zero rows as padding "
      "(the shape 'ingest --vectors' reads)" },
    { "ids-out", ME_CFG_STRING, offsetof(get_opts_t, ids_out), "", 0, 0, NULL,
      "with --out: write the found ids, one per line, in the file's order (for 'ingest --ids')" },
    { "filter", ME_CFG_STRING, offsetof(get_opts_t, filter), "", 0, 0, NULL,
      "instead of IDs: the documents it matches, in id order ('section=games AND year>=2020', JSON, or @FILE)" },
    { "limit", ME_CFG_INT, offsetof(get_opts_t, limit), "100", 1, ME_LIST_IDS_MAX, NULL,
      "with --filter: at most this many documents (the first in id order)" },
    { NULL, 0, 0, NULL, 0, 0, NULL, NULL },
};

static const cli_cmd_t get_cmd = {
    "get", "--collection NAME [--vectors] [--out FILE.npy [--ids-out ids.txt]] (ID... | --filter F [--limit N])",
    "Prints the documents with these ids (or the first --limit a filter matches, in id order):\n"
    "metadata and, with --vectors, their vectors.\n"
    "--out exports the vectors as .npy (and --ids-out their ids), so they can be ingested elsewhere.\n"
    "Exits 1 when an id is not found (the others are still printed).",
    get_table, 1 << 20, 0,
};

/* The found records as one f32 [N, R, D] array, R the most rows of any
 * (shorter documents padded with zero rows, which ingest treats as
 * padding), and their ids one per line. */
static int export_vectors(cli_t *c, const me_record_t *recs, size_t n, const char *npy, const char *ids_path) {
    int rows = 1, dim = n ? recs[0].dim : 1;
    for (size_t i = 0; i < n; i++) {
        if (recs[i].rows > rows) rows = recs[i].rows;
        if (recs[i].dim != dim) return cli_error(c, CLI_FAIL, "documents of different dims (%d, %d): cannot export as one array", dim, recs[i].dim);
    }
    size_t per = (size_t)rows * (size_t)dim;
    float *v = calloc(n ? n * per : 1, sizeof *v);
    if (!v) return cli_error(c, CLI_FAIL, "out of memory for %zu x %d x %d vectors", n, rows, dim);
    for (size_t i = 0; i < n; i++)
        if (recs[i].vectors) memcpy(v + i * per, recs[i].vectors, (size_t)recs[i].rows * (size_t)dim * sizeof *v);
    uint64_t shape[3] = { n, (uint64_t)rows, (uint64_t)dim };
    char err[512];
    int rc = me_npy_write(npy, ME_DTYPE_F32, shape, 3, v, 1, err, sizeof err);
    free(v);
    if (rc) return cli_error(c, CLI_FAIL, "cannot write %s: %s", npy, err);
    if (ids_path[0]) {
        FILE *f = fopen(ids_path, "w");
        if (!f) return cli_error(c, CLI_FAIL, "cannot write %s: %s", ids_path, strerror(errno));
        for (size_t i = 0; i < n; i++) fprintf(f, "%s\n", recs[i].id);
        if (fclose(f) != 0) return cli_error(c, CLI_FAIL, "cannot write %s: %s", ids_path, strerror(errno));
    }
    if (!c->g.json) fprintf(stderr, "wrote %zu x %d x %d vectors to %s%s%s\n", n, rows, dim, npy,
                            ids_path[0] ? " and their ids to " : "", ids_path);
    return CLI_OK;
}

static void print_text_bytes(FILE *out, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) fputc(p[i] >= 0x20 || p[i] == '\t' ? p[i] : '?', out);
}

int cli_cmd_get(cli_t *c, int argc, char **argv) {
    get_opts_t o;
    char err[256];
    me_config_defaults(get_table, &o, err, sizeof err);
    char **ids = calloc((size_t)argc + 1, sizeof *ids);
    if (!ids) return cli_error(c, CLI_FAIL, "out of memory");
    int nids = 0, rc = cli_parse(c, &get_cmd, &o, argc, argv, ids, &nids);
    if (rc) { free(ids); return rc < 0 ? CLI_OK : rc; }
    if (!o.collection[0]) { free(ids); return cli_usage_error(c, "needs --collection NAME"); }
    if (nids && o.filter[0]) { free(ids); return cli_usage_error(c, "give document IDs or --filter, not both"); }
    if (nids == 0 && !o.filter[0]) { free(ids); return cli_usage_error(c, "needs at least one document ID (or --filter F)"); }
    if (o.ids_out[0] && !o.out[0]) { free(ids); return cli_usage_error(c, "--ids-out goes with --out FILE.npy"); }
    if (!cli_connect(c)) { free(ids); return CLI_FAIL; }
    me_record_t *recs = NULL;
    size_t n = 0;
    me_status_t st;
    char **matched = NULL, *next = NULL, *filter = NULL;
    size_t nmatched = 0;
    if (o.filter[0]) {
        if ((rc = cli_filter_arg(c, o.filter, &filter)) != CLI_OK) { free(ids); return rc; }
        rc = me_client_list_ids_where(c->client, o.collection, filter, NULL, (uint32_t)o.limit, &matched, &nmatched,
                                      &next, &st);
        free(filter);
        if (rc) { free(ids); return cli_status_error(c, &st, "get --filter failed"); }
        free(ids);
        ids = matched;
        nids = (int)nmatched;
        if (next && !c->g.json) fprintf(stderr, "more documents match: the first %d by id are shown (--limit)\n", nids);
        free(next);
    }
    if (nids && me_client_get(c->client, o.collection, (const char *const *)ids, (size_t)nids, o.vectors || o.out[0],
                              &recs, &n, &st)) {
        if (matched) me_ids_free(matched, nmatched);
        else free(ids);
        return cli_status_error(c, &st, "get failed");
    }
    /* Found documents come back in request order: walk both lists. */
    char **missing = calloc((size_t)nids, sizeof *missing);
    size_t nmissing = 0, r = 0;
    for (int i = 0; i < nids && missing; i++) {
        if (r < n && !strcmp(recs[r].id, ids[i])) r++;
        else missing[nmissing++] = ids[i];
    }
    if (c->g.json) {
        me_json_writer_t j;
        cli_json_begin(&j, stdout);
        me_json_put_str(&j, "collection", o.collection);
        me_json_arr_begin(&j, "documents");
        for (size_t i = 0; i < n; i++) {
            me_json_obj_begin(&j, NULL);
            me_json_put_str(&j, "id", recs[i].id);
            cli_json_meta(&j, "metadata", recs[i].metadata, recs[i].metadata_len);
            if (o.vectors) {
                me_json_put_int(&j, "rows", recs[i].rows);
                me_json_put_int(&j, "dim", recs[i].dim);
                me_json_arr_begin(&j, "vectors");
                for (int a = 0; a < recs[i].rows; a++) {
                    me_json_arr_begin(&j, NULL);
                    for (int b = 0; b < recs[i].dim; b++)
                        me_json_put_num_prec(&j, NULL, recs[i].vectors[(size_t)a * recs[i].dim + b], 9);
                    me_json_arr_end(&j);
                }
                me_json_arr_end(&j);
            }
            me_json_obj_end(&j);
        }
        me_json_arr_end(&j);
        me_json_arr_begin(&j, "missing");
        for (size_t i = 0; i < nmissing; i++) me_json_put_str(&j, NULL, missing[i]);
        me_json_arr_end(&j);
        cli_json_end(&j);
    } else {
        for (size_t i = 0; i < n; i++) {
            printf("%s", recs[i].id);
            if (o.vectors) printf("  %d x %d", recs[i].rows, recs[i].dim);
            if (recs[i].metadata_len) {
                fputs("  ", stdout);
                print_text_bytes(stdout, recs[i].metadata, recs[i].metadata_len);
            }
            fputc('\n', stdout);
            if (o.vectors && recs[i].vectors)
                for (int a = 0; a < recs[i].rows; a++) {
                    printf("  [%d]", a);
                    for (int b = 0; b < recs[i].dim; b++) printf(" %.6g", recs[i].vectors[(size_t)a * recs[i].dim + b]);
                    fputc('\n', stdout);
                }
        }
    }
    fflush(stdout);
    rc = o.out[0] ? export_vectors(c, recs, n, o.out, o.ids_out) : CLI_OK;
    if (nmissing) {
        fprintf(stderr, "metaembed: get: %zu of %d ids not found in '%s':", nmissing, nids, o.collection);
        for (size_t i = 0; i < nmissing && i < 20; i++) fprintf(stderr, " %s", missing[i]);
        fprintf(stderr, "%s\n", nmissing > 20 ? " ..." : "");
        rc = CLI_FAIL;
    }
    free(missing);
    me_records_free(recs, n);
    if (matched) me_ids_free(matched, nmatched);
    else free(ids);
    return rc;
}

/* ---- delete ---- */

typedef struct {
    char collection[ME_CFG_STR_MAX], filter[ME_CFG_STR_MAX];
    int yes;
} delete_opts_t;

static const me_cfg_opt_t delete_table[] = {
    { "collection", ME_CFG_STRING, offsetof(delete_opts_t, collection), "", 0, 0, NULL,
      "collection to delete from (required)" },
    { "filter", ME_CFG_STRING, offsetof(delete_opts_t, filter), "", 0, 0, NULL,
      "instead of IDs: every document it matches ('section=games AND year<2000', JSON, or @FILE)" },
    { "yes", ME_CFG_BOOL, offsetof(delete_opts_t, yes), "false", 0, 1, NULL,
      "with --filter: delete without asking (on a terminal the command asks first)" },
    { NULL, 0, 0, NULL, 0, 0, NULL, NULL },
};

static const cli_cmd_t delete_cmd = {
    "delete", "--collection NAME (ID... | --filter F [--yes])",
    "Deletes the documents with these ids, or every document a filter matches, and prints how many\n"
    "existed. With --filter on a terminal it first says how many match and asks (--yes skips that).",
    delete_table, 1 << 20, 0,
};

/* delete --filter: on a terminal, the matching count is confirmed first. */
static int delete_where(cli_t *c, const delete_opts_t *o) {
    char *filter = NULL;
    int rc = cli_filter_arg(c, o->filter, &filter);
    if (rc != CLI_OK) return rc;
    me_status_t st;
    if (!o->yes && isatty(STDIN_FILENO) && isatty(STDERR_FILENO)) {
        uint64_t n = 0;
        if (me_client_count(c->client, o->collection, filter, &n, &st) != 0) {
            free(filter);
            return cli_status_error(c, &st, "delete --filter failed");
        }
        fprintf(stderr, "delete the %llu documents of '%s' the filter matches? This cannot be undone. [y/N] ",
                (unsigned long long)n, o->collection);
        fflush(stderr);
        char line[16];
        if (!fgets(line, sizeof line, stdin) || (line[0] != 'y' && line[0] != 'Y')) {
            free(filter);
            return cli_error(c, CLI_FAIL, "not deleted (nothing changed)");
        }
    }
    uint32_t deleted = 0;
    rc = me_client_delete_where(c->client, o->collection, filter, &deleted, &st);
    free(filter);
    if (rc) return cli_status_error(c, &st, "delete --filter failed");
    if (c->g.json) {
        me_json_writer_t j;
        cli_json_begin(&j, stdout);
        me_json_put_str(&j, "collection", o->collection);
        me_json_put_u64(&j, "deleted", deleted);
        cli_json_end(&j);
    } else {
        printf("deleted %u documents from '%s'\n", deleted, o->collection);
    }
    return CLI_OK;
}

int cli_cmd_delete(cli_t *c, int argc, char **argv) {
    delete_opts_t o;
    char err[256];
    me_config_defaults(delete_table, &o, err, sizeof err);
    char **ids = calloc((size_t)argc + 1, sizeof *ids);
    if (!ids) return cli_error(c, CLI_FAIL, "out of memory");
    int nids = 0, rc = cli_parse(c, &delete_cmd, &o, argc, argv, ids, &nids);
    if (rc) { free(ids); return rc < 0 ? CLI_OK : rc; }
    if (!o.collection[0]) { free(ids); return cli_usage_error(c, "needs --collection NAME"); }
    if (nids && o.filter[0]) { free(ids); return cli_usage_error(c, "give document IDs or --filter, not both"); }
    if (nids == 0 && !o.filter[0]) { free(ids); return cli_usage_error(c, "needs at least one document ID (or --filter F)"); }
    if (!cli_connect(c)) { free(ids); return CLI_FAIL; }
    if (o.filter[0]) { free(ids); return delete_where(c, &o); }
    uint32_t deleted = 0;
    me_status_t st;
    rc = me_client_delete(c->client, o.collection, (const char *const *)ids, (size_t)nids, &deleted, &st);
    free(ids);
    if (rc) return cli_status_error(c, &st, "delete failed");
    if (c->g.json) {
        me_json_writer_t j;
        cli_json_begin(&j, stdout);
        me_json_put_str(&j, "collection", o.collection);
        me_json_put_int(&j, "requested", nids);
        me_json_put_u64(&j, "deleted", deleted);
        cli_json_end(&j);
    } else {
        printf("deleted %u of %d documents from '%s'\n", deleted, nids, o.collection);
    }
    return CLI_OK;
}

/* ---- count ---- */

typedef struct {
    char collection[ME_CFG_STR_MAX], filter[ME_CFG_STR_MAX];
} count_opts_t;

static const me_cfg_opt_t count_table[] = {
    { "collection", ME_CFG_STRING, offsetof(count_opts_t, collection), "", 0, 0, NULL, "collection to count (required)" },
    { "filter", ME_CFG_STRING, offsetof(count_opts_t, filter), "", 0, 0, NULL, CLI_FILTER_HELP },
    { NULL, 0, 0, NULL, 0, 0, NULL, NULL },
};

static const cli_cmd_t count_cmd = {
    "count", "--collection NAME [--filter F]",
    "Prints how many documents the collection holds, or how many of them a filter matches.", count_table, 0, 0,
};

int cli_cmd_count(cli_t *c, int argc, char **argv) {
    count_opts_t o;
    char err[256], *filter = NULL;
    me_config_defaults(count_table, &o, err, sizeof err);
    int rc = cli_parse(c, &count_cmd, &o, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if (!o.collection[0]) return cli_usage_error(c, "needs --collection NAME");
    if ((rc = cli_filter_arg(c, o.filter, &filter)) != CLI_OK) return rc;
    if (!cli_connect(c)) { free(filter); return CLI_FAIL; }
    uint64_t n = 0;
    me_status_t st;
    rc = me_client_count(c->client, o.collection, filter, &n, &st);
    free(filter);
    if (rc) return cli_status_error(c, &st, "count failed");
    if (c->g.json) {
        me_json_writer_t j;
        cli_json_begin(&j, stdout);
        me_json_put_str(&j, "collection", o.collection);
        me_json_put_u64(&j, "count", n);
        cli_json_end(&j);
    } else {
        printf("%llu\n", (unsigned long long)n);
    }
    return CLI_OK;
}

/* ---- status ---- */

static const cli_cmd_t status_cmd = {
    "status", "",
    "Prints the server's groups and replicas (endpoint, health, documents, latency) and its collections.\n"
    "A shard has no groups: it is shown as one replica.",
    NULL, 0, 0,
};

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* The cluster map's "encoders" line becomes a group of that name. */
static int is_encoder_group(const me_group_info_t *g) { return !strcmp(g->name, "encoders"); }

int cli_cmd_status(cli_t *c, int argc, char **argv) {
    int rc = cli_parse(c, &status_cmd, NULL, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if (!cli_connect(c)) return CLI_FAIL;
    me_stats_t s;
    me_status_t st;
    double t0 = now_ms();
    if (me_client_stats(c->client, NULL, &s, &st) != 0) return cli_status_error(c, &st, "cannot read stats");
    double rtt = now_ms() - t0;
    uint64_t docs = 0;
    for (size_t i = 0; i < s.n_collections; i++) docs += s.collections[i].documents;
    /* A shard reports no groups: show it as the one replica we just timed. */
    me_replica_info_t self = { .up = 1, .documents = docs, .latency_ms = rtt };
    snprintf(self.endpoint, sizeof self.endpoint, "%.*s", (int)sizeof self.endpoint - 1, c->g.addr);
    me_group_info_t self_group = { .replicas = &self, .n_replicas = 1 };
    snprintf(self_group.name, sizeof self_group.name, "-");
    const me_group_info_t *groups = s.n_groups ? s.groups : &self_group;
    size_t ngroups = s.n_groups ? s.n_groups : 1;

    if (c->g.json) {
        me_json_writer_t j;
        cli_json_begin(&j, stdout);
        me_json_put_str(&j, "addr", c->g.addr);
        me_json_put_str(&j, "role", s.role);
        me_json_put_u64(&j, "uptime_ms", s.uptime_ms);
        me_json_put_u64(&j, "requests", s.requests);
        me_json_put_u64(&j, "errors", s.errors);
        me_json_put_u64(&j, "disk_bytes", s.disk_bytes);
        me_json_arr_begin(&j, "groups");
        for (size_t g = 0; g < ngroups; g++) {
            me_json_obj_begin(&j, NULL);
            me_json_put_str(&j, "name", groups[g].name);
            me_json_put_str(&j, "kind", is_encoder_group(&groups[g]) ? "encoders" : "shards");
            me_json_arr_begin(&j, "replicas");
            for (size_t r = 0; r < groups[g].n_replicas; r++) {
                const me_replica_info_t *ri = &groups[g].replicas[r];
                me_json_obj_begin(&j, NULL);
                me_json_put_str(&j, "endpoint", ri->endpoint);
                me_json_put_bool(&j, "up", ri->up);
                me_json_put_u64(&j, "documents", ri->documents);
                me_json_put_num_prec(&j, "latency_ms", ri->latency_ms, 9);
                me_json_obj_end(&j);
            }
            me_json_arr_end(&j);
            me_json_obj_end(&j);
        }
        me_json_arr_end(&j);
        me_json_arr_begin(&j, "collections");
        for (size_t i = 0; i < s.n_collections; i++) json_collection(&j, NULL, &s.collections[i]);
        me_json_arr_end(&j);
        cli_json_end(&j);
    } else {
        /* A coordinator stores nothing itself: its line counts the cluster's
         * documents; a shard's says what it holds on disk. */
        char where[64];
        if (s.n_groups) snprintf(where, sizeof where, "%llu documents", (unsigned long long)docs);
        else cli_bytes(where, sizeof where, s.disk_bytes), strcat(where, " on disk");
        printf("%s: %s, up %.0f s, %llu requests, %llu errors, %s\n\n", c->g.addr, s.role, s.uptime_ms / 1e3,
               (unsigned long long)s.requests, (unsigned long long)s.errors, where);
        static const char *const head[] = { "GROUP", "REPLICA", "HEALTH", "DOCUMENTS", "LATENCY_MS" };
        cli_table_t t;
        tbl_init(&t, 5, head, 0x18);
        for (size_t g = 0; g < ngroups; g++)
            for (size_t r = 0; r < groups[g].n_replicas; r++) {
                const me_replica_info_t *ri = &groups[g].replicas[r];
                char d[32], l[32];
                /* Encoders hold no documents: a count there would read as data lost. */
                if (is_encoder_group(&groups[g])) snprintf(d, sizeof d, "-");
                else snprintf(d, sizeof d, "%llu", (unsigned long long)ri->documents);
                snprintf(l, sizeof l, "%.2f", ri->latency_ms);
                const char *row[] = { groups[g].name, ri->endpoint, ri->up ? "up" : "down", d, l };
                tbl_row(&t, row);
            }
        tbl_print(&t, stdout, "");
        tbl_free(&t);
        fputc('\n', stdout);
        if (s.n_collections) print_collections(stdout, s.collections, s.n_collections, "");
        else printf("no collections\n");
    }
    me_stats_free(&s);
    return CLI_OK;
}

/* ---- main ---- */

static const cli_cmd_t main_cmd = { "", "COMMAND ...", "", NULL, 0, 0 };

int main(int argc, char **argv) {
    cli_t c;
    memset(&c, 0, sizeof c);
    char err[256];
    me_config_defaults(cli_global_opts, &c.g, err, sizeof err);

    /* Global options up to the command word. */
    int i = 1;
    while (i < argc && argv[i][0] == '-' && argv[i][1]) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { main_usage(stdout); return CLI_OK; }
        if (!strcmp(a, "--version")) { printf("metaembed %s\n", ME_VERSION); return CLI_OK; }
        if (!strcmp(a, "--")) break;
        int takes_value = 0;
        for (const me_cfg_opt_t *o = cli_global_opts; o->name; o++)
            if (!strncmp(a, "--", 2) && !strcmp(a + 2, o->name) && o->type != ME_CFG_BOOL) takes_value = 1;
        i += takes_value ? 2 : 1;
    }
    if (i > argc) i = argc;
    int rc = cli_parse(&c, &main_cmd, NULL, i - 1, argv + 1, NULL, NULL);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if (i < argc && !strcmp(argv[i], "--")) i++;
    if (i >= argc) {
        main_usage(stderr);
        return cli_usage_error(&c, "needs a COMMAND");
    }
    const char *cmd = argv[i];
    int sub_argc = argc - i - 1;
    char **sub_argv = argv + i + 1;
    static char help_flag[] = "--help";
    char *hv[2];
    if (!strcmp(cmd, "help")) {
        if (sub_argc == 0) { main_usage(stdout); return CLI_OK; }
        /* "metaembed help search" = "metaembed search --help" */
        cmd = sub_argv[0];
        if ((!strcmp(cmd, "collection") || !strcmp(cmd, "snapshot")) && sub_argc > 1) {
            hv[0] = sub_argv[1];
            hv[1] = help_flag;
            sub_argc = 2;
        }
        else { hv[0] = help_flag; sub_argc = 1; }
        sub_argv = hv;
    }
    c.cmd = cmd;
    if (!strcmp(cmd, "collection")) rc = cli_cmd_collection(&c, sub_argc, sub_argv);
    else if (!strcmp(cmd, "ingest")) rc = cli_cmd_ingest(&c, sub_argc, sub_argv);
    else if (!strcmp(cmd, "search")) rc = cli_cmd_search(&c, sub_argc, sub_argv);
    else if (!strcmp(cmd, "get")) rc = cli_cmd_get(&c, sub_argc, sub_argv);
    else if (!strcmp(cmd, "ids")) rc = cli_cmd_ids(&c, sub_argc, sub_argv);
    else if (!strcmp(cmd, "delete")) rc = cli_cmd_delete(&c, sub_argc, sub_argv);
    else if (!strcmp(cmd, "count")) rc = cli_cmd_count(&c, sub_argc, sub_argv);
    else if (!strcmp(cmd, "snapshot")) rc = cli_cmd_snapshot(&c, sub_argc, sub_argv);
    else if (!strcmp(cmd, "reshard")) rc = cli_cmd_reshard(&c, sub_argc, sub_argv);
    else if (!strcmp(cmd, "status")) rc = cli_cmd_status(&c, sub_argc, sub_argv);
    else if (!strcmp(cmd, "train")) rc = cli_cmd_train(&c, sub_argc, sub_argv);
    else if (!strcmp(cmd, "encode")) rc = cli_cmd_encode(&c, sub_argc, sub_argv);
    else if (!strcmp(cmd, "eval")) rc = cli_cmd_eval(&c, sub_argc, sub_argv);
    else if (!strcmp(cmd, "keygen")) rc = cli_cmd_keygen(&c, sub_argc, sub_argv);
    else {
        c.cmd = NULL;
        rc = cli_usage_error(&c, "unknown command '%s' (commands: collection, ingest, search, get, ids, "
                                 "delete, count, status, snapshot, reshard, train, encode, eval, keygen)", cmd);
    }
    me_client_close(c.client);
    return rc;
}
