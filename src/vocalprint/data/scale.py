"""A synthetic competition at BirdCLEF+ 2025 scale: ``python -m vocalprint demo-data --out DIR --scale F``.

The layout and CSV columns are the demo's (:mod:`vocalprint.data.demo`), the class list is always
the full 206 of :func:`~vocalprint.data.families.family_catalog` (146 birds, 34 amphibians,
17 insects, 9 mammals, each family with its own kind of call), and the amounts follow the real
set times ``F`` (``F = 1`` is full size):

* ``train_audio/<label>/<label>_<NNNN>.ogg``: about ``28,564 * F`` focal clips, at least one per
  class; per-class counts from a long tail (at ``F = 1`` a few classes have 1-3 clips and a few
  have hundreds, the largest about 1,000); durations log-normal, median 30 s, some minutes long
  (capped at 10 min).  A clip holds bouts of its species' calls over field noise; about one in
  five has one or two other species too (``secondary_labels``).
* ``train_soundscapes/``: ``9,726 * F`` (at least 2) unlabelled 60-s files with 2-8 species
  (``train_soundscapes=N`` writes only the first ``N`` of them, the same files as the full set's:
  a third of the audio at every ``F``, and a model that reads few of them costs the same).
* ``test_soundscapes/``: ``700 * F`` (at least 2) labelled 60-s files with 0-6 species;
  ``solution.csv`` / ``sample_submission.csv`` with 12 rows per file (``<stem>_<end second>``)
  and the columns in taxonomy order; ``soundscape_events.csv`` holds the placed calls.

:func:`plan` decides every count and duration without writing anything (a pure function of
``scale`` and ``seed``); :func:`make_scaled` writes the files, one task per file on a bounded pool
of processes, into ``<DIR>.partial``, renamed to ``DIR`` when complete.  Same seed -> identical
CSVs and the same decoded audio, whatever the number of processes (up to the codec's rounding: a
last-bit difference in the float signal can make Vorbis round a few frames apart).  A run that
stops (killed, interrupted, a failed file) leaves ``<DIR>.partial``; the same command again
resumes it, writing only the files not yet finished (each file's table row is kept beside it
in ``.results/``), provided the scale, seed and generator code are unchanged; otherwise it
starts over.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from scipy import fft as sp_fft
from scipy import optimize
from scipy.special import ndtri

from vocalprint.core.parallel import map_files
from vocalprint.data.demo import (SOUNDSCAPE_S, TAXONOMY_COLUMNS, TRAIN_COLUMNS, WINDOW_S, CallEvent, add_call,
                                  check_replaceable, log_uniform, move_into_place, peak_normalise,
                                  window_labels)
from vocalprint.data.families import family_catalog
from vocalprint.data.synth import synth_call

__all__ = ["ScalePlan", "field_noise", "make_scaled", "plan"]
log = logging.getLogger(__name__)

REAL_CLIPS, REAL_TRAIN_SOUNDSCAPES, REAL_TEST_SOUNDSCAPES = 28_564, 9_726, 700
COUNT_SIGMA = 1.6  # log-normal spread of the per-class clip counts (by rank)
SOFT_CAP = 1200  # counts saturate towards this at F = 1 (the largest class gets about 1,000)
_FAMILY_BIAS = {"Aves": 0.8, "Amphibia": -0.7, "Insecta": -1.0, "Mammalia": -0.4}  # birds are recorded most
MEDIAN_CLIP_S, CLIP_SIGMA, MIN_CLIP_S, MAX_CLIP_S = 30.0, 0.8, 2.0, 600.0
SECONDARY_P = 0.2
_BLOCK, _XFADE = 1 << 20, 2048  # field noise: FFT block (~33 s at 32 kHz) and crossfade, in samples
_WRITE_FRAMES = 1 << 16  # OGG written in pieces: libvorbis overflows its stack on one long write
_RESULTS = ".results"  # in <DIR>.partial: the run's settings and each finished file's result


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class ScalePlan:
    """What :func:`make_scaled` writes for ``scale`` and ``seed``; classes in taxonomy order."""

    scale: float
    seed: int
    labels: tuple[str, ...]
    counts: np.ndarray  # [206] clips per class
    durations: tuple[np.ndarray, ...]  # per class: the clip durations in s
    n_train_soundscapes: int
    n_test_soundscapes: int
    test_species: tuple[tuple[int, ...], ...]  # per test soundscape: class indices present

    @property
    def n_clips(self) -> int:
        return int(self.counts.sum())

    @property
    def clip_seconds(self) -> float:
        return float(sum(d.sum() for d in self.durations))

    @property
    def audio_hours(self) -> float:
        return (self.clip_seconds + SOUNDSCAPE_S * (self.n_train_soundscapes + self.n_test_soundscapes)) / 3600


def _full_counts(seed: int) -> np.ndarray:
    """Clips per class at ``F = 1`` (float): log-normal quantiles by rank (so the shape of the tail
    is the same for every seed; the seed decides which class gets which count, birds ranked
    higher on average), saturating towards :data:`SOFT_CAP`, scaled to sum to :data:`REAL_CLIPS`."""
    specs = family_catalog()
    rng = np.random.default_rng([seed, 21])
    score = rng.standard_normal(len(specs)) + np.array([_FAMILY_BIAS[s.class_name] for s in specs])
    rank = np.argsort(np.argsort(score, kind="stable"), kind="stable")
    q = np.exp(COUNT_SIGMA * ndtri((rank + 0.5) / len(specs)))
    def counts(c: float) -> np.ndarray:
        return c * q / (1.0 + c * q / SOFT_CAP)

    return counts(optimize.brentq(lambda c: counts(c).sum() - REAL_CLIPS, 1e-3, 1e6, xtol=1e-9))


def plan(scale: float, seed: int = 0, *, max_clip_s: float = MAX_CLIP_S) -> ScalePlan:
    """Counts, durations and soundscape contents of the set at ``scale`` (pure: writes nothing).

    Per class ``max(1, round(F * count at F = 1))`` clips; clip ``j`` of a class has the same
    duration at every ``F`` (log-normal, median :data:`MEDIAN_CLIP_S`, clipped to
    ``[MIN_CLIP_S, max_clip_s]``, 0.01-s steps).  Test soundscapes get 0-6 species each, the
    least used first, and at least one is empty.
    """
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be > 0, got {scale!r}")
    if max_clip_s < MIN_CLIP_S:
        raise ValueError(f"max_clip_s must be >= {MIN_CLIP_S}, got {max_clip_s!r}")
    specs = family_catalog()
    counts = np.maximum(1, np.round(scale * _full_counts(seed))).astype(np.int64)
    durations = []
    for i, n in enumerate(counts):
        d = MEDIAN_CLIP_S * np.exp(CLIP_SIGMA * np.random.default_rng([seed, 22, i]).standard_normal(int(n)))
        durations.append(np.round(np.clip(d, MIN_CLIP_S, max_clip_s), 2))
    n_train = max(2, int(round(REAL_TRAIN_SOUNDSCAPES * scale)))
    n_test = max(2, int(round(REAL_TEST_SOUNDSCAPES * scale)))
    rng = np.random.default_rng([seed, 23])
    k = rng.integers(0, 7, size=n_test)
    k[int(rng.integers(n_test))] = 0
    used, test_species = np.zeros(len(specs)), []
    for kk in k:
        picks = np.sort(np.lexsort((rng.random(len(specs)), used))[:kk])
        used[picks] += 1
        test_species.append(tuple(int(p) for p in picks))
    return ScalePlan(scale=float(scale), seed=int(seed), labels=tuple(s.primary_label for s in specs),
                     counts=counts, durations=tuple(durations), n_train_soundscapes=n_train,
                     n_test_soundscapes=n_test, test_species=tuple(test_species))


# --------------------------------------------------------------------------- audio


@functools.lru_cache(maxsize=4)
def _colour_curves(nf: int, sr: int) -> np.ndarray:
    """[3, nf // 2 + 1] float32 amplitude responses of white, pink and brown noise (unit mean
    power each), high-passed 20-60 Hz, as in :func:`vocalprint.data.synth.background`."""
    f = sp_fft.rfftfreq(nf, 1.0 / sr)
    brown = 1000.0 / np.maximum(f, 60.0)
    pink = np.sqrt(brown)
    hp = np.clip((f - 20.0) / 40.0, 0.0, 1.0)
    curves = [np.ones_like(f), pink / np.sqrt(np.mean(brown)), brown / np.sqrt(np.mean(brown * brown))]
    return (np.stack(curves) * hp).astype(np.float32)


def field_noise(rng: np.random.Generator, n: int, sr: int, rms: float) -> np.ndarray:
    """Float32 field noise of any length in bounded memory: the demo's mixture of white, pink and
    brown noise with slow wind fluctuation, made in ~33-s FFT blocks joined by equal-power
    crossfades (the blocks are independent noise, so the level does not dip at the joins)."""
    w = rng.dirichlet([1.0, 1.0, 1.0]) + 0.02
    w[rng.integers(3)] += 1.0
    depth, fw, phi = rng.uniform(0.0, 0.3), rng.uniform(0.05, 0.5), rng.uniform(0, 2 * np.pi)
    ramp = np.sin(np.linspace(0.0, np.pi / 2, _XFADE, dtype=np.float32))
    y = np.empty(n, np.float32)
    pos, tail = 0, None
    while pos < n:
        m = min(_BLOCK, n - pos)
        extra = _XFADE if pos + m < n else 0
        nf = sp_fft.next_fast_len(m + extra, real=True)
        gain = np.tensordot(w.astype(np.float32), _colour_curves(nf, sr), axes=1)
        b = sp_fft.irfft(sp_fft.rfft(rng.standard_normal(nf, dtype=np.float32)) * gain, nf)[: m + extra]
        if tail is not None:
            k = min(_XFADE, m)
            b[:k] = tail[:k] * ramp[::-1][:k] + b[:k] * ramp[:k]
        y[pos:pos + m] = b[:m]
        tail = b[m:]
        pos += m
    for a in range(0, n, _BLOCK):  # wind, block by block (no full-length float64 time axis)
        t = np.arange(a, min(a + _BLOCK, n)) / sr
        y[a:a + len(t)] *= (1.0 + depth * np.sin(2 * np.pi * fw * t + phi)).astype(np.float32)
    y *= np.float32(rms / (np.sqrt(np.dot(y, y) / max(n, 1)) + 1e-12))
    return y


def _write_ogg(path: Path, y: np.ndarray, sr: int) -> None:
    """Mono OGG Vorbis, written piece by piece (one call with minutes of audio segfaults in
    libvorbis: libsndfile issue #1095, python-soundfile #426), under a temporary name that is then
    renamed: a stopped run leaves no half-written file under a real name."""
    tmp = path.with_name(path.name + ".tmp")
    with sf.SoundFile(tmp, "w", samplerate=sr, channels=1, format="OGG", subtype="VORBIS") as f:
        for a in range(0, len(y), _WRITE_FRAMES):
            f.write(y[a:a + _WRITE_FRAMES].astype(np.float32))
    os.replace(tmp, path)


def _clip(path: Path, seed: int, c: int, j: int, dur: float, sr: int) -> dict:
    """Write focal clip ``j`` of class ``c``: bouts of its calls, maybe other species; its train.csv row."""
    specs = family_catalog()
    spec = specs[c]
    rng = np.random.default_rng([seed, 31, c, j])
    n = int(round(dur * sr))
    noise_rms = log_uniform(rng, 0.003, 0.03)
    y = field_noise(rng, n, sr, noise_rms)
    snr = rng.uniform(5.0, 20.0)
    t0 = rng.uniform(0.05, 0.25) * min(dur, 10.0)
    n_calls, left = 0, int(rng.integers(2, 13))
    while True:  # bouts of 2-12 calls at species-typical gaps, 2-20 s pauses between bouts
        call = synth_call(spec, rng, sr, max_len_s=dur - 0.2)
        start = int(t0 * sr)
        if n_calls and start + len(call) > n:
            break
        start = max(0, min(start, n - len(call)))
        add_call(y, call, start, noise_rms, float(np.clip(snr + rng.uniform(-2, 2), 5, 20)), spec.primary_label, sr)
        n_calls, left = n_calls + 1, left - 1
        t0 = (start + len(call)) / sr + spec.call_gap_s * rng.uniform(0.5, 3.0)
        if left == 0:
            t0, left = t0 + rng.uniform(2.0, 20.0), int(rng.integers(2, 13))
    secondary = []
    if rng.random() < SECONDARY_P:
        for o in rng.choice(len(specs) - 1, size=int(rng.integers(1, 3)), replace=False):
            sec = specs[int(o) + (o >= c)]  # any class but this one
            for _ in range(int(rng.integers(1, 5))):
                call = synth_call(sec, rng, sr, max_len_s=dur - 0.2)
                add_call(y, call, int(rng.integers(0, n - len(call) + 1)), noise_rms,
                          rng.uniform(-6.0, 0.0), sec.primary_label, sr)
            secondary.append(sec.primary_label)
    _write_ogg(path, peak_normalise(y), sr)
    rating = float(np.clip(np.round(2 * (1.0 + 4.0 * (snr - 5.0) / 15.0 + rng.normal(0, 0.5))) / 2, 0.0, 5.0))
    rel = f"{spec.primary_label}/{path.name}"
    return {
        "primary_label": spec.primary_label, "secondary_labels": repr(secondary),
        "type": "['song']" if spec.call_type in ("whistle", "trill", "drone") else "['call']",
        "filename": rel, "collection": "XC", "rating": rating, "url": f"https://example.org/vocalprint-scale/{rel}",
        "latitude": round(spec.home[0] + rng.normal(0.0, 1.0), 4),
        "longitude": round(spec.home[1] + rng.normal(0.0, 1.0), 4),
        "scientific_name": spec.scientific_name, "common_name": spec.common_name,
        "author": "synthetic", "license": "CC BY 4.0",
    }


def _soundscape(path: Path, rng: np.random.Generator, sr: int, species: list[int], n_bouts: tuple[int, int],
                snr_range: tuple[float, float]) -> list[CallEvent]:
    """Write one 60-s soundscape with bouts (1-5 calls) of each of ``species``; the placed calls."""
    specs = family_catalog()
    n = SOUNDSCAPE_S * sr
    noise_rms = log_uniform(rng, 0.004, 0.03)
    y = field_noise(rng, n, sr, noise_rms)
    events: list[CallEvent] = []
    for c in species:
        spec, snr = specs[c], rng.uniform(*snr_range)
        for _ in range(int(rng.integers(n_bouts[0], n_bouts[1] + 1))):
            t0 = rng.uniform(0.0, SOUNDSCAPE_S - 1.0)
            for _ in range(int(rng.integers(1, 6))):
                call = synth_call(spec, rng, sr)
                start = int(t0 * sr)
                if start + len(call) > n:
                    break
                call_snr = float(np.clip(snr + rng.uniform(-1.5, 1.5), *snr_range))
                events.append(add_call(y, call, start, noise_rms, call_snr, spec.primary_label, sr))
                t0 = (start + len(call)) / sr + spec.call_gap_s * rng.uniform(0.5, 2.5)
    _write_ogg(path, peak_normalise(y), sr)
    return events


def _task(path: str, kind: str, seed: int, i: int, j: int, dur: float, species: tuple[int, ...], sr: int,
          result: str):
    """One file (the pool's unit of work): a focal clip, a train or a test soundscape.  After the
    audio, its result (train.csv row, placed calls) is saved to ``result``: a file with a result is
    finished, which is what a resumed run skips."""
    if kind == "clip":
        r = _clip(Path(path), seed, i, j, dur, sr)
    elif kind == "train":
        rng = np.random.default_rng([seed, 32, i])
        picks = rng.choice(len(family_catalog()), size=int(rng.integers(2, 9)), replace=False)
        _soundscape(Path(path), rng, sr, [int(p) for p in picks], (1, 2), (-10.0, 5.0))
        r = None
    else:
        r = _soundscape(Path(path), np.random.default_rng([seed, 33, i]), sr, list(species), (1, 3), (-5.0, 15.0))
    saved = [dataclasses.asdict(e) for e in r] if kind == "test" else r
    Path(result + ".tmp").write_text(json.dumps(saved))
    os.replace(result + ".tmp", result)
    return r


def _load_result(kind: str, result: Path):
    r = json.loads(result.read_text())
    return [CallEvent(**e) for e in r] if kind == "test" else r


def _run_state(scale: float, seed: int, sr: int, max_clip_s: float, n_files: int) -> dict:
    """What a partial run must share with this one to be resumed: the arguments and the generator's
    code (this module and the ones that synthesise the calls and write the layout)."""
    from vocalprint.data import demo, families, synth

    code = hashlib.sha256(b"".join(Path(m.__file__).read_bytes() for m in (demo, families, synth))
                          + Path(__file__).read_bytes()).hexdigest()[:16]
    return {"scale": scale, "seed": seed, "sr": sr, "max_clip_s": max_clip_s, "n_files": n_files, "code": code}


# --------------------------------------------------------------------------- writer


def _default_jobs() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def make_scaled(out_dir: str | Path, *, scale: float, seed: int = 0, sr: int = 32000, n_jobs: int | None = None,
                max_clip_s: float = MAX_CLIP_S, progress: bool = True,
                train_soundscapes: int | None = None) -> Path:
    """Write the synthetic competition at ``scale`` (see the module docstring) into ``out_dir``.

    Files go to ``<out_dir>.partial`` and are moved into place when complete; an existing
    ``out_dir`` is replaced only if it looks like a data set (taxonomy.csv and train.csv), as with
    :func:`~vocalprint.data.demo.make_demo`.  A run that stops keeps ``<out_dir>.partial``, and the
    same call resumes it (see the module docstring).  ``n_jobs`` processes (default: the cores, at
    most 8) write one file per task, so memory stays bounded by the longest clip (``max_clip_s``,
    ~80 MB of float32 audio at 10 min).  Logs the generation speed (audio minutes per second) and
    the size on disk.  ``train_soundscapes`` (``None``: all of the plan's) caps the unlabelled
    train soundscapes written; the other files and every table are those of the full set.
    """
    t_start = time.perf_counter()
    p = plan(scale, seed, max_clip_s=max_clip_s)
    if train_soundscapes is not None:
        if train_soundscapes < 0:
            raise ValueError(f"demo-data: train_soundscapes must be >= 0, got {train_soundscapes}")
        p = dataclasses.replace(p, n_train_soundscapes=min(train_soundscapes, p.n_train_soundscapes))
    specs = family_catalog()
    out_dir = Path(out_dir)
    check_replaceable(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    part = out_dir.with_name(out_dir.name + ".partial")
    res_dir = part / _RESULTS
    n_jobs = n_jobs or _default_jobs()
    test_stems = [f"scale_test_{i:04d}" for i in range(p.n_test_soundscapes)]
    tasks = [(part / "train_audio" / lab / f"{lab}_{j:04d}.ogg", "clip", seed, c, j, float(d), (), sr)
             for c, lab in enumerate(p.labels) for j, d in enumerate(p.durations[c])]
    tasks += [(part / "train_soundscapes" / f"scale_train_{i:05d}.ogg", "train", seed, i, 0, 60.0, (), sr)
              for i in range(p.n_train_soundscapes)]
    tasks += [(part / "test_soundscapes" / f"{stem}.ogg", "test", seed, i, 0, 60.0, p.test_species[i], sr)
              for i, stem in enumerate(test_stems)]
    tasks = [(str(t[0]), *t[1:], str(res_dir / f"{k:07d}.json")) for k, t in enumerate(tasks)]
    state = _run_state(scale, seed, sr, max_clip_s, len(tasks))
    results: list = [None] * len(tasks)
    todo = list(range(len(tasks)))
    if (res_dir / "run.json").is_file() and json.loads((res_dir / "run.json").read_text()) == state:
        todo = [k for k, t in enumerate(tasks) if not (Path(t[-1]).is_file() and Path(t[0]).is_file())]
        for k in sorted(set(range(len(tasks))) - set(todo)):
            results[k] = _load_result(tasks[k][1], Path(tasks[k][-1]))
        for tmp in part.rglob("*.tmp"):  # pieces of the files being written when the run stopped
            tmp.unlink()
        log.info("demo-data --scale %g: resuming %s: %d of %d files already written", scale, part,
                 len(tasks) - len(todo), len(tasks))
    else:
        if part.exists():
            log.info("demo-data --scale %g: %s is from other settings or generator code: starting over", scale, part)
            shutil.rmtree(part)
        for sub in (_RESULTS, "train_soundscapes", "test_soundscapes", *(f"train_audio/{lab}" for lab in p.labels)):
            (part / sub).mkdir(parents=True)
        (res_dir / "run.json").write_text(json.dumps(state))
    order = sorted(todo, key=lambda k: -tasks[k][5])  # longest first: better balance
    todo_h = sum(tasks[k][5] for k in todo) / 3600
    log.info("demo-data --scale %g: %d clips (%.1f h), %d train + %d test soundscapes, %.1f h of audio "
             "in total (%.1f h to write), on %d processes -> %s", scale, p.n_clips, p.clip_seconds / 3600,
             p.n_train_soundscapes, p.n_test_soundscapes, p.audio_hours, todo_h, n_jobs, out_dir)
    try:
        done = map_files(_task, [tasks[k] for k in order], n_jobs=n_jobs, desc=f"demo-data F={scale:g}",
                         progress=progress)
    except BaseException:
        log.error("demo-data --scale %g: stopped; %s is kept: run the same command to resume", scale, part)
        raise
    for k, r in zip(order, done):
        results[k] = r
    _write_tables(part, p, results[:p.n_clips], results[len(tasks) - p.n_test_soundscapes:], test_stems, specs)
    shutil.rmtree(res_dir)
    move_into_place(part, out_dir)
    el = time.perf_counter() - t_start
    size = sum(f.stat().st_size for f in out_dir.rglob("*") if f.is_file())
    log.info("demo-data --scale %g: %.1f h of audio written (%d files) in %.0f s = %.1f audio min/s on %d "
             "processes; %.2f GB in all (%.1f kB per audio second) in %s", scale, todo_h, len(todo), el,
             todo_h * 60 / el, n_jobs, size / 1e9, size / 1e3 / (p.audio_hours * 3600), out_dir)
    return out_dir


def _write_tables(root: Path, p: ScalePlan, rows: list[dict], test_events: list[list[CallEvent]],
                  test_stems: list[str], specs) -> None:
    """taxonomy.csv, train.csv, solution.csv, sample_submission.csv, soundscape_events.csv."""
    pd.DataFrame([{"primary_label": s.primary_label, "inat_taxon_id": s.inat_taxon_id,
                   "scientific_name": s.scientific_name, "common_name": s.common_name,
                   "class_name": s.class_name} for s in specs],
                 columns=list(TAXONOMY_COLUMNS)).to_csv(root / "taxonomy.csv", index=False)
    pd.DataFrame(rows, columns=list(TRAIN_COLUMNS)).to_csv(root / "train.csv", index=False)
    labels = list(p.labels)
    n_win = SOUNDSCAPE_S // WINDOW_S
    row_ids = [f"{stem}_{WINDOW_S * (w + 1)}" for stem in test_stems for w in range(n_win)]
    y = np.concatenate([window_labels(ev, labels) for ev in test_events])
    for name, values in (("solution", y), ("sample_submission", np.zeros(y.shape))):
        df = pd.DataFrame(values, columns=labels)
        df.insert(0, "row_id", row_ids)
        df.to_csv(root / f"{name}.csv", index=False)
    pd.DataFrame({"soundscape_id": test_stems, "events": [json.dumps(
        [{"label": e.label, "start": round(e.onset_s, 4), "dur": round(e.offset_s - e.onset_s, 4),
          "snr_db": round(e.snr_db, 2)} for e in ev]) for ev in test_events]}).to_csv(
        root / "soundscape_events.csv", index=False)
