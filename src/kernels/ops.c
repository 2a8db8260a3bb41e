/* kernels/ops.c — RMSNorm (§3.1), RoPE tables and rotation (§3.2), softmax, Sinkhorn (§4.2 step 4)
 * of docs/architecture.md. Scalar C11, no allocation.
 */
#include "kernels/kernels.h"
#include "kernels/ops_simd.h"
#include "kernels/pool.h"
#include "kernels/simd.h"
#include "base/util.h"

#include <math.h>

void dsv4_rmsnorm(float *out, const float *x, const float *w, int n, float eps, int round_bf16) {
    /* mean(x^2) accumulated in double (close to torch's cascaded F32 sum), then F32 like the reference:
     * r = rsqrt(mean + eps); y = w * (x * r). out may alias x. */
    double ss = 0.0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * (double)x[i];
    float mean = (float)(ss / (double)n);
    float r = 1.0f / sqrtf(mean + eps);
    for (int i = 0; i < n; i++) {
        float y = x[i] * r;
        if (w) y = w[i] * y;
        out[i] = round_bf16 ? dsv4_round_bf16(y) : y;
    }
}

/* corr(β) = r · ln(L0 / (2π β)) / (2 ln θ), in double as the reference (Python math). */
static double yarn_corr(double beta, int rope_dim, double theta, int orig_len) {
    return (double)rope_dim * log((double)orig_len / (beta * 2.0 * M_PI)) / (2.0 * log(theta));
}

void dsv4_rope_freqs(float *f, int rope_dim, float theta, int yarn, float factor, int orig_len,
                     float beta_fast, float beta_slow) {
    int half = rope_dim / 2;
    for (int i = 0; i < half; i++) {
        float e = (float)(2 * i) / (float)rope_dim;         /* arange(0, r, 2, f32) / r */
        f[i] = 1.0f / powf(theta, e);                       /* 1.0 / (base ** e) in F32 */
    }
    if (!yarn) return;
    int lo = (int)floor(yarn_corr(beta_fast, rope_dim, theta, orig_len));
    int hi = (int)ceil(yarn_corr(beta_slow, rope_dim, theta, orig_len));
    if (lo < 0) lo = 0;
    if (hi > rope_dim - 1) hi = rope_dim - 1;
    float lo_f = (float)lo, span = (float)(hi - lo);
    if (lo == hi) span = (float)((double)hi + 0.001 - (double)lo);
    for (int i = 0; i < half; i++) {
        /* The reference forms smooth = 1 - ramp and blends f/s*(1-smooth) + f*smooth, all in F32;
         * (1 - smooth) is not always bit-equal to ramp, so follow it literally. */
        float ramp = ((float)i - lo_f) / span;
        if (ramp < 0.0f) ramp = 0.0f;
        if (ramp > 1.0f) ramp = 1.0f;
        float smooth = 1.0f - ramp;
        f[i] = f[i] / factor * (1.0f - smooth) + f[i] * smooth;
    }
}

void dsv4_rope(float *x, int rope_dim, const float *f, int64_t pos, int inverse) {
    float p = (float)pos;
    for (int j = 0; j < rope_dim / 2; j++) {
        float ang = p * f[j];                               /* fl32(pos * f_j) */
        float c = (float)cos((double)ang), s = (float)sin((double)ang);
        if (inverse) s = -s;                                /* cos(-φ) = cos φ, sin(-φ) = -sin φ exactly */
        float a = x[2 * j], b = x[2 * j + 1];
        x[2 * j] = dsv4_round_bf16(a * c - b * s);
        x[2 * j + 1] = dsv4_round_bf16(a * s + b * c);
    }
}

void dsv4_softmax(float *x, int n) {
    if (n <= 0) return;
    float m = x[0];
    for (int i = 1; i < n; i++) if (x[i] > m) m = x[i];
    float sum = 0.0f;
    for (int i = 0; i < n; i++) { x[i] = expf(x[i] - m); sum += x[i]; }
    for (int i = 0; i < n; i++) x[i] = x[i] / sum;
}

/* Divide every line of the hc x hc row-major matrix M by (its F32 sum, in ascending element order, + eps).
 * Columns: line stride 1, element stride hc. Rows: line stride hc, element stride 1. */
static void sk_norm(float *M, int hc, float eps, int line_stride, int elem_stride) {
    for (int a = 0; a < hc; a++) {
        float *l = M + a * line_stride;
        float s = 0.0f;
        for (int b = 0; b < hc; b++) s += l[b * elem_stride];
        s += eps;
        for (int b = 0; b < hc; b++) l[b * elem_stride] /= s;
    }
}
static void sk_cols(float *M, int hc, float eps) { sk_norm(M, hc, eps, 1, hc); }
static void sk_rows(float *M, int hc, float eps) { sk_norm(M, hc, eps, hc, 1); }

void dsv4_sinkhorn(float *M, int hc, int iters, float eps) {
    for (int j = 0; j < hc; j++) {
        dsv4_softmax(M + j * hc, hc);
        for (int k = 0; k < hc; k++) M[j * hc + k] += eps;
    }
    sk_cols(M, hc, eps);
    for (int it = 1; it < iters; it++) {
        sk_rows(M, hc, eps);
        sk_cols(M, hc, eps);
    }
}

void dsv4_head_rms_bf16_scalar(float *x, int n, float eps) {
    double ss = 0; /* torch accumulates the BF16 mean in F32; the sum is rounded to BF16 below either way */
    for (int i = 0; i < n; i++) ss += (double)dsv4_round_bf16(x[i] * x[i]);
    float r = dsv4_head_rms_r(ss, n, eps);
    for (int i = 0; i < n; i++) x[i] = dsv4_round_bf16(x[i] * r);
}

void dsv4_head_rms_bf16(float *x, int n, float eps) { dsv4_elem()->head_rms_bf16(x, n, eps); }

/* Order of dsv4_select_topk: higher score first, ties -> lower index first. */
static inline int topk_better(float sa, int ia, float sb, int ib) { return sa > sb || (sa == sb && ia < ib); }

void dsv4_select_topk(int *idx, int n, int k, const float *sc) {
    int lo = 0, hi = n - 1;
    while (lo < hi) {   /* quickselect */
        int mid = lo + (hi - lo) / 2;
        int piv = idx[mid];
        float ps = sc[piv];
        int i = lo, j = hi;
        while (i <= j) {
            while (topk_better(sc[idx[i]], idx[i], ps, piv)) i++;
            while (topk_better(ps, piv, sc[idx[j]], idx[j])) j--;
            if (i <= j) { int tmp = idx[i]; idx[i] = idx[j]; idx[j] = tmp; i++; j--; }
        }
        if (k - 1 <= j) hi = j;
        else if (k - 1 >= i) lo = i;
        else break;
    }
}

/* ------------------------------------------------------------------ elementwise ops (ops_simd.h): scalar
 * definitions and the choice of the path. */
void dsv4_pack_bf16_scalar(uint16_t *d, const float *x, int n, int nperm, int np) {
    for (int c = 0; c < nperm; c++) d[c] = dsv4_f32_to_bf16(dsv4_ftz(x[(c & ~63) + dsv4_fp8_perm(c & 63)]));
    for (int c = nperm; c < n; c++) d[c] = dsv4_f32_to_bf16(dsv4_ftz(x[c]));
    for (int c = n; c < np; c++) d[c] = 0;
}

void dsv4_hc_collapse_scalar(float *u, const float *x, const float *p, int hc, int D) {
    for (int d = 0; d < D; d++) {
        float a = 0;
        for (int i = 0; i < hc; i++) a += p[i] * x[(size_t)i * D + d];
        u[d] = dsv4_round_bf16(a);
    }
}

void dsv4_hc_post_scalar(float *x, const float *y, const float *post, const float *M, int hc, int D) {
    float old[DSV4_ELEM_MAX_HC];
    for (int d = 0; d < D; d++) {
        for (int j = 0; j < hc; j++) old[j] = x[(size_t)j * D + d];
        for (int k = 0; k < hc; k++) {
            float a = post[k] * y[d];
            for (int j = 0; j < hc; j++) a += M[j * hc + k] * old[j];
            x[(size_t)k * D + d] = dsv4_round_bf16(a);
        }
    }
}

static const dsv4_elem_ops elem_scalar = {dsv4_fp8_sim_scalar, dsv4_pack_bf16_scalar, dsv4_hc_collapse_scalar,
                                          dsv4_hc_post_scalar, dsv4_head_rms_bf16_scalar};
#if defined(__x86_64__) && defined(__GNUC__)
static const dsv4_elem_ops elem_avx2 = {dsv4_fp8_sim_avx2, dsv4_pack_bf16_avx2, dsv4_hc_collapse_avx2,
                                        dsv4_hc_post_avx2, dsv4_head_rms_bf16_avx2};
static const dsv4_elem_ops elem_avx512 = {dsv4_fp8_sim_avx512, dsv4_pack_bf16_avx512, dsv4_hc_collapse_avx512,
                                          dsv4_hc_post_avx512, dsv4_head_rms_bf16_avx512};
#endif
#if defined(__aarch64__) && defined(__ARM_NEON)
static const dsv4_elem_ops elem_neon = {dsv4_fp8_sim_neon, dsv4_pack_bf16_neon, dsv4_hc_collapse_neon,
                                        dsv4_hc_post_neon, dsv4_head_rms_bf16_neon};
#endif

const dsv4_elem_ops *dsv4_elem_for(int path) {
    switch (path) {
    case DSV4_PATH_SCALAR: return &elem_scalar;
#if defined(__x86_64__) && defined(__GNUC__)
    case DSV4_PATH_AVX2: return &elem_avx2;
    case DSV4_PATH_AVX512: return &elem_avx512;
#endif
#if defined(__aarch64__) && defined(__ARM_NEON)
    case DSV4_PATH_NEON: return &elem_neon;
#endif
    default: return NULL;
    }
}

const dsv4_elem_ops *dsv4_elem(void) {
    const dsv4_elem_ops *o = dsv4_elem_for(dsv4_kernel_path_id());
    return o ? o : &elem_scalar;
}
