"""The recommended recipe's choices, re-scored from evaluated submissions: the share of each file's
maximum (a plateau, not a point) and the paired bootstrap of `recommended` against BirdNET alone,
overall and per taxonomic class.

    make submit evaluate DATA_DIR=$WIDE MODEL=birdnet-zeroshot   # then tokens-nb, recommended (student)
    .venv/bin/python notebooks/research/recommended.py --data $WIDE --artifacts artifacts

``--student CSV`` (repeatable; default ``metrics/student.csv`` when it exists) re-blends each
student submission as a third member for the species BirdNET cannot name, e.g. every lone member
written by ``student_members.py --save``: the spread of that gain over students.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from vocalprint.core.metrics import macro_auc, paired_bootstrap_diff
from vocalprint.serving.submit import file_max


def _scores(truth: pd.DataFrame, pred: pd.DataFrame, classes: dict[str, list[str]]) -> dict[str, float]:
    out = {"overall": macro_auc(truth, pred)[0]}
    for c, sp in classes.items():
        out[c] = macro_auc(truth[["row_id", *sp]], pred[["row_id", *sp]])[0]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--student", type=Path, action="append", default=[], help="a student submission CSV")
    args = ap.parse_args()
    truth = pd.read_csv(args.data / "solution.csv")
    sp = [c for c in truth.columns if c != "row_id"]
    tax = pd.read_csv(args.data / "taxonomy.csv").set_index("primary_label")
    classes = {c: [s for s in sp if tax.loc[s, "class_name"] == c] for c in sorted(set(tax.loc[sp, "class_name"]))}
    files = truth["row_id"].str.rsplit("_", n=1).str[0]

    def load(model: str | Path) -> pd.DataFrame:
        path = model if isinstance(model, Path) else args.artifacts / "metrics" / f"{model}.csv"
        p = pd.read_csv(path).set_index("row_id")
        return p.loc[truth["row_id"], sp].reset_index()

    bz, nb = load("birdnet-zeroshot"), load("tokens-nb")
    named = np.array([c != "Insecta" for c in tax.loc[sp, "class_name"]])  # BirdNET names every dev bird
    blend = bz.copy()
    unn = [s for s, k in zip(sp, named) if not k]
    blend[unn] = 0.75 * bz[unn].clip(1e-6, 1 - 1e-6) + 0.25 * nb[unn].clip(1e-6, 1 - 1e-6)

    def with_file_max(p: pd.DataFrame, a: float) -> pd.DataFrame:
        out = p.copy()
        for _, idx in files.groupby(files).groups.items():
            out.loc[idx, sp] = file_max(p.loc[idx, sp].to_numpy(), a)
        return out

    print("share of the file maximum -> " + ", ".join(["overall", *classes]))
    for a in (0.0, 0.1, 0.15, 0.2, 0.25, 0.3):
        s = _scores(truth, with_file_max(blend, a), classes)
        print(f"  {a:<5}" + "  ".join(f"{v:.3f}" for v in s.values()))
    students = args.student or [p for p in [args.artifacts / "metrics" / "student.csv"] if p.is_file()]
    for path in students:  # the student as a third member, for the rest
        st = load(path)
        print(f"with {path.name}:")
        for w, name in ((0.25, "0.5 BirdNET + 0.25 tokens-nb + 0.25 student"), (1.0, "the student alone")):
            b3 = bz.copy()
            b3[unn] = (0.5 * bz[unn] + 0.25 * nb[unn] + 0.25 * st[unn]) if w < 1 else st[unn]
            for a in ((0.1, 0.15, 0.2, 0.25, 0.3) if w < 1 else (0.2,)):  # the recipe's plateau
                s = _scores(truth, with_file_max(b3, a), classes)
                print(f"  unnamed species: {name}, file max {a}: " + "  ".join(f"{v:.3f}" for v in s.values()))
    rec = load("recommended") if (args.artifacts / "metrics" / "recommended.csv").is_file() else with_file_max(blend, 0.2)
    print(f"recommended - birdnet-zeroshot (95 % interval, {args.draws} paired draws of whole files):")
    for name, cols in {"overall": sp, **classes}.items():
        t, a, b = (f[["row_id", *cols]] for f in (truth, rec, bz))
        d, lo, hi = paired_bootstrap_diff(t, a, b, groups=files, n=args.draws)
        print(f"  {name:<8} {d:+.3f} ({lo:+.3f} to {hi:+.3f})")


if __name__ == "__main__":
    main()
