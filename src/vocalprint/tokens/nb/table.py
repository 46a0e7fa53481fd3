"""Counting and scoring of ``tokens-nb``, pure functions: token counts -> naive-Bayes tables, frame
targets (focal clips, teacher-taught), frame activity, and frame scores -> window scores."""
from __future__ import annotations

import numpy as np

from vocalprint.core.numeric import sigmoid


def smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average over time (axis 0) of ``x`` [t, ...], ``width`` frames (shrinking at
    the ends), same length."""
    x = np.asarray(x, np.float64)
    if width <= 1 or len(x) == 0:
        return x
    c = np.concatenate([np.zeros((1,) + x.shape[1:]), np.cumsum(x, axis=0)])
    h, t = width // 2, len(x)
    a = np.clip(np.arange(t) - h, 0, t)
    b = np.clip(np.arange(t) + h + 1, 0, t)
    d = (b - a).reshape((-1,) + (1,) * (x.ndim - 1))
    return (c[b] - c[a]) / d


def window_scores(frame_scores: np.ndarray, bounds: np.ndarray, *, top_k: int = 8, width: int = 9) -> np.ndarray:
    """Frame scores [t, S] -> window scores [n, S]: the mean of the ``top_k`` highest smoothed frame
    scores inside each (start, stop) of ``bounds``; 0 for an empty window."""
    fs = smooth(frame_scores, width)
    out = np.zeros((len(bounds), fs.shape[1]), np.float32)
    for i, (a, b) in enumerate(bounds):
        if b > a:
            w = fs[a:b]
            k = max(1, min(top_k, len(w)))
            out[i] = np.partition(w, len(w) - k, axis=0)[-k:].mean(0)
    return out


def add_counts(pos: np.ndarray, tot: np.ndarray, tok: np.ndarray, targets: np.ndarray) -> None:
    """Accumulate token counts in place: ``tot[k] +=`` frames with token k, ``pos[k, s] +=`` their
    target weight for species s. ``targets``: [t, S] frame targets (0..1)."""
    k = len(tot)
    t = np.asarray(tok, np.int64)
    tot += np.bincount(t, minlength=k)[:k]
    y = np.asarray(targets, np.float64)
    for s in np.flatnonzero(y.any(0)):
        pos[:, s] += np.bincount(t, weights=y[:, s], minlength=k)[:k]


def nb_table(pos: np.ndarray, tot: np.ndarray, *, alpha: float = 1.0) -> np.ndarray:
    """Naive-Bayes log-ratio [K, S] from counts: log P(token | species frames) - log P(token | rest)."""
    k = len(tot)
    neg = np.maximum(tot[:, None] - pos, 0.0)
    lp = np.log((pos + alpha) / (pos.sum(0) + alpha * k))
    ln = np.log((neg + alpha) / (neg.sum(0) + alpha * k))
    return (lp - ln).astype(np.float32)


def taught_targets(frame_targets: np.ndarray, teacher_prob: np.ndarray, *, weight: float) -> np.ndarray:
    """Blend carried frame targets [t, S] with the teacher's probability [S] for the window holding
    them: ``(1 - weight) * targets + weight * prob`` where ``prob`` is finite (a species the
    teacher knows), the targets unchanged where it is NaN. Pure; float32 [t, S]."""
    y = np.asarray(frame_targets, np.float32)
    p = np.asarray(teacher_prob, np.float32)
    if p.shape != y.shape[-1:]:
        raise ValueError(f"teacher probabilities {p.shape} do not match targets {y.shape}")
    known = np.isfinite(p)
    out = y.copy()
    out[:, known] = (1.0 - weight) * y[:, known] + weight * p[known][None]
    return out


def teacher_probs(logits: np.ndarray) -> np.ndarray:
    """Sigmoid of teacher logits, NaN kept (species the teacher does not know)."""
    lo = np.asarray(logits, np.float64)
    return sigmoid(lo)


def clip_targets(active: np.ndarray, label_row: np.ndarray) -> np.ndarray:
    """Frame targets of a focal clip: ``label_row`` on its active frames, 0 elsewhere. [t, S]"""
    return np.asarray(active, np.float32)[:, None] * np.asarray(label_row, np.float32)[None]


def frame_activity(x: np.ndarray, n_frames: int, *, sr: int, hop: int) -> np.ndarray:
    """Activity (:func:`vocalprint.audio.mix.activity_mask`) at each frame centre ``j * hop``: bool [n_frames]."""
    from vocalprint.audio import mix

    if x.size == 0:
        return np.zeros(n_frames, bool)
    m = mix.sample_mask(mix.activity_mask(x, sr), x.size, sr)
    c = np.minimum(np.arange(n_frames) * hop, x.size - 1)
    return m[c]

