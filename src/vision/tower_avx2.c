/* vision/tower_avx2.c — the softmax exp of the vision tower on AVX2, 8 lanes (vision/tower_simd.h). Built with -mavx2
 * and -ffp-contract=off (Makefile): the same F32 operations as tower.c softmax_exp, in the same order, no FMA. */
#include "vision/tower_simd.h"

#if defined(__x86_64__) && defined(__AVX2__)
#include <immintrin.h>

static inline __m256 vexp8(__m256 x) {
    const __m256 magic = _mm256_set1_ps(12582912.0f);
    __m256 ok = _mm256_cmp_ps(x, _mm256_set1_ps(-86.0f), _CMP_GE_OQ);
    __m256 k = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269502f)), magic), magic);
    __m256 r = _mm256_sub_ps(_mm256_sub_ps(x, _mm256_mul_ps(k, _mm256_set1_ps(0.693145752f))),
                             _mm256_mul_ps(k, _mm256_set1_ps(1.42860677e-06f)));
    __m256 p = _mm256_set1_ps(1.38888892e-03f);
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(8.33333377e-03f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(4.16666679e-02f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.66666672e-01f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(0.5f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(k), _mm256_set1_epi32(127)), 23);
    return _mm256_and_ps(ok, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

void dsv4_vt_exp_avx2(float *y, const float *x, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, vexp8(_mm256_loadu_ps(x + i)));
    if (i < n) {
        float a[8] = {0}, b[8];
        for (int j = i; j < n; j++) a[j - i] = x[j];
        _mm256_storeu_ps(b, vexp8(_mm256_loadu_ps(a)));
        for (int j = i; j < n; j++) y[j] = b[j - i];
    }
}
#else
typedef int dsv4_vt_avx2_unused;   /* not an x86-64 AVX2 build: nothing here */
#endif
