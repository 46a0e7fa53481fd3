"""Perch v2 (SavedModel -> TFLite) as a pure model runner: it takes 32 kHz mono float32 audio and
returns logits and embeddings; it writes nothing but the model files it is asked to prepare.
Heavy imports (the TFLite runtime, TensorFlow for the conversion and the SavedModel runner)
happen inside the functions, so importing this module is instant.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from vocalprint.teacher.labels import read_perch_labels
from vocalprint.teacher.runtime import LOGIT_NAMES, TeacherError, TFLiteModel

log = logging.getLogger(__name__)



_QUANT_MODES = ("none", "float16", "dynamic")


def convert_savedmodel(saved_model_dir: str | Path, out: str | Path, *, quant: str = "float16",
                       signature: str = "serving_default") -> bool:
    """Convert a TF SavedModel (Perch v2: ``serving_default`` taking ``inputs`` ``[batch, 160000]``
    float32, 5 s at 32 kHz; outputs ``embedding`` ``[b, 1536]``, ``label`` logits, ...) to TFLite.

    ``quant``: ``"none"`` (float32), ``"float16"`` (float16 weights, float32 compute) or
    ``"dynamic"`` (dynamic-range int8 weights). Builtin ops only are tried first; if the converter
    refuses, it is retried allowing ``SELECT_TF_OPS`` (logged: such a model needs a TensorFlow
    runtime, ``tf.lite.Interpreter``, at inference). Written to a temporary name, then
    ``os.replace``. Returns ``True`` if the result uses builtin ops only. Note: a model with Flex
    ops cannot be run by ai-edge-litert 2.3.0 nor by TF 2.21's ``tf.lite.Interpreter`` (neither
    links the Flex delegate; measured); run the SavedModel with :class:`Perch` then.

    The Kaggle copy of Perch v2 for CPUs is the folder
    ``/kaggle/input/bird-vocalization-classifier/tensorflow2/perch_v2_cpu/1`` (newer Kaggle
    layouts: ``/kaggle/input/models/google/bird-vocalization-classifier/tensorflow2/perch_v2_cpu/1``)
    holding ``saved_model.pb``, ``variables/`` and ``assets/labels.csv``.
    """
    if quant not in _QUANT_MODES:
        raise ValueError(f"quant must be one of {_QUANT_MODES}, got {quant!r}")
    import tensorflow as tf

    src, out = Path(saved_model_dir), Path(out)
    if not (src / "saved_model.pb").is_file():
        raise TeacherError(f"{src}: no saved_model.pb")

    def convert(ops) -> bytes:
        conv = tf.lite.TFLiteConverter.from_saved_model(str(src), signature_keys=[signature])
        conv.target_spec.supported_ops = ops
        if quant != "none":
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
        if quant == "float16":
            conv.target_spec.supported_types = [tf.float16]
        return conv.convert()

    builtin = True
    try:
        data = convert([tf.lite.OpsSet.TFLITE_BUILTINS])
    except Exception as e:  # tf's ConverterError and friends
        log.warning("builtin-only TFLite conversion of %s failed (%s); retrying with "
                    "SELECT_TF_OPS: the result then needs a TensorFlow runtime with the Flex "
                    "delegate at inference (not ai-edge-litert, not TF 2.21's tf.lite.Interpreter;"
                    " run the SavedModel with TensorFlow instead)",
                    src, str(e).splitlines()[0] if str(e) else type(e).__name__)
        data = convert([tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS])
        builtin = False
    from vocalprint.core.artifacts import atomic_path

    with atomic_path(out) as tmp:
        tmp.write_bytes(data)
    log.info("wrote %s (%.1f MB, quant=%s, %s)", out, len(data) / 1e6, quant,
             "builtin ops only" if builtin else "NEEDS TensorFlow (Flex ops)")
    return builtin


class SavedModelRunner:
    """Runs a TF SavedModel signature (Perch's ``serving_default``) like :class:`TFLiteModel`:
    ``run(batch [n, n_samples]) -> {"logits", "embedding"}``. Needs TensorFlow; for when the
    TFLite conversion is impossible or needs Flex ops (which the Python TFLite runtimes here
    cannot run)."""

    def __init__(self, saved_model_dir: str | Path, *, batch_size: int = 12,
                 signature: str = "serving_default", num_threads: int | None = None) -> None:
        import tensorflow as tf

        if num_threads:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(int(num_threads))
            except RuntimeError:  # already initialised in this process
                pass
        self.model_path = Path(saved_model_dir)
        self._model = tf.saved_model.load(str(self.model_path))  # keeps the signature alive
        self._fn = self._model.signatures[signature]
        _, kwargs = self._fn.structured_input_signature
        if len(kwargs) != 1:
            raise TeacherError(f"{saved_model_dir}: {signature} must take one input, "
                               f"takes {list(kwargs)}")
        (self._in_name, spec), = kwargs.items()
        if spec.shape.rank != 2 or spec.shape[1] is None:
            raise TeacherError(f"{saved_model_dir}: input shape {spec.shape}, expected [b, T]")
        self.n_samples = int(spec.shape[1])
        outs = self._fn.structured_outputs
        self._names = {"embedding": "embedding" if "embedding" in outs else None,
                       "logits": next((k for k in LOGIT_NAMES if k in outs), None)}
        if self._names["logits"] is None:
            raise TeacherError(f"{saved_model_dir}: no label/logits output in {list(outs)}")
        self.roles = {r: n for r, n in self._names.items() if n is not None}
        self.batch_size = int(batch_size)

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Outputs by role, like :meth:`TFLiteModel.run`."""
        import tensorflow as tf

        batch = np.asarray(batch, dtype=np.float32)
        if batch.ndim != 2 or batch.shape[1] != self.n_samples:
            raise ValueError(f"batch must be [n, {self.n_samples}], got {batch.shape}")
        res: dict[str, list[np.ndarray]] = {r: [] for r in self.roles}
        for a in range(0, batch.shape[0], self.batch_size):
            out = self._fn(**{self._in_name: tf.constant(batch[a:a + self.batch_size])})
            for role, name in self.roles.items():
                res[role].append(out[name].numpy().astype(np.float32, copy=False))
        return {r: np.concatenate(v, axis=0) for r, v in res.items()}


def peak_normalize(frames: np.ndarray, target_peak: float = 0.25) -> np.ndarray:
    """Per row of ``frames`` ``[n, T]``: remove the mean, scale the peak to ``target_peak``
    (rows that are all zero stay zero), as Perch's authors' pipeline does."""
    x = frames.astype(np.float32, copy=True)
    x -= x.mean(axis=-1, keepdims=True)
    peak = np.abs(x).max(axis=-1, keepdims=True)
    scale = np.where(peak > 0, target_peak / np.where(peak > 0, peak, 1.0), 0.0)
    return (x * scale).astype(np.float32, copy=False)


class Perch:
    """Perch v2 on 5-s windows of 32 kHz audio.

    ``model_path``: the TFLite file from :func:`convert_savedmodel` (run by ai-edge-litert), or
    the SavedModel folder itself (run by TensorFlow through :class:`SavedModelRunner`; needed if
    the conversion fails or needs Flex ops). ``labels_path``: Perch's class list, in the Kaggle
    model folder (see :func:`convert_savedmodel`) ``assets/labels.csv``; read by
    :func:`read_perch_labels`. ``target_peak``: each window has its mean removed and its peak
    scaled to this, as in the authors' pipeline (``None``: left as is).
    """

    SR = 32000
    WINDOW_S = 5.0

    def __init__(self, model_path: str | Path, *, labels_path: str | Path | None = None,
                 num_threads: int = 1, batch_size: int = 12,
                 target_peak: float | None = 0.25) -> None:
        if Path(model_path).is_dir():
            self.model: TFLiteModel | SavedModelRunner = SavedModelRunner(
                model_path, batch_size=batch_size, num_threads=num_threads)
        else:
            self.model = TFLiteModel(model_path, num_threads=num_threads, batch_size=batch_size)
        self.window = int(round(self.WINDOW_S * self.SR))
        if self.model.n_samples != self.window:
            raise TeacherError(f"{model_path}: input has {self.model.n_samples} samples, "
                               f"Perch expects {self.window}")
        self.target_peak = target_peak
        self.labels = read_perch_labels(labels_path) if labels_path is not None else None

    def window_scores(self, x32k: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``(logits [n_windows, C], emb [n_windows, 1536])`` for consecutive 5-s windows
        (``n_windows = vocalprint.audio.decode.n_windows(len(x32k))``; the last window zero-padded, then
        each window peak-normalised)."""
        from vocalprint.audio.decode import n_windows as count_windows

        x = np.asarray(x32k, dtype=np.float32)
        if x.ndim != 1:
            raise ValueError(f"expected mono audio [n_samples], got {x.shape}")
        n = count_windows(x.size, sr=self.SR, window_s=self.WINDOW_S)
        frames = np.zeros((n, self.window), dtype=np.float32)
        flat = frames.reshape(-1)
        flat[:min(x.size, flat.size)] = x[:flat.size]
        if self.target_peak is not None:
            frames = peak_normalize(frames, self.target_peak)
        out = self.model.run(frames)
        return out["logits"], out.get("embedding")
