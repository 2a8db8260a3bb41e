/* cli/cmd_tokbench.c — `dsv4 bench-tokenizer`: encode throughput of the C tokenizer (docs/encoding.md §2).
 *
 *   dsv4 bench-tokenizer --tokenizer FILE --corpus FILE [--min-time S] [--lines]
 *
 * Loads the tokenizer.json, reads the corpus (UTF-8 text), encodes it once as a warm-up, then again and again until
 * at least S seconds (default 2) and 3 passes have run. One pass encodes the whole corpus as a single input, or with
 * --lines every '\n'-separated line as its own input (the newlines themselves are not encoded). Prints the token count
 * and the best and median throughput in MB/s (1 MB = 10^6 corpus bytes per second), plus one machine-readable line
 *   RESULT impl=c mode=whole|lines bytes=N tokens=N best_mbps=X median_mbps=Y passes=N
 * used by tools/tokenizer/bench.sh to compare with the JavaScript tokenizer measured in the same run.
 */
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "dsv4.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double tb_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* one pass: the whole text, or each '\n'-separated line; ids (cap entries) may be NULL. Returns the total count or -1. */
static int encode_pass(const dsv4_tokenizer *t, const char *text, size_t len, int lines, int32_t *ids, int cap,
                       char *err, size_t errlen) {
    if (!lines) return dsv4_tokenize(t, text, len, ids, cap, err, errlen);
    int total = 0;
    for (size_t p = 0; p <= len;) {
        const char *nl = memchr(text + p, '\n', len - p);
        size_t e = nl ? (size_t)(nl - text) : len;
        int room = ids && total < cap ? cap - total : 0;
        int k = dsv4_tokenize(t, text + p, e - p, room ? ids + total : NULL, room, err, errlen);
        if (k < 0) return -1;
        total += k;
        p = e + 1;
    }
    return total;
}

static const char tb_usage[] =
    "usage: dsv4 bench-tokenizer --tokenizer FILE --corpus FILE [--min-time SECONDS] [--lines]\n"
    "  encode throughput (MB/s) of the tokenizer on the corpus; see tools/tokenizer/bench.sh\n";

int dsv4_cli_tokbench(int argc, char **argv) {
    const char *tokpath = NULL, *corpus = NULL;
    double min_time = 2.0;
    int lines = 0;
    const cli_opt opts[] = {
        CLI_O_TOKENIZER(&tokpath),
        { .names = "--corpus", .kind = CLI_STR, .dst = &corpus },
        { .names = "--min-time", .kind = CLI_NUM, .dst = &min_time, .lo = 0, .hi = 3600 },
        { .names = "--lines", .kind = CLI_FLAG, .dst = &lines, .set = 1 },
        CLI_O_END
    };
    int prc = cli_parse("bench-tokenizer", tb_usage, opts, argc, argv);
    if (prc) return prc < 0 ? 0 : prc;
    if (!tokpath || !corpus) { fprintf(stderr, "dsv4 bench-tokenizer: --tokenizer and --corpus are required\n%s", tb_usage); return 2; }
    if (cli_parse_only) return 0;

    char err[1024];
    dsv4_tokenizer *t;
    double t0 = tb_now();
    if (dsv4_tokenizer_load(&t, tokpath, err, sizeof err) != 0) { fprintf(stderr, "dsv4 bench-tokenizer: %s\n", err); return 1; }
    double load_s = tb_now() - t0;

    size_t len = 0;
    char *text = cli_read_file("bench-tokenizer", corpus, &len);
    if (!text) { dsv4_tokenizer_free(t); return 1; }

    int n = encode_pass(t, text, len, lines, NULL, 0, err, sizeof err);   /* warm-up, and the count */
    if (n < 0) { fprintf(stderr, "dsv4 bench-tokenizer: %s: %s\n", corpus, err); free(text); dsv4_tokenizer_free(t); return 1; }
    int32_t *ids = malloc(sizeof(int32_t) * ((size_t)n + 1));
    double *times = malloc(sizeof(double) * 100000);
    if (!ids || !times) { fprintf(stderr, "dsv4 bench-tokenizer: out of memory\n"); free(ids); free(times); free(text); dsv4_tokenizer_free(t); return 1; }
    int passes = 0;
    double start = tb_now();
    while (passes < 100000 && (passes < 3 || tb_now() - start < min_time)) {
        double a = tb_now();
        int k = encode_pass(t, text, len, lines, ids, n, err, sizeof err);
        times[passes++] = tb_now() - a;
        if (k != n) { fprintf(stderr, "dsv4 bench-tokenizer: pass %d gave %d tokens, not %d: %s\n", passes, k, n, err); n = -1; break; }
    }
    if (n >= 0) {
        qsort(times, (size_t)passes, sizeof(double), cmp_double);
        double best = (double)len / times[0] / 1e6, median = (double)len / times[passes / 2] / 1e6;
        printf("tokenizer %s (loaded in %.2f s), corpus %s: %zu bytes -> %d tokens (%.2f bytes/token)\n",
               tokpath, load_s, corpus, len, n, (double)len / (n ? n : 1));
        printf("encode (%s): best %.2f MB/s, median %.2f MB/s over %d passes (single thread)\n",
               lines ? "each line separately" : "whole corpus as one input", best, median, passes);
        printf("RESULT impl=c mode=%s bytes=%zu tokens=%d best_mbps=%.3f median_mbps=%.3f passes=%d\n", lines ? "lines" : "whole", len, n, best, median, passes);
    }
    free(ids); free(times); free(text);
    dsv4_tokenizer_free(t);
    if (cli_stdout_close("bench-tokenizer")) return 1;
    return n >= 0 ? 0 : 1;
}
