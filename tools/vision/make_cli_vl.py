#!/usr/bin/env python3
"""tests/golden/cli-vl: a tiny DeepSeek-V4.1 with a vision tower AND a tokenizer, for the CLI and server image checks.

tests/golden/v41/tiny-vl (the image goldens) has no tokenizer (vocabulary 96), so text prompts cannot reach it;
tests/golden/v41/tiny-tok (vocabulary 1024, nano's tokenizer) has no tower. This joins them without copying weights:
  - model-text.safetensors: a relative symlink to ../v41/tiny-tok/model.safetensors (the text model, unchanged);
  - model-vision.safetensors: the tensors of tiny-vl's checkpoint that tiny-tok lacks (vision.*, aligner.*,
    image_start / image_newline / image_end, layers.N / mtp.N ffn.gate.bias_vl), byte for byte;
  - config.json: tiny-tok's plus tiny-vl's vision_config, image_token_id 1023;
  - tokenizer.json: tiny-tok's with id 1023 (the last BPE merge, "che") turned into the special added token
    "<｜deepseek_image｜>" (its vocabulary entry and the merge that made it removed), and ids 1017..1022 (the merges
    before it) into the chat format's special tokens (V4.1's <｜System｜> included), so that `dsv4 chat` takes it.
The tower weights were drawn for tiny-vl's text model, so the outputs are meaningless; the checks test plumbing
(placeholders, spans, keys, errors), never answers. Standard library only. Run from the repository root.
"""
import json
import os
import struct

SRC_TEXT = "tests/golden/v41/tiny-tok"
SRC_VL = "tests/golden/v41/tiny-vl"
OUT = "tests/golden/cli-vl"
IMAGE_ID = 1023
CHAT_TOKENS = ["<｜User｜>", "<｜Assistant｜>", "<think>", "</think>", "｜DSML｜", "<｜System｜>"]


def tensors(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    data = b[8 + n:]
    return {k: (v["dtype"], v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]])
            for k, v in h.items() if k != "__metadata__"}


def main():
    text = tensors(f"{SRC_TEXT}/model.safetensors")
    vl = tensors(f"{SRC_VL}/model.safetensors")
    extra = {k: v for k, v in vl.items() if k not in text}
    hdr, blobs, off = {}, [], 0
    for k in sorted(extra):
        dt, shape, d = extra[k]
        hdr[k] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(d)]}
        blobs.append(d)
        off += len(d)
    hj = json.dumps(hdr).encode()
    hj += b" " * ((8 - len(hj) % 8) % 8)
    os.makedirs(OUT, exist_ok=True)
    with open(f"{OUT}/model-vision.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(hj)) + hj + b"".join(blobs))
    link = f"{OUT}/model-text.safetensors"
    if os.path.lexists(link):
        os.remove(link)
    os.symlink("../v41/tiny-tok/model.safetensors", link)

    cfg = json.load(open(f"{SRC_TEXT}/config.json"))
    cfg["image_token_id"] = IMAGE_ID
    cfg["vision_config"] = json.load(open(f"{SRC_VL}/config.json"))["vision_config"]
    # the Engram token map built from the new tokenizer has 794 compressed ids (tiny-tok's: 793), and the loader
    # checks the count against the config
    cfg["text_config"]["engram_compressed_vocab_size"] = 794
    with open(f"{OUT}/config.json", "w") as f:
        json.dump(cfg, f, indent=1)
        f.write("\n")

    tok = json.load(open(f"{SRC_TEXT}/tokenizer.json"))
    vocab = tok["model"]["vocab"]
    s = [k for k, i in vocab.items() if i == IMAGE_ID][0]
    del vocab[s]
    def joined(m):
        return m.replace(" ", "") if isinstance(m, str) else "".join(m)
    tok["model"]["merges"] = [m for m in tok["model"]["merges"] if joined(m) != s]
    tok["added_tokens"].append({"id": IMAGE_ID, "content": "<｜deepseek_image｜>", "single_word": False,
                                "lstrip": False, "rstrip": False, "normalized": False, "special": True})
    # the chat format's special tokens (dsv4 chat refuses a tokenizer without them), on ids 1017..1022 likewise
    for k, sp in enumerate(CHAT_TOKENS):
        i = IMAGE_ID - 1 - k
        s2 = [key for key, v in vocab.items() if v == i][0]
        del vocab[s2]
        tok["model"]["merges"] = [m for m in tok["model"]["merges"] if joined(m) != s2]
        tok["added_tokens"].append({"id": i, "content": sp, "single_word": False, "lstrip": False, "rstrip": False,
                                    "normalized": False, "special": True})
    with open(f"{OUT}/tokenizer.json", "w") as f:
        json.dump(tok, f, ensure_ascii=False)
    print(f"{OUT}: {len(extra)} vision tensors ({off} bytes), token {IMAGE_ID} was {s!r}")


if __name__ == "__main__":
    main()
