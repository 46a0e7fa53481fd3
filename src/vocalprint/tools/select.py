"""``make select``: the ensemble with the best local AUC whose projected time fits the budget.

Reads what ``make evaluate`` left for each model on one dataset (``artifacts/metrics/<model>.json``
with the projection, ``<model>.csv`` with the per-window scores) and the dataset's
``solution.csv``; scores every combination of up to ``max_members`` models over a small weight
grid and writes the winner as a config file for ``make submit``. The choice is made on the same
labels it is scored on: treat its AUC as optimistic.
"""
from __future__ import annotations

import itertools
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from vocalprint.core import artifacts as A
from vocalprint.core.metrics import group_auc, macro_auc

log = logging.getLogger(__name__)
WEIGHTS = (0.25, 0.5, 0.75)


def load_runs(metrics_dir: Path, data_root: Path) -> dict[str, tuple[pd.DataFrame, float]]:
    """{model: (per-window scores aligned on the solution's rows, projected minutes for 700 files)}.

    Minutes come from ``bench/bench.json`` beside ``metrics_dir`` when it covers the model, else
    from the projection of the evaluated submit run."""
    sol = pd.read_csv(data_root / "solution.csv")
    bench = metrics_dir.parent / "bench" / "bench.json"  # measured side by side: preferred over one submit run
    benched = {}
    if bench.is_file() and Path(json.loads(bench.read_text())["data"]).resolve() == data_root.resolve():
        benched = {r["model"]: r["projected_min_700_2_cores"] for r in json.loads(bench.read_text())["models"]}
    runs = {}
    for j in sorted(metrics_dir.glob("*.json")):
        m = json.loads(j.read_text())
        csv = j.with_suffix(".csv")
        if Path(m.get("data", "")).resolve() != data_root.resolve() or not csv.is_file() \
                or m["model"].startswith("ensemble") or m.get("members"):  # averages of models: not candidates
            continue
        minutes = benched.get(m["model"], (m.get("projection_700_min") or {}).get("2_cores"))
        if minutes is None:
            continue
        p = pd.read_csv(csv).set_index("row_id").loc[sol["row_id"]].reset_index()
        runs[m["model"]] = (p, float(minutes))
    return runs


def combine(frames: list[pd.DataFrame], weights: list[float]) -> pd.DataFrame:
    w = np.asarray(weights, float) / sum(weights)
    cols = frames[0].columns[1:]
    vals = sum(wi * f[cols].to_numpy(dtype=float) for wi, f in zip(w, frames))
    return pd.concat([frames[0][["row_id"]], pd.DataFrame(vals, columns=cols, index=frames[0].index)], axis=1)


def search(runs: dict, solution: pd.DataFrame, *, budget_min: float, safety: float = 0.85,
           max_members: int = 3, classes: dict[str, str] | None = None) -> list[dict]:
    """Every candidate (members, weights, AUC, projected minutes), best first among those that fit."""
    names = sorted(runs)
    cands = []
    for k in range(1, min(max_members, len(names)) + 1):
        for combo in itertools.combinations(names, k):
            grids = [[1.0]] if k == 1 else ([[w, 1 - w] for w in WEIGHTS] if k == 2 else [[1.0] * k])
            minutes = sum(runs[m][1] for m in combo)  # upper bound: members share decoding and Mel
            for w in grids:
                auc, per = macro_auc(solution, combine([runs[m][0] for m in combo], w))
                cands.append({"members": list(combo), "weights": [round(x, 3) for x in w], "macro_auc": auc,
                              "per_class": group_auc(per, classes or {}),
                              "projected_min_700_2_cores": round(minutes, 2),
                              "fits": minutes <= safety * budget_min})
    return sorted(cands, key=lambda c: (not c["fits"], -c["macro_auc"], c["projected_min_700_2_cores"]))


def run(data_root: Path, root: Path, *, budget_min: float, safety: float) -> Path:
    runs = load_runs(root / "metrics", data_root)
    if not runs:
        raise FileNotFoundError(f"{root / 'metrics'}: no evaluated models for {data_root} "
                                "(run make submit evaluate MODEL=... first)")
    from vocalprint.tools.evaluate import taxon_groups

    tax = data_root / "taxonomy.csv"
    classes = taxon_groups(pd.read_csv(tax)) if tax.is_file() else {}
    cands = search(runs, pd.read_csv(data_root / "solution.csv"), budget_min=budget_min, safety=safety,
                   classes=classes)
    best = cands[0]
    if not best["fits"]:
        log.warning("select: no combination fits %.0f min; choosing the fastest single model", budget_min)
        best = min((c for c in cands if len(c["members"]) == 1), key=lambda c: c["projected_min_700_2_cores"])
    out = root / "select"
    A.write_json(out / "candidates.json", {"data": str(data_root), "budget_min": budget_min, "candidates": cands})
    import yaml

    cfg = {"submit": {"model": "ensemble" if len(best["members"]) > 1 else best["members"][0],
                      "members": best["members"], "weights": [str(w) for w in best["weights"]]}}
    with A.atomic_path(out / "selected.yaml") as tmp:
        tmp.write_text(f"# make select: macro AUC {best['macro_auc']:.4f} on {data_root}, "
                       f"{best['projected_min_700_2_cores']} min projected for 700 files on 2 cores\n"
                       + yaml.safe_dump(cfg, sort_keys=False))
    by_class = ", ".join(f"{k} {v:.4f}" for k, v in best["per_class"].items())
    print(f"selected {best['members']} weights {best['weights']}: AUC {best['macro_auc']:.4f}"
          + (f" ({by_class})" if by_class else "")
          + f", {best['projected_min_700_2_cores']} min projected (budget {budget_min} min)")
    return out / "selected.yaml"
