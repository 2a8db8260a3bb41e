/* tests/test_chat_parse.c — DeepSeek-V4 output parser (include/dsv4_parse.h) and the tool-call registry.
 *
 * Every case is parsed whole, one byte at a time and with 40 random splits; the results must be identical,
 * the concatenated deltas must equal the result fields, and no delta boundary may fall inside a UTF-8
 * character or inside a marker ("</think>", the DSML token, BOS/EOS, ...). Then the expected fields are
 * checked. Spec: docs/encoding.md §4.2, §4.5, §9.10.
 * DeepSeek-V4.1 format (§10.4): every hand-written case and every golden, with its DSML tags respelled the V4.1 way,
 * must parse in V4.1 mode to the V4 result respelled the same way (all splits again); a block in the other format's
 * spelling is content; direct V4.1 cases check the fields (test_v41).
 */
#include "dsv4_parse.h"
#include "dsv4_chat.h"
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testlib.h"

#define EOS "<｜end▁of▁sentence｜>"
#define BOS "<｜begin▁of▁sentence｜>"
#define D "｜DSML｜"
#define TCS "\n\n<" D "tool_calls>\n"
#define TCE "</" D "tool_calls>"
#define INV(name) "<" D "invoke name=\"" name "\">\n"
#define INVE "</" D "invoke>"
#define PS(k, v) "<" D "parameter name=\"" k "\" string=\"true\">" v "</" D "parameter>"
#define PN(k, v) "<" D "parameter name=\"" k "\" string=\"false\">" v "</" D "parameter>"
#define SLEN(lit) (sizeof(lit) - 1)  /* byte length of a string literal */

/* ------------------------------------------------------------------ event collection */
typedef struct {
    char *s[2]; size_t n[2];           /* reasoning, content */
    size_t bounds[2][4096]; int nb[2]; /* cumulative lengths after each feed-time delta */
    int in_close;
    int ncalls_ev;
    char ids[16][32];
} coll_t;

static void on_ev(void *u, const dsv4_parse_event *ev) {
    coll_t *c = u;
    if (ev->kind == DSV4_EV_TOOL_CALL) {
        if (ev->index == c->ncalls_ev && c->ncalls_ev < 16) snprintf(c->ids[c->ncalls_ev], 32, "%s", ev->call->id);
        c->ncalls_ev++;
        return;
    }
    int k = ev->kind == DSV4_EV_REASONING ? 0 : 1;
    c->s[k] = realloc(c->s[k], c->n[k] + ev->len + 1);
    memcpy(c->s[k] + c->n[k], ev->text, ev->len);
    c->n[k] += ev->len;
    c->s[k][c->n[k]] = 0;
    if (c->nb[k] < 4096) c->bounds[k][c->nb[k]++] = c->n[k];
}

static const char *marks[] = { "</think>", "<think>", D, "<" D, "</" D, BOS, EOS, "\n\n<" D "tool_calls",
                                "\n\n<" D " calls" };

/* boundaries strictly inside a UTF-8 character or a marker occurrence? */
static int bad_boundary(const char *s, size_t n, const size_t *b, int nb) {
    for (int i = 0; i < nb; i++) {
        size_t x = b[i];
        if (x == 0 || x >= n) continue;
        if (((unsigned char)s[x] & 0xC0) == 0x80) return 1;
        for (size_t m = 0; m < sizeof marks / sizeof *marks; m++) {
            size_t ml = strlen(marks[m]);
            for (size_t st = x >= ml ? x - ml + 1 : 0; st < x; st++)
                if (st + ml <= n && !memcmp(s + st, marks[m], ml)) return 1;
        }
    }
    return 0;
}

static uint64_t rng_state;
static dsv4_chat_format split_format;  /* the format run_split parses in (DSV4_FORMAT_V4 unless test_v41 sets it) */
static uint64_t rng(void) { rng_state ^= rng_state << 13; rng_state ^= rng_state >> 7; rng_state ^= rng_state << 17; return rng_state; }

/* mode 0: whole, 1: bytewise, 2+: random chunks */
static int run_split(const char *text, size_t len, int thinking, int mode, dsv4_parse_result *out, coll_t *c) {
    memset(c, 0, sizeof *c);
    dsv4_parser *p = dsv4_parser_new(thinking);
    if (!p) return -1;
    if (dsv4_parser_set_format(p, split_format)) { dsv4_parser_free(p); return -1; }
    size_t i = 0;
    while (i < len) {
        size_t k = mode == 0 ? len - i : mode == 1 ? 1 : 1 + rng() % 9;
        if (k > len - i) k = len - i;
        if (dsv4_parser_feed(p, text + i, k, on_ev, c)) { dsv4_parser_free(p); return -1; }
        i += k;
    }
    c->in_close = 1;
    int nb0 = c->nb[0], nb1 = c->nb[1];
    if (dsv4_parser_close(p, on_ev, c)) { dsv4_parser_free(p); return -1; }
    c->nb[0] = nb0; c->nb[1] = nb1;  /* close-time flushes end at the end of the text: not checked */
    int rc = dsv4_parser_finish(p, out);
    dsv4_parser_free(p);
    return rc;
}

static int same_str(const char *a, size_t an, const char *b, size_t bn) {
    return an == bn && (an == 0 || !memcmp(a, b, an));
}
static int same_result(const dsv4_parse_result *a, const dsv4_parse_result *b) {
    if (!same_str(a->reasoning_content, a->reasoning_len, b->reasoning_content, b->reasoning_len)) return 0;
    if (!same_str(a->content, a->content_len, b->content, b->content_len)) return 0;
    if (a->n_tool_calls != b->n_tool_calls || a->saw_eos != b->saw_eos || a->saw_think_end != b->saw_think_end ||
        a->block_failed != b->block_failed) return 0;
    if ((a->warnings == NULL) != (b->warnings == NULL) || (a->warnings && strcmp(a->warnings, b->warnings))) return 0;
    for (int k = 0; k < a->n_tool_calls; k++) {
        const dsv4_tool_call *x = &a->tool_calls[k], *y = &b->tool_calls[k];
        if (strcmp(x->id, y->id) || !same_str(x->name, x->name_len, y->name, y->name_len) ||
            !same_str(x->arguments, x->arguments_len, y->arguments, y->arguments_len) ||
            x->valid_json != y->valid_json || !same_str(x->raw, x->raw_len, y->raw, y->raw_len)) return 0;
    }
    return 1;
}

typedef struct {
    const char *name;
    int thinking;
    const char *text;
    const char *reasoning, *content;  /* expected */
    int ncalls;
    const char *call_name[3], *call_args[3];
    int valid_json0;                  /* expected valid_json of call 0 (when ncalls > 0) */
    const char *warn;                 /* NULL: no warnings; else a substring of the warnings */
    int block_failed;
} tcase;

/* Parse with all splits, check consistency, return the whole-text result in *out. */
static void check_case(const tcase *t, dsv4_parse_result *out) {
    size_t len = strlen(t->text);
    dsv4_parse_result r0;
    coll_t *c = malloc(sizeof *c);
    int rc = run_split(t->text, len, t->thinking, 0, &r0, c);
    CHECK(rc == 0, "%s: parse failed", t->name);
    free(c->s[0]); free(c->s[1]);
    if (rc) { free(c); return; }
    int splits_ok = 1, deltas_ok = 1, bounds_ok = 1;
    for (int mode = 0; mode < 42; mode++) {
        dsv4_parse_result r;
        if (run_split(t->text, len, t->thinking, mode, &r, c)) { splits_ok = 0; break; }
        if (!same_result(&r0, &r)) splits_ok = 0;
        if (!same_str(c->s[0] ? c->s[0] : "", c->n[0], r.reasoning_content, r.reasoning_len) ||
            !same_str(c->s[1] ? c->s[1] : "", c->n[1], r.content, r.content_len) || c->ncalls_ev != r.n_tool_calls)
            deltas_ok = 0;
        for (int k = 0; k < r.n_tool_calls && k < 16; k++) if (strcmp(c->ids[k], r.tool_calls[k].id)) deltas_ok = 0;
        if (bad_boundary(r.reasoning_content, r.reasoning_len, c->bounds[0], c->nb[0]) ||
            bad_boundary(r.content, r.content_len, c->bounds[1], c->nb[1])) {
            if (bounds_ok) printf("  (%s: bad delta boundary with split mode %d)\n", t->name, mode);
            bounds_ok = 0;
        }
        free(c->s[0]); free(c->s[1]);
        dsv4_parse_result_free(&r);
    }
    free(c);
    CHECK(splits_ok, "%s: result differs between splits", t->name);
    CHECK(deltas_ok, "%s: deltas do not add up to the result", t->name);
    CHECK(bounds_ok, "%s: a delta boundary splits a UTF-8 character or a marker", t->name);
    if (t->reasoning) CHECK(!strcmp(r0.reasoning_content, t->reasoning), "%s: reasoning [%s] want [%s]", t->name, r0.reasoning_content, t->reasoning);
    if (t->content) CHECK(!strcmp(r0.content, t->content), "%s: content [%s] want [%s]", t->name, r0.content, t->content);
    CHECK(r0.n_tool_calls == t->ncalls, "%s: %d tool calls, want %d", t->name, r0.n_tool_calls, t->ncalls);
    for (int k = 0; k < t->ncalls && k < r0.n_tool_calls && k < 3; k++) {
        if (t->call_name[k]) CHECK(!strcmp(r0.tool_calls[k].name, t->call_name[k]), "%s: call %d name [%s]", t->name, k, r0.tool_calls[k].name);
        if (t->call_args[k]) CHECK(!strcmp(r0.tool_calls[k].arguments, t->call_args[k]), "%s: call %d args [%s] want [%s]",
                                   t->name, k, r0.tool_calls[k].arguments, t->call_args[k]);
        CHECK(!strncmp(r0.tool_calls[k].id, "call_", 5) && strlen(r0.tool_calls[k].id) == 21, "%s: id %s", t->name, r0.tool_calls[k].id);
        CHECK(r0.tool_calls[k].name_len == strlen(r0.tool_calls[k].name) &&
              r0.tool_calls[k].arguments_len == strlen(r0.tool_calls[k].arguments),
              "%s: call %d name_len %zu / arguments_len %zu", t->name, k, r0.tool_calls[k].name_len, r0.tool_calls[k].arguments_len);
        size_t rl = 0;
        const char *reg = dsv4_toolcall_raw(r0.tool_calls[k].id, &rl);
        if (r0.warnings && strstr(r0.warnings, "cut by the end") && k == r0.n_tool_calls - 1) {
            /* the last call of a block cut by the end of the stream: partial raw bytes, not registered */
            CHECK(!strncmp(r0.tool_calls[k].raw, "<" D "invoke", strlen("<" D "invoke")) && !reg,
                  "%s: truncated call %d: raw bytes / not registered", t->name, k);
            continue;
        }
        CHECK(!strncmp(r0.tool_calls[k].raw, "<" D "invoke", strlen("<" D "invoke")) &&
              r0.tool_calls[k].raw_len > strlen(INVE) &&
              !strcmp(r0.tool_calls[k].raw + r0.tool_calls[k].raw_len - strlen(INVE), INVE), "%s: raw bytes of call %d", t->name, k);
        CHECK(reg && rl == r0.tool_calls[k].raw_len && !memcmp(reg, r0.tool_calls[k].raw, rl), "%s: registry holds call %d", t->name, k);
    }
    if (t->ncalls > 0 && r0.n_tool_calls > 0)
        CHECK(r0.tool_calls[0].valid_json == t->valid_json0, "%s: valid_json %d", t->name, r0.tool_calls[0].valid_json);
    if (!t->warn) CHECK(r0.warnings == NULL, "%s: unexpected warnings: %s", t->name, r0.warnings);
    else CHECK(r0.warnings && strstr(r0.warnings, t->warn), "%s: warnings [%s] lack [%s]", t->name,
               r0.warnings ? r0.warnings : "(none)", t->warn);
    CHECK(r0.block_failed == t->block_failed, "%s: block_failed %d", t->name, r0.block_failed);
    if (out) *out = r0;
    else dsv4_parse_result_free(&r0);
}

/* ------------------------------------------------------------------ cases */
#define WEATHER_BLOCK TCS INV("get_weather") PS("location", "Beijing") "\n" PS("unit", "celsius") "\n" INVE "\n" TCE

static const tcase cases[] = {
    /* ---- valid */
    { "chat plain", 0, "Hello, world!", "", "Hello, world!", 0, {0}, {0}, 1, NULL, 0 },
    { "chat with EOS", 0, "Hi there! How can I help you?" EOS, "", "Hi there! How can I help you?", 0, {0}, {0}, 1, NULL, 0 },
    { "chat empty", 0, "", "", "", 0, {0}, {0}, 1, NULL, 0 },
    { "thinking + answer (golden §3.6)", 1,
      "The user asks about the capital of France. It is Paris.</think>The capital of France is Paris." EOS,
      "The user asks about the capital of France. It is Paris.", "The capital of France is Paris.", 0, {0}, {0}, 1, NULL, 0 },
    { "thinking + tool call (golden §3.6)", 1,
      "The user wants to know the weather in Beijing. I should use the get_weather tool.</think>" WEATHER_BLOCK EOS,
      "The user wants to know the weather in Beijing. I should use the get_weather tool.", "", 1,
      {"get_weather"}, {"{\"location\": \"Beijing\", \"unit\": \"celsius\"}"}, 1, NULL, 0 },
    { "chat single call, content before", 0, "Let me check." WEATHER_BLOCK EOS, "", "Let me check.", 1,
      {"get_weather"}, {"{\"location\": \"Beijing\", \"unit\": \"celsius\"}"}, 1, NULL, 0 },
    { "block without EOS (§9.10)", 0, WEATHER_BLOCK, "", "", 1, {"get_weather"}, {0}, 1, NULL, 0 },
    { "parallel calls", 0,
      TCS INV("a") PS("x", "1") "\n" INVE "\n" INV("b") PN("y", "2") "\n" INVE "\n" INV("c") PN("z", "[1, 2]") "\n" INVE "\n" TCE EOS,
      "", "", 3, {"a", "b", "c"}, {"{\"x\": \"1\"}", "{\"y\": 2}", "{\"z\": [1, 2]}"}, 1, NULL, 0 },
    { "nested JSON values", 0,
      TCS INV("f") PN("obj", "{\"a\": [1, {\"b\": null}], \"c\": \"x\"}") "\n" PN("n", "-1.5e3") "\n" PN("t", "true") "\n"
      PS("s", "plain") "\n" INVE "\n" TCE,
      "", "", 1, {"f"}, {"{\"obj\": {\"a\": [1, {\"b\": null}], \"c\": \"x\"}, \"n\": -1.5e3, \"t\": true, \"s\": \"plain\"}"}, 1, NULL, 0 },
    { "unicode", 1, "思考…</think>好的😀" TCS INV("搜索") PS("查询", "北京 ☃ 😀 ｜") "\n" INVE "\n" TCE EOS,
      "思考…", "好的😀", 1, {"搜索"}, {"{\"查询\": \"北京 ☃ 😀 ｜\"}"}, 1, NULL, 0 },
    { "quotes, backslashes, control chars", 0,
      TCS INV("w") PS("path", "C:\\dir\\\"q\"\n\tline\x01\x1f\x7f end") "\n" INVE "\n" TCE,
      "", "", 1, {"w"}, {"{\"path\": \"C:\\\\dir\\\\\\\"q\\\"\\n\\tline\\u0001\\u001f\x7f end\"}"}, 1, NULL, 0 },
    { "value with < > and DSML-like text", 0,
      TCS INV("e") PS("code", "if (a < b) { x = \"</tag>\"; }\n<" D "invoke name=\"no\">") "\n" INVE "\n" TCE,
      "", "", 1, {"e"}, {"{\"code\": \"if (a < b) { x = \\\"</tag>\\\"; }\\n<" D "invoke name=\\\"no\\\">\"}"}, 1, NULL, 0 },
    { "invoke without parameters", 0, TCS INV("now") INVE "\n" TCE EOS, "", "", 1, {"now"}, {"{}"}, 1, NULL, 0 },
    { "whitespace before name= (§9.10)", 0, TCS "<" D "invoke \t name=\"ws\">\n" PS("k", "v") "\n" INVE "\n" TCE, "", "",
      1, {"ws"}, {"{\"k\": \"v\"}"}, 1, NULL, 0 },
    { "empty key and value", 0, TCS INV("e") PS("", "") "\n" INVE "\n" TCE, "", "", 1, {"e"}, {"{\"\": \"\"}"}, 1, NULL, 0 },
    { "string=false invalid JSON flagged", 0, TCS INV("g") PN("list", "[1, 2") "\n" INVE "\n" TCE EOS, "", "", 1,
      {"g"}, {"{\"list\": [1, 2}"}, 0, "not valid JSON", 0 },
    /* issue 8 fuzzing: cJSON skips control bytes as whitespace; JSON has none outside strings */
    { "string=false value with a control byte is not JSON", 0, TCS INV("g") PN("list", "[1,\x01 2]") "\n" INVE "\n" TCE
      EOS, "", "", 1, {"g"}, {"{\"list\": [1,\x01 2]}"}, 0, "not valid JSON", 0 },
    { "content with newlines and a lone <", 0, "a\n\nb < c\n\n<x>\n", "", "a\n\nb < c\n\n<x>\n", 0, {0}, {0}, 1, NULL, 0 },
    { "content ending in a marker prefix", 0, "abc\n\n<" D "tool", "", "abc\n\n<" D "tool", 0, {0}, {0}, 1, "DSML token", 0 },
    { "content ending in a partial </think>", 0, "abc</thi", "", "abc</thi", 0, {0}, {0}, 1, NULL, 0 },
    { "incomplete UTF-8 at the very end kept", 0, "ab\xE5\x8C", "", "ab\xE5\x8C", 0, {0}, {0}, 1, NULL, 0 },
    { "three newlines before block", 0, "x\n" WEATHER_BLOCK, "", "x\n", 1, {"get_weather"}, {0}, 1, NULL, 0 },
    /* ---- accepted like the official parser (found by tools/chat/parse_diff.py) */
    { "EOS inside a value", 0, "c" TCS INV("f") PS("a", "x" EOS "y") "\n" INVE "\n" TCE EOS, "", "c", 1, {"f"},
      {"{\"a\": \"x" EOS "y\"}"}, 1, NULL, 0 },
    { "EOS inside a value, text after the final EOS", 0, TCS INV("f") PS("a", EOS) "\n" INVE "\n" TCE EOS "tail", "", "tail", 1,
      {"f"}, {"{\"a\": \"" EOS "\"}"}, 1, "after the end-of-sentence", 0 },
    { "EOS inside a name and a string=false value", 0, TCS INV("f" EOS) PN("n", "1" EOS) "\n" INVE "\n" TCE, "", "", 1,
      {"f" EOS}, {"{\"n\": 1" EOS "}"}, 0, "not valid JSON", 0 },
    { "EOS inside an unclosed value: cut there, rest appended", 0, "c" TCS INV("f") "<" D "parameter name=\"a\" string=\"true\">x" EOS "y", "",
      "c" TCS INV("f") "<" D "parameter name=\"a\" string=\"true\">xy", 0, {0}, {0}, 1, "after the end-of-sentence", 1 },
    { "unicode whitespace before name=", 0, TCS "<" D "invoke\u3000\u00a0\u2028\u1680\u205f\u202f\u200a name=\"u\">\n" INVE "\n" TCE EOS,
      "", "", 1, {"u"}, {"{}"}, 1, NULL, 0 },
    { "U+0085 before name=", 0, TCS "<" D "invoke\xC2\x85" "name=\"u\">\n" INVE "\n" TCE EOS, "", "", 1, {"u"}, {"{}"}, 1, NULL, 0 },
    { "zero-width space is not whitespace", 0, TCS "<" D "invoke\u200bname=\"u\">\n" INVE "\n" TCE EOS, "",
      TCS "<" D "invoke\u200bname=\"u\">\n" INVE "\n" TCE, 0, {0}, {0}, 1, "invoke header", 1 },
    { "cut right after the block marker", 0, "pre\n\n<" D "tool_calls", "", "pre", 0, {0}, {0}, 1, "without any invoke", 0 },
    { "cut right after an invoke header", 1, "r</think>" TCS INV("f"), "r", "", 1, {"f"}, {"{}"}, 1, "cut by the end", 0 },
    { "cut right after a parameter", 0, TCS INV("f") PS("a", "1") "\n", "", "", 1, {"f"}, {"{\"a\": \"1\"}"}, 1, "cut by the end", 0 },
    { "cut right after </invoke (no >)", 0, "c" TCS INV("f") PS("a", "1") "\n" INVE "\n" INV("g") "</" D "invoke", "", "c", 2,
      {"f", "g"}, {"{\"a\": \"1\"}", "{}"}, 1, "cut by the end", 0 },
    /* ---- malformed: fall back to content, raw text preserved */
    { "cut after </invoke>", 0, "c" TCS INV("f") INVE, "", "c" TCS INV("f") INVE, 0, {0}, {0}, 1, "not closed", 1 },
    { "cut after an invoke header + EOS", 0, "c" TCS INV("f") EOS, "", "c" TCS INV("f"), 0, {0}, {0}, 1, "not closed", 1 },
    { "cut after a parameter + EOS", 0, "c" TCS INV("f") PS("a", "1") "\n" EOS, "", "c" TCS INV("f") PS("a", "1") "\n", 0, {0}, {0},
      1, "unexpected text after parameter", 1 },
    { "marker + EOS", 0, "c\n\n<" D "tool_calls" EOS, "", "c\n\n<" D "tool_calls", 0, {0}, {0}, 1, "unexpected text", 1 },
    { "missing </tool_calls> (truncated)", 0, "pre" TCS INV("f") PS("a", "1") "\n" INVE "\n", "",
      "pre" TCS INV("f") PS("a", "1") "\n" INVE "\n", 0, {0}, {0}, 1, "not closed", 1 },
    { "missing </invoke>", 0, TCS INV("f") PS("a", "1") "\n" TCE EOS, "", TCS INV("f") PS("a", "1") "\n" TCE, 0, {0}, {0}, 1,
      "malformed", 1 },
    { "missing </parameter>", 0, TCS INV("f") "<" D "parameter name=\"a\" string=\"true\">1\n" INVE "\n" TCE EOS, "",
      TCS INV("f") "<" D "parameter name=\"a\" string=\"true\">1\n" INVE "\n" TCE, 0, {0}, {0}, 1, "not closed", 1 },
    { "bad string attribute", 0, TCS INV("f") "<" D "parameter name=\"a\" string=\"maybe\">1</" D "parameter>\n" INVE "\n" TCE,
      "", TCS INV("f") "<" D "parameter name=\"a\" string=\"maybe\">1</" D "parameter>\n" INVE "\n" TCE, 0, {0}, {0}, 1,
      "string=", 1 },
    { "missing string attribute", 0, TCS INV("f") "<" D "parameter name=\"a\">1</" D "parameter>\n" INVE "\n" TCE, "",
      TCS INV("f") "<" D "parameter name=\"a\">1</" D "parameter>\n" INVE "\n" TCE, 0, {0}, {0}, 1, "bad parameter", 1 },
    { "bad invoke header", 0, TCS "<" D "invoke nam=\"f\">\n" INVE "\n" TCE, "", TCS "<" D "invoke nam=\"f\">\n" INVE "\n" TCE,
      0, {0}, {0}, 1, "invoke header", 1 },
    { "unknown tag in block", 0, TCS "<" D "frobnicate>\n" INV("f") INVE "\n" TCE EOS, "",
      TCS "<" D "frobnicate>\n" INV("f") INVE "\n" TCE, 0, {0}, {0}, 1, "unexpected text", 1 },
    { "duplicate parameter names", 0, TCS INV("f") PS("a", "1") "\n" PS("a", "2") "\n" INVE "\n" TCE EOS, "",
      TCS INV("f") PS("a", "1") "\n" PS("a", "2") "\n" INVE "\n" TCE, 0, {0}, {0}, 1, "duplicate parameter", 1 },
    { "EOS inside a call", 0, "c" TCS INV("f") "<" D "parameter name=\"a\" string=\"true\">xy" EOS, "",
      "c" TCS INV("f") "<" D "parameter name=\"a\" string=\"true\">xy", 0, {0}, {0}, 1, "not closed", 1 },
    { "text after the block", 0, "c" WEATHER_BLOCK "trailing words" EOS, "", "c" WEATHER_BLOCK "trailing words", 0, {0}, {0},
      1, "text after", 1 },
    { "text after the block, then another block", 0, WEATHER_BLOCK "x" WEATHER_BLOCK, "", WEATHER_BLOCK "x" WEATHER_BLOCK,
      0, {0}, {0}, 1, "text after", 1 },
    { "DSML token inside content (no blank line)", 0, "See <" D "tool_calls> here" EOS, "", "See <" D "tool_calls> here", 0,
      {0}, {0}, 1, "content contains the DSML token", 0 },
    { "garbage right after the block marker", 0, "a\n\n<" D "tool_callsXYZ more text", "",
      "a\n\n<" D "tool_callsXYZ more text", 0, {0}, {0}, 1, "unexpected text", 1 },
    { "empty block (official: no calls)", 0, "\n\n<" D "tool_calls>\n" TCE, "", "", 0, {0}, {0}, 1, "without any invoke", 0 },
    { "empty block, content, EOS", 1, "r</think>c\n\n<" D "tool_calls>\n" TCE EOS, "r", "c", 0, {0}, {0}, 1, "without any invoke", 0 },
    { "truncated mid value (end of stream)", 1, "r</think>" TCS INV("f") "<" D "parameter name=\"a\" string=\"true\">par", "r",
      TCS INV("f") "<" D "parameter name=\"a\" string=\"true\">par", 0, {0}, {0}, 1, "not closed", 1 },
    { "thinking without </think>", 1, "still thinking about it", "still thinking about it", "", 0, {0}, {0}, 1,
      "reasoning not terminated", 0 },
    { "thinking without </think>, EOS", 1, "hmm" EOS, "hmm", "", 0, {0}, {0}, 1, "reasoning not terminated", 0 },
    { "tool block inside reasoning", 1, "plan" WEATHER_BLOCK EOS, "plan", "", 1, {"get_weather"}, {0}, 1, "inside reasoning", 0 },
    { "</think> inside content", 1, "r</think>a</think>b", "r", "a</think>b", 0, {0}, {0}, 1, "content contains </think>", 0 },
    { "<think> inside reasoning", 1, "<think>r</think>a", "<think>r", "a", 0, {0}, {0}, 1, "reasoning_content contains <think>", 0 },
    { "BOS inside content", 0, "x" BOS "y", "", "x" BOS "y", 0, {0}, {0}, 1, "content contains BOS", 0 },
    { "text after EOS", 0, "done" EOS "extra", "", "doneextra", 0, {0}, {0}, 1, "after the end-of-sentence", 0 },
    { "tool calls then text after EOS", 0, WEATHER_BLOCK EOS "zz", "", "zz", 1, {"get_weather"}, {0}, 1, "after the end-of-sentence", 0 },
    { "parameter junk between params", 0, TCS INV("f") PS("a", "1") "junk\n" PS("b", "2") "\n" INVE "\n" TCE, "",
      TCS INV("f") PS("a", "1") "junk\n" PS("b", "2") "\n" INVE "\n" TCE, 0, {0}, {0}, 1, "unexpected text after parameter", 1 },
    { "no newline after invoke header", 0, TCS "<" D "invoke name=\"f\">" PS("a", "1") "\n" INVE "\n" TCE, "",
      TCS "<" D "invoke name=\"f\">" PS("a", "1") "\n" INVE "\n" TCE, 0, {0}, {0}, 1, "invoke header", 1 },
};

/* ------------------------------------------------------------------ goldens of the official parser
 * tests/golden/chat_parse/expected.json + <name>.in, written by tools/chat/parse_diff.py from DeepSeek's
 * parse_message_from_completion_text. kind "accepted": our reasoning_content, content and tool calls (name and
 * arguments, byte-exact) equal the official output; "accepted_with_eos": the official accepts the input only
 * with the EOS text appended (ours accepts a missing EOS), same check against that output; "rejected": ours
 * warns, and without tool calls keeps the input bytes (at most </think>, one EOS and the markup of an empty
 * block are consumed). Every golden is also parsed whole, bytewise and with 8 random splits: same result. */
#define GOLDEN_DIR "tests/golden/chat_parse/"

static const char *jstr(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void test_goldens(void) {
    size_t jn = 0;
    char *js = test_read_file(GOLDEN_DIR "expected.json", &jn);
    CHECK(js != NULL, "goldens: cannot read " GOLDEN_DIR "expected.json");
    if (!js) return;
    cJSON *arr = cJSON_Parse(js);
    free(js);
    CHECK(cJSON_IsArray(arr) && cJSON_GetArraySize(arr) >= 30, "goldens: expected.json is an array of >= 30 cases");
    int n_acc = 0, n_rej = 0, n_ok = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) {
        const char *name = jstr(e, "name"), *kind = jstr(e, "kind");
        int thinking = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "thinking"));
        char path[512];
        size_t len = 0;
        snprintf(path, sizeof path, GOLDEN_DIR "%s.in", name ? name : "?");
        char *text = name && kind ? test_read_file(path, &len) : NULL;
        CHECK(text != NULL, "golden %s: cannot read %s (or no name/kind)", name ? name : "?", path);
        if (!text) continue;
        int fails0 = n_fail;
        dsv4_parse_result r0, r;
        coll_t *c = malloc(sizeof *c);
        int rc = run_split(text, len, thinking, 0, &r0, c);
        free(c->s[0]); free(c->s[1]);
        CHECK(rc == 0, "golden %s: parse failed", name);
        if (rc) { free(c); free(text); continue; }
        int splits_ok = 1, deltas_ok = 1;
        for (int mode = 1; mode < 10; mode++) {
            if (run_split(text, len, thinking, mode, &r, c)) { splits_ok = 0; break; }
            if (!same_result(&r0, &r)) splits_ok = 0;
            if (!same_str(c->s[0] ? c->s[0] : "", c->n[0], r.reasoning_content, r.reasoning_len) ||
                !same_str(c->s[1] ? c->s[1] : "", c->n[1], r.content, r.content_len) || c->ncalls_ev != r.n_tool_calls ||
                bad_boundary(r.reasoning_content, r.reasoning_len, c->bounds[0], c->nb[0]) ||
                bad_boundary(r.content, r.content_len, c->bounds[1], c->nb[1]))
                deltas_ok = 0;
            free(c->s[0]); free(c->s[1]);
            dsv4_parse_result_free(&r);
        }
        free(c);
        CHECK(splits_ok, "golden %s: result differs between splits", name);
        CHECK(deltas_ok, "golden %s: deltas do not add up / bad delta boundary", name);
        if (!strcmp(kind, "accepted") || !strcmp(kind, "accepted_with_eos")) {
            n_acc++;
            const char *er = jstr(e, "reasoning_content"), *ec = jstr(e, "content");
            const cJSON *tcs = cJSON_GetObjectItemCaseSensitive(e, "tool_calls");
            CHECK(er && !strcmp(r0.reasoning_content, er), "golden %s: reasoning_content [%s] want [%s]", name, r0.reasoning_content, er);
            CHECK(ec && !strcmp(r0.content, ec), "golden %s: content [%s] want [%s]", name, r0.content, ec);
            CHECK(r0.n_tool_calls == cJSON_GetArraySize(tcs), "golden %s: %d tool calls, want %d", name, r0.n_tool_calls,
                  cJSON_GetArraySize(tcs));
            for (int k = 0; k < r0.n_tool_calls && k < cJSON_GetArraySize(tcs); k++) {
                const cJSON *tc = cJSON_GetArrayItem(tcs, k);
                const char *nm = jstr(tc, "name"), *ar = jstr(tc, "arguments");
                CHECK(nm && !strcmp(r0.tool_calls[k].name, nm), "golden %s: call %d name [%s] want [%s]", name, k, r0.tool_calls[k].name, nm);
                CHECK(ar && !strcmp(r0.tool_calls[k].arguments, ar), "golden %s: call %d arguments [%s] want [%s]", name, k,
                      r0.tool_calls[k].arguments, ar);
            }
        } else {
            n_rej++;
            CHECK(!strcmp(kind, "rejected"), "golden %s: unknown kind %s", name, kind);
            CHECK(r0.warnings != NULL, "golden %s: official rejects (%s) but we give no warning", name, jstr(e, "official_error"));
            if (r0.n_tool_calls == 0) {  /* bytes kept: output histogram within the input's, little consumed */
                size_t hist[256] = {0}, out = r0.reasoning_len + r0.content_len, allowed = strlen("</think>") + strlen(EOS);
                int over = 0;
                for (size_t i = 0; i < len; i++) hist[(unsigned char)text[i]]++;
                for (size_t i = 0; i < r0.reasoning_len; i++) over |= hist[(unsigned char)r0.reasoning_content[i]]-- == 0;
                for (size_t i = 0; i < r0.content_len; i++) over |= hist[(unsigned char)r0.content[i]]-- == 0;
                if (r0.warnings && strstr(r0.warnings, "without any invoke dropped")) allowed += strlen(TCS) + strlen(TCE);
                CHECK(!over && out + allowed >= len, "golden %s: text not preserved (%zu of %zu bytes kept)", name, out, len);
            }
        }
        if (n_fail == fails0) n_ok++;
        dsv4_parse_result_free(&r0);
        free(text);
    }
    printf("goldens: %d accepted + %d rejected by the official parser, %d fully agree\n", n_acc, n_rej, n_ok);
    cJSON_Delete(arr);
}

/* ------------------------------------------------------------------ registry tests */
static void *reg_worker(void *arg) {
    int t = (int)(long)arg, bad = 0;
    char id[64], raw[64];
    for (int i = 0; i < 3000; i++) {
        snprintf(id, sizeof id, "thr%d_%d", t, i % 50);
        snprintf(raw, sizeof raw, "raw-%d-%d", t, i % 50);
        if (dsv4_toolcall_remember(id, raw, strlen(raw))) bad++;
        size_t n = 0;
        char *d = dsv4_toolcall_dup(id, &n);  /* may have been evicted by other threads only if > capacity */
        if (!d || strcmp(d, raw)) bad++;
        free(d);
    }
    return (void *)(long)bad;
}

static void test_registry(void) {
    dsv4_toolcall_clear();
    CHECK(dsv4_toolcall_count() == 0, "registry: clear");
    CHECK(dsv4_toolcall_raw("nope", NULL) == NULL, "registry: unknown id gives NULL");
    CHECK(dsv4_toolcall_remember("", "x", 1) == -1 && dsv4_toolcall_remember(NULL, "x", 1) == -1, "registry: empty id rejected");
    CHECK(dsv4_toolcall_remember("a", "abc", 3) == 0, "registry: remember");
    size_t n = 0;
    const char *r = dsv4_toolcall_raw("a", &n);
    CHECK(r && n == 3 && !strcmp(r, "abc"), "registry: lookup");
    CHECK(dsv4_toolcall_remember("a", "xy\0z", 4) == 0, "registry: replace");
    r = dsv4_toolcall_raw("a", &n);
    CHECK(r && n == 4 && !memcmp(r, "xy\0z", 4) && dsv4_toolcall_count() == 1, "registry: replaced value (binary-safe)");
    /* capacity + LRU: fill to capacity, touch "a", add one more: the oldest untouched ("k0") goes, "a" stays */
    char id[32];
    for (int i = 0; i < DSV4_TOOLCALL_CAPACITY - 1; i++) {
        snprintf(id, sizeof id, "k%d", i);
        dsv4_toolcall_remember(id, id, strlen(id));
    }
    CHECK(dsv4_toolcall_count() == DSV4_TOOLCALL_CAPACITY, "registry: full (%d)", dsv4_toolcall_count());
    dsv4_toolcall_raw("a", NULL);
    dsv4_toolcall_remember("new", "n", 1);
    CHECK(dsv4_toolcall_count() == DSV4_TOOLCALL_CAPACITY, "registry: stays bounded");
    CHECK(dsv4_toolcall_raw("a", NULL) != NULL, "registry: recently used entry kept");
    CHECK(dsv4_toolcall_raw("k0", NULL) == NULL, "registry: least recently used entry evicted");
    CHECK(dsv4_toolcall_raw("k1", NULL) != NULL && dsv4_toolcall_raw("new", NULL) != NULL, "registry: others kept");
    dsv4_toolcall_clear();
    /* threads */
    pthread_t th[4];
    for (long t = 0; t < 4; t++) pthread_create(&th[t], NULL, reg_worker, (void *)t);
    long bad = 0;
    for (int t = 0; t < 4; t++) { void *v; pthread_join(th[t], &v); bad += (long)v; }
    CHECK(bad == 0 && dsv4_toolcall_count() == 200, "registry: 4 threads x 3000 ops (%ld bad, %d entries)", bad, dsv4_toolcall_count());
    dsv4_toolcall_clear();
}

/* ------------------------------------------------------------------ misc */
static void test_misc(void) {
    /* ids: deterministic per text and seed; distinct for identical parallel calls; seed changes them */
    const char *two = TCS INV("f") PS("a", "1") "\n" INVE "\n" INV("f") PS("a", "1") "\n" INVE "\n" TCE;
    dsv4_parse_result a, b;
    dsv4_parse_text(two, strlen(two), 0, &a);
    dsv4_parse_text(two, strlen(two), 0, &b);
    CHECK(a.n_tool_calls == 2 && b.n_tool_calls == 2, "ids: two calls");
    if (a.n_tool_calls == 2 && b.n_tool_calls == 2) {
        CHECK(!strcmp(a.tool_calls[0].id, b.tool_calls[0].id) && !strcmp(a.tool_calls[1].id, b.tool_calls[1].id), "ids: deterministic");
        CHECK(strcmp(a.tool_calls[0].id, a.tool_calls[1].id) != 0, "ids: identical calls get distinct ids");
        dsv4_parser *p = dsv4_parser_new(0);
        dsv4_parser_set_id_seed(p, 7);
        dsv4_parser_feed(p, two, strlen(two), NULL, NULL);
        dsv4_parse_result c;
        dsv4_parser_finish(p, &c);
        dsv4_parser_free(p);
        CHECK(c.n_tool_calls == 2 && strcmp(c.tool_calls[0].id, a.tool_calls[0].id) != 0, "ids: seed changes ids");
        dsv4_parse_result_free(&c);
    }
    dsv4_parse_result_free(&a);
    dsv4_parse_result_free(&b);
    /* NUL bytes in a name and a verbatim (string="false") value: name_len / arguments_len count them */
    {
        static const char nul[] = TCS "<" D "invoke name=\"f\0g\">\n" PN("a", "1\0") "\n" INVE "\n" TCE;
        dsv4_parse_result r;
        CHECK(dsv4_parse_text(nul, sizeof nul - 1, 0, &r) == 0 && r.n_tool_calls == 1, "NUL: one call");
        if (r.n_tool_calls == 1) {
            const dsv4_tool_call *c = &r.tool_calls[0];
            CHECK(c->name_len == 3 && !memcmp(c->name, "f\0g", 3), "NUL: name_len %zu", c->name_len);
            CHECK(c->arguments_len == 9 && !memcmp(c->arguments, "{\"a\": 1\0}", 9), "NUL: arguments_len %zu", c->arguments_len);
        }
        dsv4_parse_result_free(&r);
    }
    /* API misuse never crashes */
    dsv4_parser *p = dsv4_parser_new(1);
    CHECK(dsv4_parser_feed(p, NULL, 3, NULL, NULL) == -1, "feed NULL text with len > 0 refused");
    CHECK(dsv4_parser_feed(p, "x", 1, NULL, NULL) == 0 && dsv4_parser_close(p, NULL, NULL) == 0 &&
          dsv4_parser_close(p, NULL, NULL) == 0, "close idempotent");
    CHECK(dsv4_parser_feed(p, "y", 1, NULL, NULL) == -1, "feed after close refused");
    dsv4_parse_result r;
    CHECK(dsv4_parser_finish(p, &r) == 0 && !strcmp(r.reasoning_content, "x"), "finish after close");
    dsv4_parse_result_free(&r);
    CHECK(dsv4_parser_finish(p, &r) == -1, "second finish refused");
    dsv4_parser_free(p);
    dsv4_parser_free(NULL);
    dsv4_parse_result_free(NULL);
    /* random garbage built from marker pieces: never crashes, splits agree, nothing is lost */
    static const char *pieces[] = { "<", ">", "\n", "\n\n", D, "tool_calls", "invoke", "parameter", " name=\"", "\"",
                                    " string=\"true\"", " string=\"false\"", "/", "</think>", "x", "é", EOS, "{", "1" };
    int ok_split = 1, ok_keep = 1;
    for (int it = 0; it < 400; it++) {
        char text[2048];
        size_t n = 0;
        int np = 1 + (int)(rng() % 60);
        for (int k = 0; k < np; k++) {
            const char *pc = pieces[rng() % (sizeof pieces / sizeof *pieces)];
            size_t l = strlen(pc);
            if (n + l >= sizeof text) break;
            memcpy(text + n, pc, l);
            n += l;
        }
        int th = (int)(rng() % 2);
        dsv4_parse_result r0, r1;
        coll_t *c = malloc(sizeof *c);
        run_split(text, n, th, 0, &r0, c);
        free(c->s[0]); free(c->s[1]);
        run_split(text, n, th, 1, &r1, c);
        free(c->s[0]); free(c->s[1]);
        free(c);
        if (!same_result(&r0, &r1)) ok_split = 0;
        /* without calls, every input byte except markers consumed as syntax shows up: total length bound */
        if (r0.n_tool_calls == 0 && r0.reasoning_len + r0.content_len > n) ok_keep = 0;
        dsv4_parse_result_free(&r0);
        dsv4_parse_result_free(&r1);
    }
    /* a large block: 3 invokes x 300 parameters + a 100 KB value; whole vs bytewise vs 7-byte chunks */
    {
        size_t cap = 400000, n = 0;
        char *t = malloc(cap);
        n += (size_t)snprintf(t + n, cap - n, "%s", "pre" TCS);
        for (int k = 0; k < 3; k++) {
            n += (size_t)snprintf(t + n, cap - n, "<" D "invoke name=\"f%d\">\n", k);
            for (int q = 0; q < 300; q++)
                n += (size_t)snprintf(t + n, cap - n, "<" D "parameter name=\"p%d\" string=\"%s\">%d</" D "parameter>\n",
                                      q, q % 2 ? "true" : "false", q);
            n += (size_t)snprintf(t + n, cap - n, "<" D "parameter name=\"big\" string=\"true\">");
            for (int q = 0; q < 100000; q++) t[n++] = "a<b>\n\"c"[q % 7];
            n += (size_t)snprintf(t + n, cap - n, "</" D "parameter>\n" INVE "\n");
        }
        n += (size_t)snprintf(t + n, cap - n, "%s", TCE);
        dsv4_parse_result r0, r1, r2;
        coll_t *c = malloc(sizeof *c);
        run_split(t, n, 0, 0, &r0, c); free(c->s[0]); free(c->s[1]);
        run_split(t, n, 0, 1, &r1, c); free(c->s[0]); free(c->s[1]);
        dsv4_parser *p = dsv4_parser_new(0);
        for (size_t i = 0; i < n; i += 7) dsv4_parser_feed(p, t + i, n - i < 7 ? n - i : 7, NULL, NULL);
        dsv4_parser_finish(p, &r2);
        dsv4_parser_free(p);
        free(c);
        CHECK(r0.n_tool_calls == 3 && r0.warnings == NULL && !strcmp(r0.content, "pre") && r0.tool_calls[2].valid_json &&
              same_result(&r0, &r1) && same_result(&r0, &r2), "large block (%zu bytes): 3 calls, splits agree", n);
        dsv4_parse_result_free(&r0); dsv4_parse_result_free(&r1); dsv4_parse_result_free(&r2);
        free(t);
    }
    CHECK(ok_split, "fuzz: whole and bytewise parses agree on 400 random marker soups");
    CHECK(ok_keep, "fuzz: output never longer than input");
}

/* ------------------------------------------------------------------ round trip with the prompt encoder
 * parse(model output) -> assistant message -> dsv4_chat_render must reproduce the model's bytes: through the
 * registry (exact invoke bytes, even non-canonical JSON), and through §4.2 serialisation for unknown ids. */
static char *render_with(const char *user, const dsv4_parse_result *r, int thinking, const char *force_id) {
    cJSON *msgs = cJSON_CreateArray(), *um = cJSON_CreateObject(), *am = cJSON_CreateObject();
    cJSON_AddStringToObject(um, "role", "user");
    cJSON_AddStringToObject(um, "content", user);
    cJSON_AddItemToArray(msgs, um);
    cJSON_AddStringToObject(am, "role", "assistant");
    cJSON_AddStringToObject(am, "content", r->content);
    if (thinking) cJSON_AddStringToObject(am, "reasoning_content", r->reasoning_content);
    cJSON *arr = cJSON_AddArrayToObject(am, "tool_calls");
    for (int k = 0; k < r->n_tool_calls; k++) {
        cJSON *tc = cJSON_CreateObject(), *fn = cJSON_CreateObject();
        cJSON_AddStringToObject(tc, "id", force_id ? force_id : r->tool_calls[k].id);
        cJSON_AddStringToObject(tc, "type", "function");
        cJSON_AddStringToObject(fn, "name", r->tool_calls[k].name);
        cJSON_AddStringToObject(fn, "arguments", r->tool_calls[k].arguments);
        cJSON_AddItemToObject(tc, "function", fn);
        cJSON_AddItemToArray(arr, tc);
    }
    cJSON_AddItemToArray(msgs, am);
    char *json = cJSON_PrintUnformatted(msgs);
    cJSON_Delete(msgs);
    dsv4_render_opts o = { .thinking = thinking };
    char *out = NULL, err[256];
    size_t n;
    if (dsv4_chat_render(json, strlen(json), &o, &out, &n, err, sizeof err)) { printf("  render: %s\n", err); out = NULL; }
    free(json);
    return out;
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static void test_roundtrip(void) {
    const char *out1 = "The user wants to know the weather in Beijing. I should use the get_weather tool.</think>" WEATHER_BLOCK EOS;
    dsv4_parse_result r;
    dsv4_parse_text(out1, strlen(out1), 1, &r);
    char *p = render_with("What's the weather in Beijing?", &r, 1, NULL);
    CHECK(p && ends_with(p, out1), "roundtrip: golden tool call re-renders byte-exact (registry)");
    free(p);
    p = render_with("What's the weather in Beijing?", &r, 1, "unknown_id");
    CHECK(p && ends_with(p, out1), "roundtrip: golden tool call re-renders byte-exact (§4.2 serialisation)");
    free(p);
    dsv4_parse_result_free(&r);
    /* non-canonical JSON in a string="false" value: only the registry reproduces it */
    const char *out2 = "Sure." TCS INV("f") PN("obj", "{\"a\":1,\"b\":[1,2]}") "\n" PS("s", "x\ny") "\n" INVE "\n" TCE EOS;
    dsv4_parse_text(out2, strlen(out2), 0, &r);
    CHECK(r.n_tool_calls == 1 && !strcmp(r.content, "Sure."), "roundtrip: parsed non-canonical call");
    p = render_with("q", &r, 0, NULL);
    CHECK(p && ends_with(p, out2), "roundtrip: registry keeps non-canonical bytes");
    free(p);
    p = render_with("q", &r, 0, "unknown_id2");
    const char *canon = "Sure." TCS INV("f") PN("obj", "{\"a\": 1, \"b\": [1, 2]}") "\n" PS("s", "x\ny") "\n" INVE "\n" TCE EOS;
    CHECK(p && ends_with(p, canon), "roundtrip: unknown id re-serialised per §4.2");
    /* and that re-serialised text parses back to the same arguments */
    if (p) {
        dsv4_parse_result r2;
        dsv4_parse_text(canon, strlen(canon), 0, &r2);
        CHECK(r2.n_tool_calls == 1 && !strcmp(r2.tool_calls[0].arguments, "{\"obj\": {\"a\": 1, \"b\": [1, 2]}, \"s\": \"x\\ny\"}"),
              "roundtrip: canonical form parses to canonical arguments (%s)", r2.n_tool_calls ? r2.tool_calls[0].arguments : "-");
        dsv4_parse_result_free(&r2);
    }
    free(p);
    dsv4_parse_result_free(&r);
}

/* A block of 20000 invokes (every other one without parameters) fed in 64 KiB pieces like the CLI does: all
 * calls come back in order. The stop-string search must be linear in the block: a version that searched each
 * stop to the end of the text was quadratic here (7 s for 20000 invokes in a release build, far longer under
 * the sanitizers). No timing is asserted. */
static void test_many_invokes(void) {
    enum { K = 20000 };
    static const char one[] = INV("f") PS("p", "v") "\n" INVE "\n", none[] = INV("g") INVE "\n";
    size_t cap = SLEN("</think>" TCS) + (size_t)K * sizeof one + SLEN(TCE) + 1, n = 0;
    char *text = malloc(cap);
    CHECK(text != NULL, "many invokes: out of memory");
    if (!text) return;
    memcpy(text, "</think>" TCS, SLEN("</think>" TCS));
    n = SLEN("</think>" TCS);
    for (int k = 0; k < K; k++) {
        const char *piece = k % 2 ? none : one;
        size_t len = k % 2 ? SLEN(none) : SLEN(one);
        memcpy(text + n, piece, len);
        n += len;
    }
    memcpy(text + n, TCE, SLEN(TCE));
    n += SLEN(TCE);
    dsv4_parser *p = dsv4_parser_new(1);
    int bad = p == NULL;
    for (size_t i = 0; !bad && i < n; i += 1 << 16)
        bad = dsv4_parser_feed(p, text + i, n - i < (1 << 16) ? n - i : 1 << 16, NULL, NULL) != 0;
    dsv4_parse_result r;
    memset(&r, 0, sizeof r);
    bad = bad || dsv4_parser_finish(p, &r) != 0;
    dsv4_parser_free(p);
    free(text);
    CHECK(!bad, "many invokes: parse failed");
    if (bad) return;
    CHECK(r.n_tool_calls == K && !r.block_failed, "many invokes: %d tool calls (block_failed %d), want %d", r.n_tool_calls,
          r.block_failed, K);
    int order_ok = r.n_tool_calls == K;
    for (int k = 0; order_ok && k < K; k++)
        order_ok = !strcmp(r.tool_calls[k].name, k % 2 ? "g" : "f") &&
                   !strcmp(r.tool_calls[k].arguments, k % 2 ? "{}" : "{\"p\": \"v\"}");
    CHECK(order_ok, "many invokes: names/arguments out of order");
    dsv4_parse_result_free(&r);
    dsv4_toolcall_clear();
}

/* issue 8 fuzzing: a string="false" value holding a NUL byte. The NUL-terminated view of its arguments,
 * {"a": 1}, is valid JSON, the whole arguments_len bytes are not: valid_json must be 0. */
static void test_nul_in_arguments(void) {
    static const char text[] = TCS INV("g") PN("a", "1}\0x") "\n" INVE "\n" TCE EOS;
    dsv4_parse_result r;
    int rc = dsv4_parse_text(text, sizeof text - 1, 0, &r);
    CHECK(rc == 0 && r.n_tool_calls == 1 && r.tool_calls[0].arguments_len == 11 &&
          memcmp(r.tool_calls[0].arguments, "{\"a\": 1}\0x}", 11) == 0 && r.tool_calls[0].valid_json == 0 &&
          r.warnings && strstr(r.warnings, "not valid JSON"), "NUL in a string=false value: rc %d, %d calls, valid_json %d",
          rc, r.n_tool_calls, r.n_tool_calls ? r.tool_calls[0].valid_json : -1);
    dsv4_parse_result_free(&r);
}

/* ------------------------------------------------------------------ DeepSeek-V4.1 format */
/* The text with the V4 DSML tag names respelled as V4.1's (malloc'd; *n in/out: length). */
static char *to_v41(const char *s, size_t *n) {
    static const char *from[] = { D "tool_calls", D "invoke", D "parameter" };
    static const char *to[] = { D " calls", D " invoke", D " parameter" };
    size_t cap = *n * 2 + 16, o = 0;
    char *r = malloc(cap);
    for (size_t i = 0; i < *n;) {
        int hit = -1;
        for (int k = 0; k < 3 && hit < 0; k++)
            if (*n - i >= strlen(from[k]) && !memcmp(s + i, from[k], strlen(from[k]))) hit = k;
        if (hit >= 0) { memcpy(r + o, to[hit], strlen(to[hit])); o += strlen(to[hit]); i += strlen(from[hit]); }
        else r[o++] = s[i++];
    }
    r[o] = 0;
    *n = o;
    return r;
}

static int same_v41(const char *v4, size_t n4, const char *v41, size_t n41) {
    size_t n = n4;
    char *t = to_v41(v4 ? v4 : "", &n);
    int ok = same_str(t, n, v41, n41);
    free(t);
    return ok;
}

static int n_v41_translated;

/* Warnings with the V4.1 tag names and the numbers after "at byte " dropped (block offsets differ by the tag
 * lengths); malloc'd. */
static char *warn_key(const char *w, int respell) {
    size_t n = strlen(w);
    char *t = respell ? to_v41(w, &n) : strdup(w), *o = t;
    for (const char *q = t; *q;) {
        if (!strncmp(q, "at byte ", 8)) { memcpy(o, q, 8); o += 8; q += 8; while (*q >= '0' && *q <= '9') q++; }
        else *o++ = *q++;
    }
    *o = 0;
    return t;
}

/* Parse text in V4 mode and its V4.1 respelling in V4.1 mode (whole, bytewise, random splits): the V4.1 result must
 * be the V4 result respelled (ids aside: they hash the raw bytes). Also: the V4 text in V4.1 mode has no calls. */
static void check_translated(const char *name, const char *text, size_t len, int thinking) {
    dsv4_parse_result r4, r41, rs;
    coll_t *c = malloc(sizeof *c);
    split_format = DSV4_FORMAT_V4;
    int rc = run_split(text, len, thinking, 0, &r4, c);
    free(c->s[0]); free(c->s[1]);
    size_t n = len;
    char *t = to_v41(text, &n);
    split_format = DSV4_FORMAT_V41;
    rc |= run_split(t, n, thinking, 0, &r41, c);
    free(c->s[0]); free(c->s[1]);
    CHECK(rc == 0, "v41 %s: parse failed", name);
    if (rc) { free(c); free(t); split_format = DSV4_FORMAT_V4; return; }
    char *w4 = NULL, *w41 = NULL;
    int ok = same_v41(r4.reasoning_content, r4.reasoning_len, r41.reasoning_content, r41.reasoning_len) &&
             same_v41(r4.content, r4.content_len, r41.content, r41.content_len) && r4.n_tool_calls == r41.n_tool_calls &&
             r4.saw_eos == r41.saw_eos && r4.saw_think_end == r41.saw_think_end && r4.block_failed == r41.block_failed &&
             (r4.warnings == NULL) == (r41.warnings == NULL) &&
             (!r4.warnings || !strcmp(w4 = warn_key(r4.warnings, 1), w41 = warn_key(r41.warnings, 0)));
    free(w4); free(w41);
    for (int k = 0; ok && k < r4.n_tool_calls; k++) {
        const dsv4_tool_call *x = &r4.tool_calls[k], *y = &r41.tool_calls[k];
        ok = same_v41(x->name, x->name_len, y->name, y->name_len) &&
             same_v41(x->arguments, x->arguments_len, y->arguments, y->arguments_len) &&
             same_v41(x->raw, x->raw_len, y->raw, y->raw_len) && x->valid_json == y->valid_json;
        size_t rl = 0;
        const char *reg = dsv4_toolcall_raw(y->id, &rl);
        if (ok && reg) ok = rl == y->raw_len && !memcmp(reg, y->raw, rl);
    }
    CHECK(ok, "v41 %s: the V4.1 result is not the V4 result respelled (warnings: %s / %s)", name,
          r4.warnings ? r4.warnings : "-", r41.warnings ? r41.warnings : "-");
    int splits_ok = 1;
    for (int mode = 1; mode < 12; mode++) {
        if (run_split(t, n, thinking, mode, &rs, c)) { splits_ok = 0; break; }
        if (!same_result(&r41, &rs) ||
            !same_str(c->s[0] ? c->s[0] : "", c->n[0], rs.reasoning_content, rs.reasoning_len) ||
            !same_str(c->s[1] ? c->s[1] : "", c->n[1], rs.content, rs.content_len) || c->ncalls_ev != rs.n_tool_calls ||
            bad_boundary(rs.reasoning_content, rs.reasoning_len, c->bounds[0], c->nb[0]) ||
            bad_boundary(rs.content, rs.content_len, c->bounds[1], c->nb[1]))
            splits_ok = 0;
        free(c->s[0]); free(c->s[1]);
        dsv4_parse_result_free(&rs);
    }
    CHECK(splits_ok, "v41 %s: result / deltas differ between splits", name);
    if (r4.n_tool_calls) {  /* the V4 spelling in V4.1 mode: no tool call, the block is content */
        CHECK(run_split(text, len, thinking, 0, &rs, c) == 0 && rs.n_tool_calls == 0 &&
              rs.content_len + rs.reasoning_len > 0,
              "v41 %s: a V4-spelled block gave %d tool calls in V4.1 mode", name, rs.n_tool_calls);
        free(c->s[0]); free(c->s[1]);
        dsv4_parse_result_free(&rs);
    }
    split_format = DSV4_FORMAT_V4;
    dsv4_parse_result_free(&r4); dsv4_parse_result_free(&r41);
    free(c); free(t);
    n_v41_translated++;
}

static void test_v41(void) {
    int nc = (int)(sizeof cases / sizeof *cases);
    for (int i = 0; i < nc; i++) check_translated(cases[i].name, cases[i].text, strlen(cases[i].text), cases[i].thinking);
    /* the official parser's goldens (tests/golden/chat_parse), respelled */
    size_t jn = 0;
    char *js = test_read_file(GOLDEN_DIR "expected.json", &jn);
    cJSON *arr = js ? cJSON_Parse(js) : NULL;
    free(js);
    const cJSON *e;
    int ng = 0;
    cJSON_ArrayForEach(e, arr) {
        const char *name = jstr(e, "name");
        char path[512];
        size_t len = 0;
        snprintf(path, sizeof path, GOLDEN_DIR "%s.in", name ? name : "?");
        char *text = name ? test_read_file(path, &len) : NULL;
        if (!text) continue;
        check_translated(name, text, len, cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "thinking")));
        free(text);
        ng++;
    }
    cJSON_Delete(arr);
    CHECK(ng >= 100, "v41: only %d parser goldens respelled", ng);
    /* direct V4.1 output, as the V4.1 encoder writes a turn (tests/golden/chat-v41/tools_round_thinking) */
    static const char out41[] = "Two cities; call twice.</think>\n\n<" D " calls>\n<" D " invoke name=\"get_weather\">\n<" D
        " parameter name=\"location\" string=\"true\">Paris</" D " parameter>\n<" D " parameter name=\"days\" string=\"false\">2</"
        D " parameter>\n</" D " invoke>\n<" D " invoke name=\"get_weather\">\n<" D
        " parameter name=\"location\" string=\"true\">Tokyo</" D " parameter>\n</" D " invoke>\n</" D " calls>" EOS;
    dsv4_parse_result r;
    CHECK(dsv4_parse_text_format(out41, SLEN(out41), 1, DSV4_FORMAT_V41, &r) == 0, "v41 parse");
    CHECK(!strcmp(r.reasoning_content, "Two cities; call twice.") && !strcmp(r.content, "") && r.n_tool_calls == 2 &&
          r.warnings == NULL && r.saw_eos && !strcmp(r.tool_calls[0].name, "get_weather") &&
          !strcmp(r.tool_calls[0].arguments, "{\"location\": \"Paris\", \"days\": 2}") &&
          !strcmp(r.tool_calls[1].arguments, "{\"location\": \"Tokyo\"}") &&
          !strncmp(r.tool_calls[1].raw, "<" D " invoke name=", SLEN("<" D " invoke name=")),
          "v41 direct: %d calls, warnings %s", r.n_tool_calls, r.warnings ? r.warnings : "-");
    /* round trip: the parsed message re-rendered by the V4.1 encoder holds the model's bytes */
    if (r.n_tool_calls == 2) {
        char req[1024], *pr = NULL, err[256];
        size_t pl = 0;
        snprintf(req, sizeof req, "[{\"role\": \"user\", \"content\": \"w\"}, {\"role\": \"assistant\", \"content\": \"\", "
                 "\"reasoning_content\": \"Two cities; call twice.\", \"tool_calls\": [{\"id\": \"%s\", \"type\": \"function\", "
                 "\"function\": {\"name\": \"get_weather\", \"arguments\": \"{}\"}}, {\"id\": \"%s\", \"type\": \"function\", "
                 "\"function\": {\"name\": \"get_weather\", \"arguments\": \"{}\"}}]}]", r.tool_calls[0].id, r.tool_calls[1].id);
        dsv4_render_opts o = { .format = DSV4_FORMAT_V41, .thinking = 1, .keep_thinking = 1 };
        int rc = dsv4_chat_render(req, strlen(req), &o, &pr, &pl, err, sizeof err);
        CHECK(rc == 0 && pr && strstr(pr, out41), "v41 round trip: the model's bytes re-rendered (%s)", rc ? err : pr);
        free(pr);
    }
    dsv4_parse_result_free(&r);
    /* dsv4_parser_set_format: before the first byte only; unknown formats refused */
    dsv4_parser *p = dsv4_parser_new(0);
    CHECK(dsv4_parser_set_format(p, (dsv4_chat_format)5) == -1 && dsv4_parser_set_format(p, DSV4_FORMAT_V41) == 0,
          "set_format: unknown refused, V4.1 accepted");
    dsv4_parser_feed(p, "x", 1, NULL, NULL);
    CHECK(dsv4_parser_set_format(p, DSV4_FORMAT_V4) == -1 && dsv4_parser_set_format(NULL, DSV4_FORMAT_V4) == -1,
          "set_format after a feed / on NULL refused");
    dsv4_parser_free(p);
    printf("v41: %d texts respelled and compared\n", n_v41_translated);
}

int main(void) {
    rng_state = 0x9e3779b97f4a7c15ull;
    int nc = (int)(sizeof cases / sizeof *cases);
    for (int i = 0; i < nc; i++) check_case(&cases[i], NULL);
    test_misc();
    test_roundtrip();
    test_goldens();
    test_registry();
    test_many_invokes();
    test_nul_in_arguments();
    test_v41();
    printf("%d cases\n", nc);
    return test_done();
}
