"""One-vs-rest logistic regression on standardised features; inference is one matmul."""
from __future__ import annotations

import numpy as np

from vocalprint.config.schema import NEWTON_MAX_DIM
from vocalprint.core.numeric import sigmoid

from .base import learnable, prior


def solver(cfg, n_features: int) -> str:
    """The solver ``train.linear.solver`` names; ``auto``: Newton-Cholesky up to
    :data:`NEWTON_MAX_DIM` features, L-BFGS above. L-BFGS needs ever more iterations on correlated
    features as the windows grow (261-282 for a common species on the Mel band statistics of the
    F = 0.05 synthetic competition, where Newton-Cholesky needs 7-8); one Newton step costs
    n * d^2, so wide embeddings (the teacher's 1,024-d) stay with L-BFGS."""
    if cfg.solver != "auto":
        return cfg.solver
    return "newton-cholesky" if n_features <= NEWTON_MAX_DIM else "lbfgs"


def fit_one(z: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None, cfg) -> tuple[np.ndarray, float]:
    """(coefficients [d], intercept) of one species' logistic regression on standardised ``z``."""
    from sklearn.linear_model import LogisticRegression

    m = LogisticRegression(C=cfg.C, max_iter=cfg.max_iter, class_weight=cfg.class_weight,
                           solver=solver(cfg, z.shape[1]))
    m.fit(z, y, sample_weight=sample_weight)
    return m.coef_[0].astype(np.float32), float(m.intercept_[0])


class LinearHead:
    """``n_jobs`` processes fit the species in parallel, each with one BLAS thread, so the result
    does not depend on ``n_jobs``. (One after another with a multi-threaded BLAS was the largest
    cost of ``stsg-linear`` at competition size: BLAS threads fighting over the cores.)"""

    def __init__(self, cfg, *, n_jobs: int = 1):
        self.cfg, self.n_jobs = cfg, n_jobs

    def fit(self, x: np.ndarray, y: np.ndarray, *, sample_weight: np.ndarray | None = None) -> "LinearHead":
        """x [n, d] float, y [n, n_species] in [0, 1] (>= 0.5 counts as positive)."""
        self.mu = x.mean(axis=0).astype(np.float32)
        self.sd = (x.std(axis=0) + 1e-6).astype(np.float32)
        z = (x - self.mu) / self.sd
        n_sp = y.shape[1]
        self.coef = np.zeros((x.shape[1], n_sp), np.float32)
        p = prior(y)
        self.bias = np.log(p / (1 - p)).astype(np.float32)
        yb = (y >= 0.5).astype(np.int64)  # int64: int8 labels misbehave in scikit-learn (FINDINGS.md)
        todo = list(learnable(y))
        n_jobs = min(getattr(self, "n_jobs", 1), len(todo))
        if n_jobs > 1:
            from joblib import Parallel, delayed

            fits = Parallel(n_jobs=n_jobs)(delayed(fit_one)(z, yb[:, j], sample_weight, self.cfg) for j in todo)
        else:
            from threadpoolctl import threadpool_limits

            with threadpool_limits(1):  # as in the parallel workers
                fits = [fit_one(z, yb[:, j], sample_weight, self.cfg) for j in todo]
        for j, (c, b) in zip(todo, fits):
            self.coef[:, j], self.bias[j] = c, b
        return self

    def decision(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mu) / self.sd) @ self.coef + self.bias

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """[n, d] -> [n, n_species] probabilities."""
        return sigmoid(self.decision(x))
