/* tests/fuzz/fuzz_util.h — helpers shared by the libFuzzer harnesses (header only; docs/fuzzing.md).
 *
 *   FUZZ_CHECK(cond, fmt, ...)  a property of the code under test: on failure print "fuzz property failed:
 *                               <file>:<line>: <message>" and abort() (libFuzzer saves the input as a crash).
 *   fuzz_tmpdir()               a private directory for the files a harness writes (under $TMPDIR, made once per
 *                               process, removed at exit with what fuzz_write put in it).
 *   fuzz_write(name, p, n)      write n bytes to <fuzz_tmpdir()>/<name> (truncating); returns the path (static).
 *   fuzz_utf8_valid(p, n)       strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF, no truncation; NUL is
 *                               valid): an independent definition to hold the library's validators against.
 *   fuzz_rng                    a tiny deterministic generator (split points etc. derived from the input).
 */
#ifndef DSV4_FUZZ_UTIL_H
#define DSV4_FUZZ_UTIL_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FUZZ_CHECK(cond, ...)                                                            \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "fuzz property failed: %s:%d: ", __FILE__, __LINE__);        \
            fprintf(stderr, __VA_ARGS__);                                                \
            fprintf(stderr, "\n");                                                       \
            abort();                                                                     \
        }                                                                                \
    } while (0)

static char fuzz_dir_[512];
static char fuzz_made_[16][64]; /* names written into the directory, removed at exit */
static int fuzz_nmade_;

static void fuzz_cleanup_(void) {
    char p[600];
    for (int i = 0; i < fuzz_nmade_; i++) {
        snprintf(p, sizeof p, "%s/%s", fuzz_dir_, fuzz_made_[i]);
        unlink(p);
    }
    if (fuzz_dir_[0]) rmdir(fuzz_dir_);
}

static inline const char *fuzz_tmpdir(void) {
    if (!fuzz_dir_[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(fuzz_dir_, sizeof fuzz_dir_, "%s/dsv4-fuzz.XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(fuzz_dir_)) { perror("fuzz: mkdtemp"); abort(); }
        atexit(fuzz_cleanup_);
    }
    return fuzz_dir_;
}

static inline const char *fuzz_write(const char *name, const void *p, size_t n) {
    static char path[600];
    snprintf(path, sizeof path, "%s/%s", fuzz_tmpdir(), name);
    int known = 0;
    for (int i = 0; i < fuzz_nmade_; i++) known |= strcmp(fuzz_made_[i], name) == 0;
    if (!known && fuzz_nmade_ < 16) snprintf(fuzz_made_[fuzz_nmade_++], sizeof fuzz_made_[0], "%s", name);
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f) != 0) { perror(path); abort(); }
    return path;
}

static inline void fuzz_remove(const char *name) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s", fuzz_tmpdir(), name);
    unlink(path);
}

static inline int fuzz_utf8_valid(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t k;
        uint32_t cp, min;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xC2 && c <= 0xDF) { k = 1; cp = c & 0x1F; min = 0x80; }
        else if (c >= 0xE0 && c <= 0xEF) { k = 2; cp = c & 0x0F; min = 0x800; }
        else if (c >= 0xF0 && c <= 0xF4) { k = 3; cp = c & 0x07; min = 0x10000; }
        else return 0;
        if (i + k >= n) return 0; /* the k continuation bytes must all be there */
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        i += k + 1;
    }
    return 1;
}

typedef struct { uint64_t s; } fuzz_rng;
static inline uint64_t fuzz_next(fuzz_rng *r) { /* splitmix64 */
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

#endif
