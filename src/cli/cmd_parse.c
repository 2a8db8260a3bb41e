/* cli/cmd_parse.c — `dsv4 parse [--thinking] [--strict]`: parse DeepSeek-V4 model output (stdin) into an
 * OpenAI-style assistant message (stdout, JSON). Parser: include/dsv4_parse.h (spec v4-encoding.md §4.5).
 *
 * Output: {"role": "assistant", "content": STRING or null (null only when empty and tool calls exist),
 *          "reasoning_content": STRING (thinking mode only),
 *          "tool_calls": [{"id", "type": "function", "function": {"name", "arguments"}}] (only when any)}
 * Warnings of the parser (malformed DSML, invalid arguments JSON, stray special tokens) go to stderr as
 * "dsv4 parse: warning: ..."; exit 0 — or 1 with --strict when there are warnings. */
#include "cli/commands.h"
#include "dsv4_parse.h"
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *parse_usage =
    "usage: dsv4 parse [--thinking] [--strict]   (model output on stdin; JSON message on stdout)\n"
    "  --thinking  the prompt ended with <think>: output starts with reasoning_content up to </think>\n"
    "  --strict    exit 1 if the output was not well-formed (warnings are printed either way)\n";

/* Build the OpenAI-shaped message for a parse result. Returns NULL when out of memory. */
static cJSON *message_json(const dsv4_parse_result *r) {
    cJSON *m = cJSON_CreateObject();
    if (!m) return NULL;
    int ok = cJSON_AddStringToObject(m, "role", "assistant") != NULL;
    if (r->content_len == 0 && r->n_tool_calls > 0) ok &= cJSON_AddNullToObject(m, "content") != NULL;
    else ok &= cJSON_AddStringToObject(m, "content", r->content) != NULL;
    if (r->thinking_mode) ok &= cJSON_AddStringToObject(m, "reasoning_content", r->reasoning_content) != NULL;
    if (r->n_tool_calls > 0) {
        cJSON *arr = cJSON_AddArrayToObject(m, "tool_calls");
        ok &= arr != NULL;
        for (int k = 0; ok && k < r->n_tool_calls; k++) {
            const dsv4_tool_call *c = &r->tool_calls[k];
            cJSON *tc = cJSON_CreateObject(), *fn = cJSON_CreateObject();
            ok &= tc && fn;
            if (ok) {
                ok &= cJSON_AddStringToObject(tc, "id", c->id) != NULL;
                ok &= cJSON_AddStringToObject(tc, "type", "function") != NULL;
                ok &= cJSON_AddStringToObject(fn, "name", c->name) != NULL;
                ok &= cJSON_AddStringToObject(fn, "arguments", c->arguments) != NULL;
                cJSON_AddItemToObject(tc, "function", fn);
                cJSON_AddItemToArray(arr, tc);
            } else {
                cJSON_Delete(tc);
                cJSON_Delete(fn);
            }
        }
    }
    if (!ok) { cJSON_Delete(m); return NULL; }
    return m;
}

int dsv4_cli_parse(int argc, char **argv) {
    int thinking = 0, strict = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--thinking") || !strcmp(argv[i], "--think")) thinking = 1;
        else if (!strcmp(argv[i], "--chat") || !strcmp(argv[i], "--no-think")) thinking = 0;
        else if (!strcmp(argv[i], "--strict")) strict = 1;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { fputs(parse_usage, stdout); return 0; }
        else { fprintf(stderr, "dsv4 parse: unknown option '%s'\n%s", argv[i], parse_usage); return 2; }
    }
    dsv4_parser *p = dsv4_parser_new(thinking);
    if (!p) { fprintf(stderr, "dsv4 parse: out of memory\n"); return 1; }
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, stdin)) > 0)
        if (dsv4_parser_feed(p, buf, n, NULL, NULL)) { fprintf(stderr, "dsv4 parse: out of memory\n"); dsv4_parser_free(p); return 1; }
    if (ferror(stdin)) { fprintf(stderr, "dsv4 parse: error reading stdin\n"); dsv4_parser_free(p); return 1; }
    dsv4_parse_result r;
    if (dsv4_parser_finish(p, &r)) { fprintf(stderr, "dsv4 parse: out of memory\n"); dsv4_parser_free(p); return 1; }
    dsv4_parser_free(p);
    cJSON *m = message_json(&r);
    char *s = m ? cJSON_Print(m) : NULL;
    cJSON_Delete(m);
    if (!s) { fprintf(stderr, "dsv4 parse: out of memory\n"); dsv4_parse_result_free(&r); return 1; }
    puts(s);
    free(s);
    int warned = r.warnings != NULL;
    if (warned) fprintf(stderr, "dsv4 parse: warning: %s\n", r.warnings);
    dsv4_parse_result_free(&r);
    return strict && warned ? 1 : 0;
}
