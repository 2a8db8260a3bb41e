#!/usr/bin/python3
"""Engram compressed token map (docs/v41.md §2.2) from a tokenizer.json, with Python's unicodedata.

An implementation independent of the C one (src/model/engram.c uses libutf8proc): byte-level BPE decode of one
id, U+FFFD -> the raw token string, else NFKC, NFD, drop General_Category M*, per-character full lowercase,
runs of [ \\t\\r\\n] -> ' ', exactly ' ' -> U+E000, strip Unicode White_Space, U+E000 -> ' '; an empty result keys
by the decoded text; ids numbered in first-seen order.

usage: engram_token_map.py TOKENIZER_JSON [--compare MAP_BIN]
  prints the id count, the compressed count and map[2]; with --compare, the first ids where MAP_BIN (raw
  little-endian int32, one per id, as written by the C side) differs, and the number of differing ids.
"""
import json
import re
import struct
import sys
import unicodedata

WHITE_SPACE = set(chr(c) for c in list(range(0x09, 0x0E)) + [0x20, 0x85, 0xA0, 0x1680] + list(range(0x2000, 0x200B))
                  + [0x2028, 0x2029, 0x202F, 0x205F, 0x3000])


def byte_decoder():
    printable = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cps, n = {}, 0
    for b in range(256):
        if b in printable:
            cps[b] = b
        else:
            cps[b] = 256 + n
            n += 1
    return {chr(cp): b for b, cp in cps.items()}


def normalize(text):
    s = unicodedata.normalize("NFKC", text)
    s = unicodedata.normalize("NFD", s)
    s = "".join(c for c in s if not unicodedata.category(c).startswith("M"))
    s = "".join(c.lower() for c in s)
    s = re.sub(r"[ \t\r\n]+", " ", s)
    if s == " ":
        s = "\ue000"
    i, j = 0, len(s)
    while i < j and s[i] in WHITE_SPACE:
        i += 1
    while j > i and s[j - 1] in WHITE_SPACE:
        j -= 1
    return s[i:j].replace("\ue000", " ")


def build(path):
    tj = json.load(open(path, encoding="utf-8"))
    dec = byte_decoder()
    id_to_token = {i: t for t, i in tj["model"]["vocab"].items()}
    added = {a["id"]: a["content"] for a in tj.get("added_tokens", [])}
    n = max(list(id_to_token) + list(added)) + 1
    keys, lookup = {}, []
    for i in range(n):
        if i in added:
            raw, text = added[i], added[i]
        else:
            raw = id_to_token.get(i, "")
            text = bytes(dec[c] for c in raw).decode("utf-8", errors="replace")
        if "\ufffd" in text:
            key = raw
        else:
            norm = normalize(text)
            key = norm if norm else text
        lookup.append(keys.setdefault(key, len(keys)))
    return lookup, len(keys)


def main():
    lookup, n_keys = build(sys.argv[1])
    print(f"{len(lookup)} ids -> {n_keys} compressed ids; map[2] = {lookup[2]}")
    if len(sys.argv) > 3 and sys.argv[2] == "--compare":
        data = open(sys.argv[3], "rb").read()
        other = struct.unpack(f"<{len(data) // 4}i", data)
        diff = [i for i in range(min(len(other), len(lookup))) if other[i] != lookup[i]]
        print(f"compare with {sys.argv[3]}: {len(other)} ids, {len(diff)} differ" +
              (f" (first {diff[:10]})" if diff else ""))
        return 1 if diff or len(other) != len(lookup) else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
