"""``make scale``: train and submit each model at a few fractions F of BirdCLEF+ 2025's size on
synthetic data, measure every stage (wall, CPU, peak memory, disk) and project it to F = 1.

``python -m vocalprint.tools.scale --scales 0.002,0.01 --models loudness,tokens-nb --out artifacts/scale``

Per fraction the synthetic set (``demo-data --scale F``) is generated under ``--data-root`` (or
reused); per model ``train`` then ``submit`` run as subprocesses from an empty artifacts folder,
their process tree sampled every 0.2 s (sum of RSS; CPU = user + system of the tree, finished
children included). Each stage's manifest seconds and folder size are fitted as ``t = a * x ** b``.

``x`` is the data actually present, not the nominal F: the generator gives every one of the 206
classes at least one clip, so F = 0.002 has 210 training files (x = 0.0074) and F = 0.01 has 363
(x = 0.0127). Training stages use ``x = training files / 28,564`` (what ``make plan`` uses for the
data it is asked about), ``submit`` uses ``x = test soundscapes / 700``. Writes ``scale.json``
(read by :mod:`vocalprint.plan`), ``scale.png`` and prints a markdown table.
"""
from __future__ import annotations

import argparse
import contextlib
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

from vocalprint.plan import FULL_TRAIN_FILES

log = logging.getLogger("vocalprint.scale")
FULL_TEST_FILES = 700
GOALS = {"train_hours_4_cores": 12.0, "peak_rss_gib": 24.0, "disk_gb": 60.0}
MEASURED_WORKERS = 2  # run.n_jobs's default: the per-file steps below ran on 2 worker processes
# steps (manifest "seconds" keys) that map one task per file over run.n_jobs processes
PARALLEL_STEPS = {"mels": {"mels"}, "tokens": {"assign"}, "features": {"features"}, "nb": {"frames"},
                  "teacher": {"teacher"}, "tmixes": {"mixes"}, "pseudo": {"label"}}
OTHER = "train-other"  # the train command's wall outside every stage's manifest (start-up, data loading)
SUBMIT = "submit"



def fit_power(xs, ys) -> tuple[float, float] | None:
    """``(a, b)`` of ``y = a * x ** b`` through the positive points (two: exact; more: least
    squares in log-log); None with fewer than two distinct positive x."""
    pts = [(float(x), float(y)) for x, y in zip(xs, ys) if x and y and x > 0 and y > 0]
    if len({x for x, _ in pts}) < 2:
        return None
    lx, ly = [math.log(x) for x, _ in pts], [math.log(y) for _, y in pts]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    b = sum((u - mx) * (v - my) for u, v in zip(lx, ly)) / sum((u - mx) ** 2 for u in lx)
    return math.exp(my - b * mx), b


def fit_affine(xs, ys) -> tuple[float, float] | None:
    """``(c, d)`` of ``y = c + d * x`` (least squares): a cross-check for quantities with a fixed
    base (a process's memory), whose power-law exponent between small fractions comes out low."""
    pts = [(float(x), float(y)) for x, y in zip(xs, ys) if x is not None and y is not None]
    if len({x for x, _ in pts}) < 2:
        return None
    mx, my = sum(x for x, _ in pts) / len(pts), sum(y for _, y in pts) / len(pts)
    d = sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)
    return my - d * mx, d


def power(fit: tuple[float, float] | None, x: float) -> float | None:
    return None if fit is None else fit[0] * x ** fit[1]


def four_core_seconds(seconds: float, parallel_share: float, cores: int, measured: int = MEASURED_WORKERS) -> float:
    """Wall seconds on ``cores`` from wall on ``measured`` workers, ASSUMING the per-file steps
    (``parallel_share`` of the stage) speed up linearly with the workers and the rest not at all."""
    return seconds * (1.0 - parallel_share + parallel_share * measured / cores)


def default_models() -> tuple[list[str], list[str]]:
    """(models, why others are left out): every model whose training needs no student training."""
    from vocalprint import models as M

    keep, skipped = [], []
    for name, spec in M.MODELS.items():
        if spec.family == "student" or name == "ensemble":
            skipped.append(f"{name} ({'averages other models' if name == 'ensemble' else 'needs student training'})")
        elif name.startswith("perch") and not os.environ.get("PERCH_DIR"):
            skipped.append(f"{name} (needs PERCH_DIR)")
        else:
            keep.append(name)
    return keep, skipped



def _tree(pid: int):
    import psutil

    try:
        root = psutil.Process(pid)
        return [root] + root.children(recursive=True)
    except psutil.Error:
        return []


def run_cmd(cmd: list[str], log_path: Path, *, timeout_s: float | None = None, every_s: float = 0.2,
            env: dict | None = None) -> dict:
    """Run ``cmd`` (stderr to ``log_path``, stdout to ``log_path`` with ``.out``) and measure it:
    wall, CPU of the whole tree (the larger of getrusage's children delta, which counts every
    reaped descendant, and psutil's per-process sum, which also sees any orphans), peak summed RSS."""
    import psutil

    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with open(log_path, "w") as err, open(log_path.with_suffix(".out"), "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        peak, cpu, stop, timed_out = 0, {}, threading.Event(), []

        def sample():
            nonlocal peak
            while not stop.is_set():
                rss = 0
                for p in _tree(proc.pid):
                    with contextlib.suppress(psutil.Error), p.oneshot():
                        rss, t = rss + p.memory_info().rss, p.cpu_times()
                        cpu[p.pid] = t.user + t.system
                peak = max(peak, rss)
                if timeout_s and time.perf_counter() - t0 > timeout_s and not timed_out:
                    timed_out.append(True)
                    for p in reversed(_tree(proc.pid)):  # the processes this run started, by id
                        with contextlib.suppress(psutil.Error):
                            p.kill()
                stop.wait(every_s)

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        rc = proc.wait()
        stop.set()
        th.join()
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_ru = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return {"wall_s": round(wall, 2), "cpu_s": round(max(cpu_ru, sum(cpu.values())), 2),
            "cpu_s_rusage": round(cpu_ru, 2), "cpu_s_sampled": round(sum(cpu.values()), 2),
            "peak_rss_mb": round(peak / 2**20, 1), "rc": "timeout" if timed_out else rc,
            "load_1min": round(os.getloadavg()[0], 2)}


def _du_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file()) / 1e6 if Path(path).exists() else 0.0


def stage_costs(artifacts: Path) -> dict:
    """Per stage folder under ``artifacts``: manifest seconds summed over its complete keys (and
    per step), its size on disk (MB, every key) and whether every key in it is complete (a run
    killed mid-stage leaves a ``.partial`` folder: not a measurement)."""
    from vocalprint.core import artifacts as A

    out = {}
    for d in sorted(p for p in Path(artifacts).iterdir() if p.is_dir()) if Path(artifacts).is_dir() else []:
        steps: dict[str, float] = {}
        keys = [k for k in d.iterdir() if k.is_dir()]
        for k in keys:
            for name, s in (A.manifest(k).get("seconds") or {}).items() if A.is_complete(k) else ():
                if isinstance(s, (int, float)):
                    steps[name] = steps.get(name, 0.0) + s
        out[d.name] = {"seconds": round(sum(steps.values()), 2), "disk_mb": round(_du_mb(d), 3),
                       "steps": {k: round(v, 2) for k, v in steps.items()},
                       "complete": bool(keys) and all(A.is_complete(k) for k in keys)}
    return out


def _env() -> dict:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([src] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def generate(data_root: Path, scale: float, timeout_s: float | None = None) -> tuple[Path, dict | None]:
    """The synthetic set at ``scale`` (reused when its sample_submission.csv exists) and its timing."""
    d = data_root / f"scale-{scale:g}"
    if (d / "sample_submission.csv").is_file():
        log.info("scale: reusing %s", d)
        return d, None
    data_root.mkdir(parents=True, exist_ok=True)
    row = run_cmd([sys.executable, "-m", "vocalprint", "demo-data", "--out", str(d), "--scale", f"{scale:g}"],
                  data_root / f"scale-{scale:g}.log", timeout_s=timeout_s, env=_env())
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
    common = ["--data", str(data), "--model", model, "--artifacts", str(art), "--set", "run.progress=false"]
    for s in sets:
        common += ["--set", s]
    if model.startswith("perch") and os.environ.get("PERCH_DIR"):
        common += ["--set", f"teacher.perch_dir={os.environ['PERCH_DIR']}"]
    cmds = [] if not M.get(model).stages else [("train", base + ["train"] + common)]
    cmds.append((SUBMIT, base + ["submit"] + common + ["--out", str(run_dir / "submission.csv"), "--budget-min", "600"]))
    rows = []
    for name, cmd in cmds:
        log.info("scale F=%g %s: %s", scale, model, name)
        row = dict(run_cmd(cmd, run_dir / f"{name}.log", timeout_s=timeout_s, env=_env()), command=name, scale=scale)
        with contextlib.suppress(OSError, json.JSONDecodeError):
            if name == SUBMIT and row["rc"] == 0:  # submit's own summary (rows, projection_700_min)
                row["report"] = json.loads((run_dir / f"{name}.out").read_text())
        rows.append(row)
        log.info("scale F=%g %s %s: %.1f s wall, %.1f CPU s, peak %.0f MB, rc %s", scale, model, name,
                 row["wall_s"], row["cpu_s"], row["peak_rss_mb"], row["rc"])
        if row["rc"] != 0:
            break
    return {"scale": scale, "train_files": len(ds.train), "test_files": len(ds.test_soundscapes),
            "stages": stage_costs(art), "commands": rows, "ok": all(r["rc"] == 0 for r in rows)}



def _stage_points(runs: list[dict]) -> dict[str, list[dict]]:
    """Per stage, one measured point per fraction (``train-other`` and ``submit`` from the commands;
    the stages a failed or timed-out run completed still count)."""
    pts: dict[str, list[dict]] = {}
    for r in runs:
        x_train, x_test = r["train_files"] / FULL_TRAIN_FILES, r["test_files"] / FULL_TEST_FILES
        for stage, c in r["stages"].items():
            if c.get("complete", True):
                pts.setdefault(stage, []).append({"scale": r["scale"], "effective_scale": x_train,
                                                  "seconds": c["seconds"], "disk_mb": c["disk_mb"],
                                                  "steps": c.get("steps", {})})
        if not r.get("ok"):
            continue
        cmd = {c["command"]: c for c in r["commands"]}
        if "train" in cmd:
            other = cmd["train"]["wall_s"] - sum(c["seconds"] for c in r["stages"].values())
            pts.setdefault(OTHER, []).append({"scale": r["scale"], "effective_scale": x_train,
                                              "seconds": round(max(other, 0.0), 2), "disk_mb": 0.0})
        pts.setdefault(SUBMIT, []).append({"scale": r["scale"], "effective_scale": x_test,
                                           "seconds": cmd[SUBMIT]["wall_s"], "disk_mb": 0.0})
    return pts


def _fit_stage(stage: str, pts: list[dict], cores: int) -> dict:
    xs = [p["effective_scale"] for p in pts]
    t, d = fit_power(xs, [p["seconds"] for p in pts]), fit_power(xs, [p["disk_mb"] for p in pts])
    last = max(pts, key=lambda p: p["effective_scale"])
    par = PARALLEL_STEPS.get(stage, set())
    share = (sum(v for k, v in last.get("steps", {}).items() if k in par) / last["seconds"]) if last["seconds"] else 0.0
    full = power(t, 1.0)
    out = {"measured": pts, "basis": "test files / 700" if stage == SUBMIT else "training files / 28,564",
           "exponent": None if t is None else round(t[1], 4), "projected_full_seconds": full,
           "disk_exponent": None if d is None else round(d[1], 4), "parallel_share": round(share, 3),
           "seconds": full, "disk_mb": power(d, 1.0) if d else (0.0 if all(p["disk_mb"] == 0 for p in pts) else None)}
    out["projected_full_seconds_cores"] = None if full is None else four_core_seconds(full, share, cores)
    return out


def _fit_commands(runs: list[dict]) -> dict:
    """Per command: wall, CPU and peak RSS fitted against the command's own basis."""
    out = {}
    for name in ("train", SUBMIT):
        rows = [(r, c) for r in runs if r.get("ok") for c in r["commands"] if c["command"] == name]
        if not rows:
            continue
        xs = [(r["test_files"] / FULL_TEST_FILES) if name == SUBMIT else (r["train_files"] / FULL_TRAIN_FILES)
              for r, _ in rows]
        out[name] = {}
        for q in ("wall_s", "cpu_s", "peak_rss_mb"):
            f, lin = fit_power(xs, [c[q] for _, c in rows]), fit_affine(xs, [c[q] for _, c in rows])
            out[name][q] = {"exponent": None if f is None else round(f[1], 4), "projected_full": power(f, 1.0),
                            "projected_full_affine": None if lin is None else lin[0] + lin[1]}
    return out


def summarise(scales: list[float], measured: dict[str, list[dict]], *, cores: int = 4, machine: dict | None = None,
              generator: dict | None = None) -> dict:
    """scale.json's content from the measured rows (``measured[model]``: :func:`measure`'s rows)."""
    res = {"scales": list(scales), "cores_projected": cores, "machine": machine or {}, "models": {},
           "generator": generator or {}, "assumptions": [
               "x = training files / 28,564 (submit: test soundscapes / 700); t = a * x ** b per stage, F = 1 at x = 1",
               f"{cores}-core wall = 2-core wall * (1 - p + p * {MEASURED_WORKERS}/{cores}), p = the stage's "
               "per-file parallel share (PARALLEL_STEPS); CPU hours unchanged",
               "peak RSS: the sum over the process tree (shared pages counted per process); "
               "peak_rss_gib_affine: the same rows fitted as c + d * x instead"]}
    for model, runs in measured.items():
        stages = {s: _fit_stage(s, p, cores) for s, p in _stage_points(runs).items()}
        cmds = _fit_commands(runs)
        train = [v for s, v in stages.items() if s != SUBMIT]
        cpu = cmds.get("train", {}).get("cpu_s", {}).get("projected_full")
        rss = [c["peak_rss_mb"]["projected_full"] for c in cmds.values()]
        rss_lin = [c["peak_rss_mb"]["projected_full_affine"] for c in cmds.values()]
        full = {"train_hours_2_cores": _total([v["projected_full_seconds"] for v in train], 3600),
                "train_hours_4_cores": _total([v["projected_full_seconds_cores"] for v in train], 3600),
                "train_cpu_hours": 0.0 if not train else _total([cpu], 3600),
                "submit_minutes_700_files_2_cores": _total([stages.get(SUBMIT, {}).get("projected_full_seconds")], 60),
                "peak_rss_gib": None if not rss or None in rss else max(rss) / 1024,
                "peak_rss_gib_affine": None if not rss_lin or None in rss_lin else max(rss_lin) / 1024,
                "disk_gb": _total([v["disk_mb"] for v in stages.values()], 1000)}
        full["goals_met"] = {k: (None if full[k] is None else full[k] <= g) for k, g in GOALS.items()}
        res["models"][model] = {"stages": stages, "commands": [c for r in runs for c in r["commands"]],
                                "command_fits": cmds, "runs_ok": [r["scale"] for r in runs if r.get("ok")],
                                "projected_full": full}
    return res


def _total(vals: list, unit: float = 1.0) -> float | None:
    return None if not vals or None in vals else sum(vals) / unit


def _fmt_s(s) -> str:
    if s is None:
        return "n/a"
    return f"{s:.1f} s" if s < 120 else (f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h")


def _fmt_mb(mb) -> str:
    return "n/a" if mb is None else (f"{mb:.1f} MB" if mb < 1000 else f"{mb / 1000:.1f} GB")


def _fmt_b(b) -> str:
    return "n/a" if b is None else f"{b:.2f}"


def markdown(res: dict) -> str:
    """model | stage | measured at each F | exponent | projected at F = 1 | goal (rows in **bold**:
    the model's totals against the goals)."""
    fs, cores, tick = res["scales"], res["cores_projected"], {True: "met", False: "NOT met", None: "n/a"}
    head = ["model", "stage"] + [f"F={f:g} (measured)" for f in fs] + ["b (time / disk)", "F=1 (projected)", "goal"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def row(model, name, cells, b, proj, goal=""):
        lines.append(f"| {model} | {name} | " + " | ".join(cells) + f" | {b} | {proj} | {goal} |")

    for model, m in res["models"].items():
        disk: dict = {}
        why = {c["scale"]: ("timed out" if c["rc"] == "timeout" else f"failed (rc {c['rc']})") + f" in {c['command']}"
               f" after {_fmt_s(c['wall_s'])}" for c in m["commands"] if c["rc"] != 0}
        for stage, s in m["stages"].items():
            by = {p["scale"]: p for p in s["measured"]}
            for f, p in by.items():
                disk[f] = disk.get(f, 0.0) + p["disk_mb"]
            proj = f"{_fmt_s(s['projected_full_seconds'])}, {_fmt_mb(s['disk_mb'])}"
            if stage != SUBMIT and s["parallel_share"]:
                proj += f"; {_fmt_s(s['projected_full_seconds_cores'])} on {cores} cores"
            row(model, stage, [f"{_fmt_s(by[f]['seconds'])}, {_fmt_mb(by[f]['disk_mb'])} (x={by[f]['effective_scale']:.4f})"
                               if f in by else why.get(f, "-") for f in fs],
                f"{_fmt_b(s['exponent'])} / {_fmt_b(s['disk_exponent'])}", proj)
        full, ok, fits = m["projected_full"], m["projected_full"]["goals_met"], m["command_fits"].get("train", {})
        train = {c["scale"]: c for c in m["commands"] if c["command"] == "train"}
        rss: dict = {}
        for c in m["commands"]:
            rss[c["scale"]] = max(rss.get(c["scale"], 0), c["peak_rss_mb"])
        h2, h4, cpu = (full[k] for k in ("train_hours_2_cores", "train_hours_4_cores", "train_cpu_hours"))
        row(model, "**train wall**", [_fmt_s(train[f]["wall_s"]) if f in train else "-" for f in fs],
            _fmt_b(fits.get("wall_s", {}).get("exponent")),
            f"{_fmt_s(None if h4 is None else h4 * 3600)} on {cores} cores ({_fmt_s(None if h2 is None else h2 * 3600)} on 2)",
            f"12 h: {tick[ok['train_hours_4_cores']]}")
        row(model, "**train CPU**", [_fmt_s(train[f]["cpu_s"]) if f in train else "-" for f in fs],
            _fmt_b(fits.get("cpu_s", {}).get("exponent")), "n/a" if cpu is None else f"{cpu:.1f} CPU h")
        row(model, "**peak RSS**", [f"{rss[f] / 1024:.2f} GiB" if f in rss else "-" for f in fs],
            " / ".join(f"{k} {_fmt_b(v['peak_rss_mb']['exponent'])}" for k, v in m["command_fits"].items()),
            "n/a" if full["peak_rss_gib"] is None else f"{full['peak_rss_gib']:.2f} GiB (affine in x: "
            f"{full['peak_rss_gib_affine']:.2f})",
            f"24 GiB: {tick[ok['peak_rss_gib']]}")
        row(model, "**disk**", [_fmt_mb(disk[f]) if f in disk else "-" for f in fs], "",
            _fmt_mb(None if full["disk_gb"] is None else full["disk_gb"] * 1000), f"60 GB: {tick[ok['disk_gb']]}")
    return "\n".join(lines)


def plot(res: dict, path: Path) -> None:
    """Measured points and fitted lines per stage, log-log, one panel per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(res["models"])
    fig, axes = plt.subplots(1, max(1, len(names)), figsize=(4.5 * max(1, len(names)), 4), squeeze=False)
    for ax, model in zip(axes[0], names):
        for i, (stage, s) in enumerate(res["models"][model]["stages"].items()):
            c = f"C{i % 10}"
            xs = [p["effective_scale"] for p in s["measured"] if p["seconds"] > 0]
            ax.plot(xs, [p["seconds"] for p in s["measured"] if p["seconds"] > 0], "o", color=c, label=stage)
            if s["exponent"] is not None and xs:
                grid = np.geomspace(min(xs), 1.0, 30)
                ax.plot(grid, s["projected_full_seconds"] * grid ** s["exponent"], "--", color=c, lw=1)
        ax.set(xscale="log", yscale="log", xlabel="x (share of full size)", ylabel="wall seconds (2 workers)",
               title=model)
        ax.axvline(1.0, color="grey", lw=0.5)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)



def _machine() -> dict:
    import psutil

    return {"cores": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "load_1min_at_start": round(os.getloadavg()[0], 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vocalprint.tools.scale", description=__doc__.split("\n\n")[0])
    ap.add_argument("--scales", default="0.002,0.01", help="comma-separated fractions F of BirdCLEF+ 2025's size")
    ap.add_argument("--models", default="", help="comma-separated models (default: all but student and ensemble)")
    ap.add_argument("--out", default="artifacts/scale")
    ap.add_argument("--data-root", default=None, help="where scale-F/ data sets go (default OUT/data)")
    ap.add_argument("--cores", type=int, default=4, help="core count to project wall time to")
    ap.add_argument("--timeout-min", type=float, default=None, help="kill a command running longer (marked failed)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override for every run")
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
    if args.from_measured:
        saved = json.loads((out / "measured.json").read_text())
        scales, gen_rows, names = saved["scales"], saved["generator"], list(saved["models"])
        measured = {m: [dict(r, stages=stage_costs(out / "runs" / f"{r['scale']:g}" / m / "artifacts")) for r in rows]
                    for m, rows in saved["models"].items()}
    else:
        scales = sorted(float(s) for s in args.scales.split(",") if s.strip())
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
    res["generator_runs"] = gen_rows
    res["total_seconds"] = old.get("total_seconds") if args.from_measured else round(time.perf_counter() - t0, 1)
    write_json(out / "scale.json", res)
    plot(res, out / "scale.png")
    print(markdown(res))
    for m in names:
        if failed := [f"{r['scale']:g}" for r in measured[m] if not r["ok"]]:
            print(f"{m}: failed or timed out at F = {', '.join(failed)} (see {out}/runs/F/{m}/*.log)")
    print(f"wrote {out / 'scale.json'} and {out / 'scale.png'} (measuring took {res['total_seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
