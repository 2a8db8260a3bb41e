/* io/config_vexp.c — the vision keys of DeepSeek-V4-Flash-Vision-Exp's config.json (docs/vision-exp.md §2, §8 item 1).
 *
 * Vision-Exp is a V4 config (no text_config, architecture DeepseekV4ForCausalLM) with flat top-level `vision_*` keys
 * instead of V4.1's nested vision_config; a vision checkpoint is recognised by vision_n_layers > 0. The keys land in
 * the same dsv4_config_v41 fields V4.1's vision_config fills (x.v41 stays 0), plus vision_max_wh_ratio. */
#include "io/config.h"
#include "base/util.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

/* integer key in [lo, hi]; absent or null -> def unless required */
static int key_int(const cJSON *root, const char *path, const char *key, int required, int def, long long lo,
                   long long hi, int *out, char *err, size_t errlen) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j)) {
        if (required) return dsv4_fail(err, errlen, "%s: missing key '%s' (needed with vision_n_layers > 0)", path, key);
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(j) || j->valuedouble != floor(j->valuedouble))
        return dsv4_fail(err, errlen, "%s: key '%s' must be an integer", path, key);
    if (j->valuedouble < (double)lo || j->valuedouble > (double)hi)
        return dsv4_fail(err, errlen, "%s: key '%s' is %.0f, outside [%lld, %lld]", path, key, j->valuedouble, lo, hi);
    *out = (int)j->valuedouble;
    return 0;
}

int dsv4_config_vexp_parse(dsv4_config *c, const cJSON *root, const char *path, char *err, size_t errlen) {
    dsv4_config_v41 *x = &c->x;
    if (key_int(root, path, "vision_n_layers", 0, 0, 0, 1024, &x->vision_n_layers, err, errlen)) return -1;
    if (x->vision_n_layers == 0) return 0;   /* a text-only V4 config: nothing else is read */
    if (key_int(root, path, "vision_dim", 1, 0, 1, 1 << 16, &x->vision_dim, err, errlen) ||
        key_int(root, path, "vision_n_heads", 1, 0, 1, 1024, &x->vision_n_heads, err, errlen) ||
        key_int(root, path, "vision_inter_dim", 1, 0, 1, 1 << 18, &x->vision_inter_dim, err, errlen) ||
        key_int(root, path, "vision_patch_size", 1, 0, 1, 1024, &x->vision_patch_size, err, errlen) ||
        key_int(root, path, "vision_downsample_ratio", 0, 3, 1, 64, &x->vision_downsample_ratio, err, errlen) ||
        /* the span (START..END, at most max - 3 positions) must fit one forward chunk: DSV4_CHUNK_MAX */
        key_int(root, path, "vision_max_n_token", 0, 384, 8, 4096, &x->vision_max_n_token, err, errlen) ||
        key_int(root, path, "vision_min_pixels", 0, 147456, 0, 1 << 30, &x->vision_min_pixels, err, errlen) ||
        key_int(root, path, "vision_max_wh_ratio", 0, 0, 0, 1 << 16, &x->vision_max_wh_ratio, err, errlen) ||
        key_int(root, path, "image_token_id", 1, -1, 0, c->vocab_size - 1, &x->image_token_id, err, errlen))
        return -1;
    if (x->vision_dim % x->vision_n_heads)
        return dsv4_fail(err, errlen, "%s: key 'vision_n_heads' (%d) must divide vision_dim (%d)", path,
                         x->vision_n_heads, x->vision_dim);
    const cJSON *rt = cJSON_GetObjectItemCaseSensitive(root, "vision_rope_theta");
    if (rt && !cJSON_IsNull(rt) && (!cJSON_IsNumber(rt) || !(rt->valuedouble > 0) || !isfinite(rt->valuedouble)))
        return dsv4_fail(err, errlen, "%s: key 'vision_rope_theta' must be a positive number", path);
    x->vision_rope_theta = rt && cJSON_IsNumber(rt) ? (float)rt->valuedouble : 10000.0f;
    if ((long long)c->vocab_size + 4 > 2147483647LL)
        return dsv4_fail(err, errlen, "%s: vocab_size %d leaves no room for the image sentinel ids", path,
                         c->vocab_size);
    return 0;
}
