/* tests/test_csa2.c — CSA2 selection steps (src/model/csa2.h) against tools/reference/csa2_v41.py's cases
 * (tests/golden/v41/csa2/cases.json: random scores, exact ties, candidate-masked positions, short / long rows):
 * candidate-block masks and top-k index lists must be identical. tools/reference/official_oracle/v41_csa2.py
 * checks the Python semantics against DeepSeek's select_candidate_blocks and the indexer's top-k. */
#include "testlib.h"
#include "model/csa2.h"
#include <math.h>

int main(void) {
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
