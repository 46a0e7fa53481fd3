"""Finding the artifacts the notebooks read: complete stage folders, the newest
``mels -> tokens -> w2v -> features`` chain, and a stage's config rebuilt from its manifest."""
from __future__ import annotations

import ast
import logging
from dataclasses import dataclass
from pathlib import Path

from vocalprint.core import artifacts as A

log = logging.getLogger(__name__)
# src/vocalprint/tools/report/folders.py -> the repository root (holds Makefile)
REPO = Path(__file__).resolve().parents[4]  # relative data paths in manifests were given from here
CHAIN = ("mels", "tokens", "w2v", "features")


def same_folder(a: str | Path | None, b: str | Path | None) -> bool:
    """True if two folder names point at the same folder; relative ones are tried against the
    current directory and the repository (where ``make`` runs)."""
    if not a or not b:
        return False

    def cands(p):
        p = Path(p).expanduser()
        return {p.resolve()} if p.is_absolute() else {(Path.cwd() / p).resolve(), (REPO / p).resolve()}

    return bool(cands(a) & cands(b))


@dataclass(frozen=True)
class StageFolder:
    """One chosen artifact folder: where, when finished, and how many complete ones were eligible."""

    stage: str
    path: Path
    finished: str
    candidates: int
    manifest: dict

    def __str__(self) -> str:
        more = f"newest of {self.candidates} complete" if self.candidates > 1 else "the only complete one"
        return f"{self.stage}/{self.path.name} (finished {self.finished}; {more})"


def complete_folders(root: Path, stage: str) -> list[tuple[Path, dict]]:
    """Complete folders of ``stage`` under ``root`` with their manifests, newest ``finished`` first."""
    d = Path(root) / stage
    out = [(p, A.manifest(p)) for p in d.iterdir() if p.is_dir() and A.is_complete(p)] if d.is_dir() else []
    return sorted(out, key=lambda pm: (pm[1].get("finished", ""), (pm[0] / A.MANIFEST).stat().st_mtime),
                  reverse=True)


def latest_chain(root: Path, data_dir: str | Path | None = None) -> dict[str, StageFolder]:
    """The newest complete ``mels -> tokens -> w2v -> features`` chain, each built on the one before.

    ``mels`` folders made from ``data_dir`` are preferred (any mels folder if none was). Raises
    :class:`~vocalprint.core.artifacts.ArtifactError` naming the first stage that has no folder.
    """
    chain: dict[str, StageFolder] = {}
    prev = None
    for stage in CHAIN:
        cands = complete_folders(root, stage)
        if prev is None and data_dir is not None:
            mine = [c for c in cands if same_folder(c[1].get("data"), data_dir)]
            if cands and not mine:
                log.warning("no mels folder under %s was made from %s; using the newest of any data", root, data_dir)
            cands = mine or cands
        elif prev is not None:
            cands = [c for c in cands if list(c[1].get("upstream") or []) == [prev.name]]
        if not cands:
            on = f" built on {CHAIN[CHAIN.index(stage) - 1]}/{prev.name}" if prev else ""
            raise A.ArtifactError(f"{Path(root) / stage}: no complete folder{on}; run `make {stage}` first")
        path, man = cands[0]
        chain[stage] = StageFolder(stage, path, man.get("finished", "?"), len(cands), man)
        prev = path
    return chain


def stage_config(manifest: dict, cls):
    """Rebuild a stage's config dataclass from its manifest (stored as its repr); defaults if unreadable."""
    text = manifest.get("config")
    if isinstance(text, dict):
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in text.items()})
    try:
        call = ast.parse(str(text), mode="eval").body
        if not (isinstance(call, ast.Call) and getattr(call.func, "id", "") == cls.__name__):
            raise ValueError(text)
        return cls(**{kw.arg: ast.literal_eval(kw.value) for kw in call.keywords})
    except (SyntaxError, ValueError, TypeError):
        log.warning("cannot read a %s from the manifest (%r); using defaults", cls.__name__, text)
        return cls()
