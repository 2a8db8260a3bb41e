/* io/config.h — DeepSeek-V4 hyper-parameters, read from the HF `config.json`.
 *
 * Keys are the HF ones (docs/architecture.md §1.1). Required keys missing or of the wrong JSON type
 * are errors naming the key and file. Optional keys and their defaults: num_hash_layers 0,
 * num_nextn_predict_layers 0, hc_mult 4, hc_sinkhorn_iters 20, hc_eps 1e-6, rms_norm_eps 1e-6,
 * swiglu_limit 0 (= no clamp), routed_scaling_factor 1, rope_scaling absent = no YaRN,
 * compress_rope_theta = rope_theta, bos_token_id 0, eos_token_id 1, index_* 0 when no layer is CSA,
 * expert_dtype "fp4" (string "fp4" or "fp8"; docs/architecture.md §1.1, §2.4). The key was added in the current revision of
 * the release and is absent in the initial one (e.g. the published V4-Flash config.json) and in converted
 * -Base checkpoints (FP8 experts); expert_dtype_given tells whether it was present. Weights-free uses
 * (dsv4_config_info) take an absent key as "fp4"; the weight loader instead lets the first routed expert
 * tensor decide and requires every other one to match (model/weights.c).
 * compress_ratios must have num_hidden_layers + num_nextn_predict_layers entries, each 0, 4 or 128
 * (any R>0 is accepted if every CSA-style (overlapping) layer has R==4: R==4 means CSA, others HCA).
 *
 * Supported ranges (checked at load; an error names the key and the bound). Every size is >= 1 and:
 *   vocab_size <= DSV4_MAX_VOCAB (2^24); hidden_size, head_dim, qk_rope_head_dim, q_lora_rank, o_lora_rank,
 *   moe_intermediate_size, index_head_dim <= DSV4_MAX_DIM (2^20); num_attention_heads, o_groups, index_n_heads
 *   <= DSV4_MAX_HEADS (65536); n_routed_experts, num_experts_per_tok <= DSV4_MAX_EXPERTS (65536);
 *   num_hidden_layers <= DSV4_MAX_LAYERS - 1 and num_hidden_layers + num_nextn_predict_layers <= DSV4_MAX_LAYERS;
 *   hc_mult <= DSV4_MAX_HC (16); hc_sinkhorn_iters <= DSV4_MAX_SINKHORN (1000); sliding_window <=
 *   DSV4_MAX_WINDOW (2^20); index_topk <= DSV4_MAX_TOPK (2^20); every compress_ratios entry <= DSV4_MAX_RATIO
 *   (2^20); max_position_embeddings <= 2^31 - 1. The products num_attention_heads x head_dim, o_groups x
 *   o_lora_rank, index_n_heads x index_head_dim and hc_mult x hidden_size must each fit an int32 (they are
 *   weight row counts / activation widths). With these bounds every tensor element count and every session
 *   size computed in 64-bit arithmetic is exact (no overflow). V4-Flash and V4-Pro are far inside them
 *   (largest: vocab 129280, hidden 7168, heads 128, experts 384, hc_mult 4, window 128, ratio 128).
 * A key that appears twice in one JSON object (top level or rope_scaling) is an error naming it (Python's
 * json would silently keep the last value, cJSON the first).
 */
#ifndef DSV4_IO_CONFIG_H
#define DSV4_IO_CONFIG_H
#include <stddef.h>

#define DSV4_MAX_LAYERS 256        /* trunk + MTP blocks */
#define DSV4_MAX_VOCAB (1 << 24)
#define DSV4_MAX_DIM (1 << 20)       /* any width: hidden, head, ranks, intermediate, index head */
#define DSV4_MAX_HEADS 65536         /* attention heads, output groups, indexer heads */
#define DSV4_MAX_EXPERTS 65536
#define DSV4_MAX_HC 16               /* hc_mult (mHC streams) */
#define DSV4_MAX_SINKHORN 1000       /* hc_sinkhorn_iters */
#define DSV4_MAX_WINDOW (1 << 20)    /* sliding_window */
#define DSV4_MAX_TOPK (1 << 20)      /* index_topk */
#define DSV4_MAX_RATIO (1 << 20)     /* compress_ratios entries */

#define DSV4_MAX_ENGRAM 8            /* engram_layer_ids entries */
#define DSV4_MAX_DSPARK_TARGETS 16   /* dspark_target_layer_ids entries */

/* DeepSeek-V4.1 keys (docs/v41.md §1; HF names inside `text_config`, top-level image_token_id and
 * quantization_config, nested vision_config). Parsed by config_v41.c; all zero for a V4 config. */
typedef struct {
    int v41;                   /* 1: model_type "deepseek_v41" / a nested text_config */
    /* CSA2 sharing (§4.1) */
    int n_kv_sources, kv_sources[DSV4_MAX_LAYERS];        /* kv_source_layer_ids (ascending) */
    int n_index_sources, index_sources[DSV4_MAX_LAYERS];  /* index_source_layer_ids (ascending) */
    int candidate_source;      /* candidate_source_layer_id, -1 = none */
    int candidate_topk_blocks, candidate_block_size;
    /* Engram (§1.1) */
    int n_engram;                                   /* engram_layer_ids count (0 = no Engram) */
    int engram_layer_ids[DSV4_MAX_ENGRAM];
    long long engram_num_embeddings[DSV4_MAX_ENGRAM];
    int engram_max_ngram, engram_vocab_size, engram_n_heads, engram_head_dim, engram_pad_token_id;
    int engram_compressed_vocab;
    /* DSpark (§4.4): the num_nextn_predict_layers blocks */
    int dspark_block_size, dspark_noise_token_id, dspark_markov_rank;
    int n_dspark_targets, dspark_target_layer_ids[DSV4_MAX_DSPARK_TARGETS];
    int dspark_n_routed_experts, dspark_n_activated_experts;
    /* vision (§1.3); vision_n_layers == 0: no vision tower */
    int image_token_id;
    int vision_n_layers, vision_dim, vision_n_heads, vision_inter_dim, vision_patch_size;
    int vision_downsample_ratio, vision_max_n_token, vision_min_pixels;
    float vision_rope_theta;
    int vision_max_wh_ratio;   /* DeepSeek-V4-Flash-Vision-Exp only (config_vexp.c): aspect clamp, 0 = none */
} dsv4_config_v41;

typedef struct {
    int vocab_size;            /* vocab_size */
    int dim;                   /* hidden_size (D) */
    int n_layers;              /* num_hidden_layers (trunk only) */
    int n_mtp_layers;          /* num_nextn_predict_layers */
    int n_heads;               /* num_attention_heads (H) */
    int head_dim;              /* head_dim (512 in V4) */
    int rope_dim;              /* qk_rope_head_dim (64) */
    int q_lora_rank;           /* q_lora_rank */
    int o_groups;              /* o_groups */
    int o_lora_rank;           /* o_lora_rank */
    int moe_inter_dim;         /* moe_intermediate_size (I) */
    int n_routed_experts;      /* n_routed_experts */
    int n_shared_experts;      /* n_shared_experts (0 or 1) */
    int n_activated_experts;   /* num_experts_per_tok */
    int n_hash_layers;         /* num_hash_layers: layers [0, n_hash_layers) route by tid2eid */
    int window_size;           /* sliding_window (128) */
    int index_n_heads;         /* index_n_heads */
    int index_head_dim;        /* index_head_dim */
    int index_topk;            /* index_topk */
    int hc_mult;               /* hc_mult (4) */
    int hc_sinkhorn_iters;     /* hc_sinkhorn_iters (20) */
    float hc_eps;              /* hc_eps */
    float norm_eps;            /* rms_norm_eps */
    float route_scale;         /* routed_scaling_factor */
    float swiglu_limit;        /* swiglu_limit (0 = none) */
    float rope_theta;          /* rope_theta: window-only layers, no YaRN */
    float compress_rope_theta; /* compress_rope_theta: compressed layers, with YaRN */
    int   yarn;                /* 1 when rope_scaling.type == "yarn" */
    float rope_factor;         /* rope_scaling.factor */
    int   original_seq_len;    /* rope_scaling.original_max_position_embeddings */
    float beta_fast, beta_slow;/* rope_scaling.beta_fast / beta_slow */
    int max_position_embeddings;
    int bos_token_id, eos_token_id;
    int expert_fp8;            /* expert_dtype == "fp8" (FP8 128x128-block experts); default "fp4" = packed FP4.
                                  After dsv4_model_load: the format the routed experts were loaded in. */
    int expert_dtype_given;    /* 1 when config.json has a non-null "expert_dtype" key, else 0 */
    int n_ratios;              /* n_layers + n_mtp_layers */
    int compress_ratios[DSV4_MAX_LAYERS]; /* per layer, MTP block(s) last */
    int fp8_block;             /* FP8 weight tile edge: quantization_config.weight_block_size (V4 128, V4.1 32) */
    dsv4_config_v41 x;         /* DeepSeek-V4.1 keys (config_v41.c); x.v41 == 0 for a V4 config */
} dsv4_config;

/* Parse config.json at `path` (read with dsv4_read_file) into *c, applying the defaults and ranges above.
 * Returns 0, or -1 with err "<path>: ..." naming the key at fault (missing, wrong type, out of range,
 * duplicated, inconsistent with another key) or the JSON syntax error's line. */
int dsv4_config_load(dsv4_config *c, const char *path, char *err, size_t errlen);
/* config_v41.c, called by dsv4_config_load for a config with a nested text_config after the text keys were parsed
 * from it: reads model_type, quantization_config (weight_block_size [32,32] -> fp8_block 32, expert_dtype),
 * bos/eos/image_token_id at the top level, the CSA2 / Engram / DSpark keys of text_config and vision_config, and
 * checks them against each other (sources of every compressed layer, candidate source an index source, Engram
 * and DSpark target layers inside the trunk, ratios 0 / 1 / 2 only, DSpark blocks window-only). root and tc are
 * cJSON objects. Returns 0, or -1 with err naming the file and key. */
struct cJSON;
/* config_vexp.c, called by dsv4_config_load for a V4 config (no text_config) after the text keys: the flat vision_*
 * keys of DeepSeek-V4-Flash-Vision-Exp (docs/vision-exp.md §2) into x.vision_* (x.v41 stays 0): vision_n_layers
 * (absent or 0: a text-only V4, nothing else read), vision_dim, vision_n_heads, vision_inter_dim, vision_patch_size
 * (required), vision_downsample_ratio (3), vision_max_n_token (384, in [8, 4096]), vision_min_pixels (147456),
 * vision_max_wh_ratio (0 = none), vision_rope_theta (10000), image_token_id (required, < vocab_size). Returns 0, or
 * -1 with err naming the file and key. */
int dsv4_config_vexp_parse(dsv4_config *c, const struct cJSON *root, const char *path, char *err, size_t errlen);
/* 1 for a DeepSeek-V4-Flash-Vision-Exp config: a V4 config (x.v41 == 0) with vision_n_layers > 0. */
static inline int dsv4_config_vision_exp(const dsv4_config *c) { return !c->x.v41 && c->x.vision_n_layers > 0; }
int dsv4_config_v41_parse(dsv4_config *c, const struct cJSON *root, const struct cJSON *tc, const char *path,
                          char *err, size_t errlen);

#endif
