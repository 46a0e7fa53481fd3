"""The teacher as a model: BirdNET/Perch zero-shot or a probe on its embedding."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from vocalprint.config import Config
from vocalprint.core.numeric import sigmoid
from vocalprint.core.parallel import process_cached
from vocalprint.core.timing import Clock


def open_teacher(model_path: str | Path, labels_path: str | Path, cfg: Config):
    """The teacher runner (BirdNET or Perch, by ``teacher.model``) of one model file, with the
    configured threads and chunks per call; the one place both are read."""
    from vocalprint.teacher.birdnet import BirdNET
    from vocalprint.teacher.perch import Perch

    t = cfg.teacher
    kw = dict(labels_path=labels_path, num_threads=t.threads,
              batch_size=getattr(t, "chunk_batch", 16))  # absent in configs pickled before it existed
    if t.model == "perch":
        return Perch(model_path, **kw)
    return BirdNET(model_path, spectrogram=getattr(t, "spectrogram", "numpy"), **kw)


def infer_stride(cfg) -> float:
    """The chunk hop for test soundscapes: ``teacher.infer_stride_s``, or the cache's ``stride_s``."""
    return getattr(cfg.teacher, "infer_stride_s", 0.0) or cfg.teacher.stride_s


class TeacherPredictor:
    """BirdNET/Perch over 3-s (5-s) chunks pooled into windows.

    ``zeroshot``: sigmoid of the teacher's own logit for species it knows (matched by scientific
    name), the probe head's score for the others. ``probe``: a linear head on the teacher's window
    embedding for every species.
    """

    external = ("model_path", "labels_path")  # files copied into a model bundle

    def __init__(self, *, name: str, cfg: Config, species: list[str], kind: str, model_path: Path,
                 labels_path: Path, columns: np.ndarray, head):
        self.name, self.cfg, self.species, self.kind = name, cfg, list(species), kind
        self.model_path, self.labels_path, self.columns, self.head = Path(model_path), Path(labels_path), columns, head
        self._net = None

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_net"} | {"_net": None}

    def net(self):
        if self._net is None:
            t = self.cfg.teacher
            self._net = process_cached(("teacher", str(self.model_path), t.threads, getattr(t, "chunk_batch", 16),
                                        getattr(t, "spectrogram", "numpy")),
                                       lambda: open_teacher(self.model_path, self.labels_path, self.cfg))
        return self._net

    def predict(self, x: np.ndarray, n: int, times: dict, shared: dict | None = None) -> np.ndarray:
        clk = Clock(times)
        net = self.net()
        clk.lap("load")
        if self.cfg.teacher.model == "perch":
            logits, emb = net.window_scores(x)
        else:
            logits, emb = net.window_scores(x, stride_s=infer_stride(self.cfg), sr=self.cfg.audio.sr)
        clk.lap("model")
        logits, emb = logits[:n], emb[:n]
        if len(logits) < n:  # the header promised more windows than the audio holds
            pad = n - len(logits)
            logits = np.concatenate([logits, np.repeat(logits[-1:], pad, 0)])
            emb = np.concatenate([emb, np.repeat(emb[-1:], pad, 0)])
        p = self.head.predict_proba(emb)
        if self.kind == "zeroshot":
            known = self.columns >= 0
            p[:, known] = sigmoid(logits[:, self.columns[known]])
        clk.lap("head")
        return p
