/* model/forward.c — the DeepSeek-V4 forward pass (docs/architecture.md §4, precision map §7.1).
 *
 * A chunk of n <= s->chunk tokens (dsv4_load_options.chunk_tokens) goes through every block with batched
 * linears (each weight row read once per chunk); the position-dependent part (window ring, compressor state,
 * indexer top-k, attention) runs token by token in order, so a query at position t sees exactly the state a one-token
 * decode at t would see and any split of a sequence into calls gives identical results.
 *
 * Layouts: X [n][hc][D] residual streams (BF16 values in floats, stream-major per token, which is the
 * flattened v of §4.2); q [n][H][head_dim]; attention output o [n][H][head_dim].
 *
 * Debugging: with the environment variable DSV4_DUMP=<dir> set when the model was loaded (read once by
 * dsv4_model_load into m->dump_dir, so sessions on several threads never race on it), every trunk layer appends its activations
 * (F32 little-endian rows, one per token, in evaluation order) to <dir>/L<ll>_<name>.f32 for name in
 * q, kv, attn_o (per-head attention output after de-rotation), attn_out, Xmid (state after the attention
 * hc_post), ffn_out, X (state after the block). Compare with tools/reference/model.py hooks.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "model/model.h"
#include "dsv4_vision.h"
#include "model/expert_cache.h"
#include "kernels/pool.h"
#include "model/sparse_attn.h"
#include "kernels/ops_simd.h"
#include "base/util.h"

static inline float bf(float x) { return dsv4_round_bf16(x); }

/* Store n F32 values into a BF16 key cache (window ring, compressed entries, indexer keys). Every value
 * is BF16-representable by construction (docs/architecture.md §4.3–4.5), so the conversion is exact. Building with
 * -DDSV4_CHECK_BF16 (a development check, off in the normal builds) verifies it and aborts on a value
 * that would be rounded (NaN from corrupt weights is allowed: it stays NaN). */
static inline void store_bf16(uint16_t *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) {
#ifdef DSV4_CHECK_BF16
        if (src[i] == src[i] && dsv4_round_bf16(src[i]) != src[i]) {
            fprintf(stderr, "DSV4_CHECK_BF16: cache value %.9g at index %zu is not BF16-exact\n", (double)src[i], i);
            abort();
        }
#endif
        dst[i] = dsv4_f32_to_bf16(src[i]);
    }
}

/* ------------------------------------------------------------------ debug dump (DSV4_DUMP=dir) */
/* Append n floats to <m->dump_dir>/L<li>_<name>.f32 (one row per call); nothing when dumping is off. Best
 * effort (a debugging aid): a file that cannot be opened or a path that cannot be allocated is skipped. */
static void dump(const dsv4_session *s, const char *name, int li, const float *x, size_t n) {
    const char *d = s->m->dump_dir;
    if (!d) return;
    size_t len = strlen(d) + strlen(name) + 32;
    char *p = malloc(len);
    if (!p) return;
    snprintf(p, len, "%s/L%02d_%s.f32", d, li, name);
    FILE *f = fopen(p, "ab");
    free(p);
    if (!f) return;
    fwrite(x, sizeof(float), n, f);
    fclose(f);
}

/* ------------------------------------------------------------------ mHC (§4.2) */
/* Mixing coefficients for n tokens of X. pre/post: [n][hc]; M: [n][hc][hc] (Sinkhorn'ed). */
static void hc_coeffs(dsv4_session *s, const dsv4_wview *fn, const float *base, const float *scale, const float *X,
                      int n, float *pre, float *post, float *M) {
    const dsv4_config *c = &s->m->cfg;
    int hc = c->hc_mult, W = hc * c->dim, nm = (2 + hc) * hc;
    float *mix = s->w.mix;
    dsv4_linear(mix, fn, X, n, 0, NULL);
    for (int t = 0; t < n; t++) {
        const float *x = X + (size_t)t * W;
        float ss = 0;
        for (int i = 0; i < W; i++) ss += x[i] * x[i];
        float rho = 1.0f / sqrtf(ss / (float)W + c->norm_eps);
        float *m = mix + (size_t)t * nm;
        for (int k = 0; k < nm; k++) m[k] *= rho;
        for (int i = 0; i < hc; i++) {
            pre[t * hc + i] = dsv4_sigmoid(scale[0] * m[i] + base[i]) + c->hc_eps;
            post[t * hc + i] = 2.0f * dsv4_sigmoid(scale[1] * m[hc + i] + base[hc + i]);
        }
        float *Mt = M + (size_t)t * hc * hc;
        for (int k = 0; k < hc * hc; k++) Mt[k] = scale[2] * m[2 * hc + k] + base[2 * hc + k];
        dsv4_sinkhorn(Mt, hc, c->hc_sinkhorn_iters, c->hc_eps);
    }
}

/* u[t] = bf16(sum_i pre_i X_i) (sum from 0 in stream order; kernels/ops_simd.h, on the SIMD path in use). */
static void hc_collapse(const dsv4_config *c, const float *X, const float *pre, int n, float *u) {
    int hc = c->hc_mult, D = c->dim;
    const dsv4_elem_ops *eo = dsv4_elem();
    for (int t = 0; t < n; t++) eo->hc_collapse(u + (size_t)t * D, X + (size_t)t * hc * D, pre + t * hc, hc, D);
}

/* X'_k = bf16(post_k y + sum_j M[j][k] X_j), in place (j in order; kernels/ops_simd.h). */
static void hc_post(dsv4_session *s, float *X, const float *y, const float *post, const float *M, int n) {
    const dsv4_config *c = &s->m->cfg;
    int hc = c->hc_mult, D = c->dim;
    const dsv4_elem_ops *eo = dsv4_elem();
    for (int t = 0; t < n; t++)
        eo->hc_post(X + (size_t)t * hc * D, y + (size_t)t * D, post + t * hc, M + (size_t)t * hc * hc, hc, D);
}

/* Final head collapse: u = bf16(sum_i p_i X_i), p_i = sigmoid(alpha m_i + b_i) + eps. One token. */
static void hc_head(dsv4_session *s, const dsv4_wview *fn, const float *base, const float *scale, const float *X, float *u) {
    const dsv4_config *c = &s->m->cfg;
    int hc = c->hc_mult, W = hc * c->dim;
    float *m = s->w.hh, *p = s->w.hh + hc;   /* [hc] each, session scratch (hc_mult is a config value) */
    dsv4_linear(m, fn, X, 1, 0, NULL);
    float ss = 0;
    for (int i = 0; i < W; i++) ss += X[i] * X[i];
    float rho = 1.0f / sqrtf(ss / (float)W + c->norm_eps);
    for (int i = 0; i < hc; i++) p[i] = dsv4_sigmoid(scale[0] * (m[i] * rho) + base[i]) + c->hc_eps;
    hc_collapse(c, X, p, 1, u);
}

/* ------------------------------------------------------------------ compressor (§4.4) */
int dsv4_entry_bytes(const dsv4_config *c) {
    int nope = c->head_dim - c->rope_dim;
    return (2 * c->rope_dim + nope + (nope + 63) / 64 + 1) & ~1;
}
int dsv4_ikey_bytes(const dsv4_config *c) { return c->index_head_dim / 2 + c->index_head_dim / 32; }

void dsv4_entry_store(const dsv4_config *c, float *x, uint8_t *rec) {
    int rd = c->rope_dim, nope = c->head_dim - rd;
    dsv4_fp8_encode(x, nope, 64, rec + 2 * rd, rec + 2 * rd + nope);
    for (int i = 0; i < rd; i++) {   /* RoPE output: BF16-exact */
        uint16_t v = dsv4_f32_to_bf16(x[nope + i]);
        memcpy(rec + 2 * i, &v, 2);
    }
}

void dsv4_ikey_store(const dsv4_config *c, float *x, uint8_t *rec) {
    int ihd = c->index_head_dim;
    dsv4_fp4_encode(x, ihd, 32, rec, rec + ihd / 2);
}

/* Decode compressed entry w of block state b to head_dim BF16 values (nope dims, then rope dims) into slot
 * `slot` of the attended-keys scratch; returns the slot. */
static const uint16_t *entry_load(dsv4_session *s, const dsv4_block_state *b, int w, int slot) {
    const dsv4_config *c = &s->m->cfg;
    int rd = c->rope_dim, nope = c->head_dim - rd;
    const uint8_t *rec = b->entries + (size_t)w * s->ent_bytes;
    uint16_t *out = s->w.kdec + (size_t)slot * c->head_dim;
    dsv4_fp8_decode_bf16(rec + 2 * rd, rec + 2 * rd + nope, nope, 64, out);
    memcpy(out + nope, rec, (size_t)rd * 2);
    return out;
}

/* Emit entry w from the pooled state: bf16 -> RMSNorm -> RoPE at w*R -> FP8 sim (main) or Hadamard + FP4 sim
 * (indexer), stored as its record (dsv4_block_state). `pooled` (dc floats) is the F32 working buffer. */
static void comp_finish(dsv4_session *s, const dsv4_layer *L, const dsv4_compressor_w *cw, float *pooled, int64_t w,
                        int is_index, uint8_t *rec) {
    const dsv4_config *c = &s->m->cfg;
    int dc = cw->dc, rd = c->rope_dim;
    float *out = pooled;
    for (int i = 0; i < dc; i++) pooled[i] = bf(pooled[i]);
    dsv4_rmsnorm(out, pooled, cw->norm, dc, c->norm_eps, 1);
    dsv4_rope(out + dc - rd, rd, L->rope_f, w * cw->R, 0);
    if (is_index) {
        dsv4_hadamard(out, dc);
        dsv4_ikey_store(c, out, rec);
    } else {
        dsv4_entry_store(c, out, rec);
    }
}

/* Push token t's projections (a, g without ape; c*dc each) into the state; when its block completes,
 * write the finished entry t/R as record t/R of `recs` (rec_bytes each). */
static void comp_push(dsv4_session *s, const dsv4_layer *L, const dsv4_compressor_w *cw, dsv4_comp_state *st,
                      const float *a, const float *g, int64_t t, int is_index, uint8_t *recs, int rec_bytes) {
    int R = cw->R, dc = cw->dc, cc = cw->overlap ? 2 : 1, wd = cc * dc;
    int ph = (int)(t % R);
    int row = cw->overlap ? R + ph : ph;
    const float *ape = cw->ape + (size_t)ph * wd;
    memcpy(st->kv + (size_t)row * wd, a, (size_t)wd * sizeof(float));
    for (int i = 0; i < wd; i++) st->sc[(size_t)row * wd + i] = g[i] + ape[i];
    if ((t + 1) % R) return;
    float *pooled = s->w.tmp, *e = s->w.tmp + wd;
    int nrows = cc * R;
    for (int ch = 0; ch < dc; ch++) {
        /* slot r uses channel ch of its A half (rows < R, overlap) or of its B half / single half */
        float mx = -INFINITY;
        for (int r = 0; r < nrows; r++) {
            int col = (cw->overlap && r >= R) ? dc + ch : ch;
            float v = st->sc[(size_t)r * wd + col];
            if (v > mx) mx = v;
        }
        float sum = 0;
        for (int r = 0; r < nrows; r++) {
            int col = (cw->overlap && r >= R) ? dc + ch : ch;
            float v = st->sc[(size_t)r * wd + col];
            e[r] = (v == -INFINITY) ? 0.0f : expf(v - mx);
            sum += e[r];
        }
        float acc = 0;
        for (int r = 0; r < nrows; r++) {
            int col = (cw->overlap && r >= R) ? dc + ch : ch;
            acc += (e[r] / sum) * st->kv[(size_t)r * wd + col];
        }
        pooled[ch] = acc;
    }
    int64_t w = t / R;
    comp_finish(s, L, cw, pooled, w, is_index, recs + (size_t)w * rec_bytes);
    if (cw->overlap) {
        memcpy(st->kv, st->kv + (size_t)R * wd, (size_t)R * wd * sizeof(float));
        memcpy(st->sc, st->sc + (size_t)R * wd, (size_t)R * wd * sizeof(float));
    }
}

void dsv4_state_reset(dsv4_session *s) {
    const dsv4_model *m = s->m;
    for (int l = 0; l < m->n_blocks; l++) {
        const dsv4_layer *L = &m->layers[l];
        dsv4_block_state *b = &s->bs[l];
        const dsv4_compressor_w *cws[2] = {&L->comp, &L->icomp};
        dsv4_comp_state *sts[2] = {&b->cs, &b->ics};
        for (int i = 0; i < s->wring; i++) b->slot_pos[i] = -1;
        for (int k = 0; k < 2; k++) {
            const dsv4_compressor_w *cw = cws[k];
            if (!sts[k]->kv || cw->R == 0) continue;
            int cc = cw->overlap ? 2 : 1;
            size_t nel = (size_t)cc * cw->R * cc * cw->dc;
            memset(sts[k]->kv, 0, nel * sizeof(float));
            for (size_t i = 0; i < nel; i++) sts[k]->sc[i] = -INFINITY;
        }
    }
    s->have_last = 0;
}

/* ------------------------------------------------------------------ attention (§4.3) */
/* Attention of one query token (q: [H][hd], position t) over nk BF16 keys kptr[0..nk); writes o [H][hd]
 * (BF16 values, de-rotated): dsv4_sparse_attend (model/sparse_attn.h, shared with the V4.1 forward): scores of all
 * heads in one pair-lane GEMM (the packed queries are the "weight", the keys the rows; head_dim % 32 == 0 is
 * checked at load), then one pool task per head: softmax with the sink, P (rounded to BF16) times V in key order. */
static void attend(dsv4_session *s, const dsv4_layer *L, const float *q, int64_t t, const uint16_t **kptr, int nk,
                   float *o) {
    const dsv4_config *c = &s->m->cfg;
    int H = c->n_heads, hd = c->head_dim;
    store_bf16(s->w.qb, q, (size_t)H * hd);
    dsv4_attn_shape a = {H, hd, c->rope_dim, 1.0f / sqrtf((float)hd), L->attn_sink, L->rope_f};
    dsv4_sparse_attend(&a, s->w.qb, t, kptr, nk, s->w.sc, o);
}

/* Lightning indexer scores (§4.5) of token t's queries iq [ih][ihd] (BF16 values) with weights wh [ih] over the
 * nvis visible indexer keys: isc[w] = sum_h wh[h] * relu(q_h . k_w), heads in order (dsv4_index_scores,
 * DSV4_ISCORE_V4). Per chunk of DSV4_IDX_CHUNK keys: the keys' FP4 records are decoded to BF16 in parallel (jobs
 * of 64 keys), then one pair-lane GEMM with the keys as the rows and the heads' queries as the tokens (a product's
 * value does not depend on which operand is the "weight": the products are exact and commute), parallel over
 * keys, giving isd[h][w] with the keys contiguous, so the sum over heads runs in head order for many keys at once.
 * (At 1 Mi tokens a CSA layer scores 262,144 keys per decoded token.) */
static void indexer_scores(dsv4_session *s, const dsv4_block_state *b, const float *iq, const float *wh, int nvis,
                           float *isc) {
    const dsv4_config *c = &s->m->cfg;
    int ih = c->index_n_heads, ihd = c->index_head_dim;
    store_bf16(s->w.iqb, iq, (size_t)ih * ihd);
    dsv4_index_scores(DSV4_ISCORE_V4, b->ikeys, s->ikey_bytes, NULL, nvis, ih, ihd, s->w.iqb, wh, isc, s->w.ikdec,
                      s->w.isd);
}

/* The products of a list of linear ops: one pool call for a one-token list (layout() sizes s->w.act for the
 * largest, the attention's projections of x), else one call each. The same results either way. */
static void linear_ops(dsv4_session *s, const dsv4_linear_op *op, int nops) {
    if (nops > 0 && op[0].n_tok == 1) {
        dsv4_linear_multi(op, nops, s->w.act);
        return;
    }
    for (int i = 0; i < nops; i++) dsv4_linear(op[i].out, op[i].w, op[i].x, op[i].n_tok, op[i].flags, s->w.act);
}

/* Raw window KV path (§4.3): kv[t] = FP8sim_nope(RoPE(bf16(RMSNorm(W_kv x_t; kv_norm)))). raw_kv_post does all
 * but the product (kv holds bf16(W_kv x_t) on entry). */
static void raw_kv_post(dsv4_session *s, const dsv4_layer *L, int n, const int64_t *pos, float *kv) {
    const dsv4_config *c = &s->m->cfg;
    int hd = c->head_dim, rd = c->rope_dim, nope = hd - rd;
    for (int t = 0; t < n; t++) {
        float *k = kv + (size_t)t * hd;
        dsv4_rmsnorm(k, k, L->kv_norm, hd, c->norm_eps, 1);
        dsv4_rope(k + nope, rd, L->rope_f, pos[t], 0);
        dsv4_fp8_sim(k, nope, 64);
    }
}
static void raw_kv(dsv4_session *s, const dsv4_layer *L, const float *x, int n, const int64_t *pos, float *kv) {
    dsv4_linear(kv, &L->wkv, x, n, DSV4_ACT_FP8 | DSV4_OUT_BF16, s->w.act);
    raw_kv_post(s, L, n, pos, kv);
}

/* Full attention sublayer for n tokens x [n][D]; y [n][D]. Row t sits at position pos[t] of the sequence whose
 * state (window ring, compressor, indexer keys, compressed entries) is held by own[t] (own NULL: all rows are
 * s's, a chunk of one sequence; otherwise one decode row per session, dsv4_forward_batch). s owns the scratch. */
static void attention(dsv4_session *s, int li, const float *x, int n, const int64_t *pos, dsv4_session *const *own,
                      float *y) {
    const dsv4_model *m = s->m;
    const dsv4_config *c = &m->cfg;
    const dsv4_layer *L = &m->layers[li];
    int D = c->dim, H = c->n_heads, hd = c->head_dim, rd = c->rope_dim, nope = hd - rd;
    int ql = c->q_lora_rank, Wn = c->window_size, Wr = s->wring;   /* window; ring length min(window, max_ctx) */
    float *act = s->w.act;
    /* query path */
    float *qa = s->w.qa, *q = s->w.q, *kv = s->w.kv;
    int R = L->ratio, csa = R == 4;
    int cwd = 0, iwd = 0, ih = c->index_n_heads, ihd = c->index_head_dim;
    if (R > 0) cwd = (L->comp.overlap ? 2 : 1) * L->comp.dc;
    if (csa) iwd = 2 * L->icomp.dc;
    /* the products of x (query down-projection, raw KV, the compressors' F32 projections, the indexer's head
     * weights), then those of the normalized qa (queries, indexer queries): a decode step makes each list one
     * pool call (linear_ops) */
    dsv4_linear_op op[7];
    int nop = 0;
    op[nop++] = (dsv4_linear_op){qa, &L->wq_a, x, n, DSV4_ACT_FP8 | DSV4_OUT_BF16};
    op[nop++] = (dsv4_linear_op){kv, &L->wkv, x, n, DSV4_ACT_FP8 | DSV4_OUT_BF16};
    if (R > 0) {
        op[nop++] = (dsv4_linear_op){s->w.ca, &L->comp.wkv, x, n, 0};
        op[nop++] = (dsv4_linear_op){s->w.cg, &L->comp.wgate, x, n, 0};
    }
    if (csa) {
        op[nop++] = (dsv4_linear_op){s->w.ia, &L->icomp.wkv, x, n, 0};
        op[nop++] = (dsv4_linear_op){s->w.ig, &L->icomp.wgate, x, n, 0};
        op[nop++] = (dsv4_linear_op){s->w.iw, &L->idx_wp, x, n, DSV4_OUT_BF16};
    }
    linear_ops(s, op, nop);
    for (int t = 0; t < n; t++) dsv4_rmsnorm(qa + (size_t)t * ql, qa + (size_t)t * ql, L->q_norm, ql, c->norm_eps, 1);
    nop = 0;
    op[nop++] = (dsv4_linear_op){q, &L->wq_b, qa, n, DSV4_ACT_FP8 | DSV4_OUT_BF16};
    if (csa) op[nop++] = (dsv4_linear_op){s->w.iq, &L->idx_wq_b, qa, n, DSV4_ACT_FP8 | DSV4_OUT_BF16};
    linear_ops(s, op, nop);
    for (int t = 0; t < n; t++)
        for (int h = 0; h < H; h++) {
            float *qh = q + ((size_t)t * H + h) * hd;
            dsv4_head_rms_bf16(qh, hd, c->norm_eps);
            dsv4_rope(qh + nope, rd, L->rope_f, pos[t], 0);
        }
    raw_kv_post(s, L, n, pos, kv);
    if (csa) {
        for (int t = 0; t < n; t++)
            for (int h = 0; h < ih; h++) {
                float *qh = s->w.iq + ((size_t)t * ih + h) * ihd;
                dsv4_rope(qh + ihd - rd, rd, L->rope_f, pos[t], 0);
                dsv4_hadamard(qh, ihd);
                dsv4_fp4_sim(qh, ihd, 32);
            }
        double ws = pow((double)ihd, -0.5) * pow((double)ih, -0.5);   /* w = bf16(bf16(x W_wp) * ws) */
        for (int i = 0; i < n * ih; i++) s->w.iw[i] = bf((float)(s->w.iw[i] * ws));
    }
    if (li < c->n_layers) {
        dump(s, "q", li, q, (size_t)n * H * hd);
        dump(s, "kv", li, kv, (size_t)n * hd);
    }
    /* per token: update state, select keys, attend. A Vision-Exp chunk holding an image span (docs/vision-exp.md §6)
     * keeps its raw keys in s->w.kloc, takes each row's raw keys vlo..vhi (ascending; the chunk's own from kloc,
     * earlier ones from the ring, untouched until after the loop) and writes the ring after the loop. */
    const uint16_t **kptr = s->w.kptr;
    const int vx = !own && s->vx_span;
    if (vx) store_bf16(s->w.kloc, kv, (size_t)n * hd);
    for (int t = 0; t < n; t++) {
        int64_t p = pos[t];
        dsv4_block_state *b = &(own ? own[t] : s)->bs[li];
        if (!vx) {
            store_bf16(b->win + (size_t)(p % Wr) * hd, kv + (size_t)t * hd, (size_t)hd);
            b->slot_pos[p % Wr] = p;
        }
        if (R > 0)
            comp_push(s, L, &L->comp, &b->cs, s->w.ca + (size_t)t * cwd, s->w.cg + (size_t)t * cwd, p, 0, b->entries,
                      s->ent_bytes);
        if (csa)
            comp_push(s, L, &L->icomp, &b->ics, s->w.ia + (size_t)t * iwd, s->w.ig + (size_t)t * iwd, p, 1, b->ikeys,
                      s->ikey_bytes);
        int nk = 0;
        if (vx) {
            for (int64_t j = s->w.vlo[t]; j <= s->w.vhi[t]; j++)
                if (j >= pos[0]) kptr[nk++] = s->w.kloc + (size_t)(j - pos[0]) * hd;
                else if (b->slot_pos[j % Wr] == j) kptr[nk++] = b->win + (size_t)(j % Wr) * hd;
        } else {
            int64_t w0 = p - Wn + 1 < 0 ? 0 : p - Wn + 1;
            for (int64_t j = w0; j <= p; j++)
                if (b->slot_pos[j % Wr] == j) kptr[nk++] = b->win + (size_t)(j % Wr) * hd;
        }
        if (R > 0) {
            int nvis = (int)((p + 1) / R);
            if (!csa || nvis <= c->index_topk) {
                for (int w = 0; w < nvis; w++, nk++) kptr[nk] = entry_load(s, b, w, nk);
            } else {
                /* lightning indexer scores over visible entries */
                const float *qi = s->w.iq + (size_t)t * ih * ihd, *wh = s->w.iw + (size_t)t * ih;
                float *isc = s->w.ksc;
                int *idx = s->w.kidx;
                indexer_scores(s, b, qi, wh, nvis, isc);
                for (int w = 0; w < nvis; w++) idx[w] = w;
                dsv4_select_topk(idx, nvis, c->index_topk, isc);
                for (int i = 0; i < c->index_topk; i++, nk++) kptr[nk] = entry_load(s, b, idx[i], nk);
            }
        }
        attend(s, L, q + (size_t)t * H * hd, p, kptr, nk, s->w.o + (size_t)t * H * hd);
    }
    for (int t = 0; vx && t < n; t++) {   /* the deferred ring stores, in position order */
        dsv4_block_state *b = &s->bs[li];
        memcpy(b->win + (size_t)(pos[t] % Wr) * hd, s->w.kloc + (size_t)t * hd, (size_t)hd * sizeof(uint16_t));
        b->slot_pos[pos[t] % Wr] = pos[t];
    }
    if (li < c->n_layers) dump(s, "attn_o", li, s->w.o, (size_t)n * H * hd);
    /* grouped output projection */
    int G = c->o_groups, gw = H / G * hd, olr = c->o_lora_rank;
    if (n == 1) {   /* one token: the group products in one pool call per DSV4_LINEAR_MULTI_MAX groups */
        dsv4_wview wg[DSV4_LINEAR_MULTI_MAX];
        dsv4_linear_op go[DSV4_LINEAR_MULTI_MAX];
        for (int g0 = 0; g0 < G; g0 += DSV4_LINEAR_MULTI_MAX) {
            const int ng = G - g0 < DSV4_LINEAR_MULTI_MAX ? G - g0 : DSV4_LINEAR_MULTI_MAX;
            for (int i = 0; i < ng; i++) {
                const int g = g0 + i;
                wg[i] = dsv4_wview_rows(&L->wo_a, g * olr, olr);
                go[i] = (dsv4_linear_op){s->w.r + (size_t)g * olr, &wg[i], s->w.o + (size_t)g * gw, 1, DSV4_OUT_BF16};
            }
            dsv4_linear_multi(go, ng, act);
        }
    }
    for (int g = 0; n > 1 && g < G; g++) {
        dsv4_wview wg = dsv4_wview_rows(&L->wo_a, g * olr, olr);
        for (int t = 0; t < n; t++)
            memcpy(s->w.og + (size_t)t * gw, s->w.o + (size_t)t * H * hd + (size_t)g * gw, (size_t)gw * sizeof(float));
        dsv4_linear(s->w.rg, &wg, s->w.og, n, DSV4_OUT_BF16, act);
        for (int t = 0; t < n; t++)
            memcpy(s->w.r + (size_t)t * G * olr + (size_t)g * olr, s->w.rg + (size_t)t * olr, (size_t)olr * sizeof(float));
    }
    dsv4_linear(y, &L->wo_b, s->w.r, n, DSV4_ACT_FP8 | DSV4_OUT_BF16, act);
    (void)D;
}

/* ------------------------------------------------------------------ MoE (§4.6) */
static inline float softplusf(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

/* g = bf16(w * silu(min(g, lim)) * clamp(v, ±lim)) on cnt rows of I (w = wt[t], or 1 when wt is NULL). */
static void swiglu(float *g, const float *v, int I, int cnt, const float *wt, float lim) {
    for (int t = 0; t < cnt; t++)
        for (int i = 0; i < I; i++) {
            size_t k = (size_t)t * I + i;
            float gg = g[k], vv = v[k];
            if (lim > 0) {
                if (gg > lim) gg = lim;
                if (vv > lim) vv = lim;
                if (vv < -lim) vv = -lim;
            }
            float h = gg / (1.0f + expf(-gg)) * vv;
            if (wt) h *= wt[t];
            g[k] = bf(h);
        }
}

/* SwiGLU expert on cnt rows of xe: ye = W2(bf16(w * silu(min(W1 x, lim)) * clamp(W3 x, ±lim))). */
static void expert(dsv4_session *s, const dsv4_wview *w1, const dsv4_wview *w2, const dsv4_wview *w3,
                   const float *xe, const float *wt, int cnt, float *ye) {
    float *g = s->w.g, *v = s->w.v;
    dsv4_linear(g, w1, xe, cnt, DSV4_ACT_FP8 | DSV4_OUT_BF16, s->w.act);
    dsv4_linear(v, w3, xe, cnt, DSV4_ACT_FP8 | DSV4_OUT_BF16, s->w.act);
    swiglu(g, v, w1->rows, cnt, wt, s->m->cfg.swiglu_limit);
    dsv4_linear(ye, w2, g, cnt, DSV4_ACT_FP8 | DSV4_OUT_BF16, s->w.act);
}

/* The experts of ONE token (a decode step, weights mapped): the same products as expert() per routed expert and
 * the shared one, in two pool calls (every w1 and w3, which share the token's quantized activations; then every
 * w2) instead of three per expert, and the outputs added in moe()'s order: routed experts by increasing id (a
 * repeated id in its k order), then the shared expert. Bit-identical to the per-expert loop. */
static void moe_one_token(dsv4_session *s, const dsv4_layer *L, const float *x, const int *id, const float *rw,
                          float *y) {
    const dsv4_config *c = &s->m->cfg;
    int D = c->dim, K = c->n_activated_experts, I = c->moe_inter_dim, Is = L->sw1.rows, ns = Is > 0;
    float *g = s->w.g, *v = s->w.v, *ye = s->w.ye, *acc = s->w.acc;
    dsv4_linear_op op[DSV4_LINEAR_MULTI_MAX] = {{0}};   /* (GCC cannot see that only the ops set are read) */
    for (int k = 0; k < K; k++) {
        op[2 * k] = (dsv4_linear_op){g + (size_t)k * I, &L->w1[id[k]], x, 1, DSV4_ACT_FP8 | DSV4_OUT_BF16};
        op[2 * k + 1] = (dsv4_linear_op){v + (size_t)k * I, &L->w3[id[k]], x, 1, DSV4_ACT_FP8 | DSV4_OUT_BF16};
    }
    if (ns) {
        op[2 * K] = (dsv4_linear_op){g + (size_t)K * I, &L->sw1, x, 1, DSV4_ACT_FP8 | DSV4_OUT_BF16};
        op[2 * K + 1] = (dsv4_linear_op){v + (size_t)K * I, &L->sw3, x, 1, DSV4_ACT_FP8 | DSV4_OUT_BF16};
    }
    dsv4_linear_multi(op, 2 * (K + ns), s->w.act);
    for (int k = 0; k < K; k++) swiglu(g + (size_t)k * I, v + (size_t)k * I, I, 1, &rw[k], c->swiglu_limit);
    if (ns) swiglu(g + (size_t)K * I, v + (size_t)K * I, Is, 1, NULL, c->swiglu_limit);
    for (int k = 0; k < K; k++)
        op[k] = (dsv4_linear_op){ye + (size_t)k * D, &L->w2[id[k]], g + (size_t)k * I, 1, DSV4_ACT_FP8 | DSV4_OUT_BF16};
    if (ns) op[K] = (dsv4_linear_op){ye + (size_t)K * D, &L->sw2, g + (size_t)K * I, 1, DSV4_ACT_FP8 | DSV4_OUT_BF16};
    dsv4_linear_multi(op, K + ns, s->w.act);
    int ord[DSV4_LINEAR_MULTI_MAX / 2];   /* k by (id, k): insertion sort of at most 15 entries */
    for (int k = 0; k < K; k++) {
        int j = k;
        while (j > 0 && id[ord[j - 1]] > id[k]) { ord[j] = ord[j - 1]; j--; }
        ord[j] = k;
    }
    memset(acc, 0, (size_t)D * sizeof(float));
    for (int k = 0; k < K + ns; k++) {
        const float *e = ye + (size_t)(k < K ? ord[k] : K) * D;
        for (int d = 0; d < D; d++) acc[d] += e[d];
    }
    for (int d = 0; d < D; d++) y[d] = bf(acc[d]);
}

/* Products run as few dsv4_linear_multi calls: ops are added in order (batch_add) into a window of
 * DSV4_LINEAR_MULTI_MAX; a full window, and the rest at the end (batch_run), run as calls of the leading ops that
 * fit the session's scratch of s->w.act_n floats (dsv4_linear_multi_fit). */
typedef struct { dsv4_linear_op op[DSV4_LINEAR_MULTI_MAX]; int n; } linear_batch;
static void batch_call(dsv4_session *s, linear_batch *b) {
    const int k = dsv4_linear_multi_fit(b->op, b->n, s->w.act_n);
    dsv4_linear_multi(b->op, k, s->w.act);
    memmove(b->op, b->op + k, (size_t)(b->n - k) * sizeof *b->op);
    b->n -= k;
}
static void batch_run(dsv4_session *s, linear_batch *b) {
    while (b->n > 0) batch_call(s, b);
}
static void batch_add(dsv4_session *s, linear_batch *b, dsv4_linear_op op) {
    if (b->n == DSV4_LINEAR_MULTI_MAX) batch_call(s, b);
    b->op[b->n++] = op;
}

/* The routed rows of n tokens gathered by expert (a counting sort): row r of s->w.xe (the token's x), s->w.etok
 * (its token) and s->w.ew (its routing weight) for r in [end[e-1], end[e]) are expert e's (end[-1] = 0), each
 * expert's rows in (token, k) order. Returns end (s->w.eend, E + 1 ints; end[E] = n*K). */
static const int *moe_gather(dsv4_session *s, const float *x, const int *rid, const float *rw, int n) {
    const dsv4_config *c = &s->m->cfg;
    const int D = c->dim, E = c->n_routed_experts, K = c->n_activated_experts;
    int *end = s->w.eend;
    memset(end, 0, (size_t)(E + 1) * sizeof *end);
    for (int i = 0; i < n * K; i++) end[rid[i] + 1]++;
    for (int e = 0; e < E; e++) end[e + 1] += end[e];   /* end[e] = first row of e */
    for (int t = 0; t < n; t++)
        for (int k = 0; k < K; k++) {
            const int r = end[rid[t * K + k]]++;   /* -> one past e's last row */
            s->w.etok[r] = t; s->w.ew[r] = rw[t * K + k];
            memcpy(s->w.xe + (size_t)r * D, x + (size_t)t * D, (size_t)D * sizeof(float));
        }
    return end;
}

/* The routed experts of n > 1 tokens, weights mapped, on moe_gather's rows: the same products as moe()'s loop
 * (expert() per routed expert on its rows, into the same rows of s->w.ye), with the products of many experts in one
 * pool call (w1 and w3 share an expert's quantized rows; then w2): with about 12 rows per expert in a 512-token
 * chunk, an expert's product takes under a millisecond, and one pool call per product left a noticeable part of it
 * to the call's set-up and its last task. Bit-identical (dsv4_linear_multi's products are dsv4_linear's). */
static void moe_routed_mapped(dsv4_session *s, const dsv4_layer *L, const int *end) {
    const dsv4_config *c = &s->m->cfg;
    const int D = c->dim, E = c->n_routed_experts, I = c->moe_inter_dim;
    float *xe = s->w.xe, *g = s->w.g, *v = s->w.v, *ye = s->w.ye, *ew = s->w.ew;
    linear_batch b;
    b.n = 0;
    for (int e = 0, r0 = 0; e < E; r0 = end[e++]) {
        const int cnt = end[e] - r0;
        if (!cnt) continue;
        batch_add(s, &b, (dsv4_linear_op){g + (size_t)r0 * I, &L->w1[e], xe + (size_t)r0 * D, cnt, DSV4_ACT_FP8 | DSV4_OUT_BF16});
        batch_add(s, &b, (dsv4_linear_op){v + (size_t)r0 * I, &L->w3[e], xe + (size_t)r0 * D, cnt, DSV4_ACT_FP8 | DSV4_OUT_BF16});
    }
    batch_run(s, &b);
    for (int e = 0, r0 = 0; e < E; r0 = end[e++]) {
        const int cnt = end[e] - r0;
        if (!cnt) continue;
        swiglu(g + (size_t)r0 * I, v + (size_t)r0 * I, I, cnt, ew + r0, c->swiglu_limit);
        batch_add(s, &b, (dsv4_linear_op){ye + (size_t)r0 * D, &L->w2[e], g + (size_t)r0 * I, cnt, DSV4_ACT_FP8 | DSV4_OUT_BF16});
    }
    batch_run(s, &b);
}

static void moe(dsv4_session *s, int li, const float *x, const int32_t *tokens, int n, float *y) {
    const dsv4_model *m = s->m;
    const dsv4_config *c = &m->cfg;
    const dsv4_layer *L = &m->layers[li];
    int D = c->dim, E = c->n_routed_experts, K = c->n_activated_experts;
    float *rl = s->w.rl, *rw = s->w.rw, *acc = s->w.acc;
    int *rid = s->w.rid;
    dsv4_linear(rl, &L->gate, x, n, 0, s->w.act);
    for (int t = 0; t < n; t++) {
        float *l = rl + (size_t)t * E;
        for (int e = 0; e < E; e++) l[e] = sqrtf(softplusf(l[e]));
        int *id = rid + t * K;
        /* Vision-Exp image positions (every role, the pads included; docs/vision-exp.md §7): top-K of s + bias_vl,
         * on the hash layers too (the hash guard: never tid2eid) */
        const int img = s->vx_roles && s->vx_roles[t] != DSV4_TOKEN_TEXT && L->gate_bias_vl;
        const float *bias = img ? L->gate_bias_vl : L->gate_bias;
        if (L->tid2eid && !img) {
            for (int k = 0; k < K; k++) id[k] = L->tid2eid[(size_t)tokens[t] * K + k];
        } else {
            for (int k = 0; k < K; k++) {          /* top-K of s + bias, ties -> lower id */
                int best = -1; float bs = 0;
                for (int e = 0; e < E; e++) {
                    int used = 0;
                    for (int j = 0; j < k; j++) used |= id[j] == e;
                    if (used) continue;
                    float v = l[e] + bias[e];
                    if (best < 0 || v > bs) { best = e; bs = v; }
                }
                id[k] = best;
            }
        }
        float sum = 0;
        for (int k = 0; k < K; k++) sum += l[id[k]];
        for (int k = 0; k < K; k++) rw[t * K + k] = l[id[k]] / sum * c->route_scale;
    }
    if (n == 1 && !m->xc && 2 * (K + 1) <= DSV4_LINEAR_MULTI_MAX) { moe_one_token(s, L, x, rid, rw, y); return; }
    if (m->xc && !s->xc_failed) dsv4_xc_route(m->xc, li, rid, n * K, tokens, n);   /* read-ahead */
    const int *end = moe_gather(s, x, rid, rw, n);
    if (!m->xc && n >= 2) {
        moe_routed_mapped(s, L, end);
    } else {
        for (int e = 0, r0 = 0; e < E; r0 = end[e++]) {   /* expert e's rows [r0, end[e]) */
            const int cnt = end[e] - r0;
            if (!cnt) continue;
            float *xe = s->w.xe + (size_t)r0 * D, *ew = s->w.ew + r0, *ye = s->w.ye + (size_t)r0 * D;
            if (m->xc) {   /* memory budget: the same bytes, from the expert cache (model/expert_cache.h) */
                dsv4_xc_ref xr;
                if (s->xc_failed || dsv4_xc_acquire(m->xc, li, e, &xr, s->xc_err, sizeof s->xc_err)) {
                    s->xc_failed = 1;   /* the caller reports it; the rest of the pass is discarded */
                    continue;
                }
                expert(s, &xr.w1, &xr.w2, &xr.w3, xe, ew, cnt, ye);
                dsv4_xc_release(m->xc, &xr);
            } else {
                expert(s, &L->w1[e], &L->w2[e], &L->w3[e], xe, ew, cnt, ye);
            }
        }
    }
    memset(acc, 0, (size_t)n * D * sizeof(float));
    for (int r = 0; r < n * K; r++) {   /* experts by increasing id, each one's rows in (token, k) order */
        float *a = acc + (size_t)s->w.etok[r] * D;
        const float *yr = s->w.ye + (size_t)r * D;
        for (int d = 0; d < D; d++) a[d] += yr[d];
    }
    if (L->sw1.rows) {
        expert(s, &L->sw1, &L->sw2, &L->sw3, x, NULL, n, s->w.ye);
        for (size_t i = 0; i < (size_t)n * D; i++) acc[i] += s->w.ye[i];
    }
    for (size_t i = 0; i < (size_t)n * D; i++) y[i] = bf(acc[i]);
}

/* ------------------------------------------------------------------ block (§4.7) */
/* Input side of one sublayer (attention or FFN): mHC coefficients from X [n, hc, D] (pre into s->w.pre,
 * post/comb into s->w.post / s->w.M), collapse to s->w.u [n, D], RMSNorm with `norm` [D] into s->w.xn. */
static void sublayer_in(dsv4_session *s, const dsv4_wview *fn, const float *base, const float *scale, const float *norm,
                        const float *X, int n) {
    const dsv4_config *c = &s->m->cfg;
    int D = c->dim;
    hc_coeffs(s, fn, base, scale, X, n, s->w.pre, s->w.post, s->w.M);
    hc_collapse(c, X, s->w.pre, n, s->w.u);
    for (int t = 0; t < n; t++) dsv4_rmsnorm(s->w.xn + (size_t)t * D, s->w.u + (size_t)t * D, norm, D, c->norm_eps, 1);
}

/* Output side: dump the sublayer output s->w.y [n, D] as out_name, write it back into X through hc_post,
 * dump X as x_name (DSV4_DUMP; trunk layers only). */
static void sublayer_out(dsv4_session *s, int li, float *X, int n, const char *out_name, const char *x_name) {
    const dsv4_config *c = &s->m->cfg;
    int D = c->dim;
    if (li < c->n_layers) dump(s, out_name, li, s->w.y, (size_t)n * D);
    hc_post(s, X, s->w.y, s->w.post, s->w.M, n);
    if (li < c->n_layers) dump(s, x_name, li, X, (size_t)n * c->hc_mult * D);
}

/* One block (§4.7) for n rows of X; rows as in attention(). */
static void block(dsv4_session *s, int li, float *X, const int32_t *tokens, int n, const int64_t *pos,
                  dsv4_session *const *own) {
    const dsv4_layer *L = &s->m->layers[li];
    sublayer_in(s, &L->hc_attn_fn, L->hc_attn_base, L->hc_attn_scale, L->attn_norm, X, n);
    attention(s, li, s->w.xn, n, pos, own, s->w.y);
    sublayer_out(s, li, X, n, "attn_out", "Xmid");
    sublayer_in(s, &L->hc_ffn_fn, L->hc_ffn_base, L->hc_ffn_scale, L->ffn_norm, X, n);
    moe(s, li, s->w.xn, tokens, n, s->w.y);
    sublayer_out(s, li, X, n, "ffn_out", "X");
}

/* norm -> head (F32 logits) for one collapsed vector u [D]. */
static void head_logits(dsv4_session *s, const float *u, const float *normw, float *logits) {
    const dsv4_config *c = &s->m->cfg;
    float *xn = s->w.xn;
    dsv4_rmsnorm(xn, u, normw, c->dim, c->norm_eps, 1);
    dsv4_linear(logits, &s->m->head, xn, 1, 0, s->w.act);
}

/* Embedding rows of n tokens into X [n][hc][D] (every stream a copy of the row). */
static void embed_rows(const dsv4_model *m, const int32_t *tokens, int n, float *X) {
    int D = m->cfg.dim, hc = m->cfg.hc_mult;
    for (int t = 0; t < n; t++) {
        float *x = X + (size_t)t * hc * D;
        dsv4_wview_row(&m->embed, tokens[t], x);
        for (int i = 1; i < hc; i++) memcpy(x + (size_t)i * D, x, (size_t)D * sizeof(float));
    }
}

/* After the trunk: position p of session s took token tok and ended in trunk state x [hc][D]; keep it for the
 * MTP window (§4.9) and as the last state. Called in position order; the caller advances s->pos. */
static void keep_row(dsv4_session *s, int64_t p, int32_t tok, const float *x) {
    size_t row = (size_t)s->m->cfg.hc_mult * s->m->cfg.dim;
    memcpy(s->hist_x + (size_t)(p % s->wring) * row, x, row * sizeof(float));
    s->hist_tok[p % s->wring] = tok;
    memcpy(s->last_x, x, row * sizeof(float));
    s->have_last = 1;
}

/* Vision-Exp (docs/vision-exp.md §5, §6), for a chunk with image roles s->vx_roles (one that cuts no START..END span,
 * dsv4_session_eval_vl): the embeddings of image positions replaced by their rows (every stream), and each row's raw
 * window keys: positions vlo..vhi with, for a row inside a span (START..END), left = its distance back to the START
 * (at most cap - 1) and right = forward to the END (at most cap), vlo = max(0, p - (W - 1) - max(left - (W - 1), 0)),
 * vhi = p + right (at most W + cap keys: tools/reference/vision_exp.py window_keys); the causal window elsewhere.
 * Sets s->vx_span when a row lies inside a span. */
static void vx_prepare(dsv4_session *s, int n, float *X) {
    const dsv4_config *c = &s->m->cfg;
    const int8_t *roles = s->vx_roles;
    int D = c->dim, hc = c->hc_mult;
    int64_t W = c->window_size, cap = c->x.vision_max_n_token, p0 = s->pos;
    for (int t = 0; t < n; t++) {
        const float *e = s->vx_embs ? s->vx_embs[t] : NULL;
        if (roles[t] == DSV4_TOKEN_TEXT || !e) continue;
        for (int i = 0; i < hc; i++) memcpy(X + ((size_t)t * hc + i) * D, e, (size_t)D * sizeof(float));
    }
    int *left = s->w.vleft, *right = s->w.vright;
    dsv4_vx_visible(roles, n, (int)cap, left, right);   /* the chunk cuts no span: scanning it alone is exact */
    s->vx_span = 0;
    for (int t = 0; t < n; t++) {
        s->vx_span |= roles[t] == DSV4_TOKEN_IMAGE_END;
        dsv4_vx_window(p0 + t, left[t], right[t], (int)W, (int)cap, &s->w.vlo[t], &s->w.vhi[t]);
    }
}

void dsv4_forward_chunk(dsv4_session *s, const int32_t *tokens, int n, float *logits) {
    const dsv4_model *m = s->m;
    const dsv4_config *c = &m->cfg;
    size_t row = (size_t)c->hc_mult * c->dim;
    float *X = s->w.X;
    int64_t pos[DSV4_CHUNK_MAX];
    embed_rows(m, tokens, n, X);
    s->vx_span = 0;
    if (s->vx_roles) vx_prepare(s, n, X);
    for (int t = 0; t < n; t++) pos[t] = s->pos + t;
    for (int l = 0; l < c->n_layers; l++) block(s, l, X, tokens, n, pos, NULL);
    for (int t = 0; t < n; t++) keep_row(s, pos[t], tokens[t], X + (size_t)t * row);
    s->pos += n;
    s->vx_span = 0;
    if (logits) {
        hc_head(s, &m->hc_head_fn, m->hc_head_base, m->hc_head_scale, s->last_x, s->w.u);
        head_logits(s, s->w.u, m->norm, logits);
    }
}

/* Final norm + head for rows X [n][hc][D] (n <= the session's chunk) into logits [n][vocab], the head once for all
 * rows. */
static void head_rows(dsv4_session *s, const float *X, int n, float *logits) {
    const dsv4_model *m = s->m;
    const dsv4_config *c = &m->cfg;
    int D = c->dim;
    size_t row = (size_t)c->hc_mult * D;
    for (int i = 0; i < n; i++) {
        hc_head(s, &m->hc_head_fn, m->hc_head_base, m->hc_head_scale, X + (size_t)i * row, s->w.u);
        dsv4_rmsnorm(s->w.xn + (size_t)i * D, s->w.u, m->norm, D, c->norm_eps, 1);
    }
    dsv4_linear(logits, &m->head, s->w.xn, n, 0, s->w.act);
}

void dsv4_forward_chunk_all(dsv4_session *s, const int32_t *tokens, int n, float *logits) {
    dsv4_forward_chunk(s, tokens, n, NULL);   /* leaves the final trunk rows in s->w.X */
    head_rows(s, s->w.X, n, logits);
}

void dsv4_forward_batch(dsv4_session *const *ss, const int32_t *tokens, int nb, float *logits) {
    /* The scratch owner: the session with the largest max_ctx (the attended-key scratch grows with it). */
    dsv4_session *s = ss[0];
    for (int i = 1; i < nb; i++)
        if (ss[i]->max_ctx > s->max_ctx) s = ss[i];
    const dsv4_model *m = s->m;
    const dsv4_config *c = &m->cfg;
    int D = c->dim;
    size_t row = (size_t)c->hc_mult * D;
    float *X = s->w.X;
    int64_t pos[DSV4_CHUNK];   /* nb <= min(DSV4_CHUNK, chunk) (dsv4_eval_batch) */
    embed_rows(m, tokens, nb, X);
    for (int i = 0; i < nb; i++) pos[i] = ss[i]->pos;
    for (int l = 0; l < c->n_layers; l++) block(s, l, X, tokens, nb, pos, ss);
    for (int i = 0; i < nb; i++) {
        keep_row(ss[i], pos[i], tokens[i], X + (size_t)i * row);
        ss[i]->pos++;
    }
    if (logits) head_rows(s, X, nb, logits);   /* the head once for all rows: each vocabulary row read once per batch */
}

/* MTP input (§4.9) for n positions, in place: X[t] (trunk final state, [hc][D]) becomes
 * X0_i = bf16(E_proj RMSNorm(embed[next[t]]; enorm) + H_proj RMSNorm(X_i; hnorm)). */
static void mtp_input(dsv4_session *s, const dsv4_layer *L, float *X, const int32_t *next, int n) {
    const dsv4_model *m = s->m;
    const dsv4_config *c = &m->cfg;
    int D = c->dim, hc = c->hc_mult;
    float *e = s->w.xe, *en = s->w.xn, *ep = s->w.ye, *hn = s->w.mhn, *hp = s->w.mh;
    for (int t = 0; t < n; t++) {
        dsv4_wview_row(&m->embed, next[t], e);
        dsv4_rmsnorm(en + (size_t)t * D, e, L->enorm, D, c->norm_eps, 1);
    }
    dsv4_linear(ep, &L->e_proj, en, n, DSV4_ACT_FP8 | DSV4_OUT_BF16, s->w.act);
    for (int r = 0; r < n * hc; r++) dsv4_rmsnorm(hn + (size_t)r * D, X + (size_t)r * D, L->hnorm, D, c->norm_eps, 1);
    dsv4_linear(hp, &L->h_proj, hn, n * hc, DSV4_ACT_FP8 | DSV4_OUT_BF16, s->w.act);
    for (int t = 0; t < n; t++)
        for (int i = 0; i < hc; i++)
            for (int d = 0; d < D; d++) {
                size_t k = ((size_t)t * hc + i) * D + d;
                X[k] = bf(ep[(size_t)t * D + d] + hp[k]);
            }
}

/* MTP (§4.9). Position and window convention (UNVERIFIED for V4; docs/architecture.md §4.9 follows llama.cpp/V3, and
 * tools/reference/model.py uses the same): the MTP block consumes the trunk state X_t and the embedding
 * of token t+1 at RoPE position t; its window holds the positions max(0, t-window+1)..t, where an earlier
 * position s < t was fed (X_s, token s+1) — the sequence's own tokens, as in training. Those keys are
 * computed lazily here from the saved trunk states (hist_x) and tokens (hist_tok); the key of position t
 * itself depends on the speculative next_token and is invalidated after use. */
void dsv4_forward_mtp(dsv4_session *s, int32_t next_token, float *logits) {
    const dsv4_model *m = s->m;
    const dsv4_config *c = &m->cfg;
    int D = c->dim, hc = c->hc_mult, li = c->n_layers, Wn = c->window_size, Wr = s->wring, hd = c->head_dim;
    const dsv4_layer *L = &m->layers[li];
    dsv4_block_state *b = &s->bs[li];
    float *X = s->w.X;
    int64_t t = s->pos - 1;
    /* missing window keys of positions s0..t-1 */
    int64_t s0 = t - Wn + 1 < 0 ? 0 : t - Wn + 1;
    int64_t list[DSV4_CHUNK];
    int32_t nxt[DSV4_CHUNK];
    const int cap = s->chunk < DSV4_CHUNK ? s->chunk : DSV4_CHUNK;   /* rows of the scratch per pass */
    int64_t p = s0;
    while (p < t) {
        int n = 0;
        for (; p < t && n < cap; p++) {
            if (b->slot_pos[p % Wr] == p) continue;
            list[n] = p;
            nxt[n] = s->hist_tok[(p + 1) % Wr];
            memcpy(X + (size_t)n * hc * D, s->hist_x + (size_t)(p % Wr) * hc * D, (size_t)hc * D * sizeof(float));
            n++;
        }
        if (!n) continue;
        mtp_input(s, L, X, nxt, n);
        sublayer_in(s, &L->hc_attn_fn, L->hc_attn_base, L->hc_attn_scale, L->attn_norm, X, n);  /* its attention input */
        for (int i = 0; i < n; i++) {   /* positions may be non-contiguous: one RoPE position each */
            raw_kv(s, L, s->w.xn + (size_t)i * D, 1, &list[i], s->w.kv);
            store_bf16(b->win + (size_t)(list[i] % Wr) * hd, s->w.kv, (size_t)hd);
            b->slot_pos[list[i] % Wr] = list[i];
        }
    }
    memcpy(X, s->last_x, (size_t)hc * D * sizeof(float));
    int32_t tok = next_token;
    mtp_input(s, L, X, &tok, 1);
    block(s, li, X, &tok, 1, &t, NULL);
    b->slot_pos[t % Wr] = -1;   /* speculative key: recomputed from the real token next time */
    hc_head(s, &L->hc_head_fn, L->hc_head_base, L->hc_head_scale, X, s->w.u);
    head_logits(s, s->w.u, L->mtp_norm, logits);
}

/* ------------------------------------------------------------------ one block (tests; model.h) */
int dsv4_block_eval(dsv4_session *s, int layer, float *X, const int32_t *tokens, int n, int64_t pos0,
                    char *err, size_t errlen) {
    if (!s) return dsv4_fail(err, errlen, "dsv4_block_eval: session is NULL");
    const dsv4_model *m = s->m;
    const dsv4_config *c = &m->cfg;
    if (layer < 0 || layer >= m->n_blocks)
        return dsv4_fail(err, errlen, "dsv4_block_eval: layer %d out of range [0, %d)", layer, m->n_blocks);
    if (layer >= c->n_layers && m->layers[layer].ratio != 0)
        return dsv4_fail(err, errlen, "dsv4_block_eval: MTP block %d with compress ratio %d is not supported", layer,
                         m->layers[layer].ratio);
    if (n < 1 || !X || !tokens) return dsv4_fail(err, errlen, "dsv4_block_eval: n = %d (need >= 1), X and tokens non-NULL", n);
    if (pos0 < 0 || pos0 + n > s->max_ctx)
        return dsv4_fail(err, errlen, "dsv4_block_eval: positions %lld..%lld outside [0, max_ctx %d)", (long long)pos0,
                         (long long)(pos0 + n - 1), s->max_ctx);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= c->vocab_size)
            return dsv4_fail(err, errlen, "dsv4_block_eval: token id %d at index %d out of range [0, %d)", (int)tokens[i], i,
                             c->vocab_size);
    size_t row = (size_t)c->hc_mult * c->dim;
    for (int c0 = 0; c0 < n; c0 += s->chunk) {
        int nc = n - c0 < s->chunk ? n - c0 : s->chunk;
        memcpy(s->w.X, X + (size_t)c0 * row, (size_t)nc * row * sizeof(float));
        if (layer >= c->n_layers) mtp_input(s, &m->layers[layer], s->w.X, tokens + c0, nc);
        int64_t pos[DSV4_CHUNK_MAX];
        for (int t = 0; t < nc; t++) pos[t] = pos0 + c0 + t;
        block(s, layer, s->w.X, tokens + c0, nc, pos, NULL);
        memcpy(X + (size_t)c0 * row, s->w.X, (size_t)nc * row * sizeof(float));
    }
    if (s->xc_failed) { s->xc_failed = 0; return dsv4_fail(err, errlen, "dsv4_block_eval: %s", s->xc_err); }
    return 0;
}
