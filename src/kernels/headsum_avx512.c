/* kernels/headsum_avx512.c — AVX-512 dsv4_relu_wsum_bf16 (headsum.h), 16 lanes, the ragged end by a mask.
 * Compiled with the AVX-512 flags (Makefile); elsewhere it is the scalar definition under this name. */
#include "kernels/headsum.h"
#include "kernels/simd_bf16.h"
#if defined(__x86_64__) && defined(__AVX512F__)
#include <immintrin.h>

void dsv4_relu_wsum_bf16_avx512(float *acc, const float *d, float w, int n) {
    const __m512 zero = _mm512_setzero_ps(), vw = _mm512_set1_ps(w);
    for (int i = 0; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1u);
        __m512 x = _mm512_maskz_loadu_ps(k, d + i);
        x = _mm512_max_ps(zero, x);                       /* the second operand on NaN and on +-0: the scalar relu */
        __m512 r = dsv4_round_bf16x16(_mm512_mul_ps(x, vw));
        __m512 a = _mm512_maskz_loadu_ps(k, acc + i);
        _mm512_mask_storeu_ps(acc + i, k, _mm512_add_ps(a, r));
    }
}

/* 128 outputs in 8 registers across all keys, then 16 at a time (the last by a mask); mul then add per key as
 * dsv4_axpy_bf16_avx512 (its scalar tail computes the same IEEE operations). In the 128-output blocks each 64-byte
 * load of 32 BF16 values gives the even elements (shifted up) and the odd ones (masked) as F32 without a widening
 * shuffle; the accumulators hold even / odd halves, split from acc and merged back by two permutes per 32 outputs. */
void dsv4_pv_bf16_avx512(float *acc, const float *p, int pstride, const uint16_t *const *v, int nk, int n) {
    int i0 = 0;
    const __m512i ev = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0),
                  od = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1),
                  lo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0),
                  hi = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8),
                  himask = _mm512_set1_epi32((int)0xffff0000u);
    for (; i0 + 128 <= n; i0 += 128) {
        __m512 e[4], o[4];
        for (int b = 0; b < 4; b++) {
            __m512 x0 = _mm512_loadu_ps(acc + i0 + 32 * b), x1 = _mm512_loadu_ps(acc + i0 + 32 * b + 16);
            e[b] = _mm512_permutex2var_ps(x0, ev, x1);
            o[b] = _mm512_permutex2var_ps(x0, od, x1);
        }
        __m512 e0 = e[0], e1 = e[1], e2 = e[2], e3 = e[3], o0 = o[0], o1 = o[1], o2 = o[2], o3 = o[3];
        for (int j = 0; j < nk; j++) {
            const __m512 pj = _mm512_set1_ps(p[(size_t)j * pstride]);
            const uint16_t *x = v[j] + i0;
            __m512i w0 = _mm512_loadu_si512(x), w1 = _mm512_loadu_si512(x + 32), w2 = _mm512_loadu_si512(x + 64),
                    w3 = _mm512_loadu_si512(x + 96);
            e0 = _mm512_add_ps(e0, _mm512_mul_ps(pj, _mm512_castsi512_ps(_mm512_slli_epi32(w0, 16))));
            o0 = _mm512_add_ps(o0, _mm512_mul_ps(pj, _mm512_castsi512_ps(_mm512_and_si512(w0, himask))));
            e1 = _mm512_add_ps(e1, _mm512_mul_ps(pj, _mm512_castsi512_ps(_mm512_slli_epi32(w1, 16))));
            o1 = _mm512_add_ps(o1, _mm512_mul_ps(pj, _mm512_castsi512_ps(_mm512_and_si512(w1, himask))));
            e2 = _mm512_add_ps(e2, _mm512_mul_ps(pj, _mm512_castsi512_ps(_mm512_slli_epi32(w2, 16))));
            o2 = _mm512_add_ps(o2, _mm512_mul_ps(pj, _mm512_castsi512_ps(_mm512_and_si512(w2, himask))));
            e3 = _mm512_add_ps(e3, _mm512_mul_ps(pj, _mm512_castsi512_ps(_mm512_slli_epi32(w3, 16))));
            o3 = _mm512_add_ps(o3, _mm512_mul_ps(pj, _mm512_castsi512_ps(_mm512_and_si512(w3, himask))));
        }
        e[0] = e0; e[1] = e1; e[2] = e2; e[3] = e3; o[0] = o0; o[1] = o1; o[2] = o2; o[3] = o3;
        for (int b = 0; b < 4; b++) {
            _mm512_storeu_ps(acc + i0 + 32 * b, _mm512_permutex2var_ps(e[b], lo, o[b]));
            _mm512_storeu_ps(acc + i0 + 32 * b + 16, _mm512_permutex2var_ps(e[b], hi, o[b]));
        }
    }
    for (; i0 < n; i0 += 16) {
        const __mmask16 k = n - i0 >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i0)) - 1u);
        __m512 a = _mm512_maskz_loadu_ps(k, acc + i0);
        for (int j = 0; j < nk; j++) {
            __m512 x = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(k, v[j] + i0)), 16));
            a = _mm512_add_ps(a, _mm512_mul_ps(_mm512_set1_ps(p[(size_t)j * pstride]), x));
        }
        _mm512_mask_storeu_ps(acc + i0, k, a);
    }
}

/* MAX(d, 0) with d first: a NaN d and -0 give the second operand, +0, as the scalar `d > 0 ? d : 0` */
void dsv4_relu_wsum_f32_avx512(float *acc, const float *d, float w, int n) {
    const __m512 zero = _mm512_setzero_ps(), vw = _mm512_set1_ps(w);
    for (int i = 0; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1u);
        __m512 x = _mm512_max_ps(_mm512_maskz_loadu_ps(k, d + i), zero);
        _mm512_mask_storeu_ps(acc + i, k, _mm512_add_ps(_mm512_maskz_loadu_ps(k, acc + i), _mm512_mul_ps(vw, x)));
    }
}
#else
void dsv4_relu_wsum_f32_avx512(float *acc, const float *d, float w, int n) { dsv4_relu_wsum_f32_scalar(acc, d, w, n); }
void dsv4_pv_bf16_avx512(float *acc, const float *p, int pstride, const uint16_t *const *v, int nk, int n) {
    dsv4_pv_bf16_path(0, acc, p, pstride, v, nk, n);
}
void dsv4_relu_wsum_bf16_avx512(float *acc, const float *d, float w, int n) { dsv4_relu_wsum_bf16_scalar(acc, d, w, n); }
#endif
