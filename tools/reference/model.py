"""PyTorch reference of DeepSeek-V4 (docs/architecture.md §3-§4, numerics §7.1).

STABLE INTERFACE (used by tools/train/train_nano.py and tools/reference/make_goldens.py)
--------------------------------------------------------------------------------------
    from model import Config, Transformer, Session
    cfg = Config.from_json("config.json")      # HF keys (docs/architecture.md §1.1); or Config(**hf_keys)
    cfg.to_hf_dict()                            # full HF config dict (what save_checkpoint writes)
    model = Transformer(cfg)                    # nn.Module; parameter names == checkpoint float tensor names
                                                # ("embed.weight", "layers.0.attn.wq_a.weight", "layers.0.hc_attn_fn",
                                                #  "mtp.0.e_proj.weight", ...); tid2eid is an int64 buffer
                                                #  ("layers.0.ffn.gate.tid2eid"); no ".scale" entries.
    save_checkpoint(model.state_dict(), cfg, d) # (safetensors_io) export in the official FP8/FP4 layout
    model = Transformer.from_dir(d)             # config.json + dequantized weights (float32)

    # training (differentiable, full causal sequence, straight-through quantization of activations
    # AND of weights in their export format, so the exported checkpoint computes what was trained):
    logits, aux = model.forward_train(tokens)   # tokens LongTensor [B, T]; logits [B, T, V] (float32)
        aux["mtp_logits"]    [B, T, V]: MTP logits at position t, fed token t+1, predicting token t+2
                             (position T-1 is fed tokens[:, T-1] as a placeholder: ignore the last 2).
                             Absent when the config has no MTP layer.
        aux["indexer_loss"]  scalar: mean over CSA layers of KL(target || softmax(indexer scores)) over the
                             eligible compressed entries of each query; target = main attention's (detached)
                             probability mass on those entries (dense over all eligible entries, summed over
                             heads, renormalized). 0 when there is no CSA layer.
    # inference (stateful, any call schedule gives the same result up to float noise):
    s = Session(model, dtype=torch.float64)     # float64 = "ideal accumulation" (goldens), float32 = F32
    logits = s.eval([tok, ...])                 # chunk prefill (len>1) or decode (len==1); returns [V]
                                                # float tensor = logits of the last position of the chunk
    mtp_logits = s.eval_mtp(next_token)         # MTP logits (predicting t+2) on the last trunk state;
                                                # does not advance the session
    s.margins                                   # (if Session(..., record=True)) decisions taken:
                                                # (kind "router"/"indexer", layer, position, relative top-k gap,
                                                #  chosen ids); router gap = (k-th - (k+1)-th biased score) / top
                                                # score; indexer gap = (k-th - (k+1)-th) / max|score| over the
                                                # eligible entries; s.clone() copies the state

Numerics (docs/architecture.md §7.1): all activations between ops are BF16 values held in float tensors (rounded with
round_bf16 exactly where the reference casts to BF16); FP8 linears act-quantize their input (blocks 128)
and use dequantized FP8 weights, output BF16; FP4 expert linears likewise; raw-window KV and main
compressor outputs get the FP8 simulation (blocks 64) on the nope dims; indexer q and keys get Hadamard +
FP4 simulation. Choices where docs/architecture.md leaves room (see README.md "Numeric choices"):
- per-head q RMS: F32 then BF16 (as independent implementations do, docs/architecture.md §4.3; the official code does it in BF16 arithmetic);
- indexer head weights: w = bf16(bf16(x . W_wp) * index_head_dim^-0.5 * index_n_heads^-0.5) (as the official
  code: BF16 linear, then a BF16 multiply); the index scores sum_h w_h relu(q_h . k) are computed in F32
  (the official code uses BF16 here; independent implementations use F32);
- RoPE frequencies are built as the official code does: f = 1 / fl32(theta ^ fl32(2i/r)), YaRN blend as
  f/s*(1-smooth) + f*smooth with smooth = 1 - ramp (all F32); angle = fl32(p * f); cos/sin accurate;
- attention: z = fl(s * (q . k)); mu = max over selected keys (the sink excluded); Z = sum exp(z-mu) + exp(sink-mu)
  with F32 P; o = bf16(sum bf16(P_j) k_j / Z);
- MTP window semantics: the MTP block attends to its own window of positions max(0,t-127)..t, where position
  s < t was fed (trunk state X_s, token s+1) -- the same as training. The Session recomputes that window at
  eval_mtp (positions are independent, so this equals an incrementally kept MTP cache).
"""
import json
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

import numerics as nm
from safetensors_io import tensor_format, load_checkpoint


# =============================================================================== config
_HF_DEFAULTS = dict(
    architectures=["DeepseekV4ForCausalLM"], model_type="deepseek_v4", vocab_size=512, hidden_size=128,
    num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=128, qk_rope_head_dim=64,
    q_lora_rank=64, o_groups=1, o_lora_rank=64, moe_intermediate_size=64, n_routed_experts=4,
    n_shared_experts=1, num_experts_per_tok=2, num_hash_layers=0, scoring_func="sqrtsoftplus",
    topk_method="noaux_tc", norm_topk_prob=True, routed_scaling_factor=1.5, swiglu_limit=10.0, hidden_act="silu",
    sliding_window=128, index_n_heads=4, index_head_dim=128, index_topk=8, hc_mult=4, hc_sinkhorn_iters=20,
    hc_eps=1e-6, rms_norm_eps=1e-6, rope_theta=10000.0, compress_rope_theta=160000.0,
    rope_scaling={"type": "yarn", "factor": 16, "original_max_position_embeddings": 65536, "beta_fast": 32,
                  "beta_slow": 1},
    max_position_embeddings=1048576, num_nextn_predict_layers=1, tie_word_embeddings=False,
    attention_bias=False, attention_dropout=0.0, bos_token_id=0, eos_token_id=1, torch_dtype="bfloat16",
    quantization_config={"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
                         "scale_fmt": "ue8m0", "weight_block_size": [128, 128]},
    expert_dtype="fp4", initializer_range=0.02, use_cache=True, compress_ratios=None,
)


class Config:
    """Hyper-parameters under their HF names (docs/architecture.md §1.1) plus short aliases used by the code."""

    def __init__(self, **kw):
        d = json.loads(json.dumps(_HF_DEFAULTS))
        d.update(kw)
        if d["compress_ratios"] is None:
            d["compress_ratios"] = [0] * (d["num_hidden_layers"] + d["num_nextn_predict_layers"])
        assert len(d["compress_ratios"]) == d["num_hidden_layers"] + d["num_nextn_predict_layers"], \
            "compress_ratios must have num_hidden_layers + num_nextn_predict_layers entries"
        self._d = d
        for k, v in d.items():
            setattr(self, k, v)
        # aliases
        self.dim = d["hidden_size"]
        self.n_layers = d["num_hidden_layers"]
        self.n_mtp = d["num_nextn_predict_layers"]
        self.n_heads = d["num_attention_heads"]
        self.rope_dim = d["qk_rope_head_dim"]
        self.inter = d["moe_intermediate_size"]
        self.n_experts = d["n_routed_experts"]
        self.topk = d["num_experts_per_tok"]
        self.n_hash = d["num_hash_layers"]
        self.route_scale = d["routed_scaling_factor"]
        self.window = d["sliding_window"]
        self.hc = d["hc_mult"]
        self.norm_eps = d["rms_norm_eps"]
        rs = d.get("rope_scaling") or None
        self.yarn = bool(rs) and rs.get("type", rs.get("rope_type")) == "yarn"
        self.rope_factor = float(rs["factor"]) if self.yarn else 1.0
        self.orig_len = int(rs["original_max_position_embeddings"]) if self.yarn else 0
        self.beta_fast = float(rs.get("beta_fast", 32)) if self.yarn else 32.0
        self.beta_slow = float(rs.get("beta_slow", 1)) if self.yarn else 1.0

    @classmethod
    def from_json(cls, path):
        with open(path) as f:
            return cls(**json.load(f))

    def to_hf_dict(self):
        return json.loads(json.dumps(self._d))


# =============================================================================== numerics context
class _Ctx:
    train = False          # STE quantization (activations and weights)
    rec = None             # list collecting decisions (kind, layer, pos, relative gap, chosen ids) or None
    pos0 = 0               # first position of the chunk being evaluated (for `rec`)
    idx_losses = None      # list collecting per-layer indexer KL losses (training)
    # Hooks for model variants (None: plain V4; tools/reference/vision_exp.py sets them for Vision-Exp images):
    window_mask = None     # f(key positions [S], query positions [T, 1]) -> [T, S] bool raw-window mask
    route = None           # f(moe, scores [N, E], token ids [N]) -> selected expert ids [N, topk]


CTX = _Ctx()


def rb(x):
    """Cast point to BF16 (reference `.to(bfloat16)`)."""
    return nm.round_bf16_ste(x) if CTX.train else nm.round_bf16(x)


def fp8a(x, block):
    return nm.fp8_sim_ste(x, block) if CTX.train else nm.fp8_sim(x, block)


def fp4a(x, block=32):
    return nm.fp4_sim_ste(x, block) if CTX.train else nm.fp4_sim(x, block)


def wv(p, fmt):
    """Effective weight value: as loaded at inference; in training the export format's quant-dequant (STE)."""
    if not CTX.train:
        return p
    w = p.detach()
    if fmt == "fp8":
        q = nm.fp8_weight_sim(w.double()).to(p.dtype)
    elif fmt == "fp4":
        q = nm.fp4_weight_sim(w.double()).to(p.dtype)
    elif fmt == "bf16":
        q = nm.round_bf16(w)
    else:
        return p
    return nm.ste(p, q)


# =============================================================================== modules (parameter holders)
class Lin(nn.Module):
    """Weight holder [out, in]; `fmt` is the export format (fp8 / fp4 / bf16) of this weight name."""

    def __init__(self, i, o, fmt):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(o, i))
        self.fmt = fmt

    def w(self):
        return wv(self.weight, self.fmt)

    def fwd(self, x):
        """The reference `linear`: FP8/FP4 weights quantize the input (blocks 128) first; output BF16."""
        W = self.w()
        if self.fmt in ("fp8", "fp4"):
            x = fp8a(x, 128)
        return rb(torch.matmul(x, W.t()))


class Norm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        """RMSNorm §3.1: F32 math, BF16 out."""
        w = wv(self.weight, "bf16")
        return rb(w * (x * torch.rsqrt(x.square().mean(-1, keepdim=True) + self.eps)))


def rms_plain(x, eps):
    return x * torch.rsqrt(x.square().mean(-1, keepdim=True) + eps)


def q_head_rms(q, eps):
    """Per-head weightless q RMS exactly as the official model.py (Attention.forward,
    `q *= torch.rsqrt(q.square().mean(-1, keepdim=True) + self.eps)` on a BF16 tensor): every
    intermediate is a BF16 tensor, so q^2, the mean (accumulated in F32), mean+eps, the rsqrt and the
    product are each rounded to BF16. Measured by tools/reference/official_oracle: doing it in F32 with
    one final rounding moves ~30% of q elements by one BF16 step."""
    ms = rb(rb(q * q).mean(-1, keepdim=True))
    return rb(q * rb(torch.rsqrt(rb(ms + eps))))


# =============================================================================== RoPE §3.2
def rope_freqs(cfg, ratio):
    """F32 frequency table of a layer: compressed layers theta=compress_rope_theta with YaRN, else rope_theta."""
    r = cfg.rope_dim
    if ratio:
        base, yarn = float(cfg.compress_rope_theta), cfg.yarn
    else:
        base, yarn = float(cfg.rope_theta), False
    f = 1.0 / (base ** (torch.arange(0, r, 2, dtype=torch.float32) / r))
    if yarn and cfg.orig_len > 0:
        def corr(rot):
            return r * math.log(cfg.orig_len / (rot * 2 * math.pi)) / (2 * math.log(base))
        lo = max(math.floor(corr(cfg.beta_fast)), 0)
        hi = min(math.ceil(corr(cfg.beta_slow)), r - 1)
        if lo == hi:
            hi += 0.001
        ramp = torch.clamp((torch.arange(r // 2, dtype=torch.float32) - lo) / (hi - lo), 0, 1)
        smooth = 1 - ramp
        f = f / cfg.rope_factor * (1 - smooth) + f * smooth
    return f


def rope_cos_sin(freqs, pos, dtype):
    """pos: LongTensor [T] -> cos, sin [T, r/2] of the F32 angle fl32(p*f), evaluated in `dtype`."""
    ang = torch.outer(pos.to(torch.float32), freqs.to(torch.float32))   # F32 product
    a = ang.to(dtype)
    return torch.cos(a), torch.sin(a)


def apply_rope(x, cos, sin, inverse=False):
    """Interleaved rotation of the LAST 2*cos.shape[-1] dims of x; cos/sin broadcastable to [..., r/2].
    Returns BF16-rounded result (rope dims) concatenated with the untouched first dims."""
    r = cos.shape[-1] * 2
    xn, xr = x[..., :-r], x[..., -r:]
    a, b = xr[..., 0::2], xr[..., 1::2]
    if inverse:
        sin = -sin
    ra = a * cos - b * sin
    rbv = a * sin + b * cos
    out = torch.stack([ra, rbv], dim=-1).flatten(-2)
    return torch.cat([xn, rb(out)], dim=-1)


# =============================================================================== mHC §4.2
def hc_mixes(X, fn, norm_eps):
    v = X.flatten(-2)                                           # [..., hc*D] stream-major
    rs = torch.rsqrt(v.square().mean(-1, keepdim=True) + norm_eps)
    return torch.matmul(v, fn.t()) * rs


def sinkhorn(C, iters, eps):
    M = torch.softmax(C, dim=-1) + eps
    M = M / (M.sum(-2, keepdim=True) + eps)
    for _ in range(iters - 1):
        M = M / (M.sum(-1, keepdim=True) + eps)
        M = M / (M.sum(-2, keepdim=True) + eps)
    return M


def hc_pre(X, fn, scale, base, cfg):
    hc = cfg.hc
    m = hc_mixes(X, fn, cfg.norm_eps)
    pre = torch.sigmoid(m[..., :hc] * scale[0] + base[:hc]) + cfg.hc_eps
    post = 2 * torch.sigmoid(m[..., hc:2 * hc] * scale[1] + base[hc:2 * hc])
    C = (m[..., 2 * hc:] * scale[2] + base[2 * hc:]).unflatten(-1, (hc, hc))
    M = sinkhorn(C, cfg.hc_sinkhorn_iters, cfg.hc_eps)
    u = rb((pre.unsqueeze(-1) * X).sum(-2))
    return u, post, M


def hc_post(y, X, post, M):
    # X'_k = post_k * y + sum_j M[j,k] X_j
    return rb(post.unsqueeze(-1) * y.unsqueeze(-2) + torch.einsum("...jk,...jd->...kd", M, X))


def hc_head(X, fn, scale, base, cfg):
    m = hc_mixes(X, fn, cfg.norm_eps)
    p = torch.sigmoid(m * scale[0] + base) + cfg.hc_eps
    return rb((p.unsqueeze(-1) * X).sum(-2))


# =============================================================================== compressor §4.4
class Compressor(nn.Module):
    def __init__(self, cfg, ratio, d, rotate):
        super().__init__()
        self.ratio, self.d, self.rotate = ratio, d, rotate
        self.overlap = ratio == 4
        c = 2 if self.overlap else 1
        self.ape = nn.Parameter(torch.zeros(ratio, c * d))
        self.wkv = Lin(cfg.dim, c * d, "bf16")
        self.wgate = Lin(cfg.dim, c * d, "bf16")
        self.norm = Norm(d, cfg.norm_eps)
        self.rope_dim = cfg.rope_dim

    def project(self, x, pos):
        """Per-token F32 projections: a = Wkv x, g = Wgate x + ape[p mod R]. x: [B,T,D]."""
        a = torch.matmul(x, self.wkv.w().t())
        g = torch.matmul(x, self.wgate.w().t()) + self.ape[pos % self.ratio]
        return a, g

    def emit(self, a_all, g_all, w0, w1, cos_sin_fn):
        """Entries w0..w1-1 from the per-token projections of all tokens so far ([B,P,c*d])."""
        R, d = self.ratio, self.d
        if w1 <= w0:
            return None
        B = a_all.shape[0]
        if self.overlap:
            lo = max(w0 - 1, 0)
            A = a_all[:, lo * R: w1 * R].unflatten(1, (-1, R))           # blocks lo..w1-1
            G = g_all[:, lo * R: w1 * R].unflatten(1, (-1, R))
            if w0 == 0:   # previous block of entry 0 is empty: a = 0, g = -inf
                A = torch.cat([torch.zeros_like(A[:, :1]), A], 1)
                G = torch.cat([torch.full_like(G[:, :1], float("-inf")), G], 1)
            pa, pg = A[:, :-1, :, :d], G[:, :-1, :, :d]                   # previous block, A halves
            ca, cg = A[:, 1:, :, d:], G[:, 1:, :, d:]                     # current block, B halves
            a = torch.cat([pa, ca], 2)
            g = torch.cat([pg, cg], 2)
        else:
            a = a_all[:, w0 * R: w1 * R].unflatten(1, (-1, R))
            g = g_all[:, w0 * R: w1 * R].unflatten(1, (-1, R))
        c = (a * torch.softmax(g, dim=2)).sum(2)                          # [B, nw, d] F32
        c = self.norm(rb(c))
        pos = torch.arange(w0, w1) * R
        cos, sin = cos_sin_fn(pos)
        c = apply_rope(c, cos, sin)
        if self.rotate:
            c = fp4a(nm.hadamard(c) if not CTX.train else nm.ste(c, nm.hadamard(c.detach())), 32)
        else:
            n = d - self.rope_dim
            c = torch.cat([fp8a(c[..., :n], 64), c[..., n:]], -1)
        return c


class Indexer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.nh, self.hd = cfg.index_n_heads, cfg.index_head_dim
        self.wq_b = Lin(cfg.q_lora_rank, self.nh * self.hd, "fp8")
        self.weights_proj = Lin(cfg.dim, self.nh, "bf16")
        self.compressor = Compressor(cfg, 4, self.hd, True)


# =============================================================================== attention §4.3
class Attention(nn.Module):
    def __init__(self, cfg, layer_id):
        super().__init__()
        H, hd = cfg.n_heads, cfg.head_dim
        self.cfg, self.layer_id = cfg, layer_id
        self.ratio = cfg.compress_ratios[layer_id]
        self.attn_sink = nn.Parameter(torch.zeros(H))
        self.wq_a = Lin(cfg.dim, cfg.q_lora_rank, "fp8")
        self.q_norm = Norm(cfg.q_lora_rank, cfg.norm_eps)
        self.wq_b = Lin(cfg.q_lora_rank, H * hd, "fp8")
        self.wkv = Lin(cfg.dim, hd, "fp8")
        self.kv_norm = Norm(hd, cfg.norm_eps)
        self.wo_a = Lin(H * hd // cfg.o_groups, cfg.o_groups * cfg.o_lora_rank, "fp8")
        self.wo_b = Lin(cfg.o_groups * cfg.o_lora_rank, cfg.dim, "fp8")
        if self.ratio:
            self.compressor = Compressor(cfg, self.ratio, hd, False)
            if self.ratio == 4:
                self.indexer = Indexer(cfg)
        self.register_buffer("freqs", rope_freqs(cfg, self.ratio), persistent=False)

    def forward(self, x, pos0, cache):
        """x: [B,T,D] BF16 attention input (normed); positions pos0..pos0+T-1; cache: dict (mutated)."""
        cfg = self.cfg
        B, T, _ = x.shape
        H, hd, r = cfg.n_heads, cfg.head_dim, cfg.rope_dim
        n = hd - r
        dt = x.dtype
        pos = torch.arange(pos0, pos0 + T)
        P = pos0 + T

        def cs(p):
            return rope_cos_sin(self.freqs, p, dt)
        cos, sin = cs(pos)                                                # [T, r/2]

        # query
        cq = self.q_norm(self.wq_a.fwd(x))
        q = self.wq_b.fwd(cq).unflatten(-1, (H, hd))
        q = q_head_rms(q, cfg.norm_eps)
        q = apply_rope(q, cos[:, None], sin[:, None])
        # raw window kv
        kv = self.kv_norm(self.wkv.fwd(x))
        kv = apply_rope(kv, cos, sin)
        kv = torch.cat([fp8a(kv[..., :n], 64), kv[..., n:]], -1)
        kv_all = kv if cache.get("kv") is None else torch.cat([cache["kv"], kv], 1)
        cache["kv"] = kv_all

        keys = [kv_all]
        sp = torch.arange(P - kv_all.shape[1], P)                         # positions of the raw keys
        tq = pos[:, None]
        if CTX.window_mask is None:
            masks = [(sp[None, :] <= tq) & (sp[None, :] > tq - cfg.window)]   # [T, P]
        else:
            masks = [CTX.window_mask(sp, tq)]
        sel = None
        if self.ratio:
            R = self.ratio
            comp = self.compressor
            a, g = comp.project(x, pos)
            a_all = a if cache.get("ca") is None else torch.cat([cache["ca"], a], 1)
            g_all = g if cache.get("cg") is None else torch.cat([cache["cg"], g], 1)
            cache["ca"], cache["cg"] = a_all, g_all
            w0, w1 = pos0 // R, P // R
            new = comp.emit(a_all, g_all, w0, w1, cs)
            ckv = cache.get("ckv")
            if new is not None:
                ckv = new if ckv is None else torch.cat([ckv, new], 1)
            cache["ckv"] = ckv
            Nw = w1
            if R == 4:
                self.index_update(x, pos, cache, cs)
            if Nw > 0:
                keys.append(ckv)
                elig = torch.arange(Nw)[None, :] < ((pos + 1) // R)[:, None]   # [T, Nw]
                if R == 4:
                    sel, iscore = self.index(x, cq, pos, cache, cs, elig, Nw)
                    masks.append(elig[None] & sel)                           # [B, T, Nw]
                else:
                    masks.append(elig)
        K = torch.cat(keys, 1)                                             # [B, S, hd]
        mask = torch.cat([m if m.dim() == 3 else m[None].expand(B, -1, -1) for m in masks], -1)  # [B,T,S]
        z = torch.einsum("bthd,bsd->bhts", q, K) * (hd ** -0.5)
        zm = z.masked_fill(~mask[:, None], float("-inf"))
        mu = zm.amax(-1, keepdim=True)
        Pm = torch.exp(zm - mu)
        sink = self.attn_sink.view(1, H, 1, 1).to(dt)
        Z = Pm.sum(-1, keepdim=True) + torch.exp(sink - mu)
        o = torch.einsum("bhts,bsd->bthd", rb(Pm), K) / Z.permute(0, 2, 1, 3)
        o = rb(o)
        if CTX.train and sel is not None and CTX.idx_losses is not None:
            self.indexer_kl(z, mask, masks, iscore, P)
        o = apply_rope(o, cos[:, None], sin[:, None], inverse=True)
        G = cfg.o_groups
        o = o.reshape(B, T, G, -1)
        wo_a = self.wo_a.w().view(G, cfg.o_lora_rank, -1)
        rr = rb(torch.einsum("btgd,grd->btgr", o, wo_a))
        return self.wo_b.fwd(rr.flatten(2))

    def index_update(self, x, pos, cache, cs):
        """Indexer compressor (§4.4, d_c = index_head_dim, Hadamard + FP4): keep per-token projections of
        every token and append the entries completed by this chunk to cache["ik"]."""
        comp = self.indexer.compressor
        a, g = comp.project(x, pos)
        a_all = a if cache.get("ia") is None else torch.cat([cache["ia"], a], 1)
        g_all = g if cache.get("ig") is None else torch.cat([cache["ig"], g], 1)
        cache["ia"], cache["ig"] = a_all, g_all
        pos0, P = int(pos[0]), int(pos[-1]) + 1
        new = comp.emit(a_all, g_all, pos0 // 4, P // 4, cs)
        ik = cache.get("ik")
        if new is not None:
            ik = new if ik is None else torch.cat([ik, new], 1)
        cache["ik"] = ik

    def index(self, x, cq, pos, cache, cs, elig, Nw):
        """Lightning indexer §4.5: returns (selection mask [B,T,Nw] bool, scores [B,T,Nw] with -inf)."""
        cfg = self.cfg
        ix = self.indexer
        B, T, _ = x.shape
        cos, sin = cs(pos)
        qi = ix.wq_b.fwd(cq).unflatten(-1, (ix.nh, ix.hd))
        qi = apply_rope(qi, cos[:, None], sin[:, None])
        qi = nm.ste(qi, nm.hadamard(qi.detach())) if CTX.train else nm.hadamard(qi)
        qi = fp4a(qi, 32)
        ik = cache["ik"]
        w = rb(ix.weights_proj.fwd(x) * (ix.hd ** -0.5 * ix.nh ** -0.5))   # [B,T,nh]
        s = torch.einsum("bthd,bsd->bths", qi, ik)
        score = (torch.relu(s) * w.unsqueeze(-1)).sum(2)                    # [B,T,Nw] F32
        score = score.masked_fill(~elig[None], float("-inf"))
        k = min(cfg.index_topk, Nw)
        sd = score.detach()
        # top-k; exact ties (e.g. several all-ReLU-zero scores) go to the lower entry index (stable sort), so
        # the selection does not depend on the call schedule
        top = torch.sort(sd, dim=-1, descending=True, stable=True)[1][..., :k]
        sel = torch.zeros_like(sd, dtype=torch.bool).scatter_(-1, top, True)
        if CTX.rec is not None:
            nel = elig.sum(-1)                                              # [T]
            for t in range(T):
                ne = int(nel[t])
                if ne > k:
                    for b in range(B):
                        v = sd[b, t, :ne].sort(descending=True)[0]
                        gap = ((v[k - 1] - v[k]) / v.abs().max().clamp(min=1e-30)).item()
                        CTX.rec.append(("indexer", self.layer_id, int(pos[t]), gap,
                                        tuple(sorted(top[b, t].tolist()))))
        return sel, score

    def indexer_kl(self, z, mask, masks, iscore, P):
        """KL(target || softmax(index score)) over eligible compressed entries (training only)."""
        H = z.shape[1]
        Nw = iscore.shape[-1]
        win = masks[0][None].expand(z.shape[0], -1, -1)
        elig = torch.isfinite(iscore.detach())
        full = torch.cat([win, elig], -1)
        with torch.no_grad():
            zz = z.detach().masked_fill(~full[:, None], float("-inf"))
            sink = self.attn_sink.detach().view(1, H, 1, 1).to(z.dtype)
            mx = torch.maximum(zz.amax(-1, keepdim=True), sink)
            e = torch.exp(zz - mx)
            p = e / (e.sum(-1, keepdim=True) + torch.exp(sink - mx))
            tgt = p[..., P:].sum(1)                                         # [B,T,Nw]
            tgt = tgt / tgt.sum(-1, keepdim=True).clamp(min=1e-30)
        rows = elig.any(-1)
        if not bool(rows.any()):
            return
        ls = torch.log_softmax(iscore.masked_fill(~elig, -1e30), dim=-1)
        kl = (tgt * (torch.log(tgt.clamp(min=1e-30)) - ls)).masked_fill(~elig, 0).sum(-1)
        CTX.idx_losses.append(kl[rows].mean())


# =============================================================================== MoE §4.6
class Gate(nn.Module):
    def __init__(self, cfg, layer_id):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(cfg.n_experts, cfg.dim))
        self.hash = layer_id < cfg.n_hash
        if self.hash:
            self.register_buffer("tid2eid", torch.zeros(cfg.vocab_size, cfg.topk, dtype=torch.int64))
        else:
            self.bias = nn.Parameter(torch.zeros(cfg.n_experts))


class Expert(nn.Module):
    def __init__(self, cfg, inter, fmt):
        super().__init__()
        self.w1 = Lin(cfg.dim, inter, fmt)
        self.w2 = Lin(inter, cfg.dim, fmt)
        self.w3 = Lin(cfg.dim, inter, fmt)
        self.limit = cfg.swiglu_limit

    def forward(self, x, weight=None):
        g = self.w1.fwd(x)
        v = self.w3.fwd(x)
        if self.limit and self.limit > 0:
            v = torch.clamp(v, -self.limit, self.limit)
            g = torch.clamp(g, max=self.limit)
        h = F.silu(g) * v
        if weight is not None:
            h = weight * h
        return self.w2.fwd(rb(h))


class MoE(nn.Module):
    def __init__(self, cfg, layer_id):
        super().__init__()
        self.cfg, self.layer_id = cfg, layer_id
        self.gate = Gate(cfg, layer_id)
        self.experts = nn.ModuleList([Expert(cfg, cfg.inter, "fp4") for _ in range(cfg.n_experts)])
        self.shared_experts = Expert(cfg, cfg.inter * cfg.n_shared_experts, "fp8")

    def forward(self, x, tokens):
        cfg = self.cfg
        shp = x.shape
        x = x.reshape(-1, shp[-1])
        tok = tokens.reshape(-1)
        lg = torch.matmul(x, wv(self.gate.weight, "bf16").t())               # F32 router logits
        s = torch.sqrt(F.softplus(lg))
        if CTX.route is not None:
            ids = CTX.route(self, s, tok)
        elif self.gate.hash:
            ids = self.gate.tid2eid[tok]
        else:
            b = s.detach() + self.gate.bias.detach()
            top = torch.sort(b, dim=-1, descending=True, stable=True)   # exact ties: lower expert id
            ids = top[1][:, :cfg.topk]
            if CTX.rec is not None and cfg.n_experts > cfg.topk:
                v = top[0]
                gaps = ((v[:, cfg.topk - 1] - v[:, cfg.topk]) / v[:, 0].abs().clamp(min=1e-30)).tolist()
                T = shp[-2] if len(shp) > 1 else 1
                for row, gp in enumerate(gaps):
                    CTX.rec.append(("router", self.layer_id, CTX.pos0 + row % T, gp,
                                    tuple(sorted(ids[row].tolist()))))
        w = s.gather(1, ids)
        w = w / w.sum(-1, keepdim=True) * cfg.route_scale
        y = torch.zeros_like(x)
        for e in range(cfg.n_experts):
            rows, slot = torch.where(ids == e)
            if rows.numel() == 0:
                continue
            out = self.experts[e](x[rows], w[rows, slot, None])
            y = y.index_add(0, rows, out)
        y = y + self.shared_experts(x)
        return rb(y).reshape(shp)


# =============================================================================== blocks
class Block(nn.Module):
    def __init__(self, cfg, layer_id):
        super().__init__()
        self.cfg, self.layer_id = cfg, layer_id
        mix, hd = (2 + cfg.hc) * cfg.hc, cfg.hc * cfg.dim
        self.attn_norm = Norm(cfg.dim, cfg.norm_eps)
        self.ffn_norm = Norm(cfg.dim, cfg.norm_eps)
        self.hc_attn_fn = nn.Parameter(torch.zeros(mix, hd))
        self.hc_ffn_fn = nn.Parameter(torch.zeros(mix, hd))
        self.hc_attn_base = nn.Parameter(torch.zeros(mix))
        self.hc_ffn_base = nn.Parameter(torch.zeros(mix))
        self.hc_attn_scale = nn.Parameter(torch.ones(3))
        self.hc_ffn_scale = nn.Parameter(torch.ones(3))
        self.attn = Attention(cfg, layer_id)
        self.ffn = MoE(cfg, layer_id)

    def forward(self, X, pos0, tokens, cache):
        cfg = self.cfg
        CTX.pos0 = pos0
        u, post, M = hc_pre(X, self.hc_attn_fn, self.hc_attn_scale, self.hc_attn_base, cfg)
        y = self.attn(self.attn_norm(u), pos0, cache)
        X = hc_post(y, X, post, M)
        u, post, M = hc_pre(X, self.hc_ffn_fn, self.hc_ffn_scale, self.hc_ffn_base, cfg)
        y = self.ffn(self.ffn_norm(u), tokens)
        return hc_post(y, X, post, M)


class MTPBlock(Block):
    def __init__(self, cfg, layer_id):
        super().__init__(cfg, layer_id)
        assert cfg.compress_ratios[layer_id] == 0, "MTP block with compression is not supported"
        self.e_proj = Lin(cfg.dim, cfg.dim, "fp8")
        self.h_proj = Lin(cfg.dim, cfg.dim, "fp8")
        self.enorm = Norm(cfg.dim, cfg.norm_eps)
        self.hnorm = Norm(cfg.dim, cfg.norm_eps)
        self.norm = Norm(cfg.dim, cfg.norm_eps)
        self.hc_head_fn = nn.Parameter(torch.zeros(cfg.hc, cfg.hc * cfg.dim))
        self.hc_head_base = nn.Parameter(torch.zeros(cfg.hc))
        self.hc_head_scale = nn.Parameter(torch.ones(1))

    def run(self, X, e, pos0, tokens_next):
        """X: trunk final states [B,T,hc,D]; e: embeddings of the next tokens [B,T,D] (BF16).
        Returns the final normed hidden [B,T,D] (BF16) before the head."""
        cfg = self.cfg
        h = rb(self.e_proj.fwd(self.enorm(e)).unsqueeze(-2) + self.h_proj.fwd(self.hnorm(X)))
        h = super().forward(h, pos0, tokens_next, {})
        return self.norm(hc_head(h, self.hc_head_fn, self.hc_head_scale, self.hc_head_base, cfg))


class Transformer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Module()
        self.embed.weight = nn.Parameter(torch.empty(cfg.vocab_size, cfg.dim))
        self.layers = nn.ModuleList([Block(cfg, i) for i in range(cfg.n_layers)])
        self.norm = Norm(cfg.dim, cfg.norm_eps)
        self.head = nn.Module()
        self.head.weight = nn.Parameter(torch.empty(cfg.vocab_size, cfg.dim))
        self.hc_head_fn = nn.Parameter(torch.zeros(cfg.hc, cfg.hc * cfg.dim))
        self.hc_head_base = nn.Parameter(torch.zeros(cfg.hc))
        self.hc_head_scale = nn.Parameter(torch.ones(1))
        self.mtp = nn.ModuleList([MTPBlock(cfg, cfg.n_layers + i) for i in range(cfg.n_mtp)])
        self.init_weights(0)

    # ------------------------------------------------------------------ weights
    def init_weights(self, seed=0, std=0.02):
        """Simple default init (training): linears N(0, 1/in) scaled, norms 1, hc fn small, tid2eid random."""
        g = torch.Generator().manual_seed(seed)
        cfg = self.cfg
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith("norm.weight"):
                    p.fill_(1.0)
                elif name.endswith(".weight") or name.endswith("_fn"):
                    p.copy_(torch.randn(p.shape, generator=g) * std)
                elif name.endswith("_scale"):
                    p.fill_(1.0)
                else:
                    p.zero_()
            for name, b in self.named_buffers():
                if name.endswith("tid2eid"):
                    b.copy_(torch.stack([torch.randperm(cfg.n_experts, generator=g)[:cfg.topk]
                                         for _ in range(cfg.vocab_size)]))

    @classmethod
    def from_dir(cls, d):
        cfg = Config.from_json(os.path.join(d, "config.json"))
        m = cls(cfg)
        sd = load_checkpoint(d)
        missing, unexpected = m.load_state_dict(sd, strict=False)
        missing = [k for k in missing if not k.endswith("freqs")]
        if missing or unexpected:
            raise ValueError("%s: missing %s unexpected %s" % (d, missing[:5], unexpected[:5]))
        return m

    # ------------------------------------------------------------------ forward pieces
    def embed_tokens(self, tokens, dtype):
        return wv(self.embed.weight, "bf16")[tokens].to(dtype)

    def trunk(self, tokens, pos0, caches, dtype):
        """tokens [B,T] -> final 4-stream state [B,T,hc,D]."""
        e = self.embed_tokens(tokens, dtype)
        X = e.unsqueeze(-2).expand(*e.shape[:-1], self.cfg.hc, e.shape[-1]).contiguous()
        for i, layer in enumerate(self.layers):
            X = layer(X, pos0, tokens, caches[i])
        return X

    def logits_from_state(self, X):
        u = self.norm(hc_head(X, self.hc_head_fn, self.hc_head_scale, self.hc_head_base, self.cfg))
        return torch.matmul(u, wv(self.head.weight, "bf16").t())

    def mtp_logits(self, X, next_tokens, pos0):
        m = self.mtp[0]
        u = m.run(X, self.embed_tokens(next_tokens, X.dtype), pos0, next_tokens)
        return torch.matmul(u, wv(self.head.weight, "bf16").t())

    def forward_train(self, tokens):
        """Differentiable full-sequence pass with STE quantization (see module doc)."""
        CTX.train = True
        CTX.idx_losses = []
        try:
            dt = self.embed.weight.dtype
            caches = [dict() for _ in self.layers]
            X = self.trunk(tokens, 0, caches, dt)
            logits = self.logits_from_state(X)
            aux = {}
            if self.cfg.n_mtp:
                nxt = torch.cat([tokens[:, 1:], tokens[:, -1:]], 1)
                aux["mtp_logits"] = self.mtp_logits(X, nxt, 0)
            il = CTX.idx_losses
            aux["indexer_loss"] = torch.stack(il).mean() if il else torch.zeros((), dtype=dt)
        finally:
            CTX.train = False
            CTX.idx_losses = None
        return logits, aux


# =============================================================================== stateful inference
class Session:
    """Stateful evaluation with arbitrary call schedules (see module doc)."""

    def __init__(self, model, dtype=torch.float64, record=False):
        self.model = model.to(dtype) if next(model.parameters()).dtype != dtype else model
        self.dtype = dtype
        self.caches = [dict() for _ in model.layers]
        self.tokens = []
        self.states = None        # [1, P, hc, D] trunk final states (for MTP)
        self.margins = [] if record else None

    @torch.no_grad()
    def eval(self, chunk):
        chunk = [int(t) for t in chunk]
        assert len(chunk) >= 1
        pos0 = len(self.tokens)
        self.tokens += chunk
        CTX.rec = self.margins
        try:
            toks = torch.tensor([chunk], dtype=torch.int64)
            X = self.model.trunk(toks, pos0, self.caches, self.dtype)
            logits = self.model.logits_from_state(X[:, -1:])[0, -1]
        finally:
            CTX.rec = None
        self.states = X if self.states is None else torch.cat([self.states, X], 1)
        return logits.to(torch.float32)

    def clone(self):
        """Independent copy of the session state (cache tensors are never modified in place)."""
        c = Session.__new__(Session)
        c.model, c.dtype = self.model, self.dtype
        c.caches = [dict(x) for x in self.caches]
        c.tokens = list(self.tokens)
        c.states = self.states
        c.margins = None if self.margins is None else []
        return c

    @torch.no_grad()
    def eval_mtp(self, next_token):
        m = self.model
        P = len(self.tokens)
        t0 = max(0, P - m.cfg.window)
        X = self.states[:, t0:P]
        nxt = torch.tensor([self.tokens[t0 + 1:P] + [int(next_token)]], dtype=torch.int64)
        CTX.rec = self.margins
        try:
            lg = m.mtp_logits(X, nxt, t0)[0, -1]
        finally:
            CTX.rec = None
        return lg.to(torch.float32)
