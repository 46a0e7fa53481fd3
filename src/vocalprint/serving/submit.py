"""Stage 7: test soundscapes -> ``submission.csv`` inside the time budget, always complete and valid.

A complete fallback file (per-species prior) is written before any audio is read and rewritten
with real predictions as they arrive, so a killed or late run still leaves a valid submission.
"""
from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path

import numpy as np

from vocalprint.core import artifacts as A
from vocalprint.serving import submission as S
from vocalprint.audio.decode import AudioError, load_audio
from vocalprint.serving.budget import Budget
from vocalprint.config import Config, SubmitConfig
from vocalprint.data.dataset import Dataset
from vocalprint.tokens.heads import prior
from vocalprint.core.parallel import Shipped, progress_bar

log = logging.getLogger(__name__)
CHECKPOINT_S = 30.0
CHUNK_SHARE = 0.02  # the longest a chunk of files may take, as a share of the budget


def next_chunk(todo: list, workers: int, rate: float | None, target_s: float,
               window_s: float) -> tuple[list, list]:
    """Split ``todo`` (``(path, windows)`` pairs) into the next chunk for the workers and the rest.

    Before a rate is measured (``rate`` None or 0) the chunk holds one file per worker, so the first
    rate, and a switch to a cheaper model, come as early as possible. Then it holds at least two
    files per worker, and more while its projected wall time (``rate`` wall seconds per audio second)
    stays within ``target_s``: the workers wait for the slowest at the end of each chunk."""
    if not rate:
        return todo[:workers], todo[workers:]
    size, wall = 0, 0.0
    while size < len(todo):
        wall += rate * todo[size][1] * window_s
        if size >= 2 * workers and wall > target_s:
            break
        size += 1
    return todo[:size], todo[size:]


def _take(todo: list, workers: int, budget: Budget, cfg: Config, *, margin_s: float) -> tuple[list, list]:
    """The next chunk (:func:`next_chunk`) cut to the files that fit in the budget, and the rest; an
    empty chunk when not even the first file fits."""
    target = min(cfg.submit.chunk_s, CHUNK_SHARE * budget.budget_s)
    chunk, rest = next_chunk(todo, workers, budget.seconds_per_audio_s(), target, cfg.audio.window_s)
    while chunk and not budget.can_afford(sum(n for _, n in chunk) * cfg.audio.window_s, margin_s=margin_s):
        chunk, rest = chunk[:-1], chunk[-1:] + rest
    return chunk, rest


def _predict_file(pred, path: Path, n: int) -> tuple[np.ndarray | None, dict, str, float]:
    """``pred`` (or a :class:`~vocalprint.core.parallel.Shipped` predictor) over one file."""
    if isinstance(pred, Shipped):
        pred = pred.get()
    times: dict = {}
    t0 = time.perf_counter()
    try:
        x = load_audio(path, sr=pred.cfg.audio.sr)
    except AudioError as e:
        return None, times, str(e), 0.0
    times["decode"] = time.perf_counter() - t0
    try:
        p = pred.predict(x, n, times)
    except Exception as e:  # a model failure on one file must not cost the submission
        return None, times, f"{path}: prediction failed ({type(e).__name__}: {e})", len(x) / pred.cfg.audio.sr
    if p.shape != (n, len(pred.species)) or not np.isfinite(p).all():
        return None, times, f"{path}: model returned shape {p.shape} or non-finite values", len(x) / pred.cfg.audio.sr
    return np.clip(p, 0.0, 1.0), times, "", len(x) / pred.cfg.audio.sr


def _isolated(run_chunk, task: tuple) -> tuple[np.ndarray | None, dict, str, float]:
    """One file on its own, so a worker crash costs only that file (its rows get the prior)."""
    try:
        return run_chunk(_predict_file, [task])[0]
    except Exception as e:
        return None, {}, f"{task[1]}: the worker predicting it died ({type(e).__name__})", 0.0


def _insure(pred, files: list, run_chunk, workers: int, budget: Budget, preds: dict, used: dict,
            species: list[str], fill: np.ndarray, cfg: Config, *, margin_s: float) -> dict:
    """Score every file with the last-resort model first (while the budget allows); returns what it
    did for the timing report. Its time is kept out of the chosen model's rates."""
    t0, done, todo = budget.elapsed, 0, list(files)
    ship = Shipped(pred) if workers > 1 else pred
    while todo:
        chunk, todo = _take(todo, workers, budget, cfg, margin_s=margin_s)
        if not chunk:
            break
        for (p, _), (probs, _, err, secs) in zip(chunk, run_chunk(_predict_file, [(ship, p, n) for p, n in chunk])):
            if probs is not None:
                preds[p.stem] = postprocess(to_columns(probs, pred.species, species, fill), cfg.submit)
                used[p.stem] = pred.name
                done += 1
            budget.observe(secs)
    log.info("submit: last resort %s scored %d of %d files in %.1f s", pred.name, done, len(files),
             budget.elapsed - t0)
    return {"model": pred.name, "files": done, "elapsed_s": round(budget.elapsed - t0, 2)}


def fallback_prior(ds: Dataset, pred) -> np.ndarray:
    """Per-species score for rows no model predicted: the training label rate (from the data, else
    the one stored with the model, else 0.01), in the submission's column order."""
    species = list(ds.species)
    if len(ds.train):
        return prior(ds.label_matrix())
    base = np.full(len(species), 0.01, np.float32)
    stored = getattr(pred, "prior", None)
    if stored is not None:
        return to_columns(np.asarray(stored)[None], pred.species, species, base)[0]
    return base


def to_columns(p: np.ndarray, have: list[str], want: list[str], fill: np.ndarray) -> np.ndarray:
    """Reorder model outputs [n, len(have)] to the submission's columns; species the model lacks get ``fill``."""
    if list(have) == list(want):
        return p
    idx = {s: i for i, s in enumerate(have)}
    out = np.tile(np.asarray(fill, np.float32), (len(p), 1))
    for j, s in enumerate(want):
        if s in idx:
            out[:, j] = p[:, idx[s]]
    return out


def smooth(p: np.ndarray, w: float) -> np.ndarray:
    """Blend each window with its neighbours in the same file: (1-w) p_i + w * mean(p_i-1, p_i+1)."""
    if w <= 0 or len(p) < 2:
        return p
    nb = np.empty_like(p)
    nb[1:-1] = (p[:-2] + p[2:]) / 2
    nb[0], nb[-1] = p[1], p[-2]
    return (1 - w) * p + w * nb


def file_max(p: np.ndarray, a: float) -> np.ndarray:
    """Blend each species' maximum over the file into every window: (1-a) p_i + a * max_j p_j.
    A species heard anywhere in a soundscape is more likely in its other windows too."""
    if a <= 0:
        return p
    return (1 - a) * p + a * p.max(axis=0, keepdims=True)


def postprocess(p: np.ndarray, cfg: SubmitConfig) -> np.ndarray:
    """A file's window probabilities [n, species] after ``submit.smooth`` then ``submit.file_max``."""
    return file_max(smooth(p, cfg.smooth), cfg.file_max)


def run(cfg: Config, ds: Dataset, predictors: list, out: Path, *, cores: int | None = None,
        clock=time.monotonic, hard_deadline: bool = False) -> dict:
    """Predict every test soundscape with ``predictors[0]``, switching down the list when the budget
    projection says so; returns the timing report (also written to ``timing.json`` beside ``out``).

    ``hard_deadline`` (the CLI sets it) arms a watchdog thread that, 10 s before the budget ends,
    writes the submission with what is predicted so far (the prior elsewhere) and ends the process.
    """
    species = list(ds.species)
    budget = Budget(cfg.submit.budget_min * 60, safety=cfg.submit.safety, clock=clock)
    files, reasons = [], {}
    for p in ds.test_soundscapes:
        n, why = S.expected_windows(p, sr=cfg.audio.sr, window_s=cfg.audio.window_s)
        files.append((p, n))
        if why:
            reasons[p.stem] = why
    ids = S.all_row_ids([(p.stem, n) for p, n in files])
    fallback = fallback_prior(ds, predictors[0])
    preds: dict[str, np.ndarray] = {}
    used: dict[str, str] = {}

    def assemble() -> "S.pd.DataFrame":
        blocks = [preds.get(p.stem, np.tile(fallback, (n, 1))) for p, n in files]
        probs = np.concatenate(blocks) if blocks else np.zeros((0, len(species)), np.float32)
        return S.frame(ids, probs, species)

    t_write = time.perf_counter()
    S.write(assemble(), out, row_ids_expected=ids, species=species)
    write_s = time.perf_counter() - t_write
    log.info("submit: fallback submission with %d rows written to %s", len(ids), out)
    watchdog = None
    if hard_deadline:
        import threading

        def fire() -> None:
            log.error("submit: watchdog: the %.0f-s budget is about to end; writing what is predicted "
                      "(%d of %d files) and stopping", budget.budget_s, len(preds), len(files))
            S.write(assemble(), out, row_ids_expected=ids, species=species)
            A.write_json(out.with_name("timing.json"), {"model": predictors[0].name, "watchdog": True,
                                                        "predicted_files": len(preds), "files": len(files),
                                                        "elapsed_s": round(budget.elapsed, 2)})
            import psutil

            for child in psutil.Process().children(recursive=True):  # worker processes hold our pipes
                child.kill()
            os._exit(0)

        # 10 s before the end, less for a tiny budget (a fifth of it), never less than 3 writes
        margin = max(3 * write_s + 0.5, min(10.0, 0.2 * budget.budget_s))
        watchdog = threading.Timer(max(0.0, budget.left - margin), fire)
        watchdog.daemon = True
        watchdog.start()

    from vocalprint.core.parallel import chunk_runner

    # the chain's last resort (submit.last_resort, e.g. loudness: one decode and Mel per file) runs
    # first over every file, so files the chosen model never reaches get real scores, not the prior
    insurance = None
    if len(predictors) > 1 and cfg.submit.last_resort and predictors[-1].name == cfg.submit.last_resort:
        insurance, predictors = predictors[-1], predictors[:-1]
    n_jobs = max(1, cfg.run.n_jobs)
    audio_left = sum(n * cfg.audio.window_s for _, n in files)
    switches, times, audio_s = [], {}, 0.0
    level, todo = 0, list(files)
    last_ckpt = budget.elapsed
    bar = progress_bar(len(files), desc=f"submit {predictors[0].name}", enabled=cfg.run.progress)
    stopped = ""
    last_resort = {}
    shipped: dict = {}
    with chunk_runner(n_jobs) as (run_chunk, workers):
        if insurance is not None:
            last_resort = _insure(insurance, files, run_chunk, workers, budget, preds, used, species,
                                  fallback, cfg, margin_s=max(5.0, 3 * write_s))
            S.write(assemble(), out, row_ids_expected=ids, species=species)
            budget.reset_rate()
        while todo:
            chunk, todo = _take(todo, workers, budget, cfg, margin_s=max(5.0, 3 * write_s))
            if not chunk:
                stopped = (f"stopped at {budget.elapsed:.0f} s of {budget.budget_s:.0f} s: the next "
                           f"{len(todo)} files would not fit; they keep "
                           + (f"{insurance.name}'s scores" if insurance is not None else "the prior"))
                log.warning("submit: %s", stopped)
                break
            chunk_audio = sum(n * cfg.audio.window_s for _, n in chunk)
            pred = predictors[level]
            if workers > 1 and level not in shipped:  # pickled once, not once per file
                shipped[level] = Shipped(pred)
            tasks = [(shipped.get(level, pred), p, n) for p, n in chunk]
            try:
                results = run_chunk(_predict_file, tasks)
            except Exception as e:  # a worker died (decoder crash, out of memory): find the file
                log.warning("submit: a worker failed (%s); predicting these %d files one by one",
                            type(e).__name__, len(tasks))
                results = [_isolated(run_chunk, t) for t in tasks]
            for (p, n), (probs, t, err, secs) in zip(chunk, results):
                for k, v in t.items():
                    times[k] = times.get(k, 0.0) + v
                audio_s += secs
                if probs is None:
                    reasons[p.stem] = err
                    log.warning("submit: %s; its rows get the prior", err)
                else:
                    preds[p.stem] = postprocess(to_columns(probs, pred.species, species, fallback), cfg.submit)
                    used[p.stem] = pred.name
            bar.update(len(chunk))
            audio_left -= chunk_audio
            budget.observe(chunk_audio)
            if budget.over(audio_left) and level + 1 < len(predictors):
                proj = budget.projected_total(audio_left)
                level += 1
                switches.append({"at_s": round(budget.elapsed, 1), "projected_s": round(proj, 1),
                                 "to": predictors[level].name, "files_left": len(todo)})
                log.warning("submit: projected %.0f s > %.0f%% of %.0f s budget; switching to %s",
                            proj, 100 * budget.safety, budget.budget_s, predictors[level].name)
                budget.reset_rate()
            if budget.elapsed - last_ckpt > CHECKPOINT_S and todo:
                S.write(assemble(), out, row_ids_expected=ids, species=species)
                last_ckpt = budget.elapsed
    bar.close()
    if watchdog is not None:
        watchdog.cancel()
    t_write = time.perf_counter()
    S.write(assemble(), out, row_ids_expected=ids, species=species)
    times["write"] = time.perf_counter() - t_write
    total = budget.elapsed
    minutes = audio_s / 60
    per_min = total / minutes if minutes else float("nan")
    cores_here = cores or os.cpu_count() or 1
    report = {
        "model": predictors[0].name, "models_used": sorted(set(used.values())),
        "members": [m.name for m in getattr(predictors[0], "members", ())],
        "recipe": getattr(predictors[0], "recipe", predictors[0].name),
        "files": len(files), "rows": len(ids), "predicted_files": len(preds),
        "fallback_files": sorted(set(p.stem for p, _ in files) - set(preds)),
        "reasons": reasons, "switches": switches, "stopped": stopped,
        "budget_s": budget.budget_s, "elapsed_s": round(total, 2), "n_jobs": n_jobs, "last_resort": last_resort,
        "audio_minutes": round(minutes, 3),
        "seconds": {k: round(v, 3) for k, v in times.items()},
        "cpu_seconds_per_audio_minute": {k: round(v / minutes, 4) for k, v in times.items()} if minutes else {},
        "wall_seconds_per_audio_minute": round(per_min, 4) if minutes else None,
        "projection_700_min": ({f"{c}_cores": round(per_min * 700 / 60 * min(n_jobs, cores_here) / c, 2)
                                for c in (2, 4)} if minutes and math.isfinite(per_min) else {}),
        "projection_note": "wall time here scaled linearly by core count; measured on "
                           f"{cores_here} cores with {n_jobs} workers",
    }
    A.write_json(out.with_name("timing.json"), report)
    log.info("submit: %d rows, %d/%d files predicted, %.1f s for %.1f audio minutes", len(ids),
             len(preds), len(files), total, minutes)
    return report
