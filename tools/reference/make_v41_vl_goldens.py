#!/usr/bin/python3
"""Whole-model goldens of a tiny DeepSeek-V4.1 WITH IMAGES (tests/golden/v41/tiny-vl): what the C side of issue 11
item 3 (include/dsv4_vision.h "images in the language model": dsv4_image_encode, dsv4_prompt_build,
dsv4_eval_prompt) is tested against. The format is described in tests/golden/v41/tiny-vl/README.md.

Model: the tiny V4.1 of make_v41_goldens.py (same CONFIG, seed, tensor layout) with a vision tower:
  - config.json: that nested HF config plus vision_config (2 blocks, width 128, 2 heads of 64, MLP 128, patch 14,
    downsample 3, min_pixels 15000 so that the two small images give 3 x 4 and 5 x 2 aligner grids) and
    image_token_id 93 (inside the 96-id vocabulary);
  - model.safetensors: the tiny V4.1 tensors (official names) + ffn.gate.bias_vl (F32 [E], every layer, DSpark
    stages included; drawn at 5x the scale of gate.bias so that image positions route differently) + image_start,
    image_newline, image_end (BF16 [64]) + the tower and aligner (vision_v41.tensor_shapes names, BF16, norm
    weights F32).
What the reference computes for an image position (model_v41.py, the official model.py's Transformer.forward):
its embedding is overwritten (IMAGE: the aligner rows in reading order; START / NEW_LINE / END: the learned
vectors), its MoE selects experts with scores + bias_vl (weights from the unbiased scores), its compressed id is
DEAD for the Engram hash (the latching lookback: an n-gram of a later text position stops at the span; the image
positions' own hashes are all-pad) and its Engram gate is 0 (the stream passes through unchanged); attention is
causal as for text. DSpark drafts are text.

Goldens: the prompt (15 text ids and two placeholders) expanded to 15 + 17 + 17 = 49 positions, and the
float64 reference's logits of every position under four call schedules (one prefill; chunks split inside both
spans and between; a prefill through the second image then one-token decode steps; one token per call through
everything). Tolerances from the float32 mode (bit-identical to DeepSeek's code on CPU) and the float32-accumulated
tower: see golden.json "tolerance".

usage: make_v41_vl_goldens.py [OUT_DIR]        (default tests/golden/v41/tiny-vl)
       make_v41_vl_goldens.py --check [DIR]    decode DIR's config.json + model.safetensors + image files again,
                                               recompute the patches, the aligner rows (bit for bit against the
                                               stored .rows.bf16) and every schedule's logits (bit for bit)
       make_v41_vl_goldens.py --compare DUMP [DIR]  logits of the C side (DUMP/<schedule>.f32, F32 [49, 96]) against
                                               the float32-mode and float64 goldens: max relative difference,
                                               positions bit-identical, the first position (and role) over tolerance
       make_v41_vl_goldens.py --mutations [DIR]  how much each plausible mistake of an implementation changes the
                                               logits, against the tolerance (printed; recorded in the README)
"""
import hashlib
import io
import json
import os
import sys

import numpy as np
import torch
from PIL import Image, ImageDraw

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model_v41 as m  # noqa: E402
import make_v41_goldens as mg  # noqa: E402
import make_vision_goldens as mvg  # noqa: E402
import numerics as nm  # noqa: E402
import vision_v41 as vis  # noqa: E402
from safetensors_io import write_safetensors, read_safetensors  # noqa: E402

OUT = "tests/golden/v41/tiny-vl"
SEED = mg.SEED
IMAGE_TOKEN_ID = 93
CONFIG = dict(mg.CONFIG, vision_enabled=True, image_token_id=IMAGE_TOKEN_ID)
VCFG = vis.VisionConfig(n_layers=2, dim=128, n_heads=2, inter_dim=128, patch_size=14, rope_theta=10000.0,
                        downsample_ratio=3, lm_dim=64, max_image_tokens=1024, min_pixels=15000)
IMAGES = ["shapes.png", "stripes.jpg"]
REL_F32MODE = 1e-5
# the prompt seed: of seeds 241-270, the first whose float32-mode prefill has no BF16 rounding flip against the
# float64 golden (most seeds flip one value at block 0 that this tiny random model amplifies to 5e-2 - 2e-1 x max,
# which would make the float64 tolerance useless against mistakes)
PROMPT_SEED = 260
# text ids with the two placeholders (P): 4 text, image 1, 5 text, image 2, 6 text after
N_BEFORE, N_BETWEEN, N_AFTER = 4, 5, 6


def make_images():
    """Two small synthetic pictures (bytes): a 40 x 30 RGB PNG of coloured shapes and a 24 x 52 JPEG (quality 90,
    4:2:0) of stripes and a disc. Below min_pixels, so the plan scales them up (patch grids 8 x 11 -> 3 x 4 and
    13 x 6 -> 5 x 2); both need padding."""
    a = Image.new("RGB", (40, 30), (30, 60, 200))
    d = ImageDraw.Draw(a)
    d.rectangle([3, 4, 17, 20], fill=(240, 40, 30))
    d.ellipse([20, 8, 37, 27], fill=(250, 220, 40))
    d.line([0, 29, 39, 0], fill=(20, 200, 60), width=2)
    b = Image.new("RGB", (24, 52), (250, 250, 245))
    d = ImageDraw.Draw(b)
    for y in range(0, 52, 8):
        d.rectangle([0, y, 23, y + 3], fill=(20 + 4 * y, 120, 200 - 3 * y))
    d.ellipse([4, 18, 19, 33], fill=(10, 10, 10))
    out = {}
    f = io.BytesIO()
    a.save(f, format="PNG", optimize=False)
    out[IMAGES[0]] = f.getvalue()
    f = io.BytesIO()
    b.save(f, format="JPEG", quality=90, subsampling=2)
    out[IMAGES[1]] = f.getvalue()
    return out


def vision_raw(w):
    raw = {}
    for name, (shape, dt) in vis.tensor_shapes(VCFG).items():
        if name.startswith("image_"):
            continue        # the span vectors are the language model's (model_v41 weight_specs)
        t = w[name]
        raw[name] = (dt, shape, mvg.bf16_bytes(t) if dt == "BF16" else t.numpy().astype("<f4").tobytes())
    return raw


def lm_weights(cfg):
    """(stored, ref) of the tiny V4.1 (make_v41_goldens.checkpoint_weights) with bias_vl redrawn at 5x the scale of
    gate.bias (a separate seeded stream, so the text tensors are those of tests/golden/v41/tiny)."""
    stored, ref = mg.checkpoint_weights(cfg, SEED)
    g = torch.Generator().manual_seed(SEED + 7)
    for name in sorted(n for n in stored if n.endswith("gate.bias_vl")):
        q = m.quant_weight(0.5 * torch.randn(stored[name].w.shape, generator=g, dtype=torch.float64), "f32")
        stored[name] = ref[name] = q
    return stored, ref


def hf_config(cfg):
    c = mg.hf_config(cfg)
    c["image_token_id"] = IMAGE_TOKEN_ID
    v = dict(model_type="deepseek_v41_vision", **VCFG.to_hf_vision())
    c["vision_config"] = v
    return c


def prompt_ids(cfg):
    g = torch.Generator().manual_seed(PROMPT_SEED)
    n = N_BEFORE + N_BETWEEN + N_AFTER
    t = [x for x in torch.randint(3, cfg.vocab_size, (3 * n,), generator=g).tolist() if x != IMAGE_TOKEN_ID][:n]
    return t[:N_BEFORE] + [IMAGE_TOKEN_ID] + t[N_BEFORE:N_BEFORE + N_BETWEEN] + [IMAGE_TOKEN_ID] + \
        t[N_BEFORE + N_BETWEEN:]


def encode(dirpath, vw):
    """Per image: (patches, n_vit_h, n_vit_w, n_llm_h, n_llm_w, rows F64-acc, rows F32-acc)."""
    out = []
    for name in IMAGES:
        x, nh, nw, lh, lw = mvg.patches_of(os.path.join(dirpath, name), VCFG)
        _, r64 = vis.tower(vw, VCFG, x, nh, nw, acc=torch.float64)
        _, r32 = vis.tower(vw, VCFG, x, nh, nw, acc=torch.float32)
        out.append((x, nh, nw, lh, lw, r64, r32))
    return out


def schedules(prompt):
    """name -> calls (lengths summing to the prompt length)."""
    N = len(prompt.ids)
    (s1, n1, _, w1), (s2, n2, _, _) = prompt.spans
    end2 = s2 + n2
    cuts = sorted({3, s1 + 1, s1 + 3 + w1, s1 + n1 - 1, s1 + n1, s1 + n1 + 2, s2 + 5, s2 + 6, end2 - 1, end2 + 2, N})
    calls, p = [], 0
    for c in cuts:
        calls.append(c - p)
        p = c
    return {"prefill": [N], "chunks": calls, "decode": [end2 + 1] + [1] * (N - end2 - 1), "stepwise": [1] * N}


def run(cfg, W, prompt, calls, dtype, session_cls=m.Session):
    s = session_cls(cfg, W, dtype=dtype)
    outs, p = [], 0
    for n in calls:
        outs.append(s.eval_prompt(prompt, p, n, all_logits=True))
        p += n
    return torch.cat(outs), {(L, P): pk for (L, P, pk) in s.record}


def run_drafts(cfg, W, prompt, calls, dtype):
    """The DSpark draft (greedy, the golden's argmax fed) after every one-token call at position >= 1: its window
    reads the target-layer features of the image positions before it. -> list of (position, token, logits [B, V],
    ids, confidence [B])."""
    s = m.Session(cfg, W, dtype=dtype)
    out, p = [], 0
    for n in calls:
        lg = s.eval_prompt(prompt, p, n, all_logits=True)
        p += n
        if n == 1 and p >= 2:
            tok = int(torch.argmax(lg[-1]))
            dl, ids, conf = s.dspark(tok)
            out.append((p - 1, tok, dl, ids, conf))
    return out


def bf16_rows_bytes(t):
    return mg.bf16_bytes(t.double())


def describe(prompt, imgs, ids):
    per = []
    for k, ((start, n, lh, lw), im) in enumerate(zip(prompt.spans, imgs)):
        x, nh, nw = im[0], im[1], im[2]
        pos = list(range(start, start + n))
        per.append(dict(file=IMAGES[k], width=nw * VCFG.patch_size, height=nh * VCFG.patch_size, n_vit_h=nh,
                        n_vit_w=nw, n_llm_h=lh, n_llm_w=lw, n_tokens=n, span_start=start,
                        positions=dict(start=start, image=[p for p in pos if prompt.roles[p] == m.IMAGE],
                                       new_line=[p for p in pos if prompt.roles[p] == m.IMAGE_NEW_LINE],
                                       end=start + n - 1),
                        patches_sha256=hashlib.sha256(mvg.bf16_bytes(x)).hexdigest(),
                        rows=IMAGES[k] + ".rows.bf16", rows_shape=[lh * lw, VCFG.lm_dim]))
    return per


def generate(out_dir):
    torch.set_num_threads(1)
    os.makedirs(out_dir, exist_ok=True)
    cfg = m.Config(**CONFIG)
    stored, W = lm_weights(cfg)
    vw = vis.random_weights(VCFG, SEED)
    raw = mg.raw_tensors(cfg, stored)
    raw.update(vision_raw(vw))
    write_safetensors(os.path.join(out_dir, "model.safetensors"), raw, {"format": "pt"})
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(hf_config(cfg), f, indent=1)
        f.write("\n")
    for name, data in make_images().items():
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(data)
    imgs = encode(out_dir, vw)
    for name, im in zip(IMAGES, imgs):
        with open(os.path.join(out_dir, name + ".rows.bf16"), "wb") as f:
            f.write(bf16_rows_bytes(im[5]))
    ids = prompt_ids(cfg)
    prompt = m.VLPrompt(ids, IMAGE_TOKEN_ID, [(im[5], im[3], im[4]) for im in imgs])
    prompt32 = m.VLPrompt(ids, IMAGE_TOKEN_ID, [(im[6], im[3], im[4]) for im in imgs])
    rows_noise = [dict(max_abs=float((im[6] - im[5]).abs().max()), values_differing=int((im[6] != im[5]).sum()),
                       max_abs_value=float(im[5].abs().max())) for im in imgs]
    scheds, noise, res = [], {}, {}
    for name, calls in schedules(prompt).items():
        assert sum(calls) == len(prompt.ids)
        lg, sel = run(cfg, W, prompt, calls, torch.float64)
        lg32, sel32 = run(cfg, W, prompt, calls, torch.float32)
        lge, sele = run(cfg, W, prompt32, calls, torch.float32)
        scale = float(lg.abs().max())
        res[name] = lg
        noise[name] = dict(
            max_rel=float((lg32.double() - lg).abs().max() / scale),
            selections_differing=sum(1 for k in sel if sel[k] != sel32.get(k)),
            end_to_end_max_rel=float((lge.double() - lg).abs().max() / scale),
            end_to_end_selections_differing=sum(1 for k in sel if sel[k] != sele.get(k)))
        fn, fn32 = f"{name}.f32", f"{name}.f32mode.f32"
        with open(os.path.join(out_dir, fn), "wb") as f:
            f.write(mg.f32_bytes(lg))
        with open(os.path.join(out_dir, fn32), "wb") as f:
            f.write(mg.f32_bytes(lg32))
        ent = dict(name=name, calls=calls, logits=fn, logits_float32_mode=fn32,
                   selections=[[L, P, sel[(L, P)]] for (L, P) in sorted(sel)])
        if name == "decode":
            d64, d32 = run_drafts(cfg, W, prompt, calls, torch.float64), run_drafts(cfg, W, prompt, calls, torch.float32)
            with open(os.path.join(out_dir, "dspark.f32"), "wb") as f:
                f.write(b"".join(mg.f32_bytes(d[2]) for d in d64))
            ent["dspark"] = dict(file="dspark.f32", shape=[len(d64), cfg.dspark_block_size, cfg.vocab_size],
                                 drafts=[dict(position=d[0], token=d[1], ids=d[3],
                                              confidence=[float(v) for v in d[4]]) for d in d64])
            noise[name]["dspark_max_rel"] = max(float((a[2] - b[2].double()).abs().max() / a[2].abs().max())
                                                for a, b in zip(d64, d32))
            noise[name]["dspark_ids_differing"] = sum(1 for a, b in zip(d64, d32) if a[3] != b[3])
            noise[name]["dspark_confidence_max_abs"] = max(float((a[4] - b[4].double()).abs().max())
                                                           for a, b in zip(d64, d32))
        scheds.append(ent)
        print(f"{name}: {len(calls)} calls {calls}; noise {noise[name]}")
    between = {f"{a}-{b}": float((res[a] - res[b]).abs().max() / res[a].abs().max())
               for a in res for b in res if a < b}
    worst = max(v["max_rel"] for v in noise.values())
    worst_e = max(v["end_to_end_max_rel"] for v in noise.values())
    rel = max(4 * worst, 1e-3)
    rel_e = max(4 * worst_e, rel)
    dn = noise["decode"]
    drel, dconf = max(4 * dn["dspark_max_rel"], 1e-3), max(4 * dn["dspark_confidence_max_abs"], 1e-3)
    meta = dict(
        format="dsv4 v41 tiny-vl golden v1 (README.md next to this file)", seed=SEED,
        reference_config=cfg.to_dict(), vision_reference_config=VCFG.__dict__, vocab_size=cfg.vocab_size,
        image_token_id=IMAGE_TOKEN_ID, roles=dict(TEXT=m.TEXT, IMAGE_START=m.IMAGE_START, IMAGE=m.IMAGE,
                                                  IMAGE_NEW_LINE=m.IMAGE_NEW_LINE, IMAGE_END=m.IMAGE_END),
        ids=ids, images=describe(prompt, imgs, ids), expanded_ids=prompt.ids, expanded_roles=prompt.roles,
        n_positions=len(prompt.ids), schedules=scheds,
        rows_noise=dict(values=rows_noise, tolerance_abs=4 * max(v["max_abs"] for v in rows_noise), why=(
            "aligner rows of the float32-accumulated tower minus the stored float64-accumulated ones (the tower's own "
            "rounding noise, as tests/golden/vision_tower); a C tower's rows compare as max |c - r| <= tolerance_abs "
            "(4 x the larger max_abs); the official tower run on CPU is within the same noise (tools/reference/README.md)")),
        tolerance=dict(
            rel=rel, rel_end_to_end=rel_e, rel_float32_mode=REL_F32MODE, float32_mode=noise, why_float32_mode=(
                "<schedule>.f32mode.f32 holds the reference's float32 mode (the official F32 order; bit-identical to "
                "DeepSeek's model.py run on CPU, tools/reference/README.md) fed the stored rows. The C forward of "
                "V4.1 equals that mode on the text goldens to 1.3e-7 x max (F32 summation order of the head only, no "
                "BF16 flip), so rel_float32_mode = 1e-5 is the tight test: one BF16 rounding flip anywhere (or any "
                "mistake) moves the logits by 1e-3 or more. If a C change legitimately flips a BF16 rounding, "
                "the float64 golden with 'rel' is the fallback (this tiny random model amplifies single flips a lot: "
                "float32_mode.max_rel)."), why=(
                "logits compare as max|c - r| <= tol * max|r| per schedule (r = the stored float64 reference). 'rel' "
                "applies when the stored aligner rows (<image>.rows.bf16) are the IMAGE embeddings: the float32 mode "
                "(official F32 order, bit-identical to DeepSeek's code on CPU stand-ins) deviates from the golden by "
                f"at most {worst:.3g} x max|r| (float32_mode.max_rel: BF16 rounding flips of F32 vs float64 "
                "arithmetic amplified by FP8 block scales); rel = 4x that (floor 1e-3). 'rel_end_to_end' applies "
                "when the rows come from the image files through the C tower: the float32 mode fed the "
                "float32-accumulated tower's rows deviates by at most "
                f"{worst_e:.3g} x max|r| (end_to_end_max_rel); 4x that. Index selections should match except where "
                "float32_mode shows rounding moves a near-tie.")),
        dspark_tolerance=dict(rel=drel, confidence_abs=dconf, why=(
            "decode schedule: after each one-token call the DSpark draft (temperature 0, the golden's argmax fed), "
            "whose window reads the target-layer features of the image positions just before; 4 x the float32 "
            "mode's deviation (float32_mode.decode.dspark_*), floor 1e-3; draft ids compared exactly")),
        between_schedules=dict(values=between, why=(
            "schedules differ by design (the index-key slot quirk, make_v41_goldens.py): compare each schedule with "
            "its own golden")))
    with open(os.path.join(out_dir, "golden.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(out_dir, x)) for x in os.listdir(out_dir))
    print(f"between schedules {between}")
    print(f"tolerance rel {rel:.3g}, end-to-end {rel_e:.3g}; {len(raw)} tensors; {total} bytes in {out_dir}")
    return 0


def load(d):
    """(meta, cfg, W, vision weights, prompt) decoded from the stored files only."""
    with open(os.path.join(d, "golden.json")) as f:
        meta = json.load(f)
    cfg = m.Config(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in meta["reference_config"].items()})
    with open(os.path.join(d, "config.json")) as f:
        vc = vis.VisionConfig.from_hf(json.load(f))
    path = os.path.join(d, "model.safetensors")
    vw = vis.load_weights(path, vc)
    full = read_safetensors(path)
    orig = mg.read_safetensors
    mg.read_safetensors = lambda p: {k: v for k, v in full.items() if not k.startswith(("vision.", "aligner."))}
    try:
        W = mg.weights_from_file(cfg, path)
    finally:
        mg.read_safetensors = orig
    images = []
    for im in meta["images"]:
        x, nh, nw, lh, lw = mvg.patches_of(os.path.join(d, im["file"]), vc)
        assert hashlib.sha256(mvg.bf16_bytes(x)).hexdigest() == im["patches_sha256"], im["file"]
        _, rows = vis.tower(vw, vc, x, nh, nw, acc=torch.float64)
        stored = np.fromfile(os.path.join(d, im["rows"]), dtype="<u2").astype(np.uint32) << 16
        stored = torch.from_numpy(stored.view(np.float32).copy()).reshape(rows.shape)
        images.append((rows, lh, lw, bool(torch.equal(rows.float(), stored))))
    prompt = m.VLPrompt(meta["ids"], meta["image_token_id"], [i[:3] for i in images])
    assert prompt.ids == meta["expanded_ids"] and prompt.roles == meta["expanded_roles"]
    return meta, cfg, W, images, prompt


def check(d):
    torch.set_num_threads(1)
    meta, cfg, W, images, prompt = load(d)
    ok = all(i[3] for i in images)
    print(f"{d}: aligner rows recomputed from the image files {'bit-identical' if ok else 'DIFFERENT'}")
    for e in meta["schedules"]:
        for key, dt in (("logits", torch.float64), ("logits_float32_mode", torch.float32)):
            lg, _ = run(cfg, W, prompt, e["calls"], dt)
            want = torch.from_numpy(np.fromfile(os.path.join(d, e[key]), dtype="<f4").copy()).reshape(lg.shape)
            same = torch.equal(lg.to(torch.float32), want)
            ok &= same
            print(f"  {e['name']} {e[key]}: {'bit-identical' if same else 'DIFFERENT'}")
        if "dspark" in e:
            dr = run_drafts(cfg, W, prompt, e["calls"], torch.float64)
            got = b"".join(mg.f32_bytes(x[2]) for x in dr)
            same = got == open(os.path.join(d, e["dspark"]["file"]), "rb").read() and \
                [x[3] for x in dr] == [x["ids"] for x in e["dspark"]["drafts"]]
            ok &= same
            print(f"  {e['name']} {e['dspark']['file']}: {'bit-identical' if same else 'DIFFERENT'}")
    return 0 if ok else 1


class NoDeadHash(m.Session):
    """Mutation: image positions hashed with their id (not DEAD); the gate still 0."""

    def engram(self, L, X, pos0):
        saved = self.cids
        self.cids = [c if c != m.DEAD else IMAGE_TOKEN_ID for c in saved]
        try:
            return super().engram(L, X, pos0)
        finally:
            self.cids = saved


class GateOpen(m.Session):
    """Mutation: the Engram gate not zeroed on image positions (the hash still DEAD)."""

    def engram(self, L, X, pos0):
        saved = self.roles
        self.roles = [m.TEXT] * len(saved)
        try:
            return super().engram(L, X, pos0)
        finally:
            self.roles = saved


class OnlyImageRole(m.Session):
    """Mutation: only IMAGE positions treated as image positions (START / NEW_LINE / END routed with gate.bias and
    hashed and gated as text), i.e. image_mask = (token_types == IMAGE) instead of token_types >= 0."""

    def _text_delims(self):
        return [m.TEXT if r in (m.IMAGE_START, m.IMAGE_NEW_LINE, m.IMAGE_END) else r for r in self.roles]

    def engram(self, L, X, pos0):
        saved, scids = self.roles, self.cids
        self.roles = self._text_delims()
        self.cids = [IMAGE_TOKEN_ID if c == m.DEAD and r == m.TEXT else c for c, r in zip(scids, self.roles)]
        try:
            return super().engram(L, X, pos0)
        finally:
            self.roles, self.cids = saved, scids

    def block(self, L, X, pos0, pre_mix, attn_fn=None):
        saved = self.roles
        self.roles = self._text_delims()
        try:
            return super().block(L, X, pos0, pre_mix, attn_fn)
        finally:
            self.roles = saved


class RowsRestartPerCall(m.VLPrompt):
    """Mutation: each call's IMAGE positions take the image's rows from row 0 again (a chunk split inside a span
    that loses the row offset)."""

    def rows_of(self, first, n):
        r, k = [], {}
        for p in range(first, first + n):
            if self.roles[p] == m.IMAGE:
                span = max(i for i, sp in enumerate(self.spans) if sp[0] <= p)
                j = k.get(span, 0)
                k[span] = j + 1
                start = self.spans[span][0]
                r.append(self.row_at[sorted(q for q in self.row_at if start <= q < start + self.spans[span][1])[j]])
        return torch.stack(r) if r else None


def mutations(d):
    """Each mutation's logits against the golden, in the float64 reference (vs the .f32 golden and 'rel') and in the
    float32 mode (vs the .f32mode.f32 golden and 'rel_float32_mode'), prefill and chunks schedules."""
    torch.set_num_threads(1)
    meta, cfg, W, images, prompt = load(d)
    tol, tol32 = meta["tolerance"]["rel"], meta["tolerance"]["rel_float32_mode"]
    calls = {e["name"]: e["calls"] for e in meta["schedules"]}
    rows = [i[:3] for i in images]

    def swapped(a, b):
        W2 = dict(W)
        W2[a], W2[b] = W[b], W[a]
        return W2

    def vl_as_bias():
        W2 = dict(W)
        for k in W:
            if k.endswith("gate.bias_vl"):
                W2[k] = W[k[:-len("_vl")]]
        return W2
    W_text = dict(W)
    for n in ("image_start", "image_newline", "image_end"):
        W_text[n] = m.QW("bf16", W["embed.weight"].w[IMAGE_TOKEN_ID].clone())
    ids = meta["ids"]
    cases = [
        ("bias_vl not used (gate.bias on image positions)", vl_as_bias(), prompt, m.Session),
        ("Engram: image positions not DEAD in the hash", W, prompt, NoDeadHash),
        ("Engram: gate not zeroed on image positions", W, prompt, GateOpen),
        ("only IMAGE positions are image positions (delimiters as text)", W, prompt, OnlyImageRole),
        ("image_newline and image_start swapped", swapped("image_newline", "image_start"), prompt, m.Session),
        ("image_start and image_end swapped", swapped("image_start", "image_end"), prompt, m.Session),
        ("delimiters left as the placeholder's embedding row", W_text, prompt, m.Session),
        ("aligner rows in column-major order", W, m.VLPrompt(
            ids, IMAGE_TOKEN_ID,
            [(r.reshape(lh, lw, -1).transpose(0, 1).reshape(lh * lw, -1), lh, lw) for r, lh, lw in rows]), m.Session),
        ("rows restart at row 0 in every call", W, RowsRestartPerCall(ids, IMAGE_TOKEN_ID, rows), m.Session),
        ("one BF16 ulp on every IMAGE row value", W, m.VLPrompt(
            ids, IMAGE_TOKEN_ID, [(nm.round_bf16(r.double() * (1 + 2.0 ** -7)), lh, lw) for r, lh, lw in rows]),
         m.Session),
    ]
    base = {(sn, dt): run(cfg, W, prompt, calls[sn], dt)[0] for sn in ("prefill", "chunks")
            for dt in (torch.float64, torch.float32)}
    out = []
    for what, W2, p2, cls in cases:
        line = [what + ":"]
        for sn in ("prefill", "chunks"):
            for dt, t in ((torch.float64, tol), (torch.float32, tol32)):
                lg, _ = run(cfg, W2, p2, calls[sn], dt, session_cls=cls)
                b = base[(sn, dt)]
                rel = float((lg.double() - b.double()).abs().max() / b.double().abs().max())
                out.append((what, sn, str(dt), rel, rel / t))
                line.append(f"{sn} {'f64' if dt == torch.float64 else 'f32'} {rel:.3g} ({rel / t:.3g} x tol)")
        print(" ".join(line), flush=True)
    return out


def compare(dump, d):
    """Logits written by the C side (DUMP/<schedule>.f32: F32 [49, 96], every position) against both goldens."""
    with open(os.path.join(d, "golden.json")) as f:
        meta = json.load(f)
    tol = meta["tolerance"]
    for e in meta["schedules"]:
        path = os.path.join(dump, f"{e['name']}.f32")
        if not os.path.exists(path):
            print(f"{e['name']}: no {path}")
            continue
        c = torch.from_numpy(np.fromfile(path, dtype="<f4").copy()).double().reshape(meta["n_positions"], -1)
        for key, t in (("logits_float32_mode", tol["rel_float32_mode"]), ("logits", tol["rel"])):
            r = torch.from_numpy(np.fromfile(os.path.join(d, e[key]), dtype="<f4").copy()).double().reshape(c.shape)
            sc = float(r.abs().max())
            per = (c - r).abs().amax(-1) / sc
            bad = [i for i in range(c.shape[0]) if per[i] > t]
            same = sum(int(torch.equal(c[i], r[i])) for i in range(c.shape[0]))
            print(f"{e['name']} vs {e[key]}: max rel {float(per.max()):.3g} (tolerance {t:.3g}), {same} / {c.shape[0]} "
                  f"positions bit-identical, first position over the tolerance: {bad[0] if bad else None} "
                  f"(role {meta['expanded_roles'][bad[0]] if bad else '-'})")
    return 0


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--compare":
        return compare(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else OUT)
    if len(sys.argv) > 1 and sys.argv[1] == "--check":
        return check(sys.argv[2] if len(sys.argv) > 2 else OUT)
    if len(sys.argv) > 1 and sys.argv[1] == "--mutations":
        mutations(sys.argv[2] if len(sys.argv) > 2 else OUT)
        return 0
    return generate(sys.argv[1] if len(sys.argv) > 1 else OUT)


if __name__ == "__main__":
    sys.exit(main())
