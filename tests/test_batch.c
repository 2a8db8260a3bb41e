/* tests/test_batch.c — dsv4_eval_batch (one decode step for several sessions, every weight read once):
 *  - each session's logits are bit-identical (memcmp) to the same session decoded alone with dsv4_eval, on the
 *    trained nano model, for sessions at different positions (before and after the 128-slot window wraps, before
 *    and after the indexer's top-k bites at 4 * index_topk = 32 positions, HCA entries of ratio 128 appearing),
 *    with different max_ctx (the scratch owner is not session 0), for every SIMD path, with 1 and 2 threads
 *    (under emulation, $DSV4_TEST_QEMU: scalar with 1 thread, the SIMD paths with 2);
 *  - the state a batch leaves behind is the state of a single decode: further single-session decodes and the
 *    MTP block after a batch step match too;
 *  - bad arguments are refused with a message and evaluate nothing;
 *  - dsv4_eval_all (every position's logits) equals one decode per token under three call splits;
 *  - dsv4_load_options.chunk_tokens (1, 5, 160) changes nothing: dsv4_eval_all equals the per-token decode of the
 *    default model, a batch step on chunk-1 sessions equals single decodes, dsv4_session_bytes grows with the
 *    chunk, out-of-range values are refused naming chunk_tokens.
 * Tolerance: none (bit-identical). The pair-lane definition (src/kernels/simd.h) makes each output element of a
 * linear independent of how many rows the call has, and the per-row part runs on the row's own state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dsv4.h"
#include "testlib.h"

#define NS 4
#define STEPS 16
static const int PROMPT[NS] = {300, 5, 40, 131};   /* prompt lengths: ring wrapped, fresh, top-k biting, HCA */
static const int CTX[NS] = {400, 700, 350, 200};   /* session 1 has the largest max_ctx: the scratch owner */

static int32_t tok_at(int s, int i, int V) { return (int32_t)((i * 7919 + s * 104729 + 13) % V); }

static void open_all(const dsv4_model *m, dsv4_session **ss, int V) {
    char err[256];
    for (int s = 0; s < NS; s++) {
        ss[s] = NULL;
        if (dsv4_session_open(&ss[s], m, CTX[s], err, sizeof err) != 0) { test_fail("open: %s", err); continue; }
        int32_t buf[400];
        for (int i = 0; i < PROMPT[s]; i++) buf[i] = tok_at(s, i, V);
        if (dsv4_eval(ss[s], buf, PROMPT[s], NULL, err, sizeof err) != 0) test_fail("prefill: %s", err);
    }
}

static void compare(const dsv4_model *m, int V, const char *label) {
    char err[256];
    dsv4_session *a[NS], *b[NS];
    open_all(m, a, V);
    open_all(m, b, V);
    float *la = malloc(sizeof(float) * NS * V), *lb = malloc(sizeof(float) * NS * V);
    int bad = 0;
    for (int step = 0; step < STEPS && !bad; step++) {
        int32_t t[NS];
        for (int s = 0; s < NS; s++) t[s] = tok_at(s, PROMPT[s] + step, V);
        for (int s = 0; s < NS; s++)
            if (dsv4_eval(a[s], &t[s], 1, la + (size_t)s * V, err, sizeof err) != 0) { test_fail("eval: %s", err); bad = 1; }
        if (dsv4_eval_batch(b, NS, t, lb, err, sizeof err) != 0) { test_fail("eval_batch: %s", err); bad = 1; break; }
        for (int s = 0; s < NS; s++)
            if (memcmp(la + (size_t)s * V, lb + (size_t)s * V, sizeof(float) * V) != 0) {
                test_fail("%s: step %d session %d (pos %d): batched logits differ from a single decode", label, step, s,
                          dsv4_session_pos(a[s]) - 1);
                bad = 1;
            }
        for (int s = 0; s < NS; s++)
            if (dsv4_session_pos(a[s]) != dsv4_session_pos(b[s])) { test_fail("%s: positions differ", label); bad = 1; }
    }
    EXPECT(!bad, "%s: %d batched steps of %d sessions bit-identical", label, STEPS, NS);
    /* the state left behind: single decodes and MTP continue identically */
    for (int s = 0; s < NS && !bad; s++) {
        int32_t t = tok_at(s, 999, V);
        float *x = la, *y = lb;
        dsv4_eval_mtp(a[s], t, x, err, sizeof err);
        dsv4_eval_mtp(b[s], t, y, err, sizeof err);
        EXPECT(memcmp(x, y, sizeof(float) * V) == 0, "%s: session %d MTP after batch differs", label, s);
        dsv4_eval(a[s], &t, 1, x, err, sizeof err);
        dsv4_eval(b[s], &t, 1, y, err, sizeof err);
        EXPECT(memcmp(x, y, sizeof(float) * V) == 0, "%s: session %d decode after batch differs", label, s);
    }
    for (int s = 0; s < NS; s++) { dsv4_session_free(a[s]); dsv4_session_free(b[s]); }
    free(la); free(lb);
}

static void bad_args(const dsv4_model *m, const dsv4_model *m2, int V) {
    char err[256];
    dsv4_session *s[3] = {NULL, NULL, NULL};
    dsv4_session_open(&s[0], m, 4, err, sizeof err);
    dsv4_session_open(&s[1], m, 4, err, sizeof err);
    dsv4_session_open(&s[2], m2, 4, err, sizeof err);
    int32_t t[3] = {1, 2, 3};
    float *l = malloc(sizeof(float) * 3 * V);
    struct { dsv4_session *ss[3]; int nb; int32_t t0; const char *want; } cases[] = {
        {{s[0], s[1]}, 0, 1, "nb = 0"},
        {{s[0], NULL}, 2, 1, "session 1 is NULL"},
        {{s[0], s[0]}, 2, 1, "sessions 0 and 1 are the same"},
        {{s[0], s[2]}, 2, 1, "another model"},
        {{s[0], s[1]}, 2, -1, "token id -1 at index 0"},
        {{s[0], s[1]}, 2, 1 << 30, "out of range"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int32_t tt[3] = {cases[i].t0, 2, 3};
        err[0] = 0;
        int rc = dsv4_eval_batch(cases[i].ss, cases[i].nb, tt, l, err, sizeof err);
        EXPECT(rc == -1 && strstr(err, cases[i].want), "bad case %zu: rc %d err '%s' (want '%s')", i, rc, err, cases[i].want);
        EXPECT(dsv4_session_pos(s[0]) == 0 && dsv4_session_pos(s[1]) == 0, "bad case %zu evaluated something", i);
    }
    EXPECT(dsv4_eval_batch(NULL, 1, t, l, err, sizeof err) == -1, "NULL sessions accepted");
    /* context overflow: fill session 0 to max_ctx */
    int32_t four[4] = {1, 2, 3, 4};
    dsv4_eval(s[0], four, 4, NULL, err, sizeof err);
    int rc = dsv4_eval_batch(s, 2, t, l, err, sizeof err);
    EXPECT(rc == -1 && strstr(err, "context overflow") && dsv4_session_pos(s[1]) == 0, "overflow: rc %d '%s'", rc, err);
    for (int i = 0; i < 3; i++) dsv4_session_free(s[i]);
    free(l);
}

/* The reference of the split checks: a session of max_ctx n on m (*a) that decoded t[0..n) one token per call, each
 * call's logits in row i of *ref [n][V]; *all gets room for as many rows. Returns 0, or -1 after a test failure
 * (the caller frees what was set). */
static int per_token_ref(const dsv4_model *m, const int32_t *t, int n, int V, float **ref, float **all, dsv4_session **a) {
    char err[256];
    *ref = malloc(sizeof(float) * (size_t)n * V);
    *all = malloc(sizeof(float) * (size_t)n * V);
    if (!*ref || !*all || dsv4_session_open(a, m, n, err, sizeof err) != 0) { test_fail("reference setup"); return -1; }
    for (int i = 0; i < n; i++)
        if (dsv4_eval(*a, &t[i], 1, *ref + (size_t)i * V, err, sizeof err) != 0) { test_fail("decode: %s", err); return -1; }
    return 0;
}

/* dsv4_eval_all: every row equals the logits of the call that ends at that position, whatever the split: a
 * 300-token prompt scored in calls of 300, 77 + 223 and 128 + 172 vs one decode per token (bit-identical: the
 * kernels' outputs do not depend on the row count); the last row is dsv4_eval's; bad calls refused. */
static void eval_all_check(const dsv4_model *m, int V) {
    enum { N = 300 };
    char err[256];
    int32_t t[N];
    for (int i = 0; i < N; i++) t[i] = tok_at(0, i, V);
    float *ref = NULL, *all = NULL;
    dsv4_session *a = NULL;
    if (per_token_ref(m, t, N, V, &ref, &all, &a)) goto out;
    static const int splits[][2] = {{N, 0}, {77, N - 77}, {128, N - 128}};
    for (int k = 0; k < 3; k++) {
        dsv4_session_reset(a);
        int ok = dsv4_eval_all(a, t, splits[k][0], all, err, sizeof err) == 0 &&
                 (splits[k][1] == 0 || dsv4_eval_all(a, t + splits[k][0], splits[k][1], all + (size_t)splits[k][0] * V, err,
                                                     sizeof err) == 0);
        EXPECT(ok && memcmp(all, ref, sizeof(float) * (size_t)N * V) == 0 && dsv4_session_pos(a) == N,
               "eval_all %d + %d: every row equals the per-token decode (%s)", splits[k][0], splits[k][1], ok ? "" : err);
    }
    dsv4_session_reset(a);
    float *last = malloc(sizeof(float) * V);
    EXPECT(last && dsv4_eval(a, t, 40, last, err, sizeof err) == 0 && memcmp(last, ref + (size_t)39 * V, sizeof(float) * V) == 0,
           "eval of 40 tokens: its logits are row 39");
    free(last);
    EXPECT(dsv4_eval_all(a, t, 2, NULL, err, sizeof err) == -1 && strstr(err, "logits is NULL") && dsv4_session_pos(a) == 40,
           "eval_all without logits refused (%s)", err);
    EXPECT(dsv4_eval_all(a, t, N, all, err, sizeof err) == -1 && strstr(err, "context overflow") && dsv4_session_pos(a) == 40,
           "eval_all past max_ctx refused (%s)", err);
    int32_t badt[2] = {1, V};
    EXPECT(dsv4_eval_all(a, badt, 2, all, err, sizeof err) == -1 && strstr(err, "index 1") && dsv4_session_pos(a) == 40,
           "eval_all with a bad token id refused (%s)", err);
out:
    dsv4_session_free(a);
    free(ref); free(all);
}

/* The forward chunk (dsv4_load_options.chunk_tokens) decides the scratch and how a long call is cut, never the
 * logits. Chunk 1 also sizes the one-token MoE's K routed + 1 shared expert rows (forward.c moe_one_token): with
 * CH * K rows only, the shared expert's rows ran into the next scratch region and the logits changed from the
 * first token on. Sizes kept small (one-token steps are what emulation makes slow): 160 tokens (the window ring
 * wraps, the first HCA entry, two default chunks), chunk 1 on the first 40. */
static void chunk_check(const dsv4_model *m, int V) {
    enum { N = 160, N1 = 40 };
    char err[256];
    int32_t t[N];
    for (int i = 0; i < N; i++) t[i] = tok_at(2, i, V);
    float *ref = NULL, *all = NULL;
    dsv4_session *a = NULL;
    if (per_token_ref(m, t, N, V, &ref, &all, &a)) goto out;
    EXPECT(dsv4_model_chunk_tokens(m) == DSV4_DEFAULT_CHUNK && dsv4_model_chunk_tokens(NULL) == 0,
           "default chunk %d", dsv4_model_chunk_tokens(m));
    static const int chunks[] = {1, 5, N};
    size_t prev = 0;
    for (int k = 0; k < 3; k++) {
        dsv4_load_options o = {0};
        o.chunk_tokens = chunks[k];
        dsv4_model *mc = NULL;
        dsv4_session *b = NULL;
        if (dsv4_model_load_opts(&mc, "models/nano", &o, err, sizeof err) != 0 || dsv4_session_open(&b, mc, N, err, sizeof err)) {
            test_fail("chunk %d: %s", chunks[k], err);
            dsv4_model_free(mc);
            continue;
        }
        size_t bytes = dsv4_session_bytes(mc, N);
        EXPECT(dsv4_model_chunk_tokens(mc) == chunks[k] && bytes > prev, "chunk %d: reported %d, session %zu B (previous %zu)",
               chunks[k], dsv4_model_chunk_tokens(mc), bytes, prev);
        prev = bytes;
        int n = chunks[k] == 1 ? N1 : N;
        int ok = dsv4_eval_all(b, t, n, all, err, sizeof err) == 0;
        EXPECT(ok && memcmp(all, ref, sizeof(float) * (size_t)n * V) == 0,
               "chunk %d: eval_all of %d tokens equals the per-token decode of the default model %s", chunks[k], n, ok ? "" : err);
        if (chunks[k] == 1) {   /* a batch step is cut to the scratch's chunk: 3 steps of one session */
            dsv4_session *ss[3] = {NULL, NULL, NULL}, *one[3] = {NULL, NULL, NULL};
            int32_t tk[3];
            float *lb = malloc(sizeof(float) * 3 * (size_t)V), *l1 = malloc(sizeof(float) * (size_t)V);
            int same = lb && l1;
            err[0] = 0;
            for (int i = 0; same && i < 3; i++) {   /* prompts of 3, 6 and 9 tokens */
                same = !dsv4_session_open(&ss[i], mc, 16, err, sizeof err) && !dsv4_session_open(&one[i], mc, 16, err, sizeof err) &&
                       !dsv4_eval(ss[i], t, 3 * (i + 1), NULL, err, sizeof err) && !dsv4_eval(one[i], t, 3 * (i + 1), NULL, err, sizeof err);
                tk[i] = tok_at(i, 999, V);
            }
            same = same && dsv4_eval_batch(ss, 3, tk, lb, err, sizeof err) == 0;
            for (int i = 0; same && i < 3; i++)
                same = dsv4_eval(one[i], &tk[i], 1, l1, err, sizeof err) == 0 && !memcmp(l1, lb + (size_t)i * V, sizeof(float) * V);
            EXPECT(same, "chunk 1: a batch of 3 sessions equals their single decodes %s", err);
            for (int i = 0; i < 3; i++) { dsv4_session_free(ss[i]); dsv4_session_free(one[i]); }
            free(lb); free(l1);
        }
        dsv4_session_free(b);
        dsv4_model_free(mc);
    }
    static const int bad[] = {-1, 4097};
    for (int k = 0; k < 2; k++) {
        dsv4_load_options o = {0};
        o.chunk_tokens = bad[k];
        dsv4_model *mc = NULL;
        err[0] = 0;
        int rc = dsv4_model_load_opts(&mc, "models/nano", &o, err, sizeof err);
        EXPECT(rc == -1 && !mc && strstr(err, "chunk_tokens"), "chunk_tokens %d refused: rc %d '%s'", bad[k], rc, err);
        dsv4_model_free(mc);
    }
out:
    dsv4_session_free(a);
    free(ref); free(all);
}

int main(void) {
    char err[256];
    dsv4_model *m = NULL, *m2 = NULL;
    if (dsv4_model_load(&m, "models/nano", err, sizeof err) != 0 || dsv4_model_load(&m2, "models/nano", err, sizeof err) != 0) {
        test_fail("load models/nano: %s", err);
        return test_done();
    }
    dsv4_model_info info;
    dsv4_model_get_info(m, &info);
    int V = info.vocab_size;
    char best[32];   /* the path this CPU runs by default: the chunk check runs there (fast under emulation too) */
    snprintf(best, sizeof best, "%s", dsv4_get_kernel_path());
    /* every path this CPU runs; thread counts 1 and 2 over the paths (the pool split is path-independent) */
    static const struct { const char *path; int threads; } runs[] = {
        {"scalar", 1}, {"avx2", 2}, {"avx512", 1}, {"avx512", 2}, {"neon", 1}, {"neon", 2}};
    int reduced = test_reduced("test_batch: the SIMD paths with 2 threads only (1 thread runs on scalar; the pool "
                               "split is path-independent)");
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        if (reduced && runs[r].threads == 1 && strcmp(runs[r].path, "scalar")) continue;
        if (dsv4_set_kernel_path(runs[r].path, err, sizeof err) != 0) continue;   /* not on this CPU */
        char label[64];
        snprintf(label, sizeof label, "%s/%d thread%s", runs[r].path, runs[r].threads, runs[r].threads > 1 ? "s" : "");
        dsv4_set_threads(runs[r].threads, NULL, 0);
        compare(m, V, label);
    }
    dsv4_set_kernel_path("scalar", NULL, 0);
    dsv4_set_threads(2, NULL, 0);
    eval_all_check(m, V);
    dsv4_set_kernel_path(best, NULL, 0);
    chunk_check(m, V);
    bad_args(m, m2, V);
    dsv4_model_free(m);
    dsv4_model_free(m2);
    return test_done();
}
