/* The MetaEmbed encoder: a pre-LN transformer (bidirectional attention)
 * whose input is [text tokens, padded to T_text][meta tokens]. The last
 * layer's states at the meta positions, projected to D and L2-normalised,
 * are the nested multi-vector embedding: R_q = 16 vectors on the query side,
 * R_c = 64 on the candidate side, each side with its own meta tokens (as in
 * the paper). Text positions get token + position embeddings; a meta token
 * is its own learned vector (its place in the order is what it learns).
 *
 * An image enters the same sequence (the paper's single-stream backbone):
 * cut into P x P patches, each linearly projected to the width C plus a
 * learned position embedding per patch, placed before the text:
 * [image patches][text tokens][meta tokens]. An item is text, an image, or
 * both; a model with image_size = 0 reads text only (and its file has no
 * image tensors).
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
    int image_size; /* S: images are resized to S x S RGB; 0 = text only */
    int patch;      /* P: patch side (S % P == 0); (S/P)^2 patches per image */
} me_model_config_t;

#define ME_MODEL_NUM_PARAMS 23

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
    float *patchw;    /* (C, 3 P P): a patch (rows, columns, RGB) to the width; empty when text only */
    float *patchb;    /* (C) */
    float *ppe;       /* (NP, C) patch position embeddings */
} me_params_t;

extern const char *const me_model_param_names[ME_MODEL_NUM_PARAMS];

typedef struct me_model me_model_t;
typedef struct me_acts me_acts_t;

/* Which meta tokens an input gets: R_q for queries, R_c for candidates. */
typedef enum { ME_SIDE_QUERY = 0, ME_SIDE_DOC = 1 } me_side_t;

me_model_t *me_model_new(const me_model_config_t *cfg);
void me_model_free(me_model_t *m);
const me_model_config_t *me_model_config(const me_model_t *m);
me_params_t *me_model_params(me_model_t *m);
me_params_t *me_model_grads(me_model_t *m);
float *me_model_param_data(me_model_t *m, size_t *n);   /* the whole arena */
float *me_model_grad_data(me_model_t *m, size_t *n);
/* GPT-2-style initialisation (normal(0, 0.02), residual projections scaled
 * by 1/sqrt(2L), layernorm weights 1), seeded and deterministic. */
void me_model_init(me_model_t *m, uint64_t seed);
void me_model_zero_grad(me_model_t *m);

/* Activations for up to B inputs of one side, each text padded (or cut) to
 * text_len ≤ T_text tokens: queries are short, so their side can use a
 * smaller text_len and skip the padding's compute. */
me_acts_t *me_acts_new(const me_model_t *m, me_side_t side, int B, int text_len);
/* The same with room for an image per item (the model must read images). */
me_acts_t *me_acts_new_images(const me_model_t *m, me_side_t side, int B, int text_len);
/* Patches per image (0 for a text-only model). */
int me_model_patches(const me_model_config_t *cfg);
int me_acts_text_len(const me_acts_t *a);
void me_acts_free(me_acts_t *a);

/* Encodes B token sequences (tokens (B, text_len) row-major, lens[b] ≤ text_len
 * real tokens each, the rest ignored) into out (B, M, D): unit vectors,
 * coarse to fine. Keeps what backward needs in acts. */
void me_model_forward(me_model_t *m, me_acts_t *a, const int32_t *tokens, const int *lens, int B,
                      float *out);
/* The same with images: pixels (B, S, S, 3) in [-1, 1] (me_image_to_tensor)
 * and has_image[b] saying which rows hold one (an item may be image only:
 * lens[b] = 0). acts must come from me_acts_new_images. */
void me_model_forward_images(me_model_t *m, me_acts_t *a, const int32_t *tokens, const int *lens,
                             const float *pixels, const uint8_t *has_image, int B, float *out);
/* Adds the gradients of a loss whose gradient w.r.t. the last forward's out
 * is dout (B, M, D) into the model's gradient arena. */
void me_model_backward(me_model_t *m, me_acts_t *a, const float *dout);
/* One AdamW step over every parameter (no weight decay on biases, layernorm
 * and meta/position vectors). t counts from 1. */
void me_model_update(me_model_t *m, float lr, float beta1, float beta2, float eps, float weight_decay, int t);
/* AdamW moments (n floats each, the parameter arena's layout), for checkpoints. */
void me_model_opt_state(me_model_t *m, float **mom1, float **mom2, size_t *n);

/* Fills sizes[i] (elements) and shapes (up to 3 dims, unused = 0) for each
 * parameter tensor; returns the total element count. */
size_t me_model_param_sizes(const me_model_config_t *cfg, size_t sizes[ME_MODEL_NUM_PARAMS],
                            int shapes[ME_MODEL_NUM_PARAMS][3]);
/* Checks the config; 0 or ME_EINVAL with the reason. */
int me_model_config_check(const me_model_config_t *cfg, char *err, size_t errcap);

#endif
