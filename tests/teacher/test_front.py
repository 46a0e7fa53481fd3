"""BirdNET's front end in NumPy (vocalprint.teacher.front): the split model gives the whole model's
logits and embeddings within float32 rounding, and any other graph runs whole."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vocalprint.config import Config, ConfigError, fingerprint, override
from vocalprint.teacher.birdnet import BirdNET
from vocalprint.teacher.front import split_front
from vocalprint.teacher.runtime import TeacherError, TFLiteModel

LOGIT_TOL = 2e-2  # logits reach about +-20; measured at most 9.3e-3 over the 32 dev soundscapes
EMB_TOL = 1e-2  # measured at most 3.1e-3 there
# Frames of digital silence (a zero-padded tail, a silent chunk): BirdNET raises each band to the
# power 0.46 (its square to 0.23), which magnifies the two FFTs' different float32 rounding near
# zero; measured at most 0.51 in a logit, 0.0015 in a probability, 0.14 in an embedding value (of 1-2)
SILENT_PROB_TOL, SILENT_LOGIT_TOL, SILENT_EMB_TOL = 5e-3, 1.0, 0.3


@pytest.fixture(scope="module")
def birdnet_path(prepared_birdnet: Path) -> Path:
    return prepared_birdnet


def _chunks(n: int, seed: int = 0) -> np.ndarray:
    """Seeded 3-s chunks at 48 kHz: noise, a tone with a chirp, a click train; then, with stretches
    of digital silence, silence, a constant and a zero-padded tail."""
    rng = np.random.default_rng(seed)
    t = np.arange(144000) / 48000
    x = np.empty((n, 144000), np.float32)
    for i in range(n):
        kind = i % 6
        if kind == 0:
            x[i] = rng.normal(0, 0.05, t.size)
        elif kind == 1:
            x[i] = 0.2 * np.sin(2 * np.pi * (2000 + 800 * t) * t) + rng.normal(0, 0.01, t.size)
        elif kind == 2:
            x[i] = (np.arange(t.size) % 4800 < 50) * 0.5 + rng.normal(0, 0.002, t.size)
        elif kind == 3:
            x[i] = 0.0
        elif kind == 4:
            x[i] = 0.3
        else:
            x[i] = 0.0
            x[i, :30000] = rng.normal(0, 0.05, 30000)
    return x


def test_split_front_reads_birdnets_two_branches(birdnet_path: Path):
    split = split_front(birdnet_path)
    assert split is not None
    front, trunk = split
    assert (front.n_samples, front.bands, front.n_frames) == (144000, 96, 511)
    assert [(b.frame, b.hop) for b in front.branches] == [(2048, 278), (1024, 280)]
    assert all(0.1 < b.exponent < 0.5 and b.k0 >= 0 and b.k1 <= b.frame // 2 + 1 for b in front.branches)
    assert front(_chunks(2)).shape == (2, 96, 511, 2)
    assert len(trunk) > 1e6


def test_numpy_front_equals_the_whole_model(birdnet_path: Path):
    x = _chunks(7)
    whole = TFLiteModel(birdnet_path, batch_size=4).run(x)
    front, trunk = split_front(birdnet_path)
    split = TFLiteModel(birdnet_path, batch_size=3, content=trunk, front=front)  # 3 + 3 + 1: resizing
    got = split.run(x)
    assert split.n_samples == 144000 and set(got) == {"logits", "embedding"}
    sound, silent = [0, 1, 2, 6], [3, 4, 5]
    dl, de = (np.abs(got[k] - whole[k]) for k in ("logits", "embedding"))
    assert dl[sound].max() <= LOGIT_TOL and de[sound].max() <= EMB_TOL
    assert (got["logits"][sound].argmax(1) == whole["logits"][sound].argmax(1)).all()
    prob = np.abs(1 / (1 + np.exp(-got["logits"][silent])) - 1 / (1 + np.exp(-whole["logits"][silent])))
    assert prob.max() <= SILENT_PROB_TOL
    assert dl[silent].max() <= SILENT_LOGIT_TOL and de[silent].max() <= SILENT_EMB_TOL


def test_birdnet_runs_the_split_model_by_default_and_the_whole_one_on_request(birdnet_path: Path):
    rng = np.random.default_rng(4)
    audio = rng.normal(0, 0.02, 32000 * 8).astype(np.float32)
    fast, whole = BirdNET(birdnet_path), BirdNET(birdnet_path, spectrogram="model")
    assert fast.model.front is not None and whole.model.front is None
    s1, l1, e1 = fast.chunk_outputs(audio, stride_s=1.0)
    s2, l2, e2 = whole.chunk_outputs(audio, stride_s=1.0)
    np.testing.assert_array_equal(s1, s2)
    assert np.abs(l1 - l2).max() <= LOGIT_TOL and np.abs(e1 - e2).max() <= EMB_TOL
    with pytest.raises(ValueError, match="spectrogram"):
        BirdNET(birdnet_path, spectrogram="librosa")


def test_another_window_keeps_the_front_end_in_the_model(birdnet_path: Path, tmp_path: Path):
    """A graph whose front end differs (here a Hamming window) is not split: it runs whole."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    m = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(birdnet_path.read_bytes(), 0))
    g = m.subgraphs[0]
    n = 0
    for t in g.tensors:
        data = m.buffers[t.buffer].data
        if t.type != 0 or len(t.shape) != 1 or int(t.shape[0]) not in (1024, 2048) or data is None or not len(data):
            continue
        k = int(t.shape[0])
        hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(k) / k)
        if np.abs(np.frombuffer(bytes(data), np.float32) - hann).max() < 1e-6:
            m.buffers[t.buffer].data = np.frombuffer(
                (0.54 - 0.46 * np.cos(2 * np.pi * np.arange(k) / k)).astype(np.float32).tobytes(), np.uint8)
            n += 1
    assert n == 2  # the two branches' windows
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    other = tmp_path / "other.tflite"
    other.write_bytes(bytes(b.Output()))
    assert split_front(other) is None
    net = BirdNET(other)
    assert net.model.front is None
    assert net.chunk_outputs(np.zeros(32000 * 3, np.float32), stride_s=1.0)[1].shape == (1, 6522)


def test_the_spectrogram_setting_is_checked_and_not_hashed():
    cfg = Config()
    assert cfg.teacher.spectrogram == "numpy"
    whole = override(cfg, "teacher.spectrogram", "model")
    assert whole.teacher.spectrogram == "model"
    assert fingerprint(whole.teacher) == fingerprint(cfg.teacher)  # caches are the same either way
    with pytest.raises(ConfigError, match="teacher.spectrogram"):
        override(cfg, "teacher.spectrogram", "librosa")


def test_a_file_that_is_not_a_model_is_reported_by_name(tmp_path: Path):
    bad = tmp_path / "broken.tflite"
    bad.write_bytes(b"not a flatbuffer at all" * 10)
    assert split_front(bad) is None
    with pytest.raises(TeacherError, match="broken.tflite"):
        BirdNET(bad)
