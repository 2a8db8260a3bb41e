/* tests/testlib.h — the harness every tests/test_*.c shares (header only: static inline functions and macros).
 *
 * Contract of a test binary (docs/internals.md "Tests"): it prints one line per failed check, starting with
 * "FAIL ", ends with the exact line "N passed, N failed" and exits non-zero when anything failed. This header
 * keeps the two counters and gives:
 *
 *   CHECK(cond, fmt, ...)    count one check; on failure print "FAIL <file>:<line>: <message>".
 *   EXPECT(cond, fmt, ...)   count one check; on failure print "FAIL <message>" (no source location; for
 *                            data-driven checks whose message already names the case).
 *   test_fail(fmt, ...)      count one failure and print "FAIL <message>".
 *   test_done()              print "<n_pass> passed, <n_fail> failed"; returns the exit code (0, or 1 on failure).
 *   test_read_file(...)      a whole file into a NUL-terminated malloc'd buffer.
 *   test_read_f32/_bf16(...) a raw little-endian F32 / BF16 file of an exact value count into malloc'd floats.
 *   test_list_cases(...)     the sorted subdirectories of a golden root that hold a given file.
 *
 * A test may also bump n_pass / n_fail directly (e.g. a case that prints its own FAIL lines, then counts once).
 * Every function here is static inline, so a test that does not use one gets no unused-function warning.
 * Run tests from the repository root; shared data is at ../shared/data.
 */
#ifndef DSV4_TESTS_TESTLIB_H
#define DSV4_TESTS_TESTLIB_H
#include <dirent.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Passed and failed checks of this binary. */
static int n_pass, n_fail;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (cond) n_pass++;                                                \
        else { n_fail++; printf("FAIL %s:%d: ", __FILE__, __LINE__);       \
               printf(__VA_ARGS__); printf("\n"); }                        \
    } while (0)

#define EXPECT(cond, ...)                                                  \
    do {                                                                   \
        if (cond) n_pass++;                                                \
        else test_fail(__VA_ARGS__);                                       \
    } while (0)

/* Count one failure and print "FAIL " + the printf-formatted message + newline. */
static inline void test_fail(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
static inline void test_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("FAIL ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    n_fail++;
}

/* Print the final "N passed, N failed" line; returns the process exit code (1 if any check failed). */
static inline int test_done(void) {
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}

/* Read the whole file at `path` (binary) into a malloc'd buffer with a NUL byte after the last byte read;
 * *len (if len is non-NULL) gets the byte count without that NUL. Returns NULL (and leaves *len alone) if the
 * file cannot be opened or read, or memory runs out. The caller frees the buffer. */
static inline char *test_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap + 1);
    while (b) {
        n += fread(b + n, 1, cap - n, f);
        if (n < cap) break;
        char *nb = realloc(b, 2 * cap + 1);
        if (!nb) { free(b); b = NULL; break; }
        b = nb;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (b && bad) { free(b); b = NULL; }
    if (!b) return NULL;
    b[n] = 0;
    if (len) *len = n;
    return b;
}

/* Read a raw little-endian F32 file that holds exactly `count` values into malloc'd floats (host order).
 * NULL if the file is missing, unreadable or of another size. The caller frees. */
static inline float *test_read_f32(const char *path, size_t count) {
    size_t len = 0;
    unsigned char *b = (unsigned char *)test_read_file(path, &len);
    if (!b) return NULL;
    float *x = len == count * 4 ? malloc((count ? count : 1) * sizeof(float)) : NULL;
    for (size_t i = 0; x && i < count; i++) {
        const unsigned char *p = b + 4 * i;
        uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        memcpy(&x[i], &u, 4);
    }
    free(b);
    return x;
}

/* Read a raw little-endian BF16 file that holds exactly `count` values, widened to malloc'd floats (exact).
 * NULL if the file is missing, unreadable or of another size. The caller frees. */
static inline float *test_read_bf16(const char *path, size_t count) {
    size_t len = 0;
    unsigned char *b = (unsigned char *)test_read_file(path, &len);
    if (!b) return NULL;
    float *x = len == count * 2 ? malloc((count ? count : 1) * sizeof(float)) : NULL;
    for (size_t i = 0; x && i < count; i++) {
        uint32_t u = ((uint32_t)b[2 * i] | (uint32_t)b[2 * i + 1] << 8) << 16;
        memcpy(&x[i], &u, 4);
    }
    free(b);
    return x;
}

static inline int test_cmp_str_(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The names of the subdirectories <root>/<name> (names not starting with '.') that hold a readable file
 * <root>/<name>/<file> (e.g. "golden.json", "blocks/manifest.json"), sorted by strcmp, into names[0..max-1]
 * (each strdup'd: the caller frees). Returns the count; 0 when root is missing or holds no such case. */
static inline int test_list_cases(const char *root, const char *file, char **names, int max) {
    DIR *d = opendir(root);
    int nn = 0;
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d)) && nn < max) {
        if (e->d_name[0] == '.') continue;
        char p[1200];
        snprintf(p, sizeof p, "%s/%s/%s", root, e->d_name, file);
        FILE *f = fopen(p, "rb");
        if (!f) continue;
        fclose(f);
        names[nn++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)nn, sizeof names[0], test_cmp_str_);
    return nn;
}

#endif
