/* tests/fuzz/fuzz_tokenizer.c — libFuzzer harness: BPE encode, decode and the round trip
 * (src/tokenizer/tokenizer.c, include/dsv4.h).
 *
 * Tokenizer: $DSV4_FUZZ_TOKENIZER, else models/nano/tokenizer.json (the DeepSeek-V3 pre-tokenizer regexes with
 * a 1024-token vocabulary; run from the repository root).
 * Input: byte 0 picks the mode, the rest is its argument.
 *  even: encode the rest as text. dsv4_tokenize succeeds exactly when the text is strict UTF-8 (an independent
 *        validator, tests/fuzz/fuzz_util.h); then the count-only call, a full call and a short-buffer call agree,
 *        every id is in the vocabulary, and decoding gives the text back byte for byte, both by concatenating
 *        dsv4_token_bytes and through the streaming decoder (dsv4_detok_next + dsv4_detok_flush).
 *  odd:  decode: every 3 bytes are one id in [-4, vocab + 4). dsv4_detok_next fails exactly for the ids without
 *        bytes; its output and the flush are always valid UTF-8, and equal the tokens' concatenated bytes when
 *        those are valid UTF-8.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "dsv4.h"
#include "fuzz_util.h"

static dsv4_tokenizer *tok;
static int vocab;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    const char *p = getenv("DSV4_FUZZ_TOKENIZER");
    if (!p || !*p) p = "models/nano/tokenizer.json";
    char err[512];
    if (dsv4_tokenizer_load(&tok, p, err, sizeof err) != 0) {
        fprintf(stderr, "fuzz_tokenizer: %s\n", err);
        exit(2);
    }
    vocab = dsv4_tokenizer_vocab_size(tok);
    return 0;
}

typedef struct { char *p; size_t n, cap; } buf;
static void put(buf *b, const void *p, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = 2 * (b->n + n + 1);
        b->p = realloc(b->p, b->cap);
        FUZZ_CHECK(b->p, "out of memory");
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

/* Stream ids through the decoder into out (ids it refuses add nothing). */
static void stream(const int32_t *ids, size_t n, buf *out, int expect_all_ok) {
    dsv4_detok_stream st;
    memset(&st, 0, sizeof st);
    static char tmp[1 << 16];
    for (size_t i = 0; i < n; i++) {
        size_t bl = 0;
        const char *bytes = dsv4_token_bytes(tok, ids[i], &bl);
        int r = dsv4_detok_next(tok, &st, ids[i], tmp, sizeof tmp);
        if (bytes && 3 * bl + 16 <= sizeof tmp) {
            FUZZ_CHECK(r >= 0, "detok_next refused id %d (%zu bytes)", ids[i], bl);
        } else if (!bytes) {
            FUZZ_CHECK(r == -1, "detok_next accepted id %d, which has no bytes", ids[i]);
            FUZZ_CHECK(!expect_all_ok, "id %d from the encoder has no bytes", ids[i]);
            continue;
        }
        if (r < 0) continue;
        FUZZ_CHECK(fuzz_utf8_valid((const unsigned char *)tmp, (size_t)r), "detok_next output not UTF-8 (id %d)",
                   ids[i]);
        put(out, tmp, (size_t)r);
    }
    int r = dsv4_detok_flush(&st, tmp, sizeof tmp);
    FUZZ_CHECK(r == 0 || r == 3, "flush returned %d", r);
    if (r > 0) put(out, tmp, (size_t)r);
}

static void encode(const uint8_t *text, size_t len) {
    char err[256] = "";
    int n = dsv4_tokenize(tok, (const char *)text, len, NULL, 0, err, sizeof err);
    int valid = fuzz_utf8_valid(text, len);
    FUZZ_CHECK((n >= 0) == valid, "tokenize returned %d for %s UTF-8 (%s)", n, valid ? "valid" : "invalid", err);
    if (n < 0) {
        FUZZ_CHECK(strstr(err, "invalid UTF-8 at byte offset"), "error '%s'", err);
        return;
    }
    FUZZ_CHECK(len == 0 || n > 0, "%zu bytes encoded to no token", len);
    int32_t *ids = malloc(((size_t)n + 1) * sizeof *ids);
    FUZZ_CHECK(ids, "out of memory");
    int n2 = dsv4_tokenize(tok, (const char *)text, len, ids, n, err, sizeof err);
    FUZZ_CHECK(n2 == n, "count-only call said %d, full call %d", n, n2);
    if (n > 1) {
        int32_t *half = malloc((size_t)n * sizeof *half);
        FUZZ_CHECK(half, "out of memory");
        int n3 = dsv4_tokenize(tok, (const char *)text, len, half, n / 2, err, sizeof err);
        FUZZ_CHECK(n3 == n && memcmp(half, ids, (size_t)(n / 2) * sizeof *ids) == 0, "short buffer call differs");
        free(half);
    }
    buf cat = {0}, str = {0};
    for (int i = 0; i < n; i++) {
        FUZZ_CHECK(ids[i] >= 0 && ids[i] < vocab, "id %d outside the vocabulary (%d)", ids[i], vocab);
        size_t bl = 0;
        const char *b = dsv4_token_bytes(tok, ids[i], &bl);
        FUZZ_CHECK(b, "id %d has no bytes", ids[i]);
        put(&cat, b, bl);
    }
    FUZZ_CHECK(cat.n == len && (len == 0 || memcmp(cat.p, text, len) == 0), "round trip differs (%zu -> %zu bytes)",
               len, cat.n);
    stream(ids, (size_t)n, &str, 1);
    FUZZ_CHECK(str.n == len && (len == 0 || memcmp(str.p, text, len) == 0),
               "streaming round trip differs (%zu -> %zu bytes)", len, str.n);
    free(cat.p);
    free(str.p);
    free(ids);
}

static void decode(const uint8_t *d, size_t len) {
    size_t n = len / 3;
    int32_t *ids = malloc((n + 1) * sizeof *ids);
    FUZZ_CHECK(ids, "out of memory");
    buf cat = {0}, str = {0};
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t v = d[3 * i] | (uint32_t)d[3 * i + 1] << 8 | (uint32_t)d[3 * i + 2] << 16;
        ids[i] = (int32_t)(v % (uint32_t)(vocab + 8)) - 4;
        size_t bl = 0;
        const char *b = dsv4_token_bytes(tok, ids[i], &bl);
        FUZZ_CHECK(!b || (ids[i] >= 0 && ids[i] < vocab), "token_bytes(%d) outside the vocabulary has bytes", ids[i]);
        if (b) { put(&cat, b, bl); kept++; }
    }
    stream(ids, n, &str, 0);
    FUZZ_CHECK(fuzz_utf8_valid((const unsigned char *)str.p, str.n), "decoded text is not UTF-8");
    if (fuzz_utf8_valid((const unsigned char *)cat.p, cat.n))
        FUZZ_CHECK(str.n == cat.n && (cat.n == 0 || memcmp(str.p, cat.p, cat.n) == 0),
                   "valid UTF-8 tokens (%zu kept) decoded to other bytes", kept);
    free(cat.p);
    free(str.p);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    if (data[0] & 1) decode(data + 1, size - 1);
    else encode(data + 1, size - 1);
    return 0;
}
