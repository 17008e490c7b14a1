#include "encoder/model.h"

#include <stdio.h>

#include "common/error.h"

const char *const me_model_param_names[ME_MODEL_NUM_PARAMS] = {
    "wte", "wpe", "meta_q", "meta_c", "ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
    "ln2w", "ln2b", "fcw", "fcb", "fcprojw", "fcprojb", "lnfw", "lnfb", "projw", "projb",
};

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
    if (c->width % c->heads != 0) {
        snprintf(err, errcap, "model width %d is not a multiple of heads %d", c->width, c->heads);
        return ME_EINVAL;
    }
    return 0;
}

size_t me_model_param_sizes(const me_model_config_t *cfg, size_t sizes[ME_MODEL_NUM_PARAMS],
                            int shapes[ME_MODEL_NUM_PARAMS][3]) {
    int V = cfg->vocab, T = cfg->max_text, L = cfg->layers, C = cfg->width, D = cfg->dim;
    int s[ME_MODEL_NUM_PARAMS][3] = {
        { V, C, 0 },         { T, C, 0 },     { cfg->meta_q, C, 0 }, { cfg->meta_c, C, 0 },
        { L, C, 0 },         { L, C, 0 },     { L, 3 * C, C },       { L, 3 * C, 0 },
        { L, C, C },         { L, C, 0 },     { L, C, 0 },           { L, C, 0 },
        { L, 4 * C, C },     { L, 4 * C, 0 }, { L, C, 4 * C },       { L, C, 0 },
        { C, 0, 0 },         { C, 0, 0 },     { D, C, 0 },           { D, 0, 0 },
    };
    size_t total = 0;
    for (int i = 0; i < ME_MODEL_NUM_PARAMS; i++) {
        size_t n = 1;
        for (int k = 0; k < 3; k++) {
            if (shapes) shapes[i][k] = s[i][k];
            if (s[i][k]) n *= (size_t)s[i][k];
        }
        sizes[i] = n;
        total += n;
    }
    return total;
}
