/* tests/test_attn_v41.c — the attention / indexer steps of the V4.1 forward on the shared kernels
 * (model/sparse_attn.h, kernels/headsum.h; docs/performance.md "V4.1"):
 *  - dsv4_relu_wsum_bf16 (the V4.1 indexer's per-head term) and dsv4_relu_wsum_f32 (V4's) on every SIMD path this CPU runs against the scalar
 *    definition bit for bit: ragged lengths, +-0, negatives, NaN, +-inf, subnormals, BF16 rounding ties, overflow;
 *  - dsv4_pv_bf16 (a head's P.V) on every path = the sequence of scalar dsv4_axpy_bf16 calls, bit for bit;
 *  - dsv4_fp4_e4m3_decode_bf16 = the BF16 bits of dsv4_fp4_e4m3_decode on every nibble x scale byte;
 *  - dsv4_sparse_attend and dsv4_index_scores (V4.1 mode, all keys and a gathered subset) against the earlier
 *    scalar loops of forward_v41.c (sequential F32 dot products; the pair-lane order differs from them only by F32
 *    rounding, so they agree within a few BF16 ulps) and bit-identical on every path x 1..3 threads;
 *  - the whole V4.1 tiny model (tests/golden/v41/tiny) through the internal forward with DSpark drafts after every
 *    decode step: logits, drafts, draft ids and confidences bit-identical on every path x 1..3 threads.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testlib.h"
#include "model/model_v41.h"
#include "model/sparse_attn.h"
#include "kernels/headsum.h"
#include "kernels/quant_v41.h"
#include "kernels/kernels.h"
#include "base/util.h"

static const char *PATHS[] = {"scalar", "avx2", "avx512", "neon"};
enum { NPATHS = 4 };

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void) {
    rng ^= rng >> 12; rng ^= rng << 25; rng ^= rng >> 27;
    return (uint32_t)((rng * 0x2545f4914f6cdd1dull) >> 32);
}
static float frnd(void) { return (float)((rnd() >> 8) * (1.0 / 16777216.0)) * 2.0f - 1.0f; }
static float bfr(float x) { return dsv4_round_bf16(x); }
static float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static int same_bits(float a, float b) { return memcmp(&a, &b, 4) == 0 || (isnan(a) && isnan(b)); }

static void check_headsum(void) {
    enum { N = 203 };
    float d[N], acc0[N], want[N], got[N];
    const float specials[] = {0.0f, -0.0f, -1.0f, INFINITY, -INFINITY, NAN, u2f(0x00000001), u2f(0x80400000),
                              u2f(0x3f808000), u2f(0x3f818000), u2f(0x7f7f8000), 1e-39f, 3.0e38f};
    const int ns = (int)(sizeof specials / sizeof specials[0]);
    char err[256];
    for (int round = 0; round < 40; round++) {
        for (int i = 0; i < N; i++) {
            d[i] = round % 4 == 0 && i < ns ? specials[i] : bfr(frnd() * (float)(1 << (rnd() % 20)) / 1024.0f);
            if (round % 5 == 1 && rnd() % 7 == 0) d[i] = specials[rnd() % ns];
            acc0[i] = frnd() * 4.0f;
        }
        float w = round % 3 == 0 ? bfr(frnd()) : round % 3 == 1 ? -bfr(frnd()) : bfr(frnd() * 1e30f);
        if (round == 7) w = u2f(0x3f808000);   /* products at BF16 ties */
        int n = round < 20 ? N - round : 1 + round;
        memcpy(want, acc0, sizeof want);
        dsv4_relu_wsum_bf16_scalar(want, d, w, n);
        for (int i = 0; i < n && round == 0; i++) {   /* the definition itself, written out again */
            float x = d[i] < 0 ? 0 : d[i];
            CHECK(same_bits(want[i], acc0[i] + bfr(x * w)), "headsum definition at %d", i);
        }
        float want4[N], got4[N];   /* V4's F32 head term */
        memcpy(want4, acc0, sizeof want4);
        dsv4_relu_wsum_f32_scalar(want4, d, w, n);
        for (int i = 0; i < n && round == 0; i++)
            CHECK(same_bits(want4[i], acc0[i] + w * (d[i] > 0 ? d[i] : 0)), "V4 head term definition at %d", i);
        for (int p = 1; p < NPATHS; p++) {
            if (dsv4_set_kernel_path(PATHS[p], err, sizeof err)) continue;
            memcpy(got4, acc0, sizeof got4);
            dsv4_relu_wsum_f32(got4, d, w, n);
            int bad4 = 0;
            for (int i = 0; i < N; i++) bad4 += !same_bits(got4[i], want4[i]);
            CHECK(bad4 == 0, "dsv4_relu_wsum_f32 path %s round %d (n %d): %d of %d differ from scalar", PATHS[p], round,
                  n, bad4, N);
            memcpy(got, acc0, sizeof got);
            dsv4_relu_wsum_bf16(got, d, w, n);
            int bad = 0;
            for (int i = 0; i < N; i++) bad += !same_bits(got[i], want[i]);
            CHECK(bad == 0, "dsv4_relu_wsum_bf16 path %s round %d (n %d): %d of %d differ from scalar", PATHS[p], round,
                  n, bad, N);
        }
        dsv4_set_kernel_path("scalar", NULL, 0);
    }
}

/* dsv4_pv_bf16 = the dsv4_axpy_bf16 sequence, bit for bit, on every path (lengths around the 128 / 64 / 16 / 8
 * blocks, p from 1 down to subnormal products, a stride) */
static void check_pv(void) {
    enum { NK = 37, NMAX = 300, ST = 3 };
    uint16_t *v = malloc(2 * NK * NMAX);
    const uint16_t *vp[NK];
    float p[NK * ST], want[NMAX], got[NMAX], acc0[NMAX];
    for (int i = 0; i < NK * NMAX; i++) v[i] = dsv4_f32_to_bf16(frnd() * (i % 11 == 0 ? 1e-30f : 1.0f));
    for (int j = 0; j < NK; j++) { vp[j] = v + (size_t)j * NMAX; p[j * ST] = bfr(ldexpf(frnd(), -(j * 5))); }
    for (int i = 0; i < NMAX; i++) acc0[i] = frnd();
    const int lens[] = {0, 7, 8, 16, 64, 127, 128, 130, 200, 256, 300};
    char err[256];
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        const int n = lens[li];
        memcpy(want, acc0, sizeof want);
        dsv4_set_kernel_path("scalar", NULL, 0);
        for (int j = 0; j < NK; j++) dsv4_axpy_bf16(want, p[j * ST], vp[j], n);
        for (int pa = 0; pa < NPATHS; pa++) {
            if (dsv4_set_kernel_path(PATHS[pa], err, sizeof err)) continue;
            memcpy(got, acc0, sizeof got);
            dsv4_pv_bf16(got, p, ST, vp, NK, n);
            CHECK(memcmp(got, want, sizeof got) == 0, "dsv4_pv_bf16 path %s, n %d: differs from the axpy sequence",
                  PATHS[pa], n);
        }
    }
    dsv4_set_kernel_path("scalar", NULL, 0);
    free(v);
}

static void check_decode(void) {
    enum { HD = 512 };
    uint8_t packed[HD / 2], sc[HD / 16];
    float f[HD];
    uint16_t b[HD];
    int bad = 0;
    for (int s0 = 0; s0 < 256; s0 += HD / 16) {
        for (int i = 0; i < HD / 2; i++) packed[i] = (uint8_t)rnd();
        for (int k = 0; k < HD / 16; k++) sc[k] = (uint8_t)(s0 + k);
        packed[0] = 0x10; packed[1] = 0x98;
        dsv4_fp4_e4m3_decode(packed, sc, HD, 16, f);
        dsv4_fp4_e4m3_decode_bf16(packed, sc, HD, 16, b);
        for (int i = 0; i < HD; i++) bad += dsv4_f32_to_bf16(f[i]) != b[i];
    }
    CHECK(bad == 0, "dsv4_fp4_e4m3_decode_bf16: %d values differ from dsv4_fp4_e4m3_decode", bad);
}

/* the earlier scalar loops of forward_v41.c: sequential F32 dot products */
static void attend_old(int H, int hd, int rd, const float *q, const float *const *k, int nk, const float *sink,
                       const float *fr, int64_t pos, float *o) {
    float *z = malloc(sizeof(float) * (size_t)nk);
    const float scale = 1.0f / sqrtf((float)hd);
    for (int h = 0; h < H; h++) {
        const float *qh = q + (size_t)h * hd;
        float mx = -INFINITY;
        for (int j = 0; j < nk; j++) {
            float d = 0;
            for (int i = 0; i < hd; i++) d += qh[i] * k[j][i];
            z[j] = d * scale;
            if (z[j] > mx) mx = z[j];
        }
        float Z = 0, *oh = o + (size_t)h * hd;
        for (int i = 0; i < hd; i++) oh[i] = 0;
        for (int j = 0; j < nk; j++) {
            float p = expf(z[j] - mx);
            Z += p;
            float pb = bfr(p);
            for (int i = 0; i < hd; i++) oh[i] += pb * k[j][i];
        }
        Z += expf(sink[h] - mx);
        for (int i = 0; i < hd; i++) oh[i] = bfr(oh[i] / Z);
        dsv4_rope(oh + hd - rd, rd, fr, pos, 1);
    }
    free(z);
}

static void check_attend(void) {
    enum { H = 16, HD = 128, RD = 64, NK = 300 };
    float *q = malloc(sizeof(float) * H * HD), *kf = malloc(sizeof(float) * NK * HD), sink[H], fr[RD / 2];
    uint16_t *qb = malloc(2 * H * HD), *kb = malloc(2 * NK * HD);
    const float *kpf[NK];
    const uint16_t *kpb[NK];
    for (int i = 0; i < H * HD; i++) { q[i] = bfr(frnd() * 3.0f); qb[i] = dsv4_f32_to_bf16(q[i]); }
    for (int i = 0; i < NK * HD; i++) { kf[i] = bfr(frnd()); kb[i] = dsv4_f32_to_bf16(kf[i]); }
    for (int h = 0; h < H; h++) sink[h] = frnd();
    dsv4_rope_freqs(fr, RD, 10000.0f, 0, 1, 0, 32, 1);
    for (int j = 0; j < NK; j++) { kpf[j] = kf + (size_t)j * HD; kpb[j] = kb + (size_t)j * HD; }
    float *want = malloc(sizeof(float) * H * HD), *ref = malloc(sizeof(float) * H * HD),
          *got = malloc(sizeof(float) * H * HD), *z = malloc(sizeof(float) * NK * H);
    attend_old(H, HD, RD, q, kpf, NK, sink, fr, 77, want);
    dsv4_attn_shape a = {H, HD, RD, 1.0f / sqrtf((float)HD), sink, fr};
    dsv4_set_kernel_path("scalar", NULL, 0);
    dsv4_set_threads(1, NULL, 0);
    dsv4_sparse_attend(&a, qb, 77, kpb, NK, z, ref);
    double mx = test_maxabs(want, H * HD), df = test_maxdiff(ref, want, H * HD);
    float *zraw = malloc(sizeof(float) * NK * H);
    dsv4_wview wq = {DSV4_W_BF16, H, HD, qb, NULL};
    dsv4_linear_bf16x(zraw, &wq, NULL, 0, kpb, NK, 0);   /* the raw scores (dsv4_sparse_attend overwrites z) */
    int zdiff = 0;   /* how many raw scores the pair-lane order changes (F32 rounding) */
    for (int j = 0; j < NK; j++)
        for (int h = 0; h < H; h++) {
            float d = 0;
            for (int i = 0; i < HD; i++) d += q[h * HD + i] * kf[(size_t)j * HD + i];
            zdiff += d != zraw[(size_t)j * H + h];
        }
    printf("  dsv4_sparse_attend vs the sequential F32 loops: %d of %d dot products differ (F32 rounding), outputs max "
           "diff %.3e x max|o| (%d heads x %d keys)\n", zdiff, NK * H, df / mx, H, NK);
    CHECK(zdiff > 0, "the test's keys do not tell the two orders apart");
    CHECK(df <= mx / 64, "dsv4_sparse_attend: %.3e x max from the scalar loops", df / mx);
    char err[256];
    for (int p = 0; p < NPATHS; p++) {
        if (dsv4_set_kernel_path(PATHS[p], err, sizeof err)) continue;
        for (int t = 1; t <= 3; t++) {
            dsv4_set_threads(t, NULL, 0);
            dsv4_sparse_attend(&a, qb, 77, kpb, NK, z, got);
            CHECK(memcmp(got, ref, sizeof(float) * H * HD) == 0, "dsv4_sparse_attend: path %s, %d threads differ",
                  PATHS[p], t);
        }
    }
    free(q); free(kf); free(qb); free(kb); free(want); free(ref); free(got); free(z); free(zraw);
}

static void check_index(void) {
    enum { NH = 8, IHD = 64, NK = 2500 };   /* more than one DSV4_IDX_CHUNK */
    const int rb = IHD / 2 + IHD / 32;
    uint8_t *recs = malloc((size_t)NK * rb);
    float *iq = malloc(sizeof(float) * NH * IHD), wh[NH], x[IHD];
    uint16_t *qb = malloc(2 * NH * IHD), *kdec = malloc(2 * (size_t)DSV4_IDX_CHUNK * IHD), kb[IHD];
    float *isd = malloc(sizeof(float) * (size_t)DSV4_IDX_CHUNK * NH), *want = malloc(sizeof(float) * NK),
          *ref = malloc(sizeof(float) * NK), *got = malloc(sizeof(float) * NK);
    for (int j = 0; j < NK; j++) {
        for (int i = 0; i < IHD; i++) x[i] = frnd() * (1 + j % 5);
        dsv4_fp4_encode(x, IHD, 32, recs + (size_t)j * rb, recs + (size_t)j * rb + IHD / 2);
    }
    for (int i = 0; i < NH * IHD; i++) iq[i] = frnd();
    for (int h = 0; h < NH; h++) { dsv4_fp4_sim(iq + h * IHD, IHD, 32); wh[h] = bfr(frnd() * 0.3f); }
    for (int i = 0; i < NH * IHD; i++) qb[i] = dsv4_f32_to_bf16(iq[i]);
    for (int j = 0; j < NK; j++) {   /* the earlier loop */
        const uint8_t *r = recs + (size_t)j * rb;
        dsv4_fp4_decode_bf16(r, r + IHD / 2, IHD, 32, kb);
        float acc = 0;
        for (int h = 0; h < NH; h++) {
            float d = 0;
            for (int i = 0; i < IHD; i++) d += iq[h * IHD + i] * dsv4_bf16_to_f32(kb[i]);
            d = bfr(d);
            if (d < 0) d = 0;
            acc += bfr(d * wh[h]);
        }
        want[j] = bfr(acc);
    }
    dsv4_set_kernel_path("scalar", NULL, 0);
    dsv4_set_threads(1, NULL, 0);
    dsv4_index_scores(DSV4_ISCORE_V41, recs, (size_t)rb, NULL, NK, NH, IHD, qb, wh, ref, kdec, isd);
    int nflip = 0;
    double mx = test_maxabs(want, NK), df = test_maxdiff(ref, want, NK);
    for (int j = 0; j < NK; j++) nflip += ref[j] != want[j];
    printf("  dsv4_index_scores vs the sequential F32 loop: %d of %d scores differ, max %.3e x max\n", nflip, NK, df / mx);
    CHECK(df <= mx / 32, "dsv4_index_scores: %.3e x max from the scalar loop", df / mx);
    int32_t idx[700];
    for (int i = 0; i < 700; i++) idx[i] = (int32_t)(i * 3 + i % 2);
    char err[256];
    for (int p = 0; p < NPATHS; p++) {
        if (dsv4_set_kernel_path(PATHS[p], err, sizeof err)) continue;
        for (int t = 1; t <= 3; t++) {
            dsv4_set_threads(t, NULL, 0);
            dsv4_index_scores(DSV4_ISCORE_V41, recs, (size_t)rb, NULL, NK, NH, IHD, qb, wh, got, kdec, isd);
            CHECK(memcmp(got, ref, sizeof(float) * NK) == 0, "dsv4_index_scores: path %s, %d threads differ", PATHS[p], t);
            dsv4_index_scores(DSV4_ISCORE_V41, recs, (size_t)rb, idx, 700, NH, IHD, qb, wh, got, kdec, isd);
            int bad = 0;
            for (int i = 0; i < 700; i++) bad += memcmp(&got[i], &ref[idx[i]], 4) != 0;
            CHECK(bad == 0, "dsv4_index_scores over gathered keys: path %s, %d threads: %d differ", PATHS[p], t, bad);
        }
    }
    free(recs); free(iq); free(qb); free(kdec); free(isd); free(want); free(ref); free(got);
}

/* the tiny V4.1 model: prefill 9 then decode to 32 with a DSpark draft after every decode step; out: logits of every
 * position, then per draft its logits, ids and confidences */
static size_t run_tiny(const dsv4_model *m, float *out) {
    char err[512];
    const int V = m->cfg.vocab_size, N = 32, Bs = m->cfg.x.dspark_block_size;
    dsv4_v41_state *s = NULL;
    if (dsv4_v41_state_open(m, N, N, &s, err, sizeof err)) { test_fail("open: %s", err); return 0; }
    int32_t tok[32];
    for (int i = 0; i < N; i++) tok[i] = (int32_t)((i * 7919 + 13) % V);
    size_t k = 0;
    if (dsv4_v41_eval(s, tok, 9, out, NULL, err, sizeof err)) { test_fail("eval: %s", err); goto done; }
    k += (size_t)9 * V;
    for (int p = 9; p < N; p++) {
        if (dsv4_v41_eval(s, tok + p, 1, out + k, NULL, err, sizeof err)) { test_fail("eval: %s", err); goto done; }
        k += V;
        int32_t ids[16];
        float conf[16];
        if (Bs > 0 && Bs < 16) {
            if (dsv4_v41_dspark(s, tok[p], out + k, ids, conf, err, sizeof err)) { test_fail("dspark: %s", err); goto done; }
            k += (size_t)Bs * V;
            for (int j = 0; j <= Bs; j++) out[k++] = (float)ids[j];
            for (int j = 0; j < Bs; j++) out[k++] = conf[j];
        }
    }
done:
    dsv4_v41_state_free(s);
    return k;
}

static void check_tiny(void) {
    char err[512];
    dsv4_model *m = NULL;
    if (dsv4_model_bind_v41(&m, "tests/golden/v41/tiny", err, sizeof err)) { test_fail("bind: %s", err); return; }
    const size_t cap = (size_t)32 * m->cfg.vocab_size * 8;
    float *ref = calloc(cap, sizeof(float)), *got = calloc(cap, sizeof(float));
    dsv4_set_kernel_path("scalar", NULL, 0);
    dsv4_set_threads(1, NULL, 0);
    size_t n = run_tiny(m, ref);
    CHECK(n > 0 && m->cfg.x.dspark_block_size > 0, "tiny V4.1: %zu values, DSpark block %d", n,
          m->cfg.x.dspark_block_size);
    for (int p = 0; p < NPATHS && n; p++) {
        if (dsv4_set_kernel_path(PATHS[p], err, sizeof err)) continue;
        for (int t = 1; t <= 3; t++) {
            dsv4_set_threads(t, NULL, 0);
            size_t n2 = run_tiny(m, got), bad = 0;
            for (size_t i = 0; i < n && n2 == n; i++) bad += memcmp(&got[i], &ref[i], 4) != 0;
            CHECK(n2 == n && bad == 0, "tiny V4.1 (logits + DSpark drafts): path %s, %d threads: %zu of %zu differ",
                  PATHS[p], t, bad, n);
        }
    }
    free(ref); free(got);
    dsv4_model_free(m);
}

int main(void) {
    check_headsum();
    check_pv();
    check_decode();
    check_attend();
    check_index();
    check_tiny();
    dsv4_set_kernel_path("scalar", NULL, 0);
    return test_done();
}
