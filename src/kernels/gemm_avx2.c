/* kernels/gemm_avx2.c — register-blocked micro-kernels of the AVX2 path's multi-token calls of dsv4_linear (issue 6
 * item 5). linear_avx2.c emulates the VDPBF16PS step with two FMAs on the odd and even halves of each BF16 pair;
 * here the weights of an 8-row x DSV4_LIN_KC-column tile are decoded once per DSV4_LIN_TB tokens (linear_avx2.c's
 * tile decoder) and put into that split form as F32 (per row and 32-column chunk: lanes 0-7 odd, lanes 0-7 even, lanes 8-15 odd, lanes 8-15 even), and
 * the two 8-lane halves of the 16 lanes are computed one after the other (each lane's sum involves only its own
 * pairs, so the order of every lane's additions is the definition's):
 *   BF16: 2 rows x 4 tokens of accumulators: per chunk, fma(w_odd, x_odd, L) then fma(w_even, x_even, L);
 *   FP8:  2 rows x 2 tokens of accumulators L plus fresh partials P per 128-column block, L = fma(s, P, L);
 *   FP4:  2 rows x 4 tokens; per 32-column group P = fma(w_odd, x_odd, +0), P = fma(w_even, x_even, P),
 *         L = fma(s, P, L) (the +0 start keeps the definition's signed zeros); FP8_32 (V4.1) likewise. Where
 *         dsv4_fold_ok allows (simd.h; the conditions of gemm_avx512.c), the split tile holds s*w and the scale
 *         step is L + P, a VADDPS beside the FMAs, bit-identical.
 * Each activation vector split in registers feeds 2 rows, each weight vector loaded 2-4 tokens. MXCSR FTZ+DAZ is
 * set by the caller. Compiled with -mavx2 -mfma (Makefile); elsewhere this file is empty. */
#include "kernels/simd.h"
#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#include <string.h>

#define RB DSV4_LIN_RB
#define KC DSV4_LIN_KC
#define TB DSV4_LIN_TB
#define NT_BF16 4
#define NT_FP8 2
#define NT_FP4 4
#define INL static inline __attribute__((always_inline))

static inline int cdiv(int a, int b) { return (a + b - 1) / b; }

/* x[t] + 32c + 16h: the 16 BF16 of half h of chunk c -> odd / even elements as F32 */
INL __m256 xodd(const uint16_t *p) {
    return _mm256_castsi256_ps(_mm256_and_si256(_mm256_loadu_si256((const __m256i *)p), _mm256_set1_epi32((int)0xffff0000u)));
}
INL __m256 xeven(const uint16_t *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_loadu_si256((const __m256i *)p), 16));
}

/* Arguments: w[j] the split tile row of row j (32 floats per chunk: odd 0-7, even 0-7, odd 8-15, even 8-15),
 * x[t] the packed activations of token t at the tile start, nch chunks, L[j] + 16 * t the lanes of (row j, token t),
 * sc[j] the scale codes of row j from the tile start (FP8 per 128 columns, FP4 per 32), h the half (lanes 8h..8h+7). */
#define MK_ARGS const float *const *w, const uint16_t *const *x, int nch, float *const *L, const uint8_t *const *sc, int h

/* One 32-column chunk of 2 rows x NT tokens: acc[j][t] += w_odd . x_odd, then += w_even . x_even (half h). w0/w1
 * point at the rows' split chunk, `off` is the chunk's column offset in the activations (32c + 16h). */
INL void chunk_fma(__m256 acc[2][4], const float *w0, const float *w1, const uint16_t *const *x, int off, const int NT) {
    __m256 xv[4];
    _Pragma("GCC unroll 4") for (int t = 0; t < NT; t++) xv[t] = xodd(x[t] + off);
    __m256 v0 = _mm256_load_ps(w0), v1 = _mm256_load_ps(w1);
    _Pragma("GCC unroll 4") for (int t = 0; t < NT; t++) { acc[0][t] = _mm256_fmadd_ps(v0, xv[t], acc[0][t]); acc[1][t] = _mm256_fmadd_ps(v1, xv[t], acc[1][t]); }
    _Pragma("GCC unroll 4") for (int t = 0; t < NT; t++) xv[t] = xeven(x[t] + off);
    v0 = _mm256_load_ps(w0 + 8); v1 = _mm256_load_ps(w1 + 8);
    _Pragma("GCC unroll 4") for (int t = 0; t < NT; t++) { acc[0][t] = _mm256_fmadd_ps(v0, xv[t], acc[0][t]); acc[1][t] = _mm256_fmadd_ps(v1, xv[t], acc[1][t]); }
}

INL void mk_bf16(MK_ARGS, const int NT) {
    (void)sc;
    __m256 a[2][4];
    _Pragma("GCC unroll 4") for (int j = 0; j < 2; j++)
        _Pragma("GCC unroll 4") for (int t = 0; t < NT; t++) a[j][t] = _mm256_load_ps(L[j] + 16 * t + 8 * h);
    for (int c = 0; c < nch; c++) chunk_fma(a, w[0] + 32 * c + 16 * h, w[1] + 32 * c + 16 * h, x, 32 * c + 16 * h, NT);
    _Pragma("GCC unroll 4") for (int j = 0; j < 2; j++)
        _Pragma("GCC unroll 4") for (int t = 0; t < NT; t++) _mm256_store_ps(L[j] + 16 * t + 8 * h, a[j][t]);
}

INL void mk_fp8(MK_ARGS, const int NT) {
    __m256 a[2][4];
    _Pragma("GCC unroll 4") for (int j = 0; j < 2; j++)
        _Pragma("GCC unroll 4") for (int t = 0; t < NT; t++) a[j][t] = _mm256_load_ps(L[j] + 16 * t + 8 * h);
    for (int c = 0; c < nch; c += 4) {
        __m256 p[2][4];
        _Pragma("GCC unroll 4") for (int j = 0; j < 2; j++)
            _Pragma("GCC unroll 4") for (int t = 0; t < NT; t++) p[j][t] = _mm256_setzero_ps();
        const int ce = c + 4 < nch ? c + 4 : nch;
        for (int k = c; k < ce; k++) chunk_fma(p, w[0] + 32 * k + 16 * h, w[1] + 32 * k + 16 * h, x, 32 * k + 16 * h, NT);
        _Pragma("GCC unroll 4") for (int j = 0; j < 2; j++) {
            const __m256 s = _mm256_set1_ps(dsv4_e8m0_f32[sc[j][c / 4]]);
            _Pragma("GCC unroll 4") for (int t = 0; t < NT; t++) a[j][t] = _mm256_fmadd_ps(s, p[j][t], a[j][t]);
        }
    }
    _Pragma("GCC unroll 4") for (int j = 0; j < 2; j++)
        _Pragma("GCC unroll 4") for (int t = 0; t < NT; t++) _mm256_store_ps(L[j] + 16 * t + 8 * h, a[j][t]);
}

/* FOLD: the split tile holds s*w (folded where dsv4_fold_ok allows: simd.h), so P is already s*P and the scale step
 * is L + P, a VADDPS off the FMA pipes, bit-identical to fma(s, P, L) there. */
INL void mk_fp4(MK_ARGS, const int NT, const int FOLD) {
    __m256 a[2][NT_FP4];
    const __m256 z = _mm256_setzero_ps();
    _Pragma("GCC unroll 4") for (int j = 0; j < 2; j++)
        _Pragma("GCC unroll 4") for (int t = 0; t < NT; t++) a[j][t] = _mm256_load_ps(L[j] + 16 * t + 8 * h);
    for (int c = 0; c < nch; c++) {
        const float *w0 = w[0] + 32 * c + 16 * h, *w1 = w[1] + 32 * c + 16 * h;
        const __m256 s0 = _mm256_set1_ps(FOLD ? 0.0f : dsv4_e8m0_f32[sc[0][c]]);
        const __m256 s1 = _mm256_set1_ps(FOLD ? 0.0f : dsv4_e8m0_f32[sc[1][c]]);
        _Pragma("GCC unroll 4") for (int t = 0; t < NT; t++) {
            const __m256 xo = xodd(x[t] + 32 * c + 16 * h), xe = xeven(x[t] + 32 * c + 16 * h);
            __m256 p0 = _mm256_fmadd_ps(_mm256_load_ps(w0), xo, z), p1 = _mm256_fmadd_ps(_mm256_load_ps(w1), xo, z);
            p0 = _mm256_fmadd_ps(_mm256_load_ps(w0 + 8), xe, p0);
            p1 = _mm256_fmadd_ps(_mm256_load_ps(w1 + 8), xe, p1);
            if (FOLD) {
                a[0][t] = _mm256_add_ps(a[0][t], p0);
                a[1][t] = _mm256_add_ps(a[1][t], p1);
            } else {
                a[0][t] = _mm256_fmadd_ps(s0, p0, a[0][t]);
                a[1][t] = _mm256_fmadd_ps(s1, p1, a[1][t]);
            }
        }
    }
    _Pragma("GCC unroll 4") for (int j = 0; j < 2; j++)
        _Pragma("GCC unroll 4") for (int t = 0; t < NT; t++) _mm256_store_ps(L[j] + 16 * t + 8 * h, a[j][t]);
}

typedef void (*mk_fn)(MK_ARGS);
#define MK(f, n) static void f##_##n(MK_ARGS) { f(w, x, nch, L, sc, h, n); }
MK(mk_bf16, 1) MK(mk_bf16, 2) MK(mk_bf16, 3) MK(mk_bf16, 4)
MK(mk_fp8, 1) MK(mk_fp8, 2)
#define MK4(n) static void mk_fp4_##n(MK_ARGS) { mk_fp4(w, x, nch, L, sc, h, n, 0); } \
               static void mk_fp4f_##n(MK_ARGS) { mk_fp4(w, x, nch, L, sc, h, n, 1); }
MK4(1) MK4(2) MK4(3) MK4(4)
static const mk_fn K_BF16[] = {NULL, mk_bf16_1, mk_bf16_2, mk_bf16_3, mk_bf16_4};
static const mk_fn K_FP8[] = {NULL, mk_fp8_1, mk_fp8_2};
static const mk_fn K_FP4[] = {NULL, mk_fp4_1, mk_fp4_2, mk_fp4_3, mk_fp4_4};
static const mk_fn K_FP4F[] = {NULL, mk_fp4f_1, mk_fp4f_2, mk_fp4f_3, mk_fp4f_4};

/* The activations' exponent range (dsv4_fold_ok): packed BF16 rows, zero padded to 32 columns. */
dsv4_xrange dsv4_x_range_avx2(const dsv4_lin_job *jb) {
    const int n = (jb->cols + 31) & ~31;
    const __m256i ff = _mm256_set1_epi16(0xff), z = _mm256_setzero_si256();
    __m256i mn = _mm256_set1_epi16(0x7fff), mx = z;
    for (int t = 0; t < jb->n_tok; t++) {
        const uint16_t *x = dsv4_lin_x(jb, t);
        for (int c = 0; c < n; c += 16) {
            const __m256i e = _mm256_and_si256(_mm256_srli_epi16(_mm256_loadu_si256((const __m256i *)(x + c)), 7), ff);
            mn = _mm256_min_epu16(mn, _mm256_or_si256(e, _mm256_cmpeq_epi16(e, z)));   /* exponent 0 (zero, subnormal): skipped */
            mx = _mm256_max_epu16(mx, e);
        }
    }
    _Alignas(32) uint16_t a[16], b[16];
    _mm256_store_si256((__m256i *)a, mn);
    _mm256_store_si256((__m256i *)b, mx);
    int lo = 0x7fff, hi = 0;
    for (int i = 0; i < 16; i++) { if (a[i] < lo) lo = a[i]; if (b[i] > hi) hi = b[i]; }
    dsv4_xrange r = { lo - 127, hi - 127, hi > 0 };
    return r;
}



/* BF16 tile rows (ld apart) -> the split F32 form, nch chunks per row; k != NULL: chunk c of row j also multiplied
 * by 2^k[j * 32 + c] (exact: dsv4_fold_ok checked that every nonzero result is a normal F32 and BF16 value). */
static void split_tile(const uint16_t *const *src, int nrr, int nch, float *dst, int ldd, const int *k) {
    const __m256i hi = _mm256_set1_epi32((int)0xffff0000u);
    for (int j = 0; j < nrr; j++)
        for (int c = 0; c < nch; c++) {
            const __m256i w0 = _mm256_loadu_si256((const __m256i *)(src[j] + 32 * c));
            const __m256i w1 = _mm256_loadu_si256((const __m256i *)(src[j] + 32 * c + 16));
            __m256 v0 = _mm256_castsi256_ps(_mm256_and_si256(w0, hi)), v1 = _mm256_castsi256_ps(_mm256_slli_epi32(w0, 16));
            __m256 v2 = _mm256_castsi256_ps(_mm256_and_si256(w1, hi)), v3 = _mm256_castsi256_ps(_mm256_slli_epi32(w1, 16));
            if (k) {
                const __m256 s = _mm256_castsi256_ps(_mm256_set1_epi32((k[j * 32 + c] + 127) << 23));
                v0 = _mm256_mul_ps(v0, s); v1 = _mm256_mul_ps(v1, s); v2 = _mm256_mul_ps(v2, s); v3 = _mm256_mul_ps(v3, s);
            }
            float *d = dst + (size_t)j * ldd + 32 * c;
            _mm256_store_ps(d, v0);
            _mm256_store_ps(d + 8, v1);
            _mm256_store_ps(d + 16, v2);
            _mm256_store_ps(d + 24, v3);
        }
}

void dsv4_gemm_rows_avx2(const dsv4_lin_job *jb, int r0, int nr, dsv4_tile_dec_fn dec) {
    const dsv4_wview *wv = jb->w;
    const int cols = jb->cols, fmt = wv->fmt, ncb = cdiv(cols, 128);
    const int g32 = dsv4_fmt_g32(fmt);
    const int ntmax = fmt == DSV4_W_FP8 ? NT_FP8 : g32 ? NT_FP4 : NT_BF16;
    const mk_fn *K0 = fmt == DSV4_W_FP8 ? K_FP8 : g32 ? K_FP4 : K_BF16;   /* FP8_32: FP4's per-group kernels */
    dsv4_xrange xr = {0, 0, 0};
    if (g32) xr = jb->has_xr ? jb->xr : dsv4_x_range_avx2(jb);
    _Alignas(64) uint16_t tile[RB * KC];
    _Alignas(64) float split[RB * (KC + 16)];   /* rows KC + 16 floats apart (not a multiple of 4 KiB) */
    _Alignas(64) float L[RB][TB][16];
    _Alignas(64) float sink[NT_BF16][16];
    memset(sink, 0, sizeof sink);
    /* token blocks outside, row blocks inside, so that a block's activations stay in L2 (gemm_avx512.c) */
    for (int t0 = 0; t0 < jb->n_tok; t0 += TB) {
        const int nt = jb->n_tok - t0 < TB ? jb->n_tok - t0 : TB;
        for (int rb = r0; rb < r0 + nr; rb += RB) {
            const int nrr = r0 + nr - rb < RB ? r0 + nr - rb : RB, nsub = cdiv(nrr, 2);
            for (int j = 0; j < nrr; j++) memset(L[j], 0, (size_t)nt * sizeof L[j][0]);   /* the lanes finish reads */
            for (int c0 = 0; c0 < cols; c0 += KC) {
                const int n = cols - c0 < KC ? cols - c0 : KC, nch = cdiv(n, 32);
                const uint16_t *wt[RB];
                if (fmt == DSV4_W_BF16 && (cols % 32) == 0) {
                    for (int j = 0; j < nrr; j++) wt[j] = (const uint16_t *)wv->data + (size_t)(rb + j) * cols + c0;
                } else {
                    if (fmt == DSV4_W_BF16) dsv4_tile_decode_scalar(wv, rb, nrr, c0, n, tile, KC);
                    else dec(wv, rb, nrr, c0, n, tile, KC);
                    for (int j = 0; j < nrr; j++) wt[j] = tile + j * KC;
                }
                const mk_fn *K = K0;
                int k[RB * 32], fold = 0;   /* KC <= 1024: at most 32 groups */
                if (g32) {   /* per-group scales folded into the split tile where exact (FP4, FP8_32) */
                    int kmin = 255, kmax = -255;
                    for (int j = 0; j < nrr; j++) {
                        const uint8_t *sr = dsv4_g32_scales(wv, rb + j, c0);
                        for (int c = 0; c < nch; c++) {
                            const int kk = sr[c] - 127;
                            k[j * 32 + c] = kk;
                            if (kk < kmin) kmin = kk;
                            if (kk > kmax) kmax = kk;
                        }
                    }
                    fold = dsv4_fold_ok(fmt, &xr, kmin, kmax, cols);
                    if (fold) K = K_FP4F;
                }
                split_tile(wt, nrr, nch, split, KC + 16, fold ? k : NULL);
                const float *w[RB / 2][2];
                const uint8_t *sc[RB / 2][2];
                for (int q = 0; q < nsub; q++)
                    for (int j = 0; j < 2; j++) {
                        const int jj = 2 * q + (2 * q + j < nrr ? j : 0), r = rb + jj;   /* padding: a real row */
                        w[q][j] = split + (size_t)jj * (KC + 16);
                        sc[q][j] = fmt == DSV4_W_FP8 ? wv->scale + (size_t)(r / 128) * ncb + c0 / 128
                                 : dsv4_fmt_g32(fmt) ? dsv4_g32_scales(wv, r, c0) : NULL;
                    }
                const int ngrp = cdiv(nt, ntmax);
                for (int g = 0, tt = 0; g < ngrp; g++) {
                    const int gn = (nt - tt + (ngrp - g) - 1) / (ngrp - g);
                    const uint16_t *x[NT_BF16];
                    for (int t = 0; t < gn; t++) x[t] = dsv4_lin_x(jb, t0 + tt + t) + c0;
                    for (int q = 0; q < nsub; q++) {
                        float *Lr[2];
                        for (int j = 0; j < 2; j++) Lr[j] = 2 * q + j < nrr ? L[2 * q + j][tt] : sink[0];
                        K[gn](w[q], x, nch, Lr, sc[q], 0);
                        K[gn](w[q], x, nch, Lr, sc[q], 1);
                    }
                    tt += gn;
                }
            }
            dsv4_lin_finish(jb, L, rb, nrr, t0, nt);
        }
    }
}

#endif
