/* vision/preprocess.c — the reference's `image_processor.py` `load_image` after decoding: resize plan
 * (`plan_image_grid`, `safe_resize`, `solve_resize_ratio`), ImageOps.pad (Pillow 9.4 `contain` + centred paste on
 * (127, 127, 127)), normalisation to [-1, 1] rounded to BF16, patch cutting. docs/vision.md walks through each
 * step; include/dsv4_vision.h is the contract. All planning arithmetic is done in double in the reference's
 * order, because Python does it in double. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "dsv4_vision.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF /* gcc: -std=c11 already means -ffp-contract=off */
#endif

dsv4_vision_params dsv4_vision_params_v41(void) {
    dsv4_vision_params p = {14, 3, 1024, 295936, 0, 0};
    return p;
}

/* Python's round() of a double: nearest integer, ties to even (the default rounding mode of rint). */
static double py_round(double x) {
    double r = floor(x), d = x - r;
    if (d > 0.5 || (d == 0.5 && fmod(r, 2.0) != 0.0)) r += 1.0;
    return r;
}

static int ceil_div(int64_t a, int64_t b) { return (int)((a + b - 1) / b); }

static int n_tokens(int n_llm_h, int n_llm_w) { return n_llm_h * (n_llm_w + 1) + 2; }

/* ImageOps.pad's placement of a src_w x src_h image in the best_w x best_h box: ImageOps.contain's aspect-kept size
 * (ratios compared as doubles, as Python does) and the centred offset (round((size - resized) * 0.5)). */
static int place(int src_w, int src_h, int64_t best_w, int64_t best_h, dsv4_image_plan *out, char *err,
                 size_t errlen) {
    double im_ratio = (double)src_w / (double)src_h, dest_ratio = (double)best_w / (double)best_h;
    int64_t rw = best_w, rh = best_h;
    if (im_ratio != dest_ratio) {
        if (im_ratio > dest_ratio)
            rh = (int64_t)py_round((double)src_h / (double)src_w * (double)best_w);
        else
            rw = (int64_t)py_round((double)src_w / (double)src_h * (double)best_h);
    }
    if (rw < 1 || rh < 1)
        return dsv4_fail(err, errlen,
                         "image %d x %d is too elongated: fitted into %lld x %lld pixels its short side rounds to "
                         "0 pixels (the reference fails here too: Pillow's \"height and width must be > 0\")",
                         src_w, src_h, (long long)best_w, (long long)best_h);
    out->resized_w = (int)rw;
    out->resized_h = (int)rh;
    /* ImageOps.pad: round((size - resized) * 0.5) on the axis that differs */
    if (rw != best_w) out->offset_x = (int)py_round((double)(best_w - rw) * 0.5);
    else if (rh != best_h) out->offset_y = (int)py_round((double)(best_h - rh) * 0.5);
    return 0;
}

/* ---------------------------------------------------------------- DeepSeek-V4-Flash-Vision-Exp (docs/vision-exp.md §3)
 * [port] No public copy of Vision-Exp's own image_processor.py exists; this follows the ports the note ranks (its
 * sources A and D) and tools/reference/vision_exp.py `plan`, which was cross-checked against them on 4,010 sizes. */

int dsv4_image_span_positions(const dsv4_vision_params *p, int n_llm_h, int n_llm_w) {
    if (!p->vision_exp) return n_tokens(n_llm_h, n_llm_w);
    int rows = n_llm_h + (n_llm_h & 1), body = rows * (n_llm_w + 1);   /* odd row counts get one pad row */
    int tail = (rows / 2) * (n_llm_w + 1) % 2 ? 2 : 0;                 /* content length a multiple of 4 */
    return body + tail + 2;                                            /* + START + END */
}

static int exp_count(const dsv4_vision_params *p, int64_t bh, int64_t bw) {
    int64_t ps = p->patch_size, dr = p->downsample_ratio;
    int64_t nh = ((bh / ps) + dr - 1) / dr, nw = ((bw / ps) + dr - 1) / dr;
    if (nh > (1 << 20) || nw > (1 << 20)) return INT_MAX;   /* far over any budget (max_image_tokens <= 2^20) */
    return dsv4_image_span_positions(p, (int)nh, (int)nw);
}

static int plan_exp(int src_w, int src_h, const dsv4_vision_params *p, dsv4_image_plan *out, char *err,
                    size_t errlen) {
    const int ps = p->patch_size, dr = p->downsample_ratio, mr = p->max_wh_ratio;
    const int64_t cell = (int64_t)ps * dr;
    int64_t w = src_w, h = src_h;
    if (mr > 0 && w > h * mr) w = h * mr;                                /* the aspect clamp (`>`) */
    if (w * h > 0 && w * h < p->min_pixels) {                            /* min-pixel upscale, truncated */
        double k = pow((double)p->min_pixels / (double)(w * h), 0.5);
        w = (int64_t)((double)w * k);
        h = (int64_t)((double)h * k);
    }
    int64_t bw = (int64_t)ceil((double)w / ps) * ps, bh = (int64_t)ceil((double)h / ps) * ps;
    const int limit = p->max_image_tokens - 3;   /* three positions kept for the alignment pads (§4) */
    int budget = limit;
    while (exp_count(p, bh, bw) > limit) {       /* the count is not monotonic in the budget: walk it down */
        if (budget < 5 || w < 1 || h < 1)
            return dsv4_fail(err, errlen, "image %d x %d: no pixel size fits %d tokens", src_w, src_h, limit);
        double r = (double)h / (double)w;
        double mw = sqrt((double)(budget - 2) / r + 0.25) - 0.5, mh = mw * r;
        if (mw < 1.0) {
            int64_t hc = (budget - 2) / 2;
            hc -= hc & 1;
            bw = cell;
            bh = hc * cell;
        } else if (mh < 2.0) {
            int64_t wc = (budget - 2) / 2 - 1;
            if (wc <= 1)
                return dsv4_fail(err, errlen, "image %d x %d: no pixel size fits %d tokens", src_w, src_h, budget);
            bw = wc * cell;
            bh = 2 * cell;
        } else {
            int64_t wc = (int64_t)floor(mw), hc = (int64_t)floor(mh);
            hc -= hc & 1;
            double bwr = (double)(wc * cell) / (double)w, bhr = (double)(hc * cell) / (double)h;
            double beta = bhr < bwr ? bhr : bwr;
            bw = (int64_t)floor((double)w * beta / ps) * ps;
            bh = (int64_t)floor((double)h * beta / ps) * ps;
        }
        budget--;
    }
    if (bw < ps || bh < ps || bw * bh > DSV4_IMAGE_MAX_PIXELS)
        return dsv4_fail(err, errlen, "image %d x %d: planned size %lld x %lld is out of range", src_w, src_h,
                         (long long)bw, (long long)bh);
    out->width = (int)bw;
    out->height = (int)bh;
    out->n_vit_h = (int)(bh / ps);
    out->n_vit_w = (int)(bw / ps);
    out->n_llm_h = ceil_div(out->n_vit_h, dr);
    out->n_llm_w = ceil_div(out->n_vit_w, dr);
    out->n_tokens = dsv4_image_span_positions(p, out->n_llm_h, out->n_llm_w);
    if (mr > 0 && (int64_t)src_w >= (int64_t)mr * src_h) {   /* the `resize` branch (`>=`, the original size): a plain
                                                             * BICUBIC Image.resize to the box, no padding */
        out->resized_w = out->width;
        out->resized_h = out->height;
        return 0;
    }
    return place(src_w, src_h, bw, bh, out, err, errlen);
}

int dsv4_image_plan_grid(int src_w, int src_h, const dsv4_vision_params *p, dsv4_image_plan *out, char *err,
                         size_t errlen) {
    memset(out, 0, sizeof *out);
    if (p->patch_size < 1 || p->patch_size > 1024 || p->downsample_ratio < 1 || p->downsample_ratio > 64 ||
        p->max_image_tokens < 5 || p->max_image_tokens > (1 << 20) || p->min_pixels < 0 ||
        p->min_pixels > DSV4_IMAGE_MAX_PIXELS)
        return dsv4_fail(err, errlen, "vision parameters out of range (patch_size %d, downsample_ratio %d, "
                         "max_image_tokens %d, min_pixels %lld)", p->patch_size, p->downsample_ratio,
                         p->max_image_tokens, (long long)p->min_pixels);
    if (src_w < 1 || src_h < 1 || (int64_t)src_w * src_h > DSV4_IMAGE_MAX_PIXELS)
        return dsv4_fail(err, errlen, "image size %d x %d out of range", src_w, src_h);
    if (p->vision_exp) {
        if (p->max_wh_ratio < 0 || p->max_wh_ratio > (1 << 16) || p->max_image_tokens < 8)
            return dsv4_fail(err, errlen, "vision parameters out of range (max_wh_ratio %d, max_image_tokens %d)",
                             p->max_wh_ratio, p->max_image_tokens);
        return plan_exp(src_w, src_h, p, out, err, errlen);
    }
    const int ps = p->patch_size, dr = p->downsample_ratio, cap = p->max_image_tokens;
    /* plan_image_grid: width, height become Python ints again after the optional scale-up */
    int64_t width = src_w, height = src_h;
    if (width * height < p->min_pixels) {
        double ratio = pow((double)p->min_pixels / (double)(width * height), 0.5);
        width = (int64_t)((double)width * ratio);
        height = (int64_t)((double)height * ratio);
    }
    int64_t best_w = (int64_t)ceil((double)width / ps) * ps;
    int64_t best_h = (int64_t)ceil((double)height / ps) * ps;
    /* safe_resize; the grid of an over-large plan can exceed int, so count in int64 first */
    int64_t lh = ((best_h / ps) + dr - 1) / dr, lw = ((best_w / ps) + dr - 1) / dr;
    if (lh * (lw + 1) + 2 > cap) {
        /* solve_resize_ratio(height, width) */
        double r = (double)height / (double)width;
        double mw = sqrt((double)(cap - 2) / r + 0.25) - 0.5;
        double mh = mw * r;
        int64_t cell = (int64_t)ps * dr;
        if (mw < 1.0) {
            best_h = (int64_t)((cap - 2) / 2) * cell;
            best_w = cell;
        } else if (mh < 1.0) {
            best_h = cell;
            best_w = (int64_t)(cap - 3) * cell;
        } else {
            double bw = (double)((int64_t)floor(mw) * cell) / (double)width;
            double bh = (double)((int64_t)floor(mh) * cell) / (double)height;
            double beta = bh < bw ? bh : bw;
            best_h = (int64_t)floor((double)height * beta / ps) * ps;
            best_w = (int64_t)floor((double)width * beta / ps) * ps;
        }
        lh = ((best_h / ps) + dr - 1) / dr;
        lw = ((best_w / ps) + dr - 1) / dr;
        if (best_h < ps || best_w < ps || lh * (lw + 1) + 2 > cap)
            return dsv4_fail(err, errlen, "image %d x %d: no pixel size fits %d tokens", src_w, src_h, cap);
    }
    if (best_w * best_h > DSV4_IMAGE_MAX_PIXELS)
        return dsv4_fail(err, errlen, "image %d x %d: planned size %lld x %lld is too large", src_w, src_h,
                         (long long)best_w, (long long)best_h);
    out->width = (int)best_w;
    out->height = (int)best_h;
    out->n_vit_h = (int)(best_h / ps);
    out->n_vit_w = (int)(best_w / ps);
    out->n_llm_h = ceil_div(out->n_vit_h, dr);
    out->n_llm_w = ceil_div(out->n_vit_w, dr);
    out->n_tokens = n_tokens(out->n_llm_h, out->n_llm_w);
    return place(src_w, src_h, best_w, best_h, out, err, errlen);
}

int dsv4_image_pad(const dsv4_image *im, const dsv4_image_plan *plan, uint8_t *dst, char *err, size_t errlen) {
    const int W = plan->width, H = plan->height, rw = plan->resized_w, rh = plan->resized_h;
    if (W < 1 || H < 1 || rw < 1 || rh < 1 || rw > W || rh > H || plan->offset_x < 0 || plan->offset_y < 0 ||
        plan->offset_x + rw > W || plan->offset_y + rh > H || (rw != W && rh != H))
        return dsv4_fail(err, errlen, "image pad: inconsistent plan (%d x %d at %d, %d in %d x %d)", rw, rh,
                         plan->offset_x, plan->offset_y, W, H);
    const int sw = dsv4_image_width(im), sh = dsv4_image_height(im);
    if (rw == W && rh == H) return dsv4_image_resize_bicubic(dsv4_image_pixels(im), sw, sh, dst, W, H, err, errlen);
    uint8_t *tmp = malloc((size_t)rw * rh * 3);
    if (!tmp) return dsv4_fail(err, errlen, "image pad: out of memory for %d x %d pixels", rw, rh);
    if (dsv4_image_resize_bicubic(dsv4_image_pixels(im), sw, sh, tmp, rw, rh, err, errlen)) {
        free(tmp);
        return -1;
    }
    memset(dst, 127, (size_t)W * H * 3);
    for (int y = 0; y < rh; y++)
        memcpy(dst + ((size_t)(y + plan->offset_y) * W + plan->offset_x) * 3, tmp + (size_t)y * rw * 3,
               (size_t)rw * 3);
    free(tmp);
    return 0;
}

float dsv4_vision_normalize(uint8_t v) {
    float x = (float)v / 255.0f;
    x = (x - 0.5f) / 0.5f;
    return dsv4_round_bf16(x);
}

int dsv4_image_preprocess(const dsv4_image *im, const dsv4_vision_params *p, dsv4_image_plan *plan,
                          float *patches, size_t cap, char *err, size_t errlen) {
    if (dsv4_image_plan_grid(dsv4_image_width(im), dsv4_image_height(im), p, plan, err, errlen)) return -1;
    if (!patches) return 0;
    const int ps = p->patch_size, W = plan->width;
    size_t need = (size_t)plan->n_vit_h * plan->n_vit_w * 3 * ps * ps;
    if (cap < need)
        return dsv4_fail(err, errlen, "image preprocess: the patch buffer holds %zu floats, %zu needed", cap, need);
    uint8_t *px = malloc((size_t)W * plan->height * 3);
    if (!px) return dsv4_fail(err, errlen, "image preprocess: out of memory for %d x %d pixels", W, plan->height);
    if (dsv4_image_pad(im, plan, px, err, errlen)) {
        free(px);
        return -1;
    }
    float lut[256];
    for (int v = 0; v < 256; v++) lut[v] = dsv4_vision_normalize((uint8_t)v);
    float *o = patches;
    for (int ph = 0; ph < plan->n_vit_h; ph++)
        for (int pw = 0; pw < plan->n_vit_w; pw++)
            for (int c = 0; c < 3; c++)
                for (int y = 0; y < ps; y++) {
                    const uint8_t *row = px + ((size_t)(ph * ps + y) * W + (size_t)pw * ps) * 3 + c;
                    for (int x = 0; x < ps; x++) *o++ = lut[row[3 * x]];
                }
    free(px);
    return 0;
}
