"""The 206 classes of the full-size synthetic competition (:mod:`vocalprint.data.scale`).

Split like BirdCLEF+ 2025: 146 birds (``Aves``), 34 amphibians (``Amphibia``), 17 insects
(``Insecta``) and 9 mammals (``Mammalia``).  Each class has its own kind of call
(:data:`~vocalprint.data.synth.FAMILY_CALL_TYPES`): birds tonal sweeps (``whistle``) and trills,
amphibians pulsed choruses, insects stationary narrow-band drones, mammals low harmonic calls.
The species of a family spread over the family's range: the band evenly, the other parameters
(rate, duration, duty, ...) along a Halton sequence, so neighbours in pitch differ in tempo and
length as well.  The catalogue is fixed (it does not depend on the data seed).
"""
from __future__ import annotations

import functools
from types import MappingProxyType

import numpy as np

from vocalprint.data.synth import _ADJECTIVES, _EPITHET_SUFFIX, _GREEK, _PREFIX, FAMILY_CALL_TYPES, SpeciesSpec

__all__ = ["FAMILY_SIZES", "family_catalog"]

#: Classes per taxonomic class, as in BirdCLEF+ 2025 (206 in total).
FAMILY_SIZES = MappingProxyType({"Aves": 146, "Amphibia": 34, "Insecta": 17, "Mammalia": 9})
_CATALOG_SEED = 20251
_NAMES = {  # call type -> (genus, English noun)
    "whistle": ("Synthetica", "Whistler"), "trill": ("Trillomimus", "Triller"),
    "chorus": ("Chorohyla", "Chorus Frog"), "drone": ("Bombocicada", "Drone Cicada"),
    "lowcall": ("Fictocebus", "Howler"),
}
_MODIFIER = ("", "Little ", "Greater ", "Forest ")


def _halton(i: int, base: int) -> float:
    """Radical inverse of ``i`` (>= 1) in ``base``: a low-discrepancy point in (0, 1)."""
    x, f = 0.0, 1.0 / base
    while i:
        i, d = divmod(i, base)
        x += d * f
        f /= base
    return x


def _geo(lo: float, hi: float, u: float) -> float:
    return float(lo * (hi / lo) ** u)


def _params(call_type: str, k: int, m: int) -> tuple[dict, tuple[float, float], float]:
    """``(params, band_hz, call_gap_s)`` of the ``k``-th of ``m`` species with ``call_type``.

    ``band_hz`` holds the bulk of the call energy including the per-call pitch variation
    (+-8 %; +-2 % for the steady insect drones).
    """
    u = (k + 0.5) / m  # the band, evenly
    v, w, z = _halton(k + 1, 2), _halton(k + 1, 3), _halton(k + 1, 5)
    if call_type == "whistle":
        fc = _geo(1500.0, 8000.0, u)
        shape = ("up", "sine", "down")[k % 3]
        span = 1.12 + 0.3 * w
        f0, f1 = {"up": (fc / span, fc * span), "down": (fc * span, fc / span), "sine": (fc, fc)}[shape]
        p = {"shape": shape, "f_start": f0, "f_end": f1, "fm_rate": _geo(4.0, 16.0, v),
             "fm_depth": 0.1 * fc, "dur": 0.25 + 0.75 * z}
        return p, (min(f0, f1, 0.9 * fc) * 0.92 * 0.92, max(f0, f1, 1.1 * fc) * 1.08 * 1.08), 0.5
    if call_type == "trill":
        f = _geo(2000.0, 7500.0, u)
        chirp = 0.05 + 0.2 * w
        p = {"f_note": f, "rate": _geo(6.0, 40.0, v), "duty": 0.45 + 0.3 * w, "chirp": chirp,
             "dur": 0.7 + 1.3 * z}
        return p, (f * (1 - chirp / 2) * 0.92, f * (1 + chirp / 2) * 1.08), 0.8
    if call_type == "chorus":
        fc = _geo(350.0, 3200.0, u)
        rate = _geo(6.0, 60.0, v)
        p = {"f_carrier": fc, "pulse_rate": rate, "decay": min(0.02, 0.2 / rate),
             "note_s": 0.15 + 0.6 * w, "note_gap_s": 0.2 + 0.8 * z, "callers": 2.0 + 6.0 * _halton(k + 1, 7),
             "dur": 3.0 + 3.0 * w}
        return p, (fc * 0.96 * 0.92 * 0.95, fc * 1.04 * 1.08 * 1.05), 0.3
    if call_type == "drone":
        fc = _geo(2500.0, 11000.0, u)
        bw, am = 0.015 + 0.04 * w, _geo(15.0, 250.0, v)
        p = {"f_center": fc, "bw": bw, "tone": 0.3 + 0.6 * z, "am_rate": am, "am_depth": 0.2 + 0.75 * w,
             "dur": 3.0 + 7.0 * _halton(k + 1, 7)}
        return p, ((min(fc * (1 - bw), fc - am)) * 0.97, (max(fc * (1 + bw), fc + am)) * 1.03), 0.4
    if call_type == "lowcall":
        f0 = _geo(90.0, 420.0, u)
        shape = ("moan", "down", "grunt")[k % 3]
        n_harm = max(1, min(8, int(1150.0 // f0)))
        p = {"f0": f0, "shape": shape, "n_harm": n_harm, "rolloff": 0.5 + 0.7 * v,
             "rough": 0.4 if shape == "grunt" else 0.1 * w,
             "dur": 0.3 + 0.3 * w if shape == "grunt" else 0.8 + 1.7 * w}
        return p, (f0 * 0.8 * 0.92, n_harm * f0 * 1.3), 1.2
    raise ValueError(f"unknown call type {call_type!r}")


@functools.lru_cache(maxsize=1)
def family_catalog() -> tuple[SpeciesSpec, ...]:
    """The 206 species, sorted by ``primary_label`` (taxonomy / submission order).

    Labels are ``synbird001..146``, ``synfrog001..034``, ``syninsect001..017`` and
    ``synmammal001..009``; birds alternate whistle and trill.
    """
    rng = np.random.default_rng(_CATALOG_SEED)
    n = sum(FAMILY_SIZES.values())
    homes = np.column_stack([rng.uniform(-25.0, 20.0, n), rng.uniform(-85.0, -40.0, n)])
    specs, i = [], 0
    for cls, size in FAMILY_SIZES.items():
        types = FAMILY_CALL_TYPES[cls]
        for c in range(size):
            call_type = types[c % len(types)]
            k, m = c // len(types), len(range(c % len(types), size, len(types)))
            params, band, gap = _params(call_type, k, m)
            genus, noun = _NAMES[call_type]
            specs.append(SpeciesSpec(
                index=i, primary_label=f"{_PREFIX[cls]}{c + 1:03d}", call_type=call_type, class_name=cls,
                scientific_name=f"{genus} {_GREEK[k % len(_GREEK)]}{_EPITHET_SUFFIX[k // len(_GREEK)]}",
                common_name=f"{_ADJECTIVES[k % len(_ADJECTIVES)]} {_MODIFIER[k // len(_ADJECTIVES)]}{noun}",
                inat_taxon_id=920000 + 137 * i, params=MappingProxyType(params),
                band_hz=(float(band[0]), float(band[1])), home=(float(homes[i, 0]), float(homes[i, 1])),
                call_gap_s=gap))
            i += 1
    return tuple(sorted(specs, key=lambda s: s.primary_label))
