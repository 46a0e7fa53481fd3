"""One-vs-rest logistic regression on standardised features; inference is one matmul."""
from __future__ import annotations

import numpy as np

from vocalprint.core.numeric import sigmoid

from .base import learnable, prior


class LinearHead:
    def __init__(self, cfg):
        self.cfg = cfg

    def fit(self, x: np.ndarray, y: np.ndarray, *, sample_weight: np.ndarray | None = None) -> "LinearHead":
        """x [n, d] float, y [n, n_species] in [0, 1] (>= 0.5 counts as positive)."""
        from sklearn.linear_model import LogisticRegression

        self.mu = x.mean(axis=0).astype(np.float32)
        self.sd = (x.std(axis=0) + 1e-6).astype(np.float32)
        z = (x - self.mu) / self.sd
        n_sp = y.shape[1]
        self.coef = np.zeros((x.shape[1], n_sp), np.float32)
        p = prior(y)
        self.bias = np.log(p / (1 - p)).astype(np.float32)
        yb = (y >= 0.5).astype(np.int64)  # int64: int8 labels misbehave in scikit-learn (FINDINGS.md)
        for j in learnable(y):
            m = LogisticRegression(C=self.cfg.C, max_iter=self.cfg.max_iter, class_weight=self.cfg.class_weight)
            m.fit(z, yb[:, j], sample_weight=sample_weight)
            self.coef[:, j] = m.coef_[0]
            self.bias[j] = m.intercept_[0]
        return self

    def decision(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mu) / self.sd) @ self.coef + self.bias

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """[n, d] -> [n, n_species] probabilities."""
        return sigmoid(self.decision(x))
