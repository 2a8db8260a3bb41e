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


# ------------------------------------------------------------------------------------------------ images
def load_patches(path, P, patch_size=14):
    """Decode an image file, plan it (plan()), resize ('pad': ImageOps.pad on 127 grey; 'resize': Image.resize
    with Pillow's default filter) and cut it: (patches [n_vit_h * n_vit_w, 3, p, p] BF16 values as float32,
    plan dict)."""
    import numpy as np
    from PIL import Image, ImageOps
    im = Image.open(path).convert("RGB")
    pl = plan(im.width, im.height, P)
    size = (pl["best_w"], pl["best_h"])
    im = im.resize(size) if pl["mode"] == "resize" else ImageOps.pad(im, size, color=(127, 127, 127))
    x = torch.from_numpy(np.asarray(im, dtype=np.float32).copy()) / 255
    x = ((x - 0.5) / 0.5).to(torch.bfloat16).float()
    p, nh, nw = patch_size, pl["n_vit_h"], pl["n_vit_w"]
    x = x.reshape(nh, p, nw, p, 3).permute(0, 2, 4, 1, 3).reshape(nh * nw, 3, p, p)
    return x, pl


class Prompt:
    """Text ids with each placeholder expanded (expand()): ids (vocab + role at image positions), roles (-1 for
    text), rows (per position: None, or the BF16 aligner row / learned vector to use as its embedding), spans
    ((first, length) of each inserted block, pads included) and `spans_se` ((START, END) positions)."""

    def __init__(self, text_ids, image_rows, grids, image_token, vocab, sentinels):
        self.vocab = vocab
        self.ids, perms, self.spans = expand(text_ids, grids, image_token, vocab)
        self.roles = [t - vocab if t >= vocab else -1 for t in self.ids]
        self.rows = [None] * len(self.ids)
        self.spans_se = []
        for (first, n), perm, rows in zip(self.spans, perms, image_rows):
            k = 0
            for p in range(first, first + n):
                r = self.roles[p]
                if r == IMAGE:
                    self.rows[p] = rows[perm[k]]
                    k += 1
                else:
                    self.rows[p] = sentinels[r]
                if r == START:
                    s0 = p
            self.spans_se.append((s0, first + n - 1))


class ExpSession:
    """Stateful evaluation of a Prompt on the V4 reference (model.Transformer) with the Vision-Exp rules:
    embeddings overridden, every image role routed with bias_vl (hash layers: top-k of score + bias_vl instead
    of tid2eid), the raw window widened inside spans (visible()/window_keys()). eval(first, n) evaluates prompt
    positions [first, first + n) and returns their logits [n, vocab]; a call that cuts a START..END span is
    refused (ValueError), as the official code refuses image ids after the first prefill."""

    def __init__(self, model, prompt, bias_vl, cap, dtype=torch.float64, record=False):
        self.model, self.prompt, self.dtype = model, prompt, dtype
        self.bias_vl = bias_vl            # {layer: tensor [E]}
        self.caches = [dict() for _ in model.layers]
        self.pos = 0
        self.margins = [] if record else None
        cfg = model.cfg
        self.left, self.right = visible(prompt.ids, prompt.vocab, cap)
        self.W, self.cap = cfg.window, cap

    def _window_mask(self, sp, tq):
        W = self.W
        q = tq[:, 0].tolist()
        lo = torch.tensor([max(p - (W - 1) - max(self.left[p] - (W - 1), 0), 0) for p in q])
        hi = torch.tensor([p + self.right[p] for p in q])
        assert bool(((hi - lo + 1) <= W + self.cap).all()), "span longer than the image-token cap"
        return (sp[None, :] >= lo[:, None]) & (sp[None, :] <= hi[:, None])

    def _route(self, moe, s, tok):
        cfg = moe.cfg
        image = tok >= self.prompt.vocab
        li = moe.layer_id
        if moe.gate.hash:
            ids = moe.gate.tid2eid[torch.where(image, torch.zeros_like(tok), tok)].clone()
            b = s.detach() + self.bias_vl[li].to(s.dtype)
            rows = image
        else:
            bias = torch.where(image[:, None], self.bias_vl[li].to(s.dtype)[None, :],
                               moe.gate.bias.detach().to(s.dtype)[None, :])
            b = s.detach() + bias
            rows = torch.ones_like(image)
        top = torch.sort(b, dim=-1, descending=True, stable=True)      # exact ties: lower expert id
        ids = torch.where(rows[:, None], top[1][:, :cfg.topk], ids if moe.gate.hash else top[1][:, :cfg.topk])
        if m.CTX.rec is not None and cfg.n_experts > cfg.topk:
            v = top[0]
            gaps = ((v[:, cfg.topk - 1] - v[:, cfg.topk]) / v[:, 0].abs().clamp(min=1e-30)).tolist()
            for row, gp in enumerate(gaps):
                if bool(rows[row]):
                    m.CTX.rec.append(("router", li, m.CTX.pos0 + row, gp, tuple(sorted(ids[row].tolist()))))
        return ids

    @torch.no_grad()
    def eval(self, first, n):
        P = self.prompt
        assert first == self.pos and n >= 1 and first + n <= len(P.ids)
        for s0, e0 in P.spans_se:
            if first <= e0 and first + n > s0 and not (first <= s0 and first + n > e0):
                raise ValueError("call [%d, %d) cuts the image span %d..%d" % (first, first + n, s0, e0))
        mdl, cfg = self.model, self.model.cfg
        ids = P.ids[first:first + n]
        toks = torch.tensor([ids], dtype=torch.int64)
        safe = torch.where(toks >= P.vocab, torch.zeros_like(toks), toks)
        e = mdl.embed_tokens(safe, self.dtype).clone()
        for k in range(n):
            r = P.rows[first + k]
            if r is not None:
                e[0, k] = r.to(self.dtype)
        X = e.unsqueeze(-2).expand(1, n, cfg.hc, cfg.dim).contiguous()
        m.CTX.rec, m.CTX.window_mask, m.CTX.route = self.margins, self._window_mask, self._route
        try:
            for i, layer in enumerate(mdl.layers):
                X = layer(X, first, toks, self.caches[i])
            logits = mdl.logits_from_state(X)[0]
        finally:
            m.CTX.rec, m.CTX.window_mask, m.CTX.route = None, None, None
        self.pos += n
        return logits.to(torch.float32)
