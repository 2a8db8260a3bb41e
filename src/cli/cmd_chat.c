/* cli/cmd_chat.c — `dsv4 chat`: interactive multi-turn chat on stdin/stdout.
 *
 *   dsv4 chat -m DIR [--think|--no-think] [--temperature T] [--top-p P] [--top-k K] [--seed S]
 *             [--max-tokens N] [--ctx C] [--system TEXT] [--effort high|max] [-v]
 *
 * Each input line is a user message; a line that is not valid UTF-8 (or holds a NUL byte) is refused with a
 * message on stderr and not sent. The whole conversation (a JSON message list) is rendered with
 * dsv4_chat_render (include/dsv4_chat.h, docs/encoding.md §3), tokenized with the model's tokenizer
 * (no BOS added: the prompt text starts with it), and evaluated; when the new prompt's tokens extend the
 * tokens already evaluated in the session only the new tokens are evaluated, otherwise the session is
 * reset and the prompt prefilled (e.g. thinking mode drops earlier reasoning, so every turn re-prefills;
 * chat mode normally reuses). Tokens are sampled until EOS (or --max-tokens / the context end), decoded,
 * and fed to the output parser (include/dsv4_parse.h): reasoning is shown dimmed on a terminal, else each
 * reasoning line is prefixed "thinking> "; the answer is printed as is; tool calls as
 * "tool_call> {JSON}" lines. The parsed message (content, reasoning_content, tool_calls) joins the history.
 *
 * Commands: /reset (clear history and session), /think, /no-think (switch mode; history kept),
 * /tool TEXT (answer the next unanswered tool call of the last reply; generation starts when all are
 * answered), /history (print the history JSON), /quit. EOF exits with status 0.
 * The tokenizer must know the DeepSeek-V4 special tokens used by the prompt format; a model without them
 * (e.g. the nano Shakespeare model) is refused at start with a message naming the missing tokens.
 */
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "dsv4.h"
#include "dsv4_chat.h"
#include "dsv4_parse.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ERRLEN 1024

static const char *chat_usage =
    "usage: dsv4 chat -m DIR [--think|--no-think] [--temperature T] [--top-p P] [--top-k K] [--seed S]\n"
    "                 [--max-tokens N] [--ctx C] [--system TEXT] [--effort high|max] [-v]\n"
    "  one user message per input line; commands: /reset /think /no-think /tool TEXT /history /quit\n"
    "  --think / --no-think   thinking mode (default) / chat mode\n"
    "  --temperature T        [0, 100], 0 = greedy (default 1.0)\n"
    "  --top-p P              (0, 1], 1 = off (default 1.0)\n"
    "  --top-k K              0 = off (default 0)\n"
    "  --seed S               sampler seed (default 42)\n"
    "  --max-tokens N         at most N tokens per reply (default 2048)\n"
    "  --ctx C                session size in tokens, the whole conversation must fit (default 8192)\n"
    "  --system TEXT          system message at the start of the conversation\n"
    "  --effort high|max      reasoning effort (max adds the effort block in thinking mode)\n"
    "  -v                     per-turn timing and prompt-reuse statistics on stderr\n"
    "  needs a tokenizer with the DeepSeek-V4 special tokens (the nano model has none and is refused)\n";

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

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

/* ---------------------------------------------------------------- the REPL */
typedef struct {
    dsv4_model *m;
    const dsv4_tokenizer *tok;
    dsv4_session *s;
    dsv4_sampler *smp;
    float *logits;
    int vocab, ctx, max_tokens, think, verbose, eos_id, eos_cfg;
    dsv4_effort effort;
    const char *system;
    cJSON *hist;          /* array of messages */
    int32_t *ev;          /* tokens evaluated in the session */
    int nev;
    int turn;
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

/* Render, evaluate and generate one assistant reply; appends it to the history. On a failure before
 * generation the last history entry (the new input) is removed. Returns 0, or -1 on an engine error
 * (fatal: the session state is unknown). */
static int chat_turn(chat_t *c) {
    char err[ERRLEN];
    cJSON *req = cJSON_CreateObject();
    cJSON_AddItemReferenceToObject(req, "messages", c->hist);
    char *json = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    char *prompt = NULL;
    size_t plen = 0;
    dsv4_render_opts ro = { .thinking = c->think, .effort = c->effort };
    int rc = json ? dsv4_chat_render(json, strlen(json), &ro, &prompt, &plen, err, sizeof err) : -1;
    free(json);
    if (rc) {
        fprintf(stderr, "dsv4 chat: cannot render the conversation: %s\n", json ? err : "out of memory");
        cJSON_DeleteItemFromArray(c->hist, cJSON_GetArraySize(c->hist) - 1);
        return 0;
    }
    int np = 0;
    int32_t *P = cli_tokenize_all(c->tok, prompt, plen, &np, err, ERRLEN);
    free(prompt);
    if (!P) {
        fprintf(stderr, "dsv4 chat: cannot tokenize the prompt: %s\n", err);
        cJSON_DeleteItemFromArray(c->hist, cJSON_GetArraySize(c->hist) - 1);
        return 0;
    }
    if (np >= c->ctx) {
        fprintf(stderr, "dsv4 chat: the conversation is %d tokens, the context holds %d (--ctx); use /reset\n", np, c->ctx);
        free(P);
        cJSON_DeleteItemFromArray(c->hist, cJSON_GetArraySize(c->hist) - 1);
        return 0;
    }
    /* prefix reuse */
    int reuse = c->nev > 0 && c->nev < np && !memcmp(c->ev, P, sizeof(int32_t) * (size_t)c->nev) ? c->nev : 0;
    if (!reuse) { dsv4_session_reset(c->s); c->nev = 0; }
    int32_t *nev = realloc(c->ev, sizeof(int32_t) * (size_t)c->ctx);
    if (!nev) { fprintf(stderr, "dsv4 chat: out of memory\n"); free(P); return -1; }
    c->ev = nev;
    double t0 = now_s();
    if (dsv4_eval(c->s, P + reuse, np - reuse, c->logits, err, sizeof err)) {
        fprintf(stderr, "dsv4 chat: prefill: %s\n", err);
        free(P);
        return -1;
    }
    memcpy(c->ev, P, sizeof(int32_t) * (size_t)np);
    c->nev = np;
    free(P);
    double t1 = now_s();

    dsv4_parser *p = dsv4_parser_new(c->think);
    if (!p) { fprintf(stderr, "dsv4 chat: out of memory\n"); return -1; }
    dsv4_parser_set_id_seed(p, (uint64_t)c->turn);
    out_state o = { .tty = isatty(STDOUT_FILENO), .last_nl = 1 };
    dsv4_detok_stream st = {0};
    char piece[1024];
    int limit = c->max_tokens < c->ctx - np ? c->max_tokens : c->ctx - np, gen = 0, hit_eos = 0;
    for (; gen < limit; ) {
        int32_t t = dsv4_sample(c->smp, c->logits);
        if (t == c->eos_id || t == c->eos_cfg) { hit_eos = 1; break; }
        gen++;
        int k = dsv4_detok_next(c->tok, &st, t, piece, sizeof piece);
        if (k > 0) dsv4_parser_feed(p, piece, (size_t)k, on_event, &o);
        if (gen < limit) {
            if (dsv4_eval(c->s, &t, 1, c->logits, err, sizeof err)) {
                fprintf(stderr, "\ndsv4 chat: decode: %s\n", err);
                dsv4_parser_free(p);
                return -1;
            }
            c->ev[c->nev++] = t;
        }
    }
    int k = dsv4_detok_flush(&st, piece, sizeof piece);
    if (k > 0) dsv4_parser_feed(p, piece, (size_t)k, on_event, &o);
    dsv4_parser_close(p, on_event, &o);
    out_end_reasoning(&o);
    if (!o.last_nl) fputc('\n', stdout);
    fflush(stdout);
    dsv4_parse_result r;
    int frc = dsv4_parser_finish(p, &r);
    dsv4_parser_free(p);
    if (frc) { fprintf(stderr, "dsv4 chat: out of memory\n"); return -1; }
    double t2 = now_s();
    if (!hit_eos) fprintf(stderr, "dsv4 chat: reply stopped after %d tokens (%s) without end-of-sentence\n", gen,
                          gen >= c->max_tokens ? "--max-tokens" : "context full");
    if (r.warnings) fprintf(stderr, "dsv4 chat: warning: %s\n", r.warnings);
    if (c->verbose)
        fprintf(stderr, "[turn %d: prompt %d tokens (reused %d, evaluated %d) %.2f s; generated %d tokens %.2f s (%.1f tok/s)%s]\n",
                c->turn, np, reuse, np - reuse, t1 - t0, gen, t2 - t1, gen / (t2 - t1 > 0 ? t2 - t1 : 1e-9),
                hit_eos ? "" : ", no EOS");
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
}

static const char *eos_text = "<\xEF\xBD\x9C" "end\xE2\x96\x81" "of\xE2\x96\x81" "sentence\xEF\xBD\x9C>";

int dsv4_cli_chat(int argc, char **argv) {
    const char *dir = NULL;
    chat_t c = { .ctx = 8192, .max_tokens = 2048, .think = 1 };
    dsv4_sampler_params sp = { 0 };
    double temp = 1.0, top_p = 1.0;
    int top_k = 0, seed_seen = 0, effort = 0;
    uint64_t seed = 0;
    const cli_opt opts[] = {
        CLI_O_MODEL(&dir), CLI_O_THINK(&c.think), CLI_O_TEMP(&temp), CLI_O_TOP_P(&top_p), CLI_O_TOP_K(&top_k),
        CLI_O_SEED(&seed, &seed_seen), CLI_O_N_PREDICT(&c.max_tokens), CLI_O_CTX(&c.ctx, NULL), CLI_O_EFFORT(&effort),
        { .names = "--system", .kind = CLI_STR, .dst = &c.system },
        CLI_O_END
    };
    int prc = cli_parse("chat", chat_usage, opts, argc, argv);
    if (prc) return prc < 0 ? 0 : prc;
    c.verbose = cli_verbose;
    c.effort = (dsv4_effort)effort;
    if (c.system && cli_utf8_invalid_at(c.system, strlen(c.system)) >= 0) {
        fprintf(stderr, "dsv4 chat: --system: the text is not valid UTF-8\n");
        return 2;
    }
    if (!dir) { fprintf(stderr, "dsv4 chat: -m DIR is required (dsv4 chat -h lists the options)\n"); return 2; }
    if (cli_parse_only) return 0;
    sp.temperature = (float)temp; sp.top_p = (float)top_p; sp.top_k = top_k;
    sp.seed = cli_seed("chat", seed, seed_seen);

    char err[ERRLEN];
    if (!(c.m = cli_load_model("chat", dir))) return 1;   /* --mem applies */
    c.tok = dsv4_model_tokenizer(c.m);
    if (!c.tok) {
        fprintf(stderr, "dsv4 chat: %s has no tokenizer.json\n", dir);
        dsv4_model_free(c.m);
        return 1;
    }
    if (cli_require_v4_tokens("chat", c.tok, dir)) {
        dsv4_model_free(c.m);
        return 1;
    }
    dsv4_model_info info;
    dsv4_model_get_info(c.m, &info);
    c.vocab = info.vocab_size;
    c.eos_cfg = info.eos_token_id;
    c.eos_id = dsv4_token_id(c.tok, eos_text);
    if (dsv4_session_open(&c.s, c.m, c.ctx, err, sizeof err) ||
        dsv4_sampler_new(&c.smp, c.vocab, &sp, err, sizeof err)) {
        fprintf(stderr, "dsv4 chat: %s\n", err);
        dsv4_session_free(c.s);
        dsv4_model_free(c.m);
        return 1;
    }
    c.logits = malloc(sizeof(float) * (size_t)c.vocab);
    if (!c.logits) {
        fprintf(stderr, "dsv4 chat: out of memory\n");
        dsv4_sampler_free(c.smp);
        dsv4_session_free(c.s);
        dsv4_model_free(c.m);
        return 1;
    }
    c.hist = NULL;
    chat_reset(&c);
    int interactive = isatty(STDIN_FILENO), status = 0;
    if (interactive)
        fprintf(stderr, "dsv4 chat: %s, %s mode. /reset /think /no-think /tool TEXT /history /quit\n", dir,
                c.think ? "thinking" : "chat");
    char *line = NULL;
    size_t cap = 0;
    for (;;) {
        if (interactive) { fputs("> ", stdout); fflush(stdout); }
        ssize_t n = getline(&line, &cap, stdin);
        if (n < 0) break;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
        if (n == 0) continue;
        if (memchr(line, 0, (size_t)n)) {
            fprintf(stderr, "dsv4 chat: your input line contains a NUL byte; it was not sent\n");
            continue;
        }
        long bad = cli_utf8_invalid_at(line, (size_t)n);
        if (bad >= 0) {
            fprintf(stderr, "dsv4 chat: your input line is not valid UTF-8 (bad byte 0x%02x at byte offset %ld of the line); "
                    "it was not sent\n", (unsigned char)line[bad], bad);
            continue;
        }
        if (line[0] == '/') {
            if (!strcmp(line, "/quit") || !strcmp(line, "/exit")) break;
            if (!strcmp(line, "/reset")) { chat_reset(&c); printf("(history cleared)\n"); continue; }
            if (!strcmp(line, "/think")) { c.think = 1; printf("(thinking mode)\n"); continue; }
            if (!strcmp(line, "/no-think")) { c.think = 0; printf("(chat mode)\n"); continue; }
            if (!strcmp(line, "/history")) {
                char *s = cJSON_Print(c.hist);
                if (s) puts(s);
                free(s);
                continue;
            }
            if (!strncmp(line, "/tool ", 6) || !strcmp(line, "/tool")) {
                int remaining;
                const char *id = next_unanswered(c.hist, &remaining);
                if (!id) { printf("(no pending tool call)\n"); continue; }
                cJSON *tm = cJSON_CreateObject();
                cJSON_AddStringToObject(tm, "role", "tool");
                cJSON_AddStringToObject(tm, "tool_call_id", id);
                cJSON_AddStringToObject(tm, "content", line[5] ? line + 6 : "");
                cJSON_AddItemToArray(c.hist, tm);
                if (remaining > 1) { printf("(%d more tool result%s expected)\n", remaining - 1, remaining > 2 ? "s" : ""); continue; }
                if (chat_turn(&c)) { status = 1; break; }
                continue;
            }
            if (strncmp(line, "//", 2)) {
                printf("(unknown command %s; /reset /think /no-think /tool TEXT /history /quit; start with // to send a '/')\n", line);
                continue;
            }
            memmove(line, line + 1, (size_t)n);  /* "//text" sends "/text" */
        }
        cJSON *um = cJSON_CreateObject();
        cJSON_AddStringToObject(um, "role", "user");
        cJSON_AddStringToObject(um, "content", line);
        cJSON_AddItemToArray(c.hist, um);
        if (chat_turn(&c)) { status = 1; break; }
    }
    free(line);
    free(c.logits);
    free(c.ev);
    cJSON_Delete(c.hist);
    dsv4_sampler_free(c.smp);
    dsv4_session_free(c.s);
    dsv4_model_free(c.m);
    return status;
}
