"""The linear head fits its species in parallel processes with the same result as one by one."""
from __future__ import annotations

import numpy as np

from vocalprint import config as C
from vocalprint.tokens import heads
from vocalprint.tokens.heads.linear import LinearHead


def test_parallel_species_fits_equal_sequential():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 16)).astype(np.float32)
    y = (x[:, :5] + rng.normal(scale=0.5, size=(300, 5)) > 1.0).astype(np.float32)
    y = np.concatenate([y, np.zeros((300, 1), np.float32)], axis=1)  # a species with no positive
    cfg = C.Config().train.linear
    one = LinearHead(cfg, n_jobs=1).fit(x, y)
    two = LinearHead(cfg, n_jobs=2).fit(x, y)
    np.testing.assert_allclose(two.coef, one.coef, rtol=1e-6, atol=1e-7)  # one BLAS thread in both
    np.testing.assert_allclose(two.bias, one.bias, rtol=1e-6, atol=1e-7)
    assert np.abs(one.coef[:, :5]).max() > 0.1 and not one.coef[:, 5].any()  # nothing learnt without positives
    assert one.bias[5] < -5  # the prior of an unheard species
    assert heads.make("linear", C.override(C.Config(), "run.n_jobs", "3")).n_jobs == 3
