/* kernels/linear_avx512.c — the AVX-512 path of dsv4_linear (pair-lane order, simd.h).
 * Needs AVX-512 F/BW/VL/VBMI + BF16: VDPBF16PS is the pair-lane dp step itself (odd product first, RNE,
 * denormals flushed), so this path is the definition run in hardware; linear.c's self-check confirms it.
 * Weights are decoded in registers to unscaled BF16: FP8 E4M3 64 codes at a time through two 128-entry
 * VPERMI2B byte tables (low and high byte of the magnitude's BF16) plus the sign bit, interleaved by byte
 * unpacking (which is why the FP8 definition takes each 64-column block in that order); the cache decoder
 * (dsv4_fp8_dec_avx512) uses two 64-entry VPERMI2W word tables; packed FP4 through one VPERMW of the 16 E2M1 values, each byte's two nibbles
 * forming one BF16 pair (elements 2k, 2k+1). V4.1's FP8_32 (32x32 tiles) keeps the element order: one VPERMQ of
 * the codes, then the same byte tables and unpacks; a partial per 32-column group as FP4. MXCSR FTZ+DAZ is set for the call so that the scale FMA
 * flushes as the definition says. Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512bf16 -mfma
 * (Makefile); elsewhere this file is empty and the path is never chosen. */
#include "kernels/simd.h"
#if defined(__x86_64__) && defined(__AVX512BF16__) && defined(__AVX512BW__) && defined(__AVX512VBMI__)
#include <immintrin.h>
#include <pthread.h>
#include <string.h>
#include "base/util.h"

static inline int cdiv(int a, int b) { return (a + b - 1) / b; }

typedef struct { __m512i t0, t1, t2, t3, lut4, c40, c8000, c0f0f, lo0, lo1, hi0, hi1, c80, spread, shift04, q4[4], qlane; } dec_tabs;

static void tabs_init(dec_tabs *d) {
    uint16_t m[128];
    for (int i = 0; i < 128; i++) m[i] = dsv4_e4m3_bf16[i];
    d->t0 = _mm512_loadu_si512(m);
    d->t1 = _mm512_loadu_si512(m + 32);
    d->t2 = _mm512_loadu_si512(m + 64);
    d->t3 = _mm512_loadu_si512(m + 96);
    uint16_t l[32];
    /* 32 entries, the 16 values twice: VPERMW reads bits 0-4 of each word and the spreads leave bit 4 to the next
     * nibble (VPERMT2B's low words) or to the next byte (fused_fp4's VPSRLVW-shifted odd words) */
    for (int i = 0; i < 32; i++) l[i] = dsv4_e2m1_bf16[i & 15];
    d->lut4 = _mm512_loadu_si512(l);
    d->c40 = _mm512_set1_epi16(0x40);
    d->c8000 = _mm512_set1_epi16((short)0x8000);
    d->c0f0f = _mm512_set1_epi32(0x000F000F);
    uint8_t lo[128], hi[128];   /* low / high byte of the BF16 of each E4M3 magnitude */
    for (int i = 0; i < 128; i++) { lo[i] = (uint8_t)(m[i] & 0xff); hi[i] = (uint8_t)(m[i] >> 8); }
    d->lo0 = _mm512_loadu_si512(lo); d->lo1 = _mm512_loadu_si512(lo + 64);
    d->hi0 = _mm512_loadu_si512(hi); d->hi1 = _mm512_loadu_si512(hi + 64);
    d->c80 = _mm512_set1_epi8((char)0x80);
    uint8_t sp[64];   /* lane q, dword i: bytes (4q+i, 0x80, 4q+i, 0x80): byte 4q+i in both words, zero high bytes */
    uint16_t sh[32];
    for (int q = 0; q < 4; q++)
        for (int i = 0; i < 4; i++) {
            uint8_t *e = sp + 16 * q + 4 * i;
            e[0] = e[2] = (uint8_t)(4 * q + i);
            e[1] = e[3] = 0x80;
        }
    for (int i = 0; i < 32; i++) sh[i] = (uint16_t)(i & 1 ? 4 : 0);
    d->spread = _mm512_loadu_si512(sp);
    for (int q = 0; q < 4; q++) {   /* chunk q of a 64-byte group: dword k = (v[16q+k], -, s[16q+k], -) for VPERMT2B on
                                     * (v, s = v >> 4); read by VPERMB (bits 0-5) it puts v[16q+k] in all of dword k */
        uint8_t pq[64];
        for (int k = 0; k < 16; k++) {
            pq[4 * k] = pq[4 * k + 1] = (uint8_t)(16 * q + k);
            pq[4 * k + 2] = pq[4 * k + 3] = (uint8_t)(64 + 16 * q + k);
        }
        d->q4[q] = _mm512_loadu_si512(pq);
    }
    d->shift04 = _mm512_loadu_si512(sh);
    d->qlane = _mm512_set_epi64(7, 3, 6, 2, 5, 1, 4, 0);   /* qword k of lane l <- code qword l + 4k */
}

/* The tables, built once (they were rebuilt on every call: ~1 us each, which the lightning indexer's many short
 * calls at long context paid thousands of times per token). dsv4_e4m3_bf16 is filled before any path runs. */
static dec_tabs g_tabs;
static pthread_once_t g_tabs_once = PTHREAD_ONCE_INIT;
static void g_tabs_init(void) { tabs_init(&g_tabs); }
static inline const dec_tabs *tabs(void) {
    pthread_once(&g_tabs_once, g_tabs_init);
    return &g_tabs;
}

/* 64 E4M3 codes -> 64 BF16 in the FP8 block order (simd.h): *a = elements 0-7,16-23,32-39,48-55 and
 * *b = 8-15,24-31,40-47,56-63, i.e. the byte interleave of (low byte, high byte) tables. */
static inline void fp8x64_bf16_c(const dec_tabs *d, __m512i c, __m512i *a, __m512i *b) {
    __m512i lo = _mm512_permutex2var_epi8(d->lo0, c, d->lo1);
    __m512i hi = _mm512_permutex2var_epi8(d->hi0, c, d->hi1);
    hi = _mm512_ternarylogic_epi32(hi, c, d->c80, 0xF8);   /* hi | (c & 0x80): the sign */
    *a = _mm512_unpacklo_epi8(lo, hi);
    *b = _mm512_unpackhi_epi8(lo, hi);
}

/* 64 E4M3 codes -> 64 BF16 in element order (FP8_32): *a = elements 0-31, *b = 32-63. One VPERMQ first puts the
 * code qwords (q_k, q_k+4) into 128-bit lane k, so that fp8x64_bf16_c's in-lane unpacks, which take the low (high)
 * qword of every lane, yield q0..q3 (q4..q7) in order; then the same byte tables. (Measured against two VPERMT2B
 * interleaves after the lookups: faster, and the 1-token decode of FP8_32 then runs about as fast as FP8's.) */
static inline void fp8x64_bf16_nat(const dec_tabs *d, const uint8_t *p, __m512i *a, __m512i *b) {
    fp8x64_bf16_c(d, _mm512_permutexvar_epi64(d->qlane, _mm512_loadu_si512(p)), a, b);
}

/* 32 E4M3 codes -> 32 BF16 (unscaled, exact). */
static inline __m512i fp8_bf16(const dec_tabs *d, const uint8_t *p) {
    __m512i w = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)p));
    __m512i r0 = _mm512_permutex2var_epi16(d->t0, w, d->t1);
    __m512i r1 = _mm512_permutex2var_epi16(d->t2, w, d->t3);
    __mmask32 k = _mm512_test_epi16_mask(w, d->c40);
    __m512i mag = _mm512_mask_blend_epi16(k, r0, r1);
    return _mm512_ternarylogic_epi32(mag, _mm512_slli_epi16(w, 8), d->c8000, 0xF8);  /* mag | (w<<8 & 0x8000) */
}

/* 16 bytes of packed E2M1 pairs -> 32 BF16 (unscaled, exact), element order kept: the 16 bytes broadcast to the
 * four 128-bit lanes (a load), an in-lane byte shuffle puts byte k in both words of dword k, a per-word shift
 * (0 / 4) and mask leave its low / high nibble, and one VPERMW maps the nibbles to BF16 (one cross-lane shuffle
 * instead of two with a widening load). */
static inline __m512i fp4_bf16(const dec_tabs *d, const uint8_t *p) {
    __m512i b = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)p));
    __m512i w = _mm512_shuffle_epi8(b, d->spread);
    return _mm512_permutexvar_epi16(_mm512_srlv_epi16(w, d->shift04), d->lut4);
}

#define RB DSV4_LIN_RB   /* rows per tile (8) */
#define KC DSV4_LIN_KC
#define TB DSV4_LIN_TB

static inline __m512bh as_bh(__m512i v) { return (__m512bh)v; }
static inline int rb_aligned(int r) { return r % 8 == 0; }
/* Decode paths stream 8 rows at once from mmap'd 4 KiB pages, where the hardware prefetchers stop at every page:
 * each step also prefetches the same offset of the next 8-row block (one block ahead; never faults). */
#ifdef DSV4_NO_PREFETCH
#define PREFETCH(p) ((void)(p))
#else
#define PREFETCH(p) _mm_prefetch((const char *)(p), _MM_HINT_T0)
#endif
/* address `off` bytes past p, computed as an integer (past the tensor for the last block: never dereferenced) */
static inline const void *ahead(const void *p, size_t off) { return (const void *)((uintptr_t)p + off); }

/* Weights at any byte offset. A checkpoint's tensors lie where safetensors put them (only its header is padded, to
 * 8 bytes), so rows of codes start anywhere in a 64-byte line (the V4-Flash-shaped bench file: 16 or 24 bytes
 * past one). Every 64-byte load then spans two lines, which cost the one-token FP8 kernels about a quarter of
 * their rate from DRAM (bench_gemm --multi 12 --misalign 24, FP8 2,048 x 4,096, 2 threads: 50-52 -> 37-38 GB/s).
 * They load the two lines aligned and take the 64 bytes out with one VPERMT2B instead (47-52 GB/s). Rows of
 * cols % 64 == 0 codes all start `mis` bytes past a line; the kernels then hold line-aligned row pointers and
 * codes64 reads the 64 codes at p + mis (p a line, 0 < mis < 64) through the index ridx = mis + (the byte
 * order wanted). Both lines hold codes of the row, so neither read can fault; the bytes of the first line before
 * the codes and of the second after them (up to 63 before the tensor, up to 63 past its end) are read and dropped,
 * which AddressSanitizer would report on a heap buffer (a test's weights): the functions that read so are not
 * instrumented (LINE_READ). The line-aligned row pointers are computed as integers, as ahead() does. */
#define LINE_READ __attribute__((no_sanitize_address))
static inline __attribute__((always_inline)) LINE_READ __m512i codes64(const uint8_t *p, const __m512i *ridx) {
    if (!ridx) return _mm512_loadu_si512(p);
    return _mm512_permutex2var_epi8(_mm512_load_si512(p), *ridx, _mm512_load_si512(p + 64));
}
/* ridx for mis bytes past the line, bytes in order (perm NULL) or in the order of the 64-bit lanes perm */
static inline __m512i line_index(size_t mis, const __m512i *perm) {
    uint8_t b[64];
    int64_t q[8];
    if (perm) _mm512_storeu_si512(q, *perm);
    for (int i = 0; i < 64; i++) b[i] = (uint8_t)(mis + (perm ? 8 * (size_t)q[i / 8] : (size_t)(i & ~7)) + (size_t)(i & 7));
    return _mm512_loadu_si512(b);
}
/* The one-token FP8 kernel `name` of a weight: `body` inlined twice, for rows on the lines (or `lines` false: plain
 * loads) and for rows mis bytes past them (codes64 through ridx; perm: line_index's lane order). */
#define LINE_KERNEL(name, body, lines, perm)                                                                      \
    static LINE_READ void name(const dec_tabs *d, const dsv4_wview *w, int rb, int nrr, const uint16_t *x,      \
                               float L[][16]) {                                                                  \
        const size_t mis = (uintptr_t)w->data & 63;   /* the same for every row when cols % 64 == 0 */         \
        if (!mis || !(lines)) { body(d, w, rb, nrr, x, L, 0, NULL); return; }                                     \
        const __m512i ridx = line_index(mis, perm);                                                               \
        body(d, w, rb, nrr, x, L, mis, &ridx);                                                                    \
    }
#define DSV4_MAX_FUSED_GROUPS 512   /* FP4 rows of up to 16384 columns take the fused path */

/* E8M0 scale codes -> F32 for n codes (the table for the rare codes 0 and 255, bit shift otherwise). Code 255 is
 * NaN, which the shift would make +Inf; code 0 is 2^-127, which the kernels read as 0 under DAZ as the shift gives
 * it: it is tested for anyway, so that the F32 scales are dsv4_e8m0_f32's. */
static inline void scales_f32(const uint8_t *sc, int n, float *out) {
    int i = 0;
    for (; i + 64 <= n; i += 64) {   /* one test for 64 codes (the rare codes are checked in bytes) */
        const __m512i c = _mm512_loadu_si512(sc + i);
        if (_mm512_cmpeq_epi8_mask(c, _mm512_setzero_si512()) | _mm512_cmpeq_epi8_mask(c, _mm512_set1_epi8((char)0xff))) {
            for (int k = 0; k < 64; k++) out[i + k] = dsv4_e8m0_f32[sc[i + k]];
            continue;
        }
        _Pragma("GCC unroll 4") for (int q = 0; q < 4; q++)
            _mm512_storeu_ps(out + i + 16 * q, _mm512_castsi512_ps(_mm512_slli_epi32(
                _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(sc + i + 16 * q))), 23)));
    }
    for (; i + 16 <= n; i += 16) {
        __m512i b = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(sc + i)));
        __mmask16 odd = _mm512_cmpeq_epi32_mask(b, _mm512_setzero_si512()) |
                        _mm512_cmpeq_epi32_mask(b, _mm512_set1_epi32(255));
        if (odd) { for (int k = 0; k < 16; k++) out[i + k] = dsv4_e8m0_f32[sc[i + k]]; continue; }
        _mm512_storeu_ps(out + i, _mm512_castsi512_ps(_mm512_slli_epi32(b, 23)));
    }
    for (; i < n; i++) out[i] = dsv4_e8m0_f32[sc[i]];
}

/* Decode fast path, one token, 8 rows, cols % 32 == 0: weights decoded in registers (no tile). L[j] gets the
 * 16 lanes of row rb+j. */
static inline __attribute__((always_inline)) LINE_READ void
fused_fp8_body(const dec_tabs *d, const dsv4_wview *w, int rb, int nrr, const uint16_t *x, float L[][16],
               size_t mis, const __m512i *ridx) {
    const int cols = w->cols, ncb = cdiv(cols, 128);
    const uint8_t *row[8];   /* line-aligned when mis (codes64) */
    for (int j = 0; j < 8; j++) row[j] = (const uint8_t *)((uintptr_t)w->data - mis) + (size_t)(rb + (j < nrr ? j : 0)) * cols;
    const uint8_t *sc = w->scale + (size_t)(rb / 128) * ncb;   /* rb % 8 == 0: the 8 rows share a scale row */
    __m512 a[8];
    _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++) a[j] = _mm512_setzero_ps();
    for (int c0 = 0; c0 < cols; c0 += 128) {
        int ce = cols - c0 < 128 ? cols - c0 : 128;   /* 64 or 128 (cols % 64 == 0) */
        __m512 p[8];
        _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++) p[j] = _mm512_setzero_ps();
        for (int k = 0; k < ce; k += 64) {
            __m512bh xa = as_bh(_mm512_loadu_si512(x + c0 + k)), xb = as_bh(_mm512_loadu_si512(x + c0 + k + 32));
            _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++) PREFETCH(ahead(row[j] + c0 + k, 8 * (size_t)cols));
            _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++) {
                __m512i wa, wb;
                fp8x64_bf16_c(d, codes64(row[j] + c0 + k, ridx), &wa, &wb);
                p[j] = _mm512_dpbf16_ps(p[j], as_bh(wa), xa);
                p[j] = _mm512_dpbf16_ps(p[j], as_bh(wb), xb);
            }
        }
        __m512 s = _mm512_set1_ps(dsv4_e8m0_f32[sc[c0 / 128]]);
        _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++) a[j] = _mm512_fmadd_ps(p[j], s, a[j]);
    }
    _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++) _mm512_store_ps(L[j], a[j]);
}
LINE_KERNEL(fused_fp8, fused_fp8_body, 1, NULL)

/* One step t of fused_fp8_skew: rows 0-3 take their 128-column block t, rows 4-7 block t - 1. checked: the
 * first and last step, where one half is outside its row (it reads a block it owns and keeps its sums). */
static inline __attribute__((always_inline)) LINE_READ void fp8_skew_step(const dec_tabs *d, const uint8_t *const *row,
                                                                  const uint8_t *sc, const uint16_t *x, int ncb,
                                                                  size_t pf, int t, int checked, __m512 *a,
                                                                  const __m512i *ridx) {
    int b0 = t, b1 = t - 1;
    if (checked) { b0 = b0 >= ncb ? ncb - 1 : b0; b1 = b1 < 0 ? 0 : b1; }
    const int c[2] = { 128 * b0, 128 * b1 };
    __m512 p[8];
    _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++) p[j] = _mm512_setzero_ps();
    _Pragma("GCC unroll 2") for (int k = 0; k < 128; k += 64) {
        __m512bh xa[2], xb[2];
        for (int h = 0; h < 2; h++) {
            xa[h] = as_bh(_mm512_loadu_si512(x + c[h] + k));
            xb[h] = as_bh(_mm512_loadu_si512(x + c[h] + k + 32));
        }
        _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++) PREFETCH(ahead(row[j] + c[j / 4] + k, pf));
        _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++) {
            __m512i wa, wb;
            fp8x64_bf16_c(d, codes64(row[j] + c[j / 4] + k, ridx), &wa, &wb);
            p[j] = _mm512_dpbf16_ps(p[j], as_bh(wa), xa[j / 4]);
            p[j] = _mm512_dpbf16_ps(p[j], as_bh(wb), xb[j / 4]);
        }
    }
    const __m512 s0 = _mm512_set1_ps(dsv4_e8m0_f32[sc[b0]]), s1 = _mm512_set1_ps(dsv4_e8m0_f32[sc[b1]]);
    const int keep0 = checked && t >= ncb, keep1 = checked && t == 0;
    _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++) {
        __m512 f = _mm512_fmadd_ps(p[j], j < 4 ? s0 : s1, a[j]);
        a[j] = (j < 4 ? keep0 : keep1) ? a[j] : f;
    }
}

/* fused_fp8 for cols % 128 == 0, with the rows skewed: rows 4-7 run one 128-column block behind rows 0-3 (each
 * row still takes its blocks in order, block by block: the same sums as fused_fp8). Read at the same column, the
 * 8 rows (row strides of 1,024-8,192 bytes: every V4 FP8 matrix) and their prefetches meet in a few L1 sets and
 * DRAM banks; skewed, two groups of 4. Measured from DRAM, one token, AVX-512, Zen 5, interleaved runs: FP8
 * 65,536 x 4,096 at 1 / 2 threads 22-24 -> 26-27 / 44-45 -> 47-53 GB/s, 131,072 x 2,048 24 -> 32 / 51 -> 61,
 * 262,144 x 1,024 23 -> 34 / 58-64 -> 62-64; 32,768 x 8,192 23 -> 25 / 41-45 -> 47. From the caches its
 * arithmetic rate is lower (about 42 against 49 GB/s per core for 1,024 x 4,096: two sets of activations in
 * registers), still above a core's share of DRAM. */
static inline __attribute__((always_inline)) LINE_READ void
fused_fp8_skew_body(const dec_tabs *d, const dsv4_wview *w, int rb, int nrr, const uint16_t *x, float L[][16],
                    size_t mis, const __m512i *ridx) {
    const int cols = w->cols, ncb = cols / 128;
    const size_t pf = 8 * (size_t)cols;   /* the same offset of the next 8-row block */
    const uint8_t *row[8];   /* line-aligned when mis (codes64) */
    for (int j = 0; j < 8; j++) row[j] = (const uint8_t *)((uintptr_t)w->data - mis) + (size_t)(rb + (j < nrr ? j : 0)) * cols;
    const uint8_t *sc = w->scale + (size_t)(rb / 128) * ncb;   /* rb % 8 == 0: the 8 rows share a scale row */
    __m512 a[8];
    _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++) a[j] = _mm512_setzero_ps();
    fp8_skew_step(d, row, sc, x, ncb, pf, 0, 1, a, ridx);
    for (int t = 1; t < ncb; t++) fp8_skew_step(d, row, sc, x, ncb, pf, t, 0, a, ridx);
    fp8_skew_step(d, row, sc, x, ncb, pf, ncb, 1, a, ridx);
    _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++) _mm512_store_ps(L[j], a[j]);
}
LINE_KERNEL(fused_fp8_skew, fused_fp8_skew_body, 1, NULL)

/* FP8_32 (V4.1), one token, 8 rows (rb % 8 == 0: one 32-row tile row, so the 8 rows share each group's scale),
 * cols % 32 == 0: per 32-column group P = dp(0, chunk), L = fma(s, P, L). */
static inline __attribute__((always_inline)) LINE_READ void
fused_fp8_32_body(const dec_tabs *d, const dsv4_wview *w, int rb, int nrr, const uint16_t *x, float L[][16],
                  size_t mis, const __m512i *ridx) {
    const int cols = w->cols;
    const uint8_t *row[8];   /* line-aligned when mis (codes64; ridx then also does fp8x64_bf16_nat's VPERMQ) */
    for (int j = 0; j < 8; j++) row[j] = (const uint8_t *)((uintptr_t)w->data - mis) + (size_t)(rb + (j < nrr ? j : 0)) * cols;
    const uint8_t *sc = dsv4_g32_scales(w, rb, 0);
    __m512 a[8];
    const __m512 z = _mm512_setzero_ps();
    _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++) a[j] = _mm512_setzero_ps();
    int c0 = 0;
    for (; c0 + 64 <= cols; c0 += 64) {
        __m512bh xa = as_bh(_mm512_loadu_si512(x + c0)), xb = as_bh(_mm512_loadu_si512(x + c0 + 32));
        const __m512 s0 = _mm512_set1_ps(dsv4_e8m0_f32[sc[c0 / 32]]), s1 = _mm512_set1_ps(dsv4_e8m0_f32[sc[c0 / 32 + 1]]);
        _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++) PREFETCH(ahead(row[j] + c0, 8 * (size_t)cols));
        _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++) {
            __m512i wa, wb;
            if (ridx) fp8x64_bf16_c(d, codes64(row[j] + c0, ridx), &wa, &wb);
            else fp8x64_bf16_nat(d, row[j] + c0, &wa, &wb);
            a[j] = _mm512_fmadd_ps(_mm512_dpbf16_ps(z, as_bh(wa), xa), s0, a[j]);
            a[j] = _mm512_fmadd_ps(_mm512_dpbf16_ps(z, as_bh(wb), xb), s1, a[j]);
        }
    }
    if (c0 < cols) {   /* a last 32 columns */
        __m512bh xa = as_bh(_mm512_loadu_si512(x + c0));
        const __m512 s0 = _mm512_set1_ps(dsv4_e8m0_f32[sc[c0 / 32]]);
        _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++)
            a[j] = _mm512_fmadd_ps(_mm512_dpbf16_ps(z, as_bh(fp8_bf16(d, row[j] + mis + c0)), xa), s0, a[j]);
    }
    _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++) _mm512_store_ps(L[j], a[j]);
}
LINE_KERNEL(fused_fp8_32, fused_fp8_32_body, w->cols % 64 == 0, &d->qlane)

static void fused_bf16(const dsv4_wview *w, int rb, int nrr, const uint16_t *x, float L[][16]) {
    const int cols = w->cols;
    const uint16_t *row[8];
    _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++)
        row[j] = (const uint16_t *)w->data + (size_t)(rb + (j < nrr ? j : 0)) * cols;
    __m512 a[8];
    _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++) a[j] = _mm512_setzero_ps();
    for (int c = 0; c < cols; c += 32) {
        __m512bh xv = as_bh(_mm512_loadu_si512(x + c));
        _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++) PREFETCH(ahead(row[j] + c, 16 * (size_t)cols));
        _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++)
            a[j] = _mm512_dpbf16_ps(a[j], as_bh(_mm512_loadu_si512(row[j] + c)), xv);
    }
    _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++) _mm512_store_ps(L[j], a[j]);
}

/* The 4 chunks of a 64-byte group go through one VPERMB each (d->q4[q] read as a 64-entry byte index: byte 16q + k
 * of the row's 64 bytes to all of dword k), a per-word shift (0 / 4: VPSRLVW, which runs beside the shuffles)
 * and the VPERMW lookup: the same BF16 values as VPERMT2B on (v, v >> 4), which issues at about half VPERMB's rate
 * here. Chunks outside, rows inside: consecutive instructions belong to different rows' chains.
 * Measured (one thread, weights in L1, 8 rows x 2,048 columns): 0.61 -> 0.52 ns per 32-weight chunk. */
static void fused_fp4(const dec_tabs *d, const dsv4_wview *w, int rb, int nrr, const uint16_t *x, float L[][16]) {
    const int cols = w->cols, ncs = cols / 32;
    const uint8_t *row[8];
    _Alignas(64) float sf[8][DSV4_MAX_FUSED_GROUPS];
    for (int j = 0; j < 8; j++) {
        int r = rb + (j < nrr ? j : 0);
        row[j] = (const uint8_t *)w->data + (size_t)r * (cols / 2);
        scales_f32(w->scale + (size_t)r * ncs, ncs, sf[j]);
    }
    /* the next 8 rows' scale codes (8 x ncs bytes, one run), which the step's weight prefetches do not cover: every
     * line of [s, s + 8 * ncs), s = this block's codes + 8 * ncs, as integers (past the tensor for the last block) */
    const uintptr_t s8 = (uintptr_t)(w->scale + (size_t)rb * ncs) + 8 * (size_t)ncs;
    for (uintptr_t q = s8 & ~(uintptr_t)63; q < s8 + 8 * (size_t)ncs; q += 64) PREFETCH((const void *)q);
    __m512 a[8];
    _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++) a[j] = _mm512_setzero_ps();
    const __m512 z = _mm512_setzero_ps();
    int c = 0;
    for (; c + 4 <= ncs; c += 4) {   /* 64-byte groups: 4 chunks of each row */
        __m512i v[8];
        _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++) v[j] = _mm512_loadu_si512(row[j] + 16 * c);
        _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++) PREFETCH(ahead(row[j] + 16 * c, 8 * (size_t)(cols / 2)));
        _Pragma("GCC unroll 4") for (int q = 0; q < 4; q++) {
            const __m512bh xq = as_bh(_mm512_loadu_si512(x + 32 * (c + q)));
            _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++) {
                const __m512i wq = _mm512_permutexvar_epi16(
                    _mm512_srlv_epi16(_mm512_permutexvar_epi8(d->q4[q], v[j]), d->shift04), d->lut4);
                a[j] = _mm512_fmadd_ps(_mm512_dpbf16_ps(z, as_bh(wq), xq), _mm512_set1_ps(sf[j][c + q]), a[j]);
            }
        }
    }
    for (; c < ncs; c++) {
        __m512bh xv = as_bh(_mm512_loadu_si512(x + 32 * c));
        _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++) {
            __m512 p = _mm512_dpbf16_ps(z, as_bh(fp4_bf16(d, row[j] + 16 * c)), xv);
            a[j] = _mm512_fmadd_ps(p, _mm512_set1_ps(sf[j][c]), a[j]);
        }
    }
    _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++) _mm512_store_ps(L[j], a[j]);
}

/* Tile decoder of the multi-token path (gemm_avx512.c): rows [rb, rb+nrr) x columns [c0, c0+n) of an FP8/FP8_32/FP4
 * weight to BF16 in tile[j * ld ...] (n rounded up to 32, zero padded). kw == NULL: unscaled (the definition's
 * decoded weights). Otherwise each nonzero value also gets its scale 2^k folded in (exponent field + k; the caller
 * checked that every result is a normal BF16, so this is exact), kw holding k * 128: FP8 kw[j * 16 + b] for row j
 * and the tile's 128-column block b; FP4 / FP8_32 kw[j * 32 + g] for row j and the tile's 32-column group g
 * (n <= 1024). */
static inline __m512i fold_k(__m512i v, const int16_t *kw) {
    return _mm512_mask_add_epi16(v, _mm512_test_epi16_mask(v, _mm512_set1_epi16(0x7fff)), v, _mm512_set1_epi16(*kw));
}
/* nonzero bits where one of the 64 codes is an E4M3 NaN code ((c & 0x7f) == 0x7f) */
static inline __mmask64 fp8_nan64(__m512i c) {
    return _mm512_cmpeq_epi8_mask(_mm512_or_si512(c, _mm512_set1_epi8((char)0x80)), _mm512_set1_epi8((char)0xff));
}
int dsv4_tile_decode_avx512(const dsv4_wview *w, int rb, int nrr, int c0, int n, uint16_t *tile, int ld, const int16_t *kw) {
    const int fmt = w->fmt, cols = w->cols, nch = cdiv(n, 32);
    const dec_tabs *d = tabs();
    if (fmt == DSV4_W_FP8 && (n % 64) == 0) {
        __mmask64 nan = 0;   /* folded: NaN codes seen (then the caller decodes again unscaled) */
        for (int j = 0; j < nrr; j++) {
            const uint8_t *src = (const uint8_t *)w->data + (size_t)(rb + j) * cols + c0;
            for (int c = 0; c < n; c += 64) {
                __m512i wa, wb, cv = _mm512_loadu_si512(src + c);
                fp8x64_bf16_c(d, cv, &wa, &wb);
                if (kw) {
                    nan |= fp8_nan64(cv);
                    wa = fold_k(wa, kw + j * 16 + c / 128); wb = fold_k(wb, kw + j * 16 + c / 128);
                }
                _mm512_store_si512(tile + (size_t)j * ld + c, wa);
                _mm512_store_si512(tile + (size_t)j * ld + c + 32, wb);
            }
        }
        return nan != 0;
    } else if (fmt == DSV4_W_FP8_32 && (n % 32) == 0) {
        __mmask64 nan = 0;
        for (int j = 0; j < nrr; j++) {
            const uint8_t *src = (const uint8_t *)w->data + (size_t)(rb + j) * cols + c0;
            uint16_t *t = tile + (size_t)j * ld;
            int c = 0;
            for (; c + 64 <= n; c += 64) {
                __m512i wa, wb;
                if (kw) nan |= fp8_nan64(_mm512_loadu_si512(src + c));
                fp8x64_bf16_nat(d, src + c, &wa, &wb);
                if (kw) { wa = fold_k(wa, kw + j * 32 + c / 32); wb = fold_k(wb, kw + j * 32 + c / 32 + 1); }
                _mm512_store_si512(t + c, wa);
                _mm512_store_si512(t + c + 32, wb);
            }
            if (c < n) {
                if (kw) nan |= fp8_nan64(_mm512_maskz_loadu_epi8(0xffffffffull, src + c));
                __m512i v = fp8_bf16(d, src + c);
                _mm512_store_si512(t + c, kw ? fold_k(v, kw + j * 32 + c / 32) : v);
            }
        }
        return nan != 0;
    } else if (fmt == DSV4_W_FP4 && (n % 32) == 0) {
        /* 64 bytes (4 groups) at a time, one VPERMT2B (the spread over the bytes and their copy shifted by 4) and one
         * VPERMW per group (fused_fp4 takes VPERMB + VPSRLVW instead; here that was about 4 % slower); folded,
         * each group looks its codes up in a table whose nonzero entries carry the group's k (one masked VPADDW on
         * the table, the zero entries 0 / 8 / 16 / 24 fixed), instead of testing and adding on the decoded values */
        const __mmask32 nz = 0xFEFEFEFEu;
        for (int j = 0; j < nrr; j++) {
            const uint8_t *src = (const uint8_t *)w->data + (size_t)(rb + j) * (cols / 2) + c0 / 2;
            uint16_t *t = tile + (size_t)j * ld;
            _Alignas(64) uint32_t k2[32];   /* k * 128 in both halves: a dword broadcast is a plain load */
            if (kw) {
                __m512i h = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(kw + j * 32)));
                __m512i l = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(kw + j * 32 + 16)));
                _mm512_store_si512(k2, _mm512_or_si512(h, _mm512_slli_epi32(h, 16)));
                _mm512_store_si512(k2 + 16, _mm512_or_si512(l, _mm512_slli_epi32(l, 16)));
            }
            int c = 0;
            for (; c + 4 <= nch; c += 4) {
                const __m512i v = _mm512_loadu_si512(src + 16 * c), sh = _mm512_srli_epi16(v, 4);
                _Pragma("GCC unroll 4") for (int q = 0; q < 4; q++) {
                    const __m512i lut = kw ? _mm512_mask_add_epi16(d->lut4, nz, d->lut4, _mm512_set1_epi32((int)k2[c + q])) : d->lut4;
                    _mm512_store_si512(t + 32 * (c + q), _mm512_permutexvar_epi16(_mm512_permutex2var_epi8(v, d->q4[q], sh), lut));
                }
            }
            for (; c < nch; c++) {
                __m512i v = fp4_bf16(d, src + 16 * c);
                _mm512_store_si512(t + 32 * c, kw ? fold_k(v, kw + j * 32 + c) : v);
            }
        }
    } else {
        dsv4_tile_decode_scalar(w, rb, nrr, c0, n, tile, ld);
        if (kw && (fmt == DSV4_W_FP8 || fmt == DSV4_W_FP8_32))   /* NaN codes (simd.h) */
            for (int j = 0; j < nrr; j++) {
                const uint8_t *src = (const uint8_t *)w->data + (size_t)(rb + j) * cols + c0;
                for (int c = 0; c < n; c++)
                    if ((src[c] & 0x7f) == 0x7f) return 1;
            }
        if (kw)
            for (int j = 0; j < nrr; j++)
                for (int c = 0; c < nch; c++) {
                    uint16_t *p = tile + (size_t)j * ld + 32 * c;
                    _mm512_storeu_si512(p, fold_k(_mm512_loadu_si512(p), kw + (fmt == DSV4_W_FP8 ? j * 16 + c / 4 : j * 32 + c)));
                }
    }
    return 0;
}

void dsv4_lin_rows_avx512(const dsv4_lin_job *jb, int r0, int nr) {
    const dsv4_wview *w = jb->w;
    const int cols = jb->cols, rows = w->rows, fmt = w->fmt;
    const unsigned csr = _mm_getcsr();
    _mm_setcsr(csr | 0x8040);   /* FTZ | DAZ */
    const int fused = jb->n_tok <= 2 && (cols % 32) == 0 && (rb_aligned(r0)) &&
                      ((fmt == DSV4_W_FP8 && cols % 64 == 0) || fmt == DSV4_W_BF16 || fmt == DSV4_W_FP8_32 ||
                       (fmt == DSV4_W_FP4 && cols / 32 <= DSV4_MAX_FUSED_GROUPS));
    if (!fused) {   /* multi-token calls: register-blocked micro-kernels (gemm_avx512.c) */
        dsv4_gemm_rows_avx512(jb, r0, nr);
        _mm_setcsr(csr);
        return;
    }
    const dec_tabs *d = tabs();
    for (int rb = r0; rb < r0 + nr; rb += RB) {
        int nrr = r0 + nr - rb < RB ? r0 + nr - rb : RB;
        if (fused) {
            _Alignas(64) float F[8][16];
            for (int t = 0; t < jb->n_tok; t++) {
                if (fmt == DSV4_W_FP8 && cols % 128 == 0 && cols > 0) fused_fp8_skew(d, w, rb, nrr, dsv4_lin_x(jb, t), F);
                else if (fmt == DSV4_W_FP8) fused_fp8(d, w, rb, nrr, dsv4_lin_x(jb, t), F);
                else if (fmt == DSV4_W_FP8_32) fused_fp8_32(d, w, rb, nrr, dsv4_lin_x(jb, t), F);
                else if (fmt == DSV4_W_BF16) fused_bf16(w, rb, nrr, dsv4_lin_x(jb, t), F);
                else fused_fp4(d, w, rb, nrr, dsv4_lin_x(jb, t), F);
                for (int j = 0; j < nrr; j++) {
                    float v = dsv4_tree16(F[j]);
                    if (jb->flags & DSV4_OUT_BF16) v = dsv4_round_bf16(v);
                    jb->out[(size_t)t * rows + rb + j] = v;
                }
            }
        }
    }
    _mm_setcsr(csr);
}

void dsv4_axpy_bf16_avx512(float *acc, float a, const uint16_t *v, int n) {
    const __m512 av = _mm512_set1_ps(a);
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 x = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(v + i))), 16));
        _mm512_storeu_ps(acc + i, _mm512_add_ps(_mm512_loadu_ps(acc + i), _mm512_mul_ps(av, x)));
    }
    for (; i < n; i++) acc[i] += a * dsv4_bf16f(v[i]);
}

/* 32 unscaled BF16 values times 2^(k-127) (exact) */
static inline __m512i scale_bf16x32(__m512i v, float scale) {
    __m512 s = _mm512_set1_ps(scale);
    __m512 lo = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(v)), 16));
    __m512 hi = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(v, 1)), 16));
    lo = _mm512_mul_ps(lo, s);
    hi = _mm512_mul_ps(hi, s);
    /* the products are BF16-exact: take the upper halves (no rounding) */
    __m512i idx = _mm512_set_epi16(63, 61, 59, 57, 55, 53, 51, 49, 47, 45, 43, 41, 39, 37, 35, 33,
                                   31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    return _mm512_permutex2var_epi16(_mm512_castps_si512(lo), idx, _mm512_castps_si512(hi));
}

void dsv4_fp8_dec_avx512(const uint8_t *codes, const uint8_t *scales, int n, int block, uint16_t *out) {
    if (n % 32 || block % 32) { dsv4_fp8_dec_scalar(codes, scales, n, block, out); return; }
    const dec_tabs *d = tabs();
    for (int i = 0; i < n; i += 32)
        _mm512_storeu_si512(out + i, scale_bf16x32(fp8_bf16(d, codes + i), dsv4_e8m0_f32[scales[i / block]]));
}

void dsv4_fp4_dec_avx512(const uint8_t *codes, const uint8_t *scales, int n, int block, uint16_t *out) {
    if (n % 32 || block != 32) { dsv4_fp4_dec_scalar(codes, scales, n, block, out); return; }
    const dec_tabs *d = tabs();
    for (int i = 0; i < n; i += 32)
        _mm512_storeu_si512(out + i, scale_bf16x32(fp4_bf16(d, codes + i / 2), dsv4_e8m0_f32[scales[i / 32]]));
}

#endif
