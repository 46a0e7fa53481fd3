"""Noisy-student self-training rounds (vocalprint.student.rounds): keys that chain round to round,
the pseudo-label blend, and one round on the demo data with the stand-in teacher."""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vocalprint import config as C
from vocalprint.config import fingerprint
from vocalprint.core import artifacts as A
from vocalprint.core.numeric import sigmoid
from vocalprint.student import rounds
from vocalprint.student import stage as student


def _round1_key(cfg: C.Config) -> tuple[str, str]:
    """(pseudo key, round-1 member-0 key) of ``cfg`` with one member, on fixed upstream keys."""
    r0 = student.key(cfg, "tf", "cache")
    pk = rounds.key(cfg, [Path("student") / r0], "cache", "mel", 1)
    return pk, student.key(cfg, "tf", "cache", 0, 1, pk)


def test_round_keys_chain() -> None:
    base = C.override(C.Config(), "distill.rounds", "1")
    r0 = student.key(base, "tf", "cache")
    pk, r1 = _round1_key(base)
    assert r1 != r0 and r1 != student.key(base, "tf", "cache", 0, 2, pk)
    assert student.key(base, "tf", "cache", 1, 1, pk) not in (r1, student.key(base, "tf", "cache", 1))
    # a round-0 field: another round-0 student, so other pseudo labels and another round-1 student
    seed = C.override(base, "distill.seed", "1")
    assert student.key(seed, "tf", "cache") != r0
    assert _round1_key(seed)[0] != pk and _round1_key(seed)[1] != r1
    # the self-training fields leave round 0 alone; the pl_* fields change the pseudo labels and so round 1
    for k, v in (("rounds", "3"), ("pl_power", "2"), ("pl_teacher_weight", "0"), ("pl_hop_s", "5")):
        c = C.override(base, f"distill.{k}", v)
        assert student.key(c, "tf", "cache") == r0
        assert (_round1_key(c) == (pk, r1)) == (k == "rounds"), k
    assert rounds.key(base, [Path("a")], "cache", "mel", 1) != rounds.key(base, [Path("a")], "cache", "mel", 2)
    assert rounds.key(base, [Path("a")], "cache", "mel", 1) != rounds.key(base, [Path("a")], "cache", "mel2", 1)
    assert rounds.key(base, [Path("a")], "cache", "mel", 1) != rounds.key(base, [Path("a"), Path("b")], "cache", "mel", 1)
    with pytest.raises(ValueError, match="pseudo"):
        student.key(base, "tf", "cache", 0, 1)


@pytest.mark.parametrize("front", ["mel", "tokens"])
def test_rounds_zero_leaves_the_student_key_as_before(front: str) -> None:
    """At their defaults the new fields stay out of the key: the key computed without them."""
    cfg = C.override(C.Config(), "distill.front", front)
    skip = {"members", "token_stages", *student.ROUND_FIELDS}  # window_budget: keyed at its default
    skip |= {k for k in ("token_running", "token_quant") if getattr(cfg.distill, k) == student.NEUTRAL[k]}
    if front == "mel":
        skip |= {f.name for f in fields(cfg.distill) if f.name.startswith("token") or f.name == "front"}
    before = {f.name: getattr(cfg.distill, f.name) for f in fields(cfg.distill) if f.name not in skip}
    for j in (0, 1):
        assert student.key(cfg, "tf", "c", j) == fingerprint("student", before, "tf", "c", *([f"member{j}"] if j else []))
    assert set(student.ROUND_FIELDS) <= set(student.NEUTRAL)
    assert all(getattr(C.Config().distill, k) == student.NEUTRAL[k] for k in ("token_stages", *student.ROUND_FIELDS))
    # a cached student trained before the window budget is found again with the budget off
    off = C.override(cfg, "distill.window_budget", "0")
    keyed = {k: v for k, v in before.items() if k != "window_budget"}
    assert student.key(off, "tf", "c", 0) == fingerprint("student", keyed, "tf", "c")


@pytest.mark.parametrize("key,value", [("rounds", "-1"), ("pl_power", "0"), ("pl_power", "-1"),
                                       ("pl_teacher_weight", "1.5"), ("pl_teacher_weight", "-0.1"),
                                       ("pl_hop_s", "0")])
def test_round_fields_are_validated(key: str, value: str) -> None:
    with pytest.raises(C.ConfigError, match=f"distill.{key}"):
        C.override(C.Config(), f"distill.{key}", value)


def test_blend_and_power_transform() -> None:
    s = np.array([[0.0, 2.0, -1.0], [-3.0, 0.5, 4.0]], np.float32)
    t = np.array([[2.0, np.nan, -2.0], [1.0, np.nan, np.nan]], np.float32)  # column 1: not named
    named = np.array([True, False, True])
    ps, pt = 1 / (1 + np.exp(-s.astype(np.float64))), 1 / (1 + np.exp(-np.nan_to_num(t.astype(np.float64))))
    want = np.where(named, 0.3 * pt + 0.7 * ps, ps)
    want[1, 2] = ps[1, 2]  # a named species without a teacher logit for this window: the students alone
    got = rounds.blend(s, t, named, weight=0.3, power=1.0)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-6)
    np.testing.assert_allclose(rounds.blend(s, t, named, weight=0.3, power=2.0), want ** 2, rtol=1e-5)
    np.testing.assert_allclose(rounds.blend(s, t, named, weight=1.0, power=1.0)[:, 0], pt[:, 0], rtol=1e-6)
    np.testing.assert_allclose(rounds.blend(s, t, named, weight=0.0, power=1.0), ps, rtol=1e-6)
    np.testing.assert_allclose(rounds.blend(s, t, ~named, weight=0.5, power=1.0)[:, [0, 2]], ps[:, [0, 2]], rtol=1e-6)
    big = rounds.blend(np.array([[60.0, -60.0]]), np.array([[60.0, -60.0]]), np.array([True, True]), weight=0.5, power=3.0)
    assert ((big >= 0) & (big <= 1)).all() and big[0, 0] == pytest.approx(1.0)


def test_window_bounds_at_a_hop() -> None:
    cfg = C.Config()  # 32 kHz, hop 512: 62.5 frames/s, 5-s windows
    n = 3751  # a 60-s file
    tiled = student.window_bounds(cfg, n)
    assert len(tiled) == 12 and tiled[0].tolist() == [0, 313] and tiled[-1, 1] == 3750
    np.testing.assert_array_equal(student.window_bounds(cfg, n, 5.0), tiled)
    half = student.window_bounds(cfg, n, 2.5)
    assert len(half) == 23 and half[:3, 0].tolist() == [0, 157, 313] and half[-1].tolist() == [3438, 3750]
    assert len(student.window_bounds(cfg, 300, 2.5)) == 0


@pytest.mark.slow
def test_one_round_on_the_demo_data(demo_dir, small_cfg, standin_teacher, tmp_path, monkeypatch) -> None:
    from vocalprint import pipeline
    from vocalprint.audio import mel as M
    from vocalprint.data import dataset
    from vocalprint.student.runtime import StudentRunner

    model, labels = standin_teacher
    cfg = C.override(small_cfg, "teacher", {"stride_s": 3.0, "model_path": model, "labels_path": labels})
    cfg = C.override(cfg, "distill", {"epochs": 1, "width": 8, "max_windows": 400, "batch": 32, "n_mixes": 0,
                                      "members": 1, "rounds": 1, "pl_power": 2.0})
    ds = dataset.load(demo_dir)
    root = tmp_path / "artifacts"
    out = pipeline.distill(cfg, ds, root)
    cache, tf = pipeline.teacher_features(cfg, ds, root)
    mel_dir = pipeline.mels(cfg, ds, root)
    r0 = root / "student" / student.key(cfg, tf.name, cache.name)
    assert A.is_complete(r0) and A.manifest(r0)["round"] == 0 and A.manifest(r0)["pseudo"] is None
    assert len(out) == 1 and out[0] != r0
    m = A.manifest(out[0])
    pseudo = root / "pseudo" / m["pseudo"]
    assert m["round"] == 1 and A.is_complete(pseudo) and pseudo.name in m["upstream"]
    assert out[0].name == student.key(cfg, tf.name, cache.name, 0, 1, pseudo.name)
    pm = A.manifest(pseudo)
    assert pm["round"] == 1 and pm["labelers"] == [r0.name]
    # one row per soundscape window starting every pl_hop_s (2.5 s) that ends inside the file
    rows = pd.read_csv(pseudo / "rows.csv", keep_default_na=False)
    idx = M.load_index(mel_dir)
    fps = cfg.audio.sr / cfg.mel.hop  # 62.5
    want = []
    for r in idx[idx["split"] == "train_soundscapes"].itertuples():
        k = np.arange(int((r.n_frames / fps - cfg.audio.window_s) // 2.5) + 1)
        want += [(r.name, int(np.ceil(a * 2.5 * fps))) for a in k]
    assert len(want) > 0 and list(zip(rows["name"], rows["start"])) == want
    assert (rows["stop"] - rows["start"]).between(312, 313).all()
    Y = np.load(pseudo / "labels.npy")
    assert Y.shape == (len(rows), len(ds.species)) and Y.dtype == np.float32
    assert ((Y >= 0) & (Y <= 1)).all() and pm["n_windows"] == len(rows) and m["n_pseudo"] == len(rows)
    # the labels of one file, recomputed: round 0's logits blended with the teacher's, squared
    named = np.asarray(A.manifest(cache)["columns"]) >= 0
    name = rows["name"].iloc[0]
    one = rows[rows["name"] == name]
    x = rounds.windows(M.load_frames(mel_dir, name), one["start"].to_numpy(), 312, cfg)
    s = StudentRunner(r0 / "student_fp32.tflite").predict(x)["logits"]
    t, _ = student.pool_teacher(cfg, cache, one)
    np.testing.assert_allclose(Y[one.index], rounds.blend(s, t, named, weight=0.5, power=2.0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(Y[one.index], (0.5 * sigmoid(t) + 0.5 * sigmoid(s)) ** 2, rtol=1e-5, atol=1e-6)
    # a second call builds nothing
    before = {p.name for d in ("student", "pseudo") for p in (root / d).iterdir()}
    boom = lambda *a, **k: (_ for _ in ()).throw(AssertionError("rebuilt"))  # noqa: E731
    monkeypatch.setattr(rounds, "_label_batch", boom)
    monkeypatch.setattr("vocalprint.student.train.train_student", boom)
    assert pipeline.distill(cfg, ds, root) == out
    assert {p.name for d in ("student", "pseudo") for p in (root / d).iterdir()} == before
    # `make plan` names exactly the folders the build made, all cached
    from vocalprint import plan

    steps = plan.plan(cfg, ds, root, "student")
    assert steps and all(s.cached and s.source == "measured" for s in steps)
    built = {(d.name, p.name) for d in root.iterdir() if d.is_dir() for p in d.iterdir()
             if p.is_dir() and not p.name.endswith(".partial")}
    assert {(s.stage, s.key) for s in steps} == built
