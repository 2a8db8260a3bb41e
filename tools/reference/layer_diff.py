"""Per-layer comparison of the C engine with the reference: finds the first layer where they part.

    /usr/bin/python3 tools/reference/layer_diff.py CASE_DIR [--tokens 1,2,3 | --n 40] [--prefill N] [--bin build/rel/dsv4]

Runs `dsv4 logits` with DSV4_DUMP set (src/model/forward.c writes per-layer activations, one row per token in
evaluation order) and the reference Session (float32, the same call schedule: a prefill of N tokens then
one-token decode steps) with forward hooks on every trunk Block / Attention / MoE, then prints for each layer
the max |C - ref| of attn_out, ffn_out and X (the 4-stream state after the block) relative to max |ref|.
Tokens default to the case's golden.json tokens (first --n of them)."""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import Session, Transformer  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("case")
    ap.add_argument("--tokens")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--prefill", type=int, default=None)
    ap.add_argument("--bin", default="build/rel/dsv4")
    a = ap.parse_args()
    if a.tokens:
        toks = [int(t) for t in a.tokens.split(",")]
    else:
        toks = json.load(open(os.path.join(a.case, "golden.json")))["tokens"][: a.n]
    pre = a.prefill or len(toks)
    calls = [pre] + [1] * (len(toks) - pre)

    dump = tempfile.mkdtemp(prefix="dsv4-dump-")
    env = dict(os.environ, DSV4_DUMP=dump)
    subprocess.run([a.bin, "logits", "-m", a.case, "--tokens", ",".join(map(str, toks)), "--prefill", str(pre),
                    "--out", os.path.join(dump, "logits.f32")], check=True, env=env)

    torch.set_num_threads(1)
    model = Transformer.from_dir(a.case)
    rec = {}

    def hook(name, li):
        def f(mod, inp, out):
            rec.setdefault((name, li), []).append(out[0].detach().float().reshape(out.shape[1], -1))
        return f
    for li, blk in enumerate(model.layers):
        blk.register_forward_hook(hook("X", li))
        blk.attn.register_forward_hook(hook("attn_out", li))
        blk.ffn.register_forward_hook(hook("ffn_out", li))
    s = Session(model, dtype=torch.float32)
    p = 0
    for c in calls:
        s.eval(toks[p:p + c])
        p += c

    cfg = model.cfg
    print("layer  ratio  attn_out      ffn_out       X            (max|C-ref| / max|ref|, over %d tokens)" % len(toks))
    for li in range(cfg.n_layers):
        row = []
        for name in ("attn_out", "ffn_out", "X"):
            ref = torch.cat(rec[(name, li)], 0).numpy()
            path = os.path.join(dump, "L%02d_%s.f32" % (li, name))
            c = np.fromfile(path, dtype="<f4").reshape(ref.shape)
            row.append(float(np.abs(c - ref).max() / max(np.abs(ref).max(), 1e-30)))
        print("%5d  %5d  %.3e     %.3e     %.3e" % (li, cfg.compress_ratios[li], *row))


if __name__ == "__main__":
    main()
