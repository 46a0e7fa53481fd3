"""Properties of the pure pieces: config hashing, windows, pooling, tokens, metric, submission rules."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vocalprint import config as C
from vocalprint.tokens import features
from vocalprint.audio import mel
from vocalprint.tokens import codebook as tokens
from vocalprint.tokens import train
from vocalprint.tokens import w2v
from vocalprint.audio.decode import frame_windows, n_windows, row_ids
from vocalprint.serving.budget import Budget
from vocalprint.core.metrics import macro_auc
from vocalprint.audio.clips import clip_windows
from vocalprint.tokens.pool import pool_mel, pool_tokens
from vocalprint.serving.submission import SubmissionError, frame, validate


class FakeDs:
    def fingerprint(self):
        return "data0"


def keys(cfg):
    m = mel.key(cfg, FakeDs())
    t = tokens.key(cfg, m)
    w = w2v.key(cfg, t)
    f = features.key(cfg, w)
    return {"mel": m, "tokens": t, "w2v": w, "features": f, "train": train.key(cfg, "stsg-linear", f)}


@pytest.mark.parametrize("field,value,first_changed", [
    ("mel.n_mels", "64", "mel"), ("tokens.k", "2048", "tokens"), ("tokens.pca_dim", "32", "tokens"),
    ("w2v.window", "5", "w2v"), ("features.pooling", "mean,max", "features"),
    ("train.linear.C", "2.0", "train"), ("train.secondary_weight", "0.5", "features"),
])
def test_hash_changes_exactly_downstream(field, value, first_changed):
    base = keys(C.Config())
    new = keys(C.load(None, [f"{field}={value}"]))
    order = list(base)
    i = order.index(first_changed)
    assert all(base[s] == new[s] for s in order[:i]), "an upstream stage would be rebuilt"
    assert all(base[s] != new[s] for s in order[i:]), "a downstream stage would reuse stale work"


@pytest.mark.parametrize("field,value", [("w2v.workers", "7"), ("run.n_jobs", "9"), ("run.progress", "false")])
def test_threads_and_progress_are_not_hashed(field, value):
    assert keys(C.Config()) == keys(C.load(None, [f"{field}={value}"]))


def test_lgbm_settings_do_not_touch_linear_model():
    a, b = C.Config(), C.load(None, ["train.lgbm.num_leaves=63"])
    assert train.key(a, "stsg-linear", "f") == train.key(b, "stsg-linear", "f")
    assert train.key(a, "stsg-lgbm", "f") != train.key(b, "stsg-lgbm", "f")


def test_config_errors_name_the_key():
    with pytest.raises(C.ConfigError, match="tokens.kk"):
        C.load(None, ["tokens.kk=3"])
    with pytest.raises(C.ConfigError, match="tokens.k"):
        C.load(None, ["tokens.k=many"])
    with pytest.raises(C.ConfigError, match="key=value"):
        C.load(None, ["tokens.k"])


def test_yaml_config(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("tokens:\n  k: 256\nfeatures:\n  pooling: [mean, max]\n")
    cfg = C.load(p, ["tokens.k=512"])
    assert cfg.tokens.k == 512 and cfg.features.pooling == ("mean", "max")


@pytest.mark.parametrize("seconds,rows", [(60, 12), (59.9, 12), (61, 13), (5, 1), (0.3, 1), (600, 120)])
def test_one_row_per_started_window(seconds, rows):
    assert n_windows(int(round(seconds * 32000))) == rows


def test_row_ids():
    assert row_ids("XC1", 3) == ["XC1_5", "XC1_10", "XC1_15"]


def test_frame_windows_tile_the_frames():
    n_frames = 1 + 60 * 32000 // 512
    b = frame_windows(n_frames, n=12)
    assert b[0, 0] == 0 and b[-1, 1] == n_frames - 1  # the last frame is centred on the end sample
    assert (b[1:, 0] == b[:-1, 1]).all()
    assert set(np.diff(b, axis=1)[:, 0]) <= {312, 313}
    short = frame_windows(100, n=3)
    assert short[1, 0] == short[1, 1] == 100  # windows past the end are empty


def test_clip_windows():
    assert clip_windows(100, fpw=312, hop=156, min_frames=62).tolist() == [[0, 100]]
    assert clip_windows(30, fpw=312, hop=156, min_frames=62).shape == (0, 2)
    b = clip_windows(1000, fpw=312, hop=156, min_frames=62)
    assert b[-1, 1] == 1000 and (np.diff(b, axis=1) == 312).all()


def test_pooling():
    vec = np.arange(12, dtype=np.float32).reshape(4, 3)
    tok = np.array([0, 1, 1, 3, 2], np.uint16)
    out = pool_tokens(tok, np.array([[0, 3], [3, 5], [5, 5]]), vectors=vec,
                      idf=np.ones(4, np.float32), pooling=("mean", "max", "tfidf", "std"))
    assert out.shape == (3, 12)
    np.testing.assert_allclose(out[0, :3], vec[[0, 1, 1]].mean(0))
    np.testing.assert_allclose(out[1, 3:6], vec[[3, 2]].max(0))
    np.testing.assert_allclose(out[0, 6:9], out[0, :3])  # equal idf -> tfidf == mean
    assert (out[2] == 0).all()
    with pytest.raises(ValueError, match="pooling"):
        pool_tokens(tok, np.array([[0, 1]]), vectors=vec, pooling=("median",))
    m = pool_mel(np.ones((10, 4), np.float32), np.array([[0, 10]]))
    assert m.shape == (1, 8) and (m[0, :4] == 1).all() and (m[0, 4:] == 0).all()


def test_codebook_ids_in_range():
    rng = np.random.default_rng(0)
    frames = rng.normal(size=(3000, 32)).astype(np.float32) * 10 - 40
    cfg = C.TokensConfig(k=16, niter=5)
    book = tokens.fit_codebook(tokens.frame_features(frames, cfg=cfg), cfg=cfg)
    ids = book.encode(frames)
    assert ids.dtype == np.uint16 and ids.shape == (3000,) and ids.max() < 16
    assert len(np.unique(ids)) > 8
    with pytest.raises(C.ConfigError, match="fewer than k"):
        tokens.fit_codebook(np.zeros((5, 32), np.float32), cfg=cfg)


def test_frame_features_remove_level():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(50, 16)).astype(np.float32)
    cfg = C.TokensConfig()
    np.testing.assert_allclose(tokens.frame_features(f, cfg=cfg), tokens.frame_features(f + 20, cfg=cfg), atol=1e-4)


def test_macro_auc_skips_species_without_positives():
    truth = pd.DataFrame({"row_id": list("abcd"), "s1": [1, 0, 1, 0], "s2": [0, 0, 0, 0]})
    pred = pd.DataFrame({"row_id": list("dcba"), "s1": [0.1, 0.9, 0.2, 0.8], "s2": [0.5] * 4})
    auc, per = macro_auc(truth, pred)
    assert auc == 1.0 and list(per) == ["s1"]
    with pytest.raises(ValueError, match="lack"):
        macro_auc(truth, pred.iloc[:3])


def _sub():
    ids = ["a_5", "a_10"]
    return ids, frame(ids, np.array([[0.1, 0.2], [0.3, 0.4]]), ["s1", "s2"])


def test_validator_accepts_good_file():
    ids, df = _sub()
    before = df.copy()
    assert validate(df, row_ids_expected=ids, species=["s1", "s2"]) is None  # raises on any problem
    assert df.equals(before)  # and leaves the frame alone


@pytest.mark.parametrize("breakage,message", [
    (lambda d: d.iloc[:1], "missing"),
    (lambda d: pd.concat([d, d.iloc[:1].assign(row_id="zzz_5")]), "unexpected"),
    (lambda d: pd.concat([d, d.iloc[:1]]), "more than once"),
    (lambda d: d.assign(s1=[np.nan, 0.1]), "NaN"),
    (lambda d: d.assign(s2=[1.5, 0.1]), r"\[0, 1\]"),
    (lambda d: d[["row_id", "s2", "s1"]], "order"),
    (lambda d: d[["row_id", "s1"]], "order"),
])
def test_validator_rejects(breakage, message):
    ids, df = _sub()
    with pytest.raises(SubmissionError, match=message):
        validate(breakage(df), row_ids_expected=ids, species=["s1", "s2"])


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_budget_projection_with_injected_clock():
    clk = FakeClock()
    b = Budget(100.0, safety=0.8, clock=clk)
    assert not b.over(1000) and b.projected_total(1000) is None
    clk.t = 10
    b.observe(60)  # 10 s for 60 s of audio
    assert b.projected_total(600) == pytest.approx(110)
    assert b.over(600) and not b.over(300)
    assert b.can_afford(60) and not b.can_afford(600)


def test_loudness_baseline_ranks_louder_windows_higher(small_cfg):
    from vocalprint.tokens.predictor import LoudnessPredictor

    pred = LoudnessPredictor(cfg=small_cfg, species=["a", "b", "c"])
    rng = np.random.default_rng(0)
    x = rng.standard_normal(15 * 32000).astype(np.float32) * 0.001
    x[5 * 32000:10 * 32000] *= 100.0  # the middle window is 40 dB louder
    p = pred.predict(x, 4, {})  # the 4th window lies past the audio
    assert p.shape == (4, 3) and np.isfinite(p).all() and (p[:, 0:1] == p).all()  # species-blind
    assert p[1, 0] > p[0, 0] + 0.1 and p[1, 0] > p[2, 0] + 0.1 and p[3, 0] == 0.5


def test_shifted_student_windows_share_starts_and_hold_the_aligned_window():
    from vocalprint.student.predictor import shifted_windows, student_windows

    cfg = C.Config()
    n, fpw = 12, C.frames_per_window(cfg)
    frames = np.repeat(np.arange(3750, dtype=np.float32)[:, None], 4, axis=1)  # frame t holds value t
    wins, rows = shifted_windows(frames, n=n, fpw=fpw, offsets_s=(-2.5, 0.0, 2.5), cfg=cfg)
    assert rows.shape == (n, 3) and len(wins) == 2 * n + 1  # half-window shifts: shared starts
    np.testing.assert_array_equal(wins[rows[:, 1]], student_windows(frames, n=n, fpw=fpw, cfg=cfg))
    np.testing.assert_array_equal(rows[:-1, 2], rows[1:, 0])  # row i's +2.5 s is row i+1's -2.5 s
    first = wins[rows[0, 0]]  # starts 2.5 s before the audio: padded, then frames 0, 1, ...
    assert (first[:156, 0] == -100).all() and first[156, 0] == 0 and first[-1, 0] == fpw - 157
    assert wins[rows[3, 2], 0, 0] == np.ceil(17.5 * 62.5)
    last = wins[rows[-1, 2]]  # runs past the end: padded there
    assert last[0, 0] == np.ceil(57.5 * 62.5) and (last[-1] == -100).all()
    assert len(shifted_windows(frames, n=n, fpw=fpw, offsets_s=(-1.0, 0.0, 1.0), cfg=cfg)[0]) == 3 * n
    with pytest.raises(ValueError, match="offsets"):
        shifted_windows(frames, n=n, fpw=fpw, offsets_s=(-10.0, 0.0, 10.0), cfg=cfg)
    pcen = C.override(cfg, "mel.frontend", "pcen")  # PCEN's silence is 0, not -100 dB
    assert (shifted_windows(frames, n=n, fpw=fpw, offsets_s=(-2.5, 0.0, 2.5), cfg=pcen)[0][0, :156] == 0).all()
    assert (student_windows(frames[:100], n=1, fpw=fpw, cfg=pcen)[0, 100:] == 0).all()


def test_file_max_blend_keeps_the_order_within_a_file_and_lifts_files_with_the_species():
    from vocalprint.serving.submit import file_max, postprocess

    p = np.array([[0.1, 0.5], [0.9, 0.2], [0.3, 0.4]])
    np.testing.assert_array_equal(file_max(p, 0.0), p)
    q = file_max(p, 0.3)
    np.testing.assert_allclose(q, 0.7 * p + 0.3 * np.array([[0.9, 0.5]]))
    assert (np.argsort(q, axis=0) == np.argsort(p, axis=0)).all()
    quiet = np.array([[0.35, 0.1], [0.2, 0.1], [0.1, 0.1]])  # a file where species 0 never shows
    assert file_max(quiet, 0.3)[0, 0] < q[2, 0]  # before: 0.35 > 0.3; the file with the call wins
    both = postprocess(p, C.SubmitConfig(smooth=0.5, file_max=0.3))
    from vocalprint.serving.submit import smooth

    np.testing.assert_allclose(both, file_max(smooth(p, 0.5), 0.3))
    np.testing.assert_array_equal(postprocess(p[:1], C.SubmitConfig(file_max=0.5)), p[:1])  # one window: as is


def test_one_blas_thread_limits_blas_inside_only():
    from threadpoolctl import threadpool_info

    from vocalprint.core.parallel import one_blas_thread

    def blas_threads():
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    before = blas_threads()
    with one_blas_thread():
        assert blas_threads() <= {1}
    assert blas_threads() == before


def test_one_blas_thread_limits_a_blas_loaded_after_its_first_use():
    """Faiss brings its own OpenBLAS; imported after the context was first entered, it is limited too
    (a fresh process: in this one Faiss is already loaded)."""
    import subprocess
    import sys

    code = (
        "from threadpoolctl import threadpool_info\n"
        "from vocalprint.core.parallel import one_blas_thread\n"
        "with one_blas_thread(): pass\n"
        "n = len([i for i in threadpool_info() if i['user_api'] == 'blas'])\n"
        "import faiss\n"
        "libs = [i for i in threadpool_info() if i['user_api'] == 'blas']\n"
        "with one_blas_thread():\n"
        "    inside = [i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas']\n"
        "print(n, len(libs), max(inside))\n")
    env = {**__import__("os").environ, "OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    before, after, inside = map(int, out.stdout.split())
    if after <= before:
        pytest.skip("this faiss build brings no BLAS of its own")
    assert inside == 1


def _shipped_in_worker(ship) -> tuple[int, int, float]:
    import os

    obj = ship.get()
    return os.getpid(), id(obj), float(obj["w"].sum())


def test_shipped_is_pickled_once_and_unpickled_once_per_worker():
    """A task carries the object's bytes, pickled when shipped; each worker unpickles it at its
    first task and keeps it; in the process that made it, ``get`` is the object itself."""
    import pickle

    from joblib import Parallel, delayed

    from vocalprint.core.parallel import Shipped

    obj = {"w": np.arange(300_000, dtype=np.float32)}
    ship = Shipped(obj)
    assert ship.get() is obj
    assert len(ship.blob) < len(pickle.dumps(ship)) < len(ship.blob) + 200  # the bytes, not the object again
    with Parallel(n_jobs=2, backend="loky") as par:
        out = par(delayed(_shipped_in_worker)(ship) for _ in range(8))
    assert {s for _, _, s in out} == {float(obj["w"].sum())}
    per_pid: dict = {}
    for pid, ident, _ in out:
        per_pid.setdefault(pid, set()).add(ident)
    assert all(len(ids) == 1 for ids in per_pid.values())  # one unpickled copy per worker
    other = Shipped({"w": np.zeros(3, np.float32)})
    assert other.key != ship.key and pickle.loads(pickle.dumps(other)).get()["w"].sum() == 0
