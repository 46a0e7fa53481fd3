"""Several models as one: a weighted mean of their probabilities or log-odds."""
from __future__ import annotations

import numpy as np

from vocalprint.core.numeric import logit, sigmoid
from vocalprint.serving.submit import file_max as blend_file_max


class EnsemblePredictor:
    """Weighted average of several models' window probabilities (``mean``) or log-odds (``logit``).

    Members share the per-file log-Mel frames. Rank averaging is not offered: it needs every row of
    every file before any output, which the budgeted, checkpointing submit cannot wait for.

    ``weights_unnamed``: other weights for the species the teacher cannot name (a teacher member's
    ``columns`` < 0), e.g. BirdNET alone for the birds it names and a blend with a model trained on
    the competition's audio for the rest; ``weights`` then apply to the named species.

    ``file_max``: blend of each species' maximum over the file into every window, applied to the
    combined output (a frozen recipe's own post-processing, carried in its bundle). ``label``: the
    name it reports (a registry recipe's) instead of the member list.
    """

    def __init__(self, members: list, *, weights: list[float] | None = None, combine: str = "mean",
                 weights_unnamed: list[float] | None = None, file_max: float = 0.0, label: str | None = None):
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
        self.species_weights = None  # [members, species] when the unnamed species weigh otherwise
        if weights_unnamed:
            u = np.asarray(weights_unnamed, np.float64)
            if len(u) != len(members) or (u < 0).any() or u.sum() <= 0:
                raise ValueError(f"submit.weights_unnamed {list(u)} do not fit {len(members)} members")
            teachers = [m for m in members if getattr(m, "columns", None) is not None]
            if not teachers:
                raise ValueError("submit.weights_unnamed needs a teacher member (birdnet-*, perch-*) to tell "
                                 "which species it names")
            named = np.asarray(teachers[0].columns) >= 0
            self.species_weights = np.where(named[None, :], self.weights[:, None], (u / u.sum())[:, None])
            self.name += "+unnamed(" + ",".join(f"{x:.2f}" for x in u / u.sum()) + ")"
        if not 0.0 <= file_max <= 1.0:
            raise ValueError(f"file_max must lie in [0, 1], got {file_max}")
        self.file_max = float(file_max)
        if file_max:
            self.name += f"+file_max({file_max:g})"
        self.recipe = self.name
        if label:
            self.name = label

    @property
    def prior(self):
        return getattr(self.members[0], "prior", None)

    def predict(self, x: np.ndarray, n: int, times: dict, shared: dict | None = None) -> np.ndarray:
        shared = {} if shared is None else shared
        acc = None
        ws = getattr(self, "species_weights", None)  # absent in bundles pickled before it existed
        for i, m in enumerate(self.members):
            w = self.weights[i] if ws is None else ws[i]
            p = np.clip(m.predict(x, n, times, shared), 1e-6, 1 - 1e-6).astype(np.float64)
            v = logit(p) if self.combine == "logit" else p
            acc = w * v if acc is None else acc + w * v
        p = sigmoid(acc) if self.combine == "logit" else acc.astype(np.float32)
        return blend_file_max(p, getattr(self, "file_max", 0.0))  # absent in bundles pickled before it existed
