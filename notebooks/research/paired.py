"""Two submissions of the same test files compared: each one's macro AUC overall and per taxonomic
class, and the paired bootstrap of their difference (whole files resampled, the same draws for both).

    .venv/bin/python notebooks/research/paired.py --data $WIDE A.csv B.csv   # A - B
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from vocalprint.core.metrics import macro_auc, paired_bootstrap_diff


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="the set's folder (solution.csv, taxonomy.csv)")
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    args = ap.parse_args()
    truth = pd.read_csv(args.data / "solution.csv")
    sp = [c for c in truth.columns if c != "row_id"]
    tax = pd.read_csv(args.data / "taxonomy.csv").set_index("primary_label")
    groups = {"overall": sp}
    for c in sorted(set(tax.loc[sp, "class_name"])):
        groups[c] = [s for s in sp if tax.loc[s, "class_name"] == c]
    files = truth["row_id"].str.rsplit("_", n=1).str[0]

    def load(path: Path) -> pd.DataFrame:
        p = pd.read_csv(path).set_index("row_id")
        missing = set(truth["row_id"]) - set(p.index)
        if missing:
            raise SystemExit(f"{path}: {len(missing)} rows of solution.csv are missing")
        return p.loc[truth["row_id"], sp].reset_index()

    a, b = load(args.a), load(args.b)
    print(f"{args.a.name} - {args.b.name} (95 % interval, {args.draws} paired draws of whole files):")
    for name, cols in groups.items():
        t, pa, pb = (f[["row_id", *cols]] for f in (truth, a, b))
        d, lo, hi = paired_bootstrap_diff(t, pa, pb, groups=files, n=args.draws)
        print(f"  {name:<8} {macro_auc(t, pa)[0]:.4f} vs {macro_auc(t, pb)[0]:.4f}: {d:+.4f} ({lo:+.4f} to {hi:+.4f})")


if __name__ == "__main__":
    main()
