/* model/session.c — public model and session API of include/dsv4.h: load/free/info/tokenizer,
 * session open/free/reset/pos, dsv4_eval, dsv4_eval_mtp.
 *
 * A session allocates everything at open (one zeroed arena, dsv4_session_state_bytes bytes): per block the
 * window ring and its slot positions, compressed entries (max_ctx/R), indexer keys (max_ctx/4) — the three
 * key caches stored as BF16 (exact: every value is BF16 by construction) — the F32 compressor partial state (§4.4),
 * the last trunk state for MTP, and the scratch for chunks of the model's chunk tokens (dsv4_load_options.chunk_tokens,
 * default DSV4_DEFAULT_CHUNK). dsv4_eval performs no allocation; a longer call is processed in sub-chunks (results
 * do not depend on it).
 * A DeepSeek-V4.1 model (m->v41) is loaded by the same function (its Engram token map built from tokenizer.json
 * when there is one) and its sessions hold one model/forward_v41.c state instead (allocated at open, chunks of
 * the model's chunk); what that forward does not provide yet (batch, MTP, checkpoints, a memory budget) is refused.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "model/model.h"
#include "dsv4_vision.h"
#include "model/expert_cache.h"
#include "model/model_v41.h"
#include "model/engram.h"
#include "base/util.h"

/* ------------------------------------------------------------------ model */

void dsv4_model_free(dsv4_model *m) {
    if (!m) return;
    dsv4_xc_free(m->xc);
    if (m->v41) free(m->v41->engram_map);
    dsv4_weights_free(m);
    if (m->tok) dsv4_tokenizer_free(m->tok);
    st_close(m->st);
    free(m->dump_dir);
    free(m->dir);
    free(m);
}

/* malloc'd "<dir>/<name>" (no length limit), or NULL when out of memory. */
static char *join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

static char *dupstr(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* DeepSeek-V4.1: the Engram compressed token map from the model's tokenizer (tokenizer.json at tpath), its count
 * checked against config.json's engram_compressed_vocab_size (docs/v41.md §2.2). */
static int v41_token_map(dsv4_model *m, const char *tpath, char *err, size_t errlen) {
    const dsv4_config_v41 *x = &m->cfg.x;
    int n_ids = 0, n_distinct = 0;
    int32_t *map = NULL;
    if (dsv4_engram_token_map(m->tok, &map, &n_ids, &n_distinct, err, errlen)) return -1;
    if (n_distinct != x->engram_compressed_vocab) {
        free(map);
        return dsv4_fail(err, errlen, "%s gives %d compressed Engram token ids but %s/config.json says "
                         "engram_compressed_vocab_size %d (a tokenizer of another revision?)", tpath, n_distinct,
                         m->dir, x->engram_compressed_vocab);
    }
    if (x->engram_pad_token_id < 0 || x->engram_pad_token_id >= n_ids) {
        free(map);
        return dsv4_fail(err, errlen, "%s/config.json: engram_pad_token_id %d has no token in %s (%d ids)", m->dir,
                         x->engram_pad_token_id, tpath, n_ids);
    }
    m->v41->engram_map = map;
    m->v41->engram_map_n = n_ids;
    m->v41->engram_pad = map[x->engram_pad_token_id];
    m->info.engram_token_map = 1;
    return 0;
}

int dsv4_model_load(dsv4_model **out, const char *dir, char *err, size_t errlen) {
    return dsv4_model_load_opts(out, dir, NULL, err, errlen);
}

int dsv4_model_load_opts(dsv4_model **out, const char *dir, const dsv4_load_options *o, char *err, size_t errlen) {
    if (!out) return dsv4_fail(err, errlen, "dsv4_model_load: out is NULL");
    *out = NULL;
    if (!dir) return dsv4_fail(err, errlen, "dsv4_model_load: dir is NULL");
    dsv4_model *m = calloc(1, sizeof *m);
    char *p = NULL;
    if (!m || !(m->dir = dupstr(dir))) { free(m); return dsv4_fail(err, errlen, "%s: out of memory", dir); }
    /* debugging dumps (forward.c): read the environment once here, never during evaluation (thread safety) */
    const char *dd = getenv("DSV4_DUMP");
    if (dd && *dd && !(m->dump_dir = dupstr(dd))) { dsv4_fail(err, errlen, "%s: out of memory", dir); goto fail; }
    if (!(p = join(dir, "config.json"))) { dsv4_fail(err, errlen, "%s: out of memory", dir); goto fail; }
    if (dsv4_config_load(&m->cfg, p, err, errlen)) goto fail;
    if (st_open_dir(&m->st, dir, err, errlen)) goto fail;
    if (dsv4_weights_bind(m, err, errlen)) goto fail;
    if (o && (o->engram_cache_rows < 0 || o->engram_cache_rows > ((int64_t)1 << 30))) {
        dsv4_fail(err, errlen, "dsv4_model_load_opts: engram_cache_rows %lld must be in 0..2^30",
                  (long long)o->engram_cache_rows);
        goto fail;
    }
    m->engram_cache_rows = o ? o->engram_cache_rows : 0;
    if (o && (o->chunk_tokens < 0 || o->chunk_tokens > DSV4_CHUNK_MAX)) {
        dsv4_fail(err, errlen, "dsv4_model_load_opts: chunk_tokens %d must be in 0..%d (0 = the default %d)",
                  o->chunk_tokens, DSV4_CHUNK_MAX, DSV4_DEFAULT_CHUNK);
        goto fail;
    }
    m->chunk = dsv4_chunk_cap(&m->cfg, o ? o->chunk_tokens : 0);
    if (m->v41 && o && o->mem_bytes) {   /* the expert cache reads V4 blocks only: a budget must hold it all */
        if ((double)o->mem_bytes < m->file_bytes) {
            dsv4_fail(err, errlen, "%s: a memory budget below the checkpoint (%llu < %.0f bytes) is not supported for "
                      "a DeepSeek-V4.1 model yet (load it without one)", dir, (unsigned long long)o->mem_bytes,
                      m->file_bytes);
            goto fail;
        }
        m->xst.fits = 1;   /* the mmap path, as for a V4 model that fits */
        m->xst.budget_bytes = o->mem_bytes;
        m->xst.resident_bytes = m->xst.min_bytes = (uint64_t)m->file_bytes;
    } else if (o && o->mem_bytes && dsv4_xc_create(&m->xc, m, o, &m->xst, err, errlen)) goto fail;   /* memory budget */
    if (!m->xc && !m->v41) st_advise_hugepage(m->st);   /* every weight read through the mapping */
    free(p);
    if (!(p = join(dir, "tokenizer.json"))) { dsv4_fail(err, errlen, "%s: out of memory", dir); goto fail; }
    if (access(p, F_OK) == 0) {
        if (dsv4_tokenizer_load(&m->tok, p, err, errlen)) goto fail;
        int tv = dsv4_tokenizer_vocab_size(m->tok);
        if (tv > m->cfg.vocab_size) {
            dsv4_fail(err, errlen, "%s has token ids up to %d but %s/config.json says vocab_size %d (tokenizer and "
                      "model do not match)", p, tv - 1, dir, m->cfg.vocab_size);
            goto fail;
        }
    }
    if (m->v41 && m->cfg.x.n_engram && m->tok && v41_token_map(m, p, err, errlen)) goto fail;
    free(p);
    *out = m;
    return 0;
fail:
    free(p);
    dsv4_model_free(m);
    return -1;
}

const dsv4_tokenizer *dsv4_model_tokenizer(const dsv4_model *m) { return m ? m->tok : NULL; }

void dsv4_model_expert_stats(const dsv4_model *m, dsv4_expert_stats *out) {
    if (!out) return;
    if (!m) memset(out, 0, sizeof *out);
    else if (m->xc) dsv4_xc_stats(m->xc, out);
    else *out = m->xst;
}

void dsv4_model_expert_stats_reset(dsv4_model *m) {
    if (m && m->xc) dsv4_xc_stats_reset(m->xc);
}

void dsv4_model_get_info(const dsv4_model *m, dsv4_model_info *out) {
    if (!out) return;
    if (!m) { memset(out, 0, sizeof *out); return; }
    *out = m->info;   /* computed once by dsv4_weights_bind at load */
}

/* ------------------------------------------------------------------ session */

/* Two-pass arena carving: pass 0 counts, pass 1 assigns. Sizes in bytes, each region rounded up to 16 bytes
 * (so every region is 16-byte aligned in the arena). Every size is a product of config values
 * (bounded in io/config.h) and max_ctx; the running total saturates (`over`) instead of wrapping, so a
 * layout too large for size_t is reported as out of memory. */
typedef struct { unsigned char *base; size_t used; int over; } carver;
#define CARVE_MAX (SIZE_MAX / 4)   /* bytes; leaves room for rounding and the caller's arithmetic */
static void *carve(carver *cv, size_t nbytes) {
    if (cv->over || nbytes > CARVE_MAX - cv->used - 16) { cv->over = 1; return NULL; }
    size_t n = (nbytes + 15) & ~(size_t)15;
    void *p = cv->base ? cv->base + cv->used : NULL;
    cv->used += n;
    return p;
}
/* a * b, or CARVE_MAX + 1 (which makes carve report overflow) when the product does not fit. */
static size_t mul(size_t a, size_t b) { return b && a > CARVE_MAX / b ? CARVE_MAX + 1 : a * b; }
/* n elements of ptr's element type (float, uint16_t BF16, int64_t, int, pointers) */
#define CARVE(ptr, n) ((ptr) = carve(cv, mul((size_t)(n), sizeof *(ptr))))

/* The arena layout of a session for config c and max_ctx (ring length wring = min(window, max_ctx)).
 * With cv->base NULL it only counts (s->bs may then be NULL: block pointers go to a dummy); otherwise it
 * assigns the pointers of s and s->bs[0..n_blocks). Depends on the config only (no weights): block l
 * has compress ratio c->compress_ratios[l], blocks = n_layers trunk layers + 1 MTP block if any. */
static void layout(const dsv4_config *c, int chunk, int max_ctx, dsv4_session *s, carver *cv) {
    size_t CH = (size_t)dsv4_session_chunk(c, chunk, max_ctx), hc = c->hc_mult, D = c->dim, H = c->n_heads;
    size_t hd = c->head_dim;
    size_t CX = CH > hc ? CH : hc;
    size_t ql = c->q_lora_rank, G = c->o_groups, olr = c->o_lora_rank, E = c->n_routed_experts;
    size_t K = c->n_activated_experts, I = c->moe_inter_dim;
    size_t Is = I * (size_t)(c->n_shared_experts > 1 ? c->n_shared_experts : 1);
    size_t mc = (size_t)max_ctx, Wn = (size_t)(c->window_size < max_ctx ? c->window_size : max_ctx);
    size_t ih = c->index_n_heads, ihd = c->index_head_dim;
    size_t maxR = 4, nkx = 0, cwd = 2 * (hd > ihd ? hd : ihd);
    int n_blocks = c->n_layers + (c->n_mtp_layers > 0 ? 1 : 0);
    dsv4_block_state dummy;
    for (int l = 0; l < n_blocks; l++) {
        dsv4_block_state *b = s->bs ? &s->bs[l] : &dummy;
        CARVE(b->win, mul(Wn, hd));
        CARVE(b->slot_pos, Wn);
        size_t R = (size_t)c->compress_ratios[l];
        if (R > 0) {
            size_t cc = R == 4 ? 2 : 1, ne = mc / R + 1;   /* R == 4: overlapping (CSA) compressor */
            CARVE(b->entries, mul(ne, (size_t)dsv4_entry_bytes(c)));
            CARVE(b->cs.kv, cc * R * cc * hd);
            CARVE(b->cs.sc, cc * R * cc * hd);
            if (R > maxR) maxR = R;
            size_t nk = (R == 4 && (size_t)c->index_topk < ne) ? (size_t)c->index_topk : ne;
            if (nk > nkx) nkx = nk;
        }
        if (R == 4) {
            CARVE(b->ikeys, mul(mc / 4 + 1, (size_t)dsv4_ikey_bytes(c)));
            CARVE(b->ics.kv, 8 * 2 * ihd);
            CARVE(b->ics.sc, 8 * 2 * ihd);
        }
    }
    nkx += Wn + 1;
    const int vexp = dsv4_config_vision_exp(c);
    if (vexp) nkx += (size_t)c->x.vision_max_n_token;   /* an image-span row's raw keys: up to window + cap */
    size_t maxcols = hc * D;
    size_t cand[] = {H * hd, G * olr, ql, Is, I, D};
    for (size_t i = 0; i < sizeof cand / sizeof cand[0]; i++) if (cand[i] > maxcols) maxcols = cand[i];
    CARVE(s->last_x, hc * D);
    CARVE(s->hist_x, Wn * hc * D);
    CARVE(s->hist_tok, Wn);
    CARVE(s->w.mh, CH * hc * D);
    CARVE(s->w.mhn, CH * hc * D);
    CARVE(s->w.X, CH * hc * D);
    CARVE(s->w.u, CX * D);
    CARVE(s->w.xn, CX * D);
    CARVE(s->w.y, CH * D);
    CARVE(s->w.pre, CH * hc);
    CARVE(s->w.post, CH * hc);
    CARVE(s->w.M, CH * hc * hc);
    CARVE(s->w.mix, CH * (2 + hc) * hc);
    CARVE(s->w.qa, CH * ql);
    CARVE(s->w.q, CH * H * hd);
    CARVE(s->w.kv, CH * hd);
    CARVE(s->w.ca, CH * cwd);
    CARVE(s->w.cg, CH * cwd);
    CARVE(s->w.ia, CH * 2 * ihd);
    CARVE(s->w.ig, CH * 2 * ihd);
    CARVE(s->w.iq, CH * ih * ihd);
    CARVE(s->w.iw, CH * ih);
    CARVE(s->w.o, CH * H * hd);
    CARVE(s->w.og, CH * (H / G) * hd);
    CARVE(s->w.r, CH * G * olr);
    CARVE(s->w.rg, CH * olr);
    CARVE(s->w.sc, mul(nkx, H));
    CARVE(s->w.qb, H * hd);
    CARVE(s->w.kdec, mul(nkx, hd));
    CARVE(s->w.ikdec, (size_t)DSV4_IDX_CHUNK * (ihd > 0 ? ihd : 1));
    CARVE(s->w.iqb, ih * ihd > 0 ? ih * ihd : 1);
    CARVE(s->w.isd, (size_t)DSV4_IDX_CHUNK * (ih > 0 ? ih : 1));
    CARVE(s->w.pr, nkx);
    CARVE(s->w.kptr, nkx);
    CARVE(s->w.ksc, mc / 4 + 1);
    CARVE(s->w.kidx, mc / 4 + 1);
    CARVE(s->w.rl, CH * E);
    CARVE(s->w.rw, CH * K);
    CARVE(s->w.rid, CH * K);
    /* expert rows: CH*K gathered rows, and a one-token MoE's K routed + 1 shared rows (forward.c moe_one_token) */
    size_t ER = CH * K > K + 1 ? CH * K : K + 1;
    CARVE(s->w.xe, CX > ER ? CX * D : ER * D);
    CARVE(s->w.g, ER * Is);
    CARVE(s->w.v, ER * Is);
    CARVE(s->w.ye, CX > ER ? CX * D : ER * D);
    CARVE(s->w.acc, CX * D);
    CARVE(s->w.etok, CH * K);
    CARVE(s->w.ew, CH * K);
    CARVE(s->w.eend, (size_t)E + 1);
    /* dsv4_linear's scratch (dsv4_linear_scratch_floats: n*cols + ceil(n*colsp/2) + 16, colsp <= cols + 95) for the largest call: up
     * to CH tokens of any width (maxcols), the routed experts' gathered rows (up to CH*K: a hash table may repeat
     * an expert) of D (w1, w3) or I (w2) columns, MTP's h_proj on CH*hc rows of D. */
    size_t act = 0, ecols = D > I ? D : I;
    size_t an[] = {CX, CH * K, CX * hc}, ac[] = {maxcols, ecols, D};
    for (int i = 0; i < 3; i++) {
        size_t f = mul(an[i], ac[i]) + mul(an[i], ac[i] + 96) / 2 + 64;
        if (f > act) act = f;
    }
    /* a one-token MoE (forward.c moe_one_token): its w2 call has K routed + 1 shared distinct one-row inputs of I or Is
     * columns (dsv4_linear_multi: each its own scratch); its w1/w3 call one shared input of D. At a small chunk
     * (e.g. 1) with hc_mult 1 this exceeds the terms above. */
    size_t one = mul(K + 1, dsv4_linear_scratch_floats(1, (int)(Is > I ? Is : I)) + 16);
    size_t one13 = dsv4_linear_scratch_floats(1, (int)D) + 16;
    /* a one-token attention (forward.c attention): its products of x in one dsv4_linear_multi (at most three
     * prepared inputs of D: FP8-quantized, BF16 and F32 layouts), and wo_a's group products (up to
     * DSV4_LINEAR_MULTI_MAX inputs of H/G*hd columns per call) */
    size_t attn_x = 3 * (dsv4_linear_scratch_floats(1, (int)D) + 16);
    size_t attn_o = mul(G < DSV4_LINEAR_MULTI_MAX ? G : DSV4_LINEAR_MULTI_MAX,
                        dsv4_linear_scratch_floats(1, (int)(H / G * hd)) + 16);
    if (one > act) act = one;
    if (one13 > act) act = one13;
    if (attn_x > act) act = attn_x;
    if (attn_o > act) act = attn_o;
    CARVE(s->w.act, act);
    s->w.act_n = act;
    CARVE(s->w.tmp, hc * D + 4 * cwd + 2 * maxR * 2 + hd + 64);
    CARVE(s->w.hh, 2 * hc);
    if (vexp) {
        CARVE(s->w.kloc, CH * hd);
        CARVE(s->w.vlo, CH);
        CARVE(s->w.vhi, CH);
        CARVE(s->w.vleft, CH);
        CARVE(s->w.vright, CH);
    }
}

size_t dsv4_session_state_bytes(const dsv4_config *c, int chunk, int max_ctx) {
    if (!c || max_ctx < 1) return 0;
    dsv4_session s;
    memset(&s, 0, sizeof s);
    carver cv = {NULL, 0, 0};
    layout(c, chunk, max_ctx, &s, &cv);
    return cv.over ? SIZE_MAX : cv.used;
}

int dsv4_session_open(dsv4_session **out, const dsv4_model *m, int max_ctx, char *err, size_t errlen) {
    if (!out) return dsv4_fail(err, errlen, "dsv4_session_open: out is NULL");
    *out = NULL;
    if (!m) return dsv4_fail(err, errlen, "dsv4_session_open: model is NULL");
    if (max_ctx < 1) return dsv4_fail(err, errlen, "dsv4_session_open: max_ctx %d must be >= 1", max_ctx);
    dsv4_session *s = calloc(1, sizeof *s);
    if (!s) return dsv4_fail(err, errlen, "dsv4_session_open: out of memory");
    s->m = m; s->max_ctx = max_ctx;
    if (m->v41) {   /* DeepSeek-V4.1: one forward_v41 state, calls split into chunks of the model's chunk */
        s->v41_chunk = dsv4_session_chunk(&m->cfg, m->chunk, max_ctx);
        char e2[512] = "";
        if (dsv4_v41_state_open(m, max_ctx, s->v41_chunk, &s->v41, e2, sizeof e2)) {
            dsv4_v41_state_free(s->v41);
            free(s);
            return dsv4_fail(err, errlen, "dsv4_session_open: %s", e2[0] ? e2 : "out of memory");
        }
        *out = s;
        return 0;
    }
    s->wring = m->cfg.window_size < max_ctx ? m->cfg.window_size : max_ctx;
    s->chunk = dsv4_session_chunk(&m->cfg, m->chunk, max_ctx);
    s->ent_bytes = dsv4_entry_bytes(&m->cfg);
    s->ikey_bytes = dsv4_ikey_bytes(&m->cfg);
    s->bs = calloc((size_t)m->n_blocks, sizeof *s->bs);
    if (!s->bs) { free(s); return dsv4_fail(err, errlen, "dsv4_session_open: out of memory"); }
    carver cv = {NULL, 0, 0};
    layout(&m->cfg, m->chunk, max_ctx, s, &cv);
    s->arena_bytes = cv.used;
    /* refuse what cannot be allocated before asking (a huge calloc aborts under sanitizers): more than the
     * size_t range, or more than the machine's physical memory */
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    double phys = pages > 0 && psz > 0 ? (double)pages * (double)psz : 0;
    if (cv.over || (phys > 0 && (double)cv.used > phys)) {
        free(s->bs); free(s);
        if (cv.over)
            return dsv4_fail(err, errlen, "dsv4_session_open: out of memory (session state for max_ctx %d does not "
                             "fit the address space)", max_ctx);
        return dsv4_fail(err, errlen, "dsv4_session_open: out of memory (%.1f MiB of state for max_ctx %d exceeds "
                         "the machine's %.1f MiB of RAM)", (double)cv.used / 1048576.0, max_ctx, phys / 1048576.0);
    }
    s->arena = dsv4_huge_alloc(cv.used);
    if (!s->arena) {
        free(s->bs); free(s);
        return dsv4_fail(err, errlen, "dsv4_session_open: out of memory (%.1f MiB of state for max_ctx %d)",
                         (double)cv.used / 1048576.0, max_ctx);
    }
    cv.base = s->arena; cv.used = 0;
    layout(&m->cfg, m->chunk, max_ctx, s, &cv);
    dsv4_session_reset(s);
    *out = s;
    return 0;
}

void dsv4_session_free(dsv4_session *s) {
    if (!s) return;
    dsv4_v41_state_free(s->v41);
    dsv4_huge_free(s->arena, s->arena_bytes);
    free(s->bs);
    free(s);
}

void dsv4_session_reset(dsv4_session *s) {
    if (!s) return;
    s->pos = 0;
    if (s->v41) dsv4_v41_state_reset(s->v41);
    else dsv4_state_reset(s);
}

int dsv4_session_pos(const dsv4_session *s) { return s ? s->pos : 0; }

/* NaN / Inf anywhere in the output logits means corrupt weights (e.g. an E8M0 scale byte 0xFF, a NaN in
 * head.weight): report it instead of letting a sampler turn it into a token. One pass over V floats. */
static int check_finite(const float *logits, int V, const char *fn, int pos, char *err, size_t errlen) {
    for (int i = 0; i < V; i++)
        if (!isfinite(logits[i]))
            return dsv4_fail(err, errlen, "%s: non-finite logits at position %d (corrupt checkpoint?): logit[%d] = %g",
                             fn, pos, i, (double)logits[i]);
    return 0;
}

/* Vision-Exp: the length of a chunk of at most nc positions starting at roles[0] (outside any image span) that cuts
 * no span: nc, or the position of the START of a span still open at nc (a span fits a chunk: dsv4_chunk_cap and the
 * check of dsv4_prompt_build, so that START is > 0; the leading pads may end the chunk before it). */
static int vx_chunk_end(const int8_t *roles, int nc) {
    int open = -1;
    for (int i = 0; i < nc; i++) {
        if (roles[i] == DSV4_TOKEN_IMAGE_START) open = i;
        else if (roles[i] == DSV4_TOKEN_IMAGE_END) open = -1;
    }
    return open > 0 ? open : nc;
}

/* dsv4_eval (all == 0: logits of the last position, or none) and dsv4_eval_all (all == 1: every position); with
 * roles / embs (V4.1 only, model/model.h) the image positions of dsv4_eval_prompt. */
int dsv4_session_eval_vl(dsv4_session *s, const int32_t *tokens, const int8_t *roles, const float *const *embs, int n,
                         float *logits, int all, const char *fn, char *err, size_t errlen) {
    if (!s) return dsv4_fail(err, errlen, "%s: session is NULL", fn);
    if (n < 1 || !tokens) return dsv4_fail(err, errlen, "%s: n = %d tokens (need >= 1 and a token array)", fn, n);
    if (all && !logits) return dsv4_fail(err, errlen, "%s: logits is NULL", fn);
    int V = s->m->cfg.vocab_size;
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return dsv4_fail(err, errlen, "%s: token id %d at index %d out of range [0, %d)", fn, (int)tokens[i], i, V);
    if ((int64_t)s->pos + n > s->max_ctx)
        return dsv4_fail(err, errlen, "%s: context overflow: position %d + %d tokens > max_ctx %d", fn, s->pos, n, s->max_ctx);
    if ((roles || embs) && !s->v41 && !dsv4_config_vision_exp(&s->m->cfg))
        return dsv4_fail(err, errlen, "%s: image positions need a DeepSeek-V4.1 or V4-Flash-Vision-Exp model with vision "
                         "(%s)", fn, s->m->dir);
    int pos0 = s->pos;
    for (int c0 = 0; s->v41 && c0 < n; c0 += s->v41_chunk) {   /* DeepSeek-V4.1 */
        int nc = n - c0 < s->v41_chunk ? n - c0 : s->v41_chunk, last = c0 + nc == n;
        float *lg = all ? logits + (size_t)c0 * V : last && logits ? logits : NULL;
        dsv4_v41_set_head_last(s->v41, !all);   /* dsv4_eval: the head on the last row only, into logits */
        char e2[512] = "";
        if (dsv4_v41_eval_vl(s->v41, tokens + c0, roles ? roles + c0 : NULL, embs ? embs + c0 : NULL, nc, lg, NULL, e2,
                             sizeof e2)) {   /* an Engram row read failed */
            dsv4_session_reset(s);
            return dsv4_fail(err, errlen, "%s: %s (session reset to position 0)", fn, e2);
        }
        s->pos = (int)dsv4_v41_state_pos(s->v41);
    }
    for (int c0 = 0, nc = 0; !s->v41 && c0 < n; c0 += nc) {
        nc = n - c0 < s->chunk ? n - c0 : s->chunk;
        if (roles && c0 + nc < n) nc = vx_chunk_end(roles + c0, nc);
        s->vx_roles = roles ? roles + c0 : NULL;   /* Vision-Exp image positions (model/model.h) */
        s->vx_embs = embs ? embs + c0 : NULL;
        if (all) dsv4_forward_chunk_all(s, tokens + c0, nc, logits + (size_t)c0 * V);
        else dsv4_forward_chunk(s, tokens + c0, nc, c0 + nc == n ? logits : NULL);
        s->vx_roles = NULL;
        s->vx_embs = NULL;
        if (s->xc_failed) {   /* an expert read failed (memory budget): the state is partial */
            s->xc_failed = 0;
            dsv4_session_reset(s);
            return dsv4_fail(err, errlen, "%s: %s (session reset to position 0)", fn, s->xc_err);
        }
    }
    if (logits && all) {
        for (int i = 0; i < n; i++)
            if (check_finite(logits + (size_t)i * V, V, fn, pos0 + i, err, errlen)) return -1;
    } else if (logits && check_finite(logits, V, fn, s->pos - 1, err, errlen)) {
        return -1;
    }
    return 0;
}

int dsv4_eval(dsv4_session *s, const int32_t *tokens, int n, float *logits, char *err, size_t errlen) {
    return dsv4_session_eval_vl(s, tokens, NULL, NULL, n, logits, 0, "dsv4_eval", err, errlen);
}

int dsv4_eval_all(dsv4_session *s, const int32_t *tokens, int n, float *logits, char *err, size_t errlen) {
    return dsv4_session_eval_vl(s, tokens, NULL, NULL, n, logits, 1, "dsv4_eval_all", err, errlen);
}

int dsv4_eval_batch(dsv4_session *const *ss, int nb, const int32_t *tokens, float *logits, char *err,
                    size_t errlen) {
    if (!ss || !tokens || nb < 1)
        return dsv4_fail(err, errlen, "dsv4_eval_batch: nb = %d (need >= 1) and non-NULL sessions and tokens", nb);
    for (int i = 0; i < nb; i++) {
        const dsv4_session *s = ss[i];
        if (!s) return dsv4_fail(err, errlen, "dsv4_eval_batch: session %d is NULL", i);
        if (s->v41)
            return dsv4_fail(err, errlen, "dsv4_eval_batch: session %d is of a DeepSeek-V4.1 model (%s): batched decoding "
                             "is not implemented for V4.1 yet (use dsv4_eval per session)", i, s->m->dir);
        if (s->m != ss[0]->m)
            return dsv4_fail(err, errlen, "dsv4_eval_batch: session %d belongs to another model than session 0", i);
        for (int j = 0; j < i; j++)
            if (ss[j] == s) return dsv4_fail(err, errlen, "dsv4_eval_batch: sessions %d and %d are the same session", j, i);
        int V = s->m->cfg.vocab_size;
        if (tokens[i] < 0 || tokens[i] >= V)
            return dsv4_fail(err, errlen, "dsv4_eval_batch: token id %d at index %d out of range [0, %d)", (int)tokens[i], i, V);
        if (s->pos >= s->max_ctx)
            return dsv4_fail(err, errlen, "dsv4_eval_batch: context overflow: session %d is at position %d = max_ctx", i, s->pos);
    }
    int V = ss[0]->m->cfg.vocab_size;
    int cap = DSV4_CHUNK;   /* rows per step: no more than any session's chunk (the scratch owner of a step, the one
                             * with the largest max_ctx, has the largest chunk of the step) */
    for (int i = 0; i < nb; i++)
        if (ss[i]->chunk < cap) cap = ss[i]->chunk;
    for (int b0 = 0; b0 < nb; b0 += cap) {
        int nc = nb - b0 < cap ? nb - b0 : cap;
        dsv4_forward_batch(ss + b0, tokens + b0, nc, logits ? logits + (size_t)b0 * V : NULL);
        for (int i = b0; i < b0 + nc; i++)
            if (ss[i]->xc_failed) {   /* an expert read failed (memory budget): the batch's states are partial */
                char why[sizeof ss[i]->xc_err];
                memcpy(why, ss[i]->xc_err, sizeof why);
                for (int j = 0; j < nb; j++) { ss[j]->xc_failed = 0; dsv4_session_reset(ss[j]); }
                return dsv4_fail(err, errlen, "dsv4_eval_batch: %s (the batch's sessions were reset to position 0)", why);
            }
    }
    if (logits)
        for (int i = 0; i < nb; i++)
            if (check_finite(logits + (size_t)i * V, V, "dsv4_eval_batch", ss[i]->pos - 1, err, errlen)) return -1;
    return 0;
}

int dsv4_model_dspark_block(const dsv4_model *m) {
    return m && m->v41 && m->cfg.n_mtp_layers > 0 ? m->cfg.x.dspark_block_size : 0;
}

int dsv4_eval_dspark(dsv4_session *s, int32_t token, float *logits, int32_t *ids, float *conf, char *err,
                     size_t errlen) {
    if (!s) return dsv4_fail(err, errlen, "dsv4_eval_dspark: session is NULL");
    if (!logits || !ids || !conf) return dsv4_fail(err, errlen, "dsv4_eval_dspark: an output (logits, ids, conf) is NULL");
    const int B = dsv4_model_dspark_block(s->m);
    if (!s->v41 || B < 1)
        return dsv4_fail(err, errlen, "dsv4_eval_dspark: model %s has no DSpark stages%s", s->m->dir,
                         s->v41 ? "" : " (a DeepSeek-V4 model: its MTP block is dsv4_eval_mtp)");
    if (dsv4_v41_dspark(s->v41, token, logits, ids, conf, err, errlen)) return -1;
    return check_finite(logits, B * s->m->cfg.vocab_size, "dsv4_eval_dspark", s->pos, err, errlen);
}

int dsv4_eval_mtp(dsv4_session *s, int32_t next_token, float *logits, char *err, size_t errlen) {
    if (!s) return dsv4_fail(err, errlen, "dsv4_eval_mtp: session is NULL");
    if (s->v41)
        return dsv4_fail(err, errlen, "dsv4_eval_mtp: model %s is DeepSeek-V4.1: its DSpark stages take "
                         "dsv4_eval_dspark", s->m->dir);
    if (s->m->cfg.n_mtp_layers < 1) return dsv4_fail(err, errlen, "dsv4_eval_mtp: model %s has no MTP block", s->m->dir);
    if (!s->have_last) return dsv4_fail(err, errlen, "dsv4_eval_mtp: no position evaluated yet (call dsv4_eval first)");
    if (next_token < 0 || next_token >= s->m->cfg.vocab_size)
        return dsv4_fail(err, errlen, "dsv4_eval_mtp: next_token %d out of range [0, %d)", (int)next_token, s->m->cfg.vocab_size);
    if (!logits) return dsv4_fail(err, errlen, "dsv4_eval_mtp: logits is NULL");
    if (s->m->layers[s->m->cfg.n_layers].ratio != 0)
        return dsv4_fail(err, errlen, "dsv4_eval_mtp: MTP block with compress ratio %d is not supported (only 0)",
                         s->m->layers[s->m->cfg.n_layers].ratio);
    dsv4_forward_mtp(s, next_token, logits);
    if (s->xc_failed) { s->xc_failed = 0; return dsv4_fail(err, errlen, "dsv4_eval_mtp: %s", s->xc_err); }
    if (check_finite(logits, s->m->cfg.vocab_size, "dsv4_eval_mtp", s->pos, err, errlen)) return -1;
    return 0;
}
