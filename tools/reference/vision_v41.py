#!/usr/bin/python3
"""PyTorch reference of the DeepSeek-V4.1 vision tower ("DeepSeek-ViT") and aligner (docs/vision.md "Tower";
spec: docs/v41.md §3.1-3.2). Written from the spec and checked against DeepSeek's official `inference/vision.py`
run on CPU (tools/reference/official_oracle/v41_vision.py; agreement in tools/reference/README.md).

What the official code computes, and so this reference: the tower is built under torch's BF16 default dtype
(generate.py), so every Linear weight and bias, the input patches and every activation between operations are
BF16; the RMSNorm weights are F32 parameters (vision.py creates them with dtype float32). Per operation:

  linear(x, W, b)  y = bf16(fl32(x . W) + b)            (F32 accumulation, bias added in F32, one rounding)
  rmsnorm(x, w)    ms = fl32(mean(x^2)); y = bf16(w * (x * fl32(1/sqrt(ms + 1e-6))))
  2D RoPE          per head x = [x1 | x2] (halves of head_dim); angles [row * f | col * f], f_i =
                   fl32(1 / fl32(theta ^ (2i / (head_dim/2)))), i < head_dim/4; fl32 cos / sin of fl32 angles;
                   y = bf16([x1 c - x2 s, x2 c + x1 s]) with every product and sum rounded to F32 (no FMA)
  attention        bidirectional over the image; z = fl32(q . k) / sqrt(head_dim); p = exp(z - max) (F32; the
                   exp is softmax_exp below, a fixed F32 polynomial that the C code repeats bit for bit),
                   Z = sum p (F32), o = bf16(sum_j bf16(p_j) v_j / Z): P is rounded to BF16 before the P.V
                   product, as the flash-attention kernels behind F.scaled_dot_product_attention do for BF16
                   inputs (CUDA FA2, and the CPU flash kernel of torch >= 2.2); no sink, no mask
  block            x = bf16(x + wo(attn(norm1(x)))); [g | u] = w1(norm2(x)); m = bf16(bf16(silu(g)) * u);
                   x = bf16(x + w2(m))   (w1, w2 without bias; silu = x / (1 + exp(-x)) in F32 op-math)
  final            vision.norm (RMSNorm)
  aligner          [n_h, n_w, D] zero-padded bottom/right to multiples of r = downsample_ratio, cut into r x r
                   cells in row-major cell order; each cell's vector is channel-major (index c*r*r + kh*r + kw,
                   F.unfold's order); h = aligner.w1(cell) (+bias); g = bf16((h * 0.5) * (1 + erf(h * fl32(1/sqrt 2))))
                   (exact erf GELU, every step F32, as torch's op-math); out = aligner.w2(g) (+bias): n_llm_h * n_llm_w rows of the LM width, BF16.

`acc` selects the accumulation precision of the dot products and sums: float64 (default; the goldens: dot
products exact before their single rounding to F32) or float32 (torch's own F32 order): their difference is the
reference's rounding noise, used to set the C test's tolerance. The other transcendentals (exp in SiLU, sin, cos,
erf, pow) are evaluated in float64 and rounded to F32, i.e. correctly rounded (libm's expf/sinf/cosf agree with them almost
always; torch's vectorised F32 versions and CUDA's may differ by an ulp - part of the measured agreement).

Tensor names (the checkpoint's, as the official module tree): vision.patch_embed.proj.{weight,bias},
vision.blocks.N.{norm1.weight, attn.wqkv.{weight,bias}, attn.wo.{weight,bias}, norm2.weight, mlp.w1.weight,
mlp.w2.weight}, vision.norm.weight, aligner.w1.{weight,bias}, aligner.w2.{weight,bias}; the span delimiters
image_start, image_newline, image_end (not used by the tower).
"""
import math
from dataclasses import dataclass

import torch

EPS = 1e-6


def bf(x):
    """Round F32 values to BF16 (RNE), returned as float32."""
    return x.float().to(torch.bfloat16).to(torch.float32)


def fl32(x):
    return x.to(torch.float32)


@dataclass
class VisionConfig:
    n_layers: int = 32
    dim: int = 1024
    n_heads: int = 16
    inter_dim: int = 2816
    patch_size: int = 14
    rope_theta: float = 10000.0
    downsample_ratio: int = 3
    lm_dim: int = 5120
    # pre-processing (not used by the tower; recorded with the goldens)
    max_image_tokens: int = 1024
    min_pixels: int = 295936

    @classmethod
    def from_hf(cls, cfg):
        """From an HF config dict: vision_config (nested) + the LM width (text_config.hidden_size or hidden_size)."""
        v = cfg["vision_config"]
        t = cfg.get("text_config", cfg)
        return cls(n_layers=v["num_hidden_layers"], dim=v["hidden_size"], n_heads=v["num_attention_heads"],
                   inter_dim=v["intermediate_size"], patch_size=v["patch_size"],
                   rope_theta=float(v.get("rope_theta", 10000.0)), downsample_ratio=v.get("downsample_ratio", 3),
                   lm_dim=t["hidden_size"], max_image_tokens=v.get("max_image_tokens", 1024),
                   min_pixels=v.get("min_pixels", 295936))

    def to_hf_vision(self):
        return {"num_hidden_layers": self.n_layers, "hidden_size": self.dim, "num_attention_heads": self.n_heads,
                "intermediate_size": self.inter_dim,
                "patch_size": self.patch_size, "rope_theta": self.rope_theta,
                "downsample_ratio": self.downsample_ratio, "max_image_tokens": self.max_image_tokens,
                "min_pixels": self.min_pixels, "max_wh_ratio": None}


def tensor_shapes(c: VisionConfig):
    """name -> (shape, storage dtype) of every vision tensor (BF16 except the norm weights, F32)."""
    D, I, P, L, r = c.dim, c.inter_dim, 3 * c.patch_size ** 2, c.lm_dim, c.downsample_ratio
    s = {"vision.patch_embed.proj.weight": ([D, P], "BF16"), "vision.patch_embed.proj.bias": ([D], "BF16")}
    for i in range(c.n_layers):
        b = f"vision.blocks.{i}."
        s.update({b + "norm1.weight": ([D], "F32"), b + "attn.wqkv.weight": ([3 * D, D], "BF16"),
                  b + "attn.wqkv.bias": ([3 * D], "BF16"), b + "attn.wo.weight": ([D, D], "BF16"),
                  b + "attn.wo.bias": ([D], "BF16"), b + "norm2.weight": ([D], "F32"),
                  b + "mlp.w1.weight": ([2 * I, D], "BF16"), b + "mlp.w2.weight": ([D, I], "BF16")})
    s.update({"vision.norm.weight": ([D], "F32"), "aligner.w1.weight": ([L, D * r * r], "BF16"),
              "aligner.w1.bias": ([L], "BF16"), "aligner.w2.weight": ([L, L], "BF16"),
              "aligner.w2.bias": ([L], "BF16"), "image_start": ([L], "BF16"), "image_newline": ([L], "BF16"),
              "image_end": ([L], "BF16")})
    return s


def random_weights(c: VisionConfig, seed: int):
    """Seeded random weights (float32 tensors holding values of their storage dtype): linears ~ N(0, 1/fan_in),
    biases ~ N(0, 0.05^2), norm weights 1 + N(0, 0.1^2) (F32, not BF16-representable)."""
    g = torch.Generator().manual_seed(seed)
    w = {}
    for name, (shape, dt) in tensor_shapes(c).items():
        if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name == "vision.norm.weight":
            t = 1.0 + 0.1 * torch.randn(shape, generator=g, dtype=torch.float64)
        elif len(shape) == 2:
            t = torch.randn(shape, generator=g, dtype=torch.float64) / math.sqrt(shape[1])
        else:
            t = 0.05 * torch.randn(shape, generator=g, dtype=torch.float64)
        t = t.to(torch.float32)
        w[name] = bf(t) if dt == "BF16" else t
    return w


def load_weights(path, c: VisionConfig):
    """The vision tensors of a checkpoint (a model directory, or one .safetensors file) as float32 tensors holding
    their stored values; every name of tensor_shapes(c) must be there with its shape (BF16 or F32)."""
    import os
    from safetensors_io import raw_to_tensor, read_raw_dir, read_safetensors
    raw = read_raw_dir(path) if os.path.isdir(path) else read_safetensors(path)
    w = {}
    for name, (shape, _) in tensor_shapes(c).items():
        if name not in raw:
            raise KeyError(f"{path}: missing tensor '{name}'")
        dt, sh, data = raw[name]
        if list(sh) != list(shape) or dt not in ("BF16", "F32"):
            raise ValueError(f"{path}: tensor '{name}': expected BF16 or F32 {shape}, found {dt} {sh}")
        w[name] = raw_to_tensor(dt, sh, data).float()
    return w


# ------------------------------------------------------------------------------------------------ operations
def linear(x, W, b, acc):
    y = fl32(x.to(acc) @ W.to(acc).t())
    if b is not None:
        y = y + b
    return bf(y)


def rmsnorm(x, w, acc):
    ms = fl32((x.to(acc) ** 2).mean(-1, keepdim=True))
    r = fl32(1.0 / torch.sqrt((ms + EPS).double()))
    return bf(w * (x * r))


def rope_tables(n_h, n_w, head_dim, theta):
    """cos, sin [n_h * n_w, head_dim/2] (F32) of the 2D split-half RoPE; patch index = row * n_w + col."""
    half = head_dim // 2
    i = torch.arange(half // 2, dtype=torch.float64)
    expo = fl32(2 * i / half)
    f = fl32(1.0 / fl32(torch.pow(torch.tensor(float(theta), dtype=torch.float64), expo.double())).double())
    idx = torch.arange(n_h * n_w)
    rows, cols = (idx // n_w).float(), (idx % n_w).float()
    ang = torch.cat([rows[:, None] * f[None, :], cols[:, None] * f[None, :]], dim=1)   # F32 products
    return fl32(torch.cos(ang.double())), fl32(torch.sin(ang.double()))


def rotate(x, cos, sin):
    """x [n, H, hd] (BF16 values) -> rotated, BF16; F32 products and sums, each rounded (no FMA)."""
    h = x.size(-1) // 2
    x1, x2 = x[..., :h], x[..., h:]
    c, s = cos[:, None, :], sin[:, None, :]
    return bf(torch.cat([(x1 * c) - (x2 * s), (x2 * c) + (x1 * s)], dim=-1))


def _f(v):
    return torch.tensor(v, dtype=torch.float32)


def softmax_exp(x):
    """exp(x), x <= 0, in F32 operations only (the C code's softmax_exp, src/vision/tower.c, bit for bit):
    k = round-to-even(x fl32(log2 e)) by adding and subtracting 1.5 * 2^23, r = (x - k ln2_hi) - k ln2_lo,
    the degree-6 Taylor polynomial of e^r (Horner, F32 coefficients), times 2^k; 0 below -86. Within 3 F32 ulps of
    e^x (the official code's exp is torch's / CUDA's F32 exp, also within an ulp or two)."""
    x = x.to(torch.float32)
    magic = _f(12582912.0)
    k = (x * _f(1.44269502) + magic) - magic
    r = (x - k * _f(0.693145752)) - k * _f(1.42860677e-06)
    p = _f(1.38888892e-03)
    for c in (8.33333377e-03, 4.16666679e-02, 1.66666672e-01, 0.5, 1.0, 1.0):
        p = p * r + _f(c)
    e = ((k.to(torch.int32) + 127) << 23).view(torch.float32)
    return torch.where(x >= -86.0, p * e, torch.zeros_like(x))


def attention(q, k, v, acc):
    """q, k, v [n, H, hd] BF16 values -> o [n, H*hd] BF16 values (bidirectional, per head)."""
    n, H, hd = q.shape
    scale = fl32(torch.tensor(1.0 / math.sqrt(hd)))
    out = torch.empty(n, H, hd)
    for h in range(H):
        z = fl32(q[:, h].to(acc) @ k[:, h].to(acc).t()) * scale
        m = z.max(dim=1, keepdim=True).values
        p = softmax_exp(z - m)
        Z = fl32(p.to(acc).sum(dim=1, keepdim=True))
        num = fl32(bf(p).to(acc) @ v[:, h].to(acc))
        out[:, h] = bf(num / Z)
    return out.reshape(n, H * hd)


def silu(x):
    """torch's SiLU on BF16 with F32 op-math (CUDA; CPU torch >= 2): x / (1 + exp(-x)), each step rounded to F32."""
    e = fl32(torch.exp(-x.double()))
    return fl32(x / (1.0 + e))


def gelu_erf(x):
    """torch's exact GELU with F32 op-math: (x * 0.5) * (1 + erf(x * fl32(1/sqrt 2))), each step rounded to F32
    (so for x below about -4 the result carries the F32 cancellation of 1 + erf, as the official code's does)."""
    t = x * fl32(torch.tensor(math.sqrt(0.5), dtype=torch.float64))
    e = fl32(torch.erf(t.double()))
    return (x * 0.5) * (1.0 + e)


def block(w, c, i, x, cos, sin, acc):
    b = f"vision.blocks.{i}."
    n, D, H = x.size(0), c.dim, c.n_heads
    hd = D // H
    a = rmsnorm(x, w[b + "norm1.weight"], acc)
    qkv = linear(a, w[b + "attn.wqkv.weight"], w[b + "attn.wqkv.bias"], acc)
    q, k, v = (t.reshape(n, H, hd) for t in qkv.split(D, dim=1))
    q, k = rotate(q, cos, sin), rotate(k, cos, sin)
    o = attention(q, k, v, acc)
    x = bf(x + linear(o, w[b + "attn.wo.weight"], w[b + "attn.wo.bias"], acc))
    a = rmsnorm(x, w[b + "norm2.weight"], acc)
    gu = linear(a, w[b + "mlp.w1.weight"], None, acc)
    g, u = gu[:, :c.inter_dim], gu[:, c.inter_dim:]
    m = bf(bf(silu(g)) * u)
    return bf(x + linear(m, w[b + "mlp.w2.weight"], None, acc))


def unshuffle(x, n_h, n_w, r):
    """[n_h*n_w, D] -> [ceil(n_h/r)*ceil(n_w/r), D*r*r]: zero pad, r x r cells, channel-major inside a cell."""
    D = x.size(1)
    gh, gw = -(-n_h // r), -(-n_w // r)
    g = torch.zeros(gh * r, gw * r, D)
    g[:n_h, :n_w] = x.reshape(n_h, n_w, D)
    g = g.reshape(gh, r, gw, r, D).permute(0, 2, 4, 1, 3)      # [gh, gw, D, kh, kw]
    return g.reshape(gh * gw, D * r * r)


def tower(w, c: VisionConfig, patches, n_h, n_w, acc=torch.float64):
    """patches [n_h*n_w, 3, p, p] (BF16 values) -> (states, rows): states = [after patch embed, after block 0, ...,
    after the last block, after vision.norm] ([n, D] each), rows = the aligner output [n_llm, lm_dim]."""
    assert patches.shape[0] == n_h * n_w
    x = linear(patches.reshape(n_h * n_w, -1).float(), w["vision.patch_embed.proj.weight"],
               w["vision.patch_embed.proj.bias"], acc)
    states = [x]
    cos, sin = rope_tables(n_h, n_w, c.dim // c.n_heads, c.rope_theta)
    for i in range(c.n_layers):
        x = block(w, c, i, x, cos, sin, acc)
        states.append(x)
    x = rmsnorm(x, w["vision.norm.weight"], acc)
    states.append(x)
    cells = unshuffle(x, n_h, n_w, c.downsample_ratio)
    h = gelu_erf(linear(cells, w["aligner.w1.weight"], w["aligner.w1.bias"], acc))
    rows = linear(bf(h), w["aligner.w2.weight"], w["aligner.w2.bias"], acc)
    return states, rows
