/* io/config_v41.c — the DeepSeek-V4.1 parts of config.json (docs/v41.md §1, §4; see config.h).
 * The text keys shared with V4 were already parsed from text_config by config.c; this file reads the rest and
 * checks the V4.1 structure (which layers own a compressor / an indexer, candidate source, Engram, DSpark). */
#include "io/config.h"
#include "base/util.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    const char *path, *pfx;
    const cJSON *obj;
    char *err;
    size_t errlen;
} vctx;

/* integer key (range [lo, hi]); absent -> def when !required */
static int vint(vctx *v, const char *key, int required, long long def, long long lo, long long hi, long long *out) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(v->obj, key);
    if (!j || cJSON_IsNull(j)) {
        if (required) return dsv4_fail(v->err, v->errlen, "%s: missing key '%s%s'", v->path, v->pfx, key);
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(j) || j->valuedouble != floor(j->valuedouble))
        return dsv4_fail(v->err, v->errlen, "%s: key '%s%s' must be an integer", v->path, v->pfx, key);
    if (j->valuedouble < (double)lo || j->valuedouble > (double)hi)
        return dsv4_fail(v->err, v->errlen, "%s: key '%s%s' is %.0f, outside [%lld, %lld]", v->path, v->pfx, key,
                         j->valuedouble, lo, hi);
    *out = (long long)j->valuedouble;
    return 0;
}

static int vi(vctx *v, const char *key, int required, int def, long long lo, long long hi, int *out) {
    long long x = 0;
    if (vint(v, key, required, def, lo, hi, &x)) return -1;
    *out = (int)x;
    return 0;
}

/* integer array key: at most cap entries, each in [lo, hi]; absent -> *n = 0 unless required */
static int varr(vctx *v, const char *key, int required, int cap, long long lo, long long hi, long long *out, int *n) {
    *n = 0;
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(v->obj, key);
    if (!j || cJSON_IsNull(j)) {
        if (required) return dsv4_fail(v->err, v->errlen, "%s: missing key '%s%s'", v->path, v->pfx, key);
        return 0;
    }
    if (!cJSON_IsArray(j)) return dsv4_fail(v->err, v->errlen, "%s: key '%s%s' must be an array", v->path, v->pfx, key);
    int k = 0;
    for (const cJSON *e = j->child; e; e = e->next, k++) {
        if (k >= cap)
            return dsv4_fail(v->err, v->errlen, "%s: key '%s%s' has more than %d entries (supported maximum)", v->path,
                             v->pfx, key, cap);
        if (!cJSON_IsNumber(e) || e->valuedouble != floor(e->valuedouble) || e->valuedouble < (double)lo ||
            e->valuedouble > (double)hi)
            return dsv4_fail(v->err, v->errlen, "%s: key '%s%s' entry %d must be an integer in [%lld, %lld]", v->path,
                             v->pfx, key, k, lo, hi);
        out[k] = (long long)e->valuedouble;
    }
    *n = k;
    return 0;
}

static int ascending(vctx *v, const char *key, const long long *a, int n) {
    for (int i = 1; i < n; i++)
        if (a[i] <= a[i - 1])
            return dsv4_fail(v->err, v->errlen, "%s: key '%s%s' must be strictly ascending (entry %d is %lld after "
                             "%lld)", v->path, v->pfx, key, i, a[i], a[i - 1]);
    return 0;
}

static int contains(const int *a, int n, int x) {
    for (int i = 0; i < n; i++) if (a[i] == x) return 1;
    return 0;
}

int dsv4_config_v41_parse(dsv4_config *c, const cJSON *root, const cJSON *tc, const char *path, char *err,
                          size_t errlen) {
    dsv4_config_v41 *x = &c->x;
    memset(x, 0, sizeof *x);
    x->v41 = 1;
    const int L = c->n_layers;
    vctx top = {path, "", root, err, errlen}, t = {path, "text_config.", tc, err, errlen};

    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (mt && (!cJSON_IsString(mt) || strcmp(mt->valuestring, "deepseek_v41") != 0))
        return dsv4_fail(err, errlen, "%s: key 'model_type' must be \"deepseek_v41\" for a config with text_config, "
                         "found %s", path, cJSON_IsString(mt) ? mt->valuestring : "a non-string");
    /* top-level ids override text_config's (the HF layout keeps them at the top) */
    if (vi(&top, "bos_token_id", 0, c->bos_token_id, 0, c->vocab_size - 1, &c->bos_token_id) ||
        vi(&top, "eos_token_id", 0, c->eos_token_id, 0, c->vocab_size - 1, &c->eos_token_id) ||
        vi(&top, "image_token_id", 0, -1, -1, c->vocab_size - 1, &x->image_token_id))
        return -1;

    /* quantization_config: 32x32 UE8M0 tiles, expert dtype */
    c->fp8_block = 32;
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(root, "quantization_config");
    if (q && !cJSON_IsNull(q)) {
        if (!cJSON_IsObject(q)) return dsv4_fail(err, errlen, "%s: key 'quantization_config' must be an object", path);
        vctx qv = {path, "quantization_config.", q, err, errlen};
        long long wb[2];
        int nwb;
        if (varr(&qv, "weight_block_size", 0, 2, 1, 1 << 20, wb, &nwb)) return -1;
        if (nwb) {
            if (nwb != 2 || wb[0] != wb[1] || (wb[0] != 32 && wb[0] != 128))
                return dsv4_fail(err, errlen, "%s: key 'quantization_config.weight_block_size' must be [32, 32] or "
                                 "[128, 128]", path);
            c->fp8_block = (int)wb[0];
        }
        const cJSON *sf = cJSON_GetObjectItemCaseSensitive(q, "scale_fmt");
        if (sf && !cJSON_IsNull(sf) && (!cJSON_IsString(sf) || strcmp(sf->valuestring, "ue8m0") != 0))
            return dsv4_fail(err, errlen, "%s: key 'quantization_config.scale_fmt' must be \"ue8m0\"", path);
        const cJSON *ed = cJSON_GetObjectItemCaseSensitive(q, "expert_dtype");
        if (ed && !cJSON_IsNull(ed)) {
            if (!cJSON_IsString(ed) || (strcmp(ed->valuestring, "fp4") && strcmp(ed->valuestring, "fp8")))
                return dsv4_fail(err, errlen, "%s: key 'quantization_config.expert_dtype' must be \"fp4\" or \"fp8\"",
                                 path);
            c->expert_dtype_given = 1;
            c->expert_fp8 = strcmp(ed->valuestring, "fp8") == 0;
        }
    }
    if (c->n_hash_layers)
        return dsv4_fail(err, errlen, "%s: key 'text_config.num_hash_layers' must be 0 for DeepSeek-V4.1 (no hash "
                         "routing), found %d", path, c->n_hash_layers);

    /* compress ratios: 0 (window), 1, 2 in the trunk; DSpark blocks window-only */
    for (int i = 0; i < c->n_ratios; i++) {
        int r = c->compress_ratios[i];
        if (r > 2 || (i >= L && r != 0))
            return dsv4_fail(err, errlen, "%s: key 'text_config.compress_ratios' entry %d is %d: DeepSeek-V4.1 layers "
                             "use 0, 1 or 2 and DSpark blocks 0", path, i, r);
    }

    /* CSA2 sharing */
    long long a[DSV4_MAX_LAYERS];
    int n;
    if (varr(&t, "kv_source_layer_ids", 0, DSV4_MAX_LAYERS, 0, L - 1, a, &n) ||
        ascending(&t, "kv_source_layer_ids", a, n))
        return -1;
    x->n_kv_sources = n;
    for (int i = 0; i < n; i++) x->kv_sources[i] = (int)a[i];
    if (varr(&t, "index_source_layer_ids", 0, DSV4_MAX_LAYERS, 0, L - 1, a, &n) ||
        ascending(&t, "index_source_layer_ids", a, n))
        return -1;
    x->n_index_sources = n;
    for (int i = 0; i < n; i++) x->index_sources[i] = (int)a[i];
    int last_kv = -1, last_idx = -1;
    for (int l = 0; l < L; l++) {
        int r = c->compress_ratios[l];
        int is_kv = contains(x->kv_sources, x->n_kv_sources, l), is_idx = contains(x->index_sources, x->n_index_sources, l);
        if ((is_kv || is_idx) && r == 0)
            return dsv4_fail(err, errlen, "%s: layer %d is in text_config.%s but its compress ratio is 0", path, l,
                             is_kv ? "kv_source_layer_ids" : "index_source_layer_ids");
        if (is_kv) last_kv = l;
        if (is_idx) last_idx = l;
        if (r == 0) continue;
        /* the reference reads the most recent KV source that ran and the top-k of the most recent index source */
        if (last_kv < 0)
            return dsv4_fail(err, errlen, "%s: layer %d (compress ratio %d) has no KV source at or below it "
                             "(text_config.kv_source_layer_ids)", path, l, r);
        if (c->compress_ratios[last_kv] != r)
            return dsv4_fail(err, errlen, "%s: layer %d (compress ratio %d) would read the compressed KV of layer %d "
                             "(ratio %d): text_config.kv_source_layer_ids must start every run of a ratio", path, l, r,
                             last_kv, c->compress_ratios[last_kv]);
        if (last_idx < 0 || c->compress_ratios[last_idx] != r)
            return dsv4_fail(err, errlen, "%s: layer %d (compress ratio %d) has no index source of its ratio at or "
                             "below it (text_config.index_source_layer_ids)", path, l, r);
    }
    if (vi(&t, "candidate_source_layer_id", 0, -1, -1, L - 1, &x->candidate_source)) return -1;
    if (x->candidate_source >= 0) {
        if (!contains(x->index_sources, x->n_index_sources, x->candidate_source))
            return dsv4_fail(err, errlen, "%s: key 'text_config.candidate_source_layer_id' (%d) must be an index source",
                             path, x->candidate_source);
        if (vi(&t, "candidate_topk_blocks", 1, 0, 1, 1 << 24, &x->candidate_topk_blocks) ||
            vi(&t, "candidate_block_size", 1, 0, 1, 1 << 20, &x->candidate_block_size))
            return -1;
    }

    /* Engram */
    if (varr(&t, "engram_layer_ids", 0, DSV4_MAX_ENGRAM, 0, L - 1, a, &n) || ascending(&t, "engram_layer_ids", a, n))
        return -1;
    x->n_engram = n;
    for (int i = 0; i < n; i++) x->engram_layer_ids[i] = (int)a[i];
    if (n) {
        int ne;
        if (varr(&t, "engram_num_embeddings", 1, DSV4_MAX_ENGRAM, 1, (long long)1 << 40, x->engram_num_embeddings, &ne))
            return -1;
        if (ne != n)
            return dsv4_fail(err, errlen, "%s: key 'text_config.engram_num_embeddings' has %d entries, "
                             "engram_layer_ids %d", path, ne, n);
        if (vi(&t, "engram_max_ngram_size", 1, 0, 2, 8, &x->engram_max_ngram) ||
            vi(&t, "engram_vocab_size", 1, 0, 2, 1LL << 31, &x->engram_vocab_size) ||
            vi(&t, "engram_n_heads", 1, 0, 1, 64, &x->engram_n_heads) ||
            vi(&t, "engram_head_dim", 1, 0, 32, 1 << 16, &x->engram_head_dim) ||
            vi(&t, "engram_pad_token_id", 0, 2, 0, c->vocab_size - 1, &x->engram_pad_token_id) ||
            vi(&t, "engram_compressed_vocab_size", 1, 0, 1, 1 << 29, &x->engram_compressed_vocab))
            return -1;
        if (x->engram_head_dim % 32)
            return dsv4_fail(err, errlen, "%s: key 'text_config.engram_head_dim' (%d) must be a multiple of 32 (one "
                             "E8M0 scale per 32 values)", path, x->engram_head_dim);
        if ((x->engram_max_ngram - 1) * x->engram_n_heads > 64)
            return dsv4_fail(err, errlen, "%s: keys 'text_config.engram_max_ngram_size' x 'engram_n_heads': more than "
                             "64 hash columns", path);
        for (int i = 0; i < n; i++)
            if (x->engram_layer_ids[i] == 0)
                return dsv4_fail(err, errlen, "%s: key 'text_config.engram_layer_ids': layer 0 cannot carry an Engram "
                                 "(it runs between blocks)", path);
    }

    /* DSpark (the num_nextn_predict_layers blocks) */
    if (c->n_mtp_layers > 0) {
        if (vi(&t, "dspark_block_size", 1, 0, 1, 1 << 10, &x->dspark_block_size) ||
            vi(&t, "dspark_noise_token_id", 1, 0, 0, c->vocab_size - 1, &x->dspark_noise_token_id) ||
            vi(&t, "dspark_markov_rank", 0, 256, 1, 1 << 16, &x->dspark_markov_rank) ||
            vi(&t, "dspark_n_routed_experts", 0, c->n_routed_experts, 1, 65536, &x->dspark_n_routed_experts) ||
            vi(&t, "dspark_num_experts_per_tok", 0, c->n_activated_experts, 1, 65536,
               &x->dspark_n_activated_experts))
            return -1;
        if (x->dspark_n_activated_experts > x->dspark_n_routed_experts)
            return dsv4_fail(err, errlen, "%s: key 'text_config.dspark_num_experts_per_tok' (%d) exceeds "
                             "dspark_n_routed_experts (%d)", path, x->dspark_n_activated_experts,
                             x->dspark_n_routed_experts);
        if (varr(&t, "dspark_target_layer_ids", 1, DSV4_MAX_DSPARK_TARGETS, 0, L - 1, a, &n) ||
            ascending(&t, "dspark_target_layer_ids", a, n))
            return -1;
        if (n == 0) return dsv4_fail(err, errlen, "%s: key 'text_config.dspark_target_layer_ids' is empty", path);
        x->n_dspark_targets = n;
        for (int i = 0; i < n; i++) x->dspark_target_layer_ids[i] = (int)a[i];
        if ((long long)n * c->dim > 2147483647LL)
            return dsv4_fail(err, errlen, "%s: dspark_target_layer_ids x hidden_size exceeds 2^31 - 1", path);
    }

    /* vision_config (used by the vision issue; parsed and bounded here) */
    const cJSON *vc = cJSON_GetObjectItemCaseSensitive(root, "vision_config");
    if (vc && !cJSON_IsNull(vc)) {
        if (!cJSON_IsObject(vc)) return dsv4_fail(err, errlen, "%s: key 'vision_config' must be an object", path);
        vctx v = {path, "vision_config.", vc, err, errlen};
        if (vi(&v, "num_hidden_layers", 1, 0, 0, 1024, &x->vision_n_layers)) return -1;
        if (x->vision_n_layers > 0) {
            if (vi(&v, "hidden_size", 1, 0, 1, 1 << 16, &x->vision_dim) ||
                vi(&v, "num_attention_heads", 1, 0, 1, 1024, &x->vision_n_heads) ||
                vi(&v, "intermediate_size", 1, 0, 1, 1 << 18, &x->vision_inter_dim) ||
                vi(&v, "patch_size", 1, 0, 1, 1024, &x->vision_patch_size) ||
                vi(&v, "downsample_ratio", 0, 1, 1, 64, &x->vision_downsample_ratio) ||
                vi(&v, "max_image_tokens", 0, 0, 0, 1 << 20, &x->vision_max_n_token) ||
                vi(&v, "min_pixels", 0, 0, 0, 1 << 30, &x->vision_min_pixels))
                return -1;
            if (x->vision_dim % x->vision_n_heads)
                return dsv4_fail(err, errlen, "%s: key 'vision_config.num_attention_heads' (%d) must divide "
                                 "hidden_size (%d)", path, x->vision_n_heads, x->vision_dim);
            const cJSON *rt = cJSON_GetObjectItemCaseSensitive(vc, "rope_theta");
            x->vision_rope_theta = cJSON_IsNumber(rt) ? (float)rt->valuedouble : 10000.0f;
            if (x->image_token_id < 0)
                return dsv4_fail(err, errlen, "%s: missing key 'image_token_id' (needed with a vision tower)", path);
        }
    }
    return 0;
}
