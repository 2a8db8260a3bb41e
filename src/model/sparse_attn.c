/* model/sparse_attn.c — per-query attention and lightning-indexer scores on the shared kernels (sparse_attn.h). */
#include <math.h>
#include <string.h>
#include "model/sparse_attn.h"
#include "model/model.h"
#include "kernels/kernels.h"
#include "kernels/pool.h"
#include "kernels/headsum.h"
#include "base/util.h"

typedef struct {
    const dsv4_attn_shape *a;
    int64_t pos;
    const uint16_t *const *kptr;
    int nk;
    float *z;           /* [nk][H] raw dot products; head h's column is overwritten with its bf16(p) */
    float *o;
} attend_job;

static void attend_head(void *ctx, int h) {
    const attend_job *j = ctx;
    const int H = j->a->H, hd = j->a->hd, rd = j->a->rd;
    const float scale = j->a->scale;
    float mx = -INFINITY;
    for (int k = 0; k < j->nk; k++) {
        float zk = j->z[(size_t)k * H + h] * scale;
        if (zk > mx) mx = zk;
    }
    float Z = 0, *acc = j->o + (size_t)h * hd, *zh = j->z + h;
    for (int k = 0; k < j->nk; k++) {   /* this head's column of z becomes bf16(p) */
        float p = expf(zh[(size_t)k * H] * scale - mx);
        Z += p;
        zh[(size_t)k * H] = dsv4_round_bf16(p);
    }
    memset(acc, 0, (size_t)hd * sizeof(float));
    dsv4_pv_bf16(acc, zh, H, j->kptr, j->nk, hd);   /* = dsv4_axpy_bf16 per key, in key order */
    Z += expf(j->a->sink[h] - mx);
    for (int i = 0; i < hd; i++) acc[i] = dsv4_round_bf16(acc[i] / Z);
    dsv4_rope(acc + hd - rd, rd, j->a->rope_f, j->pos, 1);
}

void dsv4_sparse_attend(const dsv4_attn_shape *a, const uint16_t *qb, int64_t pos, const uint16_t *const *kptr,
                        int nk, float *z, float *o) {
    dsv4_wview wq = {DSV4_W_BF16, a->H, a->hd, qb, NULL};
    dsv4_linear_bf16x(z, &wq, NULL, 0, kptr, nk, 0);
    attend_job j = {a, pos, kptr, nk, z, o};
    dsv4_parallel_for(a->H, attend_head, &j);
}

typedef struct {
    const uint8_t *recs;
    size_t rec_bytes;
    const int32_t *idx;    /* NULL: consecutive records from first */
    int first, ihd, nw;
    uint16_t *out;         /* [nw][ihd] */
} ikey_dec_job;

static void ikey_dec_task(void *ctx, int i) {
    const ikey_dec_job *j = ctx;
    int w1 = (i + 1) * 64 < j->nw ? (i + 1) * 64 : j->nw;
    for (int w = i * 64; w < w1; w++) {
        size_t r = j->idx ? (size_t)j->idx[j->first + w] : (size_t)(j->first + w);
        const uint8_t *rec = j->recs + r * j->rec_bytes;
        dsv4_fp4_decode_bf16(rec, rec + j->ihd / 2, j->ihd, 32, j->out + (size_t)w * j->ihd);
    }
}

void dsv4_index_scores(int mode, const uint8_t *recs, size_t rec_bytes, const int32_t *idx, int n, int nh, int ihd,
                       const uint16_t *qb, const float *wh, float *isc, uint16_t *kdec, float *isd) {
    for (int w0 = 0; w0 < n; w0 += DSV4_IDX_CHUNK) {
        int nw = n - w0 < DSV4_IDX_CHUNK ? n - w0 : DSV4_IDX_CHUNK;
        ikey_dec_job dj = {recs, rec_bytes, idx, w0, ihd, nw, kdec};
        dsv4_parallel_for((nw + 63) / 64, ikey_dec_task, &dj);
        dsv4_wview wk = {DSV4_W_BF16, nw, ihd, kdec, NULL};
        float *acc = isc + w0;
        for (int w = 0; w < nw; w++) acc[w] = 0;
        if (mode == DSV4_ISCORE_V41) {
            dsv4_linear_bf16x(isd, &wk, qb, (size_t)ihd, NULL, nh, DSV4_OUT_BF16);   /* isd[h][w] = bf16(q_h . k_w) */
            for (int h = 0; h < nh; h++) dsv4_relu_wsum_bf16(acc, isd + (size_t)h * nw, wh[h], nw);
            for (int w = 0; w < nw; w++) acc[w] = dsv4_round_bf16(acc[w]);
        } else {
            dsv4_linear_bf16x(isd, &wk, qb, (size_t)ihd, NULL, nh, 0);   /* isd[h][w] */
            for (int h = 0; h < nh; h++) dsv4_relu_wsum_f32(acc, isd + (size_t)h * nw, wh[h], nw);
        }
    }
}
