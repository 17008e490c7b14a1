#include "encoder/eval_images.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/bm25.h"
#include "common/dtype.h"
#include "common/error.h"
#include "common/image.h"
#include "encoder/ops.h"

/* LAPACK (in OpenBLAS): solves A X = B for symmetric positive definite A. */
extern void sposv_(const char *uplo, const int *n, const int *nrhs, float *a, const int *lda, float *b,
                   const int *ldb, int *info);

enum { T2I = 0, I2T = 1 };

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The two directions' queries and corpora, as indices into the set. */
typedef struct {
    size_t nq[2], nd[2];
    size_t *q_item[2], *q_group[2];    /* T2I: concept; I2T: image */
    size_t *d_item[2], *d_group[2];    /* T2I: image; I2T: concept */
} protocol_t;

static void protocol_free(protocol_t *p) {
    for (int k = 0; k < 2; k++) {
        free(p->q_item[k]);
        free(p->q_group[k]);
        free(p->d_item[k]);
        free(p->d_group[k]);
    }
}

static int protocol_make(const me_imageset_t *s, me_split_t split, protocol_t *p) {
    memset(p, 0, sizeof *p);
    size_t nc = s->n ? s->n : 1, ni = s->nimages ? s->nimages : 1;
    for (int k = 0; k < 2; k++) {
        p->q_item[k] = malloc((k == T2I ? nc : ni) * sizeof(size_t));
        p->q_group[k] = malloc((k == T2I ? nc : ni) * sizeof(size_t));
        p->d_item[k] = malloc((k == T2I ? ni : nc) * sizeof(size_t));
        p->d_group[k] = malloc((k == T2I ? ni : nc) * sizeof(size_t));
        if (!p->q_item[k] || !p->q_group[k] || !p->d_item[k] || !p->d_group[k]) return ME_ENOMEM;
    }
    for (size_t c = 0; c < s->n; c++) {
        if (s->c[c].split == split) { p->q_item[T2I][p->nq[T2I]] = c; p->q_group[T2I][p->nq[T2I]++] = c; }
        p->d_item[I2T][p->nd[I2T]] = c;
        p->d_group[I2T][p->nd[I2T]++] = c;
    }
    for (size_t i = 0; i < s->nimages; i++) {
        size_t c = (size_t)s->img_concept[i];
        p->d_item[T2I][p->nd[T2I]] = i;
        p->d_group[T2I][p->nd[T2I]++] = c;
        if (s->c[c].split == split) { p->q_item[I2T][p->nq[I2T]] = i; p->q_group[I2T][p->nq[I2T]++] = c; }
    }
    return 0;
}

/* Encodes items: images by index into the set's pixels (or none), texts. */
static int encode(me_embedder_t *e, const me_imageset_t *s, me_side_t side, const size_t *items, size_t n,
                  int is_image, float *out) {
    size_t per = (size_t)me_embedder_rows(e, side) * me_embedder_config(e)->dim;
    size_t pix = (size_t)s->side * s->side * 3;
    const float *imgs[ME_EMBED_BATCH];
    const char *texts[ME_EMBED_BATCH];
    for (size_t off = 0; off < n; off += ME_EMBED_BATCH) {
        int b = (int)(n - off < ME_EMBED_BATCH ? n - off : ME_EMBED_BATCH);
        for (int i = 0; i < b; i++) {
            size_t it = items[off + i];
            imgs[i] = is_image ? s->pixels + it * pix : NULL;
            texts[i] = is_image ? NULL : side == ME_SIDE_QUERY ? s->c[it].label : s->c[it].text;
        }
        int rc = me_embedder_encode_items(e, side, imgs, texts, b, out + off * per);
        if (rc) return rc;
    }
    return 0;
}

/* The expected Recall@1, MRR@10 and Recall@10 of a random ranking of N
 * documents with k relevant, averaged over the queries' k. */
static me_eval_row_t chance(const size_t *q_group, size_t nq, const size_t *d_group, size_t nd) {
    me_eval_row_t r = { 0 };
    for (size_t q = 0; q < nq; q++) {
        double k = 0;
        for (size_t d = 0; d < nd; d++) k += d_group[d] == q_group[q];
        double none = 1;  /* P(no relevant in the first r - 1) */
        for (int rank = 1; rank <= 10 && rank <= (int)nd; rank++) {
            double first = none * k / ((double)nd - rank + 1);
            r.mrr10 += first / rank;
            if (rank == 1) r.recall1 += first;
            none *= ((double)nd - k - rank + 1) / ((double)nd - rank + 1);
        }
        r.recall10 += 1 - none;
    }
    if (nq) { r.recall1 /= nq; r.mrr10 /= nq; r.recall10 /= nq; }
    return r;
}

/* ---- the linear baseline ---- */

#define THUMB 16
#define FEAT (THUMB * THUMB * 3 + 64)

/* A 16 x 16 thumbnail (0..1) and a 4 x 4 x 4 colour histogram (sums to 1). */
static int image_features(const char *path, float *f, char *err, size_t cap) {
    me_image_t im, th;
    int rc = me_image_load(path, &im, err, cap);
    if (rc) return rc;
    if ((rc = me_image_resize(&im, THUMB, &th)) != 0) { me_image_free(&im); return rc; }
    for (int i = 0; i < THUMB * THUMB * 3; i++) f[i] = th.rgb[i] / 255.0f;
    float *h = f + THUMB * THUMB * 3;
    memset(h, 0, 64 * sizeof *h);
    size_t npx = (size_t)im.w * im.h;
    for (size_t p = 0; p < npx; p++) {
        const uint8_t *c = im.rgb + p * 3;
        h[(c[0] >> 6) * 16 + (c[1] >> 6) * 4 + (c[2] >> 6)] += 1.0f / (float)npx;
    }
    me_image_free(&th);
    me_image_free(&im);
    return 0;
}

/* Lower-cased alphanumeric words; a sorted vocabulary of the train split's. */
typedef struct {
    char **w;
    size_t n, cap;
} vocab_t;

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The baseline's words are the BM25 tokens (common/bm25.c: one rule). */
static size_t next_word(const char *t, size_t *pos, char w[ME_BM25_TOKEN_MAX]) {
    return me_bm25_token(t, strlen(t), pos, w);
}

static int vocab_add_text(vocab_t *v, const char *t) {
    char w[ME_BM25_TOKEN_MAX];
    size_t pos = 0;
    while (next_word(t, &pos, w)) {
        if (v->n == v->cap) {
            size_t nc = v->cap ? 2 * v->cap : 4096;
            char **p = realloc(v->w, nc * sizeof *p);
            if (!p) return ME_ENOMEM;
            v->w = p;
            v->cap = nc;
        }
        if (!(v->w[v->n++] = strdup(w))) return ME_ENOMEM;
    }
    return 0;
}

static void vocab_finish(vocab_t *v) {
    qsort(v->w, v->n, sizeof *v->w, cmp_str);
    size_t k = 0;
    for (size_t i = 0; i < v->n; i++) {
        if (k && !strcmp(v->w[k - 1], v->w[i])) { free(v->w[i]); continue; }
        v->w[k++] = v->w[i];
    }
    v->n = k;
}

static void vocab_free(vocab_t *v) {
    for (size_t i = 0; i < v->n; i++) free(v->w[i]);
    free(v->w);
}

/* A text's words present (1) in the vocabulary, L2-normalised. */
static void bag_of_words(const vocab_t *v, const char *t, float *x) {
    memset(x, 0, v->n * sizeof *x);
    char w[ME_BM25_TOKEN_MAX], *key = w;
    size_t pos = 0;
    int n = 0;
    while (next_word(t, &pos, w)) {
        char **hit = bsearch(&key, v->w, v->n, sizeof *v->w, cmp_str);
        if (hit && x[hit - v->w] == 0) { x[hit - v->w] = 1; n++; }
    }
    for (size_t i = 0; n && i < v->n; i++) x[i] /= sqrtf((float)n);
}

static void center(float *x, size_t n, size_t d, const float *mean) {
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < d; k++) x[i * d + k] -= mean[k];
}

static void column_mean(const float *x, size_t n, size_t d, float *mean) {
    memset(mean, 0, d * sizeof *mean);
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < d; k++) mean[k] += x[i * d + k] / (float)n;
}

/* W (dx, dy) = (X'X + lambda I)^-1 X'Y over n centred rows. */
static int ridge_fit(const float *X, const float *Y, int n, int dx, int dy, float lambda, float *W) {
    float *A = malloc((size_t)dx * dx * sizeof *A);
    if (!A) return ME_ENOMEM;
    cblas_sgemm(CblasColMajor, CblasNoTrans, CblasTrans, dx, dx, n, 1.0f, X, dx, X, dx, 0.0f, A, dx);
    for (int i = 0; i < dx; i++) A[(size_t)i * dx + i] += lambda;
    /* B = X'Y, column-major (dx, dy): rows of X and Y are row-major. */
    cblas_sgemm(CblasColMajor, CblasNoTrans, CblasTrans, dx, dy, n, 1.0f, X, dx, Y, dy, 0.0f, W, dx);
    int info = 0;
    sposv_("U", &dx, &dy, A, &dx, W, &dx, &info);
    free(A);
    return info == 0 ? 0 : ME_EINTERNAL;
}

/* Rows of x (n, dx) through W (column-major dx, dy) into y (n, dy). */
static void ridge_apply(const float *x, int n, int dx, int dy, const float *W, float *y) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, dy, dx, 1.0f, x, dx, W, dx, 0.0f, y, dy);
}

static void normalise_rows(float *x, size_t n, size_t d) {
    for (size_t i = 0; i < n; i++) {
        double s = 0;
        for (size_t k = 0; k < d; k++) s += (double)x[i * d + k] * x[i * d + k];
        float inv = s > 0 ? (float)(1.0 / sqrt(s)) : 0.0f;
        for (size_t k = 0; k < d; k++) x[i * d + k] *= inv;
    }
}

/* Cosine scores of single vectors through the same exact scorer: R = 1. */
static int score_single(const float *q, size_t nq, const size_t *q_group, const float *d, size_t nd,
                        const size_t *d_group, int dim, const me_eval_opts_t *o, me_eval_row_t *row) {
    uint16_t *d16 = malloc((nd ? nd : 1) * (size_t)dim * sizeof *d16);
    if (!d16) return ME_ENOMEM;
    me_f32_to_f16_n(d16, d, nd * (size_t)dim);
    me_eval_opts_t one = *o;
    one.nbudgets = 1;
    one.budgets[0] = (me_mmr_group_t){ 1, 1, 1.0f };
    one.progress = NULL;
    me_eval_result_t r;
    int rc = me_eval_score(d16, d_group, nd, q, q_group, nq, 1, 1, dim, &one, &r);
    free(d16);
    if (!rc) *row = r.rows[0];
    return rc;
}

typedef struct {
    float *bow_label, *bow_text, *feat;   /* per concept, concept, image */
    vocab_t vl, vt;                        /* train labels' words; train texts' words */
} baseline_t;

static void baseline_free(baseline_t *b) {
    free(b->bow_label);
    free(b->bow_text);
    free(b->feat);
    vocab_free(&b->vl);
    vocab_free(&b->vt);
}

static int baseline_make(const me_imageset_t *s, baseline_t *b, char *err, size_t errcap) {
    memset(b, 0, sizeof *b);
    int rc = 0;
    for (size_t c = 0; c < s->n && !rc; c++)
        if (s->c[c].split == ME_SPLIT_TRAIN)
            rc = vocab_add_text(&b->vl, s->c[c].label) ? ME_ENOMEM : vocab_add_text(&b->vt, s->c[c].text);
    if (rc) return rc;
    vocab_finish(&b->vl);
    vocab_finish(&b->vt);
    b->bow_label = malloc((s->n ? s->n : 1) * b->vl.n * sizeof(float));
    b->bow_text = malloc((s->n ? s->n : 1) * b->vt.n * sizeof(float));
    b->feat = malloc((s->nimages ? s->nimages : 1) * FEAT * sizeof(float));
    if (!b->bow_label || !b->bow_text || !b->feat) return ME_ENOMEM;
    for (size_t c = 0; c < s->n; c++) {
        bag_of_words(&b->vl, s->c[c].label, b->bow_label + c * b->vl.n);
        bag_of_words(&b->vt, s->c[c].text, b->bow_text + c * b->vt.n);
    }
    for (size_t i = 0; i < s->nimages; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%.2047s/%.1999s", s->dir, s->img_path[i]);
        if ((rc = image_features(path, b->feat + i * FEAT, err, errcap)) != 0) return rc;
    }
    return 0;
}

/* Fits the ridge for one direction at lambda on the train images and
 * scores the protocol's queries of p. T2I: label words → image features;
 * I2T: image features → text words. */
static int baseline_score(const me_imageset_t *s, const baseline_t *b, int dir, float lambda, const protocol_t *p,
                          const me_eval_opts_t *o, me_eval_row_t *row) {
    int dx = dir == T2I ? (int)b->vl.n : FEAT, dy = dir == T2I ? FEAT : (int)b->vt.n;
    size_t ntr = 0;
    for (size_t i = 0; i < s->nimages; i++) ntr += s->c[s->img_concept[i]].split == ME_SPLIT_TRAIN;
    float *X = malloc(ntr * dx * sizeof *X), *Y = malloc(ntr * dy * sizeof *Y);
    float *mx = malloc(dx * sizeof *mx), *my = malloc(dy * sizeof *my), *W = malloc((size_t)dx * dy * sizeof *W);
    size_t nq = p->nq[dir], nd = p->nd[dir];
    float *qx = malloc((nq ? nq : 1) * dx * sizeof *qx), *qy = malloc((nq ? nq : 1) * dy * sizeof *qy);
    float *dv = malloc((nd ? nd : 1) * dy * sizeof *dv);
    int rc = ME_ENOMEM;
    if (!X || !Y || !mx || !my || !W || !qx || !qy || !dv) goto out;
    size_t k = 0;
    for (size_t i = 0; i < s->nimages; i++) {
        size_t c = (size_t)s->img_concept[i];
        if (s->c[c].split != ME_SPLIT_TRAIN) continue;
        const float *lab = b->bow_label + c * b->vl.n, *txt = b->bow_text + c * b->vt.n, *f = b->feat + i * FEAT;
        memcpy(X + k * dx, dir == T2I ? lab : f, dx * sizeof *X);
        memcpy(Y + k * dy, dir == T2I ? f : txt, dy * sizeof *Y);
        k++;
    }
    column_mean(X, ntr, dx, mx);
    column_mean(Y, ntr, dy, my);
    center(X, ntr, dx, mx);
    center(Y, ntr, dy, my);
    if ((rc = ridge_fit(X, Y, (int)ntr, dx, dy, lambda, W)) != 0) goto out;
    for (size_t q = 0; q < nq; q++) {
        size_t it = p->q_item[dir][q];
        memcpy(qx + q * dx, dir == T2I ? b->bow_label + it * b->vl.n : b->feat + it * FEAT, dx * sizeof *qx);
    }
    center(qx, nq, dx, mx);
    ridge_apply(qx, (int)nq, dx, dy, W, qy);
    for (size_t d = 0; d < nd; d++) {
        size_t it = p->d_item[dir][d];
        memcpy(dv + d * dy, dir == T2I ? b->feat + it * FEAT : b->bow_text + it * b->vt.n, dy * sizeof *dv);
    }
    center(dv, nd, dy, my);
    normalise_rows(qy, nq, dy);
    normalise_rows(dv, nd, dy);
    rc = score_single(qy, nq, p->q_group[dir], dv, nd, p->d_group[dir], dy, o, row);
out:
    free(X); free(Y); free(mx); free(my); free(W); free(qx); free(qy); free(dv);
    return rc;
}

/* The ridge strength with the best dev MRR@10 for a direction. */
static int baseline_tune(const me_imageset_t *s, const baseline_t *b, int dir, const me_eval_opts_t *o, float *best) {
    protocol_t dev;
    int rc = protocol_make(s, ME_SPLIT_DEV, &dev);
    static const float lambdas[] = { 0.1f, 1.0f, 10.0f, 100.0f };
    double top = -1;
    *best = 1.0f;
    for (size_t i = 0; !rc && i < sizeof lambdas / sizeof lambdas[0]; i++) {
        me_eval_row_t r;
        if ((rc = baseline_score(s, b, dir, lambdas[i], &dev, o, &r)) == 0 && r.mrr10 > top) {
            top = r.mrr10;
            *best = lambdas[i];
        }
    }
    protocol_free(&dev);
    return rc;
}

/* ---- the run ---- */

int me_eval_images_run(me_embedder_t *e, const me_imageset_t *s, const me_eval_opts_t *o, me_eval_images_t *out,
                       char *err, size_t errcap) {
    memset(out, 0, sizeof *out);
    double t_start = now_s();
    const me_model_config_t *c = me_embedder_config(e);
    if (me_embedder_image_size(e) != s->side) {
        snprintf(err, errcap, "the model reads %dx%d images but the set was loaded at %d", c->image_size,
                 c->image_size, s->side);
        return ME_EINVAL;
    }
    int Rq = c->meta_q, Rc = c->meta_c, D = c->dim;
    protocol_t p;
    baseline_t b;
    memset(&b, 0, sizeof b);
    float *queries = NULL, *docs = NULL;
    uint16_t *d16 = NULL, *sub16 = NULL;
    size_t *sub_group = NULL;
    int rc = protocol_make(s, o->split, &p);
    if (rc) goto out;
    me_ops_set_threads(o->threads);
    for (int dir = 0; dir < 2 && !rc; dir++) {
        size_t nq = p.nq[dir], nd = p.nd[dir];
        out->queries[dir] = nq;
        out->docs[dir] = nd;
        queries = malloc((nq ? nq : 1) * (size_t)Rq * D * sizeof *queries);
        docs = malloc((nd ? nd : 1) * (size_t)Rc * D * sizeof *docs);
        d16 = malloc((nd ? nd : 1) * (size_t)Rc * D * sizeof *d16);
        sub16 = dir == T2I ? malloc((nd ? nd : 1) * (size_t)Rc * D * sizeof *sub16) : NULL;
        sub_group = malloc((nd ? nd : 1) * sizeof *sub_group);
        if (!queries || !docs || !d16 || !sub_group || (dir == T2I && !sub16)) { rc = ME_ENOMEM; break; }
        double t0 = now_s();
        if ((rc = encode(e, s, ME_SIDE_DOC, p.d_item[dir], nd, dir == T2I, docs)) != 0) break;
        if (dir == T2I) out->images_per_s = (double)nd / (now_s() - t0);
        if ((rc = encode(e, s, ME_SIDE_QUERY, p.q_item[dir], nq, dir == I2T, queries)) != 0) break;
        me_f32_to_f16_n(d16, docs, nd * (size_t)Rc * D);
        if ((rc = me_eval_score(d16, p.d_group[dir], nd, queries, p.q_group[dir], nq, Rq, Rc, D, o, &out->dir[dir])))
            break;
        out->dir[dir].queries = nq;
        out->dir[dir].docs = nd;
        out->chance[dir] = chance(p.q_group[dir], nq, p.d_group[dir], nd);
        /* Per style at the largest budget the model has (the last row
         * scored: budgets beyond its R_q or R_c are skipped): T2I against
         * one style's images; I2T from one style's queries. */
        if (!out->dir[dir].nrows) { rc = ME_EINVAL; break; }
        const me_eval_row_t *last = &out->dir[dir].rows[out->dir[dir].nrows - 1];
        me_eval_opts_t top = *o;
        top.nbudgets = 1;
        top.budgets[0].rq = last->r_q;
        top.budgets[0].rc = last->r_c;
        top.progress = NULL;
        for (int st = 0; st < s->nstyles && !rc; st++) {
            me_eval_result_t r;
            if (dir == T2I) {
                /* This style's images alone as the corpus. */
                size_t k = 0, per = (size_t)Rc * D;
                for (size_t d = 0; d < nd; d++)
                    if (s->img_style[p.d_item[T2I][d]] == st) {
                        memcpy(sub16 + k * per, d16 + d * per, per * sizeof *d16);
                        sub_group[k++] = p.d_group[T2I][d];
                    }
                rc = me_eval_score(sub16, sub_group, k, queries, p.q_group[T2I], nq, Rq, Rc, D, &top, &r);
            } else {
                size_t k = 0;
                float *qs = malloc((nq ? nq : 1) * (size_t)Rq * D * sizeof *qs);
                size_t *qg = malloc((nq ? nq : 1) * sizeof *qg);
                if (!qs || !qg) { free(qs); free(qg); rc = ME_ENOMEM; break; }
                for (size_t q = 0; q < nq; q++)
                    if (s->img_style[p.q_item[I2T][q]] == st) {
                        memcpy(qs + k * (size_t)Rq * D, queries + q * (size_t)Rq * D, (size_t)Rq * D * sizeof *qs);
                        qg[k++] = p.q_group[I2T][q];
                    }
                rc = me_eval_score(d16, p.d_group[I2T], nd, qs, qg, k, Rq, Rc, D, &top, &r);
                free(qs);
                free(qg);
            }
            if (!rc) out->style[dir][st] = r.rows[0];
        }
        free(queries); free(docs); free(d16); free(sub16); free(sub_group);
        queries = docs = NULL;
        d16 = sub16 = NULL;
        sub_group = NULL;
    }
    if (rc) { snprintf(err, errcap, "evaluating the model failed: %s", me_strerror(rc)); goto out; }
    /* The linear baseline, tuned on dev, scored on the split. */
    char sub[512] = "";
    if ((rc = baseline_make(s, &b, sub, sizeof sub)) != 0) {
        snprintf(err, errcap, "baseline features: %s", sub[0] ? sub : me_strerror(rc));
        goto out;
    }
    for (int dir = 0; dir < 2 && !rc; dir++) {
        float lambda;
        if ((rc = baseline_tune(s, &b, dir, o, &lambda)) == 0) rc = baseline_score(s, &b, dir, lambda, &p, o, &out->ridge[dir]);
        out->ridge_lambda[dir] = lambda;
    }
    if (rc) snprintf(err, errcap, "the linear baseline failed: %s", me_strerror(rc));
    out->seconds = now_s() - t_start;
out:
    free(queries); free(docs); free(d16); free(sub16); free(sub_group);
    baseline_free(&b);
    protocol_free(&p);
    return rc;
}
