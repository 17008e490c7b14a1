/* The inference API: a model file (weights + tokenizer) turned into an
 * encoder of texts. me_embedder_encode maps N texts to N × R × D unit
 * vectors, R = R_q on the query side and R_c on the candidate side, coarse
 * to fine. Texts longer than the model's max_text tokens (queries: 32) are
 * truncated. One embedder per thread (it owns activation buffers). */
#ifndef ME_EMBEDDER_H
#define ME_EMBEDDER_H

#include <stddef.h>

#include "encoder/model.h"
#include "encoder/tokenizer.h"

#define ME_QUERY_TEXT_LEN 32
#define ME_EMBED_BATCH 32

typedef struct me_embedder me_embedder_t;

/* The shipped text model, relative to the repository (or to
 * PREFIX/share/metaembed): me_embedder_load finds it from any folder. */
#define ME_DEFAULT_MODEL "models/metaembed-default.safetensors"

/* Loads a model file written by `metaembed train` (encoder/weights.h). */
int me_embedder_load(const char *path, me_embedder_t **out, char *err, size_t errcap);
/* Wraps a model and tokenizer the caller keeps alive (training, tests). */
me_embedder_t *me_embedder_wrap(me_model_t *m, const me_tok_t *tok);
/* Another embedder over e's model and tokenizer with its own buffers, for
 * another thread; e must outlive it. */
me_embedder_t *me_embedder_share(const me_embedder_t *e);
void me_embedder_free(me_embedder_t *e);

const me_model_config_t *me_embedder_config(const me_embedder_t *e);
const me_tok_t *me_embedder_tokenizer(const me_embedder_t *e);
/* Vectors per text on a side (R_q or R_c). */
int me_embedder_rows(const me_embedder_t *e, me_side_t side);
/* Tokenised length cap on a side. */
int me_embedder_text_len(const me_embedder_t *e, me_side_t side);

/* out: n × rows × dim floats. lens NULL: NUL-terminated texts. */
int me_embedder_encode(me_embedder_t *e, me_side_t side, const char *const *texts, const size_t *lens, int n,
                       float *out);
/* Items with an image: images[i] (S, S, 3) floats in [-1, 1] (see
 * me_image_to_tensor, S the model's image_size) or NULL for none, and
 * texts[i] (NUL-terminated) or NULL / "" for none; an image comes before
 * its text in the sequence. ME_EINVAL when the model reads text only. */
int me_embedder_encode_items(me_embedder_t *e, me_side_t side, const float *const *images,
                             const char *const *texts, int n, float *out);
/* The same from encoded images (PNG or JPEG): bytes[i] of lens[i] bytes
 * (0: no image) before texts[i] (NULL: none); each decoded and resized by
 * common/image.c. 0, or the first bad image's error (ME_EINVAL, ME_ETOOBIG)
 * with err naming it ("image 3: corrupt PNG: ..."); nothing is encoded then. */
int me_embedder_encode_image_bytes(me_embedder_t *e, me_side_t side, const uint8_t *const *bytes,
                                   const size_t *lens, const char *const *texts, int n, float *out, char *err,
                                   size_t errcap);
/* Image side S (0: a text-only model). */
int me_embedder_image_size(const me_embedder_t *e);

#endif
