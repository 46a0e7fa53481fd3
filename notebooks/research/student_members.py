"""Each member of the student ensemble alone, and the ensemble (``distill.members``, the mean of
their logits): dev AUC of the int8 students, each row scored as ``make submit`` does (windows
shifted ± ``submit.student_shift_s``). The members are trained first when missing.

    PYTHONPATH=src .venv/bin/python notebooks/research/student_members.py --data ../shared/data/dev \\
        --artifacts artifacts --set distill.seed=1
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd


def main() -> None:
    from _student import dev_student

    from vocalprint.serving import submit
    from vocalprint.core.metrics import macro_auc
    from vocalprint.student.predictor import StudentPredictor

    cfg, ds, pred, solution = dev_student(["run.progress=false"])
    alone = []
    for mp in pred.model_paths:
        p = StudentPredictor(name="student", cfg=cfg, species=pred.species, model_paths=[mp])
        p.prior = pred.prior
        alone.append(p)
    with tempfile.TemporaryDirectory() as tmp:
        def auc(p) -> float:
            out = Path(tmp) / "submission.csv"
            submit.run(cfg, ds, [p], out)
            return macro_auc(solution, pd.read_csv(out))[0]

        res = [auc(p) for p in alone] + [auc(pred)]
    head = " | ".join(f"member {j} alone" for j in range(len(alone)))
    print(f"| {head} | {len(alone)} averaged |\n|{'---|' * (len(alone) + 1)}")
    print("| " + " | ".join(f"{v:.3f}" for v in res) + " |")


if __name__ == "__main__":
    main()
