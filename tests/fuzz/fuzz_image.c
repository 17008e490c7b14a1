/* libFuzzer: any bytes as an image (me_image_decode, then the resize the
 * encoder runs) — never a crash or a leak, an accepted image has its
 * declared size within the limits, and a refused one leaves nothing. */
#include <stdint.h>
#include <stdlib.h>

#include "common/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    me_image_t im;
    char err[256];
    if (me_image_decode(data, size, &im, err, sizeof err) != 0) {
        if (im.rgb) abort();
        return 0;
    }
    if (im.w < 1 || im.h < 1 || im.w > ME_IMAGE_MAX_SIDE || im.h > ME_IMAGE_MAX_SIDE) abort();
    float t[16 * 16 * 3];
    me_image_to_tensor(&im, 16, t);
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (!(t[i] >= -1.0f && t[i] <= 1.0f)) abort();
    me_image_free(&im);
    return 0;
}
