#!/usr/bin/env python3
"""tools/server/ttft.py — time to first token of `dsv4 serve`, cold vs with a cached prefix.

  python3 tools/server/ttft.py --url http://127.0.0.1:8080 [--tokens 4000] [--runs 3]

Builds a conversation of about --tokens prompt tokens (Shakespeare from vendor/tinyshakespeare as the system
message), then per run: (1) a cold request (the system text is changed at its start, so nothing is reusable),
(2) the same conversation plus a new user turn of about 20 tokens (the prefix is reused from the slot's state).
TTFT = seconds from sending the request to the first SSE delta (streaming, max_tokens 1). Prints the medians
and the prompt / cached token counts the server reported. Standard library only."""
import argparse, json, statistics, time, urllib.request

def stream(url, body):
    req = urllib.request.Request(url + "/v1/chat/completions", json.dumps(body).encode(), {"Content-Type": "application/json"})
    t0 = time.perf_counter()
    first, usage = None, None
    with urllib.request.urlopen(req, timeout=600) as r:
        for line in r:
            line = line.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            ch = json.loads(line[6:])
            if ch.get("usage"):
                usage = ch["usage"]
            for c in ch.get("choices", []):
                d = c.get("delta", {})
                if first is None and (d.get("content") or d.get("reasoning_content")):
                    first = time.perf_counter() - t0
    return first if first is not None else time.perf_counter() - t0, usage

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--tokens", type=int, default=4000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--text", default="vendor/tinyshakespeare/tinyshakespeare.txt")
    a = ap.parse_args()
    text = open(a.text, encoding="utf-8").read()
    chars = int(a.tokens * 2.6)   # ~2.6 characters per token for the nano tokenizer; usage shows the real count
    base = {"max_tokens": 1, "temperature": 0, "stream": True, "stream_options": {"include_usage": True},
            "thinking": {"type": "disabled"}}
    cold, warm = [], []
    for run in range(a.runs):
        sysmsg = f"[run {run} {time.time()}] " + text[run * 997: run * 997 + chars]
        msgs = [{"role": "system", "content": sysmsg}, {"role": "user", "content": "Who speaks first?"}]
        t, u = stream(a.url, dict(base, messages=msgs))
        cold.append(t)
        print(f"cold: {t:.3f} s, prompt {u['prompt_tokens']} tokens, cached {u['prompt_tokens_details']['cached_tokens']}")
        msgs2 = msgs + [{"role": "assistant", "content": "The citizen."},
                        {"role": "user", "content": "And who answers him, and what does he say about the corn?"}]
        t, u = stream(a.url, dict(base, messages=msgs2))
        warm.append(t)
        print(f"cached prefix: {t:.3f} s, prompt {u['prompt_tokens']} tokens, cached {u['prompt_tokens_details']['cached_tokens']}")
    print(f"median TTFT cold {statistics.median(cold):.3f} s, with cached prefix {statistics.median(warm):.3f} s "
          f"({statistics.median(cold) / statistics.median(warm):.1f}x)")

if __name__ == "__main__":
    main()
