/* cli/cli_image.c — images for the `dsv4` commands (generate, chat, render): the repeatable --image option, image
 * files decoded before the model is loaded, encoded by the model's tower, image parts of a chat request resolved to
 * images (a data: URL or a local file; nothing is fetched), and the vision parameters of a config.json read without
 * weights (render). Library calls: include/dsv4_vision.h, include/dsv4_chat.h. */
#include "cli/cli_image.h"
#include "cli/cli_util.h"
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_image_add(const char *v, void *dst) {
    cli_image_list *l = dst;
    if (!v[0]) return -1;
    if (l->n >= CLI_MAX_IMAGES) return -2;
    l->path[l->n++] = v;
    return 0;
}

void cli_images_free(dsv4_image **im, int n) {
    if (!im) return;
    for (int i = 0; i < n; i++) dsv4_image_free(im[i]);
}

void cli_embeds_free(dsv4_image_embed **e, int n) {
    if (!e) return;
    for (int i = 0; i < n; i++) dsv4_image_embed_free(e[i]);
}

int cli_images_decode(const char *cmd, const cli_image_list *l, dsv4_image **out) {
    char err[1024];
    for (int i = 0; i < l->n; i++) {
        out[i] = NULL;
        if (dsv4_image_from_file(&out[i], l->path[i], err, sizeof err)) {
            cli_fail(cmd, "--image %s", err);
            cli_images_free(out, i);
            return 1;
        }
    }
    return 0;
}

int cli_require_vision(const char *cmd, const dsv4_model *m, const char *dir) {
    if (dsv4_model_has_vision(m)) return 0;
    return cli_fail(cmd, "%s: this model has no vision tower (images need a model with vision_config and the vision "
                    "weights, e.g. DeepSeek-V4.1-Flash)", dir);
}

int cli_images_encode(const char *cmd, const dsv4_model *m, dsv4_image *const *im, const char *const *names, int n,
                      dsv4_image_embed **out) {
    char err[1024];
    for (int i = 0; i < n; i++) {
        out[i] = NULL;
        double t0 = cli_now();
        if (dsv4_image_encode(m, im[i], &out[i], err, sizeof err)) {
            cli_fail(cmd, "%s: %s", names[i], err);
            cli_embeds_free(out, i);
            return 1;
        }
        if (cli_verbose) {
            const dsv4_image_plan *p = dsv4_image_embed_plan(out[i]);
            fprintf(stderr, "dsv4 %s: %s: %dx%d pixels -> %dx%d patches, %dx%d cells, %d positions, encoded in %.2f s\n",
                    cmd, names[i], dsv4_image_width(im[i]), dsv4_image_height(im[i]), p->n_vit_w, p->n_vit_h,
                    p->n_llm_w, p->n_llm_h, p->n_tokens, cli_now() - t0);
        }
    }
    return 0;
}

int cli_count_token(const int32_t *ids, int n, int32_t id) {
    int k = 0;
    for (int i = 0; i < n && id >= 0; i++) k += ids[i] == id;
    return k;
}

int cli_image_from_part_err(const dsv4_chat_image *ci, int64_t max_pixels, dsv4_image **out, char *err,
                            size_t errlen) {
    char e2[1024];
    *out = NULL;
    const char *u = ci->url;
    if (!strncmp(u, "data:", 5)) {
        unsigned char *b = NULL;
        size_t n = 0;
        if (dsv4_data_url_decode(u, ci->url_len, &b, &n, ci->where, err, errlen)) return -1;
        int rc = dsv4_image_from_bytes_max(out, b, n, ci->where, max_pixels, err, errlen);
        free(b);
        return rc;
    }
    if (!strncmp(u, "file://", 7)) u += 7;
    else {
        const char *colon = strchr(u, ':'), *slash = strchr(u, '/');
        if (colon && (!slash || colon < slash) && colon - u > 1) {
            snprintf(err, errlen, "%s: '%.*s:' URLs are not fetched; give a data: URL or a local file", ci->where,
                     (int)(colon - u), u);
            return -1;
        }
    }
    if (strlen(u) != ci->url_len - (size_t)(u - ci->url)) {
        snprintf(err, errlen, "%s: the file name holds a NUL byte", ci->where);
        return -1;
    }
    if (dsv4_image_from_file(out, u, e2, sizeof e2)) { snprintf(err, errlen, "%s: %s", ci->where, e2); return -1; }
    return 0;
}

int cli_image_from_part(const char *cmd, const dsv4_chat_image *ci, int64_t max_pixels, dsv4_image **out) {
    char err[1200];
    if (cli_image_from_part_err(ci, max_pixels, out, err, sizeof err)) return cli_fail(cmd, "%s", err);
    return 0;
}

