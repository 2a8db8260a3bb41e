/* tests/test_kernels.c — self-contained checks of src/kernels (no data files): number formats against
 * brute-force definitions, quantization simulations, all four linear weight formats against a double dot
 * product and (BF16/FP8/FP4) bit for bit against the pair-lane definition on every SIMD path and thread
 * count, batch invariance, dsv4_linear_bf16x, RoPE/YaRN table (docs/architecture.md §3.2), Sinkhorn, Hadamard.
 * Prints one line per failed check and ends with "N passed, N failed".
 */
#include "kernels/kernels.h"
#include "kernels/quant_v41.h"
#include "kernels/ops_simd.h"
#include "dsv4.h"
#include "base/util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testlib.h"

/* deterministic xorshift */
static uint64_t rng = 88172645463325252ull;
static uint32_t rnd_u32(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return (uint32_t)(rng >> 16); }
static float rnd_unif(void) { return (float)((rnd_u32() >> 8) * (1.0 / 16777216.0)) * 2.0f - 1.0f; }
static float rnd_bf16(float scale) { return dsv4_round_bf16(rnd_unif() * scale); }

static uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* ------------------------------------------------------------------ E4M3 */
static double e4m3_def(int b) { /* definition, independent of the LUT */
    int s = b >> 7, e = (b >> 3) & 15, m = b & 7;
    double v = e == 0 ? m * ldexp(1.0, -9) : (1.0 + m / 8.0) * ldexp(1.0, e - 7);
    return s ? -v : v;
}

/* brute force: nearest finite code to x (|x| <= 448), ties to even mantissa (code & 1 == 0) */
static int e4m3_brute(float x) {
    double a = fabs((double)x);
    int best = 0; double bd = 1e300;
    for (int b = 0; b < 0x7f; b++) {
        double d = fabs(e4m3_def(b) - a);
        if (d < bd || (d == bd && (b & 1) == 0 && (best & 1))) { bd = d; best = b; }
    }
    return (x < 0 || (x == 0 && signbit(x))) ? (best | 0x80) : best;
}

static void test_e4m3(void) {
    int bad = 0;
    for (int b = 0; b < 256; b++) {
        float v = dsv4_e4m3_to_f32((uint8_t)b);
        if ((b & 0x7f) == 0x7f) { if (!isnan(v)) bad++; continue; }
        if ((double)v != e4m3_def(b) || dsv4_e4m3_lut[b] != v) bad++;
        if (dsv4_f32_to_e4m3(v) != b) bad++;
    }
    CHECK(bad == 0, "e4m3 decode/encode round trip: %d mismatches", bad);
    CHECK(dsv4_f32_to_e4m3(448.0f) == 0x7e, "448 -> %#x", dsv4_f32_to_e4m3(448.0f));
    CHECK(dsv4_f32_to_e4m3(464.0f) == 0x7e, "464 saturates -> %#x", dsv4_f32_to_e4m3(464.0f));
    CHECK(dsv4_f32_to_e4m3(1e6f) == 0x7e, "1e6 saturates");
    CHECK(dsv4_f32_to_e4m3(-INFINITY) == 0xfe, "-inf saturates to -448");
    CHECK(dsv4_f32_to_e4m3(NAN) == 0x7f, "NaN -> 0x7f");
    CHECK(dsv4_round_e4m3(1.0625f) == 1.0f, "tie 1.0625 -> %g", dsv4_round_e4m3(1.0625f));
    CHECK(dsv4_round_e4m3(1.1875f) == 1.25f, "tie 1.1875 -> %g", dsv4_round_e4m3(1.1875f));
    CHECK(dsv4_round_e4m3(1.0625001f) == 1.125f, "1.0625+ulp -> %g", dsv4_round_e4m3(1.0625001f));
    CHECK(dsv4_round_e4m3(-3.125f) == -3.0f, "tie -3.125 -> %g", dsv4_round_e4m3(-3.125f));
    CHECK(dsv4_round_e4m3(-3.375f) == -3.5f, "tie -3.375 -> %g", dsv4_round_e4m3(-3.375f));
    CHECK(dsv4_round_e4m3(0x1p-10f) == 0.0f, "tie 2^-10 -> %g", dsv4_round_e4m3(0x1p-10f));
    CHECK(dsv4_round_e4m3(0x1.000002p-10f) == 0x1p-9f, "2^-10+ulp -> min subnormal");
    CHECK(dsv4_round_e4m3(3 * 0x1p-10f) == 0x1p-8f, "tie 3*2^-10 -> %g", dsv4_round_e4m3(3 * 0x1p-10f));
    CHECK(dsv4_round_e4m3(15 * 0x1p-10f) == 0x1p-6f, "tie 15*2^-10 -> min normal (%g)", dsv4_round_e4m3(15 * 0x1p-10f));
    CHECK(dsv4_f32_to_e4m3(0x1p-9f) == 0x01, "min subnormal code");
    CHECK(dsv4_f32_to_e4m3(-0.0f) == 0x80, "-0 -> 0x80");
    CHECK(dsv4_f32_to_e4m3(1e-30f) == 0x00, "tiny -> 0");
    /* random and midpoint sweep against brute force */
    bad = 0;
    for (int i = 0; i < 200000; i++) {
        float x;
        if (i & 1) x = u2f((rnd_u32() % f2u(448.0f)) | (rnd_u32() & 0x80000000u));
        else {  /* exact midpoints between neighbours and +-1 ulp around them */
            int b = (int)(rnd_u32() % 0x7e);
            float mid = (float)((e4m3_def(b) + e4m3_def(b + 1)) / 2);
            int d = (int)(rnd_u32() % 3) - 1;
            x = u2f(f2u(mid) + d);
        }
        if (dsv4_f32_to_e4m3(x) != e4m3_brute(x)) {
            if (bad < 5) printf("  e4m3(%a) = %#x, brute %#x\n", x, dsv4_f32_to_e4m3(x), e4m3_brute(x));
            bad++;
        }
    }
    CHECK(bad == 0, "e4m3 RNE vs brute force: %d mismatches of 200000", bad);
}

/* ------------------------------------------------------------------ E8M0 / E2M1 */
static void test_e8m0_e2m1(void) {
    CHECK(dsv4_e8m0_to_f32(127) == 1.0f, "e8m0 127");
    CHECK(dsv4_e8m0_to_f32(0) == 0x1p-127f, "e8m0 0 = 2^-127");
    CHECK(dsv4_e8m0_to_f32(1) == 0x1p-126f, "e8m0 1");
    CHECK(dsv4_e8m0_to_f32(254) == 0x1p127f, "e8m0 254");
    CHECK(isnan(dsv4_e8m0_to_f32(255)), "e8m0 255 NaN");
    static const float grid[8] = {0, .5f, 1, 1.5f, 2, 3, 4, 6};
    int bad = 0;
    for (int c = 0; c < 16; c++) {
        float v = dsv4_e2m1_to_f32((uint8_t)c), g = c < 8 ? grid[c] : -grid[c - 8];
        if (v != g || (c == 8 && !signbit(v))) bad++;
        if (dsv4_round_e2m1(v) != v) bad++;
    }
    CHECK(bad == 0, "e2m1 decode table / fixed points: %d bad", bad);
    CHECK(dsv4_e2m1_to_f32(0xf7) == 6.0f, "e2m1 uses low 4 bits");
    static const float in[] = {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f, 0.2500001f, 5.0001f, 7.0f, 1e9f, -0.75f, -5.0f, 0.1f, -2.6f};
    static const float ex[] = {0.0f, 1.0f, 1.0f, 2.0f, 2.0f, 4.0f, 4.0f, 0.5f, 6.0f, 6.0f, 6.0f, -1.0f, -4.0f, 0.0f, -3.0f};
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++)
        CHECK(dsv4_round_e2m1(in[i]) == ex[i], "round_e2m1(%g) = %g, want %g", in[i], dsv4_round_e2m1(in[i]), ex[i]);
}

/* ------------------------------------------------------------------ simulations */
static float ref_pow2_ceil(float v) { return (float)ldexp(1.0, (int)ceil(log2((double)v))); }

static void test_fp8_sim(void) {
    enum { N = 1000, B = 128 };
    static float x[N], y[N], q[N], sc[(N + B - 1) / B];
    int bad = 0, bad_idem = 0, bad_q = 0;
    for (int rep = 0; rep < 50; rep++) {
        float mag = ldexpf(1.0f, (int)(rnd_u32() % 40) - 20);
        for (int i = 0; i < N; i++) x[i] = rnd_bf16(mag) * (i % 97 == 0 ? 37.0f : 1.0f);
        memcpy(y, x, sizeof x);
        dsv4_fp8_sim(y, N, B);
        dsv4_fp8_quant(x, N, B, q, sc);
        for (int b0 = 0, bi = 0; b0 < N; b0 += B, bi++) {
            int n = N - b0 < B ? N - b0 : B;
            float a = 0;
            for (int i = 0; i < n; i++) a = fmaxf(a, fabsf(x[b0 + i]));
            a = fmaxf(a, 1e-4f);
            float s = ref_pow2_ceil(a / 448.0f);
            if (sc[bi] != s) bad++;
            for (int i = 0; i < n; i++) {
                float want = dsv4_round_e4m3(fminf(fmaxf(x[b0 + i] / s, -448.f), 448.f)) * s;
                if (y[b0 + i] != want) bad++;
                if (q[b0 + i] * sc[bi] != y[b0 + i] || dsv4_round_e4m3(q[b0 + i]) != q[b0 + i]) bad_q++;
            }
        }
        memcpy(x, y, sizeof y);
        dsv4_fp8_sim(x, N, B);
        if (memcmp(x, y, sizeof x)) bad_idem++;
    }
    CHECK(bad == 0, "fp8_sim vs log2/ceil definition: %d mismatches", bad);
    CHECK(bad_q == 0, "fp8_quant q*scale == fp8_sim: %d mismatches", bad_q);
    CHECK(bad_idem == 0, "fp8_sim idempotent: %d reps differ", bad_idem);
    /* scale rounding edge cases: amax/448 a power of two keeps the scale, one ulp above doubles it */
    float v[4] = {896.0f, 1.0f, -3.0f, 0.0f};
    dsv4_fp8_quant(v, 4, 4, q, sc);
    CHECK(sc[0] == 2.0f && q[0] == 448.0f, "amax 896 -> scale %g q %g", sc[0], q[0]);
    v[0] = 897.0f;
    dsv4_fp8_quant(v, 4, 4, q, sc);
    CHECK(sc[0] == 4.0f, "amax 897 -> scale %g (want 4)", sc[0]);
    float z[3] = {0, 0, 0};
    dsv4_fp8_quant(z, 3, 128, q, sc);
    CHECK(sc[0] == ref_pow2_ceil(1e-4f / 448.0f) && q[0] == 0.0f, "all-zero block: scale %a", sc[0]);
    float w[5] = {1e-6f, -2e-5f, 3e-7f, 0, 5e-5f};
    memcpy(y, w, sizeof w);
    dsv4_fp8_sim(y, 5, 128); /* amax clamps to 1e-4: scale 2^-22 */
    CHECK(y[1] == dsv4_round_e4m3(-2e-5f * 0x1p22f) * 0x1p-22f && y[0] == dsv4_round_e4m3(1e-6f * 0x1p22f) * 0x1p-22f,
          "tiny block uses amax floor 1e-4");
}

static void test_fp4_sim(void) {
    enum { N = 256 };
    static float x[N], y[N];
    int bad = 0, bad_idem = 0, bad_bf = 0;
    for (int rep = 0; rep < 50; rep++) {
        float mag = ldexpf(1.0f, (int)(rnd_u32() % 40) - 20);
        for (int i = 0; i < N; i++) x[i] = rnd_bf16(mag);
        memcpy(y, x, sizeof x);
        dsv4_fp4_sim(y, N, 32);
        for (int b0 = 0; b0 < N; b0 += 32) {
            float a = 6.0f * 0x1p-126f;
            for (int i = 0; i < 32; i++) a = fmaxf(a, fabsf(x[b0 + i]));
            float s = ref_pow2_ceil(a / 6.0f);
            for (int i = 0; i < 32; i++) {
                float want = dsv4_round_bf16(dsv4_round_e2m1(fminf(fmaxf(x[b0 + i] / s, -6.f), 6.f)) * s);
                if (y[b0 + i] != want) bad++;
                if (dsv4_round_bf16(y[b0 + i]) != y[b0 + i]) bad_bf++;
            }
        }
        memcpy(x, y, sizeof y);
        dsv4_fp4_sim(x, N, 32);
        if (memcmp(x, y, sizeof x)) bad_idem++;
    }
    CHECK(bad == 0, "fp4_sim vs definition: %d mismatches", bad);
    CHECK(bad_bf == 0, "fp4_sim output BF16: %d", bad_bf);
    CHECK(bad_idem == 0, "fp4_sim idempotent: %d reps differ", bad_idem);
    float v[32] = {6.0f, 0.25f, 0.75f, 2.5f, 5.0f, -1.25f};
    dsv4_fp4_sim(v, 32, 32); /* amax 6 -> scale 1 */
    CHECK(v[0] == 6 && v[1] == 0 && v[2] == 1 && v[3] == 2 && v[4] == 4 && v[5] == -1,
          "fp4_sim scale-1 block: %g %g %g %g %g %g", v[0], v[1], v[2], v[3], v[4], v[5]);
}

static void test_hadamard(void) {
    enum { M = 128 };
    float x[M], y[M];
    double maxrel = 0, maxd = 0;
    for (int i = 0; i < M; i++) x[i] = rnd_bf16(3.0f);
    memcpy(y, x, sizeof x);
    dsv4_hadamard(y, M);
    for (int i = 0; i < M; i++) {  /* against H_ij = (-1)^popcount(i&j) / sqrt(M) in double */
        double s = 0;
        for (int j = 0; j < M; j++) s += (__builtin_popcount(i & j) & 1 ? -1.0 : 1.0) * x[j];
        s /= sqrt((double)M);
        double d = fabs(y[i] - s) / (fabs(s) + 1e-3);
        if (d > maxd) maxd = d;
    }
    CHECK(maxd <= 1.0 / 256, "hadamard vs Sylvester matrix: max rel %g (> 2^-8)", maxd);
    dsv4_hadamard(y, M);
    double rms = 0;
    for (int i = 0; i < M; i++) rms += (double)x[i] * x[i] / M;
    rms = sqrt(rms);
    for (int i = 0; i < M; i++) {
        double d = fabs(y[i] - x[i]) / rms;
        if (d > maxrel) maxrel = d;
    }
    /* two BF16 roundings (rel 2^-9 each) spread over the vector: error bounded by ~2 * 2^-9 * rms */
    CHECK(maxrel <= 2.0 / 256, "hadamard twice == identity up to BF16: max |err|/rms %g", maxrel);
    float e[8] = {1, 0, 0, 0, 0, 0, 0, 0};
    dsv4_hadamard(e, 8);
    int ok = 1;
    for (int i = 0; i < 8; i++) ok &= e[i] == dsv4_round_bf16((float)(1.0 / sqrt(8.0)));
    CHECK(ok, "hadamard of e0 is constant 1/sqrt(8)");
    float f[4] = {0, 1, 0, 0};
    dsv4_hadamard(f, 4);
    CHECK(f[0] == .5f && f[1] == -.5f && f[2] == .5f && f[3] == -.5f, "hadamard Sylvester order: %g %g %g %g",
          f[0], f[1], f[2], f[3]);
}

/* ------------------------------------------------------------------ linear */
typedef struct {
    dsv4_wview w;
    void *data;
    uint8_t *scale;
} owned_w;

static owned_w make_weight(dsv4_wfmt fmt, int rows, int cols) {
    owned_w o = {{fmt, rows, cols, NULL, NULL}, NULL, NULL};
    size_t n = (size_t)rows * cols;
    switch (fmt) {
    case DSV4_W_F32: {
        float *d = malloc(n * 4);
        for (size_t i = 0; i < n; i++) d[i] = rnd_unif() * 0.1f;
        o.data = d;
        break;
    }
    case DSV4_W_BF16: {
        uint16_t *d = malloc(n * 2);
        for (size_t i = 0; i < n; i++) d[i] = dsv4_f32_to_bf16(rnd_unif() * 0.1f);
        o.data = d;
        break;
    }
    case DSV4_W_FP8: {
        uint8_t *d = malloc(n);
        for (size_t i = 0; i < n; i++) { d[i] = (uint8_t)rnd_u32(); if ((d[i] & 0x7f) == 0x7f) d[i] = 0x10; }
        size_t ns = (size_t)((rows + 127) / 128) * ((cols + 127) / 128);
        o.scale = malloc(ns);
        for (size_t i = 0; i < ns; i++) o.scale[i] = (uint8_t)(115 + rnd_u32() % 8);
        o.data = d;
        break;
    }
    case DSV4_W_FP8_32: {   /* scales spread over 2^-14 .. 2^-3 so that a wrong tile is seen */
        uint8_t *d = malloc(n);
        for (size_t i = 0; i < n; i++) { d[i] = (uint8_t)rnd_u32(); if ((d[i] & 0x7f) == 0x7f) d[i] = 0x10; }
        size_t ns = (size_t)((rows + 31) / 32) * ((cols + 31) / 32);
        o.scale = malloc(ns);
        for (size_t i = 0; i < ns; i++) o.scale[i] = (uint8_t)(113 + rnd_u32() % 12);
        o.data = d;
        break;
    }
    case DSV4_W_FP4: {
        uint8_t *d = malloc(n / 2);
        for (size_t i = 0; i < n / 2; i++) d[i] = (uint8_t)rnd_u32();
        size_t ns = (size_t)rows * ((cols + 31) / 32);
        o.scale = malloc(ns);
        for (size_t i = 0; i < ns; i++) o.scale[i] = (uint8_t)(118 + rnd_u32() % 8);
        o.data = d;
        break;
    }
    }
    o.w.data = o.data;
    o.w.scale = o.scale;
    return o;
}

/* W[r][c] straight from the §2.3 formula */
static double w_def(const dsv4_wview *w, int r, int c) {
    switch (w->fmt) {
    case DSV4_W_F32: return ((const float *)w->data)[(size_t)r * w->cols + c];
    case DSV4_W_BF16: return dsv4_bf16_to_f32(((const uint16_t *)w->data)[(size_t)r * w->cols + c]);
    case DSV4_W_FP8:
        return e4m3_def(((const uint8_t *)w->data)[(size_t)r * w->cols + c]) *
               ldexp(1.0, w->scale[(size_t)(r / 128) * ((w->cols + 127) / 128) + c / 128] - 127);
    case DSV4_W_FP4: {
        uint8_t b = ((const uint8_t *)w->data)[(size_t)r * (w->cols / 2) + c / 2];
        return dsv4_e2m1_to_f32(c & 1 ? b >> 4 : b & 15) *
               ldexp(1.0, w->scale[(size_t)r * ((w->cols + 31) / 32) + c / 32] - 127);
    }
    case DSV4_W_FP8_32:
        return e4m3_def(((const uint8_t *)w->data)[(size_t)r * w->cols + c]) *
               ldexp(1.0, w->scale[(size_t)(r / 32) * ((w->cols + 31) / 32) + c / 32] - 127);
    }
    return 0;
}

/* ---- the pair-lane order, written again here straight from its definition (src/kernels/simd.h) ---- */
static float ftz(float v) { return fabsf(v) < 0x1p-126f ? copysignf(0.0f, v) : v; }
/* unscaled weight value (the E4M3 / E2M1 / BF16 value alone) and its power-of-two scale */
static double w_unscaled(const dsv4_wview *w, int r, int c, double *scale) {
    *scale = 1.0;
    switch (w->fmt) {
    case DSV4_W_BF16: return dsv4_bf16_to_f32(((const uint16_t *)w->data)[(size_t)r * w->cols + c]);
    case DSV4_W_FP8:
        *scale = ldexp(1.0, w->scale[(size_t)(r / 128) * ((w->cols + 127) / 128) + c / 128] - 127);
        return e4m3_def(((const uint8_t *)w->data)[(size_t)r * w->cols + c]);
    case DSV4_W_FP4: {
        uint8_t b = ((const uint8_t *)w->data)[(size_t)r * (w->cols / 2) + c / 2];
        *scale = ldexp(1.0, w->scale[(size_t)r * ((w->cols + 31) / 32) + c / 32] - 127);
        return dsv4_e2m1_to_f32(c & 1 ? b >> 4 : b & 15);
    }
    case DSV4_W_FP8_32:   /* V4.1: one scale per 32x32 tile */
        *scale = ldexp(1.0, w->scale[(size_t)(r / 32) * ((w->cols + 31) / 32) + c / 32] - 127);
        return e4m3_def(((const uint8_t *)w->data)[(size_t)r * w->cols + c]);
    default: return 0;
    }
}
/* out = W x for one row in the pair-lane order; x BF16 values (subnormals read as 0) */
static float pair_lane_ref(const dsv4_wview *w, int r, const float *x) {
    int cols = w->cols, grp = w->fmt == DSV4_W_FP8 ? 128 : w->fmt == DSV4_W_FP4 || w->fmt == DSV4_W_FP8_32 ? 32 : cols;
    float L[16] = {0};
    /* FP8: each full 64-column block is taken in the order 0-7,16-23,32-39,48-55, 8-15,24-31,40-47,56-63 */
    int *col = malloc(sizeof(int) * (size_t)cols);
    for (int c = 0; c < cols; c++) col[c] = c;
    if (w->fmt == DSV4_W_FP8)
        for (int b0 = 0; b0 + 64 <= cols; b0 += 64)
            for (int p = 0; p < 64; p++) {
                int half = p / 32, q = (p % 32) / 8, j = p % 8;
                col[b0 + p] = b0 + 16 * q + 8 * half + j;
            }
    for (int g0 = 0; g0 < cols; g0 += grp) {
        float P[16] = {0};
        double sc = 1.0;
        for (int c0 = g0; c0 < g0 + grp && c0 < cols; c0 += 32)
            for (int i = 0; i < 16; i++)
                for (int e = 1; e >= 0; e--) {          /* odd element first */
                    int c = c0 + 2 * i + e;
                    float wv = 0, xv = 0;
                    if (c < cols) { wv = ftz((float)w_unscaled(w, r, col[c], &sc)); xv = ftz(x[col[c]]); }
                    P[i] = ftz(fmaf(wv, xv, P[i]));   /* one rounding (VDPBF16PS / FMA) */
                }
        if (w->fmt == DSV4_W_BF16) { memcpy(L, P, sizeof L); break; }
        for (int i = 0; i < 16; i++) L[i] = ftz(fmaf(ftz((float)sc), P[i], L[i]));
    }
    free(col);
    float t[16];
    memcpy(t, L, sizeof t);
    for (int n = 16; n > 1; n /= 2)
        for (int i = 0; i < n / 2; i++) t[i] = ftz(t[2 * i] + t[2 * i + 1]);
    return t[0];
}

static const char *PATHS[] = {"scalar", "avx2", "avx512", "neon"};   /* those this CPU lacks are skipped */
enum { NPATHS = sizeof PATHS / sizeof PATHS[0] };

/* FP4 scale codes 0 and 255 are read through dsv4_e8m0_f32 while every other code is converted by a shift; the
 * one-token AVX-512 kernel tests 64 codes at once, then 16 at once, then one by one. Code 255 is NaN (OCP MX E8M0),
 * which a shift would turn into +Inf; code 0 is 2^-127, a subnormal scale that the definition reads as 0 (as the
 * test's pair_lane_ref does), which a shift also gives. Rows of 1,024 columns (32 codes: two steps of 16), 2,048
 * (one step of 64), 2,080 (64, then one code alone) and 7,168 (V4-Flash's w2: three steps of 64, two of 16) with
 * such codes at several offsets, every path, 1-2 token calls and 37 tokens: rows holding a 255 give NaN for every
 * token, the others the definition's bits. Row 10's 255 group has all weights 1.0 against positive activations, so
 * that a code read as +Inf gives +Inf there, not NaN. */
static void test_fp4_rare_scales(void) {
    static const int colss[4] = {1024, 2048, 2080, 7168};
    char err[256];
    for (int ci = 0; ci < 4; ci++) {
        const int rows = 24, cols = colss[ci], ncs = cols / 32, T = 37, g10 = ncs > 128 ? 100 : 40 % ncs;
        owned_w ow = make_weight(DSV4_W_FP4, rows, cols);
        /* row 1: a 0 in group 5; row 10: a 255 in group 40 (8 at 1,024 columns; 100, in the second 64-code step, at
         * 7,168); row 17: a 0 in the last group; row 20: a 0 in group 0 and a 255 in group 63 (31 at 1,024 columns) */
        ow.scale[1 * ncs + 5] = 0;
        ow.scale[10 * ncs + g10] = 255;
        memset((uint8_t *)ow.data + (size_t)10 * (cols / 2) + g10 * 16, 0x22, 16);
        ow.scale[17 * ncs + ncs - 1] = 0;
        ow.scale[20 * ncs + 0] = 0;
        ow.scale[20 * ncs + 63 % ncs] = 255;
        float *x = malloc((size_t)T * cols * 4), *o = malloc((size_t)T * rows * 4), *ref = malloc((size_t)T * rows * 4);
        float *scratch = malloc(dsv4_linear_scratch_floats(T, cols) * 4);
        for (int i = 0; i < T * cols; i++) x[i] = rnd_bf16(2.0f);
        for (int t = 0; t < T; t++)
            for (int c = g10 * 32; c < g10 * 32 + 32; c++) x[(size_t)t * cols + c] = dsv4_round_bf16(fabsf(x[(size_t)t * cols + c]) + 1.0f);
        for (int t = 0; t < T; t++)
            for (int r = 0; r < rows; r++) ref[(size_t)t * rows + r] = r == 10 || r == 20 ? NAN : pair_lane_ref(&ow.w, r, x + (size_t)t * cols);
        for (int p = 0; p < NPATHS; p++) {
            if (dsv4_set_kernel_path(PATHS[p], err, sizeof err) != 0) continue;
            for (int th = 1; th <= 2; th++) {
                dsv4_set_threads(th, NULL, 0);
                for (int nt = 1; nt <= T; nt += nt == 2 ? T - 2 : 1) {
                    memset(o, 0, (size_t)nt * rows * 4);
                    dsv4_linear(o, &ow.w, x, nt, 0, scratch);
                    int bad = 0;
                    for (int i = 0; i < nt * rows; i++)
                        bad += isnan(ref[i]) ? !isnan(o[i]) : f2u(o[i]) != f2u(ref[i]);
                    CHECK(bad == 0, "fp4 rare scales, %d columns, path %s, %d threads, %d tokens: %d outputs differ",
                          cols, PATHS[p], th, nt, bad);
                }
            }
        }
        dsv4_set_kernel_path(getenv("DSV4_KERNEL") ? getenv("DSV4_KERNEL") : "scalar", NULL, 0);
        free(x); free(o); free(ref); free(scratch); free(ow.data); free(ow.scale);
    }
}

/* mis >= 0: the weight's codes start mis bytes past a 64-byte line (as a checkpoint's tensors do: safetensors
 * aligns nothing past its header), rows of cols % 64 == 0 codes then all start there; mis < 0: where malloc put
 * them */
static void test_linear_fmt_at(dsv4_wfmt fmt, const char *name, int rows, int cols, int mis) {
    enum { T = 37 };   /* more than one 32-token block of the tile paths */
    owned_w ow = make_weight(fmt, rows, cols);
    if (mis >= 0) {
        size_t n = (size_t)rows * cols, bytes = fmt == DSV4_W_FP4 ? n / 2 : fmt == DSV4_W_BF16 ? 2 * n
                                                 : fmt == DSV4_W_F32 ? 4 * n : n;
        uint8_t *buf = malloc(bytes + 128), *at = (uint8_t *)(((uintptr_t)buf + 63) & ~(uintptr_t)63) + mis;
        memcpy(at, ow.data, bytes);
        free(ow.data);
        ow.data = buf;
        ow.w.data = at;
    }
    const dsv4_wview *w = &ow.w;
    char err[256];
    float *deq = malloc((size_t)rows * cols * 4);
    float *x = malloc((size_t)T * cols * 4), *x0 = malloc((size_t)T * cols * 4), *xq = malloc((size_t)T * cols * 4);
    float *scratch = malloc(dsv4_linear_scratch_floats(T, cols) * 4);
    float *o1 = malloc((size_t)T * rows * 4), *o2 = malloc((size_t)T * rows * 4), *o3 = malloc((size_t)T * rows * 4);
    float *ref = malloc((size_t)T * rows * 4);
    int bad = 0;
    for (int r = 0; r < rows; r++) {
        dsv4_wview_row(w, r, deq + (size_t)r * cols);
        for (int c = 0; c < cols; c++) bad += (double)deq[(size_t)r * cols + c] != w_def(w, r, c);
    }
    CHECK(bad == 0, "%s: wview_row vs §2.3 definition: %d mismatches", name, bad);
    for (int i = 0; i < T * cols; i++) x[i] = dsv4_round_bf16(rnd_bf16(2.0f) * (i % 61 == 0 ? 50.0f : 1.0f));
    memcpy(x0, x, (size_t)T * cols * 4);

    /* against a double-precision dot product. Bound: an F32 sum whose every partial sum is rounded once
     * errs by at most (number of sequential additions) * 2^-24 * sum|p|; the deepest chain here has
     * 2*ceil(cols/32) dp additions + one scale addition per block + the 4-level tree. */
    dsv4_set_threads(1, NULL, 0);
    dsv4_linear(o1, w, x, T, 0, scratch);
    double maxerr = 0;
    for (int t = 0; t < T; t++)
        for (int r = 0; r < rows; r++) {
            double s = 0, sa = 0;
            for (int c = 0; c < cols; c++) {
                double p = (double)deq[(size_t)r * cols + c] * x[(size_t)t * cols + c];
                s += p; sa += fabs(p);
            }
            double e = fabs(o1[(size_t)t * rows + r] - s) / (sa + 1e-30);
            if (e > maxerr) maxerr = e;
        }
    double depth = fmt == DSV4_W_F32 ? cols / 8.0 + 4 : 2.0 * ((cols + 31) / 32) + (cols + 31) / 32 + 4;
    CHECK(maxerr < depth * 0x1p-24, "%s: linear vs double dot: max err/sum|p| %g (bound %g)", name, maxerr,
          depth * 0x1p-24);

    /* bit-identical to the definition (the test's own implementation above), on every path and thread count */
    if (fmt != DSV4_W_F32) {
        for (int t = 0; t < T; t++)
            for (int r = 0; r < rows; r++) ref[(size_t)t * rows + r] = pair_lane_ref(w, r, x + (size_t)t * cols);
        for (int p = 0; p < NPATHS; p++) {
            if (dsv4_set_kernel_path(PATHS[p], err, sizeof err) != 0) { printf("skip %s %s: %s\n", name, PATHS[p], err); continue; }
            for (int th = 1; th <= 3; th++) {
                dsv4_set_threads(th, NULL, 0);
                memset(o2, 0xff, (size_t)T * rows * 4);   /* NaN: every output must be written */
                dsv4_linear(o2, w, x, T, 0, scratch);
                bad = 0;
                for (int i = 0; i < T * rows; i++) bad += f2u(o2[i]) != f2u(ref[i]);
                CHECK(bad == 0, "%s: path %s, %d threads: %d of %d outputs differ from the pair-lane definition",
                      name, PATHS[p], th, bad, T * rows);
                for (int t = 0; t < 2; t++) {   /* 1- and 2-token calls (the AVX-512 decode fast path) */
                    memset(o2, 0xff, (size_t)(t + 1) * rows * 4);
                    dsv4_linear(o2, w, x + (size_t)t * cols, t + 1, 0, scratch);
                    bad = 0;
                    for (int i = 0; i < (t + 1) * rows; i++) bad += f2u(o2[i]) != f2u(ref[(size_t)t * rows + i]);
                    CHECK(bad == 0, "%s: path %s, %d threads, %d-token call: %d outputs differ from the definition",
                          name, PATHS[p], th, t + 1, bad);
                }
            }
        }
        dsv4_set_kernel_path(getenv("DSV4_KERNEL") ? getenv("DSV4_KERNEL") : "scalar", NULL, 0);
        dsv4_set_threads(2, NULL, 0);
    } else {
        /* F32 weights: the 8-lane order of matmul.c (the test's own implementation: per 128-column block, lane
         * k % 8 gets each rounded product and then adds it, lanes summed as ((0+1)+(2+3))+((4+5)+(6+7)), and the
         * block added to the row's sum), bit for bit on every path (the avx2 / avx512 lanes in AVX registers) */
        for (int t = 0; t < T; t++)
            for (int r = 0; r < rows; r++) {
                const float *wr = (const float *)w->data + (size_t)r * cols, *xt = x + (size_t)t * cols;
                volatile float acc = 0.0f;
                for (int b0 = 0; b0 < cols; b0 += 128) {
                    volatile float l[8] = {0};
                    for (int k = b0; k < cols && k < b0 + 128; k++) {
                        volatile float p = wr[k] * xt[k];
                        l[k & 7] = l[k & 7] + p;
                    }
                    volatile float s01 = l[0] + l[1], s23 = l[2] + l[3], s45 = l[4] + l[5], s67 = l[6] + l[7];
                    volatile float s03 = s01 + s23, s47 = s45 + s67;
                    acc = acc + (s03 + s47);
                }
                ref[(size_t)t * rows + r] = acc;
            }
        for (int p = 0; p < NPATHS; p++) {
            if (dsv4_set_kernel_path(PATHS[p], err, sizeof err) != 0) { printf("skip %s %s: %s\n", name, PATHS[p], err); continue; }
            for (int th = 1; th <= 3; th++) {
                dsv4_set_threads(th, NULL, 0);
                memset(o2, 0xff, (size_t)T * rows * 4);
                dsv4_linear(o2, w, x, T, 0, scratch);
                bad = 0;
                for (int i = 0; i < T * rows; i++) bad += f2u(o2[i]) != f2u(ref[i]);
                CHECK(bad == 0, "%s: path %s, %d threads: %d of %d outputs differ from the 8-lane definition",
                      name, PATHS[p], th, bad, T * rows);
            }
        }
        dsv4_set_kernel_path(getenv("DSV4_KERNEL") ? getenv("DSV4_KERNEL") : "scalar", NULL, 0);
        dsv4_set_threads(3, NULL, 0);
        dsv4_linear(o2, w, x, T, 0, scratch);
        CHECK(!memcmp(o1, o2, (size_t)T * rows * 4), "%s: 3 threads differ from 1", name);
    }

    /* batch invariance: n_tok = 1 calls give the same bits */
    dsv4_linear(o1, w, x, T, 0, scratch);
    bad = 0;
    for (int t = 0; t < T; t++) {
        dsv4_linear(o3, w, x + (size_t)t * cols, 1, 0, scratch);
        bad += memcmp(o3, o1 + (size_t)t * rows, (size_t)rows * 4) != 0;
    }
    CHECK(bad == 0, "%s: n_tok=1 differs from batched for %d tokens", name, bad);

    /* row sub-views */
    int r0 = fmt == DSV4_W_FP8 ? 128 : fmt == DSV4_W_FP8_32 ? (rows > 110 ? 96 : 32) : 37, nr = rows - r0 - 5;
    dsv4_wview sub = dsv4_wview_rows(w, r0, nr);
    dsv4_linear(o3, &sub, x, T, 0, scratch);
    bad = 0;
    for (int t = 0; t < T; t++) bad += memcmp(o3 + (size_t)t * nr, o1 + (size_t)t * rows + r0, (size_t)nr * 4) != 0;
    CHECK(bad == 0, "%s: wview_rows(%d,%d) linear differs from full rows", name, r0, nr);

    /* DSV4_ACT_FP8 (DSV4_ACT_FP8_32: V4.1's 32-blocks) | DSV4_OUT_BF16 == plain linear of fp8_sim'd rows, rounded;
     * x untouched */
    for (int a = 0; a < 2; a++) {
        const int act = a ? DSV4_ACT_FP8_32 : DSV4_ACT_FP8, blk = a ? 32 : 128;
        dsv4_linear(o3, w, x, T, act | DSV4_OUT_BF16, scratch);
        CHECK(!memcmp(x, x0, (size_t)T * cols * 4), "%s: DSV4_ACT_FP8 (block %d) modified the input", name, blk);
        memcpy(xq, x, (size_t)T * cols * 4);
        for (int t = 0; t < T; t++) dsv4_fp8_sim(xq + (size_t)t * cols, cols, blk);
        dsv4_linear(o2, w, xq, T, 0, scratch);
        bad = 0;
        for (int i = 0; i < T * rows; i++) bad += o3[i] != dsv4_round_bf16(o2[i]);
        CHECK(bad == 0, "%s: ACT_FP8 (block %d)|OUT_BF16 differs from fp8_sim + linear + bf16: %d", name, blk, bad);
        dsv4_linear(o2, w, x + 3 * (size_t)cols, 1, act | DSV4_OUT_BF16, scratch);
        CHECK(!memcmp(o2, o3 + 3 * (size_t)rows, (size_t)rows * 4), "%s: ACT_FP8 (block %d) batch invariance", name, blk);
    }

    free(deq); free(x); free(x0); free(xq); free(scratch); free(o1); free(o2); free(o3); free(ref);
    free(ow.data); free(ow.scale);
}

static void test_linear_fmt(dsv4_wfmt fmt, const char *name, int rows, int cols) {
    test_linear_fmt_at(fmt, name, rows, cols, -1);
}

/* dsv4_linear_bf16x (attention scores, indexer: activations already packed, given by row pointers or by stride)
 * on every path == the definition; sums that cancel and subnormal inputs included */
static void test_linear_bf16x(void) {
    enum { N = 32 * 37 };
    uint16_t a[N], b[N];
    char err[256];
    for (int rep = 0; rep < 4; rep++) {
        for (int i = 0; i < N; i++) {
            float va = rnd_bf16(1.0f) * ldexpf(1.0f, (int)(rnd_u32() % 40) - 20);
            float vb = rnd_bf16(1.0f);
            if (rep == 3 && i % 97 == 0) va = 0x1p-130f;   /* subnormal: read as 0 (DAZ) */
            a[i] = dsv4_f32_to_bf16(va); b[i] = dsv4_f32_to_bf16(vb);
        }
        float xa[N];
        for (int i = 0; i < N; i++) xa[i] = dsv4_bf16_to_f32(b[i]);
        dsv4_wview wv = {DSV4_W_BF16, 1, N, a, NULL};
        float want = pair_lane_ref(&wv, 0, xa);
        for (int p = 0; p < NPATHS; p++) {
            if (dsv4_set_kernel_path(PATHS[p], err, sizeof err) != 0) continue;
            const uint16_t *rows[2] = {b, b};
            float got[2], got2;
            dsv4_linear_bf16x(got, &wv, NULL, 0, rows, 2, 0);
            dsv4_linear_bf16x(&got2, &wv, b, N, NULL, 1, 0);
            CHECK(f2u(got[0]) == f2u(want) && f2u(got[1]) == f2u(want) && f2u(got2) == f2u(want),
                  "linear_bf16x %s rep %d: %.9g / %.9g / %.9g != definition %.9g", PATHS[p], rep, got[0], got[1], got2,
                  want);
        }
    }
    dsv4_set_kernel_path(getenv("DSV4_KERNEL") ? getenv("DSV4_KERNEL") : "scalar", NULL, 0);
}

/* degenerate magnitudes: products below FLT_MIN (fused, one rounding), subnormal activations and E8M0 scale
 * code 0 (2^-127, read as 0) give the same bits on every path */
static void test_tiny_values(void) {
    enum { R = 24, C = 256, T = 3 };
    char err[256];
    static float x[T * C], o[T * R], want[T * R];
    float *scratch = malloc(dsv4_linear_scratch_floats(T, C) * 4);
    for (int f = 0; f < 4; f++) {
        dsv4_wfmt fmt = f == 0 ? DSV4_W_BF16 : f == 1 ? DSV4_W_FP8 : f == 2 ? DSV4_W_FP4 : DSV4_W_FP8_32;
        owned_w ow = make_weight(fmt, R, C);
        if (fmt == DSV4_W_BF16)
            for (int i = 0; i < R * C; i++)
                ((uint16_t *)ow.data)[i] = dsv4_f32_to_bf16(rnd_unif() * ldexpf(1.0f, -60 - (int)(rnd_u32() % 8)));
        else {
            size_t ns = fmt == DSV4_W_FP8 ? (size_t)((R + 127) / 128) * ((C + 127) / 128)
                      : fmt == DSV4_W_FP8_32 ? (size_t)((R + 31) / 32) * (C / 32) : (size_t)R * (C / 32);
            for (size_t i = 0; i < ns; i++) ow.scale[i] = (uint8_t)(i % 3 == 0 ? 0 : rnd_u32() % 4);   /* 2^-127..2^-124 */
        }
        for (int i = 0; i < T * C; i++)
            x[i] = dsv4_round_bf16(rnd_unif() * ldexpf(1.0f, fmt == DSV4_W_BF16 ? -64 - (int)(rnd_u32() % 6) : 1));
        x[5] = 0x1p-130f;   /* subnormal activation: read as 0 */
        for (int t = 0; t < T; t++)
            for (int r = 0; r < R; r++) want[t * R + r] = pair_lane_ref(&ow.w, r, x + (size_t)t * C);
        for (int p = 0; p < NPATHS; p++) {
            if (dsv4_set_kernel_path(PATHS[p], err, sizeof err) != 0) continue;
            for (int nt = 1; nt <= T; nt += 2) {   /* 1 token (decode path) and 3 (tile path) */
                dsv4_linear(o, &ow.w, x, nt, 0, scratch);
                int bad = 0;
                for (int i = 0; i < nt * R; i++) bad += f2u(o[i]) != f2u(want[i]);
                CHECK(bad == 0, "tiny values, format %d, path %s, %d tokens: %d outputs differ from the definition", f,
                      PATHS[p], nt, bad);
            }
        }
        free(ow.data); free(ow.scale);
    }
    /* exact sums just below FLT_MIN that round up to FLT_MIN: kept, since the definition flushes AFTER rounding
     * (AArch64 FPCR.FZ decides before rounding; the neon path must notice and recompute). Row r has lane r%16:
     * 2^-63 * 2^-63 = 2^-126, then + w*x = -2^-152 (or the tie -2^-150): rounds to 2^-126; rows 16.. add 0. */
    {
        enum { R2 = 24, C2 = 64 };
        owned_w ow = make_weight(DSV4_W_BF16, R2, C2);
        uint16_t *wd = ow.data;
        memset(wd, 0, (size_t)R2 * C2 * 2);
        for (int i = 0; i < 3 * C2; i++) x[i] = i % 2 ? 0x1p-63f : (i / C2 == 1 ? -0x1p-75f : -0x1p-76f);
        for (int r = 0; r < 16; r++) {
            wd[r * C2 + 2 * r + 1] = dsv4_f32_to_bf16(0x1p-63f);
            wd[r * C2 + 2 * r] = dsv4_f32_to_bf16(0x1p-76f);
        }
        for (int t = 0; t < T; t++)
            for (int r = 0; r < R2; r++) want[t * R2 + r] = pair_lane_ref(&ow.w, r, x + (size_t)t * C2);
        CHECK(want[0] == 0x1p-126f && want[R2] == 0x1p-126f && want[16] == 0.0f,
              "test's definition: 2^-126 - 2^-152 gives %a, the tie %a (want 2^-126)", want[0], want[R2]);
        for (int p = 0; p < NPATHS; p++) {
            if (dsv4_set_kernel_path(PATHS[p], err, sizeof err) != 0) continue;
            for (int nt = 1; nt <= T; nt += 2) {
                dsv4_linear(o, &ow.w, x, nt, 0, scratch);
                int bad = 0;
                for (int i = 0; i < nt * R2; i++) bad += f2u(o[i]) != f2u(want[i]);
                CHECK(bad == 0, "sums rounding up to FLT_MIN, path %s, %d tokens: %d outputs differ (row 0: %a)",
                      PATHS[p], nt, bad, o[0]);
            }
        }
        free(ow.data); free(ow.scale);
    }
    free(scratch);
    dsv4_set_kernel_path(getenv("DSV4_KERNEL") ? getenv("DSV4_KERNEL") : "scalar", NULL, 0);
}

/* FP8 weights with NaN codes (0x7f, 0xff) in some rows, and activations near the bottom of the F32 range: every path
 * and call width (1-2 tokens: the decode kernels; 3: the tile path) gives the definition's values, NaN where the
 * definition has NaN. The avx2 path decodes by F16C to w * 2^-8 and must fall back to its integer decoder for a
 * row with a NaN code (its row pair left alone) and when the activations are too small for the 2^-8. */
static void test_fp8_nan_tiny(void) {
    enum { R = 24, C = 256, T = 3 };
    char err[256];
    static float x[T * C], o[T * R], want[T * R];
    float *scratch = malloc(dsv4_linear_scratch_floats(T, C) * 4);
    for (int f = 0; f < 2; f++) {   /* V4's FP8 (128x128 scales), V4.1's FP8_32 (32x32) */
    const dsv4_wfmt fmt = f ? DSV4_W_FP8_32 : DSV4_W_FP8;
    owned_w ow = make_weight(fmt, R, C);
    uint8_t *wd = ow.data;
    wd[3 * C + 70] = 0x7f; wd[10 * C + 5] = 0xff; wd[10 * C + 200] = 0x7f; wd[17 * C + C - 1] = 0xff;
    for (int pass = 0; pass < 3; pass++) {   /* plain activations, tiny ones (2^-104..2^-110), small ones with the
                                              * block scale codes 0 and 247 (outside avx2's F16C route: s = 0 by the
                                              * flush, s * 2^8 = 2^128) */
        if (pass == 2) { ow.scale[0] = 247; ow.scale[1] = 0; }
        for (int i = 0; i < T * C; i++)
            x[i] = dsv4_round_bf16(rnd_unif() * ldexpf(1.0f, pass == 1 ? -104 - (int)(rnd_u32() % 7) : pass == 2 ? -20 : 1));
        for (int t = 0; t < T; t++)   /* (e4m3_def reads the NaN codes as +-480: the rows holding one are NaN) */
            for (int r = 0; r < R; r++)
                want[t * R + r] = r == 3 || r == 10 || r == 17 ? NAN : pair_lane_ref(&ow.w, r, x + (size_t)t * C);
        for (int p = 0; p < NPATHS; p++) {
            if (dsv4_set_kernel_path(PATHS[p], err, sizeof err) != 0) continue;
            for (int nt = 1; nt <= T; nt++) {
                dsv4_linear(o, &ow.w, x, nt, 0, scratch);
                int bad = 0;
                for (int i = 0; i < nt * R; i++)
                    bad += isnan(want[i]) ? !isnan(o[i]) : f2u(o[i]) != f2u(want[i]);
                CHECK(bad == 0, "%s with NaN codes, %s, path %s, %d tokens: %d outputs differ", f ? "FP8_32" : "FP8",
                      pass == 0 ? "plain activations" : pass == 1 ? "tiny activations" : "scale codes 247 and 0",
                      PATHS[p], nt, bad);
            }
        }
    }
    free(ow.data); free(ow.scale);
    }
    free(scratch);
    dsv4_set_kernel_path(getenv("DSV4_KERNEL") ? getenv("DSV4_KERNEL") : "scalar", NULL, 0);
}

/* thread counts and kernel names: errors, never a crash */
static void test_threads_api(void) {
    char err[256];
    CHECK(dsv4_set_threads(-1, err, sizeof err) != 0 && strstr(err, "0..1024"), "threads -1 accepted (%s)", err);
    CHECK(dsv4_set_threads(1025, err, sizeof err) != 0, "threads 1025 accepted");
    CHECK(dsv4_set_threads(0, err, sizeof err) == 0 && dsv4_get_threads() == dsv4_default_threads(),
          "threads 0 is not the default (%d vs %d)", dsv4_get_threads(), dsv4_default_threads());
    CHECK(dsv4_set_kernel_path("neon9", err, sizeof err) != 0 && strstr(err, "neon9"), "unknown path accepted");
    CHECK(dsv4_set_kernel_path("scalar", err, sizeof err) == 0 && !strcmp(dsv4_get_kernel_path(), "scalar"),
          "scalar path refused");
    /* A path this CPU has must pass its start-up self-check: a failing one is refused, and the per-path loops
     * here and in run.sh would then skip it instead of failing (a broken SIMD kernel would go unnoticed). */
    for (int p = 0; p < NPATHS; p++) {
        int rc = dsv4_set_kernel_path(PATHS[p], err, sizeof err);
        CHECK(rc == 0 || !strstr(err, "self-check"), "path %s: %s", PATHS[p], err);
    }
    /* ... and a path this build and CPU should have must exist (a build that lost it would skip it everywhere) */
#if defined(__aarch64__)
    CHECK(dsv4_set_kernel_path("neon", err, sizeof err) == 0, "the neon path is missing on aarch64: %s", err);
#endif
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        CHECK(dsv4_set_kernel_path("avx2", err, sizeof err) == 0, "the CPU has AVX2 + FMA but the avx2 path is refused: %s", err);
#endif
    dsv4_set_kernel_path(getenv("DSV4_KERNEL") ? getenv("DSV4_KERNEL") : "scalar", NULL, 0);
}

/* the storage forms: encode == the simulation bit for bit, and decoding gives the simulated values back, on
 * every path (random values over a wide range, all-zero blocks, blocks with one huge value) */
static void test_storage_forms(void) {
    enum { N = 448 + 64 };
    char err[256];
    for (int rep = 0; rep < 50; rep++) {
        float x[N], a[N], b[N], c[N];
        for (int i = 0; i < N; i++) x[i] = rnd_bf16(1.0f) * ldexpf(1.0f, (int)(rnd_u32() % 30) - 15);
        if (rep % 5 == 1) for (int i = 64; i < 128; i++) x[i] = 0.0f;
        if (rep % 5 == 2) x[7] = 3e4f;
        uint8_t codes[N], sc[N / 32 + 1];
        uint16_t dec[N];
        memcpy(a, x, sizeof a); memcpy(b, x, sizeof b); memcpy(c, x, sizeof c);
        dsv4_fp8_sim(a, 448, 64);
        dsv4_fp8_encode(b, 448, 64, codes, sc);
        int bad = 0;
        for (int i = 0; i < 448; i++) bad += f2u(a[i]) != f2u(b[i]);
        CHECK(bad == 0, "fp8_encode rep %d: %d values differ from fp8_sim", rep, bad);
        for (int p = 0; p < NPATHS; p++) {
            if (dsv4_set_kernel_path(PATHS[p], err, sizeof err) != 0) continue;
            dsv4_fp8_decode_bf16(codes, sc, 448, 64, dec);
            bad = 0;
            for (int i = 0; i < 448; i++) bad += dsv4_bf16_to_f32(dec[i]) != a[i] || (dec[i] >> 15) != (f2u(a[i]) >> 31);
            CHECK(bad == 0, "fp8 decode (%s) rep %d: %d values differ", PATHS[p], rep, bad);
        }
        memcpy(a, c, sizeof a);
        dsv4_fp4_sim(a, N, 32);
        dsv4_fp4_encode(c, N, 32, codes, sc);
        bad = 0;
        for (int i = 0; i < N; i++) bad += f2u(a[i]) != f2u(c[i]);
        CHECK(bad == 0, "fp4_encode rep %d: %d values differ from fp4_sim", rep, bad);
        for (int p = 0; p < NPATHS; p++) {
            if (dsv4_set_kernel_path(PATHS[p], err, sizeof err) != 0) continue;
            dsv4_fp4_decode_bf16(codes, sc, N, 32, dec);
            bad = 0;
            for (int i = 0; i < N; i++) bad += f2u(dsv4_bf16_to_f32(dec[i])) != f2u(a[i]);
            CHECK(bad == 0, "fp4 decode (%s) rep %d: %d values differ", PATHS[p], rep, bad);
        }
    }
    dsv4_set_kernel_path(getenv("DSV4_KERNEL") ? getenv("DSV4_KERNEL") : "scalar", NULL, 0);
}

/* ------------------------------------------------------------------ elementwise ops (kernels/ops_simd.h)
 * Every path's FP8 activation simulation, BF16 packing and mHC collapse / post mixing equal the scalar
 * definitions bit for bit: random values over a wide range, E4M3 rounding ties (exact midpoints of adjacent codes
 * after scaling, normal and subnormal), the 2^-6 boundary, F32 subnormals, ±0, huge values, ±inf, NaN, all-tiny
 * blocks, ragged lengths and blocks, in place and out of place. */
static float special_value(void) {
    static const float sp[] = {0.0f, -0.0f, 0x1p-149f, -0x1p-140f, 0x1.fffffep-127f, 0x1p-126f, 3e38f, -3.4e38f,
                               INFINITY, -INFINITY, NAN, -NAN, 448.0f, -464.0f, 0x1p-6f, 0x1.fffffep-7f, 1e-4f, 65504.0f};
    return sp[rnd_u32() % (sizeof sp / sizeof sp[0])];
}
/* one activation value: kind 0 random BF16 at a random scale, 1 an E4M3 tie at scale 2^e (block max 448·2^e
 * planted by the caller), 2 any F32 bit pattern, 3 a special value */
static float elem_value(int kind, int e) {
    switch (kind) {
    case 0: return rnd_bf16(1.0f) * ldexpf(1.0f, (int)(rnd_u32() % 60) - 40);
    case 1: {
        int c = (int)(rnd_u32() % 126);                       /* codes c, c+1 of the positive range */
        float mid = (dsv4_e4m3_lut[c] + dsv4_e4m3_lut[c + 1]) * 0.5f;
        return ldexpf(rnd_u32() & 1 ? -mid : mid, e);
    }
    case 2: return u2f(rnd_u32() << 1 ^ rnd_u32());
    default: return special_value();
    }
}
/* values whose bits differ, a NaN matching any NaN: where two NaNs meet in an operation IEEE 754 leaves open which
 * one's sign and payload the result keeps (x86 takes the first operand, and a C compiler may swap the operands
 * of a commutative * or +), so only NaN-ness is defined there */
static int same_bits(const float *a, const float *b, int n) {
    int bad = 0;
    for (int i = 0; i < n; i++) bad += f2u(a[i]) != f2u(b[i]) && !(a[i] != a[i] && b[i] != b[i]);
    return bad;
}

static void test_elem_ops(void) {
    enum { N = 4096 + 77, HC = 16, D = 300 };
    static float x[N], a[N], b[N];
    static uint16_t da[N + 128], db[N + 128];   /* np <= (N rounded up to 32) + 64 */
    static float X0[HC * D], Xa[HC * D], Xb[HC * D], y[D], ua[D], ub[D];
    const dsv4_elem_ops *ref = dsv4_elem_for(0);
    char err[256];
    int tested = 0;
    for (int p = 1; p < NPATHS; p++) {
        if (dsv4_set_kernel_path(PATHS[p], err, sizeof err) != 0) continue;
        const dsv4_elem_ops *o = dsv4_elem();
        CHECK(o == dsv4_elem_for(p), "dsv4_elem() on path %s is not that path's ops", PATHS[p]);
        tested++;
        int bad_sim = 0, bad_ip = 0, bad_pack = 0, bad_col = 0, bad_post = 0;
        for (int rep = 0; rep < 400; rep++) {
            int n = rep < 40 ? rep + 1 : rep % 4 == 0 ? N : 1 + (int)(rnd_u32() % 700);
            int blocks[] = {128, 64, 37, 1};
            int block = blocks[rep % 4];
            int mix = rep % 6;   /* 0-1: random BF16; 2: ties; 3: any bits; 4: specials sprinkled; 5: all tiny */
            for (int i = 0; i < n; i++) {
                int kind = mix == 2 ? (i % block == 0 ? -1 : 1) : mix == 3 ? 2 : mix == 4 && rnd_u32() % 8 == 0 ? 3 : 0;
                int e = (int)((rnd_u32() % 40)) - 20;
                if (mix == 2) e = (i / block) % 40 - 20;
                x[i] = kind < 0 ? ldexpf(448.0f, e) : elem_value(kind, e);
                if (mix == 5) x[i] = ldexpf(rnd_bf16(1.0f), -20 - (int)(rnd_u32() % 110));
            }
            ref->fp8_sim(a, x, n, block);
            o->fp8_sim(b, x, n, block);
            bad_sim += same_bits(a, b, n);
            memcpy(b, x, (size_t)n * sizeof(float));
            o->fp8_sim(b, b, n, block);
            bad_ip += same_bits(a, b, n);
            /* packing: the raw values and the simulated ones, with and without the FP8 column order */
            const float *src = rep & 1 ? a : x;
            int nperm = rep & 2 ? n & ~63 : 0, np = ((n + 31) & ~31) + (rep % 3) * 32;
            memset(da, 0xa5, sizeof da); memset(db, 0xa5, sizeof db);
            ref->pack_bf16(da, src, n, nperm, np);
            o->pack_bf16(db, src, n, nperm, np);
            bad_pack += memcmp(da, db, sizeof da) != 0;
        }
        static const int hcs[] = {1, 2, 4, 16}, Ds[] = {1, 7, 8, 15, 16, 17, 33, 300};
        for (int rep = 0; rep < 64; rep++) {
            int hc = hcs[rep % 4], d = Ds[(rep / 4) % 8];
            int kind = rep < 32 ? 0 : rep < 48 ? 2 : 3;
            float pre[HC], post[HC], M[HC * HC];
            for (int i = 0; i < hc * d; i++) X0[i] = rep % 2 ? elem_value(0, 0) : elem_value(kind, 0);
            for (int i = 0; i < d; i++) y[i] = elem_value(rep % 3 ? 0 : kind, 0);
            for (int i = 0; i < hc; i++) { pre[i] = rnd_unif() + 1.0f; post[i] = 2.0f * rnd_unif(); }
            for (int i = 0; i < hc * hc; i++) M[i] = rnd_unif() * 0.5f + 0.5f;
            if (rep % 8 == 7) { pre[0] = NAN; M[1 % (hc * hc)] = INFINITY; }
            ref->hc_collapse(ua, X0, pre, hc, d);
            o->hc_collapse(ub, X0, pre, hc, d);
            bad_col += same_bits(ua, ub, d);
            memcpy(Xa, X0, (size_t)hc * d * sizeof(float)); memcpy(Xb, X0, (size_t)hc * d * sizeof(float));
            ref->hc_post(Xa, y, post, M, hc, d);
            o->hc_post(Xb, y, post, M, hc, d);
            bad_post += same_bits(Xa, Xb, hc * d);
        }
        /* head RMS: random heads (the order-free fast path), wide exponent spans around the bound (a mix of
         * large squares and one small one whose last bit a sum in another order could lose), specials, zeros */
        int bad_rms = 0;
        for (int rep = 0; rep < 6000; rep++) {
            static const int ns[] = {512, 128, 64, 37, 1, 300};
            int n = ns[rep % 6], mode = (rep / 6) % 5;
            for (int i = 0; i < n; i++) {
                x[i] = rnd_bf16(1.0f) * ldexpf(1.0f, (int)(rnd_u32() % 12) - 6);
                if (mode == 1) x[i] = ldexpf(rnd_bf16(1.0f), (int)(rnd_u32() % 70) - 60);
                if (mode == 2 && rnd_u32() % 16 == 0) x[i] = special_value();
                if (mode == 3) x[i] = rnd_u32() % 4 ? 0.0f : ldexpf(rnd_bf16(1.0f), -70 - (int)(rnd_u32() % 10));
                if (mode == 4) x[i] = u2f(0x3f800000u | (rnd_u32() & 0x807f0000u));   /* [1, 2): squares in [1, 4) */
            }
            if (mode == 4)   /* a few squares 2^-(30..50) smaller: spans on both sides of the exact-span bound */
                for (int k = 0; k < 4; k++) x[rnd_u32() % n] = ldexpf(x[0], -15 - (int)(rnd_u32() % 11));
            memcpy(a, x, (size_t)n * sizeof(float)); memcpy(b, x, (size_t)n * sizeof(float));
            ref->head_rms_bf16(a, n, 1e-6f);
            o->head_rms_bf16(b, n, 1e-6f);
            bad_rms += same_bits(a, b, n);
        }
        CHECK(bad_rms == 0, "head_rms_bf16 path %s: %d values differ from the scalar definition", PATHS[p], bad_rms);
        /* a head whose result depends on the order of the sum (so a path must not take it for order-free; its
         * span, 46, is past the bound): 506 squares 1, two 4, two 2^-16 and two 2^-44 (indices 15 and 511: one
         * SIMD lane). Exactly 514 + 2^-15 + 2^-43; in index order each 2^-44 is a tie rounded away (the sum is
         * past 512 when the last arrives), so the mean 514/512 + 2^-24 is an F32 tie (rounded down to even), then a
         * BF16 tie (down to 1.0); with the 2^-43 kept the mean rounds up twice (to 1.0078125). */
        for (int i = 0; i < 512; i++) x[i] = 1.0f;
        x[1] = x[2] = 0x1p-8f; x[3] = x[4] = 2.0f; x[15] = x[511] = 0x1p-22f;
        memcpy(a, x, 512 * sizeof(float)); memcpy(b, x, 512 * sizeof(float));
        ref->head_rms_bf16(a, 512, 0.0f);
        o->head_rms_bf16(b, 512, 0.0f);
        CHECK(same_bits(a, b, 512) == 0, "head_rms_bf16 path %s: an order-dependent head differs (%a vs %a)", PATHS[p],
              a[0], b[0]);
        CHECK(bad_sim == 0, "fp8_sim path %s: %d values differ from the scalar definition", PATHS[p], bad_sim);
        CHECK(bad_ip == 0, "fp8_sim in place, path %s: %d values differ", PATHS[p], bad_ip);
        CHECK(bad_pack == 0, "pack_bf16 path %s: %d rows differ from the scalar definition", PATHS[p], bad_pack);
        CHECK(bad_col == 0, "hc_collapse path %s: %d values differ", PATHS[p], bad_col);
        CHECK(bad_post == 0, "hc_post path %s: %d values differ", PATHS[p], bad_post);
    }
    printf("elementwise ops: %d SIMD path(s) compared with the scalar definitions\n", tested);
    /* the scalar definitions themselves: the packing equals the per-element conversion in the FP8 order */
    for (int i = 0; i < 128; i++) x[i] = elem_value(i % 4, 0);
    ref->pack_bf16(da, x, 100, 64, 128);
    int bad = 0;
    for (int c = 0; c < 128; c++) {
        uint16_t want = c >= 100 ? 0 : dsv4_f32_to_bf16(ftz(x[c < 64 ? 16 * ((c % 32) / 8) + c % 8 + 8 * (c / 32) : c]));
        bad += da[c] != want;
    }
    CHECK(bad == 0, "pack_bf16 (scalar): %d columns differ from the FP8 64-column order", bad);
    dsv4_set_kernel_path(getenv("DSV4_KERNEL") ? getenv("DSV4_KERNEL") : "scalar", NULL, 0);
}

/* The multi-token path's blocking (AVX-512: 4 rows x 3-6 tokens per micro-kernel, 8-row tiles of 1024 columns,
 * 64 tokens per pass; scales folded into the decoded tile where that is exact): token counts that are not a
 * multiple of any block (3-7, 65, 70: two passes), rows % 8 = 5 (a 4-row sub-block of one row), columns not a
 * multiple of 128 past one 1024-column tile, one extreme scale per weight (its tile takes the unfolded kernels,
 * the others the folded ones), all == the definition on every path and 1-2 threads. */
static void test_gemm_blocking(void) {
    static const int toks[] = {3, 4, 5, 7, 65, 70};
    enum { NTOKS = sizeof toks / sizeof toks[0], TMAX = 70 };
    char err[256];
    for (int f = 0; f < 5; f++) {
        dsv4_wfmt fmt = f == 0 ? DSV4_W_BF16 : f == 1 ? DSV4_W_FP8 : f == 2 ? DSV4_W_FP4 : DSV4_W_FP8_32;
        int rows = 205, cols = fmt == DSV4_W_FP4 || f == 4 ? 1088 : 1100;
        owned_w ow = make_weight(fmt, rows, cols);
        if (fmt == DSV4_W_FP8) ow.scale[0] = 3;                       /* 2^-124: block (0,0) unfoldable */
        if (fmt == DSV4_W_FP4) ow.scale[(size_t)9 * (cols / 32)] = 2;  /* row 9, group 0 */
        if (fmt == DSV4_W_FP8_32) ow.scale[(size_t)5 * ((cols + 31) / 32) + 33] = 3;   /* tile (5, 33) */
        float *x = malloc((size_t)TMAX * cols * 4), *o = malloc((size_t)TMAX * rows * 4);
        float *want = malloc((size_t)TMAX * rows * 4), *scratch = malloc(dsv4_linear_scratch_floats(TMAX, cols) * 4);
        for (int i = 0; i < TMAX * cols; i++) x[i] = rnd_bf16(2.0f);
        for (int t = 0; t < TMAX; t++)
            for (int r = 0; r < rows; r++) want[(size_t)t * rows + r] = pair_lane_ref(&ow.w, r, x + (size_t)t * cols);
        for (int p = 0; p < NPATHS; p++) {
            if (dsv4_set_kernel_path(PATHS[p], err, sizeof err) != 0) continue;
            for (int th = 1; th <= 2; th++) {
                dsv4_set_threads(th, NULL, 0);
                for (int k = 0; k < NTOKS; k++) {
                    int nt = toks[k], t0 = TMAX - nt;   /* the last nt tokens */
                    memset(o, 0xff, (size_t)nt * rows * 4);   /* NaN: every output must be written */
                    dsv4_linear(o, &ow.w, x + (size_t)t0 * cols, nt, 0, scratch);
                    int bad = 0;
                    for (int i = 0; i < nt * rows; i++) bad += f2u(o[i]) != f2u(want[(size_t)t0 * rows + i]);
                    CHECK(bad == 0, "gemm blocking: format %d %dx%d, path %s, %d threads, %d tokens: %d of %d outputs "
                          "differ from the definition", f, rows, cols, PATHS[p], th, nt, bad, nt * rows);
                }
            }
        }
        free(x); free(o); free(want); free(scratch); free(ow.data); free(ow.scale);
    }
    dsv4_set_kernel_path(getenv("DSV4_KERNEL") ? getenv("DSV4_KERNEL") : "scalar", NULL, 0);
    dsv4_set_threads(2, NULL, 0);
}

/* Folding an FP8/FP4 scale 2^k into the decoded weights (AVX-512 multi-token path) is exact only while no value
 * is subnormal or overflows; planted sums where it is not, so the path must notice and keep the definition's
 * fma(s, P, L):
 *   underflow: group 0 gives a lane L = 2^-126 (x = 2^-126 times w = 1, scale 1), group 1 adds to that lane
 *     s*P = 2^-10 * 2^-120 = 2^-130: the definition keeps it (L + s*P = 1.0625 * 2^-126), folded products 2^-130
 *     would be flushed;
 *   overflow: x = 2^120 times w = +6 and -6 with scale 2^10: the definition's P = 0, folded products overflow to
 *     +-Inf and give NaN;
 *   scaled weight below FLT_MIN: w = the smallest code (E4M3 2^-9, E2M1 0.5) with scale 2^-118 (FP4: 2^-126) and
 *     x = 256, where the activations alone would allow folding: s*w = 2^-127 is not a normal BF16.
 * 3 tokens (the multi-token path), 1 token (decode path), every path; FP4, FP8 and FP8_32 (V4.1's tiles). */
static void test_gemm_fold_guard(void) {
    enum { R = 16, T = 3 };
    char err[256];
    for (int f = 0; f < 3; f++) {
        dsv4_wfmt fmt = f == 0 ? DSV4_W_FP4 : f == 1 ? DSV4_W_FP8 : DSV4_W_FP8_32;
        for (int kind = 0; kind < 3; kind++) {
            int cols = fmt == DSV4_W_FP8 ? 256 : 64, grp = fmt == DSV4_W_FP8 ? 128 : 32;
            owned_w ow = make_weight(fmt, R, cols);
            float x[T * 256], o[T * R], want[T * R];
            float *scratch = malloc(dsv4_linear_scratch_floats(T, cols) * 4);
            int ns = fmt == DSV4_W_FP4 ? R * (cols / 32) : cols / grp;   /* R = 16: one FP8 / FP8_32 tile row */
            for (int i = 0; i < ns; i++) {
                int g = fmt == DSV4_W_FP4 ? i % (cols / 32) : i;
                ow.scale[i] = (uint8_t)(kind == 0 ? (g == 0 ? 127 : 117) : kind == 1 ? 137 : fmt == DSV4_W_FP4 ? 1 : 9);
            }
            /* weights: 1.0 (E2M1 code 2 / E4M3 0x38) everywhere; overflow case: +6 / -6 in each pair */
            for (int r = 0; r < R; r++)
                for (int c = 0; c < cols; c++) {
                    int neg = kind == 1 && (c & 1);
                    if (fmt == DSV4_W_FP4) {
                        uint8_t code = (uint8_t)(kind == 0 ? 2 : kind == 2 ? 1 : neg ? 15 : 7);
                        uint8_t *b = (uint8_t *)ow.data + (size_t)r * (cols / 2) + c / 2;
                        *b = (uint8_t)(c & 1 ? (*b & 0x0f) | (code << 4) : (*b & 0xf0) | code);
                    } else {
                        ((uint8_t *)ow.data)[(size_t)r * cols + c] =
                            (uint8_t)(kind == 0 ? 0x38 : kind == 2 ? 0x01 : neg ? 0xcc : 0x4c);
                    }
                }
            for (int t = 0; t < T; t++)
                for (int c = 0; c < cols; c++) {
                    float v = 0;
                    if (kind == 0) v = c == 5 + t ? 0x1p-126f : c == grp + 5 + t ? 0x1p-120f : 0.0f;   /* the same lane */
                    else if (kind == 1) v = 0x1p120f * (float)(1 + (c % 3 == 0));
                    else v = 256.0f;
                    x[t * cols + c] = v;
                }
            if (kind == 1)   /* the pairs must cancel: equal x in each (even, odd) pair; the FP8 order keeps pairs */
                for (int t = 0; t < T; t++)
                    for (int c = 0; c < cols; c += 2) x[t * cols + c + 1] = x[t * cols + c];
            for (int t = 0; t < T; t++)
                for (int r = 0; r < R; r++) want[t * R + r] = pair_lane_ref(&ow.w, r, x + (size_t)t * cols);
            if (kind == 0) CHECK(want[0] > 0x1p-126f, "fold guard: the planted sum is %a, not above 2^-126 (test error)", want[0]);
            else if (kind == 1) CHECK(want[0] == 0.0f, "fold guard: the overflow case should cancel to 0, got %g (test error)", want[0]);
            else CHECK(want[0] >= 0x1p-126f, "fold guard: the small-weight case gives %a (test error)", want[0]);
            for (int p = 0; p < NPATHS; p++) {
                if (dsv4_set_kernel_path(PATHS[p], err, sizeof err) != 0) continue;
                for (int nt = 1; nt <= T; nt += 2) {
                    dsv4_linear(o, &ow.w, x, nt, 0, scratch);
                    int bad = 0;
                    for (int i = 0; i < nt * R; i++) bad += f2u(o[i]) != f2u(want[i]);
                    CHECK(bad == 0, "fold guard (%s, %s), path %s, %d tokens: %d outputs differ (row 0: %a, want %a)",
                          fmt == DSV4_W_FP4 ? "fp4" : fmt == DSV4_W_FP8 ? "fp8" : "fp8_32", kind == 0 ? "underflow" : kind == 1 ? "overflow" : "small weight", PATHS[p], nt, bad,
                          o[0], want[0]);
                }
                /* the same call through dsv4_linear_multi beside a BF16 op on the same input (one prepared copy and
                 * one exponent range for both, dsv4_lin_job.has_xr): BF16 first (no range computed for it, so the
                 * planted op must compute its own) and the planted op first (its range copied); FP8 packs its input
                 * in its own order and shares with no BF16 op */
                if (fmt != DSV4_W_FP8) {
                    owned_w bw = make_weight(DSV4_W_BF16, R, cols);
                    float ob[T * R];
                    for (int order = 0; order < 2; order++) {
                        dsv4_linear_op ops[2] = {{ob, &bw.w, x, T, 0}, {o, &ow.w, x, T, 0}};
                        if (order) { dsv4_linear_op tmp = ops[0]; ops[0] = ops[1]; ops[1] = tmp; }
                        float *ms = malloc(dsv4_linear_multi_scratch_floats(ops, 2) * 4);
                        dsv4_linear_multi(ops, 2, ms);
                        free(ms);
                        int bad = 0;
                        for (int i = 0; i < T * R; i++) bad += f2u(o[i]) != f2u(want[i]);
                        CHECK(bad == 0, "fold guard (%s, %s) in dsv4_linear_multi after a BF16 op sharing its input "
                              "(%s first), path %s: %d outputs differ (row 0: %a, want %a)",
                              fmt == DSV4_W_FP4 ? "fp4" : "fp8_32", kind == 0 ? "underflow" : kind == 1 ? "overflow" : "small weight",
                              order ? "planted" : "BF16", PATHS[p], bad, o[0], want[0]);
                    }
                    free(bw.data); free(bw.scale);
                }
            }
            free(scratch); free(ow.data); free(ow.scale);
        }
    }
    dsv4_set_kernel_path(getenv("DSV4_KERNEL") ? getenv("DSV4_KERNEL") : "scalar", NULL, 0);
}

/* dsv4_linear_multi: ops of every format, some sharing an input (same pointer: one prepared copy), one with a
 * different token count on the same pointer and one empty, each output bit-identical to its own dsv4_linear
 * call, on every path and 1-3 threads. */
static void test_linear_multi(void) {
    enum { NOPS = 12, COLS = 1088, T = 3 };
    static const dsv4_wfmt fm[NOPS] = {DSV4_W_FP4, DSV4_W_FP4, DSV4_W_FP8, DSV4_W_BF16, DSV4_W_F32, DSV4_W_FP4,
                                       DSV4_W_FP8, DSV4_W_BF16, DSV4_W_FP4, DSV4_W_BF16, DSV4_W_FP8_32, DSV4_W_FP8_32};
    static const int rows[NOPS] = {200, 136, 130, 72, 24, 64, 256, 8, 40, 16, 96, 40};
    static const int xi[NOPS] = {0, 0, 0, 1, 0, 2, 1, 0, 0, 0, 0, 0};    /* which input: 3 distinct row sets */
    static const int nt[NOPS] = {1, 1, 1, 1, 1, 3, 1, 2, 1, 0, 1, 1};    /* op 7: 2 tokens of input 0; op 9 empty */
    /* ops 10, 11: FP8_32 with V4.1's 32-block quantization of input 0 (a copy of its own; 11 shares 10's) */
    static const int fl[NOPS] = {DSV4_ACT_FP8 | DSV4_OUT_BF16, DSV4_ACT_FP8 | DSV4_OUT_BF16, DSV4_ACT_FP8, 0, 0,
                                 DSV4_OUT_BF16, DSV4_ACT_FP8 | DSV4_OUT_BF16, DSV4_ACT_FP8, 0, 0,
                                 DSV4_ACT_FP8_32 | DSV4_OUT_BF16, DSV4_ACT_FP8_32};
    owned_w w[NOPS];
    float *x[3], *out[NOPS], *want[NOPS];
    dsv4_linear_op op[NOPS];
    for (int i = 0; i < 3; i++) {
        x[i] = malloc(sizeof(float) * T * COLS);
        for (int k = 0; k < T * COLS; k++) x[i][k] = rnd_bf16(3.0f);
    }
    for (int i = 0; i < NOPS; i++) {
        w[i] = make_weight(fm[i], rows[i], COLS);
        out[i] = malloc(sizeof(float) * T * rows[i]);
        want[i] = malloc(sizeof(float) * T * rows[i]);
        op[i] = (dsv4_linear_op){out[i], &w[i].w, x[xi[i]], nt[i], fl[i]};
    }
    /* distinct prepared inputs: ops 0 (1 shares it), 2, 3, 4, 5, 6, 7, 8 (op 0's input, layout and tokens without
     * the FP8 quantization) */
    size_t ns = dsv4_linear_multi_scratch_floats(op, NOPS), n1 = dsv4_linear_scratch_floats(T, COLS), want_ns = 0;
    for (int i = 0; i < NOPS; i++)
        if (i != 1 && i != 9 && i != 11) want_ns += dsv4_linear_scratch_floats(nt[i], COLS) + 16;
    CHECK(ns == want_ns, "linear_multi scratch %zu floats, want %zu (9 distinct prepared inputs)", ns, want_ns);
    float *scratch = malloc(sizeof(float) * (ns > n1 ? ns : n1));
    char err[256];
    int tested = 0;
    for (int p = 0; p < NPATHS; p++) {
        if (dsv4_set_kernel_path(PATHS[p], err, sizeof err) != 0) continue;
        for (int i = 0; i < NOPS; i++) dsv4_linear(want[i], &w[i].w, x[xi[i]], nt[i], fl[i], scratch);
        for (int th = 1; th <= 3; th++) {
            dsv4_set_threads(th, NULL, 0);
            for (int i = 0; i < NOPS; i++) for (int k = 0; k < T * rows[i]; k++) out[i][k] = -7.0f;
            dsv4_linear_multi(op, NOPS, scratch);
            int bad = 0, touched = 0;
            for (int i = 0; i < NOPS; i++) {
                for (int k = 0; k < nt[i] * rows[i]; k++) bad += f2u(out[i][k]) != f2u(want[i][k]);
                for (int k = nt[i] * rows[i]; k < T * rows[i]; k++) touched += out[i][k] != -7.0f;
            }
            CHECK(bad == 0 && touched == 0, "linear_multi on %s, %d threads: %d outputs differ from dsv4_linear, %d "
                  "written past an op's tokens", PATHS[p], th, bad, touched);
            tested++;
        }
    }
    CHECK(tested >= 3, "linear_multi ran on %d path x thread cases", tested);

    /* dsv4_linear_multi_fit: the longest leading run within the scratch (shared inputs counted once), at least one
     * op; and calls of those runs over all the ops (forward.c's MoE batches) give dsv4_linear's outputs */
    CHECK(dsv4_linear_multi_fit(op, NOPS, ns) == NOPS, "multi_fit with all the scratch: %d of %d ops",
          dsv4_linear_multi_fit(op, NOPS, ns), NOPS);
    CHECK(dsv4_linear_multi_fit(op, NOPS, 0) == 1 && dsv4_linear_multi_fit(op, 0, ns) == 0,
          "multi_fit: one op with no scratch (%d), none of no ops (%d)", dsv4_linear_multi_fit(op, NOPS, 0),
          dsv4_linear_multi_fit(op, 0, ns));
    {
        const size_t s01 = dsv4_linear_multi_scratch_floats(op, 2), s02 = dsv4_linear_multi_scratch_floats(op, 3);
        CHECK(s01 == dsv4_linear_multi_scratch_floats(op, 1) && s02 > s01, "multi_scratch: op 1 shares op 0's input "
              "(%zu == %zu), op 2 adds its own (%zu)", s01, dsv4_linear_multi_scratch_floats(op, 1), s02);
        CHECK(dsv4_linear_multi_fit(op, NOPS, s02 - 1) == 2 && dsv4_linear_multi_fit(op, NOPS, s02) == 3,
              "multi_fit at op 2's boundary: %d, %d (want 2, 3)", dsv4_linear_multi_fit(op, NOPS, s02 - 1),
              dsv4_linear_multi_fit(op, NOPS, s02));
        int runs = 0, bad = 0;
        for (int i = 0; i < NOPS; i++) for (int k = 0; k < T * rows[i]; k++) out[i][k] = -7.0f;
        for (int i0 = 0; i0 < NOPS; runs++) {   /* a scratch of just over one 3-token input: several calls */
            const int k = dsv4_linear_multi_fit(op + i0, NOPS - i0, n1 + 64);
            dsv4_linear_multi(op + i0, k, scratch);
            i0 += k;
        }
        for (int i = 0; i < NOPS; i++) for (int k = 0; k < nt[i] * rows[i]; k++) bad += f2u(out[i][k]) != f2u(want[i][k]);
        CHECK(runs >= 4 && bad == 0, "linear_multi in runs of multi_fit: %d calls, %d outputs differ", runs, bad);
    }
    for (int i = 0; i < NOPS; i++) { free(w[i].data); free(w[i].scale); free(out[i]); free(want[i]); }
    for (int i = 0; i < 3; i++) free(x[i]);
    free(scratch);
    dsv4_set_kernel_path(getenv("DSV4_KERNEL") ? getenv("DSV4_KERNEL") : "scalar", NULL, 0);
    dsv4_set_threads(2, NULL, 0);
}

/* The V4.1 loader's check of a 32x32-tile FP8 weight read in place (kernels/quant_v41.h dsv4_fp8_tiles_check): NaN
 * codes anywhere (both signs, at 8-byte word edges and in the ragged tail) and the values of a tile whose scale
 * byte is 255 (ragged edge tiles counted by their real size); 0 for every finite code. */
static void test_fp8_tiles_check(void) {
    enum { R = 45, C = 77 };
    static uint8_t codes[R * C], sc[2 * 3];
    for (int i = 0; i < R * C; i++) { codes[i] = (uint8_t)i; if ((codes[i] & 0x7f) == 0x7f) codes[i] = 0x7e; }
    memset(sc, 127, sizeof sc);
    long n = dsv4_fp8_tiles_check(codes, sc, R, C, 32);
    CHECK(n == 0, "fp8 tiles check: %ld bad values in a finite weight", n);
    static const int at[] = {0, 7, 8, 15, 16, 1000, R * C - 9, R * C - 1};
    for (size_t k = 0; k < sizeof at / sizeof at[0]; k++) codes[at[k]] = k % 2 ? 0xff : 0x7f;
    n = dsv4_fp8_tiles_check(codes, sc, R, C, 32);
    CHECK(n == 8, "fp8 tiles check: %ld NaN codes counted, want 8", n);
    sc[5] = 255;   /* tile (1, 2): rows 32..44, columns 64..76: 13 x 13 values, 2 of the NaN codes among them */
    n = dsv4_fp8_tiles_check(codes, sc, R, C, 32);
    CHECK(n == 6 + 13 * 13, "fp8 tiles check: %ld, want %d (6 NaN codes + a 13x13 tile of scale 255)", n, 6 + 13 * 13);
}

static void test_linear(void) {
    test_fp8_tiles_check();
    test_linear_multi();
    test_threads_api();
    test_storage_forms();
    test_tiny_values();
    test_fp8_nan_tiny();
    test_linear_fmt(DSV4_W_F32, "f32", 203, 1100);
    test_linear_fmt(DSV4_W_F32, "f32-short", 201, 1154);   /* a last block of 2 columns (no 8-column step); 1-row calls */
    test_linear_fmt(DSV4_W_BF16, "bf16", 203, 1100);
    test_linear_fmt(DSV4_W_BF16, "bf16-aligned", 70, 1024);
    test_linear_fmt(DSV4_W_FP8, "fp8", 300, 1100);
    test_linear_fmt(DSV4_W_FP8, "fp8-aligned", 260, 1536);
    test_linear_fmt(DSV4_W_FP8, "fp8-small", 135, 72);
    /* the AVX-512 decode kernels: skewed rows for cols % 128 == 0 (one block: only the first and last steps;
     * a 4 KiB row stride), the unskewed one for cols % 128 == 64 */
    test_linear_fmt(DSV4_W_FP8, "fp8-one-block", 140, 128);
    test_linear_fmt(DSV4_W_FP8, "fp8-4k-rows", 136, 4096);
    test_linear_fmt(DSV4_W_FP8, "fp8-odd64", 140, 1088);
    /* weights off the 64-byte lines (the AVX-512 one-token kernels read two aligned lines and permute): every
     * format, a byte past, a checkpoint's 24, the last byte of a line; the skewed and unskewed FP8 kernels, FP8_32
     * with rows of a whole number of lines and not. x86 builds only: elsewhere no kernel reads by lines, and under
     * emulation (the aarch64 CI stage) these cases only add minutes. */
#if defined(__x86_64__)
    {
        static const int mis[] = {1, 24, 63};
        for (int i = 0; i < 3; i++) {
            char nm[64];
            snprintf(nm, sizeof nm, "fp8-mis%d", mis[i]);        test_linear_fmt_at(DSV4_W_FP8, nm, 136, 1024, mis[i]);
            snprintf(nm, sizeof nm, "fp8-odd64-mis%d", mis[i]);  test_linear_fmt_at(DSV4_W_FP8, nm, 140, 1088, mis[i]);
            snprintf(nm, sizeof nm, "fp8-block-mis%d", mis[i]);  test_linear_fmt_at(DSV4_W_FP8, nm, 140, 128, mis[i]);
            snprintf(nm, sizeof nm, "fp8_32-mis%d", mis[i]);     test_linear_fmt_at(DSV4_W_FP8_32, nm, 72, 1024, mis[i]);
            snprintf(nm, sizeof nm, "fp8_32-odd32-mis%d", mis[i]); test_linear_fmt_at(DSV4_W_FP8_32, nm, 40, 1120, mis[i]);
            snprintf(nm, sizeof nm, "fp4-mis%d", mis[i]);        test_linear_fmt_at(DSV4_W_FP4, nm, 48, 1024, mis[i]);
            snprintf(nm, sizeof nm, "bf16-mis%d", mis[i] & ~1);  test_linear_fmt_at(DSV4_W_BF16, nm, 48, 1024, mis[i] & ~1);
        }
    }
#endif
    test_linear_fmt(DSV4_W_FP4, "fp4", 203, 2080);
    test_linear_fmt(DSV4_W_FP4, "fp4-small", 45, 32);
    test_fp4_rare_scales();
    test_linear_fmt(DSV4_W_FP8_32, "fp8_32", 300, 1100);          /* ragged rows and columns */
    test_linear_fmt(DSV4_W_FP8_32, "fp8_32-aligned", 256, 1536);
    test_linear_fmt(DSV4_W_FP8_32, "fp8_32-odd32", 70, 1120);     /* a multiple of 32, not of 64 */
    test_linear_fmt(DSV4_W_FP8_32, "fp8_32-small", 45, 72);
    test_linear_bf16x();
    test_gemm_blocking();
    test_gemm_fold_guard();
}

/* ------------------------------------------------------------------ ops */
static void test_rope(void) {
    static const double table[32] = {
        1, 0.687656, 0.472871, 0.325172, 0.223607, 0.153765, 0.105737, 0.0727108, 0.05, 0.0343828, 0.0236435,
        0.0162586, 0.0111803, 0.00768823, 0.00528686, 0.00363554, 0.00226563, 0.0013968, 0.00084969, 0.000508082,
        0.000296978, 0.00016818, 9.08678e-05, 4.54442e-05, 1.95312e-05, 5.37231e-06, 3.6943e-06, 2.54041e-06,
        1.74693e-06, 1.20129e-06, 8.26071e-07, 5.68053e-07};
    float f[32], g[32];
    dsv4_rope_freqs(f, 64, 160000.0f, 1, 16.0f, 65536, 32.0f, 1.0f);
    double maxrel = 0;
    for (int i = 0; i < 32; i++) maxrel = fmax(maxrel, fabs(f[i] - table[i]) / table[i]);
    CHECK(maxrel < 1e-5, "YaRN table θ=160000 (docs/architecture.md §3.2): max rel err %g", maxrel);
    dsv4_rope_freqs(g, 64, 160000.0f, 0, 16.0f, 65536, 32.0f, 1.0f);
    int same = 1;
    for (int i = 0; i <= 15; i++) same &= f[i] == g[i];
    CHECK(same, "YaRN leaves i <= 15 unchanged");
    CHECK(fabs(f[25] - g[25] / 16) <= 1e-7 * g[25], "YaRN divides i >= 25 by 16");
    dsv4_rope_freqs(g, 64, 10000.0f, 0, 0, 0, 0, 0);
    maxrel = 0;
    for (int i = 0; i < 32; i++) maxrel = fmax(maxrel, fabs(g[i] - pow(10000.0, -i / 32.0)) / pow(10000.0, -i / 32.0));
    CHECK(maxrel < 1e-6, "θ=10000 frequencies: max rel err %g", maxrel);

    float x[64], y[64], z[64];
    for (int i = 0; i < 64; i++) x[i] = rnd_bf16(4.0f);
    memcpy(y, x, sizeof x);
    dsv4_rope(y, 64, f, 0, 0);
    CHECK(!memcmp(x, y, sizeof x), "rope at pos 0 is the identity");
    static const int64_t poss[] = {1, 17, 1000, 65535, 1000003};
    for (size_t pi = 0; pi < sizeof poss / sizeof poss[0]; pi++) {
        int64_t pos = poss[pi];
        memcpy(y, x, sizeof x);
        dsv4_rope(y, 64, f, pos, 0);
        double maxd = 0, maxi = 0;
        for (int j = 0; j < 32; j++) {  /* against double rotation of the F32 angle */
            double a = (double)(float)((float)pos * f[j]);
            double u = x[2 * j] * cos(a) - x[2 * j + 1] * sin(a), v = x[2 * j] * sin(a) + x[2 * j + 1] * cos(a);
            double nrm = hypot(x[2 * j], x[2 * j + 1]) + 1e-6;
            maxd = fmax(maxd, fmax(fabs(y[2 * j] - u), fabs(y[2 * j + 1] - v)) / nrm);
        }
        memcpy(z, y, sizeof y);
        dsv4_rope(z, 64, f, pos, 1);
        for (int j = 0; j < 32; j++) {  /* error relative to the pair's norm (rotation mixes the pair) */
            double nrm = hypot(x[2 * j], x[2 * j + 1]) + 1e-6;
            maxi = fmax(maxi, fmax(fabs(z[2 * j] - x[2 * j]), fabs(z[2 * j + 1] - x[2 * j + 1])) / nrm);
        }
        CHECK(maxd <= 1.0 / 256, "rope pos %lld vs double rotation: max rel %g", (long long)pos, maxd);
        CHECK(maxi <= 2.0 / 256, "rope inverse undoes rope at pos %lld: max rel %g", (long long)pos, maxi);
    }
}

static void test_norm_softmax_sinkhorn(void) {
    enum { N = 1000 };
    static float x[N], w[N], y[N];
    for (int i = 0; i < N; i++) { x[i] = rnd_bf16(3.0f); w[i] = rnd_bf16(1.0f); }
    dsv4_rmsnorm(y, x, w, N, 1e-6f, 1);
    double ss = 0, maxe = 0;
    for (int i = 0; i < N; i++) ss += (double)x[i] * x[i];
    double r = 1.0 / sqrt(ss / N + 1e-6);
    int bf = 1;
    for (int i = 0; i < N; i++) {
        maxe = fmax(maxe, fabs(y[i] - w[i] * x[i] * r) / (fabs(w[i] * x[i] * r) + 1e-6));
        bf &= dsv4_round_bf16(y[i]) == y[i];
    }
    CHECK(maxe <= 1.0 / 256 && bf, "rmsnorm vs double: max rel %g, bf16 %d", maxe, bf);
    memcpy(y, x, sizeof x);
    dsv4_rmsnorm(y, y, NULL, N, 1e-6f, 0);
    maxe = 0;
    for (int i = 0; i < N; i++) maxe = fmax(maxe, fabs(y[i] - x[i] * r) / (fabs(x[i] * r) + 1e-6));
    CHECK(maxe <= 1e-6, "weightless in-place rmsnorm F32: max rel %g", maxe);

    float s[5] = {1, 2, 3, 4, 1000};
    dsv4_softmax(s, 5);
    CHECK(s[4] == 1.0f && s[0] == 0.0f, "softmax stable for large logits");
    float s2[4] = {0, 0, log(3.0f), 0};
    dsv4_softmax(s2, 4);
    CHECK(fabs(s2[2] - 0.5) < 1e-7 && fabs(s2[0] - 1.0 / 6) < 1e-7, "softmax values %g %g", s2[2], s2[0]);

    float M[16];
    rng = 88172645463325252ull;   /* fixed input: 20 iterations do not reach 1e-3 on every random ±4 matrix */
    for (int i = 0; i < 16; i++) M[i] = rnd_unif() * 4.0f;
    dsv4_sinkhorn(M, 4, 20, 1e-6f);
    double rmax = 0, cmax = 0;
    int pos = 1;
    for (int j = 0; j < 4; j++) {
        double rs = 0, cs = 0;
        for (int k = 0; k < 4; k++) { rs += M[j * 4 + k]; cs += M[k * 4 + j]; pos &= M[j * 4 + k] > 0; }
        rmax = fmax(rmax, fabs(rs - 1)); cmax = fmax(cmax, fabs(cs - 1));
    }
    CHECK(cmax < 1e-5 && rmax < 1e-3 && pos, "sinkhorn: |col sum-1| %g, |row sum-1| %g", cmax, rmax);
    /* iters = 1: exactly softmax + eps then one column normalization */
    float C[4] = {0.5f, -1.0f, 2.0f, 0.25f}, A[4];
    memcpy(A, C, sizeof C);
    dsv4_sinkhorn(A, 2, 1, 1e-6f);
    float e0 = expf(0.5f - 0.5f), e1 = expf(-1.0f - 0.5f), se = e0 + e1;
    float m00 = e0 / se + 1e-6f, m01 = e1 / se + 1e-6f;
    float f0 = expf(2.0f - 2.0f), f1 = expf(0.25f - 2.0f), sf = f0 + f1;
    float m10 = f0 / sf + 1e-6f, m11 = f1 / sf + 1e-6f;
    float c0 = m00 + m10 + 1e-6f, c1 = m01 + m11 + 1e-6f;
    CHECK(A[0] == m00 / c0 && A[1] == m01 / c1 && A[2] == m10 / c0 && A[3] == m11 / c1,
          "sinkhorn iters=1 structure: %a %a %a %a", A[0], A[1], A[2], A[3]);
}

int main(void) {
    test_e4m3();
    test_e8m0_e2m1();
    test_fp8_sim();
    test_fp4_sim();
    test_hadamard();
    test_linear();
    test_elem_ops();
    test_rope();
    test_norm_softmax_sinkhorn();
    return test_done();
}
