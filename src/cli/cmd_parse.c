/* cli/cmd_parse.c — `dsv4 parse [--thinking] [--strict] [--format auto|v4|v41]`: parse DeepSeek-V4 model output
 * (stdin) into an OpenAI-style assistant message (stdout, JSON). Parser: include/dsv4_parse.h (docs/encoding.md
 * §4.5); --format v41: DeepSeek-V4.1's DSML spelling (§10.4; auto = v4, there is no model to ask).
 *
 * Output: {"role": "assistant", "content": STRING or null (null only when empty and tool calls exist),
 *          "reasoning_content": STRING (thinking mode only),
 *          "tool_calls": [{"id", "type": "function", "function": {"name", "arguments"}}] (only when any)}
 * Every byte of stdin counts (NUL bytes are kept, written as \u0000). The output is always valid JSON: a
 * sequence that is not valid UTF-8 is written as U+FFFD (one per maximal invalid subpart) and reported by a
 * warning. Warnings of the parser (malformed DSML, invalid arguments JSON, stray special tokens) and the UTF-8
 * warning go to stderr as "dsv4 parse: warning: ..."; exit 0 — or 1 with --strict when there are warnings. */
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "dsv4_parse.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *parse_usage =
    "usage: dsv4 parse [--think] [--strict] [--format auto|v4|v41]   (model output on stdin; JSON message on stdout)\n"
    "  --think     the prompt ended with <think>: output starts with reasoning_content up to </think>\n"
    "  --strict    exit 1 if the output was not well-formed (warnings are printed either way)\n"
    "  --format F  the DSML spelling: v4 (auto, the default) or v41 (DeepSeek-V4.1: <｜DSML｜ calls> ...)\n"
    "  invalid UTF-8 in the output is written as U+FFFD in the JSON (with a warning)\n";

/* Write the OpenAI-shaped message for a parse result as indented JSON; counts replaced sequences. */
static void print_message(FILE *f, const dsv4_parse_result *r, size_t *nrep) {
    fputs("{\n  \"role\": \"assistant\",\n  \"content\": ", f);
    if (r->content_len == 0 && r->n_tool_calls > 0) fputs("null", f);
    else cli_json_str(f, r->content, r->content_len, nrep);
    if (r->thinking_mode) {
        fputs(",\n  \"reasoning_content\": ", f);
        cli_json_str(f, r->reasoning_content, r->reasoning_len, nrep);
    }
    if (r->n_tool_calls > 0) {
        fputs(",\n  \"tool_calls\": [", f);
        for (int k = 0; k < r->n_tool_calls; k++) {
            const dsv4_tool_call *c = &r->tool_calls[k];
            fputs(k ? ",\n    {\n      \"id\": " : "\n    {\n      \"id\": ", f);
            cli_json_str(f, c->id, strlen(c->id), nrep);
            fputs(",\n      \"type\": \"function\",\n      \"function\": {\n        \"name\": ", f);
            cli_json_str(f, c->name, c->name_len, nrep);
            fputs(",\n        \"arguments\": ", f);
            cli_json_str(f, c->arguments, c->arguments_len, nrep);
            fputs("\n      }\n    }", f);
        }
        fputs("\n  ]", f);
    }
    fputs("\n}\n", f);
}

int dsv4_cli_parse(int argc, char **argv) {
    int thinking = 0, strict = 0, fmt = 0;
    const cli_opt opts[] = { CLI_O_THINK(&thinking), { .names = "--strict", .kind = CLI_FLAG, .dst = &strict, .set = 1 },
                             CLI_O_FORMAT(&fmt), CLI_O_END };
    int prc = cli_parse("parse", parse_usage, opts, argc, argv);
    if (prc) return prc < 0 ? 0 : prc;
    if (cli_parse_only) return 0;
    dsv4_parser *p = dsv4_parser_new(thinking);
    if (!p || dsv4_parser_set_format(p, fmt == 2 ? DSV4_FORMAT_V41 : DSV4_FORMAT_V4)) {
        dsv4_parser_free(p);
        fprintf(stderr, "dsv4 parse: out of memory\n");
        return 1;
    }
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, stdin)) > 0)
        if (dsv4_parser_feed(p, buf, n, NULL, NULL)) { fprintf(stderr, "dsv4 parse: out of memory\n"); dsv4_parser_free(p); return 1; }
    if (ferror(stdin)) { fprintf(stderr, "dsv4 parse: error reading stdin\n"); dsv4_parser_free(p); return 1; }
    dsv4_parse_result r;
    if (dsv4_parser_finish(p, &r)) { fprintf(stderr, "dsv4 parse: out of memory\n"); dsv4_parser_free(p); return 1; }
    dsv4_parser_free(p);
    size_t nrep = 0;
    print_message(stdout, &r, &nrep);
    int werr = fflush(stdout) != 0 || ferror(stdout);
    int warned = r.warnings != NULL || nrep > 0;
    if (r.warnings) fprintf(stderr, "dsv4 parse: warning: %s\n", r.warnings);
    if (nrep)
        fprintf(stderr, "dsv4 parse: warning: the output is not valid UTF-8: %zu invalid sequence%s written as U+FFFD\n",
                nrep, nrep > 1 ? "s" : "");
    dsv4_parse_result_free(&r);
    if (werr) { fprintf(stderr, "dsv4 parse: write error on stdout\n"); return 1; }
    return strict && warned ? 1 : 0;
}
