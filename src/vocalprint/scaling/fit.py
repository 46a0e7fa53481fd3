"""The scale model's arithmetic: fits of each stage's cost against the data size, the projection
to BirdCLEF+ 2025's size and to 4 cores, and the summary JSON (its table and plot:
:mod:`vocalprint.scaling.report`). Pure functions; :mod:`vocalprint.scaling.run` measures what
they fit."""
from __future__ import annotations

import logging
import math

from vocalprint.data.scale import REAL_CLIPS as FULL_TRAIN_FILES
from vocalprint.scaling.basis import (clip_sample_at, full_clip_sample, planned_audio_hours, run_audio,  # noqa: F401
                                     stage_audio)

log = logging.getLogger("vocalprint.scale")
FULL_TEST_FILES = 700
GOALS = {"train_hours_4_cores": 12.0, "peak_rss_gib": 24.0, "disk_gb": 60.0}
RECOMMENDED_TRAIN_HOURS = 6.0  # the recommended submission's training goal on 4 cores
MEASURED_WORKERS = 2  # run.n_jobs's default: the per-file steps below ran on 2 worker processes
# steps (manifest "seconds" keys) that map one task per file (or per species: the heads) over
# run.n_jobs processes
PARALLEL_STEPS = {"mels": {"mels"}, "tokens": {"assign"}, "features": {"features"}, "nb": {"frames"},
                  "teacher": {"teacher"}, "windows": {"lengths"}, "mstats": {"pool"}, "tmixes": {"mixes"}, "pseudo": {"label"},
                  "train": {"oof", "fit"}}
TRAIN_STEP = "train"  # a student stage's training step (its manifest's "presentations" beside it)
GATHER_STEP = "windows"  # a student stage's step that copies its windows' Mel frames ("gathered" beside it)
# steps that one process runs on several threads: the share of their 2-thread time that more threads
# divide (Amdahl). A student's training ran 1.45x faster on 2 TensorFlow threads than on 1 (75 and
# 110 windows per second, notebooks/research/student_threads.py), so 0.45 of its 2-thread time is
# parallel: 4 threads ASSUMED to divide that share again (0.78x of the 2-thread time)
THREAD_SHARES = {("student", TRAIN_STEP): 0.45}
# stages whose work and output are the same per audio second at any size: the teacher runs one chunk
# per stride, the Mel frames are one frame per hop, of every file they read (start-up is a fixed cost,
# so linear from the largest size is an upper bound). They are projected linearly in the training
# audio (focal clips and unlabelled soundscapes), not by a power law in files: at small F most classes
# sit at their one-clip floor, so files grow more slowly than the audio and a per-file exponent
# between two small sizes overstates the growth
AUDIO_LINEAR = {"teacher", "mels"}
# stages of a teacher-based model (one with "tfeatures") that see only the training windows of the
# clips teacher.max_class_windows keeps: projected at their share of the windows at F = 1
CLIP_SAMPLED = {"tfeatures", "train"}
OTHER = "train-other"  # the train command's wall outside every stage's manifest (start-up, data loading)
SUBMIT = "submit"


def fit_affine(xs, ys) -> tuple[float, float] | None:
    """``(c, d)`` of ``y = c + d * x`` (least squares); None with fewer than two distinct x. Also a
    cross-check for quantities with a fixed base (a process's memory), whose power-law exponent
    between small fractions comes out low."""
    pts = [(float(x), float(y)) for x, y in zip(xs, ys) if x is not None and y is not None]
    if len({x for x, _ in pts}) < 2:
        return None
    mx, my = sum(x for x, _ in pts) / len(pts), sum(y for _, y in pts) / len(pts)
    d = sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)
    return my - d * mx, d


def fit_power(xs, ys) -> tuple[float, float] | None:
    """``(a, b)`` of ``y = a * x ** b`` through the positive points (two: exact; more: least
    squares in log-log); None with fewer than two distinct positive x."""
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if x and y and x > 0 and y > 0]
    f = fit_affine(*zip(*pts)) if pts else None
    return None if f is None else (math.exp(f[0]), f[1])


def power(fit: tuple[float, float] | None, x: float) -> float | None:
    return None if fit is None else fit[0] * x ** fit[1]


def four_core_seconds(seconds: float, parallel_share: float, cores: int, measured: int = MEASURED_WORKERS) -> float:
    """Wall seconds on ``cores`` from wall on ``measured`` workers, ASSUMING the per-file steps
    (``parallel_share`` of the stage) speed up linearly with the workers and the rest not at all."""
    return seconds * (1.0 - parallel_share + parallel_share * measured / cores)


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
                                                  "steps": c.get("steps", {}), "audio": run_audio(r),
                                                  **{k: c[k] for k in ("presentations", "keys", "gathered", "parts")
                                                     if k in c}})
        if not r.get("ok"):
            continue
        cmd = {c["command"]: c for c in r["commands"]}
        if "train" in cmd:
            other = cmd["train"]["wall_s"] - sum(c["seconds"] for c in r["stages"].values())
            pts.setdefault(OTHER, []).append({"scale": r["scale"], "effective_scale": x_train,
                                              "seconds": round(max(other, 0.0), 2), "disk_mb": 0.0})
        sub = cmd[SUBMIT]  # submit's own timing of its predictions (no start-up) when it printed one
        pts.setdefault(SUBMIT, []).append({"scale": r["scale"], "effective_scale": x_test, "disk_mb": 0.0,
                                           "seconds": sub.get("report", {}).get("elapsed_s") or sub["wall_s"]})
    return pts


def _step_fits(pts: list[dict]) -> dict[str, tuple[float, float] | None] | None:
    """A power law per step (the manifest's ``seconds`` keys) when the stage has several and every
    point lists the same ones; None otherwise."""
    names = [set(p.get("steps") or {}) for p in pts]
    if len(pts) < 2 or len(names[0]) < 2 or any(n != names[0] for n in names):
        return None
    xs = [p["effective_scale"] for p in pts]
    return {k: fit_power(xs, [p["steps"][k] for p in pts]) for k in sorted(names[0])}


def full_windows() -> int:
    """Windows one student member gathers at F = 1: BirdCLEF-sized data fills ``distill.max_windows``."""
    from vocalprint.config import Config

    return Config().distill.max_windows


def presentations(n_windows: float) -> int:
    """Windows one student member presents in training with the default configuration when it
    gathers ``n_windows`` (at most ``distill.max_windows``): a tenth of the recordings is held out
    for validation and ``distill.window_budget`` sets the epochs
    (:func:`vocalprint.student.train.epochs_for`)."""
    from vocalprint.config import Config
    from vocalprint.student.stage import VAL_EVERY
    from vocalprint.student.train import epochs_for

    cfg = Config().distill
    n_train = int(min(n_windows, cfg.max_windows) * (1 - 1 / VAL_EVERY))
    return epochs_for(cfg, n_train) * n_train


def full_presentations() -> int:
    """Windows one student member presents at F = 1, where BirdCLEF-sized data fills
    ``distill.max_windows``."""
    return presentations(full_windows())


def _fit_stage(stage: str, pts: list[dict], cores: int, x_full: float = 1.0) -> dict:
    """The stage's projection to x = 1. A stage of several steps is projected step by step and
    summed, so a step that stays flat (a capped out-of-fold check, a fixed number of mixes) does not
    hold down the growth of one that does not (the probe's fit); ``exponent`` is then the effective
    one from the largest measured x to x = 1. A stage of :data:`AUDIO_LINEAR` is the largest measured
    point scaled by the training audio instead (``audio`` in the output). A stage that sees only the
    windows of the sampled clips (:data:`CLIP_SAMPLED`) is projected at ``x_full`` (their share of
    the windows at F = 1) instead of x = 1."""
    xs = [p["effective_scale"] for p in pts]
    t, d = fit_power(xs, [p["seconds"] for p in pts]), fit_power(xs, [p["disk_mb"] for p in pts])
    last = max(pts, key=lambda p: p["effective_scale"])
    par = PARALLEL_STEPS.get(stage, set())
    share = (sum(v for k, v in last.get("steps", {}).items() if k in par) / last["seconds"]) if last["seconds"] else 0.0
    full, exponent = power(t, x_full), None if t is None else t[1]
    full_cores = None if full is None else four_core_seconds(full, share, cores)
    audio = None
    if stage in AUDIO_LINEAR and t is not None:
        audio = {"basis": "training audio hours (linear)", "audio_hours": stage_audio(stage, last, False),
                 "audio_hours_full": stage_audio(stage, last, True)}
        ratio = audio["audio_hours_full"] / audio["audio_hours"]
        full, d = last["seconds"] * ratio, (last["disk_mb"] * ratio, 1.0)
        full_cores = four_core_seconds(full, share, cores)
        if last["effective_scale"] < 1 and last["seconds"] > 0:
            exponent = math.log(ratio) / math.log(1.0 / last["effective_scale"])
    steps = None if audio else _step_fits(pts)
    step_out = None
    per_window = None
    if steps is not None and t is not None:
        # a step too small to fit (no positive time at two sizes) keeps its largest measured time
        proj = {k: (power(f, x_full) if f else last["steps"][k]) for k, f in steps.items()}
        if last.get("presentations") and TRAIN_STEP in proj:
            # a student's training: the windows it presents are set by the budget, not by the data
            # size, so its F = 1 time is its time per window presented times the default's windows
            per_window = last["steps"][TRAIN_STEP] / last["presentations"]
            shown_full = full_presentations() * last.get("keys", 1)
            proj[TRAIN_STEP] = per_window * shown_full
        if last.get("gathered") and GATHER_STEP in proj:
            # and the windows it gathers stop at distill.max_windows per member
            per_gathered = last["steps"][GATHER_STEP] / last["gathered"]
            gathered_full = full_windows() * last.get("keys", 1)
            proj[GATHER_STEP] = per_gathered * gathered_full
        full = sum(proj.values())
        full_cores = sum(four_core_seconds(v, 1.0 if k in par else THREAD_SHARES.get((stage, k), 0.0), cores)
                         for k, v in proj.items())
        if full > 0 and last["seconds"] > 0 and last["effective_scale"] < 1:
            exponent = math.log(full / last["seconds"]) / math.log(1.0 / last["effective_scale"])
        step_out = {k: {"exponent": None if f is None else round(f[1], 4), "projected_full_seconds": proj[k]}
                    for k, f in steps.items()}
        if per_window is not None:
            step_out[TRAIN_STEP] = {"basis": "window presentations", "seconds_per_presentation": per_window,
                                    "presentations_full": shown_full,
                                    "projected_full_seconds": proj[TRAIN_STEP]}
        if last.get("gathered") and GATHER_STEP in proj:
            step_out[GATHER_STEP] = {"basis": "windows gathered", "seconds_per_window": per_gathered,
                                     "windows_full": gathered_full, "projected_full_seconds": proj[GATHER_STEP]}
    out = {"measured": pts, "basis": "test files / 700 (submit's own elapsed_s)" if stage == SUBMIT
           else audio["basis"] if audio else "training files / 28,564",
           "exponent": None if exponent is None else round(exponent, 4), "projected_full_seconds": full,
           "disk_exponent": None if d is None else round(exponent if audio else d[1], 4),
           "parallel_share": round(share, 3),
           "seconds": full, "disk_mb": power(d, 1.0 if audio else x_full) if d else (0.0 if all(p["disk_mb"] == 0 for p in pts) else None),
           "projected_full_seconds_cores": full_cores}
    if x_full != 1.0:
        out["x_full"] = x_full
    if step_out:
        out["steps"] = step_out
    if audio:
        out["audio"] = audio
    return out


def _fit_commands(runs: list[dict]) -> dict:
    """Per command: wall, CPU, peak RSS and (where every row sampled it) the artifacts folder's peak
    size fitted against the command's own basis."""
    out = {}
    for name in ("train", SUBMIT):
        rows = [(r, c) for r in runs if r.get("ok") for c in r["commands"] if c["command"] == name]
        if not rows:
            continue
        xs = [(r["test_files"] / FULL_TEST_FILES) if name == SUBMIT else (r["train_files"] / FULL_TRAIN_FILES)
              for r, _ in rows]
        out[name] = {}
        for q in ("wall_s", "cpu_s", "peak_rss_mb", "peak_disk_mb"):
            if any(q not in c for _, c in rows):  # measured before the runner sampled the folder
                continue
            f, lin = fit_power(xs, [c[q] for _, c in rows]), fit_affine(xs, [c[q] for _, c in rows])
            out[name][q] = {"exponent": None if f is None else round(f[1], 4), "projected_full": power(f, 1.0),
                            "projected_full_affine": None if lin is None else lin[0] + lin[1]}
    return out


def assumptions(cores: int) -> list[str]:
    """What every projection of scale.json assumes (written into it)."""
    return ["x = training files / 28,564 (submit: test soundscapes / 700, its prediction time without start-up); "
            "t = a * x ** b per stage, F = 1 at x = 1; a stage of several steps (manifest seconds) is projected "
            "step by step and summed, b then being its effective exponent from the largest measured x; a "
            "student's training step is its seconds per window presented (at the largest x) times the windows "
            "the default configuration presents at F = 1 (distill.max_windows, its window_budget), and its "
            "windows step its seconds per window gathered times distill.max_windows; the stages of AUDIO_LINEAR "
            "(the teacher, the Mel frames) are their largest measured point times the ratio of the audio they "
            "read at F = 1 to that point's (focal clips, and train soundscapes unless the teacher ran the clips "
            "only; the students' teacher at most distill.max_soundscape_windows of them; the teacher's clips "
            "those teacher.max_class_windows keeps, and a teacher-based model's tfeatures and train stages "
            "at their share of the windows, x_full)",
            f"{cores}-core wall = 2-core wall * (1 - p + p * {MEASURED_WORKERS}/{cores}), p = the stage's "
            "per-file parallel share (PARALLEL_STEPS), or for a step that one process runs on several threads "
            "its measured share (THREAD_SHARES: a student's training, 0.45); CPU hours unchanged",
            "peak RSS: the sum over the process tree (shared pages counted per process); "
            "peak_rss_gib_affine: the same rows fitted as c + d * x instead"]


def _fit_stages(model: str, pts: dict[str, list[dict]], cores: int) -> dict:
    """Every stage of ``model`` fitted (:func:`_fit_stage`), in build order; a teacher-based model's
    :data:`CLIP_SAMPLED` stages at the share of the windows its clips keep at F = 1."""
    share = full_clip_sample()["window_share"] if "tfeatures" in pts else 1.0
    return {s: _fit_stage(s, pts[s], cores, share if s in CLIP_SAMPLED else 1.0) for s in build_order(model, pts)}


def summarise(scales: list[float], measured: dict[str, list[dict]], *, cores: int = 4, machine: dict | None = None,
              generator: dict | None = None) -> dict:
    """scale.json's content from the measured rows (``measured[model]``: :func:`measure`'s rows)."""
    res = {"scales": list(scales), "cores_projected": cores, "machine": machine or {}, "models": {},
           "generator": generator or {}, "assumptions": assumptions(cores)}
    for model, runs in measured.items():
        pts = _stage_points(runs)
        stages = _fit_stages(model, pts, cores)
        cmds = _fit_commands(runs)
        commands = [c for r in runs for c in r["commands"]]
        ok = [r["scale"] for r in runs if r.get("ok")]
        res["models"][model] = {"stages": stages, "commands": commands, "command_fits": cmds, "runs_ok": ok,
                                "projected_full": _totals(stages, cmds, commands, bool(ok), goals_for(model))}
    res["derived"] = derived(res["models"])
    return res


def goals_for(model: str) -> dict[str, float]:
    """The F = 1 goals of ``model``: one Kaggle session, and for the recipe (the recommended
    submission, an averaging model with options) :data:`RECOMMENDED_TRAIN_HOURS`."""
    from vocalprint import models as M

    spec = M.MODELS.get(model.split("@")[0])
    recipe = spec is not None and spec.bundle == "members" and bool(spec.options)
    return dict(GOALS, train_hours_4_cores=RECOMMENDED_TRAIN_HOURS) if recipe else dict(GOALS)


def _totals(stages: dict, cmds: dict, commands: list[dict], ok: bool, goals: dict[str, float] = GOALS) -> dict:
    """A model's F = 1 projection (``projected_full``) from its fitted stages and commands."""
    train = [v for st, v in stages.items() if st != SUBMIT]
    cpu = cmds.get("train", {}).get("cpu_s", {}).get("projected_full")
    rss = [c["peak_rss_mb"]["projected_full"] for c in cmds.values()]
    rss_lin = [c["peak_rss_mb"]["projected_full_affine"] for c in cmds.values()]
    full = {"train_hours_2_cores": _total([v["projected_full_seconds"] for v in train], 3600),
            "train_hours_4_cores": _total([v["projected_full_seconds_cores"] for v in train], 3600),
            "train_cpu_hours": 0.0 if not train else _total([cpu], 3600),
            "submit_minutes_700_files_2_cores": _total([stages.get(SUBMIT, {}).get("projected_full_seconds")], 60),
            "submit_own_projection_700_min": next((c["report"].get("projection_700_min") for c in reversed(commands)
                                                   if "report" in c), None),  # its per-minute rate
            "peak_rss_gib": None if not rss or None in rss else max(rss) / 1024,
            "peak_rss_gib_affine": None if not rss_lin or None in rss_lin else max(rss_lin) / 1024,
            "disk_gb": _total([v["disk_mb"] for v in stages.values()], 1000),
            "peak_disk_gb": _total([cmds.get("train", {}).get("peak_disk_mb", {}).get("projected_full")], 1000)}
    if not ok:  # nothing finished: no totals (not zero)
        full = dict.fromkeys(full)
    full["goals_met"] = {k: (None if full[k] is None else full[k] <= g) for k, g in goals.items()}
    if full["peak_disk_gb"] is not None and full["disk_gb"] is not None:  # the transient files count too
        full["goals_met"]["disk_gb"] = max(full["disk_gb"], full["peak_disk_gb"]) <= goals["disk_gb"]
    if goals != GOALS:
        full["goals"] = dict(goals)
    return full


def refit(res: dict) -> dict:
    """``res`` (a scale.json) with every stage fitted again from its own measured points: the same
    fits :func:`summarise` makes, without the run folders."""
    cores = res["cores_projected"]
    out = dict(res, models={}, assumptions=assumptions(cores))
    for model, m in res["models"].items():
        stages = _fit_stages(model, {st: v["measured"] for st, v in m["stages"].items()}, cores)
        out["models"][model] = dict(m, stages=stages, projected_full=_totals(stages, m["command_fits"], m["commands"],
                                                                             bool(m.get("runs_ok")), goals_for(model)))
    out["derived"] = derived(out["models"])
    return out


def stacked_disk(members: list[tuple[float | None, float | None]]) -> float | None:
    """Peak disk of models trained one after the other in one folder, from each one's (peak while
    training, kept at the end): each adds its folder at its fullest on top of what those before it
    kept, so the sum of the larger of the two (an upper bound where they share a stage). None when a
    member's peak is unknown."""
    if not members or any(p is None for p, _ in members):
        return None
    return sum(max(p, k or 0.0) for p, k in members)


def shared_clip_cache(models: dict, members: list[str]) -> dict[str, float]:
    """What a recipe builds once but its members' rows each count: a student's teacher cache
    (part ``all``) links the focal clips of a probe's clips-only cache at the same stride instead
    of running them, so the clips' share of that student's teacher stage (by the audio it reads at
    F = 1) is taken off the sum. Zero when no member has a probe's cache at the student's stride."""
    from vocalprint import models as M
    from vocalprint.config import Config
    from vocalprint.teacher.stage import part_stride

    out = {"train_hours_2_cores": 0.0, "train_hours_4_cores": 0.0, "disk_gb": 0.0}
    caches = []  # (a probe's clips-only cache, not a student's; its clips' stride; its own stride; the stage)
    for m in members:
        st = models.get(m, {}).get("stages", {}).get("teacher")
        if st and st.get("audio") and st.get("projected_full_seconds") is not None:
            spec = M.get(m.split("@")[0])
            cfg = spec.configure(Config())
            caches.append((spec.family == "teacher", part_stride(cfg, "clips"), part_stride(cfg, "all"), st))
    probes = {clips_s for probe, clips_s, _, _ in caches if probe}
    for probe, clips_s, all_s, st in caches:
        if not probe and clips_s == all_s and clips_s in probes:
            share = full_clip_sample()["hours"] / st["audio"]["audio_hours_full"]
            out["train_hours_2_cores"] += st["projected_full_seconds"] * share / 3600
            out["train_hours_4_cores"] += st["projected_full_seconds_cores"] * share / 3600
            out["disk_gb"] += (st.get("disk_mb") or 0.0) * share / 1000
    return out


def derived(models: dict) -> dict:
    """Projections of the frozen averaging recipes (``recommended``): members train one after the
    other from one artifacts folder, so their hours and disk add up (an upper bound where they share
    a stage, such as the teacher model and its cache of the focal clips) and the peak memory is the
    larger one. A recipe with a member this run did not measure gets no projection, only the
    names of those members (``unmeasured``). A recipe measured itself (``--models recommended``:
    its members trained in one folder, sharing what they share) has its own row instead."""
    from vocalprint import models as M
    from vocalprint.config import Config

    summed = ("train_hours_2_cores", "train_hours_4_cores", "train_cpu_hours", "disk_gb",
              "submit_minutes_700_files_2_cores")
    out = {}
    for name, spec in M.MODELS.items():
        members = list(M.members_of(Config(), name)) if spec.bundle == "members" and spec.options else []
        if not members or not any(m in models for m in members) or name in models:
            continue
        fulls = [models[m]["projected_full"] for m in members if m in models]
        missing = [m for m in members if m not in models or any(
            models[m]["projected_full"][k] is None for k in (*summed, "peak_rss_gib"))]
        if missing:
            out[name] = {"members": members, "unmeasured": missing, "projected_full": None}
            continue
        full = {k: sum(f[k] for f in fulls) for k in summed}
        saved = shared_clip_cache(models, members)
        full["train_hours_2_cores"] -= saved["train_hours_2_cores"]
        full["train_hours_4_cores"] -= saved["train_hours_4_cores"]
        full["disk_gb"] -= saved["disk_gb"]
        full["shared_clip_cache"] = saved
        full["peak_rss_gib"] = max(f["peak_rss_gib"] for f in fulls)
        full["peak_disk_gb"] = stacked_disk([(f.get("peak_disk_gb"), f["disk_gb"]) for f in fulls])
        goals = goals_for(name)
        full["goals"] = goals
        full["goals_met"] = {k: full[k] <= g for k, g in goals.items()}
        if full["peak_disk_gb"] is not None:
            full["goals_met"]["disk_gb"] = full["peak_disk_gb"] <= goals["disk_gb"]
        out[name] = {"members": members, "unmeasured": [], "projected_full": full}
    return out


def _total(vals: list, unit: float = 1.0) -> float | None:
    return None if None in vals else sum(vals) / unit


def build_order(model: str, stages) -> list[str]:
    """``stages`` in the order ``model`` builds them (the registry's; ``name@overrides`` variants as
    ``name``), then ``train-other`` and ``submit`` (JSON read back is key-sorted)."""
    from vocalprint import models as M

    from vocalprint.config import Config

    spec = M.MODELS.get(model.split("@")[0])
    own = list(spec.stages) if spec else []
    for member in (M.members_of(Config(), spec.name) if spec else ()):  # a recipe: its members' in turn
        own += [st for st in M.get(member).stages if st not in own]
    order = own + [OTHER, SUBMIT]
    return sorted(stages, key=lambda s: order.index(s) if s in order else len(order))
