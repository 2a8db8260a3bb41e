/* io/info.c — expected checkpoint tensor list of a config (tensor_list.h) and the weights-free summary
 * dsv4_config_info (dsv4.h). docs/architecture.md §2.1 (names), §2.2 (shapes), §2.3 (formats). */
#include "dsv4.h"
#include "io/tensor_list.h"
#include "base/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One generator, three sinks: LIST stores every spec; VISIT hands each spec to a callback (which may stop the
 * walk); SUM adds each spec into a dsv4_model_info. In SUM mode the E routed experts of a block are produced
 * once with multiplicity E (they are identical but for their names), so a summary costs O(layers), not
 * O(layers x experts): 255 layers x 65,536 experts would otherwise be 100 M specs (18 GB as a list). */
enum { TL_LIST, TL_VISIT, TL_SUM };
typedef struct {
    int mode;
    dsv4_tensor_spec *v;    /* TL_LIST */
    int cap;
    int (*visit)(const dsv4_tensor_spec *, void *); /* TL_VISIT */
    void *arg;
    int stop;               /* TL_VISIT: the callback's nonzero return */
    dsv4_model_info *sum;   /* TL_SUM */
    const dsv4_config *c;
    int64_t n;              /* specs produced so far (with multiplicity) */
    int64_t mult;           /* multiplicity of the next additions (TL_SUM: E inside the expert loop, else 1) */
    int oom;
    int layer, expert;
    unsigned flags; /* extra flags for the next additions (ROUTED/SHARED) */
} tl;

static void sum_add(tl *l, const dsv4_tensor_spec *t);

static void add(tl *l, st_dtype dt, unsigned flags, int ndim, int64_t d0, int64_t d1, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 7, 8)))
#endif
    ;

static void add(tl *l, st_dtype dt, unsigned flags, int ndim, int64_t d0, int64_t d1, const char *fmt, ...) {
    if (l->oom || l->stop) return;
    dsv4_tensor_spec one, *t = &one;
    if (l->mode == TL_LIST) {
        if (l->n == l->cap) {
            int nc = l->cap ? 2 * l->cap : 1024;
            dsv4_tensor_spec *nv = realloc(l->v, (size_t)nc * sizeof *nv);
            if (!nv) { l->oom = 1; return; }
            l->v = nv;
            l->cap = nc;
        }
        t = &l->v[l->n];
    }
    memset(t, 0, sizeof *t);
    if (l->mode != TL_SUM) { /* SUM needs no names */
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(t->name, sizeof t->name, fmt, ap);
        va_end(ap);
    }
    t->dtype = dt;
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->layer = l->layer;
    t->expert = l->expert;
    t->flags = flags | l->flags;
    l->n += l->mult;
    if (l->mode == TL_VISIT) l->stop = l->visit(t, l->arg);
    else if (l->mode == TL_SUM) sum_add(l, t);
}

static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* FP8 E4M3 linear [out, in] with its E8M0 scale grid of fp8_block x fp8_block tiles (V4 128, V4.1 32). */
static void fp8_linear(tl *l, const char *pfx, const char *name, int64_t out, int64_t in) {
    const int64_t b = l->c->fp8_block > 0 ? l->c->fp8_block : 128;
    add(l, ST_F8_E4M3, 0, 2, out, in, "%s%s.weight", pfx, name);
    add(l, ST_F8_E8M0, DSV4_TS_SCALE, 2, cdiv(out, b), cdiv(in, b), "%s%s.scale", pfx, name);
}

/* Routed-expert linear: packed FP4 (I8 [out, in/2] + E8M0 [out, in/32]) or FP8. */
static void expert_linear(tl *l, int fp8, const char *pfx, const char *name, int64_t out, int64_t in) {
    if (fp8) { fp8_linear(l, pfx, name, out, in); return; }
    add(l, ST_I8, DSV4_TS_FP4, 2, out, in / 2, "%s%s.weight", pfx, name);
    add(l, ST_F8_E8M0, DSV4_TS_SCALE, 2, out, in / 32, "%s%s.scale", pfx, name);
}

/* The two sublayer norms and the attention / FFN mHC parameters of one block under prefix pfx (V4 and V4.1). */
static void norms_and_mhc(tl *l, const dsv4_config *c, const char *pfx) {
    const int64_t D = c->dim, hc = c->hc_mult, mix = (2 + hc) * hc;
    add(l, ST_BF16, 0, 1, D, 0, "%sattn_norm.weight", pfx);
    add(l, ST_BF16, 0, 1, D, 0, "%sffn_norm.weight", pfx);
    add(l, ST_F32, 0, 2, mix, hc * D, "%shc_attn_fn", pfx);
    add(l, ST_F32, 0, 2, mix, hc * D, "%shc_ffn_fn", pfx);
    add(l, ST_F32, 0, 1, mix, 0, "%shc_attn_base", pfx);
    add(l, ST_F32, 0, 1, mix, 0, "%shc_ffn_base", pfx);
    add(l, ST_F32, 0, 1, 3, 0, "%shc_attn_scale", pfx);
    add(l, ST_F32, 0, 1, 3, 0, "%shc_ffn_scale", pfx);
}

/* The routed experts (w1, w2, w3 of E experts) and the shared expert of one block's FFN, prefix p = "...ffn.".
 * In TL_SUM mode one routed expert is visited and counted E times. V4 and V4.1 blocks alike. */
static void experts(tl *l, const dsv4_config *c, int experts_fp8, const char *p, int64_t E, int64_t I, int64_t D) {
    const int64_t ne = l->mode == TL_SUM ? 1 : E; /* SUM: one expert counted E times */
    l->mult = l->mode == TL_SUM ? E : 1;
    for (int e = 0; e < ne && !l->stop && !l->oom; e++) {
        char q[128];
        snprintf(q, sizeof q, "%sexperts.%d.", p, e);
        l->expert = e;
        l->flags = DSV4_TS_ROUTED;
        expert_linear(l, experts_fp8, q, "w1", I, D);
        expert_linear(l, experts_fp8, q, "w2", D, I);
        expert_linear(l, experts_fp8, q, "w3", I, D);
    }
    l->mult = 1;
    l->expert = -1;
    l->flags = 0;
    if (c->n_shared_experts > 0) {
        char q[112];
        snprintf(q, sizeof q, "%sshared_experts.", p);
        l->flags = DSV4_TS_SHARED;
        fp8_linear(l, q, "w1", I, D);
        fp8_linear(l, q, "w2", D, I);
        fp8_linear(l, q, "w3", I, D);
        l->flags = 0;
    }
}

/* Every tensor of one block (trunk layer or MTP block) under prefix pfx. */
static void block(tl *l, const dsv4_config *c, int experts_fp8, const char *pfx, int ratio, int hash) {
    const int64_t D = c->dim, H = c->n_heads, hd = c->head_dim, V = c->vocab_size, E = c->n_routed_experts;
    const int64_t I = c->moe_inter_dim, ql = c->q_lora_rank;
    norms_and_mhc(l, c, pfx);

    char p[96];
    snprintf(p, sizeof p, "%sattn.", pfx);
    add(l, ST_F32, 0, 1, H, 0, "%sattn_sink", p);
    fp8_linear(l, p, "wq_a", ql, D);
    add(l, ST_BF16, 0, 1, ql, 0, "%sq_norm.weight", p);
    fp8_linear(l, p, "wq_b", H * hd, ql);
    fp8_linear(l, p, "wkv", hd, D);
    add(l, ST_BF16, 0, 1, hd, 0, "%skv_norm.weight", p);
    fp8_linear(l, p, "wo_a", (int64_t)c->o_groups * c->o_lora_rank, H * hd / c->o_groups);
    fp8_linear(l, p, "wo_b", D, (int64_t)c->o_groups * c->o_lora_rank);
    if (ratio > 0) {
        const int64_t co = ratio == 4 ? 2 : 1; /* overlapping (CSA) compressors produce two halves */
        add(l, ST_BF16, 0, 2, co * hd, D, "%scompressor.wkv.weight", p);
        add(l, ST_BF16, 0, 2, co * hd, D, "%scompressor.wgate.weight", p);
        add(l, ST_F32, 0, 2, ratio, co * hd, "%scompressor.ape", p);
        add(l, ST_BF16, 0, 1, hd, 0, "%scompressor.norm.weight", p);
    }
    if (ratio == 4) {
        const int64_t ih = c->index_n_heads, id = c->index_head_dim;
        char q[112];
        snprintf(q, sizeof q, "%sindexer.", p);
        fp8_linear(l, q, "wq_b", ih * id, ql);
        add(l, ST_BF16, 0, 2, ih, D, "%sweights_proj.weight", q);
        add(l, ST_BF16, 0, 2, 2 * id, D, "%scompressor.wkv.weight", q);
        add(l, ST_BF16, 0, 2, 2 * id, D, "%scompressor.wgate.weight", q);
        add(l, ST_F32, 0, 2, 4, 2 * id, "%scompressor.ape", q);
        add(l, ST_BF16, 0, 1, id, 0, "%scompressor.norm.weight", q);
    }

    snprintf(p, sizeof p, "%sffn.", pfx);
    add(l, ST_BF16, 0, 2, E, D, "%sgate.weight", p);
    if (hash) add(l, ST_I64, DSV4_TS_ROW, 2, V, c->n_activated_experts, "%sgate.tid2eid", p);
    else add(l, ST_F32, 0, 1, E, 0, "%sgate.bias", p);
    if (dsv4_config_vision_exp(c)) {   /* Vision-Exp (docs/vision-exp.md §7): bias_vl everywhere, hash layers' bias too */
        if (hash) add(l, ST_F32, 0, 1, E, 0, "%sgate.bias", p);
        add(l, ST_F32, 0, 1, E, 0, "%sgate.bias_vl", p);
    }
    experts(l, c, experts_fp8, p, E, I, D);
}

static int in_list(const int *a, int n, int x) {
    for (int i = 0; i < n; i++) if (a[i] == x) return 1;
    return 0;
}

/* DeepSeek-V4.1 block (docs/v41.md §2.4, §4; module layout of the reference inference/model.py):
 * trunk layer L or DSpark stage (L >= n_layers). Compressor only on KV sources (ratio 2: wkv + wgate, ratio 1:
 * wkv; no ape), indexer on index sources (wq_b, weights_proj; KV sources also own wk [index_head_dim, head_dim]
 * and k_norm), no hash routing, gate.bias_vl with a vision tower, Engram on engram_layer_ids, DSpark extras. */
static void block41(tl *l, const dsv4_config *c, int experts_fp8, int L) {
    const dsv4_config_v41 *x = &c->x;
    const int dspark = L >= c->n_layers, stage = L - c->n_layers;
    const int64_t D = c->dim, H = c->n_heads, hd = c->head_dim, V = c->vocab_size;
    const int64_t E = dspark ? x->dspark_n_routed_experts : c->n_routed_experts;
    const int64_t hc = c->hc_mult, I = c->moe_inter_dim, ql = c->q_lora_rank;
    const int ratio = c->compress_ratios[L];
    char pfx[32], p[96];
    if (dspark) snprintf(pfx, sizeof pfx, "mtp.%d.", stage);
    else snprintf(pfx, sizeof pfx, "layers.%d.", L);
    norms_and_mhc(l, c, pfx);
    snprintf(p, sizeof p, "%sattn.", pfx);
    add(l, ST_F32, 0, 1, H, 0, "%sattn_sink", p);
    fp8_linear(l, p, "wq_a", ql, D);
    add(l, ST_BF16, 0, 1, ql, 0, "%sq_norm.weight", p);
    fp8_linear(l, p, "wq_b", H * hd, ql);
    fp8_linear(l, p, "wkv", hd, D);
    add(l, ST_BF16, 0, 1, hd, 0, "%skv_norm.weight", p);
    fp8_linear(l, p, "wo_a", (int64_t)c->o_groups * c->o_lora_rank, H * hd / c->o_groups); /* dequantized at use */
    fp8_linear(l, p, "wo_b", D, (int64_t)c->o_groups * c->o_lora_rank);
    const int kv_src = !dspark && in_list(x->kv_sources, x->n_kv_sources, L);
    const int idx_src = !dspark && in_list(x->index_sources, x->n_index_sources, L);
    if (kv_src) {
        add(l, ST_BF16, 0, 2, hd, D, "%scompressor.wkv.weight", p);
        if (ratio > 1) add(l, ST_BF16, 0, 2, hd, D, "%scompressor.wgate.weight", p);
        add(l, ST_BF16, 0, 1, hd, 0, "%scompressor.norm.weight", p);
    }
    if (idx_src) {
        const int64_t ih = c->index_n_heads, id = c->index_head_dim;
        char q[112];
        snprintf(q, sizeof q, "%sindexer.", p);
        fp8_linear(l, q, "wq_b", ih * id, ql);
        add(l, ST_BF16, 0, 2, ih, D, "%sweights_proj.weight", q);
        if (kv_src) {
            add(l, ST_BF16, 0, 2, id, hd, "%swk.weight", q);
            add(l, ST_BF16, 0, 1, id, 0, "%sk_norm.weight", q);
        }
    }
    snprintf(p, sizeof p, "%sffn.", pfx);
    add(l, ST_BF16, 0, 2, E, D, "%sgate.weight", p);
    add(l, ST_F32, 0, 1, E, 0, "%sgate.bias", p);
    if (x->vision_n_layers > 0) add(l, ST_F32, 0, 1, E, 0, "%sgate.bias_vl", p);
    experts(l, c, experts_fp8, p, E, I, D);
    for (int i = 0; !dspark && i < x->n_engram; i++) {
        if (x->engram_layer_ids[i] != L) continue;
        const int64_t rows = x->engram_num_embeddings[i], ed = x->engram_head_dim;
        const int64_t cols = (int64_t)(x->engram_max_ngram - 1) * x->engram_n_heads;
        snprintf(p, sizeof p, "%sengram.", pfx);
        l->flags = DSV4_TS_ENGRAM;
        add(l, ST_F8_E4M3, DSV4_TS_ROW, 2, rows, ed, "%sembed.weight", p);
        add(l, ST_F8_E8M0, DSV4_TS_ROW | DSV4_TS_SCALE, 2, rows, ed / 32, "%sembed.scale", p);
        fp8_linear(l, p, "wkv", D * (hc + 1), cols * ed);
        add(l, ST_BF16, 0, 2, hc, D, "%sq_weight", p);
        add(l, ST_BF16, 0, 2, hc, D, "%sk_weight", p);
        l->flags = 0;
    }
    if (dspark && stage == 0) {
        fp8_linear(l, pfx, "main_proj", D, D * x->n_dspark_targets);
        add(l, ST_BF16, 0, 1, D, 0, "%smain_norm.weight", pfx);
    }
    if (dspark && stage == c->n_mtp_layers - 1) {
        const int64_t r = x->dspark_markov_rank;
        add(l, ST_BF16, 0, 1, D, 0, "%snorm.weight", pfx);
        add(l, ST_BF16, DSV4_TS_ROW, 2, V, r, "%smarkov_head.embed.weight", pfx);
        add(l, ST_BF16, 0, 2, V, r, "%smarkov_head.head.weight", pfx);
        add(l, ST_BF16, 0, 2, 1, D + r, "%sconfidence_head.proj.weight", pfx);
    }
}

static int generate41(tl *l, const dsv4_config *c, int experts_fp8) {
    const int64_t D = c->dim, V = c->vocab_size;
    add(l, ST_BF16, DSV4_TS_ROW, 2, V, D, "embed.weight");
    add(l, ST_BF16, 0, 2, V, D, "head.weight");
    add(l, ST_BF16, 0, 1, D, 0, "norm.weight");
    for (int L = 0; L < c->n_layers + c->n_mtp_layers && !l->stop && !l->oom; L++) {
        l->layer = L;
        block41(l, c, experts_fp8, L);
    }
    return 0;
}

/* Every spec of config c into l (whose mode and sink the caller set), in the documented order. Returns -1 with
 * err on an impossible config, else 0 (l->oom / l->stop tell how the walk ended). */
static int generate(tl *l, const dsv4_config *c, int experts_fp8, char *err, size_t errlen) {
    if (!experts_fp8 && (c->dim % 32 || c->moe_inter_dim % 32))
        return dsv4_fail(err, errlen, "packed FP4 experts need hidden_size (%d) and moe_intermediate_size (%d) to be "
                         "multiples of 32", c->dim, c->moe_inter_dim);
    if (c->n_ratios != c->n_layers + c->n_mtp_layers)
        return dsv4_fail(err, errlen, "config has %d compress_ratios, expected %d", c->n_ratios,
                         c->n_layers + c->n_mtp_layers);
    l->c = c;
    l->layer = -1;
    l->expert = -1;
    l->mult = 1;
    if (c->x.v41) return generate41(l, c, experts_fp8);
    const int64_t D = c->dim, V = c->vocab_size, hc = c->hc_mult;
    add(l, ST_BF16, DSV4_TS_ROW, 2, V, D, "embed.weight");
    add(l, ST_BF16, 0, 2, V, D, "head.weight");
    add(l, ST_BF16, 0, 1, D, 0, "norm.weight");
    add(l, ST_F32, 0, 2, hc, hc * D, "hc_head_fn");
    add(l, ST_F32, 0, 1, hc, 0, "hc_head_base");
    add(l, ST_F32, 0, 1, 1, 0, "hc_head_scale");
    for (int L = 0; L < c->n_layers; L++) {
        char pfx[32];
        snprintf(pfx, sizeof pfx, "layers.%d.", L);
        l->layer = L;
        block(l, c, experts_fp8, pfx, c->compress_ratios[L], L < c->n_hash_layers);
    }
    for (int i = 0; i < c->n_mtp_layers; i++) {
        char pfx[32];
        snprintf(pfx, sizeof pfx, "mtp.%d.", i);
        l->layer = c->n_layers + i;
        block(l, c, experts_fp8, pfx, c->compress_ratios[c->n_layers + i], 0);
        fp8_linear(l, pfx, "e_proj", D, D);
        fp8_linear(l, pfx, "h_proj", D, D);
        add(l, ST_BF16, 0, 1, D, 0, "%senorm.weight", pfx);
        add(l, ST_BF16, 0, 1, D, 0, "%shnorm.weight", pfx);
        add(l, ST_BF16, 0, 1, D, 0, "%snorm.weight", pfx);
        add(l, ST_F32, 0, 2, hc, hc * D, "%shc_head_fn", pfx);
        add(l, ST_F32, 0, 1, hc, 0, "%shc_head_base", pfx);
        add(l, ST_F32, 0, 1, 1, 0, "%shc_head_scale", pfx);
    }
    return 0;
}

int dsv4_tensor_list(const dsv4_config *c, int experts_fp8, dsv4_tensor_spec **out, int *n, char *err,
                     size_t errlen) {
    *out = NULL;
    *n = 0;
    tl l = {0};
    l.mode = TL_LIST;
    if (generate(&l, c, experts_fp8, err, errlen)) { free(l.v); return -1; }
    if (l.oom) {
        free(l.v);
        return dsv4_fail(err, errlen, "tensor list: out of memory");
    }
    *out = l.v;
    *n = (int)l.n;
    return 0;
}

int dsv4_tensor_list_each(const dsv4_config *c, int experts_fp8, int (*visit)(const dsv4_tensor_spec *, void *),
                          void *arg, char *err, size_t errlen) {
    tl l = {0};
    l.mode = TL_VISIT;
    l.visit = visit;
    l.arg = arg;
    if (generate(&l, c, experts_fp8, err, errlen)) return -1;
    return l.stop;
}

void dsv4_tensor_list_free(dsv4_tensor_spec *list) { free(list); }

int64_t dsv4_tensor_spec_numel(const dsv4_tensor_spec *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

static int info_bucket(const dsv4_tensor_spec *t) {
    if (t->flags & DSV4_TS_FP4) return DSV4_INFO_FP4;
    switch (t->dtype) {
    case ST_BF16: return DSV4_INFO_BF16;
    case ST_F32: return DSV4_INFO_F32;
    case ST_F8_E4M3: return DSV4_INFO_F8_E4M3;
    case ST_F8_E8M0: return DSV4_INFO_F8_E8M0;
    case ST_I64: return DSV4_INFO_I64;
    default: return DSV4_INFO_OTHER;
    }
}

/* TL_SUM: spec t, produced l->mult times, into l->sum. Every count is an integer below 2^53 for the configs of
 * io/config.h except the per-token ones (a fraction num_experts_per_tok / n_routed_experts of each expert). */
static void sum_add(tl *l, const dsv4_tensor_spec *t) {
    dsv4_model_info *out = l->sum;
    const dsv4_config *c = l->c;
    const double m = (double)l->mult;
    double numel = (double)dsv4_tensor_spec_numel(t);
    double bytes = numel * (double)st_dtype_size(t->dtype) * m;
    double params = (t->flags & DSV4_TS_SCALE) ? 0 : numel * ((t->flags & DSV4_TS_FP4) ? 2 : 1) * m;
    out->bytes_total += bytes;
    out->bytes_by_dtype[info_bucket(t)] += bytes;
    out->n_params += params;
    if (t->layer >= c->n_layers) { /* MTP / DSpark: not part of decoding one token */
        out->n_params_mtp += params;
        return;
    }
    double f = 1.0;
    if (t->flags & DSV4_TS_ROUTED) f = (double)c->n_activated_experts / (double)c->n_routed_experts; /* top-k */
    else if ((t->flags & DSV4_TS_ENGRAM) && (t->flags & DSV4_TS_ROW)) {
        /* an Engram table: one row per hash column per token (rows, not the table) */
        const double cols = (double)(c->x.engram_max_ngram - 1) * c->x.engram_n_heads;
        f = cols / (double)t->shape[0];
        if (!(t->flags & DSV4_TS_SCALE)) out->engram_rows_per_token += cols;
    } else if (t->flags & DSV4_TS_ROW) f = 1.0 / (double)t->shape[0]; /* one row of a lookup table */
    if (t->flags & DSV4_TS_ENGRAM) {
        out->n_params_engram += params;
        out->bytes_per_token_engram += bytes * f;
    }
    out->bytes_per_token += bytes * f;
    out->n_params_active += params * f;
}

int dsv4_tensor_summary(const dsv4_config *cp, int experts_fp8, dsv4_model_info *out, int64_t *n_tensors, char *err,
                        size_t errlen) {
    const dsv4_config c = *cp;
    memset(out, 0, sizeof *out);
    if (n_tensors) *n_tensors = 0;
    out->vocab_size = c.vocab_size;
    out->dim = c.dim;
    out->n_layers = c.n_layers;
    out->n_mtp_layers = c.n_mtp_layers;
    out->n_heads = c.n_heads;
    out->head_dim = c.head_dim;
    out->n_routed_experts = c.n_routed_experts;
    out->n_activated_experts = c.n_activated_experts;
    out->n_hash_layers = c.n_hash_layers;
    out->bos_token_id = c.bos_token_id;
    out->eos_token_id = c.eos_token_id;
    out->v41 = c.x.v41;
    out->n_engram_layers = c.x.n_engram;
    for (int L = 0; L < c.n_layers; L++) {
        int r = c.compress_ratios[L];
        if (r == 0) out->n_window_layers++;
        else if (c.x.v41) out->n_csa2_layers[r == 1]++;
        else if (r == 4) out->n_csa_layers++;
        else out->n_hca_layers++;
    }
    tl l = {0};
    l.mode = TL_SUM;
    l.sum = out;
    if (generate(&l, cp, experts_fp8, err, errlen)) return -1;
    if (n_tensors) *n_tensors = l.n;
    return 0;
}

int dsv4_config_info(const char *dir, dsv4_model_info *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    /* `dir` is a model directory; a path to a .json file is accepted as the config itself. */
    size_t dl = strlen(dir);
    char *path = malloc(dl + 16);
    if (!path) return dsv4_fail(err, errlen, "%s: out of memory", dir);
    if (dl >= 5 && strcmp(dir + dl - 5, ".json") == 0) memcpy(path, dir, dl + 1);
    else snprintf(path, dl + 16, "%s%sconfig.json", dir, dl && dir[dl - 1] == '/' ? "" : "/");
    dsv4_config c;
    int rc = dsv4_config_load(&c, path, err, errlen);
    free(path);
    if (rc) return -1;

    return dsv4_tensor_summary(&c, c.expert_fp8, out, NULL, err, errlen);
}
