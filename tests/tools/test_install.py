"""``pip install vocalprint`` with no extras is the inference install: in a fresh venv it holds no
TensorFlow, Keras, gensim or matplotlib, and its console command ``vocalprint submit --bundle`` writes
a complete submission with real predictions from a bundle trained in the dev environment."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
TRAINING_ONLY = ("tensorflow", "keras", "gensim", "matplotlib")


def _env(**extra: str) -> dict:
    """No PYTHONPATH or active venv (the checkout must not leak in); pip's own configuration (index,
    cache) is kept, since the install downloads from the package index."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VOCALPRINT_", "PYTHON")) and k not in ("DATA_DIR", "VIRTUAL_ENV")}
    env.update(VOCALPRINT_LOG="WARNING", **extra)
    return env


def _run(cmd: list, *, timeout: float, **kw) -> subprocess.CompletedProcess:
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kw)
    assert res.returncode == 0, f"{' '.join(map(str, cmd[:4]))} ...\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res


@pytest.fixture(scope="module")
def bundle(demo_dir, small_cfg, tmp_path_factory) -> Path:
    """melstats-linear on the demo data (the cheapest trained model: ~20 s), as a bundle."""
    from vocalprint import models
    from vocalprint.data import dataset
    from vocalprint.serving.bundle import save_bundle

    root = tmp_path_factory.mktemp("install-artifacts")
    pred = models.predictor(small_cfg, dataset.load(demo_dir), root, "melstats-linear")
    return save_bundle(pred, root / "bundles" / "melstats-linear", info={"data": str(demo_dir)})


@pytest.mark.timeout(900)  # a first run downloads the wheels; later ones come from pip's cache
def test_base_install_submits_without_training_packages(bundle, demo_dir, tmp_path):
    from vocalprint.serving.submission import validate

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv], env=_env(), timeout=120)
    vpy, exe = venv / "bin" / "python", venv / "bin" / "vocalprint"
    # the inference install, at the versions the dev environment was tested with (constraints
    # only fix versions: they add no package)
    _run([vpy, "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off",
          "-c", REPO / "requirements.txt", REPO], env=_env(), cwd=tmp_path, timeout=780)
    _run([vpy, "-m", "pip", "check"], env=_env(), cwd=tmp_path, timeout=60)

    probe = _run([vpy, "-c", "import importlib.util as u, vocalprint; print(vocalprint.__file__); "
                  f"print([m for m in {TRAINING_ONLY!r} if u.find_spec(m)])"],
                 env=_env(), cwd=tmp_path, timeout=60)
    where, extra = probe.stdout.split("\n")[:2]
    assert where.startswith(str(venv)), where  # the installed package, not the checkout
    assert extra == "[]", f"the base install pulled in training packages: {extra}"

    out, art = tmp_path / "sub" / "submission.csv", tmp_path / "art"
    res = _run([exe, "submit", "--bundle", bundle, "--data", demo_dir, "--out", out, "--budget-min", "20",
                "--artifacts", art], env=_env(), cwd=tmp_path, timeout=300)
    assert out.is_file(), res.stderr[-3000:]

    sample = pd.read_csv(demo_dir / "sample_submission.csv")
    species = list(sample.columns[1:])
    sub = pd.read_csv(out)
    validate(sub, row_ids_expected=list(sample["row_id"]), species=species)
    assert len(sub) == len(sample) and list(sub.columns) == ["row_id", *species]
    assert sub[species].to_numpy().std() > 0
    assert sub[species].std(axis=0).max() > 1e-6  # real predictions: the prior is constant down a column
    timing = json.loads((out.parent / "timing.json").read_text())
    assert timing["predicted_files"] == timing["files"] > 0 and not timing["fallback_files"]
