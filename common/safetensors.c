#include "common/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/json.h"

typedef struct {
    const char *name;
    int ndim;
    uint64_t shape[ME_ST_MAX_DIMS];
    uint64_t begin, end;
} entry_t;

struct me_st_file {
    me_json_doc_t *doc;
    const me_json_t *meta;      /* __metadata__ object or NULL */
    entry_t *entries;
    int n;
    const uint8_t *data;        /* start of the data area */
    void *map;                  /* when opened from a file */
    size_t map_len;
};

/* ---- writing ---- */

int me_st_write(const char *path, const char *const *meta_keys, const char *const *meta_vals, int nmeta,
                const me_st_tensor_t *t, int n, char *err, size_t errcap) {
    me_json_writer_t w;
    me_json_writer_init_buf(&w);
    me_json_obj_begin(&w, NULL);
    if (nmeta > 0) {
        me_json_obj_begin(&w, "__metadata__");
        for (int i = 0; i < nmeta; i++) me_json_put_str(&w, meta_keys[i], meta_vals[i]);
        me_json_obj_end(&w);
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        uint64_t count = 1;
        me_json_obj_begin(&w, t[i].name);
        me_json_put_str(&w, "dtype", "F32");
        me_json_arr_begin(&w, "shape");
        for (int d = 0; d < t[i].ndim; d++) {
            me_json_put_u64(&w, NULL, t[i].shape[d]);
            count *= t[i].shape[d];
        }
        me_json_arr_end(&w);
        me_json_arr_begin(&w, "data_offsets");
        me_json_put_u64(&w, NULL, off);
        me_json_put_u64(&w, NULL, off + count * 4);
        me_json_arr_end(&w);
        me_json_obj_end(&w);
        off += count * 4;
    }
    me_json_obj_end(&w);
    size_t hlen;
    char *hdr = me_json_writer_take(&w, &hlen);
    me_json_writer_free(&w);
    if (!hdr) { snprintf(err, errcap, "out of memory building the header"); return ME_ENOMEM; }
    /* Pad with spaces so the data area starts 8-byte aligned. */
    size_t padded = (hlen + 7) & ~(size_t)7;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    int rc = 0;
    if (!f) {
        snprintf(err, errcap, "cannot write %s: %s", tmp, strerror(errno));
        free(hdr);
        return ME_EIO;
    }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    if (fwrite(len8, 1, 8, f) != 8 || fwrite(hdr, 1, hlen, f) != hlen) rc = ME_EIO;
    for (size_t i = hlen; rc == 0 && i < padded; i++)
        if (fputc(' ', f) == EOF) rc = ME_EIO;
    for (int i = 0; rc == 0 && i < n; i++) {
        size_t count = 1;
        for (int d = 0; d < t[i].ndim; d++) count *= (size_t)t[i].shape[d];
        if (fwrite(t[i].data, 4, count, f) != count) rc = ME_EIO;
    }
    if (rc == 0 && (fflush(f) != 0 || fsync(fileno(f)) != 0)) rc = ME_EIO;
    if (fclose(f) != 0) rc = ME_EIO;
    if (rc == 0 && rename(tmp, path) != 0) rc = ME_EIO;
    if (rc) {
        snprintf(err, errcap, "writing %s failed: %s", path, strerror(errno));
        unlink(tmp);
    }
    free(hdr);
    return rc;
}

/* ---- reading ---- */

static int corrupt(char *err, size_t errcap, const char *what, const char *name) {
    snprintf(err, errcap, "corrupt safetensors file: %s%s%s", what, name ? " in tensor " : "", name ? name : "");
    return ME_ECORRUPT;
}

static int cmp_begin(const void *a, const void *b) {
    const entry_t *x = a, *y = b;
    return (x->begin > y->begin) - (x->begin < y->begin);
}

int me_st_parse(const void *buf, size_t len, me_st_file_t **out, char *err, size_t errcap) {
    *out = NULL;
    const uint8_t *p = buf;
    if (len < 8) return corrupt(err, errcap, "shorter than the 8-byte header length", NULL);
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)p[i] << (8 * i);
    if (hlen < 2 || hlen > ME_ST_MAX_HEADER || hlen > len - 8)
        return corrupt(err, errcap, "header length out of range (truncated file?)", NULL);
    /* Writers pad the header so the data is aligned; floats are read in place. */
    if (((uintptr_t)(p + 8 + hlen)) % 4 != 0)
        return corrupt(err, errcap, "data area not 4-byte aligned (unpadded header)", NULL);
    me_st_file_t *f = calloc(1, sizeof *f);
    if (!f) return ME_ENOMEM;
    me_json_error_t jerr;
    int rc = me_json_parse((const char *)p + 8, (size_t)hlen, &f->doc, &jerr);
    if (rc) {
        snprintf(err, errcap, "corrupt safetensors file: header is not JSON (%s)", jerr.msg);
        free(f);
        return rc == ME_ENOMEM ? ME_ENOMEM : ME_ECORRUPT;
    }
    const me_json_t *root = me_json_root(f->doc);
    const uint8_t *data = p + 8 + hlen;
    uint64_t data_len = len - 8 - hlen;
    if (root->type != ME_JSON_OBJECT) { rc = corrupt(err, errcap, "header is not an object", NULL); goto fail; }
    f->entries = calloc(root->len ? root->len : 1, sizeof *f->entries);
    if (!f->entries) { rc = ME_ENOMEM; goto fail; }
    for (size_t i = 0; i < root->len; i++) {
        const me_json_member_t *m = &root->u.members[i];
        if (strcmp(m->key, "__metadata__") == 0) {
            if (m->value.type != ME_JSON_OBJECT) { rc = corrupt(err, errcap, "__metadata__ is not an object", NULL); goto fail; }
            for (size_t k = 0; k < m->value.len; k++)
                if (m->value.u.members[k].value.type != ME_JSON_STRING) {
                    rc = corrupt(err, errcap, "a __metadata__ value is not a string", NULL);
                    goto fail;
                }
            f->meta = &m->value;
            continue;
        }
        entry_t *e = &f->entries[f->n];
        e->name = m->key;
        const char *dt = me_json_str(me_json_get(&m->value, "dtype"));
        if (!dt) { rc = corrupt(err, errcap, "missing dtype", e->name); goto fail; }
        if (strcmp(dt, "F32") != 0) { rc = corrupt(err, errcap, "dtype is not F32", e->name); goto fail; }
        const me_json_t *shape = me_json_get(&m->value, "shape");
        const me_json_t *offs = me_json_get(&m->value, "data_offsets");
        if (!shape || shape->type != ME_JSON_ARRAY || shape->len > ME_ST_MAX_DIMS) {
            rc = corrupt(err, errcap, "bad shape", e->name);
            goto fail;
        }
        e->ndim = (int)shape->len;
        uint64_t count = 1;
        for (size_t d = 0; d < shape->len; d++) {
            int64_t v;
            if (me_json_int64(me_json_at(shape, d), &v) != 0 || v < 0 || (v > 0 && count > (UINT64_MAX / 8) / (uint64_t)v)) {
                rc = corrupt(err, errcap, "bad shape", e->name);
                goto fail;
            }
            e->shape[d] = (uint64_t)v;
            count *= (uint64_t)v;
        }
        int64_t b, en;
        if (!offs || offs->type != ME_JSON_ARRAY || offs->len != 2 || me_json_int64(me_json_at(offs, 0), &b) != 0 ||
            me_json_int64(me_json_at(offs, 1), &en) != 0 || b < 0 || en < b || (uint64_t)en > data_len) {
            rc = corrupt(err, errcap, "data_offsets out of range (truncated file?)", e->name);
            goto fail;
        }
        if ((uint64_t)(en - b) != count * 4) { rc = corrupt(err, errcap, "data size does not match shape", e->name); goto fail; }
        if (b % 4) { rc = corrupt(err, errcap, "misaligned data offset", e->name); goto fail; }
        e->begin = (uint64_t)b;
        e->end = (uint64_t)en;
        for (int k = 0; k < f->n; k++)
            if (strcmp(f->entries[k].name, e->name) == 0) { rc = corrupt(err, errcap, "duplicate name", e->name); goto fail; }
        f->n++;
    }
    /* The data area is exactly the tensors, back to back. */
    {
        entry_t *sorted = malloc((f->n ? (size_t)f->n : 1) * sizeof *sorted);
        if (!sorted) { rc = ME_ENOMEM; goto fail; }
        memcpy(sorted, f->entries, (size_t)f->n * sizeof *sorted);
        qsort(sorted, (size_t)f->n, sizeof *sorted, cmp_begin);
        uint64_t at = 0;
        for (int k = 0; k < f->n && rc == 0; k++) {
            if (sorted[k].begin != at) rc = corrupt(err, errcap, "tensors overlap or leave gaps", sorted[k].name);
            at = sorted[k].end;
        }
        if (rc == 0 && at != data_len) rc = corrupt(err, errcap, "data area size does not match the tensors", NULL);
        free(sorted);
        if (rc) goto fail;
    }
    f->data = data;
    *out = f;
    return 0;
fail:
    me_st_close(f);
    return rc;
}

int me_st_open(const char *path, me_st_file_t **out, char *err, size_t errcap) {
    *out = NULL;
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        snprintf(err, errcap, "cannot open %s: %s", path, strerror(errno));
        return ME_EIO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < 8) {
        close(fd);
        snprintf(err, errcap, "%s: not a safetensors file (%lld bytes)", path, (long long)st.st_size);
        return ME_ECORRUPT;
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        snprintf(err, errcap, "cannot map %s: %s", path, strerror(errno));
        return ME_EIO;
    }
    char sub[400];
    int rc = me_st_parse(map, (size_t)st.st_size, out, sub, sizeof sub);
    if (rc) {
        snprintf(err, errcap, "%s: %s", path, sub);
        munmap(map, (size_t)st.st_size);
        return rc;
    }
    (*out)->map = map;
    (*out)->map_len = (size_t)st.st_size;
    return 0;
}

void me_st_close(me_st_file_t *f) {
    if (!f) return;
    me_json_free(f->doc);
    free(f->entries);
    if (f->map) munmap(f->map, f->map_len);
    free(f);
}

const char *me_st_meta(const me_st_file_t *f, const char *key) { return me_json_str(me_json_get(f->meta, key)); }

int me_st_count(const me_st_file_t *f) { return f->n; }

int me_st_get(const me_st_file_t *f, const char *name, me_st_tensor_t *out) {
    for (int i = 0; i < f->n; i++) {
        const entry_t *e = &f->entries[i];
        if (strcmp(e->name, name) != 0) continue;
        out->name = e->name;
        out->ndim = e->ndim;
        memcpy(out->shape, e->shape, sizeof out->shape);
        out->data = (const float *)(const void *)(f->data + e->begin);
        return 0;
    }
    return ME_ENOTFOUND;
}
