/* tests/test_api_v41.c — the DeepSeek-V4.1 forward THROUGH THE PUBLIC API (include/dsv4.h): dsv4_model_load on
 * tests/golden/v41/tiny, dsv4_session_open / dsv4_eval / dsv4_eval_all / dsv4_session_reset / dsv4_session_pos /
 * dsv4_session_free / dsv4_model_get_info, against the same goldens and tolerance as tests/test_forward_v41.c
 * (golden.json tolerance.rel x max|golden|: the reference's float32-mode deviation x 4, see that file).
 *
 *  1. Each of the three call schedules (golden.json "calls"): dsv4_eval_all per call gives every position's logits,
 *     within the tolerance of the schedule's golden, and bit-identical to what the internal forward gives for that
 *     schedule (dsv4_v41_state_open / dsv4_v41_eval: the public API adds nothing to the arithmetic). dsv4_eval per
 *     call in a second session: its logits equal the last row of the same call's dsv4_eval_all bit for bit.
 *  2. dsv4_eval_all over the whole sequence in one call vs one dsv4_eval per token: the V4.1 forward is NOT
 *     schedule-independent (the official index-key slot: on a decode step where a ratio-2 group is still filling,
 *     an index source scores against the last published keys of another layer), so the two differ by more than
 *     rounding once the index top-k has a choice (positions 18.. here); where the reference's two goldens are
 *     bit-identical (positions 0-17), the C rows must be bit-identical; elsewhere both differences are reported.
 *  3. dsv4_session_reset then the prefill again: bit-identical logits; dsv4_session_pos follows every call.
 *     A call of 300 tokens (over the session's chunk of 128): every row bit-identical to the internal forward called
 *     with 128, 128, 44 tokens, dsv4_eval's logits = the last row.
 *  4. What the V4.1 path does not support is refused with a message naming V4.1, nothing crashes: dsv4_eval_batch,
 *     dsv4_eval_mtp, dsv4_checkpoint_save / restore, dsv4_session_export / import (their byte counts are 0), a memory
 *     budget below the checkpoint (dsv4_model_load_opts); a budget above it loads (mmap path). Bad tokens and
 *     context overflow are refused as for V4.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "testlib.h"
#include "dsv4.h"
#include "model/model_v41.h"

static const char *TINY = "tests/golden/v41/tiny";

static int argmax_equal(const float *a, const float *b, int N, int V) {
    int same = 0;
    for (int t = 0; t < N; t++) {
        int x = 0, y = 0;
        for (int v = 1; v < V; v++) {
            if (a[(size_t)t * V + v] > a[(size_t)t * V + x]) x = v;
            if (b[(size_t)t * V + v] > b[(size_t)t * V + y]) y = v;
        }
        same += x == y;
    }
    return same;
}

/* 1-3 on the checkpoint in TINY-like directory `dir` (its golden.json g), loaded as m. */
static void schedules(dsv4_model *m, const cJSON *g, const char *TINY, int V) {
    char err[1024] = "";
    const cJSON *jt = cJSON_GetObjectItem(g, "tokens");
    const int N = cJSON_GetArraySize(jt);
    int32_t *tok = malloc((size_t)N * sizeof(int32_t));
    for (int i = 0; i < N; i++) tok[i] = cJSON_GetArrayItem(jt, i)->valueint;
    const double rel = cJSON_GetObjectItem(cJSON_GetObjectItem(g, "tolerance"), "rel")->valuedouble;
    const cJSON *sch = cJSON_GetObjectItem(g, "schedules");
    float *got[3] = {0}, *last = malloc((size_t)V * sizeof(float)), *want = NULL;
    float *internal = malloc((size_t)N * V * sizeof(float));
    int pi = -1, di = -1;   /* schedule indices of "prefill" and "decode" */
    for (int si = 0; si < cJSON_GetArraySize(sch) && si < 3; si++) {
        const cJSON *e = cJSON_GetArrayItem(sch, si);
        const char *name = cJSON_GetObjectItem(e, "name")->valuestring;
        if (!strcmp(name, "prefill")) pi = si;
        if (!strcmp(name, "decode")) di = si;
        char p[600];
        snprintf(p, sizeof p, "%s/%s", TINY, cJSON_GetObjectItem(e, "logits")->valuestring);
        free(want);
        want = test_read_f32(p, (size_t)N * V);
        got[si] = calloc((size_t)N * V, sizeof(float));
        dsv4_session *s = NULL, *s1 = NULL;
        dsv4_v41_state *st = NULL;
        if (!want || dsv4_session_open(&s, m, N, err, sizeof err) || dsv4_session_open(&s1, m, N, err, sizeof err) ||
            dsv4_v41_state_open(m, N, N, &st, err, sizeof err)) {
            test_fail("%s: %s", name, err);
            dsv4_session_free(s);
            dsv4_session_free(s1);
            continue;
        }
        const cJSON *calls = cJSON_GetObjectItem(e, "calls");
        int pos = 0, ok = 1, last_same = 0, ncalls = cJSON_GetArraySize(calls);
        for (int k = 0; k < ncalls && ok; k++) {
            int n = cJSON_GetArrayItem(calls, k)->valueint;
            ok = dsv4_eval_all(s, tok + pos, n, got[si] + (size_t)pos * V, err, sizeof err) == 0 &&
                 dsv4_eval(s1, tok + pos, n, last, err, sizeof err) == 0 &&
                 dsv4_v41_eval(st, tok + pos, n, internal + (size_t)pos * V, NULL, err, sizeof err) == 0;
            if (!ok) { test_fail("%s: call %d at %d: %s", name, k, pos, err); break; }
            pos += n;
            CHECK(dsv4_session_pos(s) == pos && dsv4_session_pos(s1) == pos, "%s: session position %d / %d, want %d",
                  name, dsv4_session_pos(s), dsv4_session_pos(s1), pos);
            last_same += memcmp(last, got[si] + (size_t)(pos - 1) * V, (size_t)V * sizeof(float)) == 0;
        }
        dsv4_v41_state_free(st);
        if (ok) {
            double sc = test_maxabs(want, (size_t)N * V), d = test_maxdiff(got[si], want, (size_t)N * V);
            printf("  %s (%d calls): dsv4_eval_all max |logit diff| / max |golden| = %.3e (tolerance %.3e), argmax "
                   "equal on %d / %d; dsv4_eval = last row of dsv4_eval_all on %d / %d calls\n", name, ncalls, d / sc,
                   rel, argmax_equal(got[si], want, N, V), N, last_same, ncalls);
            CHECK(d <= rel * sc, "%s: logits differ by %.3e x max (tolerance %.3e)", name, d / sc, rel);
            CHECK(memcmp(got[si], internal, (size_t)N * V * sizeof(float)) == 0,
                  "%s: the public API's logits differ from the internal forward's", name);
            CHECK(last_same == ncalls, "%s: dsv4_eval differs from dsv4_eval_all's last row on %d calls", name,
                  ncalls - last_same);
        }
        /* reset, then the first call again: bit-identical */
        if (ok) {
            int n0 = cJSON_GetArrayItem(calls, 0)->valueint;
            dsv4_session_reset(s);
            CHECK(dsv4_session_pos(s) == 0, "%s: position %d after reset", name, dsv4_session_pos(s));
            float *again = calloc((size_t)n0 * V, sizeof(float));
            CHECK(dsv4_eval_all(s, tok, n0, again, err, sizeof err) == 0, "%s: after reset: %s", name, err);
            CHECK(memcmp(again, got[si], (size_t)n0 * V * sizeof(float)) == 0,
                  "%s: the first call after dsv4_session_reset differs from the first run", name);
            free(again);
        }
        dsv4_session_free(s);
        dsv4_session_free(s1);
    }
    /* 2. one dsv4_eval_all call vs one dsv4_eval per token: at the positions where the reference's prefill and decode
     * goldens are bit-identical (the schedules select the same compressed positions there), the C rows must be
     * bit-identical too; elsewhere the index-key slot makes them differ (by design), reported with the goldens' own
     * difference at those positions. */
    if (pi >= 0 && di >= 0 && got[pi] && got[di]) {
        char p[600], q[600];
        snprintf(p, sizeof p, "%s/%s", TINY, cJSON_GetObjectItem(cJSON_GetArrayItem(sch, pi), "logits")->valuestring);
        snprintf(q, sizeof q, "%s/%s", TINY, cJSON_GetObjectItem(cJSON_GetArrayItem(sch, di), "logits")->valuestring);
        float *wp = test_read_f32(p, (size_t)N * V), *wd = test_read_f32(q, (size_t)N * V);
        int n_ind = 0, n_bit = 0;
        double dc = 0, dg = 0, sc = wp ? test_maxabs(wp, (size_t)N * V) : 1;
        for (int t = 0; wp && wd && t < N; t++) {
            const size_t o = (size_t)t * V, nb = (size_t)V * sizeof(float);
            if (memcmp(wp + o, wd + o, nb) == 0) {
                n_ind++;
                n_bit += memcmp(got[pi] + o, got[di] + o, nb) == 0;
            } else {
                dc = fmax(dc, test_maxdiff(got[pi] + o, got[di] + o, (size_t)V));
                dg = fmax(dg, test_maxdiff(wp + o, wd + o, (size_t)V));
            }
        }
        printf("  dsv4_eval_all (one call) vs dsv4_eval per token: bit-identical on %d of the %d positions where the "
               "goldens agree; the other %d positions differ by %.3e x max (goldens: %.3e; the index-key slot), argmax "
               "equal on %d / %d\n", n_bit, n_ind, N - n_ind, dc / sc, dg / sc, argmax_equal(got[pi], got[di], N, V), N);
        CHECK(wp && wd && n_ind > 0 && n_bit == n_ind, "prefill vs decode through the API: %d of %d schedule-independent "
              "positions bit-identical", n_bit, n_ind);
        free(wp);
        free(wd);
    }
    free(want);
    free(last);
    free(internal);
    for (int i = 0; i < 3; i++) free(got[i]);
    free(tok);
}

/* 5. tests/golden/v41/tiny-tok (make_v41_goldens.py --tokenizer models/nano/tokenizer.json: the tiny V4.1 with
 * vocabulary 1024 and nano's tokenizer, 793 compressed ids, the reference hashing through that map): dsv4_model_load
 * builds the Engram token map from tokenizer.json and the three schedules match their goldens (tolerance 1e-3 here:
 * no BF16 flip in this case's float32 mode). A wrong map (id -> id mod 793) moves the logits beyond the tolerance,
 * so the map is used; a config whose engram_compressed_vocab_size differs from the tokenizer's count is refused
 * naming both files. */
static void tokenizer_case(void) {
    const char *dir = "tests/golden/v41/tiny-tok";
    char p[600], err[1024] = "";
    snprintf(p, sizeof p, "%s/golden.json", dir);
    char *txt = test_read_file(p, NULL);
    cJSON *g = txt ? cJSON_Parse(txt) : NULL;
    dsv4_model *m = NULL;
    if (!g || dsv4_model_load(&m, dir, err, sizeof err)) {
        test_fail("%s: %s", dir, g ? err : "no golden.json");
        cJSON_Delete(g);
        free(txt);
        return;
    }
    dsv4_model_info in;
    dsv4_model_get_info(m, &in);
    CHECK(in.engram_token_map == 1 && dsv4_model_tokenizer(m) && m->v41->engram_map && m->v41->engram_map_n == 1024 &&
          m->v41->engram_pad == 2, "%s: token map %d from the tokenizer (%d ids, pad %d)", dir, in.engram_token_map,
          m->v41->engram_map_n, (int)m->v41->engram_pad);
    int nid = 0;
    for (int i = 0; i < m->v41->engram_map_n; i++) nid += m->v41->engram_map[i] == i;
    printf("  %s: Engram token map from tokenizer.json, 1024 ids -> %d compressed (%d ids map to themselves)\n", dir,
           m->cfg.x.engram_compressed_vocab, nid);
    schedules(m, g, dir, in.vocab_size);
    /* a wrong map must be caught */
    const int V = in.vocab_size, cv = m->cfg.x.engram_compressed_vocab;
    const cJSON *jt = cJSON_GetObjectItem(g, "tokens");
    const int N = cJSON_GetArraySize(jt);
    int32_t *tok = malloc((size_t)N * sizeof(int32_t)), *keep = m->v41->engram_map;
    int32_t *bad = malloc((size_t)m->v41->engram_map_n * sizeof(int32_t));
    float *lg = malloc((size_t)N * V * sizeof(float));
    for (int i = 0; i < N; i++) tok[i] = cJSON_GetArrayItem(jt, i)->valueint;
    for (int i = 0; i < m->v41->engram_map_n; i++) bad[i] = i % cv;
    bad[2] = 2;
    m->v41->engram_map = bad;
    dsv4_session *s = NULL;
    snprintf(p, sizeof p, "%s/prefill.f32", dir);
    float *want = test_read_f32(p, (size_t)N * V);
    const double rel = cJSON_GetObjectItem(cJSON_GetObjectItem(g, "tolerance"), "rel")->valuedouble;
    if (want && dsv4_session_open(&s, m, N, err, sizeof err) == 0 && dsv4_eval_all(s, tok, N, lg, err, sizeof err) == 0) {
        double d = test_maxdiff(lg, want, (size_t)N * V) / test_maxabs(want, (size_t)N * V);
        printf("  %s: with a wrong token map (id mod %d) the prefill differs by %.3e x max (tolerance %.3e)\n", dir, cv,
               d, rel);
        CHECK(d > rel, "a wrong Engram token map is not detected (%.3e)", d);
    } else {
        test_fail("wrong-map run: %s", err);
    }
    dsv4_session_free(s);
    m->v41->engram_map = keep;
    free(bad);
    free(lg);
    free(want);
    free(tok);
    dsv4_model_free(m);
    cJSON_Delete(g);
    free(txt);
    /* another revision's count: refused naming the tokenizer and the config key */
    char tmpl[] = "/tmp/dsv4_api_v41_XXXXXX", q[700], r[700];
    char *tmp = mkdtemp(tmpl);
    if (!tmp) { test_fail("mkdtemp"); return; }
    snprintf(p, sizeof p, "%s/config.json", dir);
    txt = test_read_file(p, NULL);
    char *cfg = txt ? test_replace_first(txt, "\"engram_compressed_vocab_size\": 793", "\"engram_compressed_vocab_size\": 794") : NULL;
    snprintf(q, sizeof q, "%s/config.json", tmp);
    FILE *f = cfg ? fopen(q, "w") : NULL;
    if (f) { fputs(cfg, f); fclose(f); }
    const char *links[2] = {"model.safetensors", "tokenizer.json"};
    char cwd[512];
    for (int i = 0; i < 2 && getcwd(cwd, sizeof cwd); i++) {
        snprintf(p, sizeof p, "%s/%s/%s", cwd, dir, links[i]);
        snprintf(r, sizeof r, "%s/%s", tmp, links[i]);
        CHECK(symlink(p, r) == 0, "symlink %s", r);
    }
    err[0] = 0;
    m = NULL;
    CHECK(f && dsv4_model_load(&m, tmp, err, sizeof err) != 0 && !m && strstr(err, "tokenizer.json") &&
          strstr(err, "engram_compressed_vocab_size 794") && strstr(err, "793"), "count mismatch: %s", err);
    printf("  refused: %s\n", err);
    dsv4_model_free(m);
    for (int i = 0; i < 2; i++) { snprintf(r, sizeof r, "%s/%s", tmp, links[i]); unlink(r); }
    unlink(q);
    rmdir(tmp);
    free(cfg);
    free(txt);
}

/* dsv4_eval_dspark: the public DSpark drafts equal the internal forward's (dsv4_v41_dspark on a state run through the
 * same calls) bit for bit, logits, ids and confidence, after a prefill and after decode steps; the errors. The internal
 * function itself is checked against the goldens in test_forward_v41. */
static void dspark_public(dsv4_model *m) {
    char err[1024] = "";
    const int V = m->cfg.vocab_size, B = dsv4_model_dspark_block(m);
    CHECK(B == m->cfg.x.dspark_block_size && B >= 1 && B <= 16, "dsv4_model_dspark_block %d", B);
    if (B < 1 || B > 16) return;
    dsv4_session *s = NULL;
    dsv4_v41_state *st = NULL;
    float *a = malloc((size_t)B * V * sizeof(float)), *b = malloc((size_t)B * V * sizeof(float)), lg[96];
    int32_t ia[17], ib[17], tok[12];
    float ca[16], cb[16];
    for (int i = 0; i < 12; i++) tok[i] = 3 + (i * 29) % (V - 3);
    int ok = a && b && !dsv4_session_open(&s, m, 16, err, sizeof err) && !dsv4_v41_state_open(m, 16, 16, &st, err, sizeof err);
    if (ok) {
        CHECK(dsv4_eval_dspark(s, 5, a, ia, ca, err, sizeof err) != 0 && strstr(err, "2 evaluated positions"),
              "DSpark before two positions: %s", err);
        CHECK(dsv4_eval_dspark(s, 5, NULL, ia, ca, err, sizeof err) != 0 && strstr(err, "NULL"), "NULL logits: %s", err);
    }
    int same = 1, calls = 0;
    for (int pos = 0; ok && pos < 12;) {   /* a prefill of 8, then decode steps, drafts after each call */
        int n = pos == 0 ? 8 : 1;
        ok = !dsv4_eval(s, tok + pos, n, lg, err, sizeof err) && !dsv4_v41_eval(st, tok + pos, n, NULL, NULL, err, sizeof err);
        pos += n;
        if (!ok) break;
        int32_t next = tok[(pos * 7) % 12];
        ok = !dsv4_eval_dspark(s, next, a, ia, ca, err, sizeof err) && !dsv4_v41_dspark(st, next, b, ib, cb, err, sizeof err);
        same &= ok && !memcmp(a, b, (size_t)B * V * sizeof(float)) && !memcmp(ia, ib, (size_t)(B + 1) * sizeof(int32_t)) &&
                !memcmp(ca, cb, (size_t)B * sizeof(float)) && ia[0] == next;
        calls++;
    }
    CHECK(ok && same && calls == 5 && dsv4_session_pos(s) == 12, "dsv4_eval_dspark equals dsv4_v41_dspark bit for bit "
          "after %d calls (session at %d): %s", calls, dsv4_session_pos(s), err);
    if (ok) {
        CHECK(dsv4_eval_dspark(s, V, a, ia, ca, err, sizeof err) != 0 && strstr(err, "out of range"), "token %d: %s", V, err);
        printf("  dsv4_eval_dspark: %d draft blocks of %d positions equal to the internal forward's\n", calls, B);
    }
    dsv4_v41_state_free(st);
    dsv4_session_free(s);
    free(a);
    free(b);
}

/* dsv4_load_options.engram_cache_rows: the Engram tables read through a row cache give the same logits bit for bit
 * (prefill + decode of tiny-tok's tokens, twice over so the second pass hits the cache); out of range refused.
 * dsv4_load_options.chunk_tokens 5 (the 24-token prefill in chunks of 5) gives the same logits too. */
static void engram_cache(void) {
    const char *dir = "tests/golden/v41/tiny-tok";
    char err[1024] = "";
    dsv4_load_options o = {0};
    dsv4_load_options oc = {0};
    dsv4_model *m0 = NULL, *m1 = NULL, *m2 = NULL, *mb = NULL;
    o.engram_cache_rows = 64;
    oc.chunk_tokens = 5;
    if (dsv4_model_load(&m0, dir, err, sizeof err) || dsv4_model_load_opts(&m1, dir, &o, err, sizeof err) ||
        dsv4_model_load_opts(&m2, dir, &oc, err, sizeof err)) {
        test_fail("%s: %s", dir, err);
        dsv4_model_free(m0);
        dsv4_model_free(m1);
        return;
    }
    const int V = m0->cfg.vocab_size, N = 24;
    int32_t tok[2 * 24];
    for (int i = 0; i < 2 * N; i++) tok[i] = (int32_t)((i * 37 + 11) % V);
    float *a = malloc((size_t)2 * N * V * sizeof(float)), *b = malloc((size_t)2 * N * V * sizeof(float));
    float *c = malloc((size_t)2 * N * V * sizeof(float));
    dsv4_session *s0 = NULL, *s1 = NULL, *s2 = NULL;
    int ok = a && b && c && !dsv4_session_open(&s0, m0, 2 * N, err, sizeof err) &&
             !dsv4_session_open(&s1, m1, 2 * N, err, sizeof err) && !dsv4_session_open(&s2, m2, 2 * N, err, sizeof err);
    for (int pass = 0; ok && pass < 2; pass++) {   /* pass 1: the same tokens again, so the cache serves rows */
        dsv4_session_reset(s0);
        dsv4_session_reset(s1);
        dsv4_session_reset(s2);
        ok = !dsv4_eval_all(s0, tok, N, a, err, sizeof err) && !dsv4_eval_all(s1, tok, N, b, err, sizeof err) &&
             !dsv4_eval_all(s2, tok, N, c, err, sizeof err);
        for (int t = N; ok && t < 2 * N; t++)
            ok = !dsv4_eval(s0, tok + t, 1, a + (size_t)t * V, err, sizeof err) &&
                 !dsv4_eval(s1, tok + t, 1, b + (size_t)t * V, err, sizeof err) &&
                 !dsv4_eval(s2, tok + t, 1, c + (size_t)t * V, err, sizeof err);
        if (ok) CHECK(!memcmp(a, b, (size_t)2 * N * V * sizeof(float)), "engram_cache_rows 64, pass %d: logits differ "
                      "from the uncached run", pass);
        if (ok) CHECK(!memcmp(a, c, (size_t)2 * N * V * sizeof(float)) && dsv4_model_chunk_tokens(m2) == 5,
                      "chunk_tokens 5, pass %d: logits differ from the default chunk's", pass);
    }
    CHECK(ok, "engram cache runs: %s", err);
    int64_t r0 = 0, h0 = 0, r1 = 0, h1 = 0;
    if (ok) {
        dsv4_v41_engram_stats(s0->v41, &r0, &h0);
        dsv4_v41_engram_stats(s1->v41, &r1, &h1);
    }
    printf("  Engram rows: %lld requested, %lld from the row cache (engram_cache_rows 64); uncached: %lld / %lld\n",
           (long long)r1, (long long)h1, (long long)r0, (long long)h0);
    CHECK(ok && r1 == r0 && r1 > 0 && h0 == 0 && h1 > 0, "the row cache served %lld of %lld rows (uncached %lld)",
          (long long)h1, (long long)r1, (long long)h0);
    o.engram_cache_rows = -1;
    CHECK(dsv4_model_load_opts(&mb, dir, &o, err, sizeof err) != 0 && !mb && strstr(err, "engram_cache_rows"),
          "engram_cache_rows -1 refused: %s", err);
    dsv4_session_free(s0);
    dsv4_session_free(s1);
    dsv4_session_free(s2);
    free(a);
    free(b);
    free(c);
    dsv4_model_free(m0);
    dsv4_model_free(m1);
    dsv4_model_free(m2);
}

int main(void) {
    size_t len = 0;
    char gp[512], err[1024] = "";
    snprintf(gp, sizeof gp, "%s/golden.json", TINY);
    char *txt = test_read_file(gp, &len);
    cJSON *g = txt ? cJSON_Parse(txt) : NULL;
    free(txt);
    if (!g) { test_fail("cannot read %s", gp); return test_done(); }
    dsv4_model *m = NULL;
    if (dsv4_model_load(&m, TINY, err, sizeof err)) { test_fail("dsv4_model_load: %s", err); cJSON_Delete(g); return test_done(); }
    dsv4_model_info in;
    dsv4_model_get_info(m, &in);
    const int V = in.vocab_size;
    CHECK(in.v41 == 1 && in.n_engram_layers == 2 && in.engram_token_map == 0 && V == 96,
          "info: v41 %d, Engram layers %d, token map %d (want identity: no tokenizer), vocab %d", in.v41,
          in.n_engram_layers, in.engram_token_map, V);
    CHECK(dsv4_model_tokenizer(m) == NULL, "the tiny checkpoint has no tokenizer");
    schedules(m, g, TINY, V);
    dspark_public(m);
    /* a call longer than the session's chunk (128): split inside, rows bit-identical to the internal forward run in
     * the same calls of 128, 128, 44 tokens; dsv4_eval's logits = the last row */
    {
        const int NL = 300;
        int32_t *lt = malloc(NL * sizeof(int32_t));
        float *a = malloc((size_t)NL * V * sizeof(float)), *b = malloc((size_t)NL * V * sizeof(float)), lg1[96];
        for (int i = 0; i < NL; i++) lt[i] = 3 + (i * 37 + i / 7) % (V - 3);
        dsv4_session *sl = NULL, *sl1 = NULL;
        dsv4_v41_state *st = NULL;
        int ok = dsv4_session_open(&sl, m, NL, err, sizeof err) == 0 && dsv4_session_open(&sl1, m, NL, err, sizeof err) == 0 &&
                 dsv4_v41_state_open(m, NL, 128, &st, err, sizeof err) == 0 &&
                 dsv4_eval_all(sl, lt, NL, a, err, sizeof err) == 0 && dsv4_eval(sl1, lt, NL, lg1, err, sizeof err) == 0;
        for (int c0 = 0; ok && c0 < NL; c0 += 128)
            ok = dsv4_v41_eval(st, lt + c0, NL - c0 < 128 ? NL - c0 : 128, b + (size_t)c0 * V, NULL, err, sizeof err) == 0;
        CHECK(ok, "300 tokens: %s", err);
        if (ok) {
            CHECK(memcmp(a, b, (size_t)NL * V * sizeof(float)) == 0 && dsv4_session_pos(sl) == NL,
                  "300 tokens in one dsv4_eval_all differ from the forward in calls of 128");
            CHECK(memcmp(lg1, a + (size_t)(NL - 1) * V, (size_t)V * sizeof(float)) == 0,
                  "300 tokens: dsv4_eval's logits differ from dsv4_eval_all's last row");
        }
        dsv4_v41_state_free(st);
        dsv4_session_free(sl);
        dsv4_session_free(sl1);
        free(lt); free(a); free(b);
    }
    /* 4. refused calls, bad input */
    dsv4_session *s = NULL, *s2 = NULL;
    CHECK(dsv4_session_open(&s, m, 4, err, sizeof err) == 0 && dsv4_session_open(&s2, m, 4, err, sizeof err) == 0,
          "open: %s", err);
    if (s && s2) {
        int32_t two[2] = {5, 6}, bad[2] = {5, 96};
        float lg[2 * 96];
        CHECK(dsv4_eval(s, bad, 2, lg, err, sizeof err) != 0 && strstr(err, "out of range") && dsv4_session_pos(s) == 0,
              "token 96 refused: %s", err);
        CHECK(dsv4_eval(s, two, 2, lg, err, sizeof err) == 0, "2 tokens: %s", err);
        CHECK(dsv4_eval_all(s, two, 2, NULL, err, sizeof err) != 0 && strstr(err, "logits is NULL"), "NULL rows: %s", err);
        CHECK(dsv4_eval(s, two, 2, NULL, err, sizeof err) == 0 && dsv4_session_pos(s) == 4, "logits NULL: %s", err);
        CHECK(dsv4_eval(s, two, 1, lg, err, sizeof err) != 0 && strstr(err, "context overflow"), "overflow: %s", err);
        dsv4_session *pair[2] = {s2, s};
        err[0] = 0;
        CHECK(dsv4_eval_batch(pair, 2, two, lg, err, sizeof err) != 0 && strstr(err, "V4.1") && dsv4_session_pos(s2) == 0,
              "dsv4_eval_batch: %s", err);
        printf("  refused: %s\n", err);
        err[0] = 0;
        CHECK(dsv4_eval_mtp(s, 5, lg, err, sizeof err) != 0 && strstr(err, "V4.1") && strstr(err, "dsv4_eval_dspark"),
              "dsv4_eval_mtp: %s", err);
        printf("  refused: %s\n", err);
        dsv4_checkpoint *cp = NULL;
        err[0] = 0;
        CHECK(dsv4_checkpoint_save(s, &cp, err, sizeof err) != 0 && strstr(err, "V4.1") && !cp, "checkpoint save: %s", err);
        printf("  refused: %s\n", err);
        CHECK(dsv4_checkpoint_state_bytes(s) == 0 && dsv4_session_export_bytes(s) == 0, "state byte counts not 0");
        char buf[64];
        err[0] = 0;
        CHECK(dsv4_session_export(s, buf, sizeof buf, err, sizeof err) != 0 && strstr(err, "V4.1"), "export: %s", err);
        err[0] = 0;
        CHECK(dsv4_session_import(s, buf, sizeof buf, err, sizeof err) != 0 && strstr(err, "V4.1") &&
              dsv4_session_pos(s) == 4, "import: %s", err);
        CHECK(dsv4_session_bytes(m, 4) > 0 && dsv4_session_bytes(m, 0) == 0, "dsv4_session_bytes %zu",
              dsv4_session_bytes(m, 4));
        dsv4_session_reset(s);
        CHECK(dsv4_session_pos(s) == 0 && dsv4_eval(s, two, 2, lg, err, sizeof err) == 0, "after reset: %s", err);
    }
    dsv4_session_free(s);
    dsv4_session_free(s2);
    dsv4_session_reset(NULL);
    CHECK(dsv4_session_pos(NULL) == 0, "pos(NULL)");
    /* a memory budget: below the checkpoint refused naming V4.1, above it the mmap path */
    dsv4_model *mb = NULL;
    dsv4_load_options o = {0};
    o.mem_bytes = 1024;
    err[0] = 0;
    CHECK(dsv4_model_load_opts(&mb, TINY, &o, err, sizeof err) != 0 && !mb && strstr(err, "V4.1"), "budget 1 KiB: %s", err);
    printf("  refused: %s\n", err);
    o.mem_bytes = (uint64_t)1 << 30;
    CHECK(dsv4_model_load_opts(&mb, TINY, &o, err, sizeof err) == 0, "budget 1 GiB: %s", err);
    if (mb) {
        dsv4_expert_stats xs;
        dsv4_model_expert_stats(mb, &xs);
        CHECK(xs.fits == 1 && xs.active == 0, "budget 1 GiB: fits %d active %d", xs.fits, xs.active);
        dsv4_model_free(mb);
    }
    dsv4_model_free(m);
    cJSON_Delete(g);
    tokenizer_case();
    engram_cache();
    {   /* a V4 model has no DSpark stages */
        dsv4_model *v4 = NULL;
        dsv4_session *s4 = NULL;
        float l4[1024 * 16];
        int32_t i4[17];
        float c4[16];
        int32_t t4[2] = {5, 6};
        if (!dsv4_model_load(&v4, "models/nano", err, sizeof err) && !dsv4_session_open(&s4, v4, 4, err, sizeof err) &&
            !dsv4_eval(s4, t4, 2, NULL, err, sizeof err))
            CHECK(dsv4_model_dspark_block(v4) == 0 && dsv4_eval_dspark(s4, 5, l4, i4, c4, err, sizeof err) != 0 &&
                  strstr(err, "no DSpark stages") && strstr(err, "dsv4_eval_mtp"), "V4: %s", err);
        else test_fail("nano: %s", err);
        dsv4_session_free(s4);
        dsv4_model_free(v4);
    }
    return test_done();
}
