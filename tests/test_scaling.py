"""``make scale``: the power-law fit, the projections, scale.json from measured rows, ``make plan``
reading it at the data's own size, and one tiny real run (loudness: submit only)."""
from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest

from vocalprint import config as C
from vocalprint import models
from vocalprint import plan as P
from vocalprint.core import artifacts as A
from vocalprint.scaling import fit as S
from vocalprint.scaling import report as Rep
from vocalprint.scaling import run as R

FULL = P.FULL_TRAIN_FILES


def test_power_law_fit_recovers_the_exponent():
    a, b = S.fit_power([0.002, 0.01], [3.0 * 0.002 ** 1.3, 3.0 * 0.01 ** 1.3])
    assert a == pytest.approx(3.0) and b == pytest.approx(1.3)
    xs = [0.001, 0.01, 0.1, 0.5]
    a, b = S.fit_power(xs, [7.0 * x ** 0.8 for x in xs])  # more points: least squares in log-log
    assert a == pytest.approx(7.0) and b == pytest.approx(0.8)
    assert S.power((a, b), 1.0) == pytest.approx(7.0)
    assert S.fit_power([0.01, 0.01], [1.0, 2.0]) is None  # one distinct size: no fit
    assert S.fit_power([0.01, 0.02], [0.0, 2.0]) is None  # a zero cannot sit on a power law
    assert S.power(None, 1.0) is None
    c, d = S.fit_affine([0.01, 0.02, 0.03], [501.0, 502.0, 503.0])  # a base of 500 and 100 per unit of x
    assert c == pytest.approx(500.0) and d == pytest.approx(100.0) and S.fit_affine([0.1], [1.0]) is None


def test_four_core_projection_halves_only_the_parallel_share():
    assert S.four_core_seconds(100.0, 1.0, 4) == pytest.approx(50.0)
    assert S.four_core_seconds(100.0, 0.0, 4) == pytest.approx(100.0)
    assert S.four_core_seconds(100.0, 0.6, 4) == pytest.approx(40.0 + 30.0)


def test_default_models_leave_out_student_training_and_the_ensemble(monkeypatch):
    monkeypatch.delenv("PERCH_DIR", raising=False)
    keep, skipped = R.default_models()
    assert "tokens-nb" in keep and "loudness" in keep and "birdnet-probe" in keep
    assert not {"student", "student-fp32", "tokens-cnn", "ensemble", "perch-probe"} & set(keep)
    assert any(s.startswith("ensemble") for s in skipped)


def _run(scale, n_train, n_test, mels_s, mels_mb, nb_s, *, ok=True):
    """A fake measured row: a parallel ``tokens`` stage (one step per file) and a half-parallel ``nb``
    stage, both fitted as power laws in files."""
    return {"scale": scale, "train_files": n_train, "test_files": n_test, "ok": ok,
            "stages": {"tokens": {"seconds": mels_s, "disk_mb": mels_mb, "steps": {"assign": mels_s}},
                       "nb": {"seconds": nb_s, "disk_mb": 1.0, "steps": {"frames": nb_s / 2, "fit": nb_s / 2}}},
            "commands": [{"command": "train", "scale": scale, "wall_s": mels_s + nb_s + 5.0, "cpu_s": 2 * (mels_s + nb_s),
                          "peak_rss_mb": 500.0 * (n_train / 100) ** 0.5, "rc": 0},
                         {"command": "submit", "scale": scale, "wall_s": 10.0 * n_test + 3.0, "cpu_s": 15.0 * n_test,
                          "peak_rss_mb": 400.0, "rc": 0, "report": {"elapsed_s": 10.0 * n_test}}]}


def test_summary_fits_each_stage_against_the_files_present(tmp_path):
    # the same stage work per training file: x from the file counts, not the nominal F
    x1, x2 = 200 / FULL, 400 / FULL
    runs = [_run(0.002, 200, 2, 2.0, 10.0, 4.0), _run(0.01, 400, 7, 4.0, 20.0, 16.0)]
    res = S.summarise([0.002, 0.01], {"tokens-nb": runs}, cores=4, machine={"cores": 2}, generator={"0.002": 60.0})
    m = res["models"]["tokens-nb"]
    mels, nb, sub = m["stages"]["tokens"], m["stages"]["nb"], m["stages"]["submit"]
    assert mels["exponent"] == pytest.approx(1.0) and nb["exponent"] == pytest.approx(2.0)
    assert mels["projected_full_seconds"] == pytest.approx(4.0 / x2)  # linear: 4 s at x2 -> 4 / x2 at x = 1
    assert mels["seconds"] == mels["projected_full_seconds"] and mels["disk_mb"] == pytest.approx(20.0 / x2)
    assert nb["projected_full_seconds"] == pytest.approx(16.0 / x2 ** 2) and nb["disk_exponent"] == pytest.approx(0.0)
    assert mels["parallel_share"] == 1.0 and nb["parallel_share"] == 0.5
    assert mels["projected_full_seconds_cores"] == pytest.approx(mels["projected_full_seconds"] / 2)
    assert nb["projected_full_seconds_cores"] == pytest.approx(nb["projected_full_seconds"] * 0.75)
    assert [p["effective_scale"] for p in mels["measured"]] == [x1, x2]
    assert sub["basis"].startswith("test files") and sub["exponent"] == pytest.approx(1.0)
    assert sub["projected_full_seconds"] == pytest.approx(10.0 * 700)
    other = m["stages"][S.OTHER]  # the train command's 5 s outside the stages: no growth
    assert other["exponent"] == pytest.approx(0.0) and other["projected_full_seconds"] == pytest.approx(5.0)
    full = m["projected_full"]
    want4 = (mels["projected_full_seconds_cores"] + nb["projected_full_seconds_cores"] + 5.0) / 3600
    assert full["train_hours_4_cores"] == pytest.approx(want4)
    assert full["train_hours_2_cores"] == pytest.approx((4.0 / x2 + 16.0 / x2 ** 2 + 5.0) / 3600)
    assert full["peak_rss_gib"] == pytest.approx(max(500.0 * (FULL / 100) ** 0.5, 400.0) / 1024)
    rss2 = 500.0 * 2 ** 0.5  # train's peak: 500 * sqrt(2) MB at x1, 1,000 MB at x2 -> affine to x = 1
    assert full["peak_rss_gib_affine"] == pytest.approx((rss2 + (1000.0 - rss2) / (x2 - x1) * (1 - x1)) / 1024)
    assert full["disk_gb"] == pytest.approx((20.0 / x2 + 1.0) / 1000)
    assert full["goals_met"]["train_hours_4_cores"] is (want4 <= 12) and set(full["goals_met"]) == set(S.GOALS)
    # the JSON schema plan.py and readers rely on
    A.write_json(tmp_path / "scale.json", res)
    back = json.loads((tmp_path / "scale.json").read_text())
    assert back["scales"] == [0.002, 0.01] and back["machine"] == {"cores": 2} and back["generator"] == {"0.002": 60.0}
    st = back["models"]["tokens-nb"]["stages"]["nb"]
    assert {"measured", "exponent", "projected_full_seconds", "seconds", "disk_mb"} <= set(st)
    assert {"scale", "seconds", "disk_mb"} <= set(st["measured"][0])
    assert len(back["models"]["tokens-nb"]["commands"]) == 4
    assert {"train_hours_4_cores", "peak_rss_gib", "disk_gb"} <= set(back["models"]["tokens-nb"]["projected_full"])
    table = Rep.markdown(res)
    assert "F=0.002 (measured)" in table and "F=1 (projected)" in table and "12 h:" in table and "| nb |" in table
    Rep.plot(res, tmp_path / "scale.png")
    assert (tmp_path / "scale.png").stat().st_size > 0


def test_a_stage_is_projected_step_by_step_so_a_flat_step_does_not_hide_a_growing_one(tmp_path):
    """A head whose out-of-fold check is capped (flat) and whose fit grows as x^2: the stage's F = 1
    projection is the sum of the two steps' projections, not one power law through the totals;
    ``--refit`` fits a scale.json again from its own points the same way."""
    x1, x2 = 200 / FULL, 400 / FULL
    runs = [_run(0.002, 200, 2, 2.0, 10.0, 4.0), _run(0.01, 400, 7, 4.0, 20.0, 16.0)]
    for r, fit in zip(runs, (1.0, 4.0)):
        r["stages"]["train"] = {"seconds": 30.0 + fit, "disk_mb": 1.0, "steps": {"oof": 30.0, "fit": fit}}
    res = S.summarise([0.002, 0.01], {"stsg-linear": runs}, cores=4)
    tr = res["models"]["stsg-linear"]["stages"]["train"]
    want = 30.0 + 4.0 / x2 ** 2
    assert tr["projected_full_seconds"] == pytest.approx(want)
    assert tr["steps"]["fit"]["exponent"] == pytest.approx(2.0) and tr["steps"]["oof"]["exponent"] == pytest.approx(0.0)
    assert tr["exponent"] == pytest.approx(math.log(want / 34.0) / math.log(1 / x2), abs=1e-4)  # via the last point
    assert tr["projected_full_seconds_cores"] == pytest.approx(want / 2)  # both steps map over the cores
    one_law = S.fit_power([x1, x2], [31.0, 34.0])
    assert S.power(one_law, 1.0) < want / 10  # what a single fit of the totals would have said
    assert "steps" not in res["models"]["stsg-linear"]["stages"]["tokens"]  # one step: one law
    (tmp_path / "out").mkdir()
    A.write_json(tmp_path / "out" / "scale.json", res)
    assert R.main(["--out", str(tmp_path / "out"), "--refit"]) == 0
    again = json.loads((tmp_path / "out" / "scale.json").read_text())
    back = again["models"]["stsg-linear"]["stages"]["train"]
    assert back["projected_full_seconds"] == pytest.approx(want) and back["exponent"] == tr["exponent"]
    assert again["models"]["stsg-linear"]["projected_full"]["disk_gb"] == pytest.approx(
        res["models"]["stsg-linear"]["projected_full"]["disk_gb"])


def test_a_students_training_is_projected_from_the_windows_it_presents():
    """At small sizes a student trains on every window it has (its epochs fill the budget with few
    windows); at F = 1 ``distill.max_windows`` and ``distill.window_budget`` bind. Its training step
    is projected as seconds per window presented times the default's presentations at F = 1 (per
    member), not as a power law of the data size; its other steps keep their power laws."""
    runs = [_run(0.002, 200, 2, 2.0, 10.0, 4.0), _run(0.01, 400, 7, 4.0, 20.0, 16.0)]
    for r, (win, train, shown) in zip(runs, ((10.0, 300.0, 30_000), (20.0, 330.0, 33_000))):
        r["stages"]["student"] = {"seconds": win + train, "disk_mb": 5.0, "steps": {"windows": win, "train": train},
                                  "presentations": 2 * shown, "keys": 2}
    res = S.summarise([0.002, 0.01], {"student": runs}, cores=4)
    st = res["models"]["student"]["stages"]["student"]
    full = S.full_presentations()
    from vocalprint.student.train import epochs_for

    dcfg = C.Config().distill
    n_train = int(dcfg.max_windows * 0.9)  # a tenth of the recordings held out
    assert full == epochs_for(dcfg, n_train) * n_train and dcfg.window_budget <= full < dcfg.window_budget + n_train
    assert st["steps"]["train"]["basis"] == "window presentations"
    assert st["steps"]["train"]["projected_full_seconds"] == pytest.approx(330.0 / 66_000 * full * 2)
    assert st["steps"]["windows"]["exponent"] == pytest.approx(1.0)  # a power law without "gathered"
    assert st["projected_full_seconds"] == pytest.approx(330.0 / 66_000 * full * 2 + 20.0 * FULL / 400)
    # on 4 cores: the training by its measured thread share; gathering the windows is serial
    train4 = 330.0 / 66_000 * full * 2 * (1 - S.THREAD_SHARES[("student", "train")] / 2)
    assert st["projected_full_seconds_cores"] == pytest.approx(train4 + 20.0 * FULL / 400)
    # with the windows each member gathered, that step stops growing at distill.max_windows
    for r, gathered in zip(runs, (2 * 2_000, 2 * 4_000)):
        r["stages"]["student"]["gathered"] = gathered
    capped = S.summarise([0.002, 0.01], {"student": runs})["models"]["student"]["stages"]["student"]
    assert capped["steps"]["windows"]["basis"] == "windows gathered"
    assert capped["steps"]["windows"]["projected_full_seconds"] == pytest.approx(
        20.0 / 8_000 * C.Config().distill.max_windows * 2)
    assert capped["projected_full_seconds"] == pytest.approx(
        330.0 / 66_000 * full * 2 + 20.0 / 8_000 * 2 * C.Config().distill.max_windows)
    runs[1]["stages"]["student"]["steps"]["train"] = 660.0  # twice as slow per window: twice the projection
    slow = S.summarise([0.002, 0.01], {"student": runs})["models"]["student"]["stages"]["student"]
    assert slow["steps"]["train"]["projected_full_seconds"] == pytest.approx(2 * st["steps"]["train"]["projected_full_seconds"])


def test_stage_costs_add_up_a_students_presented_windows_over_its_members(tmp_path):
    for member, shown in enumerate((64_000, 60_000)):
        A.finish(_mkdir(tmp_path / "student" / f"k{member}.partial"), tmp_path / "student" / f"k{member}",
                 {"seconds": {"windows": 1.0, "train": 9.0}, "presentations": shown, "n_windows": 10_000 + member})
    A.finish(_mkdir(tmp_path / "mels" / "m.partial"), tmp_path / "mels" / "m", {"seconds": {"mels": 2.0}})
    for key, part in (("t1", "clips"), ("t2", "all")):  # a recipe's folder: the probe's cache and the students'
        A.finish(_mkdir(tmp_path / "teacher" / f"{key}.partial"), tmp_path / "teacher" / key,
                 {"seconds": {"teacher": 5.0}, "part": part})
    costs = R.stage_costs(tmp_path)
    assert costs["student"]["presentations"] == 124_000 and costs["student"]["keys"] == 2
    assert costs["student"]["gathered"] == 20_001
    assert costs["student"]["steps"] == {"windows": 2.0, "train": 18.0} and costs["student"]["complete"]
    assert "presentations" not in costs["mels"] and "parts" not in costs["mels"]
    assert costs["teacher"]["parts"] == ["all", "clips"] and costs["teacher"]["seconds"] == 10.0


def _mkdir(p):
    p.mkdir(parents=True)
    return p


def test_the_recommended_recipe_is_projected_from_its_measured_members():
    """recommended trains its members one after the other: hours and disk add up, memory is the
    larger member's, and its training goal is 6 h; no projection until every member was measured,
    and the table names the members that were not."""
    runs = [_run(0.002, 200, 2, 2.0, 10.0, 4.0), _run(0.01, 400, 7, 4.0, 20.0, 16.0)]
    members = list(models.members_of(C.Config(), "recommended"))
    assert members == ["birdnet-zeroshot", "tokens-nb", "student-2s"]
    assert "recommended" not in S.summarise([0.002, 0.01], {"loudness": runs})["derived"]  # no member measured
    part = S.summarise([0.002, 0.01], {"tokens-nb": runs, "birdnet-zeroshot": runs})
    assert part["derived"]["recommended"] == {"members": members, "unmeasured": ["student-2s"], "projected_full": None}
    assert "not projected: student-2s not measured | 6 h: n/a |" in Rep.markdown(part)
    res = S.summarise([0.002, 0.01], {m: runs for m in members})
    rec, nb = res["derived"]["recommended"], res["models"]["tokens-nb"]["projected_full"]
    assert rec["members"] == members and rec["unmeasured"] == []
    full = rec["projected_full"]
    assert full["train_hours_4_cores"] == pytest.approx(3 * nb["train_hours_4_cores"])
    assert full["disk_gb"] == pytest.approx(3 * nb["disk_gb"]) and full["peak_rss_gib"] == nb["peak_rss_gib"]
    assert full["goals"]["train_hours_4_cores"] == 6.0
    assert full["goals_met"]["train_hours_4_cores"] is (full["train_hours_4_cores"] <= 6.0)
    assert "sum of birdnet-zeroshot + tokens-nb + student-2s" in Rep.markdown(res) and "| 6 h:" in Rep.markdown(res)
    assert "ensemble" not in res["derived"]  # its members are the user's choice
    assert full["shared_clip_cache"]["train_hours_4_cores"] == 0.0  # no member ran the teacher


def test_the_recipe_counts_the_focal_clips_teacher_cache_once():
    """The probe's clips-only cache and student-2s's full cache share one stride (2 s): in the
    recipe the student links the probe's clips, so the clips' share of the student's teacher stage
    (by the audio it reads at F = 1) comes off the members' sum; a student at another stride would
    run its own."""
    runs = [_run(0.02, 620, 14, 2.0, 10.0, 4.0), _run(0.05, 1450, 35, 4.0, 20.0, 8.0)]
    for r, sec in zip(runs, (600.0, 1200.0)):
        r["stages"]["teacher"] = {"seconds": sec, "disk_mb": 60.0, "steps": {"teacher": sec}}
        r["audio_hours"] = {"clips": sec / 60 - 3.0, "train_soundscapes": 3.0}
        r["commands"][0]["wall_s"] += sec
    members = list(models.members_of(C.Config(), "recommended"))
    res = S.summarise([0.02, 0.05], {m: runs for m in members})
    st = res["models"]["student-2s"]["stages"]["teacher"]
    share = S.full_clip_sample()["hours"] / st["audio"]["audio_hours_full"]
    saved = res["derived"]["recommended"]["projected_full"]["shared_clip_cache"]
    assert 0.5 < share < 1 and saved["train_hours_4_cores"] == pytest.approx(st["projected_full_seconds_cores"] * share / 3600)
    full = res["derived"]["recommended"]["projected_full"]
    plain = sum(res["models"][m]["projected_full"]["train_hours_4_cores"] for m in members)
    assert full["train_hours_4_cores"] == pytest.approx(plain - saved["train_hours_4_cores"])
    assert "less the focal clips' teacher cache built once" in Rep.markdown(res)
    other = S.shared_clip_cache({"birdnet-zeroshot": res["models"]["birdnet-zeroshot"],
                                 "student": res["models"]["student-2s"]}, ["birdnet-zeroshot", "student"])
    assert other["train_hours_4_cores"] == 0.0  # the two-member student's cache runs every 1 s


def test_the_disk_goal_counts_the_files_a_stage_deletes_at_its_end():
    """A training whose kept outputs are small but whose transient files peak past 60 GB at F = 1
    misses the disk goal; rows measured before the runner sampled the folder keep the old rule."""
    x2 = 400 / FULL
    runs = [_run(0.002, 200, 2, 2.0, 10.0, 4.0), _run(0.01, 400, 7, 4.0, 20.0, 16.0)]
    assert S.summarise([0.002, 0.01], {"tokens-nb": runs})["models"]["tokens-nb"]["projected_full"]["peak_disk_gb"] is None
    for r, peak in zip(runs, (1_000.0, 2_000.0)):  # 2 GB at x2, linear in x: 2 / x2 GB at F = 1
        r["commands"][0]["peak_disk_mb"] = peak
    res = S.summarise([0.002, 0.01], {m: runs for m in models.members_of(C.Config(), "recommended")})
    full = res["models"]["tokens-nb"]["projected_full"]
    assert full["disk_gb"] < 60 and full["peak_disk_gb"] == pytest.approx(2.0 / x2) and 2.0 / x2 > 60
    assert full["goals_met"]["disk_gb"] is False
    assert res["models"]["tokens-nb"]["command_fits"]["train"]["peak_disk_mb"]["exponent"] == pytest.approx(1.0)
    rec = res["derived"]["recommended"]["projected_full"]
    assert rec["peak_disk_gb"] == pytest.approx(3 * 2.0 / x2) and rec["goals_met"]["disk_gb"] is False
    table = Rep.markdown(res)
    assert "; 1.0 GB |" in table and "; 2.0 GB |" in table and "60 GB: NOT met" in table  # kept; peak per F


def test_a_timed_out_run_keeps_the_stages_it_completed():
    late = _run(0.01, 400, 7, 4.0, 2.0, 4.0, ok=False)
    late["stages"]["nb"]["complete"] = False  # killed in nb: only its .partial folder
    late["commands"] = [dict(late["commands"][0], rc="timeout", wall_s=1500.0)]
    res = S.summarise([0.002, 0.01], {"m": [_run(0.002, 200, 2, 2.0, 1.0, 1.0), late]})
    m = res["models"]["m"]
    assert m["stages"]["tokens"]["exponent"] == pytest.approx(1.0)  # completed before the kill: measured
    assert m["stages"]["nb"]["exponent"] is None and m["stages"]["nb"]["seconds"] is None
    assert [p["scale"] for p in m["stages"]["submit"]["measured"]] == [0.002]
    assert m["projected_full"]["train_hours_4_cores"] is None and m["projected_full"]["goals_met"]["disk_gb"] is None
    table = Rep.markdown(res)
    assert "n/a" in table and "timed out in train after 25.0 min" in table


def test_a_run_reports_its_progress_and_the_peak_of_the_files_it_deletes(tmp_path, caplog):
    """The transient disk of a stage (written, then deleted before it ends) is caught by the
    sampling, and a heartbeat line names the run while it goes."""
    import logging
    import sys

    watch = tmp_path / "art"
    watch.mkdir()
    child = ("import pathlib, time; f = pathlib.Path(r'%s') / 'frames.bin'; f.write_bytes(bytes(3_000_000)); "
             "time.sleep(2.0); f.unlink(); time.sleep(0.3)" % watch)
    with caplog.at_level(logging.INFO, logger="vocalprint.scale"):
        row = R.run_cmd([sys.executable, "-c", child], tmp_path / "train.log", watch=watch, heartbeat_s=0.2)
    assert row["rc"] == 0 and row["peak_disk_mb"] >= 3.0 and R._du_mb(watch) == 0.0
    assert any(str(tmp_path / "train") in r.getMessage() and "CPU s" in r.getMessage() for r in caplog.records)
    assert "peak_disk_mb" not in R.run_cmd([sys.executable, "-c", "pass"], tmp_path / "x.log")


class _FakeDataset:
    species = ("a", "b")

    def __init__(self, n: int):
        self.train = list(range(n))

    def fingerprint(self) -> str:
        return "fake-data"


def test_plan_projects_stages_to_the_size_of_the_data_it_is_asked_about(tmp_path):
    cfg = C.load(None, ())
    stages = {"nb": {"exponent": 1.5, "projected_full_seconds": 3600.0, "seconds": 3600.0,
                     "disk_exponent": 1.0, "disk_mb": 2000.0},
              "mels": {"exponent": None, "projected_full_seconds": None, "seconds": None, "disk_mb": None}}
    A.write_json(tmp_path / "scale" / "scale.json", {"models": {"tokens-nb": {"stages": stages}}})
    ds = _FakeDataset(2856)  # F_now = 0.1
    f_now = 2856 / FULL
    (step,) = P.plan(cfg, ds, tmp_path, "tokens-nb")
    assert step.stage == "nb" and not step.cached and step.source == "projected"
    assert step.seconds == pytest.approx(round(3600.0 * f_now ** 1.5, 1))
    assert step.disk_mb == pytest.approx(round(2000.0 * f_now, 1))
    full = P.plan(cfg, _FakeDataset(FULL), tmp_path, "tokens-nb")[0]
    assert full.seconds == pytest.approx(3600.0) and full.disk_mb == pytest.approx(2000.0)
    assert "projected" in P.table("tokens-nb", [step])
    assert P.projected(stages["mels"], 0.1) == (None, None)  # unfitted: unknown numbers, still projected
    assert P.projected({"seconds": 10.0, "disk_mb": 1.0}, 0.1) == (10.0, 1.0)  # no exponent: the F = 1 values
    stepped = {"seconds": 130.0, "exponent": 1.2, "projected_full_seconds": 130.0, "disk_mb": 1.0,
               "steps": {"oof": {"exponent": 0.0, "projected_full_seconds": 30.0},
                         "fit": {"exponent": 2.0, "projected_full_seconds": 100.0}}}
    assert P.projected(stepped, 0.1)[0] == pytest.approx(30.0 + 100.0 * 0.01)  # a stage fitted step by step
    # a stage already built keeps its measured cost
    key = P.stage_keys(cfg, ds, tmp_path, "tokens-nb")[0][1]
    final = A.stage_dir(tmp_path, "nb", key)
    work = A.partial_dir(final)
    (work / "t.npy").write_bytes(b"x" * 1000)
    A.finish(work, final, {"stage": "nb", "seconds": {"frames": 2.0, "fit": 1.5}})
    (built,) = P.plan(cfg, ds, tmp_path, "tokens-nb")
    assert built.cached and built.source == "measured" and built.seconds == pytest.approx(3.5)
    assert P.plan(cfg, ds, tmp_path, "melstats-linear")[0].source == "unknown"  # no scale row for it
    assert math.isclose(f_now, 0.1, rel_tol=1e-3)


def test_tiny_real_run_of_loudness(demo_dir, tmp_path, capsys):
    """loudness trains nothing: one submit per fraction, measured, written and tabled."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "scale-0.0002").symlink_to(demo_dir)  # reused: sample_submission.csv is there
    assert R.main(["--scales", "0.0002", "--models", "loudness", "--out", str(tmp_path / "out"),
                   "--data-root", str(data), "--set", "run.n_jobs=1"]) == 0
    res = json.loads((tmp_path / "out" / "scale.json").read_text())
    (cmd,) = res["models"]["loudness"]["commands"]
    assert cmd["command"] == "submit" and cmd["rc"] == 0 and cmd["wall_s"] > 0 and cmd["peak_rss_mb"] > 50
    assert cmd["cpu_s"] > 0 and cmd["report"]["rows"] > 0
    assert (tmp_path / "out" / "runs" / "0.0002" / "loudness" / "submission.csv").is_file()
    assert res["models"]["loudness"]["stages"]["submit"]["exponent"] is None  # one fraction: measured only
    assert res["models"]["loudness"]["projected_full"]["train_hours_4_cores"] == 0.0  # nothing to train
    assert res["generator"] == {"0.0002": None} and (tmp_path / "out" / "scale.png").is_file()
    assert "| loudness | submit |" in capsys.readouterr().out
    (tmp_path / "out" / "scale.json").unlink()  # fitted again from measured.json, nothing run
    assert R.main(["--out", str(tmp_path / "out"), "--from-measured"]) == 0
    again = json.loads((tmp_path / "out" / "scale.json").read_text())
    assert again["models"]["loudness"]["commands"] == res["models"]["loudness"]["commands"]
    # --update re-measures the named models and keeps the others
    kept = dict(again["models"]["loudness"], measured_on="2026-01-01")
    (tmp_path / "out" / "scale.json").write_text(json.dumps(dict(again, models={**again["models"], "tokens-nb": kept})))
    args = ["--scales", "0.0002", "--models", "loudness", "--out", str(tmp_path / "out"), "--data-root", str(data),
            "--set", "run.n_jobs=1", "--update"]
    assert R.main(args) == 0
    upd = json.loads((tmp_path / "out" / "scale.json").read_text())
    assert upd["models"]["tokens-nb"] == kept and upd["models"]["loudness"]["measured_on"] != "2026-01-01"
    assert len(upd["models"]["loudness"]["commands"]) == 1  # measured again, not appended
    # a model measured at other fractions joins the table: a column per fraction of either
    (data / "scale-0.0003").symlink_to(demo_dir)
    assert R.main(["--scales", "0.0003", *args[2:]]) == 0
    both = json.loads((tmp_path / "out" / "scale.json").read_text())
    assert both["scales"] == [0.0002, 0.0003] and both["models"]["tokens-nb"] == kept
    assert [c["scale"] for c in both["models"]["loudness"]["commands"]] == [0.0003]
    assert set(both["generator"]) == {"0.0002", "0.0003"}
    assert "F=0.0002 (measured) | F=0.0003 (measured)" in Rep.markdown(both)
    with pytest.raises(SystemExit, match="no .* to fit again"):
        R.main(["--out", str(tmp_path / "empty"), "--refit"])


def test_fractions_too_close_in_files_are_flagged_before_measuring():
    """0.01 and 0.02 are 2x apart in F but 363 and 620 files: their fit would overstate growth."""
    said = R.spread_warning([0.01, 0.02])
    assert said.startswith("F = 0.01 and 0.02 have 363 and 620 training files, 1.7 times apart")
    assert "0.02,0.05" in said
    assert R.spread_warning([0.02, 0.05]) == ""  # 620 and 1,450 files
    assert R.spread_warning([0.05, 0.002, 0.02]) == ""  # the outer fractions count
    assert R.spread_warning([1.0]) == ""  # one fraction: measured, nothing fitted


def test_the_teacher_is_projected_linearly_in_the_training_audio():
    """BirdNET runs one chunk per stride of every file: its F = 1 time is the largest measured time
    times the ratio of the audio it reads, however steep a power law through two small sizes would
    be. At F = 1 the students' cache reads the soundscapes up to distill.max_soundscape_windows; a
    probe's cache reads the clips only; the Mel frames read everything."""
    runs = [_run(0.01, 363, 7, 2.0, 10.0, 4.0), _run(0.02, 620, 14, 4.0, 20.0, 16.0)]
    for r, (sec, mb, hours) in zip(runs, ((300.0, 30.0, 6.0), (600.0 * 1.2, 60.0, 11.0))):
        r["stages"]["teacher"] = {"seconds": sec, "disk_mb": mb, "steps": {"teacher": sec}, "parts": ["all"]}
        r["stages"]["mels"] = {"seconds": sec / 10, "disk_mb": mb * 10, "steps": {"mels": sec / 10}}
        r["audio_hours"] = {"clips": hours - 3.0, "train_soundscapes": 3.0}
    res = S.summarise([0.01, 0.02], {"student-2s": runs}, cores=4)
    te, me = (res["models"]["student-2s"]["stages"][k] for k in ("teacher", "mels"))
    full = S.planned_audio_hours(1.0)
    assert full["clips"] + full["train_soundscapes"] == pytest.approx(326.17 + 9726 / 60, abs=0.1)  # BirdCLEF+ 2025
    cap_h = C.Config().distill.max_soundscape_windows * 5 / 3600  # 40,000 windows of 5 s: 55.6 h of 162
    kept = S.full_clip_sample()  # teacher.max_class_windows: the clips the teacher runs at F = 1
    assert 0.3 < kept["hours"] / full["clips"] < 0.7 and kept["hours_all"] == pytest.approx(full["clips"])
    want = kept["hours"] + cap_h
    assert te["basis"] == "training audio hours (linear)" and te["audio"]["audio_hours"] == 11.0
    assert te["audio"]["audio_hours_full"] == pytest.approx(want)
    assert te["projected_full_seconds"] == pytest.approx(720.0 * want / 11.0)
    assert te["disk_mb"] == pytest.approx(60.0 * want / 11.0)
    assert te["projected_full_seconds_cores"] == pytest.approx(720.0 * want / 11.0 / 2)  # one file per worker
    assert te["exponent"] == pytest.approx(math.log(want / 11.0) / math.log(FULL / 620), abs=1e-4)
    assert me["projected_full_seconds"] == pytest.approx(72.0 * sum(S.planned_audio_hours(1.0).values()) / 11.0)  # no cap
    # a probe's cache: the clips only, here and at F = 1
    for r in runs:
        r["stages"]["teacher"]["parts"] = ["clips"]
    probe = S.summarise([0.01, 0.02], {"birdnet-zeroshot": runs})["models"]["birdnet-zeroshot"]["stages"]["teacher"]
    assert probe["projected_full_seconds"] == pytest.approx(720.0 * kept["hours"] / 8.0)
    # a point measured where the cap binds (F = 0.2: the largest classes pass 2,000 windows) counts
    # the clips the teacher ran there, not all of them
    at = S.clip_sample_at(0.2)
    assert at["hours"] < at["hours_all"]
    point = {"scale": 0.2, "audio": {"clips": 100.0, "train_soundscapes": 9.0}, "parts": ["clips"]}
    assert S.stage_audio("teacher", point, False) == pytest.approx(100.0 * at["hours"] / at["hours_all"])
    # without measured audio (rows written before the runner recorded it) the generator's plan says
    for r in runs:
        del r["audio_hours"], r["stages"]["teacher"]["parts"]
    planned = S.summarise([0.01, 0.02], {"student-2s": runs})["models"]["student-2s"]["stages"]["teacher"]
    assert planned["audio"]["audio_hours"] == pytest.approx(sum(S.planned_audio_hours(0.02).values()))
    # other stages keep their power law in files
    assert res["models"]["student-2s"]["stages"]["tokens"]["basis"] == "training files / 28,564"


def test_the_recipe_measured_itself_has_its_own_row_against_its_own_goal(demo_dir, tmp_path, monkeypatch):
    """``--models recommended`` trains its members in one folder (sharing the teacher's cache of
    the focal clips, as a user's run does) and is judged against the recipe's 6-h goal; the sum of
    separately measured members is then not shown."""
    runs = [_run(0.02, 620, 14, 2.0, 10.0, 4.0), _run(0.05, 1450, 35, 4.0, 20.0, 8.0)]
    res = S.summarise([0.02, 0.05], {"recommended": runs, "tokens-nb": runs})
    own = res["models"]["recommended"]["projected_full"]
    assert own["goals"]["train_hours_4_cores"] == S.RECOMMENDED_TRAIN_HOURS
    assert own["goals_met"]["train_hours_4_cores"] is (own["train_hours_4_cores"] <= S.RECOMMENDED_TRAIN_HOURS)
    assert "goals" not in res["models"]["tokens-nb"]["projected_full"]  # a model: one Kaggle session
    assert "recommended" not in res["derived"]
    table = Rep.markdown(res)
    assert "| recommended | **train wall** |" in table and f"| {S.RECOMMENDED_TRAIN_HOURS:g} h: " in table
    assert "sum of" not in table
    # its stages in build order: the teacher's before the tables', the student's last
    order = S.build_order("recommended", ["student", "nb", "teacher", "submit", "mels", "teacher-model"])
    assert order == ["teacher-model", "teacher", "nb", "mels", "student", "submit"]
    # the runner trains a recipe (its members) before submitting it
    said = []
    monkeypatch.setattr(R, "run_cmd", lambda cmd, log_path, **kw: said.append(cmd[3]) or {
        "rc": 0, "wall_s": 1.0, "cpu_s": 1.0, "peak_rss_mb": 1.0})
    row = R.measure(demo_dir, "recommended", tmp_path / "run", scale=0.02)
    assert said == ["train", "submit"] and row["ok"]
    R.measure(demo_dir, "loudness", tmp_path / "run2", scale=0.02)
    assert said[2:] == ["submit"]  # nothing to train


def test_members_in_one_folder_stack_their_disk_peaks_on_what_the_others_keep():
    assert S.stacked_disk([(30.0, 5.0), (4.0, 10.0), (2.0, None)]) == 30.0 + 10.0 + 2.0
    assert S.stacked_disk([(30.0, 5.0), (None, 1.0)]) is None and S.stacked_disk([]) is None


def test_a_teacher_based_models_window_stages_are_projected_at_the_kept_share_of_windows():
    """teacher.max_class_windows keeps about half the clips' windows at F = 1 (the common classes'):
    the teacher features and the probe's fit of a model with the teacher chain are projected at that
    share of x, a token model's head at x = 1."""
    runs = [_run(0.02, 620, 14, 2.0, 10.0, 4.0), _run(0.05, 1450, 35, 4.0, 20.0, 8.0)]
    for r, sec in zip(runs, (10.0, 25.0)):
        r["stages"]["tfeatures"] = {"seconds": sec / 10, "disk_mb": sec, "steps": {"pool": sec / 10}}
        r["stages"]["train"] = {"seconds": sec, "disk_mb": 1.0, "steps": {"oof": 5.0, "fit": sec - 5.0}}
    share = S.full_clip_sample()["window_share"]
    res = S.summarise([0.02, 0.05], {"birdnet-zeroshot": runs})["models"]["birdnet-zeroshot"]["stages"]
    for r in runs:
        del r["stages"]["tfeatures"]
    tok = S.summarise([0.02, 0.05], {"stsg-linear": runs})["models"]["stsg-linear"]["stages"]
    assert res["train"]["x_full"] == share and "x_full" not in tok["train"]
    fit = S.fit_power([620 / S.FULL_TRAIN_FILES, 1450 / S.FULL_TRAIN_FILES], [5.0, 20.0])
    assert res["train"]["steps"]["fit"]["projected_full_seconds"] == pytest.approx(S.power(fit, share))
    assert tok["train"]["steps"]["fit"]["projected_full_seconds"] == pytest.approx(S.power(fit, 1.0))
    assert res["tfeatures"]["disk_mb"] < S.power(S.fit_power([620 / S.FULL_TRAIN_FILES, 1450 / S.FULL_TRAIN_FILES],
                                                             [10.0, 25.0]), 1.0)
    # make plan at a size: the share the clips keep at that size (all of them at F = 0.05)
    fit_s = res["train"]["projected_full_seconds"]
    assert P.projected(res["train"], 1.0)[0] == pytest.approx(fit_s, rel=1e-3)
    b = res["train"]["steps"]["fit"]["exponent"]
    assert S.clip_sample_at(0.05)["window_share"] == 1.0
    small = P.projected(dict(res["train"], steps=None), 0.05)[0]
    assert small == pytest.approx(fit_s * (0.05 / share) ** res["train"]["exponent"], rel=1e-3)
    assert b > 0
