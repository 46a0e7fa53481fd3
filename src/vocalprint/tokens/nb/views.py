"""The views of ``tokens-nb``: which codebooks (front end, Mel bands, K, seed, weight), the shared-STFT
front ends, and a view's frame features and tokens."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from vocalprint.config.nb import NBConfig

if TYPE_CHECKING:  # pragma: no cover
    from vocalprint.config import MelConfig

VIEW_NAMES = ("logmel", "pcen", "pcen1", "subbands")


@dataclass(frozen=True)
class View:
    name: str  # file stem: logmel, pcen, pcen1, subbands0..3
    frontend: str  # logmel | pcen
    lo: int  # Mel bands [lo, hi)
    hi: int
    k: int
    seed: int
    weight: float


def views(cfg: NBConfig, n_mels: int) -> list[View]:
    """The codebooks of ``cfg.views`` (``subbands`` is four codebooks on quarter band groups)."""
    out = []
    for v in cfg.views:
        if v == "logmel":
            out.append(View("logmel", "logmel", 0, n_mels, cfg.k, cfg.seed, 1.0))
        elif v == "pcen":
            out.append(View("pcen", "pcen", 0, n_mels, cfg.k, cfg.seed, 1.0))
        elif v == "pcen1":
            out.append(View("pcen1", "pcen", 0, n_mels, cfg.k, cfg.seed + 1, 1.0))
        elif v == "subbands":
            g = n_mels // 4
            out += [View(f"subbands{i}", "logmel", i * g, (i + 1) * g, max(2, cfg.k // 4), cfg.seed, 0.5)
                    for i in range(4)]
        else:
            from vocalprint.config import ConfigError

            raise ConfigError(f"nb.views: unknown view {v!r}; choose from {', '.join(VIEW_NAMES)}")
    if not out:
        from vocalprint.config import ConfigError

        raise ConfigError("nb.views: at least one view is needed")
    if len({v.name for v in out}) != len(out):
        from vocalprint.config import ConfigError

        raise ConfigError(f"nb.views: a view is listed twice in {cfg.views}")
    return out


def tokens_cfg(v: View, cfg: NBConfig):
    """The :class:`~vocalprint.config.TokensConfig` of view ``v``'s codebook and frame features."""
    from vocalprint.config import TokensConfig

    return TokensConfig(k=v.k, frame_norm="standardize", median_sub=True, pca_dim=0,
                        sample_frames=cfg.sample_frames, seed=v.seed)


def view_front_ends(vs: list[View]) -> tuple[str, ...]:
    """The front ends (``logmel``, ``pcen``, in that order) the views ``vs`` read."""
    return tuple(f for f in ("logmel", "pcen") if any(v.frontend == f for v in vs))


def front_ends(x: np.ndarray, *, sr: int, cfg: "MelConfig", which=("logmel", "pcen")) -> dict[str, np.ndarray]:
    """dB log-Mel (as :func:`vocalprint.audio.mel.logmel` with ``frontend="logmel"``) and/or PCEN
    (as with ``frontend="pcen"``) frames [t, n_mels] float32 of ``x``, from one shared STFT
    (:func:`vocalprint.audio.stft.mel_power`, as ``logmel`` computes it)."""
    from vocalprint.audio.mel import mel_basis
    from vocalprint.audio.stft import mel_power

    x = np.asarray(x, np.float32)
    if x.size < cfg.n_fft // 2 + 1:
        x = np.pad(x, (0, cfg.n_fft // 2 + 1 - x.size))
    s = mel_power(x, sr=sr, basis=mel_basis(sr, cfg), n_fft=cfg.n_fft, hop=cfg.hop)  # [t, n_mels]
    out = {}
    if "logmel" in which:
        out["logmel"] = np.ascontiguousarray(10.0 * np.log10(np.maximum(s, 1e-10)), dtype=np.float32)
    if "pcen" in which:
        from vocalprint.audio.pcen import pcen

        out["pcen"] = pcen(s, sr=sr, hop=cfg.hop)
    return out


def features(frames: np.ndarray, v: View, tcfg) -> np.ndarray:
    """View ``v``'s codebook features of front-end frames [t, n_mels]: its bands, normalised as ``tcfg``."""
    from vocalprint.tokens.codebook import frame_features

    return frame_features(np.asarray(frames, np.float32)[:, v.lo:v.hi], cfg=tcfg)


def view_tokens(fe: dict[str, np.ndarray], vs: list[View], cfg: NBConfig, nearest: dict) -> list[np.ndarray]:
    """Token ids [t] uint16 of every view of ``vs`` from front-end frames ``fe`` (front end ->
    [t, n_mels], float16 as the stage stores them, or float32, rounded to float16 here): for each
    view the nearest centroid (``nearest[v.name]``, a :class:`~vocalprint.tokens.codebook.Nearest`)
    of its :func:`features`. The float16 rounding and the band medians are computed once per front
    end and the features once per front end and band range (``pcen`` and ``pcen1`` share theirs),
    by the kernels of :mod:`vocalprint.tokens.halfframes`: within 2e-6 of :func:`features`' own."""
    from vocalprint.tokens.halfframes import half_band_medians, round_half, standardised

    half: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    feats: dict[tuple, np.ndarray] = {}
    out = []
    for v in vs:
        tcfg = tokens_cfg(v, cfg)
        if not (tcfg.median_sub and tcfg.frame_norm == "standardize"):  # pragma: no cover - tokens_cfg's constants
            raise ValueError("view_tokens shares median-centred, standardised features only")
        x = np.asarray(fe[v.frontend])
        if not len(x):
            out.append(np.zeros(0, np.uint16))
            continue
        if v.frontend not in half:
            x16 = x if x.dtype == np.float16 else round_half(np.asarray(x, np.float32)).view(np.float16)
            half[v.frontend] = x16, half_band_medians(x16)
        key = (v.frontend, v.lo, v.hi)
        if key not in feats:
            feats[key] = standardised(*half[v.frontend], v.lo, v.hi)
        out.append(nearest[v.name](feats[key]))
    return out
