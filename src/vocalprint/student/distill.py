"""Distil BirdNET V2.4 into a small log-Mel CNN student; train it, export it to TFLite, run it.

The student reads the project's own front end: one 5-s window of dB-scaled log-Mel frames at
32 kHz, hop 512, 128 bands -> ``[batch, n_frames=312, n_mels=128]`` float32 (values roughly
-80..0 after ``librosa.power_to_db(ref=max)``). It normalises inside the model with a fixed affine
map (``x / 20 + 2``: -80 dB -> -2, 0 dB -> +2), so the same numbers go in at training and at
inference and int8 input quantisation sees a fixed range.

Training targets (all as numpy arrays, NaN = missing -> masked out of its loss):

1. ``teacher_emb`` ``[n, D]``: the teacher's embedding (BirdNET: D = 1024). Standardised per
   dimension on the training set, regressed through the ``emb_proj`` head (MSE, or cosine).
   This is the only teacher representation we have, so the "layer-to-layer" term of BioME reduces
   to this last-layer term: no intermediate BirdNET activations are matched.
2. ``teacher_logits`` ``[n, C]``: teacher logits of the competition species it knows. Soft-target
   loss = Bernoulli KL( sigmoid(t/T) || sigmoid(s/T) ) * T^2, i.e. the BCE of sigmoid(s/T)
   against sigmoid(t/T) minus the (constant) entropy of the target, so it is 0 at a perfect match;
   T^2 keeps its gradient on the scale of the T = 1 loss.
3. ``labels`` ``[n, C]``: 0/1 ground truth, multi-label BCE on the student logits (sigmoid).
4. ``meta`` ``[n, K]``: metadata targets (e.g. lat/lon as unit xyz, month as sin/cos): MSE
   through the auxiliary ``meta`` head, which inference never uses (MetaPerch).

Every loss is the mean over its valid (finite-target) entries in the batch; a batch with none
contributes 0. TensorFlow/Keras are imported inside functions so ``import vocalprint.student.distill``
stays instant.
"""
from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import keras

log = logging.getLogger(__name__)

BIRDNET_PARAMS = 12_900_000
"""Teacher size (BirdNET V2.4); the student must stay at or below a quarter of it."""

_INPUT_NAME = "mels"
_INFER_OUTPUTS = ("logits", "embedding")


from vocalprint.config.student import StudentConfig


# ----------------------------------------------------------------------------------------------
# network


def build_student(
    *,
    n_frames: int,
    n_mels: int,
    n_classes: int,
    teacher_emb_dim: int,
    n_meta: int,
    cfg: StudentConfig,
    codebooks: Sequence[tuple[int, int, np.ndarray, bool]] | None = None,
) -> "keras.Model":
    """The student network: input ``mels`` ``[b, n_frames, n_mels]`` float32 (dB log-Mel).

    ``cfg.front == "tokens"`` needs ``codebooks`` (:func:`fit_token_books`): ``(lo, hi,
    centroids [K, hi - lo], standardise)`` per codebook over Mel bands ``[lo, hi)`` (see
    :func:`token_front`); the body is then, by ``cfg.token_body``, the 2-D body below over the
    [time, band group] image of token vectors (:func:`_token_image`), or a 1-D CNN over time of
    ``depth`` stages [conv, BatchNorm, ReLU, 2x max-pool].

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

    inp = keras.Input((n_frames, n_mels), name=_INPUT_NAME, dtype="float32")
    if cfg.front == "tokens":
        if not codebooks:
            raise ValueError("front='tokens' needs codebooks (fit_token_books)")
        front = _token_front_layer()(codebooks, cfg.token_dim, seed=next(seeds), center=cfg.token_center,
                                     name="tokens")
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
        x = _token_image(x, front.books, front.dims, n_frames)
    elif cfg.front != "mel":
        raise ValueError(f"front {cfg.front!r}: use 'mel' or 'tokens'")
    else:
        x = layers.Rescaling(1.0 / 20.0, offset=2.0, name="db_affine")(inp)  # -80..0 dB -> -2..2
        x = layers.Reshape((n_frames, n_mels, 1), name="to_image")(x)
        if cfg.band_norm:  # 2nd channel: the window with each band's mean over time removed
            x = _band_norm_layer()(name="band_norm")(x)
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


def _whole_frame(books: Sequence) -> list[bool]:
    """Which codebooks cover the whole frame beside narrower band groups (all False when every
    codebook is as wide as the widest: band groups alone, or one whole-frame codebook)."""
    widths = [hi - lo for lo, hi, *_ in books]
    return [w == max(widths) and min(widths) < w for w in widths]


def _token_image(x: Any, books: list, dims: list, n_frames: int) -> Any:
    """Token vectors ``[b, T, D]`` -> ``[b, T, G, C]``: the G band groups' vectors as an image, each
    group's channels followed by the whole-frame vectors (repeated at every group)."""
    import keras
    from keras import layers

    whole = _whole_frame(books)
    full = [i for i, w in enumerate(whole) if w]
    groups = [i for i, w in enumerate(whole) if not w]
    if len({dims[i] for i in groups}) != 1:
        raise ValueError("token_body='2d' needs band groups of equal token dimensions")
    off = np.concatenate([[0], np.cumsum(dims)])
    d = dims[groups[0]]
    g = layers.Reshape((n_frames, len(groups), d), name="token_image")(x[..., int(off[groups[0]]):int(off[groups[-1] + 1])])
    if full:
        f = x[..., int(off[full[0]]):int(off[full[0] + 1])]
        f = keras.ops.repeat(layers.Reshape((n_frames, 1, dims[full[0]]), name="frame_token")(f), len(groups), axis=2)
        g = layers.Concatenate(axis=-1, name="token_channels")([g, f])
    return g


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


_TOKEN_FRONT: Any = None


def token_features(x: np.ndarray, lo: int, hi: int, standardise: bool, center: str = "median") -> np.ndarray:
    """dB windows ``[b, T, M]`` -> the features one codebook clusters, ``[b, T, hi - lo]``: bands
    ``[lo, hi)`` minus each band's median (or mean) over the window; then, if ``standardise``,
    each frame z-scored over its bands (:func:`vocalprint.tokens.codebook.frame_features`)."""
    v = np.asarray(x, np.float32)[:, :, lo:hi]
    if center not in ("median", "mean"):
        raise ValueError(f"token_center {center!r}: use 'median' or 'mean'")
    v = v - (np.median(v, axis=1, keepdims=True) if center == "median" else v.mean(axis=1, keepdims=True))
    if standardise:
        v = (v - v.mean(-1, keepdims=True)) / (v.std(-1, keepdims=True) + 1e-3)
    return v


def _stages(centroids: np.ndarray) -> np.ndarray:
    """A codebook's centroids as residual stages ``[S, K, d]`` (one stage when given ``[K, d]``)."""
    c = np.asarray(centroids, np.float32)
    return c if c.ndim == 3 else c[None]


def token_front(x: np.ndarray, lo: int, hi: int, centroids: np.ndarray, standardise: bool = True,
                center: str = "median") -> np.ndarray:
    """NumPy reference of one codebook of the token front: dB windows ``[b, T, M]`` -> token ids
    ``[b, T]`` (nearest centroid of :func:`token_features`); with residual stages (``centroids``
    ``[S, K, d]``) ids ``[b, T, S]``, stage s + 1 the nearest centroid to what stage s left."""
    v = token_features(x, lo, hi, standardise, center)
    ids = []
    for cs in _stages(centroids):
        ids.append(np.argmax(v @ cs.T - 0.5 * (cs * cs).sum(1), axis=-1))
        v = v - cs[ids[-1]]
    return np.stack(ids, axis=-1) if np.ndim(centroids) == 3 else ids[0]


def token_books_spec(n_mels: int, cfg: StudentConfig) -> list[tuple[int, int, int, bool]]:
    """``(lo, hi, K, standardise)`` of every codebook ``cfg`` asks for."""
    g = int(cfg.token_groups)
    if g < 0 or (g and n_mels % g):
        raise ValueError(f"token_groups={g}: must divide the {n_mels} Mel bands")
    out = [(0, n_mels, int(cfg.token_k_frame), True)] if cfg.token_k_frame > 0 else []
    w = n_mels // g if g else 0
    out += [(i * w, (i + 1) * w, int(cfg.token_k), not cfg.token_level) for i in range(g)]
    if not out:
        raise ValueError("token_k_frame=0 and token_groups=0: the token front has no codebook")
    return out


def fit_token_books(windows: np.ndarray, cfg: StudentConfig, *, progress: bool = False) -> list[tuple]:
    """Faiss K-means codebooks of :func:`token_books_spec` on ``cfg.token_sample`` frames of
    ``windows`` ``[n, T, M]`` dB (may be a memmap: only the sampled windows are read), picked
    with ``cfg.seed``. Returns ``(lo, hi, centroids float32 [K, hi - lo], standardise)``; with
    ``cfg.token_stages`` S > 1 the centroids are ``[S, K, hi - lo]``, stage s > 0 fitted on the
    residuals stage s - 1 leaves."""
    import faiss

    from vocalprint.core.parallel import progress_bar

    n, t, m = windows.shape
    rng = np.random.default_rng(cfg.seed)
    per = max(1, min(t, 32))  # frames taken from each sampled window
    wi = np.sort(rng.choice(n, min(n, -(-cfg.token_sample // per)), replace=False))
    spec = token_books_spec(m, cfg)
    feats: dict[tuple, list] = {(lo, hi, st): [] for lo, hi, _, st in spec}
    for s in range(0, len(wi), 256):
        w = np.asarray(windows[wi[s:s + 256]], np.float32)
        fi = rng.integers(0, t, (len(w), per))
        for lo, hi, st in feats:
            f = token_features(w, lo, hi, st, cfg.token_center)
            feats[(lo, hi, st)].append(f[np.arange(len(w))[:, None], fi].reshape(-1, hi - lo))
    out = []
    bar = progress_bar(len(spec), desc="token codebooks", enabled=progress)
    stages = int(cfg.token_stages)
    if stages < 1:
        raise ValueError(f"token_stages={stages}: need at least 1")
    for i, (lo, hi, k, st) in enumerate(spec):
        x = np.ascontiguousarray(np.concatenate(feats[(lo, hi, st)]), np.float32)
        cs = []
        for s in range(stages):  # stage s > 0 clusters the residuals of stage s - 1
            km = faiss.Kmeans(hi - lo, min(k, len(x)), niter=20, seed=cfg.seed + i + 1000 * s)
            km.train(x)
            cs.append(np.asarray(km.centroids, np.float32).copy())
            if s + 1 < stages:
                x = np.ascontiguousarray(x - cs[-1][km.index.search(x, 1)[1][:, 0]])
        out.append((lo, hi, np.stack(cs) if stages > 1 else cs[0], st))
        bar.update()
    bar.close()
    return out


def _token_front_layer() -> Any:
    """Keras layer class (created once, lazily): dB windows ``[b, T, M]`` -> ``[b, T, D]``, the
    concatenated learned vectors of each frame's token in every codebook (as :func:`token_front`,
    in-graph; the centroids are constants, only the token vectors are trained)."""
    global _TOKEN_FRONT
    if _TOKEN_FRONT is None:
        import keras

        @keras.saving.register_keras_serializable(package="vocalprint")
        class TokenFront(keras.layers.Layer):
            def __init__(self, codebooks: Sequence, dim: int, seed: int = 0, center: str = "median",
                         **kw: Any) -> None:
                super().__init__(**kw)
                if center not in ("median", "mean"):
                    raise ValueError(f"token_center {center!r}: use 'median' or 'mean'")
                self.center = center
                self.books = [(int(lo), int(hi), np.asarray(c, np.float32), bool(st)) for lo, hi, c, st in codebooks]
                self.stages = [_stages(c) for _, _, c, _ in self.books]  # [S, K, d] each
                # a whole-frame codebook gets twice the dimensions of a band group's
                self.dims = [dim * (2 if w else 1) for w in _whole_frame(self.books)]
                self.seed = seed

            def build(self, shape: tuple) -> None:
                # residual stages share one table: stage s's ids are offset by s K
                self.tables = [self.add_weight(shape=(c.shape[0] * c.shape[1], d), name=f"vectors{i}",
                                               initializer=keras.initializers.RandomNormal(0.0, 0.5, seed=self.seed + i))
                               for i, (c, d) in enumerate(zip(self.stages, self.dims))]

            def call(self, x: Any) -> Any:
                import tensorflow as tf  # tf.gather, not keras.ops.take: the latter adds BitwiseAnd (no TFLite op)

                ops = keras.ops
                t = x.shape[1]
                if self.center == "median":  # from the top half over time (TOPK_V2 in TFLite), once for all bands
                    k = t // 2 + 1
                    top = ops.top_k(ops.transpose(x, (0, 2, 1)), k, sorted=True)[0]  # [b, bands, k]
                    c0 = top[..., k - 1] if t % 2 else 0.5 * (top[..., k - 2] + top[..., k - 1])
                else:
                    c0 = ops.mean(x, axis=1)
                xc = x - c0[:, None, :]
                out = []
                for (lo, hi, _, st), stages, tab in zip(self.books, self.stages, self.tables):
                    v = xc[:, :, lo:hi]
                    if st:
                        mu = ops.mean(v, axis=-1, keepdims=True)
                        sd = ops.sqrt(ops.mean(ops.square(v - mu), axis=-1, keepdims=True))
                        v = (v - mu) / (sd + 1e-3)
                    vec = None
                    for s, cs in enumerate(stages):
                        score = ops.matmul(v, ops.convert_to_tensor(cs.T)) - ops.convert_to_tensor(0.5 * (cs * cs).sum(1))
                        ids = tf.argmax(score, axis=-1, output_type=tf.int32)
                        e = tf.gather(tab, ids + s * cs.shape[0] if s else ids)
                        vec = e if vec is None else vec + e
                        if s + 1 < len(stages):  # what this stage left, for the next
                            v = v - tf.gather(ops.convert_to_tensor(cs), ids)
                    out.append(vec)
                return ops.concatenate(out, axis=-1) if len(out) > 1 else out[0]

            def compute_output_shape(self, shape: tuple) -> tuple:
                return (shape[0], shape[1], sum(self.dims))

        _TOKEN_FRONT = TokenFront
    return _TOKEN_FRONT


_BAND_NORM: Any = None


def _band_norm_layer() -> Any:
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


# ----------------------------------------------------------------------------------------------
# losses (TensorFlow)


def _masked_mean(values: Any, valid: Any) -> Any:
    import tensorflow as tf

    v = tf.cast(valid, values.dtype)
    return tf.math.divide_no_nan(tf.reduce_sum(values * v), tf.reduce_sum(v))


def _losses(out: dict, t_emb: Any, t_log: Any, y: Any, m: Any, *, temperature: float,
            emb_loss: str, has_meta: bool) -> dict:
    """Per-batch losses (scalars); NaN targets are masked element-wise."""
    import tensorflow as tf

    res = {}
    # (1) embedding regression; target already standardised, NaN rows masked
    ok = tf.reduce_all(tf.math.is_finite(t_emb), axis=1)
    te = tf.where(tf.math.is_finite(t_emb), t_emb, 0.0)
    p = out["emb_proj"]
    if emb_loss == "cosine":
        per = 1.0 - tf.reduce_sum(tf.math.l2_normalize(p, 1) * tf.math.l2_normalize(te, 1), 1)
    else:
        per = tf.reduce_mean(tf.square(p - te), axis=1)
    res["emb"] = _masked_mean(per, ok)
    # (2) soft targets: Bernoulli KL(sigmoid(t/T) || sigmoid(s/T)) * T^2
    s = out["logits"]
    ok = tf.math.is_finite(t_log)
    tt = tf.where(ok, t_log, 0.0) / temperature
    q = tf.sigmoid(tt)
    bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=q, logits=s / temperature)
    ent = tf.nn.sigmoid_cross_entropy_with_logits(labels=q, logits=tt)
    res["soft"] = _masked_mean(bce - ent, ok) * temperature**2
    # (3) ground truth labels, multi-label BCE
    ok = tf.math.is_finite(y)
    yy = tf.where(ok, y, 0.0)
    res["label"] = _masked_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=yy, logits=s), ok)
    # (4) metadata
    if has_meta:
        ok = tf.math.is_finite(m)
        mm = tf.where(ok, m, 0.0)
        res["meta"] = _masked_mean(tf.square(out["meta"] - mm), ok)
    return res


def _augment(x: Any, gen: Any, cfg: StudentConfig) -> Any:
    """SpecAugment on ``x`` ``[b, T, M]`` (dB): random gain, time and frequency masks.

    Masked cells are set to each example's mean level. ``gen`` is a ``tf.random.Generator``.
    """
    import tensorflow as tf

    b = tf.shape(x)[0]
    n_t, n_m = x.shape[1], x.shape[2]
    if cfg.gain_db > 0:
        x = x + gen.uniform([b, 1, 1], -cfg.gain_db, cfg.gain_db)
    fill = tf.reduce_mean(x, axis=[1, 2], keepdims=True)

    def masks(n: int, max_w: int, size: int) -> Any:  # [b, size] bool, True = masked
        if n <= 0 or max_w <= 0:
            return tf.zeros([b, size], tf.bool)
        w = gen.uniform([b, n], 0, max_w + 1, dtype=tf.int32)
        start = tf.cast(gen.uniform([b, n]) * tf.cast(size - w, tf.float32), tf.int32)
        r = tf.range(size)[None, None, :]
        hit = (r >= start[:, :, None]) & (r < (start + w)[:, :, None])
        return tf.reduce_any(hit, axis=1)

    mt = masks(cfg.time_masks, min(cfg.time_mask_max, n_t // 4), n_t)
    mf = masks(cfg.freq_masks, min(cfg.freq_mask_max, n_m // 4), n_m)
    hide = mt[:, :, None] | mf[:, None, :]
    return tf.where(hide, fill, x)


# ----------------------------------------------------------------------------------------------
# training


def pair_up(b: list, other: list, hit: np.ndarray) -> None:
    """Sum the windows of batch ``b`` (x dB, teacher emb, teacher logits, labels, meta) with those
    of ``other`` where ``hit``, in place: power sum of the dB spectrograms; logits and labels the
    element-wise max (NaN stays NaN: an unknown stays unknown); embedding and metadata targets NaN
    (the teacher's embedding of the sum is not known)."""
    if not hit.any():
        return
    x, te, tl, y, m = b
    xo, _, tlo, yo, _ = other
    x[hit] = 10.0 * np.log10(10.0 ** (x[hit] / 10.0) + 10.0 ** (xo[hit] / 10.0))
    te[hit] = np.nan
    tl[hit] = np.maximum(tl[hit], tlo[hit])
    y[hit] = np.maximum(y[hit], yo[hit])
    m[hit] = np.nan


def _check(name: str, a: np.ndarray | None, n: int, ndim: int = 2) -> None:
    if a is None:
        return
    if a.shape[0] != n or a.ndim != ndim:
        raise ValueError(f"{name}: shape {a.shape}, expected {n} rows and {ndim} dims")


def _standardise_stats(t_emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ok = np.isfinite(t_emb).all(axis=1)
    if not ok.any():
        raise ValueError("teacher_emb: no finite row")
    e = t_emb[ok].astype(np.float64)
    mu = e.mean(0)
    var = e.var(0)
    sd = np.sqrt(var + 1e-4 * max(float(var.mean()), 1e-12))
    return mu.astype(np.float32), sd.astype(np.float32)


def train_student(
    mels: np.ndarray,
    *,
    teacher_emb: np.ndarray,
    teacher_logits: np.ndarray,
    labels: np.ndarray,
    meta: np.ndarray | None,
    val: tuple | None = None,
    cfg: StudentConfig = StudentConfig(),
    progress: bool = True,
    codebooks: Sequence[tuple[int, int, np.ndarray, bool]] | None = None,
) -> tuple["keras.Model", dict]:
    """Train a fresh student (see :func:`build_student`) by distillation + supervision.

    ``mels`` ``[n, n_frames, n_mels]`` float32/float16 (may be a memmap: batches are gathered
    one at a time); ``teacher_emb`` ``[n, D]``; ``teacher_logits`` ``[n, C]`` (NaN where the
    teacher does not know a species, or whole NaN rows); ``labels`` ``[n, C]`` 0/1 (NaN rows
    where unlabeled); ``meta`` ``[n, K]`` or None (NaN = missing). ``val`` is an optional tuple
    ``(mels, teacher_emb, teacher_logits, labels, meta)`` in the same form.

    Returns ``(model, history)``: history holds per-epoch lists ``loss``, ``emb``, ``soft``,
    ``label``, ``meta`` (training batches, augmented) and ``val_*`` the same on ``val``
    (no augmentation, inference mode), plus ``seconds``, ``windows_per_s``, ``params``,
    ``teacher_emb_mean``/``teacher_emb_std`` (the standardisation used for ``emb_proj``) and
    ``config``. The last epoch's weights are returned.
    """
    import keras
    import tensorflow as tf

    n, n_frames, n_mels = mels.shape
    _check("teacher_emb", teacher_emb, n)
    _check("teacher_logits", teacher_logits, n)
    _check("labels", labels, n)
    _check("meta", meta, n)
    if teacher_logits.shape[1] != labels.shape[1]:
        raise ValueError("teacher_logits and labels must have the same species columns")
    n_classes = labels.shape[1]
    has_meta = meta is not None and meta.shape[1] > 0 and cfg.metadata and cfg.w_meta > 0
    n_meta = meta.shape[1] if has_meta else 0
    if cfg.emb_loss not in ("mse", "cosine"):
        raise ValueError(f"emb_loss {cfg.emb_loss!r}: use 'mse' or 'cosine'")

    if not any(w > 0 for w in (cfg.w_emb, cfg.w_soft, cfg.w_label)):
        raise ValueError("w_emb, w_soft and w_label are all 0: nothing to train the student on")
    mu, sd = _standardise_stats(teacher_emb)
    if cfg.front == "tokens" and codebooks is None:
        t_books = time.perf_counter()
        codebooks = fit_token_books(mels, cfg, progress=progress)
        log.info("student: %d token codebooks fitted in %.1f s", len(codebooks), time.perf_counter() - t_books)
    model = build_student(n_frames=n_frames, n_mels=n_mels, n_classes=n_classes,
                          teacher_emb_dim=teacher_emb.shape[1], n_meta=n_meta, cfg=cfg, codebooks=codebooks)
    n_par = count_params(model)
    bs = min(cfg.batch, n)
    steps = n // bs  # drop the ragged tail: fixed shapes, no tiny BatchNorm batches
    total = max(1, steps * cfg.epochs)
    warm = int(min(total // 2, round(cfg.warmup_epochs * steps)))
    sched = keras.optimizers.schedules.CosineDecay(
        0.0 if warm else cfg.lr, decay_steps=max(1, total - warm), alpha=0.0,
        warmup_target=cfg.lr if warm else None, warmup_steps=warm)
    opt = keras.optimizers.AdamW(learning_rate=sched, weight_decay=cfg.weight_decay,
                                 clipnorm=5.0)
    gen = tf.random.Generator.from_seed(cfg.seed)
    weights = {"emb": cfg.w_emb, "soft": cfg.w_soft, "label": cfg.w_label,
               "meta": cfg.w_meta if has_meta else 0.0}
    lkw = dict(temperature=cfg.temperature, emb_loss=cfg.emb_loss, has_meta=has_meta)
    log.info("student: %d params (%d at inference), %d windows, %d steps/epoch, meta=%s",
             n_par, inference_params(model), n, steps, has_meta)

    spec = [tf.TensorSpec([None, n_frames, n_mels], tf.float32),
            tf.TensorSpec([None, teacher_emb.shape[1]], tf.float32),
            tf.TensorSpec([None, n_classes], tf.float32),
            tf.TensorSpec([None, n_classes], tf.float32),
            tf.TensorSpec([None, max(n_meta, 1)], tf.float32)]

    def weighted(ls: dict) -> Any:
        return tf.add_n([weights[k] * v for k, v in ls.items() if weights[k] != 0.0]
                        or [tf.constant(0.0)])

    @tf.function(input_signature=spec)
    def train_step(x, te, tl, y, m):  # type: ignore[no-untyped-def]
        if cfg.specaugment:
            x = _augment(x, gen, cfg)
        with tf.GradientTape() as tape:
            out = model(x, training=True)
            ls = _losses(out, te, tl, y, m, **lkw)
            loss = weighted(ls)
        vs = model.trainable_variables
        grads = tape.gradient(loss, vs)  # None for a head whose loss weight is 0: skip it
        opt.apply_gradients([(g, v) for g, v in zip(grads, vs) if g is not None])
        ls["loss"] = loss
        return ls

    @tf.function(input_signature=spec)
    def eval_step(x, te, tl, y, m):  # type: ignore[no-untyped-def]
        out = model(x, training=False)
        ls = _losses(out, te, tl, y, m, **lkw)
        ls["loss"] = weighted(ls)
        return ls

    def batch(arrs: tuple, idx: np.ndarray) -> list:
        x, te, tl, y, m = arrs
        b = [np.asarray(x[idx], np.float32), (np.asarray(te[idx], np.float32) - mu) / sd,
             np.asarray(tl[idx], np.float32), np.asarray(y[idx], np.float32)]
        b.append(np.asarray(m[idx], np.float32) if has_meta
                 else np.zeros((len(idx), 1), np.float32))
        return b

    def train_batch(idx: np.ndarray) -> list:
        b = batch(train_arrs, idx)
        if cfg.mix_pairs > 0:
            pair_up(b, batch(train_arrs, np.sort(rng.integers(0, n, len(idx)))), rng.random(len(idx)) < cfg.mix_pairs)
        return b

    keys = ["loss", "emb", "soft", "label"] + (["meta"] if has_meta else [])
    hist: dict[str, Any] = {k: [] for k in keys}
    if val is not None:
        hist.update({f"val_{k}": [] for k in keys})
        if len(val) not in (4, 5):
            raise ValueError("val: (mels, teacher_emb, teacher_logits, labels[, meta])")
        vx = val[0]
        if tuple(vx.shape[1:]) != (n_frames, n_mels):
            raise ValueError(f"val mels shape {vx.shape} does not match {mels.shape}")
        for name, a in zip(("teacher_emb", "teacher_logits", "labels"), val[1:4]):
            _check(f"val {name}", a, len(vx))
        vm = val[4] if len(val) == 5 else None
        if has_meta and vm is None:
            vm = np.full((len(vx), n_meta), np.nan, np.float32)
        val_arrs = (vx, val[1], val[2], val[3], vm)
    train_arrs = (mels, teacher_emb, teacher_logits, labels, meta)
    rng = np.random.default_rng(cfg.seed)
    bar = None
    if progress:
        from vocalprint.core.parallel import progress_bar  # the project's bar: off when stderr is not a terminal

        bar = progress_bar(total, desc="student")
    t0 = time.perf_counter()
    ep_s: list[float] = []
    for ep in range(cfg.epochs):
        t_ep = time.perf_counter()
        perm = rng.permutation(n)
        sums = {k: 0.0 for k in keys}
        for s in range(steps):
            idx = np.sort(perm[s * bs:(s + 1) * bs])
            ls = train_step(*train_batch(idx))
            for k in keys:
                sums[k] += float(ls[k])
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{float(ls['loss']):.4f}", epoch=ep + 1)
        ep_s.append(time.perf_counter() - t_ep)
        for k in keys:
            hist[k].append(sums[k] / max(1, steps))
        msg = " ".join(f"{k}={hist[k][-1]:.4f}" for k in keys)
        if val is not None:
            vs = _evaluate(eval_step, val_arrs, batch, keys, bs)
            for k in keys:
                hist[f"val_{k}"].append(vs[k])
            msg += " | val " + " ".join(f"{k}={vs[k]:.4f}" for k in keys)
        log.info("epoch %d/%d %s (%.1f s)", ep + 1, cfg.epochs, msg,
                 time.perf_counter() - t_ep)
    if bar is not None:
        bar.close()
    hist["seconds"] = time.perf_counter() - t0
    hist["epoch_seconds"] = ep_s  # training batches only (no validation)
    steady = ep_s[1:] or ep_s  # the first epoch also traces the graph
    hist["windows_per_s"] = steps * bs * len(steady) / max(sum(steady), 1e-9)
    hist["params"] = n_par
    hist["teacher_emb_mean"] = mu
    hist["teacher_emb_std"] = sd
    hist["config"] = asdict(cfg)
    return model, hist


def _evaluate(step: Any, arrs: tuple, batch: Any, keys: list, bs: int) -> dict:
    """Losses on ``arrs`` averaged over windows (batch means weighted by batch size)."""
    n = len(arrs[0])
    sums = {k: 0.0 for k in keys}
    for s in range(0, n, bs):
        idx = np.arange(s, min(n, s + bs))
        ls = step(*batch(arrs, idx))
        for k in keys:
            sums[k] += float(ls[k]) * len(idx)
    return {k: v / max(1, n) for k, v in sums.items()}


def predict_keras(model: Any, mels: np.ndarray, *, batch: int = 64) -> dict[str, np.ndarray]:
    """Inference-mode outputs of a Keras student: ``{"logits": [n, C], "embedding": [n, E]}``."""
    outs: dict[str, list] = {k: [] for k in _INFER_OUTPUTS}
    for s in range(0, len(mels), batch):
        o = model(np.asarray(mels[s:s + batch], np.float32), training=False)
        for k in _INFER_OUTPUTS:
            outs[k].append(np.asarray(o[k]))
    return {k: np.concatenate(v) for k, v in outs.items()}


# ----------------------------------------------------------------------------------------------
# export and TFLite inference


def export_tflite(
    model: Any,
    path: Path,
    *,
    quant: str = "none",
    representative: np.ndarray | None = None,
    int8_io: bool = False,
) -> Path:
    """Write the student's inference graph (``logits``, ``embedding``) as a TFLite flatbuffer.

    Input ``mels`` ``[batch, n_frames, n_mels]`` (batch resizable). ``quant``:
      ``"none"``  float32 weights and activations;
      ``"int8"``  full-integer: int8 weights and activations (builtin int8 ops only), calibrated on
                  ``representative`` ``[m, n_frames, n_mels]`` windows from training audio
                  (a few hundred is plenty). I/O stays float32 (quantise/dequantise ops inside the
                  model) unless ``int8_io``; :class:`StudentRunner` handles both.
      ``"weights"`` int8 weights, float32 activations (dynamic range). The token front uses it:
                  in full int8 a shape codebook's per-frame standardisation divides by a
                  quantised zero on flat (padded) frames (LiteRT's DIV raised), and int8
                  distances would round the nearest-centroid search (not measured).
    The file is written to a temporary name and moved into place. Returns ``path``.
    """
    import keras
    import tensorflow as tf

    if quant not in ("none", "int8", "weights"):
        raise ValueError(f"quant {quant!r}: use 'none', 'int8' or 'weights'")
    if quant == "int8" and (representative is None or len(representative) == 0):
        raise ValueError("int8 export needs representative windows")
    path = Path(path)
    _, n_frames, n_mels = model.inputs[0].shape
    infer = keras.Model(model.inputs[0],
                        {k: model.get_layer(k).output for k in _INFER_OUTPUTS},
                        name="vocalprint_student_infer")

    # Keras 3 variables are not tracked by a bare tf.function / concrete function (the converter
    # then silently drops them: a 24 kB model that outputs NaN). Go through a SavedModel written
    # by keras.export.ExportArchive, which tracks them, as keras' own "litert" export does (but
    # without its SELECT_TF_OPS fallback: builtin ops only, no TF runtime needed at inference).
    def serve(mels):  # type: ignore[no-untyped-def]
        out = infer(mels, training=False)
        return {k: out[k] for k in _INFER_OUTPUTS}

    sm_dir = tempfile.mkdtemp(prefix="student_sm_")
    try:
        archive = keras.export.ExportArchive()
        archive.track(infer)
        archive.add_endpoint("serve", serve, input_signature=[
            tf.TensorSpec([None, n_frames, n_mels], tf.float32, name=_INPUT_NAME)])
        archive.write_out(sm_dir, verbose=False)
        conv = tf.lite.TFLiteConverter.from_saved_model(sm_dir, signature_keys=["serve"])
        blob = _convert(conv, quant, representative, int8_io)
    finally:
        shutil.rmtree(sm_dir, ignore_errors=True)
    from vocalprint.core.artifacts import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_bytes(blob)
    log.info("exported %s (%s, %.1f kB)", path, quant, len(blob) / 1024)
    return path


def int8_quant(cfg: StudentConfig) -> str:
    """The ``quant`` of a student's int8 file: full int8 for the Mel student, int8 weights only for
    the token front (see :func:`export_tflite`)."""
    return "int8" if cfg.front == "mel" else "weights"


def _convert(conv: Any, quant: str, representative: np.ndarray | None, int8_io: bool) -> bytes:
    import tensorflow as tf

    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quant == "weights":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if quant == "int8":
        rep = np.asarray(representative, np.float32)

        def rep_data():  # type: ignore[no-untyped-def]
            for i in range(len(rep)):
                yield [rep[i:i + 1]]

        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = rep_data
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
    return conv.convert()


class StudentRunner:
    """Run an exported student with the LiteRT interpreter (``ai_edge_litert``).

    Handles float32 or int8-quantised I/O (scale/zero-point from the tensor details).
    """

    def __init__(self, path: Path, *, threads: int = 1) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.path = Path(path)
        self._it = Interpreter(model_path=str(self.path), num_threads=threads)
        sigs = self._it.get_signature_list()
        self._runner = None
        if sigs:
            key = next(iter(sigs))
            outs = set(sigs[key]["outputs"])
            if set(_INFER_OUTPUTS) <= outs:
                self._runner = self._it.get_signature_runner(key)
                self._in_name = sigs[key]["inputs"][0]
        if self._runner is None:
            raise ValueError(f"{path}: no signature with outputs {_INFER_OUTPUTS}")
        ind = self._runner.get_input_details()[self._in_name]
        self.input_shape = tuple(int(v) for v in ind["shape_signature"][1:]) or tuple(
            int(v) for v in ind["shape"][1:])
        self._in_dtype = ind["dtype"]
        self._in_q = ind["quantization"]
        self._out_q = {k: (d["dtype"], d["quantization"])
                       for k, d in self._runner.get_output_details().items()}

    @property
    def quantized_io(self) -> bool:
        return self._in_dtype != np.float32

    def _quant_in(self, x: np.ndarray) -> np.ndarray:
        if self._in_dtype == np.float32:
            return x
        scale, zp = self._in_q
        info = np.iinfo(self._in_dtype)
        return np.clip(np.round(x / scale + zp), info.min, info.max).astype(self._in_dtype)

    def _dequant(self, k: str, y: np.ndarray) -> np.ndarray:
        dtype, (scale, zp) = self._out_q[k]
        if dtype == np.float32:
            return np.asarray(y, np.float32)
        return ((y.astype(np.float32) - zp) * scale).astype(np.float32)

    def predict(self, mels: np.ndarray, *, batch: int = 64) -> dict[str, np.ndarray]:
        """``mels`` ``[n, n_frames, n_mels]`` -> ``{"logits": [n, C], "embedding": [n, E]}``.

        Runs in chunks of ``batch`` windows (the last one padded to the same shape).
        """
        mels = np.asarray(mels)
        if mels.ndim != 3 or tuple(mels.shape[1:]) != self.input_shape[-2:]:
            raise ValueError(f"mels shape {mels.shape}, model wants [n, {self.input_shape}]")
        n = len(mels)
        outs: dict[str, list] = {k: [] for k in _INFER_OUTPUTS}
        if n == 0:
            raise ValueError("no windows")
        bs = max(1, min(batch, n))
        for s in range(0, n, bs):
            x = np.asarray(mels[s:s + bs], np.float32)
            k = len(x)
            if k < bs:
                x = np.concatenate([x, np.repeat(x[-1:], bs - k, axis=0)])
            res = self._runner(**{self._in_name: self._quant_in(x)})
            for key in _INFER_OUTPUTS:
                outs[key].append(self._dequant(key, res[key])[:k])
        return {k: np.concatenate(v) for k, v in outs.items()}


class StudentEnsemble:
    """Several exported students (``distill.members``) run as one: ``predict`` returns the mean of
    their logits (an ensemble in log-odds); the members' embeddings are not combined."""

    def __init__(self, runners: Sequence[StudentRunner]) -> None:
        if not runners:
            raise ValueError("an ensemble needs at least one student")
        shapes = {r.input_shape[-2:] for r in runners}
        if len(shapes) > 1:
            raise ValueError(f"students take different windows: {sorted(shapes)}")
        self.runners = list(runners)
        self.input_shape = self.runners[0].input_shape

    def predict(self, mels: np.ndarray, *, batch: int = 64) -> dict[str, np.ndarray]:
        """``mels`` ``[n, n_frames, n_mels]`` -> ``{"logits": [n, C]}``, the members' mean."""
        logits = [r.predict(mels, batch=batch)["logits"] for r in self.runners]
        return {"logits": np.mean(logits, axis=0).astype(np.float32)}
