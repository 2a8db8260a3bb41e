#!/usr/bin/python3
"""Goldens for the whole pre-processing from DeepSeek's official V4.1 `inference/image_processor.py`, run on CPU
(Debian python3-pil 9.4, python3-torch, numpy): tests/golden/vision/preprocess.json, checked by
tests/test_vision.c (test_preprocess). The official file is not part of this repository; get it from the
DeepSeek-V4.1-Flash Hugging Face repository (revision dba1be0a40aa45a94ad051997016db3960a90277, inference/) or
its public vendored copy (tenstorrent/tt-metal, models/demos/deepseek_v3_d_p/reference/deepseek_v41/), then

    /usr/bin/python3 tools/vision/check_official.py /path/to/image_processor.py

from the repository root. Each case calls the official `load_image({"data": bytes}, args)` with the V4.1-Flash
vision settings and records the grid, the token count and the sha256 of the BF16 patch tensor's bytes
(little-endian). Inputs: synthetic images (tools/vision/synth.py, passed as PNG bytes: lossless, so the C test
builds the same pixels directly) of sizes from 1x1 to 2000x1500 and extreme aspect ratios, and every file of
tests/golden/vision/decode (all JPEG and PNG kinds).
"""
import hashlib
import importlib.util
import io
import json
import os
import random
import sys
from types import SimpleNamespace

import numpy as np
import PIL
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from synth import synth  # noqa: E402

GOLD = "tests/golden/vision"


def main():
    if len(sys.argv) != 2 or not os.path.isdir(GOLD):
        sys.exit(__doc__)
    spec = importlib.util.spec_from_file_location("official_image_processor", sys.argv[1])
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)
    args = SimpleNamespace(vision_patch_size=14, vision_downsample_ratio=3, vision_max_n_token=1024,
                           vision_min_pixels=295936, vision_max_wh_ratio=None)
    sizes = [(1, 1), (1, 4000), (4000, 1), (544, 544), (545, 543), (546, 546), (2000, 1500), (1302, 1302),
             (1316, 1316), (100, 3000), (3000, 100), (640, 480), (17, 900), (33, 33), (1000, 1000), (1, 2),
             (300, 7), (7, 300), (2, 1), (1200, 1), (1, 1200), (100000, 1)]
    rnd = random.Random(11)
    while len(sizes) < 48:
        w, h = int(10 ** rnd.uniform(0, 3.3)), int(10 ** rnd.uniform(0, 3.3))
        if w * h <= 2_000_000:
            sizes.append((w, h))
    cases = []
    inputs = []
    for n, (w, h) in enumerate(sizes):
        kind, seed = n % 4, 500 + n
        b = io.BytesIO()
        Image.fromarray(synth(w, h, kind, seed), "RGB").save(b, "PNG")
        inputs.append(({"name": f"synth {w}x{h}", "synth": [w, h, kind, seed]}, b.getvalue()))
    for f in sorted(os.listdir(f"{GOLD}/decode")):
        with open(f"{GOLD}/decode/{f}", "rb") as fh:
            inputs.append(({"name": f, "file": f"decode/{f}"}, fh.read()))
    for rec, data in inputs:
        try:
            patches, n_vit_h, n_vit_w, n_llm_h, n_llm_w = ref.load_image({"data": data}, args)
        except Exception as e:  # noqa: BLE001 — the reference's own failure is part of the golden
            rec["error"] = f"{type(e).__name__}: {e}"
            cases.append(rec)
            print(rec["name"], rec["error"])
            continue
        assert patches.dtype == torch.bfloat16 and patches.shape == (n_vit_h * n_vit_w, 3, 14, 14)
        raw = patches.contiguous().view(torch.int16).numpy().astype("<i2").tobytes()
        rec["grid"] = [n_vit_h, n_vit_w, n_llm_h, n_llm_w]
        rec["n_tokens"] = ref.num_image_tokens(n_llm_h, n_llm_w)
        rec["sha256"] = hashlib.sha256(raw).hexdigest()
        cases.append(rec)
    with open(f"{GOLD}/preprocess.json", "w") as f:
        json.dump({"source": f"official image_processor.py load_image (V4.1-Flash dba1be0a), Pillow {PIL.__version__},"
                   f" torch {torch.__version__}, numpy {np.__version__}; tools/vision/check_official.py",
                   "cases": cases}, f, indent=0)
    print(f"{len(cases)} cases")


if __name__ == "__main__":
    main()
