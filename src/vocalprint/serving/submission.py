"""The submission contract: expected rows, validation, and atomic writing."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from vocalprint.core.artifacts import atomic_path
from vocalprint.audio.decode import n_windows, row_ids

log = logging.getLogger(__name__)


class SubmissionError(ValueError):
    """A submission that would score nothing: the message says which rule it breaks."""


def expected_windows(path: Path, *, sr: int = 32000, window_s: float = 5.0) -> tuple[int, str]:
    """Windows a test file needs (one per started 5 s), read from its header; 12 and a reason if unreadable."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
        if info.frames <= 0:
            return 12, f"{path}: no audio frames; assuming 60 s"
        return n_windows(int(round(info.frames * sr / info.samplerate)), sr=sr, window_s=window_s), ""
    except Exception as e:  # any unreadable header: the competition still needs rows
        return 12, f"{path}: unreadable header ({e}); assuming 60 s"


def frame(ids: list[str], probs: np.ndarray, species: list[str] | tuple[str, ...]) -> pd.DataFrame:
    df = pd.DataFrame(np.asarray(probs, dtype=np.float32), columns=list(species))
    df.insert(0, "row_id", ids)
    return df


def validate(df: pd.DataFrame, *, row_ids_expected: list[str], species: list[str] | tuple[str, ...]) -> None:
    """Raise SubmissionError unless: columns are row_id + species in order, every expected row id
    exactly once and nothing else, all probabilities finite and within [0, 1]."""
    cols = ["row_id", *species]
    if list(df.columns) != cols:
        raise SubmissionError(f"columns must be row_id + {len(species)} species in the sample submission's "
                              f"order; first difference at {next((i for i, (a, b) in enumerate(zip(df.columns, cols)) if a != b), min(len(cols), len(df.columns)))}")
    ids = df["row_id"].astype(str)
    dup = ids[ids.duplicated()]
    if len(dup):
        raise SubmissionError(f"row id {dup.iloc[0]} appears more than once")
    exp = set(row_ids_expected)
    got = set(ids)
    if exp - got:
        raise SubmissionError(f"{len(exp - got)} expected row ids missing, e.g. {sorted(exp - got)[0]}")
    if got - exp:
        raise SubmissionError(f"{len(got - exp)} unexpected row ids, e.g. {sorted(got - exp)[0]}")
    v = df[list(species)].to_numpy(dtype=np.float64)
    if not np.isfinite(v).all():
        raise SubmissionError("probabilities contain NaN or inf")
    if (v < 0).any() or (v > 1).any():
        raise SubmissionError("probabilities outside [0, 1]")


def write(df: pd.DataFrame, path: Path, *, row_ids_expected: list[str], species) -> None:
    """Validate, then write atomically: a reader sees the old file or the complete new one."""
    validate(df, row_ids_expected=row_ids_expected, species=species)
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")


def all_row_ids(files: list[tuple[str, int]]) -> list[str]:
    return [r for stem, n in files for r in row_ids(stem, n)]
