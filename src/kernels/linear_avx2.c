/* kernels/linear_avx2.c — the AVX2 + FMA path of dsv4_linear (pair-lane order, simd.h).
 * The VDPBF16PS step is emulated exactly: a BF16 pair stored as one 32-bit word splits into its odd element
 * (word & 0xffff0000, already an F32) and its even element (word << 16); the products are exact, so
 * fma(w_odd, x_odd, L) then fma(w_even, x_even, L) round exactly as the definition; MXCSR FTZ+DAZ gives its
 * flushing. Lanes 0-7 and 8-15 live in two YMM registers. FP8/FP4 weights are decoded to BF16 tiles with
 * the scalar tables. Compiled with -mavx2 -mfma (Makefile); elsewhere this file is empty. */
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

void dsv4_lin_rows_avx2(const dsv4_lin_job *jb, int r0, int nr) {
    const dsv4_wview *w = jb->w;
    const int cols = jb->cols, fmt = w->fmt;
    const int ncb = cdiv(cols, 128), ncs = cdiv(cols, 32);
    const unsigned csr = _mm_getcsr();
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
                    dsv4_tile_decode_scalar(w, rb, nrr, c0, n, tile, KC);
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
                        } else {
                            const uint8_t *sc = w->scale + (size_t)(rb + j) * ncs + c0 / 32;
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

#endif
