/* tests/test_nano_chat.c — the built-in chat model (models/nano-chat) drives a whole tool-call turn.
 *
 * For the prompts of tests/golden/nano_chat/cases.json (written by tools/train/make_chat_data.py: the
 * system prompt with the `calculator` and `lookup_character` tools + one user question, in thinking and in
 * chat mode; set "trained" = prompts of the training data, "heldout" = drawn with another seed):
 *   1. render the request with the V4 prompt encoder (dsv4_chat_render),
 *   2. generate greedily (argmax, lowest id on ties) with the C engine until EOS (at most MAX_NEW tokens),
 *   3. parse the completion with the output parser (dsv4_parse_text): exactly one tool call, no warnings,
 *      the expected name, arguments valid JSON with the tool's parameters in the trained order and of the
 *      schema's types (`operation` one of its enum), and in thinking mode non-empty reasoning closed by
 *      </think>;
 *   4. the answer turn (the same conversation with the call and the tool result appended): in thinking mode
 *      non-empty reasoning closed by </think>, then non-empty content, no tool call; in chat mode content.
 * The argument VALUES are not checked: the released model does not copy the numbers / names from the
 * question (it learned the format and which tool to call, not copying; tools/train/README.md "nano-chat"
 * has the accuracy table, where exact arguments are counted). The model is deterministic (every SIMD path
 * and thread count gives bit-identical logits), so each check is exact, not statistical. The test runs the
 * cases listed in QUICK (trained prompts; both modes; under emulation, $DSV4_TEST_QEMU, two of them: each tool and
 * each mode once); `test_nano_chat --all` runs every case and prints the
 * accuracy table (not counted as checks); -v prints every completion; --model DIR tests another checkpoint
 * (default models/nano-chat).
 */
#include "testlib.h"
#include "dsv4_chat.h"
#include "dsv4_parse.h"

#define MODEL_DIR "models/nano-chat"
#define CASES "tests/golden/nano_chat/cases.json"
#define MAX_NEW 160

/* indices into cases.json: trained calculator (add, thinking + chat), trained calculator (multiply,
 * thinking), trained lookup (thinking + chat) */
static const int QUICK[] = { 0, 1, 24, 48, 49 };

/* Greedy completion of `prompt` (rendered text); returns malloc'd text (NUL-terminated), NULL on error. */
static char *complete(dsv4_model *m, const char *prompt, size_t plen, size_t *out_len) {
    const dsv4_tokenizer *tok = dsv4_model_tokenizer(m);
    dsv4_model_info info;
    dsv4_model_get_info(m, &info);
    char err[256];
    int n = dsv4_tokenize(tok, prompt, plen, NULL, 0, err, sizeof err);
    if (n <= 0) { test_fail("tokenize: %s", err); return NULL; }
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)n);
    float *logits = malloc(sizeof(float) * (size_t)info.vocab_size);
    size_t cap = 4096, len = 0;
    char *out = malloc(cap);
    dsv4_session *s = NULL;
    if (!ids || !logits || !out) { test_fail("out of memory"); goto fail; }
    dsv4_tokenize(tok, prompt, plen, ids, n, err, sizeof err);
    if (dsv4_session_open(&s, m, n + MAX_NEW, err, sizeof err) != 0) { test_fail("session: %s", err); goto fail; }
    if (dsv4_eval(s, ids, n, logits, err, sizeof err) != 0) { test_fail("prefill: %s", err); goto fail; }
    dsv4_detok_stream st = {0};
    for (int i = 0; i < MAX_NEW; i++) {
        int32_t best = 0;
        for (int v = 1; v < info.vocab_size; v++)
            if (logits[v] > logits[best]) best = v;
        if (best == info.eos_token_id) break;
        if (len + 64 > cap) {
            char *nb = realloc(out, cap *= 2);
            if (!nb) { test_fail("out of memory"); goto fail; }
            out = nb;
        }
        len += (size_t)dsv4_detok_next(tok, &st, best, out + len, cap - len);
        if (i + 1 < MAX_NEW && dsv4_eval(s, &best, 1, logits, err, sizeof err) != 0) {
            test_fail("decode: %s", err);
            goto fail;
        }
    }
    len += (size_t)dsv4_detok_flush(&st, out + len, cap - len);
    out[len] = 0;
    *out_len = len;
    dsv4_session_free(s); free(ids); free(logits);
    return out;
fail:
    dsv4_session_free(s); free(ids); free(logits); free(out);
    return NULL;
}

typedef struct { int call_parsed, call_name, call_schema, call_args, call_reason, ans_ok, ans_exact; } score_t;

/* 1 if `got` has exactly the keys of `want`, in the same order, each value of the same JSON type
 * (number / string / ...), and every string value allowed by the tool's schema (the `operation` enum). */
static int same_shape(const cJSON *got, const cJSON *want) {
    if (!cJSON_IsObject(got) || cJSON_GetArraySize(got) != cJSON_GetArraySize(want)) return 0;
    const cJSON *g = got->child, *w = want->child;
    for (; g && w; g = g->next, w = w->next) {
        if (strcmp(g->string, w->string) || (g->type & 0xFF) != (w->type & 0xFF)) return 0;
        if (!strcmp(g->string, "operation") && strcmp(g->valuestring, "add") && strcmp(g->valuestring, "subtract") &&
            strcmp(g->valuestring, "multiply") && strcmp(g->valuestring, "divide")) return 0;
    }
    return 1;
}

/* Runs one case; returns the score; `verbose` prints the completions. */
static score_t run_case(dsv4_model *m, const cJSON *c, int idx, int verbose) {
    score_t sc = {0};
    int thinking = cJSON_IsTrue(cJSON_GetObjectItem(c, "thinking"));
    const char *want_name = cJSON_GetObjectItem(c, "name")->valuestring;
    const cJSON *want_args = cJSON_GetObjectItem(c, "arguments");
    const char *want_answer = cJSON_GetObjectItem(c, "answer")->valuestring;
    dsv4_render_opts ro = { .thinking = thinking };
    char err[256];
    for (int stage = 0; stage < 2; stage++) {
        char *req = cJSON_PrintUnformatted(cJSON_GetObjectItem(c, stage ? "answer_request" : "request"));
        char *prompt = NULL;
        size_t plen = 0, glen = 0;
        if (dsv4_chat_render(req, strlen(req), &ro, &prompt, &plen, err, sizeof err) != 0) {
            test_fail("case %d: render: %s", idx, err);
            free(req);
            return sc;
        }
        char *gen = complete(m, prompt, plen, &glen);
        free(req); free(prompt);
        if (!gen) return sc;
        dsv4_parse_result r;
        if (dsv4_parse_text(gen, glen, thinking, &r) != 0) { test_fail("parse: out of memory"); free(gen); return sc; }
        if (verbose) printf("case %d stage %d (%s): %s\n", idx, stage, thinking ? "thinking" : "chat", gen);
        int reason_ok = !thinking || (r.reasoning_len > 0 && r.saw_think_end);
        if (stage == 0) {
            sc.call_parsed = r.n_tool_calls == 1 && !r.warnings && r.tool_calls[0].valid_json;
            sc.call_reason = reason_ok;
            if (sc.call_parsed) {
                sc.call_name = !strcmp(r.tool_calls[0].name, want_name);
                cJSON *got = cJSON_Parse(r.tool_calls[0].arguments);
                sc.call_schema = got && same_shape(got, want_args);
                sc.call_args = got && cJSON_Compare(got, want_args, 1);
                cJSON_Delete(got);
            }
        } else {
            sc.ans_ok = reason_ok && r.content_len > 0 && r.n_tool_calls == 0 && !r.warnings;
            sc.ans_exact = sc.ans_ok && !strcmp(r.content, want_answer);
        }
        dsv4_parse_result_free(&r);
        free(gen);
    }
    return sc;
}

int main(int argc, char **argv) {
    int all = 0, verbose = 0;
    const char *dir = MODEL_DIR;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--all")) all = 1;
        else if (!strcmp(argv[i], "-v")) verbose = 1;
        else if (!strcmp(argv[i], "--model") && i + 1 < argc) dir = argv[++i];
        else { fprintf(stderr, "usage: test_nano_chat [--all] [-v] [--model DIR]\n"); return 2; }
    }
    char err[512];
    dsv4_model *m = NULL;
    if (dsv4_model_load(&m, dir, err, sizeof err) != 0) {
        test_fail("load %s: %s", dir, err);
        return test_done();
    }
    size_t len;
    char *text = test_read_file(CASES, &len);
    cJSON *cases = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (!cJSON_IsArray(cases)) { test_fail("%s: missing or not a JSON array", CASES); dsv4_model_free(m); return test_done(); }
    int n = cJSON_GetArraySize(cases);
    if (all) {
        /* accuracy table per set and mode: [set][thinking] */
        int tot[2][2] = {{0}}, s_parsed[2][2] = {{0}}, s_shape[2][2] = {{0}}, s_ok[2][2] = {{0}}, s_reason[2][2] = {{0}},
            s_ans[2][2] = {{0}}, s_exact[2][2] = {{0}};
        for (int i = 0; i < n; i++) {
            const cJSON *c = cJSON_GetArrayItem(cases, i);
            int set = strcmp(cJSON_GetObjectItem(c, "set")->valuestring, "trained") != 0;
            int th = cJSON_IsTrue(cJSON_GetObjectItem(c, "thinking"));
            score_t sc = run_case(m, c, i, verbose);
            tot[set][th]++;
            s_parsed[set][th] += sc.call_parsed;
            s_shape[set][th] += sc.call_parsed && sc.call_name && sc.call_schema;
            s_ok[set][th] += sc.call_parsed && sc.call_name && sc.call_args;
            s_reason[set][th] += sc.call_reason;
            s_ans[set][th] += sc.ans_ok;
            s_exact[set][th] += sc.ans_exact;
        }
        printf("%-8s %-9s %6s %10s %12s %12s %10s %8s %8s\n", "set", "mode", "cases", "parseable", "name+schema",
               "name+args", "reasoning", "answer", "exact");
        for (int set = 0; set < 2; set++)
            for (int th = 1; th >= 0; th--)
                printf("%-8s %-9s %6d %10d %12d %12d %10d %8d %8d\n", set ? "heldout" : "trained",
                       th ? "thinking" : "chat", tot[set][th], s_parsed[set][th], s_shape[set][th], s_ok[set][th],
                       s_reason[set][th], s_ans[set][th], s_exact[set][th]);
    } else {
        /* under emulation: cases 1 and 48, i.e. each tool and each mode once (24 is a second calculator case, 0 and
         * 49 the same questions in the other mode) */
        int reduced = test_reduced("test_nano_chat: cases 1 (calculator, chat) and 48 (lookup_character, thinking) "
                                   "of the 5 quick cases 0, 1, 24, 48, 49");
        for (size_t q = 0; q < sizeof QUICK / sizeof *QUICK; q++) {
            int i = QUICK[q];
            if (reduced && i != 1 && i != 48) continue;
            const cJSON *c = cJSON_GetArrayItem(cases, i);
            if (!c || strcmp(cJSON_GetObjectItem(c, "set")->valuestring, "trained")) {
                test_fail("case %d: missing or not a trained prompt", i);
                continue;
            }
            const char *user = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(
                cJSON_GetObjectItem(c, "request"), "messages"), 1), "content")->valuestring;
            int th = cJSON_IsTrue(cJSON_GetObjectItem(c, "thinking"));
            score_t sc = run_case(m, c, i, verbose);
            EXPECT(sc.call_parsed, "case %d (%s, %s): the completion parses to exactly one tool call", i,
                   user, th ? "thinking" : "chat");
            EXPECT(sc.call_name && sc.call_schema, "case %d (%s): the expected tool name; arguments a JSON object with "
                   "the tool's parameters in order, of the schema's types", i, user);
            EXPECT(sc.call_reason, "case %d (%s): thinking mode gives reasoning closed by </think> before the call",
                   i, user);
            EXPECT(sc.ans_ok, "case %d (%s): the turn after the tool result gives %scontent and no call", i, user,
                   th ? "reasoning, then " : "");
        }
    }
    cJSON_Delete(cases);
    dsv4_model_free(m);
    return test_done();
}
