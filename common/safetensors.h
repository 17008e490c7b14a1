/* safetensors files: an 8-byte little-endian header length N, N bytes of
 * JSON header, then the raw little-endian tensor data. The header maps each
 * tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
 * into the data area) and may hold "__metadata__": {string: string}.
 *
 * Reading validates everything before handing out a pointer: header length
 * within the file, the JSON, every entry (dtype F32 only, shape, offsets in
 * range, sizes matching shapes, no overlaps, no gaps, data area fully used),
 * so a corrupt or truncated file is an error with a message, never a crash.
 * Only F32 is written or read: the model keeps its weights in f32. */
#ifndef ME_SAFETENSORS_H
#define ME_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define ME_ST_MAX_DIMS 8
/* Headers above this are refused (ours are a few hundred KiB at most,
 * mostly the tokenizer). */
#define ME_ST_MAX_HEADER (64u << 20)

typedef struct {
    const char *name;
    int ndim;
    uint64_t shape[ME_ST_MAX_DIMS];
    const float *data;       /* product(shape) floats; 4-byte aligned when read */
} me_st_tensor_t;

/* Writes path atomically (path.tmp, fsync, rename). Metadata values are
 * arbitrary strings (escaped as JSON). */
int me_st_write(const char *path, const char *const *meta_keys, const char *const *meta_vals, int nmeta,
                const me_st_tensor_t *tensors, int n, char *err, size_t errcap);

typedef struct me_st_file me_st_file_t;

/* Parses an image in memory (buf must outlive the result and stay 4-byte
 * aligned for tensor reads), or maps a file. Errors: ME_ECORRUPT (bad or
 * truncated contents), ME_EIO (cannot read), ME_ENOMEM; message in err. */
int me_st_parse(const void *buf, size_t len, me_st_file_t **out, char *err, size_t errcap);
int me_st_open(const char *path, me_st_file_t **out, char *err, size_t errcap);
void me_st_close(me_st_file_t *f);

/* A metadata value, or NULL. */
const char *me_st_meta(const me_st_file_t *f, const char *key);
int me_st_count(const me_st_file_t *f);
/* Tensor by name: 0 or ME_ENOTFOUND. */
int me_st_get(const me_st_file_t *f, const char *name, me_st_tensor_t *out);

#endif
