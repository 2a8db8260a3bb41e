/* server/server.h — internals of `dsv4 serve` shared by the src/server files (not a public API).
 *
 * Layers (one concern per file):
 *   http.c           libmicrohttpd daemon: connections, body limit, API key, routing, SSE transport, errors,
 *                    the chat page at / (web/index.html)
 *   request.c        the common request form (OpenAI-style messages + options) -> rendered prompt tokens, checks
 *   api_openai.c     POST /v1/chat/completions, POST /v1/completions, GET /v1/models
 *   api_anthropic.c  POST /v1/messages
 *   api_responses.c  POST /v1/responses
 *   engine.c         slots, bounded queue, scheduler thread: prefill/decode, sampling, parsing, stop strings
 *   prefix_cache.c   per-slot token history and state checkpoints; choosing the slot and the reusable prefix
 *   disk_cache.c     prefix states saved on disk (--cache-dir): tmp + fsync + rename, checksum, LRU bound
 *   metrics.c        counters and the Prometheus text of GET /metrics
 *   util.c           JSON/UTF-8/id helpers and the API-shaped error bodies
 *
 * Threads: libmicrohttpd runs one thread per connection (handlers may block); one scheduler thread owns the
 * sessions and runs every evaluation. A job is shared by both sides (reference count 2) and protected by its
 * own mutex; the connection side waits on the job's condition variable for events.
 */
#ifndef DSV4_SERVER_SERVER_H
#define DSV4_SERVER_SERVER_H
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "dsv4.h"
#include "dsv4_chat.h"
#include "dsv4_parse.h"
#include "dsv4_vision.h"

/* ------------------------------------------------------------------ configuration (cmd_serve.c fills it) */
typedef struct {
    const char *model_dir, *host, *api_key, *model_name, *cache_dir;
    size_t cache_size;          /* bytes of --cache-dir files at most */
    const char *web_dir;        /* --web: the directory of the chat page (NULL: found next to the binary) */
    int port, ctx, parallel, queue, timeout_s, threads;
    size_t body_limit;          /* bytes; larger request bodies get 413 */
    int checkpoint_stride;      /* tokens between prefill checkpoints (prefix reuse granularity) */
    int max_checkpoints;        /* per slot */
    int verbose;
    int64_t max_image_pixels;   /* an image of more pixels (width x height) is refused from its header (400); 0 =
                                 * SRV_MAX_IMAGE_PIXELS */
} srv_config;
/* The default pixel limit of a request's image: 4096 x 4096 (the tower sees at most 1302 x 1302 pixels of V4.1-Flash;
 * a larger image is only shrunk), so a request cannot make the server decode a 178-megapixel image. */
#define SRV_MAX_IMAGE_PIXELS (4096LL * 4096)

/* ------------------------------------------------------------------ jobs (engine.c) */
typedef enum { SRV_EV_REASONING = 1, SRV_EV_CONTENT = 2, SRV_EV_TOOL_CALL = 3 } srv_ev_kind;
typedef struct {
    srv_ev_kind kind;
    char *text; size_t len;          /* reasoning/content delta (valid UTF-8) */
    char *id, *name, *args;          /* tool call (args: JSON object text) */
    int index;                       /* tool-call index */
} srv_event;

#define SRV_MAX_TOP_LOGPROBS 20
typedef struct {
    int32_t token;
    float logprob;
    int ntop;
    int32_t top[SRV_MAX_TOP_LOGPROBS];
    float top_lp[SRV_MAX_TOP_LOGPROBS];
} srv_logprob;

typedef enum { SRV_FIN_NONE = 0, SRV_FIN_STOP, SRV_FIN_LENGTH, SRV_FIN_TOOL_CALLS, SRV_FIN_CANCELLED, SRV_FIN_ERROR } srv_finish;

typedef struct srv_job {
    /* request: set before srv_engine_submit, read-only afterwards */
    int32_t *prompt; int n_prompt;   /* owned; with images: the expanded ids (every image position the placeholder) */
    dsv4_prompt *vprompt;            /* owned, or NULL: the prompt with its images (dsv4_prompt_build), evaluated
                                      * with dsv4_eval_prompt */
    uint64_t *keys;                  /* owned, or NULL (text: the ids are the keys): dsv4_prompt_key of each
                                      * position, compared by the prefix cache (image positions share one id) */
    int mode;                        /* 1 thinking, 0 chat (parser modes), -1 raw text (/v1/completions) */
    dsv4_sampler_params sp;
    int max_tokens;
    char **stop; int n_stop;         /* owned stop strings (matched in content / raw text) */
    int logprobs, top_logprobs;
    int ignore_eos;                  /* EOS is sampled like any token (benchmarks, tests) */
    char *force_text;                /* owned, or NULL: text forced into the output where the reply begins (after
                                      * the reasoning in thinking mode): the DSML opening of a tool call, so that
                                      * tool_choice required / a named tool is obeyed (srv_submit builds it) */
    uint64_t id_seed;
    /* shared state, under mu */
    pthread_mutex_t mu; pthread_cond_t cv;
    srv_event *ev; int nev, cap_ev;
    srv_logprob *lp; int nlp, cap_lp;
    int started;                     /* prefill finished, first token about to be sampled */
    int done;
    srv_finish finish;
    const char *stop_hit;            /* the stop string matched (points into stop[]) */
    int n_cached, n_gen, n_reasoning_tok;
    double t_submit, t_first_token, t_done;
    char err[256];
    int cancelled;                   /* set by the connection side (client gone) */
    int refs;
} srv_job;

typedef struct srv_engine srv_engine;

/* New job (refs 1, the caller's); takes ownership of prompt. NULL when out of memory (prompt freed). */
srv_job *srv_job_new(int32_t *prompt, int n_prompt);
/* Drop one reference; the last frees everything. */
void srv_job_release(srv_job *j);
/* Mark cancelled (client gone) and wake the engine; the engine finishes it at its next step. */
void srv_job_cancel(srv_job *j);

/* Start the engine: loads nothing (the model is given), opens cfg->parallel sessions of cfg->ctx tokens and the
 * scheduler thread. Returns NULL with err on failure. */
srv_engine *srv_engine_start(dsv4_model *m, const srv_config *cfg, char *err, size_t errlen);
/* Stop the scheduler: running and queued jobs end with an error, later submits fail (503). The engine stays
 * valid for the connection threads until srv_engine_free. */
void srv_engine_stop(srv_engine *e);
void srv_engine_free(srv_engine *e);
/* Queue a job (the engine takes its own reference). Returns 0, or -1 when the queue is full (503). */
int srv_engine_submit(srv_engine *e, srv_job *j);
const dsv4_tokenizer *srv_engine_tokenizer(const srv_engine *e);
const dsv4_model *srv_engine_model(const srv_engine *e);
/* The prompt format of the engine's model: DSV4_FORMAT_V41 for a DeepSeek-V4.1 model, else DSV4_FORMAT_V4. */
dsv4_chat_format srv_engine_format(const srv_engine *e);
int64_t srv_engine_max_image_pixels(const srv_engine *e);
int srv_engine_ctx(const srv_engine *e);
int srv_engine_vocab(const srv_engine *e);
int srv_engine_has_chat_tokens(const srv_engine *e);
void srv_engine_load(srv_engine *e, int *queued, int *busy, int *slots);

/* ------------------------------------------------------------------ prefix cache (prefix_cache.c) */
#define SRV_MAX_CP 64
typedef struct {
    int32_t *toks; int ntok, cap;    /* tokens whose state the session holds, in order */
    uint64_t *keys;                  /* [cap] their prefix keys (dsv4_prompt_key: a text token's key is its id, an
                                      * image position's the image digest and offset); matching compares these */
    dsv4_checkpoint *cp[SRV_MAX_CP]; int ncp;   /* ascending positions, all <= ntok */
    dsv4_checkpoint *spare;          /* a freed checkpoint kept for reuse */
} srv_prefix;
/* Tokens of P (n) this slot can reuse: the longest common prefix with its history, capped at n - 1 (one token
 * must be evaluated for the logits); when that is not the whole history, the highest checkpoint at or below
 * it. *restore receives the checkpoint index to restore or -1 (live extension, or 0 tokens). */
int srv_prefix_match(const srv_prefix *p, const int32_t *P, const uint64_t *K, int n, int *restore);
/* Bring session s to the matched prefix: restore checkpoint `restore` (dropping higher ones) or, when reuse
 * is 0, reset the session and drop everything. Returns 0 or -1 with err. */
int srv_prefix_apply(srv_prefix *p, dsv4_session *s, int reuse, int restore, char *err, size_t errlen);
/* Record tokens evaluated into s (appended to the history) with their keys (K NULL: text, key = id). In match, K
 * NULL means the same. Returns 0 or -1 (out of memory). */
int srv_prefix_push(srv_prefix *p, const int32_t *t, const uint64_t *K, int n);
/* Save a checkpoint of s at its current position (bounded: thins out old ones). Returns 0 or -1 with err. */
int srv_prefix_checkpoint(srv_prefix *p, const dsv4_session *s, int max_cp, char *err, size_t errlen);
void srv_prefix_free(srv_prefix *p);
size_t srv_prefix_bytes(const srv_prefix *p);

/* ------------------------------------------------------------------ disk cache (disk_cache.c) */
typedef struct srv_disk srv_disk;
/* Open (create) the cache directory, index its files of model fingerprint fp, delete leftover .tmp files, evict
 * down to limit bytes. NULL with err on failure. */
srv_disk *srv_disk_open(const char *dir, size_t limit, uint64_t fp, char *err, size_t errlen);
void srv_disk_close(srv_disk *d);
/* Longest saved prefix of P[0..n) of at most n - 1 tokens (0 = none); *entry receives its index. */
int srv_disk_match(srv_disk *d, const int32_t *P, int n, int *entry);
/* Read entry i (checksum verified), import it into s, and give its tokens (malloc'd) in *toks, their count in *ntok. On failure
 * the entry is dropped (a corrupt file deleted) and -1 returned with err. */
int srv_disk_load(srv_disk *d, int i, dsv4_session *s, int32_t **toks, int *ntok, char *err, size_t errlen);
/* Save s's state (its position must be n) with its tokens, unless that prefix is saved already or cannot fit.
 * tmp + fsync + rename. 0 or -1 with err. */
int srv_disk_save(srv_disk *d, const dsv4_session *s, const int32_t *toks, int n, char *err, size_t errlen);
size_t srv_disk_total(srv_disk *d, int *files);

/* ------------------------------------------------------------------ metrics (metrics.c) */
void srv_metrics_request(const char *endpoint, int status);
void srv_metrics_tokens(int prompt, int cached, int generated, double prefill_s, double decode_s);
void srv_metrics_rejected(void);
void srv_metrics_image(void);   /* one image run through the vision tower */
void srv_metrics_batch(int nb);   /* one decode step of nb slots */
/* Prometheus text exposition; malloc'd. */
char *srv_metrics_text(srv_engine *e);

/* ------------------------------------------------------------------ common request form (request.c) */
typedef struct {
    int thinking;                    /* 1 thinking, 0 chat */
    dsv4_effort effort;              /* DeepSeek-V4: a named effort (docs/encoding.md §3.3) */
    int effort_level;                /* an integer effort 1..100 (DeepSeek-V4.1 only), 0 = not given */
    int effort_v41;                  /* the V4.1 level of a named effort (low 50, high 75, max 100), 0 = none named */
    int max_tokens;                  /* 0 = up to the context */
    dsv4_sampler_params sp;
    char **stop; int n_stop;         /* owned until moved into the job */
    int logprobs, top_logprobs;
    int ignore_eos;
    int tool_force;                  /* 0 auto; 1 a tool call is required; 2 the tool tool_name is required */
    char tool_name[128];
    const char *prompt_param;        /* the client's name of the prompt field in errors about the whole prompt
                                      * (placeholders, image count, context length): NULL = "messages" */
    dsv4_prompt *vprompt;            /* set by srv_render_tokens when the messages hold images; moved into the job by
                                      * srv_submit (srv_gen_free frees it otherwise) */
} srv_gen;

/* Error of a request: HTTP status, OpenAI error type / code, param and message. */
typedef struct {
    int status;
    const char *type, *code;
    char param[128];
    char msg[512];
} srv_error;
int srv_err(srv_error *e, int status, const char *type, const char *code, const char *param, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 6, 7)))
#endif
    ;

/* Render messages/tools/response_format (cJSON, OpenAI chat form, validated here) into prompt tokens.
 * Returns 0, or -1 with e filled (400: bad message, 400 context_length_exceeded, 500 out of memory). */
int srv_render_tokens(srv_engine *eng, const cJSON *messages, const cJSON *tools, const cJSON *response_format,
                      srv_gen *g, int32_t **out, int *n_out, srv_error *e);
/* A model with a vision tower: the prompt ids must hold exactly n_images placeholder ids (image_token_id): placeholder
 * text typed into a message or a raw prompt would otherwise be evaluated as a bare token. 0, or -1 with e (400). */
int srv_check_placeholders(srv_engine *eng, const int32_t *ids, int n, int n_images, const char *param, srv_error *e);
/* Validate an OpenAI-form message list in place (content parts joined to strings, tool ids matched). */
int srv_check_messages(cJSON *messages, srv_error *e);
/* Parse the common sampling fields of a request object (names as in OpenAI). Returns 0 or -1 with e. */
int srv_parse_sampling(const cJSON *req, srv_gen *g, srv_error *e);
/* Parse "stop" (string or array of strings, at most 16) into g. */
int srv_parse_stop(const cJSON *v, const char *param, srv_gen *g, srv_error *e);
/* reasoning_effort / reasoning.effort values -> (thinking, effort, effort_level, effort_v41); a string level, or an
 * integer 1..100 (DeepSeek-V4.1: docs/encoding.md §10.2; refused at render time for a V4 model); returns -1 with e
 * on an unknown value. */
int srv_parse_effort(const cJSON *v, const char *param, srv_gen *g, srv_error *e);
/* A prompt of n positions must leave room for a reply in the server's context: 0, or -1 with e (400
 * context_length_exceeded naming `param`, the client's prompt field). */
int srv_check_ctx(srv_engine *eng, int n, const char *param, srv_error *e);
/* Build, submit and hand back a job for prompt tokens; checks the context. Returns NULL with e (503 queue full). */
srv_job *srv_submit(srv_engine *eng, int32_t *toks, int n, srv_gen *g, srv_error *e);
/* Require a tool call in the reply: any tool (name NULL) or the tool `name` (tool_choice required / any / named;
 * a name longer than g->tool_name requires any tool). srv_submit turns it into the job's force_text. */
void srv_force_tool(srv_gen *g, const char *name);
/* The text of a content field: a string, null (""), or a list of {type, text} parts whose type is one of the
 * NULL-terminated `types`, concatenated. malloc'd; NULL with e filled: 400 naming `param` (not a string or list; a
 * part of another type: "only text <noun>s are supported here"), or 500 of type oom_type when out of memory. */
char *srv_text_parts(const cJSON *c, const char *param, const char *const *types, const char *noun,
                     const char *oom_type, srv_error *e);
void srv_gen_free(srv_gen *g);
/* Wait (blocking) until the job is done or `gone` reports the client vanished (then cancels). */
void srv_job_wait(srv_job *j, int (*gone)(void *), void *gone_arg);

/* ------------------------------------------------------------------ http responses (http.c) */
typedef struct srv_stream srv_stream;
/* A streaming response: `pump` is called with the job locked after new events; it appends SSE text with
 * srv_stream_put and returns 1 when the stream is complete. */
typedef int (*srv_pump_fn)(srv_stream *st, srv_job *j, void *api_state);
void srv_stream_put(srv_stream *st, const char *s, size_t n);
void srv_stream_event(srv_stream *st, const char *event, cJSON *data);   /* "event: E\ndata: JSON\n\n" (E may be NULL) */

typedef struct {
    int status;
    char *body;                      /* malloc'd JSON (non-streaming) */
    const char *content_type;
    int retry_after;                 /* seconds, 0 = none */
    /* streaming */
    srv_job *job;
    srv_pump_fn pump;
    void *api_state;
    void (*api_free)(void *);
} srv_reply;

typedef struct {
    srv_engine *eng;
    const srv_config *cfg;
    const char *method, *url;
    const char *body; size_t body_len;
    int (*gone)(void *); void *gone_arg;   /* client disconnected? (for blocking waits) */
} srv_request;

typedef enum { SRV_API_OPENAI, SRV_API_ANTHROPIC } srv_api_kind;
/* Fill r with the API-shaped error body for e. */
void srv_reply_error(srv_reply *r, srv_api_kind k, const srv_error *e);
void srv_reply_json(srv_reply *r, int status, cJSON *body);   /* takes body */

int srv_api_chat(const srv_request *q, srv_reply *r);
int srv_api_completions(const srv_request *q, srv_reply *r);
int srv_api_models(const srv_request *q, srv_reply *r);
int srv_api_messages(const srv_request *q, srv_reply *r);
int srv_api_responses(const srv_request *q, srv_reply *r);

/* Run the server on model m (owned: freed before returning) until SIGINT/SIGTERM. Returns the exit status. */
int srv_run(const srv_config *cfg, dsv4_model *m);

/* ------------------------------------------------------------------ util.c */
long srv_utf8_invalid_at(const char *s, size_t n);
/* Copy of s[0..n) with invalid UTF-8 replaced by U+FFFD (malloc'd, NUL-terminated). */
char *srv_utf8_clean(const char *s, size_t n);
/* Random id with prefix ("chatcmpl-", "msg_", "resp_") into buf (>= 48 bytes). */
const char *srv_make_id(const char *prefix, char *buf);
double srv_now(void);
/* Parse the whole body as JSON object; -1 with e (invalid UTF-8, not JSON, not an object). */
int srv_parse_body(const char *body, size_t n, cJSON **out, srv_error *e);
/* Typed getters: a missing key leaves *out unchanged and returns 0; a present key of the wrong type -> -1 + e. */
int srv_get_bool(const cJSON *o, const char *key, int *out, srv_error *e);
int srv_get_int(const cJSON *o, const char *key, long lo, long hi, long *out, srv_error *e);
int srv_get_num(const cJSON *o, const char *key, double lo, double hi, double *out, srv_error *e);
/* 1 if c is a list holding an object whose "type" is the string `type` (an image part: "image", "input_image"). */
int srv_has_part_type(const cJSON *c, const char *type);
/* Add a string of n bytes (may hold NUL) to a cJSON object / create a string item. */
cJSON *srv_json_strn(const char *s, size_t n);
const char *srv_finish_openai(srv_finish f);

#endif
