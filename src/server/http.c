/* server/http.c — the HTTP side of `dsv4 serve` on libmicrohttpd: one thread per connection, request bodies
 * collected up to --body-limit (a larger Content-Length gets 413 before the body is read; a chunked body that
 * grows past it is discarded and gets 413), the API key (Authorization: Bearer KEY or x-api-key: KEY; 401),
 * the routing table, and the two reply kinds: a JSON body, or an SSE stream whose text is produced by the API's
 * pump from the job's events (keep-alive comments every 5 s without output, so a vanished client is noticed;
 * when the connection ends the job is cancelled and its slot freed). --timeout closes connections idle for that
 * long, e.g. a client that sends half a request and stops. SIGINT / SIGTERM stop the server cleanly. */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "server/server.h"

typedef struct {
    const char *method, *path, *name;
    int (*fn)(const srv_request *, srv_reply *);
    srv_api_kind kind;
    int open;               /* no API key needed */
} route_t;

static int api_health(const srv_request *q, srv_reply *r);
static int api_metrics(const srv_request *q, srv_reply *r);
static int api_page(const srv_request *q, srv_reply *r);

static const route_t routes[] = {
    {"POST", "/v1/chat/completions", "chat_completions", srv_api_chat, SRV_API_OPENAI, 0},
    {"POST", "/chat/completions", "chat_completions", srv_api_chat, SRV_API_OPENAI, 0},
    {"POST", "/v1/completions", "completions", srv_api_completions, SRV_API_OPENAI, 0},
    {"POST", "/v1/messages", "messages", srv_api_messages, SRV_API_ANTHROPIC, 0},
    {"POST", "/v1/responses", "responses", srv_api_responses, SRV_API_OPENAI, 0},
    {"GET", "/v1/models", "models", srv_api_models, SRV_API_OPENAI, 0},
    {"GET", "/health", "health", api_health, SRV_API_OPENAI, 1},
    {"GET", "/metrics", "metrics", api_metrics, SRV_API_OPENAI, 1},
    {"GET", "/", "page", api_page, SRV_API_OPENAI, 1},
    {"GET", "/index.html", "page", api_page, SRV_API_OPENAI, 1},
};

typedef struct {
    const route_t *rt;
    char *body; size_t len, cap;
    int too_large;
    int answered;
} conn_t;

typedef struct {
    srv_engine *eng;
    const srv_config *cfg;
} server_t;

struct srv_stream {
    srv_job *job;
    srv_pump_fn pump;
    void *api_state;
    void (*api_free)(void *);
    char *out; size_t len, off, cap;
    int finished;
};

/* ------------------------------------------------------------------ small routes */
static int api_health(const srv_request *q, srv_reply *r) {
    int qn, busy, slots;
    srv_engine_load(q->eng, &qn, &busy, &slots);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "ok");
    cJSON_AddNumberToObject(o, "slots", slots);
    cJSON_AddNumberToObject(o, "slots_busy", busy);
    cJSON_AddNumberToObject(o, "queue", qn);
    srv_reply_json(r, 200, o);
    return 0;
}

static int api_metrics(const srv_request *q, srv_reply *r) {
    r->status = 200;
    r->body = srv_metrics_text(q->eng);
    r->content_type = "text/plain; version=0.0.4";
    return 0;
}

/* The chat page: index.html of --web DIR, else of the first of <binary dir>/../../web, <binary dir>/../web,
 * <binary dir>/web, ./web that has one. Read at every request (small; edits show at once). */
static char *read_page(const char *dir, size_t *n) {
    char path[4200];
    snprintf(path, sizeof path, "%s/index.html", dir);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *b = NULL;
    long sz = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (sz > 0 && sz < (1L << 22) && fseek(f, 0, SEEK_SET) == 0 && (b = malloc((size_t)sz + 1)) && fread(b, 1, (size_t)sz, f) == (size_t)sz) {
        b[sz] = 0;
        *n = (size_t)sz;
    } else { free(b); b = NULL; }
    fclose(f);
    return b;
}

static int api_page(const srv_request *q, srv_reply *r) {
    size_t n = 0;
    char *page = NULL;
    if (q->cfg->web_dir) page = read_page(q->cfg->web_dir, &n);
    else {
        char exe[4096], dir[4200];
        ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (k > 0) {
            exe[k] = 0;
            char *slash = strrchr(exe, '/');
            if (slash) *slash = 0;
            const char *rel[] = { "/../../web", "/../web", "/web" };
            for (size_t i = 0; i < 3 && !page; i++) { snprintf(dir, sizeof dir, "%s%s", exe, rel[i]); page = read_page(dir, &n); }
        }
        if (!page) page = read_page("web", &n);
    }
    if (!page) {
        srv_error e;
        srv_err(&e, 404, "invalid_request_error", "not_found", NULL, "the chat page (web/index.html) was not found; start with --web DIR");
        srv_reply_error(r, SRV_API_OPENAI, &e);
        return -1;
    }
    r->status = 200;
    r->body = page;
    r->content_type = "text/html; charset=utf-8";
    return 0;
}

/* ------------------------------------------------------------------ streams */
void srv_stream_put(srv_stream *st, const char *s, size_t n) {
    if (st->len + n > st->cap) {
        size_t cap = (st->len + n) * 2 + 256;
        char *o = realloc(st->out, cap);
        if (!o) return;
        st->out = o; st->cap = cap;
    }
    memcpy(st->out + st->len, s, n);
    st->len += n;
}

void srv_stream_event(srv_stream *st, const char *event, cJSON *data) {
    char *s = cJSON_PrintUnformatted(data);
    if (event) { srv_stream_put(st, "event: ", 7); srv_stream_put(st, event, strlen(event)); srv_stream_put(st, "\n", 1); }
    srv_stream_put(st, "data: ", 6);
    if (s) srv_stream_put(st, s, strlen(s));
    srv_stream_put(st, "\n\n", 2);
    free(s);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    srv_stream *st = cls;
    double idle0 = srv_now();
    for (;;) {
        if (st->off < st->len) {
            size_t n = st->len - st->off < max ? st->len - st->off : max;
            memcpy(buf, st->out + st->off, n);
            st->off += n;
            if (st->off == st->len) st->off = st->len = 0;
            return (ssize_t)n;
        }
        if (st->finished) return MHD_CONTENT_READER_END_OF_STREAM;
        srv_job *j = st->job;
        pthread_mutex_lock(&j->mu);
        st->finished = st->pump(st, j, st->api_state);
        if (!st->finished && st->len == 0) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 250 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
            pthread_cond_timedwait(&j->cv, &j->mu, &ts);
            st->finished = st->pump(st, j, st->api_state);
        }
        pthread_mutex_unlock(&j->mu);
        if (st->len == 0 && !st->finished && srv_now() - idle0 > 5.0) {
            srv_stream_put(st, ": keep-alive\n\n", 14);
            idle0 = srv_now();
        }
    }
}

static void stream_free(void *cls) {
    srv_stream *st = cls;
    srv_job_cancel(st->job);           /* no-op when already done; frees the slot when the client left */
    srv_job_release(st->job);
    if (st->api_free) st->api_free(st->api_state);
    free(st->out);
    free(st);
}

/* ------------------------------------------------------------------ connection handling */
static int conn_gone(void *arg) {
    struct MHD_Connection *c = arg;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return 0;
    char b;
    ssize_t k = recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static enum MHD_Result send_reply(struct MHD_Connection *c, const route_t *rt, srv_reply *r) {
    struct MHD_Response *resp;
    if (r->job) {
        srv_stream *st = calloc(1, sizeof *st);
        if (!st) { srv_job_cancel(r->job); srv_job_release(r->job); if (r->api_free) r->api_free(r->api_state); return MHD_NO; }
        st->job = r->job; st->pump = r->pump; st->api_state = r->api_state; st->api_free = r->api_free;
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, st, stream_free);
        if (!resp) { stream_free(st); return MHD_NO; }
        MHD_add_response_header(resp, "Content-Type", "text/event-stream");
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
    } else {
        size_t n = r->body ? strlen(r->body) : 0;
        resp = MHD_create_response_from_buffer(n, r->body ? r->body : (char *)"", r->body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
        if (!resp) { free(r->body); return MHD_NO; }
        MHD_add_response_header(resp, "Content-Type", r->content_type ? r->content_type : "application/json");
        if (r->retry_after > 0) {
            char ra[16];
            snprintf(ra, sizeof ra, "%d", r->retry_after);
            MHD_add_response_header(resp, "Retry-After", ra);
        }
    }
    srv_metrics_request(rt ? rt->name : "other", r->status);
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ok;
}

static enum MHD_Result reply_error(struct MHD_Connection *c, const route_t *rt, srv_api_kind k, int status, const char *type,
                                   const char *code, const char *msg) {
    srv_error e;
    srv_err(&e, status, type, code, NULL, "%s", msg);
    srv_reply r = {0};
    srv_reply_error(&r, k, &e);
    return send_reply(c, rt, &r);
}

static int key_ok(struct MHD_Connection *c, const char *key) {
    const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (a && !strncmp(a, "Bearer ", 7) && !strcmp(a + 7, key)) return 1;
    const char *x = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "x-api-key");
    return x && !strcmp(x, key);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls) {
    (void)version;
    server_t *S = cls;
    conn_t *cx = *con_cls;
    if (!cx) {
        if (!(cx = calloc(1, sizeof *cx))) return MHD_NO;
        *con_cls = cx;
        int path_known = 0;
        for (size_t i = 0; i < sizeof routes / sizeof *routes; i++)
            if (!strcmp(url, routes[i].path)) {
                path_known = 1;
                if (!strcmp(method, routes[i].method)) cx->rt = &routes[i];
            }
        if (!cx->rt) {
            char msg[256];
            if (path_known) snprintf(msg, sizeof msg, "method %s is not allowed on %s", method, url);
            else snprintf(msg, sizeof msg, "no route for %s %.200s", method, url);
            cx->answered = 1;
            return reply_error(c, NULL, SRV_API_OPENAI, path_known ? 405 : 404, "invalid_request_error", "not_found", msg);
        }
        if (S->cfg->api_key && !cx->rt->open && !key_ok(c, S->cfg->api_key)) {
            cx->answered = 1;
            return reply_error(c, cx->rt, cx->rt->kind, 401, "invalid_request_error", "invalid_api_key",
                               "missing or wrong API key (send 'Authorization: Bearer KEY' or 'x-api-key: KEY')");
        }
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > S->cfg->body_limit) {
            char msg[128];
            snprintf(msg, sizeof msg, "the request body is %s bytes; the limit is %zu (--body-limit)", cl, S->cfg->body_limit);
            cx->answered = 1;
            return reply_error(c, cx->rt, cx->rt->kind, 413, "invalid_request_error", "request_too_large", msg);
        }
        return MHD_YES;
    }
    if (cx->answered) { *upload_data_size = 0; return MHD_YES; }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (cx->too_large || cx->len + n > S->cfg->body_limit) { cx->too_large = 1; return MHD_YES; }
        if (cx->len + n + 1 > cx->cap) {
            size_t cap = (cx->len + n + 1) * 2;
            if (cap > S->cfg->body_limit + 1) cap = S->cfg->body_limit + 1;
            char *b = realloc(cx->body, cap);
            if (!b) { cx->too_large = 1; return MHD_YES; }
            cx->body = b; cx->cap = cap;
        }
        memcpy(cx->body + cx->len, upload_data, n);
        cx->len += n;
        cx->body[cx->len] = 0;
        return MHD_YES;
    }
    cx->answered = 1;
    if (cx->too_large) {
        char msg[128];
        snprintf(msg, sizeof msg, "the request body exceeds the limit of %zu bytes (--body-limit)", S->cfg->body_limit);
        return reply_error(c, cx->rt, cx->rt->kind, 413, "invalid_request_error", "request_too_large", msg);
    }
    srv_request q = { S->eng, S->cfg, method, url, cx->body, cx->len, conn_gone, c };
    srv_reply r = {0};
    cx->rt->fn(&q, &r);
    return send_reply(c, cx->rt, &r);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)cls; (void)c; (void)toe;
    conn_t *cx = *con_cls;
    if (!cx) return;
    free(cx->body);
    free(cx);
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    const srv_config *cfg = cls;
    if (!cfg->verbose) return;
    fputs("dsv4 serve: http: ", stderr);
    vfprintf(stderr, fmt, ap);
}

int srv_run(const srv_config *cfg, dsv4_model *m) {
    char err[512];
    /* every thread created from here on inherits the blocked signals; the main thread waits for them */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)cfg->port);
    if (inet_pton(AF_INET, cfg->host, &addr.sin_addr) != 1) {
        fprintf(stderr, "dsv4 serve: --host '%s' is not an IPv4 address\n", cfg->host);
        dsv4_model_free(m);
        return 2;
    }
    double t0 = srv_now();
    srv_engine *eng = srv_engine_start(m, cfg, err, sizeof err);
    if (!eng) { fprintf(stderr, "dsv4 serve: %s\n", err); dsv4_model_free(m); return 1; }
    if (!srv_engine_has_chat_tokens(eng))
        fprintf(stderr, "dsv4 serve: warning: the tokenizer of %s lacks the DeepSeek-V4 special tokens; chat prompts are "
                "tokenized as plain text and generation ends only at the token limit or a stop string\n", cfg->model_dir);
    server_t S = { eng, cfg };
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
        handler, &S,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->timeout_s,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)512,
        MHD_OPTION_THREAD_STACK_SIZE, (size_t)(1 << 20),
        MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, (void *)cfg,
        MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "dsv4 serve: cannot listen on %s:%d (%s)\n", cfg->host, cfg->port, strerror(errno));
        srv_engine_free(eng);
        dsv4_model_free(m);
        return 1;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    int port = di ? di->port : cfg->port;
    fprintf(stderr, "dsv4 serve: %s ready in %.2f s; %d slot%s of %d tokens; listening on http://%s:%d\n", cfg->model_dir,
            srv_now() - t0, cfg->parallel, cfg->parallel > 1 ? "s" : "", cfg->ctx, cfg->host, port);
    fflush(stderr);
    int sig = 0;
    sigwait(&set, &sig);
    fprintf(stderr, "dsv4 serve: %s, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    MHD_quiesce_daemon(d);
    srv_engine_stop(eng);      /* running streams end now */
    MHD_stop_daemon(d);
    srv_engine_free(eng);
    dsv4_model_free(m);
    return 0;
}
