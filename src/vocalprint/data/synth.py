"""Synthetic sounds of the demo data set: the species catalogue and their calls, and field-like
background noise.

Every species gets one of five call generators (FM whistle, trill, harmonic
stack, frog-like pulse train, broadband insect buzz) with species-specific
parameters plus per-call natural variation (pitch, tempo, duration).  The
full-size synthetic competition (:mod:`vocalprint.data.families`) adds one kind of
call per taxonomic class (:data:`FAMILY_CALL_TYPES`): pulsed frog choruses, stationary
insect drones and low harmonic mammal calls.  The
species catalogue (:func:`species_catalog`) depends only on ``n_species``; the
caller's random generator drives the per-call variation and the noise.
:mod:`vocalprint.data.demo` places these sounds into recordings and writes the set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
from scipy import fft as sp_fft

__all__ = [
    "CALL_TYPES",
    "FAMILY_CALL_TYPES",
    "SpeciesSpec",
    "background",
    "species_catalog",
    "synth_call",
]

#: The five call generators, in the order they are assigned to species.
CALL_TYPES: tuple[str, ...] = ("whistle", "trill", "harmonic", "pulse", "buzz")
#: Call types of the full-size synthetic competition, per taxonomic class: birds keep the tonal
#: sweeps and trills above; amphibians sing pulsed choruses (many overlapping callers repeating
#: trains of short pulses), insects stationary narrow-band drones (seconds long, steady pitch),
#: mammals low harmonic calls (all energy below ~1.5 kHz).
FAMILY_CALL_TYPES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "Aves": ("whistle", "trill"), "Amphibia": ("chorus",), "Insecta": ("drone",), "Mammalia": ("lowcall",)})

_MAX_SPECIES = 96
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
        call_type: one of :data:`CALL_TYPES` (or of :data:`FAMILY_CALL_TYPES`).
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
    elif ct == "chorus":  # several callers, each repeating notes made of short decaying pulses
        fc, rate, decay = float(p["f_carrier"]) * pitch, float(p["pulse_rate"]) * tempo, float(p["decay"])
        x = np.zeros(n)
        for _ in range(1 + int(rng.poisson(float(p["callers"]) - 1.0))):
            note = float(p["note_s"]) * rng.uniform(0.8, 1.2)
            period = note + float(p["note_gap_s"]) * rng.uniform(0.6, 1.4)
            tn = (t + rng.uniform(0.0, period)) % period  # time within this caller's note cycle
            r = rate * rng.uniform(0.92, 1.08)
            tp = (tn * r % 1.0) / r  # time since this caller's last pulse onset
            env = (tn < note) * np.minimum(tp / 0.002, 1.0) * np.exp(-tp / decay)
            ph = 2 * np.pi * fc * rng.uniform(0.96, 1.04) * t + rng.uniform(0, 2 * np.pi)
            x += rng.uniform(0.4, 1.0) * env * (np.sin(ph) + 0.25 * np.sin(2 * ph))
        x *= np.minimum(np.minimum(t / 0.2, 1.0), np.minimum((T - t) / 0.2, 1.0))
    elif ct == "drone":  # stationary: steady pitch (+-2 %), narrow band, seconds long
        fc, bw, tone = float(p["f_center"]) * (1.0 + 0.25 * (pitch - 1.0)), float(p["bw"]), float(p["tone"])
        x = tone * np.sin(2 * np.pi * fc * t + rng.uniform(0, 2 * np.pi))
        x += (1.0 - tone) * _band_noise(rng, n, fc * (1.0 - bw), fc * (1.0 + bw), sr)
        depth = float(p["am_depth"])  # stridulation pulses
        x *= (1.0 - depth * (0.5 + 0.5 * np.sin(2 * np.pi * float(p["am_rate"]) * tempo * t))) ** 2
        x *= np.minimum(np.minimum(t / 0.15, 1.0), np.minimum((T - t) / 0.15, 1.0))
    elif ct == "lowcall":  # low harmonic call: moan (rise-fall), descending howl or rough grunt
        shape = p["shape"]
        if shape == "moan":
            contour = 1.0 + 0.15 * np.sin(np.pi * t / T)
        elif shape == "down":
            contour = 1.2 - 0.35 * t / T
        else:
            contour = 1.0 + 0.05 * np.sin(6 * np.pi * t / T)
        ph = _phase(float(p["f0"]) * pitch * contour, sr, rng.uniform(0, 2 * np.pi))
        x = np.zeros(n)
        for h in range(1, int(p["n_harm"]) + 1):
            x += h ** -float(p["rolloff"]) * np.sin(h * ph)
        if float(p["rough"]) > 0:
            x *= 1.0 + float(p["rough"]) * _band_noise(rng, n, 15.0, 60.0, sr)
        att, rel = min(0.05, T / 4), min(0.2, T / 3)
        x *= np.minimum(np.minimum(t / att, 1.0), np.minimum((T - t) / rel, 1.0))
    else:  # pragma: no cover - guarded by species_catalog
        raise ValueError(f"unknown call type {ct!r}")
    _fade(x, sr)
    return x / (np.sqrt(np.mean(x * x)) + 1e-12)


def background(rng: np.random.Generator, n: int, sr: int, rms: float) -> np.ndarray:
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
