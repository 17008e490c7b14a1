/* MMR training of the encoder on (query, positive, hard negative) triples.
 *
 * One step: B queries → Q (B, R_q, D); their B positives and B hard
 * negatives → C (2B, R_c, D); the MMR loss over the configured groups with
 * every candidate of the batch as a negative; backward through both sides;
 * global gradient-norm clipping; AdamW with linear warm-up and cosine decay
 * to a floor. The example order is a seeded shuffle per epoch, so a run is a
 * pure function of (data, config, seed) and a checkpoint resumes it exactly. */
#ifndef ME_TRAIN_H
#define ME_TRAIN_H

#include <stdint.h>

#include "encoder/mmr.h"
#include "encoder/model.h"

/* Pre-tokenised training examples. */
typedef struct {
    int n;
    int q_len_max, d_len_max;  /* token columns per query / document row */
    const int32_t *q_tok;      /* (n, q_len_max) */
    const int *q_len;          /* (n) */
    const int32_t *d_tok;      /* (n, d_len_max) the positive document */
    const int *d_len;          /* (n) */
    const int *hard;           /* (n) example whose document is i's hard negative, or -1 */
    /* Images (a model with image_size S > 0): pixels (n_images, S, S, 3)
     * in [-1, 1], and each example's query and document image as an index
     * into them, or -1 for none; q_img or d_img NULL: that side has no
     * images. An item may be image only (its length 0). */
    const float *pixels;
    const int *q_img, *d_img;
    /* Optional kinds (e.g. 0 text → image, 1 image → text, 2 image →
     * image; at most 8): each batch then holds one kind, taken in turn, so
     * its negatives are all of the positive's modality and none can be
     * ruled out by modality alone. */
    const uint8_t *kind;
} me_train_data_t;

typedef struct {
    int batch;                 /* B queries per step */
    long steps;                /* total optimiser steps */
    float lr, lr_floor;        /* peak and final learning rate */
    int warmup;                /* steps of linear warm-up */
    float weight_decay, clip;
    float tau;
    int score_mean;            /* each group's logits s_g / (τ r_q): one temperature for every budget */
    me_mmr_group_t groups[ME_MMR_MAX_GROUPS];
    int ngroups;
    uint64_t seed;
    int threads;
    int random_negatives;      /* seeded random negatives instead of the data's hard ones */
    int image_shift;           /* augmentation: images shifted by up to this many pixels (0 = off) */
} me_train_opts_t;

/* Defaults: batch 32, lr 1e-3 → 1e-4, warm-up 100, wd 0.01, clip 1, τ 0.03,
 * the paper's five groups with weight 1. */
void me_train_defaults(me_train_opts_t *o);

typedef struct me_trainer me_trainer_t;

typedef struct {
    long step;                 /* steps done */
    float loss;                /* last step's weighted total */
    float group_loss[ME_MMR_MAX_GROUPS], group_acc[ME_MMR_MAX_GROUPS];
    float grad_norm, lr;
    double examples_per_s;     /* since the trainer started */
} me_train_stats_t;

me_trainer_t *me_trainer_new(me_model_t *m, const me_train_data_t *data, const me_train_opts_t *o,
                             char *err, size_t errcap);
void me_trainer_free(me_trainer_t *t);
/* Runs one optimiser step. */
int me_trainer_step(me_trainer_t *t, me_train_stats_t *st);
/* For checkpoints: the steps done, and setting it when resuming. */
long me_trainer_steps_done(const me_trainer_t *t);
void me_trainer_resume_at(me_trainer_t *t, long step);
/* Learning rate at a step (warm-up, cosine decay to the floor). */
float me_train_lr(const me_train_opts_t *o, long step);

#endif
