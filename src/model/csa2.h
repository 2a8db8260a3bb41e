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
#include <stdint.h>

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

#endif
