#include "encoder/model.h"

#include <stdio.h>

#include "common/error.h"
#include "common/hash.h"

const char *const me_model_param_names[ME_MODEL_NUM_PARAMS] = {
    "wte", "wpe", "meta_q", "meta_c", "ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
    "ln2w", "ln2b", "fcw", "fcb", "fcprojw", "fcprojb", "lnfw", "lnfb", "projw", "projb",
    "patchw", "patchb", "ppe",
};

int me_model_patches(const me_model_config_t *cfg) {
    if (cfg->image_size <= 0 || cfg->patch <= 0) return 0;
    int g = cfg->image_size / cfg->patch;
    return g * g;
}

int me_model_config_check(const me_model_config_t *c, char *err, size_t errcap) {
    struct { const char *name; int v, lo, hi; } f[] = {
        { "vocab", c->vocab, 260, 1 << 20 },   { "max_text", c->max_text, 1, 4096 },
        { "layers", c->layers, 1, 64 },        { "width", c->width, 8, 8192 },
        { "heads", c->heads, 1, 256 },         { "dim", c->dim, 1, 8192 },
        { "meta_q", c->meta_q, 1, 1024 },      { "meta_c", c->meta_c, 1, 1024 },
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (f[i].v < f[i].lo || f[i].v > f[i].hi) {
            snprintf(err, errcap, "model %s must be in [%d, %d], got %d", f[i].name, f[i].lo, f[i].hi, f[i].v);
            return ME_EINVAL;
        }
    if (c->image_size != 0) {
        if (c->image_size < 4 || c->image_size > 512 || c->patch < 1 || c->patch > 64 || c->image_size % c->patch) {
            snprintf(err, errcap, "model image_size %d must be in [4, 512] and a multiple of patch %d (in [1, 64])",
                     c->image_size, c->patch);
            return ME_EINVAL;
        }
    } else if (c->patch != 0) {
        snprintf(err, errcap, "model patch %d given without an image_size", c->patch);
        return ME_EINVAL;
    }
    if (c->width % c->heads != 0) {
        snprintf(err, errcap, "model width %d is not a multiple of heads %d", c->width, c->heads);
        return ME_EINVAL;
    }
    return 0;
}

size_t me_model_param_sizes(const me_model_config_t *cfg, size_t sizes[ME_MODEL_NUM_PARAMS],
                            int shapes[ME_MODEL_NUM_PARAMS][3]) {
    int V = cfg->vocab, T = cfg->max_text, L = cfg->layers, C = cfg->width, D = cfg->dim;
    int NP = me_model_patches(cfg), PP3 = NP ? 3 * cfg->patch * cfg->patch : 0, CI = NP ? C : 0;
    int s[ME_MODEL_NUM_PARAMS][3] = {
        { V, C, 0 },         { T, C, 0 },     { cfg->meta_q, C, 0 }, { cfg->meta_c, C, 0 },
        { L, C, 0 },         { L, C, 0 },     { L, 3 * C, C },       { L, 3 * C, 0 },
        { L, C, C },         { L, C, 0 },     { L, C, 0 },           { L, C, 0 },
        { L, 4 * C, C },     { L, 4 * C, 0 }, { L, C, 4 * C },       { L, C, 0 },
        { C, 0, 0 },         { C, 0, 0 },     { D, C, 0 },           { D, 0, 0 },
        { CI, PP3, 0 },      { CI, 0, 0 },    { NP, CI, 0 },
    };
    size_t total = 0;
    for (int i = 0; i < ME_MODEL_NUM_PARAMS; i++) {
        size_t n = s[i][0] ? 1 : 0;  /* a text-only model's image tensors are empty */
        for (int k = 0; k < 3; k++) {
            if (shapes) shapes[i][k] = s[i][k];
            if (s[i][k]) n *= (size_t)s[i][k];
        }
        sizes[i] = n;
        total += n;
    }
    return total;
}

/* ---- the model: arenas, init, forward, backward, update ---- */

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "encoder/ops.h"

struct me_model {
    me_model_config_t cfg;
    size_t sizes[ME_MODEL_NUM_PARAMS];
    size_t n;              /* total parameters */
    float *mem, *gmem, *m1, *m2;
    me_params_t p, g;
};

/* Points the 20 tensors of s at consecutive ranges of base. */
static void carve(me_params_t *s, float *base, const size_t sizes[ME_MODEL_NUM_PARAMS]) {
    float **ptrs[ME_MODEL_NUM_PARAMS] = {
        &s->wte, &s->wpe, &s->meta_q, &s->meta_c, &s->ln1w, &s->ln1b, &s->qkvw, &s->qkvb,
        &s->attprojw, &s->attprojb, &s->ln2w, &s->ln2b, &s->fcw, &s->fcb, &s->fcprojw, &s->fcprojb,
        &s->lnfw, &s->lnfb, &s->projw, &s->projb, &s->patchw, &s->patchb, &s->ppe,
    };
    for (int i = 0; i < ME_MODEL_NUM_PARAMS; i++) {
        *ptrs[i] = base;
        base += sizes[i];
    }
}

me_model_t *me_model_new(const me_model_config_t *cfg) {
    me_model_t *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->cfg = *cfg;
    m->n = me_model_param_sizes(cfg, m->sizes, NULL);
    /* Parameters, gradients and the two AdamW moments: four arenas of n
     * floats in one allocation. */
    m->mem = calloc(4 * m->n, sizeof(float));
    if (!m->mem) {
        free(m);
        return NULL;
    }
    m->gmem = m->mem + m->n;
    m->m1 = m->gmem + m->n;
    m->m2 = m->m1 + m->n;
    carve(&m->p, m->mem, m->sizes);
    carve(&m->g, m->gmem, m->sizes);
    return m;
}

void me_model_free(me_model_t *m) {
    if (!m) return;
    free(m->mem);
    free(m);
}

const me_model_config_t *me_model_config(const me_model_t *m) { return &m->cfg; }
me_params_t *me_model_params(me_model_t *m) { return &m->p; }
me_params_t *me_model_grads(me_model_t *m) { return &m->g; }
float *me_model_param_data(me_model_t *m, size_t *n) { *n = m->n; return m->mem; }
float *me_model_grad_data(me_model_t *m, size_t *n) { *n = m->n; return m->gmem; }
void me_model_zero_grad(me_model_t *m) { memset(m->gmem, 0, m->n * sizeof(float)); }

void me_model_opt_state(me_model_t *m, float **mom1, float **mom2, size_t *n) {
    *mom1 = m->m1;
    *mom2 = m->m2;
    *n = m->n;
}

/* splitmix64 → Box-Muller, so weights do not depend on the C library. */
static double rng_normal(uint64_t *s) {
    uint64_t z1 = me_splitmix64(s), z2 = me_splitmix64(s);
    double u1 = ((z1 >> 11) + 1.0) / 9007199254740993.0, u2 = (z2 >> 11) / 9007199254740992.0;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static void fill_normal(float *p, size_t n, double std, uint64_t *s) {
    for (size_t i = 0; i < n; i++) p[i] = (float)(std * rng_normal(s));
}

static void fill_const(float *p, size_t n, float v) {
    for (size_t i = 0; i < n; i++) p[i] = v;
}

void me_model_init(me_model_t *m, uint64_t seed) {
    const me_model_config_t *c = &m->cfg;
    me_params_t *p = &m->p;
    uint64_t s = seed * 0x2545f4914f6cdd1dULL + 1;
    memset(m->mem, 0, m->n * sizeof(float));
    double resid = 0.02 / sqrt(2.0 * c->layers);
    fill_normal(p->wte, m->sizes[0], 0.02, &s);
    fill_normal(p->wpe, m->sizes[1], 0.01, &s);
    fill_normal(p->meta_q, m->sizes[2], 0.02, &s);
    fill_normal(p->meta_c, m->sizes[3], 0.02, &s);
    fill_const(p->ln1w, m->sizes[4], 1.0f);
    fill_normal(p->qkvw, m->sizes[6], 0.02, &s);
    fill_normal(p->attprojw, m->sizes[8], resid, &s);
    fill_const(p->ln2w, m->sizes[10], 1.0f);
    fill_normal(p->fcw, m->sizes[12], 0.02, &s);
    fill_normal(p->fcprojw, m->sizes[14], resid, &s);
    fill_const(p->lnfw, m->sizes[16], 1.0f);
    fill_normal(p->projw, m->sizes[18], 1.0 / sqrt((double)c->width), &s);
    /* Patch inputs are pixels in [-1, 1]: small weights keep a patch's
     * embedding near a token's scale. */
    if (m->sizes[20]) fill_normal(p->patchw, m->sizes[20], 0.1 / sqrt(3.0 * c->patch * c->patch), &s);
    if (m->sizes[22]) fill_normal(p->ppe, m->sizes[22], 0.01, &s);
    memset(m->m1, 0, m->n * sizeof(float));
    memset(m->m2, 0, m->n * sizeof(float));
}

void me_model_update(me_model_t *m, float lr, float beta1, float beta2, float eps, float weight_decay, int t) {
    /* Decay only the matrices that mix features (not embeddings of single
     * positions or meta tokens, biases, or layernorm gains). */
    static const int decayed[ME_MODEL_NUM_PARAMS] = { 1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0,
                                                      1, 0, 0 };
    size_t off = 0;
    for (int i = 0; i < ME_MODEL_NUM_PARAMS; i++) {
        adamw_update(m->mem + off, m->m1 + off, m->m2 + off, m->gmem + off, m->sizes[i], lr, beta1, beta2, eps,
                     decayed[i] ? weight_decay : 0.0f, t);
        off += m->sizes[i];
    }
}

/* ---- activations ---- */

struct me_acts {
    me_side_t side;
    int Bmax, B, Np, Tt, M, T;  /* T = Np + Tt + M: patches, text, meta */
    int32_t *tokens;   /* (B, Tt) */
    uint8_t *has_image;  /* (B) */
    float *patches;    /* (B, Np, 3 P P) the images cut into patches */
    float *pemb;       /* (B, Np, C) their projections */
    uint8_t *mask;     /* (B, T) */
    int32_t *idx;      /* (B, M) meta positions */
    float *encoded;    /* (B, T, C) */
    float *ln1, *ln1_mean, *ln1_rstd;   /* (L, B, T, C), (L, B, T) x2 */
    float *qkv;        /* (L, B, T, 3C) */
    float *atty;       /* (L, B, T, C) */
    float *att;        /* (L, B, NH, T, T) */
    float *attproj;    /* (L, B, T, C) */
    float *residual2;  /* (L, B, T, C) */
    float *ln2, *ln2_mean, *ln2_rstd;
    float *fch, *fch_gelu;              /* (L, B, T, 4C) */
    float *fcproj;     /* (L, B, T, C) */
    float *residual3;  /* (L, B, T, C) */
    float *metares;    /* (B, M, C) last residual at the meta positions */
    float *lnf, *lnf_mean, *lnf_rstd;   /* (B, M, C), (B, M) x2 */
    float *proj;       /* (B, M, D) */
    float *out;        /* (B, M, D) */
    float *norm;       /* (B, M) */
    void *arena;       /* every tensor above and below lives in it */
    /* backward scratch, reused layer by layer */
    float *dres, *dres2, *dbuf, *dqkv, *dfch, *dfch_gelu, *dmeta, *dlnf, *dproj, *dpemb;
};

int me_acts_text_len(const me_acts_t *a) { return a->Tt; }

static me_acts_t *acts_new(const me_model_t *m, me_side_t side, int B, int text_len, int images) {
    const me_model_config_t *c = &m->cfg;
    if (B < 1 || text_len < 1 || text_len > c->max_text) return NULL;
    if (images && !me_model_patches(c)) return NULL;
    me_acts_t *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->side = side;
    a->Bmax = B;
    a->Tt = text_len;
    a->M = side == ME_SIDE_QUERY ? c->meta_q : c->meta_c;
    a->Np = images ? me_model_patches(c) : 0;
    a->T = a->Np + a->Tt + a->M;
    size_t PP3 = (size_t)3 * c->patch * c->patch, BP = (size_t)B * a->Np;
    size_t L = (size_t)c->layers, C = (size_t)c->width, NH = (size_t)c->heads, D = (size_t)c->dim;
    size_t BT = (size_t)B * a->T, BM = (size_t)B * a->M;
    /* One arena for every activation (llm.c): the first pass sizes it, the
     * second carves it, each tensor on a 64-byte boundary. */
    size_t off = 0;
    char *base = NULL;
    for (int pass = 0; pass < 2; pass++) {
        off = 0;
#define CARVE(field, count) do { a->field = base ? (void *)(base + off) : NULL; \
                                 off += ((count) * sizeof *a->field + 63) & ~(size_t)63; } while (0)
        CARVE(tokens, (size_t)B * a->Tt);
        CARVE(has_image, (size_t)B);
        CARVE(patches, BP * PP3); CARVE(pemb, BP * C); CARVE(dpemb, BP * C);
        CARVE(mask, BT);
        CARVE(idx, BM);
        CARVE(encoded, BT * C);
        CARVE(ln1, L * BT * C); CARVE(ln1_mean, L * BT); CARVE(ln1_rstd, L * BT);
        CARVE(qkv, L * BT * 3 * C);
        CARVE(atty, L * BT * C);
        CARVE(att, L * (size_t)B * NH * a->T * a->T);
        CARVE(attproj, L * BT * C);
        CARVE(residual2, L * BT * C);
        CARVE(ln2, L * BT * C); CARVE(ln2_mean, L * BT); CARVE(ln2_rstd, L * BT);
        CARVE(fch, L * BT * 4 * C); CARVE(fch_gelu, L * BT * 4 * C);
        CARVE(fcproj, L * BT * C);
        CARVE(residual3, L * BT * C);
        CARVE(metares, BM * C);
        CARVE(lnf, BM * C); CARVE(lnf_mean, BM); CARVE(lnf_rstd, BM);
        CARVE(proj, BM * D); CARVE(out, BM * D); CARVE(norm, BM);
        CARVE(dres, BT * C); CARVE(dres2, BT * C); CARVE(dbuf, BT * C); CARVE(dqkv, BT * 3 * C);
        CARVE(dfch, BT * 4 * C); CARVE(dfch_gelu, BT * 4 * C);
        CARVE(dmeta, BM * C); CARVE(dlnf, BM * C); CARVE(dproj, BM * D);
#undef CARVE
        if (pass == 0 && !(base = a->arena = calloc(1, off ? off : 1))) { free(a); return NULL; }
    }
    return a;
}

me_acts_t *me_acts_new(const me_model_t *m, me_side_t side, int B, int text_len) {
    return acts_new(m, side, B, text_len, 0);
}

me_acts_t *me_acts_new_images(const me_model_t *m, me_side_t side, int B, int text_len) {
    return acts_new(m, side, B, text_len, 1);
}

void me_acts_free(me_acts_t *a) {
    if (!a) return;
    free(a->arena);
    free(a);
}

/* Cuts each image (S, S, 3) into its (S/P)^2 patches, row-major, each a
 * vector of (rows, columns, RGB): patches (B, Np, 3 P P). */
static void cut_patches(float *patches, const float *pixels, const uint8_t *has_image, int B, int S, int P) {
    int G = S / P, NP = G * G;
    size_t PP3 = (size_t)3 * P * P;
    for (int b = 0; b < B; b++) {
        float *dst = patches + (size_t)b * NP * PP3;
        if (!has_image[b]) { memset(dst, 0, NP * PP3 * sizeof *dst); continue; }
        const float *img = pixels + (size_t)b * S * S * 3;
        for (int py = 0; py < G; py++)
            for (int px = 0; px < G; px++) {
                float *v = dst + (size_t)(py * G + px) * PP3;
                for (int dy = 0; dy < P; dy++)
                    memcpy(v + (size_t)dy * P * 3, img + ((size_t)(py * P + dy) * S + (size_t)px * P) * 3,
                           (size_t)P * 3 * sizeof *v);
            }
    }
}

/* out[b,t] = pemb[b,t] + ppe[t] for patches of an item with an image,
 * wte[tok] + wpe[t - Np] for text, meta[t - Np - Tt] for meta positions, 0
 * for padding and absent images (masked out of attention anyway). */
static void input_embedding_forward(float *out, const me_acts_t *a, const me_params_t *p, const float *meta, int C) {
    int Np = a->Np, Tt = a->Tt, T = a->T;
    for (int b = 0; b < a->B; b++)
        for (int t = 0; t < T; t++) {
            float *o = out + ((size_t)b * T + t) * C;
            if (t >= Np + Tt) memcpy(o, meta + (size_t)(t - Np - Tt) * C, (size_t)C * sizeof(float));
            else if (!a->mask[(size_t)b * T + t]) memset(o, 0, (size_t)C * sizeof(float));
            else if (t < Np) {
                const float *e = a->pemb + ((size_t)b * Np + t) * C, *pe = p->ppe + (size_t)t * C;
                for (int i = 0; i < C; i++) o[i] = e[i] + pe[i];
            } else {
                const float *e = p->wte + (size_t)a->tokens[(size_t)b * Tt + t - Np] * C, *pe = p->wpe + (size_t)(t - Np) * C;
                for (int i = 0; i < C; i++) o[i] = e[i] + pe[i];
            }
        }
}

/* The gradients of input_embedding_forward: into wte, wpe, the side's meta
 * tokens, ppe, and dpemb (B, Np, C) for the patch projection's backward. */
static void input_embedding_backward(me_params_t *g, float *dmeta, float *dpemb, const float *dout, const me_acts_t *a,
                                     int C) {
    int Np = a->Np, Tt = a->Tt, T = a->T;
    if (Np) memset(dpemb, 0, (size_t)a->B * Np * C * sizeof *dpemb);
    for (int b = 0; b < a->B; b++)
        for (int t = 0; t < T; t++) {
            const float *d = dout + ((size_t)b * T + t) * C;
            if (t >= Np + Tt) {
                float *dm = dmeta + (size_t)(t - Np - Tt) * C;
                for (int i = 0; i < C; i++) dm[i] += d[i];
            } else if (!a->mask[(size_t)b * T + t]) {
                continue;
            } else if (t < Np) {
                float *de = dpemb + ((size_t)b * Np + t) * C, *dp = g->ppe + (size_t)t * C;
                for (int i = 0; i < C; i++) { de[i] = d[i]; dp[i] += d[i]; }
            } else {
                float *de = g->wte + (size_t)a->tokens[(size_t)b * Tt + t - Np] * C, *dp = g->wpe + (size_t)(t - Np) * C;
                for (int i = 0; i < C; i++) { de[i] += d[i]; dp[i] += d[i]; }
            }
        }
}

void me_model_forward(me_model_t *m, me_acts_t *a, const int32_t *tokens, const int *lens, int B, float *out) {
    me_model_forward_images(m, a, tokens, lens, NULL, NULL, B, out);
}

void me_model_forward_images(me_model_t *m, me_acts_t *a, const int32_t *tokens, const int *lens,
                             const float *pixels, const uint8_t *has_image, int B, float *out) {
    const me_model_config_t *c = &m->cfg;
    const me_params_t *p = &m->p;
    int L = c->layers, C = c->width, NH = c->heads, D = c->dim, Np = a->Np, Tt = a->Tt, M = a->M, T = a->T;
    a->B = B;
    memcpy(a->tokens, tokens, (size_t)B * Tt * sizeof *tokens);
    for (int b = 0; b < B; b++) {
        a->has_image[b] = (uint8_t)(Np && pixels && has_image && has_image[b]);
        int len = lens[b] < 0 ? 0 : lens[b] > Tt ? Tt : lens[b];
        uint8_t *mk = a->mask + (size_t)b * T;
        for (int t = 0; t < T; t++) mk[t] = (uint8_t)(t < Np ? a->has_image[b] : t < Np + Tt ? t - Np < len : 1);
        for (int k = 0; k < M; k++) a->idx[(size_t)b * M + k] = Np + Tt + k;
    }
    if (Np) {
        if (pixels) cut_patches(a->patches, pixels, a->has_image, B, c->image_size, c->patch);
        else memset(a->patches, 0, (size_t)B * Np * 3 * c->patch * c->patch * sizeof(float));
        matmul_forward(a->pemb, a->patches, p->patchw, p->patchb, B, Np, 3 * c->patch * c->patch, C);
    }
    const float *meta = a->side == ME_SIDE_QUERY ? p->meta_q : p->meta_c;
    input_embedding_forward(a->encoded, a, p, meta, C);
    size_t BTC = (size_t)B * T * C, BT = (size_t)B * T;
    /* Layer buffers are indexed with the allocated batch (Bmax) stride so the
     * same acts serve smaller batches. */
    size_t sBTC = (size_t)a->Bmax * T * C, sBT = (size_t)a->Bmax * T, sATT = (size_t)a->Bmax * NH * T * T;
    for (int l = 0; l < L; l++) {
        const float *residual = l == 0 ? a->encoded : a->residual3 + (l - 1) * sBTC;
        float *ln1 = a->ln1 + l * sBTC, *qkv = a->qkv + l * 3 * sBTC, *atty = a->atty + l * sBTC;
        float *att = a->att + l * sATT, *attproj = a->attproj + l * sBTC, *res2 = a->residual2 + l * sBTC;
        float *ln2 = a->ln2 + l * sBTC, *fch = a->fch + l * 4 * sBTC, *fchg = a->fch_gelu + l * 4 * sBTC;
        float *fcproj = a->fcproj + l * sBTC, *res3 = a->residual3 + l * sBTC;
        layernorm_forward(ln1, a->ln1_mean + l * sBT, a->ln1_rstd + l * sBT, residual, p->ln1w + l * C,
                          p->ln1b + l * C, B, T, C);
        matmul_forward(qkv, ln1, p->qkvw + (size_t)l * 3 * C * C, p->qkvb + l * 3 * C, B, T, C, 3 * C);
        attention_forward(atty, att, qkv, a->mask, B, T, C, NH);
        matmul_forward(attproj, atty, p->attprojw + (size_t)l * C * C, p->attprojb + l * C, B, T, C, C);
        residual_forward(res2, residual, attproj, BTC);
        layernorm_forward(ln2, a->ln2_mean + l * sBT, a->ln2_rstd + l * sBT, res2, p->ln2w + l * C, p->ln2b + l * C,
                          B, T, C);
        matmul_forward(fch, ln2, p->fcw + (size_t)l * 4 * C * C, p->fcb + l * 4 * C, B, T, C, 4 * C);
        gelu_forward(fchg, fch, BTC * 4);
        matmul_forward(fcproj, fchg, p->fcprojw + (size_t)l * C * 4 * C, p->fcprojb + l * C, B, T, 4 * C, C);
        residual_forward(res3, res2, fcproj, BTC);
    }
    (void)BT;
    /* Only the meta positions go on: final layernorm, projection, L2 norm. */
    gather_forward(a->metares, a->residual3 + (L - 1) * sBTC, a->idx, B, T, M, C);
    layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, a->metares, p->lnfw, p->lnfb, B, M, C);
    matmul_forward(a->proj, a->lnf, p->projw, p->projb, B, M, C, D);
    l2norm_forward(a->out, a->norm, a->proj, B * M, D);
    if (out) memcpy(out, a->out, (size_t)B * M * D * sizeof *out);
}

void me_model_backward(me_model_t *m, me_acts_t *a, const float *dout) {
    const me_model_config_t *c = &m->cfg;
    const me_params_t *p = &m->p;
    me_params_t *g = &m->g;
    int L = c->layers, C = c->width, NH = c->heads, D = c->dim, M = a->M, T = a->T, B = a->B;
    size_t BTC = (size_t)B * T * C, BM = (size_t)B * M;
    size_t sBTC = (size_t)a->Bmax * T * C, sBT = (size_t)a->Bmax * T, sATT = (size_t)a->Bmax * NH * T * T;

    memset(a->dproj, 0, BM * D * sizeof(float));
    memset(a->dlnf, 0, BM * C * sizeof(float));
    memset(a->dmeta, 0, BM * C * sizeof(float));
    memset(a->dres, 0, BTC * sizeof(float));
    l2norm_backward(a->dproj, dout, a->out, a->norm, B * M, D);
    matmul_backward(a->dlnf, g->projw, g->projb, a->dproj, a->lnf, p->projw, B, M, C, D);
    layernorm_backward(a->dmeta, g->lnfw, g->lnfb, a->dlnf, a->metares, p->lnfw, a->lnf_mean, a->lnf_rstd, B, M, C);
    gather_backward(a->dres, a->dmeta, a->idx, B, T, M, C);

    for (int l = L - 1; l >= 0; l--) {
        const float *residual = l == 0 ? a->encoded : a->residual3 + (l - 1) * sBTC;
        float *ln1 = a->ln1 + l * sBTC, *qkv = a->qkv + l * 3 * sBTC, *atty = a->atty + l * sBTC;
        float *att = a->att + l * sATT, *res2 = a->residual2 + l * sBTC;
        float *ln2 = a->ln2 + l * sBTC, *fch = a->fch + l * 4 * sBTC, *fchg = a->fch_gelu + l * 4 * sBTC;
        /* res3 = res2 + fcproj: both get dres. */
        memcpy(a->dres2, a->dres, BTC * sizeof(float));
        memset(a->dfch_gelu, 0, 4 * BTC * sizeof(float));
        matmul_backward(a->dfch_gelu, g->fcprojw + (size_t)l * C * 4 * C, g->fcprojb + l * C, a->dres, fchg,
                        p->fcprojw + (size_t)l * C * 4 * C, B, T, 4 * C, C);
        memset(a->dfch, 0, 4 * BTC * sizeof(float));
        gelu_backward(a->dfch, a->dfch_gelu, fch, 4 * BTC);
        memset(a->dbuf, 0, BTC * sizeof(float));
        matmul_backward(a->dbuf, g->fcw + (size_t)l * 4 * C * C, g->fcb + l * 4 * C, a->dfch, ln2,
                        p->fcw + (size_t)l * 4 * C * C, B, T, C, 4 * C);
        layernorm_backward(a->dres2, g->ln2w + l * C, g->ln2b + l * C, a->dbuf, res2, p->ln2w + l * C,
                           a->ln2_mean + l * sBT, a->ln2_rstd + l * sBT, B, T, C);
        /* res2 = residual + attproj: both get dres2. */
        memcpy(a->dres, a->dres2, BTC * sizeof(float));
        memset(a->dbuf, 0, BTC * sizeof(float));
        matmul_backward(a->dbuf, g->attprojw + (size_t)l * C * C, g->attprojb + l * C, a->dres2, atty,
                        p->attprojw + (size_t)l * C * C, B, T, C, C);
        memset(a->dqkv, 0, 3 * BTC * sizeof(float));
        attention_backward(a->dqkv, a->dbuf, qkv, att, a->mask, B, T, C, NH);
        memset(a->dbuf, 0, BTC * sizeof(float));
        matmul_backward(a->dbuf, g->qkvw + (size_t)l * 3 * C * C, g->qkvb + l * 3 * C, a->dqkv, ln1,
                        p->qkvw + (size_t)l * 3 * C * C, B, T, C, 3 * C);
        layernorm_backward(a->dres, g->ln1w + l * C, g->ln1b + l * C, a->dbuf, residual, p->ln1w + l * C,
                           a->ln1_mean + l * sBT, a->ln1_rstd + l * sBT, B, T, C);
    }
    float *dmeta_params = a->side == ME_SIDE_QUERY ? g->meta_q : g->meta_c;
    input_embedding_backward(g, dmeta_params, a->dpemb, a->dres, a, C);
    if (a->Np)
        matmul_backward(NULL, g->patchw, g->patchb, a->dpemb, a->patches, p->patchw, B, a->Np,
                        3 * c->patch * c->patch, C);
}
