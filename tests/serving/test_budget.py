"""The budgeted submit: fallback chain on projection (injected clock), stopping before the
deadline, the watchdog, ensembles and selection."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import REPO, run_env
from vocalprint import config as C
from vocalprint.tools import select
from vocalprint.serving import submit
from vocalprint.serving.ensemble import EnsemblePredictor
from vocalprint.serving.submission import validate


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


class FakeModel:
    """Advances the injected clock by ``cost`` seconds per audio minute; scores a constant."""

    def __init__(self, name, species, cfg, clock, cost, value):
        self.name, self.species, self.cfg, self.clock, self.cost, self.value = name, species, cfg, clock, cost, value

    def predict(self, x, n, times, shared=None):
        self.clock.t += self.cost * len(x) / self.cfg.audio.sr / 60
        return np.full((n, len(self.species)), self.value, np.float32)


def _cfg(budget_min, n_jobs=1):
    return C.load(None, [f"submit.budget_min={budget_min}", f"run.n_jobs={n_jobs}", "run.progress=false"])


def _sample(ds):
    return pd.read_csv(ds.root / "sample_submission.csv")


def test_fallback_chain_switches_on_projection(demo_dir, tmp_path):
    from vocalprint.data import dataset

    ds = dataset.load(demo_dir)
    clk = Clock()
    cfg = _cfg(budget_min=2.0)  # 120 s for 6 one-minute files
    slow = FakeModel("slow", ds.species, cfg, clk, cost=40.0, value=0.9)  # 240 s projected: too slow
    fast = FakeModel("fast", ds.species, cfg, clk, cost=1.0, value=0.1)
    rep = submit.run(cfg, ds, [slow, fast], tmp_path / "s.csv", clock=clk)
    assert rep["switches"] and rep["switches"][0]["to"] == "fast"
    assert rep["models_used"] == ["fast", "slow"] and not rep["fallback_files"]
    df = pd.read_csv(tmp_path / "s.csv")
    validate(df, row_ids_expected=list(_sample(ds)["row_id"]), species=ds.species)
    assert clk.t < 120


def test_stops_before_deadline_and_fills_with_prior(demo_dir, tmp_path):
    from vocalprint.data import dataset

    ds = dataset.load(demo_dir)
    clk = Clock()
    cfg = _cfg(budget_min=1.0)
    slow = FakeModel("slow", ds.species, cfg, clk, cost=25.0, value=0.9)
    rep = submit.run(cfg, ds, [slow], tmp_path / "s.csv", clock=clk)
    assert rep["stopped"] and rep["fallback_files"]
    assert clk.t <= 60
    df = pd.read_csv(tmp_path / "s.csv")
    validate(df, row_ids_expected=list(_sample(ds)["row_id"]), species=ds.species)
    stem = rep["fallback_files"][0]
    rows = df[df["row_id"].str.startswith(stem + "_")]
    prior = submit.fallback_prior(ds, slow)
    np.testing.assert_allclose(rows.iloc[0, 1:].to_numpy(float), prior, rtol=1e-4)


def test_chunks_grow_to_the_target_once_the_rate_is_known():
    files = [(f"f{i}", 12) for i in range(100)]  # one-minute files: 60 audio seconds each
    chunk, rest = submit.next_chunk(files, 2, None, 2.0, 5.0)
    assert chunk == files[:2] and rest == files[2:]  # before a rate: one file per worker
    chunk, rest = submit.next_chunk(files, 2, 0.001, 2.0, 5.0)  # 0.06 s per file: 33 fit in 2 s
    assert len(chunk) == 33 and chunk + rest == files
    chunk, _ = submit.next_chunk(files, 2, 1.0, 2.0, 5.0)  # a minute per file: two per worker at least
    assert len(chunk) == 4
    assert len(submit.next_chunk(files, 3, 0.001, 0.0, 5.0)[0]) == 6  # chunk_s = 0: two per worker
    assert submit.next_chunk(files[:3], 2, 0.001, 2.0, 5.0) == (files[:3], [])


def test_the_last_chunk_is_cut_to_what_fits(demo_dir, tmp_path):
    """60 s for files costing 25 s each: after the first file a chunk of two would end past the
    deadline, so it runs one file more and stops before the third."""
    from vocalprint.data import dataset

    ds = dataset.load(demo_dir)
    clk = Clock()
    cfg = _cfg(budget_min=1.0)
    slow = FakeModel("slow", ds.species, cfg, clk, cost=25.0, value=0.9)
    rep = submit.run(cfg, ds, [slow], tmp_path / "s.csv", clock=clk)
    assert rep["predicted_files"] == 2 and clk.t == 50.0 and rep["stopped"]


def test_a_budget_no_model_fits_still_predicts_with_the_last_resort(demo_dir, tmp_path):
    """Chain [too slow, loudness]: every file gets real scores (the fastest real model, one decode and
    Mel per file), none the prior, and the windows rank better than chance."""
    from vocalprint.core.metrics import macro_auc
    from vocalprint.data import dataset
    from vocalprint.tokens.predictor import LoudnessPredictor

    ds = dataset.load(demo_dir)
    clk = Clock()
    cfg = _cfg(budget_min=0.25)  # 15 s for the demo's test minutes
    slow = FakeModel("slow", ds.species, cfg, clk, cost=60.0, value=0.9)  # a minute per audio minute
    last = LoudnessPredictor(cfg=cfg, species=list(ds.species))
    rep = submit.run(cfg, ds, [slow, last], tmp_path / "s.csv", clock=clk)
    assert not rep["fallback_files"] and rep["predicted_files"] == rep["files"]
    assert rep["last_resort"]["files"] == rep["files"] and rep["stopped"]  # scored first; slow then ran out
    assert set(rep["models_used"]) == {"slow", "loudness"}
    auc, _ = macro_auc(pd.read_csv(demo_dir / "solution.csv"), pd.read_csv(tmp_path / "s.csv"))
    assert auc > 0.55


def test_ensemble_averages_members(demo_dir):
    from vocalprint.data import dataset

    ds = dataset.load(demo_dir)
    cfg = _cfg(90)
    clk = Clock()
    a = FakeModel("a", ds.species, cfg, clk, 0, 0.2)
    b = FakeModel("b", ds.species, cfg, clk, 0, 0.8)
    x = np.zeros(32000 * 10, np.float32)
    assert np.allclose(EnsemblePredictor([a, b], weights=[1, 3]).predict(x, 2, {}), 0.65)
    lg = EnsemblePredictor([a, b], combine="logit").predict(x, 2, {})
    assert np.allclose(lg, 0.5, atol=1e-5)
    with pytest.raises(ValueError, match="weights"):
        EnsemblePredictor([a, b], weights=[1.0])


def test_ensemble_weighs_the_species_the_teacher_cannot_name_apart(demo_dir):
    from vocalprint.data import dataset

    ds = dataset.load(demo_dir)
    cfg, clk = _cfg(90), Clock()
    teacher = FakeModel("birdnet-zeroshot", ds.species, cfg, clk, 0, 0.2)
    teacher.columns = np.array([5, -1] + [7] * (len(ds.species) - 2))  # it names all but species 1
    other = FakeModel("tokens-nb", ds.species, cfg, clk, 0, 0.8)
    ens = EnsemblePredictor([teacher, other], weights=[1, 0], weights_unnamed=[1, 3])
    p = ens.predict(np.zeros(32000 * 10, np.float32), 2, {})
    assert np.allclose(p[:, 0], 0.2) and np.allclose(p[:, 2:], 0.2)  # named: the teacher alone
    assert np.allclose(p[:, 1], 0.25 * 0.2 + 0.75 * 0.8)  # unnamed: the blend
    with pytest.raises(ValueError, match="needs a teacher member"):
        EnsemblePredictor([other, other], weights_unnamed=[1, 1])
    del ens.species_weights  # a bundle pickled before per-group weights: the plain weights
    assert np.allclose(ens.predict(np.zeros(32000 * 10, np.float32), 2, {}), 0.2)


def test_select_prefers_best_auc_that_fits(demo_dir, tmp_path):
    sol = pd.read_csv(demo_dir / "solution.csv")
    rng = np.random.default_rng(0)
    y = sol.iloc[:, 1:].to_numpy(float)
    good = pd.concat([sol[["row_id"]], pd.DataFrame(y * 0.6 + rng.random(y.shape) * 0.4, columns=sol.columns[1:])], axis=1)
    noisy = pd.concat([sol[["row_id"]], pd.DataFrame(rng.random(y.shape), columns=sol.columns[1:])], axis=1)
    runs = {"good-slow": (good, 200.0), "noisy-fast": (noisy, 2.0)}
    cands = select.search(runs, sol, budget_min=90)
    assert cands[0]["members"] == ["noisy-fast"] and cands[0]["fits"]
    cands = select.search(runs, sol, budget_min=300)
    assert cands[0]["members"] == ["good-slow"]


@pytest.mark.slow
def test_too_small_budget_on_the_cli_still_writes_a_valid_file(trained, tmp_path, demo_dir):
    """BUDGET far too low: the CLI ends before the deadline with a complete file and says why."""
    root, ds, _ = trained
    out = tmp_path / "sub" / "submission.csv"
    args = [sys.executable, "-m", "vocalprint", "submit", "--data", str(demo_dir), "--artifacts", str(root),
            "--out", str(out), "--budget-min", "0.3", *sum((["--set", s] for s in
            ("tokens.k=64", "tokens.sample_frames=30000", "tokens.niter=8", "w2v.dim=16", "w2v.epochs=2",
             "w2v.workers=1", "train.lgbm.n_estimators=15", "train.folds=3", "run.progress=false",
             "submit.fallback=melstats-linear", "submit.model=stsg-linear")), [])]
    r = subprocess.run(args, env=run_env(), capture_output=True, text=True, cwd=REPO, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    sample = _sample(ds)
    validate(pd.read_csv(out), row_ids_expected=list(sample["row_id"]), species=ds.species)
    t = json.loads(out.with_name("timing.json").read_text())
    assert t["files"] == len(ds.test_soundscapes) and t["elapsed_s"] <= 18


class FileModel(FakeModel):
    external = ("model_path",)


def test_ensemble_bundle_carries_every_members_files(demo_dir, tmp_path):
    from vocalprint.data import dataset
    from vocalprint.serving.bundle import load_bundle, save_bundle

    ds = dataset.load(demo_dir)
    cfg = _cfg(90)
    members = []
    for i in range(2):
        f = tmp_path / "src" / f"w{i}" / "model.tflite"  # same file name, different content
        f.parent.mkdir(parents=True)
        f.write_bytes(bytes([i]) * 10)
        m = FileModel(f"m{i}", ds.species, cfg, None, 0, 0.1 * (i + 1))
        m.model_path = f
        members.append(m)
    b = save_bundle(EnsemblePredictor(members), tmp_path / "bundle")
    import shutil

    shutil.rmtree(tmp_path / "src")  # the bundle must not point back at the training artifacts
    got = load_bundle(b)
    assert [m.model_path.read_bytes() for m in got.members] == [bytes([0]) * 10, bytes([1]) * 10]
    assert all(m.model_path.parent == b for m in got.members)
