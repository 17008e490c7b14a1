#include "encoder/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "common/hash.h"
#include "encoder/ops.h"

struct me_trainer {
    me_model_t *m;
    const me_train_data_t *data;
    me_train_opts_t o;
    me_mmr_t *mmr;
    me_acts_t *qa, *da;
    int32_t *q_tok, *d_tok;    /* batch rows */
    int *q_len, *d_len;
    float *q_pix, *d_pix;      /* batch images, when the side has them */
    uint8_t *q_has, *d_has;
    float *Q, *C, *dQ, *dC;
    int *order;                /* the current epoch's permutation */
    long order_epoch;
    long step, step0;          /* done; done when this process started */
    double t0;
};

void me_train_defaults(me_train_opts_t *o) {
    memset(o, 0, sizeof *o);
    o->batch = 32;
    o->steps = 1000;
    o->lr = 1e-3f;
    o->lr_floor = 1e-4f;
    o->warmup = 100;
    o->weight_decay = 0.01f;
    o->clip = 1.0f;
    o->tau = ME_MMR_DEFAULT_TAU;
    o->ngroups = me_mmr_default_groups(o->groups);
    o->seed = 1234;
    o->threads = 0;
}

float me_train_lr(const me_train_opts_t *o, long step) {
    if (step < o->warmup) return o->lr * (float)(step + 1) / (float)o->warmup;
    double span = (double)(o->steps > o->warmup ? o->steps - o->warmup : 1);
    double frac = (double)(step - o->warmup) / span;
    if (frac > 1) frac = 1;
    return o->lr_floor + (o->lr - o->lr_floor) * (float)(0.5 * (1 + cos(3.141592653589793 * frac)));
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t mix(uint64_t x) {
    return me_splitmix64(&x);
}

/* Fisher–Yates with a generator seeded by (seed, epoch): the same epoch
 * always has the same order, which is what makes resuming exact. */
static void make_order(me_trainer_t *t, long epoch) {
    int n = t->data->n;
    for (int i = 0; i < n; i++) t->order[i] = i;
    uint64_t s = mix(t->o.seed ^ mix((uint64_t)epoch + 1));
    for (int i = n - 1; i > 0; i--) {
        s = mix(s);
        int j = (int)(s % (uint64_t)(i + 1));
        int tmp = t->order[i]; t->order[i] = t->order[j]; t->order[j] = tmp;
    }
    if (t->data->kind) {
        /* Stable split of the shuffle by kind, then batches in turn from
         * each kind (skipping one that cannot fill a batch any more). */
        enum { KMAX = 8 };
        int B = t->o.batch, *tmp = t->order + n, *scratch = tmp + n, len[KMAX] = { 0 }, at[KMAX] = { 0 }, K = 1;
        for (int i = 0; i < n; i++) {
            tmp[i] = t->order[i];
            int k = t->data->kind[tmp[i]] < KMAX ? t->data->kind[tmp[i]] : KMAX - 1;
            len[k]++;
            if (k + 1 > K) K = k + 1;
        }
        int *list[KMAX], off = 0;
        for (int k = 0; k < K; k++) { list[k] = scratch + off; off += len[k]; }
        for (int i = 0; i < n; i++) {
            int k = t->data->kind[tmp[i]] < KMAX ? t->data->kind[tmp[i]] : KMAX - 1;
            list[k][at[k]++] = tmp[i];
        }
        memset(at, 0, sizeof at);
        int out = 0;
        for (long b = 0; out < n; b++) {
            int k = (int)(b % K);
            for (int tries = 0; tries < K && at[k] + B > len[k]; tries++) k = (k + 1) % K;
            for (int i = 0; i < B && out < n; i++) {
                for (int tries = 0; tries < K && at[k] == len[k]; tries++) k = (k + 1) % K;
                t->order[out++] = list[k][at[k]++];
            }
        }
    }
    t->order_epoch = epoch;
}

me_trainer_t *me_trainer_new(me_model_t *m, const me_train_data_t *data, const me_train_opts_t *o,
                             char *err, size_t errcap) {
    const me_model_config_t *c = me_model_config(m);
    if (data->n < o->batch || o->batch < 1) {
        snprintf(err, errcap, "need at least batch=%d training examples, got %d", o->batch, data->n);
        return NULL;
    }
    if (data->q_len_max > c->max_text || data->d_len_max > c->max_text) {
        snprintf(err, errcap, "token rows longer than the model's max_text %d", c->max_text);
        return NULL;
    }
    me_trainer_t *t = calloc(1, sizeof *t);
    if (!t) { snprintf(err, errcap, "out of memory"); return NULL; }
    t->m = m;
    t->data = data;
    t->o = *o;
    int B = o->batch, D = c->dim, Rq = c->meta_q, Rc = c->meta_c;
    t->mmr = me_mmr_new(o->groups, o->ngroups, o->tau, Rq, Rc, D, ME_MMR_BLAS);
    if (t->mmr) me_mmr_set_score_mean(t->mmr, o->score_mean);
    int q_images = data->pixels && data->q_img, d_images = data->pixels && data->d_img;
    if ((q_images || d_images) && !me_model_patches(c)) {
        snprintf(err, errcap, "the data has images but the model reads text only (give it an image size)");
        free(t);
        return NULL;
    }
    size_t pix = (size_t)c->image_size * c->image_size * 3;
    t->qa = q_images ? me_acts_new_images(m, ME_SIDE_QUERY, B, data->q_len_max)
                     : me_acts_new(m, ME_SIDE_QUERY, B, data->q_len_max);
    t->da = d_images ? me_acts_new_images(m, ME_SIDE_DOC, 2 * B, data->d_len_max)
                     : me_acts_new(m, ME_SIDE_DOC, 2 * B, data->d_len_max);
    if (q_images) {
        t->q_pix = malloc((size_t)B * pix * sizeof *t->q_pix);
        t->q_has = malloc((size_t)B);
        if (!t->q_pix || !t->q_has) t->qa = (me_acts_free(t->qa), NULL);
    }
    if (d_images) {
        t->d_pix = malloc((size_t)2 * B * pix * sizeof *t->d_pix);
        t->d_has = malloc((size_t)2 * B);
        if (!t->d_pix || !t->d_has) t->da = (me_acts_free(t->da), NULL);
    }
    t->q_tok = malloc((size_t)B * data->q_len_max * sizeof *t->q_tok);
    t->d_tok = malloc((size_t)2 * B * data->d_len_max * sizeof *t->d_tok);
    t->q_len = malloc((size_t)B * sizeof *t->q_len);
    t->d_len = malloc((size_t)2 * B * sizeof *t->d_len);
    t->Q = malloc((size_t)B * Rq * D * sizeof *t->Q);
    t->dQ = malloc((size_t)B * Rq * D * sizeof *t->dQ);
    t->C = malloc((size_t)2 * B * Rc * D * sizeof *t->C);
    t->dC = malloc((size_t)2 * B * Rc * D * sizeof *t->dC);
    /* The order, and room to split it by kind. */
    t->order = malloc((size_t)data->n * (data->kind ? 3 : 1) * sizeof *t->order);
    if (!t->mmr || !t->qa || !t->da || !t->q_tok || !t->d_tok || !t->q_len || !t->d_len || !t->Q || !t->dQ ||
        !t->C || !t->dC || !t->order) {
        snprintf(err, errcap, "out of memory for batch %d (or a bad MMR group for R_q=%d, R_c=%d)", B, Rq, Rc);
        me_trainer_free(t);
        return NULL;
    }
    t->order_epoch = -1;
    me_ops_set_threads(o->threads);
    t->t0 = now_s();
    return t;
}

void me_trainer_free(me_trainer_t *t) {
    if (!t) return;
    me_mmr_free(t->mmr);
    me_acts_free(t->qa);
    me_acts_free(t->da);
    free(t->q_tok);
    free(t->d_tok);
    free(t->q_len);
    free(t->d_len);
    free(t->q_pix);
    free(t->d_pix);
    free(t->q_has);
    free(t->d_has);
    free(t->Q);
    free(t->dQ);
    free(t->C);
    free(t->dC);
    free(t->order);
    free(t);
}

long me_trainer_steps_done(const me_trainer_t *t) { return t->step; }
void me_trainer_resume_at(me_trainer_t *t, long step) { t->step = t->step0 = step; }

static void copy_row(int32_t *dst, int *dlen, const int32_t *src, const int *slen, int i, int width) {
    memcpy(dst, src + (size_t)i * width, (size_t)width * sizeof *dst);
    *dlen = slen[i];
}

/* Batch row `row` of a side's images: example e's image, if it has one,
 * shifted by up to image_shift pixels each way (white comes in at the
 * edges), seeded by (seed, step, row) so a resumed run sees the same. */
static void copy_image(const me_trainer_t *t, float *pix, uint8_t *has, const int *img, int row, int e) {
    if (!pix) return;
    const me_model_config_t *c = me_model_config(t->m);
    int S = c->image_size, sh = t->o.image_shift;
    size_t n = (size_t)S * S * 3;
    has[row] = img[e] >= 0;
    if (!has[row]) return;
    const float *src = t->data->pixels + (size_t)img[e] * n;
    float *dst = pix + (size_t)row * n;
    if (sh <= 0) { memcpy(dst, src, n * sizeof *dst); return; }
    uint64_t h = mix(t->o.seed ^ mix((uint64_t)t->step * 131 + (uint64_t)row + 17));
    int dx = (int)(h % (uint64_t)(2 * sh + 1)) - sh, dy = (int)((h >> 16) % (uint64_t)(2 * sh + 1)) - sh;
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            int sx = x - dx, sy = y - dy;
            for (int k = 0; k < 3; k++)
                dst[((size_t)y * S + x) * 3 + k] = sx >= 0 && sx < S && sy >= 0 && sy < S
                                                       ? src[((size_t)sy * S + sx) * 3 + k] : 1.0f;
        }
}

int me_trainer_step(me_trainer_t *t, me_train_stats_t *st) {
    const me_train_data_t *d = t->data;
    const me_model_config_t *c = me_model_config(t->m);
    int B = t->o.batch, Wq = d->q_len_max, Wd = d->d_len_max;
    long per_epoch = d->n / B;
    long epoch = t->step / per_epoch, pos = t->step % per_epoch;
    if (epoch != t->order_epoch) make_order(t, epoch);
    const int *idx = t->order + pos * B;
    /* Rows 0..B-1: positives; B..2B-1: hard negatives, replaced by a seeded
     * random example when the hard negative is itself in the batch (it
     * would be a second positive) or when random_negatives is set. */
    uint64_t s = mix(t->o.seed ^ mix((uint64_t)t->step * 7919 + 3));
    for (int i = 0; i < B; i++) {
        int e = idx[i];
        copy_row(t->q_tok + (size_t)i * Wq, &t->q_len[i], d->q_tok, d->q_len, e, Wq);
        copy_row(t->d_tok + (size_t)i * Wd, &t->d_len[i], d->d_tok, d->d_len, e, Wd);
        copy_image(t, t->q_pix, t->q_has, d->q_img, i, e);
        copy_image(t, t->d_pix, t->d_has, d->d_img, i, e);
        int h = d->hard && !t->o.random_negatives ? d->hard[e] : -1;
        /* A replacement is of the positive's kind, so a batch's candidates
         * stay of one modality. */
        for (int tries = 0; tries < 32; tries++) {
            int clash = h < 0 || h == e || (d->kind && d->kind[h] != d->kind[e]);
            for (int k = 0; k < B && !clash; k++) clash = idx[k] == h;
            if (!clash) break;
            s = mix(s);
            h = (int)(s % (uint64_t)d->n);
        }
        copy_row(t->d_tok + (size_t)(B + i) * Wd, &t->d_len[B + i], d->d_tok, d->d_len, h, Wd);
        copy_image(t, t->d_pix, t->d_has, d->d_img, B + i, h);
    }
    me_model_zero_grad(t->m);
    me_model_forward_images(t->m, t->qa, t->q_tok, t->q_len, t->q_pix, t->q_has, B, t->Q);
    me_model_forward_images(t->m, t->da, t->d_tok, t->d_len, t->d_pix, t->d_has, 2 * B, t->C);
    float loss = 0;
    int rc = me_mmr_forward(t->mmr, &loss, st ? st->group_loss : NULL, st ? st->group_acc : NULL, t->Q, t->C, B, 2 * B);
    if (rc) return rc;
    memset(t->dQ, 0, (size_t)B * c->meta_q * c->dim * sizeof(float));
    memset(t->dC, 0, (size_t)2 * B * c->meta_c * c->dim * sizeof(float));
    if ((rc = me_mmr_backward(t->mmr, t->dQ, t->dC, t->Q, t->C, 1.0f)) != 0) return rc;
    me_model_backward(t->m, t->da, t->dC);
    me_model_backward(t->m, t->qa, t->dQ);
    size_t n;
    float *g = me_model_grad_data(t->m, &n);
    float norm = grad_norm(g, n);
    if (t->o.clip > 0 && norm > t->o.clip) {
        float k = t->o.clip / norm;
        for (size_t i = 0; i < n; i++) g[i] *= k;
    }
    float lr = me_train_lr(&t->o, t->step);
    me_model_update(t->m, lr, 0.9f, 0.999f, 1e-8f, t->o.weight_decay, (int)(t->step + 1));
    t->step++;
    if (st) {
        st->step = t->step;
        st->loss = loss;
        st->grad_norm = norm;
        st->lr = lr;
        double el = now_s() - t->t0;
        st->examples_per_s = el > 0 ? (double)B * (double)(t->step - t->step0) / el : 0;
    }
    return 0;
}
