/* tests/test_csa2.c — CSA2 selection steps (src/model/csa2.h) against tools/reference/csa2_v41.py's cases
 * (tests/golden/v41/csa2/cases.json: random scores, exact ties, candidate-masked positions, short / long rows):
 * candidate-block masks and top-k index lists must be identical. tools/reference/official_oracle/v41_csa2.py
 * checks the Python semantics against DeepSeek's select_candidate_blocks and the indexer's top-k. */
#include "testlib.h"
#include "model/csa2.h"
#include <math.h>
#include "base/util.h"

static float *jfloats(const cJSON *a, size_t *n) {
    size_t k = (size_t)cJSON_GetArraySize(a), i = 0;
    float *v = malloc(sizeof(float) * (k ? k : 1));
    const cJSON *e;
    cJSON_ArrayForEach(e, a) v[i++] = (float)e->valuedouble;
    if (n) *n = k;
    return v;
}

/* The compressor against tools/reference/csa2_v41.py's float64 latents, under three call splits. */
static void test_compressor(void) {
    char *js = test_read_file("tests/golden/v41/csa2/compressor.json", NULL);
    cJSON *g = js ? cJSON_Parse(js) : NULL;
    free(js);
    if (!g) { test_fail("cannot read tests/golden/v41/csa2/compressor.json"); return; }
    const cJSON *cs;
    cJSON_ArrayForEach(cs, cJSON_GetObjectItem(g, "cases")) {
        const int R = cJSON_GetObjectItem(cs, "ratio")->valueint, n = cJSON_GetObjectItem(cs, "n")->valueint;
        const int dim = cJSON_GetObjectItem(cs, "dim")->valueint, hd = cJSON_GetObjectItem(cs, "head_dim")->valueint;
        float *x = jfloats(cJSON_GetObjectItem(cs, "x"), NULL), *wk = jfloats(cJSON_GetObjectItem(cs, "wkv"), NULL);
        float *wg = jfloats(cJSON_GetObjectItem(cs, "wgate"), NULL), *nw = jfloats(cJSON_GetObjectItem(cs, "norm"), NULL);
        size_t nl;
        float *want = jfloats(cJSON_GetObjectItem(cs, "latents"), &nl);
        uint16_t *wkb = malloc(sizeof(uint16_t) * (size_t)hd * dim);
        for (int i = 0; i < hd * dim; i++) wkb[i] = dsv4_f32_to_bf16(wk[i]);
        dsv4_csa2_compressor c = {R, dim, hd, {DSV4_W_F32, hd, dim, wk, NULL}, {DSV4_W_F32, hd, dim, wg, NULL}, nw,
                                  (float)cJSON_GetObjectItem(cs, "eps")->valuedouble};
        if (R == 1) c.wkv = (dsv4_wview){DSV4_W_BF16, hd, dim, wkb, NULL};
        float *scr = malloc(sizeof(float) * dsv4_csa2_compress_scratch(&c, n));
        float *kvs = malloc(sizeof(float) * (size_t)R * hd), *scs = malloc(sizeof(float) * (size_t)R * hd);
        float *out[3];
        static const int splits[3][12] = {{11}, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, {5, 1, 5}};
        int total[3];
        for (int sp = 0; sp < 3; sp++) {
            out[sp] = malloc(sizeof(float) * (size_t)n * hd);
            dsv4_csa2_compress_reset(&c, kvs, scs);
            int m = 0, bad_first = 0;
            for (int i = 0, t0 = 0; t0 < n; t0 += splits[sp][i++]) {
                int64_t first;
                int k = dsv4_csa2_compress(&c, kvs, scs, x + (size_t)t0 * dim, splits[sp][i], t0, out[sp] + (size_t)m * hd,
                                           &first, scr);
                if (k && first != m) bad_first++;
                m += k;
            }
            total[sp] = m;
            CHECK(bad_first == 0, "ratio %d split %d: group numbering", R, sp);
        }
        CHECK((size_t)total[0] * hd == nl && total[1] == total[0] && total[2] == total[0], "ratio %d: %d latents, want %zu",
              R, total[0], nl / hd);
        long same = 0, over = 0;
        for (size_t i = 0; i < nl && (size_t)total[0] * hd == nl; i++) {
            double d = fabs((double)out[0][i] - want[i]);
            int ex;
            frexp(fmax(fabs(want[i]), 0x1p-126), &ex);
            same += d == 0;
            over += d > ldexp(1.0, ex - 8);
        }
        printf("compressor ratio %d: %ld of %zu latent values identical to the float64 reference\n", R, same, nl);
        CHECK(over == 0 && same >= 0.95 * nl, "ratio %d: %ld values beyond 1 BF16 ulp, %ld identical", R, over, same);
        CHECK(memcmp(out[0], out[1], sizeof(float) * (size_t)total[0] * hd) == 0 &&
              memcmp(out[0], out[2], sizeof(float) * (size_t)total[0] * hd) == 0, "ratio %d: splits differ", R);
        for (int sp = 0; sp < 3; sp++) free(out[sp]);
        free(x); free(wk); free(wg); free(nw); free(want); free(wkb); free(scr); free(kvs); free(scs);
    }
    cJSON_Delete(g);
}

int main(void) {
    test_compressor();
    char *js = test_read_file("tests/golden/v41/csa2/cases.json", NULL);
    cJSON *g = js ? cJSON_Parse(js) : NULL;
    free(js);
    if (!g) { test_fail("cannot read tests/golden/v41/csa2/cases.json"); return test_done(); }
    int c = 0;
    const cJSON *cs;
    cJSON_ArrayForEach(cs, cJSON_GetObjectItem(g, "cases")) {
        int n = cJSON_GetObjectItem(cs, "n")->valueint, block = cJSON_GetObjectItem(cs, "block")->valueint;
        int tb = cJSON_GetObjectItem(cs, "topk_blocks")->valueint, vis = cJSON_GetObjectItem(cs, "visible")->valueint;
        int k = cJSON_GetObjectItem(cs, "k")->valueint;
        float *sc = malloc(sizeof(float) * n), *fs = malloc(sizeof(float) * (n + 1));
        int *is = malloc(sizeof(int) * (n + 1));
        uint8_t *keep = malloc((size_t)n);
        int32_t *idx = malloc(sizeof(int32_t) * (size_t)(k < n ? k : n));
        int i = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(cs, "scores")) sc[i++] = cJSON_IsNull(e) ? -INFINITY : (float)e->valuedouble;
        dsv4_csa2_candidates(sc, n, vis, tb, block, keep, fs, is);
        int bad = 0;
        i = 0;
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(cs, "keep")) bad += keep[i++] != e->valueint;
        EXPECT(bad == 0, "case %d (n %d, block %d, topk_blocks %d, visible %d): %d keep flags differ", c, n, block, tb,
               vis, bad);
        int kk = dsv4_csa2_topk(sc, n, vis, k, idx, is);
        const cJSON *wi = cJSON_GetObjectItem(cs, "idx");
        bad = kk != cJSON_GetArraySize(wi);
        for (i = 0; !bad && i < kk; i++) bad += idx[i] != cJSON_GetArrayItem(wi, i)->valueint;
        EXPECT(bad == 0, "case %d (n %d, visible %d, k %d): top-k differs", c, n, vis, k);
        free(sc); free(fs); free(is); free(keep); free(idx);
        c++;
    }
    CHECK(c == 60, "%d cases", c);
    cJSON_Delete(g);
    return test_done();
}
