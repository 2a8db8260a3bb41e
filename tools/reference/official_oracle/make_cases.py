"""Tiny checkpoints that satisfy the official code's block-size assumptions (every FP8/FP4 GEMM input
width a multiple of 128), built with tools/reference/make_goldens.py's machinery (shaped_init,
margin-checked token generation, save_checkpoint).  Written to /tmp/oracle_cases/<name>/ (config.json,
model.safetensors, golden.json with tokens only) -- NOT into tests/golden.

    nice /usr/bin/python3 tools/reference/official_oracle/make_cases.py [--out DIR] [--only a,b]
"""
import argparse
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import make_goldens as mg                      # noqa: E402
from model import Config, Transformer          # noqa: E402
from safetensors_io import save_checkpoint     # noqa: E402

# like make_goldens.CASES["flash"/"pro"/"window"] but q_lora_rank, moe_intermediate_size, o_groups*o_lora
# multiples of 128
CASES = {
    "flash128": (mg.base_cfg(num_hidden_layers=4, compress_ratios=[0, 0, 4, 128, 0], num_hash_layers=2,
                             o_groups=2, index_topk=16, q_lora_rank=128, moe_intermediate_size=128),
                 270, 11),
    "pro128": (mg.base_cfg(num_hidden_layers=4, compress_ratios=[128, 128, 4, 128, 0], num_hash_layers=1,
                           num_attention_heads=4, o_groups=1, o_lora_rank=128, index_topk=24, q_lora_rank=128,
                           moe_intermediate_size=128, routed_scaling_factor=2.5), 262, 22),
    "window128": (mg.base_cfg(num_hidden_layers=3, compress_ratios=[0, 0, 0, 0], num_hash_layers=2, o_groups=2,
                              q_lora_rank=128, moe_intermediate_size=128), 190, 33),
    # make_goldens "flash" config as is (q_lora 64, moe_inter 32): outside the official block-size
    # assumptions -> compare.py runs it with stand_ins.STRICT = False
    "flash_small": (mg.CASES["flash"][0], 140, 11),
}


def make(name, out):
    kw, T, seed = CASES[name]
    cfg = Config(**kw)
    m = Transformer(cfg)
    mg.shaped_init(m, seed)
    d = os.path.join(out, name)
    save_checkpoint(m.state_dict(), cfg, d)
    m64 = Transformer.from_dir(d)
    g = torch.Generator().manual_seed(seed + 1000)
    import inspect
    if "m32" in inspect.signature(mg.gen_tokens).parameters:
        toks, _, redraws = mg.gen_tokens(m64, Transformer.from_dir(d), cfg, T, g)[:3]
    else:
        toks, _, redraws = mg.gen_tokens(m64, cfg, T, g)[:3]
    with open(os.path.join(d, "golden.json"), "w") as f:
        json.dump({"tokens": toks, "note": "tokens only (official_oracle/make_cases.py)"}, f)
    print("%s: %d tokens (%d re-draws) -> %s" % (name, T, redraws, d))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/tmp/oracle_cases")
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    torch.set_num_threads(1)
    for n in CASES:
        if not a.only or n in a.only.split(","):
            make(n, a.out)


if __name__ == "__main__":
    main()
