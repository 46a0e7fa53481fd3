"""Stage 5: fit a multi-label head on window features; out-of-fold AUC grouped by recording."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from vocalprint.core import artifacts as A
from vocalprint.tokens import features as F
from vocalprint.tokens import heads
from vocalprint.config import Config, fingerprint
from vocalprint.core.metrics import macro_auc_arrays

log = logging.getLogger(__name__)


def oof_predictions(x: np.ndarray, y: np.ndarray, groups: np.ndarray, *, head: str, cfg: Config) -> np.ndarray:
    """Out-of-fold probabilities [n, n_species]; folds never split a recording (GroupKFold)."""
    from sklearn.model_selection import GroupKFold

    n_groups = len(np.unique(groups))
    k = min(cfg.train.folds, n_groups)
    oof = np.zeros(y.shape, np.float32)
    if k < 2:
        return np.full(y.shape, np.nan, np.float32)
    for tr, va in GroupKFold(n_splits=k).split(x, y, groups):
        oof[va] = heads.make(head, cfg).fit(x[tr], y[tr]).predict_proba(x[va])
    return oof


def key(cfg: Config, model: str, feat_key: str, *, head: str | None = None) -> str:
    head = head or model.split("-", 1)[1]
    return fingerprint("train", model, getattr(cfg.train, head), cfg.train.folds, feat_key)


def run(cfg: Config, feat_dir: Path, model: str, root: Path, *, kind: str | None = None,
        head: str | None = None) -> Path:
    """Fit ``model``'s head (``linear``/``lgbm``) on the ``X_<kind>.npy`` features of ``feat_dir``
    (default: ``<kind>-<head>`` from the model name, e.g. ``stsg-linear``) -> ``head.joblib``."""
    if kind is None or head is None:
        kind, head = model.split("-", 1)
    final = A.stage_dir(root, "train", key(cfg, model, feat_dir.name, head=head))
    if A.is_complete(final):
        log.info("train %s: cached at %s", model, final)
        return final
    work = A.partial_dir(final)
    x, y, g = F.load(feat_dir, kind)
    timer = A.Timer("train")
    with timer("oof"):
        oof = oof_predictions(x, y, g, head=head, cfg=cfg)
    auc = macro_auc_arrays(y, oof) if np.isfinite(oof).all() else float("nan")
    log.info("train %s: out-of-fold macro AUC on training windows %.3f", model, auc)
    with timer("fit"):
        h = heads.make(head, cfg).fit(x, y)
    A.dump_joblib(h, work / "head.joblib")
    A.save_npy(work / "oof.npy", oof)
    species = A.manifest(feat_dir)["species"]
    return A.finish(work, final, {"stage": "train", "model": model, "config": getattr(cfg.train, head),
                                  "upstream": [feat_dir.name], "oof_macro_auc": auc, "species": species,
                                  "n_windows": int(len(x)), "seconds": timer.seconds})
