"""Multi-label heads (one sigmoid per species, never a softmax): fit, predict_proba, save/load."""
from __future__ import annotations

import numpy as np


def prior(y: np.ndarray) -> np.ndarray:
    """Per-species positive rate [n_species]: the score of a species a head could not learn."""
    return np.clip((y >= 0.5).mean(axis=0), 1e-4, 1 - 1e-4).astype(np.float32)


def learnable(y: np.ndarray) -> np.ndarray:
    """Species columns with both positives and negatives."""
    pos = (y >= 0.5).sum(axis=0)
    return np.flatnonzero((pos > 0) & (pos < len(y)))


def make(name: str, cfg):
    """A fresh head by name (``linear`` or ``lgbm``) configured from ``cfg.train``."""
    if name == "linear":
        from .linear import LinearHead

        return LinearHead(cfg.train.linear)
    if name == "lgbm":
        from .lgbm import LgbmHead

        return LgbmHead(cfg.train.lgbm, n_jobs=cfg.run.n_jobs)
    raise ValueError(f"unknown head {name!r}; choose linear or lgbm")
