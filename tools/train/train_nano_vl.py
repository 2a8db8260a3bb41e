#!/usr/bin/python3
"""train_nano_vl.py -- train, export and evaluate the built-in vision model models/nano-vl (nano V4.1 + a tiny tower).

    nice /usr/bin/python3 tools/train/train_nano_vl.py tokenizer   # models/nano-vl/tokenizer.json + the prompt ids
    nice /usr/bin/python3 tools/train/train_nano_vl.py pretrain    # phase 1: the tower alone, with a linear probe
    nice /usr/bin/python3 tools/train/train_nano_vl.py train       # phase 2: tower + LM (resumes from the last checkpoint)
    nice /usr/bin/python3 tools/train/train_nano_vl.py export      # export the last checkpoint to models/nano-vl
    nice /usr/bin/python3 tools/train/train_nano_vl.py heldout     # write the held-out images (PNG) + answers
    nice /usr/bin/python3 tools/train/train_nano_vl.py eval-ref    # held-out accuracy, reference (model_v41 + vision_v41)
    nice /usr/bin/python3 tools/train/train_nano_vl.py eval-c      # held-out accuracy, C (`dsv4 generate --image`)
(tools/train/run_vl.sh runs everything.)

Task: synthetic 56 x 56 RGB images, one shape (circle / square / triangle) of one colour (red / green / blue / yellow,
each jittered) at a random size (16-36 px) and position on a random grey background (level 0-255, slightly tinted).
Three questions per image, with short exact answers followed by EOS:
    "What shape is this?"        -> " circle"
    "What colour is the shape?"  -> " red"
    "Describe the image."        -> " a red circle"
Each training sequence is what `dsv4 generate -m models/nano-vl --image F -p Q` evaluates: the C tokenizer's ids of
"<｜deepseek_image｜>\\n\\n" + Q (the placeholder expanded to its span: START, 2 x (2 IMAGE, NEW_LINE), END), then the
answer's ids and EOS; the loss is the cross-entropy of the answer ids and EOS only. Training images come from seeds
0, 1, 2, ... (one fresh image per sequence); the held-out set from seeds >= HELDOUT_SEED0, never seen in training.

Model: models/nano-v41 (its exported weights are the starting point of the language model; the tokenizer is nano's
with id 1023 turned into "<｜deepseek_image｜>" and ids 1017..1022 into the chat special tokens, as
tools/vision/make_cli_vl.py does, so `dsv4 chat` takes it too) + a tiny DeepSeek-ViT tower (tools/reference/vision_v41.py:
2 blocks, width 128, 2 heads of 64, MLP 256, patch 14, 3 x 3 pixel-unshuffle, aligner 1152 -> 128 -> 128) +
ffn.gate.bias_vl + image_start / image_newline / image_end. vision_config.min_pixels = 3136 (56 x 56): a 56 x 56 image
is not rescaled (4 x 4 patches -> 2 x 2 aligner rows, span 8); bigger images keep their size (up to the 1,024-token cap).

Training model: train_nano_v41.Net (the V4.1 graph with straight-through rounding where the reference rounds and every
weight quantized in its stored format) with the image path of model_v41.Session.eval: IMAGE positions take the
aligner rows, START / NEW_LINE / END the learned vectors, image positions route with gate.bias_vl (updated by the
bias rule from image-position loads), are DEAD for the Engram hash and have the Engram gate at 0. The tower is a
differentiable copy of vision_v41.tower (BF16 straight-through at each rounding, BF16 weights, F32 norm weights).
DSpark stages are exported as nano-v41 trained them (not trained here; drafts are text).

Two phases. 1 (`pretrain`): the tower + aligner alone, PRE_STEPS AdamW steps of PRE_BATCH fresh images, loss = CE of
shape + CE of colour from a temporary linear probe on the concatenated aligner rows (the probe is not exported); a
tower trained only through the language model learned colour but stayed at chance on shape after 160 steps (first
attempt, tools/train/README.md). 2 (`train`): the whole model on the question/answer sequences, the language model
from nano-v41 at LR_LM, the pretrained tower at LR, gate.bias / gate.bias_vl by the bias rule, the indexer KL as nano-v41.
"""
import argparse
import io
import json
import math
import os
import random
import shutil
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tools", "reference"))
import train_nano_v41 as T                # noqa: E402
import model_v41 as M                     # noqa: E402
import numerics as nm                     # noqa: E402
import engram_token_map                   # noqa: E402
import make_v41_goldens as G              # noqa: E402
import make_vision_goldens as MVG         # noqa: E402
import vision_v41 as vis                  # noqa: E402
from safetensors_io import write_safetensors, read_safetensors  # noqa: E402

CACHE = os.path.join(HERE, "cache", "nano-vl")
RUN_DIR = os.path.join(HERE, "runs", "nano-vl")
OUT_DIR = os.path.join(ROOT, "models", "nano-vl")
BASE_DIR = os.path.join(ROOT, "models", "nano-v41")
TOKENIZER_SRC = os.path.join(ROOT, "models", "nano", "tokenizer.json")

IMAGE_ID = 1023
CHAT_TOKENS = ["<｜User｜>", "<｜Assistant｜>", "<think>", "</think>", "｜DSML｜", "<｜System｜>"]
EOS = 1
PAD = 2
SIZE = 56
VCFG = vis.VisionConfig(n_layers=2, dim=128, n_heads=2, inter_dim=256, patch_size=14, rope_theta=10000.0,
                        downsample_ratio=3, lm_dim=128, max_image_tokens=1024, min_pixels=SIZE * SIZE)
SHAPES = ["circle", "square", "triangle"]
COLOURS = {"red": (225, 30, 30), "green": (30, 175, 40), "blue": (35, 60, 225), "yellow": (235, 215, 30)}
QUESTIONS = ["What shape is this?", "What colour is the shape?", "Describe the image."]

BATCH = 24
STEPS = 600
LR = 5e-4          # the tower (pretrained: phase 1)
LR_LM = 1e-3       # the language model (starts as nano-v41)
WARMUP = 20
LR_MIN_FRAC = 0.1
WD = 0.05
CLIP = 1.0
BIAS_RATE = 1e-2
SEED = 4242
CKPT_EVERY = 50
HELDOUT_SEED0 = 1_000_000
N_HELDOUT = 60
PRE_STEPS = 4000
PRE_BATCH = 64
PRE_LR = 3e-3
PRE_SEED0 = 500_000


def log(msg, f=None):
    T.log(msg, f)


# ----------------------------------------------------------------------------- images and prompts
def answer(q, shape, colour):
    return [" " + shape, " " + colour, " a %s %s" % (colour, shape)][q]


def make_image(seed):
    """(PIL image 56 x 56 RGB, shape, colour) of one seed (deterministic)."""
    r = random.Random(seed)
    shape, colour = r.choice(SHAPES), r.choice(sorted(COLOURS))
    g = r.randint(0, 255)
    bg = tuple(max(0, min(255, g + r.randint(-12, 12))) for _ in range(3))
    fg = tuple(max(0, min(255, c + r.randint(-25, 25))) for c in COLOURS[colour])
    im = Image.new("RGB", (SIZE, SIZE), bg)
    d = ImageDraw.Draw(im)
    s = r.randint(16, 36)
    x, y = r.randint(1, SIZE - s - 2), r.randint(1, SIZE - s - 2)
    if shape == "circle":
        d.ellipse([x, y, x + s, y + s], fill=fg)
    elif shape == "square":
        d.rectangle([x, y, x + s, y + s], fill=fg)
    else:
        d.polygon([(x, y + s), (x + s, y + s), (x + s / 2, y)], fill=fg)
    return im, shape, colour


def png_bytes(im):
    f = io.BytesIO()
    im.save(f, format="PNG")
    return f.getvalue()


def patches(im):
    """The pre-processed patches of the image (the reference's image_processor path, via its PNG bytes):
    ([n_h * n_w, 3 * 14 * 14] BF16 values, n_h, n_w, n_llm_h, n_llm_w)."""
    x, nh, nw, lh, lw = MVG.patches_of(io.BytesIO(png_bytes(im)), VCFG)
    return x.reshape(nh * nw, -1), nh, nw, lh, lw


def tokenize(dsv4, text, tokenizer):
    out = subprocess.run([dsv4, "tokenize", "--tokenizer", tokenizer, "--text", text], stdout=subprocess.PIPE,
                         check=True).stdout
    return [int(t) for t in out.split()]


# ----------------------------------------------------------------------------- tokenizer
def cmd_tokenizer(args):
    """models/nano-vl/tokenizer.json (nano's, id 1023 -> the image placeholder, 1017..1022 -> chat tokens) and the
    ids of every prompt and answer (cache/nano-vl/prompts.json), from the C tokenizer."""
    tok = json.load(open(TOKENIZER_SRC))
    vocab = tok["model"]["vocab"]

    def joined(m):
        return m.replace(" ", "") if isinstance(m, str) else "".join(m)
    for k, sp in enumerate(["<｜deepseek_image｜>"] + CHAT_TOKENS):
        i = IMAGE_ID - k
        s = [key for key, v in vocab.items() if v == i][0]
        del vocab[s]
        tok["model"]["merges"] = [m for m in tok["model"]["merges"] if joined(m) != s]
        tok["added_tokens"].append({"id": i, "content": sp, "single_word": False, "lstrip": False, "rstrip": False,
                                    "normalized": False, "special": True})
    os.makedirs(OUT_DIR, exist_ok=True)
    path = os.path.join(OUT_DIR, "tokenizer.json")
    with open(path, "w") as f:
        json.dump(tok, f, ensure_ascii=False)
    os.makedirs(CACHE, exist_ok=True)
    P = {"questions": [tokenize(args.dsv4, "<｜deepseek_image｜>\n\n" + q, path) for q in QUESTIONS], "answers": {}}
    for q in range(3):
        for sh in SHAPES:
            for c in COLOURS:
                a = answer(q, sh, c)
                P["answers"][a] = tokenize(args.dsv4, a, path)
    for q in P["questions"]:
        assert q[0] == IMAGE_ID and IMAGE_ID not in q[1:], q
    with open(os.path.join(CACHE, "prompts.json"), "w") as f:
        json.dump(P, f, indent=1)
    log("tokenizer %s; question ids %s" % (path, P["questions"]))


def load_prompts():
    p = os.path.join(CACHE, "prompts.json")
    if not os.path.exists(p):
        sys.exit("no %s: run `train_nano_vl.py tokenizer` first" % p)
    return json.load(open(p))


def make_cfg():
    cmap, n_keys = engram_token_map.build(os.path.join(OUT_DIR, "tokenizer.json"))
    assert cmap[PAD] == PAD
    c = T.model_config(len(cmap), n_keys)
    c.update(vision_enabled=True, image_token_id=IMAGE_ID)
    return M.Config(**c), cmap


# ----------------------------------------------------------------------------- trainable model
rb = nm.round_bf16_ste


class VLNet(T.Net):
    def __init__(self, cfg, cmap, seed):
        super().__init__(cfg, cmap, seed)
        vw = vis.random_weights(VCFG, seed + 1)
        self.vshapes = {n: s for n, s in vis.tensor_shapes(VCFG).items() if not n.startswith("image_")}
        self.V = torch.nn.ParameterDict({n.replace(".", "__"): torch.nn.Parameter(vw[n].clone())
                                         for n in self.vshapes})
        self.img = None

    def vw(self, name):
        p = self.V[name.replace(".", "__")]
        return rb(p) if self.vshapes[name][1] == "BF16" else p

    # ---- the tower (vision_v41.tower, batched, BF16 straight-through)
    def vlin(self, x, wn, bn):
        y = x @ self.vw(wn).t()
        if bn is not None:
            y = y + self.vw(bn)
        return rb(y)

    def vrms(self, x, wn):
        return rb(self.vw(wn) * (x * torch.rsqrt(x.square().mean(-1, keepdim=True) + vis.EPS)))

    def tower(self, x, nh, nw):
        """x [N, n, 588] BF16 values -> aligner rows [N, n_llm_h * n_llm_w, lm_dim]."""
        c = VCFG
        N, n = x.shape[:2]
        D, H = c.dim, c.n_heads
        hd = D // H
        cos, sin = vis.rope_tables(nh, nw, hd, c.rope_theta)          # [n, hd/2]
        cos, sin = cos[None, :, None, :], sin[None, :, None, :]
        h = self.vlin(x, "vision.patch_embed.proj.weight", "vision.patch_embed.proj.bias")
        for i in range(c.n_layers):
            b = "vision.blocks.%d." % i
            a = self.vrms(h, b + "norm1.weight")
            qkv = self.vlin(a, b + "attn.wqkv.weight", b + "attn.wqkv.bias")
            q, k, v = (t.reshape(N, n, H, hd) for t in qkv.split(D, dim=-1))

            def rot(t):
                t1, t2 = t[..., :hd // 2], t[..., hd // 2:]
                return rb(torch.cat([t1 * cos - t2 * sin, t2 * cos + t1 * sin], -1))
            q, k = rot(q), rot(k)
            z = torch.einsum("nqhd,nkhd->nhqk", q, k) * (1.0 / math.sqrt(hd))
            p = torch.softmax(z, -1)
            o = rb(torch.einsum("nhqk,nkhd->nqhd", rb(p), v)).reshape(N, n, D)
            h = rb(h + self.vlin(o, b + "attn.wo.weight", b + "attn.wo.bias"))
            a = self.vrms(h, b + "norm2.weight")
            gu = self.vlin(a, b + "mlp.w1.weight", None)
            g, u = gu[..., :c.inter_dim], gu[..., c.inter_dim:]
            h = rb(h + self.vlin(rb(rb(F.silu(g)) * u), b + "mlp.w2.weight", None))
        h = self.vrms(h, "vision.norm.weight")
        r = c.downsample_ratio
        gh, gw = -(-nh // r), -(-nw // r)
        g = F.pad(h.reshape(N, nh, nw, D), (0, 0, 0, gw * r - nw, 0, gh * r - nh))
        g = g.reshape(N, gh, r, gw, r, D).permute(0, 1, 3, 5, 2, 4).reshape(N, gh * gw, D * r * r)
        a = rb(F.gelu(self.vlin(g, "aligner.w1.weight", "aligner.w1.bias")))
        return self.vlin(a, "aligner.w2.weight", "aligner.w2.bias")

    # ---- image positions: Engram gate 0, bias_vl routing
    def engram(self, L, X, idx):
        if self.img is None:
            return super().engram(L, X, idx)
        out = super().engram(L, X, idx)
        return torch.where(self.img[..., None, None], X, out)      # gate 0 on image positions: rb(X + 0) = X (X is BF16 already)

    def moe(self, L, x, stats):
        cfg, p = self.cfg, self.pref(L) + "ffn."
        E, k = cfg.moe(L)
        shp = x.shape
        x = x.reshape(-1, shp[-1])
        sc = torch.sqrt(F.softplus(x @ self.w(p + "gate.weight").t()))
        img = self.img.reshape(-1) if self.img is not None and self.img.numel() == x.shape[0] else None
        bias = self.raw(p + "gate.bias").detach()
        if img is not None:
            bias = torch.where(img[:, None], self.raw(p + "gate.bias_vl").detach()[None], bias[None])
        idx = (sc.detach() + bias).topk(k, dim=-1)[1]
        wts = sc.gather(1, idx)
        wts = wts / (wts.sum(-1, keepdim=True) + 1e-20) * cfg.route_scale
        if stats is not None:
            for key, sel in (("", None if img is None else ~img), ("_vl", img)):
                ii = idx if sel is None else idx[sel]
                if key == "_vl" and sel is None:
                    continue
                stats.setdefault(p + key, torch.zeros(E))
                stats[p + key] += torch.bincount(ii.reshape(-1), minlength=E).float()
        out = torch.zeros_like(x)
        for e in range(E):
            rows, slot = (idx == e).nonzero(as_tuple=True)
            if rows.numel() == 0:
                continue
            out = out.index_add(0, rows, self.expert(p + f"experts.{e}.", x[rows], wts[rows, slot]))
        out = rb(out + self.expert(p + "shared_experts.", x, None))
        return out.reshape(shp)

    def engram_ids_vl(self, toks, roles):
        cfg = self.cfg
        out = {}
        for k, L in enumerate(cfg.engram_layer_ids):
            rows = [M.engram_hash_ids([M.DEAD if r != M.TEXT else int(self.cmap[t]) for t, r in zip(ts, rs)], k,
                                      cfg.engram_primes, cfg.engram_offsets, cfg.engram_mults, cfg.engram_cfg())
                    for ts, rs in zip(toks, roles)]
            out[L] = torch.tensor(rows, dtype=torch.int64)
        return out

    def forward_vl(self, toks, roles, x, nh, nw, stats=None):
        """toks, roles [B, T] (lists), x [B, n, 588] patches of each sequence's image -> logits [B, T, V]."""
        cfg = self.cfg
        B, T_ = len(toks), len(toks[0])
        self.wcache = {}
        rl = torch.tensor(roles)
        self.img = rl != M.TEXT
        eids = self.engram_ids_vl(toks, roles)
        tt = torch.tensor(toks)
        e = self.w("embed.weight")[tt]
        rows = self.tower(x, nh, nw)                                         # [B, nr, D]
        e = e.masked_scatter((rl == M.IMAGE)[..., None], rows.reshape(-1, cfg.dim))
        for r, name in ((M.IMAGE_START, "image_start"), (M.IMAGE_NEW_LINE, "image_newline"),
                        (M.IMAGE_END, "image_end")):
            e = torch.where((rl == r)[..., None], self.w(name)[None, None], e)
        X = e.unsqueeze(2).repeat(1, 1, cfg.hc_mult, 1)
        pre = torch.zeros(B, T_, cfg.hc_mult)
        pre[..., 0] = 1
        st, aux = {}, {}
        for L in range(cfg.n_layers):
            if L in cfg.engram_layer_ids:
                X = self.engram(L, X, eids[L])
            X, pre = self.block(L, X, pre, lambda x_, L=L: self.attention(L, x_, st, aux), stats)
        h = self.rms(self.hc_pre(X, pre), "norm.weight")
        self.img = None
        return h @ self.w("head.weight").t(), aux


def build():
    cfg, cmap = make_cfg()
    torch.manual_seed(SEED)
    net = VLNet(cfg, cmap, SEED)
    return cfg, net


def init_from_base(net):
    """The language model's weights from models/nano-v41 (its stored values); bias_vl = gate.bias."""
    base_cfg, _ = T.make_cfg()
    W = G.weights_from_file(base_cfg, os.path.join(BASE_DIR, "model.safetensors"))
    with torch.no_grad():
        for name, q in W.items():
            net.raw(name).copy_(q.w.to(torch.float32))
        for name in net.specs:
            if name.endswith("gate.bias_vl"):
                net.raw(name).copy_(net.raw(name[:-3]))


# ----------------------------------------------------------------------------- training
def sample(P, seed, q):
    im, shape, colour = make_image(seed)
    x, nh, nw, lh, lw = patches(im)
    a = answer(q, shape, colour)
    qids = P["questions"][q]
    span = M.span_roles(lh, lw)
    ids = [IMAGE_ID] * len(span) + qids[1:] + P["answers"][a] + [EOS]
    roles = span + [M.TEXT] * (len(ids) - len(span))
    first = len(span) + len(qids) - 1            # index of the first answer id
    return ids, roles, first, x, nh, nw


def batch_at(P, step):
    seqs = [sample(P, step * BATCH + i, (step * BATCH + i) % 3) for i in range(BATCH)]
    L = max(len(s[0]) for s in seqs)
    toks = [s[0] + [PAD] * (L - len(s[0])) for s in seqs]
    roles = [s[1] + [M.TEXT] * (L - len(s[1])) for s in seqs]
    tgt = torch.full((BATCH, L), -100, dtype=torch.int64)
    for b, s in enumerate(seqs):
        n = len(s[0])
        tgt[b, s[2] - 1:n - 1] = torch.tensor(s[0][s[2]:n])
    x = torch.stack([s[3] for s in seqs])
    return toks, roles, tgt, x, seqs[0][4], seqs[0][5]


def cmd_pretrain(args):
    """Phase 1: the tower + aligner alone, with a temporary linear probe (not exported) on the concatenated aligner
    rows predicting the shape and the colour (two cross-entropies); PRE_STEPS steps of PRE_BATCH fresh images
    (seeds from PRE_SEED0 on, disjoint from the held-out ones). Writes RUN_DIR/tower.pt."""
    cfg, net = build()
    torch.manual_seed(SEED)
    logf = open(os.path.join(RUN_DIR, "train.log"), "a")
    nr = None
    params = list(net.V.parameters())
    probe = None
    t0 = time.time()
    for step in range(PRE_STEPS):
        xs, ys, yc = [], [], []
        for i in range(PRE_BATCH):
            im, shape, colour = make_image(PRE_SEED0 + step * PRE_BATCH + i)
            x, nh, nw, lh, lw = patches(im)
            xs.append(x)
            ys.append(SHAPES.index(shape))
            yc.append(sorted(COLOURS).index(colour))
        rows = net.tower(torch.stack(xs), nh, nw)
        if probe is None:
            nr = rows.shape[1] * rows.shape[2]
            probe = torch.nn.Linear(nr, len(SHAPES) + len(COLOURS))
            opt = torch.optim.AdamW([{"params": params, "weight_decay": WD}, {"params": probe.parameters(),
                                                                             "weight_decay": 0.0}],
                                    lr=PRE_LR, betas=(0.9, 0.95))
        for gr in opt.param_groups:
            gr["lr"] = PRE_LR * min(1.0, (step + 1) / WARMUP) * (
                LR_MIN_FRAC + (1 - LR_MIN_FRAC) * 0.5 * (1 + math.cos(math.pi * step / PRE_STEPS)))
        lg = probe(rows.reshape(len(xs), nr))
        ys, yc = torch.tensor(ys), torch.tensor(yc)
        loss = F.cross_entropy(lg[:, :len(SHAPES)], ys) + F.cross_entropy(lg[:, len(SHAPES):], yc)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, CLIP)
        opt.step()
        if step % 50 == 0 or step == PRE_STEPS - 1:
            a_s = float((lg[:, :len(SHAPES)].argmax(-1) == ys).float().mean())
            a_c = float((lg[:, len(SHAPES):].argmax(-1) == yc).float().mean())
            log("pretrain step %4d loss %.4f shape acc %.2f colour acc %.2f %.2fs/step %.0fs" % (
                step, float(loss), a_s, a_c, (time.time() - t0) / (step + 1), time.time() - t0), logf)
    torch.save({"tower": net.V.state_dict(), "steps": PRE_STEPS, "seconds": time.time() - t0},
               os.path.join(RUN_DIR, "tower.pt"))


def lr_at(step):
    if step < WARMUP:
        return (step + 1) / WARMUP
    t = (step - WARMUP) / max(1, STEPS - WARMUP)
    return LR_MIN_FRAC + (1 - LR_MIN_FRAC) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def latest_ckpt():
    if not os.path.isdir(RUN_DIR):
        return None
    c = sorted(f for f in os.listdir(RUN_DIR) if f.startswith("ckpt_") and f.endswith(".pt"))
    return os.path.join(RUN_DIR, c[-1]) if c else None


def cmd_train(args):
    P = load_prompts()
    os.makedirs(RUN_DIR, exist_ok=True)
    logf = open(os.path.join(RUN_DIR, "train.log"), "a")
    cfg, net = build()
    lm_dec, lm_nodec, v_dec, v_nodec = [], [], [], []
    for name in net.specs:
        p = net.raw(name)
        if name.endswith("gate.bias") or name.endswith("gate.bias_vl") or name.startswith("mtp."):
            p.requires_grad_(False)
            continue
        (lm_dec if p.dim() >= 2 and not name.endswith("_fn") and net.specs[name][1] != "table" else lm_nodec).append(p)
    for name in net.vshapes:
        p = net.V[name.replace(".", "__")]
        (v_dec if p.dim() >= 2 else v_nodec).append(p)
    groups = [{"params": lm_dec, "weight_decay": WD, "base": LR_LM}, {"params": lm_nodec, "weight_decay": 0.0, "base": LR_LM},
              {"params": v_dec, "weight_decay": WD, "base": LR}, {"params": v_nodec, "weight_decay": 0.0, "base": LR}]
    opt = torch.optim.AdamW(groups, lr=LR, betas=(0.9, 0.95), eps=1e-8)
    path = latest_ckpt()
    start, elapsed0 = 0, 0.0
    if path and not args.fresh:
        ck = torch.load(path)
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        start, elapsed0 = ck["step"], ck.get("elapsed", 0.0)
        log("resumed %s (step %d, %.0fs trained)" % (path, start, elapsed0), logf)
    else:
        init_from_base(net)
        tp = os.path.join(RUN_DIR, "tower.pt")
        if not os.path.exists(tp):
            sys.exit("no %s: run `train_nano_vl.py pretrain` first" % tp)
        net.V.load_state_dict(torch.load(tp)["tower"])
        log("language model initialised from %s, tower from %s" % (BASE_DIR, tp), logf)
    nv = sum(p.numel() for p in net.V.parameters())
    log("params: language model %d, tower + aligner %d; %d steps x %d sequences" % (
        sum(p.numel() for p in net.P.parameters()), nv, STEPS, BATCH), logf)
    t0 = time.time()
    stop = STEPS if args.steps is None else min(STEPS, args.steps)
    ema = acc_ema = None
    for step in range(start, stop):
        for gr in opt.param_groups:
            gr["lr"] = lr_at(step) * gr["base"]
        toks, roles, tgt, x, nh, nw = batch_at(P, step)
        stats = {}
        logits, aux = net.forward_vl(toks, roles, x, nh, nw, stats)
        V = logits.shape[-1]
        loss = F.cross_entropy(logits.reshape(-1, V), tgt.reshape(-1), ignore_index=-100)
        idx = torch.stack(aux["idx"]).mean() if aux.get("idx") else torch.zeros(())
        tot = loss + T.IDX_W * idx
        opt.zero_grad(set_to_none=True)
        tot.backward()
        gn = torch.nn.utils.clip_grad_norm_([p for p in net.parameters() if p.requires_grad], CLIP)
        opt.step()
        with torch.no_grad():
            for p_, c in stats.items():
                b = net.raw(p_[:-3] + "gate.bias_vl" if p_.endswith("_vl") else p_ + "gate.bias")
                b += BIAS_RATE * torch.sign(c.mean() - c)
            ok = tgt != -100
            pred = logits.detach().argmax(-1)
            seq_ok = ((pred == tgt) | ~ok).all(-1).float().mean()
        ema = float(loss) if ema is None else 0.9 * ema + 0.1 * float(loss)
        acc_ema = float(seq_ok) if acc_ema is None else 0.9 * acc_ema + 0.1 * float(seq_ok)
        el = elapsed0 + time.time() - t0
        if step % 5 == 0 or step == stop - 1:
            log("step %4d lr x%.2f loss %.4f (ema %.4f) answers right (teacher-forced) %.2f (ema %.2f) idx %.4f "
                "gnorm %.2f %.2fs/step %.0fs" % (step, lr_at(step), float(loss), ema, float(seq_ok), acc_ema,
                                                 float(idx), float(gn), (time.time() - t0) / (step - start + 1), el), logf)
        if (step + 1) % CKPT_EVERY == 0 or step == stop - 1:
            torch.save({"model": net.state_dict(), "opt": opt.state_dict(), "step": step + 1, "elapsed": el},
                       os.path.join(RUN_DIR, "ckpt_%05d.pt" % (step + 1)))
            for f in sorted(os.listdir(RUN_DIR)):
                if f.startswith("ckpt_") and int(f[5:10]) != step + 1:
                    os.remove(os.path.join(RUN_DIR, f))


# ----------------------------------------------------------------------------- export
def hf_config(cfg):
    c = G.hf_config(cfg)
    c["image_token_id"] = IMAGE_ID
    c["vision_config"] = dict(model_type="deepseek_v41_vision", **VCFG.to_hf_vision())
    return c


def cmd_export(args):
    cfg, net = build()
    path = args.ckpt or latest_ckpt()
    ck = torch.load(path)
    net.load_state_dict(ck["model"])
    stored = T.stored_weights(net)
    raw = G.raw_tensors(cfg, stored)
    for name, (shape, dt) in net.vshapes.items():
        t = net.V[name.replace(".", "__")].detach().float()
        raw[name] = (dt, shape, MVG.bf16_bytes(nm.round_bf16(t)) if dt == "BF16"
                     else t.numpy().astype("<f4").tobytes())
    out = args_model()
    os.makedirs(out, exist_ok=True)
    write_safetensors(os.path.join(out, "model.safetensors"), raw, {"format": "pt"})
    if out != OUT_DIR:
        shutil.copyfile(os.path.join(OUT_DIR, "tokenizer.json"), os.path.join(out, "tokenizer.json"))
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(hf_config(cfg), f, indent=1)
        f.write("\n")
    with open(os.path.join(RUN_DIR, "exported.json"), "w") as f:
        json.dump({"ckpt": path, "step": ck["step"], "train_seconds": ck.get("elapsed", 0.0)}, f)
    log("exported %s (step %d) to %s: model.safetensors %d bytes" % (
        path, ck["step"], out, os.path.getsize(os.path.join(out, "model.safetensors"))))


# ----------------------------------------------------------------------------- held-out evaluation
def heldout_items():
    """[(png path, question index, question text, answer text)] of the held-out set (N_HELDOUT images x 3)."""
    d = os.path.join(CACHE, "heldout")
    items = []
    for i in range(N_HELDOUT):
        path = os.path.join(d, "%03d.png" % i)
        im, shape, colour = make_image(HELDOUT_SEED0 + i)
        for q in range(3):
            items.append((path, q, QUESTIONS[q], answer(q, shape, colour), im))
    return items


def cmd_heldout(args):
    d = os.path.join(CACHE, "heldout")
    os.makedirs(d, exist_ok=True)
    for path, q, _, _, im in heldout_items()[::3]:
        with open(path, "wb") as f:
            f.write(png_bytes(im))
    log("%d held-out images in %s" % (N_HELDOUT, d))


def load_ref():
    cfg, cmap = make_cfg()
    path = os.path.join(args_model(), "model.safetensors")
    full = read_safetensors(path)
    orig = G.read_safetensors
    G.read_safetensors = lambda p: {k: v for k, v in full.items() if not k.startswith(("vision.", "aligner."))}
    try:
        W = G.weights_from_file(cfg, path)
    finally:
        G.read_safetensors = orig
    with open(os.path.join(args_model(), "config.json")) as f:
        vc = vis.VisionConfig.from_hf(json.load(f))
    return cfg, cmap, W, vis.load_weights(path, vc), vc


_MODEL = [OUT_DIR]


def args_model():
    return _MODEL[0]


def ref_generate(cfg, cmap, W, vw, vc, png, qids, n_max):
    """Greedy decode in the reference (float32 mode): the prompt ids (with the placeholder) and the image file ->
    generated ids (EOS excluded; stops at EOS or n_max)."""
    x, nh, nw, lh, lw = MVG.patches_of(png, vc)
    _, rows = vis.tower(vw, vc, x, nh, nw, acc=torch.float32)
    pr = M.VLPrompt(qids, IMAGE_ID, [(rows, lh, lw)])
    s = M.Session(cfg, W, dtype=torch.float32, cmap=cmap)
    lg = s.eval_prompt(pr, 0, len(pr.ids))
    out = []
    for _ in range(n_max):
        t = int(torch.argmax(lg))
        if t == EOS:
            break
        out.append(t)
        lg = s.eval([t])
    return out


def cmd_eval_ref(args):
    P = load_prompts()
    cfg, cmap, W, vw, vc = load_ref()
    right, n, per_q, rows = 0, 0, [0, 0, 0], []
    t0 = time.time()
    for path, q, qt, a, _ in heldout_items()[:args.max_items or None]:
        got = ref_generate(cfg, cmap, W, vw, vc, path, P["questions"][q], args.n)
        ok = got == P["answers"][a]
        right += ok
        per_q[q] += ok
        n += 1
        text = subprocess.run([args.dsv4, "detokenize", "--tokenizer", os.path.join(args_model(), "tokenizer.json"),
                               "--ids", " ".join(map(str, got))], stdout=subprocess.PIPE, check=True).stdout.decode(
                                   "utf-8", "replace") if got else ""
        rows.append({"image": os.path.basename(path), "q": q, "want": a, "got_ids": got, "got": text, "ok": ok})
    res = {"items": n, "right": right, "accuracy": right / n, "per_question": [c / (n / 3) for c in per_q],
           "seconds": time.time() - t0, "rows": rows}
    log("reference held-out: %d / %d exact (%.1f%%), per question %s (%.0fs)" % (
        right, n, 100 * right / n, ["%.3f" % v for v in res["per_question"]], res["seconds"]))
    with open(args.json or os.path.join(RUN_DIR, "eval_ref.json"), "w") as f:
        json.dump(res, f, indent=1)


def cmd_eval_c(args):
    right, n, per_q, rows = 0, 0, [0, 0, 0], []
    t0 = time.time()
    for path, q, qt, a, _ in heldout_items()[:args.max_items or None]:
        out = subprocess.run([args.dsv4, "generate", "-m", args_model(), "--image", path, "-p", qt, "-n", str(args.n),
                              "--temp", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True).stdout
        text = out.decode("utf-8")
        head = "<｜deepseek_image｜>\n\n" + qt
        assert text.startswith(head) and text.endswith("\n"), text
        got = text[len(head):-1]
        ok = got == a
        right += ok
        per_q[q] += ok
        n += 1
        rows.append({"image": os.path.basename(path), "q": q, "want": a, "got": got, "ok": ok})
    res = {"items": n, "right": right, "accuracy": right / n, "per_question": [c / (n / 3) for c in per_q],
           "seconds": time.time() - t0, "rows": rows}
    log("C held-out: %d / %d exact (%.1f%%), per question %s (%.0fs)" % (
        right, n, 100 * right / n, ["%.3f" % v for v in res["per_question"]], res["seconds"]))
    with open(args.json or os.path.join(RUN_DIR, "eval_c.json"), "w") as f:
        json.dump(res, f, indent=1)


def main():
    global RUN_DIR
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["tokenizer", "pretrain", "train", "export", "heldout", "eval-ref", "eval-c"])
    ap.add_argument("--dsv4", default=os.path.join(ROOT, "build", "rel", "dsv4"))
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--fresh", action="store_true")
    ap.add_argument("--ckpt", default=None)
    ap.add_argument("--model", default=OUT_DIR)
    ap.add_argument("--n", type=int, default=12, help="eval: at most this many generated tokens")
    ap.add_argument("--max-items", type=int, default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--run-dir", default=None)
    args = ap.parse_args()
    g = globals()
    for kv in args.set:
        k, v = kv.split("=", 1)
        assert k in g and k.isupper(), "unknown constant %s" % k
        g[k] = type(g[k])(v)
    if args.run_dir:
        RUN_DIR = os.path.abspath(args.run_dir)
    _MODEL[0] = os.path.abspath(args.model)
    os.makedirs(RUN_DIR, exist_ok=True)
    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    {"tokenizer": cmd_tokenizer, "pretrain": cmd_pretrain, "train": cmd_train, "export": cmd_export, "heldout": cmd_heldout,
     "eval-ref": cmd_eval_ref, "eval-c": cmd_eval_c}[args.cmd](args)


if __name__ == "__main__":
    main()
