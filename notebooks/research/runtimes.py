"""Which CPU runtime should run BirdNET V2.4 (the teacher) and the student: LiteRT
(``ai_edge_litert`` with its default XNNPACK delegate, what the project uses: ``TFLiteModel`` and
``StudentRunner``), ONNX Runtime or OpenVINO, float32 and int8, 1 and 2 threads, BirdNET at
several batch sizes.

Models, made once in ``--work`` (weights do not change the cost; no training):
  * BirdNET with its 1,024-d embedding exposed (``teacher.surgery.prepare_birdnet``); its int8 is
    the project's ``dynamic_int8`` (``teacher.quantize``, needs ``ai-edge-quantizer``).
    Neither tf2onnx nor OpenVINO's TFLite front end converts BirdNET's ``RFFT2D`` (tf2onnx only
    fuses RFFT2D -> ComplexAbs; here it is RFFT2D -> SQUEEZE -> CAST complex64->float32, i.e. the
    *real part* of the FFT). :func:`rfft_to_real_dft` rewrites each into a FULLY_CONNECTED against
    a cosine matrix (Re rfft(x) = x @ cos), which both convert; :func:`matmul_to_dft` then puts an
    ONNX ``DFT`` (opset 17) back in place of that matmul in the ONNX file ("onnx-dft"; "onnx-mm"
    keeps the matmul). ONNX Runtime's int8 is ``quantize_dynamic`` of onnx-dft (spectrogram and
    depthwise convolutions left float, as the project's dynamic_int8 does).
  * BirdNET's network alone (``birdnet-trunk``: ``teacher.front.split_front``'s trunk, what the
    project runs since its spectrograms moved to NumPy): no RFFT2D, so tf2onnx and OpenVINO read
    it as it is. Every engine gets audio and runs the project's NumPy spectrograms before its trunk;
    the reference stays the whole model in LiteRT.
  * The student, built by the project's code on random weights (``StudentConfig()``, 29 species,
    the Mel front, and ``front="tokens"`` with codebooks fitted on random windows), exported by
    ``student.export.export_tflite`` as float32 and as the project's int8 file (full int8 for the
    Mel student, int8 weights for the token student); ONNX by tf2onnx from each (int8 -> QDQ).
    OpenVINO reads the .tflite files directly.

Work per audio minute: BirdNET 58 chunks [58, 144000] of seeded noise (stride 1 s), in batches of
``--batches`` (the project's default is 16; the last batch is the remainder, as ``TFLiteModel``
runs it); student 25 windows [25, 312, 128] of seeded dB noise (12 rows with +-2.5-s shifted
windows), one call (``StudentRunner.predict``'s default batch of 64 takes them at once).

Timing: all (engine, batch) configurations of one thread count are built first (load + compile
timed and reported, not counted), then run in a shuffled order per round, ``--reps`` rounds after
one untimed warm-up round; each timed minute is preceded by an untimed call of the shape the
previous minute ended with, so every engine is in its steady state (LiteRT re-allocates when the
batch shape changes, as it does within a minute). Figures are the best of the rounds: process
CPU seconds (all threads) and wall seconds per audio minute. LiteRT allocates (and XNNPACK packs
weights) at the first call, so its start-up shows in "first minute", not in "load + compile".
Accuracy: the largest absolute difference of the logits and of the embedding from LiteRT
float32, batch 1, one thread.

    python3.11 -m venv /tmp/rs/rt/venv
    echo /work/main/.venv/lib/python3.11/site-packages \
        > /tmp/rs/rt/venv/lib/python3.11/site-packages/main.pth
    /tmp/rs/rt/venv/bin/pip install openvino onnxruntime tf2onnx
    cd /work/main && PYTHONPATH=src /tmp/rs/rt/venv/bin/python notebooks/research/runtimes.py \
        --work /tmp/rs/rt/work --reps 5

A runtime that is not installed is skipped with a message (tf2onnx only for making the .onnx
files). OpenVINO's CPU plugin runs bf16 by default on CPUs with native bf16 (AVX512_BF16/AMX):
the float32 rows here force ``INFERENCE_PRECISION_HINT=f32``; the bf16 rows appear only on such a
CPU and say nothing about one without it.
"""
from __future__ import annotations

import os

# NumPy's BLAS (the trunk's NumPy front) on one thread: an idle OpenBLAS thread spins after each call
# and doubled every row's CPU time; the runtimes' own thread pools are set per engine
os.environ["OPENBLAS_NUM_THREADS"] = "1"

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

import numpy as np  # noqa: E402

BIRDNET_CHUNKS = 58  # 3-s chunks per audio minute at a 1-s stride
STUDENT_WINDOWS = 25  # 12 rows, each with its window and the windows shifted by -/+ 2.5 s
BIRDNET_BATCHES = (1, 8, 16, 32, 64)
TODAY_BATCH = 16  # teacher/birdnet.py's default
LOG = logging.getLogger("runtimes")


def have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


# --------------------------------------------------------------------------------------------
# Model files
# --------------------------------------------------------------------------------------------


def rfft_to_real_dft(src: Path, dst: Path) -> Path:
    """Copy of BirdNET's .tflite with every RFFT2D -> SQUEEZE -> CAST(complex64 -> float32) chain
    replaced by FULLY_CONNECTED(frames, cos) -> SQUEEZE: TFLite's complex-to-float CAST keeps the
    real part, and Re rfft(x)[k] = sum_n x[n] cos(2 pi k n / N). Checked against ``src`` in LiteRT
    by :func:`birdnet_files`."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils as fbu

    if dst.is_file():
        return dst
    m = fbu.read_model(str(src))
    g = m.subgraphs[0]
    ops = schema.BuiltinOperator

    def code(op) -> int:
        oc = m.operatorCodes[op.opcodeIndex]
        return max(oc.builtinCode, oc.deprecatedBuiltinCode)

    def consumers(t: int) -> list[int]:
        return [k for k, op in enumerate(g.operators) if t in [int(i) for i in op.inputs]]

    fc = next(i for i, oc in enumerate(m.operatorCodes)
              if max(oc.builtinCode, oc.deprecatedBuiltinCode) == ops.FULLY_CONNECTED)
    drop = []
    for op in g.operators:
        if code(op) != ops.RFFT2D:
            continue
        n = int(np.frombuffer(bytes(m.buffers[g.tensors[op.inputs[1]].buffer].data), np.int32)[-1])
        (si,) = consumers(int(op.outputs[0]))
        sq = g.operators[si]
        (ci,) = consumers(int(sq.outputs[0]))
        cast = g.operators[ci]
        if code(sq) != ops.SQUEEZE or code(cast) != ops.CAST:
            raise RuntimeError("RFFT2D is not followed by SQUEEZE and CAST: not BirdNET V2.4?")
        w = np.cos(2 * np.pi * np.outer(np.arange(n // 2 + 1), np.arange(n)) / n).astype(np.float32)
        buf = schema.BufferT()
        buf.data = np.frombuffer(w.tobytes(), np.uint8)
        m.buffers.append(buf)
        t = schema.TensorT()
        t.shape, t.type = np.array(w.shape, np.int32), schema.TensorType.FLOAT32
        t.buffer, t.name = len(m.buffers) - 1, f"real_dft_{n}".encode()
        g.tensors.append(t)
        opt = schema.FullyConnectedOptionsT()
        opt.keepNumDims = True  # [b, frames, 1, n] -> [b, frames, 1, n/2 + 1]
        op.opcodeIndex = fc
        op.inputs = np.array([op.inputs[0], len(g.tensors) - 1, -1], np.int32)
        op.builtinOptionsType, op.builtinOptions = schema.BuiltinOptions.FullyConnectedOptions, opt
        g.tensors[op.outputs[0]].type = schema.TensorType.FLOAT32
        sq.outputs = cast.outputs  # the SQUEEZE now writes the float tensor the CAST wrote
        drop.append(ci)
    if not drop:
        raise RuntimeError(f"{src}: no RFFT2D")
    g.operators = [op for k, op in enumerate(g.operators) if k not in drop]
    fbu.write_model(m, str(dst))
    return dst


def tflite_to_onnx(src: Path, dst: Path) -> Path | None:
    """``python -m tf2onnx.convert --tflite src --output dst --opset 17``; None (with the error)
    if it fails."""
    if dst.is_file():
        return dst
    if not have("tf2onnx"):
        print(f"  tf2onnx is not installed: no {dst.name}")
        return None
    cmd = [sys.executable, "-m", "tf2onnx.convert", "--tflite", str(src), "--output", str(dst),
           "--opset", "17"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0 or not dst.is_file():
        err = [ln for ln in (r.stderr + r.stdout).splitlines() if "Error" in ln or "failure" in ln]
        print(f"  tf2onnx failed on {src.name}: {err[-1] if err else r.returncode}")
        return None
    return dst


def matmul_to_dft(src: Path, dst: Path) -> Path:
    """Copy of the ONNX file with each MatMul against a real-DFT cosine matrix (from
    :func:`rfft_to_real_dft`) replaced by Unsqueeze -> DFT(onesided) -> Gather(real part)."""
    import onnx
    from onnx import helper, numpy_helper

    if dst.is_file():
        return dst
    m = onnx.load(str(src))
    inits = {i.name: i for i in m.graph.initializer}
    nodes, used = [], set()
    for nd in m.graph.node:
        w = inits.get(nd.input[1]) if nd.op_type == "MatMul" and len(nd.input) == 2 else None
        n = int(w.dims[0]) if w is not None and len(w.dims) == 2 else 0
        if not n or int(w.dims[1]) != n // 2 + 1 or not np.allclose(
                numpy_helper.to_array(w)[:3, 1], np.cos(2 * np.pi * np.arange(3) / n), atol=1e-6):
            nodes.append(nd)
            continue
        p = nd.name
        nodes += [helper.make_node("Unsqueeze", [nd.input[0], p + "_axes"], [p + "_u"]),
                  helper.make_node("DFT", [p + "_u"], [p + "_c"], axis=3, onesided=1),
                  helper.make_node("Gather", [p + "_c", p + "_re"], [nd.output[0]], axis=-1)]
        m.graph.initializer.extend([numpy_helper.from_array(np.array([-1], np.int64), p + "_axes"),
                                    numpy_helper.from_array(np.array(0, np.int64), p + "_re")])
        used.add(w.name)
    if not used:
        raise RuntimeError(f"{src}: no real-DFT MatMul found")
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    keep = [i for i in m.graph.initializer if i.name not in used]
    del m.graph.initializer[:]
    m.graph.initializer.extend(keep)
    onnx.checker.check_model(m)
    onnx.save(m, str(dst))
    return dst


def ort_dynamic_int8(src: Path, dst: Path) -> Path:
    """ONNX Runtime's dynamic int8 (per-channel weights) of Conv/MatMul/Gemm, leaving the
    spectrogram (``MEL_SPEC``) and depthwise (grouped) convolutions in float."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if dst.is_file():
        return dst
    g = onnx.load(str(src)).graph
    keep = [n.name for n in g.node if "MEL_SPEC" in n.name or (
        n.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in n.attribute))]
    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=["Conv", "MatMul", "Gemm"], nodes_to_exclude=keep)
    return dst


def birdnet_files(work: Path) -> dict[str, Path | None]:
    from vocalprint.teacher.runtime import TFLiteModel
    from vocalprint.teacher.surgery import prepare_birdnet

    f: dict[str, Path | None] = {"tflite": prepare_birdnet(work)}
    f["tflite-int8"] = None
    if have("ai_edge_quantizer"):
        from vocalprint.teacher.quantize import quantize_tflite

        f["tflite-int8"] = work / "birdnet_dynamic_int8.tflite"
        if not f["tflite-int8"].is_file():
            quantize_tflite(f["tflite"], f["tflite-int8"], mode="dynamic_int8")
    else:
        print("  ai-edge-quantizer is not installed: no LiteRT dynamic_int8 BirdNET")
    fresh = not (work / "birdnet_real_dft.tflite").is_file()
    f["tflite-dft"] = rfft_to_real_dft(f["tflite"], work / "birdnet_real_dft.tflite")
    if fresh:  # the rewrite must not change the model
        x = np.random.default_rng(1).normal(0, 0.1, (2, 144000)).astype(np.float32)
        a = TFLiteModel(f["tflite"], batch_size=2).run(x)
        b = TFLiteModel(f["tflite-dft"], batch_size=2).run(x)
        print("  RFFT2D -> real-DFT matmul in LiteRT: max |d logit| "
              f"{np.abs(a['logits'] - b['logits']).max():.2e}, max |d emb| "
              f"{np.abs(a['embedding'] - b['embedding']).max():.2e}")
    f["onnx-mm"] = tflite_to_onnx(f["tflite-dft"], work / "birdnet_real_dft.onnx")
    f["onnx-dft"] = f["onnx-int8"] = None
    if f["onnx-mm"] is not None:
        f["onnx-dft"] = matmul_to_dft(f["onnx-mm"], work / "birdnet_dft.onnx")
        if have("onnxruntime"):
            f["onnx-int8"] = ort_dynamic_int8(f["onnx-dft"], work / "birdnet_dft_dynamic_int8.onnx")
    return f


def trunk_files(work: Path) -> dict[str, Path | None]:
    """BirdNET's network without its spectrograms (``teacher.front.split_front``, what the project
    runs in LiteRT since the spectrograms moved to NumPy): no RFFT2D, so tf2onnx and OpenVINO read
    it as it is. ``tflite`` stays the whole model (the accuracy reference)."""
    from vocalprint.teacher.front import split_front
    from vocalprint.teacher.surgery import prepare_birdnet

    whole = prepare_birdnet(work)
    trunk = work / "birdnet_trunk.tflite"
    if not trunk.is_file():
        trunk.write_bytes(split_front(whole)[1])
    f: dict[str, Path | None] = {"tflite": whole, "trunk": trunk}
    f["trunk-onnx"] = tflite_to_onnx(trunk, work / "birdnet_trunk.onnx")
    f["trunk-onnx-int8"] = None
    if f["trunk-onnx"] is not None and have("onnxruntime"):
        f["trunk-onnx-int8"] = ort_dynamic_int8(f["trunk-onnx"], work / "birdnet_trunk_dynamic_int8.onnx")
    return f


def student_files(work: Path, front: str) -> dict[str, Path | None]:
    out = {q: work / f"student_{front}_{q}.tflite" for q in ("fp32", "int8")}
    if not all(p.is_file() for p in out.values()):
        from vocalprint.config.student import StudentConfig
        from vocalprint.student.export import export_tflite, int8_quant
        from vocalprint.student.net import build_student
        from vocalprint.student.token_front import fit_token_books

        x = student_minute(64, seed=0)
        cfg = StudentConfig(front=front, token_sample=5000)
        books = fit_token_books(x, cfg) if front == "tokens" else None
        m = build_student(n_frames=312, n_mels=128, n_classes=29, teacher_emb_dim=1024, n_meta=0,
                          cfg=cfg, codebooks=books)
        export_tflite(m, out["fp32"], quant="none")
        export_tflite(m, out["int8"], quant=int8_quant(cfg), representative=x[:16])
    f: dict[str, Path | None] = {"tflite": out["fp32"], "tflite-int8": out["int8"]}
    f["onnx"] = tflite_to_onnx(out["fp32"], work / f"student_{front}_fp32.onnx")
    f["onnx-int8"] = tflite_to_onnx(out["int8"], work / f"student_{front}_int8.onnx")
    return f


def birdnet_minute(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.1, (BIRDNET_CHUNKS, 144000)).astype(np.float32)


def student_minute(n: int = STUDENT_WINDOWS, seed: int = 1) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, 312, 128)) * 10 - 50
    return np.clip(x, -80, 0).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Engines: make() -> run(x, batch) -> {"logits", "embedding"}
# --------------------------------------------------------------------------------------------

Run = Callable[[np.ndarray, int], dict]


def _by_width(outs: list[np.ndarray], widths: dict[str, int]) -> dict[str, np.ndarray]:
    return {role: next(o for o in outs if o.shape[-1] == w) for role, w in widths.items()}


def _batched(call: Callable[[np.ndarray], list], widths: dict[str, int]) -> Run:
    def run(x: np.ndarray, bs: int) -> dict:
        parts = [_by_width(call(np.ascontiguousarray(x[a:a + bs])), widths)
                 for a in range(0, len(x), bs)]
        return {r: np.concatenate([p[r] for p in parts]) for r in widths}
    return run


def litert_birdnet(path: Path, threads: int, widths: dict) -> Run:
    from vocalprint.teacher.runtime import TFLiteModel

    m = TFLiteModel(path, num_threads=threads, batch_size=TODAY_BATCH)

    def run(x: np.ndarray, bs: int) -> dict:
        m.batch_size = bs
        return m.run(x)
    return run


def litert_student(path: Path, threads: int, widths: dict) -> Run:
    from vocalprint.student.runtime import StudentRunner

    r = StudentRunner(path, threads=threads)
    return lambda x, bs: r.predict(x, batch=bs)


def ort_engine(path: Path, threads: int, widths: dict) -> Run:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    return _batched(lambda x: s.run(None, {name: x}), widths)


def ov_engine(precision: str) -> Callable[[Path, int, dict], Run]:
    def make(path: Path, threads: int, widths: dict) -> Run:
        import openvino as ov

        c = ov.Core().compile_model(str(path), "CPU", {
            "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": precision,
            "PERFORMANCE_HINT": "LATENCY", "ENABLE_CPU_PINNING": False})
        req = c.create_infer_request()
        return _batched(lambda x: list(req.infer({0: x}).values()), widths)
    return make


def _numpy_front():
    """The project's NumPy spectrograms of BirdNET (one per process)."""
    from vocalprint.teacher.front import split_front
    from vocalprint.teacher.surgery import prepare_birdnet

    if not _FRONT:
        _FRONT.append(split_front(prepare_birdnet(Path(_WORK[0])))[0])
    return _FRONT[0]


_FRONT: list = []
_WORK: list = []  # --work, for _numpy_front


def fronted(make: Callable[[Path, int, dict], Run]) -> Callable[[Path, int, dict], Run]:
    """An engine for the trunk that takes audio: NumPy spectrograms per batch, then ``make``'s."""
    def wrapped(path: Path, threads: int, widths: dict) -> Run:
        front, inner = _numpy_front(), make(path, threads, widths)

        def run(x: np.ndarray, bs: int) -> dict:
            parts = [inner(front(x[a:a + bs]), bs) for a in range(0, len(x), bs)]
            return {r: np.concatenate([q[r] for q in parts]) for r in widths}
        return run
    return wrapped


def litert_trunk(path: Path, threads: int, widths: dict) -> Run:
    """The project's path: ``TFLiteModel`` with the trunk's bytes and the NumPy front."""
    from vocalprint.teacher.runtime import TFLiteModel

    m = TFLiteModel(path, num_threads=threads, batch_size=TODAY_BATCH, content=path.read_bytes(),
                    front=_numpy_front())

    def run(x: np.ndarray, bs: int) -> dict:
        m.batch_size = bs
        return m.run(x)
    return run


RUNTIMES = {"litert": "ai_edge_litert", "onnxruntime": "onnxruntime", "openvino": "openvino"}


@dataclass
class Variant:
    runtime: str  # key of RUNTIMES
    model: str  # what runs: precision and file
    file: str  # key of the files dict
    make: Callable[[Path, int, dict], Run]
    main: bool = True  # False: only at the project's batch (alternative conversions)


def ov_bf16_native() -> bool:
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def birdnet_variants() -> list[Variant]:
    v = [Variant("litert", "fp32", "tflite", litert_birdnet),
         Variant("litert", "dynamic_int8", "tflite-int8", litert_birdnet),
         Variant("onnxruntime", "fp32 onnx-dft", "onnx-dft", ort_engine),
         Variant("onnxruntime", "fp32 onnx-mm", "onnx-mm", ort_engine, main=False),
         Variant("onnxruntime", "dynamic int8 (ORT)", "onnx-int8", ort_engine, main=False),
         Variant("openvino", "f32 onnx-dft", "onnx-dft", ov_engine("f32")),
         Variant("openvino", "f32 tflite-mm", "tflite-dft", ov_engine("f32"), main=False),
         Variant("openvino", "dynamic int8 (ORT file)", "onnx-int8", ov_engine("f32"), main=False)]
    if have("openvino") and ov_bf16_native():
        v.append(Variant("openvino", "bf16 onnx-dft", "onnx-dft", ov_engine("bf16")))
    return v


def trunk_variants() -> list[Variant]:
    v = [Variant("litert", "fp32 trunk + NumPy front (project)", "trunk", litert_trunk),
         Variant("onnxruntime", "fp32 trunk + NumPy front", "trunk-onnx", fronted(ort_engine)),
         Variant("onnxruntime", "dynamic int8 trunk + NumPy front", "trunk-onnx-int8", fronted(ort_engine),
                 main=False),
         Variant("openvino", "f32 trunk tflite + NumPy front", "trunk", fronted(ov_engine("f32"))),
         Variant("openvino", "f32 trunk onnx + NumPy front", "trunk-onnx", fronted(ov_engine("f32")), main=False)]
    if have("openvino") and ov_bf16_native():
        v.append(Variant("openvino", "bf16 trunk tflite + NumPy front", "trunk", fronted(ov_engine("bf16"))))
    return v


def student_variants() -> list[Variant]:
    v = [Variant("litert", "fp32", "tflite", litert_student),
         Variant("litert", "int8 (project file)", "tflite-int8", litert_student),
         Variant("onnxruntime", "fp32", "onnx", ort_engine),
         Variant("onnxruntime", "int8 QDQ", "onnx-int8", ort_engine),
         Variant("openvino", "f32 tflite", "tflite", ov_engine("f32")),
         Variant("openvino", "int8 tflite", "tflite-int8", ov_engine("f32")),
         Variant("openvino", "f32 onnx", "onnx", ov_engine("f32"), main=False),
         Variant("openvino", "int8 QDQ onnx", "onnx-int8", ov_engine("f32"), main=False)]
    if have("openvino") and ov_bf16_native():
        v.append(Variant("openvino", "bf16 tflite", "tflite", ov_engine("bf16")))
    return v


# --------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------


@dataclass
class Result:
    runtime: str
    model: str
    threads: int
    batch: int
    load_s: float = float("nan")
    first_s: float = float("nan")  # the warm-up minute (wall), lazy initialisation included
    cpu: list = field(default_factory=list)
    wall: list = field(default_factory=list)
    d_logit: float = float("nan")
    d_emb: float = float("nan")


def measure(net: str, files: dict, variants: list[Variant], threads: tuple[int, ...],
            batches: tuple[int, ...], today: int, reps: int, ref_make: Callable) -> list[Result]:
    x = birdnet_minute() if net.startswith("birdnet") else student_minute()
    ref = ref_make(files["tflite"], 1, {})(x, 1)
    widths = {k: v.shape[-1] for k, v in ref.items()}
    results: list[Result] = []
    for t in threads:
        configs = []  # (run, Result); one engine per variant serves every batch
        for v in variants:
            if not have(RUNTIMES[v.runtime]) or files.get(v.file) is None:
                continue
            t0 = time.perf_counter()
            try:
                run = v.make(files[v.file], t, widths)
            except Exception as e:  # a conversion the runtime cannot load: say so, go on
                print(f"  {v.runtime} {v.model}: cannot load ({str(e).splitlines()[-1][:200]})")
                continue
            load = time.perf_counter() - t0
            for b in (batches if v.main else (today,)):
                configs.append((run, Result(v.runtime, v.model, t, b, load_s=load)))
        rng = np.random.default_rng(t)
        for rep in range(reps + 1):  # round 0: untimed warm-up, accuracy
            for k in rng.permutation(len(configs)):
                run, r = configs[k]
                run(x[:len(x) - r.batch * ((len(x) - 1) // r.batch)], r.batch)  # steady state
                c0, w0 = time.process_time(), time.perf_counter()
                out = run(x, r.batch)
                cpu, wall = time.process_time() - c0, time.perf_counter() - w0
                if rep == 0:
                    r.first_s = wall
                    r.d_logit = float(np.abs(out["logits"] - ref["logits"]).max())
                    r.d_emb = float(np.abs(out["embedding"] - ref["embedding"]).max())
                else:
                    r.cpu.append(cpu)
                    r.wall.append(wall)
            print(f"  {net}, {t} thread(s): round {rep}/{reps} done", flush=True)
        results += [r for _, r in configs]
        configs = run = None  # free this thread count's engines before building the next
    return results


def table(net: str, results: list[Result], today: Result | None, reps: int) -> str:
    base = min(today.cpu) if today else float("nan")
    head = (f"\n### {net}: seconds per audio minute, best of {reps} interleaved rounds\n\n"
            "| runtime | model | threads | batch | CPU s / min | wall s / min | x today (CPU) "
            "| x today (wall) | max abs d logit | max abs d emb |\n"
            "|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for r in sorted(results, key=lambda r: (r.threads, r.runtime, r.model, r.batch)):
        rows.append(f"| {r.runtime} | {r.model} | {r.threads} | {r.batch} | {min(r.cpu):.3f} | "
                    f"{min(r.wall):.3f} | {base / min(r.cpu):.2f} | "
                    f"{(min(today.wall) if today else np.nan) / min(r.wall):.2f} | "
                    f"{r.d_logit:.2g} | {r.d_emb:.2g} |")
    start = ["", f"### {net}: start-up (once per process, not in the figures above)", "",
             "| runtime | model | threads | load + compile s | first minute s (wall) |",
             "|---|---|---|---|---|"]
    seen = set()
    for r in sorted(results, key=lambda r: (r.threads, r.runtime, r.model)):
        if (r.runtime, r.model, r.threads) in seen:
            continue
        seen.add((r.runtime, r.model, r.threads))
        first = max(q.first_s for q in results
                    if (q.runtime, q.model, q.threads) == (r.runtime, r.model, r.threads))
        start.append(f"| {r.runtime} | {r.model} | {r.threads} | {r.load_s:.2f} | {first:.2f} |")
    return "\n".join([head, *rows, *start])


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for p in ("ai-edge-litert", "onnxruntime", "openvino", "tf2onnx", "onnx", "numpy"):
        try:
            out.append(f"{p} {version(p)}")
        except PackageNotFoundError:
            out.append(f"{p} (not installed)")
    return ", ".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/rs/rt/work"),
                    help="model files are made here once")
    ap.add_argument("--nets", nargs="+", default=["birdnet", "birdnet-trunk", "student-mel", "student-tokens"],
                    choices=["birdnet", "birdnet-trunk", "student-mel", "student-tokens"])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--batches", nargs="+", type=int, default=list(BIRDNET_BATCHES),
                    help="BirdNET batch sizes")
    ap.add_argument("--reps", type=int, default=5, help="timed rounds (BirdNET)")
    ap.add_argument("--student-reps", type=int, default=30, help="timed rounds (students)")
    ap.add_argument("--json", type=Path, help="write every measurement here")
    a = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for rt, mod in RUNTIMES.items():
        if not have(mod):
            print(f"{rt} ({mod}) is not installed: skipped")
    if not have("ai_edge_litert"):
        sys.exit("ai_edge_litert is needed for the reference (LiteRT float32, batch 1)")
    a.work.mkdir(parents=True, exist_ok=True)
    _WORK.append(a.work)
    print(versions())
    for mod in ("onnxruntime", "openvino"):  # one-off import cost, before anything imports them
        if have(mod):
            t0 = time.perf_counter()
            __import__(mod)
            print(f"import {mod}: {time.perf_counter() - t0:.2f} s")
    if have("openvino"):
        print("OpenVINO CPU capabilities:", " ".join(
            __import__("openvino").Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")))
    out, dump = [], {}
    for net in a.nets:
        print(f"\n{net}: preparing models in {a.work}", flush=True)
        if net == "birdnet":
            files, variants, batches, today_b, today_m = (
                birdnet_files(a.work), birdnet_variants(), tuple(a.batches), TODAY_BATCH, "fp32")
            ref_make, reps = litert_birdnet, a.reps
        elif net == "birdnet-trunk":
            files, variants, batches, today_b, today_m = (
                trunk_files(a.work), trunk_variants(), tuple(a.batches), TODAY_BATCH,
                "fp32 trunk + NumPy front (project)")
            ref_make, reps = litert_birdnet, a.reps
        else:
            files, variants, batches, today_b, today_m = (
                student_files(a.work, net.split("-")[1]), student_variants(), (STUDENT_WINDOWS,),
                STUDENT_WINDOWS, "int8 (project file)")
            ref_make, reps = litert_student, a.student_reps
        res = measure(net, files, variants, tuple(a.threads), batches, today_b, reps, ref_make)
        today = next((r for r in res if (r.runtime, r.model, r.threads, r.batch)
                      == ("litert", today_m, 1, today_b)), None)
        out.append(table(net, res, today, reps) + f"\n\n'today' = LiteRT {today_m}, 1 thread, "
                   f"batch {today_b}. Files: " + ", ".join(
                       f"{k} {p.stat().st_size / 1e6:.1f} MB" for k, p in files.items() if p))
        print(out[-1], flush=True)
        dump[net] = [r.__dict__ for r in res]
    print("\n" + "\n".join(out))
    if a.json:
        a.json.write_text(json.dumps(dump, indent=1))


if __name__ == "__main__":
    main()
