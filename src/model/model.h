/* model/model.h — internal model and session structures shared by weights.c, forward.c and session.c.
 *
 * A dsv4_model holds the parsed config, the mmap'd checkpoint (st_set) and one dsv4_layer of weight
 * views per trunk layer plus one per MTP block (index n_layers + j). Large weights are dsv4_wview's
 * pointing into the mapping (zero copy); small vectors (norm weights, attn_sink, hc_* parameters, ape,
 * gate.bias) are owned F32 copies; tid2eid is an owned int32 copy validated at load.
 * A dsv4_session holds the per-layer decoding state of docs/architecture.md §5.1 (window ring,
 * compressed entries, indexer keys, compressor partial state) and a scratch arena sized at open.
 * All activations are float arrays holding BF16-representable values where the reference holds BF16.
 */
#ifndef DSV4_MODEL_MODEL_H
#define DSV4_MODEL_MODEL_H
#include <stdint.h>
#include <stddef.h>
#include "dsv4.h"
#include "io/config.h"
#include "kernels/kernels.h"
#include "io/safetensors.h"

struct dsv4_xcache;   /* model/expert_cache.h */

/* Tokens processed at once inside dsv4_eval by default (a longer call is split internally; results do not
 * depend on the split); a model's own chunk (dsv4_model.chunk) sizes its sessions' scratch arena. DSV4_CHUNK
 * stays the batch cap of dsv4_eval_batch steps and the MTP key refill's list length. */
#define DSV4_CHUNK DSV4_DEFAULT_CHUNK
/* The largest chunk of any model: a DeepSeek-V4-Flash-Vision-Exp session evaluates an image span (START..END, at most
 * vision_max_n_token <= 4096 positions, io/config_vexp.c) inside one chunk, so its chunk is dsv4_chunk_cap. */
#define DSV4_CHUNK_MAX 4096
/* Indexer keys scored per GEMM call (sizes the score scratch: DSV4_IDX_CHUNK x index_n_heads floats). */
#define DSV4_IDX_CHUNK 2048

/* One token compressor (docs/architecture.md §4.4). R = ratio, dc = output width, overlap = 1 for R == 4 (c = 2). */
typedef struct {
    int R, dc, overlap;        /* c = overlap ? 2 : 1; projections have c*dc rows */
    dsv4_wview wkv, wgate;     /* [c*dc, D] BF16 (or F32), applied in F32 */
    float *ape;                /* owned [R, c*dc] F32 */
    float *norm;               /* owned [dc] F32 (BF16 values) */
} dsv4_compressor_w;

/* Weights of one transformer block (trunk layer or MTP block). */
typedef struct {
    int ratio;                 /* compress_ratios[L]: 0 window-only, 4 CSA, other > 0 HCA */
    int is_hash;               /* routes by tid2eid */
    const float *rope_f;       /* rope frequency table of this layer (model-owned, rope_dim/2) */
    /* mHC (§4.2): fn [24, hc*D] F32 view, base [24], scale [3] owned */
    dsv4_wview hc_attn_fn, hc_ffn_fn;
    float *hc_attn_base, *hc_attn_scale, *hc_ffn_base, *hc_ffn_scale;
    float *attn_norm, *ffn_norm;            /* [D] */
    /* attention (§4.3) */
    float *attn_sink;                       /* [H] */
    dsv4_wview wq_a, wq_b, wkv, wo_a, wo_b; /* FP8 (wo_a: FP8 view or owned BF16 copy) */
    float *q_norm, *kv_norm;                /* [q_lora], [head_dim] */
    dsv4_compressor_w comp;                 /* ratio > 0 */
    /* lightning indexer (§4.5), ratio == 4 only */
    dsv4_wview idx_wq_b, idx_wp;            /* [ih*ihd, q_lora] FP8, [ih, D] BF16 */
    dsv4_compressor_w icomp;                /* R = 4, dc = index_head_dim, overlap */
    /* MoE (§4.6) */
    dsv4_wview gate;                        /* [E, D] BF16 */
    float *gate_bias;                       /* [E]; on hash layers NULL (text checkpoints) or Vision-Exp's unused one */
    float *gate_bias_vl;                    /* [E] Vision-Exp: the selection bias of image positions; else NULL */
    int32_t *tid2eid;                       /* [V, k] owned, or NULL */
    dsv4_wview *w1, *w2, *w3;               /* [E] routed experts (FP4 or FP8 views), owned arrays */
    dsv4_wview sw1, sw2, sw3;               /* shared expert (FP8); rows == 0 when absent */
    /* MTP-only (§4.9) */
    dsv4_wview e_proj, h_proj;
    float *enorm, *hnorm, *mtp_norm;
    dsv4_wview hc_head_fn; float *hc_head_base, *hc_head_scale;
} dsv4_layer;

struct dsv4_model {
    dsv4_config cfg;
    char *dir;                              /* owned copy of the directory passed to dsv4_model_load */
    char *dump_dir;                         /* owned copy of $DSV4_DUMP read once at load, NULL = no dumps */
    dsv4_model_info info;                   /* dsv4_model_get_info's answer, computed once at load */
    st_set *st;
    dsv4_tokenizer *tok;
    dsv4_wview embed, head;                 /* [V, D] BF16 */
    float *norm;                            /* [D] */
    dsv4_wview hc_head_fn;                  /* [hc, hc*D] F32 */
    float *hc_head_base, *hc_head_scale;
    int n_blocks;                           /* n_layers + n_mtp_layers (layers[] length) */
    dsv4_layer *layers;
    float *rope_win, *rope_comp;            /* rope tables: theta plain / compress theta + YaRN */
    double file_bytes;                      /* sum of tensor bytes in the checkpoint */
    int64_t engram_cache_rows;              /* dsv4_load_options.engram_cache_rows (V4.1 sessions' Engram tables) */
    int chunk;                              /* tokens per forward chunk: dsv4_chunk_cap(&cfg, chunk_tokens option) */
    void **owned; int n_owned, cap_owned;   /* every owned allocation, freed by dsv4_model_free */
    struct dsv4_v41_weights *v41;           /* DeepSeek-V4.1 blocks (model/model_v41.h), NULL for V4; owned */
    /* DeepSeek-V4-Flash-Vision-Exp (dsv4_config_vision_exp; docs/vision-exp.md): the tower and aligner (vision/tower.h,
     * views into the checkpoint) and the span vectors image_start / image_pad / image_newline / image_end, [dim] F32
     * copies of their BF16 values. All NULL for every other model. */
    struct dsv4_vtower *vx_tower;
    float *image_start, *image_pad, *image_newline, *image_end;
    struct dsv4_xcache *xc;                 /* routed-expert cache under a memory budget; NULL: mmap path */
    dsv4_expert_stats xst;                  /* the budget's figures at load (dsv4_model_expert_stats) */
};

/* Per-compressor incremental state (§4.4), F32: rows = c*R, width = c*dc. */
typedef struct {
    float *kv, *sc;
} dsv4_comp_state;

/* Per-block decoding state (§5.1). Every key cache holds exactly what the reference computes, in the form the
 * reference already rounded it to (issue 6): the window ring as BF16 (uint16_t: RMSNorm -> BF16, RoPE ->
 * BF16, FP8-simulated nope dims, all BF16-exact); a compressed entry as one record of s->ent_bytes bytes
 * [rope_dim BF16 rope dims][nope E4M3 codes][ceil(nope/64) E8M0 scales] (the nope dims are E4M3 x a per-64
 * power of two after dsv4_fp8_sim); an indexer key as one record of s->ikey_bytes bytes
 * [index_head_dim/2 packed E2M1][index_head_dim/32 E8M0] (Hadamard + dsv4_fp4_sim). Decoding a record gives
 * the simulated BF16 values bit for bit, so logits equal a BF16 cache exactly, at 0.57x (entries) and 0.27x
 * (indexer keys) of its bytes. */
typedef struct {
    uint16_t *win;         /* [wring, head_dim] BF16 ring, slot p mod wring (dsv4_session.wring) */
    int64_t *slot_pos;     /* [wring] position held by each ring slot, -1 = empty (MTP ring is sparse) */
    uint8_t *entries;      /* [max_ctx/R + 1] records of ent_bytes (ratio > 0) */
    dsv4_comp_state cs;    /* main compressor state (F32) */
    uint8_t *ikeys;        /* [max_ctx/4 + 1] records of ikey_bytes (CSA) */
    dsv4_comp_state ics;   /* indexer compressor state (CSA, F32) */
} dsv4_block_state;

struct dsv4_session {
    const dsv4_model *m;
    int max_ctx, pos;
    int ent_bytes, ikey_bytes;   /* record sizes of compressed entries and indexer keys (dsv4_block_state) */
    int wring;             /* ring length of the window caches: min(sliding_window, max_ctx) (positions are
                            * < max_ctx, so a shorter ring never evicts a key the window still needs) */
    dsv4_block_state *bs;  /* [n_blocks] */
    /* DeepSeek-V4.1 model (m->v41): the sequence state of model/forward_v41.c (its chunks of v41_chunk tokens); the V4
     * fields (bs, arena) are then unused (NULL) and pos mirrors the state's position */
    struct dsv4_v41_state *v41;
    int v41_chunk;
    float *last_x;         /* [hc*D] trunk state of the last evaluated position (before hc_head) */
    int have_last;
    int xc_failed;         /* an expert read failed during this evaluation (memory budget); xc_err says why */
    char xc_err[256];
    float *hist_x;         /* [wring][hc*D] trunk final states of the last `wring` positions (MTP window) */
    int32_t *hist_tok;     /* [wring] token ids of the last `wring` positions */
    /* scratch arena (one allocation, carved at open) */
    void *arena; size_t arena_bytes;   /* arena_bytes == dsv4_session_state_bytes(&m->cfg, max_ctx) */
    struct {
        float *X, *u, *xn, *y, *pre, *post, *M, *mix;
        float *qa, *q, *kv, *ca, *cg, *ia, *ig, *iq, *iw, *o, *og, *r, *rg;
        float *sc, *ksc, *pr; int *kidx; const uint16_t **kptr;   /* kptr: BF16 keys attended; sc: [nk][H] scores */
        uint16_t *qb, *iqb;  /* [H*hd], [ih*ihd] BF16-packed queries of one token */
        float *isd;          /* [DSV4_IDX_CHUNK][ih] indexer dot products */
        uint16_t *kdec;      /* [nk][hd] compressed entries attended by one token, decoded to BF16 */
        uint16_t *ikdec;     /* [DSV4_IDX_CHUNK][ihd] indexer keys decoded to BF16 */
        float *rl, *rw; int *rid; float *xe, *g, *v, *ye, *acc; int *etok; float *ew;
        int *eend;         /* [E+1] forward.c moe_gather: one past each expert's gathered rows */
        float *mh, *mhn;   /* [max(CH,1)*hc*D] MTP input projections */
        float *act;        /* act-quant scratch for dsv4_linear */
        size_t act_n;      /* its size in floats (a batch of dsv4_linear_multi products must fit) */
        float *tmp;        /* misc [max(c*dc, D, hc*D)] */
        float *hh;         /* [2*hc] hc_head mixing logits and weights */
        /* DeepSeek-V4-Flash-Vision-Exp sessions only (NULL otherwise; docs/vision-exp.md §6): the chunk's raw window
         * keys [chunk][hd] BF16 while a chunk holding an image span attends, and per row its raw-key range */
        uint16_t *kloc;
        int64_t *vlo, *vhi;
        int *vleft, *vright;
    } w;
    int chunk;             /* tokens per forward chunk: the model's (dsv4_model.chunk), at most max_ctx */
    /* Vision-Exp: the image roles (DSV4_TOKEN_*) and embedding rows of the chunk being evaluated (dsv4_session_eval_vl
     * sets them for the duration of one dsv4_forward_chunk*; NULL: text) and whether it holds an image span */
    const int8_t *vx_roles;
    const float *const *vx_embs;
    int vx_span;
};

/* ---- model/vision_exp.c: DeepSeek-V4-Flash-Vision-Exp's image-span visibility (docs/vision-exp.md §6) ---- */
/* For n positions with roles (DSV4_TOKEN_*; the first position is position 0 of what is scanned): left[i] = the
 * distance back to the last IMAGE_START at or before i (at most cap - 1) and right[i] = forward to the first
 * IMAGE_END at or after i (at most cap; n - i when none), for i inside a span (more STARTs than ENDs at or before it,
 * or an END); 0, 0 elsewhere (text, the leading pads). tools/reference/vision_exp.py `visible`. */
void dsv4_vx_visible(const int8_t *roles, int n, int cap, int *left, int *right);
/* The raw-window keys of the row at position p: positions *lo..*hi, lo = max(0, p - (W - 1) - max(left - (W - 1), 0)),
 * hi = min(p + right, lo + W + cap - 1) (vision_exp.py `window_keys`; text rows: the causal window). */
void dsv4_vx_window(int64_t p, int left, int right, int W, int cap, int64_t *lo, int64_t *hi);

/* Tokens per forward chunk of a session of config c asked for `want` tokens (0: DSV4_CHUNK): want, or for a
 * Vision-Exp config at least vision_max_n_token, so that an image span always fits one chunk. */
static inline int dsv4_chunk_cap(const dsv4_config *c, int want) {
    int ch = want > 0 ? want : DSV4_CHUNK;
    return dsv4_config_vision_exp(c) && c->x.vision_max_n_token > ch ? c->x.vision_max_n_token : ch;
}
/* Tokens per forward chunk of a session of max_ctx (V4 and V4.1) on a model asked for `chunk` (dsv4_chunk_cap):
 * no more than max_ctx (a call never has more positions than the session; an image span fits max_ctx too), so
 * short sessions (a server slot, a batch of bench sessions) do not pay a long chunk's scratch. */
static inline int dsv4_session_chunk(const dsv4_config *c, int chunk, int max_ctx) {
    int ch = dsv4_chunk_cap(c, chunk);
    return max_ctx > 0 && ch > max_ctx ? max_ctx : ch;
}

/* ---- session.c ---- */
/* Bytes of the one arena dsv4_session_open allocates for config c and max_ctx (docs/architecture.md §5.1 state + scratch):
 * per block the window ring (min(sliding_window, max_ctx) x head_dim BF16) and its slot positions, the
 * compressed entries ((max_ctx/R + 1) x head_dim BF16, R > 0), the indexer keys ((max_ctx/4 + 1) x
 * index_head_dim BF16, R == 4), the F32 compressor partial states, the MTP history and the chunk scratch;
 * every region rounded up to 16 bytes. Weights-free (the config alone decides it). Returns 0 when c is
 * NULL or max_ctx < 1, SIZE_MAX when the layout does not fit size_t (dsv4_session_open then fails with
 * "out of memory"). The scratch is sized for chunks of dsv4_chunk_cap(c, chunk) tokens (chunk 0: the default). */
size_t dsv4_session_state_bytes(const dsv4_config *c, int chunk, int max_ctx);

/* ---- synthetic.c ---- */
/* Benchmark helper (`dsv4 bench --ctx`, docs/performance.md): reset s and give it the state of a session that
 * has evaluated `pos` tokens of random content, without evaluating them: s->pos = pos, every block's window
 * ring, compressed entries, indexer keys and compressor partial state filled with random values of the form the
 * forward pass writes (FP8-simulated nope dims, Hadamard + FP4-simulated indexer keys, BF16-exact), the MTP
 * history and last_x random. Deterministic in seed (independent of the thread count). pos in [0, max_ctx].
 * Returns 0, or -1 with err (s NULL, pos out of range, a DeepSeek-V4.1 session, out of memory). */
int dsv4_session_fill_synthetic(dsv4_session *s, int pos, uint64_t seed, char *err, size_t errlen);

/* ---- session.c ---- */
/* dsv4_eval (all == 0) / dsv4_eval_all (all == 1) with, for a DeepSeek-V4.1 session, each position's image role and
 * embedding row (roles / embs: may be NULL; model/model_v41.h dsv4_v41_eval_vl), as dsv4_eval_prompt
 * (vision/prompt.c) calls it. fn names the public function in messages. Errors as dsv4_eval; roles / embs on a V4
 * session are refused. */
int dsv4_session_eval_vl(dsv4_session *s, const int32_t *tokens, const int8_t *roles, const float *const *embs, int n,
                         float *logits, int all, const char *fn, char *err, size_t errlen);

/* ---- forward.c: cache records ---- */
/* Record sizes for config c (see dsv4_block_state). */
int dsv4_entry_bytes(const dsv4_config *c);
int dsv4_ikey_bytes(const dsv4_config *c);
/* Finish a compressed entry / indexer key from x (head_dim / index_head_dim F32 values after RoPE, and for the
 * indexer after the Hadamard rotation): apply the FP8 (nope dims, blocks of 64) / FP4 (blocks of 32)
 * simulation in place and write the record rec. */
void dsv4_entry_store(const dsv4_config *c, float *x, uint8_t *rec);
void dsv4_ikey_store(const dsv4_config *c, float *x, uint8_t *rec);

/* ---- weights.c ---- */
/* Bind and validate every tensor the config implies (docs/architecture.md §2); fills m->layers etc. err names the
 * tensor and file. m->cfg and m->st must be set. */
int dsv4_weights_bind(dsv4_model *m, char *err, size_t errlen);
/* Release everything bind allocated. */
void dsv4_weights_free(dsv4_model *m);

/* ---- forward.c ---- */
/* Evaluate tokens[0..n) (n <= s->chunk) at positions s->pos.. and advance s->pos by n. If logits
 * is non-NULL, write the vocab_size F32 logits of the last position. Token ids must be validated. */
void dsv4_forward_chunk(dsv4_session *s, const int32_t *tokens, int n, float *logits);
/* The same, with the logits of every position: logits [n][vocab] (non-NULL); the head runs once for the n rows
 * (each vocabulary row read once per chunk). Row n-1 equals dsv4_forward_chunk's logits bit for bit. */
void dsv4_forward_chunk_all(dsv4_session *s, const int32_t *tokens, int n, float *logits);
/* One decode step of nb <= min(DSV4_CHUNK, every session's chunk) distinct sessions of one model: token tokens[i] at
 * position ss[i]->pos (< its max_ctx, checked by the caller), evaluated as one batch: every linear reads its weights once for all
 * rows, the position-dependent part (window, compressor, indexer, attention) runs per row on ss[i]'s state. Each
 * row's results are bit-identical to dsv4_forward_chunk(ss[i], &tokens[i], 1, ...). logits: [nb][vocab] or NULL.
 * The scratch of the session with the largest max_ctx is used. */
void dsv4_forward_batch(dsv4_session *const *ss, const int32_t *tokens, int nb, float *logits);
/* MTP block (§4.9) on s->last_x and next_token; writes logits. */
void dsv4_forward_mtp(dsv4_session *s, int32_t next_token, float *logits);
/* Reset the compressor states of all blocks (values 0, scores -inf). */
void dsv4_state_reset(dsv4_session *s);
/* Run exactly one block on a given input state (testing entry point, tests/test_blocks.c; INTERNAL, not
 * part of include/dsv4.h). layer in [0, n_layers) is a trunk layer (§4.7: mHC + attention + mHC + MoE);
 * layer == n_layers (needs n_mtp_layers >= 1, compress ratio 0) is the MTP block including its input
 * projection (§4.9): X holds the trunk final states and tokens[t] the token fed at position t (t+1 of the
 * sequence), X0 = bf16(E_proj RMSNorm(embed[tokens[t]]) + H_proj RMSNorm(X_t)) then the block.
 * X: [n][hc][dim] F32 (BF16 values), in/out: replaced by the block output (before any hc_head).
 * tokens: [n] ids (routing of hash layers, MTP embedding). Positions pos0..pos0+n-1; the block's state in
 * s (window ring, compressor state, compressed entries, indexer keys) is read and advanced, so a sequence
 * may be fed in any split as long as the calls are consecutive from position 0 after dsv4_session_reset.
 * Other layers' state, s->pos and the MTP history are untouched. Calls longer than s->chunk are split
 * internally (same result). Returns 0, or -1 with err filled (bad layer, n < 1, NULL pointers, pos0 < 0,
 * pos0 + n > max_ctx, token id out of range). */
int dsv4_block_eval(dsv4_session *s, int layer, float *X, const int32_t *tokens, int n, int64_t pos0,
                    char *err, size_t errlen);

#endif
