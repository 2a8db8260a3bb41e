/* kernels/simd_bf16.h — internal: base/util.h dsv4_f32_to_bf16 (round to nearest even; a NaN keeps its sign and
 * high payload bits with the quiet bit set) on 8 (AVX2) or 16 (AVX-512) lanes, the one vector definition that
 * ops_avx2.c, ops_avx512.c, gemm_avx512.c, headsum_avx2.c and headsum_avx512.c use. Each section exists only
 * where its ISA is enabled for the including file (-mavx2 / the AVX-512 flags, Makefile); bit-identical to the
 * scalar definition on every input (tests/test_kernels.c, tests/test_attn_v41.c compare every path with it).
 *   dsv4_bf16_hi*(u):   the BF16 bits of the F32 bit pattern u in the high half of each lane, the low half 0
 *   dsv4_bf16_bits*(u): the same bits in the low half (the high half 0)
 *   dsv4_round_bf16x*(v): dsv4_round_bf16 (the BF16 value as F32)
 */
#ifndef DSV4_KERNELS_SIMD_BF16_H
#define DSV4_KERNELS_SIMD_BF16_H
#if defined(__x86_64__) && (defined(__AVX2__) || defined(__AVX512F__))
#include <immintrin.h>
#endif

#if defined(__x86_64__) && defined(__AVX2__)
static inline __m256i dsv4_bf16_hi8(__m256i u) {
    /* |u| > inf as a signed compare: the masked word is >= 0 */
    const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)),
                                           _mm256_set1_epi32(0x7f800000));
    __m256i r = _mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7fff),
                                                     _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1))));
    r = _mm256_blendv_epi8(r, _mm256_or_si256(u, _mm256_set1_epi32(0x00400000)), nan);
    return _mm256_and_si256(r, _mm256_set1_epi32((int)0xffff0000u));
}
static inline __m256i dsv4_bf16_bits8(__m256i u) { return _mm256_srli_epi32(dsv4_bf16_hi8(u), 16); }
static inline __m256 dsv4_round_bf16x8(__m256 v) { return _mm256_castsi256_ps(dsv4_bf16_hi8(_mm256_castps_si256(v))); }
#endif

#if defined(__x86_64__) && defined(__AVX512F__)
static inline __m512i dsv4_bf16_hi16(__m512i u) {
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                                  _mm512_set1_epi32(0x7f800000));
    __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff),
                                                     _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1))));
    r = _mm512_mask_or_epi32(r, nan, u, _mm512_set1_epi32(0x00400000));
    return _mm512_and_si512(r, _mm512_set1_epi32((int)0xffff0000u));
}
static inline __m512i dsv4_bf16_bits16(__m512i u) { return _mm512_srli_epi32(dsv4_bf16_hi16(u), 16); }
static inline __m512 dsv4_round_bf16x16(__m512 v) { return _mm512_castsi512_ps(dsv4_bf16_hi16(_mm512_castps_si512(v))); }
#endif

#endif
