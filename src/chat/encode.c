/* chat/encode.c — DeepSeek-V4 and V4.1 prompt encoder (docs/encoding.md §3, §4, §9, §10); API in include/dsv4_chat.h.
 *
 * Mirrors the official encode_messages() step by step so that every input the official Python accepts
 * gives the same bytes:
 *   1. top-level tools / response_format are attached to the first (system) message;
 *   2. merge: tool messages become tool_result blocks of a user message; consecutive user-side messages
 *      are merged (context and new messages are merged separately, as officially);
 *   3. tool results inside a merged user message are sorted by the call order of the most recent
 *      assistant message with tool_calls (context included); unknown ids get key 0 (stable sort);
 *   4. drop_thinking is forced off if any message has truthy `tools`; in thinking mode with drop on,
 *      messages before the last user/developer message are filtered (§3.2(3));
 *   5. each new message is rendered with its transition suffix (§3.4, §3.5).
 * Values are turned into text with Python str()/repr()/json.dumps rules (encode_json.c).
 * V4.1 (opts->format, docs/encoding.md §10) differs in the DSML tag names (the `dsml` table), the "<｜System｜>" +
 * numeric effort line before message 0, and system messages after the first: "<｜System｜>" + content, counted as
 * user messages (last-user index, drop_thinking, the "<｜Assistant｜>" transition).
 */
#include "dsv4_chat.h"
#include "dsv4_parse.h"  /* dsv4_toolcall_dup: the tool-call registry (src/chat/toolcall_registry.c) */
#include "chat/encode_json.h"
#include "base/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- literal protocol text */
#define BOS "<｜begin▁of▁sentence｜>"
#define EOS "<｜end▁of▁sentence｜>"
#define USER_TOK "<｜User｜>"
#define ASSISTANT_TOK "<｜Assistant｜>"
#define REMINDER_TOK "<｜latest_reminder｜>"
#define THINK_OPEN "<think>"
#define THINK_CLOSE "</think>"
#define DSML "｜DSML｜"
#define IMAGE_TOK "<｜deepseek_image｜>"
#define SYSTEM_TOK "<｜System｜>"

static const char EFFORT_MAX_TEXT[] =
    "Reasoning Effort: Absolute maximum with no shortcuts permitted.\n"
    "You MUST be very thorough in your thinking and comprehensively decompose the problem to resolve the "
    "root cause, rigorously stress-testing your logic against all potential paths, edge cases, and "
    "adversarial scenarios.\n"
    "Explicitly write out your entire deliberation process, documenting every intermediate step, considered "
    "alternative, and rejected hypothesis to ensure absolutely no assumption is left unchecked.\n\n";

/* The tools preamble; BLK / INV / PAR: the block, invoke and parameter tag names of the format. */
#define TOOLS_HEAD_TEXT(BLK, INV, PAR) \
    "## Tools\n\n" \
    "You have access to a set of tools to help answer the user's question. You can invoke tools by writing " \
    "a \"<" DSML BLK ">\" block like the following:\n\n" \
    "<" DSML BLK ">\n" \
    "<" DSML INV " name=\"$TOOL_NAME\">\n" \
    "<" DSML PAR " name=\"$PARAMETER_NAME\" string=\"true|false\">$PARAMETER_VALUE</" DSML PAR ">\n" \
    "...\n" \
    "</" DSML INV ">\n" \
    "<" DSML INV " name=\"$TOOL_NAME2\">\n" \
    "...\n" \
    "</" DSML INV ">\n" \
    "</" DSML BLK ">\n\n" \
    "String parameters should be specified as is and set `string=\"true\"`. For all other types (numbers, " \
    "booleans, arrays, objects), pass the value in JSON format and set `string=\"false\"`.\n\n" \
    "If thinking_mode is enabled (triggered by " THINK_OPEN "), you MUST output your complete reasoning " \
    "inside " THINK_OPEN "..." THINK_CLOSE " BEFORE any tool calls or final response.\n\n" \
    "Otherwise, output directly after " THINK_CLOSE " with tool calls or final response.\n\n" \
    "### Available Tool Schemas\n\n"
static const char TOOLS_HEAD[] = TOOLS_HEAD_TEXT("tool_calls", "invoke", "parameter");
static const char TOOLS_HEAD_V41[] = TOOLS_HEAD_TEXT(" calls", " invoke", " parameter");
static const char TOOLS_TAIL[] =
    "\n\nYou MUST strictly follow the above defined tool name and parameter schemas to invoke tool calls.\n";

/* V4.1's effort line (docs/encoding.md §10.2): EFFORT_V41_HEAD + N + EFFORT_V41_TAIL, after SYSTEM_TOK. */
static const char EFFORT_V41_HEAD[] = "Reasoning Effort: ";
static const char EFFORT_V41_TAIL[] = " (range 1-100, the higher the value, the more thorough the reasoning)\n\n";

/* The DSML spellings of a format: block open / close, invoke open (up to the name attribute) / close,
 * parameter open / close (§4.2, §10.1). */
typedef struct { const char *blk_open, *blk_close, *inv_open, *inv_close, *par_open, *par_close, *tools_head; } dsml_tags;
static const dsml_tags DSML_V4 = {
    "\n\n<" DSML "tool_calls>\n", "\n</" DSML "tool_calls>", "<" DSML "invoke name=\"", "\n</" DSML "invoke>",
    "<" DSML "parameter name=\"", "</" DSML "parameter>", TOOLS_HEAD };
static const dsml_tags DSML_V41 = {
    "\n\n<" DSML " calls>\n", "\n</" DSML " calls>", "<" DSML " invoke name=\"", "\n</" DSML " invoke>",
    "<" DSML " parameter name=\"", "</" DSML " parameter>", TOOLS_HEAD_V41 };

int dsv4_v41_effort_of_name(const char *name) {
    if (!name) return -1;
    if (!strcmp(name, "low")) return 50;
    if (!strcmp(name, "high")) return 75;
    if (!strcmp(name, "max")) return 100;
    return -1;
}

static const char RESPONSE_FORMAT_HEAD[] =
    "## Response Format:\n\nYou MUST strictly adhere to the following schema to reply:\n";

static const char *const TASKS[][2] = {
    { "action", "<｜action｜>" }, { "query", "<｜query｜>" }, { "authority", "<｜authority｜>" },
    { "domain", "<｜domain｜>" }, { "title", "<｜title｜>" }, { "read_url", "<｜read_url｜>" },
};

/* ---------------------------------------------------------------- internal message model */
enum { R_NONE, R_SYSTEM, R_DEVELOPER, R_USER, R_ASSISTANT, R_TOOL, R_REMINDER, R_DSR, R_OTHER };

typedef struct {
    int is_tool;
    const pj_value *text;      /* text block: the user message's content (NULL = missing -> "") */
    const pj_value *part;      /* content-part block: part `pidx` of a user message's content list (text / image) */
    int pidx;
    const pj_value *id;        /* tool block: tool_call_id (NULL = missing -> "") */
    const pj_value *content;   /* tool block: content (NULL = missing -> "") */
    int src;                   /* index of the source message in its array */
} blk_t;

typedef struct {
    const pj_value *obj;       /* source object; NULL for a synthetic system or a user begun by a tool */
    int role;
    int merged;                /* merged user message (content_blocks) */
    blk_t *blk;
    size_t nblk, capblk;
    const pj_value *tools_ovr, *rf_ovr;
    int has_tools_ovr, has_rf_ovr;
    int no_reasoning;          /* reasoning_content removed by drop_thinking */
    int ctx;                   /* 1 = from the context */
    int src;                   /* index in its source array; -1 = synthetic */
} cmsg;

typedef struct {
    pj_arena a;
    cmsg *m;
    size_t n, cap;
    char *err;
    size_t errlen;
    pj_buf out;
    int thinking, drop, has_context;
    dsv4_effort effort;
    int v41, effort_level;     /* V4.1 format; its effort 1..100 (resolved) */
    const dsml_tags *tags;
    char where[64];
    dsv4_chat_image *img;      /* image parts in prompt order (NULL when the caller does not collect them) */
    int nimg, capimg, want_img;
} enc;

static const char *where(enc *e, const cmsg *m) {
    if (m->src < 0) snprintf(e->where, sizeof e->where, "%s[0] (system message made for request tools)",
                             m->ctx ? "context" : "messages");
    else snprintf(e->where, sizeof e->where, "%s[%d]", m->ctx ? "context" : "messages", m->src);
    return e->where;
}

static int fail(enc *e, const cmsg *m, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static int fail(enc *e, const cmsg *m, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (m) return dsv4_fail(e->err, e->errlen, "%s: %s", where(e, m), msg);
    return dsv4_fail(e->err, e->errlen, "%s", msg);
}

/* Prefix a failure message produced by a writer (lone surrogate) with the message and field. */
static int refail(enc *e, const cmsg *m, const char *field) {
    char inner[256];
    snprintf(inner, sizeof inner, "%s", e->err && e->errlen ? e->err : "");
    return fail(e, m, "%s: %s", field, inner);
}

/* A string value for an error message: JSON-escaped without its quotes (so the message stays one line of valid
 * UTF-8 whatever the value holds), cut at a character boundary with "..." when longer than cap allows; "?" for
 * a non-string. (Issue 8 fuzzing: an unknown role holding a newline made a two-line message.) */
static void excerpt(const pj_value *v, char *out, size_t cap) {
    snprintf(out, cap, "?");
    if (!v || v->type != PJ_STRING || cap < 8) return;
    pj_buf b = {0};
    if (pj_dump_json(&b, v, NULL, 0) == 0 && !b.oom && b.n >= 2) {
        const char *s = b.p + 1;
        size_t n = b.n - 2;
        if (n < cap) {
            memcpy(out, s, n);
            out[n] = 0;
        } else {
            n = cap - 4;
            while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--; /* s[n] starts a character */
            memcpy(out, s, n);
            memcpy(out + n, "...", 4);
        }
    }
    pj_buf_free(&b);
}

static int role_of(const pj_value *obj) {
    const pj_value *r = pj_get(obj, "role");
    if (!r || r->type == PJ_NULL) return R_NONE;
    if (pj_is_str(r, "system")) return R_SYSTEM;
    if (pj_is_str(r, "developer")) return R_DEVELOPER;
    if (pj_is_str(r, "user")) return R_USER;
    if (pj_is_str(r, "assistant")) return R_ASSISTANT;
    if (pj_is_str(r, "tool")) return R_TOOL;
    if (pj_is_str(r, "latest_reminder")) return R_REMINDER;
    if (pj_is_str(r, "direct_search_results")) return R_DSR;
    return R_OTHER;
}

static const pj_value *mget(const cmsg *m, const char *key) {
    if (m->has_tools_ovr && !strcmp(key, "tools")) return m->tools_ovr;
    if (m->has_rf_ovr && !strcmp(key, "response_format")) return m->rf_ovr;
    if (m->merged && strcmp(key, "task") && strcmp(key, "wo_eos") && strcmp(key, "mask") && strcmp(key, "content"))
        return NULL;
    if (m->no_reasoning && !strcmp(key, "reasoning_content")) return NULL;
    return pj_get(m->obj, key);
}
static int has_task(const cmsg *m) { const pj_value *t = mget(m, "task"); return t && t->type != PJ_NULL; }

static cmsg *push_msg(enc *e) {
    if (e->n == e->cap) {
        size_t nc = e->cap ? e->cap * 2 : 16;
        cmsg *nm = pj_alloc(&e->a, nc * sizeof *nm);
        if (!nm) return NULL;
        if (e->n) memcpy(nm, e->m, e->n * sizeof *nm);
        e->m = nm; e->cap = nc;
    }
    cmsg *m = &e->m[e->n++];
    memset(m, 0, sizeof *m);
    return m;
}

static int push_blk(enc *e, cmsg *m, blk_t b) {
    if (m->nblk == m->capblk) {
        size_t nc = m->capblk ? m->capblk * 2 : 4;
        blk_t *nb = pj_alloc(&e->a, nc * sizeof *nb);
        if (!nb) return -1;
        if (m->nblk) memcpy(nb, m->blk, m->nblk * sizeof *nb);
        m->blk = nb; m->capblk = nc;
    }
    m->blk[m->nblk++] = b;
    return 0;
}

/* ---------------------------------------------------------------- steps 1-2: attach + merge */
static int is_text_format(const pj_value *rf) {
    return rf && rf->type == PJ_OBJECT && rf->n == 1 && pj_is_str(pj_get(rf, "type"), "text");
}

/* Merge one source array (merge_tool_messages); `tools`/`rf` are the top-level values to attach. */
static int merge_segment(enc *e, const pj_value *arr, int ctx, const pj_value *tools, const pj_value *rf) {
    const char *name = ctx ? "context" : "messages";
    if (!arr || arr->type != PJ_ARRAY) return dsv4_fail(e->err, e->errlen, "%s: not a JSON array of messages", name);
    size_t seg = e->n, target = e->n;
    int attach_tools = pj_truthy(tools), attach_rf = pj_truthy(rf) && !is_text_format(rf);
    if (attach_tools || attach_rf) {
        int first_is_system = arr->n > 0 && arr->items[0]->type == PJ_OBJECT && role_of(arr->items[0]) == R_SYSTEM;
        if (!first_is_system) {
            cmsg *m = push_msg(e);
            if (!m) return dsv4_fail(e->err, e->errlen, "out of memory");
            m->role = R_SYSTEM; m->ctx = ctx; m->src = -1;
            seg = e->n; /* the synthetic system is not a merge target */
        }
    }
    for (size_t i = 0; i < arr->n; i++) {
        const pj_value *o = arr->items[i];
        if (o->type != PJ_OBJECT) return dsv4_fail(e->err, e->errlen, "%s[%zu]: message is not a JSON object", name, i);
        const pj_value *rv = pj_get(o, "role");
        if (rv && rv->type != PJ_NULL && rv->type != PJ_STRING)
            return dsv4_fail(e->err, e->errlen, "%s[%zu].role: not a string", name, i);
        int role = role_of(o);
        cmsg *last = e->n > seg ? &e->m[e->n - 1] : NULL;
        if (role == R_TOOL) {
            blk_t b = { .is_tool = 1, .id = pj_get(o, "tool_call_id"), .content = pj_get(o, "content"), .src = (int)i };
            if (!(last && last->merged)) {
                last = push_msg(e);
                if (!last) return dsv4_fail(e->err, e->errlen, "out of memory");
                last->role = R_USER; last->merged = 1; last->ctx = ctx; last->src = (int)i;
            }
            if (push_blk(e, last, b)) return dsv4_fail(e->err, e->errlen, "out of memory");
        } else if (role == R_USER) {
            const pj_value *c = pj_get(o, "content");
            blk_t b = { .is_tool = 0, .text = c, .src = (int)i };
            if (!(last && last->merged && !has_task(last))) {
                last = push_msg(e);
                if (!last) return dsv4_fail(e->err, e->errlen, "out of memory");
                last->role = R_USER; last->merged = 1; last->obj = o; last->ctx = ctx; last->src = (int)i;
            }
            if (c && c->type == PJ_ARRAY) {
                /* a list of content parts (the vision revision's process_image_messages): each part is a block of
                 * its own, joined to its neighbours with "\n\n"; an empty list adds no block */
                for (size_t j = 0; j < c->n; j++) {
                    blk_t pb = { .is_tool = 0, .part = c->items[j], .pidx = (int)j, .src = (int)i };
                    if (push_blk(e, last, pb)) return dsv4_fail(e->err, e->errlen, "out of memory");
                }
            } else if (push_blk(e, last, b)) return dsv4_fail(e->err, e->errlen, "out of memory");
        } else {
            cmsg *m = push_msg(e);
            if (!m) return dsv4_fail(e->err, e->errlen, "out of memory");
            m->obj = o; m->role = role; m->ctx = ctx; m->src = (int)i;
        }
    }
    if (attach_tools || attach_rf) {
        cmsg *m = &e->m[target]; /* the synthetic system, or the first message (a system, kept as is) */
        if (attach_tools) { m->tools_ovr = tools; m->has_tools_ovr = 1; }
        if (attach_rf) { m->rf_ovr = rf; m->has_rf_ovr = 1; }
    }
    return 0;
}

/* ---------------------------------------------------------------- step 3: tool-result order */
typedef struct { const pj_value *id; int idx; } order_t;

static int unhashable(const pj_value *v) { return v && (v->type == PJ_ARRAY || v->type == PJ_OBJECT); }

static int sort_tool_results(enc *e) {
    order_t *ord = NULL;
    size_t nord = 0, capord = 0;
    for (size_t k = 0; k < e->n; k++) {
        cmsg *m = &e->m[k];
        if (m->role == R_ASSISTANT) {
            const pj_value *tcs = mget(m, "tool_calls");
            if (!pj_truthy(tcs)) continue;
            if (tcs->type != PJ_ARRAY) return fail(e, m, "tool_calls: not a list");
            nord = 0;
            for (size_t j = 0; j < tcs->n; j++) {
                const pj_value *tc = tcs->items[j];
                if (tc->type != PJ_OBJECT) return fail(e, m, "tool_calls[%zu]: not an object", j);
                const pj_value *id = pj_get(tc, "id");
                if (!pj_truthy(id)) {
                    const pj_value *f = pj_get(tc, "function");
                    if (f && f->type != PJ_OBJECT) return fail(e, m, "tool_calls[%zu].function: not an object", j);
                    id = pj_get(f, "id");
                }
                if (!pj_truthy(id)) continue;
                if (unhashable(id)) return fail(e, m, "tool_calls[%zu].id: must be a string", j);
                if (nord == capord) {
                    capord = capord ? capord * 2 : 8;
                    order_t *no = pj_alloc(&e->a, capord * sizeof *no);
                    if (!no) return fail(e, NULL, "out of memory");
                    if (nord) memcpy(no, ord, nord * sizeof *no);
                    ord = no;
                }
                ord[nord].id = id; ord[nord].idx = (int)j; nord++;
            }
        } else if (m->merged) {
            size_t ntool = 0;
            for (size_t j = 0; j < m->nblk; j++) ntool += m->blk[j].is_tool;
            if (ntool < 2 || nord == 0) continue;
            blk_t *tb = pj_alloc(&e->a, ntool * sizeof *tb);
            int *key = pj_alloc(&e->a, ntool * sizeof *key);
            if (!tb || !key) return fail(e, NULL, "out of memory");
            size_t t = 0;
            for (size_t j = 0; j < m->nblk; j++) {
                if (!m->blk[j].is_tool) continue;
                const pj_value *id = m->blk[j].id;
                if (unhashable(id)) {
                    cmsg tmp = *m; tmp.src = m->blk[j].src;
                    return fail(e, &tmp, "tool_call_id: must be a string");
                }
                int kv = 0; /* unknown ids: key 0, like order.get(id, 0) */
                for (size_t q = nord; q-- > 0;)
                    if (pj_py_equal(ord[q].id, id)) { kv = ord[q].idx; break; }
                tb[t] = m->blk[j]; key[t] = kv; t++;
            }
            /* stable insertion sort by key */
            for (size_t a = 1; a < ntool; a++) {
                blk_t bb = tb[a]; int kk = key[a]; size_t b = a;
                while (b > 0 && key[b - 1] > kk) { tb[b] = tb[b - 1]; key[b] = key[b - 1]; b--; }
                tb[b] = bb; key[b] = kk;
            }
            t = 0;
            for (size_t j = 0; j < m->nblk; j++)
                if (m->blk[j].is_tool) m->blk[j] = tb[t++];
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- step 5: rendering */
#define OUT(s) pj_buf_puts(&e->out, (s))

/* A user-side message: user or developer; in V4.1 also a system message after the first (§10.3). */
static int user_like(const enc *e, int role, size_t i) {
    return role == R_USER || role == R_DEVELOPER || (e->v41 && role == R_SYSTEM && i > 0);
}

static int last_user_index(const enc *e, cmsg **R, size_t n) {
    for (size_t i = n; i-- > 0;)
        if (user_like(e, R[i]->role, i)) return (int)i;
    return -1;
}

/* tools_from_openai_format(): a truthy `tools` must be a list of objects with a "function" key. */
static int check_tools(enc *e, const cmsg *m, const pj_value *tools) {
    if (tools->type != PJ_ARRAY) return fail(e, m, "tools: not a list");
    for (size_t i = 0; i < tools->n; i++) {
        if (tools->items[i]->type != PJ_OBJECT) return fail(e, m, "tools[%zu]: not an object", i);
        if (!pj_get(tools->items[i], "function")) return fail(e, m, "tools[%zu]: missing key 'function'", i);
    }
    return 0;
}

/* tool_calls_from_openai_format(): each call needs function.name and function.arguments. */
static int check_tool_calls(enc *e, const cmsg *m, const pj_value *tcs) {
    if (tcs->type != PJ_ARRAY) return fail(e, m, "tool_calls: not a list");
    for (size_t i = 0; i < tcs->n; i++) {
        const pj_value *tc = tcs->items[i];
        if (tc->type != PJ_OBJECT) return fail(e, m, "tool_calls[%zu]: not an object", i);
        const pj_value *f = pj_get(tc, "function");
        if (!f) return fail(e, m, "tool_calls[%zu]: missing key 'function'", i);
        if (f->type != PJ_OBJECT) return fail(e, m, "tool_calls[%zu].function: not an object", i);
        if (!pj_get(f, "name")) return fail(e, m, "tool_calls[%zu].function: missing key 'name'", i);
        if (!pj_get(f, "arguments")) return fail(e, m, "tool_calls[%zu].function: missing key 'arguments'", i);
    }
    return 0;
}

static int render_tools(enc *e, const cmsg *m, const pj_value *tools) {
    OUT(e->tags->tools_head);
    for (size_t i = 0; i < tools->n; i++) {
        if (i) OUT("\n");
        if (pj_dump_json(&e->out, pj_get(tools->items[i], "function"), e->err, e->errlen)) {
            char f[64]; snprintf(f, sizeof f, "tools[%zu].function", i);
            return refail(e, m, f);
        }
    }
    OUT(TOOLS_TAIL);
    return 0;
}

static int render_response_format(enc *e, const cmsg *m, const pj_value *rf) {
    OUT("\n\n");
    OUT(RESPONSE_FORMAT_HEAD);
    if (pj_dump_json(&e->out, rf, e->err, e->errlen)) return refail(e, m, "response_format");
    return 0;
}

/* encode_arguments_to_dsml() for one call: parameters joined by "\n". */
static int render_arguments(enc *e, const cmsg *m, size_t ci, const pj_value *args) {
    const pj_value *obj = NULL;
    if (args->type == PJ_STRING) {
        char perr[160];
        obj = pj_parse(&e->a, args->s, args->len, 1, perr, sizeof perr);
        if (obj && obj->type != PJ_OBJECT)
            return fail(e, m, "tool_calls[%zu].function.arguments: valid JSON but not an object", ci);
    }
    if (!obj) {
        /* not a string, or a string that is not JSON: one parameter named "arguments" */
        OUT(e->tags->par_open);
        OUT("arguments\" string=\"");
        OUT(args->type == PJ_STRING ? "true\">" : "false\">");
        int rc = args->type == PJ_STRING ? pj_dump_str(&e->out, args, e->err, e->errlen)
                                         : pj_dump_json(&e->out, args, e->err, e->errlen);
        if (rc) { char f[80]; snprintf(f, sizeof f, "tool_calls[%zu].function.arguments", ci); return refail(e, m, f); }
        OUT(e->tags->par_close);
        return 0;
    }
    for (size_t i = 0; i < obj->n; i++) {
        const pj_value *k = obj->keys[i], *v = obj->items[i];
        if (i) OUT("\n");
        OUT(e->tags->par_open);
        int rc = pj_dump_str(&e->out, k, e->err, e->errlen);
        OUT(v->type == PJ_STRING ? "\" string=\"true\">" : "\" string=\"false\">");
        if (!rc) rc = v->type == PJ_STRING ? pj_dump_str(&e->out, v, e->err, e->errlen)
                                           : pj_dump_json(&e->out, v, e->err, e->errlen);
        if (rc) { char f[80]; snprintf(f, sizeof f, "tool_calls[%zu].function.arguments", ci); return refail(e, m, f); }
        OUT(e->tags->par_close);
    }
    return 0;
}

static int render_tool_calls(enc *e, const cmsg *m, const pj_value *tcs) {
    OUT(e->tags->blk_open);
    for (size_t i = 0; i < tcs->n; i++) {
        const pj_value *tc = tcs->items[i], *f = pj_get(tc, "function");
        if (i) OUT("\n");
        const pj_value *id = pj_get(tc, "id");
        if (id && id->type == PJ_STRING && id->len && !memchr(id->s, 0, id->len)) {
            size_t rl = 0;
            /* a private copy: another thread may evict (and free) the registry's entry while we render */
            char *raw = dsv4_toolcall_dup(id->s, &rl);
            /* only bytes of this format (a registry shared with a model of the other format is not used) */
            size_t ol = strlen(e->tags->inv_open);
            if (raw && rl >= ol && !memcmp(raw, e->tags->inv_open, ol)) { pj_buf_put(&e->out, raw, rl); free(raw); continue; }
            free(raw);
        }
        OUT(e->tags->inv_open);
        if (pj_dump_str(&e->out, pj_get(f, "name"), e->err, e->errlen)) {
            char fl[80]; snprintf(fl, sizeof fl, "tool_calls[%zu].function.name", i); return refail(e, m, fl);
        }
        OUT("\">\n");
        if (render_arguments(e, m, i, pj_get(f, "arguments"))) return -1;
        OUT(e->tags->inv_close);
    }
    OUT(e->tags->blk_close);
    return 0;
}

/* ---------------------------------------------------------------- image content parts
 * The vision revision of the official encoder (process_image_messages: docs/encoding.md "Images") turns every
 * image content part into the placeholder text IMAGE_TOK and reports the images in order. Part types: OpenAI
 * "image_url" ({"url": U} or a bare string U), OpenAI Responses "input_image" (image_url U), Anthropic "image"
 * (source {"type": "base64", "media_type": T, "data": D} -> the data URL "data:T;base64,D"; {"type": "url", "url": U}). */
static int is_image_part(const pj_value *part) {
    const pj_value *t = pj_get(part, "type");
    return pj_is_str(t, "image_url") || pj_is_str(t, "input_image") || pj_is_str(t, "image");
}

static int has_sub(const char *s, size_t n, const char *sub) {
    size_t k = strlen(sub);
    for (size_t i = 0; i + k <= n; i++)
        if (!memcmp(s + i, sub, k)) return 1;
    return 0;
}

/* "messages[i].content[j]: <message>" (context[i] for a context message). */
static int part_fail(enc *e, const cmsg *m, int src, size_t j, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;
static int part_fail(enc *e, const cmsg *m, int src, size_t j, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return dsv4_fail(e->err, e->errlen, "%s[%d].content[%zu]: %s", m->ctx ? "context" : "messages", src, j, msg);
}

/* Check image part j of message `src` and, when the caller collects images, append its URL. */
static int add_image(enc *e, const cmsg *m, int src, size_t j, const pj_value *part) {
    const pj_value *t = pj_get(part, "type"), *url = NULL, *mt = NULL, *data = NULL;
    if (pj_is_str(t, "image")) {
        const pj_value *so = pj_get(part, "source");
        if (!so || so->type != PJ_OBJECT) return part_fail(e, m, src, j, "image: missing object 'source'");
        const pj_value *st = pj_get(so, "type");
        if (pj_is_str(st, "base64")) {
            mt = pj_get(so, "media_type");
            data = pj_get(so, "data");
            if (!data || data->type != PJ_STRING || data->len == 0)
                return part_fail(e, m, src, j, "source.data: needs a non-empty base64 string");
            if (mt && mt->type != PJ_NULL && mt->type != PJ_STRING)
                return part_fail(e, m, src, j, "source.media_type: not a string");
            if (mt && mt->type == PJ_NULL) mt = NULL;
        } else if (pj_is_str(st, "url")) {
            url = pj_get(so, "url");
            if (!url || url->type != PJ_STRING || url->len == 0)
                return part_fail(e, m, src, j, "source.url: needs a non-empty string");
        } else {
            return part_fail(e, m, src, j, "source.type: expected 'base64' or 'url'");
        }
    } else {
        const char *key = "image_url";
        url = pj_get(part, key);
        if (url && url->type == PJ_OBJECT) { url = pj_get(url, "url"); key = "image_url.url"; }
        if (!url || url->type != PJ_STRING || url->len == 0)
            return part_fail(e, m, src, j, "%s: needs a non-empty string (the image's URL)", key);
    }
    if (!e->want_img) return 0;
    if (e->nimg == e->capimg) {
        int nc = e->capimg ? e->capimg * 2 : 4;
        dsv4_chat_image *ni = realloc(e->img, (size_t)nc * sizeof *ni);
        if (!ni) return dsv4_fail(e->err, e->errlen, "out of memory");
        e->img = ni; e->capimg = nc;
    }
    dsv4_chat_image *im = &e->img[e->nimg];
    memset(im, 0, sizeof *im);
    size_t n = url ? url->len : strlen("data:;base64,") + (mt ? mt->len : 0) + data->len;
    im->url = malloc(n + 1);
    if (!im->url) return dsv4_fail(e->err, e->errlen, "out of memory");
    if (url) memcpy(im->url, url->s, n);
    else {
        char *q = im->url;
        memcpy(q, "data:", 5); q += 5;
        if (mt) { memcpy(q, mt->s, mt->len); q += mt->len; }
        memcpy(q, ";base64,", 8); q += 8;
        memcpy(q, data->s, data->len);
    }
    im->url[n] = 0;
    im->url_len = n;
    snprintf(im->where, sizeof im->where, "%s[%d].content[%zu]", m->ctx ? "context" : "messages", src, j);
    e->nimg++;
    return 0;
}

static int render_user(enc *e, const cmsg *m) {
    OUT(USER_TOK);
    for (size_t i = 0; i < m->nblk; i++) {
        const blk_t *b = &m->blk[i];
        if (i) OUT("\n\n");
        if (b->part) {
            const pj_value *p = b->part;
            size_t j = (size_t)b->pidx;
            if (p->type != PJ_OBJECT) return part_fail(e, m, b->src, j, "content part is not an object");
            const pj_value *ty = pj_get(p, "type");
            if (pj_is_str(ty, "text")) {
                const pj_value *tx = pj_get(p, "text");
                if (tx && tx->type != PJ_STRING) return part_fail(e, m, b->src, j, "text: not a string");
                if (!tx) continue;
                if (has_sub(tx->s, tx->len, IMAGE_TOK))
                    return part_fail(e, m, b->src, j, "text: contains the image placeholder '" IMAGE_TOK
                                     "' (send images as image content parts)");
                if (pj_dump_str(&e->out, tx, e->err, e->errlen)) {
                    char f[64]; snprintf(f, sizeof f, "content[%zu].text", j);
                    cmsg tmp = *m; tmp.src = b->src; return refail(e, &tmp, f);
                }
            } else if (is_image_part(p)) {
                if (add_image(e, m, b->src, j, p)) return -1;
                OUT(IMAGE_TOK);
            } else {
                char shown[64];
                excerpt(ty, shown, sizeof shown);
                return part_fail(e, m, b->src, j, "content part type '%s' is not supported in a user message (text, "
                                 "image_url, input_image or image)", shown);
            }
            continue;
        }
        if (!b->is_tool) {
            if (!b->text) continue;
            if (b->text->type != PJ_STRING) {
                cmsg tmp = *m; tmp.src = b->src;
                return fail(e, &tmp, "content: a user message needs string content (got %s)",
                            b->text->type == PJ_NULL ? "null" : b->text->type == PJ_ARRAY ? "a list" : "a non-string");
            }
            if (pj_dump_str(&e->out, b->text, e->err, e->errlen)) { cmsg tmp = *m; tmp.src = b->src; return refail(e, &tmp, "content"); }
            continue;
        }
        cmsg tmp = *m; tmp.src = b->src;
        OUT("<tool_result>");
        const pj_value *c = b->content;
        if (c && c->type == PJ_ARRAY) {
            for (size_t j = 0; j < c->n; j++) {
                const pj_value *part = c->items[j];
                if (j) OUT("\n\n");
                if (part->type != PJ_OBJECT) return fail(e, &tmp, "content[%zu]: not an object", j);
                const pj_value *ty = pj_get(part, "type");
                if (pj_is_str(ty, "text")) {
                    const pj_value *tx = pj_get(part, "text");
                    if (tx && tx->type != PJ_STRING) return fail(e, &tmp, "content[%zu].text: not a string", j);
                    if (tx && pj_dump_str(&e->out, tx, e->err, e->errlen)) return refail(e, &tmp, "content");
                } else if (is_image_part(part)) {
                    if (add_image(e, &tmp, b->src, j, part)) return -1;
                    OUT(IMAGE_TOK);
                } else {
                    OUT("[Unsupported ");
                    if (pj_dump_str(&e->out, ty, e->err, e->errlen)) return refail(e, &tmp, "content");
                    OUT("]");
                }
            }
        } else if (c) {
            if (pj_dump_str(&e->out, c, e->err, e->errlen)) return refail(e, &tmp, "content");
        }
        OUT("</tool_result>");
    }
    return 0;
}

static int render_message(enc *e, cmsg **R, size_t nR, size_t idx, int last_user) {
    const cmsg *m = R[idx];
    const pj_value *content = mget(m, "content");
    const pj_value *tools = mget(m, "tools");
    const pj_value *rf = mget(m, "response_format");
    const pj_value *tcs = mget(m, "tool_calls");
    if (pj_truthy(tools) && check_tools(e, m, tools)) return -1;
    if (pj_truthy(tcs) && check_tool_calls(e, m, tcs)) return -1;
    if (m->role != R_USER && content && content->type == PJ_ARRAY)
        for (size_t j = 0; j < content->n; j++)
            if (content->items[j]->type == PJ_OBJECT && is_image_part(content->items[j])) {
                char shown[64];
                excerpt(mget(m, "role"), shown, sizeof shown);
                return part_fail(e, m, m->src, j, "image parts are allowed only in user and tool messages, not in a "
                                 "'%s' message", shown);
            }

    if (e->v41) {
        /* §10.2: "<｜System｜>" before message 0 when it is a system message or an effort line follows */
        if (idx == 0 && !e->has_context && (e->thinking || m->role == R_SYSTEM)) OUT(SYSTEM_TOK);
        if (idx == 0 && !e->has_context && e->thinking) {
            char num[16];
            snprintf(num, sizeof num, "%d", e->effort_level);
            OUT(EFFORT_V41_HEAD); OUT(num); OUT(EFFORT_V41_TAIL);
        }
    } else if (idx == 0 && !e->has_context && e->thinking && e->effort == DSV4_EFFORT_MAX) OUT(EFFORT_MAX_TEXT);

    switch (m->role) {
    case R_SYSTEM:
        if (e->v41 && idx > 0) OUT(SYSTEM_TOK);  /* §10.3 */
        if (pj_truthy(content) && pj_dump_str(&e->out, content, e->err, e->errlen)) return refail(e, m, "content");
        if (pj_truthy(tools)) { OUT("\n\n"); if (render_tools(e, m, tools)) return -1; }
        if (pj_truthy(rf) && render_response_format(e, m, rf)) return -1;
        break;
    case R_DEVELOPER:
        if (!pj_truthy(content)) return fail(e, m, "content: a developer message needs non-empty content");
        if (content->type != PJ_STRING) return fail(e, m, "content: a developer message needs string content");
        OUT(USER_TOK);
        if (pj_dump_str(&e->out, content, e->err, e->errlen)) return refail(e, m, "content");
        if (pj_truthy(tools)) { OUT("\n\n"); if (render_tools(e, m, tools)) return -1; }
        if (pj_truthy(rf) && render_response_format(e, m, rf)) return -1;
        break;
    case R_USER:
        if (render_user(e, m)) return -1;
        break;
    case R_REMINDER:
        OUT(REMINDER_TOK);
        if (pj_dump_str(&e->out, content, e->err, e->errlen)) return refail(e, m, "content");
        break;
    case R_ASSISTANT: {
        int prev_task = idx > 0 && has_task(R[idx - 1]);
        if (e->thinking && !prev_task && (!e->drop || (int)idx > last_user)) {
            const pj_value *rc = mget(m, "reasoning_content");
            if (pj_truthy(rc) && pj_dump_str(&e->out, rc, e->err, e->errlen)) return refail(e, m, "reasoning_content");
            OUT(THINK_CLOSE);
        }
        if (pj_truthy(content) && pj_dump_str(&e->out, content, e->err, e->errlen)) return refail(e, m, "content");
        if (pj_truthy(tcs) && render_tool_calls(e, m, tcs)) return -1;
        if (!pj_truthy(mget(m, "wo_eos"))) OUT(EOS);
        break;
    }
    case R_NONE:
        return fail(e, m, "role: missing");
    default: {
        char shown[64];
        excerpt(mget(m, "role"), shown, sizeof shown);
        return fail(e, m, "role: unknown role '%s' (expected system, developer, user, assistant, tool or latest_reminder)",
                    shown);
    }
    }

    /* transition (§3.5) */
    if (idx + 1 < nR && R[idx + 1]->role != R_ASSISTANT && R[idx + 1]->role != R_REMINDER) return 0;
    const pj_value *task = mget(m, "task");
    if (task && task->type != PJ_NULL) {
        const char *tok = NULL;
        int is_action = 0;
        for (size_t t = 0; t < sizeof TASKS / sizeof TASKS[0]; t++)
            if (pj_is_str(task, TASKS[t][0])) { tok = TASKS[t][1]; is_action = t == 0; }
        if (!tok) return fail(e, m, "task: invalid task (valid: action, query, authority, domain, title, read_url)");
        if (is_action) { OUT(ASSISTANT_TOK); OUT(e->thinking ? THINK_OPEN : THINK_CLOSE); }
        OUT(tok);
    } else if (user_like(e, m->role, idx)) {
        OUT(ASSISTANT_TOK);
        if (e->thinking && (!e->drop || (int)idx >= last_user)) OUT(THINK_OPEN);
        else OUT(THINK_CLOSE);
    }
    return 0;
}

/* ---------------------------------------------------------------- entry point */
void dsv4_chat_images_free(dsv4_chat_image *images, int n) {
    if (!images) return;
    for (int i = 0; i < n; i++) free(images[i].url);
    free(images);
}

int dsv4_chat_render(const char *request_json, size_t len, const dsv4_render_opts *opts,
                     char **out, size_t *out_len, char *err, size_t errlen) {
    return dsv4_chat_render_images(request_json, len, opts, out, out_len, NULL, NULL, err, errlen);
}

int dsv4_chat_render_images(const char *request_json, size_t len, const dsv4_render_opts *opts, char **out,
                            size_t *out_len, dsv4_chat_image **images, int *n_images, char *err, size_t errlen) {
    static const dsv4_render_opts defaults;
    if (!opts) opts = &defaults;
    if (out) *out = NULL;
    if (out_len) *out_len = 0;
    if (images) *images = NULL;
    if (n_images) *n_images = 0;
    if (!request_json || !out || !images != !n_images) return dsv4_fail(err, errlen, "dsv4_chat_render: NULL argument");
    if (opts->effort != DSV4_EFFORT_NONE && opts->effort != DSV4_EFFORT_HIGH && opts->effort != DSV4_EFFORT_MAX)
        return dsv4_fail(err, errlen, "reasoning_effort: invalid value %d (valid: none, high, max)", (int)opts->effort);
    if (opts->format != DSV4_FORMAT_V4 && opts->format != DSV4_FORMAT_V41)
        return dsv4_fail(err, errlen, "format: invalid value %d (valid: DSV4_FORMAT_V4, DSV4_FORMAT_V41)", (int)opts->format);
    if (opts->format == DSV4_FORMAT_V4 && opts->effort_level)
        return dsv4_fail(err, errlen, "reasoning_effort: a numeric effort (%d) is a DeepSeek-V4.1 option; V4 takes none, "
                         "high or max", opts->effort_level);
    if (opts->effort_level < 0 || opts->effort_level > 100)
        return dsv4_fail(err, errlen, "reasoning_effort: %d is outside 1..100", opts->effort_level);

    enc E = { .err = err, .errlen = errlen, .thinking = opts->thinking != 0, .want_img = images != NULL };
    enc *e = &E;
    E.effort = opts->effort;
    E.v41 = opts->format == DSV4_FORMAT_V41;
    E.tags = E.v41 ? &DSML_V41 : &DSML_V4;
    E.effort_level = opts->effort_level ? opts->effort_level : opts->effort == DSV4_EFFORT_MAX ? 100 : 75;
    int rc = -1;
    char perr[200];

    pj_value *req = pj_parse(&e->a, request_json, len, 0, perr, sizeof perr);
    if (!req) { dsv4_fail(err, errlen, "request: %s", perr); goto done; }
    const pj_value *msgs = req, *tools = NULL, *rf = NULL;
    if (req->type == PJ_OBJECT) {
        msgs = pj_get(req, "messages");
        if (!msgs) { dsv4_fail(err, errlen, "request: missing key 'messages'"); goto done; }
        tools = pj_get(req, "tools");
        rf = pj_get(req, "response_format");
        if (pj_truthy(tools) && tools->type != PJ_ARRAY) { dsv4_fail(err, errlen, "request.tools: not a list"); goto done; }
    } else if (req->type != PJ_ARRAY) {
        dsv4_fail(err, errlen, "request: expected a JSON array of messages or an object with 'messages'");
        goto done;
    }
    if (msgs->type != PJ_ARRAY) { dsv4_fail(err, errlen, "request.messages: not a list"); goto done; }

    const pj_value *ctx = NULL;
    if (opts->context_json) {
        ctx = pj_parse(&e->a, opts->context_json, opts->context_len, 0, perr, sizeof perr);
        if (!ctx) { dsv4_fail(err, errlen, "context: %s", perr); goto done; }
        if (ctx->type != PJ_ARRAY) { dsv4_fail(err, errlen, "context: not a JSON array of messages"); goto done; }
        if (ctx->n == 0) ctx = NULL; /* official: `context if context else []` */
    }
    e->has_context = ctx != NULL;

    if (ctx && merge_segment(e, ctx, 1, tools, rf)) goto done;
    if (merge_segment(e, msgs, 0, ctx ? NULL : tools, ctx ? NULL : rf)) goto done;
    if (sort_tool_results(e)) goto done;

    e->drop = !opts->keep_thinking;
    for (size_t i = 0; i < e->n && e->drop; i++)
        if (pj_truthy(mget(&e->m[i], "tools"))) e->drop = 0;

    cmsg **R = pj_alloc(&e->a, (e->n + 1) * sizeof *R);
    if (!R) { dsv4_fail(err, errlen, "out of memory"); goto done; }
    size_t nR = 0;
    if (e->thinking && e->drop) {
        int lu = -1;
        for (size_t i = e->n; i-- > 0;)
            if (user_like(e, e->m[i].role, i)) { lu = (int)i; break; }
        for (size_t i = 0; i < e->n; i++) {
            cmsg *m = &e->m[i];
            int keep = m->role == R_USER || m->role == R_SYSTEM || m->role == R_TOOL || m->role == R_REMINDER ||
                       m->role == R_DSR || (int)i >= lu;
            if (keep) R[nR++] = m;
            else if (m->role == R_ASSISTANT) { m->no_reasoning = 1; R[nR++] = m; }
            /* developer and other roles before the last user message are dropped */
        }
    } else {
        for (size_t i = 0; i < e->n; i++) R[nR++] = &e->m[i];
    }

    if (!opts->no_bos && !ctx) OUT(BOS);
    int last_user = last_user_index(e, R, nR);
    for (size_t i = 0; i < nR; i++) {
        if (R[i]->ctx) continue;
        if (render_message(e, R, nR, i, last_user)) goto done;
    }
    if (e->out.oom) { dsv4_fail(err, errlen, "out of memory"); goto done; }
    if (!e->out.p) pj_buf_puts(&e->out, "");
    if (e->out.oom) { dsv4_fail(err, errlen, "out of memory"); goto done; }
    *out = e->out.p;
    if (out_len) *out_len = e->out.n;
    e->out.p = NULL;
    if (images) { *images = e->img; *n_images = e->nimg; e->img = NULL; }
    rc = 0;
done:
    dsv4_chat_images_free(e->img, e->nimg);
    pj_buf_free(&e->out);
    pj_arena_free(&e->a);
    return rc;
}
