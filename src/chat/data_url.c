/* chat/data_url.c — data: URLs of image content parts (RFC 2397 with base64, RFC 4648 §4 alphabet) -> bytes.
 * API in include/dsv4_chat.h (dsv4_data_url_decode). */
#include "dsv4_chat.h"
#include "base/util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int b64_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

int dsv4_base64_decode(const char *s, size_t n, unsigned char **out, size_t *out_len, const char *name, char *err,
                       size_t errlen) {
    if (out) *out = NULL;
    if (out_len) *out_len = 0;
    if (!out || !out_len || (!s && n)) return dsv4_fail(err, errlen, "dsv4_base64_decode: NULL argument");
    if (!name) name = "data";
    unsigned char *b = malloc(n / 4 * 3 + 3);
    if (!b) return dsv4_fail(err, errlen, "%s: out of memory (%zu bytes of base64)", name, n);
    size_t k = 0, q = 0, pad = 0;
    uint32_t acc = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue; /* MIME line breaks */
        if (c == '=') { pad++; continue; }
        int v = b64_value(c);
        if (v < 0 || pad) {
            free(b);
            if (v < 0)
                return dsv4_fail(err, errlen, "%s: malformed base64: byte 0x%02x at offset %zu is not in the base64 "
                                 "alphabet", name, c, i);
            return dsv4_fail(err, errlen, "%s: malformed base64: data after the '=' padding (offset %zu)", name, i);
        }
        acc = acc << 6 | (uint32_t)v;
        if (++q == 4) {
            b[k++] = (unsigned char)(acc >> 16); b[k++] = (unsigned char)(acc >> 8); b[k++] = (unsigned char)acc;
            q = 0; acc = 0;
        }
    }
    if (q == 1 || pad > 2 || (pad && (q + pad) != 4)) {
        free(b);
        return dsv4_fail(err, errlen, "%s: malformed base64: the length does not end on a whole group (%zu extra "
                         "character%s, %zu '=')", name, q, q == 1 ? "" : "s", pad);
    }
    if (q == 2) b[k++] = (unsigned char)(acc >> 4);
    else if (q == 3) { b[k++] = (unsigned char)(acc >> 10); b[k++] = (unsigned char)(acc >> 2); }
    *out = b;
    *out_len = k;
    return 0;
}

int dsv4_data_url_decode(const char *url, size_t len, unsigned char **out, size_t *out_len, const char *name,
                         char *err, size_t errlen) {
    if (out) *out = NULL;
    if (out_len) *out_len = 0;
    if (!url || !out || !out_len) return dsv4_fail(err, errlen, "dsv4_data_url_decode: NULL argument");
    if (!name) name = "image";
    if (len < 5 || strncmp(url, "data:", 5) != 0) {
        size_t k = 0;
        while (k < len && k < 16 && url[k] != ':') k++;
        if (k < len && url[k] == ':' && k < 16 && k > 0)
            return dsv4_fail(err, errlen, "%s: a '%.*s:' URL; only data: URLs are accepted (nothing is fetched)", name,
                             (int)k, url);
        return dsv4_fail(err, errlen, "%s: not a data: URL", name);
    }
    const char *comma = memchr(url, ',', len);
    if (!comma) return dsv4_fail(err, errlen, "%s: malformed data: URL (no ',' before the data)", name);
    size_t hl = (size_t)(comma - url);
    if (hl < 12 || strncmp(comma - 7, ";base64", 7) != 0)
        return dsv4_fail(err, errlen, "%s: the data: URL is not base64 (expected data:image/png;base64,... or "
                         "data:image/jpeg;base64,...)", name);
    return dsv4_base64_decode(comma + 1, len - hl - 1, out, out_len, name, err, errlen);
}
