"""The student over a whole file at once: its convolutions run once over the file's frames, and
every window's logits are read off the shared feature map.

A student is trained on 5-s windows; at inference each row takes the max over its own window and
the windows shifted by ``submit.student_shift_s``, so every frame of a one-minute file passes
through the convolutions about twice (25 windows of 312 frames for 3,751 frames). The same
weights rebuilt for a whole file's length (:func:`fcn_model`) compute the convolutions once; the
time pooling of a window (mean and max over its ``width`` output positions, then the two dense
layers) becomes a pooling of stride 1 over the file's positions, so the graph outputs the logits of
a window starting at every position (``[positions, C]``). A window that starts at frame ``s`` reads
position ``round((s + pad) / step)``: its start moves by at most half a position (``step / 2``
frames, 0.5 s for the default student), and its edges see the neighbouring audio instead of the
zero padding the student saw while training. The dev AUC of both forms is in ``docs/results.md``.
A token student has this form when its token front centres each frame on a mean that is the same
in every window holding the frame: a running mean (``distill.token_center="running"``), its boxes
cut to the file's frames as the training windows' were cut to theirs. A student trained on each
window's own mean (``"mean"``) is read over the file with a running mean over a box of the window's
length centred on each frame: the window's mean for its middle frame, an approximation elsewhere
whose cost in AUC ``docs/results.md`` measures (:func:`has_fcn` says which students the stage
exports the form for). A median-centred student has no such form.

:class:`FcnLayout` is what the predictor needs to place windows on the graph; it is stored in the
student stage's manifest. TensorFlow/Keras are imported inside functions.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from vocalprint.config import Config, frames_per_window
from vocalprint.student.net import FRONT_LAYER
from vocalprint.student.token_front import GIVEN, running_centred

FCN_FILE = "student_fcn_int8.tflite"


@dataclass(frozen=True)
class FcnLayout:
    """The whole-file graph's geometry: ``length`` input frames, of which the first ``pad`` are
    silence before the file; one output position per ``step`` frames; a training window spans
    ``width`` positions. Logit row ``p`` is the window over positions ``p .. p + width - 1``.
    ``frames``: the file's frames after the silence (a token front's running centre is cut to
    them; 0 when not known: all ``length``). ``centre_half``: 0 when the graph centres its input
    itself; otherwise the graph takes :func:`centred_input`, the input minus its running mean over
    ``centre_half`` frames either side (a token front's centre, computed once for all members)."""

    length: int
    pad: int
    step: int
    width: int
    frames: int = 0
    centre_half: int = 0

    @property
    def positions(self) -> int:
        return self.length // self.step - self.width + 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FcnLayout":
        return cls(**{k: int(d[k]) for k in ("length", "pad", "step", "width")}, frames=int(d.get("frames", 0)),
                   centre_half=int(d.get("centre_half", 0)))

    @property
    def span(self) -> tuple[int, int]:
        """The file's frames in the graph's input: ``[pad, pad + frames)``."""
        return self.pad, (self.pad + self.frames if self.frames else self.length)


def centred_input(x: np.ndarray, layout: FcnLayout, *, inplace: bool = False) -> np.ndarray:
    """The whole-file graph's input from frames ``x`` ``[b, length, n_mels]`` laid out as ``layout``
    says: ``x`` itself, or, with ``layout.centre_half``, ``x`` minus each frame's running mean over
    the ``centre_half`` frames either side cut to the file's frames (what the token front would
    subtract in-graph: :func:`~vocalprint.student.token_front.running_centred`, overwriting ``x``
    when ``inplace``)."""
    if not layout.centre_half:
        return x
    return running_centred(x, layout.centre_half, layout.span, inplace=inplace)


def row_offsets(cfg: Config) -> tuple[float, ...]:
    """The shifts (seconds) of the windows a row takes its max over: ``-/+ submit.student_shift_s``
    and the row's own window, or the row's window alone when the shift is 0."""
    shift = cfg.submit.student_shift_s
    return (-shift, 0.0, shift) if shift > 0 else (0.0,)


def window_starts(n: int, offsets_s: tuple[float, ...], cfg: Config) -> np.ndarray:
    """First frame of row i's window shifted by each offset: ``[n, len(offsets_s)]`` (may be
    negative); the frame holding the window's start time, as the windowed student reads it."""
    fps = cfg.audio.sr / cfg.mel.hop
    t = np.arange(n)[:, None] * cfg.audio.window_s + np.asarray(offsets_s, np.float64)[None, :]
    return np.ceil(np.round(t * fps, 6)).astype(np.int64)


def window_positions(starts: np.ndarray, layout: FcnLayout) -> np.ndarray:
    """The logit row of the whole-file graph nearest to each window start (frames)."""
    return np.floor((np.asarray(starts) + layout.pad) / layout.step + 0.5).astype(np.int64)


def fits(n_frames: int, positions: np.ndarray, layout: FcnLayout, *, exact: bool = False) -> bool:
    """Whether a file of ``n_frames`` frames and its windows' ``positions`` fit the graph.
    ``exact``: the graph reads the file's frames as exactly ``layout.frames`` long (a token
    front's running centre is cut to that span; a shorter file's boxes would read silence)."""
    if exact and layout.frames and n_frames != layout.frames:
        return False
    return (layout.pad + n_frames <= layout.length and positions.size > 0
            and int(positions.min()) >= 0 and int(positions.max()) < layout.positions)


def time_step(model: Any) -> int:
    """Frames per output position of a Keras student: the product of the time strides of its
    convolutions and poolings."""
    step = 1
    for layer in model.layers:
        s = getattr(layer, "strides", None)
        if s is not None and type(layer).__name__ in ("Conv2D", "MaxPooling2D", "Conv1D", "MaxPooling1D"):
            step *= int(s[0] if isinstance(s, (tuple, list)) else s)
    return step


def layout_for(model: Any, cfg: Config, file_s: float = 60.0) -> FcnLayout:
    """The geometry that holds a ``file_s``-second file and every window of its rows at the
    offsets ``-/+ submit.student_shift_s`` (the competition's one-minute soundscapes by default)."""
    from vocalprint.audio.clips import n_frames as frames_of
    from vocalprint.audio.decode import n_windows

    step = time_step(model)
    width = int(model.get_layer("freq_squeeze").output.shape[1])
    n_samples = int(round(file_s * cfg.audio.sr))
    n_frames = frames_of(n_samples, cfg)
    starts = window_starts(n_windows(n_samples, sr=cfg.audio.sr, window_s=cfg.audio.window_s), row_offsets(cfg), cfg)
    pad = step * int(np.ceil(max(0, -int(starts.min())) / step))
    last = int(window_positions(starts, FcnLayout(0, pad, step, width)).max())
    length = step * max(last + width, int(np.ceil((pad + n_frames) / step)))
    return FcnLayout(length=length, pad=pad, step=step, width=width, frames=n_frames)


def fcn_model(model: Any, cfg: Any, layout: FcnLayout) -> Any:
    """The Keras student ``model`` (trained on windows; ``cfg`` its ``StudentConfig``) rebuilt for
    ``layout.length`` frames with the same weights: input ``mels`` ``[b, length, n_mels]`` (a token
    student's :func:`centred_input` when ``layout.centre_half``), output ``logits``
    ``[b, positions, C]``."""
    import keras
    from keras import layers

    from vocalprint.student.net import build_student

    names = {lay.name for lay in model.layers}
    tokens = {}
    if FRONT_LAYER in names:  # a token student: the same codebooks, centred on a running mean over the file
        front = model.get_layer(FRONT_LAYER)
        if front.center == "median":
            raise ValueError("a token student centred on the window's median has no whole-file form: a "
                             "frame's tokens would differ between the windows that hold it")
        # the box it was trained with; for a window-mean student, the window's length about each frame
        half = token_half(model)
        if layout.centre_half not in (0, half):
            raise ValueError(f"layout centres over {layout.centre_half} frames either side, the student over {half}")
        tokens = {"codebooks": front.books, "token_half": half, "token_span": layout.span,
                  "token_center": GIVEN if layout.centre_half else "running"}
    full = build_student(
        n_frames=layout.length, n_mels=int(model.inputs[0].shape[2]),
        n_classes=int(model.get_layer("logits").units),
        teacher_emb_dim=int(model.get_layer("emb_proj").units),
        n_meta=int(model.get_layer("meta").units) if "meta" in names else 0, cfg=cfg, **tokens)
    for lay in model.layers:
        if lay.weights:
            full.get_layer(lay.name).set_weights(lay.get_weights())
    x = full.get_layer("freq_squeeze").output  # [b, t, ch]
    h = layers.Concatenate(name="fcn_pool")([  # the order of the window student's time_pool
        layers.AveragePooling1D(layout.width, strides=1, name="fcn_mean")(x),
        layers.MaxPooling1D(layout.width, strides=1, name="fcn_max")(x)])
    e = layers.ReLU(name="fcn_embedding")(full.get_layer("emb_dense")(h))
    return keras.Model(full.inputs[0], {"logits": full.get_layer("logits")(e)}, name="vocalprint_student_fcn")


def token_half(model: Any) -> int:
    """The frames either side of a token student's running centre over a whole file: the box it
    was trained with, or for a window-mean student the window's length about each frame."""
    front = model.get_layer(FRONT_LAYER)
    return front.half if front.center == "running" else int(model.inputs[0].shape[1]) // 2


def calibration_files(windows: np.ndarray, layout: FcnLayout, *, n: int, silence: float,
                      rng: np.random.Generator) -> np.ndarray:
    """``n`` whole-file inputs ``[n, length, n_mels]`` for int8 calibration: random training
    windows end to end, with the graph's leading silence."""
    fpw = windows.shape[1]
    k = int(np.ceil(layout.length / fpw))
    out = np.empty((n, layout.length, windows.shape[2]), np.float32)
    for i in range(n):
        idx = np.sort(rng.choice(len(windows), k, replace=len(windows) < k))
        out[i] = np.concatenate([np.asarray(windows[j], np.float32) for j in idx])[:layout.length]
        out[i, :layout.pad] = silence
    return out


def has_fcn(student_cfg: Any) -> bool:
    """Whether the stage exports a whole-file form for a student of this ``StudentConfig``: the Mel
    student, and a token student whose frames are centred on a running mean or on the window's
    mean (read over the file as a running mean: :func:`fcn_model`)."""
    return student_cfg.front == "mel" or student_cfg.token_center in ("running", "mean")


def export_fcn(model: Any, path: Any, cfg: Config, student_cfg: Any, windows: np.ndarray, *,
               silence: float, rng: np.random.Generator, n_calib: int = 16) -> FcnLayout:
    """Write the whole-file form of ``model`` as TFLite (float I/O) in its int8 file's
    quantisation (:func:`~vocalprint.student.export.int8_quant`, calibrated where it needs it on
    :func:`calibration_files` of its training ``windows``); returns its layout. A token student's
    graph takes its input centred (:func:`centred_input`): the running centre is computed once per
    file for every member instead of in each member's graph."""
    from vocalprint.student.export import int8_quant, write_tflite

    if windows.shape[1] != frames_per_window(cfg):
        raise ValueError(f"windows of {windows.shape[1]} frames, the student's are {frames_per_window(cfg)}")
    layout = layout_for(model, cfg)
    if FRONT_LAYER in {lay.name for lay in model.layers}:
        layout = replace(layout, centre_half=token_half(model))
    quant = int8_quant(student_cfg)
    rep = None
    if quant in ("int8", "body"):
        rep = centred_input(calibration_files(windows, layout, n=n_calib, silence=silence, rng=rng), layout)
    write_tflite(fcn_model(model, student_cfg, layout), path, outputs=("logits",), quant=quant,
                 representative=rep)
    return layout
