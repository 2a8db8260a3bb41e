/* kernels/numerics.c — number formats (FP8 E4M3fn, E8M0, FP4 E2M1) and the quantization simulations
 * of docs/architecture.md §2.3, §3.3, §3.4 and the Hadamard rotation of §3.5. Scalar C11, no allocation.
 */
#include "kernels/kernels.h"
#include "kernels/ops_simd.h"
#include "base/util.h"

#include <math.h>
#include <string.h>

/* All 256 E4M3fn code points (bias 7, subnormal step 2^-9, S.1111.111 = NaN). Exact dyadic literals. */
const float dsv4_e4m3_lut[256] = {
    0.0f, 0.001953125f, 0.00390625f, 0.005859375f, 0.0078125f, 0.009765625f, 0.01171875f, 0.013671875f,
    0.015625f, 0.017578125f, 0.01953125f, 0.021484375f, 0.0234375f, 0.025390625f, 0.02734375f, 0.029296875f,
    0.03125f, 0.03515625f, 0.0390625f, 0.04296875f, 0.046875f, 0.05078125f, 0.0546875f, 0.05859375f,
    0.0625f, 0.0703125f, 0.078125f, 0.0859375f, 0.09375f, 0.1015625f, 0.109375f, 0.1171875f,
    0.125f, 0.140625f, 0.15625f, 0.171875f, 0.1875f, 0.203125f, 0.21875f, 0.234375f,
    0.25f, 0.28125f, 0.3125f, 0.34375f, 0.375f, 0.40625f, 0.4375f, 0.46875f,
    0.5f, 0.5625f, 0.625f, 0.6875f, 0.75f, 0.8125f, 0.875f, 0.9375f,
    1.0f, 1.125f, 1.25f, 1.375f, 1.5f, 1.625f, 1.75f, 1.875f,
    2.0f, 2.25f, 2.5f, 2.75f, 3.0f, 3.25f, 3.5f, 3.75f,
    4.0f, 4.5f, 5.0f, 5.5f, 6.0f, 6.5f, 7.0f, 7.5f,
    8.0f, 9.0f, 10.0f, 11.0f, 12.0f, 13.0f, 14.0f, 15.0f,
    16.0f, 18.0f, 20.0f, 22.0f, 24.0f, 26.0f, 28.0f, 30.0f,
    32.0f, 36.0f, 40.0f, 44.0f, 48.0f, 52.0f, 56.0f, 60.0f,
    64.0f, 72.0f, 80.0f, 88.0f, 96.0f, 104.0f, 112.0f, 120.0f,
    128.0f, 144.0f, 160.0f, 176.0f, 192.0f, 208.0f, 224.0f, 240.0f,
    256.0f, 288.0f, 320.0f, 352.0f, 384.0f, 416.0f, 448.0f, NAN,
    -0.0f, -0.001953125f, -0.00390625f, -0.005859375f, -0.0078125f, -0.009765625f, -0.01171875f, -0.013671875f,
    -0.015625f, -0.017578125f, -0.01953125f, -0.021484375f, -0.0234375f, -0.025390625f, -0.02734375f, -0.029296875f,
    -0.03125f, -0.03515625f, -0.0390625f, -0.04296875f, -0.046875f, -0.05078125f, -0.0546875f, -0.05859375f,
    -0.0625f, -0.0703125f, -0.078125f, -0.0859375f, -0.09375f, -0.1015625f, -0.109375f, -0.1171875f,
    -0.125f, -0.140625f, -0.15625f, -0.171875f, -0.1875f, -0.203125f, -0.21875f, -0.234375f,
    -0.25f, -0.28125f, -0.3125f, -0.34375f, -0.375f, -0.40625f, -0.4375f, -0.46875f,
    -0.5f, -0.5625f, -0.625f, -0.6875f, -0.75f, -0.8125f, -0.875f, -0.9375f,
    -1.0f, -1.125f, -1.25f, -1.375f, -1.5f, -1.625f, -1.75f, -1.875f,
    -2.0f, -2.25f, -2.5f, -2.75f, -3.0f, -3.25f, -3.5f, -3.75f,
    -4.0f, -4.5f, -5.0f, -5.5f, -6.0f, -6.5f, -7.0f, -7.5f,
    -8.0f, -9.0f, -10.0f, -11.0f, -12.0f, -13.0f, -14.0f, -15.0f,
    -16.0f, -18.0f, -20.0f, -22.0f, -24.0f, -26.0f, -28.0f, -30.0f,
    -32.0f, -36.0f, -40.0f, -44.0f, -48.0f, -52.0f, -56.0f, -60.0f,
    -64.0f, -72.0f, -80.0f, -88.0f, -96.0f, -104.0f, -112.0f, -120.0f,
    -128.0f, -144.0f, -160.0f, -176.0f, -192.0f, -208.0f, -224.0f, -240.0f,
    -256.0f, -288.0f, -320.0f, -352.0f, -384.0f, -416.0f, -448.0f, -NAN,
};

/* The 16 E2M1 code points (§2.3). */
const float dsv4_e2m1_lut[16] = {
    0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f,
    -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f,
};

static inline uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

float dsv4_e4m3_to_f32(uint8_t b) { return dsv4_e4m3_lut[b]; }

uint8_t dsv4_f32_to_e4m3(float x) {
    uint32_t u = f2u(x);
    uint8_t sign = (uint8_t)((u >> 24) & 0x80u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return 0x7f;                     /* NaN */
    if (a > f2u(448.0f)) return (uint8_t)(sign | 0x7e);   /* saturate (incl. inf) */
    if (a < f2u(0x1p-6f)) {
        /* subnormal range: q = rne(|x| * 2^9) in 0..8 (8 = smallest normal, code 0x08) */
        float s = u2f(a) * 512.0f;                        /* exact: power-of-two scaling */
        uint32_t q = (uint32_t)s;                         /* floor */
        float frac = s - (float)q;                        /* exact */
        if (frac > 0.5f || (frac == 0.5f && (q & 1u))) q++;
        return (uint8_t)(sign | q);
    }
    /* normal: round the f32 mantissa to 3 bits (RNE), rebias exponent 127 -> 7 */
    uint32_t r = a + 0x7ffffu + ((a >> 20) & 1u);
    uint32_t code = (r >> 20) - (120u << 3);
    if (code > 0x7eu) code = 0x7eu;
    return (uint8_t)(sign | code);
}

float dsv4_e8m0_to_f32(uint8_t b) {
    if (b == 255) return NAN;
    if (b == 0) return 0x1p-127f;
    return u2f((uint32_t)b << 23);
}

float dsv4_e2m1_to_f32(uint8_t code) { return dsv4_e2m1_lut[code & 15]; }

float dsv4_round_e4m3(float x) { return dsv4_e4m3_lut[dsv4_f32_to_e4m3(x)]; }

float dsv4_round_e2m1(float x) {
    if (x != x) return x;
    float a = fabsf(x), q;
    /* midpoints; ties go to the even code (0, 1, 2, 4 / 0.5, 1.5, 3, 6 are odd codes) */
    if (a <= 0.25f) q = 0.0f;
    else if (a < 0.75f) q = 0.5f;
    else if (a <= 1.25f) q = 1.0f;
    else if (a < 1.75f) q = 1.5f;
    else if (a <= 2.5f) q = 2.0f;
    else if (a < 3.5f) q = 3.0f;
    else if (a <= 5.0f) q = 4.0f;
    else q = 6.0f;
    return copysignf(q, x);                              /* keeps -0 for small negatives */
}

/* UE8M0 power-of-two scale ceil-rounded from the F32 value v (> 0, normal): 2^(e + (mantissa != 0)).
 * Returns the biased exponent k of the scale (scale = 2^(k-127)). §3.3 "fast_round_scale". */
static inline int ue8m0_ceil_exp(float v) {
    uint32_t u = f2u(v);
    int e = (int)((u >> 23) & 0xffu);
    if (u & 0x7fffffu) e++;
    return e;
}

/* 2^(k-127) for a biased exponent k in [1, 254]. */
static inline float pow2_biased(int k) { return u2f((uint32_t)k << 23); }

static float block_amax(const float *x, int n) {
    float m = 0.0f;
    for (int i = 0; i < n; i++) {
        float a = fabsf(x[i]);
        if (a > m) m = a;
    }
    return m;
}

/* One §3.3 block: returns the scale, writes unscaled E4M3 values to q (q may alias x). */
static float fp8_block(const float *x, int n, float *q) {
    int k = dsv4_fp8_scale_exp(block_amax(x, n));        /* kernels/ops_simd.h: one definition for every path */
    float scale = pow2_biased(k);
    float inv = pow2_biased(254 - k);                     /* 1/scale, exact (k in ~[105, 247]) */
    for (int i = 0; i < n; i++) {
        float v = x[i] * inv;                             /* exact unless subnormal (then = x/scale rounded) */
        if (v > 448.0f) v = 448.0f;
        if (v < -448.0f) v = -448.0f;
        q[i] = dsv4_e4m3_lut[dsv4_f32_to_e4m3(v)];
    }
    return scale;
}

/* The scalar definition of dsv4_fp8_sim (ops_simd.h: the SIMD paths equal it bit for bit); dst may equal src. */
void dsv4_fp8_sim_scalar(float *dst, const float *src, int n, int block) {
    for (int b0 = 0; b0 < n; b0 += block) {
        int m = n - b0 < block ? n - b0 : block;
        float s = fp8_block(src + b0, m, dst + b0);
        for (int i = 0; i < m; i++) dst[b0 + i] *= s;
    }
}

void dsv4_fp8_sim(float *x, int n, int block) { dsv4_elem()->fp8_sim(x, x, n, block); }

void dsv4_fp8_quant(const float *x, int n, int block, float *q, float *scales) {
    for (int b0 = 0, bi = 0; b0 < n; b0 += block, bi++) {
        int m = n - b0 < block ? n - b0 : block;
        scales[bi] = fp8_block(x + b0, m, q + b0);
    }
}

void dsv4_fp8_encode(float *x, int n, int block, uint8_t *codes, uint8_t *scales) {
    for (int b0 = 0, bi = 0; b0 < n; b0 += block, bi++) {
        int m = n - b0 < block ? n - b0 : block;
        float s = fp8_block(x + b0, m, x + b0);
        uint32_t u; memcpy(&u, &s, 4);
        scales[bi] = (uint8_t)(u >> 23);                  /* s = 2^(k-127), k in [1, 254]: a normal float */
        for (int i = 0; i < m; i++) {
            codes[b0 + i] = dsv4_f32_to_e4m3(x[b0 + i]);  /* x holds an E4M3 value: exact */
            x[b0 + i] *= s;
        }
    }
}

void dsv4_fp4_encode(float *x, int n, int block, uint8_t *packed, uint8_t *scales) {
    static const float mag[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
    memset(packed, 0, (size_t)(n + 1) / 2);
    for (int b0 = 0, bi = 0; b0 < n; b0 += block, bi++) {
        int m = n - b0 < block ? n - b0 : block;
        float a = block_amax(x + b0, m);
        if (!(a >= 6.0f * 0x1p-126f)) a = 6.0f * 0x1p-126f;
        int k = ue8m0_ceil_exp(a * (float)(1.0 / 6.0));   /* as dsv4_fp4_sim */
        if (k > 254) k = 254;
        float scale = pow2_biased(k);
        scales[bi] = (uint8_t)k;
        for (int i = 0; i < m; i++) {
            float v = x[b0 + i] / scale;
            if (v > 6.0f) v = 6.0f;
            if (v < -6.0f) v = -6.0f;
            float e = dsv4_round_e2m1(v);
            int c = 0;
            while (c < 7 && mag[c] != fabsf(e)) c++;
            if (signbit(e)) c |= 8;
            packed[(b0 + i) / 2] |= (uint8_t)(c << (((b0 + i) & 1) * 4));
            x[b0 + i] = dsv4_round_bf16(e * scale);
        }
    }
}

void dsv4_fp4_sim(float *x, int n, int block) {
    for (int b0 = 0; b0 < n; b0 += block) {
        int m = n - b0 < block ? n - b0 : block;
        float a = block_amax(x + b0, m);
        if (!(a >= 6.0f * 0x1p-126f)) a = 6.0f * 0x1p-126f;
        int k = ue8m0_ceil_exp(a * (float)(1.0 / 6.0));   /* official kernel: amax * fl32(1/6) */
        if (k > 254) k = 254;                             /* amax = inf */
        float scale = pow2_biased(k);
        for (int i = 0; i < m; i++) {
            float v = x[b0 + i] / scale;                  /* exact division by a power of two */
            if (v > 6.0f) v = 6.0f;
            if (v < -6.0f) v = -6.0f;
            x[b0 + i] = dsv4_round_bf16(dsv4_round_e2m1(v) * scale);
        }
    }
}

void dsv4_hadamard(float *x, int m) {
    for (int h = 1; h < m; h *= 2)
        for (int i = 0; i < m; i += 2 * h)
            for (int j = i; j < i + h; j++) {
                float a = x[j], b = x[j + h];
                x[j] = a + b;
                x[j + h] = a - b;
            }
    float s = (float)(1.0 / sqrt((double)m));
    for (int i = 0; i < m; i++) x[i] = dsv4_round_bf16(x[i] * s);
}
