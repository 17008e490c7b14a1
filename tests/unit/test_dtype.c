/* Unit tests for common/dtype: f16 conversions (scalar and array paths, bit
 * for bit), int8 quantization error, names and row conversion. */
#include <math.h>
#include <stdlib.h>

#include "common/dtype.h"
#include "tests/harness.h"

static uint32_t bits_of(float x) { uint32_t u; memcpy(&u, &x, 4); return u; }
static float float_of(uint32_t u) { float x; memcpy(&x, &u, 4); return x; }
static int f16_is_nan(uint16_t h) { return (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu); }

TEST(dtype_names) {
    ASSERT_EQ(me_dtype_from_name("f32"), ME_DTYPE_F32);
    ASSERT_EQ(me_dtype_from_name("f16"), ME_DTYPE_F16);
    ASSERT_EQ(me_dtype_from_name("int8"), ME_DTYPE_INT8);
    ASSERT_EQ(me_dtype_from_name("bf16"), 0);
    ASSERT_EQ(me_dtype_from_name(NULL), 0);
    ASSERT_STREQ(me_dtype_name(ME_DTYPE_F32), "f32");
    ASSERT_STREQ(me_dtype_name(ME_DTYPE_F16), "f16");
    ASSERT_STREQ(me_dtype_name(ME_DTYPE_INT8), "int8");
    ASSERT_EQ(me_dtype_size(ME_DTYPE_F32), 4);
    ASSERT_EQ(me_dtype_size(ME_DTYPE_F16), 2);
    ASSERT_EQ(me_dtype_size(ME_DTYPE_INT8), 1);
    ASSERT_EQ(me_dtype_size((me_dtype_t)0), 0);
}

/* Every f16 survives f16 → f32 → f16 exactly, NaN stays NaN (and keeps its
 * sign), and the array path (F16C where present) matches the scalar one. */
TEST(dtype_f16_roundtrip_all_patterns) {
    static uint16_t h[65536], back[65536];
    static float f[65536];
    for (uint32_t i = 0; i < 65536; i++) h[i] = (uint16_t)i;
    me_f16_to_f32_n(f, h, 65536);
    me_f32_to_f16_n(back, f, 65536);
    for (uint32_t i = 0; i < 65536; i++) {
        float s = me_f16_to_f32(h[i]);
        if (bits_of(s) != bits_of(f[i]))
            me_test_fail(__FILE__, __LINE__, "f16 %04x: scalar %08x, array %08x", i,
                         bits_of(s), bits_of(f[i]));
        uint16_t hs = me_f32_to_f16(s);
        if (hs != back[i])
            me_test_fail(__FILE__, __LINE__, "f16 %04x: back scalar %04x, array %04x", i, hs,
                         back[i]);
        if (f16_is_nan(h[i])) {
            ASSERT_TRUE(isnan(s));
            ASSERT_TRUE(f16_is_nan(hs));
            ASSERT_EQ(hs & 0x8000u, h[i] & 0x8000u);
        } else if (hs != h[i]) {
            me_test_fail(__FILE__, __LINE__, "f16 %04x → %.9g → %04x", i, (double)s, hs);
        }
    }
}

TEST(dtype_f16_known_values) {
    ASSERT_EQ(me_f32_to_f16(0.0f), 0x0000);
    ASSERT_EQ(me_f32_to_f16(-0.0f), 0x8000);
    ASSERT_EQ(me_f32_to_f16(1.0f), 0x3c00);
    ASSERT_EQ(me_f32_to_f16(-2.0f), 0xc000);
    ASSERT_EQ(me_f32_to_f16(65504.0f), 0x7bff);        /* largest finite */
    ASSERT_EQ(me_f32_to_f16(65519.996f), 0x7bff);      /* just under the midpoint */
    ASSERT_EQ(me_f32_to_f16(65520.0f), 0x7c00);        /* midpoint → even → Inf */
    ASSERT_EQ(me_f32_to_f16(1e10f), 0x7c00);
    ASSERT_EQ(me_f32_to_f16(-1e10f), 0xfc00);
    ASSERT_EQ(me_f32_to_f16(INFINITY), 0x7c00);
    ASSERT_EQ(me_f32_to_f16(-INFINITY), 0xfc00);
    ASSERT_TRUE(f16_is_nan(me_f32_to_f16(NAN)));
    ASSERT_TRUE(f16_is_nan(me_f32_to_f16(float_of(0x7f800001u))));  /* signalling NaN */
    ASSERT_EQ(me_f32_to_f16(ldexpf(1.0f, -14)), 0x0400);  /* smallest normal */
    ASSERT_EQ(me_f32_to_f16(ldexpf(1.0f, -24)), 0x0001);  /* smallest subnormal */
    ASSERT_EQ(me_f32_to_f16(ldexpf(1.0f, -25)), 0x0000);  /* tie → even (0) */
    ASSERT_EQ(me_f32_to_f16(ldexpf(3.0f, -25)), 0x0002);  /* 1.5 ulp: tie → even (2) */
    ASSERT_EQ(me_f32_to_f16(ldexpf(1.5f, -25)), 0x0001);
    ASSERT_EQ(me_f32_to_f16(ldexpf(1.0f, -30)), 0x0000);
    ASSERT_EQ(me_f32_to_f16(1.0f + ldexpf(1.0f, -11)), 0x3c00);       /* tie → even */
    ASSERT_EQ(me_f32_to_f16(1.0f + ldexpf(3.0f, -11)), 0x3c02);       /* tie → even */
    ASSERT_EQ(me_f32_to_f16(1.0f + ldexpf(1.0f, -11) + ldexpf(1.0f, -20)), 0x3c01);
    ASSERT_EQ(me_f32_to_f16(ldexpf(1023.5f, -24)), 0x0400);  /* subnormal carries to normal */
    ASSERT_TRUE(me_f16_to_f32(0x0001) == ldexpf(1.0f, -24));
    ASSERT_TRUE(me_f16_to_f32(0x03ff) == ldexpf(1023.0f, -24));
    ASSERT_TRUE(me_f16_to_f32(0x7bff) == 65504.0f);
    ASSERT_TRUE(isinf(me_f16_to_f32(0xfc00)) && me_f16_to_f32(0xfc00) < 0);
}

/* Random f32 bit patterns: the result is a nearest f16 (ties to even), and
 * the array path agrees with the scalar one bit for bit. */
TEST(dtype_f32_to_f16_rounding) {
    enum { N = 1 << 18 };
    float *in = malloc(N * sizeof *in);
    uint16_t *out = malloc(N * sizeof *out);
    ASSERT_TRUE(in && out);
    me_rng_t rng = { 11 };
    for (int i = 0; i < N; i++) {
        uint32_t u = (uint32_t)me_rng_next(&rng);
        /* Half the draws land in and around the f16 range, where it matters. */
        if (i & 1) u = (u & 0x807fffffu) | ((uint32_t)(96 + me_rng_next(&rng) % 48) << 23);
        in[i] = float_of(u);
    }
    me_f32_to_f16_n(out, in, N);
    int bad = -1;
    for (int i = 0; i < N && bad < 0; i++)
        if (me_f32_to_f16(in[i]) != out[i]) bad = i;
    if (bad >= 0) {
        uint32_t x = bits_of(in[bad]);
        uint16_t hs = me_f32_to_f16(in[bad]), ha = out[bad];
        free(in);
        free(out);
        me_test_fail(__FILE__, __LINE__, "%08x: scalar %04x, array %04x", x, hs, ha);
    }
    for (int i = 0; i < N; i++) {
        uint16_t h = out[i];
        double x = in[i];
        if (isnan(x)) { ASSERT_TRUE(f16_is_nan(h)); continue; }
        if (fabs(x) >= 65520.0) { ASSERT_EQ(h & 0x7fffu, 0x7c00); continue; }
        /* Neighbours in magnitude: h-1 and h+1 (within the same sign). */
        double v = me_f16_to_f32(h), err = fabs(v - x);
        uint16_t mag = h & 0x7fffu;
        if (mag > 0) {
            double lo = me_f16_to_f32((uint16_t)(h - 1));
            ASSERT_TRUE(err <= fabs(lo - x));
            if (err == fabs(lo - x)) ASSERT_EQ(h & 1u, 0);
        }
        if (mag < 0x7bff) {
            double hi = me_f16_to_f32((uint16_t)(h + 1));
            ASSERT_TRUE(err <= fabs(hi - x));
            if (err == fabs(hi - x)) ASSERT_EQ(h & 1u, 0);
        }
    }
    free(in);
    free(out);
}

/* |x - scale·q| ≤ scale/2 by rounding to nearest; the bound gets a few ulps
 * of slack for the division x/scale and the product scale·q. */
TEST(dtype_int8_quantize_error) {
    me_rng_t rng = { 5 };
    float in[300], back[300];
    int8_t q[300];
    for (int trial = 0; trial < 200; trial++) {
        int n = 1 + (int)(me_rng_next(&rng) % 300);
        double amp = ldexp(1.0, (int)(me_rng_next(&rng) % 40) - 20);
        for (int i = 0; i < n; i++) in[i] = (float)(amp * me_rng_normal(&rng));
        float scale;
        me_int8_quantize(q, &scale, in, (size_t)n);
        me_int8_dequantize(back, q, scale, (size_t)n);
        float amax = 0;
        for (int i = 0; i < n; i++) amax = fmaxf(amax, fabsf(in[i]));
        ASSERT_TRUE(scale == amax / 127.0f);
        int hit127 = 0;
        for (int i = 0; i < n; i++) {
            ASSERT_TRUE(q[i] >= -127 && q[i] <= 127);
            hit127 |= q[i] == 127 || q[i] == -127;
            double err = fabs((double)in[i] - (double)back[i]);
            ASSERT_TRUE(err <= 0.5 * scale * (1.0 + 1e-5) + 1e-6 * fabs(in[i]));
        }
        ASSERT_TRUE(hit127);
    }
    float zero[7] = { 0 };
    float scale = -1;
    int8_t out[7];
    memset(out, 1, sizeof out);
    me_int8_quantize(out, &scale, zero, 7);
    ASSERT_TRUE(scale == 0.0f);
    for (int i = 0; i < 7; i++) ASSERT_EQ(out[i], 0);
}

TEST(dtype_row_to_f32) {
    float in[19], out[19];
    uint16_t h[19];
    int8_t q[19];
    me_rng_t rng = { 9 };
    for (int i = 0; i < 19; i++) in[i] = (float)me_rng_normal(&rng);
    me_row_to_f32(out, in, ME_DTYPE_F32, 1.0f, 19);
    for (int i = 0; i < 19; i++) ASSERT_TRUE(out[i] == in[i]);
    me_f32_to_f16_n(h, in, 19);
    me_row_to_f32(out, h, ME_DTYPE_F16, 1.0f, 19);
    for (int i = 0; i < 19; i++) ASSERT_TRUE(out[i] == me_f16_to_f32(h[i]));
    float scale;
    me_int8_quantize(q, &scale, in, 19);
    me_row_to_f32(out, q, ME_DTYPE_INT8, scale, 19);
    for (int i = 0; i < 19; i++) ASSERT_TRUE(out[i] == (float)q[i] * scale);
}
