/* model/csa2.h — selection steps of DeepSeek-V4.1's two-level sparse attention ("CSA2", docs/v41.md §4.1;
 * semantics from DeepSeek's V4.1 model.py in docs/v41-implementation.md item 9), internal API.
 *
 * Ties: DeepSeek's code picks with torch.topk(sorted=False), whose order among equal values is unspecified; dsv4
 * takes the lower index first (documented, deterministic). Positions whose score is -inf are never selected by
 * dsv4_csa2_topk (the official code can pick such entries when fewer than k scores are finite; with the released
 * sizes — 2048 candidate blocks of 8 positions >= 512 = index_topk — that cannot happen).
 */
#ifndef DSV4_MODEL_CSA2_H
#define DSV4_MODEL_CSA2_H
#include <stddef.h>
#include <stdint.h>
#include "kernels/kernels.h"

/* Level one (the candidate source): scores[0..n) over compressed positions, -INFINITY where the query cannot
 * reach; visible = the query's reachable count ((pos + 1) / ratio). Each block of `block` positions scores its
 * maximum; the block holding position visible - 1 is pinned (when visible >= 1); the topk_blocks best blocks
 * with a finite score are kept. keep[0..n) receives 1 for positions of kept blocks, else 0. scratch: n / block + 1
 * floats and as many ints. Returns the number of kept blocks. */
int dsv4_csa2_candidates(const float *scores, int n, int visible, int topk_blocks, int block, uint8_t *keep,
                         float *fscratch, int *iscratch);

/* Level two: the k = min(topk, n) positions of highest finite score (ties: lower position first), in ascending
 * position order, written to idx[0..k); positions >= visible become -1 (kept in place, like the reference).
 * Returns k. scratch: n ints. */
int dsv4_csa2_topk(const float *scores, int n, int visible, int topk, int32_t *idx, int *iscratch);

/* Token compressor of a KV source (docs/v41-implementation.md item 7). ratio 1: latent = norm(bf16(wkv x)) with the
 * BF16 weight; ratio R > 1: F32 wkv / wgate (the checkpoint's BF16 promoted), per dimension a softmax of the R
 * scores of a group weights its R kv rows, the F32 sum is rounded to BF16, then norm. No ape, no overlap. A latent
 * is pre-RoPE; the caller rotates it at the position of the group's first token. */
typedef struct {
    int ratio, dim, head_dim;
    dsv4_wview wkv, wgate;   /* [head_dim, dim]: BF16 for ratio 1; F32 for ratio > 1 (wgate unused for ratio 1) */
    const float *norm;       /* [head_dim] RMSNorm weight */
    float eps;               /* rms_norm_eps */
} dsv4_csa2_compressor;
/* Floats of scratch dsv4_csa2_compress needs for n tokens. */
size_t dsv4_csa2_compress_scratch(const dsv4_csa2_compressor *c, int n);
/* Reset a compressor state (kv_state / sc_state: [ratio][head_dim] F32 each). */
void dsv4_csa2_compress_reset(const dsv4_csa2_compressor *c, float *kv_state, float *sc_state);
/* Feed x[n][dim] (BF16 values) at positions pos0 .. pos0+n-1 (consecutive with the previous call). Every group
 * these tokens complete yields its latent (BF16 values, [head_dim]) in out, in group order; returns their count
 * and sets *first_group to the index (position / ratio) of the first. Any split of a sequence gives the same
 * latents (the reference's prefill at position 0 and its one-token decode steps are two such splits). */
int dsv4_csa2_compress(const dsv4_csa2_compressor *c, float *kv_state, float *sc_state, const float *x, int n,
                       int64_t pos0, float *out, int64_t *first_group, float *scratch);

#endif
