"""Each band's median over time of float16 frames, exactly as ``np.median(axis=0)`` of their float32
values, 1.9 times faster on one core on the dev soundscapes (docs/results.md, "PCEN and tokens-nb's
tokens").

A float16 has 65,536 bit patterns. Mapped to 16-bit keys that sort as the values do (negative
values' bits inverted, positive values' sign bit set), the element of a given rank is found by
counting: one pass over the frames counts each band's keys by their high byte (256 bins), which
says in which high byte the rank falls, and a second pass counts the low bytes of the keys in that
bin. Two passes in row order, no sort and no copy per band. The median of an even count is the mean
of its two middle values in float32, as NumPy takes it.
"""
from __future__ import annotations

import numpy as np

from vocalprint.core.numeric import jit

_KERNEL: list = []  # the compiled counting kernel, once per process


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
        for j in range(n):
            b = bits[i, j]
            if (b & 0x7FFF) > 0x7C00:
                n_nan += 1
            k = (b ^ 0x8000) if b < 0x8000 else (~b) & 0xFFFF
            hi_count[j, k >> 8] += 1
    ranks = (r1, r2)
    hi = np.zeros((2, n), np.int64)
    below = np.zeros((2, n), np.int64)  # elements in the high bytes under it
    for j in range(n):
        for w in range(2):
            c = 0
            for h in range(256):
                if c + hi_count[j, h] > ranks[w]:
                    hi[w, j], below[w, j] = h, c
                    break
                c += hi_count[j, h]
    lo_count = np.zeros((2, n, 256), np.int32)
    for i in range(t):
        for j in range(n):
            b = bits[i, j]
            k = (b ^ 0x8000) if b < 0x8000 else (~b) & 0xFFFF
            h = k >> 8
            for w in range(2):
                if h == hi[w, j]:
                    lo_count[w, j, k & 255] += 1
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


def _kernel():
    if not _KERNEL:
        probe = np.zeros((3, 2), np.uint16)
        _KERNEL.append(jit(_ranks_kernel, (probe, 1, 1), _ranks_numpy, "halfmedian"))
    return _KERNEL[0]


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
    bits, n_nan = _kernel()(x.view(np.uint16), (t - 1) // 2, t // 2)
    if n_nan:
        raise ValueError(f"half_band_medians: the frames hold {n_nan} NaN")
    two = bits.view(np.float16).astype(np.float32)
    return (two[0] + two[1]) / np.float32(2)
