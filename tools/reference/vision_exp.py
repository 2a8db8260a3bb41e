#!/usr/bin/python3
"""DeepSeek-V4-Flash-Vision-Exp image conventions (docs/vision-exp.md), written from that note.

Vision-Exp is the V4 text model (tools/reference/model.py) plus the V4.1 tower and aligner
(tools/reference/vision_v41.py, unchanged; the aligner's output width is the text model's dim). What differs
from V4.1 lives here, as plain integer functions and one Session subclass:

  plan(width, height, P)          pre-processing plan: min-pixel upscale, aspect clamp, the N-layout token count,
                                  the 384-token budget walk (docs/vision-exp.md §3)
  span_types(n_h, n_w, pos)       the sentinel roles of one image span placed at prompt position `pos`:
                                  IMAGE_PAD x (3 - pos % 4), START, the row pairs walked column by column, the
                                  trailing pad pair, END; and `perm`, the aligner row for each IMAGE slot (§4)
  expand(ids, grids, tok, vocab)  placeholder ids -> ids with vocab_size + role sentinels (§4)
  visible(ids, vocab, cap)        per-position (left, right) image-span visibility (§5)
  window_keys(p, l, r, W, width)  the raw-window key positions of a query (§5)
  ExpSession                      model.Session with embeddings overridden, bias_vl routing (hash layers
                                  included) and the widened window (§5, §6)

Everything that is not a decision of that note is the V4 reference unchanged.
"""
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model as m  # noqa: E402

# Roles, as the official numbering (vocab_size + role is the sentinel id).
START, PAD, IMAGE, NEW_LINE, END = 0, 1, 2, 3, 4
ALIGN = 4          # the ratio-4 compressor block the spans are aligned to


class Params:
    """Pre-processing parameters (config.json vision_* keys of Vision-Exp)."""

    def __init__(self, patch=14, down=3, max_tokens=384, min_pixels=147456, max_wh_ratio=8):
        self.patch, self.down, self.max_tokens = patch, down, max_tokens
        self.min_pixels, self.max_wh_ratio = min_pixels, max_wh_ratio


def count_tokens(best_h, best_w, P):
    """(n_llm_h, n_llm_w, span length without the leading alignment pads)."""
    n_h = -(-(best_h // P.patch) // P.down)
    n_w = -(-(best_w // P.patch) // P.down)
    rows = n_h + (n_h & 1)                    # odd row counts get one pad row
    body = rows * (n_w + 1)                   # every row ends with a NEW_LINE slot
    tail = 2 if (rows // 2) * (n_w + 1) % 2 else 0
    return n_h, n_w, body + tail + 2          # + START + END


def _solve(height, width, P, budget):
    cell = P.patch * P.down
    r = height / width
    mw = math.sqrt((budget - 2) / r + 0.25) - 0.5
    mh = mw * r
    if mw < 1.0:
        h_cells = (budget - 2) // 2
        h_cells -= h_cells & 1
        bw, bh = cell, h_cells * cell
    elif mh < 2.0:
        w_cells = (budget - 2) // 2 - 1
        if w_cells <= 1:
            raise ValueError("image cannot be planned within %d tokens" % budget)
        bw, bh = w_cells * cell, 2 * cell
    else:
        w_cells, h_cells = math.floor(mw), math.floor(mh)
        h_cells -= h_cells & 1
        beta = min(w_cells * cell / width, h_cells * cell / height)
        bw = math.floor(width * beta / P.patch) * P.patch
        bh = math.floor(height * beta / P.patch) * P.patch
    return bh, bw


def plan(width, height, P=None):
    """Plan one image of width x height pixels: dict with best_w, best_h (pixels), n_vit_h, n_vit_w, n_llm_h,
    n_llm_w, tokens (span length without leading pads), mode ('pad' = ImageOps.pad on 127 grey, 'resize' = plain
    Image.resize, taken when the ORIGINAL width >= max_wh_ratio * height)."""
    P = P or Params()
    w, h = width, height
    if P.max_wh_ratio is not None and w > h * P.max_wh_ratio:
        w = h * P.max_wh_ratio
    if 0 < w * h < P.min_pixels:
        k = (P.min_pixels / (w * h)) ** 0.5
        w, h = int(w * k), int(h * k)
    bw = math.ceil(w / P.patch) * P.patch
    bh = math.ceil(h / P.patch) * P.patch
    limit = P.max_tokens - (ALIGN - 1)
    n_h, n_w, tok = count_tokens(bh, bw, P)
    budget = limit
    while tok > limit:
        bh, bw = _solve(h, w, P, budget)
        n_h, n_w, tok = count_tokens(bh, bw, P)
        budget -= 1
    mode = "resize" if (P.max_wh_ratio is not None and width >= P.max_wh_ratio * height) else "pad"
    return dict(best_w=bw, best_h=bh, n_vit_h=bh // P.patch, n_vit_w=bw // P.patch, n_llm_h=n_h, n_llm_w=n_w,
                tokens=tok, mode=mode)


def span_types(n_h, n_w, pos):
    """Roles of one span whose first position is prompt position `pos`, and perm: for the k-th IMAGE slot in
    prompt order, the index of its aligner row (row-major over the n_h x n_w grid)."""
    rows, L = n_h + (n_h & 1), n_w + 1
    grid = []                                  # row-major slots: (role, aligner row or -1)
    for r in range(rows):
        for c in range(L):
            if r >= n_h:
                grid.append((PAD, -1))
            elif c == n_w:
                grid.append((NEW_LINE, -1))
            else:
                grid.append((IMAGE, r * n_w + c))
    body = []
    for pair in range(rows // 2):              # two rows at a time, column by column
        for c in range(L):
            body.append(grid[(2 * pair) * L + c])
            body.append(grid[(2 * pair + 1) * L + c])
    tail = 2 if (rows // 2) * L % 2 else 0
    types = [PAD] * (ALIGN - 1 - pos % ALIGN) + [START] + [t for t, _ in body] + [PAD] * tail + [END]
    perm = [a for t, a in body if t == IMAGE]
    return types, perm


def expand(ids, grids, image_token, vocab):
    """Replace each placeholder id by its span of vocab + role ids; grids: (n_llm_h, n_llm_w) per image, in
    order. Returns (ids, perms, spans) with spans the (first position, length) of each inserted block."""
    if sum(1 for t in ids if t == image_token) != len(grids):
        raise ValueError("placeholders and images differ")
    out, perms, spans, k = [], [], [], 0
    for t in ids:
        if t != image_token:
            out.append(t)
            continue
        types, perm = span_types(grids[k][0], grids[k][1], len(out))
        spans.append((len(out), len(types)))
        out += [vocab + r for r in types]
        perms.append(perm)
        k += 1
    return out, perms, spans


def visible(ids, vocab, cap):
    """(left, right) per position: for a position from a START to the END that closes it (both included), the
    distance back to that START (at most cap - 1) and forward to that END (at most cap); 0, 0 elsewhere
    (text, the leading pads, positions after an END). Mirrors the official cumulative formulation, including its
    answers for unbalanced sentinels: a position counts as inside when more STARTs than ENDs precede it (itself
    included) or it is an END; `left` is measured to the last START at or before it (0 when none) and `right` to
    the first END at or after it (the sequence length when none)."""
    n = len(ids)
    left, right = [0] * n, [0] * n
    opened = closed = last_start = 0
    inside = [False] * n
    for i, t in enumerate(ids):
        if t == vocab + START:
            opened += 1
            last_start = i
        if t == vocab + END:
            closed += 1
        inside[i] = opened > closed or t == vocab + END
        left[i] = min(i - last_start, cap - 1) if inside[i] else 0
    next_end = n
    for i in range(n - 1, -1, -1):
        if ids[i] == vocab + END:
            next_end = i
        right[i] = min(next_end - i, cap) if inside[i] else 0
    return left, right


def window_keys(p, left, right, W, width):
    """Raw-window key positions of the query at position p (a prompt evaluated from position 0): from
    max(0, p - (W - 1) - max(left - (W - 1), 0)) to p + right, at most `width` of them
    (width = min(prompt length, W + cap))."""
    lo = max(p - (W - 1) - max(left - (W - 1), 0), 0)
    hi = min(p + right, lo + width - 1)
    return list(range(lo, hi + 1))
