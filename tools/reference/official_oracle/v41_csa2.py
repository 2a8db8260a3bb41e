#!/usr/bin/python3
"""Check tools/reference/csa2_v41.py's candidate-block mask against DeepSeek's V4.1 `select_candidate_blocks`
(taken out of the upstream model.py with `ast`, read at run time from --official-dir / $DSV4_OFFICIAL_V41_DIR;
pure torch, runs on torch 1.13), on random rows without exact ties, in both of the official call forms: prefill
(a [queries, positions] score matrix with a per-query reachable count) and decode (one row, an int count).

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
    body = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "select_candidate_blocks"]
    if not body:
        raise SystemExit(f"{d}/model.py: no select_candidate_blocks")
    ns = dict(torch=torch, F=F)
    exec(compile(ast.Module(body=body, type_ignores=[]), os.path.join(d, "model.py"), "exec"), ns)
    return ns["select_candidate_blocks"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--official-dir", default=os.environ.get("DSV4_OFFICIAL_V41_DIR", "/tmp/official_v41"))
    ap.add_argument("--n-cases", type=int, default=300)
    a = ap.parse_args()
    official = load(a.official_dir)
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
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
