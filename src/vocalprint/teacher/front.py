"""BirdNET's spectrogram front end in NumPy, and BirdNET's network without it.

BirdNET V2.4 computes its input spectrograms inside its graph: each 3-s chunk is scaled to
[-1, 1] by its own minimum and maximum, then two branches frame it (2,048 samples every 278; 1,024
every 280), apply a periodic Hann window, take the real part of the FFT, project it on 96
Mel-like bands, square it and raise it to a learned power (0.23, 0.19), flip and transpose it to
[96, 511] and stack the two as channels. LiteRT runs that part (its RFFT2D) in about 70 % of the
model's time (docs/results.md, "BirdNET's front end"). :func:`split_front` reads the
branches' constants from the model file, :class:`SpectrogramFront` computes the same
spectrograms with SciPy's float32 FFT, and the returned trunk is the graph cut at the stacked
spectrograms, so LiteRT runs only the network.

The window is applied on the spectrum (three taps, exact for the periodic Hann window), so the
FFT reads the frames as strided views; only the bins the bands touch are projected. Logits equal
the whole model's within float32 rounding: at most 9.3e-3 (of about +-20) over the 32 dev
soundscapes; on digital silence BirdNET's power-law compression magnifies the rounding (up to 0.5
in a logit, 0.0015 in a probability). Both bounds are tested.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Branch:
    """One spectrogram branch: ``frame`` samples every ``hop``, bins ``[k0, k1)`` projected by
    ``weights`` [k1 - k0, bands] (the model's filterbank restricted to its nonzero bins), then
    squared and raised to ``exponent``."""

    frame: int
    hop: int
    k0: int
    k1: int
    weights: np.ndarray
    exponent: float


@dataclass(frozen=True)
class SpectrogramFront:
    """``[n, n_samples]`` float32 chunks -> ``[n, bands, n_frames, len(branches)]`` float32, as
    BirdNET's graph computes them before its first convolution."""

    branches: tuple[Branch, ...]
    n_samples: int
    n_frames: int
    bands: int
    eps: float = 1e-6

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import scipy.fft

        x = np.asarray(x, np.float32)
        n = x.shape[0]
        out = np.empty((n, self.bands, self.n_frames, len(self.branches)), np.float32)
        for c in range(n):
            y = x[c] - x[c].min()
            y /= y.max() + np.float32(self.eps)
            y -= np.float32(0.5)
            y *= np.float32(2.0)
            for b, br in enumerate(self.branches):
                frames = np.lib.stride_tricks.as_strided(y, shape=(self.n_frames, br.frame),
                                                         strides=(br.hop * y.itemsize, y.itemsize), writeable=False)
                re = scipy.fft.rfft(frames, axis=-1, workers=1).real  # unwindowed
                lo = br.k0 - 1
                # periodic Hann on the spectrum: Re Xw[k] = Re X[k] / 2 - (Re X[k-1] + Re X[k+1]) / 4,
                # with Re X[-1] = Re X[1]
                a = re[:, lo:br.k1 + 1] if lo >= 0 else np.concatenate([re[:, 1:2], re[:, :br.k1 + 1]], axis=1)
                s = (0.5 * a[:, 1:-1] - 0.25 * (a[:, :-2] + a[:, 2:])) @ br.weights  # [n_frames, bands]
                s *= s
                with np.errstate(divide="ignore"):
                    np.log(s, out=s)
                s *= np.float32(br.exponent)
                np.exp(s, out=s)
                out[c, :, :, b] = s[:, ::-1].T
        return out


def _constant(model, g, j: int) -> np.ndarray | None:
    """A float32 or int32 constant tensor of subgraph ``g`` as an array; None for anything else."""
    t = g.tensors[j]
    data = model.buffers[t.buffer].data
    if data is None or len(data) == 0 or t.type not in (0, 2):  # FLOAT32, INT32
        return None
    arr = np.frombuffer(bytes(data), np.float32 if t.type == 0 else np.int32)
    return arr.reshape([int(s) for s in t.shape]) if len(t.shape) else arr


def _periodic_hann(n: int) -> np.ndarray:
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float32)


def split_front(model_path: str | Path) -> tuple[SpectrogramFront, bytes] | None:
    """``(front, trunk model bytes)`` for a BirdNET-layout ``.tflite`` whose float32 front end has
    the V2.4 pattern; None (logged) for any other graph, e.g. a quantized variant whose filterbank
    is not float32, so the caller runs the whole model."""
    from ai_edge_litert import schema_py_generated as schema
    import flatbuffers

    try:
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(Path(model_path).read_bytes(), 0))
        g = model.subgraphs[0]
    except Exception as e:  # not a TFLite flatbuffer: TFLiteModel reports it with the file's name
        log.info("%s: not split (%s)", Path(model_path).name, e)
        return None
    ops = g.operators
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}

    def kind(op) -> str:
        oc = model.operatorCodes[op.opcodeIndex]
        return names.get(max(oc.builtinCode, oc.deprecatedBuiltinCode), "")

    def consts(op) -> list[np.ndarray]:
        return [c for c in (_constant(model, g, int(j)) for j in op.inputs if j >= 0) if c is not None]

    def refuse(why: str):
        log.info("%s: BirdNET's front end stays in the model (%s)", Path(model_path).name, why)
        return None

    producer = {int(o): i for i, op in enumerate(ops) for o in op.outputs}
    conv = next((i for i, op in enumerate(ops) if kind(op) == "CONV_2D"), None)
    if conv is None or len(g.inputs) != 1:
        return refuse("no convolution, or not one input")
    cut = max((i for i in range(conv) if kind(ops[i]) == "CONCATENATION"), default=None)
    inp = g.tensors[int(g.inputs[0])]
    if cut is None or len(inp.shape) != 2:
        return refuse("no stacked spectrogram before the first convolution")
    n_samples = int(inp.shape[1])
    scalars = sorted(float(c.ravel()[0]) for i in range(cut) if kind(ops[i]) in ("ADD", "SUB", "MUL")
                     for c in consts(ops[i]) if c.size == 1)
    if not all(any(abs(s - v) <= 1e-9 * max(1.0, v) for s in scalars) for v in (1e-6, 0.5, 2.0)):
        return refuse("not the [-1, 1] scaling of each chunk")
    branches = []
    for r in (i for i in range(cut) if kind(ops[i]) == "RFFT2D"):
        try:
            mul = producer[int(ops[producer[int(ops[r].inputs[0])]].inputs[0])]
            win = next(c for c in consts(ops[mul]) if c.ndim == 1 and c.size > 2)
            fc = next(i for i in range(r, cut) if kind(ops[i]) == "FULLY_CONNECTED")
            weights = next(c for c in consts(ops[fc]) if c.ndim == 2)  # [bands, bins]
            pw = next(i for i in range(fc, cut) if kind(ops[i]) == "POW")
            exponent = float(consts(ops[pw])[0].ravel()[0])
            hop = next(int(c.ravel()[0]) for i in range(r - 1, -1, -1) if kind(ops[i]) == "FLOOR_DIV"
                       for c in consts(ops[i]) if c.size == 1 and ops[i].inputs[0] in producer
                       and any(d.size == 1 and int(d.ravel()[0]) == win.size
                               for d in consts(ops[producer[int(ops[i].inputs[0])]])))
        except (StopIteration, KeyError, IndexError):
            return refuse("a spectrogram branch of another form")
        if np.abs(win - _periodic_hann(win.size)).max() > 1e-6 or win.size % 2:
            return refuse("a window other than the periodic Hann")
        nz = np.flatnonzero(np.abs(weights).sum(axis=0) > 0)
        if weights.shape[1] != win.size // 2 + 1 or not nz.size:
            return refuse("a filterbank of another size")
        k0, k1 = int(nz[0]), int(nz[-1]) + 1
        branches.append(Branch(int(win.size), hop, k0, k1, np.ascontiguousarray(weights[:, k0:k1].T), exponent))
    cat = g.tensors[int(ops[cut].outputs[0])]
    if len(branches) != len(ops[cut].inputs) or len(cat.shape) != 4:
        return refuse("branches and stacked channels differ")
    n_frames = {(n_samples - b.frame) // b.hop + 1 for b in branches}
    bands = {b.weights.shape[1] for b in branches}
    if len(n_frames) != 1 or len(bands) != 1:
        return refuse("branches of different shapes")
    front = SpectrogramFront(tuple(branches), n_samples, n_frames.pop(), bands.pop())

    new_in = int(ops[cut].outputs[0])
    g.operators = ops[cut + 1:]
    g.inputs = np.array([new_in], np.int32)
    cat.shape = np.array([1, front.bands, front.n_frames, len(branches)], np.int32)
    cat.shapeSignature = np.array([-1, front.bands, front.n_frames, len(branches)], np.int32)
    for sig in model.signatureDefs or []:
        for t in sig.inputs or []:
            t.tensorIndex = new_in
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return front, bytes(b.Output())
