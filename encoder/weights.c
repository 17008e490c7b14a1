#include "encoder/weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/json.h"
#include "common/safetensors.h"

/* The config's fields; the last NOPTIONAL may be absent (files written
 * before images: text only). */
#define NFIELDS 10
#define NOPTIONAL 2

static const char *field_names[NFIELDS] = { "vocab",  "max_text", "layers",     "width", "heads",
                                            "dim",    "meta_q",   "meta_c",     "image_size", "patch" };

static int *field_ptr(me_model_config_t *c, int i) {
    int *f[NFIELDS] = { &c->vocab, &c->max_text, &c->layers, &c->width,      &c->heads,
                        &c->dim,   &c->meta_q,   &c->meta_c, &c->image_size, &c->patch };
    return f[i];
}

char *me_model_config_json(const me_model_config_t *c) {
    me_json_writer_t w;
    me_json_writer_init_buf(&w);
    me_json_obj_begin(&w, NULL);
    me_model_config_t copy = *c;
    for (int i = 0; i < NFIELDS; i++)
        if (i < NFIELDS - NOPTIONAL || copy.image_size) me_json_put_int(&w, field_names[i], *field_ptr(&copy, i));
    me_json_obj_end(&w);
    char *s = me_json_writer_take(&w, NULL);
    me_json_writer_free(&w);
    return s;
}

int me_model_config_parse(const char *json, me_model_config_t *c, char *err, size_t errcap) {
    me_json_doc_t *doc;
    me_json_error_t jerr;
    if (!json || me_json_parse(json, strlen(json), &doc, &jerr) != 0) {
        snprintf(err, errcap, "model config is not JSON%s%s", json ? ": " : "", json ? jerr.msg : "");
        return ME_ECORRUPT;
    }
    memset(c, 0, sizeof *c);
    int rc = 0;
    for (int i = 0; i < NFIELDS && rc == 0; i++) {
        int64_t v;
        const me_json_t *f = me_json_get(me_json_root(doc), field_names[i]);
        if (!f && i >= NFIELDS - NOPTIONAL) continue;
        if (me_json_int64(f, &v) != 0 || v < 0 || v > (1 << 30)) {
            snprintf(err, errcap, "model config: '%s' missing or not an integer", field_names[i]);
            rc = ME_ECORRUPT;
        } else *field_ptr(c, i) = (int)v;
    }
    me_json_free(doc);
    if (rc == 0 && me_model_config_check(c, err, errcap) != 0) rc = ME_ECORRUPT;
    return rc;
}

int me_weights_save(me_model_t *m, const char *path, const char *tokenizer, int with_opt,
                    const char *const *keys, const char *const *vals, int nkeys, char *err, size_t errcap) {
    const me_model_config_t *c = me_model_config(m);
    size_t sizes[ME_MODEL_NUM_PARAMS];
    int shapes[ME_MODEL_NUM_PARAMS][3];
    me_model_param_sizes(c, sizes, shapes);
    int nt = ME_MODEL_NUM_PARAMS * (with_opt ? 3 : 1);
    me_st_tensor_t *t = calloc((size_t)nt, sizeof *t);
    char (*names)[64] = calloc((size_t)nt, sizeof *names);
    const char **mk = calloc((size_t)nkeys + 3, sizeof *mk), **mv = calloc((size_t)nkeys + 3, sizeof *mv);
    char *cfg = me_model_config_json(c);
    int rc = ME_ENOMEM;
    if (!t || !names || !mk || !mv || !cfg) { snprintf(err, errcap, "out of memory"); goto out; }
    size_t n;
    float *data[3] = { me_model_param_data(m, &n), NULL, NULL };
    me_model_opt_state(m, &data[1], &data[2], &n);
    static const char *prefix[3] = { "", "adam.m.", "adam.v." };
    int k = 0;
    for (int part = 0; part < (with_opt ? 3 : 1); part++) {
        size_t off = 0;
        for (int i = 0; i < ME_MODEL_NUM_PARAMS; i++) {
            if (!sizes[i]) continue;  /* a text-only model's image tensors */
            snprintf(names[k], sizeof names[k], "%s%s", prefix[part], me_model_param_names[i]);
            t[k].name = names[k];
            for (int d = 0; d < 3 && shapes[i][d]; d++) t[k].shape[t[k].ndim++] = (uint64_t)shapes[i][d];
            t[k].data = data[part] + off;
            off += sizes[i];
            k++;
        }
    }
    int nm = 0;
    mk[nm] = "format"; mv[nm++] = ME_WEIGHTS_FORMAT;
    mk[nm] = "config"; mv[nm++] = cfg;
    if (tokenizer) { mk[nm] = "tokenizer"; mv[nm++] = tokenizer; }
    for (int i = 0; i < nkeys; i++) { mk[nm] = keys[i]; mv[nm++] = vals[i]; }
    rc = me_st_write(path, mk, mv, nm, t, k, err, errcap);
out:
    free(t);
    free(names);
    free(mk);
    free(mv);
    free(cfg);
    return rc;
}

int me_weights_load(const char *path, int with_opt, me_model_t **out, char **tokenizer,
                    const char *const *keys, char **vals, int nkeys, char *err, size_t errcap) {
    *out = NULL;
    if (tokenizer) *tokenizer = NULL;
    for (int i = 0; i < nkeys; i++) vals[i] = NULL;
    me_st_file_t *f;
    int rc = me_st_open(path, &f, err, errcap);
    if (rc) return rc;
    me_model_t *m = NULL;
    const char *format = me_st_meta(f, "format");
    if (!format || strcmp(format, ME_WEIGHTS_FORMAT) != 0) {
        snprintf(err, errcap, "%s: not a metaembed model file (format '%s', expected '%s')", path,
                 format ? format : "none", ME_WEIGHTS_FORMAT);
        rc = ME_ECORRUPT;
        goto out;
    }
    me_model_config_t c;
    char sub[256];
    if ((rc = me_model_config_parse(me_st_meta(f, "config"), &c, sub, sizeof sub)) != 0) {
        snprintf(err, errcap, "%s: %s", path, sub);
        goto out;
    }
    m = me_model_new(&c);
    if (!m) { rc = ME_ENOMEM; snprintf(err, errcap, "out of memory for the model"); goto out; }
    size_t sizes[ME_MODEL_NUM_PARAMS];
    int shapes[ME_MODEL_NUM_PARAMS][3];
    me_model_param_sizes(&c, sizes, shapes);
    size_t n;
    float *data[3] = { me_model_param_data(m, &n), NULL, NULL };
    me_model_opt_state(m, &data[1], &data[2], &n);
    static const char *prefix[3] = { "", "adam.m.", "adam.v." };
    for (int part = 0; part < (with_opt ? 3 : 1) && rc == 0; part++) {
        size_t off = 0;
        for (int i = 0; i < ME_MODEL_NUM_PARAMS; i++) {
            if (!sizes[i]) continue;
            char name[64];
            snprintf(name, sizeof name, "%s%s", prefix[part], me_model_param_names[i]);
            me_st_tensor_t t;
            if (me_st_get(f, name, &t) != 0) {
                snprintf(err, errcap, "%s: tensor %s is missing%s", path, name,
                         part ? " (not a training checkpoint?)" : "");
                rc = part ? ME_ENOTFOUND : ME_ECORRUPT;
                break;
            }
            int ok = 1, d = 0;
            for (; d < 3 && shapes[i][d]; d++) ok &= d < t.ndim && t.shape[d] == (uint64_t)shapes[i][d];
            ok &= t.ndim == d;
            if (!ok) {
                snprintf(err, errcap, "%s: tensor %s has the wrong shape for the config", path, name);
                rc = ME_ECORRUPT;
                break;
            }
            memcpy(data[part] + off, t.data, sizes[i] * sizeof(float));
            off += sizes[i];
        }
    }
    if (rc) goto out;
    if (tokenizer && me_st_meta(f, "tokenizer")) {
        *tokenizer = strdup(me_st_meta(f, "tokenizer"));
        if (!*tokenizer) { rc = ME_ENOMEM; goto out; }
    }
    for (int i = 0; i < nkeys; i++)
        if (me_st_meta(f, keys[i])) vals[i] = strdup(me_st_meta(f, keys[i]));
out:
    me_st_close(f);
    if (rc) {
        me_model_free(m);
        if (tokenizer) { free(*tokenizer); *tokenizer = NULL; }
        for (int i = 0; i < nkeys; i++) { free(vals[i]); vals[i] = NULL; }
        return rc;
    }
    *out = m;
    return 0;
}
