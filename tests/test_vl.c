/* tests/test_vl.c — images in the DeepSeek-V4.1 language model (include/dsv4_vision.h "images in the language
 * model"; src/vision/prompt.c, the image paths of src/model/forward_v41.c): dsv4_image_encode, dsv4_prompt_build,
 * dsv4_eval_prompt.
 *
 *  1. Whole-model goldens, tests/golden/v41/tiny-vl (tools/reference/make_v41_vl_goldens.py; its README): the tiny
 *     V4.1 of tests/golden/v41/tiny with a 2-block tower, two small images (a PNG and a JPEG) and a prompt of 17 text
 *     ids with two placeholders, expanded to 49 positions.
 *     - the plans and the expanded ids / roles equal the reference's exactly;
 *     - the aligner rows of the C tower from the image files vs the reference's float64-accumulated rows: max|diff|
 *       <= rows_noise.tolerance_abs (4 x the reference's own float32-vs-float64 tower difference) and <= 2^-5 max|ref|
 *       (tests/test_vision_tower.c's bound: F32 accumulation noise of the tower amplified by BF16 roundings);
 *     - every call schedule of golden.json (one prefill; chunks split inside both spans and between; a prefill through
 *       the second image then decode steps; one position per call), dsv4_eval_prompt with all = 1 and the
 *       reference's stored aligner rows as the IMAGE embeddings (dsv4_image_embed_from_rows: the language model
 *       alone): logits vs the reference's float32 mode (the official F32 order) within tolerance.rel_float32_mode
 *       (1e-5) x max (the C text forward equals that mode to 1.3e-7 x max; one BF16 flip or any mistake moves this
 *       tiny model by 1e-3 or more), vs the float64 golden within tolerance.rel x max, and every index selection
 *       equal to the reference's; in the decode schedule the DSpark draft after each step (its window reads the
 *       image positions' target-layer features) within dspark_tolerance, draft ids equal;
 *     - the same end to end (image files -> C tower -> logits) is only reported: the tower's own BF16 noise changes
 *       the routing and the index picks of this tiny random model (golden README; the reference's float32 tower is
 *       as far off);
 *     - all = 0 gives the last row of all = 1 bit for bit; chunked vs single-call agreement: C's chunks vs C's
 *       prefill differ as the reference's two schedules do, within 2 x tolerance.rel (the official index-key slot
 *       makes the V4.1 forward schedule-dependent by design; make_v41_goldens.py).
 *  2. Expansion, roles, keys: a text-only prompt keys its ids and evaluates bit-identically to dsv4_eval / dsv4_eval_all
 *     (a V4.1 model with vision, one without, and a V4 model); the same image encoded twice has the same digest and
 *     keys, a different image different keys at every span position, text keys never collide with image keys; the
 *     prompt keeps its own references (the caller's handles are freed right after building).
 *  3. API errors (nothing evaluated; messages checked): placeholders vs images both ways, images on a model without
 *     vision (encode and build), an image of another model, a token id out of range, NULL arguments, a range outside
 *     the prompt, the session not at `first`, a prompt of another model, logits NULL with all = 1.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "testlib.h"
#include "dsv4.h"
#include "dsv4_vision.h"
#include "vision/prompt.h"
#include "model/model.h"
#include "model/model_v41.h"

static const char *VL = "tests/golden/v41/tiny-vl";
static const char *TINY = "tests/golden/v41/tiny";
static const char *V4DIR = "tests/golden/window";

static int dsv4_model_vocab_size(const dsv4_model *m) {
    dsv4_model_info in;
    dsv4_model_get_info(m, &in);
    return in.vocab_size;
}

static int jint(const cJSON *o, const char *k) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(j) ? j->valueint : -999999;
}

static double rel_diff(const float *c, const float *r, size_t n) { return test_maxdiff(c, r, n) / test_maxabs(r, n); }

/* Evaluate prompt p through the calls of `calls` (nc entries) with all = 1 into out [len][V]; also checks all = 0 in a
 * second session against the last row of each call. Returns 0, or -1 after a failure. */
static int run_calls_rec(dsv4_model *m, const dsv4_prompt *p, const int *calls, int nc, float *out, const char *what,
                         const cJSON *gsel, const cJSON *dsp, const cJSON *dtol) {
    char err[512];
    const int V = dsv4_model_vocab_size(m), N = dsv4_prompt_len(p);
    dsv4_session *s = NULL, *s2 = NULL;
    if (dsv4_session_open(&s, m, N + 8, err, sizeof err) || dsv4_session_open(&s2, m, N + 8, err, sizeof err)) {
        test_fail("%s: session: %s", what, err);
        dsv4_session_free(s);
        return -1;
    }
    float *last = malloc((size_t)V * sizeof(float));
    int pos = 0, rc = 0, bit = 1;
    const int RS = 3 + m->cfg.index_topk, cap = N * m->cfg.n_layers;
    int32_t *rec = gsel ? malloc((size_t)cap * RS * sizeof(int32_t)) : NULL;
    if (rec) dsv4_v41_record(s->v41, rec, cap);   /* the index selections of every index source (internal) */
    /* DSpark drafts after some calls (golden "dspark": position, fed token, greedy ids, confidence; logits file) */
    const int Bs = m->cfg.x.dspark_block_size;
    const cJSON *drafts = dsp ? cJSON_GetObjectItem(dsp, "drafts") : NULL;
    float *dwant = NULL, *dgot = NULL;
    double ddiff = 0, dmax = 0, cdiff = 0;
    int di = 0, nd_ids = 0;
    if (drafts) {
        char dp[512];
        snprintf(dp, sizeof dp, "%s/%s", VL, cJSON_GetObjectItem(dsp, "file")->valuestring);
        dwant = test_read_f32(dp, (size_t)cJSON_GetArraySize(drafts) * Bs * V);
        dgot = malloc((size_t)Bs * V * sizeof(float));
        if (!dwant) test_fail("cannot read %s", dp);
        else dmax = test_maxabs(dwant, (size_t)cJSON_GetArraySize(drafts) * Bs * V);
    }
    for (int i = 0; i < nc && !rc; i++) {
        if (dsv4_eval_prompt(s, p, pos, calls[i], out + (size_t)pos * V, 1, err, sizeof err) ||
            dsv4_eval_prompt(s2, p, pos, calls[i], last, 0, err, sizeof err)) {
            test_fail("%s: call %d [%d, +%d): %s", what, i, pos, calls[i], err);
            rc = -1;
            break;
        }
        pos += calls[i];
        bit &= !memcmp(last, out + (size_t)(pos - 1) * V, (size_t)V * sizeof(float));
        for (int k = 0; dwant && k < cJSON_GetArraySize(drafts); k++) {
            const cJSON *d = cJSON_GetArrayItem(drafts, k);
            if (cJSON_GetObjectItem(d, "position")->valueint != pos - 1) continue;
            int32_t ids[17];
            float conf[16];
            if (Bs > 16 || dsv4_v41_dspark(s->v41, cJSON_GetObjectItem(d, "token")->valueint, dgot, ids, conf, err,
                                           sizeof err)) {
                test_fail("%s: DSpark after position %d: %s", what, pos - 1, err);
                break;
            }
            test_dspark_fold(d, dgot, dwant + (size_t)k * Bs * V, ids, conf, Bs, V, &ddiff, &nd_ids, &cdiff);
            di++;
        }
        EXPECT(dsv4_session_pos(s) == pos, "%s: session at %d after call %d, want %d", what, dsv4_session_pos(s), i,
               pos);
    }
    if (!rc) EXPECT(bit, "%s: all = 0 differs from the last row of all = 1", what);
    if (rec && !rc) {   /* index selections vs the reference's (the float32 mode picks the same in every schedule) */
        int nsame = 0, nd = test_selections_differ(rec, dsv4_v41_recorded(s->v41), RS, gsel, what, &nsame);
        CHECK(nd == 0, "%s: %d of %d index selections differ from the reference's", what, nd,
              cJSON_GetArraySize(gsel));
        printf("  %s: index selections %d of %d equal to the reference's\n", what, nsame, cJSON_GetArraySize(gsel));
    }
    if (dwant && !rc) {
        const double drel = cJSON_GetObjectItem(dtol, "rel")->valuedouble,
                     cabs = cJSON_GetObjectItem(dtol, "confidence_abs")->valuedouble;
        CHECK(di == cJSON_GetArraySize(drafts), "%s: %d of %d DSpark drafts run", what, di, cJSON_GetArraySize(drafts));
        CHECK(ddiff <= drel * dmax, "%s: DSpark logits %.3g x max > %.3g", what, ddiff / dmax, drel);
        CHECK(nd_ids == 0, "%s: %d DSpark draft id chains differ", what, nd_ids);
        CHECK(cdiff <= cabs, "%s: DSpark confidence off by %.3g > %.3g", what, cdiff, cabs);
        printf("  %s: DSpark %d drafts after image spans: logits within %.3g x max (tolerance %.3g), ids equal in %d, "
               "confidence within %.3g (tolerance %.3g)\n", what, di, ddiff / dmax, drel, di - nd_ids, cdiff, cabs);
    }
    free(dwant);
    free(dgot);
    free(rec);
    free(last);
    dsv4_session_free(s);
    dsv4_session_free(s2);
    return rc;
}

static int run_calls(dsv4_model *m, const dsv4_prompt *p, const int *calls, int nc, float *out, const char *what) {
    return run_calls_rec(m, p, calls, nc, out, what, NULL, NULL, NULL);
}

/* ---------------------------------------------------------------- 1. goldens */

static void goldens(dsv4_model *m) {
    char path[512], err[512] = "";
    snprintf(path, sizeof path, "%s/golden.json", VL);
    size_t len = 0;
    char *txt = test_read_file(path, &len);
    cJSON *g = txt ? cJSON_Parse(txt) : NULL;
    free(txt);
    if (!g) { test_fail("cannot read %s", path); return; }
    const int V = dsv4_model_vocab_size(m);
    CHECK(dsv4_model_has_vision(m) == 1, "tiny-vl has vision");
    CHECK(dsv4_model_image_token(m) == jint(g, "image_token_id"), "image token %d, golden %d",
          (int)dsv4_model_image_token(m), jint(g, "image_token_id"));
    const cJSON *jimgs = cJSON_GetObjectItem(g, "images");
    const int NI = cJSON_GetArraySize(jimgs);
    dsv4_image_embed *emb[4] = {0}, *gold[4] = {0};
    for (int k = 0; k < NI && k < 4; k++) {
        const cJSON *ji = cJSON_GetArrayItem(jimgs, k);
        const char *file = cJSON_GetObjectItem(ji, "file")->valuestring;
        snprintf(path, sizeof path, "%s/%s", VL, file);
        dsv4_image *im = NULL;
        if (dsv4_image_from_file(&im, path, err, sizeof err)) { test_fail("%s", err); continue; }
        int rc = dsv4_image_encode(m, im, &emb[k], err, sizeof err);
        dsv4_image_free(im);
        if (rc) { test_fail("encode %s: %s", file, err); continue; }
        const dsv4_image_plan *pl = dsv4_image_embed_plan(emb[k]);
        EXPECT(pl->n_vit_h == jint(ji, "n_vit_h") && pl->n_vit_w == jint(ji, "n_vit_w") &&
                   pl->n_llm_h == jint(ji, "n_llm_h") && pl->n_llm_w == jint(ji, "n_llm_w") &&
                   pl->n_tokens == jint(ji, "n_tokens") && dsv4_image_embed_positions(emb[k]) == pl->n_tokens &&
                   pl->width == jint(ji, "width") && pl->height == jint(ji, "height"),
               "%s: plan %dx%d patches, %dx%d cells, %d positions, %dx%d px differs from the golden's", file,
               pl->n_vit_h, pl->n_vit_w, pl->n_llm_h, pl->n_llm_w, pl->n_tokens, pl->width, pl->height);
        int nr = 0, D = 0;
        const float *rows = dsv4_image_embed_rows(emb[k], &nr, &D);
        snprintf(path, sizeof path, "%s/%s", VL, cJSON_GetObjectItem(ji, "rows")->valuestring);
        float *ref = test_read_bf16(path, (size_t)nr * D);
        if (!ref) { test_fail("cannot read %s (%d x %d)", path, nr, D); continue; }
        double md = test_maxdiff(rows, ref, (size_t)nr * D), mr = test_maxabs(ref, (size_t)nr * D);
        long nd = 0;
        for (size_t i = 0; i < (size_t)nr * D; i++) nd += rows[i] != ref[i];
        const cJSON *ta = cJSON_GetObjectItem(cJSON_GetObjectItem(g, "rows_noise"), "tolerance_abs");
        EXPECT(cJSON_IsNumber(ta) && md <= ta->valuedouble && md <= ldexp(mr, -5), "%s: aligner rows max|diff| %.4g > "
               "rows_noise.tolerance_abs %.4g or 2^-5 x max|ref| %.4g", file, md, cJSON_IsNumber(ta) ? ta->valuedouble : 0, mr);
        printf("  %s: %d x %d cells, aligner rows vs reference: max|diff| %.3g = %.3g x max|ref|, %ld of %d values "
               "differ\n", file, pl->n_llm_h, pl->n_llm_w, md, md / mr, nd, nr * D);
        if (dsv4_image_embed_from_rows(m, pl, ref, &gold[k], err, sizeof err)) test_fail("from_rows: %s", err);
        free(ref);
    }
    const cJSON *jids = cJSON_GetObjectItem(g, "ids"), *jx = cJSON_GetObjectItem(g, "expanded_ids"),
                *jr = cJSON_GetObjectItem(g, "expanded_roles");
    const int n = cJSON_GetArraySize(jids), N = cJSON_GetArraySize(jx);
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    for (int i = 0; i < n; i++) ids[i] = cJSON_GetArrayItem(jids, i)->valueint;
    dsv4_prompt *pc = NULL, *pg = NULL;
    if (NI < 1 || NI > 4 || !emb[NI - 1] || !gold[NI - 1] ||
        dsv4_prompt_build(&pc, m, ids, n, emb, NI, err, sizeof err) ||
        dsv4_prompt_build(&pg, m, ids, n, gold, NI, err, sizeof err)) {
        test_fail("prompt: %s", err);
        goto out;
    }
    /* the prompt holds its own references: drop the caller's now (ASan sees any use after free) */
    for (int k = 0; k < NI; k++) {
        dsv4_image_embed_free(emb[k]);
        dsv4_image_embed_free(gold[k]);
        emb[k] = gold[k] = NULL;
    }
    CHECK(dsv4_prompt_len(pc) == N && N == jint(g, "n_positions"), "expanded length %d, golden %d", dsv4_prompt_len(pc),
          N);
    int same = dsv4_prompt_len(pc) == N;
    for (int i = 0; same && i < N; i++)
        same = dsv4_prompt_ids(pc)[i] == cJSON_GetArrayItem(jx, i)->valueint &&
               dsv4_prompt_role(pc, i) == cJSON_GetArrayItem(jr, i)->valueint;
    CHECK(same, "expanded ids and roles equal the reference's (%d positions)", N);
    const cJSON *tol = cJSON_GetObjectItem(g, "tolerance");
    const double rel = cJSON_GetObjectItem(tol, "rel")->valuedouble,
                 rel32 = cJSON_GetObjectItem(tol, "rel_float32_mode")->valuedouble;
    const cJSON *sch = cJSON_GetObjectItem(g, "schedules");
    const int NS = cJSON_GetArraySize(sch);
    float *lc[8] = {0}, *lr[8] = {0};
    int ip = -1, ic = -1;
    for (int si = 0; si < NS && si < 8; si++) {
        const cJSON *e = cJSON_GetArrayItem(sch, si), *jc = cJSON_GetObjectItem(e, "calls");
        const char *name = cJSON_GetObjectItem(e, "name")->valuestring;
        if (!strcmp(name, "prefill")) ip = si;
        if (!strcmp(name, "chunks")) ic = si;
        const int nc = cJSON_GetArraySize(jc);
        int *calls = malloc((size_t)nc * sizeof(int));
        for (int i = 0; i < nc; i++) calls[i] = cJSON_GetArrayItem(jc, i)->valueint;
        snprintf(path, sizeof path, "%s/%s", VL, cJSON_GetObjectItem(e, "logits")->valuestring);
        float *want = test_read_f32(path, (size_t)N * V);
        snprintf(path, sizeof path, "%s/%s", VL, cJSON_GetObjectItem(e, "logits_float32_mode")->valuestring);
        float *want32 = test_read_f32(path, (size_t)N * V);
        float *lg = lr[si] = malloc((size_t)N * V * sizeof(float));
        lc[si] = malloc((size_t)N * V * sizeof(float));
        if (!want || !want32) test_fail("cannot read the logits of schedule %s", name);
        if (want && want32 && !run_calls_rec(m, pg, calls, nc, lg, name, cJSON_GetObjectItem(e, "selections"),
                                                cJSON_GetObjectItem(e, "dspark"), cJSON_GetObjectItem(g, "dspark_tolerance"))) {
            double d = rel_diff(lg, want, (size_t)N * V), d32 = rel_diff(lg, want32, (size_t)N * V);
            EXPECT(d32 <= rel32, "%s (reference rows): max|diff| %.3g x max|float32 mode| > tolerance %.3g", name, d32,
                   rel32);
            EXPECT(d <= rel, "%s (reference rows): max|diff| %.3g x max|golden| > tolerance %.3g", name, d, rel);
            printf("  %s, %d calls, the reference's aligner rows: max|logit diff| = %.3g x max vs the float32 mode "
                   "(tolerance %.3g), %.3g x max vs float64 (tolerance %.3g)\n", name, nc, d32, rel32, d, rel);
        }
        /* end to end (the image files through the C tower): the tower's BF16 noise changes this tiny random model's
         * routing and index picks (golden.json rel_end_to_end, README): reported, the tower is checked above */
        if (want && !run_calls(m, pc, calls, nc, lc[si], name))
            printf("  %s, image files through the C tower: max|logit diff| = %.3g x max|golden| (reported only: the "
                   "reference's own float32 tower gives %.3g)\n", name, rel_diff(lc[si], want, (size_t)N * V),
                   cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(tol, "float32_mode"), name),
                                       "end_to_end_max_rel")->valuedouble);
        free(want);
        free(want32);
        free(calls);
    }
    if (ip >= 0 && ic >= 0 && lr[ip] && lr[ic]) {
        const cJSON *bw = cJSON_GetObjectItem(cJSON_GetObjectItem(g, "between_schedules"), "values");
        const cJSON *jb = cJSON_GetObjectItem(bw, "chunks-prefill");
        double ref_between = cJSON_IsNumber(jb) ? jb->valuedouble : 0;
        double d = rel_diff(lr[ic], lr[ip], (size_t)N * V), de = rel_diff(lc[ic], lc[ip], (size_t)N * V);
        EXPECT(cJSON_IsNumber(jb) && fabs(d - ref_between) <= 2 * rel, "chunks vs prefill in C: %.3g x max|prefill|, "
               "the reference's %.3g (allowed: +- 2 x %.3g)", d, ref_between, rel);
        printf("  chunks (split inside both spans) vs one prefill, C: %.3g x max with the reference's rows, %.3g with "
               "the C tower's (the reference's two schedules: %.3g)\n", d, de, ref_between);
    }
    for (int si = 0; si < 8; si++) {
        free(lc[si]);
        free(lr[si]);
    }
out:
    for (int k = 0; k < 4; k++) {
        dsv4_image_embed_free(emb[k]);
        dsv4_image_embed_free(gold[k]);
    }
    dsv4_prompt_free(pc);
    dsv4_prompt_free(pg);
    free(ids);
    cJSON_Delete(g);
}

/* ---------------------------------------------------------------- 2. expansion, keys, text-only prompts */

/* A synthetic image: w x h RGB, a pattern from seed. */
static dsv4_image *synth(int w, int h, int seed) {
    uint8_t *px = malloc((size_t)w * h * 3);
    for (int i = 0; i < w * h * 3; i++) px[i] = (uint8_t)((i * (7 + seed) + seed * 31 + (i / (3 * w)) * 5) & 255);
    dsv4_image *im = NULL;
    char err[256];
    if (dsv4_image_from_rgb(&im, w, h, px, err, sizeof err)) test_fail("from_rgb: %s", err);
    free(px);
    return im;
}

/* A text-only prompt on model dir evaluates bit-identically to dsv4_eval_all / dsv4_eval; keys = ids. */
static void text_only(const char *dir) {
    char err[512];
    dsv4_model *m = NULL;
    if (dsv4_model_load(&m, dir, err, sizeof err)) { test_fail("load %s: %s", dir, err); return; }
    const int V = dsv4_model_vocab_size(m), n = 12;
    int32_t ids[12];
    for (int i = 0; i < n; i++) ids[i] = (int32_t)((i * 37 + 5) % V);
    dsv4_prompt *p = NULL;
    if (dsv4_prompt_build(&p, m, ids, n, NULL, 0, err, sizeof err)) {
        test_fail("%s: text prompt: %s", dir, err);
        dsv4_model_free(m);
        return;
    }
    int keys = dsv4_prompt_len(p) == n;
    for (int i = 0; keys && i < n; i++)
        keys = dsv4_prompt_key(p, i) == (uint64_t)ids[i] && dsv4_prompt_role(p, i) == DSV4_TOKEN_TEXT;
    CHECK(keys, "%s: text-only prompt: %d positions, keys = ids, roles TEXT", dir, dsv4_prompt_len(p));
    float *a = malloc((size_t)n * V * sizeof(float)), *b = malloc((size_t)n * V * sizeof(float));
    float *la = malloc((size_t)V * sizeof(float)), *lb = malloc((size_t)V * sizeof(float));
    dsv4_session *s1 = NULL, *s2 = NULL;
    int ok = !dsv4_session_open(&s1, m, 64, err, sizeof err) && !dsv4_session_open(&s2, m, 64, err, sizeof err) &&
             !dsv4_eval_prompt(s1, p, 0, 5, a, 1, err, sizeof err) &&
             !dsv4_eval_prompt(s1, p, 5, n - 5, a + (size_t)5 * V, 1, err, sizeof err) &&
             !dsv4_eval_all(s2, ids, 5, b, err, sizeof err) &&
             !dsv4_eval_all(s2, ids + 5, n - 5, b + (size_t)5 * V, err, sizeof err);
    CHECK(ok && !memcmp(a, b, (size_t)n * V * sizeof(float)), "%s: text-only dsv4_eval_prompt (all = 1) = dsv4_eval_all "
          "bit for bit %s", dir, ok ? "" : err);
    dsv4_session_reset(s1);
    dsv4_session_reset(s2);
    ok = !dsv4_eval_prompt(s1, p, 0, n, la, 0, err, sizeof err) && !dsv4_eval(s2, ids, n, lb, err, sizeof err);
    CHECK(ok && !memcmp(la, lb, (size_t)V * sizeof(float)), "%s: text-only dsv4_eval_prompt (all = 0) = dsv4_eval %s",
          dir, ok ? "" : err);
    dsv4_session_free(s1);
    dsv4_session_free(s2);
    free(a); free(b); free(la); free(lb);
    dsv4_prompt_free(p);
    dsv4_model_free(m);
}

static void expansion_and_keys(dsv4_model *m) {
    char err[512];
    const int32_t P = dsv4_model_image_token(m);
    dsv4_image *i1 = synth(40, 30, 1), *i2 = synth(40, 30, 2), *i3 = synth(20, 60, 3);
    dsv4_image_embed *e1 = NULL, *e1b = NULL, *e2 = NULL, *e3 = NULL;
    int rc = dsv4_image_encode(m, i1, &e1, err, sizeof err) || dsv4_image_encode(m, i1, &e1b, err, sizeof err) ||
             dsv4_image_encode(m, i2, &e2, err, sizeof err) || dsv4_image_encode(m, i3, &e3, err, sizeof err);
    dsv4_image_free(i1); dsv4_image_free(i2); dsv4_image_free(i3);
    if (rc) { test_fail("encode: %s", err); goto out; }
    CHECK(dsv4_image_embed_digest(e1) == dsv4_image_embed_digest(e1b), "same image, same digest");
    CHECK(dsv4_image_embed_digest(e1) != dsv4_image_embed_digest(e2), "different images, different digests");
    const dsv4_vision_params vp = dsv4_model_vision_params(m);
    CHECK(vp.patch_size == 14 && vp.downsample_ratio == 3 && vp.min_pixels == 15000 && vp.max_image_tokens == 1024,
          "vision params of tiny-vl: %d %d %lld %d", vp.patch_size, vp.downsample_ratio, (long long)vp.min_pixels,
          vp.max_image_tokens);
    /* layout: text, image 3 (tall), text, image 1 */
    int32_t ids[] = {7, 8, P, 9, P, 10};
    dsv4_image_embed *a[2] = {e3, e1}, *b[2] = {e3, e1b}, *c[2] = {e3, e2};
    dsv4_prompt *pa = NULL, *pb = NULL, *pc = NULL;
    if (dsv4_prompt_build(&pa, m, ids, 6, a, 2, err, sizeof err) || dsv4_prompt_build(&pb, m, ids, 6, b, 2, err, sizeof err) ||
        dsv4_prompt_build(&pc, m, ids, 6, c, 2, err, sizeof err)) {
        test_fail("build: %s", err);
        goto out2;
    }
    const dsv4_image_plan *p3 = dsv4_image_embed_plan(e3), *p1 = dsv4_image_embed_plan(e1);
    const int n3 = p3->n_tokens, n1 = p1->n_tokens, N = 4 + n3 + n1;
    CHECK(dsv4_prompt_len(pa) == N && n3 == p3->n_llm_h * (p3->n_llm_w + 1) + 2, "expanded length %d = 4 + %d + %d",
          dsv4_prompt_len(pa), n3, n1);
    {   /* weights-free (dsv4 render): config parameters, placeholder and expanded length as from the model */
        dsv4_vision_params cp;
        int32_t ctok = -1;
        dsv4_image_plan pl[2] = {*p3, *p1};
        int rc2 = dsv4_config_vision(VL, &cp, &ctok, err, sizeof err);
        CHECK(!rc2 && test_same_vision_params(&cp, &vp) && ctok == P && dsv4_prompt_expanded_len(&cp, ids, 6, ctok, pl, 2) == N &&
                  dsv4_prompt_expanded_len(&cp, ids, 6, ctok, pl, 1) == -1,
              "dsv4_config_vision / dsv4_prompt_expanded_len on tiny-vl (%s)", rc2 ? err : "ok");
        CHECK(dsv4_config_vision("tests/golden/v41/tiny-tok", &cp, &ctok, err, sizeof err) == -1 &&
                  strstr(err, "no vision tower"), "dsv4_config_vision without vision keys: %s", err);
    }
    /* the expected roles, written out */
    int good = 1, o = 0;
    int want_ids[512], want_roles[512];
    want_ids[o] = 7; want_roles[o++] = -1;
    want_ids[o] = 8; want_roles[o++] = -1;
    const dsv4_image_plan *pl[2] = {p3, p1};
    for (int k = 0; k < 2 && N < 512; k++) {
        want_ids[o] = P; want_roles[o++] = DSV4_TOKEN_IMAGE_START;
        for (int r = 0; r < pl[k]->n_llm_h; r++) {
            for (int q = 0; q < pl[k]->n_llm_w; q++) { want_ids[o] = P; want_roles[o++] = DSV4_TOKEN_IMAGE; }
            want_ids[o] = P; want_roles[o++] = DSV4_TOKEN_IMAGE_NEW_LINE;
        }
        want_ids[o] = P; want_roles[o++] = DSV4_TOKEN_IMAGE_END;
        if (k == 0) { want_ids[o] = 9; want_roles[o++] = -1; }
    }
    want_ids[o] = 10; want_roles[o++] = -1;
    good = o == N && N < 512;
    for (int i = 0; good && i < N; i++)
        good = dsv4_prompt_ids(pa)[i] == want_ids[i] && dsv4_prompt_role(pa, i) == want_roles[i];
    CHECK(good, "expansion: ids and roles of [7 8 <img 20x60> 9 <img 40x30> 10] (%d positions)", N);
    CHECK(dsv4_prompt_role(pa, -1) == DSV4_TOKEN_TEXT && dsv4_prompt_role(pa, N) == DSV4_TOKEN_TEXT,
          "role out of range is TEXT");
    int same_b = 1, diff_c = 1, first_span_same = 1, tagged = 1, distinct = 1;
    for (int i = 0; i < N; i++) {
        same_b &= dsv4_prompt_key(pa, i) == dsv4_prompt_key(pb, i);
        const int in2 = i >= 3 + n3 && i < N - 1;   /* the second span (after text 9) */
        if (in2) diff_c &= dsv4_prompt_key(pa, i) != dsv4_prompt_key(pc, i);
        else first_span_same &= dsv4_prompt_key(pa, i) == dsv4_prompt_key(pc, i);
        tagged &= (dsv4_prompt_role(pa, i) >= 0) == (dsv4_prompt_key(pa, i) >> 63 == 1);
        if (i > 0 && dsv4_prompt_role(pa, i) >= 0 && dsv4_prompt_key(pa, i) == dsv4_prompt_key(pa, i - 1)) distinct = 0;
    }
    CHECK(same_b, "keys equal for the same image encoded twice");
    CHECK(diff_c, "keys differ at every position of a span of a different image");
    CHECK(first_span_same, "keys equal elsewhere (text and the shared first image)");
    CHECK(tagged && distinct, "image keys have the top bit (never a text id) and differ along the span");
    /* eval with images in one call and in calls of 1, 2, 3 ... : logits agree (chunk-split inside spans) */
    const int V = dsv4_model_vocab_size(m);
    float *x = malloc((size_t)N * V * sizeof(float)), *y = malloc((size_t)N * V * sizeof(float));
    int calls[64], nc = 0, sum = 0;
    for (int k = 1; sum < N && nc < 64; k = k % 7 + 1) { calls[nc] = sum + k > N ? N - sum : k; sum += calls[nc++]; }
    int one[1] = {N};
    if (!run_calls(m, pa, one, 1, x, "synthetic prefill") && !run_calls(m, pa, calls, nc, y, "synthetic chunks")) {
        double d = rel_diff(y, x, (size_t)N * V);
        int fin = 1;
        for (size_t i = 0; i < (size_t)N * V; i++) fin &= isfinite(x[i]) && isfinite(y[i]);
        CHECK(fin, "synthetic images: finite logits");
        printf("  synthetic prompt (%d positions, 2 images), %d calls of 1..7 vs one call: %.3g x max\n", N, nc, d);
    }
    free(x);
    free(y);
out2:
    dsv4_prompt_free(pa);
    dsv4_prompt_free(pb);
    dsv4_prompt_free(pc);
out:
    dsv4_image_embed_free(e1);
    dsv4_image_embed_free(e1b);
    dsv4_image_embed_free(e2);
    dsv4_image_embed_free(e3);
}

/* ---------------------------------------------------------------- 3. errors */

static int has(const char *err, const char *what) { return strstr(err, what) != NULL; }

static void errors(dsv4_model *m) {
    char err[512];
    dsv4_model *mt = NULL, *m2 = NULL;
    if (dsv4_model_load(&mt, TINY, err, sizeof err) || dsv4_model_load(&m2, VL, err, sizeof err)) {
        test_fail("load: %s", err);
        dsv4_model_free(mt);
        return;
    }
    const int32_t P = dsv4_model_image_token(m);
    CHECK(dsv4_model_has_vision(mt) == 0 && dsv4_model_image_token(mt) == -1 && dsv4_model_has_vision(NULL) == 0,
          "a model without vision says so");
    dsv4_image *im = synth(30, 30, 4);
    dsv4_image_embed *e = NULL, *ex = NULL, *eo = NULL;
    int rc = dsv4_image_encode(mt, im, &ex, err, sizeof err);
    CHECK(rc == -1 && !ex && has(err, "no vision tower") && has(err, TINY), "encode on a model without vision: %s", err);
    rc = dsv4_image_encode(m, NULL, &e, err, sizeof err);
    CHECK(rc == -1 && !e && has(err, "NULL"), "encode of NULL: %s", err);
    if (dsv4_image_encode(m, im, &e, err, sizeof err) || dsv4_image_encode(m2, im, &eo, err, sizeof err)) {
        test_fail("encode: %s", err);
        goto out;
    }
    dsv4_prompt *p = NULL;
    int32_t two[] = {5, P, 6, P}, none[] = {5, 6, 7}, one[] = {5, P, 6};
    dsv4_image_embed *ee[2] = {e, e};
    rc = dsv4_prompt_build(&p, m, two, 4, ee, 1, err, sizeof err);
    CHECK(rc == -1 && !p && has(err, "2 image placeholders but 1 image was given"), "more placeholders: %s", err);
    rc = dsv4_prompt_build(&p, m, none, 3, ee, 1, err, sizeof err);
    CHECK(rc == -1 && !p && has(err, "0 image placeholders but 1 image was given"), "fewer placeholders: %s", err);
    rc = dsv4_prompt_build(&p, m, one, 3, ee, 2, err, sizeof err);
    CHECK(rc == -1 && !p && has(err, "1 image placeholder but 2 images were given"), "one placeholder, two: %s", err);
    rc = dsv4_prompt_build(&p, m, one, 3, NULL, 0, err, sizeof err);
    CHECK(rc == -1 && !p && has(err, "1 image placeholder but 0 images were given"), "placeholder, no image: %s", err);
    rc = dsv4_prompt_build(&p, mt, one, 3, ee, 1, err, sizeof err);
    CHECK(rc == -1 && !p && has(err, "no vision tower"), "images for a model without vision: %s", err);
    dsv4_image_embed *eoa[1] = {eo};
    rc = dsv4_prompt_build(&p, m, one, 3, eoa, 1, err, sizeof err);
    CHECK(rc == -1 && !p && has(err, "another model"), "an image of another model: %s", err);
    int32_t bad[] = {5, dsv4_model_vocab_size(m), 6};
    rc = dsv4_prompt_build(&p, m, bad, 3, NULL, 0, err, sizeof err);
    CHECK(rc == -1 && !p && has(err, "index 1") && has(err, "out of range"), "token out of range: %s", err);
    rc = dsv4_prompt_build(&p, m, NULL, 3, NULL, 0, err, sizeof err);
    CHECK(rc == -1 && !p, "NULL ids: %s", err);
    rc = dsv4_prompt_build(&p, m, one, 0, NULL, 0, err, sizeof err);
    CHECK(rc == -1 && !p, "n = 0: %s", err);
    ee[1] = NULL;
    rc = dsv4_prompt_build(&p, m, two, 4, ee, 2, err, sizeof err);
    CHECK(rc == -1 && !p && has(err, "image 1 is NULL"), "NULL image: %s", err);
    /* a text model's prompt may contain the placeholder id: it is an ordinary token there */
    rc = dsv4_prompt_build(&p, mt, one, 3, NULL, 0, err, sizeof err);
    CHECK(rc == 0 && dsv4_prompt_len(p) == 3, "the placeholder id on a model without vision is text: %s", rc ? err : "");
    dsv4_prompt_free(p);
    p = NULL;
    /* evaluation errors */
    if (dsv4_prompt_build(&p, m, one, 3, ee, 1, err, sizeof err)) { test_fail("build: %s", err); goto out; }
    const int N = dsv4_prompt_len(p), V = dsv4_model_vocab_size(m);
    float *lg = malloc((size_t)N * V * sizeof(float));
    dsv4_session *s = NULL, *st = NULL, *s2 = NULL;
    if (dsv4_session_open(&s, m, 64, err, sizeof err) || dsv4_session_open(&st, mt, 64, err, sizeof err) ||
        dsv4_session_open(&s2, m2, 64, err, sizeof err)) {
        test_fail("session: %s", err);
    } else {
        rc = dsv4_eval_prompt(s, p, 0, N + 1, lg, 1, err, sizeof err);
        CHECK(rc == -1 && has(err, "outside the prompt"), "range past the end: %s", err);
        rc = dsv4_eval_prompt(s, p, -1, 2, lg, 1, err, sizeof err);
        CHECK(rc == -1 && has(err, "outside the prompt"), "first < 0: %s", err);
        rc = dsv4_eval_prompt(s, p, 0, 0, lg, 1, err, sizeof err);
        CHECK(rc == -1 && has(err, "outside the prompt"), "n = 0: %s", err);
        rc = dsv4_eval_prompt(s, p, 2, 3, lg, 1, err, sizeof err);
        CHECK(rc == -1 && has(err, "not at first = 2"), "session not at first: %s", err);
        rc = dsv4_eval_prompt(s, p, 0, 3, NULL, 1, err, sizeof err);
        CHECK(rc == -1 && has(err, "logits is NULL") && dsv4_session_pos(s) == 0, "all = 1 without logits: %s", err);
        rc = dsv4_eval_prompt(st, p, 0, 3, lg, 1, err, sizeof err);
        CHECK(rc == -1 && has(err, "another model"), "a prompt of another model: %s", err);
        rc = dsv4_eval_prompt(s2, p, 0, 3, lg, 1, err, sizeof err);
        CHECK(rc == -1 && has(err, "another model"), "a prompt of another load of the same directory: %s", err);
        rc = dsv4_eval_prompt(NULL, p, 0, 3, lg, 1, err, sizeof err);
        CHECK(rc == -1 && has(err, "session is NULL"), "NULL session: %s", err);
        rc = dsv4_eval_prompt(s, NULL, 0, 3, lg, 1, err, sizeof err);
        CHECK(rc == -1 && has(err, "prompt is NULL"), "NULL prompt: %s", err);
        CHECK(dsv4_session_pos(s) == 0, "nothing evaluated by the refused calls");
        rc = dsv4_eval_prompt(s, p, 0, 2, lg, 1, err, sizeof err) || dsv4_eval_prompt(s, p, 2, N - 2, lg, 0, err, sizeof err);
        CHECK(rc == 0 && dsv4_session_pos(s) == N, "then a good split evaluates: %s", rc ? err : "");
        dsv4_session *sc = NULL;
        if (!dsv4_session_open(&sc, m, N - 1, err, sizeof err)) {
            rc = dsv4_eval_prompt(sc, p, 0, N, lg, 1, err, sizeof err);
            CHECK(rc == -1 && has(err, "context overflow"), "context overflow: %s", err);
            dsv4_session_free(sc);
        }
    }
    dsv4_session_free(s);
    dsv4_session_free(st);
    dsv4_session_free(s2);
    free(lg);
    dsv4_prompt_free(p);
out:
    dsv4_image_free(im);
    dsv4_image_embed_free(e);
    dsv4_image_embed_free(eo);
    dsv4_model_free(mt);
    dsv4_model_free(m2);
}

/* ---------------------------------------------------------------- 4. loading */

/* A missing tower tensor, span vector or bias_vl is refused naming it; an extra vision.* / image_* tensor is refused as
 * unexpected. */
static void loading(void) {
    char dir[] = "/tmp/dsv4_vl_XXXXXX", err[1024];
    if (!mkdtemp(dir)) { test_fail("mkdtemp"); return; }
    const char *cases[][3] = {{"aligner.w2.bias", "aligner.w3.bias", "aligner.w2.bias"},
                              {"vision.blocks.1.mlp.w2.weight", "vision.blocks.1.mlp.w4.weight", "vision.blocks.1.mlp.w2"},
                              {"image_newline", "image_nl", "image_newline"},
                              {"layers.3.ffn.gate.bias_vl", "layers.3.ffn.gate.bias_v", "layers.3.ffn.gate.bias_vl"},
                              {"vision.norm.weight", "+vision.norm2.weight", "unexpected tensor 'vision.norm2.weight'"},
                              {"image_end", "+image_middle", "unexpected tensor 'image_middle'"}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        if (test_variant(VL, dir, cases[k][0], cases[k][1], NULL)) { test_fail("variant %s", cases[k][0]); continue; }
        dsv4_model *m = NULL;
        int rc = dsv4_model_load(&m, dir, err, sizeof err);
        CHECK(rc == -1 && !m && strstr(err, cases[k][2]), "checkpoint with '%s' -> '%s': %s", cases[k][0],
              cases[k][1], rc ? err : "loaded");
        printf("  %s -> %s: %s\n", cases[k][0], cases[k][1], err);
        dsv4_model_free(m);
    }
    test_variant_remove(dir);
}

int main(int argc, char **argv) {
    char err[1024];
    if (argc > 1) VL = argv[1];   /* another tiny-vl directory (e.g. make_v41_vl_goldens.py OUT) */
    dsv4_model *m = NULL;
    if (dsv4_model_load(&m, VL, err, sizeof err)) {
        test_fail("load %s: %s", VL, err);
        return test_done();
    }
    goldens(m);
    loading();
    expansion_and_keys(m);
    errors(m);
    text_only(VL);
    text_only(TINY);
    text_only(V4DIR);
    dsv4_model_free(m);
    return test_done();
}
