"""The ``tokens-nb`` predictor: a finished stage folder's codebooks, tables and calibration applied
to audio (pickled into model bundles)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vocalprint.core.numeric import sigmoid
from vocalprint.core.parallel import one_blas_thread

from vocalprint.tokens.nb.table import window_scores
from vocalprint.tokens.nb.views import View, front_ends, view_front_ends, view_tokens

if TYPE_CHECKING:  # pragma: no cover
    from vocalprint.config import Config

NAME = "tokens-nb"


class NBPredictor:
    """Shared STFT -> log-Mel / PCEN -> tokens per view -> summed NB table rows per frame ->
    smoothed top-k per window -> sigmoid of the standardised score."""

    name = NAME

    def __init__(self, *, cfg: "Config", species: list[str], views: list[View], centroids: dict[str, np.ndarray],
                 tables: dict[str, np.ndarray], calib: dict):
        self.cfg, self.species = cfg, list(species)
        self.views, self.centroids, self.tables, self.calib = list(views), dict(centroids), dict(tables), dict(calib)
        self.prior = None
        self._near: dict = {}

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_near"} | {"_near": {}}

    def __setstate__(self, state: dict) -> None:
        state.pop("_ix", None)  # a bundle pickled when the search was a Faiss index
        self.__dict__.update(state)
        self.__dict__.setdefault("_near", {})

    def nearest(self) -> dict:
        """Each view's nearest-centroid search (:class:`~vocalprint.tokens.codebook.Nearest`),
        made on first use and not pickled."""
        if not self._near:
            from vocalprint.tokens.codebook import Nearest

            self._near = {v.name: Nearest(self.centroids[v.name]) for v in self.views}
        return self._near

    def predict(self, x: np.ndarray, n: int, times: dict, shared: dict | None = None) -> np.ndarray:
        """Audio [samples] at cfg.audio.sr -> [n, n_species] probabilities of ``n`` windows."""
        from vocalprint.audio.decode import frame_windows
        from vocalprint.core.timing import Clock

        c, nb = self.cfg, self.cfg.nb
        clk = Clock(times)
        fronts = view_front_ends(self.views)
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
        t = len(fe[fronts[0]])
        fs = np.zeros((t, len(self.species)), np.float32)
        with one_blas_thread():  # one file per process; threads inside would oversubscribe
            toks = view_tokens(fe, self.views, nb, self.nearest())
        clk.lap("tokens")
        for v, tok in zip(self.views, toks):
            fs += v.weight * self.tables[v.name][tok.astype(np.int64)]
        bounds = frame_windows(t, n=n, sr=c.audio.sr, hop=c.mel.hop, window_s=c.audio.window_s)
        s = window_scores(fs, bounds, top_k=nb.top_k, width=nb.smooth_frames)
        z = (s - self.calib["mean"]) / self.calib["scale"]
        p = sigmoid(z)
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
    vs = [View(**v) for v in m["views"]]
    cents = {v.name: np.load(A.verified(folder / f"codebook_{v.name}.npy")) for v in vs}
    tabs = {v.name: np.load(A.verified(folder / f"table_{v.name}.npy")) for v in vs}
    calib = json.loads(A.verified(folder / "calib.json").read_text())
    return NBPredictor(cfg=cfg, species=species, views=vs, centroids=cents, tables=tabs, calib=calib)
