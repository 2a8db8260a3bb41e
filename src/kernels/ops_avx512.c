/* kernels/ops_avx512.c — AVX-512 (F/BW/VL) versions of the elementwise ops of kernels/ops_simd.h: FP8 activation
 * simulation, BF16 packing, mHC collapse and post mixing, 16 lanes, ragged ends by masks. Bit-identical to the
 * scalar definitions (ops.c, numerics.c) on every input:
 * - E4M3 rounding of a clamped value v: |v| >= 2^-6 rounds its F32 mantissa to 3 bits (round to nearest even on
 *   the bit pattern, as dsv4_f32_to_e4m3), |v| < 2^-6 rounds to a multiple of 2^-9 by (|v| + 2^14) - 2^14 (the
 *   F32 ulp at 2^14 is 2^-9; round to nearest even); the sign is put back (so -0 stays -0); a NaN v gives the
 *   scalar code's NaN (0x7f, the positive quiet NaN 0x7fc00000, times the scale = 0x7fc00000);
 * - clamps as MIN/MAX with the constant first (a NaN operand in the second place is returned: NaN stays NaN, as
 *   the scalar comparisons leave it); the block max as MAX(|x|, m) (a NaN |x| returns m: ignored, as the scalar
 *   `if (a > m)`);
 * - BF16 rounding on the bit pattern exactly as dsv4_f32_to_bf16 (NaN: high half | 0x40);
 * - sums over the hc streams left to right in every lane, multiply and add separately rounded (no FMA).
 * Compiled with -mavx512f -mavx512bw -mavx512vl (Makefile); elsewhere this file is empty. */
#include "kernels/ops_simd.h"
#include "kernels/simd.h"
#include "kernels/simd_bf16.h"
#if defined(__x86_64__) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#include <immintrin.h>

#define I32(v) _mm512_set1_epi32((int)(v))

static inline __mmask16 tail_mask(int left) { return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u); }

/* dsv4_ftz on 16 bit patterns: exponent 0 -> the sign alone */
static inline __m512i ftz16(__m512i u) {
    __mmask16 sub = _mm512_testn_epi32_mask(u, I32(0x7f800000));
    return _mm512_mask_and_epi32(u, sub, u, I32(0x80000000u));
}

/* dsv4_e4m3_lut[dsv4_f32_to_e4m3(v)] for v in [-448, 448] (NaN lanes: don't care; the caller replaces them) */
static inline __m512 e4m3_value(__m512 v) {
    __m512i u = _mm512_castps_si512(v);
    __m512i a = _mm512_and_si512(u, I32(0x7fffffff)), sign = _mm512_and_si512(u, I32(0x80000000u));
    __m512i rn = _mm512_and_si512(
        _mm512_add_epi32(a, _mm512_add_epi32(I32(0x7ffff), _mm512_and_si512(_mm512_srli_epi32(a, 20), I32(1)))),
        I32(0xfff00000u));
    const __m512 big = _mm512_set1_ps(16384.0f);
    __m512 rs = _mm512_sub_ps(_mm512_add_ps(_mm512_castsi512_ps(a), big), big);
    __mmask16 sub = _mm512_cmplt_epu32_mask(a, I32(0x3c800000));   /* |v| < 2^-6: E4M3 subnormal range */
    __m512i r = _mm512_mask_mov_epi32(rn, sub, _mm512_castps_si512(rs));
    return _mm512_castsi512_ps(_mm512_or_si512(r, sign));
}

void dsv4_fp8_sim_avx512(float *dst, const float *src, int n, int block) {
    const __m512 hi = _mm512_set1_ps(448.0f), lo = _mm512_set1_ps(-448.0f);
    const __m512 qnan = _mm512_castsi512_ps(I32(0x7fc00000));
    for (int b0 = 0; b0 < n; b0 += block) {
        int m = n - b0 < block ? n - b0 : block;
        const float *x = src + b0;
        float *y = dst + b0;
        __m512 mx = _mm512_setzero_ps();
        for (int i = 0; i < m; i += 16)
            mx = _mm512_max_ps(_mm512_abs_ps(_mm512_maskz_loadu_ps(tail_mask(m - i), x + i)), mx);
        int k = dsv4_fp8_scale_exp(_mm512_reduce_max_ps(mx));
        const __m512 s = _mm512_set1_ps(dsv4_pow2_biased(k)), inv = _mm512_set1_ps(dsv4_pow2_biased(254 - k));
        for (int i = 0; i < m; i += 16) {
            __mmask16 t = tail_mask(m - i);
            __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(t, x + i), inv);
            v = _mm512_max_ps(lo, _mm512_min_ps(hi, v));
            __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
            __m512 q = _mm512_mask_mov_ps(_mm512_mul_ps(e4m3_value(v), s), nan, qnan);
            _mm512_mask_storeu_ps(y + i, t, q);
        }
    }
}

static inline __m256i pack16(const float *x, __mmask16 t) {
    return _mm512_cvtepi32_epi16(dsv4_bf16_bits16(ftz16(_mm512_castps_si512(_mm512_maskz_loadu_ps(t, x)))));
}

void dsv4_pack_bf16_avx512(uint16_t *d, const float *x, int n, int nperm, int np) {
    /* a 64-column block: qwords of the four 16-column BF16 groups; the FP8 order takes 8 columns of each group,
     * then the other 8 (simd.h: 0-7, 16-23, 32-39, 48-55, 8-15, 24-31, 40-47, 56-63) */
    const __m512i lo = _mm512_setr_epi64(0, 1, 4, 5, 8, 9, 12, 13), hi = _mm512_setr_epi64(2, 3, 6, 7, 10, 11, 14, 15);
    int c = 0;
    for (; c < nperm; c += 64) {
        __m512i A = _mm512_inserti64x4(_mm512_castsi256_si512(pack16(x + c, 0xffff)), pack16(x + c + 16, 0xffff), 1);
        __m512i B = _mm512_inserti64x4(_mm512_castsi256_si512(pack16(x + c + 32, 0xffff)), pack16(x + c + 48, 0xffff), 1);
        _mm512_storeu_si512((void *)(d + c), _mm512_permutex2var_epi64(A, lo, B));
        _mm512_storeu_si512((void *)(d + c + 32), _mm512_permutex2var_epi64(A, hi, B));
    }
    for (; c + 16 <= n; c += 16) _mm256_storeu_si256((__m256i *)(d + c), pack16(x + c, 0xffff));
    if (c < n) {
        __mmask16 t = tail_mask(n - c);
        _mm512_mask_cvtepi32_storeu_epi16(d + c,  t,
            dsv4_bf16_bits16(ftz16(_mm512_castps_si512(_mm512_maskz_loadu_ps(t, x + c)))));
    }
    for (c = n; c < np; c++) d[c] = 0;
}

void dsv4_hc_collapse_avx512(float *u, const float *x, const float *p, int hc, int D) {
    for (int d = 0; d < D; d += 16) {
        __mmask16 t = tail_mask(D - d);
        __m512 a = _mm512_setzero_ps();
        for (int i = 0; i < hc; i++)
            a = _mm512_add_ps(a, _mm512_mul_ps(_mm512_set1_ps(p[i]), _mm512_maskz_loadu_ps(t, x + (size_t)i * D + d)));
        _mm512_mask_storeu_ps(u + d, t, dsv4_round_bf16x16(a));
    }
}

void dsv4_hc_post_avx512(float *x, const float *y, const float *post, const float *M, int hc, int D) {
    for (int d = 0; d < D; d += 16) {
        __mmask16 t = tail_mask(D - d);
        __m512 old[DSV4_ELEM_MAX_HC];
        for (int j = 0; j < hc; j++) old[j] = _mm512_maskz_loadu_ps(t, x + (size_t)j * D + d);
        __m512 yv = _mm512_maskz_loadu_ps(t, y + d);
        for (int k = 0; k < hc; k++) {
            __m512 a = _mm512_mul_ps(_mm512_set1_ps(post[k]), yv);
            for (int j = 0; j < hc; j++) a = _mm512_add_ps(a, _mm512_mul_ps(_mm512_set1_ps(M[j * hc + k]), old[j]));
            _mm512_mask_storeu_ps(x + (size_t)k * D + d, t, dsv4_round_bf16x16(a));
        }
    }
}

void dsv4_head_rms_bf16_avx512(float *x, int n, float eps) {
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    __m512i emax = _mm512_setzero_si512(), emin = I32(255);
    for (int i = 0; i < n; i += 16) {
        __m512 v = _mm512_maskz_loadu_ps(tail_mask(n - i), x + i);
        __m512 sq = dsv4_round_bf16x16(_mm512_mul_ps(v, v));
        __m512i b = _mm512_castps_si512(sq);
        __m512i e = _mm512_max_epi32(_mm512_and_si512(_mm512_srli_epi32(b, 23), I32(0xff)), I32(1));
        __mmask16 nz = _mm512_test_epi32_mask(b, I32(0x7fffffff));
        emax = _mm512_mask_max_epi32(emax, nz, emax, e);
        emin = _mm512_mask_min_epi32(emin, nz, emin, e);
        s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(sq)));
        s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm256_castsi256_ps(_mm512_extracti64x4_epi64(b, 1))));
    }
    int hi = _mm512_reduce_max_epi32(emax), lo = _mm512_reduce_min_epi32(emin);
    double ss = 0;
    if (hi == 255 || hi - lo > dsv4_head_rms_exact_span(n)) {   /* not provably order-free: index order */
        for (int i = 0; i < n; i++) ss += (double)dsv4_round_bf16(x[i] * x[i]);
    } else {
        ss = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
    }
    const __m512 r = _mm512_set1_ps(dsv4_head_rms_r(ss, n, eps));
    for (int i = 0; i < n; i += 16) {
        __mmask16 t = tail_mask(n - i);
        _mm512_mask_storeu_ps(x + i, t, dsv4_round_bf16x16(_mm512_mul_ps(_mm512_maskz_loadu_ps(t, x + i), r)));
    }
}
#endif
