"""Inference: one picklable predictor per model, mapping 32-kHz audio to window probabilities."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np

from . import artifacts as A
from .audio import frame_windows
from .config import Config
from .mel import logmel, silence
from .parallel import process_cached
from .pool import pool_mel, pool_tokens
from .tokens import Codebook


def mel_frames(x: np.ndarray, cfg: Config, shared: dict | None) -> np.ndarray:
    """Log-Mel frames of ``x``, computed once per file when ensemble members share ``shared``."""
    key = ("mel", cfg.audio.sr, cfg.mel)
    if shared is not None and key in shared:
        return shared[key]
    frames = logmel(x, sr=cfg.audio.sr, cfg=cfg.mel)
    if shared is not None:
        shared[key] = frames
    return frames


class _Clock:
    def __init__(self, times: dict):
        self.times, self.t = times, time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.times[name] = self.times.get(name, 0.0) + now - self.t
        self.t = now


class HeadPredictor:
    """Mel front end -> window features (tokens or Mel statistics) -> a trained head."""

    def __init__(self, *, name: str, cfg: Config, species: list[str], head, kind: str,
                 book: Codebook | None = None, vectors: np.ndarray | None = None, idf: np.ndarray | None = None):
        self.name, self.cfg, self.species, self.head, self.kind = name, cfg, list(species), head, kind
        self.book, self.vectors, self.idf = book, vectors, idf

    def __getstate__(self):
        st = dict(self.__dict__)
        if self.book is not None and hasattr(self.book, "_ix"):  # faiss index: rebuilt in the worker
            st["book"] = Codebook(self.book.centroids, self.book.pca_a, self.book.pca_b, self.book.cfg)
        return st

    def predict(self, x: np.ndarray, n: int, times: dict, shared: dict | None = None) -> np.ndarray:
        """Audio [samples] at cfg.audio.sr -> [n, n_species] probabilities of ``n`` windows."""
        c = self.cfg
        clk = _Clock(times)
        frames = mel_frames(x, c, shared)
        clk.lap("mel")
        bounds = frame_windows(len(frames), n=n, sr=c.audio.sr, hop=c.mel.hop, window_s=c.audio.window_s)
        if self.kind == "stsg":
            tok = self.book.encode(frames)
            clk.lap("tokens")
            feats = pool_tokens(tok, bounds, vectors=self.vectors, idf=self.idf, pooling=c.features.pooling)
        else:
            feats = pool_mel(frames, bounds)
        clk.lap("pool")
        p = self.head.predict_proba(feats)
        clk.lap("head")
        return p


class LoudnessPredictor:
    """The species-blind baseline (``MODEL=loudness``): every species gets the window's loudness,
    the mean power of its Mel frames, as a probability (a logistic of dB, -50 dB -> 0.5). Nothing is
    trained; it shows how much of a model's AUC is "something is calling here"."""

    name = "loudness"

    def __init__(self, *, cfg: Config, species: list[str]):
        self.cfg, self.species, self.prior = cfg, list(species), None

    def predict(self, x: np.ndarray, n: int, times: dict, shared: dict | None = None) -> np.ndarray:
        c = self.cfg
        clk = _Clock(times)
        frames = mel_frames(x, c, shared)
        clk.lap("mel")
        out = np.full((n, len(self.species)), 0.5, np.float32)
        for i, (a, b) in enumerate(frame_windows(len(frames), n=n, sr=c.audio.sr, hop=c.mel.hop, window_s=c.audio.window_s)):
            if b > a:
                db = 10.0 * np.log10(max(float(np.mean(10.0 ** (frames[a:b].astype(np.float64) / 10.0))), 1e-12))
                out[i] = 1.0 / (1.0 + np.exp(-(db + 50.0) / 20.0))  # wide: no ties from saturation
        clk.lap("head")
        return out


def load_head_predictor(model: str, cfg: Config, *, tok_dir: Path, w2v_dir: Path, train_dir: Path) -> HeadPredictor:
    from . import w2v

    kind = model.split("-", 1)[0]
    m = A.manifest(train_dir)
    head = A.load_joblib(train_dir / "head.joblib")
    if hasattr(head, "n_jobs"):
        head.n_jobs = 1  # inference runs one process per core; threads inside would oversubscribe
    book = Codebook.load(tok_dir, cfg.tokens) if kind == "stsg" else None
    vectors, idf = w2v.load(w2v_dir) if kind == "stsg" else (None, None)
    return HeadPredictor(name=model, cfg=cfg, species=m["species"], head=head, kind=kind,
                         book=book, vectors=vectors, idf=idf)


BUNDLE_FILE = "predictor.joblib"


def save_bundle(pred, folder: Path, *, info: dict | None = None) -> Path:
    """Write a self-contained model bundle (the predictor, the model files it runs, and a
    checksummed manifest) that :func:`load_bundle` reads without the training data, e.g. inside
    an offline Kaggle kernel."""
    import copy
    import shutil

    from .config import to_dict

    folder = Path(folder)
    work = A.partial_dir(folder)
    pred = copy.copy(pred)
    if hasattr(pred, "members"):
        pred.members = [copy.copy(m) for m in pred.members]
    for i, p in enumerate((pred, *getattr(pred, "members", ()))):
        def keep(j: int | None, src: Path, i: int = i) -> Path:
            name = Path(f"m{i}_{src.name}" if j is None else f"m{i}_{j}_{src.name}")
            shutil.copyfile(src, work / name)
            return name  # relative: resolved by load_bundle

        for attr in getattr(p, "external", ()):
            setattr(p, attr, _each_path(getattr(p, attr), keep))
    A.dump_joblib(pred, work / BUNDLE_FILE)
    return A.finish(work, folder, {"stage": "bundle", "model": pred.name, "species": list(pred.species),
                                   "config": to_dict(pred.cfg), **(info or {})})


def load_bundle(folder: Path):
    """The predictor saved by :func:`save_bundle`, after every file's checksum matched the manifest."""
    folder = Path(folder)
    pred = A.load_joblib(folder / BUNDLE_FILE)
    from .config import upgrade

    for p in (pred, *getattr(pred, "members", ())):
        p.cfg = upgrade(p.cfg)
        for attr in getattr(p, "external", ()):
            setattr(p, attr, _each_path(getattr(p, attr), lambda j, v: A.verified(folder / v.name)))
    return pred


def _each_path(val, fn):
    """``fn(j, path)`` over a tuple of paths (j its index), or ``fn(None, path)`` on a single one;
    the result keeps the shape."""
    if isinstance(val, (tuple, list)):
        return tuple(fn(j, Path(v)) for j, v in enumerate(val))
    return fn(None, Path(val))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))).astype(np.float32)


class TeacherPredictor:
    """BirdNET/Perch over 3-s (5-s) chunks pooled into windows.

    ``zeroshot``: sigmoid of the teacher's own logit for species it knows (matched by scientific
    name), the probe head's score for the others. ``probe``: a linear head on the teacher's window
    embedding for every species.
    """

    external = ("model_path", "labels_path")  # files copied into a model bundle

    def __init__(self, *, name: str, cfg: Config, species: list[str], kind: str, model_path: Path,
                 labels_path: Path, columns: np.ndarray, head):
        self.name, self.cfg, self.species, self.kind = name, cfg, list(species), kind
        self.model_path, self.labels_path, self.columns, self.head = Path(model_path), Path(labels_path), columns, head
        self._net = None

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_net"} | {"_net": None}

    def net(self):
        if self._net is None:
            from . import teacher as TT

            cls = TT.Perch if self.cfg.teacher.model == "perch" else TT.BirdNET
            self._net = process_cached(
                ("teacher", str(self.model_path), self.cfg.teacher.threads),
                lambda: cls(self.model_path, labels_path=self.labels_path, num_threads=self.cfg.teacher.threads))
        return self._net

    def predict(self, x: np.ndarray, n: int, times: dict, shared: dict | None = None) -> np.ndarray:
        clk = _Clock(times)
        net = self.net()
        clk.lap("load")
        if self.cfg.teacher.model == "perch":
            logits, emb = net.window_scores(x)
        else:
            logits, emb = net.window_scores(x, stride_s=self.cfg.teacher.stride_s, sr=self.cfg.audio.sr)
        clk.lap("model")
        logits, emb = logits[:n], emb[:n]
        if len(logits) < n:  # the header promised more windows than the audio holds
            pad = n - len(logits)
            logits = np.concatenate([logits, np.repeat(logits[-1:], pad, 0)])
            emb = np.concatenate([emb, np.repeat(emb[-1:], pad, 0)])
        p = self.head.predict_proba(emb)
        if self.kind == "zeroshot":
            known = self.columns >= 0
            p[:, known] = _sigmoid(logits[:, self.columns[known]])
        clk.lap("head")
        return p


class StudentPredictor:
    """The distilled student: log-Mel windows -> TFLite CNN(s) -> sigmoid of the species logits.

    ``model_paths``: one exported student, or several (``distill.members``) whose logits are
    averaged (an ensemble in log-odds)."""

    external = ("model_paths",)

    def __init__(self, *, name: str, cfg: Config, species: list[str], model_paths: Sequence[Path]):
        self.name, self.cfg, self.species = name, cfg, list(species)
        self.model_paths = tuple(Path(p) for p in model_paths)
        if not self.model_paths:
            raise ValueError("a student predictor needs at least one model file")
        self._run = None

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_run"} | {"_run": None}

    def __setstate__(self, state: dict) -> None:
        if "model_path" in state:  # a bundle pickled before students could be ensembles
            state["model_paths"] = (state.pop("model_path"),)
        self.__dict__.update(state)

    def runner(self):
        """The TFLite interpreter(s) (one set per process, made on first use)."""
        from .distill import StudentEnsemble, StudentRunner

        if self._run is None:
            key = ("student", *map(str, self.model_paths))
            self._run = process_cached(key, lambda: StudentEnsemble(
                [StudentRunner(p, threads=1) for p in self.model_paths]))
        return self._run

    def predict(self, x: np.ndarray, n: int, times: dict, shared: dict | None = None) -> np.ndarray:
        from .config import frames_per_window

        c = self.cfg
        clk = _Clock(times)
        run = self.runner()
        clk.lap("load")  # the interpreters, once per process
        frames = mel_frames(x, c, shared)
        clk.lap("mel")
        shift = c.submit.student_shift_s  # each row: max over its window and the windows shifted by -/+ shift
        offsets = (-shift, 0.0, shift) if shift > 0 else (0.0,)
        wins, rows = shifted_windows(frames, n=n, fpw=frames_per_window(c), offsets_s=offsets, cfg=c)
        out = run.predict(wins)["logits"][rows].max(axis=1)
        clk.lap("model")
        return _sigmoid(out)


def student_windows(frames: np.ndarray, *, n: int, fpw: int, cfg: Config) -> np.ndarray:
    """[t, n_mels] frames -> [n, fpw, n_mels] scoring windows (padded past the end with silence:
    -100 dB for log-Mel, 0 for PCEN)."""
    bounds = frame_windows(len(frames), n=n, sr=cfg.audio.sr, hop=cfg.mel.hop, window_s=cfg.audio.window_s)
    out = np.full((n, fpw, frames.shape[1]), silence(cfg.mel), np.float32)
    for i, (a, b) in enumerate(bounds):
        m = min(b - a, fpw)
        out[i, :m] = frames[a:a + m]
    return out


def shifted_windows(frames: np.ndarray, *, n: int, fpw: int, offsets_s: tuple[float, ...], cfg: Config
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Windows of ``fpw`` frames starting at ``i * window_s + d`` for each row i and offset d of
    ``offsets_s``, each distinct start once (padded with silence outside the audio, as
    :func:`student_windows`): ``([m, fpw, n_mels], rows [n, len(offsets_s)])`` where ``rows[i]``
    indexes row i's windows. A window starts at the frame holding its start time, so offset 0 gives
    the :func:`student_windows` window, and with offsets (-2.5, 0, 2.5) row i's +2.5 s window is
    row i+1's -2.5 s one (2n + 1 windows in all)."""
    off = np.asarray(offsets_s, np.float64)
    if off.size == 0 or (np.abs(off) >= 2 * cfg.audio.window_s).any():
        raise ValueError(f"window offsets must lie within ±{2 * cfg.audio.window_s} s, got {tuple(offsets_s)}")
    fps = cfg.audio.sr / cfg.mel.hop
    t = np.arange(n)[:, None] * cfg.audio.window_s + off[None, :]
    starts = np.ceil(np.round(t * fps, 6)).astype(np.int64)
    uniq, inv = np.unique(starts, return_inverse=True)
    out = np.full((len(uniq), fpw, frames.shape[1]), silence(cfg.mel), np.float32)
    for j, a in enumerate(uniq):
        lo, hi = max(int(a), 0), min(int(a) + fpw, len(frames))
        if hi > lo:
            out[j, lo - a:hi - a] = frames[lo:hi]
    return out, inv.reshape(n, len(off))


class EnsemblePredictor:
    """Weighted average of several models' window probabilities (``mean``) or log-odds (``logit``).

    Members share the per-file log-Mel frames. Rank averaging is not offered: it needs every row of
    every file before any output, which the budgeted, checkpointing submit cannot wait for.
    """

    def __init__(self, members: list, *, weights: list[float] | None = None, combine: str = "mean"):
        if not members:
            raise ValueError("an ensemble needs at least one member (submit.members)")
        if combine not in ("mean", "logit"):
            raise ValueError(f"submit.combine must be mean or logit, got {combine!r}")
        sp = members[0].species
        for m in members[1:]:
            if list(m.species) != list(sp):
                raise ValueError(f"ensemble members {members[0].name} and {m.name} have different species")
        w = np.asarray(weights if weights else [1.0] * len(members), np.float64)
        if len(w) != len(members) or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"submit.weights {list(w)} do not fit {len(members)} members")
        self.members, self.weights, self.combine = members, w / w.sum(), combine
        self.name = "ensemble(" + "+".join(f"{m.name}:{x:.2f}" for m, x in zip(members, self.weights)) + ")"
        self.species, self.cfg = list(sp), members[0].cfg

    @property
    def prior(self):
        return getattr(self.members[0], "prior", None)

    def predict(self, x: np.ndarray, n: int, times: dict, shared: dict | None = None) -> np.ndarray:
        shared = {} if shared is None else shared
        acc = None
        for m, w in zip(self.members, self.weights):
            p = np.clip(m.predict(x, n, times, shared), 1e-6, 1 - 1e-6).astype(np.float64)
            v = np.log(p / (1 - p)) if self.combine == "logit" else p
            acc = w * v if acc is None else acc + w * v
        return (1 / (1 + np.exp(-acc)) if self.combine == "logit" else acc).astype(np.float32)
