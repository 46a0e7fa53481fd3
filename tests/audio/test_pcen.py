"""PCEN equals librosa's within the stated tolerance, on the same Mel power."""
from __future__ import annotations

import numpy as np
import pytest

from vocalprint.audio import pcen as P

REL = 1e-5  # measured: 2.5e-6 relative over every value of the 32 dev soundscapes


def _power(t: int, seed: int = 0) -> np.ndarray:
    """Mel-power-like frames [t, 40]: quiet noise, a loud call in some bands, a silent stretch."""
    rng = np.random.default_rng(seed)
    s = (rng.gamma(1.0, 1e-7, size=(t, 40)) * np.exp(rng.normal(0, 2, size=(1, 40)))).astype(np.float32)
    s[t // 4:t // 2, 10:15] *= 1e5
    s[t // 2:t // 2 + t // 8] = 0.0  # digital silence
    return s


def _librosa(s: np.ndarray, sr: int, hop: int) -> np.ndarray:
    import librosa

    return np.ascontiguousarray(librosa.pcen(s.T * (2**31), sr=sr, hop_length=hop).T, dtype=np.float32)


@pytest.mark.parametrize("t,sr,hop", [(0, 32000, 512), (1, 32000, 512), (2, 32000, 512), (3751, 32000, 512),
                                      (900, 22050, 256)])
def test_pcen_equals_librosa(t, sr, hop):
    s = _power(t)
    got, want = P.pcen(s, sr=sr, hop=hop), _librosa(s, sr, hop)
    assert got.shape == want.shape == (t, 40) and got.dtype == np.float32
    if t:
        assert np.isfinite(got).all()
        np.testing.assert_allclose(got, want, rtol=REL, atol=1e-12)
        assert want.max() > 1.0 and (want[t // 2 + 1:t // 2 + t // 8] == 0).all()  # loud and silent values were tested


def test_compiled_filter_equals_lfilter():
    s = _power(500, seed=1)
    b = P.smoothing_coefficient(32000, 512)
    got, want = np.empty(s.shape, np.float32), np.empty(s.shape, np.float32)
    P._compile()(s, P.SCALE, b, got)
    P.smooth_numpy(s, P.SCALE, b, want)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert abs(want[0, 0] - (b * P.SCALE * s[0, 0] + (1 - b))) <= 1e-6 * want[0, 0]  # the state starts at 1


def test_pcen_rejects_other_shapes():
    with pytest.raises(ValueError, match=r"frames \[t, n_mels\]"):
        P.pcen(np.zeros(10, np.float32), sr=32000, hop=512)
