/* kernels/ops_avx2.c — AVX2 versions of the elementwise ops of kernels/ops_simd.h (8 lanes; the ragged end of a
 * row or block runs the scalar definition's own per-element code). The same bit-level methods as ops_avx512.c
 * (E4M3 rounding on the bit pattern / by adding 2^14, MIN/MAX with the constant first so NaN stays NaN, BF16
 * rounding as dsv4_f32_to_bf16, stream sums left to right without FMA), so every result equals the scalar one.
 * Compiled with -mavx2 -mfma (Makefile); elsewhere this file is empty. */
#include "kernels/ops_simd.h"
#include "kernels/simd.h"
#include "kernels/simd_bf16.h"
#if defined(__x86_64__) && defined(__AVX2__)
#include <immintrin.h>
#include "base/util.h"

#define I32(v) _mm256_set1_epi32((int)(v))

static inline __m256i ftz8(__m256i u) {
    __m256i sub = _mm256_cmpeq_epi32(_mm256_and_si256(u, I32(0x7f800000)), _mm256_setzero_si256());
    return _mm256_blendv_epi8(u, _mm256_and_si256(u, I32(0x80000000u)), sub);
}

/* dsv4_e4m3_lut[dsv4_f32_to_e4m3(v)] for v in [-448, 448] (NaN lanes replaced by the caller) */
static inline __m256 e4m3_value(__m256 v) {
    __m256i u = _mm256_castps_si256(v);
    __m256i a = _mm256_and_si256(u, I32(0x7fffffff)), sign = _mm256_and_si256(u, I32(0x80000000u));
    __m256i rn = _mm256_and_si256(
        _mm256_add_epi32(a, _mm256_add_epi32(I32(0x7ffff), _mm256_and_si256(_mm256_srli_epi32(a, 20), I32(1)))),
        I32(0xfff00000u));
    const __m256 big = _mm256_set1_ps(16384.0f);
    __m256 rs = _mm256_sub_ps(_mm256_add_ps(_mm256_castsi256_ps(a), big), big);
    __m256i sub = _mm256_cmpgt_epi32(I32(0x3c800000), a);   /* |v| < 2^-6 (a >= 0 as a signed word) */
    __m256i r = _mm256_blendv_epi8(rn, _mm256_castps_si256(rs), sub);
    return _mm256_castsi256_ps(_mm256_or_si256(r, sign));
}

/* the scalar definition of one element (numerics.c fp8_block), for the ragged ends */
static inline float fp8_one(float x, float inv, float s) {
    float v = x * inv;
    if (v > 448.0f) v = 448.0f;
    if (v < -448.0f) v = -448.0f;
    return dsv4_e4m3_lut[dsv4_f32_to_e4m3(v)] * s;
}

void dsv4_fp8_sim_avx2(float *dst, const float *src, int n, int block) {
    const __m256 hi = _mm256_set1_ps(448.0f), lo = _mm256_set1_ps(-448.0f);
    const __m256 qnan = _mm256_castsi256_ps(I32(0x7fc00000)), absm = _mm256_castsi256_ps(I32(0x7fffffff));
    for (int b0 = 0; b0 < n; b0 += block) {
        int m = n - b0 < block ? n - b0 : block, m8 = m & ~7;
        const float *x = src + b0;
        float *y = dst + b0;
        __m256 mx = _mm256_setzero_ps();
        for (int i = 0; i < m8; i += 8) mx = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + i), absm), mx);
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
        float amax = _mm_cvtss_f32(h);
        for (int i = m8; i < m; i++) {
            float a = x[i] < 0 ? -x[i] : x[i];
            if (a > amax) amax = a;
        }
        int k = dsv4_fp8_scale_exp(amax);
        float sf = dsv4_pow2_biased(k), invf = dsv4_pow2_biased(254 - k);
        const __m256 s = _mm256_set1_ps(sf), inv = _mm256_set1_ps(invf);
        for (int i = 0; i < m8; i += 8) {
            __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i), inv);
            v = _mm256_max_ps(lo, _mm256_min_ps(hi, v));
            __m256 nan = _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
            _mm256_storeu_ps(y + i, _mm256_blendv_ps(_mm256_mul_ps(e4m3_value(v), s), qnan, nan));
        }
        for (int i = m8; i < m; i++) y[i] = fp8_one(x[i], invf, sf);
    }
}

static inline __m256i bits8(const float *x) { return dsv4_bf16_bits8(ftz8(_mm256_castps_si256(_mm256_loadu_ps(x)))); }
/* 16 BF16 values: x[0..8) then z[0..8) */
static inline void store16(uint16_t *d, const float *x, const float *z) {
    __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(bits8(x), bits8(z)), 0xd8);
    _mm256_storeu_si256((__m256i *)d, p);
}

void dsv4_pack_bf16_avx2(uint16_t *d, const float *x, int n, int nperm, int np) {
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

void dsv4_hc_collapse_avx2(float *u, const float *x, const float *p, int hc, int D) {
    int D8 = D & ~7;
    for (int d = 0; d < D8; d += 8) {
        __m256 a = _mm256_setzero_ps();
        for (int i = 0; i < hc; i++)
            a = _mm256_add_ps(a, _mm256_mul_ps(_mm256_set1_ps(p[i]), _mm256_loadu_ps(x + (size_t)i * D + d)));
        _mm256_storeu_ps(u + d, dsv4_round_bf16x8(a));
    }
    for (int d = D8; d < D; d++) {
        float a = 0;
        for (int i = 0; i < hc; i++) a += p[i] * x[(size_t)i * D + d];
        u[d] = dsv4_round_bf16(a);
    }
}

void dsv4_hc_post_avx2(float *x, const float *y, const float *post, const float *M, int hc, int D) {
    int D8 = D & ~7;
    for (int d = 0; d < D8; d += 8) {
        __m256 old[DSV4_ELEM_MAX_HC];
        for (int j = 0; j < hc; j++) old[j] = _mm256_loadu_ps(x + (size_t)j * D + d);
        __m256 yv = _mm256_loadu_ps(y + d);
        for (int k = 0; k < hc; k++) {
            __m256 a = _mm256_mul_ps(_mm256_set1_ps(post[k]), yv);
            for (int j = 0; j < hc; j++) a = _mm256_add_ps(a, _mm256_mul_ps(_mm256_set1_ps(M[j * hc + k]), old[j]));
            _mm256_storeu_ps(x + (size_t)k * D + d, dsv4_round_bf16x8(a));
        }
    }
    float old[DSV4_ELEM_MAX_HC];
    for (int d = D8; d < D; d++) {
        for (int j = 0; j < hc; j++) old[j] = x[(size_t)j * D + d];
        for (int k = 0; k < hc; k++) {
            float a = post[k] * y[d];
            for (int j = 0; j < hc; j++) a += M[j * hc + k] * old[j];
            x[(size_t)k * D + d] = dsv4_round_bf16(a);
        }
    }
}

void dsv4_head_rms_bf16_avx2(float *x, int n, float eps) {
    int n8 = n & ~7;
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    __m256i emax = _mm256_setzero_si256(), emin = I32(255);
    for (int i = 0; i < n8; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 sq = dsv4_round_bf16x8(_mm256_mul_ps(v, v));
        __m256i b = _mm256_castps_si256(sq);
        __m256i e = _mm256_max_epi32(_mm256_and_si256(_mm256_srli_epi32(b, 23), I32(0xff)), I32(1));
        __m256i z = _mm256_cmpeq_epi32(_mm256_and_si256(b, I32(0x7fffffff)), _mm256_setzero_si256());
        emax = _mm256_max_epi32(emax, _mm256_andnot_si256(z, e));                  /* zeros: 0, no effect */
        emin = _mm256_min_epi32(emin, _mm256_or_si256(_mm256_and_si256(z, I32(255)), _mm256_andnot_si256(z, e)));
        s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(sq)));
        s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(sq, 1)));
    }
    int hi = 0, lo = 255;
    int32_t eh[8], el[8];
    _mm256_storeu_si256((__m256i *)eh, emax);
    _mm256_storeu_si256((__m256i *)el, emin);
    for (int k = 0; k < 8; k++) { if (eh[k] > hi) hi = eh[k]; if (el[k] < lo) lo = el[k]; }
    double tail = 0;
    for (int i = n8; i < n; i++) {
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
        double d[4];
        _mm256_storeu_pd(d, _mm256_add_pd(s0, s1));
        ss = ((d[0] + d[1]) + (d[2] + d[3])) + tail;
    }
    const float rf = dsv4_head_rms_r(ss, n, eps);
    const __m256 r = _mm256_set1_ps(rf);
    for (int i = 0; i < n8; i += 8) _mm256_storeu_ps(x + i, dsv4_round_bf16x8(_mm256_mul_ps(_mm256_loadu_ps(x + i), r)));
    for (int i = n8; i < n; i++) x[i] = dsv4_round_bf16(x[i] * rf);
}
#endif
