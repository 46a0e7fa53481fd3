"""Shared by the student research scripts: ``--data``, ``--artifacts`` and ``--set`` overrides ->
the config, the dataset, the artifacts root and the labels of the test soundscapes; and the
trained student predictor (trained first when missing)."""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd


def dev_setup(defaults: list[str], ap: argparse.ArgumentParser | None = None) -> tuple:
    """``(args, cfg, ds, root, solution)``; ``defaults`` are overrides applied before ``--set``;
    ``ap`` may carry a script's own arguments."""
    from vocalprint import config as C
    from vocalprint.data.dataset import load

    ap = ap or argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--artifacts", default="artifacts")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    a = ap.parse_args()
    cfg = C.load(None, [*defaults, *a.set])
    return a, cfg, load(a.data), Path(a.artifacts), pd.read_csv(Path(a.data) / "solution.csv")


def dev_student(defaults: list[str]) -> tuple:
    """``(cfg, ds, pred, solution)`` with the trained student as ``pred``."""
    from vocalprint import models

    _, cfg, ds, root, solution = dev_setup(defaults)
    return cfg, ds, models.predictor(cfg, ds, root, "student"), solution
