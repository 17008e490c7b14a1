/* libFuzzer, structure-aware (tests/fuzz/proto_mutator.h: hostile field
 * values in well-formed requests, and byte mutation): a request frame to the encoder node's handlers
 * (Encode on either side, Health, Stats) over a small random model with a
 * tokenizer learned from a few texts: the reply always carries a status,
 * and an Encode answers with unit vectors of the declared shape. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "encoder/model.h"
#include "encoder/ops.h"
#include "encoder/service.h"
#include "tests/fuzz/proto_mutator.h"

static me_encoder_t g_enc;
static me_embedder_t *g_worker;

static void encoder_handle(const uint8_t *frame, size_t n, me_reply_t *rep) {
    uint64_t rid;
    me_encoder_handle(&g_enc, g_worker, frame, n, &rid, rep);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    fuzz_init_seeds(argc, argv);
    me_model_config_t cfg = { .vocab = 300, .max_text = 16, .layers = 1, .width = 16, .heads = 2, .dim = 8,
                              .meta_q = 2, .meta_c = 3 };
    me_model_t *m = me_model_new(&cfg);
    if (!m) abort();
    me_model_init(m, 5);
    static const char *texts[] = { "a text editor for programmers", "library for parsing JSON", "fonts" };
    me_tok_t *tok;
    char err[256];
    if (me_tok_train(texts, NULL, 3, 300, &tok, err, sizeof err) != 0) abort();
    me_config_defaults(me_encoder_options, &g_enc.opts, err, sizeof err);
    g_enc.opts.max_batch = 16;
    me_metrics_init(&g_enc.metrics);
    g_enc.base = me_embedder_wrap(m, tok);  /* the model and tokenizer live as long as the process */
    me_ops_set_threads(1);
    g_worker = me_encoder_worker(&g_enc);
    if (!g_enc.base || !g_worker) abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    me_reply_t rep;
    fuzz_handle_checked(encoder_handle, data, size, &rep);
    Metaembed__Envelope *env = metaembed__envelope__unpack(NULL, size, data);
    int encode = env && env->method == METAEMBED__METHOD__METHOD_ENCODE;
    if (env) metaembed__envelope__free_unpacked(env, NULL);
    if (encode && rep.status == ME_CODE_OK && rep.payload_len) {
        Metaembed__EncodeReply *er = metaembed__encode_reply__unpack(NULL, rep.payload_len, rep.payload);
        if (er && er->vectors) {
            const Metaembed__Tensor *t = er->vectors;
            if (t->n_shape != 3 || t->data.len != (size_t)t->shape[0] * t->shape[1] * t->shape[2] * 4) abort();
            const float *v = (const float *)t->data.data;
            for (size_t r = 0; r < (size_t)t->shape[0] * t->shape[1]; r++) {
                double n2 = 0;
                for (uint32_t k = 0; k < t->shape[2]; k++) n2 += (double)v[r * t->shape[2] + k] * v[r * t->shape[2] + k];
                if (fabs(n2 - 1.0) > 1e-3) abort();
            }
        }
        if (er) metaembed__encode_reply__free_unpacked(er, NULL);
    }
    me_reply_clear(&rep);
    return 0;
}
