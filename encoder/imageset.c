#include "encoder/imageset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/error.h"
#include "common/hash.h"
#include "common/image.h"
#include "common/jsonl.h"

/* The JSONL file of a set given as a folder or a file. */
static void set_file(const char *path, char *file, size_t cap, char *dir, size_t dcap) {
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(file, cap, "%s/%s", path, ME_IMAGESET_FILE);
        snprintf(dir, dcap, "%s", path);
    } else {
        snprintf(file, cap, "%s", path);
        snprintf(dir, dcap, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0;
        else snprintf(dir, dcap, ".");
    }
}

int me_imageset_is(const char *path) {
    char file[2048], dir[2048];
    set_file(path, file, sizeof file, dir, sizeof dir);
    me_jsonl_t *r;
    char err[256];
    if (me_jsonl_open(file, &r, err, sizeof err) != 0) return 0;
    const me_json_t *o;
    long line;
    /* A split is what makes lines a set to train and evaluate on; lines
     * without one (an ingest file of images) are not. */
    int yes = me_jsonl_next(r, &o, &line, err, sizeof err) == 1 && me_json_get(o, "split") != NULL &&
              (me_json_get(o, "images") != NULL || me_json_get(o, "image") != NULL);
    me_jsonl_close(r);
    return yes;
}

static int style_index(me_imageset_t *s, const char *name) {
    for (int i = 0; i < s->nstyles; i++)
        if (!strcmp(s->styles[i], name)) return i;
    if (s->nstyles == ME_IMAGESET_MAX_STYLES) return -1;
    snprintf(s->styles[s->nstyles], sizeof s->styles[0], "%s", name);
    return s->nstyles++;
}

/* "label: tag, tag, ..." (the data README's image-to-text document). */
static char *concept_text(const char *label, const me_json_t *tags) {
    size_t cap = strlen(label) + 3;
    for (size_t i = 0; i < me_json_len(tags); i++)
        if (me_json_str(me_json_at(tags, i))) cap += strlen(me_json_str(me_json_at(tags, i))) + 2;
    char *t = malloc(cap + 1);
    if (!t) return NULL;
    size_t n = (size_t)snprintf(t, cap + 1, "%s", label);
    for (size_t i = 0, k = 0; i < me_json_len(tags); i++) {
        const char *tag = me_json_str(me_json_at(tags, i));
        if (tag) n += (size_t)snprintf(t + n, cap + 1 - n, "%s%s", k++ ? ", " : ": ", tag);
    }
    return t;
}

static int add_image(me_imageset_t *s, size_t *cap, int concept, int style, const char *rel) {
    if (s->nimages == *cap) {
        size_t nc = *cap ? 2 * *cap : 1024;
        int *a = realloc(s->img_concept, nc * sizeof *a), *b = a ? realloc(s->img_style, nc * sizeof *b) : NULL;
        if (a) s->img_concept = a;
        if (b) s->img_style = b;
        char **p = b ? realloc(s->img_path, nc * sizeof *p) : NULL;
        if (!p) return ME_ENOMEM;
        s->img_path = p;
        *cap = nc;
    }
    s->img_path[s->nimages] = strdup(rel);
    if (!s->img_path[s->nimages]) return ME_ENOMEM;
    s->img_concept[s->nimages] = concept;
    s->img_style[s->nimages] = style;
    s->c[concept].img[style] = (int)s->nimages++;
    return 0;
}

int me_imageset_load(const char *path, int side, me_imageset_t **out, char *err, size_t errcap) {
    *out = NULL;
    char file[2048], dir[2048];
    set_file(path, file, sizeof file, dir, sizeof dir);
    me_jsonl_t *r;
    int rc = me_jsonl_open(file, &r, err, errcap);
    if (rc) return rc;
    me_imageset_t *s = calloc(1, sizeof *s);
    if (!s) { me_jsonl_close(r); return ME_ENOMEM; }
    s->side = side;
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    size_t cap = 0, icap = 0;
    const me_json_t *o;
    long line = 0;
    while ((rc = me_jsonl_next(r, &o, &line, err, errcap)) == 1) {
        const char *id = me_json_str(me_json_get(o, "id")), *sp = me_json_str(me_json_get(o, "split"));
        const char *label = me_json_str(me_json_get(o, "label")), *text = me_json_str(me_json_get(o, "text"));
        const me_json_t *images = me_json_get(o, "images"), *image = me_json_get(o, "image");
        if (!label) label = text;
        if (!id || !sp || !label || (!images && !me_json_str(image))) {
            me_set_err(err, errcap, "%s:%ld: a line needs id, split, label (or text) and images (or image)", file, line);
            rc = ME_EINVAL;
            break;
        }
        me_split_t split = !strcmp(sp, "train") ? ME_SPLIT_TRAIN : !strcmp(sp, "dev") ? ME_SPLIT_DEV
                         : !strcmp(sp, "test") ? ME_SPLIT_TEST : ME_SPLIT_COUNT;
        if (split == ME_SPLIT_COUNT) {
            me_set_err(err, errcap, "%s:%ld: split '%s' is not train, dev or test", file, line, sp);
            rc = ME_EINVAL;
            break;
        }
        if (s->n == cap) {
            size_t nc = cap ? 2 * cap : 1024;
            me_concept_t *c = realloc(s->c, nc * sizeof *c);
            if (!c) { rc = ME_ENOMEM; break; }
            s->c = c;
            cap = nc;
        }
        me_concept_t *c = &s->c[s->n];
        memset(c, 0, sizeof *c);
        for (int k = 0; k < ME_IMAGESET_MAX_STYLES; k++) c->img[k] = -1;
        c->split = split;
        c->id = strdup(id);
        c->label = strdup(label);
        c->text = text && !me_json_get(o, "tags") ? strdup(text) : concept_text(label, me_json_get(o, "tags"));
        const char *sg = me_json_str(me_json_get(o, "subgroup"));
        c->subgroup = strdup(sg ? sg : "");
        s->n++;
        if (!c->id || !c->label || !c->text || !c->subgroup) { rc = ME_ENOMEM; break; }
        s->n_split[split]++;
        if (images) {
            /* Object members in file order: their keys are the styles. */
            size_t nm = images->type == ME_JSON_OBJECT ? images->len : 0;
            if (!nm) {
                me_set_err(err, errcap, "%s:%ld: images must be an object of style names to paths", file, line);
                rc = ME_EINVAL;
            }
            for (size_t k = 0; k < nm && rc == 1; k++) {
                const me_json_member_t *mb = &images->u.members[k];
                const char *key = mb->key, *rel = me_json_str(&mb->value);
                int st = key && rel ? style_index(s, key) : -1;
                if (st < 0) {
                    me_set_err(err, errcap, "%s:%ld: images must map up to %d style names to paths", file, line,
                               ME_IMAGESET_MAX_STYLES);
                    rc = ME_EINVAL;
                } else if (add_image(s, &icap, (int)s->n - 1, st, rel) != 0) rc = ME_ENOMEM;
            }
        } else if (add_image(s, &icap, (int)s->n - 1, style_index(s, "image"), me_json_str(image)) != 0) {
            rc = ME_ENOMEM;
        }
        if (rc != 1) break;
    }
    me_jsonl_close(r);
    if (rc < 0 || (rc == 1)) {
        if (rc == ME_ENOMEM) me_set_err(err, errcap, "out of memory reading %s", file);
        me_imageset_free(s);
        return rc == 1 ? ME_EINVAL : rc;
    }
    if (side > 0) {
        size_t per = (size_t)side * side * 3;
        s->pixels = malloc((s->nimages ? s->nimages : 1) * per * sizeof *s->pixels);
        if (!s->pixels) { me_imageset_free(s); me_set_err(err, errcap, "out of memory for the images"); return ME_ENOMEM; }
        for (size_t i = 0; i < s->nimages; i++) {
            char full[4096], why[512];
            snprintf(full, sizeof full, "%s/%s", dir, s->img_path[i]);
            me_image_t im;
            if ((rc = me_image_load(full, &im, why, sizeof why)) != 0 ||
                (rc = me_image_to_tensor(&im, side, s->pixels + i * per)) != 0) {
                me_set_err(err, errcap, "%s (concept %s): %s", file, s->c[s->img_concept[i]].id, why);
                me_image_free(&im);
                me_imageset_free(s);
                return rc;
            }
            me_image_free(&im);
        }
    }
    *out = s;
    return 0;
}

void me_imageset_free(me_imageset_t *s) {
    if (!s) return;
    for (size_t i = 0; i < s->n; i++) {
        free(s->c[i].id);
        free(s->c[i].label);
        free(s->c[i].text);
        free(s->c[i].subgroup);
    }
    for (size_t i = 0; i < s->nimages; i++) free(s->img_path[i]);
    free(s->c);
    free(s->img_path);
    free(s->img_concept);
    free(s->img_style);
    free(s->pixels);
    free(s);
}

/* Another train concept of c's subgroup, picked by a seeded hash (-1 when
 * c is alone in it). */
static int same_subgroup(const me_imageset_t *s, const int *train, int ntrain, int c, uint64_t seed) {
    int n = 0;
    for (int k = 0; k < ntrain; k++)
        n += train[k] != c && !strcmp(s->c[train[k]].subgroup, s->c[c].subgroup) && s->c[c].subgroup[0];
    if (!n) return -1;
    int pick = (int)(me_splitmix64_mix(seed ^ (uint64_t)c * 0x9e3779b97f4a7c15ULL) % (uint64_t)n);
    for (int k = 0; k < ntrain; k++)
        if (train[k] != c && !strcmp(s->c[train[k]].subgroup, s->c[c].subgroup) && pick-- == 0) return train[k];
    return -1;
}

/* Two of a text's tags ("label: tag, tag, ..."), picked by h, joined by
 * a space; "" when it has none. */
static void tag_query(const char *text, uint64_t h, char *out, size_t cap) {
    out[0] = 0;
    const char *p = strstr(text, ": ");
    if (!p) return;
    p += 2;
    const char *tags[64];
    size_t lens[64];
    int n = 0;
    while (*p && n < 64) {
        const char *e = strstr(p, ", ");
        size_t len = e ? (size_t)(e - p) : strlen(p);
        tags[n] = p;
        lens[n++] = len;
        p += len + (e ? 2 : 0);
    }
    if (!n) return;
    int a = (int)(h % (uint64_t)n), b = (int)((h >> 20) % (uint64_t)n);
    if (n == 1 || a == b) snprintf(out, cap, "%.*s", (int)lens[a], tags[a]);
    else snprintf(out, cap, "%.*s %.*s", (int)lens[a], tags[a], (int)lens[b], tags[b]);
}

int me_imageset_train_data(const me_imageset_t *s, const me_tok_t *tok, int q_len, int d_len, uint64_t seed,
                           me_train_data_t *d, void **bufs) {
    for (int i = 0; i < ME_IMAGESET_TRAIN_BUFS; i++) bufs[i] = NULL;
    int *train = malloc((s->n ? s->n : 1) * sizeof *train), ntrain = 0;
    if (!train) return ME_ENOMEM;
    for (size_t i = 0; i < s->n; i++)
        if (s->c[i].split == ME_SPLIT_TRAIN) train[ntrain++] = (int)i;
    /* Per train image k: 4k its label → the image; 4k+1 some of its tags →
     * the image (the train split's own words, so each word is grounded in
     * many images, which is what carries to unseen concepts); 4k+2 the
     * image → its text; 4k+3 the image → the concept's image in the next
     * style (so image queries find a concept across styles, and features
     * learn to ignore the artwork's style). */
    size_t nimg = 0;
    int *img_of = malloc((s->nimages ? s->nimages : 1) * sizeof *img_of);
    if (!img_of) { free(train); return ME_ENOMEM; }
    for (size_t i = 0; i < s->nimages; i++)
        if (s->c[s->img_concept[i]].split == ME_SPLIT_TRAIN) img_of[nimg++] = (int)i;
    size_t n = 4 * nimg;
    int32_t *q = calloc(n * (size_t)q_len, sizeof *q), *dd = calloc(n * (size_t)d_len, sizeof *dd);
    int *ql = calloc(n, sizeof *ql), *dl = calloc(n, sizeof *dl), *hard = malloc(n * sizeof *hard);
    int *qi = malloc(n * sizeof *qi), *di = malloc(n * sizeof *di);
    uint8_t *kind = malloc(n ? n : 1);
    void *all[ME_IMAGESET_TRAIN_BUFS] = { q, dd, ql, dl, hard, qi, di, kind };
    int ok = q && dd && ql && dl && hard && qi && di && kind;
    /* The example of each (concept, style) image, to find hard negatives. */
    int *ex_of_img = ok ? malloc((s->nimages ? s->nimages : 1) * sizeof *ex_of_img) : NULL;
    if (!ex_of_img) {
        for (int i = 0; i < ME_IMAGESET_TRAIN_BUFS; i++) free(all[i]);
        free(train);
        free(img_of);
        return ME_ENOMEM;
    }
    for (size_t i = 0; i < s->nimages; i++) ex_of_img[i] = -1;
    for (size_t k = 0; k < nimg; k++) ex_of_img[img_of[k]] = (int)(4 * k);
    for (size_t k = 0; k < nimg; k++) {
        int im = img_of[k], c = s->img_concept[im], st = s->img_style[im];
        const me_concept_t *cc = &s->c[c];
        size_t t2i = 4 * k, tags = 4 * k + 1, i2t = 4 * k + 2, i2i = 4 * k + 3;
        kind[t2i] = kind[tags] = 0;
        kind[i2t] = 1;
        kind[i2i] = 2;
        int other_style = -1;
        for (int k2 = 1; k2 < s->nstyles && other_style < 0; k2++) other_style = cc->img[(st + k2) % s->nstyles];
        qi[i2i] = im;
        di[i2i] = other_style >= 0 ? other_style : im;
        char tq[256];
        tag_query(cc->text, me_splitmix64_mix(seed ^ (uint64_t)im * 0x9e3779b97f4a7c15ULL), tq, sizeof tq);
        ql[tags] = me_tok_encode(tok, tq[0] ? tq : cc->label, strlen(tq[0] ? tq : cc->label), q + tags * q_len, q_len);
        qi[tags] = -1;
        di[tags] = im;
        ql[t2i] = me_tok_encode(tok, cc->label, strlen(cc->label), q + t2i * q_len, q_len);
        qi[t2i] = -1;
        di[t2i] = im;
        qi[i2t] = im;
        dl[i2t] = me_tok_encode(tok, cc->text, strlen(cc->text), dd + i2t * d_len, d_len);
        di[i2t] = -1;
        int other = same_subgroup(s, train, ntrain, c, seed + (uint64_t)st);
        int oim = other >= 0 ? s->c[other].img[st] : -1;
        hard[t2i] = hard[tags] = oim >= 0 ? ex_of_img[oim] : -1;
        hard[i2t] = oim >= 0 ? ex_of_img[oim] + 2 : -1;
        hard[i2i] = oim >= 0 ? ex_of_img[oim] + 3 : -1;
    }
    free(ex_of_img);
    free(train);
    free(img_of);
    *d = (me_train_data_t){ (int)n, q_len, d_len, q, ql, dd, dl, hard, s->pixels, qi, di, kind };
    for (int i = 0; i < ME_IMAGESET_TRAIN_BUFS; i++) bufs[i] = all[i];
    return 0;
}
