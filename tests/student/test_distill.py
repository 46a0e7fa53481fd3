"""Tests for the student (vocalprint.student.net, token_front, train, export, runtime): a small stand-in
teacher, synthetic mel windows, no BirdNET."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from vocalprint.config.student import StudentConfig
from vocalprint.student.export import export_tflite
from vocalprint.student.net import BIRDNET_PARAMS, build_student, count_params, inference_params
from vocalprint.student.runtime import StudentRunner
from vocalprint.student.train import epochs_for, losses, pair_up, predict_keras, train_student

STUDENT_MODULES = ("net", "token_front", "train", "export", "runtime", "fcn", "predictor")

N_FRAMES, N_MELS = 312, 128
BANDS = [(8, 20), (40, 52), (72, 84), (104, 116)]  # one lit band range per species
N_CLASSES = len(BANDS)
KNOWN = np.array([7, 19, 33])  # teacher ("BirdNET") columns of species 0..2; species 3 unknown
TEACHER_CLASSES, TEACHER_DIM, N_META = 50, 1024, 3


def make_windows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Synthetic dB log-Mel windows [n, 312, 128]: background noise near -60 dB, plus for each
    present species (1-2 per window) a 1.5-s burst of its band at -15 dB. Returns (mels, labels,
    meta) where meta [n, 3] depends on the species (so the meta head has something to learn)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(-60.0, 4.0, (n, N_FRAMES, N_MELS)).astype(np.float32)
    y = np.zeros((n, N_CLASSES), np.float32)
    for i in range(n):
        for c in rng.choice(N_CLASSES, size=rng.integers(1, 3), replace=False):
            t0 = rng.integers(0, N_FRAMES - 100)
            lo, hi = BANDS[c]
            x[i, t0:t0 + 94, lo:hi] += 45.0
            y[i, c] = 1.0
    x = np.clip(x - x.max(axis=(1, 2), keepdims=True), -80.0, 0.0)  # like power_to_db(ref=max)
    meta = np.stack([y[:, 0] - y[:, 1], y[:, 2], rng.normal(0, 0.1, n)], 1).astype(np.float32)
    return x, y, meta


class TinyTeacher:
    """Fixed random network with BirdNET-shaped outputs: 1024-d embedding, class logits."""

    def __init__(self, seed: int = 123) -> None:
        rng = np.random.default_rng(seed)
        self.w1 = rng.normal(0, 1 / np.sqrt(N_MELS), (N_MELS, TEACHER_DIM)).astype(np.float32)
        self.w2 = rng.normal(0, 3 / np.sqrt(TEACHER_DIM), (TEACHER_DIM, TEACHER_CLASSES))
        self.w2 = self.w2.astype(np.float32)

    def __call__(self, mels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        f = (mels.max(axis=1) + 40.0) / 20.0  # per-band peak level
        emb = np.maximum(f @ self.w1, 0.0)
        logits = (emb - emb.mean(1, keepdims=True)) @ self.w2
        return emb.astype(np.float32), logits.astype(np.float32)

    def competition_logits(self, mels: np.ndarray) -> np.ndarray:
        """Teacher logits of the competition species: NaN column for the one it does not know."""
        _, lg = self(mels)
        out = np.full((len(mels), N_CLASSES), np.nan, np.float32)
        out[:, :3] = lg[:, KNOWN]
        return out


def auc(score: np.ndarray, y: np.ndarray) -> float:
    """ROC AUC by the rank-sum formula (ties broken arbitrarily; fine for continuous scores)."""
    r = np.argsort(np.argsort(score)) + 1
    pos = y > 0.5
    n1, n0 = pos.sum(), (~pos).sum()
    return float((r[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


SMALL = StudentConfig(width=8, depth=3, emb_dim=32, epochs=8, batch=16, lr=3e-3, seed=0, mix_pairs=0.0,
                      metadata=True)


@pytest.fixture(scope="module")
def data() -> dict:
    x, y, meta = make_windows(256, seed=1)
    teacher = TinyTeacher()
    emb, _ = teacher(x)
    tl = teacher.competition_logits(x)
    # missing targets, as in the real data
    y = y.copy()
    y[200:] = np.nan  # unlabeled soundscape windows
    emb = emb.copy()
    emb[:8] = np.nan  # windows the teacher runner failed on
    tl[:8] = np.nan
    meta = meta.copy()
    meta[::5, :2] = np.nan  # partly missing metadata
    vx, vy, vmeta = make_windows(64, seed=2)
    vemb, _ = teacher(vx)
    return dict(x=x.astype(np.float16), y=y, emb=emb, tl=tl, meta=meta,
                val=(vx, vemb, teacher.competition_logits(vx), vy, vmeta),
                y_true=make_windows(256, 1)[1])


@pytest.fixture(scope="module")
def trained(data: dict) -> tuple:
    model, hist = train_student(data["x"], teacher_emb=data["emb"], teacher_logits=data["tl"],
                                labels=data["y"], meta=data["meta"], val=data["val"],
                                cfg=SMALL, progress=False)
    return model, hist


@pytest.mark.parametrize("module", STUDENT_MODULES)
def test_import_is_light(module: str) -> None:
    from vocalprint.student import net

    code = (f"import sys, vocalprint.student.{module}; "
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    env = dict(os.environ, PYTHONPATH=str(Path(net.__file__).parents[2]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True)
    assert out.stdout.split() == ["False", "False"]


def test_default_student_shapes_and_size() -> None:
    model = build_student(n_frames=N_FRAMES, n_mels=N_MELS, n_classes=206,
                          teacher_emb_dim=TEACHER_DIM, n_meta=5, cfg=StudentConfig(metadata=True))
    n = count_params(model)
    assert n <= BIRDNET_PARAMS / 4
    assert n < 1_500_000
    out = model(np.full((2, N_FRAMES, N_MELS), -40.0, np.float32), training=False)
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "logits": (2, 206), "emb_proj": (2, TEACHER_DIM), "meta": (2, 5), "embedding": (2, 256)}
    # the metadata ablation (the default) leaves the head out
    off = build_student(n_frames=N_FRAMES, n_mels=N_MELS, n_classes=206,
                        teacher_emb_dim=TEACHER_DIM, n_meta=5, cfg=StudentConfig())
    assert "meta" not in {lay.name for lay in off.layers}
    # the default ensemble, all members counted, stays within a quarter of BirdNET at inference
    assert StudentConfig().members * inference_params(off) <= BIRDNET_PARAMS / 4


def test_same_seed_same_weights() -> None:
    kw = dict(n_frames=64, n_mels=32, n_classes=3, teacher_emb_dim=16, n_meta=2)
    a = build_student(**kw, cfg=SMALL)
    b = build_student(**kw, cfg=SMALL)
    c = build_student(**kw, cfg=StudentConfig(**{**SMALL.__dict__, "seed": 1}))
    wa, wb, wc = a.get_weights(), b.get_weights(), c.get_weights()
    assert all(np.array_equal(u, v) for u, v in zip(wa, wb))
    assert not all(np.array_equal(u, v) for u, v in zip(wa, wc))


def test_losses_mask_nan_targets() -> None:
    import tensorflow as tf

    rng = np.random.default_rng(0)
    out = {"emb_proj": tf.Variable(rng.normal(size=(4, 6)).astype(np.float32)),
           "logits": tf.Variable(rng.normal(size=(4, 3)).astype(np.float32)),
           "meta": tf.Variable(rng.normal(size=(4, 2)).astype(np.float32))}
    te = rng.normal(size=(4, 6)).astype(np.float32)
    tl = rng.normal(size=(4, 3)).astype(np.float32)
    y = (rng.random((4, 3)) > 0.5).astype(np.float32)
    m = rng.normal(size=(4, 2)).astype(np.float32)
    te[1] = np.nan
    tl[:, 2] = np.nan
    tl[3] = np.nan
    y[2] = np.nan
    m[0, 1] = np.nan
    kw = dict(temperature=2.0, has_meta=True)
    for emb_loss in ("mse", "cosine"):
        with tf.GradientTape() as tape:
            ls = losses(out, te, tl, y, m, emb_loss=emb_loss, **kw)
            total = tf.add_n(list(ls.values()))
        grads = tape.gradient(total, list(out.values()))
        assert all(np.isfinite(float(v)) and float(v) >= -1e-6 for v in ls.values())
        assert all(np.isfinite(g.numpy()).all() for g in grads)
    # masked entries have no influence: changing them changes nothing
    ls = losses(out, te, tl, y, m, emb_loss="mse", **kw)
    te2, tl2, y2, m2 = te.copy(), tl.copy(), y.copy(), m.copy()
    out2 = {k: tf.Variable(v.numpy()) for k, v in out.items()}
    out2["emb_proj"][1].assign(tf.zeros(6))
    out2["logits"][3].assign(tf.constant([9.0, 9.0, 9.0]))
    ls2 = losses(out2, te2, tl2, y2, m2, emb_loss="mse", **kw)
    assert float(ls["emb"]) == pytest.approx(float(ls2["emb"]), rel=1e-6)
    assert float(ls["soft"]) == pytest.approx(float(ls2["soft"]), rel=1e-6)
    # soft loss is 0 when the student matches the teacher
    same = dict(out, logits=tf.constant(np.nan_to_num(tl)))
    assert float(losses(same, te, tl, y, m, emb_loss="mse", **kw)["soft"]) < 1e-5
    # an all-missing batch contributes 0, not NaN
    nan = lambda a: np.full_like(a, np.nan)  # noqa: E731
    ls = losses(out, nan(te), nan(tl), nan(y), nan(m), emb_loss="mse", **kw)
    assert all(float(v) == 0.0 for v in ls.values())


def test_training_reduces_loss_and_separates_classes(trained: tuple, data: dict) -> None:
    model, hist = trained
    for k in ("loss", "emb", "soft", "label", "meta", "val_loss", "val_label"):
        assert len(hist[k]) == SMALL.epochs and np.isfinite(hist[k]).all(), k
    assert hist["loss"][-1] < 0.8 * hist["loss"][0]
    assert hist["val_loss"][-1] < hist["val_loss"][0]
    assert hist["windows_per_s"] > 0 and hist["seconds"] > 0
    n, bs = len(data["x"]), min(SMALL.batch, len(data["x"]))
    assert hist["presentations"] == (n // bs) * bs * hist["epochs"]  # whole batches, every epoch
    assert hist["params"] == count_params(model)
    pred = predict_keras(model, data["x"][:200])
    y = data["y_true"][:200]
    aucs = [auc(pred["logits"][:, c], y[:, c]) for c in range(N_CLASSES)]
    assert min(aucs) > 0.8, aucs
    vx, _, _, vy, _ = data["val"]
    vpred = predict_keras(model, vx)
    assert np.mean([auc(vpred["logits"][:, c], vy[:, c]) for c in range(N_CLASSES)]) > 0.8


def test_distillation_only_follows_teacher(data: dict) -> None:
    """No labels at all (w_label 0, labels all NaN): the student's logits follow the teacher's."""
    cfg = StudentConfig(**{**SMALL.__dict__, "w_label": 0.0, "metadata": False, "epochs": 6,
                           "specaugment": False})
    labels = np.full_like(data["y"], np.nan)
    model, hist = train_student(data["x"], teacher_emb=data["emb"], teacher_logits=data["tl"],
                                labels=labels, meta=data["meta"], cfg=cfg, progress=False)
    assert "meta" not in hist and "meta" not in {lay.name for lay in model.layers}
    assert hist["soft"][-1] < 0.7 * hist["soft"][0]
    assert hist["emb"][-1] < hist["emb"][0]
    vx, vemb, vtl, _, _ = data["val"]
    p = predict_keras(model, vx)["logits"]
    r = [np.corrcoef(p[:, c], vtl[:, c])[0, 1] for c in range(3)]
    assert min(r) > 0.5, r


def test_float32_tflite_round_trip(trained: tuple, data: dict, tmp_path: Path) -> None:
    model, _ = trained
    path = export_tflite(model, tmp_path / "student.tflite")
    assert path.exists() and not list(tmp_path.glob(".*tmp"))
    runner = StudentRunner(path, threads=1)
    x = np.asarray(data["val"][0][:10])
    ref = predict_keras(model, x)
    got = runner.predict(x, batch=4)  # ragged last batch
    for k in ("logits", "embedding"):
        assert got[k].shape == ref[k].shape and got[k].dtype == np.float32
        scale = np.abs(ref[k]).max()
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-4, atol=1e-4 * scale)
    assert set(got) == {"logits", "embedding"}


@pytest.mark.parametrize("int8_io", [False, True])
def test_int8_tflite_close_to_float(trained: tuple, data: dict, tmp_path: Path,
                                    int8_io: bool) -> None:
    model, _ = trained
    fp = export_tflite(model, tmp_path / "fp32.tflite")
    q = export_tflite(model, tmp_path / "int8.tflite", quant="int8",
                      representative=data["x"][:64], int8_io=int8_io)
    assert q.stat().st_size < 0.75 * fp.stat().st_size  # tiny model: fixed overhead dominates
    runner = StudentRunner(q)
    assert runner.quantized_io == int8_io
    x = np.asarray(data["val"][0])
    a = StudentRunner(fp).predict(x)["logits"]
    b = runner.predict(x)["logits"]
    assert np.isfinite(b).all()
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.95
    assert np.abs(a - b).max() < 0.15 * (a.max() - a.min())


def test_export_rejects_bad_options(trained: tuple, tmp_path: Path) -> None:
    model, _ = trained
    with pytest.raises(ValueError):
        export_tflite(model, tmp_path / "x.tflite", quant="fp16")
    with pytest.raises(ValueError):
        export_tflite(model, tmp_path / "x.tflite", quant="int8")
    with pytest.raises(ValueError, match="representative"):
        export_tflite(model, tmp_path / "x.tflite", quant="body")
    with pytest.raises(ValueError, match="token front"):  # the Mel student has none to keep in float
        export_tflite(model, tmp_path / "x.tflite", quant="body", representative=np.zeros((2, *model.inputs[0].shape[1:]), np.float32))
    assert not (tmp_path / "x.tflite").exists()


def test_input_validation() -> None:
    x = np.zeros((4, 64, 32), np.float32)
    with pytest.raises(ValueError):
        train_student(x, teacher_emb=np.zeros((3, 8), np.float32),
                      teacher_logits=np.zeros((4, 2), np.float32),
                      labels=np.zeros((4, 2), np.float32), meta=None, cfg=SMALL, progress=False)


def test_training_is_deterministic_and_progress_runs() -> None:
    x, y, meta = make_windows(48, seed=3)
    emb, _ = TinyTeacher()(x)
    tl = TinyTeacher().competition_logits(x)
    cfg = StudentConfig(**{**SMALL.__dict__, "epochs": 1})
    runs = [train_student(x, teacher_emb=emb, teacher_logits=tl, labels=y, meta=meta, cfg=cfg,
                          progress=p) for p in (False, True)]
    (m1, h1), (m2, h2) = runs
    assert h1["loss"] == h2["loss"]
    assert all(np.array_equal(a, b) for a, b in zip(m1.get_weights(), m2.get_weights()))


def test_a_large_set_trains_fewer_epochs_within_the_window_budget() -> None:
    """``window_budget`` caps the presentations: fewer epochs over more windows, never below one,
    never above ``epochs``; 0 turns it off. The schedule and the history follow the epochs run."""
    cfg = StudentConfig(epochs=30, window_budget=2_000_000)
    assert epochs_for(cfg, 12_361) == 30  # a dev-sized set: the budget does not bind
    assert epochs_for(cfg, 200_000) == 10  # the max_windows cap
    assert epochs_for(cfg, 150_000) == 14  # rounded up: at least the budget is presented
    assert epochs_for(cfg, 5_000_000) == 1
    assert epochs_for(StudentConfig(epochs=30, window_budget=0), 5_000_000) == 30
    x, y, meta = make_windows(48, seed=3)
    emb, _ = TinyTeacher()(x)
    tl = TinyTeacher().competition_logits(x)
    small = StudentConfig(**{**SMALL.__dict__, "window_budget": 100})
    _, hist = train_student(x, teacher_emb=emb, teacher_logits=tl, labels=y, meta=meta, cfg=small, progress=False)
    assert hist["epochs"] == 3 == len(hist["loss"])  # ceil(100 / 48) of SMALL's 8
    with pytest.raises(Exception, match="window_budget"):
        StudentConfig(window_budget=-1)


def test_pair_up_sums_power_and_keeps_unknowns_unknown() -> None:
    x = np.full((2, 4, 3), -20.0, np.float32)
    xo = np.full((2, 4, 3), -20.0, np.float32)
    te, teo = np.ones((2, 5), np.float32), np.zeros((2, 5), np.float32)
    tl = np.array([[1.0, -3.0], [0.0, 0.0]], np.float32)
    tlo = np.array([[-2.0, 2.0], [5.0, 5.0]], np.float32)
    y = np.array([[1.0, 0.0], [0.0, 0.0]], np.float32)
    yo = np.array([[np.nan, np.nan], [1.0, 1.0]], np.float32)  # the partner is unlabelled
    m, mo = np.ones((2, 1), np.float32), np.ones((2, 1), np.float32)
    b = [x, te, tl, y, m]
    pair_up(b, [xo, teo, tlo, yo, mo], np.array([True, False]))
    np.testing.assert_allclose(b[0][0], -20.0 + 10 * np.log10(2.0), rtol=1e-5)  # two equal powers: +3 dB
    np.testing.assert_array_equal(b[0][1], -20.0)  # the row not hit is untouched
    np.testing.assert_array_equal(b[2][0], [1.0, 2.0])  # teacher logits: max
    assert np.isnan(b[3][0]).all() and np.isnan(b[1][0]).all() and np.isnan(b[4][0]).all()
    np.testing.assert_array_equal(b[3][1], [0.0, 0.0])
    np.testing.assert_array_equal(b[1][1], 1.0)


def test_band_norm_channel_removes_each_bands_level_and_exports(data: dict, tmp_path: Path) -> None:
    from vocalprint.student.net import band_norm_layer

    x = np.asarray(data["val"][0][:6], np.float32)[..., None]
    out = np.asarray(band_norm_layer()()(x))
    assert out.shape == (*x.shape[:-1], 2)
    np.testing.assert_allclose(out[..., 0], x[..., 0])
    np.testing.assert_allclose(out[..., 1], x[..., 0] - x[..., 0].mean(axis=1, keepdims=True), atol=1e-4)
    # a per-band gain (a coloured, stationary background level) leaves the second channel unchanged
    tilt = np.linspace(-10, 10, N_MELS, dtype=np.float32)[None, None, :, None]
    np.testing.assert_allclose(np.asarray(band_norm_layer()()(x + tilt))[..., 1], out[..., 1], atol=1e-3)
    cfg = StudentConfig(**{**SMALL.__dict__, "band_norm": True})
    model = build_student(n_frames=N_FRAMES, n_mels=N_MELS, n_classes=N_CLASSES, teacher_emb_dim=TEACHER_DIM,
                          n_meta=0, cfg=cfg)
    assert "band_norm" in {lay.name for lay in model.layers}
    plain = build_student(n_frames=N_FRAMES, n_mels=N_MELS, n_classes=N_CLASSES, teacher_emb_dim=TEACHER_DIM,
                          n_meta=0, cfg=SMALL)
    assert count_params(model) > count_params(plain)  # the stem sees one more input channel
    v = np.asarray(data["val"][0][:8], np.float32)
    ref = predict_keras(model, v)["logits"]
    got = StudentRunner(export_tflite(model, tmp_path / "bn.tflite")).predict(v)["logits"]
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    q = StudentRunner(export_tflite(model, tmp_path / "bn8.tflite", quant="int8", representative=data["x"][:32]))
    assert np.corrcoef(q.predict(v)["logits"].ravel(), ref.ravel())[0, 1] > 0.95


def test_ensemble_members_are_stages_of_their_own() -> None:
    """Member 0 of any ensemble is the lone student (its cache is reused when members grow);
    every other member has its own key."""
    from vocalprint import config as C
    from vocalprint.student import stage as student

    one, three = C.Config(), C.override(C.Config(), "distill.members", "3")
    keys = [student.key(three, "tf", "cache", j) for j in range(3)]
    assert keys[0] == student.key(one, "tf", "cache") and len(set(keys)) == 3
    assert student.key(one, "tf", "cache", 1) == keys[1]
    assert student.key(C.override(one, "distill.seed", "1"), "tf", "cache") != keys[0]
    with pytest.raises(C.ConfigError, match="distill.members must be >= 1"):  # checked when the config is built
        C.override(one, "distill.members", "0")


TOKENS = {"front": "tokens", "token_dim": 8, "token_groups": 2, "token_k": 8, "token_k_frame": 16,
          "token_sample": 4000}


@pytest.mark.parametrize("level,center", [(False, "median"), (True, "mean"), (True, "running")])
def test_token_front_is_the_faiss_assignment_in_graph(data: dict, level: bool, center: str) -> None:
    """The token front gives every frame the Faiss nearest centroid of its features (bands minus
    the window's median; whole frames standardised, band groups standardised unless they keep the
    level), looked up as a learned vector; the whole-frame features are those tokens-nb clusters."""
    import faiss

    from vocalprint.student.token_front import fit_token_books, token_features, token_front, token_front_layer
    from vocalprint.config.nb import NBConfig
    from vocalprint.tokens.nb.views import View as _View, features as _features, tokens_cfg as _tokens_cfg

    cfg = StudentConfig(**{**SMALL.__dict__, **TOKENS, "token_level": level, "token_center": center})
    x = np.asarray(data["val"][0][:4], np.float32)
    books = fit_token_books(data["x"], cfg)
    assert [(lo, hi, len(c), st) for lo, hi, c, st in books] == [
        (0, N_MELS, 16, True), (0, N_MELS // 2, 8, not level), (N_MELS // 2, N_MELS, 8, not level)]
    layer = token_front_layer()(books, 4, seed=0, center=center)
    out = np.asarray(layer(x))
    assert out.shape == (4, N_FRAMES, 8 + 4 + 4)  # the whole-frame codebook gets twice the dims
    for i, (lo, hi, c, st) in enumerate(books):
        ids = token_front(x, lo, hi, c, st, center)
        assert len(np.unique(ids)) > 1
        a = sum(layer.dims[:i])
        np.testing.assert_allclose(out[..., a:a + layer.dims[i]], np.asarray(layer.tables[i])[ids], rtol=1e-6)
        ix = faiss.IndexFlatL2(hi - lo)
        ix.add(c)
        np.testing.assert_array_equal(ids[1], ix.search(token_features(x[1:2], lo, hi, st, center)[0], 1)[1][:, 0])
    v = _View("v", "logmel", 0, N_MELS, 16, 0, 1.0)  # with the median: the features tokens-nb clusters
    np.testing.assert_allclose(token_features(x[1:2], 0, N_MELS, True)[0],
                               _features(x[1], v, _tokens_cfg(v, NBConfig())), atol=1e-4)
    if level:  # level-keeping groups: a call 20 dB louder is another token
        loud = x.copy()
        loud[:, :, :N_MELS // 2] += np.where(np.arange(N_FRAMES) % 50 < 10, 20.0, 0.0)[None, :, None]
        lo, hi, c, st = books[1]
        assert not st and (token_front(loud, lo, hi, c, st, center) != token_front(x, lo, hi, c, st, center)).mean() > 0.1
    with pytest.raises(ValueError, match="divide"):
        fit_token_books(data["x"], StudentConfig(**{**TOKENS, "token_groups": 3}))
    with pytest.raises(ValueError, match="token_center"):
        fit_token_books(data["x"], StudentConfig(**{**TOKENS, "token_center": "mode"}))


def test_running_mean_is_each_frames_box_mean_cut_at_the_edges() -> None:
    """The running centre: frame i's per-band mean over frames i - half .. i + half inside the
    array (the window's mean at its middle frame), by cumulative sums, equal to the direct sum."""
    from vocalprint.student.token_front import running_mean

    x = np.random.default_rng(0).normal(-60.0, 10.0, (2, 400, 3)).astype(np.float32)
    for half in (0, 5, 156, 500):
        ref = np.stack([x[:, max(0, i - half):i + half + 1].mean(1) for i in range(400)], 1)
        np.testing.assert_allclose(running_mean(x, half), ref, atol=1e-3)
    np.testing.assert_allclose(running_mean(x[:, :312], 156)[:, 156], x[:, :312].mean(1), atol=1e-3)
    # cut to a span (a whole file's frames inside the graph's silence): what lies outside is not read
    a, b = 40, 350
    ref = np.stack([x[:, min(max(a, i - 20), b - 1):max(min(b, i + 21), min(max(a, i - 20), b - 1) + 1)].mean(1)
                    for i in range(400)], 1)
    np.testing.assert_allclose(running_mean(x, 20, (a, b)), ref, atol=1e-3)
    y = x.copy()
    y[:, :a] = -100.0
    y[:, b:] = 0.0
    np.testing.assert_allclose(running_mean(y, 20, (a, b))[:, a:b], ref[:, a:b], atol=1e-3)
    np.testing.assert_allclose(running_mean(y, 20, (a, b))[:, 0], x[:, a:a + 1].mean(1), atol=1e-3)
    with pytest.raises(ValueError, match="span"):
        running_mean(x, 20, (300, 500))


def test_cumulative_frames_and_the_centred_whole_file_input() -> None:
    """The blocked cumulative sum equals a float64 one (any length, one or more files, at least as
    close as float32 ``np.cumsum``), and the whole-file graph's centred input is the frames minus
    their running mean, in place or not."""
    from vocalprint.student.fcn import FcnLayout, centred_input
    from vocalprint.student.token_front import cumulative_frames, running_mean

    rng = np.random.default_rng(3)
    for shape in [(1, 1, 2), (1, 31, 3), (1, 32, 3), (2, 33, 4), (3, 100, 5), (1, 4032, 16)]:
        v = rng.normal(-50.0, 10.0, shape).astype(np.float32)
        ref = np.concatenate([np.zeros_like(v[:, :1], np.float64), np.cumsum(v, axis=1, dtype=np.float64)], axis=1)
        got = cumulative_frames(v)
        assert got.shape == ref.shape and got.dtype == np.float32
        plain = np.concatenate([np.zeros_like(v[:, :1]), np.cumsum(v, axis=1)], axis=1)
        assert np.abs(got - ref).max() <= max(np.abs(plain - ref).max(), 1e-5 * np.abs(ref).max())
    x = rng.normal(-60.0, 10.0, (1, 448, 8)).astype(np.float32)
    lay = FcnLayout(length=448, pad=16, step=8, width=4, frames=400, centre_half=20)
    ref = x - running_mean(x, 20, (16, 416))
    np.testing.assert_allclose(centred_input(x, lay), ref, atol=1e-4)
    assert centred_input(x, replace(lay, centre_half=0)) is x  # the graph centres its input itself
    y = x.copy()
    assert centred_input(y, lay, inplace=True) is y
    np.testing.assert_allclose(y, ref, atol=1e-4)


def test_residual_token_stages(data: dict, tmp_path: Path) -> None:
    """``token_stages=2``: stage 2 quantises what stage 1 leaves (its centroids fitted on those
    residuals), so two stages reconstruct the features better than one; the graph's lookup is
    the sum of both stages' vectors, ids as the NumPy reference and the first stage as one stage."""
    from vocalprint.student.token_front import fit_token_books, token_features, token_front, token_front_layer

    base = {**SMALL.__dict__, **TOKENS, "token_k_frame": 0, "token_groups": 16}
    one = fit_token_books(data["x"], StudentConfig(**base))
    two = fit_token_books(data["x"], StudentConfig(**{**base, "token_stages": 2}))
    x = np.asarray(data["val"][0][:4], np.float32)
    layer = token_front_layer()(two, 4, seed=0, center="mean")
    out = np.asarray(layer(x))
    assert out.shape == (4, N_FRAMES, 16 * 4)
    for i, ((lo, hi, c1, st), (_, _, c2, _)) in enumerate(zip(one, two)):
        assert c2.shape == (2, 8, hi - lo)
        np.testing.assert_allclose(c2[0], c1, atol=1e-5)  # the same seed: stage 1 is the one-stage codebook
        ids = token_front(x, lo, hi, c2, st, "mean")
        assert ids.shape == (4, N_FRAMES, 2)
        np.testing.assert_array_equal(ids[..., 0], token_front(x, lo, hi, c1, st, "mean"))
        v = token_features(x, lo, hi, st, "mean")
        err1 = ((v - c2[0][ids[..., 0]]) ** 2).sum(-1).mean()
        err2 = ((v - c2[0][ids[..., 0]] - c2[1][ids[..., 1]]) ** 2).sum(-1).mean()
        assert err2 < 0.8 * err1
        tab = np.asarray(layer.tables[i])
        assert tab.shape == (16, 4)
        np.testing.assert_allclose(out[..., 4 * i:4 * i + 4], tab[ids[..., 0]] + tab[8 + ids[..., 1]], rtol=1e-5, atol=1e-6)
    # in TFLite (the constant-centroid gather between stages is a builtin op), as in Keras
    cfg = StudentConfig(**{**base, "token_stages": 2})
    model = build_student(n_frames=N_FRAMES, n_mels=N_MELS, n_classes=N_CLASSES, teacher_emb_dim=TEACHER_DIM,
                          n_meta=0, cfg=cfg, codebooks=two)
    ref = predict_keras(model, x)["logits"]
    got = StudentRunner(export_tflite(model, tmp_path / "rvq.tflite", quant="weights")).predict(x)["logits"]
    assert np.corrcoef(got.ravel(), ref.ravel())[0, 1] > 0.99
    with pytest.raises(ValueError, match="token_stages"):
        fit_token_books(data["x"], StudentConfig(**{**base, "token_stages": 0}))


@pytest.mark.parametrize("body", ["1d", "2d"])
def test_token_student_learns_and_exports(data: dict, tmp_path: Path, body: str) -> None:
    """The CNN over token vectors (1-D over time, or 2-D over time x band group) trains (loss
    falls, species separate), fitting its codebooks on its training windows, and survives the
    float32 and int8-weight TFLite export."""
    cfg = StudentConfig(**{**SMALL.__dict__, **TOKENS, "width": 16, "epochs": 10, "token_body": body})
    model, hist = train_student(data["x"], teacher_emb=data["emb"], teacher_logits=data["tl"], labels=data["y"],
                                meta=None, cfg=cfg, progress=False)
    assert hist["loss"][-1] < 0.7 * hist["loss"][0]
    names = {lay.name for lay in model.layers}
    assert "tokens" in names and ("stem_conv" in names) == (body == "2d") and "db_affine" not in names
    if body == "2d":  # [time, 2 band groups, 8 + 16 channels (the whole-frame token's vector)]
        assert tuple(model.get_layer("token_channels").output.shape[1:]) == (N_FRAMES, 2, 24)
    v = np.asarray(data["val"][0], np.float32)
    ref = predict_keras(model, v)["logits"]
    assert np.mean([auc(ref[:, c], data["val"][3][:, c]) for c in range(N_CLASSES)]) > 0.8
    got = StudentRunner(export_tflite(model, tmp_path / "tok.tflite")).predict(v[:8])["logits"]
    np.testing.assert_allclose(got, ref[:8], rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    # int8 weights (the student stage's export for the token front); a flat window (silence padding
    # past a file's end) has no spectral shape: every token front must still run on it
    q = StudentRunner(export_tflite(model, tmp_path / "tok8.tflite", quant="weights"))
    flat = np.concatenate([v[:7], np.full((1, N_FRAMES, N_MELS), -100.0, np.float32)])
    got = q.predict(flat)["logits"]
    assert np.isfinite(got).all() and np.corrcoef(got[:7].ravel(), ref[:7].ravel())[0, 1] > 0.95
    with pytest.raises(ValueError, match="codebooks"):
        build_student(n_frames=N_FRAMES, n_mels=N_MELS, n_classes=N_CLASSES, teacher_emb_dim=TEACHER_DIM,
                      n_meta=0, cfg=cfg)


def test_token_student_keys() -> None:
    """A Mel student's key ignores the token fields (cached students stay valid); a token
    student's key holds them."""
    from vocalprint import config as C
    from vocalprint.student import stage as student

    mel = C.Config()
    for k, v in (("token_dim", "16"), ("token_groups", "8"), ("token_level", "true")):
        assert student.key(C.override(mel, f"distill.{k}", v), "tf", "c") == student.key(mel, "tf", "c")
    tok = C.override(mel, "distill.front", "tokens")
    assert student.key(tok, "tf", "c") != student.key(mel, "tf", "c")
    assert student.key(C.override(tok, "distill.token_groups", "8"), "tf", "c") != student.key(tok, "tf", "c")
    # a field added later (token_stages) leaves the key as it was before the field, at its neutral value
    from dataclasses import fields

    from vocalprint.config import fingerprint

    later = ("members", "token_stages", "token_running", "token_quant", *student.ROUND_FIELDS)
    before = {f.name: getattr(tok.distill, f.name) for f in fields(tok.distill) if f.name not in later}
    weights = C.override(tok, "distill.token_quant", "weights")  # the int8 files before token_quant
    assert student.key(weights, "tf", "c") == fingerprint("student", before, "tf", "c")
    assert tok.distill.token_quant == "body" and student.key(tok, "tf", "c") != student.key(weights, "tf", "c")
    assert student.key(C.override(tok, "distill.token_stages", "2"), "tf", "c") != student.key(tok, "tf", "c")
    assert student.key(C.override(tok, "distill.token_running", "0.2"), "tf", "c") != student.key(tok, "tf", "c")
    assert len({student.key(C.override(tok, "distill.token_quant", q), "tf", "c") for q in ("int8", "weights", "body")}) == 3
    with pytest.raises(C.ConfigError, match="distill.token_quant"):
        C.override(tok, "distill.token_quant", "int4")
    with pytest.raises(C.ConfigError, match="distill.front"):
        student.run(C.override(mel, "distill.front", "pcen"), None, Path("m"), Path("c"), Path("t"), Path("r"))


def test_token_image_without_a_whole_frame_codebook(data: dict) -> None:
    """Band groups alone (``token_k_frame=0``) make a [time, group] image of equal-sized vectors."""
    from vocalprint.student.token_front import fit_token_books

    cfg = StudentConfig(**{**SMALL.__dict__, **TOKENS, "token_k_frame": 0, "token_groups": 4})
    books = fit_token_books(data["x"], cfg)
    assert [(lo, hi) for lo, hi, _, _ in books] == [(0, 32), (32, 64), (64, 96), (96, 128)]
    model = build_student(n_frames=N_FRAMES, n_mels=N_MELS, n_classes=N_CLASSES, teacher_emb_dim=TEACHER_DIM,
                          n_meta=0, cfg=cfg, codebooks=books)
    assert tuple(model.get_layer("token_image").output.shape[1:]) == (N_FRAMES, 4, 8)
    assert model.get_layer("tokens").dims == [8, 8, 8, 8]


def test_a_students_sample_keeps_the_soundscape_sample_whole_and_fills_the_rest():
    """Above ``max_windows`` the soundscape rows (already whole files sampled before the teacher
    ran) are kept up to ``max_soundscape_windows`` and the others fill the rest; below it, or
    without the cap, the uniform sample of before (same draw for the same seed)."""
    from dataclasses import replace

    from vocalprint.student.stage import sample_rows

    d = replace(StudentConfig(), max_windows=50, max_soundscape_windows=10)
    keep = sample_rows(np.random.default_rng(0), 100, range(60, 80), d)
    assert len(keep) == 50 == len(set(keep.tolist())) and ((keep >= 0) & (keep < 100)).all()
    assert ((keep >= 60) & (keep < 80)).sum() == 10  # not thinned again to 20 x 50 / 100
    few = replace(d, max_soundscape_windows=30)
    assert ((sample_rows(np.random.default_rng(0), 100, range(60, 80), few) >= 60) &
            (sample_rows(np.random.default_rng(0), 100, range(60, 80), few) < 80)).sum() == 20  # all there are
    for same in (replace(d, max_windows=100), replace(d, max_soundscape_windows=0)):
        np.testing.assert_array_equal(sample_rows(np.random.default_rng(3), 100, range(60, 80), same),
                                      np.random.default_rng(3).permutation(100)[: same.max_windows])


# ------------------------------------------------------------------ the whole-file form

def test_whole_file_layout_holds_a_minute_and_its_shifted_windows() -> None:
    from vocalprint import config as C
    from vocalprint.student.fcn import FcnLayout, fits, layout_for, window_positions, window_starts

    cfg = C.Config()
    model = build_student(n_frames=N_FRAMES, n_mels=N_MELS, n_classes=5, teacher_emb_dim=TEACHER_DIM,
                          n_meta=0, cfg=StudentConfig())
    lay = layout_for(model, cfg)
    # stride-4 stem and four 2x poolings: 64 frames a position, 4 positions a 312-frame window
    assert (lay.step, lay.width) == (64, 4)
    assert lay.pad == 192 and lay.pad % lay.step == 0  # the -2.5-s windows of the first row
    starts = window_starts(12, (-2.5, 0.0, 2.5), cfg)
    assert starts[0].tolist() == [-156, 0, 157] and starts[1, 0] == starts[0, 2]
    pos = window_positions(starts, lay)
    # each window moves by at most half a position
    assert np.abs(pos * lay.step - lay.pad - starts).max() <= lay.step // 2
    assert fits(3751, pos, lay)  # a one-minute file at hop 512
    short = window_positions(window_starts(11, (-2.5, 0.0, 2.5), cfg), lay)
    assert fits(3400, short, lay) and not fits(3400, short, lay, exact=True)  # a token front's span is the minute
    assert fits(3751, pos, lay, exact=True)
    assert lay.frames == 3751 and lay.span == (192, 192 + 3751) and FcnLayout.from_dict(lay.to_dict()) == lay
    old = {k: v for k, v in lay.to_dict().items() if k != "frames"}  # a manifest written before the field
    assert FcnLayout.from_dict(old).span == (192, lay.length)
    assert not fits(lay.length - lay.pad + 1, pos, lay)  # one frame too long
    assert not fits(4376, window_positions(window_starts(14, (-2.5, 0.0, 2.5), cfg), lay), lay)  # 70 s
    lay0 = layout_for(model, C.override(cfg, "submit.student_shift_s", 0.0))
    assert lay0.pad == 0 and lay0.length < lay.length


@pytest.fixture(scope="module")
def whole_file(trained: tuple, tmp_path_factory) -> dict:
    """The trained small student as windows (int8) and whole-file graphs (float32, int8), with the
    frames of a one-minute file made of 12 labelled windows end to end."""
    from vocalprint import config as C
    from vocalprint.student.export import write_tflite
    from vocalprint.student.fcn import calibration_files, export_fcn, fcn_model, layout_for

    model, _ = trained
    cfg = C.Config()
    d = tmp_path_factory.mktemp("fcn")
    lay = layout_for(model, cfg)
    fp = write_tflite(fcn_model(model, SMALL, lay), d / "fcn_fp32.tflite", outputs=("logits",))
    rng = np.random.default_rng(0)
    wins, y, _ = make_windows(64, seed=7)
    assert export_fcn(model, d / "fcn_int8.tflite", cfg, SMALL, wins, silence=-100.0, rng=rng) == lay
    rep = calibration_files(wins, lay, n=2, silence=-100.0, rng=rng)
    assert rep.shape == (2, lay.length, N_MELS) and (rep[:, :lay.pad] == -100.0).all()
    win8 = export_tflite(model, d / "student_int8.tflite", quant="int8", representative=wins[:32])
    frames = np.concatenate([wins[:12].reshape(-1, N_MELS), np.full((7, N_MELS), -80.0, np.float32)])
    return dict(cfg=cfg, lay=lay, fp=fp, int8=d / "fcn_int8.tflite", win8=win8, frames=frames, y=y[:12],
                wins=wins)


def test_whole_file_graph_is_the_students_pooling_and_heads(trained: tuple, whole_file: dict) -> None:
    import keras

    from vocalprint.student.fcn import fcn_model

    model, _ = trained
    lay = whole_file["lay"]
    assert lay.step == 32 and lay.width == 9  # depth 3
    full = fcn_model(model, SMALL, lay)
    x = np.full((1, lay.length, N_MELS), -100.0, np.float32)
    x[0, lay.pad:lay.pad + len(whole_file["frames"])] = whole_file["frames"]
    trunk = keras.Model(full.inputs[0], full.get_layer("freq_squeeze").output)
    f = np.asarray(trunk(x, training=False))[0]  # [t, ch]
    w = lay.width
    h = np.stack([np.concatenate([f[p:p + w].mean(0), f[p:p + w].max(0)]) for p in range(lay.positions)])
    k1, b1 = model.get_layer("emb_dense").get_weights()
    k2, b2 = model.get_layer("logits").get_weights()
    ref = np.maximum(h @ k1 + b1, 0) @ k2 + b2
    got = StudentRunner(whole_file["fp"], outputs=("logits",)).predict(x)["logits"][0]
    assert got.shape == (lay.positions, N_CLASSES)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


@pytest.mark.parametrize("which", ["fp", "int8"])
def test_whole_file_logits_follow_the_windows(trained: tuple, whole_file: dict, which: str) -> None:
    from vocalprint.student.fcn import window_positions, window_starts

    model, _ = trained
    lay, frames = whole_file["lay"], whole_file["frames"]
    # the windowed student on the 12 windows the file is made of (each starts within 6 frames of its row)
    ref = predict_keras(model, whole_file["wins"][:12])["logits"]
    x = np.full((1, lay.length, N_MELS), -100.0, np.float32)
    x[0, lay.pad:lay.pad + len(frames)] = frames
    pos = window_positions(window_starts(12, (0.0,), whole_file["cfg"]), lay)[:, 0]
    got = StudentRunner(whole_file[which], outputs=("logits",)).predict(x)["logits"][0][pos]
    assert np.corrcoef(got.ravel(), ref.ravel())[0, 1] > 0.9
    # a window read at the wrong position would score its neighbour's species
    assert auc(got.ravel(), whole_file["y"].ravel()) > 0.9
    out = StudentRunner(whole_file[which], outputs=("logits",)).predict(x)["logits"][0]
    assert auc(out[pos[1:]].ravel(), whole_file["y"][:-1].ravel()) < 0.75


def test_a_token_student_centred_on_a_running_mean_has_a_whole_file_form(data: dict, tmp_path: Path) -> None:
    """A token student whose frames are centred on a running mean (the same in every window) reads
    a whole file in one graph: its tokens there are the NumPy reference's over the file's frames
    with the training window's box (the silence around the file not read), and its logits follow
    the windowed student's. The stage's file takes the frames centred outside the graph, once for
    every member, and gives the same tokens; each ``distill.token_quant`` keeps the rows' labels. A
    student centred on each window's own mean is read with a box of the window's length about each
    frame; one centred on the window's median has no such form."""
    from vocalprint import config as C
    from vocalprint.student.export import int8_quant, write_tflite
    from vocalprint.student.fcn import (centred_input, export_fcn, fcn_model, has_fcn, layout_for, window_positions,
                                        window_starts)
    from vocalprint.student.token_front import token_front

    cfg = StudentConfig(**{**SMALL.__dict__, **TOKENS, "token_k_frame": 0, "token_groups": 4, "width": 16,
                           "epochs": 10, "token_center": "running"})
    assert has_fcn(cfg) and has_fcn(SMALL) and has_fcn(replace(cfg, token_center="mean"))
    assert not has_fcn(replace(cfg, token_center="median"))
    model, _ = train_student(data["x"], teacher_emb=data["emb"], teacher_logits=data["tl"], labels=data["y"],
                             meta=None, cfg=cfg, progress=False)
    conf = C.Config()
    lay = layout_for(model, conf)
    # the stem strides over time only; pooling stops with 2 of the 4 band groups left
    assert (lay.step, lay.width) == (8, 39)
    wins, y, _ = make_windows(24, seed=7)
    frames = np.concatenate([wins[:12].reshape(-1, N_MELS), np.full((7, N_MELS), -80.0, np.float32)])
    x = np.full((1, lay.length, N_MELS), -100.0, np.float32)
    x[0, lay.pad:lay.pad + len(frames)] = frames
    full = fcn_model(model, cfg, lay)
    front = full.get_layer("tokens")
    assert front.half == N_FRAMES // 2 and front.span == lay.span == (lay.pad, lay.pad + lay.frames)
    import keras

    tokens_of = keras.Model(full.inputs[0], front.output)
    vec = np.asarray(tokens_of(x))[0]
    for i, (lo, hi, c, st) in enumerate(front.books):
        ids = token_front(x, lo, hi, c, st, "running", half=N_FRAMES // 2, span=lay.span)[0]
        np.testing.assert_allclose(vec[:, 8 * i:8 * i + 8], np.asarray(front.tables[i])[ids], rtol=1e-6)
    louder = x.copy()
    louder[0, :lay.pad] = -40.0  # the silence before the file does not move its frames' centres
    inside = slice(lay.pad, lay.pad + lay.frames)
    np.testing.assert_allclose(np.asarray(tokens_of(louder))[0][inside], vec[inside], rtol=1e-6)
    # the stage's form takes its input centred once for every member (centred_input): the same tokens
    lay8 = replace(lay, centre_half=N_FRAMES // 2)
    given = fcn_model(model, cfg, lay8)
    assert given.get_layer("tokens").center == "given"
    xc = centred_input(x, lay8)
    vec_given = np.asarray(keras.Model(given.inputs[0], given.get_layer("tokens").output)(xc))[0]
    np.testing.assert_allclose(vec_given, vec, rtol=1e-6)
    ref = predict_keras(model, wins[:12])["logits"]
    pos = window_positions(window_starts(12, (0.0,), conf), lay)[:, 0]
    fp = write_tflite(full, tmp_path / "fcn_fp32.tflite", outputs=("logits",))
    fp_given = write_tflite(given, tmp_path / "fcn_given_fp32.tflite", outputs=("logits",))
    np.testing.assert_allclose(StudentRunner(fp_given, outputs=("logits",)).predict(xc)["logits"],
                               StudentRunner(fp, outputs=("logits",)).predict(x)["logits"], rtol=1e-4, atol=1e-4)
    # distill.token_quant: the front in float and the body full integer (the default), int8 weights,
    # or full integer throughout
    assert int8_quant(cfg) == "body" and int8_quant(SMALL) == "int8"
    files = {}
    for q in ("body", "weights", "int8"):
        files[q] = tmp_path / f"fcn_{q}.tflite"
        assert int8_quant(replace(cfg, token_quant=q)) == q
        assert export_fcn(model, files[q], conf, replace(cfg, token_quant=q), wins, silence=-100.0,
                          rng=np.random.default_rng(0)) == lay8
    # full int8 rounds the in-graph distances (0.85 here against above 0.9): still the rows' labels
    g8 = StudentRunner(files["int8"], outputs=("logits",)).predict(xc)["logits"][0]
    assert np.isfinite(g8).all() and auc(g8[pos].ravel(), y[:12].ravel()) > 0.75
    assert auc(g8[pos[1:]].ravel(), y[:11].ravel()) < 0.75
    for path, inp in ((fp, x), (files["body"], xc), (files["weights"], xc)):
        got = StudentRunner(path, outputs=("logits",)).predict(inp)["logits"][0]
        # near a window's edges the windowed student's running centre is cut, the whole file's is not
        # (0.88 here: these synthetic windows, each scaled to its own maximum, are not one recording)
        assert np.corrcoef(got[pos].ravel(), ref.ravel())[0, 1] > 0.8
        assert auc(got[pos].ravel(), y[:12].ravel()) > 0.9
        assert auc(got[pos[1:]].ravel(), y[:11].ravel()) < 0.75  # read one row off
    # the body's file: the front's search and lookups in float, the convolutions in int8
    from vocalprint.teacher.runtime import interpreter

    it = interpreter(files["body"])
    dtypes = {(op["op_name"], it.get_tensor_details()[op["outputs"][0]]["dtype"]) for op in it._get_ops_details()}
    assert ("ARG_MAX", np.int32) in dtypes and ("GATHER", np.float32) in dtypes and ("CUMSUM", np.float32) not in dtypes
    assert ("CONV_2D", np.int8) in dtypes and ("CONV_2D", np.float32) not in dtypes
    # the same weights centred on the window's mean: over the file, a box of the window's length
    mean = replace(cfg, token_center="mean", token_running=0.2)
    other = build_student(n_frames=N_FRAMES, n_mels=N_MELS, n_classes=N_CLASSES, teacher_emb_dim=TEACHER_DIM,
                          n_meta=0, cfg=mean, codebooks=front.books)
    other.set_weights(model.get_weights())
    as_mean = fcn_model(other, mean, lay)
    assert (as_mean.get_layer("tokens").center, as_mean.get_layer("tokens").half) == ("running", N_FRAMES // 2)
    np.testing.assert_allclose(np.asarray(as_mean(x)["logits"]), np.asarray(full(x)["logits"]), rtol=1e-5, atol=1e-5)
    median = replace(cfg, token_center="median")
    other = build_student(n_frames=N_FRAMES, n_mels=N_MELS, n_classes=N_CLASSES, teacher_emb_dim=TEACHER_DIM,
                          n_meta=0, cfg=median, codebooks=front.books)
    with pytest.raises(ValueError, match="no whole-file form"):
        fcn_model(other, median, lay)


def test_predictor_reads_a_minute_off_the_whole_file_graph_and_falls_back(whole_file: dict, caplog) -> None:
    from vocalprint import config as C
    from vocalprint.student.predictor import StudentPredictor

    cfg = C.override(C.Config(), "submit.student_fcn", False)
    on = C.override(cfg, "submit.student_fcn", True)
    rng = np.random.default_rng(3)
    kw = dict(name="student", species=[f"s{i}" for i in range(N_CLASSES)], model_paths=[whole_file["win8"]])
    fcn = dict(fcn_paths=[whole_file["int8"]], fcn_layout=whole_file["lay"].to_dict())
    for seconds in (60, 70):
        audio = (0.05 * rng.standard_normal(seconds * 32000)).astype(np.float32)
        t = np.arange(32000 * 2) / 32000
        for k in range(0, seconds - 5, 9):  # tone bursts in one band
            audio[k * 32000:(k + 2) * 32000] += 0.5 * np.sin(2 * np.pi * 2500 * t).astype(np.float32)
        n = seconds // 5
        windows = StudentPredictor(cfg=on, **kw).predict(audio, n, {})  # no whole-file form: windows
        plain = StudentPredictor(cfg=cfg, **kw, **fcn).predict(audio, n, {})
        np.testing.assert_array_equal(windows, plain)
        times: dict = {}
        with caplog.at_level("INFO", logger="vocalprint.student.predictor"):
            got = StudentPredictor(cfg=on, **kw, **fcn).predict(audio, n, times)
        assert got.shape == (n, N_CLASSES) and np.isfinite(got).all() and "model" in times
        if seconds == 60:
            assert not np.array_equal(got, plain)
            assert np.corrcoef(got.ravel(), plain.ravel())[0, 1] > 0.8
        else:  # longer than the graph's minute: window by window, said in the log
            np.testing.assert_array_equal(got, plain)
            assert "does not fit the whole-file graph" in caplog.text
