/* kernels/linear_avx512.c — the AVX-512 path of dsv4_linear / dsv4_dot_bf16 (pair-lane order, simd.h).
 * Needs AVX-512 F/BW/VL + BF16: VDPBF16PS is the pair-lane dp step itself (odd product first, RNE,
 * denormals flushed), so this path is the definition run in hardware; linear.c's self-check confirms it.
 * Weights are decoded in registers to unscaled BF16: FP8 E4M3 through two 64-entry VPERMI2W tables of the
 * magnitude plus the sign bit; packed FP4 through one VPERMW of the 16 E2M1 values, each byte's two nibbles
 * forming one BF16 pair (elements 2k, 2k+1). MXCSR FTZ+DAZ is set for the call so that the scale FMA
 * flushes as the definition says. Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512bf16 -mfma
 * (Makefile); elsewhere this file is empty and the path is never chosen. */
#include "kernels/simd.h"
#if defined(__x86_64__) && defined(__AVX512BF16__) && defined(__AVX512BW__)
#include <immintrin.h>
#include <string.h>
#include "base/util.h"

static inline int cdiv(int a, int b) { return (a + b - 1) / b; }

typedef struct { __m512i t0, t1, t2, t3, lut4, c40, c8000, c0f0f; } dec_tabs;

static void tabs_init(dec_tabs *d) {
    uint16_t m[128];
    for (int i = 0; i < 128; i++) m[i] = dsv4_e4m3_bf16[i];
    d->t0 = _mm512_loadu_si512(m);
    d->t1 = _mm512_loadu_si512(m + 32);
    d->t2 = _mm512_loadu_si512(m + 64);
    d->t3 = _mm512_loadu_si512(m + 96);
    uint16_t l[32];
    for (int i = 0; i < 32; i++) l[i] = dsv4_e2m1_bf16[i & 15];
    d->lut4 = _mm512_loadu_si512(l);
    d->c40 = _mm512_set1_epi16(0x40);
    d->c8000 = _mm512_set1_epi16((short)0x8000);
    d->c0f0f = _mm512_set1_epi32(0x000F000F);
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

/* 16 bytes of packed E2M1 pairs -> 32 BF16 (unscaled, exact), element order kept. */
static inline __m512i fp4_bf16(const dec_tabs *d, const uint8_t *p) {
    __m512i b = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p));
    __m512i idx = _mm512_ternarylogic_epi32(b, _mm512_slli_epi32(b, 12), d->c0f0f, 0xA8);  /* (b | b<<12) & 0x000F000F */
    return _mm512_permutexvar_epi16(idx, d->lut4);
}

#define RB DSV4_LIN_RB
#define KC DSV4_LIN_KC
#define TB 8

static inline __m512bh as_bh(__m512i v) { return (__m512bh)v; }

void dsv4_lin_rows_avx512(const dsv4_lin_job *jb, int r0, int nr) {
    const dsv4_wview *w = jb->w;
    const int cols = jb->cols, rows = w->rows, fmt = w->fmt;
    const int ncb = cdiv(cols, 128), ncs = cdiv(cols, 32);
    const unsigned csr = _mm_getcsr();
    _mm_setcsr(csr | 0x8040);   /* FTZ | DAZ */
    dec_tabs d;
    tabs_init(&d);
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
                int ldt = KC;
                if (direct_bf16) {
                    for (int j = 0; j < nrr; j++) wt[j] = (const uint16_t *)w->data + (size_t)(rb + j) * cols + c0;
                } else {
                    if (fmt == DSV4_W_FP8 && (n % 32) == 0) {
                        for (int j = 0; j < nrr; j++) {
                            const uint8_t *src = (const uint8_t *)w->data + (size_t)(rb + j) * cols + c0;
                            for (int c = 0; c < nch; c++)
                                _mm512_store_si512(tile + j * KC + 32 * c, fp8_bf16(&d, src + 32 * c));
                        }
                    } else if (fmt == DSV4_W_FP4 && (n % 32) == 0) {
                        for (int j = 0; j < nrr; j++) {
                            const uint8_t *src = (const uint8_t *)w->data + (size_t)(rb + j) * (cols / 2) + c0 / 2;
                            for (int c = 0; c < nch; c++)
                                _mm512_store_si512(tile + j * KC + 32 * c, fp4_bf16(&d, src + 16 * c));
                        }
                    } else {
                        dsv4_tile_decode_scalar(w, rb, nrr, c0, n, tile, KC);
                    }
                    for (int j = 0; j < nrr; j++) wt[j] = tile + j * ldt;
                }
                for (int j = nrr; j < RB; j++) wt[j] = wt[0];
                for (int t = 0; t < nt; t++) {
                    const uint16_t *x = jb->xb + (size_t)(t0 + t) * jb->colsp + c0;
                    __m512 a0 = _mm512_load_ps(L[0][t]), a1 = _mm512_load_ps(L[1][t]);
                    __m512 a2 = _mm512_load_ps(L[2][t]), a3 = _mm512_load_ps(L[3][t]);
                    if (fmt == DSV4_W_BF16) {
                        for (int c = 0; c < nch; c++) {
                            __m512bh xv = as_bh(_mm512_loadu_si512(x + 32 * c));
                            a0 = _mm512_dpbf16_ps(a0, as_bh(_mm512_loadu_si512(wt[0] + 32 * c)), xv);
                            a1 = _mm512_dpbf16_ps(a1, as_bh(_mm512_loadu_si512(wt[1] + 32 * c)), xv);
                            a2 = _mm512_dpbf16_ps(a2, as_bh(_mm512_loadu_si512(wt[2] + 32 * c)), xv);
                            a3 = _mm512_dpbf16_ps(a3, as_bh(_mm512_loadu_si512(wt[3] + 32 * c)), xv);
                        }
                    } else if (fmt == DSV4_W_FP8) {
                        const uint8_t *sc[RB];
                        for (int j = 0; j < RB; j++) sc[j] = w->scale + (size_t)((rb + (j < nrr ? j : 0)) / 128) * ncb;
                        for (int c = 0; c < nch; c += 4) {
                            __m512 p0 = _mm512_setzero_ps(), p1 = p0, p2 = p0, p3 = p0;
                            int ce = c + 4 < nch ? c + 4 : nch;
                            for (int k = c; k < ce; k++) {
                                __m512bh xv = as_bh(_mm512_loadu_si512(x + 32 * k));
                                p0 = _mm512_dpbf16_ps(p0, as_bh(_mm512_load_si512(wt[0] + 32 * k)), xv);
                                p1 = _mm512_dpbf16_ps(p1, as_bh(_mm512_load_si512(wt[1] + 32 * k)), xv);
                                p2 = _mm512_dpbf16_ps(p2, as_bh(_mm512_load_si512(wt[2] + 32 * k)), xv);
                                p3 = _mm512_dpbf16_ps(p3, as_bh(_mm512_load_si512(wt[3] + 32 * k)), xv);
                            }
                            int b = (c0 + 32 * c) / 128;
                            a0 = _mm512_fmadd_ps(p0, _mm512_set1_ps(dsv4_e8m0_f32[sc[0][b]]), a0);
                            a1 = _mm512_fmadd_ps(p1, _mm512_set1_ps(dsv4_e8m0_f32[sc[1][b]]), a1);
                            a2 = _mm512_fmadd_ps(p2, _mm512_set1_ps(dsv4_e8m0_f32[sc[2][b]]), a2);
                            a3 = _mm512_fmadd_ps(p3, _mm512_set1_ps(dsv4_e8m0_f32[sc[3][b]]), a3);
                        }
                    } else { /* FP4 */
                        const uint8_t *sc[RB];
                        for (int j = 0; j < RB; j++) sc[j] = w->scale + (size_t)(rb + (j < nrr ? j : 0)) * ncs + c0 / 32;
                        const __m512 z = _mm512_setzero_ps();
                        for (int c = 0; c < nch; c++) {
                            __m512bh xv = as_bh(_mm512_loadu_si512(x + 32 * c));
                            __m512 p0 = _mm512_dpbf16_ps(z, as_bh(_mm512_load_si512(wt[0] + 32 * c)), xv);
                            __m512 p1 = _mm512_dpbf16_ps(z, as_bh(_mm512_load_si512(wt[1] + 32 * c)), xv);
                            __m512 p2 = _mm512_dpbf16_ps(z, as_bh(_mm512_load_si512(wt[2] + 32 * c)), xv);
                            __m512 p3 = _mm512_dpbf16_ps(z, as_bh(_mm512_load_si512(wt[3] + 32 * c)), xv);
                            a0 = _mm512_fmadd_ps(p0, _mm512_set1_ps(dsv4_e8m0_f32[sc[0][c]]), a0);
                            a1 = _mm512_fmadd_ps(p1, _mm512_set1_ps(dsv4_e8m0_f32[sc[1][c]]), a1);
                            a2 = _mm512_fmadd_ps(p2, _mm512_set1_ps(dsv4_e8m0_f32[sc[2][c]]), a2);
                            a3 = _mm512_fmadd_ps(p3, _mm512_set1_ps(dsv4_e8m0_f32[sc[3][c]]), a3);
                        }
                    }
                    _mm512_store_ps(L[0][t], a0); _mm512_store_ps(L[1][t], a1);
                    _mm512_store_ps(L[2][t], a2); _mm512_store_ps(L[3][t], a3);
                }
            }
            for (int t = 0; t < nt; t++)
                for (int j = 0; j < nrr; j++) {
                    float v = dsv4_tree16(L[j][t]);
                    if (jb->flags & DSV4_OUT_BF16) v = dsv4_round_bf16(v);
                    jb->out[(size_t)(t0 + t) * rows + rb + j] = v;
                }
        }
    }
    _mm_setcsr(csr);
}

float dsv4_dot_bf16_avx512(const uint16_t *a, const uint16_t *b, int n32) {
    const unsigned csr = _mm_getcsr();
    _mm_setcsr(csr | 0x8040);
    __m512 acc = _mm512_setzero_ps();
    for (int c = 0; c < n32; c++)
        acc = _mm512_dpbf16_ps(acc, as_bh(_mm512_loadu_si512(a + 32 * c)), as_bh(_mm512_loadu_si512(b + 32 * c)));
    _Alignas(64) float L[16];
    _mm512_store_ps(L, acc);
    _mm_setcsr(csr);
    return dsv4_tree16(L);
}
#endif
