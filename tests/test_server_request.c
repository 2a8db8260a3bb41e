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
}

int main(void) {
    test_integers_out_of_range();
    return test_done();
}
