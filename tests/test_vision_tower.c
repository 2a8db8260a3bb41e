/* test_vision_tower.c — the V4.1 vision tower + aligner (src/vision/tower.c) against the PyTorch reference's
 * goldens (tests/golden/vision_tower, tools/reference/make_vision_goldens.py): a tiny random tower (3 blocks,
 * width 128, 2 heads of 64 as in V4.1-Flash) on two pre-processed images (grids 8 x 11 and 7 x 12, both padded
 * by the aligner), every tower state (patch embedding, each block, final norm) and the aligner rows.
 *
 * Tolerance, chained (the whole tower from the patches), per state: max |C - reference| <= 2^-5 * max |reference|
 * (4 BF16 ulps at the state's largest magnitude) and mean |C - reference| <= 2^-6 * mean |reference|. Why not
 * bit-identical: the kernels sum dot products in their own fixed order (pair lanes, F32), the reference in float64;
 * a one-ulp BF16 flip that this causes spreads to every token through the bidirectional attention. The reference's
 * own noise (F32 vs F64 accumulation, recorded in tower.json) and its distance to the official vision.py run on CPU
 * (tools/reference/README.md) reach 1.1-1.3% of the largest magnitude after 3-4 blocks; 2^-5 = 3.1% bounds that
 * with room (measured here: 1.13% max, 0.73% mean at worst; one image bit-identical throughout). Each block is also
 * checked alone, restarted from the reference's state (the hook overwrites the state): then only the block's own
 * F32 order matters, and max |diff| <= 2^-6 max |ref|, mean |diff| <= 2^-10 mean |ref| (measured: 0.37% and 0.021%
 * in the worst block, 7 of 8 blocks bit-identical or 1 value off); the patch embedding and the aligner (no mixing
 * between rows) may differ in at most 1% of their values (measured: 2 values, 0).
 * Mutations caught by these bounds (tried): RoPE axes swapped, the cell order of the unshuffle, SiLU off by 1%,
 * P off by 0.1%, the norm's eps, the tanh GELU in place of erf. Also: the patches equal the goldens' (sha256), the
 * softmax exp equals the reference's bit for bit, the result does not depend on the thread count (bit-identical at
 * 1 and 3 threads), the shapes come from the released V4.1 config, and bad weights or grids give clear errors.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsv4_vision.h"
#include "io/safetensors.h"
#include "sha256.h"
#include "testlib.h"
#include "kernels/pool.h"
#include "vision/tower.h"
#include "vision/tower_simd.h"

#define GOLD "tests/golden/vision_tower"

typedef struct {
    const float *gold;   /* BF16 values of all states, [n_states][n][D] */
    int n, D, n_states;
    const char *name;
    double maxd[64], maxr[64], meand[64], meanr[64];
    long ndiff[64];
    float *copy;         /* when non-NULL: states are copied here ([n_states][n][D]) */
    int force;           /* after comparing, overwrite the state with the reference's (teacher forcing) */
} cmp_ctx;

static void hook(void *vctx, int s, float *x, int n, int D) {
    cmp_ctx *c = vctx;
    if (s >= c->n_states || n != c->n || D != c->D) { test_fail("%s: state %d has shape %d x %d", c->name, s, n, D); return; }
    if (c->copy) { memcpy(c->copy + (size_t)s * n * D, x, (size_t)n * D * sizeof(float)); return; }
    const float *g = c->gold + (size_t)s * n * D;
    double md = 0, mr = 0, sd = 0, sr = 0;
    long nd = 0;
    for (size_t i = 0; i < (size_t)n * D; i++) {
        double d = fabs((double)x[i] - g[i]);
        if (d > md) md = d;
        if (fabs(g[i]) > mr) mr = fabs(g[i]);
        sd += d; sr += fabs(g[i]);
        nd += x[i] != g[i];
    }
    c->maxd[s] = md; c->maxr[s] = mr; c->meand[s] = sd / ((double)n * D); c->meanr[s] = sr / ((double)n * D);
    c->ndiff[s] = nd;
    if (c->force) memcpy(x, g, (size_t)n * D * sizeof(float));
}

static int cfg_int(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valueint : -1;
}

/* forced: the state was computed from the reference's previous state (one block alone): max |diff| <= 2^-6
 * max |ref| and mean |diff| <= 2^-10 mean |ref|. Free-running: max |diff| <= 2^-5 max |ref|, mean <= 2^-6 mean |ref|. */
static void check_state(int forced, const char *img, const char *what, double md, double mr, double meand,
                        double meanr, long nd, long total) {
    printf("  %-6s %-10s %-12s max|diff| %.3g (%.2f%% of max %.3g), mean|diff| %.3g (%.3f%% of mean), "
           "%ld of %ld differ\n", forced ? "alone" : "chain", img, what, md, 100 * md / mr, mr, meand,
           100 * meand / meanr, nd, total);
    if (forced) {
        EXPECT(meand <= ldexp(meanr, -10), "%s %s (block alone): mean|diff| %.4g > 2^-10 * mean|ref| %.4g", img,
               what, meand, ldexp(meanr, -10));
        EXPECT(md <= ldexp(mr, -6), "%s %s (block alone): max|diff| %.4g > 2^-6 * max|ref| %.4g", img, what, md,
               ldexp(mr, -6));
        return;
    }
    EXPECT(md <= ldexp(mr, -5), "%s %s: max|diff| %.4g > 2^-5 * max|ref| %.4g", img, what, md, ldexp(mr, -5));
    EXPECT(meand <= ldexp(meanr, -6), "%s %s: mean|diff| %.4g > 2^-6 * mean|ref| %.4g", img, what, meand,
           ldexp(meanr, -6));
}

static void run_case(const dsv4_vtower *t, const dsv4_vtower_config *vc, const cJSON *cs, int min_pixels) {
    const char *file = cJSON_GetObjectItemCaseSensitive(cs, "file")->valuestring;
    int nh = cfg_int(cs, "n_vit_h"), nw = cfg_int(cs, "n_vit_w"), lh = cfg_int(cs, "n_llm_h"), lw = cfg_int(cs, "n_llm_w");
    char path[512], err[256];
    snprintf(path, sizeof path, "tests/golden/vision/decode/%s", file);
    dsv4_image *im = NULL;
    if (dsv4_image_from_file(&im, path, err, sizeof err)) { test_fail("%s", err); return; }
    dsv4_vision_params p = dsv4_vision_params_v41();
    p.min_pixels = min_pixels;
    dsv4_image_plan plan;
    int P = 3 * vc->patch_size * vc->patch_size;
    size_t cap = (size_t)nh * nw * P;
    float *patches = malloc(cap * sizeof(float));
    int rc = dsv4_image_preprocess(im, &p, &plan, patches, cap, err, sizeof err);
    dsv4_image_free(im);
    EXPECT(rc == 0 && plan.n_vit_h == nh && plan.n_vit_w == nw && plan.n_llm_h == lh && plan.n_llm_w == lw,
           "%s: preprocess rc %d grid %dx%d (want %dx%d) %s", file, rc, plan.n_vit_h, plan.n_vit_w, nh, nw,
           rc ? err : "");
    if (rc || plan.n_vit_h != nh || plan.n_vit_w != nw) { free(patches); return; }
    uint16_t *pb = malloc(cap * 2);
    for (size_t i = 0; i < cap; i++) pb[i] = dsv4_f32_to_bf16(patches[i]);
    char hex[65];
    sha256_of(pb, cap * 2, hex);
    free(pb);
    EXPECT(!strcmp(hex, cJSON_GetObjectItemCaseSensitive(cs, "patches_sha256")->valuestring),
           "%s: patch tensor sha256 %s differs from the reference's", file, hex);

    int n = nh * nw, D = vc->dim, L = vc->lm_dim, ns = vc->n_layers + 2, nr = dsv4_vtower_n_rows(vc, nh, nw);
    EXPECT(nr == lh * lw, "%s: %d aligner rows, want %d", file, nr, lh * lw);
    snprintf(path, sizeof path, GOLD "/%s", cJSON_GetObjectItemCaseSensitive(cs, "bin")->valuestring);
    float *gold = test_read_bf16(path, (size_t)ns * n * D + (size_t)nr * L);
    if (!gold) { test_fail("%s: cannot read %s", file, path); free(patches); return; }
    float *rows = malloc((size_t)nr * L * sizeof(float));
    cmp_ctx c = {gold, n, D, ns, file, {0}, {0}, {0}, {0}, {0}, NULL, 0};
    char e2[256];
    for (int forced = 1; forced >= 0; forced--) {
    c.force = forced;
    rc = dsv4_vtower_forward(t, patches, nh, nw, rows, hook, &c, e2, sizeof e2);
    EXPECT(rc == 0, "%s: forward: %s", file, e2);
    for (int s = 0; s < ns; s++) {
        char what[32];
        if (s == 0) snprintf(what, sizeof what, "patch_embed");
        else if (s <= vc->n_layers) snprintf(what, sizeof what, "block %d", s - 1);
        else snprintf(what, sizeof what, "norm");
        check_state(forced, file, what, c.maxd[s], c.maxr[s], c.meand[s], c.meanr[s], c.ndiff[s], (long)n * D);
    }
    /* the patch embedding: one product per value, nothing spread yet */
    EXPECT(c.ndiff[0] * 100 <= (long)n * D, "%s patch_embed: %ld of %d values differ (> 1%%)", file, c.ndiff[0], n * D);
    const float *gr = gold + (size_t)ns * n * D;
    double md = 0, mr = 0, sd = 0, sr = 0;
    long nd = 0;
    for (size_t i = 0; i < (size_t)nr * L; i++) {
        double d = fabs((double)rows[i] - gr[i]);
        if (d > md) md = d;
        if (fabs(gr[i]) > mr) mr = fabs(gr[i]);
        sd += d; sr += fabs(gr[i]); nd += rows[i] != gr[i];
    }
    check_state(forced, file, "aligner", md, mr, sd / ((double)nr * L), sr / ((double)nr * L), nd, (long)nr * L);
    /* from the reference's final state the aligner (two products and a GELU per row, no mixing between rows)
     * differs only where an F32 sum order decides a BF16 rounding: rare */
    if (forced) EXPECT(nd * 100 <= (long)nr * L, "%s aligner (alone): %ld of %d values differ (> 1%%)", file, nd, nr * L);
    }

    /* thread-count independence: 1 thread and 3 threads give the same bits */
    float *r1 = malloc((size_t)nr * L * sizeof(float)), *r3 = malloc((size_t)nr * L * sizeof(float));
    float *s1 = malloc((size_t)ns * n * D * sizeof(float)), *s3 = malloc((size_t)ns * n * D * sizeof(float));
    cmp_ctx k1 = c, k3 = c;
    k1.copy = s1; k3.copy = s3;
    dsv4_set_threads(1, NULL, 0);
    int ok = dsv4_vtower_forward(t, patches, nh, nw, r1, hook, &k1, NULL, 0) == 0;
    dsv4_set_threads(3, NULL, 0);
    ok = ok && dsv4_vtower_forward(t, patches, nh, nw, r3, hook, &k3, NULL, 0) == 0;
    dsv4_set_threads(0, NULL, 0);
    EXPECT(ok && !memcmp(r1, r3, (size_t)nr * L * sizeof(float)) && !memcmp(r1, rows, (size_t)nr * L * sizeof(float)) &&
           !memcmp(s1, s3, (size_t)ns * n * D * sizeof(float)),
           "%s: results differ between 1 and 3 threads", file);
    free(r1); free(r3); free(s1); free(s3);
    free(rows); free(gold); free(patches);
}

static void bad_inputs(const st_set *s, const dsv4_vtower_config *vc) {
    char err[256] = "";
    dsv4_vtower *t = NULL;
    dsv4_vtower_config c = *vc;
    char want[160];
    c.inter_dim = vc->inter_dim + 1;
    snprintf(want, sizeof want, "tensor 'vision.blocks.0.mlp.w1.weight': expected BF16 or F32 [%d, %d], found BF16 [%d, %d]",
             2 * c.inter_dim, vc->dim, 2 * vc->inter_dim, vc->dim);
    EXPECT(dsv4_vtower_load(&t, s, &c, err, sizeof err) == -1 && !t && strstr(err, want),
           "wrong intermediate_size: '%s'", err);
    c = *vc;
    c.n_layers = vc->n_layers + 1;
    snprintf(want, sizeof want, "missing tensor 'vision.blocks.%d.norm1.weight'", vc->n_layers);
    EXPECT(dsv4_vtower_load(&t, s, &c, err, sizeof err) == -1 && !t && strstr(err, want), "one block too many: '%s'", err);
    c = *vc;
    c.n_heads = vc->dim / 16;
    EXPECT(dsv4_vtower_load(&t, s, &c, err, sizeof err) == -1 && !t && strstr(err, "head_dim 16") &&
           strstr(err, "multiple of 32"), "head_dim 16: '%s'", err);
    c = *vc;
    c.lm_dim = 0;
    EXPECT(dsv4_vtower_load(&t, s, &c, err, sizeof err) == -1 && strstr(err, "out of range"), "lm width 0: '%s'", err);
    st_set *other = NULL;
    if (st_open_file(&other, "tests/golden/flash/model.safetensors", err, sizeof err) == 0) {
        EXPECT(dsv4_vtower_load(&t, other, vc, err, sizeof err) == -1 &&
               strstr(err, "missing tensor 'vision.patch_embed.proj.weight'"), "text-only checkpoint: '%s'", err);
        st_close(other);
    }
    if (dsv4_vtower_load(&t, s, vc, err, sizeof err) == 0) {
        float patch[588] = {0}, row[4096];
        EXPECT(dsv4_vtower_forward(t, patch, 0, 1, row, NULL, NULL, err, sizeof err) == -1 &&
               strstr(err, "patch grid 0 x 1"), "empty grid: '%s'", err);
        dsv4_vtower_free(t);
    }
}

/* The shapes of the released V4.1-Flash config (docs/v41.md §1.3) through the project's config parser. */
static void config_from_v41(void) {
    dsv4_config c;
    dsv4_vtower_config vc;
    char err[256];
    if (dsv4_config_load(&c, "tests/golden/v41/flash-config.json", err, sizeof err)) { test_fail("%s", err); return; }
    EXPECT(dsv4_vtower_config_from(&vc, &c, "flash-config.json", err, sizeof err) == 0 && vc.n_layers == 32 &&
           vc.dim == 1024 && vc.n_heads == 16 && vc.inter_dim == 2816 && vc.patch_size == 14 &&
           vc.downsample_ratio == 3 && vc.lm_dim == 5120 && vc.rope_theta == 10000.0f,
           "V4.1-Flash vision config: %d layers, dim %d, %d heads, inter %d, patch %d, r %d, lm %d, theta %g (%s)",
           vc.n_layers, vc.dim, vc.n_heads, vc.inter_dim, vc.patch_size, vc.downsample_ratio, vc.lm_dim,
           (double)vc.rope_theta, err);
    c.x.vision_n_layers = 0;
    EXPECT(dsv4_vtower_config_from(&vc, &c, "text.json", err, sizeof err) == -1 &&
           strstr(err, "text.json: no vision tower"), "config without a tower: '%s'", err);
}

/* The softmax exp equals the reference's bit for bit (4,016 values; edge cases around 0 and the -86 cut). */
static void softmax_exp_vectors(void) {
    size_t n = 4016;
    float *v = test_read_f32(GOLD "/softmax_exp.bin", 2 * n);
    if (!v) { test_fail("cannot read " GOLD "/softmax_exp.bin"); return; }
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        float y = dsv4_vtower_softmax_exp(v[i]);
        if (memcmp(&y, &v[n + i], sizeof y)) {
            if (bad++ < 5) printf("  softmax_exp(%.9g) = %.9g, reference %.9g\n", v[i], y, v[n + i]);
        }
    }
    EXPECT(bad == 0, "softmax_exp: %zu of %zu values differ from the reference's", bad, n);
    free(v);
}

/* The vectorised softmax exp (vision/tower_simd.h) equals the scalar one bit for bit: every 61st F32 bit pattern
 * from -0 down to below the -86 cut (18 M values), the -86 boundary's neighbours, 0, infinities, NaNs, a sample of
 * positive values (not produced by the softmax, compared all the same) and ragged lengths (the tails). */
static void simd_exp_vectors(void) {
#if defined(__x86_64__)
    dsv4_simd_path path = dsv4_kernel_path_id();
    if (path < DSV4_PATH_AVX2) { printf("  (no SIMD exp on the %s path)\n", dsv4_get_kernel_path()); return; }
    size_t cap = 1 << 16, n = 0, bad512 = 0, bad2 = 0, total = 0;
    float *x = malloc(cap * sizeof(float)), *y2 = malloc(cap * sizeof(float)), *y5 = malloc(cap * sizeof(float));
    uint32_t u = 0x80000000u, rs = 12345;
    int phase = 0;
    for (;;) {
        float v;
        if (phase == 0) {   /* -0 ... -88.9 */
            memcpy(&v, &u, 4);
            u += 61;
            if (u > 0xc2b20000u) phase = 1;
        } else if (phase < 400) {   /* around the cut, specials, positives */
            int i = phase++;
            if (i < 100) { v = nextafterf(-86.0f, i % 2 ? 0.0f : -INFINITY); for (int k = 0; k < i / 2; k++) v = nextafterf(v, i % 2 ? 0.0f : -INFINITY); }
            else if (i < 110) { const float sp[10] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, -NAN, -86.0f, 1e-45f, -1e-45f, 88.0f}; v = sp[i - 100]; }
            else { rs = rs * 1664525u + 1013904223u; v = (float)(rs >> 8) * (1.0f / 16777216.0f) * 100.0f; }
        } else {
            break;
        }
        x[n++] = v;
        if (n == cap || (phase >= 400 && n)) {
            for (int part = 0; part < 2; part++) {   /* the whole buffer, then ragged pieces */
                size_t off = 0;
                while (off < n) {
                    size_t len = part ? 1 + (off * 7) % 37 : n - off;
                    if (len > n - off) len = n - off;
                    if (path >= DSV4_PATH_AVX2) dsv4_vt_exp_avx2(y2 + off, x + off, (int)len);
                    if (path >= DSV4_PATH_AVX512) dsv4_vt_exp_avx512(y5 + off, x + off, (int)len);
                    off += len;
                }
                for (size_t i = 0; i < n; i++) {
                    float ys = dsv4_vtower_softmax_exp(x[i]);
                    if (path >= DSV4_PATH_AVX2 && memcmp(&ys, &y2[i], 4) && bad2++ < 3)
                        printf("  avx2 exp(%a) = %a, scalar %a\n", (double)x[i], (double)y2[i], (double)ys);
                    if (path >= DSV4_PATH_AVX512 && memcmp(&ys, &y5[i], 4) && bad512++ < 3)
                        printf("  avx512 exp(%a) = %a, scalar %a\n", (double)x[i], (double)y5[i], (double)ys);
                }
            }
            total += n;
            n = 0;
        }
    }
    EXPECT(total > 18000000 && bad2 == 0 && bad512 == 0, "SIMD softmax exp: %zu (avx2) and %zu (avx512) of %zu values "
           "differ from the scalar one", bad2, bad512, total);
    printf("  SIMD softmax exp: %zu values, %s\n", total, path >= DSV4_PATH_AVX512 ? "avx2 and avx512" : "avx2");
    free(x); free(y2); free(y5);
#endif
}

/* The attention of the path in use (AVX-512: the dedicated loop of tower_avx512.c; AVX2: the vectorised exp) equals
 * the portable one (dsv4_linear_bf16x and the scalar exp) bit for bit: random BF16 q, k, v with some large keys
 * (scores below the exp's -86 cut), subnormal and zero values, values near 2^-124 in one head of every other case
 * (P.V products and sums below 2^-126, which the pair-lane order flushes), one head of every third case with large
 * scores close to each other (an F32 ulp of a score, i.e. the products' order, shows in P), at token counts that are not multiples of 4, 16, 32
 * or 64, head dims 32, 64 and 96, at 1 and 3 threads. */
static void attention_paths(void) {
    const int ns[] = {1, 3, 17, 64, 65, 130, 333}, hds[] = {64, 32, 96};
    uint32_t rs = 777;
    long cases = 0, bad = 0;
    for (int ih = 0; ih < 3; ih++)
        for (int in = 0; in < 7; in++) {
            int n = ns[in], hd = hds[ih], H = 2, npad = (n + 31) & ~31;
            size_t nq = (size_t)H * n * hd;
            uint16_t *q = malloc(nq * 2), *k = malloc(nq * 2), *vt = calloc((size_t)H * hd * npad, 2);
            float *o1 = malloc(nq * sizeof(float)), *o2 = malloc(nq * sizeof(float));
            for (size_t i = 0; i < nq; i++) {
                float a[2];
                for (int j = 0; j < 2; j++) {
                    rs = rs * 1664525u + 1013904223u;
                    a[j] = ((float)(rs >> 8) * (1.0f / 16777216.0f) * 2.0f - 1.0f) * 3.0f;
                    if ((rs & 1023) == 0) a[j] = 0.0f;
                    if ((rs & 1023) == 1) a[j] = 1e-39f;   /* BF16 subnormal: read as 0 by the pair-lane order */
                }
                if ((i / hd) % 7 == 3) a[1] *= 40.0f;   /* some keys far above the rest */
                if (in % 3 == 2 && i < (size_t)n * hd) {   /* head 0: keys = one large row + a few small steps:
                    * scores near 2^16 within tens of each other, inexact lane sums, so that one F32 ulp of a score
                    * (the order of the products) moves P and the output */
                    float base = (float)((int)((i % hd) * 37 % 61) - 30) * 0.1f;
                    a[1] = 256.0f * base + ((rs >> 12) % 16 == 0 ? 4.0f : 0.0f);
                    a[0] *= 1.3f;
                }
                q[i] = dsv4_f32_to_bf16(a[0]);
                k[i] = dsv4_f32_to_bf16(a[1]);
            }
            for (int h = 0; h < H; h++)
                for (int d = 0; d < hd; d++)
                    for (int j = 0; j < n; j++) {
                        rs = rs * 1664525u + 1013904223u;
                        float v = (float)(rs >> 8) * (1.0f / 8388608.0f) - 1.0f;
                        if (h == 1 && in % 2) v = ldexpf(v, -124);   /* products and sums in the flushed range */
                        vt[((size_t)h * hd + d) * npad + j] = dsv4_f32_to_bf16(v);
                    }
            for (int thr = 1; thr <= 3; thr += 2) {
                dsv4_set_threads(thr, NULL, 0);
                memset(o1, 0xff, nq * sizeof(float));
                memset(o2, 0x7f, nq * sizeof(float));
                int rc = dsv4_vtower_attention(o1, q, k, vt, n, H, hd, 1) | dsv4_vtower_attention(o2, q, k, vt, n, H, hd, 0);
                cases++;
                if (rc || memcmp(o1, o2, nq * sizeof(float))) {
                    if (bad++ < 3) printf("  attention n %d hd %d threads %d: the %s path's form differs from the portable one\n",
                                          n, hd, thr, dsv4_get_kernel_path());
                }
            }
            dsv4_set_threads(0, NULL, 0);
            free(q); free(k); free(vt); free(o1); free(o2);
        }
    EXPECT(bad == 0, "attention on the %s path: %ld of %ld cases differ from the portable form", dsv4_get_kernel_path(),
           bad, cases);
    printf("  attention (%s path) = portable form bit for bit: %ld cases\n", dsv4_get_kernel_path(), cases);
}

int main(void) {
    config_from_v41();
    softmax_exp_vectors();
    simd_exp_vectors();
    attention_paths();
    char *cj = test_read_file(GOLD "/config.json", NULL), *gj = test_read_file(GOLD "/tower.json", NULL);
    if (!cj || !gj) { test_fail("cannot read " GOLD "/config.json or tower.json"); return test_done(); }
    cJSON *cfg = cJSON_Parse(cj), *gold = cJSON_Parse(gj);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, "vision_config");
    const cJSON *tc = cJSON_GetObjectItemCaseSensitive(cfg, "text_config");
    dsv4_vtower_config vc = {cfg_int(v, "num_hidden_layers"), cfg_int(v, "hidden_size"), cfg_int(v, "num_attention_heads"),
                             cfg_int(v, "intermediate_size"), cfg_int(v, "patch_size"), cfg_int(v, "downsample_ratio"),
                             cfg_int(tc, "hidden_size"),
                             (float)cJSON_GetObjectItemCaseSensitive(v, "rope_theta")->valuedouble};
    char err[256];
    st_set *s = NULL;
    dsv4_vtower *t = NULL;
    if (st_open_file(&s, GOLD "/model.safetensors", err, sizeof err) || dsv4_vtower_load(&t, s, &vc, err, sizeof err)) {
        test_fail("load: %s", err);
    } else {
        const cJSON *cs;
        cJSON_ArrayForEach(cs, cJSON_GetObjectItemCaseSensitive(gold, "cases")) run_case(t, &vc, cs, cfg_int(v, "min_pixels"));
        bad_inputs(s, &vc);
    }
    dsv4_vtower_free(t);
    st_close(s);
    cJSON_Delete(cfg); cJSON_Delete(gold);
    free(cj); free(gj);
    return test_done();
}
