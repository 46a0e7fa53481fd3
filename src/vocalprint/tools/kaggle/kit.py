"""The kit build: the three upload folders (wheels, model bundles, kernel) with their Kaggle
metadata, the upload README, and the ``build`` command line."""
from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import re
import shutil
import sys
import time
from pathlib import Path

from vocalprint.tools.kaggle import wheels as W
from vocalprint.tools.kaggle.kernel import (COMPETITION, KERNEL, KERNEL_NB, KERNEL_PY, KERNEL_SLUG, MODELS,
                                            MODELS_INDEX, WHEELS, kernel_cells, kernel_notebook, kernel_script)
from vocalprint.tools.kaggle.requirements import KaggleError

log = logging.getLogger(__name__)

PLACEHOLDER_USER = "your-kaggle-username"
_HOW_TO_SET_USER = ("set it with `make kaggle KAGGLE_USER=NAME` (or `--user NAME`), the KAGGLE_USERNAME "
                    "environment variable, or ~/.kaggle/kaggle.json (Kaggle > Settings > Create New Token)")

# --------------------------------------------------------------------------- Kaggle user


def resolve_user(user: str | None = None, *, env=None) -> tuple[str, str]:
    """``(user name, where it came from)``: ``user`` unless empty or the placeholder, else
    ``KAGGLE_USERNAME``, else the ``username`` of ``kaggle.json`` (in ``KAGGLE_CONFIG_DIR``, default
    ``~/.kaggle``, as the kaggle CLI reads it), else the placeholder, with a warning."""
    env = os.environ if env is None else env
    if user and user.strip() and user.strip() != PLACEHOLDER_USER:
        return user.strip(), "--user"
    if (env.get("KAGGLE_USERNAME") or "").strip():
        return env["KAGGLE_USERNAME"].strip(), "KAGGLE_USERNAME"
    path = Path(env.get("KAGGLE_CONFIG_DIR") or Path.home() / ".kaggle") / "kaggle.json"
    try:
        name = json.loads(path.read_text()).get("username")
    except FileNotFoundError:
        name = None
    except (OSError, ValueError, AttributeError) as e:
        log.warning("kaggle: cannot read a user name from %s (%s)", path, e)
        name = None
    if isinstance(name, str) and name.strip():
        return name.strip(), str(path)
    log.warning("kaggle: no Kaggle user name given: the metadata files will say %r, which `kaggle datasets "
                "create` refuses; %s, or edit the three metadata files before uploading",
                PLACEHOLDER_USER, _HOW_TO_SET_USER)
    return PLACEHOLDER_USER, "placeholder"


# --------------------------------------------------------------------------- bundles and species


def check_bundle(folder: Path) -> dict:
    """The manifest of a complete model bundle whose files all match their checksums."""
    from vocalprint.core import artifacts as A

    try:
        m = A.manifest(folder)
    except A.ArtifactError as e:
        raise KaggleError(str(e)) from None
    if m.get("stage") != "bundle":
        raise KaggleError(f"{folder}: manifest.json is of stage {m.get('stage')!r}, not a model bundle "
                          "(make one with `python -m vocalprint export`)")
    for rel in m["files"]:
        try:
            A.verified(folder / rel)
        except (A.ArtifactError, FileNotFoundError) as e:
            raise KaggleError(str(e)) from None
    return m


def competition_species(path: Path) -> list[str]:
    """The competition's species: a data folder's submission columns (sample_submission.csv order,
    else taxonomy.csv), or the ``primary_label`` column of a taxonomy CSV file."""
    path = Path(path)
    if path.is_dir():
        from vocalprint.data.dataset import DatasetError, species_columns

        try:
            return list(species_columns(path))
        except (DatasetError, OSError) as e:
            raise KaggleError(f"--taxonomy {path}: {e}") from None
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise KaggleError(f"--taxonomy {path}: {e}") from None
    labels = [str(r.get("primary_label") or "").strip() for r in rows]
    if not any(labels):
        raise KaggleError(f"--taxonomy {path}: no primary_label column with species")
    return list(dict.fromkeys(s for s in labels if s))


def compare_species(manifest: dict, species: list[str], *, bundle: str = "bundle", source: str = "") -> dict:
    """``{"bundle": n, "competition": n, "missing": [...], "extra": [...]}`` for a bundle's manifest
    against the competition's species, with a warning when they differ: at submit the missing
    columns get the fallback prior and the bundle's extra species are dropped."""
    have = [str(s) for s in manifest.get("species") or []]
    missing = [s for s in species if s not in set(have)]
    extra = [s for s in have if s not in set(species)]
    out = {"bundle": len(have), "competition": len(species), "missing": missing, "extra": extra}
    where = f" ({source})" if source else ""
    if not have:
        log.warning("%s: its manifest.json lists no species; cannot compare it with the %d species "
                    "of the taxonomy%s", bundle, len(species), where)
    elif missing or extra:
        log.warning("%s predicts %d species, the taxonomy%s has %d: %d competition species are "
                    "missing from the bundle (their columns get the prior: %s) and %d of its species are not "
                    "in the competition (dropped: %s)%s", bundle, len(have), where, len(species), len(missing),
                    _few(missing), len(extra), _few(extra),
                    "; it predicts NONE of the competition's species, so the submission would be the prior "
                    "everywhere" if len(missing) == len(species) else "")
    return out


def _few(names: list[str], n: int = 5) -> str:
    return ", ".join(names[:n]) + (f", ... ({len(names) - n} more)" if len(names) > n else "") if names else "none"


# --------------------------------------------------------------------------- the three folders


def _models(folder: Path, bundles: list[Path]) -> list[dict]:
    folder.mkdir(parents=True)
    order, seen = [], set()
    for i, b in enumerate(bundles):
        m = check_bundle(b)
        name = b.name if b.name not in seen else f"{b.name}-{i}"
        seen.add(name)
        shutil.copytree(b, folder / name)
        order.append({"folder": name, "model": m.get("model"), "source": str(b)})
    W.write_json(folder / MODELS_INDEX, {"order": [o["folder"] for o in order], "models": order})
    return order


def _dataset_meta(folder: Path, *, user: str, slug: str, title: str, licence: str, about: str) -> None:
    W.write_json(folder / "dataset-metadata.json", {
        "title": title, "id": f"{user}/{slug}", "licenses": [{"name": licence}], "description": about})


def _kernel(folder: Path, *, user: str) -> None:
    folder.mkdir(parents=True)
    cells = kernel_cells()
    (folder / KERNEL_PY).write_text(kernel_script(cells))
    (folder / KERNEL_NB).write_text(json.dumps(kernel_notebook(cells), indent=1) + "\n")
    W.write_json(folder / "kernel-metadata.json", {
        "id": f"{user}/{KERNEL_SLUG}", "title": KERNEL_SLUG, "code_file": KERNEL_NB,
        "language": "python", "kernel_type": "notebook", "is_private": True,
        "enable_gpu": False, "enable_tpu": False, "enable_internet": False,
        "dataset_sources": [f"{user}/{WHEELS}", f"{user}/{MODELS}"],
        "competition_sources": [COMPETITION], "kernel_sources": [], "model_sources": []})


def du(path: Path) -> int:
    """Bytes of the files below ``path`` (hard links counted once per folder)."""
    seen, total = set(), 0
    for p in Path(path).rglob("*"):
        if p.is_file():
            st = p.stat()
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def build(out: Path, *, bundles: list[Path], py: str = W.KAGGLE_PY, wheels: bool = True,
          user: str | None = None, cache: Path | None = None, requirements: Path | None = None,
          pyproject: Path | None = None, taxonomy: Path | None = None,
          glibc: tuple[int, int] = W.KAGGLE_GLIBC) -> dict:
    """Write the three upload folders under ``out`` (built in a temporary sibling, then swapped in).

    ``wheels=False`` ships only the vocalprint wheel (the kernel then relies on what the image has).
    ``user``: the Kaggle user of the metadata files (None or the placeholder: :func:`resolve_user`).
    ``cache``: a folder keeping downloaded wheel sets by requirement hash across builds; without it
    the wheels of the previous build in ``out`` are reused when their requirement set is the same.
    ``requirements``/``pyproject``: default those of the checkout. ``taxonomy``: the competition's
    data folder or taxonomy.csv; each bundle's species are compared with it (a warning if they differ).
    Returns the build summary (also ``out/build.json``)."""
    t0 = time.perf_counter()
    out = Path(out)
    bundles = [Path(b) for b in bundles]
    if not bundles:
        raise KaggleError("no bundle given: export one with `python -m vocalprint export --out DIR`")
    user, user_from = resolve_user(user)
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", user):
        raise KaggleError(f"Kaggle user name {user!r} (from {user_from}): use lower-case letters, digits and -")
    manifests = [check_bundle(b) for b in bundles]
    species = {}
    if taxonomy is not None:
        comp = competition_species(taxonomy)
        species = {str(b): compare_species(m, comp, bundle=f"bundle {b} ({m.get('model')})", source=str(taxonomy))
                   for b, m in zip(bundles, manifests)}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        marker = W.wheelhouse(tmp / WHEELS, py=py, wheels=wheels, cache=cache, previous=out / WHEELS,
                              requirements=requirements, pyproject=pyproject, glibc=glibc)
        _dataset_meta(tmp / WHEELS, user=user, slug=WHEELS, title=WHEELS, licence="other",
                      about=f"Offline wheels for vocalprint on CPython {py} (Kaggle, internet off); "
                            "each wheel keeps its own licence.")
        order = _models(tmp / MODELS, bundles)
        _dataset_meta(tmp / MODELS, user=user, slug=MODELS, title=MODELS, licence="CC-BY-NC-SA-4.0",
                      about="vocalprint model bundles (predictor.joblib + checksummed manifest.json), "
                            "trained on BirdCLEF 2025 data.")
        _kernel(tmp / KERNEL, user=user)
        summary = {"built": time.strftime("%Y-%m-%dT%H:%M:%S"), "python": py, "user": user, "user_from": user_from,
                   "wheels": sorted(marker["deps"]) + [marker["vocalprint"]["wheel"]],
                   "requirements_key": marker["key"], "bundles": order,
                   "species": {k: {"bundle": v["bundle"], "competition": v["competition"],
                                   "missing": len(v["missing"]), "extra": len(v["extra"])} for k, v in species.items()},
                   "bytes": {name: du(tmp / name) for name in (WHEELS, MODELS, KERNEL)}}
        summary["seconds"] = round(time.perf_counter() - t0, 1)
        W.write_json(tmp / "build.json", summary)
        (tmp / "README.md").write_text(_upload_readme(out, user))
        old = out.with_name(f".{out.name}.{os.getpid()}.old")
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("kaggle: %s written in %.1f s (%s)", out, summary["seconds"],
             ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in summary["bytes"].items()))
    return summary


def _upload_readme(out: Path, user: str) -> str:
    return f"""# Upload to Kaggle (internet off)

Replace `{user}` in the three metadata files if it is not your Kaggle user name, then:

    kaggle datasets create -p {out}/{WHEELS}
    kaggle datasets create -p {out}/{MODELS} --dir-mode zip
    kaggle kernels push -p {out}/{KERNEL}

New versions later: `kaggle datasets version -p FOLDER [--dir-mode zip] -m "what changed"`.
The kernel finds the datasets under /kaggle/input by itself; see the notebook's first cell.
"""


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    doc = (sys.modules[__package__].__doc__ or "").split("\n\n")[0]
    ap = argparse.ArgumentParser(prog="python -m vocalprint.tools.kaggle", description=doc)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="write the wheel, model and kernel folders to upload")
    b.add_argument("--out", default="artifacts/kaggle", help="output folder (default artifacts/kaggle)")
    b.add_argument("--bundle", action="append", required=True,
                   help="model bundle folder(s), comma-separated or repeated; the first is the main model")
    b.add_argument("--py", default=os.environ.get("KAGGLE_PY", W.KAGGLE_PY), help="CPython of the kernel (3.11)")
    b.add_argument("--user", default=None,
                   help=f"Kaggle user name for the metadata files (default, or {PLACEHOLDER_USER!r}: "
                        "$KAGGLE_USERNAME, else the username of ~/.kaggle/kaggle.json)")
    b.add_argument("--taxonomy", default=None,
                   help="the competition's data folder or taxonomy.csv: warn when a bundle's species differ")
    b.add_argument("--no-wheels", action="store_true", help="ship only the vocalprint wheel")
    b.add_argument("--cache", default=None, help="keep downloaded wheel sets here across builds")
    b.add_argument("--requirements", default=None, help="pinned requirements file (default: the checkout's)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=os.environ.get("VOCALPRINT_LOG", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    bundles = [Path(s) for arg in args.bundle for s in arg.split(",") if s.strip()]
    try:
        s = build(Path(args.out), bundles=bundles, py=args.py, wheels=not args.no_wheels, user=args.user,
                  cache=Path(args.cache) if args.cache else None,
                  requirements=Path(args.requirements) if args.requirements else None,
                  taxonomy=Path(args.taxonomy) if args.taxonomy else None)
    except KaggleError as e:
        log.error("kaggle build failed: %s", e)
        return 2
    print(json.dumps({k: s[k] for k in ("seconds", "bytes", "requirements_key")}, indent=1))
    print(f"upload: see {Path(args.out) / 'README.md'}")
    return 0
