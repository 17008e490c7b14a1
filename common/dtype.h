/* Storage dtypes for vectors and the conversions between them: f32, IEEE
 * binary16 (f16) and symmetric int8 with one f32 scale per vector. */
#ifndef ME_DTYPE_H
#define ME_DTYPE_H

#include <stddef.h>
#include <stdint.h>

/* Same numbers as proto DType. */
typedef enum {
    ME_DTYPE_F32 = 1,
    ME_DTYPE_F16 = 2,
    ME_DTYPE_INT8 = 3,
} me_dtype_t;

/* "f32" | "f16" | "int8"; returns 0 (not a dtype) for anything else. */
me_dtype_t me_dtype_from_name(const char *name);
const char *me_dtype_name(me_dtype_t dt);
/* Bytes of one element (int8's scale is kept apart, per vector). */
size_t me_dtype_size(me_dtype_t dt);

/* Round to nearest even; overflow → ±Inf, NaN stays NaN. */
uint16_t me_f32_to_f16(float x);
float me_f16_to_f32(uint16_t h);
/* Array forms; use F16C when the CPU has it. */
void me_f32_to_f16_n(uint16_t *out, const float *in, size_t n);
void me_f16_to_f32_n(float *out, const uint16_t *in, size_t n);

/* scale = max|x| / 127 (0 for an all-zero row); out = round(x / scale). */
void me_int8_quantize(int8_t *out, float *scale, const float *in, size_t n);
void me_int8_dequantize(float *out, const int8_t *in, float scale, size_t n);

/* Converts one row of `n` elements from any dtype to f32. */
void me_row_to_f32(float *out, const void *row, me_dtype_t dt, float scale, size_t n);

/* Converts rows × dim input values (f32 or f16) to storage form.
 * Rejects NaN/Inf and zero-norm rows: returns ME_EINVAL, *bad_row set.
 * out == NULL checks only (the coordinator, before it routes a write). */
int me_rows_to_storage(me_dtype_t dt, int dim, int rows, const void *in, me_dtype_t in_dt,
                       void *out, float *scales, int *bad_row, int *bad_kind);
enum { ME_BAD_NONFINITE = 1, ME_BAD_ZERO_NORM = 2 };

#endif
