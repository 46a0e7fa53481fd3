"""Model bundles: a predictor with the model files it runs and a checksummed manifest, loadable
without the training data (e.g. inside an offline Kaggle kernel)."""
from __future__ import annotations

from pathlib import Path

from vocalprint.core import artifacts as A


BUNDLE_FILE = "predictor.joblib"


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
    folder = Path(folder)
    pred = A.load_joblib(folder / BUNDLE_FILE)
    from vocalprint.config import upgrade

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
