#include "common/image.h"

#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* jpeglib.h needs stdio.h's FILE and size_t first. */
#include <jpeglib.h>

#include "common/error.h"

const char *me_image_format(const void *bytes, size_t len) {
    const uint8_t *b = bytes;
    if (len >= 8 && png_sig_cmp(b, 0, 8) == 0) return "png";
    if (len >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return "jpeg";
    return NULL;
}

/* The declared size, checked before a pixel buffer exists. */
static int check_size(const char *fmt, unsigned long w, unsigned long h, char *err, size_t cap) {
    if (w == 0 || h == 0) {
        me_set_err(err, cap, "%s declares an empty image (%lu x %lu)", fmt, w, h);
        return ME_EINVAL;
    }
    if (w > ME_IMAGE_MAX_SIDE || h > ME_IMAGE_MAX_SIDE || (unsigned long long)w * h > ME_IMAGE_MAX_PIXELS) {
        me_set_err(err, cap, "%s declares %lu x %lu pixels, over the limit of %d per side and %u in all; "
                   "scale it down before sending", fmt, w, h, ME_IMAGE_MAX_SIDE, ME_IMAGE_MAX_PIXELS);
        return ME_ETOOBIG;
    }
    return 0;
}

/* libpng's simplified API composites alpha onto the background given when
 * the output format has none: white, as the model was trained. */
static int decode_png(const void *bytes, size_t len, me_image_t *out, char *err, size_t cap) {
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&im, bytes, len)) {
        me_set_err(err, cap, "corrupt PNG: %s", im.message);
        png_image_free(&im);
        return ME_EINVAL;
    }
    int rc = check_size("PNG", im.width, im.height, err, cap);
    if (rc) { png_image_free(&im); return rc; }
    im.format = PNG_FORMAT_RGB;
    uint8_t *rgb = malloc(PNG_IMAGE_SIZE(im));
    if (!rgb) { png_image_free(&im); me_set_err(err, cap, "out of memory"); return ME_ENOMEM; }
    png_color white = { 255, 255, 255 };
    if (!png_image_finish_read(&im, &white, rgb, 0, NULL)) {
        me_set_err(err, cap, "corrupt or truncated PNG: %s", im.message);
        png_image_free(&im);
        free(rgb);
        return ME_EINVAL;
    }
    out->w = (int)im.width;
    out->h = (int)im.height;
    out->rgb = rgb;
    png_image_free(&im);
    return 0;
}

/* libjpeg reports errors through a callback that must not return: it
 * jumps back here. A warning (e.g. "premature end of data", after which
 * libjpeg fills the rest with grey) is an error too: a truncated file is
 * not an image of what the user meant. */
typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
} jpeg_err_t;

static void jpeg_on_error(j_common_ptr cinfo) {
    jpeg_err_t *e = (jpeg_err_t *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->message);
    longjmp(e->jump, 1);
}

static void jpeg_on_message(j_common_ptr cinfo, int level) {
    if (level < 0) jpeg_on_error(cinfo);  /* a warning: corrupt data */
}

static int decode_jpeg(const void *bytes, size_t len, me_image_t *out, char *err, size_t cap) {
    struct jpeg_decompress_struct cinfo;
    jpeg_err_t jerr;
    uint8_t *volatile rgb = NULL;
    volatile int rc = ME_EINVAL;
    cinfo.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = jpeg_on_error;
    jerr.pub.emit_message = jpeg_on_message;
    jerr.message[0] = 0;
    if (setjmp(jerr.jump)) {
        me_set_err(err, cap, "corrupt or truncated JPEG: %s", jerr.message);
        jpeg_destroy_decompress(&cinfo);
        free(rgb);
        return rc;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, bytes, (unsigned long)len);
    jpeg_read_header(&cinfo, TRUE);
    int sc = check_size("JPEG", cinfo.image_width, cinfo.image_height, err, cap);
    if (sc) {
        jpeg_destroy_decompress(&cinfo);
        return sc;
    }
    cinfo.out_color_space = JCS_RGB;  /* grey and CMYK/YCCK come out as RGB too */
    jpeg_start_decompress(&cinfo);
    if (cinfo.output_components != 3) {
        me_set_err(err, cap, "JPEG colour space not supported (%d components)", cinfo.output_components);
        jpeg_destroy_decompress(&cinfo);
        return ME_EINVAL;
    }
    size_t stride = (size_t)cinfo.output_width * 3;
    rgb = malloc(stride * cinfo.output_height);
    if (!rgb) {
        me_set_err(err, cap, "out of memory");
        jpeg_destroy_decompress(&cinfo);
        return ME_ENOMEM;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = rgb + stride * cinfo.output_scanline;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    out->w = (int)cinfo.output_width;
    out->h = (int)cinfo.output_height;
    out->rgb = rgb;
    jpeg_destroy_decompress(&cinfo);
    return 0;
}

int me_image_decode(const void *bytes, size_t len, me_image_t *out, char *err, size_t cap) {
    memset(out, 0, sizeof *out);
    if (!bytes || len == 0) {
        me_set_err(err, cap, "empty image (0 bytes)");
        return ME_EINVAL;
    }
    if (len > ME_IMAGE_MAX_BYTES) {
        me_set_err(err, cap, "image of %zu bytes is over the limit of %u bytes", len, ME_IMAGE_MAX_BYTES);
        return ME_ETOOBIG;
    }
    const char *fmt = me_image_format(bytes, len);
    if (!fmt) {
        me_set_err(err, cap, "not a PNG or JPEG image (unknown signature)");
        return ME_EINVAL;
    }
    return fmt[0] == 'p' ? decode_png(bytes, len, out, err, cap) : decode_jpeg(bytes, len, out, err, cap);
}

int me_image_read_file(const char *path, uint8_t **bytes, size_t *len, char *err, size_t cap) {
    *bytes = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        me_set_err(err, cap, "cannot open image %s: %s", path, strerror(errno));
        return ME_EIO;
    }
    uint8_t *buf = malloc(ME_IMAGE_MAX_BYTES + 1);
    if (!buf) { fclose(f); me_set_err(err, cap, "out of memory"); return ME_ENOMEM; }
    size_t n = fread(buf, 1, ME_IMAGE_MAX_BYTES + 1, f);
    int rd = ferror(f);
    fclose(f);
    if (rd || n > ME_IMAGE_MAX_BYTES) {
        free(buf);
        if (rd) me_set_err(err, cap, "cannot read image %s", path);
        else me_set_err(err, cap, "image %s is over the limit of %u bytes", path, ME_IMAGE_MAX_BYTES);
        return rd ? ME_EIO : ME_ETOOBIG;
    }
    *bytes = buf;
    *len = n;
    return 0;
}

int me_image_load(const char *path, me_image_t *out, char *err, size_t cap) {
    memset(out, 0, sizeof *out);
    uint8_t *buf;
    size_t n;
    int rc = me_image_read_file(path, &buf, &n, err, cap);
    if (rc) return rc;
    char why[256];
    if ((rc = me_image_decode(buf, n, out, why, sizeof why)) != 0) me_set_err(err, cap, "image %s: %s", path, why);
    free(buf);
    return rc;
}

void me_image_free(me_image_t *img) {
    if (!img) return;
    free(img->rgb);
    img->rgb = NULL;
    img->w = img->h = 0;
}

/* Area-averaged resize of the image padded to a white square: output pixel
 * (y, x) averages the square's source area [y*s/side, (y+1)*s/side) in each
 * axis, with fractional edge weights, so a 64-pixel emoji becomes 32 or 16
 * without aliasing. Writes floats per channel in 0..255 to acc. */
static void resize_square(const me_image_t *img, int side, float *acc) {
    int s = img->w > img->h ? img->w : img->h;
    int ox = (s - img->w) / 2, oy = (s - img->h) / 2;
    double scale = (double)s / side;
    for (int y = 0; y < side; y++) {
        double y0 = y * scale, y1 = (y + 1) * scale;
        for (int x = 0; x < side; x++) {
            double x0 = x * scale, x1 = (x + 1) * scale;
            double sum[3] = { 0, 0, 0 }, wsum = 0;
            for (int sy = (int)y0; sy < (int)(y1 + 0.999999) && sy < s; sy++) {
                double wy = (sy + 1 < y1 ? sy + 1 : y1) - (sy > y0 ? sy : y0);
                for (int sx = (int)x0; sx < (int)(x1 + 0.999999) && sx < s; sx++) {
                    double wx = (sx + 1 < x1 ? sx + 1 : x1) - (sx > x0 ? sx : x0);
                    double w = wx * wy;
                    if (w <= 0) continue;
                    int ix = sx - ox, iy = sy - oy;
                    for (int c = 0; c < 3; c++) {
                        double v = 255.0;  /* the white padding */
                        if (ix >= 0 && ix < img->w && iy >= 0 && iy < img->h)
                            v = img->rgb[((size_t)iy * img->w + ix) * 3 + c];
                        sum[c] += w * v;
                    }
                    wsum += w;
                }
            }
            for (int c = 0; c < 3; c++) acc[((size_t)y * side + x) * 3 + c] = (float)(sum[c] / wsum);
        }
    }
}

int me_image_to_tensor(const me_image_t *img, int side, float *out) {
    resize_square(img, side, out);
    for (size_t i = 0; i < (size_t)side * side * 3; i++) out[i] = out[i] / 127.5f - 1.0f;
    return 0;
}

int me_image_resize(const me_image_t *img, int side, me_image_t *out) {
    memset(out, 0, sizeof *out);
    size_t n = (size_t)side * side * 3;
    float *acc = malloc(n * sizeof *acc);
    uint8_t *rgb = malloc(n);
    if (!acc || !rgb) { free(acc); free(rgb); return ME_ENOMEM; }
    resize_square(img, side, acc);
    for (size_t i = 0; i < n; i++) rgb[i] = (uint8_t)(acc[i] + 0.5f);
    free(acc);
    out->w = out->h = side;
    out->rgb = rgb;
    return 0;
}

int me_image_encode_png(const me_image_t *img, uint8_t **png, size_t *len, char *err, size_t cap) {
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    im.width = (png_uint_32)img->w;
    im.height = (png_uint_32)img->h;
    im.format = PNG_FORMAT_RGB;
    png_alloc_size_t size = 0;
    *png = NULL;
    if (!png_image_write_to_memory(&im, NULL, &size, 0, img->rgb, 0, NULL)) {
        me_set_err(err, cap, "cannot encode PNG: %s", im.message);
        return ME_EIO;
    }
    *png = malloc(size);
    if (!*png) { me_set_err(err, cap, "out of memory"); return ME_ENOMEM; }
    if (!png_image_write_to_memory(&im, *png, &size, 0, img->rgb, 0, NULL)) {
        me_set_err(err, cap, "cannot encode PNG: %s", im.message);
        free(*png);
        *png = NULL;
        return ME_EIO;
    }
    *len = size;
    return 0;
}

/* RFC 4648 base64, for data URIs (encoding only: nothing here reads it). */
static char *base64(const uint8_t *in, size_t n, const char *prefix) {
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t plen = strlen(prefix), out_len = plen + 4 * ((n + 2) / 3);
    char *out = malloc(out_len + 1), *o = out + plen;
    if (!out) return NULL;
    memcpy(out, prefix, plen);
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
        *o++ = abc[v >> 18 & 63];
        *o++ = abc[v >> 12 & 63];
        *o++ = i + 1 < n ? abc[v >> 6 & 63] : '=';
        *o++ = i + 2 < n ? abc[v & 63] : '=';
    }
    *o = 0;
    return out;
}

char *me_image_thumbnail_uri(const me_image_t *img) {
    me_image_t th;
    if (me_image_resize(img, ME_IMAGE_THUMB_SIDE, &th) != 0) return NULL;
    uint8_t *png;
    size_t len;
    char err[128];
    char *uri = NULL;
    if (me_image_encode_png(&th, &png, &len, err, sizeof err) == 0) {
        uri = base64(png, len, "data:image/png;base64,");
        free(png);
    }
    me_image_free(&th);
    return uri;
}
