/* tests/fuzz/fuzz_tokenizer_load.c — libFuzzer harness: loading a tokenizer.json (src/tokenizer/tokenizer.c,
 * dsv4_tokenizer_load: JSON, byte-level BPE vocabulary and merges, Split pre-tokenizer regexes, added tokens).
 *
 * Input: the tokenizer.json bytes. Properties: no crash, leak or UB, bounded time (the runner's -timeout); a
 * refusal leaves *out NULL and names the file; a loaded tokenizer encodes a few fixed valid UTF-8 texts (ASCII,
 * digits, CJK, an emoji, the DeepSeek special-token text) without error, every id is below its vocab_size and has
 * bytes, and the streaming decoder accepts every id.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "dsv4.h"
#include "fuzz_util.h"

static const char *const texts[] = {
    "Hello, world! It's 2024: 1234567 tokens?\n\n  indented\ttab",
    "\xe4\xbd\xa0\xe5\xa5\xbd\xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x98\x80 caf\xc3\xa9",
    "<\xef\xbd\x9c" "begin\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>x<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
    "",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write("tokenizer.json", data, size);
    dsv4_tokenizer *t = (dsv4_tokenizer *)1;
    char err[512] = "";
    if (dsv4_tokenizer_load(&t, path, err, sizeof err) != 0) {
        FUZZ_CHECK(t == NULL, "failed load left a tokenizer");
        FUZZ_CHECK(strstr(err, "tokenizer.json"), "error does not name the file: '%s'", err);
        return 0;
    }
    const int vocab = dsv4_tokenizer_vocab_size(t);
    FUZZ_CHECK(vocab > 0, "vocab_size %d", vocab);
    int32_t ids[512];
    char out[1 << 12];
    for (size_t k = 0; k < sizeof texts / sizeof *texts; k++) {
        size_t len = strlen(texts[k]);
        int n = dsv4_tokenize(t, texts[k], len, ids, 512, err, sizeof err);
        FUZZ_CHECK(n >= 0 && n <= 512 && (len == 0 || n > 0), "text %zu: tokenize returned %d (%s)", k, n, err);
        dsv4_detok_stream st;
        memset(&st, 0, sizeof st);
        for (int i = 0; i < n; i++) {
            size_t bl = 0;
            FUZZ_CHECK(ids[i] >= 0 && ids[i] < vocab && dsv4_token_bytes(t, ids[i], &bl), "text %zu: id %d (vocab %d)",
                       k, ids[i], vocab);
            if (3 * bl + 16 <= sizeof out)
                FUZZ_CHECK(dsv4_detok_next(t, &st, ids[i], out, sizeof out) >= 0, "detok refused id %d", ids[i]);
        }
    }
    dsv4_tokenizer_free(t);
    return 0;
}
