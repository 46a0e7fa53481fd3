"""Building the configuration (defaults, a YAML file, ``--set key=value``) and fingerprinting it.

Each stage's artifact folder is named by :func:`fingerprint` of the fields that change its
result; fields listed in ``_NOT_HASHED`` (threads, paths, progress bars) never are.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Mapping

from .errors import ConfigError
from .schema import Config


_NOT_HASHED = {"workers", "n_jobs", "progress", "executor", "threads", "chunk_batch", "infer_stride_s", "spectrogram"}


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
