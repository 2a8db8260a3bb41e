"""DeepSeek's official inference code (through oracle.py / stand_ins.py) on the nano held-out goldens
(tests/golden/nano: heldout.json + logits.f32, written by tools/reference/make_nano_goldens.py).

    nice /usr/bin/python3 tools/reference/official_oracle/nano_heldout.py [--golden tests/golden/nano]

Runs the official model on the golden's model directory (models/nano) with the golden tokens under the two
schedules the official code supports: one prefill of all N tokens (every position's logits read from the
head) and decode (a 1-token prefill, then one token per call: every position). Per row e = RMS over the vocab
of (official - golden); prints the statistics test_nano_golden checks (median and 90th percentile of e,
every row against the gross bound) with the golden's tolerances, plus the max row error and argmax
agreement. --variant NAME (repeatable) swaps one official precision choice for the reference's, as compare.py.
Exit status 0 always (a measuring tool).
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, HERE)
import oracle      # noqa: E402
import stand_ins   # noqa: E402

torch.set_num_threads(1)


def report(name, o, r, tol):
    e = np.sqrt(((o - r) ** 2).mean(1))
    gross = np.sqrt((r ** 2).mean(1)) * tol["gross_rel"]
    med, p90 = float(np.median(e)), float(np.percentile(e, 90))
    print("%-16s rows %3d  median e %.4f (tol %.4f, %.2fx)  p90 e %.4f (tol %.4f, %.2fx)  max e %.4f (pos %d)  "
          "rows beyond the gross bound %d  argmax agree %d/%d" %
          (name, e.size, med, tol["median_row_rms"], med / tol["median_row_rms"], p90, tol["p90_row_rms"],
           p90 / tol["p90_row_rms"], e.max(), int(e.argmax()), int((e > gross).sum()),
           int((o.argmax(1) == r.argmax(1)).sum()), e.size))
    return {"median": med, "p90": p90, "max": float(e.max()), "gross_fail": int((e > gross).sum())}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--golden", default=os.path.join(ROOT, "tests", "golden", "nano"))
    ap.add_argument("--official-dir", default=None)
    ap.add_argument("--variant", action="append", default=[], choices=sorted(oracle.VARIANTS) + sorted(oracle.KERNEL_VARIANTS),
                    help="what-if: replace one official precision choice by the reference's (not official!)")
    a = ap.parse_args()
    gold = json.load(open(os.path.join(a.golden, "heldout.json")))
    mdir = os.path.join(ROOT, gold["model"])
    cfg = json.load(open(os.path.join(mdir, "config.json")))
    toks = gold["tokens"]
    N, V = len(toks), cfg["vocab_size"]
    ref = np.fromfile(os.path.join(a.golden, gold["logits"]), dtype="<f4").reshape(N, V).astype(np.float64)
    stand_ins.STRICT = True
    model, mod, _, rep = oracle.build_official(mdir, "current", ((N + 127) // 128 + 1) * 128, a.official_dir,
                                               a.variant)
    print("official source: %s%s; load: %d missing, %d unexpected, %d shape mismatches" % (
        mod.OFFICIAL_ORIGIN, ("  WHAT-IF VARIANTS (not official): %s" % a.variant) if a.variant else "",
        len(rep["missing"]), len(rep["unexpected"]), len(rep["shape_mismatch"])))
    tol = gold["tolerance"]
    out = {}
    # one prefill, every position's logits (the head applied to every row, as compare.py)
    m = oracle_fresh(model)
    store = {}
    orig = m.head.get_logits

    def get_logits(x):
        store["all"] = F.linear(x.float(), m.head.weight)[0]
        return orig(x)
    m.head.get_logits = get_logits
    with oracle.bf16_default():
        m(torch.tensor([toks]), 0)
    out["prefill_all_positions"] = report("prefill (all pos)", store["all"].double().numpy(), ref, tol)
    # decode: 1-token prefill, then single steps
    m = oracle_fresh(model)
    rows = []
    with oracle.bf16_default():
        for p in range(N):
            rows.append(m(torch.tensor([[toks[p]]]), p)[0].double())
    out["decode"] = report("decode", torch.stack(rows).numpy(), ref, tol)
    print("RESULT " + json.dumps(out))


def oracle_fresh(model):
    import copy
    m = copy.deepcopy(model)
    for mod in m.modules():      # deepcopy drops the `weight.scale` attribute set by Linear.__init__
        if getattr(mod, "scale", None) is not None and getattr(mod, "weight", None) is not None:
            mod.weight.scale = mod.scale
    return m


if __name__ == "__main__":
    main()
