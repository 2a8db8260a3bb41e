/* kernels/quant_v41.h — number formats DeepSeek-V4.1 adds (docs/v41.md §4.1, §4.5; docs/v41-implementation.md
 * item 8), next to the V4 ones of kernels.h.
 *
 *  - FP8 weights with 32x32 UE8M0 tiles (V4 used 128x128): dsv4_linear reads them in place (DSV4_W_FP8_32,
 *    kernels.h; the pair-lane order with a partial per 32-column group, kernels/simd.h). dsv4_fp8_tiles_to_bf16
 *    dequantizes such a weight to BF16 (exact: an E4M3 value times a power of two has at most 4 significant bits,
 *    inside BF16's range for every scale byte 1..254 except products below 2^-133): the loader's fallback for a
 *    wo_a whose o_lora_rank is not a multiple of 32, and the tests' reference. The reference itself applies
 *    `attn.wo_a` dequantized (convert.py); the tile path computes the same exact products.
 *  - FP4 E2M1 with 16-element blocks and E4M3 scales (compressed KV of CSA2): dsv4_fp4_e4m3_sim.
 * Window KV (FP8, 32-blocks, UE8M0) and the indexer's FP4 (E8M0, 32-blocks) are dsv4_fp8_sim / dsv4_fp4_sim of
 * kernels.h with block 32.
 */
#ifndef DSV4_KERNELS_QUANT_V41_H
#define DSV4_KERNELS_QUANT_V41_H
#include <stdint.h>

/* out[r][c] = bf16(e4m3(codes[r][c]) * 2^(scales[r/tile][c/tile] - 127)), codes [rows, cols], scales
 * [ceil(rows/tile), ceil(cols/tile)], out [rows, cols] BF16. Returns the number of values that were not exact
 * (0 for every real checkpoint; a NaN code or scale 255 gives NaN and counts as inexact). */
long dsv4_fp8_tiles_to_bf16(const uint8_t *codes, const uint8_t *scales, int rows, int cols, int tile,
                            uint16_t *out);
/* The number of values of such a weight that are not finite: NaN codes (0x7f, 0xff) plus, for each scale byte 255,
 * the values of its tile. 0 for every real checkpoint (the loader refuses the others). */
long dsv4_fp8_tiles_check(const uint8_t *codes, const uint8_t *scales, int rows, int cols, int tile);

/* In-place FP4 simulation with E4M3 block scales, blocks of `block` (16) along x[0..n) (n % block == 0):
 * a = max(max|x_b|, 6 * 2^-9); s = e4m3(a / 6) (RNE, saturating at 448); x = bf16(e2m1(clamp(x / s, +-6)) * s),
 * E2M1 rounding to nearest, ties to the even code. */
void dsv4_fp4_e4m3_sim(float *x, int n, int block);
/* The same, writing the codes (packed, element 2k in the low nibble) and one E4M3 scale byte per block. */
void dsv4_fp4_e4m3_encode(float *x, int n, int block, uint8_t *packed, uint8_t *scales);
/* Decode such a record: out[i] = bf16(e2m1(nibble i) * e4m3(scales[i / block])), i < n: the simulated values, bit for
 * bit (the compressed-KV cache of the V4.1 forward keeps the records). */
void dsv4_fp4_e4m3_decode(const uint8_t *packed, const uint8_t *scales, int n, int block, float *out);
/* The same values as BF16 bits (out[i] = dsv4_f32_to_bf16 of dsv4_fp4_e4m3_decode's out[i]): the attention's key form. */
void dsv4_fp4_e4m3_decode_bf16(const uint8_t *packed, const uint8_t *scales, int n, int block, uint16_t *out);

#endif
