#include "encoder/embedder.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/image.h"
#include "common/paths.h"
#include "encoder/weights.h"

struct me_embedder {
    me_model_t *m;
    me_tok_t *tok_owned;
    const me_tok_t *tok;
    int owns_model;
    me_acts_t *acts[2];        /* per side, made on first use */
    me_acts_t *img_acts[2];    /* the same with image positions */
    int32_t *ids;              /* (ME_EMBED_BATCH, text_len) */
    int lens[ME_EMBED_BATCH];
    float *pixels;             /* (ME_EMBED_BATCH, S, S, 3) */
    uint8_t has[ME_EMBED_BATCH];
};

me_embedder_t *me_embedder_wrap(me_model_t *m, const me_tok_t *tok) {
    me_embedder_t *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->m = m;
    e->tok = tok;
    e->ids = malloc((size_t)ME_EMBED_BATCH * me_model_config(m)->max_text * sizeof *e->ids);
    if (!e->ids) { free(e); return NULL; }
    return e;
}

int me_embedder_load(const char *given, me_embedder_t **out, char *err, size_t errcap) {
    *out = NULL;
    /* The default "models/..." works from any folder: see me_resolve_model. */
    char path[4096];
    int rc = me_resolve_model(given, path, sizeof path, err, errcap);
    if (rc) return rc;
    me_model_t *m;
    char *tokstr = NULL;
    rc = me_weights_load(path, 0, &m, &tokstr, NULL, NULL, 0, err, errcap);
    if (rc) return rc;
    me_tok_t *tok = NULL;
    char sub[256];
    if (!tokstr) {
        snprintf(err, errcap, "%s: the model file has no tokenizer", path);
        rc = ME_ECORRUPT;
    } else if ((rc = me_tok_load(tokstr, strlen(tokstr), &tok, sub, sizeof sub)) != 0) {
        snprintf(err, errcap, "%s: tokenizer: %s", path, sub);
    } else if (me_tok_vocab_size(tok) > me_model_config(m)->vocab) {
        snprintf(err, errcap, "%s: tokenizer has %d ids but the model only %d", path, me_tok_vocab_size(tok),
                 me_model_config(m)->vocab);
        rc = ME_ECORRUPT;
    }
    free(tokstr);
    me_embedder_t *e = rc ? NULL : me_embedder_wrap(m, tok);
    if (!e) {
        if (!rc) { rc = ME_ENOMEM; snprintf(err, errcap, "out of memory"); }
        me_tok_free(tok);
        me_model_free(m);
        return rc;
    }
    e->tok_owned = tok;
    e->owns_model = 1;
    *out = e;
    return 0;
}

me_embedder_t *me_embedder_share(const me_embedder_t *e) { return me_embedder_wrap(e->m, e->tok); }

void me_embedder_free(me_embedder_t *e) {
    if (!e) return;
    me_acts_free(e->acts[0]);
    me_acts_free(e->acts[1]);
    me_acts_free(e->img_acts[0]);
    me_acts_free(e->img_acts[1]);
    free(e->pixels);
    free(e->ids);
    me_tok_free(e->tok_owned);
    if (e->owns_model) me_model_free(e->m);
    free(e);
}

const me_model_config_t *me_embedder_config(const me_embedder_t *e) { return me_model_config(e->m); }
const me_tok_t *me_embedder_tokenizer(const me_embedder_t *e) { return e->tok; }

int me_embedder_rows(const me_embedder_t *e, me_side_t side) {
    const me_model_config_t *c = me_model_config(e->m);
    return side == ME_SIDE_QUERY ? c->meta_q : c->meta_c;
}

int me_embedder_text_len(const me_embedder_t *e, me_side_t side) {
    int max = me_model_config(e->m)->max_text;
    return side == ME_SIDE_QUERY && max > ME_QUERY_TEXT_LEN ? ME_QUERY_TEXT_LEN : max;
}

int me_embedder_image_size(const me_embedder_t *e) {
    return me_model_patches(me_model_config(e->m)) ? me_model_config(e->m)->image_size : 0;
}

/* Row i of the batch's token ids: the text, cut to W tokens and padded. */
static void tokenise_row(me_embedder_t *e, int i, const char *t, size_t len, int W) {
    int32_t *row = e->ids + (size_t)i * W;
    e->lens[i] = me_tok_encode(e->tok, t, len, row, W);
    for (int k = e->lens[i]; k < W; k++) row[k] = ME_TOK_PAD;
}

int me_embedder_encode(me_embedder_t *e, me_side_t side, const char *const *texts, const size_t *lens, int n,
                       float *out) {
    int W = me_embedder_text_len(e, side);
    if (!e->acts[side]) {
        e->acts[side] = me_acts_new(e->m, side, ME_EMBED_BATCH, W);
        if (!e->acts[side]) return ME_ENOMEM;
    }
    size_t per = (size_t)me_embedder_rows(e, side) * me_model_config(e->m)->dim;
    for (int off = 0; off < n; off += ME_EMBED_BATCH) {
        int b = n - off < ME_EMBED_BATCH ? n - off : ME_EMBED_BATCH;
        for (int i = 0; i < b; i++) {
            const char *t = texts[off + i] ? texts[off + i] : "";
            tokenise_row(e, i, t, lens ? lens[off + i] : strlen(t), W);
        }
        me_model_forward(e->m, e->acts[side], e->ids, e->lens, b, out + (size_t)off * per);
    }
    return 0;
}

int me_embedder_encode_items(me_embedder_t *e, me_side_t side, const float *const *images,
                             const char *const *texts, int n, float *out) {
    int S = me_embedder_image_size(e);
    if (!S) return ME_EINVAL;
    int W = me_embedder_text_len(e, side);
    size_t pix = (size_t)S * S * 3;
    if (!e->img_acts[side]) {
        e->img_acts[side] = me_acts_new_images(e->m, side, ME_EMBED_BATCH, W);
        if (!e->img_acts[side]) return ME_ENOMEM;
    }
    if (!e->pixels && !(e->pixels = malloc((size_t)ME_EMBED_BATCH * pix * sizeof *e->pixels))) return ME_ENOMEM;
    size_t per = (size_t)me_embedder_rows(e, side) * me_model_config(e->m)->dim;
    for (int off = 0; off < n; off += ME_EMBED_BATCH) {
        int b = n - off < ME_EMBED_BATCH ? n - off : ME_EMBED_BATCH;
        for (int i = 0; i < b; i++) {
            const char *t = texts && texts[off + i] ? texts[off + i] : "";
            tokenise_row(e, i, t, strlen(t), W);
            const float *im = images ? images[off + i] : NULL;
            e->has[i] = im != NULL;
            if (im) memcpy(e->pixels + (size_t)i * pix, im, pix * sizeof *im);
        }
        me_model_forward_images(e->m, e->img_acts[side], e->ids, e->lens, e->pixels, e->has, b, out + (size_t)off * per);
    }
    return 0;
}

int me_embedder_encode_image_bytes(me_embedder_t *e, me_side_t side, const uint8_t *const *bytes,
                                   const size_t *lens, const char *const *texts, int n, float *out, char *err,
                                   size_t errcap) {
    int S = me_embedder_image_size(e);
    if (!S) {
        me_set_err(err, errcap, "this model reads text only (no image_size); use an image model");
        return ME_EINVAL;
    }
    size_t pix = (size_t)S * S * 3;
    float *px = malloc((n > 0 ? (size_t)n : 1) * pix * sizeof *px);
    const float **imgs = malloc((n > 0 ? (size_t)n : 1) * sizeof *imgs);
    int rc = px && imgs ? 0 : ME_ENOMEM;
    if (rc) me_set_err(err, errcap, "out of memory for %d images", n);
    for (int i = 0; i < n && !rc; i++) {
        imgs[i] = NULL;
        if (!lens[i]) continue;
        me_image_t im;
        char why[256];
        if ((rc = me_image_decode(bytes[i], lens[i], &im, why, sizeof why)) != 0) {
            me_set_err(err, errcap, "image %d: %s", i, why);
            break;
        }
        rc = me_image_to_tensor(&im, S, px + (size_t)i * pix);
        me_image_free(&im);
        imgs[i] = px + (size_t)i * pix;
    }
    if (!rc) rc = me_embedder_encode_items(e, side, imgs, texts, n, out);
    free(px);
    free(imgs);
    return rc;
}
