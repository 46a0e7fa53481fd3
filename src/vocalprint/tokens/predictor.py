"""Predictors of the window-feature models: pooled tokens or Mel statistics under a trained head
(``stsg-*``, ``melstats-*``), and the species-blind ``loudness`` baseline."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from vocalprint.audio.decode import frame_windows
from vocalprint.audio.mel import mel_frames
from vocalprint.config import Config
from vocalprint.core import artifacts as A
from vocalprint.core.timing import Clock
from vocalprint.tokens.codebook import Codebook
from vocalprint.tokens.pool import pool_mel, pool_tokens


class HeadPredictor:
    """Mel front end -> window features (tokens or Mel statistics) -> a trained head."""

    def __init__(self, *, name: str, cfg: Config, species: list[str], head, kind: str,
                 book: Codebook | None = None, vectors: np.ndarray | None = None, idf: np.ndarray | None = None):
        self.name, self.cfg, self.species, self.head, self.kind = name, cfg, list(species), head, kind
        self.book, self.vectors, self.idf = book, vectors, idf

    def predict(self, x: np.ndarray, n: int, times: dict, shared: dict | None = None) -> np.ndarray:
        """Audio [samples] at cfg.audio.sr -> [n, n_species] probabilities of ``n`` windows."""
        c = self.cfg
        clk = Clock(times)
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
        clk = Clock(times)
        frames = mel_frames(x, c, shared)
        clk.lap("mel")
        out = np.full((n, len(self.species)), 0.5, np.float32)
        for i, (a, b) in enumerate(frame_windows(len(frames), n=n, sr=c.audio.sr, hop=c.mel.hop, window_s=c.audio.window_s)):
            if b > a:
                db = 10.0 * np.log10(max(float(np.mean(10.0 ** (frames[a:b].astype(np.float64) / 10.0))), 1e-12))
                out[i] = 1.0 / (1.0 + np.exp(-(db + 50.0) / 20.0))  # wide: no ties from saturation
        clk.lap("head")
        return out


def load_head_predictor(model: str, cfg: Config, *, tok_dir: Path | None, w2v_dir: Path | None,
                        train_dir: Path) -> HeadPredictor:
    """A window-feature head; the token folders are read for ``stsg-*`` only."""
    from vocalprint.tokens import w2v

    kind = model.split("-", 1)[0]
    m = A.manifest(train_dir)
    head = A.load_joblib(train_dir / "head.joblib")
    if hasattr(head, "n_jobs"):
        head.n_jobs = 1  # inference runs one process per core; threads inside would oversubscribe
    book = Codebook.load(tok_dir, cfg.tokens) if kind == "stsg" else None
    vectors, idf = w2v.load(w2v_dir) if kind == "stsg" else (None, None)
    return HeadPredictor(name=model, cfg=cfg, species=m["species"], head=head, kind=kind,
                         book=book, vectors=vectors, idf=idf)
