#include "encoder/ingest.h"

#include "common/validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "include/metaembed.h"
#include "common/dtype.h"
#include "common/error.h"
#include "common/json.h"
#include "common/log.h"
#include "common/wire.h"

/* Stores one batch; returns the status to acknowledge with. */
static int store(const me_ingest_opts_t *o, me_client_t **cli, Metaembed__IngestBatch *b, char *msg, size_t cap) {
    me_embedder_t *e = o->embedder;
    int R = me_embedder_rows(e, ME_SIDE_DOC), D = me_embedder_config(e)->dim;
    size_t n = b->n_items;
    float *v = malloc((n ? n : 1) * (size_t)R * D * sizeof *v);
    uint16_t *h = malloc((n ? n : 1) * (size_t)R * D * sizeof *h);
    const char **texts = malloc((n ? n : 1) * sizeof *texts);
    me_doc_t *docs = calloc(n ? n : 1, sizeof *docs);
    char **metas = calloc(n ? n : 1, sizeof *metas);
    int code = ME_CODE_OK;
    if (!v || !h || !texts || !docs || !metas) { code = ME_CODE_RESOURCE_EXHAUSTED; snprintf(msg, cap, "out of memory"); goto out; }
    size_t nimg = 0;
    for (size_t i = 0; i < n; i++) {
        texts[i] = b->items[i]->text;
        nimg += b->items[i]->image.len > 0;
    }
    if (nimg) {
        /* Image documents (an image, then its text if any). */
        const uint8_t **bytes = malloc(n * sizeof *bytes);
        size_t *lens = malloc(n * sizeof *lens);
        int erc = bytes && lens ? 0 : ME_ENOMEM;
        char why[512] = "out of memory";
        for (size_t i = 0; !erc && i < n; i++) {
            bytes[i] = b->items[i]->image.data;
            lens[i] = b->items[i]->image.len;
        }
        if (!erc) erc = me_embedder_encode_image_bytes(e, ME_SIDE_DOC, bytes, lens, texts, (int)n, v, why, sizeof why);
        free(bytes);
        free(lens);
        if (erc) {
            code = me_error_status(erc);
            snprintf(msg, cap, "%s", why);
            goto out;
        }
    } else if (me_embedder_encode(e, ME_SIDE_DOC, texts, NULL, (int)n, v) != 0) {
        code = ME_CODE_RESOURCE_EXHAUSTED;
        snprintf(msg, cap, "out of memory encoding");
        goto out;
    }
    me_f32_to_f16_n(h, v, n * (size_t)R * D);
    for (size_t i = 0; i < n; i++) {
        const Metaembed__IngestItem *it = b->items[i];
        docs[i] = (me_doc_t){ .id = it->id, .vectors = h + i * (size_t)R * D, .rows = R, .f16 = 1 };
        if (it->metadata.len) {
            docs[i].metadata = it->metadata.data;
            docs[i].metadata_len = it->metadata.len;
        } else {
            /* Keep the text with the document, so searches can show it. */
            me_json_writer_t w;
            me_json_writer_init_buf(&w);
            me_json_obj_begin(&w, NULL);
            me_json_put_str(&w, "text", it->text);
            me_json_obj_end(&w);
            size_t len;
            metas[i] = me_json_writer_take(&w, &len);
            me_json_writer_free(&w);
            docs[i].metadata = metas[i];
            docs[i].metadata_len = metas[i] ? len : 0;
        }
    }
    me_status_t st;
    if (!*cli) *cli = me_client_connect_secure(o->coordinator, 5000, o->curve_dir, NULL, &st);
    if (!*cli) { code = ME_CODE_UNAVAILABLE; snprintf(msg, cap, "coordinator %s: %.300s", o->coordinator, st.message); goto out; }
    me_client_set_timeout(*cli, 30000);
    code = me_client_upsert(*cli, b->collection, docs, n, D, &st);
    if (code == ME_CODE_INVALID_ARGUMENT &&
        (strstr(st.message, "does not match the collection's dim") || strstr(st.message, "vectors, must be 1.."))) {
        /* The collection was made for another shape: say which fits this model. */
        snprintf(msg, cap, "%.300s; this encoder's model makes D=%d with %d vectors per document: create a "
                 "collection for it with 'metaembed collection create NAME --for-model' (or '--dim %d "
                 "--max-doc-vectors %d --max-query-vectors %d')", st.message, D, R, D, R,
                 me_embedder_rows(e, ME_SIDE_QUERY));
    } else if (code) {
        snprintf(msg, cap, "%s", st.message);
        if (code == ME_CODE_UNAVAILABLE || code == ME_CODE_DEADLINE_EXCEEDED) {
            me_client_close(*cli);  /* reconnect next time */
            *cli = NULL;
        }
    } else if (o->docs) {
        atomic_fetch_add(o->docs, n);
    }
out:
    for (size_t i = 0; metas && i < n; i++) free(metas[i]);
    free(metas);
    free(v);
    free(h);
    free(texts);
    free(docs);
    return code;
}

void me_ingest_run(const me_ingest_opts_t *o, void *zctx, const atomic_int *stop) {
    void *pull = zmq_socket(zctx, ZMQ_PULL);
    me_wire_socket_defaults(pull, o->max_message);
    /* Take one batch at a time: what sits in this encoder's queue is lost if
     * it dies (the sender resends it, but later). */
    int hwm = 1;
    zmq_setsockopt(pull, ZMQ_RCVHWM, &hwm, sizeof hwm);
    me_curve_client(pull, o->curve);
    zmq_connect(pull, o->stream);
    void *ack = NULL;
    char ack_to[256] = "";
    me_client_t *cli = NULL;
    me_info("ingest: pulling from %s, storing through %s", o->stream, o->coordinator);
    while (!atomic_load(stop)) {
        zmq_pollitem_t it = { pull, 0, ZMQ_POLLIN, 0 };
        if (zmq_poll(&it, 1, 200) <= 0) continue;
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, pull, ZMQ_DONTWAIT) < 0) { zmq_msg_close(&m); continue; }
        /* The same rules as a request: strings, size, batch length. A bad
         * batch that still names its sender is answered, so the sender stops. */
        char msg[1024] = "";
        int code = ME_CODE_OK;
        if (me_check_strings(&metaembed__ingest_batch__descriptor, zmq_msg_data(&m), zmq_msg_size(&m), msg,
                             sizeof msg) != 0)
            code = ME_CODE_INVALID_ARGUMENT;
        else if ((long long)zmq_msg_size(&m) > o->max_message) {
            code = ME_CODE_RESOURCE_EXHAUSTED;
            snprintf(msg, sizeof msg, "batch of %zu bytes exceeds the encoder's %lld-byte limit (--max-message); "
                     "send smaller batches", zmq_msg_size(&m), o->max_message);
        }
        Metaembed__IngestBatch *b = metaembed__ingest_batch__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
        zmq_msg_close(&m);
        if (!b) { me_warn("ingest: dropped a message that is not an IngestBatch"); continue; }
        if (code == ME_CODE_OK && (long long)b->n_items > o->max_batch) {
            code = ME_CODE_INVALID_ARGUMENT;
            snprintf(msg, sizeof msg, "batch of %zu items exceeds the encoder's limit of %lld (--max-batch)",
                     b->n_items, o->max_batch);
        }
        if (code == ME_CODE_OK) code = store(o, &cli, b, msg, sizeof msg);
        if (code) me_warn("ingest: batch %llu: %s", (unsigned long long)b->batch_id, msg);
        if (strcmp(ack_to, b->ack_to) != 0) {
            if (ack) zmq_close(ack);
            ack = zmq_socket(zctx, ZMQ_PUSH);
            me_wire_socket_defaults(ack, 0);
            me_curve_client(ack, o->curve);
            zmq_connect(ack, b->ack_to);
            snprintf(ack_to, sizeof ack_to, "%s", b->ack_to);
        }
        Metaembed__Status st = METAEMBED__STATUS__INIT;
        st.code = (Metaembed__StatusCode)code;
        st.message = msg;
        Metaembed__IngestAck a = METAEMBED__INGEST_ACK__INIT;
        a.batch_id = b->batch_id;
        a.status = &st;
        a.encoder = (char *)o->name;
        uint8_t buf[1024];
        size_t len = metaembed__ingest_ack__pack(&a, buf);
        zmq_send(ack, buf, len, ZMQ_DONTWAIT);
        metaembed__ingest_batch__free_unpacked(b, NULL);
    }
    me_client_close(cli);
    if (ack) zmq_close(ack);
    zmq_close(pull);
}
