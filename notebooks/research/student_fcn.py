"""The student window by window against its whole-file form (``submit.student_fcn``): the same
trained members, the same Mel frames, each row the max over its window and the windows shifted
± ``submit.student_shift_s``. Prints the model time per audio minute of each form (one thread,
best of ``--repeat`` passes over the test soundscapes; the Mel is computed once and not timed), how
far the whole-file logits are from the windows' (the tolerance of the replaced computation), and
the AUC of both overall and per ``taxonomy.csv`` class, with the paired bootstrap interval of the
difference (whole soundscapes resampled). The members are trained first when missing.

    PYTHONPATH=src .venv/bin/python notebooks/research/student_fcn.py --data ../shared/data/dev \\
        --artifacts artifacts --repeat 3 [--model tokens-cnn]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd


def main() -> None:
    from _student import dev_setup

    from vocalprint import models
    from vocalprint.audio.decode import load_audio, n_windows, row_ids
    from vocalprint.audio.mel import mel_frames
    from vocalprint.config import frames_per_window
    from vocalprint.core.metrics import macro_auc, paired_bootstrap_diff
    from vocalprint.core.numeric import sigmoid
    from vocalprint.student.fcn import row_offsets
    from vocalprint.student.predictor import shifted_windows
    from vocalprint.tools.evaluate import taxon_groups

    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--model", default="student", help="a student model (student, tokens-cnn)")
    a, cfg, ds, root, solution = dev_setup(["run.progress=false", "submit.student_fcn=true"], ap)
    pred = models.predictor(cfg, ds, root, a.model)
    fcn = pred.fcn_runner()
    if fcn is None:
        raise SystemExit("the students have no whole-file form: retrain them")
    win = pred.runner()
    offsets = row_offsets(cfg)
    files = []
    for path in sorted(ds.test_soundscapes):
        x = load_audio(path)
        n = n_windows(len(x), sr=cfg.audio.sr, window_s=cfg.audio.window_s)
        files.append((Path(path).stem, n, len(x) / cfg.audio.sr / 60, mel_frames(x, cfg, None)))
    minutes = sum(f[2] for f in files)

    def windows(frames: np.ndarray, n: int) -> np.ndarray:
        w, rows = shifted_windows(frames, n=n, fpw=frames_per_window(cfg), offsets_s=offsets, cfg=cfg)
        return win.predict(w)["logits"][rows]

    def whole(frames: np.ndarray, n: int) -> np.ndarray:
        out = pred.whole_file_logits(fcn, frames, n, offsets)
        if out is None:
            raise SystemExit("a test file does not fit the whole-file graph")
        return out

    best: dict[str, float] = {}
    logits: dict[str, list] = {}
    for _ in range(a.repeat):
        for name, fn in (("windows", windows), ("whole file", whole)):
            t0 = time.process_time()
            logits[name] = [fn(fr, n) for _, n, _, fr in files]
            best[name] = min(best.get(name, np.inf), (time.process_time() - t0) / minutes)
    print(f"{len(files)} files, {minutes:.1f} audio min, {len(pred.model_paths)} member(s)\n")
    print("| form | model CPU ms per audio minute |\n|---|---|")
    for k, v in best.items():
        print(f"| {k} | {1000 * v:.1f} |")
    print(f"\nwindows / whole file: {best['windows'] / best['whole file']:.2f}x")

    a_rows = np.concatenate([v.max(axis=1) for v in logits["windows"]])
    b_rows = np.concatenate([v.max(axis=1) for v in logits["whole file"]])
    d = np.abs(a_rows - b_rows)
    print(f"\nrow logits (max over the shifted windows), whole file - windows: max |d| {d.max():.3f}, "
          f"p99 {np.percentile(d, 99):.3f}, median {np.median(d):.3f}, correlation "
          f"{np.corrcoef(a_rows.ravel(), b_rows.ravel())[0, 1]:.4f}; logit range "
          f"{a_rows.min():.1f} .. {a_rows.max():.1f}")

    ids = [r for stem, n, _, _ in files for r in row_ids(stem, n, window_s=cfg.audio.window_s)]
    subs = {k: pd.DataFrame(sigmoid(v), columns=pred.species).assign(row_id=ids) for k, v in
            (("windows", a_rows), ("whole file", b_rows))}
    subs = {k: s.set_index("row_id").loc[solution["row_id"]].reset_index() for k, s in subs.items()}
    groups = taxon_groups(pd.read_csv(Path(a.data) / "taxonomy.csv"))
    files_of = solution["row_id"].str.rsplit("_", n=1).str[0]
    scorable = [c for c in solution.columns[1:] if 0 < solution[c].sum() < len(solution)]
    sets = {"overall": scorable, **{g: [c for c in scorable if groups.get(c) == g]
                                    for g in sorted(set(groups.values()))}}
    print("\n| set | windows | whole file | difference (95 % paired bootstrap) |\n|---|---|---|---|")
    for label, cols in sets.items():
        if not cols:
            continue
        t, w, f = (x[["row_id", *cols]] for x in (solution, subs["windows"], subs["whole file"]))
        diff, lo, hi = paired_bootstrap_diff(t, f, w, groups=files_of, n=a.draws)
        print(f"| {label} ({len(cols)} species) | {macro_auc(t, w)[0]:.4f} | {macro_auc(t, f)[0]:.4f} | "
              f"{diff:+.4f} ({lo:+.4f} to {hi:+.4f}) |")


if __name__ == "__main__":
    main()
