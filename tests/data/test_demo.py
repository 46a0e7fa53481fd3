"""Property tests for the synthetic BirdCLEF+ 2025-style demo data set (vocalprint.data.demo)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from scipy import signal

from vocalprint.data import demo, synth
from vocalprint.data.demo import CallEvent, make_demo, window_labels
from vocalprint.data.synth import species_catalog, synth_call

SR = 32000
SMALL = dict(n_species=5, clips_per_species=1, n_train_soundscapes=0, n_test_soundscapes=1)


@pytest.fixture(scope="session")
def demo_set(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default demo set (12 species, seed 0), generated once per session.

    Reuses the shared ``demo_dir`` fixture of ``conftest.py`` when there is one (so the
    full suite generates the set only once); these tests only read it.
    """
    try:
        return Path(request.getfixturevalue("demo_dir"))
    except pytest.FixtureLookupError:
        return make_demo(tmp_path_factory.mktemp("demo") / "birdclef", seed=0)


@pytest.fixture(scope="session")
def tables(demo_set: Path) -> dict[str, pd.DataFrame]:
    return {name: pd.read_csv(demo_set / f"{name}.csv")
            for name in ("taxonomy", "train", "solution", "sample_submission")}


def _stem_of(row_ids: pd.Series) -> pd.Series:
    return row_ids.str.rsplit("_", n=1).str[0]


# --------------------------------------------------------------------------- layout


def test_layout(demo_set: Path, tables: dict[str, pd.DataFrame]) -> None:
    for name in ("taxonomy.csv", "train.csv", "solution.csv", "sample_submission.csv"):
        assert (demo_set / name).is_file(), name
    for name in ("train_audio", "train_soundscapes", "test_soundscapes"):
        assert (demo_set / name).is_dir(), name
    assert not demo_set.with_name(demo_set.name + ".tmp").exists()

    tax = tables["taxonomy"]
    assert list(tax.columns) == list(demo.TAXONOMY_COLUMNS)
    assert len(tax) == 12
    assert tax.primary_label.is_unique and tax.scientific_name.is_unique
    assert tax.common_name.is_unique and tax.inat_taxon_id.is_unique
    assert all(re.fullmatch(r"[a-z]+\d{2}", lab) for lab in tax.primary_label)
    assert set(tax.class_name) == {"Aves", "Amphibia", "Insecta", "Mammalia"}
    assert all(re.fullmatch(r"[A-Z][a-z]+ [a-z]+", n) for n in tax.scientific_name)

    train = tables["train"]
    assert list(train.columns) == list(demo.TRAIN_COLUMNS)
    assert len(train) == 12 * 6
    assert (train.groupby("primary_label").size() == 6).all()
    assert set(train.primary_label) == set(tax.primary_label)
    assert (train.collection == "XC").all() and (train.license == "CC BY 4.0").all()
    assert (train.author == "demo").all()
    assert train.rating.between(0, 5).all() and train.rating.dtype == float
    assert train.latitude.between(-90, 90).all() and train.longitude.between(-180, 180).all()
    # each species has a home region: small spread within a species
    assert (train.groupby("primary_label")[["latitude", "longitude"]].std() < 3).all().all()
    names = tax.set_index("primary_label")
    assert (train.scientific_name == names.loc[train.primary_label, "scientific_name"].values).all()

    n_sec = 0
    for prim, sec, fn in zip(train.primary_label, train.secondary_labels, train.filename):
        assert fn.startswith(f"{prim}/") and fn.endswith(".ogg")
        lst = ast.literal_eval(sec)
        assert isinstance(lst, list)
        assert all(s in set(tax.primary_label) and s != prim for s in lst)
        n_sec += bool(lst)
    assert 0.03 <= n_sec / len(train) <= 0.35  # ~15 % of clips carry a secondary species


def test_train_audio_decodes(demo_set: Path, tables: dict[str, pd.DataFrame]) -> None:
    train = tables["train"]
    on_disk = {p.relative_to(demo_set / "train_audio").as_posix()
               for p in (demo_set / "train_audio").rglob("*.ogg")}
    assert on_disk == set(train.filename)
    for fn in train.filename:
        path = demo_set / "train_audio" / fn
        info = sf.info(path)
        assert (info.format, info.subtype) == ("OGG", "VORBIS")
        x, sr = sf.read(path, dtype="float32")
        assert sr == SR and x.ndim == 1
        assert 3.0 <= len(x) / sr <= 20.0
        assert np.isfinite(x).all() and 0.0 < np.abs(x).max() <= 1.0


def test_soundscapes_are_60s(demo_set: Path) -> None:
    tests = sorted((demo_set / "test_soundscapes").glob("*.ogg"))
    trains = sorted((demo_set / "train_soundscapes").glob("*.ogg"))
    assert [p.stem for p in tests] == [f"demo_test_{i:03d}" for i in range(6)]
    assert len(trains) == 4
    for p in tests + trains:
        x, sr = sf.read(p, dtype="float32")
        assert sr == SR and x.ndim == 1 and len(x) == 60 * SR, p.name


def test_solution_and_sample_submission(demo_set: Path, tables: dict[str, pd.DataFrame]) -> None:
    sol, sub, tax = tables["solution"], tables["sample_submission"], tables["taxonomy"]
    labels = list(tax.primary_label)
    stems = sorted(p.stem for p in (demo_set / "test_soundscapes").glob("*.ogg"))
    expected = [f"{s}_{end}" for s in stems for end in range(5, 61, 5)]
    assert list(sol.row_id) == expected
    assert list(sol.columns) == ["row_id", *labels]
    assert (sol[labels].dtypes == np.int64).all()
    assert set(np.unique(sol[labels].to_numpy())) <= {0, 1}
    assert list(sub.columns) == list(sol.columns) and list(sub.row_id) == expected
    assert (sub[labels].dtypes == float).all() and (sub[labels].to_numpy() == 0.0).all()
    assert sol[labels].to_numpy().sum() > 0


def test_empty_soundscape_and_species_coverage(tables: dict[str, pd.DataFrame]) -> None:
    sol, train, tax = tables["solution"], tables["train"], tables["taxonomy"]
    labels = list(tax.primary_label)
    per_file = sol.groupby(_stem_of(sol.row_id))[labels].sum()
    assert (per_file.sum(axis=1) == 0).any(), "need at least one soundscape without calls"
    assert (per_file.astype(bool).sum(axis=1) <= 3).all()  # 0-3 species per file
    in_train = set(train.primary_label)
    for lab in labels:
        assert sol[lab].sum() > 0 or lab in in_train, lab


# --------------------------------------------------------------------------- determinism


def _decoded(root: Path) -> dict[str, np.ndarray]:
    return {p.relative_to(root).as_posix(): sf.read(p, dtype="float32")[0]
            for p in sorted(root.rglob("*.ogg"))}


def test_same_seed_identical_different_seed_differs(tmp_path: Path) -> None:
    small = dict(SMALL, n_train_soundscapes=1)
    a = make_demo(tmp_path / "a", seed=7, **small)
    b = make_demo(tmp_path / "b", seed=7, **small)
    c = make_demo(tmp_path / "c", seed=8, **small)
    for name in ("taxonomy.csv", "train.csv", "solution.csv", "sample_submission.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    da, db, dc = _decoded(a), _decoded(b), _decoded(c)
    assert da.keys() == db.keys() == dc.keys() and len(da) == 5 + 1 + 1
    for k in da:
        np.testing.assert_array_equal(da[k], db[k], err_msg=k)
        assert da[k].shape != dc[k].shape or not np.allclose(da[k], dc[k]), k
    # the catalogue does not depend on the seed
    assert (a / "taxonomy.csv").read_bytes() == (c / "taxonomy.csv").read_bytes()


def test_replaces_existing_output_and_cli(tmp_path: Path) -> None:
    out = tmp_path / "set"
    make_demo(out, seed=1, **SMALL)
    (out / "stale.txt").write_text("old")
    stale_tmp = out.with_name("set.tmp")  # leftover of a killed run
    stale_tmp.mkdir()
    (stale_tmp / "junk").write_text("x")
    res = demo.main([str(out), "--seed", "2", "--n-species", "5", "--clips-per-species", "1",
                     "--n-train-soundscapes", "0", "--n-test-soundscapes", "1"])
    assert res == out
    assert not (out / "stale.txt").exists() and not stale_tmp.exists()
    assert len(pd.read_csv(out / "solution.csv")) == 12
    assert not any((out / "train_soundscapes").iterdir())
    # never delete a directory that does not look like a demo set
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("keep me")
    with pytest.raises(FileExistsError):
        make_demo(precious, **SMALL)
    assert (precious / "thesis.tex").read_text() == "keep me"


# --------------------------------------------------------------------------- call synthesis


def test_window_labels_overlap_rule() -> None:
    labs = ["a", "b"]
    ev = [CallEvent("a", 4.8, 5.6, 0.0),    # 0.2 s in window 1, 0.6 s in window 2
          CallEvent("b", 59.7, 60.0, 0.0),  # exactly 0.3 s in the last window
          CallEvent("b", 9.75, 10.2, 0.0)]  # 0.25 s in window 2, 0.2 s in window 3
    y = window_labels(ev, labs)
    assert y.shape == (12, 2)
    assert y[:, 0].tolist() == [0, 1] + [0] * 10
    assert y[:, 1].tolist() == [0] * 11 + [1]


def _centroid(x: np.ndarray, sr: int = SR) -> float:
    p = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / sr)
    return float((f * p).sum() / p.sum())


def _modulation_peak(x: np.ndarray, lo: float, hi: float, sr: int = SR) -> float:
    """Frequency (Hz) of the strongest amplitude modulation of ``x`` within [lo, hi]."""
    env = np.abs(signal.hilbert(x))
    env = signal.decimate(env - env.mean(), 40, ftype="fir")  # 800 Hz envelope rate
    n = 1 << 16
    spec = np.abs(np.fft.rfft(env * np.hanning(len(env)), n))
    f = np.fft.rfftfreq(n, 40 / sr)
    band = (f >= lo) & (f <= hi)
    return float(f[band][np.argmax(spec[band])])


def test_call_types_differ() -> None:
    specs = species_catalog(12)
    by_type: dict[str, list] = {}
    for s in specs:
        by_type.setdefault(s.call_type, []).append(s)
    assert set(by_type) == set(synth.CALL_TYPES)
    assert all(len(v) >= 2 for v in by_type.values())
    rng = np.random.default_rng(0)
    cent = {s.primary_label: np.mean([_centroid(synth_call(s, rng, SR)) for _ in range(4)])
            for s in specs}
    for call_type, group in by_type.items():
        cs = sorted(cent[s.primary_label] for s in group)
        ratios = np.array(cs[1:]) / np.array(cs[:-1])
        assert (ratios > 1.15).all(), (call_type, cs)
    for s in specs:  # centroid inside the advertised band (broadly)
        lo, hi = s.band_hz
        assert 0.7 * lo <= cent[s.primary_label] <= 2.5 * hi, (s.primary_label, cent[s.primary_label])
    # repeated notes / pulses / AM happen at the species' rate (+-8 % per-call tempo variation)
    rate_key = {"trill": "rate", "pulse": "pulse_rate", "buzz": "am_rate"}
    for s in specs:
        if s.call_type not in rate_key:
            continue
        rate = float(s.params[rate_key[s.call_type]])
        x = synth_call(s, np.random.default_rng(1), SR)
        peak = _modulation_peak(x, 2.0, 300.0)
        assert abs(peak / rate - 1) < 0.12, (s.primary_label, rate, peak)
    # per-call natural variation: two calls of one species are not identical
    s = specs[0]
    x1, x2 = synth_call(s, rng, SR), synth_call(s, rng, SR)
    assert len(x1) != len(x2) or not np.allclose(x1, x2)
    for x in (x1, x2):
        assert abs(x[0]) < 1e-2 and abs(x[-1]) < 1e-2  # faded, no clicks


# --------------------------------------------------------------------------- labels vs audio


def test_labels_match_audio(demo_set: Path, tables: dict[str, pd.DataFrame]) -> None:
    """A species' band lights up in its labelled windows, not in all-zero windows.

    Statistic per 5-s window: the 98th percentile over STFT frames (32 ms) of the
    fraction of frame energy inside the species band.  Fractions are immune to slow
    level changes (wind); the percentile catches short calls.  For every file with
    both kinds of windows, the median over the species' positive windows must exceed
    the median over the file's all-zero windows.
    """
    sol, tax = tables["solution"], tables["taxonomy"]
    labels = list(tax.primary_label)
    bands = {s.primary_label: s.band_hz for s in species_catalog(len(labels))}
    ratios = []
    for stem, g in sol.groupby(_stem_of(sol.row_id), sort=True):
        lab = g[labels].to_numpy()
        zero = lab.sum(axis=1) == 0
        if zero.all() or not zero.any():
            continue
        x, sr = sf.read(demo_set / "test_soundscapes" / f"{stem}.ogg")
        f, t, z = signal.stft(x, sr, nperseg=1024, noverlap=512, boundary=None, padded=False)
        power = np.abs(z) ** 2
        win = np.minimum((t // 5).astype(int), 11)
        total = power.sum(axis=0) + 1e-20
        for j, label in enumerate(labels):
            pos = lab[:, j] == 1
            if not pos.any():
                continue
            lo, hi = bands[label]
            frac = power[(f >= lo) & (f <= hi)].sum(axis=0) / total
            stat = np.array([np.percentile(frac[win == w], 98) for w in range(12)])
            ratio = np.median(stat[pos]) / np.median(stat[zero])
            ratios.append(ratio)
            assert ratio > 1.3, (stem, label, ratio)
    assert len(ratios) >= 3
    assert np.median(ratios) > 3.0, ratios
