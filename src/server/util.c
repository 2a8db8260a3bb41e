/* server/util.c — small helpers of the server: strict UTF-8 checks, ids, time, typed JSON getters with
 * API-shaped errors, and the error bodies of the OpenAI and Anthropic APIs. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "server/server.h"

/* Length of the valid strict UTF-8 character at s (n bytes available), or 0 when invalid. */
static size_t utf8_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t k; unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) k = 2;
    else if (c >= 0xE0 && c <= 0xEF) { k = 3; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
    else if (c >= 0xF0 && c <= 0xF4) { k = 4; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
    else return 0;
    if (n < k) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < k; i++) if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return k;
}

long srv_utf8_invalid_at(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_len(u + i, n - i);
        if (!k) return (long)i;
        i += k;
    }
    return -1;
}

char *srv_utf8_clean(const char *s, size_t n) {
    char *o = malloc(3 * n + 1);
    if (!o) return NULL;
    size_t w = 0;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_len(u + i, n - i);
        if (k && !(k == 1 && u[i] == 0)) { memcpy(o + w, s + i, k); w += k; i += k; }
        else { memcpy(o + w, "\xEF\xBF\xBD", 3); w += 3; i++; }
    }
    o[w] = 0;
    return o;
}

double srv_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const char *srv_make_id(const char *prefix, char *buf) {
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static uint64_t state;
    pthread_mutex_lock(&mu);
    if (!state) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        state = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^ 0x9E3779B97F4A7C15ull;
    }
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    pthread_mutex_unlock(&mu);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    snprintf(buf, 48, "%s%016llx", prefix, (unsigned long long)z);
    return buf;
}

int srv_err(srv_error *e, int status, const char *type, const char *code, const char *param, const char *fmt, ...) {
    e->status = status;
    e->type = type;
    e->code = code;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return -1;
}

int srv_parse_body(const char *body, size_t n, cJSON **out, srv_error *e) {
    *out = NULL;
    if (!body || n == 0) return srv_err(e, 400, "invalid_request_error", NULL, NULL, "the request body is empty (a JSON object is required)");
    long bad = srv_utf8_invalid_at(body, n);
    if (bad >= 0)
        return srv_err(e, 400, "invalid_request_error", NULL, NULL, "the request body is not valid UTF-8 (byte 0x%02x at offset %ld)",
                       (unsigned char)body[bad], bad);
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(body, n, &end, 0);
    if (!j) {
        long off = end ? (long)(end - body) : 0;
        return srv_err(e, 400, "invalid_request_error", NULL, NULL, "the request body is not valid JSON (error near byte %ld)", off);
    }
    /* only whitespace may follow */
    for (const char *p = end; p && p < body + n; p++)
        if (*p != ' ' && *p != '\n' && *p != '\r' && *p != '\t') {
            cJSON_Delete(j);
            return srv_err(e, 400, "invalid_request_error", NULL, NULL, "the request body has data after the JSON value (byte %ld)", (long)(p - body));
        }
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return srv_err(e, 400, "invalid_request_error", NULL, NULL, "the request body must be a JSON object");
    }
    *out = j;
    return 0;
}

int srv_get_bool(const cJSON *o, const char *key, int *out, srv_error *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsBool(v)) return srv_err(e, 400, "invalid_request_error", "invalid_type", key, "'%s' must be a boolean", key);
    *out = cJSON_IsTrue(v);
    return 0;
}

int srv_get_num(const cJSON *o, const char *key, double lo, double hi, double *out, srv_error *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v)) return srv_err(e, 400, "invalid_request_error", "invalid_type", key, "'%s' must be a number", key);
    if (!(v->valuedouble >= lo && v->valuedouble <= hi))
        return srv_err(e, 400, "invalid_request_error", "invalid_value", key, "'%s' is %g; it must be in [%g, %g]", key, v->valuedouble, lo, hi);
    *out = v->valuedouble;
    return 0;
}

int srv_get_int(const cJSON *o, const char *key, long lo, long hi, long *out, srv_error *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return 0;
    double d = v->valuedouble;
    /* floor, not a cast to an integer type: that is undefined beyond its range (issue 8 fuzzing: "seed": 1e300) */
    if (!cJSON_IsNumber(v) || d != floor(d))
        return srv_err(e, 400, "invalid_request_error", "invalid_type", key, "'%s' must be an integer", key);
    if (d < (double)lo || d > (double)hi)
        return srv_err(e, 400, "invalid_request_error", "invalid_value", key, "'%s' is %.15g; it must be in [%ld, %ld]", key, d, lo, hi);
    *out = (long)d;
    return 0;
}

cJSON *srv_json_strn(const char *s, size_t n) {
    char *t = malloc(n + 1);
    if (!t) return NULL;
    memcpy(t, s, n);
    t[n] = 0;
    cJSON *j = cJSON_CreateString(t);
    free(t);
    return j;
}

const char *srv_finish_openai(srv_finish f) {
    switch (f) {
    case SRV_FIN_LENGTH: return "length";
    case SRV_FIN_TOOL_CALLS: return "tool_calls";
    default: return "stop";
    }
}

void srv_reply_json(srv_reply *r, int status, cJSON *body) {
    r->status = status;
    r->body = body ? cJSON_PrintUnformatted(body) : NULL;
    r->content_type = "application/json";
    cJSON_Delete(body);
}

void srv_reply_error(srv_reply *r, srv_api_kind k, const srv_error *e) {
    cJSON *o = cJSON_CreateObject(), *er = cJSON_CreateObject();
    if (k == SRV_API_ANTHROPIC) {
        const char *t = e->status == 401 ? "authentication_error" : e->status == 404 ? "not_found_error"
                      : e->status == 413 ? "request_too_large" : e->status == 503 ? "overloaded_error"
                      : e->status >= 500 ? "api_error" : "invalid_request_error";
        cJSON_AddStringToObject(o, "type", "error");
        cJSON_AddStringToObject(er, "type", t);
        cJSON_AddStringToObject(er, "message", e->msg);
    } else {
        cJSON_AddStringToObject(er, "message", e->msg);
        cJSON_AddStringToObject(er, "type", e->type ? e->type : "invalid_request_error");
        if (e->param[0]) cJSON_AddStringToObject(er, "param", e->param); else cJSON_AddNullToObject(er, "param");
        if (e->code) cJSON_AddStringToObject(er, "code", e->code); else cJSON_AddNullToObject(er, "code");
    }
    cJSON_AddItemToObject(o, "error", er);
    srv_reply_json(r, e->status, o);
    if (e->status == 503) r->retry_after = 1;
}

int srv_has_part_type(const cJSON *c, const char *type) {
    const cJSON *b;
    if (!cJSON_IsArray(c)) return 0;
    cJSON_ArrayForEach(b, c) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(b, "type");
        if (cJSON_IsString(t) && !strcmp(t->valuestring, type)) return 1;
    }
    return 0;
}
