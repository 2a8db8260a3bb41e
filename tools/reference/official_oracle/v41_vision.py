#!/usr/bin/python3
"""Check tools/reference/vision_v41.py against DeepSeek's official V4.1 `inference/vision.py` (read at run time from
--official-dir / $DSV4_OFFICIAL_V41_DIR, never stored in the repository; HF revision dba1be0a, or its public
vendored copy in tenstorrent/tt-metal models/demos/deepseek_v3_d_p/reference/deepseek_v41/vision.py), run on CPU
with torch 1.13 under the BF16 default dtype that generate.py sets, on seeded random weights and patches.

torch 1.13 has no F.scaled_dot_product_attention; the stand-in (below) computes what the flash-attention kernels
do for BF16 inputs: F32 scores, F32 softmax statistics, P rounded to BF16 for the P.V product (--sdpa fa), or
the plain F32 math of torch's math backend (--sdpa math: softmax in F32, P not rounded).

Measured per tower state (patch embed, each block, final norm) and for the aligner rows: the number of BF16
values that differ, the max |diff| and max |diff| / max |value|; once chained (the whole tower), once for each
official block alone fed the reference's state before it (so that one rounding flip does not spread).

usage: v41_vision.py [--official-dir DIR] [--sdpa fa|math] [--silu opmath|cpu113] [--grid HxW] [--layers N] [--dim D] [--heads H]
"""
import argparse
import importlib.util
import math
import os
import sys
from types import SimpleNamespace

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
import vision_v41 as ref  # noqa: E402


def sdpa_fa(q, k, v):
    scale = 1.0 / math.sqrt(q.size(-1))
    z = (q.float() @ k.float().transpose(-1, -2)) * scale
    p = torch.exp(z - z.amax(-1, keepdim=True))
    return ((p.to(torch.bfloat16).float() @ v.float()) / p.sum(-1, keepdim=True)).to(q.dtype)


def sdpa_math(q, k, v):
    scale = 1.0 / math.sqrt(q.size(-1))
    z = (q.float() @ k.float().transpose(-1, -2)) * scale
    return (torch.softmax(z, -1) @ v.float()).to(q.dtype)


_silu_native = F.silu


def silu_opmath(x, inplace=False):
    """F.silu on BF16 with F32 op-math, as CUDA (and CPU torch >= 2) compute it; torch 1.13's CPU kernel rounds
    each step (exp, 1 + e, the division) to BF16 instead."""
    if x.dtype != torch.bfloat16:
        return _silu_native(x)
    xf = x.float()
    return (xf / (1 + torch.exp(-xf))).to(x.dtype)


def compare(name, a, b):
    a, b = a.float(), b.float()
    d = (a - b).abs()
    nd = int((d > 0).sum())
    print("%-22s %7d values  differ %6d (%5.2f%%)  max|diff| %.3g  rel %.3g" % (
        name, a.numel(), nd, 100.0 * nd / a.numel(), float(d.max()), float(d.max() / b.abs().max())))
    return float(d.max() / b.abs().max())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--official-dir", default=os.environ.get("DSV4_OFFICIAL_V41_DIR", "/tmp/official_v41"))
    ap.add_argument("--sdpa", default="fa", choices=["fa", "math"])
    ap.add_argument("--silu", default="opmath", choices=["opmath", "cpu113"],
                    help="opmath: F32 op-math SiLU (the CUDA kernel); cpu113: torch 1.13's CPU BF16 kernel as is")
    ap.add_argument("--grid", default="7x10")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--inter", type=int, default=192)
    ap.add_argument("--lm-dim", type=int, default=160)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(1)
    path = os.path.join(a.official_dir, "vision.py")
    spec = importlib.util.spec_from_file_location("official_vision", path)
    off = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(off)
    F.scaled_dot_product_attention = sdpa_fa if a.sdpa == "fa" else sdpa_math
    if a.silu == "opmath":
        F.silu = silu_opmath

    n_h, n_w = (int(t) for t in a.grid.split("x"))
    c = ref.VisionConfig(n_layers=a.layers, dim=a.dim, n_heads=a.heads, inter_dim=a.inter, lm_dim=a.lm_dim)
    w = ref.random_weights(c, a.seed)
    g = torch.Generator().manual_seed(a.seed + 1)
    patches = ref.bf(torch.rand(n_h * n_w, 3, c.patch_size, c.patch_size, generator=g) * 2 - 1)

    args = SimpleNamespace(vision_dim=c.dim, vision_n_heads=c.n_heads, vision_n_layers=c.n_layers,
                           vision_inter_dim=c.inter_dim, vision_patch_size=c.patch_size,
                           vision_rope_theta=c.rope_theta, vision_downsample_ratio=c.downsample_ratio, dim=c.lm_dim)
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        vit, aligner = off.ViT(args), off.Aligner(args)
    finally:
        torch.set_default_dtype(prev)
    sd = {}
    for k, t in w.items():
        if k.startswith("vision."):
            sd[k[len("vision."):]] = t
    with torch.no_grad():
        for k, p in vit.state_dict().items():
            p.copy_(sd[k].to(p.dtype))
        for k, p in aligner.state_dict().items():
            p.copy_(w["aligner." + k].to(p.dtype))
    print("official %s (sdpa %s, silu %s), grid %dx%d, %d layers, dim %d, %d heads, inter %d, lm %d; norm weights %s, "
          "linear weights %s" % (path, a.sdpa, a.silu, n_h, n_w, c.n_layers, c.dim, c.n_heads, c.inter_dim, c.lm_dim,
                                 vit.norm.weight.dtype, vit.blocks[0].attn.wqkv.weight.dtype))
    states = []
    hooks = [vit.patch_embed.register_forward_hook(lambda m, i, o: states.append(o))]
    for b in vit.blocks:
        hooks.append(b.register_forward_hook(lambda m, i, o: states.append(o)))
    with torch.no_grad():
        pb = patches.to(torch.bfloat16)
        y = vit(pb, n_h, n_w)
        states.append(y)
        rows = aligner(y, n_h, n_w)
    for acc in (torch.float64, torch.float32):
        print("reference accumulation %s:" % acc)
        rs, rr = ref.tower(w, c, patches, n_h, n_w, acc=acc)
        names = ["patch_embed"] + ["block %d" % i for i in range(c.n_layers)] + ["norm"]
        for nm, o, r in zip(names, states, rs):
            compare(nm, o, r)
        compare("aligner", rows, rr)
    print("each official block alone, fed the reference's (F64) state before it:")
    rs, rr = ref.tower(w, c, patches, n_h, n_w, acc=torch.float64)
    cos, sin = off.get_vision_cos_sin(n_h, n_w, vit.rope_dim, vit.rope_theta)
    with torch.no_grad():
        for i, b in enumerate(vit.blocks):
            compare("block %d alone" % i, b(rs[i].to(torch.bfloat16), cos, sin), rs[i + 1])
        compare("norm alone", vit.norm(rs[-2].to(torch.bfloat16)), rs[-1])
        compare("aligner alone", aligner(rs[-1].to(torch.bfloat16), n_h, n_w), rr)
    r64 = ref.tower(w, c, patches, n_h, n_w, acc=torch.float64)
    r32 = ref.tower(w, c, patches, n_h, n_w, acc=torch.float32)
    print("reference float32 vs float64 accumulation (its own rounding noise):")
    for nm, x, y in zip(["patch_embed"] + ["block %d" % i for i in range(c.n_layers)] + ["norm"], r32[0], r64[0]):
        compare(nm, x, y)
    compare("aligner", r32[1], r64[1])


if __name__ == "__main__":
    main()
