/* kernels/quant_v41.c — DeepSeek-V4.1 number formats (see quant_v41.h). */
#include "kernels/quant_v41.h"
#include "kernels/kernels.h"
#include "base/util.h"

#include <math.h>
#include <string.h>

long dsv4_fp8_tiles_to_bf16(const uint8_t *codes, const uint8_t *scales, int rows, int cols, int tile,
                            uint16_t *out) {
    const int nct = (cols + tile - 1) / tile;
    long inexact = 0;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            float v = dsv4_e4m3_to_f32(codes[(size_t)r * cols + c]) *
                      dsv4_e8m0_to_f32(scales[(size_t)(r / tile) * nct + c / tile]);
            uint16_t b = dsv4_f32_to_bf16(v);
            inexact += dsv4_bf16_to_f32(b) != v;
            out[(size_t)r * cols + c] = b;
        }
    return inexact;
}

/* code i is NaN and its tile's scale is not 255 (those values are counted per tile) */
static int nan_outside(const uint8_t *codes, const uint8_t *scales, size_t i, int cols, int tile, int nct) {
    if ((codes[i] & 0x7f) != 0x7f) return 0;
    size_t r = i / (size_t)cols, c = i % (size_t)cols;
    return scales[(r / tile) * nct + c / tile] != 255;
}

long dsv4_fp8_tiles_check(const uint8_t *codes, const uint8_t *scales, int rows, int cols, int tile) {
    const int nrt = (rows + tile - 1) / tile, nct = (cols + tile - 1) / tile;
    long bad = 0;
    for (int i = 0; i < nrt; i++)
        for (int j = 0; j < nct; j++)
            if (scales[(size_t)i * nct + j] == 255) {
                int h = rows - i * tile < tile ? rows - i * tile : tile, w = cols - j * tile < tile ? cols - j * tile : tile;
                bad += (long)h * w;
            }
    /* NaN codes: 8 bytes at a time, a byte is NaN when (b | 0x80) == 0xff, i.e. ~(b | 0x80) == 0 */
    const size_t n = (size_t)rows * cols;
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    size_t k = 0;
    for (; k + 8 <= n; k += 8) {
        uint64_t v;
        memcpy(&v, codes + k, 8);
        uint64_t y = ~(v | high);   /* a zero byte where the code is NaN */
        if ((y - ones) & ~y & high)
            for (size_t b = k; b < k + 8; b++) bad += nan_outside(codes, scales, b, cols, tile, nct);
    }
    for (; k < n; k++) bad += nan_outside(codes, scales, k, cols, tile, nct);
    return bad;
}

/* E2M1 code of v in [-6, 6]: nearest grid value, ties to the even code (0.25 -> 0, 0.75 -> 1.0, 1.25 -> 1.0,
 * 1.75 -> 2.0, 2.5 -> 2.0, 3.5 -> 4.0, 5 -> 4.0), sign in bit 3 (also for -0). */
static uint8_t e2m1_code(float v) {
    static const float mids[7] = {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f};
    static const int tie_up[7] = {0, 1, 0, 1, 0, 1, 0};
    float m = fabsf(v);
    uint8_t code = 0;
    for (int i = 0; i < 7; i++) code += m > mids[i] || (m == mids[i] && tie_up[i]);
    return (uint8_t)(code | (signbit(v) ? 8 : 0));
}

static void fp4_e4m3_block(float *x, int block, uint8_t *packed, uint8_t *scale) {
    float a = 0;
    for (int i = 0; i < block; i++) a = fmaxf(a, fabsf(x[i]));
    a = fmaxf(a, 6.0f * 0x1p-9f);
    uint8_t sc = dsv4_f32_to_e4m3(a / 6.0f);
    float s = dsv4_e4m3_to_f32(sc);
    if (scale) *scale = sc;
    for (int i = 0; i < block; i++) {
        float v = x[i] / s;
        v = v > 6.0f ? 6.0f : v < -6.0f ? -6.0f : v;
        uint8_t code = e2m1_code(v);
        if (packed) {
            if (i & 1) packed[i / 2] |= (uint8_t)(code << 4);
            else packed[i / 2] = code;
        }
        x[i] = dsv4_round_bf16(dsv4_e2m1_to_f32(code) * s);
    }
}

void dsv4_fp4_e4m3_sim(float *x, int n, int block) {
    for (int b = 0; b + block <= n; b += block) fp4_e4m3_block(x + b, block, NULL, NULL);
}

void dsv4_fp4_e4m3_encode(float *x, int n, int block, uint8_t *packed, uint8_t *scales) {
    for (int b = 0; b + block <= n; b += block) fp4_e4m3_block(x + b, block, packed + b / 2, scales + b / block);
}

void dsv4_fp4_e4m3_decode(const uint8_t *packed, const uint8_t *scales, int n, int block, float *out) {
    for (int i = 0; i < n; i++)
        out[i] = dsv4_round_bf16(dsv4_e2m1_to_f32((uint8_t)((packed[i / 2] >> ((i & 1) * 4)) & 15)) *
                                 dsv4_e4m3_to_f32(scales[i / block]));
}

void dsv4_fp4_e4m3_decode_bf16(const uint8_t *packed, const uint8_t *scales, int n, int block, uint16_t *out) {
    for (int b0 = 0; b0 < n; b0 += block) {
        const float s = dsv4_e4m3_lut[scales[b0 / block]];
        const int b1 = b0 + block < n ? b0 + block : n;
        for (int i = b0; i < b1; i++)
            out[i] = dsv4_f32_to_bf16(dsv4_e2m1_lut[(packed[i / 2] >> ((i & 1) * 4)) & 15] * s);
    }
}
