"""Decode, resample and frame audio. Pure functions plus one error type."""
from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


MIN_SR, MAX_SR = 1_000, 768_000  # native rates outside this are broken headers (1 Hz -> x32000 memory)
MAX_PEAK = 64.0  # decoded audio lives in [-1, 1] (lossy codecs overshoot a little); far beyond is broken


class AudioError(ValueError):
    """A file that cannot be used as audio; the message names the file and the problem."""


def load_audio(path: str | Path, *, sr: int = 32000, max_s: float | None = None) -> np.ndarray:
    """Decode ``path`` to mono float32 at ``sr`` Hz.  [shape=(n_samples,)]

    Stereo is averaged, other rates are resampled with soxr, NaN/inf samples are zeroed and a float
    file far beyond full scale is rescaled to peak 1 (both logged). Raises :class:`AudioError` for a
    missing, empty, truncated or undecodable file, or one with an implausible sample rate.
    """
    import soundfile as sf

    p = Path(path)
    try:
        with sf.SoundFile(str(p)) as f:
            native = f.samplerate
            if not MIN_SR <= native <= MAX_SR:
                raise AudioError(f"{p}: implausible sample rate {native} Hz in the header")
            frames = f.frames
            if max_s is not None:
                frames = min(frames, int(max_s * native))
            x = f.read(frames=frames, dtype="float32", always_2d=True)
    except FileNotFoundError:
        raise AudioError(f"{p}: file not found") from None
    except AudioError:
        raise
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError, TypeError, EOFError) as e:
        raise AudioError(f"{p}: cannot decode audio ({e})") from None
    except MemoryError:
        raise AudioError(f"{p}: too large to decode in memory") from None
    if x.size == 0:
        raise AudioError(f"{p}: no audio samples (zero length)")
    x = x.mean(axis=1) if x.shape[1] > 1 else x[:, 0]
    hi, lo = float(x.max()), float(x.min())  # NaN and inf show in these; no temporary arrays
    if not (np.isfinite(hi) and np.isfinite(lo)):
        bad = int((~np.isfinite(x)).sum())
        log.warning("%s: %d NaN/inf samples set to 0", p, bad)
        x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
        hi, lo = float(x.max()), float(x.min())
    peak = max(hi, -lo)
    if peak > MAX_PEAK:  # e.g. an unnormalised float WAV: squaring it in the STFT overflows float32
        log.warning("%s: peak %.3g is far beyond full scale; rescaled to 1", p, peak)
        x = x * np.float32(1.0 / peak)
    if native != sr:
        import soxr

        x = soxr.resample(x, native, sr).astype(np.float32, copy=False)
    return np.ascontiguousarray(x, dtype=np.float32)


def n_windows(n_samples: int, *, sr: int = 32000, window_s: float = 5.0) -> int:
    """Rows a file gets in a submission: one per started window, at least one."""
    return max(1, math.ceil(round(n_samples / sr, 6) / window_s))


def row_ids(stem: str, n: int, *, window_s: float = 5.0) -> list[str]:
    """``<stem>_<end second>`` for each of ``n`` windows: 5, 10, ..."""
    return [f"{stem}_{int(round((i + 1) * window_s))}" for i in range(n)]


def frame_windows(n_frames: int, *, n: int, sr: int = 32000, hop: int = 512, window_s: float = 5.0) -> np.ndarray:
    """Frame bounds ``[n, 2]`` (start, stop) of ``n`` consecutive scoring windows.

    Frame ``j`` is centred on sample ``j * hop`` and belongs to the window holding that sample, so
    windows tile the frames exactly (312 or 313 frames each at 32 kHz, hop 512). A window past the
    end of the audio gets an empty range.
    """
    edges = np.ceil(np.arange(n + 1) * window_s * sr / hop).astype(np.int64)
    edges = np.minimum(edges, n_frames)
    return np.stack([edges[:-1], edges[1:]], axis=1)
