/* cli/cmd_chat.c — `dsv4 chat`: interactive multi-turn chat.
 *
 *   dsv4 chat -m DIR [--think|--no-think] [--temp T] [--top-p P] [--top-k K] [-s SEED] [-n N] [-c C]
 *             [--system TEXT] [--effort none|low|high|max|N] [--tools FILE.json] [--messages FILE.json] [--image FILE]... [-v]
 *
 * Images (a model with a vision tower): --image FILE (repeatable) attaches to the first message, the command
 * /image FILE to the next one. Each file is decoded and encoded by the tower when given (errors at once, the message
 * is not lost), and the user message becomes a content list: the image_url parts (the file paths) then the text. The
 * conversation's images (also those of --messages: data: URLs or files) are encoded once per URL and kept for the
 * session; the prompt is built with dsv4_prompt_build and evaluated with dsv4_eval_prompt, and the reuse described
 * below compares prefix keys (dsv4_prompt_key: an image position's key is its image's digest and offset), not ids.
 *
 * Input: on a terminal, lines are read with libedit (line editing, history of this and earlier sessions in
 * $HOME/.dsv4_history); otherwise plain lines from stdin. A message may span lines: a line `"""` opens a block
 * that the next `"""` line closes, and a line ending in `\` continues on the next line. A message that is not
 * valid UTF-8 (or holds a NUL byte) is refused with a message on stderr and not sent.
 * The whole conversation (a JSON message list, plus the tools of --tools) is rendered with dsv4_chat_render
 * (include/dsv4_chat.h), tokenized with the model's tokenizer (the prompt text starts with BOS) and evaluated,
 * reusing the session's tokens up to the first token that differs from the new prompt (-v shows how many):
 * when the session's tokens are a prefix of the prompt only the new ones are evaluated; otherwise (thinking mode
 * drops the reasoning of earlier turns from the prompt, so the new prompt leaves the session's tokens where the
 * last reply began) the session goes back to a checkpoint saved at the end of the last prompt's shared part
 * (dsv4_checkpoint_save / dsv4_checkpoint_restore: the rolling state only, a few MiB even for V4-Flash), or
 * starts over when that is not a prefix either. Tokens are sampled until EOS (or -n /
 * the context end), decoded and fed to the output parser (include/dsv4_parse.h): reasoning is shown dimmed on a
 * terminal, else each reasoning line is prefixed "thinking> "; tool calls as "tool_call> {JSON}" lines.
 *
 * Commands: /reset (clear history and session), /think, /no-think (switch mode; history kept), /tool TEXT
 * (answer the next unanswered tool call of the last reply; generation starts when all are answered), /history
 * (the conversation, readable), /save FILE (the conversation as JSON, for --messages), /help, /quit; `//text`
 * sends `/text`. Ctrl-C during a reply stops it (the partial reply stays in the history, the terminal's
 * attributes are reset); Ctrl-C at the prompt discards the line, a second one in a row exits; Ctrl-D at the
 * prompt exits (status 0). A write error on stdout ends the chat with status 1.
 * The tokenizer must know the DeepSeek-V4 special tokens used by the prompt format; a model without them
 * (e.g. the nano Shakespeare model) is refused at start with a message naming the missing tokens.
 */
#include "cli/cli_util.h"
#include "cli/cli_image.h"
#include "cli/commands.h"
#include "dsv4.h"
#include "dsv4_chat.h"
#include "dsv4_parse.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <histedit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ERRLEN 1024

static const char *chat_usage =
    "usage: dsv4 chat -m DIR [--think|--no-think] [--temp T] [--top-p P] [--top-k K] [-s SEED] [-n N] [-c C]\n"
    "                 [--system TEXT] [--effort none|low|high|max|N] [--tools FILE.json] [--messages FILE.json]\n"
    "                 [--image FILE]... [-v]\n"
    "  one message per line; \"\"\" on a line opens/closes a multi-line message; a trailing \\ continues the line\n"
    "  commands: /reset /think /no-think /tool TEXT /image FILE /history /save FILE /help /quit; Ctrl-C stops a reply\n"
    "  --image FILE           a JPEG or PNG attached to the first message (repeatable; /image FILE attaches one to the\n"
    "                         next message); needs a model with a vision tower\n"
    "  -m, --model DIR        model directory (its tokenizer must have the DeepSeek-V4 special tokens)\n"
    "  --think / --no-think   thinking mode (default) / chat mode; aliases --thinking, --nothink, --chat\n"
    "  --temp T               [0, 100], 0 = greedy (default 1.0); alias --temperature\n"
    "  --top-p P              (0, 1], 1 = off (default 1.0)\n"
    "  --top-k K              0..1073741824, 0 = off (default 0)\n"
    "  -s, --seed S           sampler seed, 0..2^64-1 (default: random, printed with -v)\n"
    "  -n, --n-predict N      at most N tokens per reply, 0..16777216 (default 2048); alias --max-tokens\n"
    "  -c, --ctx-size C       session size in tokens, the whole conversation must fit (default 8192, or the model's\n"
    "                         max_position_embeddings if smaller); alias --ctx\n"
    "  --system TEXT          system message at the start of the conversation\n"
    "  --effort E             reasoning effort: V4: none (default), high, max (max adds the effort block in thinking\n"
    "                         mode); V4.1 (chosen from the model): an integer 1..100, or low 50, high 75 (default), max 100\n"
    "  --tools FILE.json      tools the model may call: [{\"type\": \"function\", \"function\": {...}}, ...] or\n"
    "                         {\"tools\": [...]}; answer a call with /tool TEXT\n"
    "  --messages FILE.json   resume a conversation (a message array, or {\"messages\": [...], \"tools\": [...]} as\n"
    "                         written by /save)\n"
    "  -v                     per-turn timings and prompt reuse on stderr\n";

/* ---------------------------------------------------------------- output of one turn */
typedef struct {
    int tty;
    int in_reasoning;   /* a reasoning span is open on the terminal */
    int line_start;     /* next reasoning byte starts a line (for the "thinking> " prefix) */
    int printed;        /* anything printed this turn */
    int last_nl;        /* last byte printed was '\n' */
} out_state;

static void out_end_reasoning(out_state *o) {
    if (!o->in_reasoning) return;
    if (o->tty) fputs("\033[0m", stdout);
    if (!o->last_nl) fputc('\n', stdout);
    o->in_reasoning = 0;
    o->last_nl = 1;
}

static void on_event(void *user, const dsv4_parse_event *ev) {
    out_state *o = user;
    if (ev->kind == DSV4_EV_REASONING) {
        if (!o->in_reasoning) {
            if (o->printed && !o->last_nl) fputc('\n', stdout);
            if (o->tty) fputs("\033[2m", stdout);
            o->in_reasoning = 1;
            o->line_start = 1;
        }
        for (size_t i = 0; i < ev->len; i++) {
            if (o->line_start && !o->tty) fputs("thinking> ", stdout);
            o->line_start = ev->text[i] == '\n';
            fputc(ev->text[i], stdout);
        }
        o->last_nl = ev->text[ev->len - 1] == '\n';
    } else if (ev->kind == DSV4_EV_CONTENT) {
        out_end_reasoning(o);
        fwrite(ev->text, 1, ev->len, stdout);
        o->last_nl = ev->text[ev->len - 1] == '\n';
    } else {
        out_end_reasoning(o);
        cJSON *tc = cJSON_CreateObject(), *fn = cJSON_CreateObject();
        if (tc && fn) {
            cJSON_AddStringToObject(tc, "id", ev->call->id);
            cJSON_AddStringToObject(tc, "type", "function");
            cJSON_AddStringToObject(fn, "name", ev->call->name);
            cJSON_AddStringToObject(fn, "arguments", ev->call->arguments);
            cJSON_AddItemToObject(tc, "function", fn);
            fn = NULL;
            char *s = cJSON_PrintUnformatted(tc);
            if (s) printf("%stool_call> %s\n", o->last_nl || !o->printed ? "" : "\n", s);
            free(s);
        }
        cJSON_Delete(tc);
        cJSON_Delete(fn);
        o->last_nl = 1;
    }
    o->printed = 1;
    fflush(stdout);
}

/* Pending tool-call ids of the last assistant message that have no tool message after it. */
static const char *next_unanswered(cJSON *hist, int *remaining) {
    int n = cJSON_GetArraySize(hist), last = -1;
    for (int i = n - 1; i >= 0; i--) {
        cJSON *r = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(hist, i), "role");
        if (cJSON_IsString(r) && !strcmp(r->valuestring, "assistant")) { last = i; break; }
    }
    *remaining = 0;
    if (last < 0) return NULL;
    cJSON *calls = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(hist, last), "tool_calls");
    const char *first = NULL;
    cJSON *call;
    cJSON_ArrayForEach(call, calls) {
        cJSON *id = cJSON_GetObjectItemCaseSensitive(call, "id");
        if (!cJSON_IsString(id)) continue;
        int answered = 0;
        for (int i = last + 1; i < n && !answered; i++) {
            cJSON *tid = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(hist, i), "tool_call_id");
            answered = cJSON_IsString(tid) && !strcmp(tid->valuestring, id->valuestring);
        }
        if (!answered) { if (!first) first = id->valuestring; (*remaining)++; }
    }
    return first;
}

/* ---------------------------------------------------------------- the conversation */
#define CHAT_MAX_IMAGES 256
typedef struct {
    dsv4_model *m;
    const dsv4_tokenizer *tok;
    dsv4_session *s;      /* live session: its tokens are ev[0..nev) */
    dsv4_checkpoint *snap; /* checkpoint of the session after a prefix of ev: snap_n tokens (0 = none) */
    dsv4_sampler *smp;
    float *logits;
    int vocab, ctx, max_tokens, think, verbose, eos_id, eos_cfg;
    cli_effort effort;        /* --effort as given */
    dsv4_render_opts ro;      /* format and effort (from the model and --effort); thinking is set per prompt */
    const char *system;
    cJSON *hist;          /* array of messages */
    cJSON *tools;         /* array of tools, or NULL */
    uint64_t *ev;         /* [ctx] prefix keys (dsv4_prompt_key; a text position's key is its id) of the session */
    int nev, snap_n;
    int turn;
    const char *dir;
    char *pend[CLI_MAX_IMAGES]; /* image files attached to the next message (malloc'd paths) */
    int npend;
    struct { char *url; dsv4_image_embed *e; } cache[CHAT_MAX_IMAGES]; /* images encoded so far, by URL */
    int ncache;
} chat_t;

static void chat_reset(chat_t *c) {
    cJSON_Delete(c->hist);
    c->hist = cJSON_CreateArray();
    if (c->system) {
        cJSON *sm = cJSON_CreateObject();
        cJSON_AddStringToObject(sm, "role", "system");
        cJSON_AddStringToObject(sm, "content", c->system);
        cJSON_AddItemToArray(c->hist, sm);
    }
    dsv4_session_reset(c->s);
    c->nev = 0;
    c->snap_n = 0;
}

/* The request JSON of hist (+ tools) for dsv4_chat_render; malloc'd, NULL when out of memory. */
static char *request_json(const chat_t *c, cJSON *hist) {
    cJSON *req = cJSON_CreateObject();
    if (!req) return NULL;
    cJSON_AddItemReferenceToObject(req, "messages", hist);
    if (c->tools) cJSON_AddItemReferenceToObject(req, "tools", c->tools);
    char *json = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    return json;
}

/* The encoded image of `url` (cached by URL: each image is encoded once per session), or NULL with err. */
static dsv4_image_embed *chat_image(chat_t *c, const dsv4_chat_image *ci, char *err) {
    for (int i = 0; i < c->ncache; i++)
        if (!strcmp(c->cache[i].url, ci->url)) return c->cache[i].e;
    if (!dsv4_model_has_vision(c->m)) {
        snprintf(err, ERRLEN, "%s: this model has no vision tower (images need a model with vision_config and the "
                 "vision weights, e.g. DeepSeek-V4.1-Flash)", c->dir);
        return NULL;
    }
    if (c->ncache == CHAT_MAX_IMAGES) { snprintf(err, ERRLEN, "more than %d images in one session", CHAT_MAX_IMAGES); return NULL; }
    dsv4_image *im = NULL;
    dsv4_image_embed *e = NULL;
    char e2[ERRLEN - 64];
    if (cli_image_from_part_err(ci, 0, &im, err, ERRLEN)) return NULL;
    double t0 = cli_now();
    int rc = dsv4_image_encode(c->m, im, &e, e2, sizeof e2);
    dsv4_image_free(im);
    if (rc) { snprintf(err, ERRLEN, "%s: %s", ci->where, e2); return NULL; }
    char *u = strdup(ci->url);
    if (!u) { dsv4_image_embed_free(e); snprintf(err, ERRLEN, "out of memory"); return NULL; }
    if (c->verbose)
        fprintf(stderr, "[image %s: %d positions, encoded in %.2f s]\n", ci->url_len > 60 ? ci->where : ci->url,
                dsv4_image_embed_positions(e), cli_now() - t0);
    c->cache[c->ncache].url = u;
    c->cache[c->ncache].e = e;
    c->ncache++;
    return e;
}

/* Render and tokenize hist (+ tools) in the current mode, with its images. Returns the prompt, or NULL with err. */
static dsv4_prompt *prompt_tokens(chat_t *c, cJSON *hist, char *err) {
    char *json = request_json(c, hist);
    if (!json) { snprintf(err, ERRLEN, "out of memory"); return NULL; }
    char *prompt = NULL;
    size_t plen = 0;
    dsv4_chat_image *parts = NULL;
    int nparts = 0, n = 0;
    dsv4_render_opts ro = c->ro;
    ro.thinking = c->think;
    int rc = dsv4_chat_render_images(json, strlen(json), &ro, &prompt, &plen, &parts, &nparts, err, ERRLEN);
    free(json);
    if (rc) return NULL;
    dsv4_prompt *P = NULL;
    int32_t *ids = cli_tokenize_all(c->tok, prompt, plen, &n, err, ERRLEN);
    free(prompt);
    dsv4_image_embed **emb = nparts ? calloc((size_t)nparts, sizeof *emb) : NULL;
    if (ids && nparts && !emb) snprintf(err, ERRLEN, "out of memory");
    else if (ids) {
        int ok = 1;
        for (int k = 0; k < nparts && ok; k++) ok = (emb[k] = chat_image(c, &parts[k], err)) != NULL;
        if (ok && dsv4_prompt_build(&P, c->m, ids, n, emb, nparts, err, ERRLEN)) P = NULL;
    }
    free(emb);
    free(ids);
    dsv4_chat_images_free(parts, nparts);
    return P;
}

/* How much of the next prompt will equal this one: the common prefix of P and the prompt of hist plus a dummy
 * assistant reply and user message (in thinking mode the reply's reasoning is dropped there, so this ends where
 * the reply begins). The checkpoint is saved at that position. */
static int shared_prefix(chat_t *c, const dsv4_prompt *P, int np) {
    cJSON *h = cJSON_Duplicate(c->hist, 1);
    if (!h) return 0;
    cJSON *am = cJSON_CreateObject(), *um = cJSON_CreateObject();
    cJSON_AddStringToObject(am, "role", "assistant");
    cJSON_AddStringToObject(am, "content", "x");
    if (c->think) cJSON_AddStringToObject(am, "reasoning_content", "y");
    cJSON_AddItemToArray(h, am);
    cJSON_AddStringToObject(um, "role", "user");
    cJSON_AddStringToObject(um, "content", "z");
    cJSON_AddItemToArray(h, um);
    char err[ERRLEN];
    int d = 0;
    dsv4_prompt *Q = prompt_tokens(c, h, err);
    cJSON_Delete(h);
    if (!Q) return 0;
    int nq = dsv4_prompt_len(Q);
    while (d < np && d < nq && dsv4_prompt_key(P, d) == dsv4_prompt_key(Q, d)) d++;
    dsv4_prompt_free(Q);
    return d;
}

static void drop_last(cJSON *hist) { cJSON_DeleteItemFromArray(hist, cJSON_GetArraySize(hist) - 1); }

/* Render, evaluate and generate one assistant reply; appends it to the history. On a failure before generation
 * the last history entry (the new input) is removed. Returns 0, or -1 on an engine error (fatal: the session
 * state is unknown). Ctrl-C (cli_interrupted) stops the reply; what was generated stays in the history. */
static int chat_turn(chat_t *c) {
    char err[ERRLEN];
    dsv4_prompt *P = prompt_tokens(c, c->hist, err);
    int np = dsv4_prompt_len(P);
    if (!P) {
        fprintf(stderr, "dsv4 chat: cannot render the conversation: %s\n", err);
        drop_last(c->hist);
        return 0;
    }
    if (np >= c->ctx) {
        fprintf(stderr, "dsv4 chat: the conversation is %d tokens, the context holds %d (-c); use /reset\n", np, c->ctx);
        dsv4_prompt_free(P);
        drop_last(c->hist);
        return 0;
    }
    /* reuse up to the first differing token: the live session when its tokens are a prefix of P, else the
     * checkpoint when its tokens are, else start over */
    int d = 0;
    while (d < c->nev && d < np && c->ev[d] == dsv4_prompt_key(P, d)) d++;
    int reuse = 0;
    const char *from = "";
    if (d == c->nev && d < np) { reuse = d; from = d ? " from the session" : ""; }
    else if (c->snap && c->snap_n > 0 && c->snap_n <= d && c->snap_n < np &&
             dsv4_checkpoint_restore(c->s, c->snap, err, sizeof err) == 0) {
        reuse = c->snap_n; from = " from the checkpoint";
    } else dsv4_session_reset(c->s);
    c->nev = reuse;
    double t0 = cli_now();
    /* evaluate up to the shared prefix of the next turn's prompt, save a checkpoint there, then the rest */
    int cut = dsv4_prompt_boundary(P, shared_prefix(c, P, np));   /* never inside a Vision-Exp image span */
    if (cut <= reuse || cut >= np) cut = 0;
    if (cut) {
        if (dsv4_eval_prompt(c->s, P, reuse, cut - reuse, NULL, 0, err, sizeof err)) goto eval_fail;
        if (dsv4_checkpoint_save(c->s, &c->snap, err, sizeof err) == 0) c->snap_n = cut;
        else c->snap_n = 0;
    } else if (c->snap_n > reuse) c->snap_n = 0;   /* the checkpoint's tokens are no longer those of ev */
    if (dsv4_eval_prompt(c->s, P, cut ? cut : reuse, np - (cut ? cut : reuse), c->logits, 0, err, sizeof err))
        goto eval_fail;
    for (int i = 0; i < np; i++) c->ev[i] = dsv4_prompt_key(P, i);
    c->nev = np;
    dsv4_prompt_free(P);
    P = NULL;
    double t1 = cli_now();

    dsv4_parser *p = dsv4_parser_new(c->think);
    if (!p || dsv4_parser_set_format(p, c->ro.format)) { dsv4_parser_free(p); fprintf(stderr, "dsv4 chat: out of memory\n"); return -1; }
    dsv4_parser_set_id_seed(p, (uint64_t)c->turn);
    out_state o = { .tty = isatty(STDOUT_FILENO), .last_nl = 1 };
    dsv4_detok_stream st = {0};
    char piece[1024];
    int limit = c->max_tokens < c->ctx - np ? c->max_tokens : c->ctx - np, gen = 0, hit_eos = 0;
    while (gen < limit && !cli_interrupted && !ferror(stdout)) {
        int32_t t = dsv4_sample(c->smp, c->logits);
        if (t == c->eos_id || t == c->eos_cfg) { hit_eos = 1; break; }
        gen++;
        int k = dsv4_detok_next(c->tok, &st, t, piece, sizeof piece);
        if (k > 0) dsv4_parser_feed(p, piece, (size_t)k, on_event, &o);
        if (gen < limit && !cli_interrupted) {
            if (dsv4_eval(c->s, &t, 1, c->logits, err, sizeof err)) {
                fprintf(stderr, "\ndsv4 chat: decode: %s\n", err);
                dsv4_parser_free(p);
                return -1;
            }
            c->ev[c->nev++] = (uint64_t)t;
        }
    }
    int interrupted = cli_interrupted;
    cli_interrupted = 0;
    int k = dsv4_detok_flush(&st, piece, sizeof piece);
    if (k > 0) dsv4_parser_feed(p, piece, (size_t)k, on_event, &o);
    dsv4_parser_close(p, on_event, &o);
    out_end_reasoning(&o);   /* resets the terminal's attributes */
    if (!o.last_nl) fputc('\n', stdout);
    fflush(stdout);
    dsv4_parse_result r;
    int frc = dsv4_parser_finish(p, &r);
    dsv4_parser_free(p);
    if (frc) { fprintf(stderr, "dsv4 chat: out of memory\n"); return -1; }
    double t2 = cli_now();
    if (interrupted) fprintf(stderr, "(reply stopped by Ctrl-C after %d tokens; it stays in the history)\n", gen);
    else if (!hit_eos && !ferror(stdout))   /* a write error stopped it: reported once at exit */
        fprintf(stderr, "dsv4 chat: reply stopped after %d tokens (%s) without end-of-sentence\n", gen,
                gen >= c->max_tokens ? "-n" : "context full");
    if (r.warnings && !interrupted) fprintf(stderr, "dsv4 chat: warning: %s\n", r.warnings);
    if (c->verbose)
        fprintf(stderr, "[turn %d: prompt %d tokens (reused %d%s, evaluated %d) %.2f s; generated %d tokens "
                "%.2f s (%.1f tok/s)%s]\n", c->turn, np, reuse, from, np - reuse, t1 - t0, gen, t2 - t1,
                gen / (t2 - t1 > 0 ? t2 - t1 : 1e-9), hit_eos ? "" : ", no EOS");
    /* history entry: content always a string (the encoder renders it verbatim) */
    cJSON *am = cJSON_CreateObject();
    cJSON_AddStringToObject(am, "role", "assistant");
    cJSON_AddStringToObject(am, "content", r.content);
    if (c->think) cJSON_AddStringToObject(am, "reasoning_content", r.reasoning_content);
    if (r.n_tool_calls) {
        cJSON *arr = cJSON_AddArrayToObject(am, "tool_calls");
        for (int i = 0; i < r.n_tool_calls; i++) {
            cJSON *tc = cJSON_CreateObject(), *fn = cJSON_CreateObject();
            cJSON_AddStringToObject(tc, "id", r.tool_calls[i].id);
            cJSON_AddStringToObject(tc, "type", "function");
            cJSON_AddStringToObject(fn, "name", r.tool_calls[i].name);
            cJSON_AddStringToObject(fn, "arguments", r.tool_calls[i].arguments);
            cJSON_AddItemToObject(tc, "function", fn);
            cJSON_AddItemToArray(arr, tc);
        }
    }
    cJSON_AddItemToArray(c->hist, am);
    dsv4_parse_result_free(&r);
    c->turn++;
    return 0;
eval_fail:
    fprintf(stderr, "dsv4 chat: prefill: %s\n", err);
    dsv4_prompt_free(P);
    return -1;
}

/* /history: the conversation, one block per message. */
static void print_history(const chat_t *c) {
    if (c->tools) printf("(%d tool%s declared)\n", cJSON_GetArraySize(c->tools), cJSON_GetArraySize(c->tools) == 1 ? "" : "s");
    int i = 0;
    cJSON *m;
    cJSON_ArrayForEach(m, c->hist) {
        const char *role = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "role"));
        const char *content = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "content"));
        const char *reasoning = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "reasoning_content"));
        const char *tcid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "tool_call_id"));
        printf("[%d] %s%s%s%s:", ++i, role ? role : "?", tcid ? " (" : "", tcid ? tcid : "", tcid ? ")" : "");
        if (reasoning && *reasoning) printf("\n  thinking: %s", reasoning);
        printf("%s%s", reasoning && *reasoning ? "\n  " : " ", content ? content : "");
        cJSON *part, *plist = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!cJSON_IsArray(plist)) plist = NULL;
        cJSON_ArrayForEach(part, plist) {
            const char *tx = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(part, "text"));
            cJSON *iu = cJSON_GetObjectItemCaseSensitive(part, "image_url");
            const char *u = cJSON_GetStringValue(cJSON_IsObject(iu) ? cJSON_GetObjectItemCaseSensitive(iu, "url") : iu);
            if (tx) printf("%s", tx);
            else if (u) printf("[image %.60s%s] ", u, strlen(u) > 60 ? "..." : "");
        }
        printf("\n");
        cJSON *tc;
        cJSON_ArrayForEach(tc, cJSON_GetObjectItemCaseSensitive(m, "tool_calls")) {
            cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
            printf("  tool_call %s: %s(%s)\n", cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(tc, "id")),
                   cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(fn, "name")),
                   cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(fn, "arguments")));
        }
    }
    if (i == 0) printf("(no messages yet)\n");
}

/* /save FILE: {"messages": [...], "tools": [...]} (readable by --messages). Returns 0 or prints why not. */
static int save_conversation(const chat_t *c, const char *path) {
    cJSON *req = cJSON_CreateObject();
    if (!req) { fprintf(stderr, "dsv4 chat: out of memory\n"); return -1; }
    cJSON_AddItemReferenceToObject(req, "messages", c->hist);
    if (c->tools) cJSON_AddItemReferenceToObject(req, "tools", c->tools);
    char *json = cJSON_Print(req);
    cJSON_Delete(req);
    if (!json) { fprintf(stderr, "dsv4 chat: out of memory\n"); return -1; }
    FILE *f = fopen(path, "w");
    int reg = cli_is_regular_file(f);   /* /save /dev/full must not delete the device */
    int ok = f && fputs(json, f) >= 0 && fputc('\n', f) != EOF;
    int e = errno;
    if (f && fclose(f) != 0 && ok) { ok = 0; e = errno; }
    free(json);
    if (!ok) { fprintf(stderr, "dsv4 chat: /save %s: %s\n", path, strerror(e)); if (reg) remove(path); return -1; }
    printf("(saved %d messages to %s)\n", cJSON_GetArraySize(c->hist), path);
    return 0;
}

/* Read a JSON file for --tools / --messages: the parsed value or NULL (reason printed, naming the file). */
static cJSON *read_json(const char *opt, const char *path) {
    size_t len;
    char *buf = cli_read_file("chat", path, &len);
    if (!buf) return NULL;
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (j)   /* only white space may follow the value */
        for (const char *p = end; p < buf + len; p++)
            if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') { cJSON_Delete(j); j = NULL; end = p; break; }
    if (!j) fprintf(stderr, "dsv4 chat: %s %s: not valid JSON (at byte offset %ld)\n", opt, path, end ? (long)(end - buf) : 0L);
    free(buf);
    return j;
}

/* ---------------------------------------------------------------- input */
typedef struct {
    EditLine *el;        /* NULL: plain lines from stdin */
    History *hist;
    const char *prompt;
    char histfile[4096];
    char *line;          /* getline buffer */
    size_t cap;
} input_t;

static input_t *g_in;   /* for the prompt callback */
static char *prompt_fn(EditLine *e) { (void)e; return (char *)(g_in ? g_in->prompt : "> "); }

static void input_open(input_t *in, int interactive) {
    memset(in, 0, sizeof *in);
    in->prompt = "> ";
    if (!interactive) return;
    g_in = in;
    in->el = el_init("dsv4", stdin, stdout, stderr);
    in->hist = history_init();
    if (!in->el || !in->hist) {
        if (in->el) el_end(in->el);
        if (in->hist) history_end(in->hist);
        in->el = NULL; in->hist = NULL;
        return;
    }
    HistEvent ev;
    history(in->hist, &ev, H_SETSIZE, 1000);
    history(in->hist, &ev, H_SETUNIQUE, 1);
    const char *home = getenv("HOME");
    if (home && *home) {
        snprintf(in->histfile, sizeof in->histfile, "%s/.dsv4_history", home);
        history(in->hist, &ev, H_LOAD, in->histfile);
    }
    el_set(in->el, EL_EDITOR, "emacs");
    el_set(in->el, EL_PROMPT, prompt_fn);
    el_set(in->el, EL_HIST, history, in->hist);
    el_source(in->el, NULL);   /* ~/.editrc, as other libedit programs */
}

static void input_close(input_t *in) {
    if (in->el) {
        HistEvent ev;
        if (in->histfile[0]) history(in->hist, &ev, H_SAVE, in->histfile);
        el_end(in->el);
        history_end(in->hist);
    }
    free(in->line);
    g_in = NULL;
}

/* One physical line without its line end, in in->line (length *n). Returns 1, 0 at EOF, -1 when Ctrl-C
 * interrupted the read. */
static int input_line(input_t *in, size_t *n) {
    if (cli_interrupted) return -1;   /* Ctrl-C between two reads */
    if (in->el) {
        int count = 0;
        const char *l = el_gets(in->el, &count);
        if (cli_interrupted) return -1;
        if (!l || count <= 0) return 0;
        size_t len = (size_t)count;
        if (len + 1 > in->cap) {
            char *nb = realloc(in->line, len + 1);
            if (!nb) return 0;
            in->line = nb; in->cap = len + 1;
        }
        memcpy(in->line, l, len);
        in->line[len] = 0;
        *n = len;
    } else {
        if (isatty(STDOUT_FILENO) && isatty(STDIN_FILENO)) { fputs(in->prompt, stdout); fflush(stdout); }
        errno = 0;
        ssize_t r = getline(&in->line, &in->cap, stdin);
        if (cli_interrupted) { clearerr(stdin); return -1; }
        if (r < 0) return 0;
        *n = (size_t)r;
    }
    while (*n > 0 && (in->line[*n - 1] == '\n' || in->line[*n - 1] == '\r')) in->line[--*n] = 0;
    return 1;
}

/* One message: a line, a `"""` block, or lines joined by a trailing backslash. Returns malloc'd text (length
 * *len) or NULL: *status 0 at EOF, -1 when Ctrl-C interrupted, -2 out of memory. */
static char *input_message(input_t *in, size_t *len, int *status) {
    char *msg = NULL;
    size_t ml = 0;
    int block = 0, nlines = 0;
    in->prompt = "> ";
    for (;;) {
        size_t n = 0;
        int r = input_line(in, &n);
        if (r <= 0) { free(msg); *status = r; in->prompt = "> "; return NULL; }
        int fence = n == 3 && !memcmp(in->line, "\"\"\"", 3);
        if (!block && !msg && fence) { block = 1; in->prompt = "... "; continue; }
        if (block && fence) break;
        int cont = !block && n > 0 && in->line[n - 1] == '\\';
        if (cont) n--;
        char *nb = realloc(msg, ml + n + 2);
        if (!nb) { free(msg); *status = -2; return NULL; }
        msg = nb;
        if (nlines++ > 0) msg[ml++] = '\n';
        memcpy(msg + ml, in->line, n);
        ml += n;
        msg[ml] = 0;
        if (!block && !cont) break;
        in->prompt = "... ";
    }
    if (in->el && msg && ml > 0) { HistEvent ev; history(in->hist, &ev, H_ENTER, msg); }
    if (!msg) { msg = malloc(1); if (!msg) { *status = -2; return NULL; } msg[0] = 0; }
    in->prompt = "> ";
    *len = ml;
    *status = 1;
    return msg;
}

/* ---------------------------------------------------------------- main */
static const char *commands_help =
    "/reset /think /no-think /tool TEXT /image FILE /history /save FILE /help /quit; \"\"\" for a multi-line message; "
    "// sends a leading /";

/* /image FILE: decode and encode now (errors at once), attach to the next message. */
static void attach_image(chat_t *c, const char *path) {
    char err[ERRLEN];
    if (!dsv4_model_has_vision(c->m)) {
        printf("(%s: this model has no vision tower; the image was not attached)\n", c->dir);
        return;
    }
    if (c->npend == CLI_MAX_IMAGES) { printf("(at most %d images per message)\n", CLI_MAX_IMAGES); return; }
    dsv4_chat_image ci = { .url = (char *)path, .url_len = strlen(path) };
    snprintf(ci.where, sizeof ci.where, "/image");
    /* a path given as is (also one with ':'): file:// keeps chat_image from reading it as a URL scheme */
    char *u = malloc(strlen(path) + 8);
    if (!u) { fprintf(stderr, "dsv4 chat: out of memory\n"); return; }
    snprintf(u, strlen(path) + 8, "%s%s", path[0] == '/' || !strchr(path, ':') ? "" : "file://", path);
    ci.url = u; ci.url_len = strlen(u);
    dsv4_image_embed *e = chat_image(c, &ci, err);
    if (!e) { printf("(%s; the image was not attached)\n", err); free(u); return; }
    c->pend[c->npend++] = u;
    printf("(image %s attached to your next message: %d positions)\n", path, dsv4_image_embed_positions(e));
}

int dsv4_cli_chat(int argc, char **argv) {
    const char *dir = NULL, *tools_file = NULL, *msgs_file = NULL;
    chat_t c = { .ctx = 8192, .max_tokens = 2048, .think = 1 };
    double temp = 1.0, top_p = 1.0;
    int top_k = 0, seed_seen = 0, ctx_seen = 0;
    uint64_t seed = 0;
    cli_image_list imgs = { .n = 0 };
    const cli_opt opts[] = {
        CLI_O_IMAGE(&imgs),
        CLI_O_MODEL(&dir), CLI_O_THINK(&c.think), CLI_O_TEMP(&temp), CLI_O_TOP_P(&top_p), CLI_O_TOP_K(&top_k),
        CLI_O_SEED(&seed, &seed_seen), CLI_O_N_PREDICT(&c.max_tokens), CLI_O_CTX(&c.ctx, &ctx_seen), CLI_O_EFFORT(&c.effort),
        { .names = "--system", .kind = CLI_STR, .dst = &c.system },
        { .names = "--tools", .kind = CLI_STR, .dst = &tools_file },
        { .names = "--messages", .kind = CLI_STR, .dst = &msgs_file },
        CLI_O_END
    };
    int prc = cli_parse("chat", chat_usage, opts, argc, argv);
    if (prc) return prc < 0 ? 0 : prc;
    c.verbose = cli_verbose;
    if (c.system && cli_utf8_invalid_at(c.system, strlen(c.system)) >= 0) {
        fprintf(stderr, "dsv4 chat: --system: the text is not valid UTF-8\n");
        return 2;
    }
    if (!dir) { fprintf(stderr, "dsv4 chat: -m DIR is required (dsv4 chat -h lists the options)\n"); return 2; }
    if (cli_parse_only) return 0;

    /* the JSON inputs first (nothing is loaded for a bad file) */
    cJSON *msgs = NULL;
    if (tools_file) {
        cJSON *t = read_json("--tools", tools_file);
        if (!t) return 1;
        c.tools = cJSON_IsObject(t) ? cJSON_DetachItemFromObjectCaseSensitive(t, "tools") : t;
        if (c.tools != t) cJSON_Delete(t);
        if (!cJSON_IsArray(c.tools)) {
            fprintf(stderr, "dsv4 chat: --tools %s: expected an array of tools or {\"tools\": [...]}\n", tools_file);
            cJSON_Delete(c.tools);
            return 1;
        }
    }
    if (msgs_file) {
        cJSON *j = read_json("--messages", msgs_file);
        if (!j) { cJSON_Delete(c.tools); return 1; }
        if (cJSON_IsObject(j)) {
            msgs = cJSON_DetachItemFromObjectCaseSensitive(j, "messages");
            cJSON *t = cJSON_DetachItemFromObjectCaseSensitive(j, "tools");
            if (t && !c.tools) c.tools = t;
            else cJSON_Delete(t);
            cJSON_Delete(j);
        } else msgs = j;
        if (!cJSON_IsArray(msgs)) {
            fprintf(stderr, "dsv4 chat: --messages %s: expected an array of messages or {\"messages\": [...]}\n", msgs_file);
            cJSON_Delete(msgs); cJSON_Delete(c.tools);
            return 1;
        }
    }

    char err[ERRLEN];
    int status = 1;
    input_t in = { 0 };
    dsv4_image *im0[CLI_MAX_IMAGES] = { 0 };
    c.dir = dir;
    if (cli_images_decode("chat", &imgs, im0)) { cJSON_Delete(msgs); cJSON_Delete(c.tools); return 1; }
    double t0 = cli_now();
    c.m = cli_load_model("chat", dir);
    if (!c.m) goto done;
    double t_load = cli_now() - t0;
    if (imgs.n && cli_require_vision("chat", c.m, dir)) goto done;
    c.tok = dsv4_model_tokenizer(c.m);
    if (!c.tok) { cli_fail("chat", "%s has no tokenizer.json", dir); goto done; }
    dsv4_model_info info;
    dsv4_model_get_info(c.m, &info);
    /* the prompt format follows the model (docs/encoding.md §10) */
    c.ro.format = info.v41 ? DSV4_FORMAT_V41 : DSV4_FORMAT_V4;
    if (cli_require_chat_tokens("chat", c.tok, dir, c.ro.format)) goto done;
    if (cli_effort_apply("chat", &c.effort, &c.ro)) { status = 2; goto done; }
    cli_default_ctx(c.m, &c.ctx, ctx_seen);
    if (cli_check_ctx("chat", "-c", c.m, c.ctx)) { status = 2; goto done; }
    c.vocab = info.vocab_size;
    c.eos_cfg = info.eos_token_id;
    c.eos_id = dsv4_token_id(c.tok, "<\xEF\xBD\x9C" "end\xE2\x96\x81" "of\xE2\x96\x81" "sentence\xEF\xBD\x9C>");
    dsv4_sampler_params sp = { .temperature = (float)temp, .top_p = (float)top_p, .top_k = top_k,
                               .seed = cli_seed("chat", seed, seed_seen) };
    if (dsv4_session_open(&c.s, c.m, c.ctx, err, sizeof err) ||
        dsv4_sampler_new(&c.smp, c.vocab, &sp, err, sizeof err)) {
        cli_fail("chat", "%s", err);
        goto done;
    }
    c.logits = malloc(sizeof(float) * (size_t)c.vocab);
    c.ev = malloc(sizeof(uint64_t) * (size_t)c.ctx);
    if (!c.logits || !c.ev) { cli_fail("chat", "out of memory"); goto done; }
    cli_load_summary("chat", dir, c.m, c.ctx, t_load);
    if (imgs.n) {
        /* --image: encoded now, attached to the first message */
        for (int k = 0; k < imgs.n; k++) {
            dsv4_image_embed *e = NULL;
            if (cli_images_encode("chat", c.m, &im0[k], &imgs.path[k], 1, &e)) goto done;
            c.cache[c.ncache].url = strdup(imgs.path[k]);
            c.cache[c.ncache].e = e;
            c.pend[c.npend] = strdup(imgs.path[k]);
            if (!c.cache[c.ncache++].url || !c.pend[c.npend++]) { cli_fail("chat", "out of memory"); goto done; }
        }
    }
    chat_reset(&c);
    if (msgs) {
        /* resume: the file's messages (its own system message wins over --system) */
        cJSON *first = cJSON_GetArrayItem(msgs, 0);
        const char *r0 = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(first, "role"));
        if (r0 && !strcmp(r0, "system")) { cJSON_Delete(c.hist); c.hist = msgs; }
        else { cJSON *m; while ((m = cJSON_DetachItemFromArray(msgs, 0))) cJSON_AddItemToArray(c.hist, m); cJSON_Delete(msgs); }
        msgs = NULL;
        dsv4_prompt *P = prompt_tokens(&c, c.hist, err);
        int n = dsv4_prompt_len(P);
        if (!P) { cli_fail("chat", "--messages %s: %s", msgs_file, err); goto done; }
        dsv4_prompt_free(P);
        if (n >= c.ctx) { cli_fail("chat", "--messages %s: the conversation is %d tokens, -c %d holds less", msgs_file, n, c.ctx); goto done; }
        fprintf(stderr, "(resumed %d messages, %d tokens, from %s)\n", cJSON_GetArraySize(c.hist), n, msgs_file);
    }
    int interactive = isatty(STDIN_FILENO);
    if (interactive)
        fprintf(stderr, "dsv4 chat: %s mode%s. %s\n", c.think ? "thinking" : "chat", c.tools ? ", tools declared" : "", commands_help);
    input_open(&in, interactive && isatty(STDOUT_FILENO));
    cli_sigint_begin();
    status = 0;
    int armed = 0;   /* the last input was Ctrl-C at the prompt */
    for (;;) {
        if (ferror(stdout)) break;
        size_t n = 0;
        int st;
        char *line = input_message(&in, &n, &st);
        if (!line) {
            if (st == -1) {   /* Ctrl-C at the prompt */
                cli_interrupted = 0;
                if (armed) { fputc('\n', stdout); break; }
                armed = 1;
                fprintf(stderr, "\n(Ctrl-C again to quit, or /quit)\n");
                continue;
            }
            if (st == -2) { cli_fail("chat", "out of memory"); status = 1; }
            else if (interactive) fputc('\n', stdout);   /* Ctrl-D: leave the shell prompt on a new line */
            break;
        }
        armed = 0;
        if (n == 0) { free(line); continue; }
        if (memchr(line, 0, n)) {
            fprintf(stderr, "dsv4 chat: your input line contains a NUL byte; it was not sent\n");
            free(line);
            continue;
        }
        long bad = cli_utf8_invalid_at(line, n);
        if (bad >= 0) {
            fprintf(stderr, "dsv4 chat: your input line is not valid UTF-8 (bad byte 0x%02x at byte offset %ld of the line); "
                    "it was not sent\n", (unsigned char)line[bad], bad);
            free(line);
            continue;
        }
        if (line[0] == '/' && line[1] != '/') {
            int quit = 0, turn = 0;
            if (!strcmp(line, "/quit") || !strcmp(line, "/exit")) quit = 1;
            else if (!strcmp(line, "/reset")) { chat_reset(&c); printf("(history cleared)\n"); }
            else if (!strcmp(line, "/think")) { c.think = 1; printf("(thinking mode)\n"); }
            else if (!strcmp(line, "/no-think") || !strcmp(line, "/nothink")) { c.think = 0; printf("(chat mode)\n"); }
            else if (!strcmp(line, "/history")) print_history(&c);
            else if (!strcmp(line, "/help")) printf("(%s)\n", commands_help);
            else if (!strncmp(line, "/save ", 6) && line[6]) save_conversation(&c, line + 6);
            else if (!strncmp(line, "/image", 6) && (!line[6] || line[6] == ' ' || line[6] == '\t')) {
                char *a = line + 6, *e = line + strlen(line);   /* the file name without surrounding blanks */
                while (*a == ' ' || *a == '\t') a++;
                while (e > a && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) *--e = 0;
                if (*a) attach_image(&c, a);
                else printf("(usage: /image FILE)\n");
            }
            else if (!strncmp(line, "/tool ", 6) || !strcmp(line, "/tool")) {
                int remaining;
                const char *id = next_unanswered(c.hist, &remaining);
                if (!id) printf("(no pending tool call%s)\n", c.tools ? "" : "; declare tools with --tools FILE.json");
                else {
                    cJSON *tm = cJSON_CreateObject();
                    cJSON_AddStringToObject(tm, "role", "tool");
                    cJSON_AddStringToObject(tm, "tool_call_id", id);
                    cJSON_AddStringToObject(tm, "content", line[5] ? line + 6 : "");
                    cJSON_AddItemToArray(c.hist, tm);
                    if (remaining > 1) printf("(%d more tool result%s expected)\n", remaining - 1, remaining > 2 ? "s" : "");
                    else turn = 1;
                }
            } else printf("(unknown command %s; %s)\n", line, commands_help);
            free(line);
            if (quit) break;
            if (turn && chat_turn(&c)) { status = 1; break; }
            continue;
        }
        cJSON *um = cJSON_CreateObject();
        cJSON_AddStringToObject(um, "role", "user");
        const char *text = line[0] == '/' ? line + 1 : line;   /* "//text" sends "/text" */
        if (c.npend) {
            /* the attached images, then the text (content parts; the encoder joins them with "\n\n") */
            cJSON *parts = cJSON_AddArrayToObject(um, "content");
            for (int k = 0; k < c.npend; k++) {
                cJSON *p = cJSON_CreateObject(), *iu = cJSON_CreateObject();
                cJSON_AddStringToObject(p, "type", "image_url");
                cJSON_AddStringToObject(iu, "url", c.pend[k]);
                cJSON_AddItemToObject(p, "image_url", iu);
                cJSON_AddItemToArray(parts, p);
                free(c.pend[k]);
            }
            c.npend = 0;
            cJSON *tp = cJSON_CreateObject();
            cJSON_AddStringToObject(tp, "type", "text");
            cJSON_AddStringToObject(tp, "text", text);
            cJSON_AddItemToArray(parts, tp);
        } else cJSON_AddStringToObject(um, "content", text);
        cJSON_AddItemToArray(c.hist, um);
        free(line);
        if (chat_turn(&c)) { status = 1; break; }
    }
    if (cli_stdout_close("chat")) status = 1;
done:
    cli_sigint_end();
    input_close(&in);
    free(c.logits);
    free(c.ev);
    cJSON_Delete(c.hist);
    cJSON_Delete(c.tools);
    cJSON_Delete(msgs);
    dsv4_sampler_free(c.smp);
    dsv4_checkpoint_free(c.snap);
    cli_images_free(im0, imgs.n);
    for (int k = 0; k < c.npend; k++) free(c.pend[k]);
    for (int k = 0; k < c.ncache; k++) { free(c.cache[k].url); dsv4_image_embed_free(c.cache[k].e); }
    dsv4_session_free(c.s);
    dsv4_model_free(c.m);
    return status;
}
