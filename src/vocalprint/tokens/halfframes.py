"""``tokens-nb``'s frame features from float16 frames: the rounding, each band's median over time,
and each frame's bands minus the medians, standardised. Three numba kernels, each one pass (two
for the medians) in row order, with NumPy forms where numba is missing.

- :func:`round_half`: float32 frames -> their float16 bit patterns, as ``astype(np.float16)``
  rounds them (to nearest, ties to even; subnormals, overflow to infinity); numba has no float16
  type on CPU, so the rounding is integer arithmetic. Timings of all three against NumPy are in
  docs/results.md, "PCEN and tokens-nb's tokens".
- :func:`half_band_medians`: exactly ``np.median(axis=0)`` of the float32 values. A float16 has
  65,536 bit patterns. Mapped to 16-bit keys that sort as the values do (negative values' bits
  inverted, positive values' sign bit set; without a branch, whose sign would be mispredicted),
  the element of a given rank is found by counting: one pass counts each band's keys by their high
  byte (256 bins), which says in which high byte the rank falls, and a second pass counts the low
  bytes of the keys in that bin. No sort and no copy per band. The median of an even count is the
  mean of its two middle values in float32, as NumPy takes it.
- :func:`standardised`: bands ``[lo, hi)`` minus their medians, each frame z-scored over them
  (:func:`vocalprint.tokens.codebook.normalise_frames` with ``frame_norm="standardize"``), its sums
  vectorised (fast-math reassociation): within 2e-6 of the NumPy form (tested), so a token changes
  only where two centroids are that near.
"""
from __future__ import annotations

import numpy as np

from vocalprint.core.numeric import jit

_KERNELS: dict = {}  # the compiled kernels, once per process
_FAST = frozenset({"reassoc", "contract", "nsz"})


def _round_numpy(x: np.ndarray, out: np.ndarray) -> int:
    """float32 ``x`` -> float16 bit patterns in ``out`` (same shape, uint16); the count of NaN."""
    with np.errstate(over="ignore"):
        out[...] = x.astype(np.float16).view(np.uint16)
    return int(np.isnan(x).sum())


def _round_kernel(x, out):  # the numba form of _round_numpy (compiled by _kernel)
    u = x.reshape(-1).view(np.uint32)
    o = out.reshape(-1)
    n_nan = 0
    for i in range(u.size):
        f = u[i]
        sign = (f >> 16) & 0x8000
        a = f & 0x7FFFFFFF
        if a >= 0x477FF000:  # rounds to infinity, or is infinity or NaN
            if a > 0x7F800000:
                n_nan += 1
                h = 0x7E00
            else:
                h = 0x7C00
        elif a >= 0x38800000:  # a float16 normal: rebias the exponent, round 13 mantissa bits
            a -= 0x38000000
            h = (a + 0xFFF + ((a >> 13) & 1)) >> 13
        elif a > 0x33000000:  # a float16 subnormal (or, rounded up, the smallest normal)
            e = a >> 23
            m = (a & 0x7FFFFF) | 0x800000
            s = 126 - e
            q = m >> s
            rem = m & ((1 << s) - 1)
            half = 1 << (s - 1)
            if rem > half or (rem == half and (q & 1)):
                q += 1
            h = q
        else:  # at most half the smallest subnormal: zero
            h = 0
        o[i] = sign | h
    return n_nan


def _ranks_numpy(bits: np.ndarray, r1: int, r2: int) -> tuple[np.ndarray, int]:
    """The bit patterns [2, n_bands] of each band's elements of ranks r1 and r2, and the count of
    NaN elements (whose ranks mean nothing) (NumPy form)."""
    v = np.sort(bits.view(np.float16).astype(np.float32), axis=0)
    return np.stack([v[r1], v[r2]]).astype(np.float16).view(np.uint16), int(np.isnan(v).sum())


def _ranks_kernel(bits, r1, r2):  # the numba form of _ranks_numpy (compiled by _kernel)
    t, n = bits.shape
    hi_count = np.zeros((n, 256), np.int32)
    n_nan = 0
    for i in range(t):
        row = bits[i]
        for j in range(n):
            b = np.int32(row[j])
            n_nan += (b & 0x7FFF) > 0x7C00
            k = b ^ (0x8000 + (b >> 15) * 0x7FFF)  # the sort key, without a branch
            hi_count[j, k >> 8] += 1
    ranks = (r1, r2)
    hi = np.zeros((2, n), np.int32)
    below = np.zeros((2, n), np.int64)  # elements in the high bytes under it
    for j in range(n):
        for w in range(2):
            c = 0
            for h in range(256):
                if c + hi_count[j, h] > ranks[w]:
                    hi[w, j], below[w, j] = h, c
                    break
                c += hi_count[j, h]
    lo_count = np.zeros((2, n, 257), np.int32)  # bin 256 takes the keys of other high bytes
    h0, h1 = hi[0], hi[1]
    for i in range(t):
        row = bits[i]
        for j in range(n):
            b = np.int32(row[j])
            k = b ^ (0x8000 + (b >> 15) * 0x7FFF)
            h, lo = k >> 8, k & 255
            lo_count[0, j, lo if h == h0[j] else 256] += 1
            lo_count[1, j, lo if h == h1[j] else 256] += 1
    out = np.zeros((2, n), np.uint16)
    for j in range(n):
        for w in range(2):
            c = below[w, j]
            for lo in range(256):
                if c + lo_count[w, j, lo] > ranks[w]:
                    k = (hi[w, j] << 8) | lo
                    out[w, j] = (k ^ 0x8000) if k >= 0x8000 else (~k) & 0xFFFF
                    break
                c += lo_count[w, j, lo]
    return out, n_nan


def lut_values() -> np.ndarray:
    """Every float16 bit pattern's float32 value [65536] (made once per process)."""
    if "lut" not in _KERNELS:
        _KERNELS["lut"] = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(np.float32)
    return _KERNELS["lut"]


def _standardised_numpy(bits, lut, med, lo, hi, out):
    """Bands [lo, hi) of float16 ``bits`` minus ``med[lo:hi]``, each row z-scored, into ``out``."""
    from vocalprint.config import TokensConfig
    from vocalprint.tokens.codebook import normalise_frames

    x = lut[bits[:, lo:hi]] - med[lo:hi]
    out[...] = normalise_frames(x, cfg=TokensConfig(frame_norm="standardize"))


def _standardised_kernel(bits, lut, med, lo, hi, out):  # the numba form (compiled with _FAST)
    t = bits.shape[0]
    w = hi - lo
    row = np.empty(w, np.float32)
    m = med[lo:hi]
    for i in range(t):
        b = bits[i, lo:hi]
        for j in range(w):
            row[j] = lut[b[j]] - m[j]
        s = np.float32(0.0)
        for j in range(w):
            s += row[j]
        mean = s / np.float32(w)
        q = np.float32(0.0)
        for j in range(w):
            d = row[j] - mean
            q += d * d
        inv = np.float32(1.0) / (np.sqrt(q / np.float32(w)) + np.float32(1e-3))
        o = out[i]
        for j in range(w):
            o[j] = (row[j] - mean) * inv


def _kernel(name: str):
    if name not in _KERNELS:
        b = np.zeros((3, 2), np.uint16)
        if name == "round":
            f = jit(_round_kernel, (np.zeros((3, 2), np.float32), b), _round_numpy, "halfframes.round")
        elif name == "ranks":
            f = jit(_ranks_kernel, (b, 1, 1), _ranks_numpy, "halfframes.ranks")
        else:
            probe = (b, lut_values(), np.zeros(2, np.float32), 0, 2, np.zeros((3, 2), np.float32))
            f = jit(_standardised_kernel, probe, _standardised_numpy, "halfframes.standardised", fastmath=_FAST)
        _KERNELS[name] = f
    return _KERNELS[name]


def round_half(frames: np.ndarray) -> np.ndarray:
    """float32 frames [t, n_bands] -> their float16 bit patterns, uint16 [t, n_bands], equal to
    ``frames.astype(np.float16).view(np.uint16)``. NaN is refused."""
    x = np.ascontiguousarray(frames)
    if x.dtype != np.float32 or x.ndim != 2:
        raise ValueError(f"round_half needs float32 frames [t, n_bands], got {x.dtype} {x.shape}")
    out = np.empty(x.shape, np.uint16)
    n_nan = _kernel("round")(x, out) if x.size else 0
    if n_nan:
        raise ValueError(f"round_half: the frames hold {n_nan} NaN")
    return out


def half_band_medians(frames: np.ndarray) -> np.ndarray:
    """Each band's median over time of float16 frames [t, n_bands] -> [n_bands] float32, equal to
    ``np.median(frames.astype(np.float32), axis=0)``. NaN is refused (its bits have no order),
    counted inside the kernel's first pass rather than in a pass of its own."""
    x = np.ascontiguousarray(frames)
    if x.dtype != np.float16 or x.ndim != 2:
        raise ValueError(f"half_band_medians needs float16 frames [t, n_bands], got {x.dtype} {x.shape}")
    if not len(x):
        raise ValueError("half_band_medians needs at least one frame")
    t = len(x)
    bits, n_nan = _kernel("ranks")(x.view(np.uint16), (t - 1) // 2, t // 2)
    if n_nan:
        raise ValueError(f"half_band_medians: the frames hold {n_nan} NaN")
    two = bits.view(np.float16).astype(np.float32)
    return (two[0] + two[1]) / np.float32(2)


def standardised(frames: np.ndarray, medians: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Bands ``[lo, hi)`` of float16 frames [t, n_bands] minus ``medians`` [n_bands], each frame
    z-scored over them -> [t, hi - lo] float32, within 2e-6 of
    ``normalise_frames(frames[:, lo:hi].astype(np.float32) - medians[lo:hi])`` (standardize)."""
    x = np.ascontiguousarray(frames)
    med = np.ascontiguousarray(medians, np.float32)
    if x.dtype != np.float16 or x.ndim != 2 or med.shape != (x.shape[1],):
        raise ValueError(f"standardised needs float16 frames [t, n_bands] and [n_bands] medians, got "
                         f"{x.dtype} {x.shape} and {med.shape}")
    if not 0 <= lo < hi <= x.shape[1]:
        raise ValueError(f"standardised: bands [{lo}, {hi}) outside 0..{x.shape[1]}")
    out = np.empty((len(x), hi - lo), np.float32)
    if len(x):
        f = _kernel("standardised")
        f(x.view(np.uint16), lut_values(), med, int(lo), int(hi), out)
    return out


def warm_up() -> None:
    """Compile (or load from the disk cache) every kernel of the module, e.g. before the clock starts."""
    x = round_half(np.zeros((3, 2), np.float32)).view(np.float16)
    standardised(x, half_band_medians(x), 0, 2)
