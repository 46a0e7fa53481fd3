"""Read and validate a dataset in the BirdCLEF+ 2025 layout.

``train.csv`` + ``train_audio/<label>/*.ogg`` (focal, labelled), ``taxonomy.csv``, optional
``train_soundscapes/*.ogg`` (unlabelled), ``test_soundscapes/*.ogg`` (may be empty),
``sample_submission.csv`` (defines the column order), optional ``solution.csv`` (our local
extension: 0/1 truth with the sample submission's columns).
"""
from __future__ import annotations

import ast
import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)
AUDIO_EXT = (".ogg", ".wav", ".flac", ".mp3")
KAGGLE_ROOT = Path("/kaggle/input/birdclef-2025")
TRAIN_COLUMNS = ("primary_label", "filename")
TAXONOMY_COLUMNS = ("primary_label",)
# read as text whatever they look like: numeric labels (iNat ids) with a blank cell would become floats
TEXT_COLUMNS = ("primary_label", "secondary_labels", "filename")
MAX_SECONDARY_CHARS = 10_000  # longer strings are not label lists (and could exhaust the parser)
_BARE_LABELS = re.compile(r"[\w.-]+(?:[\s,;]+[\w.-]+)*")


class DatasetError(ValueError):
    """A structural problem with the dataset; the message names the file and what is wrong."""


def find_root(explicit: str | Path | None = None) -> Path:
    """The data root: the argument, else ``$DATA_DIR``, else Kaggle's input folder, else the demo set."""
    for cand in (explicit, os.environ.get("DATA_DIR")):
        if cand:
            return Path(cand)
    if KAGGLE_ROOT.is_dir():
        return KAGGLE_ROOT
    return Path("data/demo")


def _read_csv(path: Path, required: tuple[str, ...], *, nrows: int | None = None) -> pd.DataFrame:
    if not path.is_file():
        raise DatasetError(f"{path}: required file is missing")
    try:
        df = pd.read_csv(path, nrows=nrows, dtype={c: str for c in TEXT_COLUMNS})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError, OSError) as e:
        raise DatasetError(f"{path}: cannot parse CSV ({type(e).__name__}: {e})") from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DatasetError(f"{path}: missing required column(s) {missing}; found {list(df.columns)}")
    return df


def parse_secondary(value: object, *, known: set[str], where: str = "") -> list[str]:
    """``"['a', 'b']"`` -> labels in ``known``; a malformed string or unknown label is logged and dropped."""
    if value is None or (np.ndim(value) == 0 and pd.isna(value)):
        return []
    s = str(value).strip()
    if s in ("", "[]", "['']"):
        return []
    if len(s) > MAX_SECONDARY_CHARS:
        log.warning("%s: secondary_labels of %d characters ignored", where, len(s))
        return []
    try:
        items = ast.literal_eval(s)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        if not _BARE_LABELS.fullmatch(s):
            log.warning("%s: malformed secondary_labels %r ignored", where, s[:200])
            return []
        items = re.split(r"[\s,;]+", s)  # a bare list: "a b", "a;b", "a, b"
    if isinstance(items, str):
        items = [items]
    if not isinstance(items, (list, tuple)):
        log.warning("%s: secondary_labels %r is not a list; ignored", where, s[:200])
        return []
    out = []
    for it in items:
        it = str(it).strip()
        if it in known:
            out.append(it)
        elif it:
            log.warning("%s: unknown secondary label %r ignored", where, it)
    return out


@dataclass(frozen=True)
class Dataset:
    root: Path
    species: tuple[str, ...]  # submission columns, in the sample submission's order
    train: pd.DataFrame  # columns: path (Path), file_id, primary, secondary (list), + train.csv's own
    train_soundscapes: tuple[Path, ...]
    test_soundscapes: tuple[Path, ...]
    dropped: tuple[tuple[str, str], ...] = ()  # train.csv rows left out: (filename, why)

    @property
    def solution_path(self) -> Path:
        return self.root / "solution.csv"

    def label_matrix(self, *, secondary_weight: float = 1.0) -> np.ndarray:
        """Per training file: ``[n_files, n_species]`` float32 targets (primary 1, secondary weight)."""
        idx = {s: i for i, s in enumerate(self.species)}
        y = np.zeros((len(self.train), len(self.species)), np.float32)
        for r, (p, sec) in enumerate(zip(self.train["primary"], self.train["secondary"])):
            for s in sec:
                y[r, idx[s]] = max(y[r, idx[s]], secondary_weight)
            y[r, idx[p]] = 1.0
        return y

    def fingerprint(self) -> str:
        """Hash of the CSVs' bytes and each audio file's name and size (cheap, no audio read)."""
        h = hashlib.sha1()
        for name in ("train.csv", "taxonomy.csv", "sample_submission.csv"):
            p = self.root / name
            if p.is_file():
                h.update(name.encode() + p.read_bytes())
        for p in list(self.train["path"]) + list(self.train_soundscapes):
            h.update(str(p.relative_to(self.root)).encode())
            h.update(str(p.stat().st_size if p.exists() else -1).encode())
        return h.hexdigest()[:12]


def _audio_files(folder: Path, *, unique_stems: bool = False) -> tuple[Path, ...]:
    """Audio files in ``folder``, sorted; with ``unique_stems`` the first of files sharing a stem
    (``a.ogg`` and ``a.wav`` would both claim row ids ``a_5``, ``a_10``, ...), the others logged."""
    if not folder.is_dir():
        return ()
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_EXT and p.is_file())
    if not unique_stems:
        return tuple(files)
    keep: dict[str, Path] = {}
    for p in files:
        if p.stem in keep:
            log.warning("%s: same name as %s; ignored (their row ids would collide)", p, keep[p.stem].name)
        else:
            keep[p.stem] = p
    return tuple(keep.values())


def species_columns(root: Path) -> tuple[str, ...]:
    """Submission columns: the sample submission's order, else taxonomy order."""
    tax = _read_csv(root / "taxonomy.csv", TAXONOMY_COLUMNS)
    labels = tax["primary_label"].dropna().astype(str).str.strip()
    known = list(dict.fromkeys(s for s in labels if s))
    if len(known) < len(tax):
        log.warning("%s: %d blank or repeated primary_label rows ignored", root / "taxonomy.csv",
                    len(tax) - len(known))
    if not known:
        raise DatasetError(f"{root / 'taxonomy.csv'}: no species listed")
    sample = root / "sample_submission.csv"
    if sample.is_file():
        cols = [str(c) for c in _read_csv(sample, (), nrows=0).columns]
        if "row_id" not in cols:
            raise DatasetError(f"{sample}: no row_id column (found {cols[:3]}{' ...' if len(cols) > 3 else ''})")
        if cols[0] != "row_id":
            log.warning("%s: row_id is column %d, not the first; the submission puts it first",
                        sample, cols.index("row_id") + 1)
        cols = [c for c in cols if c != "row_id"]
        if set(cols) != set(known):
            extra, miss = sorted(set(cols) - set(known)), sorted(set(known) - set(cols))
            raise DatasetError(f"{sample}: its species columns differ from taxonomy.csv "
                               f"(not in taxonomy: {extra[:5]}, not in sample: {miss[:5]})")
        if cols != known:
            log.info("%s: column order differs from taxonomy.csv; using the sample submission's", sample)
        return tuple(cols)
    return tuple(known)


def _inside(filename: object) -> bool:
    """A relative path below ``train_audio/`` (no ``..``, not absolute, not blank)."""
    if not isinstance(filename, str) or not filename.strip():
        return False
    p = PurePosixPath(filename.replace("\\", "/"))
    return not p.is_absolute() and ".." not in p.parts


def load(root: str | Path, *, require_train: bool = True) -> Dataset:
    """Read the layout below ``root``; rows of train.csv whose file is missing are dropped (logged)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: data folder not found (set DATA_DIR, or run `make demo-data`)")
    species = species_columns(root)
    known = set(species)
    if require_train:
        tr = _read_csv(root / "train.csv", TRAIN_COLUMNS)
    else:
        tr = pd.DataFrame(columns=list(TRAIN_COLUMNS))
    tr = tr.copy()
    tr["primary"] = tr["primary_label"].astype(str).str.strip()
    dropped: list[tuple[str, str]] = []
    unknown = ~tr["primary"].isin(known)
    if unknown.any():
        log.warning("train.csv: %d rows with a primary_label not in taxonomy.csv dropped (e.g. %s)",
                    int(unknown.sum()), tr.loc[unknown, "primary"].iloc[0])
        dropped += [(str(f), f"primary_label {p!r} not in taxonomy.csv")
                    for f, p in zip(tr.loc[unknown, "filename"], tr.loc[unknown, "primary"])]
        tr = tr[~unknown]
    outside = np.array([not _inside(f) for f in tr["filename"]], bool)
    if outside.any():
        log.warning("train.csv: %d rows whose filename is blank, absolute or leaves train_audio/ dropped "
                    "(e.g. %r)", int(outside.sum()), tr.loc[outside, "filename"].iloc[0])
        dropped += [(str(f), "filename blank, absolute or outside train_audio/") for f in tr.loc[outside, "filename"]]
        tr = tr[~outside]
    tr["path"] = [root / "train_audio" / str(f) for f in tr["filename"]]
    exists = np.array([p.is_file() for p in tr["path"]], bool)
    if (~exists).any():
        for p in tr.loc[~exists, "path"].head(5):
            log.warning("train.csv: %s is listed but missing; row skipped", p)
        log.warning("train.csv: %d listed files missing in total", int((~exists).sum()))
        dropped += [(str(f), "file missing") for f in tr.loc[~exists, "filename"]]
        tr = tr[exists]
    sec_col = tr["secondary_labels"] if "secondary_labels" in tr else [None] * len(tr)
    tr["secondary"] = [
        [s for s in parse_secondary(v, known=known, where=f"train.csv:{f}") if s != p]
        for v, f, p in zip(sec_col, tr["filename"], tr["primary"])
    ]
    tr = tr.reset_index(drop=True)
    tr["file_id"] = np.arange(len(tr))
    if require_train and tr.empty:
        raise DatasetError(f"{root / 'train.csv'}: no usable training rows")
    return Dataset(root=root, species=species, train=tr,
                   train_soundscapes=_audio_files(root / "train_soundscapes"),
                   test_soundscapes=_audio_files(root / "test_soundscapes", unique_stems=True),
                   dropped=tuple(dropped))
