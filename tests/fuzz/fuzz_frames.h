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
    /* Indexed fields, so mutated filters meet a schema. */
    Metaembed__FieldSpec f[2] = { METAEMBED__FIELD_SPEC__INIT, METAEMBED__FIELD_SPEC__INIT }, *fp[2] = { &f[0], &f[1] };
    f[0].name = "tag";
    f[0].type = METAEMBED__FIELD_TYPE__FIELD_TYPE_KEYWORD;
    f[1].name = "year";
    f[1].type = METAEMBED__FIELD_TYPE__FIELD_TYPE_INTEGER;
    cfg.fields = fp;
    cfg.n_fields = 2;
    Metaembed__CreateCollectionRequest cr = METAEMBED__CREATE_COLLECTION_REQUEST__INIT;
    cr.config = &cfg;
    return fuzz_envelope(METAEMBED__METHOD__METHOD_CREATE_COLLECTION, &cr.base, out);
}

static size_t fuzz_frame_upsert(uint8_t *out) {
    Metaembed__Document d = METAEMBED__DOCUMENT__INIT, *dp = &d;
    d.id = "doc";
    d.vectors = fuzz_vector();
    static const char meta[] = "{\"tag\": [\"a\", \"b\"], \"year\": 2020, \"text\": \"an editor\"}";
    d.metadata.data = (uint8_t *)meta;
    d.metadata.len = sizeof meta - 1;
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
    /* tag IN (a) AND NOT year >= 2000: every clause kind for the mutator to bend. */
    static char *kw[1] = { "a" };
    static double lo[1] = { 2000 };
    static Metaembed__Match m = METAEMBED__MATCH__INIT;
    static Metaembed__Range r = METAEMBED__RANGE__INIT;
    static Metaembed__Condition cm = METAEMBED__CONDITION__INIT, cr = METAEMBED__CONDITION__INIT;
    static Metaembed__Condition *must[1], *not_[1];
    static Metaembed__Filter f = METAEMBED__FILTER__INIT;
    m.field = "tag";
    m.keywords = kw;
    m.n_keywords = 1;
    r.field = "year";
    r.gte = lo;
    r.n_gte = 1;
    cm.condition_case = METAEMBED__CONDITION__CONDITION_MATCH;
    cm.match = &m;
    cr.condition_case = METAEMBED__CONDITION__CONDITION_RANGE;
    cr.range = &r;
    must[0] = &cm;
    not_[0] = &cr;
    f.must = must;
    f.n_must = 1;
    f.must_not = not_;
    f.n_must_not = 1;
    sr.filter = &f;
    return fuzz_envelope(METAEMBED__METHOD__METHOD_SEARCH, &sr.base, out);
}

#endif
