/* tests/test_forward_v41.c — the DeepSeek-V4.1 trunk forward (src/model/forward_v41.c) against the whole-model
 * goldens of tests/golden/v41/tiny (tools/reference/make_v41_goldens.py, float64 reference).
 *
 * For each of the three call schedules (one prefill; token by token; mixed chunks whose 1-token calls at even
 * positions leave the index-key slot on another layer's keys), the logits of every position must be within
 * golden.json's tolerance.rel x max|golden| (from the reference's float32 mode: F32-vs-float64 rounding flips
 * amplified by FP8 block scales and top-k choices); the prefill's state after every block is compared the same way
 * and reported. The schedules' goldens differ from each other by 1.6e-2 - 2e-2 (below the tolerance): what tells
 * them apart is the index selections of every index source per position, compared exactly (up to the number the
 * float32 mode itself moves). In the decode schedule, the DSpark draft after every step (the golden's token fed):
 * logits within tolerance.dspark_rel, confidence within dspark_confidence_abs, greedy draft ids.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testlib.h"
#include "model/model_v41.h"

static const char *TINY = "tests/golden/v41/tiny";   /* argv[1] overrides (cases made by hand, see below) */

static float d9[4096];   /* the decode schedule's DSpark draft logits after position 9 */
static int d9_token = -1;

int main(int argc, char **argv) {
    if (argc > 1) TINY = argv[1];   /* make_v41_goldens.py OUT --seed S [--default-config] */
    size_t len = 0;
    char gp[512];
    snprintf(gp, sizeof gp, "%s/golden.json", TINY);
    char *txt = test_read_file(gp, &len);
    cJSON *g = txt ? cJSON_Parse(txt) : NULL;
    free(txt);
    if (!g) { test_fail("cannot read %s", gp); return test_done(); }
    char err[1024] = "";
    dsv4_model *m = NULL;
    if (dsv4_model_bind_v41(&m, TINY, err, sizeof err)) { test_fail("bind: %s", err); cJSON_Delete(g); return test_done(); }
    const int V = m->cfg.vocab_size, NL = m->cfg.n_layers, hc = m->cfg.hc_mult, D = m->cfg.dim;
    const cJSON *jt = cJSON_GetObjectItem(g, "tokens");
    const int N = cJSON_GetArraySize(jt);
    int32_t *tok = malloc((size_t)N * sizeof(int32_t));
    for (int i = 0; i < N; i++) tok[i] = cJSON_GetArrayItem(jt, i)->valueint;
    const double rel = cJSON_GetObjectItem(cJSON_GetObjectItem(g, "tolerance"), "rel")->valuedouble;
    const cJSON *sch = cJSON_GetObjectItem(g, "schedules");
    const int NS = cJSON_GetArraySize(sch);
    float *want[3] = {0}, *got[3] = {0};
    float *blocks = malloc((size_t)NL * N * hc * D * sizeof(float));
    for (int si = 0; si < NS && si < 3; si++) {
        const cJSON *e = cJSON_GetArrayItem(sch, si);
        const char *name = cJSON_GetObjectItem(e, "name")->valuestring;
        char p[256];
        (void)p;
        snprintf(p, sizeof p, "%s/%s", TINY, cJSON_GetObjectItem(e, "logits")->valuestring);
        want[si] = test_read_f32(p, (size_t)N * V);
        got[si] = calloc((size_t)N * V, sizeof(float));
        dsv4_v41_state *s = NULL;
        if (!want[si] || dsv4_v41_state_open(m, N, N, &s, err, sizeof err)) {
            test_fail("%s: %s", name, err);
            continue;
        }
        const int K = m->cfg.index_topk, RS = 3 + K, cap = N * NL;
        int32_t *rec = calloc((size_t)cap * RS, sizeof(int32_t));
        dsv4_v41_record(s, rec, cap);
        const cJSON *calls = cJSON_GetObjectItem(e, "calls");
        /* DSpark drafts after each decode step (the golden's token fed, so both draft the same block) */
        const cJSON *ds = cJSON_GetObjectItem(e, "dspark");
        const int Bs = m->cfg.x.dspark_block_size;
        float *dwant = NULL, *dgot = NULL, dmax = 0;
        double ddiff = 0, cdiff = 0;
        int nd_ids = 0, ndr = 0, di = 0;
        if (ds) {
            ndr = cJSON_GetArraySize(cJSON_GetObjectItem(ds, "drafts"));
            snprintf(p, sizeof p, "%s/%s", TINY, cJSON_GetObjectItem(ds, "file")->valuestring);
            dwant = test_read_f32(p, (size_t)ndr * Bs * V);
            dgot = calloc((size_t)Bs * V, sizeof(float));
            if (dwant) dmax = (float)test_maxabs(dwant, (size_t)ndr * Bs * V);
        }
        int pos = 0, ok = 1;
        for (int k = 0; k < cJSON_GetArraySize(calls) && ok; k++) {
            int n = cJSON_GetArrayItem(calls, k)->valueint;
            int pre = strcmp(name, "prefill") == 0;
            if (dsv4_v41_eval(s, tok + pos, n, got[si] + (size_t)pos * V, pre ? blocks : NULL, err, sizeof err)) {
                test_fail("%s: eval at %d: %s", name, pos, err);
                ok = 0;
            }
            pos += n;
            if (dwant && di < ndr) {
                const cJSON *d = cJSON_GetArrayItem(cJSON_GetObjectItem(ds, "drafts"), di);
                if (cJSON_GetObjectItem(d, "position")->valueint != pos - 1) continue;
                int32_t ids[17];
                float conf[16];
                if (dsv4_v41_dspark(s, cJSON_GetObjectItem(d, "token")->valueint, dgot, ids, conf, err, sizeof err)) {
                    test_fail("%s: DSpark at %d: %s", name, pos - 1, err);
                    ok = 0;
                    break;
                }
                test_dspark_fold(d, dgot, dwant + (size_t)di * Bs * V, ids, conf, Bs, V, &ddiff, &nd_ids, &cdiff);
                if (pos - 1 == 9 && Bs * V <= (int)(sizeof d9 / sizeof d9[0])) {
                    memcpy(d9, dgot, (size_t)Bs * V * sizeof(float));
                    d9_token = cJSON_GetObjectItem(d, "token")->valueint;
                }
                di++;
            }
        }
        if (dwant) {
            const cJSON *tol = cJSON_GetObjectItem(g, "tolerance");
            double drel = cJSON_GetObjectItem(tol, "dspark_rel")->valuedouble;
            double cabs = cJSON_GetObjectItem(tol, "dspark_confidence_abs")->valuedouble;
            int allowed_ids = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(tol, "float32_mode"), name),
                                                  "dspark_ids_differing")->valueint;
            printf("  %s: DSpark %d drafts: logits within %.3e x max (tolerance %.3e), draft ids different in %d "
                   "(float32 mode: %d), confidence within %.3e (tolerance %.3e)\n", name, di, ddiff / dmax, drel, nd_ids,
                   allowed_ids, cdiff, cabs);
            CHECK(di == ndr, "%s: %d of %d drafts made", name, di, ndr);
            CHECK(ddiff <= drel * dmax, "%s: DSpark logits differ by %.3e x max", name, ddiff / dmax);
            CHECK(nd_ids <= allowed_ids, "%s: %d draft id sequences differ", name, nd_ids);
            CHECK(cdiff <= cabs, "%s: DSpark confidence differs by %.3e", name, cdiff);
        }
        free(dwant);
        free(dgot);
        /* index selections, exactly (the float32 mode moved float32_mode.selections_differing of them) */
        const cJSON *gsel = cJSON_GetObjectItem(e, "selections");
        const int allowed = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(g,
            "tolerance"), "float32_mode"), name), "selections_differing")->valueint;
        int nsame = 0, nd = test_selections_differ(rec, dsv4_v41_recorded(s), RS, gsel, name, &nsame);
        printf("  %s: index selections %d of %d equal (the float32 mode moved %d)\n", name, nsame,
               cJSON_GetArraySize(gsel), allowed);
        CHECK(nd <= allowed, "%s: %d selections differ (float32 mode: %d)", name, nd, allowed);
        free(rec);
        dsv4_v41_state_free(s);
        if (!ok) continue;
        const char *dump = getenv("DSV4_TEST_DUMP");   /* optional: the C logits for comparisons by hand */
        if (dump) {
            snprintf(p, sizeof p, "%s/%s.f32", dump, name);
            FILE *f = fopen(p, "wb");
            if (f) { fwrite(got[si], sizeof(float), (size_t)N * V, f); fclose(f); }
            if (strcmp(name, "prefill") == 0) {
                snprintf(p, sizeof p, "%s/prefill_blocks.f32", dump);
                if ((f = fopen(p, "wb"))) { fwrite(blocks, sizeof(float), (size_t)NL * N * hc * D, f); fclose(f); }
            }
        }
        double sc = test_maxabs(want[si], (size_t)N * V), d = test_maxdiff(got[si], want[si], (size_t)N * V);
        int same = 0;
        for (int t = 0; t < N; t++) {
            int a = 0, b = 0;
            for (int v = 1; v < V; v++) {
                if (got[si][(size_t)t * V + v] > got[si][(size_t)t * V + a]) a = v;
                if (want[si][(size_t)t * V + v] > want[si][(size_t)t * V + b]) b = v;
            }
            same += a == b;
        }
        printf("  %s: max |logit diff| / max |golden| = %.3e (tolerance %.3e), argmax equal on %d / %d positions\n",
               name, d / sc, rel, same, N);
        CHECK(d <= rel * sc, "%s: logits differ by %.3e x max (tolerance %.3e)", name, d / sc, rel);
        if (strcmp(name, "prefill") == 0) {
            const cJSON *bl = cJSON_GetObjectItem(e, "blocks");
            snprintf(p, sizeof p, "%s/%s", TINY, cJSON_GetObjectItem(bl, "file")->valuestring);
            float *wb = test_read_bf16(p, (size_t)NL * N * hc * D);
            for (int L = 0; wb && L < NL; L++) {
                const float *w = wb + (size_t)L * N * hc * D, *c = blocks + (size_t)L * N * hc * D;
                double bs = test_maxabs(w, (size_t)N * hc * D), bd = test_maxdiff(c, w, (size_t)N * hc * D);
                long ne = 0;
                for (size_t i = 0; i < (size_t)N * hc * D; i++) ne += c[i] != w[i];
                printf("    block %d: %ld of %d values differ, max %.3e x max\n", L, ne, N * hc * D, bd / bs);
                CHECK(bd <= rel * bs, "prefill block %d differs by %.3e x max", L, bd / bs);
            }
            free(wb);
        }
    }
    /* bad calls: refused with a message, nothing evaluated (the committed case: vocabulary 96, block 3) */
    if (argc <= 1) {
        dsv4_v41_state *s = NULL;
        float lg[4 * 96], dl[3 * 96], cf[3];
        int32_t ids[4], bad[2] = {5, 96}, ok2[2] = {5, 6};
        CHECK(dsv4_v41_state_open(m, 4, 2, &s, err, sizeof err) == 0, "open: %s", err);
        if (s) {
            CHECK(dsv4_v41_dspark(s, 5, dl, ids, cf, err, sizeof err) != 0 && strstr(err, "2 evaluated positions"),
                  "DSpark before 2 positions: %s", err);
            CHECK(dsv4_v41_eval(s, bad, 2, lg, NULL, err, sizeof err) != 0 && strstr(err, "out of range"),
                  "token 96 refused: %s", err);
            CHECK(dsv4_v41_eval(s, tok, 3, lg, NULL, err, sizeof err) != 0 && strstr(err, "chunk limit"),
                  "3 tokens over a chunk limit of 2: %s", err);
            CHECK(dsv4_v41_eval(s, ok2, 2, lg, NULL, err, sizeof err) == 0, "2 tokens: %s", err);
            CHECK(dsv4_v41_eval(s, ok2, 2, lg, NULL, err, sizeof err) == 0, "2 more: %s", err);
            CHECK(dsv4_v41_eval(s, ok2, 1, lg, NULL, err, sizeof err) != 0 && strstr(err, "context 4"),
                  "past the context: %s", err);
            CHECK(dsv4_v41_dspark(s, 96, dl, ids, cf, err, sizeof err) != 0, "DSpark token 96 refused");
            dsv4_v41_state_free(s);
        }
        CHECK(dsv4_v41_state_open(m, 4, 8, &s, err, sizeof err) != 0 && !s, "chunk above context refused");
        /* chunk limit 1 (window ring of 8 slots, wrapping; below the draft block): the logits of every position and
         * the draft after position 9 are bit-identical to the decode schedule's (ring of 39 slots, no wrap) */
        if (d9_token >= 0 && dsv4_v41_state_open(m, N, 1, &s, err, sizeof err) == 0) {
            int okc = 1, same = 0;
            for (int t = 0; t < N && okc; t++) {
                okc = dsv4_v41_eval(s, tok + t, 1, lg, NULL, err, sizeof err) == 0;
                same += okc && memcmp(lg, got[1] + (size_t)t * V, (size_t)V * sizeof(float)) == 0;
                if (t == 9) okc = okc && dsv4_v41_dspark(s, d9_token, dl, ids, cf, err, sizeof err) == 0;
            }
            CHECK(okc && same == N, "chunk limit 1: %d of %d positions bit-identical to the decode run (%s)", same, N,
                  err);
            CHECK(okc && memcmp(dl, d9, sizeof dl) == 0, "chunk limit 1: draft after position 9 differs (%s)", err);
            dsv4_v41_state_free(s);
        }
    }
    free(blocks);
    for (int i = 0; i < 3; i++) { free(want[i]); free(got[i]); }
    free(tok);
    dsv4_model_free(m);
    cJSON_Delete(g);
    return test_done();
}
