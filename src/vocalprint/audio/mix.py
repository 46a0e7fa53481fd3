"""Synthetic field recordings: focal-clip calls mixed into background audio at chosen SNRs.

Pure numpy/scipy functions (no files, no global state). The training side uses them to turn loud,
clean focal clips into 5-s windows that look like the test soundscapes: faint calls over field
noise, several or none per window, calls cut by window edges. Labels follow the calls: a window
carries a clip's species only if enough of the clip's *active* audio (energy-based activity mask)
falls inside it.

SNR convention (the one the dev soundscapes were built with): power of the call over its active
samples vs power of the background window, both high-passed at ``snr_fmin`` (500 Hz), in dB.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

FRAME_S = 0.01  # activity-mask frame length (10 ms)


# --------------------------------------------------------------------------------------------
# Small signal helpers
# --------------------------------------------------------------------------------------------


def highpass(x: np.ndarray, sr: int, fmin: float) -> np.ndarray:
    """4th-order Butterworth high-pass (``fmin <= 0``: unchanged).  [shape=x.shape] float32"""
    x = np.asarray(x, dtype=np.float32)
    if fmin <= 0 or x.size == 0:
        return x
    from scipy.signal import butter, sosfilt

    sos = butter(4, fmin, btype="highpass", fs=sr, output="sos")
    return sosfilt(sos, x).astype(np.float32, copy=False)


def power(x: np.ndarray) -> float:
    """Mean square of ``x`` (0 for an empty array)."""
    x = np.asarray(x, dtype=np.float64)
    return float(np.mean(x * x)) if x.size else 0.0


def activity_mask(x: np.ndarray, sr: int, *, frame_s: float = FRAME_S, hp_hz: float = 150.0,
                  rel_db: float = 18.0, above_median_db: float = 8.0, close_s: float = 0.05) -> np.ndarray:
    """Energy-based activity of a clip per ``frame_s`` frame: bool [ceil(len(x) / frame)].

    A frame is active if its (``hp_hz`` high-passed) energy is above
    ``max(p99 - rel_db, median + above_median_db)`` dB; gaps shorter than ``close_s`` between
    active frames are closed. An all-zero clip has no active frame.
    """
    hop = max(1, int(round(frame_s * sr)))
    y = highpass(x, sr, hp_hz).astype(np.float64)
    n = int(np.ceil(y.size / hop))
    if n == 0:
        return np.zeros(0, bool)
    pad = np.zeros(n * hop)
    pad[:y.size] = y
    e = (pad.reshape(n, hop) ** 2).mean(axis=1)
    if not (e > 0).any():
        return np.zeros(n, bool)
    db = 10 * np.log10(np.maximum(e, 1e-20))
    thr = max(np.percentile(db, 99) - rel_db, np.median(db) + above_median_db)
    m = db >= thr
    if not m.any():  # flat clip (e.g. a steady tone): everything above the floor is active
        m = db > db.max() - rel_db
    gap = int(round(close_s / frame_s))
    on = np.flatnonzero(m)
    for a, b in zip(on[:-1], on[1:]):
        if 1 < b - a <= gap + 1:
            m[a:b] = True
    return m


def sample_mask(frame_mask: np.ndarray, n_samples: int, sr: int, *, frame_s: float = FRAME_S) -> np.ndarray:
    """A frame mask from :func:`activity_mask` expanded to samples: bool [n_samples]."""
    hop = max(1, int(round(frame_s * sr)))
    return np.repeat(np.asarray(frame_mask, bool), hop)[:n_samples]


def coloured_noise(n: int, *, beta: float, rng: np.random.Generator) -> np.ndarray:
    """Noise with power spectrum ~ 1/f**beta (0 white, 1 pink, 2 brown), unit RMS.  [n] float32"""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n)
    f[0] = f[1] if n > 1 else 1.0
    spec = spec / f ** (beta / 2.0)
    x = np.fft.irfft(spec, n)
    x = x - x.mean()
    r = np.sqrt(np.mean(x * x)) if n else 0.0
    return (x / r if r > 0 else x).astype(np.float32)


def quiet_segments(x: np.ndarray, sr: int, *, seg_s: float = 5.0, hop_s: float = 1.0, keep: float = 0.5,
                   fmin: float = 500.0) -> list[np.ndarray]:
    """The ``keep`` share of ``seg_s`` stretches of ``x`` (every ``hop_s``) with the lowest
    high-passed power: low-activity background, fewest loud calls. Returned in time order."""
    seg, hop = int(round(seg_s * sr)), max(1, int(round(hop_s * sr)))
    if x.size < seg:
        return [np.asarray(x, np.float32)] if x.size else []
    y = highpass(x, sr, fmin)
    starts = np.arange(0, x.size - seg + 1, hop)
    p = np.array([power(y[s:s + seg]) for s in starts])
    n_keep = max(1, int(round(keep * len(starts))))
    pick = np.sort(starts[np.argsort(p, kind="stable")[:n_keep]])
    return [np.asarray(x[s:s + seg], np.float32) for s in pick]


def _fade(n: int, sr: int, fade_s: float) -> np.ndarray:
    k = min(n // 2, int(round(fade_s * sr)))
    w = np.ones(n, np.float32)
    if k > 0:
        r = np.linspace(0.0, 1.0, k, dtype=np.float32)
        w[:k], w[-k:] = r, r[::-1]
    return w


# --------------------------------------------------------------------------------------------
# Mixing
# --------------------------------------------------------------------------------------------


def pick_clips(pool: np.ndarray, primary: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted unique rows of ``pool`` (training rows) to load for one batch of mixes: all of them if
    ``len(pool) <= n``, else ``n`` drawn species first (a primary label uniformly, then one of its
    clips), so rare species are mixed as often as common ones. Bounds the audio held at once to
    ``n`` clips whatever the size of the training set."""
    pool = np.asarray(pool, np.int64)
    if len(pool) <= n:
        return np.sort(pool)
    prim = np.asarray(primary)[pool]
    by = {s: pool[prim == s] for s in np.unique(prim)}
    sp = list(by)
    out: set[int] = set()
    for _ in range(50 * n):  # draw until n distinct clips (bounded: pool > n guarantees progress)
        rows = by[sp[int(rng.integers(len(sp)))]]
        out.add(int(rows[int(rng.integers(len(rows)))]))
        if len(out) == n:
            break
    return np.array(sorted(out), np.int64)


def mix_windows(clips: Sequence[np.ndarray], labels: np.ndarray, backgrounds: Sequence[np.ndarray], *,
                n: int, sr: int, snr_db: tuple[float, float] = (-10.0, 15.0), seed: int = 0,
                window_s: float = 5.0, min_overlap_s: float = 0.3, max_calls: int = 3,
                p_empty: float = 0.15, p_noise: float = 0.3, noise_beta: tuple[float, float] = (0.0, 2.0),
                bg_dbfs: tuple[float, float] = (-50.0, -32.0), snr_fmin: float = 500.0,
                fade_s: float = 0.02, return_events: bool = False):
    """``n`` synthetic field windows: ``(audio [n, window_s*sr] float32, labels [n, n_species] float32)``.

    Per window: a background (a random ``window_s`` stretch of a random entry of ``backgrounds``,
    randomly time-reversed, or with probability ``p_noise`` -- always if ``backgrounds`` is empty --
    coloured noise with exponent drawn from ``noise_beta``) scaled to an RMS drawn from ``bg_dbfs``;
    then, unless the window is left empty (probability ``p_empty``), 1..``max_calls`` calls: a random
    clip at a random offset (it may hang over either window edge, keeping at least ``min_overlap_s``
    of its samples inside), scaled to an SNR drawn uniformly from ``snr_db`` (power of the clip's
    active samples vs the background window, both high-passed at ``snr_fmin``), with ``fade_s``
    fades at the clip's own ends. The mix is scaled down if its peak would exceed 0.98 (SNRs kept).

    Labels: a window gets clip ``c``'s labels (``labels[c]``, multi-hot or soft) if at least
    ``min(min_overlap_s, half of the clip's active time)`` of the clip's active audio
    (:func:`activity_mask`) lies inside the window; several calls combine with max.

    ``return_events=True`` adds a list of dicts (``row``, ``clip``, ``offset`` in samples, may be
    negative, ``snr_db``, ``gain``, ``overlap_s`` active seconds inside, ``labelled``) and the
    scaled backgrounds ``[n, window_s*sr]``: ``(audio, labels, events, backgrounds)``.
    Deterministic for a given ``seed``.
    """
    labels = np.asarray(labels, dtype=np.float32)
    if labels.ndim != 2 or len(labels) != len(clips):
        raise ValueError(f"labels must be [n_clips={len(clips)}, n_species], got {labels.shape}")
    if not len(clips):
        raise ValueError("no clips to mix")
    rng = np.random.default_rng(seed)
    w = int(round(window_s * sr))
    clips = [np.asarray(c, np.float32) for c in clips]
    masks = [sample_mask(activity_mask(c, sr), c.size, sr) for c in clips]
    hp_clips = [highpass(c, sr, snr_fmin) for c in clips]
    call_pow = [power(h[m]) if m.any() else power(h) for h, m in zip(hp_clips, masks)]
    bgs = [np.asarray(b, np.float32) for b in backgrounds if np.asarray(b).size > 0]
    fades = [_fade(c.size, sr, fade_s) for c in clips]
    min_in = int(round(min_overlap_s * sr))

    audio = np.zeros((n, w), np.float32)
    out_bg = np.zeros((n, w), np.float32) if return_events else None
    y = np.zeros((n, labels.shape[1]), np.float32)
    events: list[dict] = []
    for i in range(n):
        # background
        if not bgs or rng.random() < p_noise:
            bg = coloured_noise(w, beta=float(rng.uniform(*noise_beta)), rng=rng)
        else:
            src = bgs[int(rng.integers(len(bgs)))]
            if src.size >= w:
                s = int(rng.integers(src.size - w + 1))
                bg = src[s:s + w].copy()
            else:
                bg = np.resize(src, w).astype(np.float32)
            if rng.random() < 0.5:
                bg = bg[::-1].copy()
        r = np.sqrt(power(bg))
        level = 10 ** (rng.uniform(*bg_dbfs) / 20.0)
        bg = (bg * (level / r if r > 0 else 0.0)).astype(np.float32)
        bg_pow = power(highpass(bg, sr, snr_fmin))
        mix = bg.copy()
        n_calls = 0 if rng.random() < p_empty else int(rng.integers(1, max_calls + 1))
        for _ in range(n_calls):
            c = int(rng.integers(len(clips)))
            clip, m = clips[c], masks[c]
            L = clip.size
            keep = min(min_in, L)
            off = int(rng.integers(keep - L, w - keep + 1))  # clip spans [off, off + L)
            snr = float(rng.uniform(*snr_db))
            gain = np.sqrt(bg_pow * 10 ** (snr / 10.0) / call_pow[c]) if call_pow[c] > 0 else 0.0
            a, b = max(0, off), min(w, off + L)
            if b <= a:
                continue
            mix[a:b] += (gain * clip[a - off:b - off] * fades[c][a - off:b - off]).astype(np.float32)
            act_in = float(m[a - off:b - off].sum()) / sr
            act_all = float(m.sum()) / sr
            need = min(min_overlap_s, 0.5 * act_all)
            lab = act_all > 0 and act_in >= need - 1e-9
            if lab:
                y[i] = np.maximum(y[i], labels[c])
            if return_events:
                events.append({"row": i, "clip": c, "offset": off, "snr_db": snr, "gain": float(gain),
                               "overlap_s": act_in, "labelled": bool(lab)})
        peak = float(np.abs(mix).max())
        if peak > 0.98:
            s = 0.98 / peak
            mix *= s
            bg = bg * s
            if return_events:
                for e in events:
                    if e["row"] == i:
                        e["gain"] *= s
        audio[i] = mix
        if return_events:
            out_bg[i] = bg
    if return_events:
        return audio, y, events, out_bg
    return audio, y


def frame_targets(events: list[dict], clips: Sequence[np.ndarray], labels: np.ndarray, *, n: int, sr: int,
                  window_s: float = 5.0, hop: int = 512) -> np.ndarray:
    """Frame-level targets of windows made by :func:`mix_windows` (``return_events=True``):
    [n, n_frames, n_species] float32, 1 where a labelled call's active audio covers the frame
    (frame ``j`` centred on sample ``j * hop``, as in :func:`vocalprint.audio.mel.logmel`)."""
    w = int(round(window_s * sr))
    t = 1 + w // hop
    out = np.zeros((n, t, labels.shape[1]), np.float32)
    centres = np.minimum(np.arange(t) * hop, w - 1)
    cache: dict[int, np.ndarray] = {}
    for e in events:
        if not e["labelled"]:
            continue
        c = e["clip"]
        if c not in cache:
            cache[c] = sample_mask(activity_mask(clips[c], sr), len(clips[c]), sr)
        m = cache[c]
        pos = centres - e["offset"]
        ok = (pos >= 0) & (pos < len(m))
        on = np.zeros(t, bool)
        on[ok] = m[pos[ok]]
        out[e["row"], on] = np.maximum(out[e["row"], on], labels[c])
    return out


__all__ = ["activity_mask", "coloured_noise", "frame_targets", "highpass", "mix_windows", "pick_clips", "power",
           "quiet_segments", "sample_mask"]
