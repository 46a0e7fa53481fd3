"""A small stand-in for BirdNET V2.4, so no test needs the real model: a TFLite file with BirdNET's
input ``[batch, 144000]`` (3 s at 48 kHz), logits ``[batch, n_labels]`` (6,522 like BirdNET by
default) and a 1,024-d pre-classifier embedding (the input of the last FULLY_CONNECTED op, which
:func:`vocalprint.teacher.surgery.expose_embedding` finds), with a BirdNET-format label file."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np


def birdnet_labels(first: list[tuple[str, str]], n: int = 6522) -> list[str]:
    """``Scientific_Common`` lines: ``first`` then made-up species up to ``n`` lines."""
    out = [f"{s}_{c}" for s, c in first]
    out += [f"Standinia species{i}_Stand-in Bird {i}" for i in range(n - len(out))]
    return out


def make_birdnet_standin(folder: Path, labels: list[str], *, bias: dict[int, float] | None = None,
                         seed: int = 0) -> tuple[Path, Path]:
    """Write ``model.tflite`` and ``labels.txt`` into ``folder``; returns their paths.

    The network: 250 frames of 576 samples -> Dense(32, relu) -> mean over frames -> Dense(1024,
    relu) = embedding -> Dense(len(labels)) = logits, seeded weights. ``bias`` {label index: value}
    sets the logit biases (others -8) with the last kernel scaled down, so a test can make the
    stand-in "hear" chosen species everywhere."""
    import keras
    import tensorflow as tf
    from keras import layers

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(seed)
    inp = keras.Input((144000,), name="INPUT")
    x = layers.Reshape((250, 576))(inp)
    x = layers.Dense(32, activation="relu")(x)
    x = layers.GlobalAveragePooling1D(name="frame_mean")(x)
    emb = layers.Dense(1024, activation="relu", name="GLOBAL_AVG_POOL")(x)  # named as in BirdNET
    out = layers.Dense(len(labels), name="CLASS_DENSE_LAYER")(emb)
    model = keras.Model(inp, out)
    if bias is not None:
        k, b = model.get_layer("CLASS_DENSE_LAYER").get_weights()
        b = np.full_like(b, -8.0)
        for i, v in bias.items():
            b[i] = v
        model.get_layer("CLASS_DENSE_LAYER").set_weights([k * 0.01, b])

    def serve(x):  # type: ignore[no-untyped-def]
        return model(x, training=False)

    sm = tempfile.mkdtemp(prefix="standin_sm_")
    try:
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint("serve", serve, input_signature=[tf.TensorSpec([None, 144000], tf.float32)])
        archive.write_out(sm, verbose=False)
        conv = tf.lite.TFLiteConverter.from_saved_model(sm, signature_keys=["serve"])
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        blob = conv.convert()
    finally:
        shutil.rmtree(sm, ignore_errors=True)
    (folder / "model.tflite").write_bytes(blob)
    (folder / "labels.txt").write_text("\n".join(labels) + "\n")
    return folder / "model.tflite", folder / "labels.txt"
