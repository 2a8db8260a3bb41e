/* model/weights.c — bind the checkpoint's tensors to typed weight views and validate them (docs/architecture.md §2).
 *
 * Every tensor implied by the config is checked for name, dtype and shape (st_expect); large weights
 * become zero-copy dsv4_wview's into the mapping, small vectors are converted to owned F32 arrays.
 * Accepted dtypes: FP8 linears F8_E4M3 + F8_E8M0 scale [ceil(r/128), ceil(c/128)]; routed experts
 * I8 (packed FP4, scale [r, c/32]) or F8_E4M3 (Base checkpoints, 128x128 scale), one format for all of
 * them: config.json's expert_dtype when present, else the first routed expert's (expert_dtype, docs/architecture.md §1.1,
 * §2.4; an error names the tensor, its file and the key or the deciding tensor); wo_a FP8 (official)
 * or BF16 (converted); norm weights BF16 or F32; hc_*, attn_sink, ape, gate.bias F32.
 * Afterwards the checkpoint's whole tensor set is checked against dsv4_tensor_list (io/tensor_list.h, the
 * one source of truth for the names a config implies): a checkpoint tensor the list does not hold is
 * refused ("unexpected tensor ... config.json says num_hidden_layers 3"), a listed tensor the binder did
 * not use (MTP blocks after the first) must match its listed dtype and shape, and a listed tensor may be
 * absent only where the binder accepted an alternative (the .scale of a BF16-converted wo_a).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include "model/model.h"
#include "model/weights_bind.h"
#include "io/tensor_list.h"
#include "kernels/quant_v41.h"
#include "vision/tower.h"
#include "model/model_v41.h"
#include "base/util.h"

static void *own(dsv4_model *m, void *p) {
    if (!p) return NULL;
    if (m->n_owned == m->cap_owned) {
        int nc = m->cap_owned ? m->cap_owned * 2 : 256;
        void **n = realloc(m->owned, (size_t)nc * sizeof *n);
        if (!n) { free(p); return NULL; }
        m->owned = n; m->cap_owned = nc;
    }
    m->owned[m->n_owned++] = p;
    return p;
}

static void *xalloc(dsv4_model *m, size_t bytes) { return own(m, calloc(1, bytes ? bytes : 1)); }

typedef dsv4_wbind ctx;   /* model/weights_bind.h */

static const st_tensor *expect(ctx *c, const char *name, st_dtype dt, int ndim, int64_t d0, int64_t d1) {
    int64_t shape[2] = {d0, d1};
    const st_tensor *t = st_expect(c->m->st, name, dt, ndim, shape, c->err, c->errlen);
    if (t && c->used) c->used[t - st_at(c->m->st, 0)] = 1;
    return t;
}

static int oom(ctx *c, const char *name) { return dsv4_fail(c->err, c->errlen, "%s: out of memory loading '%s'", c->m->dir, name); }

/* Owned F32 copy of a 1-D or 2-D tensor of n0 x n1 elements (n1 = 0: 1-D), BF16 or F32 on disk. */
static float *vec(ctx *c, const char *name, int64_t n0, int64_t n1, int allow_bf16) {
    const st_tensor *t = st_find(c->m->st, name);
    st_dtype dt = ST_F32;
    if (t && t->dtype == ST_BF16 && allow_bf16) dt = ST_BF16;
    t = expect(c, name, dt, n1 ? 2 : 1, n0, n1);
    if (!t) return NULL;
    int64_t n = n0 * (n1 ? n1 : 1);
    float *out = xalloc(c->m, (size_t)n * sizeof(float));
    if (!out) { oom(c, name); return NULL; }
    const uint8_t *p = t->data;
    for (int64_t i = 0; i < n; i++) {
        if (dt == ST_BF16) { uint16_t h; memcpy(&h, p + 2 * i, 2); out[i] = dsv4_bf16_to_f32(h); }
        else memcpy(&out[i], p + 4 * i, 4);
    }
    return out;
}

/* Norm-like vector: BF16 (docs/architecture.md §2.1) or F32. */
static float *nvec(ctx *c, const char *name, int64_t n) { return vec(c, name, n, 0, 1); }

/* Data pointer usable for element size `al`; copies when the mapping is misaligned. */
static const void *aligned_data(ctx *c, const st_tensor *t, size_t al) {
    if (((uintptr_t)t->data % al) == 0) return t->data;
    void *p = xalloc(c->m, t->nbytes);
    if (!p) { oom(c, t->name); return NULL; }
    memcpy(p, t->data, t->nbytes);
    return p;
}

enum { L_FP8 = DSV4_WB_FP8, L_BF16 = DSV4_WB_BF16, L_F32 = DSV4_WB_F32, L_EXPERT = DSV4_WB_EXPERT, L_WOA = DSV4_WB_WOA };


/* Routed-expert weight format (docs/architecture.md §1.1, §2.4): with the config key expert_dtype, every routed expert
 * weight must have that format; without it the first routed expert weight decides (F8_E4M3 = FP8, anything
 * else = packed FP4 I8) and every other one must match it. Returns the dtype `wn` must have ([rows, cols]
 * logical), or -1 with err naming the tensor, its file and the key / the deciding tensor. */
static int expert_dtype(ctx *c, const char *wn, const st_tensor *t, int rows, int cols, st_dtype *dt) {
    if (c->efmt < 0) {
        if (!t) { *dt = ST_I8; return 0; }   /* st_expect reports it missing */
        c->efmt = t->dtype == ST_F8_E4M3;
        snprintf(c->efirst, sizeof c->efirst, "%s", wn);
        *dt = c->efmt ? ST_F8_E4M3 : ST_I8;
        return 0;
    }
    *dt = c->efmt ? ST_F8_E4M3 : ST_I8;
    if (!t) return 0;
    int64_t want[2] = {rows, c->efmt ? cols : cols / 2};
    int ok = t->dtype == *dt && t->ndim == 2 && t->shape[0] == want[0] && t->shape[1] == want[1];
    if (ok || (!c->efmt && cols % 32)) return 0;   /* lin reports an FP4 width that is not a multiple of 32 */
    char ws[64], gs[200], why[700];
    st_format_shape(ws, sizeof ws, 2, want);
    st_format_shape(gs, sizeof gs, t->ndim, t->shape);
    const char *what = c->efmt ? "FP8" : "packed FP4";
    if (c->m->cfg.expert_dtype_given)
        snprintf(why, sizeof why, "%s, config expert_dtype %s", what, c->efmt ? "fp8" : "fp4");
    else
        snprintf(why, sizeof why, "%s like the first routed expert tensor '%s'; config.json has no expert_dtype", what,
                 c->efirst);
    return dsv4_fail(c->err, c->errlen, "%s: tensor '%s': expected %s %s (%s), found %s %s", t->file, wn,
                     st_dtype_name(*dt), ws, why, st_dtype_name(t->dtype), gs);
}

/* Bind `<prefix>.weight` (and `.scale`) as a [rows, cols] linear of the given kind. */
static int lin(ctx *c, dsv4_wview *w, const char *prefix, int rows, int cols, int kind) {
    char wn[512], sn[512];
    snprintf(wn, sizeof wn, "%s.weight", prefix);
    snprintf(sn, sizeof sn, "%s.scale", prefix);
    if (kind == L_F32) snprintf(wn, sizeof wn, "%s", prefix); /* hc_*_fn: no .weight suffix */
    const st_tensor *t = st_find(c->m->st, wn);
    st_dtype dt;
    switch (kind) {
    case L_FP8: dt = ST_F8_E4M3; break;
    case L_BF16: dt = (t && t->dtype == ST_F32) ? ST_F32 : ST_BF16; break;
    case L_F32: dt = ST_F32; break;
    case L_EXPERT: if (expert_dtype(c, wn, t, rows, cols, &dt)) return -1; break;
    default: dt = (t && t->dtype == ST_BF16) ? ST_BF16 : ST_F8_E4M3; break;
    }
    memset(w, 0, sizeof *w);
    w->rows = rows; w->cols = cols;
    if (dt == ST_I8) {
        if (cols % 32) return dsv4_fail(c->err, c->errlen, "%s: tensor '%s': FP4 input width %d not a multiple of 32", c->m->dir, wn, cols);
        if (!(t = expect(c, wn, ST_I8, 2, rows, cols / 2))) return -1;
        const st_tensor *s = expect(c, sn, ST_F8_E8M0, 2, rows, cols / 32);
        if (!s) return -1;
        w->fmt = DSV4_W_FP4; w->data = t->data; w->scale = s->data;
        return 0;
    }
    if (!(t = expect(c, wn, dt, 2, rows, cols))) return -1;
    if (dt == ST_F8_E4M3) {
        const int b = c->m->cfg.fp8_block == 32 ? 32 : 128;   /* V4.1: 32x32 tiles */
        const st_tensor *s = expect(c, sn, ST_F8_E8M0, 2, (rows + b - 1) / b, (cols + b - 1) / b);
        if (!s) return -1;
        w->fmt = b == 32 ? DSV4_W_FP8_32 : DSV4_W_FP8; w->data = t->data; w->scale = s->data;
        if (b == 32) {   /* V4.1: dsv4_linear reads the 32x32 tiles in place; NaN codes and scale byte 255 refused */
            long bad = dsv4_fp8_tiles_check(t->data, s->data, rows, cols, 32);
            if (bad)
                return dsv4_fail(c->err, c->errlen, "%s: tensor '%s': %ld values are not finite E4M3 x UE8M0 numbers "
                                 "(NaN code or scale byte 255)", t->file, wn, bad);
            /* wo_a is used by row sub-views at multiples of o_lora_rank, which 32-tiles need at multiples of 32 */
            if (kind == L_WOA && c->m->cfg.o_lora_rank % 32) {
                uint16_t *d = xalloc(c->m, (size_t)rows * cols * 2);
                if (!d) return oom(c, wn);
                dsv4_fp8_tiles_to_bf16(t->data, s->data, rows, cols, 32, d);
                w->fmt = DSV4_W_BF16; w->data = d; w->scale = NULL;
            }
        }
    } else if (dt == ST_BF16) {
        w->fmt = DSV4_W_BF16;
        if (!(w->data = aligned_data(c, t, 2))) return -1;
    } else {
        w->fmt = DSV4_W_F32;
        if (!(w->data = aligned_data(c, t, 4))) return -1;
    }
    return 0;
}

static int bind_comp(ctx *c, dsv4_compressor_w *cw, const char *pre, int R, int dc, int overlap, int D) {
    char n[512];
    int cc = overlap ? 2 : 1;
    cw->R = R; cw->dc = dc; cw->overlap = overlap;
    snprintf(n, sizeof n, "%s.wkv", pre);
    if (lin(c, &cw->wkv, n, cc * dc, D, L_BF16)) return -1;
    snprintf(n, sizeof n, "%s.wgate", pre);
    if (lin(c, &cw->wgate, n, cc * dc, D, L_BF16)) return -1;
    snprintf(n, sizeof n, "%s.ape", pre);
    if (!(cw->ape = vec(c, n, R, cc * dc, 0))) return -1;
    snprintf(n, sizeof n, "%s.norm.weight", pre);
    if (!(cw->norm = nvec(c, n, dc))) return -1;
    return 0;
}

/* Dequantize an FP8 [rows, cols] view into an owned BF16 copy (exact: E4M3 x 2^k fits BF16). */
static int to_bf16(ctx *c, dsv4_wview *w, const char *name) {
    uint16_t *d = xalloc(c->m, (size_t)w->rows * w->cols * 2);
    float *row = malloc((size_t)w->cols * sizeof(float));
    if (!d || !row) { free(row); return oom(c, name); }
    for (int r = 0; r < w->rows; r++) {
        dsv4_wview_row(w, r, row);
        for (int i = 0; i < w->cols; i++) d[(size_t)r * w->cols + i] = dsv4_f32_to_bf16(row[i]);
    }
    free(row);
    w->fmt = DSV4_W_BF16; w->data = d; w->scale = NULL;
    return 0;
}

static int bind_block(ctx *c, dsv4_layer *L, const char *p, int li, int is_mtp) {
    const dsv4_config *cf = &c->m->cfg;
    int D = cf->dim, H = cf->n_heads, hd = cf->head_dim, hc = cf->hc_mult, mix = (2 + hc) * hc;
    char n[512];
#define NM(fmt_) (snprintf(n, sizeof n, "%s" fmt_, p), n)
    L->ratio = cf->compress_ratios[li];
    L->is_hash = !is_mtp && li < cf->n_hash_layers;
    L->rope_f = L->ratio > 0 ? c->m->rope_comp : c->m->rope_win;
    if (lin(c, &L->hc_attn_fn, NM("hc_attn_fn"), mix, hc * D, L_F32)) return -1;
    if (lin(c, &L->hc_ffn_fn, NM("hc_ffn_fn"), mix, hc * D, L_F32)) return -1;
    if (!(L->hc_attn_base = vec(c, NM("hc_attn_base"), mix, 0, 0))) return -1;
    if (!(L->hc_ffn_base = vec(c, NM("hc_ffn_base"), mix, 0, 0))) return -1;
    if (!(L->hc_attn_scale = vec(c, NM("hc_attn_scale"), 3, 0, 0))) return -1;
    if (!(L->hc_ffn_scale = vec(c, NM("hc_ffn_scale"), 3, 0, 0))) return -1;
    if (!(L->attn_norm = nvec(c, NM("attn_norm.weight"), D))) return -1;
    if (!(L->ffn_norm = nvec(c, NM("ffn_norm.weight"), D))) return -1;
    /* attention */
    if (!(L->attn_sink = vec(c, NM("attn.attn_sink"), H, 0, 0))) return -1;
    if (lin(c, &L->wq_a, NM("attn.wq_a"), cf->q_lora_rank, D, L_FP8)) return -1;
    if (!(L->q_norm = nvec(c, NM("attn.q_norm.weight"), cf->q_lora_rank))) return -1;
    if (lin(c, &L->wq_b, NM("attn.wq_b"), H * hd, cf->q_lora_rank, L_FP8)) return -1;
    if (lin(c, &L->wkv, NM("attn.wkv"), hd, D, L_FP8)) return -1;
    if (!(L->kv_norm = nvec(c, NM("attn.kv_norm.weight"), hd))) return -1;
    if (lin(c, &L->wo_a, NM("attn.wo_a"), cf->o_groups * cf->o_lora_rank, H * hd / cf->o_groups, L_WOA)) return -1;
    /* grouped use needs row sub-views at multiples of o_lora; FP8 sub-views need multiples of 128 */
    if (L->wo_a.fmt == DSV4_W_FP8 && cf->o_lora_rank % 128 && to_bf16(c, &L->wo_a, NM("attn.wo_a.weight"))) return -1;
    if (lin(c, &L->wo_b, NM("attn.wo_b"), D, cf->o_groups * cf->o_lora_rank, L_FP8)) return -1;
    if (L->ratio > 0) {
        int csa = L->ratio == 4;
        if (bind_comp(c, &L->comp, NM("attn.compressor"), L->ratio, hd, csa, D)) return -1;
        if (csa) {
            if (lin(c, &L->idx_wq_b, NM("attn.indexer.wq_b"), cf->index_n_heads * cf->index_head_dim, cf->q_lora_rank, L_FP8)) return -1;
            if (lin(c, &L->idx_wp, NM("attn.indexer.weights_proj"), cf->index_n_heads, D, L_BF16)) return -1;
            if (bind_comp(c, &L->icomp, NM("attn.indexer.compressor"), 4, cf->index_head_dim, 1, D)) return -1;
        }
    }
    /* MoE */
    int E = cf->n_routed_experts, I = cf->moe_inter_dim, K = cf->n_activated_experts;
    if (lin(c, &L->gate, NM("ffn.gate"), E, D, L_BF16)) return -1;
    if (L->is_hash) {
        const st_tensor *t = expect(c, NM("ffn.gate.tid2eid"), ST_I64, 2, cf->vocab_size, K);
        if (!t) return -1;
        if (!(L->tid2eid = xalloc(c->m, (size_t)cf->vocab_size * K * sizeof(int32_t)))) return oom(c, n);
        const uint8_t *d = t->data;
        for (int64_t i = 0; i < (int64_t)cf->vocab_size * K; i++) {
            int64_t v; memcpy(&v, d + 8 * i, 8);
            if (v < 0 || v >= E)
                return dsv4_fail(c->err, c->errlen, "%s: tensor '%s': expert id %lld at [%lld][%lld] out of range [0, %d)",
                                 t->file, n, (long long)v, (long long)(i / K), (long long)(i % K), E);
            L->tid2eid[i] = (int32_t)v;
        }
    } else {
        if (!(L->gate_bias = vec(c, NM("ffn.gate.bias"), E, 0, 0))) return -1;
    }
    if (dsv4_config_vision_exp(cf)) {   /* Vision-Exp (docs/vision-exp.md §7): bias_vl everywhere, hash layers' bias */
        if (!(L->gate_bias_vl = vec(c, NM("ffn.gate.bias_vl"), E, 0, 0))) return -1;
        if (L->is_hash && !(L->gate_bias = vec(c, NM("ffn.gate.bias"), E, 0, 0))) return -1;   /* loaded, unused */
    }
    L->w1 = xalloc(c->m, (size_t)E * sizeof(dsv4_wview));
    L->w2 = xalloc(c->m, (size_t)E * sizeof(dsv4_wview));
    L->w3 = xalloc(c->m, (size_t)E * sizeof(dsv4_wview));
    if (!L->w1 || !L->w2 || !L->w3) return oom(c, p);
    for (int e = 0; e < E; e++) {
        char q[512];
        snprintf(q, sizeof q, "%sffn.experts.%d.w1", p, e); if (lin(c, &L->w1[e], q, I, D, L_EXPERT)) return -1;
        snprintf(q, sizeof q, "%sffn.experts.%d.w2", p, e); if (lin(c, &L->w2[e], q, D, I, L_EXPERT)) return -1;
        snprintf(q, sizeof q, "%sffn.experts.%d.w3", p, e); if (lin(c, &L->w3[e], q, I, D, L_EXPERT)) return -1;
    }
    if (cf->n_shared_experts > 0) {
        int Is = I * cf->n_shared_experts;
        if (lin(c, &L->sw1, NM("ffn.shared_experts.w1"), Is, D, L_FP8)) return -1;
        if (lin(c, &L->sw2, NM("ffn.shared_experts.w2"), D, Is, L_FP8)) return -1;
        if (lin(c, &L->sw3, NM("ffn.shared_experts.w3"), Is, D, L_FP8)) return -1;
    }
    if (is_mtp) {
        if (lin(c, &L->e_proj, NM("e_proj"), D, D, L_FP8)) return -1;
        if (lin(c, &L->h_proj, NM("h_proj"), D, D, L_FP8)) return -1;
        if (!(L->enorm = nvec(c, NM("enorm.weight"), D))) return -1;
        if (!(L->hnorm = nvec(c, NM("hnorm.weight"), D))) return -1;
        if (!(L->mtp_norm = nvec(c, NM("norm.weight"), D))) return -1;
        if (lin(c, &L->hc_head_fn, NM("hc_head_fn"), hc, hc * D, L_F32)) return -1;
        if (!(L->hc_head_base = vec(c, NM("hc_head_base"), hc, 0, 0))) return -1;
        if (!(L->hc_head_scale = vec(c, NM("hc_head_scale"), 1, 0, 0))) return -1;
    }
#undef NM
    return 0;
}

static int bind_all(ctx *c);

/* DeepSeek-V4-Flash-Vision-Exp (docs/vision-exp.md §2, §5): the V4.1 tower and aligner (vision/tower.h checks every
 * vision.* / aligner.* tensor; the aligner's width is hidden_size) and the span vectors image_start, image_pad,
 * image_newline, image_end ([dim], BF16 or F32, kept as their BF16 values). Not in dsv4_tensor_list, as for V4.1
 * (model/weights_v41.c bind_vision): marked used here, so the whole-set check accepts exactly these. */
static int bind_vexp_vision(ctx *c) {
    dsv4_model *m = c->m;
    const int D = m->cfg.dim;
    dsv4_vtower_config vc;
    char e2[512] = "";
    if (dsv4_vtower_config_from(&vc, &m->cfg, m->dir, c->err, c->errlen)) return -1;
    if (dsv4_vtower_load(&m->vx_tower, m->st, &vc, e2, sizeof e2))
        return dsv4_fail(c->err, c->errlen, "%s: %s", m->dir, e2);
    dsv4_vtower_mark_used(&vc, m->st, c->used);   /* exactly the tower's names (vision/tower.h) */
    float **dst[4] = {&m->image_start, &m->image_pad, &m->image_newline, &m->image_end};
    const char *nm[4] = {"image_start", "image_pad", "image_newline", "image_end"};
    for (int k = 0; k < 4; k++) {
        if (!(*dst[k] = vec(c, nm[k], D, 0, 1))) return -1;
        for (int i = 0; i < D; i++) (*dst[k])[i] = dsv4_round_bf16((*dst[k])[i]);
    }
    return 0;
}

/* Why the config does not imply checkpoint tensor `name`: "config.json says ..." (for the error message). */
static void why_unexpected(const dsv4_config *cf, const char *name, char *out, size_t cap) {
    int L = -1, e = -1, k = 0;
    const char *rest = name;
    if (sscanf(name, "layers.%d.%n", &L, &k) == 1 && k > 0) {
        rest = name + k;
        if (L >= cf->n_layers) { snprintf(out, cap, "num_hidden_layers %d", cf->n_layers); return; }
    } else if (sscanf(name, "mtp.%d.%n", &L, &k) == 1 && k > 0) {
        rest = name + k;
        if (L >= cf->n_mtp_layers) { snprintf(out, cap, "num_nextn_predict_layers %d", cf->n_mtp_layers); return; }
        L += cf->n_layers;
    } else {
        L = -1;
    }
    if (L >= 0) {
        if (sscanf(rest, "ffn.experts.%d.", &e) == 1 && (e < 0 || e >= cf->n_routed_experts)) {
            snprintf(out, cap, "n_routed_experts %d", cf->n_routed_experts);
            return;
        }
        if (strncmp(rest, "ffn.shared_experts.", 19) == 0 && cf->n_shared_experts == 0) {
            snprintf(out, cap, "n_shared_experts 0");
            return;
        }
        if (cf->x.v41 && cf->compress_ratios[L] > 0 && strncmp(rest, "attn.compressor.", 16) == 0) {
            snprintf(out, cap, "kv_source_layer_ids without layer %d (only KV sources have a compressor)", L);
            return;
        }
        if (cf->x.v41 && cf->compress_ratios[L] > 0 && strncmp(rest, "attn.indexer.", 13) == 0) {
            snprintf(out, cap, "index_source_layer_ids / kv_source_layer_ids: layer %d has no '%s' (indexers run on "
                     "index sources, wk / k_norm only on those that are also KV sources)", L, rest);
            return;
        }
        if (strncmp(rest, "attn.compressor.", 16) == 0 || strncmp(rest, "attn.indexer.", 13) == 0) {
            snprintf(out, cap, "compress_ratios[%d] = %d", L, cf->compress_ratios[L]);
            return;
        }
        if (strcmp(rest, "ffn.gate.tid2eid") == 0 || strcmp(rest, "ffn.gate.bias") == 0) {
            snprintf(out, cap, "num_hash_layers %d", cf->n_hash_layers);
            return;
        }
    }
    snprintf(out, cap, "%s tensors; '%s' is not one of them", "the DeepSeek-V4 layout's", name);
}

static int cmp_spec_name(const void *a, const void *b) {
    return strcmp((*(const dsv4_tensor_spec *const *)a)->name, (*(const dsv4_tensor_spec *const *)b)->name);
}

static const dsv4_tensor_spec *find_spec(const dsv4_tensor_spec *const *sorted, int n, const char *name) {
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2, r = strcmp(sorted[mid]->name, name);
        if (r == 0) return sorted[mid];
        if (r < 0) lo = mid + 1; else hi = mid;
    }
    return NULL;
}

/* A listed tensor is in the checkpoint, or absent with the one excuse: it is the scale of a weight the binder
 * took in a non-FP8 format (BF16-converted wo_a). */
static int present_or_excused(const st_set *st, const dsv4_tensor_spec *sp) {
    if (st_find(st, sp->name)) return 1;
    size_t len = strlen(sp->name);
    if ((sp->flags & DSV4_TS_SCALE) && len > 6 && strcmp(sp->name + len - 6, ".scale") == 0) {
        char wn[sizeof sp->name + 8];
        snprintf(wn, sizeof wn, "%.*s.weight", (int)(len - 6), sp->name);
        const st_tensor *w = st_find(st, wn);
        if (w && w->dtype != ST_F8_E4M3 && w->dtype != ST_I8) return 1;
    }
    return 0;
}

/* The full-set check described at the top of this file. */
static int check_tensor_set(ctx *c, const dsv4_tensor_spec *ts, int n) {
    const dsv4_config *cf = &c->m->cfg;
    const st_set *st = c->m->st;
    const dsv4_tensor_spec **sorted = malloc((size_t)(n ? n : 1) * sizeof *sorted);
    if (!sorted) return oom(c, "tensor list");
    for (int i = 0; i < n; i++) sorted[i] = &ts[i];
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_spec_name);
    int rc = 0;
    for (size_t i = 0; i < st_count(st) && !rc; i++) {
        const st_tensor *t = st_at(st, i);
        const dsv4_tensor_spec *sp = find_spec(sorted, n, t->name);
        /* the vision tower / aligner / image-span vectors of a V4.1 model: not listed, checked and taken by the
         * binder (model/weights_v41.c bind_vision); unlisted and untaken, they are unexpected like any other */
        if (!sp && c->used[i] && cf->x.vision_n_layers > 0 &&
            (!strncmp(t->name, "vision.", 7) || !strncmp(t->name, "aligner.", 8) || !strncmp(t->name, "image_", 6)))
            continue;
        if (!sp) {
            char why[320];
            why_unexpected(cf, t->name, why, sizeof why);
            rc = dsv4_fail(c->err, c->errlen, "unexpected tensor '%s' in %s \xe2\x80\x94 config.json says %s", t->name,
                           t->file, why);
        } else if (!c->used[i] && !st_expect(st, sp->name, sp->dtype, sp->ndim, sp->shape, c->err, c->errlen)) {
            rc = -1;
        }
    }
    for (int i = 0; i < n && !rc; i++)
        if (!present_or_excused(st, &ts[i]))
            rc = dsv4_fail(c->err, c->errlen, "%s: missing tensor '%s' (implied by config.json)", c->m->dir, ts[i].name);
    free(sorted);
    return rc;
}

/* dsv4_tensor_list_each visitor: stops (returns 1) at the first listed tensor that is absent without excuse. */
static int visit_missing(const dsv4_tensor_spec *sp, void *arg) {
    ctx *c = arg;
    if (present_or_excused(c->m->st, sp)) return 0;
    dsv4_fail(c->err, c->errlen, "%s: missing tensor '%s' (implied by config.json)", c->m->dir, sp->name);
    return 1;
}

int dsv4_weights_bind(dsv4_model *m, char *err, size_t errlen) {
    ctx c = {m, err, errlen, NULL, m->cfg.expert_dtype_given ? m->cfg.expert_fp8 : -1, ""};
    c.used = calloc(st_count(m->st) + 1, 1);
    if (!c.used) return oom(&c, "tensor marks");
    int rc = m->cfg.x.v41 ? dsv4_weights_v41_bind(&c) : bind_all(&c);
    if (!rc) {
        /* the experts' actual format: unbound MTP blocks are checked against it, and info reports it */
        if (c.efmt >= 0) m->cfg.expert_fp8 = c.efmt;
        int64_t listed = 0;
        rc = dsv4_tensor_summary(&m->cfg, m->cfg.expert_fp8, &m->info, &listed, err, errlen);
        /* More listed tensors than the checkpoint holds: some are absent. Name the first one without building
         * the list, whose size would be bounded by the config alone (255 layers x 65,536 experts = 100 M specs,
         * 18 GB). If all absences are excused, each is the scale of a present weight, so the list below has at
         * most 2 x st_count entries. */
        if (!rc && listed > (int64_t)st_count(m->st)) {
            rc = dsv4_tensor_list_each(&m->cfg, m->cfg.expert_fp8, visit_missing, &c, err, errlen);
            if (rc > 0) rc = -1;
        }
        if (!rc) {
            dsv4_tensor_spec *ts = NULL;
            int n = 0;
            rc = dsv4_tensor_list(&m->cfg, m->cfg.expert_fp8, &ts, &n, err, errlen);
            if (!rc) rc = check_tensor_set(&c, ts, n);
            dsv4_tensor_list_free(ts);
        }
    }
    if (!rc) {   /* bytes: of the tensors actually loaded (a converted checkpoint may differ from the list) */
        dsv4_model_info *in = &m->info;
        in->bytes_total = 0;
        for (int i = 0; i < DSV4_INFO_NDTYPE; i++) in->bytes_by_dtype[i] = 0;
        for (size_t i = 0; i < st_count(m->st); i++) {
            const st_tensor *t = st_at(m->st, i);
            int k;
            switch (t->dtype) {
            case ST_BF16: k = DSV4_INFO_BF16; break;
            case ST_F32: k = DSV4_INFO_F32; break;
            case ST_F8_E4M3: k = DSV4_INFO_F8_E4M3; break;
            case ST_F8_E8M0: k = DSV4_INFO_F8_E8M0; break;
            case ST_I8: k = DSV4_INFO_FP4; break;   /* I8 expert tensors hold packed FP4 */
            case ST_I64: k = DSV4_INFO_I64; break;
            default: k = DSV4_INFO_OTHER; break;
            }
            in->bytes_by_dtype[k] += (double)t->nbytes;
            in->bytes_total += (double)t->nbytes;
        }
    }
    free(c.used);
    return rc;
}

/* Bind every block and global tensor (m->cfg and m->st set). */
static int bind_all(ctx *c) {
    dsv4_model *m = c->m;
    char *err = c->err;
    size_t errlen = c->errlen;
    dsv4_config *cf = &m->cfg;
    int D = cf->dim, hc = cf->hc_mult;
    if (cf->head_dim <= cf->rope_dim || cf->rope_dim % 2 || cf->n_heads % cf->o_groups || cf->hc_mult < 1 ||
        cf->n_activated_experts > cf->n_routed_experts || cf->n_activated_experts < 1)
        return dsv4_fail(err, errlen, "%s/config.json: inconsistent dimensions (head_dim %d, rope %d, heads %d, o_groups %d, experts %d/%d)",
                         m->dir, cf->head_dim, cf->rope_dim, cf->n_heads, cf->o_groups, cf->n_activated_experts, cf->n_routed_experts);
    for (int i = 0; i < cf->n_ratios; i++)
        if (cf->compress_ratios[i] == 4 && (cf->index_head_dim <= cf->rope_dim || (cf->index_head_dim & (cf->index_head_dim - 1)) || cf->index_n_heads < 1))
            return dsv4_fail(err, errlen, "%s/config.json: CSA layer %d needs index_head_dim a power of two > rope dim", m->dir, i);
    m->rope_win = xalloc(m, (size_t)cf->rope_dim / 2 * sizeof(float));
    m->rope_comp = xalloc(m, (size_t)cf->rope_dim / 2 * sizeof(float));
    if (!m->rope_win || !m->rope_comp) return oom(c, "rope");
    dsv4_rope_freqs(m->rope_win, cf->rope_dim, cf->rope_theta, 0, 1, cf->original_seq_len, cf->beta_fast, cf->beta_slow);
    dsv4_rope_freqs(m->rope_comp, cf->rope_dim, cf->compress_rope_theta, cf->yarn, cf->rope_factor, cf->original_seq_len,
                    cf->beta_fast, cf->beta_slow);
    if (lin(c, &m->embed, "embed", cf->vocab_size, D, L_BF16)) return -1;
    if (lin(c, &m->head, "head", cf->vocab_size, D, L_BF16)) return -1;
    if (!(m->norm = nvec(c, "norm.weight", D))) return -1;
    if (lin(c, &m->hc_head_fn, "hc_head_fn", hc, hc * D, L_F32)) return -1;
    if (!(m->hc_head_base = vec(c, "hc_head_base", hc, 0, 0))) return -1;
    if (!(m->hc_head_scale = vec(c, "hc_head_scale", 1, 0, 0))) return -1;
    m->n_blocks = cf->n_layers + (cf->n_mtp_layers > 0 ? 1 : 0);
    m->layers = xalloc(m, (size_t)m->n_blocks * sizeof(dsv4_layer));
    if (!m->layers) return oom(c, "layers");
    for (int l = 0; l < cf->n_layers; l++) {
        char p[64]; snprintf(p, sizeof p, "layers.%d.", l);
        if (bind_block(c, &m->layers[l], p, l, 0)) return -1;
    }
    if (cf->n_mtp_layers > 0 && bind_block(c, &m->layers[cf->n_layers], "mtp.0.", cf->n_layers, 1)) return -1;
    if (dsv4_config_vision_exp(cf) && bind_vexp_vision(c)) return -1;
    m->file_bytes = 0;
    for (size_t i = 0; i < st_count(m->st); i++) m->file_bytes += (double)st_at(m->st, i)->nbytes;
    return 0;
}

void dsv4_weights_free(dsv4_model *m) {
    if (!m) return;
    if (m->v41) dsv4_vtower_free(m->v41->vtower);   /* the vision tower of a V4.1 model (model/model_v41.h) */
    dsv4_vtower_free(m->vx_tower);                   /* a Vision-Exp model's (NULL otherwise) */
    m->vx_tower = NULL;
    m->image_start = m->image_pad = m->image_newline = m->image_end = NULL;
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    m->owned = NULL; m->n_owned = m->cap_owned = 0;
    m->layers = NULL;
    m->v41 = NULL;
}

/* ---- the binder for model/weights_v41.c (model/weights_bind.h) ---- */
const st_tensor *dsv4_wb_expect(dsv4_wbind *c, const char *name, st_dtype dt, int ndim, int64_t d0, int64_t d1) {
    return expect(c, name, dt, ndim, d0, d1);
}
float *dsv4_wb_vec(dsv4_wbind *c, const char *name, int64_t n0, int64_t n1, int allow_bf16) {
    return vec(c, name, n0, n1, allow_bf16);
}
int dsv4_wb_lin(dsv4_wbind *c, dsv4_wview *w, const char *prefix, int rows, int cols, int kind) {
    return lin(c, w, prefix, rows, cols, kind);
}
void *dsv4_wb_alloc(dsv4_wbind *c, size_t bytes, const char *what) {
    void *p = xalloc(c->m, bytes);
    if (!p) oom(c, what);
    return p;
}
int dsv4_wb_to_f32(dsv4_wbind *c, dsv4_wview *w, const char *name) {
    if (w->fmt == DSV4_W_F32) return 0;
    float *d = xalloc(c->m, (size_t)w->rows * w->cols * sizeof(float));
    if (!d) return oom(c, name);
    for (int r = 0; r < w->rows; r++) dsv4_wview_row(w, r, d + (size_t)r * w->cols);
    w->fmt = DSV4_W_F32; w->data = d; w->scale = NULL;
    return 0;
}
