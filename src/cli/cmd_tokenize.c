/* cli/cmd_tokenize.c — `dsv4 tokenize` (text -> ids on stdout) and `dsv4 detokenize` (ids -> raw bytes on stdout).
 * The input is read whole (stdin when no --text / --ids; every byte counts, NUL included) and checked completely
 * — valid UTF-8 for tokenize, every id in the vocabulary for detokenize — before anything is written. A write error
 * exits 1. */
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "dsv4.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERRLEN 1024

static const char *tokenize_usage =
    "usage: dsv4 tokenize (-m DIR | --tokenizer FILE) [--text T]\n"
    "  prints the token ids of T (else of all of stdin, every byte including NUL) separated by spaces; no BOS\n"
    "  is added; the text must be valid UTF-8\n"
    "  -m, --model DIR       use DIR/tokenizer.json\n"
    "  --tokenizer FILE      a tokenizer.json\n"
    "  -p, --text T          the text (alias --prompt)\n";
static const char *detokenize_usage =
    "usage: dsv4 detokenize (-m DIR | --tokenizer FILE) [--ids \"ID ID ...\"]\n"
    "  writes the raw bytes of the tokens (ids separated by spaces, commas or newlines; stdin when no --ids);\n"
    "  every id is checked before anything is written\n"
    "  -m, --model DIR       use DIR/tokenizer.json\n"
    "  --tokenizer FILE      a tokenizer.json\n";

static int run(int argc, char **argv, int reverse) {
    const char *cmd = reverse ? "detokenize" : "tokenize";
    const char *dir = NULL, *file = NULL, *text = NULL;
    const cli_opt topts[] = { CLI_O_MODEL(&dir), CLI_O_TOKENIZER(&file),
                              { .names = "-p|--text|--prompt", .kind = CLI_STR, .dst = &text }, CLI_O_END };
    const cli_opt dopts[] = { CLI_O_MODEL(&dir), CLI_O_TOKENIZER(&file),
                              { .names = "--ids", .kind = CLI_STR, .dst = &text }, CLI_O_END };
    int prc = cli_parse(cmd, reverse ? detokenize_usage : tokenize_usage, reverse ? dopts : topts, argc, argv);
    if (prc) return prc < 0 ? 0 : prc;
    if (!dir && !file) { fprintf(stderr, "dsv4 %s: -m DIR or --tokenizer FILE is required (dsv4 %s -h lists the options)\n", cmd, cmd); return 2; }
    if (cli_parse_only) return 0;
    dsv4_tokenizer *t = cli_open_tokenizer(cmd, dir, file);
    if (!t) return 1;
    size_t len = 0;
    char *buf = text ? strdup(text) : cli_read_stream(cmd, stdin, "stdin", &len);
    if (!buf) { if (text) cli_fail(cmd, "out of memory"); dsv4_tokenizer_free(t); return 1; }
    if (text) len = strlen(buf);   /* an argument cannot hold NUL; stdin keeps every byte read */
    char err[ERRLEN];
    int n = 0, rc = 0;
    int32_t *ids = NULL;
    if (!reverse) {
        ids = cli_tokenize_all(t, buf, len, &n, err, ERRLEN);
        if (!ids) rc = cli_fail(cmd, "%s: %s", text ? "--text" : "stdin", err);
        else {
            for (int i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
            printf("\n");
        }
    } else {
        ids = cli_parse_ids(buf, len, &n, err, sizeof err);
        if (!ids) rc = cli_fail(cmd, "%s: %s", text ? "--ids" : "stdin", err);
        int vs = dsv4_tokenizer_vocab_size(t);
        for (int i = 0; i < n && rc == 0; i++)   /* all ids first: nothing is written for a bad list */
            if (ids[i] >= vs || !dsv4_token_bytes(t, ids[i], &(size_t){0}))
                rc = cli_fail(cmd, "id %d at item %d is not in the vocabulary (%d)", ids[i], i, vs);
        for (int i = 0; i < n && rc == 0; i++) {
            size_t bl;
            const char *b = dsv4_token_bytes(t, ids[i], &bl);
            if (cli_out(b, bl)) break;
        }
    }
    if (cli_stdout_close(cmd) && rc == 0) rc = 1;
    free(ids);
    free(buf);
    dsv4_tokenizer_free(t);
    return rc;
}

int dsv4_cli_tokenize(int argc, char **argv) { return run(argc, argv, 0); }
int dsv4_cli_detokenize(int argc, char **argv) { return run(argc, argv, 1); }
