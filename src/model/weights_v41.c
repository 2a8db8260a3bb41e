/* model/weights_v41.c — bind a DeepSeek-V4.1 checkpoint (docs/v41.md §4, docs/v41-implementation.md) into
 * m->v41 (model/model_v41.h), with the binder of model/weights.c (model/weights_bind.h).
 *
 * Every tensor the config implies is taken by name with its dtype and shape checked (an error names the tensor and
 * its file); model/weights.c then checks the checkpoint's whole tensor set against dsv4_tensor_list, so a tensor
 * this file does not take (or a missing one) is reported there. The order follows the tensor list (io/info.c
 * generate41): globals, then per block the norms and mHC, attention, compressor (KV sources), indexer (index
 * sources; wk / k_norm for owners), MoE, Engram, DSpark heads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "model/model_v41.h"
#include "model/weights_bind.h"
#include "vision/tower.h"
#include "base/util.h"

static int in_list(const int *a, int n, int x) {
    for (int i = 0; i < n; i++)
        if (a[i] == x) return 1;
    return 0;
}

static int bind_engram(dsv4_wbind *c, dsv4_layer41 *B, const char *pfx, int k) {
    const dsv4_config *cf = &c->m->cfg;
    const dsv4_config_v41 *x = &cf->x;
    const int D = cf->dim, hc = cf->hc_mult, ed = x->engram_head_dim;
    const int cols = (x->engram_max_ngram - 1) * x->engram_n_heads;
    char n[160];
    dsv4_engram41_w *e = dsv4_wb_alloc(c, sizeof *e, pfx);
    if (!e) return -1;
    B->engram = e;
    e->index = k;
    e->rows = x->engram_num_embeddings[k];
    snprintf(n, sizeof n, "%sengram.embed.weight", pfx);
    const st_tensor *tw = dsv4_wb_expect(c, n, ST_F8_E4M3, 2, e->rows, ed);
    if (!tw) return -1;
    snprintf(n, sizeof n, "%sengram.embed.scale", pfx);
    const st_tensor *ts = dsv4_wb_expect(c, n, ST_F8_E8M0, 2, e->rows, ed / 32);
    if (!ts) return -1;
    /* the table is read with pread at these offsets, never through the mapping */
    if (st_locate(c->m->st, tw->data, &e->path, &e->w_off) || st_locate(c->m->st, ts->data, &e->scale_path, &e->s_off))
        return dsv4_fail(c->err, c->errlen, "%s: tensor '%sengram.embed.*': cannot locate its bytes in the file",
                         tw->file, pfx);
    snprintf(n, sizeof n, "%sengram.wkv", pfx);
    if (dsv4_wb_lin(c, &e->wkv, n, D * (hc + 1), cols * ed, DSV4_WB_FP8)) return -1;
    snprintf(n, sizeof n, "%sengram.q_weight", pfx);
    if (!(e->q_weight = dsv4_wb_vec(c, n, hc, D, 1))) return -1;
    snprintf(n, sizeof n, "%sengram.k_weight", pfx);
    if (!(e->k_weight = dsv4_wb_vec(c, n, hc, D, 1))) return -1;
    if (!(e->w = dsv4_wb_alloc(c, (size_t)hc * D * sizeof(float), n))) return -1;
    for (int i = 0; i < hc * D; i++) e->w[i] = e->q_weight[i] * e->k_weight[i];
    return 0;
}

static int bind_block41(dsv4_wbind *c, dsv4_layer41 *B, int L) {
    const dsv4_config *cf = &c->m->cfg;
    const dsv4_config_v41 *x = &cf->x;
    const int dspark = L >= cf->n_layers, stage = L - cf->n_layers;
    const int D = cf->dim, H = cf->n_heads, hd = cf->head_dim, hc = cf->hc_mult, mix = (2 + hc) * hc;
    const int ql = cf->q_lora_rank, I = cf->moe_inter_dim;
    char p[32], n[160];
    if (dspark) snprintf(p, sizeof p, "mtp.%d.", stage);
    else snprintf(p, sizeof p, "layers.%d.", L);
#define NM(fmt_) (snprintf(n, sizeof n, "%s" fmt_, p), n)
    B->ratio = cf->compress_ratios[L];
    B->kv_source = !dspark && in_list(x->kv_sources, x->n_kv_sources, L);
    B->index_source = !dspark && in_list(x->index_sources, x->n_index_sources, L);
    B->candidate_source = !dspark && x->candidate_source == L;
    B->uses_candidates = B->index_source && x->candidate_source >= 0 && x->candidate_source < L;
    /* norms and single-pass mHC */
    if (!(B->attn_norm = dsv4_wb_vec(c, NM("attn_norm.weight"), D, 0, 1))) return -1;
    if (!(B->ffn_norm = dsv4_wb_vec(c, NM("ffn_norm.weight"), D, 0, 1))) return -1;
    if (dsv4_wb_lin(c, &B->hc_attn_fn, NM("hc_attn_fn"), mix, hc * D, DSV4_WB_F32)) return -1;
    if (dsv4_wb_lin(c, &B->hc_ffn_fn, NM("hc_ffn_fn"), mix, hc * D, DSV4_WB_F32)) return -1;
    if (!(B->hc_attn_base = dsv4_wb_vec(c, NM("hc_attn_base"), mix, 0, 0))) return -1;
    if (!(B->hc_ffn_base = dsv4_wb_vec(c, NM("hc_ffn_base"), mix, 0, 0))) return -1;
    if (!(B->hc_attn_scale = dsv4_wb_vec(c, NM("hc_attn_scale"), 3, 0, 0))) return -1;
    if (!(B->hc_ffn_scale = dsv4_wb_vec(c, NM("hc_ffn_scale"), 3, 0, 0))) return -1;
    /* attention */
    if (!(B->attn_sink = dsv4_wb_vec(c, NM("attn.attn_sink"), H, 0, 0))) return -1;
    if (dsv4_wb_lin(c, &B->wq_a, NM("attn.wq_a"), ql, D, DSV4_WB_FP8)) return -1;
    if (!(B->q_norm = dsv4_wb_vec(c, NM("attn.q_norm.weight"), ql, 0, 1))) return -1;
    if (dsv4_wb_lin(c, &B->wq_b, NM("attn.wq_b"), H * hd, ql, DSV4_WB_FP8)) return -1;
    if (dsv4_wb_lin(c, &B->wkv, NM("attn.wkv"), hd, D, DSV4_WB_FP8)) return -1;
    if (!(B->kv_norm = dsv4_wb_vec(c, NM("attn.kv_norm.weight"), hd, 0, 1))) return -1;
    if (dsv4_wb_lin(c, &B->wo_a, NM("attn.wo_a"), cf->o_groups * cf->o_lora_rank, H * hd / cf->o_groups, DSV4_WB_WOA))
        return -1;
    if (dsv4_wb_lin(c, &B->wo_b, NM("attn.wo_b"), D, cf->o_groups * cf->o_lora_rank, DSV4_WB_FP8)) return -1;
    if (B->kv_source) {
        if (dsv4_wb_lin(c, &B->comp_wkv, NM("attn.compressor.wkv"), hd, D, DSV4_WB_BF16)) return -1;
        if (B->ratio > 1) {   /* F32 linears of the reference, stored BF16 */
            if (dsv4_wb_to_f32(c, &B->comp_wkv, NM("attn.compressor.wkv.weight"))) return -1;
            if (dsv4_wb_lin(c, &B->comp_wgate, NM("attn.compressor.wgate"), hd, D, DSV4_WB_BF16)) return -1;
            if (dsv4_wb_to_f32(c, &B->comp_wgate, NM("attn.compressor.wgate.weight"))) return -1;
        }
        if (!(B->comp_norm = dsv4_wb_vec(c, NM("attn.compressor.norm.weight"), hd, 0, 1))) return -1;
    }
    if (B->index_source) {
        const int ih = cf->index_n_heads, id = cf->index_head_dim;
        if (dsv4_wb_lin(c, &B->idx_wq_b, NM("attn.indexer.wq_b"), ih * id, ql, DSV4_WB_FP8)) return -1;
        if (dsv4_wb_lin(c, &B->idx_wp, NM("attn.indexer.weights_proj"), ih, D, DSV4_WB_BF16)) return -1;
        if (B->kv_source) {
            if (dsv4_wb_lin(c, &B->idx_wk, NM("attn.indexer.wk"), id, hd, DSV4_WB_BF16)) return -1;
            if (!(B->idx_k_norm = dsv4_wb_vec(c, NM("attn.indexer.k_norm.weight"), id, 0, 1))) return -1;
        }
    }
    /* MoE: no hash layers; DSpark stages have their own expert counts */
    B->n_experts = dspark ? x->dspark_n_routed_experts : cf->n_routed_experts;
    B->n_active = dspark ? x->dspark_n_activated_experts : cf->n_activated_experts;
    const int E = B->n_experts;
    if (dsv4_wb_lin(c, &B->gate, NM("ffn.gate"), E, D, DSV4_WB_BF16)) return -1;
    if (!(B->gate_bias = dsv4_wb_vec(c, NM("ffn.gate.bias"), E, 0, 0))) return -1;
    if (x->vision_n_layers > 0 && !(B->gate_bias_vl = dsv4_wb_vec(c, NM("ffn.gate.bias_vl"), E, 0, 0))) return -1;
    B->w1 = dsv4_wb_alloc(c, (size_t)E * sizeof(dsv4_wview), p);
    B->w2 = dsv4_wb_alloc(c, (size_t)E * sizeof(dsv4_wview), p);
    B->w3 = dsv4_wb_alloc(c, (size_t)E * sizeof(dsv4_wview), p);
    if (!B->w1 || !B->w2 || !B->w3) return -1;
    for (int e = 0; e < E; e++) {
        char q[160];
        snprintf(q, sizeof q, "%sffn.experts.%d.w1", p, e);
        if (dsv4_wb_lin(c, &B->w1[e], q, I, D, DSV4_WB_EXPERT)) return -1;
        snprintf(q, sizeof q, "%sffn.experts.%d.w2", p, e);
        if (dsv4_wb_lin(c, &B->w2[e], q, D, I, DSV4_WB_EXPERT)) return -1;
        snprintf(q, sizeof q, "%sffn.experts.%d.w3", p, e);
        if (dsv4_wb_lin(c, &B->w3[e], q, I, D, DSV4_WB_EXPERT)) return -1;
    }
    if (cf->n_shared_experts > 0) {
        const int Is = I * cf->n_shared_experts;
        if (dsv4_wb_lin(c, &B->sw1, NM("ffn.shared_experts.w1"), Is, D, DSV4_WB_FP8)) return -1;
        if (dsv4_wb_lin(c, &B->sw2, NM("ffn.shared_experts.w2"), D, Is, DSV4_WB_FP8)) return -1;
        if (dsv4_wb_lin(c, &B->sw3, NM("ffn.shared_experts.w3"), Is, D, DSV4_WB_FP8)) return -1;
    }
    for (int k = 0; !dspark && k < x->n_engram; k++)
        if (x->engram_layer_ids[k] == L && bind_engram(c, B, p, k)) return -1;
    if (dspark && stage == 0) {
        if (dsv4_wb_lin(c, &B->main_proj, NM("main_proj"), D, D * x->n_dspark_targets, DSV4_WB_FP8)) return -1;
        if (!(B->main_norm = dsv4_wb_vec(c, NM("main_norm.weight"), D, 0, 1))) return -1;
    }
    if (dspark && stage == cf->n_mtp_layers - 1) {
        const int r = x->dspark_markov_rank;
        if (!(B->dspark_norm = dsv4_wb_vec(c, NM("norm.weight"), D, 0, 1))) return -1;
        if (dsv4_wb_lin(c, &B->markov_embed, NM("markov_head.embed"), cf->vocab_size, r, DSV4_WB_BF16)) return -1;
        if (dsv4_wb_lin(c, &B->markov_head, NM("markov_head.head"), cf->vocab_size, r, DSV4_WB_BF16)) return -1;
        if (dsv4_wb_lin(c, &B->confidence_proj, NM("confidence_head.proj"), 1, D + r, DSV4_WB_BF16)) return -1;
    }
#undef NM
    return 0;
}

/* The vision tower and aligner (vision/tower.h checks every vision.* / aligner.* tensor: name, dtype BF16 or F32,
 * shape) and the image-span vectors image_start / image_newline / image_end ([dim], BF16 or F32, kept as their BF16
 * values). These tensors are not in dsv4_tensor_list (io/info.c: its parameter counts are of the language model;
 * vision/tower.h is their list); the whole-set check of model/weights.c accepts them because they are marked used
 * here, and refuses any other vision.* / aligner.* / image_* name as unexpected. */
static int bind_vision(dsv4_wbind *c, struct dsv4_v41_weights *v) {
    dsv4_model *m = c->m;
    const int D = m->cfg.dim;
    dsv4_vtower_config vc;
    char e2[512] = "";
    if (dsv4_vtower_config_from(&vc, &m->cfg, m->dir, c->err, c->errlen)) return -1;
    if (dsv4_vtower_load(&v->vtower, m->st, &vc, e2, sizeof e2))
        return dsv4_fail(c->err, c->errlen, "%s: %s", m->dir, e2);
    /* the tower's tensors used: the whole-set check of model/weights.c accepts them and still refuses any other
     * vision.* / aligner.* name as unexpected */
    dsv4_vtower_mark_used(&vc, m->st, c->used);
    float **dst[3] = {&v->image_start, &v->image_newline, &v->image_end};
    const char *nm[3] = {"image_start", "image_newline", "image_end"};
    for (int k = 0; k < 3; k++) {
        if (!(*dst[k] = dsv4_wb_vec(c, nm[k], D, 0, 1))) {
            dsv4_vtower_free(v->vtower);   /* m->v41 is not set yet: dsv4_weights_free would not see it */
            v->vtower = NULL;
            return -1;
        }
        for (int i = 0; i < D; i++) (*dst[k])[i] = dsv4_round_bf16((*dst[k])[i]);
    }
    return 0;
}

int dsv4_weights_v41_bind(dsv4_wbind *c) {
    dsv4_model *m = c->m;
    const dsv4_config *cf = &m->cfg;
    const int D = cf->dim;
    if (cf->head_dim <= cf->rope_dim || cf->rope_dim % 2 || cf->n_heads % cf->o_groups || cf->n_activated_experts < 1 ||
        cf->n_activated_experts > cf->n_routed_experts)
        return dsv4_fail(c->err, c->errlen, "%s/config.json: inconsistent dimensions (head_dim %d, rope %d, heads %d, "
                         "o_groups %d, experts %d/%d)", m->dir, cf->head_dim, cf->rope_dim, cf->n_heads, cf->o_groups,
                         cf->n_activated_experts, cf->n_routed_experts);
    if (dsv4_wb_lin(c, &m->embed, "embed", cf->vocab_size, D, DSV4_WB_BF16)) return -1;
    if (dsv4_wb_lin(c, &m->head, "head", cf->vocab_size, D, DSV4_WB_BF16)) return -1;
    if (!(m->norm = dsv4_wb_vec(c, "norm.weight", D, 0, 1))) return -1;
    struct dsv4_v41_weights *v = dsv4_wb_alloc(c, sizeof *v, "V4.1 weights");
    if (!v) return -1;
    v->n_blocks = cf->n_layers + cf->n_mtp_layers;
    if (!(v->layers = dsv4_wb_alloc(c, (size_t)v->n_blocks * sizeof(dsv4_layer41), "V4.1 layers"))) return -1;
    for (int L = 0; L < v->n_blocks; L++)
        if (bind_block41(c, &v->layers[L], L)) return -1;
    if (cf->x.vision_n_layers > 0 && bind_vision(c, v)) return -1;
    m->v41 = v;
    m->n_blocks = 0;   /* the V4 block array stays empty */
    m->file_bytes = 0;
    for (size_t i = 0; i < st_count(m->st); i++) m->file_bytes += (double)st_at(m->st, i)->nbytes;
    return 0;
}

int dsv4_model_bind_v41(dsv4_model **out, const char *dir, char *err, size_t errlen) {
    if (!out || !dir) return dsv4_fail(err, errlen, "dsv4_model_bind_v41: NULL argument");
    *out = NULL;
    dsv4_model *m = calloc(1, sizeof *m);
    size_t n = strlen(dir);
    char *p = malloc(n + sizeof "/config.json");
    if (!m || !p || !(m->dir = malloc(n + 1))) {
        free(p);
        if (m) free(m->dir);
        free(m);
        return dsv4_fail(err, errlen, "%s: out of memory", dir);
    }
    memcpy(m->dir, dir, n + 1);
    memcpy(p, dir, n);
    memcpy(p + n, "/config.json", sizeof "/config.json");
    int rc = dsv4_config_load(&m->cfg, p, err, errlen);
    if (!rc && !m->cfg.x.v41)
        rc = dsv4_fail(err, errlen, "%s: not a DeepSeek-V4.1 config (no text_config / model_type deepseek_v41)", p);
    free(p);
    if (!rc) rc = st_open_dir(&m->st, dir, err, errlen);
    if (!rc) rc = dsv4_weights_bind(m, err, errlen);
    if (rc) {
        dsv4_model_free(m);
        return -1;
    }
    *out = m;
    return 0;
}
