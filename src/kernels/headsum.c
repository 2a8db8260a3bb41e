/* kernels/headsum.c — dsv4_pv_bf16 and dsv4_relu_wsum_bf16: the dispatch, and the scalar definition of the head sum
 * (headsum.h; P.V on the scalar and NEON paths is the axpy sequence itself). */
#include "kernels/kernels.h"
#include "kernels/headsum.h"
#include "kernels/pool.h"
#include "base/util.h"

void dsv4_relu_wsum_bf16_scalar(float *acc, const float *d, float w, int n) {
    for (int i = 0; i < n; i++) {
        float x = d[i];
        if (x < 0) x = 0;
        acc[i] += dsv4_round_bf16(x * w);
    }
}

void dsv4_relu_wsum_bf16_path(int path, float *acc, const float *d, float w, int n) {
#if defined(__x86_64__)
    if (path == DSV4_PATH_AVX512) { dsv4_relu_wsum_bf16_avx512(acc, d, w, n); return; }
    if (path == DSV4_PATH_AVX2) { dsv4_relu_wsum_bf16_avx2(acc, d, w, n); return; }
#endif
    (void)path;
    dsv4_relu_wsum_bf16_scalar(acc, d, w, n);
}

void dsv4_relu_wsum_bf16(float *acc, const float *d, float w, int n) {
    dsv4_relu_wsum_bf16_path(dsv4_kernel_path_id(), acc, d, w, n);
}

void dsv4_pv_bf16_path(int path, float *acc, const float *p, int pstride, const uint16_t *const *v, int nk, int n) {
#if defined(__x86_64__)
    if (path == DSV4_PATH_AVX512) { dsv4_pv_bf16_avx512(acc, p, pstride, v, nk, n); return; }
    if (path == DSV4_PATH_AVX2) { dsv4_pv_bf16_avx2(acc, p, pstride, v, nk, n); return; }
#endif
    (void)path;
    for (int j = 0; j < nk; j++) dsv4_axpy_bf16(acc, p[(size_t)j * pstride], v[j], n);
}

void dsv4_pv_bf16(float *acc, const float *p, int pstride, const uint16_t *const *v, int nk, int n) {
    dsv4_pv_bf16_path(dsv4_kernel_path_id(), acc, p, pstride, v, nk, n);
}

void dsv4_relu_wsum_f32_scalar(float *acc, const float *d, float w, int n) {
    for (int i = 0; i < n; i++) acc[i] += w * (d[i] > 0 ? d[i] : 0);
}

void dsv4_relu_wsum_f32_path(int path, float *acc, const float *d, float w, int n) {
#if defined(__x86_64__)
    if (path == DSV4_PATH_AVX512) { dsv4_relu_wsum_f32_avx512(acc, d, w, n); return; }
    if (path == DSV4_PATH_AVX2) { dsv4_relu_wsum_f32_avx2(acc, d, w, n); return; }
#endif
    (void)path;
    dsv4_relu_wsum_f32_scalar(acc, d, w, n);
}

void dsv4_relu_wsum_f32(float *acc, const float *d, float w, int n) {
    dsv4_relu_wsum_f32_path(dsv4_kernel_path_id(), acc, d, w, n);
}
