"""The student network: a small log-Mel CNN (or a CNN over token vectors), its layers and its size.

The student reads the project's own front end: one 5-s window of dB-scaled log-Mel frames at
32 kHz, hop 512, 128 bands -> ``[batch, n_frames=312, n_mels=128]`` float32 (values roughly
-80..0 after ``librosa.power_to_db(ref=max)``). It normalises inside the model with a fixed affine
map (``x / 20 + 2``: -80 dB -> -2, 0 dB -> +2), so the same numbers go in at training and at
inference and int8 input quantisation sees a fixed range.

The input is named :data:`INPUT_NAME` (in Keras and in the exported TFLite signature); the
inference graph keeps the outputs :data:`INFER_OUTPUTS`. The token front's layers are in
:mod:`vocalprint.student.token_front`. TensorFlow/Keras are imported inside functions so
``import vocalprint.student.net`` stays instant.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from vocalprint.config.student import StudentConfig
from vocalprint.student.token_front import running_half, token_front_layer, token_image

if TYPE_CHECKING:  # pragma: no cover
    import keras


BIRDNET_PARAMS = 12_900_000
"""Teacher size (BirdNET V2.4); the student must stay at or below a quarter of it."""

INPUT_NAME = "mels"
INFER_OUTPUTS = ("logits", "embedding")
FRONT_LAYER = "tokens"  # the token front's layer (kept in float by the "body" export)


def build_student(
    *,
    n_frames: int,
    n_mels: int,
    n_classes: int,
    teacher_emb_dim: int,
    n_meta: int,
    cfg: StudentConfig,
    codebooks: Sequence[tuple[int, int, np.ndarray, bool]] | None = None,
    token_half: int | None = None,
    token_span: tuple[int, int] | None = None,
    token_center: str | None = None,
) -> "keras.Model":
    """The student network: input ``mels`` ``[b, n_frames, n_mels]`` float32 (dB log-Mel).

    ``cfg.front == "tokens"`` needs ``codebooks`` (:func:`fit_token_books`): ``(lo, hi,
    centroids [K, hi - lo], standardise)`` per codebook over Mel bands ``[lo, hi)`` (see
    :func:`token_front`; ``token_half``: the running centre's frames either side, by default
    :func:`running_half` of ``n_frames``, and ``token_span`` the frames its boxes are cut to, set
    when the graph is a whole file; ``token_center`` the front's centre when not ``cfg.token_center``:
    ``"given"`` for an input already centred, :data:`~vocalprint.student.token_front.GIVEN`); the
    body is then, by ``cfg.token_body``, the 2-D body below
    over the [time, band group] image of token vectors (:func:`token_image`), or a 1-D CNN over
    time of ``depth`` stages [conv, BatchNorm, ReLU, 2x max-pool].

    Outputs, a dict of float32 tensors:
      ``logits``    ``[b, n_classes]``       competition species (use with sigmoid);
      ``embedding`` ``[b, cfg.emb_dim]``     the student embedding;
      ``emb_proj``  ``[b, teacher_emb_dim]`` linear projection of ``embedding`` onto the
                    (standardised) teacher embedding, training only;
      ``meta``      ``[b, n_meta]``          auxiliary metadata head, training only. Left out when
                    ``n_meta == 0`` or ``cfg.metadata`` is False (the ablation).
    Weights are initialised from ``cfg.seed`` (each layer its own derived seed).
    """
    import keras
    from keras import layers

    if n_frames < 8 or n_mels < 8:
        raise ValueError(f"input {n_frames}x{n_mels} too small")
    seeds = iter(range(cfg.seed * 1000 + 1, cfg.seed * 1000 + 1000))

    def init() -> Any:
        return keras.initializers.HeNormal(seed=next(seeds))

    def conv_bn_relu(x: Any, ch: int, stride: int, name: str) -> Any:
        x = layers.Conv2D(ch, 3, strides=stride, padding="same", use_bias=False,
                          kernel_initializer=init(), name=f"{name}_conv")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
        return layers.ReLU(name=f"{name}_relu")(x)

    inp = keras.Input((n_frames, n_mels), name=INPUT_NAME, dtype="float32")
    if cfg.front == "tokens":
        if not codebooks:
            raise ValueError("front='tokens' needs codebooks (fit_token_books)")
        front = token_front_layer()(codebooks, cfg.token_dim, seed=next(seeds), center=token_center or cfg.token_center,
                                     half=running_half(cfg, n_frames) if token_half is None else token_half,
                                     span=token_span,
                                     name=FRONT_LAYER)
        x = front(inp)
        if cfg.token_body == "1d":
            for i in range(cfg.depth):
                ch = cfg.width * 2 ** min(i, cfg.max_doublings)
                x = layers.Conv1D(ch, 5 if i == 0 else 3, padding="same", use_bias=False,
                                  kernel_initializer=init(), name=f"s{i}_conv")(x)
                x = layers.BatchNormalization(momentum=0.9, name=f"s{i}_bn")(x)
                x = layers.ReLU(name=f"s{i}_relu")(x)
                if x.shape[1] >= 4:
                    x = layers.MaxPooling1D(2, name=f"s{i}_pool")(x)
            return _heads(inp, x, n_classes=n_classes, teacher_emb_dim=teacher_emb_dim, n_meta=n_meta,
                          cfg=cfg, seeds=seeds)
        if cfg.token_body != "2d":
            raise ValueError(f"token_body {cfg.token_body!r}: use '1d' or '2d'")
        x = token_image(x, front.books, front.dims, n_frames)
    elif cfg.front != "mel":
        raise ValueError(f"front {cfg.front!r}: use 'mel' or 'tokens'")
    else:
        x = layers.Rescaling(1.0 / 20.0, offset=2.0, name="db_affine")(inp)  # -80..0 dB -> -2..2
        x = layers.Reshape((n_frames, n_mels, 1), name="to_image")(x)
        if cfg.band_norm:  # 2nd channel: the window with each band's mean over time removed
            x = band_norm_layer()(name="band_norm")(x)
    if cfg.freq_coord:  # 2nd channel = mel-band position in -1..1: convs can tell bands apart
        x = _freq_coord_layer()(name="freq_coord")(x)
    if cfg.stem == "stride4":  # one 5x5 conv, stride 4: no full-resolution activations
        x = layers.Conv2D(cfg.width, 5, strides=4 if cfg.front == "mel" else (4, 1), padding="same", use_bias=False,
                          kernel_initializer=init(), name="stem_conv")(x)
        x = layers.BatchNormalization(momentum=0.9, name="stem_bn")(x)
        x = layers.ReLU(name="stem_relu")(x)
    elif cfg.stem == "conv_pool":  # 3x3 conv stride 2, then 2x2 max-pool
        x = conv_bn_relu(x, cfg.width, 2, "stem")
        x = layers.MaxPooling2D(2, name="stem_pool")(x)
    elif cfg.stem == "conv":  # 3x3 conv stride 2 only (4x the downstream pixels)
        x = conv_bn_relu(x, cfg.width, 2, "stem")
    else:
        raise ValueError(f"stem {cfg.stem!r}: use 'stride4', 'conv_pool' or 'conv'")
    for i in range(cfg.depth):
        ch = cfg.width * 2 ** min(i, cfg.max_doublings)
        for j in range(cfg.convs):
            x = conv_bn_relu(x, ch, 1, f"s{i}c{j}")
        if x.shape[1] >= 4 and x.shape[2] >= 4:
            x = layers.MaxPooling2D(2, name=f"s{i}_pool")(x)
    _, t_out, f_out, ch_out = x.shape
    if cfg.freq_pool == "learned":  # per-channel weights over frequency positions, init = mean
        x = layers.DepthwiseConv2D((1, f_out), padding="valid", use_bias=False,
                                   depthwise_initializer=keras.initializers.Constant(1 / f_out),
                                   name="freq_pool")(x)
    elif cfg.freq_pool == "mean":
        x = layers.AveragePooling2D((1, f_out), name="freq_pool")(x)
    else:
        raise ValueError(f"freq_pool {cfg.freq_pool!r}: use 'learned' or 'mean'")
    x = layers.Reshape((t_out, ch_out), name="freq_squeeze")(x)  # [b, t, ch]
    return _heads(inp, x, n_classes=n_classes, teacher_emb_dim=teacher_emb_dim, n_meta=n_meta,
                  cfg=cfg, seeds=seeds)


def _heads(inp: Any, x: Any, *, n_classes: int, teacher_emb_dim: int, n_meta: int, cfg: StudentConfig,
           seeds: Any) -> "keras.Model":
    """Mean + max over time of ``x`` ``[b, t, ch]`` -> the ``embedding`` and the heads."""
    import keras
    from keras import layers

    init = lambda: keras.initializers.HeNormal(seed=next(seeds))  # noqa: E731
    h = layers.Concatenate(name="time_pool")(
        [layers.GlobalAveragePooling1D(name="time_mean")(x),
         layers.GlobalMaxPooling1D(name="time_max")(x)])
    e = layers.Dense(cfg.emb_dim, kernel_initializer=init(), name="emb_dense")(h)
    e = layers.ReLU(name="embedding")(e)
    d = layers.Dropout(cfg.dropout, seed=next(seeds), name="drop")(e) if cfg.dropout else e
    glorot = lambda: keras.initializers.GlorotUniform(seed=next(seeds))  # noqa: E731
    outputs = {
        "logits": layers.Dense(n_classes, kernel_initializer=glorot(), name="logits")(d),
        "embedding": e,
        "emb_proj": layers.Dense(teacher_emb_dim, kernel_initializer=glorot(),
                                 name="emb_proj")(e),
    }
    if n_meta > 0 and cfg.metadata:
        outputs["meta"] = layers.Dense(n_meta, kernel_initializer=glorot(), name="meta")(e)
    return keras.Model(inp, outputs, name="vocalprint_student")


_FREQ_COORD: Any = None


def _freq_coord_layer() -> Any:
    """Keras layer class (created once, lazily): ``[b, T, M, C]`` -> ``[b, T, M, C + 1]`` with the
    last channel a constant ramp -1..1 over the M mel bands."""
    global _FREQ_COORD
    if _FREQ_COORD is None:
        import keras

        @keras.saving.register_keras_serializable(package="vocalprint")
        class FreqCoord(keras.layers.Layer):
            def call(self, x: Any) -> Any:
                m = x.shape[2]
                ramp = np.linspace(-1.0, 1.0, m, dtype=np.float32).reshape(1, 1, m, 1)
                coord = keras.ops.zeros_like(x[..., :1]) + keras.ops.convert_to_tensor(ramp)
                return keras.ops.concatenate([x, coord], axis=-1)

            def compute_output_shape(self, shape: tuple) -> tuple:
                return (*shape[:-1], shape[-1] + 1)

        _FREQ_COORD = FreqCoord
    return _FREQ_COORD


_BAND_NORM: Any = None


def band_norm_layer() -> Any:
    """Keras layer class (created once, lazily): ``[b, T, M, 1]`` -> ``[b, T, M, 2]`` with the
    second channel the first minus its mean over time per mel band (stationary background removed)."""
    global _BAND_NORM
    if _BAND_NORM is None:
        import keras

        @keras.saving.register_keras_serializable(package="vocalprint")
        class BandNorm(keras.layers.Layer):
            def call(self, x: Any) -> Any:
                return keras.ops.concatenate([x, x - keras.ops.mean(x, axis=1, keepdims=True)], axis=-1)

            def compute_output_shape(self, shape: tuple) -> tuple:
                return (*shape[:-1], shape[-1] + 1)

        _BAND_NORM = BandNorm
    return _BAND_NORM


def count_params(model: Any) -> int:
    """All weights (trainable and not) of a Keras model."""
    return int(model.count_params())


def inference_params(model: Any) -> int:
    """Weights the exported inference graph keeps (without ``emb_proj`` and ``meta``)."""
    drop = sum(model.get_layer(n).count_params() for n in ("emb_proj", "meta")
               if n in {lay.name for lay in model.layers})
    return count_params(model) - int(drop)
