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


def test_newton_cholesky_reaches_the_lbfgs_optimum_on_correlated_features():
    """``auto`` picks Newton-Cholesky for narrow features and L-BFGS for wide ones; both solve the
    same penalised problem, so on strongly correlated features (like Mel band statistics) the
    coefficients agree."""
    from dataclasses import replace

    from vocalprint.config.schema import NEWTON_MAX_DIM
    from vocalprint.tokens.heads.linear import solver

    rng = np.random.default_rng(1)
    base = rng.normal(size=(2000, 4))
    x = (base @ rng.normal(size=(4, 40)) + 0.05 * rng.normal(size=(2000, 40))).astype(np.float32)
    y = (base[:, :3] + rng.normal(scale=0.7, size=(2000, 3)) > 1.2).astype(np.float32)
    cfg = C.Config().train.linear
    assert solver(cfg, 256) == "newton-cholesky" and solver(cfg, NEWTON_MAX_DIM + 1) == "lbfgs"
    assert solver(replace(cfg, solver="lbfgs"), 16) == "lbfgs"
    newton = LinearHead(cfg).fit(x, y)
    lbfgs = LinearHead(replace(cfg, solver="lbfgs", max_iter=20000)).fit(x, y)
    z = (x - newton.mu) / newton.sd
    np.testing.assert_allclose(newton.decision(x), lbfgs.decision(x), atol=2e-3 * np.abs(z @ lbfgs.coef).max())
    try:
        C.override(C.Config(), "train.linear.solver", "sag")
    except C.ConfigError as e:
        assert "train.linear.solver" in str(e)
    else:
        raise AssertionError("an unknown solver was accepted")


def test_the_out_of_fold_check_is_capped_at_whole_recordings():
    """Above ``train.oof_max_windows`` the check runs on whole recordings drawn up to the cap; the
    other rows stay NaN and no fold splits a recording."""
    from vocalprint.tokens.train import oof_predictions, oof_rows

    rng = np.random.default_rng(2)
    groups = np.repeat(np.arange(60), rng.integers(1, 20, size=60))
    n = len(groups)
    assert np.array_equal(oof_rows(groups, 0), np.arange(n)) and np.array_equal(oof_rows(groups, n), np.arange(n))
    rows = oof_rows(groups, 200)
    assert 200 <= len(rows) < 220 and np.array_equal(rows, oof_rows(groups, 200))  # seeded
    picked = np.unique(groups[rows])
    assert np.array_equal(np.flatnonzero(np.isin(groups, picked)), rows)  # whole recordings only
    x = rng.normal(size=(n, 8)).astype(np.float32)
    y = (x[:, :2] > 0.5).astype(np.float32)
    cfg = C.override(C.override(C.Config(), "train.oof_max_windows", "200"), "train.folds", "3")
    oof = oof_predictions(x, y, groups, head="linear", cfg=cfg)
    done = np.isfinite(oof).all(axis=1)
    assert np.array_equal(np.flatnonzero(done), rows) and np.isnan(oof[~done]).all()
    full = oof_predictions(x, y, groups, head="linear", cfg=C.override(cfg, "train.oof_max_windows", "0"))
    assert np.isfinite(full).all()
