/* test_blocks — per-block goldens (tools/reference/make_block_goldens.py, tests/golden/<case>/blocks/).
 *
 * The model-level goldens (test_golden) need tolerances of 2-4% of max|logit| because FP8 activation
 * quantization amplifies 1-ulp differences across layers; these checks have no compounding: every block is
 * fed the reference (float64) input state and its output is compared with the reference output of that
 * block alone, with a tolerance of a few times the measured float32-vs-float64 noise of one block.
 *
 * For every tests/golden/<case>/blocks/manifest.json and every block listed (trunk layers and the MTP
 * block incl. its input projection), through the internal entry point dsv4_block_eval (src/model/model.h),
 * on a freshly reset session, for each schedule in the manifest ("one_call": all N tokens in one call;
 * "chunks": e.g. 5,37,1,1,64,19,1,1,3,rest — state carried across calls):
 *   rel_rms = RMS(c - r) / RMS(r) <= the block's tol_rel_rms (else tolerance.rel_rms),
 *   max|c - r| <= max_abs_ulps BF16 ulps of max|r|,
 *   and, where the block has "tol_median_tok": the median over tokens of RMS_t(c - r) / RMS(r) (RMS_t over the
 *   token's hc*D values) <= it. Float32 noise is sparse (the typical token is bit-identical, median 0) while a
 *   systematic BF16-ulp-sized bug (double rounding, truncated Sinkhorn, FP8 block size) moves every token.
 * The line also says how many tokens differ at all and the share of the squared error of the worst token
 * (noise is typically a few tokens; a structural bug touches most of them).
 * Prints one line per block and schedule with both numbers, a FAIL line per failed check, and ends with
 * "N passed, N failed". Without any manifest it prints SKIP and "0 passed, 0 failed".
 * Usage: test_blocks [golden_root=tests/golden]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "dsv4.h"
#include "model/model.h"
#include "testlib.h"

/* BF16 ulp of |v| (normal range). */
static double bf16_ulp(double v) {
    int e;
    frexp(v, &e);      /* v = f * 2^e, f in [0.5, 1) */
    return ldexp(1.0, e - 8);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int *int_array(cJSON *a, int *n) {
    *n = cJSON_IsArray(a) ? cJSON_GetArraySize(a) : 0;
    int *v = malloc(sizeof(int) * (*n + 1));
    for (int i = 0; i < *n; i++) v[i] = cJSON_GetArrayItem(a, i)->valueint;
    return v;
}

static void run_case(const char *root, const char *name, int *api_done) {
    char dir[1024], path[1300], err[512];
    cJSON *g;
    dsv4_model *m;
    if (test_open_case(root, name, "blocks/manifest.json", dir, sizeof dir, path, sizeof path, &g, &m)) return;
    dsv4_session *s = NULL;
    int *toks = NULL, *mtoks = NULL;
    int32_t *t32 = NULL, *m32 = NULL;
    float *xin = NULL, *xref = NULL, *x = NULL;
    double *tok_rel = NULL;
    int N = cJSON_GetNumberValue(cJSON_GetObjectItem(g, "n_tokens"));
    int hc = cJSON_GetNumberValue(cJSON_GetObjectItem(g, "hc")), D = cJSON_GetNumberValue(cJSON_GetObjectItem(g, "dim"));
    int nt = 0, nmt = 0;
    toks = int_array(cJSON_GetObjectItem(g, "tokens"), &nt);
    mtoks = int_array(cJSON_GetObjectItem(g, "mtp_tokens"), &nmt);
    cJSON *tol = cJSON_GetObjectItem(g, "tolerance"), *blocks = cJSON_GetObjectItem(g, "blocks");
    cJSON *sch = cJSON_GetObjectItem(g, "schedules");
    double tol_case = cJSON_GetNumberValue(cJSON_GetObjectItem(tol, "rel_rms"));
    double ulps = cJSON_GetNumberValue(cJSON_GetObjectItem(tol, "max_abs_ulps"));
    if (N < 1 || nt != N || hc != m->cfg.hc_mult || D != m->cfg.dim || !cJSON_IsArray(blocks) || !cJSON_IsObject(sch) ||
        isnan(tol_case) || isnan(ulps)) {
        test_fail("%s: manifest %s inconsistent with the model or incomplete", name, path);
        goto done;
    }
    size_t cnt = (size_t)N * hc * D;
    t32 = malloc(sizeof(int32_t) * N);
    m32 = malloc(sizeof(int32_t) * N);
    for (int i = 0; i < N; i++) { t32[i] = toks[i]; m32[i] = i < nmt ? mtoks[i] : 0; }
    if (dsv4_session_open(&s, m, N + 4, err, sizeof err)) { test_fail("%s: session: %s", name, err); goto done; }
    x = malloc(cnt * sizeof(float));
    tok_rel = malloc(sizeof(double) * N);
    int nb = cJSON_GetArraySize(blocks);
    for (int bi = 0; bi < nb; bi++) {
        cJSON *b = cJSON_GetArrayItem(blocks, bi);
        int layer = cJSON_GetObjectItem(b, "layer")->valueint;
        const char *kind = cJSON_GetStringValue(cJSON_GetObjectItem(b, "kind"));
        const char *fin = cJSON_GetStringValue(cJSON_GetObjectItem(b, "in"));
        const char *fout = cJSON_GetStringValue(cJSON_GetObjectItem(b, "out"));
        int is_mtp = kind && !strcmp(kind, "mtp");
        if (!kind || !fin || !fout) { test_fail("%s: block malformed", name); continue; }
        if (is_mtp && nmt != N) { test_fail("%s: mtp_tokens missing", name); continue; }
        free(xin); free(xref);
        snprintf(path, sizeof path, "%s/blocks/%s", dir, fin);
        xin = test_read_bf16(path, cnt);
        snprintf(path, sizeof path, "%s/blocks/%s", dir, fout);
        xref = test_read_bf16(path, cnt);
        if (!xin || !xref) { test_fail("%s: %s missing or of the wrong size", name, !xin ? fin : fout); continue; }
        double rr = 0, mr = 0;
        for (size_t i = 0; i < cnt; i++) { rr += (double)xref[i] * xref[i]; if (fabs(xref[i]) > mr) mr = fabs(xref[i]); }
        rr = sqrt(rr / (double)cnt);
        double tol_abs = ulps * bf16_ulp(mr);
        double tol_rms = cJSON_GetNumberValue(cJSON_GetObjectItem(b, "tol_rel_rms"));   /* per block, else per case */
        if (isnan(tol_rms)) tol_rms = tol_case;
        /* median over tokens of the token's relative RMS error: only where the manifest has it (NaN = not checked) */
        double tol_med = cJSON_GetNumberValue(cJSON_GetObjectItem(b, "tol_median_tok"));
        cJSON *sc;
        cJSON_ArrayForEach(sc, sch) {
            int nc = 0;
            int *calls = int_array(sc, &nc);
            memcpy(x, xin, cnt * sizeof(float));
            dsv4_session_reset(s);
            int off = 0, ok = 1;
            for (int ci = 0; ci < nc && ok; ci++) {
                if (calls[ci] < 1 || off + calls[ci] > N) { ok = 0; test_fail("%s/%s: schedule call out of range", name, sc->string); break; }
                if (dsv4_block_eval(s, layer, x + (size_t)off * hc * D, (is_mtp ? m32 : t32) + off, calls[ci], off, err,
                                    sizeof err)) {
                    ok = 0;
                    test_fail("%s: dsv4_block_eval: %s", name, err);
                }
                off += calls[ci];
            }
            free(calls);
            if (!ok) continue;
            if (off != N) { test_fail("%s/%s: schedule does not cover n_tokens", name, sc->string); continue; }
            double se = 0, md = 0;
            int nan = 0, ntok_diff = 0, worst_tok = 0;
            double worst_te = 0;
            size_t row = (size_t)hc * D;
            for (int t = 0; t < N; t++) {
                double te = 0;
                for (size_t i = (size_t)t * row; i < (size_t)(t + 1) * row; i++) {
                    double d = (double)x[i] - xref[i];
                    if (isnan(d)) nan = 1;
                    te += d * d;
                    if (fabs(d) > md) md = fabs(d);
                }
                se += te;
                tok_rel[t] = sqrt(te / (double)row) / rr;
                if (te > 0) ntok_diff++;
                if (te > worst_te) { worst_te = te; worst_tok = t; }
            }
            double rel = sqrt(se / (double)cnt) / rr;
            qsort(tok_rel, (size_t)N, sizeof(double), cmp_double);
            double med = N % 2 ? tok_rel[N / 2] : 0.5 * (tok_rel[N / 2 - 1] + tok_rel[N / 2]);
            int pass = !nan && rel <= tol_rms && md <= tol_abs && (isnan(tol_med) || med <= tol_med);
            char medtxt[80] = "";
            if (!isnan(tol_med)) snprintf(medtxt, sizeof medtxt, "  median_tok %.3e (tol %.2e)", med, tol_med);
            printf("%-8s block %d %-6s %-9s rel_rms %.3e (tol %.2e)  max_abs %.3e (tol %.3e)%s  tokens differing %3d/%d, "
                   "worst %3d (%4.1f%% of the error)  %s\n", name, layer, kind, sc->string, rel, tol_rms, md, tol_abs, medtxt,
                   ntok_diff, N, worst_tok, se > 0 ? 100.0 * worst_te / se : 0.0, pass ? "ok" : "FAILED");
            EXPECT(pass, "%s block %d (%s) %s: rel_rms %.3e (tol %.2e), max_abs %.3e (tol %.3e)%s%s%s", name, layer, kind,
                   sc->string, rel, tol_rms, md, tol_abs, medtxt[0] ? "," : "", medtxt[0] ? medtxt + 1 : "", nan ? ", NaN" : "");
        }
    }
    /* API errors of the entry point, once */
    if (!*api_done) {
        *api_done = 1;
        dsv4_session_reset(s);
        int ok = dsv4_block_eval(s, m->n_blocks, x, t32, 1, 0, err, sizeof err) == -1 && strstr(err, "layer");
        EXPECT(ok, "%s: bad layer not rejected: %s", name, err);
        t32[0] = m->cfg.vocab_size;
        ok = dsv4_block_eval(s, 0, x, t32, 1, 0, err, sizeof err) == -1 && strstr(err, "token id");
        t32[0] = toks[0];
        EXPECT(ok, "%s: bad token not rejected: %s", name, err);
        ok = dsv4_block_eval(s, 0, x, t32, 2, N + 3, err, sizeof err) == -1 && strstr(err, "max_ctx");
        EXPECT(ok, "%s: overflow not rejected: %s", name, err);
    }
done:
    free(toks); free(mtoks); free(t32); free(m32); free(xin); free(xref); free(x); free(tok_rel);
    dsv4_session_free(s);
    dsv4_model_free(m);
    cJSON_Delete(g);
}

int main(int argc, char **argv) { return test_main_cases(argc, argv, "blocks/manifest.json", run_case); }
