/* server/request.c — the common request form of every API: an OpenAI-style message list (validated and
 * normalised here), tools, response_format and generation settings -> the V4 prompt (dsv4_chat_render,
 * docs/encoding.md §3-§4) -> tokens -> a queued engine job.
 *
 * Mapping (docs/encoding.md §6, DeepSeek's public API): thinking is on unless `thinking: {type: "disabled"}`
 * or reasoning_effort "none"; reasoning_effort minimal/low/medium/high/xhigh -> high, max/ultra -> max (only
 * max changes the prompt). A DeepSeek-V4.1 model (docs/encoding.md §10) gets its own format, and an effort that is
 * an integer 1..100 as is, or named: minimal/low -> 50, medium/high/xhigh -> 75, max/ultra -> 100 (DeepSeek's V4.1
 * table is low 50, high 75, max 100; absent = 75); an integer effort for a V4 model is a 400. Role "developer" is rendered as "system" (OpenAI's meaning; DeepSeek's own developer
 * role is internal). Content given as a list of parts must be text parts; they are joined.
 *
 * Images (issue 11 item 5; docs/server.md "Images"): a user or tool message's content list may hold image parts
 * (OpenAI image_url, Responses input_image, Anthropic image); such a list is kept as parts for the encoder
 * (dsv4_chat_render_images: one "<｜deepseek_image｜>" per image, parts joined with "\n\n" as the official encoder
 * does). Each image must be a data: URL with base64 PNG or JPEG bytes (the server fetches nothing), at most
 * srv_engine_max_image_pixels pixels, at most SRV_MAX_IMAGES per request; each is decoded and planned, the expanded
 * length checked against the context, then decoded again and encoded by the model's tower (build_images: one decoded
 * image alive at a time; dsv4_image_encode on the connection's thread, one at a time server-wide) and the prompt built
 * with its spans (dsv4_prompt_build); the job
 * evaluates it with dsv4_eval_prompt and the prefix cache compares dsv4_prompt_key, so two requests with different
 * images never share an image span. Every failure is a 400 naming the part (messages[i].content[j]). */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "server/server.h"

#define IRE "invalid_request_error"

void srv_gen_free(srv_gen *g) {
    for (int i = 0; i < g->n_stop; i++) free(g->stop[i]);
    free(g->stop);
    g->stop = NULL; g->n_stop = 0;
    dsv4_prompt_free(g->vprompt);
    g->vprompt = NULL;
}

static int is_image_type(const char *t) {
    return !strcmp(t, "image_url") || !strcmp(t, "input_image") || !strcmp(t, "image");
}

/* Content (string, null, or a list of text parts) -> a string item in place; a list with image parts (user and tool
 * messages: `images`) stays a list of text and image parts for the encoder. */
static int norm_content(cJSON *msg, int i, int allow_null, int images, const char *role, srv_error *e) {
    cJSON *c = cJSON_GetObjectItemCaseSensitive(msg, "content");
    char param[64];
    snprintf(param, sizeof param, "messages[%d].content", i);
    if (!c || cJSON_IsNull(c)) {
        if (!allow_null) return srv_err(e, 400, IRE, "invalid_value", param, "%s is required", param);
        return 0;
    }
    if (cJSON_IsString(c)) return 0;
    if (!cJSON_IsArray(c)) return srv_err(e, 400, IRE, "invalid_type", param, "%s must be a string or a list of text parts", param);
    int has_image = 0, k = 0;
    cJSON *p;
    cJSON_ArrayForEach(p, c) {
        cJSON *t = cJSON_GetObjectItemCaseSensitive(p, "type");
        if (cJSON_IsObject(p) && cJSON_IsString(t) && is_image_type(t->valuestring)) {
            if (!images) {   /* named as the client sent it (a converted Responses part carries "x_dsv4_where") */
                const cJSON *w = cJSON_GetObjectItemCaseSensitive(p, "x_dsv4_where");
                char pn[128];
                if (cJSON_IsString(w)) snprintf(pn, sizeof pn, "%s", w->valuestring);
                else snprintf(pn, sizeof pn, "%s[%d]", param, k);
                return srv_err(e, 400, IRE, "invalid_value", pn, "%s: image content parts are allowed only in user "
                               "and tool messages, not in a%s %s message", pn, role[0] == 'a' ? "n" : "", role);
            }
            has_image = 1;
        }
        k++;
    }
    if (has_image) {   /* keep the parts: strings and input_text / output_text parts become text parts */
        k = 0;
        cJSON_ArrayForEach(p, c) {
            cJSON *t = cJSON_GetObjectItemCaseSensitive(p, "type"), *x = cJSON_GetObjectItemCaseSensitive(p, "text");
            if (cJSON_IsString(p)) {
                cJSON *tp = cJSON_CreateObject();
                cJSON_AddStringToObject(tp, "type", "text");
                cJSON_AddStringToObject(tp, "text", p->valuestring);
                cJSON_ReplaceItemViaPointer(c, p, tp);
                p = tp;
            } else if (!cJSON_IsObject(p) || !cJSON_IsString(t)) {
                return srv_err(e, 400, IRE, "invalid_type", param, "%s[%d] must be an object with a 'type'", param, k);
            } else if (is_image_type(t->valuestring)) {
            } else if (!strcmp(t->valuestring, "text") || !strcmp(t->valuestring, "input_text") ||
                       !strcmp(t->valuestring, "output_text")) {
                if (!cJSON_IsString(x)) return srv_err(e, 400, IRE, "invalid_type", param, "%s[%d].text must be a string", param, k);
                cJSON_SetValuestring(t, "text");
            } else {
                return srv_err(e, 400, IRE, "invalid_value", param, "%s[%d]: content part type '%s' is not supported (text "
                               "and image parts)", param, k, t->valuestring);
            }
            k++;
        }
        return 0;
    }
    size_t len = 0;
    k = 0;
    cJSON_ArrayForEach(p, c) {
        cJSON *t = cJSON_GetObjectItemCaseSensitive(p, "type"), *x = cJSON_GetObjectItemCaseSensitive(p, "text");
        if (cJSON_IsString(p)) { len += strlen(p->valuestring); k++; continue; }
        if (!cJSON_IsObject(p) || !cJSON_IsString(t))
            return srv_err(e, 400, IRE, "invalid_type", param, "%s[%d] must be an object with a 'type'", param, k);
        if (strcmp(t->valuestring, "text") && strcmp(t->valuestring, "input_text") && strcmp(t->valuestring, "output_text"))
            return srv_err(e, 400, IRE, "invalid_value", param, "%s[%d]: content part type '%s' is not supported (text only)", param, k, t->valuestring);
        if (!cJSON_IsString(x)) return srv_err(e, 400, IRE, "invalid_type", param, "%s[%d].text must be a string", param, k);
        len += strlen(x->valuestring);
        k++;
    }
    char *s = malloc(len + 1), *w = s;
    if (!s) return srv_err(e, 500, "server_error", NULL, NULL, "out of memory");
    cJSON_ArrayForEach(p, c) {
        const char *t = cJSON_IsString(p) ? p->valuestring : cJSON_GetObjectItemCaseSensitive(p, "text")->valuestring;
        size_t l = strlen(t);
        memcpy(w, t, l); w += l;
    }
    *w = 0;
    cJSON_ReplaceItemInObjectCaseSensitive(msg, "content", cJSON_CreateString(s));
    free(s);
    return 0;
}

int srv_check_messages(cJSON *messages, srv_error *e) {
    if (!cJSON_IsArray(messages)) return srv_err(e, 400, IRE, "invalid_type", "messages", "'messages' must be an array");
    int n = cJSON_GetArraySize(messages);
    if (n == 0) return srv_err(e, 400, IRE, "invalid_value", "messages", "'messages' must not be empty");
    /* ids of tool calls seen so far (for tool messages) */
    cJSON *ids = cJSON_CreateObject();
    int i = 0, rc = 0;
    cJSON *m;
    char param[96];
    cJSON_ArrayForEach(m, messages) {
        snprintf(param, sizeof param, "messages[%d]", i);
        if (!cJSON_IsObject(m)) { rc = srv_err(e, 400, IRE, "invalid_type", param, "%s must be an object", param); break; }
        cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        snprintf(param, sizeof param, "messages[%d].role", i);
        if (!cJSON_IsString(role)) { rc = srv_err(e, 400, IRE, "invalid_type", param, "%s must be a string", param); break; }
        const char *r = role->valuestring;
        int dev = !strcmp(r, "developer");
        if (dev) { cJSON_SetValuestring(role, "system"); r = role->valuestring; }
        if (!strcmp(r, "system") || !strcmp(r, "user")) {
            if ((rc = norm_content(m, i, 0, r[0] == 'u', dev ? "developer" : r, e))) break;
        } else if (!strcmp(r, "assistant")) {
            if ((rc = norm_content(m, i, 1, 0, r, e))) break;
            cJSON *rcn = cJSON_GetObjectItemCaseSensitive(m, "reasoning_content");
            snprintf(param, sizeof param, "messages[%d].reasoning_content", i);
            if (rcn && !cJSON_IsNull(rcn) && !cJSON_IsString(rcn)) { rc = srv_err(e, 400, IRE, "invalid_type", param, "%s must be a string", param); break; }
            cJSON *tcs = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
            if (tcs && cJSON_IsNull(tcs)) { cJSON_DeleteItemFromObjectCaseSensitive(m, "tool_calls"); tcs = NULL; }
            if (tcs) {
                snprintf(param, sizeof param, "messages[%d].tool_calls", i);
                if (!cJSON_IsArray(tcs)) { rc = srv_err(e, 400, IRE, "invalid_type", param, "%s must be an array", param); break; }
                int k = 0;
                cJSON *tc;
                cJSON_ArrayForEach(tc, tcs) {
                    snprintf(param, sizeof param, "messages[%d].tool_calls[%d]", i, k);
                    cJSON *id = cJSON_GetObjectItemCaseSensitive(tc, "id"), *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
                    cJSON *name = cJSON_GetObjectItemCaseSensitive(fn, "name"), *args = cJSON_GetObjectItemCaseSensitive(fn, "arguments");
                    if (!cJSON_IsObject(tc) || !cJSON_IsString(id) || !cJSON_IsObject(fn) || !cJSON_IsString(name)) {
                        rc = srv_err(e, 400, IRE, "invalid_type", param, "%s must be {\"id\": string, \"type\": \"function\", \"function\": {\"name\": string, \"arguments\": string}}", param);
                        break;
                    }
                    if (!args || cJSON_IsNull(args)) cJSON_AddStringToObject(fn, "arguments", "{}");
                    else if (cJSON_IsObject(args)) {
                        char *s = cJSON_PrintUnformatted(args);
                        cJSON_ReplaceItemInObjectCaseSensitive(fn, "arguments", cJSON_CreateString(s ? s : "{}"));
                        free(s);
                    } else if (!cJSON_IsString(args)) {
                        rc = srv_err(e, 400, IRE, "invalid_type", param, "%s.function.arguments must be a JSON string", param);
                        break;
                    }
                    if (!cJSON_GetObjectItemCaseSensitive(tc, "type")) cJSON_AddStringToObject(tc, "type", "function");
                    cJSON_AddItemToObject(ids, id->valuestring, cJSON_CreateTrue());
                    k++;
                }
                if (rc) break;
            }
        } else if (!strcmp(r, "tool")) {
            if ((rc = norm_content(m, i, 1, 1, r, e))) break;
            cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "tool_call_id");
            snprintf(param, sizeof param, "messages[%d].tool_call_id", i);
            if (!cJSON_IsString(id)) { rc = srv_err(e, 400, IRE, "invalid_type", param, "%s must be a string", param); break; }
            if (!cJSON_GetObjectItemCaseSensitive(ids, id->valuestring)) {
                rc = srv_err(e, 400, IRE, "invalid_value", param, "%s '%s' does not match a tool call of an earlier assistant message",
                             param, id->valuestring);
                break;
            }
        } else {
            rc = srv_err(e, 400, IRE, "invalid_value", param, "%s '%s' is not one of system, developer, user, assistant, tool", param, r);
            break;
        }
        i++;
    }
    cJSON_Delete(ids);
    return rc;
}

static int check_tools(const cJSON *tools, srv_error *e) {
    if (!tools || cJSON_IsNull(tools)) return 0;
    if (!cJSON_IsArray(tools)) return srv_err(e, 400, IRE, "invalid_type", "tools", "'tools' must be an array");
    int k = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, tools) {
        char param[48];
        snprintf(param, sizeof param, "tools[%d]", k);
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(t, "type"), *fn = cJSON_GetObjectItemCaseSensitive(t, "function");
        if (!cJSON_IsObject(t) || !cJSON_IsString(ty) || strcmp(ty->valuestring, "function") || !cJSON_IsObject(fn) ||
            !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(fn, "name")))
            return srv_err(e, 400, IRE, "invalid_type", param, "%s must be {\"type\": \"function\", \"function\": {\"name\": string, ...}}", param);
        k++;
    }
    return 0;
}

/* The name of image part `ci` for messages: the client's own (an Anthropic block converted by api_anthropic.c
 * carries it as "x_dsv4_where"), else the part's place in the OpenAI messages. */
static const char *part_name(const cJSON *messages, const dsv4_chat_image *ci) {
    int i = -1, j = -1;
    if (sscanf(ci->where, "messages[%d].content[%d]", &i, &j) == 2) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(messages, i), "content");
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(c, j), "x_dsv4_where");
        if (cJSON_IsString(w)) return w->valuestring;
    }
    return ci->where;
}

/* At most this many image parts in one request (the CLI's CLI_MAX_IMAGES): each costs a decode and a tower run. */
#define SRV_MAX_IMAGES 64

/* Decode part k (a data: URL) into *im; 0, or -1 with e (400 naming the part). */
static int decode_part(srv_engine *eng, const cJSON *messages, const dsv4_chat_image *pk, dsv4_image **im,
                       srv_error *e) {
    const char *name = part_name(messages, pk);
    char err[512];
    if (strncmp(pk->url, "data:", 5)) {
        const char *colon = strchr(pk->url, ':');
        int scheme = colon && colon > pk->url && colon - pk->url < 16;
        return srv_err(e, 400, IRE, "invalid_value", name, "%s: %s%.*s%s: this server does not fetch images; send the "
                       "image itself as a data: URL (data:image/png;base64,... or data:image/jpeg;base64,...)", name,
                       scheme ? "a '" : "not a data: URL", scheme ? (int)(colon - pk->url) : 0, pk->url,
                       scheme ? ":' URL" : "");
    }
    unsigned char *bytes = NULL;
    size_t nb = 0;
    int rc = 0;
    if (dsv4_data_url_decode(pk->url, pk->url_len, &bytes, &nb, name, err, sizeof err) ||
        dsv4_image_from_bytes_max(im, bytes, nb, name, srv_engine_max_image_pixels(eng), err, sizeof err))
        rc = srv_err(e, 400, IRE, "invalid_value", name, "%s", err);
    free(bytes);
    return rc;
}

/* The images of the rendered request, in two passes so that at most one decoded image is alive and nothing runs the
 * tower for a request that is refused anyway. Pass 1: decode each (bad input is reported whatever the model), plan
 * it, free its pixels; check the model has a tower, the placeholder count, and that the expanded prompt fits the
 * context (the 400 context_length_exceeded of srv_submit). Pass 2: decode each again, encode it (one tower run at a
 * time in the whole server), free its pixels. Then build the prompt from ids (n) into g->vprompt. */
static int build_images(srv_engine *eng, const cJSON *messages, const dsv4_chat_image *parts, int nparts,
                        const int32_t *ids, int n, srv_gen *g, srv_error *e) {
    const dsv4_model *m = srv_engine_model(eng);
    const char *pp = g->prompt_param ? g->prompt_param : "messages";
    char err[512];
    if (nparts > SRV_MAX_IMAGES)
        return srv_err(e, 400, IRE, "invalid_value", pp, "%s: %d image parts; at most %d are supported in one request",
                       pp, nparts, SRV_MAX_IMAGES);
    dsv4_vision_params vp = dsv4_model_vision_params(m);
    dsv4_image_plan *plans = calloc((size_t)nparts, sizeof *plans);
    dsv4_image_embed **emb = calloc((size_t)nparts, sizeof *emb);
    int rc = 0;
    if (!plans || !emb) rc = srv_err(e, 500, "server_error", NULL, NULL, "out of memory");
    for (int k = 0; k < nparts && !rc; k++) {
        dsv4_image *im = NULL;
        if (decode_part(eng, messages, &parts[k], &im, e)) { rc = -1; break; }
        if (dsv4_model_has_vision(m) &&
            dsv4_image_plan_grid(dsv4_image_width(im), dsv4_image_height(im), &vp, &plans[k], err, sizeof err))
            rc = srv_err(e, 400, IRE, "invalid_value", part_name(messages, &parts[k]), "%s: %s",
                         part_name(messages, &parts[k]), err);
        dsv4_image_free(im);
    }
    if (!rc && !dsv4_model_has_vision(m))
        rc = srv_err(e, 400, IRE, "invalid_value", part_name(messages, &parts[0]), "%s: this model has no vision tower: "
                     "image content parts need a model with one (e.g. DeepSeek-V4.1-Flash)", part_name(messages, &parts[0]));
    if (!rc && srv_check_placeholders(eng, ids, n, nparts, pp, e)) rc = -1;
    if (!rc) {
        int len = dsv4_prompt_expanded_len(&vp, ids, n, dsv4_model_image_token(m), plans, nparts);
        if (len < 0) rc = srv_err(e, 500, "server_error", NULL, NULL, "cannot size the prompt with its images");
        else rc = srv_check_ctx(eng, len, pp, e);
    }
    /* One tower run at a time in the whole server: each needs up to ~0.6 GB of workspace at the largest grid and
     * uses the thread pool anyway, so concurrent image requests queue here instead of multiplying the memory. */
    static pthread_mutex_t tower_mu = PTHREAD_MUTEX_INITIALIZER;
    for (int k = 0; k < nparts && !rc; k++) {
        dsv4_image *im = NULL;
        if (decode_part(eng, messages, &parts[k], &im, e)) { rc = -1; break; }
        pthread_mutex_lock(&tower_mu);
        int bad = dsv4_image_encode(m, im, &emb[k], err, sizeof err);
        pthread_mutex_unlock(&tower_mu);
        srv_metrics_image();
        dsv4_image_free(im);
        if (bad)
            rc = srv_err(e, 400, IRE, "invalid_value", part_name(messages, &parts[k]), "%s: %s",
                         part_name(messages, &parts[k]), err);
    }
    if (!rc && dsv4_prompt_build(&g->vprompt, m, ids, n, emb, nparts, err, sizeof err))
        rc = srv_err(e, 400, IRE, "invalid_value", pp, "%s", err);
    for (int k = 0; emb && k < nparts; k++) dsv4_image_embed_free(emb[k]);
    free(emb);
    free(plans);
    return rc;
}

int srv_check_placeholders(srv_engine *eng, const int32_t *ids, int n, int n_images, const char *param, srv_error *e) {
    int32_t tok = dsv4_model_image_token(srv_engine_model(eng));
    int k = 0;
    for (int i = 0; i < n && tok >= 0; i++) k += ids[i] == tok;
    if (k == n_images) return 0;
    return srv_err(e, 400, IRE, "invalid_value", param, "%s: the prompt has %d image placeholder%s (the text "
                   "<｜deepseek_image｜>, id %d) but %d image%s given; send images as image content parts", param, k,
                   k == 1 ? "" : "s", (int)tok, n_images, n_images == 1 ? " was" : "s were");
}

int srv_render_tokens(srv_engine *eng, const cJSON *messages, const cJSON *tools, const cJSON *response_format,
                      srv_gen *g, int32_t **out, int *n_out, srv_error *e) {
    *out = NULL; *n_out = 0;
    dsv4_prompt_free(g->vprompt);
    g->vprompt = NULL;
    if (check_tools(tools, e)) return -1;
    cJSON *req = cJSON_CreateObject();
    cJSON_AddItemReferenceToObject(req, "messages", (cJSON *)messages);
    if (tools && cJSON_GetArraySize(tools) > 0) cJSON_AddItemReferenceToObject(req, "tools", (cJSON *)tools);
    if (response_format && !cJSON_IsNull(response_format)) cJSON_AddItemReferenceToObject(req, "response_format", (cJSON *)response_format);
    char *json = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    if (!json) return srv_err(e, 500, "server_error", NULL, NULL, "out of memory");
    dsv4_render_opts ro = { .thinking = g->thinking, .effort = g->effort, .format = srv_engine_format(eng) };
    if (ro.format == DSV4_FORMAT_V41) {
        ro.effort = DSV4_EFFORT_NONE;
        ro.effort_level = g->effort_level ? g->effort_level : g->effort_v41;
    } else if (g->effort_level) {
        free(json);
        return srv_err(e, 400, IRE, "invalid_value", "reasoning_effort", "a numeric reasoning effort (%d) is a "
                       "DeepSeek-V4.1 option; this DeepSeek-V4 model takes none, minimal, low, medium, high, xhigh or max",
                       g->effort_level);
    }
    char *prompt = NULL, err[512];
    size_t plen = 0;
    dsv4_chat_image *parts = NULL;
    int nparts = 0;
    int rc = dsv4_chat_render_images(json, strlen(json), &ro, &prompt, &plen, &parts, &nparts, err, sizeof err);
    free(json);
    if (rc) return srv_err(e, 400, IRE, "invalid_value", "messages", "cannot render the conversation: %s", err);
    const dsv4_tokenizer *tok = srv_engine_tokenizer(eng);
    int cap = (int)(plen / 2 + 16);
    int32_t *ids = NULL;
    for (;;) {
        int32_t *ni = realloc(ids, sizeof(int32_t) * (size_t)cap);
        if (!ni) {
            free(ids); free(prompt); dsv4_chat_images_free(parts, nparts);
            return srv_err(e, 500, "server_error", NULL, NULL, "out of memory");
        }
        ids = ni;
        int n = dsv4_tokenize(tok, prompt, plen, ids, cap, err, sizeof err);
        if (n < 0) {
            free(ids); free(prompt); dsv4_chat_images_free(parts, nparts);
            return srv_err(e, 400, IRE, "invalid_value", "messages", "cannot tokenize the prompt: %s", err);
        }
        if (n <= cap) { *n_out = n; break; }
        cap = n;
    }
    free(prompt);
    if (!nparts && srv_check_placeholders(eng, ids, *n_out, 0, g->prompt_param ? g->prompt_param : "messages", e)) { free(ids); *n_out = 0; return -1; }
    if (nparts) {
        rc = build_images(eng, messages, parts, nparts, ids, *n_out, g, e);
        dsv4_chat_images_free(parts, nparts);
        if (rc) { free(ids); *n_out = 0; return -1; }
        /* the job's ids: the expanded prompt (its length is what the context must hold) */
        int np = dsv4_prompt_len(g->vprompt);
        int32_t *x = malloc(sizeof(int32_t) * (size_t)np);
        if (!x) { free(ids); *n_out = 0; return srv_err(e, 500, "server_error", NULL, NULL, "out of memory"); }
        memcpy(x, dsv4_prompt_ids(g->vprompt), sizeof(int32_t) * (size_t)np);
        free(ids);
        ids = x;
        *n_out = np;
    }
    *out = ids;
    return 0;
}

int srv_parse_stop(const cJSON *v, const char *param, srv_gen *g, srv_error *e) {
    if (!v || cJSON_IsNull(v)) return 0;
    int n = cJSON_IsString(v) ? 1 : cJSON_IsArray(v) ? cJSON_GetArraySize(v) : -1;
    if (n < 0 || n > 16) return srv_err(e, 400, IRE, "invalid_type", param, "'%s' must be a string or an array of at most 16 strings", param);
    g->stop = calloc((size_t)(n ? n : 1), sizeof *g->stop);
    if (!g->stop) return srv_err(e, 500, "server_error", NULL, NULL, "out of memory");
    for (int i = 0; i < n; i++) {
        const cJSON *s = cJSON_IsString(v) ? v : cJSON_GetArrayItem(v, i);
        if (!cJSON_IsString(s)) return srv_err(e, 400, IRE, "invalid_type", param, "'%s[%d]' must be a string", param, i);
        if (!s->valuestring[0]) continue;   /* an empty stop string would stop at once: ignored */
        if (!(g->stop[g->n_stop] = strdup(s->valuestring))) return srv_err(e, 500, "server_error", NULL, NULL, "out of memory");
        g->n_stop++;
    }
    return 0;
}

int srv_parse_effort(const cJSON *v, const char *param, srv_gen *g, srv_error *e) {
    if (!v || cJSON_IsNull(v)) return 0;
    if (cJSON_IsNumber(v)) {   /* DeepSeek-V4.1's numeric effort (docs/encoding.md §10.2) */
        double x = v->valuedouble;
        if (!(x >= 1 && x <= 100) || x != (int)x)
            return srv_err(e, 400, IRE, "invalid_value", param, "'%s' must be an integer in 1..100 or a level name", param);
        g->effort_level = (int)x;
        return 0;
    }
    if (!cJSON_IsString(v)) return srv_err(e, 400, IRE, "invalid_type", param, "'%s' must be a string or an integer", param);
    const char *s = v->valuestring;
    if (!strcmp(s, "none")) { g->thinking = 0; return 0; }
    static const char *high[] = {"minimal", "low", "medium", "high", "xhigh"};
    for (size_t i = 0; i < sizeof high / sizeof *high; i++)
        if (!strcmp(s, high[i])) {
            g->effort = DSV4_EFFORT_HIGH;
            g->effort_v41 = dsv4_v41_effort_of_name(i < 2 ? "low" : "high");
            return 0;
        }
    if (!strcmp(s, "max") || !strcmp(s, "ultra")) {
        g->effort = DSV4_EFFORT_MAX;
        g->effort_v41 = dsv4_v41_effort_of_name("max");
        return 0;
    }
    return srv_err(e, 400, IRE, "invalid_value", param, "'%s' is '%s'; use none, minimal, low, medium, high, xhigh, max "
                   "or (DeepSeek-V4.1) an integer in 1..100", param, s);
}

int srv_parse_sampling(const cJSON *req, srv_gen *g, srv_error *e) {
    double x;
    long l;
    g->sp.temperature = 1.0f; g->sp.top_p = 1.0f; g->sp.top_k = 0;
    {   /* a fresh seed per request unless given */
        char id[48];
        srv_make_id("", id);
        g->sp.seed = strtoull(id, NULL, 16);
    }
    x = 1.0; if (srv_get_num(req, "temperature", 0, 2, &x, e)) return -1; g->sp.temperature = (float)x;
    x = 1.0; if (srv_get_num(req, "top_p", 0, 1, &x, e)) return -1;
    /* 0 (and a value so small that it is 0 as a float, e.g. 1e-190: found by fuzz_server_request, which the
     * sampler then refused) keeps only the most likely token: greedy */
    if ((float)x == 0) g->sp.temperature = 0; else g->sp.top_p = (float)x;
    l = 0; if (srv_get_int(req, "top_k", 0, 1L << 30, &l, e)) return -1; g->sp.top_k = (int)l;
    const cJSON *sd = cJSON_GetObjectItemCaseSensitive(req, "seed");
    if (sd && !cJSON_IsNull(sd)) {
        if (srv_get_int(req, "seed", -(1L << 53), 1L << 53, &l, e)) return -1;
        g->sp.seed = (uint64_t)l;
    }
    x = 0;
    if (srv_get_num(req, "presence_penalty", -2, 2, &x, e) || srv_get_num(req, "frequency_penalty", -2, 2, &x, e)) return -1;
    if (srv_get_bool(req, "ignore_eos", &g->ignore_eos, e)) return -1;
    l = 1; if (srv_get_int(req, "n", 1, 1L << 20, &l, e)) return -1;
    if (l != 1) return srv_err(e, 400, IRE, "unsupported_value", "n", "'n' is %ld; only n = 1 is supported", l);
    return 0;
}

char *srv_text_parts(const cJSON *c, const char *param, const char *const *types, const char *noun,
                     const char *oom_type, srv_error *e) {
    char *s;
    if (cJSON_IsString(c) || !c || cJSON_IsNull(c)) {
        if (!(s = strdup(cJSON_IsString(c) ? c->valuestring : ""))) srv_err(e, 500, oom_type, NULL, NULL, "out of memory");
        return s;
    }
    if (!cJSON_IsArray(c)) { srv_err(e, 400, IRE, "invalid_type", param, "%s must be a string or a list of %ss", param, noun); return NULL; }
    size_t n = 0;
    const cJSON *b;
    cJSON_ArrayForEach(b, c) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(b, "type"), *x = cJSON_GetObjectItemCaseSensitive(b, "text");
        int known = 0;
        for (int i = 0; cJSON_IsString(t) && types[i]; i++) known |= !strcmp(t->valuestring, types[i]);
        if (!known || !cJSON_IsString(x)) {
            srv_err(e, 400, IRE, "invalid_value", param, "%s: only text %ss are supported here", param, noun);
            return NULL;
        }
        n += strlen(x->valuestring);
    }
    char *w = s = malloc(n + 1);
    if (!s) { srv_err(e, 500, oom_type, NULL, NULL, "out of memory"); return NULL; }
    cJSON_ArrayForEach(b, c) {
        const char *x = cJSON_GetObjectItemCaseSensitive(b, "text")->valuestring;
        size_t l = strlen(x);
        memcpy(w, x, l); w += l;
    }
    *w = 0;
    return s;
}

void srv_force_tool(srv_gen *g, const char *name) {
    g->tool_force = name && strlen(name) < sizeof g->tool_name ? 2 : 1;
    if (g->tool_force == 2) snprintf(g->tool_name, sizeof g->tool_name, "%s", name);
}

int srv_check_ctx(srv_engine *eng, int n, const char *param, srv_error *e) {
    int ctx = srv_engine_ctx(eng);
    if (n + 1 <= ctx) return 0;
    return srv_err(e, 400, IRE, "context_length_exceeded", param,
                   "the prompt is %d tokens; this server's context holds %d (--ctx), leaving no room for a reply", n, ctx);
}

srv_job *srv_submit(srv_engine *eng, int32_t *toks, int n, srv_gen *g, srv_error *e) {
    if (srv_check_ctx(eng, n, g->prompt_param ? g->prompt_param : "messages", e)) { free(toks); return NULL; }
    srv_job *j = srv_job_new(toks, n);
    if (!j) { srv_err(e, 500, "server_error", NULL, NULL, "out of memory"); return NULL; }
    if (g->vprompt) {   /* the prompt with images: evaluated with dsv4_eval_prompt, matched by its keys */
        if (dsv4_prompt_len(g->vprompt) != n || !(j->keys = malloc(sizeof(uint64_t) * (size_t)n))) {
            srv_job_release(j);
            srv_err(e, 500, "server_error", NULL, NULL, "out of memory");
            return NULL;
        }
        for (int i = 0; i < n; i++) j->keys[i] = dsv4_prompt_key(g->vprompt, i);
        j->vprompt = g->vprompt;
        g->vprompt = NULL;
    }
    j->mode = g->thinking;
    j->sp = g->sp;
    j->max_tokens = g->max_tokens;
    j->stop = g->stop; j->n_stop = g->n_stop;
    g->stop = NULL; g->n_stop = 0;
    j->logprobs = g->logprobs;
    j->top_logprobs = g->top_logprobs;
    j->ignore_eos = g->ignore_eos;
    if (g->tool_force) {   /* the DSML opening of a tool call (docs/encoding.md, DSML), the name when one is named */
        char buf[256];
        /* the V4 or V4.1 spelling (docs/encoding.md §4.2, §10.1) */
        const char *open = srv_engine_format(eng) == DSV4_FORMAT_V41
            ? "\n\n<\xef\xbd\x9c" "DSML\xef\xbd\x9c calls>\n<\xef\xbd\x9c" "DSML\xef\xbd\x9c invoke name=\""
            : "\n\n<\xef\xbd\x9c" "DSML\xef\xbd\x9ctool_calls>\n<\xef\xbd\x9c" "DSML\xef\xbd\x9cinvoke name=\"";
        if (g->tool_force == 2) snprintf(buf, sizeof buf, "%s%s\">\n", open, g->tool_name);
        else snprintf(buf, sizeof buf, "%s", open);
        if (!(j->force_text = strdup(buf))) {
            srv_job_release(j);
            srv_err(e, 500, "server_error", NULL, NULL, "out of memory");
            return NULL;
        }
    }
    j->id_seed = (uint64_t)(srv_now() * 1e6);
    if (srv_engine_submit(eng, j)) {
        srv_job_release(j);
        srv_err(e, 503, "server_error", "server_busy", NULL, "all slots are busy and the queue is full; retry later");
        return NULL;
    }
    return j;
}

void srv_job_wait(srv_job *j, int (*gone)(void *), void *gone_arg) {
    pthread_mutex_lock(&j->mu);
    while (!j->done) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
        pthread_cond_timedwait(&j->cv, &j->mu, &ts);
        if (!j->done && !j->cancelled && gone && gone(gone_arg)) j->cancelled = 1;
    }
    pthread_mutex_unlock(&j->mu);
}
