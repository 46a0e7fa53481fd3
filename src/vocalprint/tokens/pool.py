"""Stage 4 core: pool frame-level tokens (or Mel bands) into one feature row per 5-s window."""
from __future__ import annotations

import numpy as np

POOLINGS = ("mean", "std", "max", "tfidf")


def pool_tokens(tok: np.ndarray, bounds: np.ndarray, *, vectors: np.ndarray, idf: np.ndarray | None = None,
                pooling: tuple[str, ...] = ("mean",)) -> np.ndarray:
    """Token ids [t] + window frame bounds [n, 2] -> [n, dim * len(pooling)] float32.

    ``mean``/``std``/``max`` pool the Word2Vec vectors of the window's tokens; ``tfidf`` is their mean
    weighted by each token's idf (tokens common in field recordings weigh less). Empty windows are 0.
    """
    for p in pooling:
        if p not in POOLINGS:
            raise ValueError(f"unknown pooling {p!r}; choose from {POOLINGS}")
    d = vectors.shape[1]
    out = np.zeros((len(bounds), d * len(pooling)), np.float32)
    tok = np.asarray(tok)
    for i, (a, b) in enumerate(bounds):
        if b <= a:
            continue
        ids = tok[a:b].astype(np.int64)
        v = vectors[ids]
        for j, p in enumerate(pooling):
            sl = slice(j * d, (j + 1) * d)
            if p == "mean":
                out[i, sl] = v.mean(axis=0)
            elif p == "std":
                out[i, sl] = v.std(axis=0)
            elif p == "max":
                out[i, sl] = v.max(axis=0)
            else:
                w = idf[ids] if idf is not None else np.ones(len(ids), np.float32)
                out[i, sl] = (w[:, None] * v).sum(axis=0) / max(float(w.sum()), 1e-6)
    return out


def pool_mel(frames: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """The plain baseline: mean and std of each Mel band per window. [t, m] -> [n, 2m] float32."""
    m = frames.shape[1]
    out = np.zeros((len(bounds), 2 * m), np.float32)
    for i, (a, b) in enumerate(bounds):
        if b > a:
            w = np.asarray(frames[a:b], dtype=np.float32)
            out[i, :m] = w.mean(axis=0)
            out[i, m:] = w.std(axis=0)
    return out
