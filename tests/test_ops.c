/* tests/test_ops.c — every kernels.h primitive against the per-operation vectors produced by the PyTorch
 * reference (tools/reference/gen_op_goldens.py -> tests/golden/ops/manifest.json + raw LE f32 .bin files;
 * format in tools/reference/README.md "Per-operation vectors"). Run from the repository root.
 *
 * Pass criterion per case:
 *  - format conversions, quantization simulations and the RoPE frequency table must match EXACTLY (value
 *    equality, NaN matches NaN), whatever tol_abs the manifest states: these are defined bit-for-bit;
 *  - hadamard, rmsnorm, softmax, sinkhorn and rope use the manifest's tol_abs: their results depend on the
 *    F32 summation order (hadamard butterfly vs matrix product, torch's reduction order for mean/sum) or
 *    on cos/sin evaluation (at positions up to 2^20 the F32 angle is formed exactly as the reference does,
 *    but the reference evaluates cos/sin in double and may land on the other side of a BF16 rounding
 *    boundary), so one BF16 ulp of max|out| (or the stated absolute bound) is allowed.
 *    Measured when written: hadamard, rmsnorm_w and all four rope cases (positions to 2^20-1) are in fact
 *    bit-exact; rmsnorm_plain 2.4e-7, softmax 2.1e-7, sinkhorn 1.2e-7 max |diff|.
 * One line per failed case; ends with "N passed, N failed"; exits non-zero on failure.
 */
#include "kernels/kernels.h"
#include "base/util.h"
#include "testlib.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIR "tests/golden/ops/"

/* Reads DIR/fname, which must hold exactly `count` little-endian f32 values. NULL on error. */
static float *read_f32(const char *fname, int count) {
    char path[512];
    snprintf(path, sizeof path, DIR "%s", fname);
    return test_read_f32(path, (size_t)count);
}

static double num(const cJSON *params, const char *key, double dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, key);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

/* Computes the op into out[expected_count]; returns 0, or -1 (message in err) for an unusable case. */
static int run_op(const char *op, const cJSON *params, float **in, const int *in_n, int n_in, float *out, int n_out,
                  char *err, size_t errlen) {
    int rows = (int)num(params, "rows", 1);
#define NEED(k, cond) \
    if (n_in < (k) || !(cond)) return dsv4_fail(err, errlen, "unexpected inputs/params for op %s", op)
    if (!strcmp(op, "e4m3_encode")) {
        NEED(1, in_n[0] == n_out);
        for (int i = 0; i < n_out; i++) out[i] = (float)dsv4_f32_to_e4m3(in[0][i]);
    } else if (!strcmp(op, "e4m3_round")) {
        NEED(1, in_n[0] == n_out);
        for (int i = 0; i < n_out; i++) out[i] = dsv4_round_e4m3(in[0][i]);
    } else if (!strcmp(op, "e4m3_decode") || !strcmp(op, "e8m0_decode") || !strcmp(op, "e2m1_decode")) {
        NEED(1, in_n[0] == n_out);
        for (int i = 0; i < n_out; i++) {
            float c = in[0][i];
            if (!(c >= 0 && c <= 255 && c == floorf(c))) return dsv4_fail(err, errlen, "code %g is not a byte", c);
            uint8_t b = (uint8_t)c;
            out[i] = op[1] == '4' ? dsv4_e4m3_to_f32(b) : op[1] == '8' ? dsv4_e8m0_to_f32(b) : dsv4_e2m1_to_f32(b);
        }
    } else if (!strcmp(op, "e2m1_round")) {
        NEED(1, in_n[0] == n_out);
        for (int i = 0; i < n_out; i++) out[i] = dsv4_round_e2m1(in[0][i]);
    } else if (!strcmp(op, "bf16_round")) {
        NEED(1, in_n[0] == n_out);
        for (int i = 0; i < n_out; i++) out[i] = dsv4_round_bf16(in[0][i]);
    } else if (!strcmp(op, "fp8_sim") || !strcmp(op, "fp4_sim")) {
        int n = (int)num(params, "n", 0), block = (int)num(params, "block", 0);
        NEED(1, n > 0 && block > 0 && in_n[0] == rows * n && n_out == rows * n);
        memcpy(out, in[0], (size_t)n_out * sizeof(float));
        for (int r = 0; r < rows; r++) {
            if (op[2] == '8') dsv4_fp8_sim(out + (size_t)r * n, n, block);
            else dsv4_fp4_sim(out + (size_t)r * n, n, block);
        }
    } else if (!strcmp(op, "hadamard")) {
        int m = (int)num(params, "m", 0);
        NEED(1, m > 0 && (m & (m - 1)) == 0 && in_n[0] == rows * m && n_out == rows * m);
        memcpy(out, in[0], (size_t)n_out * sizeof(float));
        for (int r = 0; r < rows; r++) dsv4_hadamard(out + (size_t)r * m, m);
    } else if (!strcmp(op, "rmsnorm")) {
        int n = (int)num(params, "n", 0), weighted = (int)num(params, "weighted", 0);
        NEED(1 + weighted, n > 0 && in_n[0] == rows * n && n_out == rows * n && (!weighted || in_n[1] == n));
        for (int r = 0; r < rows; r++)
            dsv4_rmsnorm(out + (size_t)r * n, in[0] + (size_t)r * n, weighted ? in[1] : NULL, n,
                         (float)num(params, "eps", 1e-6), (int)num(params, "round_bf16", 0));
    } else if (!strcmp(op, "head_rms_bf16")) {
        int n = (int)num(params, "n", 0);
        NEED(1, n > 0 && in_n[0] == rows * n && n_out == rows * n);
        memcpy(out, in[0], (size_t)n_out * sizeof(float));
        for (int r = 0; r < rows; r++) dsv4_head_rms_bf16(out + (size_t)r * n, n, (float)num(params, "eps", 1e-6));
    } else if (!strcmp(op, "softmax")) {
        int n = (int)num(params, "n", 0);
        NEED(1, n > 0 && in_n[0] == rows * n && n_out == rows * n);
        memcpy(out, in[0], (size_t)n_out * sizeof(float));
        for (int r = 0; r < rows; r++) dsv4_softmax(out + (size_t)r * n, n);
    } else if (!strcmp(op, "sinkhorn")) {
        int hc = (int)num(params, "hc", 4), iters = (int)num(params, "iters", 20);
        NEED(1, hc > 0 && in_n[0] == rows * hc * hc && n_out == rows * hc * hc);
        memcpy(out, in[0], (size_t)n_out * sizeof(float));
        for (int r = 0; r < rows; r++)
            dsv4_sinkhorn(out + (size_t)r * hc * hc, hc, iters, (float)num(params, "eps", 1e-6));
    } else if (!strcmp(op, "rope_freqs") || !strcmp(op, "rope")) {
        int rd = (int)num(params, "rope_dim", 64);
        NEED(0, rd > 0 && rd <= 1024 && rd % 2 == 0);
        float f[512];
        dsv4_rope_freqs(f, rd, (float)num(params, "theta", 10000), (int)num(params, "yarn", 0),
                        (float)num(params, "factor", 1), (int)num(params, "orig_len", 0),
                        (float)num(params, "beta_fast", 32), (float)num(params, "beta_slow", 1));
        if (op[4] == '_') {
            NEED(0, n_out == rd / 2);
            memcpy(out, f, (size_t)n_out * sizeof(float));
        } else {
            int inverse = (int)num(params, "inverse", 0);
            NEED(2, in_n[0] == rows * rd && in_n[1] == rows && n_out == rows * rd);
            memcpy(out, in[0], (size_t)n_out * sizeof(float));
            for (int r = 0; r < rows; r++) {
                float p = in[1][r];
                if (!(p >= 0 && p == floorf(p))) return dsv4_fail(err, errlen, "position %g not an integer", p);
                dsv4_rope(out + (size_t)r * rd, rd, f, (int64_t)p, inverse);
            }
        }
    } else {
        return dsv4_fail(err, errlen, "no C binding for op '%s' (update tests/test_ops.c)", op);
    }
#undef NEED
    return 0;
}

/* ops whose result is defined bit-for-bit: compared exactly regardless of tol_abs */
static int exact_op(const char *op) {
    static const char *ex[] = {"e4m3_encode", "e4m3_round", "e4m3_decode", "e8m0_decode", "e2m1_decode",
                               "e2m1_round", "bf16_round", "fp8_sim", "fp4_sim", "rope_freqs"};
    for (size_t i = 0; i < sizeof ex / sizeof ex[0]; i++)
        if (!strcmp(op, ex[i])) return 1;
    return 0;
}

static void run_case(const cJSON *c) {
    const cJSON *jname = cJSON_GetObjectItemCaseSensitive(c, "name");
    const cJSON *jop = cJSON_GetObjectItemCaseSensitive(c, "op");
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(c, "params");
    const cJSON *inputs = cJSON_GetObjectItemCaseSensitive(c, "inputs");
    const cJSON *counts = cJSON_GetObjectItemCaseSensitive(c, "input_counts");
    const cJSON *jexp = cJSON_GetObjectItemCaseSensitive(c, "expected");
    const char *name = cJSON_IsString(jname) ? jname->valuestring : "?";
    if (!cJSON_IsString(jop) || !cJSON_IsArray(inputs) || !cJSON_IsArray(counts) || !cJSON_IsString(jexp) ||
        cJSON_GetArraySize(inputs) != cJSON_GetArraySize(counts) || cJSON_GetArraySize(inputs) > 8) {
        test_fail("ops/%s: malformed manifest entry", name);
        return;
    }
    const char *op = jop->valuestring;
    int n_out = (int)num(c, "expected_count", -1), n_in = cJSON_GetArraySize(inputs);
    double tol = num(c, "tol_abs", 0.0);
    int exact = exact_op(op);
    if (exact) tol = 0.0;
    float *in[8] = {0};
    int in_n[8] = {0};
    float *exp = NULL, *out = NULL;
    for (int i = 0; i < n_in; i++) {
        const cJSON *f = cJSON_GetArrayItem(inputs, i), *k = cJSON_GetArrayItem(counts, i);
        in_n[i] = cJSON_IsNumber(k) ? k->valueint : -1;
        if (!cJSON_IsString(f) || in_n[i] < 0 || !(in[i] = read_f32(f->valuestring, in_n[i]))) {
            test_fail("ops/%s: cannot read input %d (%s, %d floats)", name, i, cJSON_IsString(f) ? f->valuestring : "?",
                      in_n[i]);
            goto done;
        }
    }
    if (n_out < 0 || !(exp = read_f32(jexp->valuestring, n_out))) {
        test_fail("ops/%s: cannot read expected %s (%d floats)", name, jexp->valuestring, n_out);
        goto done;
    }
    out = calloc((size_t)(n_out > 0 ? n_out : 1), sizeof(float));
    char err[256];
    if (run_op(op, params, in, in_n, n_in, out, n_out, err, sizeof err)) {
        test_fail("ops/%s: %s", name, err);
        goto done;
    }
    int bad = 0, first = -1;
    double maxd = 0;
    for (int i = 0; i < n_out; i++) {
        float e = exp[i], g = out[i];
        int ok;
        if (isnan(e) || isnan(g)) ok = isnan(e) && isnan(g);
        else {
            double d = fabs((double)g - (double)e);
            if (d > maxd) maxd = d;
            ok = exact ? g == e : d <= tol;
        }
        if (!ok) { bad++; if (first < 0) first = i; }
    }
    EXPECT(!bad, "ops/%s: op %s: %d of %d values off (%s tol %g); first [%d] got %.9g want %.9g; max |diff| %g", name,
           op, bad, n_out, exact ? "exact," : "", tol, first, out[first], exp[first], maxd);
done:
    for (int i = 0; i < n_in; i++) free(in[i]);
    free(exp);
    free(out);
}

int main(void) {
    char *text = test_read_file(DIR "manifest.json", NULL);
    if (!text) {
        test_fail("ops: " DIR "manifest.json not found (run from the repository root; regenerate with "
                  "tools/reference/gen_op_goldens.py)");
        return test_done();
    }
    cJSON *root = cJSON_Parse(text);
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(root, "cases");
    if (!cJSON_IsArray(cases) || cJSON_GetArraySize(cases) == 0) {
        test_fail("ops: " DIR "manifest.json: no \"cases\" array");
        cJSON_Delete(root);
        free(text);
        return test_done();
    }
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) run_case(c);
    cJSON_Delete(root);
    free(text);
    return test_done();
}
