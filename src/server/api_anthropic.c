/* server/api_anthropic.c — POST /v1/messages (Anthropic Messages API).
 *
 * Request -> the common form (request.c): `system` (string or text blocks) -> a system message; user blocks:
 * text, image (source {type: base64, media_type, data}; kept as image parts, the user's blocks then joined as the
 * encoder joins parts; an image in `system` or an assistant message is refused), tool_result (-> tool messages, in
 * order, before the user's text; its content may hold image blocks too); assistant blocks: thinking (->
 * reasoning_content), text, tool_use (-> tool_calls, `input` serialised as the arguments). tools {name,
 * description, input_schema} -> function tools; tool_choice auto / any / tool {name} / none. `thinking`:
 * {type: "enabled"} turns thinking mode on (off by default, as in Anthropic's API; budget_tokens is not
 * enforced), output_config.effort "max" selects the max effort block. max_tokens is required; stop_sequences,
 * temperature, top_p, top_k as usual. Errors use Anthropic's shape {"type": "error", "error": {type, message}}.
 * Reply: content blocks thinking / text / tool_use, stop_reason end_turn / max_tokens / stop_sequence / tool_use,
 * usage {input_tokens (not cached), output_tokens, cache_read_input_tokens, cache_creation_input_tokens}.
 * Streaming: message_start, then per block content_block_start / content_block_delta (thinking_delta,
 * text_delta, input_json_delta) / content_block_stop, message_delta (stop_reason, usage), message_stop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "server/server.h"

#define IRE "invalid_request_error"

static int add_text(cJSON *msgs, const char *role, const char *text) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", role);
    cJSON_AddStringToObject(m, "content", text);
    cJSON_AddItemToArray(msgs, m);
    return 0;
}

/* Anthropic text content: a string or a list of text blocks, concatenated; NULL (+ e) for another block type. */
static char *blocks_text(const cJSON *c, const char *param, srv_error *e) {
    static const char *const types[] = {"text", NULL};
    return srv_text_parts(c, param, types, "block", "api_error", e);
}

/* An Anthropic image block -> an image part (a copy of the block, with the client's name for messages in
 * "x_dsv4_where": request.c names the part with it); NULL with e when its source is not base64. */
static cJSON *image_part(const cJSON *b, const char *bp, srv_error *e) {
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(b, "source");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(so, "type");
    if (cJSON_IsString(st) && !strcmp(st->valuestring, "url")) {
        srv_err(e, 400, IRE, "invalid_value", bp, "%s: an image 'url' source: this server does not fetch images; send "
                "the image as {\"type\": \"base64\", \"media_type\": \"image/png\", \"data\": ...}", bp);
        return NULL;
    }
    if (!cJSON_IsObject(so) || !cJSON_IsString(st) || strcmp(st->valuestring, "base64") ||
        !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(so, "data"))) {
        srv_err(e, 400, IRE, "invalid_value", bp, "%s must be {type: image, source: {type: base64, media_type: "
                "image/png or image/jpeg, data: string}}", bp);
        return NULL;
    }
    /* the media types this server decodes; the format itself is read from the bytes (a mislabelled PNG or JPEG
     * still decodes), anything else is refused by its signature in request.c */
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(so, "media_type");
    if (!cJSON_IsString(mt) || (strcmp(mt->valuestring, "image/png") && strcmp(mt->valuestring, "image/jpeg"))) {
        char *q = cJSON_IsString(mt) ? srv_utf8_clean(mt->valuestring, strnlen(mt->valuestring, 64)) : NULL;
        srv_err(e, 400, IRE, "invalid_value", bp, "%s.source.media_type: %s%s%s: this server takes image/png or "
                "image/jpeg", bp, q ? "'" : "missing", q ? q : "", q ? "' is not supported" : "");
        free(q);
        return NULL;
    }
    cJSON *p = cJSON_Duplicate(b, 1);
    if (p) cJSON_AddStringToObject(p, "x_dsv4_where", bp);
    if (!p) srv_err(e, 500, "api_error", NULL, NULL, "out of memory");
    return p;
}

/* Content blocks with an image -> a list of text and image parts (NULL with e). */
static cJSON *image_parts(const cJSON *c, const char *param, srv_error *e) {
    cJSON *parts = cJSON_CreateArray();
    const cJSON *b;
    int k = 0;
    cJSON_ArrayForEach(b, c) {
        char bp[192];
        snprintf(bp, sizeof bp, "%s[%d]", param, k++);
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(b, "type"), *x = cJSON_GetObjectItemCaseSensitive(b, "text");
        cJSON *p = NULL;
        if (cJSON_IsString(t) && !strcmp(t->valuestring, "image")) p = image_part(b, bp, e);
        else if (cJSON_IsString(t) && !strcmp(t->valuestring, "text") && cJSON_IsString(x)) {
            p = cJSON_CreateObject();
            cJSON_AddStringToObject(p, "type", "text");
            cJSON_AddStringToObject(p, "text", x->valuestring);
        } else srv_err(e, 400, IRE, "invalid_value", bp, "%s: only text and image blocks are supported here", bp);
        if (!p) { cJSON_Delete(parts); return NULL; }
        cJSON_AddItemToArray(parts, p);
    }
    return parts;
}

/* Anthropic messages -> OpenAI messages (appended to out). */
static int convert(const cJSON *req, cJSON *out, srv_error *e) {
    const cJSON *sys = cJSON_GetObjectItemCaseSensitive(req, "system");
    if (srv_has_part_type(sys, "image"))
        return srv_err(e, 400, IRE, "invalid_value", "system", "system: image blocks are allowed only in user messages "
                       "and tool results, not in the system prompt");
    if (sys && !cJSON_IsNull(sys)) {
        char *s = blocks_text(sys, "system", e);
        if (!s) return -1;
        add_text(out, "system", s);
        free(s);
    }
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(req, "messages");
    if (!cJSON_IsArray(msgs) || cJSON_GetArraySize(msgs) == 0)
        return srv_err(e, 400, IRE, "invalid_value", "messages", "'messages' must be a non-empty array");
    int i = 0;
    const cJSON *m;
    char param[96];
    cJSON_ArrayForEach(m, msgs) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role"), *c = cJSON_GetObjectItemCaseSensitive(m, "content");
        snprintf(param, sizeof param, "messages[%d].role", i);
        if (!cJSON_IsString(role) || (strcmp(role->valuestring, "user") && strcmp(role->valuestring, "assistant")))
            return srv_err(e, 400, IRE, "invalid_value", param, "%s must be 'user' or 'assistant'", param);
        int user = !strcmp(role->valuestring, "user");
        snprintf(param, sizeof param, "messages[%d].content", i);
        if (cJSON_IsString(c)) { add_text(out, role->valuestring, c->valuestring); i++; continue; }
        if (!cJSON_IsArray(c)) return srv_err(e, 400, IRE, "invalid_type", param, "%s must be a string or a list of blocks", param);
        /* gather */
        size_t tn = 0;
        const cJSON *b;
        cJSON_ArrayForEach(b, c) {
            const cJSON *x = cJSON_GetObjectItemCaseSensitive(b, "text");
            if (cJSON_IsString(x)) tn += strlen(x->valuestring);
        }
        char *text = calloc(tn + 1, 1), *reason = NULL;
        cJSON *calls = cJSON_CreateArray();
        cJSON *parts = user && srv_has_part_type(c, "image") ? cJSON_CreateArray() : NULL;   /* a user message with images */
        int k = 0, ntext = 0;
        cJSON_ArrayForEach(b, c) {
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(b, "type");
            char bp[128];
            snprintf(bp, sizeof bp, "messages[%d].content[%d]", i, k++);
            const char *ty = cJSON_IsString(t) ? t->valuestring : "";
            if (!strcmp(ty, "text")) {
                const cJSON *x = cJSON_GetObjectItemCaseSensitive(b, "text");
                if (!cJSON_IsString(x)) { srv_err(e, 400, IRE, "invalid_type", bp, "%s.text must be a string", bp); goto bad; }
                strcat(text, x->valuestring);
                ntext++;
                if (parts) {
                    cJSON *p = cJSON_CreateObject();
                    cJSON_AddStringToObject(p, "type", "text");
                    cJSON_AddStringToObject(p, "text", x->valuestring);
                    cJSON_AddItemToArray(parts, p);
                }
            } else if (!strcmp(ty, "image") && user) {
                cJSON *p = image_part(b, bp, e);
                if (!p) goto bad;
                cJSON_AddItemToArray(parts, p);
            } else if (!strcmp(ty, "image")) {
                srv_err(e, 400, IRE, "invalid_value", bp, "%s: image blocks are allowed only in user messages and tool "
                        "results, not in an assistant message", bp);
                goto bad;
            } else if (!strcmp(ty, "thinking") && !user) {
                const cJSON *x = cJSON_GetObjectItemCaseSensitive(b, "thinking");
                if (!cJSON_IsString(x)) { srv_err(e, 400, IRE, "invalid_type", bp, "%s.thinking must be a string", bp); goto bad; }
                free(reason);
                reason = strdup(x->valuestring);
            } else if (!strcmp(ty, "redacted_thinking") && !user) {
                /* opaque: nothing to render */
            } else if (!strcmp(ty, "tool_use") && !user) {
                const cJSON *id = cJSON_GetObjectItemCaseSensitive(b, "id"), *nm = cJSON_GetObjectItemCaseSensitive(b, "name");
                const cJSON *in = cJSON_GetObjectItemCaseSensitive(b, "input");
                if (!cJSON_IsString(id) || !cJSON_IsString(nm) || (in && !cJSON_IsObject(in))) {
                    srv_err(e, 400, IRE, "invalid_type", bp, "%s must be {type: tool_use, id: string, name: string, input: object}", bp);
                    goto bad;
                }
                cJSON *tc = cJSON_CreateObject(), *fn = cJSON_CreateObject();
                cJSON_AddStringToObject(tc, "id", id->valuestring);
                cJSON_AddStringToObject(tc, "type", "function");
                cJSON_AddStringToObject(fn, "name", nm->valuestring);
                char *args = in ? cJSON_PrintUnformatted(in) : NULL;
                cJSON_AddStringToObject(fn, "arguments", args ? args : "{}");
                free(args);
                cJSON_AddItemToObject(tc, "function", fn);
                cJSON_AddItemToArray(calls, tc);
            } else if (!strcmp(ty, "tool_result") && user) {
                const cJSON *id = cJSON_GetObjectItemCaseSensitive(b, "tool_use_id");
                if (!cJSON_IsString(id)) { srv_err(e, 400, IRE, "invalid_type", bp, "%s.tool_use_id must be a string", bp); goto bad; }
                char cp[160];
                snprintf(cp, sizeof cp, "%s.content", bp);
                const cJSON *rc = cJSON_GetObjectItemCaseSensitive(b, "content");
                cJSON *rparts = NULL;
                char *res = NULL;
                if (srv_has_part_type(rc, "image")) { if (!(rparts = image_parts(rc, cp, e))) goto bad; }
                else if (!(res = blocks_text(rc, cp, e))) goto bad;
                cJSON *tm = cJSON_CreateObject();
                cJSON_AddStringToObject(tm, "role", "tool");
                cJSON_AddStringToObject(tm, "tool_call_id", id->valuestring);
                if (rparts) cJSON_AddItemToObject(tm, "content", rparts);
                else cJSON_AddStringToObject(tm, "content", res);
                cJSON_AddItemToArray(out, tm);
                free(res);
            } else {
                srv_err(e, 400, IRE, "invalid_value", bp, "%s: block type '%s' is not supported in a%s %s message", bp, ty,
                        user ? "" : "n", role->valuestring);
                goto bad;
            }
        }
        if (parts) {
            cJSON *um = cJSON_CreateObject();
            cJSON_AddStringToObject(um, "role", "user");
            cJSON_AddItemToObject(um, "content", parts);
            parts = NULL;
            cJSON_AddItemToArray(out, um);
        } else if (user) {
            if (ntext) add_text(out, "user", text);
        } else {
            cJSON *am = cJSON_CreateObject();
            cJSON_AddStringToObject(am, "role", "assistant");
            cJSON_AddStringToObject(am, "content", text);
            if (reason) cJSON_AddStringToObject(am, "reasoning_content", reason);
            if (cJSON_GetArraySize(calls)) { cJSON_AddItemToObject(am, "tool_calls", calls); calls = NULL; }
            cJSON_AddItemToArray(out, am);
        }
        free(text); free(reason); cJSON_Delete(calls); cJSON_Delete(parts);
        i++;
        continue;
    bad:
        free(text); free(reason); cJSON_Delete(calls); cJSON_Delete(parts);
        return -1;
    }
    return 0;
}

static cJSON *convert_tools(const cJSON *tools, const cJSON *choice, srv_gen *g, srv_error *e, int *err) {
    *err = 0;
    if (!tools || cJSON_IsNull(tools)) return NULL;
    if (!cJSON_IsArray(tools)) { *err = srv_err(e, 400, IRE, "invalid_type", "tools", "'tools' must be an array"); return NULL; }
    const char *only = NULL;
    int any = 0;   /* tool_choice any: some tool call is required */
    if (choice && !cJSON_IsNull(choice)) {
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(choice, "type");
        if (!cJSON_IsString(ty)) { *err = srv_err(e, 400, IRE, "invalid_type", "tool_choice", "'tool_choice' must be {type: auto|any|tool|none}"); return NULL; }
        if (!strcmp(ty->valuestring, "none")) return NULL;
        if (!strcmp(ty->valuestring, "tool")) {
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(choice, "name");
            if (!cJSON_IsString(nm)) { *err = srv_err(e, 400, IRE, "invalid_type", "tool_choice", "'tool_choice.name' must be a string"); return NULL; }
            only = nm->valuestring;
        } else if (!strcmp(ty->valuestring, "any")) {
            any = 1;
        } else if (strcmp(ty->valuestring, "auto")) {
            *err = srv_err(e, 400, IRE, "invalid_value", "tool_choice", "'tool_choice.type' must be auto, any, tool or none");
            return NULL;
        }
    }
    cJSON *out = cJSON_CreateArray();
    int k = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, tools) {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(t, "name");
        if (!cJSON_IsString(nm)) {
            *err = srv_err(e, 400, IRE, "invalid_type", "tools", "tools[%d].name must be a string", k);
            cJSON_Delete(out);
            return NULL;
        }
        k++;
        if (only && strcmp(only, nm->valuestring)) continue;
        cJSON *ft = cJSON_CreateObject(), *fn = cJSON_CreateObject();
        cJSON_AddStringToObject(ft, "type", "function");
        cJSON_AddStringToObject(fn, "name", nm->valuestring);
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(t, "description"), *sc = cJSON_GetObjectItemCaseSensitive(t, "input_schema");
        if (cJSON_IsString(d)) cJSON_AddStringToObject(fn, "description", d->valuestring);
        if (sc) cJSON_AddItemToObject(fn, "parameters", cJSON_Duplicate(sc, 1));
        cJSON_AddItemToObject(ft, "function", fn);
        cJSON_AddItemToArray(out, ft);
    }
    if (only && cJSON_GetArraySize(out) == 0) {
        *err = srv_err(e, 400, IRE, "invalid_value", "tool_choice", "'tool_choice' names tool '%s', which is not in 'tools'", only);
        cJSON_Delete(out);
        return NULL;
    }
    if (cJSON_GetArraySize(out) > 0 && (only || any)) srv_force_tool(g, only);
    return out;
}

static const char *stop_reason(const srv_job *j) {
    switch (j->finish) {
    case SRV_FIN_LENGTH: return "max_tokens";
    case SRV_FIN_TOOL_CALLS: return "tool_use";
    default: return j->stop_hit ? "stop_sequence" : "end_turn";
    }
}

static void add_usage(cJSON *o, const srv_job *j, int output) {
    cJSON *u = cJSON_AddObjectToObject(o, "usage");
    cJSON_AddNumberToObject(u, "input_tokens", j->n_prompt - j->n_cached);
    cJSON_AddNumberToObject(u, "cache_creation_input_tokens", 0);
    cJSON_AddNumberToObject(u, "cache_read_input_tokens", j->n_cached);
    cJSON_AddNumberToObject(u, "output_tokens", output);
}

static cJSON *tool_use_block(const srv_event *ev, int empty_input) {
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "type", "tool_use");
    cJSON_AddStringToObject(b, "id", ev->id);
    cJSON_AddStringToObject(b, "name", ev->name);
    cJSON *in = empty_input ? NULL : cJSON_Parse(ev->args);
    if (!cJSON_IsObject(in)) { cJSON_Delete(in); in = cJSON_CreateObject(); }
    cJSON_AddItemToObject(b, "input", in);
    return b;
}

/* ------------------------------------------------------------------ streaming */
typedef struct {
    char id[48], model[128];
    int ev_i, started, block, open;   /* open: kind of the open block (0 none, 1 thinking, 2 text) */
} an_state;

static void ev_obj(srv_stream *st, const char *type, cJSON *o) {
    cJSON_AddStringToObject(o, "type", type);
    srv_stream_event(st, type, o);
    cJSON_Delete(o);
}

static void close_block(srv_stream *st, an_state *s) {
    if (!s->open) return;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "index", s->block++);
    ev_obj(st, "content_block_stop", o);
    s->open = 0;
}

static int an_pump(srv_stream *st, srv_job *j, void *arg) {
    an_state *s = arg;
    if (!s->started) {
        cJSON *o = cJSON_CreateObject(), *m = cJSON_AddObjectToObject(o, "message");
        cJSON_AddStringToObject(m, "id", s->id);
        cJSON_AddStringToObject(m, "type", "message");
        cJSON_AddStringToObject(m, "role", "assistant");
        cJSON_AddStringToObject(m, "model", s->model);
        cJSON_AddArrayToObject(m, "content");
        cJSON_AddNullToObject(m, "stop_reason");
        cJSON_AddNullToObject(m, "stop_sequence");
        add_usage(m, j, 0);
        ev_obj(st, "message_start", o);
        s->started = 1;
    }
    while (s->ev_i < j->nev) {
        const srv_event *ev = &j->ev[s->ev_i++];
        int kind = ev->kind == SRV_EV_REASONING ? 1 : ev->kind == SRV_EV_CONTENT ? 2 : 3;
        if (kind != s->open) close_block(st, s);
        if (kind == 3) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "index", s->block);
            cJSON_AddItemToObject(o, "content_block", tool_use_block(ev, 1));
            ev_obj(st, "content_block_start", o);
            o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "index", s->block);
            cJSON *d = cJSON_AddObjectToObject(o, "delta");
            cJSON_AddStringToObject(d, "type", "input_json_delta");
            cJSON_AddStringToObject(d, "partial_json", ev->args);
            ev_obj(st, "content_block_delta", o);
            s->open = 3;
            close_block(st, s);
            continue;
        }
        if (!s->open) {
            cJSON *o = cJSON_CreateObject(), *b = cJSON_AddObjectToObject(o, "content_block");
            cJSON_AddNumberToObject(o, "index", s->block);
            cJSON_AddStringToObject(b, "type", kind == 1 ? "thinking" : "text");
            cJSON_AddStringToObject(b, kind == 1 ? "thinking" : "text", "");
            if (kind == 1) cJSON_AddStringToObject(b, "signature", "");
            ev_obj(st, "content_block_start", o);
            s->open = kind;
        }
        cJSON *o = cJSON_CreateObject(), *d = cJSON_AddObjectToObject(o, "delta");
        cJSON_AddNumberToObject(o, "index", s->block);
        cJSON_AddStringToObject(d, "type", kind == 1 ? "thinking_delta" : "text_delta");
        cJSON_AddStringToObject(d, kind == 1 ? "thinking" : "text", ev->text);
        ev_obj(st, "content_block_delta", o);
    }
    if (!j->done) return 0;
    if (j->finish == SRV_FIN_ERROR) {
        cJSON *o = cJSON_CreateObject(), *er = cJSON_AddObjectToObject(o, "error");
        cJSON_AddStringToObject(er, "type", "api_error");
        cJSON_AddStringToObject(er, "message", j->err[0] ? j->err : "generation failed");
        ev_obj(st, "error", o);
        return 1;
    }
    close_block(st, s);
    cJSON *o = cJSON_CreateObject(), *d = cJSON_AddObjectToObject(o, "delta");
    cJSON_AddStringToObject(d, "stop_reason", stop_reason(j));
    if (j->stop_hit) cJSON_AddStringToObject(d, "stop_sequence", j->stop_hit); else cJSON_AddNullToObject(d, "stop_sequence");
    add_usage(o, j, j->n_gen);
    ev_obj(st, "message_delta", o);
    ev_obj(st, "message_stop", cJSON_CreateObject());
    return 1;
}

static cJSON *an_result(srv_job *j, const char *id, const char *model) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "type", "message");
    cJSON_AddStringToObject(o, "role", "assistant");
    cJSON_AddStringToObject(o, "model", model);
    cJSON *content = cJSON_AddArrayToObject(o, "content");
    for (int kind = 1; kind <= 3; kind++) {
        size_t n = 0;
        for (int i = 0; i < j->nev; i++) if ((int)j->ev[i].kind == kind) n += j->ev[i].len;
        if (kind == 3) {
            for (int i = 0; i < j->nev; i++) if (j->ev[i].kind == SRV_EV_TOOL_CALL) cJSON_AddItemToArray(content, tool_use_block(&j->ev[i], 0));
            continue;
        }
        if (n == 0) continue;
        char *s = malloc(n + 1), *w = s;
        if (!s) continue;
        for (int i = 0; i < j->nev; i++) if ((int)j->ev[i].kind == kind) { memcpy(w, j->ev[i].text, j->ev[i].len); w += j->ev[i].len; }
        *w = 0;
        cJSON *b = cJSON_CreateObject();
        cJSON_AddStringToObject(b, "type", kind == 1 ? "thinking" : "text");
        cJSON_AddStringToObject(b, kind == 1 ? "thinking" : "text", s);
        if (kind == 1) cJSON_AddStringToObject(b, "signature", "");
        cJSON_AddItemToArray(content, b);
        free(s);
    }
    cJSON_AddStringToObject(o, "stop_reason", stop_reason(j));
    if (j->stop_hit) cJSON_AddStringToObject(o, "stop_sequence", j->stop_hit); else cJSON_AddNullToObject(o, "stop_sequence");
    add_usage(o, j, j->n_gen);
    return o;
}

int srv_api_messages(const srv_request *q, srv_reply *r) {
    srv_error e;
    srv_gen g = { .thinking = 0 };
    cJSON *req = NULL, *msgs = cJSON_CreateArray(), *tools = NULL;
    int stream = 0;
    if (srv_parse_body(q->body, q->body_len, &req, &e)) goto fail;
    if (srv_parse_sampling(req, &g, &e)) goto fail;
    long mt = 0;
    if (!cJSON_GetObjectItemCaseSensitive(req, "max_tokens")) { srv_err(&e, 400, IRE, NULL, "max_tokens", "max_tokens: Field required"); goto fail; }
    if (srv_get_int(req, "max_tokens", 1, 1L << 30, &mt, &e)) goto fail;
    g.max_tokens = (int)mt;
    if (srv_get_bool(req, "stream", &stream, &e)) goto fail;
    if (srv_parse_stop(cJSON_GetObjectItemCaseSensitive(req, "stop_sequences"), "stop_sequences", &g, &e)) goto fail;
    const cJSON *th = cJSON_GetObjectItemCaseSensitive(req, "thinking");
    if (th && !cJSON_IsNull(th)) {
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(th, "type");
        if (!cJSON_IsString(ty) || (strcmp(ty->valuestring, "enabled") && strcmp(ty->valuestring, "disabled") && strcmp(ty->valuestring, "adaptive"))) {
            srv_err(&e, 400, IRE, NULL, "thinking", "'thinking.type' must be enabled, disabled or adaptive");
            goto fail;
        }
        g.thinking = strcmp(ty->valuestring, "disabled") != 0;
    }
    const cJSON *oc = cJSON_GetObjectItemCaseSensitive(req, "output_config");
    if (cJSON_IsObject(oc) && srv_parse_effort(cJSON_GetObjectItemCaseSensitive(oc, "effort"), "output_config.effort", &g, &e)) goto fail;
    if (convert(req, msgs, &e)) goto fail;
    if (srv_check_messages(msgs, &e)) goto fail;
    int terr;
    tools = convert_tools(cJSON_GetObjectItemCaseSensitive(req, "tools"), cJSON_GetObjectItemCaseSensitive(req, "tool_choice"), &g, &e, &terr);
    if (terr) goto fail;
    int32_t *toks; int n;
    if (srv_render_tokens(q->eng, msgs, tools, NULL, &g, &toks, &n, &e)) goto fail;
    srv_job *j = srv_submit(q->eng, toks, n, &g, &e);
    if (!j) goto fail;
    char id[48];
    srv_make_id("msg_", id);
    if (stream) {
        an_state *s = calloc(1, sizeof *s);
        if (!s) { srv_job_cancel(j); srv_job_release(j); srv_err(&e, 500, "api_error", NULL, NULL, "out of memory"); goto fail; }
        snprintf(s->id, sizeof s->id, "%s", id);
        snprintf(s->model, sizeof s->model, "%s", q->cfg->model_name);
        r->status = 200;
        r->job = j; r->pump = an_pump; r->api_state = s; r->api_free = free;
    } else {
        srv_job_wait(j, q->gone, q->gone_arg);
        int failed = j->finish == SRV_FIN_ERROR;
        if (failed) srv_err(&e, 500, "api_error", NULL, NULL, "%s", j->err);
        else srv_reply_json(r, 200, an_result(j, id, q->cfg->model_name));
        srv_job_release(j);
        if (failed) goto fail;
    }
    cJSON_Delete(req); cJSON_Delete(msgs); cJSON_Delete(tools);
    srv_gen_free(&g);
    return 0;
fail:
    cJSON_Delete(req); cJSON_Delete(msgs); cJSON_Delete(tools);
    srv_gen_free(&g);
    srv_reply_error(r, SRV_API_ANTHROPIC, &e);
    return -1;
}
