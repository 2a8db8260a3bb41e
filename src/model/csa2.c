/* model/csa2.c — CSA2 selection steps (see csa2.h). */
#include "model/csa2.h"

#include <math.h>
#include <stdlib.h>

/* Order: higher value first, then lower index. */
static int better(float va, int ia, float vb, int ib) { return va > vb || (va == vb && ia < ib); }

/* Partially order ids[0..m) so that its first k entries are the k best (by `better` on v[id]); quickselect. */
static void select_best(const float *v, int *ids, int m, int k) {
    int lo = 0, hi = m - 1;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2, pid = ids[mid];
        float pv = v[pid];
        int i = lo, j = hi;
        while (i <= j) {
            while (better(v[ids[i]], ids[i], pv, pid)) i++;
            while (better(pv, pid, v[ids[j]], ids[j])) j--;
            if (i <= j) { int t = ids[i]; ids[i] = ids[j]; ids[j] = t; i++; j--; }
        }
        if (k - 1 <= j) hi = j;
        else if (k - 1 >= i) lo = i;
        else break;
    }
}

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
    if (k < nb) select_best(bs, ids, nb, k);
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
    if (take < m) select_best(scores, ids, m, take);
    qsort(ids, (size_t)take, sizeof *ids, cmp_int);
    for (int j = 0; j < take; j++) idx[j] = ids[j] < visible ? ids[j] : -1;
    for (int j = take; j < k; j++) idx[j] = -1;   /* fewer finite scores than k: empty slots */
    return k;
}
