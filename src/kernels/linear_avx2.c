/* kernels/linear_avx2.c — the AVX2 + FMA (+ F16C) path of dsv4_linear (pair-lane order, simd.h).
 * The VDPBF16PS step is emulated exactly: a BF16 pair stored as one 32-bit word splits into its odd element
 * (word & 0xffff0000, already an F32) and its even element (word << 16); the products are exact, so
 * fma(w_odd, x_odd, L) then fma(w_even, x_even, L) round exactly as the definition; MXCSR FTZ+DAZ gives its
 * flushing. Lanes 0-7 and 8-15 live in two YMM registers. FP8/FP8_32/FP4 weights are decoded in registers
 * (below; FP8 by F16C where exact). Compiled with -mavx2 -mfma -mf16c (Makefile); elsewhere this file is empty. */
#include "kernels/simd.h"
#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#include <string.h>
#include "base/util.h"

static inline int cdiv(int a, int b) { return (a + b - 1) / b; }

#define RB DSV4_LIN_RB
#define KC DSV4_LIN_KC
#define TB DSV4_LIN_TB

/* One 32-column dp step on lanes (A: 0-7, B: 8-15); xo/xe are the split activations of the chunk. */
static inline void dp32(__m256 *A, __m256 *B, const uint16_t *w, const __m256 xo0, const __m256 xe0,
                        const __m256 xo1, const __m256 xe1) {
    const __m256i hi = _mm256_set1_epi32((int)0xffff0000u);
    __m256i w0 = _mm256_loadu_si256((const __m256i *)w), w1 = _mm256_loadu_si256((const __m256i *)(w + 16));
    *A = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(w0, hi)), xo0, *A);
    *A = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(w0, 16)), xe0, *A);
    *B = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(w1, hi)), xo1, *B);
    *B = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(w1, 16)), xe1, *B);
}

static inline void split_x(const uint16_t *x, __m256 *xo0, __m256 *xe0, __m256 *xo1, __m256 *xe1) {
    const __m256i hi = _mm256_set1_epi32((int)0xffff0000u);
    __m256i x0 = _mm256_loadu_si256((const __m256i *)x), x1 = _mm256_loadu_si256((const __m256i *)(x + 16));
    *xo0 = _mm256_castsi256_ps(_mm256_and_si256(x0, hi));
    *xe0 = _mm256_castsi256_ps(_mm256_slli_epi32(x0, 16));
    *xo1 = _mm256_castsi256_ps(_mm256_and_si256(x1, hi));
    *xe1 = _mm256_castsi256_ps(_mm256_slli_epi32(x1, 16));
}

/* ------------------------------------------------------------------ decode fast path (1-2 tokens)
 * FP8 / FP4 weights decoded in registers straight to the F32 values of each lane's odd and even element (no
 * BF16 tile), one row at a time (FP8 two, by F16C, where exact: fast_fp8_rows2 below; 8 rows of a block are
 * contiguous in memory, which the prefetchers follow):
 * - E2M1: the magnitude from an 8-entry VPERMPS table; the sign by XOR with (nibble << 28), whose bits 28-30 (the
 *   magnitude bits) the table entries carry pre-XORed, so one shift + one XOR place the sign and cancel them;
 * - E4M3: integer arithmetic on the code (e4m3_f32; a multiply of the code's bits read as an F32 would be shorter
 *   but reads F32 subnormals, which cost a microcode assist each without DAZ: 7x slower measured); NaN codes
 *   (0x7f, 0xff) give the BF16 NaN as the tables do; sign by XOR.
 * The activations are split once per call into F32 odd/even halves laid out per chunk as
 * [x_odd lanes 0-7 | x_even lanes 0-7 | x_odd lanes 8-15 | x_even lanes 8-15]. */
#define FAST_MAX_COLS 16384
static _Thread_local _Alignas(32) float xs_buf[2][FAST_MAX_COLS];

static void split_x_f32(const uint16_t *x, int cols, float *xs) {
    for (int c = 0; c < cols; c += 32) {
        __m256 xo0, xe0, xo1, xe1;
        split_x(x + c, &xo0, &xe0, &xo1, &xe1);
        _mm256_store_ps(xs + c, xo0); _mm256_store_ps(xs + c + 8, xe0);
        _mm256_store_ps(xs + c + 16, xo1); _mm256_store_ps(xs + c + 24, xe1);
    }
}

/* one dp step of a chunk on lanes (A, B) from zero: P = fma(w_even, x_even, fma(w_odd, x_odd, 0)) */
static inline __m256 dp_half(__m256 wo, __m256 we, const float *xs) {
    __m256 a = _mm256_fmadd_ps(wo, _mm256_load_ps(xs), _mm256_setzero_ps());
    return _mm256_fmadd_ps(we, _mm256_load_ps(xs + 8), a);
}
static inline __m256 dp_half_acc(__m256 P, __m256 wo, __m256 we, const float *xs) {
    P = _mm256_fmadd_ps(wo, _mm256_load_ps(xs), P);
    return _mm256_fmadd_ps(we, _mm256_load_ps(xs + 8), P);
}

/* 8 packed E2M1 pairs (bytes) -> F32 of the even (low nibble) and odd (high nibble) elements */
static inline void fp4x8_f32(const uint8_t *p, __m256i te, __m256 *we, __m256 *wo) {
    __m256i d = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p)), o = _mm256_srli_epi32(d, 4);
    *we = _mm256_castsi256_ps(_mm256_xor_si256(_mm256_castps_si256(_mm256_permutevar8x32_ps(_mm256_castsi256_ps(te), d)),
                                               _mm256_slli_epi32(d, 28)));
    *wo = _mm256_castsi256_ps(_mm256_xor_si256(_mm256_castps_si256(_mm256_permutevar8x32_ps(_mm256_castsi256_ps(te), o)),
                                               _mm256_slli_epi32(o, 28)));
}

/* E4M3 codes in the low byte of each dword -> F32 (exact; NaN codes -> the BF16 NaN). A normal code's F32 bits
 * are (code & 0x7f) << 20 plus 120 in the exponent field (E4M3 bias 7, F32 bias 127); a subnormal code (exponent
 * field 0: m x 2^-9) comes from an 8-entry table instead. Integer adds only: no F32 subnormal is ever formed. */
static inline __m256 e4m3_f32(__m256i c, __m256 tsub) {
    const __m256i m7f = _mm256_set1_epi32(0x7f);
    __m256i i = _mm256_and_si256(c, m7f);
    __m256 v = _mm256_castsi256_ps(_mm256_add_epi32(_mm256_slli_epi32(i, 20), _mm256_set1_epi32(120 << 23)));
    v = _mm256_blendv_ps(v, _mm256_permutevar8x32_ps(tsub, i), _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(8), i)));
    v = _mm256_blendv_ps(v, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fc00000)), _mm256_castsi256_ps(_mm256_cmpeq_epi32(i, m7f)));
    return _mm256_xor_ps(v, _mm256_castsi256_ps(_mm256_and_si256(_mm256_slli_epi32(c, 24), _mm256_set1_epi32((int)0x80000000u))));
}
/* 16 E4M3 codes (8 pairs) -> F32 of the even and odd elements */
static inline void fp8x16_f32(__m128i codes, __m256 tsub, __m256 *we, __m256 *wo) {
    __m256i d = _mm256_cvtepu8_epi16(codes);
    *we = e4m3_f32(d, tsub);
    *wo = e4m3_f32(_mm256_srli_epi32(d, 16), tsub);
}

static void fast_fp4_row(const dsv4_wview *w, int r, const float *xs, __m256i te, float L[16]) {
    const int cols = w->cols, ncs = cols / 32;
    const uint8_t *row = (const uint8_t *)w->data + (size_t)r * (cols / 2), *sc = w->scale + (size_t)r * ncs;
    __m256 A = _mm256_setzero_ps(), B = A;
    for (int c = 0; c < ncs; c++) {
        __m256 we, wo;
        fp4x8_f32(row + 16 * c, te, &we, &wo);
        __m256 PA = dp_half(wo, we, xs + 32 * c);
        fp4x8_f32(row + 16 * c + 8, te, &we, &wo);
        __m256 PB = dp_half(wo, we, xs + 32 * c + 16);
        __m256 s = _mm256_set1_ps(dsv4_ftz(dsv4_e8m0_f32[sc[c]]));
        A = _mm256_fmadd_ps(PA, s, A);
        B = _mm256_fmadd_ps(PB, s, B);
    }
    _mm256_storeu_ps(L, A); _mm256_storeu_ps(L + 8, B);
}

/* 16 E4M3 codes (8 pairs) -> F32 of the even and odd elements times 2^-8, by F16C: the code's exponent and mantissa
 * bits placed as an F16's ((c & 0x7f) << 7, the sign at bit 15) are the E4M3 value times 2^-8, subnormal codes
 * included (F16 subnormals; VCVTPH2PS converts them exactly whatever MXCSR.DAZ says), and no F32 result is
 * subnormal (the smallest, 2^-17). NaN codes (0x7f, 0xff) come out as +-1.875 (480 * 2^-8): the caller checks. */
static inline void fp8x16_f32_h(__m128i codes, __m256 *we, __m256 *wo) {
    const __m128i keep = _mm_set1_epi16((short)0xBFFF);
    __m128i e = _mm_and_si128(_mm_srai_epi16(_mm_slli_epi16(codes, 8), 1), keep);            /* even codes << 7, sign */
    __m128i o = _mm_and_si128(_mm_srai_epi16(_mm_and_si128(codes, _mm_set1_epi16((short)0xFF00)), 1), keep);
    *we = _mm256_cvtph_ps(e);
    *wo = _mm256_cvtph_ps(o);
}
/* nonzero when one of the 32 codes is a NaN code ((c & 0x7f) == 0x7f) */
static inline __m256i fp8_nan32(__m256i y) {
    return _mm256_cmpeq_epi8(_mm256_or_si256(y, _mm256_set1_epi8((char)0x80)), _mm256_set1_epi8((char)0xff));
}

/* cols % 64 == 0: every 64-column block in the FP8 order, so chunk 0 of a block is columns 0-7,16-23 (lanes
 * 0-7) and 32-39,48-55 (lanes 8-15), chunk 1 the other four runs of 8: one qword permute per 32 codes. */
static void fast_fp8_row_tab(const dsv4_wview *w, int r, const float *xs, float L[16]) {
    const __m256 tsub = _mm256_setr_ps(0.0f, 0x1p-9f, 0x2p-9f, 0x3p-9f, 0x4p-9f, 0x5p-9f, 0x6p-9f, 0x7p-9f);
    const int cols = w->cols, ncb = (cols + 127) / 128;
    const uint8_t *row = (const uint8_t *)w->data + (size_t)r * cols, *sc = w->scale + (size_t)(r / 128) * ncb;
    __m256 A = _mm256_setzero_ps(), B = A;
    for (int c0 = 0; c0 < cols; c0 += 128) {
        int ce = cols - c0 < 128 ? cols - c0 : 128;
        __m256 PA = _mm256_setzero_ps(), PB = PA;
        for (int k = 0; k < ce; k += 64) {
            const uint8_t *p = row + c0 + k;
            const float *x = xs + c0 + k;
            __m256i y0 = _mm256_permute4x64_epi64(_mm256_loadu_si256((const __m256i *)p), 0xd8);        /* q0 q2 | q1 q3 */
            __m256i y1 = _mm256_permute4x64_epi64(_mm256_loadu_si256((const __m256i *)(p + 32)), 0xd8);
            __m256 we, wo;
            fp8x16_f32(_mm256_castsi256_si128(y0), tsub, &we, &wo);        PA = dp_half_acc(PA, wo, we, x);
            fp8x16_f32(_mm256_castsi256_si128(y1), tsub, &we, &wo);        PB = dp_half_acc(PB, wo, we, x + 16);
            fp8x16_f32(_mm256_extracti128_si256(y0, 1), tsub, &we, &wo);   PA = dp_half_acc(PA, wo, we, x + 32);
            fp8x16_f32(_mm256_extracti128_si256(y1, 1), tsub, &we, &wo);   PB = dp_half_acc(PB, wo, we, x + 48);
        }
        __m256 s = _mm256_set1_ps(dsv4_ftz(dsv4_e8m0_f32[sc[c0 / 128]]));
        A = _mm256_fmadd_ps(PA, s, A);
        B = _mm256_fmadd_ps(PB, s, B);
    }
    _mm256_storeu_ps(L, A); _mm256_storeu_ps(L + 8, B);
}

/* Rows r and r + 1 as fast_fp8_row_tab computes them, with the codes decoded by F16C (fp8x16_f32_h: about a third
 * of the integer decoder's instructions) to w * 2^-8 and each block's scale taken times 2^8, two rows at once (four
 * independent FMA chains: one row's two chains alone wait on the FMA latency, its order being fixed). The same
 * values when, as the caller checks, dsv4_fold_ok holds for the activations with every weight scaled by 2^-8 (no
 * product or partial sum of either form subnormal or overflowing: then P' = P * 2^-8 bit for bit, simd.h) and every
 * block's scale code of both rows is in 1..246 (s normal and s * 2^8 finite, so fma(P', s * 2^8, L) ==
 * fma(P, s, L): fp8_row_scales_ok); a row with a NaN code is done again by fast_fp8_row_tab. Measured (bench_gemm
 * --kernel avx2, FP8 256 x 4,096, one token, 1 thread, weights in the caches, Zen 5): 5.5-6.5 -> 12.0-12.4 GB/s. */
static inline int fp8_row_scales_ok(const uint8_t *sc, int ncb) {
    for (int b = 0; b < ncb; b++)
        if (sc[b] == 0 || sc[b] > 246) return 0;
    return 1;
}
static void fast_fp8_rows2(const dsv4_wview *w, int r, const float *xs, float L0[16], float L1[16]) {
    const int cols = w->cols, ncb = (cols + 127) / 128;
    const uint8_t *row0 = (const uint8_t *)w->data + (size_t)r * cols, *row1 = row0 + cols;
    const uint8_t *sc0 = w->scale + (size_t)(r / 128) * ncb, *sc1 = w->scale + (size_t)((r + 1) / 128) * ncb;
    __m256 A0 = _mm256_setzero_ps(), B0 = A0, A1 = A0, B1 = A0;
    __m256i nan0 = _mm256_setzero_si256(), nan1 = nan0;
    for (int c0 = 0; c0 < cols; c0 += 128) {
        int ce = cols - c0 < 128 ? cols - c0 : 128;
        __m256 PA0 = _mm256_setzero_ps(), PB0 = PA0, PA1 = PA0, PB1 = PA0;
        for (int k = 0; k < ce; k += 64) {
            const float *x = xs + c0 + k;
            __m256i y0 = _mm256_loadu_si256((const __m256i *)(row0 + c0 + k));
            __m256i y1 = _mm256_loadu_si256((const __m256i *)(row0 + c0 + k + 32));
            __m256i z0 = _mm256_loadu_si256((const __m256i *)(row1 + c0 + k));
            __m256i z1 = _mm256_loadu_si256((const __m256i *)(row1 + c0 + k + 32));
            nan0 = _mm256_or_si256(nan0, _mm256_or_si256(fp8_nan32(y0), fp8_nan32(y1)));
            nan1 = _mm256_or_si256(nan1, _mm256_or_si256(fp8_nan32(z0), fp8_nan32(z1)));
            y0 = _mm256_permute4x64_epi64(y0, 0xd8);        /* q0 q2 | q1 q3 */
            y1 = _mm256_permute4x64_epi64(y1, 0xd8);
            z0 = _mm256_permute4x64_epi64(z0, 0xd8);
            z1 = _mm256_permute4x64_epi64(z1, 0xd8);
            __m256 we, wo;
            fp8x16_f32_h(_mm256_castsi256_si128(y0), &we, &wo);        PA0 = dp_half_acc(PA0, wo, we, x);
            fp8x16_f32_h(_mm256_castsi256_si128(z0), &we, &wo);        PA1 = dp_half_acc(PA1, wo, we, x);
            fp8x16_f32_h(_mm256_castsi256_si128(y1), &we, &wo);        PB0 = dp_half_acc(PB0, wo, we, x + 16);
            fp8x16_f32_h(_mm256_castsi256_si128(z1), &we, &wo);        PB1 = dp_half_acc(PB1, wo, we, x + 16);
            fp8x16_f32_h(_mm256_extracti128_si256(y0, 1), &we, &wo);   PA0 = dp_half_acc(PA0, wo, we, x + 32);
            fp8x16_f32_h(_mm256_extracti128_si256(z0, 1), &we, &wo);   PA1 = dp_half_acc(PA1, wo, we, x + 32);
            fp8x16_f32_h(_mm256_extracti128_si256(y1, 1), &we, &wo);   PB0 = dp_half_acc(PB0, wo, we, x + 48);
            fp8x16_f32_h(_mm256_extracti128_si256(z1, 1), &we, &wo);   PB1 = dp_half_acc(PB1, wo, we, x + 48);
        }
        const __m256 s0 = _mm256_set1_ps(dsv4_e8m0_f32[sc0[c0 / 128]] * 256.0f);
        const __m256 s1 = _mm256_set1_ps(dsv4_e8m0_f32[sc1[c0 / 128]] * 256.0f);
        A0 = _mm256_fmadd_ps(PA0, s0, A0); B0 = _mm256_fmadd_ps(PB0, s0, B0);
        A1 = _mm256_fmadd_ps(PA1, s1, A1); B1 = _mm256_fmadd_ps(PB1, s1, B1);
    }
    if (_mm256_testz_si256(nan0, nan0)) { _mm256_storeu_ps(L0, A0); _mm256_storeu_ps(L0 + 8, B0); }
    else fast_fp8_row_tab(w, r, xs, L0);
    if (_mm256_testz_si256(nan1, nan1)) { _mm256_storeu_ps(L1, A1); _mm256_storeu_ps(L1 + 8, B1); }
    else fast_fp8_row_tab(w, r + 1, xs, L1);
}

/* FP8_32 (V4.1, element order): per 32-column group codes 0-15 give lanes 0-7, codes 16-31 lanes 8-15; P = dp(0,
 * chunk), L = fma(s, P, L) with s the scale of the row's 32-row tile row and the group. */
static void fast_fp8_32_row(const dsv4_wview *w, int r, const float *xs, float L[16]) {
    const __m256 tsub = _mm256_setr_ps(0.0f, 0x1p-9f, 0x2p-9f, 0x3p-9f, 0x4p-9f, 0x5p-9f, 0x6p-9f, 0x7p-9f);
    const int cols = w->cols, ncs = cols / 32;
    const uint8_t *row = (const uint8_t *)w->data + (size_t)r * cols, *sc = dsv4_g32_scales(w, r, 0);
    __m256 A = _mm256_setzero_ps(), B = A;
    for (int c = 0; c < ncs; c++) {
        __m256i y = _mm256_loadu_si256((const __m256i *)(row + 32 * c));
        __m256 we, wo;
        fp8x16_f32(_mm256_castsi256_si128(y), tsub, &we, &wo);
        __m256 PA = dp_half(wo, we, xs + 32 * c);
        fp8x16_f32(_mm256_extracti128_si256(y, 1), tsub, &we, &wo);
        __m256 PB = dp_half(wo, we, xs + 32 * c + 16);
        __m256 s = _mm256_set1_ps(dsv4_ftz(dsv4_e8m0_f32[sc[c]]));
        A = _mm256_fmadd_ps(PA, s, A);
        B = _mm256_fmadd_ps(PB, s, B);
    }
    _mm256_storeu_ps(L, A); _mm256_storeu_ps(L + 8, B);
}

/* Tile decode for the multi-token path: rows [rb, rb+nrr) x columns [c0, c0+n) to unscaled BF16 (the definition's
 * weights; FP8 in its 64-column block order) with the decoders above; ragged widths take the scalar decoder. */
static inline __m256i pack_pairs(__m256 we, __m256 wo) {
    return _mm256_or_si256(_mm256_and_si256(_mm256_castps_si256(wo), _mm256_set1_epi32((int)0xffff0000u)),
                           _mm256_srli_epi32(_mm256_castps_si256(we), 16));
}
static void tile_decode_avx2(const dsv4_wview *w, int rb, int nrr, int c0, int n, uint16_t *tile, int ld) {
    const int cols = w->cols;
    if (w->fmt == DSV4_W_FP4 && n % 32 == 0) {
        float te_f[8];
        for (int m = 0; m < 8; m++) {
            uint32_t u = ((uint32_t)dsv4_e2m1_bf16[m] << 16) ^ ((uint32_t)m << 28);
            memcpy(&te_f[m], &u, 4);
        }
        const __m256i te = _mm256_castps_si256(_mm256_loadu_ps(te_f));
        for (int j = 0; j < nrr; j++) {
            const uint8_t *src = (const uint8_t *)w->data + (size_t)(rb + j) * (cols / 2) + c0 / 2;
            uint16_t *t = tile + (size_t)j * ld;
            for (int c = 0; c < n; c += 32) {
                __m256 we, wo;
                fp4x8_f32(src + c / 2, te, &we, &wo);
                _mm256_store_si256((__m256i *)(t + c), pack_pairs(we, wo));
                fp4x8_f32(src + c / 2 + 8, te, &we, &wo);
                _mm256_store_si256((__m256i *)(t + c + 16), pack_pairs(we, wo));
            }
        }
    } else if (w->fmt == DSV4_W_FP8_32 && n % 32 == 0) {   /* element order */
        const __m256 tsub = _mm256_setr_ps(0.0f, 0x1p-9f, 0x2p-9f, 0x3p-9f, 0x4p-9f, 0x5p-9f, 0x6p-9f, 0x7p-9f);
        for (int j = 0; j < nrr; j++) {
            const uint8_t *src = (const uint8_t *)w->data + (size_t)(rb + j) * cols + c0;
            uint16_t *t = tile + (size_t)j * ld;
            for (int c = 0; c < n; c += 32) {
                __m256i y = _mm256_loadu_si256((const __m256i *)(src + c));
                __m256 we, wo;
                fp8x16_f32(_mm256_castsi256_si128(y), tsub, &we, &wo);
                _mm256_store_si256((__m256i *)(t + c), pack_pairs(we, wo));
                fp8x16_f32(_mm256_extracti128_si256(y, 1), tsub, &we, &wo);
                _mm256_store_si256((__m256i *)(t + c + 16), pack_pairs(we, wo));
            }
        }
    } else if (w->fmt == DSV4_W_FP8 && n % 64 == 0) {
        const __m256 tsub = _mm256_setr_ps(0.0f, 0x1p-9f, 0x2p-9f, 0x3p-9f, 0x4p-9f, 0x5p-9f, 0x6p-9f, 0x7p-9f);
        const __m256 two8 = _mm256_set1_ps(256.0f);
        for (int j = 0; j < nrr; j++) {
            const uint8_t *src = (const uint8_t *)w->data + (size_t)(rb + j) * cols + c0;
            uint16_t *t = tile + (size_t)j * ld;
            int c = 0;
            /* F16C first (fp8x16_f32_h, w * 2^-8 times 2^8: exact, every value normal), the whole row piece again
             * with the integer decoder when it holds a NaN code */
            __m256i nan = _mm256_setzero_si256();
            for (; c < n; c += 64) {
                __m256i y0 = _mm256_loadu_si256((const __m256i *)(src + c)), y1 = _mm256_loadu_si256((const __m256i *)(src + c + 32));
                nan = _mm256_or_si256(nan, _mm256_or_si256(fp8_nan32(y0), fp8_nan32(y1)));
                y0 = _mm256_permute4x64_epi64(y0, 0xd8);
                y1 = _mm256_permute4x64_epi64(y1, 0xd8);
                __m256 we, wo;
                fp8x16_f32_h(_mm256_castsi256_si128(y0), &we, &wo);
                _mm256_store_si256((__m256i *)(t + c), pack_pairs(_mm256_mul_ps(we, two8), _mm256_mul_ps(wo, two8)));
                fp8x16_f32_h(_mm256_castsi256_si128(y1), &we, &wo);
                _mm256_store_si256((__m256i *)(t + c + 16), pack_pairs(_mm256_mul_ps(we, two8), _mm256_mul_ps(wo, two8)));
                fp8x16_f32_h(_mm256_extracti128_si256(y0, 1), &we, &wo);
                _mm256_store_si256((__m256i *)(t + c + 32), pack_pairs(_mm256_mul_ps(we, two8), _mm256_mul_ps(wo, two8)));
                fp8x16_f32_h(_mm256_extracti128_si256(y1, 1), &we, &wo);
                _mm256_store_si256((__m256i *)(t + c + 48), pack_pairs(_mm256_mul_ps(we, two8), _mm256_mul_ps(wo, two8)));
            }
            if (_mm256_testz_si256(nan, nan)) continue;
            for (c = 0; c < n; c += 64) {
                __m256i y0 = _mm256_permute4x64_epi64(_mm256_loadu_si256((const __m256i *)(src + c)), 0xd8);
                __m256i y1 = _mm256_permute4x64_epi64(_mm256_loadu_si256((const __m256i *)(src + c + 32)), 0xd8);
                __m256 we, wo;
                fp8x16_f32(_mm256_castsi256_si128(y0), tsub, &we, &wo);
                _mm256_store_si256((__m256i *)(t + c), pack_pairs(we, wo));
                fp8x16_f32(_mm256_castsi256_si128(y1), tsub, &we, &wo);
                _mm256_store_si256((__m256i *)(t + c + 16), pack_pairs(we, wo));
                fp8x16_f32(_mm256_extracti128_si256(y0, 1), tsub, &we, &wo);
                _mm256_store_si256((__m256i *)(t + c + 32), pack_pairs(we, wo));
                fp8x16_f32(_mm256_extracti128_si256(y1, 1), tsub, &we, &wo);
                _mm256_store_si256((__m256i *)(t + c + 48), pack_pairs(we, wo));
            }
        }
    } else {
        dsv4_tile_decode_scalar(w, rb, nrr, c0, n, tile, ld);
    }
}

/* The fast path for rows [r0, r0+nr) of a 1-2 token job with FP8 (cols % 64 == 0), FP8_32 or FP4 weights. */
static void fast_rows(const dsv4_lin_job *jb, int r0, int nr) {
    const dsv4_wview *w = jb->w;
    const int cols = jb->cols, rows = w->rows;
    float te_f[8];
    for (int m = 0; m < 8; m++) {
        uint32_t u = ((uint32_t)dsv4_e2m1_bf16[m] << 16) ^ ((uint32_t)m << 28);
        memcpy(&te_f[m], &u, 4);
    }
    const __m256i te = _mm256_castps_si256(_mm256_loadu_ps(te_f));
    for (int t = 0; t < jb->n_tok; t++) split_x_f32(dsv4_lin_x(jb, t), cols, xs_buf[t]);
    int ok8 = 0;   /* fast_fp8_rows2's F16C decoding: the activations allow weights scaled by 2^-8 */
    if (w->fmt == DSV4_W_FP8) {
        const dsv4_xrange xr = jb->has_xr ? jb->xr : dsv4_x_range_avx2(jb);
        ok8 = dsv4_fold_ok(DSV4_W_FP8, &xr, -8, -8, cols);
    }
    const int ncb = (cols + 127) / 128;
    int sr = -1, sr_ok = 0;   /* the last 128-row scale row checked (128 rows share it) and its fp8_row_scales_ok */
    for (int r = r0; r < r0 + nr; r++) {
        int two = ok8 && r + 1 < r0 + nr;
        for (int q = 0; q < 2 && two; q++) {
            if ((r + q) / 128 != sr) { sr = (r + q) / 128; sr_ok = fp8_row_scales_ok(w->scale + (size_t)sr * ncb, ncb); }
            two = sr_ok;
        }
        for (int t = 0; t < jb->n_tok; t++) {
            _Alignas(32) float L[2][16];
            if (w->fmt == DSV4_W_FP4) fast_fp4_row(w, r, xs_buf[t], te, L[0]);
            else if (w->fmt == DSV4_W_FP8_32) fast_fp8_32_row(w, r, xs_buf[t], L[0]);
            else if (two) fast_fp8_rows2(w, r, xs_buf[t], L[0], L[1]);
            else fast_fp8_row_tab(w, r, xs_buf[t], L[0]);
            for (int q = 0; q <= two; q++) {
                float v = dsv4_tree16(L[q]);
                if (jb->flags & DSV4_OUT_BF16) v = dsv4_round_bf16(v);
                jb->out[(size_t)t * rows + r + q] = v;
            }
        }
        r += two;
    }
}

void dsv4_lin_rows_avx2(const dsv4_lin_job *jb, int r0, int nr) {
    const dsv4_wview *w = jb->w;
    const int cols = jb->cols, fmt = w->fmt;
    const unsigned csr = _mm_getcsr();
    if (jb->n_tok <= 2 && cols <= FAST_MAX_COLS && cols % 32 == 0 &&
        ((fmt == DSV4_W_FP8 && cols % 64 == 0) || fmt == DSV4_W_FP4 || fmt == DSV4_W_FP8_32)) {
        _mm_setcsr(csr | 0x8040);   /* FTZ | DAZ */
        fast_rows(jb, r0, nr);
        _mm_setcsr(csr);
        return;
    }
    if (jb->n_tok >= 3) {   /* multi-token calls: register-blocked micro-kernels (gemm_avx2.c) */
        _mm_setcsr(csr | 0x8040);   /* FTZ | DAZ */
        dsv4_gemm_rows_avx2(jb, r0, nr, tile_decode_avx2);
        _mm_setcsr(csr);
        return;
    }
    const int ncb = cdiv(cols, 128);
    _mm_setcsr(csr | 0x8040);   /* FTZ | DAZ */
    _Alignas(64) uint16_t tile[RB * KC];
    _Alignas(64) float L[RB][TB][16];
    const int direct_bf16 = fmt == DSV4_W_BF16 && (cols % 32) == 0;
    for (int rb = r0; rb < r0 + nr; rb += RB) {
        int nrr = r0 + nr - rb < RB ? r0 + nr - rb : RB;
        for (int t0 = 0; t0 < jb->n_tok; t0 += TB) {
            int nt = jb->n_tok - t0 < TB ? jb->n_tok - t0 : TB;
            memset(L, 0, sizeof L);
            for (int c0 = 0; c0 < cols; c0 += KC) {
                int n = cols - c0 < KC ? cols - c0 : KC, nch = cdiv(n, 32);
                const uint16_t *wt[RB];
                if (direct_bf16) {
                    for (int j = 0; j < nrr; j++) wt[j] = (const uint16_t *)w->data + (size_t)(rb + j) * cols + c0;
                } else {
                    tile_decode_avx2(w, rb, nrr, c0, n, tile, KC);
                    for (int j = 0; j < nrr; j++) wt[j] = tile + j * KC;
                }
                for (int t = 0; t < nt; t++) {
                    const uint16_t *x = dsv4_lin_x(jb, t0 + t) + c0;
                    for (int j = 0; j < nrr; j++) {
                        __m256 A = _mm256_load_ps(L[j][t]), B = _mm256_load_ps(L[j][t] + 8);
                        __m256 xo0, xe0, xo1, xe1;
                        if (fmt == DSV4_W_BF16) {
                            for (int c = 0; c < nch; c++) {
                                split_x(x + 32 * c, &xo0, &xe0, &xo1, &xe1);
                                dp32(&A, &B, wt[j] + 32 * c, xo0, xe0, xo1, xe1);
                            }
                        } else if (fmt == DSV4_W_FP8) {
                            const uint8_t *sc = w->scale + (size_t)((rb + j) / 128) * ncb;
                            for (int c = 0; c < nch; c += 4) {
                                __m256 P = _mm256_setzero_ps(), Q = P;
                                int ce = c + 4 < nch ? c + 4 : nch;
                                for (int k = c; k < ce; k++) {
                                    split_x(x + 32 * k, &xo0, &xe0, &xo1, &xe1);
                                    dp32(&P, &Q, wt[j] + 32 * k, xo0, xe0, xo1, xe1);
                                }
                                __m256 s = _mm256_set1_ps(dsv4_e8m0_f32[sc[(c0 + 32 * c) / 128]]);
                                A = _mm256_fmadd_ps(P, s, A);
                                B = _mm256_fmadd_ps(Q, s, B);
                            }
                        } else {   /* FP4, FP8_32 */
                            const uint8_t *sc = dsv4_g32_scales(w, rb + j, c0);
                            for (int c = 0; c < nch; c++) {
                                __m256 P = _mm256_setzero_ps(), Q = P;
                                split_x(x + 32 * c, &xo0, &xe0, &xo1, &xe1);
                                dp32(&P, &Q, wt[j] + 32 * c, xo0, xe0, xo1, xe1);
                                __m256 s = _mm256_set1_ps(dsv4_e8m0_f32[sc[c]]);
                                A = _mm256_fmadd_ps(P, s, A);
                                B = _mm256_fmadd_ps(Q, s, B);
                            }
                        }
                        _mm256_store_ps(L[j][t], A);
                        _mm256_store_ps(L[j][t] + 8, B);
                    }
                }
            }
            dsv4_lin_finish(jb, L, rb, nrr, t0, nt);
        }
    }
    _mm_setcsr(csr);
}

void dsv4_axpy_bf16_avx2(float *acc, float a, const uint16_t *v, int n) {
    const __m256 av = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(v + i))), 16));
        _mm256_storeu_ps(acc + i, _mm256_add_ps(_mm256_loadu_ps(acc + i), _mm256_mul_ps(av, x)));
    }
    for (; i < n; i++) acc[i] += a * dsv4_bf16f(v[i]);
}

/* F32 weights (dsv4_f32_lanes_fn, simd.h): one 8-lane register per row, each step a rounded product and then an
 * addition (VMULPS, VADDPS: GCC defines these intrinsics as vector * and +, which -ffp-contract=off, set in the
 * Makefile, keeps from fusing), exactly as the generic lanes. The generic code is built for the
 * baseline ISA, where an 8-lane vector is two SSE registers and four rows of them spill to the stack. */
void dsv4_f32_lanes_avx2(const float *w, int ldw, int nr, const float *x, int n8, float (*lanes)[8]) {
    if (nr == 4) {
        const float *w0 = w, *w1 = w0 + ldw, *w2 = w1 + ldw, *w3 = w2 + ldw;
        __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
        for (int k = 0; k < n8; k += 8) {
            const __m256 xv = _mm256_loadu_ps(x + k);
            s0 = _mm256_add_ps(s0, _mm256_mul_ps(_mm256_loadu_ps(w0 + k), xv));
            s1 = _mm256_add_ps(s1, _mm256_mul_ps(_mm256_loadu_ps(w1 + k), xv));
            s2 = _mm256_add_ps(s2, _mm256_mul_ps(_mm256_loadu_ps(w2 + k), xv));
            s3 = _mm256_add_ps(s3, _mm256_mul_ps(_mm256_loadu_ps(w3 + k), xv));
        }
        _mm256_storeu_ps(lanes[0], s0); _mm256_storeu_ps(lanes[1], s1);
        _mm256_storeu_ps(lanes[2], s2); _mm256_storeu_ps(lanes[3], s3);
        return;
    }
    for (int j = 0; j < nr; j++) {
        const float *wj = w + (size_t)j * ldw;
        __m256 s = _mm256_setzero_ps();
        for (int k = 0; k < n8; k += 8) s = _mm256_add_ps(s, _mm256_mul_ps(_mm256_loadu_ps(wj + k), _mm256_loadu_ps(x + k)));
        _mm256_storeu_ps(lanes[j], s);
    }
}

#endif
