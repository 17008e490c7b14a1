/* libFuzzer: the tokenizer's loader on any bytes, and encode/decode of any
 * text with a tokenizer learned once from a small corpus. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "encoder/tokenizer.h"

static me_tok_t *g_tok;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *texts[] = { "real-time strategy game of ancient warfare", "the the then there other",
                            "library for parsing json and yaml files", "0 A.D. (pronounced zero ey-dee)" };
    char err[256];
    me_tok_train(texts, NULL, 4, 400, &g_tok, err, sizeof err);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    me_tok_t *t;
    char err[256];
    if (me_tok_load((const char *)data, size, &t, err, sizeof err) == 0) me_tok_free(t);
    if (!g_tok) return 0;
    int32_t ids[512];
    int n = me_tok_encode(g_tok, (const char *)data, size, ids, 512);
    char out[8192];
    me_tok_decode(g_tok, ids, n, out, sizeof out);
    return 0;
}
