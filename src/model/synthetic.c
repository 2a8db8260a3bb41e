/* model/synthetic.c — dsv4_session_fill_synthetic: put a session into the state it would have after `pos`
 * tokens of random content, without evaluating them (the long-context decode benchmark, `dsv4 bench --ctx`;
 * docs/performance.md). Internal (model/model.h), not part of include/dsv4.h.
 *
 * Every value has the form the forward pass (forward.c) would have written, so that the decode steps that
 * follow do exactly the work of a real session at that position (same key counts, same top-k, same state
 * sizes) on plausible numbers:
 *   window ring (every block, positions max(0, pos - wring) .. pos-1; the MTP block's sparse ring as after an
 *     MTP call at pos-1: its slot pos-1 empty): raw_kv's form: RMSNorm(random; kv_norm) rounded to BF16, RoPE at
 *     the slot's position on the last rope_dim dims, FP8 simulation (blocks of 64) of the nope dims;
 *   compressed entries 0 .. pos/R - 1 (ratio R > 0): comp_finish's form: RMSNorm(random; compressor norm),
 *     RoPE at w*R, FP8 simulation of the nope dims;
 *   indexer keys 0 .. pos/4 - 1 (CSA): RMSNorm(random; indexer compressor norm), RoPE, Hadamard, FP4 simulation;
 *   compressor partial states (F32): the rows comp_push would hold after pushing positions up to pos-1, i.e.
 *     the previous block (overlapping CSA compressor) and the current partial block, random O(1) projections
 *     and scores (+ ape); at a block boundary (pos % R == 0) exactly the state after an emission;
 *   MTP history: random BF16 trunk states and token ids for the last wring positions, last_x = that of pos-1.
 * Values come from a per-(seed, block, table, index) PRNG stream, so the state does not depend on the thread
 * count; the tables are filled in parallel (dsv4_parallel_for, jobs of up to 4096 entries). At 1 Mi tokens a
 * CSA layer holds 262,144 compressed entries and as many indexer keys: about a second per layer on one core.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "model/model.h"
#include "kernels/pool.h"
#include "base/util.h"

enum { T_WIN, T_ENTRY, T_IKEY };

typedef struct { int block, table; int64_t first, count; } fill_job;

typedef struct {
    dsv4_session *s;
    uint64_t seed;
    const fill_job *jobs;
    float *scratch;       /* [njobs][maxdim] */
    size_t maxdim;
} fill_ctx;

/* splitmix64 of (seed, a, b, c): an independent stream per entry */
static uint64_t mix(uint64_t seed, uint64_t a, uint64_t b, uint64_t c) {
    uint64_t h = seed ^ (a * 0x9E3779B97F4A7C15ULL) ^ (b * 0xC2B2AE3D27D4EB4FULL) ^ (c * 0x165667B19E3779F9ULL);
    h += 0x9E3779B97F4A7C15ULL;
    h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ULL;
    h = (h ^ (h >> 27)) * 0x94D049BB133111EBULL;
    return (h ^ (h >> 31)) | 1;
}
static inline uint64_t xs(uint64_t *r) {   /* xorshift64* */
    uint64_t x = *r;
    x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
    *r = x;
    return x * 0x2545F4914F6CDD1DULL;
}
/* uniform in [-a, a) */
static void rand_fill(float *x, size_t n, uint64_t *r, float a) {
    for (size_t i = 0; i < n; i++) x[i] = a * ((float)(xs(r) >> 40) * (2.0f / 16777216.0f) - 1.0f);
}

static void fill_task(void *vctx, int j) {
    fill_ctx *c = vctx;
    dsv4_session *s = c->s;
    const dsv4_config *cf = &s->m->cfg;
    const fill_job *job = &c->jobs[j];
    const dsv4_layer *L = &s->m->layers[job->block];
    dsv4_block_state *b = &s->bs[job->block];
    float *x = c->scratch + (size_t)j * c->maxdim;
    int hd = cf->head_dim, rd = cf->rope_dim, ihd = cf->index_head_dim;
    for (int64_t k = job->first; k < job->first + job->count; k++) {
        uint64_t r = mix(c->seed, (uint64_t)job->block, (uint64_t)job->table, (uint64_t)k);
        if (job->table == T_WIN) {          /* k = position; raw_kv's form */
            rand_fill(x, (size_t)hd, &r, 1.7320508f);
            dsv4_rmsnorm(x, x, L->kv_norm, hd, cf->norm_eps, 1);
            dsv4_rope(x + hd - rd, rd, L->rope_f, k, 0);
            dsv4_fp8_sim(x, hd - rd, 64);
            int slot = (int)(k % s->wring);
            for (int i = 0; i < hd; i++) b->win[(size_t)slot * hd + i] = dsv4_f32_to_bf16(x[i]);
            b->slot_pos[slot] = k;
        } else if (job->table == T_ENTRY) { /* k = entry index; comp_finish's form (main compressor) */
            rand_fill(x, (size_t)hd, &r, 1.7320508f);
            for (int i = 0; i < hd; i++) x[i] = dsv4_round_bf16(x[i]);
            dsv4_rmsnorm(x, x, L->comp.norm, hd, cf->norm_eps, 1);
            dsv4_rope(x + hd - rd, rd, L->rope_f, k * L->comp.R, 0);
            dsv4_entry_store(cf, x, b->entries + (size_t)k * s->ent_bytes);
        } else {                            /* indexer key: Hadamard + FP4 */
            rand_fill(x, (size_t)ihd, &r, 1.7320508f);
            for (int i = 0; i < ihd; i++) x[i] = dsv4_round_bf16(x[i]);
            dsv4_rmsnorm(x, x, L->icomp.norm, ihd, cf->norm_eps, 1);
            dsv4_rope(x + ihd - rd, rd, L->rope_f, k * 4, 0);
            dsv4_hadamard(x, ihd);
            dsv4_ikey_store(cf, x, b->ikeys + (size_t)k * s->ikey_bytes);
        }
    }
}

/* The compressor partial state after pushing positions 0 .. pos-1 (comp_push's row bookkeeping, random rows). */
static void fill_comp_state(const dsv4_compressor_w *cw, dsv4_comp_state *st, int64_t pos, uint64_t seed, int block,
                            int which) {
    int R = cw->R, dc = cw->dc, cc = cw->overlap ? 2 : 1, wd = cc * dc;
    int64_t p0 = (pos / R - 1) * R;
    if (p0 < 0) p0 = 0;
    for (int64_t p = p0; p < pos; p++) {
        int ph = (int)(p % R), row = cw->overlap ? R + ph : ph;
        uint64_t r = mix(seed, (uint64_t)block, 16u + (uint64_t)which, (uint64_t)p);
        const float *ape = cw->ape + (size_t)ph * wd;
        rand_fill(st->kv + (size_t)row * wd, (size_t)wd, &r, 1.0f);
        float *sc = st->sc + (size_t)row * wd;
        rand_fill(sc, (size_t)wd, &r, 1.0f);
        for (int i = 0; i < wd; i++) sc[i] += ape[i];
        if ((p + 1) % R == 0 && cw->overlap) {   /* emission: the B half becomes the next block's A half */
            memcpy(st->kv, st->kv + (size_t)R * wd, (size_t)R * wd * sizeof(float));
            memcpy(st->sc, st->sc + (size_t)R * wd, (size_t)R * wd * sizeof(float));
        }
    }
}

int dsv4_session_fill_synthetic(dsv4_session *s, int pos, uint64_t seed, char *err, size_t errlen) {
    if (!s) return dsv4_fail(err, errlen, "dsv4_session_fill_synthetic: session is NULL");
    if (pos < 0 || pos > s->max_ctx)
        return dsv4_fail(err, errlen, "dsv4_session_fill_synthetic: pos %d outside [0, max_ctx %d]", pos, s->max_ctx);
    if (s->v41)   /* its caches (CSA2 records, Engram history, DSpark ring) have no synthetic writer yet */
        return dsv4_fail(err, errlen, "a synthetic context fill is not available for DeepSeek-V4.1 sessions yet");
    const dsv4_model *m = s->m;
    const dsv4_config *cf = &m->cfg;
    dsv4_session_reset(s);
    if (pos == 0) return 0;
    const int64_t P = pos, CHUNK = 4096;
    int n_layers = cf->n_layers;
    /* jobs: window ring, entries, indexer keys of every block, in pieces of CHUNK */
    size_t njobs = 0, cap = 0;
    fill_job *jobs = NULL;
    for (int pass = 0; pass < 2; pass++) {
        njobs = 0;
        for (int l = 0; l < m->n_blocks; l++) {
            const dsv4_layer *L = &m->layers[l];
            if (!s->bs[l].win) continue;   /* blocks without state (MTP blocks after the first) */
            int64_t w0 = P - s->wring < 0 ? 0 : P - s->wring;
            int64_t wend = l >= n_layers ? P - 1 : P;   /* MTP: the speculative slot pos-1 stays empty */
            int64_t range[3][2] = {{w0, wend}, {0, L->ratio > 0 ? P / L->ratio : 0}, {0, L->ratio == 4 ? P / 4 : 0}};
            for (int t = 0; t < 3; t++)
                for (int64_t a = range[t][0]; a < range[t][1]; a += CHUNK) {
                    if (pass) {
                        fill_job *jb = &jobs[njobs];
                        jb->block = l; jb->table = t; jb->first = a;
                        jb->count = range[t][1] - a < CHUNK ? range[t][1] - a : CHUNK;
                    }
                    njobs++;
                }
        }
        if (!pass) {
            cap = njobs;
            if (njobs > (size_t)0x7fffffff) return dsv4_fail(err, errlen, "dsv4_session_fill_synthetic: too many entries");
            jobs = malloc((cap ? cap : 1) * sizeof *jobs);
            if (!jobs) return dsv4_fail(err, errlen, "dsv4_session_fill_synthetic: out of memory");
        }
    }
    size_t maxdim = (size_t)(cf->head_dim > cf->index_head_dim ? cf->head_dim : cf->index_head_dim);
    float *scratch = malloc((njobs ? njobs : 1) * maxdim * sizeof(float));
    if (!scratch) { free(jobs); return dsv4_fail(err, errlen, "dsv4_session_fill_synthetic: out of memory"); }
    fill_ctx ctx = { s, seed, jobs, scratch, maxdim };
    dsv4_parallel_for((int)njobs, fill_task, &ctx);
    free(scratch);
    free(jobs);
    /* compressor partial states */
    for (int l = 0; l < m->n_blocks; l++) {
        const dsv4_layer *L = &m->layers[l];
        dsv4_block_state *b = &s->bs[l];
        if (!b->win) continue;
        if (L->ratio > 0 && b->cs.kv) fill_comp_state(&L->comp, &b->cs, P, seed, l, 0);
        if (L->ratio == 4 && b->ics.kv) fill_comp_state(&L->icomp, &b->ics, P, seed, l, 1);
    }
    /* MTP history: trunk final states and tokens of the last wring positions */
    size_t row = (size_t)cf->hc_mult * cf->dim;
    for (int64_t p = P - s->wring < 0 ? 0 : P - s->wring; p < P; p++) {
        uint64_t r = mix(seed, 0xffffu, 32u, (uint64_t)p);
        float *hx = s->hist_x + (size_t)(p % s->wring) * row;
        rand_fill(hx, row, &r, 1.7320508f);
        for (size_t i = 0; i < row; i++) hx[i] = dsv4_round_bf16(hx[i]);
        s->hist_tok[p % s->wring] = (int32_t)(xs(&r) % (uint64_t)cf->vocab_size);
    }
    memcpy(s->last_x, s->hist_x + (size_t)((P - 1) % s->wring) * row, row * sizeof(float));
    s->have_last = 1;
    s->pos = pos;
    return 0;
}
