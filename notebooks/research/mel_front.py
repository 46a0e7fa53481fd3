"""How fast can the log-Mel front end run on one core, and how close does it stay to librosa's?

Times librosa's log-Mel (``vocalprint.audio.mel.logmel_reference``: STFT in float64, dense
filterbank), the project's ``logmel`` (unwindowed frames to a float32 real FFT, the periodic Hann
window applied on the spectrum as three taps fused with the power in a numba kernel, blocks of 64)
and the float32 rewrites measured on the way: frames as strided views of the zero-padded signal (librosa 0.11's centre padding,
``pad_mode="constant"``), the periodic Hann window in float32, a float32 real FFT, power as
re² + im², the Mel filterbank as a dense matmul, a sparse CSR matrix, per-band bin slices or
groups of 16 bands (each group a small dense matmul over its bins), then 10·log10(max(s, 1e-10)).
pyfftw and mkl-fft variants run when those packages are importable (never install them into the
project venv: use a scratch venv whose ``.pth`` points at the project's site-packages).

Every number is one core: OMP/OPENBLAS/MKL/NUMBA threads are set to 1 before numpy is imported
and scipy.fft runs with ``workers=1``. Variants are timed interleaved on 60 s of seeded white noise
plus tones, best of ``--repeat`` (wall clock, and thread CPU time, which a busy machine inflates
less). Accuracy is the largest and the 99.9th-percentile absolute difference in dB from librosa's
output over all frames and bands, on the synthetic minute and on each ``--audio`` file.

    PYTHONPATH=src .venv/bin/python notebooks/research/mel_front.py --repeat 7
    # with the optional FFTs, from a scratch venv that sees the project's packages:
    #   python3.11 -m venv /tmp/rs/mel/venv
    #   echo $PWD/.venv/lib/python3.11/site-packages > /tmp/rs/mel/venv/lib/python3.11/site-packages/main.pth
    #   /tmp/rs/mel/venv/bin/pip install pyfftw mkl-fft av miniaudio
    PYTHONPATH=src /tmp/rs/mel/venv/bin/python notebooks/research/mel_front.py --repeat 31 \
        --audio ../shared/data/dev/test_soundscapes/*.ogg

``fast_logmel`` below is the adopted variant, written to be lifted into
``src/vocalprint/audio/mel.py`` (it needs that module's ``mel_basis``).
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_v] = "1"  # one core, before numpy (and its BLAS) is imported

import argparse  # noqa: E402
import glob  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from vocalprint.audio.mel import logmel, logmel_reference, mel_basis  # noqa: E402
from vocalprint.config.schema import MelConfig  # noqa: E402

DEFAULT_AUDIO = sorted(glob.glob(str(Path(__file__).resolve().parents[3] / "shared/data/dev/test_soundscapes/*.ogg")))[:1]


# ----------------------------------------------------------------------------- the adopted variant
_FAST: dict = {}  # (sr, cfg) -> (float32 periodic Hann window, [(band0, band1, bin0, bin1, W [bins, bands])])
_FFTW_PLANS = threading.local()  # per thread: (n_fft, block) -> (input buffer, output buffer, pyfftw.FFTW)


def fast_logmel(x: np.ndarray, *, sr: int, cfg: MelConfig, fft: str = "scipy", block: int = 128) -> np.ndarray:
    """``logmel`` in float32: about 2.7x faster on one core with scipy's FFT, 3x with pyfftw's.

    Mono audio [shape=(n,)] -> [shape=(t, n_mels)] float32, ``t = 1 + n // hop``. Same frames
    (centred, zero-padded as librosa 0.11 pads), periodic Hann window, filterbank, dB floor and PCEN
    as :func:`logmel`; the STFT runs in float32 (complex64) where librosa computes in float64, so
    values differ by at most 0.02 dB (0.03 with pyfftw) over 32 dev soundscapes, 0.001 dB at the
    99.9th percentile, and by more than 0.01 dB only in bands about 90 dB below the frame's loudest,
    where float16 (the cache's dtype) has 0.03-0.06 dB steps. ``fft`` is ``"scipy"`` (base
    dependencies, bit-reproducible) or ``"pyfftw"`` (optional package; an FFTW_MEASURE plan per thread,
    about 0.2 s once, whose choice varies between processes, so the last bits do too). Frames go
    ``block`` at a time so the windowed frames, spectrum and power stay in cache; the filterbank is
    8 small dense matmuls, 16 bands each over only the bins they touch.
    """
    if cfg.frontend not in ("logmel", "pcen"):
        raise ValueError(f"mel.frontend must be 'logmel' or 'pcen', got {cfg.frontend!r}")
    import scipy.fft

    key = (sr, cfg)
    if key not in _FAST:
        from scipy.signal import get_window

        basis = mel_basis(sr, cfg)  # [n_mels, 1 + n_fft // 2]
        groups = []
        for b0 in range(0, basis.shape[0], 16):
            sub = basis[b0:b0 + 16]
            nz = np.flatnonzero(sub.any(axis=0))
            k0, k1 = (int(nz[0]), int(nz[-1]) + 1) if nz.size else (0, 1)
            groups.append((b0, b0 + sub.shape[0], k0, k1, np.ascontiguousarray(sub[:, k0:k1].T, dtype=np.float32)))
        _FAST[key] = (get_window("hann", cfg.n_fft, fftbins=True).astype(np.float32), groups)
    win, groups = _FAST[key]
    n_fft, hop, half = cfg.n_fft, cfg.hop, cfg.n_fft // 2
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.size < half + 1:  # as logmel does
        x = np.pad(x, (0, half + 1 - x.size))
    n = x.size
    t = 1 + n // hop
    n_bins = 1 + half
    # frames [i0, i1) lie inside x and are strided views of it; the few at either end that reach
    # into the centre padding come from small zero-padded copies
    i0 = -(-half // hop)
    i1 = min(t, max(i0, (n - half) // hop + 1)) if n >= n_fft else i0
    if i1 <= i0:  # short input: pad it all
        i0 = i1 = t
    segments = []  # (first frame, end frame, source array, offset of the first frame's first sample)
    if i0 > 0:
        head = np.zeros((i0 - 1) * hop + n_fft, np.float32)
        m = min(n, head.size - half)
        head[half:half + m] = x[:m]
        segments.append((0, i0, head, 0))
    if i1 > i0:
        segments.append((i0, i1, x, i0 * hop - half))
    if t > i1:
        s = i1 * hop - half
        tail = np.zeros((t - 1 - i1) * hop + n_fft, np.float32)
        tail[:n - s] = x[s:]
        segments.append((i1, t, tail, 0))
    out = np.empty((t, groups[-1][1]), np.float32)  # [t, n_mels]
    if fft == "pyfftw":
        import pyfftw

        plans = _FFTW_PLANS.__dict__.setdefault("plans", {})
        if (n_fft, block) not in plans:
            a = pyfftw.empty_aligned((block, n_fft), dtype="float32")
            z = pyfftw.empty_aligned((block, n_bins), dtype="complex64")
            plans[n_fft, block] = (a, z, pyfftw.FFTW(a, z, axes=(-1,), flags=("FFTW_MEASURE", "FFTW_DESTROY_INPUT"),
                                                     threads=1))
        buf, zbuf, plan = plans[n_fft, block]
    elif fft == "scipy":
        buf, zbuf, plan = np.empty((block, n_fft), np.float32), None, None
    else:
        raise ValueError(f"fft must be 'scipy' or 'pyfftw', got {fft!r}")
    power = np.empty((block, n_bins), np.float32)
    for f0, f1, src, off in segments:
        frames = np.lib.stride_tricks.as_strided(src[off:], shape=(f1 - f0, n_fft),
                                                 strides=(hop * src.itemsize, src.itemsize), writeable=False)
        for i in range(0, f1 - f0, block):
            rows = min(block, f1 - f0 - i)
            w = np.multiply(frames[i:i + rows], win, out=buf[:rows])
            if plan is None:
                spec = scipy.fft.rfft(w, axis=-1, workers=1, overwrite_x=True)
            else:  # the whole block buffer: rows past ``rows`` are stale and ignored
                plan.execute()
                spec = zbuf[:rows]
            spec = spec.view(np.float32)  # [rows, 2 * n_bins]: re, im, re, im, ...
            np.square(spec, out=spec)
            p = np.add(spec[:, 0::2], spec[:, 1::2], out=power[:rows])
            o = out[f0 + i:f0 + i + rows]
            for b0, b1, k0, k1, wg in groups:
                np.matmul(p[:, k0:k1], wg, out=o[:, b0:b1])
    if cfg.frontend == "pcen":
        import librosa

        return np.ascontiguousarray(librosa.pcen(out.T * (2**31), sr=sr, hop_length=hop).T, dtype=np.float32)
    np.maximum(out, 1e-10, out=out)
    np.log10(out, out=out)
    out *= 10.0
    return out


# ----------------------------------------------------------------------------- the other variants
def _window(n_fft: int) -> np.ndarray:
    from scipy.signal import get_window

    return get_window("hann", n_fft, fftbins=True).astype(np.float32)


def _padded_frames(x: np.ndarray, cfg: MelConfig) -> np.ndarray:
    """[t, n_fft] strided view of x zero-padded by n_fft // 2 on both sides (librosa's centring)."""
    xp = np.pad(np.asarray(x, np.float32), cfg.n_fft // 2)
    t = 1 + x.size // cfg.hop
    return np.lib.stride_tricks.as_strided(xp, shape=(t, cfg.n_fft), strides=(cfg.hop * 4, 4), writeable=False)


def _db(s: np.ndarray) -> np.ndarray:
    np.maximum(s, 1e-10, out=s)
    np.log10(s, out=s)
    s *= 10.0
    return s


def whole(sr: int, cfg: MelConfig, mel: str):
    """All frames at once: windowed copy, scipy rfft (complex64), re² + im², filterbank ``mel``."""
    import scipy.fft
    import scipy.sparse

    basis = mel_basis(sr, cfg)
    win = _window(cfg.n_fft)
    dense_t = np.ascontiguousarray(basis.T)
    csr = scipy.sparse.csr_matrix(basis)
    bands = [(m, int(np.flatnonzero(r)[0]), int(np.flatnonzero(r)[-1]) + 1) for m, r in enumerate(basis)]

    def f(x):
        z = scipy.fft.rfft(_padded_frames(x, cfg) * win, axis=-1, workers=1)
        p = z.real * z.real + z.imag * z.imag  # [t, bins]
        if mel == "dense":
            s = p @ dense_t
        elif mel == "sparse":
            s = np.ascontiguousarray((csr @ p.T).T)
        else:  # one slice per band
            s = np.empty((p.shape[0], basis.shape[0]), np.float32)
            for m, k0, k1 in bands:
                np.matmul(p[:, k0:k1], basis[m, k0:k1], out=s[:, m])
        return _db(s.astype(np.float32, copy=False))
    return f


class _FFTW:
    """pyfftw plans for [rows, n_fft] float32 -> [rows, bins] complex64, one per thread and shape."""

    def __init__(self, flag: str):
        self.flag, self.local = flag, threading.local()

    def __call__(self, rows: int, n_fft: int):
        import pyfftw

        plans = self.local.__dict__.setdefault("plans", {})
        if (rows, n_fft) not in plans:
            a = pyfftw.empty_aligned((rows, n_fft), dtype="float32")
            o = pyfftw.empty_aligned((rows, n_fft // 2 + 1), dtype="complex64")
            plans[rows, n_fft] = (a, o, pyfftw.FFTW(a, o, axes=(-1,), flags=(self.flag, "FFTW_DESTROY_INPUT"), threads=1))
        return plans[rows, n_fft]


_KERNEL = {}


def _numba_mel_kernel():
    """A numba kernel: power of a [frames, bins] complex64 block and its filterbank in one pass.

    Bins go in the outer loop and the block's frames in the inner one, so the power of one bin for all
    frames is a short vector that each of its (at most two) bands accumulates with one axpy; this
    reads the FFT's frames-by-bins output once, in cache-line-sized steps, with no transposed copy."""
    if "k" not in _KERNEL:
        import numba

        @numba.njit(nogil=True, fastmath=True, cache=False)
        def kernel(z, k0, k1, band_a, w_a, band_b, w_b, out):
            rows, n_mels = z.shape[0], out.shape[1]
            acc = np.zeros((n_mels, rows), np.float32)
            p = np.empty(rows, np.float32)
            for k in range(k0, k1):
                for r in range(rows):
                    c = z[r, k]
                    p[r] = c.real * c.real + c.imag * c.imag
                m = band_a[k]
                if m >= 0:
                    wk = w_a[k]
                    for r in range(rows):
                        acc[m, r] += wk * p[r]
                m = band_b[k]
                if m >= 0:
                    wk = w_b[k]
                    for r in range(rows):
                        acc[m, r] += wk * p[r]
            for r in range(rows):
                for m in range(n_mels):
                    out[r, m] = acc[m, r]
        _KERNEL["k"] = kernel
    return _KERNEL["k"]


def _scatter_tables(basis: np.ndarray):
    """Per bin, the (at most two) bands it feeds and their weights; -1 where none."""
    n_bins = basis.shape[1]
    band = np.full((2, n_bins), -1, np.int64)
    weight = np.zeros((2, n_bins), np.float32)
    for m, k in zip(*np.nonzero(basis)):
        slot = 0 if band[0, k] < 0 else 1
        if band[slot, k] >= 0:
            raise ValueError("a bin feeds more than two bands")
        band[slot, k], weight[slot, k] = m, basis[m, k]
    nz = np.flatnonzero((band >= 0).any(axis=0))
    return int(nz[0]), int(nz[-1]) + 1, band[0], weight[0], band[1], weight[1]


def blocked(sr: int, cfg: MelConfig, *, fft: str, block: int, group: int, mel: str = "matmul"):
    """Blocks of frames: windowed copy into a block buffer, float32 rfft by ``fft``, power in place,
    filterbank as dense matmuls over groups of ``group`` bands (group 128 = one dense matmul), or
    power and filterbank in one numba kernel (``mel="numba"``)."""
    basis = mel_basis(sr, cfg)
    tables = _scatter_tables(basis) if mel == "numba" else None
    kernel = _numba_mel_kernel() if mel == "numba" else None
    win = _window(cfg.n_fft)
    groups = []
    for b0 in range(0, basis.shape[0], group):
        nz = np.flatnonzero(basis[b0:b0 + group].any(axis=0))
        k0, k1 = int(nz[0]), int(nz[-1]) + 1
        groups.append((b0, min(b0 + group, basis.shape[0]), k0, k1, np.ascontiguousarray(basis[b0:b0 + group, k0:k1].T)))
    n_fft, bins = cfg.n_fft, cfg.n_fft // 2 + 1
    if fft == "scipy":
        import scipy.fft

        def rfft(w):
            return scipy.fft.rfft(w, axis=-1, workers=1, overwrite_x=True)
    elif fft == "numpy":
        zbuf = np.empty((block, bins), np.complex64)

        def rfft(w):
            return np.fft.rfft(w, axis=-1, out=zbuf[:w.shape[0]])
    elif fft == "mkl_fft":
        import mkl_fft

        def rfft(w):
            return mkl_fft.rfft(w, axis=-1)
    elif fft.startswith("pyfftw"):
        plans = _FFTW("FFTW_" + fft.split(":")[1])
    else:
        raise ValueError(fft)

    def f(x):
        fr = _padded_frames(x, cfg)
        t = fr.shape[0]
        out = np.empty((t, basis.shape[0]), np.float32)
        p = np.empty((block, bins), np.float32)
        buf = np.empty((block, n_fft), np.float32)
        for i in range(0, t, block):
            rows = min(block, t - i)
            if fft.startswith("pyfftw"):
                a, z, plan = plans(block, n_fft)
                np.multiply(fr[i:i + rows], win, out=a[:rows])
                plan.execute()
                z = z[:rows]
            else:
                z = rfft(np.multiply(fr[i:i + rows], win, out=buf[:rows]))
            if kernel is not None:
                kernel(z, *tables, out[i:i + rows])
                continue
            v = z.view(np.float32)
            np.square(v, out=v)
            np.add(v[:, 0::2], v[:, 1::2], out=p[:rows])
            o = out[i:i + rows]
            for b0, b1, k0, k1, wg in groups:
                np.matmul(p[:rows, k0:k1], wg, out=o[:, b0:b1])
        return _db(out)
    return f


def variants(sr: int, cfg: MelConfig) -> dict:
    import importlib.util

    v = {
        "librosa (logmel_reference, float64)": lambda x: logmel_reference(x, sr=sr, cfg=cfg),
        "logmel (adopted): unwindowed frames, Hann on the spectrum + power in numba, blocks of 64":
            lambda x: logmel(x, sr=sr, cfg=cfg),
        "scipy f32, all frames, dense matmul": whole(sr, cfg, "dense"),
        "scipy f32, all frames, sparse CSR": whole(sr, cfg, "sparse"),
        "scipy f32, all frames, per-band slices": whole(sr, cfg, "slices"),
        "scipy f32, blocks of 256, dense matmul": blocked(sr, cfg, fft="scipy", block=256, group=128),
        "scipy f32, blocks of 256, 16-band groups": blocked(sr, cfg, fft="scipy", block=256, group=16),
        "scipy f32, blocks of 128, 8-band groups": blocked(sr, cfg, fft="scipy", block=128, group=8),
        "fast_logmel (previously adopted): scipy f32, windowed copy, blocks of 128, 16-band groups": lambda x: fast_logmel(x, sr=sr, cfg=cfg),
        "numpy.fft f32, blocks of 128, 16-band groups": blocked(sr, cfg, fft="numpy", block=128, group=16),
    }
    v["scipy f32, blocks of 128, numba power+filterbank kernel"] = blocked(sr, cfg, fft="scipy", block=128, group=16, mel="numba")
    if importlib.util.find_spec("pyfftw"):
        v["pyfftw ESTIMATE, blocks of 128, 16-band groups"] = blocked(sr, cfg, fft="pyfftw:ESTIMATE", block=128, group=16)
        v["pyfftw MEASURE, blocks of 128, 16-band groups"] = blocked(sr, cfg, fft="pyfftw:MEASURE", block=128, group=16)
        v["fast_logmel(fft='pyfftw'), blocks of 128"] = lambda x: fast_logmel(x, sr=sr, cfg=cfg, fft="pyfftw")
        v["fast_logmel(fft='pyfftw'), blocks of 64"] = lambda x: fast_logmel(x, sr=sr, cfg=cfg, fft="pyfftw", block=64)
        v["pyfftw MEASURE, blocks of 64, numba power+filterbank kernel"] = blocked(sr, cfg, fft="pyfftw:MEASURE", block=64, group=16, mel="numba")
    if importlib.util.find_spec("mkl_fft"):
        v["mkl_fft, blocks of 128, 16-band groups"] = blocked(sr, cfg, fft="mkl_fft", block=128, group=16)
        v["mkl_fft, blocks of 64, numba power+filterbank kernel"] = blocked(sr, cfg, fft="mkl_fft", block=64, group=16, mel="numba")
    return v


# ----------------------------------------------------------------------------- measuring
def synthetic(sr: int, seconds: float = 60.0, seed: int = 0) -> np.ndarray:
    """Seeded white noise (sd 0.1) plus tones at 440 Hz, 2.5 kHz and 7 kHz (amplitude 0.3), float32."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    x = 0.1 * rng.standard_normal(n) + sum(0.3 * np.sin(2 * np.pi * f * t) for f in (440.0, 2500.0, 7000.0))
    return x.astype(np.float32)


def best_of(fns: dict, repeat: int) -> dict:
    """{name: (best wall s, best thread-CPU s)}, the calls interleaved (order rotated every round)."""
    names = list(fns)
    for k in names:
        fns[k]()  # untimed: plans, caches, lazy imports
    best = {k: [np.inf, np.inf] for k in names}
    for r in range(repeat):
        for k in names[r % len(names):] + names[:r % len(names)]:
            w0, c0 = time.perf_counter(), time.thread_time()
            fns[k]()
            c1, w1 = time.thread_time(), time.perf_counter()
            best[k][0] = min(best[k][0], w1 - w0)
            best[k][1] = min(best[k][1], c1 - c0)
    return {k: tuple(v) for k, v in best.items()}


def components(x: np.ndarray, sr: int, cfg: MelConfig, repeat: int, block: int = 128) -> dict:
    """Where fast_logmel's time goes: each step alone over all blocks of the synthetic minute."""
    import scipy.fft

    fast_logmel(x, sr=sr, cfg=cfg)
    win, groups = _FAST[(sr, cfg)]
    fr = _padded_frames(x, cfg)
    t = fr.shape[0]
    starts = list(range(0, t, block))
    w = [fr[i:i + block] * win for i in starts]
    z = [scipy.fft.rfft(b, axis=-1, workers=1) for b in w]
    p = [zz.real * zz.real + zz.imag * zz.imag for zz in z]
    out = np.empty((t, groups[-1][1]), np.float32)
    buf = np.empty((block, cfg.n_fft), np.float32)
    pw = np.empty((block, cfg.n_fft // 2 + 1), np.float32)

    def window():
        for i in starts:
            np.multiply(fr[i:i + block], win, out=buf[:min(block, t - i)])

    def fft():
        for b in w:
            scipy.fft.rfft(b, axis=-1, workers=1)

    def power():
        for zz in z:
            v = zz.copy().view(np.float32)
            np.square(v, out=v)
            np.add(v[:, 0::2], v[:, 1::2], out=pw[:v.shape[0]])

    def copy_only():  # subtracted from power(): it copies so the spectrum is not squared twice
        for zz in z:
            zz.copy()

    def filterbank():
        for i, pp in zip(starts, p):
            o = out[i:i + block]
            for b0, b1, k0, k1, wg in groups:
                np.matmul(pp[:, k0:k1], wg, out=o[:, b0:b1])

    s = out.copy()
    steps = {"pad (np.pad, which fast_logmel avoids)": lambda: np.pad(x, cfg.n_fft // 2),
             "frames x window (into a block buffer)": window, "rfft (scipy, complex64)": fft}
    try:
        fast_logmel(x, sr=sr, cfg=cfg, fft="pyfftw", block=block)
        a, _, plan = _FFTW_PLANS.plans[cfg.n_fft, block]

        def fftw():
            for b in w:
                plan.execute()
        steps["rfft (pyfftw FFTW_MEASURE)"] = fftw
    except ImportError:
        pass
    from vocalprint.audio.stft import hann_power

    zb = [zz.view(np.float32) for zz in z]

    def hann():
        for v in zb:
            hann_power(v, pw[:v.shape[0]])
    steps["Hann on the spectrum + power (numba; the adopted logmel's only pass besides FFT and filterbank)"] = hann
    res = best_of({**steps, "power (square in place + pair add)": power, "_copy": copy_only,
                   "filterbank (8 matmuls of 16 bands)": filterbank, "dB (max, log10, x10)": lambda: _db(s.copy())},
                  repeat)
    cp = res.pop("_copy")
    res["power (square in place + pair add)"] = tuple(a - b for a, b in zip(res["power (square in place + pair add)"], cp))
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=7, help="timed calls per variant (best of them is reported)")
    ap.add_argument("--audio", nargs="*", default=DEFAULT_AUDIO, help="real recordings for the accuracy columns")
    ap.add_argument("--no-components", action="store_true")
    a = ap.parse_args()
    import soundfile as sf

    sr, cfg = 32000, MelConfig()
    x = synthetic(sr)
    minutes = x.size / sr / 60
    real = []
    for p in a.audio:
        y, rate = sf.read(p, dtype="float32", always_2d=True)
        if rate != sr:
            raise SystemExit(f"{p}: {rate} Hz, not {sr}")
        real.append((Path(p).name, y.mean(axis=1)))
    v = variants(sr, cfg)
    refs = {"synthetic": logmel_reference(x, sr=sr, cfg=cfg), **{n: logmel_reference(r, sr=sr, cfg=cfg) for n, r in real}}
    acc = {}
    for k, f in v.items():
        d = {"synthetic": np.abs(f(x) - refs["synthetic"])}
        got = [(n, f(r)) for n, r in real]
        d_real = [np.abs(g - refs[n]) for n, g in got]
        f16 = sum(int((g.astype(np.float16) != refs[n].astype(np.float16)).sum()) for n, g in got)
        acc[k] = (d["synthetic"].max(), np.percentile(d["synthetic"], 99.9),
                  max((e.max() for e in d_real), default=np.nan),
                  max((np.percentile(e, 99.9) for e in d_real), default=np.nan),
                  f16 / max(1, sum(g.size for _, g in got)))
    times = best_of({k: (lambda f=f: f(x)) for k, f in v.items()}, a.repeat)

    print(f"one core; {x.size / sr:.0f} s of noise + tones at {sr} Hz ({refs['synthetic'].shape[0]} frames); "
          f"best of {a.repeat}, interleaved; |dB diff| against librosa's float64 logmel_reference; real = {len(real)} file(s): "
          f"{', '.join(n for n, _ in real) if len(real) <= 3 else f'{real[0][0]} ... {real[-1][0]}'}\n")
    print("| variant | ms per audio min (wall) | ms (thread CPU) | max synth | p99.9 synth | max real | p99.9 real "
          "| float16 values changed (real) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for k in v:
        w, c = times[k]
        m1, p1, m2, p2, f16 = acc[k]
        print(f"| {k} | {w * 1e3 / minutes:.1f} | {c * 1e3 / minutes:.1f} | {m1:.1e} | {p1:.1e} | {m2:.1e} | {p2:.1e} "
              f"| {f16:.1e} |")

    if not a.no_components:
        print(f"\nfast_logmel's steps alone (best of {a.repeat}; ms per audio minute, wall / thread CPU)\n")
        print("| step | wall | CPU |\n|---|---:|---:|")
        for k, (w, c) in components(x, sr, cfg, a.repeat).items():
            print(f"| {k} | {w * 1e3 / minutes:.1f} | {c * 1e3 / minutes:.1f} |")

    if a.audio:
        import importlib.util

        import soxr

        path = a.audio[0]
        y = sf.read(path, dtype="float32")[0]
        fns = {"soundfile.read (libsndfile + libvorbis)": lambda: sf.read(path, dtype="float32"),
               "soxr 32 -> 48 kHz": lambda: soxr.resample(y, sr, 48000)}
        if importlib.util.find_spec("av"):  # FFmpeg's Vorbis decoder (optional; scratch venv)
            fns["PyAV (FFmpeg)"] = lambda: _decode_av(path)
        if importlib.util.find_spec("miniaudio"):  # stb_vorbis (a project dependency; load_audio uses it for Ogg Vorbis)
            fns["miniaudio (stb_vorbis)"] = lambda: _decode_miniaudio(path)
        ctx = best_of(fns, a.repeat)
        mins = y.size / sr / 60
        print(f"\ncontext, {Path(path).name} ({y.size / sr:.0f} s, best of {a.repeat}, ms per audio minute, wall / CPU): "
              + "; ".join(f"{k} {w * 1e3 / mins:.1f} / {c * 1e3 / mins:.1f}" for k, (w, c) in ctx.items()))


def _decode_av(path: str) -> np.ndarray:
    import av

    with av.open(path) as c:
        s = c.streams.audio[0]
        s.thread_type = "NONE"
        return np.concatenate([f.to_ndarray()[0] for f in c.decode(s)])


def _decode_miniaudio(path: str) -> np.ndarray:
    import miniaudio

    info = miniaudio.get_file_info(path)
    r = miniaudio.decode_file(path, output_format=miniaudio.SampleFormat.FLOAT32, sample_rate=info.sample_rate)
    return np.frombuffer(r.samples, np.float32)[::r.nchannels]


if __name__ == "__main__":
    main()
