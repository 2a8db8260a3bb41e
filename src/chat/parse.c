/* chat/parse.c — incremental parser of DeepSeek-V4 / V4.1 output: reasoning / content / DSML tool calls.
 * Contract and deviations from the official parser: include/dsv4_parse.h; docs/encoding.md §4.2, §4.5, §9.10, §10.4.
 * The two formats differ only in the DSML tag names (`ptags`: "tool_calls" / "invoke" / "parameter" in V4,
 * " calls" / " invoke" / " parameter" in V4.1); everything below is written for either table.
 *
 * Structure: a byte stream is pumped through a small state machine.
 *   ST_REASON  (thinking mode start)  markers: EOS, "</think>", "\n\n<｜DSML｜tool_calls"
 *   ST_CONTENT                        markers: EOS, "\n\n<｜DSML｜tool_calls"
 *   ST_BLOCK   the tool-call block is buffered whole; validated (prefix-wise) as bytes arrive. Like the
 *              official parse_tool_calls only DSML stop strings count inside it (an EOS in a value is data);
 *              resolved at "</｜DSML｜tool_calls>" + EOS or at the end of stream into tool calls, or into
 *              content on failure (then ST_RAW / ST_DONE)
 *   ST_RAW     after a failed block: everything is content, the first EOS (even one inside the failed
 *              block) ends the message;  markers: EOS
 *   ST_DONE    after EOS: everything is content (flagged)
 * In the streaming states the earliest complete marker (by start) switches state; otherwise the longest
 * suffix that is a proper prefix of any marker (state markers plus cosmetic ones: "<think>", BOS, DSML tag
 * openers) and any incomplete trailing UTF-8 character are held back. No marker is a substring of another
 * marker of the same state, so the earliest-by-start marker is also the first to complete, which makes the
 * result independent of how the input is split. The block validator only reports an error when no extension
 * of the text could be valid, and after a failure everything is content, so an early or late verdict gives
 * the same result.
 */
#include "dsv4_parse.h"
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_EOS        "<\xEF\xBD\x9C" "end\xE2\x96\x81" "of\xE2\x96\x81" "sentence\xEF\xBD\x9C>"
#define S_BOS        "<\xEF\xBD\x9C" "begin\xE2\x96\x81" "of\xE2\x96\x81" "sentence\xEF\xBD\x9C>"
#define S_DSML       "\xEF\xBD\x9C" "DSML" "\xEF\xBD\x9C"
#define S_THINK      "<think>"
#define S_THINK_END  "</think>"
#define SLEN(s)      (sizeof(s) - 1)

/* The DSML stop strings of a format: block start marker, block end, invoke open / close (without '>'),
 * parameter open, parameter close (without its '<' and '>'), as the official parser searches for them. */
typedef struct { const char *tc_start, *tc_end, *inv, *inv_end, *par, *par_end; } ptags;
static const ptags TAGS_V4 = { "\n\n<" S_DSML "tool_calls", "</" S_DSML "tool_calls>", "<" S_DSML "invoke",
                               "</" S_DSML "invoke", "<" S_DSML "parameter", "/" S_DSML "parameter" };
static const ptags TAGS_V41 = { "\n\n<" S_DSML " calls", "</" S_DSML " calls>", "<" S_DSML " invoke",
                                "</" S_DSML " invoke", "<" S_DSML " parameter", "/" S_DSML " parameter" };

enum { ST_REASON, ST_CONTENT, ST_BLOCK, ST_RAW, ST_DONE };

typedef struct { char *p; size_t n, cap; } buf_t;

typedef struct { size_t off, len; } span_t;
typedef struct { span_t key, val; int is_str; } par_t;
typedef struct { span_t name, raw; int par0, npar, trunc; } inv_t;  /* trunc: cut by the end of the stream */
typedef struct {
    inv_t *inv; int ninv, capinv;
    par_t *par; int npar, cappar;
    char msg[160];
    /* V_DONE only: end = offset just after "</｜DSML｜tool_calls>" (or n when truncated); eos = the EOS text
     * follows at end (the caller splits there); trunc = accepted although cut by the end of the stream */
    size_t end;
    int eos, trunc;
    /* V_MORE only: when wait_a != NULL the verdict cannot change until stop wait_a or wait_b (may be NULL)
     * occurs at/after offset wait_from (the caller may skip re-validation until then) */
    const char *wait_a, *wait_b;
    size_t wait_from;
    /* checkpoint: a position before which everything is final (all stops found) */
    int ck_kind;      /* 0 none, 1 top of the invoke loop, 2 inside invoke ck_ninv after a parameter */
    size_t ck_i, ck_inv_start; int ck_ninv, ck_npar;
} vres_t;
struct dsv4_parser {
    int thinking, state, closed, finished, oom, fed;
    const ptags *tags;
    uint64_t seed;
    buf_t pend;       /* bytes not yet emitted (streaming states) */
    buf_t blk;        /* the tool-call block text (ST_BLOCK), starting with S_TC_START */
    size_t blk_checked; /* blk length at the last prefix validation */
    const char *wait_a, *wait_b; /* from the last V_MORE: skip validation until one of these appears */
    size_t wait_from;
    vres_t vr;        /* validator state (checkpoint) of the current block */
    buf_t reasoning, content, warn;
    dsv4_tool_call *calls;
    int ncalls;
    int saw_think_end, saw_eos, block_failed, after_eos_warned, block_in_reasoning;
};

enum { V_MORE, V_DONE, V_ERR, V_OOM };


/* ------------------------------------------------------------------ small helpers */

static int buf_add(buf_t *b, const void *d, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1) cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) return -1;
        b->p = np;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, d, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}
static int buf_adds(buf_t *b, const char *s) { return buf_add(b, s, strlen(s)); }
static void buf_consume(buf_t *b, size_t n) {
    if (!b->p) return;
    memmove(b->p, b->p + n, b->n - n);
    b->n -= n;
    b->p[b->n] = 0;
}
/* Take ownership of the bytes as a NUL-terminated string ("" if empty). */
static char *buf_take(buf_t *b, size_t *len) {
    if (!b->p && buf_add(b, "", 0)) return NULL;
    char *r = b->p;
    if (len) *len = b->n;
    memset(b, 0, sizeof *b);
    return r;
}

static const char *find_bytes(const char *s, size_t n, size_t from, const char *m, size_t mn) {
    if (from >= n || n - from < mn || !mn) return NULL;
    const char *end = s + n - mn + 1;
    for (const char *q = s + from; q < end; q++) {
        q = memchr(q, m[0], (size_t)(end - q));
        if (!q) return NULL;
        if (!memcmp(q, m, mn)) return q;
    }
    return NULL;
}

static int is_prefix_of(const char *t, size_t tn, const char *m) {
    size_t mn = strlen(m);
    return tn <= mn && memcmp(t, m, tn) == 0;
}

static void warn(dsv4_parser *p, const char *fmt, ...) {
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (p->warn.n && strstr(p->warn.p, msg)) return;  /* no duplicates */
    if ((p->warn.n && buf_adds(&p->warn, "; ")) || buf_adds(&p->warn, msg)) p->oom = 1;
}

/* valid_json: all n bytes are one JSON object (cJSON) and hold no control byte other than tab, LF and CR. JSON
 * allows none anywhere else (RFC 8259), but cJSON skips every byte <= 0x20 as whitespace, and a NUL byte would
 * end a C reader's copy early (issue 8 fuzzing: a string="false" value with a NUL and other control bytes was
 * reported valid by one reading and invalid by the other). */
static int json_object_text(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)s[i];
        if (b < 0x20 && b != '\t' && b != '\n' && b != '\r') return 0;
    }
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(s, n, &end, 0);
    int ok = j != NULL && cJSON_IsObject(j);
    cJSON_Delete(j);
    for (const char *q = end; ok && q && q < s + n; q++)
        if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r') ok = 0;
    return ok;
}

static uint64_t fnv1a(uint64_t h, const void *d, size_t n) {
    const unsigned char *s = d;
    for (size_t i = 0; i < n; i++) { h ^= s[i]; h *= 0x100000001b3ull; }
    return h;
}

/* Python json.dumps(s, ensure_ascii=False) of a byte string taken as UTF-8. */
static int json_str(buf_t *b, const char *s, size_t n) {
    if (buf_add(b, "\"", 1)) return -1;
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char tmp[8];
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        default:
            if (c < 0x20) { snprintf(tmp, sizeof tmp, "\\u%04x", c); esc = tmp; }
        }
        if (esc) {
            if (buf_add(b, s + run, i - run) || buf_adds(b, esc)) return -1;
            run = i + 1;
        }
    }
    if (buf_add(b, s + run, n - run) || buf_add(b, "\"", 1)) return -1;
    return 0;
}

/* ------------------------------------------------------------------ block validator */


static void vres_free(vres_t *r) { free(r->inv); free(r->par); memset(r, 0, sizeof *r); }

/* Earliest occurrence at/after `from` of stop a or b (b may be NULL): returns its offset and sets *which
 * (0 = a, 1 = b; b wins if both start at the same byte), or returns (size_t)-1 if neither occurs.
 * One left-to-right scan that stops at the first match, so the cost is bounded by the distance to the
 * nearest stop (times the marker length), not by the rest of the text: searching each stop to the end
 * separately made a block of k invokes cost O(k^2). */
static size_t find2(const char *s, size_t n, size_t from, const char *a, const char *b, int *which) {
    size_t la = strlen(a), lb = b ? strlen(b) : 0;
    if (!b) {
        const char *pa = find_bytes(s, n, from, a, la);
        if (!pa) return (size_t)-1;
        *which = 0;
        return (size_t)(pa - s);
    }
    size_t mn = la < lb ? la : lb;
    if (!mn || from >= n || n - from < mn) return (size_t)-1;
    int same = a[0] == b[0];
    for (size_t q = from; q + mn <= n; q++) {
        if (same) {  /* jump to the next candidate first byte */
            const char *c = memchr(s + q, a[0], n - mn + 1 - q);
            if (!c) break;
            q = (size_t)(c - s);
        }
        if (n - q >= lb && !memcmp(s + q, b, lb)) { *which = 1; return q; }
        if (n - q >= la && !memcmp(s + q, a, la)) { *which = 0; return q; }
    }
    return (size_t)-1;
}

/* Text t (tn bytes, no stop found in it) can still become ">\n" followed by stop a or b. */
static int sep_prefix_ok(const char *t, size_t tn, const char *a, const char *b) {
    if (tn <= 2) return memcmp(t, ">\n", tn) == 0;
    return t[0] == '>' && t[1] == '\n' && (is_prefix_of(t + 2, tn - 2, a) || is_prefix_of(t + 2, tn - 2, b));
}

/* Byte length of the character at s[0..n) if it is whitespace for Python's re `\s` on str (= str.isspace():
 * \t-\r, \x1c-\x1f, space, U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000),
 * else 0. s is UTF-8. */
static size_t py_space(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    if (!n) return 0;
    if (u[0] == ' ' || (u[0] >= 0x09 && u[0] <= 0x0d) || (u[0] >= 0x1c && u[0] <= 0x1f)) return 1;
    if (n >= 2 && u[0] == 0xC2 && (u[1] == 0x85 || u[1] == 0xA0)) return 2;
    if (n >= 3 && u[0] == 0xE1 && u[1] == 0x9A && u[2] == 0x80) return 3;                        /* U+1680 */
    if (n >= 3 && u[0] == 0xE2 && u[1] == 0x80 &&
        (u[2] <= 0x8A || u[2] == 0xA8 || u[2] == 0xA9 || u[2] == 0xAF) && u[2] >= 0x80) return 3;  /* U+2000.. */
    if (n >= 3 && u[0] == 0xE2 && u[1] == 0x81 && u[2] == 0x9F) return 3;                        /* U+205F */
    if (n >= 3 && u[0] == 0xE3 && u[1] == 0x80 && u[2] == 0x80) return 3;                        /* U+3000 */
    return 0;
}

/* Invoke header s[h..he): Python re.findall(r'^\s*name="(.*?)">\n$', ..., DOTALL) has exactly one match
 * (`$` also matches before one final '\n'). On success sets the name span and returns 1. */
static int header_ok(const char *s, size_t h, size_t he, span_t *name) {
    size_t w;
    while (h < he && (w = py_space(s + h, he - h)) > 0) h += w;
    size_t tail = (he - h >= 4 && s[he - 1] == '\n' && s[he - 2] == '\n') ? 4 : 3;
    if (he - h < 6 + tail || memcmp(s + h, "name=\"", 6) != 0 || memcmp(s + he - tail, "\">\n", 3) != 0) return 0;
    name->off = h + 6;
    name->len = he - tail - (h + 6);
    return 1;
}

#define VERR(...) do { snprintf(r->msg, sizeof r->msg, __VA_ARGS__); return V_ERR; } while (0)

/* The stream ends inside invoke iv (which starts at inv_start) at a point the official parser accepts: record
 * the invoke as truncated (raw = inv_start..n), mark the block truncated and ending at n; returns V_DONE. */
static int done_truncated(vres_t *r, inv_t *iv, size_t inv_start, size_t n) {
    iv->raw.off = inv_start;
    iv->raw.len = n - inv_start;
    iv->trunc = 1;
    r->ninv++;
    r->trunc = 1;
    r->end = n;
    return V_DONE;
}

/* Validate block text s[0..n) (starts with S_TC_START; may go on past the block). final = no more bytes will
 * come. resume: continue from r's checkpoint (r from an earlier call on a prefix of the same text) instead of
 * byte 0. Follows the official parse_tool_calls: only the DSML stop strings count, so an EOS inside a value or
 * a name is data.
 * V_DONE: a complete block; r holds invokes/params; r->end = its end; either r->end == n, or r->eos and the
 *   EOS text starts at r->end (the rest is not part of the block). When final, also the prefixes the
 *   official parser accepts when the text ends there (r->trunc): right after the "\n\n<｜DSML｜tool_calls"
 *   marker, after a complete invoke header, after a parameter's ">\n", after "</｜DSML｜invoke" (no '>').
 *   Zero invokes is valid (the official returns no calls).
 * V_MORE: a proper prefix of a valid block (only when !final; conservative).
 * V_ERR: no extension can be valid; r->msg says why. */
static int validate(const ptags *t, const char *s, size_t n, int final, vres_t *r, int resume) {
    const char *const S_TC_START = t->tc_start, *const S_TC_END = t->tc_end, *const S_INV = t->inv,
               *const S_INV_END = t->inv_end, *const S_PAR = t->par, *const S_PAR_END = t->par_end;
    const size_t L_TC_END = strlen(S_TC_END), L_INV = strlen(S_INV), L_INV_END = strlen(S_INV_END),
                 L_PAR = strlen(S_PAR), L_PAR_END = strlen(S_PAR_END);
    size_t i = strlen(S_TC_START), pos = 0, inv_start = 0;
    int which = 0;
    inv_t *iv = NULL;
    r->ninv = r->npar = 0;
    r->msg[0] = 0;
    r->wait_a = r->wait_b = NULL;
    r->end = 0;
    r->eos = r->trunc = 0;
    if (resume && r->ck_kind) {
        i = r->ck_i;
        r->ninv = r->ck_ninv;
        r->npar = r->ck_npar;
        if (r->ck_kind == 2) {  /* inside an invoke, right after a parameter's closing tag name */
            inv_start = r->ck_inv_start;
            iv = &r->inv[r->ninv];
            iv->npar = r->npar - iv->par0;
            goto after_param;
        }
    }
    for (;;) {
        r->ck_kind = 1; r->ck_i = i; r->ck_ninv = r->ninv; r->ck_npar = r->npar;
        pos = find2(s, n, i, S_INV, S_TC_END, &which);
        /* messages must not depend on `final` (an early verdict must equal the late one) */
        if (pos == (size_t)-1) {
            if (final && i == n) {  /* cut right after the marker or after "</｜DSML｜invoke": official accepts */
                r->trunc = 1;
                r->end = n;
                return V_DONE;
            }
            if (!sep_prefix_ok(s + i, n - i, S_INV, S_TC_END))
                VERR("unexpected text in tool-call block at byte %zu (expected '>\\n' then an invoke or the closing tag)", i);
            if (final) VERR("tool-call block not closed (missing %s)", S_TC_END);
            return V_MORE;
        }
        if (pos - i != 2 || memcmp(s + i, ">\n", 2) != 0)
            VERR("unexpected text in tool-call block at byte %zu (expected '>\\n' then an invoke or the closing tag)", i);
        if (which == 1) {  /* </｜DSML｜tool_calls> */
            size_t end = pos + L_TC_END;
            r->end = end;
            if (end == n) return V_DONE;
            if (n - end >= SLEN(S_EOS) && !memcmp(s + end, S_EOS, SLEN(S_EOS))) { r->eos = 1; return V_DONE; }
            if (!final && is_prefix_of(s + end, n - end, S_EOS)) return V_MORE;
            VERR("text after %s", S_TC_END);
        }
        /* invoke */
        inv_start = pos;
        i = pos + L_INV;
        pos = find2(s, n, i, S_PAR, S_INV_END, &which);
        span_t name;
        if (pos == (size_t)-1) {
            /* the official takes the rest as the header: a complete header at the very end is one call, no params */
            if (final && !header_ok(s, i, n, &name)) VERR("invoke %d not closed (missing %s>)", r->ninv, S_INV_END);
            if (!final) {
                r->wait_a = S_PAR; r->wait_b = S_INV_END; r->wait_from = i;
                return V_MORE;
            }
        } else if (!header_ok(s, i, pos, &name))
            VERR("bad invoke header in invoke %d (expected name=\"NAME\">\\n)", r->ninv);
        if (r->ninv == r->capinv) {
            int cap = r->capinv ? 2 * r->capinv : 4;
            inv_t *ni = realloc(r->inv, sizeof *ni * (size_t)cap);
            if (!ni) return V_OOM;
            r->inv = ni;
            r->capinv = cap;
        }
        iv = &r->inv[r->ninv];
        iv->name = name;
        iv->par0 = r->npar;
        iv->npar = 0;
        iv->trunc = 0;
        if (pos == (size_t)-1) return done_truncated(r, iv, inv_start, n);  /* final: truncated after the header */
        while (which == 0) {  /* <｜DSML｜parameter */
            i = pos + L_PAR;
            const char *pe = find_bytes(s, n, i, S_PAR_END, L_PAR_END);
            if (!pe) {
                if (final) VERR("parameter %d of invoke %d not closed (missing <%s>)", iv->npar, r->ninv, S_PAR_END);
                r->wait_a = S_PAR_END; r->wait_from = i;
                return V_MORE;
            }
            pos = (size_t)(pe - s);
            /* ^ name="(.*?)" string="(true|false)">(.*?)<$ */
            const char *pc = s + i;
            size_t pn = pos - i;
            size_t lt = (pn >= 2 && pc[pn - 1] == '\n' && pc[pn - 2] == '<') ? pn - 2 : pn - 1; /* the final '<' */
            if (pn < 7 || pc[lt] != '<' || memcmp(pc, " name=\"", 7) != 0)
                VERR("bad parameter %d of invoke %d (expected  name=\"KEY\" string=\"true|false\">VALUE<)", iv->npar, r->ninv);
            const char *at = find_bytes(pc, lt, 7, "\" string=\"", 10);
            size_t k = 0, aend = 0;
            int is_str = -1;
            while (at) {  /* earliest `" string="true">` or `" string="false">` */
                k = (size_t)(at - pc);
                if (lt - k >= 16 && !memcmp(at, "\" string=\"true\">", 16)) { is_str = 1; aend = k + 16; break; }
                if (lt - k >= 17 && !memcmp(at, "\" string=\"false\">", 17)) { is_str = 0; aend = k + 17; break; }
                at = find_bytes(pc, lt, k + 1, "\" string=\"", 10);
            }
            if (is_str < 0)
                VERR("bad parameter %d of invoke %d (missing or bad string=\"true|false\" attribute)", iv->npar, r->ninv);
            span_t key = { i + 7, k - 7 }, val = { i + aend, lt - aend };
            for (int q = iv->par0; q < r->npar; q++)
                if (r->par[q].key.len == key.len && !memcmp(s + r->par[q].key.off, s + key.off, key.len))
                    VERR("duplicate parameter name \"%.*s\" in invoke %d", (int)(key.len > 60 ? 60 : key.len),
                         s + key.off, r->ninv);
            if (r->npar == r->cappar) {
                int cap = r->cappar ? 2 * r->cappar : 8;
                par_t *np = realloc(r->par, sizeof *np * (size_t)cap);
                if (!np) return V_OOM;
                r->par = np;
                r->cappar = cap;
            }
            r->par[r->npar].key = key;
            r->par[r->npar].val = val;
            r->par[r->npar].is_str = is_str;
            r->npar++;
            iv->npar++;
            i = pos + L_PAR_END;
        after_param:
            r->ck_kind = 2; r->ck_i = i; r->ck_ninv = r->ninv; r->ck_npar = r->npar; r->ck_inv_start = inv_start;
            pos = find2(s, n, i, S_PAR, S_INV_END, &which);
            if (pos == (size_t)-1) {
                if (!sep_prefix_ok(s + i, n - i, S_PAR, S_INV_END))
                    VERR("unexpected text after parameter %d of invoke %d", iv->npar - 1, r->ninv);
                if (final && n - i == 2)  /* cut right after the parameter's ">\n": official accepts the call */
                    return done_truncated(r, iv, inv_start, n);
                if (final) VERR("invoke %d not closed (missing %s>)", r->ninv, S_INV_END);
                return V_MORE;
            }
            if (pos - i != 2 || memcmp(s + i, ">\n", 2) != 0)
                VERR("unexpected text after parameter %d of invoke %d", iv->npar - 1, r->ninv);
        }
        /* </｜DSML｜invoke ; its '>' is checked by the separator test of the next round */
        i = pos + L_INV_END;
        iv->raw.off = inv_start;
        iv->raw.len = (i < n ? i + 1 : n) - inv_start;  /* its '>' (if any) is checked in the next round */
        iv->trunc = i >= n;
        r->ninv++;
    }
}

/* ------------------------------------------------------------------ emission */

static void emit(dsv4_parser *p, dsv4_parse_event_kind kind, const char *d, size_t n, dsv4_parse_cb cb, void *user) {
    if (!n) return;
    if (buf_add(kind == DSV4_EV_REASONING ? &p->reasoning : &p->content, d, n)) { p->oom = 1; return; }
    if (cb) {
        dsv4_parse_event ev = { kind, d, n, NULL, -1 };
        cb(user, &ev);
    }
}

static void free_call(dsv4_tool_call *c) {
    free(c->id); free(c->name); free(c->arguments); free(c->raw);
}

/* Turn a validated block into tool calls (all or nothing). Returns 0 or -1 (OOM). */
static int make_calls(dsv4_parser *p, const char *s, const vres_t *r, dsv4_parse_cb cb, void *user) {
    dsv4_tool_call *calls = calloc((size_t)r->ninv, sizeof *calls);
    if (!calls) return -1;
    for (int k = 0; k < r->ninv; k++) {
        const inv_t *iv = &r->inv[k];
        dsv4_tool_call *c = &calls[k];
        buf_t a = {0};
        int bad = buf_add(&a, "{", 1);
        for (int q = 0; q < iv->npar && !bad; q++) {
            const par_t *pp = &r->par[iv->par0 + q];
            if (q) bad |= buf_add(&a, ", ", 2);
            bad |= json_str(&a, s + pp->key.off, pp->key.len);
            bad |= buf_add(&a, ": ", 2);
            if (pp->is_str) bad |= json_str(&a, s + pp->val.off, pp->val.len);
            else bad |= buf_add(&a, s + pp->val.off, pp->val.len);
        }
        bad |= buf_add(&a, "}", 1);
        c->arguments = buf_take(&a, &c->arguments_len);
        c->name = malloc(iv->name.len + 1);
        c->raw = malloc(iv->raw.len + 1);
        c->id = malloc(24);
        if (bad || !c->arguments || !c->name || !c->raw || !c->id) {
            free(a.p);
            for (int j = 0; j <= k; j++) free_call(&calls[j]);
            free(calls);
            return -1;
        }
        memcpy(c->name, s + iv->name.off, iv->name.len);
        c->name[iv->name.len] = 0;
        c->name_len = iv->name.len;
        memcpy(c->raw, s + iv->raw.off, iv->raw.len);
        c->raw[iv->raw.len] = 0;
        c->raw_len = iv->raw.len;
        uint64_t h = 0xcbf29ce484222325ull, idx = (uint64_t)k;
        h = fnv1a(h, &p->seed, sizeof p->seed);
        h = fnv1a(h, &idx, sizeof idx);
        h = fnv1a(h, c->raw, c->raw_len);
        snprintf(c->id, 24, "call_%016llx", (unsigned long long)h);
        c->valid_json = json_object_text(c->arguments, c->arguments_len);
        if (!c->valid_json) warn(p, "tool call %d (%s): arguments are not valid JSON (a string=\"false\" value is not JSON)", k, c->name);
    }
    p->calls = calls;
    p->ncalls = r->ninv;
    for (int k = 0; k < r->ninv; k++) {
        /* best effort; a call cut by the end of the stream is not registered (its bytes are not a whole invoke,
         * the prompt encoder re-serialises it from name + arguments) */
        if (!r->inv[k].trunc) dsv4_toolcall_remember(calls[k].id, calls[k].raw, calls[k].raw_len);
        if (cb) {
            dsv4_parse_event ev = { DSV4_EV_TOOL_CALL, NULL, 0, &calls[k], k };
            cb(user, &ev);
        }
    }
    return 0;
}

/* The block cannot become valid: its text (already in p->blk, p->pend empty) and everything after it is content;
 * ST_RAW still ends the message at the first EOS in it. */
static void fail_block(dsv4_parser *p, const char *msg) {
    warn(p, "malformed tool-call block kept as content: %s", msg);
    p->block_failed = 1;
    buf_t t = p->pend; p->pend = p->blk; p->blk = t; p->blk.n = 0;
    p->state = ST_RAW;
}

/* Final verdict on the buffered block p->blk (p->pend empty). Valid: tool calls; the text after an EOS that
 * follows the block goes back to p->pend; state ST_DONE. Invalid: fail_block. */
static void resolve_block(dsv4_parser *p, dsv4_parse_cb cb, void *user) {
    vres_t r = {0};
    int v = validate(p->tags, p->blk.p, p->blk.n, 1, &r, 0);
    if (v == V_DONE) {
        if (r.eos) {
            size_t rest = r.end + SLEN(S_EOS);
            if (buf_add(&p->pend, p->blk.p + rest, p->blk.n - rest)) p->oom = 1;
            p->saw_eos = 1;
        }
        if (r.trunc) warn(p, "tool-call block cut by the end of the output (accepted like the official parser)");
        if (!r.ninv) warn(p, "tool-call block without any invoke dropped");
        else if (make_calls(p, p->blk.p, &r, cb, user)) p->oom = 1;
        p->blk.n = 0;
        p->state = ST_DONE;
    } else if (v == V_OOM) {
        p->oom = 1;
    } else {
        fail_block(p, r.msg);
    }
    vres_free(&r);
}

/* Length of the prefix of s[0..n) that can be emitted now: excludes a trailing proper prefix of any marker
 * and an incomplete trailing UTF-8 character. */
static size_t safe_len(const ptags *t, const char *s, size_t n) {
    const char *marks[] = { S_EOS, S_BOS, S_THINK, S_THINK_END, t->tc_start, "<" S_DSML, "</" S_DSML, S_DSML };
    const size_t nmarks = sizeof marks / sizeof *marks;
    size_t maxm = 0;
    for (size_t m = 0; m < nmarks; m++) if (strlen(marks[m]) > maxm) maxm = strlen(marks[m]);
    size_t safe = n;
    for (size_t i = n > maxm ? n - maxm : 0; i < n; i++) {
        int hit = 0;
        for (size_t m = 0; m < nmarks && !hit; m++)
            hit = n - i < strlen(marks[m]) && !memcmp(s + i, marks[m], n - i);
        if (hit) { safe = i; break; }
    }
    /* never cut inside a complete marker occurrence (e.g. "<｜DSML｜" whose last '｜' starts a new prefix) */
    for (int moved = 1; moved && safe > 0;) {
        moved = 0;
        for (size_t m = 0; m < nmarks && !moved; m++) {
            size_t ml = strlen(marks[m]);
            for (size_t st = safe >= ml ? safe - ml + 1 : 0; st < safe && !moved; st++)
                if (st + ml <= n && !memcmp(s + st, marks[m], ml)) { safe = st; moved = 1; }
        }
    }
    /* incomplete UTF-8 at the end of s[0..safe) */
    size_t j = safe;
    while (j > 0 && safe - j < 4 && ((unsigned char)s[j - 1] & 0xC0) == 0x80) j--;
    if (j > 0) {
        unsigned char c = (unsigned char)s[j - 1];
        size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        if (c >= 0xC0 && c < 0xF8 && safe - (j - 1) < need) safe = j - 1;
    }
    return safe;
}

/* Run the state machine over p->pend. final: end of stream (flush everything). */
static void pump(dsv4_parser *p, int final, dsv4_parse_cb cb, void *user) {
    while (!p->oom) {
        if (p->state == ST_BLOCK) {
            if (p->pend.n) {
                if (buf_add(&p->blk, p->pend.p, p->pend.n)) { p->oom = 1; return; }
                p->pend.n = 0;
            }
            if (final) { vres_free(&p->vr); resolve_block(p, cb, user); continue; }
            if (p->blk.n == p->blk_checked) return;
            if (p->wait_a) {  /* the last verdict waits for a stop string: look only at the new bytes */
                size_t from = p->blk_checked > 32 ? p->blk_checked - 32 : 0;
                if (from < p->wait_from) from = p->wait_from;
                int which;
                p->blk_checked = p->blk.n;
                if (find2(p->blk.p, p->blk.n, from, p->wait_a, p->wait_b, &which) == (size_t)-1) return;
            }
            p->blk_checked = p->blk.n;
            vres_t *r = &p->vr;
            int v = validate(p->tags, p->blk.p, p->blk.n, 0, r, 1);
            p->wait_a = v == V_MORE ? r->wait_a : NULL;
            p->wait_b = r->wait_b;
            p->wait_from = r->wait_from;
            if (v == V_OOM) { p->oom = 1; return; }
            if (v == V_ERR) {  /* cannot become valid: the block and everything after it is content */
                fail_block(p, r->msg);
                vres_free(r);
                continue;
            }
            if (v == V_DONE && r->eos) {  /* "</｜DSML｜tool_calls>" + EOS: the calls are final now */
                vres_free(r);
                resolve_block(p, cb, user);
                continue;
            }
            return;
        }
        dsv4_parse_event_kind kind = p->state == ST_REASON ? DSV4_EV_REASONING : DSV4_EV_CONTENT;
        const char *s = p->pend.p;
        size_t n = p->pend.n;
        if (p->state == ST_DONE) {
            if (n && !p->after_eos_warned) { warn(p, "text after the end-of-sentence marker appended to content"); p->after_eos_warned = 1; }
            size_t k = final ? n : safe_len(p->tags, s, n);
            emit(p, kind, s, k, cb, user);
            buf_consume(&p->pend, k);
            return;
        }
        /* earliest state marker */
        const char *best = NULL;
        int bm = -1;
        const char *ms[3] = { S_EOS, p->tags->tc_start, S_THINK_END };
        int nm = p->state == ST_REASON ? 3 : p->state == ST_CONTENT ? 2 : 1;
        for (int m = 0; m < nm; m++) {
            const char *f = n ? find_bytes(s, n, 0, ms[m], strlen(ms[m])) : NULL;
            if (f && (!best || f < best)) { best = f; bm = m; }
        }
        if (!best) {
            size_t k = final ? n : safe_len(p->tags, s, n);
            emit(p, kind, s, k, cb, user);
            buf_consume(&p->pend, k);
            return;
        }
        size_t pos = (size_t)(best - s);
        emit(p, kind, s, pos, cb, user);
        if (bm == 0) {                 /* EOS */
            buf_consume(&p->pend, pos + SLEN(S_EOS));
            p->saw_eos = 1;
            p->state = ST_DONE;
        } else if (bm == 2) {          /* </think> */
            buf_consume(&p->pend, pos + SLEN(S_THINK_END));
            p->saw_think_end = 1;
            p->state = ST_CONTENT;
        } else {                       /* tool-call block */
            if (p->state == ST_REASON) {
                warn(p, "tool-call block inside reasoning (no </think> before it); reasoning ended there");
                p->block_in_reasoning = 1;
            }
            buf_consume(&p->pend, pos);
            p->blk.n = 0;
            p->blk_checked = 0;
            p->wait_a = p->wait_b = NULL;
            vres_free(&p->vr);
            p->state = ST_BLOCK;
        }
    }
}

/* ------------------------------------------------------------------ public API */

dsv4_parser *dsv4_parser_new(int thinking_mode) {
    dsv4_parser *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->thinking = thinking_mode != 0;
    p->state = p->thinking ? ST_REASON : ST_CONTENT;
    p->tags = &TAGS_V4;
    return p;
}

int dsv4_parser_set_format(dsv4_parser *p, dsv4_chat_format format) {
    if (!p || p->fed || p->closed || (format != DSV4_FORMAT_V4 && format != DSV4_FORMAT_V41)) return -1;
    p->tags = format == DSV4_FORMAT_V41 ? &TAGS_V41 : &TAGS_V4;
    return 0;
}

static void clear_calls(dsv4_parser *p) {
    for (int k = 0; k < p->ncalls; k++) free_call(&p->calls[k]);
    free(p->calls);
    p->calls = NULL;
    p->ncalls = 0;
}

void dsv4_parser_free(dsv4_parser *p) {
    if (!p) return;
    vres_free(&p->vr);
    free(p->pend.p); free(p->blk.p); free(p->reasoning.p); free(p->content.p); free(p->warn.p);
    clear_calls(p);
    free(p);
}

void dsv4_parser_set_id_seed(dsv4_parser *p, uint64_t seed) { if (p) p->seed = seed; }

int dsv4_parser_feed(dsv4_parser *p, const char *text, size_t len, dsv4_parse_cb cb, void *user) {
    if (!p || p->oom || p->closed || (len && !text)) return -1;
    if (!len) return 0;
    p->fed = 1;
    if (buf_add(&p->pend, text, len)) { p->oom = 1; return -1; }
    pump(p, 0, cb, user);
    return p->oom ? -1 : 0;
}

static void flag_specials(dsv4_parser *p, const char *what, const char *s, size_t n) {
    static const char *sp[][2] = { { S_BOS, "BOS" }, { S_EOS, "EOS" }, { S_THINK, "<think>" },
                                   { S_THINK_END, "</think>" }, { S_DSML, "the DSML token" } };
    for (size_t k = 0; k < sizeof sp / sizeof *sp; k++)
        if (find_bytes(s, n, 0, sp[k][0], strlen(sp[k][0]))) warn(p, "%s contains %s", what, sp[k][1]);
}

int dsv4_parser_close(dsv4_parser *p, dsv4_parse_cb cb, void *user) {
    if (!p || p->oom) return -1;
    if (p->closed) return 0;
    pump(p, 1, cb, user);
    p->closed = 1;
    if (p->thinking && !p->saw_think_end && !p->block_in_reasoning) warn(p, "reasoning not terminated by </think>");
    if (p->reasoning.n) flag_specials(p, "reasoning_content", p->reasoning.p, p->reasoning.n);
    if (p->content.n && !p->block_failed) flag_specials(p, "content", p->content.p, p->content.n);
    return p->oom ? -1 : 0;
}

void dsv4_parse_result_free(dsv4_parse_result *r) {
    if (!r) return;
    free(r->reasoning_content); free(r->content); free(r->warnings);
    for (int k = 0; k < r->n_tool_calls; k++) free_call(&r->tool_calls[k]);
    free(r->tool_calls);
    memset(r, 0, sizeof *r);
}

int dsv4_parser_finish(dsv4_parser *p, dsv4_parse_result *out) {
    memset(out, 0, sizeof *out);
    if (!p || p->finished || dsv4_parser_close(p, NULL, NULL)) return -1;
    out->thinking_mode = p->thinking;
    out->reasoning_content = buf_take(&p->reasoning, &out->reasoning_len);
    out->content = buf_take(&p->content, &out->content_len);
    if (!out->reasoning_content || !out->content) { dsv4_parse_result_free(out); return -1; }
    out->tool_calls = p->calls;
    out->n_tool_calls = p->ncalls;
    p->calls = NULL;
    p->ncalls = 0;
    out->saw_think_end = p->saw_think_end;
    out->saw_eos = p->saw_eos;
    out->block_failed = p->block_failed;
    out->warnings = p->warn.n ? buf_take(&p->warn, NULL) : NULL;
    p->finished = 1;
    return 0;
}

int dsv4_parse_text(const char *text, size_t len, int thinking_mode, dsv4_parse_result *out) {
    return dsv4_parse_text_format(text, len, thinking_mode, DSV4_FORMAT_V4, out);
}

int dsv4_parse_text_format(const char *text, size_t len, int thinking_mode, dsv4_chat_format format,
                           dsv4_parse_result *out) {
    memset(out, 0, sizeof *out);
    dsv4_parser *p = dsv4_parser_new(thinking_mode);
    if (!p) return -1;
    if (dsv4_parser_set_format(p, format)) { dsv4_parser_free(p); return -1; }
    int rc = dsv4_parser_feed(p, text, len, NULL, NULL);
    if (!rc) rc = dsv4_parser_finish(p, out);
    dsv4_parser_free(p);
    return rc;
}
