"""Chunk -> window pooling: which teacher chunks (e.g. BirdNET's 3-s chunks) make up each window,
and the pooled window outputs (logits max, embeddings mean)."""
from __future__ import annotations

import numpy as np



def assign_bounds(starts_s: np.ndarray, *, chunk_s: float, bounds_s: np.ndarray,
                  mids_s: np.ndarray | None = None) -> list[np.ndarray]:
    """Chunk indices pooled into each window ``[a, b)`` of ``bounds_s`` ``[n, 2]`` (seconds).

    Rule: a chunk belongs to every window that holds its centre (``start + chunk_s/2``). A window
    that holds no centre takes the single chunk whose centre is nearest its midpoint (``mids_s``,
    default ``(a + b) / 2``). Windows may overlap (training windows) or tile a file (scoring).
    """
    starts_s = np.asarray(starts_s, dtype=np.float64)
    if starts_s.size == 0:
        raise ValueError("no chunks")
    centres = starts_s + chunk_s / 2.0
    bounds_s = np.asarray(bounds_s, dtype=np.float64)
    mids = bounds_s.mean(axis=1) if mids_s is None else np.asarray(mids_s, dtype=np.float64)
    out = []
    for (a, b), m in zip(bounds_s, mids):
        idx = np.flatnonzero((centres >= a) & (centres < b))
        out.append(idx if idx.size else np.array([int(np.argmin(np.abs(centres - m)))]))
    return out


def assign_chunks(starts_s: np.ndarray, *, chunk_s: float, window_s: float,
                  n_windows: int) -> list[np.ndarray]:
    """Chunk indices pooled into each scoring window ``[k*window_s, (k+1)*window_s)``.

    :func:`assign_bounds` on the tiled windows, the last one open-ended (centres past the last
    window go to it); a window with no centre (the tail window of a file whose last chunk centre
    falls earlier) takes the chunk nearest its centre, i.e. the last chunk, which holds its audio.
    """
    edges = np.arange(n_windows + 1, dtype=np.float64) * window_s
    bounds = np.stack([edges[:-1], edges[1:]], axis=1)
    mids = bounds.mean(axis=1)
    bounds[-1, 1] = np.inf
    return assign_bounds(starts_s, chunk_s=chunk_s, bounds_s=bounds, mids_s=mids)


def pool_groups(groups: list[np.ndarray], logits: np.ndarray, emb: np.ndarray | None
                ) -> tuple[np.ndarray, np.ndarray | None]:
    """Per group of chunks: max of logits, mean of embeddings (float32)."""
    lmax = np.stack([logits[g].max(axis=0) for g in groups]).astype(np.float32, copy=False)
    emean = None
    if emb is not None:
        emean = np.stack([emb[g].astype(np.float32).mean(axis=0) for g in groups])
    return lmax, emean


def pool_windows(starts_s: np.ndarray, logits: np.ndarray, emb: np.ndarray | None, *,
                 chunk_s: float, window_s: float, n_windows: int
                 ) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-window max of chunk logits and mean of chunk embeddings, chunks assigned by
    :func:`assign_chunks`.  [shapes=(n_windows, C), (n_windows, D)]"""
    groups = assign_chunks(starts_s, chunk_s=chunk_s, window_s=window_s, n_windows=n_windows)
    return pool_groups(groups, logits, emb)
