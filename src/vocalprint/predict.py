"""Inference: one picklable predictor per model, mapping 32-kHz audio to window probabilities."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from . import artifacts as A
from .audio import frame_windows
from .config import Config
from .mel import logmel
from .pool import pool_mel, pool_tokens
from .tokens import Codebook


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

    def predict(self, x: np.ndarray, n: int, times: dict) -> np.ndarray:
        """Audio [samples] at cfg.audio.sr -> [n, n_species] probabilities of ``n`` windows."""
        c = self.cfg
        clk = _Clock(times)
        frames = logmel(x, sr=c.audio.sr, cfg=c.mel)
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
    """Write a self-contained model bundle (the predictor and a checksummed manifest) that
    :func:`load_bundle` reads without the training data, e.g. inside an offline Kaggle kernel."""
    from .config import to_dict

    folder = Path(folder)
    work = A.partial_dir(folder)
    A.dump_joblib(pred, work / BUNDLE_FILE)
    return A.finish(work, folder, {"stage": "bundle", "model": pred.name, "species": list(pred.species),
                                   "config": to_dict(pred.cfg), **(info or {})})


def load_bundle(folder: Path):
    """The predictor saved by :func:`save_bundle`, after its checksum matched the manifest."""
    return A.load_joblib(Path(folder) / BUNDLE_FILE)
