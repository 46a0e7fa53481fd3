"""The per-file stages on a Dask LocalCluster give the same artifacts and submission as joblib."""
from __future__ import annotations

import pytest

from vocalprint.core import artifacts as A
from vocalprint import models
from vocalprint.serving import submit
from vocalprint.core.parallel import executor, map_files

pytest.importorskip("distributed")


def _complete(root, stage):
    return next(p for p in (root / stage).iterdir() if A.is_complete(p))


@pytest.mark.slow
def test_dask_local_matches_local(trained, small_cfg, tmp_path):
    local_root, ds, local_pred = trained
    root = tmp_path / "art"
    with executor("dask-local", n_workers=2) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        pred = models.predictor(small_cfg, ds, root, "stsg-linear")
        submit.run(small_cfg, ds, [pred], tmp_path / "dask.csv")
    submit.run(small_cfg, ds, [local_pred], tmp_path / "local.csv")
    for stage in ("mels", "tokens", "w2v", "features"):
        b = _complete(root, stage)
        a = local_root / stage / b.name
        assert A.is_complete(a), f"{stage}: the Dask run chose a key the local run did not make"
        fa, fb = A.manifest(a)["files"], A.manifest(b)["files"]
        assert fa == fb, f"{stage}: checksums differ: {[k for k in fa if fa[k] != fb.get(k)]}"
    assert (tmp_path / "dask.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()


def _fails_on_b(name):
    if name == "b":
        raise RuntimeError("broken file")
    return name.upper()


def test_a_failed_remote_task_is_reported_by_name(caplog):
    with executor("dask-local", n_workers=1):
        out = map_files(_fails_on_b, [("a",), ("b",), ("c",)], desc="t", progress=False,
                        on_error=lambda task, e: f"error: {e}")
    assert out == ["A", "error: broken file", "C"]
    assert any("b failed" in r.message for r in caplog.records)


def test_unknown_executor_is_a_config_error():
    from vocalprint.config import ConfigError

    with pytest.raises(ConfigError, match="executor"):
        with executor("spark"):
            pass
