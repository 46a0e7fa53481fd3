"""Write a trained token student's int8 files again in another ``distill.token_quant``, without
training it again: by default, members trained with int8 weights (``weights``, the former default)
get the files of the current default (``body``).

The student stage keeps no Keras weights, only TFLite files. Its float file
(``student_fp32.tflite``) holds every weight the inference graph uses: the codebooks' centroids,
the token vectors, the convolutions with their BatchNorm folded in, the pooling and the dense
layers. This script rebuilds the Keras student from those (BatchNorm set to add the folded bias),
exports its float file again and checks it against the original on 256 training windows (largest
logit difference below ``--tol``, else it refuses; Keras's own float path is not the check, as a
near-tie in a nearest-centroid search can fall either way between any Keras model and its file),
then exports the windowed and whole-minute int8 files as the stage would for the target config
(``--set``), calibrated on the teacher-labelled mixes the member trained on. The result is a
stage folder under the key the target config names, its manifest saying where it came from
(``reexported_from``).

Training is deterministic (a second training of member 0 repeated its loss history exactly), so
the folder holds the member a training with the target config would give, up to the windows drawn
to calibrate the int8 activations.

    PYTHONPATH=src:notebooks/research .venv/bin/python notebooks/research/reexport_student.py \\
        --data ../shared/data/dev --artifacts artifacts [--from distill.token_quant=weights]
"""
from __future__ import annotations

import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np


def tflite_weights(path: Path) -> dict[str, list[np.ndarray]]:
    """Every constant tensor of a TFLite file, under each of the ``;``-joined names it carries."""
    from vocalprint.teacher.runtime import interpreter

    it = interpreter(path)
    it.allocate_tensors()
    computed = {i for op in it._get_ops_details() for i in op["outputs"]}
    computed |= {d["index"] for d in it.get_input_details()}
    out: dict[str, list[np.ndarray]] = {}
    for d in it.get_tensor_details():
        if d["index"] in computed:  # an activation or the input, not a weight
            continue
        v = np.array(it.get_tensor(d["index"]))
        for part in d["name"].split(";"):
            out.setdefault(part, []).append(v)
    return out


def _find(w: dict[str, list[np.ndarray]], pattern: str, ndim: int) -> np.ndarray:
    rx = re.compile(pattern)
    hits = [v for k, vs in w.items() if rx.search(k) for v in vs if v.ndim == ndim]
    if len({v.tobytes() for v in hits}) != 1:
        raise ValueError(f"{pattern!r}: {len(hits)} tensors of {ndim} dimensions in the float file")
    return hits[0]


def rebuild(stage: Path, n_frames: int, n_mels: int) -> tuple:
    """The Keras student of the stage folder ``stage`` (a token student) from its float file."""
    from vocalprint.config.student import StudentConfig
    from vocalprint.core import artifacts as A
    from vocalprint.student.net import FRONT_LAYER, build_student
    from vocalprint.student.token_front import token_books_spec

    man = A.manifest(stage)
    cfg = StudentConfig(**man["config"])
    if cfg.front != "tokens" or cfg.token_stages != 1 or cfg.token_body != "2d":
        raise ValueError(f"{stage}: only one-stage token students with the 2-D body are rebuilt")
    w = tflite_weights(A.verified(stage / "student_fp32.tflite"))
    L = r"(^|/){}(_\d+)?/"
    spec = token_books_spec(n_mels, cfg)
    books = []
    for i, (lo, hi, _, st) in enumerate(spec):
        c = _find(w, L.format(FRONT_LAYER) + rf"Tensordot{'_' + str(i) if i else ''}/MatMul$", 2)
        books.append((lo, hi, np.asarray(c, np.float32), st))
    n_classes = len(man["species"])
    model = build_student(n_frames=n_frames, n_mels=n_mels, n_classes=n_classes, teacher_emb_dim=1,
                          n_meta=0, cfg=cfg, codebooks=books)
    front = model.get_layer(FRONT_LAYER)
    front.set_weights([_find(w, L.format(FRONT_LAYER) + rf"GatherV2{'_' + str(i) if i else ''}/ReadVariableOp$", 2)
                       for i in range(len(books))])
    for layer in model.layers:
        name = layer.name
        if name.endswith("_conv"):
            k = _find(w, L.format(name) + "convolution$", 4)  # [out, kh, kw, in]
            layer.set_weights([np.transpose(k, (1, 2, 3, 0))])
            bn = model.get_layer(name[:-5] + "_bn")
            bias = _find(w, L.format(bn.name) + "batchnorm/add_1$", 1)
            one = np.ones_like(bias)
            bn.set_weights([one, bias, np.zeros_like(bias), one - bn.epsilon])  # y = x + bias
        elif name == "freq_pool":
            k = _find(w, L.format(name) + "depthwise$", 4)  # [1, kh, kw, ch]
            layer.set_weights([k[0].reshape(*k.shape[1:3], -1, 1)])
        elif name in ("emb_dense", "logits"):
            k = _find(w, L.format(name) + "MatMul$", 2)
            b = _find(w, L.format(name) + "BiasAdd$", 1)
            layer.set_weights([k.T, b])
    return model, cfg, man


def main() -> None:
    import argparse

    from _student import dev_setup

    from vocalprint import config as C
    from vocalprint import models
    from vocalprint import pipeline as P
    from vocalprint.audio.mel import silence
    from vocalprint.config import frames_per_window
    from vocalprint.core import artifacts as A
    from vocalprint.student import stage as S
    from vocalprint.student.export import export_tflite, int8_quant
    from vocalprint.student.fcn import FCN_FILE, FcnLayout, export_fcn
    from vocalprint.student.runtime import StudentRunner

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="tokens-cnn")
    ap.add_argument("--from", dest="source", action="append", default=[], metavar="KEY=VALUE",
                    help="the source members' config overrides (default: the target's with distill.token_quant=weights)")
    ap.add_argument("--tol", type=float, default=1e-3, help="largest logit difference of the float files")
    a, cfg, ds, root, _ = dev_setup(["run.progress=false"], ap)
    cfg = models.get(a.model).configure(cfg)
    src = cfg
    for kv in a.source or ["distill.token_quant=weights"]:
        k, v = kv.split("=", 1)
        src = C.override(src, k, v)
    cache, tfeat = P.teacher_features(cfg, ds, root)
    quant = int8_quant(cfg.distill)
    for member in range(cfg.distill.members):
        old = A.stage_dir(root, "student", S.key(src, tfeat.name, cache.name, member))
        if not A.is_complete(old):
            raise SystemExit(f"member {member} of the source config is not trained ({old} missing)")
        man = A.manifest(old)
        final = A.stage_dir(root, "student", S.key(cfg, tfeat.name, cache.name, member))
        if A.is_complete(final):
            print(f"member {member}: {final} exists")
            continue
        model, _, _ = rebuild(old, frames_per_window(cfg), cfg.mel.n_mels)
        # calibration: training windows, as the stage's (here the teacher-labelled mixes it trained on)
        mix = np.load(A.verified(root / "tmixes" / man["upstream"][2] / "mel.npy"), mmap_mode="r")
        rng = np.random.default_rng(cfg.distill.seed)
        X = np.asarray(mix[np.sort(rng.choice(len(mix), min(256, len(mix)), replace=False))], np.float32)
        work = A.partial_dir(final)
        try:
            export_tflite(model, work / "student_fp32.tflite", quant="none")
            ref = StudentRunner(A.verified(old / "student_fp32.tflite")).predict(X)["logits"]
            diff = float(np.abs(StudentRunner(work / "student_fp32.tflite").predict(X)["logits"] - ref).max())
            print(f"member {member}: rebuilt from {old.name}, largest logit difference of the float files {diff:.2e}")
            if not diff < a.tol:
                raise SystemExit(f"{old}: the rebuilt student differs from its float file by {diff:.3g}")
            shutil.copy2(old / "history.json", work / "history.json")
            export_tflite(model, work / "student_int8.tflite", quant=quant, representative=X)
            fcn = export_fcn(model, work / FCN_FILE, cfg, cfg.distill, X, silence=silence(cfg.mel), rng=rng)
            if replace(fcn, centre_half=0) != replace(FcnLayout.from_dict(man["fcn"]), centre_half=0):
                raise SystemExit(f"{old}: whole-file layout {fcn} differs from the source's {man['fcn']}")
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        info = {k: v for k, v in man.items() if k not in ("complete", "files", "versions", "finished", "manifest_version")}
        A.finish(work, final, {**info, "config": cfg.distill, "int8_file": quant, "fcn": fcn.to_dict(),
                               "reexported_from": old.name})
        print(f"member {member}: wrote {final} ({quant})")


if __name__ == "__main__":
    main()
