/* model/engram.c — Engram conditional memory of DeepSeek-V4.1 (see engram.h; docs/v41.md §2). */
#include "model/engram.h"
#include "base/util.h"
#include "kernels/kernels.h"
#include "io/readat.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utf8proc.h>

/* ------------------------------------------------------------------ 1. compressed token map (§2.2) */

/* Strict UTF-8 check (the test HF's from_utf8_lossy makes: invalid input would turn into U+FFFD). */
static int utf8_valid(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k <= 0) return 0;
        i += (size_t)k;
    }
    return 1;
}

static int has_fffd(const uint8_t *s, size_t n) {
    for (size_t i = 0; i + 2 < n; i++)
        if (s[i] == 0xEF && s[i + 1] == 0xBF && s[i + 2] == 0xBD) return 1;
    return 0;
}

/* The byte-level BPE surface string of raw bytes (GPT-2 bytes_to_unicode: printable Latin-1 bytes map to
 * themselves, the others to U+0100 + their rank). Writes UTF-8 into out (4 * n + 1 bytes). */
static size_t byte_level_surface(const uint8_t *s, size_t n, uint8_t *out) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int b = s[i], cp;
        if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) cp = b;
        else {
            int rank = 0; /* number of non-printable bytes below b */
            for (int x = 0; x < b; x++)
                if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) rank++;
            cp = 256 + rank;
        }
        o += (size_t)utf8proc_encode_char(cp, out + o);
    }
    out[o] = 0;
    return o;
}

/* Unicode White_Space (what Rust's char::is_whitespace tests; tokenizers' Strip uses it). */
static int is_white_space(utf8proc_int32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* The §2.2 normalizer chain on valid UTF-8 s[0..n): NFKC, NFD, strip marks (Mn/Mc/Me), full lowercase, runs of
 * [ \t\r\n] -> " ", exactly " " -> U+E000, strip White_Space, U+E000 -> " ". Returns a malloc'd UTF-8 string
 * (length in *olen), or NULL on a utf8proc error / out of memory. */
static uint8_t *normalize(const uint8_t *s, size_t n, size_t *olen) {
    utf8proc_uint8_t *a = NULL, *b = NULL;
    utf8proc_ssize_t na = utf8proc_map(s, (utf8proc_ssize_t)n, &a, UTF8PROC_STABLE | UTF8PROC_COMPOSE |
                                       UTF8PROC_COMPAT);
    if (na < 0) return NULL;
    utf8proc_ssize_t nb = utf8proc_map(a, na, &b, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE);
    free(a);
    if (nb < 0) return NULL;
    /* code points after marks stripped and lowercase (at most 3 per input code point for U+0130's expansion) */
    utf8proc_int32_t *cp = malloc(sizeof *cp * (size_t)(2 * nb + 4));
    if (!cp) { free(b); return NULL; }
    size_t m = 0;
    for (utf8proc_ssize_t i = 0; i < nb;) {
        utf8proc_int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate(b + i, nb - i, &c);
        if (k <= 0) { free(b); free(cp); return NULL; }
        i += k;
        utf8proc_category_t cat = utf8proc_category(c);
        if (cat == UTF8PROC_CATEGORY_MN || cat == UTF8PROC_CATEGORY_MC || cat == UTF8PROC_CATEGORY_ME) continue;
        if (c == 0x130) { cp[m++] = 'i'; cp[m++] = 0x307; continue; } /* the one unconditional multi-char lowercase */
        cp[m++] = utf8proc_tolower(c);
    }
    free(b);
    /* every maximal run of [ \t\r\n] -> one space */
    size_t w = 0;
    int in_run = 0;
    for (size_t i = 0; i < m; i++) {
        utf8proc_int32_t c = cp[i];
        int ws = c == ' ' || c == '\t' || c == '\r' || c == '\n';
        if (ws && in_run) continue;
        in_run = ws;
        cp[w++] = ws ? ' ' : c;
    }
    m = w;
    if (m == 1 && cp[0] == ' ') cp[0] = 0xE000;
    size_t lo = 0, hi = m;
    while (lo < hi && is_white_space(cp[lo])) lo++;
    while (hi > lo && is_white_space(cp[hi - 1])) hi--;
    uint8_t *out = malloc(4 * (hi - lo) + 1);
    if (!out) { free(cp); return NULL; }
    size_t o = 0;
    for (size_t i = lo; i < hi; i++) o += (size_t)utf8proc_encode_char(cp[i] == 0xE000 ? ' ' : cp[i], out + o);
    out[o] = 0;
    free(cp);
    *olen = o;
    return out;
}

/* Key of token id into a malloc'd buffer (*klen bytes). NULL on out of memory / Unicode error. */
static uint8_t *token_key(const dsv4_tokenizer *t, int32_t id, size_t *klen) {
    size_t n = 0;
    const uint8_t *s = (const uint8_t *)dsv4_token_bytes(t, id, &n);
    if (!s) { s = (const uint8_t *)""; n = 0; }
    if (!utf8_valid(s, n) || has_fffd(s, n)) {
        /* decode gives U+FFFD: the key is the raw token string (id_to_token): the byte-level surface form of a
         * model.vocab token, or the content of an added token (which is valid UTF-8, so only a literal U+FFFD) */
        uint8_t *sf = malloc(4 * n + 1);
        if (!sf) return NULL;
        size_t sl = byte_level_surface(s, n, sf);
        if (dsv4_token_id(t, (const char *)sf) == id) { *klen = sl; return sf; }
        free(sf);
        uint8_t *k = malloc(n + 1);
        if (!k) return NULL;
        memcpy(k, s, n);
        k[n] = 0;
        *klen = n;
        return k;
    }
    size_t nl = 0;
    uint8_t *norm = normalize(s, n, &nl);
    if (!norm) return NULL;
    if (nl > 0) { *klen = nl; return norm; }
    free(norm);
    uint8_t *k = malloc(n + 1); /* empty after normalizing: keyed by the decoded text itself */
    if (!k) return NULL;
    memcpy(k, s, n);
    k[n] = 0;
    *klen = n;
    return k;
}

int dsv4_engram_token_key(const dsv4_tokenizer *t, int32_t id, char *out, size_t cap) {
    if (!t || !out || id < 0 || id >= dsv4_tokenizer_vocab_size(t)) return -1;
    size_t kl = 0;
    uint8_t *k = token_key(t, id, &kl);
    if (!k) return -1;
    int rc = -1;
    if (kl < cap) { memcpy(out, k, kl); out[kl] = 0; rc = (int)kl; }
    free(k);
    return rc;
}

static uint64_t fnv1a(const uint8_t *s, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) { h ^= s[i]; h *= 1099511628211ULL; }
    return h;
}

int dsv4_engram_token_map(const dsv4_tokenizer *t, int32_t **map, int *n_ids, int *n_distinct, char *err,
                          size_t errlen) {
    *map = NULL;
    *n_ids = *n_distinct = 0;
    if (!t) return dsv4_fail(err, errlen, "engram token map: no tokenizer");
    int V = dsv4_tokenizer_vocab_size(t);
    size_t cap = 1;
    while (cap < 2 * (size_t)V + 2) cap <<= 1;
    struct slot { uint8_t *key; size_t len; int32_t id; } *tab = calloc(cap, sizeof *tab);
    int32_t *m = malloc(sizeof *m * (size_t)(V > 0 ? V : 1));
    int next = 0, rc = 0;
    if (!tab || !m) { rc = dsv4_fail(err, errlen, "engram token map: out of memory"); goto done; }
    for (int32_t id = 0; id < V; id++) {
        size_t kl = 0;
        uint8_t *k = token_key(t, id, &kl);
        if (!k) { rc = dsv4_fail(err, errlen, "engram token map: cannot normalize token %d", id); goto done; }
        size_t h = (size_t)fnv1a(k, kl) & (cap - 1);
        while (tab[h].key && !(tab[h].len == kl && memcmp(tab[h].key, k, kl) == 0)) h = (h + 1) & (cap - 1);
        if (tab[h].key) { m[id] = tab[h].id; free(k); }
        else { tab[h].key = k; tab[h].len = kl; tab[h].id = next; m[id] = next++; }
    }
done:
    if (tab) for (size_t i = 0; i < cap; i++) free(tab[i].key);
    free(tab);
    if (rc) { free(m); return rc; }
    *map = m;
    *n_ids = V;
    *n_distinct = next;
    return 0;
}

/* ------------------------------------------------------------------ 2. layout: primes, multipliers (§2.3) */

static int is_prime(int64_t n) {
    if (n < 2) return 0;
    if (n % 2 == 0) return n == 2;
    for (int64_t d = 3; d * d <= n; d += 2)
        if (n % d == 0) return 0;
    return 1;
}

int64_t dsv4_engram_next_prime(int64_t start, const int64_t *used, int n_used) {
    for (int64_t c = start + 1;; c++) {
        if (!is_prime(c)) continue;
        int seen = 0;
        for (int i = 0; i < n_used; i++) if (used[i] == c) { seen = 1; break; }
        if (!seen) return c;
    }
}

/* 128-bit unsigned arithmetic for PCG64 (portable, no __int128). */
typedef struct { uint64_t hi, lo; } u128;
static u128 mul64(uint64_t a, uint64_t b) {
    uint64_t a0 = (uint32_t)a, a1 = a >> 32, b0 = (uint32_t)b, b1 = b >> 32;
    uint64_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
    uint64_t mid = (p00 >> 32) + (uint32_t)p01 + (uint32_t)p10;
    u128 r;
    r.lo = (mid << 32) | (uint32_t)p00;
    r.hi = p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
    return r;
}
static u128 mul128(u128 a, u128 b) {
    u128 r = mul64(a.lo, b.lo);
    r.hi += a.hi * b.lo + a.lo * b.hi;
    return r;
}
static u128 add128(u128 a, u128 b) {
    u128 r = {a.hi + b.hi, a.lo + b.lo};
    if (r.lo < a.lo) r.hi++;
    return r;
}

typedef struct { u128 state, inc; } pcg64;
static const u128 PCG_MULT = {0x2360ED051FC65DA4ULL, 0x4385DF649FCCF645ULL};
static void pcg_step(pcg64 *g) { g->state = add128(mul128(g->state, PCG_MULT), g->inc); }
static uint64_t pcg_next64(pcg64 *g) {
    pcg_step(g);
    uint64_t x = g->state.hi ^ g->state.lo;
    unsigned rot = (unsigned)(g->state.hi >> 58);
    return (x >> rot) | (x << ((64 - rot) & 63));
}

static uint32_t hashmix(uint32_t v, uint32_t *hc) {
    v ^= *hc;
    *hc *= 0x931e8875u; /* MULT_A */
    v *= *hc;
    return v ^ (v >> 16);
}

/* NumPy SeedSequence(entropy) with a non-negative entropy below 2^64, pool of 4 words, then
 * generate_state(4, uint64) -> PCG64 seeding (initstate = words 0..1, initseq = words 2..3, high word first). */
static void numpy_pcg64_seed(pcg64 *g, uint64_t entropy) {
    const uint32_t INIT_A = 0x43b0d7e5, INIT_B = 0x8b51f9dd, MULT_B = 0x58f38ded;
    const uint32_t MIX_L = 0xca01f9dd, MIX_R = 0x4973f715;
    uint32_t ent[2];
    int ne = 0;
    do { ent[ne++] = (uint32_t)entropy; entropy >>= 32; } while (entropy && ne < 2);
    uint32_t pool[4], hc = INIT_A;
    for (int i = 0; i < 4; i++) { uint32_t v = i < ne ? ent[i] : 0; pool[i] = hashmix(v, &hc); }
    for (int s = 0; s < 4; s++)
        for (int d = 0; d < 4; d++)
            if (s != d) {
                uint32_t h = hashmix(pool[s], &hc);
                uint32_t r = MIX_L * pool[d] - MIX_R * h;
                pool[d] = r ^ (r >> 16);
            }
    uint32_t st[8];
    uint32_t hb = INIT_B;
    for (int i = 0; i < 8; i++) {
        uint32_t v = pool[i % 4] ^ hb;
        hb *= MULT_B;
        v *= hb;
        v ^= v >> 16;
        st[i] = v;
    }
    uint64_t w[4];
    for (int i = 0; i < 4; i++) w[i] = (uint64_t)st[2 * i] | ((uint64_t)st[2 * i + 1] << 32);
    u128 initstate = {w[0], w[1]}, initseq = {w[2], w[3]};
    g->state.hi = g->state.lo = 0;
    g->inc.hi = (initseq.hi << 1) | (initseq.lo >> 63);
    g->inc.lo = (initseq.lo << 1) | 1;
    pcg_step(g);
    g->state = add128(g->state, initstate);
    pcg_step(g);
}

/* NumPy Generator.integers(0, high, dtype=int64) for high - 1 > 2^32 - 1: 64-bit Lemire draw. */
static uint64_t lemire64(pcg64 *g, uint64_t rng /* high - 1 */) {
    uint64_t excl = rng + 1;
    u128 m = mul64(pcg_next64(g), excl);
    if (m.lo < excl) {
        uint64_t threshold = (UINT64_MAX - rng) % excl;
        while (m.lo < threshold) m = mul64(pcg_next64(g), excl);
    }
    return m.hi;
}

void dsv4_engram_multipliers(int layer_id, int max_ngram, int64_t cvocab, int64_t *out) {
    uint64_t bound = (uint64_t)((INT64_MAX / cvocab) / 2);
    if (bound < 1) bound = 1;
    pcg64 g;
    numpy_pcg64_seed(&g, (uint64_t)10007 * (uint64_t)layer_id);
    for (int i = 0; i < max_ngram; i++) {
        /* bound >= 2^33 - 1 here (cvocab <= 2^29, checked by the layout), so NumPy takes its 64-bit path */
        uint64_t v = lemire64(&g, bound - 1);
        out[i] = (int64_t)(2 * v + 1);
    }
}

int dsv4_engram_layout_init(dsv4_engram_layout *lo, int n_layers, const int *layer_ids,
                            const int64_t *num_embeddings, int max_ngram, int n_heads, int64_t vocab_size,
                            int64_t cvocab, int32_t pad_id, char *err, size_t errlen) {
    memset(lo, 0, sizeof *lo);
    if (n_layers < 1 || n_layers > DSV4_ENGRAM_MAX_LAYERS)
        return dsv4_fail(err, errlen, "engram_layer_ids: %d layers, supported 1..%d", n_layers, DSV4_ENGRAM_MAX_LAYERS);
    if (max_ngram < 2 || max_ngram > DSV4_ENGRAM_MAX_NGRAM)
        return dsv4_fail(err, errlen, "engram_max_ngram_size: %d, supported 2..%d", max_ngram, DSV4_ENGRAM_MAX_NGRAM);
    if (n_heads < 1 || (max_ngram - 1) * n_heads > DSV4_ENGRAM_MAX_COLS)
        return dsv4_fail(err, errlen, "engram_n_heads: %d, supported 1..%d hash columns in all", n_heads,
                         DSV4_ENGRAM_MAX_COLS);
    if (vocab_size < 2 || vocab_size > ((int64_t)1 << 31))
        return dsv4_fail(err, errlen, "engram_vocab_size: %lld, supported 2..2^31", (long long)vocab_size);
    if (cvocab < 1 || cvocab > ((int64_t)1 << 29)) /* larger would take NumPy's 32-bit bounded draw */
        return dsv4_fail(err, errlen, "engram_compressed_vocab_size: %lld, supported 1..2^29", (long long)cvocab);
    if (pad_id < 0 || pad_id >= cvocab)
        return dsv4_fail(err, errlen, "engram pad id %d outside the compressed vocabulary [0, %lld)", (int)pad_id,
                         (long long)cvocab);
    lo->n_layers = n_layers;
    lo->max_ngram = max_ngram;
    lo->n_heads = n_heads;
    lo->n_cols = (max_ngram - 1) * n_heads;
    lo->pad_id = pad_id;
    lo->compressed_vocab = cvocab;
    int64_t used[DSV4_ENGRAM_MAX_LAYERS * DSV4_ENGRAM_MAX_COLS];
    int n_used = 0;
    for (int l = 0; l < n_layers; l++) {
        if (layer_ids[l] < 0) return dsv4_fail(err, errlen, "engram_layer_ids[%d] is negative", l);
        lo->layer_ids[l] = layer_ids[l];
        int64_t sum = 0;
        for (int o = 0; o < max_ngram - 1; o++) {
            int64_t cur = vocab_size - 1;
            for (int h = 0; h < n_heads; h++) {
                cur = dsv4_engram_next_prime(cur, used, n_used);
                used[n_used++] = cur;
                int col = o * n_heads + h;
                lo->prime[l][col] = cur;
                lo->offset[l][col] = sum;
                sum += cur;
            }
        }
        lo->rows[l] = sum;
        if (num_embeddings && num_embeddings[l] != sum)
            return dsv4_fail(err, errlen, "engram_num_embeddings[%d] is %lld, but the hash primes of layer %d sum to "
                             "%lld", l, (long long)num_embeddings[l], layer_ids[l], (long long)sum);
        dsv4_engram_multipliers(layer_ids[l], max_ngram, cvocab, lo->mult[l]);
    }
    return 0;
}

/* ------------------------------------------------------------------ 3. hash */

void dsv4_engram_hash(const dsv4_engram_layout *lo, int l, int64_t p, const int32_t *back, int64_t *idx) {
    uint64_t t[DSV4_ENGRAM_MAX_NGRAM];
    int blocked = 0;
    for (int s = 0; s < lo->max_ngram; s++) {
        blocked = blocked || p - s < 0 || back[s] == DSV4_ENGRAM_DEAD;
        t[s] = (uint64_t)(blocked ? lo->pad_id : back[s]);
    }
    uint64_t r = t[0] * (uint64_t)lo->mult[l][0];
    for (int i = 1; i < lo->max_ngram; i++) {
        r ^= t[i] * (uint64_t)lo->mult[l][i];
        for (int h = 0; h < lo->n_heads; h++) {
            int col = (i - 1) * lo->n_heads + h;
            idx[col] = (int64_t)(r % (uint64_t)lo->prime[l][col]) + lo->offset[l][col];
        }
    }
}

void dsv4_engram_history_reset(dsv4_engram_history *h) {
    for (int i = 0; i < DSV4_ENGRAM_MAX_NGRAM; i++) h->prev[i] = DSV4_ENGRAM_DEAD;
    h->pos = 0;
}

void dsv4_engram_hash_chunk(const dsv4_engram_layout *lo, dsv4_engram_history *h, const int32_t *cids, int n,
                            int64_t *idx) {
    const int m = lo->max_ngram;
    for (int t = 0; t < n; t++) {
        int32_t back[DSV4_ENGRAM_MAX_NGRAM];
        back[0] = cids[t];
        for (int s = 1; s < m; s++) back[s] = t - s >= 0 ? cids[t - s] : h->prev[s - t - 1];
        for (int l = 0; l < lo->n_layers; l++)
            dsv4_engram_hash(lo, l, h->pos + t, back, idx + ((size_t)t * lo->n_layers + l) * lo->n_cols);
    }
    /* history: the last m - 1 ids, newest first */
    int32_t nw[DSV4_ENGRAM_MAX_NGRAM];
    for (int s = 1; s < m; s++) nw[s - 1] = n - s >= 0 ? cids[n - s] : h->prev[s - n - 1];
    for (int s = 1; s < m; s++) h->prev[s - 1] = nw[s - 1];
    h->pos += n;
}

/* ------------------------------------------------------------------ 3b. table reader */

struct dsv4_engram_table {
    int fd, sfd;              /* codes file, scales file (the same descriptor when one file holds both) */
    char *path, *spath;
    int64_t rows;
    int head_dim, nscale, row_bytes, packed;
    int64_t w_off, w_stride, s_off, s_stride;
    /* direct-mapped cache */
    int64_t cache_n;          /* power of two, or 0 */
    int64_t *tag;             /* [cache_n] row held, -1 empty */
    uint8_t *data;            /* [cache_n][row_bytes] */
    pthread_mutex_t mu;
    int64_t requested, hits;
};

static int open_sized(const char *path, int64_t need, int64_t rows, int *fd_out, char *err, size_t errlen) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return dsv4_fail(err, errlen, "%s: cannot open engram table: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return dsv4_fail(err, errlen, "%s: cannot stat engram table: %s", path, strerror(e));
    }
    if ((int64_t)st.st_size < need) {
        close(fd);
        return dsv4_fail(err, errlen, "%s: engram table is %lld bytes, shorter than its %lld rows need (%lld bytes)",
                         path, (long long)st.st_size, (long long)rows, (long long)need);
    }
    *fd_out = fd;
    return 0;
}

int dsv4_engram_table_open(dsv4_engram_table **out, const char *path, int64_t rows, int head_dim, int64_t w_off,
                           int64_t w_stride, const char *scale_path, int64_t s_off, int64_t s_stride,
                           int64_t cache_rows, char *err, size_t errlen) {
    *out = NULL;
    if (!scale_path) scale_path = path;
    if (rows < 1 || head_dim < 32 || head_dim % 32 || w_off < 0 || s_off < 0 || w_stride < head_dim ||
        s_stride < head_dim / 32 || cache_rows < 0)
        return dsv4_fail(err, errlen, "%s: bad engram table layout (rows %lld, head_dim %d)", path, (long long)rows,
                         head_dim);
    const int same = strcmp(path, scale_path) == 0;
    int64_t need_w = w_off + (rows - 1) * w_stride + head_dim, need_s = s_off + (rows - 1) * s_stride + head_dim / 32;
    int fd = -1, sfd = -1;
    if (same) {
        if (open_sized(path, need_w > need_s ? need_w : need_s, rows, &fd, err, errlen)) return -1;
        sfd = fd;
    } else {
        if (open_sized(path, need_w, rows, &fd, err, errlen)) return -1;
        if (open_sized(scale_path, need_s, rows, &sfd, err, errlen)) { close(fd); return -1; }
    }
    dsv4_engram_table *t = calloc(1, sizeof *t);
    if (!t || !(t->path = strdup(path)) || !(t->spath = strdup(scale_path))) {
        if (t) free(t->path);
        free(t);
        close(fd);
        if (sfd != fd) close(sfd);
        return dsv4_fail(err, errlen, "%s: out of memory", path);
    }
    t->fd = fd;
    t->sfd = sfd;
    t->rows = rows;
    t->head_dim = head_dim;
    t->nscale = head_dim / 32;
    t->row_bytes = head_dim + t->nscale;
    t->w_off = w_off; t->w_stride = w_stride; t->s_off = s_off; t->s_stride = s_stride;
    t->packed = same && s_off == w_off + head_dim && s_stride == w_stride;
    pthread_mutex_init(&t->mu, NULL);
    if (cache_rows > 0) {
        int64_t c = 1;
        while (c * 2 <= cache_rows) c *= 2;
        t->cache_n = c;
        t->tag = malloc(sizeof *t->tag * (size_t)c);
        t->data = malloc((size_t)c * (size_t)t->row_bytes);
        if (!t->tag || !t->data) { dsv4_engram_table_close(t); return dsv4_fail(err, errlen, "%s: out of memory for "
                                                                                 "the row cache", path); }
        for (int64_t i = 0; i < c; i++) t->tag[i] = -1;
    }
    *out = t;
    return 0;
}

void dsv4_engram_table_close(dsv4_engram_table *t) {
    if (!t) return;
    if (t->sfd != t->fd) close(t->sfd);
    close(t->fd);
    pthread_mutex_destroy(&t->mu);
    free(t->tag);
    free(t->data);
    free(t->path);
    free(t->spath);
    free(t);
}

int dsv4_engram_row_bytes(const dsv4_engram_table *t) { return t->row_bytes; }

void dsv4_engram_table_stats(const dsv4_engram_table *t, int64_t *requested, int64_t *cache_hits) {
    dsv4_engram_table *m = (dsv4_engram_table *)t;
    pthread_mutex_lock(&m->mu);
    if (requested) *requested = t->requested;
    if (cache_hits) *cache_hits = t->hits;
    pthread_mutex_unlock(&m->mu);
}

static inline int64_t cache_slot(const dsv4_engram_table *t, int64_t r) {
    return (int64_t)(((uint64_t)r * 0x9E3779B97F4A7C15ULL) >> 20) & (t->cache_n - 1);
}

int dsv4_engram_table_fetch(dsv4_engram_table *t, const int64_t *idx, int n, uint8_t *out, char *err,
                            size_t errlen) {
    for (int i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= t->rows)
            return dsv4_fail(err, errlen, "%s: engram row %lld outside the table's %lld rows", t->path,
                             (long long)idx[i], (long long)t->rows);
    /* cache pass: mark misses with out row's first byte untouched, remember them in a bitmap-free way (a
     * second loop re-tests the tag, which only this call can have changed meanwhile for its own rows) */
    uint8_t missing_stack[256];
    uint8_t *miss = n <= 256 ? missing_stack : malloc((size_t)n);
    if (!miss) return dsv4_fail(err, errlen, "%s: out of memory", t->path);
    int n_miss = 0;
    pthread_mutex_lock(&t->mu);
    t->requested += n;
    for (int i = 0; i < n; i++) {
        miss[i] = 1;
        if (t->cache_n) {
            int64_t s = cache_slot(t, idx[i]);
            if (t->tag[s] == idx[i]) {
                memcpy(out + (size_t)i * t->row_bytes, t->data + (size_t)s * t->row_bytes, (size_t)t->row_bytes);
                miss[i] = 0;
                t->hits++;
            }
        }
        n_miss += miss[i];
    }
    pthread_mutex_unlock(&t->mu);
    if (n_miss > 1) /* let the kernel start every read of the batch before we block on the first */
        for (int i = 0; i < n; i++)
            if (miss[i]) {
                (void)posix_fadvise(t->fd, (off_t)(t->w_off + idx[i] * t->w_stride), (off_t)t->head_dim,
                                    POSIX_FADV_WILLNEED);
                if (!t->packed)
                    (void)posix_fadvise(t->sfd, (off_t)(t->s_off + idx[i] * t->s_stride), (off_t)t->nscale,
                                        POSIX_FADV_WILLNEED);
            }
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {   /* dsv4_readat (io/readat.h): the shared pread layer */
        if (!miss[i]) continue;
        uint8_t *o = out + (size_t)i * t->row_bytes;
        if (t->packed)
            rc = dsv4_readat(t->fd, t->path, o, (size_t)t->row_bytes, (uint64_t)(t->w_off + idx[i] * t->w_stride), err,
                             errlen);
        else
            rc = dsv4_readat(t->fd, t->path, o, (size_t)t->head_dim, (uint64_t)(t->w_off + idx[i] * t->w_stride), err,
                             errlen) ||
                 dsv4_readat(t->sfd, t->spath, o + t->head_dim, (size_t)t->nscale,
                             (uint64_t)(t->s_off + idx[i] * t->s_stride), err, errlen) ? -1 : 0;
    }
    if (!rc && t->cache_n && n_miss) {
        pthread_mutex_lock(&t->mu);
        for (int i = 0; i < n; i++)
            if (miss[i]) {
                int64_t s = cache_slot(t, idx[i]);
                t->tag[s] = idx[i];
                memcpy(t->data + (size_t)s * t->row_bytes, out + (size_t)i * t->row_bytes, (size_t)t->row_bytes);
            }
        pthread_mutex_unlock(&t->mu);
    }
    if (miss != missing_stack) free(miss);
    return rc;
}

void dsv4_engram_row_decode(const uint8_t *row, int head_dim, float *out) {
    const uint8_t *sc = row + head_dim;
    for (int j = 0; j < head_dim; j++)
        out[j] = dsv4_round_bf16(dsv4_e4m3_to_f32(row[j]) * dsv4_e8m0_to_f32(sc[j / 32]));
}

/* ------------------------------------------------------------------ 4. gate and injection */

void dsv4_engram_inject(float *X, const float *key, const float *value, const float *w, int hc, int D, float eps,
                        int masked, float *gates) {
    for (int c = 0; c < hc; c++) {
        float *x = X + (size_t)c * D;
        const float *k = key + (size_t)c * D, *wc = w + (size_t)c * D;
        double sx = 0, sk = 0, dot = 0;
        for (int d = 0; d < D; d++) {
            sx += (double)x[d] * x[d];
            sk += (double)k[d] * k[d];
            dot += (double)x[d] * wc[d] * k[d];
        }
        double rx = 1.0 / sqrt(sx / D + (double)eps), rk = 1.0 / sqrt(sk / D + (double)eps);
        float dt = (float)(dot * rx * rk / sqrt((double)D));
        float mag = fabsf(dt) > 1e-6f ? fabsf(dt) : 1e-6f;
        float g = masked ? 0.0f : dsv4_sigmoid(copysignf(sqrtf(mag), dt));
        if (gates) gates[c] = g;
        if (masked) continue;
        for (int d = 0; d < D; d++) {
            float add = g * value[d];
            x[d] = dsv4_round_bf16(x[d] + add);
        }
    }
}

/* ------------------------------------------------------------------ 5. one Engram layer on a chunk */

size_t dsv4_engram_scratch_floats(const dsv4_engram_proj *p, int n) {
    const size_t K = (size_t)p->n_cols * p->head_dim, O = (size_t)(p->hc + 1) * p->dim;
    return (size_t)n * K + (size_t)n * O + dsv4_linear_scratch_floats(n, (int)K);
}

void dsv4_engram_apply(const dsv4_engram_proj *p, float *X, const uint8_t *rows, int n, const uint8_t *masked,
                       float *gates, float *scratch) {
    const int K = p->n_cols * p->head_dim, O = (p->hc + 1) * p->dim, rb = p->head_dim + p->head_dim / 32;
    float *e = scratch, *kv = e + (size_t)n * K, *ls = kv + (size_t)n * O;
    for (int t = 0; t < n; t++) {
        float *et = e + (size_t)t * K;
        for (int c = 0; c < p->n_cols; c++)
            dsv4_engram_row_decode(rows + ((size_t)t * p->n_cols + c) * rb, p->head_dim, et + (size_t)c * p->head_dim);
        dsv4_fp8_sim(et, K, 32);
    }
    dsv4_linear(kv, &p->wkv, e, n, DSV4_OUT_BF16, ls);
    for (int t = 0; t < n; t++) {
        const float *kt = kv + (size_t)t * O;
        dsv4_engram_inject(X + (size_t)t * p->hc * p->dim, kt, kt + (size_t)p->hc * p->dim, p->w, p->hc, p->dim, p->eps,
                           masked ? masked[t] : 0, gates ? gates + (size_t)t * p->hc : NULL);
    }
}

/* ------------------------------------------------------------------ 4c. prefetch thread */

struct dsv4_engram_prefetch {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int max_tokens, n_layers, n_cols, row_bytes;
    int64_t *idx;            /* [max_tokens][n_layers][n_cols] as given */
    int64_t *lidx;           /* [max_tokens * n_cols] one layer's indices, token-major */
    uint8_t *rows;           /* [n_layers][max_tokens * n_cols][row_bytes] */
    dsv4_engram_table *tables[DSV4_ENGRAM_MAX_LAYERS];
    int n, pending, busy, quit, rc;
    char err[256];
};

static void *prefetch_main(void *arg) {
    dsv4_engram_prefetch *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->pending && !p->quit) pthread_cond_wait(&p->cv, &p->mu);
        if (p->quit) break;
        p->pending = 0;
        p->busy = 1;
        pthread_mutex_unlock(&p->mu);
        int rc = 0;
        char err[256] = "";
        for (int l = 0; l < p->n_layers && !rc; l++) {
            for (int t = 0; t < p->n; t++)
                memcpy(p->lidx + (size_t)t * p->n_cols, p->idx + ((size_t)t * p->n_layers + l) * p->n_cols,
                       sizeof(int64_t) * (size_t)p->n_cols);
            rc = dsv4_engram_table_fetch(p->tables[l], p->lidx, p->n * p->n_cols,
                                         p->rows + (size_t)l * p->max_tokens * p->n_cols * p->row_bytes, err, sizeof err);
        }
        pthread_mutex_lock(&p->mu);
        p->rc = rc;
        memcpy(p->err, err, sizeof err);
        p->busy = 0;
        pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int dsv4_engram_prefetch_new(dsv4_engram_prefetch **out, int max_tokens, int n_layers, int n_cols, int row_bytes,
                             char *err, size_t errlen) {
    *out = NULL;
    if (max_tokens < 1 || n_layers < 1 || n_layers > DSV4_ENGRAM_MAX_LAYERS || n_cols < 1 || row_bytes < 1)
        return dsv4_fail(err, errlen, "engram prefetch: bad sizes");
    dsv4_engram_prefetch *p = calloc(1, sizeof *p);
    if (!p) return dsv4_fail(err, errlen, "engram prefetch: out of memory");
    p->max_tokens = max_tokens; p->n_layers = n_layers; p->n_cols = n_cols; p->row_bytes = row_bytes;
    p->idx = malloc(sizeof(int64_t) * (size_t)max_tokens * n_layers * n_cols);
    p->lidx = malloc(sizeof(int64_t) * (size_t)max_tokens * n_cols);
    p->rows = malloc((size_t)n_layers * max_tokens * n_cols * row_bytes);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (!p->idx || !p->lidx || !p->rows || pthread_create(&p->th, NULL, prefetch_main, p) != 0) {
        free(p->idx); free(p->lidx); free(p->rows);
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->cv);
        free(p);
        return dsv4_fail(err, errlen, "engram prefetch: out of memory or cannot start its thread");
    }
    *out = p;
    return 0;
}

void dsv4_engram_prefetch_free(dsv4_engram_prefetch *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->th, NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->idx); free(p->lidx); free(p->rows);
    free(p);
}

void dsv4_engram_prefetch_start(dsv4_engram_prefetch *p, dsv4_engram_table *const *tables, const int64_t *idx, int n) {
    pthread_mutex_lock(&p->mu);
    while (p->busy || p->pending) pthread_cond_wait(&p->cv, &p->mu);
    if (n > p->max_tokens) n = p->max_tokens;
    p->n = n;
    for (int l = 0; l < p->n_layers; l++) p->tables[l] = tables[l];
    memcpy(p->idx, idx, sizeof(int64_t) * (size_t)n * p->n_layers * p->n_cols);
    p->rc = 0;
    p->pending = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

int dsv4_engram_prefetch_wait(dsv4_engram_prefetch *p, const uint8_t **rows, char *err, size_t errlen) {
    pthread_mutex_lock(&p->mu);
    while (p->busy || p->pending) pthread_cond_wait(&p->cv, &p->mu);
    int rc = p->rc;
    if (rc) dsv4_fail(err, errlen, "%s", p->err);
    pthread_mutex_unlock(&p->mu);
    if (rows) *rows = p->rows;
    return rc ? -1 : 0;
}

const uint8_t *dsv4_engram_prefetch_rows(const dsv4_engram_prefetch *p, const uint8_t *rows, int l) {
    return rows + (size_t)l * p->max_tokens * p->n_cols * p->row_bytes;
}
