/* tools/bench/bench_attn41.c — per-token attention + indexer time of DeepSeek-V4.1-Flash at real shapes, before and
 * after the shared-kernel path, with V4-Flash's as the peer (`make bench-attn41`; docs/performance.md "V4.1").
 *
 *   bench_attn41 [-t LIST] [--ctx LIST] [--runs N] [--old-max-ctx C] [--kernel PATH] [--csv FILE]
 *
 * What one decoded token at context C does in the attention and indexer parts (the projections, compressors and
 * everything else are not timed), on synthetic state of the stored forms (random codes; the work does not depend
 * on the values), calling what the forwards call per one-token step:
 *  - v41 (src/model/forward_v41.c now): V4.1-Flash, 40 layers (docs/v41.md §4.1): layers 0-1 window only (128
 *    keys); 2-19 ratio 2 and 20-39 ratio 1, each attending to the 128-key window plus 512 selected compressed
 *    entries (64 heads x 512, dsv4_sparse_attend; the entries decoded to BF16 in parallel once per selection, as
 *    the forward reuses them across the layers that share it); index sources 2, 8, 14 (C/2 keys), 20 (C keys, the
 *    candidate source: dsv4_csa2_candidates, 2048 blocks of 8) and 24, 28, 32, 36 (only the candidate blocks'
 *    keys), 32 heads x 128 (dsv4_index_scores, V4.1 mode), then dsv4_csa2_topk.
 *  - v41-old: the same token with the loops the V4.1 forward had before (kept here as the baseline): the slot's
 *    keys decoded to F32 once, per key and head a sequential F32 dot product, every key of a ratio-1 source scored
 *    and then masked; per compressed layer the 512 entries decoded to F32 and per head sequential dot products and
 *    P.V; single-threaded.
 *  - v4 (the peer, src/model/forward.c's attend / indexer_scores): V4-Flash, 43 layers: 2 window layers (128
 *    keys), 20 HCA layers (ratio 128: 128 + C/128 entries), 21 CSA layers (ratio 4: the lightning indexer over C/4
 *    keys with 64 heads x 128, dsv4_select_topk of 512, 128 + 512 keys); compressed entries decoded from their
 *    584-byte records serially as entry_load does.
 * For every thread count (dsv4_set_threads) and context: --runs runs (default 5; v41-old: 3) of one token each
 * after one untimed token; the median of wall ms per token and of CPU ms per token (process CPU time: all threads,
 * the pool's spinning included). The machine may be shared: compare per-CPU figures, and read wall times as upper
 * bounds. Output: a table; with --csv one line per value: variant,kernel,threads,ctx,wall_ms,cpu_ms.
 */
#include "dsv4.h"
#include "kernels/kernels.h"
#include "kernels/pool.h"
#include "kernels/quant_v41.h"
#include "model/csa2.h"
#include "model/sparse_attn.h"
#include "model/model.h"
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"

enum { H = 64, HD = 512, RD = 64, WIN = 128, TOPK = 512 };
enum { NH41 = 32, NH4 = 64, IHD = 128 };
enum { IKB = IHD / 2 + IHD / 32, ENT41 = HD / 2 + HD / 16, ENT4 = 2 * RD + (HD - RD) + (HD - RD) / 64 + 1 };

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) { fprintf(stderr, "bench_attn41: out of memory (%zu bytes)\n", n); exit(1); }
    return p;
}
static void fill_bytes(uint8_t *p, size_t n) { for (size_t i = 0; i < n; i++) p[i] = (uint8_t)rnd(); }

/* records with sane scales: FP4/E4M3-16 entries (scale bytes E4M3 in [0x30, 0x40)), FP4/E8M0-32 keys (scales
 * 2^-4..2^3) */
static uint8_t *make_ent41(int64_t n) {
    uint8_t *r = xmalloc((size_t)n * ENT41);
    fill_bytes(r, (size_t)n * ENT41);
    for (int64_t j = 0; j < n; j++)
        for (int b = 0; b < HD / 16; b++) r[(size_t)j * ENT41 + HD / 2 + b] = (uint8_t)(0x30 + rnd() % 16);
    return r;
}
static uint8_t *make_ikeys(int64_t n) {
    uint8_t *r = xmalloc((size_t)n * IKB);
    fill_bytes(r, (size_t)n * IKB);
    for (int64_t j = 0; j < n; j++)
        for (int b = 0; b < IHD / 32; b++) r[(size_t)j * IKB + IHD / 2 + b] = (uint8_t)(123 + rnd() % 8);
    return r;
}
static uint8_t *make_ent4(int64_t n) {   /* V4: rope BF16 [64] + 448 E4M3 + 7 E8M0 (+1 pad) */
    uint8_t *r = xmalloc((size_t)n * ENT4);
    fill_bytes(r, (size_t)n * ENT4);
    for (int64_t j = 0; j < n; j++) {
        uint8_t *e = r + (size_t)j * ENT4;
        for (int i = 0; i < RD; i++) { uint16_t b = bf16_of(unif()); memcpy(e + 2 * i, &b, 2); }
        for (int i = 0; i < HD - RD; i++) if ((e[2 * RD + i] & 0x7f) == 0x7f) e[2 * RD + i] = 0x3f;
        for (int b = 0; b < (HD - RD) / 64; b++) e[2 * RD + HD - RD + b] = (uint8_t)(120 + rnd() % 8);
    }
    return r;
}

typedef struct {
    int64_t C;
    /* V4.1 state */
    uint16_t *win;            /* [WIN][HD] */
    float *winf;              /* the same as F32 (v41-old's ring) */
    uint8_t *comp2, *comp1;   /* compressed entries of the ratio-2 / ratio-1 KV sources: C/2, C records */
    uint8_t *ik2, *ik1;       /* index keys: C/2, C records */
    /* V4 state */
    uint8_t *ent4_csa, *ent4_hca, *ik4;   /* C/4, C/128 entries; C/4 keys */
    /* queries and per-layer constants */
    float *q, *iq41, *iq4, *iw41, *iw4, *sink, *fr;
    uint16_t *qb, *iqb;
    /* scratch */
    const uint16_t **kptr;
    uint16_t *kdec, *ikdec;
    float *asc, *isd, *row, *isc, *fscr, *o, *kd, *kdecf;
    int32_t *sel, *cidx;
    int *iscr;
    uint8_t *cand;
} bstate;

static void bstate_init(bstate *b, int64_t C, int with_old) {
    memset(b, 0, sizeof *b);
    b->C = C;
    b->win = xmalloc((size_t)WIN * HD * 2);
    b->winf = xmalloc((size_t)WIN * HD * 4);
    for (int i = 0; i < WIN * HD; i++) { b->win[i] = bf16_of(unif() * 2); b->winf[i] = bf16_val(b->win[i]); }
    b->comp2 = make_ent41(C / 2);
    b->comp1 = make_ent41(C);
    b->ik2 = make_ikeys(C / 2);
    b->ik1 = make_ikeys(C);
    b->ent4_csa = make_ent4(C / 4);
    b->ent4_hca = make_ent4(C / 128 + 1);
    b->ik4 = make_ikeys(C / 4);
    b->q = xmalloc((size_t)H * HD * 4);
    b->qb = xmalloc((size_t)H * HD * 2);
    for (int i = 0; i < H * HD; i++) { b->qb[i] = bf16_of(unif()); b->q[i] = bf16_val(b->qb[i]); }
    b->iq41 = xmalloc((size_t)NH41 * IHD * 4);
    b->iq4 = xmalloc((size_t)NH4 * IHD * 4);
    for (int i = 0; i < NH41 * IHD; i++) b->iq41[i] = unif();
    for (int i = 0; i < NH4 * IHD; i++) b->iq4[i] = unif();
    for (int h = 0; h < NH41; h++) dsv4_fp4_sim(b->iq41 + h * IHD, IHD, 32);
    for (int h = 0; h < NH4; h++) dsv4_fp4_sim(b->iq4 + h * IHD, IHD, 32);
    b->iqb = xmalloc((size_t)NH4 * IHD * 2);
    b->iw41 = xmalloc(NH41 * 4);
    b->iw4 = xmalloc(NH4 * 4);
    for (int h = 0; h < NH41; h++) b->iw41[h] = bf16_val(bf16_of(unif() * 0.02f));
    for (int h = 0; h < NH4; h++) b->iw4[h] = bf16_val(bf16_of(unif() * 0.02f));
    b->sink = xmalloc(H * 4);
    for (int h = 0; h < H; h++) b->sink[h] = unif();
    b->fr = xmalloc(RD / 2 * 4);
    dsv4_rope_freqs(b->fr, RD, 160000.0f, 1, 16, 65536, 32, 1);
    b->kptr = xmalloc((WIN + TOPK + C / 128 + 1) * sizeof(uint16_t *));
    b->kdec = xmalloc((size_t)(TOPK + C / 128 + 1) * HD * 2);
    b->ikdec = xmalloc((size_t)DSV4_IDX_CHUNK * IHD * 2);
    b->asc = xmalloc((size_t)(WIN + TOPK + C / 128 + 1) * H * 4);
    b->isd = xmalloc((size_t)DSV4_IDX_CHUNK * NH4 * 4);
    b->row = xmalloc((size_t)(C + 1) * 4);
    b->isc = xmalloc((size_t)(C + 1) * 4);
    b->fscr = xmalloc((size_t)(C + 2) * 4);
    b->o = xmalloc((size_t)H * HD * 4);
    b->sel = xmalloc(TOPK * 4);
    b->cidx = xmalloc((size_t)(C + 1) * 4);
    b->iscr = xmalloc((size_t)(2 * C + 4) * sizeof(int));
    b->cand = xmalloc((size_t)C + 1);
    if (with_old) {
        b->kd = xmalloc((size_t)C * IHD * 4);
        b->kdecf = xmalloc((size_t)TOPK * HD * 4);
    }
}

static void bstate_free(bstate *b) {
    void *p[] = {b->win, b->winf, b->comp2, b->comp1, b->ik2, b->ik1, b->ent4_csa, b->ent4_hca, b->ik4, b->q, b->qb,
                 b->iq41, b->iq4, b->iqb, b->iw41, b->iw4, b->sink, b->fr, (void *)b->kptr, b->kdec, b->ikdec, b->asc,
                 b->isd, b->row, b->isc, b->fscr, b->o, b->sel, b->cidx, b->iscr, b->cand, b->kd, b->kdecf};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) free(p[i]);
}

/* V4.1 layer roles (the released layout) */
static int ratio41(int L) { return L < 2 ? 0 : L < 20 ? 2 : 1; }
static int isrc41(int L) { return L == 2 || L == 8 || L == 14 || L == 20 || L == 24 || L == 28 || L == 32 || L == 36; }

/* top-k of row[0..n) as the forward does (dsv4_csa2_topk, -inf picks dropped): the selection count */
static int pick(bstate *b, int64_t n, int64_t vis) {
    int k = dsv4_csa2_topk(b->row, (int)n, (int)vis, TOPK < n ? TOPK : (int)n, b->sel, b->iscr), m = 0;
    for (int i = 0; i < k; i++)
        if (b->sel[i] >= 0 && b->sel[i] < vis && b->row[b->sel[i]] > -INFINITY) b->sel[m++] = b->sel[i];
    return m;
}

typedef struct { const uint8_t *recs; const int32_t *sel; int n; uint16_t *out; } dec_job;
static void dec_task(void *ctx, int i) {
    const dec_job *j = ctx;
    int e1 = (i + 1) * 16 < j->n ? (i + 1) * 16 : j->n;
    for (int e = i * 16; e < e1; e++) {
        const uint8_t *r = j->recs + (size_t)j->sel[e] * ENT41;
        dsv4_fp4_e4m3_decode_bf16(r, r + HD / 2, HD, 16, j->out + (size_t)e * HD);
    }
}

/* one decoded token of V4.1-Flash at position C - 1 on the shared kernels */
static void token_v41(bstate *b) {
    const int64_t C = b->C;
    int nsel = 0, have = 0;
    const dsv4_attn_shape as = {H, HD, RD, 1.0f / sqrtf((float)HD), b->sink, b->fr};
    for (int L = 0; L < 40; L++) {
        const int R = ratio41(L);
        if (R && isrc41(L)) {
            const int64_t n = C / R, vis = C / R;
            const uint8_t *K = R == 2 ? b->ik2 : b->ik1;
            for (int i = 0; i < NH41 * IHD; i++) b->iqb[i] = bf16_of(b->iq41[i]);
            if (L > 20) {   /* the candidate blocks' keys only */
                int m = 0;
                for (int64_t j = 0; j < n; j++)
                    if (b->cand[j]) b->cidx[m++] = (int32_t)j;
                dsv4_index_scores(DSV4_ISCORE_V41, K, IKB, b->cidx, m, NH41, IHD, b->iqb, b->iw41, b->isc, b->ikdec,
                                  b->isd);
                for (int64_t j = 0; j < n; j++) b->row[j] = -INFINITY;
                for (int i = 0; i < m; i++) b->row[b->cidx[i]] = b->isc[i];
            } else {
                dsv4_index_scores(DSV4_ISCORE_V41, K, IKB, NULL, (int)n, NH41, IHD, b->iqb, b->iw41, b->row, b->ikdec,
                                  b->isd);
                if (L == 20) dsv4_csa2_candidates(b->row, (int)n, (int)vis, 2048, 8, b->cand, b->fscr, b->iscr);
            }
            nsel = pick(b, n, vis);
            have = 0;
        }
        if (R && !have) {
            dec_job dj = {L < 20 ? b->comp2 : b->comp1, b->sel, nsel, b->kdec};
            dsv4_parallel_for((nsel + 15) / 16, dec_task, &dj);
            have = 1;
        }
        int nk = 0;
        for (int j = 0; j < WIN; j++) b->kptr[nk++] = b->win + (size_t)j * HD;
        for (int j = 0; R && j < nsel; j++) b->kptr[nk++] = b->kdec + (size_t)j * HD;
        for (int i = 0; i < H * HD; i++) b->qb[i] = bf16_of(b->q[i]);
        dsv4_sparse_attend(&as, b->qb, C - 1, b->kptr, nk, b->asc, b->o);
    }
}

/* the same token with the V4.1 forward's earlier scalar loops */
static void attend_old(bstate *b, const float *kdecf, int nc) {
    const float scale = 1.0f / sqrtf((float)HD);
    for (int h = 0; h < H; h++) {
        const float *qh = b->q + (size_t)h * HD;
        float *z = b->fscr, mx = -INFINITY;
        for (int j = 0; j < WIN + nc; j++) {
            const float *k = j < WIN ? b->winf + (size_t)j * HD : kdecf + (size_t)(j - WIN) * HD;
            float d = 0;
            for (int i = 0; i < HD; i++) d += qh[i] * k[i];
            z[j] = d * scale;
            if (z[j] > mx) mx = z[j];
        }
        float Z = 0, *o = b->o + (size_t)h * HD;
        for (int i = 0; i < HD; i++) o[i] = 0;
        for (int j = 0; j < WIN + nc; j++) {
            const float *k = j < WIN ? b->winf + (size_t)j * HD : kdecf + (size_t)(j - WIN) * HD;
            float p = expf(z[j] - mx);
            Z += p;
            float pb = dsv4_round_bf16(p);
            for (int i = 0; i < HD; i++) o[i] += pb * k[i];
        }
        Z += expf(b->sink[h] - mx);
        for (int i = 0; i < HD; i++) o[i] = dsv4_round_bf16(o[i] / Z);
        dsv4_rope(o + HD - RD, RD, b->fr, b->C - 1, 1);
    }
}

static void token_v41_old(bstate *b) {
    const int64_t C = b->C;
    int nsel = 0;
    uint16_t k16[IHD];
    for (int L = 0; L < 40; L++) {
        const int R = ratio41(L);
        if (R && isrc41(L)) {
            const int64_t n = C / R, vis = C / R;
            const uint8_t *K = R == 2 ? b->ik2 : b->ik1;
            for (int64_t j = 0; j < n; j++) {
                const uint8_t *rec = K + (size_t)j * IKB;
                dsv4_fp4_decode_bf16(rec, rec + IHD / 2, IHD, 32, k16);
                for (int i = 0; i < IHD; i++) b->kd[(size_t)j * IHD + i] = bf16_val(k16[i]);
            }
            for (int64_t j = 0; j < n; j++) {
                float acc = 0;
                for (int h = 0; h < NH41; h++) {
                    const float *qh = b->iq41 + (size_t)h * IHD;
                    float d = 0;
                    for (int i = 0; i < IHD; i++) d += qh[i] * b->kd[(size_t)j * IHD + i];
                    d = dsv4_round_bf16(d);
                    if (d < 0) d = 0;
                    acc += dsv4_round_bf16(d * b->iw41[h]);
                }
                b->row[j] = j < vis ? dsv4_round_bf16(acc) : -INFINITY;
            }
            if (L == 20) dsv4_csa2_candidates(b->row, (int)n, (int)vis, 2048, 8, b->cand, b->fscr, b->iscr);
            else if (L > 20)
                for (int64_t j = 0; j < n; j++)
                    if (!b->cand[j]) b->row[j] = -INFINITY;
            nsel = pick(b, n, vis);
        }
        if (R)
            for (int j = 0; j < nsel; j++) {
                const uint8_t *rec = (L < 20 ? b->comp2 : b->comp1) + (size_t)b->sel[j] * ENT41;
                dsv4_fp4_e4m3_decode(rec, rec + HD / 2, HD, 16, b->kdecf + (size_t)j * HD);
            }
        attend_old(b, b->kdecf, R ? nsel : 0);
    }
}

/* V4-Flash's token: forward.c's attend / indexer_scores / entry_load calls */
static void token_v4(bstate *b) {
    const int64_t C = b->C;
    const dsv4_attn_shape as = {H, HD, RD, 1.0f / sqrtf((float)HD), b->sink, b->fr};
    int *idx = b->iscr;
    for (int L = 0; L < 43; L++) {
        const int R = L < 2 ? 0 : L % 2 ? 128 : 4;   /* 2 window, 20 HCA, 21 CSA */
        int nk = 0;
        for (int j = 0; j < WIN; j++) b->kptr[nk++] = b->win + (size_t)j * HD;
        if (R) {
            const uint8_t *E = R == 4 ? b->ent4_csa : b->ent4_hca;
            int nvis = (int)(C / R), ne = nvis;
            if (R == 4 && nvis > TOPK) {
                for (int i = 0; i < NH4 * IHD; i++) b->iqb[i] = bf16_of(b->iq4[i]);
                dsv4_index_scores(DSV4_ISCORE_V4, b->ik4, IKB, NULL, nvis, NH4, IHD, b->iqb, b->iw4, b->isc, b->ikdec,
                                  b->isd);
                for (int w = 0; w < nvis; w++) idx[w] = w;
                dsv4_select_topk(idx, nvis, TOPK, b->isc);
                ne = TOPK;
            }
            for (int i = 0; i < ne; i++) {
                const uint8_t *rec = E + (size_t)(R == 4 && nvis > TOPK ? idx[i] : i) * ENT4;
                uint16_t *out = b->kdec + (size_t)i * HD;
                dsv4_fp8_decode_bf16(rec + 2 * RD, rec + 2 * RD + HD - RD, HD - RD, 64, out);
                memcpy(out + HD - RD, rec, (size_t)RD * 2);
                b->kptr[nk++] = out;
            }
        }
        for (int i = 0; i < H * HD; i++) b->qb[i] = bf16_of(b->q[i]);
        dsv4_sparse_attend(&as, b->qb, C - 1, b->kptr, nk, b->asc, b->o);
    }
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static int parse_list(const char *s, long *v, int max) {
    int n = 0;
    while (s && *s && n < max) {
        char *e;
        long x = strtol(s, &e, 10);
        if (e == s || x <= 0) return -1;
        v[n++] = x;
        s = *e == ',' ? e + 1 : e;
        if (*e && *e != ',') return -1;
    }
    return n;
}

int main(int argc, char **argv) {
    long thr[8] = {1, 2}, ctx[8] = {4096, 65536};
    int nthr = 2, nctx = 2, runs = 5;
    long old_max = 65536;
    const char *csv = NULL, *kernel = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) goto bad;
        if (!strcmp(a, "-t")) { if ((nthr = parse_list(v, thr, 8)) <= 0) goto bad; }
        else if (!strcmp(a, "--ctx")) { if ((nctx = parse_list(v, ctx, 8)) <= 0) goto bad; }
        else if (!strcmp(a, "--runs")) { if ((runs = atoi(v)) < 1) goto bad; }
        else if (!strcmp(a, "--old-max-ctx")) old_max = atol(v);
        else if (!strcmp(a, "--kernel")) kernel = v;
        else if (!strcmp(a, "--csv")) csv = v;
        else goto bad;
        i++;
    }
    char err[256];
    if (kernel && dsv4_set_kernel_path(kernel, err, sizeof err)) { fprintf(stderr, "bench_attn41: %s\n", err); return 2; }
    for (int c = 0; c < nctx; c++)
        if (ctx[c] < 2048 || ctx[c] % 256 || ctx[c] > (1L << 24)) {
            fprintf(stderr, "bench_attn41: --ctx %ld: a multiple of 256 in [2048, 16 Mi]\n", ctx[c]);
            return 2;
        }
    FILE *fc = csv ? fopen(csv, "w") : NULL;
    if (csv && !fc) { fprintf(stderr, "bench_attn41: cannot write %s\n", csv); return 2; }
    if (fc) fprintf(fc, "variant,kernel,threads,ctx,wall_ms,cpu_ms\n");
    printf("attention + indexer per decoded token (ms; median of %d runs, v41-old of 3), kernel %s\n", runs,
           dsv4_get_kernel_path());
    printf("%-8s %7s %8s %10s %10s %10s %10s %10s %10s %9s %9s\n", "ctx", "threads", "", "v41 wall", "v41 cpu",
           "old wall", "old cpu", "v4 wall", "v4 cpu", "old/v41", "v41/v4");
    for (int c = 0; c < nctx; c++) {
        bstate b;
        int with_old = ctx[c] <= old_max;
        bstate_init(&b, ctx[c], with_old);
        for (int t = 0; t < nthr; t++) {
            if (dsv4_set_threads((int)thr[t], err, sizeof err)) { fprintf(stderr, "bench_attn41: %s\n", err); return 2; }
            double res[3][2];
            void (*fn[3])(bstate *) = {token_v41, token_v41_old, token_v4};
            for (int v = 0; v < 3; v++) {
                res[v][0] = res[v][1] = NAN;
                if (v == 1 && (!with_old || t > 0)) continue;   /* the old loops are single-threaded */
                int nr = v == 1 ? 3 : runs;
                double w[64], cpu[64];
                if (nr > 64) nr = 64;
                fn[v](&b);   /* untimed */
                for (int r = 0; r < nr; r++) {
                    double w0 = now(), c0 = cpu_now();
                    fn[v](&b);
                    w[r] = (now() - w0) * 1e3;
                    cpu[r] = (cpu_now() - c0) * 1e3;
                }
                qsort(w, (size_t)nr, sizeof w[0], cmp_d);
                qsort(cpu, (size_t)nr, sizeof cpu[0], cmp_d);
                res[v][0] = w[nr / 2];
                res[v][1] = cpu[nr / 2];
                if (fc)
                    fprintf(fc, "%s,%s,%ld,%ld,%.3f,%.3f\n", v == 0 ? "v41" : v == 1 ? "v41-old" : "v4",
                            dsv4_get_kernel_path(), thr[t], ctx[c], res[v][0], res[v][1]);
            }
            printf("%-8ld %7ld %8s %10.2f %10.2f %10.2f %10.2f %10.2f %10.2f %9.1f %9.2f\n", ctx[c], thr[t], "",
                   res[0][0], res[0][1], res[1][0], res[1][1], res[2][0], res[2][1], res[1][1] / res[0][1],
                   res[0][1] / res[2][1]);
            fflush(stdout);
        }
        bstate_free(&b);
    }
    if (fc) fclose(fc);
    return 0;
bad:
    fprintf(stderr, "usage: bench_attn41 [-t LIST] [--ctx LIST] [--runs N] [--old-max-ctx C] [--kernel PATH] [--csv FILE]\n");
    return 2;
}
