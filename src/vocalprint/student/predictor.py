"""The distilled student as a model: log-Mel (or token) windows, shifted windows, TFLite members."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from vocalprint.audio.decode import frame_windows
from vocalprint.audio.mel import mel_frames, silence
from vocalprint.config import Config, frames_per_window
from vocalprint.core.numeric import sigmoid
from vocalprint.core.parallel import process_cached
from vocalprint.core.timing import Clock


class StudentPredictor:
    """The distilled student: log-Mel windows -> TFLite CNN(s) -> sigmoid of the species logits.

    ``model_paths``: one exported student, or several (``distill.members``) whose logits are
    averaged (an ensemble in log-odds)."""

    external = ("model_paths",)

    def __init__(self, *, name: str, cfg: Config, species: list[str], model_paths: Sequence[Path]):
        self.name, self.cfg, self.species = name, cfg, list(species)
        self.model_paths = tuple(Path(p) for p in model_paths)
        if not self.model_paths:
            raise ValueError("a student predictor needs at least one model file")
        self._run = None

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_run"} | {"_run": None}

    def __setstate__(self, state: dict) -> None:
        if "model_path" in state:  # a bundle pickled before students could be ensembles
            state["model_paths"] = (state.pop("model_path"),)
        self.__dict__.update(state)

    def runner(self):
        """The TFLite interpreter(s) (one set per process, made on first use)."""
        from vocalprint.student.runtime import StudentEnsemble, StudentRunner

        if self._run is None:
            key = ("student", *map(str, self.model_paths))
            self._run = process_cached(key, lambda: StudentEnsemble(
                [StudentRunner(p, threads=1) for p in self.model_paths]))
        return self._run

    def predict(self, x: np.ndarray, n: int, times: dict, shared: dict | None = None) -> np.ndarray:
        c = self.cfg
        clk = Clock(times)
        run = self.runner()
        clk.lap("load")  # the interpreters, once per process
        frames = mel_frames(x, c, shared)
        clk.lap("mel")
        shift = c.submit.student_shift_s  # each row: max over its window and the windows shifted by -/+ shift
        offsets = (-shift, 0.0, shift) if shift > 0 else (0.0,)
        wins, rows = shifted_windows(frames, n=n, fpw=frames_per_window(c), offsets_s=offsets, cfg=c)
        out = run.predict(wins)["logits"][rows].max(axis=1)
        clk.lap("model")
        return sigmoid(out)


def student_windows(frames: np.ndarray, *, n: int, fpw: int, cfg: Config) -> np.ndarray:
    """[t, n_mels] frames -> [n, fpw, n_mels] scoring windows (padded past the end with silence:
    -100 dB for log-Mel, 0 for PCEN)."""
    bounds = frame_windows(len(frames), n=n, sr=cfg.audio.sr, hop=cfg.mel.hop, window_s=cfg.audio.window_s)
    out = np.full((n, fpw, frames.shape[1]), silence(cfg.mel), np.float32)
    for i, (a, b) in enumerate(bounds):
        m = min(b - a, fpw)
        out[i, :m] = frames[a:a + m]
    return out


def shifted_windows(frames: np.ndarray, *, n: int, fpw: int, offsets_s: tuple[float, ...], cfg: Config
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Windows of ``fpw`` frames starting at ``i * window_s + d`` for each row i and offset d of
    ``offsets_s``, each distinct start once (padded with silence outside the audio, as
    :func:`student_windows`): ``([m, fpw, n_mels], rows [n, len(offsets_s)])`` where ``rows[i]``
    indexes row i's windows. A window starts at the frame holding its start time, so offset 0 gives
    the :func:`student_windows` window, and with offsets (-2.5, 0, 2.5) row i's +2.5 s window is
    row i+1's -2.5 s one (2n + 1 windows in all)."""
    off = np.asarray(offsets_s, np.float64)
    if off.size == 0 or (np.abs(off) >= 2 * cfg.audio.window_s).any():
        raise ValueError(f"window offsets must lie within ±{2 * cfg.audio.window_s} s, got {tuple(offsets_s)}")
    fps = cfg.audio.sr / cfg.mel.hop
    t = np.arange(n)[:, None] * cfg.audio.window_s + off[None, :]
    starts = np.ceil(np.round(t * fps, 6)).astype(np.int64)
    uniq, inv = np.unique(starts, return_inverse=True)
    out = np.full((len(uniq), fpw, frames.shape[1]), silence(cfg.mel), np.float32)
    for j, a in enumerate(uniq):
        lo, hi = max(int(a), 0), min(int(a) + fpw, len(frames))
        if hi > lo:
            out[j, lo - a:hi - a] = frames[lo:hi]
    return out, inv.reshape(n, len(off))
