#!/usr/bin/python3
"""Goldens for the image pre-processing (tests/test_vision.c), from Debian's python3-pil (Pillow 9.4) and
python3-torch: run with /usr/bin/python3 from the repository root; only needed to regenerate them, never in CI.

  tests/golden/vision/resample.json   Image.resize(..., BICUBIC) of synthetic RGB images (tools/vision/synth.py)
                                      over a few hundred size pairs: sha256 of the output pixels (h x w x 3,
                                      row-major), the full pixels in hex for the small ones
  tests/golden/vision/normalize.json  the reference's normalisation of each byte value (torch float32 / 255,
                                      (x - 0.5) / 0.5, to bfloat16), as BF16 bit patterns
  tests/golden/vision/decode/*        small JPEG and PNG files of every kind the decoder handles, and
                                      decode.json: Image.open(f).convert("RGB") size and sha256 of its pixels
"""
import hashlib
import io
import json
import math
import os
import random
import sys

import numpy as np
import PIL
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from synth import synth, write_png  # noqa: E402

OUT = "tests/golden/vision"


def sha(a):
    return hashlib.sha256(np.ascontiguousarray(a, dtype=np.uint8).tobytes()).hexdigest()


def resample_cases():
    rnd = random.Random(20261206)
    cases = [((1, 1), (1, 1)), ((1, 1), (7, 3)), ((1, 1), (546, 546)), ((1, 4000), (5, 21462)),
             ((4000, 1), (34412, 9)), ((1, 4000), (1, 1)), ((4000, 1), (1, 1)), ((4000, 1), (17, 3)),
             ((1, 4000), (3, 17)), ((1, 4000), (2, 8000)), ((4000, 1), (4000, 2)), ((2, 2), (1, 1)),
             ((3, 3), (2, 2)), ((5, 1), (4, 1)), ((1, 5), (1, 4)), ((640, 480), (546, 410)),
             ((700, 500), (70, 50)), ((999, 3), (1, 1)), ((13, 17), (13, 170)), ((300, 200), (300, 199)),
             ((300, 200), (299, 200))]
    while len(cases) < 320:
        sw = int(math.exp(rnd.uniform(0, math.log(900))))
        sh = int(math.exp(rnd.uniform(0, math.log(900))))
        mode = rnd.random()
        if mode < 0.5:  # the same factor on both axes, up or down
            f = math.exp(rnd.uniform(math.log(1 / 60), math.log(6)))
            dw, dh = max(1, round(sw * f)), max(1, round(sh * f))
        else:
            dw = int(math.exp(rnd.uniform(0, math.log(900))))
            dh = int(math.exp(rnd.uniform(0, math.log(900))))
        if sw * sh > 400000 or dw * dh > 400000:
            continue
        cases.append(((sw, sh), (dw, dh)))
    out = []
    for n, ((sw, sh), (dw, dh)) in enumerate(cases):
        kind, seed = n % 4, 1000 + n
        src = Image.fromarray(synth(sw, sh, kind, seed), "RGB")
        dst = np.asarray(src.resize((dw, dh), Image.Resampling.BICUBIC))
        rec = {"src": [sw, sh], "kind": kind, "seed": seed, "dst": [dw, dh], "sha256": sha(dst)}
        if dw * dh <= 48:
            rec["pixels"] = dst.tobytes().hex()
        out.append(rec)
    return out


def normalize_table():
    import torch
    x = torch.from_numpy(np.arange(256, dtype=np.float32)) / 255
    x = ((x - 0.5) / 0.5).to(torch.bfloat16)
    return [int(v) for v in x.view(torch.int16).numpy().astype(np.uint16)]


def decode_files():
    """(file name, bytes) of every decoder case."""
    files = []
    rgb = synth(37, 23, 0, 7).astype(np.int64)
    sm = synth(37, 23, 1, 8).astype(np.int64)
    r = random.Random(5)
    for depth in (1, 2, 4, 8, 16):
        mx = (1 << depth) - 1
        g = (sm[..., :1] * mx) // 255 if depth < 16 else sm[..., :1] * 257 + rgb[..., :1] % 7 - 3
        g = np.clip(g, 0, mx)
        files.append((f"gray{depth}.png", write_png(g, 37, 23, depth, 0)))
    g16 = np.clip(rgb[..., :1] * 3 - 100, 0, 65535)  # small 16-bit values: the clamp at 255 matters
    files.append(("gray16_low.png", write_png(g16, 37, 23, 16, 0)))
    files.append(("gray8_trns.png", write_png(sm[..., :1], 37, 23, 8, 0, trns=[0, 128])))
    for depth in (8, 16):
        mul = 257 if depth == 16 else 1
        noise = rgb % 5 if depth == 16 else 0
        files.append((f"rgb{depth}.png", write_png(np.minimum(rgb * mul + noise, 65535), 37, 23, depth, 2)))
        ga = np.minimum(np.concatenate([sm[..., :1], rgb[..., 1:2]], axis=2) * mul + (rgb[..., :2] % 3 if depth == 16
                                                                                     else 0), 65535)
        files.append((f"gray_alpha{depth}.png", write_png(ga, 37, 23, depth, 4)))
        rgba = np.concatenate([rgb, sm[..., 2:3]], axis=2) * mul
        files.append((f"rgba{depth}.png", write_png(rgba, 37, 23, depth, 6)))
    files.append(("rgb8_trns.png", write_png(rgb, 37, 23, 8, 2, trns=[0, 0, 0, 0, 0, 0])))
    files.append(("rgba8_interlaced.png", write_png(np.concatenate([rgb, sm[..., 2:3]], axis=2), 37, 23, 8, 6,
                                                     interlace=True)))
    files.append(("gray4_interlaced.png", write_png((sm[..., :1] * 15) // 255, 37, 23, 4, 0, interlace=True)))
    files.append(("rgb16_interlaced_1x1.png", write_png(np.array([[[65535, 258, 3]]]), 1, 1, 16, 2, interlace=True)))
    for depth in (1, 2, 4, 8):
        n = 1 << depth
        plte = [r.randrange(256) for _ in range(3 * n)]
        idx = rgb[..., :1] % n
        files.append((f"palette{depth}.png", write_png(idx, 37, 23, depth, 3, plte=plte)))
    plte = [r.randrange(256) for _ in range(3 * 5)]  # 5 entries, indices up to 255: past the palette
    files.append(("palette8_short.png", write_png(rgb[..., :1], 37, 23, 8, 3, plte=plte)))
    files.append(("palette8_trns.png", write_png(rgb[..., :1] % 16, 37, 23, 8, 3,
                                                 plte=[r.randrange(256) for _ in range(48)],
                                                 trns=[r.randrange(256) for _ in range(10)])))
    # JPEG: Pillow's encoder (libjpeg-turbo), several subsamplings, progressive, grayscale, CMYK, EXIF orientation
    big = Image.fromarray(synth(61, 45, 1, 9), "RGB")
    for name, kw in (("rgb420.jpg", {"quality": 90}), ("rgb444.jpg", {"quality": 95, "subsampling": 0}),
                     ("rgb422.jpg", {"quality": 75, "subsampling": 1}),
                     ("progressive.jpg", {"quality": 85, "progressive": True}),
                     ("optimize_q30.jpg", {"quality": 30, "optimize": True})):
        b = io.BytesIO()
        big.save(b, "JPEG", **kw)
        files.append((name, b.getvalue()))
    for name, im in (("gray.jpg", big.convert("L")), ("cmyk.jpg", big.convert("CMYK"))):
        b = io.BytesIO()
        im.save(b, "JPEG", quality=90)
        files.append((name, b.getvalue()))
    ex = Image.Exif()
    ex[0x0112] = 6  # orientation: rotate 90 CW to display; the reference does not apply it
    b = io.BytesIO()
    big.save(b, "JPEG", quality=90, exif=ex.tobytes())
    files.append(("exif_orient6.jpg", b.getvalue()))
    return files


def main():
    if not os.path.isdir("tests/golden"):
        sys.exit("run from the repository root")
    os.makedirs(f"{OUT}/decode", exist_ok=True)
    with open(f"{OUT}/resample.json", "w") as f:
        json.dump({"source": f"Pillow {PIL.__version__} Image.resize BICUBIC; tools/vision/make_goldens.py",
                   "cases": resample_cases()}, f, indent=0)
    with open(f"{OUT}/normalize.json", "w") as f:
        json.dump({"source": "torch float32 x / 255, (x - 0.5) / 0.5, .to(torch.bfloat16): BF16 bits per byte value",
                   "bf16": normalize_table()}, f)
    recs = []
    for name, data in decode_files():
        with open(f"{OUT}/decode/{name}", "wb") as f:
            f.write(data)
        with Image.open(io.BytesIO(data)) as im:
            mode = im.mode
            rgb = np.asarray(im.convert("RGB"))
        recs.append({"file": name, "mode": mode, "width": rgb.shape[1], "height": rgb.shape[0], "sha256": sha(rgb)})
    with open(f"{OUT}/decode.json", "w") as f:
        json.dump({"source": f"Pillow {PIL.__version__} Image.open(f).convert('RGB')", "cases": recs}, f, indent=0)
    print(f"{len(resample_cases())} resample cases, {len(recs)} decode files")


if __name__ == "__main__":
    main()
