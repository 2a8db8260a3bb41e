/* kernels/kernels.h — the narrow numeric interface the model code calls.
 *
 * Contract: every function here has a scalar C11 implementation; SIMD/threaded variants sit behind the
 * same signatures (chosen once, kernels/pool.h) and give bit-identical results (fixed reduction order). Activations are float arrays holding BF16-representable values wherever the
 * reference holds BF16 (docs/architecture.md §7.1). Nothing here allocates except the *_alloc helpers.
 * Sources: docs/architecture.md §2.3 (weight formats), §3.1–3.5 (primitives), §4.2 (Sinkhorn).
 */
#ifndef DSV4_KERNELS_H
#define DSV4_KERNELS_H
#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- number formats (§2.3) */
float dsv4_e4m3_to_f32(uint8_t b);       /* FP8 e4m3fn: bias 7, max ±448, S.1111.111 = NaN */
uint8_t dsv4_f32_to_e4m3(float x);       /* round-to-nearest-even; |x| > 448 saturates to ±448; NaN -> 0x7f */
float dsv4_e8m0_to_f32(uint8_t b);       /* 2^(b-127); 255 -> NaN */
float dsv4_e2m1_to_f32(uint8_t code);    /* low 4 bits: 0,.5,1,1.5,2,3,4,6 and negatives (8..15) */
float dsv4_round_e4m3(float x);          /* value of dsv4_f32_to_e4m3(x) as f32 */
float dsv4_round_e2m1(float x);          /* nearest E2M1 value, RNE, saturating at ±6 */
/* Decode tables (defined in numerics.c): dsv4_e4m3_lut[b] == dsv4_e4m3_to_f32(b) for all 256 codes
 * (0x7f/0xff are NaN); dsv4_e2m1_lut[c] == dsv4_e2m1_to_f32(c) for the 16 codes. */
extern const float dsv4_e4m3_lut[256];
extern const float dsv4_e2m1_lut[16];

/* ---------------------------------------------------------------- quantization simulations */
/* §3.3 FP8 activation quant-dequant, in place, blocks of `block` (last block may be short):
 * a = max(max|x|, 1e-4); scale = 2^ceil(log2(a/448)); x = e4m3(clamp(x/scale)) * scale. */
void dsv4_fp8_sim(float *x, int n, int block);
/* Same, but returns the E4M3 values (as float, unscaled) in q and one scale per block in scales. */
void dsv4_fp8_quant(const float *x, int n, int block, float *q, float *scales);
/* §3.4 FP4 simulation, in place, blocks of `block` (32): a = max(max|x|, 6*2^-126);
 * scale = 2^ceil(log2(a/6)); x = e2m1(clamp(x/scale, -6, 6)) * scale, then rounded to BF16. */
void dsv4_fp4_sim(float *x, int n, int block);
/* Storage forms of the two simulations (issue 6: the session keeps what the reference already rounded in that
 * form; decoding gives back the simulated values exactly, so logits equal BF16 storage bit for bit).
 * dsv4_fp8_encode: x <- dsv4_fp8_sim(x) and codes[i] = its E4M3 code (unscaled), scales[b] = E8M0 code of block b.
 * dsv4_fp4_encode: x <- dsv4_fp4_sim(x), packed[i/2] nibble (i&1) = its E2M1 code, scales[b] = E8M0 code. */
void dsv4_fp8_encode(float *x, int n, int block, uint8_t *codes, uint8_t *scales);
void dsv4_fp4_encode(float *x, int n, int block, uint8_t *packed, uint8_t *scales);
/* Decode n values of those forms to BF16 bits (value x 2^(scale-127), exact), on the SIMD path in use:
 * FP8: codes[i] E4M3, scales[i/block]; FP4: nibble (i&1) of codes[i/2], scales[i/block]. */
void dsv4_fp8_decode_bf16(const uint8_t *codes, const uint8_t *scales, int n, int block, uint16_t *out);
void dsv4_fp4_decode_bf16(const uint8_t *codes, const uint8_t *scales, int n, int block, uint16_t *out);
/* §3.5 x <- H_m x / sqrt(m) (Sylvester order), m a power of two; result rounded to BF16. */
void dsv4_hadamard(float *x, int m);

/* ---------------------------------------------------------------- weights */
typedef enum {
    DSV4_W_F32,   /* data: float [rows, cols] */
    DSV4_W_BF16,  /* data: uint16 bf16 [rows, cols] */
    DSV4_W_FP8,   /* data: e4m3 [rows, cols]; scale: e8m0 [ceil(rows/128), ceil(cols/128)] */
    DSV4_W_FP4,   /* data: packed e2m1 [rows, cols/2] (elem 2k = low nibble); scale: e8m0 [rows, cols/32] */
    DSV4_W_FP8_32 /* DeepSeek-V4.1's FP8: data e4m3 [rows, cols]; scale: e8m0 [ceil(rows/32), ceil(cols/32)] (one per
                   * 32x32 tile; V4's DSV4_W_FP8 has one per 128x128 block) */
} dsv4_wfmt;

typedef struct {
    dsv4_wfmt fmt;
    int rows, cols;           /* logical shape [out, in] */
    const void *data;         /* points into the mmap'd checkpoint (or an owned F32 copy) */
    const uint8_t *scale;     /* e8m0 scales for FP8/FP4, NULL otherwise */
} dsv4_wview;

/* Row sub-view: rows [r0, r0+nr) of w (r0 a multiple of 128 for FP8, of 32 for FP8_32). */
dsv4_wview dsv4_wview_rows(const dsv4_wview *w, int r0, int nr);

/* Flags for dsv4_linear. */
enum {
    DSV4_ACT_FP8  = 1,  /* FP8-quantize each input row in blocks of 128 first (§3.3 GEMM input) */
    DSV4_OUT_BF16 = 2,  /* round each output to BF16 */
    DSV4_ACT_FP8_32 = 4 /* FP8-quantize each input row in blocks of 32 first (V4.1's act_quant; not with DSV4_ACT_FP8) */
};
/* out[t][r] = sum_c W[r][c] * x[t][c] for t < n_tok (x: [n_tok, cols], out: [n_tok, rows]), F32 accumulation,
 * spread over the thread pool (kernels/pool.h) and the SIMD path in use.
 * Contract: for BF16 / FP8 / FP4 weights every x value must be BF16-representable (the reference holds these
 * activations in BF16; with DSV4_ACT_FP8 / DSV4_ACT_FP8_32 the quantized copy is). With DSV4_ACT_FP8 (_32) the
 * input is quantized as in the reference's act_quant (the caller's x is not modified). `scratch` must hold
 * dsv4_linear_scratch_floats(n_tok, cols) floats for BF16/FP8/FP4 weights or when an ACT flag is set; it may
 * be NULL otherwise. Order: BF16/FP8/FP8_32/FP4 weights use the pair-lane order (kernels/simd.h: exact products,
 * 16 lanes, per-block scaling, fixed tree); F32 weights the 8-lane k%8 order (matmul.c). Either way each
 * result is independent of n_tok, of the thread count, of the SIMD path and of row sub-views. */
void dsv4_linear(float *out, const dsv4_wview *w, const float *x, int n_tok, int flags, float *scratch);
/* Floats of scratch dsv4_linear needs for n_tok rows of `cols` columns. */
size_t dsv4_linear_scratch_floats(int n_tok, int cols);

/* One product of dsv4_linear_multi: out = W x as dsv4_linear(out, w, x, n_tok, flags, ...). */
typedef struct {
    float *out;
    const dsv4_wview *w;
    const float *x;
    int n_tok, flags;
} dsv4_linear_op;
#define DSV4_LINEAR_MULTI_MAX 32
/* Several independent products in ONE pool call (a decode step's routed experts: every w1 and w3 on the same
 * token, then every w2), each output bit-identical to its own dsv4_linear call. Ops with the same x pointer,
 * n_tok, cols, DSV4_ACT_FP8 / DSV4_ACT_FP8_32 flags and activation layout share one quantized / packed copy of it. 1 <= nops <=
 * DSV4_LINEAR_MULTI_MAX; no op's out may overlap another op's x or out. `scratch` holds
 * dsv4_linear_multi_scratch_floats(ops, nops) floats. */
void dsv4_linear_multi(const dsv4_linear_op *ops, int nops, float *scratch);
/* Floats of scratch dsv4_linear_multi needs: dsv4_linear_scratch_floats of each distinct input. */
size_t dsv4_linear_multi_scratch_floats(const dsv4_linear_op *ops, int nops);
/* How many of the leading ops one dsv4_linear_multi call can take with `scratch_floats` of scratch: the largest
 * k <= min(nops, DSV4_LINEAR_MULTI_MAX) with dsv4_linear_multi_scratch_floats(ops, k) <= scratch_floats, and at
 * least 1 (the caller's scratch holds any single op's); 0 when nops <= 0. */
int dsv4_linear_multi_fit(const dsv4_linear_op *ops, int nops, size_t scratch_floats);
/* out[t][r] = W[r] . x_t for BF16 activation rows given already packed: row t at xptr[t] when xptr is non-NULL,
 * else at xb + t*ldx; w->cols must be a multiple of 32 (no padding is read). Same pair-lane order, flags
 * (DSV4_OUT_BF16) and threading as dsv4_linear; subnormal activations read as 0. Used for attention scores
 * (W = the packed queries of all heads, rows = the keys) and the lightning indexer. */
void dsv4_linear_bf16x(float *out, const dsv4_wview *w, const uint16_t *xb, size_t ldx,
                       const uint16_t *const *xptr, int n_tok, int flags);
/* acc[i] += a * v[i], i < n (a and v BF16 values, so each product is exact): the attention P.V step. */
void dsv4_axpy_bf16(float *acc, float a, const uint16_t *v, int n);
/* One weight row dequantized to F32 (used for embedding lookup and tests). */
void dsv4_wview_row(const dsv4_wview *w, int r, float *out);

/* ---------------------------------------------------------------- ops (§3.1, §3.2, §4.2) */
/* out = x / sqrt(mean(x^2) + eps) * (w ? w : 1); F32 math; rounded to BF16 when round_bf16. */
void dsv4_rmsnorm(float *out, const float *x, const float *w, int n, float eps, int round_bf16);
/* Per-head weightless query RMS as the official code does it on a BF16 tensor (docs/architecture.md §4.3 step 3,
 * official model.py Attention.forward): every intermediate rounded to BF16:
 * ms = bf16(sum(bf16(x_i^2)) / n); r = bf16(1/sqrt(bf16(ms + eps))); x_i = bf16(x_i * r). In place. */
void dsv4_head_rms_bf16(float *x, int n, float eps);
/* RoPE frequencies f[0..rope_dim/2) (§3.2), YaRN blend when yarn != 0. F32 as the reference. */
void dsv4_rope_freqs(float *f, int rope_dim, float theta, int yarn, float factor, int orig_len,
                     float beta_fast, float beta_slow);
/* Interleaved rotation of x[0..rope_dim) at position pos (angle = fl32(pos*f[j])), inverse: angle -> -angle.
 * Result rounded to BF16. */
void dsv4_rope(float *x, int rope_dim, const float *f, int64_t pos, int inverse);
/* In-place softmax over n values (F32). */
void dsv4_softmax(float *x, int n);
/* §4.2 step 4: M (hc x hc, row-major [j][k]) holds C on entry; on exit the Sinkhorn-normalized M. */
void dsv4_sinkhorn(float *M, int hc, int iters, float eps);
/* Top-k selection (docs/architecture.md §4.5; the CSA2 candidate blocks and index top-k reuse it): partially
 * order idx[0..n) (indices into sc) so that idx[0..k) holds the k best, in no particular order among themselves.
 * Best = higher sc[idx], ties -> lower idx (deterministic, whatever the input order). 1 <= k <= n. Quickselect,
 * O(n) expected, no allocation. NaN scores compare false both ways (callers pass finite scores or -inf). */
void dsv4_select_topk(int *idx, int n, int k, const float *sc);
/* Peak multiply-adds per second of the arithmetic instruction kernel path `path` ("avx512": VDPBF16PS, "avx2":
 * 8-lane FMA, "neon": 4-lane FMLA, "scalar": fmaf) with nthr threads running at once (kernels/peak.c; best of 3 runs
 * of ~0.3 s). *cpu_rate (optional): the same per CPU-second of the process (meaningful on a shared machine);
 * *instr (optional): the instruction's name. 0 when the CPU lacks the path, the name is unknown, nthr is outside
 * 1..1024 or the threads cannot be started. For benchmarks only (takes about a second). */
double dsv4_arith_peak(const char *path, int nthr, double *cpu_rate, const char **instr);
static inline float dsv4_sigmoid(float x) { return 1.0f / (1.0f + __builtin_expf(-x)); }

#endif
