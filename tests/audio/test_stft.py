"""The float32 blockwise Mel front end equals librosa's within the stated tolerance."""
from __future__ import annotations

import numpy as np
import pytest

from vocalprint.audio.mel import logmel, logmel_reference
from vocalprint.config import MelConfig

TOL_DB = 0.05  # max |difference| in dB (measured: 0.017 over the 32 dev soundscapes)


def _signal(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 32000
    x = 0.05 * rng.standard_normal(n) + 0.3 * np.sin(2 * np.pi * 2500 * t) * (np.sin(2 * np.pi * 0.7 * t) > 0)
    x += 0.1 * np.sin(2 * np.pi * (800 + 3000 * t) * t)  # a sweep
    return x.astype(np.float32)


@pytest.mark.parametrize("n", [0, 1, 700, 1024, 1025, 2047, 2048, 2049, 5000, 32000 * 5 + 17, 32000 * 60])
def test_fast_logmel_equals_librosa_within_tolerance(n):
    cfg = MelConfig()
    x = _signal(n)
    fast, ref = logmel(x, sr=32000, cfg=cfg), logmel_reference(x, sr=32000, cfg=cfg)
    assert fast.shape == ref.shape == (1 + max(n, cfg.n_fft // 2 + 1) // cfg.hop, cfg.n_mels)
    assert fast.dtype == np.float32
    assert np.abs(fast - ref).max() <= TOL_DB


@pytest.mark.parametrize("cfg", [MelConfig(n_fft=1024, hop=320, n_mels=64), MelConfig(n_mels=100, fmin=150.0),
                                 MelConfig(frontend="pcen")])
def test_other_settings_and_pcen(cfg):
    x = _signal(32000 * 7 + 5, seed=1)
    fast, ref = logmel(x, sr=32000, cfg=cfg), logmel_reference(x, sr=32000, cfg=cfg)
    assert fast.shape == ref.shape
    tol = TOL_DB if cfg.frontend == "logmel" else 0.05 * max(1.0, float(np.abs(ref).max()))
    assert np.abs(fast - ref).max() <= tol


def test_silence_is_the_floor_and_strided_input_is_fine():
    cfg = MelConfig()
    z = np.zeros(32000, np.float32)
    np.testing.assert_allclose(logmel(z, sr=32000, cfg=cfg), -100.0, atol=1e-4)  # the floor, as before
    np.testing.assert_array_equal(logmel(z, sr=32000, cfg=cfg), logmel_reference(z, sr=32000, cfg=cfg))
    x = _signal(64000)
    np.testing.assert_array_equal(logmel(x[::2], sr=32000, cfg=cfg), logmel(x[::2].copy(), sr=32000, cfg=cfg))
    np.testing.assert_array_equal(logmel(x, sr=32000, cfg=cfg), logmel(x.astype(np.float64), sr=32000, cfg=cfg))


def test_bad_frontend_is_refused():
    with pytest.raises(Exception, match="frontend"):
        logmel(_signal(4000), sr=32000, cfg=_unchecked(frontend="cqt"))


def _unchecked(**kw) -> MelConfig:
    """A MelConfig that skips validation (a config built elsewhere, e.g. an old pickle)."""
    cfg = MelConfig()
    for k, v in kw.items():
        object.__setattr__(cfg, k, v)
    return cfg


def test_hann_on_the_spectrum_equals_the_windowed_frames():
    """The three-tap window on the spectrum of unwindowed frames, compiled and in NumPy, gives the
    power of the windowed frames' spectrum (float64 reference), for even FFT sizes."""
    import scipy.fft
    from scipy.signal import get_window

    from vocalprint.audio.stft import hann_power, hann_power_numpy

    rng = np.random.default_rng(3)
    for n_fft in (16, 512, 2048):
        frames = rng.standard_normal((9, n_fft)).astype(np.float32)
        frames[0] = 0.0
        frames[1] = 1.0  # a constant: all of it in the bins next to DC
        frames[2] = np.cos(np.pi * np.arange(n_fft))  # Nyquist
        win = get_window("hann", n_fft, fftbins=True)
        ref = np.abs(np.fft.rfft(frames.astype(np.float64) * win, axis=-1)) ** 2
        spec = scipy.fft.rfft(frames, axis=-1).astype(np.complex64).view(np.float32)
        got, got_np = (np.empty(ref.shape, np.float32) for _ in range(2))
        hann_power(spec, got)
        hann_power_numpy(spec, got_np)
        scale = ref.max(axis=1, keepdims=True) + 1e-12
        assert (np.abs(got - ref) <= 1e-5 * scale).all()  # within float32 rounding of each frame's peak
        np.testing.assert_allclose(got_np, got, rtol=1e-5, atol=1e-6 * scale.max())


def test_odd_fft_size_windows_in_time():
    """An odd FFT size (no Nyquist bin) keeps the time-domain window and still matches librosa."""
    cfg = MelConfig(n_fft=1023, hop=300, n_mels=64)
    x = _signal(32000 * 3 + 11, seed=2)
    fast, ref = logmel(x, sr=32000, cfg=cfg), logmel_reference(x, sr=32000, cfg=cfg)
    assert fast.shape == ref.shape
    assert np.abs(fast - ref).max() <= TOL_DB
