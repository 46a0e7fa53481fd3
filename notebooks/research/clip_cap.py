"""Score submissions made under different ``teacher.max_class_windows`` against one reference, per
taxonomic class, with paired bootstrap intervals of the difference (whole test files resampled).

Each submission is made and scored first, e.g. on dev-wide::

    python -m vocalprint submit --data $WIDE --model birdnet-probe --artifacts A \\
        --out runs/birdnet-probe-cap5-seed0/submission.csv --set teacher.max_class_windows=5 \\
        --set teacher.sample_seed=0

then::

    python notebooks/research/clip_cap.py --data $WIDE --reference runs/birdnet-probe-cap0-seed0 \\
        runs/birdnet-probe-cap5-seed*
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from vocalprint.core.metrics import macro_auc, paired_bootstrap_diff


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="data set with solution.csv and taxonomy.csv")
    ap.add_argument("--reference", required=True, help="folder with the reference submission.csv")
    ap.add_argument("runs", nargs="+", help="folders with a submission.csv each")
    ap.add_argument("--draws", type=int, default=500)
    args = ap.parse_args(argv)
    data = Path(args.data)
    truth = pd.read_csv(data / "solution.csv")
    tax = pd.read_csv(data / "taxonomy.csv")
    sp = [c for c in truth.columns[1:] if truth[c].sum() > 0]
    classes = {c: [s for s in g["primary_label"] if s in sp] for c, g in tax.groupby("class_name")}
    groups = truth["row_id"].str.rsplit("_", n=1).str[0]
    ref = pd.read_csv(Path(args.reference) / "submission.csv").set_index("row_id").loc[truth["row_id"]].reset_index()
    print(f"| run | {' | '.join(['overall', *classes])} |\n|---|{'---|' * (1 + len(classes))}")
    for run in [args.reference, *args.runs]:
        sub = pd.read_csv(Path(run) / "submission.csv").set_index("row_id").loc[truth["row_id"]].reset_index()
        cells = []
        for cols in [sp, *classes.values()]:
            t, a, b = (f[["row_id", *cols]] for f in (truth, sub, ref))
            auc = macro_auc(t, a)[0]
            if run == args.reference:
                cells.append(f"{auc:.4f}")
                continue
            d, lo, hi = paired_bootstrap_diff(t, a, b, groups=groups, n=args.draws)
            cells.append(f"{auc:.4f} ({d:+.4f}; {lo:+.4f} to {hi:+.4f})")
        print(f"| {Path(run).name} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
