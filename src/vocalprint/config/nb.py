"""The ``tokens-nb`` section (``nb.*``): views, mixes, counting and scoring."""
from __future__ import annotations

from dataclasses import dataclass

from .errors import ConfigError, check_choice

VIEW_NAMES = ("logmel", "pcen", "pcen1", "subbands")


@dataclass(frozen=True)
class NBConfig:
    """Everything that changes the ``tokens-nb`` tables. Defaults: the 4-view recipe (log-Mel,
    two PCEN codebooks of K=512, four sub-band codebooks of 128): 0.780 macro AUC on the dev set
    with seeds 0 and 1 (K=1024: 0.773 and 0.785, 1.22 times the inference time; two views: 0.763)."""

    views: tuple[str, ...] = ("logmel", "pcen", "pcen1", "subbands")  # any of logmel, pcen, pcen1 (PCEN, seed+1), subbands
    k: int = 512  # codebook size per view (subbands: k // 4 per band group)
    n_mixes: int = 2000  # synthetic 5-s mixes counted beside the focal clips
    max_clips_per_species: int = 20  # focal clips (per primary label) in the mixing pool
    clips_per_batch: int = 128  # clips decoded and held for one batch of mixes (bounds memory)
    sample_frames: int = 300_000  # K-means fit sample per view (sample * n_mels * 4 bytes)
    alpha: float = 1.0  # additive smoothing of the token counts
    smooth_frames: int = 9  # moving average of frame scores (odd; 1 = off)
    top_k: int = 8  # a window scores the mean of its top_k frame scores
    seed: int = 0
    max_clip_s: float = 30.0  # a mixing clip is cut to its first max_clip_s seconds (0 = whole)
    max_soundscapes: int = 50  # train soundscapes used as mix backgrounds and in the K-means sample
    mix_batch: int = 250  # mixes made (and seeded) per batch; bounds mix audio in memory
    # teacher-taught targets (0 = off: no teacher run). For species the teacher knows a frame's
    # target is (1 - w) * its carried label + w * the teacher's probability for its 5-s window, on
    # the mixes and on the (otherwise unlabelled) train soundscapes, which are counted only then.
    teacher_weight: float = 0.0

    def __post_init__(self) -> None:
        for v in self.views:
            check_choice("nb.views", v, VIEW_NAMES)
        if not self.views:
            raise ConfigError("nb.views: at least one view is needed")
        if len(set(self.views)) != len(self.views):
            raise ConfigError(f"nb.views: a view is listed twice in {self.views}")
