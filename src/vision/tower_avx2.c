/* vision/tower_avx2.c — the vision tower's attention on AVX2 + FMA (vision/tower_simd.h): the softmax exp on 8 lanes
 * (the same F32 operations as tower.c softmax_exp, in the same order; -ffp-contract=off keeps its multiplies and adds
 * apart) and one head and block of queries in one loop, the products in the pair-lane order (below). Called only
 * when the kernel path in use is avx2. */
#include "vision/tower_simd.h"

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#include <math.h>

#include "base/util.h"

static inline __m256 vexp8(__m256 x) {
    const __m256 magic = _mm256_set1_ps(12582912.0f);
    __m256 ok = _mm256_cmp_ps(x, _mm256_set1_ps(-86.0f), _CMP_GE_OQ);
    __m256 k = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269502f)), magic), magic);
    __m256 r = _mm256_sub_ps(_mm256_sub_ps(x, _mm256_mul_ps(k, _mm256_set1_ps(0.693145752f))),
                             _mm256_mul_ps(k, _mm256_set1_ps(1.42860677e-06f)));
    __m256 p = _mm256_set1_ps(1.38888892e-03f);
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(8.33333377e-03f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(4.16666679e-02f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.66666672e-01f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(0.5f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(k), _mm256_set1_epi32(127)), 23);
    return _mm256_and_ps(ok, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

void dsv4_vt_exp_avx2(float *y, const float *x, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, vexp8(_mm256_loadu_ps(x + i)));
    if (i < n) {
        float a[8] = {0}, b[8];
        for (int j = i; j < n; j++) a[j - i] = x[j];
        _mm256_storeu_ps(b, vexp8(_mm256_loadu_ps(a)));
        for (int j = i; j < n; j++) y[j] = b[j - i];
    }
}

/* ------------------------------------------------------------------ attention (the avx2 path's products) */
/* The pair-lane order's dp step on AVX2, as the avx2 kernels do it: a 32-element chunk's 16 lanes as two halves of
 * 8 (lanes 0-7 from elements 0-15, lanes 8-15 from elements 16-31; a lane's sum involves only its own pair), each
 * BF16 pair split into its odd element (the high half of the dword, as F32) and its even one (the low half shifted
 * up), L = fma(odd, odd', L) then L = fma(even, even', L): exact products, one rounding each; MXCSR FTZ+DAZ gives the
 * definition's flushing of results and subnormal inputs. tree16 = tree8(lanes 0-7) + tree8(lanes 8-15). */
#define QB DSV4_VT_FAST_QB

static size_t al64(size_t b) { return (b + 63) & ~(size_t)63; }

static inline __m256 hsum_lane8(__m256 a, __m256 b) {
    return _mm256_add_ps(_mm256_shuffle_ps(a, b, 0x88), _mm256_shuffle_ps(a, b, 0xdd));
}
/* lane t = tree8 of accumulator A[t]: ((L0+L1)+(L2+L3)) + ((L4+L5)+(L6+L7)), the same pairs level by level */
static inline __m256 tree8x8(const __m256 *A) {
    __m256 w0 = hsum_lane8(hsum_lane8(A[0], A[1]), hsum_lane8(A[2], A[3]));
    __m256 w1 = hsum_lane8(hsum_lane8(A[4], A[5]), hsum_lane8(A[6], A[7]));
    return _mm256_add_ps(_mm256_permute2f128_ps(w0, w1, 0x20), _mm256_permute2f128_ps(w0, w1, 0x31));
}
static inline void transpose8(__m256 *r) {
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xee);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xee);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xee);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xee);
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20); r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    r[1] = _mm256_permute2f128_ps(u1, u5, 0x20); r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20); r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    r[3] = _mm256_permute2f128_ps(u3, u7, 0x20); r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}
/* the BF16 value of p as F32: base/util.h dsv4_f32_to_bf16 (round to nearest even) for every value p takes here
 * (0 or normal in [2^-125, 1.42]: never NaN) */
static inline __m256 bf16r(__m256 p) {
    __m256i u = _mm256_castps_si256(p);
    u = _mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), _mm256_and_si256(_mm256_srli_epi32(u, 16),
                                                                                          _mm256_set1_epi32(1))));
    return _mm256_castsi256_ps(_mm256_and_si256(u, _mm256_set1_epi32((int)0xffff0000u)));
}

void dsv4_vt_attn_avx2(float *o, size_t ldo, const uint16_t *q, const uint16_t *k, const uint16_t *vt, int n,
                       int npad, int hd, int q0, int nq, float scale, void *work) {
    const int nch = hd / 32, ngrp = (nq + 7) / 8, nq4 = (nq + 3) & ~3;
    const __m256i hi = _mm256_set1_epi32((int)0xffff0000u);
    char *w = work;
    float *qs = (float *)w;      /* [QB][hd]: per chunk and half, 8 odd then 8 even elements as F32; 0 past nq */
    w += al64((size_t)QB * hd * 4);
    float *sc = (float *)w;      /* [n][QB] raw scores, key-major */
    w += al64((size_t)n * QB * 4);
    float *pf = (float *)w;      /* [QB][npad] BF16 P as F32: per chunk and half, 8 odd then 8 even keys */
    w += al64((size_t)QB * npad * 4);
    float *pv = (float *)w;      /* [QB][hd] */
    for (int t = 0; t < ngrp * 8; t++)
        for (int c = 0; c < 2 * nch; c++) {   /* c: half-chunks of 16 elements */
            __m256i d = t < nq ? _mm256_loadu_si256((const __m256i *)(q + (size_t)(q0 + t) * hd + 16 * c))
                               : _mm256_setzero_si256();
            _mm256_store_ps(qs + (size_t)t * hd + 16 * c, _mm256_castsi256_ps(_mm256_and_si256(d, hi)));
            _mm256_store_ps(qs + (size_t)t * hd + 16 * c + 8, _mm256_castsi256_ps(_mm256_slli_epi32(d, 16)));
        }
    const unsigned csr = _mm_getcsr();
    /* A. raw scores: 8 queries x 1 key per pair of trees */
    _mm_setcsr(csr | 0x8040);
    __m256 mxs[QB / 8];
    for (int g = 0; g < QB / 8; g++) mxs[g] = _mm256_set1_ps(-INFINITY);
    for (int j = 0; j < n; j++) {
        const uint16_t *kj = k + (size_t)j * hd;
        for (int g = 0; g < ngrp; g++) {
            const float *qg = qs + (size_t)g * 8 * hd;
            __m256 h2[2];
            for (int hh = 0; hh < 2; hh++) {
                __m256 acc[8];
                for (int t = 0; t < 8; t++) acc[t] = _mm256_setzero_ps();
                for (int c = 0; c < nch; c++) {
                    __m256i d = _mm256_loadu_si256((const __m256i *)(kj + 32 * c + 16 * hh));
                    __m256 ko = _mm256_castsi256_ps(_mm256_and_si256(d, hi)), ke = _mm256_castsi256_ps(_mm256_slli_epi32(d, 16));
                    const float *qc = qg + 32 * c + 16 * hh;
#pragma GCC unroll 8
                    for (int t = 0; t < 8; t++) {
                        acc[t] = _mm256_fmadd_ps(_mm256_load_ps(qc + (size_t)t * hd), ko, acc[t]);
                        acc[t] = _mm256_fmadd_ps(_mm256_load_ps(qc + (size_t)t * hd + 8), ke, acc[t]);
                    }
                }
                h2[hh] = tree8x8(acc);
            }
            __m256 s8 = _mm256_add_ps(h2[0], h2[1]);
            _mm256_store_ps(sc + (size_t)j * QB + 8 * g, s8);
            mxs[g] = _mm256_max_ps(s8, mxs[g]);   /* s > mx ? s : mx, the scalar loop's rule */
        }
    }
    _mm_setcsr(csr);
    /* B. p = exp(fl(s * scale) - max), max = fl(max s * scale) (see tower_avx512.c), Z in key order (double),
     * BF16 P transposed to [query][key] in the split layout by 8 x 8 transposes */
    double sum[QB];
    float Z[QB];
    const __m256 vs = _mm256_set1_ps(scale);
    for (int g = 0; g < ngrp; g++) {
        const float *sg = sc + 8 * g;
        const __m256 mx = _mm256_mul_ps(mxs[g], vs);
        __m256d slo = _mm256_setzero_pd(), shi = _mm256_setzero_pd();
        for (int c = 0; c < npad / 16; c++) {   /* half-chunks of 16 keys */
            __m256 ev[8], od[8];
            for (int i = 0; i < 8; i++) {
                int j = 16 * c + 2 * i;
                __m256 p0 = _mm256_setzero_ps(), p1 = _mm256_setzero_ps();
                if (j < n) {
                    p0 = vexp8(_mm256_sub_ps(_mm256_mul_ps(_mm256_load_ps(sg + (size_t)j * QB), vs), mx));
                    slo = _mm256_add_pd(slo, _mm256_cvtps_pd(_mm256_castps256_ps128(p0)));
                    shi = _mm256_add_pd(shi, _mm256_cvtps_pd(_mm256_extractf128_ps(p0, 1)));
                }
                if (j + 1 < n) {
                    p1 = vexp8(_mm256_sub_ps(_mm256_mul_ps(_mm256_load_ps(sg + (size_t)(j + 1) * QB), vs), mx));
                    slo = _mm256_add_pd(slo, _mm256_cvtps_pd(_mm256_castps256_ps128(p1)));
                    shi = _mm256_add_pd(shi, _mm256_cvtps_pd(_mm256_extractf128_ps(p1, 1)));
                }
                ev[i] = bf16r(p0);
                od[i] = bf16r(p1);
            }
            transpose8(ev);
            transpose8(od);
            for (int t = 0; t < 8; t++) {
                _mm256_store_ps(pf + (size_t)(8 * g + t) * npad + 16 * c, od[t]);
                _mm256_store_ps(pf + (size_t)(8 * g + t) * npad + 16 * c + 8, ev[t]);
            }
        }
        _mm256_storeu_pd(sum + 8 * g, slo);
        _mm256_storeu_pd(sum + 8 * g + 4, shi);
    }
    for (int t = 0; t < nq; t++) Z[t] = (float)sum[t];
    /* C. pv[t][d]: 4 queries x 2 dims per pair of trees */
    _mm_setcsr(csr | 0x8040);
    for (int t0 = 0; t0 < nq4; t0 += 4)
        for (int d0 = 0; d0 < hd; d0 += 2) {
            __m256 h2[2];
            const uint16_t *v0p = vt + (size_t)d0 * npad, *v1p = v0p + npad;
            const float *pt = pf + (size_t)t0 * npad;
            for (int hh = 0; hh < 2; hh++) {
                __m256 acc[8];
                for (int a = 0; a < 8; a++) acc[a] = _mm256_setzero_ps();
                for (int c = 16 * hh; c < npad; c += 32) {
                    __m256i d0v = _mm256_loadu_si256((const __m256i *)(v0p + c));
                    __m256i d1v = _mm256_loadu_si256((const __m256i *)(v1p + c));
                    __m256 vo0 = _mm256_castsi256_ps(_mm256_and_si256(d0v, hi)), ve0 = _mm256_castsi256_ps(_mm256_slli_epi32(d0v, 16));
                    __m256 vo1 = _mm256_castsi256_ps(_mm256_and_si256(d1v, hi)), ve1 = _mm256_castsi256_ps(_mm256_slli_epi32(d1v, 16));
#pragma GCC unroll 4
                    for (int t = 0; t < 4; t++) {
                        __m256 po = _mm256_load_ps(pt + (size_t)t * npad + c), pe = _mm256_load_ps(pt + (size_t)t * npad + c + 8);
                        acc[2 * t] = _mm256_fmadd_ps(po, vo0, acc[2 * t]);
                        acc[2 * t] = _mm256_fmadd_ps(pe, ve0, acc[2 * t]);
                        acc[2 * t + 1] = _mm256_fmadd_ps(po, vo1, acc[2 * t + 1]);
                        acc[2 * t + 1] = _mm256_fmadd_ps(pe, ve1, acc[2 * t + 1]);
                    }
                }
                h2[hh] = tree8x8(acc);
            }
            float r[8];
            _mm256_storeu_ps(r, _mm256_add_ps(h2[0], h2[1]));
            for (int t = 0; t < 4; t++) {
                pv[(size_t)(t0 + t) * hd + d0] = r[2 * t];
                pv[(size_t)(t0 + t) * hd + d0 + 1] = r[2 * t + 1];
            }
        }
    _mm_setcsr(csr);
    /* D. o = bf16(pv / Z) */
    for (int t = 0; t < nq; t++) {
        float *ot = o + (size_t)(q0 + t) * ldo;
        for (int d = 0; d < hd; d++) ot[d] = dsv4_round_bf16(pv[(size_t)t * hd + d] / Z[t]);
    }
}
#else
typedef int dsv4_vt_avx2_unused;   /* not an x86-64 AVX2 build: nothing here */
#endif
