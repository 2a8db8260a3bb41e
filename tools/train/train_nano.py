#!/usr/bin/python3
"""train_nano.py -- train, export, evaluate and sample the built-in nano DeepSeek-V4 model.

    nice /usr/bin/python3 tools/train/train_nano.py train    # train (resumes from the last checkpoint)
    nice /usr/bin/python3 tools/train/train_nano.py export   # export a checkpoint to models/nano
    nice /usr/bin/python3 tools/train/train_nano.py eval     # held-out perplexity of models/nano
    nice /usr/bin/python3 tools/train/train_nano.py sample   # greedy + temperature-0.8 samples
(tools/train/run.sh runs everything: BPE, training, export, eval, sample.)

Model: tools/reference/model.py `Transformer` (the full V4 architecture: mHC with Sinkhorn, CSA with the
lightning indexer, HCA, sliding window, attention sink, grouped low-rank output, hash-routed + biased
sqrt-softplus MoE with FP4 experts and a shared expert, MTP block). Training uses `forward_train`
(straight-through quantization of activations and of weights in their export format, so the exported
FP8/FP4 checkpoint computes what was trained).

Loss = CE(next token) + 0.3 * CE(MTP: token t+2) + indexer KL distillation loss (aux['indexer_loss']).
Router balancing: auxiliary-loss-free (noaux_tc): after each step every non-hash gate's `bias` moves by
BIAS_RATE * sign(mean load - expert load) (loads counted over the step's tokens); the bias only affects
selection, exactly as at inference.

Reproducibility: fixed seeds, one thread, deterministic batches (torch.Generator seeded per step), so the
same command gives the same weights on the same machine/torch build.
"""
import argparse
import json
import math
import os
import sys
import time
from array import array

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tools", "reference"))
import model as ref                                   # noqa: E402
from model import Config, Transformer, Session       # noqa: E402
from safetensors_io import save_checkpoint           # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import trainlib                                      # noqa: E402

CACHE = os.path.join(HERE, "cache")
RUN_DIR = os.path.join(HERE, "runs", "nano")
OUT_DIR = os.path.join(ROOT, "models", "nano")

# ----------------------------------------------------------------------------- configuration
SEQ = 256           # training sequence length (> window 128, = 2 HCA blocks)
BATCH = 4           # sequences per step
STEPS = 600         # optimizer steps
LR = 1e-3           # peak AdamW learning rate
LR_MIN_FRAC = 0.1   # cosine decay to LR * LR_MIN_FRAC
WARMUP = 40
WD = 0.05
CLIP = 1.0
MTP_W = 0.3
IDX_W = 0.1
BIAS_RATE = 1e-2
SEED = 1234
CKPT_EVERY = 50


def model_config(vocab_size):
    """HF config of the nano model (all V4 features; see tools/train/README.md)."""
    return dict(
        vocab_size=vocab_size, hidden_size=128, num_hidden_layers=4,
        compress_ratios=[0, 4, 128, 4, 0],            # window, CSA, HCA, CSA; MTP block window-only
        num_attention_heads=4, num_key_value_heads=1, head_dim=128, qk_rope_head_dim=64,
        q_lora_rank=128, o_groups=2, o_lora_rank=64,
        n_routed_experts=8, num_experts_per_tok=2, n_shared_experts=1, moe_intermediate_size=128,
        num_hash_layers=1, scoring_func="sqrtsoftplus", topk_method="noaux_tc", norm_topk_prob=True,
        routed_scaling_factor=1.5, swiglu_limit=10.0, hidden_act="silu",
        sliding_window=128, index_n_heads=4, index_head_dim=128, index_topk=8,
        hc_mult=4, hc_sinkhorn_iters=20, hc_eps=1e-6, rms_norm_eps=1e-6,
        rope_theta=10000.0, compress_rope_theta=160000.0,
        rope_scaling={"type": "yarn", "factor": 16, "original_max_position_embeddings": 65536,
                      "beta_fast": 32, "beta_slow": 1},
        max_position_embeddings=1048576, num_nextn_predict_layers=1, tie_word_embeddings=False,
        bos_token_id=0, eos_token_id=1, expert_dtype="fp4", initializer_range=0.02,
    )


log = trainlib.log


def load_u16(name):
    a = array("H")
    with open(os.path.join(CACHE, name + ".u16"), "rb") as f:
        a.frombytes(f.read())
    if sys.byteorder != "little":
        a.byteswap()
    return torch.tensor(a, dtype=torch.int64)


def load_meta():
    p = os.path.join(CACHE, "meta.json")
    if not os.path.exists(p):
        sys.exit("no token cache: run tools/train/train_bpe.py first")
    with open(p) as f:
        return json.load(f)


# ----------------------------------------------------------------------------- training
def param_groups(model):
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        if n.endswith("gate.bias"):
            continue                                    # updated by the balancing rule, not by AdamW
        if p.dim() >= 2 and not n.endswith("_fn") and "ape" not in n:
            decay.append(p)
        else:
            no_decay.append(p)
    return [{"params": decay, "weight_decay": WD}, {"params": no_decay, "weight_decay": 0.0}]


class LoadCounter:
    """Forward hooks on non-hash MoE layers counting expert selections (same rule as MoE.forward)."""

    def __init__(self, model):
        self.mods = [m for m in model.modules() if isinstance(m, ref.MoE) and not m.gate.hash]
        self.counts = {id(m): torch.zeros(m.cfg.n_experts) for m in self.mods}
        for m in self.mods:
            m.register_forward_hook(self.hook)

    def hook(self, mod, inputs, output):
        if not ref.CTX.train:
            return
        with torch.no_grad():
            x = inputs[0].detach().reshape(-1, inputs[0].shape[-1])
            lg = torch.matmul(x, ref.nm.round_bf16(mod.gate.weight.detach()).t())
            s = torch.sqrt(F.softplus(lg)) + mod.gate.bias.detach()
            ids = s.topk(mod.cfg.topk, dim=-1)[1].reshape(-1)
            self.counts[id(mod)] += torch.bincount(ids, minlength=mod.cfg.n_experts).to(torch.float32)

    def update(self):
        """Apply the bias rule; return the max/mean load ratio over layers (balance diagnostic)."""
        worst = 0.0
        with torch.no_grad():
            for m in self.mods:
                c = self.counts[id(m)]
                if c.sum() > 0:
                    m.gate.bias += BIAS_RATE * torch.sign(c.mean() - c)
                    worst = max(worst, float(c.max() / c.mean()))
                c.zero_()
        return worst


def lr_at(step):
    return trainlib.cosine_lr(step, LR, WARMUP, STEPS, LR_MIN_FRAC)


def batch_at(data, step):
    return trainlib.random_windows(data, step, SEED, SEQ, BATCH)[0]


def losses(model, toks):
    logits, aux = model.forward_train(toks)
    V = logits.shape[-1]
    lm = F.cross_entropy(logits[:, :-1].reshape(-1, V), toks[:, 1:].reshape(-1))
    mtp = F.cross_entropy(aux["mtp_logits"][:, :-2].reshape(-1, V), toks[:, 2:].reshape(-1))
    idx = aux["indexer_loss"]
    return lm, mtp, idx


def build_model(meta):
    cfg = Config(**model_config(meta["vocab_size"]))
    torch.manual_seed(SEED)
    m = Transformer(cfg)
    m.init_weights(seed=SEED, std=0.02)
    with torch.no_grad():   # residual-friendly output scaling of the sublayer output projections
        L = cfg.n_layers + cfg.n_mtp
        for n, p in m.named_parameters():
            if n.endswith("wo_b.weight") or n.endswith(".w2.weight"):
                p.mul_(1.0 / math.sqrt(2 * L))
    return cfg, m


def ckpt_path(step):
    return os.path.join(RUN_DIR, "ckpt_%05d.pt" % step)


def latest_ckpt():
    return trainlib.latest_ckpt(RUN_DIR)


def cmd_train(args):
    meta = load_meta()
    train = load_u16("train")
    val = load_u16("val")
    os.makedirs(RUN_DIR, exist_ok=True)
    logf = open(os.path.join(RUN_DIR, "train.log"), "a")
    cfg, model = build_model(meta)
    counter = LoadCounter(model)
    opt = torch.optim.AdamW(param_groups(model), lr=LR, betas=(0.9, 0.95), eps=1e-8)
    path, start = latest_ckpt()
    elapsed0 = 0.0
    if path and not args.fresh:
        elapsed0 = trainlib.load_ckpt(path, model, opt)
        log("resumed %s (step %d, %.0fs trained)" % (path, start, elapsed0), logf)
    else:
        start = 0
    nparam = sum(p.numel() for p in model.parameters())
    log("config %s" % json.dumps(model_config(meta["vocab_size"])), logf)
    log("params %d, train tokens %d, steps %d x %d x %d" % (nparam, train.numel(), STEPS, BATCH, SEQ), logf)
    t0 = time.time()
    stop = STEPS if args.steps is None else min(STEPS, args.steps)
    ema = None
    for step in range(start, stop):
        for gr in opt.param_groups:
            gr["lr"] = lr_at(step)
        toks = batch_at(train, step)
        model.train()
        lm, mtp, idx = losses(model, toks)
        loss = lm + MTP_W * mtp + IDX_W * idx
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        opt.step()
        imb = counter.update()
        ema = float(lm) if ema is None else 0.95 * ema + 0.05 * float(lm)
        el = elapsed0 + time.time() - t0
        if step % 10 == 0 or step == stop - 1:
            log("step %5d lr %.2e lm %.4f (ema %.4f) mtp %.4f idx %.4f gnorm %.2f imb %.2f  %.1fs/step  %.0fs"
                % (step, lr_at(step), float(lm), ema, float(mtp), float(idx), float(gn), imb,
                   (time.time() - t0) / (step - start + 1), el), logf)
        if (step + 1) % CKPT_EVERY == 0 or step == stop - 1:
            with torch.no_grad():
                vl = []
                for i in range(2):
                    o = i * 4096
                    vt = val[o:o + SEQ].unsqueeze(0)
                    lm_v, _, _ = losses(model, vt)
                    vl.append(float(lm_v))
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step + 1,
                        "elapsed": el}, ckpt_path(step + 1))
            for f in sorted(os.listdir(RUN_DIR)):
                if f.startswith("ckpt_") and f != os.path.basename(ckpt_path(step + 1)) and \
                        int(f[5:10]) % 100 != 0:
                    os.remove(os.path.join(RUN_DIR, f))
            log("checkpoint step %d, quick val lm %.4f (ppl %.2f), %.0fs" % (step + 1, sum(vl) / len(vl),
                                                                           math.exp(sum(vl) / len(vl)), el), logf)
            with open(os.path.join(RUN_DIR, "progress.json"), "w") as f:
                json.dump({"step": step + 1, "elapsed_s": el}, f)


def cmd_export(args):
    meta = load_meta()
    cfg, model = build_model(meta)
    path, step = latest_ckpt() if args.ckpt is None else (args.ckpt, -1)
    ck = torch.load(path)
    model.load_state_dict(ck["model"])
    save_checkpoint(model.state_dict(), cfg, OUT_DIR)
    info = {"step": ck["step"], "train_seconds": ck.get("elapsed", 0.0)}
    with open(os.path.join(RUN_DIR, "exported.json"), "w") as f:
        json.dump(info, f)
    log("exported %s (step %d) to %s: model.safetensors %d bytes" %
        (path, ck["step"], OUT_DIR, os.path.getsize(os.path.join(OUT_DIR, "model.safetensors"))))


def heldout_ppl(model, ids, window, max_tokens=None):
    """The evaluation protocol (tools/train/README.md): non-overlapping windows of `window` tokens over
    the held-out ids, the last partial window included if >= 2 tokens; each window in a fresh Session
    (one prefill); every position i < len-1 predicts token i+1; ppl = exp(mean NLL)."""
    if max_tokens is not None:
        ids = ids[:max_tokens]
    n = ids.numel()
    nll, cnt = 0.0, 0
    for w0 in range(0, n, window):
        w = ids[w0:w0 + window].tolist()
        if len(w) < 2:
            break
        s = Session(model, dtype=torch.float32)
        s.eval(w)
        with torch.no_grad():
            lg = model.logits_from_state(s.states)[0].to(torch.float64)          # [L, V]
        lp = torch.log_softmax(lg[:-1], -1)
        tgt = torch.tensor(w[1:])
        nll -= float(lp.gather(1, tgt[:, None]).sum())
        cnt += len(w) - 1
    return math.exp(nll / cnt), nll / cnt, cnt, n


def cmd_eval(args):
    torch.set_num_threads(1)
    model = Transformer.from_dir(OUT_DIR)
    model.eval()
    ids = load_u16("val")
    t0 = time.time()
    ppl, mnll, cnt, n = heldout_ppl(model, ids, args.window, args.max_tokens)
    dt = time.time() - t0
    res = {"tokens": n, "predictions": cnt, "window": args.window, "mean_nll": mnll, "ppl": ppl,
           "eval_seconds": dt}
    os.makedirs(RUN_DIR, exist_ok=True)
    with open(os.path.join(RUN_DIR, "eval.json"), "w") as f:
        json.dump(res, f, indent=1)
    log("held-out: tokens %d, predictions %d, window %d, mean NLL %.6f, perplexity %.4f (%.0fs)"
        % (n, cnt, args.window, mnll, ppl, dt))


def cmd_sample(args):
    sys.path.insert(0, HERE)
    from train_bpe import BPE, PreTokenizer
    torch.set_num_threads(1)
    with open(os.path.join(OUT_DIR, "tokenizer.json"), encoding="utf-8") as f:
        tj = json.load(f)
    bpe = BPE(tj["model"]["vocab"], [tuple(m.split(" ")) for m in tj["model"]["merges"]],
              PreTokenizer(tj["pre_tokenizer"]))
    model = Transformer.from_dir(OUT_DIR)
    model.eval()
    out = {}
    for temp in (0.0, 0.8):
        prompt = bpe.encode(args.prompt)
        s = Session(model, dtype=torch.float32)
        lg = s.eval(prompt)
        g = torch.Generator().manual_seed(args.seed)
        gen = []
        for _ in range(args.n):
            if temp == 0:
                t = int(lg.argmax())
            else:
                t = int(torch.multinomial(torch.softmax(lg.double() / temp, -1), 1, generator=g))
            gen.append(t)
            lg = s.eval([t])
        text = bpe.decode(prompt + gen)
        out["greedy" if temp == 0 else "temperature_%.1f" % temp] = text
        print("=== %s ===\n%s\n" % ("greedy" if temp == 0 else "temperature %.1f, seed %d" % (temp, args.seed),
                                    text), flush=True)
    with open(os.path.join(RUN_DIR, "samples.json"), "w") as f:
        json.dump({"prompt": args.prompt, "n": args.n, "seed": args.seed, "samples": out}, f, indent=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["train", "export", "eval", "sample"])
    ap.add_argument("--steps", type=int, default=None, help="stop after this step (default: all STEPS)")
    ap.add_argument("--fresh", action="store_true", help="ignore existing checkpoints")
    ap.add_argument("--ckpt", default=None)
    ap.add_argument("--window", type=int, default=256)
    ap.add_argument("--max-tokens", type=int, default=None)
    ap.add_argument("--prompt", default="ROMEO:\n")
    ap.add_argument("--n", type=int, default=120)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="override a training constant (experiments only), e.g. --set LR=1e-3")
    ap.add_argument("--run-dir", default=None, help="checkpoint/log directory (default tools/train/runs/nano)")
    args = ap.parse_args()
    g = globals()
    trainlib.apply_sets(g, args.set)
    if args.run_dir:
        g["RUN_DIR"] = os.path.abspath(args.run_dir)
    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    {"train": cmd_train, "export": cmd_export, "eval": cmd_eval, "sample": cmd_sample}[args.cmd](args)


if __name__ == "__main__":
    main()
