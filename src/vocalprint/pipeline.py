"""Stage wiring: each function runs its upstream stages (cached) and returns its artifact folder.

The per-family ``train_*`` and ``*_predictor`` functions are what the model registry
(:mod:`vocalprint.models`) dispatches to; they receive a config already set up for the model
(``ModelSpec.configure``).
"""
from __future__ import annotations

import logging
from pathlib import Path

from vocalprint.audio import clips, mel
from vocalprint.config import Config
from vocalprint.data.dataset import Dataset
from vocalprint.teacher import stage as teach
from vocalprint.tokens import codebook as tokens
from vocalprint.tokens import features, melstats, train, w2v

log = logging.getLogger(__name__)


def mels(cfg: Config, ds: Dataset, root: Path) -> Path:
    return mel.run(cfg, ds, root)


def tokens_(cfg: Config, ds: Dataset, root: Path) -> Path:
    return tokens.run(cfg, mels(cfg, ds, root), root)


def w2v_(cfg: Config, ds: Dataset, root: Path) -> Path:
    return w2v.run(cfg, tokens_(cfg, ds, root), root)


def features_(cfg: Config, ds: Dataset, root: Path) -> tuple[Path, Path, Path, Path]:
    m = mels(cfg, ds, root)
    t = tokens.run(cfg, m, root)
    w = w2v.run(cfg, t, root)
    return m, t, w, features.run(cfg, ds, t, w, root)


def melstats_(cfg: Config, ds: Dataset, root: Path) -> Path:
    """Mel band statistics of the training windows: Mel frames and windows, no token chain."""
    return melstats.run(cfg, mels(cfg, ds, root), clips.run(cfg, ds, root), root)


def teacher_features(cfg: Config, ds: Dataset, root: Path, part: str = "all") -> tuple[Path, Path]:
    """(teacher cache of ``part``, teacher features of the training windows): no Mel frames, no
    tokens. The probe needs only the focal clips (``clips``); the students add the soundscapes."""
    cache = teach.run(cfg, ds, root, part)
    return cache, teach.features(cfg, cache, clips.run(cfg, ds, root), root)


def tokens_nb(cfg: Config, ds: Dataset, root: Path) -> Path:
    """The ``tokens-nb`` tables, after the teacher cache when the tables are teacher-taught."""
    from vocalprint.tokens.nb import stage as nb

    return nb.run(cfg, ds, root, teach.run(cfg, ds, root) if nb.uses_teacher(cfg) else None)


def distill(cfg: Config, ds: Dataset, root: Path) -> list[Path]:
    """The student's stage folders: one per member of ``distill.members``, of the last
    self-training round (``distill.rounds``; 0: the distilled students alone)."""
    from vocalprint.student import rounds

    cache, tf = teacher_features(cfg, ds, root)
    return rounds.run_rounds(cfg, ds, mels(cfg, ds, root), cache, tf, root)


# ------------------------------------------------------------------ per family, for the registry
# Each receives the model's registry entry (``models.ModelSpec``: its ``name`` and the ``stages`` it
# builds) and dispatches on the stages, never on the name (the registry imports this module).

def train_tokens(cfg: Config, ds: Dataset, root: Path, spec) -> Path:
    """No stage (``loudness``: nothing to train, the artifacts root), the naive-Bayes tables
    (``nb``), or a window head over the Mel statistics (``mstats``) or the token features."""
    if not spec.stages:
        return root
    if "nb" in spec.stages:
        return tokens_nb(cfg, ds, root)
    f = melstats_(cfg, ds, root) if "mstats" in spec.stages else features_(cfg, ds, root)[-1]
    return train.run(cfg, f, spec.name, root)


def tokens_predictor(cfg: Config, ds: Dataset, root: Path, spec):
    if not spec.stages:
        from vocalprint.tokens.predictor import LoudnessPredictor

        return LoudnessPredictor(cfg=cfg, species=list(ds.species))
    if "nb" in spec.stages:
        from vocalprint.tokens.nb.predictor import load_predictor

        return load_predictor(tokens_nb(cfg, ds, root), cfg, list(ds.species))
    from vocalprint.tokens.predictor import load_head_predictor

    if "mstats" in spec.stages:
        return load_head_predictor(spec.name, cfg, tok_dir=None, w2v_dir=None, train_dir=train_tokens(cfg, ds, root, spec))
    _, t, w, f = features_(cfg, ds, root)
    tr = train.run(cfg, f, spec.name, root)
    return load_head_predictor(spec.name, cfg, tok_dir=t, w2v_dir=w, train_dir=tr)


def train_teacher(cfg: Config, ds: Dataset, root: Path, spec) -> Path:
    """The teacher's cache and the probe on its embedding (zero-shot models use the probe for the
    species the teacher cannot name)."""
    _, tf = teacher_features(cfg, ds, root, "clips")
    return train.run(cfg, tf, f"{cfg.teacher.model}-probe", root, kind=cfg.teacher.model, head="linear")


def teacher_predictor(cfg: Config, ds: Dataset, root: Path, spec):
    from vocalprint.core import artifacts as A
    from vocalprint.teacher.predictor import TeacherPredictor

    tr = train_teacher(cfg, ds, root, spec)
    mdir = teach.prepare(cfg, root)
    return TeacherPredictor(name=spec.name, cfg=cfg, species=list(ds.species), kind=spec.kind,
                            model_path=A.verified(mdir / "model.tflite"), labels_path=mdir / "labels.txt",
                            columns=teach.species_columns(mdir, ds, cfg), head=A.load_joblib(tr / "head.joblib"))


def train_student(cfg: Config, ds: Dataset, root: Path, spec) -> Path:
    return distill(cfg, ds, root)[-1]


def student_predictor(cfg: Config, ds: Dataset, root: Path, spec):
    from vocalprint.core import artifacts as A
    from vocalprint.student.fcn import FCN_FILE
    from vocalprint.student.predictor import StudentPredictor

    sdirs = distill(cfg, ds, root)
    f = f"student_{spec.precision}.tflite"
    layouts = [A.manifest(d).get("fcn") for d in sdirs]
    # the whole-file form: int8 only, and only when every member has one of the same geometry
    fcn = spec.precision == "int8" and all(layouts) and all(x == layouts[0] for x in layouts)
    return StudentPredictor(name=spec.name, cfg=cfg, species=A.manifest(sdirs[0])["species"],
                            model_paths=[A.verified(d / f) for d in sdirs],
                            fcn_paths=[A.verified(d / FCN_FILE) for d in sdirs] if fcn else (),
                            fcn_layout=layouts[0] if fcn else None)
