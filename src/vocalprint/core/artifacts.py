"""Hashed stage folders, atomic writes, manifests with checksums, verified pickle loading.

A stage writes into ``<root>/<stage>/<key>.partial/`` (kept across a killed run so per-file work
resumes), then :func:`finish` records every file's sha256 in ``manifest.json`` and renames the
folder to ``<root>/<stage>/<key>/``. A folder without a complete manifest is never read. While a
process builds a stage it holds an exclusive lock on ``<key>.partial/.lock``, so a second process
that would build the same stage into the same folder stops with an error instead.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import platform
import shutil
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

try:
    import fcntl
except ImportError:  # not POSIX: no locking
    fcntl = None

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"
MANIFEST_VERSION = 1


class ArtifactError(RuntimeError):
    """A missing, incomplete or tampered artifact."""


def sha256(path: Path, *, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


@contextlib.contextmanager
def atomic_path(path: str | Path, *, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary sibling path (ending in ``suffix``, for writers that insist on one); on
    success it is moved onto ``path`` with ``os.replace``, on failure removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _jsonable(o: Any) -> Any:
    """Config dataclasses as objects (readable back as dicts), NumPy scalars as numbers, else str."""
    import dataclasses

    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return dataclasses.asdict(o)
    if isinstance(o, np.generic):
        return o.item()
    return str(o)


def write_json(path: str | Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_jsonable))


def save_npy(path: str | Path, arr: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, arr)


def stage_dir(root: Path, stage: str, key: str) -> Path:
    return Path(root) / stage / key


def is_complete(path: Path) -> bool:
    m = Path(path) / MANIFEST
    if not m.is_file():
        return False
    try:
        return bool(json.loads(m.read_text()).get("complete"))
    except (OSError, json.JSONDecodeError):
        return False


def manifest(path: Path) -> dict:
    if not is_complete(path):
        raise ArtifactError(f"{path}: no complete artifact here (run its stage first)")
    return json.loads((Path(path) / MANIFEST).read_text())


_HELD: dict[Path, int] = {}  # lock file -> its descriptor, for the stages this process is building
LOCK = ".lock"


def partial_dir(final: Path) -> Path:
    """The work folder of a stage under construction (created; kept if the run is killed), after
    taking the stage's lock (released by :func:`finish`, or by the operating system when the
    process ends). Another process holding it -> :class:`ArtifactError`."""
    final = Path(final)
    p = final.with_name(final.name + ".partial")
    p.mkdir(parents=True, exist_ok=True)
    lock = p / LOCK
    if fcntl is not None and lock not in _HELD:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ArtifactError(f"{final}: another process is building this stage (it holds {lock}); run "
                                "again when it has finished, and its result will be reused") from None
        _HELD[lock] = fd
    return p


def _release(work: Path, final: Path) -> None:
    """Drop the lock taken on ``work`` (now moved to ``final``)."""
    fd = _HELD.pop(work / LOCK, None)
    with contextlib.suppress(FileNotFoundError):
        (final / LOCK).unlink()
    if fd is not None:
        os.close(fd)


def _versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name in ("numpy", "librosa", "faiss-cpu", "gensim", "scikit-learn", "lightgbm", "ai-edge-litert"):
        with contextlib.suppress(md.PackageNotFoundError):
            out[name] = md.version(name)
    return out


def finish(work: Path, final: Path, info: dict) -> Path:
    """Checksum every file in ``work``, write the manifest, and move ``work`` to ``final``."""
    files = {}
    for p in sorted(work.rglob("*")):
        if p.is_file() and p.name.endswith(".tmp"):  # half-written by a killed run: not part of it
            p.unlink()
        elif p.is_file() and p.name != MANIFEST and p != work / LOCK:
            files[str(p.relative_to(work))] = sha256(p)
    body = dict(info, complete=True, manifest_version=MANIFEST_VERSION, files=files,
                versions=_versions(), finished=time.strftime("%Y-%m-%dT%H:%M:%S"))
    write_json(work / MANIFEST, body)
    if final.exists():  # an incomplete leftover (complete ones are never rebuilt)
        shutil.rmtree(final)
    os.replace(work, final)
    _release(work, final)
    return final


def verified(path: str | Path) -> Path:
    """Return ``path`` after checking its sha256 against the manifest of its stage folder."""
    path = Path(path)
    folder = path.parent
    while not (folder / MANIFEST).is_file():
        if folder.parent == folder:
            raise ArtifactError(f"{path}: not inside a vocalprint artifact folder; refusing to load it")
        folder = folder.parent
    files = manifest(folder)["files"]
    rel = str(path.relative_to(folder))
    if rel not in files:
        raise ArtifactError(f"{path}: not listed in {folder / MANIFEST}; refusing to load it")
    if sha256(path) != files[rel]:
        raise ArtifactError(f"{path}: checksum differs from {folder / MANIFEST}; the file was changed "
                            "after it was written. Refusing to load it (delete the folder to rebuild)")
    return path


def load_joblib(path: str | Path) -> Any:
    """Unpickle a project artifact, only after its checksum matched the manifest (pickles are code)."""
    import joblib

    return joblib.load(verified(path))


def dump_joblib(obj: Any, path: str | Path) -> None:
    import joblib

    with atomic_path(path) as tmp:
        joblib.dump(obj, tmp)


class Timer:
    """Collects wall seconds per named step: ``with t("mel"): ...``; ``t.seconds`` -> dict."""

    def __init__(self, stage: str = "") -> None:
        self.stage = stage
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            dt = time.perf_counter() - t0
            self.seconds[name] = self.seconds.get(name, 0.0) + dt
            log.info("%s%s: %.1f s", f"{self.stage} " if self.stage else "", name, dt)
