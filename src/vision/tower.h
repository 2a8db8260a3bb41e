/* vision/tower.h — the DeepSeek-V4.1 vision tower ("DeepSeek-ViT") and aligner: pre-processed patches in, the
 * aligner rows that replace the IMAGE positions of an image span out (docs/vision.md "Tower and aligner").
 *
 * Spec: docs/v41.md §3.1-3.2; reference: tools/reference/vision_v41.py (itself checked against DeepSeek's
 * official inference/vision.py, tools/reference/README.md). Computation, with every activation between operations
 * a BF16 value held in a float (the official code runs the tower in BF16; the RMSNorm weights are F32):
 *   x = patch_embed(patches)                          Linear(3 p^2 -> D) + bias
 *   per block: x = bf16(x + wo(attn(norm1(x))))       bidirectional attention over the image, 2D split-half RoPE
 *              x = bf16(x + w2(bf16(bf16(silu(g)) * u))), [g | u] = w1(norm2(x))
 *   x = norm(x)                                       RMSNorm, eps 1e-6
 *   cells = 3x3 pixel-unshuffle of the [n_h, n_w, D] grid (zero-padded bottom/right; channel-major per cell)
 *   rows = aligner.w2(gelu_erf(aligner.w1(cells)))    both with bias
 * Linear: y = bf16(fl32(x . W) + b) (F32 accumulation through dsv4_linear; bias added in F32). Attention per head:
 * z = fl32(q . k) / sqrt(hd), p = exp(z - max) (dsv4_vtower_softmax_exp), Z = sum p, o = bf16(sum_j bf16(p_j) v_j / Z) (the score and P.V
 * products through dsv4_linear_bf16x). The dot products sum in the kernels' fixed order (not torch's), so results
 * agree with the reference up to F32 accumulation noise, amplified by the BF16 roundings (tests/test_vision_tower.c
 * states the tolerance); they never depend on the thread count or SIMD path.
 *
 * Tensors (the checkpoint's names; BF16 or F32 each; shapes with D = dim, I = inter_dim, P = 3 patch_size^2,
 * L = lm_dim, r = downsample_ratio): vision.patch_embed.proj.weight [D, P], .bias [D];
 * vision.blocks.N.norm1.weight [D], attn.wqkv.weight [3D, D], attn.wqkv.bias [3D], attn.wo.weight [D, D],
 * attn.wo.bias [D], norm2.weight [D], mlp.w1.weight [2I, D] (gate rows first, then up), mlp.w2.weight [D, I];
 * vision.norm.weight [D]; aligner.w1.weight [L, D r^2], aligner.w1.bias [L], aligner.w2.weight [L, L],
 * aligner.w2.bias [L]. The span delimiters (image_start, image_newline, image_end) are not the tower's.
 */
#ifndef DSV4_VISION_TOWER_H
#define DSV4_VISION_TOWER_H
#include <stddef.h>
#include "io/config.h"
#include "io/safetensors.h"

/* Shapes (config.json vision_config + the LM width; src/io/config_v41.c parses them into dsv4_config_v41). */
typedef struct {
    int n_layers;          /* vision_config.num_hidden_layers (32) */
    int dim;               /* vision_config.hidden_size (1024) */
    int n_heads;           /* vision_config.num_attention_heads (16); head_dim = dim / n_heads, a multiple of 32 */
    int inter_dim;         /* vision_config.intermediate_size (2816) */
    int patch_size;        /* vision_config.patch_size (14) */
    int downsample_ratio;  /* vision_config.downsample_ratio (3) */
    int lm_dim;            /* the language model's hidden_size (5120): the aligner's width */
    float rope_theta;      /* vision_config.rope_theta (10000) */
} dsv4_vtower_config;

/* The tower's shapes from a parsed V4.1 config (io/config.h: vision_config and the LM's hidden_size).
 * Errors: the config has no vision tower (vision_config.num_hidden_layers 0 or absent: "<what>: no vision tower
 * (vision_config.num_hidden_layers is 0)"). */
int dsv4_vtower_config_from(dsv4_vtower_config *out, const dsv4_config *c, const char *what, char *err,
                            size_t errlen);

/* A loaded tower: views into the checkpoint's mappings (the st_set must outlive it) plus F32 copies of the biases
 * and norm weights. Immutable after loading; several threads may run dsv4_vtower_forward at once. */
typedef struct dsv4_vtower dsv4_vtower;

/* Find and check every tower tensor in `s` (names above; dtype BF16 or F32, exact shape). Errors (-1, err names
 * the tensor and file): a config value out of range (head_dim not a multiple of 32, sizes < 1), a missing tensor,
 * a wrong dtype or shape, out of memory. */
int dsv4_vtower_load(dsv4_vtower **out, const st_set *s, const dsv4_vtower_config *c, char *err, size_t errlen);
void dsv4_vtower_free(dsv4_vtower *t);
/* Set used[i] = 1 for every tensor i of s (st_at order) that dsv4_vtower_load(c) reads: the model binders' whole-set
 * check then accepts exactly the tower's names and still refuses any other vision.* / aligner.* tensor. */
void dsv4_vtower_mark_used(const dsv4_vtower_config *c, const st_set *s, unsigned char *used);
const dsv4_vtower_config *dsv4_vtower_cfg(const dsv4_vtower *t);

/* The exp of the attention softmax, exposed for its test: a fixed sequence of F32 operations (Cody-Waite reduction,
 * degree-6 polynomial) that tools/reference/vision_v41.py softmax_exp repeats bit for bit; for x <= 0 within 3 F32
 * ulps of e^x, 0 below -86. */
float dsv4_vtower_softmax_exp(float x);

/* The attention of one tower block, exposed for its test: q, k [H][n][hd] BF16 bits of the rotated queries and keys,
 * vt [H][hd][npad] the values transposed (npad = n rounded up to 32, zero past n), o [n][H * hd] receives
 * bf16(softmax(q k^T / sqrt(hd)) V) per head as in dsv4_vtower_forward. portable != 0: the kernels'
 * dsv4_linear_bf16x and the scalar exp whatever the kernel path; 0: the fastest form of the path in use
 * (vision/tower_simd.h), which must give the same bits. Returns 0, or -1 when out of memory. */
int dsv4_vtower_attention(float *o, const uint16_t *q, const uint16_t *k, const uint16_t *vt, int n, int H, int hd,
                          int portable);

/* Aligner rows of an n_h x n_w patch grid: ceil(n_h / r) * ceil(n_w / r). */
int dsv4_vtower_n_rows(const dsv4_vtower_config *c, int n_h, int n_w);

/* Called with each tower state: state 0 after the patch embedding, state i (1..n_layers) after block i-1,
 * state n_layers + 1 after the final norm; x is [n, dim] (n = n_h * n_w, BF16 values), valid during the call.
 * The hook may overwrite x with other BF16 values: the computation goes on from them (tests restart every block
 * from the reference's state this way, so that each block is compared on its own). */
typedef void (*dsv4_vtower_hook)(void *ctx, int state, float *x, int n, int dim);

/* Run the tower and the aligner on one image: patches [n_h * n_w][3 * patch_size^2] (BF16 values, the layout of
 * dsv4_image_preprocess: patch row-major over the grid, channel then row then column inside), rows receives
 * dsv4_vtower_n_rows(...) x lm_dim floats (BF16 values) in row-major cell order. hook may be NULL. Allocates its
 * work buffers and frees them: about n * (3 dim + max(3 dim, 2 inter_dim) + inter_dim + 1.5 max(3 patch^2, dim,
 * inter_dim)) floats plus 64 * (n + 31) * 8 bytes per pool thread (V4.1-Flash at the largest grid, 93 x 93: 0.6 GB).
 * Errors: n_h or n_w < 1 or a grid above 2^24 patches, out of memory. */
int dsv4_vtower_forward(const dsv4_vtower *t, const float *patches, int n_h, int n_w, float *rows,
                        dsv4_vtower_hook hook, void *ctx, char *err, size_t errlen);

#endif
