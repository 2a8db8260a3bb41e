/* vision/tower_simd.h — internal: the vectorised parts of the vision tower's attention (vision/tower.c), one file per
 * instruction set (tower_avx512.c, tower_avx2.c). Each computes exactly what the portable code of tower.c computes,
 * bit for bit (same operations, same order, same rounding points; tests/test_vision_tower.c compares them):
 * - the softmax exp (tower.c softmax_exp) on 16 resp. 8 values at once: the same F32 multiplies, adds and
 *   subtracts in the same order (no FMA: the Makefile builds with -ffp-contract=off), the same -86 cut (NaN -> 0);
 * - on AVX-512 BF16, one head and block of queries of the attention: the scores and P.V products in the pair-lane
 *   order of kernels/simd.h with VDPBF16PS (what dsv4_linear_bf16x computes on every path), the max, exp, key-order
 *   double sum and BF16 rounding of P as tower.c's attn_task. */
#ifndef DSV4_VISION_TOWER_SIMD_H
#define DSV4_VISION_TOWER_SIMD_H
#include <stddef.h>
#include <stdint.h>

/* y[i] = softmax_exp(x[i]) for i < n (any n; y may equal x). */
void dsv4_vt_exp_avx512(float *y, const float *x, int n);
void dsv4_vt_exp_avx2(float *y, const float *x, int n);

#define DSV4_VT_FAST_QB 64   /* queries per call of dsv4_vt_attn_avx512 (at most) */

/* Attention of one head for queries [q0, q0 + nq) (1 <= nq <= DSV4_VT_FAST_QB) over all n keys:
 * q, k: [n][hd] BF16 bits of the head's rotated queries and keys; vt: [hd][npad] its values transposed, zero for keys
 * n..npad-1 (npad = n rounded up to 32); hd a multiple of 32 (at most 2048). Writes o + t * ldo [0..hd) = bf16(P.V / Z)
 * for query q0 + t. work: dsv4_vt_attn_work_bytes(n, npad, hd) bytes, 64-byte aligned, owned by the caller (one per
 * concurrent call). Sets MXCSR FTZ+DAZ for the products only (restored; the softmax runs under the caller's MXCSR). */
void dsv4_vt_attn_avx512(float *o, size_t ldo, const uint16_t *q, const uint16_t *k, const uint16_t *vt, int n,
                         int npad, int hd, int q0, int nq, float scale, void *work);
/* The same on AVX2 + FMA (the products as the avx2 kernels compute the pair-lane order: two FMAs per BF16 pair). */
void dsv4_vt_attn_avx2(float *o, size_t ldo, const uint16_t *q, const uint16_t *k, const uint16_t *vt, int n,
                       int npad, int hd, int q0, int nq, float scale, void *work);
size_t dsv4_vt_attn_work_bytes(int n, int npad, int hd);

#endif
