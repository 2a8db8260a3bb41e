/* cli/cmd_ppl.c — `dsv4 ppl -m DIR -f TEXT [--window W] [--max-tokens N]`: perplexity of a text.
 * Protocol (same as tools/train/README.md): tokenize the file, split into consecutive non-overlapping windows of W
 * tokens (the last partial window included if it has >= 2 tokens), each window evaluated in a fresh session; every
 * position i < len-1 of a window predicts token i+1; ppl = exp(mean NLL). A window is scored in calls of the
 * model's chunk (--chunk) positions with dsv4_eval_all (every position's logits at prefill speed; bit-identical to
 * one decode step per token). A text of fewer than 2 tokens is an error.
 * stdout: one line per window with the running values, then the summary line. stderr: the load summary, a progress
 * bar when stderr is a terminal, and the speed. Ctrl-C stops after the current chunk and prints the summary of the
 * predictions made so far (exit status 130). */
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "dsv4.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ERRLEN 1024

static const char *ppl_usage =
    "usage: dsv4 ppl -m DIR -f TEXT [--window W] [--max-tokens N]\n"
    "  -m, --model DIR   model directory\n"
    "  -f, --file TEXT   UTF-8 text file (needs at least 2 tokens; - = stdin); alias --prompt-file\n"
    "  --window W        tokens per window, 2..16777216, each from an empty context (default 256, or\n"
    "                    the model's max_position_embeddings if smaller)\n"
    "  --max-tokens N    use only the first N tokens of the file, 2..2^40\n";

int dsv4_cli_ppl(int argc, char **argv) {
    const char *dir = NULL, *file = NULL;
    int window = 256, window_seen = 0;
    long long max_tokens = -1;
    const cli_opt opts[] = {
        CLI_O_MODEL(&dir),
        { .names = "-f|--file|--prompt-file", .kind = CLI_STR, .dst = &file },
        { .names = "--window", .kind = CLI_INT, .dst = &window, .lo = 2, .hi = CLI_MAX_N,
          .seen = &window_seen },
        { .names = "--max-tokens", .kind = CLI_LONG, .dst = &max_tokens, .lo = 2, .hi = 1099511627776.0 },
        CLI_O_END
    };
    int prc = cli_parse("ppl", ppl_usage, opts, argc, argv);
    if (prc) return prc < 0 ? 0 : prc;
    if (!dir || !file) { fprintf(stderr, "dsv4 ppl: -m DIR and -f FILE are required (dsv4 ppl -h lists the options)\n"); return 2; }
    if (cli_parse_only) return 0;
    size_t len;
    char *text = cli_read_file("ppl", file, &len);
    if (!text) return 1;
    char err[ERRLEN];
    int rc = 1;
    int32_t *ids = NULL;
    dsv4_session *s = NULL;
    float *logits = NULL;
    double t0 = cli_now();
    dsv4_model *m = cli_load_model("ppl", dir);
    if (!m) { free(text); return 1; }
    double t_load = cli_now() - t0;
    const dsv4_tokenizer *tok = dsv4_model_tokenizer(m);
    if (!tok) { cli_fail("ppl", "%s has no tokenizer.json (needed to encode the text)", dir); goto done; }
    dsv4_model_info info;
    dsv4_model_get_info(m, &info);
    int n = 0;
    ids = cli_tokenize_all(tok, text, len, &n, err, ERRLEN);
    if (!ids) { cli_fail("ppl", "%s: %s", file, err); goto done; }
    if (n < 2) { cli_fail("ppl", "%s encodes to %d token%s; perplexity needs at least 2 tokens", file, n, n == 1 ? "" : "s"); goto done; }
    if (max_tokens > 0 && n > max_tokens) n = (int)max_tokens;
    cli_default_ctx(m, &window, window_seen);
    if ((rc = cli_check_ctx("ppl", "--window", m, window)) != 0) goto done;
    rc = 1;
    if (dsv4_session_open(&s, m, window, err, sizeof err) != 0) { cli_fail("ppl", "cannot open session: %s", err); goto done; }
    const int pc = dsv4_model_chunk_tokens(m);   /* positions per dsv4_eval_all call: the model's chunk (--chunk), so
                                                  * each call is one forward chunk; logits buffer pc x vocab floats */
    logits = malloc(sizeof(float) * (size_t)info.vocab_size * (size_t)pc);
    if (!logits) { cli_fail("ppl", "out of memory"); goto done; }
    cli_load_summary("ppl", dir, m, window, t_load);
    int tty = isatty(STDERR_FILENO), nwin = 0;
    long npred = 0;   /* predictions in all windows (the progress bar's total) */
    for (int w0 = 0; w0 < n; w0 += window) {
        int wl = n - w0 < window ? n - w0 : window;
        if (wl >= 2) { nwin++; npred += wl - 1; }
    }
    double nll = 0;
    long count = 0;
    double t1 = cli_now();
    cli_sigint_begin();
    int win = 0;
    for (int w0 = 0; w0 < n && !cli_interrupted; w0 += window, win++) {
        int wl = n - w0 < window ? n - w0 : window;
        if (wl < 2) break;
        dsv4_session_reset(s);
        double wnll = 0;
        long wcount = 0;
        /* score the window in calls of pc positions: dsv4_eval_all gives every position's logits at prefill speed
         * (row i predicts token w0 + i + 1) */
        for (int i0 = 0; i0 + 1 < wl && !cli_interrupted; i0 += pc) {
            int nc = wl - 1 - i0 < pc ? wl - 1 - i0 : pc;
            if (dsv4_eval_all(s, ids + w0 + i0, nc, logits, err, sizeof err) != 0) { cli_fail("ppl", "eval: %s", err); goto done; }
            for (int k = 0; k < nc; k++) {
                const float *lg = logits + (size_t)k * info.vocab_size;
                double mx = lg[0];
                for (int v = 1; v < info.vocab_size; v++) if (lg[v] > mx) mx = lg[v];
                double z = 0;
                for (int v = 0; v < info.vocab_size; v++) z += exp((double)lg[v] - mx);
                double l = -((double)lg[ids[w0 + i0 + k + 1]] - mx - log(z));
                wnll += l; wcount++;
                nll += l; count++;
            }
            if (tty) {
                char ex[400];
                snprintf(ex, sizeof ex, "window %d/%d, %ld/%ld predictions, running ppl %.4f", win + 1, nwin, count, npred,
                         exp(nll / (double)count));
                cli_progress("ppl", (double)count, (double)npred, ex);
            }
        }
        if (tty) cli_progress_clear();
        if (wcount > 0 && !cli_interrupted)
            printf("window %d/%d: %ld predictions, ppl %.4f; running: %ld predictions, ppl %.4f\n", win + 1, nwin, wcount,
                   exp(wnll / (double)wcount), count, exp(nll / (double)count));
        if (cli_flush()) break;
    }
    double dt = cli_now() - t1;
    if (count > 0)
        printf("tokens %d, predictions %ld, window %d, mean NLL %.6f, perplexity %.4f%s\n", n, count, window,
               nll / (double)count, exp(nll / (double)count), cli_interrupted ? " (interrupted: the predictions so far)" : "");
    if (cli_stdout_close("ppl")) goto done;
    fprintf(stderr, "%.1f tok/s\n", count / (dt > 0 ? dt : 1e-9));
    rc = cli_interrupted ? 130 : 0;
done:
    cli_sigint_end();
    free(text); free(logits); free(ids);
    dsv4_session_free(s);
    dsv4_model_free(m);
    return rc;
}
