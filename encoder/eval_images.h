/* Image–text retrieval evaluation with the protocol of
 * ../shared/data/emoji/README.md, both directions, every budget:
 *
 *   text → image  queries: the label of every concept of the split;
 *                 corpus: every image of every concept (all splits and
 *                 styles); relevant: the concept's images.
 *   image → text  queries: every image of the split's concepts; corpus:
 *                 one text per concept ("label: tags"); relevant: its own.
 *
 * Beside the model, computed in the same run: chance level (the expected
 * scores of a random ranking, from the counts) and a linear baseline:
 * ridge regression from a query's bag of words (train-split vocabulary) to
 * a 16 x 16 RGB thumbnail plus a 4 x 4 x 4 colour histogram of the image,
 * and from those image features to a text's bag of words, fitted on the
 * train split, scored by cosine; its ridge strength is picked on dev. And
 * a per-style breakdown at the full budget (text → image against one
 * style's images; image → text from one style's images). */
#ifndef ME_EVAL_IMAGES_H
#define ME_EVAL_IMAGES_H

#include "encoder/embedder.h"
#include "encoder/eval.h"
#include "encoder/imageset.h"

typedef struct {
    me_eval_result_t dir[2];                           /* 0: text → image, 1: image → text */
    me_eval_row_t style[2][ME_IMAGESET_MAX_STYLES];    /* at the largest budget */
    me_eval_row_t chance[2], ridge[2];
    double ridge_lambda[2];
    size_t queries[2], docs[2];
    double images_per_s;                               /* document-side image encoding */
    double seconds;
} me_eval_images_t;

/* Queries from o->split (dev or test); the baseline re-reads the images at
 * full size from the set's folder for its features. */
int me_eval_images_run(me_embedder_t *e, const me_imageset_t *s, const me_eval_opts_t *o, me_eval_images_t *out,
                       char *err, size_t errcap);

#endif
