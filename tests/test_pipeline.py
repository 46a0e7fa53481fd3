"""The token pipeline on the generated demo competition: caching, rebuilds, a valid submission."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import REPO, run_env
from vocalprint.core import artifacts as A
from vocalprint import config as C
from vocalprint.audio import mel
from vocalprint import models
from vocalprint.serving import submit
from vocalprint.serving.submission import validate


def _no_mel(*a, **k):
    raise AssertionError("mel frames were recomputed although cached")


def test_tokens_in_range_and_12_windows_per_minute(trained, small_cfg):
    root, ds, pred = trained
    t = next((root / "tokens").iterdir())
    seq = np.load(t / "tokens.npy")
    assert seq.max() < small_cfg.tokens.k
    p = pred.predict(np.zeros(60 * 32000, np.float32) + 1e-3, 12, {})
    assert p.shape == (12, len(ds.species)) and np.isfinite(p).all()
    m = A.manifest(t)
    assert m["complete"] and "centroids.npy" in m["files"]


def test_rerun_does_no_work_and_changed_k_rebuilds_only_downstream(trained, small_cfg, monkeypatch):
    root, ds, _ = trained
    monkeypatch.setattr(mel, "file_mel", _no_mel)
    cfg = C.override(small_cfg, "run.n_jobs", 1)
    before = {p: p.stat().st_mtime_ns for p in root.rglob("manifest.json")}
    models.predictor(cfg, ds, root, "stsg-linear")
    assert {p: p.stat().st_mtime_ns for p in root.rglob("manifest.json")} == before
    stages = ("mels", "tokens", "w2v", "features", "train")

    def complete():
        return {s: {p.name for p in (root / s).iterdir() if A.is_complete(p)} for s in stages}

    had = complete()
    cfg32 = C.override(cfg, "tokens.k", 32)
    models.predictor(cfg32, ds, root, "stsg-linear")  # mels reused (file_mel would raise)
    new = {s: complete()[s] - had[s] for s in stages}
    assert not new["mels"]
    assert all(len(new[s]) == 1 for s in stages[1:]), new


def test_submission_is_complete_and_valid(trained, small_cfg, tmp_path, demo_dir):
    root, ds, pred = trained
    out = tmp_path / "sub" / "submission.csv"
    rep = submit.run(small_cfg, ds, [pred], out)
    df = pd.read_csv(out)
    sample = pd.read_csv(demo_dir / "sample_submission.csv")
    assert list(df.columns) == list(sample.columns)
    assert sorted(df["row_id"]) == sorted(sample["row_id"])
    validate(df, row_ids_expected=list(sample["row_id"]), species=ds.species)
    assert rep["predicted_files"] == len(ds.test_soundscapes) and not rep["fallback_files"]
    t = json.loads((tmp_path / "sub" / "timing.json").read_text())
    assert {"mel", "tokens", "pool", "head", "decode", "write"} <= set(t["seconds"])
    assert t["projection_700_min"]["2_cores"] > 0


def test_tampered_pickle_is_refused(trained, tmp_path):
    import shutil

    root, ds, _ = trained
    src = next(p for p in (root / "train").iterdir() if A.is_complete(p))
    dst = tmp_path / "train" / src.name
    shutil.copytree(src, dst)
    A.load_joblib(dst / "head.joblib")  # intact: loads
    with open(dst / "head.joblib", "ab") as f:
        f.write(b"\0")
    with pytest.raises(A.ArtifactError, match="checksum"):
        A.load_joblib(dst / "head.joblib")
    (tmp_path / "loose.joblib").write_bytes(b"x")
    with pytest.raises(A.ArtifactError, match="not inside"):
        A.load_joblib(tmp_path / "loose.joblib")


def test_partial_stage_is_never_read(tmp_path):
    final = tmp_path / "tokens" / "abc"
    work = A.partial_dir(final)
    (work / "tokens.npy").write_bytes(b"half")
    assert not A.is_complete(final)
    with pytest.raises(A.ArtifactError, match="no complete artifact"):
        A.manifest(final)


def test_a_stage_another_process_is_building_is_refused(tmp_path):
    """Two processes building one stage would write into one folder: the second stops with an
    error naming the stage; the builder's own later calls and, after it finished, everyone's pass."""
    pytest.importorskip("fcntl")
    final = tmp_path / "student" / "abc"
    final.with_name("abc.partial").mkdir(parents=True)
    hold = ("import fcntl, os, sys, time\n"
            f"fd = os.open({str(final) + '.partial/.lock'!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(60)\n")
    other = subprocess.Popen([sys.executable, "-c", hold], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "held"
        with pytest.raises(A.ArtifactError, match="another process is building this stage"):
            A.partial_dir(final)
        assert sorted(p.name for p in final.with_name("abc.partial").iterdir()) == [".lock"]
    finally:
        other.kill()
        other.wait()
    work = A.partial_dir(final)  # the lock died with its process
    assert A.partial_dir(final) == work  # this process may come back to its own stage
    (work / "x.npy").write_bytes(b"done")
    A.finish(work, final, {"stage": "student"})
    assert A.is_complete(final) and sorted(p.name for p in final.iterdir()) == ["manifest.json", "x.npy"]
    assert list(A.manifest(final)["files"]) == ["x.npy"]
    assert A.partial_dir(tmp_path / "student" / "def").is_dir()


def test_evaluate_scores_against_solution(trained, small_cfg, tmp_path, demo_dir):
    root, ds, pred = trained
    out = tmp_path / "submission.csv"
    submit.run(small_cfg, ds, [pred], out)
    r = subprocess.run([sys.executable, "-m", "vocalprint", "evaluate", "--data", str(demo_dir),
                        "--out", str(out), "--artifacts", str(tmp_path / "art"), "--model", "stsg-linear"],
                       env=run_env(), capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "art" / "metrics" / "stsg-linear.json").read_text())
    assert 0.5 < m["macro_auc"] <= 1.0 and m["n_species_scored"] >= 1


@pytest.mark.slow
def test_make_targets_end_to_end(tmp_path):
    """The Makefile is code too: demo data -> every stage -> submission -> evaluation."""
    demo = tmp_path / "demo"
    args = ["make", "-C", str(REPO), "submit", "evaluate", f"DEMO_DIR={demo}", f"DATA_DIR={demo}",
            f"ARTIFACTS={tmp_path / 'art'}", f"SUBMISSION={tmp_path / 'sub' / 'submission.csv'}",
            "ARGS=" + " ".join(f"--set {s}" for s in ("nb.k=64", "nb.n_mixes=200", "nb.sample_frames=30000",
                                                       "run.progress=false"))]
    r = subprocess.run(args, env=run_env(), capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    sample = pd.read_csv(demo / "sample_submission.csv")
    sub = pd.read_csv(tmp_path / "sub" / "submission.csv")
    validate(sub, row_ids_expected=list(sample["row_id"]), species=list(sample.columns[1:]))
    assert (tmp_path / "sub" / "timing.json").is_file()
    assert json.loads((tmp_path / "art" / "metrics" / "tokens-nb.json").read_text())["macro_auc"] > 0.6  # the default MODEL
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "art").rglob("manifest.json")}
    again = subprocess.run(args, env=run_env(), capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "art").rglob("manifest.json")} == before
