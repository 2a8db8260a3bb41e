#!/usr/bin/python3
"""Per-op vectors of the DeepSeek-V4.1 quantization forms (docs/v41.md §4.1, §4.5; docs/v41-implementation.md item 8)
for tests/test_quant_v41.c, computed with tools/reference/numerics.py's exact rounding primitives:

  fp4_e4m3   compressed KV: FP4 E2M1, 16-element blocks, E4M3 scale e4m3(max(amax, 6*2^-9) / 6) (float32 division),
             values clamp(x / s, +-6) rounded to E2M1 (ties to the even code), result bf16(e2m1 * s)
  fp8_kv32   window KV / every FP8 GEMM input: E4M3, 32-blocks, UE8M0 scale 2^ceil(log2(max(amax, 1e-4) / 448))
  fp4_idx32  indexer q / k: E2M1, 32-blocks, UE8M0 scale 2^ceil(log2(max(amax, 6*2^-126) / 6)), bf16 result
  fp8_tile32 FP8 weight with 32x32 UE8M0 tiles dequantized to BF16 (Engram wkv, attn.wo_a)

Inputs are BF16 values (the reference quantizes BF16 tensors) drawn to hit the edges: zero blocks, blocks below the
amax floors, exact E2M1 ties, values that saturate, mixed magnitudes. Files (raw little-endian) in OUT_DIR
(default tests/golden/v41/ops): <op>.in.f32, <op>.out.f32, and for fp4_e4m3 .codes.u8 (packed, element 2k in the
low nibble) / .scales.u8; fp8_tile32.codes.u8 / .scales.u8 / .out.bf16; manifest.json lists counts.
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from numerics import (e2m1_encode, e4m3_decode, e4m3_encode, e8m0_decode, fp4_sim, fp8_sim, round_bf16,  # noqa: E402
                      round_e2m1, round_e4m3)


def fp4_e4m3(x, block=16):
    """x float32 [.., n] -> (y, codes uint8 [.., n], scale bytes [.., n/block])."""
    xb = x.reshape(-1, block)
    amax = torch.clamp(xb.abs().amax(-1, keepdim=True), min=6.0 * 2.0 ** -9)
    s = round_e4m3(amax / torch.tensor(6.0, dtype=torch.float32))
    v = torch.clamp(xb / s, -6.0, 6.0)
    q = round_e2m1(v)
    y = round_bf16(q * s)
    codes = e2m1_encode(q).to(torch.uint8)
    return y.reshape(x.shape), codes.reshape(x.shape), e4m3_encode(s.squeeze(-1)).to(torch.uint8)


def edge_inputs(n, g):
    x = torch.randn(n, generator=g, dtype=torch.float64)
    mags = torch.tensor([1e-6, 1e-3, 0.05, 1.0, 7.0, 300.0, 5e4])
    blk = torch.randint(0, len(mags), (n // 16,), generator=g)
    x = x * mags[blk].repeat_interleave(16)
    x[:16] = 0.0                                          # an all-zero block
    x[16:32] = torch.tensor([2.0 ** -12] * 16)            # below the E4M3-scale floor 6 * 2^-9
    # exact E2M1 ties once scaled: amax 6 -> s = 1, values .25 .75 1.25 1.75 2.5 3.5 5
    x[32:48] = torch.tensor([6.0, 0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, -0.25, -0.75, -1.25, -1.75, -2.5, -3.5, -5.0, -0.0])
    x[48:64] = torch.tensor([3000.0] + [1.0] * 15)        # large amax: small values flush to 0
    return round_bf16(x).to(torch.float32)


def raw(path, t, dt):
    with open(path, "wb") as f:
        f.write(t.contiguous().numpy().astype(dt).tobytes())


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/golden/v41/ops"
    os.makedirs(out, exist_ok=True)
    g = torch.Generator().manual_seed(41)
    man = {}
    n = 16 * 512
    x = edge_inputs(n, g)
    y, codes, sc = fp4_e4m3(x)
    raw(os.path.join(out, "fp4_e4m3.in.f32"), x, "<f4")
    raw(os.path.join(out, "fp4_e4m3.out.f32"), y, "<f4")
    packed = (codes[0::2] | (codes[1::2] << 4)).to(torch.uint8)
    raw(os.path.join(out, "fp4_e4m3.codes.u8"), packed, "u1")
    raw(os.path.join(out, "fp4_e4m3.scales.u8"), sc, "u1")
    man["fp4_e4m3"] = dict(n=n, block=16)
    for name, fn, block in (("fp8_kv32", lambda v: fp8_sim(v, 32), 32), ("fp4_idx32", lambda v: fp4_sim(v, 32), 32)):
        xi = edge_inputs(n, g)
        raw(os.path.join(out, f"{name}.in.f32"), xi, "<f4")
        raw(os.path.join(out, f"{name}.out.f32"), fn(xi), "<f4")
        man[name] = dict(n=n, block=block)
    # FP8 weight with 32x32 tiles -> BF16
    rows, cols = 96, 160
    codes8 = torch.randint(0, 0x7F, (rows, cols), generator=g) | (torch.randint(0, 2, (rows, cols), generator=g) * 0x80)
    sc8 = torch.randint(100, 140, (rows // 32, cols // 32), generator=g)
    deq = e4m3_decode(codes8, torch.float64) * e8m0_decode(sc8, torch.float64).repeat_interleave(32, 0).repeat_interleave(32, 1)
    assert torch.equal(round_bf16(deq), deq), "32x32-tile dequantization must be exact in BF16"
    raw(os.path.join(out, "fp8_tile32.codes.u8"), codes8.to(torch.uint8), "u1")
    raw(os.path.join(out, "fp8_tile32.scales.u8"), sc8.to(torch.uint8), "u1")
    raw(os.path.join(out, "fp8_tile32.out.f32"), deq.to(torch.float32), "<f4")
    man["fp8_tile32"] = dict(rows=rows, cols=cols, tile=32)
    man["tolerance"] = "bit-exact: every op is elementwise with fixed rounding points"
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(man, f, indent=1)
    print(json.dumps(man))


if __name__ == "__main__":
    main()
