#!/usr/bin/python3
"""Check tools/reference/model_v41.py against DeepSeek's V4.1 inference/model.py + engram.py (read at run time from
--official-dir / $DSV4_OFFICIAL_V41_DIR, never stored in the repository), run on CPU (torch 1.13, BF16 default dtype
as generate.py sets it) with plain-torch stand-ins for the tilelang kernels (below; stand_ins.py's V4 ones with the
V4.1 block sizes: 32-wide FP8 activation/weight blocks, FP4 weights with 32-blocks, FP4 activations with UE8M0/32
or E4M3/16 scales). The official code defines prefill only at position 0 and decode one token at a time, so the
schedules compared are: one prefill of N tokens, and a prefill of P tokens followed by one-token decode steps, each
followed by the DSpark draft (forward_spec, temperature 0).

Measured: max |logit diff| / max |logit| per call, the argmax, and the compressed positions each index source
selected (the official ones are read from its top-k indices).

With --teacher-force, every reference block (and Engram layer) is given the official block's input state (and
pre_mix) of the same call instead of its own, so each block is compared on identical inputs and an early BF16
rounding flip cannot propagate: per-block bit-identity and the index selections then measure the block's own
arithmetic only. Differing selections are printed with the reference's scores of the swapped positions.

With --stable-topk the official top-k (index scores, candidate blocks, MoE gate) breaks exact ties to the lower
index, as the reference does (torch leaves the order of equal values unspecified).

usage: v41_model.py [--official-dir DIR] [--n N] [--prefill P] [--seed S] [--teacher-force] [--stable-topk]
"""
import argparse
import math
import os
import sys
import types

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
import stand_ins as si  # noqa: E402
import model_v41 as ref  # noqa: E402


# ---------------------------------------------------------------------------------- V4.1 kernel stand-ins
def act_quant(x, block_size=32, scale_fmt=None, scale_dtype=torch.float32, inplace=False):
    return si.act_quant(x, block_size, scale_fmt, scale_dtype, inplace)


def fp4_act_quant(x, block_size=32, inplace=False, scale_dtype=None):
    assert inplace
    if scale_dtype is not torch.float8_e4m3fn:
        return si.fp4_act_quant(x, block_size, True)
    N = x.size(-1)
    xf = x.float().unflatten(-1, (-1, block_size))
    amax = xf.abs().amax(-1).clamp(min=6 * 2.0 ** -9)
    s = si.round_e4m3(amax / 6.0).float()             # E4M3 scale, RNE
    q = si.round_e2m1((xf / s.unsqueeze(-1)).clamp(-6, 6)).float()
    x.copy_((q * s.unsqueeze(-1)).flatten(-2)[..., :N].to(x.dtype))
    return x


def _gemm(a, a_s, B, sb_rows, ab, bb):
    K = a.size(-1)
    M = a.numel() // K
    N = B.size(0)
    A = a.reshape(M, K).float()
    sa = a_s.reshape(M, -1).float()
    acc = torch.zeros(M, N, dtype=torch.float32)
    for k in range(0, K, 32):
        part = A[:, k:k + 32] @ B[:, k:k + 32].t()
        acc += part * (sa[:, k // ab:k // ab + 1] * sb_rows[:, k // bb].unsqueeze(0))
    return acc.to(torch.get_default_dtype()).reshape(*a.shape[:-1], N)


def fp8_gemm(a, a_s, b, b_s, scale_dtype=None, block_size=32):
    N = b.size(0)
    sb = b_s.float().repeat_interleave(block_size, dim=0)[:N]
    return _gemm(a, a_s, b.float(), sb, block_size, block_size)


def fp4_gemm(a, a_s, b, b_s, scale_dtype=None, act_block_size=32):
    return _gemm(a, a_s, si.unpack_fp4_x2(b), b_s.float(), act_block_size, 32)


_topk = torch.Tensor.topk


def stable_topk(self, k, dim=-1, largest=True, sorted=True):
    """torch.topk with exact ties broken to the lower index (torch leaves their order unspecified; the reference
    and the C code break them so): a stable descending sort."""
    if not largest:
        return _topk(self, k, dim, largest, sorted)
    v, i = torch.sort(self, dim=dim, descending=True, stable=True)
    return torch.return_types.topk((v.narrow(dim, 0, k), i.narrow(dim, 0, k)))


def load_official(d):
    si.install_dtype_aliases()
    kern = types.ModuleType("kernel")
    kern.act_quant, kern.fp4_act_quant, kern.fp8_gemm, kern.fp4_gemm = act_quant, fp4_act_quant, fp8_gemm, fp4_gemm
    kern.sparse_attn, kern.hc_split_sinkhorn = si.sparse_attn, si.hc_split_sinkhorn
    sys.modules["kernel"] = kern
    import v41_engram
    sys.modules["tokenizers"] = v41_engram._tokenizers_module()
    sys.path.insert(0, d)
    import model as official   # upstream model.py with its two sibling imports made top-level
    return official, v41_engram.IdentityTokenizer


def set_weights(model, W, cfg):
    n_set = 0
    for name, prm in model.named_parameters():
        base = name[:-len(".scale")] + ".weight" if name.endswith(".scale") else name
        if base not in W:
            raise SystemExit(f"official parameter {name} has no reference tensor")
        q = W[base]
        with torch.no_grad():
            if name.endswith(".scale"):
                prm.copy_(q.s.to(prm.dtype))
            elif prm.dtype == torch.complex128:          # FP4 pairs
                prm.copy_(torch.complex(q.q[:, 0::2], q.q[:, 1::2]))
            elif prm.dtype == torch.float16:             # E4M3 values
                prm.copy_(q.q.to(torch.float16))
            else:
                prm.copy_(q.w.to(prm.dtype))
        n_set += 1
    return n_set


def install_forcing(official, s, stats):
    """Record each official Block / Engram call's input and output; make the reference's block / Engram of the same
    layer start from the official input and count the output values that differ."""
    rec = {}
    if not getattr(official.Block, "_dsv4_rec", None):
        ob, oe = official.Block.forward, official.Engram.forward

        def block_fwd(self, x, start_pos, pre_mix, *rest):
            out, pre = ob(self, x, start_pos, pre_mix, *rest)
            official.Block._dsv4_rec[self.layer_id] = (x.clone(), pre_mix.clone(), out.clone())
            return out, pre

        def engram_fwd(self, x, hash_ids, token_mask=None):
            out = oe(self, x, hash_ids, token_mask)
            official.Block._dsv4_rec[("engram", self.layer_id)] = (x.clone(), None, out.clone())
            return out
        official.Block.forward, official.Engram.forward = block_fwd, engram_fwd
    official.Block._dsv4_rec = rec
    rb_, re_ = s.block, s.engram

    def cmp(what, out, ref_out):
        stats[0] += 1
        o = ref_out[0].double()
        nd = int((o != out).sum())
        stats[1] += nd > 0
        stats[2] += nd
        if nd:
            rel = float(((o - out).abs() / o.abs().clamp(min=1e-30)).max())
            print(f"  {what}: {nd} of {o.numel()} BF16 values differ (max relative {rel:.2e})")

    def block(L, X, pos0, pre_mix, attn_fn=None):
        x, pm, o = rec[L]
        out, pre = rb_(L, x[0].to(s.dt), pos0, pm[0].to(s.dt), attn_fn)
        cmp(f"block {L} at {pos0} (+{x.shape[1]})", out, o)
        return out, pre

    def engram(L, X, pos0):
        x, _, o = rec[("engram", L)]
        out = re_(L, x[0].to(s.dt), pos0)
        cmp(f"engram {L} at {pos0} (+{x.shape[1]})", out, o)
        return out
    s.block, s.engram = block, engram


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--official-dir", default=os.environ.get("DSV4_OFFICIAL_V41_DIR", "/tmp/official_v41"))
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--prefill", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--teacher-force", action="store_true")
    ap.add_argument("--f32", action="store_true", help="run the reference in its float32 mode (official F32 order)")
    ap.add_argument("--golden", action="store_true",
                    help="the config, weights (as stored in the checkpoint) and tokens of tests/golden/v41/tiny")
    ap.add_argument("--stable-topk", action="store_true",
                    help="break exact ties of the official top-k to the lower index, as the reference does")
    a = ap.parse_args()
    if a.stable_topk:
        torch.Tensor.topk = stable_topk
    official, IdTok = load_official(a.official_dir)
    if a.golden:
        import make_v41_goldens as mg
        cfg = ref.Config(**mg.CONFIG)
        a.seed = mg.SEED
        W = mg.checkpoint_weights(cfg, a.seed)[1]
    else:
        cfg = ref.Config()
        W = ref.init_weights(cfg, a.seed)
    g = torch.Generator().manual_seed(a.seed + 100)
    toks = torch.randint(3, cfg.vocab_size, (a.n,), generator=g).tolist()
    torch.set_default_dtype(torch.bfloat16)
    keys = {k: v for k, v in cfg.to_dict().items() if k not in ("vision_enabled", "image_token_id")}
    args = official.ModelArgs(max_batch_size=1, max_seq_len=64, temperature=0, **keys)
    worst = 0.0
    ok = True
    by_sched = {}
    for sched in ("prefill", "decode"):
        official.shared_attn.__init__()
        official.get_window_topk_idxs.cache_clear()
        official.get_dspark_topk_idxs.cache_clear()
        model = official.Transformer(args, IdTok(cfg.vocab_size))
        nset = set_weights(model, W, cfg)
        picks = {}
        for L, blk in enumerate(model.layers):
            if blk.attn.indexer is not None:
                orig = blk.attn.indexer.forward

                def hook(x, qr, latent, start_pos, offset, orig=orig, L=L):
                    r = orig(x, qr, latent, start_pos, offset)
                    for t in range(r.shape[1]):
                        picks[(L, start_pos + t)] = sorted(int(i) - offset for i in r[0, t] if i >= 0)
                    return r
                blk.attn.indexer.forward = hook
        s = ref.Session(cfg, W, dtype=torch.float32 if a.f32 else torch.float64)
        blk_stats = [0, 0, 0]     # blocks compared, blocks not bit-identical, BF16 values differing
        if a.teacher_force:
            install_forcing(official, s, blk_stats)
        calls = [(0, a.n)] if sched == "prefill" else [(0, a.prefill)] + [(p, 1) for p in range(a.prefill, a.n)]
        for p0, n in calls:
            ids = torch.tensor([toks[p0:p0 + n]])
            out_ids, lo, mh = model(ids, p0)
            lr = s.eval(toks[p0:p0 + n])
            d = float((lo[0].double() - lr).abs().max() / lr.abs().max())
            worst = max(worst, d)
            same = int(lo[0].argmax()) == int(lr.argmax())
            ok &= same or a.teacher_force
            line = f"{sched} call at {p0:2d} (+{n:2d}): logits rel diff {d:.2e}, argmax {'same' if same else 'DIFFERENT'}"
            spec = model.forward_spec(out_ids, mh, p0)
            if spec is not None:
                o_ids, o_log, o_conf = spec
                r_log, r_ids, r_conf = s.dspark(int(out_ids[0]))
                dd = float((o_log[0].double() - r_log).abs().max() / r_log.abs().max())
                dc = float((o_conf[0].double() - r_conf).abs().max())
                worst = max(worst, dd)
                ok &= o_ids[0].tolist() == r_ids or a.teacher_force
                line += f"; DSpark logits rel diff {dd:.2e}, ids {'same' if o_ids[0].tolist() == r_ids else 'DIFFERENT'}, confidence |diff| {dc:.2e}"
            print(line)
        rp = {(L, P): sel for (L, P, sel) in s.record}
        diff = sorted(k for k in picks if picks[k] != rp.get(k))
        nd = len(diff)
        ties = 0
        for k in diff[:6 if not a.teacher_force else len(diff)]:
            print(f"  layer {k[0]} position {k[1]}: official {picks[k]}, reference {rp.get(k)}")
            if a.teacher_force:
                row = s.scores[k]
                only_o = sorted(set(picks[k]) - set(rp[k]))
                only_r = sorted(set(rp[k]) - set(picks[k]))
                tie = sorted(float(row[j]) for j in only_o) == sorted(float(row[j]) for j in only_r)
                if not tie and 0 <= cfg.candidate_source_layer < k[0]:
                    # a tie between candidate blocks (block maxima of the candidate source's scores)
                    crow = s.scores[(cfg.candidate_source_layer, k[1])]
                    bs = cfg.candidate_block_size
                    bmax = [max(float(v) for v in crow[j:j + bs]) for j in range(0, crow.numel(), bs)]
                    bo = sorted({j // bs for j in only_o})
                    br = sorted({j // bs for j in only_r})
                    tie = bool(bo) and sorted(bmax[b] for b in bo) == sorted(bmax[b] for b in br)
                    print(f"    candidate blocks: official-only {bo}, reference-only {br}, block maxima "
                          + ", ".join(f"{b}: {bmax[b]:.6g}" for b in bo + br)
                          + (" (exact tie between candidate blocks)" if tie else ""))
                ties += tie
                print("    reference scores: official-only " + ", ".join(f"{j}: {float(row[j]):.6g}" for j in only_o)
                      + "; reference-only " + ", ".join(f"{j}: {float(row[j]):.6g}" for j in only_r)
                      + (" (exact tie: torch.topk's order among equal scores is unspecified)" if tie else ""))
        if a.teacher_force:
            print(f"{sched}: teacher-forced blocks compared {blk_stats[0]}, not bit-identical {blk_stats[1]}, "
                  f"BF16 values differing {blk_stats[2]}")
        print(f"{sched}: {nset} official parameters set; indexer selections compared: {len(picks)}, different: {nd}"
              + (f" (exact score ties: {ties})" if a.teacher_force else ""))
        ok &= nd == (ties if a.teacher_force else 0)
        by_sched[sched] = picks
    a_, b_ = by_sched["prefill"], by_sched["decode"]
    q = sorted(k for k in a_ if k[1] >= a.prefill and a_[k] != b_.get(k))
    print(f"official code, prefill vs decode schedule (index-key slot quirk and noise): {len(q)} of "
          f"{sum(1 for k in a_ if k[1] >= a.prefill)} selections after the first {a.prefill} positions differ "
          f"(layers {sorted(set(k[0] for k in q))})")
    print(f"worst relative logit difference {worst:.2e}; agreement {'OK' if ok else 'NOT OK'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
