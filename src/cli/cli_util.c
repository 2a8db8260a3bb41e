/* cli/cli_util.c — see cli_util.h. */
#include "cli/cli_util.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <stdio.h>
#include <stdarg.h>
#include <math.h>
#include <time.h>
#include <dirent.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

char *cli_read_stream(const char *who, FILE *f, const char *name, size_t *len) {
    size_t cap = 1 << 16, n = 0, r;
    char *buf = malloc(cap);
    if (!buf) { fprintf(stderr, "dsv4 %s: out of memory reading %s\n", who, name); return NULL; }
    errno = 0;
    while ((r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n - 1 == 0) {
            char *nb = cap <= ((size_t)-1) / 2 ? realloc(buf, cap * 2) : NULL;
            if (!nb) { free(buf); fprintf(stderr, "dsv4 %s: out of memory reading %s\n", who, name); return NULL; }
            buf = nb;
            cap *= 2;
        }
    }
    if (ferror(f)) {
        int e = errno;
        free(buf);
        fprintf(stderr, "dsv4 %s: cannot read %s: %s\n", who, name, e ? strerror(e) : "read error");
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

char *cli_read_file(const char *who, const char *path, size_t *len) {
    if (!strcmp(path, "-")) return cli_read_stream(who, stdin, "stdin", len);
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "dsv4 %s: cannot open %s: %s\n", who, path, strerror(errno)); return NULL; }
    char *b = cli_read_stream(who, f, path, len);
    fclose(f);
    return b;
}

size_t cli_utf8_unit(const unsigned char *s, size_t n, int *valid) {
    unsigned c = s[0];
    *valid = 1;
    if (c < 0x80) return 1;
    size_t need;
    unsigned lo = 0x80, hi = 0xBF;   /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) need = 2;
    else if (c >= 0xE0 && c <= 0xEF) { need = 3; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
    else if (c >= 0xF0 && c <= 0xF4) { need = 4; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
    else { *valid = 0; return 1; }
    size_t k = 1;
    for (; k < need && k < n; k++) {
        unsigned b = s[k];
        if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) break;
    }
    if (k < need) *valid = 0;
    return k;
}

long cli_utf8_invalid_at(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        int ok;
        size_t k = cli_utf8_unit(u + i, n - i, &ok);
        if (!ok) return (long)i;
        i += k;
    }
    return -1;
}

void cli_json_str(FILE *f, const char *s, size_t n, size_t *n_replaced) {
    const unsigned char *u = (const unsigned char *)s;
    fputc('"', f);
    for (size_t i = 0; i < n;) {
        unsigned c = u[i];
        if (c >= 0x80) {
            int ok;
            size_t k = cli_utf8_unit(u + i, n - i, &ok);
            if (ok) fwrite(u + i, 1, k, f);
            else {
                fputs("\xEF\xBF\xBD", f);
                if (n_replaced) (*n_replaced)++;
            }
            i += k;
            continue;
        }
        switch (c) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        case '\b': fputs("\\b", f); break;
        case '\f': fputs("\\f", f); break;
        default:
            if (c < 0x20) fprintf(f, "\\u%04x", c);
            else fputc((int)c, f);
        }
        i++;
    }
    fputc('"', f);
}

/* A unit of a human-readable quantity: values >= scale are written as x/scale with two decimals + suffix. */
typedef struct { double scale; const char *suffix; } cli_unit;

/* x in the first (largest) unit of u[0..nu) whose scale it reaches, "%.2f<suffix>"; below all of them (or
 * NaN) as "%.0f<last>". buf holds >= 32 bytes. */
static const char *cli_human(double x, char *buf, const cli_unit *u, int nu, const char *last) {
    for (int i = 0; i < nu; i++)
        if (x >= u[i].scale) { snprintf(buf, 32, "%.2f%s", x / u[i].scale, u[i].suffix); return buf; }
    snprintf(buf, 32, "%.0f%s", x, last);
    return buf;
}

const char *cli_count(double x, char *buf) {
    static const cli_unit u[] = { { 1e9, "B" }, { 1e6, "M" }, { 1e3, "K" } };
    return cli_human(x, buf, u, 3, "");
}

const char *cli_bytes(double x, char *buf) {
    static const cli_unit u[] = { { 1073741824.0, " GiB" }, { 1048576.0, " MiB" }, { 1024.0, " KiB" } };
    return cli_human(x, buf, u, 3, " B");
}

int cli_is_help(const char *o) { return !strcmp(o, "-h") || !strcmp(o, "--help"); }

int32_t *cli_tokenize_all(const dsv4_tokenizer *t, const char *text, size_t len, int *n_out, char *err, size_t errlen) {
    if (len > 0x7ffffff0u) { snprintf(err, errlen, "text of %zu bytes is too long", len); return NULL; }
    int cap = (int)(len + 16); /* a byte-level BPE never yields more ids than bytes */
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)cap);
    if (!ids) { snprintf(err, errlen, "out of memory"); return NULL; }
    int n = dsv4_tokenize(t, text, len, ids, cap, err, errlen);
    if (n > cap) {
        free(ids);
        ids = malloc(sizeof(int32_t) * (size_t)n);
        if (!ids) { snprintf(err, errlen, "out of memory"); return NULL; }
        n = dsv4_tokenize(t, text, len, ids, n, err, errlen);
    }
    if (n < 0) { free(ids); return NULL; }
    *n_out = n;
    return ids;
}

const char *cli_common_usage =
    "options of every command:\n"
    "  -t, --threads N  threads, 0..1024; 0 = one per physical core (default); results never depend on N\n"
    "  --kernel PATH    SIMD path: scalar, avx2, avx512 or neon (default: the best this CPU has; env DSV4_KERNEL)\n"
    "  --mem BYTES      memory budget for the weights, e.g. 16G, 512M (K/M/G/T = KiB..TiB); routed experts are read\n"
    "                   from disk into an expert cache as needed (same results); 0 = no budget (weights mapped);\n"
    "                   default: 3/4 of the available RAM (MemAvailable), which keeps a model that fits mapped\n"
    "  --engram-cache N DeepSeek-V4.1: a cache of N rows in front of each Engram table per session, 0..2^30\n"
    "                   (264 B a row on V4.1-Flash; default 0: every row read from disk; same results)\n"
    "  --chunk N        tokens per forward chunk, 1..4096 (default 512; serve 128, per slot): a larger chunk reads\n"
    "                   each routed expert once for more prompt tokens (faster prefill) at about 1 MiB of session\n"
    "                   memory per token on V4-Flash (same results)\n"
    "  -v, --verbose    more detail on stderr (seed, timings, prompt reuse)\n"
    "  -h, --help       this help;  --version  the version\n";

const char *cli_version = "dsv4 0.1.0";
int cli_verbose = 0;
int cli_parse_only = 0;
char cli_msg[1024];
char cli_trace[8192];

int cli_fail(const char *cmd, const char *fmt, ...) {
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    /* the library's messages may start with the function that failed ("dsv4_session_open: out of memory ..."):
     * users get the reason, not our function names */
    for (char *p = strstr(buf, "dsv4_"); p; p = strstr(p, "dsv4_")) {
        char *q = p + 5;
        while ((*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') || *q == '_') q++;
        if (q[0] == ':' && q[1] == ' ') memmove(p, q + 2, strlen(q + 2) + 1);
        else p = q;
    }
    fprintf(stderr, "dsv4 %s: %s\n", cmd, buf);
    int k = snprintf(cli_msg, sizeof cli_msg, "dsv4 %s: ", cmd);
    if (k > 0 && (size_t)k < sizeof cli_msg) snprintf(cli_msg + k, sizeof cli_msg - (size_t)k, "%.1000s", buf);
    return 1;
}

/* Record and print one parser message; returns 2. */
static int perr(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static int perr(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = snprintf(cli_msg, sizeof cli_msg, "dsv4 %s: ", cmd);
    if (k > 0 && (size_t)k < sizeof cli_msg) vsnprintf(cli_msg + k, sizeof cli_msg - (size_t)k, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", cli_msg);
    return 2;
}

static void trace(const char *name, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void trace(const char *name, const char *fmt, ...) {
    if (!cli_parse_only) return;
    size_t l = strlen(cli_trace);
    if (l + 1 >= sizeof cli_trace) return;
    snprintf(cli_trace + l, sizeof cli_trace - l, "%s=", name);
    l = strlen(cli_trace);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cli_trace + l, sizeof cli_trace - l, fmt, ap);
    va_end(ap);
    l = strlen(cli_trace);
    if (l + 1 < sizeof cli_trace) { cli_trace[l] = ' '; cli_trace[l + 1] = 0; }
}

/* 1 if `o` (of length len) is one of the '|'-separated names. */
static int name_match(const char *names, const char *o, size_t len) {
    for (const char *p = names; *p;) {
        const char *e = strchr(p, '|');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == len && !strncmp(p, o, len)) return 1;
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

/* Decimal digits only (no sign, space, point or exponent), at most 20 of them, as an unsigned 64-bit value. */
static int parse_digits(const char *v, uint64_t *out) {
    if (!*v) return -1;
    uint64_t x = 0;
    for (const char *p = v; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        unsigned d = (unsigned)(*p - '0');
        if (x > (UINT64_MAX - d) / 10) return -1;
        x = x * 10 + d;
    }
    *out = x;
    return 0;
}

/* Apply one table option to value v (NULL for flags); returns 0 or 2. */
static int apply_opt(const char *cmd, const cli_opt *t, const char *o, const char *v) {
    uint64_t u;
    switch (t->kind) {
    case CLI_FLAG:
        *(int *)t->dst = t->set;
        trace(o, "%d", t->set);
        break;
    case CLI_STR:
        *(const char **)t->dst = v;
        trace(o, "%s", v);
        break;
    case CLI_INT:
    case CLI_LONG:
        if (parse_digits(v, &u) || (double)u < t->lo || (double)u > t->hi)
            return perr(cmd, "option %s: '%s' is not an integer in [%lld, %lld]", o, v, (long long)t->lo, (long long)t->hi);
        if (t->kind == CLI_INT) *(int *)t->dst = (int)u;
        else *(long long *)t->dst = (long long)u;
        trace(o, "%llu", (unsigned long long)u);
        break;
    case CLI_U64:
        if (parse_digits(v, &u))
            return perr(cmd, "option %s: '%s' is not an integer in [0, %llu]", o, v, (unsigned long long)UINT64_MAX);
        *(uint64_t *)t->dst = u;
        trace(o, "%llu", (unsigned long long)u);
        break;
    case CLI_NUM: {
        char *end;
        errno = 0;
        double x = strtod(v, &end);
        int ok = *v && !errno && !*end && end != v && *v != ' ' && *v != '\t' && isfinite(x) &&
                 (t->lo_open ? x > t->lo : x >= t->lo) && x <= t->hi;
        if (!ok)
            return perr(cmd, "option %s: '%s' is not a number in %c%g, %g]", o, v, t->lo_open ? '(' : '[', t->lo, t->hi);
        *(double *)t->dst = x;
        trace(o, "%g", x);
        break;
    }
    case CLI_CHOICE: {
        int idx = 0;
        for (const char *p = t->choices; *p; idx++) {
            const char *e = strchr(p, '|');
            size_t n = e ? (size_t)(e - p) : strlen(p);
            if (strlen(v) == n && !strncmp(p, v, n)) { *(int *)t->dst = idx; trace(o, "%s", v); return 0; }
            if (!e) break;
            p = e + 1;
        }
        return perr(cmd, "option %s: '%s' is not one of %s", o, v, t->choices);
    }
    case CLI_CUSTOM: {
        int r = t->parse(v, t->dst);
        if (r == -2) return perr(cmd, "option %s: %s ('%s' is one too many)", o, t->limit ? t->limit : "too many", v);
        if (r != 0) return perr(cmd, "option %s: '%s' is not %s", o, v, t->what);
        trace(o, "%s", v);
        break;
    }
    }
    return 0;
}

/* The options every command takes (used when the command's table does not name them). */
static int threads_value;
static const char *kernel_value;
uint64_t cli_mem_bytes;
int cli_mem_given;
int cli_engram_cache_rows;
int cli_chunk_tokens;

int cli_default_chunk(const char *cmd) { return cmd && !strcmp(cmd, "serve") ? DSV4_DEFAULT_CHUNK : CLI_CHUNK; }
static int parse_mem(const char *v, void *dst) {
    if (cli_parse_bytes(v, dst) != 0) return -1;
    cli_mem_given = 1;
    return 0;
}

uint64_t cli_default_mem(void) {
    const char *env = getenv("DSV4_MEM_AVAILABLE");   /* test hook: pretend this much RAM is available */
    uint64_t avail = 0;
    if (env && cli_parse_bytes(env, &avail) == 0) return avail / 4 * 3;
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[256];
    unsigned long long kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
    fclose(f);
    return (uint64_t)kb * 1024 / 4 * 3;
}
int cli_parse_bytes(const char *v, void *dst) {
    const char *p = v;
    uint64_t n = 0;
    if (*p < '0' || *p > '9') return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (n > (UINT64_MAX - 9) / 10) return -1;
        n = n * 10 + (uint64_t)(*p - '0');
    }
    int sh = 0;
    switch (*p) {
    case 'K': case 'k': sh = 10; p++; break;
    case 'M': case 'm': sh = 20; p++; break;
    case 'G': case 'g': sh = 30; p++; break;
    case 'T': case 't': sh = 40; p++; break;
    default: break;
    }
    if (sh && (*p == 'i' || *p == 'I')) p++;
    if (*p == 'B' || *p == 'b') p++;
    if (*p || (sh && n > (UINT64_MAX >> sh))) return -1;
    *(uint64_t *)dst = n << sh;
    return 0;
}
static const cli_opt common_opts[] = {
    { .names = "--mem", .kind = CLI_CUSTOM, .dst = &cli_mem_bytes, .parse = parse_mem,
      .what = "a byte count (digits with an optional K, M, G or T suffix: KiB .. TiB)" },
    { .names = "-t|--threads", .kind = CLI_INT, .dst = &threads_value, .lo = 0, .hi = 1024 },
    { .names = "--kernel", .kind = CLI_STR, .dst = &kernel_value },
    { .names = "--engram-cache", .kind = CLI_INT, .dst = &cli_engram_cache_rows, .lo = 0, .hi = 1 << 30 },
    { .names = "--chunk", .kind = CLI_INT, .dst = &cli_chunk_tokens, .lo = 1, .hi = 4096 },
    CLI_O_END
};

int cli_parse(const char *cmd, const char *usage, const cli_opt *opts, int argc, char **argv) {
    cli_msg[0] = 0;
    if (cli_parse_only) cli_trace[0] = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) { fputs(usage, stdout); fputs(cli_common_usage, stdout); return cli_stdout_close(cmd) ? 1 : -1; }
        if (!strcmp(a, "--version")) { printf("%s\n", cli_version); return cli_stdout_close(cmd) ? 1 : -1; }
        if (a[0] != '-' || !a[1]) return perr(cmd, "unexpected argument '%s' (options start with -; dsv4 %s -h lists them)", a, cmd);
        /* --name=value */
        const char *eq = a[1] == '-' ? strchr(a, '=') : NULL;
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)(len < 120 ? len : 120), a);
        const cli_opt *t = NULL;
        for (const cli_opt *p = opts; p && p->names && !t; p++) if (name_match(p->names, a, len)) t = p;
        int common = 0;
        if (!t && (!strcmp(name, "-v") || !strcmp(name, "--verbose"))) {
            if (eq) return perr(cmd, "option %s takes no value", name);
            cli_verbose = 1;
            trace(name, "1");
            continue;
        }
        if (!t) for (const cli_opt *p = common_opts; p->names && !t; p++) if (name_match(p->names, a, len)) t = p, common = 1;
        if (!t) return perr(cmd, "unknown option '%s' (dsv4 %s -h lists the options)", name, cmd);
        if (t->seen) *t->seen = 1;
        const char *v = NULL;
        if (t->kind == CLI_FLAG) {
            if (eq) return perr(cmd, "option %s takes no value", name);
        } else if (eq) v = eq + 1;
        else if (i + 1 < argc) v = argv[++i];
        else return perr(cmd, "option %s needs a value", name);
        int rc = apply_opt(cmd, t, name, v);
        if (rc) return rc;
        if (common && !cli_parse_only) {
            char err[256];
            if (t->dst == &threads_value) {
                if (dsv4_set_threads(threads_value, err, sizeof err) != 0) return perr(cmd, "%s", err);
                long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
                if (ncpu > 0 && threads_value > ncpu)
                    fprintf(stderr, "dsv4 %s: warning: %d threads on %ld online CPUs share cores (slower, same results)\n",
                            cmd, threads_value, ncpu);
            } else if (t->dst == &kernel_value && dsv4_set_kernel_path(kernel_value, err, sizeof err) != 0)
                return perr(cmd, "option --kernel: %s", err);
        }
    }
    return 0;
}

uint64_t cli_seed(const char *cmd, uint64_t s, int seen) {
    if (!seen) {
        s = 0;
        FILE *f = fopen("/dev/urandom", "rb");
        if (!f || fread(&s, sizeof s, 1, f) != 1) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            s = (uint64_t)ts.tv_nsec * 6364136223846793005ULL ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 32);
        }
        if (f) fclose(f);
        s &= 0xffffffffffffULL;   /* short enough to retype */
    }
    if (cli_verbose) fprintf(stderr, "dsv4 %s: seed %llu%s\n", cmd, (unsigned long long)s, seen ? "" : " (random; -s to repeat)");
    return s;
}

int cli_is_regular_file(FILE *f) {
    struct stat st;
    return f && fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode);
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double g_progress_t;   /* last redraw */

void cli_progress(const char *label, double done, double total, const char *extra) {
    double now = cli_now();
    if (done < total && now - g_progress_t < 0.1) return;
    g_progress_t = now;
    enum { W = 24 };
    double f = total > 0 ? done / total : 0;
    if (f < 0) f = 0;
    if (f > 1) f = 1;
    char bar[W + 1];
    int k = (int)(f * W);
    for (int i = 0; i < W; i++) bar[i] = i < k ? '#' : '.';
    bar[W] = 0;
    /* one screen row: a line that wraps would leave a row behind at every redraw (\r returns to its last row) */
    char line[512];
    snprintf(line, sizeof line, "%s [%s] %3d%%%s%s", label, bar, (int)(f * 100), extra && *extra ? " " : "", extra ? extra : "");
    struct winsize ws;
    size_t cols = ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 ? (size_t)ws.ws_col - 1 : 79;
    if (strlen(line) > cols) line[cols] = 0;
    fprintf(stderr, "\r\033[K%s", line);
    fflush(stderr);
}

void cli_progress_clear(void) {
    fputs("\r\033[K", stderr);
    fflush(stderr);
    g_progress_t = 0;
}

int32_t *cli_parse_ids(const char *s, size_t len, int *n_out, char *err, size_t errlen) {
    int cap = 16, n = 0;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)cap);
    if (!ids) { snprintf(err, errlen, "out of memory"); return NULL; }
    const char *p = s, *e = s + len;
#define IS_SEP(c) ((c) == ',' || (c) == ' ' || (c) == '\n' || (c) == '\t' || (c) == '\r')
    while (p < e) {
        while (p < e && IS_SEP(*p)) p++;
        if (p == e) break;
        char *end; errno = 0;
        long v = *p >= '0' && *p <= '9' ? strtol(p, &end, 10) : -1;
        if (v < 0 || errno || v > 0x7fffffffL) {
            if (*p) snprintf(err, errlen, "token list: '%.20s' at item %d is not a non-negative integer id", p, n);
            else snprintf(err, errlen, "token list: a NUL byte at item %d is not a non-negative integer id", n);
            free(ids);
            return NULL;
        }
        if (n == cap) {
            cap *= 2;
            int32_t *nb = realloc(ids, sizeof(int32_t) * (size_t)cap);
            if (!nb) { free(ids); snprintf(err, errlen, "out of memory"); return NULL; }
            ids = nb;
        }
        ids[n++] = (int32_t)v;
        p = end;
        if (p < e && !IS_SEP(*p)) {
            snprintf(err, errlen, "token list: unexpected byte 0x%02x after item %d", (unsigned char)*p, n - 1);
            free(ids);
            return NULL;
        }
    }
#undef IS_SEP
    *n_out = n;
    return ids;
}

/* 1 if dir holds a file whose name ends in ".safetensors". */
static int has_safetensors(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 1;   /* let the library say why */
    struct dirent *e;
    int found = 0;
    while (!found && (e = readdir(d))) {
        size_t l = strlen(e->d_name);
        found = l > 12 && !strcmp(e->d_name + l - 12, ".safetensors");
    }
    closedir(d);
    return found;
}

dsv4_model *cli_load_model(const char *cmd, const char *dir) {
    struct stat st;
    if (stat(dir, &st) != 0) {
        cli_fail(cmd, "-m %s: %s (-m takes the model directory: config.json, *.safetensors, tokenizer.json)", dir,
                 strerror(errno));
        return NULL;
    }
    if (!S_ISDIR(st.st_mode)) {
        const char *slash = strrchr(dir, '/');
        cli_fail(cmd, "-m takes the model directory (config.json, *.safetensors, tokenizer.json), and %s is a file%s%.*s",
                 dir, slash ? "; try -m " : "", slash ? (int)(slash - dir + (slash == dir)) : 0, dir);
        return NULL;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (stat(path, &st) == 0 && !has_safetensors(dir)) {
        cli_fail(cmd, "%s has a config.json but no weights (*.safetensors). DeepSeek publishes them on Hugging Face, "
                 "e.g. `hf download deepseek-ai/DeepSeek-V4-Flash --local-dir %s` (README.md, \"Running a real "
                 "checkpoint\")", dir, dir);
        return NULL;
    }
    int tty = isatty(STDERR_FILENO);
    if (tty) {
        dsv4_model_info in;
        char err0[256], b[32];
        if (dsv4_config_info(dir, &in, err0, sizeof err0) == 0)
            fprintf(stderr, "dsv4 %s: loading %s (%s of weights) ...", cmd, dir, cli_bytes(in.bytes_total, b));
        else fprintf(stderr, "dsv4 %s: loading %s ...", cmd, dir);
    }
    char err[1024];
    dsv4_model *m = NULL;
    dsv4_load_options lo = {0};
    lo.mem_bytes = cli_mem_given ? cli_mem_bytes : cli_default_mem();
    lo.engram_cache_rows = cli_engram_cache_rows;   /* --engram-cache */
    lo.chunk_tokens = cli_chunk_tokens ? cli_chunk_tokens : cli_default_chunk(cmd);   /* --chunk */
    int rc = dsv4_model_load_opts(&m, dir, &lo, err, sizeof err);
    if (rc != 0 && !cli_mem_given && lo.mem_bytes) {
        /* the default budget is below what this model needs: map the weights and let the kernel page them */
        char b[32];
        if (tty) fputs("\r\033[K", stderr);
        fprintf(stderr, "dsv4 %s: warning: the default memory budget %s (3/4 of the available RAM) is too small (%s); "
                "weights mapped instead, so the kernel pages them (--mem sets a budget)\n", cmd,
                cli_bytes((double)lo.mem_bytes, b), err);
        lo.mem_bytes = 0;
        rc = dsv4_model_load_opts(&m, dir, &lo, err, sizeof err);
    }
    if (tty) fputs("\r\033[K", stderr);
    if (rc != 0) { cli_fail(cmd, "cannot load model: %s", err); return NULL; }
    return m;
}

dsv4_tokenizer *cli_open_tokenizer(const char *cmd, const char *dir, const char *file) {
    char err[1024], path[4096];
    if (!file) { snprintf(path, sizeof path, "%s/tokenizer.json", dir); file = path; }
    dsv4_tokenizer *t = NULL;
    if (dsv4_tokenizer_load(&t, file, err, sizeof err) != 0) { cli_fail(cmd, "cannot load tokenizer: %s", err); return NULL; }
    return t;
}

int cli_check_ctx(const char *cmd, const char *opt, const dsv4_model *m, long ctx) {
    int maxp = dsv4_model_max_positions(m);
    if (maxp > 0 && ctx > maxp) {
        fprintf(stderr, "dsv4 %s: %s %ld is above the model's max_position_embeddings %d (config.json)\n", cmd, opt, ctx, maxp);
        return 2;
    }
    return 0;
}

void cli_default_ctx(const dsv4_model *m, int *ctx, int seen) {
    int maxp = dsv4_model_max_positions(m);
    if (!seen && maxp > 0 && *ctx > maxp) *ctx = maxp;
}

void cli_load_summary(const char *cmd, const char *dir, const dsv4_model *m, int ctx, double load_s) {
    dsv4_model_info in;
    dsv4_model_get_info(m, &in);
    char b1[32], b2[32], b3[32], b4[32], b5[32], res[64] = "";
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) == 2 && rss > 0)
            snprintf(res, sizeof res, " (%s resident)", cli_bytes((double)rss * (double)sysconf(_SC_PAGESIZE), b5));
        fclose(f);
    }
    fprintf(stderr, "dsv4 %s: %s: %s parameters (%s active), %s of weights mapped%s, ctx %d, state %s (chunk %d), "
            "%d thread%s, kernel %s, loaded in %.2f s\n", cmd, dir, cli_count(in.n_params - in.n_params_mtp, b1),
            cli_count(in.n_params_active, b2), cli_bytes(in.bytes_total, b3), res, ctx,
            cli_bytes((double)dsv4_session_bytes(m, ctx), b4), dsv4_model_chunk_tokens(m), dsv4_get_threads(),
            dsv4_get_threads() == 1 ? "" : "s",
            dsv4_get_kernel_path(), load_s);
    if (in.v41 && in.n_engram_layers > 0)
        fprintf(stderr, "dsv4 %s: DeepSeek-V4.1 with %d Engram layers: compressed token map %s\n", cmd,
                in.n_engram_layers, in.engram_token_map ? "built from tokenizer.json"
                                                        : "identity (no tokenizer.json; engram_compressed_vocab_size = vocab_size)");
    dsv4_expert_stats xs;
    dsv4_model_expert_stats(m, &xs);
    if (xs.active)
        fprintf(stderr, "dsv4 %s: memory budget %s%s: %s resident weights + expert cache %s (%d experts of %s), read "
                "from disk as needed\n", cmd, cli_bytes((double)xs.budget_bytes, b1), cli_mem_given ? "" : " (default)",
                cli_bytes((double)xs.resident_bytes, b2), cli_bytes((double)xs.cache_bytes, b3), xs.slots,
                cli_bytes((double)xs.entry_bytes, b4));
    else if (xs.fits)
        fprintf(stderr, "dsv4 %s: memory budget %s%s: the whole checkpoint fits, weights mapped\n", cmd,
                cli_bytes((double)xs.budget_bytes, b1), cli_mem_given ? "" : " (default: 3/4 of the available RAM)");
}

static int out_errno;   /* errno of the first failed write or flush of stdout */

int cli_out(const void *p, size_t n) {
    if (n == 0) return 0;
    errno = 0;
    if (fwrite(p, 1, n, stdout) == n) return 0;
    if (!out_errno) out_errno = errno;
    return -1;
}

int cli_flush(void) {
    errno = 0;
    if (fflush(stdout) == 0) return 0;
    if (!out_errno) out_errno = errno;
    return -1;
}

int cli_stdout_close(const char *cmd) {
    errno = 0;
    int bad = fflush(stdout) != 0;
    int e = out_errno ? out_errno : errno;
    if (!bad && !ferror(stdout)) return 0;
    cli_fail(cmd, "write error on stdout: %s", e ? strerror(e) : "I/O error");
    return 1;
}

volatile sig_atomic_t cli_interrupted = 0;

static void on_sigint(int sig) {
    (void)sig;
    cli_interrupted = 1;
}

void cli_sigint_begin(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;   /* no SA_RESTART: a blocking read returns EINTR */
    sigaction(SIGINT, &sa, NULL);
}

void cli_sigint_end(void) {
    signal(SIGINT, SIG_DFL);
}

static const char *special_needed[] = {
    "<\xEF\xBD\x9C" "begin\xE2\x96\x81" "of\xE2\x96\x81" "sentence\xEF\xBD\x9C>",
    "<\xEF\xBD\x9C" "end\xE2\x96\x81" "of\xE2\x96\x81" "sentence\xEF\xBD\x9C>",
    "<\xEF\xBD\x9C" "User\xEF\xBD\x9C>",
    "<\xEF\xBD\x9C" "Assistant\xEF\xBD\x9C>",
    "<think>", "</think>",
    "\xEF\xBD\x9C" "DSML\xEF\xBD\x9C",
};

int cli_require_v4_tokens(const char *cmd, const dsv4_tokenizer *t, const char *where) {
    return cli_require_chat_tokens(cmd, t, where, DSV4_FORMAT_V4);
}

int cli_require_chat_tokens(const char *cmd, const dsv4_tokenizer *t, const char *where, dsv4_chat_format fmt) {
    char missing[512] = "";
    int nmiss = 0;
    size_t nsp = sizeof special_needed / sizeof *special_needed;
    for (size_t i = 0; i < nsp + (fmt == DSV4_FORMAT_V41); i++) {
        const char *sp = i < nsp ? special_needed[i] : "<\xEF\xBD\x9C" "System\xEF\xBD\x9C>";
        if (dsv4_token_id(t, sp) < 0) {
            size_t l = strlen(missing);
            snprintf(missing + l, sizeof missing - l, "%s%s", nmiss++ ? ", " : "", sp);
        }
    }
    if (!nmiss) return 0;
    cli_fail(cmd, "the tokenizer of %s lacks %d DeepSeek-%s special token%s used by the chat prompt format: %s. "
             "Without them a rendered conversation would be tokenized as plain text; use a DeepSeek-%s "
             "tokenizer.json (or `dsv4 generate` for plain text).", where, nmiss,
             fmt == DSV4_FORMAT_V41 ? "V4.1" : "V4", nmiss > 1 ? "s" : "", missing,
             fmt == DSV4_FORMAT_V41 ? "V4.1" : "V4");
    return 1;
}

int cli_parse_effort(const char *v, void *dst) {
    cli_effort *e = dst;
    static const char *const names[] = { "none", "high", "max", "low" };
    for (int k = 0; k < 4; k++)
        if (!strcmp(v, names[k])) { e->named = k; e->level = 0; return 0; }
    int x = 0;
    if (!*v || strlen(v) > 3) return -1;
    for (const char *q = v; *q; q++) {
        if (*q < '0' || *q > '9') return -1;
        x = 10 * x + (*q - '0');
    }
    if (x < 1 || x > 100) return -1;
    e->named = 0;
    e->level = x;
    return 0;
}

int cli_effort_apply(const char *cmd, const cli_effort *e, dsv4_render_opts *o) {
    if (o->format == DSV4_FORMAT_V41) {
        o->effort = DSV4_EFFORT_NONE;
        o->effort_level = e->level ? e->level : e->named == 3 ? 50 : e->named == 2 ? 100 : 75;
        return 0;
    }
    if (e->level)
        return cli_fail(cmd, "--effort %d: a numeric effort is a DeepSeek-V4.1 option; this DeepSeek-V4 model takes "
                        "none, high or max", e->level);
    if (e->named == 3)
        return cli_fail(cmd, "--effort low is a DeepSeek-V4.1 level; this DeepSeek-V4 model takes none, high or max");
    o->effort = e->named == 2 ? DSV4_EFFORT_MAX : e->named == 1 ? DSV4_EFFORT_HIGH : DSV4_EFFORT_NONE;
    o->effort_level = 0;
    return 0;
}

int cli_chat_format(const char *cmd, const char *dir, int choice) {
    if (choice == 1) return DSV4_FORMAT_V4;
    if (choice == 2) return DSV4_FORMAT_V41;
    if (!dir) return DSV4_FORMAT_V4;
    char path[4096], err[1024];
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (access(path, F_OK) != 0) return DSV4_FORMAT_V4;
    dsv4_model_info info;
    if (dsv4_config_info(dir, &info, err, sizeof err)) { cli_fail(cmd, "%s", err); return -1; }
    return info.v41 ? DSV4_FORMAT_V41 : DSV4_FORMAT_V4;
}
