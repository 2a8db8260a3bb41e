/* test_nano_golden — the trained nano model (models/nano) on held-out text vs the float64 reference
 * (tools/reference/make_nano_goldens.py, tests/golden/nano/heldout.json + logits.f32).
 *
 * The tiny random checkpoints of test_golden / test_blocks have shaped weights and token sequences drawn for
 * clear decision margins; the trained model has real weights (mHC comb logits that need all 20 Sinkhorn
 * iterations, close router / indexer calls on real text), so it shows numeric bugs those cases barely see.
 *
 * For each schedule of heldout.json (chunk lengths; "prefill" [N], "decode" [1]*N, "chunks"), on a fresh
 * session: the logits of the last position p of every call are compared with row p of logits.f32, per row
 *   e = RMS over the vocab of (c - r).
 * Float32 rounding noise is event-driven (rows are bit-identical until a flip enters a shared state, then
 * perturbed), so the checks are statistics over rows (tolerances from the float32 reference's noise over its
 * perturbed rows, see heldout.json "tolerance.why"):
 *   schedules with >= tolerance.min_rows_stats rows: median(e) <= tolerance.median_row_rms and
 *   p90(e) <= tolerance.p90_row_rms (percentiles with numpy's linear interpolation);
 *   every row: e <= tolerance.gross_rel * RMS(r)   (gross errors only: real-text close calls go either way).
 * Prints one line per schedule (rows, median, p90, max e, argmax agreement — informational), one FAIL line per
 * failed check, and ends with "N passed, N failed". Without tests/golden/nano/heldout.json it prints SKIP.
 * Usage: test_nano_golden [golden_root=tests/golden]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "dsv4.h"
#include "testlib.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* q-th quantile (0..1) of v[0..n-1] with numpy's default (linear) interpolation; sorts v. */
static double quantile(double *v, int n, double q) {
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    double h = (n - 1) * q;
    int lo = (int)floor(h);
    if (lo >= n - 1) return v[n - 1];
    return v[lo] + (h - lo) * (v[lo + 1] - v[lo]);
}

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++) if (x[i] > x[b]) b = i;
    return b;
}

static double num(cJSON *o, const char *k) { return cJSON_GetNumberValue(cJSON_GetObjectItem(o, k)); }

int main(int argc, char **argv) {
    const char *root = argc > 1 ? argv[1] : "tests/golden";
    char path[1200], err[512];
    snprintf(path, sizeof path, "%s/nano/heldout.json", root);
    char *js = test_read_file(path, NULL);
    if (!js) {
        printf("SKIP: no %s\n", path);
        return test_done();
    }
    cJSON *g = cJSON_Parse(js);
    free(js);
    if (!g) { test_fail("%s: invalid JSON", path); return test_done(); }
    const char *mdir = cJSON_GetStringValue(cJSON_GetObjectItem(g, "model"));
    const char *lf = cJSON_GetStringValue(cJSON_GetObjectItem(g, "logits"));
    cJSON *jt = cJSON_GetObjectItem(g, "tokens"), *sch = cJSON_GetObjectItem(g, "schedules");
    cJSON *tol = cJSON_GetObjectItem(g, "tolerance");
    double t_med = num(tol, "median_row_rms"), t_p90 = num(tol, "p90_row_rms"), gross = num(tol, "gross_rel");
    double min_rows = num(tol, "min_rows_stats");
    dsv4_model *m = NULL;
    dsv4_session *s = NULL;
    float *ref = NULL, *lg = NULL;
    int32_t *tok = NULL;
    double *e = NULL, *e2 = NULL;
    if (!mdir || !lf || !cJSON_IsArray(jt) || !cJSON_IsArray(sch) || isnan(t_med) || isnan(t_p90) || isnan(gross) ||
        isnan(min_rows)) {
        test_fail("%s: model, logits, tokens, schedules or tolerance missing", path);
        goto done;
    }
    if (dsv4_model_load(&m, mdir, err, sizeof err)) { test_fail("nano: load %s: %s", mdir, err); goto done; }
    dsv4_model_info info;
    dsv4_model_get_info(m, &info);
    int V = info.vocab_size, N = cJSON_GetArraySize(jt);
    tok = malloc(sizeof(int32_t) * (size_t)N);
    for (int i = 0; i < N; i++) tok[i] = (int32_t)cJSON_GetArrayItem(jt, i)->valueint;
    snprintf(path, sizeof path, "%s/nano/%s", root, lf);
    ref = test_read_f32(path, (size_t)N * V);
    if (!ref) { test_fail("%s missing or not %d x %d float32", path, N, V); goto done; }
    if (dsv4_session_open(&s, m, N, err, sizeof err)) { test_fail("nano: session: %s", err); goto done; }
    lg = malloc(sizeof(float) * (size_t)V);
    e = malloc(sizeof(double) * (size_t)N);
    e2 = malloc(sizeof(double) * (size_t)N);
    cJSON *sc;
    cJSON_ArrayForEach(sc, sch) {
        const char *sname = cJSON_GetStringValue(cJSON_GetObjectItem(sc, "name"));
        cJSON *calls = cJSON_GetObjectItem(sc, "calls");
        if (!sname || !cJSON_IsArray(calls)) { test_fail("nano: schedule malformed"); continue; }
        dsv4_session_reset(s);
        int nc = cJSON_GetArraySize(calls), off = 0, ok = 1, nrow = 0, agree = 0, gross_bad = 0;
        double emax = 0;
        int emax_pos = -1;
        for (int ci = 0; ci < nc; ci++) {
            int n = cJSON_GetArrayItem(calls, ci)->valueint;
            if (n < 1 || off + n > N) { test_fail("nano/%s: call %d length %d out of range", sname, ci, n); ok = 0; break; }
            if (dsv4_eval(s, tok + off, n, lg, err, sizeof err)) { test_fail("nano/%s: eval: %s", sname, err); ok = 0; break; }
            off += n;
            const float *r = ref + (size_t)(off - 1) * V;
            double se = 0, sr = 0;
            for (int v = 0; v < V; v++) {
                double d = (double)lg[v] - r[v];
                se += d * d;
                sr += (double)r[v] * r[v];
            }
            double er = sqrt(se / V);
            if (!(er <= gross * sqrt(sr / V))) {   /* NaN fails too */
                if (gross_bad++ < 5)
                    printf("FAIL nano/%s: position %d: row error %.4g > %.2f x RMS(golden row) = %.4g\n", sname, off - 1, er,
                           gross, gross * sqrt(sr / V));
            }
            if (!(er <= emax)) { emax = er; emax_pos = off - 1; }
            agree += argmax(lg, V) == argmax(r, V);
            e[nrow++] = er;
        }
        if (!ok) continue;
        EXPECT(gross_bad == 0, "nano/%s: %d rows beyond the gross bound", sname, gross_bad);
        char stat[200] = "";
        if (nrow >= min_rows) {
            memcpy(e2, e, sizeof(double) * (size_t)nrow);
            double med = quantile(e2, nrow, 0.5), p90 = quantile(e2, nrow, 0.9);
            snprintf(stat, sizeof stat, "median e %.4f (tol %.4f)  p90 e %.4f (tol %.4f)", med, t_med, p90, t_p90);
            EXPECT(med <= t_med, "nano/%s: median row error %.4g > tol %.4g (%.2fx)", sname, med, t_med, med / t_med);
            EXPECT(p90 <= t_p90, "nano/%s: p90 row error %.4g > tol %.4g (%.2fx)", sname, p90, t_p90, p90 / t_p90);
        } else {
            snprintf(stat, sizeof stat, "(%d row%s: gross bound only)", nrow, nrow == 1 ? "" : "s");
        }
        printf("nano %-8s rows %3d  %s  max e %.4f (pos %d)  argmax agree %d/%d\n", sname, nrow, stat, emax, emax_pos, agree,
               nrow);
    }
done:
    free(e); free(e2); free(lg); free(ref); free(tok);
    dsv4_session_free(s);
    dsv4_model_free(m);
    cJSON_Delete(g);
    return test_done();
}
