#!/usr/bin/python3
"""Check tools/reference/csa2_v41.py against DeepSeek's V4.1 model.py (definitions taken out of the upstream file
with `ast`, read at run time from --official-dir / $DSV4_OFFICIAL_V41_DIR; these parts are pure torch and run on
torch 1.13):
  1. `select_candidate_blocks` vs `csa2_v41.candidates` on random rows without exact ties, in both official call
     forms: prefill (a [queries, positions] score matrix with a per-query reachable count) and decode (one row);
  2. `Compressor` (with `RMSNorm`, `Linear`, `linear`; BF16 default dtype as generate.py sets it) vs the latents of
     tests/golden/v41/csa2/compressor.json, for a prefill of every token at position 0 and for a 1-token prefill
     followed by one-token decode steps.

usage: v41_csa2.py [--official-dir DIR] [--n-cases N]
"""
import argparse
import ast
import math
import os
import random
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
import csa2_v41  # noqa: E402


def load(d):
    tree = ast.parse(open(os.path.join(d, "model.py"), encoding="utf-8").read())
    want = {"select_candidate_blocks", "linear", "Linear", "RMSNorm", "Compressor"}
    consts = {"fp8_block_size", "fp4_block_size", "scale_fmt"}
    body = [n for n in tree.body if (isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name in want) or
            (isinstance(n, ast.Assign) and all(isinstance(t, ast.Name) and t.id in consts for t in n.targets))]
    missing = want - {n.name for n in body if hasattr(n, "name")}
    if missing:
        raise SystemExit(f"{d}/model.py: no definition of {sorted(missing)}")
    torch.float8_e4m3fn = getattr(torch, "float8_e4m3fn", torch.float16)
    torch.float8_e8m0fnu = getattr(torch, "float8_e8m0fnu", torch.float64)
    torch.float4_e2m1fn_x2 = getattr(torch, "float4_e2m1fn_x2", torch.complex128)
    ns = dict(torch=torch, F=F, nn=torch.nn, ModelArgs=object, default_dtype=torch.bfloat16, scale_dtype=torch.float64,
              act_quant=None, fp8_gemm=None, fp4_gemm=None)
    exec(compile(ast.Module(body=body, type_ignores=[]), os.path.join(d, "model.py"), "exec"), ns)
    return ns


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--official-dir", default=os.environ.get("DSV4_OFFICIAL_V41_DIR", "/tmp/official_v41"))
    ap.add_argument("--n-cases", type=int, default=300)
    a = ap.parse_args()
    ns = load(a.official_dir)
    official = ns["select_candidate_blocks"]
    rng = random.Random(7)
    bad = rows = 0
    for c in range(a.n_cases):
        block, tb, ratio = rng.choice([1, 2, 3, 8]), rng.choice([1, 2, 5, 40]), rng.choice([1, 2])
        T = rng.randint(1, 48)                      # prefill of T tokens at position 0
        n = T // ratio
        if n == 0:
            continue
        lens = torch.arange(1, T + 1).unsqueeze(-1) // ratio
        sc = torch.randn(T, n, generator=torch.Generator().manual_seed(c))
        sc = sc.masked_fill(torch.arange(n) >= lens, -math.inf)
        got = official(sc, lens, tb, block)
        for t in range(T):
            want = csa2_v41.candidates([float(v) for v in sc[t]], int(lens[t]), tb, block)
            rows += 1
            bad += [int(v) for v in got[t]] != want
        # decode form: one query, int reachable count = all positions
        row = torch.randn(1, n, generator=torch.Generator().manual_seed(10000 + c))
        got = official(row, n, tb, block)
        rows += 1
        bad += [int(v) for v in got[0]] != csa2_v41.candidates([float(v) for v in row[0]], n, tb, block)
    print(f"select_candidate_blocks: {rows} rows, {bad} differ from csa2_v41.candidates")
    ok = bad == 0

    import json
    import types
    gold = json.load(open(os.path.join(HERE, "../../../tests/golden/v41/csa2/compressor.json")))
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        for cs in gold["cases"]:
            R, n, dim, hd = cs["ratio"], cs["n"], cs["dim"], cs["head_dim"]
            args = types.SimpleNamespace(compress_ratios=[R], head_dim=hd, norm_eps=cs["eps"], dim=dim, max_batch_size=1)
            x = torch.tensor(cs["x"], dtype=torch.float32).reshape(1, n, dim).to(torch.bfloat16)
            want = torch.tensor(cs["latents"], dtype=torch.float32).reshape(-1, hd)
            for form in ("prefill", "decode"):
                comp = ns["Compressor"](args, 0)
                with torch.no_grad():
                    wdt = comp.wkv.weight.dtype
                    comp.wkv.weight.copy_(torch.tensor(cs["wkv"]).reshape(hd, dim).to(wdt))
                    if R > 1:
                        comp.wgate.weight.copy_(torch.tensor(cs["wgate"]).reshape(hd, dim).to(torch.float32))
                    comp.norm.weight.copy_(torch.tensor(cs["norm"]).to(comp.norm.weight.dtype))
                    if form == "prefill":
                        outs = [comp(x, 0)]
                    else:
                        outs = [comp(x[:, :1], 0)] + [comp(x[:, p:p + 1], p) for p in range(1, n)]
                got = torch.cat([o[0].float() for o in outs if o is not None], 0)
                d = (got - want).abs() if got.shape == want.shape else None
                same = int((d == 0).sum()) if d is not None else -1
                ulp = torch.ldexp(torch.ones_like(want), (torch.frexp(want.abs().clamp_min(2.0 ** -126))[1] - 8).float())
                within = d is not None and bool((d <= ulp).all())
                print(f"Compressor ratio {R} ({form}): {same} of {want.numel()} latent values identical to the golden, "
                      f"all within 1 BF16 ulp: {within}")
                ok &= within
    finally:
        torch.set_default_dtype(prev)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
