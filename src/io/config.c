/* io/config.c — HF config.json -> dsv4_config (see config.h; docs/architecture.md §1.1).
 * Every error names the file and the key at fault. */
#include "io/config.h"
#include "base/util.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *jtype(const cJSON *v) {
    if (!v) return "nothing";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "an invalid value";
}

typedef struct {
    const char *path;
    const cJSON *obj;
    const char *prefix; /* "" or "rope_scaling." for nested keys */
    char *err;
    size_t errlen;
} ctx;

/* Integer key. required: missing -> error; else *out = def. */
static int get_int(ctx *c, const char *key, int required, int def, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->obj, key);
    if (!v || cJSON_IsNull(v)) {
        if (required) return dsv4_fail(c->err, c->errlen, "%s: missing key '%s%s'", c->path, c->prefix, key);
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(v))
        return dsv4_fail(c->err, c->errlen, "%s: key '%s%s' must be an integer, found %s", c->path, c->prefix, key,
                         jtype(v));
    double d = v->valuedouble;
    if (!(d >= -2147483648.0 && d <= 2147483647.0) || d != floor(d))
        return dsv4_fail(c->err, c->errlen, "%s: key '%s%s' must be an integer, found %g", c->path, c->prefix, key, d);
    *out = (int)d;
    return 0;
}

static int get_float(ctx *c, const char *key, int required, float def, float *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->obj, key);
    if (!v || cJSON_IsNull(v)) {
        if (required) return dsv4_fail(c->err, c->errlen, "%s: missing key '%s%s'", c->path, c->prefix, key);
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(v))
        return dsv4_fail(c->err, c->errlen, "%s: key '%s%s' must be a number, found %s", c->path, c->prefix, key,
                         jtype(v));
    if (!isfinite(v->valuedouble))
        return dsv4_fail(c->err, c->errlen, "%s: key '%s%s' must be finite", c->path, c->prefix, key);
    *out = (float)v->valuedouble;
    return 0;
}

static int positive(ctx *c, const char *key, long v) {
    if (v > 0) return 0;
    return dsv4_fail(c->err, c->errlen, "%s: key '%s' must be positive, found %ld", c->path, key, v);
}

static int at_most(ctx *c, const char *key, long v, long max) {
    if (v <= max) return 0;
    return dsv4_fail(c->err, c->errlen, "%s: key '%s' is %ld, above the supported maximum %ld (io/config.h)", c->path,
                     key, v, max);
}

/* prefix: "" for a V4 config, "text_config." when root is V4.1's nested text_config (names keys in errors) */
static int parse(dsv4_config *cfg, const cJSON *root, const char *prefix, const char *path, char *err,
                 size_t errlen) {
    ctx c = {path, root, prefix, err, errlen};
    memset(cfg, 0, sizeof *cfg);
    cfg->fp8_block = 128;
#define REQ(key, field) if (get_int(&c, key, 1, 0, &cfg->field)) return -1
#define OPT(key, field, def) if (get_int(&c, key, 0, def, &cfg->field)) return -1
#define REQF(key, field) if (get_float(&c, key, 1, 0, &cfg->field)) return -1
#define OPTF(key, field, def) if (get_float(&c, key, 0, def, &cfg->field)) return -1
    REQ("vocab_size", vocab_size);
    REQ("hidden_size", dim);
    REQ("num_hidden_layers", n_layers);
    OPT("num_nextn_predict_layers", n_mtp_layers, 0);
    REQ("num_attention_heads", n_heads);
    REQ("head_dim", head_dim);
    REQ("qk_rope_head_dim", rope_dim);
    REQ("q_lora_rank", q_lora_rank);
    REQ("o_groups", o_groups);
    REQ("o_lora_rank", o_lora_rank);
    REQ("moe_intermediate_size", moe_inter_dim);
    REQ("n_routed_experts", n_routed_experts);
    REQ("n_shared_experts", n_shared_experts);
    REQ("num_experts_per_tok", n_activated_experts);
    OPT("num_hash_layers", n_hash_layers, 0);
    REQ("sliding_window", window_size);
    OPT("hc_mult", hc_mult, 4);
    OPT("hc_sinkhorn_iters", hc_sinkhorn_iters, 20);
    OPTF("hc_eps", hc_eps, 1e-6f);
    OPTF("rms_norm_eps", norm_eps, 1e-6f);
    OPTF("routed_scaling_factor", route_scale, 1.0f);
    OPTF("swiglu_limit", swiglu_limit, 0.0f);
    REQF("rope_theta", rope_theta);
    OPTF("compress_rope_theta", compress_rope_theta, cfg->rope_theta);
    REQ("max_position_embeddings", max_position_embeddings);
    OPT("bos_token_id", bos_token_id, 0);
    OPT("eos_token_id", eos_token_id, 1);

    /* expert_dtype */
    const cJSON *ed = cJSON_GetObjectItemCaseSensitive(root, "expert_dtype");
    if (ed && !cJSON_IsNull(ed)) {
        cfg->expert_dtype_given = 1;
        if (!cJSON_IsString(ed))
            return dsv4_fail(err, errlen, "%s: key 'expert_dtype' must be a string, found %s", path, jtype(ed));
        if (strcmp(ed->valuestring, "fp8") == 0) cfg->expert_fp8 = 1;
        else if (strcmp(ed->valuestring, "fp4") != 0)
            return dsv4_fail(err, errlen, "%s: key 'expert_dtype' must be \"fp4\" or \"fp8\", found \"%s\"", path,
                             ed->valuestring);
    }

    /* rope_scaling */
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    if (rs && !cJSON_IsNull(rs)) {
        if (!cJSON_IsObject(rs))
            return dsv4_fail(err, errlen, "%s: key 'rope_scaling' must be an object, found %s", path, jtype(rs));
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(rs, "type");
        if (!ty) ty = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
        if (!cJSON_IsString(ty))
            return dsv4_fail(err, errlen, "%s: key 'rope_scaling.type' must be a string, found %s", path, jtype(ty));
        if (strcmp(ty->valuestring, "yarn") != 0)
            return dsv4_fail(err, errlen, "%s: key 'rope_scaling.type': unsupported value \"%s\" (only \"yarn\")",
                             path, ty->valuestring);
        ctx r = {path, rs, "rope_scaling.", err, errlen};
        cfg->yarn = 1;
        if (get_float(&r, "factor", 1, 0, &cfg->rope_factor)) return -1;
        if (get_int(&r, "original_max_position_embeddings", 1, 0, &cfg->original_seq_len)) return -1;
        if (get_float(&r, "beta_fast", 0, 32.0f, &cfg->beta_fast)) return -1;
        if (get_float(&r, "beta_slow", 0, 1.0f, &cfg->beta_slow)) return -1;
        if (!(cfg->rope_factor > 0))
            return dsv4_fail(err, errlen, "%s: key 'rope_scaling.factor' must be positive, found %g", path,
                             (double)cfg->rope_factor);
        if (cfg->original_seq_len <= 0)
            return dsv4_fail(err, errlen, "%s: key 'rope_scaling.original_max_position_embeddings' must be positive, "
                             "found %d", path, cfg->original_seq_len);
        if (!(cfg->beta_fast > cfg->beta_slow && cfg->beta_slow > 0))
            return dsv4_fail(err, errlen, "%s: key 'rope_scaling': need beta_fast > beta_slow > 0, found %g and %g",
                             path, (double)cfg->beta_fast, (double)cfg->beta_slow);
    } else {
        cfg->rope_factor = 1.0f;
        cfg->original_seq_len = cfg->max_position_embeddings;
    }

    /* dimension checks: every size positive and within its documented bound (config.h) */
    static const struct { const char *key; size_t off; long max; } B[] = {
#define F(k, f, mx) {k, offsetof(dsv4_config, f), mx}
        F("vocab_size", vocab_size, DSV4_MAX_VOCAB),        F("hidden_size", dim, DSV4_MAX_DIM),
        F("num_hidden_layers", n_layers, DSV4_MAX_LAYERS - 1), F("num_attention_heads", n_heads, DSV4_MAX_HEADS),
        F("head_dim", head_dim, DSV4_MAX_DIM),              F("qk_rope_head_dim", rope_dim, DSV4_MAX_DIM),
        F("q_lora_rank", q_lora_rank, DSV4_MAX_DIM),        F("o_groups", o_groups, DSV4_MAX_HEADS),
        F("o_lora_rank", o_lora_rank, DSV4_MAX_DIM),        F("moe_intermediate_size", moe_inter_dim, DSV4_MAX_DIM),
        F("n_routed_experts", n_routed_experts, DSV4_MAX_EXPERTS),
        F("num_experts_per_tok", n_activated_experts, DSV4_MAX_EXPERTS),
        F("sliding_window", window_size, DSV4_MAX_WINDOW),
        F("max_position_embeddings", max_position_embeddings, 2147483647L),
        F("hc_mult", hc_mult, DSV4_MAX_HC),                 F("hc_sinkhorn_iters", hc_sinkhorn_iters, DSV4_MAX_SINKHORN),
#undef F
    };
    for (size_t i = 0; i < sizeof B / sizeof B[0]; i++) {
        int v;
        memcpy(&v, (const char *)cfg + B[i].off, sizeof v);
        if (positive(&c, B[i].key, v) || at_most(&c, B[i].key, v, B[i].max)) return -1;
    }
    if (cfg->n_mtp_layers < 0)
        return dsv4_fail(err, errlen, "%s: key 'num_nextn_predict_layers' must be >= 0, found %d", path,
                         cfg->n_mtp_layers);
    if (cfg->n_shared_experts != 0 && cfg->n_shared_experts != 1)
        return dsv4_fail(err, errlen, "%s: key 'n_shared_experts' must be 0 or 1, found %d", path,
                         cfg->n_shared_experts);
    if (cfg->n_activated_experts > cfg->n_routed_experts)
        return dsv4_fail(err, errlen, "%s: key 'num_experts_per_tok' (%d) exceeds 'n_routed_experts' (%d)", path,
                         cfg->n_activated_experts, cfg->n_routed_experts);
    if (cfg->n_hash_layers < 0 || cfg->n_hash_layers > cfg->n_layers)
        return dsv4_fail(err, errlen, "%s: key 'num_hash_layers' must be in [0, num_hidden_layers=%d], found %d", path,
                         cfg->n_layers, cfg->n_hash_layers);
    if (cfg->rope_dim % 2)
        return dsv4_fail(err, errlen, "%s: key 'qk_rope_head_dim' must be even, found %d", path, cfg->rope_dim);
    if (cfg->head_dim <= cfg->rope_dim)
        return dsv4_fail(err, errlen, "%s: key 'head_dim' (%d) must exceed 'qk_rope_head_dim' (%d)", path,
                         cfg->head_dim, cfg->rope_dim);
    if (cfg->head_dim % 32)   /* attention scores run as pair-lane GEMMs over whole 32-element chunks */
        return dsv4_fail(err, errlen, "%s: key 'head_dim' (%d) must be a multiple of 32 (dsv4 kernels; V4 uses 512)",
                         path, cfg->head_dim);
    if (cfg->n_heads % cfg->o_groups)
        return dsv4_fail(err, errlen, "%s: key 'o_groups' (%d) must divide 'num_attention_heads' (%d)", path,
                         cfg->o_groups, cfg->n_heads);
    if (cfg->bos_token_id < 0 || cfg->bos_token_id >= cfg->vocab_size)
        return dsv4_fail(err, errlen, "%s: key 'bos_token_id' (%d) outside [0, vocab_size=%d)", path,
                         cfg->bos_token_id, cfg->vocab_size);
    if (cfg->eos_token_id < 0 || cfg->eos_token_id >= cfg->vocab_size)
        return dsv4_fail(err, errlen, "%s: key 'eos_token_id' (%d) outside [0, vocab_size=%d)", path,
                         cfg->eos_token_id, cfg->vocab_size);
    if (!(cfg->rope_theta > 0) || !(cfg->compress_rope_theta > 0))
        return dsv4_fail(err, errlen, "%s: key '%s' must be positive", path,
                         cfg->rope_theta > 0 ? "compress_rope_theta" : "rope_theta");
    if (!(cfg->norm_eps > 0))
        return dsv4_fail(err, errlen, "%s: key 'rms_norm_eps' must be positive, found %g", path, (double)cfg->norm_eps);
    if (cfg->hc_eps < 0)
        return dsv4_fail(err, errlen, "%s: key 'hc_eps' must be >= 0, found %g", path, (double)cfg->hc_eps);
    if (cfg->swiglu_limit < 0)
        return dsv4_fail(err, errlen, "%s: key 'swiglu_limit' must be >= 0, found %g", path,
                         (double)cfg->swiglu_limit);
    if (!(cfg->route_scale > 0))
        return dsv4_fail(err, errlen, "%s: key 'routed_scaling_factor' must be positive, found %g", path,
                         (double)cfg->route_scale);

    /* compress_ratios */
    long total = (long)cfg->n_layers + cfg->n_mtp_layers;
    if (total > DSV4_MAX_LAYERS)
        return dsv4_fail(err, errlen, "%s: num_hidden_layers + num_nextn_predict_layers = %ld exceeds the supported "
                         "maximum %d", path, total, DSV4_MAX_LAYERS);
    const cJSON *cr = cJSON_GetObjectItemCaseSensitive(root, "compress_ratios");
    if (!cr) return dsv4_fail(err, errlen, "%s: missing key 'compress_ratios'", path);
    if (!cJSON_IsArray(cr))
        return dsv4_fail(err, errlen, "%s: key 'compress_ratios' must be an array, found %s", path, jtype(cr));
    int nr = cJSON_GetArraySize(cr);
    if (nr != total)
        return dsv4_fail(err, errlen, "%s: key 'compress_ratios' has %d entries, expected %ld (num_hidden_layers + "
                         "num_nextn_predict_layers)", path, nr, total);
    cfg->n_ratios = nr;
    int k = 0, any_csa = 0;
    for (const cJSON *e = cr->child; e; e = e->next, k++) {
        double d = cJSON_IsNumber(e) ? e->valuedouble : -1;
        if (!cJSON_IsNumber(e) || d != floor(d) || d < 0)
            return dsv4_fail(err, errlen, "%s: key 'compress_ratios' entry %d must be a non-negative integer, found %s",
                             path, k, cJSON_IsNumber(e) ? "a negative or fractional number" : jtype(e));
        if (d > DSV4_MAX_RATIO)
            return dsv4_fail(err, errlen, "%s: key 'compress_ratios' entry %d is %.0f, above the supported maximum %d "
                             "(io/config.h)", path, k, d, DSV4_MAX_RATIO);
        cfg->compress_ratios[k] = (int)d;
        /* V4 indexes ratio-4 (CSA) layers; V4.1 (prefix "text_config.") every compressed layer */
        if (cfg->compress_ratios[k] == 4 || (prefix[0] && cfg->compress_ratios[k] > 0)) any_csa = 1;
    }
    if (get_int(&c, "index_n_heads", any_csa, 0, &cfg->index_n_heads) ||
        get_int(&c, "index_head_dim", any_csa, 0, &cfg->index_head_dim) ||
        get_int(&c, "index_topk", any_csa, 0, &cfg->index_topk))
        return -1;
    if (any_csa) {
        if (positive(&c, "index_n_heads", cfg->index_n_heads) || positive(&c, "index_head_dim", cfg->index_head_dim) ||
            positive(&c, "index_topk", cfg->index_topk) ||
            at_most(&c, "index_n_heads", cfg->index_n_heads, DSV4_MAX_HEADS) ||
            at_most(&c, "index_head_dim", cfg->index_head_dim, DSV4_MAX_DIM) ||
            at_most(&c, "index_topk", cfg->index_topk, DSV4_MAX_TOPK))
            return -1;
        if (cfg->index_head_dim <= cfg->rope_dim)
            return dsv4_fail(err, errlen, "%s: key 'index_head_dim' (%d) must exceed 'qk_rope_head_dim' (%d)", path,
                             cfg->index_head_dim, cfg->rope_dim);
        if (cfg->index_head_dim % 32)
            return dsv4_fail(err, errlen, "%s: key 'index_head_dim' (%d) must be a multiple of 32 (dsv4 kernels; V4 "
                             "uses 128)", path, cfg->index_head_dim);
    }
    /* products used as int element counts (weight rows, activation widths): computed in 64 bits, each must
     * fit an int32; the name pairs are the keys at fault */
    const struct { const char *a, *b; int64_t x, y; } P[] = {
        {"num_attention_heads", "head_dim", cfg->n_heads, cfg->head_dim},
        {"o_groups", "o_lora_rank", cfg->o_groups, cfg->o_lora_rank},
        {"index_n_heads", "index_head_dim", cfg->index_n_heads, cfg->index_head_dim},
        {"hc_mult", "hidden_size", cfg->hc_mult, cfg->dim},
    };
    for (size_t i = 0; i < sizeof P / sizeof P[0]; i++)
        if (P[i].x * P[i].y > 2147483647)
            return dsv4_fail(err, errlen, "%s: keys '%s' x '%s' = %lld x %lld = %lld exceeds the supported maximum "
                             "2147483647 (io/config.h)", path, P[i].a, P[i].b, (long long)P[i].x, (long long)P[i].y,
                             (long long)(P[i].x * P[i].y));
#undef REQ
#undef OPT
#undef REQF
#undef OPTF
    return 0;
}

static int cmp_cstr(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* Reject a key that appears twice in object `o` or in any object nested in it (through objects and arrays).
 * `prefix` is the dotted path of `o` ("" at the top level). */
static int check_dups(const cJSON *o, const char *prefix, const char *path, char *err, size_t errlen) {
    if (cJSON_IsObject(o)) {
        size_t n = 0;
        for (const cJSON *e = o->child; e; e = e->next) n++;
        if (n > 1) {
            const char **names = malloc(n * sizeof *names);
            if (!names) return dsv4_fail(err, errlen, "%s: out of memory", path);
            size_t k = 0;
            for (const cJSON *e = o->child; e; e = e->next) names[k++] = e->string ? e->string : "";
            qsort(names, n, sizeof *names, cmp_cstr);
            for (size_t i = 1; i < n; i++)
                if (strcmp(names[i], names[i - 1]) == 0) {
                    int rc = dsv4_fail(err, errlen, "%s: key '%s%s' appears more than once", path, prefix, names[i]);
                    free(names);
                    return rc;
                }
            free(names);
        }
    }
    if (!cJSON_IsObject(o) && !cJSON_IsArray(o)) return 0;
    for (const cJSON *e = o->child; e; e = e->next) {
        if (!cJSON_IsObject(e) && !cJSON_IsArray(e)) continue;
        size_t pl = strlen(prefix), kl = e->string ? strlen(e->string) : 0;
        char *sub = malloc(pl + kl + 24);
        if (!sub) return dsv4_fail(err, errlen, "%s: out of memory", path);
        if (cJSON_IsObject(o)) snprintf(sub, pl + kl + 24, "%s%s.", prefix, e->string ? e->string : "");
        else snprintf(sub, pl + kl + 24, "%s", prefix);
        int rc = check_dups(e, sub, path, err, errlen);
        free(sub);
        if (rc) return rc;
    }
    return 0;
}

int dsv4_config_load(dsv4_config *cfg, const char *path, char *err, size_t errlen) {
    char *buf = NULL;
    size_t len = 0;
    if (dsv4_read_file(path, &buf, &len, err, errlen) != 0) return -1;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (!root) {
        int line = 1;
        const char *stop = end && end >= buf && end <= buf + len ? end : buf;
        for (const char *q = buf; q < stop; q++) line += *q == '\n';
        free(buf);
        return dsv4_fail(err, errlen, "%s: config.json is not valid JSON (line %d?)", path, line);
    }
    for (const char *q = end; q && q < buf + len; q++) {
        if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r') {
            int line = 1;
            for (const char *r = buf; r < q; r++) line += *r == '\n';
            cJSON_Delete(root);
            free(buf);
            return dsv4_fail(err, errlen, "%s: config.json is not valid JSON (trailing text at line %d)", path, line);
        }
    }
    int rc;
    if (!cJSON_IsObject(root)) rc = dsv4_fail(err, errlen, "%s: config.json is not a JSON object", path);
    else if ((rc = check_dups(root, "", path, err, errlen)) == 0) {
        /* DeepSeek-V4.1: the text model's keys are nested in text_config (config_v41.c adds the rest) */
        const cJSON *tc = cJSON_GetObjectItemCaseSensitive(root, "text_config");
        if (tc && !cJSON_IsObject(tc)) rc = dsv4_fail(err, errlen, "%s: key 'text_config' must be an object", path);
        else if (tc) rc = parse(cfg, tc, "text_config.", path, err, errlen) ||
                          dsv4_config_v41_parse(cfg, root, tc, path, err, errlen) ? -1 : 0;
        else rc = parse(cfg, root, "", path, err, errlen) || dsv4_config_vexp_parse(cfg, root, path, err, errlen) ? -1 : 0;
    }
    cJSON_Delete(root);
    free(buf);
    return rc;
}
