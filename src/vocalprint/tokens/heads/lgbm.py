"""One binary LightGBM model per species (multi-label)."""
from __future__ import annotations

import logging

import numpy as np

from .base import learnable, prior

log = logging.getLogger(__name__)


class LgbmHead:
    def __init__(self, cfg, *, n_jobs: int = 2):
        self.cfg, self.n_jobs = cfg, n_jobs

    def fit(self, x: np.ndarray, y: np.ndarray, *, sample_weight: np.ndarray | None = None) -> "LgbmHead":
        import lightgbm as lgb

        c = self.cfg
        self.prior = prior(y)
        self.models: dict[int, object] = {}
        yb = (y >= 0.5).astype(np.int64)
        for j in learnable(y):
            m = lgb.LGBMClassifier(
                n_estimators=c.n_estimators, learning_rate=c.learning_rate, num_leaves=c.num_leaves,
                min_child_samples=c.min_child_samples, max_delta_step=c.max_delta_step,
                subsample=c.subsample, subsample_freq=1, colsample_bytree=c.colsample_bytree,
                random_state=c.seed, n_jobs=self.n_jobs, verbose=-1)
            m.fit(x, yb[:, j], sample_weight=sample_weight)
            self.models[int(j)] = m.booster_
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        out = np.tile(self.prior, (len(x), 1))
        for j, b in self.models.items():
            out[:, j] = b.predict(x, num_threads=self.n_jobs)
        return out.astype(np.float32)
