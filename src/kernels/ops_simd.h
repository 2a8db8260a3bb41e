/* kernels/ops_simd.h — internal: the per-token elementwise ops that run on the SIMD path in use (issue 6):
 * the FP8 activation simulation, the BF16 packing of activations before a linear, and the mHC collapse / post
 * mixing. Each has a scalar C11 implementation (the definition) and AVX2 / AVX-512 / NEON ones (ops_avx2.c,
 * ops_avx512.c, ops_neon.c) chosen by the same path as the linears (pool.h dsv4_kernel_path_id; $DSV4_KERNEL, --kernel).
 *
 * Exactness: every op here is elementwise, or keeps the scalar reduction order per element (the sums over the
 * hc streams run in stream order in every lane), and uses only IEEE operations whose results do not depend on
 * vector width (add, multiply, min/max with NaN handled as below, integer bit manipulation). So every path
 * gives bit-identical results on every input, infinities and subnormals included (tests/test_kernels.c compares
 * them bit for bit). NaN stays NaN; where two NaNs meet in one multiply or add, which one's sign and payload the
 * result keeps is not defined (x86 keeps the first operand's, and C compilers may swap the operands of a
 * commutative operation), so there only NaN-ness is the same on every path. No FMA contraction: a*b + c is two roundings on every path, as in the scalar C
 * (built with -ffp-contract=off).
 */
#ifndef DSV4_KERNELS_OPS_SIMD_H
#define DSV4_KERNELS_OPS_SIMD_H
#include <stdint.h>
#include <string.h>
#include <math.h>
#include "kernels/kernels.h"
#include "base/util.h"

#define DSV4_ELEM_MAX_HC 16   /* the largest hc the mHC ops take (= DSV4_MAX_HC, checked at config load) */

typedef struct {
    /* dst[i] = dsv4_fp8_sim of src in blocks of `block` (kernels.h); dst may equal src. n >= 0, block >= 1. */
    void (*fp8_sim)(float *dst, const float *src, int n, int block);
    /* BF16 packing of one activation row: d[c] = bf16(ftz(x[e(c)])) for c < n, where e(c) is the FP8 64-column
     * order of simd.h (dsv4_fp8_perm within each 64-column block) for c < nperm (a multiple of 64, <= n) and c
     * itself after it; d[c] = 0 for n <= c < np. bf16() rounds to nearest even (NaN: dsv4_f32_to_bf16). */
    void (*pack_bf16)(uint16_t *d, const float *x, int n, int nperm, int np);
    /* mHC collapse of one token: u[d] = bf16(sum_i p[i] * x[i*D + d]), the sum from 0 in stream order i < hc. */
    void (*hc_collapse)(float *u, const float *x, const float *p, int hc, int D);
    /* mHC post mixing of one token, in place on x [hc][D] (hc <= DSV4_ELEM_MAX_HC):
     * x'[k*D + d] = bf16(post[k] * y[d] + M[0*hc+k] * x[0*D+d] + ... + M[(hc-1)*hc+k] * x[(hc-1)*D+d]) (left to
     * right, every product and sum rounded separately), every x' computed from the old x. */
    void (*hc_post)(float *x, const float *y, const float *post, const float *M, int hc, int D);
    /* dsv4_head_rms_bf16 (kernels.h) of one head of n values, in place. The sum of the BF16 squares runs in double
     * in index order on the scalar path; the SIMD paths sum in another order only when every order gives the
     * same (exact) double sum: all squares finite and the exponents of the nonzero ones within
     * 45 - ceil(log2 n) of each other (then every partial sum is a multiple of the smallest square's last bit
     * below 2^53 of it); otherwise they sum in index order too. */
    void (*head_rms_bf16)(float *x, int n, float eps);
} dsv4_elem_ops;

/* The ops of the path in use (chosen once with the linears' path). */
const dsv4_elem_ops *dsv4_elem(void);
/* The ops of one path (tests); NULL when the build lacks that path. The caller checks the CPU has it. */
const dsv4_elem_ops *dsv4_elem_for(int path);

void dsv4_fp8_sim_scalar(float *dst, const float *src, int n, int block);
void dsv4_pack_bf16_scalar(uint16_t *d, const float *x, int n, int nperm, int np);
void dsv4_hc_collapse_scalar(float *u, const float *x, const float *p, int hc, int D);
void dsv4_hc_post_scalar(float *x, const float *y, const float *post, const float *M, int hc, int D);
void dsv4_head_rms_bf16_scalar(float *x, int n, float eps);
void dsv4_fp8_sim_avx2(float *dst, const float *src, int n, int block);
void dsv4_pack_bf16_avx2(uint16_t *d, const float *x, int n, int nperm, int np);
void dsv4_hc_collapse_avx2(float *u, const float *x, const float *p, int hc, int D);
void dsv4_hc_post_avx2(float *x, const float *y, const float *post, const float *M, int hc, int D);
void dsv4_head_rms_bf16_avx2(float *x, int n, float eps);
void dsv4_fp8_sim_avx512(float *dst, const float *src, int n, int block);
void dsv4_pack_bf16_avx512(uint16_t *d, const float *x, int n, int nperm, int np);
void dsv4_hc_collapse_avx512(float *u, const float *x, const float *p, int hc, int D);
void dsv4_hc_post_avx512(float *x, const float *y, const float *post, const float *M, int hc, int D);
void dsv4_head_rms_bf16_avx512(float *x, int n, float eps);
void dsv4_fp8_sim_neon(float *dst, const float *src, int n, int block);
void dsv4_pack_bf16_neon(uint16_t *d, const float *x, int n, int nperm, int np);
void dsv4_hc_collapse_neon(float *u, const float *x, const float *p, int hc, int D);
void dsv4_hc_post_neon(float *x, const float *y, const float *post, const float *M, int hc, int D);
void dsv4_head_rms_bf16_neon(float *x, int n, float eps);

/* ---- shared scalar pieces (one definition for every path) */
static inline uint32_t dsv4_f2u_(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float dsv4_u2f_(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* §3.3 scale of an FP8 block from its max |x| (NaNs ignored by the caller): the biased exponent k of
 * scale = 2^(k-127) = 2^ceil(log2(max(amax, 1e-4) * fl32(1/448))), capped at 254 (amax = inf). */
static inline int dsv4_fp8_scale_exp(float amax) {
    float a = amax;
    if (!(a >= 1e-4f)) a = 1e-4f;                         /* also catches NaN amax */
    uint32_t u = dsv4_f2u_(a * (float)(1.0 / 448.0));     /* official kernel: amax * fl32(1/448) */
    int k = (int)((u >> 23) & 0xffu);
    if (u & 0x7fffffu) k++;                               /* ceil to a power of two ("fast_round_scale") */
    return k > 254 ? 254 : k;
}
/* The largest exponent span (biased exponent fields, subnormals counted as 1) of the nonzero BF16 squares of a
 * head of n values for which their double sum is exact in every order (see head_rms_bf16 above); < 0: none. */
static inline int dsv4_head_rms_exact_span(int n) {
    int lg = 0;
    while ((1 << lg) < n && lg < 31) lg++;
    return 45 - lg;
}
/* The part of dsv4_head_rms_bf16 after the sum of squares: r = bf16(1/sqrt(bf16(bf16(ss/n) + eps))). */
static inline float dsv4_head_rms_r(double ss, int n, float eps) {
    float ms = dsv4_round_bf16((float)(ss / (double)n));
    return dsv4_round_bf16(1.0f / sqrtf(dsv4_round_bf16(ms + eps)));
}
/* 2^(k-127) for a biased exponent k in [0, 254] (k = 0 gives +0, as the scalar code always did). */
static inline float dsv4_pow2_biased(int k) { return dsv4_u2f_((uint32_t)k << 23); }

#endif
