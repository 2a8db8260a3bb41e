/* cli/main.c — the `dsv4` command-line front end.
 *
 * Subcommands (each prints its usage on stdout with -h / --help and exits 0):
 *   generate -m DIR -p TEXT [-n N] [--temperature T] [--top-p P] [--top-k K] [--seed S] [--bos] [--ctx C]
 *   logits   -m DIR --tokens ID,ID,... [--prefill N] --out FILE
 *   info     -m DIR
 *   ppl      -m DIR --file TEXT [--window W] [--max-tokens N]
 *   tokenize (-m DIR | --tokenizer FILE) [--text T]      (stdin when no --text; every byte counts, NUL too)
 *   detokenize (-m DIR | --tokenizer FILE) [--ids "1 2 3"] (stdin when no --ids)
 *   bench, bench-tokenizer, render, parse, chat: see src/cli/commands.h (each in its own src/cli/cmd_*.c)
 * Exit status: 0 ok, 1 failure (bad input file, engine error), 2 usage error (bad option or value).
 * Every path frees what it allocated before returning (so that LeakSanitizer keeps the exit status).
 * Only this layer prints and exits; it talks to the engine through include/dsv4.h alone.
 */
#include "dsv4.h"
#include "cli/cli_util.h"
#include "cli/commands.h"
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ERRLEN 1024

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Print "dsv4 CMD: message" and return 1 (the failure exit status). */
static int fail(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "dsv4 %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

/* ---------------------------------------------------------------- argument helpers
 * Option parsing happens before anything is allocated, so the helpers may exit(2) directly. */
typedef struct { int argc; char **argv; int i; const char *cmd, *usage; } args_t;

static const char *arg_value(args_t *a, const char *flag) {
    if (a->i + 1 >= a->argc) {
        fprintf(stderr, "dsv4 %s: option %s needs a value\n%s", a->cmd, flag, a->usage);
        exit(2);
    }
    return a->argv[++a->i];
}
static long arg_long(args_t *a, const char *flag, long lo, long hi) {
    const char *v = arg_value(a, flag);
    char *end; errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || end == v || x < lo || x > hi) {
        fprintf(stderr, "dsv4 %s: option %s: '%s' is not an integer in [%ld, %ld]\n", a->cmd, flag, v, lo, hi);
        exit(2);
    }
    return x;
}
/* A number in [lo, hi], or (lo, hi] when lo_open. */
static double arg_double(args_t *a, const char *flag, double lo, int lo_open, double hi) {
    const char *v = arg_value(a, flag);
    char *end; errno = 0;
    double x = strtod(v, &end);
    if (errno || *end || end == v || !(lo_open ? x > lo : x >= lo) || !(x <= hi)) {
        fprintf(stderr, "dsv4 %s: option %s: '%s' is not a number in %c%g, %g]\n", a->cmd, flag, v,
                lo_open ? '(' : '[', lo, hi);
        exit(2);
    }
    return x;
}
/* Handles -h/--help (usage on stdout, exit 0) and an unknown option (usage on stderr, exit 2). */
static void arg_other(args_t *a, const char *o) {
    if (cli_is_help(o)) { fputs(a->usage, stdout); fputs(cli_common_usage, stdout); exit(0); }
    if (cli_common_option(a->cmd, a->argc, a->argv, &a->i)) return;
    fprintf(stderr, "dsv4 %s: unknown option '%s'\n%s", a->cmd, o, a->usage);
    exit(2);
}


/* Parse "1,2,3" or "1 2 3" (s[0..len), NUL-terminated at len) into ids; every id must fit int32 and be >= 0
 * (range vs vocab is checked by the engine / caller). Returns malloc'd ids (possibly zero of them), or NULL
 * with err. */
static int32_t *parse_ids(const char *s, size_t len, int *n_out, char *err) {
    int cap = 16, n = 0;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)cap);
    if (!ids) { snprintf(err, ERRLEN, "out of memory"); return NULL; }
    const char *p = s, *e = s + len;
#define IS_SEP(c) ((c) == ',' || (c) == ' ' || (c) == '\n' || (c) == '\t' || (c) == '\r')
    while (p < e) {
        while (p < e && IS_SEP(*p)) p++;
        if (p == e) break;
        char *end; errno = 0;
        long v = *p >= '0' && *p <= '9' ? strtol(p, &end, 10) : -1;
        if (v < 0 || errno || v > 0x7fffffffL) {
            if (*p) snprintf(err, ERRLEN, "token list: '%.20s' at item %d is not a non-negative integer id", p, n);
            else snprintf(err, ERRLEN, "token list: a NUL byte at item %d is not a non-negative integer id", n);
            free(ids);
            return NULL;
        }
        if (n == cap) {
            cap *= 2;
            int32_t *nb = realloc(ids, sizeof(int32_t) * (size_t)cap);
            if (!nb) { free(ids); snprintf(err, ERRLEN, "out of memory"); return NULL; }
            ids = nb;
        }
        ids[n++] = (int32_t)v;
        p = end;
        if (p < e && !IS_SEP(*p)) {
            snprintf(err, ERRLEN, "token list: unexpected byte 0x%02x after item %d", (unsigned char)*p, n - 1);
            free(ids);
            return NULL;
        }
    }
#undef IS_SEP
    *n_out = n;
    return ids;
}

/* Load the model of `dir`; prints the reason and returns NULL on failure. */
static dsv4_model *load_model(const char *cmd, const char *dir) {
    char err[ERRLEN];
    dsv4_model *m = NULL;
    if (dsv4_model_load(&m, dir, err, sizeof err) != 0) { fail(cmd, "cannot load model: %s", err); return NULL; }
    return m;
}

static const char *usage_text =
    "usage: dsv4 <command> [options]      (dsv4 <command> -h for the options of one command)\n"
    "  generate -m DIR -p TEXT [-n N] [--temperature T] [--top-p P] [--top-k K] [--seed S] [--bos] [--ctx C]\n"
    "  logits   -m DIR --tokens ID,ID,... [--prefill N] --out FILE\n"
    "  info     -m DIR\n"
    "  ppl      -m DIR --file TEXT [--window W] [--max-tokens N]\n"
    "  tokenize (-m DIR | --tokenizer FILE) [--text T]\n"
    "  detokenize (-m DIR | --tokenizer FILE) [--ids \"ID ID ...\"]\n"
    "  bench    -m DIR [--twin DIR] [-t LIST] [--ctx LIST] [--prefill LIST] [-n N] [--csv FILE]\n"
    "  bench-tokenizer --tokenizer FILE --corpus FILE [--min-time S] [--lines]\n"
    "  render   [-m DIR | --tokenizer FILE] --messages FILE.json [--thinking] [--effort none|high|max]\n"
    "           [--keep-thinking] [--no-bos] [--context FILE.json] [--tokens]\n"
    "  parse    [--thinking] [--strict]      (model output on stdin -> message JSON)\n"
    "  chat     -m DIR [--think|--no-think] [--temperature T] [--top-p P] [--top-k K] [--seed S]\n"
    "           [--max-tokens N] [--ctx C] [--system TEXT] [--effort high|max] [-v]\n";

/* ---------------------------------------------------------------- generate */
static const char *generate_usage =
    "usage: dsv4 generate -m DIR -p TEXT [-n N] [--temperature T] [--top-p P] [--top-k K] [--seed S] [--bos] [--ctx C]\n"
    "  -m DIR           model directory (config.json, *.safetensors, tokenizer.json)\n"
    "  -p TEXT          prompt, printed then continued\n"
    "  -n N             tokens to generate, 0..16777216 (default 200; stops early at the EOS token)\n"
    "  --temperature T  0 = greedy (argmax), else sampling at temperature T; [0, 100] (default 0.8)\n"
    "  --top-p P        nucleus sampling mass, (0, 1]; 1 = off (default 0.95)\n"
    "  --top-k K        keep the K most likely tokens; 0 = off (default 0)\n"
    "  --seed S         sampler seed (default 42)\n"
    "  --bos            prepend the model's BOS token to the prompt\n"
    "  --ctx C          session size in tokens (default: prompt tokens + N); an error if smaller than that\n";

static int cmd_generate(args_t *a) {
    const char *dir = NULL, *prompt = NULL;
    int n_gen = 200, ctx = 0, bos = 0;
    /* ranges = the sampler's (dsv4_sampler_new): temperature finite >= 0, top_p in (0, 1], top_k >= 0 */
    dsv4_sampler_params sp = { .temperature = 0.8f, .top_p = 0.95f, .top_k = 0, .seed = 42 };
    for (a->i = 2; a->i < a->argc; a->i++) {
        const char *o = a->argv[a->i];
        if (!strcmp(o, "-m")) dir = arg_value(a, o);
        else if (!strcmp(o, "-p")) prompt = arg_value(a, o);
        else if (!strcmp(o, "-n")) n_gen = (int)arg_long(a, o, 0, 1 << 24);
        else if (!strcmp(o, "--ctx")) ctx = (int)arg_long(a, o, 1, 1 << 24);
        else if (!strcmp(o, "--temperature")) sp.temperature = (float)arg_double(a, o, 0, 0, 100);
        else if (!strcmp(o, "--top-p")) sp.top_p = (float)arg_double(a, o, 0, 1, 1);
        else if (!strcmp(o, "--top-k")) sp.top_k = (int)arg_long(a, o, 0, 1 << 30);
        else if (!strcmp(o, "--seed")) sp.seed = (uint64_t)arg_long(a, o, 0, 0x7fffffffffffffffL);
        else if (!strcmp(o, "--bos")) bos = 1;
        else arg_other(a, o);
    }
    if (!dir) { fprintf(stderr, "dsv4 generate: -m DIR is required\n%s", generate_usage); return 2; }
    if (!prompt) { fprintf(stderr, "dsv4 generate: -p TEXT is required\n%s", generate_usage); return 2; }
    char err[ERRLEN];
    int rc = 1;
    dsv4_session *s = NULL;
    dsv4_sampler *smp = NULL;
    float *logits = NULL;
    int32_t *ids = NULL;
    double t0 = now_s();
    dsv4_model *m = load_model("generate", dir);
    if (!m) return 1;
    const dsv4_tokenizer *tok = dsv4_model_tokenizer(m);
    if (!tok) { fail("generate", "%s has no tokenizer.json (needed to encode the prompt)", dir); goto done; }
    dsv4_model_info info;
    dsv4_model_get_info(m, &info);
    double t_load = now_s() - t0;

    int n_prompt = 0;
    int32_t *pids = cli_tokenize_all(tok, prompt, strlen(prompt), &n_prompt, err, ERRLEN);
    if (!pids) { fail("generate", "prompt: %s", err); goto done; }
    ids = malloc(sizeof(int32_t) * (size_t)(n_prompt + 1));
    if (!ids) { free(pids); fail("generate", "out of memory"); goto done; }
    int n = 0;
    if (bos) ids[n++] = info.bos_token_id;
    memcpy(ids + n, pids, sizeof(int32_t) * (size_t)n_prompt);
    n += n_prompt;
    free(pids);
    if (n == 0) { fail("generate", "the prompt encodes to no tokens (pass --bos or a non-empty -p)"); goto done; }
    if (ctx == 0) ctx = n + n_gen;
    else if (ctx < n + n_gen) {
        fprintf(stderr, "dsv4 generate: --ctx %d is smaller than the prompt (%d tokens) + -n %d = %d; raise --ctx or "
                "lower -n\n", ctx, n, n_gen, n + n_gen);
        rc = 2;
        goto done;
    }

    if (dsv4_session_open(&s, m, ctx, err, sizeof err) != 0) { fail("generate", "cannot open session: %s", err); goto done; }
    if (dsv4_sampler_new(&smp, info.vocab_size, &sp, err, sizeof err) != 0) { fail("generate", "%s", err); goto done; }
    logits = malloc(sizeof(float) * (size_t)info.vocab_size);
    if (!logits) { fail("generate", "out of memory"); goto done; }

    fputs(prompt, stdout);
    fflush(stdout);
    double t1 = now_s();
    if (dsv4_eval(s, ids, n, logits, err, sizeof err) != 0) { fail("generate", "prefill: %s", err); goto done; }
    double t_prefill = now_s() - t1;

    dsv4_detok_stream st = {0};
    char out[1024];
    int produced = 0;
    double t2 = now_s();
    for (int i = 0; i < n_gen; i++) {
        int32_t next = dsv4_sample(smp, logits);
        if (next == info.eos_token_id) break;
        int k = dsv4_detok_next(tok, &st, next, out, sizeof out);
        if (k > 0) { fwrite(out, 1, (size_t)k, stdout); fflush(stdout); }
        produced++;
        if (i + 1 < n_gen && dsv4_eval(s, &next, 1, logits, err, sizeof err) != 0) {
            fputc('\n', stdout);
            fail("generate", "decode: %s", err);
            goto done;
        }
    }
    double t_decode = now_s() - t2;
    int k = dsv4_detok_flush(&st, out, sizeof out);
    if (k > 0) fwrite(out, 1, (size_t)k, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    fprintf(stderr, "load %.3f s | prefill %d tokens %.3f s (%.1f tok/s) | decode %d tokens %.3f s (%.1f tok/s)\n",
            t_load, n, t_prefill, n / (t_prefill > 0 ? t_prefill : 1e-9), produced, t_decode,
            produced / (t_decode > 0 ? t_decode : 1e-9));
    rc = 0;
done:
    free(logits); free(ids);
    dsv4_sampler_free(smp);
    dsv4_session_free(s);
    dsv4_model_free(m);
    return rc;
}

/* ---------------------------------------------------------------- logits */
static const char *logits_usage =
    "usage: dsv4 logits -m DIR --tokens ID,ID,... [--prefill N] --out FILE\n"
    "  --tokens IDS   token ids separated by commas or spaces\n"
    "  --prefill N    evaluate the first N tokens in one call (default: all), then one token per call\n"
    "  --out FILE     one row of vocab_size little-endian float32 logits per call (last position of the call)\n";

static int cmd_logits(args_t *a) {
    const char *dir = NULL, *tokens = NULL, *outp = NULL;
    long prefill = -1;
    for (a->i = 2; a->i < a->argc; a->i++) {
        const char *o = a->argv[a->i];
        if (!strcmp(o, "-m")) dir = arg_value(a, o);
        else if (!strcmp(o, "--tokens")) tokens = arg_value(a, o);
        else if (!strcmp(o, "--prefill")) prefill = arg_long(a, o, 1, 1L << 30);
        else if (!strcmp(o, "--out")) outp = arg_value(a, o);
        else arg_other(a, o);
    }
    if (!dir || !tokens || !outp) { fprintf(stderr, "dsv4 logits: -m, --tokens and --out are required\n%s", logits_usage); return 2; }
    char err[ERRLEN];
    int n = 0;
    int32_t *ids = parse_ids(tokens, strlen(tokens), &n, err);
    if (!ids) { fprintf(stderr, "dsv4 logits: --tokens: %s\n", err); return 2; }
    if (n == 0) { free(ids); fprintf(stderr, "dsv4 logits: --tokens is empty\n"); return 2; }
    if (prefill < 0) prefill = n;
    if (prefill > n) {
        free(ids);
        fprintf(stderr, "dsv4 logits: --prefill %ld exceeds the %d tokens given\n", prefill, n);
        return 2;
    }
    int rc = 1;
    dsv4_session *s = NULL;
    float *logits = NULL;
    FILE *f = NULL;
    dsv4_model *m = load_model("logits", dir);
    if (!m) { free(ids); return 1; }
    dsv4_model_info info;
    dsv4_model_get_info(m, &info);
    if (dsv4_session_open(&s, m, n, err, sizeof err) != 0) { fail("logits", "cannot open session: %s", err); goto done; }
    logits = malloc(sizeof(float) * (size_t)info.vocab_size);
    if (!logits) { fail("logits", "out of memory"); goto done; }
    f = fopen(outp, "wb");
    if (!f) { fail("logits", "cannot write %s: %s", outp, strerror(errno)); goto done; }
    int rows = 0;
    for (int pos = 0; pos < n; rows++) {
        int len = pos == 0 ? (int)prefill : 1;
        if (dsv4_eval(s, ids + pos, len, logits, err, sizeof err) != 0) { fail("logits", "eval: %s", err); goto done; }
        if (fwrite(logits, sizeof(float), (size_t)info.vocab_size, f) != (size_t)info.vocab_size) {
            fail("logits", "write failed: %s: %s", outp, strerror(errno));
            goto done;
        }
        pos += len;
    }
    int cerr = fclose(f);
    f = NULL;
    if (cerr != 0) { fail("logits", "write failed: %s: %s", outp, strerror(errno)); remove(outp); goto done; }
    fprintf(stderr, "wrote %d rows of %d logits to %s\n", rows, info.vocab_size, outp);
    rc = 0;
done:
    if (f) { fclose(f); remove(outp); }
    free(logits); free(ids);
    dsv4_session_free(s);
    dsv4_model_free(m);
    return rc;
}

/* ---------------------------------------------------------------- info */
static const char *info_usage =
    "usage: dsv4 info -m DIR\n"
    "  configuration summary, parameter counts, bytes per dtype and bytes read per decoded token,\n"
    "  computed from config.json alone (no weights needed)\n";

static int cmd_info(args_t *a) {
    const char *dir = NULL;
    for (a->i = 2; a->i < a->argc; a->i++) {
        const char *o = a->argv[a->i];
        if (!strcmp(o, "-m")) dir = arg_value(a, o);
        else arg_other(a, o);
    }
    if (!dir) { fprintf(stderr, "dsv4 info: -m DIR is required\n%s", info_usage); return 2; }
    char err[ERRLEN];
    dsv4_model_info in;
    if (dsv4_config_info(dir, &in, err, sizeof err) != 0) return fail("info", "%s", err);
    static const char *names[DSV4_INFO_NDTYPE] = { "BF16", "F32", "F8_E4M3", "F8_E8M0", "FP4 (I8 packed)", "I64", "other" };
    char b1[32], b2[32];
    printf("model:              %s\n", dir);
    printf("vocab_size:         %d\n", in.vocab_size);
    printf("hidden_size:        %d\n", in.dim);
    printf("layers:             %d trunk (%d window-only, %d CSA, %d HCA) + %d MTP\n", in.n_layers, in.n_window_layers,
           in.n_csa_layers, in.n_hca_layers, in.n_mtp_layers);
    printf("attention:          %d heads x %d\n", in.n_heads, in.head_dim);
    printf("experts:            %d routed, top-%d, %d hash-routed layers\n", in.n_routed_experts,
           in.n_activated_experts, in.n_hash_layers);
    printf("parameters:         %.0f (%s) without MTP; MTP block %.0f (%s); total %.0f\n",
           in.n_params - in.n_params_mtp, cli_count(in.n_params - in.n_params_mtp, b1), in.n_params_mtp,
           cli_count(in.n_params_mtp, b2), in.n_params);
    printf("active per token:   %.0f (%s)\n", in.n_params_active, cli_count(in.n_params_active, b1));
    printf("weight bytes:       %.0f (%s)\n", in.bytes_total, cli_bytes(in.bytes_total, b1));
    for (int i = 0; i < DSV4_INFO_NDTYPE; i++)
        if (in.bytes_by_dtype[i] > 0)
            printf("  %-16s  %.0f bytes (%s)\n", names[i], in.bytes_by_dtype[i], cli_bytes(in.bytes_by_dtype[i], b1));
    printf("bytes read per decoded token: %.0f (%s)\n", in.bytes_per_token, cli_bytes(in.bytes_per_token, b1));
    return 0;
}

/* ---------------------------------------------------------------- ppl
 * Protocol (same as tools/train/README.md): tokenize the file, split into consecutive non-overlapping
 * windows of W tokens (the last partial window included if it has >= 2 tokens), each window evaluated
 * in a fresh session; every position i < len-1 of a window predicts token i+1. ppl = exp(mean NLL).
 * Each token is evaluated as a one-token decode step so every position's logits are available; the
 * engine guarantees decode and prefill agree up to rounding. A text of fewer than 2 tokens is an error. */
static const char *ppl_usage =
    "usage: dsv4 ppl -m DIR --file TEXT [--window W] [--max-tokens N]\n"
    "  --file TEXT       UTF-8 text file (needs at least 2 tokens)\n"
    "  --window W        tokens per window, each window evaluated from an empty context (default 256)\n"
    "  --max-tokens N    use only the first N tokens of the file\n";

static int cmd_ppl(args_t *a) {
    const char *dir = NULL, *file = NULL;
    int window = 256;
    long max_tokens = -1;
    for (a->i = 2; a->i < a->argc; a->i++) {
        const char *o = a->argv[a->i];
        if (!strcmp(o, "-m")) dir = arg_value(a, o);
        else if (!strcmp(o, "--file")) file = arg_value(a, o);
        else if (!strcmp(o, "--window")) window = (int)arg_long(a, o, 2, 1 << 24);
        else if (!strcmp(o, "--max-tokens")) max_tokens = arg_long(a, o, 2, 1L << 40);
        else arg_other(a, o);
    }
    if (!dir || !file) { fprintf(stderr, "dsv4 ppl: -m DIR and --file are required\n%s", ppl_usage); return 2; }
    size_t len;
    char *text = cli_read_file("ppl", file, &len);
    if (!text) return 1;
    char err[ERRLEN];
    int rc = 1;
    int32_t *ids = NULL;
    dsv4_session *s = NULL;
    float *logits = NULL;
    dsv4_model *m = load_model("ppl", dir);
    if (!m) { free(text); return 1; }
    const dsv4_tokenizer *tok = dsv4_model_tokenizer(m);
    if (!tok) { fail("ppl", "%s has no tokenizer.json (needed to encode the text)", dir); goto done; }
    dsv4_model_info info;
    dsv4_model_get_info(m, &info);
    int n = 0;
    ids = cli_tokenize_all(tok, text, len, &n, err, ERRLEN);
    if (!ids) { fail("ppl", "%s: %s", file, err); goto done; }
    if (n < 2) { fail("ppl", "%s encodes to %d token%s; perplexity needs at least 2 tokens", file, n, n == 1 ? "" : "s"); goto done; }
    if (max_tokens > 0 && n > max_tokens) n = (int)max_tokens;
    if (dsv4_session_open(&s, m, window, err, sizeof err) != 0) { fail("ppl", "cannot open session: %s", err); goto done; }
    logits = malloc(sizeof(float) * (size_t)info.vocab_size);
    if (!logits) { fail("ppl", "out of memory"); goto done; }
    double nll = 0; long count = 0;
    double t0 = now_s();
    for (int w0 = 0; w0 < n; w0 += window) {
        int wl = n - w0 < window ? n - w0 : window;
        if (wl < 2) break;
        dsv4_session_reset(s);
        for (int i = 0; i + 1 < wl; i++) {
            if (dsv4_eval(s, ids + w0 + i, 1, logits, err, sizeof err) != 0) { fail("ppl", "eval: %s", err); goto done; }
            double mx = logits[0];
            for (int v = 1; v < info.vocab_size; v++) if (logits[v] > mx) mx = logits[v];
            double z = 0;
            for (int v = 0; v < info.vocab_size; v++) z += exp((double)logits[v] - mx);
            nll += -((double)logits[ids[w0 + i + 1]] - mx - log(z));
            count++;
        }
    }
    double dt = now_s() - t0;
    printf("tokens %d, predictions %ld, window %d, mean NLL %.6f, perplexity %.4f\n", n, count, window,
           nll / (double)count, exp(nll / (double)count));
    fprintf(stderr, "%.1f tok/s\n", count / (dt > 0 ? dt : 1e-9));
    rc = 0;
done:
    free(text); free(logits); free(ids);
    dsv4_session_free(s);
    dsv4_model_free(m);
    return rc;
}

/* ---------------------------------------------------------------- tokenize / detokenize */
static const char *tokenize_usage =
    "usage: dsv4 tokenize (-m DIR | --tokenizer FILE) [--text T]\n"
    "  prints the token ids of T (else of all of stdin, every byte including NUL) separated by spaces; no BOS\n"
    "  is added; the text must be valid UTF-8\n";
static const char *detokenize_usage =
    "usage: dsv4 detokenize (-m DIR | --tokenizer FILE) [--ids \"ID ID ...\"]\n"
    "  writes the raw bytes of the tokens (ids separated by spaces, commas or newlines; stdin when no --ids)\n";

/* The tokenizer of --tokenizer FILE or DIR/tokenizer.json; prints the reason and returns NULL on failure. */
static dsv4_tokenizer *open_tokenizer(const char *cmd, const char *dir, const char *file) {
    char err[ERRLEN], path[4096];
    if (!file) { snprintf(path, sizeof path, "%s/tokenizer.json", dir); file = path; }
    dsv4_tokenizer *t = NULL;
    if (dsv4_tokenizer_load(&t, file, err, sizeof err) != 0) { fail(cmd, "cannot load tokenizer: %s", err); return NULL; }
    return t;
}

static int cmd_tokenize(args_t *a, int reverse) {
    const char *dir = NULL, *file = NULL, *text = NULL, *cmd = a->cmd;
    for (a->i = 2; a->i < a->argc; a->i++) {
        const char *o = a->argv[a->i];
        if (!strcmp(o, "-m")) dir = arg_value(a, o);
        else if (!strcmp(o, "--tokenizer")) file = arg_value(a, o);
        else if (!reverse && !strcmp(o, "--text")) text = arg_value(a, o);
        else if (reverse && !strcmp(o, "--ids")) text = arg_value(a, o);
        else arg_other(a, o);
    }
    if (!dir && !file) { fprintf(stderr, "dsv4 %s: -m DIR or --tokenizer FILE is required\n%s", cmd, a->usage); return 2; }
    dsv4_tokenizer *t = open_tokenizer(cmd, dir, file);
    if (!t) return 1;
    size_t len = 0;
    char *buf = text ? strdup(text) : cli_read_stream(cmd, stdin, "stdin", &len);
    if (!buf) { if (text) fail(cmd, "out of memory"); dsv4_tokenizer_free(t); return 1; }
    if (text) len = strlen(buf);   /* an argument cannot hold NUL; stdin keeps every byte read */
    char err[ERRLEN];
    int n = 0, rc = 0;
    int32_t *ids = NULL;
    if (!reverse) {
        ids = cli_tokenize_all(t, buf, len, &n, err, ERRLEN);
        if (!ids) rc = fail(cmd, "%s: %s", text ? "--text" : "stdin", err);
        else {
            for (int i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
            printf("\n");
        }
    } else {
        ids = parse_ids(buf, len, &n, err);
        if (!ids) rc = fail(cmd, "%s", err);
        int vs = dsv4_tokenizer_vocab_size(t);
        for (int i = 0; i < n && rc == 0; i++) {
            size_t bl;
            const char *b = ids[i] < vs ? dsv4_token_bytes(t, ids[i], &bl) : NULL;
            if (!b) rc = fail(cmd, "id %d at item %d is not in the vocabulary (%d)", ids[i], i, vs);
            else fwrite(b, 1, bl, stdout);
        }
    }
    if (fflush(stdout) != 0 && rc == 0) rc = fail(cmd, "write error on stdout: %s", strerror(errno));
    free(ids);
    free(buf);
    dsv4_tokenizer_free(t);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 2 || cli_is_help(argv[1])) {
        fputs(usage_text, argc < 2 ? stderr : stdout);
        if (argc >= 2) fputs("options of every command:\n", stdout), fputs(cli_common_usage, stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *env_kernel = getenv("DSV4_KERNEL");
    if (env_kernel && *env_kernel) {   /* the library would fall back silently; the CLI says so */
        char err[ERRLEN];
        if (dsv4_set_kernel_path(env_kernel, err, sizeof err) != 0) { fprintf(stderr, "dsv4: DSV4_KERNEL: %s\n", err); return 2; }
    }
    const char *c = argv[1];
    args_t a = { argc, argv, 2, c, usage_text };
    if (!strcmp(c, "generate")) { a.usage = generate_usage; return cmd_generate(&a); }
    if (!strcmp(c, "logits")) { a.usage = logits_usage; return cmd_logits(&a); }
    if (!strcmp(c, "info")) { a.usage = info_usage; return cmd_info(&a); }
    if (!strcmp(c, "ppl")) { a.usage = ppl_usage; return cmd_ppl(&a); }
    if (!strcmp(c, "tokenize")) { a.usage = tokenize_usage; return cmd_tokenize(&a, 0); }
    if (!strcmp(c, "detokenize")) { a.usage = detokenize_usage; return cmd_tokenize(&a, 1); }
    if (!strcmp(c, "bench")) return dsv4_cli_bench(argc - 1, argv + 1);
    if (!strcmp(c, "bench-tokenizer")) return dsv4_cli_tokbench(argc - 1, argv + 1);
    if (!strcmp(c, "render")) return dsv4_cli_render(argc - 1, argv + 1);
    if (!strcmp(c, "parse")) return dsv4_cli_parse(argc - 1, argv + 1);
    if (!strcmp(c, "chat")) return dsv4_cli_chat(argc - 1, argv + 1);
    fprintf(stderr, "dsv4: unknown command '%s'\n%s", c, usage_text);
    return 2;
}
