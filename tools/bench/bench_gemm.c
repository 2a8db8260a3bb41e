/* tools/bench/bench_gemm.c — multi-token dsv4_linear speed vs the instruction peak (issue 6 item 5; `make bench-gemm`).
 *
 *   bench_gemm [-t LIST] [--tokens LIST] [--fmt LIST] [--shapes LIST] [--kernel PATH] [--min-s S] [--multi K]
 *              [--misalign B] [--csv FILE]
 *
 * For every thread count of -t (default 1,2), format (fp8, fp4, bf16; also fp8_32 and fp8_32bf16), shape ROWSxCOLS
 * (default 2048x4096 = w1/w3, 4096x2048 = w2, 1024x4096 = wq_a; [out, in]) and token count (default 32,128,512):
 * random weights in memory (FP8: E4M3 codes of every finite value with 128x128 E8M0 scales near 2^-8; fp8_32: the
 * same codes with V4.1's 32x32 tiles, read in place (DSV4_W_FP8_32); fp8_32bf16: those weights dequantized to BF16
 * (what the loader did before dsv4_linear read 32-tiles: twice the bytes); FP4: random E2M1 nibbles with per-32
 * scales; BF16: values of std 1/sqrt(cols)), random BF16 activations, then dsv4_linear(out, w, x, tokens, 0)
 * repeated for at least --min-s seconds (default 0.3), best of 3: GMAC/s = rows x cols x tokens / time, and GB/s =
 * the weight's bytes (codes + scales) read per call / time (the decode measure: a 1-token call streams its weight).
 *
 * The peak, measured in the same run with the same thread count (dsv4_arith_peak, src/kernels/peak.c: one pthread
 * per thread, all at once): VDPBF16PS (AVX-512 BF16; 32 multiply-adds per instruction) in a loop of 24 independent
 * accumulator chains, and the 8-lane F32 FMA (the avx2 path's step: 8 multiply-adds per instruction) in 12 chains. The ratio column divides the
 * achieved rate by the peak of the arithmetic the selected path uses (avx512: VDPBF16PS, avx2: FMA, scalar: FMA).
 * The machine may be shared: besides wall-clock rates the table gives rates per CPU-second (multiply-adds / (process
 * CPU time / threads), for the peak loops and dsv4_linear alike), which leave out the time the threads were not
 * running; the pool's workers spin briefly between calls, which counts as CPU time (so that ratio is a lower bound).
 * --multi K: each call is one dsv4_linear_multi over K distinct matrices of the shape with one input (a decode step's
 * MoE products), the calls cycling through 768 MiB of matrices: the weights come from DRAM, as in a model, not from
 * a cache still holding them (a single 2,048 x 4,096 matrix does fit this machine's L3). --misalign B (0-63): the
 * codes start B bytes past a 64-byte line (a checkpoint's tensors are not aligned; docs/performance.md); BF16
 * weights take B rounded down to even.
 * Output: a table on stdout; with --csv one line per value:
 * kernel,threads,fmt,rows,cols,tokens,gmacs,ratio,cpu_gmacs,cpu_ratio,gbs,cpu_gbs.
 */
#include "dsv4.h"
#include "kernels/kernels.h"
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "kernels/quant_v41.h"

/* ------------------------------------------------------------------ weights */
/* Weights and scales from dsv4_huge_alloc (2 MiB pages where the kernel allows, as the model's mapped checkpoint is
 * once the page cache holds it in large folios: docs/performance.md, "Huge pages"), so that TLB misses do not show
 * as kernel speed. data_n / scale_n: their allocated sizes (owned_free). */
/* --misalign B: weights start B bytes past a 64-byte boundary (as in a checkpoint whose tensors are not aligned in
 * the file: safetensors only pads its header to 8 bytes) */
static int g_misalign;
typedef struct { dsv4_wview w; void *data; uint8_t *scale; size_t bytes, data_n, scale_n; } owned;
static void owned_free(owned *o) {
    dsv4_huge_free(o->data, o->data_n);
    dsv4_huge_free(o->scale, o->scale_n);
}

/* fmt; as_bf16: an FP8_32 weight dequantized to BF16 (the former load-time copy) */
static owned make_w(dsv4_wfmt fmt, int rows, int cols, int as_bf16) {
    owned o = {{fmt, rows, cols, NULL, NULL}, NULL, NULL, 0, 0, 0};
    size_t n = (size_t)rows * cols;
    if (fmt == DSV4_W_FP8_32) {
        uint8_t *d = dsv4_huge_alloc(o.data_n = n + 64);
        for (size_t i = 0; i < n; i++) { uint8_t b = (uint8_t)rnd(); d[i] = (b & 0x7f) == 0x7f ? 0x3c : b; }
        size_t ns = (size_t)((rows + 31) / 32) * ((cols + 31) / 32);
        o.scale = dsv4_huge_alloc(o.scale_n = ns);
        for (size_t i = 0; i < ns; i++) o.scale[i] = (uint8_t)(118 + rnd() % 3);
        o.data = d;
        o.bytes = n + ns;
        if (as_bf16) {
            uint16_t *b = dsv4_huge_alloc(n * 2);
            dsv4_fp8_tiles_to_bf16(d, o.scale, rows, cols, 32, b);
            owned_free(&o);
            o.data = b; o.data_n = n * 2; o.scale = NULL; o.scale_n = 0; o.w.fmt = DSV4_W_BF16; o.bytes = n * 2;
        }
    } else if (fmt == DSV4_W_BF16) {
        o.bytes = n * 2;
        uint16_t *d = dsv4_huge_alloc(o.data_n = n * 2 + 64);
        float s = 1.0f / (float)cols;
        for (size_t i = 0; i < n; i++) d[i] = bf16_of(unif() * 1.7f * s * 32.0f);
        o.data = d;
    } else if (fmt == DSV4_W_FP8) {
        uint8_t *d = dsv4_huge_alloc(o.data_n = n + 64);
        for (size_t i = 0; i < n; i++) { uint8_t b = (uint8_t)rnd(); d[i] = (b & 0x7f) == 0x7f ? 0x3c : b; }
        size_t ns = (size_t)((rows + 127) / 128) * ((cols + 127) / 128);
        o.scale = dsv4_huge_alloc(o.scale_n = ns);
        for (size_t i = 0; i < ns; i++) o.scale[i] = (uint8_t)(118 + rnd() % 3);
        o.data = d;
        o.bytes = n + ns;
    } else {
        uint8_t *d = dsv4_huge_alloc(o.data_n = n / 2 + 64);
        for (size_t i = 0; i < n / 2; i++) d[i] = (uint8_t)rnd();
        size_t ns = (size_t)rows * (cols / 32);
        o.scale = dsv4_huge_alloc(o.scale_n = ns);
        for (size_t i = 0; i < ns; i++) o.scale[i] = (uint8_t)(118 + rnd() % 3);
        o.data = d;
        o.bytes = n / 2 + ns;
    }
    o.w.data = (uint8_t *)o.data + (o.w.fmt == DSV4_W_BF16 ? g_misalign & ~1 : g_misalign);   /* BF16: even */
    o.w.scale = o.scale;
    return o;
}

/* --multi K: K distinct matrices of one shape per dsv4_linear_multi call (one input, as a decode step's MoE
 * products), the calls cycling through at least DSV4_BENCH_MULTI_BYTES of matrices so that every call reads its
 * weights from DRAM, not from a cache that still holds them from the last call. */
#define DSV4_BENCH_MULTI_BYTES ((size_t)768 << 20)
static void bench_multi(dsv4_wfmt fmt, int rows, int cols, int as_bf16, int K, const int *tok, int ntok, const float *x,
                        float *out, float *scratch, double min_s, int T, double peak, int flen, const char *fname,
                        const char *path, FILE *cf) {
    owned first = make_w(fmt, rows, cols, as_bf16);
    size_t m = (DSV4_BENCH_MULTI_BYTES + first.bytes - 1) / first.bytes;
    m = (m + (size_t)K - 1) / (size_t)K * (size_t)K;
    owned *o = malloc(m * sizeof *o);
    o[0] = first;
    for (size_t i = 1; i < m; i++) o[i] = make_w(fmt, rows, cols, as_bf16);
    for (int k = 0; k < ntok; k++) {
        int n = tok[k];
        double macs = (double)rows * cols * n * K, best = 0;
        size_t next = 0;
        int reps = 1;
        for (int trial = 0; trial < 5; trial++) {
            double t0 = now();
            for (int r = 0; r < reps; r++) {
                dsv4_linear_op op[DSV4_LINEAR_MULTI_MAX];
                for (int j = 0; j < K; j++)
                    op[j] = (dsv4_linear_op){out + (size_t)j * n * rows, &o[next + (size_t)j].w, x, n, 0};
                next = (next + (size_t)K) % m;
                dsv4_linear_multi(op, K, scratch);
            }
            double dt = now() - t0;
            if (trial == 0) { reps = (int)(min_s / dt) + 1; continue; }
            if (macs * reps / dt > best) best = macs * reps / dt;
        }
        const double gbs = best / macs * (double)first.bytes * K / 1e9;
        printf("  %-10.*s %4dx%-5d %6d %10.1f %7.3f %10s %7s %8.2f %8s  (%d per call, %zu matrices)\n", flen, fname, rows,
               cols, n, best / 1e9, peak > 0 ? best / peak : 0, "-", "-", gbs, "-", K, m);
        fflush(stdout);
        if (cf)
            fprintf(cf, "%s,%d,%.*s,%d,%d,%d,%.3f,%.4f,,,%.3f,\n", path, T, flen, fname, rows, cols, n, best / 1e9,
                    peak > 0 ? best / peak : 0, gbs);
    }
    for (size_t i = 0; i < m; i++) owned_free(&o[i]);
    free(o);
}

static int parse_list(const char *s, int *v, int max) {
    int n = 0;
    while (*s && n < max) {
        char *e;
        long x = strtol(s, &e, 10);
        if (e == s || x <= 0) return -1;
        v[n++] = (int)x;
        s = *e == ',' ? e + 1 : e;
        if (*e && *e != ',') return -1;
    }
    return n;
}

int main(int argc, char **argv) {
    int thr[8] = {1, 2}, nthr = 2, tok[8] = {32, 128, 512}, ntok = 3;
    int shapes[8][2] = {{2048, 4096}, {4096, 2048}, {1024, 4096}}, nshape = 3;
    const char *fmts = "fp8,fp4,bf16", *kernel = NULL, *csv = NULL;
    double min_s = 0.3;
    int multi = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: bench_gemm [-t LIST] [--tokens LIST] [--fmt fp8,fp4,bf16,fp8_32,fp8_32bf16] [--shapes RxC,...] "
                   "[--kernel PATH] [--min-s S] [--multi K] [--misalign B] [--csv FILE]\n");
            return 0;
        }
        if (!v) { fprintf(stderr, "bench_gemm: %s needs a value\n", a); return 2; }
        i++;
        if (!strcmp(a, "-t")) { if ((nthr = parse_list(v, thr, 8)) <= 0) goto bad; }
        else if (!strcmp(a, "--tokens")) { if ((ntok = parse_list(v, tok, 8)) <= 0) goto bad; }
        else if (!strcmp(a, "--fmt")) fmts = v;
        else if (!strcmp(a, "--kernel")) kernel = v;
        else if (!strcmp(a, "--csv")) csv = v;
        else if (!strcmp(a, "--min-s")) { min_s = atof(v); if (min_s <= 0) goto bad; }
        else if (!strcmp(a, "--misalign")) { g_misalign = atoi(v); if (g_misalign < 0 || g_misalign > 63) goto bad; }
        else if (!strcmp(a, "--multi")) { multi = atoi(v); if (multi <= 0 || multi > DSV4_LINEAR_MULTI_MAX) goto bad; }
        else if (!strcmp(a, "--shapes")) {
            nshape = 0;
            const char *s = v;
            while (*s && nshape < 8) {
                int r, c, k;
                if (sscanf(s, "%dx%d%n", &r, &c, &k) != 2 || r <= 0 || c <= 0 || c % 128) goto bad;
                shapes[nshape][0] = r; shapes[nshape][1] = c; nshape++;
                s += k;
                if (*s == ',') s++; else if (*s) goto bad;
            }
        } else {
            fprintf(stderr, "bench_gemm: unknown option %s\n", a);
            return 2;
        }
        continue;
    bad:
        fprintf(stderr, "bench_gemm: bad value for %s: '%s'\n", a, v);
        return 2;
    }
    char err[256];
    if (kernel && dsv4_set_kernel_path(kernel, err, sizeof err) != 0) { fprintf(stderr, "bench_gemm: %s\n", err); return 1; }
    const char *path = dsv4_get_kernel_path();
    FILE *cf = csv ? fopen(csv, "a") : NULL;
    if (csv && !cf) { perror(csv); return 1; }
    int maxtok = 0, maxcols = 0, maxrows = 0;
    for (int i = 0; i < ntok; i++) if (tok[i] > maxtok) maxtok = tok[i];
    for (int i = 0; i < nshape; i++) {
        if (shapes[i][0] > maxrows) maxrows = shapes[i][0];
        if (shapes[i][1] > maxcols) maxcols = shapes[i][1];
    }
    const int kout = multi > 0 ? multi : 1;
    float *x = malloc((size_t)maxtok * maxcols * 4), *out = malloc((size_t)kout * maxtok * maxrows * 4);
    float *scratch = malloc(dsv4_linear_scratch_floats(maxtok, maxcols) * 4 + 256);
    for (size_t i = 0; i < (size_t)maxtok * maxcols; i++) x[i] = bf16_val(bf16_of(unif()));
    printf("kernel path %s\n", path);
    for (int ti = 0; ti < nthr; ti++) {
        int T = thr[ti];
        if (dsv4_set_threads(T, err, sizeof err) != 0) { fprintf(stderr, "bench_gemm: %s\n", err); return 1; }
        double dpc, fmc, dp = dsv4_arith_peak("avx512", T, &dpc, NULL), fm = dsv4_arith_peak("avx2", T, &fmc, NULL);
        double peak = !strcmp(path, "avx512") ? dp : fm, peakc = !strcmp(path, "avx512") ? dpc : fmc;
        printf("threads %d: VDPBF16PS peak %.1f GMAC/s (%.1f per CPU-time), FMA(8 lanes) peak %.1f (%.1f); ratio vs %s\n",
               T, dp / 1e9, dpc / 1e9, fm / 1e9, fmc / 1e9, !strcmp(path, "avx512") ? "VDPBF16PS" : "FMA");
        printf("  %-10s %-10s %6s %10s %7s %10s %7s %8s %8s\n", "fmt", "shape", "tokens", "GMAC/s", "ratio", "cpu-GMAC/s",
               "ratio", "GB/s", "cpu-GB/s");
        const char *f = fmts;
        while (*f) {
            size_t len = strcspn(f, ",");
#define IS(name) (len == strlen(name) && !strncmp(f, name, len))
            const int as_bf16 = IS("fp8_32bf16");
            dsv4_wfmt fmt = IS("fp8") ? DSV4_W_FP8 : IS("fp4") ? DSV4_W_FP4 : IS("bf16") ? DSV4_W_BF16
                          : IS("fp8_32") || as_bf16 ? DSV4_W_FP8_32 : DSV4_W_F32;
#undef IS
            if (fmt == DSV4_W_F32 || len == 0) { fprintf(stderr, "bench_gemm: unknown format '%.*s'\n", (int)len, f); return 2; }
            for (int si = 0; si < nshape; si++) {
                if (multi > 0) {
                    bench_multi(fmt, shapes[si][0], shapes[si][1], as_bf16, multi, tok, ntok, x, out, scratch, min_s,
                                T, peak, (int)len, f, path, cf);
                    continue;
                }
                owned o = make_w(fmt, shapes[si][0], shapes[si][1], as_bf16);
                for (int k = 0; k < ntok; k++) {
                    int n = tok[k];
                    double macs = (double)o.w.rows * o.w.cols * n, best = 0, bestc = 0;
                    dsv4_linear(out, &o.w, x, n, 0, scratch);   /* warm-up */
                    int reps = 1;
                    for (int trial = 0; trial < 4; trial++) {
                        double t0 = now(), c0 = cpu_now();
                        for (int r = 0; r < reps; r++) dsv4_linear(out, &o.w, x, n, 0, scratch);
                        double dt = now() - t0, dc = (cpu_now() - c0) / T;
                        if (trial == 0) { reps = (int)(min_s / dt) + 1; continue; }
                        if (macs * reps / dt > best) best = macs * reps / dt;
                        if (macs * reps / dc > bestc) bestc = macs * reps / dc;
                    }
                    const double gbs = best / macs * (double)o.bytes / 1e9, gbsc = bestc / macs * (double)o.bytes / 1e9;
                    printf("  %-10.*s %4dx%-5d %6d %10.1f %7.3f %10.1f %7.3f %8.2f %8.2f\n", (int)len, f, o.w.rows,
                           o.w.cols, n, best / 1e9, peak > 0 ? best / peak : 0, bestc / 1e9, peakc > 0 ? bestc / peakc : 0,
                           gbs, gbsc);
                    fflush(stdout);
                    if (cf)
                        fprintf(cf, "%s,%d,%.*s,%d,%d,%d,%.3f,%.4f,%.3f,%.4f,%.3f,%.3f\n", path, T, (int)len, f, o.w.rows,
                                o.w.cols, n, best / 1e9, peak > 0 ? best / peak : 0, bestc / 1e9,
                                peakc > 0 ? bestc / peakc : 0, gbs, gbsc);
                }
                owned_free(&o);
            }
            f += len;
            if (*f == ',') f++;
        }
    }
    if (cf) fclose(cf);
    free(x); free(out); free(scratch);
    return 0;
}
