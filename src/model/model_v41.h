/* model/model_v41.h — the weights of a DeepSeek-V4.1 model as bound by model/weights_v41.c (INTERNAL).
 *
 * One dsv4_layer41 per trunk layer (index L) and per DSpark stage (index n_layers + i, checkpoint prefix "mtp.i.").
 * Names, shapes and dtypes: the official V4.1 checkpoint (dsv4_tensor_list, src/io/info.c generate41; docs/v41.md
 * §4, docs/v41-implementation.md). All FP8 linears (32x32 UE8M0 tiles) are owned BF16 copies, dequantized exactly at
 * load (kernels/quant_v41.h) until dsv4_linear reads 32-tiles; routed experts are packed FP4 views (E8M0 per 32, as
 * V4); small vectors are owned F32 copies (BF16 values where stored BF16). Engram tables are never read at bind
 * time: only their file, offsets and row count are kept (rows are fetched with pread, model/engram.h).
 * dsv4_model_load binds a V4.1 directory with the same binder and the public session API (model/session.c) runs the
 * forward below through one dsv4_v41_state per session.
 */
#ifndef DSV4_MODEL_MODEL_V41_H
#define DSV4_MODEL_MODEL_V41_H
#include <stddef.h>
#include <stdint.h>
#include "model/model.h"

/* One Engram layer (docs/v41.md §2): table rows E4M3 [rows, head_dim] + E8M0 [rows, head_dim/32] in the checkpoint
 * file `path` at byte offsets w_off / s_off; wkv [dim*(hc+1), cols*head_dim]; w = q_weight * k_weight in F32. */
typedef struct {
    int index;                 /* position in engram_layer_ids */
    const char *path;          /* shard holding embed.weight (the st_set's string) */
    const char *scale_path;    /* shard holding embed.scale */
    uint64_t w_off, s_off;     /* byte offsets of the two tensors in their files */
    int64_t rows;              /* engram_num_embeddings[index] */
    dsv4_wview wkv;            /* BF16 (from FP8 32-tiles) */
    float *q_weight, *k_weight;  /* [hc, dim] BF16 values */
    float *w;                  /* [hc, dim] F32 product q_weight * k_weight */
} dsv4_engram41_w;

typedef struct {
    int ratio;                 /* compress_ratios[L]: 0 window only, 1 or 2 CSA2 */
    int kv_source;             /* owns a compressor (and, when also an index source, the index keys) */
    int index_source;          /* runs an indexer */
    int candidate_source;      /* its index scores make the candidate-block mask */
    int uses_candidates;       /* an index source after the candidate source: masked by the candidate blocks */
    /* mHC (single pass, no hc_head): fn [(2+hc)*hc, hc*dim] F32 view, base [(2+hc)*hc], scale [3] */
    dsv4_wview hc_attn_fn, hc_ffn_fn;
    float *hc_attn_base, *hc_attn_scale, *hc_ffn_base, *hc_ffn_scale;
    float *attn_norm, *ffn_norm;              /* [dim] */
    /* attention */
    float *attn_sink;                         /* [n_heads] */
    dsv4_wview wq_a, wq_b, wkv, wo_a, wo_b;   /* BF16 copies of FP8 32-tile weights (wo_a grouped, BF16 in use) */
    float *q_norm, *kv_norm;                  /* [q_lora_rank], [head_dim] */
    /* compressor (kv_source): ratio 1 BF16 wkv; ratio 2 wkv / wgate F32 (stored BF16); norm [head_dim] */
    dsv4_wview comp_wkv, comp_wgate;
    float *comp_norm;
    /* indexer (index_source): wq_b [ih*ihd, q_lora] BF16 copy, weights_proj [ih, dim] BF16; owners: wk [ihd,
     * head_dim] BF16, k_norm [ihd] */
    dsv4_wview idx_wq_b, idx_wp, idx_wk;
    float *idx_k_norm;
    /* MoE (no hash layers): gate [E, dim] BF16, bias [E], bias_vl [E] (vision checkpoints, else NULL) */
    int n_experts, n_active;
    dsv4_wview gate;
    float *gate_bias, *gate_bias_vl;
    dsv4_wview *w1, *w2, *w3;                 /* [n_experts] packed FP4 views */
    dsv4_wview sw1, sw2, sw3;                 /* shared expert, BF16 copies; rows == 0 when absent */
    dsv4_engram41_w *engram;                  /* trunk layers in engram_layer_ids, else NULL */
    /* DSpark stage 0: main_proj [dim, dim*n_targets] BF16 copy, main_norm [dim] */
    dsv4_wview main_proj;
    float *main_norm;
    /* DSpark last stage: norm [dim], markov embed / head [V, rank] BF16, confidence proj [1, dim + rank] BF16 */
    float *dspark_norm;
    dsv4_wview markov_embed, markov_head, confidence_proj;
} dsv4_layer41;

struct dsv4_v41_weights {
    int n_blocks;              /* n_layers + n_mtp_layers */
    dsv4_layer41 *layers;      /* [n_blocks], model-owned */
    /* Engram compressed token map (docs/v41.md §2.2), built by dsv4_model_load from the model's tokenizer.json
     * (dsv4_engram_token_map; its distinct count checked against engram_compressed_vocab_size): raw id ->
     * compressed id for ids < engram_map_n (ids above get engram_pad). NULL: the identity map (no tokenizer; then
     * engram_compressed_vocab_size must equal vocab_size). Owned by the model (freed with it). */
    int32_t *engram_map;
    int engram_map_n;
    int32_t engram_pad;        /* engram_map[engram_pad_token_id] */
    /* Vision (config.json vision_config with num_hidden_layers > 0; docs/v41.md §3, docs/vision.md): the tower and
     * aligner (views into the checkpoint, freed with the model), and the learned vectors of the image-span
     * delimiters image_start / image_newline / image_end, [dim] F32 copies holding their BF16 values (the official
     * code casts them to the embedding dtype, BF16). All NULL without vision. */
    struct dsv4_vtower *vtower;
    float *image_start, *image_newline, *image_end;
};

/* Load a DeepSeek-V4.1 model directory's config.json and bind its checkpoint (every tensor found, dtype- and
 * shape-checked, the whole tensor set compared with dsv4_tensor_list) without the forward, which does not exist yet
 * (dsv4_model_load refuses V4.1). For tests and tools. *out is freed with dsv4_model_free. Returns 0, or -1 with err
 * naming the file and tensor (not a V4.1 config, missing / unexpected / mis-shaped tensor, truncated shard). */
int dsv4_model_bind_v41(dsv4_model **out, const char *dir, char *err, size_t errlen);

/* ---- model/forward_v41.c: the forward (first version: trunk + DSpark drafts; no session API yet) ---- */
typedef struct dsv4_v41_state dsv4_v41_state;
/* State of one sequence of a bound V4.1 model for up to max_ctx positions, evaluated in calls of at most max_chunk
 * tokens (every buffer is allocated here). Engram needs the identity token map for now (a model without
 * tokenizer whose engram_compressed_vocab_size equals vocab_size). Returns 0, or -1 with err. */
int dsv4_v41_state_open(const dsv4_model *m, int max_ctx, int max_chunk, dsv4_v41_state **out, char *err,
                        size_t errlen);
void dsv4_v41_state_free(dsv4_v41_state *s);
/* Forget the sequence (position 0, compressor / index-key / Engram history state cleared; nothing freed). */
void dsv4_v41_state_reset(dsv4_v41_state *s);
/* Positions evaluated so far; bytes the state allocated at open (its buffers, not the Engram reader's). */
int64_t dsv4_v41_state_pos(const dsv4_v41_state *s);
size_t dsv4_v41_state_bytes(const dsv4_v41_state *s);
/* Evaluate tokens[0..T) at the next T positions (one call of the reference's Session.eval: any schedule).
 * logits (may be NULL): [T][vocab] F32. blocks (may be NULL): [n_layers][max_chunk][hc][dim], the state after each
 * trunk block. The chunk's Engram rows are read (pread) on a worker thread while the layers before the first Engram
 * layer run. Returns 0, or -1 with err (bad count / token id, an Engram row read error: the state is then unusable
 * and every later call says so). */
int dsv4_v41_eval(dsv4_v41_state *s, const int32_t *tokens, int T, float *logits, float *blocks, char *err,
                  size_t errlen);
/* on != 0: later evaluations write only the last position's logits ([vocab] at logits[0]; the head runs on one row,
 * bit-identical to that row of a full [T][vocab] call), as dsv4_eval needs; 0: every position's (the default). */
void dsv4_v41_set_head_last(dsv4_v41_state *s, int on);
/* dsv4_v41_eval with images (docs/v41.md §3.4): roles (may be NULL = all text) gives each position's DSV4_TOKEN_*
 * role; embs (may be NULL) a [dim] row of BF16 values per position replacing its token embedding (NULL entries: the
 * token's embedding). Positions with role >= 0 select their experts with ffn.gate.bias_vl (the model must have it)
 * and are DEAD for Engram (no n-gram crosses them, gate 0). With roles and embs NULL it is dsv4_v41_eval, bit for
 * bit. Allocates nothing. */
int dsv4_v41_eval_vl(dsv4_v41_state *s, const int32_t *tokens, const int8_t *roles, const float *const *embs, int T,
                     float *logits, float *blocks, char *err, size_t errlen);
/* DSpark draft block after the last evaluated position P = pos - 1 (>= 1): drafts at positions P+1 .. P+B for the
 * ids [token, noise x (B-1)] through every stage; logits [B][vocab] (F32, with the Markov bias of the greedy chain),
 * ids [B + 1] (token, then the greedy pick of each draft), conf [B] (confidence head). The sequence state is not
 * changed. Returns 0, or -1 with err (no DSpark stages, fewer than 2 positions, bad token). */
int dsv4_v41_dspark(dsv4_v41_state *s, int32_t token, float *logits, int32_t *ids, float *conf, char *err,
                    size_t errlen);
/* Record the index selections of every index source from now on into buf: cap records of 3 + index_topk int32
 * (layer, position, count, the selected compressed positions in ascending order); further ones are dropped.
 * dsv4_v41_recorded: records written so far. For tests. */
void dsv4_v41_record(dsv4_v41_state *s, int32_t *buf, int cap);
int dsv4_v41_recorded(const dsv4_v41_state *s);
/* Engram rows requested from the state's tables since open, and how many of them the row cache served
 * (dsv4_load_options.engram_cache_rows; 0 hits without a cache). For tests and diagnostics. */
void dsv4_v41_engram_stats(const dsv4_v41_state *s, int64_t *requested, int64_t *cache_hits);

#endif
