/* NumPy .npy files: read (memory-mapped, so a file of any size is paged in
 * once, never copied) and write. Format versions 1.0, 2.0 and 3.0, dtypes
 * '<f4' (float32) and '<f2' (float16), C order only, any rank.
 *
 * The data pointer may be unaligned (the header length decides the data
 * offset): read elements with memcpy or the me_npy_*_f32 helpers. */
#ifndef ME_NPY_H
#define ME_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "common/dtype.h"

#define ME_NPY_MAX_DIMS 32
/* Longer headers are refused: real ones are ~128 bytes; numpy's own reader
 * refuses above 10000 by default. */
#define ME_NPY_MAX_HEADER (1u << 20)

typedef struct {
    me_dtype_t dtype;               /* ME_DTYPE_F32 or ME_DTYPE_F16 */
    int ndim;
    uint64_t shape[ME_NPY_MAX_DIMS];
    uint64_t count;                 /* elements: product of shape (1 for rank 0) */
    int version;                    /* format major version: 1, 2 or 3 */
    size_t data_offset;             /* bytes before the data */
    const void *data;               /* count elements, little-endian, row-major */
    size_t data_bytes;              /* count * element size */
    /* private: the mapping when opened from a file */
    void *map_;
    size_t map_len_;
} me_npy_t;

/* Parses a whole .npy image held in memory (buf, len). On success a->data
 * points into buf, which must outlive a. Errors: ME_EINVAL (bad magic,
 * version, header, dtype, fortran order, shape) or ME_ECORRUPT (length does
 * not match the header), with the problem in err. */
int me_npy_parse(me_npy_t *a, const void *buf, size_t len, char *err, size_t errcap);

/* Maps path read-only and parses it; release with me_npy_close. ME_EIO when
 * the file cannot be opened or mapped, else as me_npy_parse. */
int me_npy_open(me_npy_t *a, const char *path, char *err, size_t errcap);
void me_npy_close(me_npy_t *a);

/* Writes the header (magic, version, length, dict, padding to 64 bytes) into
 * buf; returns its length, or 0 when cap is too small or the arguments are
 * bad. version: 1, 2 or 3 (0 = 1.0, which always fits our headers). */
size_t me_npy_format_header(char *buf, size_t cap, me_dtype_t dtype, const uint64_t *shape, int ndim,
                            int version);

/* Writes data (product of shape elements of dtype, C order) to path. */
int me_npy_write(const char *path, me_dtype_t dtype, const uint64_t *shape, int ndim, const void *data,
                 int version, char *err, size_t errcap);

/* Shape as text, e.g. "(300, 8, 16)", for messages. */
const char *me_npy_shape_str(const me_npy_t *a, char *buf, size_t cap);

/* Copies n elements starting at element `first` to f32 (f16 is widened). */
void me_npy_read_f32(const me_npy_t *a, uint64_t first, size_t n, float *out);

#endif
