/* model/csa2.c — CSA2 selection steps (see csa2.h). */
#include "model/csa2.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "base/util.h"
#include "kernels/kernels.h"   /* dsv4_select_topk: higher value first, then lower index */

static int cmp_int(const void *a, const void *b) { return (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b); }

int dsv4_csa2_candidates(const float *scores, int n, int visible, int topk_blocks, int block, uint8_t *keep,
                         float *bs, int *ids) {
    const int nb = (n + block - 1) / block;
    for (int b = 0; b < nb; b++) {
        float m = -INFINITY;
        for (int i = b * block; i < (b + 1) * block && i < n; i++) m = fmaxf(m, scores[i]);
        bs[b] = m;
        ids[b] = b;
    }
    if (visible >= 1 && (visible - 1) / block < nb) bs[(visible - 1) / block] = INFINITY;
    int k = topk_blocks < nb ? topk_blocks : nb;
    if (k < nb) dsv4_select_topk(ids, nb, k, bs);
    for (int i = 0; i < n; i++) keep[i] = 0;
    int kept = 0;
    for (int j = 0; j < k; j++) {
        int b = ids[j];
        if (!(bs[b] > -INFINITY)) continue;
        kept++;
        for (int i = b * block; i < (b + 1) * block && i < n; i++) keep[i] = 1;
    }
    return kept;
}

int dsv4_csa2_topk(const float *scores, int n, int visible, int topk, int32_t *idx, int *ids) {
    int m = 0;
    for (int i = 0; i < n; i++)
        if (scores[i] > -INFINITY) ids[m++] = i;
    int k = topk < n ? topk : n;
    int take = k < m ? k : m;
    if (take < m) dsv4_select_topk(ids, m, take, scores);
    qsort(ids, (size_t)take, sizeof *ids, cmp_int);
    for (int j = 0; j < take; j++) idx[j] = ids[j] < visible ? ids[j] : -1;
    for (int j = take; j < k; j++) idx[j] = -1;   /* fewer finite scores than k: empty slots */
    return k;
}

/* ------------------------------------------------------------------ compressor */

size_t dsv4_csa2_compress_scratch(const dsv4_csa2_compressor *c, int n) {
    return (size_t)2 * n * c->head_dim + dsv4_linear_scratch_floats(n, c->dim) + (size_t)c->head_dim;
}

void dsv4_csa2_compress_reset(const dsv4_csa2_compressor *c, float *kv_state, float *sc_state) {
    for (int i = 0; i < c->ratio * c->head_dim; i++) { kv_state[i] = 0.0f; sc_state[i] = -INFINITY; }
}

int dsv4_csa2_compress(const dsv4_csa2_compressor *c, float *kv_state, float *sc_state, const float *x, int n,
                       int64_t pos0, float *out, int64_t *first_group, float *scratch) {
    const int hd = c->head_dim, R = c->ratio;
    float *kv = scratch, *sc = kv + (size_t)n * hd, *ls = sc + (size_t)n * hd;
    if (R == 1) {
        dsv4_linear(kv, &c->wkv, x, n, DSV4_OUT_BF16, ls);
        for (int t = 0; t < n; t++) dsv4_rmsnorm(out + (size_t)t * hd, kv + (size_t)t * hd, c->norm, hd, c->eps, 1);
        *first_group = pos0;
        return n;
    }
    dsv4_linear(kv, &c->wkv, x, n, 0, ls);
    dsv4_linear(sc, &c->wgate, x, n, 0, ls);
    float *tmp = ls + dsv4_linear_scratch_floats(n, c->dim);
    int m = 0;
    *first_group = pos0 / R;   /* groups completed before pos0 */
    for (int t = 0; t < n; t++) {
        const int64_t p = pos0 + t;
        const int slot = (int)(p % R);
        memcpy(kv_state + (size_t)slot * hd, kv + (size_t)t * hd, sizeof(float) * hd);
        memcpy(sc_state + (size_t)slot * hd, sc + (size_t)t * hd, sizeof(float) * hd);
        if ((p + 1) % R) continue;
        for (int d = 0; d < hd; d++) {   /* softmax over the group per dimension, then the weighted sum (F32) */
            float mx = -INFINITY, z = 0.0f, acc = 0.0f;
            for (int j = 0; j < R; j++) mx = fmaxf(mx, sc_state[(size_t)j * hd + d]);
            for (int j = 0; j < R; j++) z += expf(sc_state[(size_t)j * hd + d] - mx);
            for (int j = 0; j < R; j++) acc += kv_state[(size_t)j * hd + d] * (expf(sc_state[(size_t)j * hd + d] - mx) / z);
            tmp[d] = dsv4_round_bf16(acc);
        }
        dsv4_rmsnorm(out + (size_t)m * hd, tmp, c->norm, hd, c->eps, 1);
        m++;
    }
    return m;
}
