"""Training windows of the focal clips, as a stage of their own: window bounds in Mel frames,
labels and recording groups, from nothing but each clip's decoded length.

Models that learn from teacher outputs (the probe, the students) pool the cached teacher chunks
into these windows, so they never build the token chain (Mel frames of every clip, K-means,
Word2Vec, token features). The windows are the ones the token features stage cuts from the same
clips: same hop, same minimum length, same frame count (``1 + n_samples // hop``).
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from vocalprint.audio.decode import AudioError, load_audio
from vocalprint.audio.mel import audio_items
from vocalprint.config import Config, fingerprint, frames_per_window
from vocalprint.core import artifacts as A
from vocalprint.core.parallel import map_files
from vocalprint.data.dataset import Dataset, DatasetError

log = logging.getLogger(__name__)


def clip_windows(n_frames: int, *, fpw: int, hop: int, min_frames: int) -> np.ndarray:
    """Training windows inside a focal clip: [n, 2] frame bounds, hop ``hop``, last one flush with
    the end; a clip shorter than a window gives one window over all of it."""
    if n_frames <= fpw:
        return np.array([[0, n_frames]]) if n_frames >= min_frames else np.zeros((0, 2), int)
    starts = list(range(0, n_frames - fpw + 1, max(1, hop)))
    if starts[-1] + fpw < n_frames:
        starts.append(n_frames - fpw)
    s = np.array(starts)
    return np.stack([s, s + fpw], axis=1)


def window_params(cfg: Config) -> tuple[int, int, int]:
    """(frames per window, hop between training windows, shortest usable clip) in Mel frames."""
    f, sr, hop = cfg.features, cfg.audio.sr, cfg.mel.hop
    return frames_per_window(cfg), int(round(f.train_hop_s * sr / hop)), int(round(f.min_clip_s * sr / hop))


def n_frames(n_samples: int, cfg: Config) -> int:
    """Centred Mel frames of ``n_samples`` of audio, as :func:`vocalprint.audio.mel.logmel` makes
    them (short input is padded to half a window first)."""
    return 1 + max(int(n_samples), cfg.mel.n_fft // 2 + 1) // cfg.mel.hop


def _length(path: str, sr: int) -> tuple[int, str]:
    """(decoded samples, "") or (0, why the clip cannot be used)."""
    try:
        return int(load_audio(path, sr=sr).size), ""
    except AudioError as e:
        return 0, str(e)


def key(cfg: Config, ds: Dataset) -> str:
    f = cfg.features
    return fingerprint("windows", f.train_hop_s, f.min_clip_s, cfg.train.secondary_weight, cfg.audio,
                       cfg.mel.n_fft, cfg.mel.hop, ds.fingerprint(), list(ds.species))


def run(cfg: Config, ds: Dataset, root: Path) -> Path:
    """``<root>/windows/<key>/`` with ``windows.csv`` (name, start, stop in Mel frames), ``Y.npy``
    [n, n_species] and ``groups.npy`` [n] (recording id) for every training window."""
    final = A.stage_dir(root, "windows", key(cfg, ds))
    if A.is_complete(final):
        log.info("windows: cached at %s", final)
        return final
    work = A.partial_dir(final)
    items = audio_items(ds)
    items = items[items["split"] == "train_audio"]
    timer = A.Timer("windows")
    with timer("lengths"):
        res = map_files(_length, [(str(p), cfg.audio.sr) for p in items["path"]], n_jobs=cfg.run.n_jobs,
                        desc="windows", progress=cfg.run.progress)
    fpw, hop, min_frames = window_params(cfg)
    labels = ds.label_matrix(secondary_weight=cfg.train.secondary_weight)
    ys, gs, rows, short, bad = [], [], [], [], []
    for r, (n, err) in zip(items.itertuples(), res):
        if err:
            log.warning("windows: skipped %s", err)
            bad.append(err)
            continue
        b = clip_windows(n_frames(n, cfg), fpw=fpw, hop=hop, min_frames=min_frames)
        if not len(b):
            log.warning("windows: %s shorter than %.1f s; no window", r.name, cfg.features.min_clip_s)
            short.append(r.name)
            continue
        ys.append(np.repeat(labels[int(r.file_id)][None], len(b), axis=0))
        gs.append(np.full(len(b), int(r.file_id)))
        rows += [(r.name, int(a), int(e)) for a, e in b]
    if not rows:
        raise DatasetError(f"windows: no training window from {ds.root / 'train_audio'}")
    A.save_npy(work / "Y.npy", np.concatenate(ys))
    A.save_npy(work / "groups.npy", np.concatenate(gs))
    with A.atomic_path(work / "windows.csv") as tmp:
        pd.DataFrame(rows, columns=["name", "start", "stop"]).to_csv(tmp, index=False)
    return A.finish(work, final, {"stage": "windows", "config": {"features": cfg.features},
                                  "data": str(ds.root), "n_windows": len(rows), "n_skipped_short": len(short),
                                  "skipped_short": short[:200], "n_skipped": len(bad), "skipped": bad[:200],
                                  "species": list(ds.species), "seconds": timer.seconds})


def copy_labels(win_dir: Path, work: Path, rows: np.ndarray | None = None) -> None:
    """Copy the windows' ``Y.npy``, ``groups.npy`` (checked) and ``windows.csv`` into a stage that
    computes features of the same windows, in the same order (or of the windows ``rows`` only)."""
    if rows is None:
        for n in ("Y", "groups"):
            shutil.copyfile(A.verified(win_dir / f"{n}.npy"), work / f"{n}.npy")
        shutil.copyfile(win_dir / "windows.csv", work / "windows.csv")
        return
    for n in ("Y", "groups"):
        A.save_npy(work / f"{n}.npy", np.load(A.verified(win_dir / f"{n}.npy"))[rows])
    with A.atomic_path(work / "windows.csv") as tmp:
        pd.read_csv(win_dir / "windows.csv").iloc[rows].to_csv(tmp, index=False)
