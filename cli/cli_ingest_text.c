/* `metaembed ingest corpus.jsonl`: texts to the cluster's encoders over a
 * ZeroMQ PUSH stream, with acknowledgements back on a PULL socket.
 *
 * Batches of `batch` documents are kept in flight (a window of 4 per
 * encoder-sized slot); a batch counts once an encoder acknowledged that it
 * stored it, and goes out again when no acknowledgement came within
 * resend_s (its encoder died, say). Upserts are idempotent, so a batch
 * stored twice still leaves each id stored once.
 *
 * Nothing here blocks on the stream: a PUSH socket with no encoder
 * connected refuses the send (ZMQ_DONTWAIT), so the run says at once that
 * it waits for encoders and gives up after wait_s instead of hanging. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/curve.h"
#include "common/error.h"
#include "common/image.h"
#include "common/json.h"
#include "common/jsonl.h"
#include "common/progress.h"
#include "common/validate.h"
#include "common/wire.h"

#define WINDOW 8

typedef struct {
    char *id, *text, *line;   /* the line is the document's metadata */
    size_t line_len;
    uint8_t *image;           /* an image document's file (PNG or JPEG), or NULL */
    size_t image_len;
} item_t;

typedef struct {
    size_t first, n;          /* items[first .. first+n) */
    uint64_t sent_ms;         /* 0: not sent yet */
    int done;
    int attempts;
    int refusals;             /* error acknowledgements so far */
} batch_t;

/* A batch refused this often is not a passing outage: stop and say why
 * instead of resending it forever. */
#define MAX_REFUSALS 5

/* Ids already stored, asked in chunks (Get without vectors). */
static int mark_existing(cli_t *c, const char *coll, item_t *items, size_t n, char *skip, size_t *nskip) {
    *nskip = 0;
    enum { CHUNK = 1000 };
    const char **ids = malloc(CHUNK * sizeof *ids);
    if (!ids) return ME_ENOMEM;
    for (size_t off = 0; off < n; off += CHUNK) {
        size_t m = n - off < CHUNK ? n - off : CHUNK;
        for (size_t i = 0; i < m; i++) ids[i] = items[off + i].id;
        me_record_t *recs;
        size_t nrec;
        me_status_t st;
        if (me_client_get(c->client, coll, ids, m, 0, &recs, &nrec, &st) != 0) {
            free(ids);
            return cli_status_error(c, &st, "checking which ids are stored");
        }
        /* Found ones come back in request order. */
        size_t k = 0;
        for (size_t i = 0; i < m && k < nrec; i++)
            if (!strcmp(recs[k].id, items[off + i].id)) { skip[off + i] = 1; (*nskip)++; k++; }
        me_records_free(recs, nrec);
    }
    free(ids);
    return 0;
}

/* 0: sent; 1: no encoder can take it now (nothing connected, or every
 * connected one's queue is full); ME_EIO / ME_ENOMEM: failed. */
static int send_batch(void *push, const char *coll, const char *ack_to, item_t *items, const size_t *order,
                      batch_t *b, uint64_t id) {
    Metaembed__IngestItem *its = calloc(b->n, sizeof *its), **ptrs = calloc(b->n, sizeof *ptrs);
    if (!its || !ptrs) { free(its); free(ptrs); return ME_ENOMEM; }
    for (size_t i = 0; i < b->n; i++) {
        item_t *it = &items[order[b->first + i]];
        metaembed__ingest_item__init(&its[i]);
        its[i].id = it->id;
        its[i].text = it->text;
        its[i].metadata.data = (uint8_t *)it->line;
        its[i].metadata.len = it->line_len;
        its[i].image.data = it->image;
        its[i].image.len = it->image_len;
        ptrs[i] = &its[i];
    }
    Metaembed__IngestBatch msg = METAEMBED__INGEST_BATCH__INIT;
    msg.batch_id = id;
    msg.collection = (char *)coll;
    msg.ack_to = (char *)ack_to;
    msg.items = ptrs;
    msg.n_items = b->n;
    size_t len = metaembed__ingest_batch__get_packed_size(&msg);
    zmq_msg_t m;
    int rc = zmq_msg_init_size(&m, len) == 0 ? 0 : ME_ENOMEM;
    if (rc == 0) {
        metaembed__ingest_batch__pack(&msg, zmq_msg_data(&m));
        if (zmq_msg_send(&m, push, ZMQ_DONTWAIT) < 0) {
            rc = errno == EAGAIN ? 1 : ME_EIO;
            zmq_msg_close(&m);
        }
    }
    free(its);
    free(ptrs);
    if (rc == 0) {
        b->sent_ms = me_now_ms();
        b->attempts++;
    }
    return rc;
}

/* The line's object re-serialised compactly as the document's metadata
 * (every member, arrays and objects included), with "text" cut to `cut`
 * bytes when cut >= 0 (then "text_truncated": true is added). */
static char *write_metadata(const me_json_t *obj, const char *thumb, long cut, size_t *len) {
    me_json_writer_t w;
    me_json_writer_init_buf(&w);
    me_json_obj_begin(&w, NULL);
    for (size_t k = 0; k < obj->len; k++) {
        const me_json_member_t *mb = &obj->u.members[k];
        if (cut >= 0 && !strcmp(mb->key, "text") && mb->value.type == ME_JSON_STRING)
            me_json_put_strn(&w, "text", mb->value.u.str, (size_t)cut);
        else
            me_json_put_value(&w, mb->key, &mb->value);
    }
    if (cut >= 0) me_json_put_bool(&w, "text_truncated", 1);
    if (thumb) me_json_put_str(&w, "thumbnail", thumb);
    me_json_obj_end(&w);
    char *s = me_json_writer_take(&w, len);
    me_json_writer_free(&w);
    return s;
}

/* The metadata within the shards' ME_METADATA_MAX: a line over it (a
 * manual page as the text, say) keeps its text cut at a UTF-8 boundary, with
 * a warning; the embedding still reads the whole text. NULL when even an
 * empty text does not fit (or memory is short): the line is skipped. */
static char *line_metadata(const me_json_t *obj, const char *thumb, const char *path, long line, size_t *len) {
    char *s = write_metadata(obj, thumb, -1, len);
    const me_json_t *t = me_json_get(obj, "text");
    if (!s || *len <= ME_METADATA_MAX) return s;
    size_t full = *len;
    if (!t || t->type != ME_JSON_STRING) { free(s); return NULL; }
    long cut = (long)t->len;
    while (s && *len > ME_METADATA_MAX && cut > 0) {
        cut -= (long)(*len - ME_METADATA_MAX) + 16;  /* escapes make JSON longer than the text: shrink until it fits */
        if (cut < 0) cut = 0;
        while (cut > 0 && ((unsigned char)t->u.str[cut] & 0xC0) == 0x80) cut--;  /* not inside a character */
        free(s);
        s = write_metadata(obj, thumb, cut, len);
    }
    if (!s || *len > ME_METADATA_MAX) { free(s); return NULL; }
    fprintf(stderr, "metaembed: ingest: %s:%ld: metadata of %zu bytes exceeds the limit of %d: its \"text\" is "
                    "stored cut to %ld of %zu bytes (\"text_truncated\": true; the embedding reads the whole "
                    "text)\n", path, line, full, ME_METADATA_MAX, cut, t->len);
    return s;
}

/* Repeated ids: the last line of each id is the one stored (as upserts in
 * file order would leave it), so earlier ones are dropped before sending and
 * the summary can count distinct ids. Returns how many were dropped. */
typedef struct { const char *id; size_t at; } id_at_t;

static int by_id_then_line(const void *a, const void *b) {
    const id_at_t *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    return c ? c : (x->at > y->at) - (x->at < y->at);
}

static size_t drop_repeated_ids(item_t *items, size_t *n) {
    id_at_t *ix = malloc((*n ? *n : 1) * sizeof *ix);
    char *drop = calloc(*n ? *n : 1, 1);
    size_t dropped = 0;
    if (!ix || !drop) { free(ix); free(drop); return 0; }  /* keeps them: still correct, only slower */
    for (size_t i = 0; i < *n; i++) ix[i] = (id_at_t){ items[i].id, i };
    qsort(ix, *n, sizeof *ix, by_id_then_line);
    for (size_t i = 0; i + 1 < *n; i++)
        if (!strcmp(ix[i].id, ix[i + 1].id)) drop[ix[i].at] = 1;
    size_t k = 0;
    for (size_t i = 0; i < *n; i++) {
        if (drop[i]) {
            free(items[i].id); free(items[i].text); free(items[i].line); free(items[i].image);
            dropped++;
        } else {
            items[k++] = items[i];
        }
    }
    *n = k;
    free(ix);
    free(drop);
    return dropped;
}

int cli_ingest_text(cli_t *c, const char *coll, const char *path, const cli_ingest_text_opts_t *o) {
    const char *stream = o->stream;
    const int batch = o->batch;
    char err[512];
    /* The collection first: a run against a missing one says so before it
     * reports anything about the file's lines. */
    if (!cli_connect(c)) return CLI_FAIL;
    me_collection_info_t ci;
    int rc = cli_find_collection(c, coll, &ci);
    if (rc != CLI_OK) return rc;
    me_jsonl_t *in;
    if (me_jsonl_open(path, &in, err, sizeof err) != 0) return cli_error(c, CLI_FAIL, "%s", err);
    item_t *items = NULL;
    size_t n = 0, cap = 0, bad = 0;
    const me_json_t *obj;
    long line;
    me_json_writer_t w;
    /* Read and check every line first: malformed ones are reported and skipped. */
    while ((rc = me_jsonl_next(in, &obj, &line, err, sizeof err)) != 0) {
        const char *id = rc == 1 ? me_json_str(me_json_get(obj, "id")) : NULL;
        const char *text = rc == 1 ? me_json_str(me_json_get(obj, "text")) : NULL;
        const char *image = rc == 1 ? me_json_str(me_json_get(obj, "image")) : NULL;
        if (rc < 0 || !id || (!text && !image) || !id[0] || strlen(id) > 256) {
            char why[768];
            if (rc < 0) snprintf(why, sizeof why, "%s", err);
            else snprintf(why, sizeof why, "%s:%ld: needs a non-empty string \"id\" (at most 256 bytes) and a string "
                                           "\"text\", an \"image\" path, or both", path, line);
            if (o->strict) { rc = cli_error(c, CLI_FAIL, "%s (--strict: nothing was sent)", why); goto out_early; }
            fprintf(stderr, "metaembed: ingest: %s (skipped)\n", why);
            bad++;
            continue;
        }
        /* An image document: read and decoded here first, so a bad file is
         * reported by its line and never sent; its thumbnail goes in the
         * metadata, so results can be shown without the file. */
        uint8_t *img = NULL;
        size_t img_len = 0;
        char *thumb = NULL;
        if (image) {
            char full[2048], why[512];
            if (image[0] == '/') snprintf(full, sizeof full, "%s", image);
            else snprintf(full, sizeof full, "%.*s%s", (int)(strrchr(path, '/') ? strrchr(path, '/') - path + 1 : 0),
                          path, image);
            me_image_t im;
            int irc = me_image_read_file(full, &img, &img_len, why, sizeof why);
            if (!irc && (irc = me_image_decode(img, img_len, &im, why, sizeof why)) == 0) {
                thumb = me_image_thumbnail_uri(&im);
                me_image_free(&im);
            }
            if (irc || !thumb) {
                free(img);
                free(thumb);
                if (o->strict) {
                    rc = cli_error(c, CLI_FAIL, "%s:%ld: %s (--strict: nothing was sent)", path, line,
                                   irc ? why : "out of memory");
                    goto out_early;
                }
                fprintf(stderr, "metaembed: ingest: %s:%ld: %s (skipped)\n", path, line, irc ? why : "out of memory");
                bad++;
                continue;
            }
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            item_t *ni = realloc(items, cap * sizeof *ni);
            if (!ni) { rc = cli_error(c, CLI_FAIL, "out of memory"); goto out_early; }
            items = ni;
        }
        size_t meta_len;
        char *meta = line_metadata(obj, thumb, path, line, &meta_len);
        free(thumb);
        if (!meta) {
            if (o->strict) {
                rc = cli_error(c, CLI_FAIL, "%s:%ld: metadata exceeds the limit of %d bytes even without its text "
                               "(--strict: nothing was sent)", path, line, ME_METADATA_MAX);
                free(img);
                goto out_early;
            }
            fprintf(stderr, "metaembed: ingest: %s:%ld: metadata exceeds the limit of %d bytes even without its "
                            "text (skipped)\n", path, line, ME_METADATA_MAX);
            free(img);
            bad++;
            continue;
        }
        item_t *it = &items[n++];
        it->id = strdup(id);
        it->text = strdup(text ? text : "");
        it->image = img;
        it->image_len = img_len;
        it->line = meta;
        it->line_len = meta_len;
        if (!it->id || !it->text) { rc = cli_error(c, CLI_FAIL, "out of memory"); goto out_early; }
    }
    me_jsonl_close(in);
    in = NULL;
    size_t good_lines = n, repeated = drop_repeated_ids(items, &n);

    char *skip = calloc(n ? n : 1, 1);
    size_t *order = malloc((n ? n : 1) * sizeof *order), nskip = 0, todo = 0;
    batch_t *batches = NULL;
    void *zctx = zmq_ctx_new(), *push = zmq_socket(zctx, ZMQ_PUSH), *pull = zmq_socket(zctx, ZMQ_PULL);
    me_wire_socket_defaults(push, 0);
    me_wire_socket_defaults(pull, 0);
    /* The stream carries the documents' text: the encoders connect to it as
     * clients, so with keys it is served like a daemon's socket. */
    me_curve_t curve;
    me_zap_t *zap = NULL;
    char cerr[512];
    int curve_rc = me_curve_load(cli_curve_dir(c), c->g.curve_key, &curve, cerr, sizeof cerr);
    if (!skip || !order) { rc = cli_error(c, CLI_FAIL, "out of memory"); goto out; }
    if (curve_rc) { rc = cli_error(c, CLI_FAIL, "--curve-dir: %s", cerr); goto out; }
    if (curve.on && !curve.can_serve) {
        rc = cli_error(c, CLI_FAIL, "text ingest with --curve-dir serves the stream the encoders connect to, so it "
                                    "needs the cluster's server.key in %s", cli_curve_dir(c));
        goto out;
    }
    if (!curve.on && !me_endpoint_is_local(stream)) {
        rc = cli_error(c, CLI_FAIL, "refusing to send documents over %s unencrypted (not loopback): pass --curve-dir",
                       stream);
        goto out;
    }
    if (curve.on && (!(zap = me_curve_zap_start(zctx, &curve, cerr, sizeof cerr)) ||
                     me_curve_server(push, &curve) != 0 || me_curve_server(pull, &curve) != 0)) {
        rc = cli_error(c, CLI_FAIL, "cannot enable CurveZMQ on the stream: %s", zap ? zmq_strerror(errno) : cerr);
        goto out;
    }
    if (!o->force && mark_existing(c, coll, items, n, skip, &nskip) != 0) { rc = CLI_FAIL; goto out; }
    for (size_t i = 0; i < n; i++)
        if (!skip[i]) order[todo++] = i;
    size_t nb = (todo + (size_t)batch - 1) / (size_t)batch;
    batches = calloc(nb ? nb : 1, sizeof *batches);
    if (!batches) { rc = cli_error(c, CLI_FAIL, "out of memory"); goto out; }
    for (size_t b = 0; b < nb; b++) {
        batches[b].first = b * (size_t)batch;
        batches[b].n = todo - batches[b].first < (size_t)batch ? todo - batches[b].first : (size_t)batch;
    }
    if (zmq_bind(push, stream) != 0) {
        rc = cli_error(c, CLI_FAIL, "cannot bind the ingest stream %s: %s (another ingest running? use --stream)",
                       stream, zmq_strerror(errno));
        goto out;
    }
    char ack_to[256];
    size_t alen = sizeof ack_to;
    if (zmq_bind(pull, "tcp://127.0.0.1:*") != 0 || zmq_getsockopt(pull, ZMQ_LAST_ENDPOINT, ack_to, &alen) != 0) {
        rc = cli_error(c, CLI_FAIL, "cannot bind a socket for acknowledgements: %s", zmq_strerror(errno));
        goto out;
    }
    me_progress_t bar;
    me_progress_init(&bar, "ingest", "docs", todo, -1);
    size_t done_docs = 0, done_batches = 0, next = 0, resent = 0;
    const uint64_t start = me_now_ms(), wait_ms = (uint64_t)o->wait_s * 1000u;
    uint64_t last_progress = start;  /* a batch taken by an encoder, or acknowledged */
    int said_waiting = 0;
    rc = CLI_OK;
    while (done_batches < nb) {
        /* Keep the window full: overdue batches first, then new ones. */
        size_t inflight = 0;
        for (size_t b = 0; b < next; b++) inflight += !batches[b].done;
        uint64_t now = me_now_ms();
        int blocked = 0;
        for (size_t b = 0; b < next && inflight <= WINDOW && !blocked; b++)
            if (!batches[b].done && now - batches[b].sent_ms > (uint64_t)o->resend_s * 1000u) {
                int s = send_batch(push, coll, ack_to, items, order, &batches[b], b);
                if (s < 0) { rc = cli_error(c, CLI_FAIL, "sending on %s failed: %s", stream, me_strerror(s)); goto out; }
                blocked = s == 1;
                resent += s == 0;
            }
        while (!blocked && next < nb && inflight < WINDOW) {
            int s = send_batch(push, coll, ack_to, items, order, &batches[next], next);
            if (s < 0) { rc = cli_error(c, CLI_FAIL, "sending on %s failed: %s", stream, me_strerror(s)); goto out; }
            if (s == 1) { blocked = 1; break; }
            if (next == 0) last_progress = me_now_ms();
            next++;
            inflight++;
        }
        if (next == 0) {
            /* Nothing taken yet: no encoder is connected to the stream. */
            if (!said_waiting && now - start >= 1000) {
                fprintf(stderr, "metaembed: ingest: waiting for an encoder to connect to %s (start one with "
                                "'metaembed-encoder --model MODEL --ingest-from %s --coordinator %s', or "
                                "'deploy/local/start-cluster.sh --encoders 1'); giving up after %d s (--wait-s)\n",
                        stream, stream, c->g.addr, o->wait_s);
                said_waiting = 1;
            }
            if (now - start >= wait_ms) {
                rc = cli_error(c, CLI_FAIL, "no encoder connected to %s within %d s: nothing was stored (start "
                               "encoders with --ingest-from %s, or raise --wait-s)", stream, o->wait_s, stream);
                goto out;
            }
        } else if (me_now_ms() - last_progress >= wait_ms) {  /* not `now`: a send above may be later */
            rc = cli_error(c, CLI_FAIL, "no encoder acknowledged a batch for %d s (%zu of %zu documents stored; "
                           "see the encoders' logs; a re-run resumes where this one stopped)", o->wait_s,
                           done_docs, todo);
            goto out;
        }
        zmq_pollitem_t it = { pull, 0, ZMQ_POLLIN, 0 };
        if (zmq_poll(&it, 1, 200) <= 0) continue;
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, pull, ZMQ_DONTWAIT) < 0) { zmq_msg_close(&m); continue; }
        Metaembed__IngestAck *a = metaembed__ingest_ack__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
        zmq_msg_close(&m);
        if (!a) continue;
        last_progress = me_now_ms();
        if (a->batch_id < nb && !batches[a->batch_id].done) {
            batch_t *b = &batches[a->batch_id];
            int code = a->status ? (int)a->status->code : 0;
            if (code == 0) {
                b->done = 1;
                done_batches++;
                done_docs += b->n;
                me_progress_update(&bar, done_docs);
            } else if (code == ME_CODE_INVALID_ARGUMENT || code == ME_CODE_NOT_FOUND) {
                rc = cli_error(c, CLI_FAIL, "batch of ids %s..: %s", items[order[b->first]].id,
                               a->status->message);
                metaembed__ingest_ack__free_unpacked(a, NULL);
                goto out;
            } else if (++b->refusals >= MAX_REFUSALS) {
                rc = cli_error(c, CLI_FAIL, "batch of ids %s.. refused %d times, last: %s (%s); %zu of %zu documents "
                               "stored, a re-run resumes", items[order[b->first]].id, b->refusals,
                               a->status->message, me_status_name(code), done_docs, todo);
                metaembed__ingest_ack__free_unpacked(a, NULL);
                goto out;
            } else {
                b->sent_ms = 0;  /* an availability problem: send it again soon */
            }
        }
        metaembed__ingest_ack__free_unpacked(a, NULL);
    }
    me_progress_finish(&bar);
    if (c->g.json) {
        cli_json_begin(&w, stdout);
        me_json_put_str(&w, "collection", coll);
        me_json_put_u64(&w, "stored", done_docs);
        me_json_put_u64(&w, "good_lines", good_lines);
        me_json_put_u64(&w, "distinct_ids", n);
        me_json_put_u64(&w, "repeated_ids", repeated);
        me_json_put_u64(&w, "already_stored", nskip);
        me_json_put_u64(&w, "malformed_lines", bad);
        me_json_put_u64(&w, "batches_resent", resent);
        me_json_put_num_prec(&w, "seconds", me_progress_elapsed(&bar), 6);
        cli_json_end(&w);
    } else {
        me_progress_summary(&bar, stdout, "stored");
        printf("%zu good lines: %zu distinct ids", good_lines, n);
        if (repeated)
            printf(" (%zu line%s repeated an earlier line's id; the last line of each id is stored)", repeated,
                   repeated == 1 ? "" : "s");
        printf("; %zu already stored (skipped), %zu malformed lines skipped, %zu batches sent again\n", nskip, bad,
               resent);
    }
    if (bad) {
        fprintf(stderr, "metaembed: ingest: %zu malformed line%s skipped (reported above); every other document is "
                        "stored (exit status %d; --strict stops before sending anything instead)\n", bad,
                bad == 1 ? " was" : "s were", CLI_PARTIAL);
        rc = CLI_PARTIAL;
    }
out:
    zmq_close(push);
    zmq_close(pull);
    zmq_ctx_term(zctx);
    me_curve_zap_join(zap);
    me_curve_free(&curve);
    free(skip);
    free(order);
    free(batches);
out_early:
    me_jsonl_close(in);
    for (size_t i = 0; i < n; i++) { free(items[i].id); free(items[i].text); free(items[i].line); free(items[i].image); }
    free(items);
    return rc;
}
