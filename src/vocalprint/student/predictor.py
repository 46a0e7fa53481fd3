"""The distilled student as a model: log-Mel (or token) windows, shifted windows, TFLite members."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from vocalprint.audio.decode import frame_windows
from vocalprint.audio.mel import mel_frames, silence
from vocalprint.config import Config, frames_per_window
from vocalprint.core.numeric import sigmoid
from vocalprint.core.parallel import process_cached
from vocalprint.core.timing import Clock
from vocalprint.student.fcn import FcnLayout, centred_input, fits, row_offsets, window_positions, window_starts

log = logging.getLogger(__name__)
_WARNED: list[bool] = []  # a missing whole-file form is said once per process


class StudentPredictor:
    """The distilled student: log-Mel windows -> TFLite CNN(s) -> sigmoid of the species logits.

    ``model_paths``: one exported student, or several (``distill.members``) whose logits are
    averaged (an ensemble in log-odds). ``fcn_paths``/``fcn_layout``: the same members' whole-file
    form (:mod:`vocalprint.student.fcn`), used with ``submit.student_fcn`` for the files it holds."""

    external = ("model_paths", "fcn_paths")

    def __init__(self, *, name: str, cfg: Config, species: list[str], model_paths: Sequence[Path],
                 fcn_paths: Sequence[Path] = (), fcn_layout: dict | None = None):
        self.name, self.cfg, self.species = name, cfg, list(species)
        self.model_paths = tuple(Path(p) for p in model_paths)
        if not self.model_paths:
            raise ValueError("a student predictor needs at least one model file")
        self.fcn_paths = tuple(Path(p) for p in fcn_paths)
        if self.fcn_paths and len(self.fcn_paths) != len(self.model_paths):
            raise ValueError(f"{len(self.fcn_paths)} whole-file students for {len(self.model_paths)} members")
        self.fcn_layout = FcnLayout.from_dict(fcn_layout) if self.fcn_paths and fcn_layout else None
        self._run = self._fcn = None

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in ("_run", "_fcn")} | {"_run": None, "_fcn": None}

    def __setstate__(self, state: dict) -> None:
        if "model_path" in state:  # a bundle pickled before students could be ensembles
            state["model_paths"] = (state.pop("model_path"),)
        state.setdefault("fcn_paths", ())  # a bundle pickled before the whole-file form
        state.setdefault("fcn_layout", None)
        state.setdefault("_fcn", None)
        self.__dict__.update(state)

    def runner(self):
        """The TFLite interpreter(s) (one set per process, made on first use)."""
        from vocalprint.student.runtime import StudentEnsemble, StudentRunner

        if self._run is None:
            key = ("student", *map(str, self.model_paths))
            self._run = process_cached(key, lambda: StudentEnsemble(
                [StudentRunner(p, threads=1) for p in self.model_paths]))
        return self._run

    def fcn_runner(self):
        """The whole-file interpreters (one set per process, made on first use), or None when the
        students have no whole-file form (built before it existed, a float32 model, or a
        median-centred token student)."""
        from vocalprint.student.runtime import StudentEnsemble, StudentRunner

        if not self.fcn_paths or self.fcn_layout is None:
            if not _WARNED:
                _WARNED.append(True)
                log.info("%s: no whole-file form (float32 or median-centred token students, or int8 ones trained "
                         "before the form existed: retrain them to get it); scoring window by window", self.name)
            return None
        if self._fcn is None:
            key = ("student-fcn", *map(str, self.fcn_paths))
            self._fcn = process_cached(key, lambda: StudentEnsemble(
                [StudentRunner(p, threads=1, outputs=("logits",)) for p in self.fcn_paths]))
        return self._fcn

    def predict(self, x: np.ndarray, n: int, times: dict, shared: dict | None = None) -> np.ndarray:
        c = self.cfg
        clk = Clock(times)
        fcn = self.fcn_runner() if c.submit.student_fcn else None
        if fcn is None:
            self.runner()
        clk.lap("load")  # the interpreters, once per process
        frames = mel_frames(x, c, shared)
        clk.lap("mel")
        offsets = row_offsets(c)  # each row: max over its window and the windows shifted by -/+ the shift
        out = None if fcn is None else self.whole_file_logits(fcn, frames, n, offsets)
        if out is None:
            wins, rows = shifted_windows(frames, n=n, fpw=frames_per_window(c), offsets_s=offsets, cfg=c)
            out = self.runner().predict(wins)["logits"][rows]
        out = out.max(axis=1)
        clk.lap("model")
        return sigmoid(out)

    def whole_file_logits(self, fcn, frames: np.ndarray, n: int, offsets: tuple[float, ...]) -> np.ndarray | None:
        """``[n, len(offsets), C]`` logits from the whole-file graph, or None (logged) for a file
        it does not hold (longer than the graph's minute, or a shift past its edges; for a token
        student, any length but the graph's minute)."""
        lay = self.fcn_layout
        pos = window_positions(window_starts(n, offsets, self.cfg), lay)
        exact = self.cfg.distill.front == "tokens"
        if not fits(len(frames), pos, lay, exact=exact):
            holds = f"exactly {lay.frames}" if exact and lay.frames else f"at most {lay.length - lay.pad}"
            log.info("%s: a file of %d frames does not fit the whole-file graph (%s); scored window by "
                     "window", self.name, len(frames), holds)
            return None
        x = np.full((1, lay.length, frames.shape[1]), silence(self.cfg.mel), np.float32)
        x[0, lay.pad:lay.pad + len(frames)] = frames
        return fcn.predict(centred_input(x, lay, inplace=True))["logits"][0][pos]


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
    starts = window_starts(n, offsets_s, cfg)
    uniq, inv = np.unique(starts, return_inverse=True)
    out = np.full((len(uniq), fpw, frames.shape[1]), silence(cfg.mel), np.float32)
    for j, a in enumerate(uniq):
        lo, hi = max(int(a), 0), min(int(a) + fpw, len(frames))
        if hi > lo:
            out[j, lo - a:hi - a] = frames[lo:hi]
    return out, inv.reshape(n, len(off))
