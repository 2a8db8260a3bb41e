/* tests/test_server_request.c — the server's request-field parsing without a model (src/server/util.c
 * srv_parse_body / srv_get_int / srv_get_num, src/server/request.c srv_parse_sampling / srv_parse_stop /
 * srv_check_messages): fuzzing findings (docs/fuzzing.md) and the ranges the fuzz harness relies on.
 * Prints one line per failed check and ends with "N passed, N failed".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "server/server.h"
#include "testlib.h"

/* Parse `body`, then its sampling fields; returns the status (0 = accepted) and the message in e. */
static int sampling(const char *body, srv_gen *g, srv_error *e) {
    memset(e, 0, sizeof *e);
    memset(g, 0, sizeof *g);
    cJSON *req = NULL;
    if (srv_parse_body(body, strlen(body), &req, e)) return e->status;
    int rc = srv_parse_sampling(req, g, e);
    cJSON_Delete(req);
    return rc ? e->status : 0;
}

static void test_integers_out_of_range(void) {
    srv_gen g;
    srv_error e;
    /* issue 8 fuzzing: the integer check cast 1e300 to long long (undefined behaviour, UBSan abort) */
    static const struct { const char *body, *msg; } bad[] = {
        {"{\"seed\": 1e300}", "'seed' is 1e+300; it must be in ["},
        {"{\"seed\": -1e300}", "'seed' is -1e+300; it must be in ["},
        {"{\"seed\": 1e400}", "'seed' is inf; it must be in ["},
        {"{\"top_k\": 1e19}", "'top_k' is 1e+19; it must be in [0, 1073741824]"},
        {"{\"top_k\": 2.5}", "'top_k' must be an integer"},
        {"{\"n\": 9223372036854775808}", "'n' is 9.22337203685478e+18; it must be in [1, 1048576]"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int st = sampling(bad[i].body, &g, &e);
        EXPECT(st == 400 && strstr(e.msg, bad[i].msg), "%s: status %d, message '%s' (want '%s')", bad[i].body, st, e.msg,
               bad[i].msg);
    }
    int st = sampling("{\"seed\": 9007199254740992, \"top_k\": 40, \"temperature\": 0.5}", &g, &e);
    CHECK(st == 0 && g.sp.seed == 9007199254740992ull && g.sp.top_k == 40 && g.sp.temperature == 0.5f,
          "in-range seed/top_k/temperature: status %d '%s'", st, e.msg);
    st = sampling("{\"seed\": -1}", &g, &e);
    CHECK(st == 0 && g.sp.seed == (uint64_t)-1, "seed -1: status %d '%s'", st, e.msg);
    /* fuzz_server_request: a top_p above 0 that is 0 as a float passed the check, and the sampler refused it */
    static const char *const tiny[] = {"{\"top_p\": 1e-190}", "{\"top_p\": 1e-46}", "{\"top_p\": 0}"};
    for (int i = 0; i < 3; i++) {
        st = sampling(tiny[i], &g, &e);
        CHECK(st == 0 && g.sp.temperature == 0 && g.sp.top_p > 0 && g.sp.top_p <= 1,
              "%s: status %d, temperature %g, top_p %g (want greedy: temperature 0, top_p in (0, 1])", tiny[i], st,
              (double)g.sp.temperature, (double)g.sp.top_p);
    }
    st = sampling("{\"top_p\": 1e-30}", &g, &e);
    CHECK(st == 0 && g.sp.temperature == 1 && g.sp.top_p == 1e-30f, "top_p 1e-30: status %d, top_p %g", st,
          (double)g.sp.top_p);
}

/* The prefix cache compares keys (dsv4_prompt_key), not ids: every position of an image span carries the placeholder
 * id, so two prompts with different images at the same place must part at the span's first position. */
static void test_prefix_keys(void) {
    srv_prefix p = { 0 };
    const int32_t ids[8] = { 0, 5, 6, 93, 93, 93, 93, 7 };
    uint64_t ka[8], kb[8];
    for (int i = 0; i < 8; i++) ka[i] = kb[i] = (uint64_t)(uint32_t)ids[i];
    for (int i = 3; i < 7; i++) { ka[i] = (1ULL << 63) | (0xa000 + (uint64_t)i); kb[i] = (1ULL << 63) | (0xb000 + (uint64_t)i); }
    CHECK(srv_prefix_push(&p, ids, ka, 6) == 0, "push");   /* the session holds 6 positions (inside the span) */
    int restore = 0;
    int r = srv_prefix_match(&p, ids, kb, 8, &restore);
    CHECK(r == 0 && restore == -1, "another image at the same place: reuse %d (want 0: no checkpoint below 3)", r);
    r = srv_prefix_match(&p, ids, ka, 8, &restore);
    CHECK(r == 6 && restore == -1, "the same image: reuse %d (want 6: the session goes on)", r);
    r = srv_prefix_match(&p, ids, NULL, 8, &restore);
    CHECK(r == 0, "the ids alone (a text prompt with the placeholder id) must not match the image span: reuse %d", r);
    srv_prefix_free(&p);
    /* text: keys are the ids, K NULL on both sides */
    CHECK(srv_prefix_push(&p, ids, NULL, 3) == 0, "push text");
    r = srv_prefix_match(&p, ids, ka, 8, &restore);
    CHECK(r == 3, "a text history extends into a prompt with images: reuse %d (want 3)", r);
    srv_prefix_free(&p);
}

/* srv_has_part_type (the Anthropic "image" and Responses "input_image" detection): only a list, only an exact type. */
static void test_has_part_type(void) {
    static const struct { const char *json, *type; int want; } cases[] = {
        {"[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"image\"}]", "image", 1},
        {"[{\"type\":\"image\"}]", "input_image", 0},
        {"[{\"type\":\"input_image\"}]", "input_image", 1},
        {"[{\"type\":\"images\"},{\"type\":7},\"image\",{\"text\":\"image\"}]", "image", 0},
        {"{\"type\":\"image\"}", "image", 0},
        {"\"image\"", "image", 0},
        {"[]", "image", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cJSON *c = cJSON_Parse(cases[i].json);
        CHECK(c != NULL, "parse %s", cases[i].json);
        int got = srv_has_part_type(c, cases[i].type);
        EXPECT(got == cases[i].want, "srv_has_part_type(%s, %s) = %d, want %d", cases[i].json, cases[i].type, got,
               cases[i].want);
        cJSON_Delete(c);
    }
    EXPECT(srv_has_part_type(NULL, "image") == 0, "srv_has_part_type(NULL) is 0");
}

int main(void) {
    test_has_part_type();
    test_integers_out_of_range();
    test_prefix_keys();
    return test_done();
}
