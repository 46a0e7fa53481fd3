"""How the student scores a 5-s row (README, the student): its own window only, or the max / mean
of its logits over the window and the windows shifted by -/+ d seconds (``submit.student_shift_s``
is the max over three windows). The trained student (the ``distill`` config with the ``--set``
overrides, trained first if missing; its members averaged when ``distill.members`` > 1), int8, on
the labelled test soundscapes of a dev-style folder.

    PYTHONPATH=src .venv/bin/python notebooks/research/student_shifts.py --data ../shared/data/dev \
        --artifacts artifacts --set distill.members=1 --set distill.width=32 --set distill.n_mixes=6000
"""
from __future__ import annotations

import numpy as np
import pandas as pd

SHIFTS = ((), (1.25,), (2.0,), (2.5,), (3.75,), (5.0,), (1.25, 2.5))  # () = the row's window alone


def main() -> None:
    from _student import dev_student

    from vocalprint.audio.decode import load_audio, n_windows, row_ids
    from vocalprint.config import frames_per_window
    from vocalprint.audio.mel import logmel
    from vocalprint.core.metrics import macro_auc
    from vocalprint.student.predictor import shifted_windows

    cfg, ds, pred, solution = dev_student(["submit.student_shift_s=0"])
    fpw, w = frames_per_window(cfg), cfg.audio.window_s
    frames = {}
    for p in ds.test_soundscapes:
        x = load_audio(p, sr=cfg.audio.sr)
        frames[p.stem] = (logmel(x, sr=cfg.audio.sr, cfg=cfg.mel), n_windows(len(x), sr=cfg.audio.sr))

    def rows(shifts: tuple, pool: str) -> pd.DataFrame:
        offs = tuple(sorted({0.0, *shifts, *(-d for d in shifts)}))
        out = []
        for stem, (fr, n) in frames.items():
            wins, idx = shifted_windows(fr, n=n, fpw=fpw, offsets_s=offs, cfg=cfg)
            lg = pred.runner().predict(wins)["logits"][idx]
            lg = lg.max(axis=1) if pool == "max" else lg.mean(axis=1)
            p = 1 / (1 + np.exp(-lg))
            out += [[r, *p[i]] for i, r in enumerate(row_ids(stem, n, window_s=w))]
        return pd.DataFrame(out, columns=["row_id", *pred.species])

    print("| shifts (s) | max | mean |\n|---|---|---|")
    for sh in SHIFTS:
        res = [macro_auc(solution, rows(sh, pool))[0] for pool in ("max", "mean")]
        label = "none (the row's window)" if not sh else ", ".join(f"±{d:g}" for d in sh)
        print(f"| {label} | {res[0]:.3f} | {res[1]:.3f} |", flush=True)


if __name__ == "__main__":
    main()
