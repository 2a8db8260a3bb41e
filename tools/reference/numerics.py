"""Number formats and quantization simulations of DeepSeek-V4 (docs/architecture.md §2.3, §3.3-§3.5).

Written from docs/architecture.md §2.3, §3.3-§3.5 with exact float arithmetic (torch 1.13 has no float8/float4 dtypes). Every
function works on float32 *and* float64 tensors and keeps the input dtype: a float64 run of the
reference ("ideal accumulation") rounds at exactly the same points as a float32 run.

Rounding primitive: `round_grid(x, mbits, emin)` rounds to the nearest value with `mbits` explicit
mantissa bits and minimum normal exponent `emin` (subnormals below), ties to even. x / ulp is an exact
power-of-two scaling, so `torch.round` (half-to-even) on it is exact RNE.

Formats
- BF16: mbits 7, emin -126 (no overflow handling: values never approach 3e38).
- E4M3 (fn): mbits 3, emin -6, max 448, no inf, S.1111.111 = NaN. Encoding saturates |x| > 448 to 448.
- E8M0: byte b -> 2^(b-127), 255 = NaN.
- E2M1: mbits 1, emin 0, max 6 (grid 0, .5, 1, 1.5, 2, 3, 4, 6), RNE, saturating.

Quantization simulations (in-place semantics of the reference, returned as new tensors)
- fp8_sim(x, block): §3.3, blocks along the last dim (last block may be short);
  a = max(amax, 1e-4); scale = 2^ceil(log2(fl32(a*fl32(1/448)))); q = e4m3(clamp(x/scale, ±448)); x = q*scale.
- fp4_sim(x, block=32): §3.4, a = max(amax, 6*2^-126); scale = 2^ceil(log2(fl32(a*fl32(1/6))));
  x = bf16(e2m1(clamp(x/scale, ±6)) * scale).
- hadamard(x): §3.5, bf16(H x / sqrt(m)), Sylvester order, m = last dim (power of two).
Straight-through variants `*_ste` return x + (q(x) - x).detach() for training.
"""
import math
import torch

__all__ = [
    "round_grid", "round_bf16", "round_e4m3", "round_e2m1", "e4m3_decode_table", "e4m3_decode", "e4m3_encode",
    "e8m0_decode", "e8m0_encode_pow2", "e2m1_decode", "e2m1_encode", "pow2_ceil_scale", "fp8_quant", "fp8_sim",
    "fp4_sim", "hadamard", "hadamard_matrix", "ste", "round_bf16_ste", "fp8_sim_ste", "fp4_sim_ste",
    "fp8_weight_quant", "fp4_weight_quant", "fp8_weight_sim", "fp4_weight_sim",
]

E4M3_MAX = 448.0
E2M1_MAX = 6.0


def round_grid(x: torch.Tensor, mbits: int, emin: int) -> torch.Tensor:
    """Round to nearest (ties to even) on a binary float grid with `mbits` fraction bits and minimum
    normal exponent `emin` (below it: fixed ulp 2^(emin-mbits), i.e. subnormals). No saturation."""
    _, e = torch.frexp(x)                       # x = m * 2^e, 0.5 <= |m| < 1  -> leading exponent e-1
    ex = torch.clamp(e.to(torch.int64) - 1, min=emin)
    ulp = torch.ldexp(torch.ones_like(x), (ex - mbits).to(x.dtype))
    return torch.round(x / ulp) * ulp


def round_bf16(x: torch.Tensor) -> torch.Tensor:
    """Round to the nearest BF16 value (RNE), keep dtype."""
    if x.dtype == torch.float32:
        return x.to(torch.bfloat16).to(torch.float32)
    return round_grid(x, 7, -126)


def round_e4m3(x: torch.Tensor) -> torch.Tensor:
    """Nearest E4M3fn value (RNE), saturating to ±448 (values in (448, 464) would otherwise round to 480)."""
    return torch.clamp(round_grid(torch.clamp(x, -E4M3_MAX, E4M3_MAX), 3, -6), -E4M3_MAX, E4M3_MAX)


def round_e2m1(x: torch.Tensor) -> torch.Tensor:
    """Nearest E2M1 value (RNE), saturating to ±6."""
    return torch.clamp(round_grid(torch.clamp(x, -E2M1_MAX, E2M1_MAX), 1, 0), -E2M1_MAX, E2M1_MAX)


# ----------------------------------------------------------------------------- byte encodings
def e4m3_decode_table(dtype=torch.float32) -> torch.Tensor:
    """[256] values of every E4M3fn byte (0x7f / 0xff = NaN)."""
    vals = []
    for b in range(256):
        s = -1.0 if b & 0x80 else 1.0
        e = (b >> 3) & 0xF
        m = b & 7
        if e == 15 and m == 7:
            vals.append(float("nan"))
        elif e == 0:
            vals.append(s * m * 2.0 ** -9)
        else:
            vals.append(s * (1 + m / 8.0) * 2.0 ** (e - 7))
    return torch.tensor(vals, dtype=dtype)


def e4m3_decode(b: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    """uint8 bytes -> values."""
    return e4m3_decode_table(dtype)[b.to(torch.int64)]


def e4m3_encode(x: torch.Tensor) -> torch.Tensor:
    """Values -> uint8 E4M3fn bytes (RNE, saturate ±448, NaN -> 0x7f). Negative zero keeps its sign bit."""
    xd = x.to(torch.float64)
    nan = torch.isnan(xd)
    xd = torch.where(nan, torch.zeros_like(xd), xd)
    v = round_e4m3(xd)
    sign = (torch.signbit(v) | (torch.signbit(xd) & (v == 0))).to(torch.int64)
    a = v.abs()
    _, e = torch.frexp(a)
    e = e.to(torch.int64) - 1                   # unbiased exponent of the leading bit
    normal = a >= 2.0 ** -6
    ef = torch.where(normal, e + 7, torch.zeros_like(e))
    mant = torch.where(normal, a / torch.ldexp(torch.ones_like(a), (e - 3).to(a.dtype)) - 8, a / 2.0 ** -9)
    code = (sign << 7) | (ef << 3) | mant.round().to(torch.int64)
    code = torch.where(nan, torch.full_like(code, 0x7F), code)
    return code.to(torch.uint8)


def e8m0_decode(b: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    """uint8 UE8M0 bytes -> 2^(b-127) (255 -> NaN)."""
    bi = b.to(torch.int64)
    v = torch.ldexp(torch.ones(bi.shape, dtype=dtype), (bi - 127).to(dtype))
    return torch.where(bi == 255, torch.full_like(v, float("nan")), v)


def e8m0_encode_pow2(s: torch.Tensor) -> torch.Tensor:
    """Exact powers of two 2^k (k in [-127, 127]) -> uint8 byte k+127. Raises if not a power of two."""
    m, e = torch.frexp(s.to(torch.float64))
    if not bool(torch.all(m == 0.5)):
        raise ValueError("e8m0_encode_pow2: not a power of two")
    k = e.to(torch.int64) - 1
    if bool(torch.any((k < -127) | (k > 127))):
        raise ValueError("e8m0_encode_pow2: exponent out of range")
    return (k + 127).to(torch.uint8)


_E2M1_VALUES = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]


def e2m1_decode(code: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    """Low 4 bits of code -> E2M1 value (8..15 negative, 8 = -0)."""
    tab = torch.tensor(_E2M1_VALUES + [-v for v in _E2M1_VALUES], dtype=dtype)
    return tab[(code.to(torch.int64) & 0xF)]


def e2m1_encode(x: torch.Tensor) -> torch.Tensor:
    """Values -> 4-bit E2M1 codes (int64 0..15), RNE, saturating ±6."""
    v = round_e2m1(x.to(torch.float64))
    a = v.abs()
    idx = torch.zeros_like(a, dtype=torch.int64)
    for i, g in enumerate(_E2M1_VALUES):
        idx = torch.where(a == g, torch.full_like(idx, i), idx)
    return idx | (torch.signbit(v).to(torch.int64) << 3)


# ----------------------------------------------------------------------------- scales and simulations
def pow2_ceil_scale(amax: torch.Tensor, qmax: float, floor: float) -> torch.Tensor:
    """UE8M0 scale of the reference: 2^ceil(log2(fl32(max(amax, floor) * fl32(1/qmax)))), same dtype as amax.
    Computed in float32 as the official act_quant kernel does (amax times the F32 reciprocal), which
    decides the exponent at exact powers of two."""
    a = torch.clamp(amax, min=floor).to(torch.float32) * torch.tensor(1.0 / qmax, dtype=torch.float32)
    m, e = torch.frexp(a)
    k = e.to(torch.int64) - torch.where(m == 0.5, 1, 0)   # exact power of two: no +1
    return torch.ldexp(torch.ones_like(amax), k.to(amax.dtype))


def _blocks(x: torch.Tensor, block: int):
    n = x.shape[-1]
    nb = (n + block - 1) // block
    pad = nb * block - n
    if pad:
        x = torch.nn.functional.pad(x, (0, pad))
    return x.reshape(*x.shape[:-1], nb, block), n


def fp8_quant(x: torch.Tensor, block: int):
    """§3.3 act_quant: returns (q E4M3 values unscaled [..., n], scales [..., nblocks])."""
    xb, n = _blocks(x, block)
    s = pow2_ceil_scale(xb.abs().amax(-1, keepdim=True), E4M3_MAX, 1e-4)
    q = round_e4m3(xb / s)
    return q.reshape(*x.shape[:-1], -1)[..., :n], s.squeeze(-1)


def fp8_sim(x: torch.Tensor, block: int) -> torch.Tensor:
    """§3.3 quant-dequant along the last dim in blocks of `block` (128 GEMM input, 64 KV simulation)."""
    xb, n = _blocks(x, block)
    s = pow2_ceil_scale(xb.abs().amax(-1, keepdim=True), E4M3_MAX, 1e-4)
    y = round_e4m3(xb / s) * s
    return y.reshape(*x.shape[:-1], -1)[..., :n]


def fp4_sim(x: torch.Tensor, block: int = 32) -> torch.Tensor:
    """§3.4 FP4 (E2M1) quant-dequant in blocks of `block`, result rounded to BF16."""
    xb, n = _blocks(x, block)
    s = pow2_ceil_scale(xb.abs().amax(-1, keepdim=True), E2M1_MAX, 6.0 * 2.0 ** -126)
    y = round_e2m1(xb / s) * s
    return round_bf16(y.reshape(*x.shape[:-1], -1)[..., :n])


_HAD_CACHE = {}


def hadamard_matrix(m: int, dtype=torch.float32) -> torch.Tensor:
    """Sylvester Walsh-Hadamard matrix H[i,j] = (-1)^popcount(i&j) (entries ±1, unnormalized)."""
    key = (m, dtype)
    if key not in _HAD_CACHE:
        assert m & (m - 1) == 0, "hadamard size must be a power of two"
        i = torch.arange(m)
        a = i[:, None] & i[None, :]
        pc = torch.zeros_like(a)
        for b in range(max(1, m.bit_length())):
            pc += (a >> b) & 1
        _HAD_CACHE[key] = (1 - 2 * (pc % 2)).to(dtype)
    return _HAD_CACHE[key]


def hadamard(x: torch.Tensor) -> torch.Tensor:
    """§3.5 bf16(H x / sqrt(m)) along the last dim."""
    m = x.shape[-1]
    H = hadamard_matrix(m, x.dtype)
    return round_bf16(torch.matmul(x, H) * (m ** -0.5))


# ----------------------------------------------------------------------------- weight quantization (export)
def fp8_weight_quant(w: torch.Tensor, block: int = 128):
    """FP8 block weights (§2.3): per [block x block] tile scale = 2^ceil(log2(amax/448)) (power of two, so
    max|w| fits 448). Returns (q E4M3 values [out,in], scale [ceil(out/b), ceil(in/b)])."""
    o, i = w.shape
    no, ni = (o + block - 1) // block, (i + block - 1) // block
    wp = torch.nn.functional.pad(w, (0, ni * block - i, 0, no * block - o))
    t = wp.reshape(no, block, ni, block)
    amax = t.abs().amax(dim=(1, 3))
    s = pow2_ceil_scale(amax, E4M3_MAX, 2.0 ** -120)
    q = round_e4m3(t / s[:, None, :, None]).reshape(no * block, ni * block)[:o, :i]
    return q, s


def fp8_weight_sim(w: torch.Tensor, block: int = 128) -> torch.Tensor:
    q, s = fp8_weight_quant(w, block)
    return q * s.repeat_interleave(block, 0)[: w.shape[0]].repeat_interleave(block, 1)[:, : w.shape[1]]


def fp4_weight_quant(w: torch.Tensor, block: int = 32):
    """FP4 expert weights (§2.3): scale per [1 x 32] along the input dim = 2^ceil(log2(amax/6)).
    Returns (q E2M1 values [out,in], scale [out, in/32])."""
    o, i = w.shape
    assert i % block == 0
    t = w.reshape(o, i // block, block)
    s = pow2_ceil_scale(t.abs().amax(-1), E2M1_MAX, 2.0 ** -120)
    q = round_e2m1(t / s[..., None]).reshape(o, i)
    return q, s


def fp4_weight_sim(w: torch.Tensor, block: int = 32) -> torch.Tensor:
    q, s = fp4_weight_quant(w, block)
    return q * s.repeat_interleave(block, 1)


# ----------------------------------------------------------------------------- straight-through estimators
def ste(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Forward value q, gradient of identity w.r.t. x."""
    return x + (q - x).detach()


def round_bf16_ste(x):
    return ste(x, round_bf16(x.detach()))


def fp8_sim_ste(x, block):
    return ste(x, fp8_sim(x.detach(), block))


def fp4_sim_ste(x, block=32):
    return ste(x, fp4_sim(x.detach(), block))


if __name__ == "__main__":   # quick self-check
    t = e4m3_decode_table(torch.float64)
    fin = t[~torch.isnan(t)]
    assert float(fin.max()) == 448.0 and float(fin[fin > 0].min()) == 2.0 ** -9
    codes = torch.arange(256)
    ok = ~torch.isnan(t)
    assert torch.equal(e4m3_encode(t[ok]).to(torch.int64), codes[ok])
    assert torch.equal(round_e4m3(t[ok]), t[ok])
    x = torch.randn(10000) * 3
    assert torch.equal(round_bf16(x), round_grid(x.double(), 7, -126).float())
    assert round_e2m1(torch.tensor([5.0, 2.5, 0.25, 0.75, 7.0, -5.0])).tolist() == [4.0, 2.0, 0.0, 1.0, 6.0, -4.0]
    assert e2m1_decode(e2m1_encode(torch.tensor([-6.0, 0.5, 3.0]))).tolist() == [-6.0, 0.5, 3.0]
    assert round_e4m3(torch.tensor([449.0, 460.0, 1000.0, 2.0 ** -10, 3 * 2.0 ** -11])).tolist() == \
        [448.0, 448.0, 448.0, 0.0, 2.0 ** -9]
    print("numerics self-check ok")
