/* An image–text set: concepts, each with a short label (the text-to-image
 * query), a longer text (the image-to-text document: the label and its
 * tags), a split and a subgroup, and one or more images in named styles.
 * Read from JSON lines (the shape of ../shared/data/emoji/emoji.jsonl):
 *
 *   {"id": "1F913", "split": "train", "label": "nerd face",
 *    "tags": ["geek", ...], "subgroup": "face-glasses",
 *    "images": {"google": "images/google/1F913.png", ...}}
 *
 * or, for any other set, {"id", "split", "text", "image": "path"} (text is
 * then both label and document). Paths are relative to the file's folder.
 * Every image is decoded once (common/image.c) and resized to the model's
 * side; a bad line or image is an error naming the line. */
#ifndef ME_IMAGESET_H
#define ME_IMAGESET_H

#include <stddef.h>

#include "encoder/dataset.h"
#include "encoder/tokenizer.h"
#include "encoder/train.h"

#define ME_IMAGESET_MAX_STYLES 8
#define ME_IMAGESET_FILE "emoji.jsonl"

typedef struct {
    char *id, *label, *text, *subgroup;
    me_split_t split;
    int img[ME_IMAGESET_MAX_STYLES];  /* index into the set's images, -1 none */
} me_concept_t;

typedef struct {
    size_t n;
    me_concept_t *c;
    int nstyles;
    char styles[ME_IMAGESET_MAX_STYLES][32];
    int side;                /* S: pixels are (nimages, S, S, 3) in [-1, 1] */
    size_t nimages;
    float *pixels;
    int *img_concept, *img_style;
    char **img_path;         /* as written in the file (relative to dir) */
    char dir[2048];
    size_t n_split[ME_SPLIT_COUNT];
} me_imageset_t;

/* 1 when path is an image–text set: a folder holding ME_IMAGESET_FILE, or
 * a .jsonl file whose first line has a "split" and "images" or "image". */
int me_imageset_is(const char *path);
/* Loads the set at path (a folder or a .jsonl file), images at side x side
 * (0: do not decode images). */
int me_imageset_load(const char *path, int side, me_imageset_t **out, char *err, size_t errcap);
void me_imageset_free(me_imageset_t *s);

/* Training examples from the train split, both directions: for each
 * image, (label → image), (two of its tags → image), (image → text) and
 * (image → the concept's image in another style);
 * the hard negative of each is the same direction's example of another
 * concept in the same subgroup (seeded), else none. Token rows as in me_train_data_t; bufs collects
 * what the caller frees (ME_IMAGESET_TRAIN_BUFS pointers). */
#define ME_IMAGESET_TRAIN_BUFS 8
int me_imageset_train_data(const me_imageset_t *s, const me_tok_t *tok, int q_len, int d_len, uint64_t seed,
                           me_train_data_t *d, void **bufs);

#endif
