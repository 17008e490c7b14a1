/* libFuzzer: any bytes as a safetensors file — rejected cleanly or every
 * tensor readable in bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* An 8-aligned copy, as a mapped file would be. */
    uint64_t *copy = malloc(size / 8 * 8 + 8);
    if (!copy) return 0;
    memcpy(copy, data, size);
    me_st_file_t *f;
    char err[256];
    if (me_st_parse(copy, size, &f, err, sizeof err) == 0) {
        static const char *names[] = { "wte", "alpha", "a", "" };
        volatile float sink = 0;
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            me_st_tensor_t t;
            if (me_st_get(f, names[i], &t) != 0) continue;
            uint64_t n = 1;
            for (int d = 0; d < t.ndim; d++) n *= t.shape[d];
            for (uint64_t k = 0; k < n && k < 4096; k++) sink += t.data[k];
        }
        (void)sink;
        (void)me_st_meta(f, "config");
        me_st_close(f);
    }
    free(copy);
    return 0;
}
