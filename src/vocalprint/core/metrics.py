"""The competition metric: macro ROC-AUC over the species with at least one positive window."""
from __future__ import annotations

import numpy as np
import pandas as pd


def macro_auc(truth: pd.DataFrame, pred: pd.DataFrame) -> tuple[float, dict[str, float]]:
    """Align both frames on ``row_id``; AUC per species column that has positives and negatives.

    Returns (mean AUC, {species: AUC}). Raises ValueError if row ids or columns do not match.
    """
    from sklearn.metrics import roc_auc_score

    t = truth.set_index("row_id")
    p = pred.set_index("row_id")
    missing = t.index.difference(p.index)
    if len(missing):
        raise ValueError(f"predictions lack {len(missing)} row ids of the solution, e.g. {missing[0]}")
    cols = [c for c in t.columns if c in p.columns]
    if len(cols) != len(t.columns):
        raise ValueError(f"predictions lack species columns {sorted(set(t.columns) - set(cols))[:5]}")
    p = p.loc[t.index]
    per = {}
    for c in cols:
        y = t[c].to_numpy() > 0
        if y.any() and not y.all():
            per[c] = float(roc_auc_score(y, p[c].to_numpy()))
    if not per:
        raise ValueError("the solution has no species with both positive and negative windows")
    return float(np.mean(list(per.values()))), per


def macro_auc_arrays(y: np.ndarray, p: np.ndarray) -> float:
    """Macro AUC of [n, s] truth (>= 0.5 positive) and scores over scorable columns (NaN if none)."""
    from sklearn.metrics import roc_auc_score

    yb = y >= 0.5
    vals = [roc_auc_score(yb[:, j], p[:, j]) for j in range(y.shape[1]) if 0 < yb[:, j].sum() < len(yb)]
    return float(np.mean(vals)) if vals else float("nan")


def bootstrap_auc(truth: pd.DataFrame, pred: pd.DataFrame, *, groups: pd.Series, n: int = 200,
                  seed: int = 0) -> tuple[float, float]:
    """95% interval of the macro AUC when whole soundscapes (``groups`` per row) are resampled."""
    rng = np.random.default_rng(seed)
    g = groups.to_numpy()
    uniq = np.unique(g)
    rows = {u: np.flatnonzero(g == u) for u in uniq}
    vals = []
    for _ in range(n):
        pick = np.concatenate([rows[u] for u in rng.choice(uniq, len(uniq))])
        try:
            vals.append(macro_auc_arrays(truth.iloc[pick, 1:].to_numpy(), pred.iloc[pick, 1:].to_numpy()))
        except ValueError:
            continue
    vals = np.array([v for v in vals if np.isfinite(v)])
    return (float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))) if len(vals) else (np.nan, np.nan)


def group_auc(per_species: dict[str, float], groups: dict[str, str]) -> dict[str, float]:
    """Macro AUC within each group of species (e.g. ``taxonomy.csv``'s ``class_name``): the mean of
    ``per_species`` over the scored species of the group; groups with no scored species are left out."""
    out: dict[str, list[float]] = {}
    for sp, auc in per_species.items():
        if sp in groups:
            out.setdefault(groups[sp], []).append(auc)
    return {g: float(np.mean(v)) for g, v in sorted(out.items())}


def paired_bootstrap_diff(truth: pd.DataFrame, a: pd.DataFrame, b: pd.DataFrame, *, groups: pd.Series,
                          n: int = 200, seed: int = 0) -> tuple[float, float, float]:
    """Macro AUC of ``a`` minus that of ``b`` on the same rows, with the 95 % interval of the
    difference when whole soundscapes (``groups`` per row) are resampled, the same draw for both:
    ``(difference, low, high)``. All frames share ``truth``'s row order and columns."""
    rng = np.random.default_rng(seed)
    g = groups.to_numpy()
    uniq = np.unique(g)
    rows = {u: np.flatnonzero(g == u) for u in uniq}
    y, pa, pb = truth.iloc[:, 1:].to_numpy(), a.iloc[:, 1:].to_numpy(), b.iloc[:, 1:].to_numpy()
    diff = macro_auc_arrays(y, pa) - macro_auc_arrays(y, pb)
    vals = []
    for _ in range(n):
        pick = np.concatenate([rows[u] for u in rng.choice(uniq, len(uniq))])
        d = macro_auc_arrays(y[pick], pa[pick]) - macro_auc_arrays(y[pick], pb[pick])
        if np.isfinite(d):
            vals.append(d)
    if not vals:
        return float(diff), float("nan"), float("nan")
    return float(diff), float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))
