/* cli/main.c — the `dsv4` command-line front end.
 *
 * Subcommands (each prints usage with -h):
 *   generate -m DIR -p TEXT [-n N] [--temperature T] [--top-p P] [--top-k K] [--seed S] [--bos] [--ctx C]
 *   logits   -m DIR --tokens ID,ID,... [--prefill N] --out FILE
 *   info     -m DIR
 *   ppl      -m DIR --file TEXT [--window W] [--max-tokens N]
 *   tokenize (-m DIR | --tokenizer FILE) [--text T]      (stdin when no --text)
 *   detokenize (-m DIR | --tokenizer FILE) [--ids "1 2 3"] (stdin when no --ids)
 *   bench    -m DIR [-n N]
 *   bench-tokenizer, render, parse, chat: see src/cli/commands.h (each in its own src/cli/cmd_*.c)
 * Only this layer prints and exits; it talks to the engine through include/dsv4.h alone.
 */
#include "dsv4.h"
#include "cli/commands.h"
#include <errno.h>
#include <math.h>
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

static void die(const char *what, const char *err) {
    fprintf(stderr, "dsv4: %s%s%s\n", what, err && *err ? ": " : "", err ? err : "");
    exit(1);
}

/* ---------------------------------------------------------------- argument helpers */
typedef struct { int argc; char **argv; int i; } args_t;

static const char *arg_value(args_t *a, const char *flag) {
    if (a->i + 1 >= a->argc) {
        fprintf(stderr, "dsv4: option %s needs a value\n", flag);
        exit(2);
    }
    return a->argv[++a->i];
}
static long arg_long(args_t *a, const char *flag, long lo, long hi) {
    const char *v = arg_value(a, flag);
    char *end; errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || end == v || x < lo || x > hi) {
        fprintf(stderr, "dsv4: option %s: '%s' is not an integer in [%ld, %ld]\n", flag, v, lo, hi);
        exit(2);
    }
    return x;
}
static double arg_double(args_t *a, const char *flag, double lo, double hi) {
    const char *v = arg_value(a, flag);
    char *end; errno = 0;
    double x = strtod(v, &end);
    if (errno || *end || end == v || !(x >= lo && x <= hi)) {
        fprintf(stderr, "dsv4: option %s: '%s' is not a number in [%g, %g]\n", flag, v, lo, hi);
        exit(2);
    }
    return x;
}

/* Read a whole stream into a NUL-terminated buffer. */
static char *read_stream(FILE *f, size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf) die("out of memory", NULL);
    size_t r;
    while ((r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n - 1 == 0) {
            cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb) die("out of memory", NULL);
            buf = nb;
        }
    }
    buf[n] = 0;
    *len = n;
    return buf;
}
static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        char e[ERRLEN];
        snprintf(e, sizeof e, "%s: %s", path, strerror(errno));
        die("cannot open file", e);
    }
    char *b = read_stream(f, len);
    fclose(f);
    return b;
}

/* Tokenize with automatic buffer growth. Returns malloc'd ids. */
static int32_t *tokenize_all(const dsv4_tokenizer *t, const char *text, size_t len, int *n_out) {
    char err[ERRLEN];
    int cap = (int)(len + 16);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)cap);
    if (!ids) die("out of memory", NULL);
    int n = dsv4_tokenize(t, text, len, ids, cap, err, sizeof err);
    if (n < 0) die("tokenize", err);
    if (n > cap) {
        free(ids);
        ids = malloc(sizeof(int32_t) * (size_t)n);
        if (!ids) die("out of memory", NULL);
        if (dsv4_tokenize(t, text, len, ids, n, err, sizeof err) < 0) die("tokenize", err);
    }
    *n_out = n;
    return ids;
}

/* Parse "1,2,3" or "1 2 3" into ids; every id must fit int32 and be >= 0 (range vs vocab is checked by
 * the engine, which names the offending position). */
static int32_t *parse_ids(const char *s, int *n_out) {
    int cap = 16, n = 0;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)cap);
    if (!ids) die("out of memory", NULL);
    const char *p = s;
    while (*p) {
        while (*p == ',' || *p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') p++;
        if (!*p) break;
        char *end; errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > 0x7fffffffL) {
            fprintf(stderr, "dsv4: token list: '%.20s' at item %d is not a non-negative integer id\n", p, n);
            exit(2);
        }
        if (n == cap) {
            cap *= 2;
            int32_t *nb = realloc(ids, sizeof(int32_t) * (size_t)cap);
            if (!nb) die("out of memory", NULL);
            ids = nb;
        }
        ids[n++] = (int32_t)v;
        p = end;
        if (*p && *p != ',' && *p != ' ' && *p != '\n' && *p != '\t' && *p != '\r') {
            fprintf(stderr, "dsv4: token list: unexpected character '%c' after item %d\n", *p, n - 1);
            exit(2);
        }
    }
    *n_out = n;
    return ids;
}

static dsv4_model *load_model(const char *dir) {
    char err[ERRLEN];
    dsv4_model *m = NULL;
    if (!dir) { fprintf(stderr, "dsv4: -m DIR is required\n"); exit(2); }
    if (dsv4_model_load(&m, dir, err, sizeof err) != 0) die("cannot load model", err);
    return m;
}

static const char *usage_text =
    "usage: dsv4 <command> [options]\n"
    "  generate -m DIR -p TEXT [-n N] [--temperature T] [--top-p P] [--top-k K] [--seed S] [--bos] [--ctx C]\n"
    "  logits   -m DIR --tokens ID,ID,... [--prefill N] --out FILE\n"
    "  info     -m DIR\n"
    "  ppl      -m DIR --file TEXT [--window W] [--max-tokens N]\n"
    "  tokenize (-m DIR | --tokenizer FILE) [--text T]\n"
    "  detokenize (-m DIR | --tokenizer FILE) [--ids \"ID ID ...\"]\n"
    "  bench    -m DIR [-n N]\n"
    "  bench-tokenizer --tokenizer FILE --corpus FILE [--min-time S] [--lines]\n"
    "  render   (-m DIR | --tokenizer FILE) --messages FILE.json [--thinking] [--effort high|max] [--tokens]\n"
    "  parse    [--thinking]                 (model output on stdin -> message JSON)\n"
    "  chat     -m DIR [--think|--no-think]\n";

/* ---------------------------------------------------------------- generate */
static int cmd_generate(args_t *a) {
    const char *dir = NULL, *prompt = NULL;
    int n_gen = 200, ctx = 4096, bos = 0;
    dsv4_sampler_params sp = { .temperature = 0.8f, .top_p = 0.95f, .top_k = 0, .seed = 42 };
    for (a->i = 2; a->i < a->argc; a->i++) {
        const char *o = a->argv[a->i];
        if (!strcmp(o, "-m")) dir = arg_value(a, o);
        else if (!strcmp(o, "-p")) prompt = arg_value(a, o);
        else if (!strcmp(o, "-n")) n_gen = (int)arg_long(a, o, 0, 1 << 24);
        else if (!strcmp(o, "--ctx")) ctx = (int)arg_long(a, o, 1, 1 << 24);
        else if (!strcmp(o, "--temperature")) sp.temperature = (float)arg_double(a, o, 0, 100);
        else if (!strcmp(o, "--top-p")) sp.top_p = (float)arg_double(a, o, 0, 1);
        else if (!strcmp(o, "--top-k")) sp.top_k = (int)arg_long(a, o, 0, 1 << 30);
        else if (!strcmp(o, "--seed")) sp.seed = (uint64_t)arg_long(a, o, 0, 0x7fffffffffffffffL);
        else if (!strcmp(o, "--bos")) bos = 1;
        else { fprintf(stderr, "dsv4 generate: unknown option '%s'\n%s", o, usage_text); return 2; }
    }
    if (!prompt) { fprintf(stderr, "dsv4 generate: -p TEXT is required\n"); return 2; }
    char err[ERRLEN];
    double t0 = now_s();
    dsv4_model *m = load_model(dir);
    const dsv4_tokenizer *tok = dsv4_model_tokenizer(m);
    if (!tok) die("generate needs a tokenizer.json in the model directory", dir);
    dsv4_model_info info;
    dsv4_model_get_info(m, &info);
    double t_load = now_s() - t0;

    int n_prompt = 0;
    int32_t *pids = tokenize_all(tok, prompt, strlen(prompt), &n_prompt);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(n_prompt + 1));
    if (!ids) die("out of memory", NULL);
    int n = 0;
    if (bos) ids[n++] = info.bos_token_id;
    memcpy(ids + n, pids, sizeof(int32_t) * (size_t)n_prompt);
    n += n_prompt;
    free(pids);
    if (n == 0) die("generate: the prompt encodes to no tokens (pass --bos or a non-empty -p)", NULL);
    if (n + n_gen > ctx) ctx = n + n_gen;

    dsv4_session *s = NULL;
    if (dsv4_session_open(&s, m, ctx, err, sizeof err) != 0) die("cannot open session", err);
    dsv4_sampler *smp = NULL;
    if (dsv4_sampler_new(&smp, info.vocab_size, &sp, err, sizeof err) != 0) die("sampler", err);
    float *logits = malloc(sizeof(float) * (size_t)info.vocab_size);
    if (!logits) die("out of memory", NULL);

    fputs(prompt, stdout);
    fflush(stdout);
    double t1 = now_s();
    if (dsv4_eval(s, ids, n, logits, err, sizeof err) != 0) die("prefill", err);
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
        if (i + 1 < n_gen && dsv4_eval(s, &next, 1, logits, err, sizeof err) != 0) die("decode", err);
    }
    double t_decode = now_s() - t2;
    int k = dsv4_detok_flush(&st, out, sizeof out);
    if (k > 0) fwrite(out, 1, (size_t)k, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    fprintf(stderr, "load %.3f s | prefill %d tokens %.3f s (%.1f tok/s) | decode %d tokens %.3f s (%.1f tok/s)\n",
            t_load, n, t_prefill, n / (t_prefill > 0 ? t_prefill : 1e-9), produced, t_decode,
            produced / (t_decode > 0 ? t_decode : 1e-9));
    free(logits); free(ids);
    dsv4_sampler_free(smp);
    dsv4_session_free(s);
    dsv4_model_free(m);
    return 0;
}

/* ---------------------------------------------------------------- logits */
static int cmd_logits(args_t *a) {
    const char *dir = NULL, *tokens = NULL, *outp = NULL;
    long prefill = -1;
    for (a->i = 2; a->i < a->argc; a->i++) {
        const char *o = a->argv[a->i];
        if (!strcmp(o, "-m")) dir = arg_value(a, o);
        else if (!strcmp(o, "--tokens")) tokens = arg_value(a, o);
        else if (!strcmp(o, "--prefill")) prefill = arg_long(a, o, 1, 1L << 30);
        else if (!strcmp(o, "--out")) outp = arg_value(a, o);
        else { fprintf(stderr, "dsv4 logits: unknown option '%s'\n%s", o, usage_text); return 2; }
    }
    if (!tokens || !outp) { fprintf(stderr, "dsv4 logits: --tokens and --out are required\n"); return 2; }
    int n = 0;
    int32_t *ids = parse_ids(tokens, &n);
    if (n == 0) { fprintf(stderr, "dsv4 logits: --tokens is empty\n"); return 2; }
    if (prefill < 0) prefill = n;
    if (prefill > n) { fprintf(stderr, "dsv4 logits: --prefill %ld exceeds the %d tokens given\n", prefill, n); return 2; }
    dsv4_model *m = load_model(dir);
    dsv4_model_info info;
    dsv4_model_get_info(m, &info);
    char err[ERRLEN];
    dsv4_session *s = NULL;
    if (dsv4_session_open(&s, m, n, err, sizeof err) != 0) die("cannot open session", err);
    float *logits = malloc(sizeof(float) * (size_t)info.vocab_size);
    FILE *f = fopen(outp, "wb");
    if (!f) { char e[ERRLEN]; snprintf(e, sizeof e, "%s: %s", outp, strerror(errno)); die("cannot write", e); }
    int rows = 0;
    for (int pos = 0; pos < n; rows++) {
        int len = pos == 0 ? (int)prefill : 1;
        if (dsv4_eval(s, ids + pos, len, logits, err, sizeof err) != 0) {
            fclose(f); remove(outp);
            die("eval", err);
        }
        if (fwrite(logits, sizeof(float), (size_t)info.vocab_size, f) != (size_t)info.vocab_size) die("write failed", outp);
        pos += len;
    }
    if (fclose(f) != 0) die("write failed", outp);
    fprintf(stderr, "wrote %d rows of %d logits to %s\n", rows, info.vocab_size, outp);
    free(logits); free(ids);
    dsv4_session_free(s);
    dsv4_model_free(m);
    return 0;
}

/* ---------------------------------------------------------------- info */
static int cmd_info(args_t *a) {
    const char *dir = NULL;
    for (a->i = 2; a->i < a->argc; a->i++) {
        const char *o = a->argv[a->i];
        if (!strcmp(o, "-m")) dir = arg_value(a, o);
        else { fprintf(stderr, "dsv4 info: unknown option '%s'\n%s", o, usage_text); return 2; }
    }
    if (!dir) { fprintf(stderr, "dsv4 info: -m DIR is required\n"); return 2; }
    char err[ERRLEN];
    dsv4_model_info in;
    if (dsv4_config_info(dir, &in, err, sizeof err) != 0) die("info", err);
    static const char *names[DSV4_INFO_NDTYPE] = { "BF16", "F32", "F8_E4M3", "F8_E8M0", "FP4 (I8 packed)", "I64", "other" };
    printf("model:              %s\n", dir);
    printf("vocab_size:         %d\n", in.vocab_size);
    printf("hidden_size:        %d\n", in.dim);
    printf("layers:             %d trunk (%d window-only, %d CSA, %d HCA) + %d MTP\n", in.n_layers, in.n_window_layers,
           in.n_csa_layers, in.n_hca_layers, in.n_mtp_layers);
    printf("attention:          %d heads x %d\n", in.n_heads, in.head_dim);
    printf("experts:            %d routed, top-%d, %d hash-routed layers\n", in.n_routed_experts,
           in.n_activated_experts, in.n_hash_layers);
    printf("parameters:         %.0f (%.2fB) without MTP; MTP block %.0f (%.2fB); total %.0f\n",
           in.n_params - in.n_params_mtp, (in.n_params - in.n_params_mtp) / 1e9, in.n_params_mtp, in.n_params_mtp / 1e9,
           in.n_params);
    printf("active per token:   %.0f (%.2fB)\n", in.n_params_active, in.n_params_active / 1e9);
    printf("weight bytes:       %.0f (%.2f GiB)\n", in.bytes_total, in.bytes_total / 1073741824.0);
    for (int i = 0; i < DSV4_INFO_NDTYPE; i++)
        if (in.bytes_by_dtype[i] > 0)
            printf("  %-16s  %.0f bytes (%.2f GiB)\n", names[i], in.bytes_by_dtype[i], in.bytes_by_dtype[i] / 1073741824.0);
    printf("bytes read per decoded token: %.0f (%.2f GiB)\n", in.bytes_per_token, in.bytes_per_token / 1073741824.0);
    return 0;
}

/* ---------------------------------------------------------------- ppl
 * Protocol (same as tools/train/README.md): tokenize the file, split into consecutive non-overlapping
 * windows of W tokens (the last partial window included if it has >= 2 tokens), each window evaluated
 * in a fresh session; every position i < len-1 of a window predicts token i+1. ppl = exp(mean NLL).
 * Each token is evaluated as a one-token decode step so every position's logits are available; the
 * engine guarantees decode and prefill agree up to rounding. */
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
        else { fprintf(stderr, "dsv4 ppl: unknown option '%s'\n%s", o, usage_text); return 2; }
    }
    if (!file) { fprintf(stderr, "dsv4 ppl: --file is required\n"); return 2; }
    dsv4_model *m = load_model(dir);
    const dsv4_tokenizer *tok = dsv4_model_tokenizer(m);
    if (!tok) die("ppl needs a tokenizer.json in the model directory", dir);
    dsv4_model_info info;
    dsv4_model_get_info(m, &info);
    size_t len;
    char *text = read_file(file, &len);
    int n = 0;
    int32_t *ids = tokenize_all(tok, text, len, &n);
    free(text);
    if (max_tokens > 0 && n > max_tokens) n = (int)max_tokens;
    char err[ERRLEN];
    dsv4_session *s = NULL;
    if (dsv4_session_open(&s, m, window, err, sizeof err) != 0) die("cannot open session", err);
    float *logits = malloc(sizeof(float) * (size_t)info.vocab_size);
    double nll = 0; long count = 0;
    double t0 = now_s();
    for (int w0 = 0; w0 < n; w0 += window) {
        int wl = n - w0 < window ? n - w0 : window;
        if (wl < 2) break;
        dsv4_session_reset(s);
        for (int i = 0; i + 1 < wl; i++) {
            if (dsv4_eval(s, ids + w0 + i, 1, logits, err, sizeof err) != 0) die("eval", err);
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
    free(logits); free(ids);
    dsv4_session_free(s);
    dsv4_model_free(m);
    return 0;
}

/* ---------------------------------------------------------------- tokenize / detokenize */
static dsv4_tokenizer *open_tokenizer(const char *dir, const char *file, dsv4_model **m_out) {
    char err[ERRLEN];
    *m_out = NULL;
    if (file) {
        dsv4_tokenizer *t = NULL;
        if (dsv4_tokenizer_load(&t, file, err, sizeof err) != 0) die("cannot load tokenizer", err);
        return t;
    }
    if (!dir) { fprintf(stderr, "dsv4: -m DIR or --tokenizer FILE is required\n"); exit(2); }
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    dsv4_tokenizer *t = NULL;
    if (dsv4_tokenizer_load(&t, path, err, sizeof err) != 0) die("cannot load tokenizer", err);
    return t;
}

static int cmd_tokenize(args_t *a, int reverse) {
    const char *dir = NULL, *file = NULL, *text = NULL;
    for (a->i = 2; a->i < a->argc; a->i++) {
        const char *o = a->argv[a->i];
        if (!strcmp(o, "-m")) dir = arg_value(a, o);
        else if (!strcmp(o, "--tokenizer")) file = arg_value(a, o);
        else if (!reverse && !strcmp(o, "--text")) text = arg_value(a, o);
        else if (reverse && !strcmp(o, "--ids")) text = arg_value(a, o);
        else { fprintf(stderr, "dsv4: unknown option '%s'\n%s", o, usage_text); return 2; }
    }
    dsv4_model *m;
    dsv4_tokenizer *t = open_tokenizer(dir, file, &m);
    size_t len;
    char *buf = text ? strdup(text) : read_stream(stdin, &len);
    if (!buf) die("out of memory", NULL);
    len = strlen(buf);
    if (!reverse) {
        int n;
        int32_t *ids = tokenize_all(t, buf, len, &n);
        for (int i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        printf("\n");
        free(ids);
    } else {
        int n;
        int32_t *ids = parse_ids(buf, &n);
        int vs = dsv4_tokenizer_vocab_size(t);
        for (int i = 0; i < n; i++) {
            size_t bl;
            const char *b = ids[i] < vs ? dsv4_token_bytes(t, ids[i], &bl) : NULL;
            if (!b) { fprintf(stderr, "dsv4 detokenize: id %d at item %d is not in the vocabulary (%d)\n", ids[i], i, vs); return 1; }
            fwrite(b, 1, bl, stdout);
        }
        free(ids);
    }
    free(buf);
    dsv4_tokenizer_free(t);
    return 0;
}

/* ---------------------------------------------------------------- bench
 * Decode speed on the model reported against the memory-bandwidth bound measured in the same run:
 * bound tok/s = measured read bandwidth / weight bytes read per token. */
static double measure_bandwidth(void) {
    size_t n = (size_t)256 << 20; /* 256 MiB, well beyond the caches */
    uint64_t *buf = malloc(n);
    if (!buf) return 0;
    memset(buf, 1, n);
    volatile uint64_t sink = 0;
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now_s();
        uint64_t acc0 = 0, acc1 = 0, acc2 = 0, acc3 = 0;
        for (size_t i = 0; i < n / 8; i += 4) { acc0 += buf[i]; acc1 += buf[i + 1]; acc2 += buf[i + 2]; acc3 += buf[i + 3]; }
        sink += acc0 + acc1 + acc2 + acc3;
        double bw = (double)n / (now_s() - t0);
        if (bw > best) best = bw;
    }
    (void)sink;
    free(buf);
    return best;
}

static int cmd_bench(args_t *a) {
    const char *dir = NULL;
    int n_gen = 128;
    for (a->i = 2; a->i < a->argc; a->i++) {
        const char *o = a->argv[a->i];
        if (!strcmp(o, "-m")) dir = arg_value(a, o);
        else if (!strcmp(o, "-n")) n_gen = (int)arg_long(a, o, 1, 1 << 20);
        else { fprintf(stderr, "dsv4 bench: unknown option '%s'\n%s", o, usage_text); return 2; }
    }
    dsv4_model *m = load_model(dir);
    dsv4_model_info info;
    dsv4_model_get_info(m, &info);
    char err[ERRLEN];
    int n_prompt = 256;
    dsv4_session *s = NULL;
    if (dsv4_session_open(&s, m, n_prompt + n_gen, err, sizeof err) != 0) die("cannot open session", err);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)n_prompt);
    for (int i = 0; i < n_prompt; i++) ids[i] = (int32_t)((i * 7919 + 13) % info.vocab_size);
    float *logits = malloc(sizeof(float) * (size_t)info.vocab_size);
    double t0 = now_s();
    if (dsv4_eval(s, ids, n_prompt, logits, err, sizeof err) != 0) die("prefill", err);
    double tp = now_s() - t0;
    int32_t next = 0;
    double t1 = now_s();
    for (int i = 0; i < n_gen; i++) {
        int best = 0;
        for (int v = 1; v < info.vocab_size; v++) if (logits[v] > logits[best]) best = v;
        next = best;
        if (dsv4_eval(s, &next, 1, logits, err, sizeof err) != 0) die("decode", err);
    }
    double td = now_s() - t1;
    double bw = measure_bandwidth();
    double dec = n_gen / td;
    double bound = bw > 0 ? bw / info.bytes_per_token : 0;
    printf("prefill: %d tokens in %.3f s = %.1f tok/s\n", n_prompt, tp, n_prompt / tp);
    printf("decode:  %d tokens in %.3f s = %.1f tok/s\n", n_gen, td, dec);
    printf("memory read bandwidth (measured, 1 thread): %.2f GB/s; weight bytes per token: %.0f\n", bw / 1e9,
           info.bytes_per_token);
    printf("decode vs bandwidth bound (%.1f tok/s): %.3f\n", bound, bound > 0 ? dec / bound : 0);
    free(ids); free(logits);
    dsv4_session_free(s);
    dsv4_model_free(m);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs(usage_text, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    args_t a = { argc, argv, 2 };
    const char *c = argv[1];
    if (!strcmp(c, "generate")) return cmd_generate(&a);
    if (!strcmp(c, "logits")) return cmd_logits(&a);
    if (!strcmp(c, "info")) return cmd_info(&a);
    if (!strcmp(c, "ppl")) return cmd_ppl(&a);
    if (!strcmp(c, "tokenize")) return cmd_tokenize(&a, 0);
    if (!strcmp(c, "detokenize")) return cmd_tokenize(&a, 1);
    if (!strcmp(c, "bench")) return cmd_bench(&a);
    if (!strcmp(c, "bench-tokenizer")) return dsv4_cli_tokbench(argc - 1, argv + 1);
    if (!strcmp(c, "render")) return dsv4_cli_render(argc - 1, argv + 1);
    if (!strcmp(c, "parse")) return dsv4_cli_parse(argc - 1, argv + 1);
    if (!strcmp(c, "chat")) return dsv4_cli_chat(argc - 1, argv + 1);
    fprintf(stderr, "dsv4: unknown command '%s'\n%s", c, usage_text);
    return 2;
}
