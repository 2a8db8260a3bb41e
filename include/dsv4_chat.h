/* dsv4_chat.h — DeepSeek-V4 / V4.1 prompt rendering (chat messages -> prompt text).
 *
 * Renders an OpenAI-style chat request into the exact prompt string DeepSeek's official Python encoder
 * (encoding/encoding_dsv4.py, `encode_messages`) produces; docs/encoding.md §3, §4, §9. With
 * opts->format = DSV4_FORMAT_V41 it renders DeepSeek-V4.1's format instead (encoding/encoding.py of the V4.1
 * release; docs/encoding.md §10): DSML tags with a space ("<｜DSML｜ calls>", "<｜DSML｜ invoke ...>",
 * "<｜DSML｜ parameter ...>"), a numeric reasoning effort, "<｜System｜>" before message 0 and before later system
 * messages, which count as user turns.
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

/* Prompt format (docs/encoding.md §10). Choose it from the model: DSV4_FORMAT_V41 for a DeepSeek-V4.1 checkpoint
 * (config.json model_type "deepseek_v41": dsv4_model_info.v41 / dsv4_config_info), DSV4_FORMAT_V4 otherwise (V4-Flash,
 * V4-Pro, V4-Flash-Vision-Exp). The output parser takes the same value (dsv4_parser_set_format, dsv4_parse.h). */
typedef enum { DSV4_FORMAT_V4 = 0, DSV4_FORMAT_V41 = 1 } dsv4_chat_format;

/* The V4.1 effort of a named level, as DeepSeek's V4.1 encoder maps it (docs/encoding.md §10.2): "low" 50, "high"
 * 75 (also the default when no effort is given), "max" 100; -1 for any other name (NULL included). Ports disagree
 * (vLLM: low 25, high 50, xhigh 75, max 100), so clients should send integers. */
int dsv4_v41_effort_of_name(const char *name);

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
    dsv4_chat_format format; /* DSV4_FORMAT_V4 (0, default) or DSV4_FORMAT_V41 */
    int effort_level;        /* V4.1 only: the reasoning effort 1..100, written in thinking mode as the line
                                "Reasoning Effort: N (range 1-100, ...)" after "<｜System｜>" before message 0.
                                0 = from `effort`: DSV4_EFFORT_MAX -> 100, DSV4_EFFORT_HIGH and DSV4_EFFORT_NONE -> 75
                                (the official default "high"). V4.1 always writes the line in thinking mode; in
                                chat mode nothing. Must be 0 in V4 format; outside 0..100 is an error. */
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
 * user content that is neither a string nor a list of parts (see Images below), tool-call arguments that are JSON
 * but not an object, invalid task, reasoning effort out of range, ...), lone UTF-16 surrogates reaching the output. */
int dsv4_chat_render(const char *request_json, size_t len, const dsv4_render_opts *opts,
                     char **out, size_t *out_len, char *err, size_t errlen);

/* ------------------------------------------------------------------ images (docs/encoding.md "Images")
 * Image content parts are rendered as the vision revision of the official encoder does (process_image_messages of
 * DeepSeek's vision release; vLLM's DeepSeek-V4.1 tokenizer agrees): each becomes the placeholder text
 * "<｜deepseek_image｜>" (one token, the model's image_token_id), joined to the neighbouring parts with "\n\n" like
 * any two content parts. Accepted part forms:
 *   OpenAI chat       {"type": "image_url", "image_url": {"url": U}}  (or "image_url": U)
 *   OpenAI Responses  {"type": "input_image", "image_url": U}
 *   Anthropic         {"type": "image", "source": {"type": "base64", "media_type": T, "data": D}}  -> "data:T;base64,D"
 *                     {"type": "image", "source": {"type": "url", "url": U}}
 * Where: a user message's content may be a list of text and image parts (any other part type is an error naming
 * messages[i].content[j]); a tool message's content list may hold image parts (rendered inside its <tool_result>).
 * An image part anywhere else (system, developer, assistant, latest_reminder) is refused:
 * "messages[2].content[0]: image parts are allowed only in user and tool messages, not in a 'system' message".
 * A text part containing the placeholder text itself is refused as officially. Differences from the official
 * vision revision: a tool result's non-text, non-image parts still render "[Unsupported TYPE]" (as the V4 text
 * encoder; the vision revision drops them), and the images are reported in prompt order (the official list is in
 * message order, which differs after tool results are re-ordered by call order). */

/* One image content part of a rendered request. */
typedef struct {
    char *url;          /* malloc'd, NUL-terminated: the part's URL as given (a data: URL, an http(s) URL, a path),
                         * or the data URL made from an Anthropic base64 source; url_len bytes */
    size_t url_len;
    char where[48];     /* the part, for messages: "messages[1].content[0]" (the tool message's index for tool results) */
} dsv4_chat_image;

/* dsv4_chat_render that also lists the image parts: *images receives a malloc'd array of *n_images entries (NULL and
 * 0 when there are none), entry k for the k-th "<｜deepseek_image｜>" placeholder of the prompt text. Context messages
 * are not rendered and their images are not listed. Free with dsv4_chat_images_free. images and n_images must be
 * both NULL (= dsv4_chat_render) or both non-NULL. On error nothing is allocated. The URLs are not checked or
 * fetched: decoding data: URLs (or refusing others) is the caller's. */
int dsv4_chat_render_images(const char *request_json, size_t len, const dsv4_render_opts *opts, char **out,
                            size_t *out_len, dsv4_chat_image **images, int *n_images, char *err, size_t errlen);
/* Free what dsv4_chat_render_images returned (NULL is fine). */
void dsv4_chat_images_free(dsv4_chat_image *images, int n);

/* The bytes of a data: URL "data:[MEDIA_TYPE][;PARAMS];base64,DATA" (an image part's URL): DATA decoded as base64
 * (RFC 4648 alphabet, '=' padding optional, spaces and line breaks skipped) into a malloc'd buffer (*out, *out_len
 * bytes; the caller frees). The media type is not checked (the image decoder reads the bytes' signature). `name`
 * heads the error messages (e.g. "messages[1].content[0]"). Errors: not a data: URL (a "https:" URL is named as
 * such: nothing is fetched), no ",", not ";base64", a byte outside the alphabet (its offset), data after the
 * padding, a length that is not a whole number of groups, out of memory. */
int dsv4_data_url_decode(const char *url, size_t len, unsigned char **out, size_t *out_len, const char *name,
                         char *err, size_t errlen);
/* The base64 decoding of dsv4_data_url_decode on `n` bytes at s (errors as above). */
int dsv4_base64_decode(const char *s, size_t n, unsigned char **out, size_t *out_len, const char *name, char *err,
                       size_t errlen);

/* Tool-call registry hook (provided by the output parser, include/dsv4_parse.h): the exact DSML invoke
 * bytes the model produced for tool call `id`, or NULL if unknown; *len receives the byte count.
 * Declared here for convenience; defined (and documented, with its lifetime rules) in
 * include/dsv4_parse.h / src/chat/toolcall_registry.c. */
const char *dsv4_toolcall_raw(const char *id, size_t *len);

#ifdef __cplusplus
}
#endif
#endif
