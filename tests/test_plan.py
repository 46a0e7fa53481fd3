"""`make plan`: the stage keys it walks are the folders a build makes."""
from __future__ import annotations

import pytest

from vocalprint import config as C
from vocalprint import plan


def _built(root):
    return {(d.name, p.name) for d in root.iterdir() if d.is_dir() for p in d.iterdir()
            if p.is_dir() and not p.name.endswith(".partial")}


def test_plan_of_a_built_model_is_all_cached_and_names_its_folders(trained, small_cfg):
    root, ds, _ = trained
    steps = plan.plan(small_cfg, ds, root, "stsg-linear")
    assert [s.stage for s in steps] == ["mels", "tokens", "w2v", "features", "train"]
    assert all(s.cached and s.source == "measured" and s.seconds is not None for s in steps)
    assert {(s.stage, s.key) for s in steps} <= _built(root)
    assert "0 of 5 stages to build" in plan.table("stsg-linear", steps)


def test_plan_of_another_head_reuses_the_chain(trained, small_cfg):
    root, ds, _ = trained
    steps = plan.plan(small_cfg, ds, root, "stsg-lgbm")
    assert [s.cached for s in steps] == [True, True, True, True, False]
    assert steps[-1].source == "unknown" and steps[-1].seconds is None  # no scale model yet
    mstats = plan.plan(small_cfg, ds, root, "melstats-lgbm")  # shares the Mel frames only
    assert [s.stage for s in mstats] == ["mels", "windows", "mstats", "train"] and mstats[0] == steps[0]
    assert plan.plan(small_cfg, ds, root, "loudness") == []
    assert "nothing is trained" in plan.table("loudness", [])


def test_model_overrides_and_rounds_change_the_walk(trained, small_cfg):
    root, ds, _ = trained
    student = plan.stage_keys(small_cfg, ds, root, "student")
    cnn = plan.stage_keys(small_cfg, ds, root, "tokens-cnn")
    assert [s for s, _ in student][:6] == ["teacher-model", "teacher", "windows", "tfeatures", "mels", "tmixes"]
    assert [s for s, _ in student].count("student") == small_cfg.distill.members
    assert student[:6] == cnn[:6] and student[-1] != cnn[-1]  # same teacher data, other students
    two = plan.stage_keys(C.override(small_cfg, "distill.rounds", "2"), ds, root, "student")
    assert [s for s, _ in two].count("pseudo") == 2 and two[:len(student)] == student
    ens = plan.stage_keys(C.override(small_cfg, "submit.members", "stsg-linear,melstats-linear"), ds, root, "ensemble")
    assert len(ens) == 8 and len(set(ens)) == 8  # the shared Mel frames once; windows, statistics, two heads


def test_each_model_builds_only_its_stages_on_an_empty_folder(trained, small_cfg, standin_teacher, tmp_path):
    """birdnet-zeroshot builds no Mel frames or tokens, tokens-nb no Word2Vec or features,
    melstats-linear no tokens; what a build makes is what the plan walked, and the teacher's and
    the Mel statistics' training windows are the token features stage's windows."""
    import numpy as np
    import pandas as pd

    from vocalprint import models
    from vocalprint.audio import clips

    root, ds, _ = trained
    model, labels = standin_teacher
    cfg = C.override(small_cfg, "teacher", {"stride_s": 3.0, "probe_stride_s": 0.0, "model_path": model,
                                            "labels_path": labels})
    cfg = C.override(cfg, "nb", {"k": 64, "n_mixes": 100, "sample_frames": 20000, "mix_batch": 50})
    for name, stages in (("birdnet-zeroshot", {"teacher-model", "teacher", "windows", "tfeatures", "train"}),
                         ("tokens-nb", {"nb"}), ("melstats-linear", {"mels", "windows", "mstats", "train"})):
        empty = tmp_path / name
        walked = plan.stage_keys(cfg, ds, empty, name)
        models.train(cfg, ds, empty, name)
        assert {d.name for d in empty.iterdir()} == stages
        assert _built(empty) == set(walked)
    # the probe's teacher cache holds the focal clips only; a later full cache (the students') links
    # them instead of running the teacher on them again, and then serves the probe too
    from vocalprint.core import artifacts as A
    from vocalprint.teacher import stage as teach

    bz = tmp_path / "birdnet-zeroshot"
    part = next((bz / "teacher").iterdir())
    assert part.name == teach.cache_key(cfg, ds, "clips") != teach.cache_key(cfg, ds, "all")
    assert A.manifest(part)["part"] == "clips" and len(list((part / "chunks").iterdir())) == len(ds.train)
    assert len(ds.train_soundscapes) > 0
    full = teach.run(cfg, ds, bz, "all")
    assert full.name == teach.cache_key(cfg, ds, "all") and A.manifest(full)["n_reused"] == len(ds.train)
    assert len(list((full / "chunks").iterdir())) == len(ds.train) + len(ds.train_soundscapes)
    one = next((part / "chunks").iterdir())
    assert (full / "chunks" / one.name).stat().st_ino == one.stat().st_ino
    assert teach.cache_dir(cfg, ds, bz, "clips") == full
    assert dict(plan.stage_keys(cfg, ds, bz, "birdnet-zeroshot"))["teacher"] == full.name
    # at a probe stride of its own (the default 2 s; the full cache is at 3 s here) the probe keeps its
    # own cache, at that hop
    other = C.override(cfg, "teacher.probe_stride_s", "2")
    assert teach.cache_dir(other, ds, bz, "clips").name == teach.cache_key(other, ds, "clips") != part.name
    own = teach.run(other, ds, bz, "clips")
    starts = max((np.load(f)["starts"] for f in (own / "chunks").iterdir()), key=len)
    assert len(starts) >= 2 and np.allclose(np.diff(starts), 2.0)
    assert dict(plan.stage_keys(other, ds, bz, "birdnet-zeroshot"))["teacher"] == own.name
    win = clips.run(cfg, ds, bz)
    feat = next((root / "features").iterdir())
    assert pd.read_csv(win / "windows.csv").equals(pd.read_csv(feat / "windows.csv"))
    for n in ("Y", "groups"):
        np.testing.assert_array_equal(np.load(win / f"{n}.npy"), np.load(feat / f"{n}.npy"))
    # the Mel statistics: each window's band means and deviations over the same frames
    from vocalprint.audio import mel
    from vocalprint.tokens.pool import pool_mel

    ms = tmp_path / "melstats-linear"
    stats, mdir = next((ms / "mstats").iterdir()), next((ms / "mels").iterdir())
    x, w = np.load(stats / "X_melstats.npy"), pd.read_csv(stats / "windows.csv")
    assert w.equals(pd.read_csv(feat / "windows.csv")) and len(x) == len(w) and np.abs(x).sum(axis=1).all()
    name = w["name"].iloc[-1]
    rows = w.index[w["name"] == name]
    np.testing.assert_array_equal(x[rows], pool_mel(mel.load_frames(mdir, name), w.loc[rows, ["start", "stop"]].to_numpy()))


def test_plan_projects_the_training_peak_memory_from_the_scale_model(trained, tmp_path):
    import json

    _, ds, _ = trained
    assert plan.peak_rss_gib(tmp_path, ds, "tokens-nb") is None  # no scale model yet
    (tmp_path / "scale").mkdir()
    fit = {"command_fits": {"train": {"peak_rss_mb": {"projected_full": 4096.0, "exponent": 0.5}}}}
    (tmp_path / "scale" / "scale.json").write_text(json.dumps({"models": {"tokens-nb": fit}}))
    f = len(ds.train) / plan.FULL_TRAIN_FILES
    assert plan.peak_rss_gib(tmp_path, ds, "tokens-nb") == round(4.0 * f ** 0.5, 2)
    assert plan.peak_rss_gib(tmp_path, ds, "stsg-linear") is None
    text = plan.table("tokens-nb", [plan.Step("nb", "k", False)], 1.25)
    assert "peak memory of the training: 1.2 GiB (projected)" in text and "peak disk of the training: unknown" in text
    assert plan.peak_disk_gb(tmp_path, ds, "tokens-nb") is None  # a run before the folder was sampled
    fit["command_fits"]["train"]["peak_disk_mb"] = {"projected_full": 40_000.0, "exponent": 1.0}
    (tmp_path / "scale" / "scale.json").write_text(json.dumps({"models": {"tokens-nb": fit}}))
    assert plan.peak_disk_gb(tmp_path, ds, "tokens-nb") == round(40.0 * f, 2)
    assert "peak disk of the training: 37.8 GB (projected; transient files included)" in plan.table(
        "tokens-nb", [plan.Step("nb", "k", False)], 1.25, 37.8)


def test_an_averaging_model_is_planned_from_its_members(trained, small_cfg, tmp_path):
    """recommended's plan is its members' stages, each projected from that member's scale model, and
    its peak memory the larger member's, its peak disk the sum of theirs."""
    import json

    from vocalprint import models

    _, ds, _ = trained
    (tmp_path / "scale").mkdir()
    fits = {"tokens-nb": {"stages": {"nb": {"seconds": 100.0, "projected_full_seconds": 100.0, "exponent": 1.0,
                                            "disk_mb": 10.0, "disk_exponent": 1.0}},
                          "command_fits": {"train": {"peak_rss_mb": {"projected_full": 2048.0, "exponent": 0.0}}}},
            "birdnet-zeroshot": {"stages": {}, "command_fits": {"train": {"peak_rss_mb": {
                "projected_full": 3072.0, "exponent": 0.0}}}}}
    (tmp_path / "scale" / "scale.json").write_text(json.dumps({"models": fits}))
    steps = plan.plan(small_cfg, ds, tmp_path, "recommended")
    want = [k for m in models.members_of(small_cfg, "recommended") for k in plan.stage_keys(small_cfg, ds, tmp_path, m)]
    assert [(s.stage, s.key) for s in steps] == list(dict.fromkeys(want))  # a shared stage is built once
    assert len(want) > len(steps)  # BirdNET and the student member share the teacher model, the windows
    nb = next(s for s in steps if s.stage == "nb")
    f = len(ds.train) / plan.FULL_TRAIN_FILES
    assert nb.source == "projected" and nb.seconds == round(100.0 * f, 1)
    assert all(s.source == "unknown" for s in steps if s.stage != "nb")
    assert plan.peak_rss_gib(tmp_path, ds, "recommended", small_cfg) is None  # student-2s: no scale model
    fits["student-2s"] = {"stages": {}, "command_fits": {"train": {"peak_rss_mb": {"projected_full": 1024.0,
                                                                                   "exponent": 0.0}}}}
    (tmp_path / "scale" / "scale.json").write_text(json.dumps({"models": fits}))
    assert plan.peak_rss_gib(tmp_path, ds, "recommended", small_cfg) == 3.0
    assert plan.peak_disk_gb(tmp_path, ds, "recommended", small_cfg) is None  # no member's folder sampled
    for m, gb in zip(fits, (30.0, 4.0, 2.0)):
        fits[m]["command_fits"]["train"]["peak_disk_mb"] = {"projected_full": gb * 1000, "exponent": 0.0}
    (tmp_path / "scale" / "scale.json").write_text(json.dumps({"models": fits}))
    assert plan.peak_disk_gb(tmp_path, ds, "recommended", small_cfg) == 36.0  # one folder: the members add up
    # a member keeping more than its sampled peak (a projection on other exponents) counts what it keeps,
    # the rule of make scale's table (fit.stacked_disk)
    fits["tokens-nb"]["stages"]["nb"].update(disk_mb=50_000.0, disk_exponent=0.0)
    (tmp_path / "scale" / "scale.json").write_text(json.dumps({"models": fits}))
    assert plan.peak_disk_gb(tmp_path, ds, "recommended", small_cfg) == 56.0
    # the recipe measured itself (its members in one folder, sharing their caches): its own fit
    fits["recommended"] = {"stages": {}, "command_fits": {"train": {
        "peak_rss_mb": {"projected_full": 4096.0, "exponent": 0.0},
        "peak_disk_mb": {"projected_full": 20_000.0, "exponent": 0.0}}}}
    (tmp_path / "scale" / "scale.json").write_text(json.dumps({"models": fits}))
    assert plan.peak_rss_gib(tmp_path, ds, "recommended", small_cfg) == 4.0
    assert plan.peak_disk_gb(tmp_path, ds, "recommended", small_cfg) == 20.0



def test_a_students_training_is_planned_by_the_windows_it_would_have_at_this_size():
    """Below BirdCLEF size the window budget does not bind: the plan counts the default epochs over
    the windows this size gives, not the F = 1 presentations."""
    from vocalprint.student.train import epochs_for

    stage = {"measured": [{"effective_scale": 0.02, "gathered": 20_000, "keys": 1}],
             "steps": {"train": {"seconds_per_presentation": 0.01, "projected_full_seconds": 10_800.0},
                       "windows": {"seconds_per_window": 0.001, "projected_full_seconds": 200.0},
                       "export": {"exponent": 0.0, "projected_full_seconds": 12.0}}}
    d = C.Config().distill
    n = 20_000 / 0.02 * 0.005  # 5,000 windows at a quarter of the measured size
    n_train = int(n * 0.9)
    want = 0.01 * epochs_for(d, n_train) * n_train + 0.001 * n + 12.0
    assert plan.projected(stage, 0.005)[0] == pytest.approx(want, abs=0.1)
    assert epochs_for(d, n_train) == d.epochs  # the budget does not bind here
    big = plan.projected(stage, 1.0)[0]  # at full size the cap and the budget bind
    assert big == pytest.approx(0.01 * epochs_for(d, int(d.max_windows * 0.9)) * int(d.max_windows * 0.9)
                                + 0.001 * d.max_windows + 12.0, abs=0.1)
    del stage["measured"][0]["gathered"]  # older rows: the F = 1 figures, as before
    assert plan.projected(stage, 0.005)[0] == pytest.approx(10_800.0 + 200.0 + 12.0)
