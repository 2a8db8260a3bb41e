/* tests/test_vision_exp.c — DeepSeek-V4-Flash-Vision-Exp: images in the V4 language model (docs/vision-exp.md, its
 * "C implementation" section; include/dsv4_vision.h; src/vision/preprocess.c plan_exp, src/vision/prompt.c build_exp,
 * src/model/forward.c vx_prepare / attention / moe, src/model/vision_exp.c).
 *
 * Goldens: tests/golden/vision_exp (tools/reference/make_vision_exp_goldens.py; its README): a tiny V4 (3 layers,
 * ratios 0 / 4 / 128, layer 0 hash-routed, window 16) with a 1-block tower, two images (scene.png padded; banner.png,
 * wider than 8:1, takes the plain-resize branch) and a 90-id prompt with two placeholders expanded to 139 positions.
 *  1. the planner on the note's examples (real parameters) and on the two images: plans equal the reference's, the
 *     BF16 patches' SHA-256 equal (bit-exact pre-processing, both branches);
 *  2. the C tower from the image files vs the reference's float64-accumulated rows (`<image>.rows.bf16`): max|diff|
 *     <= 2^-5 max|ref| (tests/test_vision_tower.c's bound: F32 accumulation noise through BF16 roundings; the golden
 *     README: the reference's own float32 tower is one BF16 rounding off in 152 of 1,536 values);
 *  3. the expanded ids (vocab_size + official role) and roles, the span positions, visible_left / visible_right of
 *     every position (dsv4_vx_visible) equal the reference's exactly; the leading pads depend on the position mod 4
 *     and enter the prefix keys;
 *  4. the language model fed with the stored aligner rows (dsv4_image_embed_from_rows) under the three schedules
 *     (prefill: every position vs prefill_all.f32; chunks; prefill + 66 decode steps): logits within tolerance.rel
 *     (1.88e-2) x max|golden| of each file; all = 0 equals the last row of all = 1 bit for bit; the `refused`
 *     schedule (a call ending inside the first span) refused, naming the span, with nothing evaluated;
 *  5. a text-only prompt on the Vision-Exp model equals dsv4_eval / dsv4_eval_all bit for bit;
 *  6. loading errors name the tensor or key: bias_vl, the hash layer's gate.bias, image_pad, a tower tensor, the
 *     vision_dim and image_token_id keys; without vision_n_layers the vision tensors are unexpected.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "testlib.h"
#include "sha256.h"
#include "dsv4.h"
#include "dsv4_vision.h"
#include "vision/prompt.h"
#include "model/model.h"

static const char *DIR_ = "tests/golden/vision_exp";

/* CHECK that also prints the message when the check passes (the numbers go to the test log) */
#define REPORT(cond, ...)                                                  \
    do {                                                                   \
        int ok_ = (cond);                                                  \
        CHECK(ok_, __VA_ARGS__);                                           \
        if (ok_) { printf("  ok: "); printf(__VA_ARGS__); printf("\n"); } \
    } while (0)

static int jint(const cJSON *o, const char *k) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(j) ? j->valueint : -999999;
}

/* the official role numbering of Vision-Exp (golden "roles") from DSV4_TOKEN_* */
static int official(int r) {
    switch (r) {
    case DSV4_TOKEN_IMAGE_START: return 0;
    case DSV4_TOKEN_IMAGE_PAD: return 1;
    case DSV4_TOKEN_IMAGE: return 2;
    case DSV4_TOKEN_IMAGE_NEW_LINE: return 3;
    case DSV4_TOKEN_IMAGE_END: return 4;
    default: return -1;
    }
}

/* ---------------------------------------------------------------- 1. planner on the note's examples */
static void planner_examples(void) {
    dsv4_vision_params p = {14, 3, 384, 147456, 8, 1};
    /* docs/vision-exp.md §3 examples: src w, h -> box w, h, n_llm_h, n_llm_w, tokens, resize */
    static const int ex[][8] = {
        {384, 384, 392, 392, 10, 10, 114, 0},   {100, 100, 392, 392, 10, 10, 114, 0},
        {544, 544, 546, 546, 13, 13, 198, 0},   {1024, 768, 882, 658, 16, 21, 354, 0},
        {2000, 1500, 882, 658, 16, 21, 354, 0}, {4000, 100, 1092, 140, 4, 26, 110, 1},
        {100, 4000, 84, 3360, 80, 2, 242, 0},
    };
    char err[256];
    int bad = 0;
    for (size_t i = 0; i < sizeof ex / sizeof ex[0]; i++) {
        dsv4_image_plan pl;
        if (dsv4_image_plan_grid(ex[i][0], ex[i][1], &p, &pl, err, sizeof err)) { test_fail("plan: %s", err); bad++; continue; }
        int resize = pl.resized_w == pl.width && pl.resized_h == pl.height && ex[i][0] >= 8 * ex[i][1];
        if (pl.width != ex[i][2] || pl.height != ex[i][3] || pl.n_llm_h != ex[i][4] || pl.n_llm_w != ex[i][5] ||
            pl.n_tokens != ex[i][6] || resize != ex[i][7]) {
            test_fail("%d x %d: planned %d x %d, %d x %d cells, %d positions; the note says %d x %d, %d x %d, %d",
                      ex[i][0], ex[i][1], pl.width, pl.height, pl.n_llm_h, pl.n_llm_w, pl.n_tokens, ex[i][2], ex[i][3],
                      ex[i][4], ex[i][5], ex[i][6]);
            bad++;
        }
        if (pl.n_tokens > 381) { test_fail("%d x %d: %d positions > 381", ex[i][0], ex[i][1], pl.n_tokens); bad++; }
    }
    REPORT(bad == 0, "planner: the %d examples of docs/vision-exp.md §3", (int)(sizeof ex / sizeof ex[0]));
    /* the span count of the note's §4 example: n_h 3, n_w 2 -> rows 4, body 12, (4/2)*3 = 6 even: no tail; + 2 */
    CHECK(dsv4_image_span_positions(&p, 3, 2) == 14 && dsv4_image_span_positions(&p, 2, 2) == 10 &&
              dsv4_image_span_positions(&p, 1, 2) == 10 && dsv4_image_span_positions(&p, 2, 1) == 6,
          "span positions (N-layout count)");
}

/* ---------------------------------------------------------------- visibility edge cases */
/* dsv4_vx_visible on hand-made role sequences; the expected values are tools/reference/vision_exp.py visible()'s
 * (a span at position 0, two adjacent spans, a START without END, an END without START, a span longer than cap,
 * leading pads outside and a pad inside). */
static void visibility_edges(void) {
    enum { T = DSV4_TOKEN_TEXT, S = DSV4_TOKEN_IMAGE_START, I = DSV4_TOKEN_IMAGE, E = DSV4_TOKEN_IMAGE_END,
           P = DSV4_TOKEN_IMAGE_PAD };
    static const struct { int n, cap; int8_t r[8]; int l[8], rr[8]; } c[] = {
        {5, 64, {S, I, I, E, T}, {0, 1, 2, 3, 0}, {3, 2, 1, 0, 0}},
        {6, 64, {S, I, E, S, I, E}, {0, 1, 2, 0, 1, 2}, {2, 1, 0, 2, 1, 0}},
        {4, 64, {T, S, I, I}, {0, 0, 1, 2}, {0, 3, 2, 1}},
        {4, 64, {T, I, E, T}, {0, 0, 2, 0}, {0, 0, 0, 0}},
        {7, 4, {S, I, I, I, I, I, E}, {0, 1, 2, 3, 3, 3, 3}, {4, 4, 4, 3, 2, 1, 0}},
        {7, 64, {P, P, S, I, P, E, T}, {0, 0, 0, 1, 2, 3, 0}, {0, 0, 3, 2, 1, 0, 0}},
    };
    int bad = 0;
    for (size_t k = 0; k < sizeof c / sizeof c[0]; k++) {
        int l[8], r[8];
        dsv4_vx_visible(c[k].r, c[k].n, c[k].cap, l, r);
        for (int i = 0; i < c[k].n; i++) bad += l[i] != c[k].l[i] || r[i] != c[k].rr[i];
    }
    REPORT(bad == 0, "visibility edge cases (span at 0, adjacent spans, unbalanced sentinels, cap, pads): %d of %d "
           "sequences as the reference", (int)(sizeof c / sizeof c[0]) - (bad > 0), (int)(sizeof c / sizeof c[0]));
}

/* ---------------------------------------------------------------- the goldens */
static float *read_rel(const char *file, size_t n) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", DIR_, file);
    float *x = strstr(file, ".bf16") ? test_read_bf16(path, n) : test_read_f32(path, n);
    if (!x) test_fail("cannot read %s (%zu values)", path, n);
    return x;
}

static double rel_of(const float *c, const float *r, size_t n) { return test_maxdiff(c, r, n) / test_maxabs(r, n); }

/* Run schedule calls[nc] of prompt p; lastrows [nc][V] gets each call's last row (all = 0), allrows (may be NULL) every
 * position's (all = 1, checked against the all = 0 row). Returns 0, or -1 after a failure. */
static int run(dsv4_model *m, const dsv4_prompt *p, const int *calls, int nc, float *lastrows, float *allrows,
               const char *what) {
    char err[512];
    const int V = m->cfg.vocab_size, N = dsv4_prompt_len(p);
    dsv4_session *s = NULL, *s2 = NULL;
    if (dsv4_session_open(&s, m, N + 4, err, sizeof err) || dsv4_session_open(&s2, m, N + 4, err, sizeof err)) {
        test_fail("%s: session: %s", what, err);
        dsv4_session_free(s);
        return -1;
    }
    float *all = allrows ? allrows : malloc((size_t)N * V * sizeof(float));
    int pos = 0, rc = 0, bit = 1;
    for (int i = 0; i < nc; i++) {
        if (dsv4_eval_prompt(s, p, pos, calls[i], lastrows + (size_t)i * V, 0, err, sizeof err) ||
            dsv4_eval_prompt(s2, p, pos, calls[i], all + (size_t)pos * V, 1, err, sizeof err)) {
            test_fail("%s: call %d [%d, +%d): %s", what, i, pos, calls[i], err);
            rc = -1;
            break;
        }
        pos += calls[i];
        bit &= !memcmp(lastrows + (size_t)i * V, all + (size_t)(pos - 1) * V, (size_t)V * sizeof(float));
    }
    if (!rc) CHECK(bit, "%s: all = 0 gives the last row of all = 1 bit for bit", what);
    if (!allrows) free(all);
    dsv4_session_free(s);
    dsv4_session_free(s2);
    return rc;
}

static void chunk_boundary(dsv4_model *m, dsv4_image_embed *im);

static void goldens(dsv4_model *m) {
    char path[512], err[512] = "";
    snprintf(path, sizeof path, "%s/vision_exp.json", DIR_);
    size_t len = 0;
    char *txt = test_read_file(path, &len);
    cJSON *g = txt ? cJSON_Parse(txt) : NULL;
    free(txt);
    if (!g) { test_fail("cannot read %s", path); return; }
    const int V = m->cfg.vocab_size;
    CHECK(V == jint(g, "vocab_size"), "vocab_size %d", V);
    CHECK(dsv4_model_has_vision(m) == 1, "the Vision-Exp model has vision");
    CHECK(dsv4_model_image_token(m) == jint(g, "image_token_id"), "image token %d", (int)dsv4_model_image_token(m));
    const dsv4_vision_params vp = dsv4_model_vision_params(m);
    CHECK(vp.vision_exp == 1 && vp.max_wh_ratio == 8 && vp.max_image_tokens == 64 && vp.min_pixels == 20000 &&
              vp.patch_size == 14 && vp.downsample_ratio == 3,
          "vision parameters from the flat vision_* keys");

    /* 1-2. plans, patches, tower */
    const cJSON *jimgs = cJSON_GetObjectItem(g, "images");
    const int NI = cJSON_GetArraySize(jimgs);
    dsv4_image_embed *gold[2] = {0}, *emb[2] = {0};
    for (int k = 0; k < NI && k < 2; k++) {
        const cJSON *ji = cJSON_GetArrayItem(jimgs, k), *jp = cJSON_GetObjectItem(ji, "plan");
        const char *file = cJSON_GetObjectItem(ji, "file")->valuestring;
        snprintf(path, sizeof path, "%s/%s", DIR_, file);
        dsv4_image *im = NULL;
        if (dsv4_image_from_file(&im, path, err, sizeof err)) { test_fail("%s", err); continue; }
        dsv4_image_plan pl;
        size_t np = 0;
        float *patches = NULL;
        if (!dsv4_image_preprocess(im, &vp, &pl, NULL, 0, err, sizeof err)) {
            np = (size_t)pl.n_vit_h * pl.n_vit_w * 3 * 14 * 14;
            patches = malloc(np * sizeof(float));
        }
        if (!patches || dsv4_image_preprocess(im, &vp, &pl, patches, np, err, sizeof err)) {
            test_fail("%s: preprocess: %s", file, err);
            free(patches);
            dsv4_image_free(im);
            continue;
        }
        const int resize = pl.resized_w == pl.width && pl.resized_h == pl.height && pl.offset_x == 0 &&
                           pl.offset_y == 0 && dsv4_image_width(im) >= 8 * dsv4_image_height(im);
        const char *mode = cJSON_GetObjectItem(jp, "mode")->valuestring;
        REPORT(pl.width == jint(jp, "best_w") && pl.height == jint(jp, "best_h") && pl.n_vit_h == jint(jp, "n_vit_h") &&
                  pl.n_vit_w == jint(jp, "n_vit_w") && pl.n_llm_h == jint(jp, "n_llm_h") &&
                  pl.n_llm_w == jint(jp, "n_llm_w") && pl.n_tokens == jint(jp, "tokens") &&
                  resize == !strcmp(mode, "resize"),
              "%s (%d x %d): plan %d x %d px, %d x %d patches, %d x %d cells, %d positions, %s = the reference's", file,
              dsv4_image_width(im), dsv4_image_height(im), pl.width, pl.height, pl.n_vit_h, pl.n_vit_w, pl.n_llm_h,
              pl.n_llm_w, pl.n_tokens, mode);
        uint8_t *bytes = malloc(np * 2);
        for (size_t i = 0; i < np; i++) {
            uint32_t b;
            memcpy(&b, &patches[i], 4);
            bytes[2 * i] = (uint8_t)(b >> 16);
            bytes[2 * i + 1] = (uint8_t)(b >> 24);
        }
        sha256_t sh;
        char hex[65];
        sha256_init(&sh);
        sha256_update(&sh, bytes, np * 2);
        sha256_hex(&sh, hex);
        REPORT(!strcmp(hex, cJSON_GetObjectItem(ji, "patches_sha256")->valuestring),
              "%s: BF16 patches SHA-256 equal to the reference's (%s branch, %zu values)", file, mode, np);
        free(bytes);
        free(patches);
        int rc = dsv4_image_encode(m, im, &emb[k], err, sizeof err);
        dsv4_image_free(im);
        if (rc) { test_fail("encode %s: %s", file, err); continue; }
        int nr = 0, D = 0;
        const float *rows = dsv4_image_embed_rows(emb[k], &nr, &D);
        float *ref = read_rel(cJSON_GetObjectItem(ji, "rows")->valuestring, (size_t)nr * D);
        if (!ref) continue;
        double md = test_maxdiff(rows, ref, (size_t)nr * D), mr = test_maxabs(ref, (size_t)nr * D);
        long nd = 0;
        for (size_t i = 0; i < (size_t)nr * D; i++) nd += rows[i] != ref[i];
        REPORT(md <= ldexp(mr, -5), "%s: C tower vs the reference's rows: max|diff| %.3g = %.3g x max|ref| (bound "
              "2^-5), %ld of %d values differ", file, md, md / mr, nd, nr * D);
        if (dsv4_image_embed_from_rows(m, &pl, ref, &gold[k], err, sizeof err)) test_fail("from_rows: %s", err);
        free(ref);
    }
    if (!gold[0] || !gold[1]) { cJSON_Delete(g); goto out; }

    /* 3. expansion, visibility */
    const cJSON *jt = cJSON_GetObjectItem(g, "text_ids"), *jx = cJSON_GetObjectItem(g, "ids"),
                *jr = cJSON_GetObjectItem(g, "roles");
    const int n = cJSON_GetArraySize(jt), N = cJSON_GetArraySize(jx);
    int32_t *ids = malloc((size_t)(n + 1) * sizeof *ids);
    for (int i = 0; i < n; i++) ids[i] = cJSON_GetArrayItem(jt, i)->valueint;
    dsv4_prompt *p = NULL, *pc = NULL;
    if (dsv4_prompt_build(&p, m, ids, n, gold, 2, err, sizeof err) ||
        dsv4_prompt_build(&pc, m, ids, n, emb, 2, err, sizeof err)) {
        test_fail("prompt: %s", err);
        free(ids);
        cJSON_Delete(g);
        goto out;
    }
    int same = dsv4_prompt_len(p) == N;
    for (int i = 0; same && i < N; i++)
        same = dsv4_prompt_ids(p)[i] == cJSON_GetArrayItem(jx, i)->valueint &&
               official(dsv4_prompt_role(p, i)) == cJSON_GetArrayItem(jr, i)->valueint;
    REPORT(same, "expanded ids (vocab_size + role) and roles equal the reference's (%d positions, %d text ids)",
          dsv4_prompt_len(p), n);
    {   /* weights-free (dsv4 render): the config's parameters and the expanded length with the position-dependent pads */
        dsv4_vision_params cp;
        int32_t ctok = -1;
        const dsv4_vision_params mp = dsv4_model_vision_params(m);
        dsv4_image_plan pl[2] = {*dsv4_image_embed_plan(gold[0]), *dsv4_image_embed_plan(gold[1])};
        int rc2 = dsv4_config_vision(DIR_, &cp, &ctok, err, sizeof err);
        int xl = rc2 ? -2 : dsv4_prompt_expanded_len(&cp, ids, n, ctok, pl, 2);
        REPORT(!rc2 && test_same_vision_params(&cp, &mp) && ctok == dsv4_model_image_token(m) && xl == N &&
                   dsv4_prompt_expanded_len(&cp, ids, n, ctok, pl, 1) == -1,
               "dsv4_config_vision = the loaded model's parameters and placeholder; dsv4_prompt_expanded_len %d = %d "
               "(%s)", xl, N, rc2 ? err : "ok");
    }
    int8_t *roles = malloc((size_t)N);
    int *left = malloc((size_t)N * sizeof(int)), *right = malloc((size_t)N * sizeof(int));
    for (int i = 0; i < N; i++) roles[i] = (int8_t)dsv4_prompt_role(p, i);
    dsv4_vx_visible(roles, N, m->cfg.x.vision_max_n_token, left, right);
    const cJSON *jl = cJSON_GetObjectItem(g, "visible_left"), *jrr = cJSON_GetObjectItem(g, "visible_right");
    int vis = cJSON_GetArraySize(jl) == N, nin = 0;
    for (int i = 0; vis && i < N; i++) {
        vis = left[i] == cJSON_GetArrayItem(jl, i)->valueint && right[i] == cJSON_GetArrayItem(jrr, i)->valueint;
        nin += right[i] > 0 || roles[i] == DSV4_TOKEN_IMAGE_END;
    }
    REPORT(vis, "visible_left / visible_right of all %d positions equal the reference's (%d inside spans)", N, nin);
    {   /* the raw window of the rows (window 16): a span row reaches back to its START and forward to its END */
        const cJSON *sp = cJSON_GetObjectItem(g, "spans");
        int ok = 1;
        for (int k = 0; k < cJSON_GetArraySize(sp); k++) {
            const cJSON *e = cJSON_GetArrayItem(sp, k);
            int s0 = jint(e, "start"), e0 = jint(e, "end");
            ok &= roles[s0] == DSV4_TOKEN_IMAGE_START && roles[e0] == DSV4_TOKEN_IMAGE_END;
            for (int i = s0; i <= e0; i++) {
                int64_t lo, hi;
                dsv4_vx_window(i, left[i], right[i], m->cfg.window_size, m->cfg.x.vision_max_n_token, &lo, &hi);
                int64_t want_lo = i - 15 < s0 ? (i - 15 < 0 ? 0 : i - 15) : s0;
                ok &= hi == e0 && lo == want_lo;
            }
        }
        REPORT(ok, "span rows see min(p - 15, START) .. END (window 16)");
    }
    free(left);
    free(right);
    {   /* the pads depend on the position mod 4 and so do the keys: one more text id in front shifts every span */
        ids[n] = 0;
        memmove(ids + 1, ids, (size_t)n * sizeof *ids);
        ids[0] = 7;
        dsv4_prompt *q = NULL;
        if (dsv4_prompt_build(&q, m, ids, n + 1, gold, 2, err, sizeof err)) test_fail("shifted prompt: %s", err);
        else {
            int s0 = jint(cJSON_GetArrayItem(cJSON_GetObjectItem(g, "spans"), 0), "first");
            /* span 0 began at 9 with 2 pads; at 10 it has 1 pad, so the START moves by 1 - 1 = 0 positions */
            REPORT(dsv4_prompt_len(q) == N + 1 - 1 + 0 && dsv4_prompt_role(q, s0 + 1) == DSV4_TOKEN_IMAGE_PAD &&
                      dsv4_prompt_role(q, s0 + 2) == DSV4_TOKEN_IMAGE_START,
                  "shifted by one position: span 0 gets 1 leading pad instead of 2 (%d positions)", dsv4_prompt_len(q));
            int keys = 1;
            for (int i = s0 + 1; i < s0 + 24; i++) keys &= dsv4_prompt_key(q, i) != dsv4_prompt_key(p, i);
            REPORT(keys, "the shifted span's keys differ from the original's at every position (pads in the keys)");
        }
        dsv4_prompt_free(q);
    }
    free(ids);

    /* 4. the language model with the stored rows, three schedules */
    const double rel = cJSON_GetObjectItem(cJSON_GetObjectItem(g, "tolerance"), "rel")->valuedouble;
    const cJSON *sch = cJSON_GetObjectItem(g, "schedules");
    for (int si = 0; si < cJSON_GetArraySize(sch); si++) {
        const cJSON *e = cJSON_GetArrayItem(sch, si), *jc = cJSON_GetObjectItem(e, "calls");
        const char *name = cJSON_GetObjectItem(e, "name")->valuestring;
        const int nc = cJSON_GetArraySize(jc);
        int *calls = malloc((size_t)nc * sizeof(int));
        for (int i = 0; i < nc; i++) calls[i] = cJSON_GetArrayItem(jc, i)->valueint;
        float *want = read_rel(cJSON_GetObjectItem(e, "logits")->valuestring, (size_t)nc * V);
        float *got = malloc((size_t)nc * V * sizeof(float)), *all = malloc((size_t)N * V * sizeof(float));
        if (want && !run(m, p, calls, nc, got, all, name)) {
            double r = rel_of(got, want, (size_t)nc * V);
            REPORT(r <= rel, "%s (%d calls): last-position logits within %.3g x max|golden| (tolerance %.3g)", name, nc,
                  r, rel);
            if (!strcmp(name, "prefill")) {
                float *pa = read_rel(cJSON_GetObjectItem(cJSON_GetObjectItem(g, "prefill_all"), "logits")->valuestring,
                                     (size_t)N * V);
                if (pa) {
                    double ra = rel_of(all, pa, (size_t)N * V);
                    REPORT(ra <= rel, "prefill: all %d positions within %.3g x max|golden| (tolerance %.3g)", N, ra, rel);
                }
                free(pa);
                /* end to end (image files -> C tower -> logits): reported only (golden README: the tower's BF16
                 * noise flips this tiny model's routing) */
                float *l2 = malloc((size_t)V * sizeof(float));
                int one[1] = {N};
                if (!run(m, pc, one, 1, l2, NULL, "end to end"))
                    printf("  end to end with the C tower's rows: last logits %.3g x max|golden| (reported only)\n",
                           rel_of(l2, want, (size_t)V));
                free(l2);
            }
        }
        free(calls);
        free(want);
        free(got);
        free(all);
    }
    {   /* dsv4_prompt_boundary: the START of a span the wanted end falls inside (START < pos <= END), else pos */
        int ok = dsv4_prompt_boundary(p, 14) == 11 && dsv4_prompt_boundary(p, 11) == 11 &&
                 dsv4_prompt_boundary(p, 32) == 11 && dsv4_prompt_boundary(p, 33) == 33 &&
                 dsv4_prompt_boundary(p, 10) == 10 && dsv4_prompt_boundary(p, 60) == 47 &&
                 dsv4_prompt_boundary(p, 1000) == N && dsv4_prompt_boundary(p, -3) == 0 &&
                 dsv4_prompt_boundary(NULL, 5) == 0;
        REPORT(ok, "dsv4_prompt_boundary: 14 -> 11, 32 -> 11, 33 -> 33, 60 -> 47 (spans 11..32, 47..72)");
        /* dsv4_prompt_call_end (the server's prefill cuts): for every start at a call boundary and every wanted
         * end, the result is a boundary past the start, the wanted end when that is one, else the span's START or,
         * when the span starts at the call's start, the position after its END */
        int bad = 0;
        for (int first = 0; first < N; first++) {
            if (dsv4_prompt_boundary(p, first) != first) continue;
            for (int end = first + 1; end <= N; end++) {
                int q = dsv4_prompt_call_end(p, first, end), b = dsv4_prompt_boundary(p, end);
                int want = b == end ? end : b > first ? b : (first == 11 ? 33 : first == 47 ? 73 : -1);
                bad += q != want || dsv4_prompt_boundary(p, q) != q || q <= first;
            }
        }
        ok = bad == 0 && dsv4_prompt_call_end(p, 11, 12) == 33 && dsv4_prompt_call_end(p, 0, 14) == 11 &&
             dsv4_prompt_call_end(NULL, 3, 7) == 7;
        REPORT(ok, "dsv4_prompt_call_end: every (start, wanted end) pair lands on a boundary (%d wrong); 11,12 -> 33, "
               "0,14 -> 11", bad);
    }
    {   /* the refused schedule: the first call ends inside span 0 */
        const cJSON *rf = cJSON_GetObjectItem(cJSON_GetObjectItem(g, "refused"), "calls");
        int c0 = cJSON_GetArrayItem(rf, 0)->valueint;
        dsv4_session *s = NULL;
        float *l = malloc((size_t)V * sizeof(float));
        if (dsv4_session_open(&s, m, N, err, sizeof err)) test_fail("session: %s", err);
        else {
            int rc = dsv4_eval_prompt(s, p, 0, c0, l, 0, err, sizeof err);
            REPORT(rc == -1 && strstr(err, "span") && strstr(err, "11..32") && dsv4_session_pos(s) == 0,
                  "a call [0, %d) cutting the span 11..32 is refused, nothing evaluated: %s", c0, rc ? err : "accepted");
            /* a call that starts inside a span too: evaluate [0, 11) (ends before the START), then [11, 20) */
            rc = dsv4_eval_prompt(s, p, 0, 11, l, 0, err, sizeof err) ||
                 dsv4_eval_prompt(s, p, 11, 9, l, 0, err, sizeof err) != -1 || dsv4_session_pos(s) != 11;
            CHECK(!rc, "a call [11, 20) starting at the START and ending inside the span is refused");
            rc = dsv4_eval_prompt(s, p, 11, 30, l, 0, err, sizeof err);
            CHECK(rc == 0 && dsv4_session_pos(s) == 41, "the call [11, 41) holding the whole span is accepted%s%s",
                  rc ? ": " : "", rc ? err : "");
        }
        free(l);
        dsv4_session_free(s);
    }
    free(roles);
    chunk_boundary(m, gold[0]);
    dsv4_prompt_free(p);
    dsv4_prompt_free(pc);
    cJSON_Delete(g);
out:
    for (int k = 0; k < 2; k++) {
        dsv4_image_embed_free(gold[k]);
        dsv4_image_embed_free(emb[k]);
    }
}

/* ---------------------------------------------------------------- 4b. a span across the forward's chunk boundary */
/* 120 text ids, the scene image, 12 text ids: the span (START 123) crosses position 128 = DSV4_CHUNK, where a one-call
 * prefill would split its chunk; dsv4_session_eval_vl ends that chunk before the START instead. The logits equal those
 * of the calls [0, 123) + [123, end) bit for bit, and those of [0, 100) + [100, end). */
static void chunk_boundary(dsv4_model *m, dsv4_image_embed *im) {
    char err[512];
    const int V = m->cfg.vocab_size;
    int32_t ids[133];
    for (int i = 0; i < 133; i++) ids[i] = (int32_t)((i * 53 + 5) % 240);
    ids[120] = (int32_t)dsv4_model_image_token(m);
    dsv4_prompt *p = NULL;
    if (dsv4_prompt_build(&p, m, ids, 133, &im, 1, err, sizeof err)) { test_fail("boundary prompt: %s", err); return; }
    const int N = dsv4_prompt_len(p);
    int st = 0;
    while (st < N && dsv4_prompt_role(p, st) != DSV4_TOKEN_IMAGE_START) st++;
    const int sched[3][2] = {{N, 0}, {st, N - st}, {100, N - 100}};
    float *l[3];
    int rc = 0;
    for (int k = 0; k < 3; k++) {
        l[k] = malloc((size_t)N * V * sizeof(float));
        dsv4_session *s = NULL;
        if (dsv4_session_open(&s, m, N, err, sizeof err) ||
            dsv4_eval_prompt(s, p, 0, sched[k][0], l[k], 1, err, sizeof err) ||
            (sched[k][1] && dsv4_eval_prompt(s, p, sched[k][0], sched[k][1], l[k] + (size_t)sched[k][0] * V, 1, err,
                                             sizeof err))) {
            test_fail("boundary schedule %d: %s", k, err);
            rc = -1;
        }
        dsv4_session_free(s);
    }
    {   /* thread count: the one-call prefill with 1 and 3 pool threads, bit for bit (the image path included) */
        const int nt0 = dsv4_get_threads();
        float *lt = malloc((size_t)N * V * sizeof(float));
        dsv4_session *s = NULL;
        int ok = !dsv4_set_threads(nt0 == 3 ? 1 : 3, err, sizeof err) && !dsv4_session_open(&s, m, N, err, sizeof err) &&
                 !dsv4_eval_prompt(s, p, 0, N, lt, 1, err, sizeof err) && !rc;
        dsv4_set_threads(nt0, NULL, 0);
        REPORT(ok && !memcmp(lt, l[0], (size_t)N * V * sizeof(float)),
               "%d vs %d threads: the prompt with the span across the chunk edge gives the same logits bit for bit", nt0,
               nt0 == 3 ? 1 : 3);
        dsv4_session_free(s);
        free(lt);
    }
    if (!rc)
        REPORT(st == 123 && st < DSV4_CHUNK && st + 22 > DSV4_CHUNK &&
                   !memcmp(l[0], l[1], (size_t)N * V * sizeof(float)) &&
                   !memcmp(l[0], l[2], (size_t)N * V * sizeof(float)),
               "a span across the chunk boundary (START %d, %d positions): one call = [0, %d) + [%d, %d) = [0, 100) + "
               "[100, %d) bit for bit", st, N, st, st, N, N);
    for (int k = 0; k < 3; k++) free(l[k]);
    dsv4_prompt_free(p);
}

/* ---------------------------------------------------------------- 5. text only */
static void text_only(dsv4_model *m) {
    char err[512];
    const int V = m->cfg.vocab_size, n = 40;
    int32_t ids[40];
    for (int i = 0; i < n; i++) ids[i] = (int32_t)((i * 37 + 11) % 250);   /* no placeholder (250) */
    dsv4_prompt *p = NULL;
    dsv4_session *a = NULL, *b = NULL;
    float *la = malloc((size_t)n * V * sizeof(float)), *lb = malloc((size_t)n * V * sizeof(float));
    if (dsv4_prompt_build(&p, m, ids, n, NULL, 0, err, sizeof err) || dsv4_session_open(&a, m, 64, err, sizeof err) ||
        dsv4_session_open(&b, m, 64, err, sizeof err)) {
        test_fail("text only: %s", err);
    } else {
        int rc = dsv4_eval_prompt(a, p, 0, 25, la, 1, err, sizeof err) ||
                 dsv4_eval_prompt(a, p, 25, 15, la + (size_t)25 * V, 1, err, sizeof err) ||
                 dsv4_eval_all(b, ids, 25, lb, err, sizeof err) ||
                 dsv4_eval_all(b, ids + 25, 15, lb + (size_t)25 * V, err, sizeof err);
        REPORT(!rc && !memcmp(la, lb, (size_t)n * V * sizeof(float)),
              "a text-only prompt on the Vision-Exp model equals dsv4_eval_all bit for bit%s%s", rc ? ": " : "",
              rc ? err : "");
    }
    free(la);
    free(lb);
    dsv4_prompt_free(p);
    dsv4_session_free(a);
    dsv4_session_free(b);
}

/* ---------------------------------------------------------------- 6. loading errors */
static void loading(void) {
    char dir[] = "/tmp/dsv4_vexp_XXXXXX", err[1024];
    if (!mkdtemp(dir)) { test_fail("mkdtemp"); return; }
    /* renamed tensor (or dropped config key) -> the message names it */
    const char *cases[][4] = {
        {"layers.1.ffn.gate.bias_vl", "layers.1.ffn.gate.bias_v", NULL, "layers.1.ffn.gate.bias_vl"},
        {"layers.0.ffn.gate.bias", "layers.0.ffn.gate.bias_", NULL, "layers.0.ffn.gate.bias"},
        {"image_pad", "image_pd", NULL, "image_pad"},
        {"aligner.w1.weight", "aligner.w9.weight", NULL, "aligner.w1"},
        {NULL, NULL, "vision_dim", "missing key 'vision_dim'"},
        {NULL, NULL, "image_token_id", "missing key 'image_token_id'"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        if (test_variant(DIR_, dir, cases[k][0], cases[k][1], cases[k][2])) { test_fail("variant %zu", k); continue; }
        dsv4_model *m = NULL;
        int rc = dsv4_model_load(&m, dir, err, sizeof err);
        REPORT(rc == -1 && !m && strstr(err, cases[k][3]), "%s %s -> %s", cases[k][0] ? "tensor" : "config key",
               cases[k][0] ? cases[k][0] : cases[k][2], rc ? err : "loaded");
        dsv4_model_free(m);
    }
    /* vision_n_layers 0: the same checkpoint is a text model whose vision tensors are unexpected */
    if (!test_variant(DIR_, dir, NULL, NULL, "vision_n_layers")) {
        dsv4_model *m = NULL;
        int rc = dsv4_model_load(&m, dir, err, sizeof err);
        REPORT(rc == -1 && strstr(err, "unexpected tensor"), "without vision_n_layers the vision tensors are "
               "unexpected: %s", rc ? err : "loaded");
        dsv4_model_free(m);
    }
    test_variant_remove(dir);
}

int main(int argc, char **argv) {
    char err[1024];
    if (argc > 1) DIR_ = argv[1];   /* another vision_exp directory (make_vision_exp_goldens.py OUT) */
    planner_examples();
    visibility_edges();
    dsv4_model *m = NULL;
    if (dsv4_model_load(&m, DIR_, err, sizeof err)) {
        test_fail("load %s: %s", DIR_, err);
        return test_done();
    }
    goldens(m);
    text_only(m);
    loading();
    dsv4_model_free(m);
    return test_done();
}
