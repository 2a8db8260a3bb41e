/* kernels/linear.c — dsv4_linear (every weight format, threaded) in the pair-lane order
 * defined in kernels/simd.h; the portable scalar path; the choice of the SIMD path (CPUID / AArch64, $DSV4_KERNEL,
 * self-check). Sources: docs/architecture.md §2.3 (formats), §3.3 (FP8 GEMM input).
 *
 * Driver: the activations are FP8-simulated when asked (§3.3) and packed to BF16 once per call, then row
 * blocks are spread over the thread pool; each output element is computed by one thread in the fixed order,
 * so the result depends neither on the thread count nor on n_tok nor on row sub-views.
 */
#include "kernels/kernels.h"
#include "kernels/simd.h"
#include "kernels/pool.h"
#include "kernels/ops_simd.h"
#include "base/util.h"
#include "dsv4.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const uint16_t dsv4_e2m1_bf16[16] = {0x0000, 0x3f00, 0x3f80, 0x3fc0, 0x4000, 0x4040, 0x4080, 0x40c0,
                                     0x8000, 0xbf00, 0xbf80, 0xbfc0, 0xc000, 0xc040, 0xc080, 0xc0c0};
uint16_t dsv4_e4m3_bf16[256];   /* filled once by tables_init (C has no constexpr) */
float dsv4_e8m0_f32[256];

static void tables_init(void) {
    for (int b = 0; b < 256; b++) {
        float v = dsv4_e4m3_to_f32((uint8_t)b);
        uint32_t u; memcpy(&u, &v, 4);
        dsv4_e4m3_bf16[b] = isnan(v) ? (uint16_t)((b & 0x80 ? 0xffc0 : 0x7fc0)) : (uint16_t)(u >> 16);
        dsv4_e8m0_f32[b] = dsv4_e8m0_to_f32((uint8_t)b);
    }
}

static inline int cdiv(int a, int b) { return (a + b - 1) / b; }

/* ------------------------------------------------------------------ scalar path */
void dsv4_tile_decode_scalar(const dsv4_wview *w, int r0, int nr, int c0, int n, uint16_t *tile, int ld) {
    int np = (n + 31) & ~31;
    for (int j = 0; j < nr; j++) {
        uint16_t *t = tile + (size_t)j * ld;
        size_t r = (size_t)(r0 + j);
        switch (w->fmt) {
        case DSV4_W_BF16: {
            const uint16_t *src = (const uint16_t *)w->data + r * (size_t)w->cols + c0;
            memcpy(t, src, (size_t)n * 2);
            break;
        }
        case DSV4_W_FP8: {   /* c0 is a multiple of 64: full 64-column blocks in the FP8 order */
            const uint8_t *src = (const uint8_t *)w->data + r * (size_t)w->cols + c0;
            int nf = n & ~63;
            for (int i = 0; i < nf; i++) t[i] = dsv4_e4m3_bf16[src[(i & ~63) + dsv4_fp8_perm(i & 63)]];
            for (int i = nf; i < n; i++) t[i] = dsv4_e4m3_bf16[src[i]];
            break;
        }
        case DSV4_W_FP8_32: {   /* element order */
            const uint8_t *src = (const uint8_t *)w->data + r * (size_t)w->cols + c0;
            for (int i = 0; i < n; i++) t[i] = dsv4_e4m3_bf16[src[i]];
            break;
        }
        case DSV4_W_FP4: {
            const uint8_t *src = (const uint8_t *)w->data + r * (size_t)(w->cols / 2) + c0 / 2;
            for (int i = 0; i < n; i++) t[i] = dsv4_e2m1_bf16[(src[i / 2] >> ((i & 1) * 4)) & 15];
            break;
        }
        case DSV4_W_F32: break;   /* not used (F32 keeps matmul.c's path) */
        }
        for (int i = n; i < np; i++) t[i] = 0;
    }
}

/* ftz(fma(a, b, L)): one rounding. a*b is exact for the operands here unless it falls below FLT_MIN, so the
 * plain L + a*b is used and libm's fmaf only for those (rare) products. */
static inline float fma_ftz(float a, float b, float L) {
    float p = a * b;
    if (fabsf(p) < 0x1p-126f && a != 0.0f && b != 0.0f) return dsv4_ftz(fmaf(a, b, L));
    return dsv4_ftz(L + p);
}

/* L[i] = ftz(fma(w[2i], x[2i], ftz(fma(w[2i+1], x[2i+1], L[i])))) for one 32-column chunk (inputs flushed: DAZ). */
static inline void dp32_scalar(float *L, const uint16_t *w, const uint16_t *x) {
    for (int i = 0; i < 16; i++) {
        float a = fma_ftz(dsv4_ftz(dsv4_bf16f(w[2 * i + 1])), dsv4_ftz(dsv4_bf16f(x[2 * i + 1])), L[i]);
        L[i] = fma_ftz(dsv4_ftz(dsv4_bf16f(w[2 * i])), dsv4_ftz(dsv4_bf16f(x[2 * i])), a);
    }
}

void dsv4_axpy_bf16_scalar(float *acc, float a, const uint16_t *v, int n) {
    for (int i = 0; i < n; i++) acc[i] += a * dsv4_bf16f(v[i]);
}

/* value * 2^(k-127) as BF16 bits; exact for the stored forms (E4M3 / E2M1 times a power of two) */
static inline uint16_t scaled_bf16(uint16_t v, float scale) {
    float f = dsv4_bf16f(v) * scale;
    uint32_t u; memcpy(&u, &f, 4);
    return (uint16_t)(u >> 16);
}

void dsv4_fp8_dec_scalar(const uint8_t *codes, const uint8_t *scales, int n, int block, uint16_t *out) {
    for (int i = 0; i < n; i++) out[i] = scaled_bf16(dsv4_e4m3_bf16[codes[i]], dsv4_e8m0_f32[scales[i / block]]);
}

void dsv4_fp4_dec_scalar(const uint8_t *codes, const uint8_t *scales, int n, int block, uint16_t *out) {
    for (int i = 0; i < n; i++)
        out[i] = scaled_bf16(dsv4_e2m1_bf16[(codes[i / 2] >> ((i & 1) * 4)) & 15], dsv4_e8m0_f32[scales[i / block]]);
}

#define TB DSV4_LIN_TB

void dsv4_lin_rows_scalar(const dsv4_lin_job *jb, int r0, int nr) {
    const dsv4_wview *w = jb->w;
    const int cols = jb->cols, fmt = w->fmt;
    const int ncb = cdiv(cols, 128);
    uint16_t tile[DSV4_LIN_RB * DSV4_LIN_KC];
    float L[DSV4_LIN_RB][TB][16];
    for (int rb = r0; rb < r0 + nr; rb += DSV4_LIN_RB) {
        int nrr = r0 + nr - rb < DSV4_LIN_RB ? r0 + nr - rb : DSV4_LIN_RB;
        for (int t0 = 0; t0 < jb->n_tok; t0 += TB) {
            int nt = jb->n_tok - t0 < TB ? jb->n_tok - t0 : TB;
            memset(L, 0, sizeof L);
            for (int c0 = 0; c0 < cols; c0 += DSV4_LIN_KC) {
                int n = cols - c0 < DSV4_LIN_KC ? cols - c0 : DSV4_LIN_KC, nch = cdiv(n, 32);
                dsv4_tile_decode_scalar(w, rb, nrr, c0, n, tile, DSV4_LIN_KC);
                for (int t = 0; t < nt; t++) {
                    const uint16_t *x = dsv4_lin_x(jb, t0 + t) + c0;
                    for (int j = 0; j < nrr; j++) {
                        const uint16_t *wt = tile + j * DSV4_LIN_KC;
                        float *Lj = L[j][t];
                        if (fmt == DSV4_W_BF16) {
                            for (int c = 0; c < nch; c++) dp32_scalar(Lj, wt + 32 * c, x + 32 * c);
                        } else if (fmt == DSV4_W_FP8) {
                            const uint8_t *sc = w->scale + (size_t)((rb + j) / 128) * ncb;
                            for (int c = 0; c < nch; c += 4) {
                                float P[16] = {0};
                                for (int k = c; k < c + 4 && k < nch; k++) dp32_scalar(P, wt + 32 * k, x + 32 * k);
                                float s = dsv4_ftz(dsv4_e8m0_f32[sc[(c0 + 32 * c) / 128]]);
                                for (int i = 0; i < 16; i++) Lj[i] = fma_ftz(s, P[i], Lj[i]);
                            }
                        } else { /* FP4, FP8_32: a scale per row (tile row) and 32-column group */
                            const uint8_t *sc = dsv4_g32_scales(w, rb + j, c0);
                            for (int c = 0; c < nch; c++) {
                                float P[16] = {0};
                                dp32_scalar(P, wt + 32 * c, x + 32 * c);
                                float s = dsv4_ftz(dsv4_e8m0_f32[sc[c]]);
                                for (int i = 0; i < 16; i++) Lj[i] = fma_ftz(s, P[i], Lj[i]);
                            }
                        }
                    }
                }
            }
            dsv4_lin_finish(jb, L, rb, nrr, t0, nt);
        }
    }
}

/* ------------------------------------------------------------------ path choice */
#if defined(__x86_64__) && defined(__GNUC__)
#define DSV4_X86 1
#include <cpuid.h>
#endif
#if defined(__aarch64__) && defined(__ARM_NEON)
#define DSV4_NEON 1   /* Advanced SIMD is part of every AArch64 CPU (and of the Linux arm64 ABI) */
#endif

static dsv4_simd_path g_path = DSV4_PATH_SCALAR;
static pthread_once_t g_tables_once = PTHREAD_ONCE_INIT, g_init_once = PTHREAD_ONCE_INIT;
static dsv4_simd_ops g_ops = { dsv4_lin_rows_scalar, dsv4_axpy_bf16_scalar,
                                dsv4_fp8_dec_scalar, dsv4_fp4_dec_scalar, NULL, 0, dsv4_f32_lanes_generic };

#ifdef DSV4_X86
/* F16C (CPUID.1:ECX bit 29; every AVX2 CPU has it): clang's __builtin_cpu_supports does not know the name */
static int cpu_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
}
#endif

static int cpu_has(dsv4_simd_path p) {
    if (p == DSV4_PATH_SCALAR) return 1;
#ifdef DSV4_X86
    __builtin_cpu_init();
    if (p == DSV4_PATH_AVX2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_f16c();
    if (p == DSV4_PATH_AVX512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16") &&
               __builtin_cpu_supports("avx512vbmi") &&
               /* its objects are built with -mavx2 -mfma and use them (the F32 lanes, ymm shuffles): every such
                * CPU has both, checked all the same */
               __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
#ifdef DSV4_NEON
    if (p == DSV4_PATH_NEON) return 1;
#endif
    return 0;
}

static void ops_for(dsv4_simd_path p, dsv4_simd_ops *o) {
    o->lin_rows = dsv4_lin_rows_scalar;
    o->axpy_bf16 = dsv4_axpy_bf16_scalar;
    o->fp8_dec = dsv4_fp8_dec_scalar;
    o->fp4_dec = dsv4_fp4_dec_scalar;
    o->x_range = NULL;
    o->x_range_fp8_decode = 0;
    o->f32_lanes = dsv4_f32_lanes_generic;
#ifdef DSV4_X86
    if (p == DSV4_PATH_AVX2) {
        o->lin_rows = dsv4_lin_rows_avx2; o->axpy_bf16 = dsv4_axpy_bf16_avx2;
        o->x_range = dsv4_x_range_avx2;
        o->x_range_fp8_decode = 1;
        o->f32_lanes = dsv4_f32_lanes_avx2;
    }
    if (p == DSV4_PATH_AVX512) {
        o->lin_rows = dsv4_lin_rows_avx512; o->axpy_bf16 = dsv4_axpy_bf16_avx512;
        o->x_range = dsv4_x_range_avx512;
        o->fp8_dec = dsv4_fp8_dec_avx512; o->fp4_dec = dsv4_fp4_dec_avx512;
        o->f32_lanes = dsv4_f32_lanes_avx2;   /* the path requires AVX2 (cpu_has) */
    }
#endif
#ifdef DSV4_NEON
    if (p == DSV4_PATH_NEON) {
        o->lin_rows = dsv4_lin_rows_neon; o->axpy_bf16 = dsv4_axpy_bf16_neon;
    }
#endif
}

/* Compare path p with the scalar definition on a fixed problem mixing all three quantized formats and
 * awkward sums; 0 when bit-identical. Guards against a CPU whose VDPBF16PS rounds differently. */
static int selfcheck(dsv4_simd_path p) {
    if (p == DSV4_PATH_SCALAR) return 0;
    dsv4_simd_ops o; ops_for(p, &o);
    enum { R = 8, C = 256 };
    static uint8_t w8[R * C], w4[R * C / 2], s8[4], s4[R * C / 32], s32[C / 32];
    static uint16_t wb[R * C], xb[2 * C];
    uint32_t st = 12345;
    for (int i = 0; i < R * C; i++) {
        st = st * 1664525u + 1013904223u;
        uint8_t b = (uint8_t)(st >> 24);
        w8[i] = (b & 0x7f) == 0x7f ? 0x3c : b;
        wb[i] = (uint16_t)(0x3c00 + ((st >> 8) & 0x7ff)) | (uint16_t)((st & 1) << 15);
    }
    for (int i = 0; i < R * C / 2; i++) { st = st * 1664525u + 1013904223u; w4[i] = (uint8_t)(st >> 24); }
    for (int i = 0; i < 4; i++) s8[i] = (uint8_t)(120 + i);
    for (int i = 0; i < R * C / 32; i++) s4[i] = (uint8_t)(118 + i % 9);
    for (int i = 0; i < C / 32; i++) s32[i] = (uint8_t)(116 + 3 * i % 11);
    for (int i = 0; i < 2 * C; i++) {
        st = st * 1664525u + 1013904223u;
        xb[i] = (uint16_t)(0x3000 + ((st >> 9) & 0x1fff)) | (uint16_t)((st & 2) << 14);
    }
    dsv4_wview ws[4] = {
        { DSV4_W_FP8, R, C, w8, s8 }, { DSV4_W_FP4, R, C, w4, s4 }, { DSV4_W_BF16, R, C, wb, NULL },
        { DSV4_W_FP8_32, R, C, w8, s32 } };
    for (int k = 0; k < 4; k++) {
        float a[2 * R], b[2 * R];
        dsv4_lin_job j = { &ws[k], xb, 2, C, C, NULL, 0, a, 0, {0, 0, 0} };
        dsv4_lin_rows_scalar(&j, 0, R);
        j.out = b;
        o.lin_rows(&j, 0, R);
        if (memcmp(a, b, sizeof a)) return -1;
    }
    float a0[C], a1[C];
    for (int i = 0; i < C; i++) a0[i] = a1[i] = dsv4_bf16f(xb[C + i]);
    dsv4_axpy_bf16_scalar(a0, -0.375f, wb, C - 3);
    o.axpy_bf16(a1, -0.375f, wb, C - 3);
    if (memcmp(a0, a1, sizeof a0)) return -1;
    uint16_t e0[C], e1[C];   /* the decoders on every code (w8: all bytes but NaN; w4 all nibbles) */
    dsv4_fp8_dec_scalar(w8, s4, C, 64, e0); o.fp8_dec(w8, s4, C, 64, e1);
    if (memcmp(e0, e1, sizeof e0)) return -1;
    dsv4_fp4_dec_scalar(w4, s4, C, 32, e0); o.fp4_dec(w4, s4, C, 32, e1);
    return memcmp(e0, e1, sizeof e0) ? -1 : 0;
}

static const char *path_name(dsv4_simd_path p) {
    return p == DSV4_PATH_NEON ? "neon" : p == DSV4_PATH_AVX512 ? "avx512" : p == DSV4_PATH_AVX2 ? "avx2" : "scalar";
}

static int set_path(dsv4_simd_path p, char *err, size_t errlen) {
    if (!cpu_has(p)) {
        if (err) snprintf(err, errlen, "kernel path %s: this CPU lacks %s", path_name(p),
                          p == DSV4_PATH_AVX512 ? "AVX-512 F/BW/VL/VBMI + BF16"
                          : p == DSV4_PATH_NEON ? "AArch64 Advanced SIMD (NEON)" : "AVX2 + FMA + F16C");
        return -1;
    }
    if (selfcheck(p) != 0) {
        if (err) snprintf(err, errlen, "kernel path %s: self-check against the scalar definition failed", path_name(p));
        return -1;
    }
    g_path = p;
    ops_for(p, &g_ops);
    return 0;
}

static int parse_path(const char *name, dsv4_simd_path *p, char *err, size_t errlen) {
    if (!name) name = "";
    if (!strcmp(name, "scalar")) *p = DSV4_PATH_SCALAR;
    else if (!strcmp(name, "avx2")) *p = DSV4_PATH_AVX2;
    else if (!strcmp(name, "avx512")) *p = DSV4_PATH_AVX512;
    else if (!strcmp(name, "neon")) *p = DSV4_PATH_NEON;
    else {
        if (err) snprintf(err, errlen, "unknown kernel path '%s' (scalar, avx2, avx512, neon)", name);
        return -1;
    }
    return 0;
}

/* The default path, chosen once (pthread_once: several application threads may start evaluating at once):
 * $DSV4_KERNEL when it names a usable path (the CLI refuses an unusable one itself), else the best one. */
static void simd_init(void) {
    pthread_once(&g_tables_once, tables_init);
    const char *env = getenv("DSV4_KERNEL");
    dsv4_simd_path p0;
    if (env && *env && parse_path(env, &p0, NULL, 0) == 0 && set_path(p0, NULL, 0) == 0) return;
    for (int p = DSV4_PATH_NEON; p >= DSV4_PATH_SCALAR; p--)
        if (set_path((dsv4_simd_path)p, NULL, 0) == 0) return;
}

const dsv4_simd_ops *dsv4_simd(void) {
    pthread_once(&g_init_once, simd_init);
    return &g_ops;
}

dsv4_simd_path dsv4_kernel_path_id(void) { dsv4_simd(); return g_path; }
const char *dsv4_get_kernel_path(void) { return path_name(dsv4_kernel_path_id()); }

int dsv4_set_kernel_path(const char *name, char *err, size_t errlen) {
    pthread_once(&g_tables_once, tables_init);
    dsv4_simd_path p;
    if (parse_path(name, &p, err, errlen) != 0) return -1;
    pthread_once(&g_init_once, simd_init);   /* the default first, so that it never overrides this choice */
    return set_path(p, err, errlen);
}

/* ------------------------------------------------------------------ driver */
typedef struct {
    dsv4_lin_job job;
    const float *xf;       /* F32 path: activations */
    int rows_per_task;
    dsv4_lin_rows_fn fn;
} lin_task;

static void lin_task_run(void *ctx, int i) {
    const lin_task *t = ctx;
    int r0 = i * t->rows_per_task, rows = t->job.w->rows;
    int nr = rows - r0 < t->rows_per_task ? rows - r0 : t->rows_per_task;
    if (nr <= 0) return;
    if (t->job.w->fmt == DSV4_W_F32) {
        dsv4_linear_f32(t->job.out, t->job.w, t->xf, t->job.n_tok, r0, nr, dsv4_simd()->f32_lanes);
        if (t->job.flags & DSV4_OUT_BF16)
            for (int k = 0; k < t->job.n_tok; k++)
                for (int r = r0; r < r0 + nr; r++) {
                    float *o = t->job.out + (size_t)k * rows + r;
                    *o = dsv4_round_bf16(*o);
                }
    } else {
        t->fn(&t->job, r0, nr);
    }
}

/* The activations' exponent range, once per call (dsv4_lin_job.has_xr), where the path's kernels need it: calls of
 * 3 or more tokens of FP8 / FP4 / FP8_32 weights (scales folded into the tiles), and FP8 calls of 1-2 tokens (the
 * AVX2 decode kernel's F16C decoding, linear_avx2.c fast_fp8_rows2). */
static void lin_xr(lin_task *t) {
    dsv4_lin_job *j = &t->job;
    const dsv4_simd_ops *o = dsv4_simd();
    if (j->has_xr || !o->x_range || !(j->w->fmt == DSV4_W_FP8 || dsv4_fmt_g32(j->w->fmt))) return;
    if (j->n_tok < 3 && !(j->w->fmt == DSV4_W_FP8 && o->x_range_fp8_decode)) return;
    j->xr = o->x_range(j);
    j->has_xr = 1;
}

/* Spread the job's rows over the pool: blocks of DSV4_LIN_RB rows, about 8 tasks per thread (claimed
 * dynamically, so uneven progress balances out), one task when single-threaded. */
static void lin_run(lin_task *t) {
    /* F32 weights (the mHC fn matrices: 24 rows at V4's hc 4) go in the 4-row blocks of matmul.c, so that their
     * few rows still split evenly over the threads (3 tasks of 8 rows would leave one of 2 threads idle a third) */
    int rb = t->job.w->fmt == DSV4_W_F32 ? 4 : DSV4_LIN_RB;
    int rows = t->job.w->rows, nthr = dsv4_pool_threads(), nblk = cdiv(rows, rb);
    int ntask = nthr > 1 ? nthr * 8 : 1;
    if (ntask > nblk) ntask = nblk;
    t->rows_per_task = cdiv(nblk, ntask) * rb;
    lin_xr(t);
    dsv4_parallel_for(cdiv(rows, t->rows_per_task), lin_task_run, t);
}

/* Row stride of the packed activations (BF16 elements): cols rounded up to 32, plus 32, so that the rows of a
 * multi-token call are not a multiple of 4 KiB apart. The micro-kernels load one 64-byte piece of each of up to 6
 * tokens at the same column; with the rows 8 KiB apart (4,096 columns) they meet in one L1 set and bank (measured:
 * a 4-row x 6-token BF16 kernel on L1-resident data at 0.50 of the instruction peak, 0.93 with the rows 64 bytes
 * further apart). Only the first round32(cols) of a row are written and read; at most cols + 95. */
static inline int lin_colsp(int cols) {
    int c = ((cols + 31) & ~31) + 32;
    return (c * 2) % 4096 ? c : c + 32;   /* (2,016 or 4,064 columns would be 4 KiB-spaced again) */
}

size_t dsv4_linear_scratch_floats(int n_tok, int cols) {
    size_t colsp = (size_t)lin_colsp(cols);
    return (size_t)n_tok * (size_t)cols + ((size_t)n_tok * colsp + 1) / 2 + 16;
}

/* Set up t for out = W x (job fields, the activations quantized and packed into scratch as the format needs). */
static void lin_prepare(lin_task *t, float *out, const dsv4_wview *w, const float *x, int n_tok, int flags,
                        float *scratch) {
    const int cols = w->cols;
    memset(t, 0, sizeof *t);
    t->job.w = w; t->job.n_tok = n_tok; t->job.cols = cols; t->job.colsp = lin_colsp(cols);
    t->job.flags = flags; t->job.out = out; t->fn = dsv4_simd()->lin_rows;
    const dsv4_elem_ops *eo = dsv4_elem();   /* the elementwise ops of the same path (ops_simd.h) */
    if (flags & (DSV4_ACT_FP8 | DSV4_ACT_FP8_32)) {
        const int blk = flags & DSV4_ACT_FP8 ? 128 : 32;
        for (int k = 0; k < n_tok; k++) eo->fp8_sim(scratch + (size_t)k * cols, x + (size_t)k * cols, cols, blk);
        x = scratch;
    }
    if (w->fmt == DSV4_W_F32) {
        t->xf = x;
    } else {
        /* pack after the (optional) quantized copy; x values are BF16-representable (contract) */
        uint16_t *xb = (uint16_t *)(scratch + (size_t)n_tok * cols);
        xb = (uint16_t *)(((uintptr_t)xb + 63) & ~(uintptr_t)63);
        int nperm = w->fmt == DSV4_W_FP8 ? cols & ~63 : 0;   /* FP8: the 64-column block order (simd.h) */
        for (int k = 0; k < n_tok; k++) eo->pack_bf16(xb + (size_t)k * t->job.colsp, x + (size_t)k * cols, cols, nperm, (cols + 31) & ~31);
        t->job.xb = xb;
    }
}

void dsv4_linear(float *out, const dsv4_wview *w, const float *x, int n_tok, int flags, float *scratch) {
    if (n_tok <= 0 || w->rows <= 0) return;
    lin_task t;
    lin_prepare(&t, out, w, x, n_tok, flags, scratch);
    lin_run(&t);
}

/* ---- several products in one pool call */
/* Op j can use op i's prepared activations: same input, tokens, width, quantization and layout (F32 weights read
 * x as F32; FP8 weights pack in the 64-column order; BF16, FP4 and FP8_32 plainly). */
static int same_input(const dsv4_linear_op *a, const dsv4_linear_op *b) {
    int la = a->w->fmt == DSV4_W_F32 ? 0 : a->w->fmt == DSV4_W_FP8 ? 1 : 2;
    int lb = b->w->fmt == DSV4_W_F32 ? 0 : b->w->fmt == DSV4_W_FP8 ? 1 : 2;
    return a->x == b->x && a->n_tok == b->n_tok && a->w->cols == b->w->cols && la == lb &&
           (a->flags & (DSV4_ACT_FP8 | DSV4_ACT_FP8_32)) == (b->flags & (DSV4_ACT_FP8 | DSV4_ACT_FP8_32));
}

size_t dsv4_linear_multi_scratch_floats(const dsv4_linear_op *ops, int nops) {
    size_t n = 0;
    for (int i = 0; i < nops && i < DSV4_LINEAR_MULTI_MAX; i++) {
        if (ops[i].n_tok <= 0 || ops[i].w->rows <= 0) continue;
        int shared = 0;
        for (int j = 0; j < i && !shared; j++)
            shared = ops[j].n_tok > 0 && ops[j].w->rows > 0 && same_input(&ops[j], &ops[i]);
        if (!shared) n += dsv4_linear_scratch_floats(ops[i].n_tok, ops[i].w->cols) + 16;   /* + 64-byte alignment */
    }
    return n;
}

int dsv4_linear_multi_fit(const dsv4_linear_op *ops, int nops, size_t scratch_floats) {
    int k = nops < DSV4_LINEAR_MULTI_MAX ? nops : DSV4_LINEAR_MULTI_MAX;
    while (k > 1 && dsv4_linear_multi_scratch_floats(ops, k) > scratch_floats) k--;
    return nops > 0 ? k : 0;
}

typedef struct {
    lin_task t[DSV4_LINEAR_MULTI_MAX];
    int first[DSV4_LINEAR_MULTI_MAX + 1];   /* op k owns tasks [first[k], first[k+1]) */
    int nops;
} multi_task;

static void multi_task_run(void *ctx, int i) {
    multi_task *m = ctx;
    int k = 0;
    while (i >= m->first[k + 1]) k++;
    lin_task_run(&m->t[k], i - m->first[k]);
}

void dsv4_linear_multi(const dsv4_linear_op *ops, int nops, float *scratch) {
    multi_task m;
    int src[DSV4_LINEAR_MULTI_MAX];   /* m.t[k] is ops[src[k]] (empty ops are skipped) */
    m.nops = 0;
    m.first[0] = 0;
    /* about 8 tasks per thread over all ops (claimed dynamically), at least one per op */
    int nthr = dsv4_pool_threads(), per = nthr > 1 ? (nthr * 8 + nops - 1) / nops : 1;
    for (int i = 0; i < nops && i < DSV4_LINEAR_MULTI_MAX; i++) {
        const dsv4_linear_op *o = &ops[i];
        if (o->n_tok <= 0 || o->w->rows <= 0) continue;
        lin_task *t = &m.t[m.nops];
        int j = 0;
        while (j < m.nops && !same_input(&ops[src[j]], o)) j++;
        src[m.nops] = i;
        if (j < m.nops) {
            *t = m.t[j];
            t->job.w = o->w; t->job.out = o->out; t->job.flags = o->flags;
        } else {
            lin_prepare(t, o->out, o->w, o->x, o->n_tok, o->flags, scratch);
            scratch += dsv4_linear_scratch_floats(o->n_tok, o->w->cols) + 16;
        }
        lin_xr(t);   /* a shared input's range is copied with its job (it depends on the activations only) */
        int rb = o->w->fmt == DSV4_W_F32 ? 4 : DSV4_LIN_RB, nblk = cdiv(o->w->rows, rb);
        int ntask = per < nblk ? per : nblk;
        t->rows_per_task = cdiv(nblk, ntask) * rb;
        m.first[m.nops + 1] = m.first[m.nops] + cdiv(o->w->rows, t->rows_per_task);
        m.nops++;
    }
    if (m.nops) dsv4_parallel_for(m.first[m.nops], multi_task_run, &m);
}

void dsv4_linear_bf16x(float *out, const dsv4_wview *w, const uint16_t *xb, size_t ldx,
                       const uint16_t *const *xptr, int n_tok, int flags) {
    if (n_tok <= 0 || w->rows <= 0) return;
    lin_task t;
    memset(&t, 0, sizeof t);
    t.job.w = w; t.job.n_tok = n_tok; t.job.cols = w->cols; t.job.colsp = (int)ldx;
    t.job.xb = xb; t.job.xptr = xptr; t.job.flags = flags; t.job.out = out;
    t.fn = dsv4_simd()->lin_rows;
    lin_run(&t);
}

void dsv4_fp8_decode_bf16(const uint8_t *codes, const uint8_t *scales, int n, int block, uint16_t *out) {
    dsv4_simd()->fp8_dec(codes, scales, n, block, out);
}
void dsv4_fp4_decode_bf16(const uint8_t *codes, const uint8_t *scales, int n, int block, uint16_t *out) {
    dsv4_simd()->fp4_dec(codes, scales, n, block, out);
}

void dsv4_axpy_bf16(float *acc, float a, const uint16_t *v, int n) { dsv4_simd()->axpy_bf16(acc, a, v, n); }

