/* cli/cmd_bench.c — `dsv4 bench`: decode, head, prefill and long-context decode speed per thread count, against
 * the machine's read bandwidth and the kernels' peak arithmetic rate measured in the same run (issue 6; the
 * method is docs/performance.md).
 *
 *   dsv4 bench -m DIR [--twin DIR] [-t LIST] [--ctx LIST] [--ctx-threads LIST] [--prefill LIST] [-n N]
 *              [--prefill-chunk LIST] [--batch LIST] [--repeat R] [--csv FILE] [--kernel NAME] [--bw-mib N]
 *              [--no-warm]
 *
 * Per thread count (dsv4_set_threads): read bandwidth (a streaming read of a 1 GiB buffer over the thread pool,
 * best of 5), kernel peak (one dsv4_linear per thread on a cache-resident FP8 256x2048 weight, 32 tokens,
 * FP8 activations; best of 3), decode ms/token of -m and --twin (the small-vocabulary twin sharing the layer
 * weights: head = full - twin, per layer-token = twin / n_layers), prefill tok/s of one dsv4_eval call of each
 * --prefill size on a fresh session (with --prefill-chunk, once per chunk size: the model loaded again with that
 * dsv4_load_options.chunk_tokens, metric prefill_c<chunk>), and decode ms/token at each --ctx position after a
 * synthetic state fill (dsv4_session_fill_synthetic, src/model/synthetic.c). Ratios: decode vs bound = (bytes read per token /
 * bandwidth) / measured time, where bytes = the weights one decode step reads (dsv4_model_info.bytes_per_token)
 * + the caches it reads at that context; prefill vs peak = (active parameters per token x tokens / time) /
 * peak. --batch B: B sessions decoded together by dsv4_eval_batch (each weight read once per step for all B);
 * speed-up = B x (single-session ms/token) / (ms per batched step). --repeat R: each timed measurement R times,
 * the table shows mean +- sample sd (metric and metric_sd in the CSV).
 * Prints a table (rows = measures, columns = thread counts) and, with --csv, one line per value.
 *
 * This is the one CLI file that uses internal headers (model/model.h for the synthetic fill and the config,
 * kernels/ for dsv4_linear and the pool): it benchmarks the engine from the inside.
 */
#include "dsv4.h"
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "model/model.h"
#include "kernels/kernels.h"
#include "kernels/pool.h"
#include "base/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ERRLEN 1024
#define MAXLIST 64
#define PEAK_ROWS 256
#define PEAK_COLS 2048
#define PEAK_TOK 32
#define MAXBATCH 128
#define MAXREPEAT 100

static const char bench_usage[] =
    "usage: dsv4 bench -m DIR [--twin DIR] [-t LIST] [--ctx LIST] [--ctx-threads LIST] [--prefill LIST] [-n N]\n"
    "                  [--prefill-chunk LIST]\n"
    "                  [--batch LIST] [--repeat R] [--csv FILE] [--kernel NAME] [--bw-mib N] [--no-warm]\n"
    "  -m DIR             model (e.g. the V4-Flash-shaped checkpoint of tools/bench/make_flash_ckpt)\n"
    "  --twin DIR         the same layers with a small vocabulary: head ms = full - twin, ms per layer-token\n"
    "                     = twin / layers\n"
    "  -t LIST            thread counts, comma-separated (default 1,2,...,physical cores)\n"
    "  --ctx LIST         decode positions after a synthetic state fill (default 4096,65536,1048576; none)\n"
    "  --ctx-threads LIST thread counts for the --ctx runs (default: those of -t)\n"
    "  --prefill LIST     prompt lengths to prefill, one dsv4_eval call each (default 128,512,2048; none)\n"
    "  --prefill-chunk LIST  run the prefills once per forward chunk size (the model loaded with each --chunk),\n"
    "                     e.g. 128,256,512 (default: the --chunk the model is loaded with)\n"
    "  -n N               timed decode steps per measurement (default 16; 2 untimed steps come first)\n"
    "  --batch LIST       also decode B sessions at once (dsv4_eval_batch) for each B, e.g. 1,4,16 (default none):\n"
    "                     ms per step, aggregate tok/s, and the speed-up over B separate decodes\n"
    "  --repeat R         repeat each decode, batch and prefill measurement R times; print mean +- sd (default 1)\n"
    "  --csv FILE         also write every value as CSV (kernel,threads,metric,param,value,unit)\n"
    "  --kernel NAME      kernel path: scalar, avx2, avx512 or neon (default: the best this CPU has)\n"
    "  --bw-mib N         size of the read-bandwidth buffer in MiB (default 1024; keep it well above the caches)\n"
    "  --no-warm          do not read the checkpoint files into the page cache first\n"
    "  Read bandwidth (streaming read, best of 5) and kernel peak (dsv4_linear, FP8 256x2048, 32 tokens,\n"
    "  one per thread) and the peak of the path's arithmetic instruction (VDPBF16PS, FMA, FMLA) are measured in the\n"
    "  same run; docs/performance.md has the method. Progress lines go to\n"
    "  stderr when it is a terminal.\n";

/* "1,2,4" -> v (each in [lo, hi]); "none" -> 0 entries. Returns the count, or -1. */
static int parse_list(const char *s, long lo, long hi, int *v) {
    if (!strcmp(s, "none")) return 0;
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end; errno = 0;
        long x = strtol(p, &end, 10);
        if (end == p || errno || x < lo || x > hi || n == MAXLIST) return -1;
        v[n++] = (int)x;
        p = end;
        if (*p == ',') { p++; if (!*p) return -1; }
        else if (*p) return -1;
    }
    return n;
}

/* A list option for cli_parse (CLI_CUSTOM): n = -1 until given; at least `min` entries. */
typedef struct { int v[MAXLIST]; int n; long lo, hi; int min; } list_arg;
static int list_parse(const char *v, void *dst) {
    list_arg *l = dst;
    int n = parse_list(v, l->lo, l->hi, l->v);
    if (n < l->min || n < 0) return -1;
    l->n = n;
    return 0;
}

/* ------------------------------------------------------------------ results */
typedef struct { char metric[32]; long param; int threads; double value; const char *unit; } result;
typedef struct { result *v; int n, cap; } results;
static void put(results *r, int threads, const char *metric, long param, double value, const char *unit) {
    if (r->n == r->cap) {
        int cap = r->cap ? 2 * r->cap : 64;
        result *nv = realloc(r->v, sizeof *nv * (size_t)cap);
        if (!nv) return;   /* a value lost to OOM only shortens the table */
        r->v = nv; r->cap = cap;
    }
    result *x = &r->v[r->n++];
    snprintf(x->metric, sizeof x->metric, "%s", metric);
    x->param = param; x->threads = threads; x->value = value; x->unit = unit;
}
static int get(const results *r, int threads, const char *metric, long param, double *out) {
    for (int i = 0; i < r->n; i++)
        if (r->v[i].threads == threads && r->v[i].param == param && !strcmp(r->v[i].metric, metric)) {
            *out = r->v[i].value;
            return 1;
        }
    return 0;
}

/* ------------------------------------------------------------------ read bandwidth */
typedef struct { const unsigned char *buf; size_t bytes; int parts; uint64_t sums[1024]; } bw_ctx;
#if defined(__GNUC__)
typedef uint64_t v4u64 __attribute__((vector_size(32)));
#endif
static void bw_task(void *vctx, int i) {
    bw_ctx *c = vctx;
    size_t per = c->bytes / (size_t)c->parts / 256 * 256;
    const unsigned char *p = c->buf + (size_t)i * per;
#if defined(__GNUC__)
    v4u64 a0 = {0, 0, 0, 0}, a1 = a0, a2 = a0, a3 = a0;
    for (size_t k = 0; k < per; k += 128) {
        v4u64 x0, x1, x2, x3;
        memcpy(&x0, p + k, 32); memcpy(&x1, p + k + 32, 32); memcpy(&x2, p + k + 64, 32); memcpy(&x3, p + k + 96, 32);
        a0 += x0; a1 += x1; a2 += x2; a3 += x3;
    }
    a0 += a1 + a2 + a3;
    c->sums[i & 1023] = a0[0] + a0[1] + a0[2] + a0[3];
#else
    uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (size_t k = 0; k < per; k += 32) {
        uint64_t x[4];
        memcpy(x, p + k, 32);
        a0 += x[0]; a1 += x[1]; a2 += x[2]; a3 += x[3];
    }
    c->sums[i & 1023] = a0 + a1 + a2 + a3;
#endif
}
/* Best of `reps` streaming reads of buf over the pool (one contiguous part per thread), bytes/s. */
static double measure_bandwidth(const unsigned char *buf, size_t bytes, int reps) {
    bw_ctx c;
    memset(&c, 0, sizeof c);
    c.buf = buf; c.bytes = bytes; c.parts = dsv4_pool_threads();
    double best = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = dsv4_now();
        dsv4_parallel_for(c.parts, bw_task, &c);
        double dt = dsv4_now() - t0;
        double bw = (double)(bytes / (size_t)c.parts / 256 * 256) * c.parts / dt;
        if (bw > best) best = bw;
    }
    return best;
}

/* ------------------------------------------------------------------ kernel peak */
typedef struct {
    dsv4_wview w[1024];
    const float *x;
    float *out, *scratch;   /* per task: PEAK_TOK*PEAK_ROWS, scratch_floats */
    size_t scratch_floats;
    int reps;
} peak_ctx;
static void peak_task(void *vctx, int i) {
    peak_ctx *c = vctx;
    for (int r = 0; r < c->reps; r++)
        dsv4_linear(c->out + (size_t)i * PEAK_TOK * PEAK_ROWS, &c->w[i], c->x, PEAK_TOK, DSV4_ACT_FP8,
                    c->scratch + (size_t)i * c->scratch_floats);
}
/* Multiply-adds per second of dsv4_linear, one call stream per thread (nested pool calls run serially, so every
 * thread runs its own linear on its own cache-resident weight). Best of 3 runs of >= 0.2 s. */
static double measure_peak(peak_ctx *c) {
    int nt = dsv4_pool_threads();
    c->reps = 1;
    dsv4_parallel_for(nt, peak_task, c);   /* warm-up (first-call set-up) */
    double t0 = dsv4_now();
    dsv4_parallel_for(nt, peak_task, c);   /* sizes reps */
    double dt = dsv4_now() - t0;
    c->reps = dt > 0 ? (int)(0.2 / dt) + 1 : 100;
    double best = 0;
    for (int k = 0; k < 3; k++) {
        t0 = dsv4_now();
        dsv4_parallel_for(nt, peak_task, c);
        dt = dsv4_now() - t0;
        double rate = (double)PEAK_ROWS * PEAK_COLS * PEAK_TOK * c->reps * nt / dt;
        if (rate > best) best = rate;
    }
    return best;
}

/* ------------------------------------------------------------------ page cache */
/* The checkpoint files to read into the page cache: every *.safetensors of the model (and twin) directory, each
 * inode once (the twin hard-links the big layer shard). */
typedef struct { char (*path)[4096]; dev_t *dev; ino_t *ino; double *size; int n, cap; double total; } warm_list;

/* Add dir's *.safetensors files to w (sizes from stat). A file that cannot be stat'ed is reported and skipped;
 * returns -1 only when out of memory. */
static int warm_list_dir(warm_list *w, const char *dir) {
    DIR *d = opendir(dir);
    if (!d) { fprintf(stderr, "dsv4 bench: warning: cannot list %s: %s (not read into the page cache)\n", dir, strerror(errno)); return 0; }
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 12 || strcmp(e->d_name + l - 12, ".safetensors")) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) != 0) { fprintf(stderr, "dsv4 bench: warning: %s: %s (not read)\n", path, strerror(errno)); continue; }
        int seen = 0;
        for (int i = 0; i < w->n && !seen; i++) seen = w->dev[i] == st.st_dev && w->ino[i] == st.st_ino;
        if (seen) continue;
        if (w->n == w->cap) {
            int cap = w->cap ? 2 * w->cap : 64;
            void *p = realloc(w->path, sizeof *w->path * (size_t)cap), *q = NULL, *r = NULL, *z = NULL;
            if (p) { w->path = p; q = realloc(w->dev, sizeof *w->dev * (size_t)cap); }
            if (q) { w->dev = q; r = realloc(w->ino, sizeof *w->ino * (size_t)cap); }
            if (r) { w->ino = r; z = realloc(w->size, sizeof *w->size * (size_t)cap); }
            if (!z) { closedir(d); return -1; }
            w->size = z; w->cap = cap;
        }
        memcpy(w->path[w->n], path, sizeof path);
        w->dev[w->n] = st.st_dev; w->ino[w->n] = st.st_ino; w->size[w->n] = (double)st.st_size;
        w->total += (double)st.st_size;
        w->n++;
    }
    closedir(d);
    return 0;
}

static void warm_list_free(warm_list *w) { free(w->path); free(w->dev); free(w->ino); free(w->size); }

/* Read every listed file once (so that decode timings do not include disk reads), with a progress bar on a
 * terminal whose total is the files' size. A file that cannot be opened or read is reported. Stops early on
 * Ctrl-C. Returns the bytes read. */
static double warm_read(const warm_list *w, unsigned char *buf, size_t bufsz, int tty) {
    double got = 0;
    for (int i = 0; i < w->n && !cli_interrupted; i++) {
        int fd = open(w->path[i], O_RDONLY);
        if (fd < 0) { fprintf(stderr, "dsv4 bench: warning: %s: %s (not read)\n", w->path[i], strerror(errno)); continue; }
        ssize_t k = 0;
        while (!cli_interrupted && (k = read(fd, buf, bufsz)) > 0) {
            got += (double)k;
            if (tty) {
                char ex[64], b1[32], b2[32];
                snprintf(ex, sizeof ex, "%s of %s", cli_bytes(got, b1), cli_bytes(w->total, b2));
                cli_progress("reading the checkpoint into the page cache", got, w->total, ex);
            }
        }
        if (k < 0) fprintf(stderr, "dsv4 bench: warning: %s: %s (read stopped)\n", w->path[i], strerror(errno));
        close(fd);
    }
    return got;
}

/* Touch every tensor page of m through the mapping before timing (one read per page). A decode step touches the
 * pages of the experts it routes to, and the first touch of a page costs far more than later ones: a minor fault
 * (the page is in the page cache after warming, not yet in this process's page tables), and on the virtual
 * machine this was measured on more besides (MADV_POPULATE_READ, which maps the pages without reading them, left
 * the first decode run at 110 ms/token and the later ones at 53 on the real-shapes twin, 1 thread; one read per page
 * gives 44.7 +- 4.1 ms in every run). A long generation pays this once per page; a short benchmark would pay it in
 * most of its steps, so the timed steps start from touched pages: the steady state. Returns the bytes covered. */
static double prefault(const dsv4_model *m) {
    if (m->xc || m->v41) return 0;   /* a memory budget reads experts with pread (and drops them); V4.1's Engram tables
                                      * are read with pread too: mapping them would defeat both */
    const long pg = sysconf(_SC_PAGESIZE) > 0 ? sysconf(_SC_PAGESIZE) : 4096;
    double bytes = 0;
    volatile unsigned char sink = 0;
    for (size_t i = 0; i < st_count(m->st); i++) {
        const st_tensor *t = st_at(m->st, i);
        const unsigned char *p = t->data;
        for (size_t o = 0; o < t->nbytes; o += (size_t)pg) sink ^= p[o];
        bytes += (double)t->nbytes;
    }
    (void)sink;
    return bytes;
}

/* Bytes of this process's file mappings mapped with 2 MiB pages (Linux: FilePmdMapped in /proc/self/smaps_rollup),
 * or -1 where that is not available. After prefault() it tells how much of the checkpoint the kernel maps in huge
 * pages: page cache filled by writes (a checkpoint just downloaded or written) may hold 4 KiB folios only, which
 * decode then pays in TLB misses (docs/performance.md, "Huge pages"). */
static double file_pmd_bytes(void) {
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    if (!f) return -1;
    char line[256];
    double kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "FilePmdMapped: %lf kB", &kb) == 1) break;
    fclose(f);
    return kb < 0 ? -1 : kb * 1024.0;
}

/* ------------------------------------------------------------------ model runs */
/* Cache bytes one decode step reads at position ctx: per trunk layer the window (BF16 keys), and the compressed
 * entries it attends (FP8 records of dsv4_entry_bytes; CSA: min(ctx/4, top-k) entries plus all ctx/4 indexer
 * keys (FP4 records of dsv4_ikey_bytes) when ctx/4 > top-k; HCA: all ctx/R). */
static double cache_bytes(const dsv4_config *c, long ctx) {
    double b = 0, eb = dsv4_entry_bytes(c), ib = dsv4_ikey_bytes(c);
    for (int l = 0; l < c->n_layers; l++) {
        long R = c->compress_ratios[l];
        b += (double)(ctx < c->window_size ? ctx : c->window_size) * c->head_dim * 2;
        if (R == 4) {
            long nv = ctx / 4;
            b += (double)(nv < c->index_topk ? nv : c->index_topk) * eb;
            if (nv > c->index_topk) b += (double)nv * ib;
        } else if (R > 0) {
            b += (double)(ctx / R) * eb;
        }
    }
    return b;
}

static int32_t tok_at(long k, int V) { return (int32_t)((k * 7919 + 13) % V); }

/* n decode steps after `warm` untimed ones on session s (logits: vocab floats). Returns ms/token or -1. */
static double time_decode(dsv4_session *s, int V, int warm, int n, float *logits, char *err) {
    double t0 = 0;
    for (int k = 0; k < warm + n; k++) {
        if (k == warm) t0 = dsv4_now();
        int32_t t = tok_at(dsv4_session_pos(s), V);
        if (dsv4_eval(s, &t, 1, logits, err, ERRLEN) != 0) return -1;
    }
    return (dsv4_now() - t0) * 1e3 / n;
}

/* One decode step for nb sessions together, `warm` untimed then n timed. Returns ms per step or -1. */
static double time_batch(dsv4_session **ss, int nb, int V, int warm, int n, float *logits, char *err) {
    int32_t tok[MAXBATCH];
    double t0 = 0;
    for (int k = 0; k < warm + n; k++) {
        if (k == warm) t0 = dsv4_now();
        for (int i = 0; i < nb; i++) tok[i] = tok_at(dsv4_session_pos(ss[i]) + 31 * i, V);
        if (dsv4_eval_batch(ss, nb, tok, logits, err, ERRLEN) != 0) return -1;
    }
    return (dsv4_now() - t0) * 1e3 / n;
}

/* Mean and sample standard deviation of v[0..n) (sd 0 when n == 1). */
static void mean_sd(const double *v, int n, double *mean, double *sd) {
    double m = 0, q = 0;
    for (int i = 0; i < n; i++) m += v[i];
    m /= n;
    for (int i = 0; i < n; i++) q += (v[i] - m) * (v[i] - m);
    *mean = m;
    *sd = n > 1 ? sqrt(q / (n - 1)) : 0;
}

/* put() the mean of v[0..n) and, when n > 1, its sd as metric_sd. */
static void put_stat(results *r, int threads, const char *metric, long param, const double *v, int n, const char *unit) {
    double m, sd;
    mean_sd(v, n, &m, &sd);
    put(r, threads, metric, param, m, unit);
    if (n > 1) {
        char name[40];
        snprintf(name, sizeof name, "%s_sd", metric);
        put(r, threads, name, param, sd, unit);
    }
}

typedef struct { const char *dir; dsv4_model *m; dsv4_model_info info; float *logits; dsv4_session *s; } bmodel;

/* Load dir (chunk_tokens `chunk`, 0: --chunk or the default) and open a session of max_ctx (none when 0). */
static int open_model(bmodel *b, const char *dir, int max_ctx, int chunk) {
    char err[ERRLEN];
    b->dir = dir;
    dsv4_load_options lo = {0};
    lo.mem_bytes = cli_mem_bytes;   /* --mem */
    lo.engram_cache_rows = cli_engram_cache_rows;   /* --engram-cache */
    lo.chunk_tokens = chunk ? chunk : cli_chunk_tokens ? cli_chunk_tokens : cli_default_chunk("bench");
    if (dsv4_model_load_opts(&b->m, dir, &lo, err, sizeof err) != 0) {
        fprintf(stderr, "dsv4 bench: cannot load model: %s\n", err);
        return -1;
    }
    dsv4_model_get_info(b->m, &b->info);
    b->logits = malloc(sizeof(float) * (size_t)b->info.vocab_size);
    if (!b->logits) { fprintf(stderr, "dsv4 bench: out of memory\n"); return -1; }
    if (max_ctx > 0 && dsv4_session_open(&b->s, b->m, max_ctx, err, sizeof err) != 0) {
        fprintf(stderr, "dsv4 bench: %s: %s\n", dir, err);
        return -1;
    }
    return 0;
}
static void close_model(bmodel *b) {
    dsv4_session_free(b->s);
    free(b->logits);
    dsv4_model_free(b->m);
}

static const char *layer_kinds(const dsv4_config *c, char *buf, size_t n) {
    size_t k = 0;
    buf[0] = 0;
    for (int l = 0; l < c->n_layers && k + 24 < n; l++) {
        int R = c->compress_ratios[l];
        const char *kind = R == 0 ? "window" : c->x.v41 ? (R == 2 ? "CSA2 ratio 2" : "CSA2 ratio 1")   /* V4.1 */
                           : R == 4 ? "CSA" : "HCA";
        k += (size_t)snprintf(buf + k, n - k, "%s%s%s", l ? ", " : "", kind, l < c->n_hash_layers ? "+hash" : "");
    }
    return buf;
}

/* one table row: label, then the value per thread count (or "-") */
static void row(const results *r, const int *thr, int nthr, const char *label, const char *metric, long param,
                const char *fmt) {
    printf("  %-44s", label);
    for (int i = 0; i < nthr; i++) {
        double v;
        char cell[32];
        char sdname[40];
        double sd;
        snprintf(sdname, sizeof sdname, "%s_sd", metric);
        if (get(r, thr[i], metric, param, &v)) {
            int k = snprintf(cell, sizeof cell, fmt, v);
            if (get(r, thr[i], sdname, param, &sd) && k > 0 && (size_t)k < sizeof cell)
                snprintf(cell + k, sizeof cell - (size_t)k, "\302\261%.2f", sd);   /* U+00B1 */
        } else snprintf(cell, sizeof cell, "-");
        printf(" %*s", 12 + (strstr(cell, "\302\261") ? 1 : 0), cell);   /* the +- sign is 2 bytes, 1 column */
    }
    printf("\n");
}

/* The four prefill metric names (tok/s, GMAC/s, vs kernel peak, vs instruction peak), suffixed _c<chunk> for a
 * --prefill-chunk entry (chunk 0: the model as loaded). */
static void prefill_metrics(char met[4][32], int chunk) {
    static const char *base[4] = {"prefill", "prefill_gmacs", "prefill_vs_peak", "prefill_vs_instr_peak"};
    for (int k = 0; k < 4; k++)
        if (chunk) snprintf(met[k], 32, "%s_c%d", base[k], chunk);
        else snprintf(met[k], 32, "%s", base[k]);
}

static const char *ctx_name(long c, char *buf) {
    if (c >= 1048576 && c % 1048576 == 0) snprintf(buf, 32, "%ld Mi", c / 1048576);
    else if (c >= 1024 && c % 1024 == 0) snprintf(buf, 32, "%ld Ki", c / 1024);
    else snprintf(buf, 32, "%ld", c);
    return buf;
}

int dsv4_cli_bench(int argc, char **argv) {
    const char *dir = NULL, *twin = NULL, *csv = NULL, *kernel = NULL;
    int thr[MAXLIST], nthr, ctx[MAXLIST], nctx, cthr[MAXLIST], ncthr, pre[MAXLIST], npre, bat[MAXLIST], nbat;
    int pch[MAXLIST], npch;
    int n_dec = 16, warm = 1, bw_mib = 1024, nrep = 1;
    list_arg lthr = { .n = -1, .lo = 1, .hi = 1024, .min = 1 }, lcthr = { .n = -1, .lo = 1, .hi = 1024 },
             lctx = { .n = -1, .lo = 1, .hi = 1 << 24 }, lpre = { .n = -1, .lo = 1, .hi = 1 << 20 },
             lbat = { .n = -1, .lo = 1, .hi = MAXBATCH }, lpch = { .n = -1, .lo = 1, .hi = 4096, .min = 1 };
    int nowarm = 0;
    const cli_opt opts[] = {
        CLI_O_MODEL(&dir),
        { .names = "--twin", .kind = CLI_STR, .dst = &twin },
        { .names = "--csv", .kind = CLI_STR, .dst = &csv },
        { .names = "--kernel", .kind = CLI_STR, .dst = &kernel },
        { .names = "-t|--threads", .kind = CLI_CUSTOM, .dst = &lthr, .parse = list_parse,
          .what = "a list of thread counts in [1, 1024]" },
        { .names = "--ctx-threads", .kind = CLI_CUSTOM, .dst = &lcthr, .parse = list_parse,
          .what = "a list of thread counts in [1, 1024] (or none)" },
        { .names = "-c|--ctx-size|--ctx", .kind = CLI_CUSTOM, .dst = &lctx, .parse = list_parse,
          .what = "a list of positions in [1, 16777216] (or none)" },
        { .names = "--prefill", .kind = CLI_CUSTOM, .dst = &lpre, .parse = list_parse,
          .what = "a list of prompt lengths in [1, 1048576] (or none)" },
        { .names = "--prefill-chunk", .kind = CLI_CUSTOM, .dst = &lpch, .parse = list_parse,
          .what = "a list of chunk sizes (dsv4_load_options.chunk_tokens) in [1, 4096]" },
        { .names = "-n|--n-predict", .kind = CLI_INT, .dst = &n_dec, .lo = 1, .hi = 1 << 20 },
        { .names = "--batch", .kind = CLI_CUSTOM, .dst = &lbat, .parse = list_parse,
          .what = "a list of session counts in [1, 128] (or none)" },
        { .names = "--repeat", .kind = CLI_INT, .dst = &nrep, .lo = 1, .hi = MAXREPEAT },
        { .names = "--bw-mib", .kind = CLI_INT, .dst = &bw_mib, .lo = 1, .hi = 65536 },
        { .names = "--no-warm", .kind = CLI_FLAG, .dst = &nowarm, .set = 1 },
        CLI_O_END
    };
    int prc = cli_parse("bench", bench_usage, opts, argc, argv);
    if (prc) return prc < 0 ? 0 : prc;
    warm = !nowarm;
    nthr = lthr.n; memcpy(thr, lthr.v, sizeof thr);
    ncthr = lcthr.n; memcpy(cthr, lcthr.v, sizeof cthr);
    nctx = lctx.n; memcpy(ctx, lctx.v, sizeof ctx);
    npre = lpre.n; memcpy(pre, lpre.v, sizeof pre);
    nbat = lbat.n < 0 ? 0 : lbat.n; memcpy(bat, lbat.v, sizeof bat);
    npch = lpch.n < 0 ? 1 : lpch.n; memcpy(pch, lpch.v, sizeof pch);
    if (lpch.n < 0) pch[0] = 0;   /* the model as loaded (--chunk or the default) */
    if (!dir) { fprintf(stderr, "dsv4 bench: -m DIR is required\n%s", bench_usage); return 2; }
    if (cli_parse_only) return 0;
    char err[ERRLEN];
    if (kernel && dsv4_set_kernel_path(kernel, err, sizeof err) != 0) {
        fprintf(stderr, "dsv4 bench: --kernel %s: %s\n", kernel, err);
        return 2;
    }
    if (nthr < 0) {
        nthr = dsv4_default_threads();
        if (nthr > MAXLIST) nthr = MAXLIST;
        for (int i = 0; i < nthr; i++) thr[i] = i + 1;
    }
    if (ncthr < 0) { ncthr = nthr; memcpy(cthr, thr, sizeof(int) * (size_t)nthr); }
    int ctx_default = nctx < 0, ctx_skipped = 0;
    if (nctx < 0) { nctx = 3; ctx[0] = 4096; ctx[1] = 65536; ctx[2] = 1048576; }
    if (npre < 0) { npre = 3; pre[0] = 128; pre[1] = 512; pre[2] = 2048; }

    int rc = 1;
    const int WARM = 2;
    bmodel full = {0}, tw = {0}, pms[MAXLIST];
    memset(pms, 0, sizeof pms);
    results R = {0};
    unsigned char *bwbuf = NULL, *wbuf = NULL;
    uint8_t *pw = NULL, *ps = NULL;
    float *px = NULL;
    peak_ctx *pc = NULL;
    FILE *cf = NULL;
    size_t bwbytes = (size_t)bw_mib << 20;
    int maxthr = 1;
    for (int i = 0; i < nthr; i++) if (thr[i] > maxthr) maxthr = thr[i];
    for (int i = 0; i < ncthr; i++) if (cthr[i] > maxthr) maxthr = cthr[i];

    if (open_model(&full, dir, WARM + n_dec, 0) != 0) goto done;
    if (twin && open_model(&tw, twin, WARM + n_dec, 0) != 0) goto done;
    /* --prefill-chunk: the model loaded once per chunk size, before anything is timed (its pages touched with the
     * others'); an entry is labelled with the chunk the model applies (a Vision-Exp model raises it to
     * vision_max_n_token), and an entry applying the same chunk as an earlier one is dropped with a note */
    for (int qi = 0; qi < npch; qi++) {
        if (!pch[qi]) continue;
        if (open_model(&pms[qi], dir, 0, pch[qi]) != 0) goto done;
        int applied = dsv4_model_chunk_tokens(pms[qi].m), dup = 0;
        for (int j = 0; j < qi; j++) dup |= pch[j] == applied;
        if (applied != pch[qi]) printf("  --prefill-chunk %d: the model applies chunk %d\n", pch[qi], applied);
        pch[qi] = applied;
        if (dup) {
            printf("  --prefill-chunk: chunk %d is measured once\n", applied);
            close_model(&pms[qi]);
            memset(&pms[qi], 0, sizeof pms[qi]);
            memmove(pch + qi, pch + qi + 1, sizeof(int) * (size_t)(npch - qi - 1));
            memmove(pms + qi, pms + qi + 1, sizeof pms[0] * (size_t)(npch - qi - 1));
            memset(&pms[npch - 1], 0, sizeof pms[0]);
            npch--; qi--;
        }
    }
    const dsv4_config *c = &full.m->cfg;
    if (full.m->v41 && nctx > 0 && ncthr > 0) {   /* no synthetic state fill for V4.1 sessions yet (synthetic.c) */
        if (!ctx_default) {
            fprintf(stderr, "dsv4 bench: --ctx: the decode-at-context runs need a synthetic state fill, which "
                    "DeepSeek-V4.1 models do not have yet; use --ctx none\n");
            rc = 2;
            goto done;
        }
        nctx = 0;
        ctx_skipped = 1;
    }
    /* Every --ctx run decodes (WARM + n_dec) tokens per thread count after its fill, at positions C .. C + steps - 1,
     * which must stay below max_position_embeddings. An explicit value beyond that is refused (as -c is in the
     * other commands); a default one is brought down to the last position that fits (1 Mi on V4-Flash). */
    {
        long maxp = dsv4_model_max_positions(full.m), steps = (long)(WARM + n_dec) * (ncthr > 0 ? ncthr : 1);
        for (int ci = 0; ci < nctx && ncthr > 0; ci++) {
            if (ctx[ci] + steps <= maxp) continue;
            if (!ctx_default) {
                fprintf(stderr, "dsv4 bench: --ctx %d + its %ld decode steps passes max_position_embeddings %ld "
                        "(config.json): --ctx at most %ld\n", ctx[ci], steps, maxp, maxp - steps);
                rc = 2;
                goto done;
            }
            ctx[ci] = (int)(maxp - steps > 1 ? maxp - steps : 1);
        }
        int kept = 0;   /* default values brought down to the same position: measured once */
        for (int ci = 0; ci < nctx; ci++) {
            int dup = 0;
            if (!ctx_default) { kept++; continue; }
            for (int k = 0; k < kept && !dup; k++) dup = ctx[k] == ctx[ci];
            if (!dup) ctx[kept++] = ctx[ci];
        }
        nctx = kept;
    }
    if (twin && (tw.m->cfg.n_layers != c->n_layers || tw.m->cfg.dim != c->dim))
        fprintf(stderr, "dsv4 bench: warning: --twin %s has %d layers of dim %d, the model %d of dim %d: head and "
                "per-layer figures are meaningless\n", twin, tw.m->cfg.n_layers, tw.m->cfg.dim, c->n_layers, c->dim);
    if (csv && !(cf = fopen(csv, "w"))) { fprintf(stderr, "dsv4 bench: cannot write %s: %s\n", csv, strerror(errno)); goto done; }

    char kinds[512], b1[32], b2[32];
    printf("dsv4 bench: %s: %d layers (%s), dim %d, %d heads x %d, %d experts (top %d), vocab %d; %s of weights, "
           "%s read per decoded token\n", dir, c->n_layers, layer_kinds(c, kinds, sizeof kinds), c->dim, c->n_heads,
           c->head_dim, c->n_routed_experts, c->n_activated_experts, c->vocab_size, cli_bytes(full.info.bytes_total, b1),
           cli_bytes(full.info.bytes_per_token, b2));
    if (twin)
        printf("  twin %s: vocab %d (%s read per decoded token)\n", twin, tw.info.vocab_size,
               cli_bytes(tw.info.bytes_per_token, b1));
    if (ctx_skipped) printf("  no decode-at-context runs: DeepSeek-V4.1 has no synthetic state fill yet\n");
    if (warm) {
        size_t wsz = (size_t)16 << 20;
        warm_list wl = {0};
        if (warm_list_dir(&wl, dir) != 0 || (twin && warm_list_dir(&wl, twin) != 0) || !(wbuf = malloc(wsz))) {
            warm_list_free(&wl);
            fprintf(stderr, "dsv4 bench: out of memory\n");
            goto done;
        }
        double t0 = dsv4_now();
        int tty = isatty(2);
        double got = warm_read(&wl, wbuf, wsz, tty);
        warm_list_free(&wl);
        if (tty) cli_progress_clear();
        printf("  page cache: read %s of checkpoint files in %.1f s\n", cli_bytes(got, b1), dsv4_now() - t0);
        free(wbuf); wbuf = NULL;
        t0 = dsv4_now();
        double pf = prefault(full.m) + (twin ? prefault(tw.m) : 0);
        for (int qi = 0; qi < npch; qi++) pf += pms[qi].m ? prefault(pms[qi].m) : 0;
        if (pf > 0) {
            printf("  mapping: every page of %s of tensors touched in %.1f s (the timed steps start from the steady "
                   "state)\n", cli_bytes(pf, b1), dsv4_now() - t0);
            double pmd = file_pmd_bytes();
            if (pmd >= 0) {
                char b2[32];
                const int hint = pmd < 0.5 * pf && pf >= 1073741824.0;   /* under half of at least 1 GiB */
                printf("  huge pages: %s of the mapped files in 2 MiB pages (%.0f%%)%s\n", cli_bytes(pmd, b2),
                       100.0 * (pmd < pf ? pmd / pf : 1.0),
                       hint ? "; this needs large page-cache folios (XFS since Linux 5.18, ext4 since 6.16) and files "
                              "read, not just written, since the page cache last held them: docs/performance.md, "
                              "\"Huge pages\"" : "");
            }
        }
        else
            printf("  mapping: pages not touched in advance (memory budget or DeepSeek-V4.1: weights read with pread)\n");
    }
    fflush(stdout);

    /* buffers of the machine measurements */
    if (!(bwbuf = dsv4_huge_alloc(bwbytes))) { fprintf(stderr, "dsv4 bench: out of memory (%d MiB read buffer)\n", bw_mib); goto done; }
    memset(bwbuf, 1, bwbytes);
    pc = calloc(1, sizeof *pc);
    size_t wn = (size_t)PEAK_ROWS * PEAK_COLS, sn = (size_t)(PEAK_ROWS / 128) * (PEAK_COLS / 128);
    pw = malloc(wn * (size_t)maxthr);
    ps = malloc(sn * (size_t)maxthr);
    px = malloc(sizeof(float) * PEAK_TOK * PEAK_COLS);
    if (pc) {
        pc->scratch_floats = (size_t)2 * PEAK_TOK * PEAK_COLS + 64;   /* >= dsv4_linear_scratch_floats(PEAK_TOK, PEAK_COLS) */
        pc->out = malloc(sizeof(float) * PEAK_TOK * PEAK_ROWS * (size_t)maxthr);
        pc->scratch = malloc(sizeof(float) * pc->scratch_floats * (size_t)maxthr);
    }
    if (!pc || !pw || !ps || !px || !pc->out || !pc->scratch) { fprintf(stderr, "dsv4 bench: out of memory\n"); goto done; }
    uint64_t st = 0x9E3779B97F4A7C15ULL;
    for (size_t i = 0; i < wn * (size_t)maxthr; i++) {
        st ^= st << 13; st ^= st >> 7; st ^= st << 17;
        uint8_t b = (uint8_t)(st >> 24) & 0xb7;   /* exponent field 0, 2, 4 or 6: |value| < 1, never NaN */
        pw[i] = b;
    }
    for (size_t i = 0; i < sn * (size_t)maxthr; i++) ps[i] = 127 - 8;
    for (size_t i = 0; i < (size_t)PEAK_TOK * PEAK_COLS; i++) {
        st ^= st << 13; st ^= st >> 7; st ^= st << 17;
        px[i] = (float)((int)(st >> 40 & 255) - 128) / 64.0f;   /* BF16-exact */
    }
    pc->x = px;
    for (int i = 0; i < maxthr; i++) {
        dsv4_wview *w = &pc->w[i];
        w->fmt = DSV4_W_FP8; w->rows = PEAK_ROWS; w->cols = PEAK_COLS;
        w->data = pw + wn * (size_t)i; w->scale = ps + sn * (size_t)i;
    }

    double head_params = (double)c->vocab_size * c->dim;
    double trunk_macs = full.info.n_params_active - head_params;   /* per prefill token (head once per call) */
    const char *kpath = dsv4_get_kernel_path(), *instr = "the instruction";
    int tty = isatty(2);   /* progress lines only on a terminal */
    double reps[MAXREPEAT];
    cli_sigint_begin();   /* Ctrl-C: stop after the current measurement and print the table of what was measured */
    for (int ti = 0; ti < nthr && !cli_interrupted; ti++) {
        int T = thr[ti];
        if (dsv4_set_threads(T, err, sizeof err) != 0) { fprintf(stderr, "dsv4 bench: threads %d: %s\n", T, err); goto done; }
        double bw = measure_bandwidth(bwbuf, bwbytes, 5);
        double peak = measure_peak(pc);
        double ipeak = dsv4_arith_peak(kpath, T, NULL, &instr);   /* the instruction the path is built on */
        put(&R, T, "read_bandwidth", 0, bw / 1e9, "GB/s");
        put(&R, T, "kernel_peak", 0, peak / 1e9, "GMAC/s");
        if (ipeak > 0) put(&R, T, "instr_peak", 0, ipeak / 1e9, "GMAC/s");
        if (tty) fprintf(stderr, "threads %d: read %.2f GB/s, kernel peak %.2f GMAC/s, %s peak %.2f GMAC/s\n", T, bw / 1e9,
                         peak / 1e9, instr, ipeak / 1e9);
        /* decode at the start of a sequence */
        for (int r = 0; r < nrep; r++) {
            dsv4_session_reset(full.s);
            reps[r] = time_decode(full.s, full.info.vocab_size, WARM, n_dec, full.logits, err);
            if (reps[r] < 0) { fprintf(stderr, "dsv4 bench: decode %s: %s\n", dir, err); goto done; }
        }
        double tf, sd;
        mean_sd(reps, nrep, &tf, &sd);
        put_stat(&R, T, "decode_full", 0, reps, nrep, "ms/token");
        double bound = (full.info.bytes_per_token + cache_bytes(c, WARM + n_dec)) / bw * 1e3;
        put(&R, T, "decode_bound", 0, bound, "ms/token");
        put(&R, T, "decode_vs_bound", 0, bound / tf, "ratio");
        if (tty) fprintf(stderr, "threads %d: decode %.2f ms/token (bandwidth bound %.2f ms)\n", T, tf, bound);
        if (twin) {
            for (int r = 0; r < nrep; r++) {
                dsv4_session_reset(tw.s);
                reps[r] = time_decode(tw.s, tw.info.vocab_size, WARM, n_dec, tw.logits, err);
                if (reps[r] < 0) { fprintf(stderr, "dsv4 bench: decode %s: %s\n", twin, err); goto done; }
            }
            double tt;
            mean_sd(reps, nrep, &tt, &sd);
            put_stat(&R, T, "decode_twin", 0, reps, nrep, "ms/token");
            put(&R, T, "head", 0, tf - tt, "ms/token");
            put(&R, T, "layer_token", 0, tt / c->n_layers, "ms");
            double lbound = (tw.info.bytes_per_token + cache_bytes(c, WARM + n_dec)) / bw * 1e3;
            put(&R, T, "twin_vs_bound", 0, lbound / tt, "ratio");
            if (tty)
                fprintf(stderr, "threads %d: twin %.2f ms/token -> head %.2f ms, %.2f ms per layer-token\n", T, tt,
                        tf - tt, tt / c->n_layers);
        }
        /* batched decode: B sessions, one dsv4_eval_batch per step */
        for (int bi = 0; bi < nbat && !cli_interrupted; bi++) {
            int B = bat[bi];
            dsv4_session *ss[MAXBATCH] = {0};
            float *bl = malloc(sizeof(float) * (size_t)B * full.info.vocab_size);
            int ok = bl != NULL, oom = !ok;
            for (int i = 0; i < B && ok; i++)
                ok = dsv4_session_open(&ss[i], full.m, WARM + n_dec, err, sizeof err) == 0;
            for (int r = 0; r < nrep && ok; r++) {
                for (int i = 0; i < B; i++) dsv4_session_reset(ss[i]);
                reps[r] = time_batch(ss, B, full.info.vocab_size, WARM, n_dec, bl, err);
                ok = reps[r] >= 0;
            }
            for (int i = 0; i < B; i++) dsv4_session_free(ss[i]);
            free(bl);
            if (!ok) { fprintf(stderr, "dsv4 bench: batch %d: %s\n", B, oom ? "out of memory" : err); goto done; }
            double tb;
            mean_sd(reps, nrep, &tb, &sd);
            put_stat(&R, T, "batch_step", B, reps, nrep, "ms/step");
            put(&R, T, "batch_tokps", B, B * 1e3 / tb, "tok/s");
            put(&R, T, "batch_speedup", B, B * tf / tb, "ratio");
            if (tty) fprintf(stderr, "threads %d: batch %d: %.2f ms/step, %.2f tok/s\n", T, B, tb, B * 1e3 / tb);
        }
        /* prefill: one call of P tokens on a fresh session, per forward chunk size */
        for (int qi = 0; qi < npch && !cli_interrupted; qi++) {
          const dsv4_model *PM = pch[qi] ? pms[qi].m : full.m;
          char pmet[4][32];
          prefill_metrics(pmet, pch[qi]);
          for (int pi = 0; pi < npre && !cli_interrupted; pi++) {
            int P = pre[pi];
            dsv4_session *s = NULL;
            int32_t *toks = malloc(sizeof(int32_t) * (size_t)P);
            if (!toks || dsv4_session_open(&s, PM, P, err, sizeof err) != 0) {
                fprintf(stderr, "dsv4 bench: prefill %d: %s\n", P, toks ? err : "out of memory");
                free(toks);
                goto done;
            }
            for (int k = 0; k < P; k++) toks[k] = tok_at(k, full.info.vocab_size);
            int e = 0;
            for (int r = 0; r < nrep && !e; r++) {
                dsv4_session_reset(s);
                double t0 = dsv4_now();
                e = dsv4_eval(s, toks, P, full.logits, err, sizeof err);
                reps[r] = P / (dsv4_now() - t0);
            }
            free(toks);
            dsv4_session_free(s);
            if (e) { fprintf(stderr, "dsv4 bench: prefill %d: %s\n", P, err); goto done; }
            double tps;
            mean_sd(reps, nrep, &tps, &sd);
            double dt = P / tps, rate = (trunk_macs * P + head_params) / dt;
            put_stat(&R, T, pmet[0], P, reps, nrep, "tok/s");
            put(&R, T, pmet[1], P, rate / 1e9, "GMAC/s");
            put(&R, T, pmet[2], P, rate / peak, "ratio");
            if (ipeak > 0) put(&R, T, pmet[3], P, rate / ipeak, "ratio");
            if (tty) fprintf(stderr, "threads %d: prefill %d (chunk %d): %.2f tok/s (%.2f GMAC/s)\n", T, P,
                             dsv4_model_chunk_tokens(PM), P / dt, rate / 1e9);
          }
        }
    }
    /* long context: one session per position, filled once, then decode per thread count */
    for (int ci = 0; ci < nctx && ncthr > 0 && !cli_interrupted; ci++) {
        int C = ctx[ci];
        int max_ctx = C + (WARM + n_dec) * ncthr;
        dsv4_session *s = NULL;
        if (dsv4_session_open(&s, full.m, max_ctx, err, sizeof err) != 0) {
            fprintf(stderr, "dsv4 bench: context %d: %s\n", C, err);
            goto done;
        }
        if (dsv4_set_threads(cthr[0], err, sizeof err) != 0) {
            fprintf(stderr, "dsv4 bench: threads %d: %s\n", cthr[0], err);
            dsv4_session_free(s);
            goto done;
        }
        double t0 = dsv4_now();
        if (dsv4_session_fill_synthetic(s, C, 42, err, sizeof err) != 0) {
            fprintf(stderr, "dsv4 bench: context %d: %s\n", C, err);
            dsv4_session_free(s);
            goto done;
        }
        double fill = dsv4_now() - t0;
        if (tty) fprintf(stderr, "context %d: synthetic fill %.2f s (%d threads)\n", C, fill, cthr[0]);
        for (int ti = 0; ti < ncthr && !cli_interrupted; ti++) {
            int T = cthr[ti];
            double bw;
            if (dsv4_set_threads(T, err, sizeof err) != 0) {
                fprintf(stderr, "dsv4 bench: threads %d: %s\n", T, err);
                dsv4_session_free(s);
                goto done;
            }
            if (!get(&R, T, "read_bandwidth", 0, &bw)) {
                bw = measure_bandwidth(bwbuf, bwbytes, 5) / 1e9;
                put(&R, T, "read_bandwidth", 0, bw, "GB/s");
            }
            if (ti == 0) put(&R, T, "ctx_fill", C, fill, "s");
            double td = time_decode(s, full.info.vocab_size, WARM, n_dec, full.logits, err);
            if (td < 0) { fprintf(stderr, "dsv4 bench: context %d: %s\n", C, err); dsv4_session_free(s); goto done; }
            double bytes = full.info.bytes_per_token + cache_bytes(c, C);
            put(&R, T, "ctx_decode", C, td, "ms/token");
            put(&R, T, "ctx_bytes", C, bytes / 1e9, "GB/token");
            put(&R, T, "ctx_vs_bound", C, bytes / (bw * 1e9) * 1e3 / td, "ratio");
            if (tty) fprintf(stderr, "threads %d: context %d: decode %.2f ms/token\n", T, C, td);
        }
        dsv4_session_free(s);
    }

    /* table: rows = measures, columns = thread counts */
    int cols[2 * MAXLIST], ncols = 0;
    for (int i = 0; i < nthr; i++) cols[ncols++] = thr[i];
    for (int i = 0; i < ncthr; i++) {
        int dup = 0;
        for (int j = 0; j < ncols; j++) dup |= cols[j] == cthr[i];
        if (!dup) cols[ncols++] = cthr[i];
    }
    if (cli_interrupted) printf("\ninterrupted: the table holds what was measured before Ctrl-C\n");
    printf("\nkernel path %s; %d physical cores; -n %d timed decode steps after %d untimed\n", kpath,
           dsv4_default_threads(), n_dec, WARM);
    printf("  %-44s", "threads");
    for (int i = 0; i < ncols; i++) printf(" %12d", cols[i]);
    printf("\n");
    char bwlab[64];
    snprintf(bwlab, sizeof bwlab, "read bandwidth (GB/s, %d MiB, best of 5)", bw_mib);
    row(&R, cols, ncols, bwlab, "read_bandwidth", 0, "%.2f");
    row(&R, cols, ncols, "kernel peak (GMAC/s, FP8 256x2048 x32)", "kernel_peak", 0, "%.2f");
    char iplab[64];
    snprintf(iplab, sizeof iplab, "instruction peak (GMAC/s, %s)", instr);
    row(&R, cols, ncols, iplab, "instr_peak", 0, "%.2f");
    row(&R, cols, ncols, "decode (ms/token)", "decode_full", 0, "%.2f");
    row(&R, cols, ncols, "  bandwidth bound (ms/token)", "decode_bound", 0, "%.2f");
    row(&R, cols, ncols, "  decode vs bound", "decode_vs_bound", 0, "%.3f");
    if (twin) {
        row(&R, cols, ncols, "decode, small-vocab twin (ms/token)", "decode_twin", 0, "%.2f");
        row(&R, cols, ncols, "  head = full - twin (ms/token)", "head", 0, "%.2f");
        char lab[64];
        snprintf(lab, sizeof lab, "  per layer-token = twin / %d (ms)", c->n_layers);
        row(&R, cols, ncols, lab, "layer_token", 0, "%.2f");
        row(&R, cols, ncols, "  twin vs its bound", "twin_vs_bound", 0, "%.3f");
    }
    for (int bi = 0; bi < nbat; bi++) {
        char lab[64];
        snprintf(lab, sizeof lab, "batch of %d sessions (ms/step)", bat[bi]);
        row(&R, cols, ncols, lab, "batch_step", bat[bi], "%.2f");
        row(&R, cols, ncols, "  aggregate decode (tok/s)", "batch_tokps", bat[bi], "%.2f");
        row(&R, cols, ncols, "  speed-up over separate decodes", "batch_speedup", bat[bi], "%.2f");
    }
    for (int qi = 0; qi < npch; qi++)
        for (int pi = 0; pi < npre; pi++) {
            char lab[64], met[4][32];
            prefill_metrics(met, pch[qi]);
            snprintf(lab, sizeof lab, "prefill %d tokens, chunk %d (tok/s)", pre[pi],
                     pch[qi] ? pch[qi] : dsv4_model_chunk_tokens(full.m));
            row(&R, cols, ncols, lab, met[0], pre[pi], "%.2f");
            row(&R, cols, ncols, "  achieved GMAC/s", met[1], pre[pi], "%.2f");
            row(&R, cols, ncols, "  prefill vs kernel peak", met[2], pre[pi], "%.3f");
            row(&R, cols, ncols, "  prefill vs instruction peak", met[3], pre[pi], "%.3f");
        }
    for (int ci = 0; ci < nctx && ncthr > 0 && !cli_interrupted; ci++) {
        char lab[64], cn[32];
        snprintf(lab, sizeof lab, "decode at context %s (ms/token)", ctx_name(ctx[ci], cn));
        row(&R, cols, ncols, lab, "ctx_decode", ctx[ci], "%.2f");
        row(&R, cols, ncols, "  bytes read per token (GB)", "ctx_bytes", ctx[ci], "%.3f");
        row(&R, cols, ncols, "  decode vs bound", "ctx_vs_bound", ctx[ci], "%.3f");
        row(&R, cols, ncols, "  synthetic fill (s)", "ctx_fill", ctx[ci], "%.2f");
    }
    if (cf) {
        fprintf(cf, "kernel,threads,metric,param,value,unit\n");
        for (int i = 0; i < R.n; i++)
            fprintf(cf, "%s,%d,%s,%ld,%.6g,%s\n", kpath, R.v[i].threads, R.v[i].metric, R.v[i].param, R.v[i].value,
                    R.v[i].unit);
        if (ferror(cf)) { fprintf(stderr, "dsv4 bench: write error on %s\n", csv); goto done; }
        printf("wrote %d values to %s\n", R.n, csv);
    }
    rc = cli_stdout_close("bench") ? 1 : cli_interrupted ? 130 : 0;
done:
    cli_sigint_end();
    if (cf && fclose(cf) != 0 && rc == 0) { fprintf(stderr, "dsv4 bench: write error on %s\n", csv); rc = 1; }
    if (pc) { free(pc->out); free(pc->scratch); }
    free(pc); free(pw); free(ps); free(px); dsv4_huge_free(bwbuf, bwbytes); free(wbuf);
    free(R.v);
    for (int qi = 0; qi < MAXLIST; qi++) close_model(&pms[qi]);
    close_model(&tw);
    close_model(&full);
    return rc;
}
