/* tests/test_chat_encode.c — DeepSeek-V4 prompt encoder (include/dsv4_chat.h, docs/encoding.md §3, §4, §9).
 *
 *  1. the four official goldens shipped with the weights (vendor/v4-encoding, read in place);
 *  2. tests/golden/chat/<name>.input.json + .output.txt, generated with the official encoder by
 *     tools/chat/gen_goldens.py (expect_error cases: the official raised, we must fail too); the same for
 *     DeepSeek-V4.1's format (DSV4_FORMAT_V41): tests/golden/chat-v41, tools/chat/gen_goldens_v41.py
 *     (docs/encoding.md §10), plus its option checks (test_v41_options);
 *  3. tests/golden/chat/float_repr.txt: Python repr() of ~7000 doubles vs pj_float_repr;
 *  4. error messages name the message index/field; tool-call registry hook; opts edge cases;
 *  5. image content parts (the vision revision of the encoder): placement, joining, the reported list, refusals;
 *  6. end-to-end token counts: the five official API prompts (vendor/v4-official-vectors),
 *     rendered as one user message in chat mode and tokenized with build/v4-tokenizer.json, must give
 *     the API's usage.prompt_tokens.
 * Run from the repository root.
 */
#include "dsv4.h"
#include "dsv4_chat.h"
#include "dsv4_parse.h"
#include "chat/encode_json.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "testlib.h"

static const char *OFFICIAL_DIR = "vendor/v4-encoding";
static const char *GOLDEN_DIR = "tests/golden/chat";
static const char *GOLDEN_V41_DIR = "tests/golden/chat-v41";
static const char *VECTORS_DIR = "vendor/v4-official-vectors";
static const char *V4_TOKENIZER = "build/v4-tokenizer.json";

/* Put the raw bytes of tool call "raw-1" into the real registry (include/dsv4_parse.h), as the output parser
 * would after the model produced them. Returns 0 or -1. */
static int remember_raw1(void) {
    static const char raw[] = "<｜DSML｜invoke name=\"get_weather\">\n<｜DSML｜parameter name=\"location\" string=\"true\">"
                              "Paris</｜DSML｜parameter>\n<｜DSML｜parameter name=\"days\" string=\"false\">2.50</｜DSML｜parameter>\n"
                              "</｜DSML｜invoke>";
    dsv4_toolcall_clear();
    return dsv4_toolcall_remember("raw-1", raw, sizeof raw - 1);
}

/* Report the first differing byte of two prompts. */
static void show_diff(const char *name, const char *got, size_t gl, const char *want, size_t wl) {
    size_t i = 0;
    while (i < gl && i < wl && got[i] == want[i]) i++;
    size_t from = i > 60 ? i - 60 : 0;
    printf("  %s: first difference at byte %zu (got %zu bytes, want %zu)\n", name, i, gl, wl);
    printf("  got : %.*s\n", (int)((gl - from) < 160 ? gl - from : 160), got + from);
    printf("  want: %.*s\n", (int)((wl - from) < 160 ? wl - from : 160), want + from);
}

/* ---------------------------------------------------------------- 1. official goldens */
static void test_official(void) {
    static const int thinking[4] = { 1, 1, 1, 0 }; /* as in encoding/test_encoding_dsv4.py */
    for (int k = 1; k <= 4; k++) {
        char ip[512], op[512], err[512];
        snprintf(ip, sizeof ip, "%s/test_input_%d.json", OFFICIAL_DIR, k);
        snprintf(op, sizeof op, "%s/test_output_%d.txt", OFFICIAL_DIR, k);
        size_t il, ol;
        char *in = test_read_file(ip, &il), *want = test_read_file(op, &ol);
        CHECK(in && want, "cannot read %s / %s", ip, op);
        if (!in || !want) { free(in); free(want); continue; }
        dsv4_render_opts o = { .thinking = thinking[k - 1] };
        char *got = NULL; size_t gl = 0;
        int rc = dsv4_chat_render(in, il, &o, &got, &gl, err, sizeof err);
        int ok = rc == 0 && gl == ol && memcmp(got, want, ol) == 0;
        CHECK(ok, "official golden %d: %s", k, rc ? err : "bytes differ");
        if (!ok && rc == 0) show_diff(ip, got, gl, want, ol);
        free(in); free(want); free(got);
    }
}

/* ---------------------------------------------------------------- 2. generated goldens */
static int n_generated, n_generated_v41;

/* Goldens of the V4 text encoder that the vision revision (process_image_messages, docs/encoding.md "Images")
 * renders differently: a user content list is accepted, a tool result's image part becomes the placeholder. The
 * input files stay as generated; the expected output is this one. */
static const struct { const char *name, *want; } VISION_REVISED[] = {
    { "error_user_content_list", "<｜begin▁of▁sentence｜><｜User｜>x<｜Assistant｜></think>" },
    { "tool_content_types", NULL }, /* the generated output with "[Unsupported image_url]" -> the placeholder */
};

/* The revised expectation for golden `name` (malloc'd into *want, length *wl), or 0 when not revised. */
static int vision_revised(const char *name, const char *gen, size_t gl, char **want, size_t *wl) {
    for (size_t k = 0; k < sizeof VISION_REVISED / sizeof VISION_REVISED[0]; k++) {
        if (strcmp(name, VISION_REVISED[k].name)) continue;
        if (VISION_REVISED[k].want) { *want = strdup(VISION_REVISED[k].want); *wl = strlen(*want); return 1; }
        const char *from = "[Unsupported image_url]", *to = "<｜deepseek_image｜>";
        const char *at = NULL;
        for (size_t i = 0; gen && i + strlen(from) <= gl && !at; i++)
            if (!memcmp(gen + i, from, strlen(from))) at = gen + i;
        CHECK(at != NULL, "%s: the generated output lost its [Unsupported image_url]", name);
        if (!at) return 0;
        size_t pre = (size_t)(at - gen), post = gl - pre - strlen(from);
        *wl = pre + strlen(to) + post;
        *want = malloc(*wl + 1);
        memcpy(*want, gen, pre);
        memcpy(*want + pre, to, strlen(to));
        memcpy(*want + pre + strlen(to), at + strlen(from), post);
        (*want)[*wl] = 0;
        return 1;
    }
    return 0;
}

static void run_generated(const char *dir, const char *name, int v41) {
    char ip[1024], op[1024], err[512];
    snprintf(ip, sizeof ip, "%s/%s.input.json", dir, name);
    snprintf(op, sizeof op, "%s/%s.output.txt", dir, name);
    size_t il, ol;
    char *in = test_read_file(ip, &il), *want = test_read_file(op, &ol);
    CHECK(in && want, "cannot read %s / %s", ip, op);
    if (!in || !want) { free(in); free(want); return; }
    pj_arena a = { 0 };
    pj_value *root = pj_parse(&a, in, il, 0, err, sizeof err);
    CHECK(root != NULL, "%s: %s", ip, err);
    if (!root) { free(in); free(want); return; }
    const pj_value *opt = pj_get(root, "options"), *req = pj_get(root, "request"), *ctx = pj_get(root, "context");
    dsv4_render_opts o = { 0 };
    o.thinking = pj_is_str(pj_get(opt, "thinking_mode"), "thinking");
    const pj_value *eff = pj_get(opt, "reasoning_effort");
    o.effort = pj_is_str(eff, "max") ? DSV4_EFFORT_MAX : pj_is_str(eff, "high") ? DSV4_EFFORT_HIGH : DSV4_EFFORT_NONE;
    if (v41) {
        o.format = DSV4_FORMAT_V41;
        /* an integer effort (the goldens use -5 and 101 for the refusals; 0 is "not given" in the C API) */
        if (eff && eff->type == PJ_INT) o.effort_level = atoi(eff->s);
    }
    o.keep_thinking = !pj_truthy(pj_get(opt, "drop_thinking"));
    o.no_bos = !pj_truthy(pj_get(opt, "add_default_bos_token"));
    if (ctx) { o.context_json = in + ctx->off; o.context_len = ctx->end - ctx->off; }
    int expect_error = pj_truthy(pj_get(opt, "expect_error"));
    char *rev = NULL; size_t rl = 0;
    if (!v41 && vision_revised(name, want, ol, &rev, &rl)) { free(want); want = rev; ol = rl; expect_error = 0; }
    char *got = NULL; size_t gl = 0;
    int rc = req ? dsv4_chat_render(in + req->off, req->end - req->off, &o, &got, &gl, err, sizeof err) : -1;
    if (expect_error) {
        CHECK(rc == -1 && got == NULL && err[0], "%s: the official encoder raised (%s) but we rendered", name, want);
        if (rc == -1 && getenv("DSV4_TEST_VERBOSE")) printf("  %s: %s\n", name, err);
    } else {
        int ok = rc == 0 && gl == ol && memcmp(got, want, ol) == 0;
        CHECK(ok, "golden %s: %s", name, rc ? err : "bytes differ");
        if (!ok && rc == 0) show_diff(name, got, gl, want, ol);
    }
    if (v41) n_generated_v41++; else n_generated++;
    free(got);
    pj_arena_free(&a);
    free(in); free(want);
}

static int cmp_str(const void *x, const void *y) { return strcmp(*(char *const *)x, *(char *const *)y); }

static void test_generated(const char *dir, int v41) {
    DIR *d = opendir(dir);
    CHECK(d != NULL, "cannot open %s", dir);
    if (!d) return;
    char *names[512]; int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < 512) {
        size_t l = strlen(de->d_name);
        const char *suf = ".input.json";
        if (l > strlen(suf) && !strcmp(de->d_name + l - strlen(suf), suf))
            names[n++] = strndup(de->d_name, l - strlen(suf));
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 0; i < n; i++) { run_generated(dir, names[i], v41); free(names[i]); }
    int got = v41 ? n_generated_v41 : n_generated;
    CHECK(got >= (v41 ? 30 : 20), "only %d generated goldens in %s", got, dir);
}

/* ---------------------------------------------------------------- 3. float repr */
static void test_float_repr(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/float_repr.txt", GOLDEN_DIR);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL, "cannot open %s", path);
    if (!f) return;
    char line[256];
    int n = 0, bad = 0;
    while (fgets(line, sizeof line, f)) {
        uint64_t bits; char want[128];
        if (sscanf(line, "%" SCNx64 " %127s", &bits, want) != 2) continue;
        double x; memcpy(&x, &bits, 8);
        pj_buf b = { 0 };
        pj_float_repr(&b, x, 0);
        if (!b.p || strcmp(b.p, want)) {
            if (bad++ < 10) printf("  float %016" PRIx64 ": got %s want %s\n", bits, b.p ? b.p : "(null)", want);
        }
        pj_buf_free(&b);
        n++;
    }
    fclose(f);
    CHECK(n > 5000 && bad == 0, "float repr: %d of %d differ from Python", bad, n);
}

/* ---------------------------------------------------------------- 4. errors, hooks, options */
static int render(const char *req, const dsv4_render_opts *o, char **out, char *err) {
    size_t l;
    return dsv4_chat_render(req, strlen(req), o, out, &l, err, 512);
}

static void expect_error(const char *req, const dsv4_render_opts *o, const char *needle) {
    char err[512] = { 0 }; char *out = NULL;
    int rc = render(req, o, &out, err);
    CHECK(rc == -1 && out == NULL && strstr(err, needle), "request %.60s: want error containing '%s', got rc %d '%s'",
          req, needle, rc, err);
    free(out);
}

static void expect_output(const char *req, const dsv4_render_opts *o, const char *want) {
    char err[512] = { 0 }; char *out = NULL;
    int rc = render(req, o, &out, err);
    CHECK(rc == 0 && out && !strcmp(out, want), "request %.60s: got %s (%s)", req, out ? out : "(null)", err);
    free(out);
}

static void test_errors_and_hooks(void) {
    expect_error("{\"messages\": [", NULL, "request: invalid JSON");
    expect_error("[{\"role\": \"user\", \"content\": \"a\xff\"}]", NULL, "invalid UTF-8");
    expect_error("{\"msgs\": []}", NULL, "missing key 'messages'");
    expect_error("42", NULL, "expected a JSON array");
    expect_error("[{\"role\": \"user\", \"content\": \"a\"}, \"oops\"]", NULL, "messages[1]: message is not a JSON object");
    expect_error("[{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"wizard\"}]", NULL, "messages[1]: role: unknown role 'wizard'");
    /* issue 8 fuzzing: the unknown role is shown JSON-escaped (one line, valid UTF-8), cut at a character */
    expect_error("[{\"role\": \"A\\n\\tz\\u0001\"}]", NULL, "messages[0]: role: unknown role 'A\\n\\tz\\u0001' (expected");
    expect_error("[{\"role\": \"\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9"
                 "\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9x\"}]", NULL,
                 "role: unknown role '\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9"
                 "\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9...' (expected");
    expect_error("[{\"content\": \"a\"}]", NULL, "messages[0]: role: missing");
    expect_error("[{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"user\", \"content\": null}]", NULL,
                 "messages[1]: content: a user message needs string content");
    expect_error("[{\"role\": \"developer\", \"content\": \"\"}]", NULL, "messages[0]: content: a developer message needs non-empty");
    expect_error("[{\"role\": \"user\", \"content\": \"u\"}, {\"role\": \"assistant\", \"tool_calls\": [{\"function\": "
                 "{\"name\": \"f\", \"arguments\": \"[1]\"}}]}]", NULL,
                 "messages[1]: tool_calls[0].function.arguments: valid JSON but not an object");
    expect_error("[{\"role\": \"assistant\", \"tool_calls\": [{\"function\": {\"name\": \"f\"}}]}]", NULL,
                 "messages[0]: tool_calls[0].function: missing key 'arguments'");
    expect_error("[{\"role\": \"user\", \"content\": \"u\", \"task\": \"nope\"}]", NULL, "messages[0]: task: invalid task");
    expect_error("[{\"role\": \"system\", \"content\": \"s\", \"tools\": [{\"name\": \"f\"}]}]", NULL,
                 "messages[0]: tools[0]: missing key 'function'");
    expect_error("[{\"role\": \"user\", \"content\": \"\\ud800\"}]", NULL, "messages[0]: content: string with a lone UTF-16 surrogate");
    dsv4_render_opts bad = { .effort = (dsv4_effort)7 };
    expect_error("[]", &bad, "reasoning_effort");
    dsv4_render_opts badctx = { .context_json = "{}", .context_len = 2 };
    expect_error("[]", &badctx, "context: not a JSON array");
    expect_error("{\"messages\": [], \"tools\": {\"a\": 1}}", NULL, "request.tools: not a list");

    /* defaults with opts == NULL: chat mode, BOS */
    expect_output("[{\"role\": \"user\", \"content\": \"hi\"}]", NULL,
                  "<｜begin▁of▁sentence｜><｜User｜>hi<｜Assistant｜></think>");
    /* U+0000 inside content survives (length-based) */
    {
        char err[512]; char *out = NULL; size_t l = 0;
        const char *req = "[{\"role\": \"user\", \"content\": \"a\\u0000b\"}]";
        int rc = dsv4_chat_render(req, strlen(req), NULL, &out, &l, err, sizeof err);
        const char want[] = "<｜begin▁of▁sentence｜><｜User｜>a\0b<｜Assistant｜></think>";
        CHECK(rc == 0 && l == sizeof want - 1 && !memcmp(out, want, l), "NUL inside content: rc %d len %zu", rc, l);
        free(out);
    }
    /* registry hook: a call whose id the parser knows is emitted verbatim (note 2.50 kept) */
    CHECK(remember_raw1() == 0, "registry: remember raw-1");
    expect_output("[{\"role\": \"user\", \"content\": \"u\"}, {\"role\": \"assistant\", \"content\": \"\", \"tool_calls\": ["
                  "{\"id\": \"raw-1\", \"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"arguments\": "
                  "\"{\\\"location\\\": \\\"Paris\\\", \\\"days\\\": 2.5}\"}},"
                  "{\"id\": \"other\", \"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"arguments\": "
                  "\"{\\\"location\\\": \\\"Rome\\\", \\\"days\\\": 2.50}\"}}]}]", NULL,
                  "<｜begin▁of▁sentence｜><｜User｜>u<｜Assistant｜></think>\n\n<｜DSML｜tool_calls>\n"
                  "<｜DSML｜invoke name=\"get_weather\">\n<｜DSML｜parameter name=\"location\" string=\"true\">Paris</｜DSML｜parameter>\n"
                  "<｜DSML｜parameter name=\"days\" string=\"false\">2.50</｜DSML｜parameter>\n</｜DSML｜invoke>\n"
                  "<｜DSML｜invoke name=\"get_weather\">\n<｜DSML｜parameter name=\"location\" string=\"true\">Rome</｜DSML｜parameter>\n"
                  "<｜DSML｜parameter name=\"days\" string=\"false\">2.5</｜DSML｜parameter>\n</｜DSML｜invoke>\n"
                  "</｜DSML｜tool_calls><｜end▁of▁sentence｜>");
    dsv4_toolcall_clear();
    /* §9.11: context ending with a developer message — we render the new message (official loses it) */
    {
        const char ctx[] = "[{\"role\": \"system\", \"content\": \"s\"}, {\"role\": \"developer\", \"content\": \"d\"}]";
        dsv4_render_opts o = { .thinking = 1, .context_json = ctx, .context_len = sizeof ctx - 1 };
        expect_output("[{\"role\": \"user\", \"content\": \"u\"}]", &o, "<｜User｜>u<｜Assistant｜><think>");
    }
    /* empty context array = no context: BOS and effort prefix are written */
    {
        dsv4_render_opts o = { .thinking = 1, .effort = DSV4_EFFORT_MAX, .context_json = "[]", .context_len = 2 };
        char err[512]; char *out = NULL;
        int rc = render("[{\"role\": \"user\", \"content\": \"u\"}]", &o, &out, err);
        CHECK(rc == 0 && !strncmp(out, "<｜begin▁of▁sentence｜>Reasoning Effort: Absolute maximum", 61),
              "empty context: %s", out ? out : err);
        free(out);
    }
}

/* ---------------------------------------------------------------- 5. official API token counts */
static void test_token_counts(void) {
    if (access(V4_TOKENIZER, R_OK) != 0) {
        /* the tokenizer helper provides a make target; try it once */
        int rc = system("make -s build/v4-tokenizer.json >/dev/null 2>&1");
        (void)rc;
    }
    char err[512];
    dsv4_tokenizer *t = NULL;
    if (access(V4_TOKENIZER, R_OK) != 0 || dsv4_tokenizer_load(&t, V4_TOKENIZER, err, sizeof err) != 0) {
        CHECK(0, "V4 tokenizer %s not available (make build/v4-tokenizer.json): end-to-end counts not checked", V4_TOKENIZER);
        return;
    }
    static const char *ids[] = { "short_italian_fact", "short_code_completion", "short_reasoning_plain",
                                 "long_memory_archive", "long_code_audit" };
    for (size_t k = 0; k < sizeof ids / sizeof ids[0]; k++) {
        char p[512];
        snprintf(p, sizeof p, "%s/official/%s.official.json", VECTORS_DIR, ids[k]);
        size_t l;
        char *js = test_read_file(p, &l);
        CHECK(js != NULL, "cannot read %s", p);
        if (!js) continue;
        pj_arena a = { 0 };
        pj_value *root = pj_parse(&a, js, l, 0, err, sizeof err);
        const pj_value *req = pj_get(root, "request"), *usage = pj_get(root, "usage");
        const pj_value *want = pj_get(usage, "prompt_tokens");
        const pj_value *thinking = pj_get(pj_get(req, "thinking"), "type");
        CHECK(req && want && want->type == PJ_INT && pj_is_str(thinking, "disabled"), "%s: request/usage missing", p);
        if (!req || !want) { pj_arena_free(&a); free(js); continue; }
        /* the request as sent to the API (messages only; thinking disabled = chat mode) */
        dsv4_render_opts o = { 0 };
        char *prompt = NULL; size_t pl = 0;
        int rc = dsv4_chat_render(js + req->off, req->end - req->off, &o, &prompt, &pl, err, sizeof err);
        CHECK(rc == 0, "%s: render: %s", ids[k], err);
        /* the prompt file must be the same user text */
        char pp[512]; size_t ptl;
        snprintf(pp, sizeof pp, "%s/prompts/%s.txt", VECTORS_DIR, ids[k]);
        char *ptxt = test_read_file(pp, &ptl);
        const char *pre = "<｜begin▁of▁sentence｜><｜User｜>", *suf = "<｜Assistant｜></think>";
        CHECK(rc == 0 && ptxt && pl == strlen(pre) + ptl + strlen(suf) && !memcmp(prompt, pre, strlen(pre)) &&
              !memcmp(prompt + strlen(pre), ptxt, ptl) && !strcmp(prompt + pl - strlen(suf), suf),
              "%s: rendered prompt is not BOS User <prompt file> Assistant </think>", ids[k]);
        if (rc == 0) {
            int n = dsv4_tokenize(t, prompt, pl, NULL, 0, err, sizeof err);
            long w = strtol(want->s, NULL, 10);
            printf("  %-22s tokens %d, official usage.prompt_tokens %ld\n", ids[k], n, w);
            CHECK(n == w, "%s: %d tokens, official API counted %ld", ids[k], n, w);
        }
        free(ptxt); free(prompt);
        pj_arena_free(&a);
        free(js);
    }
    dsv4_tokenizer_free(t);
}


/* ---------------------------------------------------------------- images */
static char *render_img(const char *req, dsv4_chat_image **im, int *n, char *err) {
    char *out = NULL; size_t l = 0;
    int rc = dsv4_chat_render_images(req, strlen(req), NULL, &out, &l, im, n, err, 512);
    if (rc) { CHECK(out == NULL && *im == NULL && *n == 0, "failed render left output"); return NULL; }
    CHECK(strlen(out) == l, "length");
    return out;
}

static void expect_img_error(const char *req, const char *needle) {
    char err[512] = "";
    dsv4_chat_image *im = (dsv4_chat_image *)1;
    int n = -1;
    char *out = render_img(req, &im, &n, err);
    CHECK(out == NULL && strstr(err, needle), "request %.70s: want error containing '%s', got '%s'", req, needle,
          out ? out : err);
    free(out);
    /* the plain renderer refuses it too */
    char *o2 = NULL;
    CHECK(render(req, NULL, &o2, err) == -1 && strstr(err, needle), "dsv4_chat_render: %.70s: %s", req, err);
    free(o2);
}

static void test_images(void) {
    char err[512] = "";
    dsv4_chat_image *im = NULL;
    int n = 0;
    /* text and image parts joined with "\n\n"; images reported in prompt order (user + tool result) */
    const char *req =
        "{\"messages\": [{\"role\": \"system\", \"content\": \"s\"},"
        " {\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"Before\"},"
        "  {\"type\": \"image_url\", \"image_url\": {\"url\": \"data:image/png;base64,AAAA\", \"detail\": \"high\"}},"
        "  {\"type\": \"text\", \"text\": \"after\"}, {\"type\": \"image_url\", \"image_url\": \"b.png\"}]},"
        " {\"role\": \"assistant\", \"content\": \"\", \"tool_calls\": [{\"id\": \"c1\", \"type\": \"function\","
        "   \"function\": {\"name\": \"shot\", \"arguments\": \"{}\"}}]},"
        " {\"role\": \"tool\", \"tool_call_id\": \"c1\", \"content\": [{\"type\": \"text\", \"text\": \"got\"},"
        "   {\"type\": \"image\", \"source\": {\"type\": \"base64\", \"media_type\": \"image/jpeg\", \"data\": \"/9j/\"}}]},"
        " {\"role\": \"user\", \"content\": [{\"type\": \"input_image\", \"image_url\": \"https://x/y.png\"}]}]}";
    char *out = render_img(req, &im, &n, err);
    const char *want = "<｜begin▁of▁sentence｜>s<｜User｜>Before\n\n<｜deepseek_image｜>\n\nafter\n\n<｜deepseek_image｜>"
                       "<｜Assistant｜></think>\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"shot\">\n\n</｜DSML｜invoke>\n"
                       "</｜DSML｜tool_calls><｜end▁of▁sentence｜><｜User｜><tool_result>got\n\n<｜deepseek_image｜></tool_result>"
                       "\n\n<｜deepseek_image｜><｜Assistant｜></think>";
    CHECK(out && !strcmp(out, want), "images: got %s (%s)", out ? out : "(null)", err);
    CHECK(n == 4, "images: %d reported, want 4", n);
    if (n == 4) {
        CHECK(!strcmp(im[0].url, "data:image/png;base64,AAAA") && !strcmp(im[0].where, "messages[1].content[1]"),
              "image 0: %s %s", im[0].url, im[0].where);
        CHECK(!strcmp(im[1].url, "b.png") && !strcmp(im[1].where, "messages[1].content[3]"), "image 1: %s %s",
              im[1].url, im[1].where);
        CHECK(!strcmp(im[2].url, "data:image/jpeg;base64,/9j/") && im[2].url_len == strlen(im[2].url) &&
              !strcmp(im[2].where, "messages[3].content[1]"), "image 2: %s %s", im[2].url, im[2].where);
        CHECK(!strcmp(im[3].url, "https://x/y.png") && !strcmp(im[3].where, "messages[4].content[0]"), "image 3: %s",
              im[3].url);
    }
    /* the count of placeholders in the text equals the count reported */
    int k = 0;
    for (const char *p = out; p && (p = strstr(p, "<｜deepseek_image｜>")); p++) k++;
    CHECK(k == n, "%d placeholders, %d images", k, n);
    dsv4_chat_images_free(im, n);
    free(out);

    /* tool results re-ordered by call order: the reported images follow the prompt, not the message order */
    out = render_img("[{\"role\": \"user\", \"content\": \"u\"}, {\"role\": \"assistant\", \"content\": \"\", \"tool_calls\": ["
                     "{\"id\": \"a\", \"function\": {\"name\": \"f\", \"arguments\": \"{}\"}},"
                     "{\"id\": \"b\", \"function\": {\"name\": \"f\", \"arguments\": \"{}\"}}]},"
                     "{\"role\": \"tool\", \"tool_call_id\": \"b\", \"content\": [{\"type\": \"image_url\", \"image_url\": \"B\"}]},"
                     "{\"role\": \"tool\", \"tool_call_id\": \"a\", \"content\": [{\"type\": \"image_url\", \"image_url\": \"A\"}]}]",
                     &im, &n, err);
    CHECK(out && n == 2 && !strcmp(im[0].url, "A") && !strcmp(im[1].url, "B") &&
          !strcmp(im[0].where, "messages[3].content[0]"), "re-ordered tool results: %s", out ? (n ? im[0].url : "none") : err);
    dsv4_chat_images_free(im, n);
    free(out);

    /* no images: NULL list; an empty content list renders as empty text; consecutive user messages merge */
    out = render_img("[{\"role\": \"user\", \"content\": []}, {\"role\": \"user\", \"content\": [{\"type\": \"text\", "
                     "\"text\": \"a\"}, {\"type\": \"text\"}]}]", &im, &n, err);
    CHECK(out && !strcmp(out, "<｜begin▁of▁sentence｜><｜User｜>a\n\n<｜Assistant｜></think>") && im == NULL && n == 0,
          "empty list / text without text: %s (%s)", out ? out : "(null)", err);
    free(out);
    /* dsv4_chat_render on image parts writes the same text without the list */
    char *o2 = NULL;
    CHECK(render("[{\"role\": \"user\", \"content\": [{\"type\": \"image_url\", \"image_url\": {\"url\": \"u\"}}]}]", NULL,
                 &o2, err) == 0 && !strcmp(o2, "<｜begin▁of▁sentence｜><｜User｜><｜deepseek_image｜><｜Assistant｜></think>"),
          "plain render: %s", o2 ? o2 : err);
    free(o2);
    {
        char *o3 = NULL; size_t l3 = 0;
        CHECK(dsv4_chat_render_images("[]", 2, NULL, &o3, &l3, &im, NULL, err, sizeof err) == -1 && o3 == NULL,
              "images without n_images accepted");
    }

    /* refusals, each naming messages[i].content[j] */
    expect_img_error("[{\"role\": \"system\", \"content\": [{\"type\": \"image_url\", \"image_url\": {\"url\": \"u\"}}]},"
                     "{\"role\": \"user\", \"content\": \"u\"}]",
                     "messages[0].content[0]: image parts are allowed only in user and tool messages, not in a 'system' message");
    expect_img_error("[{\"role\": \"user\", \"content\": \"u\"}, {\"role\": \"assistant\", \"content\": [{\"type\": \"text\", "
                     "\"text\": \"t\"}, {\"type\": \"image\", \"source\": {\"type\": \"base64\", \"data\": \"x\"}}]}]",
                     "messages[1].content[1]: image parts are allowed only in user and tool messages, not in a 'assistant'");
    expect_img_error("[{\"role\": \"developer\", \"content\": [{\"type\": \"image_url\", \"image_url\": \"u\"}]}]",
                     "messages[0].content[0]: image parts are allowed only in user and tool messages, not in a 'developer'");
    expect_img_error("[{\"role\": \"user\", \"content\": \"u\"}, {\"role\": \"latest_reminder\", \"content\": "
                     "[{\"type\": \"input_image\", \"image_url\": \"u\"}]}]", "messages[1].content[0]: image parts");
    expect_img_error("[{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"a\"}, {\"type\": \"input_audio\"}]}]",
                     "messages[0].content[1]: content part type 'input_audio' is not supported in a user message");
    expect_img_error("[{\"role\": \"user\", \"content\": [\"a\"]}]", "messages[0].content[0]: content part is not an object");
    expect_img_error("[{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": 3}]}]",
                     "messages[0].content[0]: text: not a string");
    expect_img_error("[{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"see <｜deepseek_image｜>\"}]}]",
                     "messages[0].content[0]: text: contains the image placeholder");
    expect_img_error("[{\"role\": \"user\", \"content\": [{\"type\": \"image_url\", \"image_url\": {\"url\": \"\"}}]}]",
                     "messages[0].content[0]: image_url.url: needs a non-empty string");
    expect_img_error("[{\"role\": \"user\", \"content\": [{\"type\": \"image_url\"}]}]",
                     "messages[0].content[0]: image_url: needs a non-empty string");
    expect_img_error("[{\"role\": \"user\", \"content\": [{\"type\": \"image\", \"source\": {\"type\": \"file\"}}]}]",
                     "messages[0].content[0]: source.type: expected 'base64' or 'url'");
    expect_img_error("[{\"role\": \"user\", \"content\": [{\"type\": \"image\"}]}]", "messages[0].content[0]: image: missing object 'source'");
    expect_img_error("[{\"role\": \"user\", \"content\": [{\"type\": \"image\", \"source\": {\"type\": \"base64\", \"data\": 1}}]}]",
                     "messages[0].content[0]: source.data: needs a non-empty base64 string");
    expect_img_error("[{\"role\": \"user\", \"content\": \"u\"}, {\"role\": \"assistant\", \"content\": \"\", \"tool_calls\": ["
                     "{\"id\": \"a\", \"function\": {\"name\": \"f\", \"arguments\": \"{}\"}}]},"
                     "{\"role\": \"tool\", \"tool_call_id\": \"a\", \"content\": [{\"type\": \"image_url\", \"image_url\": 5}]}]",
                     "messages[2].content[0]: image_url: needs a non-empty string");
    /* a system message's text-only list is still str()-ed as by the V4 encoder (golden system_content_non_string) */

    /* data: URLs (dsv4_data_url_decode): RFC 4648 vectors, padding optional, line breaks skipped, errors named */
    static const char *const vec[][2] = { { "", "" }, { "Zg==", "f" }, { "Zm8=", "fo" }, { "Zm9v", "foo" },
                                          { "Zm9vYg", "foob" }, { "Zm9vYmE=", "fooba" }, { "Zm9v\r\nYmFy", "foobar" } };
    for (size_t k = 0; k < sizeof vec / sizeof vec[0]; k++) {
        char url[64];
        snprintf(url, sizeof url, "data:image/png;base64,%s", vec[k][0]);
        unsigned char *b = NULL;
        size_t bl = 0;
        int rc = dsv4_data_url_decode(url, strlen(url), &b, &bl, "img", err, sizeof err);
        CHECK(rc == 0 && bl == strlen(vec[k][1]) && !memcmp(b, vec[k][1], bl), "base64 '%s': rc %d len %zu (%s)",
              vec[k][0], rc, bl, err);
        free(b);
    }
    static const char *const bad[][2] = {
        { "https://x/a.png", "img: a 'https:' URL; only data: URLs are accepted (nothing is fetched)" },
        { "a.png", "img: not a data: URL" },
        { "data:image/png;base64", "img: malformed data: URL (no ',' before the data)" },
        { "data:image/png,abcd", "img: the data: URL is not base64" },
        { "data:image/png;base64,Zm9v!", "img: malformed base64: byte 0x21 at offset 4 is not in the base64 alphabet" },
        { "data:image/png;base64,Zg==Zg==", "img: malformed base64: data after the '=' padding" },
        { "data:image/png;base64,Zm9vY", "img: malformed base64: the length does not end on a whole group" },
        { "data:image/png;base64,Zm9v=", "img: malformed base64: the length does not end on a whole group" },
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        unsigned char *b = (unsigned char *)1;
        size_t bl = 1;
        int rc = dsv4_data_url_decode(bad[k][0], strlen(bad[k][0]), &b, &bl, "img", err, sizeof err);
        CHECK(rc == -1 && b == NULL && bl == 0 && strstr(err, bad[k][1]), "data URL '%s': rc %d '%s'", bad[k][0], rc, err);
    }
}

/* V4.1 options and the parts of the format the goldens cannot show (docs/encoding.md §10). */
static void test_v41_options(void) {
    char err[512], *out = NULL;
    const char *req = "[{\"role\": \"user\", \"content\": \"hi\"}]";
    dsv4_render_opts o = { .format = DSV4_FORMAT_V41, .thinking = 1 };
    /* the effort: default 75 ("high"); the dsv4_effort values map as named; effort_level wins */
    static const struct { dsv4_effort e; int level; const char *line; } eff[] = {
        { DSV4_EFFORT_NONE, 0, "Reasoning Effort: 75 (" }, { DSV4_EFFORT_HIGH, 0, "Reasoning Effort: 75 (" },
        { DSV4_EFFORT_MAX, 0, "Reasoning Effort: 100 (" }, { DSV4_EFFORT_MAX, 7, "Reasoning Effort: 7 (" },
        { DSV4_EFFORT_NONE, 100, "Reasoning Effort: 100 (" },
    };
    for (size_t k = 0; k < sizeof eff / sizeof eff[0]; k++) {
        o.effort = eff[k].e; o.effort_level = eff[k].level;
        int rc = render(req, &o, &out, err);
        CHECK(rc == 0 && out && !strncmp(out, "<｜begin▁of▁sentence｜><｜System｜>", strlen("<｜begin▁of▁sentence｜><｜System｜>"))
              && strstr(out, eff[k].line), "V4.1 effort %d/%d: %s", (int)eff[k].e, eff[k].level, rc ? err : out);
        free(out); out = NULL;
    }
    CHECK(dsv4_v41_effort_of_name("low") == 50 && dsv4_v41_effort_of_name("high") == 75 &&
          dsv4_v41_effort_of_name("max") == 100 && dsv4_v41_effort_of_name("xhigh") == -1 &&
          dsv4_v41_effort_of_name(NULL) == -1, "dsv4_v41_effort_of_name");
    /* refusals: out of range, a numeric effort in V4 format, an unknown format */
    o.effort = DSV4_EFFORT_NONE; o.effort_level = 101;
    expect_error(req, &o, "101 is outside 1..100");
    o.effort_level = -3;
    expect_error(req, &o, "-3 is outside 1..100");
    dsv4_render_opts v4 = { .effort_level = 50 };
    expect_error(req, &v4, "DeepSeek-V4.1 option");
    dsv4_render_opts bad = { .format = (dsv4_chat_format)7 };
    expect_error(req, &bad, "format: invalid value 7");
    /* the same request renders V4 and V4.1 differently only where the formats differ */
    dsv4_render_opts c4 = { 0 }, c41 = { .format = DSV4_FORMAT_V41 };
    char *a = NULL, *b = NULL;
    CHECK(render(req, &c4, &a, err) == 0 && render(req, &c41, &b, err) == 0 && a && b && !strcmp(a, b),
          "chat mode without system or tools: V4 and V4.1 prompts equal");
    free(a); free(b);
    /* the tool-call registry's bytes are used only in the format they were written in */
    CHECK(remember_raw1() == 0, "registry");
    const char *hist = "[{\"role\": \"user\", \"content\": \"w\"}, {\"role\": \"assistant\", \"content\": \"\", \"tool_calls\": "
                       "[{\"id\": \"raw-1\", \"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"arguments\": "
                       "\"{\\\"location\\\": \\\"Paris\\\"}\"}}]}]";
    CHECK(render(hist, &c41, &out, err) == 0 && out && !strstr(out, "2.50") &&
          strstr(out, "<｜DSML｜ invoke name=\"get_weather\">\n<｜DSML｜ parameter name=\"location\" string=\"true\">Paris"),
          "V4.1 ignores a V4 registry entry: %s", out ? out : err);
    free(out); out = NULL;
    CHECK(render(hist, &c4, &out, err) == 0 && out && strstr(out, "2.50"), "V4 uses its registry entry");
    free(out); out = NULL;
    static const char raw41[] = "<｜DSML｜ invoke name=\"get_weather\">\n<｜DSML｜ parameter name=\"days\" string=\"false\">"
                                "3.0</｜DSML｜ parameter>\n</｜DSML｜ invoke>";
    CHECK(dsv4_toolcall_remember("raw-1", raw41, sizeof raw41 - 1) == 0, "registry v41");
    CHECK(render(hist, &c41, &out, err) == 0 && out && strstr(out, raw41), "V4.1 uses its own registry entry");
    free(out); out = NULL;
    dsv4_toolcall_clear();
}

int main(void) {
    test_official();
    test_generated(GOLDEN_DIR, 0);
    test_generated(GOLDEN_V41_DIR, 1);
    test_v41_options();
    test_float_repr();
    test_errors_and_hooks();
    test_images();
    test_token_counts();
    printf("goldens: 4 official + %d generated + %d V4.1\n", n_generated, n_generated_v41);
    return test_done();
}
