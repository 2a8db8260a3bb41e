/* base/util.c — see util.h. */
#include "base/util.h"
#include <errno.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

int dsv4_fail(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int dsv4_read_file(const char *path, char **buf, size_t *len, char *err, size_t errlen) {
    return dsv4_read_file_max(path, SIZE_MAX / 4, buf, len, err, errlen);
}

int dsv4_read_file_max(const char *path, size_t max, char **buf, size_t *len, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) return dsv4_fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    int st = fstat(fileno(f), &sb) == 0;
    if (st && S_ISDIR(sb.st_mode)) {   /* fopen accepts a directory; reading it fails */
        fclose(f);
        return dsv4_fail(err, errlen, "%s: is a directory, not a file", path);
    }
    if (st && S_ISREG(sb.st_mode) && (uintmax_t)sb.st_size > (uintmax_t)max) {
        fclose(f);
        dsv4_fail(err, errlen, "%s: %jd bytes, more than %zu", path, (intmax_t)sb.st_size, max);
        return -2;
    }
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap + 1);
    while (b) {
        n += fread(b + n, 1, cap - n, f);
        if (n < cap) break;
        if (n > max) {   /* a device or pipe (/dev/zero): max + 1 bytes read at most */
            free(b);
            fclose(f);
            dsv4_fail(err, errlen, "%s: more than %zu bytes", path, max);
            return -2;
        }
        size_t ncap = cap > max / 2 ? max + 1 : 2 * cap;   /* never more than max + 1 bytes */
        char *nb = realloc(b, ncap + 1);
        if (!nb) { free(b); b = NULL; break; }
        b = nb;
        cap = ncap;
    }
    int bad = ferror(f);
    fclose(f);
    if (!b) return dsv4_fail(err, errlen, "%s: out of memory", path);
    if (n > max) {   /* a small max, met in the first chunk */
        free(b);
        dsv4_fail(err, errlen, "%s: more than %zu bytes", path, max);
        return -2;
    }
    if (bad) { free(b); return dsv4_fail(err, errlen, "%s: read error", path); }
    b[n] = 0;
    *buf = b;
    *len = n;
    return 0;
}

double dsv4_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double dsv4_cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#define DSV4_HUGE_PAGE ((size_t)2 << 20)
/* Under AddressSanitizer every size goes to calloc, whose redzones catch a write past the arena's end (in a page-
 * rounded mapping it would land unnoticed in the last page's slack). */
#if defined(__SANITIZE_ADDRESS__)
#define DSV4_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DSV4_ASAN 1
#endif
#endif
#ifdef DSV4_ASAN
#define DSV4_HUGE_MIN ((size_t)-1)
#else
#define DSV4_HUGE_MIN DSV4_HUGE_PAGE
#endif

/* mapped length: a multiple of 2 MiB, which the kernel places 2 MiB-aligned (else the first and last partial
 * 2 MiB stay in 4 KiB pages) */
static inline size_t huge_len(size_t bytes) { return (bytes + (DSV4_HUGE_PAGE - 1)) & ~(DSV4_HUGE_PAGE - 1); }

void *dsv4_huge_alloc(size_t bytes) {
    if (bytes < DSV4_HUGE_MIN) return calloc(bytes ? bytes : 1, 1);
    if (huge_len(bytes) < bytes) return NULL;   /* wraps */
    bytes = huge_len(bytes);
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
#ifdef MADV_HUGEPAGE
    (void)madvise(p, bytes, MADV_HUGEPAGE);
#endif
    return p;
}

void dsv4_huge_free(void *p, size_t bytes) {
    if (!p) return;
    if (bytes < DSV4_HUGE_MIN) free(p);
    else munmap(p, huge_len(bytes));
}
