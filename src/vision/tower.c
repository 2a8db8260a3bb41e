/* vision/tower.c — the V4.1 vision tower and aligner (vision/tower.h; docs/vision.md "Tower and aligner").
 * Every rounding point and operation order follows tools/reference/vision_v41.py; the matrix products go through
 * the kernels (dsv4_linear for the weights, dsv4_linear_bf16x for attention scores and P.V) and the thread pool. */
#include "vision/tower.h"

#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "kernels/kernels.h"
#include "kernels/pool.h"
#include "vision/tower_simd.h"

#define VT_EPS 1e-6f
#define VT_QB DSV4_VT_FAST_QB   /* queries per attention task (one head each; the score GEMM's "weight" rows) */

typedef struct {
    dsv4_wview wqkv, wo, w1, w2;
    float *bqkv, *bo, *norm1, *norm2;
} vt_block;

struct dsv4_vtower {
    dsv4_vtower_config c;
    dsv4_wview patch_w, a_w1, a_w2;
    float *patch_b, *norm, *a_b1, *a_b2;
    vt_block *blocks;
    int n_blocks_loaded;
};

static float bf(float v) { return dsv4_round_bf16(v); }

/* ------------------------------------------------------------------ loading */
static const st_tensor *find(const st_set *s, const char *name, int ndim, int64_t d0, int64_t d1, char *err,
                             size_t errlen) {
    const st_tensor *t = st_find(s, name);
    char want[64], got[64];
    int64_t shape[2] = {d0, d1};
    if (!t) return dsv4_fail(err, errlen, "missing tensor '%s' (vision tower)", name), NULL;
    int ok = (t->dtype == ST_BF16 || t->dtype == ST_F32) && t->ndim == ndim && t->shape[0] == d0 &&
             (ndim == 1 || t->shape[1] == d1);
    if (!ok) {
        st_format_shape(want, sizeof want, ndim, shape);
        st_format_shape(got, sizeof got, t->ndim, t->shape);
        dsv4_fail(err, errlen, "%s: tensor '%s': expected BF16 or F32 %s, found %s %s", t->file, name, want,
                  st_dtype_name(t->dtype), got);
        return NULL;
    }
    return t;
}

static int load_matrix(dsv4_wview *w, const st_set *s, const char *name, int rows, int cols, char *err,
                       size_t errlen) {
    const st_tensor *t = find(s, name, 2, rows, cols, err, errlen);
    if (!t) return -1;
    w->fmt = t->dtype == ST_BF16 ? DSV4_W_BF16 : DSV4_W_F32;
    w->rows = rows; w->cols = cols; w->data = t->data; w->scale = NULL;
    return 0;
}

/* A vector as an owned F32 copy (BF16 widened exactly). */
static int load_vector(float **out, const st_set *s, const char *name, int n, char *err, size_t errlen) {
    const st_tensor *t = find(s, name, 1, n, 0, err, errlen);
    if (!t) return -1;
    float *v = malloc((size_t)n * sizeof(float));
    if (!v) return dsv4_fail(err, errlen, "out of memory loading '%s'", name);
    if (t->dtype == ST_F32) {
        memcpy(v, t->data, (size_t)n * sizeof(float));
    } else {
        const uint8_t *p = t->data;
        for (int i = 0; i < n; i++) v[i] = dsv4_bf16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
    }
    *out = v;
    return 0;
}

void dsv4_vtower_free(dsv4_vtower *t) {
    if (!t) return;
    for (int i = 0; i < t->n_blocks_loaded; i++) {
        vt_block *b = &t->blocks[i];
        free(b->bqkv); free(b->bo); free(b->norm1); free(b->norm2);
    }
    free(t->blocks);
    free(t->patch_b); free(t->norm); free(t->a_b1); free(t->a_b2);
    free(t);
}

/* The tower's checkpoint names (vision/tower.h): the global tensors in load order, then per block
 * "vision.blocks.N." + each suffix. One list for the loader and dsv4_vtower_mark_used. */
static const char *const VT_GLOBAL[7] = {"vision.patch_embed.proj.weight", "vision.patch_embed.proj.bias",
                                         "vision.norm.weight", "aligner.w1.weight", "aligner.w1.bias",
                                         "aligner.w2.weight", "aligner.w2.bias"};
static const char *const VT_BLOCK[8] = {"norm1.weight", "attn.wqkv.weight", "attn.wqkv.bias", "attn.wo.weight",
                                        "attn.wo.bias", "norm2.weight", "mlp.w1.weight", "mlp.w2.weight"};

void dsv4_vtower_mark_used(const dsv4_vtower_config *c, const st_set *s, unsigned char *used) {
    for (int k = 0; k < 7 + c->n_layers * 8; k++) {
        char nm[96];
        if (k < 7) snprintf(nm, sizeof nm, "%s", VT_GLOBAL[k]);
        else snprintf(nm, sizeof nm, "vision.blocks.%d.%s", (k - 7) / 8, VT_BLOCK[(k - 7) % 8]);
        const st_tensor *t = st_find(s, nm);
        if (t) used[t - st_at(s, 0)] = 1;
    }
}

int dsv4_vtower_load(dsv4_vtower **out, const st_set *s, const dsv4_vtower_config *c, char *err, size_t errlen) {
    *out = NULL;
    if (c->n_layers < 0 || c->n_layers > 1024 || c->dim < 1 || c->dim > (1 << 16) || c->n_heads < 1 ||
        c->dim % c->n_heads || c->inter_dim < 1 || c->inter_dim > (1 << 18) || c->patch_size < 1 ||
        c->patch_size > 1024 || c->downsample_ratio < 1 || c->downsample_ratio > 64 || c->lm_dim < 1 ||
        c->lm_dim > (1 << 18) || !(c->rope_theta > 0))
        return dsv4_fail(err, errlen, "vision tower: configuration out of range (layers %d, dim %d, heads %d, "
                         "inter %d, patch %d, downsample %d, lm width %d)", c->n_layers, c->dim, c->n_heads,
                         c->inter_dim, c->patch_size, c->downsample_ratio, c->lm_dim);
    if ((c->dim / c->n_heads) % 32 || c->dim / c->n_heads > 2048)
        return dsv4_fail(err, errlen, "vision tower: head_dim %d (hidden_size %d / num_attention_heads %d) must be "
                         "a multiple of 32 (at most 2048)", c->dim / c->n_heads, c->dim, c->n_heads);
    dsv4_vtower *t = calloc(1, sizeof *t);
    if (!t) return dsv4_fail(err, errlen, "out of memory");
    t->c = *c;
    int D = c->dim, I = c->inter_dim, L = c->lm_dim, r2 = c->downsample_ratio * c->downsample_ratio;
    int P = 3 * c->patch_size * c->patch_size;
    t->blocks = calloc((size_t)(c->n_layers ? c->n_layers : 1), sizeof *t->blocks);
    if (!t->blocks) { dsv4_vtower_free(t); return dsv4_fail(err, errlen, "out of memory"); }
    if (load_matrix(&t->patch_w, s, VT_GLOBAL[0], D, P, err, errlen) ||
        load_vector(&t->patch_b, s, VT_GLOBAL[1], D, err, errlen) ||
        load_vector(&t->norm, s, VT_GLOBAL[2], D, err, errlen) ||
        load_matrix(&t->a_w1, s, VT_GLOBAL[3], L, D * r2, err, errlen) ||
        load_vector(&t->a_b1, s, VT_GLOBAL[4], L, err, errlen) ||
        load_matrix(&t->a_w2, s, VT_GLOBAL[5], L, L, err, errlen) ||
        load_vector(&t->a_b2, s, VT_GLOBAL[6], L, err, errlen)) {
        dsv4_vtower_free(t);
        return -1;
    }
    for (int i = 0; i < c->n_layers; i++) {
        vt_block *b = &t->blocks[i];
        t->n_blocks_loaded = i + 1;
        char n[8][96];
        for (int k = 0; k < 8; k++) snprintf(n[k], sizeof n[k], "vision.blocks.%d.%s", i, VT_BLOCK[k]);
        if (load_vector(&b->norm1, s, n[0], D, err, errlen) ||
            load_matrix(&b->wqkv, s, n[1], 3 * D, D, err, errlen) ||
            load_vector(&b->bqkv, s, n[2], 3 * D, err, errlen) ||
            load_matrix(&b->wo, s, n[3], D, D, err, errlen) ||
            load_vector(&b->bo, s, n[4], D, err, errlen) ||
            load_vector(&b->norm2, s, n[5], D, err, errlen) ||
            load_matrix(&b->w1, s, n[6], 2 * I, D, err, errlen) ||
            load_matrix(&b->w2, s, n[7], D, I, err, errlen)) {
            dsv4_vtower_free(t);
            return -1;
        }
    }
    *out = t;
    return 0;
}

int dsv4_vtower_config_from(dsv4_vtower_config *out, const dsv4_config *c, const char *what, char *err,
                            size_t errlen) {
    const dsv4_config_v41 *x = &c->x;
    memset(out, 0, sizeof *out);
    if (x->vision_n_layers <= 0)
        return dsv4_fail(err, errlen, "%s: no vision tower (vision_config.num_hidden_layers is 0)", what ? what : "model");
    out->n_layers = x->vision_n_layers;
    out->dim = x->vision_dim;
    out->n_heads = x->vision_n_heads;
    out->inter_dim = x->vision_inter_dim;
    out->patch_size = x->vision_patch_size;
    out->downsample_ratio = x->vision_downsample_ratio;
    out->lm_dim = c->dim;
    out->rope_theta = x->vision_rope_theta;
    return 0;
}

const dsv4_vtower_config *dsv4_vtower_cfg(const dsv4_vtower *t) { return &t->c; }

int dsv4_vtower_n_rows(const dsv4_vtower_config *c, int n_h, int n_w) {
    int r = c->downsample_ratio;
    return ((n_h + r - 1) / r) * ((n_w + r - 1) / r);
}

/* ------------------------------------------------------------------ operations */
/* y = bf16(fl32(x . W) + b) for n rows (b may be NULL). */
/* In calls of at most VT_TOK tokens: each output is independent of the call's token count (kernels.h), and the
 * activations of a call (VT_TOK x cols BF16) then stay in the core's L2 while every weight tile passes over them
 * (the whole 93 x 93 grid at once, 17 MB per product, ran at half the speed). */
#define VT_TOK 256
static void linear(float *y, const dsv4_wview *w, const float *b, const float *x, int n, float *scratch) {
    for (int t0 = 0; t0 < n; t0 += VT_TOK)
        dsv4_linear(y + (size_t)t0 * w->rows, w, x + (size_t)t0 * w->cols, n - t0 < VT_TOK ? n - t0 : VT_TOK, 0,
                    scratch);
    for (int t = 0; t < n; t++) {
        float *yr = y + (size_t)t * w->rows;
        for (int j = 0; j < w->rows; j++) yr[j] = bf(b ? yr[j] + b[j] : yr[j]);
    }
}

/* RMSNorm of n rows of d: ms = fl32(mean x^2) (summed in double), r = fl32(1 / sqrt(ms + eps)),
 * y = bf16(w * (x * r)). */
static void rmsnorm(float *y, const float *x, const float *w, int n, int d) {
    for (int t = 0; t < n; t++) {
        const float *xr = x + (size_t)t * d;
        float *yr = y + (size_t)t * d;
        double ss = 0;
        for (int i = 0; i < d; i++) ss += (double)xr[i] * xr[i];
        float ms = (float)(ss / d);
        float r = (float)(1.0 / sqrt((double)(ms + VT_EPS)));
        for (int i = 0; i < d; i++) yr[i] = bf(w[i] * (xr[i] * r));
    }
}

/* cos / sin [n][hd/2] of the 2D split-half RoPE: angles [row * f_0..f_{q-1}, col * f_0..f_{q-1}], q = hd/4,
 * f_i = fl32(1 / fl32(theta ^ fl32(2i / (hd/2)))), angle = fl32(pos * f_i), cos/sin correctly rounded. */
static void rope_tables(float *cs, float *sn, int n_h, int n_w, int hd, float theta) {
    int half = hd / 2, q = half / 2;
    float f[512];
    for (int i = 0; i < q; i++) {
        float e = (float)(2.0 * i / half);
        float pw = (float)pow((double)theta, (double)e);
        f[i] = (float)(1.0 / (double)pw);
    }
    for (int a = 0; a < n_h; a++)
        for (int b = 0; b < n_w; b++) {
            size_t o = ((size_t)a * n_w + b) * half;
            for (int i = 0; i < q; i++) {
                float ra = (float)a * f[i], ca = (float)b * f[i];
                cs[o + i] = (float)cos((double)ra); sn[o + i] = (float)sin((double)ra);
                cs[o + q + i] = (float)cos((double)ca); sn[o + q + i] = (float)sin((double)ca);
            }
        }
}

/* Rotate one head vector x[hd] (BF16 values) in place: [x1 c - x2 s, x2 c + x1 s], F32 steps, BF16 result. */
static void rotate(float *x, const float *c, const float *s, int hd) {
    int h = hd / 2;
    for (int i = 0; i < h; i++) {
        float x1 = x[i], x2 = x[h + i];
        float a = x1 * c[i], b = x2 * s[i], d = x2 * c[i], e = x1 * s[i];
        x[i] = bf(a - b);
        x[h + i] = bf(d + e);
    }
}

/* exp(x) for the softmax (x <= 0) in F32 operations only, so that the reference repeats it bit for bit with torch
 * float32 tensors (tools/reference/vision_v41.py softmax_exp): k = round-to-even(x log2 e) by the 1.5 * 2^23 trick,
 * r = (x - k ln2_hi) - k ln2_lo (Cody-Waite), the degree-6 Taylor polynomial of e^r in Horner form, times 2^k (exact).
 * Within 3 F32 ulps of e^x; x < -86 gives 0 (e^-86 < 2^-124: nothing a P.V sum whose largest term is 1 can show;
 * the cut keeps 2^k a normal number).
 * Why not libm: the result then depends on no C library (the goldens hold on any libm), and it is cheaper than a
 * correctly rounded double exp (n^2 calls per head and block: 3.5 vs 5.4 ns here). */
static inline float softmax_exp(float x) {
    if (!(x >= -86.0f)) return 0.0f;
    const float magic = 12582912.0f;                 /* 1.5 * 2^23 */
    float k = (x * 1.44269502f + magic) - magic;     /* fl32(log2 e) */
    float r = (x - k * 0.693145752f) - k * 1.42860677e-06f;
    float p = 1.38888892e-03f;                       /* fl32(1/720) */
    p = p * r + 8.33333377e-03f;                     /* 1/120 */
    p = p * r + 4.16666679e-02f;                     /* 1/24 */
    p = p * r + 1.66666672e-01f;                     /* 1/6 */
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    union { uint32_t u; float f; } e = {(uint32_t)((int)k + 127) << 23};
    return p * e.f;
}

float dsv4_vtower_softmax_exp(float x) { return softmax_exp(x); }

#define VT_AL64(b) (((size_t)(b) + 63) & ~(size_t)63)

/* Work of one attention task (tower_simd.h): [VT_QB][hd] queries (BF16, or F32 on avx2), [n][VT_QB] F32 scores,
 * [VT_QB][npad] P (BF16, or F32 on avx2), [VT_QB][hd] F32 P.V; each part 64-byte aligned. */
size_t dsv4_vt_attn_work_bytes(int n, int npad, int hd) {
    return VT_AL64((size_t)VT_QB * hd * 4) + VT_AL64((size_t)n * VT_QB * 4) + VT_AL64((size_t)VT_QB * npad * 4) +
           VT_AL64((size_t)VT_QB * hd * 4);
}

enum { VT_PORTABLE, VT_AVX512, VT_AVX2 };

typedef struct {
    int n, npad, H, hd, kind;         /* tokens, keys padded to 32, heads, head_dim, which form (VT_PORTABLE...) */
    const uint16_t *qb, *kb, *vt;     /* per head: [n][hd], [n][hd], [hd][npad] */
    char *work;                       /* nslot slots of dsv4_vt_attn_work_bytes(n, npad, hd), 64-byte aligned */
    size_t work_bytes;
    int nslot;                        /* at least the pool's thread count: tasks running at once */
    atomic_int *busy;                 /* [nslot] slot in use */
    float scale;
    float *o;                         /* [n][H * hd] */
} attn_job;

/* One head h, queries [qs, qs + nq), portable. Same products and sums as the reference's order-free definition: the
 * scores' dot products in the kernels' pair-lane order (symmetric in q and k), max and the sum of P per query in key
 * order. */
static void attn_portable(const attn_job *a, int h, int qs, int nq, char *work) {
    int n = a->n, npad = a->npad, hd = a->hd;
    char *w = work + VT_AL64((size_t)VT_QB * hd * 4);
    float *sc = (float *)w;
    w += VT_AL64((size_t)n * VT_QB * 4);
    uint16_t *pb = (uint16_t *)w;
    w += VT_AL64((size_t)VT_QB * npad * 4);
    float *pv = (float *)w;
    /* scores sc[key][query]: the block's queries are the "weight" (decoded once), every key a row of the GEMM */
    dsv4_wview wq = {DSV4_W_BF16, nq, hd, a->qb + ((size_t)h * n + qs) * hd, NULL};
    dsv4_linear_bf16x(sc, &wq, a->kb + (size_t)h * n * hd, (size_t)hd, NULL, n, 0);
    float mx[VT_QB], Z[VT_QB];
    double sum[VT_QB];
    for (int t = 0; t < nq; t++) { mx[t] = -INFINITY; sum[t] = 0; }
    for (int j = 0; j < n; j++) {
        float *z = sc + (size_t)j * nq;
        for (int t = 0; t < nq; t++) {
            z[t] *= a->scale;
            if (z[t] > mx[t]) mx[t] = z[t];
        }
    }
    /* P (BF16) transposed to [query][key] for the P.V product; Z summed in key order */
    for (int j = 0; j < n; j++) {
        const float *z = sc + (size_t)j * nq;
        for (int t = 0; t < nq; t++) {
            float p = softmax_exp(z[t] - mx[t]);
            sum[t] += p;
            pb[(size_t)t * npad + j] = dsv4_f32_to_bf16(p);
        }
    }
    for (int t = 0; t < nq; t++) {
        for (int j = n; j < npad; j++) pb[(size_t)t * npad + j] = 0;
        Z[t] = (float)sum[t];
    }
    dsv4_wview wv = {DSV4_W_BF16, hd, npad, a->vt + (size_t)h * hd * npad, NULL};
    dsv4_linear_bf16x(pv, &wv, pb, (size_t)npad, NULL, nq, 0);
    for (int t = 0; t < nq; t++) {
        float *o = a->o + (size_t)(qs + t) * a->H * hd + (size_t)h * hd;
        for (int d = 0; d < hd; d++) o[d] = bf(pv[(size_t)t * hd + d] / Z[t]);
    }
}

/* Task i: query block i / H, head i % H, on a free work slot (at most nslot tasks run at once: the pool's threads). */
static void attn_task(void *ctx, int i) {
    const attn_job *a = ctx;
    int h = i % a->H, qs = (i / a->H) * VT_QB, nq = a->n - qs < VT_QB ? a->n - qs : VT_QB, slot = -1;
    while (slot < 0)
        for (int s = 0; s < a->nslot && slot < 0; s++) {
            int z = 0;
            if (atomic_compare_exchange_strong(&a->busy[s], &z, 1)) slot = s;
        }
    char *work = a->work + (size_t)slot * a->work_bytes;
#if defined(__x86_64__)
    size_t hn = (size_t)h * a->n * a->hd, ldo = (size_t)a->H * a->hd;
    const uint16_t *vh = a->vt + (size_t)h * a->hd * a->npad;
    if (a->kind == VT_AVX512)        /* tower_avx512.c: the same computation in one dedicated loop */
        dsv4_vt_attn_avx512(a->o + (size_t)h * a->hd, ldo, a->qb + hn, a->kb + hn, vh, a->n, a->npad, a->hd, qs, nq,
                            a->scale, work);
    else if (a->kind == VT_AVX2)     /* tower_avx2.c */
        dsv4_vt_attn_avx2(a->o + (size_t)h * a->hd, ldo, a->qb + hn, a->kb + hn, vh, a->n, a->npad, a->hd, qs, nq,
                          a->scale, work);
    else
#endif
        attn_portable(a, h, qs, nq, work);
    atomic_store(&a->busy[slot], 0);
}

/* Work slots for the attention (one per thread that may run a task) and their bytes. */
static int attn_slots(void) { int t = dsv4_pool_threads(); return t < 1 ? 1 : t; }
static size_t attn_work_total(int n, int npad, int hd, int nslot) {
    return VT_AL64((size_t)nslot * dsv4_vt_attn_work_bytes(n, npad, hd));
}

/* Bidirectional attention of one block: o[t][h*hd + d] for all n tokens and H heads, one pool task per head and
 * block of VT_QB queries, all in one parallel call. portable: the kernels' dsv4_linear_bf16x and the scalar exp
 * whatever the path (the definition the SIMD forms are tested against); else the fastest form of the path in use
 * (same bits). work: attn_work_total(n, npad, hd, nslot) bytes, nslot >= the pool's thread count. */
static void attention(float *o, const uint16_t *qb, const uint16_t *kb, const uint16_t *vt, int n, int npad, int H,
                      int hd, float scale, int portable, char *work, int nslot) {
    atomic_int busy[256];
    if (nslot > 256) nslot = 256;
    for (int s = 0; s < nslot; s++) atomic_init(&busy[s], 0);
    attn_job job = {n, npad, H, hd, VT_PORTABLE, qb, kb, vt, work, dsv4_vt_attn_work_bytes(n, npad, hd), nslot,
                    busy, scale, o};
#if defined(__x86_64__)
    dsv4_simd_path path = dsv4_kernel_path_id();
    if (!portable && path == DSV4_PATH_AVX512) job.kind = VT_AVX512;
    if (!portable && path == DSV4_PATH_AVX2) job.kind = VT_AVX2;
#else
    (void)portable;
#endif
    dsv4_parallel_for(H * ((n + VT_QB - 1) / VT_QB), attn_task, &job);
}

int dsv4_vtower_attention(float *o, const uint16_t *q, const uint16_t *k, const uint16_t *vt, int n, int H, int hd,
                          int portable) {
    int npad = (n + 31) & ~31, nslot = attn_slots();
    char *work = aligned_alloc(64, attn_work_total(n, npad, hd, nslot));
    if (!work) return -1;
    attention(o, q, k, vt, n, npad, H, hd, 1.0f / sqrtf((float)hd), portable, work, nslot);
    free(work);
    return 0;
}

/* ------------------------------------------------------------------ forward */
#ifdef VT_PROFILE   /* per-part process CPU time, printed to stderr by each forward (a measuring build only) */
#include <time.h>
static double vt_cpu(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static double vt_prof[8], vt_t0;
#define VT_MARK(i) do { double t_ = vt_cpu(); vt_prof[i] += t_ - vt_t0; vt_t0 = t_; } while (0)
#else
#define VT_MARK(i) ((void)0)
#endif

int dsv4_vtower_forward(const dsv4_vtower *t, const float *patches, int n_h, int n_w, float *rows,
                        dsv4_vtower_hook hook, void *ctx, char *err, size_t errlen) {
    const dsv4_vtower_config *c = &t->c;
    if (n_h < 1 || n_w < 1 || (int64_t)n_h * n_w > (1 << 24))
        return dsv4_fail(err, errlen, "vision tower: patch grid %d x %d out of range", n_h, n_w);
    int n = n_h * n_w, D = c->dim, H = c->n_heads, hd = D / H, I = c->inter_dim, L = c->lm_dim;
    int r = c->downsample_ratio, P = 3 * c->patch_size * c->patch_size;
    int gh = (n_h + r - 1) / r, gw = (n_w + r - 1) / r, ncell = gh * gw, cd = D * r * r;
    int npad = (n + 31) & ~31;
    int maxc = P;   /* widest input of the per-patch products; the aligner's (ncell rows) apart */
    if (D > maxc) maxc = D;
    if (I > maxc) maxc = I;
    size_t nscr = dsv4_linear_scratch_floats(n, maxc), nscr2 = dsv4_linear_scratch_floats(ncell, cd > L ? cd : L);
    size_t nD = (size_t)n * D;
    float *x = malloc(nD * sizeof(float)), *a = malloc(nD * sizeof(float)), *o = malloc(nD * sizeof(float));
    float *big = malloc((size_t)n * (3 * (size_t)D > 2 * (size_t)I ? 3 * (size_t)D : 2 * (size_t)I) * sizeof(float));
    float *m = malloc((size_t)n * I * sizeof(float));
    float *scratch = malloc((nscr > nscr2 ? nscr : nscr2) * sizeof(float));
    float *cs = malloc((size_t)n * (hd / 2) * sizeof(float)), *sn = malloc((size_t)n * (hd / 2) * sizeof(float));
    /* 64-byte aligned: every head's rows of q, k (hd a multiple of 32) and V^T (npad) start on a cache line */
    uint16_t *qb = aligned_alloc(64, VT_AL64(nD * sizeof(uint16_t))), *kb = aligned_alloc(64, VT_AL64(nD * sizeof(uint16_t)));
    uint16_t *vt = aligned_alloc(64, VT_AL64((size_t)H * hd * npad * sizeof(uint16_t)));
    int nslot = attn_slots();
    char *work = aligned_alloc(64, attn_work_total(n, npad, hd, nslot));
    float *cells = malloc((size_t)ncell * cd * sizeof(float)), *hid = malloc((size_t)ncell * L * sizeof(float));
    int rc = 0;
    if (!x || !a || !o || !big || !m || !scratch || !cs || !sn || !qb || !kb || !vt || !work || !cells ||
        !hid) {
        rc = dsv4_fail(err, errlen, "vision tower: out of memory for a %d x %d patch grid", n_h, n_w);
        goto done;
    }
    linear(x, &t->patch_w, t->patch_b, patches, n, scratch);
    if (hook) hook(ctx, 0, x, n, D);
    rope_tables(cs, sn, n_h, n_w, hd, c->rope_theta);
    float scale = 1.0f / sqrtf((float)hd);
    for (int l = 0; l < c->n_layers; l++) {
        const vt_block *b = &t->blocks[l];
#ifdef VT_PROFILE
        vt_t0 = vt_cpu();
#endif
        /* attention */
        rmsnorm(a, x, b->norm1, n, D);
        VT_MARK(0);
        float *qkv = big;
        linear(qkv, &b->wqkv, b->bqkv, a, n, scratch);
        VT_MARK(1);
        for (int tk = 0; tk < n; tk++) {
            float *row = qkv + (size_t)tk * 3 * D;
            const float *ct = cs + (size_t)tk * (hd / 2), *st = sn + (size_t)tk * (hd / 2);
            for (int h = 0; h < H; h++) {
                float *q = row + (size_t)h * hd, *k = row + D + (size_t)h * hd, *v = row + 2 * D + (size_t)h * hd;
                rotate(q, ct, st, hd);
                rotate(k, ct, st, hd);
                for (int d = 0; d < hd; d++) {
                    qb[((size_t)h * n + tk) * hd + d] = dsv4_f32_to_bf16(q[d]);
                    kb[((size_t)h * n + tk) * hd + d] = dsv4_f32_to_bf16(k[d]);
                    vt[((size_t)h * hd + d) * npad + tk] = dsv4_f32_to_bf16(v[d]);
                }
            }
        }
        for (int h = 0; h < H; h++)
            for (int d = 0; d < hd; d++)
                for (int tk = n; tk < npad; tk++) vt[((size_t)h * hd + d) * npad + tk] = 0;
        VT_MARK(2);
        attention(o, qb, kb, vt, n, npad, H, hd, scale, 0, work, nslot);
        VT_MARK(3);
        linear(a, &b->wo, b->bo, o, n, scratch);
        VT_MARK(1);
        for (size_t i = 0; i < nD; i++) x[i] = bf(x[i] + a[i]);
        /* MLP */
        rmsnorm(a, x, b->norm2, n, D);
        VT_MARK(0);
        float *gu = big;
        linear(gu, &b->w1, NULL, a, n, scratch);
        VT_MARK(1);
        for (int tk = 0; tk < n; tk++) {
            const float *g = gu + (size_t)tk * 2 * I, *u = g + I;
            float *mr = m + (size_t)tk * I;
            for (int j = 0; j < I; j++) {
                float e = (float)exp(-(double)g[j]);
                float sl = bf(g[j] / (1.0f + e));
                mr[j] = bf(sl * u[j]);
            }
        }
        VT_MARK(4);
        linear(a, &b->w2, NULL, m, n, scratch);
        VT_MARK(1);
        for (size_t i = 0; i < nD; i++) x[i] = bf(x[i] + a[i]);
        VT_MARK(0);
        if (hook) hook(ctx, l + 1, x, n, D);
    }
#ifdef VT_PROFILE
    fprintf(stderr, "vt_profile per block (CPU s): norms+residual %.3f, weight products %.3f, rope+pack %.3f, "
            "attention %.3f, silu %.3f\n", vt_prof[0] / c->n_layers, vt_prof[1] / c->n_layers,
            vt_prof[2] / c->n_layers, vt_prof[3] / c->n_layers, vt_prof[4] / c->n_layers);
    memset(vt_prof, 0, sizeof vt_prof);
#if defined(__x86_64__)
    extern unsigned long long dsv4_vt_cyc[4];
    fprintf(stderr, "vt_profile avx512 attention per block (thread CPU s): scores %.3f, softmax %.3f, P.V %.3f, out %.3f\n",
            dsv4_vt_cyc[0] * 1e-9 / c->n_layers, dsv4_vt_cyc[1] * 1e-9 / c->n_layers, dsv4_vt_cyc[2] * 1e-9 / c->n_layers,
            dsv4_vt_cyc[3] * 1e-9 / c->n_layers);
    memset(dsv4_vt_cyc, 0, sizeof dsv4_vt_cyc);
#endif
#endif
    rmsnorm(a, x, t->norm, n, D);
    if (hook) hook(ctx, c->n_layers + 1, a, n, D);
    /* aligner: r x r cells, channel-major (index d * r^2 + kh * r + kw), zero outside the grid */
    for (int ci = 0; ci < gh; ci++)
        for (int cj = 0; cj < gw; cj++) {
            float *cell = cells + ((size_t)ci * gw + cj) * cd;
            for (int kh = 0; kh < r; kh++)
                for (int kw = 0; kw < r; kw++) {
                    int py = ci * r + kh, px = cj * r + kw;
                    const float *src = py < n_h && px < n_w ? a + ((size_t)py * n_w + px) * D : NULL;
                    for (int d = 0; d < D; d++) cell[(size_t)d * r * r + kh * r + kw] = src ? src[d] : 0.0f;
                }
        }
    linear(hid, &t->a_w1, t->a_b1, cells, ncell, scratch);
    const float k_alpha = (float)M_SQRT1_2;
    for (size_t i = 0; i < (size_t)ncell * L; i++) {
        float h = hid[i];
        float e = (float)erf((double)(h * k_alpha));
        hid[i] = bf((h * 0.5f) * (1.0f + e));
    }
    linear(rows, &t->a_w2, t->a_b2, hid, ncell, scratch);
done:
    free(x); free(a); free(o); free(big); free(m); free(scratch); free(cs); free(sn); free(qb); free(kb); free(vt);
    free(work); free(cells); free(hid);
    return rc;
}
