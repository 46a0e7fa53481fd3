"""Stage 4: training windows of the focal clips -> pooled token features and labels (the Mel
band statistics are a stage of their own, :mod:`vocalprint.tokens.melstats`)."""
from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from vocalprint.core import artifacts as A
from vocalprint.tokens import codebook as T
from vocalprint.tokens import w2v as W
from vocalprint.config import Config, fingerprint
from vocalprint.data.dataset import Dataset, DatasetError
from vocalprint.core.parallel import map_files
from vocalprint.audio.clips import clip_windows, window_params
from vocalprint.tokens.pool import pool_tokens

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=2)
def _inputs(tok_dir: str, w2v_dir: str):
    """Token sequences and vectors, loaded once per worker process (memory-mapped)."""
    seq, _ = T.load_sequences(Path(tok_dir))
    return seq, *W.load(Path(w2v_dir))


def _file_windows(name, offset, n_frames, tok_dir, w2v_dir, fpw, hop, min_frames, pooling):
    """One clip's training windows [n, 2] and their pooled token features."""
    seq, vectors, idf = _inputs(tok_dir, w2v_dir)
    b = clip_windows(n_frames, fpw=fpw, hop=hop, min_frames=min_frames)
    if not len(b):
        return b, None
    tok = seq[offset:offset + n_frames]
    return b, pool_tokens(tok, b, vectors=vectors, idf=idf, pooling=pooling)


def key(cfg: Config, w2v_key: str) -> str:
    return fingerprint("features", cfg.features, cfg.train.secondary_weight, w2v_key)


def run(cfg: Config, ds: Dataset, tok_dir: Path, w2v_dir: Path, root: Path) -> Path:
    """Write ``X_stsg.npy`` [n, d], ``Y.npy`` [n, n_species],
    ``groups.npy`` [n] (recording id) and ``windows.csv`` for every training window."""
    final = A.stage_dir(root, "features", key(cfg, w2v_dir.name))
    if A.is_complete(final):
        log.info("features: cached at %s", final)
        return final
    work = A.partial_dir(final)
    index = T.load_sequences(tok_dir)[1]
    fpw, hop, min_frames = window_params(cfg)
    labels = ds.label_matrix(secondary_weight=cfg.train.secondary_weight)
    lab = index[index["split"] == "train_audio"]
    lab = lab[[r > 0 for r in lab["n_frames"]]]
    tasks = [(r.name, int(r.offset), int(r.n_frames), str(tok_dir), str(w2v_dir),
              fpw, hop, min_frames, cfg.features.pooling) for r in lab.itertuples()]
    timer = A.Timer("features")
    with timer("features"):
        res = map_files(_file_windows, tasks, n_jobs=cfg.run.n_jobs, desc="features", progress=cfg.run.progress)
    xs, ys, gs, rows, short = [], [], [], [], []
    for r, (b, x_s) in zip(lab.itertuples(), res):
        if not len(b):
            log.warning("features: %s shorter than %.1f s; no window", r.name, cfg.features.min_clip_s)
            short.append(r.name)
            continue
        xs.append(x_s)
        ys.append(np.repeat(labels[int(r.file_id)][None], len(b), axis=0))
        gs.append(np.full(len(b), int(r.file_id)))
        rows += [(r.name, int(a), int(e)) for a, e in b]
    if not xs:
        raise DatasetError(f"features: no training windows from {ds.root / 'train_audio'}")
    for name, arr in (("X_stsg", xs), ("Y", ys), ("groups", gs)):
        A.save_npy(work / f"{name}.npy", np.concatenate(arr))
    with A.atomic_path(work / "windows.csv") as tmp:
        pd.DataFrame(rows, columns=["name", "start", "stop"]).to_csv(tmp, index=False)
    return A.finish(work, final, {"stage": "features", "config": cfg.features, "upstream": [w2v_dir.name],
                                  "n_windows": len(rows), "n_skipped_short": len(short), "skipped_short": short[:200],
                                  "species": list(ds.species), "seconds": timer.seconds})


def load(feat_dir: Path, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X [n, d], Y [n, n_species], groups [n]) of a folder holding ``X_<kind>.npy`` (``stsg`` here,
    ``melstats`` in the ``mstats`` stage, the teacher's name in ``tfeatures``)."""
    A.manifest(feat_dir)
    return tuple(np.load(A.verified(feat_dir / f"{n}.npy")) for n in (f"X_{kind}", "Y", "groups"))
