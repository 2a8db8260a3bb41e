/* vision/tower_avx512.c — the vision tower's attention on AVX-512 BF16 (vision/tower_simd.h; docs/vision.md
 * "Speed"). Built with -mavx512f -mavx512bw -mavx512vl -mavx512bf16 and -ffp-contract=off (Makefile); called only
 * when the kernel path in use is avx512 (so VDPBF16PS passed the start-up self-check of kernels/linear.c). */
#include "vision/tower_simd.h"

#if defined(__x86_64__) && defined(__AVX512BF16__)
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "base/util.h"

/* tower.c softmax_exp on 16 lanes: the same F32 operations in the same order (no FMA). */
static inline __m512 vexp16(__m512 x) {
    const __m512 magic = _mm512_set1_ps(12582912.0f);
    __mmask16 ok = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-86.0f), _CMP_GE_OQ);
    __m512 k = _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269502f)), magic), magic);
    __m512 r = _mm512_sub_ps(_mm512_sub_ps(x, _mm512_mul_ps(k, _mm512_set1_ps(0.693145752f))),
                             _mm512_mul_ps(k, _mm512_set1_ps(1.42860677e-06f)));
    __m512 p = _mm512_set1_ps(1.38888892e-03f);
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(8.33333377e-03f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(4.16666679e-02f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.66666672e-01f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(0.5f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.0f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.0f));
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvttps_epi32(k), _mm512_set1_epi32(127)), 23);
    return _mm512_maskz_mul_ps(ok, p, _mm512_castsi512_ps(e));
}

void dsv4_vt_exp_avx512(float *y, const float *x, int n) {
    int i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, vexp16(_mm512_loadu_ps(x + i)));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(y + i, m, vexp16(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

/* Key pair (j, j+1) of 16 queries as 16 dwords (BF16 of p_j low, of p_j+1 high): the pair layout of a 32-key chunk.
 * VCVTNE2PS2BF16 rounds to nearest even as base/util.h dsv4_f32_to_bf16 does for every value p can take here: 0 or a
 * normal number in [0.7 * 2^-124, 1.42] (x = z - max is in [-inf, 0] or NaN; exp gives 0 below -86 and for NaN). */
static inline __m512i bf16_pairs(__m512 p0, __m512 p1) {
    const __m512i il = _mm512_setr_epi32(0x00100000, 0x00110001, 0x00120002, 0x00130003, 0x00140004, 0x00150005,
                                         0x00160006, 0x00170007, 0x00180008, 0x00190009, 0x001a000a, 0x001b000b,
                                         0x001c000c, 0x001d000d, 0x001e000e, 0x001f000f);
    return _mm512_permutexvar_epi16(il, (__m512i)_mm512_cvtne2ps_pbh(p1, p0));
}

/* Lane t of tree16x16(A) = the pair-lane tree (kernels/simd.h dsv4_tree16) of accumulator A[t], the additions flushed
 * by MXCSR FTZ; every level adds the same pairs as the tree: per 128-bit lane k, level 1 of (A, B) gives
 * [A(4k)+A(4k+1), A(4k+2)+A(4k+3), B(4k)+B(4k+1), B(4k+2)+B(4k+3)], level 2 of two such vectors (A, B | C, D) the
 * four-lane sums [A, B, C, D] of lanes 4k..4k+3; levels 3 and 4 add lanes 0-3 + 4-7, 8-11 + 12-15, then the halves,
 * by 128-bit block shuffles, so that lane t of the result is accumulator t's tree. */
static inline __m512 hsum_lane(__m512 a, __m512 b) {
    return _mm512_add_ps(_mm512_shuffle_ps(a, b, 0x88), _mm512_shuffle_ps(a, b, 0xdd));
}
static inline __m512 hsum_block(__m512 a, __m512 b) {
    return _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x88), _mm512_shuffle_f32x4(a, b, 0xdd));
}
static inline __m512 tree16x16(const __m512 *A) {
    __m512 w0 = hsum_lane(hsum_lane(A[0], A[1]), hsum_lane(A[2], A[3]));
    __m512 w1 = hsum_lane(hsum_lane(A[4], A[5]), hsum_lane(A[6], A[7]));
    __m512 w2 = hsum_lane(hsum_lane(A[8], A[9]), hsum_lane(A[10], A[11]));
    __m512 w3 = hsum_lane(hsum_lane(A[12], A[13]), hsum_lane(A[14], A[15]));
    return hsum_block(hsum_block(w0, w1), hsum_block(w2, w3));
}

/* In-register transpose of 16 x 16 dwords: r[i] lane j -> r[j] lane i. */
static inline void transpose16(__m512i *r) {
    __m512i t[16], u[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int g = 0; g < 4; g++) {   /* rows 4g..4g+3: u[4g+m] lane L = column 4L+m of those rows */
        __m512i *tt = t + 4 * g;
        u[4 * g + 0] = _mm512_unpacklo_epi64(tt[0], tt[2]);
        u[4 * g + 1] = _mm512_unpackhi_epi64(tt[0], tt[2]);
        u[4 * g + 2] = _mm512_unpacklo_epi64(tt[1], tt[3]);
        u[4 * g + 3] = _mm512_unpackhi_epi64(tt[1], tt[3]);
    }
    for (int m = 0; m < 4; m++) {
        __m512i a = _mm512_shuffle_i32x4(u[m], u[4 + m], 0x88), b = _mm512_shuffle_i32x4(u[m], u[4 + m], 0xdd);
        __m512i c = _mm512_shuffle_i32x4(u[8 + m], u[12 + m], 0x88), d = _mm512_shuffle_i32x4(u[8 + m], u[12 + m], 0xdd);
        r[m] = _mm512_shuffle_i32x4(a, c, 0x88);        /* columns 0..3 */
        r[8 + m] = _mm512_shuffle_i32x4(a, c, 0xdd);    /* columns 8..11 */
        r[4 + m] = _mm512_shuffle_i32x4(b, d, 0x88);    /* columns 4..7 */
        r[12 + m] = _mm512_shuffle_i32x4(b, d, 0xdd);   /* columns 12..15 */
    }
}

#define QB DSV4_VT_FAST_QB
#ifdef VT_PROFILE   /* cycles per phase (a measuring build only; not thread-safe: use 1 thread) */
#include <stdio.h>
#include <time.h>
unsigned long long dsv4_vt_cyc[4];   /* thread CPU ns */
static unsigned long long vt_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}
#define PMARK(i) do { unsigned long long c_ = vt_ns(); dsv4_vt_cyc[i] += c_ - pc0; pc0 = c_; } while (0)
#else
#define PMARK(i) ((void)0)
#endif

static size_t al64(size_t b) { return (b + 63) & ~(size_t)63; }

void dsv4_vt_attn_avx512(float *o, size_t ldo, const uint16_t *q, const uint16_t *k, const uint16_t *vt, int n,
                         int npad, int hd, int q0, int nq, float scale, void *work) {
    const int nch = hd / 32, ngrp = (nq + 15) / 16, nq4 = (nq + 3) & ~3;
    char *w = work;
    uint16_t *qbuf = (uint16_t *)w;                      /* [QB][hd] the block's queries, zero past nq */
    w += al64((size_t)QB * hd * 2);
    float *sc = (float *)w;                              /* [n][QB] scores, key-major */
    w += al64((size_t)n * QB * 4);
    uint16_t *pb = (uint16_t *)w;                        /* [QB][npad] BF16 P, query-major */
    w += al64((size_t)QB * npad * 2);
    float *pv = (float *)w;                              /* [QB][hd] */
    memcpy(qbuf, q + (size_t)q0 * hd, (size_t)nq * hd * 2);
    memset(qbuf + (size_t)nq * hd, 0, (size_t)(ngrp * 16 - nq) * hd * 2);

#ifdef VT_PROFILE
    unsigned long long pc0 = vt_ns();
#endif
    const unsigned csr = _mm_getcsr();
    /* A. raw scores s[j][t] = tree(dp over hd/32 chunks of q_t, k_j): 16 queries x 1 key per tree */
    _mm_setcsr(csr | 0x8040);   /* FTZ | DAZ: the definition's flushing */
    __m512 mxs[QB / 16];   /* max over the keys of the raw scores s (never subnormal: the tree's sums are flushed) */
    for (int g = 0; g < QB / 16; g++) mxs[g] = _mm512_set1_ps(-INFINITY);
    for (int j = 0; j < n; j++) {
        const uint16_t *kj = k + (size_t)j * hd;
        for (int g = 0; g < ngrp; g++) {
            __m512 acc[16];
            const uint16_t *qg = qbuf + (size_t)g * 16 * hd;
            for (int t = 0; t < 16; t++) acc[t] = _mm512_setzero_ps();
            for (int c = 0; c < nch; c++) {
                __m512bh kc = (__m512bh)_mm512_loadu_si512(kj + 32 * c);
#pragma GCC unroll 16
                for (int t = 0; t < 16; t++)
                    acc[t] = _mm512_dpbf16_ps(acc[t], (__m512bh)_mm512_load_si512(qg + (size_t)t * hd + 32 * c), kc);
            }
            __m512 s16 = tree16x16(acc);
            _mm512_store_ps(sc + (size_t)j * QB + 16 * g, s16);
            mxs[g] = _mm512_max_ps(s16, mxs[g]);   /* s > mx ? s : mx, the scalar loop's rule */
        }
    }
    _mm_setcsr(csr);
    PMARK(0);
    /* B. z = s * scale, max per query (from the max of s), then p = exp(z - max), Z = sum of p in key order (double, per lane),
     * BF16 P transposed to [query][key] by 16 x 16 dword transposes of key pairs */
    double sum[QB];
    float Z[QB];
    const __m512 vs = _mm512_set1_ps(scale);
    for (int g = 0; g < ngrp; g++) {   /* one group of 16 queries at a time: its max and sums stay in registers */
        const float *sg = sc + 16 * g;
        /* max_j fl(s_j * scale) = fl(max_j s_j * scale): rounding is monotonic and scale > 0, the same key wins a tie
         * (so the same signed zero), and no s_j * scale underflows to 0 (|s_j| >= 2^-126, scale >= 2^-6) */
        const __m512 mx = _mm512_mul_ps(mxs[g], vs);
        __m512d slo = _mm512_setzero_pd(), shi = _mm512_setzero_pd();
        for (int c = 0; c < npad / 32; c++) {
            __m512i r[16];
            for (int i = 0; i < 16; i++) {
                int j = 32 * c + 2 * i;
                __m512 p0 = _mm512_setzero_ps(), p1 = _mm512_setzero_ps();
                if (j < n) {
                    p0 = vexp16(_mm512_sub_ps(_mm512_mul_ps(_mm512_load_ps(sg + (size_t)j * QB), vs), mx));
                    slo = _mm512_add_pd(slo, _mm512_cvtps_pd(_mm512_castps512_ps256(p0)));
                    shi = _mm512_add_pd(shi, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(p0), 1))));
                }
                if (j + 1 < n) {
                    p1 = vexp16(_mm512_sub_ps(_mm512_mul_ps(_mm512_load_ps(sg + (size_t)(j + 1) * QB), vs), mx));
                    slo = _mm512_add_pd(slo, _mm512_cvtps_pd(_mm512_castps512_ps256(p1)));
                    shi = _mm512_add_pd(shi, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(p1), 1))));
                }
                r[i] = bf16_pairs(p0, p1);
            }
            transpose16(r);
            for (int t = 0; t < 16; t++)
                _mm512_store_si512(pb + (size_t)(16 * g + t) * npad + 32 * c, r[t]);
        }
        _mm512_storeu_pd(sum + 16 * g, slo);
        _mm512_storeu_pd(sum + 16 * g + 8, shi);
    }
    for (int t = 0; t < nq; t++) Z[t] = (float)sum[t];
    PMARK(1);
    /* C. pv[t][d] = tree(dp over npad/32 chunks of P_t, V^T_d): 4 queries x 4 dims per tree */
    _mm_setcsr(csr | 0x8040);
    for (int t0 = 0; t0 < nq4; t0 += 4)
        for (int d0 = 0; d0 < hd; d0 += 4) {
            __m512 acc[16];
            for (int a = 0; a < 16; a++) acc[a] = _mm512_setzero_ps();
            const uint16_t *p_0 = pb + (size_t)t0 * npad, *v_0 = vt + (size_t)d0 * npad;
            const uint16_t *p_1 = p_0 + npad, *p_2 = p_1 + npad, *p_3 = p_2 + npad;
            const uint16_t *v_1 = v_0 + npad, *v_2 = v_1 + npad, *v_3 = v_2 + npad;
            for (int c = 0; c < npad; c += 32) {   /* named registers: an array here went through the stack */
                __m512bh v0 = (__m512bh)_mm512_loadu_si512(v_0 + c), v1 = (__m512bh)_mm512_loadu_si512(v_1 + c);
                __m512bh v2 = (__m512bh)_mm512_loadu_si512(v_2 + c), v3 = (__m512bh)_mm512_loadu_si512(v_3 + c);
                __m512bh p = (__m512bh)_mm512_load_si512(p_0 + c);
                acc[0] = _mm512_dpbf16_ps(acc[0], p, v0); acc[1] = _mm512_dpbf16_ps(acc[1], p, v1);
                acc[2] = _mm512_dpbf16_ps(acc[2], p, v2); acc[3] = _mm512_dpbf16_ps(acc[3], p, v3);
                p = (__m512bh)_mm512_load_si512(p_1 + c);
                acc[4] = _mm512_dpbf16_ps(acc[4], p, v0); acc[5] = _mm512_dpbf16_ps(acc[5], p, v1);
                acc[6] = _mm512_dpbf16_ps(acc[6], p, v2); acc[7] = _mm512_dpbf16_ps(acc[7], p, v3);
                p = (__m512bh)_mm512_load_si512(p_2 + c);
                acc[8] = _mm512_dpbf16_ps(acc[8], p, v0); acc[9] = _mm512_dpbf16_ps(acc[9], p, v1);
                acc[10] = _mm512_dpbf16_ps(acc[10], p, v2); acc[11] = _mm512_dpbf16_ps(acc[11], p, v3);
                p = (__m512bh)_mm512_load_si512(p_3 + c);
                acc[12] = _mm512_dpbf16_ps(acc[12], p, v0); acc[13] = _mm512_dpbf16_ps(acc[13], p, v1);
                acc[14] = _mm512_dpbf16_ps(acc[14], p, v2); acc[15] = _mm512_dpbf16_ps(acc[15], p, v3);
            }
            __m512 rr = tree16x16(acc);
            for (int i = 0; i < 4; i++) {
                __m128 v4 = i == 0 ? _mm512_castps512_ps128(rr) : i == 1 ? _mm512_extractf32x4_ps(rr, 1)
                            : i == 2 ? _mm512_extractf32x4_ps(rr, 2) : _mm512_extractf32x4_ps(rr, 3);
                _mm_storeu_ps(pv + (size_t)(t0 + i) * hd + d0, v4);
            }
        }
    _mm_setcsr(csr);
    PMARK(2);
    /* D. o = bf16(pv / Z) */
    for (int t = 0; t < nq; t++) {
        float *ot = o + (size_t)(q0 + t) * ldo;
        for (int d = 0; d < hd; d++) ot[d] = dsv4_round_bf16(pv[(size_t)t * hd + d] / Z[t]);
    }
    PMARK(3);
}

#else
typedef int dsv4_vt_avx512_unused;   /* not an x86-64 AVX-512 BF16 build: nothing here */
#endif
