"""Small numeric helpers shared by the predictors."""
from __future__ import annotations

import logging
from typing import Callable

import numpy as np

log = logging.getLogger(__name__)


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic of ``z`` (clipped to +/-50, so no overflow warnings), float32."""
    return (1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))).astype(np.float32)


def logit(p: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Log-odds of probabilities clipped to [eps, 1 - eps], float64."""
    p = np.clip(np.asarray(p, np.float64), eps, 1 - eps)
    return np.log(p / (1 - p))


def jit(kernel: Callable, probe: tuple, fallback: Callable, name: str, *, fastmath: frozenset = frozenset()) -> Callable:
    """``kernel`` compiled by numba: cached on disk where the package folder is writable, compiled
    in memory otherwise, checked by one call on ``probe``; ``fallback`` (its NumPy form) where numba
    is missing or cannot compile it (logged). ``fastmath``: LLVM's fast-math flags for the kernel
    (e.g. ``{"reassoc"}`` lets float sums be vectorised, so they round differently)."""
    try:
        import numba
    except ImportError:  # pragma: no cover - numba is a dependency; this keeps the caller working without it
        return fallback
    for cache in (True, False):
        try:
            f = numba.njit(cache=cache, boundscheck=False, fastmath=set(fastmath))(kernel)
            f(*probe)
            return f
        except Exception as e:  # a read-only install cannot cache; anything else: the NumPy form
            log.debug("%s: numba (cache=%s) failed: %s", name, cache, e)
    log.warning("numba could not compile %s; using its NumPy form (slower)", name)
    return fallback
