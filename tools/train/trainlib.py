"""tools/train/trainlib.py — the run-directory helpers every trainer here shares (train_nano.py,
train_nano_chat.py, train_nano_v41.py): timestamped logging, finding the latest checkpoint of a run, resuming
weights and optimizer state from it. Pure Python + torch; no model code."""
import math
import os
import time

import torch


def log(msg, f=None):
    """Print '[HH:MM:SS] msg' and append it to the open log file f (if any), flushed."""
    line = "[%s] %s" % (time.strftime("%H:%M:%S"), msg)
    print(line, flush=True)
    if f is not None:
        f.write(line + "\n")
        f.flush()


def latest_ckpt(run_dir):
    """(path, step) of the newest run_dir/ckpt_NNNNN.pt, or (None, 0) when there is none."""
    if not os.path.isdir(run_dir):
        return None, 0
    c = sorted(f for f in os.listdir(run_dir) if f.startswith("ckpt_") and f.endswith(".pt"))
    return (os.path.join(run_dir, c[-1]), int(c[-1][5:10])) if c else (None, 0)


def load_ckpt(path, model, opt):
    """Load a checkpoint's model and optimizer state in place; returns its training seconds so far (0 if absent)."""
    ck = torch.load(path)
    model.load_state_dict(ck["model"])
    opt.load_state_dict(ck["opt"])
    return ck.get("elapsed", 0.0)


def cosine_lr(step, lr, warmup, steps, min_frac):
    """The learning rate at step (0-based): linear warmup over `warmup` steps to lr, then a half cosine from lr
    down to lr * min_frac at step `steps` (held there after)."""
    if step < warmup:
        return lr * (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return lr * (min_frac + (1 - min_frac) * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def random_windows(data, step, seed, seq, batch):
    """(tokens [batch, seq], generator): `batch` windows of `seq` tokens at uniform random offsets of the 1-D token
    tensor data, drawn from a generator seeded by (seed, step) alone, so a resumed run sees the same batches; the
    generator is returned in the state after the draw (for callers that draw more from it)."""
    g = torch.Generator().manual_seed(seed * 1000003 + step)
    off = torch.randint(0, data.numel() - seq, (batch,), generator=g)
    return torch.stack([data[o:o + seq] for o in off.tolist()]), g


def apply_sets(g, sets):
    """Apply command-line `--set NAME=VALUE` overrides to the module globals g: NAME must be an existing
    upper-case constant; VALUE is converted to that constant's type."""
    for kv in sets:
        k, v = kv.split("=", 1)
        assert k in g and k.isupper(), "unknown constant %s" % k
        g[k] = type(g[k])(v)
