/* server/api_responses.c — POST /v1/responses (OpenAI Responses API), stateless.
 *
 * Request -> the common form (request.c): `instructions` -> a system message; `input` as a string (one user
 * message) or a list of items: messages {role, content: string | input_text/output_text parts, and input_image parts
 * {image_url: a data: URL} in user messages (images: request.c)} (with or without
 * type "message"), function_call {call_id, name, arguments} (joined to the assistant turn before it),
 * function_call_output {call_id, output} (-> a tool message), reasoning {content: reasoning_text parts, or
 * summary: summary_text parts} (-> reasoning_content of the next assistant turn). tools: function tools
 * {type: "function", name, description, parameters}; tool_choice none / auto / required / {type: function, name}.
 * reasoning.effort: none = chat mode, otherwise thinking (max = the max effort block); thinking is on by default
 * (DeepSeek's API). max_output_tokens, temperature, top_p. previous_response_id is refused (400): this server
 * keeps no conversations, send the whole history in `input`.
 * Reply: a response object with output items reasoning (reasoning_text content) / message (output_text) /
 * function_call, status completed or incomplete (max_output_tokens), usage with input_tokens_details.cached_tokens.
 * Streaming: response.created, response.in_progress, per item output_item.added, content_part.added,
 * output_text.delta / reasoning_text.delta / function_call_arguments.delta, the matching .done events,
 * output_item.done, then response.completed (or response.incomplete / response.failed); every event carries
 * sequence_number. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "server/server.h"

#define IRE "invalid_request_error"

/* Responses text content: a string or a list of text parts (input, output, reasoning and summary text). */
static char *parts_text(const cJSON *c, const char *param, srv_error *e) {
    static const char *const types[] = {"input_text", "output_text", "text", "reasoning_text", "summary_text", NULL};
    return srv_text_parts(c, param, types, "part", "server_error", e);
}

/* A message's content list holding input_image parts -> a list of text and image parts for the encoder (request.c
 * decodes the images; each part carries the client's name for messages in "x_dsv4_where"); NULL with e. */
static cJSON *image_parts(const cJSON *c, const char *param, srv_error *e) {
    cJSON *parts = cJSON_CreateArray();
    const cJSON *b;
    int k = 0;
    cJSON_ArrayForEach(b, c) {
        char bp[128];
        snprintf(bp, sizeof bp, "%s[%d]", param, k++);
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(b, "type"), *x = cJSON_GetObjectItemCaseSensitive(b, "text");
        const char *ty = cJSON_IsString(t) ? t->valuestring : "";
        cJSON *p = NULL;
        if (!strcmp(ty, "input_image")) {
            if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(b, "image_url")))
                srv_err(e, 400, IRE, "invalid_value", bp, "%s: an input_image needs image_url (a data: URL; file_id is "
                        "not supported)", bp);
            else if ((p = cJSON_Duplicate(b, 1))) cJSON_AddStringToObject(p, "x_dsv4_where", bp);
        } else if ((!strcmp(ty, "input_text") || !strcmp(ty, "output_text") || !strcmp(ty, "text")) && cJSON_IsString(x)) {
            p = cJSON_CreateObject();
            cJSON_AddStringToObject(p, "type", "text");
            cJSON_AddStringToObject(p, "text", x->valuestring);
        } else srv_err(e, 400, IRE, "invalid_value", bp, "%s: only text and input_image parts are supported here", bp);
        if (!p) { cJSON_Delete(parts); return NULL; }
        cJSON_AddItemToArray(parts, p);
    }
    return parts;
}

static int convert_input(const cJSON *req, cJSON *out, srv_error *e) {
    const cJSON *ins = cJSON_GetObjectItemCaseSensitive(req, "instructions");
    if (cJSON_IsString(ins)) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", "system");
        cJSON_AddStringToObject(m, "content", ins->valuestring);
        cJSON_AddItemToArray(out, m);
    } else if (ins && !cJSON_IsNull(ins)) return srv_err(e, 400, IRE, "invalid_type", "instructions", "'instructions' must be a string");
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(req, "input");
    if (cJSON_IsString(in)) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", "user");
        cJSON_AddStringToObject(m, "content", in->valuestring);
        cJSON_AddItemToArray(out, m);
        return 0;
    }
    if (!cJSON_IsArray(in)) return srv_err(e, 400, IRE, "invalid_type", "input", "'input' must be a string or a list of items");
    char *reason = NULL;
    cJSON *last_asst = NULL;
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, in) {
        char param[64];
        snprintf(param, sizeof param, "input[%d]", i++);
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(it, "type"), *role = cJSON_GetObjectItemCaseSensitive(it, "role");
        const char *t = cJSON_IsString(ty) ? ty->valuestring : "message";
        if (!cJSON_IsObject(it)) { free(reason); return srv_err(e, 400, IRE, "invalid_type", param, "%s must be an object", param); }
        if (!strcmp(t, "message")) {
            if (!cJSON_IsString(role)) { free(reason); return srv_err(e, 400, IRE, "invalid_type", param, "%s.role must be a string", param); }
            char cp[80];
            snprintf(cp, sizeof cp, "%s.content", param);
            const cJSON *mc = cJSON_GetObjectItemCaseSensitive(it, "content");
            cJSON *parts = NULL;
            char *txt = NULL;
            if (srv_has_part_type(mc, "input_image")) { if (!(parts = image_parts(mc, cp, e))) { free(reason); return -1; } }
            else if (!(txt = parts_text(mc, cp, e))) { free(reason); return -1; }
            cJSON *m = cJSON_CreateObject();
            cJSON_AddStringToObject(m, "role", role->valuestring);
            if (parts) cJSON_AddItemToObject(m, "content", parts);
            else cJSON_AddStringToObject(m, "content", txt);
            free(txt);
            if (!strcmp(role->valuestring, "assistant")) {
                if (reason) { cJSON_AddStringToObject(m, "reasoning_content", reason); free(reason); reason = NULL; }
                last_asst = m;
            } else last_asst = NULL;
            cJSON_AddItemToArray(out, m);
        } else if (!strcmp(t, "function_call")) {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "call_id"), *nm = cJSON_GetObjectItemCaseSensitive(it, "name");
            const cJSON *args = cJSON_GetObjectItemCaseSensitive(it, "arguments");
            if (!cJSON_IsString(id) || !cJSON_IsString(nm) || !cJSON_IsString(args)) {
                free(reason);
                return srv_err(e, 400, IRE, "invalid_type", param, "%s must be {type: function_call, call_id, name, arguments: string}", param);
            }
            if (!last_asst) {
                last_asst = cJSON_CreateObject();
                cJSON_AddStringToObject(last_asst, "role", "assistant");
                cJSON_AddStringToObject(last_asst, "content", "");
                if (reason) { cJSON_AddStringToObject(last_asst, "reasoning_content", reason); free(reason); reason = NULL; }
                cJSON_AddItemToArray(out, last_asst);
            }
            cJSON *calls = cJSON_GetObjectItemCaseSensitive(last_asst, "tool_calls");
            if (!calls) calls = cJSON_AddArrayToObject(last_asst, "tool_calls");
            cJSON *tc = cJSON_CreateObject(), *fn = cJSON_CreateObject();
            cJSON_AddStringToObject(tc, "id", id->valuestring);
            cJSON_AddStringToObject(tc, "type", "function");
            cJSON_AddStringToObject(fn, "name", nm->valuestring);
            cJSON_AddStringToObject(fn, "arguments", args->valuestring);
            cJSON_AddItemToObject(tc, "function", fn);
            cJSON_AddItemToArray(calls, tc);
        } else if (!strcmp(t, "function_call_output")) {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "call_id");
            char op[80];
            snprintf(op, sizeof op, "%s.output", param);
            char *o = cJSON_IsString(id) ? parts_text(cJSON_GetObjectItemCaseSensitive(it, "output"), op, e) : NULL;
            if (!cJSON_IsString(id)) { free(reason); return srv_err(e, 400, IRE, "invalid_type", param, "%s.call_id must be a string", param); }
            if (!o) { free(reason); return -1; }
            cJSON *m = cJSON_CreateObject();
            cJSON_AddStringToObject(m, "role", "tool");
            cJSON_AddStringToObject(m, "tool_call_id", id->valuestring);
            cJSON_AddStringToObject(m, "content", o);
            free(o);
            cJSON_AddItemToArray(out, m);
            last_asst = NULL;
        } else if (!strcmp(t, "reasoning")) {
            const cJSON *c = cJSON_GetObjectItemCaseSensitive(it, "content");
            if (!c || cJSON_IsNull(c) || cJSON_GetArraySize(c) == 0) c = cJSON_GetObjectItemCaseSensitive(it, "summary");
            free(reason);
            if (!(reason = parts_text(c, param, e))) return -1;
        } else {
            free(reason);
            return srv_err(e, 400, IRE, "invalid_value", param, "%s: item type '%s' is not supported", param, t);
        }
    }
    free(reason);
    return 0;
}

static cJSON *convert_tools(const cJSON *tools, const cJSON *choice, srv_gen *g, srv_error *e, int *err) {
    *err = 0;
    if (!tools || cJSON_IsNull(tools)) return NULL;
    if (!cJSON_IsArray(tools)) { *err = srv_err(e, 400, IRE, "invalid_type", "tools", "'tools' must be an array"); return NULL; }
    const char *only = NULL;
    int required = 0;
    if (cJSON_IsString(choice)) {
        if (!strcmp(choice->valuestring, "none")) return NULL;
        required = !strcmp(choice->valuestring, "required");
    } else if (cJSON_IsObject(choice)) {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(choice, "name");
        if (cJSON_IsString(nm)) only = nm->valuestring;
    }
    cJSON *out = cJSON_CreateArray();
    int k = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, tools) {
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(t, "type"), *nm = cJSON_GetObjectItemCaseSensitive(t, "name");
        if (!cJSON_IsString(ty) || strcmp(ty->valuestring, "function") || !cJSON_IsString(nm)) {
            *err = srv_err(e, 400, IRE, "invalid_value", "tools", "tools[%d]: only {type: \"function\", name, parameters} tools are supported", k);
            cJSON_Delete(out);
            return NULL;
        }
        k++;
        if (only && strcmp(only, nm->valuestring)) continue;
        cJSON *ft = cJSON_CreateObject(), *fn = cJSON_CreateObject();
        cJSON_AddStringToObject(ft, "type", "function");
        cJSON_AddStringToObject(fn, "name", nm->valuestring);
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(t, "description"), *pa = cJSON_GetObjectItemCaseSensitive(t, "parameters");
        if (cJSON_IsString(d)) cJSON_AddStringToObject(fn, "description", d->valuestring);
        if (pa && !cJSON_IsNull(pa)) cJSON_AddItemToObject(fn, "parameters", cJSON_Duplicate(pa, 1));
        cJSON_AddItemToObject(ft, "function", fn);
        cJSON_AddItemToArray(out, ft);
    }
    if (only && cJSON_GetArraySize(out) == 0) {
        *err = srv_err(e, 400, IRE, "invalid_value", "tool_choice", "'tool_choice' names tool '%s', which is not in 'tools'", only);
        cJSON_Delete(out);
        return NULL;
    }
    if (cJSON_GetArraySize(out) > 0 && (only || required)) srv_force_tool(g, only);
    return out;
}

/* ------------------------------------------------------------------ output */
typedef struct {
    char id[48], model[128];
    long created;
    int seq, started, ev_i, open, n_items;   /* open: 0 none, 1 reasoning, 2 message */
    char item_id[48];
    char *acc; size_t nacc, cap;             /* text of the open item */
    int max_out;
} rs_state;

static char *events_text(const srv_job *j, srv_ev_kind k) {
    size_t n = 0;
    for (int i = 0; i < j->nev; i++) if (j->ev[i].kind == k) n += j->ev[i].len;
    char *s = malloc(n + 1), *w = s;
    if (!s) return NULL;
    for (int i = 0; i < j->nev; i++) if (j->ev[i].kind == k) { memcpy(w, j->ev[i].text, j->ev[i].len); w += j->ev[i].len; }
    *w = 0;
    return s;
}

static cJSON *reasoning_item(const char *id, const char *text) {
    cJSON *it = cJSON_CreateObject();
    cJSON_AddStringToObject(it, "type", "reasoning");
    cJSON_AddStringToObject(it, "id", id);
    cJSON_AddArrayToObject(it, "summary");
    cJSON *c = cJSON_AddArrayToObject(it, "content");
    if (text) {
        cJSON *p = cJSON_CreateObject();
        cJSON_AddStringToObject(p, "type", "reasoning_text");
        cJSON_AddStringToObject(p, "text", text);
        cJSON_AddItemToArray(c, p);
    }
    return it;
}

static cJSON *text_part(const char *text) {
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "type", "output_text");
    cJSON_AddStringToObject(p, "text", text);
    cJSON_AddArrayToObject(p, "annotations");
    cJSON_AddArrayToObject(p, "logprobs");
    return p;
}

static cJSON *message_item(const char *id, const char *text, int done) {
    cJSON *it = cJSON_CreateObject();
    cJSON_AddStringToObject(it, "type", "message");
    cJSON_AddStringToObject(it, "id", id);
    cJSON_AddStringToObject(it, "status", done ? "completed" : "in_progress");
    cJSON_AddStringToObject(it, "role", "assistant");
    cJSON *c = cJSON_AddArrayToObject(it, "content");
    if (text) cJSON_AddItemToArray(c, text_part(text));
    return it;
}

static cJSON *call_item(const srv_event *ev, int done) {
    cJSON *it = cJSON_CreateObject();
    char fid[64];
    snprintf(fid, sizeof fid, "fc_%s", ev->id);
    cJSON_AddStringToObject(it, "type", "function_call");
    cJSON_AddStringToObject(it, "id", fid);
    cJSON_AddStringToObject(it, "call_id", ev->id);
    cJSON_AddStringToObject(it, "name", ev->name);
    cJSON_AddStringToObject(it, "arguments", done ? ev->args : "");
    cJSON_AddStringToObject(it, "status", done ? "completed" : "in_progress");
    return it;
}

/* The response object; j NULL = just created (in progress, no output). */
static cJSON *response_obj(const rs_state *s, const srv_job *j) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", s->id);
    cJSON_AddStringToObject(o, "object", "response");
    cJSON_AddNumberToObject(o, "created_at", (double)s->created);
    const char *status = !j || !j->done ? "in_progress" : j->finish == SRV_FIN_ERROR ? "failed"
                       : j->finish == SRV_FIN_LENGTH ? "incomplete" : "completed";
    cJSON_AddStringToObject(o, "status", status);
    if (j && j->done && j->finish == SRV_FIN_ERROR) {
        cJSON *er = cJSON_AddObjectToObject(o, "error");
        cJSON_AddStringToObject(er, "code", "server_error");
        cJSON_AddStringToObject(er, "message", j->err);
    } else cJSON_AddNullToObject(o, "error");
    if (j && j->done && j->finish == SRV_FIN_LENGTH) {
        cJSON *d = cJSON_AddObjectToObject(o, "incomplete_details");
        cJSON_AddStringToObject(d, "reason", "max_output_tokens");
    } else cJSON_AddNullToObject(o, "incomplete_details");
    cJSON_AddStringToObject(o, "model", s->model);
    cJSON *out = cJSON_AddArrayToObject(o, "output");
    if (j && j->done) {
        char iid[96];
        int k = 0;   /* item ids as the stream gave them */
        char *r = events_text(j, SRV_EV_REASONING), *c = events_text(j, SRV_EV_CONTENT);
        if (r && *r) { snprintf(iid, sizeof iid, "rs_%s_%d", s->id + 5, k++); cJSON_AddItemToArray(out, reasoning_item(iid, r)); }
        if (c && *c) { snprintf(iid, sizeof iid, "msg_%s_%d", s->id + 5, k++); cJSON_AddItemToArray(out, message_item(iid, c, 1)); }
        for (int i = 0; i < j->nev; i++) if (j->ev[i].kind == SRV_EV_TOOL_CALL) cJSON_AddItemToArray(out, call_item(&j->ev[i], 1));
        free(r); free(c);
    }
    cJSON_AddBoolToObject(o, "parallel_tool_calls", 1);
    cJSON_AddBoolToObject(o, "store", 0);
    if (s->max_out) cJSON_AddNumberToObject(o, "max_output_tokens", s->max_out); else cJSON_AddNullToObject(o, "max_output_tokens");
    cJSON_AddNullToObject(o, "previous_response_id");
    if (j && j->done) {
        cJSON *u = cJSON_AddObjectToObject(o, "usage");
        cJSON_AddNumberToObject(u, "input_tokens", j->n_prompt);
        cJSON_AddNumberToObject(cJSON_AddObjectToObject(u, "input_tokens_details"), "cached_tokens", j->n_cached);
        cJSON_AddNumberToObject(u, "output_tokens", j->n_gen);
        cJSON_AddNumberToObject(cJSON_AddObjectToObject(u, "output_tokens_details"), "reasoning_tokens", 0);
        cJSON_AddNumberToObject(u, "total_tokens", j->n_prompt + j->n_gen);
    } else cJSON_AddNullToObject(o, "usage");
    return o;
}

static void emit(srv_stream *st, rs_state *s, const char *type, cJSON *o) {
    cJSON_AddStringToObject(o, "type", type);
    cJSON_AddNumberToObject(o, "sequence_number", s->seq++);
    srv_stream_event(st, type, o);
    cJSON_Delete(o);
}

static void acc_add(rs_state *s, const char *t, size_t n) {
    if (s->nacc + n + 1 > s->cap) {
        size_t cap = (s->nacc + n + 1) * 2;
        char *a = realloc(s->acc, cap);
        if (!a) return;
        s->acc = a; s->cap = cap;
    }
    memcpy(s->acc + s->nacc, t, n);
    s->nacc += n;
    s->acc[s->nacc] = 0;
}

static void close_item(srv_stream *st, rs_state *s) {
    if (!s->open) return;
    const char *text = s->acc ? s->acc : "";
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "item_id", s->item_id);
    cJSON_AddNumberToObject(o, "output_index", s->n_items);
    cJSON_AddNumberToObject(o, "content_index", 0);
    cJSON_AddStringToObject(o, "text", text);
    emit(st, s, s->open == 1 ? "response.reasoning_text.done" : "response.output_text.done", o);
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "item_id", s->item_id);
    cJSON_AddNumberToObject(o, "output_index", s->n_items);
    cJSON_AddNumberToObject(o, "content_index", 0);
    if (s->open == 1) {
        cJSON *p = cJSON_AddObjectToObject(o, "part");
        cJSON_AddStringToObject(p, "type", "reasoning_text");
        cJSON_AddStringToObject(p, "text", text);
    } else cJSON_AddItemToObject(o, "part", text_part(text));
    emit(st, s, "response.content_part.done", o);
    o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "output_index", s->n_items);
    cJSON_AddItemToObject(o, "item", s->open == 1 ? reasoning_item(s->item_id, text) : message_item(s->item_id, text, 1));
    emit(st, s, "response.output_item.done", o);
    s->open = 0;
    s->n_items++;
    s->nacc = 0;
    if (s->acc) s->acc[0] = 0;
}

static int rs_pump(srv_stream *st, srv_job *j, void *arg) {
    rs_state *s = arg;
    if (!s->started) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "response", response_obj(s, NULL));
        emit(st, s, "response.created", o);
        o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "response", response_obj(s, NULL));
        emit(st, s, "response.in_progress", o);
        s->started = 1;
    }
    while (s->ev_i < j->nev) {
        const srv_event *ev = &j->ev[s->ev_i++];
        int kind = ev->kind == SRV_EV_REASONING ? 1 : ev->kind == SRV_EV_CONTENT ? 2 : 3;
        if (kind != s->open) close_item(st, s);
        if (kind == 3) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "output_index", s->n_items);
            cJSON_AddItemToObject(o, "item", call_item(ev, 0));
            emit(st, s, "response.output_item.added", o);
            char fid[64];
            snprintf(fid, sizeof fid, "fc_%s", ev->id);
            o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "item_id", fid);
            cJSON_AddNumberToObject(o, "output_index", s->n_items);
            cJSON_AddStringToObject(o, "delta", ev->args);
            emit(st, s, "response.function_call_arguments.delta", o);
            o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "item_id", fid);
            cJSON_AddNumberToObject(o, "output_index", s->n_items);
            cJSON_AddStringToObject(o, "name", ev->name);
            cJSON_AddStringToObject(o, "arguments", ev->args);
            emit(st, s, "response.function_call_arguments.done", o);
            o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "output_index", s->n_items);
            cJSON_AddItemToObject(o, "item", call_item(ev, 1));
            emit(st, s, "response.output_item.done", o);
            s->n_items++;
            continue;
        }
        if (!s->open) {
            snprintf(s->item_id, sizeof s->item_id, "%s_%s_%d", kind == 1 ? "rs" : "msg", s->id + 5, s->n_items);
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "output_index", s->n_items);
            cJSON_AddItemToObject(o, "item", kind == 1 ? reasoning_item(s->item_id, NULL) : message_item(s->item_id, NULL, 0));
            emit(st, s, "response.output_item.added", o);
            o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "item_id", s->item_id);
            cJSON_AddNumberToObject(o, "output_index", s->n_items);
            cJSON_AddNumberToObject(o, "content_index", 0);
            if (kind == 1) {
                cJSON *p = cJSON_AddObjectToObject(o, "part");
                cJSON_AddStringToObject(p, "type", "reasoning_text");
                cJSON_AddStringToObject(p, "text", "");
            } else cJSON_AddItemToObject(o, "part", text_part(""));
            emit(st, s, "response.content_part.added", o);
            s->open = kind;
        }
        acc_add(s, ev->text, ev->len);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "item_id", s->item_id);
        cJSON_AddNumberToObject(o, "output_index", s->n_items);
        cJSON_AddNumberToObject(o, "content_index", 0);
        cJSON_AddStringToObject(o, "delta", ev->text);
        if (kind == 2) cJSON_AddArrayToObject(o, "logprobs");
        emit(st, s, kind == 1 ? "response.reasoning_text.delta" : "response.output_text.delta", o);
    }
    if (!j->done) return 0;
    close_item(st, s);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "response", response_obj(s, j));
    emit(st, s, j->finish == SRV_FIN_ERROR ? "response.failed" : j->finish == SRV_FIN_LENGTH ? "response.incomplete" : "response.completed", o);
    return 1;
}

static void rs_free(void *p) {
    rs_state *s = p;
    if (s) free(s->acc);
    free(s);
}

int srv_api_responses(const srv_request *q, srv_reply *r) {
    srv_error e;
    srv_gen g = { .thinking = 1, .prompt_param = "input" };
    cJSON *req = NULL, *msgs = cJSON_CreateArray(), *tools = NULL;
    int stream = 0;
    if (srv_parse_body(q->body, q->body_len, &req, &e)) goto fail;
    const cJSON *prev = cJSON_GetObjectItemCaseSensitive(req, "previous_response_id");
    if (prev && !cJSON_IsNull(prev)) {
        srv_err(&e, 400, IRE, "unsupported_parameter", "previous_response_id",
                "'previous_response_id' is not supported: this server stores no responses; send the whole conversation in 'input'");
        goto fail;
    }
    if (srv_parse_sampling(req, &g, &e)) goto fail;
    long mt = 0;
    if (srv_get_int(req, "max_output_tokens", 1, 1L << 30, &mt, &e)) goto fail;
    g.max_tokens = (int)mt;
    if (srv_get_bool(req, "stream", &stream, &e)) goto fail;
    const cJSON *rz = cJSON_GetObjectItemCaseSensitive(req, "reasoning");
    if (cJSON_IsObject(rz) && srv_parse_effort(cJSON_GetObjectItemCaseSensitive(rz, "effort"), "reasoning.effort", &g, &e)) goto fail;
    if (convert_input(req, msgs, &e)) goto fail;
    if (srv_check_messages(msgs, &e)) goto fail;
    int terr;
    tools = convert_tools(cJSON_GetObjectItemCaseSensitive(req, "tools"), cJSON_GetObjectItemCaseSensitive(req, "tool_choice"), &g, &e, &terr);
    if (terr) goto fail;
    int32_t *toks; int n;
    if (srv_render_tokens(q->eng, msgs, tools, NULL, &g, &toks, &n, &e)) goto fail;
    srv_job *j = srv_submit(q->eng, toks, n, &g, &e);
    if (!j) goto fail;
    rs_state *s = calloc(1, sizeof *s);
    if (!s) { srv_job_cancel(j); srv_job_release(j); srv_err(&e, 500, "server_error", NULL, NULL, "out of memory"); goto fail; }
    srv_make_id("resp_", s->id);
    snprintf(s->model, sizeof s->model, "%s", q->cfg->model_name);
    s->created = (long)time(NULL);
    s->max_out = (int)mt;
    if (stream) {
        r->status = 200;
        r->job = j; r->pump = rs_pump; r->api_state = s; r->api_free = rs_free;
    } else {
        srv_job_wait(j, q->gone, q->gone_arg);
        int failed = j->finish == SRV_FIN_ERROR;
        if (failed) srv_err(&e, 500, "server_error", NULL, NULL, "%s", j->err);
        else srv_reply_json(r, 200, response_obj(s, j));
        srv_job_release(j);
        rs_free(s);
        if (failed) goto fail;
    }
    cJSON_Delete(req); cJSON_Delete(msgs); cJSON_Delete(tools);
    srv_gen_free(&g);
    return 0;
fail:
    cJSON_Delete(req); cJSON_Delete(msgs); cJSON_Delete(tools);
    srv_gen_free(&g);
    srv_reply_error(r, SRV_API_OPENAI, &e);
    return -1;
}
