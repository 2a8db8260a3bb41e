/* dsv4_chat.h — DeepSeek-V4 prompt rendering (chat messages -> prompt text).
 *
 * Renders an OpenAI-style chat request into the exact prompt string DeepSeek's official Python encoder
 * (encoding/encoding_dsv4.py, `encode_messages`) produces; docs/encoding.md §3, §4, §9.
 * The output is text; tokenize it with dsv4_tokenize (include/dsv4.h) WITHOUT adding a BOS — the text
 * already starts with "<｜begin▁of▁sentence｜>" unless opts->no_bos or a context is given.
 *
 * Conventions as in dsv4.h: 0 on success, -1 on failure with a one-line message in `err` naming the
 * message index and field at fault (e.g. "messages[3].tool_calls[0].function: missing key 'arguments'").
 * The library never prints. Thread-safe (no global state besides the read-only tool-call registry).
 */
#ifndef DSV4_CHAT_H
#define DSV4_CHAT_H
#include <stddef.h>
#ifdef __cplusplus
extern "C" {
#endif

/* Reasoning effort (docs/encoding.md §3.3, §9.4). Only DSV4_EFFORT_MAX changes the prompt, and only in thinking
 * mode: the "Reasoning Effort: Absolute maximum ..." block is written right after BOS. HIGH and NONE
 * render identically (V4 preview checkpoints; the 0731 checkpoint's low/high/max table is NOT
 * implemented). */
typedef enum { DSV4_EFFORT_NONE = 0, DSV4_EFFORT_HIGH = 1, DSV4_EFFORT_MAX = 2 } dsv4_effort;

/* Rendering options. A zero-initialised struct (or opts == NULL) gives the official defaults:
 * chat mode, no effort, drop_thinking on, BOS added, no context. */
typedef struct {
    int thinking;            /* 0: thinking_mode="chat" (prompt ends "<｜Assistant｜></think>");
                                1: thinking_mode="thinking" (prompt ends "<｜Assistant｜><think>") */
    dsv4_effort effort;      /* reasoning_effort: none / high / max */
    int keep_thinking;       /* 1 = drop_thinking=False: keep reasoning_content of every assistant turn.
                                0 (default) = drop_thinking=True: in thinking mode, assistant turns before
                                the last user/developer message lose their reasoning and earlier developer
                                messages are removed. Forced to keep when any message carries tools. */
    int no_bos;              /* 1 = add_default_bos_token=False */
    const char *context_json;/* optional: JSON array of messages already encoded earlier (a prefix of the
                                conversation, not rendered). They take part in merging of tool results,
                                tool-result ordering, drop_thinking and transitions; no BOS and no effort
                                block are written when the context is non-empty. NULL = none. */
    size_t context_len;      /* bytes of context_json */
} dsv4_render_opts;

/* Render `request_json` (`len` bytes, UTF-8) into a prompt.
 *
 * Request forms:
 *  - a JSON array of messages (the official test format), or
 *  - an object {"messages": [...], "tools": [...], "response_format": {...}, ...}; other keys are ignored.
 * Top-level mapping (as the official test and vLLM's DeepSeek-V4 tokenizer do):
 *  - "tools" (non-empty list of {"type": "function", "function": {...}}) is set as the `tools` of the
 *    first message when that is a system message (replacing any tools it had); otherwise a new system
 *    message without content is inserted in front, so the prompt starts BOS + "\n\n## Tools...".
 *  - "response_format" (other than null, {} and {"type": "text"}) is attached the same way, as the
 *    `response_format` of that system message; the whole value is serialised (§9.5). UNVERIFIED: how
 *    the hosted API maps it.
 *  - With opts->context_json non-empty, the attachment goes to the first context message instead
 *    (the context already holds the rendered system prompt; the tools still disable drop_thinking).
 *
 * Messages follow the official encoder: roles system, developer, user, assistant (content,
 * reasoning_content, tool_calls in OpenAI form, wo_eos), tool (tool_call_id, content: string, null,
 * dict, list of parts), latest_reminder; optional `task` (action/query/authority/domain/title/read_url),
 * `tools` and `response_format` on system/developer. Values are rendered with Python's str()/repr()/
 * json.dumps(ensure_ascii=False) rules (key order kept, numbers re-serialised as Python would).
 *
 * Assistant tool calls: when the output parser's registry (include/dsv4_parse.h) knows the call's `id`
 * (a string), its bytes are emitted verbatim for that invoke ("<｜DSML｜invoke ...>...</｜DSML｜invoke>"),
 * so history a client sends back re-renders exactly as the model wrote it; otherwise the call is
 * serialised per §4.2. The lookup uses dsv4_toolcall_dup (a private copy, safe against concurrent
 * eviction); the registry is part of libdsv4 (src/chat/toolcall_registry.c).
 *
 * Deliberate difference from the official code (§9.11): when the context ends with a developer message
 * (thinking mode, drop_thinking), the official encoder loses the first new message; this renders it.
 *
 * On success *out receives a malloc'd NUL-terminated prompt (caller frees) and *out_len its length.
 * Errors (return -1, *out = NULL): not JSON / not UTF-8 (byte offset), missing or unknown role of a
 * rendered message, invalid combinations the official encoder raises on (developer without content,
 * user content that is not a string, tool-call arguments that are JSON but not an object, invalid task,
 * reasoning effort out of range, ...), lone UTF-16 surrogates reaching the output. */
int dsv4_chat_render(const char *request_json, size_t len, const dsv4_render_opts *opts,
                     char **out, size_t *out_len, char *err, size_t errlen);

/* Tool-call registry hook (provided by the output parser, include/dsv4_parse.h): the exact DSML invoke
 * bytes the model produced for tool call `id`, or NULL if unknown; *len receives the byte count.
 * Declared here for convenience; defined (and documented, with its lifetime rules) in
 * include/dsv4_parse.h / src/chat/toolcall_registry.c. */
const char *dsv4_toolcall_raw(const char *id, size_t *len);

#ifdef __cplusplus
}
#endif
#endif
