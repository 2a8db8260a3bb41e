/* cli/cmd_render.c — `dsv4 render`: print the exact DeepSeek-V4 prompt for a chat request.
 *
 *   dsv4 render [-m DIR | --tokenizer FILE] --messages FILE.json [--think] [--effort none|low|high|max|N]
 *               [--format auto|v4|v41] [--keep-thinking] [--no-bos] [--context FILE.json] [--tokens] [--image FILE]...
 *
 * The prompt format is DeepSeek-V4.1's (docs/encoding.md §10) when -m DIR holds a V4.1 config.json (or with
 * --format v41), else V4's; --effort N (1..100) and low are V4.1 levels.
 *
 * FILE.json is an array of messages or an OpenAI-style request {"messages": [...], "tools": [...],
 * "response_format": ...} ("-" = stdin). The prompt is written to stdout byte-exactly (no newline added).
 * With --tokens (needs -m DIR, whose tokenizer.json is used, or --tokenizer FILE) the prompt is followed by
 * "\n--- N tokens\n" and the ids separated by spaces on one line. Errors name the file at fault (--context
 * or --messages); an unreadable file (e.g. a directory) is reported as "cannot read FILE: REASON".
 * Images: the request's image content parts (include/dsv4_chat.h) are written as "<｜deepseek_image｜>"; with any,
 * -m DIR is needed (its config.json's vision_config sizes the image spans; no weights are read) and each image is
 * read — from the --image FILE options in order when given (as many as the image parts), else from the part's URL
 * (a data: URL, a file:// URL or a local path; nothing is fetched) — and planned (dsv4_image_plan_grid). After the
 * prompt one line per image "--- image K (messages[i].content[j], SOURCE): WxH pixels -> CxR cells, P positions"
 * and, with --tokens, the count line says how many positions the prompt has with its image spans expanded.
 * Talks to the library through include/dsv4.h, include/dsv4_chat.h and include/dsv4_vision.h only.
 */
#include "cli/cli_util.h"
#include "cli/cli_image.h"
#include "cli/commands.h"
#include "dsv4.h"
#include "dsv4_chat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *render_usage =
    "usage: dsv4 render [-m DIR | --tokenizer FILE] --messages FILE.json [--think] [--effort none|low|high|max|N]\n"
    "                   [--format auto|v4|v41] [--keep-thinking] [--no-bos] [--context FILE.json] [--tokens]\n"
    "                   [--image FILE]...\n"
    "  --messages FILE   array of messages, or {\"messages\": [...], \"tools\": [...], \"response_format\": ...}; - = stdin\n"
    "  --think           thinking mode (prompt ends <｜Assistant｜><think>; alias --thinking); default chat mode\n"
    "                    (ends </think>)\n"
    "  --effort E        reasoning effort: V4: none (default), high, max (max adds the effort block in thinking mode);\n"
    "                    V4.1: an integer 1..100 or low 50, high 75 (the default), max 100 (thinking mode only)\n"
    "  --format F        prompt format: auto (default: V4.1 when -m DIR holds a DeepSeek-V4.1 config), v4, v41\n"
    "  --keep-thinking   drop_thinking=False: keep reasoning_content of earlier assistant turns\n"
    "  --no-bos          do not write <｜begin▁of▁sentence｜>\n"
    "  --context FILE    messages already encoded before these (not rendered; affect merging and transitions)\n"
    "  --tokens          also print the token count and ids (needs -m DIR or --tokenizer FILE)\n"
    "  -m, --model DIR   use DIR/tokenizer.json (it must have the DeepSeek-V4 special tokens)\n"
    "  --no-think        chat mode (the default); aliases --nothink, --chat\n"
    "  --image FILE      the image of the next image content part (repeatable; default: the parts' data: URLs or\n"
    "                    files); needs -m DIR, whose config.json sizes the spans (no weights are read): each span\n"
    "                    and the expanded token count are printed\n";

int dsv4_cli_render(int argc, char **argv) {
    const char *dir = NULL, *tokfile = NULL, *msgfile = NULL, *ctxfile = NULL;
    int want_tokens = 0, thinking = 0, keep = 0, nobos = 0, fmt_choice = 0;
    cli_effort effort = { 0, 0 };
    dsv4_render_opts o = { 0 };
    cli_image_list imgs = { .n = 0 };
    const cli_opt opts[] = {
        CLI_O_IMAGE(&imgs),
        CLI_O_MODEL(&dir), CLI_O_TOKENIZER(&tokfile), CLI_O_THINK(&thinking), CLI_O_EFFORT(&effort),
        CLI_O_FORMAT(&fmt_choice),
        { .names = "--messages", .kind = CLI_STR, .dst = &msgfile },
        { .names = "--context", .kind = CLI_STR, .dst = &ctxfile },
        { .names = "--keep-thinking", .kind = CLI_FLAG, .dst = &keep, .set = 1 },
        { .names = "--no-bos", .kind = CLI_FLAG, .dst = &nobos, .set = 1 },
        { .names = "--tokens", .kind = CLI_FLAG, .dst = &want_tokens, .set = 1 },
        CLI_O_END
    };
    int prc = cli_parse("render", render_usage, opts, argc, argv);
    if (prc) return prc < 0 ? 0 : prc;
    o.thinking = thinking; o.keep_thinking = keep; o.no_bos = nobos;
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
    int fmt = cli_chat_format("render", dir, fmt_choice);
    if (fmt < 0) return 1;
    o.format = (dsv4_chat_format)fmt;
    if (cli_effort_apply("render", &effort, &o)) return 1;

    /* the tokenizer first: with -m it must have the V4 special tokens (as chat requires), and nothing is printed
     * before every input has been checked */
    dsv4_tokenizer *t = NULL;
    char tpath[4096];
    snprintf(tpath, sizeof tpath, "%s/tokenizer.json", dir ? dir : ".");
    /* -m DIR without --tokens: DIR may be a config for the image spans only (no tokenizer.json) */
    if (tokfile || (dir && (want_tokens || access(tpath, F_OK) == 0))) {
        t = cli_open_tokenizer("render", dir, tokfile);
        if (!t) return 1;
        if (cli_require_chat_tokens("render", t, tokfile ? tokfile : dir, o.format) != 0) { dsv4_tokenizer_free(t); return 1; }
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
    dsv4_chat_image *parts = NULL;
    int nparts = 0;
    int rc = dsv4_chat_render_images(req, len, &o, &prompt, &plen, &parts, &nparts, err, sizeof err);
    free(req); free(ctx);
    if (rc) {
        /* errors in the context JSON or its messages start with "context" (dsv4_chat_render) */
        const char *which = ctxfile && !strncmp(err, "context", 7) ? ctxfile : msgfile;
        fprintf(stderr, "dsv4 render: %s: %s\n", !strcmp(which, "-") ? "stdin" : which, err);
        dsv4_tokenizer_free(t);
        return 1;
    }
    /* images: read and plan each (no weights) */
    int spans[CLI_MAX_IMAGES], wh[CLI_MAX_IMAGES][2], cells[CLI_MAX_IMAGES][2];
    dsv4_image_plan plans[CLI_MAX_IMAGES];
    int fail = 0;
    if (imgs.n && imgs.n != nparts) {
        fail = cli_fail("render", "%d --image given but the messages have %d image part%s", imgs.n, nparts,
                        nparts == 1 ? "" : "s");
    } else if (nparts > CLI_MAX_IMAGES) {
        fail = cli_fail("render", "the messages have %d image parts; at most %d are supported", nparts, CLI_MAX_IMAGES);
    } else if (imgs.n && !dir) {
        fail = cli_fail("render", "--image needs -m DIR (its config.json sizes the image spans; no weights are read)");
    }
    if (!dir) { dsv4_chat_images_free(parts, nparts); parts = NULL; nparts = 0; } /* no config: the text alone */
    dsv4_vision_params vp;
    int32_t img_tok = -1;
    if (!fail && nparts && dsv4_config_vision(dir, &vp, &img_tok, err, sizeof err)) fail = cli_fail("render", "%s", err);
    for (int k = 0; k < nparts && !fail; k++) {
        dsv4_image *im = NULL;
        if (imgs.n) {
            if (dsv4_image_from_file(&im, imgs.path[k], err, sizeof err)) fail = cli_fail("render", "--image %s", err);
        } else fail = cli_image_from_part("render", &parts[k], 0, &im);
        if (fail) break;
        dsv4_image_plan pl;
        wh[k][0] = dsv4_image_width(im); wh[k][1] = dsv4_image_height(im);
        if (dsv4_image_plan_grid(wh[k][0], wh[k][1], &vp, &pl, err, sizeof err))
            fail = cli_fail("render", "%s: %s", imgs.n ? imgs.path[k] : parts[k].where, err);
        else { spans[k] = pl.n_tokens; cells[k][0] = pl.n_llm_w; cells[k][1] = pl.n_llm_h; plans[k] = pl; }
        dsv4_image_free(im);
    }
    if (fail) {
        dsv4_chat_images_free(parts, nparts);
        free(prompt);
        dsv4_tokenizer_free(t);
        return 1;
    }
    int n = 0;
    int32_t *ids = NULL;
    if (want_tokens && !(ids = cli_tokenize_all(t, prompt, plen, &n, err, sizeof err))) {
        fprintf(stderr, "dsv4 render: cannot tokenize the prompt: %s\n", err);
        free(prompt);
        dsv4_chat_images_free(parts, nparts);
        dsv4_tokenizer_free(t);
        return 1;
    }
    if (want_tokens && nparts && cli_count_token(ids, n, img_tok) != nparts) {
        fprintf(stderr, "dsv4 render: the prompt tokenizes to %d image placeholder ids (%d) for %d image parts: the "
                "tokenizer does not match the config's image_token_id\n", cli_count_token(ids, n, img_tok), img_tok,
                nparts);
        free(ids); free(prompt);
        dsv4_chat_images_free(parts, nparts);
        dsv4_tokenizer_free(t);
        return 1;
    }
    cli_out(prompt, plen);
    /* positions with the spans expanded (Vision-Exp: plus the leading pads, which depend on the position) */
    long expanded = want_tokens && nparts ? dsv4_prompt_expanded_len(&vp, ids, n, img_tok, plans, nparts) : n;
    for (int k = 0; k < nparts; k++) {
        const char *src = imgs.n ? imgs.path[k] : parts[k].url;
        int long_src = !imgs.n && parts[k].url_len > 48;
        printf("\n--- image %d (%s, %.*s%s): %dx%d pixels -> %dx%d cells, %d positions", k, parts[k].where,
               long_src ? 40 : (int)strlen(src), src, long_src ? "..." : "", wh[k][0], wh[k][1], cells[k][0],
               cells[k][1], spans[k]);
    }
    if (nparts && !want_tokens) printf("\n");
    dsv4_chat_images_free(parts, nparts);
    if (want_tokens) {
        if (nparts) printf("\n--- %d tokens, %ld positions with the %d image span%s expanded\n", n, expanded, nparts,
                           nparts == 1 ? "" : "s");
        else printf("\n--- %d tokens\n", n);
        for (int i = 0; i < n; i++) printf(i ? " %d" : "%d", (int)ids[i]);
        printf("\n");
    }
    free(ids);
    free(prompt);
    dsv4_tokenizer_free(t);
    return cli_stdout_close("render");
}
