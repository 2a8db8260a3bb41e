"""Per-operation golden vectors for tests/test_ops.c: tests/golden/ops/manifest.json + *.bin.

    /usr/bin/python3 tools/reference/gen_op_goldens.py [--out tests/golden/ops]

Every .bin file is a raw little-endian float32 array (no header). manifest.json:
{ "format": "raw little-endian float32 arrays",
  "cases": [ {"name", "op", "params": {...}, "inputs": [file, ...], "input_counts": [n, ...],
              "expected": file, "expected_count": n, "tol_abs": float, "note": text}, ... ] }
Pass criterion per element: |c - e| <= tol_abs, NaN matches NaN. Op semantics are documented in
tools/reference/README.md ("Per-operation vectors").
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import numerics as nm                          # noqa: E402
from model import Config, rope_freqs, rope_cos_sin, apply_rope, sinkhorn   # noqa: E402

G = torch.Generator().manual_seed(1234)


def f32(t):
    """Inputs are stored as float32: compute expectations from the float32 values."""
    return t.to(torch.float32).to(torch.float64)


def bf16_randn(*shape, std=1.0):
    return nm.round_bf16(torch.randn(*shape, generator=G) * std)


class Writer:
    def __init__(self, out):
        self.out = out
        self.cases = []
        os.makedirs(out, exist_ok=True)

    def arr(self, fname, t):
        a = t.detach().to(torch.float64).reshape(-1).numpy().astype("<f4")
        a.tofile(os.path.join(self.out, fname))
        return a.size

    def add(self, name, op, params, inputs, expected, tol_abs=0.0, note=""):
        files, counts = [], []
        for i, t in enumerate(inputs):
            fn = "%s.in%d.bin" % (name, i)
            counts.append(self.arr(fn, t))
            files.append(fn)
        efn = "%s.out.bin" % name
        n = self.arr(efn, expected)
        self.cases.append({"name": name, "op": op, "params": params, "inputs": files, "input_counts": counts,
                           "expected": efn, "expected_count": n, "tol_abs": tol_abs, "note": note})

    def finish(self):
        with open(os.path.join(self.out, "manifest.json"), "w") as f:
            json.dump({"format": "raw little-endian float32 arrays", "cases": self.cases}, f, indent=1)


def e4m3_edge_values():
    v = [0.0, -0.0, 448.0, -448.0, 449.0, 464.0, 480.0, 1000.0, -1e6, 2.0 ** -9, -2.0 ** -9, 2.0 ** -10,
         3 * 2.0 ** -11, 2.0 ** -10 * 1.0001, 2.0 ** -6, 2.0 ** -7, 0.875 * 2.0 ** -6, 1.0, 1.0625, 1.125, 1.1875,
         1.0625 + 2.0 ** -20, 1.1875 - 2.0 ** -20, 240.0, 248.0, 256.0, 432.0, 440.0, 416.0, 424.0, 3.0, 3.25, 3.5,
         -2.75, 0.1, -0.3, 1e-9, 17.0, 18.0, 19.0, 0.0146484375, float("nan")]
    # ties between every pair of adjacent positive finite values, and random values
    t = nm.e4m3_decode_table(torch.float64)
    pos = t[:127][1:]
    ties = (pos[:-1] + pos[1:]) / 2
    return f32(torch.cat([torch.tensor(v, dtype=torch.float64), ties, -ties[::7],
                          (torch.randn(300, generator=G, dtype=torch.float64) * 50)]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(HERE, "..", "..", "tests", "golden", "ops"))
    a = ap.parse_args()
    w = Writer(a.out)

    # ------------------------------------------------------------------ number formats
    x = e4m3_edge_values()
    w.add("e4m3_encode", "e4m3_encode", {}, [x], nm.e4m3_encode(x).to(torch.float64),
          note="byte code as float; RNE, saturate to +-448, NaN -> 127 (0x7f), -0 -> 128")
    w.add("e4m3_round", "e4m3_round", {}, [x[~torch.isnan(x)]], nm.round_e4m3(x[~torch.isnan(x)]),
          note="value of e4m3_encode(x)")
    codes = torch.arange(256, dtype=torch.float64)
    w.add("e4m3_decode", "e4m3_decode", {}, [codes], nm.e4m3_decode(codes.to(torch.int64), torch.float64),
          note="0x7f and 0xff are NaN")
    w.add("e8m0_decode", "e8m0_decode", {}, [codes], nm.e8m0_decode(codes.to(torch.int64), torch.float64),
          note="2^(b-127); 255 NaN; b=0 is 2^-127 (F32 subnormal)")
    c16 = torch.arange(16, dtype=torch.float64)
    w.add("e2m1_decode", "e2m1_decode", {}, [c16], nm.e2m1_decode(c16.to(torch.int64), torch.float64))
    xe = torch.tensor([0.0, 0.25, 0.2500001, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 5.0001, 4.9999, 6.0, 7.0, 100.0,
                       -0.25, -0.75, -2.5, -5.0, -7.0, 0.1, 1.1, 2.9], dtype=torch.float64)
    xe = f32(torch.cat([xe, torch.randn(100, generator=G, dtype=torch.float64) * 3]))
    w.add("e2m1_round", "e2m1_round", {}, [xe], nm.round_e2m1(xe), note="RNE, ties 0.25->0, 0.75->1, 2.5->2, 5->4")
    xb = f32(torch.cat([torch.randn(500, generator=G, dtype=torch.float64) * 10,
                    torch.tensor([1.0 + 2.0 ** -8, 1.0 + 3 * 2.0 ** -8, 1.0 + 2.0 ** -8 + 2.0 ** -20, -3.0 - 2.0 ** -7])]))
    w.add("bf16_round", "bf16_round", {}, [xb], nm.round_bf16(xb), note="RNE to BF16")

    # ------------------------------------------------------------------ quantization simulations
    def special_rows(n, qmax):
        rows = [torch.zeros(n, dtype=torch.float64)]                              # amax floor
        r = bf16_randn(n).double(); r[3] = qmax; rows.append(r)                    # amax exactly qmax
        r = bf16_randn(n).double() * 2.0 ** -20; rows.append(r)                    # tiny values
        r = bf16_randn(n).double() * 2.0 ** 10; rows.append(r)                     # large values
        r = bf16_randn(n).double(); r[0] = 2 * qmax; rows.append(r)                # amax exact pow2*qmax
        r = bf16_randn(n).double() * 1e-6; rows.append(r)                          # below the 1e-4 floor
        return rows
    for block, n in [(128, 512), (64, 448), (128, 200)]:
        rows = special_rows(n, 448.0) + [bf16_randn(n).double() * s for s in (1.0, 0.01, 30.0)]
        X = torch.stack(rows)
        w.add("fp8_sim_b%d_n%d" % (block, n), "fp8_sim", {"block": block, "n": n, "rows": X.shape[0]}, [X],
              nm.fp8_sim(X, block), note="each row of n values independently; last block may be short")
    rows = special_rows(128, 6.0) + [bf16_randn(128).double() * s for s in (1.0, 0.05, 20.0)]
    X = torch.stack(rows)
    w.add("fp4_sim_b32", "fp4_sim", {"block": 32, "n": 128, "rows": X.shape[0]}, [X], nm.fp4_sim(X, 32),
          note="output rounded to BF16")
    X = torch.stack([bf16_randn(128).double() for _ in range(6)] + [torch.zeros(128, dtype=torch.float64)])
    X[1] = 0
    X[1, 0] = 1.0
    ex = nm.hadamard(X)
    w.add("hadamard_128", "hadamard", {"m": 128, "rows": X.shape[0]}, [X], ex,
          tol_abs=float(ex.abs().max()) * 2.0 ** -8,
          note="bf16(H x / sqrt(128)); tolerance one BF16 ulp (F32 sum order)")

    # ------------------------------------------------------------------ rmsnorm, softmax, sinkhorn
    n = 256
    X = torch.stack([bf16_randn(n).double() * s for s in (1.0, 0.001, 50.0)])
    Wt = nm.round_bf16(1 + torch.randn(n, generator=G, dtype=torch.float64) * 0.2)
    ref = nm.round_bf16(Wt * (X * torch.rsqrt(X.square().mean(-1, keepdim=True) + 1e-6)))
    w.add("rmsnorm_w", "rmsnorm", {"n": n, "rows": 3, "eps": 1e-6, "weighted": 1, "round_bf16": 1}, [X, Wt], ref,
          tol_abs=float(ref.abs().max()) * 2.0 ** -8, note="inputs: x [rows,n], w [n]; tolerance one BF16 ulp")
    ref = X * torch.rsqrt(X.square().mean(-1, keepdim=True) + 1e-6)
    w.add("rmsnorm_plain", "rmsnorm", {"n": n, "rows": 3, "eps": 1e-6, "weighted": 0, "round_bf16": 0}, [X], ref,
          tol_abs=1e-5, note="weightless, no rounding (F32 result)")
    Xq = torch.stack([bf16_randn(128).double() * s for s in (1.0, 0.01, 30.0)])
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import model as refmodel
    w.add("head_rms_bf16", "head_rms_bf16", {"n": 128, "rows": 3, "eps": 1e-6}, [Xq],
          refmodel.q_head_rms(Xq, 1e-6), tol_abs=float(Xq.abs().max()) * 2.0 ** -7,
          note="official per-head q RMS, every intermediate BF16; tolerance one BF16 ulp of the largest input "
               "(the F32 mean may round differently before its BF16 cast)")
    X = torch.randn(4, 300, generator=G, dtype=torch.float64) * 5
    X[3] = X[3] - 1000
    X = f32(X)
    w.add("softmax_300", "softmax", {"n": 300, "rows": 4}, [X], torch.softmax(X, -1), tol_abs=1e-6)
    C = torch.randn(8, 16, generator=G, dtype=torch.float64) * 2
    C[0] = 0
    C[1] = torch.eye(4, dtype=torch.float64).flatten() * 10
    C = f32(C)
    w.add("sinkhorn_4", "sinkhorn", {"hc": 4, "iters": 20, "eps": 1e-6, "rows": 8}, [C], sinkhorn(C.view(8, 4, 4), 20,
          1e-6), tol_abs=2e-6, note="each row = C[4][4] row-major; output M row-major (softmax rows, +eps, "
          "col-norm, then 19x (row-norm, col-norm), all with +eps in the denominators)")

    # ------------------------------------------------------------------ rope
    cfg = Config.from_json("/dev/null") if False else Config(num_hidden_layers=1, num_nextn_predict_layers=0,
                                                            compress_ratios=[0])
    for tag, ratio in (("plain", 0), ("yarn", 4)):
        f = rope_freqs(cfg, ratio)
        prm = {"rope_dim": 64, "theta": 160000.0 if ratio else 10000.0, "yarn": 1 if ratio else 0, "factor": 16.0,
               "orig_len": 65536, "beta_fast": 32.0, "beta_slow": 1.0}
        w.add("rope_freqs_" + tag, "rope_freqs", prm, [], f.double(), tol_abs=0.0,
              note="F32 table as the official code builds it: 1/fl32(theta^fl32(2i/r)); YaRN blend "
                   "f/factor*(1-smooth)+f*smooth, smooth=1-ramp (all F32); tolerance 0 = bit-exact expected")
        pos = torch.tensor([0, 1, 2, 5, 127, 128, 1000, 4095, 65535, 65536, 100000, 524287, 999999, 1000000,
                            1048575], dtype=torch.int64)
        X = torch.stack([bf16_randn(64).double() for _ in pos])
        for inv in (0, 1):
            cos, sin = rope_cos_sin(f, pos, torch.float64)
            ex = apply_rope(X, cos, sin, inverse=bool(inv))
            w.add("rope_%s_inv%d" % (tag, inv), "rope", dict(prm, inverse=inv, rows=len(pos)),
                  [X, pos.double()], ex, tol_abs=float(ex.abs().max()) * 2.0 ** -8,
                  note="inputs: x [rows,64], positions [rows] (exact integers); angle = fl32(p*f[j]) with the F32 "
                       "table above, cos/sin of that F32 angle, result BF16; tolerance one BF16 ulp of max|out|")
    w.finish()
    print("wrote %d op cases to %s" % (len(w.cases), a.out))


if __name__ == "__main__":
    main()
