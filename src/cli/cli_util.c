/* cli/cli_util.c — see cli_util.h. */
#include "cli/cli_util.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <stdio.h>

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
    "  -t, --threads N  threads, 0..1024; 0 = one per physical core (default); results never depend on N\n"
    "  --kernel PATH    SIMD path: scalar, avx2 or avx512 (default: the best this CPU has; env DSV4_KERNEL)\n";

int cli_common_option(const char *cmd, int argc, char **argv, int *i) {
    const char *o = argv[*i];
    int is_t = !strcmp(o, "-t") || !strcmp(o, "--threads"), is_k = !strcmp(o, "--kernel");
    if (!is_t && !is_k) return 0;
    if (*i + 1 >= argc) { fprintf(stderr, "dsv4 %s: option '%s' needs a value\n", cmd, o); exit(2); }
    const char *v = argv[++*i];
    char err[256];
    if (is_t) {
        long n = 0;
        int ok = *v != 0 && strlen(v) <= 4;
        for (const char *p = v; ok && *p; p++) ok = *p >= '0' && *p <= '9';
        if (ok) n = strtol(v, NULL, 10);
        if (!ok || n > 1024) {
            fprintf(stderr, "dsv4 %s: %s must be an integer in 0..1024 (0 = one per physical core), got '%s'\n", cmd, o, v);
            exit(2);
        }
        if (dsv4_set_threads((int)n, err, sizeof err) != 0) { fprintf(stderr, "dsv4 %s: %s\n", cmd, err); exit(2); }
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        if (ncpu > 0 && n > ncpu)
            fprintf(stderr, "dsv4 %s: warning: %ld threads on %ld online CPUs share cores (slower, same results)\n", cmd,
                    n, ncpu);
    } else if (dsv4_set_kernel_path(v, err, sizeof err) != 0) {
        fprintf(stderr, "dsv4 %s: --kernel: %s\n", cmd, err);
        exit(2);
    }
    return 1;
}
