"""Stage 4: training windows of the focal clips -> pooled token features, Mel baseline, labels."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from . import artifacts as A
from . import mel as M
from . import tokens as T
from . import w2v as W
from .config import Config, fingerprint, frames_per_window
from .dataset import Dataset, DatasetError
from .parallel import progress_bar
from .pool import clip_windows, pool_mel, pool_tokens

log = logging.getLogger(__name__)


def key(cfg: Config, w2v_key: str) -> str:
    return fingerprint("features", cfg.features, cfg.train.secondary_weight, w2v_key)


def run(cfg: Config, ds: Dataset, mel_dir: Path, tok_dir: Path, w2v_dir: Path, root: Path) -> Path:
    """Write ``X_stsg.npy`` [n, d], ``X_melstats.npy`` [n, 2*n_mels], ``Y.npy`` [n, n_species],
    ``groups.npy`` [n] (recording id) and ``windows.csv`` for every training window."""
    final = A.stage_dir(root, "features", key(cfg, w2v_dir.name))
    if A.is_complete(final):
        log.info("features: cached at %s", final)
        return final
    work = A.partial_dir(final)
    seq, index = T.load_sequences(tok_dir)
    vectors, idf = W.load(w2v_dir)
    fpw = frames_per_window(cfg)
    hop = int(round(cfg.features.train_hop_s * cfg.audio.sr / cfg.mel.hop))
    min_frames = int(round(cfg.features.min_clip_s * cfg.audio.sr / cfg.mel.hop))
    labels = ds.label_matrix(secondary_weight=cfg.train.secondary_weight)
    lab = index[index["split"] == "train_audio"]
    xs, xm, ys, gs, rows = [], [], [], [], []
    timer = A.Timer("features")
    with timer("features"):
        bar = progress_bar(len(lab), desc="features", enabled=cfg.run.progress)
        for r in lab.itertuples():
            b = clip_windows(int(r.n_frames), fpw=fpw, hop=hop, min_frames=min_frames)
            bar.update()
            if not len(b):
                log.warning("features: %s shorter than %.1f s; no window", r.name, cfg.features.min_clip_s)
                continue
            tok = seq[r.offset:r.offset + r.n_frames]
            xs.append(pool_tokens(tok, b, vectors=vectors, idf=idf, pooling=cfg.features.pooling))
            xm.append(pool_mel(M.load_frames(mel_dir, r.name), b))
            ys.append(np.repeat(labels[int(r.file_id)][None], len(b), axis=0))
            gs.append(np.full(len(b), int(r.file_id)))
            rows += [(r.name, int(a), int(e)) for a, e in b]
        bar.close()
    if not xs:
        raise DatasetError(f"features: no training windows from {ds.root / 'train_audio'}")
    for name, arr in (("X_stsg", xs), ("X_melstats", xm), ("Y", ys), ("groups", gs)):
        A.save_npy(work / f"{name}.npy", np.concatenate(arr))
    with A.atomic_path(work / "windows.csv") as tmp:
        pd.DataFrame(rows, columns=["name", "start", "stop"]).to_csv(tmp, index=False)
    return A.finish(work, final, {"stage": "features", "config": cfg.features, "upstream": [w2v_dir.name],
                                  "n_windows": len(rows), "species": list(ds.species), "seconds": timer.seconds})


def load(feat_dir: Path, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X [n, d], Y [n, n_species], groups [n]) for ``kind`` in {"stsg", "melstats"}."""
    A.manifest(feat_dir)
    return tuple(np.load(A.verified(feat_dir / f"{n}.npy")) for n in (f"X_{kind}", "Y", "groups"))
