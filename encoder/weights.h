/* The model file: safetensors (common/safetensors.h) with the model's
 * config and the tokenizer in "__metadata__" and one F32 tensor per
 * parameter (names from me_model_param_names). A training checkpoint adds
 * the AdamW moments as "adam.m.<name>" / "adam.v.<name>" and whatever
 * metadata the trainer needs to resume (step, data order, ...). */
#ifndef ME_WEIGHTS_H
#define ME_WEIGHTS_H

#include <stddef.h>

#include "encoder/model.h"

#define ME_WEIGHTS_FORMAT "metaembed-encoder-1"

/* Writes path atomically. tokenizer: the tokenizer's serialisation (may be
 * NULL); with_opt: also the AdamW moments; extra key/value metadata. */
int me_weights_save(me_model_t *m, const char *path, const char *tokenizer, int with_opt,
                    const char *const *keys, const char *const *vals, int nkeys, char *err, size_t errcap);

/* Loads a model file, checking the format, the config and every tensor's
 * shape. *tokenizer (malloc'd, may be NULL) and vals[i] (malloc'd or NULL
 * when absent) are the caller's to free. with_opt: also restore the AdamW
 * moments (ME_ENOTFOUND if the file has none). A bad file is ME_ECORRUPT
 * with the reason in err, never a crash. */
int me_weights_load(const char *path, int with_opt, me_model_t **out, char **tokenizer,
                    const char *const *keys, char **vals, int nkeys, char *err, size_t errcap);

/* The config as JSON text (malloc'd) and back. */
char *me_model_config_json(const me_model_config_t *c);
int me_model_config_parse(const char *json, me_model_config_t *c, char *err, size_t errcap);

#endif
