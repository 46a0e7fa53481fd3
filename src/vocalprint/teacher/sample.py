"""Which focal clips the teacher-based models learn from (``teacher.max_class_windows``).

BirdCLEF's focal recordings have a long tail both ways: a few classes have hundreds of recordings
(up to about 15,000 training windows at BirdCLEF+ 2025 size), many have a handful. The teacher's
cache of the clips is the largest job of every teacher-based model, and the probe's fit and the
students' window sample only need so many windows of a common class. Per class, whole recordings
are taken in a seeded order until the class holds ``max_class_windows`` training windows: a class
under the cap keeps every recording, a common one keeps a random set of whole recordings (never a
part of one, so the held-out checks by recording stay clean). On sets where no class exceeds the
cap nothing changes (the sample is None and the caches keep their keys).
"""
from __future__ import annotations

import logging
import time

import numpy as np

from vocalprint.config import Config
from vocalprint.data.dataset import Dataset

log = logging.getLogger(__name__)
_SAMPLES: dict[tuple, tuple[str, ...] | None] = {}  # clip_sample's answers, per data set and setting
LOG_EVERY_S = 30.0


def sample_recordings(classes: np.ndarray, n_windows: np.ndarray, max_class_windows: int,
                      seed: int = 0) -> np.ndarray | None:
    """Indices of the recordings kept (sorted): per class (``classes[i]``), recordings in a seeded
    order until their windows (``n_windows[i]``) reach ``max_class_windows``; the recording that
    crosses it is kept whole. None when the cap is 0 or no class exceeds it. Each class draws from
    its own generator (``seed`` and the class's rank), so one class's recordings do not move
    another's sample."""
    classes, n_windows = np.asarray(classes), np.asarray(n_windows, dtype=np.int64)
    if max_class_windows <= 0 or not len(classes):
        return None
    keep, capped = [], False
    for k, c in enumerate(np.unique(classes)):
        idx = np.flatnonzero(classes == c)
        if n_windows[idx].sum() <= max_class_windows:
            keep.append(idx)
            continue
        capped = True
        order = idx[np.random.default_rng([seed, k]).permutation(len(idx))]
        n = int(np.searchsorted(np.cumsum(n_windows[order]), max_class_windows)) + 1
        keep.append(order[:n])
    return np.sort(np.concatenate(keep)) if capped else None


def clip_windows_of_length(n_samples: int, cfg: Config) -> int:
    """Training windows a clip of ``n_samples`` (at ``audio.sr``) gives (:mod:`vocalprint.audio.clips`)."""
    from vocalprint.audio.clips import clip_windows, n_frames, window_params

    fpw, hop, min_frames = window_params(cfg)
    return len(clip_windows(n_frames(n_samples, cfg), fpw=fpw, hop=hop, min_frames=min_frames))


def clip_sample(cfg: Config, ds: Dataset) -> tuple[str, ...] | None:
    """Names (``train_audio/<filename>``) of the focal clips the teacher's cache covers, by
    :func:`sample_recordings` on each clip's windows counted from its header; None (every clip)
    when no class holds more than ``teacher.max_class_windows``. A clip whose header cannot be read
    counts no window and stays in (the teacher stage skips it with its own warning)."""
    t = cfg.teacher
    if t.max_class_windows <= 0 or not len(ds.train):
        return None
    k = (ds.fingerprint(), t.max_class_windows, t.sample_seed, cfg.audio, cfg.mel.hop, cfg.mel.n_fft,
         cfg.features.train_hop_s, cfg.features.min_clip_s)
    if k not in _SAMPLES:
        import soundfile as sf

        n_win, last, t0 = np.zeros(len(ds.train), np.int64), time.monotonic(), time.monotonic()
        for i, p in enumerate(ds.train["path"]):
            try:
                info = sf.info(str(p))
                n_win[i] = clip_windows_of_length(int(round(info.frames * cfg.audio.sr / info.samplerate)), cfg)
            except (RuntimeError, OSError, ValueError, ZeroDivisionError) as e:  # soundfile raises RuntimeError
                log.warning("teacher: could not read the length of %s (%s); counted as no window", p, e)
            if time.monotonic() - last > LOG_EVERY_S:
                last = time.monotonic()
                log.info("teacher: clip lengths %d/%d (%.0f s)", i + 1, len(ds.train), last - t0)
        kept = sample_recordings(ds.train["primary"].to_numpy(), n_win, t.max_class_windows, t.sample_seed)
        if kept is None:
            _SAMPLES[k] = None
        else:
            names = [f"train_audio/{f}" for f in ds.train["filename"].to_numpy()[kept]]
            _SAMPLES[k] = tuple(sorted(names))
            log.info("teacher: %d of %d focal clips (%d of %d training windows) for the teacher-based models "
                     "(teacher.max_class_windows=%d)", len(kept), len(ds.train), int(n_win[kept].sum()),
                     int(n_win.sum()), t.max_class_windows)
    return _SAMPLES[k]
