"""Self-test of the reference (about 10 s):  nice /usr/bin/python3 tools/reference/selftest.py

1. numerics: E4M3 table round trip, BF16 rounding vs the generic grid rounding, E2M1 ties.
2. schedule invariance: in float64, one prefill, decode from token 0 and odd chunkings give bit-identical
   logits (incl. MTP) on a model with window / CSA / HCA(ratio 8) layers and a short window (16).
3. export: forward_train (STE) logits == Session logits of the saved (2 shards) and reloaded checkpoint;
   gradients reach every trainable tensor that the sequence uses.
"""
import os
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import numerics as nm                                     # noqa: E402
from model import Config, Transformer, Session            # noqa: E402
from safetensors_io import save_checkpoint                # noqa: E402

torch.set_num_threads(1)
fails = 0


def check(cond, what):
    global fails
    print(("ok   " if cond else "FAIL ") + what)
    fails += 0 if cond else 1


t = nm.e4m3_decode_table(torch.float64)
ok = ~torch.isnan(t)
check(torch.equal(nm.e4m3_encode(t[ok]).to(torch.int64), torch.arange(256)[ok]), "e4m3 encode(decode(b)) == b")
x = torch.randn(10000) * 3
check(torch.equal(nm.round_bf16(x), nm.round_grid(x.double(), 7, -126).float()), "bf16 rounding == grid rounding")
check(nm.round_e2m1(torch.tensor([5.0, 2.5, 0.25, 0.75])).tolist() == [4.0, 2.0, 0.0, 1.0], "e2m1 ties to even")

cfg = Config(vocab_size=256, hidden_size=128, num_hidden_layers=3, num_attention_heads=2, head_dim=128,
             q_lora_rank=64, o_groups=2, o_lora_rank=64, moe_intermediate_size=32, n_routed_experts=4,
             num_experts_per_tok=2, num_hash_layers=1, index_n_heads=4, index_head_dim=128, index_topk=3,
             compress_ratios=[4, 8, 4, 0], sliding_window=16)
m = Transformer(cfg)
m.init_weights(1, std=0.05)
toks = torch.randint(0, 256, (70,), generator=torch.Generator().manual_seed(0)).tolist()
d = tempfile.mkdtemp()
save_checkpoint(m.state_dict(), cfg, d, shards=2)
mr = Transformer.from_dir(d)
ref = Session(mr, torch.float64)
a = ref.eval(toks)
am = ref.eval_mtp(7)
for sched in ([1] * 70, [1, 2, 3, 1, 5, 7, 1, 1, 49], [3, 1, 1, 1, 64]):
    s = Session(mr, torch.float64)
    p = 0
    for c in sched:
        b = s.eval(toks[p:p + c])
        p += c
    check(torch.equal(a, b) and torch.equal(am, s.eval_mtp(7)), "schedule %s... == one prefill (f64)" % sched[:6])

m32 = Transformer.from_dir(d)
s32 = Session(m32, torch.float32)
a32 = s32.eval(toks)
lg, aux = m.forward_train(torch.tensor([toks, toks]))
check(torch.equal(lg[0, -1].detach(), a32) and torch.equal(lg[1, -1].detach(), a32),
      "forward_train == Session on the exported checkpoint (f32)")
s_m = Session(m32, torch.float32)
s_m.eval(toks[:-1])
check(torch.equal(aux["mtp_logits"][0, -2].detach(), s_m.eval_mtp(toks[-1])),
      "forward_train mtp_logits == Session.eval_mtp (f32)")
loss = torch.nn.functional.cross_entropy(lg[:, :-1].reshape(-1, 256), torch.tensor([toks, toks])[:, 1:].reshape(-1))
(loss + aux["indexer_loss"] + aux["mtp_logits"].logsumexp(-1).mean()).backward()
nog = [n for n, p in m.named_parameters() if (p.grad is None or p.grad.abs().sum() == 0) and not n.endswith("gate.bias")]
check(not nog, "gradients reach all parameters except gate.bias (missing: %s)" % nog)
print("%d failed" % fails)
sys.exit(1 if fails else 0)
