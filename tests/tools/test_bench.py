"""``make bench`` on the demo data: every row measured with 1 and 2 workers, AUC against the
demo's solution, JSON and plot written."""
from __future__ import annotations

import os

import json

from vocalprint.tools import bench
from vocalprint import models


def test_bench_measures_each_model_with_one_and_two_workers(trained, small_cfg, tmp_path):
    root, ds = trained[0], trained[1]
    preds = [models.predictor(small_cfg, ds, root, m) for m in ("loudness", "melstats-linear")]
    res = bench.run(small_cfg, ds, preds, tmp_path)
    saved = json.loads((tmp_path / "bench" / "bench.json").read_text())
    assert saved == json.loads(json.dumps(res)) and (tmp_path / "bench" / "bench.png").stat().st_size > 0
    rows = {r["model"]: r for r in saved["models"]}
    assert list(rows) == ["loudness", "melstats-linear"]
    for r in rows.values():
        assert r["audio_minutes"] == len(ds.test_soundscapes)  # the demo's test files last one minute
        assert r["wall_s_per_min_1_worker"] > 0 and r["wall_s_per_min_2_workers"] > 0
        assert 0 <= r["macro_auc"] <= 1 and r["peak_rss_gib"] > 0
        assert {"decode", "mel"} <= set(r["cpu_s_per_min"])
        assert (tmp_path / "bench" / f"{r['model']}_j2.csv").is_file()


def test_warm_workers_runs_the_model_in_a_fresh_pool(trained, small_cfg):
    root, ds = trained[0], trained[1]
    pred = models.predictor(small_cfg, ds, root, "melstats-linear")
    pids = bench.warm_workers(pred, 2)  # the predictor pickles and runs in the worker processes
    assert pids and os.getpid() not in pids and len(pids) <= 2
    assert bench.warm_workers(pred, 1) == [os.getpid()]  # one worker is this process


def test_a_variant_row_runs_with_its_own_submit_settings(trained, small_cfg, tmp_path):
    """``loudness@submit.file_max=1``: every window of a file gets the file's maximum."""
    import pandas as pd

    root, ds = trained[0], trained[1]
    name, vcfg = models.variant(small_cfg, "loudness@submit.file_max=1")
    pred = models.predictor(vcfg, ds, root, name)
    bench.run(small_cfg, ds, [pred], tmp_path, configs=[vcfg])
    df = pd.read_csv(tmp_path / "bench" / "loudness_j1.csv")
    per_file = df.groupby(df["row_id"].str.rsplit("_", n=1).str[0]).nunique()
    assert (per_file.drop(columns="row_id") == 1).all().all()
