#!/usr/bin/env python3
"""Differential fuzz: random chat requests through DeepSeek's official encoder and `dsv4 render`.

Usage: python3 tools/chat/fuzz_diff.py /path/to/encoding_dsv4.py DSV4_BIN [N] [SEED]

A random 30% are split into --context + new messages, 15% carry top-level "tools". Every request is built as raw JSON text (random number spellings, escapes, odd types), fed to the official
encode_messages() (after json.loads) and to `DSV4_BIN render`; outputs must be byte-identical, and we
must fail exactly when the official raises. Prints mismatches and a summary; exit 1 on any mismatch.
"""
import importlib.util
import json
import os
import random
import subprocess
import sys
import tempfile

ROLES = ["system", "user", "assistant", "tool", "latest_reminder", "developer"]
TASKS = ["action", "query", "authority", "domain", "title", "read_url"]
NUMS = ["0", "-0", "1", "-17", "2.50", "1e-7", "1E5", "1.5e300", "-0.0", "123456789012345678901234567890",
        "0.1", "1e16", "1e15", "3.14159", "5e-324", "1e400", "NaN", "-Infinity", "0.0001", "1E-5", "12.0e2"]
STRS = ["", "a", "hello world", "é中😀", "quote \\\" and \\\\ back", "\\u00e9\\u4e2d", "\\ud83d\\ude00", "line\\nbreak\\ttab",
        "<think>x</think>", "｜DSML｜", "it's", "\\u0001ctl", "{\\\"json\\\": 1}", "  spaces  "]


def rstr(r):
    return '"' + r.choice(STRS) + '"'


def rvalue(r, depth=0):
    k = r.randrange(8 if depth < 2 else 5)
    if k == 0: return "null"
    if k == 1: return r.choice(["true", "false"])
    if k in (2, 3): return r.choice(NUMS)
    if k == 4: return rstr(r)
    if k in (5, 6): return "{" + ", ".join('"k%d": %s' % (i, rvalue(r, depth + 1)) for i in range(r.randrange(4))) + "}"
    return "[" + ", ".join(rvalue(r, depth + 1) for _ in range(r.randrange(4))) + "]"


def jstr(s):
    return json.dumps(s, ensure_ascii=r_ascii[0])


r_ascii = [False]


def rargs(r):
    k = r.randrange(10)
    if k == 0: return jstr("not json")
    if k == 1: return rvalue(r)  # non-string arguments
    if k == 2: return jstr("[1, 2]")
    inner = "{" + ", ".join('"p%d": %s' % (i % 3, rvalue(r, 1)) for i in range(r.randrange(4))) + "}"
    return jstr(inner)


def rmsg(r, ids):
    role = r.choice(ROLES + ["user", "assistant", "tool"])
    f = ['"role": "%s"' % role]
    if role == "assistant":
        if r.random() < 0.8: f.append('"content": %s' % (rstr(r) if r.random() < 0.9 else rvalue(r)))
        if r.random() < 0.6: f.append('"reasoning_content": %s' % rstr(r))
        if r.random() < 0.5:
            calls = []
            for _ in range(r.randrange(1, 4)):
                cid = "c%d" % r.randrange(6)
                ids.append(cid)
                idf = '"id": "%s", ' % cid if r.random() < 0.8 else ""
                calls.append('{%s"type": "function", "function": {"name": "fn%d", "arguments": %s}}' % (idf, r.randrange(3), rargs(r)))
            f.append('"tool_calls": [%s]' % ", ".join(calls))
        if r.random() < 0.1: f.append('"wo_eos": true')
        if r.random() < 0.1: f.append('"task": "title"')
    elif role == "tool":
        if r.random() < 0.9: f.append('"tool_call_id": "%s"' % (r.choice(ids) if ids and r.random() < 0.8 else "zz"))
        k = r.randrange(6)
        if k < 3: f.append('"content": %s' % rstr(r))
        elif k == 3: f.append('"content": %s' % rvalue(r))
        elif k == 4: f.append('"content": [{"type": "text", "text": %s}, {"type": "image"}]' % rstr(r))
    else:
        if role == "developer":
            f.append('"content": %s' % (rstr(r) if r.random() < 0.9 else '"dev"'))
        else:
            f.append('"content": %s' % (rstr(r) if r.random() < 0.95 else rvalue(r)))
        if role in ("system", "developer") and r.random() < 0.3:
            f.append('"tools": [{"type": "function", "function": {"name": "fn0", "parameters": %s}}]' % rvalue(r))
        if role in ("system", "developer") and r.random() < 0.15:
            f.append('"response_format": {"type": "json_schema", "json_schema": %s}' % rvalue(r))
        if role == "user" and r.random() < 0.15:
            f.append('"task": "%s"' % r.choice(TASKS))
    return "{" + ", ".join(f) + "}"


def main():
    enc_path, binp = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 300
    seed = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    spec = importlib.util.spec_from_file_location("encoding_dsv4", enc_path)
    enc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(enc)
    r = random.Random(seed)
    bad = agree_err = ok = 0
    for it in range(n):
        r_ascii[0] = r.random() < 0.5
        ids = []
        msgs = [rmsg(r, ids) for _ in range(r.randrange(1, 9))]
        thinking = r.random() < 0.6
        effort = r.choice([None, None, "high", "max"])
        drop = r.random() < 0.8
        # a random split into an already-encoded context and new messages
        k = r.randrange(len(msgs)) if r.random() < 0.3 else 0
        ctx_text = "[" + ",\n".join(msgs[:k]) + "]" if k else None
        req = "[" + ",\n".join(msgs[k:]) + "]"
        top_tools = r.random() < 0.15
        if top_tools:
            req = '{"tools": [{"type": "function", "function": {"name": "top", "parameters": %s}}], "messages": %s}' % (rvalue(r), req)
        ctx = json.loads(ctx_text) if ctx_text else None
        if ctx and thinking and drop:
            # §9.11: the official encoder loses the first new message when the context's last
            # user/developer message is a developer one; we deliberately differ — skip those
            roles = [m.get("role") for m in ctx]
            lu = [x for x in roles if x in ("user", "developer", "tool")]
            if lu and lu[-1] == "developer":
                continue
            if any(x not in ("user", "system", "tool", "latest_reminder", "assistant", "developer") for x in roles):
                continue
        try:
            rq = json.loads(req)
            if isinstance(rq, dict):
                tgt = ctx if ctx else rq["messages"]
                if tgt and isinstance(tgt[0], dict) and tgt[0].get("role") == "system":
                    tgt[0] = dict(tgt[0])
                else:
                    tgt.insert(0, {"role": "system"})
                tgt[0]["tools"] = rq["tools"]
                rq = rq["messages"]
            want = enc.encode_messages(rq, thinking_mode="thinking" if thinking else "chat", context=ctx,
                                       drop_thinking=drop, reasoning_effort=effort)
            want.encode("utf-8")
            werr = None
        except Exception as ex:  # noqa: BLE001
            want, werr = None, "%s: %s" % (type(ex).__name__, ex)
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as tf:
            tf.write(req)
        ctxargs = []
        if ctx_text:
            with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as cf:
                cf.write(ctx_text)
            ctxargs = ["--context", cf.name]
        cmd = [binp, "render", "--messages", tf.name] + ctxargs + (["--thinking"] if thinking else []) + \
              (["--effort", effort] if effort else []) + ([] if drop else ["--keep-thinking"])
        p = subprocess.run(cmd, capture_output=True)
        os.unlink(tf.name)
        if ctxargs:
            os.unlink(ctxargs[1])
        if werr is None and p.returncode == 0 and p.stdout == want.encode("utf-8"):
            ok += 1
        elif werr is not None and p.returncode != 0:
            agree_err += 1
        else:
            bad += 1
            if bad <= 5:
                print("MISMATCH #%d (thinking=%s effort=%s drop=%s)\nrequest: %s\nofficial: %r\nours(rc %d): %r %s\n" % (
                    it, thinking, effort, drop, req, werr or want[-300:], p.returncode, p.stdout[-300:], p.stderr[:300]))
    print("fuzz: %d identical, %d both error, %d mismatches (of %d)" % (ok, agree_err, bad, n))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
