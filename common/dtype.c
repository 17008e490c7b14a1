/* Storage dtypes: names, sizes and conversions to and from f32.
 *
 * The scalar f16 conversions are exact integer code (no dependence on the
 * FPU rounding mode or on FTZ/DAZ); the array forms use F16C when the CPU
 * has it and give bit-identical results (the unit tests check this). The
 * F16C functions carry their own target attribute so this file builds
 * without -m flags. */
#include "common/dtype.h"

#include "common/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#define ME_DTYPE_X86 1
#endif

me_dtype_t me_dtype_from_name(const char *name) {
    if (!name) return 0;
    if (strcmp(name, "f32") == 0) return ME_DTYPE_F32;
    if (strcmp(name, "f16") == 0) return ME_DTYPE_F16;
    if (strcmp(name, "int8") == 0) return ME_DTYPE_INT8;
    return 0;
}

const char *me_dtype_name(me_dtype_t dt) {
    switch (dt) {
    case ME_DTYPE_F32: return "f32";
    case ME_DTYPE_F16: return "f16";
    case ME_DTYPE_INT8: return "int8";
    }
    return "?";
}

size_t me_dtype_size(me_dtype_t dt) {
    switch (dt) {
    case ME_DTYPE_F32: return 4;
    case ME_DTYPE_F16: return 2;
    case ME_DTYPE_INT8: return 1;
    }
    return 0;
}

/* ---- scalar f16 -------------------------------------------------------- */

static uint32_t f32_bits(float x) { uint32_t u; memcpy(&u, &x, 4); return u; }
static float bits_f32(uint32_t u) { float x; memcpy(&x, &u, 4); return x; }

uint16_t me_f32_to_f16(float x) {
    uint32_t u = f32_bits(x);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    u &= 0x7fffffffu;
    if (u >= 0x7f800000u) {
        /* Inf stays Inf; a NaN keeps its top payload bits and is made quiet,
         * as VCVTPS2PH does, so the F16C path and this one agree. */
        if (u == 0x7f800000u) return sign | 0x7c00u;
        return (uint16_t)(sign | 0x7e00u | ((u >> 13) & 0x3ffu));
    }
    /* 65520 = 65504 + half an ulp: from there on RNE rounds to Inf. */
    if (u >= 0x477ff000u) return sign | 0x7c00u;
    if (u < 0x38800000u) {
        /* Below 2^-14 the result is subnormal (or zero): the value in units
         * of 2^-24 is mant · 2^(e-126), i.e. mant shifted right by 126-e.
         * 2^-25 and below round to zero (2^-25 itself is a tie → even 0). */
        if (u <= 0x33000000u) return sign;
        uint32_t e = u >> 23;
        uint32_t mant = (u & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126u - e;  /* 14..24 */
        uint32_t h = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1u);
        uint32_t half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (h & 1u))) h++;
        return (uint16_t)(sign | h);
    }
    /* Normal: rebias the exponent and round the 13 dropped bits to nearest
     * even; a carry out of the mantissa correctly bumps the exponent. */
    uint32_t h = (u - 0x38000000u + 0xfffu + ((u >> 13) & 1u)) >> 13;
    return (uint16_t)(sign | h);
}

float me_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (e == 0x1fu) {
        /* Inf, or NaN made quiet (as VCVTPH2PS does). */
        if (mant == 0) return bits_f32(sign | 0x7f800000u);
        return bits_f32(sign | 0x7fc00000u | (mant << 13));
    }
    if (e == 0) {
        if (mant == 0) return bits_f32(sign);
        /* Subnormal: normalise; every f16 subnormal is an f32 normal. */
        int shift = 0;
        while (!(mant & 0x400u)) { mant <<= 1; shift++; }
        mant &= 0x3ffu;
        return bits_f32(sign | ((uint32_t)(113 - shift) << 23) | (mant << 13));
    }
    return bits_f32(sign | ((e + 112u) << 23) | (mant << 13));
}

/* ---- array f16 --------------------------------------------------------- */

#ifdef ME_DTYPE_X86
__attribute__((target("avx2,f16c")))
static void f32_to_f16_f16c(uint16_t *out, const float *in, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT);
        _mm_storeu_si128((__m128i *)(out + i), h);
    }
    for (; i < n; i++) out[i] = me_f32_to_f16(in[i]);
}

__attribute__((target("avx2,f16c")))
static void f16_to_f32_f16c(float *out, const uint16_t *in, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(in + i))));
    for (; i < n; i++) out[i] = me_f16_to_f32(in[i]);
}

/* Cached CPU check; __builtin_cpu_supports is cheap but not free, and a
 * benign race here only repeats the same answer. */
static int have_f16c(void) {
    static int cached = -1;
    int v = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (v < 0) {
        /* F16C straight from CPUID (leaf 1, ECX): not every compiler knows
         * the name; the AVX2 check already covers OS support for YMM. */
        unsigned a, b, c, d;
        __builtin_cpu_init();
        v = __builtin_cpu_supports("avx2") && __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
        __atomic_store_n(&cached, v, __ATOMIC_RELAXED);
    }
    return v;
}
#endif

void me_f32_to_f16_n(uint16_t *out, const float *in, size_t n) {
#ifdef ME_DTYPE_X86
    if (have_f16c()) { f32_to_f16_f16c(out, in, n); return; }
#endif
    for (size_t i = 0; i < n; i++) out[i] = me_f32_to_f16(in[i]);
}

void me_f16_to_f32_n(float *out, const uint16_t *in, size_t n) {
#ifdef ME_DTYPE_X86
    if (have_f16c()) { f16_to_f32_f16c(out, in, n); return; }
#endif
    for (size_t i = 0; i < n; i++) out[i] = me_f16_to_f32(in[i]);
}

/* ---- int8 -------------------------------------------------------------- */

void me_int8_quantize(int8_t *out, float *scale, const float *in, size_t n) {
    float amax = 0.0f;
    for (size_t i = 0; i < n; i++) {
        float a = fabsf(in[i]);
        if (a > amax) amax = a;  /* NaN compares false and is skipped */
    }
    float s = amax / 127.0f;
    *scale = s;
    if (s == 0.0f || !isfinite(s)) {
        /* All-zero row, or an Inf that leaves no finite scale: zeros. */
        memset(out, 0, n);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        float v = rintf(in[i] / s);  /* round half to even, as the bound assumes */
        /* Clamp before the cast; the NaN test keeps the cast defined. */
        if (!(v == v)) v = 0.0f;
        if (v > 127.0f) v = 127.0f;
        if (v < -127.0f) v = -127.0f;
        out[i] = (int8_t)v;
    }
}

void me_int8_dequantize(float *out, const int8_t *in, float scale, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = (float)in[i] * scale;
}

void me_row_to_f32(float *out, const void *row, me_dtype_t dt, float scale, size_t n) {
    switch (dt) {
    case ME_DTYPE_F32: memcpy(out, row, n * sizeof(float)); return;
    case ME_DTYPE_F16: me_f16_to_f32_n(out, row, n); return;
    case ME_DTYPE_INT8: me_int8_dequantize(out, row, scale, n); return;
    }
    memset(out, 0, n * sizeof(float));
}

int me_rows_to_storage(me_dtype_t dt, int dim, int rows, const void *in, me_dtype_t in_dt,
                       void *out, float *scales, int *bad_row, int *bad_kind) {
    float *tmp = malloc((size_t)dim * sizeof *tmp);
    if (!tmp) return ME_ENOMEM;
    int rc = 0;
    size_t esz = me_dtype_size(dt);
    for (int r = 0; r < rows && rc == 0; r++) {
        /* memcpy-based conversion: input bytes come off the wire unaligned. */
        if (in_dt == ME_DTYPE_F32) memcpy(tmp, (const uint8_t *)in + (size_t)r * dim * 4, (size_t)dim * 4);
        else {
            const uint8_t *src = (const uint8_t *)in + (size_t)r * dim * 2;
            for (int i = 0; i < dim; i++) {
                uint16_t h;
                memcpy(&h, src + 2 * i, 2);
                tmp[i] = me_f16_to_f32(h);
            }
        }
        double norm = 0;
        for (int i = 0; i < dim; i++) {
            if (!isfinite(tmp[i])) { *bad_row = r; *bad_kind = ME_BAD_NONFINITE; rc = ME_EINVAL; break; }
            norm += (double)tmp[i] * tmp[i];
        }
        if (rc) break;
        if (!(norm > 0)) { *bad_row = r; *bad_kind = ME_BAD_ZERO_NORM; rc = ME_EINVAL; break; }
        if (!out) {
            /* Check only, with the same f16 range rule as below. */
            if (dt == ME_DTYPE_F16)
                for (int i = 0; i < dim && rc == 0; i++)
                    if ((me_f32_to_f16(tmp[i]) & 0x7c00) == 0x7c00) { *bad_row = r; *bad_kind = ME_BAD_NONFINITE; rc = ME_EINVAL; }
            continue;
        }
        uint8_t *dst = (uint8_t *)out + (size_t)r * dim * esz;
        if (dt == ME_DTYPE_F32) memcpy(dst, tmp, (size_t)dim * 4);
        else if (dt == ME_DTYPE_F16) {
            for (int i = 0; i < dim; i++) {
                uint16_t h = me_f32_to_f16(tmp[i]);
                memcpy(dst + 2 * i, &h, 2);
            }
        } else {
            me_int8_quantize((int8_t *)dst, &scales[r], tmp, (size_t)dim);
        }
        /* An f32 value beyond f16 range becomes Inf in storage: refuse it. */
        if (dt == ME_DTYPE_F16) {
            for (int i = 0; i < dim; i++) {
                uint16_t h;
                memcpy(&h, dst + 2 * i, 2);
                if ((h & 0x7c00) == 0x7c00) { *bad_row = r; *bad_kind = ME_BAD_NONFINITE; rc = ME_EINVAL; break; }
            }
        }
    }
    free(tmp);
    return rc;
}
