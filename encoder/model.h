/* The MetaEmbed encoder: a pre-LN transformer (bidirectional attention)
 * whose input is [text tokens, padded to T_text][meta tokens]. The last
 * layer's states at the meta positions, projected to D and L2-normalised,
 * are the nested multi-vector embedding: R_q = 16 vectors on the query side,
 * R_c = 64 on the candidate side, each side with its own meta tokens (as in
 * the paper). Text positions get token + position embeddings; a meta token
 * is its own learned vector (its place in the order is what it learns).
 *
 * Memory follows llm.c: parameters, gradients and AdamW state each live in
 * one arena carved from a size table; activations in another, sized for a
 * batch shape. */
#ifndef ME_MODEL_H
#define ME_MODEL_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int vocab;      /* V */
    int max_text;   /* T_text: tokens kept per text (longer ones are truncated) */
    int layers;     /* L */
    int width;      /* C */
    int heads;      /* NH (C % NH == 0) */
    int dim;        /* D, the embedding dim after the projection */
    int meta_q;     /* R_q, query-side meta tokens */
    int meta_c;     /* R_c, candidate-side meta tokens */
} me_model_config_t;

#define ME_MODEL_NUM_PARAMS 20

/* Parameter tensors, in arena order (their names in the weights file are
 * me_model_param_names[i]). */
typedef struct {
    float *wte;       /* (V, C) */
    float *wpe;       /* (T_text, C) */
    float *meta_q;    /* (R_q, C) */
    float *meta_c;    /* (R_c, C) */
    float *ln1w;      /* (L, C) */
    float *ln1b;      /* (L, C) */
    float *qkvw;      /* (L, 3C, C) */
    float *qkvb;      /* (L, 3C) */
    float *attprojw;  /* (L, C, C) */
    float *attprojb;  /* (L, C) */
    float *ln2w;      /* (L, C) */
    float *ln2b;      /* (L, C) */
    float *fcw;       /* (L, 4C, C) */
    float *fcb;       /* (L, 4C) */
    float *fcprojw;   /* (L, C, 4C) */
    float *fcprojb;   /* (L, C) */
    float *lnfw;      /* (C) */
    float *lnfb;      /* (C) */
    float *projw;     /* (D, C) */
    float *projb;     /* (D) */
} me_params_t;

extern const char *const me_model_param_names[ME_MODEL_NUM_PARAMS];

/* Fills sizes[i] (elements) and shapes (up to 3 dims, unused = 0) for each
 * parameter tensor; returns the total element count. */
size_t me_model_param_sizes(const me_model_config_t *cfg, size_t sizes[ME_MODEL_NUM_PARAMS],
                            int shapes[ME_MODEL_NUM_PARAMS][3]);
/* Checks the config; 0 or ME_EINVAL with the reason. */
int me_model_config_check(const me_model_config_t *cfg, char *err, size_t errcap);

#endif
