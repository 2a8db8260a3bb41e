/* vision/prompt.c — images in the language model (include/dsv4_vision.h, "images in the language model"; issue 11
 * item 3; docs/v41.md §3.4; docs/vision.md "Images in the prompt").
 *
 * dsv4_image_encode runs the model's tower and aligner once per image (vision/tower.h) and keeps the rows in a
 * reference-counted dsv4_image_embed. dsv4_prompt_build expands each image placeholder id to its span (START, then
 * n_llm_h rows of n_llm_w IMAGE positions and a NEW_LINE, then END; every position carries the placeholder id, as in
 * the official image_processor.prepare_vl_inputs) and records, per position, its role (the official token_types) and
 * the row that replaces its embedding: the image's aligner rows in reading order for IMAGE, the model's image_start /
 * image_newline / image_end for the delimiters. dsv4_eval_prompt hands ids, roles and rows of any range to the
 * V4.1 forward (model/forward_v41.c dsv4_v41_eval_vl: embedding override, bias_vl, Engram DEAD and gate 0), so a
 * prompt can be split into calls anywhere, also inside a span (the reference prefills spans in its first chunk
 * only; nothing in the math needs that: the compressor state and the Engram lookback carry across calls).
 *
 * DeepSeek-V4-Flash-Vision-Exp (a V4 model with the same tower; docs/vision-exp.md §4, §10): build_exp expands with
 * the position-dependent leading pads and the N-layout, ids vocab_size + the official role; dsv4_eval_prompt refuses
 * a call that cuts a START..END span and hands fids (0 at image positions), roles and rows to the V4 forward
 * (model/forward.c vx_prepare: embeddings, bias_vl routing, the span window).
 */
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dsv4.h"
#include "dsv4_vision.h"
#include "model/model.h"
#include "model/model_v41.h"
#include "vision/tower.h"
#include "vision/prompt.h"
#include "base/util.h"

struct dsv4_image_embed {
    atomic_int refs;
    const dsv4_model *m;
    dsv4_image_plan plan;
    int n_rows, dim;      /* n_llm_h * n_llm_w rows of the LM's hidden_size */
    float *rows;          /* [n_rows][dim] BF16 values */
    uint64_t digest;
};

struct dsv4_prompt {
    const dsv4_model *m;
    int n;                     /* positions */
    int32_t *ids;              /* [n] (Vision-Exp: image positions carry vocab_size + the official role) */
    int32_t *fids;             /* Vision-Exp: [n] the ids the forward sees (image positions 0, as the reference's
                                * embedding lookup; the rows replace them); NULL otherwise */
    int *spans;                /* Vision-Exp: [n_images][2] START and END positions of each span; NULL otherwise */
    int8_t *roles;             /* [n] DSV4_TOKEN_* */
    const float **embs;        /* [n] the row replacing the embedding (NULL: text) */
    uint64_t *keys;            /* [n] dsv4_prompt_key */
    int n_images;
    dsv4_image_embed **images; /* [n_images] references held */
};

/* ---------------------------------------------------------------- model queries */

int dsv4_model_has_vision(const dsv4_model *m) {
    if (m && dsv4_config_vision_exp(&m->cfg)) return m->vx_tower && m->image_start;   /* Vision-Exp */
    return m && m->v41 && m->v41->vtower && m->v41->image_start && m->cfg.x.vision_n_layers > 0;
}

/* The tower of a model with vision (V4.1 or Vision-Exp). */
static const dsv4_vtower *model_tower(const dsv4_model *m) {
    return dsv4_config_vision_exp(&m->cfg) ? m->vx_tower : m->v41->vtower;
}

int32_t dsv4_model_image_token(const dsv4_model *m) {
    return dsv4_model_has_vision(m) ? (int32_t)m->cfg.x.image_token_id : -1;
}

/* The pre-processing parameters of config c (a V4.1 or Vision-Exp config with vision keys). */
static dsv4_vision_params params_of(const dsv4_config *c) {
    dsv4_vision_params p = dsv4_vision_params_v41();
    const dsv4_config_v41 *x = &c->x;
    p.patch_size = x->vision_patch_size;
    p.downsample_ratio = x->vision_downsample_ratio;
    /* absent keys (parsed as 0) keep the official ModelArgs defaults (1024 tokens, 544^2 pixels) */
    if (x->vision_max_n_token > 0) p.max_image_tokens = x->vision_max_n_token;
    if (x->vision_min_pixels > 0) p.min_pixels = x->vision_min_pixels;
    if (dsv4_config_vision_exp(c)) {   /* docs/vision-exp.md §2-3 (io/config_vexp.c gave the defaults) */
        p.max_image_tokens = x->vision_max_n_token;
        p.min_pixels = x->vision_min_pixels;
        p.max_wh_ratio = x->vision_max_wh_ratio;
        p.vision_exp = 1;
    }
    return p;
}

dsv4_vision_params dsv4_model_vision_params(const dsv4_model *m) {
    return dsv4_model_has_vision(m) ? params_of(&m->cfg) : dsv4_vision_params_v41();
}

int dsv4_config_vision(const char *dir, dsv4_vision_params *p, int32_t *image_token, char *err, size_t errlen) {
    if (!dir || !p || !image_token) return dsv4_fail(err, errlen, "dsv4_config_vision: NULL argument");
    char path[4096];
    size_t l = strlen(dir);
    snprintf(path, sizeof path, l >= 5 && !strcmp(dir + l - 5, ".json") ? "%s" : "%s/config.json", dir);
    dsv4_config c;
    if (dsv4_config_load(&c, path, err, errlen)) return -1;
    if (c.x.vision_n_layers < 1)
        return dsv4_fail(err, errlen, "%s: this model has no vision tower (config.json has no vision keys)", dir);
    *p = params_of(&c);
    *image_token = (int32_t)c.x.image_token_id;
    return 0;
}

int dsv4_prompt_expanded_len(const dsv4_vision_params *p, const int32_t *ids, int n, int32_t image_token,
                             const dsv4_image_plan *plans, int n_plans) {
    if (!p || (n > 0 && !ids) || n < 0 || n_plans < 0 || (n_plans > 0 && !plans)) return -1;
    int64_t o = 0;
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (ids[i] != image_token) { o++; continue; }
        if (k == n_plans) return -1;
        if (p->vision_exp) o += 3 - o % 4;   /* the leading IMAGE_PADs (build_exp) */
        o += plans[k++].n_tokens;
        if (o > INT_MAX / 2) return -1;
    }
    return k == n_plans ? (int)o : -1;
}

/* ---------------------------------------------------------------- encoded images */

/* splitmix64's finaliser: a bijection of 64-bit words with full avalanche */
static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rows_digest(const dsv4_image_plan *pl, const float *rows, size_t n) {
    uint64_t h = mix64(0x9e3779b97f4a7c15ULL ^ ((uint64_t)(uint32_t)pl->n_llm_h << 32 | (uint32_t)pl->n_llm_w));
    for (size_t i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, &rows[i], 4);
        h = mix64(h ^ ((uint64_t)b + ((uint64_t)i << 32)));
    }
    return h;
}

int dsv4_image_encode(const dsv4_model *m, const dsv4_image *im, dsv4_image_embed **out, char *err, size_t errlen) {
    if (!out) return dsv4_fail(err, errlen, "dsv4_image_encode: out is NULL");
    *out = NULL;
    if (!m || !im) return dsv4_fail(err, errlen, "dsv4_image_encode: %s is NULL", !m ? "model" : "image");
    if (!dsv4_model_has_vision(m)) return dsv4_fail(err, errlen, "%s: this model has no vision tower", m->dir);
    const dsv4_vision_params p = dsv4_model_vision_params(m);
    const dsv4_vtower *t = model_tower(m);
    dsv4_image_plan plan;
    if (dsv4_image_preprocess(im, &p, &plan, NULL, 0, err, errlen)) return -1;
    const size_t np = (size_t)plan.n_vit_h * plan.n_vit_w * 3 * p.patch_size * p.patch_size;
    const int nr = dsv4_vtower_n_rows(dsv4_vtower_cfg(t), plan.n_vit_h, plan.n_vit_w), D = m->cfg.dim;
    if (nr != plan.n_llm_h * plan.n_llm_w)   /* the plan and the tower disagree on the grid: a config error */
        return dsv4_fail(err, errlen, "%s: the tower gives %d aligner rows for a %d x %d patch grid, the plan %d x %d",
                         m->dir, nr, plan.n_vit_h, plan.n_vit_w, plan.n_llm_h, plan.n_llm_w);
    float *patches = malloc(np * sizeof(float));
    dsv4_image_embed *e = calloc(1, sizeof *e);
    if (e) e->rows = malloc((size_t)nr * D * sizeof(float));
    if (!patches || !e || !e->rows) {
        free(patches);
        if (e) free(e->rows);
        free(e);
        return dsv4_fail(err, errlen, "dsv4_image_encode: out of memory for a %d x %d patch grid", plan.n_vit_h,
                         plan.n_vit_w);
    }
    int rc = dsv4_image_preprocess(im, &p, &plan, patches, np, err, errlen);
    if (!rc) rc = dsv4_vtower_forward(t, patches, plan.n_vit_h, plan.n_vit_w, e->rows, NULL, NULL, err, errlen);
    free(patches);
    if (rc) {
        free(e->rows);
        free(e);
        return -1;
    }
    atomic_init(&e->refs, 1);
    e->m = m;
    e->plan = plan;
    e->n_rows = nr;
    e->dim = D;
    e->digest = rows_digest(&plan, e->rows, (size_t)nr * D);
    *out = e;
    return 0;
}

int dsv4_image_embed_from_rows(const dsv4_model *m, const dsv4_image_plan *plan, const float *rows,
                               dsv4_image_embed **out, char *err, size_t errlen) {
    if (!out) return dsv4_fail(err, errlen, "dsv4_image_embed_from_rows: out is NULL");
    *out = NULL;
    if (!m || !plan || !rows) return dsv4_fail(err, errlen, "dsv4_image_embed_from_rows: NULL argument");
    if (!dsv4_model_has_vision(m)) return dsv4_fail(err, errlen, "%s: this model has no vision tower", m->dir);
    const dsv4_vision_params vp = dsv4_model_vision_params(m);
    if (plan->n_llm_h < 1 || plan->n_llm_w < 1 || plan->n_llm_h > (1 << 15) || plan->n_llm_w > (1 << 15) ||
        plan->n_tokens != dsv4_image_span_positions(&vp, plan->n_llm_h, plan->n_llm_w))
        return dsv4_fail(err, errlen, "dsv4_image_embed_from_rows: inconsistent plan (%d x %d cells, %d positions)",
                         plan->n_llm_h, plan->n_llm_w, plan->n_tokens);
    const int nr = plan->n_llm_h * plan->n_llm_w, D = m->cfg.dim;
    dsv4_image_embed *e = calloc(1, sizeof *e);
    if (e) e->rows = malloc((size_t)nr * D * sizeof(float));
    if (!e || !e->rows) {
        if (e) free(e->rows);
        free(e);
        return dsv4_fail(err, errlen, "dsv4_image_embed_from_rows: out of memory");
    }
    for (size_t i = 0; i < (size_t)nr * D; i++) e->rows[i] = dsv4_round_bf16(rows[i]);
    atomic_init(&e->refs, 1);
    e->m = m;
    e->plan = *plan;
    e->n_rows = nr;
    e->dim = D;
    e->digest = rows_digest(plan, e->rows, (size_t)nr * D);
    *out = e;
    return 0;
}

static dsv4_image_embed *embed_ref(dsv4_image_embed *e) {
    atomic_fetch_add(&e->refs, 1);
    return e;
}

void dsv4_image_embed_free(dsv4_image_embed *e) {
    if (!e || atomic_fetch_sub(&e->refs, 1) != 1) return;
    free(e->rows);
    free(e);
}

int dsv4_image_embed_positions(const dsv4_image_embed *e) { return e ? e->plan.n_tokens : 0; }

const dsv4_image_plan *dsv4_image_embed_plan(const dsv4_image_embed *e) { return e ? &e->plan : NULL; }

uint64_t dsv4_image_embed_digest(const dsv4_image_embed *e) { return e ? e->digest : 0; }

const float *dsv4_image_embed_rows(const dsv4_image_embed *e, int *n_rows, int *dim) {
    if (n_rows) *n_rows = e ? e->n_rows : 0;
    if (dim) *dim = e ? e->dim : 0;
    return e ? e->rows : NULL;
}

/* ---------------------------------------------------------------- prompts */

void dsv4_prompt_free(dsv4_prompt *p) {
    if (!p) return;
    for (int i = 0; i < p->n_images; i++) dsv4_image_embed_free(p->images[i]);
    free(p->images);
    free(p->ids);
    free(p->fids);
    free(p->spans);
    free(p->roles);
    free(p->embs);
    free(p->keys);
    free(p);
}

/* DeepSeek-V4-Flash-Vision-Exp's expansion (docs/vision-exp.md §4, tools/reference/vision_exp.py span_types;
 * [port]: from the ports, no public copy of the official code): the placeholder at position o (the ids emitted so far)
 * becomes 3 - o mod 4 IMAGE_PAD, START, the rows (padded to an even count with a row of n_w + 1 pads) taken two at a
 * time column by column (NEW_LINE in column n_w), two IMAGE_PAD when (rows / 2)(n_w + 1) is odd, END. IMAGE slots take
 * the aligner rows in the order the walk visits them; the others the learned vectors. ids: vocab_size + the official
 * role (START 0, PAD 1, IMAGE 2, NEW_LINE 3, END 4); keys: the image's digest, the offset and the pad count.
 * Returns the number of positions. */
static int build_exp(dsv4_prompt *p, const int32_t *ids, int n, dsv4_image_embed *const *images, int32_t tok) {
    const dsv4_model *m = p->m;
    const int32_t V = m->cfg.vocab_size;
    static const int official[5] = {0, 2, 3, 4, 1};   /* DSV4_TOKEN_* (START, IMAGE, NEW_LINE, END, PAD) -> role */
    int o = 0, img = 0;
    for (int i = 0; i < n; i++) {
        if (ids[i] != tok) {
            p->ids[o] = p->fids[o] = ids[i];
            p->roles[o] = DSV4_TOKEN_TEXT;
            p->embs[o] = NULL;
            p->keys[o] = (uint64_t)(uint32_t)ids[i];
            o++;
            continue;
        }
        const dsv4_image_embed *e = images[img];
        const int h = e->plan.n_llm_h, w = e->plan.n_llm_w, D = e->dim, rows = h + (h & 1), L = w + 1;
        const int o0 = o, npad = 3 - o % 4;
#define PUT(role_, emb_) (p->roles[o] = (int8_t)(role_), p->embs[o] = (emb_), o++)
        for (int k = 0; k < npad; k++) PUT(DSV4_TOKEN_IMAGE_PAD, m->image_pad);
        p->spans[2 * img] = o;
        PUT(DSV4_TOKEN_IMAGE_START, m->image_start);
        for (int pr = 0; pr < rows / 2; pr++)
            for (int c = 0; c < L; c++)
                for (int r = 2 * pr; r < 2 * pr + 2; r++) {
                    if (r >= h) PUT(DSV4_TOKEN_IMAGE_PAD, m->image_pad);
                    else if (c == w) PUT(DSV4_TOKEN_IMAGE_NEW_LINE, m->image_newline);
                    else PUT(DSV4_TOKEN_IMAGE, e->rows + ((size_t)r * w + c) * D);
                }
        if ((rows / 2) * L % 2) {
            PUT(DSV4_TOKEN_IMAGE_PAD, m->image_pad);
            PUT(DSV4_TOKEN_IMAGE_PAD, m->image_pad);
        }
        p->spans[2 * img + 1] = o;
        PUT(DSV4_TOKEN_IMAGE_END, m->image_end);
#undef PUT
        for (int j = o0; j < o; j++) {
            p->ids[j] = V + official[p->roles[j]];
            p->fids[j] = 0;
            p->keys[j] = (1ULL << 63) |
                         (mix64(e->digest ^ mix64((uint64_t)(j - o0) + 1 + ((uint64_t)(npad + 1) << 40))) >> 1);
        }
        img++;
    }
    return o;
}

int dsv4_prompt_build(dsv4_prompt **out, const dsv4_model *m, const int32_t *ids, int n,
                      dsv4_image_embed *const *images, int n_images, char *err, size_t errlen) {
    if (!out) return dsv4_fail(err, errlen, "dsv4_prompt_build: out is NULL");
    *out = NULL;
    if (!m) return dsv4_fail(err, errlen, "dsv4_prompt_build: model is NULL");
    if (!ids || n < 1) return dsv4_fail(err, errlen, "dsv4_prompt_build: n = %d token ids (need >= 1 and an id array)", n);
    if (n_images < 0 || (n_images > 0 && !images))
        return dsv4_fail(err, errlen, "dsv4_prompt_build: n_images = %d with %s image array", n_images,
                         images ? "an" : "no");
    const int V = m->cfg.vocab_size;
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return dsv4_fail(err, errlen, "dsv4_prompt_build: token id %d at index %d out of range [0, %d)", (int)ids[i],
                             i, V);
    const int vision = dsv4_model_has_vision(m);
    if (n_images > 0 && !vision)
        return dsv4_fail(err, errlen, "%s: this model has no vision tower (%d image%s given)", m->dir, n_images,
                         n_images == 1 ? "" : "s");
    for (int k = 0; k < n_images; k++) {
        if (!images[k]) return dsv4_fail(err, errlen, "dsv4_prompt_build: image %d is NULL", k);
        if (images[k]->m != m)
            return dsv4_fail(err, errlen, "dsv4_prompt_build: image %d was encoded by another model instance (%s), not this one (%s)", k,
                             images[k]->m->dir, m->dir);
    }
    const int32_t tok = vision ? (int32_t)m->cfg.x.image_token_id : -1;
    int nph = 0;
    for (int i = 0; i < n; i++) nph += ids[i] == tok;
    if (nph != n_images)
        return dsv4_fail(err, errlen, "dsv4_prompt_build: the prompt has %d image placeholder%s but %d image%s given",
                         nph, nph == 1 ? "" : "s", n_images, n_images == 1 ? " was" : "s were");
    const int vexp = dsv4_config_vision_exp(&m->cfg);
    int64_t len = n - n_images;
    for (int k = 0; k < n_images; k++) len += images[k]->plan.n_tokens + (vexp ? 3 : 0);   /* + leading pads */
    for (int k = 0; vexp && k < n_images; k++)   /* a span is evaluated inside one forward chunk (model/model.h) */
        if (images[k]->plan.n_tokens > m->cfg.x.vision_max_n_token)
            return dsv4_fail(err, errlen, "dsv4_prompt_build: image %d's span has %d positions, more than "
                             "vision_max_n_token %d", k, images[k]->plan.n_tokens, m->cfg.x.vision_max_n_token);
    if (len > INT_MAX / 2)
        return dsv4_fail(err, errlen, "dsv4_prompt_build: the expanded prompt has %lld positions (at most %d)",
                         (long long)len, INT_MAX / 2);
    dsv4_prompt *p = calloc(1, sizeof *p);
    if (p) {
        p->ids = malloc((size_t)len * sizeof *p->ids);
        p->roles = malloc((size_t)len);
        p->embs = calloc((size_t)len, sizeof *p->embs);
        p->keys = malloc((size_t)len * sizeof *p->keys);
        p->images = calloc((size_t)(n_images ? n_images : 1), sizeof *p->images);
    }
    if (p && vexp) {
        p->fids = malloc((size_t)len * sizeof *p->fids);
        p->spans = malloc((size_t)(n_images ? n_images : 1) * 2 * sizeof *p->spans);
    }
    if (!p || !p->ids || !p->roles || !p->embs || !p->keys || !p->images || (vexp && (!p->fids || !p->spans))) {
        dsv4_prompt_free(p);
        return dsv4_fail(err, errlen, "dsv4_prompt_build: out of memory for %lld positions", (long long)len);
    }
    p->m = m;
    p->n = (int)len;
    for (int k = 0; k < n_images; k++) p->images[p->n_images++] = embed_ref(images[k]);
    if (vexp) {
        p->n = build_exp(p, ids, n, images, tok);
        *out = p;
        return 0;
    }
    const struct dsv4_v41_weights *v = m->v41;
    int o = 0, img = 0;
    for (int i = 0; i < n; i++) {
        if (ids[i] != tok) {
            p->ids[o] = ids[i];
            p->roles[o] = DSV4_TOKEN_TEXT;
            p->embs[o] = NULL;
            p->keys[o] = (uint64_t)(uint32_t)ids[i];
            o++;
            continue;
        }
        const dsv4_image_embed *e = images[img++];
        const int h = e->plan.n_llm_h, w = e->plan.n_llm_w, D = e->dim;
        const int o0 = o;
        p->roles[o] = DSV4_TOKEN_IMAGE_START;
        p->embs[o++] = v->image_start;
        for (int r = 0; r < h; r++) {
            for (int c = 0; c < w; c++) {
                p->roles[o] = DSV4_TOKEN_IMAGE;
                p->embs[o++] = e->rows + ((size_t)r * w + c) * D;
            }
            p->roles[o] = DSV4_TOKEN_IMAGE_NEW_LINE;
            p->embs[o++] = v->image_newline;
        }
        p->roles[o] = DSV4_TOKEN_IMAGE_END;
        p->embs[o++] = v->image_end;
        for (int j = o0; j < o; j++) {
            p->ids[j] = tok;
            /* top bit set: never a text id; the digest covers the rows and the grid, the offset the role */
            p->keys[j] = (1ULL << 63) | (mix64(e->digest ^ mix64((uint64_t)(j - o0) + 1)) >> 1);
        }
    }
    *out = p;
    return 0;
}

int dsv4_prompt_len(const dsv4_prompt *p) { return p ? p->n : 0; }

const int32_t *dsv4_prompt_ids(const dsv4_prompt *p) { return p ? p->ids : NULL; }

int dsv4_prompt_role(const dsv4_prompt *p, int i) {
    return p && i >= 0 && i < p->n ? p->roles[i] : DSV4_TOKEN_TEXT;
}

uint64_t dsv4_prompt_key(const dsv4_prompt *p, int i) { return p && i >= 0 && i < p->n ? p->keys[i] : 0; }

int dsv4_prompt_boundary(const dsv4_prompt *p, int pos) {
    if (!p) return 0;
    if (pos < 0) pos = 0;
    if (pos > p->n) pos = p->n;
    for (int k = 0; p->spans && k < p->n_images; k++)
        if (p->spans[2 * k] < pos && pos <= p->spans[2 * k + 1]) return p->spans[2 * k];
    return pos;
}

int dsv4_prompt_call_end(const dsv4_prompt *p, int first, int end) {
    if (!p) return end;
    int q = dsv4_prompt_boundary(p, end);
    if (q == end || q > first) return q;
    for (int k = 0; p->spans && k < p->n_images; k++)   /* the span starting at `first`: through its END */
        if (p->spans[2 * k] == q) return p->spans[2 * k + 1] + 1;
    return end;
}

/* ---------------------------------------------------------------- evaluation */

int dsv4_eval_prompt(dsv4_session *s, const dsv4_prompt *p, int first, int n, float *logits, int all, char *err,
                     size_t errlen) {
    if (!s || !p) return dsv4_fail(err, errlen, "dsv4_eval_prompt: %s is NULL", !s ? "session" : "prompt");
    if (p->m != s->m)
        return dsv4_fail(err, errlen, "dsv4_eval_prompt: the prompt was built for another model instance (%s) "
                         "than the session's (%s)", p->m->dir, s->m->dir);
    if (first < 0 || n < 1 || first > p->n - n)
        return dsv4_fail(err, errlen, "dsv4_eval_prompt: positions [%d, %d + %d) outside the prompt's %d", first, first,
                         n, p->n);
    if (s->pos != first)
        return dsv4_fail(err, errlen, "dsv4_eval_prompt: the session is at position %d, not at first = %d", s->pos,
                         first);
    const char *fn = "dsv4_eval_prompt";
    if (p->n_images == 0)   /* text only: exactly dsv4_eval / dsv4_eval_all, on every model */
        return dsv4_session_eval_vl(s, p->ids + first, NULL, NULL, n, logits, all, fn, err, errlen);
    if (p->spans) {   /* Vision-Exp: a span (START..END) is evaluated inside one call (docs/vision-exp.md §6) */
        for (int k = 0; k < p->n_images; k++) {
            int s0 = p->spans[2 * k], e0 = p->spans[2 * k + 1];
            if (first <= e0 && first + n > s0 && !(first <= s0 && first + n > e0))
                return dsv4_fail(err, errlen, "%s: the call [%d, %d) cuts image %d's span (positions %d..%d, START to "
                                 "END): with DeepSeek-V4-Flash-Vision-Exp every span must lie inside one call", fn, first,
                                 first + n, k, s0, e0);
        }
        return dsv4_session_eval_vl(s, p->fids + first, p->roles + first, p->embs + first, n, logits, all, fn, err,
                                    errlen);
    }
    if (!s->v41 || !dsv4_model_has_vision(s->m))
        return dsv4_fail(err, errlen, "%s: this model has no vision tower (the prompt has %d image%s)", s->m->dir,
                         p->n_images, p->n_images == 1 ? "" : "s");
    return dsv4_session_eval_vl(s, p->ids + first, p->roles + first, p->embs + first, n, logits, all, fn, err, errlen);
}
