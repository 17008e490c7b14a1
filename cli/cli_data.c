/* metaembed CLI: ingest (.npy vectors + ids + metadata → batched upserts)
 * and search (.npy queries → ranked hits). */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "common/image.h"
#include "encoder/imageset.h"
#include "common/npy.h"
#include "common/progress.h"
#include "common/validate.h"

#define MAX_ID_BYTES 256
/* Upserts stay well under the server's 64 MiB message limit. */
#define BATCH_BYTES (32u << 20)

/* Connects, finds the collection and checks an .npy's vector dimension D
 * and vectors per item R against it (R_c for documents, R_q for queries). */
static int connect_and_check_npy(cli_t *c, const char *path, const char *shape, const char *coll, uint64_t d,
                                 uint64_t r, int query_side, me_collection_info_t *ci) {
    if (!cli_connect(c)) return CLI_FAIL;
    int rc = cli_find_collection(c, coll, ci);
    if (rc != CLI_OK) return rc;
    if (d != (uint64_t)ci->dim)
        return cli_error(c, CLI_FAIL, "%s has dimension D=%llu (shape %s) but collection '%s' has dim %d (a collection "
                         "for these vectors: 'metaembed collection create NAME --dim %llu --max-%s-vectors %llu')",
                         path, (unsigned long long)d, shape, coll, ci->dim, (unsigned long long)d,
                         query_side ? "query" : "doc", (unsigned long long)r);
    int max = query_side ? ci->max_query_vectors : ci->max_doc_vectors;
    if (r > (uint64_t)max)
        return cli_error(c, CLI_FAIL, "%s has R=%llu vectors per %s (shape %s) but collection '%s' takes at most %d "
                         "(its max-%s-vectors)", path, (unsigned long long)r, query_side ? "query" : "document",
                         shape, coll, max, query_side ? "query" : "doc");
    return CLI_OK;
}

/* ---- one-item-per-line text files ---- */

typedef struct {
    char *buf;
    char **line;
    size_t *len;
    size_t n;
} lines_t;

static int by_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Lines that repeat an earlier line's text (ids given twice): their
 * documents replace the earlier ones, so the collection grows by n minus
 * this. 0 when memory is short (only the summary is then less precise). */
static size_t count_repeated(const lines_t *l) {
    char **s = malloc((l->n ? l->n : 1) * sizeof *s);
    if (!s) return 0;
    memcpy(s, l->line, l->n * sizeof *s);
    qsort(s, l->n, sizeof *s, by_str);
    size_t rep = 0;
    for (size_t i = 1; i < l->n; i++) rep += !strcmp(s[i - 1], s[i]);
    free(s);
    return rep;
}

static void lines_free(lines_t *l) {
    free(l->buf);
    free(l->line);
    free(l->len);
    memset(l, 0, sizeof *l);
}

/* Reads path and splits it at '\n' (a final line without one counts; a
 * trailing '\r' is dropped). */
static int read_lines(cli_t *c, const char *path, lines_t *l) {
    memset(l, 0, sizeof *l);
    FILE *f = fopen(path, "rb");
    if (!f) return cli_error(c, CLI_FAIL, "cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return cli_error(c, CLI_FAIL, "%s is not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    l->buf = malloc(size + 1);
    if (!l->buf) { fclose(f); return cli_error(c, CLI_FAIL, "out of memory reading %s", path); }
    size_t got = fread(l->buf, 1, size, f);
    fclose(f);
    if (got != size) { lines_free(l); return cli_error(c, CLI_FAIL, "cannot read %s", path); }
    l->buf[size] = 0;
    size_t n = 0;
    for (size_t i = 0; i < size; i++) n += l->buf[i] == '\n';
    if (size && l->buf[size - 1] != '\n') n++;
    l->line = calloc(n ? n : 1, sizeof *l->line);
    l->len = calloc(n ? n : 1, sizeof *l->len);
    if (!l->line || !l->len) { lines_free(l); return cli_error(c, CLI_FAIL, "out of memory reading %s", path); }
    char *p = l->buf, *end = l->buf + size;
    for (size_t i = 0; i < n; i++) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *e = nl ? nl : end;
        if (e > p && e[-1] == '\r') e--;
        *e = 0;
        l->line[i] = p;
        l->len[i] = (size_t)(e - p);
        p = nl ? nl + 1 : end;
    }
    l->n = n;
    return CLI_OK;
}

/* ---- ingest ---- */

typedef struct {
    char collection[ME_CFG_STR_MAX], vectors[ME_CFG_STR_MAX], ids[ME_CFG_STR_MAX], meta[ME_CFG_STR_MAX];
    char stream[ME_CFG_STR_MAX];
    long long batch, resend_s, wait_s;
    int force, strict, set_texts;
} ingest_opts_t;

static const me_cfg_opt_t ingest_table[] = {
    { "collection", ME_CFG_STRING, offsetof(ingest_opts_t, collection), "", 0, 0, NULL,
      "collection to write into (required)" },
    { "vectors", ME_CFG_STRING, offsetof(ingest_opts_t, vectors), "", 0, 0, NULL,
      "float32 or float16 array of shape [N, R, D] (with --ids; or give corpus.jsonl instead)" },
    { "ids", ME_CFG_STRING, offsetof(ingest_opts_t, ids), "", 0, 0, NULL,
      "document ids, one per line, N lines (with --vectors)" },
    { "meta", ME_CFG_STRING, offsetof(ingest_opts_t, meta), "", 0, 0, NULL,
      "metadata: one JSON object per line, N lines, stored verbatim" },
    { "batch", ME_CFG_INT, offsetof(ingest_opts_t, batch), "256", 1, 4096, NULL,
      "documents per upsert request (texts per stream batch: 16 when this is left at 256)" },
    { "stream", ME_CFG_STRING, offsetof(ingest_opts_t, stream), "tcp://127.0.0.1:7790", 0, 0, NULL,
      "text ingest: endpoint to bind for the encoders' --ingest-from" },
    { "resend-s", ME_CFG_INT, offsetof(ingest_opts_t, resend_s), "30", 1, 3600, NULL,
      "text ingest: send a batch again when no encoder acknowledged it within this many seconds" },
    { "wait-s", ME_CFG_INT, offsetof(ingest_opts_t, wait_s), "60", 1, 86400, NULL,
      "text ingest: give up when no encoder connects to --stream, or none acknowledges a batch, this long" },
    { "strict", ME_CFG_BOOL, offsetof(ingest_opts_t, strict), "false", 0, 1, NULL,
      "text ingest: a malformed line stops the run before anything is sent (default: skip it, exit status 3)" },
    { "force", ME_CFG_BOOL, offsetof(ingest_opts_t, force), "false", 0, 1, NULL,
      "text ingest: re-encode ids that are already stored (default: skip them, so a re-run resumes)" },
    { "set-texts", ME_CFG_BOOL, offsetof(ingest_opts_t, set_texts), "false", 0, 1, NULL,
      "with an image-text set (a folder with emoji.jsonl): ingest its concept texts (ids = concept ids) "
      "instead of its images (ids ID-STYLE)" },
    { NULL, 0, 0, NULL, 0, 0, NULL, NULL },
};

static const cli_cmd_t ingest_cmd = {
    "ingest", "--collection NAME (--vectors emb.npy --ids ids.txt [--meta meta.jsonl] | corpus.jsonl)",
    "Upserts N documents: document i has the vectors emb.npy[i] (R rows of dimension D, R at most\n"
    "the collection's max-doc-vectors), id line i of ids.txt and metadata line i of meta.jsonl.\n"
    "Trailing all-zero rows are padding and are not sent (documents may have fewer than R vectors).\n"
    "Everything is checked before the first write; an existing id is replaced. float16 arrays are\n"
    "sent as float16.\n"
    "With corpus.jsonl instead (one object per line with \"id\" and \"text\"), the texts go to the\n"
    "cluster's encoders over a ZeroMQ stream (bound at --stream; encoders run with --ingest-from it),\n"
    "which embed and store them; each batch counts once an encoder acknowledged it stored, and is\n"
    "sent again when none did within --resend-s; with no encoder connected it says so at once and\n"
    "gives up after --wait-s. Malformed lines are reported with their numbers and skipped (exit\n"
    "status 3; --strict refuses the file instead); when an id occurs on several lines the last one\n"
    "is stored; ids already stored are skipped unless --force, so running it again finishes an\n"
    "interrupted ingest. Each line is stored as the document's metadata. A line may name an \"image\"\n"
    "(PNG or JPEG, relative to the file) for an image document; it is decoded first, and a 32x32\n"
    "thumbnail is stored in its metadata. An image-text set's folder (e.g. ../shared/data/emoji)\n"
    "ingests every image of the set, or with --set-texts every concept's text.",
    ingest_table, 1, 0,
};

static int is_zero(const float *v, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (v[i] != 0.0f) return 0;
    return 1;
}

/* Rows of each document without trailing zero padding; checks every value
 * so a bad document fails the run before anything is written. */
static int check_vectors(cli_t *c, const me_npy_t *a, const char *path, const lines_t *ids, int f16_target,
                         uint16_t *rows) {
    uint64_t n = a->shape[0], r = a->shape[1], d = a->shape[2];
    float *v = malloc(d * sizeof *v);
    if (!v) return cli_error(c, CLI_FAIL, "out of memory");
    char msg[768] = "";
    me_progress_t p;
    me_progress_init(&p, "check", "docs", n, -1);
    for (uint64_t i = 0; i < n && !msg[0]; i++) {
        uint64_t kept = 0, first_zero = r;
        for (uint64_t j = 0; j < r && !msg[0]; j++) {
            me_npy_read_f32(a, (i * r + j) * d, d, v);
            for (uint64_t k = 0; k < d && !msg[0]; k++) {
                if (!isfinite(v[k]))
                    snprintf(msg, sizeof msg, "document %llu (id '%s') vector %llu holds %s at index %llu",
                             (unsigned long long)i, ids->line[i], (unsigned long long)j,
                             isnan(v[k]) ? "NaN" : "Inf", (unsigned long long)k);
                else if (f16_target && fabsf(v[k]) > 65504.0f)
                    snprintf(msg, sizeof msg, "document %llu (id '%s') vector %llu: %g at index %llu is beyond "
                             "the float16 range the collection stores", (unsigned long long)i, ids->line[i],
                             (unsigned long long)j, v[k], (unsigned long long)k);
            }
            if (msg[0]) break;
            if (is_zero(v, d)) {
                if (first_zero == r) first_zero = j;
                continue;
            }
            if (first_zero != r)
                snprintf(msg, sizeof msg, "document %llu (id '%s') vector %llu is all zeros (only trailing "
                         "all-zero rows are taken as padding)", (unsigned long long)i, ids->line[i],
                         (unsigned long long)first_zero);
            kept = j + 1;
        }
        if (!msg[0] && kept == 0)
            snprintf(msg, sizeof msg, "document %llu (id '%s') has only all-zero vectors", (unsigned long long)i,
                     ids->line[i]);
        rows[i] = (uint16_t)kept;
        if ((i & 63) == 0) me_progress_update(&p, i);
    }
    me_progress_finish(&p);
    free(v);
    if (msg[0]) return cli_error(c, CLI_FAIL, "%s: %s; nothing was written", path, msg);
    return CLI_OK;
}

/* An image-text set as JSON lines for the stream ingest: each image
 * {"id": "ID-STYLE", "image": path, "label"} or (texts) each concept
 * {"id": "ID", "text": "label: tags", "label"}, written to out_path. */
static int imageset_lines(cli_t *c, const char *set, int texts, const char *out_path) {
    me_imageset_t *s;
    char err[1024];
    if (me_imageset_load(set, 0, &s, err, sizeof err) != 0) return cli_error(c, CLI_FAIL, "%s", err);
    FILE *f = fopen(out_path, "w");
    if (!f) { me_imageset_free(s); return cli_error(c, CLI_FAIL, "cannot write %s", out_path); }
    char dir[4096];
    if (!realpath(s->dir, dir)) snprintf(dir, sizeof dir, "%s", s->dir);
    me_json_writer_t w;
    me_json_writer_init_file(&w, f);
    size_t n = texts ? s->n : s->nimages;
    for (size_t i = 0; i < n; i++) {
        const me_concept_t *cc = &s->c[texts ? i : (size_t)s->img_concept[i]];
        char id[300], path[8300];
        me_json_obj_begin(&w, NULL);
        if (texts) {
            me_json_put_str(&w, "id", cc->id);
            me_json_put_str(&w, "text", cc->text);
        } else {
            snprintf(id, sizeof id, "%s-%s", cc->id, s->styles[s->img_style[i]]);
            snprintf(path, sizeof path, "%s/%s", dir, s->img_path[i]);
            me_json_put_str(&w, "id", id);
            me_json_put_str(&w, "image", path);
        }
        me_json_put_str(&w, "label", cc->label);
        me_json_obj_end(&w);
        me_json_write_bytes(&w, "\n", 1);
    }
    int werr = me_json_writer_error(&w);
    me_json_writer_free(&w);
    me_imageset_free(s);
    if (fclose(f) != 0 || werr) return cli_error(c, CLI_FAIL, "cannot write %s", out_path);
    return CLI_OK;
}

int cli_cmd_ingest(cli_t *c, int argc, char **argv) {
    ingest_opts_t o;
    char err[512];
    me_config_defaults(ingest_table, &o, err, sizeof err);
    char *pos[1];
    int npos = 0;
    int rc = cli_parse(c, &ingest_cmd, &o, argc, argv, pos, &npos);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if (!o.collection[0]) return cli_usage_error(c, "needs --collection NAME");
    if (npos) {
        if (o.vectors[0]) return cli_usage_error(c, "give either corpus.jsonl or --vectors, not both");
        cli_ingest_text_opts_t to = { o.stream, o.batch == 256 ? 16 : (int)o.batch, (int)o.resend_s, (int)o.wait_s,
                                      o.force, o.strict };
        if (me_imageset_is(pos[0])) {
            char tmp[] = "/tmp/metaembed-ingest-XXXXXX";
            int fd = mkstemp(tmp);
            if (fd < 0) return cli_error(c, CLI_FAIL, "cannot make a temporary file");
            close(fd);
            rc = imageset_lines(c, pos[0], o.set_texts, tmp);
            if (rc == CLI_OK) rc = cli_ingest_text(c, o.collection, tmp, &to);
            unlink(tmp);
            return rc;
        }
        return cli_ingest_text(c, o.collection, pos[0], &to);
    }
    if (!o.vectors[0]) return cli_usage_error(c, "needs --vectors FILE.npy (shape [N, R, D]) or a corpus.jsonl");
    if (!o.ids[0]) return cli_usage_error(c, "needs --ids FILE (one id per line)");

    me_npy_t a;
    lines_t ids = { 0 }, meta = { 0 };
    uint16_t *rows = NULL;
    me_doc_t *docs = NULL;
    char shp[256];
    if (me_npy_open(&a, o.vectors, err, sizeof err) != 0) return cli_error(c, CLI_FAIL, "%s", err);
    me_npy_shape_str(&a, shp, sizeof shp);
    if (a.ndim != 3) {
        rc = cli_error(c, CLI_FAIL, "%s has shape %s; expected [N, R, D] (documents, vectors per document, "
                       "dimension)", o.vectors, shp);
        goto out;
    }
    uint64_t n = a.shape[0], r = a.shape[1], d = a.shape[2];
    if (n == 0 || r == 0 || d == 0) {
        rc = cli_error(c, CLI_FAIL, "%s has shape %s: no documents or no vectors to ingest", o.vectors, shp);
        goto out;
    }
    if (r > 65535) {
        rc = cli_error(c, CLI_FAIL, "%s has R=%llu vectors per document: too many", o.vectors, (unsigned long long)r);
        goto out;
    }
    if ((rc = read_lines(c, o.ids, &ids)) != CLI_OK) goto out;
    if (ids.n != n) {
        rc = cli_error(c, CLI_FAIL, "%s has %zu lines but %s holds %llu documents (shape %s); give one id per "
                       "line, in the same order", o.ids, ids.n, o.vectors, (unsigned long long)n, shp);
        goto out;
    }
    for (size_t i = 0; i < ids.n; i++) {
        if (ids.len[i] == 0) { rc = cli_error(c, CLI_FAIL, "%s line %zu is empty: every document needs an id", o.ids, i + 1); goto out; }
        if (ids.len[i] > MAX_ID_BYTES) {
            rc = cli_error(c, CLI_FAIL, "%s line %zu: id of %zu bytes, the limit is %d", o.ids, i + 1, ids.len[i],
                           MAX_ID_BYTES);
            goto out;
        }
    }
    if (o.meta[0]) {
        if ((rc = read_lines(c, o.meta, &meta)) != CLI_OK) goto out;
        if (meta.n != n) {
            rc = cli_error(c, CLI_FAIL, "%s has %zu lines but %s holds %llu documents (shape %s); give one JSON "
                           "object per line ({} for none), in the same order", o.meta, meta.n, o.vectors,
                           (unsigned long long)n, shp);
            goto out;
        }
        for (size_t i = 0; i < meta.n; i++) {
            if (meta.len[i] == 0 || meta.line[i][0] != '{' || !me_json_valid(meta.line[i], meta.len[i])) {
                rc = cli_error(c, CLI_FAIL, "%s line %zu is %s; every line must be one JSON object ({} for none)",
                               o.meta, i + 1, meta.len[i] == 0 ? "empty" : meta.line[i][0] != '{'
                               ? "not a JSON object" : "not valid JSON");
                goto out;
            }
        }
    }

    me_collection_info_t ci;
    if ((rc = connect_and_check_npy(c, o.vectors, shp, o.collection, d, r, 0, &ci)) != CLI_OK) goto out;
    rows = calloc(n, sizeof *rows);
    docs = calloc((size_t)o.batch, sizeof *docs);
    if (!rows || !docs) { rc = cli_error(c, CLI_FAIL, "out of memory"); goto out; }
    int f16_target = !strcmp(ci.dtype, "f16") && a.dtype == ME_DTYPE_F32;
    if ((rc = check_vectors(c, &a, o.vectors, &ids, f16_target, rows)) != CLI_OK) goto out;

    size_t esz = me_dtype_size(a.dtype), doc_bytes = (size_t)(r * d) * esz;
    me_progress_t p;
    me_progress_init(&p, "ingest", "docs", n, -1);
    uint64_t batches = 0;
    for (uint64_t start = 0; start < n;) {
        size_t m = 0, bytes = 0;
        while (start + m < n && m < (size_t)o.batch && (m == 0 || bytes < BATCH_BYTES)) {
            uint64_t i = start + m;
            me_doc_t *doc = &docs[m++];
            doc->id = ids.line[i];
            doc->vectors = (const char *)a.data + i * doc_bytes;
            doc->rows = rows[i];
            doc->f16 = a.dtype == ME_DTYPE_F16;
            doc->metadata = meta.n ? meta.line[i] : NULL;
            doc->metadata_len = meta.n ? meta.len[i] : 0;
            bytes += (size_t)rows[i] * d * esz + ids.len[i] + doc->metadata_len + 64;
        }
        me_status_t st;
        if (me_client_upsert(c->client, o.collection, docs, m, (int)d, &st) != 0) {
            me_progress_finish(&p);
            rc = cli_error(c, CLI_FAIL, "upsert of documents %llu..%llu (ids '%s'..'%s') failed (the %llu "
                           "documents before them were stored): %s; re-running the ingest is safe (upserts replace "
                           "documents by id)", (unsigned long long)start, (unsigned long long)(start + m - 1),
                           ids.line[start], ids.line[start + m - 1], (unsigned long long)start, st.message);
            goto out;
        }
        batches++;
        start += m;
        me_progress_update(&p, start);
    }
    me_progress_finish(&p);
    double secs = me_progress_elapsed(&p);
    size_t repeated = count_repeated(&ids);
    if (c->g.json) {
        me_json_writer_t j;
        cli_json_begin(&j, stdout);
        me_json_put_str(&j, "collection", o.collection);
        me_json_put_u64(&j, "documents", n);
        me_json_put_u64(&j, "batches", batches);
        me_json_put_str(&j, "dtype", a.dtype == ME_DTYPE_F16 ? "f16" : "f32");
        me_json_put_num_prec(&j, "seconds", secs, 9);
        me_json_put_num_prec(&j, "docs_per_s", secs > 0 ? (double)n / secs : 0, 9);
        me_json_put_u64(&j, "distinct_ids", n - repeated);
        me_json_put_u64(&j, "repeated_ids", repeated);
        cli_json_end(&j);
    } else {
        printf("ingested %llu documents into '%s' in %.2f s (%.0f docs/s, %llu batches)\n", (unsigned long long)n,
               o.collection, secs, secs > 0 ? (double)n / secs : 0.0, (unsigned long long)batches);
        if (repeated)
            printf("%llu distinct ids: %zu line%s of %s repeated an earlier id (the last one is stored)\n",
                   (unsigned long long)(n - repeated), repeated, repeated == 1 ? "" : "s", o.ids);
    }
    rc = CLI_OK;
out:
    free(docs);
    free(rows);
    lines_free(&ids);
    lines_free(&meta);
    me_npy_close(&a);
    return rc;
}

/* ---- search ---- */

typedef struct {
    char collection[ME_CFG_STR_MAX], vectors[ME_CFG_STR_MAX], budget[ME_CFG_STR_MAX], image[ME_CFG_STR_MAX];
    char mode[ME_CFG_STR_MAX], fusion[ME_CFG_STR_MAX], alpha[ME_CFG_STR_MAX], lexical_text[ME_CFG_STR_MAX];
    char filter[ME_CFG_STR_MAX], min_budget[ME_CFG_STR_MAX];
    long long k, offset, candidates, refine_candidates, row, hybrid_candidates, target_ms, probe;
    int exact, metadata, all_or_nothing, anytime;
} search_opts_t;

static const me_cfg_opt_t search_table[] = {
    { "collection", ME_CFG_STRING, offsetof(search_opts_t, collection), "", 0, 0, NULL,
      "collection to search (required)" },
    { "vectors", ME_CFG_STRING, offsetof(search_opts_t, vectors), "", 0, 0, NULL,
      "float32/float16 queries: [R, D] for one, [N, R, D] for several (or give a free text or --image)" },
    { "image", ME_CFG_STRING, offsetof(search_opts_t, image), "", 0, 0, NULL,
      "an image query (PNG or JPEG file), with the free text after it if one is given; the cluster's "
      "encoders must run an image model" },
    { "budget", ME_CFG_STRING, offsetof(search_opts_t, budget), "", 0, 0, NULL,
      "query and document vectors to use, e.g. 4,16 (0 = all query rows / R_c), or auto (with "
      "--target-ms: the coordinator picks it) [default: 0,0]" },
    { "target-ms", ME_CFG_INT, offsetof(search_opts_t, target_ms), "0", 0, ME_TARGET_MS_MAX, NULL,
      "budget auto: the largest trained budget predicted to answer within this many ms (a --budget "
      "RQ,RC is its ceiling); the answer comes anytime (below) within it" },
    { "min-budget", ME_CFG_STRING, offsetof(search_opts_t, min_budget), "", 0, 0, NULL,
      "with --target-ms: never below this budget, RQ,RC [default: 1,1]" },
    { "anytime", ME_CFG_BOOL, offsetof(search_opts_t, anytime), "false", 0, 1, NULL,
      "when the deadline would pass mid-cascade, answer with the last finished stage's ranking (marked "
      "degraded) instead of failing; on with --target-ms" },
    { "k", ME_CFG_INT, offsetof(search_opts_t, k), "10", 1, ME_CFG_MAX_K_CEILING, NULL,
      "hits per query (the shards refuse more than their --max-k, 10000 by default)" },
    { "offset", ME_CFG_INT, offsetof(search_opts_t, offset), "0", 0, ME_CFG_MAX_K_CEILING, NULL,
      "skip the first N hits of the ranking (the next page; the shards' --max-k bounds k + offset)" },
    { "candidates", ME_CFG_INT, offsetof(search_opts_t, candidates), "0", 0, 1LL << 31, NULL,
      "stage-1 survivors per shard (0 = the server's default)" },
    { "refine-candidates", ME_CFG_INT, offsetof(search_opts_t, refine_candidates), "0", 0, 1LL << 31, NULL,
      "stage-2 survivors per shard, scored at the full budget (0 = the server's default)" },
    { "probe", ME_CFG_INT, offsetof(search_opts_t, probe), "0", 0, 65536, NULL,
      "ivf collections: lists the coarse stage scans, nearest first (0 = the collection's --ivf-probe); "
      "no effect on flat collections, in exact mode or before a shard's index is trained" },
    { "exact", ME_CFG_BOOL, offsetof(search_opts_t, exact), "false", 0, 1, NULL,
      "score every document at the budget (no cascade)" },
    { "metadata", ME_CFG_BOOL, offsetof(search_opts_t, metadata), "false", 0, 1, NULL, "print each hit's metadata" },
    { "all-or-nothing", ME_CFG_BOOL, offsetof(search_opts_t, all_or_nothing), "false", 0, 1, NULL,
      "fail instead of returning a partial answer when a group is down" },
    { "row", ME_CFG_INT, offsetof(search_opts_t, row), "-1", -1, 1LL << 40, NULL,
      "search only query I of an [N, R, D] file (default: every query)" },
    { "mode", ME_CFG_ENUM, offsetof(search_opts_t, mode), "dense", 0, 0, "dense|lexical|hybrid",
      "dense (MaxSim), lexical (BM25 of the text) or hybrid (both, fused)" },
    { "fusion", ME_CFG_ENUM, offsetof(search_opts_t, fusion), "rrf", 0, 0, "rrf|weighted",
      "hybrid: reciprocal rank fusion (k 60) or alpha·minmax(dense) + (1 - alpha)·minmax(BM25)" },
    { "alpha", ME_CFG_STRING, offsetof(search_opts_t, alpha), "", 0, 0, NULL,
      "weighted fusion: the dense score's weight in [0, 1] [default: 0.5]" },
    { "hybrid-candidates", ME_CFG_INT, offsetof(search_opts_t, hybrid_candidates), "0", 0, 10000, NULL,
      "hybrid: n from BM25 and n from the coarse stage, per shard (0 = 100)" },
    { "lexical-text", ME_CFG_STRING, offsetof(search_opts_t, lexical_text), "", 0, 0, NULL,
      "BM25's query text (default: the free text; needed with --vectors in lexical and hybrid mode)" },
    { "filter", ME_CFG_STRING, offsetof(search_opts_t, filter), "", 0, 0, NULL, CLI_FILTER_HELP },
    { NULL, 0, 0, NULL, 0, 0, NULL, NULL },
};

static const cli_cmd_t search_cmd = {
    "search", "--collection NAME (--vectors q.npy | \"free text\" | --image q.png [\"text\"]) [options]",
    "Searches with each query in q.npy, or with a text that the cluster's encoders turn into query\n"
    "vectors, and prints rank, id and score of the best k documents (with a snippet of the stored\n"
    "text for text queries), the budget used, whether the answer is partial (and which groups are\n"
    "missing) and stage timings. --offset N skips the first N hits: the next page of the same\n"
    "ranking (ranks count from N + 1). --mode lexical ranks by BM25 of the text over the shards'\n"
    "index of each document's \"text\"; --mode hybrid fuses BM25 and MaxSim (--fusion, --alpha).\n"
    "--filter keeps only documents whose indexed fields match, in every stage: k hits whenever k match.",
    search_table, 1, 0,
};

static void print_results_json(me_json_writer_t *j, uint64_t q, const me_results_t *res, int with_meta,
                               uint32_t offset);

/* A hit's score as every text table prints it (vector and text queries alike). */
static void format_score(char *out, size_t cap, float score) { snprintf(out, cap, "%.4f", score); }

/* The stage line of every query kind, in one form: name, budget, candidates
 * in -> out, time; a stage that scores nothing (encode) has only its time. */
static void print_stages(const me_results_t *res) {
    printf("  stages:");
    for (int s = 0; s < res->n_stages; s++) {
        const me_stage_info_t *st = &res->stages[s];
        printf("%s %s", s ? ";" : "", st->stage);
        if (st->r_q || st->r_c || st->in || st->out)
            printf(" (r_q=%d r_c=%d) %llu -> %llu", st->r_q, st->r_c, (unsigned long long)st->in,
                   (unsigned long long)st->out);
        printf(" in %.3f ms", st->micros / 1e3);
    }
    printf("\n");
}

/* The stored text of a hit (metadata member "text"), cut to `width` bytes
 * on a UTF-8 boundary, newlines as spaces; "" when there is none. */
static void snippet(const me_hit_t *h, char *out, size_t width) {
    out[0] = 0;
    me_json_doc_t *doc;
    if (!h->metadata_len || me_json_parse(h->metadata, h->metadata_len, &doc, NULL) != 0) return;
    const me_json_t *root = me_json_root(doc);
    /* Text collections show the text; image collections the image's file. */
    const char *t = me_json_str(me_json_get(root, "text"));
    if (!t || !t[0]) t = me_json_str(me_json_get(root, "image"));
    size_t n = 0;
    for (; t && t[n] && n < width; n++) out[n] = t[n] == '\n' || t[n] == '\t' ? ' ' : t[n];
    while (n > 0 && t && t[n] && ((unsigned char)t[n] & 0xc0) == 0x80) n--;  /* do not split a character */
    if (t && t[n] && n >= 3) { out[n - 3] = out[n - 2] = out[n - 1] = '.'; }
    out[n] = 0;
    me_json_free(doc);
}

/* A text query, an image query (o->image), or both: the cluster's encoders
 * make the vectors. */
static int search_text(cli_t *c, const search_opts_t *o, me_search_opts_t *so, const char *text) {
    uint8_t *img = NULL;
    size_t img_len = 0;
    if (o->image[0]) {
        /* Checked here first, so a bad file gets its own error. */
        char err[512];
        me_image_t im;
        if (me_image_read_file(o->image, &img, &img_len, err, sizeof err) != 0) return cli_error(c, CLI_FAIL, "%s", err);
        if (me_image_decode(img, img_len, &im, err, sizeof err) != 0) {
            free(img);
            return cli_error(c, CLI_FAIL, "%s: %s", o->image, err);
        }
        me_image_free(&im);
    }
    if (!cli_connect(c)) { free(img); return CLI_FAIL; }
    so->with_metadata = 1;
    me_results_t res;
    me_status_t st;
    int rc = img ? me_client_search_image(c->client, o->collection, img, img_len, text, so, &res, &st)
                 : me_client_search_text(c->client, o->collection, text, so, &res, &st);
    free(img);
    if (rc != 0) return cli_status_error(c, &st, o->image[0] ? "image search" : "text search");
    if (!text) text = "";
    if (c->g.json) {
        me_json_writer_t j;
        cli_json_begin(&j, stdout);
        me_json_put_str(&j, "collection", o->collection);
        me_json_put_str(&j, "text", text);
        me_json_arr_begin(&j, "queries");
        print_results_json(&j, 0, &res, 1, so->offset);
        me_json_arr_end(&j);
        cli_json_end(&j);
    } else {
        printf("%s%s\"%s\": %zu hits from %llu documents, budget r_q=%d r_c=%d%s%s\n", o->image[0] ? o->image : "",
               o->image[0] ? " + " : "", text, res.n,
               (unsigned long long)res.documents, res.r_q, res.r_c, res.partial ? ", PARTIAL" : "",
               res.degraded ? ", DEGRADED (the deadline cut the cascade short)" : "");
        if (res.budget_reason[0]) printf("budget auto: %s\n", res.budget_reason);
        static const char *const head[] = { "RANK", "ID", "SCORE", "TEXT" };
        cli_table_t t;
        tbl_init(&t, 4, head, 0x5);
        for (size_t i = 0; i < res.n; i++) {
            char rank[24], score[32], snip[96];
            snprintf(rank, sizeof rank, "%zu", so->offset + i + 1);
            format_score(score, sizeof score, res.hits[i].score);
            snippet(&res.hits[i], snip, 72);
            const char *row[] = { rank, res.hits[i].id, score, snip };
            tbl_row(&t, row);
        }
        tbl_print(&t, stdout, "  ");
        tbl_free(&t);
        print_stages(&res);
    }
    me_results_free(&res);
    return CLI_OK;
}

static void print_results_text(uint64_t q, const me_results_t *res, int with_meta, uint32_t offset) {
    printf("query %llu: %zu hits from %llu documents, budget r_q=%d r_c=%d%s%s\n", (unsigned long long)q, res->n,
           (unsigned long long)res->documents, res->r_q, res->r_c, res->partial ? ", PARTIAL" : "",
           res->degraded ? ", DEGRADED (the deadline cut the cascade short)" : "");
    if (res->budget_reason[0]) printf("budget auto: %s\n", res->budget_reason);
    if (res->partial) {
        printf("  missing groups:");
        for (size_t i = 0; i < res->n_missing; i++) printf(" %s", res->missing_groups[i]);
        printf("\n");
    }
    static const char *const head[] = { "RANK", "ID", "SCORE", "METADATA" };
    cli_table_t t;
    tbl_init(&t, with_meta ? 4 : 3, head, 0x5);
    for (size_t i = 0; i < res->n; i++) {
        char rank[24], score[32], *meta = NULL;
        snprintf(rank, sizeof rank, "%zu", offset + i + 1);
        format_score(score, sizeof score, res->hits[i].score);
        if (with_meta) {
            meta = malloc(res->hits[i].metadata_len + 1);
            if (meta) {
                for (size_t b = 0; b < res->hits[i].metadata_len; b++) {
                    unsigned char ch = ((const unsigned char *)res->hits[i].metadata)[b];
                    meta[b] = (char)(ch >= 0x20 || ch == '\t' ? ch : '?');
                }
                meta[res->hits[i].metadata_len] = 0;
            }
        }
        const char *row[] = { rank, res->hits[i].id, score, meta ? meta : "" };
        tbl_row(&t, row);
        free(meta);
    }
    tbl_print(&t, stdout, "  ");
    tbl_free(&t);
    print_stages(res);
}

static void print_results_json(me_json_writer_t *j, uint64_t q, const me_results_t *res, int with_meta,
                               uint32_t offset) {
    me_json_obj_begin(j, NULL);
    me_json_put_u64(j, "query", q);
    me_json_put_int(j, "r_q", res->r_q);
    me_json_put_int(j, "r_c", res->r_c);
    me_json_put_u64(j, "documents", res->documents);
    me_json_put_bool(j, "partial", res->partial);
    if (res->degraded) me_json_put_bool(j, "degraded", 1);  /* only when it is: the usual output stays as it was */
    if (res->budget_reason[0]) {
        me_json_put_str(j, "budget_reason", res->budget_reason);
        me_json_put_num_prec(j, "predicted_ms", res->predicted_ms, 4);
    }
    me_json_arr_begin(j, "missing_groups");
    for (size_t i = 0; i < res->n_missing; i++) me_json_put_str(j, NULL, res->missing_groups[i]);
    me_json_arr_end(j);
    me_json_arr_begin(j, "hits");
    for (size_t i = 0; i < res->n; i++) {
        me_json_obj_begin(j, NULL);
        me_json_put_u64(j, "rank", offset + i + 1);
        me_json_put_str(j, "id", res->hits[i].id);
        me_json_put_num_prec(j, "score", res->hits[i].score, 9);
        if (res->hits[i].dense_score || res->hits[i].lexical_score) {
            me_json_put_num_prec(j, "dense_score", res->hits[i].dense_score, 9);
            me_json_put_num_prec(j, "lexical_score", res->hits[i].lexical_score, 9);
        }
        if (with_meta) cli_json_meta(j, "metadata", res->hits[i].metadata, res->hits[i].metadata_len);
        me_json_obj_end(j);
    }
    me_json_arr_end(j);
    me_json_arr_begin(j, "stages");
    for (int s = 0; s < res->n_stages; s++) {
        const me_stage_info_t *st = &res->stages[s];
        me_json_obj_begin(j, NULL);
        me_json_put_str(j, "stage", st->stage);
        me_json_put_int(j, "r_q", st->r_q);
        me_json_put_int(j, "r_c", st->r_c);
        me_json_put_u64(j, "in", st->in);
        me_json_put_u64(j, "out", st->out);
        me_json_put_num_prec(j, "ms", st->micros / 1e3, 9);
        me_json_obj_end(j);
    }
    me_json_arr_end(j);
    me_json_obj_end(j);
}

/* --mode, --fusion, --alpha, --hybrid-candidates and --lexical-text into
 * so; CLI_OK or a usage error (the servers check the values' ranges). */
static int search_mode_opts(cli_t *c, const search_opts_t *o, me_search_opts_t *so) {
    so->mode = !strcmp(o->mode, "lexical") ? ME_MODE_LEXICAL : !strcmp(o->mode, "hybrid") ? ME_MODE_HYBRID
                                                                                          : ME_MODE_DENSE;
    so->fusion = !strcmp(o->fusion, "weighted") ? ME_FUSION_WEIGHTED : ME_FUSION_RRF;
    so->hybrid_candidates = (uint32_t)o->hybrid_candidates;
    so->lexical_text = o->lexical_text[0] ? o->lexical_text : NULL;
    if (o->alpha[0]) {
        char *end;
        so->alpha = strtof(o->alpha, &end);
        if (*end || end == o->alpha) return cli_usage_error(c, "--alpha '%s' is not a number in [0, 1]", o->alpha);
        so->has_alpha = 1;
    }
    if (so->mode != ME_MODE_DENSE && o->vectors[0] && !so->lexical_text)
        return cli_usage_error(c, "--mode %s with --vectors needs --lexical-text TEXT (BM25's query)", o->mode);
    return CLI_OK;
}

static int search_vectors(cli_t *c, const search_opts_t *op, me_search_opts_t *sop);

int cli_cmd_search(cli_t *c, int argc, char **argv) {
    search_opts_t o;
    char err[512];
    me_config_defaults(search_table, &o, err, sizeof err);
    char *pos[1];
    int npos = 0;
    int rc = cli_parse(c, &search_cmd, &o, argc, argv, pos, &npos);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if (!o.collection[0]) return cli_usage_error(c, "needs --collection NAME");
    if (!o.vectors[0] && npos == 0 && !o.image[0])
        return cli_usage_error(c, "needs a query: --vectors FILE.npy (shape [R, D] or [N, R, D]), --image FILE "
                                  "or a \"free text\"");
    if (o.vectors[0] && (npos || o.image[0])) return cli_usage_error(c, "give either --vectors or a text/--image, not both");
    me_search_opts_t so = { .k = (uint32_t)o.k, .offset = (uint32_t)o.offset, .candidates = (uint32_t)o.candidates,
                            .refine_candidates = (uint32_t)o.refine_candidates, .exact = o.exact,
                            .with_metadata = o.metadata, .all_or_nothing = o.all_or_nothing,
                            .probe = (uint32_t)o.probe };
    if ((rc = search_mode_opts(c, &o, &so)) != CLI_OK) return rc;
    int is_auto = !strcmp(o.budget, "auto");
    if (is_auto && !o.target_ms) return cli_usage_error(c, "--budget auto needs --target-ms MS (the latency to fit)");
    if (o.budget[0] && !is_auto) {
        char extra;
        if (sscanf(o.budget, "%d,%d%c", &so.r_q, &so.r_c, &extra) != 2 || so.r_q < 0 || so.r_c < 0)
            return cli_usage_error(c, "--budget '%s' is not RQ,RC (two counts >= 0, e.g. 4,16; 0 = all) or auto",
                                   o.budget);
    }
    so.target_ms = (uint32_t)o.target_ms;
    so.anytime = o.anytime;
    if (o.min_budget[0]) {
        char extra;
        if (!o.target_ms) return cli_usage_error(c, "--min-budget goes with --target-ms (budget auto)");
        if (sscanf(o.min_budget, "%d,%d%c", &so.min_r_q, &so.min_r_c, &extra) != 2 || so.min_r_q < 1 || so.min_r_c < 1)
            return cli_usage_error(c, "--min-budget '%s' is not RQ,RC (two counts >= 1, e.g. 2,4)", o.min_budget);
    }
    char *filter = NULL;
    if ((rc = cli_filter_arg(c, o.filter, &filter)) != CLI_OK) return rc;
    so.filter = filter;
    rc = npos || o.image[0] ? search_text(c, &o, &so, npos ? pos[0] : NULL) : search_vectors(c, &o, &so);
    free(filter);
    return rc;
}

/* Searches with the queries of --vectors FILE.npy. */
static int search_vectors(cli_t *c, const search_opts_t *op, me_search_opts_t *sop) {
    search_opts_t o = *op;
    me_search_opts_t so = *sop;
    char err[512];
    int rc;

    me_npy_t a;
    if (me_npy_open(&a, o.vectors, err, sizeof err) != 0) return cli_error(c, CLI_FAIL, "%s", err);
    char shp[256];
    me_npy_shape_str(&a, shp, sizeof shp);
    me_results_t *res = NULL;
    float *q = NULL;
    uint64_t nq = 0, first = 0, count = 0;
    if (a.ndim != 2 && a.ndim != 3) {
        rc = cli_error(c, CLI_FAIL, "%s has shape %s; expected [R, D] (one query) or [N, R, D] (N queries)",
                       o.vectors, shp);
        goto out;
    }
    nq = a.ndim == 3 ? a.shape[0] : 1;
    uint64_t r = a.shape[a.ndim - 2], d = a.shape[a.ndim - 1];
    if (nq == 0 || r == 0 || d == 0) {
        rc = cli_error(c, CLI_FAIL, "%s has shape %s: no query vectors", o.vectors, shp);
        goto out;
    }
    first = 0;
    count = nq;
    if (o.row >= 0) {
        if ((uint64_t)o.row >= nq) {
            rc = cli_usage_error(c, "--row %lld is out of range: %s holds %llu quer%s", o.row, o.vectors,
                                 (unsigned long long)nq, nq == 1 ? "y" : "ies");
            goto out;
        }
        first = (uint64_t)o.row;
        count = 1;
    }
    me_collection_info_t ci;
    if ((rc = connect_and_check_npy(c, o.vectors, shp, o.collection, d, r, 1, &ci)) != CLI_OK) goto out;
    res = calloc(count, sizeof *res);
    q = malloc(r * d * sizeof *q);
    if (!res || !q) { rc = cli_error(c, CLI_FAIL, "out of memory"); goto out; }
    for (uint64_t i = 0; i < count; i++) {
        me_npy_read_f32(&a, (first + i) * r * d, r * d, q);
        me_status_t st;
        if (me_client_search(c->client, o.collection, q, (int)r, (int)d, &so, &res[i], &st) != 0) {
            char what[64];
            snprintf(what, sizeof what, "query %llu", (unsigned long long)(first + i));
            rc = cli_status_error(c, &st, what);
            goto out;
        }
    }
    if (c->g.json) {
        me_json_writer_t j;
        cli_json_begin(&j, stdout);
        me_json_put_str(&j, "collection", o.collection);
        me_json_arr_begin(&j, "queries");
        for (uint64_t i = 0; i < count; i++) print_results_json(&j, first + i, &res[i], o.metadata, so.offset);
        me_json_arr_end(&j);
        cli_json_end(&j);
    } else {
        for (uint64_t i = 0; i < count; i++) {
            if (i) fputc('\n', stdout);
            print_results_text(first + i, &res[i], o.metadata, so.offset);
        }
    }
    rc = CLI_OK;
out:
    if (res)
        for (uint64_t i = 0; i < count; i++) me_results_free(&res[i]);
    free(res);
    free(q);
    me_npy_close(&a);
    return rc;
}

/* ---- ids ---- */

typedef struct {
    char collection[ME_CFG_STR_MAX], after[ME_CFG_STR_MAX], filter[ME_CFG_STR_MAX];
    long long limit;
    int all;
    char *filter_text;  /* --filter read (cli_filter_arg) */
} ids_opts_t;

static const me_cfg_opt_t ids_table[] = {
    { "collection", ME_CFG_STRING, offsetof(ids_opts_t, collection), "", 0, 0, NULL,
      "collection to list (required)" },
    { "after", ME_CFG_STRING, offsetof(ids_opts_t, after), "", 0, 0, NULL,
      "list the ids after this one (the cursor the previous page printed)" },
    { "limit", ME_CFG_INT, offsetof(ids_opts_t, limit), "1000", 1, ME_LIST_IDS_MAX, NULL,
      "ids per page (with --all: per request)" },
    { "all", ME_CFG_BOOL, offsetof(ids_opts_t, all), "false", 0, 1, NULL,
      "every id from the cursor to the end, in pages of --limit" },
    { "filter", ME_CFG_STRING, offsetof(ids_opts_t, filter), "", 0, 0, NULL,
      "only the ids of documents it matches ('section=games AND year>=2020', JSON, or @FILE)" },
    { NULL, 0, 0, NULL, 0, 0, NULL, NULL },
};

static const cli_cmd_t ids_cmd = {
    "ids", "--collection NAME [--after ID] [--limit N] [--all] [--filter F]",
    "Prints the collection's document ids in ascending byte order, one a line, at most --limit of\n"
    "them after --after (from the first when not given). When more remain it says\n"
    "\"next: --after ID\" on stderr: run it again with that to get the next page. --all pages\n"
    "through to the end. With --json: {\"ids\": [...], \"next_after\": ID or null}.",
    ids_table, 1, 0,
};

/* One page after *cursor (malloc'd; NULL: from the first) appended to the
 * output; *cursor becomes the next page's cursor (NULL at the end). */
static int ids_page(cli_t *c, const ids_opts_t *o, char **cursor, me_json_writer_t *j) {
    char **ids, *next;
    size_t n;
    me_status_t st;
    if (me_client_list_ids_where(c->client, o->collection, o->filter_text, *cursor, (uint32_t)o->limit, &ids, &n, &next,
                                 &st) != 0)
        return cli_status_error(c, &st, "listing ids");
    for (size_t i = 0; i < n; i++) {
        if (j) me_json_put_str(j, NULL, ids[i]);
        else printf("%s\n", ids[i]);
    }
    me_ids_free(ids, n);
    free(*cursor);
    *cursor = next;
    return CLI_OK;
}

int cli_cmd_ids(cli_t *c, int argc, char **argv) {
    ids_opts_t o;
    char err[512];
    me_config_defaults(ids_table, &o, err, sizeof err);
    int rc = cli_parse(c, &ids_cmd, &o, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if (!o.collection[0]) return cli_usage_error(c, "needs --collection NAME");
    if ((rc = cli_filter_arg(c, o.filter, &o.filter_text)) != CLI_OK) return rc;
    if (!cli_connect(c)) { free(o.filter_text); return CLI_FAIL; }
    char *cursor = o.after[0] ? strdup(o.after) : NULL;
    if (o.after[0] && !cursor) return cli_error(c, CLI_FAIL, "out of memory");
    /* JSON is held until the last page came, so an error is the only object on stdout. */
    me_json_writer_t j, *jp = NULL;
    if (c->g.json) {
        jp = &j;
        me_json_writer_init_buf(jp);
        me_json_obj_begin(jp, NULL);
        me_json_arr_begin(jp, "ids");
    }
    do rc = ids_page(c, &o, &cursor, jp);
    while (rc == CLI_OK && o.all && cursor);
    if (rc == CLI_OK && jp) {
        me_json_arr_end(jp);
        if (cursor) me_json_put_str(jp, "next_after", cursor);
        else me_json_put_null(jp, "next_after");
        me_json_obj_end(jp);
        char *text = me_json_writer_take(jp, NULL);
        if (text) printf("%s\n", text);
        else rc = cli_error(c, CLI_FAIL, "out of memory");
        free(text);
    } else if (rc == CLI_OK && cursor) {
        fprintf(stderr, "next: --after %s\n", cursor);
    }
    if (jp) me_json_writer_free(jp);
    free(cursor);
    free(o.filter_text);
    return rc;
}
