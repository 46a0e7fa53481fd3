"""The student's token front: each frame's nearest centroid in K-means codebooks over Mel bands.

A codebook covers Mel bands ``[lo, hi)`` (the whole frame, or one of ``token_groups`` band
groups): :func:`token_features` gives the features it clusters, :func:`fit_token_books` fits the
codebooks (Faiss K-means, optionally residual stages), :func:`token_front` is the NumPy reference
of the assignment and :func:`token_front_layer` the same in-graph, each token looked up as a
learned vector; :func:`token_image` lays the vectors out as a [time, band group] image for the
2-D body of :func:`vocalprint.student.net.build_student`. TensorFlow/Keras and Faiss are imported
inside functions so ``import vocalprint.student.token_front`` stays instant.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from vocalprint.config.student import TOKEN_CENTERS, StudentConfig


def _whole_frame(books: Sequence) -> list[bool]:
    """Which codebooks cover the whole frame beside narrower band groups (all False when every
    codebook is as wide as the widest: band groups alone, or one whole-frame codebook)."""
    widths = [hi - lo for lo, hi, *_ in books]
    return [w == max(widths) and min(widths) < w for w in widths]


def token_image(x: Any, books: list, dims: list, n_frames: int) -> Any:
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


GIVEN = "given"
"""A token front's centre when its input is already centred: a whole file's graph whose caller
subtracts the running mean once for every member (:mod:`vocalprint.student.fcn`)."""


def check_center(center: str) -> None:
    if center not in TOKEN_CENTERS:
        raise ValueError(f"token_center {center!r}: use one of {', '.join(TOKEN_CENTERS)}")


def running_bounds(t: int, half: int, span: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Frame ``i``'s box ``[lo[i], hi[i])``: ``i - half .. i + half`` cut to the frames ``span``
    ``(a, b)`` of the ``t`` (all of them by default); a frame outside the span gets the part of
    its box inside it, or the span's nearest frame."""
    a, b = (0, t) if span is None else (int(span[0]), int(span[1]))
    if not 0 <= a < b <= t:
        raise ValueError(f"running centre span {span} outside the {t} frames")
    i = np.arange(t)
    lo = np.minimum(np.maximum(i - half, a), b - 1)
    return lo, np.maximum(np.minimum(i + half + 1, b), lo + 1)


def running_half(cfg: StudentConfig, n_frames: int) -> int:
    """The running centre's frames either side for windows of ``n_frames``: ``cfg.token_running``
    of them (156 for the default half of a 312-frame window)."""
    return int(round(cfg.token_running * n_frames))


_BLOCK = 32
_LOWER = np.tril(np.ones((_BLOCK, _BLOCK), np.float32))


def cumulative_frames(v: np.ndarray) -> np.ndarray:
    """``[b, T, M]`` -> ``[b, T + 1, M]`` float32: row ``i`` the sum of frames ``0 .. i - 1``. In
    blocks of 32 frames, each summed by one matrix product with a lower-triangular matrix and the
    blocks' totals accumulated after: 0.8 against 6.6 ms for ``np.cumsum`` over a minute's
    4,032 x 128 frames on one thread (which steps along a strided axis), and closer to a float64
    sum. One frame-sized array is allocated (two when ``T`` is not a multiple of 32 or ``b > 1``)."""
    v = np.ascontiguousarray(v, np.float32)
    b, t, m = v.shape
    n = -(-t // _BLOCK) * _BLOCK
    if n != t:
        v = np.concatenate([v, np.zeros((b, n - t, m), np.float32)], axis=1)
    out = np.empty((b, n + 1, m), np.float32)
    out[:, 0] = 0.0
    blocks = (b, n // _BLOCK, _BLOCK, m)
    if b == 1:  # out[:, 1:] is contiguous: the product goes straight into it
        w = out[:, 1:].reshape(blocks)
        np.matmul(_LOWER, v.reshape(blocks), out=w)
    else:
        w = np.matmul(_LOWER, v.reshape(blocks))
    w[:, 1:] += np.cumsum(w[:, :, -1], axis=1)[:, :-1, None]
    if b != 1:
        out[:, 1:] = w.reshape(b, n, m)
    return out[:, :t + 1]


def _running_box(x: np.ndarray, half: int, span: tuple[int, int] | None, inplace: bool
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x0, mu, box)``: ``x`` minus its per-band mean ``mu`` over the span (``x`` itself,
    overwritten, when ``inplace``), and each frame's mean of ``x0`` over its box
    (:func:`running_bounds`), from :func:`cumulative_frames` of ``x0`` (small sums over a file)."""
    x = np.asarray(x, np.float32) if inplace else np.array(x, np.float32)
    lo, hi = running_bounds(x.shape[1], half, span)
    a, b = (0, x.shape[1]) if span is None else span
    mu = x[:, a:b].mean(axis=1, keepdims=True)
    x -= mu
    c = cumulative_frames(x)
    box = np.take(c, hi, axis=1)
    box -= np.take(c, lo, axis=1, out=c[:, :len(lo)])  # take buffers an overlapping out; c is not read after
    box *= (1.0 / (hi - lo)).astype(np.float32)[None, :, None]
    return x, mu, box


def running_mean(x: np.ndarray, half: int, span: tuple[int, int] | None = None) -> np.ndarray:
    """Each frame's per-band mean over the frames within ``half`` of it (the box cut to ``span``,
    by default the edges of ``x`` ``[b, T, M]``: :func:`running_bounds`), from cumulative sums of
    the bands minus their mean over the span (:func:`cumulative_frames`), so a whole file's sums stay
    small. Frame ``T // 2`` of a window of ``T`` frames with ``half = T // 2`` gets the window's mean."""
    _, mu, box = _running_box(x, half, span, inplace=False)
    return mu + box


def running_centred(x: np.ndarray, half: int, span: tuple[int, int] | None = None, *,
                    inplace: bool = False) -> np.ndarray:
    """``x`` minus its :func:`running_mean` (the token front's running centre), computed as the
    in-graph front computes it; ``inplace`` overwrites ``x`` (float32) and spares two frame-sized
    arrays (a whole file's input, once per file for every member: :func:`vocalprint.student.fcn.centred_input`)."""
    x0, _, box = _running_box(x, half, span, inplace)
    x0 -= box
    return x0


def token_features(x: np.ndarray, lo: int, hi: int, standardise: bool, center: str = "median",
                   half: int | None = None, span: tuple[int, int] | None = None) -> np.ndarray:
    """dB windows ``[b, T, M]`` -> the features one codebook clusters, ``[b, T, hi - lo]``: bands
    ``[lo, hi)`` minus each band's median or mean over the window, or (``"running"``) minus its
    :func:`running_mean` over the ``half`` (default ``T // 2``) frames either side (cut to
    ``span``), which a whole file computes once for every window it holds; then, if
    ``standardise``, each frame z-scored over its bands
    (:func:`vocalprint.tokens.codebook.frame_features`)."""
    v = np.asarray(x, np.float32)[:, :, lo:hi]
    check_center(center)
    if center == "running":
        v = running_centred(v, v.shape[1] // 2 if half is None else half, span)
    else:
        v = v - (np.median(v, axis=1, keepdims=True) if center == "median" else v.mean(axis=1, keepdims=True))
    if standardise:
        v = (v - v.mean(-1, keepdims=True)) / (v.std(-1, keepdims=True) + 1e-3)
    return v


def _stages(centroids: np.ndarray) -> np.ndarray:
    """A codebook's centroids as residual stages ``[S, K, d]`` (one stage when given ``[K, d]``)."""
    c = np.asarray(centroids, np.float32)
    return c if c.ndim == 3 else c[None]


def token_front(x: np.ndarray, lo: int, hi: int, centroids: np.ndarray, standardise: bool = True,
                center: str = "median", half: int | None = None, span: tuple[int, int] | None = None) -> np.ndarray:
    """NumPy reference of one codebook of the token front: dB windows ``[b, T, M]`` -> token ids
    ``[b, T]`` (nearest centroid of :func:`token_features`); with residual stages (``centroids``
    ``[S, K, d]``) ids ``[b, T, S]``, stage s + 1 the nearest centroid to what stage s left."""
    v = token_features(x, lo, hi, standardise, center, half, span)
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
            f = token_features(w, lo, hi, st, cfg.token_center, running_half(cfg, t))
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


_TOKEN_FRONT: Any = None


def token_front_layer() -> Any:
    """Keras layer class (created once, lazily): dB windows ``[b, T, M]`` -> ``[b, T, D]``, the
    concatenated learned vectors of each frame's token in every codebook (as :func:`token_front`,
    in-graph; the centroids are constants, only the token vectors are trained)."""
    global _TOKEN_FRONT
    if _TOKEN_FRONT is None:
        import keras

        @keras.saving.register_keras_serializable(package="vocalprint")
        class TokenFront(keras.layers.Layer):
            def __init__(self, codebooks: Sequence, dim: int, seed: int = 0, center: str = "median",
                         half: int | None = None, span: tuple[int, int] | None = None, **kw: Any) -> None:
                super().__init__(**kw)
                if center != GIVEN:
                    check_center(center)
                self.center = center
                # the running centre's frames either side: the input's T // 2 unless given (a whole file's
                # graph keeps its training windows'); its boxes cut to the input's frames ``span`` (a whole
                # file's graph: the file's, not the silence around it)
                self.half = None if half is None else int(half)
                self.span = None if span is None else (int(span[0]), int(span[1]))
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
                    xc = x - c0[:, None, :]
                elif self.center == "running":  # as running_mean: CUMSUM and two constant gathers
                    a, b = self.span or (0, t)
                    x0 = x - ops.mean(x[:, a:b], axis=1, keepdims=True)
                    c = ops.concatenate([ops.zeros_like(x0[:, :1]), ops.cumsum(x0, axis=1)], axis=1)
                    lo, hi = running_bounds(t, t // 2 if self.half is None else self.half, self.span)
                    box = tf.gather(c, hi, axis=1) - tf.gather(c, lo, axis=1)
                    xc = x0 - box * ops.convert_to_tensor((1.0 / (hi - lo)).astype(np.float32)[None, :, None])
                elif self.center == GIVEN:
                    xc = x
                else:
                    xc = x - ops.mean(x, axis=1)[:, None, :]
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
