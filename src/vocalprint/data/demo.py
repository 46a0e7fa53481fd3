"""Deterministic synthetic dataset in the BirdCLEF+ 2025 competition layout.

:func:`make_demo` writes a small, fully synthetic data set that mimics the
files of the Kaggle *BirdCLEF+ 2025* competition, so that the whole pipeline
(and its tests) can run without downloading the real data::

    out_dir/
        taxonomy.csv               primary_label,inat_taxon_id,scientific_name,common_name,class_name
        train.csv                  BirdCLEF 2025 train metadata (one row per focal clip)
        train_audio/<label>/<label>_<NNN>.ogg     3-20 s focal clips (32 kHz mono OGG Vorbis)
        train_soundscapes/<name>.ogg              60 s unlabeled field-like recordings
        test_soundscapes/<name>.ogg               60 s labelled recordings (0-3 species each)
        solution.csv               row_id + one 0/1 column per species (5-s windows)
        sample_submission.csv      same shape as solution.csv, all 0.0

Every species gets one of five call generators (FM whistle, trill, harmonic
stack, frog-like pulse train, broadband insect buzz) with species-specific
parameters plus per-call natural variation (pitch, tempo, duration).  The
species catalogue (:func:`species_catalog`) depends only on ``n_species``;
``seed`` drives everything that is sampled (noise, call placement, variation,
metadata jitter).  The same seed gives byte-identical CSVs and identical
decoded audio (the OGG container bytes themselves may differ, because
libsndfile picks a random Ogg stream serial number).

Run as a script::

    python -m vocalprint.data.demo OUT_DIR [--seed N]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd
import soundfile as sf
from scipy import fft as sp_fft

__all__ = [
    "CALL_TYPES",
    "CallEvent",
    "SpeciesSpec",
    "TRAIN_COLUMNS",
    "TAXONOMY_COLUMNS",
    "WINDOW_S",
    "SOUNDSCAPE_S",
    "MIN_OVERLAP_S",
    "main",
    "make_demo",
    "species_catalog",
    "synth_call",
    "window_labels",
]

logger = logging.getLogger(__name__)

#: The five call generators, in the order they are assigned to species.
CALL_TYPES: tuple[str, ...] = ("whistle", "trill", "harmonic", "pulse", "buzz")
#: Length of a labelled window in seconds (BirdCLEF scores 5-s windows).
WINDOW_S: int = 5
#: Length of every soundscape in seconds.
SOUNDSCAPE_S: int = 60
#: A call counts for a window iff at least this many seconds of it overlap the window.
MIN_OVERLAP_S: float = 0.3

TAXONOMY_COLUMNS: tuple[str, ...] = (
    "primary_label", "inat_taxon_id", "scientific_name", "common_name", "class_name",
)
TRAIN_COLUMNS: tuple[str, ...] = (
    "primary_label", "secondary_labels", "type", "filename", "collection", "rating", "url",
    "latitude", "longitude", "scientific_name", "common_name", "author", "license",
)

_MAX_SPECIES = 96
_PEAK = 0.95
_GREEK = (
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
    "lambda", "mu", "nu", "xi", "omicron", "pi", "rho", "sigma", "tau", "upsilon", "phi",
    "chi", "psi", "omega",
)
_EPITHET_SUFFIX = ("", "oides", "ensis", "ina")
_ADJECTIVES = (
    "Amber", "Banded", "Coastal", "Dusky", "Eastern", "Fiery", "Golden", "Hooded", "Ivory",
    "Jade", "Keeled", "Lesser", "Montane", "Northern", "Olive", "Pale", "Quiet", "Rufous",
    "Spotted", "Tawny", "Umber", "Velvet", "Western", "Yellow",
)
_PREFIX = {"Aves": "synbird", "Amphibia": "synfrog", "Insecta": "syninsect", "Mammalia": "synmammal"}
# Catalogue constants (home regions, taxon ids) are drawn from this fixed seed so the
# taxonomy does not depend on the user's seed.
_CATALOG_SEED = 20250


# --------------------------------------------------------------------------- species


@dataclass(frozen=True)
class SpeciesSpec:
    """One synthetic species.

    Attributes:
        index: position in generation order (0-based; the taxonomy is sorted by label).
        primary_label: short lowercase code, e.g. ``"synbird01"``.
        call_type: one of :data:`CALL_TYPES`.
        class_name: ``Aves``, ``Amphibia``, ``Insecta`` or ``Mammalia``.
        scientific_name: invented binomial, e.g. ``"Synthetica alpha"`` (unique).
        common_name: invented English name (unique).
        inat_taxon_id: invented integer id.
        params: generator parameters (frequencies in Hz, durations in s, rates in Hz).
        band_hz: ``(lo, hi)`` frequency band in Hz holding the bulk of the call energy,
            including the per-call pitch variation.
        home: ``(latitude, longitude)`` in degrees of the species' home region.
        call_gap_s: typical silence between consecutive calls of a bout, in seconds.
    """

    index: int
    primary_label: str
    call_type: str
    class_name: str
    scientific_name: str
    common_name: str
    inat_taxon_id: int
    params: Mapping[str, float | str] = field(hash=False)
    band_hz: tuple[float, float]
    home: tuple[float, float]
    call_gap_s: float


def _geo(lo: float, hi: float, u: float) -> float:
    """Geometric interpolation between ``lo`` and ``hi`` at ``u`` in [0, 1]."""
    return float(lo * (hi / lo) ** u)


def _type_params(call_type: str, k: int, m: int) -> tuple[dict, tuple[float, float], str, float]:
    """Parameters of the ``k``-th of ``m`` species sharing ``call_type``.

    Variants are spread evenly over the allowed range so that species of the same
    call type differ clearly in band and/or rate.

    Returns:
        ``(params, band_hz, class_name, call_gap_s)``.
    """
    u = k / (m - 1) if m > 1 else 0.5
    if call_type == "whistle":
        fc = _geo(1900.0, 6400.0, u)
        shape = ("up", "sine", "down")[k % 3]
        span = 1.22
        if shape == "up":
            f0, f1 = fc / span, fc * span
        elif shape == "down":
            f0, f1 = fc * span, fc / span
        else:
            f0 = f1 = fc
        params = {"shape": shape, "f_start": f0, "f_end": f1, "fm_rate": _geo(6.0, 14.0, u),
                  "fm_depth": 0.12 * fc, "dur": 0.75 - 0.4 * u}
        lo = min(f0, f1, fc * 0.88) * 0.92
        hi = max(f0, f1, fc * 1.12) * 1.08
        return params, (lo, hi), "Aves", 0.5
    if call_type == "trill":
        f_note = _geo(5600.0, 3000.0, u)
        params = {"f_note": f_note, "rate": _geo(8.0, 38.0, u), "duty": 0.55 + 0.15 * u,
                  "chirp": 0.12, "dur": 1.5 - 0.6 * u}
        return params, (f_note * 0.94 * 0.92, f_note * 1.06 * 1.08), "Aves", 0.8
    if call_type == "harmonic":
        f0 = _geo(480.0, 1400.0, u)
        n_harm = int(round(6 - 3 * u))
        params = {"f0": f0, "n_harm": n_harm, "rolloff": 0.6 + 0.6 * u, "dur": 0.45 - 0.2 * u,
                  "rough": 0.25 * (1.0 - u)}
        cls = "Aves" if k % 2 == 0 else "Mammalia"
        return params, (f0 * 0.85, f0 * min(n_harm, 3) * 1.15), cls, 0.35
    if call_type == "pulse":
        fc = _geo(380.0, 1100.0, u)
        params = {"f_carrier": fc, "pulse_rate": _geo(4.0, 14.0, u), "decay": 0.035 - 0.02 * u,
                  "dur": 1.8 - 0.8 * u}
        return params, (fc * 0.85, fc * 1.15), "Amphibia", 0.9
    if call_type == "buzz":
        fc = _geo(5200.0, 9400.0, u)
        lo, hi = fc * 0.82, fc * 1.18
        params = {"f_lo": lo, "f_hi": hi, "am_rate": _geo(55.0, 190.0, u), "am_depth": 0.9,
                  "dur": 2.5 - 1.2 * u}
        return params, (lo * 0.92, hi * 1.08), "Insecta", 1.0
    raise ValueError(f"unknown call type {call_type!r}")


def species_catalog(n_species: int = 12) -> list[SpeciesSpec]:
    """Build the species catalogue (independent of the data seed).

    Species ``i`` gets call type ``CALL_TYPES[i % 5]``; the ``k``-th species of a
    type gets parameters spread over that type's range (different bands / rates).

    Args:
        n_species: number of species, 1..96.

    Returns:
        ``n_species`` specs sorted by ``primary_label`` (taxonomy / submission order).
    """
    if not 1 <= n_species <= _MAX_SPECIES:
        raise ValueError(f"n_species must be in 1..{_MAX_SPECIES}, got {n_species}")
    counts = {t: len(range(j, n_species, len(CALL_TYPES))) for j, t in enumerate(CALL_TYPES)}
    nouns = {"whistle": "Whistler", "trill": "Triller", "pulse": "Pulse Frog", "buzz": "Buzz Cricket"}
    genera = {"whistle": "Synthetica", "trill": "Trillomimus", "pulse": "Fictohyla",
              "buzz": "Simulacris"}
    rng = np.random.default_rng(_CATALOG_SEED)
    homes = np.column_stack([rng.uniform(-25.0, 20.0, _MAX_SPECIES),
                             rng.uniform(-85.0, -40.0, _MAX_SPECIES)])
    specs = []
    for i in range(n_species):
        call_type = CALL_TYPES[i % len(CALL_TYPES)]
        k = i // len(CALL_TYPES)
        params, band, cls, gap = _type_params(call_type, k, counts[call_type])
        if call_type == "harmonic":
            genus = "Corvimimus" if cls == "Aves" else "Fictocebus"
            noun = "Cawbird" if cls == "Aves" else "Barker"
        else:
            genus, noun = genera[call_type], nouns[call_type]
        epithet = _GREEK[i % len(_GREEK)] + _EPITHET_SUFFIX[i // len(_GREEK)]
        adjective = _ADJECTIVES[i % len(_ADJECTIVES)]
        if i >= len(_ADJECTIVES):
            adjective += f" {i // len(_ADJECTIVES) + 1}"
        specs.append(SpeciesSpec(
            index=i,
            primary_label=f"{_PREFIX[cls]}{i + 1:02d}",
            call_type=call_type,
            class_name=cls,
            scientific_name=f"{genus} {epithet}",
            common_name=f"{adjective} {noun}",
            inat_taxon_id=910000 + 137 * i,
            params=MappingProxyType(params),
            band_hz=(float(band[0]), float(band[1])),
            home=(float(homes[i, 0]), float(homes[i, 1])),
            call_gap_s=gap,
        ))
    return sorted(specs, key=lambda s: s.primary_label)


# --------------------------------------------------------------------------- synthesis


def _fade(x: np.ndarray, sr: int, ms: float = 8.0) -> np.ndarray:
    """Apply raised-cosine fade-in/out of ``ms`` milliseconds in place; returns ``x``."""
    n = min(int(sr * ms / 1000.0), len(x) // 2)
    if n > 1:
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, n))
        x[:n] *= ramp
        x[-n:] *= ramp[::-1]
    return x


def _phase(freq: np.ndarray, sr: int, phi0: float = 0.0) -> np.ndarray:
    """Instantaneous phase (rad) of a tone with per-sample frequency ``freq`` (Hz)."""
    return phi0 + 2.0 * np.pi * np.cumsum(freq) / sr


def _band_noise(rng: np.random.Generator, n: int, lo: float, hi: float, sr: int) -> np.ndarray:
    """Unit-RMS Gaussian noise of ``n`` samples band-limited to ``[lo, hi]`` Hz."""
    nf = sp_fft.next_fast_len(n, real=True)
    spec = sp_fft.rfft(rng.standard_normal(nf))
    f = sp_fft.rfftfreq(nf, 1.0 / sr)
    # soft (raised-cosine) band edges, 10 % of the band width
    edge = 0.1 * (hi - lo)
    gain = np.clip(np.minimum((f - lo) / edge + 0.5, (hi - f) / edge + 0.5), 0.0, 1.0)
    gain = 0.5 - 0.5 * np.cos(np.pi * gain)
    y = sp_fft.irfft(spec * gain, nf)[:n]
    return y / (np.sqrt(np.mean(y * y)) + 1e-12)


def synth_call(spec: SpeciesSpec, rng: np.random.Generator, sr: int = 32000,
               max_len_s: float | None = None) -> np.ndarray:
    """Synthesise one call of ``spec`` with natural per-call variation.

    Pitch varies by up to about +-8 %, tempo (note / pulse / AM rate) by +-8-10 %,
    duration by +-15-25 %.

    Args:
        spec: the species.
        rng: random generator (drives the per-call variation).
        sr: sample rate in Hz.
        max_len_s: optional cap on the call length in seconds.

    Returns:
        float64 array of shape ``(n_samples,)`` with unit RMS over the whole call,
        faded in and out (no clicks).
    """
    p = spec.params
    pitch = 1.0 + rng.uniform(-0.08, 0.08)
    tempo = 1.0 + rng.uniform(-0.08, 0.08)
    dur = float(p["dur"]) * (1.0 + rng.uniform(-0.18, 0.18))
    if max_len_s is not None:
        dur = min(dur, max_len_s)
    n = max(int(dur * sr), 64)
    t = np.arange(n) / sr
    T = n / sr
    ct = spec.call_type
    if ct == "whistle":
        if p["shape"] == "sine":
            phi = rng.uniform(0, 2 * np.pi)
            freq = float(p["f_start"]) + float(p["fm_depth"]) * np.sin(
                2 * np.pi * float(p["fm_rate"]) * tempo * t + phi)
        else:
            f0, f1 = float(p["f_start"]), float(p["f_end"])
            freq = f0 * (f1 / f0) ** (t / T)
        freq = freq * pitch
        ph = _phase(freq, sr, rng.uniform(0, 2 * np.pi))
        x = np.sin(ph) + 0.08 * np.sin(2 * ph)
        x *= np.sin(np.pi * t / T) ** 0.6
    elif ct == "trill":
        rate = float(p["rate"]) * tempo
        duty = float(p["duty"])
        frac = (t * rate + rng.uniform(0, 0.2)) % 1.0
        pos = np.minimum(frac / duty, 1.0)
        env = np.where(frac < duty, np.sin(np.pi * pos) ** 2, 0.0)
        freq = float(p["f_note"]) * pitch * (1.0 + float(p["chirp"]) * (0.5 - pos))
        x = np.sin(_phase(freq, sr, rng.uniform(0, 2 * np.pi))) * env
        x *= 0.6 + 0.4 * np.sin(np.pi * t / T)  # slight crescendo-decrescendo over the trill
    elif ct == "harmonic":
        f0 = float(p["f0"]) * pitch
        # rise-fall pitch contour (+-4 %) plus slight vibrato
        contour = 1.0 + 0.04 * np.sin(np.pi * t / T) - 0.02 + 0.01 * np.sin(2 * np.pi * 23 * t)
        ph = _phase(f0 * contour, sr, rng.uniform(0, 2 * np.pi))
        n_harm = int(p["n_harm"])
        h = np.arange(1, n_harm + 1)[:, None]
        amps = h[:, 0].astype(float) ** (-float(p["rolloff"]))
        x = (amps[:, None] * np.sin(h * ph[None, :])).sum(axis=0)
        rough = float(p["rough"])
        if rough > 0:  # harsh, caw-like amplitude jitter
            x *= 1.0 + rough * _band_noise(rng, n, 30.0, 120.0, sr)
        att, rel = min(0.02, T / 4), min(0.08, T / 3)
        env = np.minimum(np.minimum(t / att, 1.0), np.minimum((T - t) / rel, 1.0))
        x *= env
    elif ct == "pulse":
        fc = float(p["f_carrier"]) * pitch
        rate = float(p["pulse_rate"]) * tempo
        decay = float(p["decay"])
        tp = ((t * rate + 0.9) % 1.0) / rate  # time since the last pulse onset (s)
        env = np.minimum(tp / 0.003, 1.0) * np.exp(-tp / decay)
        ph = _phase(np.full(n, fc), sr, rng.uniform(0, 2 * np.pi))
        x = (np.sin(ph) + 0.3 * np.sin(2 * ph)) * env
        x *= np.sin(np.pi * t / T) ** 0.5  # bout envelope
    elif ct == "buzz":
        lo, hi = float(p["f_lo"]) * pitch, min(float(p["f_hi"]) * pitch, 0.48 * sr)
        am = float(p["am_rate"]) * tempo
        x = _band_noise(rng, n, lo, hi, sr)
        mod = 0.5 * (1.0 + float(p["am_depth"]) * np.sin(2 * np.pi * am * t))
        x *= mod ** 2
        x *= np.minimum(np.minimum(t / 0.05, 1.0), np.minimum((T - t) / 0.05, 1.0))
    else:  # pragma: no cover - guarded by species_catalog
        raise ValueError(f"unknown call type {ct!r}")
    _fade(x, sr)
    return x / (np.sqrt(np.mean(x * x)) + 1e-12)


def _background(rng: np.random.Generator, n: int, sr: int, rms: float) -> np.ndarray:
    """Field-like background noise of ``n`` samples and RMS ``rms``.

    A random mixture of white, pink and brown noise (one colour dominates), high-passed
    at ~60 Hz, with slow "wind" amplitude fluctuation.
    """
    nf = sp_fft.next_fast_len(n, real=True)
    spec = sp_fft.rfft(rng.standard_normal(nf))
    f = sp_fft.rfftfreq(nf, 1.0 / sr)
    w = rng.dirichlet([1.0, 1.0, 1.0]) + 0.02
    w[rng.integers(3)] += 1.0  # one colour dominates
    # amplitude responses of white (1), pink (f^-1/2) and brown (f^-1) noise, each scaled
    # to unit mean power so the weights are power-comparable
    brown = 1000.0 / np.maximum(f, 60.0)
    pink = np.sqrt(brown)
    gain = (w[0] + w[1] / np.sqrt(np.mean(brown)) * pink
            + w[2] / np.sqrt(np.mean(brown * brown)) * brown)
    gain *= np.clip((f - 20.0) / 40.0, 0.0, 1.0)  # high-pass ramp 20-60 Hz
    y = sp_fft.irfft(spec * gain, nf)[:n]
    # slow wind-like fluctuation (0.05-0.5 Hz), depth up to 30 %
    t = np.arange(n) / sr
    depth = rng.uniform(0.0, 0.3)
    fw = rng.uniform(0.05, 0.5)
    y *= 1.0 + depth * np.sin(2 * np.pi * fw * t + rng.uniform(0, 2 * np.pi))
    return y * (rms / (np.sqrt(np.mean(y * y)) + 1e-12))


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


@dataclass(frozen=True)
class CallEvent:
    """One call placed in a recording: species label, onset/offset in s, SNR in dB."""

    label: str
    onset_s: float
    offset_s: float
    snr_db: float


def _add_call(y: np.ndarray, call: np.ndarray, start: int, noise_rms: float, snr_db: float,
              label: str, sr: int) -> CallEvent:
    """Mix ``call`` (unit RMS) into ``y`` at sample ``start`` with the given SNR.

    SNR is call RMS (over the call's extent) relative to the full-band background RMS.
    """
    end = min(start + len(call), len(y))
    y[start:end] += call[: end - start] * (noise_rms * 10.0 ** (snr_db / 20.0))
    return CallEvent(label, start / sr, end / sr, float(snr_db))


def _peak_normalise(y: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(y))) if len(y) else 0.0
    if peak > _PEAK:
        y = y * (_PEAK / peak)
    return y


def _write_ogg(path: Path, y: np.ndarray, sr: int) -> None:
    sf.write(path, y.astype(np.float32), sr, format="OGG", subtype="VORBIS")


def window_labels(events: Sequence[CallEvent], labels: Sequence[str],
                  duration_s: int = SOUNDSCAPE_S, window_s: int = WINDOW_S,
                  min_overlap_s: float = MIN_OVERLAP_S) -> np.ndarray:
    """0/1 label matrix for consecutive windows.

    Args:
        events: calls with exact onset/offset in seconds.
        labels: column order (species codes).
        duration_s: recording length in seconds.
        window_s: window length in seconds.
        min_overlap_s: a species is positive in a window iff one of its calls
            overlaps it by at least this many seconds.

    Returns:
        int array of shape ``(duration_s // window_s, len(labels))``.
    """
    n_win = duration_s // window_s
    out = np.zeros((n_win, len(labels)), dtype=np.int64)
    col = {lab: j for j, lab in enumerate(labels)}
    starts = np.arange(n_win) * window_s
    for ev in events:
        ov = np.minimum(ev.offset_s, starts + window_s) - np.maximum(ev.onset_s, starts)
        # small tolerance so float round-off cannot flip an exact 0.3-s overlap
        out[ov >= min_overlap_s - 1e-9, col[ev.label]] = 1
    return out


# --------------------------------------------------------------------------- file jobs


def _train_clip(path: Path, spec: SpeciesSpec, specs: Sequence[SpeciesSpec], seed: int,
                j: int, sr: int) -> dict:
    """Write one focal clip; returns its train.csv row."""
    rng = np.random.default_rng([seed, 1, spec.index, j])
    dur = rng.uniform(3.0, 9.0) if rng.random() < 0.8 else rng.uniform(9.0, 20.0)
    n = int(round(dur * sr))
    noise_rms = _log_uniform(rng, 0.003, 0.03)
    y = _background(rng, n, sr, noise_rms)
    snr = rng.uniform(5.0, 20.0)
    # a bout of calls: first call early, then species-typical gaps until the clip is full
    t0 = rng.uniform(0.05, 0.25) * dur
    n_calls = 0
    while True:
        call = synth_call(spec, rng, sr, max_len_s=dur - 0.2)
        start = int(t0 * sr)
        if n_calls and start + len(call) > n:
            break
        start = min(start, n - len(call))
        _add_call(y, call, start, noise_rms,
                  float(np.clip(snr + rng.uniform(-2, 2), 5, 20)), spec.primary_label, sr)
        n_calls += 1
        t0 = (start + len(call)) / sr + spec.call_gap_s * rng.uniform(0.5, 3.0)
    secondary = []
    if len(specs) > 1 and rng.random() < 0.15:
        other = [s for s in specs if s.primary_label != spec.primary_label]
        sec = other[int(rng.integers(len(other)))]
        for _ in range(int(rng.integers(1, 3))):
            call = synth_call(sec, rng, sr, max_len_s=dur - 0.2)
            start = int(rng.integers(0, n - len(call) + 1))
            _add_call(y, call, start, noise_rms, rng.uniform(-6.0, 0.0), sec.primary_label, sr)
        secondary.append(sec.primary_label)
    _write_ogg(path, _peak_normalise(y), sr)
    rating = float(np.clip(np.round(2 * (1.0 + 4.0 * (snr - 5.0) / 15.0 + rng.normal(0, 0.5))) / 2,
                           0.0, 5.0))
    lat = round(spec.home[0] + rng.normal(0.0, 1.0), 4)
    lon = round(spec.home[1] + rng.normal(0.0, 1.0), 4)
    rel = f"{spec.primary_label}/{path.name}"
    return {
        "primary_label": spec.primary_label,
        "secondary_labels": repr(secondary),
        "type": "['song']" if spec.call_type in ("whistle", "trill") else "['call']",
        "filename": rel,
        "collection": "XC",
        "rating": rating,
        "url": f"https://example.org/vocalprint-demo/{rel}",
        "latitude": lat,
        "longitude": lon,
        "scientific_name": spec.scientific_name,
        "common_name": spec.common_name,
        "author": "demo",
        "license": "CC BY 4.0",
    }


def _soundscape(path: Path, rng: np.random.Generator, sr: int,
                occurrences: Sequence[tuple[SpeciesSpec, float]], n_bouts_max: int,
                snr_range: tuple[float, float]) -> list[CallEvent]:
    """Write one 60-s soundscape with bouts of calls; returns the exact call events.

    Args:
        occurrences: ``(species, base SNR in dB)`` pairs present in the file.
        n_bouts_max: each species gets 1..n_bouts_max bouts (1-5 calls each).
        snr_range: per-call SNRs (base +-1.5 dB) are clipped to this range.
    """
    n = SOUNDSCAPE_S * sr
    noise_rms = _log_uniform(rng, 0.004, 0.03)
    y = _background(rng, n, sr, noise_rms)
    events: list[CallEvent] = []
    for spec, snr in occurrences:
        for _ in range(int(rng.integers(1, n_bouts_max + 1))):
            t0 = rng.uniform(0.0, SOUNDSCAPE_S - 1.0)
            for _ in range(int(rng.integers(1, 6))):
                call = synth_call(spec, rng, sr)
                start = int(t0 * sr)
                if start + len(call) > n:
                    break
                call_snr = float(np.clip(snr + rng.uniform(-1.5, 1.5), snr_range[0], snr_range[1]))
                events.append(_add_call(y, call, start, noise_rms, call_snr, spec.primary_label, sr))
                t0 = (start + len(call)) / sr + spec.call_gap_s * rng.uniform(0.5, 2.5)
    _write_ogg(path, _peak_normalise(y), sr)
    return events


def _train_soundscape(path: Path, specs: Sequence[SpeciesSpec], seed: int, i: int,
                      sr: int) -> list[CallEvent]:
    rng = np.random.default_rng([seed, 2, i])
    k = int(rng.integers(2, 6))
    picks = rng.choice(len(specs), size=min(k, len(specs)), replace=False)
    occ = [(specs[int(p)], float(rng.uniform(-10.0, 5.0))) for p in picks]
    return _soundscape(path, rng, sr, occ, n_bouts_max=1, snr_range=(-10.0, 5.0))


def _test_soundscape(path: Path, occ: Sequence[tuple[SpeciesSpec, float]], seed: int, i: int,
                     sr: int) -> list[CallEvent]:
    rng = np.random.default_rng([seed, 3, i])
    return _soundscape(path, rng, sr, occ, n_bouts_max=3, snr_range=(-5.0, 15.0))


def _plan_test(specs: Sequence[SpeciesSpec], n_test: int, seed: int) -> list[list[tuple[SpeciesSpec, float]]]:
    """Species (and base SNR, -5..+15 dB) per test soundscape.

    0-3 species per file, at least one empty file (if ``n_test >= 1``), species
    drawn preferring the least-used ones so that many species are covered.
    """
    rng = np.random.default_rng([seed, 4])
    counts = rng.integers(0, 4, size=n_test)
    if n_test and not np.any(counts == 0):
        counts[int(rng.integers(n_test))] = 0
    used = np.zeros(len(specs))
    plan = []
    for c in counts:
        c = min(int(c), len(specs))
        order = np.lexsort((rng.random(len(specs)), used))  # least used first, random ties
        picks = order[:c]
        used[picks] += 1
        plan.append([(specs[int(p)], float(rng.uniform(-5.0, 15.0))) for p in picks])
    return plan


# --------------------------------------------------------------------------- entry points


def _check_replaceable(out_dir: Path) -> None:
    """Refuse to delete an existing directory that does not look like a demo set."""
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not (out_dir / "taxonomy.csv").is_file() or not (out_dir / "train.csv").is_file():
            raise FileExistsError(
                f"{out_dir} exists, is not empty and does not look like a demo data set "
                "(no taxonomy.csv/train.csv); refusing to delete it")
    elif out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir} exists and is not a directory")


def _write_set(tmp: Path, specs: Sequence[SpeciesSpec], *, seed: int, clips_per_species: int,
               n_train_soundscapes: int, n_test_soundscapes: int, sr: int) -> None:
    """Write the complete data set into the (not yet existing) directory ``tmp``."""
    labels = [s.primary_label for s in specs]
    tmp.mkdir()
    for sub in ("train_audio", "train_soundscapes", "test_soundscapes"):
        (tmp / sub).mkdir()
    for s in specs:
        (tmp / "train_audio" / s.primary_label).mkdir()

    plan = _plan_test(specs, n_test_soundscapes, seed)
    test_stems = [f"demo_test_{i:03d}" for i in range(n_test_soundscapes)]
    train_ss_stems = [f"demo_train_{i:03d}" for i in range(n_train_soundscapes)]
    workers = max(1, min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        # long files first for better load balance; every job has its own seeded RNG,
        # so the result does not depend on scheduling.
        test_jobs = [pool.submit(_test_soundscape, tmp / "test_soundscapes" / f"{stem}.ogg",
                                 plan[i], seed, i, sr) for i, stem in enumerate(test_stems)]
        tss_jobs = [pool.submit(_train_soundscape, tmp / "train_soundscapes" / f"{stem}.ogg",
                                specs, seed, i, sr) for i, stem in enumerate(train_ss_stems)]
        clip_jobs = [pool.submit(_train_clip,
                                 tmp / "train_audio" / s.primary_label / f"{s.primary_label}_{j:03d}.ogg",
                                 s, specs, seed, j, sr)
                     for s in specs for j in range(clips_per_species)]
        test_events = [f.result() for f in test_jobs]
        for f in tss_jobs:
            f.result()
        rows = [f.result() for f in clip_jobs]

    pd.DataFrame(
        [{"primary_label": s.primary_label, "inat_taxon_id": s.inat_taxon_id,
          "scientific_name": s.scientific_name, "common_name": s.common_name,
          "class_name": s.class_name} for s in specs],
        columns=list(TAXONOMY_COLUMNS),
    ).to_csv(tmp / "taxonomy.csv", index=False)
    pd.DataFrame(rows, columns=list(TRAIN_COLUMNS)).to_csv(tmp / "train.csv", index=False)

    n_win = SOUNDSCAPE_S // WINDOW_S
    row_ids = [f"{stem}_{WINDOW_S * (w + 1)}" for stem in test_stems for w in range(n_win)]
    if test_stems:
        y = np.concatenate([window_labels(ev, labels) for ev in test_events])
    else:
        y = np.zeros((0, len(labels)), dtype=np.int64)
    sol = pd.DataFrame(y, columns=labels)
    sol.insert(0, "row_id", row_ids)
    sol.to_csv(tmp / "solution.csv", index=False)
    sub = pd.DataFrame(np.zeros(y.shape, dtype=np.float64), columns=labels)
    sub.insert(0, "row_id", row_ids)
    sub.to_csv(tmp / "sample_submission.csv", index=False)


def make_demo(out_dir: Path, *, seed: int = 0, n_species: int = 12, clips_per_species: int = 6,
              n_train_soundscapes: int = 4, n_test_soundscapes: int = 6, sr: int = 32000) -> Path:
    """Write a synthetic BirdCLEF+ 2025-style data set into ``out_dir``.

    Everything is written into the sibling folder ``<out_dir>.tmp`` first and then
    moved into place with :func:`os.replace` (a previous ``out_dir`` is removed
    first), so an interrupted run never leaves a half-written set.  An existing,
    non-empty ``out_dir`` without ``taxonomy.csv``/``train.csv`` is never deleted
    (:class:`FileExistsError`).

    Args:
        out_dir: target directory (created, parents included).
        seed: data seed; same seed -> byte-identical CSVs and identical decoded audio.
        n_species: number of species (1..96); call types are assigned round-robin.
        clips_per_species: focal clips per species in ``train_audio`` (3-20 s each).
        n_train_soundscapes: unlabeled 60-s files in ``train_soundscapes``.
        n_test_soundscapes: labelled 60-s files in ``test_soundscapes`` (0-3 species
            each, at least one without any call).
        sr: sample rate in Hz of every file (mono OGG Vorbis).

    Returns:
        ``out_dir`` as a :class:`~pathlib.Path`.

    Files: see the module docstring.  ``solution.csv`` has ``12 * n_test_soundscapes``
    rows (``row_id = <stem>_<end second>`` for 5, 10, ..., 60) and one int 0/1 column
    per species in taxonomy order; a species is 1 in a window iff at least 0.3 s of
    one of its calls overlaps the window.
    """
    if clips_per_species < 1 or n_train_soundscapes < 0 or n_test_soundscapes < 0:
        raise ValueError("clips_per_species must be >= 1 and soundscape counts >= 0")
    if sr < 24000:
        raise ValueError("sr must be >= 24000 Hz (insect buzz reaches 12 kHz)")
    out_dir = Path(out_dir)
    specs = species_catalog(n_species)
    _check_replaceable(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        _write_set(tmp, specs, seed=seed, clips_per_species=clips_per_species,
                   n_train_soundscapes=n_train_soundscapes,
                   n_test_soundscapes=n_test_soundscapes, sr=sr)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    if out_dir.exists():
        _check_replaceable(out_dir)
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return out_dir


def main(argv: Sequence[str] | None = None) -> Path:
    """CLI: ``python -m vocalprint.data.demo OUT_DIR [--seed N] [...]``; returns the output dir."""
    ap = argparse.ArgumentParser(prog="python -m vocalprint.data.demo", description=__doc__.split("\n")[0])
    ap.add_argument("out_dir", type=Path, help="directory to (re)create")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-species", type=int, default=12)
    ap.add_argument("--clips-per-species", type=int, default=6)
    ap.add_argument("--n-train-soundscapes", type=int, default=4)
    ap.add_argument("--n-test-soundscapes", type=int, default=6)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    t0 = time.perf_counter()
    out = make_demo(args.out_dir, seed=args.seed, n_species=args.n_species,
                    clips_per_species=args.clips_per_species,
                    n_train_soundscapes=args.n_train_soundscapes,
                    n_test_soundscapes=args.n_test_soundscapes)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    logger.info("demo data set written to %s (%.1f MB) in %.1f s",
                out, size / 1e6, time.perf_counter() - t0)
    return out


if __name__ == "__main__":
    main()
