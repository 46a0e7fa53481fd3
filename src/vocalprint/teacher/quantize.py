"""Post-training quantization of an existing float32 ``.tflite`` with Google's AI Edge Quantizer.

``ai-edge-quantizer`` (PyPI, Apache-2.0, pure Python on top of ``ai-edge-litert``) rewrites a
float TFLite flatbuffer from a recipe; no Keras model or SavedModel is needed, which matters for
BirdNET, whose original model is not available. Imported inside :func:`quantize_tflite` only.

Modes (measured on BirdNET V2.4 with its embedding exposed, see ``vocalprint.teacher.surgery``):

``"float16"``
    float16 weights of CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED, dequantized once at load
    (float32 compute). Half the size; logits equal to float32 within ~0.1.
``"weight_int8"``
    int8 per-channel weights of those ops, float32 compute. A quarter of the size.
``"dynamic_int8"``
    int8 per-channel weights of CONV_2D and FULLY_CONNECTED with activations quantized on the fly
    (dynamic range). Depthwise convolutions stay float: dynamic quantization of them wrecked
    BirdNET's outputs (logit correlation with float32 0.96, top-1 agreement 0.68).
``"full_int8"``
    static int8 weights and activations from calibration data (``calibration``); the model input
    stays float32, integer outputs are int8 (``vocalprint.teacher.runtime.TFLiteModel`` dequantizes them).
    Runs, but on BirdNET its logits correlate only ~0.89 with float32: not recommended.

In every mode, ops whose output tensor name matches ``keep_float`` (default ``MEL_SPEC``:
BirdNET's spectrogram front-end, whose power-spectrum activations span a huge range) stay float32.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterable

import numpy as np

log = logging.getLogger(__name__)

MODES = ("float16", "weight_int8", "dynamic_int8", "full_int8")
AEQ_PIN = "ai-edge-quantizer==0.10.0"


class QuantizeError(RuntimeError):
    """A quantization that cannot be done; the message says why."""


def _scope_regex(keep_float: str | None) -> str:
    return rf"^(?!.*(?:{keep_float}))" if keep_float else ".*"


def quantize_tflite(src: str | Path, dst: str | Path, *, mode: str,
                    keep_float: str | None = "MEL_SPEC",
                    calibration: Iterable[np.ndarray] | None = None,
                    signature: str = "serving_default") -> Path:
    """Write a quantized copy of the float32 TFLite model ``src`` to ``dst``; returns ``dst``.

    ``mode``: one of :data:`MODES` (see the module docstring). ``keep_float``: regex; ops whose
    output tensor names match it are left in float32 (``None``: quantize everything supported).
    ``calibration`` (``"full_int8"`` only, required there): an iterable of float32 batches
    ``[n, n_samples]`` fed through ``signature`` (its single input) to record activation ranges;
    a model without signature defs cannot be calibrated (``teacher.expose_embedding`` adds one).
    Written to a temporary name, checked to load and run, then ``os.replace``-d onto ``dst``.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    try:
        from ai_edge_quantizer import qtyping, quantizer
        from ai_edge_quantizer.algorithm_manager import AlgorithmName
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise QuantizeError(f"quantization needs the AI Edge Quantizer: pip install {AEQ_PIN}") \
            from e

    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise QuantizeError(f"{src}: model file not found")
    ops = qtyping.TFLOperationName
    rx = _scope_regex(keep_float)
    no_quant = dict(algorithm_key=AlgorithmName.NO_QUANTIZE,
                    op_config=qtyping.OpQuantizationConfig())
    qt = quantizer.Quantizer(str(src))
    if mode == "float16":
        qt.add_weight_only_config(regex=rx, operation_name=ops.ALL_SUPPORTED, num_bits=16,
                                  algorithm_key=AlgorithmName.FLOAT_CASTING)
    elif mode == "weight_int8":
        qt.add_weight_only_config(regex=rx, operation_name=ops.ALL_SUPPORTED, num_bits=8)
    elif mode == "dynamic_int8":
        for op in (ops.CONV_2D, ops.FULLY_CONNECTED):
            qt.add_dynamic_config(regex=rx, operation_name=op, num_bits=8)
    else:  # full_int8
        qt.add_static_config(regex=rx, operation_name=ops.ALL_SUPPORTED, activation_num_bits=8,
                             weight_num_bits=8)
        # Keep the audio input float32: int8 raw audio would be useless.
        qt.update_quantization_recipe(regex=".*", operation_name=ops.INPUT, **no_quant)

    calib_result = None
    if qt.need_calibration:
        if calibration is None:
            raise QuantizeError(f"mode {mode!r} needs calibration data")
        calib_result = qt.calibrate({signature: _calibration_samples(src, calibration,
                                                                     signature)},
                                    num_threads=os.cpu_count() or 1)
    result = qt.quantize(calib_result, enable_progress_bar=False, enable_progress_report=False)

    from vocalprint.core.artifacts import atomic_path

    with atomic_path(dst, suffix=".tflite") as tmp:
        result.export_model(str(tmp), overwrite=True)
        _smoke_test(tmp)
    log.info("wrote %s (%s, %.1f MB from %.1f MB)", dst, mode, dst.stat().st_size / 1e6,
             src.stat().st_size / 1e6)
    return dst


def _calibration_samples(src: Path, calibration: Iterable[np.ndarray], signature: str
                         ) -> list[dict[str, np.ndarray]]:
    from ai_edge_litert.interpreter import Interpreter

    sigs = Interpreter(model_path=str(src)).get_signature_list()
    if signature not in sigs:
        raise QuantizeError(f"{src}: no signature {signature!r} (has {list(sigs)}); "
                            "calibration runs through a signature")
    inputs = sigs[signature]["inputs"]
    if len(inputs) != 1:
        raise QuantizeError(f"{src}: calibration supports one input, {signature} has {inputs}")
    name = inputs[0]
    samples = []
    for batch in calibration:
        b = np.asarray(batch, dtype=np.float32)
        if b.ndim == 1:
            b = b[None]
        samples.extend({name: row[None]} for row in b)
    if not samples:
        raise QuantizeError("calibration data is empty")
    log.info("calibrating on %d samples", len(samples))
    return samples


def _smoke_test(path: Path) -> None:
    from vocalprint.teacher.runtime import TFLiteModel

    m = TFLiteModel(path, num_threads=1, batch_size=1)
    x = np.random.default_rng(0).normal(0.0, 0.05, (1, m.n_samples)).astype(np.float32)
    out = m.run(x)
    if not all(np.isfinite(v).all() for v in out.values()):
        raise QuantizeError(f"{path}: quantized model gives non-finite outputs")
