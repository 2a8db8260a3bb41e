#!/usr/bin/python3
"""PyTorch reference of DeepSeek-V4.1 (docs/v41.md §1-2, §4, §7; the decisions of docs/v41-implementation.md).

Written for dsv4 from those documents (no DeepSeek code): tensors are float64 (or float32) carriers of the values
the reference computes, rounded to BF16 / E4M3 / E2M1 exactly where DeepSeek's V4.1 code casts:
  - linear: FP8 weights in 32x32 UE8M0 tiles, FP4 experts (E2M1, UE8M0 per 32); the input of an FP8/FP4 linear is
    act-quantized in 32-blocks (UE8M0 power-of-two scale, E4M3 RNE); output BF16. BF16 linears: bf16(x W^T);
    F32 linears (ratio>1 compressor wkv/wgate, DSpark confidence) are not rounded;
  - CSA2 (item 7, 9, 10, 11): window KV = kv_norm(wkv x), RoPE, FP8 in 32-blocks over all head_dim dims; KV sources
    compress (ratio 1: norm(wkv x) BF16; ratio R: softmax pooling in F32 then BF16 and norm), RoPE at the group's
    first position, FP4 (E2M1) with E4M3 scales per 16; consumers read the compressed KV of the most recent KV
    source that ran; index keys are made by owners and published in one global slot only when the owner completed
    a group in this call (the index-key slot quirk: other index sources read the slot's first end//ratio keys);
    index q/k FP4 with UE8M0 scales per 32; scores sum_h bf16(bf16(relu(bf16(q_h.k))) * w_h) in BF16 as the
    reference's BF16 einsum; candidate blocks of the candidate source (block max, newest block pinned, top blocks,
    -inf picks dropped) mask the scores of later index sources; top-k = min(index_topk, end//ratio) in position
    order, unreachable positions dropped; layers that are not index sources reuse the last index source's picks;
  - sparse attention: z = (q.k) * head_dim^-0.5, P = exp(z - max) rounded to BF16, sink added to the denominator;
    o BF16, inverse RoPE, wo_a grouped BF16, wo_b FP8;
  - single-pass mHC (item 13), MoE without hash layers (item 12, +1e-20, bias_vl on image positions), Engram
    (item 5) at the start of its block, DSpark stages (item 14).
Any call schedule: Session.eval(chunk) takes a chunk of any length at any position. A chunk at position 0 is the
reference's prefill, a 1-token chunk its decode step; a longer chunk at a later position (which DeepSeek's code does
not define) completes the groups that end inside it and publishes index keys if it completed one (the same rule).
Because of the index-key slot quirk, one prefill and token-by-token decode can select different compressed
positions: that is DeepSeek's behaviour, reproduced on purpose.
Two precisions: Session(dtype=torch.float64) (goldens: every F32 step of DeepSeek's code done in float64, rounded
where it casts) and Session(dtype=torch.float32), the official F32 mode: the same graph with F32 carriers and the
official order where the order changes F32 results (hc_post as elementwise products summed over the source stream,
the Sinkhorn row softmax as exp(c - max) / sum). The float32 mode is bit-identical to DeepSeek's model.py on the CPU
stand-ins (tools/reference/README.md); the two modes differ only by single BF16 rounding flips and what they cause.
Index top-k and candidate blocks break exact score ties to the lower position (torch.topk leaves the order of equal
scores unspecified).

usage (library):  cfg = Config(**flat_keys); W = init_weights(cfg, seed); s = Session(cfg, W)
                  logits = s.eval([tok, ...]); d = s.dspark(next_token) -> (logits [B, V], ids, confidence [B])
"""
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numerics as nm  # noqa: E402
from make_engram_goldens import layout as engram_layout, hash_ids as engram_hash_ids, DEAD  # noqa: E402

rb = nm.round_bf16

# flat keys = the names of DeepSeek's inference/config.json (ModelArgs); defaults: a tiny V4.1
DEFAULTS = dict(
    vocab_size=96, dim=64, moe_inter_dim=64, n_layers=8, n_mtp_layers=2, n_heads=2, n_routed_experts=4,
    n_shared_experts=1, n_activated_experts=2, route_scale=1.5, swiglu_limit=10.0, q_lora_rank=64, head_dim=64,
    rope_head_dim=32, norm_eps=1e-20, o_groups=2, o_lora_rank=32, window_size=8,
    compress_ratios=(0, 0, 2, 2, 2, 1, 1, 1, 0, 0), kv_source_layers=(2, 5), index_source_layers=(2, 4, 5, 7),
    compress_rope_theta=160000.0, original_seq_len=64, rope_theta=10000.0, rope_factor=16, beta_fast=32,
    beta_slow=1, index_n_heads=8, index_head_dim=64, index_topk=8, candidate_source_layer=5,
    candidate_topk_blocks=3, candidate_block_size=4, hc_mult=4, hc_sinkhorn_iters=20, hc_eps=1e-6,
    engram_layer_ids=(1, 4), engram_max_ngram_size=3, engram_vocab_size=50, engram_n_heads=2, engram_head_dim=32,
    engram_pad_id=2, engram_compressed_vocab_size=96, engram_num_embeddings=(),
    dspark_block_size=3, dspark_noise_token_id=5, dspark_target_layer_ids=(5, 6, 7), dspark_markov_rank=32,
    dspark_n_routed_experts=0, dspark_n_activated_experts=0, vision_enabled=False, image_token_id=-1)

# position roles (the official code's token_types; image_processor.py's IMAGE_START, IMAGE, IMAGE_NEW_LINE, IMAGE_END)
TEXT, IMAGE_START, IMAGE, IMAGE_NEW_LINE, IMAGE_END = -1, 0, 1, 2, 3


class Config:
    def __init__(self, **kw):
        d = dict(DEFAULTS)
        for k, v in kw.items():
            if k not in d:
                raise KeyError(f"unknown V4.1 config key {k}")
            d[k] = v
        self.__dict__.update(d)
        self._d = d
        assert len(self.compress_ratios) == self.n_layers + self.n_mtp_layers
        if self.engram_layer_ids:
            ecfg = self.engram_cfg()
            primes, offsets, mults = engram_layout(ecfg)
            self.engram_primes, self.engram_offsets, self.engram_mults = primes, offsets, mults
            if not self.engram_num_embeddings:
                self.engram_num_embeddings = tuple(sum(p) for p in primes)
                self._d["engram_num_embeddings"] = self.engram_num_embeddings

    def engram_cfg(self):
        return dict(hc=self.hc_mult, dim=self.dim, head_dim=self.engram_head_dim,
                    max_ngram=self.engram_max_ngram_size, n_heads=self.engram_n_heads,
                    vocab_size=self.engram_vocab_size, compressed_vocab=self.engram_compressed_vocab_size,
                    pad_id=self.engram_pad_id, layer_ids=list(self.engram_layer_ids), eps=self.norm_eps)

    def to_dict(self):
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self._d.items()}

    def moe(self, layer):
        if layer < self.n_layers:
            return self.n_routed_experts, self.n_activated_experts
        return (self.dspark_n_routed_experts or self.n_routed_experts,
                self.dspark_n_activated_experts or self.n_activated_experts)


# ------------------------------------------------------------------------------------------- weights
class QW:
    """A weight as stored: fmt 'fp8' (values E4M3 [o,i], scale [ceil(o/32), ceil(i/32)]), 'fp4' (values E2M1 [o,i],
    scale [o, i/32]), 'bf16' / 'f32' (values only). .w = dequantized float64 [o, i]."""

    def __init__(self, fmt, q, s=None):
        self.fmt, self.q, self.s = fmt, q, s
        if fmt == "fp8":
            o, i = q.shape
            self.w = q * s.repeat_interleave(32, 0)[:o].repeat_interleave(32, 1)[:, :i]
        elif fmt == "fp4":
            self.w = q * s.repeat_interleave(32, 1)
        else:
            self.w = q


def quant_weight(w, fmt):
    w = w.double()
    if fmt == "fp8":
        o, i = w.shape
        po, pi = -o % 32, -i % 32
        t = torch.nn.functional.pad(w, (0, pi, 0, po)).reshape((o + po) // 32, 32, (i + pi) // 32, 32)
        amax = t.abs().amax(dim=(1, 3))
        s = nm.pow2_ceil_scale(amax, nm.E4M3_MAX, 1e-4)
        q = nm.round_e4m3(w / s.repeat_interleave(32, 0)[:o].repeat_interleave(32, 1)[:, :i])
        return QW("fp8", q, s)
    if fmt == "fp4":
        o, i = w.shape
        t = w.reshape(o, i // 32, 32)
        s = nm.pow2_ceil_scale(t.abs().amax(-1), nm.E2M1_MAX, 6.0 * 2.0 ** -126)
        return QW("fp4", nm.round_e2m1(w / s.repeat_interleave(32, 1)), s)
    if fmt == "bf16":
        return QW("bf16", rb(w))
    return QW("f32", w.float().double())


def weight_specs(cfg):
    """name -> (shape, fmt, init) of every tensor of a V4.1 checkpoint (official names, no vision)."""
    D, H, hd, rd = cfg.dim, cfg.n_heads, cfg.head_dim, cfg.rope_head_dim
    hc, mix = cfg.hc_mult, (2 + cfg.hc_mult) * cfg.hc_mult
    S = {"embed.weight": ((cfg.vocab_size, D), "bf16", "n1"), "norm.weight": ((D,), "bf16", "norm"),
         "head.weight": ((cfg.vocab_size, D), "bf16", "w")}
    for L in range(cfg.n_layers + cfg.n_mtp_layers):
        p = f"layers.{L}." if L < cfg.n_layers else f"mtp.{L - cfg.n_layers}."
        ratio = cfg.compress_ratios[L]
        S.update({p + "attn_norm.weight": ((D,), "bf16", "norm"), p + "ffn_norm.weight": ((D,), "bf16", "norm")})
        for site in ("attn", "ffn"):
            S.update({p + f"hc_{site}_fn": ((mix, hc * D), "f32", "hcfn"), p + f"hc_{site}_base": ((mix,), "f32", "hcb"),
                      p + f"hc_{site}_scale": ((3,), "f32", "hcs")})
        a = p + "attn."
        S.update({a + "attn_sink": ((H,), "f32", "sink"), a + "wq_a.weight": ((cfg.q_lora_rank, D), "fp8", "w"),
                  a + "q_norm.weight": ((cfg.q_lora_rank,), "bf16", "norm"),
                  a + "wq_b.weight": ((H * hd, cfg.q_lora_rank), "fp8", "w"), a + "wkv.weight": ((hd, D), "fp8", "w"),
                  a + "kv_norm.weight": ((hd,), "bf16", "norm"),
                  a + "wo_a.weight": ((cfg.o_groups * cfg.o_lora_rank, H * hd // cfg.o_groups), "bf16", "w"),
                  a + "wo_b.weight": ((D, cfg.o_groups * cfg.o_lora_rank), "fp8", "w")})
        backbone = L < cfg.n_layers
        if backbone and L in cfg.kv_source_layers:
            c = a + "compressor."
            f = "f32" if ratio > 1 else "bf16"
            S.update({c + "wkv.weight": ((hd, D), f, "w"), c + "norm.weight": ((hd,), "bf16", "norm")})
            if ratio > 1:
                S[c + "wgate.weight"] = ((hd, D), "f32", "wg")
        if backbone and L in cfg.index_source_layers:
            i = a + "indexer."
            S.update({i + "wq_b.weight": ((cfg.index_n_heads * cfg.index_head_dim, cfg.q_lora_rank), "fp8", "w"),
                      i + "weights_proj.weight": ((cfg.index_n_heads, D), "bf16", "w")})
            if L in cfg.kv_source_layers:
                S.update({i + "wk.weight": ((cfg.index_head_dim, hd), "bf16", "w"),
                          i + "k_norm.weight": ((cfg.index_head_dim,), "bf16", "norm")})
        E, _ = cfg.moe(L)
        S.update({p + "ffn.gate.weight": ((E, D), "bf16", "w"), p + "ffn.gate.bias": ((E,), "f32", "bias")})
        if cfg.vision_enabled:
            S[p + "ffn.gate.bias_vl"] = ((E,), "f32", "bias")
        for e in range(E):
            for n, shp in (("w1", (cfg.moe_inter_dim, D)), ("w2", (D, cfg.moe_inter_dim)), ("w3", (cfg.moe_inter_dim, D))):
                S[p + f"ffn.experts.{e}.{n}.weight"] = (shp, "fp4", "w")
        for n, shp in (("w1", (cfg.moe_inter_dim, D)), ("w2", (D, cfg.moe_inter_dim)), ("w3", (cfg.moe_inter_dim, D))):
            S[p + f"ffn.shared_experts.{n}.weight"] = (shp, "fp8", "w")
        if backbone and L in cfg.engram_layer_ids:
            g = p + "engram."
            k = list(cfg.engram_layer_ids).index(L)
            cols = (cfg.engram_max_ngram_size - 1) * cfg.engram_n_heads
            S.update({g + "embed.weight": ((cfg.engram_num_embeddings[k], cfg.engram_head_dim), "table", "table"),
                      g + "wkv.weight": ((D * (hc + 1), cols * cfg.engram_head_dim), "fp8", "w"),
                      g + "q_weight": ((hc, D), "bf16", "norm"), g + "k_weight": ((hc, D), "bf16", "norm")})
        if not backbone:
            st = L - cfg.n_layers
            if st == 0:
                S.update({p + "main_proj.weight": ((D, D * len(cfg.dspark_target_layer_ids)), "fp8", "w"),
                          p + "main_norm.weight": ((D,), "bf16", "norm")})
            if st == cfg.n_mtp_layers - 1:
                S.update({p + "norm.weight": ((D,), "bf16", "norm"),
                          p + "markov_head.embed.weight": ((cfg.vocab_size, cfg.dspark_markov_rank), "bf16", "n1"),
                          p + "markov_head.head.weight": ((cfg.vocab_size, cfg.dspark_markov_rank), "bf16", "w"),
                          p + "confidence_head.proj.weight": ((1, D + cfg.dspark_markov_rank), "bf16", "w")})
    if cfg.vision_enabled:   # the span delimiters: BF16 [dim] (nn.Parameter under the BF16 default dtype)
        S.update({n: ((D,), "bf16", "n1") for n in ("image_start", "image_newline", "image_end")})
    return S


def init_weights(cfg, seed=0):
    """Seeded random weights in their stored formats (dict name -> QW). Scales keep activations O(1)."""
    g = torch.Generator().manual_seed(seed)
    W = {}
    for name, (shape, fmt, init) in weight_specs(cfg).items():
        r = torch.randn(*shape, generator=g, dtype=torch.float64)
        if init == "w":
            v = r / math.sqrt(shape[-1])
        elif init == "wg":
            v = 3 * r / math.sqrt(shape[-1])
        elif init == "n1":
            v = r
        elif init == "norm":
            v = 1 + 0.1 * r
        elif init == "hcfn":
            v = 0.5 * r / math.sqrt(shape[-1])
        elif init == "hcb":
            v = 0.5 * r
        elif init == "hcs":
            v = 0.5 + 0.2 * r
        elif init == "sink":
            v = r
        elif init == "bias":
            v = 0.1 * r
        elif init == "table":     # rows: E4M3 values x UE8M0 scale per 32
            s = torch.ldexp(torch.ones(shape[0], shape[1] // 32, dtype=torch.float64),
                            torch.randint(-4, 1, (shape[0], shape[1] // 32), generator=g))
            W[name] = QW("table", nm.round_e4m3(r * 64), s)
            W[name].w = W[name].q * s.repeat_interleave(32, 1)
            continue
        W[name] = quant_weight(v, fmt)
    return W


# ------------------------------------------------------------------------------------------- ops
def lin(W, x):
    """The reference `linear` by weight format; x: [..., in] values held in float64/float32."""
    w = W.w.to(x.dtype)
    if W.fmt in ("fp8", "fp4"):
        return rb(nm.fp8_sim(x, 32) @ w.T)
    if W.fmt == "bf16":
        return rb(x @ w.T)
    return x @ w.T


def rms(x, wt, eps):
    return rb(wt.to(x.dtype) * (x * torch.rsqrt(x.square().mean(-1, keepdim=True) + eps)))


def rope_freqs(cfg, ratio):
    r = cfg.rope_head_dim
    if ratio:
        base, orig = float(cfg.compress_rope_theta), cfg.original_seq_len
    else:
        base, orig = float(cfg.rope_theta), 0
    f = 1.0 / (base ** (torch.arange(0, r, 2, dtype=torch.float32) / r))
    if orig > 0:
        def corr(rot):
            return r * math.log(orig / (rot * 2 * math.pi)) / (2 * math.log(base))
        lo = max(math.floor(corr(cfg.beta_fast)), 0)
        hi = min(math.ceil(corr(cfg.beta_slow)), r - 1)
        ramp = ((torch.arange(r // 2, dtype=torch.float32) - lo) / max(hi - lo, 1e-3)).clamp(0, 1)
        smooth = 1 - ramp
        f = f / cfg.rope_factor * (1 - smooth) + f * smooth
    return f


def rope(x, freqs, pos, inverse=False):
    """Interleaved rotation of the last 2*len(freqs) dims at integer positions pos [T] (x: [T, ..., d]); F32 angle,
    result BF16 on the rotated dims."""
    ang = torch.outer(pos.to(torch.float32), freqs).to(x.dtype)
    c, s = torch.cos(ang), torch.sin(ang)
    while c.dim() < x.dim():
        c, s = c.unsqueeze(1), s.unsqueeze(1)
    if inverse:
        s = -s
    r = freqs.numel() * 2
    a, b = x[..., -r:][..., 0::2], x[..., -r:][..., 1::2]
    out = torch.stack([a * c - b * s, a * s + b * c], dim=-1).flatten(-2)
    return torch.cat([x[..., :-r], rb(out)], dim=-1)


def fp4_e4m3_16(x):
    """Compressed-KV FP4: per 16 values amax (floor 6*2^-9), scale e4m3(amax/6), values E2M1 RNE of x/scale; BF16."""
    t = x.reshape(*x.shape[:-1], -1, 16)
    amax = t.abs().amax(-1, keepdim=True).clamp(min=6.0 * 2.0 ** -9)
    s = nm.round_e4m3((amax.to(torch.float32) / 6.0).to(x.dtype))
    q = nm.round_e2m1((t / s).clamp(-6, 6))
    return rb((q * s).reshape(x.shape))


def fp8_32(x):
    return rb(nm.fp8_sim(x, 32))


def sinkhorn_split(m, scale, base, cfg):
    hc = cfg.hc_mult
    pre = torch.sigmoid(m[..., :hc] * scale[0] + base[:hc]) + cfg.hc_eps
    post = 2 * torch.sigmoid(m[..., hc:2 * hc] * scale[1] + base[hc:2 * hc])
    C = (m[..., 2 * hc:] * scale[2] + base[2 * hc:]).unflatten(-1, (hc, hc))
    M = torch.exp(C - C.amax(-1, keepdim=True))
    M = M / M.sum(-1, keepdim=True) + cfg.hc_eps
    M = M / (M.sum(-2, keepdim=True) + cfg.hc_eps)
    for _ in range(cfg.hc_sinkhorn_iters - 1):
        M = M / (M.sum(-1, keepdim=True) + cfg.hc_eps)
        M = M / (M.sum(-2, keepdim=True) + cfg.hc_eps)
    return pre, post, M


def hc_mixes(X, fn, scale, base, cfg):
    v = X.flatten(-2)
    m = (v @ fn.T.to(v.dtype)) * torch.rsqrt(v.square().mean(-1, keepdim=True) + cfg.norm_eps)
    return sinkhorn_split(m, scale.to(v.dtype), base.to(v.dtype), cfg)


def hc_pre(X, pre):
    return rb((pre.unsqueeze(-1) * X).sum(-2))


def hc_post(y, X, post, comb):
    # elementwise products summed over the source stream j (the official order; an einsum's matmul rounds F32
    # differently, which flipped single BF16 values of the float32 mode)
    return rb(post.unsqueeze(-1) * y.unsqueeze(-2) + (comb.unsqueeze(-1) * X.unsqueeze(-2)).sum(-3))


def attend(q, keys, sink, scale):
    """q [H, d] one query; keys [n, d]; sink [H]. BF16 probabilities, max over the keys, sink in the denominator."""
    z = (q @ keys.T) * scale
    mu = z.amax(-1, keepdim=True)
    P = torch.exp(z - mu)
    Z = P.sum(-1, keepdim=True) + torch.exp(sink.unsqueeze(-1) - mu)
    return rb((rb(P) @ keys) / Z)


def topk_positions(score, k):
    """score [n] (-inf = not selectable). The k best in position order, ties to the lower position, -inf dropped."""
    n = score.numel()
    order = sorted(range(n), key=lambda i: (-float(score[i]), i))[:min(k, n)]
    return sorted(i for i in order if score[i] > -math.inf)


def candidate_mask(score, visible, topk_blocks, bs):
    n = score.numel()
    nb = (n + bs - 1) // bs
    pad = torch.full((nb * bs,), -math.inf, dtype=score.dtype)
    pad[:n] = score
    b = pad.reshape(nb, bs).amax(-1)
    last = (visible - 1) // bs
    if 0 <= last < nb:
        b[last] = math.inf
    keep = torch.zeros(nb * bs, dtype=torch.bool)
    for j in sorted(range(nb), key=lambda j: (-float(b[j]), j))[:min(topk_blocks, nb)]:
        if b[j] > -math.inf:
            keep[j * bs:(j + 1) * bs] = True
    return keep[:n]


# ------------------------------------------------------------------------------------------- session
class Session:
    """Stateful V4.1 inference in any chunk schedule (batch 1). dtype float64 = goldens; float32 = the official F32
    order (bit-identical to DeepSeek's code on the CPU stand-ins, up to exact index-score ties)."""

    def __init__(self, cfg, W, dtype=torch.float64, cmap=None):
        self.cfg, self.dt = cfg, dtype
        self.W = {k: v.w.to(dtype) for k, v in W.items()}
        self.Q = W
        self.cmap = cmap        # raw id -> compressed id (None: identity)
        self.pos = 0
        self.cids = []
        self.roles = []         # per position: TEXT or an image role (image positions: DEAD for Engram, bias_vl)
        self.win = {}           # layer -> list of window KV [hd] per position
        self.proj = {}          # kv source layer -> list of (kv, score) per position (ratio > 1)
        self.comp = {}          # kv source layer -> list of compressed KV entries per group
        self.ikeys = {}         # owner layer -> list of index keys per group
        self.published = None   # owner layer whose index keys the slot holds
        self.main_x = []        # DSpark: main_x per position
        self.last_feat = None
        self.freqs = {r: rope_freqs(cfg, r) for r in set(cfg.compress_ratios)}
        self.record = []        # (layer, pos, selected compressed positions)
        self.scores = {}        # (layer, pos) -> index score row the top-k was taken from (diagnostics)

    def p(self, L):
        return f"layers.{L}." if L < self.cfg.n_layers else f"mtp.{L - self.cfg.n_layers}."

    # ---- pieces
    def engram(self, L, X, pos0):
        cfg, p = self.cfg, self.p(L) + "engram."
        k = list(cfg.engram_layer_ids).index(L)
        idx = engram_hash_ids(self.cids, k, cfg.engram_primes, cfg.engram_offsets, cfg.engram_mults, cfg.engram_cfg())
        idx = torch.tensor(idx[pos0:pos0 + X.shape[0]])
        rows = rb(self.W[p + "embed.weight"][idx]).reshape(X.shape[0], -1)
        kv = lin(self.Q[p + "wkv.weight"], rows)
        hc, D = cfg.hc_mult, cfg.dim
        key, value = kv[:, :hc * D].reshape(-1, hc, D), kv[:, hc * D:]
        w = (self.W[p + "q_weight"].float() * self.W[p + "k_weight"].float()).to(self.dt)
        eps = cfg.norm_eps
        rstd = torch.rsqrt(X.square().mean(-1) + eps) * torch.rsqrt(key.square().mean(-1) + eps)
        dot = (X * w * key).sum(-1) * rstd * D ** -0.5
        gate = torch.sigmoid(torch.copysign(dot.abs().clamp_min(1e-6).sqrt(), dot))
        # image positions: the gate is 0 (the official masked_fill), so the stream passes through unchanged
        img = torch.tensor([r != TEXT for r in self.roles[pos0:pos0 + X.shape[0]]], dtype=torch.bool)
        gate = gate.masked_fill(img.unsqueeze(-1), 0)
        return rb(X + gate.unsqueeze(-1) * value.unsqueeze(-2))

    def moe(self, L, x, vl=None):
        """vl: [T] bools, True for image positions (expert selection with gate.bias_vl; weights from the unbiased
        scores), None for text only (DSpark drafts are text)."""
        cfg, p = self.cfg, self.p(L) + "ffn."
        E, k = cfg.moe(L)
        sc = torch.sqrt(torch.nn.functional.softplus(x @ self.W[p + "gate.weight"].T))
        out = torch.zeros_like(x)
        for t in range(x.shape[0]):
            bias = self.W[p + "gate.bias_vl"] if vl is not None and vl[t] else self.W[p + "gate.bias"]
            choose = (sc[t] + bias).tolist()
            idx = sorted(range(E), key=lambda e: (-choose[e], e))[:k]
            wts = sc[t][idx]
            if k > 1:
                wts = wts / (wts.sum() + 1e-20)
            wts = wts * cfg.route_scale
            acc = torch.zeros_like(x[t])
            for e, wt in zip(idx, wts):
                acc = acc + self.expert(p + f"experts.{e}.", x[t:t + 1], wt)[0]
            out[t] = acc
        return rb(out + self.expert(p + "shared_experts.", x, None))

    def expert(self, p, x, wt):
        lim = self.cfg.swiglu_limit
        g = lin(self.Q[p + "w1.weight"], x)
        u = lin(self.Q[p + "w3.weight"], x)
        if lim > 0:
            u, g = u.clamp(-lim, lim), g.clamp(max=lim)
        h = torch.nn.functional.silu(g) * u
        if wt is not None:
            h = wt * h
        return lin(self.Q[p + "w2.weight"], rb(h))

    def attention(self, L, x, pos0):
        """x [T, dim] (BF16 values) for positions pos0..pos0+T-1 -> [T, dim]."""
        cfg, p = self.cfg, self.p(L) + "attn."
        T, H, hd, rd = x.shape[0], cfg.n_heads, cfg.head_dim, cfg.rope_head_dim
        ratio = cfg.compress_ratios[L]
        fr = self.freqs[ratio]
        pos = torch.arange(pos0, pos0 + T)
        end = pos0 + T
        qr = rms(lin(self.Q[p + "wq_a.weight"], x), self.W[p + "q_norm.weight"], cfg.norm_eps)
        q = rope(lin(self.Q[p + "wq_b.weight"], qr).reshape(T, H, hd), fr, pos)
        kv = fp8_32(rope(rms(lin(self.Q[p + "wkv.weight"], x), self.W[p + "kv_norm.weight"], cfg.norm_eps), fr, pos))
        self.win.setdefault(L, []).extend(list(kv))
        sel = [[] for _ in range(T)]
        ckv = None
        if ratio:
            latents, groups = None, []
            if L in cfg.kv_source_layers:
                latents, groups = self.compress(L, x, pos0)
                self.kv_src = L
            ckv_src = self.kv_src
            if L in cfg.index_source_layers:
                if (end // ratio) > 0:
                    sel = self.indexer(L, x, qr, latents, groups, pos0)
                else:
                    sel = [[] for _ in range(T)]
                self.shared_sel = sel
            else:
                sel = self.shared_sel
            if latents is not None:
                c = fp4_e4m3_16(rope(latents, fr, torch.tensor([j * ratio for j in groups])))
                lst = self.comp.setdefault(L, [])
                for j, v in zip(groups, c):
                    assert j == len(lst)
                    lst.append(v)
            ckv = self.comp.get(ckv_src, [])
        o = torch.empty(T, H, hd, dtype=self.dt)
        win_all = self.win[L]
        for t in range(T):
            P = pos0 + t
            keys = torch.stack(win_all[max(0, P - cfg.window_size + 1):P + 1])
            if sel[t]:
                keys = torch.cat([keys, torch.stack([ckv[j] for j in sel[t]])])
            o[t] = attend(q[t], keys, self.W[p + "attn_sink"], hd ** -0.5)
        o = rope(o, fr, pos, inverse=True)
        G = cfg.o_groups
        og = o.reshape(T, G, -1)
        wo_a = self.W[p + "wo_a.weight"].reshape(G, cfg.o_lora_rank, -1)
        oa = rb(torch.einsum("tgd,grd->tgr", og, wo_a))
        return lin(self.Q[p + "wo_b.weight"], oa.reshape(T, -1))

    def compress(self, L, x, pos0):
        cfg, p = self.cfg, self.p(L) + "attn.compressor."
        ratio, T = cfg.compress_ratios[L], x.shape[0]
        nw = self.W[p + "norm.weight"]
        if ratio == 1:
            lat = rms(lin(self.Q[p + "wkv.weight"], x), nw, cfg.norm_eps)
            return lat, list(range(pos0, pos0 + T))
        kv, sc = x @ self.W[p + "wkv.weight"].T, x @ self.W[p + "wgate.weight"].T
        if self.dt == torch.float64:
            kv, sc = kv.float().double(), sc.float().double()
        pr = self.proj.setdefault(L, [])
        pr.extend(zip(kv, sc))
        groups = [j for j in range(pos0 // ratio, (pos0 + T) // ratio) if (j + 1) * ratio - 1 >= pos0]
        if not groups:
            return None, []
        lats = []
        for j in groups:
            k = torch.stack([pr[j * ratio + i][0] for i in range(ratio)])
            s = torch.stack([pr[j * ratio + i][1] for i in range(ratio)])
            lats.append((k * s.softmax(0)).sum(0))
        return rms(rb(torch.stack(lats)), nw, cfg.norm_eps), groups

    def indexer(self, L, x, qr, latents, groups, pos0):
        cfg, p = self.cfg, self.p(L) + "attn.indexer."
        ratio, T, rd = cfg.compress_ratios[L], x.shape[0], cfg.rope_head_dim
        fr = self.freqs[ratio]
        end = pos0 + T
        if L in cfg.kv_source_layers and latents is not None:
            k = rms(lin(self.Q[p + "wk.weight"], latents), self.W[p + "k_norm.weight"], cfg.norm_eps)
            k = rb(nm.fp4_sim(rope(k, fr, torch.tensor([j * ratio for j in groups])), 32))
            lst = self.ikeys.setdefault(L, [])
            for j, v in zip(groups, k):
                assert j == len(lst)
                lst.append(v)
            self.published = L
        nh, ihd = cfg.index_n_heads, cfg.index_head_dim
        q = lin(self.Q[p + "wq_b.weight"], qr).reshape(T, nh, ihd)
        q = rb(nm.fp4_sim(rope(q, fr, torch.arange(pos0, end)), 32))
        n = end // ratio
        pub = self.ikeys[self.published]
        K = torch.zeros(n, ihd, dtype=self.dt)
        m = min(n, len(pub))
        if m:
            K[:m] = torch.stack(pub[:m])
        w = rb(lin(self.Q[p + "weights_proj.weight"], x) * (ihd ** -0.5 * nh ** -0.5))
        s = rb(torch.einsum("thd,nd->thn", q, K)).clamp(min=0)
        s = rb(s * w.unsqueeze(-1))
        # BF16 sum over heads (the reference's einsum/sum on BF16 tensors: F32 accumulation, one rounding)
        score = rb(s.sum(1))
        sel = []
        for t in range(T):
            vis = (pos0 + t + 1) // ratio
            row = score[t].clone()
            row[vis:] = -math.inf
            if L == cfg.candidate_source_layer:
                self.cand = candidate_mask(row, vis, cfg.candidate_topk_blocks, cfg.candidate_block_size) \
                    if t == 0 else self.cand
                self.cands = getattr(self, "cands", {})
                self.cands[pos0 + t] = candidate_mask(row, vis, cfg.candidate_topk_blocks, cfg.candidate_block_size)
            elif 0 <= cfg.candidate_source_layer < L:
                row = row.masked_fill(~self.cands[pos0 + t], -math.inf)
            pick = [j for j in topk_positions(row, min(cfg.index_topk, n)) if j < vis]
            self.scores[(L, pos0 + t)] = row
            sel.append(pick)
            self.record.append((L, pos0 + t, pick))
        return sel

    def block(self, L, X, pos0, pre_mix, attn_fn=None):
        cfg, p, W = self.cfg, self.p(L), self.W
        a_pre, a_post, a_comb = hc_mixes(X, W[p + "hc_attn_fn"], W[p + "hc_attn_scale"], W[p + "hc_attn_base"], cfg)
        x = rms(hc_pre(X, pre_mix), W[p + "attn_norm.weight"], cfg.norm_eps)
        y = attn_fn(x) if attn_fn else self.attention(L, x, pos0)
        X = hc_post(y, X, a_post, a_comb)
        f_pre, f_post, f_comb = hc_mixes(X, W[p + "hc_ffn_fn"], W[p + "hc_ffn_scale"], W[p + "hc_ffn_base"], cfg)
        x = rms(hc_pre(X, a_pre), W[p + "ffn_norm.weight"], cfg.norm_eps)
        vl = None
        if attn_fn is None and any(r != TEXT for r in self.roles[pos0:pos0 + x.shape[0]]):
            vl = [r != TEXT for r in self.roles[pos0:pos0 + x.shape[0]]]
        X = hc_post(self.moe(L, x, vl), X, f_post, f_comb)
        return X, f_pre

    # ---- public
    def eval(self, chunk, all_logits=False, roles=None, rows=None):
        """chunk: ids of the next T positions. Images (docs/v41.md §3.4): roles [T] (TEXT / IMAGE_START / IMAGE /
        IMAGE_NEW_LINE / IMAGE_END, None = all text) and rows: the embeddings of this chunk's IMAGE positions in
        order ([n_image, dim] BF16 values: the aligner rows in reading order, see VLPrompt). START / NEW_LINE / END
        take the learned image_start / image_newline / image_end. Any split is allowed, inside a span too."""
        cfg, W = self.cfg, self.W
        pos0, T = self.pos, len(chunk)
        roles = [TEXT] * T if roles is None else list(roles)
        assert len(roles) == T
        self.roles.extend(roles)
        self.cids.extend(DEAD if r != TEXT else (self.cmap[t] if self.cmap else t) for t, r in zip(chunk, roles))
        e = W["embed.weight"][torch.tensor(chunk)].clone()
        n_img = sum(r == IMAGE for r in roles)
        assert (rows is None and n_img == 0) or (rows is not None and len(rows) == n_img), "one row per IMAGE position"
        k = 0
        for t, r in enumerate(roles):
            if r == IMAGE:
                e[t] = torch.as_tensor(rows[k]).to(self.dt)
                k += 1
            elif r != TEXT:
                e[t] = W[{IMAGE_START: "image_start", IMAGE_NEW_LINE: "image_newline", IMAGE_END: "image_end"}[r]]
        X = e.unsqueeze(1).repeat(1, cfg.hc_mult, 1)
        pre = torch.zeros(T, cfg.hc_mult, dtype=self.dt)
        pre[:, 0] = 1
        feats = []
        for L in range(cfg.n_layers):
            if L in cfg.engram_layer_ids:
                X = self.engram(L, X, pos0)
            if L in cfg.dspark_target_layer_ids:
                feats.append(rb(X.mean(1)))
            X, pre = self.block(L, X, pos0, pre)
        h = rms(hc_pre(X, pre), W["norm.weight"], cfg.norm_eps)
        logits = h @ W["head.weight"].T
        if feats:
            self.feat = torch.cat(feats, -1)
            p = "mtp.0."
            mx = rms(lin(self.Q[p + "main_proj.weight"], self.feat), W[p + "main_norm.weight"], cfg.norm_eps)
            self.main_x.extend(list(mx))
        self.pos += T
        return logits if all_logits else logits[-1]

    def eval_prompt(self, prompt, first, n, all_logits=False):
        """Positions [first, first + n) of a VLPrompt (the session must be at `first`)."""
        assert self.pos == first
        return self.eval(prompt.ids[first:first + n], all_logits, prompt.roles[first:first + n],
                         prompt.rows_of(first, n))

    def dspark(self, token):
        """Draft block after the last evaluated position P: drafts at positions P+1..P+B (ids [token, noise...]);
        the Markov bias uses greedy (temperature 0) picks. Returns (logits [B, V], ids [B+1], confidence [B])."""
        cfg, W = self.cfg, self.W
        P, B = self.pos - 1, cfg.dspark_block_size
        assert P >= 1, "the reference's draft head needs a decode position (start_pos > 0)"
        ids = [token] + [cfg.dspark_noise_token_id] * (B - 1)
        X = W["embed.weight"][torch.tensor(ids)].unsqueeze(1).repeat(1, cfg.hc_mult, 1)
        pre = torch.zeros(B, cfg.hc_mult, dtype=self.dt)
        pre[:, 0] = 1
        for st in range(cfg.n_mtp_layers):
            L = cfg.n_layers + st
            X, pre = self.block(L, X, P, pre, attn_fn=lambda x, L=L: self.dspark_attn(L, x, P))
        p = f"mtp.{cfg.n_mtp_layers - 1}."
        x = hc_pre(X, pre)
        logits = rms(x, W[p + "norm.weight"], cfg.norm_eps) @ W["head.weight"].T
        out = [token]
        membs = []
        for i in range(B):
            e = W[p + "markov_head.embed.weight"][out[i]]
            logits[i] = logits[i] + e @ W[p + "markov_head.head.weight"].T
            membs.append(e)
            out.append(int(torch.argmax(logits[i])))
        conf = torch.cat([x, torch.stack(membs)], -1) @ W[p + "confidence_head.proj.weight"][0]
        return logits, out, conf

    def dspark_attn(self, L, x, P):
        cfg, p = self.cfg, self.p(L) + "attn."
        B, H, hd = x.shape[0], cfg.n_heads, cfg.head_dim
        fr = self.freqs[0]
        mpos = torch.arange(0, P + 1)
        mx = torch.stack(self.main_x[:P + 1])
        mkv = fp8_32(rope(rms(lin(self.Q[p + "wkv.weight"], mx), self.W[p + "kv_norm.weight"], cfg.norm_eps), fr, mpos))
        ring = mkv[max(0, P + 1 - cfg.window_size):]
        dpos = torch.arange(P + 1, P + 1 + B)
        qr = rms(lin(self.Q[p + "wq_a.weight"], x), self.W[p + "q_norm.weight"], cfg.norm_eps)
        q = rope(lin(self.Q[p + "wq_b.weight"], qr).reshape(B, H, hd), fr, dpos)
        kv = fp8_32(rope(rms(lin(self.Q[p + "wkv.weight"], x), self.W[p + "kv_norm.weight"], cfg.norm_eps), fr, dpos))
        keys = torch.cat([ring, kv])
        o = torch.stack([attend(q[t], keys, self.W[p + "attn_sink"], hd ** -0.5) for t in range(B)])
        o = rope(o, fr, dpos, inverse=True)
        G = cfg.o_groups
        wo_a = self.W[p + "wo_a.weight"].reshape(G, cfg.o_lora_rank, -1)
        oa = rb(torch.einsum("tgd,grd->tgr", o.reshape(B, G, -1), wo_a))
        return lin(self.Q[p + "wo_b.weight"], oa.reshape(B, -1))


# ------------------------------------------------------------------------------------------- images in the prompt
def span_roles(n_llm_h, n_llm_w):
    """The roles of one image span: START, n_llm_h x (n_llm_w IMAGE, NEW_LINE), END (n_llm_h * (n_llm_w + 1) + 2)."""
    return [IMAGE_START] + ([IMAGE] * n_llm_w + [IMAGE_NEW_LINE]) * n_llm_h + [IMAGE_END]


class VLPrompt:
    """Text ids with every image placeholder (image_token_id) replaced by its image's span (every span position
    carries the placeholder id); images: list of (rows [n_llm_h * n_llm_w, dim] aligner output, n_llm_h, n_llm_w) in
    placeholder order. .ids, .roles (per position), .spans (per image: start, length, n_llm_h, n_llm_w)."""

    def __init__(self, ids, image_token_id, images):
        assert sum(1 for t in ids if t == image_token_id) == len(images), "one image per placeholder"
        self.ids, self.roles, self.spans, self.row_at = [], [], [], {}
        k = 0
        for t in ids:
            if t != image_token_id:
                self.ids.append(t)
                self.roles.append(TEXT)
                continue
            rows, lh, lw = images[k]
            assert rows.shape[0] == lh * lw
            start = len(self.ids)
            rl = span_roles(lh, lw)
            j = 0
            for i, r in enumerate(rl):
                if r == IMAGE:
                    self.row_at[start + i] = rows[j]
                    j += 1
            self.ids.extend([image_token_id] * len(rl))
            self.roles.extend(rl)
            self.spans.append((start, len(rl), lh, lw))
            k += 1

    def rows_of(self, first, n):
        r = [self.row_at[p] for p in range(first, first + n) if self.roles[p] == IMAGE]
        return torch.stack(r) if r else None
