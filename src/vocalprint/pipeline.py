"""Stage wiring: each function runs its upstream stages (cached) and returns its artifact folder."""
from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from vocalprint.tokens import features
from vocalprint.audio import mel
from vocalprint.teacher import stage as teach
from vocalprint.tokens import codebook as tokens
from vocalprint.tokens import train
from vocalprint.tokens import w2v
from vocalprint.config import Config, ConfigError
from vocalprint.data.dataset import Dataset

log = logging.getLogger(__name__)

HEAD_MODELS = ("stsg-linear", "stsg-lgbm", "melstats-linear", "melstats-lgbm")
TEACHER_MODELS = ("birdnet-zeroshot", "birdnet-probe", "perch-zeroshot", "perch-probe")
STUDENT_MODELS = ("student", "student-fp32", "tokens-cnn")
MODELS = HEAD_MODELS + ("tokens-nb", "loudness") + TEACHER_MODELS + STUDENT_MODELS + ("ensemble",)
BENCH_DEFAULT = ("loudness", "stsg-linear", "melstats-linear", "tokens-nb", "tokens-cnn", "birdnet-zeroshot", "birdnet-probe",
                 "student")


def check_model(model: str) -> None:
    if model not in MODELS:
        raise ConfigError(f"unknown model {model!r}; choose from {', '.join(MODELS)}")


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
    return m, t, w, features.run(cfg, ds, m, t, w, root)


def _teacher_cfg(cfg: Config, model: str) -> Config:
    return replace(cfg, teacher=replace(cfg.teacher, model=model.split("-")[0]))


def teacher_features(cfg: Config, ds: Dataset, root: Path) -> tuple[Path, Path, Path]:
    """(mels, teacher cache, teacher features of the training windows)."""
    m, _, _, f = features_(cfg, ds, root)
    cache = teach.run(cfg, ds, root)
    return m, cache, teach.features(cfg, cache, f, root)


def _student_cfg(cfg: Config, model: str) -> Config:
    """``tokens-cnn`` is the student with the token front (``distill.front="tokens"``)."""
    return replace(cfg, distill=replace(cfg.distill, front="tokens")) if model == "tokens-cnn" else cfg


def train_(cfg: Config, ds: Dataset, root: Path, model: str) -> Path:
    """Train what ``model`` needs; returns its last stage folder."""
    check_model(model)
    if model == "ensemble":
        return [train_(cfg, ds, root, m) for m in cfg.submit.members][-1]
    if model in TEACHER_MODELS:
        cfg = _teacher_cfg(cfg, model)
        _, _, tf = teacher_features(cfg, ds, root)
        return train.run(cfg, tf, f"{cfg.teacher.model}-probe", root, kind=cfg.teacher.model, head="linear")
    if model in STUDENT_MODELS:
        return distill(_student_cfg(cfg, model), ds, root)[-1]
    if model == "tokens-nb":
        return tokens_nb(cfg, ds, root)
    if model == "loudness":  # nothing to train
        return root
    *_, f = features_(cfg, ds, root)
    return train.run(cfg, f, model, root)


def tokens_nb(cfg: Config, ds: Dataset, root: Path) -> Path:
    """The ``tokens-nb`` tables, after the teacher cache when the tables are teacher-taught."""
    from vocalprint.tokens import nb

    return nb.run(cfg, ds, root, teach.run(cfg, ds, root) if nb.uses_teacher(cfg) else None)


def distill(cfg: Config, ds: Dataset, root: Path) -> list[Path]:
    """The student's stage folders: one per member of ``distill.members``."""
    from vocalprint.student import stage as student

    m, cache, tf = teacher_features(cfg, ds, root)
    return student.run_all(cfg, ds, m, cache, tf, root)


def predictor(cfg: Config, ds: Dataset, root: Path, model: str):
    """A ready predictor for ``model``, training whatever it needs that is not cached."""
    from vocalprint.core import artifacts as A
    from vocalprint.tokens.heads import prior
    from vocalprint.student.predictor import StudentPredictor
    from vocalprint.teacher.predictor import TeacherPredictor
    from vocalprint.tokens.predictor import load_head_predictor

    check_model(model)
    if model == "ensemble":
        from vocalprint.serving.ensemble import EnsemblePredictor

        if "ensemble" in cfg.submit.members:
            raise ConfigError("an ensemble cannot contain itself")
        return EnsemblePredictor([predictor(cfg, ds, root, m) for m in cfg.submit.members],
                                 weights=[float(w) for w in cfg.submit.weights], combine=cfg.submit.combine)
    if model in TEACHER_MODELS:
        tcfg = _teacher_cfg(cfg, model)
        tr = train_(tcfg, ds, root, model)
        mdir = teach.prepare(tcfg, root)
        pred = TeacherPredictor(name=model, cfg=tcfg, species=list(ds.species), kind=model.split("-")[1],
                                model_path=A.verified(mdir / "model.tflite"), labels_path=mdir / "labels.txt",
                                columns=teach.species_columns(mdir, ds, tcfg),
                                head=A.load_joblib(tr / "head.joblib"))
    elif model == "loudness":
        from vocalprint.tokens.predictor import LoudnessPredictor

        pred = LoudnessPredictor(cfg=cfg, species=list(ds.species))
    elif model == "tokens-nb":
        from vocalprint.tokens import nb

        pred = nb.load_predictor(tokens_nb(cfg, ds, root), cfg, list(ds.species))
    elif model in STUDENT_MODELS:
        cfg = _student_cfg(cfg, model)
        sdirs = distill(cfg, ds, root)
        f = "student_fp32.tflite" if model == "student-fp32" else "student_int8.tflite"
        pred = StudentPredictor(name=model, cfg=cfg, species=A.manifest(sdirs[0])["species"],
                                model_paths=[A.verified(d / f) for d in sdirs])
    else:
        _, t, w, f = features_(cfg, ds, root)
        tr = train.run(cfg, f, model, root)
        pred = load_head_predictor(model, cfg, tok_dir=t, w2v_dir=w, train_dir=tr)
    pred.prior = prior(ds.label_matrix())
    return pred
