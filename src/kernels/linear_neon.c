/* kernels/linear_neon.c — the AArch64 Advanced SIMD (NEON) path of dsv4_linear (pair-lane order, simd.h).
 *
 * The dp step is computed as on the AVX2 path: a BF16 pair loaded as one 32-bit word splits into its odd element
 * (word & 0xffff0000, already an F32) and its even element (word << 16); both products are exact in F32, so
 * FMLA (vfmaq_f32: one rounding, round-to-nearest-even) on the odd then the even halves rounds exactly as the
 * definition. The 16 lanes live in four 128-bit registers (lanes 4q..4q+3 in register q).
 *
 * Flushing. The definition flushes subnormal inputs (DAZ) and rounds, then flushes subnormal results. AArch64
 * FPCR.FZ flushes subnormal inputs the same way, but decides whether a result is subnormal BEFORE rounding
 * (Arm ARM, FPRound): a result whose exact value lies just below FLT_MIN and rounds up to FLT_MIN is flushed to 0
 * by the hardware but kept by the definition. Both agree whenever no result is below FLT_MIN before rounding,
 * and the hardware sets FPSR.UFC whenever it flushes a result. So each 8-row block is computed with FPCR.FZ = 1
 * (rounding mode forced to nearest, FPCR.AH/FIZ cleared), and if FPSR.UFC was raised meanwhile the block is
 * recomputed on the scalar path (explicit flushing, default FPCR): exact in every case, fast in the normal one
 * (the model's activations never come near 2^-126). FPCR/FPSR are per thread; every call saves and restores them
 * on the thread that runs it (the pool workers included), so nothing else in the process sees FZ set.
 *
 * FP8/FP4 weights are decoded to BF16 tiles in registers (tile_decode_neon: E2M1 through two 16-entry TBL byte
 * tables, E4M3 by integer arithmetic on the code with an 8-entry TBL for the subnormal codes; ragged widths take
 * the scalar tables, dsv4_tile_decode_scalar); BF16 rows whose width is a multiple of 32 are read in place. No AArch64 extension beyond the base Advanced SIMD is used
 * (BFMLALB/T of FEAT_BF16 would do the dp step in one instruction per half; not used: no hardware here to check
 * it against the definition). Compiled on aarch64 only; elsewhere this file is empty. */
#include "kernels/simd.h"
#if defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>
#include <string.h>

static inline int cdiv(int a, int b) { return (a + b - 1) / b; }

#define RB DSV4_LIN_RB
#define KC DSV4_LIN_KC
#define TB DSV4_LIN_TB

#define FPCR_FZ (UINT64_C(1) << 24)
#define FPCR_RMODE (UINT64_C(3) << 22)
#define FPCR_AH_FIZ UINT64_C(3)     /* FEAT_AFP bits; 0 = the classic behaviour described above */
#define FPSR_UFC (UINT64_C(1) << 3)

static inline uint64_t get_fpcr(void) { uint64_t v; __asm__ volatile("mrs %0, fpcr" : "=r"(v) : : "memory"); return v; }
static inline void set_fpcr(uint64_t v) { __asm__ volatile("msr fpcr, %0" : : "r"(v) : "memory"); }
static inline uint64_t get_fpsr(void) { uint64_t v; __asm__ volatile("mrs %0, fpsr" : "=r"(v) : : "memory"); return v; }
static inline void set_fpsr(uint64_t v) { __asm__ volatile("msr fpsr, %0" : : "r"(v) : "memory"); }

/* Split one 32-column chunk of BF16 values into the F32 odd (xs[0..3]) and even (xs[4..7]) halves. */
static inline void split32(const uint16_t *x, float32x4_t *xs) {
    const uint32x4_t hi = vdupq_n_u32(0xffff0000u);
    for (int q = 0; q < 4; q++) {
        uint32x4_t v = vreinterpretq_u32_u16(vld1q_u16(x + 8 * q));
        xs[q] = vreinterpretq_f32_u32(vandq_u32(v, hi));
        xs[4 + q] = vreinterpretq_f32_u32(vshlq_n_u32(v, 16));
    }
}

/* L = dp(L, w chunk, x chunk): per lane fma(w_odd, x_odd, L), then fma(w_even, x_even, L). */
static inline void dp32(float32x4_t *L, const uint16_t *w, const float32x4_t *xs) {
    const uint32x4_t hi = vdupq_n_u32(0xffff0000u);
    for (int q = 0; q < 4; q++) {
        uint32x4_t v = vreinterpretq_u32_u16(vld1q_u16(w + 8 * q));
        L[q] = vfmaq_f32(L[q], vreinterpretq_f32_u32(vandq_u32(v, hi)), xs[q]);
        L[q] = vfmaq_f32(L[q], vreinterpretq_f32_u32(vshlq_n_u32(v, 16)), xs[4 + q]);
    }
}

/* 16 E2M1 pairs (bytes) -> 32 BF16 in element order (element 2k = low nibble of byte k): the nibbles interleaved
 * by ZIP, then the low and high bytes of each value's BF16 from two 16-entry TBL tables, zipped into halfwords. */
static inline void fp4x32_bf16(const uint8_t *p, uint8x16_t tlo, uint8x16_t thi, uint16_t *out) {
    uint8x16_t b = vld1q_u8(p), lo = vandq_u8(b, vdupq_n_u8(0x0f)), hi = vshrq_n_u8(b, 4);
    uint8x16_t n0 = vzip1q_u8(lo, hi), n1 = vzip2q_u8(lo, hi);   /* elements 0-15, 16-31 */
    uint8x16_t l0 = vqtbl1q_u8(tlo, n0), h0 = vqtbl1q_u8(thi, n0), l1 = vqtbl1q_u8(tlo, n1), h1 = vqtbl1q_u8(thi, n1);
    vst1q_u8((uint8_t *)out, vzip1q_u8(l0, h0));
    vst1q_u8((uint8_t *)(out + 8), vzip2q_u8(l0, h0));
    vst1q_u8((uint8_t *)(out + 16), vzip1q_u8(l1, h1));
    vst1q_u8((uint8_t *)(out + 24), vzip2q_u8(l1, h1));
}

/* 8 E4M3 codes -> 8 BF16 (exact; NaN codes -> the BF16 NaN as the tables give). A normal code's BF16 is
 * ((code & 0x7f) << 4) + (120 << 7) with the sign on top; a subnormal one (exponent field 0: m x 2^-9) comes from
 * an 8-entry halfword table read by TBL with byte indices (2m, 2m+1) = 514m + 256. */
static inline uint16x8_t fp8x8_bf16(uint8x8_t codes, uint8x16_t tsub) {
    uint16x8_t c = vmovl_u8(codes), m = vandq_u16(c, vdupq_n_u16(0x7f));
    uint16x8_t v = vaddq_u16(vshlq_n_u16(m, 4), vdupq_n_u16(120 << 7));
    uint16x8_t idx = vmlaq_n_u16(vdupq_n_u16(256), m, 514);
    uint16x8_t sub = vreinterpretq_u16_u8(vqtbl1q_u8(tsub, vreinterpretq_u8_u16(idx)));
    v = vbslq_u16(vcltq_u16(m, vdupq_n_u16(8)), sub, v);
    v = vbslq_u16(vceqq_u16(m, vdupq_n_u16(0x7f)), vdupq_n_u16(0x7fc0), v);
    return vorrq_u16(v, vshlq_n_u16(vandq_u16(c, vdupq_n_u16(0x80)), 8));
}

/* Rows [rb, rb+nrr) x columns [c0, c0+n) of an FP8/FP4 weight -> unscaled BF16 tile (FP8 in its 64-column block
 * order: tile position 8g + i of a block holds code 8 * perm_group(g) + i); ragged widths: the scalar decoder. */
static void tile_decode_neon(const dsv4_wview *w, int rb, int nrr, int c0, int n, uint16_t *tile, int ld) {
    const int cols = w->cols;
    if (w->fmt == DSV4_W_FP4 && n % 32 == 0) {
        uint8_t tl[16], th[16];
        for (int i = 0; i < 16; i++) { tl[i] = (uint8_t)(dsv4_e2m1_bf16[i] & 0xff); th[i] = (uint8_t)(dsv4_e2m1_bf16[i] >> 8); }
        const uint8x16_t tlo = vld1q_u8(tl), thi = vld1q_u8(th);
        for (int j = 0; j < nrr; j++) {
            const uint8_t *src = (const uint8_t *)w->data + (size_t)(rb + j) * (cols / 2) + c0 / 2;
            for (int c = 0; c < n; c += 32) fp4x32_bf16(src + c / 2, tlo, thi, tile + (size_t)j * ld + c);
        }
    } else if (w->fmt == DSV4_W_FP8_32 && n % 32 == 0) {   /* element order */
        uint16_t ts[8];
        for (int m = 0; m < 8; m++) ts[m] = dsv4_e4m3_bf16[m];
        const uint8x16_t tsub = vreinterpretq_u8_u16(vld1q_u16(ts));
        for (int j = 0; j < nrr; j++) {
            const uint8_t *src = (const uint8_t *)w->data + (size_t)(rb + j) * cols + c0;
            uint16_t *t = tile + (size_t)j * ld;
            for (int c = 0; c < n; c += 8) vst1q_u16(t + c, fp8x8_bf16(vld1_u8(src + c), tsub));
        }
    } else if (w->fmt == DSV4_W_FP8 && n % 64 == 0) {
        uint16_t ts[8];
        for (int m = 0; m < 8; m++) ts[m] = dsv4_e4m3_bf16[m];
        const uint8x16_t tsub = vreinterpretq_u8_u16(vld1q_u16(ts));
        for (int j = 0; j < nrr; j++) {
            const uint8_t *src = (const uint8_t *)w->data + (size_t)(rb + j) * cols + c0;
            uint16_t *t = tile + (size_t)j * ld;
            for (int c = 0; c < n; c += 64)
                for (int g = 0; g < 8; g++)   /* tile positions 8g..8g+7 <- codes dsv4_fp8_perm(8g)..+7 */
                    vst1q_u16(t + c + 8 * g, fp8x8_bf16(vld1_u8(src + c + dsv4_fp8_perm(8 * g)), tsub));
        }
    } else {
        dsv4_tile_decode_scalar(w, rb, nrr, c0, n, tile, ld);
    }
}

/* Rows [rb, rb + nrr) for every token of the job, with FPCR.FZ set by the caller. */
static void rows_block(const dsv4_lin_job *jb, int rb, int nrr, uint16_t *tile, float (*L)[TB][16],
                       float32x4_t *xs) {
    const dsv4_wview *w = jb->w;
    const int cols = jb->cols, fmt = w->fmt;
    const int ncb = cdiv(cols, 128);
    const int direct_bf16 = fmt == DSV4_W_BF16 && (cols % 32) == 0;
    for (int t0 = 0; t0 < jb->n_tok; t0 += TB) {
        int nt = jb->n_tok - t0 < TB ? jb->n_tok - t0 : TB;
        memset(L, 0, sizeof(float[RB][TB][16]));
        for (int c0 = 0; c0 < cols; c0 += KC) {
            int n = cols - c0 < KC ? cols - c0 : KC, nch = cdiv(n, 32);
            const uint16_t *wt[RB];
            if (direct_bf16) {
                for (int j = 0; j < nrr; j++) wt[j] = (const uint16_t *)w->data + (size_t)(rb + j) * cols + c0;
            } else {
                tile_decode_neon(w, rb, nrr, c0, n, tile, KC);
                for (int j = 0; j < nrr; j++) wt[j] = tile + j * KC;
            }
            for (int t = 0; t < nt; t++) {
                const uint16_t *x = dsv4_lin_x(jb, t0 + t) + c0;
                for (int c = 0; c < nch; c++) split32(x + 32 * c, xs + 8 * c);
                for (int j = 0; j < nrr; j++) {
                    float *Lj = L[j][t];
                    float32x4_t A[4] = { vld1q_f32(Lj), vld1q_f32(Lj + 4), vld1q_f32(Lj + 8), vld1q_f32(Lj + 12) };
                    if (fmt == DSV4_W_BF16) {
                        for (int c = 0; c < nch; c++) dp32(A, wt[j] + 32 * c, xs + 8 * c);
                    } else if (fmt == DSV4_W_FP8) {
                        const uint8_t *sc = w->scale + (size_t)((rb + j) / 128) * ncb;
                        for (int c = 0; c < nch; c += 4) {
                            float32x4_t P[4] = { vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0) };
                            int ce = c + 4 < nch ? c + 4 : nch;
                            for (int k = c; k < ce; k++) dp32(P, wt[j] + 32 * k, xs + 8 * k);
                            float32x4_t s = vdupq_n_f32(dsv4_e8m0_f32[sc[(c0 + 32 * c) / 128]]);
                            for (int q = 0; q < 4; q++) A[q] = vfmaq_f32(A[q], P[q], s);
                        }
                    } else { /* FP4, FP8_32: a scale per 32-column group */
                        const uint8_t *sc = dsv4_g32_scales(w, rb + j, c0);
                        for (int c = 0; c < nch; c++) {
                            float32x4_t P[4] = { vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0) };
                            dp32(P, wt[j] + 32 * c, xs + 8 * c);
                            float32x4_t s = vdupq_n_f32(dsv4_e8m0_f32[sc[c]]);
                            for (int q = 0; q < 4; q++) A[q] = vfmaq_f32(A[q], P[q], s);
                        }
                    }
                    for (int q = 0; q < 4; q++) vst1q_f32(Lj + 4 * q, A[q]);
                }
            }
        }
        dsv4_lin_finish(jb, L, rb, nrr, t0, nt);   /* the tree's additions also run under FZ (and are checked) */
    }
}

void dsv4_lin_rows_neon(const dsv4_lin_job *jb, int r0, int nr) {
    _Alignas(64) uint16_t tile[RB * KC];
    _Alignas(64) float L[RB][TB][16];
    float32x4_t xs[KC / 32 * 8];
    const uint64_t fpcr = get_fpcr(), fpsr = get_fpsr();
    const uint64_t fz = (fpcr & ~(FPCR_RMODE | FPCR_AH_FIZ)) | FPCR_FZ;
    set_fpcr(fz);
    for (int rb = r0; rb < r0 + nr; rb += RB) {
        int nrr = r0 + nr - rb < RB ? r0 + nr - rb : RB;
        set_fpsr(fpsr & ~FPSR_UFC);
        rows_block(jb, rb, nrr, tile, L, xs);
        if (get_fpsr() & FPSR_UFC) {   /* a result was flushed: redo the block with the definition's flushing */
            set_fpcr(fpcr);
            dsv4_lin_rows_scalar(jb, rb, nrr);
            set_fpcr(fz);
        }
    }
    set_fpcr(fpcr);
    set_fpsr(fpsr);
}

/* acc[i] + a * v[i]: multiply, then add (two roundings, as the scalar path; default FPCR, no flushing). */
void dsv4_axpy_bf16_neon(float *acc, float a, const uint16_t *v, int n) {
    const float32x4_t av = vdupq_n_f32(a);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        uint16x8_t h = vld1q_u16(v + i);
        float32x4_t lo = vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(h), 16));
        float32x4_t hi = vreinterpretq_f32_u32(vshll_n_u16(vget_high_u16(h), 16));
        vst1q_f32(acc + i, vaddq_f32(vld1q_f32(acc + i), vmulq_f32(av, lo)));
        vst1q_f32(acc + i + 4, vaddq_f32(vld1q_f32(acc + i + 4), vmulq_f32(av, hi)));
    }
    for (; i < n; i++) acc[i] += a * dsv4_bf16f(v[i]);
}

#endif
