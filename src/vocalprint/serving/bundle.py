"""Model bundles: a predictor with the model files it runs and a checksummed manifest, loadable
without the training data (e.g. inside an offline Kaggle kernel)."""
from __future__ import annotations

import importlib
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from vocalprint.core import artifacts as A

BUNDLE_FILE = "predictor.joblib"

# Where the classes of bundles pickled before the package was laid out by family live now: an old
# module -> the modules that may hold its names today (searched in order), and renamed classes.
LEGACY_MODULES: dict[str, tuple[str, ...]] = {
    "vocalprint.config": ("vocalprint.config",),
    "vocalprint.distill": ("vocalprint.config.student",),
    "vocalprint.nb": ("vocalprint.config.nb", "vocalprint.tokens.nb.predictor", "vocalprint.tokens.nb.views"),
    "vocalprint.predict": ("vocalprint.tokens.predictor", "vocalprint.teacher.predictor",
                           "vocalprint.student.predictor", "vocalprint.serving.ensemble"),
    "vocalprint.tokens": ("vocalprint.tokens.codebook",),
    "vocalprint.heads": ("vocalprint.tokens.heads",),
    "vocalprint.heads.linear": ("vocalprint.tokens.heads.linear",),
    "vocalprint.heads.lgbm": ("vocalprint.tokens.heads.lgbm",),
}
LEGACY_NAMES: dict[tuple[str, str], str] = {("vocalprint.nb", "_View"): "View"}


def legacy_class(module: str, name: str) -> Any:
    """The class that ``module.name`` of an older vocalprint layout is now; ``None`` when
    ``module`` is not a legacy module. Raises ``AttributeError`` when no candidate holds it."""
    if module not in LEGACY_MODULES:
        return None
    new = LEGACY_NAMES.get((module, name), name)
    for cand in LEGACY_MODULES[module]:
        try:
            return getattr(importlib.import_module(cand), new)
        except (ImportError, AttributeError):
            continue
    raise AttributeError(f"{module}.{name} of an older bundle has no counterpart in "
                         f"{', '.join(LEGACY_MODULES[module])}")


@contextmanager
def legacy_unpickling() -> Iterator[None]:
    """While active, ``joblib.load`` maps classes of older layouts to where they live now."""
    import joblib.numpy_pickle as jp

    base = jp.NumpyUnpickler

    class Remap(base):  # type: ignore[misc, valid-type]
        def find_class(self, module: str, name: str) -> Any:
            found = legacy_class(module, name)
            return found if found is not None else super().find_class(module, name)

    jp.NumpyUnpickler = Remap
    try:
        yield
    finally:
        jp.NumpyUnpickler = base


def save_bundle(pred, folder: Path, *, info: dict | None = None) -> Path:
    """Write a self-contained model bundle (the predictor, the model files it runs, and a
    checksummed manifest) that :func:`load_bundle` reads without the training data, e.g. inside
    an offline Kaggle kernel."""
    import copy
    import shutil

    from vocalprint.config import to_dict

    folder = Path(folder)
    work = A.partial_dir(folder)
    pred = copy.copy(pred)
    if hasattr(pred, "members"):
        pred.members = [copy.copy(m) for m in pred.members]
    for i, p in enumerate((pred, *getattr(pred, "members", ()))):
        def keep(j: int | None, src: Path, i: int = i) -> Path:
            name = Path(f"m{i}_{src.name}" if j is None else f"m{i}_{j}_{src.name}")
            shutil.copyfile(src, work / name)
            return name  # relative: resolved by load_bundle

        for attr in getattr(p, "external", ()):
            setattr(p, attr, _each_path(getattr(p, attr), keep))
    A.dump_joblib(pred, work / BUNDLE_FILE)
    return A.finish(work, folder, {"stage": "bundle", "model": pred.name, "species": list(pred.species),
                                   "config": to_dict(pred.cfg), **(info or {})})


def load_bundle(folder: Path):
    """The predictor saved by :func:`save_bundle`, after every file's checksum matched the manifest."""
    from vocalprint.config import upgrade

    folder = Path(folder)
    with legacy_unpickling():
        pred = A.load_joblib(folder / BUNDLE_FILE)

    for p in (pred, *getattr(pred, "members", ())):
        p.cfg = upgrade(p.cfg)
        for attr in getattr(p, "external", ()):
            setattr(p, attr, _each_path(getattr(p, attr), lambda j, v: A.verified(folder / v.name)))
    return pred


def _each_path(val, fn):
    """``fn(j, path)`` over a tuple of paths (j its index), or ``fn(None, path)`` on a single one;
    the result keeps the shape."""
    if isinstance(val, (tuple, list)):
        return tuple(fn(j, Path(v)) for j, v in enumerate(val))
    return fn(None, Path(val))
