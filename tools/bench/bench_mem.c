/* tools/bench/bench_mem.c — decode under a memory budget (issue 9; `make bench-mem`; method and results in
 * docs/memory-budget.md).
 *
 *   bench_mem -m DIR [--mem LIST] [--policy lru|lfu] [--prefetch off|known|guess] [-n N] [--warm W] [-t T]
 *             [--io-threads N] [--bw-reads N] [--bw-threads Q] [--csv FILE]
 *
 * First the disk's read bandwidth for the expert cache's access pattern: the checkpoint's pages are dropped from
 * the page cache (posix_fadvise POSIX_FADV_DONTNEED on every *.safetensors of DIR: only these files, nothing else
 * on the machine), then --bw-reads (default 96) reads of one routed expert's span (w1..w3 + scales, 12.75 MiB in
 * V4-Flash) at random experts of the checkpoint, on 1, 2, 4 and 8 threads (reads in flight), are timed: GB/s; the
 * SSD bound below uses the figure at --bw-threads (default 2, the cache's read-ahead threads; set it to the
 * --io-threads used).
 * Then per budget of --mem (comma-separated byte counts with K/M/G/T suffixes; 0 = the mmap path, no budget):
 * the page cache of DIR is dropped again, the model loaded (dsv4_model_load_opts), a 16-token prompt prefilled,
 * W (default 8) decode steps run untimed to fill the cache, the counters reset, then N (default 16) decode steps
 * timed. Reported: decode tok/s, the expert cache's hit rate ((hits + late) / lookups), misses per token, bytes
 * read per token, read GB/s achieved, the process's RSS, and the ratio to the SSD bound = (bytes read per token /
 * disk bandwidth) / measured time per token (1.0 = the disk is the only cost). The mmap path has no counters; its
 * reads are estimated from /proc/self/io read_bytes (bytes this process caused to be read from storage).
 * Same tokens: every run evaluates the same token sequence; the logits of every step (prefill, warm-up, timed) of
 * the first run are kept, and each later run's are compared with them bit for bit ("same logits" column: yes = all
 * 1 + W + N steps identical). Put 0 first in --mem to compare every budget with the mmap path.
 */
#include "dsv4.h"
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Drop every *.safetensors of dir from the page cache; returns the number of bytes of those files. */
static double drop_dir(const char *dir) {
    DIR *d = opendir(dir);
    double total = 0;
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 12 || strcmp(e->d_name + l - 12, ".safetensors")) continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        int fd = open(p, O_RDONLY);
        if (fd < 0) continue;
        struct stat sb;
        if (fstat(fd, &sb) == 0) total += (double)sb.st_size;
        fdatasync(fd);
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        close(fd);
    }
    closedir(d);
    return total;
}

/* The largest shard of dir (the layers) for the bandwidth probe. */
static int largest_shard(const char *dir, char *out, size_t cap, off_t *size) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    struct dirent *e;
    *size = 0;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 12 || strcmp(e->d_name + l - 12, ".safetensors")) continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (stat(p, &sb) == 0 && sb.st_size > *size) { *size = sb.st_size; snprintf(out, cap, "%s", p); }
    }
    closedir(d);
    return *size > 0 ? 0 : -1;
}

typedef struct { int fd; off_t fsize; size_t span; int n, seed; double bytes; } bwjob;
static void *bw_thread(void *a) {
    bwjob *j = a;
    char *buf = malloc(j->span);
    uint64_t x = 0x9E3779B97F4A7C15ull * (uint64_t)(j->seed + 1);
    for (int i = 0; i < j->n && buf; i++) {
        x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
        off_t off = (off_t)((x * 0x2545F4914F6CDD1Dull) % (uint64_t)(j->fsize - (off_t)j->span));
        off &= ~(off_t)4095;
        size_t done = 0;
        while (done < j->span) {
            ssize_t r = pread(j->fd, buf + done, j->span - done, off + (off_t)done);
            if (r <= 0) break;
            done += (size_t)r;
        }
        posix_fadvise(j->fd, off, (off_t)j->span, POSIX_FADV_DONTNEED);
        j->bytes += (double)done;
    }
    free(buf);
    return NULL;
}

static double disk_bw(const char *dir, size_t span, int nreads, int nth) {
    char p[4096];
    off_t size;
    if (largest_shard(dir, p, sizeof p, &size) || size < (off_t)span * 2) return 0;
    drop_dir(dir);
    int fd = open(p, O_RDONLY);
    if (fd < 0) return 0;
    bwjob j[16];
    pthread_t th[16];
    double t0 = now(), bytes = 0;
    for (int k = 0; k < nth; k++) {
        j[k] = (bwjob){fd, size, span, nreads / nth, k + 7 * nth, 0};
        pthread_create(&th[k], NULL, bw_thread, &j[k]);
    }
    for (int k = 0; k < nth; k++) { pthread_join(th[k], NULL); bytes += j[k].bytes; }
    double dt = now() - t0;
    close(fd);
    return bytes / dt / 1e9;
}

static long rss_mib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) v = strtol(line + 6, NULL, 10) / 1024;
    if (f) fclose(f);
    return v;
}
static double io_read_bytes(void) {
    FILE *f = fopen("/proc/self/io", "r");
    char line[256];
    double v = 0;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "read_bytes:", 11)) v = strtod(line + 11, NULL);
    if (f) fclose(f);
    return v;
}

static int parse_bytes(const char *v, uint64_t *out) {
    char *end;
    unsigned long long n = strtoull(v, &end, 10);
    int sh = 0;
    if (*end == 'K' || *end == 'k') sh = 10, end++;
    else if (*end == 'M' || *end == 'm') sh = 20, end++;
    else if (*end == 'G' || *end == 'g') sh = 30, end++;
    else if (*end == 'T' || *end == 't') sh = 40, end++;
    if (end == v || *end) return -1;
    *out = (uint64_t)n << sh;
    return 0;
}

int main(int argc, char **argv) {
    const char *dir = NULL, *mems = "0,4G,8G,16G", *csv = NULL;
    int n = 16, warm = 8, threads = 0, bwreads = 96, iothreads = 0, bwth = 2, policy = DSV4_EVICT_LRU, prefetch = DSV4_PREFETCH_KNOWN;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            printf("usage: bench_mem -m DIR [--mem LIST] [--policy lru|lfu] [--prefetch off|known|guess] [-n N] "
                   "[--warm W] [-t T] [--io-threads N] [--bw-reads N] [--bw-threads Q] [--csv FILE]\n");
            return 0;
        }
        if (!v) { fprintf(stderr, "bench_mem: %s needs a value\n", o); return 2; }
        i++;
        if (!strcmp(o, "-m")) dir = v;
        else if (!strcmp(o, "--mem")) mems = v;
        else if (!strcmp(o, "--csv")) csv = v;
        else if (!strcmp(o, "-n")) n = atoi(v);
        else if (!strcmp(o, "--warm")) warm = atoi(v);
        else if (!strcmp(o, "-t")) threads = atoi(v);
        else if (!strcmp(o, "--bw-reads")) bwreads = atoi(v);
        else if (!strcmp(o, "--io-threads")) iothreads = atoi(v);
        else if (!strcmp(o, "--bw-threads")) bwth = atoi(v);
        else if (!strcmp(o, "--policy")) policy = !strcmp(v, "lfu") ? DSV4_EVICT_LFU : DSV4_EVICT_LRU;
        else if (!strcmp(o, "--prefetch"))
            prefetch = !strcmp(v, "off") ? DSV4_PREFETCH_OFF : !strcmp(v, "guess") ? DSV4_PREFETCH_GUESS : DSV4_PREFETCH_KNOWN;
        else { fprintf(stderr, "bench_mem: unknown option %s\n", o); return 2; }
    }
    if (!dir || n < 1 || warm < 0) { fprintf(stderr, "bench_mem: -m DIR is required (-n >= 1)\n"); return 2; }
    char err[1024];
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (dsv4_set_threads(threads, err, sizeof err)) { fprintf(stderr, "bench_mem: %s\n", err); return 2; }
    dsv4_model_info info;
    if (dsv4_config_info(dir, &info, err, sizeof err)) { fprintf(stderr, "bench_mem: %s\n", err); return 1; }
    FILE *fc = csv ? fopen(csv, "a") : NULL;
    /* one expert's bytes: w1, w3 [I, D] and w2 [D, I] FP4 + E8M0 per 32 -> 3 * I * D * (1/2 + 1/32) */
    double I = 0, D = info.dim;
    {   /* moe_intermediate_size is not in the info struct: bytes per expert from the active parameter count is
         * indirect, so read it from a budgeted probe load's entry size instead */
        dsv4_model *pm = NULL;
        dsv4_load_options po = {0};
        po.mem_bytes = 1;
        dsv4_model_load_opts(&pm, dir, &po, err, sizeof err);   /* refused: the message names the entry size */
        const char *p = strstr(err, "experts of ");
        const char *q = p ? strchr(p, '(') : NULL;
        I = q ? strtod(q + 1, NULL) : 0;   /* entry bytes */
        dsv4_model_free(pm);
    }
    size_t span = I > 0 ? (size_t)I : (size_t)(3 * 2048 * D * 17 / 32);
    if (bwth < 1 || bwth > 16) bwth = 2;
    double bw = 0;
    char bws[256] = "";
    for (int q = 1; q <= 8; q *= 2) {   /* the bound uses the read-ahead depth's figure (--bw-threads, default 2) */
        double b = disk_bw(dir, span, bwreads, q);
        size_t l = strlen(bws);
        snprintf(bws + l, sizeof bws - l, "%s%d: %.2f", l ? ", " : "", q, b);
        if (q == bwth) bw = b;
    }
    if (bw == 0) bw = disk_bw(dir, span, bwreads, bwth);
    double la[3] = {0, 0, 0};
    FILE *lf = fopen("/proc/loadavg", "r");
    if (lf) { if (fscanf(lf, "%lf %lf %lf", &la[0], &la[1], &la[2]) != 3) la[0] = -1; fclose(lf); }
    printf("bench_mem: %s: %.2f GB of weights, %d layers, %d experts x %.2f MiB, %d active; %d threads\n", dir,
           info.bytes_total / 1e9, info.n_layers, info.n_routed_experts, (double)span / 1048576.0,
           info.n_activated_experts, dsv4_get_threads());
    printf("disk: %.2f GB/s at %d reads in flight (GB/s by reads in flight: %s; %d random reads of one expert span each,\n"
           "      page cache dropped by posix_fadvise); load average %.2f %.2f %.2f on %ld CPUs\n", bw, bwth, bws, bwreads,
           la[0], la[1], la[2], sysconf(_SC_NPROCESSORS_ONLN));
    if (fc) fprintf(fc, "disk_bw,%s,,%.4f,GB/s\n", dir, bw);
    printf("%-8s %-6s %-6s %8s %6s %7s %9s %10s %9s %8s %8s %8s %s\n", "budget", "policy", "ahead", "tok/s", "hit%",
           "ahead%", "miss/tok", "MB/tok", "read GB/s", "RSS MiB", "bound", "ratio", "same logits");
    int nsteps = 1 + warm + n;
    size_t V = (size_t)info.vocab_size;
    float *first = malloc(sizeof(float) * V * (size_t)nsteps), *cur = malloc(sizeof(float) * V * (size_t)nsteps);
    int have_first = 0;
    if (!first || !cur) { fprintf(stderr, "bench_mem: out of memory\n"); return 1; }
    const char *p = mems;
    while (*p) {
        char item[64];
        size_t l = strcspn(p, ",");
        snprintf(item, sizeof item, "%.*s", (int)(l < 63 ? l : 63), p);
        p += l + (p[l] == ',');
        uint64_t mem;
        if (parse_bytes(item, &mem)) { fprintf(stderr, "bench_mem: bad budget '%s'\n", item); return 2; }
        drop_dir(dir);
        dsv4_model *m = NULL;
        dsv4_load_options o = {0};
        o.mem_bytes = mem; o.policy = policy; o.prefetch = prefetch; o.io_threads = iothreads;
        if (dsv4_model_load_opts(&m, dir, &o, err, sizeof err)) {
            printf("%-8s refused: %s\n", item, err);
            continue;
        }
        dsv4_session *s = NULL;
        if (dsv4_session_open(&s, m, 4096, err, sizeof err)) { fprintf(stderr, "bench_mem: %s\n", err); return 1; }
        int32_t tok[16];
        for (int i = 0; i < 16; i++) tok[i] = (int32_t)((i * 7919 + 13) % info.vocab_size);
        int rc = dsv4_eval(s, tok, 16, cur, err, sizeof err);
        for (int i = 0; i < warm && !rc; i++) {
            int32_t t = (int32_t)(((16 + i) * 7919 + 13) % info.vocab_size);
            rc = dsv4_eval(s, &t, 1, cur + V * (size_t)(1 + i), err, sizeof err);
        }
        dsv4_model_expert_stats_reset(m);
        double io0 = io_read_bytes(), t0 = now();
        for (int i = 0; i < n && !rc; i++) {
            int32_t t = (int32_t)(((16 + warm + i) * 7919 + 13) % info.vocab_size);
            rc = dsv4_eval(s, &t, 1, cur + V * (size_t)(1 + warm + i), err, sizeof err);
        }
        double dt = now() - t0, io = io_read_bytes() - io0;
        const char *same = "(ref)";
        if (!rc && !have_first) { memcpy(first, cur, sizeof(float) * V * (size_t)nsteps); have_first = 1; }
        else if (!rc) same = memcmp(first, cur, sizeof(float) * V * (size_t)nsteps) ? "NO" : "yes";
        if (rc) { fprintf(stderr, "bench_mem: %s: %s\n", item, err); return 1; }
        dsv4_expert_stats st;
        dsv4_model_expert_stats(m, &st);
        double tps = n / dt, bytes = st.active ? (double)st.bytes_read : io;
        double hit = st.lookups ? 100.0 * (double)st.hits / (double)st.lookups : 0;
        double ahd = st.lookups ? 100.0 * (double)(st.ahead + st.late) / (double)st.lookups : 0;
        double bpt = bytes / n, bound = bw > 0 ? bpt / (bw * 1e9) : 0, ratio = bound / (dt / n);
        printf("%-8s %-6s %-6s %8.3f %6.1f %7.1f %9.1f %10.1f %9.2f %8ld %7.3fs %8.2f %s\n", mem ? item : "mmap",
               st.active ? (policy ? "lfu" : "lru") : "-",
               st.active ? (prefetch == DSV4_PREFETCH_OFF ? "off" : prefetch == DSV4_PREFETCH_GUESS ? "guess" : "known") : "-",
               tps, st.active ? hit : 0.0, st.active ? ahd : 0.0, st.active ? (double)st.misses / n : 0.0, bpt / 1e6, bytes / dt / 1e9,
               rss_mib(), bound, ratio, same);
        if (st.active)
            printf("         lookups %llu, hits %llu, ahead %llu, late %llu, misses %llu, read ahead %llu (unused %llu), "
                   "read time %.2f s, eval wait %.2f s of %.2f s, slots %d\n", (unsigned long long)st.lookups,
                   (unsigned long long)st.hits, (unsigned long long)st.ahead, (unsigned long long)st.late, (unsigned long long)st.misses,
                   (unsigned long long)st.prefetched, (unsigned long long)st.prefetch_unused, st.read_seconds,
                   st.wait_seconds, dt, st.slots);
        if (fc)
            fprintf(fc, "decode,%s,%s,%s,%s,%.4f,%.2f,%.2f,%.1f,%.2f,%ld,%.4f,%.3f\n", dir, mem ? item : "mmap",
                    policy ? "lfu" : "lru", prefetch == DSV4_PREFETCH_OFF ? "off" : prefetch == DSV4_PREFETCH_GUESS ? "guess" : "known",
                    tps, hit, ahd, bpt / 1e6, bytes / dt / 1e9, rss_mib(), bound, ratio);
        fflush(stdout);
        dsv4_session_free(s);
        dsv4_model_free(m);
    }
    if (fc) fclose(fc);
    free(first); free(cur);
    return 0;
}
