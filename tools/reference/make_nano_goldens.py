"""Goldens of the trained nano model (models/nano) on held-out text, for tests/test_nano_golden.c.

    nice /usr/bin/python3 tools/reference/make_nano_goldens.py [--out tests/golden/nano] [--check]

Why: the tiny random checkpoints of tests/golden/<case> have shaped weights and token sequences drawn so that
every discrete decision has a margin; the trained model has real, sharp weights (its mHC comb logits need all
20 Sinkhorn iterations, its routers and indexers make close calls on real text), so numeric bugs that the
random cases barely see are plain here (a Sinkhorn capped at 10 iterations: the typical row error triples).

Text: the last TAIL_BYTES bytes of vendor/tinyshakespeare/tinyshakespeare.txt (inside the held-out split, the last
111,540 bytes, that the model never trained on: tools/train/README.md), from "ANTONIO:\nNor I; my spirits" to
the end of the file, tokenized on its own with models/nano/tokenizer.json (tools/train/train_bpe.py's BPE,
identical to the C tokenizer), no BOS: N = 298 tokens (crosses the 128-token window, HCA entries at 128 and
256, CSA selection from position 35 on).

Golden: logits.f32 = [N][vocab] little-endian float32, row p = the float64 reference's logits of position p
(`Session(float64)`, one prefill, `logits_from_state` of every position; the float64 reference is
schedule-invariant, checked here against a float64 decode). The test runs each schedule of heldout.json and
compares the logits of the last position of every call with row p.

Noise and tolerance: the float32 reference is run on every schedule (one prefill with all positions read out,
decode, chunks: different matmul shapes, so independent noise samples) and compared with the float64 rows, per
row: e = RMS over the vocab of (l32 - l64). The noise is event-driven: a row is bit-identical to float64 (up to
the head matmul's accumulation, e ~ 1e-6) until a BF16/FP8 rounding flip enters a shared state (a KV or
compressor entry, a router or indexer input), and every later row is then perturbed (e ~ 1e-3 - 1e-2); which
rows are perturbed is luck (float32 decode: 40% of the rows, the C engine's decode: 91%). So the noise level is
taken over the perturbed rows (e > PERTURBED) of each float32 sample, i.e. for the worst case where every row
is perturbed:
  median_row_rms  median of e over the rows of a schedule (schedules with >= MIN_ROWS_STATS rows)
                  <= TOL_MEDIAN x the largest median over the perturbed rows of a float32 sample;
  p90_row_rms     90th percentile of e (numpy's linear interpolation; same schedules)
                  <= TOL_P90 x the largest 90th percentile over the perturbed rows of a float32 sample;
                  (a bug that moves only the rows after position 128 or 256 shifts it without moving the median);
  every row       e <= GROSS x RMS(l64) of the row: a bound for gross errors only. Real text has close calls
                  (router / indexer gaps near zero) that an equally correct engine decides the other way on some
                  row (measured: the C engine's largest row error 0.20, the float32 reference's 0.05, on
                  different rows), so no noise-derived per-row bound holds; argmax is not compared for the same
                  reason.
Deterministic; single thread; ~1 min.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tools", "train"))
from model import Transformer, Session                  # noqa: E402

torch.set_num_threads(1)

MODEL = "models/nano"
DATA = os.path.join(ROOT, "vendor", "tinyshakespeare", "tinyshakespeare.txt")
TAIL_BYTES = 727
HELDOUT_BYTES = 111540
TOL_MEDIAN = 2.0
TOL_P90 = 2.0
GROSS = 0.5
PERTURBED = 1e-4
MIN_ROWS_STATS = 20


def schedules(N):
    ch = [5, 37, 1, 1, 64, 19, 1, 1, 3, 2, 1, 1, 7, 1, 1, 13, 1, 1, 29] + [1] * 8 + [50] + [1] * 12 + [17, 1, 1, 3]
    assert sum(ch) < N
    ch.append(N - sum(ch))
    return [("prefill", [N]), ("decode", [1] * N), ("chunks", ch)]


def tokens():
    from train_bpe import BPE, PreTokenizer
    tj = json.load(open(os.path.join(ROOT, MODEL, "tokenizer.json")))
    m = tj["model"]
    merges = [tuple(x.split(" ")) if isinstance(x, str) else tuple(x) for x in m["merges"]]
    bpe = BPE(m["vocab"], merges, PreTokenizer(tj["pre_tokenizer"]))
    data = open(DATA, "rb").read()
    text = data[len(data) - TAIL_BYTES:]
    assert text.startswith(b"ANTONIO:\nNor I; my spirits"), text[:40]
    return bpe.encode(text.decode("utf-8")), len(data) - TAIL_BYTES, len(data)


def run(dtype, toks, calls, all_positions=False):
    """Logits rows [n_calls, V] (last position of each call), and with all_positions the [N, V] of every
    position read from the session's final states."""
    m = Transformer.from_dir(os.path.join(ROOT, MODEL))
    s = Session(m, dtype)
    rows, p = [], 0
    for c in calls:
        rows.append(s.eval(toks[p:p + c]))
        p += c
    full = None
    if all_positions:
        with torch.no_grad():
            full = m.logits_from_state(s.states)[0].to(torch.float64)
    return torch.stack(rows).to(torch.float64), full


def row_errors(c, r):
    """Per-row e = RMS over the vocab of (c - r), rows [n, V] (float64 numpy)."""
    return np.sqrt(((c - r) ** 2).mean(1))


def summary(e):
    p = e[e > PERTURBED]
    return {"rows": int(e.size), "perturbed_rows": int(p.size), "median_row_rms": float(np.median(e)),
            "p90_row_rms": float(np.percentile(e, 90)), "max_row_rms": float(e.max()),
            "median_perturbed": float(np.median(p)) if p.size else 0.0,
            "p90_perturbed": float(np.percentile(p, 90)) if p.size else 0.0}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "golden", "nano"))
    ap.add_argument("--check", action="store_true", help="measure only, write nothing")
    a = ap.parse_args()
    toks, b0, b1 = tokens()
    N = len(toks)
    sch = schedules(N)
    print("tokens: %d (bytes %d..%d of tinyshakespeare.txt)" % (N, b0, b1))
    _, r64 = run(torch.float64, toks, [N], all_positions=True)
    r64 = r64.numpy()
    # the float64 reference is schedule-invariant: a decode run gives the same rows bit for bit
    d64, _ = run(torch.float64, toks, [1] * N)
    inv = float(np.abs(d64.numpy() - r64.astype(np.float32).astype(np.float64)).max())
    print("float64 decode vs float64 prefill (float32 rows): max |diff| %.3g" % inv)
    samples = {}
    f32_rows = {}
    for sname, calls in sch:
        rows, full = run(torch.float32, toks, calls, all_positions=(sname == "prefill"))
        pos = np.cumsum(calls) - 1
        f32_rows[sname] = (pos, rows.numpy())
        samples["f32_" + sname] = summary(row_errors(rows.numpy(), r64[pos]))
        if full is not None:
            samples["f32_prefill_all_positions"] = summary(row_errors(full.numpy(), r64))
            f32_all = full.numpy()
    # schedule noise of the float32 reference itself (two noisy runs), informational
    pos, rows = f32_rows["decode"]
    samples["f32_decode_vs_f32_prefill"] = summary(row_errors(rows, f32_all[pos]))
    for k, v in samples.items():
        print("  %-28s rows %3d (perturbed %3d)  median %.4f  p90 %.4f  max %.4f  | perturbed rows: median %.4f  p90 %.4f"
              % (k, v["rows"], v["perturbed_rows"], v["median_row_rms"], v["p90_row_rms"], v["max_row_rms"],
                 v["median_perturbed"], v["p90_perturbed"]))
    big = [v for k, v in samples.items() if k != "f32_decode_vs_f32_prefill" and v["rows"] >= MIN_ROWS_STATS]
    med = max(v["median_perturbed"] for v in big)
    p90 = max(v["p90_perturbed"] for v in big)
    tol = {"median_row_rms": TOL_MEDIAN * med, "p90_row_rms": TOL_P90 * p90, "gross_rel": GROSS,
           "min_rows_stats": MIN_ROWS_STATS}
    tol["why"] = (
        "golden = float64 reference (every BF16/FP8/FP4 rounding point as the engine, float64 accumulation). Per row "
        "e = RMS over the vocab of (logits - golden). The float32 reference on the prefill (all positions), decode and "
        "chunks schedules: rows are bit-identical to float64 until a rounding flip enters a shared state, then "
        "perturbed (e > %.0e); over the perturbed rows of each sample the median of e is at most %.4f and the 90th "
        "percentile at most %.4f. Tolerances for every schedule with >= %d rows: median of e <= %.1fx %.4f, 90th "
        "percentile <= %.1fx %.4f (the worst case: every row perturbed). Every row: e <= %.2f x RMS(golden row) "
        "(gross errors only: real-text close calls go either way in equally correct engines)." %
        (PERTURBED, med, p90, MIN_ROWS_STATS, TOL_MEDIAN, med, TOL_P90, p90, GROSS))
    print("tolerance: " + json.dumps({k: v for k, v in tol.items() if k != "why"}))
    if a.check:
        return
    os.makedirs(a.out, exist_ok=True)
    r64.astype("<f4").tofile(os.path.join(a.out, "logits.f32"))
    gold = {
        "model": MODEL,
        "text": {"file": "vendor/tinyshakespeare/tinyshakespeare.txt", "bytes": [b0, b1],
                 "held_out": "the last %d bytes of the file (tools/train/README.md)" % HELDOUT_BYTES,
                 "tokenizer": MODEL + "/tokenizer.json", "bos": False},
        "tokens": toks,
        "logits": "logits.f32",
        "logits_layout": "[n_tokens][vocab_size] little-endian float32; row p = logits of position p",
        "schedules": [{"name": n, "calls": c} for n, c in sch],
        "noise": samples,
        "tolerance": tol,
    }
    with open(os.path.join(a.out, "heldout.json"), "w") as f:
        json.dump(gold, f, indent=1)
    print("wrote %s (%d bytes of logits)" % (a.out, os.path.getsize(os.path.join(a.out, "logits.f32"))))


if __name__ == "__main__":
    main()
