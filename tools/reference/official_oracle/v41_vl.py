#!/usr/bin/python3
"""Check the image path of tools/reference/model_v41.py (+ vision_v41.py) against DeepSeek's official V4.1 code run on
CPU: `model.py` (Transformer.forward(input_ids, start_pos, images, token_types): embedding overwrite, bias_vl
routing, Engram DEAD + gate mask), `vision.py` (ViT + Aligner), `image_processor.py` (load_image, plan_image_grid,
prepare_vl_inputs) and `engram.py`, read at run time from --official-dir / $DSV4_OFFICIAL_V41_DIR (never stored in
the repository; HF revision dba1be0a, public vendored copy in tenstorrent/tt-metal
models/demos/deepseek_v3_d_p/reference/deepseek_v41/), with the CPU stand-ins of v41_model.py (tilelang kernels)
and v41_vision.py (F.scaled_dot_product_attention as the flash kernels compute it for BF16, F32 op-math SiLU).

Case: tests/golden/v41/tiny-vl (make_v41_vl_goldens.py: its config, LM weights as stored, tower weights, the two
image files, the prompt). The official code puts images in the first chunk only, so the schedules compared are
that golden's `prefill` (49 positions) and `decode` (a prefill of 44, then 5 one-token text steps).

Measured:
  1. pre-processing and expansion: the official prepare_vl_inputs (placeholder expansion, load_image patches) vs
     model_v41.VLPrompt and make_vision_goldens.patches_of: ids, roles and BF16 patches equal;
  2. the tower: official encode_image rows vs vision_v41.tower rows (F64 and F32 accumulation);
  3. the language model alone: the official forward with its own encode_image replaced by the reference tower's
     F64 rows (= the golden's .rows.bf16) vs model_v41 fed the same rows, float32 mode and float64;
  4. end to end: the official forward (its own tower) vs model_v41 fed the official tower's rows (the LM given the
     same inputs: isolates the LM again, on other rows).

usage: v41_vl.py [--official-dir DIR] [--golden DIR]
"""
import argparse
import os
import sys
import types

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
import model_v41 as ref  # noqa: E402
import vision_v41 as vis  # noqa: E402
import make_vision_goldens as mvg  # noqa: E402
import make_v41_vl_goldens as vg  # noqa: E402
import v41_model  # noqa: E402
import v41_vision  # noqa: E402


class Tok:
    """The prompt is given as ids: encode returns them; the placeholder spelling is unknown (no cross-check)."""
    unk_token_id = None

    def __init__(self, ids):
        self.ids = ids

    def encode(self, prompt):
        return list(self.ids)

    def convert_tokens_to_ids(self, t):
        return None


def set_all(model, W, vw):
    n = 0
    with torch.no_grad():
        for name, prm in model.named_parameters():
            if name.startswith(("vision.", "aligner.")):
                prm.copy_(vw[name].to(prm.dtype))
                n += 1
    vision_names = {k for k, _ in model.named_parameters() if k.startswith(("vision.", "aligner."))}
    saved = model.named_parameters

    def lm_params(*a, **k):
        return ((k_, p) for k_, p in saved(*a, **k) if k_ not in vision_names)
    model.named_parameters = lm_params
    try:
        n += v41_model.set_weights(model, W, None)
    finally:
        model.named_parameters = saved
    return n


def rel(a, b):
    a, b = a.double(), b.double()
    return float((a - b).abs().max() / b.abs().max())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--official-dir", default=os.environ.get("DSV4_OFFICIAL_V41_DIR", "/tmp/vl_official"))
    ap.add_argument("--golden", default="tests/golden/v41/tiny-vl")
    ap.add_argument("--torch-topk", action="store_true",
                    help="keep torch's own topk (exact score ties in any order) instead of ties to the lower index")
    a = ap.parse_args()
    if not a.torch_topk:
        torch.Tensor.topk = v41_model.stable_topk
    torch.set_num_threads(1)
    enc = types.ModuleType("encoding")
    enc.IMAGE_PLACEHOLDER = "<｜deepseek_image｜>"
    sys.modules["encoding"] = enc
    official, IdTok = v41_model.load_official(a.official_dir)
    import image_processor as oip
    F.scaled_dot_product_attention = v41_vision.sdpa_fa
    F.silu = v41_vision.silu_opmath

    meta, cfg, W, images, prompt = vg.load(a.golden)
    with open(os.path.join(a.golden, "config.json")) as f:
        import json
        vc = vis.VisionConfig.from_hf(json.load(f))
    vw = vis.load_weights(os.path.join(a.golden, "model.safetensors"), vc)
    keys = {k: v for k, v in cfg.to_dict().items() if k != "vision_enabled"}
    keys.update(vision_n_layers=vc.n_layers, vision_dim=vc.dim, vision_n_heads=vc.n_heads,
                vision_inter_dim=vc.inter_dim, vision_patch_size=vc.patch_size, vision_rope_theta=vc.rope_theta,
                vision_downsample_ratio=vc.downsample_ratio, vision_max_n_token=vc.max_image_tokens,
                vision_min_pixels=vc.min_pixels, vision_max_wh_ratio=None)
    torch.set_default_dtype(torch.bfloat16)
    args = official.ModelArgs(max_batch_size=1, max_seq_len=64, temperature=0, **keys)
    ok = True

    # 1. expansion and patches
    recs = [{"data": open(os.path.join(a.golden, im["file"]), "rb").read()} for im in meta["images"]]
    toks, ttypes, inputs = oip.prepare_vl_inputs("", recs, Tok(meta["ids"]), args)
    same_ids = toks == prompt.ids and ttypes == prompt.roles
    same_p = True
    for im, inp in zip(meta["images"], inputs):
        x, nh, nw, lh, lw = mvg.patches_of(os.path.join(a.golden, im["file"]), vc)
        same_p &= (nh, nw) == (inp.n_vit_h, inp.n_vit_w) and torch.equal(x.float(), inp.patches.float())
        same_p &= inp.start == im["span_start"]
    print(f"expansion (ids, roles, span starts) {'equal' if same_ids else 'DIFFERENT'}; patches "
          f"{'bit-identical' if same_p else 'DIFFERENT'}")
    ok &= same_ids and same_p

    def fresh():
        official.shared_attn.__init__()
        official.get_window_topk_idxs.cache_clear()
        official.get_dspark_topk_idxs.cache_clear()
        model = official.Transformer(args, IdTok(cfg.vocab_size))
        n = set_all(model, W, vw)
        head = model.head.forward
        model.head.forward = lambda x, full_logits=False: head(x, True)    # logits of every position
        return model, n

    model, nset = fresh()
    # 2. tower rows
    off_rows = []
    for k, inp in enumerate(inputs):
        r = model.encode_image(inp.patches, inp.n_vit_h, inp.n_vit_w).float()
        off_rows.append(r)
        x, nh, nw = inp.patches.float(), inp.n_vit_h, inp.n_vit_w
        r32 = vis.tower(vw, vc, x, nh, nw, acc=torch.float32)[1]
        r64 = images[k][0]
        print(f"image {k}: official tower rows vs reference F64-acc: {int((r != r64).sum())} of {r.numel()} BF16 "
              f"values differ (max |diff| {float((r - r64).abs().max()):.3g}); vs F32-acc: "
              f"{int((r != r32).sum())} differ (max |diff| {float((r - r32).abs().max()):.3g})")
    print(f"{nset} official parameters set")

    rows_sets = {"reference F64 tower rows (the golden's)": [i[0] for i in images],
                 "official tower rows": off_rows}
    scheds = {e["name"]: e["calls"] for e in meta["schedules"] if e["name"] in ("prefill", "decode")}
    tt = torch.tensor([ttypes])
    import numpy as np
    stored = {e["name"]: torch.from_numpy(np.fromfile(os.path.join(a.golden, e["logits_float32_mode"]),
                                                      dtype="<f4").copy()).reshape(len(toks), -1)
              for e in meta["schedules"]}
    for what, rows in rows_sets.items():
        vp = ref.VLPrompt(meta["ids"], meta["image_token_id"],
                          [(r, i[1], i[2]) for r, i in zip(rows, images)])
        for sname, calls in scheds.items():
            model, _ = fresh()
            rr = iter(rows)
            orig_encode = model.encode_image
            if what.startswith("reference"):
                model.encode_image = lambda p, h, w: next(rr).to(torch.bfloat16)
            sessions = {dt: ref.Session(cfg, W, dtype=dt) for dt in (torch.float32, torch.float64)}
            p = 0
            worst = {torch.float32: 0.0, torch.float64: 0.0}
            nbit = 0
            npos = 0
            allo = []
            ndraft = [0, 0]
            for n in calls:
                ids = torch.tensor([toks[p:p + n]])
                if p == 0:
                    out_ids, lo, mh = model(ids, 0, [inputs], tt[:, :n])
                else:
                    out_ids, lo, mh = model(ids, p)
                spec = model.forward_spec(out_ids[:, -1], mh, p)
                allo.append(lo[0].float())
                for dt, s in sessions.items():
                    lr = s.eval_prompt(vp, p, n, all_logits=True)
                    worst[dt] = max(worst[dt], rel(lo[0], lr))
                    if dt == torch.float32:
                        nbit += sum(int(torch.equal(lo[0][t].float(), lr[t].float())) for t in range(n))
                npos += n
                if spec is not None:      # the DSpark draft after a one-token call (reads the image features)
                    o_ids, o_log, o_conf = spec
                    r_log, r_ids, r_conf = sessions[torch.float32].dspark(int(out_ids[0, -1]))
                    same = (torch.equal(o_log[0].float(), r_log.float()) and o_ids[0].tolist() == r_ids
                            and torch.equal(o_conf[0].float(), r_conf.float()))
                    ndraft[0] += 1
                    ndraft[1] += same
                    sessions[torch.float64].dspark(int(out_ids[0, -1]))
                p += n
            model.encode_image = orig_encode
            line = (f"{what}, {sname} ({len(calls)} calls): float32 mode {nbit} / {npos} positions' logits "
                    f"bit-identical, max rel {worst[torch.float32]:.3g}; float64 max rel {worst[torch.float64]:.3g}")
            if what.startswith("reference"):
                same = torch.equal(torch.cat(allo), stored[sname])
                line += f"; official = the golden's {sname}.f32mode.f32 {'bit for bit' if same else 'NOT bit for bit'}"
                ok &= same
            if ndraft[0]:
                line += f"; DSpark drafts (logits, ids, confidence) bit-identical {ndraft[1]} / {ndraft[0]}"
            print(line)
            ok &= nbit == npos and ndraft[0] == ndraft[1]
    print(f"agreement {'OK' if ok else 'NOT OK'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
