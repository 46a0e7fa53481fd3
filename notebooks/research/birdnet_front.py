"""Where BirdNET's time goes, and what computing its spectrograms outside LiteRT saves.

BirdNET V2.4 computes two spectrograms inside its graph before its first convolution
(:mod:`vocalprint.teacher.front`). This script times, on one thread, CPU seconds per audio minute
(58 chunks of 3 s at a 1-s hop, as ``birdnet-zeroshot`` scores a test minute) at several batch
sizes for:

- the whole model in LiteRT (``teacher.spectrogram=model``);
- its front end alone in LiteRT (the graph cut at the stacked spectrograms);
- the front end in NumPy (:class:`vocalprint.teacher.front.SpectrogramFront`);
- the network alone in LiteRT (the trunk), and NumPy front + trunk (``teacher.spectrogram=numpy``).

Calls are interleaved after an untimed warm-up, best of ``--reps`` rounds (thread CPU time, which
a busy machine inflates less than wall time). Accuracy: the largest absolute logit and embedding
difference of NumPy front + trunk against the whole model at batch 1, over every chunk of the
``--audio`` files, and the largest probability (sigmoid) difference.

    PYTHONPATH=src .venv/bin/python notebooks/research/birdnet_front.py --reps 5 \\
        --audio ../shared/data/dev/test_soundscapes/*.ogg
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"  # one core, before numpy is imported

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from vocalprint.teacher.front import split_front  # noqa: E402
from vocalprint.teacher.runtime import TFLiteModel, interpreter  # noqa: E402
from vocalprint.teacher.surgery import prepare_birdnet  # noqa: E402


def front_only(model_path: Path) -> bytes:
    """The BirdNET graph cut after its stacked spectrograms: LiteRT's front end alone."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    m = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model_path.read_bytes(), 0))
    g = m.subgraphs[0]
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}

    def kind(op):
        oc = m.operatorCodes[op.opcodeIndex]
        return names.get(max(oc.builtinCode, oc.deprecatedBuiltinCode), "")

    conv = next(i for i, op in enumerate(g.operators) if kind(op) == "CONV_2D")
    cut = max(i for i in range(conv) if kind(g.operators[i]) == "CONCATENATION")
    g.outputs = np.array([int(g.operators[cut].outputs[0])], np.int32)
    g.operators = g.operators[:cut + 1]
    m.signatureDefs = []
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


class Raw:
    """A LiteRT interpreter on fixed-size batches (for the front-end-only graph)."""

    def __init__(self, content: bytes, shape: list[int]):
        self.ip = interpreter("front", threads=1, content=content)
        self.ip.resize_tensor_input(self.ip.get_input_details()[0]["index"], shape)
        self.ip.allocate_tensors()

    def __call__(self, x: np.ndarray) -> None:
        self.ip.set_tensor(self.ip.get_input_details()[0]["index"], x)
        self.ip.invoke()


def chunks_of(path: str) -> np.ndarray:
    import soundfile as sf
    import soxr

    y, sr = sf.read(path, dtype="float32", always_2d=True)
    y = soxr.resample(y.mean(axis=1), sr, 48000).astype(np.float32)
    m = 1 + max(0, (y.size - 144000) // 48000)
    y = np.pad(y, (0, max(0, (m - 1) * 48000 + 144000 - y.size)))
    return np.stack([y[i * 48000:i * 48000 + 144000] for i in range(m)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--batches", default="1,8,16,32")
    ap.add_argument("--audio", nargs="+", required=True, help="one-minute recordings (the first is timed)")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="birdnet-front-"))
    model = prepare_birdnet(work)
    front, trunk = split_front(model)
    t0 = time.perf_counter()
    split_front(model)
    split_s = time.perf_counter() - t0
    cut = front_only(model)
    x = chunks_of(a.audio[0])[:58]

    fns = {}
    for b in [int(v) for v in a.batches.split(",")]:
        whole = TFLiteModel(model, batch_size=b)
        fast = TFLiteModel(model, batch_size=b, content=trunk, front=front)
        lite_front = Raw(cut, [b, 144000])
        spec = front(x)
        trunk_only = Raw(trunk, [b, *spec.shape[1:]])
        whole.run(x[:b])
        fast.run(x[:b])
        full = range(0, x.shape[0] - b + 1, b)  # whole batches only: chunks timed = b * len(full)
        fns[f"whole model (LiteRT), batch {b}"] = (lambda m=whole: m.run(x), x.shape[0])
        fns[f"front end alone in LiteRT, batch {b}"] = (
            lambda r=lite_front, b=b, full=full: [r(x[i:i + b]) for i in full], b * len(full))
        fns[f"network alone (trunk) in LiteRT, batch {b}"] = (
            lambda r=trunk_only, b=b, s=spec, full=full: [r(s[i:i + b]) for i in full], b * len(full))
        fns[f"NumPy front + trunk (adopted), batch {b}"] = (lambda m=fast: m.run(x), x.shape[0])
    fns["front end in NumPy (any batch)"] = (lambda: front(x), x.shape[0])
    best = {k: np.inf for k in fns}
    names = list(fns)
    for r in range(a.reps):
        for k in names[r % len(names):] + names[:r % len(names)]:
            c0 = time.thread_time()
            fns[k][0]()
            best[k] = min(best[k], (time.thread_time() - c0) / fns[k][1])  # per chunk

    whole1 = TFLiteModel(model, batch_size=1)
    fast16 = TFLiteModel(model, batch_size=16, content=trunk, front=front)
    dl = de = dp = 0.0
    n_chunks = 0
    for p in a.audio:
        c = chunks_of(p)
        w, f = whole1.run(c), fast16.run(c)
        dl = max(dl, float(np.abs(w["logits"] - f["logits"]).max()))
        de = max(de, float(np.abs(w["embedding"] - f["embedding"]).max()))
        sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
        dp = max(dp, float(np.abs(sig(w["logits"]) - sig(f["logits"])).max()))
        n_chunks += c.shape[0]

    print(f"one thread; {x.shape[0]} chunks of {Path(a.audio[0]).name}; best of {a.reps}, interleaved; "
          f"CPU s per audio minute (58 chunks)\n")
    print("| computation | CPU s per audio minute |\n|---|---:|")
    for k in names:
        print(f"| {k} | {best[k] * 58:.3f} |")  # 58 chunks per audio minute at a 1-s hop
    print(f"\nsplitting the model file: {split_s:.2f} s once per process")
    print(f"NumPy front + trunk (batch 16) against the whole model (batch 1), {n_chunks} chunks of "
          f"{len(a.audio)} file(s): max |logit diff| {dl:.2e}, max |embedding diff| {de:.2e}, "
          f"max |probability diff| {dp:.2e}")


if __name__ == "__main__":
    main()
