#!/usr/bin/python3
"""train_nano_chat.py -- train, export and evaluate the built-in chat model models/nano-chat.

    nice /usr/bin/python3 tools/train/train_nano_chat.py train    # resumes from the last checkpoint
    nice /usr/bin/python3 tools/train/train_nano_chat.py export   # -> models/nano-chat (config + safetensors)
    nice /usr/bin/python3 tools/train/train_nano_chat.py eval     # held-out assistant-token loss (reference)
    nice /usr/bin/python3 tools/train/train_nano_chat.py copyloss # CE on copied digits vs the rest (diagnostic)
(tools/train/run_chat.sh runs everything, data and tokenizer included: tools/train/make_chat_data.py.)

Same model code, architecture family, optimizer, quantization-aware training (straight-through FP8/FP4),
router bias rule and export as train_nano.py (imported from there); differences:
  * data: the rendered V4-format conversations of make_chat_data.py (cache/nano-chat), packed first-fit
    (longest first) into rows of SEQ tokens, each conversation starting with its BOS; the rest of a row is
    EOS padding with weight 0. Rows are shuffled once (seed) and consumed BATCH per step, epoch after epoch.
  * loss: per-token weighted CE: 1 on the tokens the assistant generates (make_chat_data's mask), PROMPT_W
    on the other real tokens (system/user/tool text), 0 on padding; the MTP CE uses the weight of its target
    (token t+2); + IDX_W * indexer KL as for nano.
"""
import argparse
import json
import math
import os
import random
import sys
import time
from array import array

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import train_nano as tn                               # noqa: E402
from train_nano import log, Transformer, save_checkpoint  # noqa: E402

CACHE = os.path.join(HERE, "cache", "nano-chat")
RUN_DIR = os.path.join(HERE, "runs", "nano-chat")
OUT_DIR = os.path.join(ROOT, "models", "nano-chat")

SEQ = 512
BATCH = 2
STEPS = 520
LR = 1.5e-3
WARMUP = 40
PROMPT_W = 0.1
SEED = 4321
CKPT_EVERY = 50


def load_split(name):
    ids, off = array("H"), array("I")
    with open(os.path.join(CACHE, name + ".u16"), "rb") as f:
        ids.frombytes(f.read())
    with open(os.path.join(CACHE, name + ".off"), "rb") as f:
        off.frombytes(f.read())
    with open(os.path.join(CACHE, name + ".mask"), "rb") as f:
        mask = f.read()
    if sys.byteorder != "little":
        ids.byteswap()
        off.byteswap()
    return ids, mask, off


def pack_rows(name, eos):
    """(tokens [R, SEQ], weights [R, SEQ], has_tool [R]): conversations packed first-fit, longest first."""
    ids, mask, off = load_split(name)
    convs = [(off[k], off[k + 1]) for k in range(len(off) - 1)]
    convs.sort(key=lambda c: (-(c[1] - c[0]), c[0]))
    rows = []          # [used, [conv...]]
    for c in convs:
        n = min(c[1] - c[0], SEQ)
        for r in rows:
            if r[0] + n <= SEQ:
                r[0] += n
                r[1].append(c)
                break
        else:
            rows.append([n, [c]])
    toks = torch.full((len(rows), SEQ), eos, dtype=torch.int64)
    wts = torch.zeros((len(rows), SEQ), dtype=torch.float32)
    for i, (_, cs) in enumerate(rows):
        p = 0
        for a, b in cs:
            b = min(b, a + SEQ)
            toks[i, p:p + b - a] = torch.tensor(ids[a:b], dtype=torch.int64)
            wts[i, p:p + b - a] = torch.tensor([1.0 if m else PROMPT_W for m in mask[a:b]])
            p += b - a
    return toks, wts, tool_rows(toks)


def tool_rows(toks):
    """Indices of the rows that hold a DSML tool call (the `｜DSML｜` token)."""
    with open(os.path.join(ROOT, "models", "nano-chat", "tokenizer.json"), encoding="utf-8") as f:
        dsml = [t["id"] for t in json.load(f)["added_tokens"] if t["content"] == "｜DSML｜"][0]
    return [i for i in range(toks.shape[0]) if bool((toks[i] == dsml).any())]


def weighted_losses(model, toks, wts):
    logits, aux = model.forward_train(toks)
    V = logits.shape[-1]
    w1 = wts[:, 1:].reshape(-1)
    lm_all = F.cross_entropy(logits[:, :-1].reshape(-1, V), toks[:, 1:].reshape(-1), reduction="none")
    lm = (lm_all * w1).sum() / w1.sum()
    w2 = wts[:, 2:].reshape(-1)
    mtp_all = F.cross_entropy(aux["mtp_logits"][:, :-2].reshape(-1, V), toks[:, 2:].reshape(-1), reduction="none")
    mtp = (mtp_all * w2).sum() / w2.sum()
    # assistant-only LM loss (diagnostic; weight exactly 1)
    a = (w1 == 1.0).float()
    asst = (lm_all.detach() * a).sum() / a.sum().clamp(min=1)
    return lm, mtp, aux["indexer_loss"], asst


def setup():
    with open(os.path.join(CACHE, "meta.json")) as f:
        meta = json.load(f)
    for k in ("SEQ", "BATCH", "STEPS", "LR", "WARMUP", "SEED"):
        setattr(tn, k, globals()[k])          # lr_at / build_model read train_nano's globals
    return meta


def ckpt_path(step):
    return os.path.join(RUN_DIR, "ckpt_%05d.pt" % step)


def latest_ckpt():
    return tn.trainlib.latest_ckpt(RUN_DIR)


def cmd_train(args):
    meta = setup()
    eos = 1
    rows, wts, trows = pack_rows("train", eos)
    vrows, vwts, _ = pack_rows("val", eos)
    os.makedirs(RUN_DIR, exist_ok=True)
    logf = open(os.path.join(RUN_DIR, "train.log"), "a")
    cfg, model = tn.build_model(meta)
    counter = tn.LoadCounter(model)
    opt = torch.optim.AdamW(tn.param_groups(model), lr=LR, betas=(0.9, 0.95), eps=1e-8)
    path, start = latest_ckpt()
    elapsed0 = 0.0
    if path is None and args.init and not args.fresh:
        path, start = args.init, 0     # continued training: weights + optimizer state, a new schedule from 0
    if path and not args.fresh:
        elapsed0 = tn.trainlib.load_ckpt(path, model, opt)
        elapsed0 = elapsed0 if start else 0.0
        log("%s %s (step %d, %.0fs trained)" % ("resumed" if start else "initialized from", path, start,
                                                elapsed0), logf)
    else:
        start = 0
    nparam = sum(p.numel() for p in model.parameters())
    log("params %d; train rows %d x %d (%d real tokens; %d with a tool call), val rows %d; steps %d x %d"
        % (nparam, rows.shape[0], SEQ, int((wts > 0).sum()), len(trows), vrows.shape[0], STEPS, BATCH), logf)
    t0 = time.time()
    stop = STEPS if args.steps is None else min(STEPS, args.steps)
    ema = None
    for step in range(start, stop):
        for gr in opt.param_groups:
            gr["lr"] = tn.lr_at(step)
        ep, k = divmod(step * BATCH, rows.shape[0])
        perm = list(range(rows.shape[0]))
        random.Random(SEED * 7919 + ep).shuffle(perm)
        sel = [perm[(k + j) % rows.shape[0]] for j in range(BATCH)]
        model.train()
        lm, mtp, idx, asst = weighted_losses(model, rows[sel], wts[sel])
        loss = lm + tn.MTP_W * mtp + tn.IDX_W * idx
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), tn.CLIP)
        opt.step()
        imb = counter.update()
        ema = float(asst) if ema is None else 0.95 * ema + 0.05 * float(asst)
        el = elapsed0 + time.time() - t0
        if step % 10 == 0 or step == stop - 1:
            log("step %5d lr %.2e lm %.4f asst %.4f (ema %.4f) mtp %.4f idx %.4f gnorm %.2f imb %.2f  %.1fs/step  %.0fs"
                % (step, tn.lr_at(step), float(lm), float(asst), ema, float(mtp), float(idx), float(gn), imb,
                   (time.time() - t0) / (step - start + 1), el), logf)
        if (step + 1) % CKPT_EVERY == 0 or step == stop - 1:
            with torch.no_grad():
                _, _, _, va = weighted_losses(model, vrows[:2], vwts[:2])
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step + 1,
                        "elapsed": el}, ckpt_path(step + 1))
            for f in sorted(os.listdir(RUN_DIR)):
                if f.startswith("ckpt_") and f != os.path.basename(ckpt_path(step + 1)) and \
                        int(f[5:10]) % 100 != 0:
                    os.remove(os.path.join(RUN_DIR, f))
            log("checkpoint step %d, quick val assistant loss %.4f, %.0fs" % (step + 1, float(va), el), logf)
            with open(os.path.join(RUN_DIR, "progress.json"), "w") as f:
                json.dump({"step": step + 1, "elapsed_s": el}, f)


def cmd_export(args):
    meta = setup()
    cfg, model = tn.build_model(meta)
    path, _ = latest_ckpt() if args.ckpt is None else (args.ckpt, -1)
    ck = torch.load(path)
    model.load_state_dict(ck["model"])
    save_checkpoint(model.state_dict(), cfg, OUT_DIR)
    os.makedirs(RUN_DIR, exist_ok=True)
    with open(os.path.join(RUN_DIR, "exported.json"), "w") as f:
        json.dump({"step": ck["step"], "train_seconds": ck.get("elapsed", 0.0)}, f)
    log("exported %s (step %d) to %s: model.safetensors %d bytes" %
        (path, ck["step"], OUT_DIR, os.path.getsize(os.path.join(OUT_DIR, "model.safetensors"))))


def cmd_eval(args):
    """Held-out assistant-token loss of the EXPORTED checkpoint (dequantized, float32): every val
    conversation evaluated alone from position 0 (no packing); mean CE over its assistant tokens."""
    setup()
    model = Transformer.from_dir(OUT_DIR)
    model.eval()
    ids, mask, off = load_split("val")
    nll, cnt, t0 = 0.0, 0, time.time()
    with torch.no_grad():
        for k in range(min(len(off) - 1, args.max_conv or len(off))):
            a, b = off[k], min(off[k + 1], off[k] + SEQ)
            x = torch.tensor([ids[a:b]], dtype=torch.int64)
            s = tn.Session(model, dtype=torch.float32)
            s.eval(x[0].tolist())
            lg = model.logits_from_state(s.states)[0].to(torch.float64)
            lp = torch.log_softmax(lg[:-1], -1).gather(1, x[0, 1:, None])[:, 0]
            m = torch.tensor([float(v) for v in mask[a + 1:b]], dtype=torch.float64)
            nll -= float((lp * m).sum())
            cnt += int(m.sum())
    res = {"conversations": min(len(off) - 1, args.max_conv or len(off)), "assistant_tokens": cnt, "mean_nll": nll / cnt,
           "ppl": math.exp(nll / cnt), "eval_seconds": time.time() - t0}
    with open(os.path.join(RUN_DIR, "eval.json"), "w") as f:
        json.dump(res, f, indent=1)
    log("held-out assistant tokens: %s" % json.dumps(res))


def cmd_copyloss(args):
    """Teacher-forced CE of a training checkpoint (--ckpt, default the run's latest) on the assistant tokens
    of the first --max-conv (default 60) held-out conversations of --cache, split into digit tokens (the
    byte tokens '0'..'9': operands copied from the question, results copied from the tool result) and the
    rest; a model that copies has a digit CE well below ln 10 = 2.30."""
    meta = setup()
    cfg, model = tn.build_model(meta)
    path = args.ckpt or latest_ckpt()[0]
    model.load_state_dict(torch.load(path)["model"])
    model.eval()
    with open(os.path.join(ROOT, meta["tokenizer"]), encoding="utf-8") as f:
        vocab = json.load(f)["model"]["vocab"]
    digits = {vocab[c] for c in "0123456789"}
    ids, mask, off = load_split("val")
    tot = {"digit": [0.0, 0], "other": [0.0, 0]}
    with torch.no_grad():
        for k in range(min(len(off) - 1, args.max_conv or 60)):
            a, b = off[k], min(off[k + 1], off[k] + SEQ)
            x = torch.tensor([ids[a:b]], dtype=torch.int64)
            ce = F.cross_entropy(model.forward_train(x)[0][0, :-1], x[0, 1:], reduction="none")
            for i in range(1, b - a):
                if mask[a + i]:
                    t = tot["digit" if ids[a + i] in digits else "other"]
                    t[0] += float(ce[i - 1])
                    t[1] += 1
    log("%s: assistant digit tokens CE %.3f (%d), other assistant tokens CE %.3f (%d)" % (
        path, tot["digit"][0] / max(1, tot["digit"][1]), tot["digit"][1], tot["other"][0] / max(1, tot["other"][1]),
        tot["other"][1]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["train", "export", "eval", "copyloss"])
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--fresh", action="store_true")
    ap.add_argument("--ckpt", default=None)
    ap.add_argument("--max-conv", type=int, default=None, help="eval: only the first N held-out conversations")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--run-dir", default=None)
    ap.add_argument("--cache", default=None, help="data cache (default cache/nano-chat)")
    ap.add_argument("--init", default=None, metavar="CKPT",
                    help="train: when the run dir has no checkpoint, start from CKPT's weights and optimizer "
                         "state at step 0 of this run's schedule (continued training)")
    ap.add_argument("--out", default=None, help="export / eval: model dir (default models/nano-chat)")
    args = ap.parse_args()
    g = globals()
    tn.trainlib.apply_sets(g, args.set)
    if args.run_dir:
        g["RUN_DIR"] = os.path.abspath(args.run_dir)
    if args.cache:
        g["CACHE"] = os.path.abspath(args.cache)
    if args.out:
        g["OUT_DIR"] = os.path.abspath(args.out)
    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    {"train": cmd_train, "export": cmd_export, "eval": cmd_eval, "copyloss": cmd_copyloss}[args.cmd](args)


if __name__ == "__main__":
    main()
