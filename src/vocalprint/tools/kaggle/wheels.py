"""The wheel folder of the Kaggle kit: the inference pins downloaded for the kernel's CPython and
platform (cached by requirement hash), the vocalprint wheel, requirements/constraints and a marker."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from vocalprint.tools.kaggle.kernel import WHEELS_MARKER
from vocalprint.tools.kaggle.requirements import (KaggleError, canonical, inference_requirements, left_out,
                                                  repo_root)

log = logging.getLogger(__name__)

KAGGLE_PY = "3.11"
KAGGLE_GLIBC = (2, 35)  # Kaggle's image (Colab base, Ubuntu 22.04); manylinux_2_x wheels up to this


def platform_tags(glibc: tuple[int, int] = KAGGLE_GLIBC) -> list[str]:
    """``--platform`` values for pip: every manylinux x86-64 tag a glibc ``glibc`` system accepts.

    pip does not widen ``--platform`` itself, and numpy 2.4 ships only ``manylinux_2_27/2_28``
    wheels, so ``manylinux2014`` alone would find no numpy."""
    major, minor = glibc
    tags = [f"manylinux_{major}_{m}_x86_64" for m in range(minor, 4, -1)]
    return tags + ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]


def requirement_key(reqs: list[str], *, py: str, platforms: list[str]) -> str:
    """Hash naming a wheel set: the pins, the Python version and the platform tags."""
    blob = json.dumps({"requirements": sorted(reqs), "python": py, "platforms": platforms}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def abi(py: str) -> str:
    """``3.11`` -> ``cp311``."""
    if not re.fullmatch(r"3\.\d+", py):
        raise KaggleError(f"--py must look like 3.11, got {py!r}")
    return "cp" + py.replace(".", "")


def _wheel_pin(filename: str) -> str:
    """``numpy-2.4.6-cp311-...whl`` -> ``numpy==2.4.6``."""
    name, version = filename.split("-")[:2]
    return f"{canonical(name)}=={version}"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(1 << 20):
            h.update(b)
    return h.hexdigest()


def write_json(path: Path, obj) -> None:
    Path(path).write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def _pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", *args, "--disable-pip-version-check", "--progress-bar", "off"]
    log.info("kaggle: %s", " ".join(cmd))
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        raise KaggleError(f"pip {args[0]} failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")


def _deps_ok(folder: Path, key: str) -> dict | None:
    """The marker of ``folder`` when it holds the complete, unchanged wheel set ``key``, else None."""
    try:
        m = json.loads((folder / WHEELS_MARKER).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not m.get("complete") or m.get("key") != key or not m.get("dependencies"):
        return None
    for name, digest in m.get("deps", {}).items():
        if not (folder / name).is_file() or sha256(folder / name) != digest:
            log.warning("kaggle: %s changed or missing in %s; downloading again", name, folder)
            return None
    return m


def download_deps(folder: Path, reqs: list[str], *, py: str, platforms: list[str]) -> dict:
    """``pip download`` the wheels of ``reqs`` (and their dependencies) for CPython ``py`` into
    ``folder`` (a fresh one); returns ``{wheel file name: sha256}``."""
    folder.mkdir(parents=True, exist_ok=True)
    req_file = folder / "requirements.txt"
    req_file.write_text("".join(f"{r}\n" for r in reqs))
    plat = [f"--platform={p}" for p in platforms]
    _pip("download", "--only-binary=:all:", *plat, "--python-version", py, "--implementation", "cp",
         "--abi", abi(py), "-r", str(req_file), "-d", str(folder))
    deps = {p.name: sha256(p) for p in sorted(folder.glob("*.whl"))}
    got = {canonical(n.split("-")[0]) for n in deps}
    missing = [r for r in reqs if canonical(r.split("==")[0]) not in got]
    if missing:
        raise KaggleError(f"pip download left out {missing}")
    return deps


def _cached_deps(cache: Path, reqs: list[str], *, py: str, platforms: list[str], key: str) -> Path:
    """A folder ``cache/<key>`` holding the complete wheel set (downloaded once, atomically)."""
    final = Path(cache) / key
    if _deps_ok(final, key):
        log.info("kaggle: wheels for %s cached in %s", key, final)
        return final
    work = final.with_name(f".{key}.{os.getpid()}.tmp")
    shutil.rmtree(work, ignore_errors=True)
    try:
        deps = download_deps(work, reqs, py=py, platforms=platforms)
        write_json(work / WHEELS_MARKER, {"complete": True, "dependencies": True, "key": key,
                                          "python": py, "platforms": platforms,
                                          "requirements": reqs, "deps": deps})
        shutil.rmtree(final, ignore_errors=True)
        os.replace(work, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def build_vocalprint_wheel(folder: Path, root: Path | None = None) -> Path:
    """``pip wheel --no-deps ROOT`` (the checkout, default :func:`repo_root`) ->
    ``folder/vocalprint-<version>-py3-none-any.whl``."""
    root = Path(root) if root is not None else repo_root()
    if not (root / "pyproject.toml").is_file():
        raise KaggleError(f"{root / 'pyproject.toml'} not found: build from a checkout of vocalprint")
    before = set(folder.glob("vocalprint-*.whl"))
    _pip("wheel", "--no-deps", "-w", str(folder), str(root))
    new = sorted(set(folder.glob("vocalprint-*.whl")) - before)
    if len(new) != 1:
        raise KaggleError(f"pip wheel wrote {[p.name for p in new]} to {folder}, expected one vocalprint wheel")
    return new[0]


def wheelhouse(folder: Path, *, py: str, wheels: bool, cache: Path | None, previous: Path,
               requirements: Path | None = None, pyproject: Path | None = None,
               glibc: tuple[int, int] = KAGGLE_GLIBC) -> dict:
    """Fill ``folder`` (new) with the wheels of the inference pins (``wheels=False``: none), the
    vocalprint wheel, requirements.txt, constraints.txt and the marker; returns the marker.

    The pins come from a set classified before the download (:func:`left_out` refuses a pin in no
    group of pyproject.toml). ``cache``: keep downloaded wheel sets there by requirement hash;
    without it the wheels of ``previous`` (the last build) are reused when their set is the same."""
    from vocalprint import __version__

    folder.mkdir(parents=True)
    skipped = left_out(requirements, pyproject)
    reqs = inference_requirements(requirements, pyproject) if wheels else []
    platforms = platform_tags(glibc)
    key = requirement_key(reqs, py=py, platforms=platforms)
    deps: dict[str, str] = {}
    if wheels:
        src = None
        if cache is not None:
            src = _cached_deps(cache, reqs, py=py, platforms=platforms, key=key)
        elif _deps_ok(previous, key):
            log.info("kaggle: reusing the wheels of %s (same requirement set %s)", previous, key)
            src = previous
        if src is None:
            deps = download_deps(folder, reqs, py=py, platforms=platforms)
        else:
            deps = json.loads((src / WHEELS_MARKER).read_text())["deps"]
            for name in deps:
                _link_or_copy(src / name, folder / name)
    root = Path(pyproject).parent if pyproject is not None else None
    own = build_vocalprint_wheel(folder, root)
    lines = [*reqs, f"vocalprint=={__version__}"]
    (folder / "requirements.txt").write_text("".join(f"{r}\n" for r in lines))
    (folder / "constraints.txt").write_text(
        "".join(f"{_wheel_pin(n)}\n" for n in sorted([*deps, own.name])))
    marker = {"stage": "wheels", "complete": True, "dependencies": wheels, "key": key,
              "python": py, "abi": abi(py), "platforms": platforms, "requirements": reqs,
              "left_out": skipped, "deps": deps,
              "vocalprint": {"version": __version__, "wheel": own.name, "sha256": sha256(own)},
              "built": time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_json(folder / WHEELS_MARKER, marker)
    return marker
