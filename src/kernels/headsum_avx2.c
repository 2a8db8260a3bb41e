/* kernels/headsum_avx2.c — AVX2 dsv4_relu_wsum_bf16 (headsum.h), 8 lanes, the ragged end on the scalar code.
 * Compiled with -mavx2 -mfma (Makefile; no FMA is used); elsewhere it is the scalar definition under this name. */
#include "kernels/headsum.h"
#include "kernels/simd_bf16.h"
#if defined(__x86_64__) && defined(__AVX2__)
#include <immintrin.h>
#include <string.h>

void dsv4_relu_wsum_bf16_avx2(float *acc, const float *d, float w, int n) {
    const __m256 zero = _mm256_setzero_ps(), vw = _mm256_set1_ps(w);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_max_ps(zero, _mm256_loadu_ps(d + i));   /* the second operand on NaN and on +-0 */
        __m256 r = dsv4_round_bf16x8(_mm256_mul_ps(x, vw));
        _mm256_storeu_ps(acc + i, _mm256_add_ps(_mm256_loadu_ps(acc + i), r));
    }
    dsv4_relu_wsum_bf16_scalar(acc + i, d + i, w, n - i);
}

static inline __m256 bf16x8(const uint16_t *v) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)v)), 16));
}

/* 64 outputs in 8 registers across all keys, then 8 at a time, then the scalar axpy arithmetic (mul then add per
 * key, as dsv4_axpy_bf16_avx2) */
void dsv4_pv_bf16_avx2(float *acc, const float *p, int pstride, const uint16_t *const *v, int nk, int n) {
    int i0 = 0;
    for (; i0 + 64 <= n; i0 += 64) {
        __m256 a0 = _mm256_loadu_ps(acc + i0), a1 = _mm256_loadu_ps(acc + i0 + 8), a2 = _mm256_loadu_ps(acc + i0 + 16),
               a3 = _mm256_loadu_ps(acc + i0 + 24), a4 = _mm256_loadu_ps(acc + i0 + 32),
               a5 = _mm256_loadu_ps(acc + i0 + 40), a6 = _mm256_loadu_ps(acc + i0 + 48),
               a7 = _mm256_loadu_ps(acc + i0 + 56);
        for (int j = 0; j < nk; j++) {
            const __m256 pj = _mm256_set1_ps(p[(size_t)j * pstride]);
            const uint16_t *x = v[j] + i0;
            a0 = _mm256_add_ps(a0, _mm256_mul_ps(pj, bf16x8(x)));
            a1 = _mm256_add_ps(a1, _mm256_mul_ps(pj, bf16x8(x + 8)));
            a2 = _mm256_add_ps(a2, _mm256_mul_ps(pj, bf16x8(x + 16)));
            a3 = _mm256_add_ps(a3, _mm256_mul_ps(pj, bf16x8(x + 24)));
            a4 = _mm256_add_ps(a4, _mm256_mul_ps(pj, bf16x8(x + 32)));
            a5 = _mm256_add_ps(a5, _mm256_mul_ps(pj, bf16x8(x + 40)));
            a6 = _mm256_add_ps(a6, _mm256_mul_ps(pj, bf16x8(x + 48)));
            a7 = _mm256_add_ps(a7, _mm256_mul_ps(pj, bf16x8(x + 56)));
        }
        _mm256_storeu_ps(acc + i0, a0); _mm256_storeu_ps(acc + i0 + 8, a1); _mm256_storeu_ps(acc + i0 + 16, a2);
        _mm256_storeu_ps(acc + i0 + 24, a3); _mm256_storeu_ps(acc + i0 + 32, a4); _mm256_storeu_ps(acc + i0 + 40, a5);
        _mm256_storeu_ps(acc + i0 + 48, a6); _mm256_storeu_ps(acc + i0 + 56, a7);
    }
    for (; i0 + 8 <= n; i0 += 8) {
        __m256 a = _mm256_loadu_ps(acc + i0);
        for (int j = 0; j < nk; j++) a = _mm256_add_ps(a, _mm256_mul_ps(_mm256_set1_ps(p[(size_t)j * pstride]), bf16x8(v[j] + i0)));
        _mm256_storeu_ps(acc + i0, a);
    }
    for (; i0 < n; i0++)
        for (int j = 0; j < nk; j++) {
            uint32_t u = (uint32_t)v[j][i0] << 16;
            float x;
            memcpy(&x, &u, 4);
            acc[i0] += p[(size_t)j * pstride] * x;
        }
}

/* MAX(d, 0) with d first: a NaN d and -0 give the second operand, +0, as the scalar `d > 0 ? d : 0` */
void dsv4_relu_wsum_f32_avx2(float *acc, const float *d, float w, int n) {
    const __m256 zero = _mm256_setzero_ps(), vw = _mm256_set1_ps(w);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_max_ps(_mm256_loadu_ps(d + i), zero);
        _mm256_storeu_ps(acc + i, _mm256_add_ps(_mm256_loadu_ps(acc + i), _mm256_mul_ps(vw, x)));
    }
    dsv4_relu_wsum_f32_scalar(acc + i, d + i, w, n - i);
}
#else
void dsv4_relu_wsum_f32_avx2(float *acc, const float *d, float w, int n) { dsv4_relu_wsum_f32_scalar(acc, d, w, n); }
void dsv4_pv_bf16_avx2(float *acc, const float *p, int pstride, const uint16_t *const *v, int nk, int n) {
    dsv4_pv_bf16_path(0, acc, p, pstride, v, nk, n);
}
void dsv4_relu_wsum_bf16_avx2(float *acc, const float *d, float w, int n) { dsv4_relu_wsum_bf16_scalar(acc, d, w, n); }
#endif

