"""Run exported students (:func:`vocalprint.student.export.export_tflite`) on the project's LiteRT
runtime (:mod:`vocalprint.teacher.runtime`): one (:class:`StudentRunner`), or several as one
(:class:`StudentEnsemble`, the mean of their logits).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from vocalprint.student.net import INFER_OUTPUTS
from vocalprint.teacher.runtime import dequantize, interpreter, quantize


class StudentRunner:
    """Run an exported student with the LiteRT interpreter (``ai_edge_litert``, made by
    :func:`vocalprint.teacher.runtime.interpreter`).

    Handles float32 or int8-quantised I/O (scale/zero-point from the tensor details), with
    :func:`~vocalprint.teacher.runtime.quantize` and :func:`~vocalprint.teacher.runtime.dequantize`.
    """

    def __init__(self, path: Path, *, threads: int = 1, outputs: tuple[str, ...] = INFER_OUTPUTS) -> None:
        self.path = Path(path)
        self.outputs = tuple(outputs)
        self._it = interpreter(self.path, threads=threads)
        sigs = self._it.get_signature_list()
        self._runner = None
        if sigs:
            key = next(iter(sigs))
            outs = set(sigs[key]["outputs"])
            if set(self.outputs) <= outs:
                self._runner = self._it.get_signature_runner(key)
                self._in_name = sigs[key]["inputs"][0]
        if self._runner is None:
            raise ValueError(f"{path}: no signature with outputs {self.outputs}")
        ind = self._runner.get_input_details()[self._in_name]
        self.input_shape = tuple(int(v) for v in ind["shape_signature"][1:]) or tuple(
            int(v) for v in ind["shape"][1:])
        self._in_dtype = ind["dtype"]
        self._in_q = ind["quantization"]
        # (scale, zero point) of each integer output; None: a float32 output, taken as it is
        self._out_q = {k: None if d["dtype"] == np.float32 else d["quantization"]
                       for k, d in self._runner.get_output_details().items()}

    @property
    def quantized_io(self) -> bool:
        return self._in_dtype != np.float32

    def predict(self, mels: np.ndarray, *, batch: int = 64) -> dict[str, np.ndarray]:
        """``mels`` ``[n, n_frames, n_mels]`` -> ``{"logits": [n, C], "embedding": [n, E]}`` (the
        runner's ``outputs``; a whole-file graph's ``logits`` are ``[n, positions, C]``).

        Runs in chunks of ``batch`` windows (the last one padded to the same shape).
        """
        mels = np.asarray(mels)
        if mels.ndim != 3 or tuple(mels.shape[1:]) != self.input_shape[-2:]:
            raise ValueError(f"mels shape {mels.shape}, model wants [n, {self.input_shape}]")
        n = len(mels)
        outs: dict[str, list] = {k: [] for k in self.outputs}
        if n == 0:
            raise ValueError("no windows")
        bs = max(1, min(batch, n))
        for s in range(0, n, bs):
            x = np.asarray(mels[s:s + bs], np.float32)
            k = len(x)
            if k < bs:
                x = np.concatenate([x, np.repeat(x[-1:], bs - k, axis=0)])
            res = self._runner(**{self._in_name: quantize(x, self._in_dtype, self._in_q)})
            for key in self.outputs:
                outs[key].append(dequantize(res[key], self._out_q[key])[:k])
        return {k: np.concatenate(v) for k, v in outs.items()}


class StudentEnsemble:
    """Several exported students (``distill.members``) run as one: ``predict`` returns the mean of
    their logits (an ensemble in log-odds); the members' embeddings are not combined."""

    def __init__(self, runners: Sequence[StudentRunner]) -> None:
        if not runners:
            raise ValueError("an ensemble needs at least one student")
        shapes = {r.input_shape[-2:] for r in runners}
        if len(shapes) > 1:
            raise ValueError(f"students take different windows: {sorted(shapes)}")
        self.runners = list(runners)
        self.input_shape = self.runners[0].input_shape

    def predict(self, mels: np.ndarray, *, batch: int = 64) -> dict[str, np.ndarray]:
        """``mels`` ``[n, n_frames, n_mels]`` -> ``{"logits": [n, C]}``, the members' mean."""
        logits = [r.predict(mels, batch=batch)["logits"] for r in self.runners]
        return {"logits": np.mean(logits, axis=0).astype(np.float32)}
