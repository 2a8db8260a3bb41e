"""Minimal safetensors reader/writer and the official DeepSeek-V4 checkpoint layout (docs/architecture.md §2.1-§2.3).

File format (https://github.com/huggingface/safetensors): u64 little-endian header length N, N bytes of
JSON {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}, then raw
little-endian tensor bytes. We pad the header with spaces to a multiple of 8 bytes.

Public functions
- write_safetensors(path, {name: (dtype_str, shape, bytes)}, metadata=None)
- read_safetensors(path) -> {name: (dtype_str, shape, bytes)}
- read_raw_dir(dir) -> same, over model.safetensors or all shards of model.safetensors.index.json
- to_raw(name, dtype_str, tensor) / raw_to_tensor(dtype_str, shape, bytes) helpers
- tensor_format(name) -> "fp8" | "fp4" | "bf16" | "f32" | "i64"  (official dtype of a float weight name)
- save_checkpoint(float_state_dict, cfg, dir, shards=1): quantize to the official layout + config.json
- load_checkpoint(dir) -> {name: torch tensor}: float weights dequantized to float32 (no `.scale` entries),
  tid2eid as int64. This is exactly what the engine computes with.

Quantization at export
- FP8 E4M3 weights (wq_a, wq_b, wkv, wo_a, wo_b, indexer.wq_b, shared experts, e_proj, h_proj): per 128x128
  tile scale = 2^ceil(log2(amax/448)) stored as F8_E8M0 [ceil(out/128), ceil(in/128)], values RNE to E4M3.
  wo_a is stored FP8 like the HF checkpoint; the reference dequantizes it at load (as convert.py does).
- Routed experts: packed FP4 as I8 [out, in/2] (element 2k = low nibble, 2k+1 = high nibble), F8_E8M0
  scale [out, in/32] = 2^ceil(log2(amax/6)) per 32 inputs, codes RNE to E2M1.
- BF16: norms, embed, head, compressor wkv/wgate, gate.weight, weights_proj (RNE from float32).
- F32: hc_*, attn_sink, ape, gate.bias. I64: tid2eid.
"""
import json
import os
import re
import struct

import numpy as np
import torch

from numerics import (round_bf16, e4m3_encode, e4m3_decode, e8m0_encode_pow2, e8m0_decode, e2m1_encode,
                      e2m1_decode, fp8_weight_quant, fp4_weight_quant)

DTYPE_SIZE = {"BF16": 2, "F16": 2, "F32": 4, "F64": 8, "F8_E4M3": 1, "F8_E8M0": 1, "I8": 1, "U8": 1,
              "I16": 2, "I32": 4, "I64": 8, "BOOL": 1}

_FP8_RE = re.compile(r"(^|\.)(attn\.(wq_a|wq_b|wkv|wo_a|wo_b)|indexer\.wq_b|shared_experts\.w[123]|e_proj|h_proj)\.weight$")
_FP4_RE = re.compile(r"(^|\.)ffn\.experts\.\d+\.w[123]\.weight$")
_F32_RE = re.compile(r"(^|\.)(hc_[a-z_]+|attn_sink|ape|gate\.bias)$")


def tensor_format(name: str) -> str:
    """Official storage format of a (float) tensor name, docs/architecture.md §2.1."""
    if name.endswith("tid2eid"):
        return "i64"
    if _FP8_RE.search(name):
        return "fp8"
    if _FP4_RE.search(name):
        return "fp4"
    if _F32_RE.search(name):
        return "f32"
    return "bf16"


# ----------------------------------------------------------------------------- raw file level
def write_safetensors(path, tensors, metadata=None):
    """tensors: {name: (dtype_str, shape list, bytes)}; written in sorted name order."""
    header = {}
    off = 0
    names = sorted(tensors)
    for n in names:
        dt, shape, data = tensors[n]
        numel = 1
        for s in shape:
            numel *= s
        assert len(data) == numel * DTYPE_SIZE[dt], (n, dt, shape, len(data))
        header[n] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(data)]}
        off += len(data)
    header["__metadata__"] = metadata or {"format": "pt"}
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * ((8 - len(hb) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for n in names:
            f.write(tensors[n][2])


def read_safetensors(path):
    with open(path, "rb") as f:
        buf = f.read()
    (hl,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + hl])
    base = 8 + hl
    out = {}
    for n, e in header.items():
        if n == "__metadata__":
            continue
        b0, b1 = e["data_offsets"]
        out[n] = (e["dtype"], list(e["shape"]), buf[base + b0: base + b1])
    return out


def read_raw_dir(d):
    idx = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(idx):
        with open(idx) as f:
            wm = json.load(f)["weight_map"]
        out = {}
        for shard in sorted(set(wm.values())):
            out.update(read_safetensors(os.path.join(d, shard)))
        assert set(out) == set(wm), "index weight_map does not match the shards"
        return out
    return read_safetensors(os.path.join(d, "model.safetensors"))


def raw_to_tensor(dt, shape, data):
    """Bytes -> torch tensor holding the raw stored values (BF16 -> float32 values, F8 -> uint8 bytes)."""
    if dt == "BF16":
        a = np.frombuffer(data, dtype="<u2").astype(np.uint32) << 16
        return torch.from_numpy(a.view(np.float32).copy()).reshape(shape)
    npdt = {"F32": "<f4", "F64": "<f8", "F8_E4M3": "u1", "F8_E8M0": "u1", "I8": "i1", "U8": "u1",
            "I32": "<i4", "I64": "<i8", "I16": "<i2"}[dt]
    return torch.from_numpy(np.frombuffer(data, dtype=npdt).copy()).reshape(shape)


def _bf16_bytes(t):
    a = round_bf16(t.detach().to(torch.float32)).contiguous().numpy().view(np.uint32)
    return (a >> 16).astype("<u2").tobytes()


def to_raw(name, t):
    """One float (or int) tensor -> list of (name, dtype, shape, bytes) in the official format."""
    fmt = tensor_format(name)
    t = t.detach().cpu()
    shape = list(t.shape)
    if fmt == "i64":
        return [(name, "I64", shape, t.to(torch.int64).numpy().astype("<i8").tobytes())]
    if fmt == "f32":
        return [(name, "F32", shape, t.to(torch.float32).numpy().astype("<f4").tobytes())]
    if fmt == "bf16":
        return [(name, "BF16", shape, _bf16_bytes(t))]
    sname = name[: -len("weight")] + "scale"
    if fmt == "fp8":
        q, s = fp8_weight_quant(t.to(torch.float64))
        return [(name, "F8_E4M3", shape, e4m3_encode(q).numpy().tobytes()),
                (sname, "F8_E8M0", list(s.shape), e8m0_encode_pow2(s).numpy().tobytes())]
    # fp4
    q, s = fp4_weight_quant(t.to(torch.float64))
    codes = e2m1_encode(q)
    packed = (codes[:, 0::2] | (codes[:, 1::2] << 4)).to(torch.uint8).numpy().view(np.int8)
    return [(name, "I8", [shape[0], shape[1] // 2], packed.tobytes()),
            (sname, "F8_E8M0", list(s.shape), e8m0_encode_pow2(s).numpy().tobytes())]


# ----------------------------------------------------------------------------- checkpoint level
def save_checkpoint(state_dict, cfg, d, shards=1):
    """Export float weights (names = checkpoint names, no .scale) in the official layout + config.json.
    shards > 1 writes model-0000i-of-0000N.safetensors + model.safetensors.index.json (a weight and its
    scale stay in the same shard)."""
    os.makedirs(d, exist_ok=True)
    groups = []   # list of lists of raw entries (weight + scale together)
    for name in sorted(state_dict):
        groups.append(to_raw(name, state_dict[name]))
    for f in os.listdir(d):
        if f.endswith(".safetensors") or f == "model.safetensors.index.json":
            os.remove(os.path.join(d, f))
    if shards <= 1:
        write_safetensors(os.path.join(d, "model.safetensors"),
                          {n: (dt, sh, b) for g in groups for (n, dt, sh, b) in g})
    else:
        total = sum(len(b) for g in groups for (_, _, _, b) in g)
        target = total / shards
        parts = [[] for _ in range(shards)]
        acc, k = 0, 0
        for g in groups:
            sz = sum(len(b) for (_, _, _, b) in g)
            if acc >= target * (k + 1) and k < shards - 1:
                k += 1
            parts[k].append(g)
            acc += sz
        wm = {}
        for i, p in enumerate(parts):
            fn = "model-%05d-of-%05d.safetensors" % (i + 1, shards)
            ents = {n: (dt, sh, b) for g in p for (n, dt, sh, b) in g}
            write_safetensors(os.path.join(d, fn), ents)
            for n in ents:
                wm[n] = fn
        with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(wm.items()))}, f, indent=1)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg.to_hf_dict(), f, indent=2)


def load_checkpoint(d):
    """Read a checkpoint directory; return {name: tensor} with float weights dequantized to float32
    (FP8: e4m3 * 2^(s-127) per 128x128 tile; FP4: e2m1 * 2^(s-127) per 1x32), `.scale` entries consumed,
    tid2eid int64."""
    raw = read_raw_dir(d)
    out = {}
    for name, (dt, shape, data) in raw.items():
        if name.endswith(".scale"):
            continue
        if dt in ("BF16", "F32", "F64"):
            out[name] = raw_to_tensor(dt, shape, data).to(torch.float32)
        elif dt in ("I64", "I32"):
            out[name] = raw_to_tensor(dt, shape, data).to(torch.int64)
        elif dt == "F8_E4M3":
            sdt, sshape, sdata = raw[name[: -len("weight")] + "scale"]
            assert sdt == "F8_E8M0", name
            q = e4m3_decode(raw_to_tensor(dt, shape, data), torch.float64)
            s = e8m0_decode(raw_to_tensor(sdt, sshape, sdata), torch.float64)
            se = s.repeat_interleave(128, 0)[: shape[0]].repeat_interleave(128, 1)[:, : shape[1]]
            out[name] = (q * se).to(torch.float32)
        elif dt == "I8":
            sdt, sshape, sdata = raw[name[: -len("weight")] + "scale"]
            b = raw_to_tensor(dt, shape, data).to(torch.int64) & 0xFF
            codes = torch.stack([b & 0xF, b >> 4], dim=-1).reshape(shape[0], shape[1] * 2)
            q = e2m1_decode(codes, torch.float64)
            s = e8m0_decode(raw_to_tensor(sdt, sshape, sdata), torch.float64)
            out[name] = (q * s.repeat_interleave(32, 1)).to(torch.float32)
        else:
            raise ValueError("%s: unsupported dtype %s" % (name, dt))
    return out
