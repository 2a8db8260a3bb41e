/* cli/cmd_render.c — `dsv4 render`: print the exact DeepSeek-V4 prompt for a chat request.
 *
 *   dsv4 render [-m DIR | --tokenizer FILE] --messages FILE.json [--thinking] [--effort none|high|max]
 *               [--keep-thinking] [--no-bos] [--context FILE.json] [--tokens]
 *
 * FILE.json is an array of messages or an OpenAI-style request {"messages": [...], "tools": [...],
 * "response_format": ...} ("-" = stdin). The prompt is written to stdout byte-exactly (no newline added).
 * With --tokens (needs -m DIR, whose tokenizer.json is used, or --tokenizer FILE) the prompt is followed by
 * "\n--- N tokens\n" and the ids separated by spaces on one line. Errors name the file at fault (--context
 * or --messages); an unreadable file (e.g. a directory) is reported as "cannot read FILE: REASON".
 * Talks to the library through include/dsv4.h and include/dsv4_chat.h only.
 */
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "dsv4.h"
#include "dsv4_chat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *render_usage =
    "usage: dsv4 render [-m DIR | --tokenizer FILE] --messages FILE.json [--think] [--effort none|high|max]\n"
    "                   [--keep-thinking] [--no-bos] [--context FILE.json] [--tokens]\n"
    "  --messages FILE   array of messages, or {\"messages\": [...], \"tools\": [...], \"response_format\": ...}; - = stdin\n"
    "  --think           thinking mode (prompt ends <｜Assistant｜><think>); default chat mode (ends </think>)\n"
    "  --effort E        reasoning effort: none (default), high, max (max adds the effort block in thinking mode)\n"
    "  --keep-thinking   drop_thinking=False: keep reasoning_content of earlier assistant turns\n"
    "  --no-bos          do not write <｜begin▁of▁sentence｜>\n"
    "  --context FILE    messages already encoded before these (not rendered; affect merging and transitions)\n"
    "  --tokens          also print the token count and ids (needs -m DIR or --tokenizer FILE)\n"
    "  -m, --model DIR   use DIR/tokenizer.json (it must have the DeepSeek-V4 special tokens)\n"
    "  --no-think        chat mode (the default); aliases --thinking, --nothink, --chat\n";

int dsv4_cli_render(int argc, char **argv) {
    const char *dir = NULL, *tokfile = NULL, *msgfile = NULL, *ctxfile = NULL;
    int want_tokens = 0, thinking = 0, effort = 0, keep = 0, nobos = 0;
    dsv4_render_opts o = { 0 };
    const cli_opt opts[] = {
        CLI_O_MODEL(&dir), CLI_O_TOKENIZER(&tokfile), CLI_O_THINK(&thinking), CLI_O_EFFORT(&effort),
        { .names = "--messages", .kind = CLI_STR, .dst = &msgfile },
        { .names = "--context", .kind = CLI_STR, .dst = &ctxfile },
        { .names = "--keep-thinking", .kind = CLI_FLAG, .dst = &keep, .set = 1 },
        { .names = "--no-bos", .kind = CLI_FLAG, .dst = &nobos, .set = 1 },
        { .names = "--tokens", .kind = CLI_FLAG, .dst = &want_tokens, .set = 1 },
        CLI_O_END
    };
    int prc = cli_parse("render", render_usage, opts, argc, argv);
    if (prc) return prc < 0 ? 0 : prc;
    o.thinking = thinking; o.effort = (dsv4_effort)effort; o.keep_thinking = keep; o.no_bos = nobos;
    if (!msgfile) { fprintf(stderr, "dsv4 render: --messages FILE is required (dsv4 render -h lists the options)\n"); return 2; }
    if (want_tokens && !dir && !tokfile) {
        fprintf(stderr, "dsv4 render: --tokens needs -m DIR or --tokenizer FILE\n");
        return 2;
    }
    if (ctxfile && !strcmp(ctxfile, "-") && !strcmp(msgfile, "-")) {
        fprintf(stderr, "dsv4 render: --messages and --context cannot both be stdin\n");
        return 2;
    }
    if (cli_parse_only) return 0;

    /* the tokenizer first: with -m it must have the V4 special tokens (as chat requires), and nothing is printed
     * before every input has been checked */
    dsv4_tokenizer *t = NULL;
    if (dir || tokfile) {
        t = cli_open_tokenizer("render", dir, tokfile);
        if (!t) return 1;
        if (cli_require_v4_tokens("render", t, tokfile ? tokfile : dir) != 0) { dsv4_tokenizer_free(t); return 1; }
    }
    size_t len = 0, clen = 0;
    char *req = cli_read_file("render", msgfile, &len);
    if (!req) { dsv4_tokenizer_free(t); return 1; }
    char *ctx = NULL;
    if (ctxfile) {
        ctx = cli_read_file("render", ctxfile, &clen);
        if (!ctx) { free(req); dsv4_tokenizer_free(t); return 1; }
        o.context_json = ctx; o.context_len = clen;
    }
    char err[1024];
    char *prompt = NULL; size_t plen = 0;
    int rc = dsv4_chat_render(req, len, &o, &prompt, &plen, err, sizeof err);
    free(req); free(ctx);
    if (rc) {
        /* errors in the context JSON or its messages start with "context" (dsv4_chat_render) */
        const char *which = ctxfile && !strncmp(err, "context", 7) ? ctxfile : msgfile;
        fprintf(stderr, "dsv4 render: %s: %s\n", !strcmp(which, "-") ? "stdin" : which, err);
        dsv4_tokenizer_free(t);
        return 1;
    }
    int n = 0;
    int32_t *ids = NULL;
    if (want_tokens && !(ids = cli_tokenize_all(t, prompt, plen, &n, err, sizeof err))) {
        fprintf(stderr, "dsv4 render: cannot tokenize the prompt: %s\n", err);
        free(prompt);
        dsv4_tokenizer_free(t);
        return 1;
    }
    cli_out(prompt, plen);
    if (want_tokens) {
        printf("\n--- %d tokens\n", n);
        for (int i = 0; i < n; i++) printf(i ? " %d" : "%d", (int)ids[i]);
        printf("\n");
    }
    free(ids);
    free(prompt);
    dsv4_tokenizer_free(t);
    return cli_stdout_close("render");
}
