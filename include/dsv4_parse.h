/* dsv4_parse.h — parsing DeepSeek-V4 / V4.1 model output back into an assistant message, incrementally.
 *
 * DeepSeek-V4.1 (dsv4_parser_set_format / dsv4_parse_text_format with DSV4_FORMAT_V41; docs/encoding.md §10.4)
 * writes the same structure with the V4.1 tag names: "\n\n<｜DSML｜ calls>\n", "<｜DSML｜ invoke name=...>",
 * "<｜DSML｜ parameter ...>...</｜DSML｜ parameter>", "</｜DSML｜ invoke>", "</｜DSML｜ calls>" (a space after the
 * marker, block " calls" instead of "tool_calls"). Everything below holds for either format with its tag names;
 * a block in the other format's spelling is not a tool-call block (it stays content, flagged for its DSML token).
 *
 * Spec: docs/encoding.md §4.2 (DSML tool-call syntax), §4.5 (output parsing) and §9.10
 * (behaviour of the official parser). The model's completion (the text generated after the prompt) is
 *
 *     thinking mode:  REASONING "</think>" CONTENT [TOOL_BLOCK] [EOS]
 *     chat mode:                            CONTENT [TOOL_BLOCK] [EOS]
 *
 * where EOS is the text "<｜end▁of▁sentence｜>" (a generation loop normally stops at the EOS token id and
 * never feeds its text; it is accepted either way) and TOOL_BLOCK is (U+FF5C '｜' around DSML)
 *
 *     "\n\n<｜DSML｜tool_calls>\n"
 *     "<｜DSML｜invoke name=\"NAME\">\n"
 *     "<｜DSML｜parameter name=\"KEY\" string=\"true|false\">VALUE</｜DSML｜parameter>\n"   (0 or more, joined by \n)
 *     "</｜DSML｜invoke>\n"                                                              (1 or more invokes)
 *     "</｜DSML｜tool_calls>"
 *
 * exactly as the official `parse_message_from_completion_text` reads it (the invoke header may have leading
 * whitespace before `name=` — Python `\s`, Unicode spaces included; the block may be followed by EOS or by the
 * end of the stream; a block without the leading blank line is NOT a tool-call block; inside the block only
 * the DSML tags count, so an EOS text inside a value or name is data; a block without any invoke gives no
 * calls and its markup is dropped (warning); when the stream ends right after the "\n\n<｜DSML｜tool_calls"
 * marker, after a complete invoke header, after a parameter's ">\n" or after "</｜DSML｜invoke" without its
 * '>', the calls so far are returned, as the official parser does (warning "cut by the end of the output";
 * the last such call's `raw` is the partial bytes and it is not registered). Checked against the official
 * parser by tools/chat/parse_diff.py; goldens in tests/golden/chat_parse). Arguments are rebuilt like the
 * official parser: each parameter becomes `json(KEY): json(VALUE)` when string="true" (json() = Python
 * json.dumps(..., ensure_ascii=False): `"`, `\`, and control characters escaped, other bytes raw) or
 * `json(KEY): VALUE` verbatim when string="false"; the pairs are joined with ", " inside "{" "}".
 *
 * Deviations from the (strict, raising) official parser — ours never fails on model output:
 *  - A malformed tool-call block (missing closing tags, bad attributes, unknown tags, duplicate parameter
 *    names, text after the block, output truncated elsewhere than at the points above) is not an error: the
 *    block's raw text from its "\n\n<｜DSML｜tool_calls" marker to the first EOS after it (or the end of
 *    the message) becomes content, nothing else is lost, no tool call is returned, and a warning is set.
 *    Tool calls are all-or-nothing per message.
 *  - A missing final EOS is accepted silently (the official parser requires it unless a tool-call block ends
 *    the text).
 *  - A string="false" value that makes `arguments` invalid JSON is kept verbatim; the call gets valid_json = 0
 *    and a warning.
 *  - Special-token text inside reasoning/content (BOS, EOS, <think>, </think>, ｜DSML｜) is kept and flagged.
 *  - Thinking mode without "</think>": everything stays reasoning_content (warning). A tool-call block met
 *    while still in reasoning ends the reasoning implicitly (warning) and is parsed as a tool-call block.
 *  - Text after an EOS is appended to content (warning).
 *
 * Streaming: feed any split of the text; events (reasoning deltas, content deltas, complete tool calls) are
 * delivered through a callback. A delta never ends inside a UTF-8 character nor inside a marker that could
 * still turn out to be "</think>", "<think>", the DSML token, "\n\n<｜DSML｜tool_calls", BOS or EOS: such a
 * suffix is held back until it is disambiguated (or flushed at the end of the stream, byte-exact — at the
 * very end an incomplete UTF-8 sequence is emitted as is, never dropped). Tool calls are delivered when the
 * message ends (dsv4_parser_close, or the EOS right after "</｜DSML｜tool_calls>"), because a later byte can
 * still invalidate the block. The
 * concatenation of the deltas of one kind equals the corresponding field of the final result, and the result
 * is identical for every split of the same input.
 *
 * Tool-call ids: "call_" + 16 lowercase hex digits = FNV-1a-64 over (id seed, 0-based call index within the
 * parser, the raw invoke bytes). Deterministic for a parser (same seed, same text -> same ids); distinct for
 * different calls of one message. Each emitted call is registered with dsv4_toolcall_remember(id, raw) so that
 * the prompt encoder can re-render the model's exact bytes (see below).
 *
 * Thread-safety: a parser is used by one thread at a time; different parsers are independent. The tool-call
 * registry is process-wide and thread-safe.
 */
#ifndef DSV4_PARSE_H
#define DSV4_PARSE_H
#include <stddef.h>
#include <stdint.h>
#include "dsv4_chat.h"  /* dsv4_chat_format */
#ifdef __cplusplus
extern "C" {
#endif

/* One parsed tool call. All strings are NUL-terminated and owned by the containing result/event. */
typedef struct {
    char  *id;          /* "call_" + 16 hex digits (see above) */
    char  *name;        /* function name, raw bytes between name=" and ">\n of the invoke header */
    char  *arguments;   /* JSON object text built as described above */
    int    valid_json;  /* 1 if all arguments_len bytes of `arguments` are one JSON object (cJSON) without control
                           bytes other than tab, LF, CR; else 0 */
    char  *raw;         /* exact invoke bytes, "<｜DSML｜invoke" ... "</｜DSML｜invoke>" (partial when cut, see above) */
    size_t raw_len;
    size_t name_len;      /* bytes of name (name may contain NUL bytes only if the input did) */
    size_t arguments_len; /* bytes of arguments (likewise: a string="false" value is copied verbatim) */
} dsv4_tool_call;

/* The parsed message. Strings are malloc'd, NUL-terminated (lengths given too; text may contain NUL bytes
 * only if the input did). Release with dsv4_parse_result_free. */
typedef struct {
    int    thinking_mode;        /* as given to dsv4_parser_new */
    char  *reasoning_content;    /* "" in chat mode */
    size_t reasoning_len;
    char  *content;              /* "" if none */
    size_t content_len;
    dsv4_tool_call *tool_calls;  /* n_tool_calls entries (NULL if 0) */
    int    n_tool_calls;
    int    saw_think_end;        /* thinking mode: 1 if "</think>" closed the reasoning */
    int    saw_eos;              /* 1 if the EOS text was met */
    int    block_failed;         /* 1 if a tool-call block was malformed and fell back to content */
    char  *warnings;             /* NULL if the output was well-formed; else messages joined by "; " */
} dsv4_parse_result;

void dsv4_parse_result_free(dsv4_parse_result *r);  /* frees the members and zeroes *r; NULL-safe */

typedef enum {
    DSV4_EV_REASONING = 1,  /* text/len: a reasoning_content delta */
    DSV4_EV_CONTENT   = 2,  /* text/len: a content delta */
    DSV4_EV_TOOL_CALL = 3   /* call: one complete tool call (index = its position in tool_calls) */
} dsv4_parse_event_kind;

typedef struct {
    dsv4_parse_event_kind kind;
    const char *text;            /* delta bytes (not NUL-terminated), valid only during the callback */
    size_t len;
    const dsv4_tool_call *call;  /* DSV4_EV_TOOL_CALL only; valid only during the callback (copy it) */
    int index;                   /* DSV4_EV_TOOL_CALL: 0-based call index */
} dsv4_parse_event;

/* Event callback; may be NULL wherever a callback is taken (events are then only accumulated). */
typedef void (*dsv4_parse_cb)(void *user, const dsv4_parse_event *ev);

typedef struct dsv4_parser dsv4_parser;

/* New parser. thinking_mode != 0: the prompt ended with "<think>", output starts inside reasoning.
 * thinking_mode == 0 (chat): the prompt ended with "</think>", output starts as content.
 * Returns NULL only when out of memory. */
dsv4_parser *dsv4_parser_new(int thinking_mode);
void dsv4_parser_free(dsv4_parser *p);  /* NULL-safe */

/* The output format (default DSV4_FORMAT_V4): DSV4_FORMAT_V41 for a DeepSeek-V4.1 model (the tag names above).
 * Set it before the first feed. Returns 0, or -1 (p NULL, bytes already fed, closed, or an unknown format;
 * the parser is then unchanged). */
int dsv4_parser_set_format(dsv4_parser *p, dsv4_chat_format format);

/* Seed mixed into the tool-call ids (default 0). Set it before the first feed, e.g. to a turn counter so
 * that equal calls in different turns of a conversation get different ids. */
void dsv4_parser_set_id_seed(dsv4_parser *p, uint64_t seed);

/* Feed `len` bytes of model output (any split, even inside a UTF-8 character or a marker). Events produced
 * by these bytes are delivered to cb before returning. Returns 0, or -1 only when out of memory (the parser
 * is then unusable) or when called after dsv4_parser_close/finish. */
int dsv4_parser_feed(dsv4_parser *p, const char *text, size_t len, dsv4_parse_cb cb, void *user);

/* End of stream: flushes the held-back text, resolves a pending tool-call block and delivers the remaining
 * events (the tool calls, or the block's raw text as content on failure). Idempotent. Returns 0 or -1 (OOM). */
int dsv4_parser_close(dsv4_parser *p, dsv4_parse_cb cb, void *user);

/* Close (if not yet closed, without callback) and move the accumulated message into *out (caller frees
 * with dsv4_parse_result_free). After this the parser only accepts dsv4_parser_free. Returns 0 or -1 (OOM;
 * *out zeroed). */
int dsv4_parser_finish(dsv4_parser *p, dsv4_parse_result *out);

/* One-shot convenience: parse a whole completion (V4 format). Returns 0 or -1 (OOM). */
int dsv4_parse_text(const char *text, size_t len, int thinking_mode, dsv4_parse_result *out);
/* The same in the given format (dsv4_parser_set_format). Returns 0 or -1 (OOM, unknown format). */
int dsv4_parse_text_format(const char *text, size_t len, int thinking_mode, dsv4_chat_format format,
                           dsv4_parse_result *out);

/* ------------------------------------------------------------------ tool-call registry
 * Process-wide map from tool-call id to the exact DSML invoke bytes the model produced, so that a later
 * prompt re-renders the model's own bytes for that call (the prompt encoder asks with dsv4_toolcall_raw).
 * Bounded: at most DSV4_TOOLCALL_CAPACITY entries and DSV4_TOOLCALL_MAX_BYTES bytes of raw text in all; when
 * full, the least recently used entry (remember or successful lookup counts as use) is evicted. All functions
 * are thread-safe (one mutex). */
#define DSV4_TOOLCALL_CAPACITY  4096
#define DSV4_TOOLCALL_MAX_BYTES (64u << 20)

/* Store (or replace) the raw bytes for `id` (copies both). Returns 0, or -1 if id is NULL/empty, raw is NULL,
 * len exceeds DSV4_TOOLCALL_MAX_BYTES, or out of memory (the registry is unchanged then). */
int dsv4_toolcall_remember(const char *id, const char *raw, size_t len);

/* The raw invoke bytes stored for `id` ("<｜DSML｜invoke name=" ... "</｜DSML｜invoke>", NUL-terminated, *len
 * set if len != NULL), or NULL if unknown. The pointer is owned by the registry and stays valid only until
 * that entry is evicted or replaced: ANY later dsv4_toolcall_remember may evict it (by the entry count, after
 * up to DSV4_TOOLCALL_CAPACITY remembers, but by the DSV4_TOOLCALL_MAX_BYTES byte budget already after one
 * large remember, which can evict every other entry), as may a remember of the same id, dsv4_toolcall_clear,
 * or another thread doing any of these. Use the pointer at once, before the next remember; for a copy that
 * stays valid, use dsv4_toolcall_dup. */
const char *dsv4_toolcall_raw(const char *id, size_t *len);

/* Like dsv4_toolcall_raw but returns a malloc'd copy (caller frees), NULL if unknown or out of memory. */
char *dsv4_toolcall_dup(const char *id, size_t *len);

/* Number of stored entries / forget all entries (tests, long-running servers). */
int dsv4_toolcall_count(void);
void dsv4_toolcall_clear(void);

#ifdef __cplusplus
}
#endif
#endif
