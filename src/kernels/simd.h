/* kernels/simd.h — internal: the per-path implementations behind dsv4_linear and its helpers, and the
 * one definition of their arithmetic (the "pair-lane order") that every path reproduces bit for bit.
 *
 * Pair-lane order (linear.c implements it in portable C; linear_avx2.c, linear_avx512.c and linear_neon.c equal it):
 * inputs are BF16 values: the activation row x (BF16-representable by the caller's contract, packed to
 * uint16 with subnormals flushed to ±0 and zero-padded to a multiple of 32 columns) and the weight row
 * decoded WITHOUT its scale (BF16 as stored, E4M3 code -> its exact BF16 value, E2M1 code -> exact BF16).
 * Every product of two BF16 values is exact in F32 (unless it falls below FLT_MIN), so each step is one fused
 * multiply-add with a single rounding:
 *   dp(L, w, x) over one 32-column chunk: for lane i in 0..15:
 *       L[i] = ftz(fma(w[2i+1], x[2i+1], L[i]));  L[i] = ftz(fma(w[2i], x[2i], L[i]))
 *   (this is exactly VDPBF16PS: odd element first, round-to-nearest-even, subnormal inputs read as 0 and
 *    subnormal results flushed; checked on the CPU by linear.c's self-check before the AVX-512 path is used)
 *   BF16 weights: L = 0; L = dp(L, chunk) for every 32-column chunk in order.
 *   FP8 weights (one E8M0 scale s per 128x128 block): the columns of every full 64-column block are first taken
 *       in the order e(p) = 16*((p%32)/8) + p%8 + 8*(p/32), p = 0..63 (elements 0-7,16-23,32-39,48-55, then
 *       8-15,24-31,40-47,56-63: the order AVX-512 byte unpacking yields, so E4M3 codes decode with two byte
 *       permutes and no widening; a ragged tail keeps its order); the activations are packed in the same order.
 *       Then per 128-column block b: P = 0, P = dp(P, chunk) over the block's chunks; L[i] = ftz(fma(ftz(s_b), P[i], L[i])).
 *   FP4 weights (one E8M0 scale per row and 32 columns): per chunk g: P = dp(0, chunk);
 *       L[i] = ftz(fma(ftz(s_g), P[i], L[i])).
 *   FP8_32 weights (V4.1: one E8M0 scale per 32x32 tile): as FP4, with the E4M3 values in element order (no
 *       64-column permutation: a permuted chunk would straddle two scale groups): per chunk g: P = dp(0, chunk);
 *       L[i] = ftz(fma(ftz(s_g), P[i], L[i])), s_g = the scale of tile (r/32, g).
 *   out = tree(L) = ((((L0+L1)+(L2+L3))+((L4+L5)+(L6+L7))) + (((L8+L9)+(L10+L11))+((L12+L13)+(L14+L15))))
 *       with every addition flushed, then BF16 rounding when DSV4_OUT_BF16.
 * ftz(v) = v if |v| >= FLT_MIN or v == 0, else ±0 (sign of v). (A scale code 0, 2^-127, is subnormal: read as 0.)
 * F32 weights (the mHC fn matrices) keep the 8-lane k%8 order of matmul.c (their products are not exact).
 */
#ifndef DSV4_KERNELS_SIMD_H
#define DSV4_KERNELS_SIMD_H
#include <stddef.h>
#include <stdint.h>
#include "kernels/kernels.h"
#include "base/util.h"

#define DSV4_LIN_RB 8     /* rows per register block / tile; row blocks start at multiples of it */
#define DSV4_LIN_KC 512   /* columns per tile (multiple of 128) */
#define DSV4_LIN_TB 32    /* tokens per pass over a tile (the tile is decoded once per DSV4_LIN_TB tokens) */

/* The activations' exponent range of a multi-token call (unbiased exponents of the nonzero BF16 values; any = 0
 * when all are zero): what dsv4_fold_ok (below) needs to know about them. */
typedef struct { int ex_min, ex_max, any; } dsv4_xrange;

/* One dsv4_linear call, prepared by linear.c (weights view, packed activations). */
typedef struct {
    const dsv4_wview *w;
    const uint16_t *xb;   /* [n_tok][colsp] packed BF16 activations (row stride colsp) */
    int n_tok, cols, colsp;
    const uint16_t *const *xptr;   /* or, when non-NULL: row t at xptr[t] (cols % 32 == 0) */
    int flags;
    float *out;           /* [n_tok][rows] */
    /* has_xr: xr holds the activations' exponent range, computed once per call before the rows are spread over
     * the threads (the path's x_range, for calls of 3 or more tokens of FP8 / FP4 / FP8_32 weights, and for the
     * avx2 path's FP8 calls of 1-2 tokens); 0: a rows
     * function that needs it computes it itself. (Each task scanned all the call's activations: with 16 tasks of
     * a 512-token call that was 16 x 512 x cols values, up to a third of a shared-expert call's time.) */
    int has_xr;
    dsv4_xrange xr;
} dsv4_lin_job;

static inline const uint16_t *dsv4_lin_x(const dsv4_lin_job *j, int t) {
    return j->xptr ? j->xptr[t] : j->xb + (size_t)t * j->colsp;
}
/* Compute rows [r0, r0 + nr) of the job for all its tokens (one path). */
typedef void (*dsv4_lin_rows_fn)(const dsv4_lin_job *j, int r0, int nr);
void dsv4_lin_rows_scalar(const dsv4_lin_job *j, int r0, int nr);
void dsv4_lin_rows_avx2(const dsv4_lin_job *j, int r0, int nr);
void dsv4_lin_rows_avx512(const dsv4_lin_job *j, int r0, int nr);
void dsv4_lin_rows_neon(const dsv4_lin_job *j, int r0, int nr);

/* acc[i] = acc[i] + a * v[i] for i < n (a, v BF16 values: the product is exact; one rounding per element). */
typedef void (*dsv4_axpy_fn)(float *acc, float a, const uint16_t *v, int n);
void dsv4_axpy_bf16_scalar(float *acc, float a, const uint16_t *v, int n);
void dsv4_axpy_bf16_avx2(float *acc, float a, const uint16_t *v, int n);
void dsv4_axpy_bf16_avx512(float *acc, float a, const uint16_t *v, int n);
void dsv4_axpy_bf16_neon(float *acc, float a, const uint16_t *v, int n);

/* Storage-form decoders (kernels.h dsv4_fp8_decode_bf16 / dsv4_fp4_decode_bf16): exact, so every path agrees. */
typedef void (*dsv4_dec_fn)(const uint8_t *codes, const uint8_t *scales, int n, int block, uint16_t *out);
void dsv4_fp8_dec_scalar(const uint8_t *codes, const uint8_t *scales, int n, int block, uint16_t *out);
void dsv4_fp4_dec_scalar(const uint8_t *codes, const uint8_t *scales, int n, int block, uint16_t *out);
void dsv4_fp8_dec_avx512(const uint8_t *codes, const uint8_t *scales, int n, int block, uint16_t *out);
void dsv4_fp4_dec_avx512(const uint8_t *codes, const uint8_t *scales, int n, int block, uint16_t *out);

/* F32 weights (the mHC fn matrices; matmul.c's 8-lane order): lanes[j][l] = the sum over k < n8 (a multiple of 8)
 * with k % 8 == l, in increasing k and starting from 0, of w[j * ldw + k] * x[k], each product rounded and then
 * added (no FMA), for rows j < nr <= 4. The paths compute exactly these roundings, in plain C (GCC vector
 * extensions where available) or with 8-lane AVX registers (the avx2 and avx512 paths). */
typedef void (*dsv4_f32_lanes_fn)(const float *w, int ldw, int nr, const float *x, int n8, float (*lanes)[8]);
void dsv4_f32_lanes_generic(const float *w, int ldw, int nr, const float *x, int n8, float (*lanes)[8]);
void dsv4_f32_lanes_avx2(const float *w, int ldw, int nr, const float *x, int n8, float (*lanes)[8]);
/* Rows [r0, r0+nr) of out = W x for n_tok tokens of F32 weights W (matmul.c; lanes: the path's dsv4_f32_lanes_fn). */
void dsv4_linear_f32(float *out, const dsv4_wview *w, const float *x, int n_tok, int r0, int nr, dsv4_f32_lanes_fn lanes);

/* The functions of the path in use (chosen once; see pool.h dsv4_kernel_path_id). */
typedef struct {
    dsv4_lin_rows_fn lin_rows;
    dsv4_axpy_fn axpy_bf16;
    dsv4_dec_fn fp8_dec, fp4_dec;
    dsv4_xrange (*x_range)(const dsv4_lin_job *j);   /* NULL on paths that do not fold scales */
    int x_range_fp8_decode;   /* its FP8 calls of 1-2 tokens use the range too (avx2: fast_fp8_rows2's F16C decoding) */
    dsv4_f32_lanes_fn f32_lanes;
} dsv4_simd_ops;
const dsv4_simd_ops *dsv4_simd(void);

/* Shared helpers of the paths (linear.c). */
/* FP8 column order within a 64-column block: permuted position p -> element (see the definition above). */
static inline int dsv4_fp8_perm(int p) { return 16 * ((p % 32) / 8) + p % 8 + 8 * (p / 32); }
/* Formats whose scale applies per 32-column group of a row (a fresh partial per chunk): FP4 and FP8_32. */
static inline int dsv4_fmt_g32(int fmt) { return fmt == DSV4_W_FP4 || fmt == DSV4_W_FP8_32; }
/* The scale codes of row r from column c0 (c0 a multiple of 32) for the FP8_32 / FP4 formats. */
static inline const uint8_t *dsv4_g32_scales(const dsv4_wview *w, int r, int c0) {
    size_t ncs = (size_t)(w->cols + 31) / 32;
    return w->scale + (w->fmt == DSV4_W_FP8_32 ? (size_t)(r / 32) : (size_t)r) * ncs + c0 / 32;
}
static inline float dsv4_ftz(float v) {
    union { float f; uint32_t u; } a = { v };
    if ((a.u & 0x7f800000u) == 0) a.u &= 0x80000000u;
    return a.f;
}
static inline float dsv4_bf16f(uint16_t h) {
    union { uint32_t u; float f; } a = { (uint32_t)h << 16 };
    return a.f;
}
/* E4M3 code -> BF16 bits of its exact value (sign kept; NaN codes -> BF16 NaN). */
extern uint16_t dsv4_e4m3_bf16[256];   /* filled at path choice */
/* E2M1 code (0..15) -> BF16 bits. */
extern const uint16_t dsv4_e2m1_bf16[16];
/* E8M0 code -> F32 value (2^(b-127); 255 -> NaN); filled at path choice. */
extern float dsv4_e8m0_f32[256];
/* Final 16-lane tree with flushed additions. */
static inline float dsv4_tree16(const float *L) {
    float a[8], b[4];
    for (int i = 0; i < 8; i++) a[i] = dsv4_ftz(L[2 * i] + L[2 * i + 1]);
    for (int i = 0; i < 4; i++) b[i] = dsv4_ftz(a[2 * i] + a[2 * i + 1]);
    float c0 = dsv4_ftz(b[0] + b[1]), c1 = dsv4_ftz(b[2] + b[3]);
    return dsv4_ftz(c0 + c1);
}
/* Finish a row block of the tile paths: out[t0+t][rb+j] = tree(L[j][t]) (BF16-rounded with DSV4_OUT_BF16) for
 * j < nrr, t < nt; L is [DSV4_LIN_RB][DSV4_LIN_TB][16]. */
static inline void dsv4_lin_finish(const dsv4_lin_job *jb, float (*L)[DSV4_LIN_TB][16], int rb, int nrr, int t0, int nt) {
    for (int t = 0; t < nt; t++)
        for (int j = 0; j < nrr; j++) {
            float v = dsv4_tree16(L[j][t]);
            if (jb->flags & DSV4_OUT_BF16) v = dsv4_round_bf16(v);
            jb->out[(size_t)(t0 + t) * jb->w->rows + rb + j] = v;
        }
}
/* Scale folding of the multi-token paths (gemm_avx512.c explains the conditions): the check, given the
 * activations' exponent range (dsv4_xrange above), that a tile whose scale
 * exponents lie in [kmin, kmax] may hold s*w instead of w and add P' = s*P with one addition, bit-identical to the
 * definition's fma(s, P, L). */
static inline int dsv4_fold_ok(int fmt, const dsv4_xrange *xr, int kmin, int kmax, int cols) {
    const int e4m3 = fmt == DSV4_W_FP8 || fmt == DSV4_W_FP8_32;
    const int ewmin = e4m3 ? -9 : -1, ewmax = e4m3 ? 8 : 2, egrid = ewmin;
    if (kmin + ewmin < -126 || kmax + ewmax > 127) return 0;
    if (!xr->any) return 1;
    if (xr->ex_max >= 128) return 0;   /* Inf / NaN */
    if ((kmin < 0 ? kmin : 0) + xr->ex_min - 7 + egrid < -126) return 0;
    int lc = 0;
    while ((1 << lc) < cols) lc++;
    return xr->ex_max + 1 + ewmax + 1 + lc + (kmax > 0 ? kmax : 0) <= 125;
}
/* The AVX-512 path's multi-token calls (gemm_avx512.c; MXCSR FTZ+DAZ already set by the caller): rows [r0, r0+nr)
 * of the job for all its tokens with register-blocked micro-kernels, in the pair-lane order. */
void dsv4_gemm_rows_avx512(const dsv4_lin_job *j, int r0, int nr);
/* The activations' exponent range of job j (all its tokens), on the AVX-512 and AVX2 paths. */
dsv4_xrange dsv4_x_range_avx512(const dsv4_lin_job *j);
dsv4_xrange dsv4_x_range_avx2(const dsv4_lin_job *j);
/* The AVX2 path's calls of 3 or more tokens (gemm_avx2.c; MXCSR FTZ+DAZ already set), likewise; dec decodes a tile
 * of FP8/FP8_32/FP4 rows [rb, rb+nrr) x columns [c0, c0+n) to unscaled BF16 (tile[j * ld ...], zero padded to 32). */
typedef void (*dsv4_tile_dec_fn)(const dsv4_wview *w, int rb, int nrr, int c0, int n, uint16_t *tile, int ld);
void dsv4_gemm_rows_avx2(const dsv4_lin_job *j, int r0, int nr, dsv4_tile_dec_fn dec);
/* Its tile decoder (linear_avx512.c): rows [rb, rb+nrr) x columns [c0, c0+n) of an FP8/FP8_32/FP4 weight to BF16
 * in tile[j * ld ...] (zero padded to 32); kw == NULL: unscaled; else scale exponents k folded in, kw = k * 128 (FP8:
 * kw[j*16 + block], FP4 and FP8_32: kw[j*32 + group]; the caller guarantees every nonzero finite result is a normal
 * BF16). Returns nonzero when kw != NULL and the piece holds an E4M3 NaN code (0x7f, 0xff): a fold would turn its
 * NaN into a number, so the caller decodes the tile again unscaled (kw NULL) and does not fold; 0 otherwise. */
int dsv4_tile_decode_avx512(const dsv4_wview *w, int rb, int nrr, int c0, int n, uint16_t *tile, int ld,
                            const int16_t *kw);
/* Decode rows [r0, r0+nr) x columns [c0, c0+n) of an FP8/FP8_32/FP4 weight into BF16 bits (unscaled) in
 * tile[j][0..np) (np = n rounded up to 32, zero padded), ld = tile row stride; scalar reference. */
void dsv4_tile_decode_scalar(const dsv4_wview *w, int r0, int nr, int c0, int n, uint16_t *tile, int ld);

#endif
