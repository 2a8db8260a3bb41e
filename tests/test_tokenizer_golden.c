/* tests/test_tokenizer_golden.c — the C tokenizer against golden ids from an independent implementation
 * (docs/encoding.md §1, §2; tests/golden/tokenizer/README.md).
 *
 *   tests/golden/tokenizer/v3.jsonl  the real DeepSeek-V3 tokenizer.json (vendor/deepseek-v3-tokenizer/)
 *   tests/golden/tokenizer/v4.jsonl  build/v4-tokenizer.json (`make build/v4-tokenizer.json`: V3 + V4 added tokens)
 * Each vector: ids must equal exactly, and the concatenated token bytes must give back the input.
 * Also: llama.cpp's DeepSeek-V3 fingerprint (sha256 of Python's str() of the ids, computed here), special tokens
 * resolved by text, the V4 vocabulary shape, the official API prompt-token counts, and the documented
 * invalid-UTF-8 behaviour. Run from the repository root. Env overrides (for mutation checks):
 * DSV4_TOK_V3, DSV4_TOK_V4 = tokenizer files.
 */
#include "dsv4.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sha256.h"
#include "testlib.h"

static const char *GOLD_V3 = "tests/golden/tokenizer/v3.jsonl";
static const char *GOLD_V4 = "tests/golden/tokenizer/v4.jsonl";
static const char *OFFICIAL = "vendor/v4-official-vectors/official";

/* ------------------------------------------------------------------ the fingerprint (SHA-256: tests/sha256.h) */
/* sha256 of Python's str(list_of_ints): "[1, 2, 3]" */
static void py_list_sha(const int32_t *ids, int n, char out[65]) {
    sha256_t s; sha256_init(&s);
    char b[16];
    sha256_update(&s, "[", 1);
    for (int i = 0; i < n; i++) { int l = snprintf(b, sizeof b, i ? ", %d" : "%d", (int)ids[i]); sha256_update(&s, b, (size_t)l); }
    sha256_update(&s, "]", 1);
    sha256_hex(&s, out);
}

/* ------------------------------------------------------------------ helpers */
/* encode into a malloc'd array; returns the count, or -1 with err */
static int encode(const dsv4_tokenizer *t, const char *s, size_t n, int32_t **ids, char *err, size_t errlen) {
    *ids = NULL;
    int k = dsv4_tokenize(t, s, n, NULL, 0, err, errlen);
    if (k < 0) return -1;
    *ids = malloc(sizeof(int32_t) * (size_t)(k + 1));
    return dsv4_tokenize(t, s, n, *ids, k, err, errlen) == k ? k : -1;
}

/* 1 if the concatenated bytes of ids equal s[0..n) */
static int decodes_to(const dsv4_tokenizer *t, const int32_t *ids, int k, const char *s, size_t n) {
    size_t off = 0, l;
    for (int i = 0; i < k; i++) {
        const char *b = dsv4_token_bytes(t, ids[i], &l);
        if (!b || off + l > n || memcmp(s + off, b, l) != 0) return 0;
        off += l;
    }
    return off == n;
}

static void print_ids(const char *what, const int32_t *ids, int n) {
    printf("  %s (%d):", what, n);
    for (int i = 0; i < n && i < 40; i++) printf(" %d", (int)ids[i]);
    printf(n > 40 ? " ...\n" : "\n");
}

typedef struct { char name[32]; int pass, fail; } catstat;

/* Run every vector of a golden file. Returns the number of vectors read (0 when the file is unusable). */
static int run_golden(const dsv4_tokenizer *t, const char *gold, const char *tokpath) {
    size_t n;
    char *buf = test_read_file(gold, &n);
    CHECK(buf != NULL, "%s: cannot read", gold);
    if (!buf) return 0;
    catstat cats[32]; int ncat = 0, nvec = 0, shown = 0;
    char err[256];
    int lineno = 0;
    for (char *line = buf, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        lineno++;
        cJSON *o = cJSON_Parse(line);
        if (!o) { CHECK(0, "%s:%d: not JSON", gold, lineno); continue; }
        if (cJSON_GetObjectItemCaseSensitive(o, "meta")) {   /* header: tokenizer the vectors belong to */
            const cJSON *tk = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "meta"), "tokenizer");
            if (cJSON_IsString(tk) && strcmp(tk->valuestring, tokpath) != 0)
                printf("note: %s was generated for %s, testing %s\n", gold, tk->valuestring, tokpath);
            cJSON_Delete(o); continue;
        }
        const cJSON *cat = cJSON_GetObjectItemCaseSensitive(o, "cat"), *text = cJSON_GetObjectItemCaseSensitive(o, "text");
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(o, "ids");
        if (!cJSON_IsString(cat) || !cJSON_IsString(text) || !cJSON_IsArray(ids)) { CHECK(0, "%s:%d: bad record", gold, lineno); cJSON_Delete(o); continue; }
        int c;
        for (c = 0; c < ncat && strcmp(cats[c].name, cat->valuestring); c++) {}
        if (c == ncat && ncat < 32) { snprintf(cats[ncat].name, sizeof cats[ncat].name, "%s", cat->valuestring); cats[ncat].pass = cats[ncat].fail = 0; ncat++; }
        if (c >= 32) c = 31;
        int nw = cJSON_GetArraySize(ids);
        int32_t *want = malloc(sizeof(int32_t) * (size_t)(nw + 1)), *got;
        int i = 0; const cJSON *e;
        cJSON_ArrayForEach(e, ids) want[i++] = (int32_t)e->valueint;
        size_t tl = strlen(text->valuestring);
        int k = encode(t, text->valuestring, tl, &got, err, sizeof err);
        int ok = k == nw && memcmp(got, want, sizeof(int32_t) * (size_t)nw) == 0;
        int dec = decodes_to(t, want, nw, text->valuestring, tl);
        /* an added token on its own: resolution by text must give the same id */
        int byname = 1;
        if (!strcmp(cat->valuestring, "added-token")) byname = nw == 1 && dsv4_token_id(t, text->valuestring) == want[0];
        if (ok && dec && byname) cats[c].pass++;
        else {
            cats[c].fail++;
            if (shown++ < 15) {
                printf("FAIL %s:%d [%s] %s%s%s text=", gold, lineno, cat->valuestring, ok ? "" : "ids differ ",
                       dec ? "" : "decode(ids) != text ", byname ? "" : "dsv4_token_id(text) != id ");
                char *js = cJSON_PrintUnformatted(text); printf("%.200s\n", js); free(js);
                if (k < 0) printf("  encode error: %s\n", err); else print_ids("C   ", got, k);
                print_ids("gold", want, nw);
            }
        }
        /* llama.cpp fingerprint, computed here from the C ids */
        const cJSON *fp = cJSON_GetObjectItemCaseSensitive(o, "sha256_py_str");
        if (cJSON_IsString(fp) && k >= 0) {
            char hex[65]; py_list_sha(got, k, hex);
            CHECK(strcmp(hex, fp->valuestring) == 0, "%s: llama.cpp DeepSeek-V3 fingerprint: sha256(str(ids)) = %s, want %s", gold, hex, fp->valuestring);
            CHECK(strncmp(hex, "877081d1", 8) == 0, "fingerprint is not llama.cpp's deepseek-v3 877081d1...aeb5");
        }
        free(want); free(got); cJSON_Delete(o);
        nvec++;
    }
    free(buf);
    for (int c = 0; c < ncat; c++) {
        printf("%s %-16s %5d / %5d vectors exact (ids + decode)\n", gold, cats[c].name, cats[c].pass, cats[c].pass + cats[c].fail);
        CHECK(cats[c].fail == 0, "%s: category %s: %d of %d vectors differ", gold, cats[c].name, cats[c].fail, cats[c].pass + cats[c].fail);
    }
    return nvec;
}

/* ------------------------------------------------------------------ V4-specific checks */
static void v4_checks(const dsv4_tokenizer *t) {
    CHECK(dsv4_tokenizer_vocab_size(t) == 129280, "V4 vocab size %d, want 129280 (docs/encoding.md §2)", dsv4_tokenizer_vocab_size(t));
    int unassigned = 0; size_t l;
    for (int32_t id = 0; id < 129280; id++) if (!dsv4_token_bytes(t, id, &l)) unassigned++;
    CHECK(unassigned == 0, "V4: %d ids in 0..129279 have no token (docs/encoding.md §2: all in use)", unassigned);
    /* special tokens resolved by text; the ids are the docs/encoding.md §1 table */
    static const struct { const char *text; int32_t id; } sp[] = {
        {"<｜begin▁of▁sentence｜>", 0}, {"<｜end▁of▁sentence｜>", 1}, {"<｜User｜>", 128803}, {"<｜Assistant｜>", 128804},
        {"<think>", 128821}, {"</think>", 128822}, {"｜DSML｜", 128825}, {"<｜latest_reminder｜>", 128828},
        {"<｜action｜>", 128829}, {"<｜query｜>", 128830}, {"<｜authority｜>", 128831}, {"<｜domain｜>", 128832},
        {"<｜title｜>", 128836}, {"<｜extracted_url｜>", 128844}, {"<｜read_url｜>", 128845},
        {"<|place_holder_mm_span_0021|>", 128847}, {"<|place_holder_mm_span_0435|>", 129261}, {"<｜image｜>", 129279}};
    for (size_t i = 0; i < sizeof sp / sizeof sp[0]; i++)
        CHECK(dsv4_token_id(t, sp[i].text) == sp[i].id, "V4 token_id(%s) = %d, want %d", sp[i].text, (int)dsv4_token_id(t, sp[i].text), (int)sp[i].id);

    /* official DeepSeek API prompt-token counts (V4-Flash, thinking disabled): BOS <｜User｜> prompt <｜Assistant｜></think> */
    static const char *names[] = {"short_italian_fact", "short_code_completion", "short_reasoning_plain", "long_memory_archive", "long_code_audit"};
    for (size_t i = 0; i < 5; i++) {
        char p[512]; size_t n; char err[256];
        snprintf(p, sizeof p, "%s/%s.official.json", OFFICIAL, names[i]);
        char *js = test_read_file(p, &n);
        cJSON *o = js ? cJSON_Parse(js) : NULL;
        const cJSON *pr = cJSON_GetObjectItemCaseSensitive(o, "prompt");
        const cJSON *pt = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "usage"), "prompt_tokens");
        if (!cJSON_IsString(pr) || !cJSON_IsNumber(pt)) { CHECK(0, "%s: unreadable (prompt, usage.prompt_tokens)", p); cJSON_Delete(o); free(js); continue; }
        size_t pl = strlen(pr->valuestring);
        char *full = malloc(pl + 128);
        int fl = sprintf(full, "<｜begin▁of▁sentence｜><｜User｜>%s<｜Assistant｜></think>", pr->valuestring);
        int k = dsv4_tokenize(t, full, (size_t)fl, NULL, 0, err, sizeof err);
        CHECK(k == pt->valueint, "%s: %d tokens, the official API counted %d", names[i], k, pt->valueint);
        free(full); cJSON_Delete(o); free(js);
    }
}

/* ------------------------------------------------------------------ invalid UTF-8 (documented in include/dsv4.h) */
static void invalid_utf8(const dsv4_tokenizer *t) {
    static const struct { const char *s; size_t n; size_t off; const char *why; } bad[] = {
        {"\x80", 1, 0, "lone continuation byte"},
        {"abc\xff", 4, 3, "0xFF"},
        {"ok \xc0\x80", 5, 3, "overlong NUL"},
        {"\xc1\xbf", 2, 0, "overlong 2-byte"},
        {"\xe0\x80\xaf", 3, 0, "overlong 3-byte"},
        {"\xf0\x80\x80\xaf", 4, 0, "overlong 4-byte"},
        {"x\xed\xa0\x80y", 5, 1, "UTF-16 surrogate U+D800"},
        {"\xf4\x90\x80\x80", 4, 0, "above U+10FFFF"},
        {"\xf5\x80\x80\x80", 4, 0, "0xF5 lead"},
        {"你好\xe4\xbd", 8, 6, "truncated 3-byte sequence at the end"},
        {"a\xe4\xbd" "b", 4, 1, "truncated sequence followed by ASCII"},
        {"<｜User｜>\xa0", 13, 12, "bad byte right after an added token"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[256] = "", want[64];
        int32_t ids[64];
        int k = dsv4_tokenize(t, bad[i].s, bad[i].n, ids, 64, err, sizeof err);
        snprintf(want, sizeof want, "byte offset %zu", bad[i].off);
        CHECK(k == -1 && strstr(err, "invalid UTF-8") && strstr(err, want), "invalid UTF-8 (%s): got %d, err \"%s\", want -1 and \"%s\"",
              bad[i].why, k, err, want);
    }
    /* valid edge cases are accepted and round-trip */
    static const struct { const char *s; size_t n; } good[] = {
        {"a\0b", 3}, {"\xf4\x8f\xbf\xbf", 4}, {"\xef\xbf\xbf", 3}, {"\xed\x9f\xbf", 3}, {"\xee\x80\x80", 3}, {"", 0}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char err[256] = ""; int32_t *ids;
        int k = encode(t, good[i].s, good[i].n, &ids, err, sizeof err);
        CHECK(k >= 0 && decodes_to(t, ids, k, good[i].s, good[i].n), "valid edge case %zu rejected or not round-tripped: %s", i, err);
        free(ids);
    }
}

int main(void) {
    const char *p3 = getenv("DSV4_TOK_V3") ? getenv("DSV4_TOK_V3") : "vendor/deepseek-v3-tokenizer/tokenizer.json";
    const char *p4 = getenv("DSV4_TOK_V4") ? getenv("DSV4_TOK_V4") : "build/v4-tokenizer.json";
    char err[512];
    dsv4_tokenizer *t3 = NULL, *t4 = NULL;
    CHECK(dsv4_tokenizer_load(&t3, p3, err, sizeof err) == 0, "load %s: %s", p3, err);
    if (t3) {
        int n = run_golden(t3, GOLD_V3, p3);
        CHECK(n >= 2000, "%s: only %d vectors", GOLD_V3, n);
        invalid_utf8(t3);
    }
    if (dsv4_tokenizer_load(&t4, p4, err, sizeof err) != 0) {
        CHECK(0, "load %s: %s (build it with `make build/v4-tokenizer.json`)", p4, err);
    } else {
        run_golden(t4, GOLD_V4, p4);
        v4_checks(t4);
        invalid_utf8(t4);
    }
    dsv4_tokenizer_free(t3); dsv4_tokenizer_free(t4);
    return test_done();
}
