"""The one LiteRT (TFLite) runtime of the project: interpreters, integer I/O (de)quantisation, and
:class:`TFLiteModel`, the teacher's runner (the student's runner uses the same helpers).

Runs on ``ai_edge_litert``'s interpreter with its default XNNPACK delegate; the import happens in
the functions, so importing this module is instant.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping

import numpy as np

log = logging.getLogger(__name__)


class TeacherError(RuntimeError):
    """A teacher model that is missing, malformed or cannot be prepared; the message says why."""


def interpreter(path: str | Path, *, threads: int = 1, content: bytes | None = None):
    """A LiteRT interpreter of the model file at ``path`` (or of the model bytes ``content``) with
    ``threads`` threads."""
    from ai_edge_litert.interpreter import Interpreter

    if content is not None:
        return Interpreter(model_content=content, num_threads=int(threads))
    return Interpreter(model_path=str(path), num_threads=int(threads))


def quantize(x: np.ndarray, dtype, quant: tuple[float, int]) -> np.ndarray:
    """Float input -> the integer ``dtype`` of a quantised input tensor (``quant`` = (scale, zero
    point)); float32 tensors take ``x`` unchanged."""
    if dtype == np.float32:
        return x
    scale, zp = quant
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zp), info.min, info.max).astype(dtype)


def dequantize(y: np.ndarray, quant: tuple[float, int] | None) -> np.ndarray:
    """An output tensor's values as float32: ``(y - zero_point) * scale`` for integer tensors
    (``quant`` = (scale, zero point)), float tensors unchanged (``quant`` None)."""
    if quant is None or not np.issubdtype(np.asarray(y).dtype, np.integer):
        return np.asarray(y, np.float32)
    scale, zp = quant
    return ((y.astype(np.float32) - zp) * scale).astype(np.float32)


EMB_NAMES = ("embedding",)
LOGIT_NAMES = ("label", "logits", "logit")


class TFLiteModel:
    """A TFLite model with one float32 input ``[batch, n_samples]`` and outputs found by role.

    Roles: ``"logits"`` ``[n, C]`` and ``"embedding"`` ``[n, D]``. An output is assigned by its
    signature-def name (``embedding``; ``label``/``logits``) or tensor name (contains
    ``GLOBAL_AVG_POOL`` or ``embedding`` -> embedding; ``label``/``logits`` -> logits); failing
    that, the widest remaining rank-2 output is the logits and a single other rank-2 output the
    embedding. ``roles`` (role -> signature or tensor name) overrides this. Other outputs (e.g.
    Perch's ``spatial_embedding``, its spectrogram) are not returned. Integer (quantized) outputs
    are dequantized to float32 with their scale and zero point.

    ``front`` (with ``content``, the model's bytes): a callable that turns ``[n, n_samples]`` audio
    into the model's input (:func:`vocalprint.teacher.front.split_front`: BirdNET's spectrograms in
    NumPy, ``content`` the network without them); ``front.n_samples`` is then the audio length.

    Runs on ``ai_edge_litert``'s interpreter with its default (XNNPACK) delegate. For a model that
    needs TensorFlow (Flex) ops ``tf.lite.Interpreter`` is tried; TF 2.21's has no Flex delegate,
    so this raises :class:`TeacherError` unless another TensorFlow build provides one.
    """

    def __init__(self, model_path: str | Path, *, num_threads: int = 1, batch_size: int = 16,
                 roles: Mapping[str, str] | None = None, content: bytes | None = None, front=None) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise TeacherError(f"{self.model_path}: model file not found")
        self.num_threads = int(num_threads)
        self.batch_size = int(batch_size)
        self.content, self.front = content, front
        self.interpreter = self._make_interpreter()
        ip = self.interpreter
        inputs = ip.get_input_details()
        if len(inputs) != 1:
            raise TeacherError(f"{self.model_path}: expected one input, found {len(inputs)}")
        self._in = inputs[0]
        want = 2 if front is None else 4
        if self._in["dtype"] != np.float32 or len(self._in["shape"]) != want:
            raise TeacherError(f"{self.model_path}: input must be float32 "
                               f"{'[batch, samples]' if front is None else '[batch, bands, frames, channels]'}, "
                               f"is {self._in['dtype']} {list(self._in['shape'])}")
        self._in_rest = [int(s) for s in self._in["shape"][1:]]
        self.n_samples = int(self._in["shape"][1]) if front is None else int(front.n_samples)
        self._cur_n = int(self._in["shape"][0])
        self.roles = self._resolve_roles(roles)
        # Integer outputs (full-integer quantized models) are dequantized in run().
        self._deq: dict[int, tuple[float, int]] = {}
        for d in ip.get_output_details():
            if int(d["index"]) in self.roles.values() and np.issubdtype(d["dtype"], np.integer):
                scale, zp = d["quantization"]
                if not scale:
                    raise TeacherError(f"{self.model_path}: integer output {d['name']} "
                                       "has no quantization scale")
                self._deq[int(d["index"])] = (float(scale), int(zp))
        log.debug("%s: input %d samples, outputs %s", self.model_path.name, self.n_samples,
                  self.roles)

    # -- construction helpers --
    def _make_interpreter(self):
        try:
            ip = interpreter(self.model_path, threads=self.num_threads, content=self.content)
            ip.allocate_tensors()
            return ip
        except (RuntimeError, ValueError) as e:
            msg = str(e)
            if "Flex" not in msg and "Select TensorFlow" not in msg:
                raise TeacherError(f"{self.model_path}: cannot load TFLite model ({msg})") from e
        log.warning("%s uses TensorFlow (Flex) ops: trying tf.lite.Interpreter, which needs "
                    "TensorFlow with the Flex delegate linked", self.model_path)
        try:
            import tensorflow as tf

            ip = tf.lite.Interpreter(model_path=str(self.model_path),
                                     num_threads=self.num_threads)
            ip.allocate_tensors()
            return ip
        except (ImportError, RuntimeError, ValueError) as e:
            raise TeacherError(
                f"{self.model_path} needs TensorFlow (Flex) ops, which no available interpreter "
                "runs (ai-edge-litert 2.3.0 and TF 2.21's tf.lite.Interpreter have no Flex "
                "delegate); run the SavedModel itself instead (Perch(saved_model_dir))"
            ) from e

    def _signature_names(self) -> dict[int, str]:
        try:
            sigs = self.interpreter._get_full_signature_list()  # noqa: SLF001 (tensor indices)
        except Exception:  # pragma: no cover - older/newer runtimes
            return {}
        names: dict[int, str] = {}
        for sig in (sigs or {}).values():
            for name, idx in (sig.get("outputs") or {}).items():
                names.setdefault(int(idx), name)
        return names

    def _resolve_roles(self, roles: Mapping[str, str] | None) -> dict[str, int]:
        outs = self.interpreter.get_output_details()
        sig = self._signature_names()
        info = [(int(d["index"]), sig.get(int(d["index"]), ""), str(d["name"]),
                 [int(s) for s in d["shape"]]) for d in outs]
        found: dict[str, int] = {}
        if roles:
            for role, want in roles.items():
                hit = [i for i, s, n, _ in info if want in (s, n)]
                if not hit:
                    raise TeacherError(f"{self.model_path}: no output named {want!r} for {role}; "
                                       f"outputs: {[(s or n) for _, s, n, _ in info]}")
                found[role] = hit[0]
        for i, s, n, shape in info:
            s_l, n_l = s.lower(), n.lower()
            if "embedding" not in found and (s_l in EMB_NAMES or "global_avg_pool" in n_l
                                             or n_l == "embedding") and len(shape) == 2:
                found["embedding"] = i
            elif "logits" not in found and (s_l in LOGIT_NAMES or n_l in LOGIT_NAMES) \
                    and len(shape) == 2:
                found["logits"] = i
        rest = [(i, shape) for i, _, _, shape in info
                if len(shape) == 2 and i not in found.values()]
        if "logits" not in found and rest:
            i, _ = max(rest, key=lambda t: t[1][1])
            found["logits"] = i
            rest = [r for r in rest if r[0] != i]
        if "embedding" not in found and len(rest) == 1:
            found["embedding"] = rest[0][0]
        if "logits" not in found:
            raise TeacherError(f"{self.model_path}: no logits output among "
                               f"{[(s or n, shape) for _, s, n, shape in info]}")
        return found

    # -- running --
    def _resize(self, n: int) -> None:
        if n != self._cur_n:
            self.interpreter.resize_tensor_input(self._in["index"], [n, *self._in_rest])
            self.interpreter.allocate_tensors()
            self._cur_n = n

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Outputs by role for ``batch`` ``[n, n_samples]`` float32, in batches of
        ``batch_size``: ``{"logits": [n, C], "embedding": [n, D]}`` (embedding only if the model
        has one). ``batch`` may be a strided view; each batch is copied contiguous."""
        batch = np.asarray(batch)
        if batch.ndim != 2 or batch.shape[1] != self.n_samples:
            raise ValueError(f"batch must be [n, {self.n_samples}], got {batch.shape}")
        n = batch.shape[0]
        res = {role: [] for role in self.roles}
        ip = self.interpreter
        for a in range(0, n, self.batch_size):
            xb = np.ascontiguousarray(batch[a:a + self.batch_size], dtype=np.float32)
            if self.front is not None:
                xb = self.front(xb)
            self._resize(xb.shape[0])
            ip.set_tensor(self._in["index"], xb)
            ip.invoke()
            for role, idx in self.roles.items():
                v = ip.get_tensor(idx)
                if idx in self._deq:
                    v = dequantize(v, self._deq[idx])
                res[role].append(v)
        if n == 0:
            return {role: np.zeros((0, int(self._out_dim(idx))), np.float32)
                    for role, idx in self.roles.items()}
        return {role: np.concatenate(v, axis=0) for role, v in res.items()}

    def _out_dim(self, idx: int) -> int:
        for d in self.interpreter.get_output_details():
            if int(d["index"]) == idx:
                return int(d["shape"][-1])
        return 0  # pragma: no cover
