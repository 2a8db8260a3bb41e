/* tests/fuzz/fuzz_render.c — libFuzzer harness: the prompt renderer (src/chat/encode*.c, include/dsv4_chat.h).
 *
 * Input: byte 0 = options (bit 0 thinking, bits 1-2 effort none/high/max, bit 3 keep_thinking, bit 4 no_bos,
 * bit 5: a context is given, bit 6: DeepSeek-V4.1 format (with bits 1-2 = 3: effort_level byte 1 of the request
 * % 102 - 1, so -1, 0 and 101 are tried too), then the request JSON (messages array or {"messages", "tools",
 * "response_format"} object); with bit 5 the request is split at its first NUL byte into context JSON (before)
 * and request (after).
 * Properties: no crash, leak or UB; exactly one of (prompt, error) comes back: on success a NUL-terminated
 * prompt of out_len bytes that is valid UTF-8 (the renderer refuses input that is not, and lone surrogates);
 * on failure *out NULL and a non-empty one-line error; rendering is deterministic (a second call gives the
 * same bytes or the same error).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "dsv4_chat.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    dsv4_render_opts o;
    memset(&o, 0, sizeof o);
    o.thinking = data[0] & 1;
    o.effort = (dsv4_effort)(((data[0] >> 1) & 3) % 3);
    o.keep_thinking = (data[0] >> 3) & 1;
    o.no_bos = (data[0] >> 4) & 1;
    const char *req = (const char *)data + 1;
    size_t len = size - 1;
    if (data[0] & 64) {
        o.format = DSV4_FORMAT_V41;
        if (((data[0] >> 1) & 3) == 3 && len > 0) { o.effort_level = (int)((uint8_t)req[0] % 102) - 1; req++; len--; }
    }
    if (data[0] & 32) {
        const char *nul = memchr(req, 0, len);
        if (nul) {
            o.context_json = req;
            o.context_len = (size_t)(nul - req);
            len -= o.context_len + 1;
            req = nul + 1;
        }
    }
    char *out = (char *)1, *out2 = (char *)1;
    size_t n = 12345, n2 = 12345;
    char err[512] = "", err2[512] = "";
    int rc = dsv4_chat_render(req, len, &o, &out, &n, err, sizeof err);
    int rc2 = dsv4_chat_render(req, len, &o, &out2, &n2, err2, sizeof err2);
    FUZZ_CHECK(rc == rc2, "second render returned %d, first %d", rc2, rc);
    if (rc != 0) {
        FUZZ_CHECK(rc == -1 && out == NULL && out2 == NULL, "failed render: rc %d, out %p", rc, (void *)out);
        FUZZ_CHECK(err[0] && !strchr(err, '\n') && strcmp(err, err2) == 0, "error '%s' / '%s'", err, err2);
        return 0;
    }
    FUZZ_CHECK(out && out[n] == 0, "prompt not NUL-terminated");
    FUZZ_CHECK(fuzz_utf8_valid((const unsigned char *)out, n), "prompt (%zu bytes) is not valid UTF-8", n);
    FUZZ_CHECK(n == n2 && memcmp(out, out2, n) == 0, "render is not deterministic");
    free(out);
    free(out2);
    return 0;
}
