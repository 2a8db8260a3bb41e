/* kernels/gemm_avx512.c — register-blocked micro-kernels of the AVX-512 tile (multi-token) path of dsv4_linear
 * (issue 6 item 5). linear_avx512.c decodes a tile (up to 8 rows x DSV4_LIN_KC columns of unscaled BF16 weights)
 * and calls dsv4_gemm_tile_avx512 for a block of up to DSV4_LIN_TB tokens; here 4 rows x NT tokens of lanes live in
 * zmm registers, so each weight vector loaded feeds NT tokens and each activation vector 4 rows:
 *   BF16: 4 x 6 accumulators L (one VDPBF16PS per (row, token) per 32-column chunk);
 *   FP8:  4 x 3 accumulators L plus 4 x 3 fresh partials P per 128-column scale block (P = dp over the block's
 *         chunks, then L = fma(s, P, L): the definition's per-block order);
 *   FP4:  4 x 5 accumulators L; per 32-column group P = dp(0, chunk), L = fma(s, P, L); V4.1's FP8_32 (one scale
 *         per 32x32 tile) has the same per-group structure and takes these kernels on its own decoded tile.
 * The pair-lane order (simd.h) is per output (row, token): blocking rows and tokens changes which outputs are
 * computed together, never the order of any output's additions, so the results are bit-identical to the
 * definition. The lanes are loaded from and stored to the caller's L[row][token][16] once per tile (KC columns).
 * Compiled with the AVX-512 flags of linear_avx512.c (Makefile); elsewhere this file is empty. */
#include "kernels/simd.h"
#include "kernels/simd_bf16.h"
#if defined(__x86_64__) && defined(__AVX512BF16__) && defined(__AVX512BW__) && defined(__AVX512VBMI__)
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define RB DSV4_LIN_RB   /* rows per tile (8) */
#define GKC 1024      /* columns per tile (<= 1024: the FP4 fold exponents k[j*32 + group]) */
#define GLD (GKC + 32) /* tile row stride: rows 2112 bytes apart, so the 8 rows do not share L1 sets */
#define GTB 64        /* tokens per pass over a tile (the tile is decoded once per GTB tokens) */
#define MR 4          /* rows per micro-kernel */
#define NT_BF16 6     /* tokens per micro-kernel: 24 accumulators + 4 weight vectors */
#define NT_FP8 3      /* 12 accumulators + 12 partials + 4 weight vectors */
#define NT_FP4 5      /* 20 accumulators + 4 weight vectors + 4 scales + a partial */
#define NT_FP4F 6     /* folded: 24 accumulators + 4 weight vectors + a partial */
#define NT_MAX 6
#define INL static inline __attribute__((always_inline))

static inline int cdiv(int a, int b) { return (a + b - 1) / b; }
INL __m512bh bh(__m512i v) { return (__m512bh)v; }
INL __m512bh ldbh(const uint16_t *p) { return bh(_mm512_loadu_si512(p)); }

/* Arguments shared by the micro-kernels: w[j] the tile row of row j (columns from the tile start), x[t] the
 * activations of token t at the tile start, nch 32-column chunks, L[j] + 16 * t the 16 lanes of (row j, token t),
 * sc[j] the E8M0 scale codes of row j from the tile start (FP8: per 128 columns; FP4: per 32; unused when the
 * scales are folded into the tile), init: the lanes start at 0 (a row block's first tile) instead of L's values,
 * the same start as L zeroed without writing and reading it back. */
#define MK_ARGS const uint16_t *const *w, const uint16_t *const *x, int nch, float *const *L, const uint8_t *const *sc, \
                int init
#define LOAD_L(NMAX)                                                                                             \
    __m512 a[MR][NMAX];                                                                                          \
    _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++)                                                         \
        _Pragma("GCC unroll 6") for (int t = 0; t < NT; t++) a[j][t] = init ? _mm512_setzero_ps() : _mm512_load_ps(L[j] + 16 * t)
#define STORE_L                                                                                                  \
    _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++)                                                         \
        _Pragma("GCC unroll 6") for (int t = 0; t < NT; t++) _mm512_store_ps(L[j] + 16 * t, a[j][t])
#define LOAD_W(k)                                                                                                \
    const __m512bh w0 = ldbh(w[0] + 32 * (k)), w1 = ldbh(w[1] + 32 * (k)), w2 = ldbh(w[2] + 32 * (k)),           \
                   w3 = ldbh(w[3] + 32 * (k))

/* BF16: L = dp(L, chunk) for every chunk. */
INL void mk_bf16(MK_ARGS, const int NT) {
    (void)sc;
    LOAD_L(NT_BF16);
    for (int c = 0; c < nch; c++) {
        LOAD_W(c);
        _Pragma("GCC unroll 6") for (int t = 0; t < NT; t++) {
            const __m512bh xv = ldbh(x[t] + 32 * c);
            a[0][t] = _mm512_dpbf16_ps(a[0][t], w0, xv);
            a[1][t] = _mm512_dpbf16_ps(a[1][t], w1, xv);
            a[2][t] = _mm512_dpbf16_ps(a[2][t], w2, xv);
            a[3][t] = _mm512_dpbf16_ps(a[3][t], w3, xv);
        }
    }
    STORE_L;
}

/* FP8: per 128-column block P = dp over its chunks from 0, then L = fma(s, P, L) (FOLD: the tile holds s*w, so
 * P is already s*P and L = L + P: the same value, one addition that runs beside the dot products). */
INL void mk_fp8(MK_ARGS, const int NT, const int FOLD) {
    LOAD_L(NT_FP8);
    for (int c = 0; c < nch; c += 4) {
        __m512 p[MR][NT_FP8];
        _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++)
            _Pragma("GCC unroll 3") for (int t = 0; t < NT; t++) p[j][t] = _mm512_setzero_ps();
        const int ce = c + 4 < nch ? c + 4 : nch;
        for (int k = c; k < ce; k++) {
            LOAD_W(k);
            _Pragma("GCC unroll 3") for (int t = 0; t < NT; t++) {
                const __m512bh xv = ldbh(x[t] + 32 * k);
                p[0][t] = _mm512_dpbf16_ps(p[0][t], w0, xv);
                p[1][t] = _mm512_dpbf16_ps(p[1][t], w1, xv);
                p[2][t] = _mm512_dpbf16_ps(p[2][t], w2, xv);
                p[3][t] = _mm512_dpbf16_ps(p[3][t], w3, xv);
            }
        }
        if (FOLD) {
            _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++)
                _Pragma("GCC unroll 3") for (int t = 0; t < NT; t++) a[j][t] = _mm512_add_ps(a[j][t], p[j][t]);
        } else {
            _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++) {
                const __m512 s = _mm512_set1_ps(dsv4_e8m0_f32[sc[j][c / 4]]);
                _Pragma("GCC unroll 3") for (int t = 0; t < NT; t++) a[j][t] = _mm512_fmadd_ps(p[j][t], s, a[j][t]);
            }
        }
    }
    STORE_L;
}

/* FP4: per 32-column group P = dp(0, chunk), L = fma(s, P, L) (FOLD: L = L + dp(0, s*w chunk)). */
INL void mk_fp4(MK_ARGS, const int NT, const int FOLD) {
    LOAD_L(NT_MAX);
    const __m512 z = _mm512_setzero_ps();
    for (int c = 0; c < nch; c++) {
        LOAD_W(c);
        if (FOLD) {
            _Pragma("GCC unroll 6") for (int t = 0; t < NT; t++) {
                const __m512bh xv = ldbh(x[t] + 32 * c);
                a[0][t] = _mm512_add_ps(a[0][t], _mm512_dpbf16_ps(z, w0, xv));
                a[1][t] = _mm512_add_ps(a[1][t], _mm512_dpbf16_ps(z, w1, xv));
                a[2][t] = _mm512_add_ps(a[2][t], _mm512_dpbf16_ps(z, w2, xv));
                a[3][t] = _mm512_add_ps(a[3][t], _mm512_dpbf16_ps(z, w3, xv));
            }
        } else {
            const __m512 s0 = _mm512_set1_ps(dsv4_e8m0_f32[sc[0][c]]), s1 = _mm512_set1_ps(dsv4_e8m0_f32[sc[1][c]]),
                         s2 = _mm512_set1_ps(dsv4_e8m0_f32[sc[2][c]]), s3 = _mm512_set1_ps(dsv4_e8m0_f32[sc[3][c]]);
            _Pragma("GCC unroll 6") for (int t = 0; t < NT; t++) {
                const __m512bh xv = ldbh(x[t] + 32 * c);
                a[0][t] = _mm512_fmadd_ps(_mm512_dpbf16_ps(z, w0, xv), s0, a[0][t]);
                a[1][t] = _mm512_fmadd_ps(_mm512_dpbf16_ps(z, w1, xv), s1, a[1][t]);
                a[2][t] = _mm512_fmadd_ps(_mm512_dpbf16_ps(z, w2, xv), s2, a[2][t]);
                a[3][t] = _mm512_fmadd_ps(_mm512_dpbf16_ps(z, w3, xv), s3, a[3][t]);
            }
        }
    }
    STORE_L;
}

typedef void (*mk_fn)(MK_ARGS);
#define MK_B(n) static void mk_bf16_##n(MK_ARGS) { mk_bf16(w, x, nch, L, sc, init, n); }
#define MK_8(n) static void mk_fp8_##n(MK_ARGS) { mk_fp8(w, x, nch, L, sc, init, n, 0); } \
                static void mk_fp8f_##n(MK_ARGS) { mk_fp8(w, x, nch, L, sc, init, n, 1); }
#define MK_4(n) static void mk_fp4_##n(MK_ARGS) { mk_fp4(w, x, nch, L, sc, init, n, 0); }
#define MK_4F(n) static void mk_fp4f_##n(MK_ARGS) { mk_fp4(w, x, nch, L, sc, init, n, 1); }
MK_B(1) MK_B(2) MK_B(3) MK_B(4) MK_B(5) MK_B(6)
MK_8(1) MK_8(2) MK_8(3)
MK_4(1) MK_4(2) MK_4(3) MK_4(4) MK_4(5)
MK_4F(1) MK_4F(2) MK_4F(3) MK_4F(4) MK_4F(5) MK_4F(6)
static const mk_fn K_BF16[] = {NULL, mk_bf16_1, mk_bf16_2, mk_bf16_3, mk_bf16_4, mk_bf16_5, mk_bf16_6};
static const mk_fn K_FP8[] = {NULL, mk_fp8_1, mk_fp8_2, mk_fp8_3};
static const mk_fn K_FP8F[] = {NULL, mk_fp8f_1, mk_fp8f_2, mk_fp8f_3};
static const mk_fn K_FP4[] = {NULL, mk_fp4_1, mk_fp4_2, mk_fp4_3, mk_fp4_4, mk_fp4_5};
static const mk_fn K_FP4F[] = {NULL, mk_fp4f_1, mk_fp4f_2, mk_fp4f_3, mk_fp4f_4, mk_fp4f_5, mk_fp4f_6};

/* ------------------------------------------------------------------ scale folding
 * The definition adds s*P with one rounding (fma). When the tile holds s*w instead of w (s = 2^k: exponent field
 * + k), every product, partial sum and rounding of the dot products is the definition's scaled by exactly 2^k,
 * PROVIDED no value of either computation is subnormal (flushed) or overflows: then P' = s*P bit for bit and
 * L + P' == fma(s, P, L). Sufficient, checked per tile from the activations' exponent range (one scan per call)
 * and the tile's scale exponents k in [kmin, kmax]:
 *   - s*w is a normal finite BF16 for every nonzero code: kmin + e_w,min >= -126 and kmax + e_w,max <= 127;
 *   - every nonzero product or partial sum is a multiple of g = 2^(ex_min - 7) * 2^(e_grid) (BF16 activations
 *     carry 8 significant bits; E4M3 values are multiples of 2^-9, E2M1 of 2^-1), and a rounded sum of multiples
 *     of g is one too, so a nonzero value has magnitude >= g: min(kmin, 0) + log2 g >= -126 keeps both sides normal;
 *   - no overflow: |sum| < cols * 2^(ex_max + 1) * 2^(e_w,max + 1) * 2^max(kmax, 0) <= 2^125;
 *   - no activation is Inf or NaN.
 * Otherwise the tile takes the unfolded kernels (the definition as written). */
typedef dsv4_xrange xrange;   /* unbiased exponents of the nonzero activations (simd.h) */

xrange dsv4_x_range_avx512(const dsv4_lin_job *jb) {
    const int n = (jb->cols + 31) & ~31;   /* packed rows are zero padded to 32 (xptr rows: cols % 32 == 0) */
    __m512i mn = _mm512_set1_epi16(0x7fff), mx = _mm512_setzero_si512();
    const __m512i ff = _mm512_set1_epi16(0xff);
    for (int t = 0; t < jb->n_tok; t++) {
        const uint16_t *x = dsv4_lin_x(jb, t);
        for (int c = 0; c < n; c += 32) {
            __m512i e = _mm512_and_si512(_mm512_srli_epi16(_mm512_loadu_si512(x + c), 7), ff);
            __mmask32 nz = _mm512_test_epi16_mask(e, e);   /* exponent 0: zero or subnormal (read as 0) */
            mn = _mm512_mask_min_epu16(mn, nz, mn, e);
            mx = _mm512_max_epu16(mx, e);
        }
    }
    _Alignas(64) uint16_t a[32], b[32];
    _mm512_store_si512(a, mn);
    _mm512_store_si512(b, mx);
    int lo = 0x7fff, hi = 0;
    for (int i = 0; i < 32; i++) { if (a[i] < lo) lo = a[i]; if (b[i] > hi) hi = b[i]; }
    xrange r = { lo - 127, hi - 127, hi > 0 };
    return r;
}

#define fold_ok dsv4_fold_ok   /* the conditions above (simd.h), shared with the AVX2 path */

/* The tile's scale exponents k = code - 127 as kw = k * 128 (FP8: kw[j*16 + b] per 128-column block b; FP4 and
 * FP8_32: kw[j*32 + g] per 32-column group g) and their range. */
static void tile_scales(const dsv4_wview *wv, int rb, int nrr, int c0, int n, int16_t *kw, int *kmin, int *kmax) {
    const int cols = wv->cols, fp8 = wv->fmt == DSV4_W_FP8, ng = fp8 ? cdiv(n, 128) : cdiv(n, 32);
    const __mmask32 m = ng >= 32 ? 0xffffffffu : ((1u << ng) - 1);
    __m256i mn = _mm256_set1_epi8((char)0xff), mx = _mm256_setzero_si256();
    for (int j = 0; j < nrr; j++) {
        const uint8_t *sc = fp8 ? wv->scale + (size_t)((rb + j) / 128) * cdiv(cols, 128) + c0 / 128
                                : dsv4_g32_scales(wv, rb + j, c0);
        const __m256i c = _mm256_maskz_loadu_epi8(m, sc);
        mn = _mm256_mask_min_epu8(mn, m, mn, c);
        mx = _mm256_max_epu8(mx, c);
        const __m512i k = _mm512_slli_epi16(_mm512_sub_epi16(_mm512_cvtepu8_epi16(c), _mm512_set1_epi16(127)), 7);
        if (fp8) _mm256_storeu_si256((__m256i *)(kw + j * 16), _mm512_castsi512_si256(k));
        else _mm512_storeu_si512(kw + j * 32, k);
    }
    _Alignas(32) uint8_t a[32], b[32];
    _mm256_store_si256((__m256i *)a, mn);
    _mm256_store_si256((__m256i *)b, mx);
    int lo = 255, hi = 0;
    for (int i = 0; i < 32; i++) { if (a[i] < lo) lo = a[i]; if (b[i] > hi) hi = b[i]; }
    *kmin = lo - 127;
    *kmax = hi - 127;
}

/* ------------------------------------------------------------------ finish: the 16-lane tree, 16 outputs at once */
INL __m512 tree_step(__m512 a, __m512 b) {   /* lanes: pairwise sums of a (0-7) and of b (8-15) */
    const __m512i ie = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i io = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    return _mm512_add_ps(_mm512_permutex2var_ps(a, ie, b), _mm512_permutex2var_ps(a, io, b));
}
/* lane i = tree(v[i]) (simd.h: (((L0+L1)+(L2+L3))+...), each addition flushed by MXCSR FTZ, as ftz() does) */
INL __m512 tree16x16(const __m512 *v) {
    __m512 s1[8], s2[4], s3[2];   /* (unrolled, so that they stay in registers) */
    _Pragma("GCC unroll 8") for (int m = 0; m < 8; m++) s1[m] = tree_step(v[2 * m], v[2 * m + 1]);
    _Pragma("GCC unroll 4") for (int m = 0; m < 4; m++) s2[m] = tree_step(s1[2 * m], s1[2 * m + 1]);
    _Pragma("GCC unroll 2") for (int m = 0; m < 2; m++) s3[m] = tree_step(s2[2 * m], s2[2 * m + 1]);
    return tree_step(s3[0], s3[1]);
}

/* Output lane i of the tree reads only v[i], so the lanes of rows j >= nrr and of token nt (nt odd) are read as they
 * are (earlier blocks' lanes or the zeros L starts with) and their outputs dropped by the masked stores: plain
 * loads, which stay in registers (with the loads made conditional, GCC built v on the stack). */
static void finish(const dsv4_lin_job *jb, float (*L)[GTB][16], int rb, int nrr, int t0, int nt) {
    const int rows = jb->w->rows;
    const __mmask8 m = (__mmask8)((1u << nrr) - 1);
    for (int t = 0; t < nt; t += 2) {   /* t + 1 < GTB: GTB is even */
        __m512 v[16];
        _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++) {
            v[j] = _mm512_load_ps(L[j][t]);
            v[8 + j] = _mm512_load_ps(L[j][t + 1]);
        }
        __m512 o = tree16x16(v);
        if (jb->flags & DSV4_OUT_BF16) o = dsv4_round_bf16x16(o);
        _mm256_mask_storeu_ps(jb->out + (size_t)(t0 + t) * rows + rb, m, _mm512_castps512_ps256(o));
        if (t + 1 < nt)
            _mm256_mask_storeu_ps(jb->out + (size_t)(t0 + t + 1) * rows + rb, m, _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(o), 1)));
    }
}

/* ------------------------------------------------------------------ driver */
/* Prefetch (to L2) the weight bytes of the tile after (rb, c0) in the driver's order: the next GKC columns of the
 * same rows, else the first GKC of the next RB rows below rend, else (more tokens to come) the first tile of the
 * task's rows r0 again. Issued before the micro-kernels of the current tile, so that its decoding does not wait on
 * DRAM: with few tokens per call (a routed expert gets about 12 of a 512-token chunk) the decoder otherwise stalled
 * on each row piece's first read. Measured (bench_gemm 32,768 x 4,096 from DRAM, 12 tokens, interleaved): FP4 65 /
 * 51 -> 82 / 75 GMAC/s on 1 thread, 130 / 129 -> 157 / 154 on 2; FP8 68 / 65 -> 82 / 87 and 137 / 133 -> 145 / 164;
 * at 64 tokens within the noise. */
static void prefetch_next_tile(const dsv4_wview *wv, int rb, int c0, int r0, int rend, int more_tokens) {
    const int cols = wv->cols, fp4 = wv->fmt == DSV4_W_FP4;
    int nrb = rb, nc0 = c0 + GKC;
    if (nc0 >= cols) {
        nc0 = 0;
        nrb = rb + RB;
        if (nrb >= rend && more_tokens) nrb = r0;
    }
    if (nrb >= rend) return;
    const size_t bpr = fp4 ? (size_t)cols / 2 : (size_t)cols;   /* bytes per row (FP8, FP8_32: one per value) */
    const int n = cols - nc0 < GKC ? cols - nc0 : GKC, nb = fp4 ? (n + 1) / 2 : n;
    const int nrows = rend - nrb < RB ? rend - nrb : RB;
    for (int j = 0; j < nrows; j++) {
        const uintptr_t p = (uintptr_t)wv->data + (size_t)(nrb + j) * bpr + (size_t)(fp4 ? nc0 / 2 : nc0);
        /* every line of [p, p + nb), p not 64-byte aligned included (as integers, as ahead() does) */
        for (uintptr_t q = p & ~(uintptr_t)63; q < p + (uintptr_t)nb; q += 64) _mm_prefetch((const char *)q, _MM_HINT_T1);
    }
}

void dsv4_gemm_rows_avx512(const dsv4_lin_job *jb, int r0, int nr) {
    const dsv4_wview *wv = jb->w;
    const int cols = jb->cols, fmt = wv->fmt, ncb = cdiv(cols, 128);
    const int direct_bf16 = fmt == DSV4_W_BF16 && (cols % 32) == 0;
    _Alignas(64) uint16_t tile[RB * GLD];
    /* lanes of (row, token); the tokens a call uses (an even count) are zeroed once, so that finish's reads of lanes
     * no micro-kernel wrote (rows j >= nrr, token nt when nt is odd) read defined values */
    _Alignas(64) float L[RB][GTB][16];
    /* lanes of the padding rows of a short 4-row sub-block (discarded); never zeroed: the kernels start them at 0
     * on a row block's first tile (init) and read back only what they wrote */
    _Alignas(64) float sink[NT_MAX][16];
    const int ntz = jb->n_tok < GTB ? (jb->n_tok + 1) & ~1 : GTB;
    for (int j = 0; j < RB; j++) memset(L[j], 0, (size_t)ntz * sizeof L[j][0]);
    xrange xr = {0, 0, 0};
    if (fmt != DSV4_W_BF16) xr = jb->has_xr ? jb->xr : dsv4_x_range_avx512(jb);
    /* token blocks outside, row blocks inside: a block's activations (GTB tokens x cols, 512 KiB at 4,096 columns)
     * stay in L2 while every row block of the task passes over them. With the row blocks outside, each 8 rows read
     * all n_tok x cols activations again, from L3 once they outgrow L2 (0.25 byte per MAC). The tiles are decoded
     * once per block either way; the weights, read from L2 for every token block before, now come from L3 or DRAM
     * once per token block (1/64 byte per MAC for FP8, prefetched a tile ahead).
     * Measured (bench_gemm FP8 4,096 x 4,096, 2 threads): 2,048 tokens 78 -> 186 GMAC/s, 512 tokens 172 -> 182;
     * the twin's prefill of 2,048 tokens in one chunk 100 / 89 -> 120 / 115 tok/s (interleaved pairs). */
    for (int t0 = 0; t0 < jb->n_tok; t0 += GTB) {
        const int nt = jb->n_tok - t0 < GTB ? jb->n_tok - t0 : GTB;
        for (int rb = r0; rb < r0 + nr; rb += RB) {
            const int nrr = r0 + nr - rb < RB ? r0 + nr - rb : RB, nsub = cdiv(nrr, MR);
            for (int c0 = 0; c0 < cols; c0 += GKC) {
                const int n = cols - c0 < GKC ? cols - c0 : GKC, nch = cdiv(n, 32);
                const uint16_t *wt[RB];
                const mk_fn *K = K_BF16;
                int ntmax = NT_BF16;
                if (direct_bf16) {
                    for (int j = 0; j < nrr; j++) wt[j] = (const uint16_t *)wv->data + (size_t)(rb + j) * cols + c0;
                } else {
                    _Alignas(64) int16_t kw[RB * 32];
                    int fold = 0;
                    if (fmt != DSV4_W_BF16) {
                        int kmin, kmax;
                        tile_scales(wv, rb, nrr, c0, n, kw, &kmin, &kmax);
                        fold = fold_ok(fmt, &xr, kmin, kmax, cols);
                        if (dsv4_tile_decode_avx512(wv, rb, nrr, c0, n, tile, GLD, fold ? kw : NULL)) {
                            fold = 0;   /* a NaN code in the tile: unscaled, as the definition (NaN stays NaN) */
                            dsv4_tile_decode_avx512(wv, rb, nrr, c0, n, tile, GLD, NULL);
                        }
                    } else {
                        dsv4_tile_decode_scalar(wv, rb, nrr, c0, n, tile, GLD);
                    }
                    for (int j = 0; j < nrr; j++) wt[j] = tile + j * GLD;
                    if (fmt == DSV4_W_FP8) { K = fold ? K_FP8F : K_FP8; ntmax = NT_FP8; }
                    if (dsv4_fmt_g32(fmt)) { K = fold ? K_FP4F : K_FP4; ntmax = fold ? NT_FP4F : NT_FP4; }
                }
                if (fmt != DSV4_W_BF16) prefetch_next_tile(wv, rb, c0, r0, r0 + nr, t0 + GTB < jb->n_tok);
                /* per 4-row sub-block: tile rows and scale codes (padding rows repeat a real row) */
                const uint16_t *w[2][MR];
                const uint8_t *sc[2][MR];
                for (int q = 0; q < nsub; q++)
                    for (int j = 0; j < MR; j++) {
                        const int jj = q * MR + (q * MR + j < nrr ? j : 0), r = rb + jj;
                        w[q][j] = wt[jj];
                        sc[q][j] = fmt == DSV4_W_FP8 ? wv->scale + (size_t)(r / 128) * ncb + c0 / 128
                                 : dsv4_fmt_g32(fmt) ? dsv4_g32_scales(wv, r, c0) : NULL;
                    }
                /* token groups of near-equal size <= ntmax (32 tokens of BF16: 6,6,5,5,5,5); each group's
                 * activations serve both 4-row sub-blocks while they are in L1 */
                const int ngrp = cdiv(nt, ntmax);
                for (int g = 0, tt = 0; g < ngrp; g++) {
                    const int gn = (nt - tt + (ngrp - g) - 1) / (ngrp - g);
                    const uint16_t *x[NT_MAX];
                    for (int t = 0; t < gn; t++) x[t] = dsv4_lin_x(jb, t0 + tt + t) + c0;
                    for (int q = 0; q < nsub; q++) {
                        float *Lr[MR];
                        for (int j = 0; j < MR; j++) Lr[j] = q * MR + j < nrr ? L[q * MR + j][tt] : sink[0];
                        K[gn](w[q], x, nch, Lr, sc[q], c0 == 0);
                    }
                    tt += gn;
                }
            }
            finish(jb, L, rb, nrr, t0, nt);
        }
    }
}

#endif
