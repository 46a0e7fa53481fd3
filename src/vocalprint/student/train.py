"""Distil BirdNET V2.4 into the student (:func:`vocalprint.student.net.build_student`): losses,
augmentation, the training loop, inference of the Keras model.

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
contributes 0. TensorFlow/Keras are imported inside functions so ``import vocalprint.student.train``
stays instant.
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from vocalprint.config.student import StudentConfig
from vocalprint.student.net import INFER_OUTPUTS, build_student, count_params, inference_params
from vocalprint.student.token_front import fit_token_books

if TYPE_CHECKING:  # pragma: no cover
    import keras

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------
# losses (TensorFlow)


def _masked_mean(values: Any, valid: Any) -> Any:
    import tensorflow as tf

    v = tf.cast(valid, values.dtype)
    return tf.math.divide_no_nan(tf.reduce_sum(values * v), tf.reduce_sum(v))


def losses(out: dict, t_emb: Any, t_log: Any, y: Any, m: Any, *, temperature: float,
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


def epochs_for(cfg: StudentConfig, n_windows: int) -> int:
    """Epochs to train on ``n_windows``: ``cfg.epochs``, fewer when they would present more than
    ``cfg.window_budget`` windows in all (never fewer than one)."""
    if cfg.window_budget <= 0 or n_windows <= 0:
        return cfg.epochs
    return max(1, min(cfg.epochs, -(-cfg.window_budget // n_windows)))


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
    (no augmentation, inference mode), plus ``epochs`` (:func:`epochs_for`), ``presentations``
    (windows trained on over all epochs), ``seconds``,
    ``windows_per_s``, ``params``,
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
    epochs = epochs_for(cfg, n)
    total = max(1, steps * epochs)
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
    log.info("student: %d params (%d at inference), %d windows, %d steps/epoch, %d epochs, meta=%s",
             n_par, inference_params(model), n, steps, epochs, has_meta)

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
            ls = losses(out, te, tl, y, m, **lkw)
            loss = weighted(ls)
        vs = model.trainable_variables
        grads = tape.gradient(loss, vs)  # None for a head whose loss weight is 0: skip it
        opt.apply_gradients([(g, v) for g, v in zip(grads, vs) if g is not None])
        ls["loss"] = loss
        return ls

    @tf.function(input_signature=spec)
    def eval_step(x, te, tl, y, m):  # type: ignore[no-untyped-def]
        out = model(x, training=False)
        ls = losses(out, te, tl, y, m, **lkw)
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
    for ep in range(epochs):
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
        log.info("epoch %d/%d %s (%.1f s)", ep + 1, epochs, msg,
                 time.perf_counter() - t_ep)
    if bar is not None:
        bar.close()
    hist["seconds"] = time.perf_counter() - t0
    hist["epoch_seconds"] = ep_s  # training batches only (no validation)
    steady = ep_s[1:] or ep_s  # the first epoch also traces the graph
    hist["windows_per_s"] = steps * bs * len(steady) / max(sum(steady), 1e-9)
    hist["epochs"] = epochs
    hist["presentations"] = steps * bs * epochs  # training windows seen, augmented, over all epochs
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
    outs: dict[str, list] = {k: [] for k in INFER_OUTPUTS}
    for s in range(0, len(mels), batch):
        o = model(np.asarray(mels[s:s + batch], np.float32), training=False)
        for k in INFER_OUTPUTS:
            outs[k].append(np.asarray(o[k]))
    return {k: np.concatenate(v) for k, v in outs.items()}
