/* model/sparse_attn.h — internal: the per-query attention and lightning-indexer steps shared by the V4 forward
 * (forward.c) and the V4.1 forward (forward_v41.c), on the shared kernels (docs/performance.md, "Attention and
 * indexer", "V4.1").
 *
 * Both run one query token at a time over keys already in BF16 (attention) or FP4 records (indexer), write only
 * the caller's scratch, allocate nothing, and split work over the thread pool in tasks that each compute their
 * outputs in a fixed order: the results do not depend on the thread count nor on the SIMD path.
 */
#ifndef DSV4_MODEL_SPARSE_ATTN_H
#define DSV4_MODEL_SPARSE_ATTN_H
#include <stddef.h>
#include <stdint.h>

/* Attention of one query token (docs/architecture.md §4.3; V4.1: docs/v41.md §4.1, implementation note item 11).
 * qb [H][hd]: the queries as BF16 bits; kptr[0..nk): the keys, hd BF16 values each (hd % 32 == 0).
 * Scores z[j][h] = q_h . k_j in one pair-lane GEMM (dsv4_linear_bf16x: the queries are the "weight", the keys the
 * rows; threaded over heads by 8-row blocks), then one pool task per head: m = max_j z*scale, p_j =
 * exp(z*scale - m), Z = sum_j p_j + exp(sink_h - m) (key order), o_h = bf16(sum_j bf16(p_j) k_j / Z) with the
 * sum in key order (dsv4_pv_bf16 = dsv4_axpy_bf16 per key, the output block kept in registers across the keys),
 * then the inverse RoPE at pos on the last rd dims with rope_f.
 * z: scratch of nk * H floats (overwritten); o [H][hd] out. nk >= 1. */
typedef struct {
    int H, hd, rd;
    float scale;            /* 1 / sqrt(hd) */
    const float *sink;      /* [H] attn_sink */
    const float *rope_f;    /* [rd / 2] frequencies of the query's RoPE */
} dsv4_attn_shape;
void dsv4_sparse_attend(const dsv4_attn_shape *a, const uint16_t *qb, int64_t pos, const uint16_t *const *kptr,
                        int nk, float *z, float *o);

/* Lightning-indexer scores of one query over FP4 key records (E2M1 pairs + one E8M0 scale per 32 values:
 * ihd / 2 + ihd / 32 bytes, rec_bytes apart). Keys: recs[idx[i]] for i < n (idx NULL: recs[i]); scores isc[i].
 * qb [nh][ihd]: the heads' queries as BF16 bits; wh [nh]: the heads' weights.
 *   DSV4_ISCORE_V4:  isc = sum_h wh[h] * relu(d_h), F32, heads in order (V4, docs/architecture.md §4.5);
 *   DSV4_ISCORE_V41: isc = bf16(sum_h bf16(relu(bf16(d_h)) * wh[h])), heads in order (V4.1, item 9 of
 *                    docs/v41-implementation.md; dsv4_relu_wsum_bf16), wh BF16 values;
 * with d_h = q_h . k in the pair-lane order. Per chunk of DSV4_IDX_CHUNK keys: the records are decoded to BF16 in
 * parallel (jobs of 64 keys) into kdec [DSV4_IDX_CHUNK][ihd], one pair-lane GEMM with the keys as rows (threaded
 * by rows) gives isd [nh][chunk], and the head sum runs over the chunk's keys in lanes. */
enum { DSV4_ISCORE_V4 = 0, DSV4_ISCORE_V41 = 1 };
void dsv4_index_scores(int mode, const uint8_t *recs, size_t rec_bytes, const int32_t *idx, int n, int nh, int ihd,
                       const uint16_t *qb, const float *wh, float *isc, uint16_t *kdec, float *isd);

#endif
