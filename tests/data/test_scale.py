"""The synthetic competition at BirdCLEF+ 2025 scale (vocalprint.data.scale, ``demo-data --scale F``).

The tail of the class counts and the clip durations are checked on the plan at F = 1 (nothing
written); the written layout at a tiny F with clips capped at 2.5 s, so two full runs take ~20 s.
"""
from __future__ import annotations

import ast
import dataclasses
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from scipy import signal

from vocalprint.data import dataset
from vocalprint.data.families import FAMILY_SIZES, family_catalog
from vocalprint.data.scale import REAL_CLIPS, field_noise, make_scaled, plan
from vocalprint.data.synth import FAMILY_CALL_TYPES, synth_call

SR = 32000
TINY = dict(scale=0.0002, seed=0, max_clip_s=2.5, progress=False)
CSVS = ("taxonomy.csv", "train.csv", "solution.csv", "sample_submission.csv", "soundscape_events.csv")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_scaled(tmp_path_factory.mktemp("scale") / "set", n_jobs=2, **TINY)


# --------------------------------------------------------------------------- classes and plan


def test_class_split() -> None:
    specs = family_catalog()
    assert len(specs) == 206 and dict(FAMILY_SIZES) == {"Aves": 146, "Amphibia": 34, "Insecta": 17, "Mammalia": 9}
    assert Counter(s.class_name for s in specs) == FAMILY_SIZES
    assert [s.primary_label for s in specs] == sorted(s.primary_label for s in specs)
    for attr in ("primary_label", "scientific_name", "common_name", "inat_taxon_id"):
        assert len({getattr(s, attr) for s in specs}) == 206, attr
    for s in specs:
        assert s.call_type in FAMILY_CALL_TYPES[s.class_name]
    assert Counter(s.call_type for s in specs) == {"whistle": 73, "trill": 73, "chorus": 34, "drone": 17,
                                                   "lowcall": 9}


def test_plan_tail_at_full_size() -> None:
    p = plan(1.0, seed=0)
    c = p.counts
    assert len(c) == 206 and c.min() >= 1
    assert abs(c.sum() - REAL_CLIPS) < 0.01 * REAL_CLIPS
    assert c.max() >= 5 * np.median(c)
    assert 3 <= (c <= 3).sum() <= 20  # a few classes with 1-3 clips
    assert (c >= 300).sum() >= 5 and c.max() <= 1200  # a few with hundreds
    fam = np.array([s.class_name for s in family_catalog()])
    assert np.median(c[fam == "Aves"]) > 2 * np.median(c[fam != "Aves"])  # birds recorded most
    d = np.concatenate(p.durations)
    assert len(d) == c.sum() and 27.0 <= np.median(d) <= 33.0
    assert (d > 180).sum() >= 50 and d.max() <= 600.0 and d.min() >= 2.0  # some several minutes, capped
    assert (p.n_train_soundscapes, p.n_test_soundscapes) == (9726, 700)
    n_sp = [len(t) for t in p.test_species]
    assert min(n_sp) == 0 and max(n_sp) == 6
    assert len({i for t in p.test_species for i in t}) == 206  # every class is in some test soundscape


def test_plan_small_scale_pure_and_seeded() -> None:
    small, full = plan(0.002, seed=3), plan(1.0, seed=3)
    assert small.counts.min() == 1 and small.n_clips < 300
    assert (small.n_train_soundscapes, small.n_test_soundscapes) == (19, 2)
    tiny = plan(1e-5, seed=3)
    assert tiny.n_clips == 206 and (tiny.n_train_soundscapes, tiny.n_test_soundscapes) == (2, 2)
    for a, b in zip(small.durations, full.durations):  # clip j has the same duration at every F
        np.testing.assert_array_equal(a, b[: len(a)])
    again = plan(0.002, seed=3)
    np.testing.assert_array_equal(small.counts, again.counts)
    assert all(np.array_equal(a, b) for a, b in zip(small.durations, again.durations))
    assert small.test_species == again.test_species
    other = plan(1.0, seed=4)
    assert not np.array_equal(other.counts, full.counts)
    assert sorted(other.counts) == sorted(full.counts)  # same tail, other classes in it
    with pytest.raises(ValueError):
        plan(0.0)


# --------------------------------------------------------------------------- family calls


def _spectrum(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f, p = signal.welch(x, SR, nperseg=4096)
    return f, p / p.sum()


def test_family_calls() -> None:
    rng = np.random.default_rng(0)
    specs = family_catalog()
    for s in specs[::3]:  # every family, across its range
        x = synth_call(s, rng, SR)
        f, p = _spectrum(x)
        lo, hi = s.band_hz
        assert p[(f >= lo) & (f <= hi)].sum() > 0.8, s.primary_label
        if s.class_name == "Mammalia":  # low and harmonic
            assert p[f <= 1500].sum() > 0.99, s.primary_label
            f0 = float(s.params["f0"])
            if int(s.params["n_harm"]) >= 2:
                assert p[(f > 1.6 * f0) & (f < 2.6 * f0)].sum() > 0.01, s.primary_label
        elif s.class_name == "Insecta":  # long, narrow-band, steady
            assert len(x) / SR > 2.4, s.primary_label
            fc = float(s.params["f_center"])
            assert p[(f > 0.9 * fc) & (f < 1.1 * fc)].sum() > 0.9, s.primary_label
            frames = x[: len(x) // 6400 * 6400].reshape(-1, 6400)[2:-2]  # 200-ms RMS, away from the fades
            rms = np.sqrt((frames ** 2).mean(axis=1))
            assert rms.std() / rms.mean() < 0.25, s.primary_label
        elif s.class_name == "Amphibia":
            assert len(x) / SR > 2.4, s.primary_label


def test_frog_chorus_is_pulsed() -> None:
    """One caller: short pulses at the species' pulse rate; a chorus: several callers overlap."""
    s = next(s for s in family_catalog() if s.call_type == "chorus" and s.params["pulse_rate"] < 20)
    solo = dataclasses.replace(s, params={**s.params, "callers": 1.0, "note_s": 0.75, "note_gap_s": 0.05})
    rate = float(s.params["pulse_rate"])

    def envelope(x: np.ndarray) -> np.ndarray:
        return np.convolve(np.abs(signal.hilbert(x)), np.ones(32) / 32, "same")  # 1-ms smoothing

    def gaps(x: np.ndarray) -> float:  # share of time below 5 % of the peak envelope
        e = envelope(x)[int(0.3 * SR):-int(0.3 * SR)]
        return float(np.mean(e < 0.05 * e.max()))

    x = synth_call(solo, np.random.default_rng(1), SR)
    e = envelope(x)[: 2 * SR]
    ac = signal.correlate(e - e.mean(), e - e.mean(), method="fft")[len(e) - 1:]
    lo = int(0.5 * SR / rate)
    lag = lo + int(np.argmax(ac[lo: 2 * lo]))
    assert abs(SR / lag / rate - 1.0) < 0.15  # pulse period = 1 / rate (+- tempo variation)
    assert gaps(x) > 0.3  # short pulses with silence between them

    def mean_gaps(callers: float) -> float:
        spec = dataclasses.replace(s, params={**s.params, "callers": callers})
        return float(np.mean([gaps(synth_call(spec, np.random.default_rng(i), SR)) for i in range(4)]))

    assert mean_gaps(8.0) < 0.7 * mean_gaps(1.0)  # overlapping callers fill the gaps


def test_field_noise_blocks() -> None:
    """Long noise in FFT blocks: right length and RMS, no level dip or jump at the block joins."""
    y = field_noise(np.random.default_rng(0), 75 * SR, SR, 0.01)
    assert y.dtype == np.float32 and len(y) == 75 * SR
    assert abs(np.sqrt(np.mean(y.astype(float) ** 2)) - 0.01) < 1e-4
    j = 1 << 20
    around = np.sqrt(np.mean(y[j - 4096: j + 4096].astype(float) ** 2))
    assert 0.7 < around / 0.01 < 1.4


# --------------------------------------------------------------------------- the written set


def test_layout_loads(tiny: Path) -> None:
    assert not tiny.with_name(tiny.name + ".partial").exists()
    tax = pd.read_csv(tiny / "taxonomy.csv")
    assert list(tax.columns) == ["primary_label", "inat_taxon_id", "scientific_name", "common_name", "class_name"]
    assert tax.class_name.value_counts().to_dict() == {"Aves": 146, "Amphibia": 34, "Insecta": 17, "Mammalia": 9}
    ds = dataset.load(tiny)
    p = plan(TINY["scale"], TINY["seed"], max_clip_s=TINY["max_clip_s"])
    assert list(ds.species) == list(tax.primary_label) == list(p.labels)
    assert len(ds.train) == p.n_clips and not ds.dropped
    assert (ds.train.groupby("primary").size() >= 1).all() and ds.train.primary.nunique() == 206
    assert len(ds.train_soundscapes) == p.n_train_soundscapes >= 2
    assert len(ds.test_soundscapes) == p.n_test_soundscapes >= 2
    sec = [ast.literal_eval(v) for v in pd.read_csv(tiny / "train.csv").secondary_labels]
    assert all(set(v) <= set(ds.species) for v in sec) and any(sec)
    sol, sub = pd.read_csv(tiny / "solution.csv"), pd.read_csv(tiny / "sample_submission.csv")
    assert list(sol.columns) == list(sub.columns) == ["row_id", *ds.species]
    assert len(sol) == 12 * len(ds.test_soundscapes)
    stems = sorted(f.stem for f in ds.test_soundscapes)
    assert list(sol.row_id) == [f"{s}_{5 * (w + 1)}" for s in stems for w in range(12)]
    assert set(np.unique(sol.iloc[:, 1:].to_numpy())) <= {0, 1} and (sub.iloc[:, 1:].to_numpy() == 0).all()
    ev = pd.read_csv(tiny / "soundscape_events.csv")
    for stem, events in zip(ev.soundscape_id, ev.events):
        placed = {e["label"] for e in json.loads(events)}
        rows = sol[sol.row_id.str.rsplit("_", n=1).str[0] == stem].iloc[:, 1:]
        assert set(rows.columns[rows.to_numpy().any(axis=0)]) <= placed
        assert placed == set(p.labels[i] for i in p.test_species[stems.index(stem)]) or not placed
    info = sf.info(str(ds.train.path.iloc[0]))
    assert info.samplerate == SR and info.channels == 1 and 1.9 < info.duration < 2.6
    assert abs(sf.info(str(ds.test_soundscapes[0])).duration - 60.0) < 0.01


def test_same_seed_same_csvs(tiny: Path, tmp_path: Path) -> None:
    again = make_scaled(tmp_path / "again", n_jobs=1, **TINY)  # another process count, same files
    for name in CSVS:
        assert (tiny / name).read_bytes() == (again / name).read_bytes(), name
    for rel in ("train_audio/synmammal009/synmammal009_0000.ogg", "test_soundscapes/scale_test_0001.ogg"):
        np.testing.assert_array_equal(sf.read(tiny / rel)[0], sf.read(again / rel)[0])


def test_fewer_train_soundscapes_leave_every_other_file_as_it_was(tiny: Path, tmp_path: Path) -> None:
    from vocalprint.cli import main

    capped = make_scaled(tmp_path / "capped", n_jobs=1, train_soundscapes=1, **TINY)
    assert sorted(f.name for f in (capped / "train_soundscapes").iterdir()) == ["scale_train_00000.ogg"]
    assert len(list((tiny / "train_soundscapes").iterdir())) >= 2
    for name in CSVS:
        assert (tiny / name).read_bytes() == (capped / name).read_bytes(), name
    for rel in ("train_audio/synmammal009/synmammal009_0000.ogg", "test_soundscapes/scale_test_0001.ogg"):
        np.testing.assert_array_equal(sf.read(tiny / rel)[0], sf.read(capped / rel)[0])
    # the same signal; Vorbis may round a few frames apart when the float input differs in the last bit
    a, b = (sf.read(d / "train_soundscapes/scale_train_00000.ogg")[0] for d in (tiny, capped))
    assert a.shape == b.shape and np.mean(np.abs(a - b) > 1e-4) < 0.02 and np.abs(a - b).max() < 0.05
    assert main(["demo-data", "--out", str(tmp_path / "x"), "--scale", "0.0002", "--train-soundscapes", "-1"]) == 2
    assert not (tmp_path / "x").exists()


def test_refuses_to_replace_other_folders(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        make_scaled(tmp_path, **TINY)
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_cli_rejects_bad_scale(tmp_path: Path) -> None:
    from vocalprint.cli import main

    assert main(["demo-data", "--out", str(tmp_path / "x"), "--scale", "0"]) == 2
    assert not (tmp_path / "x").exists()


def test_a_stopped_run_resumes_where_it_stopped(tiny: Path, tmp_path: Path, monkeypatch) -> None:
    """A run that stops keeps <DIR>.partial with its finished files; the same call writes only the
    rest and gives the same set as an uninterrupted run. Other settings start over."""
    from vocalprint.data import scale as S

    real, calls = S._task, []

    def stops_at_the_fifth_file(*t):
        calls.append(t[0])
        if len(calls) == 5:
            raise RuntimeError("stopped")
        return real(*t)

    monkeypatch.setattr(S, "_task", stops_at_the_fifth_file)
    out = tmp_path / "set"
    with pytest.raises(RuntimeError, match="stopped"):
        make_scaled(out, n_jobs=1, **TINY)
    part = tmp_path / "set.partial"
    assert not out.exists() and len(list((part / ".results").glob("0*.json"))) == 4
    assert not list(part.rglob("*.tmp"))
    (part / "stale.ogg.tmp").write_bytes(b"half a file")  # as if killed while writing
    calls.clear()
    monkeypatch.setattr(S, "_task", lambda *t: calls.append(t[0]) or real(*t))
    make_scaled(out, n_jobs=1, **TINY)
    total = sum(1 for _ in out.rglob("*.ogg"))
    assert len(calls) == total - 4 and not part.exists()  # only the unfinished files were written
    assert not (out / ".results").exists() and not list(out.rglob("*.tmp"))
    for name in CSVS:
        assert (tiny / name).read_bytes() == (out / name).read_bytes(), name
    for rel in ("train_audio/synmammal009/synmammal009_0000.ogg", "test_soundscapes/scale_test_0001.ogg"):
        np.testing.assert_array_equal(sf.read(tiny / rel)[0], sf.read(out / rel)[0])
    # a partial run of other settings is not resumed: it starts over
    calls.clear()
    monkeypatch.setattr(S, "_task", stops_at_the_fifth_file)
    with pytest.raises(RuntimeError):
        make_scaled(tmp_path / "other", n_jobs=1, **TINY)
    calls.clear()
    monkeypatch.setattr(S, "_task", lambda *t: calls.append(t[0]) or real(*t))
    make_scaled(tmp_path / "other", n_jobs=1, **dict(TINY, seed=1))
    assert len(calls) == sum(1 for _ in (tmp_path / "other").rglob("*.ogg"))
