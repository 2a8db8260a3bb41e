/* kernels/ops_neon.c — AArch64 Advanced SIMD versions of the elementwise ops of kernels/ops_simd.h (4 lanes; the
 * ragged end of a row or block runs the scalar definition's own per-element code). The bit-level methods of
 * ops_avx2.c carried over (E4M3 rounding on the bit pattern / by adding 2^14, BF16 rounding as dsv4_f32_to_bf16,
 * stream sums left to right with separate multiplies and adds), with two NEON differences handled explicitly:
 * FMAX/FMIN propagate NaN (and FMAXNM turns a signalling NaN into NaN), so the block maximum zeroes NaN lanes
 * before taking it, as the scalar `a > amax` skips them; and no FMLA anywhere (a*b + c is two roundings, as in
 * the scalar C built with -ffp-contract=off). Every result equals the scalar one bit for bit (tests/test_kernels.c,
 * run under qemu-aarch64 in CI). Baseline on aarch64, no flag; elsewhere this file is empty. */
#include "kernels/ops_simd.h"
#include "kernels/simd.h"
#if defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>
#include "base/util.h"

#define U32(v) vdupq_n_u32((uint32_t)(v))

static inline uint32x4_t ftz4(uint32x4_t u) {
    uint32x4_t sub = vceqq_u32(vandq_u32(u, U32(0x7f800000)), U32(0));
    return vbslq_u32(sub, vandq_u32(u, U32(0x80000000u)), u);
}

/* dsv4_f32_to_bf16 on 4 bit patterns; the BF16 bits in the low half of each lane */
static inline uint32x4_t bf16_bits(uint32x4_t u) {
    uint32x4_t nan = vcgtq_u32(vandq_u32(u, U32(0x7fffffff)), U32(0x7f800000));
    uint32x4_t hi = vshrq_n_u32(u, 16);
    uint32x4_t r = vshrq_n_u32(vaddq_u32(u, vaddq_u32(U32(0x7fff), vandq_u32(hi, U32(1)))), 16);
    return vbslq_u32(nan, vorrq_u32(hi, U32(0x40)), r);
}

static inline float32x4_t round_bf16(float32x4_t v) {
    return vreinterpretq_f32_u32(vshlq_n_u32(bf16_bits(vreinterpretq_u32_f32(v)), 16));
}

/* dsv4_e4m3_lut[dsv4_f32_to_e4m3(v)] for v in [-448, 448] (NaN lanes replaced by the caller) */
static inline float32x4_t e4m3_value(float32x4_t v) {
    uint32x4_t u = vreinterpretq_u32_f32(v);
    uint32x4_t a = vandq_u32(u, U32(0x7fffffff)), sign = vandq_u32(u, U32(0x80000000u));
    uint32x4_t rn = vandq_u32(vaddq_u32(a, vaddq_u32(U32(0x7ffff), vandq_u32(vshrq_n_u32(a, 20), U32(1)))),
                              U32(0xfff00000u));
    const float32x4_t big = vdupq_n_f32(16384.0f);
    float32x4_t rs = vsubq_f32(vaddq_f32(vreinterpretq_f32_u32(a), big), big);
    uint32x4_t sub = vcltq_u32(a, U32(0x3c800000));   /* |v| < 2^-6 */
    return vreinterpretq_f32_u32(vorrq_u32(vbslq_u32(sub, vreinterpretq_u32_f32(rs), rn), sign));
}

/* the scalar definition of one element (numerics.c fp8_block), for the ragged ends */
static inline float fp8_one(float x, float inv, float s) {
    float v = x * inv;
    if (v > 448.0f) v = 448.0f;
    if (v < -448.0f) v = -448.0f;
    return dsv4_e4m3_lut[dsv4_f32_to_e4m3(v)] * s;
}

void dsv4_fp8_sim_neon(float *dst, const float *src, int n, int block) {
    const float32x4_t hi = vdupq_n_f32(448.0f), lo = vdupq_n_f32(-448.0f);
    const uint32x4_t qnan = U32(0x7fc00000);
    for (int b0 = 0; b0 < n; b0 += block) {
        int m = n - b0 < block ? n - b0 : block, m4 = m & ~3;
        const float *x = src + b0;
        float *y = dst + b0;
        float32x4_t mx = vdupq_n_f32(0);
        for (int i = 0; i < m4; i += 4) {
            float32x4_t v = vld1q_f32(x + i);
            uint32x4_t num = vceqq_f32(v, v);   /* NaN lanes: 0, skipped as in the scalar max */
            mx = vmaxq_f32(mx, vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(vabsq_f32(v)), num)));
        }
        float amax = vmaxvq_f32(mx);
        for (int i = m4; i < m; i++) {
            float a = x[i] < 0 ? -x[i] : x[i];
            if (a > amax) amax = a;
        }
        int k = dsv4_fp8_scale_exp(amax);
        float sf = dsv4_pow2_biased(k), invf = dsv4_pow2_biased(254 - k);
        const float32x4_t s = vdupq_n_f32(sf), inv = vdupq_n_f32(invf);
        for (int i = 0; i < m4; i += 4) {
            float32x4_t v = vmulq_f32(vld1q_f32(x + i), inv);
            uint32x4_t num = vceqq_f32(v, v);
            v = vmaxq_f32(lo, vminq_f32(hi, v));
            float32x4_t r = vmulq_f32(e4m3_value(v), s);
            vst1q_f32(y + i, vreinterpretq_f32_u32(vbslq_u32(num, vreinterpretq_u32_f32(r), qnan)));
        }
        for (int i = m4; i < m; i++) y[i] = fp8_one(x[i], invf, sf);
    }
}

static inline uint16x4_t bits4(const float *x) {
    return vmovn_u32(bf16_bits(ftz4(vreinterpretq_u32_f32(vld1q_f32(x)))));
}
/* 16 BF16 values: x[0..8) then z[0..8) */
static inline void store16(uint16_t *d, const float *x, const float *z) {
    vst1q_u16(d, vcombine_u16(bits4(x), bits4(x + 4)));
    vst1q_u16(d + 8, vcombine_u16(bits4(z), bits4(z + 4)));
}

void dsv4_pack_bf16_neon(uint16_t *d, const float *x, int n, int nperm, int np) {
    int c = 0;
    for (; c < nperm; c += 64) {   /* FP8 order: 0-7, 16-23, 32-39, 48-55, 8-15, 24-31, 40-47, 56-63 */
        const float *b = x + c;
        store16(d + c, b, b + 16);
        store16(d + c + 16, b + 32, b + 48);
        store16(d + c + 32, b + 8, b + 24);
        store16(d + c + 48, b + 40, b + 56);
    }
    for (; c + 16 <= n; c += 16) store16(d + c, x + c, x + c + 8);
    for (; c < n; c++) d[c] = dsv4_f32_to_bf16(dsv4_ftz(x[c]));
    for (c = n; c < np; c++) d[c] = 0;
}

void dsv4_hc_collapse_neon(float *u, const float *x, const float *p, int hc, int D) {
    int D4 = D & ~3;
    for (int d = 0; d < D4; d += 4) {
        float32x4_t a = vdupq_n_f32(0);
        for (int i = 0; i < hc; i++) a = vaddq_f32(a, vmulq_n_f32(vld1q_f32(x + (size_t)i * D + d), p[i]));
        vst1q_f32(u + d, round_bf16(a));
    }
    for (int d = D4; d < D; d++) {
        float a = 0;
        for (int i = 0; i < hc; i++) a += p[i] * x[(size_t)i * D + d];
        u[d] = dsv4_round_bf16(a);
    }
}

void dsv4_hc_post_neon(float *x, const float *y, const float *post, const float *M, int hc, int D) {
    int D4 = D & ~3;
    for (int d = 0; d < D4; d += 4) {
        float32x4_t old[DSV4_ELEM_MAX_HC];
        for (int j = 0; j < hc; j++) old[j] = vld1q_f32(x + (size_t)j * D + d);
        float32x4_t yv = vld1q_f32(y + d);
        for (int k = 0; k < hc; k++) {
            float32x4_t a = vmulq_n_f32(yv, post[k]);
            for (int j = 0; j < hc; j++) a = vaddq_f32(a, vmulq_n_f32(old[j], M[j * hc + k]));
            vst1q_f32(x + (size_t)k * D + d, round_bf16(a));
        }
    }
    float old[DSV4_ELEM_MAX_HC];
    for (int d = D4; d < D; d++) {
        for (int j = 0; j < hc; j++) old[j] = x[(size_t)j * D + d];
        for (int k = 0; k < hc; k++) {
            float a = post[k] * y[d];
            for (int j = 0; j < hc; j++) a += M[j * hc + k] * old[j];
            x[(size_t)k * D + d] = dsv4_round_bf16(a);
        }
    }
}

void dsv4_head_rms_bf16_neon(float *x, int n, float eps) {
    int n4 = n & ~3;
    float64x2_t s0 = vdupq_n_f64(0), s1 = vdupq_n_f64(0);
    uint32x4_t emax = U32(0), emin = U32(255);
    for (int i = 0; i < n4; i += 4) {
        float32x4_t v = vld1q_f32(x + i);
        float32x4_t sq = round_bf16(vmulq_f32(v, v));
        uint32x4_t b = vreinterpretq_u32_f32(sq);
        uint32x4_t e = vmaxq_u32(vandq_u32(vshrq_n_u32(b, 23), U32(0xff)), U32(1));
        uint32x4_t z = vceqq_u32(vandq_u32(b, U32(0x7fffffff)), U32(0));
        emax = vmaxq_u32(emax, vbicq_u32(e, z));              /* zeros: 0, no effect */
        emin = vminq_u32(emin, vbslq_u32(z, U32(255), e));
        s0 = vaddq_f64(s0, vcvt_f64_f32(vget_low_f32(sq)));
        s1 = vaddq_f64(s1, vcvt_high_f64_f32(sq));
    }
    int hi = (int)vmaxvq_u32(emax), lo = (int)vminvq_u32(emin);
    double tail = 0;
    for (int i = n4; i < n; i++) {
        float t = dsv4_round_bf16(x[i] * x[i]);
        uint32_t b = dsv4_f2u_(t);
        int e = (int)((b >> 23) & 0xffu);
        if (e < 1) e = 1;
        if (b & 0x7fffffffu) { if (e > hi) hi = e; if (e < lo) lo = e; }
        tail += (double)t;
    }
    double ss = 0;
    if (hi == 255 || hi - lo > dsv4_head_rms_exact_span(n)) {   /* not provably order-free: index order */
        for (int i = 0; i < n; i++) ss += (double)dsv4_round_bf16(x[i] * x[i]);
    } else {
        float64x2_t t = vaddq_f64(s0, s1);
        ss = (vgetq_lane_f64(t, 0) + vgetq_lane_f64(t, 1)) + tail;
    }
    const float rf = dsv4_head_rms_r(ss, n, eps);
    for (int i = 0; i < n4; i += 4) vst1q_f32(x + i, round_bf16(vmulq_n_f32(vld1q_f32(x + i), rf)));
    for (int i = n4; i < n; i++) x[i] = dsv4_round_bf16(x[i] * rf);
}
#endif
