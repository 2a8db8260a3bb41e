/* tests/test_budget.c — the memory budget (issue 9; docs/memory-budget.md): routed experts read into an expert
 * cache (src/model/expert_cache.c) instead of through the mapping.
 *  - same tokens whatever the budget: the logits (and MTP logits) of models/nano and tests/golden/flash under the
 *    smallest budget accepted (K slots for 5 x 8 experts: constant eviction) and a slightly larger one, every
 *    eviction policy and read-ahead mode, 1 and 2 threads, under four call schedules (one call; 11 + 23 then single
 *    steps as in test_threads; single steps only; chunks of 7) are bit-identical to the mmap path (under emulation,
 *    $DSV4_TEST_QEMU: each mode under two of the schedules, one on 1 thread, one on 2);
 *  - a prefill chunk looks up (and, without read-ahead, reads) each needed expert once, not once per token;
 *  - two sessions decoding on two threads through one small cache: bit-identical (the cache is shared, pinned);
 *  - budgets: below the minimum refused naming the minimum; a budget holding the whole checkpoint keeps the mmap
 *    path; the counters add up (hits + ahead + late + misses = lookups, bytes = reads x entry span);
 *  - resident memory: a checkpoint with 107 MB of experts (make_flash_ckpt on a nano-sized config with 64 experts
 *    of width 2048), decoded under a budget of resident weights + 8 experts: VmRSS grows by at most the budget +
 *    the session state + 24 MiB (allocator, sanitizer shadow, thread stacks); the same run on the mmap path grows
 *    by more than 64 MiB more (so the check can fail), and the load itself touches no expert page;
 *  - read errors (a fault-injecting pread, io/readat.h): EIO and a short read (a truncated shard) fail dsv4_eval
 *    with a message naming the shard, offset and cause, reset the session, and the next evaluation (hook removed)
 *    gives the reference logits again; a shard replaced (renamed over) under the running model changes nothing
 *    (the cache reads through its own descriptors of the files opened at load); dsv4_eval_batch under a budget gives
 *    the mmap path's logits and, on a read error, fails and resets every session of the batch;
 *  - decoding under a budget allocates nothing (this binary wraps malloc/calloc/realloc, Makefile).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "dsv4.h"
#include "io/readat.h"
#include "testlib.h"

static long n_allocs;
void *__real_malloc(size_t n);
void *__real_calloc(size_t a, size_t b);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n) { __atomic_add_fetch(&n_allocs, 1, __ATOMIC_RELAXED); return __real_malloc(n); }
void *__wrap_calloc(size_t a, size_t b) { __atomic_add_fetch(&n_allocs, 1, __ATOMIC_RELAXED); return __real_calloc(a, b); }
void *__wrap_realloc(void *p, size_t n) { __atomic_add_fetch(&n_allocs, 1, __ATOMIC_RELAXED); return __real_realloc(p, n); }

#define NTOK 40
enum { S_ONE, S_11_23, S_SINGLE, S_7, NSCHED };
static const char *SNAME[] = {"one call", "11+23+singles", "singles", "chunks of 7"};

/* Logits of every call (and an MTP row after every call when the model has MTP) into out; returns rows or -1. */
static int run(const dsv4_model *m, int sched, const int32_t *tok, int n, float *out, int V, int mtp, char *err) {
    dsv4_session *s = NULL;
    if (dsv4_session_open(&s, m, n, err, 256) != 0) return -1;
    int pos = 0, row = 0, k = 0;
    while (pos < n) {
        int c = sched == S_ONE ? n : sched == S_SINGLE ? 1 : sched == S_7 ? 7 : (k == 0 ? 11 : k == 1 ? 23 : 1);
        if (c > n - pos) c = n - pos;
        if (dsv4_eval(s, tok + pos, c, out + (size_t)row * V, err, 256) != 0) { dsv4_session_free(s); return -1; }
        row++; pos += c; k++;
        if (mtp) {
            if (dsv4_eval_mtp(s, tok[(pos * 5) % n], out + (size_t)row * V, err, 256) != 0) { dsv4_session_free(s); return -1; }
            row++;
        }
    }
    dsv4_session_free(s);
    return row;
}

static dsv4_model *load(const char *dir, uint64_t mem, int policy, int prefetch, char *err) {
    dsv4_model *m = NULL;
    dsv4_load_options o = {0};
    o.mem_bytes = mem; o.policy = policy; o.prefetch = prefetch;
    if (dsv4_model_load_opts(&m, dir, &o, err, 256) != 0) return NULL;
    return m;
}

static void tokens(int32_t *tok, int n, int V) { for (int i = 0; i < n; i++) tok[i] = (int32_t)((i * 7919 + 13) % V); }

/* ------------------------------------------------------------------ same logits */
static void same_logits(const char *dir, int all_modes) {
    char err[256];
    dsv4_model *ref = load(dir, 0, 0, 0, err);
    if (!ref) { test_fail("%s: %s", dir, err); return; }
    dsv4_model_info in;
    dsv4_model_get_info(ref, &in);
    int V = in.vocab_size, mtp = in.n_mtp_layers > 0;
    int32_t tok[NTOK];
    tokens(tok, NTOK, V);
    size_t cap = (size_t)2 * NTOK * V;
    float *want[NSCHED], *got = malloc(cap * sizeof(float));
    int rows[NSCHED];
    dsv4_set_threads(1, NULL, 0);
    for (int sc = 0; sc < NSCHED; sc++) {
        want[sc] = malloc(cap * sizeof(float));
        rows[sc] = run(ref, sc, tok, NTOK, want[sc], V, mtp, err);
        if (rows[sc] < 0) test_fail("%s: reference %s: %s", dir, SNAME[sc], err);
    }
    /* the smallest budget: probe it from the refusal of budget 1 */
    dsv4_model *probe = load(dir, 1, 0, 0, err);
    CHECK(!probe && strstr(err, "below the minimum"), "%s: budget 1 byte: %s", dir, probe ? "accepted" : err);
    const char *mp = strstr(err, "minimum ");
    const char *bp = mp ? strstr(mp, "(") : NULL;
    uint64_t minb = bp ? strtoull(bp + 1, NULL, 10) : 0;
    CHECK(minb > 0, "%s: the refusal names the minimum: %s", dir, err);
    dsv4_model_free(probe);
    dsv4_model *m = load(dir, minb - 1, 0, 0, err);
    CHECK(!m, "%s: budget minimum - 1 accepted", dir);
    dsv4_model_free(m);
    m = load(dir, (uint64_t)in.bytes_total, 0, 0, err);
    dsv4_expert_stats st;
    dsv4_model_expert_stats(m, &st);
    CHECK(m && !st.active && st.fits, "%s: a budget of the whole checkpoint keeps the mmap path (%s)", dir, m ? "" : err);
    dsv4_model_free(m);
    /* under emulation every budget / policy / read-ahead mode still runs, each under two of the four schedules, one
     * on 1 thread and one on 2 (combination k: schedules k and k + 1 mod 4, so every schedule runs with several modes) */
    char what[160];
    snprintf(what, sizeof what, "test_budget %s: each budget, policy and read-ahead mode under 2 of the 4 call "
             "schedules (one on 1 thread, one on 2), not all 4", dir);
    int reduced = test_reduced(what), combo = 0;
    for (int extra = 0; extra <= 3; extra += 3)
        for (int pol = 0; pol < 2; pol++)
            for (int pf = DSV4_PREFETCH_OFF; pf <= DSV4_PREFETCH_GUESS; pf++) {
                if (!all_modes && (extra || pf == DSV4_PREFETCH_KNOWN)) continue;
                combo++;
                m = load(dir, minb + (uint64_t)extra * 1, pol, pf, err);
                if (!m) { test_fail("%s: budget load: %s", dir, err); continue; }
                dsv4_model_expert_stats(m, &st);
                if (extra) {   /* 3 more slots */
                    dsv4_model_free(m);
                    m = load(dir, minb + 3 * st.entry_bytes, pol, pf, err);
                    if (!m) { test_fail("%s: budget load: %s", dir, err); continue; }
                    dsv4_model_expert_stats(m, &st);
                }
                CHECK(st.active && st.slots == (extra ? in.n_activated_experts + 3 : in.n_activated_experts),
                      "%s: budget min + %d entries: %d slots", dir, extra, st.slots);
                for (int sc = 0; sc < NSCHED; sc++) {
                    if (reduced && (sc - combo + 4 * NSCHED) % NSCHED > 1) continue;
                    int th = 1 + (sc + pf) % 2;
                    dsv4_set_threads(th, NULL, 0);
                    int r = run(m, sc, tok, NTOK, got, V, mtp, err);
                    if (r != rows[sc]) { test_fail("%s: %s: %s", dir, SNAME[sc], r < 0 ? err : "row count"); continue; }
                    size_t bad = 0;
                    for (size_t i = 0; i < (size_t)r * V; i++) bad += memcmp(&got[i], &want[sc][i], 4) != 0;
                    CHECK(bad == 0, "%s: budget min+%d, policy %d, prefetch %d, %d threads, %s: %zu of %zu logits differ "
                          "from the mmap path", dir, extra, pol, pf, th, SNAME[sc], bad, (size_t)r * V);
                }
                dsv4_model_expert_stats(m, &st);
                int nkeys = in.n_routed_experts * (in.n_layers + (mtp ? 1 : 0));
                CHECK(st.hits + st.ahead + st.late + st.misses == st.lookups && st.lookups > 0,
                      "%s: hits %llu + ahead %llu + late %llu + misses %llu = lookups %llu", dir, (unsigned long long)st.hits,
                      (unsigned long long)st.ahead, (unsigned long long)st.late, (unsigned long long)st.misses, (unsigned long long)st.lookups);
                CHECK(st.reads > (uint64_t)nkeys && st.bytes_read >= st.reads * (st.entry_bytes - 6 * 64) &&
                      st.bytes_read <= st.reads * st.entry_bytes && st.read_errors == 0,
                      "%s: %llu reads of %llu bytes for %d experts (constant eviction expected)", dir,
                      (unsigned long long)st.reads, (unsigned long long)st.bytes_read, nkeys);
                if (pf == DSV4_PREFETCH_OFF) CHECK(st.prefetched == 0, "%s: prefetch off read ahead", dir);
                else CHECK(st.prefetched > 0, "%s: prefetch mode %d never read ahead", dir, pf);
                dsv4_model_free(m);
            }
    for (int sc = 0; sc < NSCHED; sc++) free(want[sc]);
    free(got);
    dsv4_model_free(ref);
    dsv4_set_threads(1, NULL, 0);
}

/* ------------------------------------------------------------------ prefill: each needed expert once per chunk */
static void prefill_once(void) {
    char err[256];
    dsv4_model *probe = load("models/nano", 1, 0, 0, err);
    dsv4_model_free(probe);
    const char *bp = strstr(strstr(err, "minimum ") ? strstr(err, "minimum ") : err, "(");
    uint64_t minb = bp ? strtoull(bp + 1, NULL, 10) : 0;
    for (int pf = DSV4_PREFETCH_OFF; pf <= DSV4_PREFETCH_KNOWN; pf++) {
        dsv4_model *m = load("models/nano", minb, 0, pf, err);
        if (!m) { test_fail("budget: %s", err); return; }
        dsv4_session *s = NULL;
        dsv4_session_open(&s, m, NTOK, err, sizeof err);
        int32_t tok[NTOK];
        tokens(tok, NTOK, 1024);
        dsv4_eval(s, tok, NTOK, NULL, err, sizeof err);   /* one chunk: 40 tokens x 2 experts x 4 layers routed */
        dsv4_expert_stats st;
        dsv4_model_expert_stats(m, &st);
        CHECK(st.lookups <= 4 * 8 && st.lookups >= 8 && (pf != DSV4_PREFETCH_OFF || st.reads == st.lookups),
              "prefill of %d tokens (prefetch %d): %llu lookups, %llu reads (each needed expert once per chunk: <= 32 "
              "layer-experts, not 320 token-experts)", NTOK, pf, (unsigned long long)st.lookups, (unsigned long long)st.reads);
        dsv4_session_free(s);
        dsv4_model_free(m);
    }
}

/* ------------------------------------------------------------------ two sessions, one cache */
typedef struct { const dsv4_model *m; const int32_t *tok; float *out; int V, rows; char err[256]; } job;
static void *job_run(void *a) {
    job *j = a;
    j->rows = run(j->m, S_SINGLE, j->tok, NTOK, j->out, j->V, 1, j->err);
    return NULL;
}
static void two_sessions(void) {
    char err[256];
    dsv4_model *ref = load("models/nano", 0, 0, 0, err);
    if (!ref) { test_fail("nano: %s", err); return; }
    int V = 1024;
    int32_t tok[2][NTOK];
    tokens(tok[0], NTOK, V);
    for (int i = 0; i < NTOK; i++) tok[1][i] = (int32_t)((i * 131 + 7) % V);
    size_t cap = (size_t)2 * NTOK * V;
    float *want[2], *got[2];
    for (int k = 0; k < 2; k++) {
        want[k] = malloc(cap * sizeof(float)); got[k] = malloc(cap * sizeof(float));
        if (run(ref, S_SINGLE, tok[k], NTOK, want[k], V, 1, err) < 0) test_fail("nano ref: %s", err);
    }
    dsv4_model *probe = load("models/nano", 1, 0, 0, err);
    dsv4_model_free(probe);
    const char *bp = strstr(strstr(err, "minimum ") ? strstr(err, "minimum ") : err, "(");
    uint64_t minb = bp ? strtoull(bp + 1, NULL, 10) : 0;
    dsv4_model *m = load("models/nano", minb, DSV4_EVICT_LRU, DSV4_PREFETCH_GUESS, err);
    if (!m) { test_fail("nano budget: %s", err); goto out; }
    job j[2];
    pthread_t th[2];
    for (int k = 0; k < 2; k++) {
        j[k].m = m; j[k].tok = tok[k]; j[k].out = got[k]; j[k].V = V;
        pthread_create(&th[k], NULL, job_run, &j[k]);
    }
    for (int k = 0; k < 2; k++) {
        pthread_join(th[k], NULL);
        if (j[k].rows < 0) { test_fail("session %d: %s", k, j[k].err); continue; }
        size_t bad = 0;
        for (size_t i = 0; i < (size_t)j[k].rows * V; i++) bad += memcmp(&got[k][i], &want[k][i], 4) != 0;
        CHECK(bad == 0, "two sessions on one cache of %d slots: session %d: %zu logits differ", 2, k, bad);
    }
    dsv4_model_free(m);
out:
    for (int k = 0; k < 2; k++) { free(want[k]); free(got[k]); }
    dsv4_model_free(ref);
}

/* ------------------------------------------------------------------ read errors */
static int fail_after = -1;   /* reads left before the hook fails; fail_mode 0 = EIO, 1 = end of file */
static int fail_mode;
static ssize_t bad_pread(int fd, void *buf, size_t n, off_t off) {
    if (__atomic_fetch_sub(&fail_after, 1, __ATOMIC_SEQ_CST) <= 0) {
        if (fail_mode == 0) { errno = EIO; return -1; }
        return 0;
    }
    return pread(fd, buf, n, off);
}

static void read_errors(void) {
    char err[256];
    dsv4_model *ref = load("models/nano", 0, 0, 0, err);
    if (!ref) { test_fail("nano: %s", err); return; }
    int V = 1024;
    int32_t tok[NTOK];
    tokens(tok, NTOK, V);
    float *want = malloc((size_t)V * sizeof(float)), *got = malloc((size_t)V * sizeof(float));
    dsv4_session *s = NULL;
    dsv4_session_open(&s, ref, NTOK, err, sizeof err);
    dsv4_eval(s, tok, 16, want, err, sizeof err);
    dsv4_session_free(s);
    dsv4_model *probe = load("models/nano", 1, 0, 0, err);
    dsv4_model_free(probe);
    const char *bp = strstr(strstr(err, "minimum ") ? strstr(err, "minimum ") : err, "(");
    uint64_t minb = bp ? strtoull(bp + 1, NULL, 10) : 0;
    for (int mode = 0; mode < 2; mode++)
        for (int pf = DSV4_PREFETCH_OFF; pf <= DSV4_PREFETCH_GUESS; pf += 2) {
            dsv4_model *m = load("models/nano", minb, 0, pf, err);
            if (!m) { test_fail("budget: %s", err); continue; }
            s = NULL;
            dsv4_session_open(&s, m, NTOK, err, sizeof err);
            fail_mode = mode;
            __atomic_store_n(&fail_after, 5, __ATOMIC_SEQ_CST);
            dsv4_readat_set_hook(bad_pread);
            int rc = dsv4_eval(s, tok, 16, got, err, sizeof err);
            dsv4_readat_set_hook(NULL);
            const char *why = mode == 0 ? "Input/output error" : "end of file";
            CHECK(rc != 0 && strstr(err, "model.safetensors") && strstr(err, "offset") && strstr(err, why) &&
                  strstr(err, "session reset") && dsv4_session_pos(s) == 0,
                  "read error (%s, prefetch %d): rc %d, pos %d: %s", why, pf, rc, dsv4_session_pos(s), err);
            rc = dsv4_eval(s, tok, 16, got, err, sizeof err);
            CHECK(rc == 0 && memcmp(got, want, (size_t)V * sizeof(float)) == 0,
                  "after the read error (%s, prefetch %d) the same session gives the reference logits: %s", why, pf,
                  rc ? err : "logits differ");
            dsv4_expert_stats st;
            dsv4_model_expert_stats(m, &st);
            CHECK(st.read_errors >= 1, "read errors counted: %llu", (unsigned long long)st.read_errors);
            dsv4_session_free(s);
            dsv4_model_free(m);
        }
    /* dsv4_eval_batch (the server's decode step): bit-identical to the mmap path; a read error fails it and resets
     * every session of the batch */
    {
        dsv4_model *m = load("models/nano", minb, 0, DSV4_PREFETCH_KNOWN, err);
        dsv4_model *ms[2] = {ref, m};
        float *bl[2] = {malloc(2 * (size_t)V * sizeof(float)), malloc(2 * (size_t)V * sizeof(float))};
        dsv4_session *bs[2][2] = {{NULL, NULL}, {NULL, NULL}};
        int ok = m != NULL;
        for (int k = 0; k < 2 && ok; k++)
            for (int j = 0; j < 2 && ok; j++)
                ok = dsv4_session_open(&bs[k][j], ms[k], NTOK, err, sizeof err) == 0 &&
                     dsv4_eval(bs[k][j], tok + 3 * j, 5 + j, NULL, err, sizeof err) == 0;
        for (int step = 0; step < 6 && ok; step++) {
            int32_t bt[2] = {tok[20 + step], tok[30 - step]};
            for (int k = 0; k < 2 && ok; k++) ok = dsv4_eval_batch(bs[k], 2, bt, bl[k], err, sizeof err) == 0;
            if (ok) CHECK(memcmp(bl[0], bl[1], 2 * (size_t)V * sizeof(float)) == 0, "batch step %d: logits differ", step);
        }
        CHECK(ok, "batch under a budget: %s", err);
        fail_mode = 0;
        __atomic_store_n(&fail_after, 1, __ATOMIC_SEQ_CST);
        dsv4_readat_set_hook(bad_pread);
        int32_t bt[2] = {tok[1], tok[2]};
        int rc = ok ? dsv4_eval_batch(bs[1], 2, bt, bl[1], err, sizeof err) : 0;
        dsv4_readat_set_hook(NULL);
        CHECK(ok && rc != 0 && strstr(err, "Input/output error") && strstr(err, "reset") && dsv4_session_pos(bs[1][0]) == 0 &&
              dsv4_session_pos(bs[1][1]) == 0, "batch read error: rc %d, positions %d %d: %s", rc,
              dsv4_session_pos(bs[1][0]), dsv4_session_pos(bs[1][1]), err);
        CHECK(ok && dsv4_eval_batch(bs[1], 2, bt, bl[1], err, sizeof err) == 0, "batch after the error: %s", err);
        for (int k = 0; k < 2; k++) { free(bl[k]); for (int j = 0; j < 2; j++) dsv4_session_free(bs[k][j]); }
        dsv4_model_free(m);
    }
    /* a shard replaced under the running model: the cache's descriptors keep reading the file opened at load */
    char dir[] = "/tmp/dsv4-budget.XXXXXX";
    if (!mkdtemp(dir)) { test_fail("mkdtemp"); goto out; }
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cp models/nano/config.json models/nano/model.safetensors %s/", dir);
    if (system(cmd) != 0) { test_fail("%s failed", cmd); goto out; }
    dsv4_model *m = load(dir, minb, 0, DSV4_PREFETCH_GUESS, err);
    if (!m) { test_fail("copy: %s", err); goto out; }
    snprintf(cmd, sizeof cmd, "head -c 100000 %s/model.safetensors > %s/short && mv %s/short %s/model.safetensors", dir, dir,
             dir, dir);
    if (system(cmd) != 0) test_fail("%s failed", cmd);
    s = NULL;
    dsv4_session_open(&s, m, NTOK, err, sizeof err);
    int rc = dsv4_eval(s, tok, 16, got, err, sizeof err);
    CHECK(rc == 0 && memcmp(got, want, (size_t)V * sizeof(float)) == 0,
          "shard replaced by a truncated file under the running model: same logits (%s)", rc ? err : "differ");
    dsv4_session_free(s);
    dsv4_model_free(m);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) test_fail("%s failed", cmd);
out:
    free(want); free(got);
    dsv4_model_free(ref);
}

/* ------------------------------------------------------------------ resident memory */
static long rss_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long v = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) { v = strtol(line + 6, NULL, 10); break; }
    fclose(f);
    return v;
}

/* RSS growth (KiB) of: load dir under `mem`, prefill 64 tokens + 32 decode steps, measured before the free. */
static long rss_run(const char *dir, uint64_t mem, long *after_load, size_t *state, char *err) {
    long r0 = rss_kib();
    dsv4_model *m = load(dir, mem, 0, DSV4_PREFETCH_GUESS, err);
    if (!m) return -1;
    *after_load = rss_kib() - r0;
    dsv4_session *s = NULL;
    if (dsv4_session_open(&s, m, 128, err, 256) != 0) { dsv4_model_free(m); return -1; }
    *state = dsv4_session_bytes(m, 128);
    int32_t tok[96];
    tokens(tok, 96, 1024);
    float *lg = malloc(1024 * sizeof(float));
    int rc = dsv4_eval(s, tok, 64, lg, err, 256);
    for (int i = 64; i < 96 && !rc; i++) rc = dsv4_eval(s, &tok[i], 1, lg, err, 256);
    long g = rss_kib() - r0;
    free(lg);
    dsv4_session_free(s);
    dsv4_model_free(m);
    return rc ? -1 : g;
}

static void resident(void) {
    char err[256], dir[] = "/tmp/dsv4-budget-rss.XXXXXX", cmd[1024];
    if (!mkdtemp(dir)) { test_fail("mkdtemp"); return; }
    size_t len;
    char *cfg = test_read_file("models/nano/config.json", &len);
    char *c1 = test_replace_first(cfg, "\"n_routed_experts\": 8", "\"n_routed_experts\": 64");
    char *c2 = test_replace_first(c1, "\"moe_intermediate_size\": 128", "\"moe_intermediate_size\": 2048");
    char cpath[512], mdir[512];
    snprintf(cpath, sizeof cpath, "%s/config.json", dir);
    FILE *f = fopen(cpath, "w");
    if (f) { fputs(c2, f); fclose(f); }
    free(cfg); free(c1); free(c2);
    /* the tool of this build ($BUILD, as tests/run.sh sets it), run the way the test binaries are ($DSV4_RUN: a cross
     * build's tool under qemu-user, which is not registered with binfmt_misc) */
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build/rel", *runner = getenv("DSV4_RUN");
    snprintf(cmd, sizeof cmd, "%s %s/tools/make_flash_ckpt -o %s/ck --config %s --layers 0,1,2,3 --no-check > /dev/null 2>&1",
             runner ? runner : "", build, dir, cpath);
    if (system(cmd) != 0) { test_fail("%s failed", cmd); goto out; }
    snprintf(mdir, sizeof mdir, "%s/ck/full", dir);
    dsv4_model *probe = load(mdir, 1, 0, 0, err);
    dsv4_model_free(probe);
    const char *bp = strstr(strstr(err, "minimum ") ? strstr(err, "minimum ") : err, "(");
    uint64_t minb = bp ? strtoull(bp + 1, NULL, 10) : 0;
    dsv4_model *m = load(mdir, minb, 0, 0, err);
    dsv4_expert_stats st;
    dsv4_model_expert_stats(m, &st);
    dsv4_model_free(m);
    uint64_t budget = minb + 6 * st.entry_bytes;   /* K = 2: 8 slots */
    dsv4_model_info in;
    dsv4_config_info(mdir, &in, err, sizeof err);
    double experts_mib = (in.bytes_total - (double)st.resident_bytes) / 1048576.0;
    long load_b, load_m;
    size_t state;
    long gb = rss_run(mdir, budget, &load_b, &state, err);
    if (gb < 0) { test_fail("budget run: %s", err); goto out; }
    long gm = rss_run(mdir, 0, &load_m, &state, err);
    if (gm < 0) { test_fail("mmap run: %s", err); goto out; }
    long limit = (long)(budget / 1024) + (long)(state / 1024) + 24 * 1024;
    printf("rss: experts %.1f MiB, resident weights %.1f MiB; budget %.1f MiB: load +%.1f MiB, run +%.1f MiB (limit %.1f); "
           "mmap path: load +%.1f MiB, run +%.1f MiB\n", experts_mib, (double)st.resident_bytes / 1048576.0,
           (double)budget / 1048576.0, load_b / 1024.0, gb / 1024.0, limit / 1024.0, load_m / 1024.0, gm / 1024.0);
    CHECK(gb <= limit, "RSS grew by %ld KiB under a budget of %llu bytes (limit %ld KiB)", gb,
          (unsigned long long)budget, limit);
    CHECK(load_b < 16 * 1024, "the budgeted load touched %ld KiB", load_b);
    CHECK(gm > gb + 64 * 1024, "the mmap path grew by %ld KiB, the budget run by %ld KiB (the check must be able to fail)",
          gm, gb);
out:
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) test_fail("%s failed", cmd);
}

/* ------------------------------------------------------------------ no allocation */
static void no_alloc(void) {
    char err[256];
    dsv4_model *probe = load("models/nano", 1, 0, 0, err);
    dsv4_model_free(probe);
    const char *bp = strstr(strstr(err, "minimum ") ? strstr(err, "minimum ") : err, "(");
    uint64_t minb = bp ? strtoull(bp + 1, NULL, 10) : 0;
    dsv4_model *m = load("models/nano", minb, DSV4_EVICT_LFU, DSV4_PREFETCH_GUESS, err);
    if (!m) { test_fail("budget: %s", err); return; }
    dsv4_set_threads(2, NULL, 0);
    dsv4_session *s = NULL;
    float *lg = malloc(1024 * sizeof(float));
    dsv4_session_open(&s, m, 128, err, sizeof err);
    int32_t tok[16];
    for (int i = 0; i < 16; i++) tok[i] = 5 + i;
    int ok = dsv4_eval(s, tok, 16, lg, err, sizeof err) == 0;
    long before = __atomic_load_n(&n_allocs, __ATOMIC_SEQ_CST);
    for (int i = 0; i < 64 && ok; i++) {
        int32_t t = (int32_t)(i * 31 % 1000);
        ok = dsv4_eval(s, &t, 1, lg, err, sizeof err) == 0;
        if (ok && i % 2) ok = dsv4_eval_mtp(s, t, lg, err, sizeof err) == 0;
    }
    CHECK(ok, "decode: %s", err);
    long d = __atomic_load_n(&n_allocs, __ATOMIC_SEQ_CST) - before;
    CHECK(d == 0, "64 decode steps (+ MTP) under a budget made %ld allocations", d);
    free(lg);
    dsv4_session_free(s);
    dsv4_model_free(m);
    dsv4_set_threads(1, NULL, 0);
}

int main(void) {
    same_logits("models/nano", 1);
    same_logits("tests/golden/flash", 0);
    prefill_once();
    two_sessions();
    read_errors();
    resident();
    no_alloc();
    return test_done();
}
