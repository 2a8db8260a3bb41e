/* tests/test_quant_v41.c — DeepSeek-V4.1 quantization forms (src/kernels/quant_v41.h and the 32-block uses of
 * kernels.h) bit for bit against the per-op vectors of tools/reference/make_v41_op_goldens.py
 * (tests/golden/v41/ops): FP4 with E4M3 16-block scales (values, packed codes, scale bytes), FP8 32-block window-KV
 * simulation, FP4 32-block indexer simulation, FP8 32x32-tile weights dequantized to BF16. */
#include "testlib.h"
#include "kernels/kernels.h"
#include "kernels/quant_v41.h"

#define OPS "tests/golden/v41/ops/"

static uint8_t *read_u8(const char *path, size_t n) {
    size_t len = 0;
    char *b = test_read_file(path, &len);
    if (b && len != n) { free(b); b = NULL; }
    if (!b) test_fail("cannot read %s (%zu bytes)", path, n);
    return (uint8_t *)b;
}

static long diff_f32(const float *a, const float *b, size_t n, size_t *first) {
    long d = 0;
    *first = n;
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0) { if (!d) *first = i; d++; }
    return d;
}

int main(void) {
    const size_t n = 8192;
    size_t first;
    /* FP4 E2M1 with E4M3 16-block scales (compressed KV) */
    float *x = test_read_f32(OPS "fp4_e4m3.in.f32", n), *want = test_read_f32(OPS "fp4_e4m3.out.f32", n);
    uint8_t *wc = read_u8(OPS "fp4_e4m3.codes.u8", n / 2), *ws = read_u8(OPS "fp4_e4m3.scales.u8", n / 16);
    if (x && want && wc && ws) {
        float *y = malloc(sizeof(float) * n);
        memcpy(y, x, sizeof(float) * n);
        dsv4_fp4_e4m3_sim(y, (int)n, 16);
        long d = diff_f32(y, want, n, &first);
        CHECK(d == 0, "fp4_e4m3 sim: %ld values differ (first %zu: in %g got %g want %g)", d, first,
              first < n ? x[first] : 0.f, first < n ? y[first] : 0.f, first < n ? want[first] : 0.f);
        uint8_t *pc = malloc(n / 2), *sc = malloc(n / 16);
        memcpy(y, x, sizeof(float) * n);
        dsv4_fp4_e4m3_encode(y, (int)n, 16, pc, sc);
        long dc = 0, ds = 0;
        for (size_t i = 0; i < n / 2; i++) dc += pc[i] != wc[i];
        for (size_t i = 0; i < n / 16; i++) ds += sc[i] != ws[i];
        CHECK(dc == 0 && ds == 0 && diff_f32(y, want, n, &first) == 0, "fp4_e4m3 encode: %ld code bytes, %ld scales "
              "differ", dc, ds);
        /* decoding the record gives the simulated values */
        long dd = 0;
        dsv4_fp4_e4m3_decode(pc, sc, (int)n, 16, y);
        for (size_t i = 0; i < n; i++) dd += memcmp(&y[i], &want[i], sizeof y[i]) != 0;
        CHECK(dd == 0, "fp4_e4m3 record decode: %ld values differ", dd);
        free(pc); free(sc); free(y);
    }
    free(x); free(want); free(wc); free(ws);
    /* FP8 32-block (window KV, GEMM inputs) and FP4 32-block (indexer) simulations of kernels.h */
    static const char *names[2] = {"fp8_kv32", "fp4_idx32"};
    for (int k = 0; k < 2; k++) {
        char pi[128], po[128];
        snprintf(pi, sizeof pi, OPS "%s.in.f32", names[k]);
        snprintf(po, sizeof po, OPS "%s.out.f32", names[k]);
        float *xi = test_read_f32(pi, n), *wo = test_read_f32(po, n);
        if (xi && wo) {
            for (size_t r = 0; r < n; r += 512) { /* one 512-wide KV / 128-wide index vector at a time */
                if (k == 0) dsv4_fp8_sim(xi + r, 512, 32);
                else for (int q = 0; q < 4; q++) dsv4_fp4_sim(xi + r + 128 * q, 128, 32);
            }
            long d = diff_f32(xi, wo, n, &first);
            CHECK(d == 0, "%s: %ld values differ (first %zu)", names[k], d, first);
        }
        free(xi); free(wo);
    }
    /* FP8 weight, 32x32 tiles -> BF16 */
    const int rows = 96, cols = 160;
    uint8_t *c8 = read_u8(OPS "fp8_tile32.codes.u8", (size_t)rows * cols), *s8 = read_u8(OPS "fp8_tile32.scales.u8", 15);
    float *w8 = test_read_f32(OPS "fp8_tile32.out.f32", (size_t)rows * cols);
    if (c8 && s8 && w8) {
        uint16_t *o = malloc(sizeof *o * rows * cols);
        long inexact = dsv4_fp8_tiles_to_bf16(c8, s8, rows, cols, 32, o), d = 0;
        for (int i = 0; i < rows * cols; i++) d += dsv4_bf16_to_f32(o[i]) != w8[i];
        CHECK(inexact == 0 && d == 0, "fp8_tile32: %ld inexact, %ld differ", inexact, d);
        free(o);
    }
    free(c8); free(s8); free(w8);
    return test_done();
}
