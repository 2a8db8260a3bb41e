/* kernels/pool.c — the persistent thread pool and the SIMD path choice (contract: kernels/pool.h).
 *
 * Design: nthreads-1 workers, created once, wait for a new "generation" of work. The caller publishes
 * (fn, ctx) and a ticket word (generation | n | next index), bumps the generation and claims tasks itself;
 * every participant claims the next index with a compare-and-swap on the ticket, so a worker that is slow to
 * wake (a loaded machine, more threads than cores) never holds the call up: the caller runs what nobody
 * claimed and waits only for tasks already running. Which thread runs a task never changes its result
 * (tasks write disjoint outputs and compute in a fixed order). Workers spin on the generation for a short
 * while (decode issues ~30 parallel calls per layer, microseconds apart) and then sleep on a condition
 * variable; the caller only takes the mutex when some worker is asleep.
 */
#include "kernels/pool.h"
#include "kernels/simd.h"
#include "dsv4.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_THREADS 1024
#define SPIN_ITERS 20000    /* pause-loop iterations (tens of µs) before a worker sleeps */
#define YIELD_EVERY 256     /* waiting threads yield the CPU this often (more threads than cores) */

static struct {
    _Atomic int nthreads;         /* threads requested (0 = not set: the default); applied by the next call */
    int started;                  /* worker threads running; a call has started + 1 participants */
    pthread_t tid[MAX_THREADS];
    _Atomic unsigned gen;         /* bumped once per parallel call */
    _Atomic uint64_t ticket;      /* (gen & 0xffff) << 48 | n << 24 | next task index */
    _Atomic int finished;         /* tasks of the current generation completed */
    _Atomic int sleepers;         /* workers waiting on cv */
    _Atomic int quit;
    int want_started;             /* the count the pool was last started for (so a failed start is not retried per call) */
    dsv4_task_fn fn;
    void *ctx;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    _Atomic int in_call;          /* nested-call guard */
} P = { .nthreads = 0, .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

/* Claim and run tasks of generation g until none is left. */
static void run_claims(unsigned g) {
    for (;;) {
        uint64_t v = atomic_load_explicit(&P.ticket, memory_order_acquire);
        if ((v >> 48) != (g & 0xffffu)) return;
        uint64_t n = (v >> 24) & 0xffffffu, i = v & 0xffffffu;
        if (i >= n) return;
        if (!atomic_compare_exchange_weak_explicit(&P.ticket, &v, v + 1, memory_order_acq_rel, memory_order_relaxed))
            continue;
        P.fn(P.ctx, (int)i);
        atomic_fetch_add_explicit(&P.finished, 1, memory_order_release);
    }
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static unsigned WGEN0[MAX_THREADS];   /* generation at each worker's creation */

static void *worker(void *arg) {
    unsigned seen = *(const unsigned *)arg;   /* not a fresh load: a call may already have bumped it */
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = atomic_load_explicit(&P.gen, memory_order_acquire)) == seen) {
            if (atomic_load(&P.quit)) return NULL;
            if (++spins < SPIN_ITERS) {
                if (spins % YIELD_EVERY == 0) sched_yield();
                else cpu_relax();
                continue;
            }
            pthread_mutex_lock(&P.mu);
            atomic_fetch_add(&P.sleepers, 1);
            while (atomic_load(&P.gen) == seen && !atomic_load(&P.quit)) pthread_cond_wait(&P.cv, &P.mu);
            atomic_fetch_sub(&P.sleepers, 1);
            pthread_mutex_unlock(&P.mu);
            spins = 0;
        }
        seen = g;
        if (atomic_load(&P.quit)) return NULL;
        run_claims(g);
    }
}

static void pool_stop(void) {
    if (!P.started) return;
    pthread_mutex_lock(&P.mu);
    atomic_store(&P.quit, 1);
    pthread_cond_broadcast(&P.cv);
    pthread_mutex_unlock(&P.mu);
    for (int i = 1; i <= P.started; i++) pthread_join(P.tid[i], NULL);
    P.started = 0;
    atomic_store(&P.quit, 0);
}

/* Restart the pool with n participants (n - 1 workers). If a thread cannot be created, the pool is stopped and
 * calls run on the caller alone (same results). */
static void pool_start(int n) {
    pool_stop();
    for (int i = 1; i < n; i++) {
        WGEN0[i] = atomic_load(&P.gen);
        if (pthread_create(&P.tid[i], NULL, worker, &WGEN0[i]) != 0) { pool_stop(); return; }
        P.started = i;
    }
}

static int physical_cores(void) {
#if defined(__linux__)
    /* distinct (package, core) pairs over the online CPUs */
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu < 1) return 1;
    int seen = 0;
    long keys[4096];
    for (long c = 0; c < ncpu && c < 4096; c++) {
        char path[128];
        long core = -1, pkg = 0;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%ld/topology/core_id", c);
        FILE *f = fopen(path, "r");
        if (!f) return (int)ncpu;
        if (fscanf(f, "%ld", &core) != 1) core = c;
        fclose(f);
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%ld/topology/physical_package_id", c);
        f = fopen(path, "r");
        if (f) { if (fscanf(f, "%ld", &pkg) != 1) pkg = 0; fclose(f); }
        long key = pkg * 1000000 + core;
        int dup = 0;
        for (int j = 0; j < seen; j++) dup |= keys[j] == key;
        if (!dup) keys[seen++] = key;
    }
    return seen > 0 ? seen : 1;
#else
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
#endif
}

int dsv4_default_threads(void) {
    static _Atomic int cached;   /* computed once; racing first calls compute the same value */
    if (!cached) {
        int n = physical_cores();
        cached = n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : n;
    }
    return cached;
}

/* The request is only recorded here; the pool is (re)started by the next parallel call, by the thread that holds
 * the pool then (so two application threads never start it at once, and a command that never evaluates never
 * starts threads). If threads cannot be started, calls run on the calling thread alone (results are the same). */
int dsv4_set_threads(int n, char *err, size_t errlen) {
    if (n < 0 || n > MAX_THREADS) {
        if (err) snprintf(err, errlen, "threads must be in 0..%d (0 = one per physical core), got %d", MAX_THREADS, n);
        return -1;
    }
    atomic_store(&P.nthreads, n == 0 ? dsv4_default_threads() : n);
    return 0;
}

int dsv4_get_threads(void) { int n = atomic_load(&P.nthreads); return n > 0 ? n : dsv4_default_threads(); }
int dsv4_pool_threads(void) { return dsv4_get_threads(); }

void dsv4_parallel_for(int n, dsv4_task_fn fn, void *ctx) {
    if (n <= 0) return;
    int idle = 0, want = dsv4_get_threads();
    if (want <= 1 || n == 1 || !atomic_compare_exchange_strong(&P.in_call, &idle, 1)) {
        /* one thread, one task, a nested call, or another application thread holds the pool: run here */
        for (int i = 0; i < n; i++) fn(ctx, i);
        return;
    }
    if (P.started + 1 != want && P.want_started != want) {
        /* (re)start under the pool ownership just taken; a failure is not retried until the count changes */
        pool_start(want);
        P.want_started = want;
    }
    if (P.started == 0 || n > 0xffffff) {   /* no workers, or beyond the ticket's range (never in practice) */
        atomic_store(&P.in_call, 0);
        for (int i = 0; i < n; i++) fn(ctx, i);
        return;
    }
    P.fn = fn; P.ctx = ctx;
    atomic_store_explicit(&P.finished, 0, memory_order_relaxed);
    unsigned g = atomic_load(&P.gen) + 1;
    atomic_store_explicit(&P.ticket, (uint64_t)(g & 0xffffu) << 48 | (uint64_t)n << 24, memory_order_release);
    atomic_fetch_add(&P.gen, 1);   /* seq_cst: ordered before the sleepers check */
    if (atomic_load(&P.sleepers) > 0) {
        pthread_mutex_lock(&P.mu);
        pthread_cond_broadcast(&P.cv);
        pthread_mutex_unlock(&P.mu);
    }
    run_claims(g);
    for (unsigned spins = 1; atomic_load_explicit(&P.finished, memory_order_acquire) < n; spins++) {
        if (spins % YIELD_EVERY == 0) sched_yield();
        else cpu_relax();
    }
    atomic_store(&P.in_call, 0);
}
