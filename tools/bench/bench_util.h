/* tools/bench/bench_util.h — helpers the kernel benchmarks share (bench_gemm, bench_vtower): clocks and a small
 * PRNG for random weights and activations. Header-only; each tool has its own PRNG state. */
#ifndef DSV4_BENCH_UTIL_H
#define DSV4_BENCH_UTIL_H
#include <stdint.h>
#include <string.h>
#include "base/util.h"

static inline double now(void) { return dsv4_now(); }
static inline double cpu_now(void) { return dsv4_cpu_now(); }   /* CPU time of the whole process (all threads) */

static uint64_t rs = 0x9e3779b97f4a7c15ull;   /* xorshift64 */
static inline uint32_t rnd(void) { rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17; return (uint32_t)(rs >> 32); }
static inline float unif(void) { return (float)(rnd() >> 8) * (1.0f / 16777216.0f) * 2.0f - 1.0f; }   /* [-1, 1) */
static inline uint16_t bf16_of(float f) {   /* round to nearest even */
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}
static inline float bf16_val(uint16_t h) { uint32_t u = (uint32_t)h << 16; float f; memcpy(&f, &u, 4); return f; }
#endif
