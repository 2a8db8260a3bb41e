#!/usr/bin/python3
"""train_bpe.py -- byte-level BPE trainer for the built-in nano model (pure Python).

Usage:
    /usr/bin/python3 tools/train/train_bpe.py [--data vendor/tinyshakespeare/tinyshakespeare.txt]
        [--vocab 1024] [--out models/nano/tokenizer.json] [--cache tools/train/cache]

What it does
  * Splits the corpus (bytes) into train = data[:n*9//10] and held-out = data[n*9//10:]
    (tinyshakespeare: n = 1,115,394, split at byte 1,003,854; held-out = the last 111,540 bytes,
    i.e. `tail -c 111540 tinyshakespeare.txt`).
  * Pre-tokenizes the TRAIN split with the DeepSeek-V3 pre-tokenizer, read from
    vendor/deepseek-v3-tokenizer/tokenizer.json (`pre_tokenizer` object, a Sequence of three
    Split(regex, Isolated) steps followed by ByteLevel(use_regex=false)). The object is copied into
    our tokenizer.json unchanged; the regexes are never retyped. Matching uses the `regex` module
    (Debian package python3-regex), which supports the \\p{..} classes of the patterns.
  * Trains byte-level BPE (GPT-2 byte->unicode map): start from the 256 byte symbols, repeatedly merge
    the most frequent adjacent pair inside pre-tokenized pieces (ties: lexicographically smallest
    (left, right) string pair), merging every non-overlapping occurrence left to right, until the
    vocabulary (including the added tokens) has --vocab entries.
  * Vocabulary ids: 0 "<｜begin▁of▁sentence｜>", 1 "<｜end▁of▁sentence｜>" (added, special, also in
    model.vocab as DeepSeek's file does), 2..257 the 256 byte symbols sorted by their unicode
    character, then merged tokens in merge order.
  * Writes an HF tokenizer.json (model.type BPE, merges as "a b" strings, decoder ByteLevel) and
    tokenizes both splits into --cache/{train,val}.u16 (little-endian uint16 ids, no BOS) plus
    --cache/meta.json.

Encoding semantics (the same as HF `tokenizers` and the C tokenizer): pre-tokenize, map bytes to
unicode, then within each piece repeatedly merge the adjacent pair of lowest merge rank (leftmost
first, all non-overlapping occurrences) until no pair of the piece is in the merge list.
"""
import argparse
import json
import os
import sys
import time
from array import array

try:
    import regex as re_mod
except ImportError:  # pragma: no cover
    sys.exit("train_bpe.py needs the `regex` module: apt-get install -y python3-regex")

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"


def bytes_to_unicode():
    """GPT-2 byte -> printable unicode character map (byte-level BPE alphabet)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


BYTE2U = bytes_to_unicode()
U2BYTE = {u: b for b, u in BYTE2U.items()}


class PreTokenizer:
    """Applies an HF pre_tokenizer object (Sequence of Split/Isolated + ByteLevel(use_regex=false))."""

    def __init__(self, obj):
        steps = obj["pretokenizers"] if obj["type"] == "Sequence" else [obj]
        self.splits = []
        self.bytelevel = False
        for s in steps:
            if s["type"] == "Split":
                if s.get("behavior") != "Isolated" or s.get("invert"):
                    raise ValueError("unsupported Split step: %r" % (s,))
                self.splits.append(re_mod.compile(s["pattern"]["Regex"]))
            elif s["type"] == "ByteLevel":
                if s.get("use_regex") or s.get("add_prefix_space"):
                    raise ValueError("unsupported ByteLevel step: %r" % (s,))
                self.bytelevel = True
            else:
                raise ValueError("unsupported pre-tokenizer step %r" % s["type"])
        if not self.bytelevel:
            raise ValueError("pre_tokenizer has no ByteLevel step")

    def pieces(self, text):
        """Split `text` (str) into pieces (list of str, original characters)."""
        cur = [text]
        for pat in self.splits:
            nxt = []
            for p in cur:
                pos = 0
                for m in pat.finditer(p):
                    s, e = m.span()
                    if s > pos:
                        nxt.append(p[pos:s])
                    if e > s:
                        nxt.append(p[s:e])
                    pos = e
                if pos < len(p):
                    nxt.append(p[pos:])
            cur = nxt
        return cur


def to_bytelevel(piece):
    return "".join(BYTE2U[b] for b in piece.encode("utf-8"))


def train(word_counts, alphabet, n_merges, log=None):
    """BPE training. word_counts: {bytelevel-str: count}. Returns list of (left, right) merges."""
    sym_id = {}
    syms = []

    def sid(s):
        i = sym_id.get(s)
        if i is None:
            i = len(syms)
            sym_id[s] = i
            syms.append(s)
        return i

    for a in alphabet:
        sid(a)
    words = []
    counts = []
    for w, c in word_counts.items():
        words.append([sid(ch) for ch in w])
        counts.append(c)
    pair_count = {}
    pair_where = {}
    for wi, w in enumerate(words):
        c = counts[wi]
        for i in range(len(w) - 1):
            p = (w[i], w[i + 1])
            pair_count[p] = pair_count.get(p, 0) + c
            pair_where.setdefault(p, set()).add(wi)
    merges = []
    vocab_strings = set(alphabet)
    while len(merges) < n_merges and pair_count:
        best = None
        bestc = 0
        for p, c in pair_count.items():
            if c > bestc or (c == bestc and c > 0 and (syms[p[0]], syms[p[1]]) < (syms[best[0]], syms[best[1]])):
                best, bestc = p, c
        if best is None or bestc <= 0:
            break
        a, b = best
        new = sid(syms[a] + syms[b])
        merges.append((syms[a], syms[b]))
        vocab_strings.add(syms[new])
        for wi in list(pair_where.get(best, ())):
            w = words[wi]
            c = counts[wi]
            # remove old pairs of this word
            for i in range(len(w) - 1):
                p = (w[i], w[i + 1])
                pair_count[p] -= c
            out = []
            i = 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    out.append(new)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            words[wi] = out
            for i in range(len(out) - 1):
                p = (out[i], out[i + 1])
                pair_count[p] = pair_count.get(p, 0) + c
                pair_where.setdefault(p, set()).add(wi)
        # drop dead pairs (count 0)
        for p in [p for p, c in pair_count.items() if c <= 0]:
            del pair_count[p]
            pair_where.pop(p, None)
        if log and len(merges) % 100 == 0:
            log("merge %d: %r + %r (count %d)" % (len(merges), syms[a], syms[b], bestc))
    return merges


class BPE:
    """Encoder over a trained vocab/merges with HF semantics (used for the corpus cache and tests)."""

    def __init__(self, vocab, merges, pretok):
        self.vocab = vocab
        self.ranks = {tuple(m): r for r, m in enumerate(merges)}
        self.pretok = pretok
        self.cache = {}

    def encode_piece(self, bl):
        ids = self.cache.get(bl)
        if ids is not None:
            return ids
        w = list(bl)
        while len(w) > 1:
            best = None
            br = None
            for i in range(len(w) - 1):
                r = self.ranks.get((w[i], w[i + 1]))
                if r is not None and (br is None or r < br):
                    br, best = r, (w[i], w[i + 1])
            if best is None:
                break
            out = []
            i = 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == best[0] and w[i + 1] == best[1]:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            w = out
        ids = [self.vocab[s] for s in w]
        self.cache[bl] = ids
        return ids

    def encode(self, text):
        out = []
        for p in self.pretok.pieces(text):
            out.extend(self.encode_piece(to_bytelevel(p)))
        return out

    def decode(self, ids):
        inv = {i: s for s, i in self.vocab.items()}
        bs = bytearray()
        for i in ids:
            s = inv[i]
            if s in (BOS, EOS):
                bs.extend(s.encode("utf-8"))
            else:
                bs.extend(U2BYTE[ch] for ch in s)
        return bs.decode("utf-8", errors="replace")


def added_token(i, content):
    return {"id": i, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": False, "special": True}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.abspath(os.path.join(here, "..", ".."))
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(root, "vendor", "tinyshakespeare", "tinyshakespeare.txt"))
    ap.add_argument("--ref-tokenizer", default=os.path.join(root, "vendor",
                                                            "deepseek-v3-tokenizer", "tokenizer.json"))
    ap.add_argument("--vocab", type=int, default=1024, help="total vocab size incl. 2 added tokens")
    ap.add_argument("--out", default=os.path.join(root, "models", "nano", "tokenizer.json"))
    ap.add_argument("--cache", default=os.path.join(here, "cache"))
    args = ap.parse_args()
    t0 = time.time()

    def log(msg):
        print("[bpe %6.1fs] %s" % (time.time() - t0, msg), flush=True)

    with open(args.ref_tokenizer, encoding="utf-8") as f:
        ref = json.load(f)
    pre_obj = ref["pre_tokenizer"]
    pretok = PreTokenizer(pre_obj)
    data = open(args.data, "rb").read()
    n = len(data)
    cut = n * 9 // 10
    train_text = data[:cut].decode("utf-8")
    val_text = data[cut:].decode("utf-8")
    log("corpus %d bytes, train %d, held-out %d (split at byte %d)" % (n, cut, n - cut, cut))

    counts = {}
    for p in pretok.pieces(train_text):
        bl = to_bytelevel(p)
        counts[bl] = counts.get(bl, 0) + 1
    log("%d pieces, %d distinct" % (sum(counts.values()), len(counts)))

    alphabet = sorted(BYTE2U.values())
    n_added = 2
    n_merges_target = args.vocab - n_added - len(alphabet)
    # merges can in principle produce an already-known string; loop until the vocab is full
    merges = train(counts, alphabet, n_merges_target, log)
    vocab = {BOS: 0, EOS: 1}
    for a in alphabet:
        vocab[a] = len(vocab)
    for a, b in merges:
        if a + b not in vocab:
            vocab[a + b] = len(vocab)
    log("%d merges, vocab %d" % (len(merges), len(vocab)))

    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [added_token(0, BOS), added_token(1, EOS)],
        "normalizer": ref.get("normalizer"),
        "pre_tokenizer": pre_obj,
        "post_processor": ref.get("post_processor"),
        "decoder": ref.get("decoder"),
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "vocab": vocab,
            "merges": ["%s %s" % (a, b) for a, b in merges],
        },
    }
    assert tok["decoder"]["type"] == "ByteLevel"
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False, indent=None, separators=(",", ":"))
        f.write("\n")
    log("wrote %s (%d bytes)" % (args.out, os.path.getsize(args.out)))

    bpe = BPE(vocab, merges, pretok)
    os.makedirs(args.cache, exist_ok=True)
    meta = {"tokenizer": os.path.relpath(args.out, root), "vocab_size": len(vocab), "split_byte": cut,
            "n_bytes": n}
    for name, text in (("train", train_text), ("val", val_text)):
        ids = bpe.encode(text)
        assert bpe.decode(ids) == text, "round trip failed on %s" % name
        arr = array("H", ids)
        if sys.byteorder != "little":
            arr.byteswap()
        with open(os.path.join(args.cache, name + ".u16"), "wb") as f:
            arr.tofile(f)
        meta[name + "_tokens"] = len(ids)
        meta[name + "_bytes"] = len(text.encode("utf-8"))
        log("%s: %d tokens (%.3f bytes/token), first ids %s" % (name, len(ids), meta[name + "_bytes"] / len(ids),
                                                               ids[:12]))
    with open(os.path.join(args.cache, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
