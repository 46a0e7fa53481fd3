"""``make bench``: inference speed (per stage, per audio minute), peak memory and AUC of each model,
projected to the hidden test set (700 one-minute files) on 2 and 4 cores; JSON, table and plot."""
from __future__ import annotations

import logging
import threading
import os
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd

from vocalprint.core import artifacts as A
from vocalprint.serving import submit
from vocalprint.config import Config
from vocalprint.data.dataset import Dataset
from vocalprint.core.metrics import macro_auc

log = logging.getLogger(__name__)
TEST_MINUTES = 700


class PeakRSS:
    """Samples the resident memory of this process and its children (bytes) in a thread."""

    def __init__(self, every_s: float = 0.05):
        self.every_s, self.peak, self._stop = every_s, 0, threading.Event()

    def _sample(self) -> int:
        import psutil

        me = psutil.Process()
        total = me.memory_info().rss
        for c in me.children(recursive=True):
            try:
                total += c.memory_info().rss
            except psutil.Error:
                pass
        return total

    def __enter__(self):
        self._t = threading.Thread(target=self._loop, daemon=True)
        self._t.start()
        return self

    def _loop(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            time.sleep(self.every_s)

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


def _warm(pred, i: int) -> int:
    """One 5-s row of silence through ``pred``: a worker's one-off start-up (librosa's lazy imports
    and numba compilation, about 2 s for the first Mel; the model's interpreter)."""
    import numpy as np

    pred.predict(np.zeros(int(pred.cfg.audio.sr * pred.cfg.audio.window_s), np.float32), 1, {})
    time.sleep(0.2)  # let the other workers take the remaining tasks
    return os.getpid()


def warm_workers(pred, n_jobs: int) -> list[int]:
    """Pay the one-off start-up of ``pred`` untimed: in this process (1 worker), or in a fresh pool
    of ``n_jobs`` worker processes that the timed run then reuses.

    A fresh pool each time, because loky replaces a worker whose memory grew (after BirdNET) at the
    end of its next task, so warming the old pool can leave a cold worker for the timed run; on the
    32-minute dev set one cold worker's first Mel alone made the student look slower with 2 workers
    than with 1 (Mel 0.12-0.15 against 0.03 CPU-s per audio minute); over 700 test minutes it is
    noise. Returns the process ids that ran the warm-up."""
    if n_jobs <= 1:
        return [_warm(pred, 0)]
    from joblib.externals.loky import get_reusable_executor

    from vocalprint.core.parallel import map_files

    get_reusable_executor(max_workers=n_jobs).shutdown(wait=True)
    return sorted(set(map_files(_warm, [(pred, i) for i in range(4 * n_jobs)], n_jobs=n_jobs, progress=False)))


def measure(cfg: Config, ds: Dataset, pred, out_dir: Path, *, n_jobs: int) -> dict:
    """One timed submit run with ``n_jobs`` worker processes; returns its report plus peak memory."""
    c = replace(cfg, run=replace(cfg.run, n_jobs=n_jobs, progress=False),
                submit=replace(cfg.submit, budget_min=1e6))
    out = out_dir / f"{pred.name}_j{n_jobs}.csv"
    warm_workers(pred, n_jobs)
    with PeakRSS() as mem:
        rep = submit.run(c, ds, [pred], out)
    rep["peak_rss_gib"] = round(mem.peak / 2**30, 3)
    if ds.solution_path.is_file():
        from vocalprint.core.metrics import group_auc
        from vocalprint.tools.evaluate import taxon_groups, teacher_groups

        rep["macro_auc"], per = macro_auc(pd.read_csv(ds.solution_path), pd.read_csv(out))
        tax = pd.read_csv(ds.root / "taxonomy.csv")
        rep["per_class"] = group_auc(per, taxon_groups(tax))
        rep["per_teacher"] = group_auc(per, teacher_groups(tax))
    return rep


def run(cfg: Config, ds: Dataset, predictors: list, root: Path, *, configs: list[Config] | None = None) -> dict:
    """Bench every predictor with 1 and 2 workers; write ``bench.json`` and ``bench.png``.

    ``configs``: each predictor's own configuration (a variant ``model@section.field=value``), whose
    ``submit`` settings the timed run uses; by default ``cfg`` for all."""
    out_dir = root / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    if predictors:  # untimed: one-off start-up (worker pool, numba compilation) would land on the first row
        for j in (1, 2):
            measure(cfg, ds, predictors[0], out_dir, n_jobs=j)
    for pred, pcfg in zip(predictors, configs or [cfg] * len(predictors), strict=True):
        r1 = measure(pcfg, ds, pred, out_dir, n_jobs=1)
        r2 = measure(pcfg, ds, pred, out_dir, n_jobs=2)
        mins = r1["audio_minutes"]
        cpu = r1["cpu_seconds_per_audio_minute"]
        wall1, wall2 = r1["elapsed_s"] / mins, r2["elapsed_s"] / mins
        rows.append({
            "model": pred.name, "audio_minutes": mins, "macro_auc": r1.get("macro_auc"),
            "per_class": r1.get("per_class", {}), "per_teacher": r1.get("per_teacher", {}),
            "cpu_s_per_min": {k: round(v, 4) for k, v in cpu.items()},
            "wall_s_per_min_1_worker": round(wall1, 4), "wall_s_per_min_2_workers": round(wall2, 4),
            "speedup_2_workers": round(wall1 / wall2, 3),
            "projected_min_700_2_cores": round(wall2 * TEST_MINUTES / 60, 2),
            # 4 cores: the 2-worker rate times the measured 1->2 worker scaling once more
            "projected_min_700_4_cores": round(wall2 / (wall1 / wall2) * TEST_MINUTES / 60, 2),
            "peak_rss_gib": max(r1["peak_rss_gib"], r2["peak_rss_gib"]),
        })
        log.info("bench %s: %.3f s per audio minute (2 workers), %.1f min projected for 700 files, AUC %s",
                 pred.name, wall2, rows[-1]["projected_min_700_2_cores"], rows[-1]["macro_auc"])
    res = {"data": str(ds.root), "test_minutes": TEST_MINUTES, "models": rows,
           "note": "projections: measured wall time per audio minute with 2 worker processes x 700; "
                   "4 cores assumes the 1->2 worker speed-up repeats from 2->4"}
    A.write_json(out_dir / "bench.json", res)
    plot(rows, out_dir / "bench.png")
    print(table(rows))
    return res


def table(rows: list[dict]) -> str:
    head = f"{'model':<20}{'AUC':>8}{'s/min 1w':>10}{'s/min 2w':>10}{'700 min @2c':>13}{'@4c':>8}{'peak GiB':>10}"
    lines = [head, "-" * len(head)]
    for r in rows:
        auc = f"{r['macro_auc']:.4f}" if r["macro_auc"] is not None else "-"
        groups = {**r.get("per_class", {}), **r.get("per_teacher", {})}
        lines.append(f"{r['model']:<20}{auc:>8}{r['wall_s_per_min_1_worker']:>10.3f}{r['wall_s_per_min_2_workers']:>10.3f}"
                     f"{r['projected_min_700_2_cores']:>13.1f}{r['projected_min_700_4_cores']:>8.1f}{r['peak_rss_gib']:>10.2f}"
                     + ("  " + ", ".join(f"{k} {v:.3f}" for k, v in groups.items()) if groups else ""))
    return "\n".join(lines)


def pareto(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points (minutes, auc) that no other point beats on both (lower minutes, higher AUC)."""
    keep = []
    for i, (m, a) in enumerate(points):
        if not any((m2 <= m and a2 >= a) and (m2 < m or a2 > a) for j, (m2, a2) in enumerate(points) if j != i):
            keep.append(i)
    return sorted(keep, key=lambda i: points[i][0])


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [(r["projected_min_700_2_cores"], r["macro_auc"]) for r in rows if r["macro_auc"] is not None]
    names = [r["model"] for r in rows if r["macro_auc"] is not None]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if pts:
        ax.scatter(*zip(*pts))
        for (m, a), n in zip(pts, names):
            ax.annotate(n, (m, a), textcoords="offset points", xytext=(4, 4), fontsize=8)
        front = pareto(pts)
        ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], "--", alpha=0.6, label="Pareto front")
        ax.legend()
    ax.axvline(90, color="red", alpha=0.4)
    ax.set_xscale("log")
    ax.set_xlabel("projected minutes for 700 test minutes, 2 cores (log)")
    ax.set_ylabel("macro ROC-AUC")
    ax.set_title("vocalprint: accuracy against inference time")
    fig.tight_layout()
    with A.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
