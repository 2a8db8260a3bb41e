#!/usr/bin/python3
"""CSA2 selection steps of DeepSeek-V4.1 (docs/v41.md §4.1, docs/v41-implementation.md item 9), written for dsv4:
the candidate-block mask of the candidate source and the indexer's top-k in position order. Ties: lower index
first (DeepSeek's torch.topk leaves their order unspecified); -inf scores are never selected by topk.

usage: csa2_v41.py [OUT_DIR]  writes tests/golden/v41/csa2/cases.json (scores, visible, parameters, expected
keep masks and index lists) for tests/test_csa2.c.
"""
import json
import math
import os
import random
import sys


def candidates(scores, visible, topk_blocks, block):
    n = len(scores)
    nb = (n + block - 1) // block
    bs = [max(scores[b * block:(b + 1) * block]) for b in range(nb)]
    if visible >= 1 and (visible - 1) // block < nb:
        bs[(visible - 1) // block] = math.inf
    order = sorted(range(nb), key=lambda b: (-bs[b], b))[:min(topk_blocks, nb)]
    keep = [0] * n
    for b in order:
        if bs[b] > -math.inf:
            for i in range(b * block, min((b + 1) * block, n)):
                keep[i] = 1
    return keep


def topk(scores, visible, k):
    n = len(scores)
    k = min(k, n)
    finite = [i for i in range(n) if scores[i] > -math.inf]
    pick = sorted(sorted(finite, key=lambda i: (-scores[i], i))[:k])
    return [i if i < visible else -1 for i in pick] + [-1] * (k - len(pick))


def compress(x, wkv, wgate, norm, ratio, eps):
    """Latents of every complete group of x [n, dim] (float64 tensors holding BF16 values), float64 with the
    reference's rounding points: ratio 1 bf16(wkv x) -> RMSNorm -> bf16; ratio R: F32-promoted wkv / wgate, per
    dimension softmax over the group, weighted sum, bf16, RMSNorm, bf16."""
    import torch
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from numerics import round_bf16

    def rms(v):
        return round_bf16(norm * (v * torch.rsqrt(v.square().mean(-1, keepdim=True) + eps)))
    if ratio == 1:
        return rms(round_bf16(x @ wkv.T))
    m = x.shape[0] // ratio
    kv = (x @ wkv.T)[: m * ratio].reshape(m, ratio, -1)
    sc = (x @ wgate.T)[: m * ratio].reshape(m, ratio, -1)
    return rms(round_bf16((kv * sc.softmax(dim=1)).sum(dim=1)))


def compressor_cases(seed=11):
    import torch
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from numerics import round_bf16
    g = torch.Generator().manual_seed(seed)
    out = []
    for ratio in (1, 2):
        n, dim, hd = 11, 64, 64
        x = round_bf16(torch.randn(n, dim, generator=g, dtype=torch.float64))
        wkv = round_bf16(0.1 * torch.randn(hd, dim, generator=g, dtype=torch.float64))
        wgate = round_bf16(0.3 * torch.randn(hd, dim, generator=g, dtype=torch.float64))
        norm = round_bf16(1.0 + 0.2 * torch.randn(hd, generator=g, dtype=torch.float64))
        lat = compress(x, wkv, wgate, norm, ratio, 1e-20)
        out.append(dict(ratio=ratio, n=n, dim=dim, head_dim=hd, eps=1e-20, x=x.flatten().tolist(),
                        wkv=wkv.flatten().tolist(), wgate=wgate.flatten().tolist(), norm=norm.tolist(),
                        latents=lat.flatten().tolist()))
    return out


def f32(x):
    import struct
    return struct.unpack("<f", struct.pack("<f", x))[0]


def make_cases(seed=10):
    rng = random.Random(seed)
    cases = []
    for c in range(60):
        n = rng.choice([1, 3, 8, 17, 40, 64, 130])
        block = rng.choice([1, 2, 3, 8])
        topk_blocks = rng.choice([1, 2, 5, 2048])
        visible = rng.randint(0, n)
        k = rng.choice([1, 4, 7, 512])
        sc = [f32(rng.gauss(0, 1)) if i < visible else -math.inf for i in range(n)]
        if c % 5 == 1:   # exact ties (ReLU zeros)
            sc = [0.0 if (i < visible and rng.random() < 0.5) else v for i, v in enumerate(sc)]
        if c % 7 == 2:   # some positions masked by a candidate mask
            sc = [-math.inf if rng.random() < 0.3 else v for v in sc]
        cases.append(dict(n=n, block=block, topk_blocks=topk_blocks, visible=visible, k=k,
                          scores=[None if v == -math.inf else v for v in sc],
                          keep=candidates(sc, visible, topk_blocks, block), idx=topk(sc, visible, k)))
    return cases


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/golden/v41/csa2"
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump(dict(format="dsv4 csa2 selection v1", note="scores null = -inf", cases=make_cases()), f)
    with open(os.path.join(out, "compressor.json"), "w") as f:
        json.dump(dict(format="dsv4 csa2 compressor v1", tolerance="at most 1 BF16 ulp, >= 95% identical (F32 "
                       "summation order of the projections)", cases=compressor_cases()), f)
    print(f"wrote {out}/cases.json")


if __name__ == "__main__":
    main()
