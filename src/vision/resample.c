/* vision/resample.c — Pillow's BICUBIC resize of 8-bit RGB images, bit for bit (the reference resizes with
 * ImageOps.pad, i.e. Image.resize(..., BICUBIC), Pillow 9.4). The arithmetic follows Pillow's fixed-point
 * resampler operation for operation, because any other order changes some pixels by one:
 *  - per output index i (one axis): scale = in/out as double from float sizes; the filter is widened by
 *    max(scale, 1) (antialiasing when shrinking, support 2 * that); centre = (i + 0.5) * scale; the taps run from
 *    (int)(centre - support + 0.5) to (int)(centre + support + 0.5), clipped to the image; tap j gets
 *    cubic((j - centre + 0.5) / filterscale) (Keys, a = -0.5), then all taps are divided by their sum;
 *  - coefficients become integers: (int)(c * 2^22 +- 0.5) (rounding away from zero);
 *  - each pass sums sample * coefficient in 32-bit integers starting at 2^21 (rounding), then takes
 *    clamp(sum >> 22, 0, 255) (arithmetic shift: floor);
 *  - horizontal pass first (only on the source rows the vertical pass reads), 8-bit result, then the vertical
 *    pass; a pass whose size does not change is skipped; equal sizes copy.
 * Checked on hundreds of sizes against Debian's python3-pil (tests/golden/vision/resample.json). */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "dsv4_vision.h"

/* The float order of operations is part of the result: never contract a * b + c into an FMA. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF /* gcc: -std=c11 already means -ffp-contract=off */
#endif

#define PREC_BITS 22 /* Pillow: 32 - 8 - 2 */

/* Keys' cubic convolution kernel with a = -0.5, support 2. */
static double bicubic(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

/* Fixed-point coefficients of one axis: for output index i, taps bounds[2i] (first source index) and
 * bounds[2i+1] (count), coefficients kk[i * ksize + t]. Returns ksize, 0 when Pillow's buffer-size check fails,
 * -1 when out of memory. */
static int precompute(int in_size, int out_size, int **bounds_out, int32_t **kk_out) {
    float in0 = 0.0f, in1 = (float)in_size; /* Pillow passes the box as floats */
    double scale = (double)(in1 - in0) / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 2.0 * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    if (out_size > INT_MAX / (ksize * (int)sizeof(double))) return 0;
    double *k = malloc((size_t)ksize * sizeof *k);
    int32_t *kk = malloc((size_t)out_size * (size_t)ksize * sizeof *kk);
    int *bounds = malloc((size_t)out_size * 2 * sizeof *bounds);
    if (!k || !kk || !bounds) {
        free(k);
        free(kk);
        free(bounds);
        return -1;
    }
    for (int xx = 0; xx < out_size; xx++) {
        double center = in0 + (xx + 0.5) * scale;
        double ww = 0.0;
        double ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        int x;
        for (x = 0; x < xmax; x++) {
            double w = bicubic((x + xmin - center + 0.5) * ss);
            k[x] = w;
            ww += w;
        }
        for (x = 0; x < xmax; x++)
            if (ww != 0.0) k[x] /= ww;
        for (; x < ksize; x++) k[x] = 0;
        for (x = 0; x < ksize; x++)
            kk[(size_t)xx * ksize + x] = k[x] < 0 ? (int32_t)(-0.5 + k[x] * (1 << PREC_BITS))
                                                  : (int32_t)(0.5 + k[x] * (1 << PREC_BITS));
        bounds[2 * xx] = xmin;
        bounds[2 * xx + 1] = xmax;
    }
    free(k);
    *bounds_out = bounds;
    *kk_out = kk;
    return ksize;
}

static inline uint8_t clip8(int32_t v) {
    v >>= PREC_BITS; /* arithmetic shift, as Pillow's table lookup at in >> 22 */
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* out (out_w x rows) = horizontal pass over rows [row0, row0 + rows) of in (in_w wide). */
static void pass_h(const uint8_t *in, int in_w, int row0, int rows, uint8_t *out, int out_w, int ksize,
                   const int *bounds, const int32_t *kk) {
    for (int y = 0; y < rows; y++) {
        const uint8_t *src = in + (size_t)(y + row0) * in_w * 3;
        uint8_t *dst = out + (size_t)y * out_w * 3;
        for (int xx = 0; xx < out_w; xx++) {
            int xmin = bounds[2 * xx], xmax = bounds[2 * xx + 1];
            const int32_t *k = kk + (size_t)xx * ksize;
            int32_t s0 = 1 << (PREC_BITS - 1), s1 = s0, s2 = s0;
            for (int x = 0; x < xmax; x++) {
                const uint8_t *p = src + (size_t)(x + xmin) * 3;
                s0 += p[0] * k[x];
                s1 += p[1] * k[x];
                s2 += p[2] * k[x];
            }
            dst[3 * xx] = clip8(s0);
            dst[3 * xx + 1] = clip8(s1);
            dst[3 * xx + 2] = clip8(s2);
        }
    }
}

/* out (w x out_h) = vertical pass over in (w wide); bounds already relative to in's first row. */
static void pass_v(const uint8_t *in, int w, uint8_t *out, int out_h, int ksize, const int *bounds,
                   const int32_t *kk) {
    for (int yy = 0; yy < out_h; yy++) {
        const int32_t *k = kk + (size_t)yy * ksize;
        int ymin = bounds[2 * yy], ymax = bounds[2 * yy + 1];
        uint8_t *dst = out + (size_t)yy * w * 3;
        for (int xx = 0; xx < w; xx++) {
            int32_t s0 = 1 << (PREC_BITS - 1), s1 = s0, s2 = s0;
            for (int y = 0; y < ymax; y++) {
                const uint8_t *p = in + ((size_t)(y + ymin) * w + xx) * 3;
                s0 += p[0] * k[y];
                s1 += p[1] * k[y];
                s2 += p[2] * k[y];
            }
            dst[3 * xx] = clip8(s0);
            dst[3 * xx + 1] = clip8(s1);
            dst[3 * xx + 2] = clip8(s2);
        }
    }
}

int dsv4_image_resize_bicubic(const uint8_t *src, int src_w, int src_h, uint8_t *dst, int dst_w, int dst_h,
                              char *err, size_t errlen) {
    if (src_w < 1 || src_h < 1 || dst_w < 1 || dst_h < 1)
        return dsv4_fail(err, errlen, "resize %d x %d -> %d x %d: width and height must be > 0", src_w, src_h, dst_w,
                         dst_h);
    if (src_w == dst_w && src_h == dst_h) {
        memcpy(dst, src, (size_t)src_w * src_h * 3);
        return 0;
    }
    int need_h = dst_w != src_w, need_v = dst_h != src_h;
    int *bv = NULL, *bh = NULL;
    int32_t *kv = NULL, *kh = NULL;
    uint8_t *tmp = NULL;
    int rc = -1;
    int ksv = precompute(src_h, dst_h, &bv, &kv);
    int ksh = need_h ? precompute(src_w, dst_w, &bh, &kh) : 1;
    if (ksv == 0 || ksh == 0) {
        dsv4_fail(err, errlen, "resize %d x %d -> %d x %d: the filter is too long (Pillow refuses it with "
                  "MemoryError)", src_w, src_h, dst_w, dst_h);
        goto done;
    }
    if (ksv < 0 || ksh < 0) goto oom;
    /* the source rows the vertical pass reads */
    int y_first = bv[0], y_last = bv[2 * dst_h - 2] + bv[2 * dst_h - 1];
    const uint8_t *vin = src;
    if (need_h) {
        for (int i = 0; i < dst_h; i++) bv[2 * i] -= y_first;
        size_t rows = (size_t)(y_last - y_first);
        uint8_t *hout = need_v ? (tmp = malloc((size_t)dst_w * rows * 3)) : dst;
        if (!hout) goto oom;
        pass_h(src, src_w, y_first, (int)rows, hout, dst_w, ksh, bh, kh);
        vin = hout;
    }
    if (need_v) pass_v(vin, dst_w, dst, dst_h, ksv, bv, kv);
    rc = 0;
    goto done;
oom:
    dsv4_fail(err, errlen, "resize %d x %d -> %d x %d: out of memory", src_w, src_h, dst_w, dst_h);
done:
    free(bv);
    free(kv);
    free(bh);
    free(kh);
    free(tmp);
    return rc;
}
