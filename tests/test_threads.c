/* tests/test_threads.c — whole-model invariance of the speed machinery (issue 6):
 *  - the logits of the trained nano model (models/nano) and of the golden checkpoints are bit-identical for
 *    every SIMD path this CPU runs (scalar, avx2, avx512) and every thread count 1..3, under a chunked
 *    prefill + decode schedule (the pair-lane order makes every path compute the same sums);
 *  - decoding allocates nothing: this binary is linked with -Wl,--wrap=malloc,calloc,realloc (Makefile), so
 *    every allocation made by libdsv4's code is counted; after the session is open and the pool started,
 *    64 decode steps (and their logits) must make zero allocations.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dsv4.h"
#include "testlib.h"

static long n_allocs;
void *__real_malloc(size_t n);
void *__real_calloc(size_t a, size_t b);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n) { n_allocs++; return __real_malloc(n); }
void *__wrap_calloc(size_t a, size_t b) { n_allocs++; return __real_calloc(a, b); }
void *__wrap_realloc(void *p, size_t n) { n_allocs++; return __real_realloc(p, n); }

static const char *PATHS[] = {"scalar", "avx2", "avx512", "neon"};   /* those this CPU lacks are skipped */
enum { NPATHS = sizeof PATHS / sizeof PATHS[0] };

/* logits of tokens[0..n) under prefill 11, chunk 23, then single steps: n rows into out */
static int run(const dsv4_model *m, const int32_t *tok, int n, float *out, int V) {
    char err[256];
    dsv4_session *s = NULL;
    if (dsv4_session_open(&s, m, n, err, sizeof err) != 0) { test_fail("session: %s", err); return -1; }
    int pos = 0, row = 0;
    int sched[] = {11, 23};
    for (int k = 0; pos < n; k++) {
        int c = k < 2 ? sched[k] : 1;
        if (c > n - pos) c = n - pos;
        if (dsv4_eval(s, tok + pos, c, out + (size_t)row * V, err, sizeof err) != 0) {
            test_fail("eval: %s", err);
            dsv4_session_free(s);
            return -1;
        }
        pos += c; row++;
    }
    dsv4_session_free(s);
    return row;
}

static void invariance(const char *dir, int n) {
    char err[256];
    dsv4_model *m = NULL;
    if (dsv4_model_load(&m, dir, err, sizeof err) != 0) { test_fail("%s: %s", dir, err); return; }
    dsv4_model_info info;
    dsv4_model_get_info(m, &info);
    int V = info.vocab_size;
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)n);
    for (int i = 0; i < n; i++) tok[i] = (int32_t)((i * 7919 + 13) % V);
    float *ref = malloc(sizeof(float) * (size_t)n * V), *got = malloc(sizeof(float) * (size_t)n * V);
    dsv4_set_kernel_path("scalar", NULL, 0);
    dsv4_set_threads(1, NULL, 0);
    int rows = run(m, tok, n, ref, V);
    for (int p = 0; p < NPATHS && rows > 0; p++) {
        if (dsv4_set_kernel_path(PATHS[p], err, sizeof err) != 0) { printf("skip %s: %s\n", PATHS[p], err); continue; }
        for (int t = 1; t <= 3; t++) {
            dsv4_set_threads(t, NULL, 0);
            if (run(m, tok, n, got, V) != rows) continue;
            size_t bad = 0;
            for (size_t i = 0; i < (size_t)rows * V; i++) bad += memcmp(&got[i], &ref[i], 4) != 0;
            CHECK(bad == 0, "%s: path %s, %d threads: %zu of %zu logits differ from scalar/1 thread", dir, PATHS[p], t,
                  bad, (size_t)rows * V);
        }
    }
    free(tok); free(ref); free(got);
    dsv4_model_free(m);
}

static void no_alloc_decode(void) {
    char err[256];
    dsv4_model *m = NULL;
    if (dsv4_model_load(&m, "models/nano", err, sizeof err) != 0) { test_fail("nano: %s", err); return; }
    dsv4_set_kernel_path(getenv("DSV4_KERNEL") ? getenv("DSV4_KERNEL") : "avx512", NULL, 0);
    dsv4_set_threads(2, NULL, 0);
    dsv4_session *s = NULL;
    int n = 128;
    float *logits = malloc(sizeof(float) * 1024);
    if (dsv4_session_open(&s, m, n, err, sizeof err) != 0) { test_fail("session: %s", err); goto out; }
    int32_t tok[16];
    for (int i = 0; i < 16; i++) tok[i] = 5 + i;
    if (dsv4_eval(s, tok, 16, logits, err, sizeof err) != 0) { test_fail("prefill: %s", err); goto out; }
    long before = n_allocs;
    int ok = 1;
    for (int i = 0; i < 64 && ok; i++) {
        int32_t t = (int32_t)(i * 31 % 1000);
        ok = dsv4_eval(s, &t, 1, logits, err, sizeof err) == 0;
        if (ok && i % 2) ok = dsv4_eval_mtp(s, t, logits, err, sizeof err) == 0;
    }
    CHECK(ok, "decode: %s", err);
    CHECK(n_allocs == before, "64 decode steps (+ MTP) made %ld allocations", n_allocs - before);
out:
    free(logits);
    dsv4_session_free(s);
    dsv4_model_free(m);
}

/* the same for a V4.1 model (tests/golden/v41/tiny: window, ratio-2 and ratio-1 layers, indexer, Engram rows read
 * from disk by the prefetch worker): 24 decode steps after a prefill allocate nothing */
static void no_alloc_decode_v41(void) {
    char err[256];
    dsv4_model *m = NULL;
    if (dsv4_model_load(&m, "tests/golden/v41/tiny", err, sizeof err) != 0) { test_fail("v41 tiny: %s", err); return; }
    dsv4_set_threads(2, NULL, 0);
    dsv4_model_info info;
    dsv4_model_get_info(m, &info);
    dsv4_session *s = NULL;
    float *logits = malloc(sizeof(float) * (size_t)info.vocab_size);
    if (dsv4_session_open(&s, m, 32, err, sizeof err) != 0) { test_fail("session: %s", err); goto out; }
    int32_t tok[8];
    for (int i = 0; i < 8; i++) tok[i] = 5 + i;
    if (dsv4_eval(s, tok, 8, logits, err, sizeof err) != 0) { test_fail("prefill: %s", err); goto out; }
    long before = n_allocs;
    int ok = 1;
    for (int i = 0; i < 24 && ok; i++) {
        int32_t t = (int32_t)(i * 31 % info.vocab_size);
        ok = dsv4_eval(s, &t, 1, logits, err, sizeof err) == 0;
    }
    CHECK(ok, "v41 decode: %s", err);
    CHECK(n_allocs == before, "V4.1: 24 decode steps made %ld allocations", n_allocs - before);
out:
    free(logits);
    dsv4_session_free(s);
    dsv4_model_free(m);
}

int main(void) {
    invariance("models/nano", 48);
    invariance("tests/golden/flash", 40);
    invariance("tests/golden/pro", 40);
    invariance("tests/golden/v41/tiny", 32);      /* V4.1: attention, indexer, candidate blocks, Engram */
    invariance("tests/golden/v41/tiny-tok", 32);
    no_alloc_decode();
    no_alloc_decode_v41();
    return test_done();
}
