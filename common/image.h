/* Images in: PNG and JPEG, decoded by libpng and libjpeg-turbo (the only
 * code that includes png.h or jpeglib.h), checked against the limits below
 * before any pixel buffer is allocated (a 100-byte file may declare a
 * 60000 x 60000 image: a decompression bomb), alpha composited on white,
 * and resized to the model's resolution. Every failure says what was
 * wrong with the image, in words, and loses nothing else. */
#ifndef ME_IMAGE_H
#define ME_IMAGE_H

#include <stddef.h>
#include <stdint.h>

/* Largest encoded image accepted, in bytes. */
#define ME_IMAGE_MAX_BYTES (8u << 20)
/* Largest declared side and area: 4096 x 4096 RGB is 48 MiB decoded. */
#define ME_IMAGE_MAX_SIDE 4096
#define ME_IMAGE_MAX_PIXELS (4096u * 4096u)
/* Largest side of the thumbnail stored with an image document. */
#define ME_IMAGE_THUMB_SIDE 32

/* 8-bit RGB, row-major, no padding; rgb is malloc'd. */
typedef struct {
    int w, h;
    uint8_t *rgb;
} me_image_t;

/* What the bytes look like: "png", "jpeg", or NULL (neither). */
const char *me_image_format(const void *bytes, size_t len);
/* Decodes a PNG or JPEG (told by its signature) to RGB on white. 0, or
 * ME_EINVAL (empty, not PNG or JPEG, corrupt, truncated) or ME_ETOOBIG
 * (over ME_IMAGE_MAX_BYTES, or a declared size over the side or area
 * limits), with err saying which; *out is then empty. */
int me_image_decode(const void *bytes, size_t len, me_image_t *out, char *err, size_t cap);
/* Reads an image file's bytes (malloc'd), refusing one over
 * ME_IMAGE_MAX_BYTES; err names the file. 0, ME_EIO or ME_ETOOBIG. */
int me_image_read_file(const char *path, uint8_t **bytes, size_t *len, char *err, size_t cap);
/* Reads path (at most ME_IMAGE_MAX_BYTES) and decodes it; err names the
 * file. */
int me_image_load(const char *path, me_image_t *out, char *err, size_t cap);
void me_image_free(me_image_t *img);

/* Resizes to side x side by area averaging (each output pixel the mean of
 * the source pixels it covers), after padding the shorter side with white
 * so the image keeps its aspect. out is side*side*3 floats in [-1, 1],
 * row-major, channels last. 0 or ME_ENOMEM. */
int me_image_to_tensor(const me_image_t *img, int side, float *out);
/* The same resize, as an 8-bit RGB image (for thumbnails). */
int me_image_resize(const me_image_t *img, int side, me_image_t *out);

/* Encodes img as a PNG in a malloc'd buffer. 0, or ME_EIO with err. */
int me_image_encode_png(const me_image_t *img, uint8_t **png, size_t *len, char *err, size_t cap);
/* A thumbnail of img (ME_IMAGE_THUMB_SIDE square, white-padded) as a
 * "data:image/png;base64,..." URI (malloc'd, NUL-terminated), the form a
 * web page shows without another request; NULL when out of memory. */
char *me_image_thumbnail_uri(const me_image_t *img);

#endif
