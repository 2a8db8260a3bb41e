"""Per-block goldens: the 4-stream state entering / leaving every block, for tests/test_blocks.c.

    nice /usr/bin/python3 tools/reference/make_block_goldens.py [--only flash,window] [--golden tests/golden]

Why: the model-level goldens (tests/test_golden.c) need tolerances of 2-4% of max|logit| because the FP8
activation quantization amplifies 1-ulp BF16 differences chaotically over the layers; a structural bug whose
effect is below that (e.g. a transposed mHC comb matrix: 0.65% of max|logit| on the window case) passes
them. A single block has no such compounding: fed the reference input, a correct engine reproduces the
reference output of that block to the float32-vs-float64 noise of ONE block, which is ~100x smaller.

For each case tests/golden/<case>/ (its checkpoint and the first N tokens of its golden.json) this writes
tests/golden/<case>/blocks/:
  x00.bf16 .. x<L>.bf16   trunk state X entering layer l (x<l>) / leaving the last layer (x<L>),
                          [N][hc][D] raw BF16 (little-endian uint16; every X is BF16-representable);
  mtp.bf16                output state of the MTP block (before its hc_head) for the input x<L> and the
                          tokens mtp_tokens (position t is fed X_t and token t+1; the last one is golden
                          token N), [N][hc][D] BF16;
  manifest.json           shapes, tokens, schedules, per-block measured noise and the tolerance.
Reference = float64 Session arithmetic (model.py Block / MTPBlock, one prefill over N tokens; the float64
reference is schedule-invariant). The noise is measured by running each block alone in float32 on the
float64 input X_l, in one call and in the chunked schedule, against the float64 output:
  rel_rms = RMS(x32 - x64) / RMS(x64),  max_abs = max|x32 - x64|.
Tolerance (per case, applies to every block and both schedules):
  rel_rms <= TOL_FACTOR x (largest measured rel_rms among the case's blocks >= 1), floor TOL_FLOOR_RMS;
             block 0 (4 identical input streams -> correlated BF16 flips): TOL_FACTOR x its own noise;
  max_abs <= MAXABS_ULPS BF16 ulps at max|x64| (a single BF16 flip of a large stream element is 1 ulp);
  median_tok <= tol_median_tok (per block): the median over tokens of RMS_t(x - x64) / RMS(x64) (RMS_t: over
             the token's hc*D values). Float32 rounding noise is sparse -- a few tokens differ, the typical token
             is bit-identical (median 0 in every block but the window case's block 0) -- while a systematic
             numeric bug of BF16-ulp size (a double rounding, a truncated Sinkhorn, an FP8 block size) moves
             every token: rel_rms cannot separate the two (a few noisy tokens weigh as much as a small error
             everywhere), the median can. tol = TOL_FACTOR x the largest f32 median of the case's blocks >= 1
             (block 0: at least TOL_FACTOR x its own), floor MEDIAN_FLOOR (about one BF16 ulp flip among the
             hc*D values of the typical token, 512 with D = 128).
  Block 0 of the cases not in BLOCK0_OWN_TOL gets max(TOL_FACTOR x own noise, the tolerance of blocks >= 1): a
  single float32 sample of block 0's noise can be nearly empty (hd512: 1.8e-6 while the C engine, equally
  correct, differed on 3 tokens: 2.0e-4).
The float32 runs must take the same router / indexer decisions as the float64 run (checked).
Deterministic; single thread; ~1-3 min per case.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import model as M                                       # noqa: E402
from model import Transformer, Block                    # noqa: E402

torch.set_num_threads(1)

# tokens per case: > 128 so the window wraps and HCA-128 layers emit entry 0 (at position 127); long enough
# that the indexer selects (CSA entries visible > index_topk: flash 16 -> from position 67, pro 24 -> 99,
# d256 40 -> 163, hence 168 there)
N_TOKENS = {"flash": 144, "pro": 144, "window": 144, "d256": 168, "hd512": 144}
# cases whose block 0 keeps the original rule (TOL_FACTOR x its own noise, floor TOL_FLOOR_RMS), so that their
# committed manifests stay reproducible; the others: see the module doc
BLOCK0_OWN_TOL = {"flash", "pro", "window", "d256"}
CHUNK_HEAD = [5, 37, 1, 1, 64, 19, 1, 1, 3]    # ends at 132: single steps at positions 127, 128
TOL_FACTOR = 4.0
TOL_FLOOR_RMS = 2e-4
MAXABS_ULPS = 4
MEDIAN_FLOOR = 1e-4


def chunk_schedule(N):
    s = [c for c in CHUNK_HEAD]
    assert sum(s) < N
    return s + [N - sum(s)]


def bf16_bits(x):
    """float64/32 tensor of BF16-representable values -> uint16 numpy (asserts exactness)."""
    f = x.to(torch.float32).contiguous().numpy().astype("<f4")
    u = f.view("<u4")
    assert np.all((u & 0xFFFF) == 0), "state is not BF16-representable"
    return (u >> 16).astype("<u2")


def noise(a, r):
    a, r = a.double(), r.double()
    d = a - r
    return (d.square().mean().sqrt() / r.square().mean().sqrt()).item(), d.abs().max().item()


def median_tok(a, r):
    """Median over tokens of RMS_t(a - r) / RMS(r) (a, r: [1, N, hc, D]); the even-N median is the mean of the
    two middle values (as tests/test_blocks.c)."""
    a, r = a.double(), r.double()
    per = (a - r).square().mean((-1, -2)).sqrt().flatten() / r.square().mean().sqrt()
    v = per.sort().values
    n = v.numel()
    return (v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])).item()


def run_block(blk, X, toks, calls, mtp_tokens=None, embed=None):
    """Run one block alone (fresh cache) over the sequence in calls; returns (output, decisions). For the MTP
    block (mtp_tokens, embed given) X is the trunk final state and the MTP input projection (§4.9) comes first."""
    rec = []
    M.CTX.rec = rec
    try:
        cache, outs, p = {}, [], 0
        for c in calls:
            x = X[:, p:p + c]
            t = toks[:, p:p + c]
            if mtp_tokens is not None:
                m = blk
                e = embed[mtp_tokens[:, p:p + c]].to(X.dtype)
                x = M.rb(m.e_proj.fwd(m.enorm(e)).unsqueeze(-2) + m.h_proj.fwd(m.hnorm(x)))
                t = mtp_tokens[:, p:p + c]
            outs.append(Block.forward(blk, x, p, t, cache))
            p += c
    finally:
        M.CTX.rec = None
    return torch.cat(outs, 1), {(k, l, pos): ids for (k, l, pos, _, ids) in rec}



def make_case(name, gdir):
    d = os.path.join(gdir, name)
    gold = json.load(open(os.path.join(d, "golden.json")))
    N = N_TOKENS[name]
    toks_all = gold["tokens"]
    assert len(toks_all) > N
    toks = torch.tensor([toks_all[:N]], dtype=torch.int64)
    mtp_toks = torch.tensor([toks_all[1:N + 1]], dtype=torch.int64)
    m64 = Transformer.from_dir(d).to(torch.float64)
    m32 = Transformer.from_dir(d).to(torch.float32)
    cfg = m64.cfg
    sched = chunk_schedule(N)
    # float64 reference trunk, one prefill
    with torch.no_grad():
        e = m64.embed_tokens(toks, torch.float64)
        X = e.unsqueeze(-2).expand(*e.shape[:-1], cfg.hc, e.shape[-1]).contiguous()
        states = [X]
        for i, layer in enumerate(m64.layers):
            X, _ = run_block(layer, X, toks, [N])
            states.append(X)
        mtp64 = run_block(m64.mtp[0], X, toks, [N], mtp_toks, m64.embed.weight)[0] if cfg.n_mtp else None
    out = os.path.join(d, "blocks")
    os.makedirs(out, exist_ok=True)
    blocks, worst_rms = [], 0.0
    nblk = cfg.n_layers + (1 if cfg.n_mtp else 0)
    for li in range(nblk):
        is_mtp = li == cfg.n_layers
        xin = states[li]
        ref = mtp64 if is_mtp else states[li + 1]
        b64 = m64.mtp[0] if is_mtp else m64.layers[li]
        b32 = m32.mtp[0] if is_mtp else m32.layers[li]
        with torch.no_grad():
            mt, e64, e32 = (mtp_toks, m64.embed.weight, m32.embed.weight) if is_mtp else (None, None, None)
            _, c64 = run_block(b64, xin, toks, [N], mt, e64)
            meas = {}
            for sname, calls in (("one_call", [N]), ("chunks", sched)):
                y32, c32 = run_block(b32, xin.float(), toks, calls, mt, e32)
                flips = sum(1 for k in c64 if c32.get(k) != c64[k])
                if flips:
                    raise RuntimeError("%s block %d %s: float32 flips %d decisions" % (name, li, sname, flips))
                rr, ma = noise(y32, ref)
                meas[sname] = {"rel_rms": rr, "max_abs": ma, "median_tok": median_tok(y32, ref)}
                worst_rms = max(worst_rms, rr)
            # sensitivity yardstick: the block's own contribution RMS(out - in) / RMS(out)
            contrib = noise(ref, xin)[0] if not is_mtp else None
        kinds = {}
        for (k, _, _) in c64:
            kinds[k] = kinds.get(k, 0) + 1
        ratio = cfg.compress_ratios[li]
        ent = {"layer": li, "kind": "mtp" if is_mtp else ("window" if ratio == 0 else ("csa" if ratio == 4 else "hca")),
               "ratio": ratio, "hash": (not is_mtp) and li < cfg.n_hash,
               "in": "x%02d.bf16" % li, "out": "mtp.bf16" if is_mtp else "x%02d.bf16" % (li + 1),
               "decisions": kinds, "f32_noise": meas, "max_abs_ref": ref.abs().max().item()}
        if ratio:
            ent["entries_emitted"] = N // ratio
        if contrib is not None:
            ent["block_change_rel_rms"] = contrib
        blocks.append(ent)
        print("  %s block %d (%s): decisions %s, f32 noise one_call rel_rms %.2e max_abs %.2e, chunks rel_rms %.2e "
              "max_abs %.2e%s" % (name, li, ent["kind"], kinds, meas["one_call"]["rel_rms"], meas["one_call"]["max_abs"],
                                  meas["chunks"]["rel_rms"], meas["chunks"]["max_abs"],
                                  "" if contrib is None else ", block change %.2e" % contrib))
    for li, X in enumerate(states):
        bf16_bits(X).tofile(os.path.join(out, "x%02d.bf16" % li))
    if cfg.n_mtp:
        bf16_bits(mtp64).tofile(os.path.join(out, "mtp.bf16"))
    # block 0 gets its own tolerance: its input has 4 identical streams, so u = bf16(x * sum(pre)) and the F32
    # rounding of sum(pre) flips many elements of a row at once (correlated, systematically larger noise: 1.5e-3
    # on the window case); the other blocks share the worst noise among blocks >= 1
    worst_rest = max([b["f32_noise"][k]["rel_rms"] for b in blocks[1:] for k in b["f32_noise"]] + [0.0])
    tol_rms = max(TOL_FACTOR * worst_rest, TOL_FLOOR_RMS)
    worst_med = max([b["f32_noise"][k]["median_tok"] for b in blocks[1:] for k in b["f32_noise"]] + [0.0])
    tol_med = max(TOL_FACTOR * worst_med, MEDIAN_FLOOR)
    for b in blocks:
        own = max(v["rel_rms"] for v in b["f32_noise"].values())
        own_med = max(v["median_tok"] for v in b["f32_noise"].values())
        if b["layer"] == 0:
            b["tol_rel_rms"] = max(TOL_FACTOR * own, TOL_FLOOR_RMS if name in BLOCK0_OWN_TOL else tol_rms)
            b["tol_median_tok"] = max(TOL_FACTOR * own_med, tol_med)
        else:
            b["tol_rel_rms"] = tol_rms
            b["tol_median_tok"] = tol_med
    man = {
        "n_tokens": N, "hc": cfg.hc, "dim": cfg.dim, "n_layers": cfg.n_layers, "n_mtp": cfg.n_mtp,
        "format": "raw BF16, little-endian uint16 (the high half of the F32 bits), shape [n_tokens][hc][dim]",
        "tokens": toks_all[:N], "mtp_tokens": toks_all[1:N + 1],
        "schedules": {"one_call": [N], "chunks": sched},
        "blocks": blocks,
        "tolerance": {
            "rel_rms": tol_rms, "max_abs_ulps": MAXABS_ULPS, "median_tok": tol_med,
            "why": ("float64 Session arithmetic, block by block; the float32 reference run of each block alone on the "
                    "float64 input (one call and the chunked schedule) deviates by at most rel_rms %.2e "
                    "(RMS(x32-x64)/RMS(x64)) over the blocks >= 1 of this case; tolerance rel_rms = %.0fx that "
                    "(floor %.0e) for blocks >= 1, and %.0fx its own noise for block 0 (%s; per block: tol_rel_rms; "
                    "block 0 has 4 identical input streams, so its BF16 flips are correlated). "
                    "max_abs <= %d BF16 ulps of max|x64| (a BF16 flip of one large stream element is 1 ulp). "
                    "median over tokens of RMS_t(x-x64)/RMS(x64) <= tol_median_tok: %.0fx the largest float32 median "
                    "(%.2e over the blocks >= 1; block 0 at least %.0fx its own), floor %.0e (float32 noise is sparse: "
                    "the typical token is bit-identical; a systematic bug moves every token). "
                    "The float32 runs take the same router/indexer decisions." %
                    (worst_rest, TOL_FACTOR, TOL_FLOOR_RMS, TOL_FACTOR,
                     "floor %.0e" % TOL_FLOOR_RMS if name in BLOCK0_OWN_TOL else "at least the tolerance of blocks >= 1",
                     MAXABS_ULPS, TOL_FACTOR, worst_med, TOL_FACTOR, MEDIAN_FLOOR))},
    }
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(man, f, indent=1)
    size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    print("  %s: %d tokens, %d blocks, worst f32 rel_rms %.2e (blocks >= 1: %.2e) -> tol %.2e (block 0: %.2e), "
          "median_tok tol %.2e (block 0: %.2e), %d bytes"
          % (name, N, nblk, worst_rms, worst_rest, tol_rms, blocks[0]["tol_rel_rms"], tol_med,
             blocks[0]["tol_median_tok"], size))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--golden", default=os.path.join(HERE, "..", "..", "tests", "golden"))
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    for n in N_TOKENS:
        if a.only and n not in a.only.split(","):
            continue
        make_case(n, a.golden)


if __name__ == "__main__":
    main()
