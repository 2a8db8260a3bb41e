#!/usr/bin/env python3
"""Differential test of our output parser (`dsv4 parse`, src/chat/parse.c) against DeepSeek's official
`parse_message_from_completion_text` (encoding/encoding_dsv4.py; not part of this repository).

Usage: python3 tools/chat/parse_diff.py ENC.py DSV4_BIN [N_RANDOM] [SEED] [--goldens OUTDIR] [-v]

Cases: a hand-written list of valid and malformed completions (chat/thinking, content only, single and
parallel tool calls, string and non-string parameters, nested JSON, Unicode, quotes, newlines, empty
content; missing closes, bad attributes, duplicate parameters, text after the block, EOS missing, DSML token in
content, </think> missing, truncations, Unicode whitespace in the invoke header, special tokens in values...),
plus N_RANDOM random completions: valid ones built from random tool calls (via the official encoder's own
DSML serialisation and hand-written variants) and random mutations of them (truncate, delete/insert/replace a
chunk or a marker piece).

Each case is run through the official parser (exceptions caught) and through `DSV4_BIN parse [--thinking]`
(completion on stdin, JSON message on stdout, warnings on stderr). Verdicts:
  match       the official accepts; our reasoning_content, content, tool_calls (name + arguments, byte-exact)
              are equal (our `content: null` with tool calls counts as "").
  eos-match   the official rejects only because the final EOS is missing (generation loops stop at the EOS
              token id and never feed its text; ours accepts that silently): ours(text) must equal
              official(text + EOS).
  flagged     the official rejects; ours exits 0, prints a warning, and keeps the text (when it returns no
              tool calls: reasoning + content equals the input with at most one </think> and one EOS removed,
              compared as character multisets).
  MISMATCH / CRASH / UNFLAGGED / LOST  a disagreement (printed; exit status 1).

--goldens OUTDIR writes the fixed cases and the first 40 random ones (deterministic for a seed) as OUTDIR/<name>.in (raw input bytes) plus
OUTDIR/expected.json (the official verdict and output per case), read by tests/test_chat_parse.c.
"""
import collections
import importlib.util
import json
import os
import random
import subprocess
import sys

EOS = "<｜end▁of▁sentence｜>"
BOS = "<｜begin▁of▁sentence｜>"
D = "｜DSML｜"
TCS = "\n\n<" + D + "tool_calls>\n"
TCE = "</" + D + "tool_calls>"
INVE = "</" + D + "invoke>"


def inv(name, params, ws=" "):
    return "<" + D + "invoke" + ws + 'name="' + name + '">\n' + "".join(p + "\n" for p in params) + INVE


def ps(k, v):
    return "<" + D + 'parameter name="' + k + '" string="true">' + v + "</" + D + "parameter>"


def pn(k, v):
    return "<" + D + 'parameter name="' + k + '" string="false">' + v + "</" + D + "parameter>"


def block(*invokes):
    return TCS + "\n".join(invokes) + "\n" + TCE


W = block(inv("get_weather", [ps("location", "Beijing"), ps("unit", "celsius")]))

# (name, thinking, text)
FIXED = [
    # ---- valid
    ("chat_plain", 0, "Hello, world!" + EOS),
    ("chat_empty", 0, EOS),
    ("chat_multiline", 0, "a\n\nb < c\n\n<x>\n  " + EOS),
    ("chat_unicode", 0, "中文 😀 ｜ é ☃ \u2028 \x7f" + EOS),
    ("think_answer", 1, "The user asks about the capital of France. It is Paris.</think>The capital of France is Paris." + EOS),
    ("think_empty_both", 1, "</think>" + EOS),
    ("think_tool_golden", 1, "The user wants to know the weather in Beijing. I should use the get_weather tool.</think>" + W + EOS),
    ("chat_tool_content_before", 0, "Let me check." + W + EOS),
    ("chat_tool_no_content", 0, W + EOS),
    ("chat_tool_no_eos", 0, W),
    ("think_tool_no_eos", 1, "r</think>c" + W),
    ("parallel_3", 0, block(inv("a", [ps("x", "1")]), inv("b", [pn("y", "2")]), inv("c", [pn("z", "[1, 2]")])) + EOS),
    ("nested_json", 0, block(inv("f", [pn("obj", '{"a": [1, {"b": null}], "c": "x"}'), pn("n", "-1.5e3"), pn("t", "true"),
                                        ps("s", "plain")])) + EOS),
    ("unicode_call", 1, "思考…</think>好的😀" + block(inv("搜索", [ps("查询", "北京 ☃ 😀 ｜")])) + EOS),
    ("quotes_ctl", 0, block(inv("w", [ps("path", 'C:\\dir\\"q"\n\tline\x01\x1f\x7f\x0b\x0c\r\b end')])) + EOS),
    ("value_with_tags", 0, block(inv("e", [ps("code", 'if (a < b) { x = "</tag>"; }\n<' + D + 'invoke name="no">')])) + EOS),
    ("value_newlines", 0, block(inv("e", [ps("text", "line1\nline2\n\n\nline4\n")])) + EOS),
    ("value_ends_lt_nl", 0, block(inv("e", [ps("v", "x<\n")])) + EOS),
    ("invoke_no_params", 0, block(inv("now", [])) + EOS),
    ("invoke_ws_before_name", 0, block(inv("ws", [ps("k", "v")], ws=" \t ")) + EOS),
    ("invoke_nl_before_name", 0, block(inv("ws", [ps("k", "v")], ws="\n")) + EOS),
    ("invoke_ideographic_space", 0, block(inv("ws", [ps("k", "v")], ws="\u3000")) + EOS),
    ("invoke_nbsp", 0, block(inv("ws", [ps("k", "v")], ws="\xa0")) + EOS),
    ("invoke_nel", 0, block(inv("ws", [ps("k", "v")], ws="\x85 ")) + EOS),
    ("invoke_unicode_spaces", 0, block(inv("a", [], ws="\u1680\u2000\u200a\u2028\u2029\u202f\u205f\x1c\x0b"), inv("b", [ps("k", "v")], ws="\u2009")) + EOS),
    ("invoke_zero_width_space", 0, block(inv("ws", [ps("k", "v")], ws="\u200b")) + EOS),
    ("invoke_no_space", 0, block(inv("ns", [ps("k", "v")], ws="")) + EOS),
    ("invoke_header_double_nl", 0, TCS + "<" + D + 'invoke name="f">\n\n' + ps("k", "v") + "\n" + INVE + "\n" + TCE + EOS),
    ("empty_key_value", 0, block(inv("e", [ps("", "")])) + EOS),
    ("false_invalid_json", 0, block(inv("g", [pn("list", "[1, 2")])) + EOS),
    ("false_raw_text", 0, block(inv("g", [pn("x", "hello world")])) + EOS),
    ("false_empty", 0, block(inv("g", [pn("x", "")])) + EOS),
    ("name_with_quote", 0, block(inv('a">b', [ps("k", "v")])) + EOS),
    ("key_with_quote", 0, block(inv("f", [ps('k"ey', "v")])) + EOS),
    ("key_with_string_attr_text", 0, block(inv("f", ['<' + D + 'parameter name="a" string="x" string="true">v</' + D + 'parameter>'])) + EOS),
    ("three_newlines_before_block", 0, "x\n" + W + EOS),
    ("many_params", 0, block(inv("m", [ps("p%d" % i, "v%d" % i) if i % 2 else pn("p%d" % i, str(i)) for i in range(12)])) + EOS),
    ("same_call_twice", 0, block(inv("f", [ps("a", "1")]), inv("f", [ps("a", "1")])) + EOS),
    ("think_multiline_reasoning", 1, "step 1\nstep 2\n\n<not a tag>\n</think>\n\nanswer\n" + EOS),
    ("think_tool_only", 1, "</think>" + W + EOS),
    ("bos_in_value", 0, block(inv("f", [ps("a", BOS + "</think><think>")])) + EOS),
    ("eos_in_value", 0, block(inv("f", [ps("a", "x" + EOS + "y")])) + EOS),
    ("eos_in_name", 0, block(inv("f" + EOS, [ps("a", "1")])) + EOS),
    ("tcs_in_value", 0, block(inv("f", [ps("a", "x" + TCS + "y")])) + EOS),
    # ---- accepted by the official although truncated / odd
    ("empty_block", 0, "\n\n<" + D + "tool_calls>\n" + TCE + EOS),
    ("empty_block_content", 0, "pre" + "\n\n<" + D + "tool_calls>\n" + TCE),
    ("cut_after_tcs", 0, "pre\n\n<" + D + "tool_calls"),
    ("cut_after_invoke_close", 0, "pre" + TCS + inv("f", [ps("a", "1")])[:-1]),
    ("cut_after_invoke_close_noparam", 1, "r</think>" + TCS + inv("f", [])[:-1]),
    ("cut_after_second_invoke_close", 0, TCS + inv("f", [ps("a", "1")]) + "\n" + inv("g", [pn("b", "2")])[:-1]),
    # ---- malformed
    ("missing_eos", 0, "Hello"),
    ("missing_eos_think", 1, "r</think>Hello"),
    ("missing_tc_close", 0, "pre" + TCS + inv("f", [ps("a", "1")]) + "\n"),
    ("missing_tc_close_eos", 0, "pre" + TCS + inv("f", [ps("a", "1")]) + "\n" + EOS),
    ("missing_invoke_close", 0, TCS + "<" + D + 'invoke name="f">\n' + ps("a", "1") + "\n" + TCE + EOS),
    ("missing_param_close", 0, TCS + "<" + D + 'invoke name="f">\n<' + D + 'parameter name="a" string="true">1\n' + INVE + "\n" + TCE + EOS),
    ("bad_string_attr", 0, block(inv("f", ['<' + D + 'parameter name="a" string="maybe">1</' + D + 'parameter>'])) + EOS),
    ("missing_string_attr", 0, block(inv("f", ['<' + D + 'parameter name="a">1</' + D + 'parameter>'])) + EOS),
    ("single_quotes_attr", 0, block(inv("f", ["<" + D + "parameter name='a' string='true'>1</" + D + "parameter>"])) + EOS),
    ("two_spaces_param", 0, block(inv("f", ['<' + D + 'parameter  name="a" string="true">1</' + D + 'parameter>'])) + EOS),
    ("bad_invoke_header", 0, TCS + "<" + D + 'invoke nam="f">\n' + INVE + "\n" + TCE + EOS),
    ("invoke_header_no_nl", 0, TCS + "<" + D + 'invoke name="f">' + ps("a", "1") + "\n" + INVE + "\n" + TCE + EOS),
    ("invoke_header_trailing_space", 0, TCS + "<" + D + 'invoke name="f"> \n' + ps("a", "1") + "\n" + INVE + "\n" + TCE + EOS),
    ("unknown_tag", 0, TCS + "<" + D + "frobnicate>\n" + inv("f", []) + "\n" + TCE + EOS),
    ("duplicate_param", 0, block(inv("f", [ps("a", "1"), ps("a", "2")])) + EOS),
    ("duplicate_param_mixed", 0, block(inv("f", [ps("a", "1"), pn("a", "2")])) + EOS),
    ("eos_inside_value_cut", 0, "c" + TCS + "<" + D + 'invoke name="f">\n<' + D + 'parameter name="a" string="true">xy' + EOS),
    ("text_after_block", 0, "c" + W + "trailing words" + EOS),
    ("text_after_block_eos", 0, "c" + W + EOS + "more"),
    ("block_twice", 0, W + "x" + W),
    ("block_then_block", 0, W + W + EOS),
    ("dsml_in_content", 0, "See <" + D + "tool_calls> here" + EOS),
    ("dsml_in_content_with_call", 0, "See " + D + " here" + W + EOS),
    ("dsml_no_blank_line", 0, "x\n<" + D + "tool_calls>\n" + inv("f", []) + "\n" + TCE + EOS),
    ("garbage_after_marker", 0, "a\n\n<" + D + "tool_callsXYZ more text" + EOS),
    ("marker_then_eos", 0, "a\n\n<" + D + "tool_calls" + EOS),
    ("no_nl_after_tc", 0, "\n\n<" + D + "tool_calls>" + inv("f", []) + "\n" + TCE + EOS),
    ("no_nl_between_invokes", 0, TCS + inv("f", []) + inv("g", []) + "\n" + TCE + EOS),
    ("no_nl_before_tce", 0, TCS + inv("f", []) + TCE + EOS),
    ("junk_between_params", 0, TCS + "<" + D + 'invoke name="f">\n' + ps("a", "1") + "junk\n" + ps("b", "2") + "\n" + INVE + "\n" + TCE + EOS),
    ("invoke_close_no_gt", 0, TCS + inv("f", [])[:-1] + "\n" + TCE + EOS),
    ("truncated_mid_value", 1, "r</think>" + TCS + "<" + D + 'invoke name="f">\n<' + D + 'parameter name="a" string="true">par'),
    ("truncated_mid_header", 0, "c" + TCS + "<" + D + 'invoke name="f'),
    ("truncated_value_ends_lt", 0, "c" + TCS + "<" + D + 'invoke name="f">\n<' + D + 'parameter name="a" string="true">par<'),
    ("think_missing_close", 1, "still thinking about it"),
    ("think_missing_close_eos", 1, "hmm" + EOS),
    ("think_block_in_reasoning", 1, "plan" + W + EOS),
    ("think_close_in_content", 1, "r</think>a</think>b" + EOS),
    ("think_open_in_reasoning", 1, "<think>r</think>a" + EOS),
    ("think_open_in_content_chat", 0, "a<think>b" + EOS),
    ("think_close_in_content_chat", 0, "a</think>b" + EOS),
    ("bos_in_content", 0, "x" + BOS + "y" + EOS),
    ("text_after_eos", 0, "done" + EOS + "extra"),
    ("two_eos", 0, "done" + EOS + EOS),
    ("eos_in_reasoning", 1, "r" + EOS + "s</think>c" + EOS),
    ("tool_then_text_after_eos", 0, W + EOS + "zz"),
]

NAMES = ["get_weather", "search", "f", "run_code", "搜索", "a.b", "tool-1", "x y"]
KEYS = ["q", "location", "path", "n", "obj", "查询", "k_2", "with space", ""]
STRVALS = ["", "Beijing", "a b c", "line1\nline2", "tab\there", 'quote " and \\ back', "中文😀", "<b>bold</b>",
           "x < y > z", "{\"not\": \"parsed\"}", "\r\n", "\x01\x1f", "  padded  ", "ends with <", "end\n"]


def rvalue(r, depth=0):
    k = r.randrange(8 if depth < 2 else 5)
    if k == 0: return None
    if k == 1: return r.choice([True, False])
    if k == 2: return r.choice([0, -17, 12345678901234567890, 2.5, -0.0, 1e-07, 1.5e300])
    if k in (3, 4): return r.choice(STRVALS)
    if k in (5, 6): return {r.choice(KEYS): rvalue(r, depth + 1) for _ in range(r.randrange(4))}
    return [rvalue(r, depth + 1) for _ in range(r.randrange(4))]


def rparams(r):
    args = {}
    for _ in range(r.randrange(5)):
        args[r.choice(KEYS)] = rvalue(r)
    return args


def rvalid(r, enc):
    """A random completion the official parser should accept."""
    thinking = r.random() < 0.5
    text = ""
    if thinking:
        text += r.choice(["", "Let me think.", "多步推理\n1. a\n2. b", "r" * r.randrange(1, 40), "a\n\nb"]) + "</think>"
    text += r.choice(["", "Sure.", "Here:\n", "答案是 42。", "x\n", " ", "multi\n\nline"])
    if r.random() < 0.7:
        calls = []
        for _ in range(1 + (r.random() < 0.3) * r.randrange(1, 4)):
            name = r.choice(NAMES)
            if r.random() < 0.6:  # the official encoder's own serialisation of random arguments
                calls.append(enc.tool_call_template.format(dsml_token=D, name=name, arguments=enc.encode_arguments_to_dsml(
                    {"name": name, "arguments": json.dumps(rparams(r), ensure_ascii=r.random() < 0.3)})))
            else:  # hand-written: non-canonical string="false" values, odd spacing
                ps_ = []
                used = set()
                for _ in range(r.randrange(4)):
                    k = r.choice(KEYS)
                    if k in used: continue
                    used.add(k)
                    if r.random() < 0.5: ps_.append(ps(k, r.choice(STRVALS)))
                    else: ps_.append(pn(k, r.choice(['{"a":1}', "[1,2 , 3]", "1e5", "NaN", "null", "  7 ", '"s"', "oops"])))
                calls.append(inv(name, ps_, ws=r.choice([" ", " ", "  ", "\t", "\n ", "\u3000", "\xa0", "\u200b"])))
        text += TCS + "\n".join(calls) + "\n" + TCE
    if r.random() < 0.9: text += EOS
    return thinking, text


PIECES = ["<", ">", "\n", "\n\n", D, "<" + D, "</" + D, "tool_calls", "invoke", "parameter", ' name="', '"',
          ' string="true"', ' string="false"', "/", "</think>", "<think>", EOS, BOS, "x", "é", "{", "1", ">\n"]


def mutate(r, text):
    k = r.randrange(6)
    if not text: return r.choice(PIECES)
    i = r.randrange(len(text) + 1)
    if k == 0: return text[:i]                                   # truncate
    if k == 1:                                                   # delete a chunk
        j = min(len(text), i + r.randrange(1, 12))
        return text[:i] + text[j:]
    if k == 2: return text[:i] + r.choice(PIECES) + text[i:]     # insert a piece
    if k == 3:                                                   # replace a chunk by a piece
        j = min(len(text), i + r.randrange(1, 6))
        return text[:i] + r.choice(PIECES) + text[j:]
    if k == 4:                                                   # duplicate a chunk
        j = min(len(text), i + r.randrange(1, 40))
        return text[:j] + text[i:j] + text[j:]
    return text + r.choice(PIECES)                                # append


def official(enc, text, thinking):
    try:
        m = enc.parse_message_from_completion_text(text, "thinking" if thinking else "chat")
        return {"ok": True, "reasoning_content": m["reasoning_content"], "content": m["content"],
                "tool_calls": [[c["function"]["name"], c["function"]["arguments"]] for c in m["tool_calls"]]}
    except Exception as e:  # AssertionError, ValueError, ...
        return {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}


def ours(bin_, text, thinking):
    args = [bin_, "parse"] + (["--thinking"] if thinking else [])
    p = subprocess.run(args, input=text.encode("utf-8"), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    res = {"rc": p.returncode, "stderr": p.stderr.decode("utf-8", "replace")}
    if p.returncode == 0:
        try:
            m = json.loads(p.stdout.decode("utf-8"))
            res.update(reasoning_content=m.get("reasoning_content") or "", content=m.get("content") or "",
                       tool_calls=[[c["function"]["name"], c["function"]["arguments"]] for c in m.get("tool_calls", [])])
        except Exception as e:
            res["rc"] = -1000
            res["stderr"] += " [bad JSON on stdout: %s]" % e
    return res


def fields(x):
    return (x["reasoning_content"], x["content"], x["tool_calls"])


def kept_text(text, o, thinking):
    """Ours returned no calls: reasoning + content hold the input minus at most one </think> and one EOS."""
    if o["tool_calls"]: return True
    lost = collections.Counter(text) - collections.Counter(o["reasoning_content"] + o["content"])
    extra = collections.Counter(o["reasoning_content"] + o["content"]) - collections.Counter(text)
    if extra: return False
    for cand in ([], ["</think>"], [EOS], ["</think>", EOS]):
        if lost == collections.Counter("".join(cand)): return True
    if "without any invoke dropped" in o["stderr"]:  # an empty block (markup only) was dropped, like the official
        return not (lost - collections.Counter("</think>" + EOS + TCS + TCE))
    return False


def judge(enc, bin_, name, thinking, text):
    """Returns (verdict, official result with "cls": 0 accepted / 1 accepted with EOS appended / 2 rejected, ours)."""
    off = official(enc, text, thinking)
    off["cls"] = 0 if off["ok"] else 2
    if not off["ok"] and not text.endswith(EOS):
        off2 = official(enc, text + EOS, thinking)
        if off2["ok"]:
            off = dict(off2, cls=1)
    our = ours(bin_, text, thinking)
    if our["rc"] != 0:
        return "CRASH", off, our
    if off["ok"]:
        return ("match" if fields(off) == fields(our) else "MISMATCH") if off["cls"] == 0 else \
               ("eos-match" if fields(off) == fields(our) else "MISMATCH"), off, our
    if "warning" not in our["stderr"]:
        return "UNFLAGGED", off, our
    if not kept_text(text, our, thinking):
        return "LOST", off, our
    return "flagged", off, our


def main():
    argv = [a for a in sys.argv[1:] if a != "-v"]
    verbose = "-v" in sys.argv
    outdir = None
    if "--goldens" in argv:
        i = argv.index("--goldens")
        outdir = argv[i + 1]
        del argv[i:i + 2]
    if len(argv) < 2:
        print(__doc__)
        return 2
    spec = importlib.util.spec_from_file_location("encoding_dsv4", argv[0])
    enc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(enc)
    bin_ = argv[1]
    n_random = int(argv[2]) if len(argv) > 2 else 1000
    seed = int(argv[3]) if len(argv) > 3 else 1
    r = random.Random(seed)
    cases = list(FIXED)
    for i in range(n_random):
        th, t = rvalid(r, enc)
        if i % 3:
            for _ in range(1 + r.randrange(3)): t = mutate(r, t)
        cases.append(("rand%05d" % i, th, t))
    counts = collections.Counter()
    n_acc = [0, 0, 0]  # official accepts / accepts only with EOS appended / rejects
    bad = 0
    for name, th, text in cases:
        verdict, off, our = judge(enc, bin_, name, th, text)
        counts[verdict] += 1
        n_acc[off.get("cls", 2)] += 1
        if verdict.isupper() or verbose:
            bad += verdict.isupper()
            print("%s %s (thinking=%d): %r" % (verdict, name, th, text[:400]))
            print("   official: %s" % json.dumps(off, ensure_ascii=False)[:600])
            print("   ours:     %s" % json.dumps(our, ensure_ascii=False)[:600])
    print("cases: %d (%d fixed, %d random, seed %d)" % (len(cases), len(FIXED), n_random, seed))
    print("  official accepts %d (+%d only with EOS appended), rejects %d" % tuple(n_acc))
    print("verdicts: " + ", ".join("%s %d" % kv for kv in sorted(counts.items())))
    if outdir:
        write_goldens(enc, outdir, cases[:len(FIXED) + N_RANDOM_GOLDENS])
    return 1 if bad else 0


N_RANDOM_GOLDENS = 40


def write_goldens(enc, outdir, cases):
    os.makedirs(outdir, exist_ok=True)
    exp = []
    for name, th, text in cases:
        off = official(enc, text, th)
        kind = "accepted" if off["ok"] else "rejected"
        if not off["ok"] and not text.endswith(EOS):
            off2 = official(enc, text + EOS, th)
            if off2["ok"]:
                kind, off = "accepted_with_eos", dict(off2, error_without_eos=off["error"])
        with open(os.path.join(outdir, name + ".in"), "wb") as f:
            f.write(text.encode("utf-8"))
        e = {"name": name, "thinking": bool(th), "kind": kind}
        if off["ok"]:
            e.update(reasoning_content=off["reasoning_content"], content=off["content"],
                     tool_calls=[{"name": n, "arguments": a} for n, a in off["tool_calls"]])
            if "error_without_eos" in off: e["official_error_without_eos"] = off["error_without_eos"]
        else:
            e["official_error"] = off["error"]
        exp.append(e)
    with open(os.path.join(outdir, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(exp, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print("goldens: %d cases written to %s" % (len(exp), outdir))


if __name__ == "__main__":
    sys.exit(main())
