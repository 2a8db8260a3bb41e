/* kernels/matmul.c — weight views, row decoding, and the F32-weight linear (docs/architecture.md §2.3
 * decode rules). BF16/FP8/FP4 weights go through linear.c (pair-lane order, kernels/simd.h). Scalar C11
 * (+ GCC vector extensions when available, which compute exactly the same lane-wise operations). No
 * allocation: weight rows are decoded in tiles into a stack buffer.
 *
 * Fixed reduction order of the F32 path: for output (t, r),
 *   acc = 0; for each 128-column block b (the last may be short):
 *     lane[l] = sum over k in b with k % 8 == l, in increasing k, of W[r][k] * x[t][k]   (lane[l] starts at 0)
 *     acc += ((lane0 + lane1) + (lane2 + lane3)) + ((lane4 + lane5) + (lane6 + lane7))
 * so results never depend on n_tok, on the row tiling or on how many rows a view holds.
 */
#include "kernels/kernels.h"
#include "kernels/simd.h"
#include "base/util.h"

#include <string.h>

#define KBLK 128  /* reduction block (= FP8 activation/weight block) */
#define KC 1024   /* columns decoded per tile (multiple of KBLK) */
#define RB 4      /* rows per tile */

static inline int cdiv(int a, int b) { return (a + b - 1) / b; }

dsv4_wview dsv4_wview_rows(const dsv4_wview *w, int r0, int nr) {
    dsv4_wview v = *w;
    v.rows = nr;
    switch (w->fmt) {
    case DSV4_W_F32:
        v.data = (const float *)w->data + (size_t)r0 * w->cols;
        break;
    case DSV4_W_BF16:
        v.data = (const uint16_t *)w->data + (size_t)r0 * w->cols;
        break;
    case DSV4_W_FP8:
        v.data = (const uint8_t *)w->data + (size_t)r0 * w->cols;
        v.scale = w->scale + (size_t)(r0 / 128) * cdiv(w->cols, 128);
        break;
    case DSV4_W_FP4:
        v.data = (const uint8_t *)w->data + (size_t)r0 * (w->cols / 2);
        v.scale = w->scale + (size_t)r0 * cdiv(w->cols, 32);
        break;
    case DSV4_W_FP8_32:
        v.data = (const uint8_t *)w->data + (size_t)r0 * w->cols;
        v.scale = w->scale + (size_t)(r0 / 32) * cdiv(w->cols, 32);
        break;
    }
    return v;
}

/* Decode W[r][c0 .. c0+n) to F32 into dst. For FP4, c0 and n are even (c0 is always a multiple of KC). */
static void decode_span(const dsv4_wview *w, int r, int c0, int n, float *dst) {
    size_t cols = (size_t)w->cols;
    switch (w->fmt) {
    case DSV4_W_F32:
        memcpy(dst, (const float *)w->data + r * cols + c0, (size_t)n * sizeof(float));
        break;
    case DSV4_W_BF16: {
        const uint16_t *src = (const uint16_t *)w->data + r * cols + c0;
        for (int i = 0; i < n; i++) dst[i] = dsv4_bf16_to_f32(src[i]);
        break;
    }
    case DSV4_W_FP8:
    case DSV4_W_FP8_32: {
        const int b = w->fmt == DSV4_W_FP8 ? 128 : 32;
        const uint8_t *src = (const uint8_t *)w->data + r * cols + c0;
        const uint8_t *sc = w->scale + (size_t)(r / b) * cdiv(w->cols, b);
        for (int i = 0; i < n;) {
            int c = c0 + i, end = (c / b + 1) * b - c0;
            if (end > n) end = n;
            float s = dsv4_e8m0_to_f32(sc[c / b]);
            for (; i < end; i++) dst[i] = dsv4_e4m3_lut[src[i]] * s;
        }
        break;
    }
    case DSV4_W_FP4: {
        const uint8_t *src = (const uint8_t *)w->data + r * (cols / 2) + c0 / 2;
        const uint8_t *sc = w->scale + (size_t)r * cdiv(w->cols, 32);
        for (int i = 0; i < n;) {
            int c = c0 + i, end = (c / 32 + 1) * 32 - c0;
            if (end > n) end = n;
            float s = dsv4_e8m0_to_f32(sc[c / 32]);
            for (; i + 1 < end; i += 2) {
                uint8_t b = src[i / 2];
                dst[i] = dsv4_e2m1_lut[b & 15] * s;
                dst[i + 1] = dsv4_e2m1_lut[b >> 4] * s;
            }
            if (i < end) { dst[i] = dsv4_e2m1_lut[src[i / 2] & 15] * s; i++; } /* odd cols: last element */
        }
        break;
    }
    }
}

void dsv4_wview_row(const dsv4_wview *w, int r, float *out) { decode_span(w, r, 0, w->cols, out); }

#if defined(__GNUC__)
typedef float v8f __attribute__((vector_size(32)));
#define LD8(v, p) memcpy(&(v), (p), sizeof(v)) /* unaligned load (macro: no vector-typed ABI) */
#endif

static inline float lane_sum(const float *s) {
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

/* The lanes of one block in plain C (dsv4_f32_lanes_fn; GCC vector extensions compute the same lane-wise
 * operations where available). */
void dsv4_f32_lanes_generic(const float *w, int ldw, int nr, const float *x, int n8, float (*lanes)[8]) {
#if defined(__GNUC__)
    if (nr == RB) {
        v8f s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
        const float *w0 = w, *w1 = w0 + ldw, *w2 = w1 + ldw, *w3 = w2 + ldw;
        for (int k = 0; k < n8; k += 8) {
            v8f xv, a0, a1, a2, a3;
            LD8(xv, x + k); LD8(a0, w0 + k); LD8(a1, w1 + k); LD8(a2, w2 + k); LD8(a3, w3 + k);
            s0 += a0 * xv;
            s1 += a1 * xv;
            s2 += a2 * xv;
            s3 += a3 * xv;
        }
        memcpy(lanes[0], &s0, 32); memcpy(lanes[1], &s1, 32);
        memcpy(lanes[2], &s2, 32); memcpy(lanes[3], &s3, 32);
        return;
    }
    for (int j = 0; j < nr; j++) {
        const float *wj = w + (size_t)j * ldw;
        v8f s = {0};
        for (int k = 0; k < n8; k += 8) {
            v8f a, xv;
            LD8(a, wj + k); LD8(xv, x + k);
            s += a * xv;
        }
        memcpy(lanes[j], &s, 32);
    }
#else
    for (int j = 0; j < nr; j++) {
        const float *wj = w + (size_t)j * ldw;
        for (int l = 0; l < 8; l++) lanes[j][l] = 0.0f;
        for (int k = 0; k < n8; k += 8)
            for (int l = 0; l < 8; l++) lanes[j][l] += wj[k + l] * x[k + l];
    }
#endif
}

/* Per-block partial sums (see the header comment) of nr (1..RB) rows against one activation span:
 * acc[j] += blockwise sums of w[j*ldw + k] * x[k], k in [0, n), n <= KC, blocks aligned at 0. */
static void dot_rows(const float *w, int ldw, int nr, const float *x, int n, float *acc, dsv4_f32_lanes_fn lanes_fn) {
    for (int b0 = 0; b0 < n; b0 += KBLK) {
        int bn = n - b0 < KBLK ? n - b0 : KBLK, n8 = bn & ~7;
        float lanes[RB][8];
        lanes_fn(w + b0, ldw, nr, x + b0, n8, lanes);
        for (int j = 0; j < nr; j++) {
            const float *wj = w + (size_t)j * ldw + b0;
            for (int k = n8; k < bn; k++) lanes[j][k & 7] += wj[k] * x[b0 + k];
            acc[j] += lane_sum(lanes[j]);
        }
    }
}

/* F32 weights (the mHC fn matrices, whose products with BF16 activations are not exact in F32): rows
 * [r0, r0+nr) of out = W x for n_tok tokens, in the 8-lane order above. Called by linear.c's driver. */
void dsv4_linear_f32(float *out, const dsv4_wview *w, const float *x, int n_tok, int r0, int nr, dsv4_f32_lanes_fn lanes) {
    const int rows = w->rows, cols = w->cols;
    float wbuf[RB * KC];
    for (int rb = r0; rb < r0 + nr; rb += RB) {
        int nrr = r0 + nr - rb < RB ? r0 + nr - rb : RB;
        for (int t = 0; t < n_tok; t++)
            for (int j = 0; j < nrr; j++) out[(size_t)t * rows + rb + j] = 0.0f;
        for (int c0 = 0; c0 < cols; c0 += KC) {
            int n = cols - c0 < KC ? cols - c0 : KC;
            /* F32 weights are read in place (the same values, so the same sums); others decoded to a tile */
            const float *wt = wbuf;
            int ldw = KC;
            if (w->fmt == DSV4_W_F32) {
                wt = (const float *)w->data + (size_t)rb * cols + c0;
                ldw = cols;
            } else {
                for (int j = 0; j < nrr; j++) decode_span(w, rb + j, c0, n, wbuf + j * KC);
            }
            for (int t = 0; t < n_tok; t++) {
                float acc[RB];
                float *o = out + (size_t)t * rows + rb;
                for (int j = 0; j < nrr; j++) acc[j] = o[j];
                dot_rows(wt, ldw, nrr, x + (size_t)t * cols + c0, n, acc, lanes);
                for (int j = 0; j < nrr; j++) o[j] = acc[j];
            }
        }
    }
}
