/* `metaembed train` as a library call: load the data, learn the tokenizer
 * on the train split, tokenise, build the model, run the MMR trainer with
 * progress, checkpoints and resume, and write the model file. Dev and test
 * records are never trained on. */
#ifndef ME_TRAINJOB_H
#define ME_TRAINJOB_H

#include <stdio.h>

#include "encoder/model.h"
#include "encoder/train.h"

typedef struct {
    char data[1024];           /* dataset path */
    char out[1024];            /* model file to write */
    char checkpoint[1024];     /* "" = out + ".ckpt" */
    int resume;                /* continue from the checkpoint when it exists */
    char init[1024];           /* "" = a new model; else start from this model file (its
                                  weights, tokenizer and config; fresh optimiser state) */
    long checkpoint_every;     /* steps; 0 = only at the end */
    int vocab;                 /* tokenizer vocabulary */
    int bm25_negatives;        /* text pairs: BM25-mined hard negatives (else shared paragraph / stem) */
    long max_examples;         /* 0 = every train record (smaller: tests) */
    me_model_config_t model;   /* vocab is filled from the tokenizer */
    me_train_opts_t train;
    FILE *log;                 /* progress lines (NULL: none) */
    int progress_bar;          /* draw a bar on stderr when it is a TTY */
} me_trainjob_t;

void me_trainjob_defaults(me_trainjob_t *j);
int me_trainjob_run(const me_trainjob_t *j, char *err, size_t errcap);

#endif
