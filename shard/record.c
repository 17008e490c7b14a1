#include "shard/record.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bm25.h"
#include "common/error.h"
#include "common/json.h"

#define RECORD_VERSION 1
#define RECORD_HEADER 8

size_t me_doc_key(char *out, uint32_t coll_id, const char *id, size_t idlen) {
    out[0] = (char)(coll_id >> 24);
    out[1] = (char)(coll_id >> 16);
    out[2] = (char)(coll_id >> 8);
    out[3] = (char)coll_id;
    memcpy(out + 4, id, idlen);
    return 4 + idlen;
}

size_t me_record_size(me_dtype_t dt, int dim, int nrows) {
    size_t n = RECORD_HEADER + (size_t)nrows * dim * me_dtype_size(dt);
    if (dt == ME_DTYPE_INT8) n += (size_t)nrows * sizeof(float);
    return n;
}

static void put_u16(uint8_t *p, unsigned v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static unsigned get_u16(const uint8_t *p) { return p[0] | (unsigned)p[1] << 8; }

void me_record_write(uint8_t *out, me_dtype_t dt, int dim, int total_rows, int nrows,
                     const float *scales, const void *data) {
    out[0] = RECORD_VERSION;
    out[1] = (uint8_t)dt;
    put_u16(out + 2, (unsigned)total_rows);
    put_u16(out + 4, (unsigned)nrows);
    put_u16(out + 6, (unsigned)dim);
    uint8_t *p = out + RECORD_HEADER;
    if (dt == ME_DTYPE_INT8) {
        memcpy(p, scales, nrows * sizeof(float));
        p += nrows * sizeof(float);
    }
    memcpy(p, data, (size_t)nrows * dim * me_dtype_size(dt));
}

int me_record_parse(const uint8_t *buf, size_t len, me_dtype_t dt, int dim,
                    int *total_rows, int *nrows, const float **scales, const void **data) {
    if (len < RECORD_HEADER || buf[0] != RECORD_VERSION || buf[1] != (uint8_t)dt ||
        (int)get_u16(buf + 6) != dim)
        return ME_ECORRUPT;
    *total_rows = (int)get_u16(buf + 2);
    *nrows = (int)get_u16(buf + 4);
    if (*nrows > *total_rows || len != me_record_size(dt, dim, *nrows)) return ME_ECORRUPT;
    const uint8_t *p = buf + RECORD_HEADER;
    *scales = NULL;
    if (dt == ME_DTYPE_INT8) {
        *scales = (const float *)(const void *)p;
        p += *nrows * sizeof(float);
    }
    *data = p;
    return 0;
}

void me_record_put_doc(me_wbatch_t *b, const me_coll_t *c, const char *id, int rows, const uint8_t *data,
                       const float *scales, const void *meta, size_t meta_len, const uint8_t *bag,
                       size_t bag_len, const uint8_t *fields, size_t fields_len, uint8_t *rec) {
    const me_coll_config_t *cfg = &c->cfg;
    char key[ME_DOC_KEY_MAX];
    size_t klen = me_doc_key(key, c->id, id, strlen(id)), rb = me_coll_row_bytes(c);
    int ram = cfg->ram_vectors, head = rows < ram ? rows : ram;
    me_record_write(rec, cfg->dtype, cfg->dim, rows, head, scales, data);
    me_wbatch_put(b, ME_CF_HEAD, key, klen, rec, me_record_size(cfg->dtype, cfg->dim, head));
    if (rows > ram) {
        me_record_write(rec, cfg->dtype, cfg->dim, rows, rows - ram, scales ? scales + ram : NULL,
                        data + (size_t)ram * rb);
        me_wbatch_put(b, ME_CF_TAIL, key, klen, rec, me_record_size(cfg->dtype, cfg->dim, rows - ram));
    } else {
        me_wbatch_delete(b, ME_CF_TAIL, key, klen);
    }
    if (meta_len) me_wbatch_put(b, ME_CF_DOC, key, klen, meta, meta_len);
    else me_wbatch_delete(b, ME_CF_DOC, key, klen);
    /* Always a record (an empty bag without text): a document with none
     * was written before the BM25 index existed, and start-up fills it in. */
    static const uint8_t empty[4] = { 0 };
    if (bag_len) me_wbatch_put(b, ME_CF_LEX, key, klen, bag, bag_len);
    else me_wbatch_put(b, ME_CF_LEX, key, klen, empty, sizeof empty);
    if (fields_len) me_wbatch_put(b, ME_CF_FLD, key, klen, fields, fields_len);
    else me_wbatch_delete(b, ME_CF_FLD, key, klen);
}

void me_record_put_fields(me_wbatch_t *b, const me_coll_t *c, const char *id, const uint8_t *rec, size_t len) {
    char key[ME_DOC_KEY_MAX];
    size_t klen = me_doc_key(key, c->id, id, strlen(id));
    if (len) me_wbatch_put(b, ME_CF_FLD, key, klen, rec, len);
    else me_wbatch_delete(b, ME_CF_FLD, key, klen);
}

void me_record_put_terms(me_wbatch_t *b, const me_coll_t *c, const char *id, const uint8_t *bag, size_t bag_len) {
    static const uint8_t empty[4] = { 0 };
    char key[ME_DOC_KEY_MAX];
    size_t klen = me_doc_key(key, c->id, id, strlen(id));
    me_wbatch_put(b, ME_CF_LEX, key, klen, bag_len ? bag : empty, bag_len ? bag_len : sizeof empty);
}

int me_record_derive(const void *meta, size_t meta_len, const me_field_spec_t *fields, int nfields, uint8_t **bag,
                     size_t *bag_len, uint8_t **rec, size_t *rec_len, char *err, size_t errcap) {
    *bag = *rec = NULL;
    *bag_len = *rec_len = 0;
    me_json_doc_t *doc = NULL;
    /* Metadata is opaque to the shard: anything but a JSON object simply
     * has no postings and no field values. */
    if (!meta_len || me_json_parse(meta, meta_len, &doc, NULL) != 0) return 0;
    const me_json_t *root = me_json_root(doc);
    const char *text = me_json_str(me_json_get(root, "text"));
    int rc = text ? me_bm25_bag(text, strlen(text), bag, bag_len) : 0;
    if (rc == 0) rc = me_payload_record_json(fields, nfields, root, rec, rec_len, err, errcap);
    if (rc) {
        free(*bag);
        *bag = NULL;
        *bag_len = 0;
    }
    me_json_free(doc);
    return rc;
}

int me_record_text_bag(const void *meta, size_t meta_len, uint8_t **bag, size_t *bag_len) {
    uint8_t *rec;
    size_t rlen;
    return me_record_derive(meta, meta_len, NULL, 0, bag, bag_len, &rec, &rlen, NULL, 0);
}

void me_record_delete_doc(me_wbatch_t *b, const me_coll_t *c, const char *id) {
    char key[ME_DOC_KEY_MAX];
    size_t klen = me_doc_key(key, c->id, id, strlen(id));
    for (int cf = ME_CF_HEAD; cf <= ME_CF_DOC_LAST; cf++) me_wbatch_delete(b, (me_cf_t)cf, key, klen);
}

int me_record_metadata(me_storage_t *st, const me_coll_t *c, const char *id, char **val, size_t *len) {
    char key[ME_DOC_KEY_MAX];
    size_t klen = me_doc_key(key, c->id, id, strlen(id));
    return me_storage_get(st, ME_CF_DOC, key, klen, val, len);
}

int me_record_load(me_storage_t *st, const me_coll_t *c, const uint32_t *slots, size_t n, int want,
                   uint8_t *dst, float *dsc, int *got, char *err, size_t errcap) {
    const me_coll_config_t *cfg = &c->cfg;
    size_t rb = me_coll_row_bytes(c);
    int int8 = cfg->dtype == ME_DTYPE_INT8, ram = cfg->ram_vectors;
    /* Which documents need their tail. */
    size_t ntail = 0;
    for (size_t i = 0; i < n; i++)
        if (want > ram && c->rows[slots[i]] > ram) ntail++;
    char **keys = NULL, **vals = NULL, *keybuf = NULL;
    size_t *klens = NULL, *vlens = NULL;
    int rc = 0;
    if (ntail) {
        keys = malloc(ntail * sizeof *keys);
        klens = malloc(ntail * sizeof *klens);
        vals = calloc(ntail, sizeof *vals);
        vlens = calloc(ntail, sizeof *vlens);
        keybuf = malloc(ntail * ME_DOC_KEY_MAX);
        if (!keys || !klens || !vals || !vlens || !keybuf) { rc = ME_ENOMEM; goto done; }
        for (size_t i = 0, t = 0; i < n; i++) {
            if (c->rows[slots[i]] <= ram) continue;
            keys[t] = keybuf + t * ME_DOC_KEY_MAX;
            const char *id = c->ids[slots[i]];
            klens[t] = me_doc_key(keys[t], c->id, id, strlen(id));
            t++;
        }
        if (me_storage_multi_get(st, ME_CF_TAIL, ntail, (const char *const *)keys, klens, vals, vlens) != 0) {
            snprintf(err, errcap, "reading stored vectors failed");
            rc = ME_EIO;
            goto done;
        }
    }
    for (size_t i = 0, t = 0; i < n; i++) {
        uint32_t s = slots[i];
        int rows = c->rows[s], head = rows < ram ? rows : ram;
        if (head > want) head = want;
        uint8_t *d = dst + i * (size_t)want * rb;
        float *ds = int8 ? dsc + i * (size_t)want : NULL;
        me_docref_t h = me_coll_head_ref(c, s);
        memcpy(d, h.data, (size_t)head * rb);
        if (int8) memcpy(ds, h.scales, head * sizeof(float));
        got[i] = head;
        if (want <= ram || rows <= ram) continue;
        int total, nrows;
        const float *sc;
        const void *data;
        if (!vals[t] || me_record_parse((const uint8_t *)vals[t], vlens[t], cfg->dtype, cfg->dim, &total, &nrows,
                                        &sc, &data) != 0 || total != rows || nrows != rows - ram) {
            snprintf(err, errcap, "stored vectors of document '%s' are missing or corrupt", c->ids[s]);
            rc = ME_ECORRUPT;
            goto done;
        }
        t++;
        int take = want - ram < nrows ? want - ram : nrows;
        memcpy(d + (size_t)ram * rb, data, (size_t)take * rb);
        if (int8) memcpy(ds + ram, sc, take * sizeof(float));
        got[i] = ram + take;
    }
done:
    if (vals)
        for (size_t t = 0; t < ntail; t++) me_storage_free(vals[t]);
    free(keys);
    free(klens);
    free(vals);
    free(vlens);
    free(keybuf);
    return rc;
}

int me_record_list_ids(me_storage_t *st, const me_coll_t *c, const char *after, size_t limit, char **ids,
                       size_t *n, int *more) {
    char prefix[4], from[ME_DOC_KEY_MAX];
    me_doc_key(prefix, c->id, "", 0);
    size_t alen = after ? strlen(after) : 0, flen = me_doc_key(from, c->id, after ? after : "", alen);
    me_iter_t *it = me_storage_iter_from(st, ME_CF_HEAD, prefix, sizeof prefix, from, flen);
    if (!it) return ME_ENOMEM;
    const char *k, *v;
    size_t kl, vl;
    int rc = 0;
    *n = 0;
    *more = 0;
    /* The head family holds one record per document: its keys are the ids. */
    while (me_iter_next(it, &k, &kl, &v, &vl)) {
        if (kl == flen && memcmp(k, from, flen) == 0) continue;  /* the cursor itself: strictly after */
        if (*n == limit) { *more = 1; break; }
        if (!(ids[*n] = strndup(k + 4, kl - 4))) { rc = ME_ENOMEM; break; }
        (*n)++;
    }
    me_iter_free(it);
    return rc;
}
