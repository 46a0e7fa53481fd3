"""Frame-level naive-Bayes token model (``tokens-nb``).

Every Mel frame becomes a token of one or more K-means codebooks ("views": log-Mel, PCEN, ...).
A per-view table ``[K, n_species]`` holds the naive-Bayes log-ratio
``log P(token | frames of the species) - log P(token | other frames)``, counted over the *active*
frames of the focal clips (energy-based activity mask) and over synthetic 5-s field mixes
(:func:`vocalprint.audio.mix.mix_windows`: focal calls over quiet stretches of the unlabelled train
soundscapes, or coloured noise) with frame-level targets. At inference a frame's score is the sum
of its tokens' table rows; a window's score is the mean of its ``top_k`` highest frame scores after
a ``smooth_frames`` moving average; a sigmoid of the standardised score gives a probability (a
monotone map, so ranking metrics are unchanged).

Stage folder ``artifacts/nb/<key>/``: ``codebook_<view>.npy`` (centroids), ``table_<view>.npy``,
``calib.json``; the per-file frames built on the way (``<key>.partial/frames``, ``mixes``) are kept
across a killed run and deleted once the tables are written.
"""
from __future__ import annotations

import json
import logging
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from vocalprint.config import Config, MelConfig
    from vocalprint.data.dataset import Dataset

log = logging.getLogger(__name__)
NAME = "tokens-nb"
VIEW_NAMES = ("logmel", "pcen", "pcen1", "subbands")


from vocalprint.config.nb import NBConfig


@dataclass(frozen=True)
class _View:
    name: str  # file stem: logmel, pcen, pcen1, subbands0..3
    frontend: str  # logmel | pcen
    lo: int  # Mel bands [lo, hi)
    hi: int
    k: int
    seed: int
    weight: float


def views(cfg: NBConfig, n_mels: int) -> list[_View]:
    """The codebooks of ``cfg.views`` (``subbands`` is four codebooks on quarter band groups)."""
    out = []
    for v in cfg.views:
        if v == "logmel":
            out.append(_View("logmel", "logmel", 0, n_mels, cfg.k, cfg.seed, 1.0))
        elif v == "pcen":
            out.append(_View("pcen", "pcen", 0, n_mels, cfg.k, cfg.seed, 1.0))
        elif v == "pcen1":
            out.append(_View("pcen1", "pcen", 0, n_mels, cfg.k, cfg.seed + 1, 1.0))
        elif v == "subbands":
            g = n_mels // 4
            out += [_View(f"subbands{i}", "logmel", i * g, (i + 1) * g, max(2, cfg.k // 4), cfg.seed, 0.5)
                    for i in range(4)]
        else:
            from vocalprint.config import ConfigError

            raise ConfigError(f"nb.views: unknown view {v!r}; choose from {', '.join(VIEW_NAMES)}")
    if not out:
        from vocalprint.config import ConfigError

        raise ConfigError("nb.views: at least one view is needed")
    if len({v.name for v in out}) != len(out):
        from vocalprint.config import ConfigError

        raise ConfigError(f"nb.views: a view is listed twice in {cfg.views}")
    return out


def _tokens_cfg(v: _View, cfg: NBConfig):
    from vocalprint.config import TokensConfig

    return TokensConfig(k=v.k, frame_norm="standardize", median_sub=True, pca_dim=0,
                        sample_frames=cfg.sample_frames, seed=v.seed)


# --------------------------------------------------------------------------------------------
# Front end, scoring: pure functions
# --------------------------------------------------------------------------------------------

_BASIS: dict = {}


def front_ends(x: np.ndarray, *, sr: int, cfg: "MelConfig", which=("logmel", "pcen")) -> dict[str, np.ndarray]:
    """dB log-Mel (as :func:`vocalprint.audio.mel.logmel` with ``frontend="logmel"``) and/or PCEN
    (as with ``frontend="pcen"``) frames [t, n_mels] float32 of ``x``, from one shared STFT."""
    import librosa

    from vocalprint.audio.mel import _mel_basis

    key = (sr, cfg.n_mels, cfg.n_fft, cfg.fmin, cfg.fmax)
    if key not in _BASIS:
        _BASIS[key] = _mel_basis(sr, cfg)
    x = np.asarray(x, np.float32)
    if x.size < cfg.n_fft // 2 + 1:
        x = np.pad(x, (0, cfg.n_fft // 2 + 1 - x.size))
    with warnings.catch_warnings():  # a clip shorter than n_fft: padded as mel.logmel pads it
        warnings.filterwarnings("ignore", message="n_fft=.*too large")
        s = _BASIS[key] @ (np.abs(librosa.stft(x, n_fft=cfg.n_fft, hop_length=cfg.hop, center=True)) ** 2)
    out = {}
    if "logmel" in which:
        out["logmel"] = np.ascontiguousarray((10.0 * np.log10(np.maximum(s, 1e-10))).T, dtype=np.float32)
    if "pcen" in which:
        out["pcen"] = np.ascontiguousarray(librosa.pcen(s * (2**31), sr=sr, hop_length=cfg.hop).T, dtype=np.float32)
    return out


def smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average over time (axis 0) of ``x`` [t, ...], ``width`` frames (shrinking at
    the ends), same length."""
    x = np.asarray(x, np.float64)
    if width <= 1 or len(x) == 0:
        return x
    c = np.concatenate([np.zeros((1,) + x.shape[1:]), np.cumsum(x, axis=0)])
    h, t = width // 2, len(x)
    a = np.clip(np.arange(t) - h, 0, t)
    b = np.clip(np.arange(t) + h + 1, 0, t)
    d = (b - a).reshape((-1,) + (1,) * (x.ndim - 1))
    return (c[b] - c[a]) / d


def window_scores(frame_scores: np.ndarray, bounds: np.ndarray, *, top_k: int = 8, width: int = 9) -> np.ndarray:
    """Frame scores [t, S] -> window scores [n, S]: the mean of the ``top_k`` highest smoothed frame
    scores inside each (start, stop) of ``bounds``; 0 for an empty window."""
    fs = smooth(frame_scores, width)
    out = np.zeros((len(bounds), fs.shape[1]), np.float32)
    for i, (a, b) in enumerate(bounds):
        if b > a:
            w = fs[a:b]
            k = max(1, min(top_k, len(w)))
            out[i] = np.partition(w, len(w) - k, axis=0)[-k:].mean(0)
    return out


def add_counts(pos: np.ndarray, tot: np.ndarray, tok: np.ndarray, targets: np.ndarray) -> None:
    """Accumulate token counts in place: ``tot[k] +=`` frames with token k, ``pos[k, s] +=`` their
    target weight for species s. ``targets``: [t, S] frame targets (0..1)."""
    k = len(tot)
    t = np.asarray(tok, np.int64)
    tot += np.bincount(t, minlength=k)[:k]
    y = np.asarray(targets, np.float64)
    for s in np.flatnonzero(y.any(0)):
        pos[:, s] += np.bincount(t, weights=y[:, s], minlength=k)[:k]


def nb_table(pos: np.ndarray, tot: np.ndarray, *, alpha: float = 1.0) -> np.ndarray:
    """Naive-Bayes log-ratio [K, S] from counts: log P(token | species frames) - log P(token | rest)."""
    k = len(tot)
    neg = np.maximum(tot[:, None] - pos, 0.0)
    lp = np.log((pos + alpha) / (pos.sum(0) + alpha * k))
    ln = np.log((neg + alpha) / (neg.sum(0) + alpha * k))
    return (lp - ln).astype(np.float32)


def taught_targets(frame_targets: np.ndarray, teacher_prob: np.ndarray, *, weight: float) -> np.ndarray:
    """Blend carried frame targets [t, S] with the teacher's probability [S] for the window holding
    them: ``(1 - weight) * targets + weight * prob`` where ``prob`` is finite (a species the
    teacher knows), the targets unchanged where it is NaN. Pure; float32 [t, S]."""
    y = np.asarray(frame_targets, np.float32)
    p = np.asarray(teacher_prob, np.float32)
    if p.shape != y.shape[-1:]:
        raise ValueError(f"teacher probabilities {p.shape} do not match targets {y.shape}")
    known = np.isfinite(p)
    out = y.copy()
    out[:, known] = (1.0 - weight) * y[:, known] + weight * p[known][None]
    return out


def teacher_probs(logits: np.ndarray) -> np.ndarray:
    """Sigmoid of teacher logits, NaN kept (species the teacher does not know)."""
    lo = np.asarray(logits, np.float64)
    return (1.0 / (1.0 + np.exp(-np.clip(lo, -50, 50)))).astype(np.float32)


def clip_targets(active: np.ndarray, label_row: np.ndarray) -> np.ndarray:
    """Frame targets of a focal clip: ``label_row`` on its active frames, 0 elsewhere. [t, S]"""
    return np.asarray(active, np.float32)[:, None] * np.asarray(label_row, np.float32)[None]


def frame_activity(x: np.ndarray, n_frames: int, *, sr: int, hop: int) -> np.ndarray:
    """Activity (:func:`vocalprint.audio.mix.activity_mask`) at each frame centre ``j * hop``: bool [n_frames]."""
    from vocalprint.audio import mix

    if x.size == 0:
        return np.zeros(n_frames, bool)
    m = mix.sample_mask(mix.activity_mask(x, sr), x.size, sr)
    c = np.minimum(np.arange(n_frames) * hop, x.size - 1)
    return m[c]


def _features(frames: np.ndarray, v: _View, tcfg) -> np.ndarray:
    from vocalprint.tokens.codebook import frame_features

    return frame_features(np.asarray(frames, np.float32)[:, v.lo:v.hi], cfg=tcfg)


# --------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------


def key(cfg: "Config", ds: "Dataset", teacher_key: str = "") -> str:
    from vocalprint.config import fingerprint

    if cfg.nb.teacher_weight > 0:  # the teacher's cache (its model, stride, ...) shapes the tables
        return fingerprint("nb", cfg.audio, cfg.mel, cfg.nb, ds.fingerprint(), teacher_key)
    return fingerprint("nb", cfg.audio, cfg.mel, cfg.nb, ds.fingerprint())


def uses_teacher(cfg: "Config") -> bool:
    w = cfg.nb.teacher_weight
    if not 0.0 <= w <= 1.0:
        from vocalprint.config import ConfigError

        raise ConfigError(f"nb.teacher_weight must be in [0, 1], got {w}")
    return w > 0


class _Teacher:
    """The teacher as the tables see it: window probabilities of the competition species (NaN where
    it does not know one) for mix audio (run now) and train soundscapes (from the teacher cache)."""

    def __init__(self, cfg: "Config", ds: "Dataset", root: Path, cache_dir: Path):
        from vocalprint.teacher import stage as teach

        self.cfg, self.cache_dir = cfg, Path(cache_dir)
        self.model_dir = teach.prepare(cfg, root)
        self.cols = teach.species_columns(self.model_dir, ds, cfg)
        self._net = None

    def window_prob(self, audio: np.ndarray) -> np.ndarray:
        """[S] probabilities of one 5-s window of audio: max over the teacher's chunks."""
        from vocalprint.teacher import stage as teach

        if self._net is None:
            self._net = teach.runner(self.model_dir, self.cfg)
        _, lo, _ = teach.chunk_outputs(self._net, audio, cfg=self.cfg)
        return teacher_probs(teach.select_species(lo, self.cols).max(axis=0))

    def soundscape_targets(self, name: str, n_frames: int) -> np.ndarray | None:
        """Frame targets [t, S] of a train soundscape: ``weight`` x the teacher's probability of the
        5-s window holding each frame, from the cached chunk logits; None if it has no cache entry."""
        from vocalprint.audio import mel as M
        from vocalprint.teacher import stage as teach
        from vocalprint.audio.decode import frame_windows
        from vocalprint.teacher.stage import CHUNK_S

        f = self.cache_dir / "chunks" / (M.npy_name(name)[:-4] + ".npz")
        if not f.is_file():
            return None
        c = self.cfg
        with np.load(f) as z:
            starts, logits, emb = z["starts"], z["logits"], z["emb"]
        n = max(1, int(np.ceil(n_frames * c.mel.hop / c.audio.sr / c.audio.window_s)))
        bounds_s = np.stack([np.arange(n), np.arange(1, n + 1)], 1) * c.audio.window_s
        lo, _ = teach.pool(starts, logits, emb, bounds_s, chunk_s=CHUNK_S[c.teacher.model])
        p = teacher_probs(lo)
        out = np.zeros((n_frames, len(self.cols)), np.float32)
        for i, (a, b) in enumerate(frame_windows(n_frames, n=n, sr=c.audio.sr, hop=c.mel.hop, window_s=c.audio.window_s)):
            out[a:b] = taught_targets(out[a:b], p[i], weight=c.nb.teacher_weight)
        return out


def _frontends(vs: list[_View]) -> tuple[str, ...]:
    return tuple(f for f in ("logmel", "pcen") if any(v.frontend == f for v in vs))


def _file_frames(path: str, out: str, sr: int, mel_cfg, fronts: tuple[str, ...], with_activity: bool) -> tuple[int, str]:
    """Decode one file, write its front-end frames (float16) and frame activity -> ``out`` (.npz).
    Returns (n_frames, "") or (0, why it was skipped)."""
    from vocalprint.core import artifacts as A
    from vocalprint.audio.decode import AudioError, load_audio

    o = Path(out)
    if o.is_file():  # finished before an interruption (written atomically)
        try:
            with np.load(o) as z:
                return int(z[fronts[0]].shape[0]), ""
        except (OSError, ValueError, EOFError, KeyError):
            log.warning("nb: unreadable cached %s; recomputing", o)
    try:
        x = load_audio(path, sr=sr)
        fe = front_ends(x, sr=sr, cfg=mel_cfg, which=fronts)
        arrs = {f: fe[f].astype(np.float16) for f in fronts}
        if not all(np.isfinite(a).all() for a in arrs.values()):
            raise AudioError(f"{path}: frames are not finite")
        t = len(next(iter(arrs.values())))
        if with_activity:
            arrs["active"] = frame_activity(x, t, sr=sr, hop=mel_cfg.hop)
    except AudioError as e:
        return 0, str(e)
    except Exception as e:  # noqa: BLE001 - one odd file must not stop the stage; it is reported
        return 0, f"{path}: {type(e).__name__}: {e}"
    with A.atomic_path(o) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrs)
    return t, ""


def _mixing_clips(cfg: "Config", ds: "Dataset", ok: np.ndarray) -> np.ndarray:
    """Row indices of the training clips used for mixing: at most ``max_clips_per_species`` per
    primary label, chosen at random (seeded) among the decodable ones."""
    rng = np.random.default_rng(cfg.nb.seed)
    rows = []
    prim = ds.train["primary"].to_numpy()
    for sp in sorted(set(prim)):
        idx = np.flatnonzero((prim == sp) & ok)
        if len(idx) > cfg.nb.max_clips_per_species:
            idx = np.sort(rng.choice(idx, cfg.nb.max_clips_per_species, replace=False))
        rows += list(idx)
    return np.array(sorted(rows), np.int64)


def _make_mixes(cfg: "Config", ds: "Dataset", work: Path, labels: np.ndarray, clip_rows: np.ndarray,
                soundscapes: list[Path], fronts: tuple[str, ...], teacher: "_Teacher | None" = None) -> list[Path]:
    """Synthetic mixes in batches -> ``work/mixes/batch_<i>.npz`` (front-end frames float16
    [b, t, n_mels] and frame targets float16 [b, t, S], blended with the teacher's window
    probabilities when ``teacher`` is given); audio of one batch at a time."""
    from vocalprint.core import artifacts as A
    from vocalprint.audio import mix
    from vocalprint.audio.decode import AudioError, load_audio
    from vocalprint.core.parallel import progress_bar

    nb, sr = cfg.nb, cfg.audio.sr
    n_batches = int(np.ceil(nb.n_mixes / max(1, nb.mix_batch))) if nb.n_mixes > 0 else 0
    files = [work / "mixes" / f"batch_{i:05d}.npz" for i in range(n_batches)]
    if all(f.is_file() for f in files):
        return files
    max_s = nb.max_clip_s if nb.max_clip_s > 0 else None
    prim = ds.train["primary"].to_numpy()
    loaded: dict[int, np.ndarray] = {}

    def batch_clips(i: int) -> list[int]:
        """Rows mixed in batch ``i``, loaded (at most ``clips_per_batch`` clips held at once)."""
        nonlocal loaded
        rows = mix.pick_clips(clip_rows, prim, nb.clips_per_batch, np.random.default_rng((nb.seed, i)))
        keep = {}
        for r in rows:
            if r in loaded:
                keep[r] = loaded[r]
                continue
            try:
                keep[r] = load_audio(ds.train["path"].iloc[r], sr=sr, max_s=max_s)
            except AudioError as e:
                log.warning("nb: mixing clip skipped: %s", e)
        loaded = keep
        return [r for r in rows if r in keep]

    bgs: list[np.ndarray] = []
    for p in soundscapes:
        try:
            bgs += mix.quiet_segments(load_audio(p, sr=sr), sr, seg_s=cfg.audio.window_s, hop_s=2.5, keep=0.5)
        except AudioError as e:
            log.warning("nb: background skipped: %s", e)
    if not bgs:
        log.warning("nb: no train soundscape backgrounds; mixing over coloured noise only")
    bar = progress_bar(nb.n_mixes, desc="nb mixes", enabled=cfg.run.progress)
    for i, f in enumerate(files):
        n = min(nb.mix_batch, nb.n_mixes - i * nb.mix_batch)
        if f.is_file():
            bar.update(n)
            continue
        rows = batch_clips(i)
        if not rows:
            log.warning("nb: no mixing clip could be decoded; no mixes")
            return []
        clips, lab = [loaded[r] for r in rows], labels[rows]
        audio, _, events, _ = mix.mix_windows(clips, lab, bgs, n=n, sr=sr, seed=nb.seed * 1_000_003 + i,
                                              window_s=cfg.audio.window_s, return_events=True)
        ft = mix.frame_targets(events, clips, lab, n=n, sr=sr, window_s=cfg.audio.window_s, hop=cfg.mel.hop)
        if teacher is not None:
            for j, a in enumerate(audio):
                ft[j] = taught_targets(ft[j], teacher.window_prob(a), weight=nb.teacher_weight)
        fe = [front_ends(a, sr=sr, cfg=cfg.mel, which=fronts) for a in audio]
        del audio
        arrs = {fr: np.stack([e[fr] for e in fe]).astype(np.float16) for fr in fronts}
        t = arrs[fronts[0]].shape[1]
        arrs["targets"] = ft[:, :t].astype(np.float16)
        with A.atomic_path(f) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrs)
        bar.update(n)
    bar.close()
    return files


def _items(clip_files, ss_files, mix_files):
    """Every training-side item as (kind, file, row-in-file or -1)."""
    out = [("clip", f, -1) for f in clip_files] + [("ss", f, -1) for f in ss_files]
    for f in mix_files:
        with np.load(f) as z:
            n = len(z["targets"])
        out += [("mix", f, j) for j in range(n)]
    return out


def _iter_frames(items, fronts):
    """Yield (kind, {frontend: frames [t, n_mels] float16}, targets-or-active) per item, reading each
    mix batch file once."""
    cur, z = None, None
    for kind, f, j in items:
        if kind == "mix":
            if cur != f:
                with np.load(f) as zz:
                    z = {k: zz[k] for k in (*fronts, "targets")}
                cur = f
            yield kind, {fr: z[fr][j] for fr in fronts}, z["targets"][j]
        else:
            with np.load(f) as zz:
                yield kind, {fr: zz[fr] for fr in fronts}, (zz["active"] if kind == "clip" else None)


def run(cfg: "Config", ds: "Dataset", root: Path, teacher_dir: Path | None = None) -> Path:
    """Build codebooks and NB tables of every view -> ``<root>/nb/<key>/`` (cached).

    ``teacher_dir``: the teacher cache (:func:`vocalprint.teacher.stage.run`), needed when
    ``nb.teacher_weight > 0``; the teacher then also labels every mix as it is made."""
    from vocalprint.core import artifacts as A
    from vocalprint.audio import mel as M
    from vocalprint.data.dataset import DatasetError
    from vocalprint.core.parallel import map_files, progress_bar
    from vocalprint.tokens.codebook import fit_codebook

    taught = uses_teacher(cfg)
    if taught and teacher_dir is None:
        from vocalprint.config import ConfigError

        raise ConfigError("nb.teacher_weight > 0 needs the teacher cache (pipeline.train_ builds it)")
    final = A.stage_dir(root, "nb", key(cfg, ds, Path(teacher_dir).name if taught else ""))
    if A.is_complete(final):
        log.info("nb: cached at %s", final)
        return final
    work = A.partial_dir(final)
    teacher = _Teacher(cfg, ds, root, Path(teacher_dir)) if taught else None
    nb, sr = cfg.nb, cfg.audio.sr
    vs = views(nb, cfg.mel.n_mels)
    fronts = _frontends(vs)
    timer = A.Timer("nb")
    labels = ds.label_matrix()
    n_sp = labels.shape[1]

    # 1. front-end frames of every focal clip and of up to max_soundscapes train soundscapes
    rng = np.random.default_rng(nb.seed)
    ss = list(ds.train_soundscapes)
    if len(ss) > nb.max_soundscapes:
        ss = [ss[i] for i in np.sort(rng.choice(len(ss), nb.max_soundscapes, replace=False))]
    clip_out = [work / "frames" / M.npy_name(f"train_audio/{f}").replace(".npy", ".npz") for f in ds.train["filename"]]
    ss_out = [work / "frames" / M.npy_name(f"train_soundscapes/{p.name}").replace(".npy", ".npz") for p in ss]
    tasks = [(str(p), str(o), sr, cfg.mel, fronts, True) for p, o in zip(ds.train["path"], clip_out)]
    tasks += [(str(p), str(o), sr, cfg.mel, fronts, False) for p, o in zip(ss, ss_out)]
    with timer("frames"):
        res = map_files(_file_frames, tasks, n_jobs=cfg.run.n_jobs, desc="nb frames", progress=cfg.run.progress)
    skipped = [(t[0], r[1]) for t, r in zip(tasks, res) if r[1]]
    for name, why in skipped:
        log.warning("nb: skipped %s", why)
    nc = len(clip_out)
    clip_ok = np.array([not r[1] and r[0] > 0 for r in res[:nc]], bool)
    if not clip_ok.any():
        raise DatasetError(f"{ds.root / 'train_audio'}: none of the {nc} training files could be decoded")
    ss_files = [o for o, r in zip(ss_out, res[nc:]) if not r[1]]
    clip_rows = np.flatnonzero(clip_ok)

    # 2. synthetic mixes
    with timer("mixes"):
        ss_ok = [Path(t[0]) for t, r in zip(tasks[nc:], res[nc:]) if not r[1]]
        mix_files = _make_mixes(cfg, ds, work, labels, _mixing_clips(cfg, ds, clip_ok), ss_ok, fronts, teacher)
    items = _items([clip_out[i] for i in clip_rows], ss_files, mix_files)
    item_labels = {str(clip_out[i]): labels[i] for i in clip_rows}
    ss_names = {str(o): f"train_soundscapes/{p.name}" for o, p in zip(ss_out, ss)}
    n_frames = np.array([res[i][0] for i in clip_rows] + [r[0] for o, r in zip(ss_out, res[nc:]) if not r[1]]
                        + [0] * (len(items) - len(clip_rows) - len(ss_files)), np.int64)
    if len(mix_files):
        with np.load(mix_files[0]) as z:
            n_frames[len(clip_rows) + len(ss_files):] = z["targets"].shape[1]
    total = int(n_frames.sum())

    # 3. K-means codebook per view on one uniform frame sample of all items
    books = {}
    for v in vs:
        tcfg = _tokens_cfg(v, nb)
        with timer("sample"):
            r = np.random.default_rng(v.seed)
            pick = np.sort(r.choice(total, min(nb.sample_frames, total), replace=False))
            starts = np.concatenate([[0], np.cumsum(n_frames)])
            parts = []
            for it, (kind, fr, _) in enumerate(_iter_frames(items, (v.frontend,))):
                a, b = np.searchsorted(pick, [starts[it], starts[it + 1]])
                if b > a:
                    parts.append(_features(fr[v.frontend], v, tcfg)[pick[a:b] - starts[it]])
            sample = np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)
        log.info("nb: K-means %s K=%d on %d frames x %d dims", v.name, v.k, *sample.shape)
        with timer("fit"):
            books[v.name] = fit_codebook(sample, cfg=tcfg)
        del sample, parts
        A.save_npy(work / f"codebook_{v.name}.npy", books[v.name].centroids)

    # 4. token counts: active frames of the clips, frame targets of the mixes
    pos = {v.name: np.zeros((v.k, n_sp)) for v in vs}
    tot = {v.name: np.zeros(v.k) for v in vs}
    mix_tok = {v.name: [] for v in vs}
    n_taught_ss = 0
    bar = progress_bar(len(items), desc="nb counts", enabled=cfg.run.progress)
    with timer("count"):
        for (kind, f, _), (_, fr, extra) in zip(items, _iter_frames(items, fronts)):
            if kind == "ss":  # unlabelled: counted only with the teacher's probabilities as targets
                y = teacher.soundscape_targets(ss_names[str(f)], len(fr[fronts[0]])) if teacher else None
                if y is None:
                    bar.update()
                    continue
                n_taught_ss += 1
            elif kind == "clip":
                y = clip_targets(extra, item_labels[str(f)])
            else:
                y = np.asarray(extra, np.float32)
            for v in vs:
                tok = _encode(books[v.name]._index(), _features(fr[v.frontend], v, _tokens_cfg(v, nb)))
                add_counts(pos[v.name], tot[v.name], tok, y)
                if kind == "mix":
                    mix_tok[v.name].append(tok)
            bar.update()
    bar.close()
    tables = {}
    for v in vs:
        tables[v.name] = nb_table(pos[v.name], tot[v.name], alpha=nb.alpha)
        A.save_npy(work / f"table_{v.name}.npy", tables[v.name])

    # 5. calibration: standardise window scores of the mixes (one mean and scale for all species)
    with timer("calibrate"):
        sc = []
        for j in range(len(mix_tok[vs[0].name])):
            fs = sum(v.weight * tables[v.name][mix_tok[v.name][j].astype(np.int64)] for v in vs)
            sc.append(window_scores(fs, np.array([[0, len(fs)]]), top_k=nb.top_k, width=nb.smooth_frames))
        sc = np.concatenate(sc) if sc else np.zeros((1, n_sp), np.float32)
        calib = {"mean": float(sc.mean()), "scale": float(max(sc.std(), 1e-3))}
    A.write_json(work / "calib.json", calib)
    shutil.rmtree(work / "frames", ignore_errors=True)
    shutil.rmtree(work / "mixes", ignore_errors=True)
    return A.finish(work, final, {
        "stage": "nb", "config": {"audio": cfg.audio, "mel": cfg.mel, "nb": nb},
        "data": str(ds.root), "data_fingerprint": ds.fingerprint(), "species": list(ds.species),
        "views": [v.__dict__ for v in vs], "n_clips": int(clip_ok.sum()), "n_mixing_clips": int(len(_mixing_clips(cfg, ds, clip_ok))),
        "n_soundscapes": len(ss_files), "n_mixes": len(mix_tok[vs[0].name]),
        "teacher": ({"cache": Path(teacher_dir).name, "model": teacher.model_dir.name,
                     "n_matched": int((teacher.cols >= 0).sum()), "n_soundscapes_counted": n_taught_ss}
                    if teacher else None),
        "frames_counted": {v.name: int(tot[v.name].sum()) for v in vs}, "n_skipped": len(skipped),
        "skipped": [w for _, w in skipped][:200], "calib": calib, "seconds": timer.seconds})


def _encode(index, feats: np.ndarray) -> np.ndarray:
    """Nearest-centroid ids [t] uint16 of feature rows [t, d] with a faiss index."""
    if len(feats) == 0:
        return np.zeros(0, np.uint16)
    _, ids = index.search(np.ascontiguousarray(feats, np.float32), 1)
    return ids[:, 0].astype(np.uint16)


# --------------------------------------------------------------------------------------------
# Inference
# --------------------------------------------------------------------------------------------


class NBPredictor:
    """Shared STFT -> log-Mel / PCEN -> tokens per view -> summed NB table rows per frame ->
    smoothed top-k per window -> sigmoid of the standardised score."""

    name = NAME

    def __init__(self, *, cfg: "Config", species: list[str], views: list[_View], centroids: dict[str, np.ndarray],
                 tables: dict[str, np.ndarray], calib: dict):
        self.cfg, self.species = cfg, list(species)
        self.views, self.centroids, self.tables, self.calib = list(views), dict(centroids), dict(tables), dict(calib)
        self.prior = None
        self._ix: dict = {}

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_ix"} | {"_ix": {}}

    def _index(self, name: str):
        if name not in self._ix:
            import faiss

            c = np.ascontiguousarray(self.centroids[name], np.float32)
            ix = faiss.IndexFlatL2(c.shape[1])
            ix.add(c)
            self._ix[name] = ix
        return self._ix[name]

    def predict(self, x: np.ndarray, n: int, times: dict, shared: dict | None = None) -> np.ndarray:
        """Audio [samples] at cfg.audio.sr -> [n, n_species] probabilities of ``n`` windows."""
        import faiss

        from vocalprint.audio.decode import frame_windows
        from vocalprint.core.timing import Clock as _Clock

        c, nb = self.cfg, self.cfg.nb
        clk = _Clock(times)
        fronts = _frontends(self.views)
        key_ = ("nb-frontends", c.audio.sr, c.mel)
        if shared is not None and key_ in shared and all(f in shared[key_] for f in fronts):
            fe = shared[key_]
        else:
            # both front ends from the one STFT: ensemble members (another view set, the Mel heads) reuse them
            fe = front_ends(x, sr=c.audio.sr, cfg=c.mel, which=("logmel", "pcen") if shared is not None else fronts)
            if shared is not None:
                shared[key_] = fe
                if c.mel.frontend in fe:  # other members (HeadPredictor, student) reuse these frames
                    shared.setdefault(("mel", c.audio.sr, c.mel), fe[c.mel.frontend])
        clk.lap("mel")
        faiss.omp_set_num_threads(1)  # one file per process; threads inside would oversubscribe
        t = len(fe[fronts[0]])
        fs = np.zeros((t, len(self.species)), np.float32)
        toks = []
        for v in self.views:
            fr = fe[v.frontend].astype(np.float16)  # as the training frames were stored
            toks.append(_encode(self._index(v.name), _features(fr, v, _tokens_cfg(v, nb))))
        clk.lap("tokens")
        for v, tok in zip(self.views, toks):
            fs += v.weight * self.tables[v.name][tok.astype(np.int64)]
        bounds = frame_windows(t, n=n, sr=c.audio.sr, hop=c.mel.hop, window_s=c.audio.window_s)
        s = window_scores(fs, bounds, top_k=nb.top_k, width=nb.smooth_frames)
        z = (s - self.calib["mean"]) / self.calib["scale"]
        p = (1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))).astype(np.float32)
        clk.lap("head")
        return p


def load_predictor(folder: Path, cfg: "Config", species: list[str]) -> NBPredictor:
    """The ``tokens-nb`` predictor of a finished stage folder (every file checksum-verified)."""
    from vocalprint.core import artifacts as A

    folder = Path(folder)
    m = A.manifest(folder)
    if list(m["species"]) != list(species):
        raise A.ArtifactError(f"{folder}: built for other species than the dataset's ({len(m['species'])} "
                              f"vs {len(species)}); rebuild it")
    vs = [_View(**v) for v in m["views"]]
    cents = {v.name: np.load(A.verified(folder / f"codebook_{v.name}.npy")) for v in vs}
    tabs = {v.name: np.load(A.verified(folder / f"table_{v.name}.npy")) for v in vs}
    calib = json.loads(A.verified(folder / "calib.json").read_text())
    return NBPredictor(cfg=cfg, species=species, views=vs, centroids=cents, tables=tabs, calib=calib)
