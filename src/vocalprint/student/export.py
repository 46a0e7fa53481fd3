"""Export a trained student's inference graph (``logits``, ``embedding``) to a TFLite flatbuffer:
float32, full int8, or int8 weights. TensorFlow/Keras are imported inside functions so
``import vocalprint.student.export`` stays instant.
"""
from __future__ import annotations

import logging
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from vocalprint.config.student import StudentConfig
from vocalprint.student.net import FRONT_LAYER, INFER_OUTPUTS, INPUT_NAME

log = logging.getLogger(__name__)

QUANTS = ("none", "int8", "weights", "body")


def export_tflite(
    model: Any,
    path: Path,
    *,
    quant: str = "none",
    representative: np.ndarray | None = None,
    int8_io: bool = False,
) -> Path:
    """Write the student's inference graph (``logits``, ``embedding``) as a TFLite flatbuffer.

    Input ``mels`` ``[batch, n_frames, n_mels]`` (batch resizable). ``quant``:
      ``"none"``  float32 weights and activations;
      ``"int8"``  full-integer: int8 weights and activations (builtin int8 ops only), calibrated on
                  ``representative`` ``[m, n_frames, n_mels]`` windows from training audio
                  (a few hundred is plenty). I/O stays float32 (quantise/dequantise ops inside the
                  model) unless ``int8_io``; :class:`~vocalprint.student.runtime.StudentRunner`
                  handles both.
      ``"weights"`` int8 weights, float32 activations (dynamic range). In full int8 a
                  whole-frame shape codebook's per-frame standardisation divides by a quantised
                  zero on flat (padded) frames (LiteRT's DIV raised), and int8 distances round the
                  nearest-centroid search.
      ``"body"``  a token student's front (the layer named :data:`FRONT_LAYER`) in float32,
                  every layer after it full int8 (calibrated on ``representative`` as ``"int8"``):
                  the nearest-centroid search stays exact and the CNN body runs in integers.
    The file is written to a temporary name and moved into place. Returns ``path``.
    """
    import keras

    infer = keras.Model(model.inputs[0],
                        {k: model.get_layer(k).output for k in INFER_OUTPUTS},
                        name="vocalprint_student_infer")
    return write_tflite(infer, path, outputs=INFER_OUTPUTS, quant=quant, representative=representative,
                        int8_io=int8_io)


def write_tflite(infer: Any, path: Path, *, outputs: tuple[str, ...], quant: str = "none",
                 representative: np.ndarray | None = None, int8_io: bool = False) -> Path:
    """Write the Keras model ``infer`` (one input ``[batch, n_frames, n_mels]``, a dict of
    ``outputs``) as a TFLite flatbuffer with the signature input :data:`INPUT_NAME`; ``quant``,
    ``representative`` and ``int8_io`` as in :func:`export_tflite`. Returns ``path``."""
    import keras
    import tensorflow as tf

    if quant not in QUANTS:
        raise ValueError(f"quant {quant!r}: use one of {', '.join(map(repr, QUANTS))}")
    if quant in ("int8", "body") and (representative is None or len(representative) == 0):
        raise ValueError(f"{quant} export needs representative windows")
    path = Path(path)
    _, n_frames, n_mels = infer.inputs[0].shape

    # Keras 3 variables are not tracked by a bare tf.function / concrete function (the converter
    # then silently drops them: a 24 kB model that outputs NaN). Go through a SavedModel written
    # by keras.export.ExportArchive, which tracks them, as keras' own "litert" export does (but
    # without its SELECT_TF_OPS fallback: builtin ops only, no TF runtime needed at inference).
    def serve(mels):  # type: ignore[no-untyped-def]
        out = infer(mels, training=False)
        return {k: out[k] for k in outputs}

    sm_dir = tempfile.mkdtemp(prefix="student_sm_")
    try:
        archive = keras.export.ExportArchive()
        archive.track(infer)
        archive.add_endpoint("serve", serve, input_signature=[
            tf.TensorSpec([None, n_frames, n_mels], tf.float32, name=INPUT_NAME)])
        archive.write_out(sm_dir, verbose=False)
        def converter():  # type: ignore[no-untyped-def]
            return tf.lite.TFLiteConverter.from_saved_model(sm_dir, signature_keys=["serve"])

        if quant == "body":
            blob = _convert_body(converter, representative)
        else:
            blob = _convert(converter(), quant, representative, int8_io)
    finally:
        shutil.rmtree(sm_dir, ignore_errors=True)
    from vocalprint.core.artifacts import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_bytes(blob)
    log.info("exported %s (%s, %.1f kB)", path, quant, len(blob) / 1024)
    return path


def int8_quant(cfg: StudentConfig) -> str:
    """The ``quant`` of a student's int8 file: full int8 for the Mel student, for the token front
    ``distill.token_quant`` (see :func:`export_tflite`)."""
    return "int8" if cfg.front == "mel" else cfg.token_quant


def _rep_data(representative: np.ndarray) -> Any:
    rep = np.asarray(representative, np.float32)

    def rep_data():  # type: ignore[no-untyped-def]
        for i in range(len(rep)):
            yield [rep[i:i + 1]]

    return rep_data


def _convert_body(converter: Any, representative: np.ndarray) -> bytes:
    """Full int8 but for the token front: the converter's selective quantisation (TensorFlow's
    ``QuantizationDebugger``) with every tensor the front layer computes left in float32. The
    front's tensor names are read off a float conversion of the same graph."""
    import tensorflow as tf

    from vocalprint.teacher.runtime import interpreter

    names = [d["name"] for d in interpreter("float graph", content=_convert(converter(), "none", None, False)
                                            ).get_tensor_details()]
    front = re.compile(rf"(^|/){FRONT_LAYER}(_\d+)?/")
    nodes = [n for n in names if any(front.search(part) for part in n.split(";"))]
    if not nodes:
        raise ValueError(f"quant 'body' needs a token front (a layer named {FRONT_LAYER!r})")
    conv = converter()
    rep_data = _rep_data(representative)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep_data
    with warnings.catch_warnings():  # the debugger calibrates with tf.lite.Interpreter (deprecated)
        warnings.simplefilter("ignore", UserWarning)
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=conv, debug_dataset=rep_data,
            debug_options=tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=nodes))
        return bytes(debugger.get_nondebug_quantized_model())


def _convert(conv: Any, quant: str, representative: np.ndarray | None, int8_io: bool) -> bytes:
    import tensorflow as tf

    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quant == "weights":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if quant == "int8":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = _rep_data(representative)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
    return conv.convert()
