/* tests/fuzz/fuzz_server_request.c — libFuzzer harness: the HTTP server's request parsing (src/server/util.c
 * srv_parse_body, src/server/request.c srv_parse_sampling / srv_parse_stop / srv_parse_effort /
 * srv_check_messages), the steps every API handler runs on a request body before it needs the model.
 *
 * Input: the request body. Properties: no crash, leak or UB; a refused body or field gives an error with an HTTP
 * status in 400..599 and a non-empty message; accepted settings are inside their documented ranges
 * (temperature [0, 2], top_p (0, 1], top_k >= 0, at most 16 non-empty stop strings); messages that pass
 * srv_check_messages are then rendered as the server does (dsv4_chat_render of {"messages": ...} with the
 * request's thinking mode and effort), which may refuse them but must not crash.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "dsv4_chat.h"
#include "server/server.h"
#include "fuzz_util.h"

static void expect_error(const srv_error *e, const char *where) {
    FUZZ_CHECK(e->status >= 400 && e->status <= 599 && e->msg[0], "%s: status %d, message '%s'", where, e->status,
               e->msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    srv_error e;
    memset(&e, 0, sizeof e);
    cJSON *req = NULL;
    if (srv_parse_body((const char *)data, size, &req, &e) != 0) {
        FUZZ_CHECK(req == NULL, "refused body left a value");
        expect_error(&e, "body");
        return 0;
    }
    FUZZ_CHECK(cJSON_IsObject(req), "accepted body is not an object");
    srv_gen g;
    memset(&g, 0, sizeof g);
    g.thinking = 1;
    int rc = srv_parse_sampling(req, &g, &e);
    if (!rc) rc = srv_parse_stop(cJSON_GetObjectItemCaseSensitive(req, "stop"), "stop", &g, &e);
    if (!rc) rc = srv_parse_effort(cJSON_GetObjectItemCaseSensitive(req, "reasoning_effort"), "reasoning_effort", &g, &e);
    if (rc) {
        expect_error(&e, "settings");
    } else {
        FUZZ_CHECK(g.sp.temperature >= 0 && g.sp.temperature <= 2, "temperature %g", (double)g.sp.temperature);
        FUZZ_CHECK(g.sp.top_p > 0 && g.sp.top_p <= 1, "top_p %g", (double)g.sp.top_p);
        FUZZ_CHECK(g.sp.top_k >= 0, "top_k %d", g.sp.top_k);
        FUZZ_CHECK(g.n_stop >= 0 && g.n_stop <= 16, "%d stop strings", g.n_stop);
        for (int i = 0; i < g.n_stop; i++) FUZZ_CHECK(g.stop[i] && g.stop[i][0], "stop string %d empty", i);
        cJSON *messages = cJSON_GetObjectItemCaseSensitive(req, "messages");
        if (messages) {
            if (srv_check_messages(messages, &e) != 0) {
                expect_error(&e, "messages");
            } else {
                cJSON *r = cJSON_CreateObject();
                cJSON_AddItemReferenceToObject(r, "messages", messages);
                char *json = cJSON_PrintUnformatted(r);
                cJSON_Delete(r);
                FUZZ_CHECK(json, "out of memory");
                dsv4_render_opts o;
                memset(&o, 0, sizeof o);
                o.thinking = g.thinking;
                o.effort = g.effort;
                char *prompt = NULL, err[512] = "";
                size_t plen = 0;
                if (dsv4_chat_render(json, strlen(json), &o, &prompt, &plen, err, sizeof err) == 0)
                    FUZZ_CHECK(prompt && prompt[plen] == 0, "prompt not NUL-terminated");
                else
                    FUZZ_CHECK(!prompt && err[0], "render failed without a message");
                free(prompt);
                free(json);
            }
        }
    }
    srv_gen_free(&g);
    cJSON_Delete(req);
    return 0;
}
