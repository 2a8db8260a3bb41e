/* kernels/pool.h — the one persistent thread pool and the SIMD path choice (issue 6, docs/performance.md).
 *
 * Contract:
 * - One process-wide pool of worker threads, created lazily on the first parallel call after
 *   dsv4_set_threads (or with the default count) and reused for every call: no thread creation, no
 *   allocation and no mutex on the hot path (workers spin briefly on an atomic generation counter, then sleep
 *   on a condition variable: the pool's own wake-up).
 * - dsv4_parallel_for(n, fn, ctx) calls fn(ctx, i) exactly once for every i in [0, n), spread over the
 *   threads (each claims the next index atomically; the caller too, so a slow-to-wake worker never stalls
 *   the call), and returns when all are done. Tasks must write disjoint outputs and compute in a fixed order;
 *   results therefore never depend on the thread count nor on which thread ran what.
 *   Nested calls (from inside a task) run serially on the calling thread.
 * - Several application threads may evaluate at once (one session each, include/dsv4.h): the pool serves one
 *   call at a time and a call that finds it busy runs on its own thread (same results).
 */
#ifndef DSV4_KERNELS_POOL_H
#define DSV4_KERNELS_POOL_H
#include <stddef.h>

typedef void (*dsv4_task_fn)(void *ctx, int i);

/* Run fn(ctx, i) for i in [0, n) on the pool (n <= 0: no-op). */
void dsv4_parallel_for(int n, dsv4_task_fn fn, void *ctx);
/* Threads the next parallel call asks for (>= 1): the count to size task splits by. */
int dsv4_pool_threads(void);

/* SIMD paths, best last. DSV4_PATH_AVX512 needs AVX-512 F/BW/VL + BF16 (VDPBF16PS) and passes a start-up
 * self-check against the scalar definition; DSV4_PATH_AVX2 needs AVX2 + FMA + F16C; DSV4_PATH_NEON is the
 * AArch64 Advanced SIMD path (every arm64 CPU; arm64 builds only). Each SIMD path passes the self-check. */
typedef enum { DSV4_PATH_SCALAR = 0, DSV4_PATH_AVX2 = 1, DSV4_PATH_AVX512 = 2, DSV4_PATH_NEON = 3 } dsv4_simd_path;
/* The path in use: chosen once (the best the CPU has, or $DSV4_KERNEL = scalar|avx2|avx512|neon read at the
 * first call), or set by dsv4_set_kernel_path. */
dsv4_simd_path dsv4_kernel_path_id(void);

#endif
