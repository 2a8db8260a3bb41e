#!/usr/bin/python3
"""A tiny DeepSeek-V4.1 checkpoint and its whole-model goldens (tests/golden/v41/tiny): what the C forward of V4.1
is tested against.

The checkpoint is the official V4.1 HF layout at toy size: nested config.json (model_type deepseek_v41,
text_config, quantization_config with 32x32 UE8M0 tiles and FP4 experts) and one model.safetensors with the tensor
names, shapes and dtypes of dsv4's V4.1 tensor list (src/io/info.c generate41, itself from DeepSeek's model.py):
FP8 linears as F8_E4M3 + F8_E8M0 [ceil(o/32), ceil(i/32)], routed experts packed FP4 (I8 [o, i/2], element 2k in
the low nibble) + F8_E8M0 [o, i/32], attn.wo_a stored FP8 (the reference applies its BF16 dequantization), the
compressor wkv / wgate BF16 (the ratio-2 pair computed in F32 from those values), Engram tables F8_E4M3 rows +
F8_E8M0 scales per 32, norms / embed / head / gate.weight / weights_proj / wk / markov / confidence BF16, hc_*,
attn_sink, gate.bias F32. Random weights with sane scales (model_v41.init_weights) quantized so every stored value
is exact: the reference computes with exactly the stored numbers.

Model (model_v41.DEFAULTS + CONFIG below): 8 layers, compress ratios [0, 0, 2, 2, 2, 1, 1, 1] + 2 DSpark stages;
KV sources 2 (ratio 2) and 5 (ratio 1), index sources 2, 4 (a ratio-2 index source that is not an owner: the
index-key slot quirk), 5 (candidate source: blocks of 4, top 3 blocks) and 7 (masked by the candidates); layers 3
and 6 reuse the last index source's picks; window 8; Engram on layers 1 and 4 (3-grams, 2 heads, compressed
vocabulary = the raw one, i.e. the identity token map: this checkpoint has no tokenizer); single-pass mHC; MoE 4
experts top 2 (+1e-20 renormalisation), DSpark stages 3 experts top 2, block 3, target layers 5-7.

Goldens (float64 reference, model_v41.Session): logits of every position of 32 tokens under three call schedules
(one prefill; token by token; mixed chunks), the index selections of every index source per position, the state
after every block of the prefill (BF16), and DSpark drafts (logits, greedy ids, confidence) after each decode step.
The schedules legitimately give different logits (the index-key slot quirk: measured and recorded in
golden.json), so each schedule has its own golden. Tolerance: from the float32 mode of the same reference (the
official F32 order, bit-identical to DeepSeek's code on CPU stand-ins): see golden.json "tolerance".

usage: make_v41_goldens.py [OUT_DIR]          (default tests/golden/v41/tiny)
       make_v41_goldens.py --check [DIR]    read DIR's config.json + model.safetensors back (decoding every stored
                                            byte), rerun the reference and require prefill.f32 bit for bit: the
                                            goldens belong to the stored checkpoint
       make_v41_goldens.py --compare-f32 DUMP [DIR]   compare logits written by the C forward (DSV4_TEST_DUMP=DUMP
                                            build/.../tests/test_forward_v41 [DIR] writes DUMP/<schedule>.f32) with
                                            the reference's float32 mode (the official F32 order) per schedule
       make_v41_goldens.py OUT --seed S [--default-config]   another seed (and model_v41's default config, the one
                                            official_oracle/v41_model.py checks) into OUT: more cases for the C
                                            forward by hand (test_forward_v41 OUT), not committed
       make_v41_goldens.py OUT --tokenizer TOKENIZER_JSON   the tiny V4.1 with that tokenizer: vocab_size = its id
                                            count, engram_compressed_vocab_size = its compressed count, the Engram
                                            token map (engram_token_map.py, §2.2) used by the reference, the
                                            tokenizer copied into OUT (tests/golden/v41/tiny-tok: models/nano's;
                                            the public API builds the map at load, tests/test_api_v41.c)
"""
import json
import os
import shutil
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model_v41 as m  # noqa: E402
import engram_token_map  # noqa: E402
import numerics as nm  # noqa: E402
from safetensors_io import write_safetensors, read_safetensors, raw_to_tensor  # noqa: E402

CONFIG = dict(dspark_n_routed_experts=3, dspark_n_activated_experts=2)
SEED = 41
CMAP = None   # raw id -> compressed id (--tokenizer), None: identity
N_TOKENS = 32
# chunks: 1-token calls at even positions 6, 20 and 26 complete no ratio-2 group, so index source 4 scores against
# the last published keys (the index-key slot quirk; it changes the picks once end // 2 > index_topk, i.e. at 20
# and 26); multi-token calls at odd and even starts complete groups inside them
SCHEDULES = {"prefill": [32], "decode": [1] * 32, "chunks": [5, 1, 1, 6, 2, 1, 4, 1, 5, 1, 5]}


def checkpoint_weights(cfg, seed):
    """(stored, ref): stored = name -> QW as written (wo_a FP8); ref = what the reference computes with."""
    W = m.init_weights(cfg, seed)
    stored, ref = {}, {}
    for name, (shape, fmt, init) in m.weight_specs(cfg).items():
        q = W[name]
        if name.endswith("attn.wo_a.weight"):
            q8 = m.quant_weight(q.w, "fp8")
            stored[name], ref[name] = q8, m.QW("bf16", q8.w.clone())
            continue
        if fmt == "f32" and ".compressor." in name:      # stored BF16, used in F32
            q = m.QW("f32", nm.round_bf16(q.w))
        stored[name], ref[name] = q, q
    return stored, ref


def bf16_bytes(t):
    a = nm.round_bf16(t.to(torch.float64)).to(torch.float32).contiguous().numpy().view(np.uint32)
    return (a >> 16).astype("<u2").tobytes()


def raw_tensors(cfg, stored):
    """The safetensors entries {name: (dtype, shape, bytes)} in the official V4.1 layout."""
    out = {}
    specs = m.weight_specs(cfg)
    for name, q in stored.items():
        shape = list(specs[name][0])
        sname = name[:-len("weight")] + "scale"
        if q.fmt in ("fp8", "table"):
            out[name] = ("F8_E4M3", shape, nm.e4m3_encode(q.q).numpy().tobytes())
            out[sname] = ("F8_E8M0", list(q.s.shape), nm.e8m0_encode_pow2(q.s).numpy().tobytes())
        elif q.fmt == "fp4":
            c = nm.e2m1_encode(q.q)
            packed = (c[:, 0::2] | (c[:, 1::2] << 4)).to(torch.uint8).numpy().view(np.int8)
            out[name] = ("I8", [shape[0], shape[1] // 2], packed.tobytes())
            out[sname] = ("F8_E8M0", list(q.s.shape), nm.e8m0_encode_pow2(q.s).numpy().tobytes())
        elif specs[name][1] == "f32" and ".compressor." not in name:
            out[name] = ("F32", shape, q.w.to(torch.float32).numpy().astype("<f4").tobytes())
        else:
            assert torch.equal(nm.round_bf16(q.w), q.w), name
            out[name] = ("BF16", shape, bf16_bytes(q.w))
    return out


def hf_config(cfg):
    """The nested HF config.json of DeepSeek-V4.1 (key names as tests/golden/v41/flash-config.json)."""
    c = cfg
    tc = {
        "model_type": "deepseek_v41_text", "vocab_size": c.vocab_size, "hidden_size": c.dim,
        "num_hidden_layers": c.n_layers, "moe_intermediate_size": c.moe_inter_dim,
        "n_routed_experts": c.n_routed_experts, "num_experts_per_tok": c.n_activated_experts,
        "n_shared_experts": c.n_shared_experts, "q_lora_rank": c.q_lora_rank, "num_attention_heads": c.n_heads,
        "num_key_value_heads": 1, "head_dim": c.head_dim, "qk_rope_head_dim": c.rope_head_dim,
        "o_groups": c.o_groups, "o_lora_rank": c.o_lora_rank, "index_n_heads": c.index_n_heads,
        "index_head_dim": c.index_head_dim, "index_topk": c.index_topk, "compress_ratios": list(c.compress_ratios),
        "kv_source_layer_ids": list(c.kv_source_layers), "index_source_layer_ids": list(c.index_source_layers),
        "candidate_source_layer_id": c.candidate_source_layer, "candidate_topk_blocks": c.candidate_topk_blocks,
        "candidate_block_size": c.candidate_block_size, "rms_norm_eps": c.norm_eps, "hc_mult": c.hc_mult,
        "hc_sinkhorn_iters": c.hc_sinkhorn_iters, "hc_eps": c.hc_eps, "scoring_func": "sqrtsoftplus",
        "topk_method": "noaux_tc", "norm_topk_prob": True, "routed_scaling_factor": c.route_scale,
        "swiglu_limit": c.swiglu_limit, "sliding_window": c.window_size, "rope_theta": c.rope_theta,
        "compress_rope_theta": c.compress_rope_theta,
        "rope_scaling": {"type": "yarn", "factor": c.rope_factor, "original_max_position_embeddings": c.original_seq_len,
                         "beta_fast": c.beta_fast, "beta_slow": c.beta_slow},
        "max_position_embeddings": 4096, "num_nextn_predict_layers": c.n_mtp_layers,
        "engram_layer_ids": list(c.engram_layer_ids), "engram_num_embeddings": list(c.engram_num_embeddings),
        "engram_max_ngram_size": c.engram_max_ngram_size, "engram_vocab_size": c.engram_vocab_size,
        "engram_n_heads": c.engram_n_heads, "engram_head_dim": c.engram_head_dim,
        "engram_pad_token_id": c.engram_pad_id, "engram_compressed_vocab_size": c.engram_compressed_vocab_size,
        "dspark_block_size": c.dspark_block_size, "dspark_noise_token_id": c.dspark_noise_token_id,
        "dspark_target_layer_ids": list(c.dspark_target_layer_ids), "dspark_markov_rank": c.dspark_markov_rank,
        "dspark_n_routed_experts": c.dspark_n_routed_experts or c.n_routed_experts,
        "dspark_num_experts_per_tok": c.dspark_n_activated_experts or c.n_activated_experts,
    }
    return {"architectures": ["DeepseekV41ForCausalLM"], "model_type": "deepseek_v41", "dtype": "bfloat16",
            "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 2,
            "quantization_config": {"quant_method": "fp8", "activation_scheme": "dynamic",
                                    "weight_block_size": [32, 32], "scale_fmt": "ue8m0", "expert_dtype": "fp4"},
            "text_config": tc}


def run(cfg, W, toks, calls, dtype, dspark=False, blocks=False):
    """Logits [N, V] of every position under `calls`; selections; DSpark drafts after 1-token calls at P >= 1."""
    s = m.Session(cfg, W, dtype=dtype, cmap=CMAP)
    outs, drafts, states = [], [], []
    if blocks:
        orig = s.block

        def rec(L, X, pos0, pre_mix, attn_fn=None):
            out = orig(L, X, pos0, pre_mix, attn_fn)
            if attn_fn is None:
                states.append(out[0].clone())
            return out
        s.block = rec
    p = 0
    for n in calls:
        lg = s.eval(toks[p:p + n], all_logits=True)
        outs.append(lg)
        p += n
        if dspark and n == 1 and p >= 2:
            nxt = int(torch.argmax(lg[-1]))
            dl, ids, conf = s.dspark(nxt)
            drafts.append(dict(position=p - 1, token=nxt, logits=dl, ids=ids, confidence=conf))
    sel = {(L, P): pk for (L, P, pk) in s.record}
    return torch.cat(outs), sel, drafts, states


def f32_bytes(t):
    return t.to(torch.float32).contiguous().numpy().astype("<f4").tobytes()


def weights_from_file(cfg, path):
    """The reference's weights decoded from a stored checkpoint (name -> QW), independent of checkpoint_weights."""
    raw = read_safetensors(path)
    W = {}
    for name, (shape, fmt, init) in m.weight_specs(cfg).items():
        dt, shp, data = raw.pop(name)
        t = raw_to_tensor(dt, shp, data)
        sname = name[:-len("weight")] + "scale"
        if dt == "F8_E4M3":
            q = nm.e4m3_decode(t, torch.float64)
            sdt, sshp, sdata = raw.pop(sname)
            sc = nm.e8m0_decode(raw_to_tensor(sdt, sshp, sdata), torch.float64)
            if fmt == "table":
                W[name] = m.QW("table", q, sc)
                W[name].w = q * sc.repeat_interleave(32, 1)
            else:
                w = m.QW("fp8", q, sc)
                W[name] = m.QW("bf16", w.w) if name.endswith("attn.wo_a.weight") else w
        elif dt == "I8":
            b = t.to(torch.int64) & 0xFF
            codes = torch.stack([b & 0xF, b >> 4], -1).flatten(-2)
            sdt, sshp, sdata = raw.pop(sname)
            W[name] = m.QW("fp4", nm.e2m1_decode(codes, torch.float64),
                           nm.e8m0_decode(raw_to_tensor(sdt, sshp, sdata), torch.float64))
        else:
            W[name] = m.QW(fmt if fmt in ("f32", "bf16") else "bf16", t.to(torch.float64))
    assert not raw, f"tensors the reference does not use: {sorted(raw)[:5]}"
    return W


def check(d):
    with open(os.path.join(d, "golden.json")) as f:
        meta = json.load(f)
    cfg = m.Config(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in meta["reference_config"].items()})
    W = weights_from_file(cfg, os.path.join(d, "model.safetensors"))
    tj = os.path.join(d, "tokenizer.json")
    s = m.Session(cfg, W, cmap=engram_token_map.build(tj)[0] if os.path.exists(tj) else None)
    lg = s.eval(meta["tokens"], all_logits=True)
    want = torch.from_numpy(np.fromfile(os.path.join(d, "prefill.f32"), dtype="<f4").copy()).reshape(lg.shape)
    ok = torch.equal(lg.to(torch.float32), want)
    print(f"{d}: {len(W)} weights decoded from the file; prefill logits {'bit-identical' if ok else 'DIFFERENT'}")
    return 0 if ok else 1


def compare_f32(dump, d):
    with open(os.path.join(d, "golden.json")) as f:
        meta = json.load(f)
    cfg = m.Config(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in meta["reference_config"].items()})
    W = checkpoint_weights(cfg, meta["seed"])[1]
    toks = meta["tokens"]
    for e in meta["schedules"]:
        name, calls = e["name"], e["calls"]
        lg32 = run(cfg, W, toks, calls, torch.float32)[0]
        c = torch.from_numpy(np.fromfile(os.path.join(dump, f"{name}.f32"), dtype="<f4").copy()).reshape(lg32.shape)
        same = sum(int(torch.equal(c[t], lg32[t].float())) for t in range(c.shape[0]))
        rel = float((c.double() - lg32.double()).abs().max() / lg32.abs().max())
        print(f"{name}: C vs the float32 mode: max relative difference {rel:.3e}, {same} / {c.shape[0]} positions "
              "bit-identical")
    return 0


def main():
    global SEED, CONFIG, CMAP
    if len(sys.argv) > 2 and sys.argv[1] == "--compare-f32":
        return compare_f32(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "tests/golden/v41/tiny")
    if len(sys.argv) > 1 and sys.argv[1] == "--check":
        return check(sys.argv[2] if len(sys.argv) > 2 else "tests/golden/v41/tiny")
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "tests/golden/v41/tiny"
    if "--seed" in sys.argv:
        SEED = int(sys.argv[sys.argv.index("--seed") + 1])
    if "--default-config" in sys.argv:
        CONFIG = {}
    os.makedirs(out_dir, exist_ok=True)
    if "--tokenizer" in sys.argv:
        tpath = sys.argv[sys.argv.index("--tokenizer") + 1]
        CMAP, n_keys = engram_token_map.build(tpath)
        pad = m.DEFAULTS["engram_pad_id"]
        assert CMAP[pad] == pad, "the reference takes engram_pad_id as the compressed pad id: map[pad] must equal pad"
        CONFIG = dict(CONFIG, vocab_size=len(CMAP), engram_compressed_vocab_size=n_keys)
        shutil.copyfile(tpath, os.path.join(out_dir, "tokenizer.json"))
        print(f"{tpath}: {len(CMAP)} ids -> {n_keys} compressed ids")
    cfg = m.Config(**CONFIG)
    stored, W = checkpoint_weights(cfg, SEED)
    raw = raw_tensors(cfg, stored)
    write_safetensors(os.path.join(out_dir, "model.safetensors"), raw, {"format": "pt"})
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(hf_config(cfg), f, indent=1)
    g = torch.Generator().manual_seed(SEED + 100)
    toks = torch.randint(3, cfg.vocab_size, (N_TOKENS,), generator=g).tolist()
    res, scheds = {}, []
    noise = {}
    for name, calls in SCHEDULES.items():
        assert sum(calls) == N_TOKENS
        lg, sel, drafts, states = run(cfg, W, toks, calls, torch.float64, dspark=(name == "decode"),
                                      blocks=(name == "prefill"))
        lg32, sel32, drafts32, _ = run(cfg, W, toks, calls, torch.float32, dspark=(name == "decode"))
        res[name] = (lg, sel)
        scale = float(lg.abs().max())
        per_pos = ((lg32.double() - lg).abs().amax(-1) / scale).tolist()
        nsel = sum(1 for k in sel if sel[k] != sel32.get(k))
        noise[name] = dict(max_rel=max(per_pos), selections_differing=nsel)
        fn = f"{name}.f32"
        with open(os.path.join(out_dir, fn), "wb") as f:
            f.write(f32_bytes(lg))
        ent = dict(name=name, calls=calls, logits=fn,
                   selections=[[L, P, sel[(L, P)]] for (L, P) in sorted(sel) if (L, P) in sel])
        if states:
            with open(os.path.join(out_dir, "prefill_blocks.bf16"), "wb") as f:
                f.write(b"".join(bf16_bytes(x) for x in states))
            ent["blocks"] = dict(file="prefill_blocks.bf16", shape=[cfg.n_layers, N_TOKENS, cfg.hc_mult, cfg.dim],
                                 what="BF16 state [hc, dim] of every position after each trunk block (Engram of the "
                                      "next block not applied)")
        if drafts:
            with open(os.path.join(out_dir, "dspark.f32"), "wb") as f:
                f.write(b"".join(f32_bytes(d["logits"]) for d in drafts))
            dn = max(float((a["logits"] - b["logits"].double()).abs().max() / a["logits"].abs().max())
                     for a, b in zip(drafts, drafts32))
            ent["dspark"] = dict(file="dspark.f32", shape=[len(drafts), cfg.dspark_block_size, cfg.vocab_size],
                                 drafts=[dict(position=d["position"], token=d["token"], ids=d["ids"],
                                              confidence=[float(v) for v in d["confidence"]]) for d in drafts])
            noise[name]["dspark_max_rel"] = dn
            noise[name]["dspark_ids_differing"] = sum(1 for a, b in zip(drafts, drafts32) if a["ids"] != b["ids"])
            noise[name]["dspark_confidence_max_abs"] = max(float((a["confidence"] - b["confidence"].double()).abs().max())
                                                           for a, b in zip(drafts, drafts32))
        scheds.append(ent)
        print(f"{name}: {len(calls)} calls, float32-mode noise {noise[name]}")
    # how much the schedules differ from each other (the index-key slot quirk, not noise)
    between = {}
    for a in SCHEDULES:
        for b in SCHEDULES:
            if a < b:
                la, sa = res[a]
                lb, sb = res[b]
                between[f"{a}-{b}"] = dict(
                    max_rel=float((la - lb).abs().max() / la.abs().max()),
                    selections_differing=sum(1 for k in sa if k in sb and sa[k] != sb[k]))
    print("between schedules:", between)
    worst = max(v["max_rel"] for v in noise.values())
    rel = max(4 * worst, 1e-3)
    dworst = noise["decode"]["dspark_max_rel"]
    drel = max(4 * dworst, 1e-3)
    dconf = max(4 * noise["decode"]["dspark_confidence_max_abs"], 1e-3)
    meta = dict(
        format="dsv4 v41 tiny golden v1", seed=SEED, reference_config=cfg.to_dict(), tokens=toks,
        schedules=scheds, vocab_size=cfg.vocab_size,
        tolerance=dict(rel=rel, float32_mode=noise, why=(
            "logits compare as max|c - r| <= rel * max|r| per schedule; the golden is the float64 reference, and its "
            "float32 mode (the official F32 order, bit-identical to DeepSeek's code on CPU stand-ins) deviates from it "
            f"by at most {worst:.3g} x max|r| (float32_mode: per schedule; BF16 rounding flips of F32-vs-float64 "
            "arithmetic, amplified by FP8 block scales); rel = 4x that (floor 1e-3). Index selections should match "
            "exactly except where float32_mode.selections_differing shows that rounding moves a near-tie; an exact "
            "score tie goes to the lower position."),
            dspark_rel=drel, dspark_confidence_abs=dconf, dspark_why=(
            f"DSpark drafts read the target layers' features of every position, so trunk rounding flips reach them "
            f"amplified: the float32 mode deviates by {dworst:.3g} x max|r| (confidence by "
            f"{noise['decode']['dspark_confidence_max_abs']:.3g}); 4x that. Draft ids are greedy and may differ where "
            "the float32 mode's do (dspark_ids_differing).")),
        between_schedules=dict(
            values=between, why="the schedules differ by design: an index source that owns no keys scores against "
                                "the last published keys (the index-key slot quirk), which depend on the call split; "
                                "compare each schedule with its own golden"))
    with open(os.path.join(out_dir, "golden.json"), "w") as f:
        json.dump(meta, f, indent=1)
    total = sum(os.path.getsize(os.path.join(out_dir, x)) for x in os.listdir(out_dir))
    print(f"tolerance rel {rel:.3g}; {len(raw)} tensors; {total} bytes in {out_dir}")


if __name__ == "__main__":
    sys.exit(main())
