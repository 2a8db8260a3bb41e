#!/usr/bin/python3
"""Goldens of the V4.1 vision tower + aligner (tools/reference/vision_v41.py) for tests/test_vision_tower.c:
tests/golden/vision_tower/ (tests/golden/README.md lists the directory).

  config.json        a tiny tower in the HF V4.1 layout (vision_config + text_config.hidden_size, the aligner's
                     output width): 3 blocks, width 128, 2 heads of 64 (V4.1-Flash's head size), MLP 128, patch
                     14, downsample 3, aligner width 64; min_pixels
                     15000 so that the pre-processed images stay small (grids 8 x 11 and 7 x 12: both pad)
  model.safetensors  seeded random weights with the official tensor names (BF16; norm weights F32)
  tower.json         per image: the file, grids, sha256 of the BF16 patch tensor, the .bin name, and per state the
                     reference's own rounding noise (max |diff| of F32- vs F64-accumulated runs, see below)
  softmax_exp.bin    4,016 F32 x, then the 4,016 F32 softmax_exp(x) (the attention's exp, bit for bit)
  <image>.bin        little-endian BF16: the tower states [patch embed, block 0 .. block n-1, final norm], each
                     [n_vit_h * n_vit_w, 128], then the aligner rows [n_llm_h * n_llm_w, lm_dim]

Pixels: the images of tests/golden/vision/decode pre-processed as the official image_processor.py does (resize
plan, Pillow ImageOps.pad with BICUBIC on a (127,127,127) canvas, (v/255 - 0.5)/0.5 in F32, BF16), written here
from docs/vision.md; the C test re-derives them with dsv4_image_preprocess and checks the sha256.
Deterministic (fixed seed, one thread). Run from the repository root:

    /usr/bin/python3 tools/reference/make_vision_goldens.py
"""
import hashlib
import json
import math
import os
import sys

import numpy as np
import torch
from PIL import Image, ImageOps

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vision_v41 as ref  # noqa: E402
from safetensors_io import write_safetensors  # noqa: E402

OUT = "tests/golden/vision_tower"
IMAGES = ["rgb420.jpg", "gray1.png"]
CFG = ref.VisionConfig(n_layers=3, dim=128, n_heads=2, inter_dim=128, patch_size=14, rope_theta=10000.0,
                       downsample_ratio=3, lm_dim=64, max_image_tokens=1024, min_pixels=15000)
SEED = 41


def plan(w, h, c):
    """The resize plan for images below min_pixels or small enough not to hit the token cap (docs/vision.md)."""
    W, H = float(w), float(h)
    if 0 < W * H < c.min_pixels:
        s = math.pow(c.min_pixels / (W * H), 0.5)
        W, H = int(W * s), int(H * s)
    p, r = c.patch_size, c.downsample_ratio
    bw, bh = -(-int(W) // p) * p, -(-int(H) // p) * p
    nh, nw = bh // p, bw // p
    lh, lw = -(-nh // r), -(-nw // r)
    assert lh * (lw + 1) + 2 <= c.max_image_tokens
    return bw, bh, nh, nw, lh, lw


def patches_of(path, c):
    im = Image.open(path).convert("RGB")
    bw, bh, nh, nw, lh, lw = plan(im.width, im.height, c)
    im = ImageOps.pad(im, (bw, bh), color=(127, 127, 127))
    x = torch.from_numpy(np.asarray(im, dtype=np.float32).copy()) / 255
    x = ((x - 0.5) / 0.5).to(torch.bfloat16)
    p = c.patch_size
    x = x.reshape(nh, p, nw, p, 3).permute(0, 2, 4, 1, 3).reshape(nh * nw, 3, p, p)
    return x.float(), nh, nw, lh, lw


def bf16_bytes(t):
    a = t.float().contiguous().numpy().view(np.uint32)
    assert ((a & 0xFFFF) == 0).all()
    return (a >> 16).astype("<u2").tobytes()


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    c = CFG
    w = ref.random_weights(c, SEED)
    shapes = ref.tensor_shapes(c)
    raw = {}
    for name, (shape, dt) in shapes.items():
        t = w[name]
        raw[name] = (dt, shape, bf16_bytes(t) if dt == "BF16" else t.numpy().astype("<f4").tobytes())
    write_safetensors(f"{OUT}/model.safetensors", raw)
    hf = {"model_type": "deepseek_v41", "text_config": {"hidden_size": c.lm_dim},
          "vision_config": c.to_hf_vision(), "image_token_id": 129264}
    with open(f"{OUT}/config.json", "w") as f:
        json.dump(hf, f, indent=1)
        f.write("\n")
    cases = []
    for name in IMAGES:
        x, nh, nw, lh, lw = patches_of(f"tests/golden/vision/decode/{name}", c)
        states, rows = ref.tower(w, c, x, nh, nw, acc=torch.float64)
        s32, r32 = ref.tower(w, c, x, nh, nw, acc=torch.float32)
        noise = [float((a - b).abs().max()) for a, b in zip(s32 + [r32], states + [rows])]
        scale = [float(t.abs().max()) for t in states + [rows]]
        binname = name.replace(".", "_") + ".bin"
        with open(f"{OUT}/{binname}", "wb") as f:
            for t in states + [rows]:
                f.write(bf16_bytes(t))
        cases.append({"file": name, "n_vit_h": nh, "n_vit_w": nw, "n_llm_h": lh, "n_llm_w": lw,
                      "patches_sha256": hashlib.sha256(bf16_bytes(x)).hexdigest(), "bin": binname,
                      "noise_f32_vs_f64": noise, "max_abs": scale})
        print(name, "grid %dx%d -> %dx%d" % (nh, nw, lh, lw), "noise", ["%.3g" % v for v in noise])
    # the softmax exp, bit for bit: x then exp(x), F32, for edge cases and 4,000 random x in [-90, 0]
    g = torch.Generator().manual_seed(SEED)
    xs = torch.cat([torch.tensor([0.0, -0.0, -1e-30, -1e-7, -0.34657359, -0.3465736, -0.5, -1.0, -20.0, -85.99,
                                  -86.0, -86.01, -87.0, -88.0, -100.0, -1e30]),
                    -torch.rand(4000, generator=g) * 90])
    with open(f"{OUT}/softmax_exp.bin", "wb") as f:
        f.write(xs.numpy().astype("<f4").tobytes())
        f.write(ref.softmax_exp(xs).numpy().astype("<f4").tobytes())
    meta = {"source": "tools/reference/make_vision_goldens.py (vision_v41.py, F64 accumulation)",
            "seed": SEED, "states": ["patch_embed"] + ["block %d" % i for i in range(c.n_layers)] + ["norm"],
            "cases": cases}
    with open(f"{OUT}/tower.json", "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
