/* model/forward_v41.c — the DeepSeek-V4.1 trunk forward (docs/v41-implementation.md items 5-13), first version.
 *
 * Scope: the trunk (Engram, CSA2 attention with KV / index sharing, the index-key slot quirk, the candidate-block
 * mask, single-pass mHC, MoE without hash layers, final norm and head) for batch 1 in any call schedule, and the
 * DSpark draft block (stage 0's main_x from the target layers, the stages' window over main_x plus the drafts,
 * Markov bias, confidence), tested against tests/golden/v41/tiny (tests/test_forward_v41.c). Not yet: the session API
 * (dsv4_model_load still refuses V4.1), compact caches (main_x is an F32 ring of window + max_chunk - 1 rows, the window
 * KV a BF16 one; compressed entries and index keys are FP4 records, max_ctx / ratio + 1 per source). Attention and the
 * indexer run on the shared kernels and the pool (model/sparse_attn.h; docs/performance.md "V4.1"). Every step follows tools/reference/model_v41.py (the reference of the goldens); BF16 roundings
 * where DeepSeek's code casts, F32 elsewhere. All memory is allocated at open; eval allocates nothing.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "model/model_v41.h"
#include "model/csa2.h"
#include "model/sparse_attn.h"
#include "kernels/pool.h"
#include "model/engram.h"
#include "kernels/quant_v41.h"
#include "base/util.h"

struct dsv4_v41_state {
    const dsv4_model *m;
    int max_ctx, max_chunk;
    int head_last;                        /* dsv4_v41_set_head_last: the head on the call's last row only */
    int wring;                            /* window ring slots: window + max_chunk - 1 (at most max_ctx): a chunk's
                                           * writes never evict a key one of its own queries still reads */
    int64_t pos;
    float *rope_win, *rope_comp;          /* [rope_dim / 2] each */
    /* per layer (n_layers): window KV ring [wring][head_dim]; compressed KV (KV sources) as FP4 records
     * [max_ctx / ratio + 1][ent_bytes] (head_dim/2 packed E2M1, head_dim/16 E4M3 scales: what the reference rounded
     * it to, decoded bit for bit); index keys [max_ctx + 1][index_head_dim] (owners); compressor state x 2 */
    uint16_t **win;                       /* BF16 (the keys are BF16 values): read in place by the attention GEMM */
    float **cs_kv, **cs_sc;
    uint8_t **comp, **ikeys;              /* ikeys: FP4 records [ikey_bytes] (index_head_dim/2 E2M1, /32 E8M0) */
    int ent_bytes, ikey_bytes;
    /* attention / indexer scratch (model/sparse_attn.h; docs/performance.md "V4.1") */
    uint16_t *kdec;                       /* [index_topk][head_dim] compressed entries of one query, decoded to BF16 */
    int kdec_for;                         /* KV source whose entries kdec holds for this call's one token, -1 none */
    uint16_t *qb;                         /* [max(H * head_dim, index_n_heads * index_head_dim)] queries as BF16 */
    const uint16_t **kptr;                /* [window + max(index_topk, chunk)] the keys one query attends to */
    float *asc;                           /* [window + max(index_topk, chunk)][H] attention dot products */
    uint16_t *ikdec;                      /* [DSV4_IDX_CHUNK][index_head_dim] index keys decoded to BF16 */
    float *isd, *isc, *iwh;               /* [index_n_heads][DSV4_IDX_CHUNK], [max_ctx + 1], [index_n_heads] */
    int32_t *cidx;                        /* [max_ctx + 1] positions of candidate blocks a query scores */
    uint16_t *ring16, *kv16;              /* DSpark: the window ring [window][head_dim], draft keys [chunk][head_dim] */
    int *n_comp, *n_ikeys;
    int published;                        /* owner whose index keys the slot holds, -1 none */
    int kvsrc;                            /* the most recent KV source that ran (its compressed KV is read) */
    int32_t *rec; int rec_cap, rec_n;     /* optional record of index selections (dsv4_v41_record) */
    /* DSpark: main_x [wring][dim] (stage 0's projection of the target layers' stream means, by position mod wring),
     * feat [max_chunk][n_targets * dim], ring [window][head_dim] */
    float *main_x, *feat, *ring, *mxg;   /* main_x: a ring of wring rows; mxg [window][dim] its rows gathered */
    /* Engram */
    dsv4_engram_layout lo;
    dsv4_engram_history hist;
    dsv4_engram_table *tables[DSV4_ENGRAM_MAX_LAYERS];
    dsv4_engram_prefetch *pf;             /* fetches a chunk's rows on a worker thread while layer 0.. run */
    int broken;                           /* an Engram row read failed mid-call: the state is inconsistent */
    int n_cols, row_bytes;
    size_t bytes;                         /* bytes allocated at open (dsv4_v41_state_bytes) */
    /* chunk scratch (max_chunk tokens) */
    float *X, *pre, *apre, *apost, *acomb, *fpre, *fpost, *fcomb, *mix, *x, *y, *t1, *t2;
    float *qa, *q, *kv, *o, *og, *oa, *lat, *iq, *iw, *sc, *row, *ls, *es, *lin;
    int32_t *sel, *nsel, *shared_sel, *shared_nsel, *ids, *iscr;
    uint8_t *cand;
    int64_t *eidx;
    int32_t *cids;
    float *fscr;
    /* images (dsv4_v41_eval_vl): the roles of the call's positions (DSV4_TOKEN_*, NULL = all text) while it runs, and
     * the Engram gate mask built from them [max_chunk] */
    const int8_t *roles;
    uint8_t *emask;
};

static float bf(float x) { return dsv4_round_bf16(x); }

/* out[T][w->rows] = W x (x BF16 values), input FP8-simulated in 32-blocks first when act, output BF16 when obf */
static void lin(dsv4_v41_state *s, float *out, const dsv4_wview *w, const float *x, int T, int act, int obf) {
    /* the 32-block quantization runs inside dsv4_linear, on the kernel path's elementwise ops (bit-identical to
     * dsv4_fp8_sim), into its scratch */
    dsv4_linear(out, w, x, T, (act ? DSV4_ACT_FP8_32 : 0) | (obf ? DSV4_OUT_BF16 : 0), s->lin);
}

static void rms(float *x, const float *w, int n, float eps) { dsv4_rmsnorm(x, x, w, n, eps, 1); }

/* The attention output projection of T tokens (trunk and DSpark blocks): s->o [T][H*hd] split in o_groups groups,
 * each through its rows of wo_a (BF16, no activation quantization) into s->oa [T][G*olr], then wo_b -> out. */
static void attn_out(dsv4_v41_state *s, const dsv4_layer41 *B, int T, float *out) {
    const dsv4_config *c = &s->m->cfg;
    const int H = c->n_heads, hd = c->head_dim, G = c->o_groups, gw = H * hd / G, olr = c->o_lora_rank;
    for (int g = 0; g < G; g++) {
        for (int t = 0; t < T; t++)
            memcpy(s->og + (size_t)t * gw, s->o + (size_t)t * H * hd + (size_t)g * gw, (size_t)gw * sizeof(float));
        dsv4_wview wg = dsv4_wview_rows(&B->wo_a, g * olr, olr);
        dsv4_linear(s->t2, &wg, s->og, T, DSV4_OUT_BF16, s->lin);
        for (int t = 0; t < T; t++)
            memcpy(s->oa + (size_t)t * G * olr + (size_t)g * olr, s->t2 + (size_t)t * olr, (size_t)olr * sizeof(float));
    }
    lin(s, out, &B->wo_b, s->oa, T, 1, 1);
}

/* hc_mixes of single-pass mHC for each token of X [T][hc][D] */
static void mixes(dsv4_v41_state *s, const float *X, int T, const dsv4_wview *fn, const float *scale, const float *base,
                  float *pre, float *post, float *comb) {
    const dsv4_config *c = &s->m->cfg;
    const int hc = c->hc_mult, D = c->dim, nm = (2 + hc) * hc;
    dsv4_linear(s->mix, fn, X, T, 0, s->lin);
    for (int t = 0; t < T; t++) {
        const float *v = X + (size_t)t * hc * D;
        float ss = 0;
        for (int i = 0; i < hc * D; i++) ss += v[i] * v[i];
        float r = 1.0f / sqrtf(ss / (float)(hc * D) + c->norm_eps);
        float *m = s->mix + (size_t)t * nm;
        for (int i = 0; i < nm; i++) m[i] *= r;
        for (int k = 0; k < hc; k++) {
            pre[t * hc + k] = dsv4_sigmoid(m[k] * scale[0] + base[k]) + c->hc_eps;
            post[t * hc + k] = 2.0f * dsv4_sigmoid(m[hc + k] * scale[1] + base[hc + k]);
        }
        float *M = comb + (size_t)t * hc * hc;
        for (int i = 0; i < hc * hc; i++) M[i] = m[2 * hc + i] * scale[2] + base[2 * hc + i];
        dsv4_sinkhorn(M, hc, c->hc_sinkhorn_iters, c->hc_eps);
    }
}

static void hc_pre(const dsv4_config *c, const float *X, const float *pre, int T, float *out) {
    const int hc = c->hc_mult, D = c->dim;
    for (int t = 0; t < T; t++)
        for (int d = 0; d < D; d++) {
            float a = 0;
            for (int k = 0; k < hc; k++) a += pre[t * hc + k] * X[((size_t)t * hc + k) * D + d];
            out[(size_t)t * D + d] = bf(a);
        }
}

/* X[t][k] = bf16(post[k] y[t] + sum_j comb[j][k] X[t][j]) */
static void hc_post(const dsv4_config *c, float *X, const float *y, const float *post, const float *comb, int T,
                    float *tmp) {
    const int hc = c->hc_mult, D = c->dim;
    for (int t = 0; t < T; t++) {
        float *Xt = X + (size_t)t * hc * D;
        const float *M = comb + (size_t)t * hc * hc;
        for (int k = 0; k < hc; k++)
            for (int d = 0; d < D; d++) {
                float a = post[t * hc + k] * y[(size_t)t * D + d];
                float b = 0;
                for (int j = 0; j < hc; j++) b += M[j * hc + k] * Xt[(size_t)j * D + d];
                tmp[(size_t)k * D + d] = bf(a + b);
            }
        memcpy(Xt, tmp, (size_t)hc * D * sizeof(float));
    }
}

static float softplusf(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

static void expert(dsv4_v41_state *s, const dsv4_wview *w1, const dsv4_wview *w2, const dsv4_wview *w3, const float *x,
                   float wt, int has_wt, float *out) {
    const dsv4_config *c = &s->m->cfg;
    const int I = w1->rows;
    float *g = s->t1, *u = s->t1 + I;
    lin(s, g, w1, x, 1, 1, 1);
    lin(s, u, w3, x, 1, 1, 1);
    for (int i = 0; i < I; i++) {
        float gi = g[i], ui = u[i];
        if (c->swiglu_limit > 0) {
            ui = fminf(fmaxf(ui, -c->swiglu_limit), c->swiglu_limit);
            gi = fminf(gi, c->swiglu_limit);
        }
        float h = gi / (1.0f + expf(-gi)) * ui;
        if (has_wt) h = wt * h;
        g[i] = bf(h);
    }
    lin(s, out, w2, g, 1, 1, 1);
}

static void moe(dsv4_v41_state *s, const dsv4_layer41 *B, const float *x, int T, float *out) {
    const dsv4_config *c = &s->m->cfg;
    const int D = c->dim, E = B->n_experts, K = B->n_active;
    float *gs = s->t2, *ch = s->t2 + E, *eo = s->t2 + 2 * E, *acc = eo + D;
    dsv4_linear(s->sc, &B->gate, x, T, 0, s->lin);
    for (int t = 0; t < T; t++) {
        const float *xt = x + (size_t)t * D;
        /* image positions select their experts with bias_vl (docs/v41.md §3.4); the weights stay unbiased */
        const float *bias = s->roles && s->roles[t] >= 0 && B->gate_bias_vl ? B->gate_bias_vl : B->gate_bias;
        for (int e = 0; e < E; e++) {
            gs[e] = sqrtf(softplusf(s->sc[(size_t)t * E + e]));
            ch[e] = gs[e] + bias[e];
            s->ids[e] = e;
        }
        dsv4_select_topk(s->ids, E, K, ch);
        float sum = 0;
        for (int k = 0; k < K; k++) sum += gs[s->ids[k]];
        for (int d = 0; d < D; d++) acc[d] = 0;
        for (int k = 0; k < K; k++) {
            int e = s->ids[k];
            float wt = gs[e];
            if (K > 1) wt = wt / (sum + 1e-20f);
            wt *= c->route_scale;
            expert(s, &B->w1[e], &B->w2[e], &B->w3[e], xt, wt, 1, eo);
            for (int d = 0; d < D; d++) acc[d] += eo[d];
        }
        if (B->sw1.rows) {
            expert(s, &B->sw1, &B->sw2, &B->sw3, xt, 0, 0, eo);
            for (int d = 0; d < D; d++) acc[d] += eo[d];
        }
        for (int d = 0; d < D; d++) out[(size_t)t * D + d] = bf(acc[d]);
    }
}

/* the index scores of layer L for T queries and its top-k picks (sel[t][0..nsel[t])) */
static void indexer(dsv4_v41_state *s, int L, const dsv4_layer41 *B, const float *x, const float *qr, const float *lat,
                    int nlat, int64_t g0, int64_t pos0, int T) {
    const dsv4_config *c = &s->m->cfg;
    const int ratio = B->ratio, nh = c->index_n_heads, ihd = c->index_head_dim, rd = c->rope_dim;
    const int64_t end = pos0 + T, n = end / ratio;
    const float *fr = s->rope_comp;
    if (B->kv_source && nlat > 0) {
        float *k = s->t2;
        lin(s, k, &B->idx_wk, lat, nlat, 0, 1);
        for (int i = 0; i < nlat; i++) {
            float *ki = k + (size_t)i * ihd;
            rms(ki, B->idx_k_norm, ihd, c->norm_eps);
            dsv4_rope(ki + ihd - rd, rd, fr, (g0 + i) * ratio, 0);
            uint8_t *rec = s->ikeys[L] + (size_t)(g0 + i) * s->ikey_bytes;
            dsv4_fp4_encode(ki, ihd, 32, rec, rec + ihd / 2);   /* = dsv4_fp4_sim, kept as its record */
        }
        s->n_ikeys[L] = (int)(g0 + nlat);
        s->published = L;
    }
    lin(s, s->iq, &B->idx_wq_b, qr, T, 1, 1);
    for (int t = 0; t < T; t++)
        for (int h = 0; h < nh; h++) {
            float *qh = s->iq + ((size_t)t * nh + h) * ihd;
            dsv4_rope(qh + ihd - rd, rd, fr, pos0 + t, 0);
            dsv4_fp4_sim(qh, ihd, 32);
        }
    lin(s, s->iw, &B->idx_wp, x, T, 0, 1);
    const float wscale = (float)(pow((double)ihd, -0.5) * pow((double)nh, -0.5));
    const uint8_t *Krec = s->published >= 0 ? s->ikeys[s->published] : NULL;
    const int64_t nk = s->published >= 0 ? s->n_ikeys[s->published] : 0;
    for (int t = 0; t < T; t++) {
        const int64_t P = pos0 + t, vis = (P + 1) / ratio, nv = vis < nk ? vis : nk;
        /* score of key j < nv: bf16(sum_h bf16(relu(bf16(q_h . k_j)) * bf16(w_h * wscale))), heads in order
         * (dsv4_index_scores: keys decoded in parallel, one pair-lane GEMM, the head sum in lanes); a visible
         * position past the slot's keys scores 0 (every dot 0), an invisible one -inf */
        for (int h = 0; h < nh; h++) s->iwh[h] = bf(s->iw[(size_t)t * nh + h] * wscale);
        for (size_t i = 0; i < (size_t)nh * ihd; i++) s->qb[i] = dsv4_f32_to_bf16(s->iq[(size_t)t * nh * ihd + i]);
        uint8_t *cand = s->cand + (size_t)t * (s->max_ctx + 1);
        if (B->uses_candidates && !B->candidate_source) {
            /* positions outside the candidate blocks end at -inf whatever they score: score the others only */
            int m = 0;
            for (int64_t j = 0; j < nv; j++)
                if (cand[j]) s->cidx[m++] = (int32_t)j;
            dsv4_index_scores(DSV4_ISCORE_V41, Krec, (size_t)s->ikey_bytes, s->cidx, m, nh, ihd, s->qb, s->iwh, s->isc,
                              s->ikdec, s->isd);
            for (int64_t j = 0; j < n; j++) s->row[j] = -INFINITY;
            for (int i = 0; i < m; i++) s->row[s->cidx[i]] = s->isc[i];
            for (int64_t j = nv; j < vis; j++)
                if (cand[j]) s->row[j] = 0;
        } else {
            if (nv > 0)
                dsv4_index_scores(DSV4_ISCORE_V41, Krec, (size_t)s->ikey_bytes, NULL, (int)nv, nh, ihd, s->qb, s->iwh,
                                  s->row, s->ikdec, s->isd);
            for (int64_t j = nv; j < n; j++) s->row[j] = j < vis ? 0 : -INFINITY;
            if (B->candidate_source)
                dsv4_csa2_candidates(s->row, (int)n, (int)vis, c->x.candidate_topk_blocks, c->x.candidate_block_size,
                                     cand, s->fscr, s->iscr);
        }
        int32_t *sel = s->sel + (size_t)t * c->index_topk;
        int k = dsv4_csa2_topk(s->row, (int)n, (int)vis, c->index_topk < n ? c->index_topk : (int)n, sel, s->iscr);
        int m = 0;
        for (int i = 0; i < k; i++)
            if (sel[i] >= 0 && sel[i] < vis && s->row[sel[i]] > -INFINITY) sel[m++] = sel[i];
        s->nsel[t] = m;
        if (s->rec && s->rec_n < s->rec_cap) {
            int32_t *r = s->rec + (size_t)s->rec_n++ * (3 + c->index_topk);
            r[0] = L;
            r[1] = (int32_t)P;
            r[2] = m;
            memcpy(r + 3, sel, (size_t)m * sizeof(int32_t));
        }
    }
}

void dsv4_v41_record(dsv4_v41_state *s, int32_t *buf, int cap) {
    s->rec = buf;
    s->rec_cap = cap;
    s->rec_n = 0;
}

int dsv4_v41_recorded(const dsv4_v41_state *s) { return s->rec_n; }

/* compressed entries sel[0..n) of a KV source decoded to BF16 (dsv4_fp4_e4m3_decode_bf16), 16 per task */
typedef struct {
    const uint8_t *recs;
    size_t rec_bytes;
    const int32_t *sel;
    int n, hd;
    uint16_t *out;   /* [n][hd] */
} comp_dec_job;

static void comp_dec_task(void *ctx, int i) {
    const comp_dec_job *j = ctx;
    const int e1 = (i + 1) * 16 < j->n ? (i + 1) * 16 : j->n;
    for (int e = i * 16; e < e1; e++) {
        const uint8_t *rec = j->recs + (size_t)j->sel[e] * j->rec_bytes;
        dsv4_fp4_e4m3_decode_bf16(rec, rec + j->hd / 2, j->hd, 16, j->out + (size_t)e * j->hd);
    }
}

static void attention(dsv4_v41_state *s, int L, const dsv4_layer41 *B, const float *x, int64_t pos0, int T,
                      float *out) {
    const dsv4_config *c = &s->m->cfg;
    const int H = c->n_heads, hd = c->head_dim, rd = c->rope_dim, ratio = B->ratio, win = c->window_size;
    const float *fr = ratio ? s->rope_comp : s->rope_win;
    lin(s, s->qa, &B->wq_a, x, T, 1, 1);
    for (int t = 0; t < T; t++) rms(s->qa + (size_t)t * c->q_lora_rank, B->q_norm, c->q_lora_rank, c->norm_eps);
    lin(s, s->q, &B->wq_b, s->qa, T, 1, 1);
    lin(s, s->kv, &B->wkv, x, T, 1, 1);
    for (int t = 0; t < T; t++) {
        for (int h = 0; h < H; h++) dsv4_rope(s->q + ((size_t)t * H + h) * hd + hd - rd, rd, fr, pos0 + t, 0);
        float *kv = s->kv + (size_t)t * hd;
        rms(kv, B->kv_norm, hd, c->norm_eps);
        dsv4_rope(kv + hd - rd, rd, fr, pos0 + t, 0);
        dsv4_fp8_sim(kv, hd, 32);
        uint16_t *w = s->win[L] + (size_t)((pos0 + t) % s->wring) * hd;
        for (int i = 0; i < hd; i++) w[i] = dsv4_f32_to_bf16(kv[i]);   /* = bf(kv[i]), kept as BF16 */
    }
    if (ratio) {
        if (B->kv_source || B->index_source) s->kdec_for = -1;   /* the entries or the selection change */
        int nlat = 0;
        int64_t g0 = 0;
        if (B->kv_source) {
            dsv4_csa2_compressor cc = {ratio, c->dim, hd, B->comp_wkv, B->comp_wgate, B->comp_norm, c->norm_eps};
            nlat = dsv4_csa2_compress(&cc, s->cs_kv[L], s->cs_sc[L], x, T, pos0, s->lat, &g0, s->ls);
            s->kvsrc = L;
        }
        if (B->index_source) {
            if ((pos0 + T) / ratio > 0) indexer(s, L, B, x, s->qa, s->lat, nlat, g0, pos0, T);
            else
                for (int t = 0; t < T; t++) s->nsel[t] = 0;
            memcpy(s->shared_sel, s->sel, (size_t)T * c->index_topk * sizeof(int32_t));
            memcpy(s->shared_nsel, s->nsel, (size_t)T * sizeof(int32_t));
        }
        for (int i = 0; i < nlat; i++) {
            float *l = s->lat + (size_t)i * hd;
            dsv4_rope(l + hd - rd, rd, fr, (g0 + i) * ratio, 0);
            uint8_t *rec = s->comp[L] + (size_t)(g0 + i) * s->ent_bytes;
            dsv4_fp4_e4m3_encode(l, hd, 16, rec, rec + hd / 2);
        }
        if (nlat) s->n_comp[L] = (int)(g0 + nlat);
    }
    /* per query: the window keys in place, the selected compressed entries decoded to BF16 (in parallel; a one-token
     * call reuses them on the following layers that read the same source and selection), then
     * dsv4_sparse_attend: scores of all heads in one pair-lane GEMM, softmax with the sink and P.V per head */
    const dsv4_attn_shape as = {H, hd, rd, 1.0f / sqrtf((float)hd), B->attn_sink, fr};
    for (int t = 0; t < T; t++) {
        const int64_t P = pos0 + t, w0 = P - win + 1 > 0 ? P - win + 1 : 0;
        const int nw = (int)(P - w0 + 1), nc = ratio ? s->shared_nsel[t] : 0;
        const uint16_t **kp = s->kptr;
        for (int j = 0; j < nw; j++) kp[j] = s->win[L] + (size_t)((w0 + j) % s->wring) * hd;
        if (nc && !(T == 1 && s->kdec_for == s->kvsrc)) {
            comp_dec_job dj = {s->comp[s->kvsrc], (size_t)s->ent_bytes, s->shared_sel + (size_t)t * c->index_topk, nc,
                               hd, s->kdec};
            dsv4_parallel_for((nc + 15) / 16, comp_dec_task, &dj);
            s->kdec_for = T == 1 ? s->kvsrc : -1;
        }
        for (int j = 0; j < nc; j++) kp[nw + j] = s->kdec + (size_t)j * hd;
        for (size_t i = 0; i < (size_t)H * hd; i++) s->qb[i] = dsv4_f32_to_bf16(s->q[(size_t)t * H * hd + i]);
        dsv4_sparse_attend(&as, s->qb, P, kp, nw + nc, s->asc, s->o + (size_t)t * H * hd);
    }
    attn_out(s, B, T, out);
}

static void dspark_attention(dsv4_v41_state *s, const dsv4_layer41 *B, const float *x, int64_t P, int T, float *out);

static void block(dsv4_v41_state *s, int L, float *pre_mix, int64_t pos0, int T) {
    const dsv4_config *c = &s->m->cfg;
    const dsv4_layer41 *B = &s->m->v41->layers[L];
    const int D = c->dim, hc = c->hc_mult;
    mixes(s, s->X, T, &B->hc_attn_fn, B->hc_attn_scale, B->hc_attn_base, s->apre, s->apost, s->acomb);
    hc_pre(c, s->X, pre_mix, T, s->x);
    for (int t = 0; t < T; t++) rms(s->x + (size_t)t * D, B->attn_norm, D, c->norm_eps);
    if (L < c->n_layers) attention(s, L, B, s->x, pos0, T, s->y);
    else dspark_attention(s, B, s->x, pos0, T, s->y);   /* pos0 = P, the last evaluated position */
    hc_post(c, s->X, s->y, s->apost, s->acomb, T, s->t1);
    mixes(s, s->X, T, &B->hc_ffn_fn, B->hc_ffn_scale, B->hc_ffn_base, s->fpre, s->fpost, s->fcomb);
    hc_pre(c, s->X, s->apre, T, s->x);
    for (int t = 0; t < T; t++) rms(s->x + (size_t)t * D, B->ffn_norm, D, c->norm_eps);
    moe(s, B, s->x, T, s->y);
    hc_post(c, s->X, s->y, s->fpost, s->fcomb, T, s->t1);
    memcpy(pre_mix, s->fpre, (size_t)T * hc * sizeof(float));
}

int dsv4_v41_eval(dsv4_v41_state *s, const int32_t *tokens, int T, float *logits, float *blocks, char *err,
                  size_t errlen) {
    return dsv4_v41_eval_vl(s, tokens, NULL, NULL, T, logits, blocks, err, errlen);
}

int dsv4_v41_eval_vl(dsv4_v41_state *s, const int32_t *tokens, const int8_t *roles, const float *const *embs, int T,
                     float *logits, float *blocks, char *err, size_t errlen) {
    const dsv4_model *m = s->m;
    const dsv4_config *c = &m->cfg;
    const int D = c->dim, hc = c->hc_mult, V = c->vocab_size;
    if (s->broken)
        return dsv4_fail(err, errlen, "dsv4_v41_eval: an earlier Engram row read failed in the middle of a call; "
                         "open a new state");
    if (T < 1 || T > s->max_chunk || s->pos + T > s->max_ctx)
        return dsv4_fail(err, errlen, "dsv4_v41_eval: %d tokens at position %lld (chunk limit %d, context %d)", T,
                         (long long)s->pos, s->max_chunk, s->max_ctx);
    for (int t = 0; t < T; t++)
        if (tokens[t] < 0 || tokens[t] >= V)
            return dsv4_fail(err, errlen, "dsv4_v41_eval: token id %d out of range [0, %d)", tokens[t], V);
    const int64_t pos0 = s->pos;
    const struct dsv4_v41_weights *v = m->v41;
    s->kdec_for = -1;
    /* Engram rows of every Engram layer for the whole chunk, before the layers */
    if (c->x.n_engram) {
        /* the compressed token map built at load from the model's tokenizer (ids it does not cover: the pad's
         * compressed id), or the identity (no tokenizer; engram_compressed_vocab_size == vocab_size, checked at open) */
        const int32_t *map = v->engram_map;
        for (int t = 0; t < T; t++)
            s->cids[t] = !map ? tokens[t] : tokens[t] < v->engram_map_n ? map[tokens[t]] : v->engram_pad;
        if (roles)   /* image positions: DEAD for the n-gram hash (no n-gram crosses them), gate 0 below */
            for (int t = 0; t < T; t++) {
                s->emask[t] = roles[t] >= 0;
                if (roles[t] >= 0) s->cids[t] = DSV4_ENGRAM_DEAD;
            }
        dsv4_engram_hash_chunk(&s->lo, &s->hist, s->cids, T, s->eidx);
        dsv4_engram_prefetch_start(s->pf, s->tables, s->eidx, T);
    }
    const uint8_t *erows = NULL;   /* the prefetched rows, after the wait before the first Engram layer */
    for (int t = 0; t < T; t++) {
        if (embs && embs[t])   /* an image position: its aligner row or span vector (BF16 values) */
            memcpy(s->X + (size_t)t * hc * D, embs[t], (size_t)D * sizeof(float));
        else
            dsv4_wview_row(&m->embed, tokens[t], s->X + (size_t)t * hc * D);
        for (int k = 1; k < hc; k++)
            memcpy(s->X + ((size_t)t * hc + k) * D, s->X + (size_t)t * hc * D, (size_t)D * sizeof(float));
        for (int k = 0; k < hc; k++) s->pre[t * hc + k] = k == 0;
    }
    s->roles = roles;   /* read by moe() for the trunk blocks; cleared before DSpark runs */
    for (int L = 0; L < c->n_layers; L++) {
        const dsv4_layer41 *B = &v->layers[L];
        if (B->engram) {
            const int l = B->engram->index, nc = s->n_cols;
            if (!erows && dsv4_engram_prefetch_wait(s->pf, &erows, err, errlen)) {
                s->broken = 1;   /* the layers before it already advanced their caches */
                s->roles = NULL;
                return -1;
            }
            dsv4_engram_proj p = {hc, D, nc, c->x.engram_head_dim, B->engram->wkv, B->engram->w, c->norm_eps};
            dsv4_engram_apply(&p, s->X, dsv4_engram_prefetch_rows(s->pf, erows, l), T, roles ? s->emask : NULL, NULL,
                              s->es);
        }
        for (int k = 0; k < c->x.n_dspark_targets && s->main_x; k++) {
            if (c->x.dspark_target_layer_ids[k] != L) continue;
            const int nt = c->x.n_dspark_targets;
            for (int t = 0; t < T; t++)
                for (int d = 0; d < D; d++) {
                    float a = 0;
                    for (int j = 0; j < hc; j++) a += s->X[((size_t)t * hc + j) * D + d];
                    s->feat[((size_t)t * nt + k) * D + d] = bf(a / (float)hc);
                }
        }
        block(s, L, s->pre, pos0, T);
        if (blocks)
            memcpy(blocks + (size_t)L * s->max_chunk * hc * D, s->X, (size_t)T * hc * D * sizeof(float));
    }
    s->roles = NULL;
    hc_pre(c, s->X, s->pre, T, s->x);
    for (int t = 0; t < T; t++) rms(s->x + (size_t)t * D, m->norm, D, c->norm_eps);
    if (logits && s->head_last)   /* each row's logits do not depend on the rows computed with it (pair-lane order) */
        dsv4_linear(logits, &m->head, s->x + (size_t)(T - 1) * D, 1, 0, s->lin);
    else if (logits) dsv4_linear(logits, &m->head, s->x, T, 0, s->lin);
    if (s->main_x) {   /* DSpark stage 0's main_x of these positions */
        const dsv4_layer41 *S0 = &v->layers[c->n_layers];
        lin(s, s->y, &S0->main_proj, s->feat, T, 1, 1);
        for (int t = 0; t < T; t++) {
            rms(s->y + (size_t)t * D, S0->main_norm, D, c->norm_eps);
            memcpy(s->main_x + (size_t)((pos0 + t) % s->wring) * D, s->y + (size_t)t * D, (size_t)D * sizeof(float));
        }
    }
    s->pos += T;
    return 0;
}

/* DSpark stage attention for the draft block at positions P+1 .. P+T: keys = the stage's window KV of main_x at
 * positions max(0, P+1-window) .. P, then the T drafts' own KV (no mask inside the block). */
static void dspark_attention(dsv4_v41_state *s, const dsv4_layer41 *B, const float *x, int64_t P, int T, float *out) {
    const dsv4_config *c = &s->m->cfg;
    const int H = c->n_heads, hd = c->head_dim, rd = c->rope_dim, D = c->dim;
    const float *fr = s->rope_win;
    const int64_t r0 = P + 1 - c->window_size > 0 ? P + 1 - c->window_size : 0;
    const int nr = (int)(P + 1 - r0);
    for (int i = 0; i < nr; i++)
        memcpy(s->mxg + (size_t)i * D, s->main_x + (size_t)((r0 + i) % s->wring) * D, (size_t)D * sizeof(float));
    lin(s, s->ring, &B->wkv, s->mxg, nr, 1, 1);
    for (int i = 0; i < nr; i++) {
        float *k = s->ring + (size_t)i * hd;
        rms(k, B->kv_norm, hd, c->norm_eps);
        dsv4_rope(k + hd - rd, rd, fr, r0 + i, 0);
        dsv4_fp8_sim(k, hd, 32);
        for (int j = 0; j < hd; j++) k[j] = bf(k[j]);
    }
    lin(s, s->qa, &B->wq_a, x, T, 1, 1);
    for (int t = 0; t < T; t++) rms(s->qa + (size_t)t * c->q_lora_rank, B->q_norm, c->q_lora_rank, c->norm_eps);
    lin(s, s->q, &B->wq_b, s->qa, T, 1, 1);
    lin(s, s->kv, &B->wkv, x, T, 1, 1);
    for (int t = 0; t < T; t++) {
        for (int h = 0; h < H; h++) dsv4_rope(s->q + ((size_t)t * H + h) * hd + hd - rd, rd, fr, P + 1 + t, 0);
        float *kv = s->kv + (size_t)t * hd;
        rms(kv, B->kv_norm, hd, c->norm_eps);
        dsv4_rope(kv + hd - rd, rd, fr, P + 1 + t, 0);
        dsv4_fp8_sim(kv, hd, 32);
        for (int i = 0; i < hd; i++) kv[i] = bf(kv[i]);
    }
    /* the keys as BF16 (they are BF16 values), then dsv4_sparse_attend per draft (model/sparse_attn.h) */
    for (size_t i = 0; i < (size_t)nr * hd; i++) s->ring16[i] = dsv4_f32_to_bf16(s->ring[i]);
    for (size_t i = 0; i < (size_t)T * hd; i++) s->kv16[i] = dsv4_f32_to_bf16(s->kv[i]);
    const uint16_t **kp = s->kptr;
    for (int j = 0; j < nr + T; j++) kp[j] = j < nr ? s->ring16 + (size_t)j * hd : s->kv16 + (size_t)(j - nr) * hd;
    const dsv4_attn_shape as = {H, hd, rd, 1.0f / sqrtf((float)hd), B->attn_sink, fr};
    for (int t = 0; t < T; t++) {
        for (size_t i = 0; i < (size_t)H * hd; i++) s->qb[i] = dsv4_f32_to_bf16(s->q[(size_t)t * H * hd + i]);
        dsv4_sparse_attend(&as, s->qb, P + 1 + t, kp, nr + T, s->asc, s->o + (size_t)t * H * hd);
    }
    attn_out(s, B, T, out);
}

int dsv4_v41_dspark(dsv4_v41_state *s, int32_t token, float *logits, int32_t *ids, float *conf, char *err,
                    size_t errlen) {
    const dsv4_model *m = s->m;
    const dsv4_config *c = &m->cfg;
    const int D = c->dim, hc = c->hc_mult, V = c->vocab_size, Bs = c->x.dspark_block_size;
    if (!s->main_x) return dsv4_fail(err, errlen, "%s: the model has no DSpark stages", m->dir);
    if (s->pos < 2) return dsv4_fail(err, errlen, "dsv4_v41_dspark: needs 2 evaluated positions, have %lld",
                                     (long long)s->pos);
    if (token < 0 || token >= V) return dsv4_fail(err, errlen, "dsv4_v41_dspark: token id %d out of range", token);
    const int64_t P = s->pos - 1;
    for (int t = 0; t < Bs; t++) {
        int32_t id = t == 0 ? token : c->x.dspark_noise_token_id;
        dsv4_wview_row(&m->embed, id, s->X + (size_t)t * hc * D);
        for (int k = 1; k < hc; k++)
            memcpy(s->X + ((size_t)t * hc + k) * D, s->X + (size_t)t * hc * D, (size_t)D * sizeof(float));
        for (int k = 0; k < hc; k++) s->pre[t * hc + k] = k == 0;
    }
    for (int st = 0; st < c->n_mtp_layers; st++) block(s, c->n_layers + st, s->pre, P, Bs);
    const dsv4_layer41 *Bl = &m->v41->layers[c->n_layers + c->n_mtp_layers - 1];
    const int r = c->x.dspark_markov_rank;
    hc_pre(c, s->X, s->pre, Bs, s->x);                    /* the confidence head reads this (not normed) */
    memcpy(s->y, s->x, (size_t)Bs * D * sizeof(float));
    for (int t = 0; t < Bs; t++) rms(s->y + (size_t)t * D, Bl->dspark_norm, D, c->norm_eps);
    dsv4_linear(logits, &m->head, s->y, Bs, 0, s->lin);
    ids[0] = token;
    float *emb = s->t1, *bias = s->t2, *cat = s->t1 + (size_t)Bs * r;
    for (int i = 0; i < Bs; i++) {
        dsv4_wview_row(&Bl->markov_embed, ids[i], emb + (size_t)i * r);
        dsv4_linear(bias, &Bl->markov_head, emb + (size_t)i * r, 1, 0, s->lin);
        float *li = logits + (size_t)i * V;
        int best = 0;
        for (int v = 0; v < V; v++) {
            li[v] += bias[v];
            if (li[v] > li[best]) best = v;
        }
        ids[i + 1] = best;
    }
    for (int i = 0; i < Bs; i++) {
        memcpy(cat, s->x + (size_t)i * D, (size_t)D * sizeof(float));
        memcpy(cat + D, emb + (size_t)i * r, (size_t)r * sizeof(float));
        float a = 0;
        float *row = cat + D + r;
        dsv4_wview_row(&Bl->confidence_proj, 0, row);
        for (int j = 0; j < D + r; j++) a += cat[j] * row[j];
        conf[i] = a;
    }
    return 0;
}

/* calloc that records a failure in *fail and adds the bytes to *tally (dsv4_v41_state_bytes) */
static void *zalloc_t(size_t n, int *fail, size_t *tally) {
    void *p = calloc(1, n ? n : 1);
    if (!p) *fail = 1;
    else *tally += n ? n : 1;
    return p;
}
#define zalloc(n_, fail_) zalloc_t((n_), (fail_), &s->bytes)

void dsv4_v41_state_free(dsv4_v41_state *s) {
    if (!s) return;
    const int NL = s->m->cfg.n_layers;
    if (s->pf) dsv4_engram_prefetch_free(s->pf);
    for (int l = 0; l < DSV4_ENGRAM_MAX_LAYERS; l++) dsv4_engram_table_close(s->tables[l]);
    if (s->win)
        for (int l = 0; l < NL; l++) free(s->win[l]);
    free(s->win);
    float **arr[2] = {s->cs_kv, s->cs_sc};
    for (int a = 0; a < 2; a++) {
        if (!arr[a]) continue;
        for (int l = 0; l < NL; l++) free(arr[a][l]);
        free(arr[a]);
    }
    for (int l = 0; l < NL; l++) {
        if (s->comp) free(s->comp[l]);
        if (s->ikeys) free(s->ikeys[l]);
    }
    free(s->comp);
    free(s->ikeys);
    void *f[] = {s->mxg, s->kdec, s->qb, (void *)s->kptr, s->asc, s->ikdec, s->isd, s->isc, s->iwh, s->cidx, s->ring16,
                 s->kv16, s->main_x, s->feat, s->ring, s->n_comp, s->n_ikeys, s->rope_win, s->rope_comp, s->X, s->pre, s->apre, s->apost, s->acomb, s->fpre,
                 s->fpost, s->fcomb, s->mix, s->x, s->y, s->t1, s->t2, s->qa, s->q, s->kv, s->o, s->og, s->oa, s->lat,
                 s->iq, s->iw, s->sc, s->row, s->ls, s->es, s->lin, s->sel, s->nsel, s->shared_sel,
                 s->shared_nsel, s->ids, s->iscr, s->cand, s->eidx, s->cids, s->fscr, s->emask};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) free(f[i]);
    free(s);
}

void dsv4_v41_set_head_last(dsv4_v41_state *s, int on) { s->head_last = on != 0; }

void dsv4_v41_state_reset(dsv4_v41_state *s) {
    if (!s) return;
    const dsv4_config *c = &s->m->cfg;
    s->pos = 0;
    s->published = -1;
    s->kvsrc = -1;
    s->broken = 0;   /* every part of the sequence state is cleared below (rings are read by position only) */
    for (int L = 0; L < c->n_layers; L++) {
        const dsv4_layer41 *B = &s->m->v41->layers[L];
        s->n_comp[L] = s->n_ikeys[L] = 0;
        if (B->kv_source) {
            dsv4_csa2_compressor cc = {B->ratio, c->dim, c->head_dim, B->comp_wkv, B->comp_wgate, B->comp_norm,
                                       c->norm_eps};
            dsv4_csa2_compress_reset(&cc, s->cs_kv[L], s->cs_sc[L]);
        }
    }
    if (c->x.n_engram) dsv4_engram_history_reset(&s->hist);
}

int64_t dsv4_v41_state_pos(const dsv4_v41_state *s) { return s ? s->pos : 0; }

size_t dsv4_v41_state_bytes(const dsv4_v41_state *s) { return s ? s->bytes + sizeof *s : 0; }

void dsv4_v41_engram_stats(const dsv4_v41_state *s, int64_t *requested, int64_t *cache_hits) {
    *requested = *cache_hits = 0;
    for (int l = 0; s && l < DSV4_ENGRAM_MAX_LAYERS; l++) {
        if (!s->tables[l]) continue;
        int64_t r, h;
        dsv4_engram_table_stats(s->tables[l], &r, &h);
        *requested += r;
        *cache_hits += h;
    }
}

int dsv4_v41_state_open(const dsv4_model *m, int max_ctx, int max_chunk, dsv4_v41_state **out, char *err,
                        size_t errlen) {
    *out = NULL;
    if (!m || !m->v41) return dsv4_fail(err, errlen, "dsv4_v41_state_open: not a bound DeepSeek-V4.1 model");
    const dsv4_config *c = &m->cfg;
    const dsv4_config_v41 *x = &c->x;
    if (max_ctx < 1 || max_chunk < 1 || max_chunk > max_ctx)
        return dsv4_fail(err, errlen, "dsv4_v41_state_open: max_ctx %d / max_chunk %d", max_ctx, max_chunk);
    if (x->n_engram && !m->tok && x->engram_compressed_vocab != c->vocab_size)
        return dsv4_fail(err, errlen, "%s: no tokenizer to build the Engram token map from (engram_compressed_vocab_size "
                         "%d differs from vocab_size %d)", m->dir, x->engram_compressed_vocab, c->vocab_size);
    if (x->n_engram && m->tok && !m->v41->engram_map)
        return dsv4_fail(err, errlen, "%s: the model has a tokenizer but no Engram token map (bind it with "
                         "dsv4_model_load)", m->dir);
    dsv4_v41_state *s = calloc(1, sizeof *s);
    if (!s) return dsv4_fail(err, errlen, "out of memory");
    s->m = m;
    s->max_ctx = max_ctx;
    s->max_chunk = max_chunk;
    s->wring = c->window_size + max_chunk - 1 < max_ctx ? c->window_size + max_chunk - 1 : max_ctx;
    s->published = -1;
    s->kvsrc = -1;
    int fail = 0;
    const int dspark = c->n_mtp_layers > 0 && x->dspark_block_size > 0;
    const int TC = dspark && max_chunk < x->dspark_block_size ? x->dspark_block_size : max_chunk;   /* drafts too */
    const int NL = c->n_layers, D = c->dim, hc = c->hc_mult, H = c->n_heads, hd = c->head_dim;
    const int ql = c->q_lora_rank, nh = c->index_n_heads, ihd = c->index_head_dim, nm = (2 + hc) * hc;
    const int G = c->o_groups, olr = c->o_lora_rank, V = c->vocab_size;
    int E = c->n_routed_experts > x->dspark_n_routed_experts ? c->n_routed_experts : x->dspark_n_routed_experts;
    s->rope_win = zalloc((size_t)c->rope_dim / 2 * sizeof(float), &fail);
    s->rope_comp = zalloc((size_t)c->rope_dim / 2 * sizeof(float), &fail);
    if (!fail) {
        dsv4_rope_freqs(s->rope_win, c->rope_dim, c->rope_theta, 0, 1, 0, c->beta_fast, c->beta_slow);
        dsv4_rope_freqs(s->rope_comp, c->rope_dim, c->compress_rope_theta, c->original_seq_len > 0, c->rope_factor,
                        c->original_seq_len, c->beta_fast, c->beta_slow);
    }
    s->win = zalloc((size_t)NL * sizeof(uint16_t *), &fail);
    s->comp = zalloc((size_t)NL * sizeof(uint8_t *), &fail);
    s->ent_bytes = hd / 2 + hd / 16;
    s->kdec = zalloc((size_t)c->index_topk * hd * sizeof(uint16_t), &fail);
    s->kdec_for = -1;
    s->ikeys = zalloc((size_t)NL * sizeof(uint8_t *), &fail);
    s->ikey_bytes = ihd / 2 + ihd / 32;
    s->qb = zalloc((size_t)(H * hd > nh * ihd ? H * hd : nh * ihd) * sizeof(uint16_t), &fail);
    s->ikdec = zalloc((size_t)DSV4_IDX_CHUNK * ihd * sizeof(uint16_t), &fail);
    s->isd = zalloc((size_t)DSV4_IDX_CHUNK * nh * sizeof(float), &fail);
    s->isc = zalloc((size_t)(max_ctx + 1) * sizeof(float), &fail);
    s->iwh = zalloc((size_t)nh * sizeof(float), &fail);
    s->cidx = zalloc((size_t)(max_ctx + 1) * sizeof(int32_t), &fail);
    s->cs_kv = zalloc((size_t)NL * sizeof(float *), &fail);
    s->cs_sc = zalloc((size_t)NL * sizeof(float *), &fail);
    s->n_comp = zalloc((size_t)NL * sizeof(int), &fail);
    s->n_ikeys = zalloc((size_t)NL * sizeof(int), &fail);
    for (int L = 0; L < NL && !fail; L++) {
        const dsv4_layer41 *B = &m->v41->layers[L];
        s->win[L] = zalloc((size_t)s->wring * hd * sizeof(uint16_t), &fail);
        if (B->kv_source) {
            s->comp[L] = zalloc((size_t)(max_ctx / B->ratio + 1) * s->ent_bytes, &fail);
            s->cs_kv[L] = zalloc((size_t)B->ratio * hd * sizeof(float), &fail);
            s->cs_sc[L] = zalloc((size_t)B->ratio * hd * sizeof(float), &fail);
            if (!fail) {
                dsv4_csa2_compressor cc = {B->ratio, D, hd, B->comp_wkv, B->comp_wgate, B->comp_norm, c->norm_eps};
                dsv4_csa2_compress_reset(&cc, s->cs_kv[L], s->cs_sc[L]);
            }
            if (B->index_source) s->ikeys[L] = zalloc((size_t)(max_ctx / B->ratio + 1) * s->ikey_bytes, &fail);
        }
    }
    size_t big = (size_t)TC * (hc * D > H * hd ? hc * D : H * hd);
    if (big < (size_t)TC * nh * ihd) big = (size_t)TC * nh * ihd;
    if (big < (size_t)TC * V) big = (size_t)TC * V;
    s->X = zalloc((size_t)TC * hc * D * sizeof(float), &fail);
    s->pre = zalloc((size_t)TC * hc * sizeof(float), &fail);
    s->apre = zalloc((size_t)TC * hc * sizeof(float), &fail);
    s->apost = zalloc((size_t)TC * hc * sizeof(float), &fail);
    s->acomb = zalloc((size_t)TC * hc * hc * sizeof(float), &fail);
    s->fpre = zalloc((size_t)TC * hc * sizeof(float), &fail);
    s->fpost = zalloc((size_t)TC * hc * sizeof(float), &fail);
    s->fcomb = zalloc((size_t)TC * hc * hc * sizeof(float), &fail);
    s->mix = zalloc((size_t)TC * nm * sizeof(float), &fail);
    s->x = zalloc((size_t)TC * D * sizeof(float), &fail);
    s->y = zalloc((size_t)TC * D * sizeof(float), &fail);
    s->t1 = zalloc((big + 2 * (size_t)c->moe_inter_dim * (c->n_shared_experts + 1)) * sizeof(float), &fail);
    s->t2 = zalloc((big + 2 * (size_t)E + 2 * (size_t)D) * sizeof(float) + (size_t)TC * 64 * sizeof(int64_t), &fail);
    s->qa = zalloc((size_t)TC * ql * sizeof(float), &fail);
    s->q = zalloc((size_t)TC * H * hd * sizeof(float), &fail);
    s->kv = zalloc((size_t)TC * hd * sizeof(float), &fail);
    s->o = zalloc((size_t)TC * H * hd * sizeof(float), &fail);
    s->og = zalloc((size_t)TC * H * hd * sizeof(float), &fail);
    s->oa = zalloc((size_t)TC * G * olr * sizeof(float), &fail);
    s->lat = zalloc((size_t)TC * hd * sizeof(float), &fail);
    s->iq = zalloc((size_t)TC * nh * ihd * sizeof(float), &fail);
    s->iw = zalloc((size_t)TC * nh * sizeof(float), &fail);
    s->sc = zalloc((size_t)TC * E * sizeof(float), &fail);
    s->row = zalloc((size_t)(max_ctx + c->window_size + c->index_topk + 1) * sizeof(float), &fail);
    s->fscr = zalloc((size_t)(max_ctx + 2) * sizeof(float), &fail);
    s->iscr = zalloc((size_t)(2 * max_ctx + 4) * sizeof(int32_t), &fail);
    s->ids = zalloc((size_t)E * sizeof(int32_t), &fail);
    s->sel = zalloc((size_t)TC * c->index_topk * sizeof(int32_t), &fail);
    s->shared_sel = zalloc((size_t)TC * c->index_topk * sizeof(int32_t), &fail);
    s->nsel = zalloc((size_t)TC * sizeof(int32_t), &fail);
    s->shared_nsel = zalloc((size_t)TC * sizeof(int32_t), &fail);
    s->cand = zalloc((size_t)TC * (max_ctx + 1), &fail);
    s->emask = zalloc((size_t)TC, &fail);
    {
        const int nkmax = c->window_size + (c->index_topk > TC ? c->index_topk : TC);   /* window + entries or drafts */
        s->kptr = zalloc((size_t)nkmax * sizeof(uint16_t *), &fail);
        s->asc = zalloc((size_t)nkmax * H * sizeof(float), &fail);
        s->kv16 = zalloc((size_t)TC * hd * sizeof(uint16_t), &fail);
    }
    if (dspark) {
        s->main_x = zalloc((size_t)s->wring * D * sizeof(float), &fail);
        s->mxg = zalloc((size_t)c->window_size * D * sizeof(float), &fail);
        s->feat = zalloc((size_t)TC * x->n_dspark_targets * D * sizeof(float), &fail);
        s->ring = zalloc((size_t)c->window_size * hd * sizeof(float), &fail);
        s->ring16 = zalloc((size_t)c->window_size * hd * sizeof(uint16_t), &fail);
    }
    int maxcols = D * hc > H * hd ? D * hc : H * hd;
    if (dspark && maxcols < D * x->n_dspark_targets) maxcols = D * x->n_dspark_targets;
    if (maxcols < c->moe_inter_dim) maxcols = c->moe_inter_dim;
    if (maxcols < G * olr) maxcols = G * olr;
    if (x->n_engram && maxcols < (x->engram_max_ngram - 1) * x->engram_n_heads * x->engram_head_dim)
        maxcols = (x->engram_max_ngram - 1) * x->engram_n_heads * x->engram_head_dim;
    if (maxcols < ql) maxcols = ql;
    const int TA = dspark && c->window_size > TC ? c->window_size : TC;   /* the DSpark ring runs window rows */
    s->lin = zalloc(dsv4_linear_scratch_floats(TA, maxcols) * sizeof(float), &fail);
    /* the KV sources' compressor scratch */
    size_t ls = 0;
    for (int L = 0; L < NL; L++) {
        const dsv4_layer41 *B = &m->v41->layers[L];
        if (!B->kv_source) continue;
        dsv4_csa2_compressor cc = {B->ratio, D, hd, B->comp_wkv, B->comp_wgate, B->comp_norm, c->norm_eps};
        size_t n = dsv4_csa2_compress_scratch(&cc, TC);
        if (n > ls) ls = n;
    }
    s->ls = zalloc(ls * sizeof(float), &fail);
    if (x->n_engram && !fail) {
        int64_t ne[DSV4_ENGRAM_MAX_LAYERS];
        for (int l = 0; l < x->n_engram; l++) ne[l] = x->engram_num_embeddings[l];
        if (dsv4_engram_layout_init(&s->lo, x->n_engram, x->engram_layer_ids, ne, x->engram_max_ngram,
                                    x->engram_n_heads, x->engram_vocab_size, x->engram_compressed_vocab,
                                    m->v41->engram_map ? m->v41->engram_pad : x->engram_pad_token_id, err, errlen)) {
            dsv4_v41_state_free(s);
            return -1;
        }
        dsv4_engram_history_reset(&s->hist);
        s->n_cols = s->lo.n_cols;
        for (int L = 0; L < NL; L++) {
            const dsv4_engram41_w *e = m->v41->layers[L].engram;
            if (!e) continue;
            if (dsv4_engram_table_open(&s->tables[e->index], e->path, e->rows, x->engram_head_dim, (int64_t)e->w_off,
                                       x->engram_head_dim, e->scale_path, (int64_t)e->s_off, x->engram_head_dim / 32,
                                       m->engram_cache_rows, err, errlen)) {
                dsv4_v41_state_free(s);
                return -1;
            }
            s->row_bytes = dsv4_engram_row_bytes(s->tables[e->index]);
        }
        if (!fail && dsv4_engram_prefetch_new(&s->pf, TC, s->lo.n_layers, s->n_cols, s->row_bytes, err, errlen)) {
            dsv4_v41_state_free(s);
            return -1;
        }
        s->eidx = zalloc((size_t)TC * s->lo.n_layers * s->n_cols * sizeof(int64_t), &fail);
        s->cids = zalloc((size_t)TC * sizeof(int32_t), &fail);
        dsv4_engram_proj p = {hc, D, s->n_cols, x->engram_head_dim, m->v41->layers[x->engram_layer_ids[0]].engram->wkv,
                              NULL, c->norm_eps};
        s->es = zalloc(dsv4_engram_scratch_floats(&p, TC) * sizeof(float), &fail);
    }
    if (fail) {
        dsv4_v41_state_free(s);
        return dsv4_fail(err, errlen, "%s: out of memory for the V4.1 state (%d positions)", m->dir, max_ctx);
    }
    *out = s;
    return 0;
}
