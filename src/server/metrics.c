/* server/metrics.c — process-wide counters of `dsv4 serve` and their Prometheus text exposition (GET /metrics,
 * text format 0.0.4). Requests by endpoint and status, prompt / cached / generated tokens, seconds spent in
 * prefill and decode (their ratios give tok/s), requests refused because the queue was full, and the current
 * queue length and busy slots. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "server/server.h"

#define MAX_SERIES 64
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct { char endpoint[48]; int status; unsigned long n; } series[MAX_SERIES];
static int nseries;
static unsigned long long prompt_tok, cached_tok, gen_tok, rejected, cache_hits, prompts, batch_steps, batch_rows, images;
static double prefill_s, decode_s;

void srv_metrics_request(const char *endpoint, int status) {
    pthread_mutex_lock(&mu);
    int i;
    for (i = 0; i < nseries; i++) if (series[i].status == status && !strcmp(series[i].endpoint, endpoint)) break;
    if (i == nseries && nseries < MAX_SERIES) {
        snprintf(series[i].endpoint, sizeof series[i].endpoint, "%s", endpoint);
        series[i].status = status;
        nseries++;
    }
    if (i < nseries) series[i].n++;
    pthread_mutex_unlock(&mu);
}

void srv_metrics_tokens(int prompt, int cached, int generated, double pre_s, double dec_s) {
    pthread_mutex_lock(&mu);
    if (prompt > 0) { prompts++; if (cached > 0) cache_hits++; }
    prompt_tok += (unsigned)prompt; cached_tok += (unsigned)cached; gen_tok += (unsigned)generated;
    prefill_s += pre_s; decode_s += dec_s;
    pthread_mutex_unlock(&mu);
}

void srv_metrics_batch(int nb) {
    pthread_mutex_lock(&mu);
    batch_steps++;
    batch_rows += (unsigned)nb;
    pthread_mutex_unlock(&mu);
}

void srv_metrics_image(void) {
    pthread_mutex_lock(&mu);
    images++;
    pthread_mutex_unlock(&mu);
}

void srv_metrics_rejected(void) {
    pthread_mutex_lock(&mu);
    rejected++;
    pthread_mutex_unlock(&mu);
}

char *srv_metrics_text(srv_engine *e) {
    size_t cap = 8192 + (size_t)MAX_SERIES * 160;
    char *b = malloc(cap);
    if (!b) return NULL;
    int q = 0, busy = 0, slots = 0;
    if (e) srv_engine_load(e, &q, &busy, &slots);
    size_t w = 0;
#define P(...) do { int k_ = snprintf(b + w, cap - w, __VA_ARGS__); if (k_ > 0) w += (size_t)k_ < cap - w ? (size_t)k_ : cap - w - 1; } while (0)
    pthread_mutex_lock(&mu);
    P("# HELP dsv4_requests_total HTTP requests by endpoint and status.\n# TYPE dsv4_requests_total counter\n");
    for (int i = 0; i < nseries; i++)
        P("dsv4_requests_total{endpoint=\"%s\",status=\"%d\"} %lu\n", series[i].endpoint, series[i].status, series[i].n);
    P("# HELP dsv4_prompt_tokens_total Prompt tokens of admitted requests.\n# TYPE dsv4_prompt_tokens_total counter\ndsv4_prompt_tokens_total %llu\n", prompt_tok);
    P("# HELP dsv4_prompt_tokens_cached_total Prompt tokens reused from a slot's state instead of evaluated.\n# TYPE dsv4_prompt_tokens_cached_total counter\ndsv4_prompt_tokens_cached_total %llu\n", cached_tok);
    P("# HELP dsv4_cache_hits_total Requests that reused at least one prompt token.\n# TYPE dsv4_cache_hits_total counter\ndsv4_cache_hits_total %llu\n", cache_hits);
    P("# HELP dsv4_prompts_total Prompts evaluated.\n# TYPE dsv4_prompts_total counter\ndsv4_prompts_total %llu\n", prompts);
    P("# HELP dsv4_generated_tokens_total Tokens generated.\n# TYPE dsv4_generated_tokens_total counter\ndsv4_generated_tokens_total %llu\n", gen_tok);
    P("# HELP dsv4_prefill_seconds_total Wall seconds of prompt evaluation (per request, summed).\n# TYPE dsv4_prefill_seconds_total counter\ndsv4_prefill_seconds_total %.6f\n", prefill_s);
    P("# HELP dsv4_decode_seconds_total Wall seconds of generation (per request, summed).\n# TYPE dsv4_decode_seconds_total counter\ndsv4_decode_seconds_total %.6f\n", decode_s);
    P("# HELP dsv4_prefill_tokens_per_second Evaluated (not cached) prompt tokens per prefill second so far.\n# TYPE dsv4_prefill_tokens_per_second gauge\ndsv4_prefill_tokens_per_second %.3f\n",
      prefill_s > 0 ? (double)(prompt_tok - cached_tok) / prefill_s : 0.0);
    P("# HELP dsv4_decode_tokens_per_second Generated tokens per decode second so far.\n# TYPE dsv4_decode_tokens_per_second gauge\ndsv4_decode_tokens_per_second %.3f\n",
      decode_s > 0 ? (double)gen_tok / decode_s : 0.0);
    P("# HELP dsv4_decode_steps_total Decode steps (one batched evaluation of every decoding slot).\n# TYPE dsv4_decode_steps_total counter\ndsv4_decode_steps_total %llu\n", batch_steps);
    P("# HELP dsv4_decode_rows_total Tokens evaluated by those steps (rows / steps = mean batch size).\n# TYPE dsv4_decode_rows_total counter\ndsv4_decode_rows_total %llu\n", batch_rows);
    P("# HELP dsv4_rejected_total Requests refused with 503 because the queue was full.\n# TYPE dsv4_rejected_total counter\ndsv4_rejected_total %llu\n", rejected);
    P("# HELP dsv4_images_encoded_total Images run through the vision tower.\n# TYPE dsv4_images_encoded_total counter\ndsv4_images_encoded_total %llu\n", images);
    pthread_mutex_unlock(&mu);
    P("# HELP dsv4_queue_length Requests waiting for a slot.\n# TYPE dsv4_queue_length gauge\ndsv4_queue_length %d\n", q);
    P("# HELP dsv4_slots_busy Slots running a request.\n# TYPE dsv4_slots_busy gauge\ndsv4_slots_busy %d\n", busy);
    P("# HELP dsv4_slots Slots (--parallel).\n# TYPE dsv4_slots gauge\ndsv4_slots %d\n", slots);
#undef P
    return b;
}
