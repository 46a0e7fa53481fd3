"""The float32 blockwise Mel front end equals librosa's within the stated tolerance."""
from __future__ import annotations

import numpy as np
import pytest

from vocalprint.audio.mel import logmel, logmel_reference
from vocalprint.config import MelConfig

TOL_DB = 0.05  # max |difference| in dB (measured: 0.021 over the 32 dev soundscapes)


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
