#!/usr/bin/python3
"""train_nano_v41.py -- train, export and evaluate the built-in nano DeepSeek-V4.1 model (models/nano-v41).

    nice /usr/bin/python3 tools/train/train_nano_v41.py data     # token cache (needs the dsv4 binary: --dsv4 PATH)
    nice /usr/bin/python3 tools/train/train_nano_v41.py train    # train (resumes from the last checkpoint)
    nice /usr/bin/python3 tools/train/train_nano_v41.py export   # export the last checkpoint to models/nano-v41
    nice /usr/bin/python3 tools/train/train_nano_v41.py eval [--engram-off] [--max-windows N]
                                                                  # held-out perplexity with the reference
    nice /usr/bin/python3 tools/train/train_nano_v41.py dspark [--max-windows N]   # DSpark drafts in the reference
(tools/train/run_v41.sh runs everything.)

Model: the V4.1 architecture of tools/reference/model_v41.py (docs/v41.md) at nano size: 7 layers with compress
ratios [0, 2, 2, 2, 1, 1, 0] (window-only, CSA2 ratio 2 and ratio 1), KV sources 1 (ratio 2) and 4 (ratio 1),
index sources 1 (owner), 3 (ratio 2, not an owner: reads the published keys of layer 1), 4 (owner, candidate
source) and 5 (masked by layer 4's candidate blocks); layer 2 reuses layer 1's picks; single-pass mHC (hc 4);
MoE 8 experts top 2 + 1 shared (sqrt-softplus, noaux bias, +1e-20 renormalisation); Engram on layers 1 and 4
(3-grams, 2 heads, tables of ~8,000 rows per head, the token map of models/nano/tokenizer.json); 2 DSpark stages
(block 3, 4 experts top 2, Markov head, confidence head; target layers 2, 4, 6).

Training is a differentiable float32 re-implementation of the reference's graph (this file, `Net`), batched over
sequences, with straight-through rounding wherever the reference rounds and every weight quantized (STE) in the
format the checkpoint stores it: FP8 in 32x32 UE8M0 tiles (with the reference's quant_weight), FP4 experts,
BF16, Engram rows E4M3 x UE8M0 per 32; compressed KV FP4 with E4M3 16-block scales, window KV FP8 in 32-blocks,
indexer q / k FP4. So the exported checkpoint computes (in the reference and in C) what was trained, up to
float32-vs-reference rounding order. Top-k selection (index picks, candidate blocks, experts) is not
differentiable, as in V4 training; the indexer learns by a KL loss towards the attention distribution over the
visible compressed entries (detached, averaged over heads). DSpark stages learn from teacher-forced drafts at
random positions (CE of the 3 drafts + BCE of the confidence head on "greedy draft correct"); their input
features are detached so the drafter does not change the trunk.

Loss = CE(next token) + DSPARK_W * CE(drafts) + CONF_W * BCE(confidence) + IDX_W * indexer KL.
Router balancing: the auxiliary-loss-free bias rule of train_nano.py (bias += BIAS_RATE * sign(mean - load)).
Deterministic: fixed seeds, one thread, per-step seeded batches.
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tools", "reference"))
import model_v41 as M                     # noqa: E402
import numerics as nm                     # noqa: E402
import engram_token_map                   # noqa: E402
import make_v41_goldens as G              # noqa: E402
from safetensors_io import write_safetensors  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import trainlib                           # noqa: E402

CACHE = os.path.join(HERE, "cache", "nano-v41")
RUN_DIR = os.path.join(HERE, "runs", "nano-v41")
OUT_DIR = os.path.join(ROOT, "models", "nano-v41")
TOKENIZER = os.path.join(ROOT, "models", "nano", "tokenizer.json")
CORPUS = os.path.join(ROOT, "vendor", "tinyshakespeare", "tinyshakespeare.txt")

SEQ = 256
BATCH = 4
STEPS = 400
LR = 2e-3
LR_MIN_FRAC = 0.1
WARMUP = 30
WD = 0.05
CLIP = 1.0
TABLE_LR_MULT = 5.0   # Engram tables: sparse rows, larger step (no weight decay)
DSPARK_W = 0.3
CONF_W = 0.1
IDX_W = 0.1
BIAS_RATE = 1e-2
DRAFT_POS = 16        # DSpark draft blocks per sequence per step
SEED = 4141
CKPT_EVERY = 25


def model_config(vocab_size, compressed_vocab):
    """Flat reference keys (model_v41.Config); config.json is make_v41_goldens.hf_config of it."""
    return dict(
        vocab_size=vocab_size, dim=128, moe_inter_dim=128, n_layers=7, n_mtp_layers=2, n_heads=2,
        n_routed_experts=8, n_shared_experts=1, n_activated_experts=2, route_scale=1.5, swiglu_limit=10.0,
        q_lora_rank=128, head_dim=128, rope_head_dim=64, norm_eps=1e-20, o_groups=2, o_lora_rank=64,
        window_size=64, compress_ratios=(0, 2, 2, 2, 1, 1, 0, 0, 0), kv_source_layers=(1, 4),
        index_source_layers=(1, 3, 4, 5), compress_rope_theta=160000.0, original_seq_len=65536,
        rope_theta=10000.0, rope_factor=16, beta_fast=32, beta_slow=1, index_n_heads=4, index_head_dim=128,
        index_topk=16, candidate_source_layer=4, candidate_topk_blocks=4, candidate_block_size=8,
        hc_mult=4, hc_sinkhorn_iters=20, hc_eps=1e-6,
        engram_layer_ids=(1, 4), engram_max_ngram_size=3, engram_vocab_size=8000, engram_n_heads=2,
        engram_head_dim=32, engram_pad_id=2, engram_compressed_vocab_size=compressed_vocab,
        dspark_block_size=3, dspark_noise_token_id=2, dspark_target_layer_ids=(2, 4, 6), dspark_markov_rank=32,
        dspark_n_routed_experts=4, dspark_n_activated_experts=2)


log = trainlib.log


# ----------------------------------------------------------------------------- data
def cmd_data(args):
    """Train = first n*9//10 bytes, held-out = the rest (tools/train/README.md), tokenized by the C tokenizer."""
    os.makedirs(CACHE, exist_ok=True)
    raw = open(CORPUS, "rb").read()
    cut = len(raw) * 9 // 10
    for name, part in (("train", raw[:cut]), ("val", raw[cut:])):
        out = subprocess.run([args.dsv4, "tokenize", "--tokenizer", TOKENIZER, "-t", "1"], input=part,
                             stdout=subprocess.PIPE, check=True).stdout
        ids = np.array([int(t) for t in out.split()], dtype="<u2")
        ids.tofile(os.path.join(CACHE, name + ".u16"))
        log("%s: %d bytes -> %d tokens" % (name, len(part), ids.size))


def load_ids(name):
    p = os.path.join(CACHE, name + ".u16")
    if not os.path.exists(p):
        sys.exit("no token cache %s: run `train_nano_v41.py data --dsv4 build/rel/dsv4` first" % p)
    return torch.from_numpy(np.fromfile(p, dtype="<u2").astype(np.int64))


def make_cfg():
    cmap, n_keys = engram_token_map.build(TOKENIZER)
    assert cmap[2] == 2, "engram_pad_id 2 must map to itself"
    return M.Config(**model_config(len(cmap), n_keys)), cmap


# ----------------------------------------------------------------------------- trainable model
rb = nm.round_bf16_ste


def fp8a(x):
    return nm.fp8_sim_ste(x, 32)


def fp4_e4m3_16_ste(x):
    return nm.ste(x, M.fp4_e4m3_16(x.detach()))


def table_sim(w):
    """Engram rows as stored: E4M3 values x UE8M0 scale per 32 (= the FP8 activation simulation in 32-blocks)."""
    return nm.fp8_sim(w, 32)


class Net(torch.nn.Module):
    def __init__(self, cfg, cmap, seed):
        super().__init__()
        self.cfg = cfg
        self.specs = M.weight_specs(cfg)
        self.P = torch.nn.ParameterDict()
        self.key = {}
        g = torch.Generator().manual_seed(seed)
        nl = cfg.n_layers + cfg.n_mtp_layers
        for name, (shape, fmt, init) in self.specs.items():
            k = name.replace(".", "__")
            self.key[name] = k
            r = torch.randn(*shape, generator=g)
            if init == "norm":
                v = torch.ones(shape)
            elif init in ("w", "wg", "n1", "hcfn"):
                v = r * 0.02
                if name.endswith("wo_b.weight") or name.endswith(".w2.weight"):
                    v = v / math.sqrt(2 * nl)
            elif init == "hcs":
                v = torch.ones(shape)
            elif init == "table":
                v = r * 0.5
            else:                                    # hcb, sink, bias
                v = torch.zeros(shape)
            self.P[k] = torch.nn.Parameter(v)
        self.cmap = torch.tensor(cmap, dtype=torch.int64)
        self.freqs = {r: M.rope_freqs(cfg, r) for r in set(cfg.compress_ratios)}
        self.engram_off = False
        self.wcache = {}

    def raw(self, name):
        return self.P[self.key[name]]

    def w(self, name):
        """Effective weight: the stored format's quant-dequant (STE); cached for one forward + backward."""
        if name not in self.wcache:
            self.wcache[name] = self.w_(name)
        return self.wcache[name]

    def w_(self, name):
        p = self.raw(name)
        fmt = self.specs[name][1]
        if name.endswith("attn.wo_a.weight"):
            fmt = "fp8"                                   # stored FP8, used as its BF16 dequantization
        if fmt in ("fp8", "fp4"):
            return nm.ste(p, M.quant_weight(p.detach(), fmt).w.float())
        if fmt == "bf16" or (fmt == "f32" and ".compressor." in name):
            return rb(p)
        if fmt == "table":
            return nm.ste(p, table_sim(p.detach()))
        return p

    def lin(self, name, x):
        fmt = self.specs[name][1]
        W = self.w(name)
        if fmt in ("fp8", "fp4"):
            return rb(fp8a(x) @ W.t())
        if fmt == "bf16":
            return rb(x @ W.t())
        return x @ W.t()

    def rms(self, x, name):
        return rb(self.w(name) * (x * torch.rsqrt(x.square().mean(-1, keepdim=True) + self.cfg.norm_eps)))

    @staticmethod
    def rope(x, c, s, inverse=False):
        """c, s broadcastable to x[..., :r/2]; BF16 on the rotated dims (as model_v41.rope)."""
        if inverse:
            s = -s
        r = c.shape[-1] * 2
        a, b = x[..., -r:][..., 0::2], x[..., -r:][..., 1::2]
        out = torch.stack([a * c - b * s, a * s + b * c], dim=-1).flatten(-2)
        return torch.cat([x[..., :-r], rb(out)], dim=-1)

    def cs(self, ratio, pos):
        ang = torch.outer(pos.to(torch.float32), self.freqs[ratio])
        return torch.cos(ang), torch.sin(ang)

    # ---- mHC (single pass)
    def mixes(self, X, p, site):
        cfg = self.cfg
        return M.hc_mixes(X, self.w(p + f"hc_{site}_fn"), self.w(p + f"hc_{site}_scale"),
                          self.w(p + f"hc_{site}_base"), cfg)

    @staticmethod
    def hc_pre(X, pre):
        return rb((pre.unsqueeze(-1) * X).sum(-2))

    @staticmethod
    def hc_post(y, X, post, comb):
        return rb(post.unsqueeze(-1) * y.unsqueeze(-2) + torch.einsum("...jk,...jd->...kd", comb, X))

    def block(self, L, X, pre_mix, attn, moe_stats):
        p = self.pref(L)
        a_pre, a_post, a_comb = self.mixes(X, p, "attn")
        x = self.rms(self.hc_pre(X, pre_mix), p + "attn_norm.weight")
        X = self.hc_post(attn(x), X, a_post, a_comb)
        f_pre, f_post, f_comb = self.mixes(X, p, "ffn")
        x = self.rms(self.hc_pre(X, a_pre), p + "ffn_norm.weight")
        X = self.hc_post(self.moe(L, x, moe_stats), X, f_post, f_comb)
        return X, f_pre

    def pref(self, L):
        return f"layers.{L}." if L < self.cfg.n_layers else f"mtp.{L - self.cfg.n_layers}."

    # ---- MoE
    def expert(self, p, x, wt):
        lim = self.cfg.swiglu_limit
        g = self.lin(p + "w1.weight", x)
        u = self.lin(p + "w3.weight", x)
        u, g = u.clamp(-lim, lim), g.clamp(max=lim)
        h = F.silu(g) * u
        if wt is not None:
            h = wt.unsqueeze(-1) * h
        return self.lin(p + "w2.weight", rb(h))

    def moe(self, L, x, stats):
        cfg, p = self.cfg, self.pref(L) + "ffn."
        E, k = cfg.moe(L)
        shp = x.shape
        x = x.reshape(-1, shp[-1])
        sc = torch.sqrt(F.softplus(x @ self.w(p + "gate.weight").t()))
        bias = self.raw(p + "gate.bias").detach()
        idx = (sc.detach() + bias).topk(k, dim=-1)[1]
        wts = sc.gather(1, idx)
        wts = wts / (wts.sum(-1, keepdim=True) + 1e-20) * cfg.route_scale
        if stats is not None:
            stats.setdefault(p, torch.zeros(E))
            stats[p] += torch.bincount(idx.reshape(-1), minlength=E).float()
        out = torch.zeros_like(x)
        for e in range(E):
            rows, slot = (idx == e).nonzero(as_tuple=True)
            if rows.numel() == 0:
                continue
            out = out.index_add(0, rows, self.expert(p + f"experts.{e}.", x[rows], wts[rows, slot]))
        out = rb(out + self.expert(p + "shared_experts.", x, None))
        return out.reshape(shp)

    # ---- Engram
    def engram(self, L, X, idx):
        cfg, p = self.cfg, self.pref(L) + "engram."
        B, T = X.shape[:2]
        rows = rb(self.w(p + "embed.weight")[idx]).reshape(B, T, -1)
        kv = self.lin(p + "wkv.weight", rows)
        hc, D = cfg.hc_mult, cfg.dim
        key, value = kv[..., :hc * D].reshape(B, T, hc, D), kv[..., hc * D:]
        w = self.w(p + "q_weight") * self.w(p + "k_weight")
        eps = cfg.norm_eps
        rstd = torch.rsqrt(X.square().mean(-1) + eps) * torch.rsqrt(key.square().mean(-1) + eps)
        dot = (X * w * key).sum(-1) * rstd * D ** -0.5
        gate = torch.sigmoid(torch.sign(dot) * dot.abs().clamp_min(1e-6).sqrt())
        if self.engram_off:
            gate = torch.zeros_like(gate)
        return rb(X + gate.unsqueeze(-1) * value.unsqueeze(-2))

    def engram_ids(self, toks):
        """[B, T, cols] table rows of every position (the reference's hash of the compressed ids)."""
        cfg = self.cfg
        out = {}
        for k, L in enumerate(cfg.engram_layer_ids):
            rows = [M.engram_hash_ids(self.cmap[t].tolist(), k, cfg.engram_primes, cfg.engram_offsets,
                                      cfg.engram_mults, cfg.engram_cfg()) for t in toks]
            out[L] = torch.tensor(rows, dtype=torch.int64)
        return out

    # ---- attention (CSA2, full-sequence)
    def attention(self, L, x, st, aux):
        cfg, p = self.cfg, self.pref(L) + "attn."
        B, T = x.shape[:2]
        H, hd = cfg.n_heads, cfg.head_dim
        ratio = cfg.compress_ratios[L]
        pos = torch.arange(T)
        c, s = self.cs(ratio, pos)
        qr = self.rms(self.lin(p + "wq_a.weight", x), p + "q_norm.weight")
        q = self.rope(self.lin(p + "wq_b.weight", qr).reshape(B, T, H, hd), c.unsqueeze(1), s.unsqueeze(1))
        kv = rb(fp8a(self.rope(self.rms(self.lin(p + "wkv.weight", x), p + "kv_norm.weight"), c, s)))
        scale = hd ** -0.5
        zw = torch.einsum("bthd,bsd->bths", q, kv) * scale
        band = (pos[None, :] <= pos[:, None]) & (pos[None, :] > pos[:, None] - cfg.window_size)   # [T, S]
        zw = zw.masked_fill(~band[None, :, None, :], -math.inf)
        parts, vals = [zw], [kv]
        if ratio:
            if L in cfg.kv_source_layers:
                lat, gpos = self.compress(L, x)
                gc, gs = self.cs(ratio, gpos)
                st["ckv"] = fp4_e4m3_16_ste(self.rope(lat, gc, gs))
                st["lat"] = lat
            else:
                lat = None
            ckv = st["ckv"]
            n = ckv.shape[1]
            vis = (torch.arange(n)[None, :] < ((pos + 1) // ratio)[:, None])          # [T, n]
            zc_all = torch.einsum("bthd,bnd->bthn", q, ckv) * scale
            if L in cfg.index_source_layers:
                sel, iscore = self.indexer(L, x, qr, lat, st, vis)
                st["sel"] = sel
                if IDX_W > 0:     # KL(attention over the visible compressed entries || indexer), detached target
                    ok = vis.any(-1)                                                   # rows with entries
                    v_ = vis[ok][None]
                    tz = zc_all.detach()[:, ok].masked_fill(~v_.unsqueeze(2), -math.inf)
                    tgt = torch.softmax(tz, -1).mean(2)                                # [B, T', n]
                    lq = torch.log_softmax(iscore[:, ok].masked_fill(~v_, -math.inf), -1)
                    kl = (tgt * (torch.log(tgt.clamp_min(1e-12)) - lq.masked_fill(~v_, 0))).sum(-1)
                    aux.setdefault("idx", []).append(kl.mean())
            sel = st["sel"]
            parts.append(zc_all.masked_fill(~sel[:, :, None, :], -math.inf))
            vals.append(ckv)
        sink = self.w(p + "attn_sink").reshape(1, 1, H, 1).expand(B, T, H, 1)
        z = torch.cat(parts + [sink], -1)
        pr = torch.softmax(z, -1)
        o = torch.einsum("bths,bsd->bthd", pr[..., :T], kv)
        if ratio:
            o = o + torch.einsum("bthn,bnd->bthd", pr[..., T:-1], vals[1])
        o = self.rope(rb(o), c.unsqueeze(1), s.unsqueeze(1), inverse=True)
        G_ = cfg.o_groups
        wo_a = self.w(p + "wo_a.weight").reshape(G_, cfg.o_lora_rank, -1)
        oa = rb(torch.einsum("btgd,grd->btgr", o.reshape(B, T, G_, -1), wo_a))
        return self.lin(p + "wo_b.weight", oa.reshape(B, T, -1))

    def compress(self, L, x):
        cfg, p = self.cfg, self.pref(L) + "attn.compressor."
        ratio = cfg.compress_ratios[L]
        B, T = x.shape[:2]
        if ratio == 1:
            return self.rms(self.lin(p + "wkv.weight", x), p + "norm.weight"), torch.arange(T)
        kv = x @ self.w(p + "wkv.weight").t()
        sc = x @ self.w(p + "wgate.weight").t()
        n = T // ratio
        kv = kv[:, :n * ratio].reshape(B, n, ratio, -1)
        sc = sc[:, :n * ratio].reshape(B, n, ratio, -1)
        lat = (kv * sc.softmax(2)).sum(2)
        return self.rms(rb(lat), p + "norm.weight"), torch.arange(n) * ratio

    def indexer(self, L, x, qr, lat, st, vis):
        cfg, p = self.cfg, self.pref(L) + "attn.indexer."
        ratio = cfg.compress_ratios[L]
        B, T = x.shape[:2]
        if L in cfg.kv_source_layers:
            gpos = torch.arange(lat.shape[1]) * ratio
            gc, gs = self.cs(ratio, gpos)
            k = self.rms(self.lin(p + "wk.weight", lat), p + "k_norm.weight")
            st["ikeys"] = rb(nm.fp4_sim_ste(self.rope(k, gc, gs), 32))
        nh, ihd = cfg.index_n_heads, cfg.index_head_dim
        c, s = self.cs(ratio, torch.arange(T))
        q = self.lin(p + "wq_b.weight", qr).reshape(B, T, nh, ihd)
        q = rb(nm.fp4_sim_ste(self.rope(q, c.unsqueeze(1), s.unsqueeze(1)), 32))
        n = T // ratio
        K = st["ikeys"][:, :n]
        if K.shape[1] < n:
            K = F.pad(K, (0, 0, 0, n - K.shape[1]))
        w = rb(self.lin(p + "weights_proj.weight", x) * (ihd ** -0.5 * nh ** -0.5))
        sc = rb(torch.einsum("bthd,bnd->bthn", q, K)).clamp(min=0)
        score = rb(rb(sc * w.unsqueeze(-1)).sum(2))                                  # [B, T, n]
        with torch.no_grad():
            row = score.detach().masked_fill(~vis[None], -math.inf)
            if L == cfg.candidate_source_layer:
                st["cand"] = self.candidates(row, vis)
            elif 0 <= cfg.candidate_source_layer < L:
                row = row.masked_fill(~st["cand"], -math.inf)
            kk = min(cfg.index_topk, n)
            v, ix = row.topk(kk, dim=-1)
            sel = torch.zeros_like(row, dtype=torch.bool).scatter(-1, ix, v > -math.inf)
        return sel, score

    def candidates(self, row, vis):
        cfg = self.cfg
        bs, tb = cfg.candidate_block_size, cfg.candidate_topk_blocks
        B, T, n = row.shape
        nb = (n + bs - 1) // bs
        pad = F.pad(row, (0, nb * bs - n), value=-math.inf).reshape(B, T, nb, bs).amax(-1)
        nvis = vis.sum(-1)                                                            # [T]
        last = (nvis - 1) // bs
        pin = torch.zeros(T, nb, dtype=torch.bool)
        ok = nvis > 0
        pin[ok.nonzero(as_tuple=True)[0], last[ok]] = True
        pad = pad.masked_fill(pin[None], math.inf)
        v, ix = pad.topk(min(tb, nb), dim=-1)
        keep = torch.zeros(B, T, nb, dtype=torch.bool).scatter(-1, ix, v > -math.inf)
        return keep.repeat_interleave(bs, -1)[..., :n]

    # ---- whole model
    def forward(self, toks, stats=None, aux=None):
        cfg = self.cfg
        B, T = toks.shape
        aux = {} if aux is None else aux
        self.wcache = {}
        eids = self.engram_ids(toks.tolist())
        e = self.w("embed.weight")[toks]
        X = e.unsqueeze(2).repeat(1, 1, cfg.hc_mult, 1)
        pre = torch.zeros(B, T, cfg.hc_mult)
        pre[..., 0] = 1
        st, feats = {}, []
        for L in range(cfg.n_layers):
            if L in cfg.engram_layer_ids:
                X = self.engram(L, X, eids[L])
            if L in cfg.dspark_target_layer_ids:
                feats.append(rb(X.mean(2)))
            X, pre = self.block(L, X, pre, lambda x, L=L: self.attention(L, x, st, aux), stats)
        h = self.rms(self.hc_pre(X, pre), "norm.weight")
        logits = h @ self.w("head.weight").t()
        aux["feat"] = torch.cat(feats, -1).detach()
        return logits, aux

    def dspark_train(self, toks, feat, g, stats):
        """Teacher-forced DSpark drafts at DRAFT_POS random positions P per sequence: ids [t_{P+1}, noise...] at
        positions P+1..P+Bk; logits[i] predicts t_{P+2+i}; Markov bias from the true t_{P+1+i}."""
        cfg = self.cfg
        B, T = toks.shape
        Bk, W, H, hd = cfg.dspark_block_size, cfg.window_size, cfg.n_heads, cfg.head_dim
        P = torch.randint(1, T - Bk - 1, (B, DRAFT_POS), generator=g)              # P + Bk + 1 <= T - 1
        bi = torch.arange(B).repeat_interleave(DRAFT_POS)
        P = P.reshape(-1)
        N = P.numel()
        mx = self.rms(self.lin("mtp.0.main_proj.weight", feat), "mtp.0.main_norm.weight")   # [B, T, D]
        ids = torch.full((N, Bk), cfg.dspark_noise_token_id, dtype=torch.int64)
        ids[:, 0] = toks[bi, P + 1]
        X = self.w("embed.weight")[ids].unsqueeze(2).repeat(1, 1, cfg.hc_mult, 1)
        pre = torch.zeros(N, Bk, cfg.hc_mult)
        pre[..., 0] = 1
        ring_pos = P[:, None] - W + 1 + torch.arange(W)[None, :]                      # [N, W]
        ring_ok = ring_pos >= 0
        dpos = P[:, None] + 1 + torch.arange(Bk)[None, :]                              # [N, Bk]
        c0, s0 = self.cs(0, torch.arange(T))
        dc, ds = self.cs(0, dpos.reshape(-1))
        dc, ds = dc.reshape(N, Bk, 1, -1), ds.reshape(N, Bk, 1, -1)

        def attn(L, x):
            p = self.pref(L) + "attn."
            mkv = rb(fp8a(self.rope(self.rms(self.lin(p + "wkv.weight", mx), p + "kv_norm.weight"), c0, s0)))
            ring = mkv[bi[:, None], ring_pos.clamp(min=0)]                            # [N, W, hd]
            qr = self.rms(self.lin(p + "wq_a.weight", x), p + "q_norm.weight")
            q = self.rope(self.lin(p + "wq_b.weight", qr).reshape(N, Bk, H, hd), dc, ds)
            kv = rb(fp8a(self.rope(self.rms(self.lin(p + "wkv.weight", x), p + "kv_norm.weight"),
                                   dc.squeeze(2), ds.squeeze(2))))
            keys = torch.cat([ring, kv], 1)
            ok = torch.cat([ring_ok, torch.ones(N, Bk, dtype=torch.bool)], 1)
            z = torch.einsum("nbhd,nsd->nbhs", q, keys) * hd ** -0.5
            z = z.masked_fill(~ok[:, None, None, :], -math.inf)
            sink = self.w(p + "attn_sink").reshape(1, 1, H, 1).expand(N, Bk, H, 1)
            pr = torch.softmax(torch.cat([z, sink], -1), -1)[..., :-1]
            o = rb(torch.einsum("nbhs,nsd->nbhd", pr, keys))
            o = self.rope(o, dc, ds, inverse=True)
            G_ = cfg.o_groups
            wo_a = self.w(p + "wo_a.weight").reshape(G_, cfg.o_lora_rank, -1)
            oa = rb(torch.einsum("nbgd,grd->nbgr", o.reshape(N, Bk, G_, -1), wo_a))
            return self.lin(p + "wo_b.weight", oa.reshape(N, Bk, -1))

        for stg in range(cfg.n_mtp_layers):
            L = cfg.n_layers + stg
            X, pre = self.block(L, X, pre, lambda x, L=L: attn(L, x), stats)
        p = f"mtp.{cfg.n_mtp_layers - 1}."
        x = self.hc_pre(X, pre)
        logits = self.rms(x, p + "norm.weight") @ self.w("head.weight").t()
        prev = toks[bi[:, None], P[:, None] + 1 + torch.arange(Bk)[None, :]]          # true t_{P+1+i}
        memb = self.w(p + "markov_head.embed.weight")[prev]
        logits = logits + memb @ self.w(p + "markov_head.head.weight").t()
        tgt = toks[bi[:, None], P[:, None] + 2 + torch.arange(Bk)[None, :]]
        conf = torch.cat([x, memb], -1) @ self.w(p + "confidence_head.proj.weight")[0]
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1))
        right = (logits.detach().argmax(-1) == tgt).float()
        bce = F.binary_cross_entropy_with_logits(conf, right)
        return ce, bce, float(right.mean())


# ----------------------------------------------------------------------------- training loop
def lr_at(step):
    return trainlib.cosine_lr(step, LR, WARMUP, STEPS, LR_MIN_FRAC)


def batch_at(data, step):
    return trainlib.random_windows(data, step, SEED, SEQ, BATCH)


def build():
    cfg, cmap = make_cfg()
    torch.manual_seed(SEED)
    return cfg, Net(cfg, cmap, SEED)


def param_groups(net):
    decay, no_decay, tables = [], [], []
    for name in net.specs:
        p = net.raw(name)
        fmt = net.specs[name][1]
        if name.endswith("gate.bias"):
            p.requires_grad_(False)
            continue
        if fmt == "table":
            tables.append(p)
        elif p.dim() >= 2 and not name.endswith("_fn"):
            decay.append(p)
        else:
            no_decay.append(p)
    return [{"params": decay, "weight_decay": WD, "mult": 1.0},
            {"params": no_decay, "weight_decay": 0.0, "mult": 1.0},
            {"params": tables, "weight_decay": 0.0, "mult": TABLE_LR_MULT}]


def latest_ckpt():
    return trainlib.latest_ckpt(RUN_DIR)


def cmd_train(args):
    train, val = load_ids("train"), load_ids("val")
    os.makedirs(RUN_DIR, exist_ok=True)
    logf = open(os.path.join(RUN_DIR, "train.log"), "a")
    cfg, net = build()
    groups = param_groups(net)
    opt = torch.optim.AdamW(groups, lr=LR, betas=(0.9, 0.95), eps=1e-8)
    path, start = latest_ckpt()
    elapsed0 = 0.0
    if path and not args.fresh:
        elapsed0 = trainlib.load_ckpt(path, net, opt)
        log("resumed %s (step %d, %.0fs trained)" % (path, start, elapsed0), logf)
    else:
        start = 0
    n = sum(p.numel() for p in net.parameters())
    nt = sum(p.numel() for name, p in zip(net.specs, [net.raw(k) for k in net.specs]) if net.specs[name][1] == "table")
    log("config %s" % json.dumps(cfg.to_dict()), logf)
    log("params %d (Engram tables %d), train tokens %d, steps %d x %d x %d" % (n, nt, train.numel(), STEPS,
                                                                                BATCH, SEQ), logf)
    t0 = time.time()
    stop = STEPS if args.steps is None else min(STEPS, args.steps)
    ema = None
    for step in range(start, stop):
        for gr in opt.param_groups:
            gr["lr"] = lr_at(step) * gr["mult"]
        toks, g = batch_at(train, step)
        stats = {}
        logits, aux = net(toks, stats)
        V = logits.shape[-1]
        lm = F.cross_entropy(logits[:, :-1].reshape(-1, V), toks[:, 1:].reshape(-1))
        ce, bce, acc = net.dspark_train(toks, aux["feat"], g, stats)
        idx = torch.stack(aux["idx"]).mean() if aux.get("idx") else torch.zeros(())
        loss = lm + DSPARK_W * ce + CONF_W * bce + IDX_W * idx
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_([p for p in net.parameters() if p.requires_grad], CLIP)
        opt.step()
        imb = 0.0
        with torch.no_grad():
            for p_, c in stats.items():
                b = net.raw(p_ + "gate.bias")
                b += BIAS_RATE * torch.sign(c.mean() - c)
                imb = max(imb, float(c.max() / c.mean()))
        ema = float(lm) if ema is None else 0.95 * ema + 0.05 * float(lm)
        el = elapsed0 + time.time() - t0
        if step % 5 == 0 or step == stop - 1:
            log("step %4d lr %.2e lm %.4f (ema %.4f) dspark %.4f acc %.2f conf %.3f idx %.4f gnorm %.2f imb %.2f "
                "%.1fs/step %.0fs" % (step, lr_at(step), float(lm), ema, float(ce), acc, float(bce), float(idx),
                                      float(gn), imb, (time.time() - t0) / (step - start + 1), el), logf)
        if (step + 1) % CKPT_EVERY == 0 or step == stop - 1:
            with torch.no_grad():
                vl = []
                for i in range(2):
                    vt = val[i * 4096:i * 4096 + SEQ].unsqueeze(0)
                    lg, _ = net(vt)
                    vl.append(float(F.cross_entropy(lg[0, :-1], vt[0, 1:])))
            torch.save({"model": net.state_dict(), "opt": opt.state_dict(), "step": step + 1, "elapsed": el},
                       os.path.join(RUN_DIR, "ckpt_%05d.pt" % (step + 1)))
            for f in sorted(os.listdir(RUN_DIR)):
                if f.startswith("ckpt_") and int(f[5:10]) not in (step + 1,) and int(f[5:10]) % 100:
                    os.remove(os.path.join(RUN_DIR, f))
            log("checkpoint step %d, quick val lm %.4f (ppl %.2f), %.0fs" % (
                step + 1, sum(vl) / 2, math.exp(sum(vl) / 2), el), logf)


# ----------------------------------------------------------------------------- export
def stored_weights(net):
    """name -> model_v41.QW as the checkpoint stores it (wo_a FP8, ratio-2 compressor BF16, tables E4M3/UE8M0)."""
    out = {}
    for name, (shape, fmt, init) in net.specs.items():
        p = net.raw(name).detach().double()
        if name.endswith("attn.wo_a.weight"):
            out[name] = M.quant_weight(p, "fp8")
        elif fmt == "f32" and ".compressor." in name:
            out[name] = M.QW("f32", nm.round_bf16(p))
        elif fmt == "table":
            t = p.reshape(shape[0], shape[1] // 32, 32)
            s = nm.pow2_ceil_scale(t.abs().amax(-1), nm.E4M3_MAX, 1e-4)
            q = nm.round_e4m3(p / s.repeat_interleave(32, 1))
            qw = M.QW("table", q, s)
            qw.w = q * s.repeat_interleave(32, 1)
            out[name] = qw
        else:
            out[name] = M.quant_weight(p, fmt)
    return out


def cmd_export(args):
    cfg, net = build()
    path, step = (args.ckpt, -1) if args.ckpt else latest_ckpt()
    ck = torch.load(path)
    net.load_state_dict(ck["model"])
    os.makedirs(OUT_DIR, exist_ok=True)
    stored = stored_weights(net)
    write_safetensors(os.path.join(OUT_DIR, "model.safetensors"), G.raw_tensors(cfg, stored), {"format": "pt"})
    with open(os.path.join(OUT_DIR, "config.json"), "w") as f:
        json.dump(G.hf_config(cfg), f, indent=1)
    shutil.copyfile(TOKENIZER, os.path.join(OUT_DIR, "tokenizer.json"))
    with open(os.path.join(RUN_DIR, "exported.json"), "w") as f:
        json.dump({"ckpt": path, "step": ck["step"], "train_seconds": ck.get("elapsed", 0.0)}, f)
    log("exported %s (step %d) to %s: model.safetensors %d bytes" % (
        path, ck["step"], OUT_DIR, os.path.getsize(os.path.join(OUT_DIR, "model.safetensors"))))


# ----------------------------------------------------------------------------- reference evaluation
class NoEngramSession(M.Session):
    """The reference with every Engram gate forced to 0 (the stream passes through the Engram step unchanged)."""

    def engram(self, L, X, pos0):
        return X


def cmd_eval(args):
    """The held-out protocol of tools/train/README.md with model_v41.Session (float32 mode, the official F32 order)
    on the exported files; each window evaluated in chunks of 128 positions as `dsv4 ppl` does (PPL_CHUNK)."""
    cfg, cmap = make_cfg()
    W = G.weights_from_file(cfg, os.path.join(args.model, "model.safetensors"))
    ids = load_ids("val").tolist()
    if args.max_tokens:
        ids = ids[:args.max_tokens]
    cls = NoEngramSession if args.engram_off else M.Session
    nll, cnt, nw = 0.0, 0, 0
    t0 = time.time()
    for w0 in range(0, len(ids), args.window):
        w = ids[w0:w0 + args.window]
        if len(w) < 2 or (args.max_windows and nw >= args.max_windows):
            break
        s = cls(cfg, W, dtype=torch.float32, cmap=cmap)
        lg = torch.cat([s.eval(w[i:i + 128], all_logits=True) for i in range(0, len(w), 128)])
        lp = torch.log_softmax(lg.double()[:-1], -1)
        nll -= float(lp.gather(1, torch.tensor(w[1:])[:, None]).sum())
        cnt += len(w) - 1
        nw += 1
        if nw % 10 == 0:
            log("window %d: running ppl %.4f (%.0fs)" % (nw, math.exp(nll / cnt), time.time() - t0))
    res = {"windows": nw, "predictions": cnt, "window": args.window, "engram_off": args.engram_off,
           "mean_nll": nll / cnt, "ppl": math.exp(nll / cnt), "seconds": time.time() - t0}
    log("reference held-out%s: %d windows, %d predictions, mean NLL %.6f, perplexity %.4f (%.0fs)" % (
        " (Engram gate 0)" if args.engram_off else "", nw, cnt, nll / cnt, res["ppl"], res["seconds"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


def cmd_dspark(args):
    """DSpark drafts of the exported model in the reference (C does not evaluate V4.1 DSpark stages yet): in each of
    the first held-out windows, a 64-token prefill, then token-by-token decode; at every step P the drafts for the
    true next token t_{P+1} (model_v41.Session.dspark, greedy) are compared with the text t_{P+2..P+1+block}: top-1
    hit rate per draft slot, accepted run length (leading hits), the confidence head's mean on hits / misses, and
    the trunk's own top-1 hit rate on t_{P+2} at the same positions (the next decode step)."""
    cfg, cmap = make_cfg()
    W = G.weights_from_file(cfg, os.path.join(args.model, "model.safetensors"))
    ids = load_ids("val").tolist()
    Bk = cfg.dspark_block_size
    hits, runs, conf_hit, conf_miss, trunk, n = [0] * Bk, [0] * (Bk + 1), [], [], 0, 0
    t0 = time.time()
    for w in range(args.max_windows or 2):
        win = ids[w * args.window:(w + 1) * args.window]
        s = M.Session(cfg, W, dtype=torch.float32, cmap=cmap)
        s.eval(win[:64])
        for P in range(63, min(len(win), 64 + args.dspark_steps) - Bk - 1):
            _, out, conf = s.dspark(win[P + 1])
            lg = s.eval([win[P + 1]])                  # the trunk at P+1: predicts t_{P+2}
            trunk += int(int(torch.argmax(lg)) == win[P + 2])
            k = 0
            for i in range(Bk):
                ok = out[i + 1] == win[P + 2 + i]
                hits[i] += int(ok)
                (conf_hit if ok else conf_miss).append(float(conf[i]))
                if ok and k == i:
                    k += 1
            runs[k] += 1
            n += 1
    mean = lambda v: sum(v) / len(v) if v else float("nan")  # noqa: E731
    res = {"positions": n, "draft_top1_hit_rate": [h / n for h in hits], "accepted_run_histogram": runs,
           "mean_accepted": sum(i * r for i, r in enumerate(runs)) / n, "trunk_top1_hit_rate": trunk / n,
           "confidence_mean_hit": mean(conf_hit), "confidence_mean_miss": mean(conf_miss),
           "seconds": time.time() - t0}
    log("DSpark drafts (reference): %s" % json.dumps(res))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


def main():
    global RUN_DIR
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["data", "train", "export", "eval", "dspark"])
    ap.add_argument("--dsv4", default=os.path.join(ROOT, "build", "rel", "dsv4"))
    ap.add_argument("--steps", type=int, default=None, help="stop after this step (default: all STEPS)")
    ap.add_argument("--fresh", action="store_true")
    ap.add_argument("--ckpt", default=None)
    ap.add_argument("--model", default=OUT_DIR)
    ap.add_argument("--window", type=int, default=256)
    ap.add_argument("--max-tokens", type=int, default=None)
    ap.add_argument("--max-windows", type=int, default=None)
    ap.add_argument("--engram-off", action="store_true")
    ap.add_argument("--json", default=None)
    ap.add_argument("--dspark-steps", type=int, default=64, help="dspark: decode steps per window")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--run-dir", default=None)
    args = ap.parse_args()
    g = globals()
    trainlib.apply_sets(g, args.set)
    if args.run_dir:
        RUN_DIR = os.path.abspath(args.run_dir)
    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    {"data": cmd_data, "train": cmd_train, "export": cmd_export, "eval": cmd_eval, "dspark": cmd_dspark}[args.cmd](args)


if __name__ == "__main__":
    main()
