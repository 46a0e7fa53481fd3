"""What every head shares: the label prior and the species a head can learn."""
from __future__ import annotations

import numpy as np


def prior(y: np.ndarray) -> np.ndarray:
    """Per-species positive rate [n_species]: the score of a species a head could not learn."""
    return np.clip((y >= 0.5).mean(axis=0), 1e-4, 1 - 1e-4).astype(np.float32)


def learnable(y: np.ndarray) -> np.ndarray:
    """Species columns with both positives and negatives."""
    pos = (y >= 0.5).sum(axis=0)
    return np.flatnonzero((pos > 0) & (pos < len(y)))
