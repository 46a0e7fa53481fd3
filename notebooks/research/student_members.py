"""Each member of the student ensemble alone, every pair of members, and the whole ensemble
(``distill.members``, the mean of their logits): AUC of the int8 students overall and per
``taxonomy.csv`` class, each row scored as ``make submit`` does (windows shifted
± ``submit.student_shift_s``), with and without ``--file-max`` (each species' maximum over the
file blended into its rows, as ``submit.file_max``). The members are trained first when missing.
The spread over the lone members is the seed spread of one student. ``--model tokens-cnn`` does
the same for the token students; students with the whole-minute form are read over the minute
(``submit.student_fcn``, as ``make submit`` does).

    PYTHONPATH=src .venv/bin/python notebooks/research/student_members.py --data ../shared/data/dev-wide \\
        --artifacts artifacts --set distill.members=3 --save artifacts/metrics/members
"""
from __future__ import annotations

import argparse
import itertools
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd


def scores(solution: pd.DataFrame, sub: pd.DataFrame, groups: dict[str, str], file_max: float) -> dict[str, float]:
    """Macro AUC overall and per group after blending ``file_max`` of each file's maximum."""
    from vocalprint.core.metrics import group_auc, macro_auc
    from vocalprint.serving.submit import file_max as blend
    from vocalprint.tools.report.results import soundscape_ids

    sub = sub.set_index("row_id").loc[solution["row_id"]].reset_index()
    cols = [c for c in sub.columns if c != "row_id"]
    files = soundscape_ids(sub["row_id"])
    p = sub[cols].to_numpy(np.float64)
    for f in np.unique(files):
        m = files == f
        p[m] = blend(p[m], file_max)
    sub[cols] = p
    overall, per = macro_auc(solution, sub)
    return {"overall": overall, **group_auc(per, groups)}


def main() -> None:
    from _student import dev_setup

    from vocalprint import models
    from vocalprint.serving import submit
    from vocalprint.student.predictor import StudentPredictor
    from vocalprint.tools.evaluate import taxon_groups

    ap = argparse.ArgumentParser()
    ap.add_argument("--file-max", type=float, default=0.2, help="the file-maximum share of the second table")
    ap.add_argument("--model", default="student", choices=("student", "tokens-cnn"))
    ap.add_argument("--save", type=Path, help="write each set's submission here (student-<members>.csv), e.g. "
                    "for recommended.py --student")
    a, cfg, ds, root, solution = dev_setup(["run.progress=false"], ap)
    pred = models.predictor(cfg, ds, root, a.model)
    cfg = pred.cfg  # the model's own configuration (tokens-cnn: the token front)
    groups = taxon_groups(pd.read_csv(Path(a.data) / "taxonomy.csv"))
    n = len(pred.model_paths)
    sets = [(j,) for j in range(n)] + (list(itertools.combinations(range(n), 2)) if n > 2 else []) \
        + ([tuple(range(n))] if n > 1 else [])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for members in sets:
            fcn = dict(fcn_paths=[pred.fcn_paths[j] for j in members], fcn_layout=pred.fcn_layout.to_dict()) \
                if pred.fcn_paths and pred.fcn_layout is not None else {}
            p = StudentPredictor(name=a.model, cfg=cfg, species=pred.species,
                                 model_paths=[pred.model_paths[j] for j in members], **fcn)
            p.prior = pred.prior
            out = Path(tmp) / "submission.csv"
            submit.run(cfg, ds, [p], out)
            sub = pd.read_csv(out)
            if a.save:
                a.save.mkdir(parents=True, exist_ok=True)
                sub.to_csv(a.save / f"student-{'-'.join(map(str, members))}.csv", index=False)
            label = f"member {members[0]} alone" if len(members) == 1 else " + ".join(map(str, members))
            for fm in (0.0, a.file_max):
                rows.append({"members": label, "file_max": fm, **scores(solution, sub, groups, fm)})
    df = pd.DataFrame(rows)
    cols = [c for c in df.columns if c not in ("members", "file_max")]
    for fm, part in df.groupby("file_max", sort=True):
        print(f"\nfile_max = {fm:g}\n\n| students | " + " | ".join(cols) + " |\n|" + "---|" * (len(cols) + 1))
        for r in part.itertuples(index=False):
            print(f"| {r.members} | " + " | ".join(f"{getattr(r, c):.3f}" for c in cols) + " |")
        alone = part[part["members"].str.endswith("alone")]
        if len(alone) > 1:
            print("\nlone members, min-max: " + ", ".join(f"{c} {alone[c].min():.3f}-{alone[c].max():.3f}" for c in cols))


if __name__ == "__main__":
    main()
