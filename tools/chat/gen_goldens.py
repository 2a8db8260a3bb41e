#!/usr/bin/env python3
"""Generate tests/golden/chat/<name>.input.json + <name>.output.txt with DeepSeek's official V4 encoder.

Usage: python3 tools/chat/gen_goldens.py /path/to/encoding_dsv4.py [OUT_DIR]

The official module (encoding/encoding_dsv4.py of deepseek-ai/DeepSeek-V4-Pro, e.g. the mirror
Nicooo-Wang/DeepSeek-V4-Pro-code) is imported from the given path; it is never copied into this repo.

Each case is written as RAW JSON text so that number spellings (1E5, 2.50, -0, huge integers ...),
duplicate keys and escapes reach the C encoder exactly as a client would send them; the official encoder
sees json.loads() of the same text. Input file layout:
  {"name": ..., "options": {"thinking_mode": "chat"|"thinking", "reasoning_effort": null|"high"|"max",
   "drop_thinking": bool, "add_default_bos_token": bool, "expect_error": bool},
   "context": <raw JSON array, optional>, "request": <raw JSON: array of messages or {"messages", "tools", ...}>}
The output file holds the exact prompt bytes (UTF-8, no trailing newline added), or for expect_error
cases the text of the exception the official encoder raised.

Top-level request mapping (same as dsv4_chat_render, include/dsv4_chat.h): "tools" and
"response_format" (unless {"type": "text"}) go onto the first message if it is a system message,
else onto a new {"role": "system"} inserted in front; with a context, onto the context instead.
"""
import importlib.util
import json
import os
import sys


def case_adder(cases):
    """A case(name, request, ...) function that appends one golden case to the list `cases` (request and context
    are raw JSON text; thinking/effort/drop/bos are the encoder options; error: the official encoder raises).
    Shared with gen_goldens_v41.py."""
    def case(name, request, thinking="chat", effort=None, drop=True, bos=True, context=None, error=False):
        cases.append(dict(name=name, request=request.strip(), thinking=thinking, effort=effort, drop=drop,
                          bos=bos, context=context.strip() if context else None, error=error))
    return case


CASES = []
case = case_adder(CASES)


WEATHER_TOOLS = r'''[
 {"type": "function", "function": {"name": "get_weather", "description": "Get the weather for a city",
  "parameters": {"type": "object", "properties": {"location": {"type": "string", "description": "City name"},
  "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}, "days": {"type": "integer", "minimum": 1, "maximum": 1E1, "default": 1.50}},
  "required": ["location"]}}},
 {"type": "function", "function": {"name": "search", "description": "Search the web \"quoted\" — ünïcödé 搜索",
  "parameters": {"type": "object", "properties": {"query": {"type": "string"}, "limit": {"type": "number", "default": 1e-7, "maximum": 123456789012345678901234567890}},
  "required": ["query"]}}}
]'''

# ---------------------------------------------------------------- plain chat / thinking
case("chat_single_user", r'''[{"role": "user", "content": "Hello"}]''')
case("chat_system_multi", r'''[
 {"role": "system", "content": "You are terse."},
 {"role": "user", "content": "Hi"},
 {"role": "assistant", "content": "Hello.", "reasoning_content": "ignored in chat mode"},
 {"role": "user", "content": "Bye\n\nSee you"}]''')
case("think_multi_drop", r'''[
 {"role": "system", "content": "sys"},
 {"role": "user", "content": "Q1"},
 {"role": "assistant", "content": "A1", "reasoning_content": "R1"},
 {"role": "user", "content": "Q2"},
 {"role": "assistant", "content": "A2", "reasoning_content": "R2"},
 {"role": "user", "content": "Q3"}]''', thinking="thinking")
case("think_keep_thinking", r'''[
 {"role": "system", "content": "sys"},
 {"role": "user", "content": "Q1"},
 {"role": "assistant", "content": "A1", "reasoning_content": "R1"},
 {"role": "user", "content": "Q2"},
 {"role": "assistant", "content": "A2"},
 {"role": "user", "content": "Q3"}]''', thinking="thinking", drop=False)
case("think_max_effort", r'''[
 {"role": "system", "content": "You are a careful mathematician."},
 {"role": "user", "content": "Prove that sqrt(2) is irrational."}]''', thinking="thinking", effort="max")
case("think_high_effort_no_system", r'''[
 {"role": "user", "content": "2+2?"}]''', thinking="thinking", effort="high")
case("chat_max_effort_ignored", r'''[
 {"role": "user", "content": "max effort in chat mode emits nothing"}]''', effort="max")
case("empty_messages_no_bos", r'''{"messages": []}''', bos=False)
case("last_assistant_wo_eos_prefill", r'''[
 {"role": "user", "content": "Write a haiku"},
 {"role": "assistant", "content": "Autumn moonlight", "reasoning_content": "think about seasons", "wo_eos": true}]''',
     thinking="thinking")

# ---------------------------------------------------------------- tools
case("tools_multi_round_thinking", r'''{"tools": ''' + WEATHER_TOOLS + r''', "messages": [
 {"role": "system", "content": "You are a helpful assistant."},
 {"role": "user", "content": "Weather in Paris and Tokyo, then search news."},
 {"role": "assistant", "content": "", "reasoning_content": "Two cities; call the tool twice.", "tool_calls": [
   {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\": \"Paris\", \"days\": 2}"}},
   {"id": "c2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\": \"Tokyo\", \"unit\": \"celsius\"}"}}]},
 {"role": "tool", "tool_call_id": "c1", "content": "{\"temp\": 18.5}"},
 {"role": "tool", "tool_call_id": "c2", "content": "{\"temp\": 22}"},
 {"role": "assistant", "content": "Now searching.", "reasoning_content": "Next the news.", "tool_calls": [
   {"id": "c3", "type": "function", "function": {"name": "search", "arguments": "{\"query\": \"Paris news\", \"limit\": 3}"}}]},
 {"role": "tool", "tool_call_id": "c3", "content": "No news."},
 {"role": "assistant", "content": "Paris 18.5°C, Tokyo 22°C; no news.", "reasoning_content": "Summarise."},
 {"role": "user", "content": "Thanks!"}]}''', thinking="thinking")
case("tools_chat_mode_generation_prompt", r'''{"tools": ''' + WEATHER_TOOLS + r''', "messages": [
 {"role": "system", "content": "sys"},
 {"role": "user", "content": "Weather in Rome?"},
 {"role": "assistant", "content": null, "tool_calls": [
   {"id": "x", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\": \"Rome\"}"}}]},
 {"role": "tool", "tool_call_id": "x", "content": "sunny"}]}''')
case("tools_toplevel_no_system", r'''{"tools": ''' + WEATHER_TOOLS + r''', "messages": [
 {"role": "user", "content": "No system message here."}]}''', thinking="thinking")
case("parallel_calls_reordered", r'''{"tools": ''' + WEATHER_TOOLS + r''', "messages": [
 {"role": "system", "content": "s"},
 {"role": "user", "content": "three cities"},
 {"role": "assistant", "reasoning_content": "parallel", "tool_calls": [
   {"id": "a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\": \"A\"}"}},
   {"type": "function", "function": {"id": "b", "name": "get_weather", "arguments": "{\"location\": \"B\"}"}},
   {"id": "c", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\": \"C\"}"}}]},
 {"role": "tool", "tool_call_id": "c", "content": "C result"},
 {"role": "tool", "tool_call_id": "zzz-unknown", "content": "unknown id"},
 {"role": "tool", "tool_call_id": "b", "content": "B result"},
 {"role": "tool", "content": "no id"},
 {"role": "tool", "tool_call_id": "a", "content": "A result"},
 {"role": "user", "content": "and a trailing user text block"}]}''', thinking="thinking")
case("args_nested_unicode_quotes", r'''[
 {"role": "system", "content": "s", "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]},
 {"role": "user", "content": "go"},
 {"role": "assistant", "content": "calling", "tool_calls": [
   {"id": "n1", "type": "function", "function": {"name": "f", "arguments": "{\"text\": \"He said \\\"hi\\\" & <b>bold</b>\\nnew line\\ttab \\u00e9\\u4e2d\\ud83d\\ude00 ✓\", \"nested\": {\"a\": [1, {\"b\": \"c\\\"q\"}, null, true, false], \"ctl\": \"\\u0001\\u001f\\b\\f\\r\", \"slash\": \"a\\/b\\\\c\", \"uni\": \"日本語 \\u00a0nbsp\"}, \"empty\": {}, \"list\": [], \"s2\": \"\"}"}}]},
 {"role": "tool", "tool_call_id": "n1", "content": "ok"}]''', thinking="thinking")
case("args_numbers_repr", r'''[
 {"role": "system", "content": "s", "tools": [{"type": "function", "function": {"name": "nums", "parameters": {"x": 1.0}}}]},
 {"role": "user", "content": "numbers"},
 {"role": "assistant", "tool_calls": [
   {"id": "n", "type": "function", "function": {"name": "nums", "arguments": "{\"a\": 1e-7, \"b\": 1E5, \"c\": 2.50, \"d\": 1.5e300, \"e\": -0.0, \"f\": 123456789012345678901234567890, \"g\": -0, \"h\": 0.1, \"i\": 1e16, \"j\": 1e15, \"k\": 123456789.123456789, \"l\": 5e-324, \"m\": 1.7976931348623157e308, \"n\": 1e400, \"o\": NaN, \"p\": -Infinity, \"q\": 0.0001, \"r\": 0.00001, \"s\": 100, \"t\": -12.5e-3, \"u\": 9007199254740993, \"v\": 0.30000000000000004, \"w\": [1.10, 2e0, 3E+2], \"x\": 1e22, \"y\": 12345678901234567.0}"}}]}]''')
case("args_invalid_and_non_string", r'''[
 {"role": "system", "content": "s", "tools": [{"type": "function", "function": {"name": "g"}}]},
 {"role": "user", "content": "odd arguments"},
 {"role": "assistant", "content": "x", "tool_calls": [
   {"id": "1", "type": "function", "function": {"name": "g", "arguments": "not json {"}},
   {"id": "2", "type": "function", "function": {"name": "g", "arguments": {"already": "an object", "n": 2.50}}},
   {"id": "3", "type": "function", "function": {"name": "g", "arguments": "{}"}},
   {"id": "4", "type": "function", "function": {"name": "g", "arguments": "{\"a\": 1, \"b\": 2, \"a\": 3}"}},
   {"id": "5", "type": "function", "function": {"name": "g", "arguments": " {\"trailing\": true} \n"}},
   {"id": "6", "type": "function", "function": {"name": "g", "arguments": "{\"x\": 1,}"}},
   {"id": "7", "type": "function", "function": {"name": "g", "arguments": null}},
   {"id": "8", "type": "function", "function": {"name": "g", "arguments": "{\"raw\": \"tab\tinside\"}"}}]}]''')
case("tool_schema_numbers_and_keys", r'''{"tools": [
 {"type": "function", "function": {"name": "n", "description": "numbers in a schema", "parameters": {"type": "object",
  "properties": {"p": {"type": "number", "default": 1E2, "minimum": -0, "maximum": 10000000000000000000000, "multipleOf": 0.10, "examples": [1e-5, 2.5E-10, 3.0e0, -0.0]}},
  "dup": 1, "dup": 2, "esc": "\u00e9\"\\\/\b\f\n\r\t\u0007 \u2028"}}}],
 "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]}''', thinking="thinking")

# ---------------------------------------------------------------- response format
case("response_format_system_with_tools", r'''[
 {"role": "system", "content": "Answer in JSON.", "tools": [{"type": "function", "function": {"name": "t", "description": "d", "parameters": {"type": "object", "properties": {}}}}],
  "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object", "properties": {"value": {"type": "number", "default": 0.5}}, "required": ["value"]}}}},
 {"role": "user", "content": "What is half?"}]''', thinking="thinking")
case("response_format_toplevel", r'''{"response_format": {"type": "json_object"}, "messages": [
 {"role": "user", "content": "Give JSON"}]}''')
case("response_format_toplevel_with_system", r'''{"response_format": {"type": "json_schema", "json_schema": {"name": "x", "strict": true, "schema": {"type": "object"}}},
 "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "u"}]}''', thinking="thinking")
case("response_format_text_ignored", r'''{"response_format": {"type": "text"}, "messages": [
 {"role": "user", "content": "plain"}]}''')

# ---------------------------------------------------------------- reminder / developer / system placement
case("latest_reminder_after_user", r'''[
 {"role": "system", "content": "sys"},
 {"role": "user", "content": "What day is it?"},
 {"role": "latest_reminder", "content": "2026-03-01, Sunday, Berlin"},
 {"role": "assistant", "content": "Sunday.", "reasoning_content": "read the reminder"}]''', thinking="thinking")
case("developer_tools_thinking", r'''[
 {"role": "system", "content": "search agent"},
 {"role": "latest_reminder", "content": "2026-02-21,星期六,广州,App,中文"},
 {"role": "developer", "content": "Find the population of Lyon.", "tools": [{"type": "function", "function": {"name": "search", "description": "web", "parameters": {"type": "object", "properties": {"queries": {"type": "string"}}}}}]},
 {"role": "assistant", "content": "", "reasoning_content": "search it", "tool_calls": [{"type": "function", "function": {"name": "search", "arguments": "{\"queries\": \"Lyon population||Lyon 人口\"}"}}]},
 {"role": "tool", "content": "[0] Lyon: 522,250 (2021)"},
 {"role": "assistant", "content": "About 522k.", "reasoning_content": "done"},
 {"role": "developer", "content": "Now Marseille."}]''', thinking="thinking")
case("developer_dropped_without_tools", r'''[
 {"role": "system", "content": "sys"},
 {"role": "developer", "content": "internal instruction, dropped later"},
 {"role": "assistant", "content": "ack", "reasoning_content": "r0"},
 {"role": "user", "content": "real question"}]''', thinking="thinking")
case("system_later_and_assistant_chains", r'''[
 {"role": "system", "content": "first system"},
 {"role": "assistant", "content": "assistant right after system"},
 {"role": "assistant", "content": "assistant after assistant"},
 {"role": "user", "content": "u1"},
 {"role": "assistant", "content": "a1"},
 {"role": "system", "content": "second system, mid-chat"},
 {"role": "user", "content": "u2"}]''')
case("system_content_non_string", r'''[
 {"role": "system", "content": [{"type": "text", "text": "list content is str()-ed"}]},
 {"role": "user", "content": "u"},
 {"role": "assistant", "content": 42, "reasoning_content": 3.0},
 {"role": "latest_reminder", "content": null},
 {"role": "user", "content": "again"}]''', thinking="thinking", drop=False)

# ---------------------------------------------------------------- quick-instruction tasks
case("task_action_chat", r'''[
 {"role": "system", "content": "s"},
 {"role": "user", "content": "世界著名温泉有哪些", "task": "action"},
 {"role": "assistant", "content": "Search"}]''')
case("task_action_thinking", r'''[
 {"role": "user", "content": "Should I search?", "task": "action"}]''', thinking="thinking")
case("task_query_authority_domain", r'''[
 {"role": "user", "content": "q1", "task": "query"},
 {"role": "assistant", "content": "query one"},
 {"role": "user", "content": "q2", "task": "authority"},
 {"role": "assistant", "content": "high"},
 {"role": "user", "content": "q3", "task": "domain"},
 {"role": "assistant", "content": "science"},
 {"role": "user", "content": "see <｜extracted_url｜>https://example.com", "task": "read_url"}]''', thinking="thinking")
case("task_title_on_assistant", r'''[
 {"role": "user", "content": "Tell me about Rome"},
 {"role": "assistant", "content": "Rome is the capital of Italy.", "reasoning_content": "easy", "task": "title"},
 {"role": "assistant", "content": "Rome overview"}]''', thinking="thinking")
case("task_user_merge_rules", r'''[
 {"role": "user", "content": "plain first"},
 {"role": "user", "content": "second with task is merged, task dropped", "task": "query"},
 {"role": "assistant", "content": "a"},
 {"role": "user", "content": "task first", "task": "domain"},
 {"role": "user", "content": "not merged after a task"},
 {"role": "assistant", "content": "b"}]''')

# ---------------------------------------------------------------- tool result content types
case("tool_content_types", r'''[
 {"role": "system", "content": "s", "tools": [{"type": "function", "function": {"name": "t"}}]},
 {"role": "user", "content": "go"},
 {"role": "assistant", "content": "", "reasoning_content": "r", "tool_calls": [
   {"id": "1", "type": "function", "function": {"name": "t", "arguments": "{}"}},
   {"id": "2", "type": "function", "function": {"name": "t", "arguments": "{}"}},
   {"id": "3", "type": "function", "function": {"name": "t", "arguments": "{}"}},
   {"id": "4", "type": "function", "function": {"name": "t", "arguments": "{}"}},
   {"id": "5", "type": "function", "function": {"name": "t", "arguments": "{}"}},
   {"id": "6", "type": "function", "function": {"name": "t", "arguments": "{}"}}]},
 {"role": "tool", "tool_call_id": "1", "content": null},
 {"role": "tool", "tool_call_id": "2", "content": {"a": 1, "s": "it's", "d": "say \"hi\"", "both": "'\"", "f": 2.50, "big": 1E20, "small": 1e-7, "n": null, "t": true, "l": [1, "x", {"k": false}], "u": "é 中 \u00a0 \u200b \u0085 \u2028 \ud800 \ud83d\ude00 \udb40\udc01 \u0007\t\n\\", "e": {}}},
 {"role": "tool", "tool_call_id": "3", "content": [{"type": "text", "text": "part one"}, {"type": "image_url", "image_url": {"url": "x"}}, {"type": "text", "text": "part two"}, {"no_type": 1}]},
 {"role": "tool", "tool_call_id": "4", "content": 3.0},
 {"role": "tool", "tool_call_id": "5", "content": false},
 {"role": "tool", "tool_call_id": "6"}]''', thinking="thinking")
case("user_then_tool_merge", r'''[
 {"role": "user", "content": "first user"},
 {"role": "tool", "tool_call_id": "q", "content": "tool merged into the user message"},
 {"role": "user", "content": "then more user text"}]''', thinking="thinking")
case("tools_on_user_and_assistant", r'''[
 {"role": "user", "content": "tools on a user message are discarded", "tools": [{"type": "function", "function": {"name": "ignored"}}]},
 {"role": "assistant", "content": "a1", "reasoning_content": "kept because the assistant has tools", "tools": [{"type": "function", "function": {"name": "not_rendered"}}]},
 {"role": "user", "content": "next"}]''', thinking="thinking")
case("empty_tools_list_keeps_drop", r'''[
 {"role": "system", "content": "s", "tools": []},
 {"role": "user", "content": "u1"},
 {"role": "assistant", "content": "a1", "reasoning_content": "dropped"},
 {"role": "user", "content": "u2"}]''', thinking="thinking")

# ---------------------------------------------------------------- context
case("context_tool_order_from_context", r'''[
 {"role": "tool", "tool_call_id": "k2", "content": "second"},
 {"role": "tool", "tool_call_id": "k1", "content": "first"}]''', thinking="thinking", context=r'''[
 {"role": "system", "content": "sys", "tools": [{"type": "function", "function": {"name": "f"}}]},
 {"role": "user", "content": "u"},
 {"role": "assistant", "content": "", "reasoning_content": "r", "tool_calls": [
   {"id": "k1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
   {"id": "k2", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}]''')
case("context_thinking_drop", r'''[
 {"role": "assistant", "content": "a1", "reasoning_content": "r1 kept: after the last user"},
 {"role": "user", "content": "u2"}]''', thinking="thinking", effort="max", context=r'''[
 {"role": "system", "content": "sys"},
 {"role": "user", "content": "u1"}]''')

# ---------------------------------------------------------------- errors the official encoder raises
case("error_developer_empty", r'''[{"role": "developer", "content": ""}]''', error=True)
case("error_args_json_list", r'''[{"role": "user", "content": "u"}, {"role": "assistant", "tool_calls": [
 {"type": "function", "function": {"name": "f", "arguments": "[1, 2]"}}]}]''', error=True)
case("error_invalid_task", r'''[{"role": "user", "content": "u", "task": "bogus"}]''', error=True)
case("error_user_content_null", r'''[{"role": "user", "content": null}]''', error=True)
case("error_user_content_list", r'''[{"role": "user", "content": [{"type": "text", "text": "x"}]}]''', error=True)
case("error_unknown_role", r'''[{"role": "narrator", "content": "x"}]''', error=True)
case("error_missing_role", r'''[{"content": "x"}]''', error=True)
case("error_tool_call_without_arguments", r'''[{"role": "assistant", "tool_calls": [{"function": {"name": "f"}}]}]''', error=True)


def attach_top_level(msgs, req):
    tools = req.get("tools")
    rf = req.get("response_format")
    at = bool(tools)
    ar = bool(rf) and rf != {"type": "text"}
    if not (at or ar):
        return msgs
    msgs = list(msgs)
    if msgs and isinstance(msgs[0], dict) and msgs[0].get("role") == "system":
        msgs[0] = dict(msgs[0])
    else:
        msgs.insert(0, {"role": "system"})
    if at:
        msgs[0]["tools"] = tools
    if ar:
        msgs[0]["response_format"] = rf
    return msgs


def write_float_repr(path):
    """float_repr.txt: '<IEEE bits hex> <repr(x)>' lines for the C float formatter (Python repr rules)."""
    import random
    import struct
    rng = random.Random(20260401)
    vals = [0.0, -0.0, 1.0, -1.0, 0.1, 0.2, 0.3, 1e16, 1e15, 9999999999999998.0, 1e-4, 1e-5, 0.00011, 5e-324,
            2.2250738585072014e-308, 2.225073858507201e-308, 1.7976931348623157e308, 1e22, 1e23, 123456789.123456789,
            float("inf"), float("-inf"), 0.5, 2.5, 1.5e300, 1e-7, 100000.0, 12345678901234567.0, 4.35, 0.000123]
    for e in range(-1074, 1024):
        vals.append(2.0 ** e)
    for e in range(-30, 31):
        vals.append(10.0 ** e)
        vals.append(-3.0 * 10.0 ** e)
    for _ in range(3000):
        vals.append(struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0])
    for _ in range(2000):
        vals.append(rng.randint(-10 ** 9, 10 ** 9) / 10 ** rng.randint(0, 12))
    lines = []
    for v in vals:
        if v != v:
            continue
        bits = struct.unpack("<Q", struct.pack("<d", v))[0]
        lines.append("%016x %s" % (bits, repr(v)))
    with open(path, "w", encoding="ascii", newline="") as f:
        f.write("\n".join(lines) + "\n")


def load_encoder(path):
    """Import the official encoder module (encoding_dsv4.py) from path."""
    spec = importlib.util.spec_from_file_location("encoding_dsv4", path)
    enc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(enc)
    return enc


def write_cases(enc, cases, out_dir, prepare=None):
    """Run every case through enc.encode_messages (after the top-level mapping and, if given, prepare(msgs)) and
    write <name>.input.json / <name>.output.txt to out_dir; exits when a case's error-ness is not the expected
    one. Shared with gen_goldens_v41.py."""
    os.makedirs(out_dir, exist_ok=True)
    names = set()
    for c in cases:
        assert c["name"] not in names, c["name"]
        names.add(c["name"])
        req = json.loads(c["request"])
        ctx = json.loads(c["context"]) if c["context"] else None
        if isinstance(req, list):
            msgs = req
        else:
            msgs = req["messages"]
            if ctx:
                ctx = attach_top_level(ctx, req)
            else:
                msgs = attach_top_level(msgs, req)
        if prepare is not None:
            msgs = prepare(msgs)
        try:
            prompt = enc.encode_messages(msgs, thinking_mode=c["thinking"], context=ctx, drop_thinking=c["drop"],
                                         add_default_bos_token=c["bos"], reasoning_effort=c["effort"])
            prompt.encode("utf-8")
            result, failed = prompt, False
        except Exception as ex:  # noqa: BLE001 — the official encoder raises assorted types
            result, failed = "%s: %s" % (type(ex).__name__, ex), True
        if failed != c["error"]:
            sys.exit("case %s: expected error=%s, got %r" % (c["name"], c["error"], result[:300]))
        opts = {"thinking_mode": c["thinking"], "reasoning_effort": c["effort"], "drop_thinking": c["drop"],
                "add_default_bos_token": c["bos"], "expect_error": c["error"]}
        text = '{"name": %s,\n "options": %s,\n' % (json.dumps(c["name"]), json.dumps(opts))
        if c["context"]:
            text += ' "context": %s,\n' % c["context"]
        text += ' "request": %s}\n' % c["request"]
        json.loads(text)
        with open(os.path.join(out_dir, c["name"] + ".input.json"), "w", encoding="utf-8", newline="") as f:
            f.write(text)
        with open(os.path.join(out_dir, c["name"] + ".output.txt"), "w", encoding="utf-8", newline="") as f:
            f.write(result)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    enc = load_encoder(sys.argv[1])
    out_dir = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), "..", "..", "tests", "golden", "chat")
    write_cases(enc, CASES, out_dir)
    write_float_repr(os.path.join(out_dir, "float_repr.txt"))
    print("%d cases + float_repr.txt written to %s" % (len(CASES), out_dir))


if __name__ == "__main__":
    main()
