/* server/api_openai.c — OpenAI-compatible endpoints: POST /v1/chat/completions (non-stream and SSE with
 * stream_options.include_usage), POST /v1/completions (raw prompt), GET /v1/models.
 *
 * Chat request fields: messages (system/developer, user, assistant with tool_calls and reasoning_content, tool),
 * tools, tool_choice (auto, none: tools dropped from the prompt; required: the reply is forced to open a DSML tool
 * call where it begins (after the reasoning); a named function: only that tool is offered and the call to it forced), response_format (rendered into the system prompt by the encoder), stream,
 * stream_options, max_tokens / max_completion_tokens, temperature, top_p, top_k, seed, stop, n (1 only),
 * logprobs / top_logprobs, presence/frequency_penalty (accepted, ignored), thinking {type}, reasoning_effort.
 * The reply carries reasoning_content (thinking mode), content, tool_calls (arguments as a JSON string),
 * finish_reason stop / length / tool_calls and usage with prompt_tokens_details.cached_tokens. Streaming sends the
 * role first, then reasoning_content deltas, content deltas, each tool call as one tool-call delta, the finish
 * chunk, the usage chunk when asked, and "data: [DONE]". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "server/server.h"

#define IRE "invalid_request_error"

typedef struct {
    char id[48];
    char model[128];
    long created;
    int ev_i, lp_i, sent_role, include_usage, logprobs;
    srv_engine *eng;
} oa_state;

static void usage_json(cJSON *o, srv_job *j) {
    cJSON *u = cJSON_AddObjectToObject(o, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", j->n_prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", j->n_gen);
    cJSON_AddNumberToObject(u, "total_tokens", j->n_prompt + j->n_gen);
    cJSON *d = cJSON_AddObjectToObject(u, "prompt_tokens_details");
    cJSON_AddNumberToObject(d, "cached_tokens", j->n_cached);
    cJSON_AddNumberToObject(u, "prompt_cache_hit_tokens", j->n_cached);
    cJSON_AddNumberToObject(u, "prompt_cache_miss_tokens", j->n_prompt - j->n_cached);
}

static cJSON *token_json(const dsv4_tokenizer *tok, int32_t id, float lp) {
    cJSON *o = cJSON_CreateObject();
    size_t n = 0;
    const char *b = dsv4_token_bytes(tok, id, &n);
    char *clean = srv_utf8_clean(b ? b : "", b ? n : 0);
    cJSON_AddStringToObject(o, "token", clean ? clean : "");
    free(clean);
    cJSON_AddNumberToObject(o, "logprob", lp);
    cJSON *by = cJSON_AddArrayToObject(o, "bytes");
    for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(by, cJSON_CreateNumber((unsigned char)b[i]));
    return o;
}

/* logprobs entries lp[from..to) in the chat form {"content": [...]} */
static cJSON *logprobs_json(srv_engine *eng, srv_job *j, int from, int to) {
    const dsv4_tokenizer *tok = srv_engine_tokenizer(eng);
    cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "content");
    for (int i = from; i < to; i++) {
        cJSON *t = token_json(tok, j->lp[i].token, j->lp[i].logprob);
        cJSON *top = cJSON_AddArrayToObject(t, "top_logprobs");
        for (int k = 0; k < j->lp[i].ntop; k++) cJSON_AddItemToArray(top, token_json(tok, j->lp[i].top[k], j->lp[i].top_lp[k]));
        cJSON_AddItemToArray(arr, t);
    }
    return o;
}

static cJSON *tool_call_json(const srv_event *ev, int with_index) {
    cJSON *tc = cJSON_CreateObject();
    if (with_index) cJSON_AddNumberToObject(tc, "index", ev->index);
    cJSON_AddStringToObject(tc, "id", ev->id);
    cJSON_AddStringToObject(tc, "type", "function");
    cJSON *fn = cJSON_AddObjectToObject(tc, "function");
    cJSON_AddStringToObject(fn, "name", ev->name);
    cJSON_AddStringToObject(fn, "arguments", ev->args);
    return tc;
}

/* ------------------------------------------------------------------ request parsing shared by chat and completions */
static int parse_common(const cJSON *req, srv_gen *g, int *stream, int *include_usage, srv_error *e) {
    if (srv_parse_sampling(req, g, e)) return -1;
    long l = 0;
    if (srv_get_int(req, "max_tokens", 1, 1L << 30, &l, e)) return -1;
    if (srv_get_int(req, "max_completion_tokens", 1, 1L << 30, &l, e)) return -1;
    g->max_tokens = (int)l;
    if (srv_get_bool(req, "stream", stream, e)) return -1;
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(req, "stream_options");
    if (so && !cJSON_IsNull(so)) {
        if (!cJSON_IsObject(so)) return srv_err(e, 400, IRE, "invalid_type", "stream_options", "'stream_options' must be an object");
        if (srv_get_bool(so, "include_usage", include_usage, e)) return -1;
    }
    if (srv_parse_stop(cJSON_GetObjectItemCaseSensitive(req, "stop"), "stop", g, e)) return -1;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(req, "model");
    if (model && !cJSON_IsString(model) && !cJSON_IsNull(model))
        return srv_err(e, 400, IRE, "invalid_type", "model", "'model' must be a string");
    return 0;
}

static const char *model_name(const srv_request *q, const cJSON *req) {
    (void)req;
    return q->cfg->model_name;
}

/* ------------------------------------------------------------------ chat: streaming */
/* Hand job j to the HTTP layer as an SSE stream of `pump` (chat or completion chunks) with a fresh oa_state. On
 * out of memory the job is cancelled and released and e is filled (-1). */
static int stream_start(const srv_request *q, const cJSON *req, srv_reply *r, srv_job *j, const char *id,
                        int include_usage, int logprobs, srv_pump_fn pump, srv_error *e) {
    oa_state *s = calloc(1, sizeof *s);
    if (!s) { srv_job_cancel(j); srv_job_release(j); srv_err(e, 500, "server_error", NULL, NULL, "out of memory"); return -1; }
    snprintf(s->id, sizeof s->id, "%s", id);
    snprintf(s->model, sizeof s->model, "%s", model_name(q, req));
    s->created = (long)time(NULL);
    s->eng = q->eng;
    s->include_usage = include_usage;
    s->logprobs = logprobs;
    r->status = 200;
    r->job = j; r->pump = pump; r->api_state = s; r->api_free = free;
    return 0;
}

static int chat_pump(srv_stream *st, srv_job *j, void *arg) {
    oa_state *s = arg;
#define CHUNK_BEGIN() \
    cJSON *o = cJSON_CreateObject(); \
    cJSON_AddStringToObject(o, "id", s->id); \
    cJSON_AddStringToObject(o, "object", "chat.completion.chunk"); \
    cJSON_AddNumberToObject(o, "created", (double)s->created); \
    cJSON_AddStringToObject(o, "model", s->model); \
    cJSON *chs = cJSON_AddArrayToObject(o, "choices"), *ch = cJSON_CreateObject(); \
    cJSON_AddItemToArray(chs, ch); \
    cJSON_AddNumberToObject(ch, "index", 0); \
    cJSON *delta = cJSON_AddObjectToObject(ch, "delta");
    if (!s->sent_role) {
        CHUNK_BEGIN();
        cJSON_AddStringToObject(delta, "role", "assistant");
        cJSON_AddStringToObject(delta, "content", "");
        cJSON_AddNullToObject(ch, "logprobs");
        cJSON_AddNullToObject(ch, "finish_reason");
        srv_stream_event(st, NULL, o);
        cJSON_Delete(o);
        s->sent_role = 1;
    }
    while (s->ev_i < j->nev) {
        const srv_event *ev = &j->ev[s->ev_i++];
        CHUNK_BEGIN();
        if (ev->kind == SRV_EV_REASONING) cJSON_AddStringToObject(delta, "reasoning_content", ev->text);
        else if (ev->kind == SRV_EV_CONTENT) cJSON_AddStringToObject(delta, "content", ev->text);
        else cJSON_AddItemToArray(cJSON_AddArrayToObject(delta, "tool_calls"), tool_call_json(ev, 1));
        if (s->logprobs && s->lp_i < j->nlp) {
            cJSON_AddItemToObject(ch, "logprobs", logprobs_json(s->eng, j, s->lp_i, j->nlp));
            s->lp_i = j->nlp;
        } else cJSON_AddNullToObject(ch, "logprobs");
        cJSON_AddNullToObject(ch, "finish_reason");
        srv_stream_event(st, NULL, o);
        cJSON_Delete(o);
    }
    if (!j->done) return 0;
    if (j->finish == SRV_FIN_ERROR) {
        cJSON *o = cJSON_CreateObject(), *er = cJSON_AddObjectToObject(o, "error");
        cJSON_AddStringToObject(er, "message", j->err[0] ? j->err : "generation failed");
        cJSON_AddStringToObject(er, "type", "server_error");
        srv_stream_event(st, NULL, o);
        cJSON_Delete(o);
    } else {
        CHUNK_BEGIN();
        (void)delta;
        if (s->logprobs && s->lp_i < j->nlp) {
            cJSON_AddItemToObject(ch, "logprobs", logprobs_json(s->eng, j, s->lp_i, j->nlp));
            s->lp_i = j->nlp;
        } else cJSON_AddNullToObject(ch, "logprobs");
        cJSON_AddStringToObject(ch, "finish_reason", srv_finish_openai(j->finish));
        srv_stream_event(st, NULL, o);
        cJSON_Delete(o);
        if (s->include_usage) {
            cJSON *u = cJSON_CreateObject();
            cJSON_AddStringToObject(u, "id", s->id);
            cJSON_AddStringToObject(u, "object", "chat.completion.chunk");
            cJSON_AddNumberToObject(u, "created", (double)s->created);
            cJSON_AddStringToObject(u, "model", s->model);
            cJSON_AddArrayToObject(u, "choices");
            usage_json(u, j);
            srv_stream_event(st, NULL, u);
            cJSON_Delete(u);
        }
    }
    srv_stream_put(st, "data: [DONE]\n\n", 14);
    return 1;
#undef CHUNK_BEGIN
}


/* Build the final chat.completion object of a finished job. */
static cJSON *chat_result(srv_engine *eng, srv_job *j, const char *id, const char *model, int thinking, int logprobs) {
    size_t nr = 0, nc = 0;
    int ntc = 0;
    for (int i = 0; i < j->nev; i++) {
        if (j->ev[i].kind == SRV_EV_REASONING) nr += j->ev[i].len;
        else if (j->ev[i].kind == SRV_EV_CONTENT) nc += j->ev[i].len;
        else ntc++;
    }
    char *rs = malloc(nr + 1), *cs = malloc(nc + 1);
    size_t wr = 0, wc = 0;
    for (int i = 0; rs && cs && i < j->nev; i++) {
        if (j->ev[i].kind == SRV_EV_REASONING) { memcpy(rs + wr, j->ev[i].text, j->ev[i].len); wr += j->ev[i].len; }
        else if (j->ev[i].kind == SRV_EV_CONTENT) { memcpy(cs + wc, j->ev[i].text, j->ev[i].len); wc += j->ev[i].len; }
    }
    if (!rs || !cs) { free(rs); free(cs); return NULL; }
    rs[wr] = 0; cs[wc] = 0;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "object", "chat.completion");
    cJSON_AddNumberToObject(o, "created", (double)time(NULL));
    cJSON_AddStringToObject(o, "model", model);
    cJSON *chs = cJSON_AddArrayToObject(o, "choices"), *ch = cJSON_CreateObject();
    cJSON_AddItemToArray(chs, ch);
    cJSON_AddNumberToObject(ch, "index", 0);
    cJSON *msg = cJSON_AddObjectToObject(ch, "message");
    cJSON_AddStringToObject(msg, "role", "assistant");
    if (nc == 0 && ntc) cJSON_AddNullToObject(msg, "content"); else cJSON_AddStringToObject(msg, "content", cs);
    if (thinking) cJSON_AddStringToObject(msg, "reasoning_content", rs);
    if (ntc) {
        cJSON *arr = cJSON_AddArrayToObject(msg, "tool_calls");
        for (int i = 0; i < j->nev; i++) if (j->ev[i].kind == SRV_EV_TOOL_CALL) cJSON_AddItemToArray(arr, tool_call_json(&j->ev[i], 0));
    }
    if (logprobs) cJSON_AddItemToObject(ch, "logprobs", logprobs_json(eng, j, 0, j->nlp));
    else cJSON_AddNullToObject(ch, "logprobs");
    cJSON_AddStringToObject(ch, "finish_reason", srv_finish_openai(j->finish));
    usage_json(o, j);
    free(rs); free(cs);
    return o;
}

int srv_api_chat(const srv_request *q, srv_reply *r) {
    srv_error e;
    srv_gen g = { .thinking = 1 };
    cJSON *req = NULL, *tools_sel = NULL;
    int stream = 0, include_usage = 0;
    if (srv_parse_body(q->body, q->body_len, &req, &e)) goto fail;
    if (parse_common(req, &g, &stream, &include_usage, &e)) goto fail;
    if (srv_get_bool(req, "logprobs", &g.logprobs, &e)) goto fail;
    long tl = 0;
    if (srv_get_int(req, "top_logprobs", 0, SRV_MAX_TOP_LOGPROBS, &tl, &e)) goto fail;
    g.top_logprobs = (int)tl;
    if (tl > 0 && !g.logprobs) { srv_err(&e, 400, IRE, "invalid_value", "top_logprobs", "'top_logprobs' needs 'logprobs': true"); goto fail; }
    const cJSON *th = cJSON_GetObjectItemCaseSensitive(req, "thinking");
    if (th && !cJSON_IsNull(th)) {
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(th, "type");
        if (!cJSON_IsObject(th) || !cJSON_IsString(ty) || (strcmp(ty->valuestring, "enabled") && strcmp(ty->valuestring, "disabled"))) {
            srv_err(&e, 400, IRE, "invalid_value", "thinking", "'thinking' must be {\"type\": \"enabled\"} or {\"type\": \"disabled\"}");
            goto fail;
        }
        g.thinking = !strcmp(ty->valuestring, "enabled");
    }
    if (srv_parse_effort(cJSON_GetObjectItemCaseSensitive(req, "reasoning_effort"), "reasoning_effort", &g, &e)) goto fail;
    cJSON *messages = cJSON_GetObjectItemCaseSensitive(req, "messages");
    if (!messages) { srv_err(&e, 400, IRE, "missing_required_parameter", "messages", "'messages' is required"); goto fail; }
    if (srv_check_messages(messages, &e)) goto fail;
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(req, "tools");
    const cJSON *tc = cJSON_GetObjectItemCaseSensitive(req, "tool_choice");
    if (tc && !cJSON_IsNull(tc)) {
        if (cJSON_IsString(tc)) {
            if (!strcmp(tc->valuestring, "none")) tools = NULL;
            else if (strcmp(tc->valuestring, "auto") && strcmp(tc->valuestring, "required")) {
                srv_err(&e, 400, IRE, "invalid_value", "tool_choice", "'tool_choice' must be none, auto, required or {\"type\": \"function\", \"function\": {\"name\": ...}}");
                goto fail;
            } else if (!strcmp(tc->valuestring, "required")) {
                if (cJSON_GetArraySize(tools) < 1) {
                    srv_err(&e, 400, IRE, "invalid_value", "tool_choice", "'tool_choice' is required but 'tools' is empty");
                    goto fail;
                }
                srv_force_tool(&g, NULL);
            }
        } else {
            const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(fn, "name");
            if (!cJSON_IsString(nm)) { srv_err(&e, 400, IRE, "invalid_value", "tool_choice", "'tool_choice.function.name' must be a string"); goto fail; }
            tools_sel = cJSON_CreateArray();
            const cJSON *t;
            cJSON_ArrayForEach(t, tools) {
                const cJSON *tn = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(t, "function"), "name");
                if (cJSON_IsString(tn) && !strcmp(tn->valuestring, nm->valuestring)) cJSON_AddItemReferenceToArray(tools_sel, (cJSON *)t);
            }
            if (cJSON_GetArraySize(tools_sel) == 0) {
                srv_err(&e, 400, IRE, "invalid_value", "tool_choice", "'tool_choice' names function '%s', which is not in 'tools'", nm->valuestring);
                goto fail;
            }
            tools = tools_sel;
            srv_force_tool(&g, nm->valuestring);
        }
    }
    const cJSON *rf = cJSON_GetObjectItemCaseSensitive(req, "response_format");
    if (rf && !cJSON_IsNull(rf)) {
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(rf, "type");
        if (!cJSON_IsObject(rf) || !cJSON_IsString(ty)) { srv_err(&e, 400, IRE, "invalid_type", "response_format", "'response_format' must be an object with a 'type'"); goto fail; }
    }
    int32_t *toks; int n;
    if (srv_render_tokens(q->eng, messages, tools, rf, &g, &toks, &n, &e)) goto fail;
    srv_job *j = srv_submit(q->eng, toks, n, &g, &e);
    if (!j) goto fail;
    char id[48];
    srv_make_id("chatcmpl-", id);
    if (stream) {
        if (stream_start(q, req, r, j, id, include_usage, g.logprobs, chat_pump, &e)) goto fail;
    } else {
        srv_job_wait(j, q->gone, q->gone_arg);
        pthread_mutex_lock(&j->mu);
        if (j->finish == SRV_FIN_ERROR) srv_err(&e, 500, "server_error", NULL, NULL, "%s", j->err);
        else srv_reply_json(r, 200, chat_result(q->eng, j, id, model_name(q, req), g.thinking, g.logprobs));
        pthread_mutex_unlock(&j->mu);
        int failed = j->finish == SRV_FIN_ERROR;
        srv_job_release(j);
        if (failed) goto fail;
    }
    cJSON_Delete(tools_sel);
    cJSON_Delete(req);
    srv_gen_free(&g);
    return 0;
fail:
    cJSON_Delete(tools_sel);
    cJSON_Delete(req);
    srv_gen_free(&g);
    srv_reply_error(r, SRV_API_OPENAI, &e);
    return -1;
}

/* ------------------------------------------------------------------ completions */
static int cmpl_pump(srv_stream *st, srv_job *j, void *arg) {
    oa_state *s = arg;
    int fin = j->done;
    while (s->ev_i < j->nev || fin) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", s->id);
        cJSON_AddStringToObject(o, "object", "text_completion");
        cJSON_AddNumberToObject(o, "created", (double)s->created);
        cJSON_AddStringToObject(o, "model", s->model);
        cJSON *chs = cJSON_AddArrayToObject(o, "choices"), *ch = cJSON_CreateObject();
        cJSON_AddItemToArray(chs, ch);
        cJSON_AddNumberToObject(ch, "index", 0);
        cJSON_AddNullToObject(ch, "logprobs");
        if (s->ev_i < j->nev) {
            cJSON_AddStringToObject(ch, "text", j->ev[s->ev_i++].text);
            cJSON_AddNullToObject(ch, "finish_reason");
        } else {
            cJSON_AddStringToObject(ch, "text", "");
            if (j->finish == SRV_FIN_ERROR) cJSON_AddStringToObject(ch, "error", j->err);
            cJSON_AddStringToObject(ch, "finish_reason", srv_finish_openai(j->finish));
            if (s->include_usage) usage_json(o, j);
            fin = 0;
            s->ev_i = -1;
        }
        srv_stream_event(st, NULL, o);
        cJSON_Delete(o);
        if (s->ev_i < 0) break;
    }
    if (!j->done) return 0;
    srv_stream_put(st, "data: [DONE]\n\n", 14);
    return 1;
}

int srv_api_completions(const srv_request *q, srv_reply *r) {
    srv_error e;
    srv_gen g = { .thinking = -1, .max_tokens = 16 };
    cJSON *req = NULL;
    int stream = 0, include_usage = 0;
    int32_t *toks = NULL;
    int n = 0;
    if (srv_parse_body(q->body, q->body_len, &req, &e)) goto fail;
    int mt = g.max_tokens;
    g.max_tokens = 0;
    if (parse_common(req, &g, &stream, &include_usage, &e)) goto fail;
    if (!g.max_tokens) g.max_tokens = mt;
    int echo = 0;
    if (srv_get_bool(req, "echo", &echo, &e)) goto fail;
    if (echo) { srv_err(&e, 400, IRE, "unsupported_value", "echo", "'echo' is not supported"); goto fail; }
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(req, "prompt");
    if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1 && !cJSON_IsNumber(cJSON_GetArrayItem(p, 0))) p = cJSON_GetArrayItem(p, 0);
    if (cJSON_IsString(p)) {
        const dsv4_tokenizer *tok = srv_engine_tokenizer(q->eng);
        char err[256];
        size_t len = strlen(p->valuestring);
        int cap = (int)(len + 16);
        if (!(toks = malloc(sizeof(int32_t) * (size_t)cap))) { srv_err(&e, 500, "server_error", NULL, NULL, "out of memory"); goto fail; }
        n = dsv4_tokenize(tok, p->valuestring, len, toks, cap, err, sizeof err);
        if (n < 0) { srv_err(&e, 400, IRE, "invalid_value", "prompt", "cannot tokenize 'prompt': %s", err); goto fail; }
    } else if (cJSON_IsArray(p) && cJSON_GetArraySize(p) > 0 && cJSON_IsNumber(cJSON_GetArrayItem(p, 0))) {
        n = cJSON_GetArraySize(p);
        if (!(toks = malloc(sizeof(int32_t) * (size_t)n))) { srv_err(&e, 500, "server_error", NULL, NULL, "out of memory"); goto fail; }
        int V = srv_engine_vocab(q->eng), i = 0;
        const cJSON *t;
        cJSON_ArrayForEach(t, p) {
            if (!cJSON_IsNumber(t) || t->valuedouble != (double)(int)t->valuedouble || t->valueint < 0 || t->valueint >= V) {
                srv_err(&e, 400, IRE, "invalid_value", "prompt", "'prompt[%d]' is not a token id in [0, %d)", i, V);
                goto fail;
            }
            toks[i++] = t->valueint;
        }
    } else {
        srv_err(&e, 400, IRE, "invalid_type", "prompt", "'prompt' must be a non-empty string or an array of token ids");
        goto fail;
    }
    if (n == 0) { srv_err(&e, 400, IRE, "invalid_value", "prompt", "'prompt' encodes to no tokens"); goto fail; }
    if (srv_check_placeholders(q->eng, toks, n, 0, "prompt", &e)) goto fail;   /* no images in raw prompts */
    srv_job *j = srv_submit(q->eng, toks, n, &g, &e);
    toks = NULL;
    if (!j) goto fail;
    char id[48];
    srv_make_id("cmpl-", id);
    if (stream) {
        if (stream_start(q, req, r, j, id, include_usage, 0, cmpl_pump, &e)) goto fail;
    } else {
        srv_job_wait(j, q->gone, q->gone_arg);
        int failed = j->finish == SRV_FIN_ERROR;
        if (failed) srv_err(&e, 500, "server_error", NULL, NULL, "%s", j->err);
        else {
            size_t len = 0;
            for (int i = 0; i < j->nev; i++) len += j->ev[i].len;
            char *text = malloc(len + 1), *w = text;
            for (int i = 0; text && i < j->nev; i++) { memcpy(w, j->ev[i].text, j->ev[i].len); w += j->ev[i].len; }
            if (text) *w = 0;
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "id", id);
            cJSON_AddStringToObject(o, "object", "text_completion");
            cJSON_AddNumberToObject(o, "created", (double)time(NULL));
            cJSON_AddStringToObject(o, "model", model_name(q, req));
            cJSON *chs = cJSON_AddArrayToObject(o, "choices"), *ch = cJSON_CreateObject();
            cJSON_AddItemToArray(chs, ch);
            cJSON_AddStringToObject(ch, "text", text ? text : "");
            cJSON_AddNumberToObject(ch, "index", 0);
            cJSON_AddNullToObject(ch, "logprobs");
            cJSON_AddStringToObject(ch, "finish_reason", srv_finish_openai(j->finish));
            usage_json(o, j);
            free(text);
            srv_reply_json(r, 200, o);
        }
        srv_job_release(j);
        if (failed) goto fail;
    }
    cJSON_Delete(req);
    srv_gen_free(&g);
    return 0;
fail:
    free(toks);
    cJSON_Delete(req);
    srv_gen_free(&g);
    srv_reply_error(r, SRV_API_OPENAI, &e);
    return -1;
}

/* ------------------------------------------------------------------ models */
int srv_api_models(const srv_request *q, srv_reply *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON *arr = cJSON_AddArrayToObject(o, "data"), *mdl = cJSON_CreateObject();
    cJSON_AddStringToObject(mdl, "id", q->cfg->model_name);
    cJSON_AddStringToObject(mdl, "object", "model");
    cJSON_AddNumberToObject(mdl, "created", 0);
    cJSON_AddStringToObject(mdl, "owned_by", "dsv4");
    cJSON_AddNumberToObject(mdl, "context_length", srv_engine_ctx(q->eng));
    cJSON_AddItemToArray(arr, mdl);
    srv_reply_json(r, 200, o);
    return 0;
}
