"""tools/train/trainlib.py — the run-directory helpers every trainer here shares (train_nano.py,
train_nano_chat.py, train_nano_v41.py): timestamped logging, finding the latest checkpoint of a run, resuming
weights and optimizer state from it. Pure Python + torch; no model code."""
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
