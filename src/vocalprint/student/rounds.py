"""Noisy-student self-training: rounds of soft pseudo-labels on the unlabelled train soundscapes.

Round 0 is the distilled ensemble of :func:`vocalprint.student.stage.run_all` (same keys as without
rounds). Round r >= 1: the stage ``pseudo`` labels windows of the train soundscapes starting every
``distill.pl_hop_s`` seconds (time-shift noise against round 0's tiled windows) with round r-1's
members, blended with the teacher for the species it names and sharpened by a power transform
(:func:`blend`); then every member is trained afresh with those soft labels in its label loss
(:func:`vocalprint.student.stage.run` with ``pseudo_dir``), its noise the usual SpecAugment, pair
mixing and dropout. A member's key in round r names its pseudo-label stage, whose key names round
r-1's member folders: a changed round-0 setting rebuilds every later round.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from vocalprint.audio import mel as M
from vocalprint.config import Config, fingerprint, frames_per_window
from vocalprint.core import artifacts as A
from vocalprint.core.numeric import sigmoid
from vocalprint.data.dataset import Dataset
from vocalprint.student import stage as student

log = logging.getLogger(__name__)
FILES_PER_TASK = 32  # soundscapes labelled per task: the unit of parallel work and of resumption
LABELER = "student_fp32.tflite"


def blend(student_logits: np.ndarray, teacher_logits: np.ndarray, named: np.ndarray, *, weight: float,
          power: float) -> np.ndarray:
    """Pseudo-labels [n, S] float32 in [0, 1]: ``p = sigmoid(student_logits)``; for the species the
    teacher names (``named`` [S] bool) ``weight * sigmoid(teacher) + (1 - weight) * p`` (where the
    teacher's logit is finite); then ``p ** power``."""
    p = sigmoid(np.asarray(student_logits, np.float32)).astype(np.float64)
    t = np.asarray(teacher_logits, np.float32)
    use = np.asarray(named, bool)[None, :] & np.isfinite(t)
    p = np.where(use, weight * sigmoid(np.where(use, t, 0.0)) + (1.0 - weight) * p, p)
    return np.clip(p ** power, 0.0, 1.0).astype(np.float32)


def key(cfg: Config, labeler_dirs: Sequence[Path], cache_key: str, mel_key: str, round_: int) -> str:
    d = cfg.distill
    return fingerprint("pseudo", round_, d.pl_power, d.pl_teacher_weight, d.pl_hop_s,
                       [Path(p).name for p in labeler_dirs], cache_key, mel_key)


def windows(frames: np.ndarray, starts: np.ndarray, fpw: int, cfg: Config) -> np.ndarray:
    """[n, fpw, n_mels] float32 windows of ``frames`` from ``starts`` (silence past the end)."""
    out = np.full((len(starts), fpw, frames.shape[1]), M.silence(cfg.mel), np.float32)
    for i, a in enumerate(starts):
        fr = frames[a:a + fpw]
        out[i, :len(fr)] = fr
    return out


def _label_batch(out: str, win: pd.DataFrame, cfg: Config, mel_dir: str, cache_dir: str,
                 models: tuple[str, ...], named: np.ndarray) -> int:
    """Pseudo-labels of the windows ``win`` (a few files) -> ``out`` (.npy, atomic). Returns the
    number of windows (0 when ``out`` was written before an interruption)."""
    from vocalprint.core.parallel import process_cached
    from vocalprint.student.runtime import StudentEnsemble, StudentRunner

    o = Path(out)
    if o.is_file():
        return 0
    ens = process_cached(("pseudo-labelers", models), lambda: StudentEnsemble(
        [StudentRunner(Path(p), threads=1) for p in models]))
    fpw = frames_per_window(cfg)
    t_log, _ = student.pool_teacher(cfg, Path(cache_dir), win)
    s_log = []
    for name, grp in win.groupby("name", sort=False):
        x = windows(M.load_frames(Path(mel_dir), name), grp["start"].to_numpy(), fpw, cfg)
        s_log.append(ens.predict(x)["logits"])
    d = cfg.distill
    A.save_npy(o, blend(np.concatenate(s_log), t_log, named, weight=d.pl_teacher_weight, power=d.pl_power))
    return len(win)


def pseudo_labels(cfg: Config, ds: Dataset, mel_dir: Path, cache_dir: Path, labeler_dirs: Sequence[Path],
                  root: Path, *, round_: int) -> Path:
    """Soft pseudo-labels of the train soundscapes for round ``round_`` -> ``<root>/pseudo/<key>/``:
    ``rows.csv`` (name, start, stop in Mel frames: a window every ``distill.pl_hop_s`` s) and
    ``labels.npy`` [n, S] float32 in [0, 1] (:func:`blend` of the members ``labeler_dirs``' mean
    logits and the teacher's pooled window logits)."""
    from vocalprint.core.parallel import map_files

    if round_ < 1 or not labeler_dirs:
        raise ValueError(f"pseudo labels: round {round_} with {len(labeler_dirs)} labelers")
    final = A.stage_dir(root, "pseudo", key(cfg, labeler_dirs, cache_dir.name, mel_dir.name, round_))
    if A.is_complete(final):
        log.info("pseudo: cached at %s", final)
        return final
    work = A.partial_dir(final)
    timer = A.Timer("pseudo")
    models = tuple(str(A.verified(Path(p) / LABELER)) for p in labeler_dirs)
    named = np.asarray(A.manifest(cache_dir)["columns"]) >= 0
    n_sp = len(A.manifest(labeler_dirs[0])["species"])
    if len(named) != n_sp:
        raise ValueError(f"pseudo labels: {len(named)} teacher columns for {n_sp} student species")
    win = student.soundscape_windows(cfg, mel_dir, cache_dir, hop_s=cfg.distill.pl_hop_s)
    names = win["name"].unique()
    tasks = []
    for i in range(0, len(names), FILES_PER_TASK):
        part = win[win["name"].isin(names[i:i + FILES_PER_TASK])]
        tasks.append((str(work / "parts" / f"p_{i:08d}.npy"), part, cfg, str(mel_dir), str(cache_dir), models, named))
    with timer("label"):
        map_files(_label_batch, tasks, n_jobs=cfg.run.n_jobs, desc="pseudo labels", progress=cfg.run.progress)
    with timer("assemble"):
        Y = (np.concatenate([np.load(t[0]) for t in tasks]) if tasks else np.zeros((0, n_sp), np.float32))
        win.to_csv(work / "rows.csv", index=False)
        A.save_npy(work / "labels.npy", Y.astype(np.float32))
        for t in tasks:
            Path(t[0]).unlink()
        if (work / "parts").is_dir():
            (work / "parts").rmdir()
    facts = summary(Y)
    log.info("pseudo round %d: %d windows of %d soundscapes, mean label %.4f, %.4f of labels above 0.5",
             round_, facts["n_windows"], len(names), facts["mean_label"], facts["share_above_half"])
    return A.finish(work, final, {"stage": "pseudo", "round": round_, "config": cfg.distill,
                                  "labelers": [Path(p).name for p in labeler_dirs],
                                  "upstream": [cache_dir.name, mel_dir.name] + [Path(p).name for p in labeler_dirs],
                                  "n_files": int(len(names)), "n_named": int(named.sum()), **facts,
                                  "seconds": timer.seconds})


def summary(Y: np.ndarray) -> dict:
    """AUC-free facts of pseudo-labels: windows, mean label, share of labels above 0.5."""
    return {"n_windows": int(len(Y)), "mean_label": float(Y.mean()) if Y.size else 0.0,
            "share_above_half": float((Y > 0.5).mean()) if Y.size else 0.0}


def run_rounds(cfg: Config, ds: Dataset, mel_dir: Path, cache_dir: Path, tfeat_dir: Path, root: Path) -> list[Path]:
    """Round 0 (:func:`vocalprint.student.stage.run_all`), then ``distill.rounds`` self-training
    rounds; returns the last round's member folders (each round cached stage by stage)."""
    members = student.run_all(cfg, ds, mel_dir, cache_dir, tfeat_dir, root)
    for r in range(1, cfg.distill.rounds + 1):
        pseudo = pseudo_labels(cfg, ds, mel_dir, cache_dir, members, root, round_=r)
        members = student.run_all(cfg, ds, mel_dir, cache_dir, tfeat_dir, root, pseudo_dir=pseudo, round_=r)
        log.info("student round %d: %d members trained on %s (%d pseudo-labelled windows, mean %.4f, "
                 "%.4f above 0.5)", r, len(members), pseudo.name, *(A.manifest(pseudo)[k] for k in
                                                                      ("n_windows", "mean_label", "share_above_half")))
    return members
