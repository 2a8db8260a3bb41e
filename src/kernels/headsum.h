/* kernels/headsum.h — internal: two per-query attention kernels on the SIMD path in use (pool.h
 * dsv4_kernel_path_id): the P.V sum of a head (dsv4_pv_bf16) and the per-head term of DeepSeek-V4.1's
 * lightning-indexer score (docs/v41.md §4.5, docs/v41-implementation.md item 9).
 *
 * dsv4_pv_bf16 is, bit for bit, the sequence of dsv4_axpy_bf16 calls over the keys (each output's sum runs in key
 * order, multiply and add rounded separately, as kernels.h's axpy on every path), with the output block held in
 * registers across the keys instead of loaded and stored once per key.
 *
 * The V4.1 score of a key is bf16(sum_h bf16(relu(d_h) * w_h)) with d_h = bf16(q_h . k) and w_h the head's BF16
 * weight, the heads summed in order from +0. With the dot products of many keys contiguous per head
 * (dsv4_linear_bf16x, keys as rows), that sum runs over keys in lanes: dsv4_relu_wsum_bf16 adds one head's terms.
 * Exactness: elementwise, multiply and add separately rounded (no FMA), BF16 rounding to nearest even on the bit
 * pattern exactly as dsv4_f32_to_bf16 (NaN: the high half | 0x40), relu as the scalar `d < 0 ? 0 : d` (a NaN d and
 * -0 kept: MAX with the constant first); so every path (scalar; AVX2 in headsum_avx2.c; AVX-512 in
 * headsum_avx512.c; NEON uses the scalar one) gives bit-identical results on every input (tests/test_attn_v41.c).
 */
#ifndef DSV4_KERNELS_HEADSUM_H
#define DSV4_KERNELS_HEADSUM_H
#include <stdint.h>

/* for j = 0 .. nk-1 in order: acc[i] += p[j * pstride] * v[j][i] for i < n (the p and v[j][i] BF16 values, so
 * each product is exact): the attention's P.V of one head = dsv4_axpy_bf16(acc, p[j*pstride], v[j], n) for each j. */
void dsv4_pv_bf16(float *acc, const float *p, int pstride, const uint16_t *const *v, int nk, int n);
void dsv4_pv_bf16_path(int path, float *acc, const float *p, int pstride, const uint16_t *const *v, int nk, int n);
void dsv4_pv_bf16_avx2(float *acc, const float *p, int pstride, const uint16_t *const *v, int nk, int n);
void dsv4_pv_bf16_avx512(float *acc, const float *p, int pstride, const uint16_t *const *v, int nk, int n);

/* V4's head term (F32, no rounding to BF16): acc[i] += w * (d[i] > 0 ? d[i] : 0) for i < n, multiply and add
 * rounded separately (a NaN d counts as 0, as the comparison). */
void dsv4_relu_wsum_f32(float *acc, const float *d, float w, int n);
void dsv4_relu_wsum_f32_path(int path, float *acc, const float *d, float w, int n);
void dsv4_relu_wsum_f32_scalar(float *acc, const float *d, float w, int n);
void dsv4_relu_wsum_f32_avx2(float *acc, const float *d, float w, int n);
void dsv4_relu_wsum_f32_avx512(float *acc, const float *d, float w, int n);

/* acc[i] += bf16(relu(d[i]) * w) for i < n (n >= 0); relu(x) = x < 0 ? 0 : x. */
void dsv4_relu_wsum_bf16(float *acc, const float *d, float w, int n);
/* The same on one path (tests): path = DSV4_PATH_*; a path this build or CPU lacks falls back to scalar. */
void dsv4_relu_wsum_bf16_path(int path, float *acc, const float *d, float w, int n);

void dsv4_relu_wsum_bf16_scalar(float *acc, const float *d, float w, int n);
void dsv4_relu_wsum_bf16_avx2(float *acc, const float *d, float w, int n);
void dsv4_relu_wsum_bf16_avx512(float *acc, const float *d, float w, int n);

#endif
