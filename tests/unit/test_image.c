/* The image module: known PNG and JPEG bytes decode to known pixels (alpha
 * on white), the resize averages areas, and every kind of bad image gets
 * its own error without a crash or a leak (ASan). JPEGs are written here
 * with libjpeg so their pixels are known. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h> /* after stdio.h: it needs FILE and size_t */

#include "common/error.h"
#include "common/image.h"
#include "tests/harness.h"

/* 2 x 2 RGBA, built byte by byte (zlib + CRCs): opaque red, blue at alpha
 * 128, transparent black, opaque (10, 200, 30). */
static const uint8_t small_png[] = {
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00,
    0x00, 0x02, 0x00, 0x00, 0x00, 0x02, 0x08, 0x06, 0x00, 0x00, 0x00, 0x72, 0xb6, 0x0d, 0x24, 0x00, 0x00, 0x00,
    0x15, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0x00, 0x42, 0x0d, 0x0c, 0x20, 0xc0, 0x75,
    0x42, 0xee, 0x3f, 0x00, 0x32, 0xa3, 0x05, 0x6d, 0x2f, 0xe1, 0x96, 0xdf, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
};

/* A valid PNG header declaring 60000 x 60000 RGBA (14 GB decoded) with a
 * 10-byte image stream: a decompression bomb. */
static const uint8_t bomb_png[] = {
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00,
    0xea, 0x60, 0x00, 0x00, 0xea, 0x60, 0x08, 0x06, 0x00, 0x00, 0x00, 0x80, 0xd2, 0x75, 0x42, 0x00, 0x00, 0x00,
    0x0b, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x60, 0x80, 0x01, 0x00, 0x00, 0x0a, 0x00, 0x01, 0x7f, 0x80,
    0x74, 0x5e, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
};

static const uint8_t *px(const me_image_t *im, int x, int y) { return im->rgb + ((size_t)y * im->w + x) * 3; }

TEST(image_png_decodes_to_known_pixels_on_white) {
    me_image_t im;
    char err[256];
    ASSERT_STREQ(me_image_format(small_png, sizeof small_png), "png");
    ASSERT_OK(me_image_decode(small_png, sizeof small_png, &im, err, sizeof err));
    ASSERT_EQ(im.w, 2);
    ASSERT_EQ(im.h, 2);
    const uint8_t *red = px(&im, 0, 0), *half = px(&im, 1, 0), *clear = px(&im, 0, 1), *green = px(&im, 1, 1);
    ASSERT_EQ(red[0], 255); ASSERT_EQ(red[1], 0); ASSERT_EQ(red[2], 0);
    ASSERT_EQ(clear[0], 255); ASSERT_EQ(clear[1], 255); ASSERT_EQ(clear[2], 255);  /* transparent → white */
    ASSERT_EQ(green[0], 10); ASSERT_EQ(green[1], 200); ASSERT_EQ(green[2], 30);
    /* Half-transparent blue over white: blue stays full, red and green are
     * lifted half-way (libpng composites in linear light, so above 127). */
    ASSERT_EQ(half[2], 255);
    ASSERT_EQ(half[0], half[1]);
    ASSERT_TRUE(half[0] > 120 && half[0] < 230);
    me_image_free(&im);
}

/* A w x h JPEG of one colour, written with libjpeg at quality 95. */
static uint8_t *solid_jpeg(int w, int h, const uint8_t rgb[3], unsigned long *len) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    unsigned char *out = NULL;
    jpeg_mem_dest(&c, &out, len);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 95, TRUE);
    jpeg_start_compress(&c, TRUE);
    uint8_t *row = malloc((size_t)w * 3);
    for (int x = 0; x < w; x++) memcpy(row + x * 3, rgb, 3);
    while (c.next_scanline < c.image_height) {
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    free(row);
    return out;
}

TEST(image_jpeg_decodes_to_known_pixels) {
    const uint8_t colour[3] = { 200, 30, 60 };
    unsigned long len = 0;
    uint8_t *jpg = solid_jpeg(24, 16, colour, &len);
    me_image_t im;
    char err[256];
    ASSERT_STREQ(me_image_format(jpg, len), "jpeg");
    ASSERT_OK(me_image_decode(jpg, len, &im, err, sizeof err));
    ASSERT_EQ(im.w, 24);
    ASSERT_EQ(im.h, 16);
    for (int y = 0; y < im.h; y += 5)
        for (int x = 0; x < im.w; x += 7)
            for (int k = 0; k < 3; k++) ASSERT_NEAR(px(&im, x, y)[k], colour[k], 4);
    me_image_free(&im);
    /* Truncated: libjpeg would fill the rest with grey and warn; that is
     * an error here. */
    int rc = me_image_decode(jpg, len / 2, &im, err, sizeof err);
    ASSERT_EQ(rc, ME_EINVAL);
    ASSERT_TRUE(strstr(err, "JPEG") != NULL);
    ASSERT_TRUE(im.rgb == NULL);
    free(jpg);
}

TEST(image_bad_inputs_get_their_errors) {
    me_image_t im;
    char err[256];
    /* empty */
    ASSERT_EQ(me_image_decode(small_png, 0, &im, err, sizeof err), ME_EINVAL);
    ASSERT_TRUE(strstr(err, "empty") != NULL);
    /* not an image */
    const char *text = "{\"id\": \"not an image\"}";
    ASSERT_EQ(me_image_decode(text, strlen(text), &im, err, sizeof err), ME_EINVAL);
    ASSERT_TRUE(strstr(err, "not a PNG or JPEG") != NULL);
    /* truncated PNG: the signature and header, no image data */
    ASSERT_EQ(me_image_decode(small_png, 40, &im, err, sizeof err), ME_EINVAL);
    ASSERT_TRUE(strstr(err, "PNG") != NULL);
    /* corrupt PNG: one byte of the image stream flipped (its CRC fails) */
    uint8_t bad[sizeof small_png];
    memcpy(bad, small_png, sizeof bad);
    bad[45] ^= 0x40;
    ASSERT_EQ(me_image_decode(bad, sizeof bad, &im, err, sizeof err), ME_EINVAL);
    /* a bomb: refused from its header, before any pixel buffer */
    ASSERT_EQ(me_image_decode(bomb_png, sizeof bomb_png, &im, err, sizeof err), ME_ETOOBIG);
    ASSERT_TRUE(strstr(err, "60000 x 60000") != NULL);
    /* too many bytes */
    ASSERT_EQ(me_image_decode(small_png, (size_t)ME_IMAGE_MAX_BYTES + 1, &im, err, sizeof err), ME_ETOOBIG);
    /* a JPEG signature and nothing after it */
    const uint8_t soi[] = { 0xFF, 0xD8, 0xFF, 0xE0, 0x00 };
    ASSERT_EQ(me_image_decode(soi, sizeof soi, &im, err, sizeof err), ME_EINVAL);
    /* a missing file names itself */
    ASSERT_TRUE(me_image_load("/nonexistent/x.png", &im, err, sizeof err) != 0);
    ASSERT_TRUE(strstr(err, "/nonexistent/x.png") != NULL);
    ASSERT_TRUE(im.rgb == NULL);
}

TEST(image_resize_averages_areas_and_pads_white) {
    /* 4 x 2: left half black, right half white → padded to 4 x 4 with
     * white above and below, then 2 x 2: the top-left output averages one
     * white row and one black row (127.5), the top-right is white. */
    uint8_t rgb[4 * 2 * 3];
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 4; x++) memset(rgb + (y * 4 + x) * 3, x < 2 ? 0 : 255, 3);
    me_image_t im = { 4, 2, rgb };
    float t[2 * 2 * 3];
    ASSERT_OK(me_image_to_tensor(&im, 2, t));
    ASSERT_NEAR(t[0], 0.0, 1e-6);            /* (127.5 / 127.5) - 1 */
    ASSERT_NEAR(t[3], 1.0, 1e-6);            /* white */
    ASSERT_NEAR(t[(2 + 0) * 3], 0.0, 1e-6);  /* bottom-left: black row + white padding */
    me_image_t small;
    ASSERT_OK(me_image_resize(&im, 2, &small));
    ASSERT_EQ(small.rgb[0], 128);
    ASSERT_EQ(small.rgb[3], 255);
    /* Round trip through the PNG encoder keeps the pixels exactly. */
    uint8_t *png = NULL;
    size_t len = 0;
    char err[256];
    ASSERT_OK(me_image_encode_png(&small, &png, &len, err, sizeof err));
    me_image_t back;
    ASSERT_OK(me_image_decode(png, len, &back, err, sizeof err));
    ASSERT_EQ(back.w, 2);
    ASSERT_TRUE(memcmp(back.rgb, small.rgb, 12) == 0);
    me_image_free(&back);
    me_image_free(&small);
    free(png);
}

TEST(image_emoji_file_decodes_with_white_corners) {
    const char *path = "../shared/data/emoji/images/google/1F913.png";
    me_image_t im;
    char err[512];
    if (me_image_load(path, &im, err, sizeof err) != 0) {
        ASSERT_TRUE(strstr(err, "cannot open") != NULL);  /* only a missing data folder may skip */
        return;
    }
    ASSERT_EQ(im.w, 64);
    ASSERT_EQ(im.h, 64);
    const uint8_t *corner = px(&im, 0, 0);
    ASSERT_EQ(corner[0], 255); ASSERT_EQ(corner[1], 255); ASSERT_EQ(corner[2], 255);
    /* the face itself is not white */
    const uint8_t *mid = px(&im, 32, 20);
    ASSERT_TRUE(mid[0] < 250 || mid[1] < 250 || mid[2] < 250);
    me_image_free(&im);
}
