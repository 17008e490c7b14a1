/* The request frames both request fuzzers start from: collection "c"
 * (dim 4, R_c 4, R_q 2), one document "doc" in it, and a search for it.
 * Each packs an Envelope (2 s deadline) into out (512 bytes is enough) and
 * returns its length. A header, not a .c: every .c in tests/fuzz is a target. */
#ifndef ME_FUZZ_FRAMES_H
#define ME_FUZZ_FRAMES_H

#include <stddef.h>
#include <stdint.h>

#include "common/wire.h"

static size_t fuzz_envelope(int method, const ProtobufCMessage *req, uint8_t *out) {
    uint8_t payload[256];
    Metaembed__Envelope env = METAEMBED__ENVELOPE__INIT;
    env.method = (Metaembed__Method)method;
    env.deadline_ms = 2000;
    env.payload.data = payload;
    env.payload.len = protobuf_c_message_pack(req, payload);
    return metaembed__envelope__pack(&env, out);
}

/* One 4-dim vector, as a [1, 4] f32 tensor over static storage. */
static Metaembed__Tensor *fuzz_vector(void) {
    static float v[4] = { 1, 0.5f, 0, 0 };
    static uint32_t shape[2] = { 1, 4 };
    static Metaembed__Tensor t = METAEMBED__TENSOR__INIT;
    t.dtype = METAEMBED__DTYPE__DTYPE_F32;
    t.shape = shape;
    t.n_shape = 2;
    t.data.data = (uint8_t *)v;
    t.data.len = sizeof v;
    return &t;
}

static size_t fuzz_frame_create(uint8_t *out) {
    Metaembed__CollectionConfig cfg = METAEMBED__COLLECTION_CONFIG__INIT;
    cfg.name = "c";
    cfg.dim = 4;
    cfg.max_doc_vectors = 4;
    cfg.max_query_vectors = 2;
    Metaembed__CreateCollectionRequest cr = METAEMBED__CREATE_COLLECTION_REQUEST__INIT;
    cr.config = &cfg;
    return fuzz_envelope(METAEMBED__METHOD__METHOD_CREATE_COLLECTION, &cr.base, out);
}

static size_t fuzz_frame_upsert(uint8_t *out) {
    Metaembed__Document d = METAEMBED__DOCUMENT__INIT, *dp = &d;
    d.id = "doc";
    d.vectors = fuzz_vector();
    Metaembed__UpsertRequest ur = METAEMBED__UPSERT_REQUEST__INIT;
    ur.collection = "c";
    ur.documents = &dp;
    ur.n_documents = 1;
    return fuzz_envelope(METAEMBED__METHOD__METHOD_UPSERT, &ur.base, out);
}

static size_t fuzz_frame_search(uint8_t *out) {
    Metaembed__SearchRequest sr = METAEMBED__SEARCH_REQUEST__INIT;
    sr.collection = "c";
    sr.query = fuzz_vector();
    sr.k = 1;
    return fuzz_envelope(METAEMBED__METHOD__METHOD_SEARCH, &sr.base, out);
}

#endif
