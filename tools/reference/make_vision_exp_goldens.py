#!/usr/bin/python3
"""Whole-model goldens of a tiny DeepSeek-V4-Flash-Vision-Exp WITH IMAGES (tests/golden/vision_exp): what a C
implementation of docs/vision-exp.md §8 is tested against. Format: tests/golden/vision_exp/README.md.

Model: a tiny V4 (model.py; 3 layers with compress ratios 0, 4, 128, layer 0 hash-routed, window 16 so that image
spans are longer than the window, ε 1e-20 as Vision-Exp) with the Vision-Exp additions (flat vision_* config keys;
ffn.gate.bias_vl F32 [E] on every layer and ffn.gate.bias on the hash layer; image_start / image_pad /
image_newline / image_end BF16 [dim]; a 1-block tower of width 64 from vision_v41.py whose aligner writes the LM
width 128). Two images drawn here: scene.png (40 x 30, padded) and banner.png (200 x 20, wider than 8:1, so the
plan stretches it with a plain resize). Pre-processing with max 64 tokens and min_pixels 20000 (the real
checkpoint: 384 and 147456) gives 3 x 4 and 2 x 10 aligner grids.

The prompt (text ids, two placeholders) is expanded by vision_exp.expand (pads before each START so that it sits
at a position = 3 mod 4; N-layout; tail pads) and evaluated by vision_exp.ExpSession under three call schedules
(one prefill; chunks cut between the pads and their START, right after each span, and through the text; a
prefill through the second span then one-token steps). A fourth, cut inside a span, must be refused.

Goldens are the float64-accumulation reference (tower accumulated in float64 too); tolerance = 4 x the largest
relative deviation of the float32 run (float32 model, float32-accumulated tower) over all schedules, floor 2e-3,
as tools/reference/make_goldens.py. The prompt seed is the first whose float32 runs take the same router / indexer
decisions as the float64 run in every schedule (the smallest decision gap is recorded in vision_exp.json).

usage: make_vision_exp_goldens.py [OUT_DIR]           (default tests/golden/vision_exp)
       make_vision_exp_goldens.py --check [DIR]       regenerate into a temporary directory and compare every file
                                                      with DIR byte for byte
       make_vision_exp_goldens.py --mutations [DIR]   how much each plausible mistake changes the logits, against
                                                      the tolerance
"""
import hashlib
import io
import json
import os
import shutil
import sys
import tempfile

import numpy as np
import torch
from PIL import Image, ImageDraw

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import model as m  # noqa: E402
import make_goldens as mg  # noqa: E402
import vision_exp as vx  # noqa: E402
import vision_v41 as vis  # noqa: E402
from safetensors_io import save_checkpoint, load_checkpoint, read_safetensors, write_safetensors  # noqa: E402

OUT = os.path.join(HERE, "..", "..", "tests", "golden", "vision_exp")
SEED = 77
IMAGE_TOKEN_ID = 250
CONFIG = mg.base_cfg(num_hidden_layers=3, compress_ratios=[0, 4, 128], num_hash_layers=1, o_groups=2,
                     sliding_window=16, index_topk=16, num_nextn_predict_layers=0, rms_norm_eps=1e-20)
VISION = dict(vision_n_layers=1, vision_dim=64, vision_n_heads=1, vision_inter_dim=64, vision_patch_size=14,
              vision_rope_theta=10000.0, vision_downsample_ratio=3, vision_max_n_token=64, vision_min_pixels=20000,
              vision_max_wh_ratio=8)
VCFG = vis.VisionConfig(n_layers=1, dim=64, n_heads=1, inter_dim=64, patch_size=14, rope_theta=10000.0,
                        downsample_ratio=3, lm_dim=CONFIG["hidden_size"], max_image_tokens=64, min_pixels=20000)
PARAMS = vx.Params(patch=14, down=3, max_tokens=64, min_pixels=20000, max_wh_ratio=8)
IMAGES = ["scene.png", "banner.png"]
SENTINELS = ["image_start", "image_pad", "image_newline", "image_end"]   # roles 0, 1, 3, 4
N_BEFORE, N_BETWEEN, N_AFTER = 9, 13, 66
TOL_FACTOR, TOL_FLOOR = 4.0, 2e-3


def make_images():
    a = Image.new("RGB", (40, 30), (200, 230, 250))
    d = ImageDraw.Draw(a)
    d.rectangle([2, 18, 37, 28], fill=(40, 160, 60))
    d.ellipse([24, 2, 36, 13], fill=(250, 200, 20))
    d.polygon([(5, 18), (14, 6), (22, 18)], fill=(150, 75, 40))
    b = Image.new("RGB", (200, 20), (20, 20, 90))
    d = ImageDraw.Draw(b)
    for x in range(0, 200, 25):
        d.rectangle([x, 4, x + 11, 15], fill=(240 - x, 60 + x // 2, 40 + x))
    out = {}
    for name, im in zip(IMAGES, (a, b)):
        f = io.BytesIO()
        im.save(f, format="PNG", optimize=False)
        out[name] = f.getvalue()
    return out


def bf16_bytes(t):
    a = t.float().contiguous().numpy().view(np.uint32)
    assert ((a & 0xFFFF) == 0).all()
    return (a >> 16).astype("<u2").tobytes()


def write_checkpoint(d):
    """The tiny V4 (make_goldens.shaped_init) + the Vision-Exp tensors, one model.safetensors."""
    cfg = m.Config(**CONFIG)
    tm = m.Transformer(cfg)
    mg.shaped_init(tm, SEED)
    save_checkpoint(tm.state_dict(), cfg, d, shards=1)
    path = os.path.join(d, "model.safetensors")
    raw = read_safetensors(path)
    g = torch.Generator().manual_seed(SEED + 5)
    E = cfg.n_experts
    for i in range(cfg.n_layers):
        # bias_vl: a different spread permutation, larger than gate.bias's, so image rows route differently
        bvl = torch.randperm(E, generator=g).to(torch.float32) * 0.3
        raw["layers.%d.ffn.gate.bias_vl" % i] = ("F32", [E], bvl.numpy().astype("<f4").tobytes())
        if i < cfg.n_hash:      # present in the checkpoint, unused (text on hash layers routes by tid2eid)
            b = torch.randperm(E, generator=g).to(torch.float32) * 0.15
            raw["layers.%d.ffn.gate.bias" % i] = ("F32", [E], b.numpy().astype("<f4").tobytes())
    for name in SENTINELS:
        v = torch.randn(cfg.dim, generator=g).to(torch.bfloat16).float()
        raw[name] = ("BF16", [cfg.dim], bf16_bytes(v))
    vw = vis.random_weights(VCFG, SEED)
    for name, (shape, dt) in vis.tensor_shapes(VCFG).items():
        if name.startswith("image_"):
            continue
        t = vw[name]
        raw[name] = (dt, shape, bf16_bytes(t) if dt == "BF16" else t.numpy().astype("<f4").tobytes())
    write_safetensors(path, raw, {"format": "pt"})
    with open(os.path.join(d, "config.json")) as f:
        c = json.load(f)
    c.update(VISION)
    c["image_token_id"] = IMAGE_TOKEN_ID
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(c, f, indent=1)
        f.write("\n")


def load(d, dtype):
    """(model, bias_vl {layer: tensor}, sentinels {role: tensor}, tower weights) from a written directory."""
    cfg = m.Config(**{k: v for k, v in json.load(open(os.path.join(d, "config.json"))).items()
                      if not k.startswith("vision_") and k != "image_token_id"})
    tm = m.Transformer(cfg)
    sd = load_checkpoint(d)
    lm = {k: v for k, v in sd.items() if not (k.startswith("vision.") or k.startswith("aligner.") or
                                              k.startswith("image_") or k.endswith("bias_vl") or
                                              (k.endswith("ffn.gate.bias") and int(k.split(".")[1]) < cfg.n_hash))}
    missing, unexpected = tm.load_state_dict(lm, strict=False)
    missing = [k for k in missing if not k.endswith("freqs")]
    assert not missing and not unexpected, (missing[:5], unexpected[:5])
    tm = tm.to(dtype)
    bias_vl = {i: sd["layers.%d.ffn.gate.bias_vl" % i] for i in range(cfg.n_layers)}
    sent = {vx.START: sd["image_start"], vx.PAD: sd["image_pad"], vx.NEW_LINE: sd["image_newline"],
            vx.END: sd["image_end"]}
    vw = {k: sd[k] for k in vis.tensor_shapes(VCFG) if k in sd}
    return tm, bias_vl, sent, vw


def encode(d, vw, acc):
    """Per image: (patches, plan, aligner rows [n_llm_h * n_llm_w, dim])."""
    out = []
    for name in IMAGES:
        x, pl = vx.load_patches(os.path.join(d, name), PARAMS, VCFG.patch_size)
        _, rows = vis.tower(vw, VCFG, x, pl["n_vit_h"], pl["n_vit_w"], acc=acc)
        assert rows.shape[0] == pl["n_llm_h"] * pl["n_llm_w"]
        out.append((x, pl, rows))
    return out


def text_ids(seed, vocab):
    g = torch.Generator().manual_seed(seed)
    n = N_BEFORE + N_BETWEEN + N_AFTER
    t = [x for x in torch.randint(2, vocab, (3 * n,), generator=g).tolist() if x != IMAGE_TOKEN_ID][:n]
    return t[:N_BEFORE] + [IMAGE_TOKEN_ID] + t[N_BEFORE:N_BEFORE + N_BETWEEN] + [IMAGE_TOKEN_ID] + \
        t[N_BEFORE + N_BETWEEN:]


def schedules(P):
    N = len(P.ids)
    (f1, _), (f2, _) = P.spans
    (s1, e1), (s2, e2) = P.spans_se
    cuts = sorted({f1 + 1, s1, e1 + 1, e1 + 4, f2, s2, e2 + 1, e2 + 2, e2 + 3, e2 + 20, 130, N})
    calls, p = [], 0
    for c in cuts:
        calls.append(c - p)
        p = c
    return {"prefill": [N], "chunks": calls, "decode": [e2 + 1] + [1] * (N - e2 - 1)}


def run(tm, P, bias_vl, calls, dtype, record=False):
    s = vx.ExpSession(tm, P, bias_vl, PARAMS.max_tokens, dtype=dtype, record=record)
    rows, p = [], 0
    for n in calls:
        rows.append(s.eval(p, n))
        p += n
    return rows, s


def build(d, seed=None):
    """Everything computed from a written directory: dict with prompts, per-schedule rows (f64, f32), info."""
    torch.set_num_threads(1)
    t64, bvl, sent, vw = load(d, torch.float64)
    t32, _, _, _ = load(d, torch.float32)
    cfg = t64.cfg
    im64 = encode(d, vw, torch.float64)
    im32 = encode(d, vw, torch.float32)
    grids = [(pl["n_llm_h"], pl["n_llm_w"]) for _, pl, _ in im64]
    seeds = [seed] if seed is not None else range(300, 340)
    for sd in seeds:
        ids = text_ids(sd, cfg.vocab_size)
        P64 = vx.Prompt(ids, [r for _, _, r in im64], grids, IMAGE_TOKEN_ID, cfg.vocab_size, sent)
        P32 = vx.Prompt(ids, [r for _, _, r in im64], grids, IMAGE_TOKEN_ID, cfg.vocab_size, sent)
        sch = schedules(P64)
        res, ok, worst, gap = {}, True, 0.0, float("inf")
        ref_choice = None
        for name, calls in sch.items():
            r64, s64 = run(t64, P64, bvl, calls, torch.float64, record=True)
            r32, s32 = run(t32, P32, bvl, calls, torch.float32, record=True)
            c64, c32 = mg.choices(s64.margins), mg.choices(s32.margins)
            if c64 != c32 or (ref_choice is not None and c64 != ref_choice):
                ok = False
                print("  seed %d/%s: min gap/threshold %.2f, f32 flips %d" %
                      (sd, name, mg.min_gap(s64.margins), sum(1 for k in c64 if c32.get(k) != c64[k])))
                break
            ref_choice = ref_choice or c64
            dev = max(((a.double() - b.double()).abs().max() / b.double().abs().max()).item()
                      for a, b in zip(r32, r64))
            worst = max(worst, dev)
            gap = min(gap, min(x[3] for x in s64.margins))
            res[name] = (calls, r64, r32, len(c64))
        if ok:
            return dict(seed=sd, ids=ids, P=P64, images=im64, images32=im32, res=res, noise=worst, t64=t64, bvl=bvl, sent=sent,
                        decisions=len(ref_choice), min_gap=gap)
    raise RuntimeError("no prompt seed with clear decisions")


def generate(d, seed=None):
    os.makedirs(d, exist_ok=True)
    write_checkpoint(d)
    for name, data in make_images().items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    b = build(d, seed)
    P = b["P"]
    tol = max(TOL_FACTOR * b["noise"], TOL_FLOOR)
    left, right = vx.visible(P.ids, P.vocab, PARAMS.max_tokens)
    imgs = []
    for name, (x, pl, rows), (_, _, rows32) in zip(IMAGES, b["images"], b["images32"]):
        with open(os.path.join(d, name + ".rows.bf16"), "wb") as f:
            f.write(bf16_bytes(rows))
        imgs.append(dict(file=name, plan=pl, patches_sha256=hashlib.sha256(bf16_bytes(x)).hexdigest(),
                         rows=name + ".rows.bf16", rows_shape=list(rows.shape),
                         rows_f32_tower=dict(values_differing=int((rows32 != rows).sum()),
                                             max_rel=((rows32 - rows).abs().max() / rows.abs().max()).item())))
    scheds = []
    for name, (calls, r64, _, nd) in b["res"].items():
        torch.stack([r[-1] for r in r64]).numpy().astype("<f4").tofile(os.path.join(d, name + ".f32"))
        scheds.append(dict(name=name, calls=calls, logits=name + ".f32", rows="last position of each call"))
    b["res"]["prefill"][1][0].numpy().astype("<f4").tofile(os.path.join(d, "prefill_all.f32"))
    (s1, e1), (s2, e2) = P.spans_se
    try:                                  # a call that cuts a span is refused
        run(b["t64"], P, b["bvl"], [s1 + 3, len(P.ids) - s1 - 3], torch.float64)
        raise AssertionError("a call cutting a span was accepted")
    except ValueError:
        pass
    last = [torch.stack([r[-1] for r in res[1]]).double() for res in b["res"].values()]
    xs = max(((x[-1] - last[0][-1]).abs().max() / last[0][-1].abs().max()).item() for x in last)
    print("  cross-schedule rel dev of the last position (f64): %.2e" % xs)
    gold = dict(
        image_token_id=IMAGE_TOKEN_ID, vocab_size=P.vocab, prompt_seed=b["seed"], text_ids=b["ids"],
        ids=P.ids, roles=P.roles, role_names={"-1": "text", "0": "IMAGE_START", "1": "IMAGE_PAD", "2": "IMAGE",
                                              "3": "IMAGE_NEW_LINE", "4": "IMAGE_END"},
        spans=[dict(first=f, length=n, start=s, end=e) for (f, n), (s, e) in zip(P.spans, P.spans_se)],
        visible_left=left, visible_right=right, images=imgs, schedules=scheds,
        prefill_all=dict(logits="prefill_all.f32", rows=len(P.ids)),
        refused=dict(calls=[s1 + 3, len(P.ids) - s1 - 3],
                     why="the first call ends inside the span %d..%d" % (s1, e1)),
        decisions=dict(count=b["decisions"], smallest_relative_gap=b["min_gap"]),
        tolerance=dict(abs=0.0, rel=tol, why=(
            "float64-accumulation reference (tower too); the float32 run (float32 model, float32-accumulated tower) "
            "deviates by at most %.2e x max|logits| over every call of every schedule; tolerance = %.0fx that, floor "
            "%.0e (as make_goldens.py). The float32 runs take the same router and indexer top-k decisions as the "
            "float64 run in every schedule; the image positions are fixed, so unlike make_goldens.py the decision "
            "gaps cannot all be forced above MIN_GAP: the smallest relative gap is %.1e (see 'decisions'); an "
            "implementation that flips one of those near-ties differs by more than the tolerance at and after "
            "that position." % (b["noise"], TOL_FACTOR, TOL_FLOOR, b["min_gap"]))))
    with open(os.path.join(d, "vision_exp.json"), "w") as f:
        json.dump(gold, f, indent=1)
        f.write("\n")
    print("  %d positions, spans %s, seed %d, %d decisions, noise %.2e, tol %.2e" %
          (len(P.ids), P.spans_se, b["seed"], b["decisions"], b["noise"], tol))
    return b


def check(d):
    with open(os.path.join(d, "vision_exp.json")) as f:
        seed = json.load(f)["prompt_seed"]
    tmp = tempfile.mkdtemp(prefix="vision_exp_check_")
    try:
        generate(tmp, seed)
        bad = 0
        for name in sorted(os.listdir(d)):
            if name == "README.md":
                continue
            a = open(os.path.join(d, name), "rb").read()
            b = open(os.path.join(tmp, name), "rb").read() if os.path.exists(os.path.join(tmp, name)) else None
            same = a == b
            bad += not same
            print("  %-22s %s" % (name, "identical" if same else "DIFFERS"))
        extra = set(os.listdir(tmp)) - set(os.listdir(d))
        for name in sorted(extra):
            print("  %-22s not in %s" % (name, d))
        bad += len(extra)
        print("check: %s" % ("bit for bit" if not bad else "%d files differ" % bad))
        return bad == 0
    finally:
        shutil.rmtree(tmp)


def mutations(d):
    """Relative change of the prefill's all-position logits when one rule is broken, against the tolerance."""
    g = json.load(open(os.path.join(d, "vision_exp.json")))
    tol = g["tolerance"]["rel"]
    b = build(d, g["prompt_seed"])
    P, tm, bvl = b["P"], b["t64"], b["bvl"]
    N = len(P.ids)
    ref = b["res"]["prefill"][1][0].double()

    def dev(rows):
        return ((rows.double() - ref).abs().max() / ref.abs().max()).item()

    out = {}

    class NoVL(vx.ExpSession):           # image rows routed like text (bias, tid2eid[0] on hash layers)
        def _route(self, moe, s, tok):
            return super()._route(moe, s, torch.where(tok >= P.vocab, torch.zeros_like(tok), tok))
    out["bias_vl ignored (image positions routed as text)"] = NoVL

    class NoGuard(vx.ExpSession):        # hash layers keep tid2eid for image positions
        def _route(self, moe, s, tok):
            ids = super()._route(moe, s, tok)
            if moe.gate.hash:
                ids = moe.gate.tid2eid[torch.where(tok >= P.vocab, torch.zeros_like(tok), tok)]
            return ids
    out["hash layers without the image guard"] = NoGuard

    class PadAsText(vx.ExpSession):      # IMAGE_PAD routed as text
        def _route(self, moe, s, tok):
            return super()._route(moe, s, torch.where(tok == P.vocab + vx.PAD, torch.zeros_like(tok), tok))
    out["IMAGE_PAD routed as text"] = PadAsText

    class Causal(vx.ExpSession):         # no span visibility
        def _window_mask(self, sp, tq):
            return (sp[None, :] <= tq) & (sp[None, :] > tq - self.W)
    out["causal window in spans (V4.1 rule)"] = Causal

    class NoBack(vx.ExpSession):         # future keys only, no reach back to START
        def _window_mask(self, sp, tq):
            q = tq[:, 0].tolist()
            lo = torch.tensor([max(p - (self.W - 1), 0) for p in q])
            hi = torch.tensor([p + self.right[p] for p in q])
            return (sp[None, :] >= lo[:, None]) & (sp[None, :] <= hi[:, None])
    out["span rows do not reach back to START"] = NoBack

    for name, cls in out.items():
        s = cls(tm, P, bvl, PARAMS.max_tokens)
        r = s.eval(0, N)
        print("  %-50s rel %.2e  (%.0fx tol)" % (name, dev(r), dev(r) / tol))
    # raster order of the aligner rows instead of the N-layout walk
    P2 = vx.Prompt(b["ids"], [r for _, _, r in b["images"]], [(pl["n_llm_h"], pl["n_llm_w"]) for _, pl, _ in
                                                              b["images"]], IMAGE_TOKEN_ID, P.vocab, b["sent"])
    for (first, n), (_, _, rows) in zip(P2.spans, b["images"]):
        k = 0
        for p in range(first, first + n):
            if P2.roles[p] == vx.IMAGE:
                P2.rows[p] = rows[k]
                k += 1
    r = vx.ExpSession(tm, P2, bvl, PARAMS.max_tokens).eval(0, N)
    print("  %-50s rel %.2e  (%.0fx tol)" % ("aligner rows in raster order", dev(r), dev(r) / tol))
    # pad learned vector swapped for newline's
    P3 = vx.Prompt(b["ids"], [r for _, _, r in b["images"]], [(pl["n_llm_h"], pl["n_llm_w"]) for _, pl, _ in
                                                              b["images"]], IMAGE_TOKEN_ID, P.vocab,
                   {**b["sent"], vx.PAD: b["sent"][vx.NEW_LINE]})
    r = vx.ExpSession(tm, P3, bvl, PARAMS.max_tokens).eval(0, N)
    print("  %-50s rel %.2e  (%.0fx tol)" % ("image_pad replaced by image_newline", dev(r), dev(r) / tol))


def main():
    a = sys.argv[1:]
    if a and a[0] == "--check":
        sys.exit(0 if check(a[1] if len(a) > 1 else OUT) else 1)
    if a and a[0] == "--mutations":
        mutations(a[1] if len(a) > 1 else OUT)
        return
    generate(a[0] if a else OUT)


if __name__ == "__main__":
    main()
