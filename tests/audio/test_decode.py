"""load_audio's Ogg Vorbis path (miniaudio) equals libsndfile's, and hands every file it cannot
decode exactly as libsndfile would back to it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vocalprint.audio import decode
from vocalprint.audio.decode import AudioError, load_audio

pytest.importorskip("miniaudio")


def seeded(sr: int, seconds: float, channels: int = 1, seed: int = 0) -> np.ndarray:
    """Noise, a chirp and a tone: broadband and tonal content for the codec."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    x = 0.05 * rng.standard_normal(t.size) + 0.3 * np.sin(2 * np.pi * (500 + 2000 * t) * t)
    x += 0.2 * np.sin(2 * np.pi * 3000 * t) * (t % 1 < 0.3)
    if channels == 1:
        return x.astype(np.float32)
    return np.stack([x, -0.5 * x[::-1]], 1).astype(np.float32)


def write(path: Path, x: np.ndarray, sr: int, subtype: str = "VORBIS") -> Path:
    sf.write(str(path), x, sr, format="OGG", subtype=subtype)
    return path


@pytest.mark.parametrize("sr,channels,seconds", [(32000, 1, 12.0), (44100, 2, 7.5), (32000, 1, 0.3), (22050, 1, 3.0)])
def test_vorbis_path_equals_libsndfile(tmp_path, sr, channels, seconds):
    p = write(tmp_path / "a.ogg", seeded(sr, seconds, channels), sr)
    raw = decode.read_vorbis(p, None)
    assert raw is not None, "miniaudio should decode a plain Ogg Vorbis file"
    ref, native = decode.read_libsndfile(p, None)
    assert raw[1] == native == sr and raw[0].shape == ref.shape
    assert np.abs(raw[0] - ref).max() < 1e-6
    a, b = load_audio(p), load_audio(p, decoder="soundfile")
    assert a.dtype == np.float32 and a.shape == b.shape
    assert np.abs(a - b).max() < 1e-6


def test_other_files_go_to_libsndfile(tmp_path):
    x = seeded(32000, 4.0)
    wav = tmp_path / "a.wav"
    sf.write(str(wav), x, 32000)
    opus = write(tmp_path / "b.ogg", seeded(48000, 2.0), 48000, subtype="OPUS")
    for p in (wav, opus):
        assert decode.read_vorbis(p, None) is None, p.name
        assert np.array_equal(load_audio(p), load_audio(p, decoder="soundfile")), p.name


def test_max_s_shorter_than_the_file_reads_only_that_part(tmp_path):
    p = write(tmp_path / "long.ogg", seeded(32000, 9.0), 32000)
    assert decode.read_vorbis(p, 4.0) is None and decode.read_vorbis(p, 9.5) is not None
    a = load_audio(p, max_s=4.0)
    assert len(a) == 4 * 32000 and np.array_equal(a, load_audio(p, max_s=4.0, decoder="soundfile"))


def test_damaged_files_decide_as_libsndfile_does(tmp_path):
    good = write(tmp_path / "good.ogg", seeded(32000, 20.0), 32000).read_bytes()
    cases = {"empty.ogg": b"", "head.ogg": good[:300], "half.ogg": good[: len(good) // 2],
             "noise.ogg": np.random.default_rng(1).bytes(5000)}
    for name, data in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        try:
            want = load_audio(p, decoder="soundfile")
        except AudioError:
            with pytest.raises(AudioError, match=name.replace(".", r"\.")):
                load_audio(p)
            continue
        got = load_audio(p)
        assert got.shape == want.shape, name
        assert np.abs(got - want).max() < 1e-6, name


def test_unknown_decoder_is_refused(tmp_path):
    p = write(tmp_path / "a.ogg", seeded(32000, 1.0), 32000)
    with pytest.raises(ValueError, match="decoder"):
        load_audio(p, decoder="ffmpeg")
