/* tokenizer/tokenizer.c — HF tokenizer.json byte-level BPE (docs/encoding.md §2).
 *
 * Supported tokenizer.json subset (anything else is rejected at load with an error naming the field):
 *   normalizer      null, or {"type":"Sequence","normalizers":[]} (identity)
 *   pre_tokenizer   ByteLevel, or Sequence of Split{pattern:{Regex|String}, behavior:"Isolated", invert:false}
 *                   steps followed by exactly one final ByteLevel{add_prefix_space, use_regex}
 *   model           BPE with vocab (string -> id) and merges ("a b" strings or ["a","b"] pairs; rank = index),
 *                   dropout null, byte_fallback false, no continuing_subword_prefix / end_of_word_suffix;
 *                   ignore_merges honoured; vocab must hold the ByteLevel symbol of each of the 256 bytes
 *                   (else encode would drop that byte: refused, "model.vocab has no token for byte 0x22")
 *   added_tokens    {id, content, normalized, special, lstrip/rstrip/single_word must be false}; an added
 *                   token may reuse a vocab id with other text (both encode to it; it decodes to the added text)
 *   post_processor, decoder: ignored (no BOS/EOS is ever added; decoding is the byte-level inverse).
 *
 * Encode pipeline (mirrors HF `tokenizers`):
 *   1. the whole input must be valid UTF-8 (else -1, error names the byte offset);
 *   2. added tokens with normalized=false are split out (leftmost-longest, atomically, anywhere), then
 *      on the remaining spans the added tokens with normalized=true (the normalizer is the identity);
 *   3. each other span goes through the Split steps in order (Isolated: matches and the gaps between them
 *      are all pieces; empty matches produce no piece); regexes come from the file, compiled with PCRE2
 *      (UTF|UCP, JIT when available). One mechanical adaptation: outside character classes `\s`/`\S`
 *      exclude U+180E, which PCRE2 counts as space but Oniguruma (HF's engine, Unicode White_Space) does not;
 *   4. ByteLevel: optional prefix space, optional GPT-2 split regex (HF's built-in pattern), then bytes;
 *   5. BPE on token ids: initial symbols are the 256 byte tokens, the adjacent pair with the lowest merge
 *      rank is merged first (ties: leftmost), using a doubly linked symbol list + binary min-heap,
 *      O(n log n) per piece and no cache. Merges are pre-resolved at load to (id_a,id_b) -> (rank,id_ab).
 *
 * Thread safety: a loaded tokenizer is read-only; dsv4_tokenize allocates its scratch per call.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "dsv4.h"
#include "base/util.h"

#include <cjson/cJSON.h>
#include <pcre2.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* HF ByteLevel's built-in split pattern (used only when a ByteLevel step has use_regex=true). */
static const char GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

#define MAX_SPLITS 16

typedef struct {               /* byte trie over added-token contents */
    int32_t *child, *sibling;  /* first child / next sibling node index, -1 = none */
    uint8_t *byte;             /* byte on the edge into the node */
    int32_t *tok;              /* added-token index ending here, -1 = none */
    int n, cap;
    uint8_t first[256];        /* 1 if some token starts with this byte */
} trie_t;

typedef struct { char *content; size_t len; int32_t id; int normalized, special; } added_t;

struct dsv4_tokenizer {
    int vocab_size;             /* max id + 1 over vocab and added tokens */
    /* decoded raw bytes of every id */
    uint32_t *tok_off, *tok_len;
    uint8_t *tok_set;           /* 1 if the id is assigned */
    char *tok_bytes;
    /* vocab key strings (byte-level form) -> id, open addressing */
    char *vkeys; uint32_t *vkey_off, *vkey_len; int32_t *vkey_id; int n_vocab;
    uint32_t *vmap; uint32_t vmask;          /* slot: entry index + 1, 0 = empty */
    /* merges: (a,b) -> rank, result */
    uint64_t *mkey; uint32_t *mrank; int32_t *mres; uint32_t mmask; int n_merges;
    int32_t byte_id[256];       /* token id of each single byte, -1 if absent */
    uint32_t b2cp[256];         /* GPT-2 bytes_to_unicode */
    int ignore_merges;
    /* added tokens */
    added_t *added; int n_added;
    trie_t trie[2];             /* [0] normalized=false (first pass), [1] normalized=true */
    /* pre-tokenizer */
    pcre2_code *split[MAX_SPLITS]; int n_split;
    pcre2_code *bl_re;          /* GPT-2 pattern when ByteLevel use_regex */
    int bl_prefix;              /* ByteLevel add_prefix_space */
};

/* ------------------------------------------------------------------ byte <-> unicode (GPT-2) */

static int byte_printable(int b) { return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255); }

/* code point of byte b under the GPT-2 bytes_to_unicode mapping */
static uint32_t byte_to_cp(int b) {
    if (byte_printable(b)) return (uint32_t)b;
    int n = 0;
    for (int i = 0; i < b; i++) if (!byte_printable(i)) n++;
    return 256u + (uint32_t)n;
}

static int utf8_put(uint32_t c, char *o) {
    if (c < 0x80) { o[0] = (char)c; return 1; }
    if (c < 0x800) { o[0] = (char)(0xC0 | (c >> 6)); o[1] = (char)(0x80 | (c & 63)); return 2; }
    if (c < 0x10000) {
        o[0] = (char)(0xE0 | (c >> 12)); o[1] = (char)(0x80 | ((c >> 6) & 63)); o[2] = (char)(0x80 | (c & 63));
        return 3;
    }
    o[0] = (char)(0xF0 | (c >> 18)); o[1] = (char)(0x80 | ((c >> 12) & 63));
    o[2] = (char)(0x80 | ((c >> 6) & 63)); o[3] = (char)(0x80 | (c & 63));
    return 4;
}

/* Classify the UTF-8 sequence at s[0..n). Returns 1: valid character of *adv bytes; 0: s is a proper
 * prefix of a valid character (needs more bytes; *adv = n); -1: invalid, *adv = length of the maximal
 * invalid subpart (>= 1). Strict: no overlongs, surrogates or values above U+10FFFF. */
static int utf8_class(const uint8_t *s, size_t n, size_t *adv) {
    uint8_t b = s[0];
    size_t need; uint8_t lo = 0x80, hi = 0xBF;
    if (b < 0x80) { *adv = 1; return 1; }
    if (b >= 0xC2 && b <= 0xDF) need = 2;
    else if (b >= 0xE0 && b <= 0xEF) { need = 3; if (b == 0xE0) lo = 0xA0; if (b == 0xED) hi = 0x9F; }
    else if (b >= 0xF0 && b <= 0xF4) { need = 4; if (b == 0xF0) lo = 0x90; if (b == 0xF4) hi = 0x8F; }
    else { *adv = 1; return -1; }
    for (size_t i = 1; i < need; i++) {
        if (i >= n) { *adv = n; return 0; }
        uint8_t c = s[i];
        if (i == 1 ? (c < lo || c > hi) : (c < 0x80 || c > 0xBF)) { *adv = i; return -1; }
    }
    *adv = need;
    return 1;
}

/* decode one valid UTF-8 character (length from utf8_class) */
static uint32_t utf8_get(const uint8_t *s, size_t len) {
    if (len == 1) return s[0];
    if (len == 2) return ((uint32_t)(s[0] & 31) << 6) | (s[1] & 63);
    if (len == 3) return ((uint32_t)(s[0] & 15) << 12) | ((uint32_t)(s[1] & 63) << 6) | (s[2] & 63);
    return ((uint32_t)(s[0] & 7) << 18) | ((uint32_t)(s[1] & 63) << 12) | ((uint32_t)(s[2] & 63) << 6) | (s[3] & 63);
}

/* ------------------------------------------------------------------ hashing */

static uint32_t hash_bytes(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) { h ^= (uint8_t)s[i]; h *= 16777619u; }
    return h ^ (h >> 15);
}
static uint32_t hash_u64(uint64_t k) { k *= 0x9E3779B97F4A7C15ull; return (uint32_t)(k >> 32) ^ (uint32_t)k; }

static uint32_t pow2_at_least(size_t n) { uint32_t c = 16; while (c < n) c <<= 1; return c; }

static int32_t vocab_find(const dsv4_tokenizer *t, const char *s, size_t n) {
    uint32_t i = hash_bytes(s, n) & t->vmask;
    for (;;) {
        uint32_t e = t->vmap[i];
        if (!e) return -1;
        e--;
        if (t->vkey_len[e] == n && memcmp(t->vkeys + t->vkey_off[e], s, n) == 0) return t->vkey_id[e];
        i = (i + 1) & t->vmask;
    }
}

/* slot of (a,b) in the merge table or -1 */
static inline int64_t merge_find(const dsv4_tokenizer *t, int32_t a, int32_t b) {
    uint64_t k = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    uint32_t i = hash_u64(k) & t->mmask;
    for (;;) {
        if (t->mres[i] < 0) return -1;
        if (t->mkey[i] == k) return i;
        i = (i + 1) & t->mmask;
    }
}

/* ------------------------------------------------------------------ trie */

static int trie_node(trie_t *tr, uint8_t byte) {
    if (tr->n == tr->cap) {
        int nc = tr->cap ? tr->cap * 2 : 256;
        int32_t *c = realloc(tr->child, sizeof(int32_t) * nc); if (!c) return -1; tr->child = c;
        int32_t *s = realloc(tr->sibling, sizeof(int32_t) * nc); if (!s) return -1; tr->sibling = s;
        int32_t *k = realloc(tr->tok, sizeof(int32_t) * nc); if (!k) return -1; tr->tok = k;
        uint8_t *b = realloc(tr->byte, nc); if (!b) return -1; tr->byte = b;
        tr->cap = nc;
    }
    int i = tr->n++;
    tr->child[i] = tr->sibling[i] = tr->tok[i] = -1; tr->byte[i] = byte;
    return i;
}

static int trie_add(trie_t *tr, const char *s, size_t n, int32_t tok) {
    if (tr->n == 0 && trie_node(tr, 0) < 0) return -1;
    int cur = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t b = (uint8_t)s[i];
        int c = tr->child[cur];
        while (c >= 0 && tr->byte[c] != b) c = tr->sibling[c];
        if (c < 0) {
            c = trie_node(tr, b);
            if (c < 0) return -1;
            tr->sibling[c] = tr->child[cur]; tr->child[cur] = c;
        }
        cur = c;
    }
    tr->first[(uint8_t)s[0]] = 1;
    if (tr->tok[cur] < 0) tr->tok[cur] = tok;   /* first occurrence wins for duplicate contents */
    return 0;
}

/* longest token starting at s[0..n): returns its added index and sets *mlen, or -1 */
static int trie_longest(const trie_t *tr, const uint8_t *s, size_t n, size_t *mlen) {
    if (tr->n == 0 || !tr->first[s[0]]) return -1;
    int cur = 0, best = -1;
    for (size_t i = 0; i < n; i++) {
        int c = tr->child[cur];
        while (c >= 0 && tr->byte[c] != s[i]) c = tr->sibling[c];
        if (c < 0) break;
        cur = c;
        if (tr->tok[cur] >= 0) { best = tr->tok[cur]; *mlen = i + 1; }
    }
    return best;
}

static int trie_exact(const trie_t *tr, const char *s, size_t n) {
    if (tr->n == 0 || n == 0) return -1;
    int cur = 0;
    for (size_t i = 0; i < n; i++) {
        int c = tr->child[cur];
        while (c >= 0 && tr->byte[c] != (uint8_t)s[i]) c = tr->sibling[c];
        if (c < 0) return -1;
        cur = c;
    }
    return tr->tok[cur];
}

static void trie_free(trie_t *tr) { free(tr->child); free(tr->sibling); free(tr->tok); free(tr->byte); }

/* ------------------------------------------------------------------ load */

void dsv4_tokenizer_free(dsv4_tokenizer *t) {
    if (!t) return;
    free(t->tok_off); free(t->tok_len); free(t->tok_set); free(t->tok_bytes);
    free(t->vkeys); free(t->vkey_off); free(t->vkey_len); free(t->vkey_id); free(t->vmap);
    free(t->mkey); free(t->mrank); free(t->mres);
    for (int i = 0; i < t->n_added; i++) free(t->added[i].content);
    free(t->added);
    trie_free(&t->trie[0]); trie_free(&t->trie[1]);
    for (int i = 0; i < t->n_split; i++) pcre2_code_free(t->split[i]);
    pcre2_code_free(t->bl_re);
    free(t);
}

/* Copy `in` and make `\s` / `\S` outside character classes exclude U+180E (Oniguruma compatibility). */
static char *adapt_pattern(const char *in, size_t n, size_t *outn) {
    char *o = malloc(n * 12 + 1);
    if (!o) return NULL;
    size_t k = 0; int in_class = 0;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (c == '\\' && i + 1 < n) {
            char d = in[i + 1];
            if (!in_class && d == 's') { memcpy(o + k, "[^\\S\\x{180E}]", 13); k += 13; i++; continue; }
            if (!in_class && d == 'S') { memcpy(o + k, "[\\S\\x{180E}]", 12); k += 12; i++; continue; }
            o[k++] = c; o[k++] = d; i++; continue;
        }
        if (!in_class && c == '[') {
            in_class = 1; o[k++] = c;
            if (i + 1 < n && in[i + 1] == '^') o[k++] = in[++i];
            if (i + 1 < n && in[i + 1] == ']') o[k++] = in[++i];   /* leading ] is literal */
            continue;
        }
        if (in_class && c == '[' && i + 1 < n && in[i + 1] == ':') {   /* POSIX class [:name:] */
            const char *e = strstr(in + i + 2, ":]");
            if (e && (size_t)(e - in) < n) { size_t l = (size_t)(e - (in + i)) + 2; memcpy(o + k, in + i, l); k += l; i += l - 1; continue; }
        }
        if (in_class && c == ']') in_class = 0;
        o[k++] = c;
    }
    o[k] = 0; *outn = k;
    return o;
}

/* Compile one pre-tokenizer pattern; errors name the tokenizer file `path` and the step `what`. */
static pcre2_code *compile_re(const char *pat, size_t n, int literal, const char *path, const char *what, char *err,
                              size_t errlen) {
    int ec; PCRE2_SIZE eo;
    pcre2_code *re;
    if (literal) {
        re = pcre2_compile((PCRE2_SPTR)pat, n, PCRE2_UTF | PCRE2_UCP | PCRE2_LITERAL, &ec, &eo, NULL);
    } else {
        size_t an; char *ap = adapt_pattern(pat, n, &an);
        if (!ap) { dsv4_fail(err, errlen, "%s: out of memory", path); return NULL; }
        re = pcre2_compile((PCRE2_SPTR)ap, an, PCRE2_UTF | PCRE2_UCP, &ec, &eo, NULL);
        free(ap);
    }
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof msg);
        dsv4_fail(err, errlen, "%s: %s: regex does not compile at offset %zu: %s", path, what, (size_t)eo, (char *)msg);
        return NULL;
    }
    uint32_t jit = 0;
    pcre2_config(PCRE2_CONFIG_JIT, &jit);
    if (jit) pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);   /* falls back to the interpreter on failure */
    return re;
}

static int is_true(const cJSON *o, const char *key) { return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, key)); }
static int is_nullish(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return !v || cJSON_IsNull(v);
}
static const char *type_of(const cJSON *o) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "type");
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int load_pretok_step(dsv4_tokenizer *t, const cJSON *st, int last, const char *path, char *err, size_t errlen) {
    const char *ty = type_of(st);
    char what[96];
    if (!ty) return dsv4_fail(err, errlen, "%s: %s has no \"type\"", path, "pre_tokenizer step");
    if (strcmp(ty, "ByteLevel") == 0) {
        if (!last) return dsv4_fail(err, errlen, "%s: pre_tokenizer: ByteLevel must be the last step", path);
        t->bl_prefix = is_true(st, "add_prefix_space");
        const cJSON *ur = cJSON_GetObjectItemCaseSensitive(st, "use_regex");
        if (!ur || cJSON_IsTrue(ur)) {   /* HF default is true */
            t->bl_re = compile_re(GPT2_PATTERN, sizeof GPT2_PATTERN - 1, 0, path, "pre_tokenizer.ByteLevel", err, errlen);
            if (!t->bl_re) return -1;
        }
        return 1;
    }
    if (strcmp(ty, "Split") != 0)
        return dsv4_fail(err, errlen, "%s: pre_tokenizer type \"%s\" unsupported (Split, ByteLevel, Sequence)", path, ty);
    if (last) return dsv4_fail(err, errlen, "%s: pre_tokenizer: the last step must be ByteLevel (byte-level BPE)", path);
    if (t->n_split >= MAX_SPLITS) return dsv4_fail(err, errlen, "%s: pre_tokenizer: more than %d Split steps", path, MAX_SPLITS);
    snprintf(what, sizeof what, "pre_tokenizer Split #%d", t->n_split);
    const cJSON *beh = cJSON_GetObjectItemCaseSensitive(st, "behavior");
    if (!cJSON_IsString(beh) || strcmp(beh->valuestring, "Isolated") != 0)
        return dsv4_fail(err, errlen, "%s: %s: behavior \"%s\" unsupported (only Isolated)", path, what,
                         cJSON_IsString(beh) ? beh->valuestring : "?");
    if (is_true(st, "invert")) return dsv4_fail(err, errlen, "%s: %s: invert=true unsupported", path, what);
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(st, "pattern");
    const cJSON *rx = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
    const cJSON *lit = cJSON_GetObjectItemCaseSensitive(pat, "String");
    const cJSON *p = cJSON_IsString(rx) ? rx : lit;
    if (!cJSON_IsString(p)) return dsv4_fail(err, errlen, "%s: %s: pattern needs a \"Regex\" or \"String\"", path, what);
    t->split[t->n_split] = compile_re(p->valuestring, strlen(p->valuestring), p == lit, path, what, err, errlen);
    if (!t->split[t->n_split]) return -1;
    t->n_split++;
    return 0;
}

static int load_json(dsv4_tokenizer *t, const cJSON *root, const char *path, char *err, size_t errlen) {
    if (!cJSON_IsObject(root)) return dsv4_fail(err, errlen, "%s: top level is not a JSON object", path);

    /* normalizer */
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    if (norm && !cJSON_IsNull(norm)) {
        const char *ty = type_of(norm);
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(norm, "normalizers");
        if (!ty || strcmp(ty, "Sequence") != 0 || cJSON_GetArraySize(list) != 0)
            return dsv4_fail(err, errlen, "%s: normalizer type \"%s\" unsupported (only null or an empty Sequence)",
                             path, ty ? ty : "?");
    }

    /* pre_tokenizer */
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    if (!pt || cJSON_IsNull(pt)) return dsv4_fail(err, errlen, "%s: pre_tokenizer missing (byte-level BPE needs ByteLevel)", path);
    const char *pty = type_of(pt);
    if (pty && strcmp(pty, "Sequence") == 0) {
        const cJSON *steps = cJSON_GetObjectItemCaseSensitive(pt, "pretokenizers");
        int n = cJSON_GetArraySize(steps);
        if (!cJSON_IsArray(steps) || n == 0) return dsv4_fail(err, errlen, "%s: pre_tokenizer.pretokenizers missing or empty", path);
        int i = 0; const cJSON *st;
        cJSON_ArrayForEach(st, steps) { if (load_pretok_step(t, st, i == n - 1, path, err, errlen) < 0) return -1; i++; }
    } else {
        int r = load_pretok_step(t, pt, 1, path, err, errlen);
        if (r < 0) return -1;
    }

    /* model */
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model)) return dsv4_fail(err, errlen, "%s: model missing", path);
    const char *mty = type_of(model);
    if (mty && strcmp(mty, "BPE") != 0) return dsv4_fail(err, errlen, "%s: model.type \"%s\" unsupported (only BPE)", path, mty);
    if (!is_nullish(model, "dropout")) {
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(model, "dropout");
        if (!cJSON_IsNumber(d) || d->valuedouble != 0.0) return dsv4_fail(err, errlen, "%s: model.dropout unsupported", path);
    }
    if (is_true(model, "byte_fallback")) return dsv4_fail(err, errlen, "%s: model.byte_fallback=true unsupported", path);
    {
        const cJSON *p1 = cJSON_GetObjectItemCaseSensitive(model, "continuing_subword_prefix");
        const cJSON *p2 = cJSON_GetObjectItemCaseSensitive(model, "end_of_word_suffix");
        if ((cJSON_IsString(p1) && p1->valuestring[0]) || (cJSON_IsString(p2) && p2->valuestring[0]))
            return dsv4_fail(err, errlen, "%s: model.continuing_subword_prefix/end_of_word_suffix unsupported", path);
    }
    t->ignore_merges = is_true(model, "ignore_merges");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    if (!cJSON_IsObject(vocab)) return dsv4_fail(err, errlen, "%s: model.vocab missing or not an object", path);
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsArray(merges)) return dsv4_fail(err, errlen, "%s: model.merges missing or not an array", path);
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (added && !cJSON_IsNull(added) && !cJSON_IsArray(added)) return dsv4_fail(err, errlen, "%s: added_tokens is not an array", path);

    /* vocab keys */
    int nv = cJSON_GetArraySize(vocab);
    size_t keybytes = 0; int64_t maxid = -1;
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 16777215 || e->valuedouble != (double)(int)e->valuedouble)
            return dsv4_fail(err, errlen, "%s: model.vocab[\"%s\"]: id is not an integer in [0, 2^24)", path, e->string);
        keybytes += strlen(e->string);
        if (e->valueint > maxid) maxid = e->valueint;
    }
    t->n_vocab = nv;
    t->vkeys = malloc(keybytes + 1);
    t->vkey_off = malloc(sizeof(uint32_t) * (nv + 1)); t->vkey_len = malloc(sizeof(uint32_t) * (nv + 1));
    t->vkey_id = malloc(sizeof(int32_t) * (nv + 1));
    uint32_t vcap = pow2_at_least((size_t)nv * 2 + 1);
    t->vmap = calloc(vcap, sizeof(uint32_t)); t->vmask = vcap - 1;
    if (!t->vkeys || !t->vkey_off || !t->vkey_len || !t->vkey_id || !t->vmap) return dsv4_fail(err, errlen, "out of memory");
    {
        size_t off = 0; int i = 0;
        cJSON_ArrayForEach(e, vocab) {
            size_t l = strlen(e->string);
            memcpy(t->vkeys + off, e->string, l);
            t->vkey_off[i] = (uint32_t)off; t->vkey_len[i] = (uint32_t)l; t->vkey_id[i] = e->valueint;
            uint32_t h = hash_bytes(e->string, l) & t->vmask;
            while (t->vmap[h]) {
                uint32_t o = t->vmap[h] - 1;
                if (t->vkey_len[o] == l && memcmp(t->vkeys + t->vkey_off[o], e->string, l) == 0)
                    return dsv4_fail(err, errlen, "%s: model.vocab: duplicate key \"%s\"", path, e->string);
                h = (h + 1) & t->vmask;
            }
            t->vmap[h] = (uint32_t)i + 1;
            off += l; i++;
        }
    }

    /* added tokens: collect */
    int na = added && cJSON_IsArray(added) ? cJSON_GetArraySize(added) : 0;
    if (na) {
        t->added = calloc((size_t)na, sizeof(added_t));
        if (!t->added) return dsv4_fail(err, errlen, "out of memory");
        cJSON_ArrayForEach(e, added) {
            int i = t->n_added;
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
            const cJSON *ct = cJSON_GetObjectItemCaseSensitive(e, "content");
            if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble > 16777215 || !cJSON_IsString(ct) || !ct->valuestring[0])
                return dsv4_fail(err, errlen, "%s: added_tokens[%d]: needs an integer id and a non-empty content", path, i);
            if (is_true(e, "lstrip") || is_true(e, "rstrip") || is_true(e, "single_word"))
                return dsv4_fail(err, errlen, "%s: added_tokens[%d] \"%s\": lstrip/rstrip/single_word unsupported", path, i, ct->valuestring);
            added_t *a = &t->added[i];
            a->len = strlen(ct->valuestring);
            a->content = malloc(a->len + 1);
            if (!a->content) return dsv4_fail(err, errlen, "out of memory");
            memcpy(a->content, ct->valuestring, a->len + 1);
            a->id = id->valueint;
            /* HF default for added_tokens entries: normalized = !special */
            a->special = is_true(e, "special");
            const cJSON *nz = cJSON_GetObjectItemCaseSensitive(e, "normalized");
            a->normalized = nz ? cJSON_IsTrue(nz) : !a->special;
            if (a->id > maxid) maxid = a->id;
            t->n_added++;
            size_t bad; const uint8_t *s = (const uint8_t *)a->content;
            for (size_t p = 0; p < a->len; p += bad)
                if (utf8_class(s + p, a->len - p, &bad) != 1)
                    return dsv4_fail(err, errlen, "%s: added_tokens[%d]: content is not valid UTF-8", path, i);
            if (trie_add(&t->trie[a->normalized ? 1 : 0], a->content, a->len, i) < 0) return dsv4_fail(err, errlen, "out of memory");
        }
    }
    if (maxid < 0) return dsv4_fail(err, errlen, "%s: model.vocab is empty", path);
    t->vocab_size = (int)maxid + 1;

    /* byte -> unicode reverse table */
    int16_t cp2byte[324];
    for (int i = 0; i < 324; i++) cp2byte[i] = -1;
    for (int b = 0; b < 256; b++) { t->b2cp[b] = byte_to_cp(b); cp2byte[t->b2cp[b]] = (int16_t)b; }
    for (int b = 0; b < 256; b++) {
        char s[4]; int l = utf8_put(t->b2cp[b], s);
        t->byte_id[b] = vocab_find(t, s, (size_t)l);
        /* without it, encode would have no symbol for this byte and silently drop it */
        if (t->byte_id[b] < 0)
            return dsv4_fail(err, errlen, "%s: model.vocab has no token for byte 0x%02x (ByteLevel symbol U+%04X); "
                             "byte-level BPE needs all 256", path, b, (unsigned)t->b2cp[b]);
    }

    /* decoded bytes of every id (decoded form is never longer than the key / content) */
    size_t total = keybytes;
    for (int i = 0; i < t->n_added; i++) total += t->added[i].len;
    t->tok_bytes = malloc(total + 1);
    t->tok_off = calloc((size_t)t->vocab_size, sizeof(uint32_t));
    t->tok_len = calloc((size_t)t->vocab_size, sizeof(uint32_t));
    t->tok_set = calloc((size_t)t->vocab_size, 1);
    if (!t->tok_bytes || !t->tok_off || !t->tok_len || !t->tok_set) return dsv4_fail(err, errlen, "out of memory");
    size_t bo = 0;
    for (int i = 0; i < nv; i++) {
        int32_t id = t->vkey_id[i];
        if (t->tok_set[id]) return dsv4_fail(err, errlen, "%s: model.vocab: id %d is used twice", path, (int)id);
        const uint8_t *k = (const uint8_t *)t->vkeys + t->vkey_off[i];
        size_t kl = t->vkey_len[i], p = 0, o = bo; int ok = 1;
        while (p < kl) {
            size_t adv;
            if (utf8_class(k + p, kl - p, &adv) != 1) { ok = 0; break; }
            uint32_t c = utf8_get(k + p, adv);
            if (c >= 324 || cp2byte[c] < 0) { ok = 0; break; }
            t->tok_bytes[o++] = (char)cp2byte[c];
            p += adv;
        }
        if (!ok) { memcpy(t->tok_bytes + bo, k, kl); o = bo + kl; }   /* HF: raw key bytes */
        t->tok_off[id] = (uint32_t)bo; t->tok_len[id] = (uint32_t)(o - bo); t->tok_set[id] = 1;
        bo = o;
    }
    for (int i = 0; i < t->n_added; i++) {
        added_t *a = &t->added[i];
        memcpy(t->tok_bytes + bo, a->content, a->len);
        t->tok_off[a->id] = (uint32_t)bo; t->tok_len[a->id] = (uint32_t)a->len; t->tok_set[a->id] = 1;
        bo += a->len;
    }

    /* merges */
    int nm = cJSON_GetArraySize(merges);
    uint32_t mcap = pow2_at_least((size_t)nm * 2 + 1);
    t->mkey = malloc(sizeof(uint64_t) * mcap); t->mrank = malloc(sizeof(uint32_t) * mcap);
    t->mres = malloc(sizeof(int32_t) * mcap); t->mmask = mcap - 1;
    if (!t->mkey || !t->mrank || !t->mres) return dsv4_fail(err, errlen, "out of memory");
    for (uint32_t i = 0; i < mcap; i++) t->mres[i] = -1;
    char *cat = NULL; size_t catcap = 0;
    int rank = 0;
    cJSON_ArrayForEach(e, merges) {
        const char *a, *b; size_t la, lb;
        if (cJSON_IsString(e)) {
            const char *sp = strchr(e->valuestring, ' ');
            if (!sp || strchr(sp + 1, ' ')) { free(cat); return dsv4_fail(err, errlen, "%s: model.merges[%d] \"%s\": expected \"a b\"", path, rank, e->valuestring); }
            a = e->valuestring; la = (size_t)(sp - a); b = sp + 1; lb = strlen(b);
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 && cJSON_IsString(e->child) && cJSON_IsString(e->child->next)) {
            a = e->child->valuestring; la = strlen(a); b = e->child->next->valuestring; lb = strlen(b);
        } else {
            free(cat); return dsv4_fail(err, errlen, "%s: model.merges[%d]: not a string or a pair of strings", path, rank);
        }
        if (la + lb > catcap) { catcap = (la + lb) * 2 + 64; char *nc = realloc(cat, catcap); if (!nc) { free(cat); return dsv4_fail(err, errlen, "out of memory"); } cat = nc; }
        memcpy(cat, a, la); memcpy(cat + la, b, lb);
        int32_t ia = vocab_find(t, a, la), ib = vocab_find(t, b, lb), ir = vocab_find(t, cat, la + lb);
        if (ia < 0 || ib < 0 || ir < 0) {
            free(cat);
            return dsv4_fail(err, errlen, "%s: model.merges[%d]: %s not in model.vocab", path, rank,
                             ia < 0 ? "first part" : ib < 0 ? "second part" : "merged token");
        }
        uint64_t k = ((uint64_t)(uint32_t)ia << 32) | (uint32_t)ib;
        uint32_t h = hash_u64(k) & t->mmask;
        while (t->mres[h] >= 0 && t->mkey[h] != k) h = (h + 1) & t->mmask;
        t->mkey[h] = k; t->mrank[h] = (uint32_t)rank; t->mres[h] = ir;   /* a repeated pair: last rank wins (as HF) */
        rank++;
    }
    free(cat);
    t->n_merges = nm;
    return 0;
}

int dsv4_tokenizer_load(dsv4_tokenizer **out, const char *path, char *err, size_t errlen) {
    *out = NULL;
    char *buf = NULL;
    size_t sz = 0;
    if (dsv4_read_file(path, &buf, &sz, err, errlen) != 0) return -1;   /* names path: cannot open / is a directory / ... */
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(buf, sz, &end, 0);
    if (!root) {
        size_t off = end ? (size_t)(end - buf) : 0;
        free(buf);
        return dsv4_fail(err, errlen, "%s: not valid JSON (parse error near byte %zu)", path, off);
    }
    free(buf);
    dsv4_tokenizer *t = calloc(1, sizeof *t);
    if (!t) { cJSON_Delete(root); return dsv4_fail(err, errlen, "%s: out of memory", path); }
    int rc = load_json(t, root, path, err, errlen);
    cJSON_Delete(root);
    if (rc < 0) { dsv4_tokenizer_free(t); return -1; }
    *out = t;
    return 0;
}

/* ------------------------------------------------------------------ encode */

typedef struct { uint32_t rank, pos; } hent;

typedef struct {
    const dsv4_tokenizer *t;
    const uint8_t *text;
    int32_t *ids; size_t cap, count;
    pcre2_match_data *md[MAX_SPLITS + 1];
    /* scratch, grown on demand */
    int32_t *sym; hent *heap; size_t scap, hcap;   /* sym holds 3 arrays of n: id, next, prev */
    uint8_t *pbuf; size_t pcap;    /* ByteLevel prefix buffer */
    char *kbuf; size_t kcap;       /* byte-level key (ignore_merges) */
    int oom;
} enc_t;

static inline void emit(enc_t *c, int32_t id) {
    if (c->count < c->cap) c->ids[c->count] = id;
    c->count++;
}

static int grow(void **p, size_t *cap, size_t need, size_t elsize) {
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap : 64;
    while (nc < need) nc *= 2;
    void *q = realloc(*p, nc * elsize);
    if (!q) return -1;
    *p = q; *cap = nc;
    return 0;
}

static inline int hless(hent a, hent b) { return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos); }

static void hpush(hent *h, size_t *n, hent x) {
    size_t i = (*n)++;
    while (i > 0) { size_t p = (i - 1) / 2; if (!hless(x, h[p])) break; h[i] = h[p]; i = p; }
    h[i] = x;
}
static hent hpop(hent *h, size_t *n) {
    hent top = h[0], x = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i; hent best = x;
        if (l < *n && hless(h[l], best)) { m = l; best = h[l]; }
        if (r < *n && hless(h[r], best)) { m = r; best = h[r]; }
        if (m == i) break;
        h[i] = h[m]; i = m;
    }
    if (*n) h[i] = x;
    return top;
}

/* BPE of one pre-tokenized piece of raw bytes */
static void bpe_piece(enc_t *c, const uint8_t *b, size_t n) {
    const dsv4_tokenizer *t = c->t;
    if (n == 0) return;
    if (t->ignore_merges) {
        if (grow((void **)&c->kbuf, &c->kcap, n * 2, 1) < 0) { c->oom = 1; return; }
        size_t kl = 0;
        for (size_t i = 0; i < n; i++) kl += (size_t)utf8_put(t->b2cp[b[i]], c->kbuf + kl);
        int32_t id = vocab_find(t, c->kbuf, kl);
        if (id >= 0) { emit(c, id); return; }
    }
    if (n == 1) { if (t->byte_id[b[0]] >= 0) emit(c, t->byte_id[b[0]]); return; }
    if (grow((void **)&c->sym, &c->scap, 3 * n, sizeof(int32_t)) < 0) { c->oom = 1; return; }
    if (grow((void **)&c->heap, &c->hcap, 2 * n, sizeof(hent)) < 0) { c->oom = 1; return; }
    int32_t *sym = c->sym, *nxt = c->sym + n, *prv = c->sym + 2 * n;
    int m = 0;
    for (size_t i = 0; i < n; i++) {             /* bytes without a vocab entry are dropped (HF, no unk) */
        int32_t id = t->byte_id[b[i]];
        if (id < 0) continue;
        sym[m] = id; prv[m] = m - 1; nxt[m] = m + 1; m++;
    }
    if (m == 0) return;
    nxt[m - 1] = -1;
    hent *h = c->heap; size_t hn = 0;
    for (int i = 0; i + 1 < m; i++) {
        int64_t s = merge_find(t, sym[i], sym[i + 1]);
        if (s >= 0) hpush(h, &hn, (hent){t->mrank[s], (uint32_t)i});
    }
    while (hn) {
        hent top = hpop(h, &hn);
        int l = (int)top.pos, r;
        if (sym[l] < 0 || (r = nxt[l]) < 0) continue;
        int64_t s = merge_find(t, sym[l], sym[r]);
        if (s < 0 || t->mrank[s] != top.rank) continue;    /* stale entry */
        sym[l] = t->mres[s];
        sym[r] = -1;
        nxt[l] = nxt[r];
        if (nxt[r] >= 0) prv[nxt[r]] = l;
        if (prv[l] >= 0) {
            int64_t q = merge_find(t, sym[prv[l]], sym[l]);
            if (q >= 0) hpush(h, &hn, (hent){t->mrank[q], (uint32_t)prv[l]});
        }
        if (nxt[l] >= 0) {
            int64_t q = merge_find(t, sym[l], sym[nxt[l]]);
            if (q >= 0) hpush(h, &hn, (hent){t->mrank[q], (uint32_t)l});
        }
    }
    for (int i = 0; i >= 0; i = nxt[i]) emit(c, sym[i]);
}

/* run `re` over s[0..n) with Isolated behaviour, calling f on every non-empty piece */
typedef void (*piece_fn)(enc_t *c, int level, const uint8_t *s, size_t n);

static void split_isolated(enc_t *c, pcre2_code *re, pcre2_match_data *md, int level,
                           const uint8_t *s, size_t n, piece_fn f) {
    size_t pos = 0, off = 0;
    while (off <= n && !c->oom) {
        int rc = pcre2_match(re, (PCRE2_SPTR)s, n, off, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc < 0) {
            if (rc != PCRE2_ERROR_NOMATCH) c->oom = 2;   /* resource limit: reported as an error */
            break;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (me == ms) {                       /* empty match: no piece, skip one character */
            if (ms >= n) break;
            size_t adv; utf8_class(s + ms, n - ms, &adv);
            off = ms + adv; continue;
        }
        if (ms > pos) f(c, level, s + pos, ms - pos);
        f(c, level, s + ms, me - ms);
        pos = off = me;
    }
    if (pos < n && !c->oom) f(c, level, s + pos, n - pos);
}

static void bytelevel_split_cb(enc_t *c, int level, const uint8_t *s, size_t n) { (void)level; bpe_piece(c, s, n); }

static void pretok(enc_t *c, int level, const uint8_t *s, size_t n) {
    const dsv4_tokenizer *t = c->t;
    if (level < t->n_split) { split_isolated(c, t->split[level], c->md[level], level + 1, s, n, pretok); return; }
    /* ByteLevel */
    if (t->bl_prefix && s[0] != ' ') {
        if (grow((void **)&c->pbuf, &c->pcap, n + 1, 1) < 0) { c->oom = 1; return; }
        c->pbuf[0] = ' '; memcpy(c->pbuf + 1, s, n);
        s = c->pbuf; n++;
    }
    if (t->bl_re) split_isolated(c, t->bl_re, c->md[MAX_SPLITS], 0, s, n, bytelevel_split_cb);
    else bpe_piece(c, s, n);
}

/* split on added tokens of trie `pass` (0 then 1), pre-tokenize the rest */
static void added_split(enc_t *c, int pass, const uint8_t *s, size_t n) {
    const dsv4_tokenizer *t = c->t;
    if (pass > 1) { if (n) pretok(c, 0, s, n); return; }
    const trie_t *tr = &t->trie[pass];
    size_t start = 0;
    for (size_t i = 0; i < n && !c->oom;) {
        size_t ml = 0;
        int a = tr->first[s[i]] ? trie_longest(tr, s + i, n - i, &ml) : -1;
        if (a < 0) { i++; continue; }
        if (i > start) added_split(c, pass + 1, s + start, i - start);
        emit(c, t->added[a].id);
        i += ml; start = i;
    }
    if (start < n && !c->oom) added_split(c, pass + 1, s + start, n - start);
}

int dsv4_tokenize(const dsv4_tokenizer *t, const char *text, size_t len, int32_t *ids, int cap,
                  char *err, size_t errlen) {
    if (!t || (!text && len)) return dsv4_fail(err, errlen, "dsv4_tokenize: NULL tokenizer or text");
    const uint8_t *s = (const uint8_t *)text;
    for (size_t p = 0; p < len;) {
        size_t adv;
        if (utf8_class(s + p, len - p, &adv) != 1)
            return dsv4_fail(err, errlen, "dsv4_tokenize: invalid UTF-8 at byte offset %zu (byte 0x%02x)", p, s[p]);
        p += adv;
    }
    enc_t c;
    memset(&c, 0, sizeof c);
    c.t = t; c.text = s; c.ids = ids; c.cap = (ids && cap > 0) ? (size_t)cap : 0;
    for (int i = 0; i < t->n_split; i++)
        if (!(c.md[i] = pcre2_match_data_create_from_pattern(t->split[i], NULL))) c.oom = 1;
    if (t->bl_re && !(c.md[MAX_SPLITS] = pcre2_match_data_create_from_pattern(t->bl_re, NULL))) c.oom = 1;
    if (!c.oom && len) added_split(&c, 0, s, len);
    for (int i = 0; i <= MAX_SPLITS; i++) pcre2_match_data_free(c.md[i]);
    free(c.sym); free(c.heap); free(c.pbuf); free(c.kbuf);
    if (c.oom == 1) return dsv4_fail(err, errlen, "dsv4_tokenize: out of memory");
    if (c.oom == 2) return dsv4_fail(err, errlen, "dsv4_tokenize: regex matching hit a PCRE2 resource limit");
    if (c.count > (size_t)INT_MAX) return dsv4_fail(err, errlen, "dsv4_tokenize: more than INT_MAX tokens");
    return (int)c.count;
}

/* ------------------------------------------------------------------ lookup / decode */

/* Added tokens are looked up by their content; otherwise `text` is taken as a model.vocab key in its
 * byte-level form (e.g. "ĠHello" for " Hello"). */
int32_t dsv4_token_id(const dsv4_tokenizer *t, const char *text) {
    if (!t || !text) return -1;
    size_t n = strlen(text);
    for (int p = 0; p < 2; p++) {
        int a = trie_exact(&t->trie[p], text, n);
        if (a >= 0) return t->added[a].id;
    }
    return vocab_find(t, text, n);
}

/* NULL (and *len = 0) also for ids inside [0, vocab_size) that no token uses. Vocab keys holding a
 * character outside the byte-level alphabet decode to their raw UTF-8 key (as HF's ByteLevel decoder). */
const char *dsv4_token_bytes(const dsv4_tokenizer *t, int32_t id, size_t *len) {
    if (!t || id < 0 || id >= t->vocab_size || !t->tok_set[id]) { if (len) *len = 0; return NULL; }
    if (len) *len = t->tok_len[id];
    return t->tok_bytes + t->tok_off[id];
}

int dsv4_tokenizer_vocab_size(const dsv4_tokenizer *t) { return t ? t->vocab_size : 0; }

typedef struct { char *out; size_t cap, n; int over; } wbuf;
static void wput(wbuf *w, const void *p, size_t n) {
    if (w->n + n > w->cap) { w->over = 1; return; }
    memcpy(w->out + w->n, p, n); w->n += n;
}
static const char REPL[3] = {(char)0xEF, (char)0xBF, (char)0xBD};

/* Streaming decode. Pending bytes (<= 3) are always a proper prefix of a valid UTF-8 character.
 * Invalid sequences become one U+FFFD per maximal invalid subpart (Unicode "substitution of maximal
 * subparts"). Returns the bytes written, or -1 (stream unchanged, out contents unspecified) if the id is
 * unassigned / out of range or the output does not fit in cap. */
int dsv4_detok_next(const dsv4_tokenizer *t, dsv4_detok_stream *st, int32_t id, char *out, size_t cap) {
    size_t len;
    const uint8_t *b = (const uint8_t *)dsv4_token_bytes(t, id, &len);
    if (!b || !st || st->npending < 0 || st->npending > 3) return -1;
    wbuf w = {out, out ? cap : 0, 0, 0};
    uint8_t pend[4]; size_t np = (size_t)st->npending;
    memcpy(pend, st->pending, np);
    size_t i = 0;
    if (np) {
        uint8_t tmp[4]; size_t take = 4 - np < len ? 4 - np : len, adv;
        memcpy(tmp, pend, np); memcpy(tmp + np, b, take);
        int r = utf8_class(tmp, np + take, &adv);
        if (r == 0) {                         /* still incomplete: everything goes to pending */
            memcpy(pend + np, b, len); np += len;
            i = len;
        } else {
            if (r > 0) wput(&w, tmp, adv); else wput(&w, REPL, 3);
            i = adv - np;                     /* adv >= np since pend alone is a valid prefix */
            np = 0;
        }
    }
    while (i < len) {
        size_t adv;
        int r = utf8_class(b + i, len - i, &adv);
        if (r > 0) wput(&w, b + i, adv);
        else if (r < 0) wput(&w, REPL, 3);
        else { memcpy(pend, b + i, adv); np = adv; }
        i += adv;
    }
    if (w.over) return -1;
    memcpy(st->pending, pend, np); st->npending = (int)np;
    return (int)w.n;
}

int dsv4_detok_flush(dsv4_detok_stream *st, char *out, size_t cap) {
    if (!st || st->npending <= 0) { if (st) st->npending = 0; return 0; }
    if (!out || cap < 3) return -1;
    memcpy(out, REPL, 3);
    st->npending = 0;
    return 3;
}
