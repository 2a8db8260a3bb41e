"""Run DeepSeek's official V4 `inference/model.py` on CPU (torch 1.13) against a tiny checkpoint
in the official HF layout (tests/golden/<case>/), as an independent oracle for tools/reference.

The official code is NOT in this repository.  It is read at run time from (first hit wins):
  1. --official-dir / $DSV4_OFFICIAL_DIR   (a directory holding DeepSeek's model.py)
  2. /tmp/official/init/model.py
  3. git show 0825add:inference/model.py in the git directory $DSV4_OFFICIAL_GIT, a clone of
     https://github.com/Mockingjay1316/deepseek-v4-flash-spark (a mirror of DeepSeek-V4-Flash; commit 0825add is
     the initial revision of the release)
and patched in memory to the CURRENT revision (docs/architecture.md §6.1): the shared expert gets swiglu_limit.
The other current-revision change (act_quant in-place rounds to E4M3) lives in stand_ins.act_quant.
Kernels come from stand_ins.py (plain torch, written from the official kernel semantics).

Public functions
- load_official_module(official_dir=None, revision="current") -> module (DeepSeek's model.py)
- args_from_hf_config(mod, cfg, max_seq_len) -> mod.ModelArgs
- read_checkpoint(dir) -> {name: (dtype_str, shape, bytes)} (own minimal safetensors reader)
- build_official(case_dir, revision="current", max_seq_len=None) -> (model, mod, cfg, load_report)
"""
import json
import os
import struct
import subprocess
import sys
import types

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import stand_ins  # noqa: E402

MIRROR = os.environ.get("DSV4_OFFICIAL_GIT", "")  # git dir of a deepseek-v4-flash-spark clone (see above)
MIRROR_COMMIT = "0825add"

_SHARED_INITIAL = ("        # no swiglu_limit\n"
                   "        self.shared_experts = Expert(args.dim, args.moe_inter_dim)\n")
_SHARED_CURRENT = ("        # [oracle patch: current revision clamps the shared expert]\n"
                   "        self.shared_experts = Expert(args.dim, args.moe_inter_dim, "
                   "swiglu_limit=args.swiglu_limit)\n")


def _official_source(official_dir=None):
    cands = []
    if official_dir:
        cands.append(os.path.join(official_dir, "model.py"))
    if os.environ.get("DSV4_OFFICIAL_DIR"):
        cands.append(os.path.join(os.environ["DSV4_OFFICIAL_DIR"], "model.py"))
    cands.append("/tmp/official/init/model.py")
    for c in cands:
        if os.path.exists(c) and os.path.getsize(c) > 1000:
            with open(c) as f:
                return f.read(), c
    if not MIRROR:
        raise SystemExit("oracle: DeepSeek's inference/model.py not found: pass --official-dir DIR, or set "
                         "DSV4_OFFICIAL_DIR (a directory with model.py) or DSV4_OFFICIAL_GIT (the .git directory "
                         "of a clone of github.com/Mockingjay1316/deepseek-v4-flash-spark)")
    src = subprocess.run(["git", "--git-dir", MIRROR, "show", MIRROR_COMMIT + ":inference/model.py"],
                         check=True, capture_output=True, text=True).stdout
    return src, MIRROR + "@" + MIRROR_COMMIT


# What-if variants (NOT the official semantics): swap one official precision choice for the one the
# reference makes, to measure how much of a disagreement that choice explains.  Each entry is
# (official text, replacement); the text must occur exactly once.
VARIANTS = {
    # Attention.forward: per-head q RMS in BF16 arithmetic -> F32 math, one BF16 rounding
    "qrms_f32": ("        q *= torch.rsqrt(q.square().mean(-1, keepdim=True) + self.eps)\n",
                 "        q = (q.float() * torch.rsqrt(q.float().square().mean(-1, keepdim=True) + self.eps))"
                 ".to(q.dtype)\n"),
    # Indexer.forward: BF16 einsum / relu*weights / head sum -> F32
    "index_f32": ("        index_score = torch.einsum(\"bshd,btd->bsht\", q, self.kv_cache[:bsz, :end_pos // ratio])\n"
                  "        index_score = (index_score.relu_() * weights.unsqueeze(-1)).sum(dim=2)\n",
                  "        index_score = torch.einsum(\"bshd,btd->bsht\", q.float(), "
                  "self.kv_cache[:bsz, :end_pos // ratio].float())\n"
                  "        index_score = (index_score.relu_() * weights.float().unsqueeze(-1)).sum(dim=2)\n"),
}


# what-if variants implemented in stand_ins rather than by source substitution
KERNEL_VARIANTS = {"attn_oneblock": ("SPARSE_BLOCK", 0)}


class _TorchShim:
    """`torch` inside the official module: everything is torch's, except that rsqrt of a BF16 tensor is computed
    in F32 and rounded to BF16 once, which is what the CUDA kernel the official code runs on does (opmath float,
    then RNE). torch 1.13's CPU BF16 rsqrt is not correctly rounded on tensors of fewer than 32 elements (the
    non-vectorized path; e.g. rsqrt(bf16 0.1494140625) = 2.578125, correctly rounded 2.59375 = 1/sqrt at 2.58705),
    so the per-head q RMS (`q *= torch.rsqrt(...)`, model.py line 498) of a decode step (1 token x H heads
    < 32 values) came out different from a prefill's: on the trained nano model the official decode rows
    deviated from the reference by 3x the float32 noise (layer 0 of a 1-token call: q 1 BF16 step off on
    rows whose rsqrt was rounded the other way)."""

    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def rsqrt(x, *args, **kwargs):
        if isinstance(x, torch.Tensor) and x.dtype == torch.bfloat16 and not args and not kwargs:
            return torch.rsqrt(x.float()).to(torch.bfloat16)
        return torch.rsqrt(x, *args, **kwargs)


def load_official_module(official_dir=None, revision="current", variants=()):
    """Exec DeepSeek's model.py as module `dsv4_official_model` with the stand-in kernels.
    variants: names from VARIANTS (what-if experiments; default none = official semantics)."""
    assert revision in ("current", "initial")
    stand_ins.REVISION = revision
    stand_ins.install_modules()
    src, origin = _official_source(official_dir)
    if revision == "current":
        if _SHARED_INITIAL in src:
            src = src.replace(_SHARED_INITIAL, _SHARED_CURRENT)
        elif "swiglu_limit=args.swiglu_limit)" not in src.split("self.shared_experts =")[1].split("\n")[0]:
            raise RuntimeError("cannot locate the shared-expert line to patch in " + origin)
    stand_ins.SPARSE_BLOCK = 64
    for v in variants:
        if v in KERNEL_VARIANTS:
            setattr(stand_ins, *KERNEL_VARIANTS[v])
            continue
        old, new = VARIANTS[v]
        if src.count(old) != 1:
            raise RuntimeError("variant %s: official text not found exactly once in %s" % (v, origin))
        src = src.replace(old, new)
    name = "dsv4_official_model"
    mod = types.ModuleType(name)
    mod.__file__ = origin
    sys.modules[name] = mod
    exec(compile(src, origin, "exec"), mod.__dict__)
    mod.torch = _TorchShim()     # torch as the official code sees it (see _TorchShim)
    mod.OFFICIAL_ORIGIN = origin
    mod.OFFICIAL_REVISION = revision
    mod.OFFICIAL_VARIANTS = tuple(variants)
    return mod


# ------------------------------------------------------------------------------ config
def args_from_hf_config(mod, cfg, max_seq_len, expert_dtype="fp4"):
    """HF config.json dict -> official ModelArgs (key map of docs/architecture.md §1.2)."""
    rs = cfg.get("rope_scaling") or {}
    nl = cfg["num_hidden_layers"]
    kw = dict(
        max_batch_size=1,
        max_seq_len=max_seq_len,
        dtype="fp8",
        scale_fmt="ue8m0",
        expert_dtype=expert_dtype,
        vocab_size=cfg["vocab_size"],
        dim=cfg["hidden_size"],
        moe_inter_dim=cfg["moe_intermediate_size"],
        n_layers=nl,
        n_hash_layers=cfg.get("num_hash_layers", 0),
        n_mtp_layers=cfg.get("num_nextn_predict_layers", 1),
        n_heads=cfg["num_attention_heads"],
        n_routed_experts=cfg["n_routed_experts"],
        n_shared_experts=cfg.get("n_shared_experts", 1),
        n_activated_experts=cfg["num_experts_per_tok"],
        score_func=cfg.get("scoring_func", "sqrtsoftplus"),
        route_scale=cfg["routed_scaling_factor"],
        swiglu_limit=cfg["swiglu_limit"],
        q_lora_rank=cfg["q_lora_rank"],
        head_dim=cfg["head_dim"],
        rope_head_dim=cfg["qk_rope_head_dim"],
        norm_eps=cfg.get("rms_norm_eps", 1e-6),
        o_groups=cfg["o_groups"],
        o_lora_rank=cfg["o_lora_rank"],
        window_size=cfg["sliding_window"],
        compress_ratios=tuple(cfg["compress_ratios"]),
        compress_rope_theta=cfg["compress_rope_theta"],
        original_seq_len=rs.get("original_max_position_embeddings", 0) if rs else 0,
        rope_theta=cfg["rope_theta"],
        rope_factor=rs.get("factor", 1) if rs else 1,
        beta_fast=rs.get("beta_fast", 32),
        beta_slow=rs.get("beta_slow", 1),
        index_n_heads=cfg["index_n_heads"],
        index_head_dim=cfg["index_head_dim"],
        index_topk=cfg["index_topk"],
        hc_mult=cfg["hc_mult"],
        hc_sinkhorn_iters=cfg["hc_sinkhorn_iters"],
        hc_eps=cfg["hc_eps"],
    )
    known = set(mod.ModelArgs.__dataclass_fields__)
    dropped = [k for k in kw if k not in known]
    for k in dropped:
        kw.pop(k)
    return mod.ModelArgs(**kw)


# ------------------------------------------------------------------------------ checkpoint
def _read_st(path):
    with open(path, "rb") as f:
        buf = f.read()
    (hl,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + hl])
    out = {}
    for n, e in header.items():
        if n == "__metadata__":
            continue
        b0, b1 = e["data_offsets"]
        out[n] = (e["dtype"], list(e["shape"]), buf[8 + hl + b0: 8 + hl + b1])
    return out


def read_checkpoint(d):
    idx = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(idx):
        with open(idx) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
    else:
        shards = sorted(f for f in os.listdir(d) if f.endswith(".safetensors"))
    out = {}
    for s in shards:
        out.update(_read_st(os.path.join(d, s)))
    return out


def _e4m3_table():
    t = np.zeros(256, dtype=np.float64)
    for b in range(256):
        s = -1.0 if b & 0x80 else 1.0
        e = (b >> 3) & 0xF
        m = b & 7
        if e == 15 and m == 7:
            t[b] = np.nan
        elif e == 0:
            t[b] = s * m * 2.0 ** -9
        else:
            t[b] = s * (1 + m / 8.0) * 2.0 ** (e - 7)
    return torch.from_numpy(t)


_E4M3 = _e4m3_table()
_E2M1 = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0,
                      -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0], dtype=torch.float64)


def decode(dt, shape, data):
    """Raw stored tensor -> torch tensor in the emulated official dtype."""
    if dt == "BF16":
        a = np.frombuffer(data, dtype="<i2").copy()
        return torch.from_numpy(a).view(torch.bfloat16).reshape(shape)
    if dt == "F8_E4M3":
        b = torch.from_numpy(np.frombuffer(data, dtype=np.uint8).astype(np.int64))
        return _E4M3[b].reshape(shape).to(torch.float8_e4m3fn)
    if dt == "F8_E8M0":
        b = np.frombuffer(data, dtype=np.uint8).astype(np.float64)
        v = np.where(b == 255, np.nan, np.exp2(b - 127.0))
        return torch.from_numpy(v).reshape(shape).to(torch.float8_e8m0fnu)
    if dt == "I8":   # packed FP4 experts -> float4_e2m1fn_x2 alias (complex: real=low, imag=high)
        b = torch.from_numpy(np.frombuffer(data, dtype=np.uint8).astype(np.int64)).reshape(shape)
        return torch.complex(_E2M1[b & 0xF], _E2M1[b >> 4]).to(torch.float4_e2m1fn_x2)
    npdt = {"F32": "<f4", "F64": "<f8", "I32": "<i4", "I64": "<i8", "F16": "<f2"}[dt]
    return torch.from_numpy(np.frombuffer(data, dtype=npdt).copy()).reshape(shape)


def convert_state(raw):
    """Apply convert.py's single-rank transformations to raw HF tensors; returns {name: tensor}.
    (strip 'model.', drop mtp emb/head copies, wo_a -> BF16 via its 128x128 scale, I8 experts -> FP4.)"""
    sd = {}
    for name, (dt, shape, data) in raw.items():
        n = name[len("model."):] if name.startswith("model.") else name
        if n.startswith("mtp.") and ("emb" in n or n.endswith("head.weight")):
            continue
        sd[n] = decode(dt, shape, data)
    for n in list(sd):
        if n.endswith("wo_a.weight"):
            # convert.py: unflatten into 128x128 tiles * scale (needs both dims % 128 == 0); the
            # repeat_interleave form below gives the same values and also covers partial tiles.
            w = sd[n].double()
            s = sd.pop(n.replace("weight", "scale")).double()
            se = s.repeat_interleave(128, 0)[:w.size(0)].repeat_interleave(128, 1)[:, :w.size(1)]
            sd[n] = (w * se).to(torch.bfloat16)
    return sd


def load_into(model, sd):
    """Copy like load_state_dict(strict=False) (param.copy_ casts dtypes). Returns a report dict."""
    params = dict(model.named_parameters())
    missing = [k for k in params if k not in sd]
    unexpected = [k for k in sd if k not in params]
    bad = []
    with torch.no_grad():
        for k, p in params.items():
            if k not in sd:
                continue
            t = sd[k]
            if tuple(t.shape) != tuple(p.shape):
                bad.append("%s: checkpoint %s vs model %s" % (k, tuple(t.shape), tuple(p.shape)))
                continue
            p.copy_(t)
    # torch-1.13 shim: gather() needs int64 indices (newer torch accepts the official int32 tid2eid).
    for mname, mod in model.named_modules():
        if getattr(mod, "tid2eid", None) is not None and mod.tid2eid.dtype != torch.int64:
            mod.tid2eid = torch.nn.Parameter(mod.tid2eid.data.long(), requires_grad=False)
    return {"missing": missing, "unexpected": unexpected, "shape_mismatch": bad}


def build_official(case_dir, revision="current", max_seq_len=None, official_dir=None, variants=()):
    with open(os.path.join(case_dir, "config.json")) as f:
        cfg = json.load(f)
    mod = load_official_module(official_dir, revision, variants)
    if max_seq_len is None:
        max_seq_len = 1024
    args = args_from_hf_config(mod, cfg, max_seq_len)
    with bf16_default():
        torch.manual_seed(0)
        model = mod.Transformer(args)
        rep = load_into(model, convert_state(read_checkpoint(case_dir)))
    return model, mod, cfg, rep


class bf16_default:
    """generate.py runs the official model under torch.set_default_dtype(torch.bfloat16) (buffers, the
    fp8/fp4 GEMM output dtype and some masks depend on it).  Use this context around construction AND
    every forward call; restore the previous default afterwards so other code (tools/reference) is not
    affected (its float parameters would silently become BF16)."""

    def __enter__(self):
        self.prev = torch.get_default_dtype()
        torch.set_default_dtype(torch.bfloat16)

    def __exit__(self, *exc):
        torch.set_default_dtype(self.prev)
