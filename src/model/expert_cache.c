/* model/expert_cache.c — see expert_cache.h; design and measurements in docs/memory-budget.md.
 *
 * Budget: resident = checkpoint bytes other than the bound blocks' routed experts (they stay mapped and are
 * touched as used); the cache gets (budget - resident) / entry bytes slots, at least K (one token's experts of
 * one layer: the forward pass pins one at a time, K gives read-ahead room for a decode step). A budget that
 * holds resident + every expert keeps the mmap path (no cache).
 *
 * Entry read: the six tensors of an expert lie in one shard; when they are contiguous up to small gaps (the
 * safetensors writers order by name, so experts.N.w1.scale .. experts.N.w3.weight follow each other) one pread
 * of the span fills the slot and the views point into it, else six preads into fixed offsets. The range is
 * then dropped from the page cache (POSIX_FADV_DONTNEED) so the kernel does not keep a second copy.
 *
 * Slot states: EMPTY, LOADING (a thread is reading it; others wait on `cv`), READY. `pending` marks an entry
 * announced as needed soon (read ahead, or resident when announced) and not yet used; read-ahead never evicts
 * a pending, pinned or loading entry, a lookup evicts a pending one only when nothing else is free.
 * Read-ahead queue: keys with a `queued` mark; an item is still wanted when its block is the block being
 * routed (and the expert is not used yet) or the next one; others are dropped when popped.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "model/expert_cache.h"
#include "model/model.h"
#include "io/readat.h"
#include "base/util.h"

enum { EMPTY, LOADING, READY };
#define NPART 6
#define ALIGN 64

typedef struct {
    int key;              /* layer * E + e, or -1 */
    int state, pins;
    int pending;          /* announced, not used yet */
    int ahead;            /* filled by read-ahead and not used yet (for prefetch_unused) */
    uint64_t tick;        /* last use (LRU; LFU tie-break) */
    dsv4_wview w[3];      /* views into the slot */
} xslot;

struct dsv4_xcache {
    const dsv4_model *m;
    int E, K, nblk, nkeys, nslots, policy, pmode, nth;
    size_t slot_bytes, part_bytes[NPART], part_off[NPART];
    uint8_t *mem; size_t mem_bytes;
    int nfiles; int *fds; const char **paths;   /* one fd per shard path (pointer identity with st_locate's) */
    int32_t *key2slot;                          /* [nkeys] */
    uint8_t *queued;                            /* [nkeys] */
    uint32_t *freq;                             /* [nkeys] LFU counts */
    xslot *slots;
    uint64_t clock, uses_since_decay;
    int cur_layer; uint8_t *need_cur;           /* [E] experts of cur_layer announced and not used yet */
    int32_t *last_ids;                          /* [nblk][K] latest token's routing per block, -1 unknown */
    uint8_t *mark;                              /* [E] scratch of dsv4_xc_route */
    int *q; int qh, qn, qcap;                   /* read-ahead ring of keys */
    pthread_mutex_t mu;
    pthread_cond_t cv;                          /* slot state changes, releases */
    pthread_cond_t qcv;                         /* queue items, stop */
    int waiters, stop, nstarted;
    pthread_t *th;
    dsv4_expert_stats st;
};

/* ------------------------------------------------------------------ geometry */

static size_t view_data_bytes(const dsv4_wview *w) {
    return w->fmt == DSV4_W_FP4 ? (size_t)w->rows * w->cols / 2 : (size_t)w->rows * w->cols;
}
static size_t view_scale_bytes(const dsv4_wview *w) {
    return w->fmt == DSV4_W_FP4 ? (size_t)w->rows * (w->cols / 32)
                                : (size_t)((w->rows + 127) / 128) * ((w->cols + 127) / 128);
}
static const dsv4_wview *src_view(const dsv4_xcache *c, int key, int i) {
    const dsv4_layer *L = &c->m->layers[key / c->E];
    int e = key % c->E;
    return i == 0 ? &L->w1[e] : i == 1 ? &L->w2[e] : &L->w3[e];
}
static int file_index(const dsv4_xcache *c, const char *path) {
    for (int i = 0; i < c->nfiles; i++) if (c->paths[i] == path) return i;
    return -1;
}

/* Read entry `key` into slot sl (called without the lock; the slot is LOADING, owned by the caller). */
static int fill(dsv4_xcache *c, int sl, int key, char *err, size_t errlen) {
    xslot *S = &c->slots[sl];
    uint8_t *dst = c->mem + (size_t)sl * c->slot_bytes;
    const void *ptr[NPART];
    uint64_t off[NPART];
    int fi = -1, same = 1;
    for (int p = 0; p < NPART; p++) {
        const dsv4_wview *w = src_view(c, key, p / 2);
        ptr[p] = p % 2 ? (const void *)w->scale : w->data;
        const char *path;
        if (st_locate(c->m->st, ptr[p], &path, &off[p]))
            return dsv4_fail(err, errlen, "%s: expert %d of block %d is not in a mapped shard", c->m->dir, key % c->E,
                             key / c->E);
        int f = file_index(c, path);
        if (f < 0) return dsv4_fail(err, errlen, "%s: shard of expert %d of block %d not open", path, key % c->E, key / c->E);
        if (fi < 0) fi = f; else if (f != fi) same = 0;
        (void)f;
    }
    uint64_t lo = off[0], hi = off[0] + c->part_bytes[0];
    for (int p = 1; p < NPART; p++) {
        if (off[p] < lo) lo = off[p];
        if (off[p] + c->part_bytes[p] > hi) hi = off[p] + c->part_bytes[p];
    }
    size_t at[NPART];
    double t0 = dsv4_now();
    uint64_t nread = 0;
    int rc = 0;
    if (same && hi - lo <= c->slot_bytes) {
        rc = dsv4_readat(c->fds[fi], c->paths[fi], dst, (size_t)(hi - lo), lo, err, errlen);
        for (int p = 0; p < NPART; p++) at[p] = (size_t)(off[p] - lo);
        nread = hi - lo;
        dsv4_readat_drop(c->fds[fi], lo, hi - lo);
    } else {
        for (int p = 0; p < NPART && !rc; p++) {
            const char *path; uint64_t o;
            st_locate(c->m->st, ptr[p], &path, &o);
            int f = file_index(c, path);
            rc = dsv4_readat(c->fds[f], path, dst + c->part_off[p], c->part_bytes[p], o, err, errlen);
            at[p] = c->part_off[p];
            nread += c->part_bytes[p];
            dsv4_readat_drop(c->fds[f], o, c->part_bytes[p]);
        }
    }
    double dt = dsv4_now() - t0;
    pthread_mutex_lock(&c->mu);
    c->st.read_seconds += dt;
    if (rc) c->st.read_errors++;
    else { c->st.reads++; c->st.bytes_read += nread; }
    pthread_mutex_unlock(&c->mu);
    if (rc) return -1;
    for (int i = 0; i < 3; i++) {
        S->w[i] = *src_view(c, key, i);
        S->w[i].data = dst + at[2 * i];
        S->w[i].scale = dst + at[2 * i + 1];
    }
    return 0;
}

/* ------------------------------------------------------------------ policy (lock held) */

/* Eviction order: smaller is evicted first. */
static int older(const dsv4_xcache *c, const xslot *a, const xslot *b) {
    if (c->policy == DSV4_EVICT_LFU) {
        uint32_t fa = c->freq[a->key], fb = c->freq[b->key];
        if (fa != fb) return fa < fb;
    }
    return a->tick < b->tick;
}

/* A slot to (re)fill: an empty one, else the policy's victim among unpinned READY entries; pending entries only
 * when `take_pending` (a lookup), and only if nothing else is free. -1 when none. */
static int victim(const dsv4_xcache *c, int take_pending) {
    int best = -1, bestp = -1;
    for (int i = 0; i < c->nslots; i++) {
        const xslot *S = &c->slots[i];
        if (S->state == EMPTY) return i;
        if (S->state != READY || S->pins) continue;
        if (S->pending) {
            if (take_pending && (bestp < 0 || older(c, S, &c->slots[bestp]))) bestp = i;
        } else if (best < 0 || older(c, S, &c->slots[best])) {
            best = i;
        }
    }
    return best >= 0 ? best : bestp;
}

static void evict(dsv4_xcache *c, int sl) {
    xslot *S = &c->slots[sl];
    if (S->key >= 0) {
        c->key2slot[S->key] = -1;
        if (S->ahead) c->st.prefetch_unused++;
    }
    S->key = -1; S->state = EMPTY; S->pending = S->ahead = 0;
}

static void count_use(dsv4_xcache *c, int key) {
    c->freq[key]++;
    if (++c->uses_since_decay >= (uint64_t)c->nslots * 16) {   /* ageing: halve every count */
        for (int k = 0; k < c->nkeys; k++) c->freq[k] >>= 1;
        c->uses_since_decay = 0;
    }
}

static void wait_cv(dsv4_xcache *c) {
    c->waiters++;
    pthread_cond_wait(&c->cv, &c->mu);
    c->waiters--;
}

/* ------------------------------------------------------------------ lookups */

int dsv4_xc_acquire(dsv4_xcache *c, int layer, int e, dsv4_xc_ref *r, char *err, size_t errlen) {
    int key = layer * c->E + e;
    double t0 = 0;
    int waited = 0;
    pthread_mutex_lock(&c->mu);
    c->st.lookups++;
    count_use(c, key);
    if (layer == c->cur_layer) c->need_cur[e] = 0;
    for (;;) {
        int sl = c->key2slot[key];
        if (sl >= 0) {
            xslot *S = &c->slots[sl];
            if (S->state == READY) {
                S->pins++;
                S->tick = ++c->clock;
                if (waited) c->st.late++; else if (S->ahead) c->st.ahead++; else c->st.hits++;
                S->pending = S->ahead = 0;
                if (waited) c->st.wait_seconds += dsv4_now() - t0;
                r->w1 = S->w[0]; r->w2 = S->w[1]; r->w3 = S->w[2]; r->slot = sl;
                pthread_mutex_unlock(&c->mu);
                return 0;
            }
            if (!waited) { waited = 1; t0 = dsv4_now(); }
            wait_cv(c);   /* LOADING by another thread */
            continue;
        }
        int v = victim(c, 1);
        if (v < 0) {   /* every slot pinned or loading (other sessions) */
            if (!waited) { waited = 1; t0 = dsv4_now(); }
            wait_cv(c);
            continue;
        }
        evict(c, v);
        xslot *S = &c->slots[v];
        S->key = key; S->state = LOADING; S->pins = 1;
        c->key2slot[key] = v;
        if (!waited) t0 = dsv4_now();
        pthread_mutex_unlock(&c->mu);
        int rc = fill(c, v, key, err, errlen);
        pthread_mutex_lock(&c->mu);
        if (rc) {
            c->key2slot[key] = -1;
            S->key = -1; S->state = EMPTY; S->pins = 0;
        } else {
            S->state = READY;
            S->tick = ++c->clock;
            c->st.misses++;
            r->w1 = S->w[0]; r->w2 = S->w[1]; r->w3 = S->w[2]; r->slot = v;
        }
        c->st.wait_seconds += dsv4_now() - t0;
        if (c->waiters) pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&c->mu);
        return rc;
    }
}

void dsv4_xc_release(dsv4_xcache *c, const dsv4_xc_ref *r) {
    pthread_mutex_lock(&c->mu);
    if (--c->slots[r->slot].pins == 0 && c->waiters) pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* ------------------------------------------------------------------ read-ahead */

static void enqueue(dsv4_xcache *c, int key) {
    if (c->queued[key] || c->qn == c->qcap) return;
    int sl = c->key2slot[key];
    if (sl >= 0) {   /* resident or loading: just mark it as needed soon */
        c->slots[sl].pending = 1;
        c->slots[sl].tick = ++c->clock;
        return;
    }
    c->q[(c->qh + c->qn) % c->qcap] = key;
    c->qn++;
    c->queued[key] = 1;
}

static int wanted(const dsv4_xcache *c, int key) {
    int l = key / c->E;
    return (l == c->cur_layer && c->need_cur[key % c->E]) || l == c->cur_layer + 1;
}

void dsv4_xc_route(dsv4_xcache *c, int layer, const int *rid, int nr, const int32_t *tokens, int n) {
    const dsv4_config *cf = &c->m->cfg;
    int E = c->E, K = c->K;
    pthread_mutex_lock(&c->mu);
    c->cur_layer = layer;
    memset(c->mark, 0, (size_t)E);
    for (int i = 0; i < nr; i++) c->mark[rid[i]] = 1;
    memcpy(c->need_cur, c->mark, (size_t)E);
    /* guesses for this block that the router did not pick */
    for (int i = 0; i < c->nslots; i++) {
        xslot *S = &c->slots[i];
        if (S->key >= 0 && S->key / E == layer && S->pending && !c->mark[S->key % E]) {
            S->pending = 0;
            if (S->ahead) { c->st.prefetch_unused++; S->ahead = 0; }
        }
    }
    if (c->pmode != DSV4_PREFETCH_OFF) {
        for (int e = 0; e < E; e++) if (c->mark[e]) enqueue(c, layer * E + e);
        int nx = layer + 1;
        if (nx < cf->n_layers && layer < cf->n_layers) {
            const dsv4_layer *L = &c->m->layers[nx];
            if (L->tid2eid) {
                for (int t = 0; t < n; t++)
                    for (int k = 0; k < K; k++) enqueue(c, nx * E + L->tid2eid[(size_t)tokens[t] * K + k]);
            } else if (c->pmode == DSV4_PREFETCH_GUESS) {
                for (int k = 0; k < K; k++)
                    if (c->last_ids[nx * K + k] >= 0) enqueue(c, nx * E + c->last_ids[nx * K + k]);
            }
        }
        if (c->qn) pthread_cond_broadcast(&c->qcv);
    }
    if (nr >= K) for (int k = 0; k < K; k++) c->last_ids[(size_t)layer * K + k] = rid[nr - K + k];
    pthread_mutex_unlock(&c->mu);
}

static void *reader(void *arg) {
    dsv4_xcache *c = arg;
    char err[256];
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->stop && c->qn == 0) pthread_cond_wait(&c->qcv, &c->mu);
        if (c->stop) break;
        int key = c->q[c->qh];
        c->qh = (c->qh + 1) % c->qcap;
        c->qn--;
        c->queued[key] = 0;
        int v = -1;
        for (;;) {
            if (c->stop || c->key2slot[key] >= 0 || !wanted(c, key)) { v = -1; break; }
            if ((v = victim(c, 0)) >= 0) break;
            wait_cv(c);
        }
        if (v < 0) continue;
        evict(c, v);
        xslot *S = &c->slots[v];
        S->key = key; S->state = LOADING; S->pins = 0; S->pending = 1;
        c->key2slot[key] = v;
        pthread_mutex_unlock(&c->mu);
        int rc = fill(c, v, key, err, sizeof err);
        pthread_mutex_lock(&c->mu);
        if (rc) {   /* the lookup that needs it reads it again and reports the error */
            c->key2slot[key] = -1;
            S->key = -1; S->state = EMPTY; S->pending = 0;
        } else {
            S->state = READY; S->ahead = 1;
            S->tick = ++c->clock;
            c->st.prefetched++;
        }
        if (c->waiters) pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* ------------------------------------------------------------------ create / free */

static int fmt_gib(char *buf, size_t n, uint64_t b) {
    double g = (double)b / 1073741824.0, mi = (double)b / 1048576.0;
    if (g >= 1) return snprintf(buf, n, "%.2f GiB (%llu bytes)", g, (unsigned long long)b);
    if (mi >= 1) return snprintf(buf, n, "%.2f MiB (%llu bytes)", mi, (unsigned long long)b);
    return snprintf(buf, n, "%.2f KiB (%llu bytes)", (double)b / 1024.0, (unsigned long long)b);
}

int dsv4_xc_create(dsv4_xcache **out, const dsv4_model *m, const dsv4_load_options *o, dsv4_expert_stats *st,
                   char *err, size_t errlen) {
    *out = NULL;
    memset(st, 0, sizeof *st);
    if (o->policy != DSV4_EVICT_LRU && o->policy != DSV4_EVICT_LFU)
        return dsv4_fail(err, errlen, "dsv4_model_load_opts: policy %d is not DSV4_EVICT_LRU or DSV4_EVICT_LFU", o->policy);
    if (o->prefetch < 0 || o->prefetch > DSV4_PREFETCH_GUESS)
        return dsv4_fail(err, errlen, "dsv4_model_load_opts: prefetch %d is not one of DSV4_PREFETCH_*", o->prefetch);
    if (o->io_threads < 0 || o->io_threads > 64)
        return dsv4_fail(err, errlen, "dsv4_model_load_opts: io_threads %d must be in 0..64", o->io_threads);
    const dsv4_config *cf = &m->cfg;
    int E = cf->n_routed_experts, K = cf->n_activated_experts, nblk = m->n_blocks;
    size_t part[NPART], entry = 0, exact = 0;
    const dsv4_layer *L0 = &m->layers[0];
    for (int i = 0; i < 3; i++) {
        const dsv4_wview *w = i == 0 ? &L0->w1[0] : i == 1 ? &L0->w2[0] : &L0->w3[0];
        part[2 * i] = view_data_bytes(w);
        part[2 * i + 1] = view_scale_bytes(w);
    }
    /* every slot holds any expert: the loader makes all routed experts one format and shape (config-implied);
     * check it here, since a slot sized from expert 0 would otherwise misread another */
    for (int l = 0; l < nblk; l++)
        for (int e = 0; e < E; e++)
            for (int i = 0; i < 3; i++) {
                const dsv4_layer *L = &m->layers[l];
                const dsv4_wview *w = i == 0 ? &L->w1[e] : i == 1 ? &L->w2[e] : &L->w3[e];
                if (view_data_bytes(w) != part[2 * i] || view_scale_bytes(w) != part[2 * i + 1])
                    return dsv4_fail(err, errlen, "%s: expert %d of block %d has another size than expert 0 of block 0 "
                                     "(the expert cache needs one size)", m->dir, e, l);
            }
    size_t poff[NPART];
    for (int p = 0; p < NPART; p++) {
        poff[p] = entry;
        entry += (part[p] + ALIGN - 1) & ~(size_t)(ALIGN - 1);
        exact += part[p];
    }
    uint64_t experts = (uint64_t)exact * (uint64_t)E * (uint64_t)nblk;
    uint64_t total = (uint64_t)m->file_bytes;
    uint64_t resident = total > experts ? total - experts : 0;
    uint64_t minb = resident + (uint64_t)K * entry;
    st->budget_bytes = o->mem_bytes;
    st->resident_bytes = resident;
    st->min_bytes = minb;
    st->entry_bytes = entry;
    if (o->mem_bytes < minb) {
        char a[64], b[64], r[64], e1[64];
        fmt_gib(a, sizeof a, o->mem_bytes); fmt_gib(b, sizeof b, minb); fmt_gib(r, sizeof r, resident);
        fmt_gib(e1, sizeof e1, entry);
        return dsv4_fail(err, errlen, "memory budget %s is below the minimum %s for %s: resident weights %s + %d "
                         "experts of %s (one token's routed experts of one layer)", a, b, m->dir, r, K, e1);
    }
    if (o->mem_bytes >= total) { st->fits = 1; return 0; }   /* the whole checkpoint fits: mmap path */
    uint64_t ns = (o->mem_bytes - resident) / entry;
    if (ns > (uint64_t)E * nblk) ns = (uint64_t)E * nblk;
    dsv4_xcache *c = calloc(1, sizeof *c);
    if (!c) return dsv4_fail(err, errlen, "%s: out of memory (expert cache)", m->dir);
    c->m = m; c->E = E; c->K = K; c->nblk = nblk; c->nkeys = E * nblk; c->nslots = (int)ns;
    c->policy = o->policy;
    c->pmode = o->prefetch == DSV4_PREFETCH_DEFAULT ? DSV4_PREFETCH_KNOWN : o->prefetch;
    c->slot_bytes = entry;
    memcpy(c->part_bytes, part, sizeof part);
    memcpy(c->part_off, poff, sizeof poff);
    c->cur_layer = -2;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    pthread_cond_init(&c->qcv, NULL);
    c->qcap = c->nkeys < 4096 ? c->nkeys : 4096;
    c->key2slot = malloc((size_t)c->nkeys * sizeof *c->key2slot);
    c->queued = calloc((size_t)c->nkeys, 1);
    c->freq = calloc((size_t)c->nkeys, sizeof *c->freq);
    c->slots = calloc((size_t)c->nslots, sizeof *c->slots);
    c->need_cur = calloc((size_t)E, 1);
    c->mark = calloc((size_t)E, 1);
    c->last_ids = malloc((size_t)nblk * K * sizeof *c->last_ids);
    c->q = malloc((size_t)c->qcap * sizeof *c->q);
    c->mem_bytes = (size_t)ns * entry;
    c->mem = mmap(NULL, c->mem_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (c->mem == MAP_FAILED) c->mem = NULL;
    if (!c->key2slot || !c->queued || !c->freq || !c->slots || !c->need_cur || !c->mark || !c->last_ids || !c->q ||
        !c->mem) {
        dsv4_xc_free(c);
        return dsv4_fail(err, errlen, "%s: out of memory (expert cache of %d slots)", m->dir, (int)ns);
    }
    for (int k = 0; k < c->nkeys; k++) c->key2slot[k] = -1;
    for (int i = 0; i < nblk * K; i++) c->last_ids[i] = -1;
    for (int i = 0; i < c->nslots; i++) c->slots[i].key = -1;
    /* one descriptor per shard holding routed experts */
    for (int l = 0; l < nblk; l++)
        for (int e = 0; e < E; e++)
            for (int p = 0; p < NPART; p++) {
                const dsv4_wview *w = src_view(c, l * E + e, p / 2);
                const char *path; uint64_t off;
                if (st_locate(m->st, p % 2 ? (const void *)w->scale : w->data, &path, &off)) {
                    dsv4_xc_free(c);
                    return dsv4_fail(err, errlen, "%s: expert %d of block %d is not in a mapped shard", m->dir, e, l);
                }
                if (file_index(c, path) >= 0) continue;
                int *nf = realloc(c->fds, (size_t)(c->nfiles + 1) * sizeof *nf);
                if (nf) c->fds = nf;
                const char **np = nf ? realloc(c->paths, (size_t)(c->nfiles + 1) * sizeof *np) : NULL;
                if (np) c->paths = np;
                if (!nf || !np) { dsv4_xc_free(c); return dsv4_fail(err, errlen, "%s: out of memory", m->dir); }
                int fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0) {
                    int en = errno;
                    dsv4_xc_free(c);
                    return dsv4_fail(err, errlen, "%s: cannot open: %s", path, strerror(en));
                }
                c->fds[c->nfiles] = fd; c->paths[c->nfiles] = path; c->nfiles++;
            }
    c->nth = c->pmode == DSV4_PREFETCH_OFF ? 0 : (o->io_threads ? o->io_threads : 2);
    if (c->nth) {
        c->th = calloc((size_t)c->nth, sizeof *c->th);
        if (!c->th) { dsv4_xc_free(c); return dsv4_fail(err, errlen, "%s: out of memory", m->dir); }
        for (int i = 0; i < c->nth; i++) {
            if (pthread_create(&c->th[i], NULL, reader, c) != 0) {
                dsv4_xc_free(c);
                return dsv4_fail(err, errlen, "%s: cannot start the expert read threads", m->dir);
            }
            c->nstarted++;
        }
    }
    c->st = *st;
    c->st.active = 1;
    c->st.slots = c->nslots;
    c->st.cache_bytes = c->mem_bytes;
    *st = c->st;
    *out = c;
    return 0;
}

void dsv4_xc_free(dsv4_xcache *c) {
    if (!c) return;
    pthread_mutex_lock(&c->mu);
    c->stop = 1;
    pthread_cond_broadcast(&c->qcv);
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    for (int i = 0; i < c->nstarted; i++) pthread_join(c->th[i], NULL);
    for (int i = 0; i < c->nfiles; i++) close(c->fds[i]);
    if (c->mem) munmap(c->mem, c->mem_bytes);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    pthread_cond_destroy(&c->qcv);
    free(c->th); free(c->fds); free(c->paths); free(c->key2slot); free(c->queued); free(c->freq); free(c->slots);
    free(c->need_cur); free(c->mark); free(c->last_ids); free(c->q);
    free(c);
}

void dsv4_xc_stats(dsv4_xcache *c, dsv4_expert_stats *out) {
    pthread_mutex_lock(&c->mu);
    *out = c->st;
    pthread_mutex_unlock(&c->mu);
}

void dsv4_xc_stats_reset(dsv4_xcache *c) {
    pthread_mutex_lock(&c->mu);
    dsv4_expert_stats k = c->st;
    memset(&c->st, 0, sizeof c->st);
    c->st.active = k.active; c->st.fits = k.fits; c->st.slots = k.slots; c->st.budget_bytes = k.budget_bytes;
    c->st.resident_bytes = k.resident_bytes; c->st.min_bytes = k.min_bytes; c->st.entry_bytes = k.entry_bytes;
    c->st.cache_bytes = k.cache_bytes;
    pthread_mutex_unlock(&c->mu);
}
