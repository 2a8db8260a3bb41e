#!/usr/bin/python3
"""Check dsv4's Engram against DeepSeek's official V4.1 code (docs/v41-implementation.md "Agreement").

Runs, on CPU with torch 1.13, DeepSeek's `inference/engram.py` (imported unchanged) and the Engram classes of its
`inference/model.py` (`linear`, `Linear`, `ParallelEngramEmbedding`, `Engram` and the module constants, taken out of
the file with `ast` and executed with plain-torch stand-ins for the two tilelang kernels they call), then compares:

  1. `build_compressed_token_map` on build/v4-tokenizer.json with dsv4's map (src/model/engram.c), id for id;
  2. `NgramHashState` (prefill, and prefill 5 + one-token decode steps) with tests/golden/v41/engram's indices;
  3. `Engram.forward` with tests/golden/v41/engram's outputs (which tests/test_engram.c checks the C code against).

No DeepSeek code is in this repository: pass the directory holding the upstream files (engram.py, model.py) as
--official-dir or $DSV4_OFFICIAL_V41_DIR. torch 1.13 has no float8 / float4 dtypes: they are aliased (E4M3 ->
float16, which holds every E4M3 value exactly; E8M0 -> float64; float4_e2m1fn_x2 -> complex128, unused here) so the
official `linear()` dispatch is untouched. The Rust `tokenizers` package (not installable here) is replaced by
plain-Python normalizers with its semantics (NFKC / NFD via unicodedata, StripAccents = drop General_Category M*,
per-character lowercase, regex Replace, Strip of Unicode White_Space).

usage: v41_engram.py [--official-dir DIR] [--c-map MAP.bin]
  MAP.bin: dsv4's map as raw int32 (any C program calling dsv4_engram_token_map); without it step 1 compares with
  tools/reference/engram_token_map.py's independent build.
"""
import argparse
import ast
import json
import os
import re
import struct
import sys
import types
import unicodedata

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(HERE, ".."))
from numerics import e4m3_decode, e8m0_decode  # noqa: E402

torch.float8_e4m3fn = torch.float16
torch.float8_e8m0fnu = torch.float64
torch.float4_e2m1fn_x2 = torch.complex128

# ------------------------------------------------------------------ stand-ins for the tilelang kernels
_INV448 = torch.tensor(1.0 / 448.0, dtype=torch.float32)


def _pow2_ceil(amax):
    x = (amax.float() * _INV448).contiguous()
    bits = x.view(torch.int32)
    e = ((bits >> 23) & 0xFF) - 127 + ((bits & 0x7FFFFF) != 0).to(torch.int32)
    return torch.ldexp(torch.ones_like(x), e.float())


def _round_e4m3(v):
    v = v.clamp(-448.0, 448.0)
    a = v.abs()
    _, e = torch.frexp(a)
    ulp = torch.ldexp(torch.ones_like(a), (torch.clamp(e - 1, min=-6) - 3).float())
    return torch.copysign(torch.round(a / ulp) * ulp, v)


def act_quant(x, block_size=128, scale_fmt=None, scale_dtype=torch.float32, inplace=False):
    """Per block: amax floored at 1e-4, scale 2^ceil(log2(amax * fp32(1/448))), E4M3 RNE saturating."""
    xg = x.float().unflatten(-1, (-1, block_size))
    s = _pow2_ceil(xg.abs().amax(-1).clamp_min(1e-4))
    q = _round_e4m3(xg / s.unsqueeze(-1))
    if inplace:
        x.copy_((q * s.unsqueeze(-1)).flatten(-2).to(x.dtype))
        return x
    return q.flatten(-2).to(torch.float8_e4m3fn), s.to(scale_dtype)


def fp8_gemm(a, a_s, b, b_s, scale_dtype=torch.float32, block_size=128):
    """Each K block summed in F32, times a_scale * b_scale, accumulated in K order; default-dtype output."""
    K = a.size(-1)
    M, N = a.numel() // K, b.size(0)
    A, As = a.reshape(M, K).float(), a_s.reshape(M, -1).float()
    B, Bs = b.float(), b_s.float().repeat_interleave(block_size, 0)[:N]
    acc = torch.zeros(M, N, dtype=torch.float32)
    for k in range(K // block_size):
        sl = slice(k * block_size, (k + 1) * block_size)
        acc += (A[:, sl] @ B[:, sl].T) * As[:, k:k + 1] * Bs[:, k].unsqueeze(0)
    return acc.to(torch.get_default_dtype()).view(*a.shape[:-1], N)


def _unused(*_a, **_k):
    raise NotImplementedError("not needed by the Engram path")


# ------------------------------------------------------------------ stand-in for the Rust tokenizers normalizers
_WS = set(chr(c) for c in list(range(0x09, 0x0E)) + [0x20, 0x85, 0xA0, 0x1680] + list(range(0x2000, 0x200B))
          + [0x2028, 0x2029, 0x202F, 0x205F, 0x3000])


def _tokenizers_module():
    m = types.ModuleType("tokenizers")

    class Regex:
        def __init__(self, p):
            self.p = p

    class _N:
        def __init__(self, f):
            self.f = f

        def normalize_str(self, s):
            return self.f(s)

    def strip(s):
        i, j = 0, len(s)
        while i < j and s[i] in _WS:
            i += 1
        while j > i and s[j - 1] in _WS:
            j -= 1
        return s[i:j]

    def replace(pat, content):
        if isinstance(pat, Regex):
            return _N(lambda s: re.sub(pat.p, content, s))
        return _N(lambda s: s.replace(pat, content))

    def sequence(steps):
        def run(s):
            for st in steps:
                s = st.normalize_str(s)
            return s
        return _N(run)

    norm = types.SimpleNamespace(
        NFKC=lambda: _N(lambda s: unicodedata.normalize("NFKC", s)),
        NFD=lambda: _N(lambda s: unicodedata.normalize("NFD", s)),
        StripAccents=lambda: _N(lambda s: "".join(c for c in s if not unicodedata.category(c).startswith("M"))),
        Lowercase=lambda: _N(lambda s: "".join(c.lower() for c in s)),
        Strip=lambda: _N(strip), Replace=replace, Sequence=sequence)
    m.Regex, m.normalizers = Regex, norm
    return m


class JsonTokenizer:
    """len(), backend_tokenizer.decode([id], skip_special_tokens=False) and id_to_token of a byte-level BPE
    tokenizer.json (added tokens decode to their content)."""

    def __init__(self, path):
        tj = json.load(open(path, encoding="utf-8"))
        self.vocab = {i: t for t, i in tj["model"]["vocab"].items()}
        self.added = {a["id"]: a["content"] for a in tj.get("added_tokens", [])}
        self.n = max(list(self.vocab) + list(self.added)) + 1
        printable = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
        cps, k = {}, 0
        for b in range(256):
            cps[b] = b if b in printable else 256 + k
            k += b not in printable
        self.dec = {chr(cp): b for b, cp in cps.items()}
        self.backend_tokenizer = self

    def __len__(self):
        return self.n

    def id_to_token(self, i):
        return self.added.get(i, self.vocab.get(i))

    def decode(self, ids, skip_special_tokens=False):
        i = ids[0]
        if i in self.added:
            return self.added[i]
        return bytes(self.dec[c] for c in self.vocab.get(i, "")).decode("utf-8", errors="replace")


class IdentityTokenizer:
    """n ids whose texts all differ: the compressed map is the identity (the golden feeds compressed ids)."""

    def __init__(self, n):
        self.n, self.backend_tokenizer = n, self

    def __len__(self):
        return self.n

    def decode(self, ids, skip_special_tokens=False):
        return f"tok{ids[0]}"

    def id_to_token(self, i):
        return f"tok{i}"


def load_official(d):
    sys.modules["tokenizers"] = _tokenizers_module()
    sys.path.insert(0, d)
    import engram as official_engram  # upstream inference/engram.py, unchanged
    src = open(os.path.join(d, "model.py"), encoding="utf-8").read()
    tree = ast.parse(src)
    want = {"linear", "Linear", "ParallelEngramEmbedding", "Engram"}
    consts = {"world_size", "rank", "default_dtype", "fp8_block_size", "fp4_block_size", "scale_fmt", "scale_dtype"}
    body = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in want:
            body.append(node)
        elif isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) and t.id in consts for t in node.targets):
            body.append(node)
    missing = want - {n.name for n in body if hasattr(n, "name")}
    if missing:
        raise SystemExit(f"{d}/model.py: no definition of {sorted(missing)}")
    ns = dict(torch=torch, F=F, nn=nn, act_quant=act_quant, fp8_gemm=fp8_gemm, fp4_gemm=_unused,
              fp4_act_quant=_unused, EngramLayout=official_engram.EngramLayout, math=__import__("math"))
    exec(compile(ast.Module(body=body, type_ignores=[]), os.path.join(d, "model.py"), "exec"), ns)
    return official_engram, types.SimpleNamespace(**ns)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--official-dir", default=os.environ.get("DSV4_OFFICIAL_V41_DIR", "/tmp/official_v41"))
    ap.add_argument("--c-map")
    args = ap.parse_args()
    eng_mod, model = load_official(args.official_dir)
    ok = True

    # 1. token map
    lookup, n = eng_mod.build_compressed_token_map(JsonTokenizer(os.path.join(REPO, "build/v4-tokenizer.json")))
    if args.c_map:
        data = open(args.c_map, "rb").read()
        other = list(struct.unpack(f"<{len(data) // 4}i", data))
        what = args.c_map
    else:
        sys.path.insert(0, os.path.join(HERE, ".."))
        import engram_token_map
        other, _ = engram_token_map.build(os.path.join(REPO, "build/v4-tokenizer.json"))
        what = "tools/reference/engram_token_map.py"
    nd = sum(1 for a, b in zip(lookup, other) if a != b) + abs(len(lookup) - len(other))
    print(f"official token map of build/v4-tokenizer.json: {len(lookup)} ids -> {n} compressed, map[2] = {lookup[2]}; "
          f"differs from {what} at {nd} ids")
    ok &= nd == 0 and n == 99092

    # 2. hash, 3. Engram on the golden case
    G = os.path.join(REPO, "tests/golden/v41/engram")
    g = json.load(open(os.path.join(G, "golden.json")))
    cfg = g["config"]
    a = types.SimpleNamespace(
        engram_layer_ids=cfg["layer_ids"], engram_num_embeddings=[ly["rows"] for ly in g["layers"]],
        engram_max_ngram_size=cfg["max_ngram"], engram_vocab_size=cfg["vocab_size"], engram_n_heads=cfg["n_heads"],
        engram_head_dim=cfg["head_dim"], engram_pad_id=cfg["pad_id"], engram_compressed_vocab_size=cfg["compressed_vocab"],
        max_batch_size=1, max_seq_len=64, dim=cfg["dim"], hc_mult=cfg["hc"], norm_eps=cfg["eps"])
    layout = eng_mod.EngramLayout.from_args(a)
    cids = g["cids"]
    ids = torch.tensor([[c if c >= 0 else 7 for c in cids]])
    mask = torch.tensor([[c >= 0 for c in cids]])
    h_all = eng_mod.NgramHashState(a, layout, IdentityTokenizer(cfg["compressed_vocab"]))(ids, 0, mask)
    hs = eng_mod.NgramHashState(a, layout, IdentityTokenizer(cfg["compressed_vocab"]))
    h_split = torch.cat([hs(ids[:, :5], 0, mask[:, :5])] +
                        [hs(ids[:, p:p + 1], p, mask[:, p:p + 1]) for p in range(5, ids.shape[1])], 1)
    buf = open(os.path.join(G, "model.safetensors"), "rb").read()
    hl = struct.unpack("<Q", buf[:8])[0]
    hdr = json.loads(buf[8:8 + hl])

    def u8(k):
        b0, b1 = hdr[k]["data_offsets"]
        return torch.from_numpy(np.frombuffer(buf[8 + hl + b0:8 + hl + b1], dtype=np.uint8).copy()).reshape(hdr[k]["shape"])

    def bf16_raw(raw, shape):
        a16 = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return torch.from_numpy(a16.view(np.float32).copy()).reshape(shape)

    def bf16(k):
        b0, b1 = hdr[k]["data_offsets"]
        return bf16_raw(buf[8 + hl + b0:8 + hl + b1], hdr[k]["shape"]).to(torch.bfloat16)

    n_tok, hc, D = g["n_tokens"], cfg["hc"], cfg["dim"]
    x = bf16_raw(open(os.path.join(G, "x_in.bf16"), "rb").read(), (1, n_tok, hc, D)).to(torch.bfloat16)
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)   # as generate.py runs the model
    try:
        for l, ly in enumerate(g["layers"]):
            want_idx = torch.tensor(ly["idx"])
            same_h = torch.equal(h_all[0, :, l], want_idx) and torch.equal(h_split[0, :, l], want_idx)
            L, p = ly["layer"], f"layers.{ly['layer']}.engram."
            e = model.Engram(a, L, layout)
            with torch.no_grad():
                e.embed.weight.copy_(e4m3_decode(u8(p + "embed.weight")).to(torch.float16))
                e.embed.scale.copy_(e8m0_decode(u8(p + "embed.scale"), torch.float64))
                e.wkv.weight.copy_(e4m3_decode(u8(p + "wkv.weight")).to(torch.float16))
                e.wkv.scale.copy_(e8m0_decode(u8(p + "wkv.scale"), torch.float64))
                e.q_weight.copy_(bf16(p + "q_weight"))
                e.k_weight.copy_(bf16(p + "k_weight"))
                out = e(x, h_all[:, :, l], mask).float()
            want = bf16_raw(open(os.path.join(G, ly["out"]), "rb").read(), (1, n_tok, hc, D))
            d = (out - want).abs()
            print(f"layer {L}: official hash == golden (prefill, and prefill 5 + decode): {same_h}; official Engram "
                  f"output vs golden: {int((d == 0).sum())} of {d.numel()} values identical, max |diff| {float(d.max()):g}")
            ok &= same_h and bool((d == 0).all())
    finally:
        torch.set_default_dtype(prev)
    print("agreement:", "exact" if ok else "NOT exact")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
