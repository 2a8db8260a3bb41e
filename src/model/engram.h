/* model/engram.h — DeepSeek-V4.1 Engram conditional memory (docs/v41.md §2), internal API.
 *
 * Four independent parts, each usable and tested alone (tests/test_engram.c):
 *  1. The compressed token map (§2.2, "released token-ID contract"): raw token id -> compressed id, built from
 *     the checkpoint's tokenizer (decode each id alone; NFKC, NFD, strip marks, lowercase, whitespace runs ->
 *     one space, strip; first-seen order). The Unicode steps use libutf8proc.
 *  2. The n-gram hash layout (§2.3): primes (smallest unused primes above engram_vocab_size - 1, per
 *     (layer, n-gram order, head), "used" global across layers), their exclusive prefix sums (column offsets)
 *     and the odd multipliers 2v + 1 with v drawn exactly as NumPy's default_rng(10007 * layer_id)
 *     .integers(0, B, size=max_ngram, dtype=int64), B = floor(floor((2^63 - 1) / compressed_vocab) / 2)
 *     (SeedSequence -> PCG64 XSL-RR -> 64-bit Lemire bounded draw, re-implemented here; checked against the
 *     released multipliers).
 *  3. The per-position hash with the DEAD-latching lookback (§2.3) and the table row reader: rows are read
 *     from disk with pread (never mapped or loaded whole), optionally through a small direct-mapped row cache,
 *     and decoded value = e4m3 * 2^(e8m0 - 127) in F32, rounded to BF16 (exact except in underflow).
 *  4. The gate and injection into the hc streams (§2.5), given the projected key/value.
 * The wkv projection itself is an ordinary FP8 linear with 32x32 tiles (kernels).
 *
 * Sources of truth: docs/v41.md §2 and DeepSeek's V4.1 inference/engram.py + model.py (Engram, NgramHashState) read
 * for facts (docs/v41-implementation.md). Nothing here allocates after open; the reader is thread-safe.
 */
#ifndef DSV4_MODEL_ENGRAM_H
#define DSV4_MODEL_ENGRAM_H
#include <stddef.h>
#include <stdint.h>
#include "dsv4.h"
#include "kernels/kernels.h"

#define DSV4_ENGRAM_DEAD (-1)        /* compressed id of a position inside an image span (§2.3) */
#define DSV4_ENGRAM_MAX_LAYERS 8     /* engram layers per model */
#define DSV4_ENGRAM_MAX_NGRAM 8      /* engram_max_ngram_size */
#define DSV4_ENGRAM_MAX_COLS 64      /* (max_ngram - 1) x n_heads hash columns per layer */

/* ---- 1. compressed token map ---- */
/* Build the map for token ids 0 .. dsv4_tokenizer_vocab_size(t) - 1 (ids without a token, if any, get the key
 * of their empty decoded text). *map (malloc'd, int32 [*n_ids]) receives the compressed ids, *n_distinct the
 * number of distinct keys. Returns 0, or -1 with err (NULL tokenizer, out of memory, a Unicode failure). */
int dsv4_engram_token_map(const dsv4_tokenizer *t, int32_t **map, int *n_ids, int *n_distinct, char *err,
                          size_t errlen);
/* The key of one raw token (the string the map groups by), as bytes into out (cap bytes, NUL-terminated).
 * Returns its length, or -1 (no such id, too long, out of memory). For tests and tools. */
int dsv4_engram_token_key(const dsv4_tokenizer *t, int32_t id, char *out, size_t cap);

/* ---- 2. hash layout ---- */
typedef struct {
    int n_layers;                                    /* engram layers */
    int layer_ids[DSV4_ENGRAM_MAX_LAYERS];           /* absolute layer numbers (engram_layer_ids) */
    int max_ngram;                                   /* engram_max_ngram_size (n-gram orders 2..max_ngram) */
    int n_heads;                                     /* engram_n_heads */
    int n_cols;                                      /* (max_ngram - 1) * n_heads; column = (n - 2) * n_heads + h */
    int32_t pad_id;                                  /* compressed id of engram_pad_token_id */
    int64_t compressed_vocab;                        /* engram_compressed_vocab_size */
    int64_t mult[DSV4_ENGRAM_MAX_LAYERS][DSV4_ENGRAM_MAX_NGRAM];    /* odd multipliers per lookback shift */
    int64_t prime[DSV4_ENGRAM_MAX_LAYERS][DSV4_ENGRAM_MAX_COLS];    /* bucket modulus per column */
    int64_t offset[DSV4_ENGRAM_MAX_LAYERS][DSV4_ENGRAM_MAX_COLS];   /* first row of each column's range */
    int64_t rows[DSV4_ENGRAM_MAX_LAYERS];            /* table rows = sum of the layer's primes */
} dsv4_engram_layout;

/* Smallest prime > start that is not in used[0..n_used). */
int64_t dsv4_engram_next_prime(int64_t start, const int64_t *used, int n_used);
/* The max_ngram multipliers of absolute layer `layer_id` for compressed vocabulary size `cvocab` (1..2^29). */
void dsv4_engram_multipliers(int layer_id, int max_ngram, int64_t cvocab, int64_t *out);
/* Derive the whole layout from the config values; num_embeddings[l] must equal the sum of layer l's primes
 * (error names 'engram_num_embeddings[l]'). pad_id is the compressed id of engram_pad_token_id.
 * Returns 0, or -1 with err (bounds: 1..DSV4_ENGRAM_MAX_LAYERS layers, 2 <= max_ngram <= DSV4_ENGRAM_MAX_NGRAM,
 * cols <= DSV4_ENGRAM_MAX_COLS, vocab_size >= 2, 0 <= pad_id < cvocab). */
int dsv4_engram_layout_init(dsv4_engram_layout *lo, int n_layers, const int *layer_ids,
                            const int64_t *num_embeddings, int max_ngram, int n_heads, int64_t vocab_size,
                            int64_t cvocab, int32_t pad_id, char *err, size_t errlen);

/* ---- 3. hash ---- */
/* Row indices of the n_cols hash columns of engram layer index l (0-based in layer_ids) at absolute position p.
 * back[s] = compressed id of position p - s for s = 0 .. max_ngram-1 (any value where p - s < 0; DEAD inside
 * an image span). Lookback latches: once p - s < 0 or back[s] == DEAD, that and every further value is pad_id.
 * idx[col] is a row of the layer's table, in [offset[col], offset[col] + prime[col]). */
void dsv4_engram_hash(const dsv4_engram_layout *lo, int l, int64_t p, const int32_t *back, int64_t *idx);

/* ---- 3b. table reader ---- */
typedef struct dsv4_engram_table dsv4_engram_table;
/* Open one layer's table for row reads: row r's head_dim E4M3 codes are at byte w_off + r * w_stride of `path` and
 * its head_dim/32 E8M0 scales at s_off + r * s_stride of `scale_path` (NULL = the same file). The checkpoint's two
 * tensors embed.weight / embed.scale: strides head_dim and head_dim/32, offsets from st_locate; a packed 264-byte
 * record file: w_stride = s_stride = 264, s_off = w_off + 256. cache_rows > 0 adds a direct-mapped cache of that
 * many rows (rounded down to a power of two), 0 = none. Each file must hold every row: a shorter file is an error
 * naming it, its size and the rows expected. Returns 0, or -1 with err (cannot open, too short, bad arguments,
 * out of memory). */
int dsv4_engram_table_open(dsv4_engram_table **out, const char *path, int64_t rows, int head_dim, int64_t w_off,
                           int64_t w_stride, const char *scale_path, int64_t s_off, int64_t s_stride,
                           int64_t cache_rows, char *err, size_t errlen);
void dsv4_engram_table_close(dsv4_engram_table *t);
/* Bytes of one fetched row: head_dim codes then head_dim/32 scales. */
int dsv4_engram_row_bytes(const dsv4_engram_table *t);
/* Fetch rows idx[0..n) into out (n x dsv4_engram_row_bytes): first asks the kernel to read all the uncached
 * rows ahead (posix_fadvise WILLNEED, so the reads of one batch overlap), then preads each. Thread-safe.
 * Returns 0, or -1 with err (row out of range, read error or short read naming the file and row). */
int dsv4_engram_table_fetch(dsv4_engram_table *t, const int64_t *idx, int n, uint8_t *out, char *err,
                            size_t errlen);
/* Counters since open: rows requested, rows served from the cache. */
void dsv4_engram_table_stats(const dsv4_engram_table *t, int64_t *requested, int64_t *cache_hits);
/* Decode one fetched row (head_dim codes + scales) to BF16-representable floats. */
void dsv4_engram_row_decode(const uint8_t *row, int head_dim, float *out);

/* ---- 4. gate and injection (§2.5) ---- */
/* For each of the hc streams c of X ([hc][D], BF16 values, updated in place):
 *   rx = 1/sqrt(mean(x_c^2) + eps), rk = 1/sqrt(mean(key_c^2) + eps),
 *   dot = sum_d(x_c[d] * w[c][d] * key_c[d]) * rx * rk * D^-1/2,
 *   g = sigmoid(copysign(sqrt(max(|dot|, 1e-6)), dot)); x_c = bf16(x_c + g * value).
 * key: [hc][D], value: [D] (BF16 values, the wkv output); w = q_weight * k_weight in F32 [hc][D].
 * masked != 0 (a token inside an image span): X is left untouched. gates (may be NULL) receives the hc gates. */
void dsv4_engram_inject(float *X, const float *key, const float *value, const float *w, int hc, int D, float eps,
                        int masked, float *gates);

/* ---- 4b. per-sequence history and whole-chunk hashing (§2.6, §2.7) ---- */
/* The only Engram decoding state: the compressed ids (or DEAD) of the last max_ngram - 1 positions. */
typedef struct {
    int32_t prev[DSV4_ENGRAM_MAX_NGRAM];   /* prev[s - 1] = compressed id of position pos - s */
    int64_t pos;                           /* next absolute position */
} dsv4_engram_history;
/* Reset to an empty sequence (position 0). */
void dsv4_engram_history_reset(dsv4_engram_history *h);
/* Row indices of every Engram layer for the chunk cids[0..n) at positions h->pos.. (idx: [n][n_layers][n_cols]),
 * then append the chunk to the history. Any split of a sequence into chunks gives the same indices. */
void dsv4_engram_hash_chunk(const dsv4_engram_layout *lo, dsv4_engram_history *h, const int32_t *cids, int n,
                            int64_t *idx);

/* ---- 4c. whole-chunk row prefetch on a worker thread ---- */
/* One background thread that fetches a chunk's rows for every Engram layer while the caller runs the layers before
 * the first Engram layer (the reference's "prefetch before the layers" schedule). Buffers are sized at creation;
 * start/wait allocate nothing. */
typedef struct dsv4_engram_prefetch dsv4_engram_prefetch;
/* For up to max_tokens tokens of n_layers tables of n_cols columns and row_bytes bytes. Returns 0, or -1 with err. */
int dsv4_engram_prefetch_new(dsv4_engram_prefetch **out, int max_tokens, int n_layers, int n_cols, int row_bytes,
                             char *err, size_t errlen);
void dsv4_engram_prefetch_free(dsv4_engram_prefetch *p);
/* Start fetching: tables[l] gets the rows idx[t][l][c] (dsv4_engram_hash_chunk layout) of n tokens. idx is copied. */
void dsv4_engram_prefetch_start(dsv4_engram_prefetch *p, dsv4_engram_table *const *tables, const int64_t *idx, int n);
/* Wait for the last start; *rows (may be NULL) receives layer l's rows at *rows + l * max_tokens * n_cols *
 * row_bytes, token-major. Returns 0, or -1 with the fetch error. */
int dsv4_engram_prefetch_wait(dsv4_engram_prefetch *p, const uint8_t **rows, char *err, size_t errlen);
/* Layer l's rows inside the buffer returned by dsv4_engram_prefetch_wait. */
const uint8_t *dsv4_engram_prefetch_rows(const dsv4_engram_prefetch *p, const uint8_t *rows, int l);

/* ---- 5. one Engram layer on a chunk (§2.5) ---- */
typedef struct {
    int hc, dim;            /* hc_mult streams of hidden_size */
    int n_cols, head_dim;   /* wkv input K = n_cols * head_dim */
    dsv4_wview wkv;         /* [(hc + 1) * dim, K]: the checkpoint's FP8 32x32 tiles read in place (DSV4_W_FP8_32,
                             * kernels/kernels.h), or any other dsv4_linear format */
    const float *w;         /* [hc][dim] F32: q_weight * k_weight (F32 product of the BF16 tensors) */
    float eps;              /* rms_norm_eps */
} dsv4_engram_proj;
/* Floats of scratch dsv4_engram_apply needs for n tokens. */
size_t dsv4_engram_scratch_floats(const dsv4_engram_proj *p, int n);
/* X [n][hc][dim] (BF16 values) += the Engram of each token: rows [n][n_cols] fetched rows (dsv4_engram_table_fetch
 * layout) are decoded and concatenated in column order, FP8-simulated in 32-blocks (the act_quant of the FP8
 * linear), projected by wkv (BF16 output) into hc keys and one value, then gated and added per stream
 * (dsv4_engram_inject). masked (may be NULL): masked[t] != 0 leaves token t untouched (image spans).
 * gates (may be NULL): [n][hc]. scratch: dsv4_engram_scratch_floats(p, n) floats. */
void dsv4_engram_apply(const dsv4_engram_proj *p, float *X, const uint8_t *rows, int n, const uint8_t *masked,
                       float *gates, float *scratch);

#endif
