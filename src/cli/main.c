/* cli/main.c — the `dsv4` command-line front end: the command table and dispatch. Each command lives in its own
 * src/cli/cmd_*.c (declared in cli/commands.h) and parses its options with the one parser of cli/cli_util.h.
 * `dsv4 help [COMMAND]` and `dsv4 COMMAND -h` print the usage; `dsv4 --version` the version.
 * Exit status: 0 ok, 1 failure (bad input file, engine error, write error), 2 usage error (bad option or value),
 * 130 interrupted by Ctrl-C (generate, ppl, bench: what was measured is printed first).
 * Every path frees what it allocated before returning (so that LeakSanitizer keeps the exit status).
 * Only this layer prints and exits; it talks to the engine through include/dsv4.h alone.
 */
#include "dsv4.h"
#include "cli/cli_util.h"
#include "cli/commands.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERRLEN 1024

static const char *usage_text =
    "usage: dsv4 <command> [options]      (dsv4 help <command> for the options of one command)\n"
    "  generate -m DIR (-p TEXT | -f FILE) [-n N] [--temp T] [--top-p P] [--top-k K] [-s SEED] [--bos] [-c C]\n"
    "           [--image FILE]...\n"
    "  logits   -m DIR --tokens ID,ID,... [--prefill N] [--image FILE]... --out FILE|-\n"
    "  info     -m DIR\n"
    "  ppl      -m DIR -f TEXT [--window W] [--max-tokens N]\n"
    "  tokenize (-m DIR | --tokenizer FILE) [--text T]\n"
    "  detokenize (-m DIR | --tokenizer FILE) [--ids \"ID ID ...\"]\n"
    "  bench    -m DIR [--twin DIR] [-t LIST] [--ctx LIST] [--prefill LIST] [-n N] [--csv FILE]\n"
    "  bench-tokenizer --tokenizer FILE --corpus FILE [--min-time S] [--lines]\n"
    "  render   [-m DIR | --tokenizer FILE] --messages FILE.json [--think] [--effort none|low|high|max|N]\n"
    "           [--format auto|v4|v41] [--keep-thinking] [--no-bos] [--context FILE.json] [--tokens] [--image FILE]...\n"
    "  parse    [--thinking] [--strict] [--format v4|v41]   (model output on stdin -> message JSON)\n"
    "  chat     -m DIR [--think|--no-think] [--temp T] [--top-p P] [--top-k K] [-s SEED] [-n N] [-c C]\n"
    "           [--system TEXT] [--effort none|low|high|max|N] [--tools FILE.json] [--messages FILE.json]\n"
    "           [--image FILE]... [-v]\n"
    "  serve    -m DIR [--host H] [--port P] [-c N] [--parallel N] [--api-key KEY] [--max-image-pixels N]\n"
    "           (HTTP API, docs/server.md)\n"
    "  help [COMMAND]                         (the options of one command; also dsv4 COMMAND -h)\n";

/* The commands, in the order of the usage text. */
static const struct { const char *name; int (*run)(int, char **); } commands[] = {
    { "generate", dsv4_cli_generate }, { "logits", dsv4_cli_logits }, { "info", dsv4_cli_info },
    { "ppl", dsv4_cli_ppl }, { "tokenize", dsv4_cli_tokenize }, { "detokenize", dsv4_cli_detokenize },
    { "bench", dsv4_cli_bench }, { "bench-tokenizer", dsv4_cli_tokbench }, { "render", dsv4_cli_render },
    { "parse", dsv4_cli_parse }, { "chat", dsv4_cli_chat }, { "serve", dsv4_cli_serve },
};

int main(int argc, char **argv) {
    if (argc < 2 || cli_is_help(argv[1])) {
        fputs(usage_text, argc < 2 ? stderr : stdout);
        if (argc >= 2) fputs(cli_common_usage, stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("%s\n", cli_version);
        return cli_stdout_close("--version");
    }
    const char *env_kernel = getenv("DSV4_KERNEL");
    if (env_kernel && *env_kernel) {   /* the library would fall back silently; the CLI says so */
        char err[ERRLEN];
        if (dsv4_set_kernel_path(env_kernel, err, sizeof err) != 0) { fprintf(stderr, "dsv4: DSV4_KERNEL: %s\n", err); return 2; }
    }
    const char *c = argv[1];
    if (!strcmp(c, "help")) {   /* dsv4 help [COMMAND] = dsv4 COMMAND -h */
        if (argc < 3) { fputs(usage_text, stdout); fputs(cli_common_usage, stdout); return cli_stdout_close("help"); }
        for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
            if (!strcmp(argv[2], commands[i].name)) {
                char *hv[] = { argv[2], (char *)"-h", NULL };
                int rc = commands[i].run(2, hv);
                return rc ? rc : cli_stdout_close("help");
            }
        fprintf(stderr, "dsv4 help: unknown command '%s'\n%s", argv[2], usage_text);
        return 2;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(c, commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "dsv4: unknown command '%s'\n%s", c, usage_text);
    return 2;
}
