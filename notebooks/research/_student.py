"""Shared by the student research scripts: ``--data``, ``--artifacts`` and ``--set`` overrides ->
the config, the dataset, the trained student predictor (trained first when missing) and the
labels of the test soundscapes."""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd


def dev_student(defaults: list[str]) -> tuple:
    """``(cfg, ds, pred, solution)``; ``defaults`` are overrides applied before ``--set``."""
    from vocalprint import config as C
    from vocalprint import pipeline
    from vocalprint.dataset import load

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--artifacts", default="artifacts")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    a = ap.parse_args()
    cfg = C.load(None, [*defaults, *a.set])
    ds = load(a.data)
    pred = pipeline.predictor(cfg, ds, Path(a.artifacts), "student")
    return cfg, ds, pred, pd.read_csv(Path(a.data) / "solution.csv")
