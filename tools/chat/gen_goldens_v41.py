#!/usr/bin/env python3
"""Generate tests/golden/chat-v41/<name>.input.json + <name>.output.txt: DeepSeek-V4.1 prompts.

Usage: python3 tools/chat/gen_goldens_v41.py /path/to/encoding_dsv4.py [OUT_DIR]

DeepSeek's V4.1 encoder (encoding/encoding.py of the V4.1 release) is not public. Its behaviour is known from
vLLM's port (vllm/tokenizers/deepseek_v41_encoding.py, "adapted from the DeepSeek V4.1 reference encoder",
Apache-2.0) and from 19 prompts that DeepSeek's own file produced (published as test vectors by a third-party
Rust port, see docs/encoding.md §10). The oracle used here is DeepSeek's official **V4** encoder (the same file
tools/chat/gen_goldens.py uses; never copied into this repository) with the V4.1 changes applied at run time:

  1. DSML tag names gain a leading space and the block is called " calls": "<｜DSML｜ calls>",
     "<｜DSML｜ invoke name=...>", "<｜DSML｜ parameter ...>" (tools preamble and assistant tool calls);
  2. reasoning effort is a number 1..100 (named: low 50, high 75, max 100; none = high); in thinking mode
     message 0 is preceded by "<｜System｜>" and the line "Reasoning Effort: N (range 1-100, ...)" + blank line;
     a system message at index 0 is preceded by "<｜System｜>" in both modes;
  3. a system message at index > 0 is written "<｜System｜>" + content and counts as a user message (last-user
     index, drop_thinking, and the "<｜Assistant｜>" + <think>/</think> transition).

This patched oracle reproduces all 16 official V4.1 vectors it was checked against byte for byte (the two
that need image inputs or long Chinese texts were checked by structure only; docs/encoding.md §10).

Images: the V4 text encoder has no image parts; like the vision revision (docs/encoding.md §4.6) a user content
list is first turned into its parts joined by "\\n\\n", an image part becoming "<｜deepseek_image｜>", and a
tool result's image part becomes a text part holding the placeholder.

Input file layout as tools/chat/gen_goldens.py, with "reasoning_effort": null or an integer 1..100 (the C side
passes it as dsv4_render_opts.effort_level; null = 0 = the default).
"""
import copy
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_goldens import case_adder, load_encoder, write_cases  # noqa: E402

CASES = []
case = case_adder(CASES)
PLACEHOLDER = "<｜deepseek_image｜>"
SYSTEM_TOK = "<｜System｜>"
EFFORT_NAMES = {"low": 50, "high": 75, "max": 100}


def make_v41(enc):
    """Turn the loaded official V4 module into the V4.1 encoder (module attributes replaced, see the docstring)."""
    d = enc.dsml_token
    enc.tool_calls_block_name = " calls"
    for attr in ("TOOLS_TEMPLATE", "tool_call_template", "tool_calls_template"):
        v = getattr(enc, attr)
        v = v.replace("{dsml_token}tool_calls", "{dsml_token} calls").replace("{dsml_token}invoke", "{dsml_token} invoke")
        v = v.replace("{dsml_token}parameter", "{dsml_token} parameter")
        setattr(enc, attr, v)
    v4_args = enc.encode_arguments_to_dsml

    def args_v41(tool_call):  # the parameter template is local to the V4 function: rename its tags
        s = v4_args(tool_call)
        return s.replace("<" + d + "parameter", "<" + d + " parameter").replace("</" + d + "parameter", "</" + d + " parameter")
    enc.encode_arguments_to_dsml = args_v41

    def last_user(messages):
        for i in range(len(messages) - 1, -1, -1):
            r = messages[i].get("role")
            if r in ("user", "developer") or (r == "system" and i > 0):
                return i
        return -1
    enc.find_last_user_index = last_user
    v4_render = enc.render_message

    def render_v41(index, messages, thinking_mode, drop_thinking=True, reasoning_effort=None):
        eff = "high" if reasoning_effort is None else reasoning_effort
        if not ((type(eff) is int and 1 <= eff <= 100) or eff in EFFORT_NAMES):
            raise AssertionError("Invalid reasoning effort: %r" % (reasoning_effort,))
        if type(eff) is str:
            eff = EFFORT_NAMES[eff]
        msg = messages[index]
        role = msg.get("role")
        head = ""
        effort_line = ""
        if index == 0 and thinking_mode == "thinking":
            effort_line = ("Reasoning Effort: %d (range 1-100, the higher the value, the more thorough the reasoning)\n\n"
                           % eff)
        if index == 0 and (effort_line or role == "system"):
            head = SYSTEM_TOK + effort_line
        body = v4_render(index, messages, thinking_mode, drop_thinking=drop_thinking, reasoning_effort=None)
        if role == "system" and index > 0:
            body = SYSTEM_TOK + body
            nxt = messages[index + 1].get("role") if index + 1 < len(messages) else None
            if msg.get("task") is None and (nxt is None or nxt in ("assistant", "latest_reminder")):
                lu = last_user(messages)
                think = thinking_mode == "thinking" and (not drop_thinking or index >= lu)
                body += "<｜Assistant｜>" + ("<think>" if think else "</think>")
        return head + body
    enc.render_message = render_v41


def images_to_text(msgs):
    """The vision revision's pre-step for the V4 text encoder: image parts -> the placeholder text."""
    out = []
    for m in msgs:
        m = copy.deepcopy(m)
        c = m.get("content")
        if isinstance(c, list) and m.get("role") == "user":
            parts = []
            for p in c:
                parts.append(p.get("text", "") if p.get("type") == "text" else PLACEHOLDER)
            m["content"] = "\n\n".join(parts)
        elif isinstance(c, list) and m.get("role") == "tool":
            m["content"] = [p if p.get("type") != "image_url" else {"type": "text", "text": PLACEHOLDER} for p in c]
        out.append(m)
    return out


TOOLS = r'''[
 {"type": "function", "function": {"name": "get_weather", "description": "Get the weather for a city",
  "parameters": {"type": "object", "properties": {"location": {"type": "string", "description": "City name"},
  "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}, "days": {"type": "integer"}}, "required": ["location"]}}},
 {"type": "function", "function": {"name": "search", "description": "Search the web — ünïcödé 搜索",
  "parameters": {"type": "object", "properties": {"query": {"type": "string"}, "filters": {"type": "object"}},
  "required": ["query"]}}}
]'''

# ---------------------------------------------------------------- chat / thinking, effort
case("chat_system", r'''[{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi there"}]''')
case("chat_user_only", r'''[{"role": "user", "content": "Hello"}]''')
case("chat_effort_ignored", r'''[{"role": "user", "content": "effort is not written in chat mode"}]''', effort=100)
case("think_default_effort", r'''[{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi there"}]''',
     thinking="thinking")
case("think_effort_1_no_system", r'''[{"role": "user", "content": "2+2?"}]''', thinking="thinking", effort=1)
case("think_effort_33", r'''[{"role": "system", "content": "sys"}, {"role": "user", "content": "  中文 🚀\n\nsecond\t tabbed "}]''',
     thinking="thinking", effort=33)
case("think_effort_100", r'''[{"role": "system", "content": "You are a careful mathematician."},
 {"role": "user", "content": "Prove that sqrt(2) is irrational."}]''', thinking="thinking", effort=100)
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
 {"role": "user", "content": "Q2"}]''', thinking="thinking", drop=False)
case("think_final_assistant", r'''[
 {"role": "user", "content": "Hello"},
 {"role": "assistant", "content": "Hi!", "reasoning_content": "greet"},
 {"role": "user", "content": "Capital of France?"},
 {"role": "assistant", "content": "Paris.", "reasoning_content": "easy"}]''', thinking="thinking")
case("think_wo_eos_prefill", r'''[
 {"role": "user", "content": "Write a haiku"},
 {"role": "assistant", "content": "Autumn moonlight", "reasoning_content": "seasons", "wo_eos": true}]''', thinking="thinking")

# ---------------------------------------------------------------- mid-conversation system messages
case("mid_system_last_thinking", r'''[
 {"role": "user", "content": "q1"},
 {"role": "assistant", "content": "a1", "reasoning_content": "r1"},
 {"role": "system", "content": "New rule: be brief."}]''', thinking="thinking")
case("mid_system_last_chat", r'''[
 {"role": "system", "content": "first"},
 {"role": "user", "content": "q1"},
 {"role": "assistant", "content": "a1"},
 {"role": "system", "content": "second"}]''')
case("mid_system_then_user", r'''[
 {"role": "user", "content": "q1"},
 {"role": "assistant", "content": "a1", "reasoning_content": "r1"},
 {"role": "system", "content": "Switch to French."},
 {"role": "user", "content": "q2"}]''', thinking="thinking")
case("mid_system_then_assistant", r'''[
 {"role": "user", "content": "q1"},
 {"role": "assistant", "content": "a1", "reasoning_content": "r1"},
 {"role": "system", "content": "Answer again, shorter."},
 {"role": "assistant", "content": "a2", "reasoning_content": "r2"},
 {"role": "user", "content": "q3"}]''', thinking="thinking")
case("mid_system_keep_thinking", r'''[
 {"role": "user", "content": "q1"},
 {"role": "assistant", "content": "a1", "reasoning_content": "r1"},
 {"role": "system", "content": "note"},
 {"role": "assistant", "content": "a2", "reasoning_content": "r2"}]''', thinking="thinking", drop=False)
case("mid_system_after_reminder", r'''[
 {"role": "system", "content": "S"},
 {"role": "latest_reminder", "content": "2026-12-06, Paris"},
 {"role": "system", "content": "Citations: [n]"},
 {"role": "user", "content": "U"}]''', thinking="thinking")

# ---------------------------------------------------------------- tools
case("tools_round_thinking", r'''{"tools": ''' + TOOLS + r''', "messages": [
 {"role": "system", "content": "You are a helpful assistant."},
 {"role": "user", "content": "Weather in Paris and Tokyo?"},
 {"role": "assistant", "content": "", "reasoning_content": "Two cities; call twice.", "tool_calls": [
   {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\": \"Paris\", \"days\": 2}"}},
   {"id": "c2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\": \"Tokyo\", \"unit\": \"celsius\"}"}}]},
 {"role": "tool", "tool_call_id": "c2", "content": "{\"temp\": 22}"},
 {"role": "tool", "tool_call_id": "c1", "content": "{\"temp\": 18.5}"},
 {"role": "assistant", "content": "Paris 18.5, Tokyo 22.", "reasoning_content": "Summarise."},
 {"role": "user", "content": "Thanks"}]}''', thinking="thinking")
case("tools_no_system_chat", r'''{"tools": ''' + TOOLS + r''', "messages": [
 {"role": "user", "content": "Find news"},
 {"role": "assistant", "content": "Searching.", "tool_calls": [
   {"id": "s1", "type": "function", "function": {"name": "search", "arguments": "{\"query\": \"a \\\"quoted\\\" <tag> & ünï\", \"filters\": {\"lang\": [\"en\", \"fr\"], \"n\": 3, \"strict\": true, \"x\": null}}"}}]},
 {"role": "tool", "tool_call_id": "s1", "content": [{"type": "text", "text": "r1"}, {"type": "text", "text": "r2"}]},
 {"role": "user", "content": "and?"}]}''')
case("tools_no_system_thinking", r'''{"tools": ''' + TOOLS + r''', "messages": [
 {"role": "user", "content": "Weather?"}]}''', thinking="thinking", effort=90)
case("tools_args_not_json", r'''[
 {"role": "system", "content": "s", "tools": ''' + TOOLS + r'''},
 {"role": "user", "content": "go"},
 {"role": "assistant", "content": "", "tool_calls": [
   {"type": "function", "function": {"name": "search", "arguments": "not json"}},
   {"type": "function", "function": {"name": "search", "arguments": "{}"}}]},
 {"role": "tool", "content": "ok"}]''', thinking="thinking")
case("tools_mid_system_with_tools", r'''[
 {"role": "system", "content": "S"},
 {"role": "user", "content": "hi"},
 {"role": "assistant", "content": "hello", "reasoning_content": "r"},
 {"role": "system", "content": "Tools are now available.", "tools": ''' + TOOLS + r'''},
 {"role": "user", "content": "weather in Rome"}]''', thinking="thinking")
case("response_format", r'''{"response_format": {"type": "json_object"}, "messages": [
 {"role": "system", "content": "sys"},
 {"role": "user", "content": "yes?"}]}''')

# ---------------------------------------------------------------- other roles, tasks, context
case("latest_reminder", r'''[{"role": "user", "content": "q1"}, {"role": "latest_reminder", "content": "Remember X."}]''',
     thinking="thinking")
case("developer_search", r'''[
 {"role": "system", "content": "S"},
 {"role": "developer", "content": "Search the web.", "tools": ''' + TOOLS + r'''},
 {"role": "assistant", "content": "", "reasoning_content": "r", "tool_calls": [
   {"id": "d1", "type": "function", "function": {"name": "search", "arguments": "{\"query\": \"x\"}"}}]},
 {"role": "tool", "tool_call_id": "d1", "content": "found"}]''', thinking="thinking")
case("task_action", r'''[
 {"role": "system", "content": "S"},
 {"role": "user", "content": "U1"},
 {"role": "assistant", "content": "A1"},
 {"role": "user", "content": "U2", "task": "action"},
 {"role": "assistant", "content": "Search"}]''', thinking="thinking")
case("context_new_turn", r'''[{"role": "user", "content": "new turn"}]''', thinking="thinking",
     context=r'''[{"role": "system", "content": "S"}, {"role": "user", "content": "old turn"}, {"role": "assistant", "content": "old answer", "reasoning_content": "old r"}]''')
case("context_mid_system", r'''[{"role": "system", "content": "be brief"}]''', thinking="thinking",
     context=r'''[{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]''')

# ---------------------------------------------------------------- images (vision revision)
case("image_user_parts", r'''[
 {"role": "system", "content": "You are a helpful vision assistant."},
 {"role": "user", "content": [
   {"type": "text", "text": "first image"},
   {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}},
   {"type": "text", "text": "and the second"},
   {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}},
   {"type": "text", "text": "what are they?"}]}]''', thinking="thinking", effort=100)
case("image_tool_result", r'''[
 {"role": "user", "content": "look"},
 {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "shot", "arguments": "{}"}}]},
 {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "screen:"},
   {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}]}]''')

# ---------------------------------------------------------------- errors (the encoder raises)
case("error_effort_negative", r'''[{"role": "user", "content": "x"}]''', thinking="thinking", effort=-5, error=True)
case("error_effort_101", r'''[{"role": "user", "content": "x"}]''', effort=101, error=True)
case("error_developer_empty", r'''[{"role": "developer", "content": ""}]''', error=True)
case("error_bad_task", r'''[{"role": "user", "content": "x", "task": "nope"}]''', error=True)
case("error_args_list", r'''[{"role": "user", "content": "x"}, {"role": "assistant", "content": "",
  "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "[1, 2]"}}]}]''', error=True)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    enc = load_encoder(sys.argv[1])
    make_v41(enc)
    out_dir = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), "..", "..", "tests", "golden",
                                                                 "chat-v41")
    write_cases(enc, CASES, out_dir, prepare=images_to_text)
    print("%d cases written to %s" % (len(CASES), out_dir))


if __name__ == "__main__":
    main()
