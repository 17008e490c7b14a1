/* libFuzzer: any bytes as a .npy image (me_npy_parse) — never a crash, and
 * an accepted array's data lies inside the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    me_npy_t a;
    char err[256];
    if (me_npy_parse(&a, data, size, err, sizeof err) == 0 && a.count && a.count < (1u << 20)) {
        float *out = malloc(a.count * sizeof *out);
        if (out) me_npy_read_f32(&a, 0, (size_t)a.count, out);
        free(out);
    }
    return 0;
}
