/* Structure-aware fuzzing of request frames (libprotobuf-mutator is not in
 * Debian 12, so this is a small one over protobuf-c's descriptors).
 *
 * LLVMFuzzerCustomMutator decodes the input as an Envelope, decodes its
 * payload as the method's request, changes field values — numbers to edge
 * values (0, 1, 2^31, 2^32-1, ...), strings to NUL-bearing, invalid UTF-8,
 * over-long or path-like ones, bytes resized, repeated fields grown (up to
 * thousands of elements) or shrunk, sub-messages added or dropped, the
 * method and the deadline — and re-encodes it: the well-formed message
 * with hostile values that byte mutation rarely produces. One input in
 * eight gets libFuzzer's byte mutation instead; an input that does not
 * decode restarts from a valid request of a random method.
 *
 * fuzz_check_reply() is the invariant every target asserts: a status in
 * range, a message that is valid UTF-8, and an OK reply whose strings all
 * pass the protocol's string rule (nothing stored can poison a strict
 * client).
 *
 * Also the plumbing the three request targets share: the seed-writing
 * mode, a scratch directory removed at exit, and running one frame
 * through a target's handler. A header, not a .c: every .c in tests/fuzz
 * is a target. */
#ifndef ME_FUZZ_PROTO_MUTATOR_H
#define ME_FUZZ_PROTO_MUTATOR_H

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/validate.h"
#include "common/wire.h"
#include "tests/fuzz/fuzz_frames.h"

size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);

static const ProtobufCMessageDescriptor *fuzz_request_desc(int method) {
    const me_method_info_t *info = me_method_info(method);
    return info ? info->request : NULL;
}

/* ---- the invariant ---- */

static void fuzz_check_reply(const uint8_t *frame, size_t size, const me_reply_t *rep) {
    if (rep->status < 0 || rep->status > 16) abort();
    if (!me_utf8_valid((const uint8_t *)rep->message, strlen(rep->message))) abort();
    if (rep->status != ME_CODE_OK || !rep->payload_len) return;
    Metaembed__Envelope *env = metaembed__envelope__unpack(NULL, size, frame);
    const me_method_info_t *info = env ? me_method_info((int)env->method) : NULL;
    const ProtobufCMessageDescriptor *desc = info ? info->reply : NULL;
    char err[256];
    if (desc && me_check_strings(desc, rep->payload, rep->payload_len, err, sizeof err) != 0) {
        fprintf(stderr, "reply breaks the string rule: %s\n", err);
        abort();
    }
    if (env) metaembed__envelope__free_unpacked(env, NULL);
}

/* ---- valid starting points, one per method ---- */

/* Packs a valid request of `method` (collection "c", document "doc", as in
 * fuzz_frames.h) into out (512 bytes); returns its length. */
static size_t fuzz_seed_frame(int method, uint8_t *out) {
    char *ids[2] = { "doc", "other" };
    char *texts[1] = { "a text editor" };
    switch (method) {
    case METAEMBED__METHOD__METHOD_CREATE_COLLECTION: return fuzz_frame_create(out);
    case METAEMBED__METHOD__METHOD_UPSERT: return fuzz_frame_upsert(out);
    case METAEMBED__METHOD__METHOD_SEARCH: return fuzz_frame_search(out);
    case METAEMBED__METHOD__METHOD_DROP_COLLECTION: {
        Metaembed__DropCollectionRequest m = METAEMBED__DROP_COLLECTION_REQUEST__INIT;
        m.name = "zz";  /* not "c": later inputs still find it */
        return fuzz_envelope(method, &m.base, out);
    }
    case METAEMBED__METHOD__METHOD_DELETE: {
        Metaembed__DeleteRequest m = METAEMBED__DELETE_REQUEST__INIT;
        m.collection = "c";
        m.ids = ids + 1;
        m.n_ids = 1;
        return fuzz_envelope(method, &m.base, out);
    }
    case METAEMBED__METHOD__METHOD_GET: {
        Metaembed__GetRequest m = METAEMBED__GET_REQUEST__INIT;
        m.collection = "c";
        m.ids = ids;
        m.n_ids = 2;
        m.with_vectors = 1;
        return fuzz_envelope(method, &m.base, out);
    }
    case METAEMBED__METHOD__METHOD_ENCODE: {
        Metaembed__EncodeRequest m = METAEMBED__ENCODE_REQUEST__INIT;
        m.texts = texts;
        m.n_texts = 1;
        m.query_side = 1;
        return fuzz_envelope(method, &m.base, out);
    }
    case METAEMBED__METHOD__METHOD_LIST_IDS: {
        Metaembed__ListIdsRequest m = METAEMBED__LIST_IDS_REQUEST__INIT;
        m.collection = "c";
        m.after = "do";
        m.limit = 3;
        return fuzz_envelope(method, &m.base, out);
    }
    case METAEMBED__METHOD__METHOD_COUNT: {
        Metaembed__CountRequest m = METAEMBED__COUNT_REQUEST__INIT;
        Metaembed__Condition c = METAEMBED__CONDITION__INIT, *cp = &c;
        Metaembed__Filter f = METAEMBED__FILTER__INIT;
        c.condition_case = METAEMBED__CONDITION__CONDITION_EXISTS;
        c.exists = "year";
        f.should = &cp;
        f.n_should = 1;
        m.collection = "c";
        m.filter = &f;
        return fuzz_envelope(method, &m.base, out);
    }
    case METAEMBED__METHOD__METHOD_INDEX_FIELDS: {
        Metaembed__FieldSpec fs = METAEMBED__FIELD_SPEC__INIT, *fp = &fs;
        fs.name = "text";
        fs.type = METAEMBED__FIELD_TYPE__FIELD_TYPE_KEYWORD;
        Metaembed__IndexFieldsRequest m = METAEMBED__INDEX_FIELDS_REQUEST__INIT;
        m.collection = "c";
        m.fields = &fp;
        m.n_fields = 1;
        return fuzz_envelope(method, &m.base, out);
    }
    case METAEMBED__METHOD__METHOD_SYNC_STATE: {
        static uint32_t buckets[2] = { 3, 255 };
        Metaembed__SyncStateRequest m = METAEMBED__SYNC_STATE_REQUEST__INIT;
        m.collection = "c";
        m.list_buckets = buckets;
        m.n_list_buckets = 2;
        return fuzz_envelope(method, &m.base, out);
    }
    case METAEMBED__METHOD__METHOD_STATS: {
        Metaembed__StatsRequest m = METAEMBED__STATS_REQUEST__INIT;
        m.collection = "c";
        return fuzz_envelope(method, &m.base, out);
    }
    default: {
        Metaembed__HealthRequest m = METAEMBED__HEALTH_REQUEST__INIT;
        return fuzz_envelope(method, &m.base, out);
    }
    }
}

/* Writes one seed file per method into dir (ME_FUZZ_WRITE_SEEDS=dir). */
static void fuzz_write_seeds(const char *dir) {
    for (int m = 1; m <= METAEMBED__METHOD__METHOD_SYNC_STATE; m++) {
        uint8_t buf[512];
        size_t n = fuzz_seed_frame(m, buf);
        char path[512];
        snprintf(path, sizeof path, "%s/method-%02d", dir, m);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(buf, 1, n, f) != n) abort();
        fclose(f);
    }
}

/* ---- what the request targets share ----
 * (inline: a target that uses only some is not warned about the rest) */

/* A target's request handler: one frame in, the reply out (the caller
 * clears it). */
typedef void (*fuzz_handler_t)(const uint8_t *frame, size_t n, me_reply_t *rep);

/* LLVMFuzzerInitialize's first step: with ME_FUZZ_WRITE_SEEDS=dir, write
 * the seed inputs there and exit instead of fuzzing. */
static inline void fuzz_init_seeds(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *dir = getenv("ME_FUZZ_WRITE_SEEDS");
    if (!dir) return;
    fuzz_write_seeds(dir);
    exit(0);
}

/* One frame through h; the reply's status (the reply is cleared). */
static inline int fuzz_call(fuzz_handler_t h, const uint8_t *frame, size_t n) {
    me_reply_t rep;
    h(frame, n, &rep);
    int st = rep.status;
    me_reply_clear(&rep);
    return st;
}

/* A fuzz input through h and the invariant on its reply, which is left in
 * *rep for the target's own checks. */
static inline void fuzz_handle_checked(fuzz_handler_t h, const uint8_t *data, size_t size, me_reply_t *rep) {
    h(data, size, rep);
    fuzz_check_reply(data, size, rep);
}

/* The same for a target that checks nothing more. */
static inline void fuzz_input(fuzz_handler_t h, const uint8_t *data, size_t size) {
    me_reply_t rep;
    fuzz_handle_checked(h, data, size, &rep);
    me_reply_clear(&rep);
}

/* The scratch directory of a target that stores data. */
static char fuzz_dir[64];

static inline int fuzz_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* At exit only the directory goes: RocksDB's own statics may already be
 * destroyed, so closing a database there would crash. */
static inline void fuzz_rm_dir(void) { nftw(fuzz_dir, fuzz_rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

/* A fresh /tmp/metaembed-TAG-XXXXXX, removed at exit; aborts when it
 * cannot be made. */
static inline const char *fuzz_tmpdir(const char *tag) {
    snprintf(fuzz_dir, sizeof fuzz_dir, "/tmp/metaembed-%s-XXXXXX", tag);
    if (!mkdtemp(fuzz_dir)) abort();
    atexit(fuzz_rm_dir);
    return fuzz_dir;
}

/* ---- mutating values ---- */

static uint64_t fuzz_rand(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Marks a NUL to be put in after packing (protobuf-c packs strings with
 * strlen, so a NUL cannot be in the struct). */
#define FUZZ_NUL_MARK "\x7fNUL\x7f"

static const char *const fuzz_strings[] = {
    "", "c", "doc", "other", "zz", FUZZ_NUL_MARK, "doc\x7fNUL\x7fx", "c\x7fNUL\x7f", "\xff\xfe", "caf\xe9",
    "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82", ".", "..", "../../etc/passwd", "a b", "%s%n%s",
    "caf\xc3\xa9 \xf0\x9f\x98\x80",
};

static uint64_t fuzz_edge(uint64_t *s, uint64_t old) {
    static const uint64_t edges[] = { 0, 1, 2, 3, 4, 7, 8, 16, 63, 64, 65, 255, 256, 1000, 1024, 4096, 4097,
                                      65535, 65536, 1u << 20, 1u << 31, 0xffffffffu, 0x100000000ull,
                                      0x7fffffffffffffffull, 0xffffffffffffffffull };
    uint64_t r = fuzz_rand(s);
    switch (r % 4) {
    case 0: return old + 1;
    case 1: return old ? old - 1 : 0;
    case 2: return fuzz_rand(s) % 100;
    default: return edges[(r >> 8) % (sizeof edges / sizeof edges[0])];
    }
}

static char *fuzz_new_string(uint64_t *s) {
    uint64_t r = fuzz_rand(s);
    if (r % 8 == 0) {  /* long: past the name (64) and id (256) limits */
        size_t n = (size_t)((r >> 8) % 3 == 0 ? 65 : (r >> 8) % 3 == 1 ? 257 : 1 + (r >> 16) % 2000);
        char *p = malloc(n + 1);
        memset(p, 'a' + (int)(r % 26), n);
        p[n] = 0;
        return p;
    }
    return strdup(fuzz_strings[(r >> 8) % (sizeof fuzz_strings / sizeof fuzz_strings[0])]);
}

static size_t fuzz_elem_size(ProtobufCType t) {
    switch (t) {
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64: case PROTOBUF_C_TYPE_DOUBLE: return 8;
    case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING: return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE: return sizeof(void *);
    default: return 4;
    }
}

static ProtobufCMessage *fuzz_new_message(const ProtobufCMessageDescriptor *d) {
    ProtobufCMessage *m = calloc(1, d->sizeof_message);
    d->message_init(m);
    return m;
}

static void fuzz_mutate_message(ProtobufCMessage *m, uint64_t *s, int depth);

/* Changes the value at p, a field of type fd (one element of a repeated one). */
static void fuzz_mutate_value(const ProtobufCFieldDescriptor *fd, void *p, uint64_t *s, int depth) {
    uint64_t r = fuzz_rand(s);
    switch (fd->type) {
    case PROTOBUF_C_TYPE_BOOL: *(protobuf_c_boolean *)p = !*(protobuf_c_boolean *)p; break;
    case PROTOBUF_C_TYPE_FLOAT: {
        static const float f[] = { 0.0f, -0.0f, 1.0f, 1e38f, -1e38f, 65520.0f, 1e-40f };
        float v = r % 4 == 0 ? (float)(r % 1000) / 7.0f : r % 4 == 1 ? 0.0f / 0.0f : f[(r >> 8) % 7];
        memcpy(p, &v, 4);
        break;
    }
    case PROTOBUF_C_TYPE_DOUBLE: {
        double v = r % 2 ? 0.0 / 0.0 : (double)(r % 1000);
        memcpy(p, &v, 8);
        break;
    }
    case PROTOBUF_C_TYPE_STRING: {
        char **sp = p;
        if (*sp && *sp != (const char *)fd->default_value) free(*sp);
        *sp = fuzz_new_string(s);
        break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData *b = p;
        size_t n = r % 4 == 0 ? 0 : r % 4 == 1 ? (b->len ? b->len - 1 - (r >> 8) % b->len : 1)
                 : r % 4 == 2 ? b->len + 1 + (r >> 8) % 64 : (r >> 8) % 4096;
        uint8_t *d = malloc(n ? n : 1);
        for (size_t i = 0; i < n; i++) d[i] = i < b->len ? b->data[i] : (uint8_t)fuzz_rand(s);
        if (b->len && r % 16 == 3 && n >= 4) memset(d, 0xff, 4);  /* a NaN in f32 data */
        free(b->data);  /* proto3 bytes have no static default */
        b->data = d;
        b->len = n;
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        ProtobufCMessage **mp = p;
        if (!*mp) *mp = fuzz_new_message(fd->descriptor);
        else if (r % 8 == 0 && fd->label != PROTOBUF_C_LABEL_REPEATED) {
            protobuf_c_message_free_unpacked(*mp, NULL);
            *mp = NULL;
        } else if (depth < 4) fuzz_mutate_message(*mp, s, depth + 1);
        break;
    }
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64: {
        uint64_t v;
        memcpy(&v, p, 8);
        v = fuzz_edge(s, v);
        memcpy(p, &v, 8);
        break;
    }
    case PROTOBUF_C_TYPE_ENUM: {
        int32_t v = (int32_t)(r % 20) - 2;
        memcpy(p, &v, 4);
        break;
    }
    default: {  /* 32-bit integers */
        uint32_t v;
        memcpy(&v, p, 4);
        v = (uint32_t)fuzz_edge(s, v);
        memcpy(p, &v, 4);
        break;
    }
    }
}

static void fuzz_mutate_message(ProtobufCMessage *m, uint64_t *s, int depth) {
    const ProtobufCMessageDescriptor *d = m->descriptor;
    if (!d->n_fields) return;
    const ProtobufCFieldDescriptor *fd = &d->fields[fuzz_rand(s) % d->n_fields];
    uint8_t *member = (uint8_t *)m + fd->offset;
    if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        /* The members of a oneof share one union: only the one its case
         * names may be read or changed; one dropped leaves the case unset. */
        uint32_t *cse = (uint32_t *)(void *)((uint8_t *)m + fd->quantifier_offset);
        if (*cse == 0 && (fd->type == PROTOBUF_C_TYPE_MESSAGE || fd->type == PROTOBUF_C_TYPE_STRING)) {
            /* An unset oneof gets this member (a fresh message, or a name). */
            if (fd->type == PROTOBUF_C_TYPE_MESSAGE) *(ProtobufCMessage **)(void *)member = fuzz_new_message(fd->descriptor);
            else *(char **)(void *)member = strdup("year");
            if (*(void **)(void *)member) *cse = fd->id;
            return;
        }
        if (*cse != fd->id) return;
        fuzz_mutate_value(fd, member, s, depth);
        if ((fd->type == PROTOBUF_C_TYPE_MESSAGE || fd->type == PROTOBUF_C_TYPE_STRING) && !*(void **)(void *)member)
            *cse = 0;
        return;
    }
    if (fd->label != PROTOBUF_C_LABEL_REPEATED) {
        fuzz_mutate_value(fd, member, s, depth);
        return;
    }
    size_t *n = (size_t *)(void *)((uint8_t *)m + fd->quantifier_offset);
    uint8_t **arr = (uint8_t **)(void *)member;
    size_t esz = fuzz_elem_size(fd->type);
    uint64_t r = fuzz_rand(s);
    if (*n && r % 4 == 0) {  /* shrink: free what is dropped */
        size_t keep = (size_t)(r >> 8) % *n;
        for (size_t i = keep; i < *n; i++) {
            void *e = *arr + i * esz;
            if (fd->type == PROTOBUF_C_TYPE_STRING) free(*(char **)e);
            else if (fd->type == PROTOBUF_C_TYPE_BYTES) free(((ProtobufCBinaryData *)e)->data);
            else if (fd->type == PROTOBUF_C_TYPE_MESSAGE) protobuf_c_message_free_unpacked(*(ProtobufCMessage **)e, NULL);
        }
        *n = keep;
    } else if (r % 4 == 1 || *n == 0) {  /* grow: copies of an element, or many of them */
        size_t add = r % 16 == 1 ? 1400 : 1 + (size_t)(r >> 8) % 3;  /* 1400: past a small --max-batch */
        if (fd->type == PROTOBUF_C_TYPE_MESSAGE && add > 8) add = 8;
        uint8_t *grown = realloc(*arr, (*n + add) * esz);
        if (!grown) return;
        *arr = grown;
        for (size_t i = 0; i < add; i++) {
            void *e = *arr + (*n + i) * esz;
            memset(e, 0, esz);
            if (fd->type == PROTOBUF_C_TYPE_STRING)
                *(char **)e = *n && i % 2 ? strdup(*(char **)(*arr + (*n - 1) * esz)) : fuzz_new_string(s);
            else if (fd->type == PROTOBUF_C_TYPE_MESSAGE) *(ProtobufCMessage **)e = fuzz_new_message(fd->descriptor);
            else if (fd->type == PROTOBUF_C_TYPE_BYTES) ((ProtobufCBinaryData *)e)->data = NULL;
            else if (*n) memcpy(e, *arr + (*n - 1) * esz, esz);
            if (fd->type == PROTOBUF_C_TYPE_MESSAGE && depth < 4)
                fuzz_mutate_message(*(ProtobufCMessage **)e, s, depth + 1);
        }
        *n += add;
    } else {
        fuzz_mutate_value(fd, *arr + (size_t)((r >> 8) % *n) * esz, s, depth);
    }
}

/* Turns each FUZZ_NUL_MARK in the packed bytes into a NUL and four bytes
 * of text, keeping every length valid. */
static void fuzz_place_nuls(uint8_t *p, size_t n) {
    size_t m = sizeof FUZZ_NUL_MARK - 1;
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(p + i, FUZZ_NUL_MARK, m) == 0) p[i] = 0;
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed) {
    uint64_t s = (uint64_t)seed * 0x9e3779b97f4a7c15ull + 1;
    if (fuzz_rand(&s) % 8 == 0) return LLVMFuzzerMutate(data, size, max_size);
    Metaembed__Envelope *env = metaembed__envelope__unpack(NULL, size, data);
    uint8_t seedbuf[512];
    if (!env || !fuzz_request_desc((int)env->method) || fuzz_rand(&s) % 32 == 0) {
        if (env) metaembed__envelope__free_unpacked(env, NULL);
        size_t n = fuzz_seed_frame(1 + (int)(fuzz_rand(&s) % METAEMBED__METHOD__METHOD_SYNC_STATE), seedbuf);
        env = metaembed__envelope__unpack(NULL, n, seedbuf);
        if (!env) return LLVMFuzzerMutate(data, size, max_size);
    }
    uint64_t what = fuzz_rand(&s) % 16;
    if (what == 0) env->method = (Metaembed__Method)(fuzz_rand(&s) % (METAEMBED__METHOD__METHOD_SYNC_STATE + 2));
    else if (what == 1) env->deadline_ms = (uint32_t)fuzz_edge(&s, env->deadline_ms);
    const ProtobufCMessageDescriptor *desc = fuzz_request_desc((int)env->method);
    uint8_t *payload = NULL;
    if (desc && what > 1) {
        ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, env->payload.len, env->payload.data);
        if (!m) m = fuzz_new_message(desc);
        int rounds = 1 + (int)(fuzz_rand(&s) % 3);
        for (int i = 0; i < rounds; i++) fuzz_mutate_message(m, &s, 0);
        size_t plen = protobuf_c_message_get_packed_size(m);
        payload = malloc(plen ? plen : 1);
        protobuf_c_message_pack(m, payload);
        protobuf_c_message_free_unpacked(m, NULL);
        fuzz_place_nuls(payload, plen);
        free(env->payload.data);
        env->payload.data = payload;
        env->payload.len = plen;
    }
    size_t out = metaembed__envelope__get_packed_size(env);
    if (out <= max_size) metaembed__envelope__pack(env, data);
    else out = LLVMFuzzerMutate(data, size, max_size);
    metaembed__envelope__free_unpacked(env, NULL);
    return out;
}

#endif
