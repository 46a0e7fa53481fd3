"""Hostile input: damaged audio, odd rates and lengths, broken CSVs.

A copy of a small demo set is damaged in every way a competitor's data can be and run through the CLI
(``train`` then ``submit``) as a user would: damaged training files are skipped with a warning that
names them (and counted in the mels manifest), every test soundscape still gets its rows, and a
structural problem stops with one ``<stage> failed: <file>: <problem>`` line and exit code 2.
"""
from __future__ import annotations

import json
import logging
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from conftest import REPO, run_env
from vocalprint.core import artifacts as A
from vocalprint.data import dataset
from vocalprint.audio.decode import AudioError, load_audio
from vocalprint.config import Config
from vocalprint.audio.mel import file_mel
from vocalprint.serving.submission import all_row_ids, expected_windows, validate

SR = 32000
FAST = ("tokens.k=32", "w2v.epochs=1", "w2v.dim=16", "w2v.workers=1", "train.folds=3", "run.progress=false",
        "submit.model=stsg-linear")  # the staged token pipeline: its stages are what these tests kill and damage


# ----------------------------------------------------------------------------------------- helpers
def write_audio(path: Path, x: np.ndarray, sr: int = SR, **kw) -> Path:
    """soundfile.write in 10-s blocks (one big write segfaults libsndfile 1.2's Vorbis encoder)."""
    x = np.asarray(x)
    path.parent.mkdir(parents=True, exist_ok=True)
    with sf.SoundFile(str(path), "w", sr, x.shape[1] if x.ndim > 1 else 1, **kw) as f:
        for i in range(0, len(x), 10 * sr):
            f.write(x[i:i + 10 * sr])
    return path


def wav_with_rate(path: Path, n: int, rate: int) -> Path:
    """A 16-bit PCM WAV whose header claims ``rate`` Hz (1 Hz = a 32000-fold resampling bomb)."""
    data = (np.random.default_rng(1).standard_normal(n) * 3000).astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, rate, (rate * 2) % 2**32, 2, 16)
    path.write_bytes(b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE" + b"fmt " + struct.pack("<I", 16)
                     + fmt + b"data" + struct.pack("<I", len(data)) + data)
    return path


def resample(x: np.ndarray, sr: int) -> np.ndarray:
    import soxr

    return soxr.resample(x, SR, sr)


def damage_kinds(src: np.ndarray, ogg_bytes: bytes, rng: np.random.Generator) -> dict:
    """name -> (writer(path) -> path, decodable?). ``src``: 32-kHz mono audio of a real call clip."""
    five = np.resize(src, 5 * SR).astype(np.float32)
    nan = five.copy()
    nan[1000:3000] = np.nan
    nan[5000], nan[6000] = np.inf, -np.inf
    return {
        "empty.ogg": (lambda p: (p.write_bytes(b""), p)[1], False),
        "random.ogg": (lambda p: (p.write_bytes(rng.bytes(4000)), p)[1], False),
        "trunc_head.ogg": (lambda p: (p.write_bytes(ogg_bytes[:300]), p)[1], False),
        "zero_len.wav": (lambda p: write_audio(p, np.zeros(0, np.float32)), False),
        "rate_1hz.wav": (lambda p: wav_with_rate(p, SR, 1), False),
        "trunc_half.ogg": (lambda p: (p.write_bytes(ogg_bytes[: len(ogg_bytes) // 2]), p)[1], True),
        "silent.ogg": (lambda p: write_audio(p, np.zeros(5 * SR, np.float32)), True),
        "nan.wav": (lambda p: write_audio(p, nan, subtype="FLOAT"), True),
        "huge.wav": (lambda p: write_audio(p, five * 1e30, subtype="FLOAT"), True),
        "clipped.ogg": (lambda p: write_audio(p, np.clip(five * 20, -1, 1)), True),
        "stereo.ogg": (lambda p: write_audio(p, np.stack([five, -0.5 * five], 1)), True),
        "rate_8k.ogg": (lambda p: write_audio(p, resample(five, 8000), 8000), True),
        "rate_44k.ogg": (lambda p: write_audio(p, resample(five, 44100), 44100), True),
        "rate_96k.flac": (lambda p: write_audio(p, resample(five, 96000), 96000), True),
        "short_0.3s.ogg": (lambda p: write_audio(p, five[: int(0.3 * SR)]), True),
        "long_10min.ogg": (lambda p: write_audio(p, np.resize(src, 600 * SR).astype(np.float32)), True),
    }


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory) -> Path:
    from vocalprint.data.demo import make_demo

    return make_demo(tmp_path_factory.mktemp("hostile") / "demo", n_species=6, clips_per_species=3,
                     n_train_soundscapes=1, n_test_soundscapes=3)


def copy_demo(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def cli(stage: str, data: Path, art: Path, *extra: str, env: dict | None = None, timeout: float = 600):
    cmd = [sys.executable, "-m", "vocalprint", stage, "--data", str(data), "--artifacts", str(art), *extra]
    for s in FAST:
        cmd += ["--set", s]
    e = run_env()
    e["VOCALPRINT_LOG"] = "INFO"
    e.update(env or {})
    return subprocess.run(cmd, env=e, capture_output=True, text=True, cwd=REPO, timeout=timeout)


# ------------------------------------------------------------------------------ the damaged data set
def build_damaged(demo: Path, root: Path) -> dict:
    """Damage a copy of ``demo`` in every way listed below; return what each file should do."""
    root = copy_demo(demo, root)
    rng = np.random.default_rng(9)
    tr = pd.read_csv(root / "train.csv")
    species = list(pd.read_csv(root / "taxonomy.csv")["primary_label"])
    clip = root / "train_audio" / tr["filename"][0]
    src = load_audio(clip)
    ogg = (root / "test_soundscapes" / "demo_test_000.ogg").read_bytes()
    template = tr.iloc[0].to_dict()
    rows, skipped, kept = [], [], []
    for i, (name, (make, ok)) in enumerate(damage_kinds(src, ogg, rng).items()):
        sp = species[i % len(species)]
        rel = f"{sp}/h_{name}"
        make(root / "train_audio" / rel)
        rows.append(dict(template, primary_label=sp, filename=rel, secondary_labels="[]"))
        (kept if ok else skipped).append(f"train_audio/{rel}")
    # label trouble: unknown and malformed secondary labels, a parser bomb, a missing file,
    # a path out of train_audio/, an unknown primary label
    good = tr["filename"].tolist()
    rows += [
        dict(template, primary_label=species[1], filename=good[3], secondary_labels=f"['nosuchbird', '{species[2]}']"),
        dict(template, primary_label=species[2], filename=good[6], secondary_labels="['synbird01', "),
        dict(template, primary_label=species[3], filename=good[9], secondary_labels="-" * 100_000 + "1"),
        dict(template, primary_label=species[0], filename=f"{species[0]}/h_missing.ogg", secondary_labels="[]"),
        dict(template, primary_label=species[0], filename="../taxonomy.csv", secondary_labels="[]"),
        dict(template, primary_label="nosuchbird", filename=good[0], secondary_labels="[]"),
    ]
    pd.concat([tr, pd.DataFrame(rows)], ignore_index=True).to_csv(root / "train.csv", index=False)
    (root / "train_soundscapes" / "ts_random.ogg").write_bytes(rng.bytes(3000))
    skipped.append("train_soundscapes/ts_random.ogg")
    # sample submission: same species, every column in reverse order (row_id last)
    sample = pd.read_csv(root / "sample_submission.csv")
    sample[list(reversed(sample.columns))].to_csv(root / "sample_submission.csv", index=False)

    # test soundscapes: stem -> (rows expected, gets a real prediction?)
    test_src = load_audio(root / "test_soundscapes" / "demo_test_001.ogg")
    minute = test_src[: 60 * SR]
    ts = root / "test_soundscapes"
    nanm = minute.copy()
    nanm[SR:3 * SR] = np.nan
    tests = {f"demo_test_{i:03d}": (12, True) for i in range(3)}
    (ts / "t_empty.ogg").write_bytes(b"")
    (ts / "t_random.ogg").write_bytes(rng.bytes(8000))
    (ts / "t_trunc_head.ogg").write_bytes(ogg[:300])
    write_audio(ts / "t_zero_len.wav", np.zeros(0, np.float32))
    wav_with_rate(ts / "t_rate_1hz.wav", SR, 1)
    tests.update({"t_empty": (12, False), "t_random": (12, False), "t_trunc_head": (12, False),
                  "t_zero_len": (12, False), "t_rate_1hz": (SR // 5, False)})
    (ts / "t_trunc_half.ogg").write_bytes(ogg[: len(ogg) // 2])
    tests["t_trunc_half"] = (expected_windows(ts / "t_trunc_half.ogg")[0], True)  # header says
    write_audio(ts / "t_silent.ogg", np.zeros(60 * SR, np.float32))
    write_audio(ts / "t_nan.wav", nanm, subtype="FLOAT")
    write_audio(ts / "t_huge.wav", minute * 1e30, subtype="FLOAT")
    write_audio(ts / "t_clipped.ogg", np.clip(minute * 30, -1, 1))
    write_audio(ts / "t_stereo_44k.ogg", np.stack([resample(minute, 44100)] * 2, 1), 44100)
    write_audio(ts / "t_8k.ogg", resample(minute, 8000), 8000)
    write_audio(ts / "t_96k.flac", resample(minute, 96000), 96000)
    write_audio(ts / "t_59.9s.ogg", test_src[: int(59.9 * SR)])
    write_audio(ts / "t_61s.ogg", np.resize(test_src, 61 * SR))
    write_audio(ts / "t_0.3s.ogg", minute[: int(0.3 * SR)])
    write_audio(ts / "t_10min.ogg", np.resize(test_src, 600 * SR))
    write_audio(ts / "t_dup.ogg", minute)  # t_dup.wav too: both would claim the row ids t_dup_5, ...
    write_audio(ts / "t_dup.wav", minute[: 30 * SR])
    tests.update({s: (12, True) for s in ("t_silent", "t_nan", "t_huge", "t_clipped", "t_stereo_44k", "t_8k",
                                         "t_96k")})
    tests.update({"t_59.9s": (12, True), "t_61s": (13, True), "t_0.3s": (1, True), "t_10min": (120, True),
                  "t_dup": (12, True)})
    return {"root": root, "skipped": skipped, "kept": kept, "tests": tests, "species": species, "good0": good[0]}


@pytest.fixture(scope="module")
def damaged(small_demo, tmp_path_factory) -> dict:
    return build_damaged(small_demo, tmp_path_factory.mktemp("damaged") / "data")


@pytest.fixture(scope="module")
def damaged_run(damaged):
    """The damaged set through ``train`` and then ``submit`` (two CLI processes)."""
    d = dict(damaged)
    tmp = d["root"].parent
    art, out = tmp / "art", tmp / "sub" / "submission.csv"
    d["train"] = cli("train", d["root"], art)
    d["submit"] = cli("submit", d["root"], art, "--out", str(out))
    d["art"], d["out"] = art, out
    return d


# ------------------------------------------------------------------------------------- unit level
def test_load_audio_survives_every_damage(small_demo, tmp_path):
    """Each damage either raises AudioError naming the file, or decodes to finite 32-kHz mono."""
    clip = next((small_demo / "train_audio").rglob("*.ogg"))
    src = load_audio(clip)
    ogg = (small_demo / "test_soundscapes" / "demo_test_000.ogg").read_bytes()
    kinds = damage_kinds(src, ogg, np.random.default_rng(0))
    kinds.pop("long_10min.ogg")  # the end-to-end test covers it
    cfg = Config()
    for name, (make, ok) in kinds.items():
        p = make(tmp_path / name)
        if not ok:
            with pytest.raises(AudioError, match=name.replace(".", r"\.")):
                load_audio(p)
            continue
        x = load_audio(p)
        assert x.dtype == np.float32 and x.ndim == 1 and np.isfinite(x).all(), name
        assert np.abs(x).max() <= 64, name
        if name not in ("trunc_half.ogg", "short_0.3s.ogg"):
            assert abs(len(x) - 5 * SR) <= 64, (name, len(x))
        m = file_mel(p, cfg)
        assert np.isfinite(m.astype(np.float16)).all() and m.shape[1] == cfg.mel.n_mels, name
    assert len(load_audio(tmp_path / "short_0.3s.ogg")) == int(0.3 * SR)
    assert len(file_mel(tmp_path / "short_0.3s.ogg", cfg)) == 1 + int(0.3 * SR) // cfg.mel.hop


def test_rate_1hz_header_is_refused_not_resampled(tmp_path):
    p = wav_with_rate(tmp_path / "bomb.wav", SR, 1)
    with pytest.raises(AudioError, match="sample rate"):
        load_audio(p)


@pytest.mark.parametrize("value,want", [
    ("['a', 'zz']", ["a"]), ("['a', ", []), ("a", ["a"]), ("{'a': 1}", []), ("[['a']]", []),
    ("-" * 100_000 + "1", []), ("[" * 200 + "]" * 200, []), ("\x00", []), (float("nan"), []), ("1e9999", []),
    ("__import__('os').system('false')", []),
])
def test_secondary_labels_never_raise(value, want):
    assert dataset.parse_secondary(value, known={"a", "b"}, where="t") == want


def test_load_drops_bad_rows_with_warnings(damaged, caplog):
    d = damaged
    caplog.set_level(logging.WARNING)
    ds = dataset.load(d["root"])
    text = caplog.text
    names = set(ds.train["filename"])
    assert "../taxonomy.csv" not in names and not any("h_missing" in n for n in names)
    assert "nosuchbird" not in set(ds.train["primary"])
    assert sorted(why for _, why in ds.dropped) == [
        "file missing", "filename blank, absolute or outside train_audio/",
        "primary_label 'nosuchbird' not in taxonomy.csv"]
    assert "h_missing.ogg is listed but missing" in text and "leaves train_audio" in text
    assert "unknown secondary label 'nosuchbird'" in text and "malformed secondary_labels" in text
    assert "secondary_labels of 100001 characters ignored" in text
    row = ds.train[ds.train["secondary_labels"].str.contains("nosuchbird", na=False)]
    assert row["secondary"].tolist() == [[d["species"][2]]]
    assert list(ds.species) == list(pd.read_csv(d["root"] / "sample_submission.csv", nrows=0).columns[:-1])
    assert "row_id is column 7, not the first" in text
    assert list(ds.species) != sorted(ds.species)  # the reversed order is kept


def test_numeric_labels_with_a_blank_cell_stay_text(tmp_path):
    """iNat-id labels like 1139490: a blank cell must not turn the column into floats ('1139490.0')."""
    root = tmp_path / "num"
    (root / "train_audio" / "1139490").mkdir(parents=True)
    write_audio(root / "train_audio" / "1139490" / "a.ogg", np.zeros(SR, np.float32))
    pd.DataFrame({"primary_label": [1139490, 126247]}).to_csv(root / "taxonomy.csv", index=False)
    (root / "train.csv").write_text("primary_label,filename,secondary_labels\n1139490,1139490/a.ogg,"
                                    "['126247']\n,1139490/a.ogg,[]\n")
    ds = dataset.load(root)
    assert list(ds.species) == ["1139490", "126247"]
    assert ds.train["primary"].tolist() == ["1139490"] and ds.train["secondary"].tolist() == [["126247"]]


# ------------------------------------------------------------------------------ end to end, the CLI
def _no_traceback(r: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in r.stderr, r.stderr[-4000:]


@pytest.mark.slow
def test_train_skips_damaged_files_and_counts_them(damaged_run):
    r = damaged_run["train"]
    assert r.returncode == 0, r.stderr[-4000:]
    _no_traceback(r)
    mel_dir = next(p for p in (damaged_run["art"] / "mels").iterdir() if A.is_complete(p))
    m = A.manifest(mel_dir)
    assert m["n_skipped"] == len(damaged_run["skipped"])
    assert sorted(n for n, _ in m["skipped"]) == sorted(damaged_run["skipped"])
    assert m["n_dropped_rows"] == 3 and {f for f, _ in m["dropped_rows"]} == {
        f"{damaged_run['species'][0]}/h_missing.ogg", "../taxonomy.csv", damaged_run["good0"]}
    warn = [ln for ln in r.stderr.splitlines() if "mels: skipped" in ln]
    for name in damaged_run["skipped"]:  # each named, with the reason
        line = next((ln for ln in warn if name in ln), None)
        assert line and any(w in line for w in ("decode", "zero length", "sample rate")), (name, warn)
    for name in damaged_run["kept"]:
        assert not any(name in ln for ln in warn), name
    idx = pd.read_csv(mel_dir / "index.csv", keep_default_na=False)
    assert set(idx.loc[idx["error"] == "", "name"]) >= set(damaged_run["kept"])
    assert "NaN/inf samples set to 0" in r.stderr and "far beyond full scale" in r.stderr
    assert "h_short_0.3s.ogg shorter than" in r.stderr  # no training window; logged by features
    assert any(A.is_complete(p) for p in (damaged_run["art"] / "train").iterdir())


@pytest.mark.slow
def test_submit_gives_every_soundscape_its_rows(damaged_run):
    r = damaged_run["submit"]
    assert r.returncode == 0, r.stderr[-4000:]
    _no_traceback(r)
    tests = damaged_run["tests"]
    root = damaged_run["root"]
    assert {p.stem for p in (root / "test_soundscapes").iterdir()} == set(tests)
    sample_cols = list(pd.read_csv(root / "sample_submission.csv", nrows=0).columns)
    assert sample_cols[-1] == "row_id"
    sample_cols = ["row_id", *sample_cols[:-1]]
    sub = pd.read_csv(damaged_run["out"])
    assert list(sub.columns) == sample_cols  # row_id first, species in the sample's (reversed) order
    ids = all_row_ids([(stem, n) for stem, (n, _) in sorted(tests.items())])
    validate(sub, row_ids_expected=ids, species=sample_cols[1:])
    assert sum(1 for i in sub["row_id"] if i.startswith("t_59.9s_")) == 12
    assert sum(1 for i in sub["row_id"] if i.startswith("t_61s_")) == 13
    t = json.loads(damaged_run["out"].with_name("timing.json").read_text())
    bad = sorted(s for s, (_, ok) in tests.items() if not ok)
    assert sorted(t["fallback_files"]) == bad
    for s in bad:
        assert s in t["reasons"] and s in t["reasons"][s], (s, t["reasons"])
    assert "sample rate" in t["reasons"]["t_rate_1hz"]
    assert t["files"] == len(tests) and "t_dup.wav: same name as t_dup.ogg; ignored" in r.stderr
    # a fallback file's rows are the per-species prior, identical rows
    block = sub[sub["row_id"].str.startswith("t_empty_")][sample_cols[1:]].to_numpy()
    assert len(block) == 12 and np.ptp(block, axis=0).max() == 0
    # columns are matched by name: the model still ranks the demo soundscapes' calls
    sol = pd.read_csv(root / "solution.csv").set_index("row_id")
    p = sub.set_index("row_id").loc[sol.index, sol.columns]
    from sklearn.metrics import roc_auc_score

    aucs = [roc_auc_score(sol[c] > 0, p[c]) for c in sol.columns if 0 < (sol[c] > 0).sum() < len(sol)]
    assert np.mean(aucs) > 0.6, aucs


# --------------------------------------------------------------------- structural problems: exit 2
def _structural_cases(demo: Path, tmp: Path) -> dict:
    """case -> (data root, regex the one error line must match)."""
    cases = {}

    def case(name, fn, pattern):
        root = tmp / name  # the CSVs copied, the audio folders linked (only all_audio_broken writes audio)
        root.mkdir()
        for p in demo.iterdir():
            if p.is_dir() and name != "all_audio_broken":
                (root / p.name).symlink_to(p, target_is_directory=True)
            elif p.is_dir():
                shutil.copytree(p, root / p.name)
            else:
                shutil.copy(p, root / p.name)
        fn(root)
        cases[name] = (root, pattern)

    def drop_col(col):
        return lambda r: pd.read_csv(r / "train.csv").drop(columns=[col]).to_csv(r / "train.csv", index=False)

    case("no_filename_column", drop_col("filename"), r"train\.csv: missing required column\(s\) \['filename'\]")
    case("no_primary_column", drop_col("primary_label"),
         r"train\.csv: missing required column\(s\) \['primary_label'\]")
    case("taxonomy_header_only", lambda r: (r / "taxonomy.csv").write_text("primary_label,common_name\n"),
         r"taxonomy\.csv: no species listed")
    case("taxonomy_zero_bytes", lambda r: (r / "taxonomy.csv").write_bytes(b""), r"taxonomy\.csv: cannot parse CSV")
    case("taxonomy_no_label_column", lambda r: (r / "taxonomy.csv").write_text("species\na\n"),
         r"taxonomy\.csv: missing required column")
    case("sample_zero_bytes", lambda r: (r / "sample_submission.csv").write_bytes(b""),
         r"sample_submission\.csv: cannot parse CSV")
    case("sample_no_row_id", lambda r: pd.read_csv(r / "sample_submission.csv").drop(columns=["row_id"]).to_csv(
        r / "sample_submission.csv", index=False), r"sample_submission\.csv: no row_id column")
    case("train_csv_binary", lambda r: (r / "train.csv").write_bytes(b"\xff\xfe\x00\x81" * 500),
         r"train\.csv: cannot parse CSV")
    case("train_audio_gone", lambda r: (r / "train_audio").unlink(), r"train\.csv: no usable training rows")

    def all_broken(r):
        for p in (r / "train_audio").rglob("*.ogg"):
            p.write_bytes(p.read_bytes()[:200])
    case("all_audio_broken", all_broken, r"train_audio: none of the \d+ training files could be decoded")
    cases["no_data_dir"] = (tmp / "nowhere", r"nowhere: data folder not found")
    return cases


def test_structural_problems_stop_with_one_clear_message(small_demo, tmp_path):
    cases = _structural_cases(small_demo, tmp_path)
    env = run_env()
    procs = {}
    for name, (root, _) in cases.items():  # all at once: most fail within the start-up time
        cmd = [sys.executable, "-m", "vocalprint", "train", "--data", str(root),
               "--artifacts", str(tmp_path / f"art_{name}")]
        for s in FAST:
            cmd += ["--set", s]
        procs[name] = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True)
    import re

    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 2, (name, err[-3000:])
        assert "Traceback" not in err, (name, err[-3000:])
        errors = [ln for ln in err.splitlines() if " ERROR " in ln]
        assert len(errors) == 1, (name, errors)
        assert re.search(r"ERROR vocalprint: train failed: \S+", errors[0]), (name, errors[0])
        assert re.search(cases[name][1], errors[0]), (name, errors[0])


@pytest.mark.slow
def test_default_model_on_damaged_data_writes_a_valid_file(damaged, tmp_path):
    """tokens-nb (the default model) on the damaged set: undecodable clips are skipped with their
    names logged, and every test soundscape still gets its rows."""
    out = tmp_path / "sub" / "submission.csv"
    r = cli("submit", damaged["root"], tmp_path / "art", "--out", str(out), "--model", "tokens-nb",
            *sum((["--set", s] for s in ("nb.k=64", "nb.n_mixes=100", "nb.sample_frames=20000", "nb.mix_batch=50")), []))
    assert r.returncode == 0, r.stderr[-4000:]
    _no_traceback(r)
    cols = list(pd.read_csv(damaged["root"] / "sample_submission.csv", nrows=0).columns)  # row_id is last there
    ids = all_row_ids([(stem, n) for stem, (n, _) in sorted(damaged["tests"].items())])
    validate(pd.read_csv(out), row_ids_expected=ids, species=[c for c in cols if c != "row_id"])
    for name in damaged["skipped"]:
        assert name in r.stderr, name  # each undecodable clip is named in a warning
