"""Decode, resample and frame audio. Pure functions plus one error type."""
from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


MIN_SR, MAX_SR = 1_000, 768_000  # native rates outside this are broken headers (1 Hz -> x32000 memory)
DECODERS = ("auto", "soundfile")
MAX_PEAK = 64.0  # decoded audio lives in [-1, 1] (lossy codecs overshoot a little); far beyond is broken


class AudioError(ValueError):
    """A file that cannot be used as audio; the message names the file and the problem."""


def load_audio(path: str | Path, *, sr: int = 32000, max_s: float | None = None,
               decoder: str = "auto") -> np.ndarray:
    """Decode ``path`` to mono float32 at ``sr`` Hz.  [shape=(n_samples,)]

    Stereo is averaged, other rates are resampled with soxr, NaN/inf samples are zeroed and a float
    file far beyond full scale is rescaled to peak 1 (both logged). Raises :class:`AudioError` for a
    missing, empty, truncated or undecodable file, or one with an implausible sample rate.
    ``decoder``: ``auto`` decodes Ogg Vorbis with miniaudio where it can (:func:`read_vorbis`), everything
    else with libsndfile; ``soundfile`` always uses libsndfile.
    """
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
    p = Path(path)
    got = read_vorbis(p, max_s) if decoder == "auto" else None
    x, native = got if got is not None else read_libsndfile(p, max_s)
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


def read_vorbis(p: Path, max_s: float | None) -> tuple[np.ndarray, int] | None:
    """Samples [frames, channels] float32 and the native rate of an Ogg Vorbis file decoded by
    miniaudio (stb_vorbis, about 1.2x faster than libvorbis through libsndfile; the samples equal
    within 1e-6: docs/results.md), or None where :func:`read_libsndfile` should decide: not
    ``.ogg``, miniaudio missing, a stream stb_vorbis cannot read (Opus, FLAC in Ogg, damage), a
    length other than the header's (a truncated file), or a file longer than ``max_s`` (libsndfile
    reads only the part kept)."""
    if p.suffix.lower() != ".ogg":
        return None
    try:
        import miniaudio
    except ImportError:  # pragma: no cover - a base dependency; an install without it still decodes
        return None
    try:
        info = miniaudio.vorbis_get_file_info(str(p))
        if not MIN_SR <= info.sample_rate <= MAX_SR or not 0 < info.nchannels <= 8:
            return None
        if max_s is not None and info.num_frames > max_s * info.sample_rate:
            return None
        r = miniaudio.decode_file(str(p), output_format=miniaudio.SampleFormat.FLOAT32,
                                  nchannels=info.nchannels, sample_rate=info.sample_rate)
    except (miniaudio.MiniaudioError, OSError, ValueError, MemoryError):
        return None
    x = np.frombuffer(r.samples, np.float32).reshape(-1, info.nchannels)
    return (x, info.sample_rate) if len(x) == info.num_frames else None


def read_libsndfile(p: Path, max_s: float | None) -> tuple[np.ndarray, int]:
    """Samples [frames, channels] float32 and the native rate of any file libsndfile reads."""
    import soundfile as sf

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
    return x, native


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
