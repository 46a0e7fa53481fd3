"""Stage wiring: each function runs its upstream stages (cached) and returns its artifact folder."""
from __future__ import annotations

import logging
from pathlib import Path

from . import features, mel, tokens, train, w2v
from .config import Config, ConfigError
from .dataset import Dataset

log = logging.getLogger(__name__)

HEAD_MODELS = ("stsg-linear", "stsg-lgbm", "melstats-linear", "melstats-lgbm")
MODELS = HEAD_MODELS


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


def train_(cfg: Config, ds: Dataset, root: Path, model: str) -> Path:
    if model not in HEAD_MODELS:
        raise ConfigError(f"unknown model {model!r}; choose from {', '.join(MODELS)}")
    *_, f = features_(cfg, ds, root)
    return train.run(cfg, f, model, root)


def predictor(cfg: Config, ds: Dataset, root: Path, model: str):
    """A ready predictor for ``model``, training whatever it needs that is not cached."""
    from .predict import load_head_predictor

    if model not in MODELS:
        raise ConfigError(f"unknown model {model!r}; choose from {', '.join(MODELS)}")
    from .heads import prior

    _, t, w, f = features_(cfg, ds, root)
    tr = train.run(cfg, f, model, root)
    pred = load_head_predictor(model, cfg, tok_dir=t, w2v_dir=w, train_dir=tr)
    pred.prior = prior(ds.label_matrix())
    return pred
