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
    "usage: dsv4 render [-m DIR | --tokenizer FILE] --messages FILE.json [--thinking] [--effort none|high|max]\n"
    "                   [--keep-thinking] [--no-bos] [--context FILE.json] [--tokens]\n"
    "  --messages FILE   array of messages, or {\"messages\": [...], \"tools\": [...], \"response_format\": ...}; - = stdin\n"
    "  --thinking        thinking mode (prompt ends <｜Assistant｜><think>); default chat mode (ends </think>)\n"
    "  --effort E        reasoning effort: none (default), high, max (max adds the effort block in thinking mode)\n"
    "  --keep-thinking   drop_thinking=False: keep reasoning_content of earlier assistant turns\n"
    "  --no-bos          do not write <｜begin▁of▁sentence｜>\n"
    "  --context FILE    messages already encoded before these (not rendered; affect merging and transitions)\n"
    "  --tokens          also print the token count and ids (needs -m DIR or --tokenizer FILE)\n";

int dsv4_cli_render(int argc, char **argv) {
    const char *dir = NULL, *tokfile = NULL, *msgfile = NULL, *ctxfile = NULL;
    int want_tokens = 0;
    dsv4_render_opts o = { 0 };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_val = i + 1 < argc;
        if (cli_is_help(a)) { fputs(render_usage, stdout); return 0; }
        else if (!strcmp(a, "--thinking")) o.thinking = 1;
        else if (!strcmp(a, "--keep-thinking")) o.keep_thinking = 1;
        else if (!strcmp(a, "--no-bos")) o.no_bos = 1;
        else if (!strcmp(a, "--tokens")) want_tokens = 1;
        else if (cli_common_option("render", argc, argv, &i)) continue;
        else if (!strcmp(a, "-m") || !strcmp(a, "--tokenizer") || !strcmp(a, "--messages") ||
                 !strcmp(a, "--context") || !strcmp(a, "--effort")) {
            if (!has_val) { fprintf(stderr, "dsv4 render: option %s needs a value\n%s", a, render_usage); return 2; }
            const char *v = argv[++i];
            if (!strcmp(a, "-m")) dir = v;
            else if (!strcmp(a, "--tokenizer")) tokfile = v;
            else if (!strcmp(a, "--messages")) msgfile = v;
            else if (!strcmp(a, "--context")) ctxfile = v;
            else if (!strcmp(v, "none")) o.effort = DSV4_EFFORT_NONE;
            else if (!strcmp(v, "high")) o.effort = DSV4_EFFORT_HIGH;
            else if (!strcmp(v, "max")) o.effort = DSV4_EFFORT_MAX;
            else { fprintf(stderr, "dsv4 render: --effort '%s': expected none, high or max\n", v); return 2; }
        } else { fprintf(stderr, "dsv4 render: unknown option '%s'\n%s", a, render_usage); return 2; }
    }
    if (!msgfile) { fprintf(stderr, "dsv4 render: --messages FILE is required\n%s", render_usage); return 2; }
    if (want_tokens && !dir && !tokfile) {
        fprintf(stderr, "dsv4 render: --tokens needs -m DIR or --tokenizer FILE\n");
        return 2;
    }

    size_t len = 0, clen = 0;
    char *req = cli_read_file("render", msgfile, &len);
    if (!req) return 1;
    char *ctx = NULL;
    if (ctxfile) {
        if (!strcmp(ctxfile, "-") && !strcmp(msgfile, "-")) {
            free(req);
            fprintf(stderr, "dsv4 render: --messages and --context cannot both be stdin\n");
            return 2;
        }
        ctx = cli_read_file("render", ctxfile, &clen);
        if (!ctx) { free(req); return 1; }
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
        return 1;
    }
    fwrite(prompt, 1, plen, stdout);

    int status = 0;
    if (want_tokens) {
        char path[4096];
        if (!tokfile) { snprintf(path, sizeof path, "%s/tokenizer.json", dir); tokfile = path; }
        dsv4_tokenizer *t = NULL;
        if (dsv4_tokenizer_load(&t, tokfile, err, sizeof err) != 0) {
            fprintf(stderr, "dsv4 render: cannot load tokenizer: %s\n", err);
            free(prompt);
            return 1;
        }
        int n = dsv4_tokenize(t, prompt, plen, NULL, 0, err, sizeof err);
        int32_t *ids = n > 0 ? malloc(sizeof *ids * (size_t)n) : NULL;
        if (n < 0 || (n > 0 && (!ids || dsv4_tokenize(t, prompt, plen, ids, n, err, sizeof err) != n))) {
            fprintf(stderr, "dsv4 render: tokenize: %s\n", n < 0 ? err : "out of memory");
            status = 1;
        } else {
            printf("\n--- %d tokens\n", n);
            for (int i = 0; i < n; i++) printf(i ? " %d" : "%d", (int)ids[i]);
            printf("\n");
        }
        free(ids);
        dsv4_tokenizer_free(t);
    }
    free(prompt);
    fflush(stdout);
    return status;
}
