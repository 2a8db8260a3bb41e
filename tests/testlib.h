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
 *   test_main_cases(...)     main() of a test that runs every such case.
 *   test_open_case(...)      a golden case's JSON file + its model (the common start of such a case).
 *
 * A test may also bump n_pass / n_fail directly (e.g. a case that prints its own FAIL lines, then counts once).
 * Every function here is static inline, so a test that does not use one gets no unused-function warning.
 * Run tests from the repository root; third-party data is in vendor/ (vendor/README.md).
 */
#ifndef DSV4_TESTS_TESTLIB_H
#define DSV4_TESTS_TESTLIB_H
#include <dirent.h>
#include <stdarg.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "base/util.h"
#include "dsv4.h"
#include "dsv4_vision.h"

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

/* Reduced sizes under emulation: returns 1 when $DSV4_TEST_QEMU is set and not "0" (.ci/cross.sh aarch64 sets it:
 * the whole suite under qemu-user, which runs float code ~76x slower), after printing the line
 * "reduced under emulation (DSV4_TEST_QEMU): <what>" (tests/run.sh repeats it under the test's result), so a
 * heavy test runs a documented smaller size that still reaches every code path; 0 otherwise (full size). */
static inline int test_reduced(const char *what) {
    const char *e = getenv("DSV4_TEST_QEMU");
    if (!e || !*e || !strcmp(e, "0")) return 0;
    printf("reduced under emulation (DSV4_TEST_QEMU): %s\n", what);
    return 1;
}

/* Read the whole file at `path` (binary) into a malloc'd buffer with a NUL byte after the last byte read;
 * *len (if len is non-NULL) gets the byte count without that NUL. Returns NULL (and leaves *len alone) if the
 * file cannot be opened or read, or memory runs out. The caller frees the buffer. (dsv4_read_file without
 * the message.) */
static inline char *test_read_file(const char *path, size_t *len) {
    char *b = NULL;
    size_t n = 0;
    if (dsv4_read_file(path, &b, &n, NULL, 0) != 0) return NULL;
    if (len) *len = n;
    return b;
}

/* Read a raw file of exactly `count` little-endian values of `width` bytes (2: BF16, 4: F32) into malloc'd
 * floats (host order; BF16 widened exactly). NULL if the file is missing, unreadable or of another size. */
static inline float *test_read_floats_(const char *path, size_t count, int width) {
    size_t len = 0;
    unsigned char *b = (unsigned char *)test_read_file(path, &len);
    float *x = b && len == count * (size_t)width ? malloc((count ? count : 1) * sizeof(float)) : NULL;
    for (size_t i = 0; x && i < count; i++) {
        const unsigned char *p = b + (size_t)width * i;
        uint32_t u = width == 2 ? ((uint32_t)p[0] | (uint32_t)p[1] << 8) << 16
                                : (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        memcpy(&x[i], &u, 4);
    }
    free(b);
    return x;
}

/* A raw little-endian F32 file of exactly `count` values -> malloc'd floats; NULL on error (see above). */
static inline float *test_read_f32(const char *path, size_t count) { return test_read_floats_(path, count, 4); }

/* A raw little-endian BF16 file of exactly `count` values -> malloc'd floats (exact); NULL on error. */
static inline float *test_read_bf16(const char *path, size_t count) { return test_read_floats_(path, count, 2); }

/* max |a[i]| and max |a[i] - b[i]| over n floats (in double): the scale and the deviation of a logits row, for
 * tolerances stated relative to the largest value. */
static inline double test_maxabs(const float *a, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i]));
    return m;
}
static inline double test_maxdiff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - (double)b[i]));
    return m;
}

/* Index selections recorded by the C forward vs a golden's: rec holds nrec records of rs ints each (layer, position,
 * count, ids...: dsv4_v41_recorded), gsel the golden's [[layer, position, [ids...]], ...]. Returns how many golden
 * rows have no equal record (the first 3 printed, prefixed by `what`); *nsame receives the equal ones. */
static inline int test_selections_differ(const int32_t *rec, int nrec, int rs, const cJSON *gsel, const char *what,
                                         int *nsame) {
    int nd = 0;
    *nsame = 0;
    for (int i = 0; i < cJSON_GetArraySize(gsel); i++) {
        const cJSON *r = cJSON_GetArrayItem(gsel, i), *pk = cJSON_GetArrayItem(r, 2);
        const int L = cJSON_GetArrayItem(r, 0)->valueint, P = cJSON_GetArrayItem(r, 1)->valueint;
        const int32_t *c = NULL;
        for (int j = 0; j < nrec && !c; j++)
            if (rec[(size_t)j * rs] == L && rec[(size_t)j * rs + 1] == P) c = rec + (size_t)j * rs;
        int eq = c && c[2] == cJSON_GetArraySize(pk);
        for (int j = 0; eq && j < c[2]; j++) eq = c[3 + j] == cJSON_GetArrayItem(pk, j)->valueint;
        if (eq) (*nsame)++;
        else if (nd++ < 3) printf("    %s: layer %d position %d selects differently\n", what, L, P);
    }
    return nd;
}

/* Two dsv4_vision_params equal field by field (memcmp would read the padding). */
static inline int test_same_vision_params(const dsv4_vision_params *a, const dsv4_vision_params *b) {
    return a->patch_size == b->patch_size && a->downsample_ratio == b->downsample_ratio &&
           a->max_image_tokens == b->max_image_tokens && a->min_pixels == b->min_pixels &&
           a->max_wh_ratio == b->max_wh_ratio && a->vision_exp == b->vision_exp;
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

/* main() of a golden-directory test: run(root, name, &state) for every case of test_list_cases(root, file)
 * (root = argv[1], default "tests/golden"; state starts at 0 and is shared by the calls, e.g. "API checks
 * done"), then the final line. Without any case it prints "SKIP: no <root>/<case>/<file> found" and
 * "0 passed, 0 failed". Returns the exit code. */
static inline int test_main_cases(int argc, char **argv, const char *file,
                                  void (*run)(const char *root, const char *name, int *state)) {
    const char *root = argc > 1 ? argv[1] : "tests/golden";
    char *names[256];
    int nn = test_list_cases(root, file, names, 256), state = 0;
    if (!nn) printf("SKIP: no %s/<case>/%s found\n", root, file);
    for (int i = 0; i < nn; i++) { run(root, names[i], &state); free(names[i]); }
    return test_done();
}

/* The common start of a golden case <root>/<name> (test_main_cases): writes "<root>/<name>" into dir
 * (dirsz bytes) and "<dir>/<file>" into path (pathsz bytes; the caller may reuse it), reads and parses that
 * JSON file into *g and loads the model of directory dir into *m. Returns 0 when both worked (the caller
 * frees *g with cJSON_Delete and *m with dsv4_model_free). Otherwise returns -1 with *g = NULL, *m = NULL
 * and nothing left to free: silently when the file cannot be read (no case, nothing counted), else after one
 * test_fail: "<path>: invalid JSON" or "<name>: load: <error>". */
static inline int test_open_case(const char *root, const char *name, const char *file, char *dir, size_t dirsz,
                                 char *path, size_t pathsz, cJSON **g, dsv4_model **m) {
    char err[512];
    *g = NULL;
    *m = NULL;
    snprintf(dir, dirsz, "%s/%s", root, name);
    snprintf(path, pathsz, "%s/%s", dir, file);
    char *js = test_read_file(path, NULL);
    if (!js) return -1;
    *g = cJSON_Parse(js);
    free(js);
    if (!*g) { test_fail("%s: invalid JSON", path); return -1; }
    if (dsv4_model_load(m, dir, err, sizeof err)) {
        test_fail("%s: load: %s", name, err);
        cJSON_Delete(*g);
        *g = NULL;
        dsv4_model_free(*m);
        *m = NULL;
        return -1;
    }
    return 0;
}


/* `base` with the first occurrence of `from` replaced by `to` (malloc'd). A missing `from` is a bug in the
 * test itself: it prints "test bug: ..." and exits 2. Used to derive bad configs from good ones. */
static inline char *test_replace_first(const char *base, const char *from, const char *to) {
    const char *p = strstr(base, from);
    if (!p) { printf("test bug: '%s' not in the text\n", from); exit(2); }
    size_t a = (size_t)(p - base), nf = strlen(from), nt = strlen(to), nb = strlen(base);
    char *o = malloc(nb - nf + nt + 1);
    if (!o) { printf("test bug: out of memory\n"); exit(2); }
    memcpy(o, base, a);
    memcpy(o + a, to, nt);
    memcpy(o + a + nt, p + nf, nb - a - nf + 1);
    return o;
}


/* Write into dir a copy of the model directory src's config.json and model.safetensors (a test checkpoint variant):
 * tensor `from` renamed to `to` in the safetensors header (rewritten with cJSON, data unchanged); `to` = "+name"
 * adds name as a copy of `from` instead (its bytes appended to the data); from NULL: tensors unchanged. drop: a
 * config.json key to delete (the config is then re-printed by cJSON); NULL: config.json copied byte for byte.
 * Little-endian hosts (as the rest of the suite). Returns 0, or -1. test_variant_remove(dir) deletes the copy. */
static inline int test_variant(const char *src, const char *dir, const char *from, const char *to, const char *drop) {
    char path[600];
    size_t n = 0, nc = 0;
    snprintf(path, sizeof path, "%s/model.safetensors", src);
    char *st = test_read_file(path, &n);
    snprintf(path, sizeof path, "%s/config.json", src);
    char *cfg = test_read_file(path, &nc);
    uint64_t hl = 0;
    if (st && n >= 8) memcpy(&hl, st, 8);
    cJSON *h = st && hl + 8 <= n ? cJSON_ParseWithLength(st + 8, (size_t)hl) : NULL;
    size_t a = 0, b = 0, dlen = st && hl + 8 <= n ? n - 8 - hl : 0;
    int ok = h != NULL;
    if (ok && from) {
        const int add = to[0] == '+';
        cJSON *t = add ? cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(h, from), 1)
                       : cJSON_DetachItemFromObjectCaseSensitive(h, from);
        if (add && t) {
            cJSON *off = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
            a = (size_t)cJSON_GetArrayItem(off, 0)->valuedouble;
            b = (size_t)cJSON_GetArrayItem(off, 1)->valuedouble;
            cJSON_ReplaceItemInArray(off, 0, cJSON_CreateNumber((double)dlen));
            cJSON_ReplaceItemInArray(off, 1, cJSON_CreateNumber((double)(dlen + b - a)));
            to++;
        }
        if (t) cJSON_AddItemToObject(h, to, t);
        ok = t != NULL;
    }
    char *ncf = NULL;
    if (ok && drop) {
        cJSON *c = cfg ? cJSON_ParseWithLength(cfg, nc) : NULL;
        if (c) cJSON_DeleteItemFromObjectCaseSensitive(c, drop);
        ncf = c ? cJSON_Print(c) : NULL;
        cJSON_Delete(c);
        ok = ncf != NULL;
    }
    char *nh = ok ? cJSON_PrintUnformatted(h) : NULL;
    int rc = -1;
    FILE *f;
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (nh && cfg && (f = fopen(path, "wb"))) {
        rc = (ncf ? fputs(ncf, f) >= 0 : fwrite(cfg, 1, nc, f) == nc) ? 0 : -1;
        fclose(f);
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        if (!rc && (f = fopen(path, "wb"))) {
            uint64_t L = strlen(nh);
            rc = fwrite(&L, 8, 1, f) == 1 && fwrite(nh, 1, L, f) == L && fwrite(st + 8 + hl, 1, dlen, f) == dlen &&
                 fwrite(st + 8 + hl + a, 1, b - a, f) == b - a ? 0 : -1;
            fclose(f);
        } else {
            rc = -1;
        }
    }
    free(nh);
    free(ncf);
    cJSON_Delete(h);
    free(st);
    free(cfg);
    return rc;
}

/* Remove the files test_variant wrote into dir, and dir itself. */
static inline void test_variant_remove(const char *dir) {
    char path[600];
    snprintf(path, sizeof path, "%s/config.json", dir);
    remove(path);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    remove(path);
    remove(dir);
}


/* One DSpark draft compared with its golden (tests/test_vl.c, tests/test_forward_v41.c): d is the golden draft
 * ({"ids": Bs + 1 greedy ids, "confidence": Bs floats}), want its logits [Bs][V]; got / ids / conf what
 * dsv4_v41_dspark returned. Folds in the largest logit difference (*ddiff), the largest confidence difference
 * (*cdiff) and one more differing id chain (*nd_ids) where any id differs. */
static inline void test_dspark_fold(const cJSON *d, const float *got, const float *want, const int32_t *ids,
                                    const float *conf, int Bs, int V, double *ddiff, int *nd_ids, double *cdiff) {
    *ddiff = fmax(*ddiff, test_maxdiff(got, want, (size_t)Bs * V));
    const cJSON *gi = cJSON_GetObjectItem(d, "ids"), *gc = cJSON_GetObjectItem(d, "confidence");
    int same = 1;
    for (int j = 0; j <= Bs; j++) same &= ids[j] == cJSON_GetArrayItem(gi, j)->valueint;
    *nd_ids += !same;
    for (int j = 0; j < Bs; j++) *cdiff = fmax(*cdiff, fabs(conf[j] - cJSON_GetArrayItem(gc, j)->valuedouble));
}

#endif
