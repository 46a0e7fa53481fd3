"""The Mel power spectrogram in float32, blockwise: the project's front end at the speed floor of a
NumPy/SciPy stack with one small numba kernel (measured in docs/results.md, "The front end").

Same frames as ``librosa.stft(center=True)`` (librosa 0.11 zero-pads half a window on each side),
periodic Hann window, the same filterbank (:func:`vocalprint.audio.mel.mel_basis`); the FFT runs in
float32 (complex64) where librosa computes in float64, so dB values differ by at most about 0.02 dB,
and by more than 0.01 dB only in bands about 90 dB below the frame's loudest (float16, the Mel
cache's type, has 0.03-0.06 dB steps there).

The frames go to the real FFT as strided views of the signal, unwindowed: the FFT copies each frame
into its own buffer anyway, so a windowed copy would be a second pass. The periodic Hann window is
applied to the spectrum instead, where it is exact and three taps long,
``Xw[k] = X[k] / 2 - (X[k - 1] + X[k + 1]) / 4`` (``X[-1] = conj(X[1])``, ``X[N/2 + 1] =
conj(X[N/2 - 1])``), fused with the power in one pass (:func:`hann_power`). Frames go ``block`` at a
time so the spectrum and power stay in cache; the filterbank is a few small matmuls, 16 bands each
over only the frequency bins they touch.
"""
from __future__ import annotations

import numpy as np

_PLANS: dict = {}  # (sr, n_fft, basis) -> (window, [(band0, band1, bin0, bin1, W [bins, bands])])
BLOCK = 64
BAND_GROUP = 16
_KERNEL: list = []  # the compiled hann_power kernel, once per process


def _plan(sr: int, basis: np.ndarray, n_fft: int) -> tuple[np.ndarray, list]:
    from scipy.signal import get_window

    groups = []
    for b0 in range(0, basis.shape[0], BAND_GROUP):
        sub = basis[b0:b0 + BAND_GROUP]
        nz = np.flatnonzero(sub.any(axis=0))
        k0, k1 = (int(nz[0]), int(nz[-1]) + 1) if nz.size else (0, 1)
        groups.append((b0, b0 + sub.shape[0], k0, k1, np.ascontiguousarray(sub[:, k0:k1].T, dtype=np.float32)))
    return get_window("hann", n_fft, fftbins=True).astype(np.float32), groups


def _segments(x: np.ndarray, *, n_fft: int, hop: int, t: int) -> list[tuple[int, int, np.ndarray, int]]:
    """(first frame, end frame, source, offset of the first frame's first sample): the frames inside
    ``x`` are strided views of it; the few reaching into the centre padding come from small copies."""
    n, half = x.size, n_fft // 2
    i0 = -(-half // hop)
    i1 = min(t, max(i0, (n - half) // hop + 1)) if n >= n_fft else i0
    if i1 <= i0:  # short input: pad it all
        i0 = i1 = t
    out = []
    if i0 > 0:
        head = np.zeros((i0 - 1) * hop + n_fft, np.float32)
        m = min(n, head.size - half)
        head[half:half + m] = x[:m]
        out.append((0, i0, head, 0))
    if i1 > i0:
        out.append((i0, i1, x, i0 * hop - half))
    if t > i1:
        s = i1 * hop - half
        tail = np.zeros((t - 1 - i1) * hop + n_fft, np.float32)
        tail[:n - s] = x[s:]
        out.append((i1, t, tail, 0))
    return out


def hann_power_numpy(s: np.ndarray, p: np.ndarray) -> None:
    """Power ``p`` [rows, N/2 + 1] of the periodic-Hann-windowed frames, from the float32 view ``s``
    [rows, N + 2] (re, im interleaved) of the unwindowed frames' real FFT (``N`` even). The reference
    for :func:`hann_power`, and its stand-in where numba cannot compile."""
    re, im = s[:, 0::2], s[:, 1::2]
    yr = np.empty_like(re)
    yi = np.empty_like(im)
    yr[:, 1:-1] = 0.5 * re[:, 1:-1] - 0.25 * (re[:, :-2] + re[:, 2:])
    yi[:, 1:-1] = 0.5 * im[:, 1:-1] - 0.25 * (im[:, :-2] + im[:, 2:])
    yr[:, 0] = 0.5 * re[:, 0] - 0.5 * re[:, 1]  # X[-1] = conj(X[1]); X[0] is real
    yr[:, -1] = 0.5 * re[:, -1] - 0.5 * re[:, -2]  # X[N/2 + 1] = conj(X[N/2 - 1]); X[N/2] is real
    yi[:, 0] = yi[:, -1] = 0.0
    np.add(yr * yr, yi * yi, out=p)


def _hann_power_kernel(s, p):  # the numba form of hann_power_numpy (compiled by _compile)
    rows, nb = p.shape
    for r in range(rows):
        a = s[r]
        q = p[r]
        yr = 0.5 * a[0] - 0.5 * a[2]
        q[0] = yr * yr
        for k in range(1, nb - 1):
            yr = 0.5 * a[2 * k] - 0.25 * (a[2 * k - 2] + a[2 * k + 2])
            yi = 0.5 * a[2 * k + 1] - 0.25 * (a[2 * k - 1] + a[2 * k + 3])
            q[k] = yr * yr + yi * yi
        yr = 0.5 * a[2 * nb - 2] - 0.5 * a[2 * nb - 4]
        q[nb - 1] = yr * yr


def _compile():
    """The numba form of :func:`hann_power_numpy` (one pass, about 1.3 ms per audio minute against
    about 5 ms for the time-domain window plus the power), by :func:`vocalprint.core.numeric.jit`."""
    from vocalprint.core.numeric import jit

    probe = (np.zeros((1, 10), np.float32), np.zeros((1, 5), np.float32))
    return jit(_hann_power_kernel, probe, hann_power_numpy, "the Mel's window kernel")


def hann_power(s: np.ndarray, p: np.ndarray) -> None:
    """:func:`hann_power_numpy` as one compiled pass (compiled on first use in each process)."""
    if not _KERNEL:
        _KERNEL.append(_compile())
    _KERNEL[0](s, p)


def mel_power(x: np.ndarray, *, sr: int, basis: np.ndarray, n_fft: int, hop: int, block: int = BLOCK) -> np.ndarray:
    """Mel power of mono audio ``x`` [shape=(n,)] (``n >= n_fft // 2 + 1``) with filterbank ``basis``
    [n_mels, 1 + n_fft // 2] -> [shape=(t, n_mels)] float32, ``t = 1 + n // hop`` centred frames."""
    import scipy.fft

    key = (sr, n_fft, basis.shape, basis.ctypes.data)
    if key not in _PLANS:
        _PLANS[key] = _plan(sr, basis, n_fft)
    win, groups = _PLANS[key]
    x = np.ascontiguousarray(x, dtype=np.float32)
    t = 1 + x.size // hop
    n_bins = 1 + n_fft // 2
    window_spectrum = n_fft % 2 == 0  # the three-tap form needs the Nyquist bin
    out = np.empty((t, basis.shape[0]), np.float32)
    buf = None if window_spectrum else np.empty((block, n_fft), np.float32)
    power = np.empty((block, n_bins), np.float32)
    for f0, f1, src, off in _segments(x, n_fft=n_fft, hop=hop, t=t):
        frames = np.lib.stride_tricks.as_strided(src[off:], shape=(f1 - f0, n_fft),
                                                 strides=(hop * src.itemsize, src.itemsize), writeable=False)
        for i in range(0, f1 - f0, block):
            rows = min(block, f1 - f0 - i)
            p = power[:rows]
            if window_spectrum:
                spec = scipy.fft.rfft(frames[i:i + rows], axis=-1, workers=1).view(np.float32)  # re, im, ...
                hann_power(spec, p)
            else:
                w = np.multiply(frames[i:i + rows], win, out=buf[:rows])
                spec = scipy.fft.rfft(w, axis=-1, workers=1, overwrite_x=True).view(np.float32)
                np.square(spec, out=spec)
                np.add(spec[:, 0::2], spec[:, 1::2], out=p)
            o = out[f0 + i:f0 + i + rows]
            for b0, b1, k0, k1, wg in groups:
                np.matmul(p[:, k0:k1], wg, out=o[:, b0:b1])
    return out
