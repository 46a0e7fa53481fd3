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


def oof_rows(groups: np.ndarray, max_windows: int, seed: int = 0) -> np.ndarray:
    """Indices of the windows the out-of-fold check uses: all of them, or whole recordings drawn in a
    seeded order until ``max_windows`` are reached (``max_windows`` <= 0: all)."""
    if max_windows <= 0 or len(groups) <= max_windows:
        return np.arange(len(groups))
    ids, counts = np.unique(groups, return_counts=True)
    order = np.random.default_rng(seed).permutation(len(ids))
    n = int(np.searchsorted(np.cumsum(counts[order]), max_windows)) + 1
    return np.flatnonzero(np.isin(groups, ids[order[:n]]))


def oof_predictions(x: np.ndarray, y: np.ndarray, groups: np.ndarray, *, head: str, cfg: Config) -> np.ndarray:
    """Out-of-fold probabilities [n, n_species] on the rows of :func:`oof_rows` (NaN elsewhere);
    folds never split a recording (GroupKFold)."""
    from sklearn.model_selection import GroupKFold

    oof = np.full(y.shape, np.nan, np.float32)
    rows = oof_rows(groups, cfg.train.oof_max_windows)
    k = min(cfg.train.folds, len(np.unique(groups[rows])))
    if k < 2:
        return oof
    for tr, va in GroupKFold(n_splits=k).split(rows, groups=groups[rows]):
        tr, va = rows[tr], rows[va]
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
    checked = np.isfinite(oof).all(axis=1)
    auc = macro_auc_arrays(y[checked], oof[checked]) if checked.any() else float("nan")
    log.info("train %s: out-of-fold macro AUC on %d of %d training windows %.3f", model, int(checked.sum()), len(y), auc)
    with timer("fit"):
        h = heads.make(head, cfg).fit(x, y)
    A.dump_joblib(h, work / "head.joblib")
    A.save_npy(work / "oof.npy", oof)
    species = A.manifest(feat_dir)["species"]
    return A.finish(work, final, {"stage": "train", "model": model, "config": getattr(cfg.train, head),
                                  "upstream": [feat_dir.name], "oof_macro_auc": auc, "oof_windows": int(checked.sum()),
                                  "species": species,
                                  "n_windows": int(len(x)), "seconds": timer.seconds})
