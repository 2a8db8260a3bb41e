/* test_golden — model-level golden test (docs/internals.md "Golden files").
 *
 * For every tests/golden/<case>/golden.json: load the checkpoint in that directory, run every schedule
 * (a list of chunk lengths) through dsv4_eval on a fresh session, compare the logits of the last
 * position of each call with the reference rows in the schedule's .f32 file:
 *   max|c - r| <= tol = abs + rel * max|r|, and argmax(c) == argmax(r) whenever the reference top-2 gap
 *   exceeds tol (the rule; stricter than the 2*tol that the element bound alone would guarantee).
 * Then (optional "mtp") re-run the "prefill" schedule and compare dsv4_eval_mtp(next_token) likewise.
 * Also checks the API errors of dsv4_eval (bad token id, context overflow) on the first case.
 * Prints one line per case/schedule with the max abs diff, one line per failed check, and ends with
 * "N passed, N failed". Without any golden case it prints SKIP and "0 passed, 0 failed".
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "dsv4.h"
#include "testlib.h"

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++) if (x[i] > x[b]) b = i;
    return b;
}

/* Compare one row; returns 1 if it passes. Fills *maxd. */
static int compare_row(const char *what, const float *c, const float *r, int V, double tabs, double trel, double *maxd) {
    double md = 0, mr = 0;
    int bad = -1;
    for (int i = 0; i < V; i++) {
        double d = fabs((double)c[i] - r[i]);
        if (!(d <= md)) { md = d; if (isnan(d)) { bad = i; md = INFINITY; } }
        if (fabs(r[i]) > mr) mr = fabs(r[i]);
    }
    *maxd = md;
    double tol = tabs + trel * mr;
    int ok = 1;
    if (!(md <= tol)) {
        printf("FAIL %s: max|c-r| = %.6g > tol %.6g%s\n", what, md, tol, bad >= 0 ? " (NaN)" : "");
        ok = 0;
    }
    int a = argmax(r, V);
    double second = -INFINITY;
    for (int i = 0; i < V; i++) if (i != a && r[i] > second) second = r[i];
    if (r[a] - second > tol) {
        int ac = argmax(c, V);
        if (ac != a) {
            printf("FAIL %s: argmax %d != reference %d (gap %.4g)\n", what, ac, a, r[a] - second);
            ok = 0;
        }
    }
    return ok;
}

static void run_case(const char *root, const char *name, int *api_done) {
    char dir[1024], path[1200], err[512];
    cJSON *g;
    dsv4_model *m;
    if (test_open_case(root, name, "golden.json", dir, sizeof dir, path, sizeof path, &g, &m)) return;
    dsv4_session *s = NULL;
    float *lg = NULL, *ref = NULL;
    int32_t *tok = NULL;
    dsv4_model_info info;
    dsv4_model_get_info(m, &info);
    int V = info.vocab_size;
    cJSON *jt = cJSON_GetObjectItem(g, "tokens"), *tol = cJSON_GetObjectItem(g, "tolerance");
    cJSON *sch = cJSON_GetObjectItem(g, "schedules");
    if (!cJSON_IsArray(jt) || !cJSON_IsArray(sch)) { test_fail("%s: golden.json lacks tokens/schedules", name); goto done; }
    double tabs = tol ? cJSON_GetNumberValue(cJSON_GetObjectItem(tol, "abs")) : 1e-3;
    double trel = tol ? cJSON_GetNumberValue(cJSON_GetObjectItem(tol, "rel")) : 0;
    if (isnan(tabs)) tabs = 1e-3;
    if (isnan(trel)) trel = 0;
    int nt = cJSON_GetArraySize(jt);
    tok = malloc(sizeof(int32_t) * (nt + 1));
    for (int i = 0; i < nt; i++) tok[i] = (int32_t)cJSON_GetArrayItem(jt, i)->valueint;
    if (dsv4_session_open(&s, m, nt + 4, err, sizeof err)) { test_fail("%s: session: %s", name, err); goto done; }
    lg = malloc(sizeof(float) * V);
    int ns = cJSON_GetArraySize(sch);
    for (int si = 0; si < ns; si++) {
        cJSON *sc = cJSON_GetArrayItem(sch, si);
        const char *sname = cJSON_GetStringValue(cJSON_GetObjectItem(sc, "name"));
        const char *lf = cJSON_GetStringValue(cJSON_GetObjectItem(sc, "logits"));
        cJSON *calls = cJSON_GetObjectItem(sc, "calls");
        if (!sname || !lf || !cJSON_IsArray(calls)) { test_fail("%s: schedule %d malformed", name, si); continue; }
        int nc = cJSON_GetArraySize(calls);
        size_t flen = 0;
        snprintf(path, sizeof path, "%s/%s", dir, lf);
        free(ref);
        ref = (float *)test_read_file(path, &flen);
        if (!ref || flen != (size_t)nc * V * sizeof(float)) {
            test_fail("%s/%s: %s has %zu bytes, expected %zu", name, sname, path, flen, (size_t)nc * V * sizeof(float));
            continue;
        }
        dsv4_session_reset(s);
        int off = 0, ok = 1;
        double worst = 0;
        for (int ci = 0; ci < nc; ci++) {
            int n = cJSON_GetArrayItem(calls, ci)->valueint;
            if (n < 1 || off + n > nt) { printf("FAIL %s/%s: call %d length %d out of range\n", name, sname, ci, n); ok = 0; break; }
            if (dsv4_eval(s, tok + off, n, lg, err, sizeof err)) { printf("FAIL %s/%s: eval: %s\n", name, sname, err); ok = 0; break; }
            off += n;
            char what[256]; double md;
            snprintf(what, sizeof what, "%s/%s call %d (pos %d)", name, sname, ci, off - 1);
            ok &= compare_row(what, lg, ref + (size_t)ci * V, V, tabs, trel, &md);
            if (md > worst) worst = md;
        }
        printf("%-24s %-20s calls %3d  max abs diff %.3g  %s\n", name, sname, nc, worst, ok ? "ok" : "FAILED");
        if (ok) n_pass++; else n_fail++;
    }
    /* MTP */
    cJSON *mtp = cJSON_GetObjectItem(g, "mtp");
    if (mtp) {
        int next = cJSON_GetObjectItem(mtp, "next_token") ? cJSON_GetObjectItem(mtp, "next_token")->valueint : -1;
        const char *lf = cJSON_GetStringValue(cJSON_GetObjectItem(mtp, "logits"));
        cJSON *pre = NULL;
        for (int si = 0; si < ns; si++) {
            cJSON *sc = cJSON_GetArrayItem(sch, si);
            const char *sn = cJSON_GetStringValue(cJSON_GetObjectItem(sc, "name"));
            if (sn && !strcmp(sn, "prefill")) pre = cJSON_GetObjectItem(sc, "calls");
        }
        size_t flen = 0;
        snprintf(path, sizeof path, "%s/%s", dir, lf ? lf : "mtp.f32");
        free(ref);
        ref = (float *)test_read_file(path, &flen);
        int ok = 1;
        if (!ref || flen != (size_t)V * sizeof(float)) { printf("FAIL %s/mtp: %s missing or wrong size\n", name, path); ok = 0; }
        else {
            dsv4_session_reset(s);
            int off = 0;
            int nc = pre ? cJSON_GetArraySize(pre) : 1;
            for (int ci = 0; ci < nc && ok; ci++) {
                int n = pre ? cJSON_GetArrayItem(pre, ci)->valueint : nt;
                if (dsv4_eval(s, tok + off, n, NULL, err, sizeof err)) { printf("FAIL %s/mtp: eval: %s\n", name, err); ok = 0; }
                off += n;
            }
            double md = 0;
            if (ok && dsv4_eval_mtp(s, next, lg, err, sizeof err)) { printf("FAIL %s/mtp: %s\n", name, err); ok = 0; }
            else if (ok) {
                char what[256];
                snprintf(what, sizeof what, "%s/mtp", name);
                ok = compare_row(what, lg, ref, V, tabs, trel, &md);
            }
            printf("%-24s %-20s           max abs diff %.3g  %s\n", name, "mtp", md, ok ? "ok" : "FAILED");
        }
        if (ok) n_pass++; else n_fail++;
    }
    /* API errors, once */
    if (!*api_done) {
        *api_done = 1;
        dsv4_session_reset(s);
        int32_t bad[2] = {tok[0], V};
        int rc = dsv4_eval(s, bad, 2, lg, err, sizeof err);
        EXPECT(rc == -1 && strstr(err, "index 1") && dsv4_session_pos(s) == 0, "bad token id not rejected properly: %s", err);
        bad[1] = -1;
        rc = dsv4_eval(s, bad, 2, lg, err, sizeof err);
        EXPECT(rc == -1, "negative token id accepted");
        int32_t *many = calloc((size_t)nt + 8, sizeof(int32_t));
        rc = dsv4_eval(s, many, nt + 5, lg, err, sizeof err);
        EXPECT(rc == -1 && strstr(err, "max_ctx"), "context overflow not rejected: %s", err);
        free(many);
        rc = dsv4_eval(s, tok, 1, lg, err, sizeof err);
        EXPECT(rc == 0 && dsv4_session_pos(s) == 1, "eval after errors failed: %s", err);
    }
done:
    free(lg); free(ref); free(tok);
    dsv4_session_free(s);
    dsv4_model_free(m);
    cJSON_Delete(g);
}

int main(int argc, char **argv) { return test_main_cases(argc, argv, "golden.json", run_case); }
