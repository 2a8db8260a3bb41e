/* kernels/peak.c — the peak rate of the arithmetic instruction each kernel path is built on, for the benchmarks'
 * ratios (issue 6: "prefill vs the measured peak of the arithmetic the kernel uses"; docs/performance.md).
 *
 * One plain pthread per thread (not the pool: the loops must run at the same time, each on its own core), all
 * started behind a barrier; each runs independent accumulator chains (more than latency x throughput, so the loop
 * is bound by issue rate only) of:
 *   avx512  VDPBF16PS zmm (32 multiply-adds), 24 chains;
 *   avx2    VFMADD ymm (8 multiply-adds), 12 chains;
 *   neon    FMLA .4s (4 multiply-adds), 16 chains;
 *   scalar  fmaf (1 multiply-add), 8 chains.
 * The operands keep the sums bounded (x tiny) and opaque to the compiler (an empty asm per iteration). Best of 3
 * timed runs of >= 0.3 s (the first run sizes them). Built with target attributes, so this file needs no flags. */
#include "kernels/kernels.h"
#include "base/util.h"
#include <math.h>
#include <pthread.h>
#include <string.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define PK_X86 1
#endif
#if defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>
#define PK_NEON 1
#endif

#define PEAK_ITERS 4096

#ifdef PK_X86
__attribute__((target("avx512f,avx512bf16"))) static double dp_loop(long reps) {
    __m512 a[24];
    for (int i = 0; i < 24; i++) a[i] = _mm512_set1_ps((float)i);
    __m512bh w = (__m512bh)_mm512_set1_epi16(0x3f80), x = (__m512bh)_mm512_set1_epi16(0x0001);   /* 1 x tiny */
    for (long r = 0; r < reps; r++)
        for (int k = 0; k < PEAK_ITERS; k++) {
#pragma GCC unroll 24
            for (int i = 0; i < 24; i++) a[i] = _mm512_dpbf16_ps(a[i], w, x);
            __asm__ volatile("" : "+v"(w), "+v"(x));
        }
    __m512 s = a[0];
    for (int i = 1; i < 24; i++) s = _mm512_add_ps(s, a[i]);
    return (double)_mm512_reduce_add_ps(s);
}
__attribute__((target("avx2,fma"))) static double fma8_loop(long reps) {
    __m256 a[12];
    for (int i = 0; i < 12; i++) a[i] = _mm256_set1_ps((float)i);
    __m256 w = _mm256_set1_ps(1.0f), x = _mm256_set1_ps(1e-30f);
    for (long r = 0; r < reps; r++)
        for (int k = 0; k < PEAK_ITERS; k++) {
#pragma GCC unroll 12
            for (int i = 0; i < 12; i++) a[i] = _mm256_fmadd_ps(a[i], w, x);
            __asm__ volatile("" : "+x"(w), "+x"(x));
        }
    __m256 s = a[0];
    for (int i = 1; i < 12; i++) s = _mm256_add_ps(s, a[i]);
    float v[8];
    _mm256_storeu_ps(v, s);
    return v[0];
}
#endif
#ifdef PK_NEON
static double fmla_loop(long reps) {
    float32x4_t a[16];
    for (int i = 0; i < 16; i++) a[i] = vdupq_n_f32((float)i);
    float32x4_t w = vdupq_n_f32(1.0f), x = vdupq_n_f32(1e-30f);
    for (long r = 0; r < reps; r++)
        for (int k = 0; k < PEAK_ITERS; k++) {
#pragma GCC unroll 16
            for (int i = 0; i < 16; i++) a[i] = vfmaq_f32(a[i], w, x);
            __asm__ volatile("" : "+w"(w), "+w"(x));
        }
    float32x4_t s = a[0];
    for (int i = 1; i < 16; i++) s = vaddq_f32(s, a[i]);
    return (double)vgetq_lane_f32(s, 0);
}
#endif
static double scalar_loop(long reps) {
    float a[8];
    for (int i = 0; i < 8; i++) a[i] = (float)i;
    float w = 1.0f, x = 1e-30f;
    for (long r = 0; r < reps; r++)
        for (int k = 0; k < PEAK_ITERS; k++) {
            for (int i = 0; i < 8; i++) a[i] = fmaf(a[i], w, x);
            __asm__ volatile("" : "+g"(w), "+g"(x));
        }
    return (double)(a[0] + a[7]);
}

typedef struct { int kind; long reps; double secs; volatile double sink; pthread_barrier_t *bar; } peak_arg;
static void *peak_thread(void *p) {
    peak_arg *a = p;
    pthread_barrier_wait(a->bar);
    double t0 = dsv4_now(), v = 0;
    switch (a->kind) {
#ifdef PK_X86
    case 2: v = dp_loop(a->reps); break;
    case 1: v = fma8_loop(a->reps); break;
#endif
#ifdef PK_NEON
    case 3: v = fmla_loop(a->reps); break;
#endif
    default: v = scalar_loop(a->reps); break;
    }
    a->sink = v;
    a->secs = dsv4_now() - t0;
    return NULL;
}

double dsv4_arith_peak(const char *path, int nthr, double *cpu_rate, const char **instr) {
    int kind;
    const char *name;
    double per;   /* multiply-adds per loop iteration */
    if (cpu_rate) *cpu_rate = 0;
    if (!path || nthr < 1 || nthr > 1024) return 0;
    if (!strcmp(path, "avx512")) {
        kind = 2; name = "VDPBF16PS"; per = 24.0 * 32;
#ifdef PK_X86
        __builtin_cpu_init();
        if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bf16")) return 0;
#else
        return 0;
#endif
    } else if (!strcmp(path, "avx2")) {
        kind = 1; name = "FMA (8 lanes)"; per = 12.0 * 8;
#ifdef PK_X86
        __builtin_cpu_init();
        if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return 0;
#else
        return 0;
#endif
    } else if (!strcmp(path, "neon")) {
        kind = 3; name = "FMLA (4 lanes)"; per = 16.0 * 4;
#ifndef PK_NEON
        return 0;
#endif
    } else if (!strcmp(path, "scalar")) {
        kind = 0; name = "fmaf"; per = 8.0;
    } else {
        return 0;
    }
    if (instr) *instr = name;
    long reps = 4;
    double best = 0, bestc = 0;
    for (int trial = 0; trial < 4; trial++) {
        pthread_t th[1024];
        peak_arg args[1024];
        pthread_barrier_t bar;
        if (pthread_barrier_init(&bar, NULL, (unsigned)nthr) != 0) return 0;
        double c0 = dsv4_cpu_now();
        int started = 0;
        for (int i = 0; i < nthr; i++) {
            args[i] = (peak_arg){kind, reps, 0, 0, &bar};
            if (pthread_create(&th[i], NULL, peak_thread, &args[i]) != 0) break;
            started++;
        }
        if (started < nthr) {   /* cannot run them all at once: release the waiting ones and give up */
            for (int i = started; i < nthr; i++) pthread_barrier_wait(&bar);
            for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
            pthread_barrier_destroy(&bar);
            return 0;
        }
        double slow = 0;
        for (int i = 0; i < nthr; i++) {
            pthread_join(th[i], NULL);
            if (args[i].secs > slow) slow = args[i].secs;
        }
        pthread_barrier_destroy(&bar);
        double cpu = dsv4_cpu_now() - c0;
        double macs = per * PEAK_ITERS * (double)reps * nthr;
        if (trial == 0) { reps = (long)(reps * 0.3 / (slow > 1e-6 ? slow : 1e-6)) + 1; continue; }   /* sizing run */
        if (macs / slow > best) best = macs / slow;
        if (cpu > 0 && macs / cpu * nthr > bestc) bestc = macs / cpu * nthr;
    }
    if (cpu_rate) *cpu_rate = bestc;
    return best;
}
