"""Multi-label heads (one sigmoid per species, never a softmax): fit, predict_proba, save/load."""
from __future__ import annotations

from .base import learnable, prior

__all__ = ["learnable", "make", "prior"]


def make(name: str, cfg):
    """A fresh head by name (``linear`` or ``lgbm``) configured from ``cfg.train``."""
    if name == "linear":
        from .linear import LinearHead

        return LinearHead(cfg.train.linear, n_jobs=cfg.run.n_jobs)
    if name == "lgbm":
        from .lgbm import LgbmHead

        return LgbmHead(cfg.train.lgbm, n_jobs=cfg.run.n_jobs)
    raise ValueError(f"unknown head {name!r}; choose linear or lgbm")
