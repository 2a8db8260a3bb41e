#!/usr/bin/env python3
"""tests/fuzz/make_seeds.py — writes the committed seed corpora tests/fuzz/corpus/<target>/ (docs/fuzzing.md).

Run from the repository root: python3 tests/fuzz/make_seeds.py. Every seed is small and hand-made (no third-party
text); the regression inputs of fixed findings are kept here too so that every fuzz run starts from them.
"""
import json
import os
import struct

ROOT = "tests/fuzz/corpus"


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def st(header, data=b"", pad=b""):
    h = (header if isinstance(header, str) else json.dumps(header, separators=(",", ":"))).encode() + pad
    return struct.pack("<Q", len(h)) + h + data


# ---------------------------------------------------------------- safetensors files
put("fuzz_safetensors", "two_tensors", st(
    {"__metadata__": {"format": "pt"},
     "a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
     "b": {"dtype": "BF16", "shape": [3], "data_offsets": [16, 22]}}, bytes(range(22))))
put("fuzz_safetensors", "all_dtypes", st(
    {"f64": {"dtype": "F64", "shape": [1], "data_offsets": [0, 8]},
     "f16": {"dtype": "F16", "shape": [1], "data_offsets": [8, 10]},
     "e4m3": {"dtype": "F8_E4M3", "shape": [2, 1], "data_offsets": [10, 12]},
     "e8m0": {"dtype": "F8_E8M0", "shape": [1, 1, 1], "data_offsets": [12, 13]},
     "i8": {"dtype": "I8", "shape": [1], "data_offsets": [13, 14]},
     "u8": {"dtype": "U8", "shape": [1], "data_offsets": [14, 15]},
     "bool": {"dtype": "BOOL", "shape": [1], "data_offsets": [15, 16]},
     "i16": {"dtype": "I16", "shape": [1], "data_offsets": [16, 18]},
     "i32": {"dtype": "I32", "shape": [1], "data_offsets": [20, 24]},
     "i64": {"dtype": "I64", "shape": [], "data_offsets": [24, 32]}}, bytes(32)))
put("fuzz_safetensors", "empty_header", st("{}"))
put("fuzz_safetensors", "padded", st({"w": {"dtype": "U8", "shape": [0], "data_offsets": [0, 0]}}, b"", b"   \0\0"))
put("fuzz_safetensors", "zero_dim_huge", st('{"w":{"dtype":"F64","shape":[0,4294967296,4294967296],'
                                            '"data_offsets":[0,0]}}'))
# issue 8 finding (b): 2^61 + 2 F64 elements wrap the byte count to 16
put("fuzz_safetensors", "regress_bytes_wrap", st('{"w":{"dtype":"F64","shape":[2,1048577,1099510579201],'
                                                 '"data_offsets":[0,16]}}', bytes(16)))

# ---------------------------------------------------------------- sharded directory (index JSON [NUL shard])
put("fuzz_st_index", "two_shards", json.dumps(
    {"metadata": {"total_size": 19}, "weight_map": {"x": "a.safetensors", "y": "a.safetensors", "z": "b.safetensors"}}))
put("fuzz_st_index", "one_shard", json.dumps({"weight_map": {"z": "b.safetensors"}}))
put("fuzz_st_index", "third_shard", json.dumps({"weight_map": {"w": "c.safetensors", "x": "a.safetensors"}}).encode()
    + b"\0" + st({"w": {"dtype": "I32", "shape": [2], "data_offsets": [0, 8]}}, bytes(8)))
put("fuzz_st_index", "wrong_shard", json.dumps({"weight_map": {"x": "b.safetensors"}}))

# ---------------------------------------------------------------- config.json
with open("models/nano/config.json", "rb") as f:
    put("fuzz_config", "nano", f.read())
mini = {"vocab_size": 300, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "head_dim": 32,
        "qk_rope_head_dim": 8, "q_lora_rank": 32, "o_groups": 1, "o_lora_rank": 16, "moe_intermediate_size": 32,
        "n_routed_experts": 4, "n_shared_experts": 0, "num_experts_per_tok": 2, "sliding_window": 8,
        "rope_theta": 10000, "max_position_embeddings": 512, "compress_ratios": [0, 16]}
put("fuzz_config", "mini", json.dumps(mini))
csa = dict(mini, num_hidden_layers=3, num_nextn_predict_layers=1, compress_ratios=[4, 128, 0, 4], index_n_heads=2,
           index_head_dim=16, index_topk=4, num_hash_layers=1, expert_dtype="fp8", hc_mult=2,
           rope_scaling={"type": "yarn", "factor": 4, "original_max_position_embeddings": 256, "beta_fast": 32,
                         "beta_slow": 1})
put("fuzz_config", "csa_mtp_fp8", json.dumps(csa))
# issue 8 finding (a): 255 layers x 65,536 routed experts (100 M tensors) must be summarised without a list
huge = dict(mini, num_hidden_layers=255, n_routed_experts=65536, compress_ratios=[0] * 255)
put("fuzz_config", "regress_huge_experts", json.dumps(huge))

# ---------------------------------------------------------------- tokenizer (byte 0: 0 encode, 1 decode)
texts = {
    "english": "ROMEO:\nTo be, or not to be, that is the question.\n\n  Whether 'tis nobler...",
    "numbers": "In 2024, 1234567 apples cost $3.14159 each; 0x1F or 1e-9?",
    "cjk": "你好，世界！こんにちは、カタカナ。한국어",
    "code": "int main(void) {\n\treturn x->y[3] >= 0 && !z; // done\r\n}",
    "specials": "<｜begin▁of▁sentence｜>hi<｜end▁of▁sentence｜><｜end▁of▁sentence｜>x",
    "emoji_marks": "e\u0301 a\u0300 \U0001F600\U0001F3FD \u00a0\u2003tab\tend   ",
    "spaces": "   \n\n\n  \t \r\n a  b   c",
}
for k, v in texts.items():
    put("fuzz_tokenizer", "enc_" + k, b"\0" + v.encode("utf-8"))
for k, v in {"invalid_ff": b"a\xffb", "overlong": b"\xc0\xaf", "surrogate": b"\xed\xa0\x80",
             "truncated": b"ok \xe4\xb8", "nul": b"a\0b"}.items():
    put("fuzz_tokenizer", "enc_" + k, b"\0" + v)
put("fuzz_tokenizer", "dec_ids", b"\x01" + b"".join(struct.pack("<I", i)[:3] for i in [4, 5, 300, 1000, 1027, 2, 0]))
put("fuzz_tokenizer", "dec_high_ids", b"\x01" + b"\xff\xff\xff" * 4 + b"\x00\x01\x00" * 3)

# ---------------------------------------------------------------- output parser (byte 0 mode, byte 1 split seed)
EOS = "<｜end▁of▁sentence｜>"
D = "｜DSML｜"


def call(name, params):
    s = "<%sinvoke name=\"%s\">\n" % (D, name)
    s += "\n".join("<%sparameter name=\"%s\" string=\"%s\">%s</%sparameter>" % (D, k, "true" if st_ else "false", v, D)
                   for k, v, st_ in params)
    return s + "\n</%sinvoke>\n" % D


def block(*calls):
    return "\n\n<%stool_calls>\n" % D + "".join(calls) + "</%stool_calls>" % D


parse = {
    "chat": (0, "Hello there." + EOS),
    "thinking": (1, "Let me see: 2+2.</think>It is 4." + EOS),
    "thinking_tool": (1, "need weather</think>" + block(call("get_weather", [("location", "Beijing", True)])) + EOS),
    "two_calls": (0, "ok" + block(call("f", [("a", "1", False), ("b", "x \"q\" \\ y", True)]),
                                  call("g", [("list", "[1, 2, {\"k\": null}]", False)]))),
    "bad_json": (0, block(call("f", [("a", "{not json", False)])) + EOS),
    "malformed": (0, "before" + "\n\n<%stool_calls>\n<%sinvoke nam=\"f\">\n</%stool_calls>" % (D, D, D) + EOS),
    "cut": (1, "r</think>c" + "\n\n<%stool_calls>\n<%sinvoke name=\"f\">\n" % (D, D)),
    "no_think_end": (1, "still thinking <think> and " + EOS + " after eos"),
    "utf8_split": (0, "\u4f60\u597d \U0001F600 \xff" + EOS),
}
for k, (mode, text) in parse.items():
    put("fuzz_parse", k, bytes([mode, len(k)]) + text.encode("utf-8", "surrogatepass"))
# fuzzing finding: a NUL byte in a string="false" value (valid_json must look at all arguments_len bytes)
put("fuzz_parse", "regress_nul_args", bytes([0, 9]) + (block(call("g", [("a", "1}\0x", False)])) + EOS).encode())
put("fuzz_parse", "invalid_bytes", b"\x00\x07a\xff\xfe<\xef\xbd\x9c" + EOS.encode()[:5])


# DeepSeek-V4.1 output (mode bit 1; docs/encoding.md §10.4): the tags with a space, block " calls"
def v41(text):
    return text.replace(D + "tool_calls", D + " calls").replace(D + "invoke", D + " invoke").replace(
        D + "parameter", D + " parameter")


for k in ("thinking_tool", "two_calls", "bad_json", "malformed", "cut"):
    mode, text = parse[k]
    put("fuzz_parse", "v41_" + k, bytes([mode | 2, len(k)]) + v41(text).encode("utf-8"))
# a V4-spelled block in V4.1 mode (content) and the reverse
put("fuzz_parse", "v41_v4_block", bytes([3, 5]) + parse["thinking_tool"][1].encode("utf-8"))
put("fuzz_parse", "v4_v41_block", bytes([1, 5]) + v41(parse["thinking_tool"][1]).encode("utf-8"))

# ---------------------------------------------------------------- prompt renderer (byte 0 options, JSON)
def msgs(m):
    return json.dumps(m, ensure_ascii=False)


tool = {"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
                                         "parameters": {"type": "object", "properties": {
                                             "location": {"type": "string"}}, "required": ["location"]}}}
tc = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\": \"Paris\"}"}}
render = {
    "user": (0, [{"role": "user", "content": "hi"}]),
    "system_user": (1, [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]),
    "tool_round": (1 | 8, [{"role": "user", "content": "weather?"},
                           {"role": "assistant", "content": "", "reasoning_content": "call it", "tool_calls": [tc]},
                           {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
                           {"role": "assistant", "content": "Sunny.", "reasoning_content": "done"},
                           {"role": "user", "content": "thanks"}]),
    "effort_max": (1 | 4, [{"role": "developer", "content": "dev note"}, {"role": "user", "content": "x"}]),
    "no_bos": (16, [{"role": "user", "content": "a\u0000b \U0001F600"}]),
    "reminder": (0, [{"role": "user", "content": "q"}, {"role": "latest_reminder", "content": "today is Monday"}]),
}
for k, (o, m) in render.items():
    put("fuzz_render", k, bytes([o]) + msgs(m).encode())
# JSON escapes: a surrogate pair (valid) and a lone surrogate (refused when it reaches the output)
put("fuzz_render", "escapes", b'\x00[{"role":"user","content":"a\\u0000b \\ud83d\\ude00 \\ud800"}]')
# fuzzing finding: an unknown role holding control characters (the error must stay one line)
put("fuzz_render", "regress_role_newline", b'\x00[{"role":"A\\n\\tz\\u0001","content":"x"}]')
put("fuzz_render", "object_tools", b"\x01" + json.dumps(
    {"messages": [{"role": "user", "content": "weather in Paris?"}], "tools": [tool],
     "response_format": {"type": "json_object"}}).encode())
put("fuzz_render", "tool_content_parts", b"\x00" + msgs(
    [{"role": "user", "content": "u"}, {"role": "assistant", "content": None, "tool_calls": [tc]},
     {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "part"}]},
     {"role": "tool", "tool_call_id": "call_1", "content": {"k": [1, 2.5, True, None]}}]).encode())
# DeepSeek-V4.1 format (bit 6; with bits 1-2 = 3 the next byte is the effort_level: byte % 102 - 1)
put("fuzz_render", "v41_tool_round", bytes([1 | 8 | 64]) + msgs(render["tool_round"][1]).encode())
put("fuzz_render", "v41_mid_system_effort", bytes([1 | 6 | 64, 34]) + msgs(
    [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1", "reasoning_content": "r1"},
     {"role": "system", "content": "new rule", "tools": [tool]}, {"role": "assistant", "content": "a2"}]).encode())
put("fuzz_render", "context", bytes([1 | 32]) + msgs([{"role": "user", "content": "first"},
                                                      {"role": "assistant", "content": "ok",
                                                       "reasoning_content": "hm"}]).encode()
    + b"\0" + msgs([{"role": "user", "content": "second"}]).encode())

# ---------------------------------------------------------------- server request bodies
server = {
    "chat": {"model": "dsv4", "messages": [{"role": "user", "content": "hi"}]},
    "settings": {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "x"}],
                 "temperature": 0.7, "top_p": 0.9, "top_k": 40, "seed": 42, "max_tokens": 16, "n": 1,
                 "stop": ["\n\n", "END"], "reasoning_effort": "max", "stream": True,
                 "stream_options": {"include_usage": True}},
    "tools": {"messages": [{"role": "user", "content": "weather?"},
                           {"role": "assistant", "content": None, "tool_calls": [dict(tc, function={
                               "name": "get_weather", "arguments": {"location": "Paris"}})]},
                           {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "sunny"}]}],
              "tools": [tool], "tool_choice": "auto", "thinking": {"type": "disabled"}},
    "developer_parts": {"messages": [{"role": "developer", "content": [{"type": "input_text", "text": "a"}, "b"]},
                                     {"role": "user", "content": "c"}], "reasoning_effort": "none", "stop": "x"},
}
for k, v in server.items():
    put("fuzz_server_request", k, json.dumps(v))
put("fuzz_server_request", "bad_seed", '{"messages": [], "seed": 1e300, "top_k": -1}')
# fuzzing finding: an integer field far outside the range of long long (was cast: undefined behaviour)
put("fuzz_server_request", "regress_seed_1e300", '{"messages": [{"role": "user", "content": "x"}], "seed": 1e300}')

# ---------------------------------------------------------------- tokenizer.json files
with open("models/nano/tokenizer.json", "rb") as f:
    put("fuzz_tokenizer_load", "nano", f.read())


def byte_symbols():
    """The byte-level BPE alphabet: printable Latin-1 bytes map to themselves, the rest to U+0100 upwards."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    sym, n = {}, 0
    for b in range(256):
        if b in keep:
            sym[b] = chr(b)
        else:
            sym[b] = chr(256 + n)
            n += 1
    return [sym[b] for b in range(256)]


syms = byte_symbols()
vocab = {s: i for i, s in enumerate(syms)}
vocab.update({"\u0120t": 256, "he": 257, "\u0120the": 258})
added = [{"id": 259 + i, "content": c, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
          "special": True} for i, c in enumerate(["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"])]
tiny = {"version": "1.0", "added_tokens": added, "normalizer": {"type": "Sequence", "normalizers": []},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": "\\p{N}{1,3}"}, "behavior": "Isolated", "invert": False},
            {"type": "Split", "pattern": {"Regex": " ?\\p{L}+|\\s+|[^\\s\\p{L}]+"}, "behavior": "Isolated",
             "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "decoder": {"type": "ByteLevel"},
        "model": {"type": "BPE", "vocab": vocab, "merges": ["\u0120 t", "h e", "\u0120t he"]}}
put("fuzz_tokenizer_load", "tiny", json.dumps(tiny, ensure_ascii=False))
