"""`make plan`: the stages a model would build, which are cached, and what each costs.

The walk computes every stage's key exactly as the stage wiring (:mod:`vocalprint.pipeline`) names
its folder, without building anything; a test checks it against the folders a real build leaves.
Costs of cached stages come from their manifests (seconds per step) and their size on disk; for
stages still to build they come from the scale model (``artifacts/scale/scale.json``, written by
``make scale``) when one exists, at this data's size (training files / 28,564, through each stage's
fitted power law), else they are "unknown".
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from vocalprint.config import Config
from vocalprint.core import artifacts as A
from vocalprint.data.dataset import Dataset

from vocalprint.data.scale import REAL_CLIPS as FULL_TRAIN_FILES  # BirdCLEF+ 2025: F = 1 of the scale model


@dataclass(frozen=True)
class Step:
    """One stage folder: ``artifacts/<stage>/<key>/``."""

    stage: str
    key: str
    cached: bool
    seconds: float | None = None  # measured (cached) or projected
    disk_mb: float | None = None
    source: str = "unknown"  # "measured", "projected" or "unknown"


def _keys_tokens(cfg: Config, ds: Dataset) -> list[tuple[str, str]]:
    from vocalprint.audio import mel
    from vocalprint.tokens import codebook, features, w2v

    m = mel.key(cfg, ds)
    t = codebook.key(cfg, m)
    w = w2v.key(cfg, t)
    return [("mels", m), ("tokens", t), ("w2v", w), ("features", features.key(cfg, w))]


def _keys_teacher(cfg: Config, ds: Dataset, root: Path, part: str) -> list[tuple[str, str]]:
    from vocalprint.audio import clips
    from vocalprint.teacher import stage as teach

    cache, win = teach.cache_dir(cfg, ds, root, part).name, clips.key(cfg, ds)
    return [("teacher-model", teach.model_key(cfg)), ("teacher", cache), ("windows", win),
            ("tfeatures", teach.features_key(cfg, cache, win))]


def stage_keys(cfg: Config, ds: Dataset, root: Path, model: str) -> list[tuple[str, str]]:
    """(stage, key) of every folder ``model`` builds, in build order (``cfg`` as given on the
    command line: the model's own overrides are applied here)."""
    from vocalprint import models
    from vocalprint.student import rounds
    from vocalprint.student import stage as student
    from vocalprint.teacher import stage as teach
    from vocalprint.tokens import train
    from vocalprint.tokens.nb import stage as nb

    spec = models.get(model)
    if spec.bundle == "members":
        out: list[tuple[str, str]] = []
        for m in models.members_of(cfg, model):
            out += [s for s in stage_keys(cfg, ds, root, m) if s not in out]
        return out
    cfg = spec.configure(cfg)
    if not spec.stages:
        return []
    if "nb" in spec.stages:
        if not nb.uses_teacher(cfg):
            return [("nb", nb.key(cfg, ds))]
        cache = teach.cache_key(cfg, ds)
        return [("teacher-model", teach.model_key(cfg)), ("teacher", cache), ("nb", nb.key(cfg, ds, cache))]
    if "mstats" in spec.stages:
        from vocalprint.audio import clips, mel
        from vocalprint.tokens import melstats

        m, w = mel.key(cfg, ds), clips.key(cfg, ds)
        chain = [("mels", m), ("windows", w), ("mstats", melstats.key(cfg, m, w))]
        return chain + [("train", train.key(cfg, model, chain[-1][1]))]
    if spec.family == "tokens":
        chain = _keys_tokens(cfg, ds)
        return chain + [("train", train.key(cfg, model, chain[-1][1]))]
    from vocalprint.audio import mel

    chain = _keys_teacher(cfg, ds, root, "clips" if spec.family == "teacher" else "all")
    tfeat, cache, mel_key = chain[-1][1], dict(chain)["teacher"], mel.key(cfg, ds)
    if spec.family == "teacher":
        return chain + [("train", train.key(cfg, f"{cfg.teacher.model}-probe", tfeat, head="linear"))]
    out = chain + [("mels", mel_key)]  # the students' own input
    out += [("tmixes", student.mixes_key(cfg, cache))] if cfg.distill.n_mixes > 0 else []
    members = [student.key(cfg, tfeat, cache, j) for j in range(cfg.distill.members)]
    out += [("student", k) for k in members]
    for r in range(1, cfg.distill.rounds + 1):
        pk = rounds.key(cfg, [root / "student" / k for k in members], cache, mel_key, r)
        members = [student.key(cfg, tfeat, cache, j, round_=r, pseudo_key=pk) for j in range(cfg.distill.members)]
        out += [("pseudo", pk)] + [("student", k) for k in members]
    return out


def _du_mb(path: Path) -> float:
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6, 1)


def _scale_model(root: Path) -> dict:
    f = root / "scale" / "scale.json"
    return json.loads(f.read_text()) if f.is_file() else {}


def _fraction(ds: Dataset) -> float:
    """This data's size as a fraction F of the competition's (training files / 28,564)."""
    return len(ds.train) / FULL_TRAIN_FILES


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _per_window(step: dict) -> bool:
    return _num(step.get("seconds_per_presentation")) or _num(step.get("seconds_per_window"))


def _student_step(step: dict, stage: dict, f_now: float) -> float:
    """A student's training (seconds per window presented) or window gathering (per window gathered)
    at data fraction ``f_now``: the windows one member gathers grow with the data from the largest
    measured point up to ``distill.max_windows``, and the default configuration presents
    :func:`vocalprint.scaling.fit.presentations` of them. The F = 1 projection when the measured
    points do not say how many windows they gathered."""
    from vocalprint.scaling.fit import presentations

    pts = [p for p in stage.get("measured", []) if _num(p.get("gathered")) and _num(p.get("effective_scale"))]
    if not pts:
        return step["projected_full_seconds"]
    last = max(pts, key=lambda p: p["effective_scale"])
    keys = last.get("keys", 1)
    n = min(Config().distill.max_windows, last["gathered"] / keys / last["effective_scale"] * f_now)
    if _num(step.get("seconds_per_window")):
        return step["seconds_per_window"] * n * keys
    return step["seconds_per_presentation"] * presentations(n) * keys


def projected(stage: dict, f_now: float | None) -> tuple[float | None, float | None]:
    """(seconds, disk MB) of a stage of the scale model at data fraction ``f_now``: its power law
    ``a * f_now ** b`` (``a`` the F = 1 projection), summed over its steps when it was fitted step by
    step; the F = 1 values when either is unknown."""
    secs, mb = stage.get("seconds"), stage.get("disk_mb")
    if _num(f_now) and f_now > 0 and _num(stage.get("x_full")):
        # a stage that sees the windows of the sampled clips only, projected at their share of x at
        # F = 1: at this size they hold this size's share
        from vocalprint.scaling.basis import clip_sample_at

        f_now = f_now * clip_sample_at(max(round(f_now, 4), 1e-4))["window_share"] / stage["x_full"]
    if _num(f_now) and f_now > 0:
        steps = stage.get("steps") or {}
        if steps and all(_num(v.get("projected_full_seconds")) for v in steps.values()):
            # step by step, as fitted: a step that stays flat keeps its time; a student's training and
            # window gathering by the windows it would have at this size
            secs = sum(_student_step(v, stage, f_now) if _per_window(v) else
                       v["projected_full_seconds"] * (f_now ** v["exponent"] if _num(v.get("exponent")) else 1.0)
                       for v in steps.values())
        elif _num(stage.get("exponent")) and _num(stage.get("projected_full_seconds")):
            secs = stage["projected_full_seconds"] * f_now ** stage["exponent"]
        if _num(stage.get("disk_exponent")) and _num(mb):
            mb = mb * f_now ** stage["disk_exponent"]
    return (round(secs, 1) if _num(secs) else None), (round(mb, 1) if _num(mb) else None)


def plan(cfg: Config, ds: Dataset, root: Path, model: str) -> list[Step]:
    """Every stage ``model`` needs with its key, whether it is cached, and its cost (an averaging
    model's stages are its members', each projected from that member's scale model)."""
    from vocalprint import models

    if models.get(model).bundle == "members":
        out: dict[tuple[str, str], Step] = {}
        for m in models.members_of(cfg, model):
            for s in plan(cfg, ds, root, m):
                out.setdefault((s.stage, s.key), s)
        return list(out.values())
    scale = _scale_model(root).get("models", {}).get(model, {}).get("stages", {})
    f_now = _fraction(ds)
    steps = []
    for stage, key in stage_keys(cfg, ds, root, model):
        d = A.stage_dir(root, stage, key)
        if A.is_complete(d):
            secs = A.manifest(d).get("seconds") or {}
            total = sum(v for v in secs.values() if isinstance(v, (int, float))) if isinstance(secs, dict) else None
            steps.append(Step(stage, key, True, round(total, 1) if total is not None else None, _du_mb(d), "measured"))
        elif stage in scale:
            steps.append(Step(stage, key, False, *projected(scale[stage], f_now), "projected"))
        else:
            steps.append(Step(stage, key, False))
    return steps


def _peak(root: Path, ds: Dataset, model: str, cfg: Config | None, q: str) -> float | None:
    """Projected peak ``q`` (``peak_rss_mb`` or ``peak_disk_mb``) of ``model``'s training at this
    data's size, from the scale model's fit of the measured training runs; None before one exists.
    An averaging model's members train one after the other in one folder: its own fit when it was
    measured itself, else the largest of its members' memory and their folders stacked
    (:func:`vocalprint.scaling.fit.stacked_disk`, the rule of ``make scale``'s table)."""
    from vocalprint import models

    fit = _scale_model(root).get("models", {}).get(model, {}).get("command_fits", {}).get("train", {}).get(q, {})
    if models.get(model).bundle == "members" and not fit:  # a recipe not measured itself: its members'
        names = models.members_of(cfg or Config(), model)
        peaks = [_peak(root, ds, m, None, q) for m in names]
        if q == "peak_rss_mb":
            return None if not peaks or None in peaks else max(peaks)
        from vocalprint.scaling.fit import stacked_disk

        kept = [_kept_mb(plan(cfg or Config(), ds, root, m)) for m in names]
        return stacked_disk(list(zip(peaks, kept)))
    if not (_num(fit.get("projected_full")) and _num(fit.get("exponent"))):
        return None
    return fit["projected_full"] * _fraction(ds) ** fit["exponent"]


def _kept_mb(steps: list[Step]) -> float | None:
    """What a model's stages keep on disk (MB) at this data size; None when one is unknown."""
    vals = [s.disk_mb for s in steps]
    return None if None in vals else sum(vals)


def peak_rss_gib(root: Path, ds: Dataset, model: str, cfg: Config | None = None) -> float | None:
    """Projected peak resident memory (process tree) of ``model``'s training at this data's size,
    from the scale model's fit of the measured training runs; None before one exists (an averaging
    model: the largest of its members', which train one after the other)."""
    mb = _peak(root, ds, model, cfg, "peak_rss_mb")
    return None if mb is None else round(mb / 1024, 2)


def peak_disk_gb(root: Path, ds: Dataset, model: str, cfg: Config | None = None) -> float | None:
    """Projected peak size of the artifacts folder while ``model`` trains at this data's size,
    transient files included (the Mel frames a stage deletes at its end); None before a
    ``make scale`` run that sampled it."""
    mb = _peak(root, ds, model, cfg, "peak_disk_mb")
    return None if mb is None else round(mb / 1000, 2)


def table(model: str, steps: list[Step], peak_gib: float | None = None, disk_gb: float | None = None) -> str:
    """The plan as text for the terminal."""
    if not steps:
        return f"{model}: no stage to build (nothing is trained)"
    lines = [f"{model}: {sum(not s.cached for s in steps)} of {len(steps)} stages to build",
             f"  {'stage':<14}{'key':<14}{'state':<9}{'seconds':>10}{'disk MB':>10}  source"]
    for s in steps:
        sec = f"{s.seconds:.1f}" if s.seconds is not None else "unknown"
        mb = f"{s.disk_mb:.1f}" if s.disk_mb is not None else "unknown"
        lines.append(f"  {s.stage:<14}{s.key:<14}{'cached' if s.cached else 'to build':<9}{sec:>10}{mb:>10}  {s.source}")
    if any(not s.cached for s in steps):
        lines.append("  peak memory of the training: " + (f"{peak_gib:.1f} GiB (projected)" if peak_gib is not None
                                                           else "unknown (no make scale run of this model)"))
        lines.append("  peak disk of the training: " + (f"{disk_gb:.1f} GB (projected; transient files included)"
                                                         if disk_gb is not None else "unknown (not sampled by make scale)"))
    return "\n".join(lines)
