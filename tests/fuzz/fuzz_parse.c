/* tests/fuzz/fuzz_parse.c — libFuzzer harness: the model-output parser (src/chat/parse.c, include/dsv4_parse.h).
 *
 * Input: byte 0 = mode (bit 0: thinking mode; bit 1: DeepSeek-V4.1 format, dsv4_parser_set_format), byte 1 = split
 * seed, the rest = model output (any bytes).
 * Properties: no crash, leak or UB; the result is identical for every split of the stream (one-shot
 * dsv4_parse_text, byte-by-byte feeding, and random chunks drawn from the seed, each with dsv4_parser_close
 * and dsv4_parser_finish); for each streamed run the concatenated reasoning / content deltas equal the result's
 * fields and the tool-call events equal its tool calls, in order; every call's `arguments` (all arguments_len
 * bytes of it) is one JSON object without control bytes other than tab/LF/CR exactly when valid_json says so.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "dsv4_parse.h"
#include "fuzz_util.h"

typedef struct { char *p; size_t n, cap; } buf;
static void put(buf *b, const void *p, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = 2 * (b->n + n + 1);
        b->p = realloc(b->p, b->cap);
        FUZZ_CHECK(b->p, "out of memory");
    }
    if (n) memcpy(b->p + b->n, p, n);
    b->n += n;
}

typedef struct {
    buf reasoning, content, calls; /* calls: id \0 name \0 arguments \0 raw \0 per event */
    int n_calls;
} events;

static void on_event(void *user, const dsv4_parse_event *ev) {
    events *e = user;
    switch (ev->kind) {
    case DSV4_EV_REASONING: put(&e->reasoning, ev->text, ev->len); break;
    case DSV4_EV_CONTENT: put(&e->content, ev->text, ev->len); break;
    case DSV4_EV_TOOL_CALL:
        FUZZ_CHECK(ev->index == e->n_calls, "tool-call event index %d, expected %d", ev->index, e->n_calls);
        put(&e->calls, ev->call->id, strlen(ev->call->id) + 1);
        put(&e->calls, ev->call->name, ev->call->name_len + 1);
        put(&e->calls, ev->call->arguments, ev->call->arguments_len + 1);
        put(&e->calls, ev->call->raw, ev->call->raw_len + 1);
        e->n_calls++;
        break;
    default: FUZZ_CHECK(0, "unknown event kind %d", (int)ev->kind);
    }
}

static int same(const char *a, size_t an, const char *b, size_t bn) { return an == bn && (!an || !memcmp(a, b, an)); }

static void expect_same(const dsv4_parse_result *a, const dsv4_parse_result *b, const char *how) {
    FUZZ_CHECK(same(a->reasoning_content, a->reasoning_len, b->reasoning_content, b->reasoning_len),
               "%s: reasoning differs (%zu vs %zu bytes)", how, a->reasoning_len, b->reasoning_len);
    FUZZ_CHECK(same(a->content, a->content_len, b->content, b->content_len), "%s: content differs (%zu vs %zu bytes)",
               how, a->content_len, b->content_len);
    FUZZ_CHECK(a->n_tool_calls == b->n_tool_calls, "%s: %d vs %d tool calls", how, a->n_tool_calls, b->n_tool_calls);
    FUZZ_CHECK(a->saw_think_end == b->saw_think_end && a->saw_eos == b->saw_eos && a->block_failed == b->block_failed &&
               a->thinking_mode == b->thinking_mode, "%s: flags differ", how);
    FUZZ_CHECK((!a->warnings && !b->warnings) || (a->warnings && b->warnings && !strcmp(a->warnings, b->warnings)),
               "%s: warnings differ: '%s' vs '%s'", how, a->warnings ? a->warnings : "(none)",
               b->warnings ? b->warnings : "(none)");
    for (int i = 0; i < a->n_tool_calls; i++) {
        const dsv4_tool_call *x = &a->tool_calls[i], *y = &b->tool_calls[i];
        FUZZ_CHECK(!strcmp(x->id, y->id) && same(x->name, x->name_len, y->name, y->name_len) &&
                   same(x->arguments, x->arguments_len, y->arguments, y->arguments_len) &&
                   same(x->raw, x->raw_len, y->raw, y->raw_len) && x->valid_json == y->valid_json,
                   "%s: tool call %d differs", how, i);
    }
}

/* The deltas and call events of one streamed run against its result. */
static void expect_events(const events *e, const dsv4_parse_result *r, const char *how) {
    FUZZ_CHECK(same(e->reasoning.p, e->reasoning.n, r->reasoning_content, r->reasoning_len),
               "%s: reasoning deltas (%zu bytes) != reasoning_content (%zu)", how, e->reasoning.n, r->reasoning_len);
    FUZZ_CHECK(same(e->content.p, e->content.n, r->content, r->content_len),
               "%s: content deltas (%zu bytes) != content (%zu)", how, e->content.n, r->content_len);
    FUZZ_CHECK(e->n_calls == r->n_tool_calls, "%s: %d call events, %d calls", how, e->n_calls, r->n_tool_calls);
    buf want = {0};
    for (int i = 0; i < r->n_tool_calls; i++) {
        const dsv4_tool_call *c = &r->tool_calls[i];
        put(&want, c->id, strlen(c->id) + 1);
        put(&want, c->name, c->name_len + 1);
        put(&want, c->arguments, c->arguments_len + 1);
        put(&want, c->raw, c->raw_len + 1);
    }
    FUZZ_CHECK(same(want.p, want.n, e->calls.p, e->calls.n), "%s: call events differ from the calls", how);
    free(want.p);
}

static void free_events(events *e) {
    free(e->reasoning.p);
    free(e->content.p);
    free(e->calls.p);
    memset(e, 0, sizeof *e);
}

/* Feed text in chunks: chunk length 1 when step == 1, else drawn from rng in [1, 1 + max]. */
static void streamed(const char *text, size_t len, int thinking, dsv4_chat_format fmt, fuzz_rng *rng, size_t max,
                     dsv4_parse_result *out, events *ev) {
    dsv4_parser *p = dsv4_parser_new(thinking);
    FUZZ_CHECK(p, "parser_new failed");
    FUZZ_CHECK(dsv4_parser_set_format(p, fmt) == 0, "set_format failed");
    size_t i = 0;
    while (i < len) {
        size_t k = rng ? 1 + (size_t)(fuzz_next(rng) % (max + 1)) : 1;
        if (k > len - i) k = len - i;
        FUZZ_CHECK(dsv4_parser_feed(p, text + i, k, on_event, ev) == 0, "feed failed");
        i += k;
    }
    FUZZ_CHECK(dsv4_parser_close(p, on_event, ev) == 0, "close failed");
    FUZZ_CHECK(dsv4_parser_close(p, on_event, ev) == 0, "second close failed"); /* idempotent, no new events */
    FUZZ_CHECK(dsv4_parser_finish(p, out) == 0, "finish failed");
    dsv4_parser_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    const int thinking = data[0] & 1;
    const dsv4_chat_format fmt = data[0] & 2 ? DSV4_FORMAT_V41 : DSV4_FORMAT_V4;
    fuzz_rng rng = {data[1] * 0x100000001ull + size};
    const char *text = (const char *)data + 2;
    const size_t len = size - 2;

    dsv4_parse_result whole;
    FUZZ_CHECK(dsv4_parse_text_format(text, len, thinking, fmt, &whole) == 0, "parse_text failed");
    FUZZ_CHECK(whole.reasoning_content && whole.content, "NULL fields");
    FUZZ_CHECK(whole.reasoning_content[whole.reasoning_len] == 0 && whole.content[whole.content_len] == 0,
               "fields not NUL-terminated");
    FUZZ_CHECK(thinking || whole.reasoning_len == 0, "reasoning in chat mode");
    for (int i = 0; i < whole.n_tool_calls; i++) {
        const dsv4_tool_call *c = &whole.tool_calls[i];
        const char *end = NULL;
        cJSON *j = cJSON_ParseWithLengthOpts(c->arguments, c->arguments_len, &end, 0);
        int ok = j != NULL && cJSON_IsObject(j);
        for (size_t q = 0; q < c->arguments_len; q++) /* no control byte but JSON whitespace (cJSON skips them all) */
            if ((unsigned char)c->arguments[q] < 0x20 && c->arguments[q] != '\t' && c->arguments[q] != '\n' &&
                c->arguments[q] != '\r') ok = 0;
        if (ok) /* the whole string: only whitespace may follow the object */
            for (const char *q = end; q < c->arguments + c->arguments_len; q++)
                if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r') ok = 0;
        cJSON_Delete(j);
        FUZZ_CHECK(ok == c->valid_json, "call %d: arguments parse %d, valid_json %d", i, ok, c->valid_json);
    }

    static const struct { size_t max; const char *how; } runs[] = {{0, "byte by byte"}, {3, "chunks of 1-4"},
                                                                    {40, "chunks of 1-41"}};
    for (int r = 0; r < 3; r++) {
        dsv4_parse_result part;
        events ev = {0};
        streamed(text, len, thinking, fmt, r ? &rng : NULL, runs[r].max, &part, &ev);
        expect_same(&whole, &part, runs[r].how);
        expect_events(&ev, &part, runs[r].how);
        dsv4_parse_result_free(&part);
        free_events(&ev);
    }
    dsv4_parse_result_free(&whole);
    return 0;
}
