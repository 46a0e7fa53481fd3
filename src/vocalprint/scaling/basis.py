"""The audio a stage of the scale model reads, measured or planned: the basis on which the
teacher and the Mel frames are projected linearly to BirdCLEF+ 2025's size
(:data:`vocalprint.scaling.fit.AUDIO_LINEAR`), and the focal clips the teacher-based models keep
there (``teacher.max_class_windows``). Pure functions of the generator's plan and the default
configuration."""
from __future__ import annotations

import functools


def planned_audio_hours(scale: float) -> dict[str, float]:
    """Hours of focal clips and of unlabelled train soundscapes that ``demo-data --scale`` plans."""
    from vocalprint.data.scale import SOUNDSCAPE_S, plan

    p = plan(scale)
    return {"clips": p.clip_seconds / 3600, "train_soundscapes": SOUNDSCAPE_S * p.n_train_soundscapes / 3600}


def full_clip_sample() -> dict[str, float]:
    """The focal clips the teacher-based models keep at F = 1 (:func:`clip_sample_at`)."""
    return clip_sample_at(1.0)


@functools.lru_cache(maxsize=None)
def clip_sample_at(scale: float) -> dict[str, float]:
    """The focal clips the teacher-based models keep at ``scale`` under the default
    ``teacher.max_class_windows`` (:func:`vocalprint.teacher.sample.sample_recordings` on the
    generator's plan): their hours and their share of the clips' training windows."""
    import numpy as np

    from vocalprint.config import Config
    from vocalprint.data.scale import plan
    from vocalprint.teacher.sample import clip_windows_of_length, sample_recordings

    cfg, p = Config(), plan(scale)
    dur = np.concatenate(p.durations)
    classes = np.repeat(np.arange(len(p.durations)), [len(d) for d in p.durations])
    n_win = np.array([clip_windows_of_length(int(round(d * cfg.audio.sr)), cfg) for d in dur])
    kept = sample_recordings(classes, n_win, cfg.teacher.max_class_windows, cfg.teacher.sample_seed)
    kept = np.arange(len(dur)) if kept is None else kept
    return {"hours": float(dur[kept].sum() / 3600), "hours_all": float(dur.sum() / 3600),
            "window_share": float(n_win[kept].sum() / n_win.sum())}


def run_audio(run: dict) -> dict[str, float]:
    """The run's training audio: measured from its files when it recorded them, else the plan's."""
    a = run.get("audio_hours")
    return {k: float(a[k]) for k in ("clips", "train_soundscapes")} if a else planned_audio_hours(run["scale"])


def stage_audio(stage: str, point: dict, full: bool) -> float:
    """Hours of audio an :data:`~vocalprint.scaling.fit.AUDIO_LINEAR` stage reads at ``point`` (or at F = 1 with ``full``):
    the focal clips, and the train soundscapes unless the stage ran the clips only (a probe's
    teacher cache, ``parts`` in the point); the teacher reads the share of the clips
    :func:`clip_sample_at` keeps at that size, and at F = 1 the students' cache at most ``distill.max_soundscape_windows``
    windows of soundscapes (the default configuration's). A point
    measured before the stage's parts were recorded counts the clips and every soundscape."""
    from vocalprint.config import Config

    a = planned_audio_hours(1.0) if full else (point.get("audio") or planned_audio_hours(point["scale"]))
    if stage == "teacher":  # the clips teacher.max_class_windows keeps, at that point's size
        k = clip_sample_at(1.0 if full else point["scale"])
        a = dict(a, clips=a["clips"] * k["hours"] / k["hours_all"])
    if stage == "teacher" and point.get("parts") == ["clips"]:
        return a["clips"]
    ss = a["train_soundscapes"]
    d = Config()
    if full and stage == "teacher" and "all" in point.get("parts", ()) and d.distill.max_soundscape_windows > 0:
        ss = min(ss, d.distill.max_soundscape_windows * d.audio.window_s / 3600)
    return a["clips"] + ss
