"""``make scale``: train and submit each model at a few fractions F of BirdCLEF+ 2025's size on
synthetic data, measure every stage (wall, CPU, peak memory, disk) and project it to F = 1.

``python -m vocalprint.scaling --scales 0.02,0.05 --models loudness,tokens-nb --out artifacts/scale``

Per fraction the synthetic set (``demo-data --scale F``) is generated under ``--data-root`` (or
reused); per model ``train`` then ``submit`` run as subprocesses from an empty artifacts folder,
their process tree sampled every 0.2 s (sum of RSS; CPU = user + system of the tree, finished
children included). Each stage's manifest seconds and folder size are fitted as ``t = a * x ** b``.

``x`` is the data actually present, not the nominal F: the generator gives every one of the 206
classes at least one clip, so F = 0.002 has 210 training files (x = 0.0074) and F = 0.01 has 363
(x = 0.0127). Training stages use ``x = training files / 28,564`` (what ``make plan`` uses for the
data it is asked about), ``submit`` uses ``x = test soundscapes / 700``. Writes ``scale.json``
(read by :mod:`vocalprint.plan`), ``scale.png`` and prints a markdown table.

Fractions whose training files are less than :data:`MIN_SPREAD` times apart are measured, with a
warning: below F of about 0.02 most classes sit at their one-clip floor, the files grow more slowly
than the audio, and an exponent between two such sizes overstates the growth (0.01 and 0.02 are
363 and 620 files, 1.7 times apart; 0.02 and 0.05 are 620 and 1,450).
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import math
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from vocalprint.scaling.fit import GOALS, MEASURED_WORKERS, OTHER, PARALLEL_STEPS, SUBMIT, derived, refit, summarise
from vocalprint.scaling.report import markdown, plot

log = logging.getLogger("vocalprint.scale")
MIN_SPREAD = 2.0  # the smallest ratio of training files between the outer fractions worth fitting


def default_models() -> tuple[list[str], list[str]]:
    """(models, why others are left out): every model whose training needs no student training."""
    from vocalprint import models as M

    keep, skipped = [], []
    for name, spec in M.MODELS.items():
        if spec.family == "student" or spec.bundle == "members":
            skipped.append(f"{name} ({'averages other models' if spec.bundle == 'members' else 'needs student training'})")
        elif name.startswith("perch") and not os.environ.get("PERCH_DIR"):
            skipped.append(f"{name} (needs PERCH_DIR)")
        else:
            keep.append(name)
    return keep, skipped


def _tree(pid: int) -> list:
    import psutil

    with contextlib.suppress(psutil.Error):
        return [psutil.Process(pid)] + psutil.Process(pid).children(recursive=True)
    return []


def run_cmd(cmd: list[str], log_path: Path, *, timeout_s: float | None = None, every_s: float = 0.2,
            env: dict | None = None, watch: Path | None = None, heartbeat_s: float = 30.0) -> dict:
    """Run ``cmd`` (stderr to ``log_path``, stdout to ``log_path`` with ``.out``) and measure it:
    wall, CPU of the whole tree (the larger of getrusage's children delta, which counts every
    reaped descendant, and psutil's per-process sum, which also sees any orphans), peak summed RSS.
    Every ``heartbeat_s`` it logs the run's wall, CPU and memory so far, and with ``watch`` (a
    folder the command writes, e.g. its artifacts) the size of that folder: its peak is
    ``peak_disk_mb``, the transient files a stage deletes at its end included."""
    import psutil

    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with open(log_path, "w") as err, open(log_path.with_suffix(".out"), "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        peak, cpu, stop, timed_out = 0, {}, threading.Event(), []
        peak_disk, last_beat = 0.0, t0

        def sample():
            nonlocal peak, peak_disk, last_beat
            while not stop.is_set():
                rss = 0
                for p in _tree(proc.pid):
                    with contextlib.suppress(psutil.Error), p.oneshot():
                        rss, t = rss + p.memory_info().rss, p.cpu_times()
                        cpu[p.pid] = t.user + t.system
                peak = max(peak, rss)
                if time.perf_counter() - last_beat >= heartbeat_s:
                    last_beat = time.perf_counter()
                    now_mb = _du_mb(watch) if watch is not None else 0.0
                    peak_disk = max(peak_disk, now_mb)
                    log.info("%s: %.0f s, %.0f CPU s, %.0f MB now (peak %.0f MB)%s", log_path.with_suffix(""),
                             last_beat - t0, sum(cpu.values()), rss / 2**20, peak / 2**20,
                             f", {now_mb:.0f} MB in {watch} (peak {peak_disk:.0f} MB)" if watch is not None else "")
                if timeout_s and time.perf_counter() - t0 > timeout_s and not timed_out:
                    timed_out.append(True)
                    for p in reversed(_tree(proc.pid)):  # the processes this run started, by id
                        with contextlib.suppress(psutil.Error):
                            p.kill()
                stop.wait(every_s)

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        rc = proc.wait()
        wall = time.perf_counter() - t0
        stop.set()
        th.join()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_ru = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return {"wall_s": round(wall, 2), "cpu_s": round(max(cpu_ru, sum(cpu.values())), 2),
            "cpu_s_rusage": round(cpu_ru, 2), "cpu_s_sampled": round(sum(cpu.values()), 2),
            "peak_rss_mb": round(peak / 2**20, 1), "rc": "timeout" if timed_out else rc,
            "load_1min": round(os.getloadavg()[0], 2),
            **({"peak_disk_mb": round(max(peak_disk, _du_mb(watch)), 1)} if watch is not None else {})}


def _du_mb(path: Path) -> float:
    """Megabytes of the files under ``path``; files and folders removed while it walks are skipped
    (it runs beside the command that writes and deletes them)."""
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(root, f), follow_symlinks=False).st_size
    return total / 1e6


def stage_costs(artifacts: Path) -> dict:
    """Per stage folder under ``artifacts``: manifest seconds summed over its complete keys (and
    per step), its size on disk (MB, every key) and whether every key in it is complete (a run
    killed mid-stage leaves a ``.partial`` folder: not a measurement)."""
    from vocalprint.core import artifacts as A

    out = {}
    for d in sorted(p for p in Path(artifacts).iterdir() if p.is_dir()) if Path(artifacts).is_dir() else []:
        steps: dict[str, float] = {}
        keys = [k for k in d.iterdir() if k.is_dir()]
        shown = [A.manifest(k) for k in keys if A.is_complete(k)]
        for man in shown:
            for name, s in (man.get("seconds") or {}).items():
                if isinstance(s, (int, float)):
                    steps[name] = steps.get(name, 0.0) + s
        out[d.name] = {"seconds": round(sum(steps.values()), 2), "disk_mb": round(_du_mb(d), 3),
                       "steps": {k: round(v, 2) for k, v in steps.items()},
                       "complete": bool(keys) and all(A.is_complete(k) for k in keys)}
        if any("presentations" in man for man in shown):  # a student: the windows its training step saw
            out[d.name].update(presentations=sum(int(man.get("presentations", 0)) for man in shown), keys=len(shown))
            if all("n_windows" in man for man in shown):  # and those its windows step gathered
                out[d.name]["gathered"] = sum(int(man["n_windows"]) for man in shown)
        if any("part" in man for man in shown):  # a teacher cache: the clips only, or with soundscapes
            out[d.name]["parts"] = sorted({str(man["part"]) for man in shown if "part" in man})
    return out


def _env() -> dict:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([src] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def generate(data_root: Path, scale: float) -> tuple[Path, dict | None]:
    """The synthetic set at ``scale`` (reused when its sample_submission.csv exists) and its timing."""
    d = data_root / f"scale-{scale:g}"
    if (d / "sample_submission.csv").is_file():
        log.info("scale: reusing %s", d)
        return d, None
    data_root.mkdir(parents=True, exist_ok=True)
    row = run_cmd([sys.executable, "-m", "vocalprint", "demo-data", "--out", str(d), "--scale", f"{scale:g}"],
                  data_root / f"scale-{scale:g}.log", env=_env())
    if row["rc"] != 0:
        raise RuntimeError(f"demo-data --scale {scale:g} failed ({row['rc']}); see {data_root}/scale-{scale:g}.log")
    return d, dict(row, disk_mb=round(_du_mb(d), 1))


def measure(data: Path, model: str, run_dir: Path, *, scale: float, timeout_s: float | None = None,
            sets: tuple[str, ...] = ()) -> dict:
    """Train then submit ``model`` on ``data`` from an empty artifacts folder; the measured row."""
    from vocalprint import models as M
    from vocalprint.data import dataset

    ds = dataset.load(data)
    if run_dir.exists():
        shutil.rmtree(run_dir)
    art = run_dir / "artifacts"
    art.mkdir(parents=True)
    base = [sys.executable, "-m", "vocalprint"]
    perch = (f"teacher.perch_dir={os.environ['PERCH_DIR']}",) if model.startswith("perch") and os.environ.get("PERCH_DIR") else ()
    common = ["--data", str(data), "--model", model, "--artifacts", str(art)]
    for s in (*sets, *perch):
        common += ["--set", s]
    spec = M.get(model)
    trains = bool(spec.stages) or spec.bundle == "members"  # an averaging model trains its members
    cmds = [("train", base + ["train"] + common)] if trains else []
    cmds.append((SUBMIT, base + ["submit"] + common + ["--out", str(run_dir / "submission.csv"), "--budget-min", "600"]))
    rows = []
    for name, cmd in cmds:
        log.info("scale F=%g %s: %s", scale, model, name)
        row = dict(run_cmd(cmd, run_dir / f"{name}.log", timeout_s=timeout_s, env=_env(), watch=art),
                   command=name, scale=scale)
        with contextlib.suppress(OSError, json.JSONDecodeError):
            if name == SUBMIT and row["rc"] == 0:  # submit's own summary (rows, projection_700_min)
                row["report"] = json.loads((run_dir / f"{name}.out").read_text())
        rows.append(row)
        log.info("scale F=%g %s %s: %.1f s wall, %.1f CPU s, peak %.0f MB, rc %s", scale, model, name,
                 row["wall_s"], row["cpu_s"], row["peak_rss_mb"], row["rc"])
        if row["rc"] != 0:
            break
    return {"scale": scale, "train_files": len(ds.train), "test_files": len(ds.test_soundscapes),
            "audio_hours": audio_hours(str(data)), "stages": stage_costs(art), "commands": rows,
            "ok": all(r["rc"] == 0 for r in rows)}


@functools.lru_cache(maxsize=None)
def audio_hours(data: str) -> dict:
    """Hours of focal clips and of train soundscapes of the set in ``data`` (from the file headers)."""
    import soundfile as sf

    from vocalprint.data import dataset

    ds = dataset.load(Path(data))

    def hours(paths) -> float:
        return round(sum(sf.info(str(p)).duration for p in paths) / 3600, 2)

    return {"clips": hours(ds.train["path"]), "train_soundscapes": hours(ds.train_soundscapes)}


def _machine() -> dict:
    import psutil

    return {"cores": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "load_1min_at_end": round(os.getloadavg()[0], 2)}


def spread_warning(scales: list[float]) -> str:
    """Why a fit between ``scales`` cannot be trusted ('' when it can, or with one fraction only)."""
    from vocalprint.data.scale import plan as scale_plan

    if len(scales) < 2:
        return ""
    lo, hi = scale_plan(min(scales)).n_clips, scale_plan(max(scales)).n_clips
    if hi >= MIN_SPREAD * lo:
        return ""
    return (f"F = {min(scales):g} and {max(scales):g} have {lo} and {hi} training files, {hi / lo:.1f} times apart: "
            f"the fitted exponents will be unreliable (most classes sit at their one-clip floor at small F); "
            f"measure at fractions at least {MIN_SPREAD:g} times apart in files, e.g. 0.02,0.05")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vocalprint.scaling", description=__doc__.split("\n\n")[0])
    ap.add_argument("--scales", default="0.02,0.05", help="comma-separated fractions F of BirdCLEF+ 2025's size")
    ap.add_argument("--models", default="", help="comma-separated models (default: all but student and ensemble)")
    ap.add_argument("--out", default="artifacts/scale")
    ap.add_argument("--data-root", default=None, help="where scale-F/ data sets go (default OUT/data)")
    ap.add_argument("--cores", type=int, default=4, help="core count to project wall time to")
    ap.add_argument("--timeout-min", type=float, default=None, help="kill a command running longer (marked failed)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override for every run")
    ap.add_argument("--refit", action="store_true", help="run nothing: fit OUT/scale.json again from the "
                    "measured points it holds (after a change to the fitting)")
    ap.add_argument("--update", action="store_true", help="keep every model of OUT/scale.json that this run "
                    "does not measure: re-measure one model after a change, or add one measured at other "
                    "fractions (the table then has a column per fraction of either)")
    ap.add_argument("--from-measured", action="store_true", help="run nothing: fit OUT/measured.json again "
                    "(stage costs re-read from OUT/runs)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=os.environ.get("VOCALPRINT_LOG", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    from vocalprint import models as M
    from vocalprint.core.artifacts import write_json

    t0 = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    old = json.loads((out / "scale.json").read_text()) if (out / "scale.json").is_file() else {}
    if args.refit:
        if not old:
            raise SystemExit(f"--refit: no {out / 'scale.json'} to fit again")
        res = refit(old)
        write_json(out / "scale.json", res)
        plot(res, out / "scale.png")
        print(markdown(res))
        return 0
    if args.from_measured:
        saved = json.loads((out / "measured.json").read_text())
        scales, gen_rows, names = saved["scales"], saved["generator"], list(saved["models"])
        measured = {m: [dict(r, stages=stage_costs(out / "runs" / f"{r['scale']:g}" / m / "artifacts")) for r in rows]
                    for m, rows in saved["models"].items()}
    else:
        scales = sorted(float(s) for s in args.scales.split(",") if s.strip())
        if warning := spread_warning(scales):
            log.warning("%s", warning)
        names = [m.strip() for m in args.models.split(",") if m.strip()]
        for m in names:
            M.get(m)
        if not names:
            names, skipped = default_models()
            print(f"models: {', '.join(names)}\nleft out (name them in --models to include): {'; '.join(skipped)}")
        gen_rows, measured = {}, {n: [] for n in names}
        for f in scales:
            data, row = generate(Path(args.data_root) if args.data_root else out / "data", f)
            if row:
                gen_rows[f"{f:g}"] = row
            for m in names:
                measured[m].append(measure(data, m, out / "runs" / f"{f:g}" / m, scale=f, sets=tuple(args.set),
                                           timeout_s=args.timeout_min * 60 if args.timeout_min else None))
                write_json(out / "measured.json", {"scales": scales, "generator": gen_rows, "models": measured})
    generator = {f"{f:g}": gen_rows[f"{f:g}"]["wall_s"] if f"{f:g}" in gen_rows
                 else old.get("generator", {}).get(f"{f:g}") for f in scales}  # reused sets: the last timing known
    res = summarise(scales, measured, cores=args.cores, machine=_machine(), generator=generator)
    stamp = time.strftime("%Y-%m-%d", time.gmtime())
    if args.from_measured:  # refitted rows keep the day they were measured
        stamp = time.strftime("%Y-%m-%d", time.gmtime((out / "measured.json").stat().st_mtime))
    for m in measured:
        res["models"][m]["measured_on"] = ((old.get("models", {}).get(m, {}).get("measured_on") or stamp)
                                           if args.from_measured else stamp)
    if args.update and old:
        for m, v in old.get("models", {}).items():
            res["models"].setdefault(m, v)
        res["derived"] = derived(res["models"])
        res["scales"] = sorted(set(res["scales"]) | set(old.get("scales", [])))
        res["generator"] = {**old.get("generator", {}), **res["generator"]}
    res["generator_runs"] = {**old.get("generator_runs", {}), **gen_rows} if args.update else gen_rows
    res["total_seconds"] = old.get("total_seconds") if args.from_measured else round(time.perf_counter() - t0, 1)
    if args.update and not args.from_measured and old.get("total_seconds"):
        res["total_seconds"] = round(res["total_seconds"] + old["total_seconds"], 1)  # all the measuring behind it
    write_json(out / "scale.json", res)
    plot(res, out / "scale.png")
    print(markdown(res))
    for m in names:
        if failed := [f"{r['scale']:g}" for r in measured[m] if not r["ok"]]:
            print(f"{m}: failed or timed out at F = {', '.join(failed)} (see {out}/runs/F/{m}/*.log)")
    print(f"wrote {out / 'scale.json'} and {out / 'scale.png'} (measuring took {res['total_seconds'] or '?'} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
