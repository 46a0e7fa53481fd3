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

The species and their calls come from :mod:`vocalprint.data.synth`: the
species catalogue (:func:`~vocalprint.data.synth.species_catalog`) depends only
on ``n_species``; ``seed`` drives everything that is sampled (noise, call
placement, variation, metadata jitter).  The same seed gives byte-identical CSVs
and identical decoded audio (the OGG container bytes themselves may differ,
because libsndfile picks a random Ogg stream serial number).

Run as a script::

    python -m vocalprint.data.demo OUT_DIR [--seed N]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from vocalprint.data.synth import SpeciesSpec, background, species_catalog, synth_call

__all__ = [
    "CallEvent",
    "TRAIN_COLUMNS",
    "TAXONOMY_COLUMNS",
    "WINDOW_S",
    "SOUNDSCAPE_S",
    "MIN_OVERLAP_S",
    "main",
    "make_demo",
    "window_labels",
]

logger = logging.getLogger(__name__)

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

_PEAK = 0.95


# --------------------------------------------------------------------------- recordings


def log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


@dataclass(frozen=True)
class CallEvent:
    """One call placed in a recording: species label, onset/offset in s, SNR in dB."""

    label: str
    onset_s: float
    offset_s: float
    snr_db: float


def add_call(y: np.ndarray, call: np.ndarray, start: int, noise_rms: float, snr_db: float,
              label: str, sr: int) -> CallEvent:
    """Mix ``call`` (unit RMS) into ``y`` at sample ``start`` with the given SNR.

    SNR is call RMS (over the call's extent) relative to the full-band background RMS.
    """
    end = min(start + len(call), len(y))
    y[start:end] += call[: end - start] * (noise_rms * 10.0 ** (snr_db / 20.0))
    return CallEvent(label, start / sr, end / sr, float(snr_db))


def peak_normalise(y: np.ndarray) -> np.ndarray:
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
    noise_rms = log_uniform(rng, 0.003, 0.03)
    y = background(rng, n, sr, noise_rms)
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
        add_call(y, call, start, noise_rms,
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
            add_call(y, call, start, noise_rms, rng.uniform(-6.0, 0.0), sec.primary_label, sr)
        secondary.append(sec.primary_label)
    _write_ogg(path, peak_normalise(y), sr)
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
    noise_rms = log_uniform(rng, 0.004, 0.03)
    y = background(rng, n, sr, noise_rms)
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
                events.append(add_call(y, call, start, noise_rms, call_snr, spec.primary_label, sr))
                t0 = (start + len(call)) / sr + spec.call_gap_s * rng.uniform(0.5, 2.5)
    _write_ogg(path, peak_normalise(y), sr)
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


def check_replaceable(out_dir: Path) -> None:
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
    check_replaceable(out_dir)
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

    return move_into_place(tmp, out_dir)


def move_into_place(tmp: Path, out_dir: Path) -> Path:
    """Swap a finished set written in ``tmp`` in for ``out_dir`` (refusing a folder that is not a
    generated data set); returns ``out_dir``."""
    if out_dir.exists():
        check_replaceable(out_dir)
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
