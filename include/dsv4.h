/* dsv4.h — the public API of dsv4: DeepSeek-V4 inference in C.
 *
 * The CLI, the server and library users see only this header; tensors, kernels and cache layouts stay
 * inside. Conventions:
 *  - Every function that can fail returns 0 on success and -1 on failure, writing a one-line message
 *    into `err` (errlen bytes, may be NULL) that names the file, tensor, key or argument at fault.
 *    The library never prints and never exits.
 *  - Objects are created by the *_load and *_open functions and released by the matching *_free; free(NULL) is a no-op.
 *  - Token ids are int32 in [0, vocab_size). Logits are float32, vocab_size values, in token-id order.
 *  - A model is read-only after load and may be shared by several sessions (one thread per session);
 *    nothing global is read or written after load (DSV4_DUMP is read by dsv4_model_load).
 *  - Sizes are in elements unless said otherwise; strings are NUL-terminated UTF-8; paths have no length limit.
 * Architecture: docs/architecture.md (cited as "docs/architecture.md §N"); internals: docs/internals.md.
 */
#ifndef DSV4_H
#define DSV4_H
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ model */

typedef struct dsv4_model dsv4_model;

/* Load the model directory `dir`: config.json plus model.safetensors, or *.safetensors shards with
 * model.safetensors.index.json (official HF layout of DeepSeek-V4-Flash/Pro, unconverted; docs/architecture.md §1-§2).
 * A DeepSeek-V4.1 directory (nested config.json, model_type deepseek_v41; docs/v41-implementation.md) loads too: its
 * sessions run the V4.1 forward through dsv4_session_open / dsv4_eval / dsv4_eval_all / reset / pos / free; with a
 * tokenizer.json its Engram token map is built here (count checked against engram_compressed_vocab_size), without
 * one the identity map is used (dsv4_model_info.engram_token_map says which). Not implemented for V4.1 yet, each
 * refused with an error naming V4.1: a memory budget below the checkpoint's size (dsv4_model_load_opts; one that
 * holds it keeps the mmap path, as for V4), dsv4_eval_batch, dsv4_eval_mtp,
 * dsv4_checkpoint_save / restore, dsv4_session_export / import (dsv4_checkpoint_state_bytes and
 * dsv4_session_export_bytes return 0). Weights
 * are memory-mapped read-only (zero copy; the files must stay unchanged while the model lives).
 * Checks, each an error naming the file and the key / tensor: config.json keys and their supported ranges
 * (src/io/config.h; duplicate keys refused); every tensor the config implies is present with the expected
 * dtype and shape; a checkpoint tensor the config does not imply is refused ("unexpected tensor
 * 'layers.3.attn_norm.weight' in <file> — config.json says num_hidden_layers 3"); routed experts all in one
 * format: config.json's expert_dtype ("fp4" packed FP4 / "fp8") when present, else the first routed expert's
 * (docs/architecture.md §1.1, §2.4); hash-routing tables hold valid expert ids. Also loads `tokenizer.json` from `dir` when it exists (see dsv4_model_tokenizer); a
 * tokenizer with ids >= the config's vocab_size is refused, naming both files. With the environment variable
 * DSV4_DUMP=<dir> set at this call, the model's evaluations append per-layer activations there
 * (docs/internals.md "Debugging"). On success *out owns everything (free with dsv4_model_free); on failure
 * *out is NULL. Errors also: out of memory, unreadable files, malformed safetensors (src/io/safetensors.h). */
int dsv4_model_load(dsv4_model **out, const char *dir, char *err, size_t errlen);
/* Unmap and free the model and its tokenizer. Every session of the model must be freed first. NULL is a no-op. */
void dsv4_model_free(dsv4_model *m);

/* Memory budget (issue 9, docs/memory-budget.md): load options of dsv4_model_load_opts. A zeroed struct gives
 * the defaults (no budget: the zero-copy mmap path of dsv4_model_load). */
enum { DSV4_EVICT_LRU = 0, DSV4_EVICT_LFU = 1 };   /* expert cache eviction: least recently / least frequently
                                                      used (per-expert use counts halved every 16 x slots uses) */
enum { DSV4_PREFETCH_DEFAULT = 0,   /* = DSV4_PREFETCH_KNOWN */
       DSV4_PREFETCH_OFF = 1,       /* experts are read only when a layer needs them (measurement) */
       DSV4_PREFETCH_KNOWN = 2,     /* read ahead what is known: the routed layer's experts once its router ran,
                                       the next hash-routed layer's from the token ids */
       DSV4_PREFETCH_GUESS = 3 };   /* also the next score-routed layer's experts of the previous token */
typedef struct {
    uint64_t mem_bytes;  /* bytes the weights may occupy in RAM; 0 = no budget. With a budget smaller than the
                          * checkpoint, routed experts are not read through the mapping: one expert (w1, w2, w3
                          * and their scales, of one layer) at a time is read with pread into an expert cache of
                          * mem_bytes - (resident weights) bytes owned by the model, and dropped from the page cache.
                          * The other weights stay mapped (resident). A budget >= the whole checkpoint keeps the mmap
                          * path. Logits never depend on the budget (bit-identical). */
    int policy;          /* DSV4_EVICT_* (default LRU) */
    int prefetch;        /* DSV4_PREFETCH_* */
    int io_threads;      /* read-ahead threads, 0 = 2; 1..64 */
    int64_t engram_cache_rows; /* DeepSeek-V4.1 Engram: rows of a direct-mapped cache in front of each Engram table,
                          * per session (each row 2 x engram_head_dim + head_dim/32 * 2 bytes as stored: 264 B on
                          * V4.1-Flash, so 65,536 rows = 16.5 MiB per table); 0 = none (every row read with pread).
                          * 0..2^30; ignored for V4. Logits never depend on it (docs/v41-implementation.md). */
    int chunk_tokens;    /* tokens per forward chunk of this model's sessions: a dsv4_eval call of n tokens runs as
                          * ceil(n / chunk) chunks, each through every layer at once, so each routed expert's weights
                          * are read once per chunk for all its tokens (prefill speed grows with the chunk) while the
                          * session scratch grows by about 1 MiB per chunk token at V4-Flash shapes
                          * (dsv4_session_bytes; a session's chunk is at most its max_ctx). 0 = DSV4_DEFAULT_CHUNK;
                          * 1..4096. A Vision-Exp model's chunk is at least its vision_max_n_token (an image span is
                          * evaluated in one chunk). Logits never depend on it (any split of a sequence gives
                          * bit-identical logits; docs/performance.md). */
} dsv4_load_options;
/* The chunk_tokens a load without the option uses. `dsv4 bench --prefill-chunk` on the real V4-Flash shapes measured
 * 512 as 1.1-1.5x faster prefill (docs/performance.md, "Prefill chunk"); the library keeps 128 for the smallest
 * session (3.60 GiB at 1 Mi context, every server slot pays it), and the CLI's one-session commands ask for 512. A
 * session's own chunk is at most its max_ctx. */
#define DSV4_DEFAULT_CHUNK 128

/* dsv4_model_load with options (o NULL = dsv4_model_load). Extra errors: a budget below the minimum, "memory
 * budget 1.00 GiB (1073741824 bytes) is below the minimum 2.31 GiB (2480000000 bytes) for DIR: resident weights
 * ... + 6 experts of ... (one token's routed experts of one layer)"; policy / prefetch / io_threads /
 * engram_cache_rows / chunk_tokens out of range;
 * the read threads cannot be started. The checkpoint's expert pages are never touched at load. */
int dsv4_model_load_opts(dsv4_model **out, const char *dir, const dsv4_load_options *o, char *err, size_t errlen);

/* Expert cache figures (all zero but `resident_bytes` / `fits` when no budget was given). Counts since load or
 * the last dsv4_model_expert_stats_reset; safe to call while sessions evaluate (a consistent snapshot). */
typedef struct {
    int active;               /* 1: experts are read into the cache; 0: mmap path (no budget, or the model fits) */
    int fits;                 /* 1 when a budget was given but the whole checkpoint fits in it (mmap path kept) */
    int slots;                /* experts the cache holds */
    uint64_t budget_bytes;    /* the mem_bytes asked for */
    uint64_t resident_bytes;  /* checkpoint bytes other than routed experts (kept mapped) */
    uint64_t min_bytes;       /* the smallest budget accepted: resident + n_activated_experts entries */
    uint64_t entry_bytes;     /* bytes of one cache entry (one expert of one layer: w1, w2, w3 + scales) */
    uint64_t cache_bytes;     /* slots x entry_bytes (reserved address space; RAM is used as slots fill) */
    uint64_t lookups;         /* expert uses by the forward pass (one per needed expert per layer per chunk) */
    uint64_t hits;            /* ... found resident from an earlier use (cache hits proper) */
    uint64_t ahead;           /* ... found resident, read ahead for this use (the read overlapped compute) */
    uint64_t late;            /* ... found being read ahead (waited for the read to finish) */
    uint64_t misses;          /* ... read by the evaluating thread itself */
    uint64_t prefetched;      /* entries read ahead */
    uint64_t prefetch_unused; /* entries read ahead and evicted (or proven unneeded) before any use */
    uint64_t reads;           /* entries read from disk (misses + prefetched) */
    uint64_t bytes_read;      /* bytes read from disk */
    uint64_t read_errors;     /* failed reads */
    double read_seconds;      /* time spent in reads, summed over threads */
    double wait_seconds;      /* time evaluating threads spent waiting for expert reads */
} dsv4_expert_stats;
/* Fill *out (m NULL: zeros). */
void dsv4_model_expert_stats(const dsv4_model *m, dsv4_expert_stats *out);
/* Zero the counters (not the configuration fields). NULL is a no-op. */
void dsv4_model_expert_stats_reset(dsv4_model *m);

/* Summary of a configuration; filled from config.json alone (no weights needed). */
typedef struct {
    int vocab_size, dim, n_layers, n_mtp_layers, n_heads, head_dim;
    int n_routed_experts, n_activated_experts, n_hash_layers;
    int n_window_layers, n_csa_layers, n_hca_layers;  /* trunk layers by compress ratio 0 / 4 / other */
    int bos_token_id, eos_token_id;
    double n_params;            /* all parameters incl. MTP (elements; a packed FP4 byte counts 2) */
    double n_params_mtp;        /* of which in the MTP block(s); the model card's figure is n_params - n_params_mtp */
    double n_params_active;     /* parameters touched per decoded token (trunk, top-k experts, no MTP) */
    double bytes_total;         /* bytes of all tensors including scales */
    double bytes_by_dtype[8];   /* index by dsv4_info_dtype below */
    double bytes_per_token;     /* weight bytes read to decode one token (trunk; embed row only) */
    /* DeepSeek-V4.1 (zero for V4): n_params_mtp then counts the DSpark stages; backbone = n_params - n_params_mtp
     * - n_params_engram. Engram tables are counted in bytes_per_token as the rows a token reads. */
    int v41, n_engram_layers;
    int n_csa2_layers[2];          /* trunk layers of compress ratio 2 / ratio 1 (n_window_layers: ratio 0) */
    double n_params_engram;        /* Engram tables + wkv + q/k weights */
    double engram_rows_per_token;  /* table rows read per decoded token, all Engram layers */
    double bytes_per_token_engram; /* of bytes_per_token: the Engram rows (E4M3 + E8M0) and the Engram weights */
    int engram_token_map;          /* dsv4_model_get_info of a V4.1 model with Engram: 1 = the compressed token map
                                    * was built at load from the directory's tokenizer.json (docs/v41.md §2.2), 0 =
                                    * the identity map (no tokenizer; needs engram_compressed_vocab_size == vocab_size) */
} dsv4_model_info;
enum { DSV4_INFO_BF16, DSV4_INFO_F32, DSV4_INFO_F8_E4M3, DSV4_INFO_F8_E8M0, DSV4_INFO_FP4, DSV4_INFO_I64,
       DSV4_INFO_OTHER, DSV4_INFO_NDTYPE };

/* Compute the summary for the config.json in `dir` (or `dir` itself when it ends in ".json"), weights-free:
 * header fields from the config, counts and bytes from the tensor list the config implies (docs/architecture.md §2.1-§2.2).
 * Routed experts are counted in config.json's expert_dtype; when the key is absent (the initial revision, e.g.
 * the published V4-Flash config) they are assumed packed FP4 — a -Base checkpoint's FP8 experts show only in
 * dsv4_model_get_info after loading. Returns 0, or -1 with err (config errors as dsv4_model_load; *out zeroed). */
int dsv4_config_info(const char *dir, dsv4_model_info *out, char *err, size_t errlen);
/* The summary of a loaded model, computed once by dsv4_model_load (no file is read here): as
 * dsv4_config_info, except bytes_total and bytes_by_dtype count the tensors actually loaded. */
void dsv4_model_get_info(const dsv4_model *m, dsv4_model_info *out);

/* ------------------------------------------------------------------ session */

typedef struct dsv4_session dsv4_session;

/* Open a decoding session of at most `max_ctx` tokens (positions 0 .. max_ctx-1) on model `m`, which must
 * outlive it. All state (window rings of min(sliding_window, max_ctx) entries, compressed entries, compressor
 * and indexer state, scratch) is allocated here in one block whose size grows linearly with max_ctx;
 * dsv4_eval does not allocate. Errors: out NULL, m NULL, max_ctx < 1, "out of memory" (the state would exceed
 * the address space or the machine's physical RAM — refused before allocating — or the allocation failed;
 * the message gives the MiB needed). On failure *out is NULL. */
int dsv4_session_open(dsv4_session **out, const dsv4_model *m, int max_ctx, char *err, size_t errlen);
/* Free the session. NULL is a no-op. */
void dsv4_session_free(dsv4_session *s);
/* Forget the sequence: the next dsv4_eval starts at position 0 (state cleared, nothing freed). NULL is a no-op. */
void dsv4_session_reset(dsv4_session *s);
/* Number of tokens evaluated so far (= position of the next token), in [0, max_ctx]; 0 for NULL. */
int dsv4_session_pos(const dsv4_session *s);
/* Bytes of state and scratch that dsv4_session_open(m, max_ctx) allocates (one block, linear in max_ctx);
 * 0 when m is NULL or max_ctx < 1, SIZE_MAX when it would not fit the address space. */
size_t dsv4_session_bytes(const dsv4_model *m, int max_ctx);
/* config.json max_position_embeddings of m (the longest context the model was trained for); 0 for NULL. */
int dsv4_model_max_positions(const dsv4_model *m);
/* Tokens per forward chunk of m's sessions (dsv4_load_options.chunk_tokens as applied: the default, or raised to a
 * Vision-Exp model's vision_max_n_token); 0 for NULL. */
int dsv4_model_chunk_tokens(const dsv4_model *m);

/* Evaluate `n` >= 1 tokens (ids tokens[0..n)) at positions pos..pos+n-1 (n > 1: prefill of a chunk;
 * n == 1: decode; docs/architecture.md §4-§5) and advance the position by n. Any split of a sequence into calls gives the
 * same logits up to rounding. If `logits` is non-NULL it receives the vocab_size F32 logits of the last of the
 * n positions. Errors (nothing evaluated, position unchanged): session NULL, n < 1 or tokens NULL, token id
 * out of range (names the index and id), context overflow (pos+n > max_ctx). Error after evaluation (the
 * position has advanced; *logits holds the values): "non-finite logits at position P (corrupt checkpoint?)"
 * when any returned logit is NaN or Inf (e.g. an E8M0 scale byte 0xFF or a NaN weight). Under a memory budget,
 * a failed expert read (disk error, shard truncated) fails the call with the read's message and resets the
 * session to position 0 (its state would be partial); the model and other sessions stay usable. */
int dsv4_eval(dsv4_session *s, const int32_t *tokens, int n, float *logits, char *err, size_t errlen);
/* dsv4_eval with the logits of EVERY position: `logits` (non-NULL) receives n rows of vocab_size F32 logits, row i
 * those of position pos+i (predicting the token after tokens[i]); row n-1 is what dsv4_eval writes, bit for bit. The
 * head runs once per forward chunk (dsv4_load_options.chunk_tokens positions) for all its rows, so scoring a text
 * (perplexity, prompt logprobs) runs at prefill speed instead of one decode step per token. Errors as dsv4_eval, plus
 * logits NULL; the non-finite check covers every row (the message names the first bad position). */
int dsv4_eval_all(dsv4_session *s, const int32_t *tokens, int n, float *logits, char *err, size_t errlen);

/* One decode step for several sessions at once (a server's busy slots): session ss[i] evaluates token tokens[i] at its
 * position, as dsv4_eval(ss[i], &tokens[i], 1, ...) would, and advances by one. The sessions are evaluated as one
 * batch, so every weight is read once per step for all of them (up to min(128, the smallest chunk of the sessions) rows
 * per pass, see dsv4_load_options.chunk_tokens; larger nb runs in groups); each session's logits are bit-identical to
 * its own dsv4_eval (tests/test_batch.c). logits: NULL, or nb * vocab_size floats, row i for session i. Sessions must
 * be distinct, of one model, and not used by another thread during the call. Errors (nothing evaluated): ss or tokens
 * NULL, nb < 1, a NULL session (names its index), sessions of different models, the same session twice, a token out of
 * range, a session at max_ctx. After evaluation: "non-finite logits" as dsv4_eval (every session has advanced); under a
 * memory budget a failed expert read fails the call with the read's message and resets every session of the batch. No
 * allocation. */
int dsv4_eval_batch(dsv4_session *const *ss, int nb, const int32_t *tokens, float *logits, char *err, size_t errlen);

/* DeepSeek-V4.1: the positions of a DSpark draft block (config.json dspark_block_size), 0 for a model without DSpark
 * stages (every V4 model: it has the MTP block of dsv4_eval_mtp instead). */
int dsv4_model_dspark_block(const dsv4_model *m);
/* DeepSeek-V4.1's DSpark drafts (docs/v41.md §4.4) after the last evaluated position P: the stages draft positions
 * P+1 .. P+B (B = dsv4_model_dspark_block) for the ids [token, the noise id x (B-1)]. logits: B rows of vocab_size
 * F32 (with the Markov bias along the greedy chain); ids: B + 1 (token, then the greedy pick at each drafted
 * position); conf: B (the confidence head). Does not change the session. Errors: session or an output NULL; the
 * model has no DSpark stages (names it); fewer than 2 positions evaluated; token out of range; "non-finite logits"
 * as dsv4_eval. Allocates nothing. */
int dsv4_eval_dspark(dsv4_session *s, int32_t token, float *logits, int32_t *ids, float *conf, char *err,
                     size_t errlen);

/* Evaluate the MTP block (docs/architecture.md §4.9) on the trunk state of the last evaluated position t and the token
 * `next_token` at t+1; writes vocab_size F32 logits (non-NULL, vocab_size floats) predicting token t+2. Does
 * not advance the session (the speculative key is forgotten). Errors: session NULL; "model <dir> has no MTP
 * block" (num_nextn_predict_layers 0); no position evaluated yet; next_token out of range; logits NULL; an
 * MTP block whose compress ratio is not 0 ("not supported"); "non-finite logits at position t+1 (corrupt
 * checkpoint?)" as dsv4_eval. Only the first MTP block is used when the config has several. */
int dsv4_eval_mtp(dsv4_session *s, int32_t next_token, float *logits, char *err, size_t errlen);

/* ------------------------------------------------------------------ checkpoints (prefix reuse; src/model/checkpoint.c)
 * A checkpoint holds the rolling part of a session's state at one position: per block the window ring and its
 * slot positions, the compressor / indexer-compressor partial states (docs/architecture.md §4.4, §5.1), the MTP history and the
 * position; about (n_blocks x sliding_window x head_dim x 2 + sliding_window x hc_mult x dim x 4) bytes, independent
 * of the position. Compressed entries and indexer keys are append-only and are not copied, so a restore is valid
 * only into the SAME session, and only while that session has not evaluated other tokens at positions below the
 * checkpoint's since it was saved (after restoring checkpoint A, every checkpoint saved at a higher position than
 * A's is invalid once the session evaluates again; the caller tracks this). Restoring to position p then
 * evaluating tokens p.. gives the logits a cold run over the same tokens gives (tests/test_checkpoint.c). */
typedef struct dsv4_checkpoint dsv4_checkpoint;
/* Save the state of s into *cp: when *cp is NULL a checkpoint is allocated (free with dsv4_checkpoint_free),
 * otherwise the existing one (from the same session) is overwritten without allocating. Errors: NULL arguments,
 * a reused checkpoint of another layout, out of memory (*cp unchanged). */
int dsv4_checkpoint_save(const dsv4_session *s, dsv4_checkpoint **cp, char *err, size_t errlen);
/* Put s back to the state saved in c (position dsv4_checkpoint_pos(c)); see the validity rule above. Errors:
 * NULL arguments, a checkpoint saved from another session ("saved from another session"). */
int dsv4_checkpoint_restore(dsv4_session *s, const dsv4_checkpoint *c, char *err, size_t errlen);
/* The position (tokens evaluated) a checkpoint was saved at; -1 for NULL. */
int dsv4_checkpoint_pos(const dsv4_checkpoint *c);
/* Bytes of memory the checkpoint holds (0 for NULL); dsv4_checkpoint_state_bytes: bytes one would hold for s. */
size_t dsv4_checkpoint_bytes(const dsv4_checkpoint *c);
size_t dsv4_checkpoint_state_bytes(const dsv4_session *s);
/* Free a checkpoint. NULL is a no-op. */
void dsv4_checkpoint_free(dsv4_checkpoint *c);

/* The whole state of a session at its position, as bytes (a disk cache of prefixes): the rolling state plus the
 * compressed entries and indexer keys written so far. dsv4_session_export_bytes(s) is the exact size for s's
 * current position (grows with it; no allocation); export writes it into buf (n must equal that size).
 * dsv4_session_import puts such bytes into a session of the same model with max_ctx >= the saved position:
 * afterwards it continues exactly as the exporting session would (bit-identical logits). Errors name the cause:
 * not a dsv4 state (magic/version), saved from another model (dsv4_model_fingerprint: config shape and
 * checkpoint bytes), a position beyond max_ctx, a size that does not match; the session is unchanged then.
 * The bytes carry no checksum: the caller stores one (the server does). */
size_t dsv4_session_export_bytes(const dsv4_session *s);
int dsv4_session_export(const dsv4_session *s, void *buf, size_t n, char *err, size_t errlen);
int dsv4_session_import(dsv4_session *s, const void *buf, size_t n, char *err, size_t errlen);
/* 64-bit FNV-1a over the model's configuration shape and checkpoint size; 0 for NULL. */
uint64_t dsv4_model_fingerprint(const dsv4_model *m);

/* ------------------------------------------------------------------ sampling */

typedef struct {
    float temperature;  /* 0 = greedy (argmax) */
    float top_p;        /* 1 = off */
    int   top_k;        /* 0 = off */
    uint64_t seed;
} dsv4_sampler_params;

typedef struct dsv4_sampler dsv4_sampler;
/* Create a sampler for logits of `vocab_size` values with the parameters *p (copied) (src/sampling/sampler.c).
 * Ranges: vocab_size >= 1; temperature finite and >= 0 (0 = greedy); top_p in (0, 1] (1 = off); top_k >= 0
 * (0 = off; k >= vocab_size = off); any seed. Errors (naming the parameter and value): out of range, p NULL,
 * out of memory. All buffers are allocated here (two arrays of vocab_size). Free with dsv4_sampler_free. */
int dsv4_sampler_new(dsv4_sampler **out, int vocab_size, const dsv4_sampler_params *p, char *err, size_t errlen);
/* Free the sampler. NULL is a no-op. */
void dsv4_sampler_free(dsv4_sampler *s);
/* Pick a token id in [0, vocab_size) from `logits` (vocab_size F32 values; not modified; no allocation).
 * Order: p_i ∝ exp((l_i - max l) / T); top-k keeps the k largest logits, then top-p the smallest descending
 * prefix whose renormalized mass reaches top_p (at least one token); one draw from a splitmix64 stream seeded
 * with params.seed (one 53-bit uniform per call), so a given seed and logits sequence gives the same tokens.
 * Ties: equal logits rank by lower id (greedy returns the lowest id among the maxima). NaN: a NaN logit is
 * treated as -inf (never drawn unless every logit is NaN / -inf, then the greedy rule gives the lowest such
 * id). A +inf logit is drawn deterministically (the lowest id holding +inf). Callers that want NaN to be an
 * error get it from dsv4_eval ("non-finite logits"). s and logits must be non-NULL; cannot fail. */
int32_t dsv4_sample(dsv4_sampler *s, const float *logits);

/* ------------------------------------------------------------------ tokenizer */

typedef struct dsv4_tokenizer dsv4_tokenizer;

/* Load an HF tokenizer.json (byte-level BPE, pre-tokenizer Sequence of Split regexes, added tokens)
 * (src/tokenizer/tokenizer.c). Errors name `path`: cannot open, is a directory, not valid JSON, an unsupported
 * or malformed part (names the JSON key), a regex that does not compile (names the pre-tokenizer step and
 * offset), a model.vocab without the ByteLevel symbol of one of the 256 bytes ("model.vocab has no token for
 * byte 0x22": encode would otherwise drop that byte), out of memory. An added token may reuse an id of
 * model.vocab with different text: both texts encode to that id. On failure *out is NULL; free with
 * dsv4_tokenizer_free. */
int dsv4_tokenizer_load(dsv4_tokenizer **out, const char *path, char *err, size_t errlen);
/* Free a tokenizer from dsv4_tokenizer_load (never the one of dsv4_model_tokenizer). NULL is a no-op. */
void dsv4_tokenizer_free(dsv4_tokenizer *t);
/* The tokenizer loaded with the model, or NULL if the model directory had none (or m is NULL). Owned by the
 * model: valid until dsv4_model_free; its ids are all < the model's vocab_size (checked at load). */
const dsv4_tokenizer *dsv4_model_tokenizer(const dsv4_model *m);
/* Encode `len` bytes of UTF-8 text. Added (special) tokens are matched atomically in the raw text.
 * No BOS is added. Writes up to `cap` ids into `ids` and returns the total count needed
 * (call again with a larger buffer if it exceeds cap), or -1 with err on invalid input.
 * The whole text must be valid (strict) UTF-8: otherwise nothing is encoded and -1 is returned with
 * err "invalid UTF-8 at byte offset N" naming the first bad byte. Strict means: no overlong forms, no
 * surrogates (U+D800..DFFF), nothing above U+10FFFF, no truncated sequence (also not at the end); NUL is
 * valid. There is no replacement with U+FFFD (HF tokenizers only ever sees valid strings); tested in
 * tests/test_tokenizer_golden.c. ids may be NULL with cap 0 (count only). */
int dsv4_tokenize(const dsv4_tokenizer *t, const char *text, size_t len, int32_t *ids, int cap,
                  char *err, size_t errlen);
/* Id of the token whose text (NUL-terminated UTF-8, the vocabulary / added-token string) is exactly `text`
 * (e.g. "<｜end▁of▁sentence｜>"), or -1 (also for NULL arguments). */
int32_t dsv4_token_id(const dsv4_tokenizer *t, const char *text);
/* Raw bytes of one token (byte-level mapping undone); *len receives the byte count. NULL if out of range.
 * For an id shared by an added token and a model.vocab entry of different text, the added token's text. */
const char *dsv4_token_bytes(const dsv4_tokenizer *t, int32_t id, size_t *len);
/* 1 + the largest token id (vocabulary and added tokens); 0 for NULL. */
int dsv4_tokenizer_vocab_size(const dsv4_tokenizer *t);

/* Streaming decoder: feed ids one at a time, get back only complete UTF-8 characters. */
typedef struct { char pending[8]; int npending; } dsv4_detok_stream;
/* Append the bytes of `id` to the stream; writes the printable complete-UTF-8 prefix to out (cap bytes,
 * cap >= 256 recommended) and returns its length; incomplete trailing bytes stay pending.
 * Start from a zeroed stream. Invalid sequences become U+FFFD. Returns -1 (stream unchanged) if `id`
 * has no token or the output does not fit in cap. */
int dsv4_detok_next(const dsv4_tokenizer *t, dsv4_detok_stream *st, int32_t id, char *out, size_t cap);
/* Flush at end of stream: pending bytes (always an incomplete UTF-8 sequence) become one U+FFFD, written to
 * out (3 bytes); returns 3, or 0 when nothing is pending (or st is NULL), and resets the stream. Returns -1
 * (stream unchanged) when out is NULL or cap < 3. */
int dsv4_detok_flush(dsv4_detok_stream *st, char *out, size_t cap);

/* ------------------------------------------------------------------ threads and SIMD paths (issue 6) */

/* Use n threads for every following evaluation (one persistent pool, created on first use; rows, experts,
 * heads and indexer entries are split across it). n in [1, 1024]; n == 0 selects dsv4_default_threads().
 * Results never depend on n (bit-identical logits). Call it between evaluations, not during one.
 * Errors: n < 0 or n > 1024 ("threads must be in 0..1024"), or the pool's threads cannot be started. */
int dsv4_set_threads(int n, char *err, size_t errlen);
/* The thread count in use (>= 1). */
int dsv4_get_threads(void);
/* The number of physical cores of this machine (Linux: distinct core ids in sysfs; else online CPUs); >= 1. */
int dsv4_default_threads(void);

/* Kernel path: "scalar" (portable C11, the definition every path equals bit for bit), "avx2" (AVX2+FMA+F16C),
 * "avx512" (AVX-512 F/BW/VL + BF16). The default is the best this CPU supports, or $DSV4_KERNEL when set
 * (read once, at the first evaluation or the first call of these functions). */
const char *dsv4_get_kernel_path(void);
/* Force a path by name (tests, benchmarks). Errors: unknown name, or a path this CPU cannot run
 * ("avx512: this CPU lacks AVX512_BF16"). Call it between evaluations. */
int dsv4_set_kernel_path(const char *name, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
