"""Mel band statistics of the training windows, as a stage of its own (``mstats``): the mean and
standard deviation of every Mel band over each window of :mod:`vocalprint.audio.clips`.

The ``melstats-*`` heads read nothing else, so they build the Mel frames and the windows but no
codebook, Word2Vec or pooled token features.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from vocalprint.audio import clips, mel as M
from vocalprint.config import Config, fingerprint
from vocalprint.core import artifacts as A
from vocalprint.core.parallel import map_files
from vocalprint.tokens.pool import pool_mel

log = logging.getLogger(__name__)


def key(cfg: Config, mel_key: str, windows_key: str) -> str:
    return fingerprint("mstats", mel_key, windows_key)


def _file_stats(name: str, mel_dir: str, bounds: np.ndarray) -> np.ndarray | None:
    """[n, 2 * n_mels] statistics of one clip's windows; None when its frames are missing (the
    Mel stage skipped the file)."""
    f = Path(mel_dir) / "frames" / M.npy_name(name)
    if not f.is_file():
        return None
    return pool_mel(M.load_frames(Path(mel_dir), name), bounds)


def run(cfg: Config, mel_dir: Path, win_dir: Path, root: Path) -> Path:
    """``<root>/mstats/<key>/`` with ``X_melstats.npy`` [n, 2 * n_mels] and the windows' ``Y.npy``,
    ``groups.npy`` and ``windows.csv`` (copied), in the windows' order."""
    final = A.stage_dir(root, "mstats", key(cfg, mel_dir.name, win_dir.name))
    if A.is_complete(final):
        log.info("mstats: cached at %s", final)
        return final
    work = A.partial_dir(final)
    man = A.manifest(win_dir)
    windows = pd.read_csv(win_dir / "windows.csv")
    groups = list(windows.groupby("name", sort=False))
    tasks = [(name, str(mel_dir), g[["start", "stop"]].to_numpy()) for name, g in groups]
    timer = A.Timer("mstats")
    with timer("pool"):
        res = map_files(_file_stats, tasks, n_jobs=cfg.run.n_jobs, desc="mstats", progress=cfg.run.progress)
    X = np.zeros((len(windows), 2 * cfg.mel.n_mels), np.float32)
    missing = []
    for (name, g), x in zip(groups, res):
        if x is None:
            missing.append(name)
        else:
            X[g.index.to_numpy()] = x
    if missing:
        log.warning("mstats: %d clips have no Mel frames (skipped by the Mel stage); their windows are zeros, "
                    "e.g. %s", len(missing), missing[0])
    A.save_npy(work / "X_melstats.npy", X)
    clips.copy_labels(win_dir, work)
    return A.finish(work, final, {"stage": "mstats", "upstream": [mel_dir.name, win_dir.name],
                                  "species": man["species"], "n_windows": len(windows),
                                  "n_missing_clips": len(missing), "missing_clips": missing[:200],
                                  "seconds": timer.seconds})
