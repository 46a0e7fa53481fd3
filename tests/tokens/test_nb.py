"""The frame-level naive-Bayes token model (``tokens-nb``): tables, window scoring, the cached
stage and its predictor on the demo data."""
from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pandas as pd
import pytest

from vocalprint.core import artifacts as A
from vocalprint import config as C
from vocalprint.core import metrics
from vocalprint.config.nb import NBConfig
from vocalprint.tokens.nb import predictor as nb_predictor, stage as nb_stage, table as nb_table, views as nb_views

SMALL_NB = NBConfig(k=64, n_mixes=200, sample_frames=30_000, mix_batch=100)


def _cfg(small_cfg, **kw):
    return dataclasses.replace(small_cfg, nb=dataclasses.replace(SMALL_NB, **kw))


@pytest.fixture(scope="module")
def built(demo_dir, small_cfg, tmp_path_factory):
    from vocalprint.data import dataset

    root = tmp_path_factory.mktemp("nb_artifacts")
    ds = dataset.load(demo_dir)
    cfg = _cfg(small_cfg)
    folder = nb_stage.run(cfg, ds, root)
    return root, ds, cfg, folder, nb_predictor.load_predictor(folder, cfg, list(ds.species))


def test_nb_table_favours_the_species_a_token_is_seen_with():
    k, s = 8, 3
    pos, tot = np.zeros((k, s)), np.zeros(k)
    rng = np.random.default_rng(0)
    for _ in range(20):  # background frames: tokens 0..5, no species
        nb_table.add_counts(pos, tot, rng.integers(0, 6, 200), np.zeros((200, s)))
    tok = np.array([6] * 30 + [0, 1, 2] * 10)  # token 6 only on species 1's active frames
    y = np.zeros((len(tok), s))
    y[:30, 1] = 1
    nb_table.add_counts(pos, tot, tok, y)
    nb_table.add_counts(pos, tot, np.array([7] * 10), np.eye(s)[[2] * 10])  # token 7: species 2
    nb_table.add_counts(pos, tot, np.array([5] * 10), np.eye(s)[[0] * 10])  # token 5 (common): species 0
    t = nb_table.nb_table(pos, tot, alpha=1.0)
    assert t.shape == (k, s) and np.isfinite(t).all()
    assert t[6].argmax() == 1 and t[6, 1] > max(t[6, 0], t[6, 2]) + 3  # (rare tokens lean positive
    assert t[7].argmax() == 2 and t[7, 2] > max(t[7, 0], t[7, 1]) + 3  # for every species: smoothing)
    assert t[5].argmax() == 0
    assert (t[:5] < 0).all()  # background tokens favour no species


def test_clip_targets_only_on_active_frames():
    y = nb_table.clip_targets(np.array([0, 1, 1, 0], bool), np.array([0.0, 1.0, 0.5]))
    np.testing.assert_array_equal(y, [[0, 0, 0], [0, 1, 0.5], [0, 1, 0.5], [0, 0, 0]])


def test_window_scores_top_k_and_smoothing():
    fs = np.zeros((20, 2), np.float32)
    fs[[2, 5, 7], 0] = [3.0, 6.0, 9.0]  # window 0: frames 0..9
    fs[15, 1] = 4.0  # window 1: frames 10..19
    b = np.array([[0, 10], [10, 20], [20, 20]])
    w = nb_table.window_scores(fs, b, top_k=2, width=1)
    np.testing.assert_allclose(w, [[7.5, 0.0], [0.0, 2.0], [0.0, 0.0]])  # empty window -> 0
    w1 = nb_table.window_scores(fs, b, top_k=1, width=1)
    np.testing.assert_allclose(w1[:, 0], [9.0, 0.0, 0.0])
    s = nb_table.smooth(fs, 3)
    np.testing.assert_allclose(s[6, 0], (6 + 0 + 9) / 3)
    np.testing.assert_allclose(s[0, 0], 0.0)
    np.testing.assert_allclose(s[19, 1], 0.0)
    np.testing.assert_allclose(s[14:17, 1], [4 / 3] * 3)
    np.testing.assert_allclose(s.sum(0)[1], 4.0)  # interior spike spreads, mass kept
    ws = nb_table.window_scores(fs, b, top_k=3, width=3)
    np.testing.assert_allclose(ws[1, 1], 4 / 3)
    # short window: top_k larger than the window uses all its frames
    np.testing.assert_allclose(nb_table.window_scores(fs, np.array([[5, 6]]), top_k=8, width=1)[0, 0], 6.0)


def test_front_ends_match_the_pipeline_mel(small_cfg):
    from vocalprint.audio.mel import logmel

    x = np.random.default_rng(0).standard_normal(32000).astype(np.float32) * 0.1
    fe = nb_views.front_ends(x, sr=32000, cfg=small_cfg.mel)
    np.testing.assert_allclose(fe["logmel"], logmel(x, sr=32000, cfg=small_cfg.mel), atol=1e-3)
    pc = logmel(x, sr=32000, cfg=dataclasses.replace(small_cfg.mel, frontend="pcen"))
    np.testing.assert_allclose(fe["pcen"], pc, rtol=1e-4, atol=1e-5)
    assert nb_views.front_ends(x[:100], sr=32000, cfg=small_cfg.mel)["logmel"].shape[1] == small_cfg.mel.n_mels


def test_nearest_is_the_faiss_assignment():
    """The matrix-product search gives Faiss's flat-index ids (centroids drawn apart: no float ties)."""
    import faiss

    from vocalprint.tokens.codebook import Nearest

    rng = np.random.default_rng(3)
    for k, d in ((1024, 128), (256, 32), (16, 4)):
        c = rng.standard_normal((k, d)).astype(np.float32)
        x = rng.standard_normal((2500, d)).astype(np.float32)
        ix = faiss.IndexFlatL2(d)
        ix.add(c)
        near = Nearest(c, block=700)  # blocks that do not divide the rows
        ids = near(x)
        assert ids.dtype == np.uint16 and ids.shape == (2500,)
        np.testing.assert_array_equal(ids, ix.search(x, 1)[1][:, 0])
    np.testing.assert_array_equal(near(c[[5, 0, 15]] + 1e-3), [5, 0, 15])
    with pytest.raises(ValueError, match=r"features must be \[t, 4\]"):
        near(np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match="centroids must be"):
        Nearest(np.zeros((0, 4), np.float32))


def test_view_tokens_equal_each_views_own_features():
    """Shared float16 rounding, medians and features give, view by view, the nearest centroid of
    the view's own features: the predictor's float32 frames and the stage's float16 frames alike."""
    from vocalprint.tokens.codebook import Nearest

    rng = np.random.default_rng(4)
    cfg = NBConfig(views=("logmel", "pcen", "pcen1", "subbands"), k=64)
    vs = nb_views.views(cfg, 32)
    t = 900
    fe = {"logmel": (rng.standard_normal((t, 32)) * 12 - 60).astype(np.float32),
          "pcen": np.abs(rng.standard_normal((t, 32))).astype(np.float32)}
    near = {v.name: Nearest(rng.standard_normal((v.k, v.hi - v.lo)).astype(np.float32)) for v in vs}
    want = [near[v.name](nb_views.features(fe[v.frontend].astype(np.float16), v, nb_views.tokens_cfg(v, cfg)))
            for v in vs]
    got = nb_views.view_tokens(fe, vs, cfg, near)
    got16 = nb_views.view_tokens({k: a.astype(np.float16) for k, a in fe.items()}, vs, cfg, near)
    for v, w, g, g16 in zip(vs, want, got, got16):
        assert len(np.unique(w)) > 5, v.name
        np.testing.assert_array_equal(g, w, err_msg=v.name)
        np.testing.assert_array_equal(g16, w, err_msg=v.name)
    empty = nb_views.view_tokens({k: a[:0] for k, a in fe.items()}, vs, cfg, near)
    assert all(e.shape == (0,) and e.dtype == np.uint16 for e in empty)


def test_band_medians_equal_numpy_median():
    from vocalprint.tokens.codebook import band_medians

    x = np.random.default_rng(5).standard_normal((1001, 24)).astype(np.float16).astype(np.float32)
    for a in (x, x[:1000], x[:, 3:11]):  # odd, even, a strided view
        np.testing.assert_array_equal(band_medians(a), np.median(a, axis=0))


def test_half_band_medians_equal_numpy_median():
    from vocalprint.tokens import halfframes as halfmedian
    from vocalprint.tokens.halfframes import half_band_medians

    rng = np.random.default_rng(6)
    x = (rng.standard_normal((1001, 24)) * 30).astype(np.float16)
    x[:, 0] = -100.0  # a constant band (log-Mel silence)
    x[:500, 1], x[500:, 1] = -0.0, 0.0  # signed zeros
    x[::2, 2] = np.float16(65504.0)  # float16's extremes
    x[1::2, 2] = np.float16(-65504.0)
    x[:, 3] = np.float16(6e-8)  # a subnormal
    for a in (x, x[:1000], x[:, 3:11], x[:1], x[:2], x[:7]):  # odd, even, a strided view, tiny
        want = np.median(a.astype(np.float32), axis=0)
        np.testing.assert_array_equal(half_band_medians(a), want)
        bits, n_nan = halfmedian._ranks_numpy(np.ascontiguousarray(a).view(np.uint16), (len(a) - 1) // 2, len(a) // 2)
        assert n_nan == 0
        np.testing.assert_array_equal(bits.view(np.float16).astype(np.float32).mean(axis=0), want)
    with pytest.raises(ValueError, match="float16"):
        half_band_medians(x.astype(np.float32))
    with pytest.raises(ValueError, match="at least one frame"):
        half_band_medians(x[:0])
    bad = x.copy()
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="1 NaN"):
        half_band_medians(bad)
    bad[5, 6] = -np.nan
    with pytest.raises(ValueError, match="2 NaN"):
        half_band_medians(bad)
    assert halfmedian._ranks_numpy(bad.view(np.uint16), 1, 1)[1] == 2


def _float32_edges() -> np.ndarray:
    """float32 values around float16's rounding boundaries: subnormals, the smallest normal, the
    largest finite value and the overflow to infinity, exact halves (ties), both signs."""
    h = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16)
    h = h[np.isfinite(h)].astype(np.float32)
    mids = np.sort(np.unique(h))
    mids = ((mids[:-1].astype(np.float64) + mids[1:]) / 2).astype(np.float32)  # ties, exact in float32
    near = np.concatenate([np.nextafter(mids, np.float32(np.inf)), np.nextafter(mids, np.float32(-np.inf))])
    specials = np.array([0.0, -0.0, np.inf, -np.inf, 65504.0, 65519.99, 65520.0, 1e30, 2.0**-25,
                         2.0**-24, 2.0**-14, 1e-30, 3e-8, -3e-8], np.float32)
    return np.concatenate([h, mids, near, specials])


def test_round_half_equals_numpy_float16():
    from vocalprint.tokens import halfframes
    from vocalprint.tokens.halfframes import round_half

    rng = np.random.default_rng(9)
    random_bits = rng.integers(0, 2**32, 2_000_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    for x in (_float32_edges(), random_bits[~np.isnan(random_bits)]):
        x = x[: len(x) // 4 * 4].reshape(-1, 4)
        with np.errstate(over="ignore"):
            want = x.astype(np.float16).view(np.uint16)
        np.testing.assert_array_equal(round_half(x), want)
        got = np.empty_like(want)
        assert halfframes._round_numpy(x, got) == 0
        np.testing.assert_array_equal(got, want)
    assert round_half(np.zeros((0, 3), np.float32)).shape == (0, 3)
    bad = np.zeros((4, 3), np.float32)
    bad[1, 2], bad[3, 0] = np.nan, -np.nan
    with pytest.raises(ValueError, match="2 NaN"):
        round_half(bad)
    with pytest.raises(ValueError, match="float32"):
        round_half(bad.astype(np.float64))


def test_standardised_equals_normalised_frames():
    from vocalprint.config import TokensConfig
    from vocalprint.tokens import halfframes
    from vocalprint.tokens.codebook import normalise_frames
    from vocalprint.tokens.halfframes import half_band_medians, lut_values, standardised

    rng = np.random.default_rng(10)
    x = (rng.standard_normal((701, 32)) * 12 - 60).astype(np.float16)
    x[:, 5] = -100.0  # a constant band
    x[7] = -100.0  # a constant frame: its deviation is 0, its features 0
    med = half_band_medians(x)
    for lo, hi in ((0, 32), (8, 16), (31, 32)):
        want = normalise_frames(x[:, lo:hi].astype(np.float32) - med[lo:hi], cfg=TokensConfig(frame_norm="standardize"))
        got = standardised(x, med, lo, hi)
        assert got.shape == want.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)
        fallback = np.empty_like(want)
        halfframes._standardised_numpy(x.view(np.uint16), lut_values(), med, lo, hi, fallback)
        np.testing.assert_array_equal(fallback, want)
    assert standardised(x[:0], med, 0, 32).shape == (0, 32)
    with pytest.raises(ValueError, match="outside"):
        standardised(x, med, 4, 40)
    with pytest.raises(ValueError, match="float16 frames"):
        standardised(x.astype(np.float32), med, 0, 32)
    with pytest.raises(ValueError, match="medians"):
        standardised(x, med[:3], 0, 32)


def test_views_and_key(small_cfg):
    vs = nb_views.views(NBConfig(views=("logmel", "pcen1", "subbands"), k=1024), 128)
    assert [v.name for v in vs] == ["logmel", "pcen1", "subbands0", "subbands1", "subbands2", "subbands3"]
    assert vs[1].seed == 1 and vs[2].k == 256 and (vs[2].lo, vs[2].hi) == (0, 32) and vs[2].weight == 0.5
    with pytest.raises(C.ConfigError, match="nb.views: .mfcc. is not allowed"):
        nb_views.views(NBConfig(views=("mfcc",)), 128)

    class DS:
        def fingerprint(self):
            return "abc"

    assert nb_stage.key(_cfg(small_cfg), DS()) != nb_stage.key(_cfg(small_cfg, top_k=4), DS())
    assert nb_stage.key(_cfg(small_cfg), DS()) == nb_stage.key(C.override(_cfg(small_cfg), "run.n_jobs", 7), DS())


def test_run_is_cached(built, monkeypatch):
    from vocalprint.audio import mix
    from vocalprint.tokens import codebook as tokens

    root, ds, cfg, folder, _ = built

    def boom(*a, **k):
        raise AssertionError("nb stage recomputed although cached")

    for mod, name in ((nb_stage, "file_frames"), (nb_stage, "front_ends"), (mix, "mix_windows"),
                      (tokens, "fit_codebook")):
        monkeypatch.setattr(mod, name, boom)
    before = {p: p.stat().st_mtime_ns for p in root.rglob("manifest.json")}
    assert nb_stage.run(cfg, ds, root) == folder
    assert {p: p.stat().st_mtime_ns for p in root.rglob("manifest.json")} == before
    m = A.manifest(folder)
    assert {"codebook_logmel.npy", "table_pcen.npy", "calib.json"} <= set(m["files"])
    assert not any(f.startswith(("frames", "mixes")) for f in m["files"])  # intermediates removed
    assert m["n_mixes"] == 200 and m["species"] == list(ds.species)


def test_predictor_on_demo(built, demo_dir):
    root, ds, cfg, folder, pred = built
    assert pred.name == "tokens-nb" and pred.species == list(ds.species)
    times: dict = {}
    x = np.random.default_rng(1).standard_normal(60 * 32000).astype(np.float32) * 0.01
    p = pred.predict(x, 12, times)
    assert p.shape == (12, len(ds.species)) and np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()
    assert {"mel", "tokens", "head"} <= set(times)
    # empty and short audio, more windows than audio
    assert pred.predict(np.zeros(0, np.float32), 2, {}).shape == (2, len(ds.species))
    assert np.isfinite(pred.predict(np.zeros(1000, np.float32), 3, {})).all()
    # picklable after use (the searches are rebuilt), same outputs; shared front end reused
    clone = pickle.loads(pickle.dumps(pred))
    shared: dict = {}
    np.testing.assert_allclose(clone.predict(x, 12, {}, shared), p, rtol=1e-5)
    assert ("mel", cfg.audio.sr, cfg.mel) in shared
    np.testing.assert_allclose(clone.predict(x, 12, {}, shared), p, rtol=1e-5)
    # beats chance on the demo test soundscapes
    from vocalprint.audio.decode import load_audio, n_windows, row_ids

    rows, probs = [], []
    for f in ds.test_soundscapes:
        a = load_audio(f)
        n = n_windows(len(a))
        rows += row_ids(f.stem, n)
        probs.append(pred.predict(a, n, {}))
    df = pd.DataFrame(np.concatenate(probs), columns=list(ds.species))
    df.insert(0, "row_id", rows)
    auc, _ = metrics.macro_auc(pd.read_csv(demo_dir / "solution.csv"), df)
    assert auc > 0.6, auc


def test_load_predictor_refuses_other_species(built):
    _, ds, cfg, folder, _ = built
    with pytest.raises(A.ArtifactError, match="other species"):
        nb_predictor.load_predictor(folder, cfg, list(ds.species)[::-1])


# --------------------------------------------------------------------------------------------
# teacher-taught tables


def test_taught_targets_blend_only_species_the_teacher_knows():
    y = np.array([[1, 0, 1], [0, 0, 1]], np.float32)
    p = np.array([0.2, 0.8, np.nan], np.float32)  # the teacher does not know species 2
    out = nb_table.taught_targets(y, p, weight=0.25)
    np.testing.assert_allclose(out[:, 0], [0.75 + 0.05, 0.05])
    np.testing.assert_allclose(out[:, 1], [0.2, 0.2])
    np.testing.assert_array_equal(out[:, 2], y[:, 2])
    np.testing.assert_array_equal(nb_table.taught_targets(y, p, weight=0.0), y)
    with pytest.raises(ValueError, match="do not match"):
        nb_table.taught_targets(y, p[:2], weight=0.5)
    np.testing.assert_allclose(nb_table.teacher_probs(np.array([0.0, np.nan, 100.0])), [0.5, np.nan, 1.0])


def test_teacher_weight_must_be_a_fraction(small_cfg):
    with pytest.raises(C.ConfigError, match="teacher_weight"):
        nb_stage.uses_teacher(_cfg(small_cfg, teacher_weight=1.5))


@pytest.mark.slow
def test_soft_target_training_with_standin_teacher(built, standin_teacher, monkeypatch):
    """The tables learn from a (stand-in) teacher on the mixes and the unlabelled train soundscapes:
    the stand-in hears its first species everywhere, so that species' score rises on background
    audio relative to the others; the teacher cache is built once and reused."""
    from vocalprint import pipeline
    from vocalprint.teacher import stage as teach
    from vocalprint.audio.decode import load_audio, n_windows

    root, ds, plain_cfg, plain_dir, plain = built
    model, labels = standin_teacher
    cfg = dataclasses.replace(_cfg(plain_cfg, teacher_weight=0.5),
                              teacher=dataclasses.replace(plain_cfg.teacher, model_path=model, labels_path=labels))
    folder = pipeline.tokens_nb(cfg, ds, root)
    m = A.manifest(folder)
    assert folder != plain_dir and m["teacher"]["n_matched"] == len(ds.species)
    assert m["teacher"]["n_soundscapes_counted"] == len(ds.train_soundscapes) > 0
    taught = nb_predictor.load_predictor(folder, cfg, list(ds.species))
    a = ds.species.index("synbird01")

    def margin(pred):  # mean probability of the heard species minus the others', on background audio
        x = load_audio(ds.train_soundscapes[0])
        p = pred.predict(x, n_windows(len(x)), {})
        return float(p[:, a].mean() - np.delete(p, a, axis=1).mean())

    assert margin(taught) > margin(plain) + 0.05
    # cache reuse: neither the teacher cache nor the tables are recomputed ...
    monkeypatch.setattr(teach, "_cache_file", lambda *a, **k: (_ for _ in ()).throw(AssertionError("teacher rerun")))
    assert pipeline.tokens_nb(cfg, ds, root) == folder
    # ... and other tables (another top_k) reuse the teacher cache
    other = pipeline.tokens_nb(dataclasses.replace(cfg, nb=dataclasses.replace(cfg.nb, top_k=4)), ds, root)
    assert other != folder and A.manifest(other)["teacher"]["cache"] == m["teacher"]["cache"]


def test_bundle_round_trip(built, tmp_path):
    """tokens-nb is the default model: its bundle (what the Kaggle kernel loads) predicts the same."""
    from vocalprint.serving.bundle import load_bundle, save_bundle

    *_, pred = built
    b = save_bundle(pred, tmp_path / "bundle")
    again = load_bundle(b)
    x = np.random.default_rng(2).standard_normal(20 * 32000).astype(np.float32) * 0.05
    np.testing.assert_allclose(again.predict(x, 4, {}), pred.predict(x, 4, {}), rtol=1e-5)
