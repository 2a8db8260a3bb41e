#!/usr/bin/env python3
"""tools/server/agent_reuse.py — share of prompt tokens reused per turn in a multi-turn, tool-using conversation
in thinking mode against `dsv4 serve` (docs/server.md "Prefix reuse").

  python3 tools/server/agent_reuse.py --url http://127.0.0.1:8080 [--turns 10] [--max-tokens 48]

Each turn sends the whole conversation (as an agent does): the model's previous reply goes back exactly as the
server returned it (reasoning_content, content, tool_calls), followed by a tool result for every tool call, else a
new user message. Prints prompt tokens, cached tokens and the reused share per turn. Standard library only."""
import argparse, json, urllib.request

TOOLS = [  # the tools models/nano-chat was trained with
    {"type": "function", "function": {"name": "calculator", "description": "Apply an arithmetic operation to two numbers.",
     "parameters": {"type": "object", "properties": {"operation": {"type": "string", "enum": ["add", "subtract", "multiply", "divide"]},
                    "a": {"type": "number"}, "b": {"type": "number"}}, "required": ["operation", "a", "b"]}}},
    {"type": "function", "function": {"name": "lookup_character", "description": "Look up a character of a Shakespeare play.",
     "parameters": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}}}]

def call(url, body):
    req = urllib.request.Request(url + "/v1/chat/completions", json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.load(r)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--turns", type=int, default=10)
    ap.add_argument("--max-tokens", type=int, default=160)
    a = ap.parse_args()
    msgs = [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "What is 17 plus 25?"}]
    total_p = total_c = 0
    for t in range(1, a.turns + 1):
        r = call(a.url, {"messages": msgs, "tools": TOOLS, "max_tokens": a.max_tokens, "temperature": 0,
                         "thinking": {"type": "enabled"}})
        u = r["usage"]; m = r["choices"][0]["message"]
        p, c = u["prompt_tokens"], u["prompt_tokens_details"]["cached_tokens"]
        total_p += p; total_c += c
        calls = m.get("tool_calls") or []
        print(f"turn {t:2d}: prompt {p:5d} tokens, cached {c:5d} ({100.0 * c / p:5.1f}%), "
              f"{'tool calls ' + str(len(calls)) if calls else 'answer'}, finish {r['choices'][0]['finish_reason']}")
        back = {"role": "assistant", "content": m.get("content") or ""}
        if m.get("reasoning_content") is not None: back["reasoning_content"] = m["reasoning_content"]
        if calls: back["tool_calls"] = calls
        msgs.append(back)
        if calls:
            for tc in calls: msgs.append({"role": "tool", "tool_call_id": tc["id"], "content": "42"})
        else:
            msgs.append({"role": "user", "content": f"What is {t} times {t * 3}?"})
    print(f"all turns: {total_c} of {total_p} prompt tokens reused ({100.0 * total_c / total_p:.1f}%)")

if __name__ == "__main__":
    main()
