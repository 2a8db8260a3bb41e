"""Deterministic test images for the vision goldens, computed the same way by tests/test_vision.c (synth_pixel).

pixel byte (x, y, c) of a w x h image of `kind` and `seed` (i = (y * w + x) * 3 + c, hsh = splitmix64(seed *
0x9E3779B97F4A7C15 + i) mod 2^64):
  kind 0 noise : hsh & 255
  kind 1 smooth: c=0: x*255 // max(w-1, 1); c=1: y*255 // max(h-1, 1); c=2: (3x + 5y + (hsh & 31)) & 255
  kind 2 edges : s = 1 + seed % 5, on = (x//s + y//s) & 1; c=0: 255*on; c=1: 255*(1-on); c=2: 255 if hsh & 128
  kind 3 flat  : (seed * (c + 1) * 37) & 255
Also a minimal PNG writer for every colour type, bit depth and Adam7 interlacing (Pillow cannot write all of
them), used to make the decoder goldens.
"""
import struct
import zlib

import numpy as np

M64 = (1 << 64) - 1


def splitmix64(z):
    """z: numpy uint64 array (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def synth(w, h, kind, seed):
    """h x w x 3 uint8 array."""
    i = np.arange(w * h * 3, dtype=np.uint64).reshape(h, w, 3)
    base = np.uint64((seed * 0x9E3779B97F4A7C15) & M64)
    with np.errstate(over="ignore"):
        hsh = splitmix64(base + i)
    y, x = np.mgrid[0:h, 0:w].astype(np.int64)
    out = np.zeros((h, w, 3), dtype=np.int64)
    if kind == 0:
        out = (hsh & np.uint64(255)).astype(np.int64)
    elif kind == 1:
        out[..., 0] = x * 255 // max(w - 1, 1)
        out[..., 1] = y * 255 // max(h - 1, 1)
        out[..., 2] = (3 * x + 5 * y + (hsh[..., 2] & np.uint64(31)).astype(np.int64)) & 255
    elif kind == 2:
        s = 1 + seed % 5
        on = ((x // s) + (y // s)) & 1
        out[..., 0] = 255 * on
        out[..., 1] = 255 * (1 - on)
        out[..., 2] = np.where((hsh[..., 2] & np.uint64(128)) != 0, 255, 0)
    else:
        for c in range(3):
            out[..., c] = (seed * (c + 1) * 37) & 255
    return out.astype(np.uint8)


def _chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def _pack_rows(samples, depth):
    """samples: h x n int array (n samples per row) -> list of packed row bytes."""
    rows = []
    for r in samples:
        if depth == 16:
            rows.append(b"".join(struct.pack(">H", int(v)) for v in r))
        elif depth == 8:
            rows.append(bytes(int(v) for v in r))
        else:
            per = 8 // depth
            out = bytearray((len(r) + per - 1) // per)
            for j, v in enumerate(r):
                out[j // per] |= int(v) << (8 - depth * (j % per + 1))
            rows.append(bytes(out))
    return rows


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def write_png(samples, width, height, depth, ctype, interlace=False, plte=None, trns=None):
    """samples: height x width x channels int array of raw sample values."""
    ch = samples.shape[2]
    raw = b""
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    for x0, y0, dx, dy in passes:
        sub = samples[y0::dy, x0::dx]
        if sub.shape[0] == 0 or sub.shape[1] == 0:
            continue
        for row in _pack_rows(sub.reshape(sub.shape[0], sub.shape[1] * ch), depth):
            raw += b"\x00" + row
    png = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, ctype, 0, 0,
                                                               1 if interlace else 0))
    if plte is not None:
        png += _chunk(b"PLTE", bytes(plte))
    if trns is not None:
        png += _chunk(b"tRNS", bytes(trns))
    png += _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b"")
    return png
