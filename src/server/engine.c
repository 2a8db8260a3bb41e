/* server/engine.c — the slots and the scheduler of `dsv4 serve`.
 *
 * N slots (--parallel), each with its own session of --ctx tokens and its prefix cache (prefix_cache.c). Jobs
 * wait in a bounded FIFO queue (submit fails when it is full: the HTTP layer answers 503 + Retry-After). One
 * scheduler thread owns every session: it admits queued jobs to idle slots (the slot that can reuse the longest
 * prefix of the job's prompt, else the least recently used one), then steps the busy slots round robin: a
 * prefill slot evaluates its next chunk (at most max(CHUNK, the model's chunk) tokens, cut at checkpoint
 * positions), a decode slot samples one token, feeds its text to the output parser and evaluates it. So a long prompt never stalls other
 * streams for more than one chunk. A cancelled job (client gone) is finished at its slot's next step and the
 * slot is free at once; the tokens it evaluated stay reusable.
 *
 * Output: thinking/chat modes go through the streaming parser (include/dsv4_parse.h): reasoning and content
 * deltas and complete tool calls become job events; DSML never reaches content (a malformed block falls back
 * to content as the parser documents). Stop strings are matched in the content (raw mode: in the text); a
 * suffix that may still grow into a stop string is held back. Logprobs are log-softmax of the raw logits.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "server/server.h"

#define CHUNK 256
#define SRV_DISK_MIN_TOKENS 64   /* shorter prompts are not worth a file */

typedef struct {
    dsv4_session *s;
    srv_prefix px;
    srv_job *job;
    int phase;                  /* 0 idle, 1 prefill, 2 decode */
    int np, next;               /* prompt length, next prompt token to evaluate */
    dsv4_sampler *smp;
    dsv4_parser *parser;
    dsv4_detok_stream st;
    float *logits;
    int gen, limit, ntool, stopped, in_reasoning;
    int32_t force[160]; int nforce, iforce;  /* tokens of job->force_text still to emit instead of sampling (a tool
                                              * name is < 128 bytes, so at most 127 tokens + the DSML opening) */
    int reply_begun;                         /* thinking mode: </think> was emitted (the reply begins) */
    char tail[32]; int ntail;                /* the last bytes of the output (finds the end of a forced call) */
    int call_closed;                         /* the output holds the closing tag of a tool-call block */
    char *held; size_t nheld, cap_held;
    double t0, t_dec;
    uint64_t last_used;
} slot_t;

struct srv_engine {
    dsv4_model *m;
    const dsv4_tokenizer *tok;
    srv_config cfg;
    int V, eos_id, eos_cfg, chat_tokens;
    int32_t think_end;          /* id of "</think>", or -1 */
    slot_t *slots; int nslots;
    srv_job **q; int qcap, qhead, qn;
    pthread_mutex_t mu; pthread_cond_t cv;
    pthread_t th; int running, stop, closed;
    uint64_t tick;
    float *batch_logits;        /* [nslots][V] rows of a batched decode step */
    srv_disk *disk;             /* --cache-dir, or NULL */
    int v41;                    /* a DeepSeek-V4.1 model: no batched decode and no saved states in the library yet, so
                                 * slots decode one after the other and no prefix checkpoints are taken */
};

/* ------------------------------------------------------------------ jobs */
srv_job *srv_job_new(int32_t *prompt, int n_prompt) {
    srv_job *j = calloc(1, sizeof *j);
    if (!j) { free(prompt); return NULL; }
    j->prompt = prompt; j->n_prompt = n_prompt;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    j->refs = 1;
    j->t_submit = srv_now();
    return j;
}

void srv_job_release(srv_job *j) {
    if (!j) return;
    pthread_mutex_lock(&j->mu);
    int last = --j->refs == 0;
    pthread_mutex_unlock(&j->mu);
    if (!last) return;
    for (int i = 0; i < j->nev; i++) { free(j->ev[i].text); free(j->ev[i].id); free(j->ev[i].name); free(j->ev[i].args); }
    free(j->ev);
    free(j->lp);
    for (int i = 0; i < j->n_stop; i++) free(j->stop[i]);
    free(j->stop);
    free(j->force_text);
    free(j->prompt);
    free(j->keys);
    dsv4_prompt_free(j->vprompt);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j);
}

void srv_job_cancel(srv_job *j) {
    pthread_mutex_lock(&j->mu);
    j->cancelled = 1;
    pthread_mutex_unlock(&j->mu);
}

static int job_cancelled(srv_job *j) {
    pthread_mutex_lock(&j->mu);
    int c = j->cancelled;
    pthread_mutex_unlock(&j->mu);
    return c;
}

/* Append an event (copies). Returns 0 or -1 (out of memory). */
static int push_event(srv_job *j, srv_ev_kind k, const char *text, size_t len, const dsv4_tool_call *tc, int index) {
    srv_event ev = { .kind = k, .index = index };
    if (text) {
        if (!(ev.text = malloc(len + 1))) return -1;
        memcpy(ev.text, text, len); ev.text[len] = 0; ev.len = len;
    }
    if (tc) {
        ev.id = strdup(tc->id); ev.name = srv_utf8_clean(tc->name, tc->name_len);
        ev.args = srv_utf8_clean(tc->arguments, tc->arguments_len);
        if (!ev.id || !ev.name || !ev.args) { free(ev.id); free(ev.name); free(ev.args); return -1; }
    }
    pthread_mutex_lock(&j->mu);
    if (j->nev == j->cap_ev) {
        int cap = j->cap_ev ? 2 * j->cap_ev : 64;
        srv_event *ne = realloc(j->ev, sizeof *ne * (size_t)cap);
        if (!ne) { pthread_mutex_unlock(&j->mu); free(ev.text); free(ev.id); free(ev.name); free(ev.args); return -1; }
        j->ev = ne; j->cap_ev = cap;
    }
    j->ev[j->nev++] = ev;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    return 0;
}

/* ------------------------------------------------------------------ output handling of one slot */
/* Emit content through the stop-string filter. */
static void content_in(slot_t *sl, const char *t, size_t n) {
    srv_job *j = sl->job;
    if (sl->stopped) return;
    if (j->n_stop == 0) { push_event(j, SRV_EV_CONTENT, t, n, NULL, 0); return; }
    if (sl->nheld + n + 1 > sl->cap_held) {
        size_t cap = (sl->nheld + n + 1) * 2;
        char *h = realloc(sl->held, cap);
        if (!h) return;
        sl->held = h; sl->cap_held = cap;
    }
    memcpy(sl->held + sl->nheld, t, n);
    sl->nheld += n;
    sl->held[sl->nheld] = 0;
    size_t best = (size_t)-1; int which = -1;
    for (int i = 0; i < j->n_stop; i++) {
        size_t sn = strlen(j->stop[i]);
        for (size_t p = 0; p + sn <= sl->nheld && p < best; p++)
            if (!memcmp(sl->held + p, j->stop[i], sn)) { best = p; which = i; break; }
    }
    if (which >= 0) {
        if (best) push_event(j, SRV_EV_CONTENT, sl->held, best, NULL, 0);
        sl->nheld = 0;
        sl->stopped = 1;
        pthread_mutex_lock(&j->mu);
        j->stop_hit = j->stop[which];
        pthread_mutex_unlock(&j->mu);
        return;
    }
    /* hold back the longest suffix that is a proper prefix of a stop string */
    size_t keep = 0;
    for (int i = 0; i < j->n_stop; i++) {
        size_t sn = strlen(j->stop[i]);
        for (size_t k = sn - 1 < sl->nheld ? sn - 1 : sl->nheld; k > keep; k--)
            if (!memcmp(sl->held + sl->nheld - k, j->stop[i], k)) { keep = k; break; }
    }
    size_t out = sl->nheld - keep;
    if (out) {
        push_event(j, SRV_EV_CONTENT, sl->held, out, NULL, 0);
        memmove(sl->held, sl->held + out, keep);
        sl->nheld = keep;
    }
}

static void on_parse(void *user, const dsv4_parse_event *ev) {
    slot_t *sl = user;
    if (sl->stopped) return;
    if (ev->kind == DSV4_EV_REASONING) push_event(sl->job, SRV_EV_REASONING, ev->text, ev->len, NULL, 0);
    else if (ev->kind == DSV4_EV_CONTENT) content_in(sl, ev->text, ev->len);
    else { push_event(sl->job, SRV_EV_TOOL_CALL, NULL, 0, ev->call, ev->index); sl->ntool++; }
}

static void text_in(slot_t *sl, const char *t, size_t n) {
    if (n == 0) return;
    if (sl->job->mode < 0) content_in(sl, t, n);
    else dsv4_parser_feed(sl->parser, t, n, on_parse, sl);
}

static void record_logprobs(srv_engine *e, slot_t *sl, int32_t tok) {
    srv_job *j = sl->job;
    const float *l = sl->logits;
    float mx = l[0];
    for (int v = 1; v < e->V; v++) if (l[v] > mx) mx = l[v];
    double z = 0;
    for (int v = 0; v < e->V; v++) z += exp((double)l[v] - mx);
    double lz = mx + log(z);
    srv_logprob r = { .token = tok, .logprob = (float)(l[tok] - lz) };
    int k = j->top_logprobs;
    for (int v = 0; v < e->V && k > 0; v++) {   /* insertion into the k best, ties to lower id */
        float lv = l[v];
        if (r.ntop == k && lv <= l[r.top[k - 1]]) continue;
        int p = r.ntop < k ? r.ntop++ : k - 1;
        while (p > 0 && l[r.top[p - 1]] < lv) { r.top[p] = r.top[p - 1]; p--; }
        r.top[p] = v;
    }
    for (int i = 0; i < r.ntop; i++) r.top_lp[i] = (float)(l[r.top[i]] - lz);
    pthread_mutex_lock(&j->mu);
    if (j->nlp == j->cap_lp) {
        int cap = j->cap_lp ? 2 * j->cap_lp : 64;
        srv_logprob *nl = realloc(j->lp, sizeof *nl * (size_t)cap);
        if (nl) { j->lp = nl; j->cap_lp = cap; }
    }
    if (j->nlp < j->cap_lp) j->lp[j->nlp++] = r;
    pthread_mutex_unlock(&j->mu);
}

/* Finish the slot's job: flush parser and held text, publish the result, free per-job resources. */
static void slot_finish(srv_engine *e, slot_t *sl, srv_finish f, const char *err) {
    srv_job *j = sl->job;
    char piece[64];
    if (f != SRV_FIN_ERROR && f != SRV_FIN_CANCELLED) {
        int k = dsv4_detok_flush(&sl->st, piece, sizeof piece);
        if (k > 0) text_in(sl, piece, (size_t)k);
        if (sl->parser) dsv4_parser_close(sl->parser, on_parse, sl);
        if (sl->nheld && !sl->stopped) push_event(j, SRV_EV_CONTENT, sl->held, sl->nheld, NULL, 0);
        if (sl->ntool && f == SRV_FIN_STOP && !j->stop_hit) f = SRV_FIN_TOOL_CALLS;
    }
    double now = srv_now();
    if (sl->phase == 2)
        srv_metrics_tokens(0, 0, sl->gen, 0, now - sl->t_dec);
    pthread_mutex_lock(&j->mu);
    j->finish = f;
    j->n_gen = sl->gen;
    if (err) snprintf(j->err, sizeof j->err, "%s", err);
    j->done = 1;
    j->t_done = now;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    srv_job_release(j);
    dsv4_parser_free(sl->parser); sl->parser = NULL;
    dsv4_sampler_free(sl->smp); sl->smp = NULL;
    sl->nheld = 0;
    pthread_mutex_lock(&e->mu);
    sl->job = NULL;
    sl->phase = 0;
    sl->last_used = ++e->tick;
    pthread_mutex_unlock(&e->mu);
}

static void slot_fail(srv_engine *e, slot_t *sl, const char *what, const char *err) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s: %s", what, err);
    fprintf(stderr, "dsv4 serve: %s\n", msg);
    dsv4_session_reset(sl->s);
    srv_prefix_apply(&sl->px, sl->s, 0, -1, NULL, 0);
    slot_finish(e, sl, SRV_FIN_ERROR, msg);
}

/* Set a slot up for job j; reuse = tokens of the prompt already held (restore = checkpoint index or -1). */
static void slot_start(srv_engine *e, slot_t *sl, srv_job *j, int reuse, int restore, int disk_entry) {
    char err[256];
    sl->job = j;
    sl->phase = 1;
    sl->np = j->n_prompt;
    sl->gen = sl->ntool = sl->stopped = 0;
    sl->nforce = sl->iforce = -1;   /* -1: not forced yet */
    sl->reply_begun = j->mode != 1;
    sl->ntail = sl->call_closed = 0;
    sl->nheld = 0;
    memset(&sl->st, 0, sizeof sl->st);
    sl->t0 = srv_now();
    if (disk_entry >= 0) {   /* a longer prefix saved on disk: load it into this slot */
        int32_t *dt = NULL; int dn = 0;
        srv_prefix_apply(&sl->px, sl->s, 0, -1, NULL, 0);
        if (srv_disk_load(e->disk, disk_entry, sl->s, &dt, &dn, err, sizeof err) == 0 && srv_prefix_push(&sl->px, dt, NULL, dn) == 0) {
            reuse = dn;
            restore = -1;
        } else {
            fprintf(stderr, "dsv4 serve: disk cache: %s\n", err);
            dsv4_session_reset(sl->s);
            sl->px.ntok = 0;
            reuse = 0; restore = -1;
        }
        free(dt);
    }
    if (srv_prefix_apply(&sl->px, sl->s, reuse, restore, err, sizeof err)) { slot_fail(e, sl, "prefix restore", err); return; }
    sl->next = reuse;
    int room = e->cfg.ctx - sl->np;
    sl->limit = j->max_tokens > 0 && j->max_tokens < room ? j->max_tokens : room;
    if (dsv4_sampler_new(&sl->smp, e->V, &j->sp, err, sizeof err)) { slot_fail(e, sl, "sampler", err); return; }
    if (j->mode >= 0) {
        if (!(sl->parser = dsv4_parser_new(j->mode)) || dsv4_parser_set_format(sl->parser, srv_engine_format(e))) {
            slot_fail(e, sl, "parser", "out of memory");
            return;
        }
        dsv4_parser_set_id_seed(sl->parser, j->id_seed);
    }
    pthread_mutex_lock(&j->mu);
    j->n_cached = reuse;
    pthread_mutex_unlock(&j->mu);
}

static void slot_step(srv_engine *e, slot_t *sl) {
    char err[256];
    srv_job *j = sl->job;
    if (job_cancelled(j)) { slot_finish(e, sl, SRV_FIN_CANCELLED, NULL); return; }
    if (sl->phase == 1) {
        int pos = sl->next, n = sl->np - pos;
        int mc = dsv4_model_chunk_tokens(e->m), cap = mc > CHUNK ? mc : CHUNK;   /* --chunk above 256 */
        if (n > cap) n = cap;
        int stride = e->cfg.checkpoint_stride;
        int cut = stride > 0 ? (pos / stride + 1) * stride : sl->np;   /* next stride checkpoint */
        if (pos < sl->np - 1 && pos + n > sl->np - 1) n = sl->np - 1 - pos; /* stop before the last token */
        if (cut > pos && pos + n > cut) n = cut - pos;
        n = dsv4_prompt_call_end(j->vprompt, pos, pos + n) - pos;   /* never inside a Vision-Exp image span */
        int last = pos + n == sl->np;
        /* a prompt with images: its spans take the aligner rows (any chunk split; include/dsv4_vision.h) */
        if (j->vprompt ? dsv4_eval_prompt(sl->s, j->vprompt, pos, n, last ? sl->logits : NULL, 0, err, sizeof err)
                       : dsv4_eval(sl->s, j->prompt + pos, n, last ? sl->logits : NULL, err, sizeof err)) {
            slot_fail(e, sl, "prefill", err);
            return;
        }
        if (srv_prefix_push(&sl->px, j->prompt + pos, j->keys ? j->keys + pos : NULL, n)) { slot_fail(e, sl, "prefill", "out of memory"); return; }
        sl->next = pos + n;
        if (!last && !e->v41 && (sl->next == sl->np - 1 || (stride > 0 && sl->next % stride == 0)))
            if (srv_prefix_checkpoint(&sl->px, sl->s, e->cfg.max_checkpoints, err, sizeof err))
                fprintf(stderr, "dsv4 serve: checkpoint: %s\n", err);
        if (!last && e->disk && !j->keys && sl->next == sl->np - 1 && sl->next >= SRV_DISK_MIN_TOKENS)
            if (srv_disk_save(e->disk, sl->s, sl->px.toks, sl->px.ntok, err, sizeof err))
                fprintf(stderr, "dsv4 serve: disk cache: %s\n", err);
        if (last) {
            double now = srv_now();
            srv_metrics_tokens(sl->np, j->n_cached, 0, now - sl->t0, 0);
            sl->phase = 2;
            sl->t_dec = now;
            pthread_mutex_lock(&j->mu);
            j->started = 1;
            pthread_mutex_unlock(&j->mu);
        }
        return;
    }
    /* decode: sampling and evaluation happen in decode_sample / the batched step of sched_main */
}

/* Append output bytes to the slot's tail and note the closing tag of a DSML tool-call block. */
static void call_tail(slot_t *sl, int v41, const char *p, size_t n) {
    /* the block's closing tag in V4 / V4.1 spelling (docs/encoding.md §4.2, §10.1) */
    static const char close_v4[] = "</\xef\xbd\x9c" "DSML\xef\xbd\x9ctool_calls>", close_v41[] = "</\xef\xbd\x9c" "DSML\xef\xbd\x9c calls>";
    const char *close_tag = v41 ? close_v41 : close_v4;
    const size_t cl = strlen(close_tag), cap = sizeof sl->tail;
    for (size_t i = 0; i < n; i++) {
        if ((size_t)sl->ntail == cap) { memmove(sl->tail, sl->tail + 1, cap - 1); sl->ntail--; }
        sl->tail[sl->ntail++] = p[i];
        if ((size_t)sl->ntail >= cl && !memcmp(sl->tail + sl->ntail - cl, close_tag, cl)) sl->call_closed = 1;
    }
}

/* Decode, first half: sample the next token from the slot's logits and hand it to the parser. Returns the token
 * to evaluate, or -1 when the job finished here (EOS, stop string, token limit, cancelled). */
static int32_t decode_sample(srv_engine *e, slot_t *sl) {
    srv_job *j = sl->job;
    if (job_cancelled(j)) { slot_finish(e, sl, SRV_FIN_CANCELLED, NULL); return -1; }
    if (sl->gen >= sl->limit) { slot_finish(e, sl, SRV_FIN_LENGTH, NULL); return -1; }
    if (j->force_text && sl->nforce < 0 && sl->reply_begun) {   /* the reply begins: force the tool-call opening */
        char err[128];
        int cap = (int)(sizeof sl->force / sizeof sl->force[0]);
        int n = dsv4_tokenize(e->tok, j->force_text, strlen(j->force_text), sl->force, cap, err, sizeof err);
        sl->nforce = n > 0 && n <= cap ? n : 0;   /* 0: nothing forced (and the end of sequence stays allowed) */
        sl->iforce = 0;
    }
    if (sl->nforce > 0 && !sl->call_closed) {   /* a forced call: no end of sequence before the block is closed */
        if (e->eos_id >= 0) sl->logits[e->eos_id] = -INFINITY;
        if (e->eos_cfg >= 0 && e->eos_cfg < e->V) sl->logits[e->eos_cfg] = -INFINITY;
    }
    int32_t t = sl->iforce >= 0 && sl->iforce < sl->nforce ? sl->force[sl->iforce++] : dsv4_sample(sl->smp, sl->logits);
    if (t == e->think_end) sl->reply_begun = 1;
    if (j->logprobs) record_logprobs(e, sl, t);
    if (sl->gen == 0) {
        pthread_mutex_lock(&j->mu);
        j->t_first_token = srv_now();
        pthread_mutex_unlock(&j->mu);
    }
    if (!j->ignore_eos && (t == e->eos_id || t == e->eos_cfg)) { slot_finish(e, sl, SRV_FIN_STOP, NULL); return -1; }
    sl->gen++;
    char piece[1024];
    int k = dsv4_detok_next(e->tok, &sl->st, t, piece, sizeof piece);
    if (k > 0) {
        text_in(sl, piece, (size_t)k);
        if (sl->nforce > 0 && !sl->call_closed) call_tail(sl, e->v41, piece, (size_t)k);
    }
    if (sl->stopped) { slot_finish(e, sl, SRV_FIN_STOP, NULL); return -1; }
    if (sl->gen >= sl->limit) { slot_finish(e, sl, SRV_FIN_LENGTH, NULL); return -1; }
    return t;
}

/* Decode, second half: evaluate the sampled tokens of nb slots as one batch (every weight read once for all of
 * them; dsv4_eval_batch gives each session the logits its own dsv4_eval would). */
static void decode_eval(srv_engine *e, slot_t **sls, const int32_t *toks, int nb) {
    char err[256];
    dsv4_session *ss[256];
    for (int i = 0; i < nb; i++) ss[i] = sls[i]->s;
    srv_metrics_batch(nb);
    if (e->v41 && nb > 1) {   /* no dsv4_eval_batch for V4.1 yet: one session after the other (same logits) */
        for (int i = 0; i < nb; i++) {
            slot_t *sl = sls[i];
            if (dsv4_eval(ss[i], &toks[i], 1, sl->logits, err, sizeof err)) { slot_fail(e, sl, "decode", err); continue; }
            if (srv_prefix_push(&sl->px, &toks[i], NULL, 1)) slot_fail(e, sl, "decode", "out of memory");
        }
        return;
    }
    int rc = nb == 1 ? dsv4_eval(ss[0], toks, 1, sls[0]->logits, err, sizeof err)
                     : dsv4_eval_batch(ss, nb, toks, e->batch_logits, err, sizeof err);
    for (int i = 0; i < nb; i++) {
        slot_t *sl = sls[i];
        if (rc) { slot_fail(e, sl, "decode", err); continue; }
        if (nb > 1) memcpy(sl->logits, e->batch_logits + (size_t)i * (size_t)e->V, sizeof(float) * (size_t)e->V);
        if (srv_prefix_push(&sl->px, &toks[i], NULL, 1)) slot_fail(e, sl, "decode", "out of memory");
    }
}

/* ------------------------------------------------------------------ scheduler */
static void admit(srv_engine *e) {
    while (e->qn > 0) {
        srv_job *j = e->q[e->qhead];
        int best = -1, best_reuse = -1, best_restore = -1;
        for (int i = 0; i < e->nslots; i++) {
            slot_t *sl = &e->slots[i];
            if (sl->job) continue;
            int restore, r = srv_prefix_match(&sl->px, j->prompt, j->keys, j->n_prompt, &restore);
            if (r > best_reuse || (r == best_reuse && sl->last_used < e->slots[best].last_used)) {
                best = i; best_reuse = r; best_restore = restore;
            }
        }
        if (best < 0) return;
        int de = -1;
        if (e->disk && (j->keys || srv_disk_match(e->disk, j->prompt, j->n_prompt, &de) <= best_reuse)) de = -1;
        e->qhead = (e->qhead + 1) % e->qcap;
        e->qn--;
        slot_t *sl = &e->slots[best];
        sl->job = j;   /* busy from now on */
        pthread_mutex_unlock(&e->mu);
        slot_start(e, sl, j, best_reuse, best_restore, de);
        pthread_mutex_lock(&e->mu);
    }
}

static void *sched_main(void *arg) {
    srv_engine *e = arg;
    pthread_mutex_lock(&e->mu);
    while (!e->stop) {
        admit(e);
        int busy = 0;
        for (int i = 0; i < e->nslots; i++) busy += e->slots[i].job != NULL;
        if (!busy) { pthread_cond_wait(&e->cv, &e->mu); continue; }
        pthread_mutex_unlock(&e->mu);
        /* one round: every prefill slot evaluates one chunk, every decode slot one token (batched) */
        slot_t *dec[256];
        int32_t toks[256];
        int nb = 0;
        for (int i = 0; i < e->nslots; i++) {
            slot_t *sl = &e->slots[i];
            if (!sl->job || !sl->phase) continue;
            if (sl->phase == 1) { slot_step(e, sl); continue; }
            int32_t t = decode_sample(e, sl);
            if (t >= 0) { dec[nb] = sl; toks[nb++] = t; }
        }
        if (nb) decode_eval(e, dec, toks, nb);
        pthread_mutex_lock(&e->mu);
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

static const char *EOS_TEXT = "<\xEF\xBD\x9C" "end\xE2\x96\x81" "of\xE2\x96\x81" "sentence\xEF\xBD\x9C>";
static const char *chat_needed[] = {
    "<\xEF\xBD\x9C" "begin\xE2\x96\x81" "of\xE2\x96\x81" "sentence\xEF\xBD\x9C>",
    "<\xEF\xBD\x9C" "User\xEF\xBD\x9C>", "<\xEF\xBD\x9C" "Assistant\xEF\xBD\x9C>", "<think>", "</think>",
};

srv_engine *srv_engine_start(dsv4_model *m, const srv_config *cfg, char *err, size_t errlen) {
    srv_engine *e = calloc(1, sizeof *e);
    if (!e) { snprintf(err, errlen, "out of memory"); return NULL; }
    e->m = m;
    e->cfg = *cfg;
    e->tok = dsv4_model_tokenizer(m);
    if (!e->tok) { snprintf(err, errlen, "%s has no tokenizer.json", cfg->model_dir); free(e); return NULL; }
    dsv4_model_info info;
    dsv4_model_get_info(m, &info);
    e->V = info.vocab_size;
    e->v41 = info.v41;
    if (e->v41 && cfg->cache_dir) {
        snprintf(err, errlen, "--cache-dir: saving session states is not implemented for DeepSeek-V4.1 models yet");
        free(e);
        return NULL;
    }
    e->eos_cfg = info.eos_token_id;
    e->eos_id = dsv4_token_id(e->tok, EOS_TEXT);
    e->think_end = dsv4_token_id(e->tok, "</think>");
    e->chat_tokens = e->eos_id >= 0;
    for (size_t i = 0; i < sizeof chat_needed / sizeof *chat_needed; i++) if (dsv4_token_id(e->tok, chat_needed[i]) < 0) e->chat_tokens = 0;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    e->qcap = cfg->queue > 0 ? cfg->queue : 1;
    e->q = calloc((size_t)e->qcap, sizeof *e->q);
    e->nslots = cfg->parallel;
    e->slots = calloc((size_t)e->nslots, sizeof *e->slots);
    if (!e->q || !e->slots) { snprintf(err, errlen, "out of memory"); srv_engine_free(e); return NULL; }
    for (int i = 0; i < e->nslots; i++) {
        if (dsv4_session_open(&e->slots[i].s, m, cfg->ctx, err, errlen)) { srv_engine_free(e); return NULL; }
        if (!(e->slots[i].logits = malloc(sizeof(float) * (size_t)e->V))) { snprintf(err, errlen, "out of memory"); srv_engine_free(e); return NULL; }
    }
    if (cfg->cache_dir && !(e->disk = srv_disk_open(cfg->cache_dir, cfg->cache_size, dsv4_model_fingerprint(m), err, errlen))) {
        srv_engine_free(e);
        return NULL;
    }
    if (!(e->batch_logits = malloc(sizeof(float) * (size_t)e->V * (size_t)e->nslots))) {
        snprintf(err, errlen, "out of memory");
        srv_engine_free(e);
        return NULL;
    }
    if (pthread_create(&e->th, NULL, sched_main, e)) { snprintf(err, errlen, "cannot start the scheduler thread"); srv_engine_free(e); return NULL; }
    e->running = 1;
    return e;
}

static void fail_job(srv_job *j, const char *msg) {
    pthread_mutex_lock(&j->mu);
    j->finish = SRV_FIN_ERROR; j->done = 1;
    snprintf(j->err, sizeof j->err, "%s", msg);
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    srv_job_release(j);
}

void srv_engine_stop(srv_engine *e) {
    if (!e) return;
    if (e->running) {
        pthread_mutex_lock(&e->mu);
        e->stop = 1;
        pthread_cond_broadcast(&e->cv);
        pthread_mutex_unlock(&e->mu);
        pthread_join(e->th, NULL);
        e->running = 0;
    }
    pthread_mutex_lock(&e->mu);
    e->closed = 1;
    pthread_mutex_unlock(&e->mu);
    for (int i = 0; e->slots && i < e->nslots; i++)
        if (e->slots[i].job) slot_finish(e, &e->slots[i], SRV_FIN_ERROR, "server shutting down");
    while (e->qn > 0) {
        srv_job *j = e->q[e->qhead];
        e->qhead = (e->qhead + 1) % e->qcap; e->qn--;
        fail_job(j, "server shutting down");
    }
}

void srv_engine_free(srv_engine *e) {
    if (!e) return;
    srv_engine_stop(e);
    for (int i = 0; e->slots && i < e->nslots; i++) {
        slot_t *sl = &e->slots[i];
        srv_prefix_free(&sl->px);
        dsv4_session_free(sl->s);
        free(sl->logits);
        free(sl->held);
    }
    free(e->slots);
    free(e->q);
    free(e->batch_logits);
    srv_disk_close(e->disk);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    free(e);
}

int srv_engine_submit(srv_engine *e, srv_job *j) {
    pthread_mutex_lock(&e->mu);
    if (e->closed || e->qn >= e->qcap) { pthread_mutex_unlock(&e->mu); srv_metrics_rejected(); return -1; }
    pthread_mutex_lock(&j->mu);
    j->refs++;
    pthread_mutex_unlock(&j->mu);
    e->q[(e->qhead + e->qn) % e->qcap] = j;
    e->qn++;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    return 0;
}

const dsv4_tokenizer *srv_engine_tokenizer(const srv_engine *e) { return e->tok; }
const dsv4_model *srv_engine_model(const srv_engine *e) { return e->m; }
dsv4_chat_format srv_engine_format(const srv_engine *e) { return e->v41 ? DSV4_FORMAT_V41 : DSV4_FORMAT_V4; }
int64_t srv_engine_max_image_pixels(const srv_engine *e) {
    return e->cfg.max_image_pixels > 0 ? e->cfg.max_image_pixels : SRV_MAX_IMAGE_PIXELS;
}
int srv_engine_ctx(const srv_engine *e) { return e->cfg.ctx; }
int srv_engine_vocab(const srv_engine *e) { return e->V; }
int srv_engine_has_chat_tokens(const srv_engine *e) { return e->chat_tokens; }

void srv_engine_load(srv_engine *e, int *queued, int *busy, int *slots) {
    pthread_mutex_lock(&e->mu);
    *queued = e->qn;
    *busy = 0;
    for (int i = 0; i < e->nslots; i++) *busy += e->slots[i].job != NULL;
    *slots = e->nslots;
    pthread_mutex_unlock(&e->mu);
}
