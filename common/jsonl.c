#include "common/jsonl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common/error.h"

struct me_jsonl {
    gzFile f;
    char path[512];
    char *buf;
    size_t cap;
    long line;
    me_json_doc_t *doc;
};

int me_jsonl_open(const char *path, me_jsonl_t **out, char *err, size_t errcap) {
    *out = NULL;
    me_jsonl_t *r = calloc(1, sizeof *r);
    if (!r) return ME_ENOMEM;
    r->f = gzopen(path, "rb");
    if (!r->f) {
        snprintf(err, errcap, "cannot open %s: %s", path, strerror(errno ? errno : ENOENT));
        free(r);
        return ME_EIO;
    }
    snprintf(r->path, sizeof r->path, "%s", path);
    r->cap = 1 << 16;
    r->buf = malloc(r->cap);
    if (!r->buf) { me_jsonl_close(r); return ME_ENOMEM; }
    *out = r;
    return 0;
}

/* Reads one whole line (any length) into r->buf; returns its length or -1 at the end. */
static long read_line(me_jsonl_t *r) {
    size_t len = 0;
    for (;;) {
        if (!gzgets(r->f, r->buf + len, (int)(r->cap - len))) return len ? (long)len : -1;
        len += strlen(r->buf + len);
        if (len > 0 && r->buf[len - 1] == '\n') return (long)len;
        if (len + 1 < r->cap) return (long)len;  /* last line without a newline */
        char *nb = realloc(r->buf, r->cap * 2);
        if (!nb) return -1;
        r->buf = nb;
        r->cap *= 2;
    }
}

int me_jsonl_next(me_jsonl_t *r, const me_json_t **obj, long *line, char *err, size_t errcap) {
    me_json_free(r->doc);
    r->doc = NULL;
    for (;;) {
        long len = read_line(r);
        if (len < 0) {
            int zerr;
            const char *msg = gzerror(r->f, &zerr);
            if (zerr != Z_OK && zerr != Z_STREAM_END) {
                snprintf(err, errcap, "%s: damaged file: %s", r->path, msg);
                return ME_ECORRUPT;
            }
            return 0;
        }
        r->line++;
        while (len > 0 && (r->buf[len - 1] == '\n' || r->buf[len - 1] == '\r')) len--;
        size_t i = 0;
        while (i < (size_t)len && (r->buf[i] == ' ' || r->buf[i] == '\t')) i++;
        if (i == (size_t)len) continue;
        me_json_error_t jerr;
        if (me_json_parse(r->buf, (size_t)len, &r->doc, &jerr) != 0) {
            snprintf(err, errcap, "%s:%ld: not JSON: %s", r->path, r->line, jerr.msg);
            return ME_EINVAL;
        }
        if (me_json_root(r->doc)->type != ME_JSON_OBJECT) {
            snprintf(err, errcap, "%s:%ld: expected a JSON object", r->path, r->line);
            me_json_free(r->doc);
            r->doc = NULL;
            return ME_EINVAL;
        }
        *obj = me_json_root(r->doc);
        *line = r->line;
        return 1;
    }
}

void me_jsonl_close(me_jsonl_t *r) {
    if (!r) return;
    me_json_free(r->doc);
    if (r->f) gzclose(r->f);
    free(r->buf);
    free(r);
}
