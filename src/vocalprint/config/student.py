"""The student's section (``distill.*``): architecture, token front, training and mixes."""
from __future__ import annotations

from dataclasses import dataclass

from .errors import ConfigError, check_choice

TOKEN_CENTERS = ("median", "mean", "running")  # distill.token_center (student.token_front)
TOKEN_QUANTS = ("weights", "int8", "body")  # distill.token_quant (student.export.int8_quant)


@dataclass(frozen=True)
class StudentConfig:
    """Student architecture and training options.

    Architecture: a 2-D CNN over (time, mel). Input affine (dB -> about -2..2), plus a constant
    mel-position channel (``freq_coord``: without it a shallow CNN cannot tell which band lit up);
    a stem of ``width`` channels (default one 5x5 conv, stride 4: 312x128 -> 78x32), then
    ``depth`` stages of ``convs`` x [3x3 conv, BatchNorm, ReLU] + 2x2 max-pool, channels doubling
    from ``width`` (at most ``max_doublings`` times); a learned per-channel pooling over the
    remaining frequency positions, mean+max over time, and a dense ReLU ``emb_dim`` embedding
    feeding the heads. Defaults: 1,365,373 weights when training with 29 species (1,102,205 in
    the exported inference graph; the 1024-d ``emb_proj`` is 263k of the rest), times
    ``members`` (2) students averaged at inference. Width 48 and 12,000 mixes replaced width 32
    and 6,000 (dev AUC 0.847 -> 0.867, docs/results.md).
    """

    width: int = 48
    depth: int = 4
    # "mel": the 2-D CNN over log-Mel windows; "tokens": a CNN over the window's vocalprint
    # tokens (MODEL=tokens-cnn; ``token_body``). Every frame becomes the nearest centroid of each
    # of several Faiss K-means codebooks fitted on the training windows (the assignment runs in the
    # graph): one per group of ``n_mels / token_groups`` adjacent bands (``token_k``) and,
    # optionally, one over whole frames (``token_k_frame``, spectral shape: each frame
    # standardised; 0 = none). Each token id is a learned ``token_dim`` vector (twice that for
    # whole frames). Defaults, the best of the recipes tried on the dev set (docs/results.md, "Making the
    # tokens good"): 32 groups of 4 bands, K = 16 each, no whole-frame codebook (one member 0.864,
    # against 0.794 for 16 groups of K = 256 with a whole-frame K = 1,024, at about 2/5 of the cost)
    front: str = "mel"
    token_dim: int = 16
    token_groups: int = 32
    token_k: int = 16
    token_k_frame: int = 0
    # band groups keep their level above the window's per-band centre (True) or are standardised
    # per frame like the whole-frame codebook (False: shape only, as tokens-nb's sub-bands)
    token_level: bool = True
    token_sample: int = 200_000  # frames sampled (seeded) from the training windows per K-means fit
    # per-band background removed before tokenizing: the window's own "mean" or "median"; or
    # "running", each frame's mean over the frames within ``token_running`` of the window's length
    # (cut at the window's edges), which a whole file computes once for all its windows. The
    # whole-file form (student.fcn) reads a "running" student with its own box and a "mean" one
    # with a box of the window's length about each frame (an approximation, measured in
    # docs/results.md); a "median" one has none
    token_center: str = "mean"
    token_running: float = 0.5  # the running centre's frames either side, as a share of the window's frames
    # the int8 files of a token student: "body" (the token front in float, every layer after it
    # full integer, calibrated on training windows), "weights" (int8 weights, float activations)
    # or "int8" (full integer throughout: the in-graph nearest-centroid search on int8 distances)
    token_quant: str = "body"
    # residual quantisation: stage s + 1 of every codebook (K centroids again) quantises what
    # stage s left of the frame's features; a codebook's token vector is the sum of its stages'
    # learned vectors. S stages of K give K^S cells for S x K distances per frame (one codebook of
    # K^S cells needs K^S distances). 2 stages scored below 1 on dev (docs/results.md)
    token_stages: int = 1
    # "1d": a 1-D CNN over time of the frames' concatenated token vectors; "2d": the Mel student's
    # 2-D body over a [time, band group] image of the groups' token vectors (the whole-frame
    # token's vector repeated at every group), its stem striding over time only
    token_body: str = "2d"
    emb_dim: int = 256
    stem: str = "stride4"  # "stride4" (5x5 conv, stride 4) | "conv_pool" | "conv" (stride 2)
    convs: int = 1  # 3x3 convs per stage
    max_doublings: int = 3  # channels stop doubling after this many stages
    freq_coord: bool = True  # add a mel-position input channel (CoordConv)
    # add a background-removed input channel: each band minus its mean over the window (in dB), a
    # cheap stand-in for PCEN / per-band normalisation that leaves the absolute level channel intact
    band_norm: bool = False
    freq_pool: str = "learned"  # "learned" per-channel weights over frequency | "mean"
    dropout: float = 0.2
    epochs: int = 30
    # at most about this many window presentations in all: epochs = min(epochs, ceil(budget /
    # windows)), so a large set trains fewer epochs over more data (0: always ``epochs``). At the
    # dev sets' ~13,000 windows it does not bind; at the ``max_windows`` cap (about 180,000 of them
    # training windows, a tenth of the recordings being held out) it allows 6 epochs (16,900 steps
    # of 64, about 2.9 times a 30-epoch run on dev-wide), which keeps two members of either
    # student inside one 12-h Kaggle session at BirdCLEF size (docs/results.md)
    window_budget: int = 1_000_000
    batch: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0  # linear warm-up, then cosine decay to 0 over the rest
    seed: int = 0
    # students trained on the same windows from different initial weights and batch orders
    # (member j trains with seed + 1000 j); inference averages their logits. Each member is its own
    # cached stage, so raising this trains only the new members. Two members: dev AUC 0.894 and
    # 0.897 for two seeds, against 0.867-0.899 for four lone students (docs/results.md)
    members: int = 2
    w_emb: float = 1.0
    w_soft: float = 1.0
    w_label: float = 1.0
    w_meta: float = 0.2
    temperature: float = 2.0
    emb_loss: str = "mse"  # "mse" on standardised teacher embeddings | "cosine"
    specaugment: bool = True  # time/frequency masks + random gain, training batches only
    time_masks: int = 2
    time_mask_max: int = 40  # frames (62.5 per second)
    freq_masks: int = 2
    freq_mask_max: int = 16  # mel bands
    gain_db: float = 6.0  # uniform random offset in [-gain_db, +gain_db] dB
    # auxiliary metadata head (location, rating). Off by default: on the dev set (rating only, no
    # coordinates) it cost 0.04-0.07 AUC in two seeds; turn on where train.csv has coordinates
    metadata: bool = False
    # probability that a training window is summed (in power) with another random training window;
    # the pair's targets: max of the teacher logits and of the labels, no embedding or metadata target
    mix_pairs: float = 0.5
    max_windows: int = 200_000  # the stage trains on at most this many windows (memory-mapped)
    # at most this many 5-s windows of the unlabelled train soundscapes (whole files, a seeded
    # sample) go to a student, and the teacher's cache for the students runs on those files only.
    # 40,000 is what the uniform sample of ``max_windows`` took from them at BirdCLEF size (about a
    # third of the 116,700 in 9,726 minutes), so the teacher no longer labels soundscapes the
    # student never sees; where the soundscapes hold fewer windows nothing changes. Not with
    # self-training rounds (they pseudo-label every soundscape). 0: every soundscape
    max_soundscape_windows: int = 40_000
    n_mixes: int = 12000  # synthetic 5-s field windows (focal clips over quiet soundscape stretches / noise)
    mix_clips_per_species: int = 20  # clips per primary label in the mixing pool
    mix_clips_per_batch: int = 128  # clips decoded and held for one batch of 200 mixes (bounds memory)
    mix_soundscapes: int = 50  # train soundscapes (seeded sample) whose quiet stretches are backgrounds
    # noisy-student self-training (vocalprint.student.rounds): after the first students, ``rounds``
    # times: pseudo-label windows of the train soundscapes starting every ``pl_hop_s`` (time-shift
    # noise) with the previous round's members (mean logits, sigmoid), blended for the species the
    # teacher names as ``pl_teacher_weight`` x sigmoid(teacher logit) + the rest x the students',
    # then p -> p ** ``pl_power`` (> 1 sharpens towards 0); every member is retrained with them as
    # soft labels. 0 rounds: the first students alone
    rounds: int = 0
    pl_power: float = 1.0
    pl_teacher_weight: float = 0.5
    pl_hop_s: float = 2.5

    def __post_init__(self) -> None:
        check_choice("distill.front", self.front, ("mel", "tokens"))
        check_choice("distill.token_center", self.token_center, TOKEN_CENTERS)
        check_choice("distill.token_quant", self.token_quant, TOKEN_QUANTS)
        check_choice("distill.token_body", self.token_body, ("1d", "2d"))
        check_choice("distill.stem", self.stem, ("stride4", "conv_pool", "conv"))
        check_choice("distill.freq_pool", self.freq_pool, ("learned", "mean"))
        check_choice("distill.emb_loss", self.emb_loss, ("mse", "cosine"))
        for name in ("members", "token_stages", "epochs", "batch"):
            if getattr(self, name) < 1:
                raise ConfigError(f"distill.{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.token_running <= 1:
            raise ConfigError(f"distill.token_running must be in (0, 1] of the window, got {self.token_running}")
        if self.max_soundscape_windows < 0:
            raise ConfigError(f"distill.max_soundscape_windows must be >= 0 (0: every soundscape), "
                              f"got {self.max_soundscape_windows}")
        if self.window_budget < 0:
            raise ConfigError(f"distill.window_budget must be >= 0 (0: no budget), got {self.window_budget}")
        if self.rounds < 0:
            raise ConfigError(f"distill.rounds must be >= 0, got {self.rounds}")
        if not 0.0 <= self.pl_teacher_weight <= 1.0:
            raise ConfigError(f"distill.pl_teacher_weight must lie in [0, 1], got {self.pl_teacher_weight}")
        for name in ("pl_power", "pl_hop_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"distill.{name} must be > 0, got {getattr(self, name)}")
