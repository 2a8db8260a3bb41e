"""Write the tiny seeded golden checkpoints + logits under tests/golden/<case>/ (format: docs/internals.md).

    nice /usr/bin/python3 tools/reference/make_goldens.py [--out tests/golden] [--only case,...] [--check]

Per case: config.json + model.safetensors (or 2 shards + index), golden.json, <schedule>.f32, mtp.f32.
Deterministic (fixed seeds, single thread). See tools/reference/README.md for the method:
- random weights are *shaped* so the network is contractive (sublayer outputs small next to the residual
  streams, near-identity mHC mixing) and every discrete decision has a margin: router scores have a spread
  bias, the indexer scores are spread by a larger weights_proj;
- token sequences are drawn left to right; token t is re-drawn while any router top-k gap (relative to the
  top score) at position t is below MIN_GAP["router"], any indexer top-k gap (relative to max|score|) is below
  MIN_GAP["indexer"], or a float32 session takes a different decision (decisions at t depend only on tokens
  <= t); the whole case is redone with a new seed if a float32 run of any schedule still flips a decision;
- goldens are the float64-accumulation run ("ideal F32": all BF16/FP8/FP4 rounding points identical);
  tolerance = TOL_FACTOR x the largest |f32 - f64| seen over all schedules of the case (relative to max|r|),
  with a floor.
"""
import argparse
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from model import Config, Transformer, Session          # noqa: E402
from safetensors_io import save_checkpoint               # noqa: E402

torch.set_num_threads(1)

MIN_GAP = {"router": 1e-2, "indexer": 3e-2}   # smallest accepted relative top-k gap per decision kind
TOL_FACTOR = 4.0    # tolerance = TOL_FACTOR x measured f32-vs-f64 noise
TOL_FLOOR_REL = 2e-3


def base_cfg(**kw):
    d = dict(vocab_size=256, hidden_size=128, num_attention_heads=2, head_dim=128, qk_rope_head_dim=64,
             q_lora_rank=64, o_groups=1, o_lora_rank=64, moe_intermediate_size=32, n_routed_experts=8,
             n_shared_experts=1, num_experts_per_tok=2, num_hash_layers=0, routed_scaling_factor=1.5,
             swiglu_limit=10.0, sliding_window=128, index_n_heads=4, index_head_dim=128, index_topk=8,
             num_nextn_predict_layers=1)
    d.update(kw)
    return d


# name -> (config kwargs, sequence length, shards, seed)
CASES = {
    # Flash-like: window, window, CSA, HCA (+ window-only MTP); 2 hash layers; o_groups 2
    "flash": (base_cfg(num_hidden_layers=4, compress_ratios=[0, 0, 4, 128, 0], num_hash_layers=2, o_groups=2,
                       index_topk=16), 270, 1, 11),
    # Pro-like: HCA, HCA, CSA, HCA; 1 hash layer; o_groups 1; 4 heads; sharded in 2 files
    "pro": (base_cfg(num_hidden_layers=4, compress_ratios=[128, 128, 4, 128, 0], num_hash_layers=1,
                     num_attention_heads=4, o_groups=1, index_topk=24, routed_scaling_factor=2.5), 262, 2, 22),
    # window-only model, 2 hash layers, o_groups 2, crosses the 128 window
    # Stress settings (tests/MUTATIONS.md): swiglu_limit 1.0 so the SwiGLU clamps act on ~1/4 of the elements on
    # both sides of g and v (with limit 10 a gate clamped from below changes silu(g) by < 5e-4: invisible in BF16);
    # hc_sinkhorn_iters 3 with strong comb logits (SHAPING) so that one Sinkhorn iteration more or less changes M
    # by O(1e-2) (at 20 iterations the 20th changes M by ~1e-3, below the BF16 noise of the states)
    "window": (base_cfg(num_hidden_layers=3, compress_ratios=[0, 0, 0, 0], num_hash_layers=2, o_groups=2,
                        swiglu_limit=1.0, hc_sinkhorn_iters=3), 190, 1, 33),
    # hidden 256, CSA with a small index head (64) and topk that stays larger than the entries for a while,
    # HCA; no hash layer; o_groups 2 with 4 heads
    "d256": (base_cfg(hidden_size=256, num_hidden_layers=2, compress_ratios=[4, 128, 0], num_attention_heads=4,
                      o_groups=2, index_head_dim=128, index_n_heads=2, index_topk=40, q_lora_rank=128,
                      n_routed_experts=4), 200, 1, 44),
    # the real V4 head geometry: head_dim 512, rope 64 (nope 448 = 7 FP8-64 blocks of the KV simulation);
    # window, CSA, HCA (+ window-only MTP); 1 hash layer; 2 heads in 2 o_groups; every FP8/FP4 GEMM width a
    # multiple of 128 (q_lora, o_groups*o_lora, moe_inter), so DeepSeek's official code runs it strictly;
    # hc_sinkhorn_iters 20 (V4) with strong comb logits (SHAPING) so the last 10 iterations matter; top-6 routing
    # (V4's count) so six BF16 expert outputs are summed per token
    "hd512": (base_cfg(num_hidden_layers=3, compress_ratios=[0, 4, 128, 0], num_hash_layers=1, num_attention_heads=2,
                       head_dim=512, qk_rope_head_dim=64, q_lora_rank=128, o_groups=2, o_lora_rank=64,
                       moe_intermediate_size=128, n_routed_experts=8, num_experts_per_tok=6, index_topk=8),
              270, 1, 55),
}


# Extra shaping per case (make mutations of rarely-active paths visible, tools/mutate.sh / tests/MUTATIONS.md):
#   comb_amp: multiplies the mHC comb base logits (identity + shift + noise) so the Sinkhorn projection needs
#             all its iterations (20 vs 19 iterations differ by ~2e-3 in M at amp 4, by 6e-9 at amp 1);
#   ffn_amp:  multiplies the std of every expert's w1/w3 (routed and shared) so the SwiGLU pre-activations
#             exceed swiglu_limit more often; w2 is divided by ffn_amp^2 so the MoE output keeps its size.
#   kv_tiny:  scales the odd FP8-64 blocks of the KV nope dims (dims 64-127, 192-255, 320-383 of 448) by this
#             factor (kv_norm and main-compressor norm weights) and the matching wo_a input columns by its inverse,
#             so those dims carry about half of the attention output while being far below the other blocks: the
#             KV FP8 simulation's block size is then visible (with blocks of 128 they share the scale of their big
#             neighbour and fall into the E4M3 subnormal range; with blocks of 64 they are quantized on their own).
#             With unshaped weights every 64-block has a similar amax and a power-of-two scale makes block size
#             64 vs 128 change only values < ~1e-4 x amax: bit-identical logits.
# The random stream is the same, only scaled.
SHAPING = {"window": {"comb_amp": 4.0}, "hd512": {"comb_amp": 6.0, "kv_tiny": 2.0 ** -15}}


def shaped_init(model, seed, shaping=None):
    """Seeded random weights with clear decision margins (see module doc); `shaping`: see SHAPING."""
    cfg = model.cfg
    comb_amp = (shaping or {}).get("comb_amp", 1.0)
    ffn_amp = (shaping or {}).get("ffn_amp", 1.0)
    g = torch.Generator().manual_seed(seed)

    def rn(*shape, std=1.0):
        return torch.randn(*shape, generator=g) * std

    with torch.no_grad():
        for name, p in model.named_parameters():
            shp = p.shape
            if name == "embed.weight":
                p.copy_(rn(*shp, std=1.0))
            elif name == "head.weight":
                p.copy_(rn(*shp, std=1.0 / shp[1] ** 0.5))
            elif name.endswith("norm.weight"):
                p.copy_(1.0 + rn(*shp, std=0.1))
            elif name.endswith("_fn"):
                p.copy_(rn(*shp, std=0.02 / shp[1] ** 0.5))
            elif name.endswith("_base"):
                hc = cfg.hc
                if shp[0] == hc:               # hc_head: p ~ 1/hc each
                    p.copy_(-1.1 + rn(hc, std=0.1))
                else:
                    # pre ~ 0.25 with spread, post spread per stream (so the 4 streams diverge), comb an
                    # asymmetric mix: identity plus a cyclic shift, so M != M^T and the hc_post orientation
                    # (sum over the first index of M, docs/architecture.md §4.2 / §7.2 item 5) changes the result measurably.
                    b = torch.zeros(shp[0])
                    b[:hc] = -1.1 + rn(hc, std=0.5)
                    b[hc:2 * hc] = -1.0 + rn(hc, std=1.0)
                    shift = torch.roll(torch.eye(hc), 1, dims=1)
                    b[2 * hc:] = ((torch.eye(hc) * 2.0 + shift * 1.5).flatten() + rn(hc * hc, std=0.3)) * comb_amp
                    p.copy_(b)
            elif name.endswith("_scale"):
                p.copy_(0.5 + rn(*shp, std=0.1).abs())
            elif name.endswith("attn_sink"):
                p.copy_(rn(*shp, std=0.5))
            elif name.endswith(".ape"):
                p.copy_(rn(*shp, std=0.3))
            elif name.endswith("gate.bias"):
                # spread biases: selection dominated by bias + a moderate score term
                p.copy_(torch.randperm(shp[0], generator=g).to(torch.float32) * 0.15)
            elif name.endswith("gate.weight"):
                p.copy_(rn(*shp, std=1.0 / shp[1] ** 0.5))
            elif name.endswith("weights_proj.weight"):
                p.copy_(rn(*shp, std=4.0 / shp[1] ** 0.5))
            elif name.endswith("compressor.wgate.weight"):
                p.copy_(rn(*shp, std=1.0 / shp[1] ** 0.5))
            elif ".experts." in name or "shared_experts" in name:
                std = 0.1 / ffn_amp ** 2 if name.endswith("w2.weight") else ffn_amp
                p.copy_(rn(*shp, std=std / shp[1] ** 0.5))
            elif name.endswith("wo_b.weight") or name.endswith("wo_a.weight"):
                p.copy_(rn(*shp, std=0.5 / shp[1] ** 0.5))
            elif name.endswith(".weight"):
                p.copy_(rn(*shp, std=1.0 / shp[1] ** 0.5))
            else:
                raise ValueError("no init rule for " + name)
        kv_tiny = (shaping or {}).get("kv_tiny")
        if kv_tiny:
            hd, nope = cfg.head_dim, cfg.head_dim - cfg.rope_dim
            tiny = torch.zeros(hd, dtype=torch.bool)
            for b0 in range(64, nope, 128):
                tiny[b0:min(b0 + 64, nope)] = True
            for name, p in model.named_parameters():
                if name.endswith("attn.kv_norm.weight") or name.endswith("attn.compressor.norm.weight"):
                    p[tiny] *= kv_tiny
                elif name.endswith("attn.wo_a.weight"):
                    cols = tiny.repeat(p.shape[1] // hd)
                    p[:, cols] /= kv_tiny
        for name, b in model.named_buffers():
            if name.endswith("tid2eid"):
                b.copy_(torch.stack([torch.randperm(cfg.n_experts, generator=g)[:cfg.topk]
                                     for _ in range(cfg.vocab_size)]))


def schedules(T):
    sch = [("prefill", [T])]
    n_dec = min(T, 150)
    dec = [5] + [1] * (n_dec - 5)
    if T > n_dec:
        dec.append(T - n_dec)
    sch.append(("decode", dec))
    ch, pos = [], 0
    for c in [5, 37, 64, 21, 1, 1, 1, 1, 70, 50, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]:
        if pos + c >= T:
            break
        ch.append(c)
        pos += c
    ch.append(T - pos)
    sch.append(("chunks", ch))
    return sch


def run_schedule(model, toks, calls, dtype, record=False):
    s = Session(model, dtype, record=record)
    rows, p = [], 0
    for c in calls:
        rows.append(s.eval(toks[p:p + c]))
        p += c
    return torch.stack(rows), s


def min_gap(margins):
    """Smallest gap / threshold ratio (>= 1 means every decision is clear)."""
    gs = [m[3] / MIN_GAP[m[0]] for m in margins]
    return min(gs) if gs else float("inf")


def choices(margins):
    return {(m[0], m[1], m[2]): m[4] for m in margins}


def gen_tokens(m64, m32, cfg, T, g):
    """Left-to-right generation of a random token sequence whose every decision (at that position) has a
    relative gap >= MIN_GAP in the float64 run and is identical in a float32 run: decisions at position t
    depend only on tokens <= t, so a violation at t is repaired by re-drawing token t."""
    s = Session(m64, torch.float64, record=True)
    s32 = Session(m32, torch.float32, record=True)
    toks, redraws = [], 0
    for t in range(T):
        for attempt in range(400):
            cand = int(torch.randint(2, cfg.vocab_size, (1,), generator=g))
            s2 = s.clone()
            s2.eval([cand])
            if min_gap(s2.margins) < 1.0:
                redraws += 1
                continue
            s32b = s32.clone()
            s32b.eval([cand])
            if choices(s32b.margins) != choices(s2.margins):
                redraws += 1
                continue
            break
        else:
            raise RuntimeError("position %d: no token with clear decision margins" % t)
        s, s32 = s2, s32b
        toks.append(cand)
    return toks, s, redraws


def make_case(name, out_dir, check_only=False):
    kw, T, shards, seed = CASES[name]
    cfg = Config(**kw)
    m = Transformer(cfg)
    shaped_init(m, seed, SHAPING.get(name))
    d = os.path.join(out_dir, name)
    save_checkpoint(m.state_dict(), cfg, d, shards=shards)
    size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
    m64 = Transformer.from_dir(d)
    m32 = Transformer.from_dir(d)
    for retry in range(5):
        g = torch.Generator().manual_seed(seed + 1000 + retry)
        toks, sess, redraws = gen_tokens(m64, m32, cfg, T, g)
        print("  %s: %d tokens, %d re-draws for margins, checkpoint %d bytes" % (name, T, redraws, size))
        # MTP next token with clear margins at the last position
        for attempt in range(400):
            next_tok = int(torch.randint(2, cfg.vocab_size, (1,), generator=g))
            s2 = sess.clone()
            s2.eval_mtp(next_tok)
            if min_gap([mm for mm in s2.margins if mm[2] == T - 1]) >= 1.0:
                break
        results, worst, flips = {}, 0.0, 0
        for sname, calls in schedules(T):
            r64, s64 = run_schedule(m64, toks, calls, torch.float64, record=True)
            r32, s32 = run_schedule(m32, toks, calls, torch.float32, record=True)
            results[sname] = (calls, r64)
            c64, c32 = choices(s64.margins), choices(s32.margins)
            nflip = sum(1 for k in c64 if c32.get(k) != c64[k])
            flips += nflip
            dev = ((r32.double() - r64.double()).abs().amax(-1) / r64.double().abs().amax(-1)).max().item()
            worst = max(worst, dev)
            print("  %s/%s: %d calls, %d decisions, min gap/threshold %.2f, f32 decision flips %d, "
                  "f32-vs-f64 max rel dev %.2e" % (name, sname, len(calls), len(c64), min_gap(s64.margins), nflip, dev))
            if sname == "prefill":
                mt64 = s64.eval_mtp(next_tok)
                mt32 = s32.eval_mtp(next_tok)
                dm = ((mt32.double() - mt64.double()).abs().max() / mt64.double().abs().max()).item()
                worst = max(worst, dm)
                print("  %s/mtp: next_token %d, f32-vs-f64 rel dev %.2e" % (name, next_tok, dm))
        if not flips:
            break
        print("  %s: float32 run flips %d decisions, new token sequence" % (name, flips))
    else:
        raise RuntimeError(name + ": float32 runs keep flipping decisions")
    finals = [r[-1].double() for (_, r) in results.values()]
    xs = max(((a - finals[0]).abs().max() / finals[0].abs().max()).item() for a in finals)
    print("  %s: cross-schedule rel dev of the final row (f64) %.2e" % (name, xs))
    rel = max(TOL_FACTOR * worst, TOL_FLOOR_REL)
    info = {"case": name, "T": T, "bytes": size, "noise_rel": worst, "tol_rel": rel}
    if check_only:
        return info
    gold = {
        "tokens": toks,
        "tolerance": {"abs": 0.0, "rel": rel,
                      "why": ("float64-accumulation reference; the float32 reference deviates by at most %.2e x max|r| "
                              "over all schedules of this case (accumulation order, then BF16/FP8 rounding flips of "
                              "near-tie values, amplified by the FP8 activation quantization); tolerance = %.0fx that, "
                              "floor %.0e. Every router top-k decision has a relative gap >= %.0e and every indexer top-k "
                              "decision >= %.0e of max|score| (tokens were drawn to ensure it), and the float32 runs "
                              "take the same decisions." % (worst, TOL_FACTOR, TOL_FLOOR_REL, MIN_GAP["router"],
                                                            MIN_GAP["indexer"]))},
        "schedules": [],
        "mtp": {"next_token": next_tok, "logits": "mtp.f32"},
    }
    for sname, (calls, r64) in results.items():
        fn = sname + ".f32"
        r64.to(torch.float32).numpy().astype("<f4").tofile(os.path.join(d, fn))
        gold["schedules"].append({"name": sname, "calls": calls, "logits": fn})
    mt64.to(torch.float32).numpy().astype("<f4").tofile(os.path.join(d, "mtp.f32"))
    with open(os.path.join(d, "golden.json"), "w") as f:
        json.dump(gold, f, indent=1)
    return info


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(HERE, "..", "..", "tests", "golden"))
    ap.add_argument("--only", default="")
    ap.add_argument("--check", action="store_true", help="measure only, write checkpoints to a temp dir")
    a = ap.parse_args()
    names = [n for n in CASES if not a.only or n in a.only.split(",")]
    out = a.out if not a.check else "/tmp/golden_check"
    for n in names:
        info = make_case(n, out, a.check)
        print(json.dumps(info))


if __name__ == "__main__":
    main()
